/* fuzz-qcow2.c — libFuzzer target for the qcow2 reader: header and header
 * extensions, L1/L2 tables (standard and extended), zero and compressed
 * clusters (zlib and zstd), the merged extent map and reads through it.
 *
 * The input is one image in memory (img_io_memory).  Backing files are never
 * opened: the resolver refuses, so a chain with a backing file fails at
 * open.  The work per input is bounded: a few extents, a few reads of at
 * most 256 KiB each, img_check only for virtual sizes up to 1 GiB.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  bfs_log_level = BFS_LOG_ERROR;      /* "marked corrupt" warnings: noise */
  return 0;
}

static int
refuse(void *opaque, const char *overlay, const char *name, char **out)
{
  *out = NULL;
  return bfs_error(-EPERM, "%s: backing files are not opened while fuzzing",
                   overlay);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static unsigned char buf[256 * 1024];
  struct chain_opts opts = { .resolve = refuse, .cache_bytes = 1 << 20 };
  struct img_io io;
  img_t *img;
  chain_t *c;
  uint64_t off = 0, vs;

  img_io_memory(data, size, &io);
  if (img_open_io(&io, "fuzz.qcow2", &img) < 0)
    return 0;
  if (img_get_info(img)->format != IMG_FORMAT_QCOW2) {
    img_close(img);
    return 0;
  }
  vs = img_get_info(img)->virtual_size;
  if (vs <= (1u << 30))
    img_check(img);
  if (chain_open_image(img, &opts, &c) < 0)
    return 0;
  for (int n = 0; n < 16 && off < chain_size(c); n++) {
    struct chain_extent e;
    size_t len;
    if (chain_extent_at(c, off, &e) < 0)
      break;
    len = e.len < sizeof buf ? (size_t)e.len : sizeof buf;
    if (chain_pread(c, buf, len, e.off) < 0)
      break;
    /* an unaligned read inside the extent exercises partial clusters */
    if (e.len > 1000 && chain_pread(c, buf, 777, e.off + 123) < 0)
      break;
    off = e.off + e.len;
  }
  chain_close(c);
  return 0;
}
