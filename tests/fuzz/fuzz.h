/* fuzz.h — what the libFuzzer targets of tests/fuzz share (their corpus
 * driver, fuzz-regress.c, calls the same two entry points).
 *
 * FUZZ_QUIET_INIT defines LLVMFuzzerInitialize for a target that needs no
 * set-up: errors only in the log ("marked corrupt" warnings are noise).
 * fuzz_walk() is the bounded read of a blk every block target does: up to
 * 16 extents by block status, each read (at most FUZZ_BUF bytes), and two
 * unaligned reads inside a larger one (partial clusters, the unit LRU);
 * it stops at the first error.  FUZZ_NO_KEY: the blk has no key, so a
 * successful read of data is ciphertext served: abort.  FUZZ_PREFETCH:
 * prefetch each extent too. */
#ifndef BFS_TESTS_FUZZ_H
#define BFS_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "blk/blk.h"
#include "common/error.h"

#define FUZZ_BUF (256 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_QUIET_INIT                                                     \
  int LLVMFuzzerInitialize(int *argc, char ***argv)                         \
  {                                                                         \
    bfs_log_level = BFS_LOG_ERROR;                                          \
    return 0;                                                               \
  }

enum { FUZZ_NO_KEY = 1u << 0, FUZZ_PREFETCH = 1u << 1 };

static inline void
fuzz_walk(struct bfs_blk *c, unsigned char *buf, unsigned flags)
{
  uint64_t off = 0;

  for (int n = 0; c && n < 16 && off < c->size; n++) {
    struct bfs_blk_status st;
    if (bfs_blk_block_status(c, off, c->size - off, &st) < 0)
      break;
    size_t len = st.len < FUZZ_BUF ? (size_t)st.len : FUZZ_BUF;
    int r = bfs_blk_pread(c, buf, len, off);
    if ((flags & FUZZ_NO_KEY) && r == 0 && st.kind == BFS_BLK_DATA)
      abort();                       /* ciphertext served without a key */
    if (r < 0)
      break;
    if (st.len > 1000 && (bfs_blk_pread(c, buf, 777, off + 123) < 0 ||
                          bfs_blk_pread(c, buf, 100, off + 200) < 0))
      break;
    if (flags & FUZZ_PREFETCH)
      bfs_blk_prefetch(c, off, len);
    off += st.len;
  }
}

#endif
