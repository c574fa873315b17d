/* fuzz-blk-qcow2.c — libFuzzer target for the blk/ qcow2 driver over memory:
 * header and extensions, L1/L2 tables (standard and extended), zero and
 * compressed clusters (deflate, zstd), reads through a raw backing, and the
 * caching filter's extent map and decoded-unit LRU above it.
 *
 * The input is one image (blk_io_memory).  When it records a backing file
 * it gets a 96 KiB raw backing in memory (shorter than most images, so the
 * zeros past a backing's end are exercised too) or, unless it records the
 * backing as raw, a second copy of itself over that raw backing (a qcow2
 * backing: units of two layers, shorter/longer backings).  Work per input
 * is bounded: a few block-status walks and reads of at most 256 KiB.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blk/blk.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_BACKING 98304

FUZZ_QUIET_INIT

static struct bfs_blk *
open_raw(const unsigned char *bdata)
{
  struct blk_io *io;
  struct bfs_blk *b;
  if (blk_io_memory(bdata, FUZZ_BACKING, "backing.raw", &io) < 0 ||
      blk_raw_open(io, NULL, NULL, &b) < 0)
    return NULL;
  return b;
}

static struct bfs_blk *
open_stack(const uint8_t *data, size_t size, const unsigned char *bdata)
{
  struct blk_io *io;
  struct bfs_blk *q, *back = NULL, *c;
  bool has_backing, raw_backing;

  if (blk_io_memory(data, size, "fuzz.qcow2", &io) < 0 ||
      blk_qcow2_open(io, NULL, NULL, &q) < 0)
    return NULL;
  has_backing = bfs_blk_info(q)->backing_file != NULL;
  raw_backing = bfs_blk_info(q)->backing_format &&
                !strcmp(bfs_blk_info(q)->backing_format, "raw");
  bfs_blk_close(q);
  if (has_backing && !(back = open_raw(bdata)))
    return NULL;
  if (has_backing && !raw_backing) {       /* itself, as a qcow2 backing */
    if (blk_io_memory(data, size, "backing.qcow2", &io) < 0 ||
        blk_qcow2_open(io, NULL, back, &back) < 0)
      return NULL;
  }
  if (blk_io_memory(data, size, "fuzz.qcow2", &io) < 0 ||
      blk_qcow2_open(io, NULL, back, &q) < 0)
    return NULL;
  struct blk_cache_opts o = { .cache_bytes = 1 << 20, .map_bytes = 1 << 16 };
  return blk_cache_open(q, &o, &c) < 0 ? NULL : c;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  unsigned char *buf = malloc(FUZZ_BUF), *bdata = malloc(FUZZ_BACKING);
  struct bfs_blk *c;

  if (!buf || !bdata)
    abort();
  for (size_t i = 0; i < FUZZ_BACKING; i++)
    bdata[i] = (unsigned char)(i * 7 + 1);
  c = open_stack(data, size, bdata);
  fuzz_walk(c, buf, FUZZ_PREFETCH);
  bfs_blk_close(c);
  free(buf);
  free(bdata);
  return 0;
}
