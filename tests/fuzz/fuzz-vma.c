/* fuzz-vma.c — libFuzzer target over the VMA header and extent parser,
 * the device blks built on it, and the saved-index loader.
 *
 * The input is an archive.  Before parsing, the harness rewrites the MD5s
 * of the header and of every extent header it can find, so mutations
 * reach the parser behind the checksums instead of dying at them.  Every
 * device is then read and walked with block_status; the index is saved,
 * loaded back and must load.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "blk/vma.h"
#include "tests/fuzz/fuzz.h"

FUZZ_QUIET_INIT

static uint64_t
be(const unsigned char *p, int n)
{
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

static void
fix_md5(unsigned char *p, size_t len, size_t at)
{
  unsigned int n;
  memset(p + at, 0, 16);
  EVP_Digest(p, len, p + at, &n, EVP_md5(), NULL);
}

static void
fix_checksums(unsigned char *p, size_t size)
{
  uint64_t hs, off;

  if (size < 60)
    return;
  hs = be(p + 56, 4);
  if (hs >= 12288 && hs <= size)
    fix_md5(p, hs, 32);
  for (off = hs; off >= 12288 && off + 512 <= size;) {
    if (memcmp(p + off, "VMAE", 4))
      break;
    fix_md5(p + off, 512, 24);
    off += 512 + 4096 * be(p + off + 6, 2);
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  unsigned char *p = malloc(size ? size : 1), *saved, *buf;
  struct vma_index *x, *y;
  struct blk_io *io;
  size_t slen;

  if (!p)
    return 0;
  memcpy(p, data, size);
  fix_checksums(p, size);
  if (blk_io_memory(p, size, "fuzz.vma", &io) < 0) {
    free(p);
    return 0;
  }
  if (vma_index_build(io, &x) < 0) {
    blk_io_close(io);
    free(p);
    return 0;
  }
  blk_io_close(io);
  buf = malloc(70000);
  for (size_t i = 0; i < x->ndev; i++) {
    struct bfs_blk *b;
    char opt[32];
    snprintf(opt, sizeof opt, "devid=%u", x->devs[i].id);
    if (blk_io_memory(p, size, "fuzz.vma", &io) < 0 ||
        blk_vma_open_index(io, opt, x, &b) < 0)
      continue;
    for (uint64_t off = 0, k = 0; off < b->size && k < 64; k++) {
      struct bfs_blk_status st;
      size_t n = b->size - off < 70000 ? (size_t)(b->size - off) : 70000;
      bfs_blk_pread(b, buf, n, off);
      if (bfs_blk_block_status(b, off, b->size - off, &st) < 0)
        break;
      off += st.len;
    }
    bfs_blk_close(b);
  }
  free(buf);
  if (vma_index_save(x, &saved, &slen) == 0) {
    if (vma_index_load(saved, slen, x->archive_size, "saved", &y) == 0)
      vma_index_free(y);
    else
      abort();                 /* what we save must load */
    free(saved);
  }
  vma_index_free(x);
  free(p);
  return 0;
}
