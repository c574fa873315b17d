/* fuzz-pbs.c — libFuzzer target over the PBS DataBlob decoder and the
 * fixed-index parser with its blk.
 *
 * First byte: even = the rest is a blob, decoded without and with a fixed
 * key; odd = the rest is a .fidx, opened over an empty chunk store (a
 * directory made once under $TMPDIR) and walked: zero chunks answer,
 * the others must fail cleanly as missing.  The harness rewrites the
 * blob CRC and the index checksum so mutations get past them.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <openssl/evp.h>

#include "blk/pbs.h"
#include "common/error.h"
#include "tests/fuzz/fuzz.h"

static char root[256];
static struct pbs_key key;
static struct pbs_store *store;   /* one: its zero digests are computed once */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  const char *t = getenv("TMPDIR");
  unsigned char raw[32];

  bfs_log_level = BFS_LOG_ERROR;
  snprintf(root, sizeof root, "%s/bfs-fuzz-pbs.XXXXXX", t ? t : "/tmp");
  if (!mkdtemp(root))
    abort();
  char chunks[300];
  snprintf(chunks, sizeof chunks, "%s/.chunks", root);
  mkdir(chunks, 0700);
  for (int i = 0; i < 32; i++)
    raw[i] = (unsigned char)i;
  pbs_key_from_raw(raw, &key);
  if (pbs_store_open(open(root, O_PATH | O_DIRECTORY), "fuzz", NULL, 1 << 20,
                     &store) < 0)
    abort();
  return 0;
}

static void
blob(unsigned char *p, size_t n)
{
  unsigned char *out;
  size_t olen;
  size_t hs = n >= 8 && (p[0] == 123 || p[0] == 230) ? 44 : 12;

  if (n >= hs) {
    uint32_t c = (uint32_t)crc32(0, p + hs, (uInt)(n - hs));
    for (int i = 0; i < 4; i++)
      p[8 + i] = (unsigned char)(c >> (8 * i));
  }
  if (pbs_blob_decode(p, n, NULL, 1 << 20, "fuzz", &out, &olen) == 0)
    free(out);
  if (pbs_blob_decode(p, n, &key, 1 << 20, "fuzz", &out, &olen) == 0)
    free(out);
}

static void
fidx(unsigned char *p, size_t n)
{
  struct pbs_store *s = store;
  struct bfs_blk *b;
  struct blk_io *io;
  unsigned int dl;
  unsigned char buf[4096];

  if (n >= 4096)
    EVP_Digest(p + 4096, n - 4096, p + 32, &dl, EVP_sha256(), NULL);
  if (blk_io_memory(p, n, "fuzz.fidx", &io) == 0 &&
      blk_pbs_open_store(io, s, &b) == 0) {
    for (uint64_t off = 0, k = 0; off < b->size && k < 64; k++) {
      struct bfs_blk_status st;
      size_t len = b->size - off < sizeof buf ? (size_t)(b->size - off)
                                              : sizeof buf;
      bfs_blk_pread(b, buf, len, off);
      if (bfs_blk_block_status(b, off, b->size - off, &st) < 0)
        break;
      off += st.len;
    }
    bfs_blk_close(b);
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  unsigned char *p;

  if (size < 1 || !(p = malloc(size)))
    return 0;
  memcpy(p, data + 1, size - 1);
  if (data[0] & 1)
    fidx(p, size - 1);
  else
    blob(p, size - 1);
  free(p);
  return 0;
}
