/* cow.c — the copy-on-write filter: a writable disk over any read-only one.
 *
 * Written bytes go to a scratch file at their guest offset, in whole blocks
 * of COW_BLOCK bytes (or the scratch file system's block, if larger, so
 * that "allocated in the scratch file" means "written"); a bitmap (chunks allocated on first write) says which
 * blocks the scratch holds.  Reads take written blocks from the scratch and
 * the rest from the disk below, so the backup itself is never written.
 * Block status reports written blocks as DATA of layer 0 (plain bytes of
 * the scratch file) and the layers below shifted by one.  A scratch file
 * that already holds data (written through an earlier mount) is loaded:
 * its allocated ranges (SEEK_DATA/SEEK_HOLE) are the written blocks.
 *
 * THREAD MODEL (the logic of the mount's scratch overlay): wlock is an
 * rwlock.  Whole-block writes take it shared (they touch only their own
 * blocks and can run in parallel); a write with a partial block takes it
 * exclusive, reads the block's old bytes, lays the new bytes over them and
 * writes whole blocks.  Bits are set with atomics after the data is
 * written, so a reader sees either the old bytes or the new ones.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "blk/blk.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/ioutil.h"
#include "common/lock.h"

#define COW_BLOCK 4096u               /* at least; the scratch file
                                         system's block size if larger */
#define COW_BLOCK_MAX (1u << 20)
#define COW_CHUNK_BITS 26             /* guest bytes per bitmap chunk */

struct cow {
  struct bfs_blk b;
  char *name;
  int fd;
  uint64_t bs;                        /* block size */
  size_t words;                       /* bitmap words per chunk */
  pthread_rwlock_t wlock;
  size_t nchunks;
  uint64_t **chunks;                  /* NULL until a block in it is written */
};

static bool
written(struct cow *c, uint64_t blk)
{
  uint64_t bit = blk * c->bs >> COW_CHUNK_BITS;
  uint64_t *ch = __atomic_load_n(&c->chunks[bit], __ATOMIC_ACQUIRE);
  uint64_t w = blk % ((uint64_t)c->words * 64);
  return ch && (__atomic_load_n(&ch[w / 64], __ATOMIC_ACQUIRE) >> (w % 64) & 1);
}

static int
mark(struct cow *c, uint64_t blk)
{
  uint64_t **slot = &c->chunks[blk * c->bs >> COW_CHUNK_BITS];
  uint64_t *ch = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  uint64_t w = blk % ((uint64_t)c->words * 64);

  if (!ch) {
    uint64_t *fresh = calloc(c->words, sizeof *fresh), *none = NULL;
    if (!fresh)
      return bfs_error(-ENOMEM, "%s: out of memory", c->name);
    if (__atomic_compare_exchange_n(slot, &none, fresh, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      ch = fresh;
    else {
      free(fresh);
      ch = none;
    }
  }
  __atomic_fetch_or(&ch[w / 64], 1ull << (w % 64), __ATOMIC_RELEASE);
  return 0;
}

/* Blocks from blk with the same written state, up to the block holding
 * end - 1. */
static uint64_t
run_end(struct cow *c, uint64_t off, uint64_t end, bool *is_written)
{
  uint64_t blk = off / c->bs;
  *is_written = written(c, blk);
  for (blk++; blk * c->bs < end && written(c, blk) == *is_written; blk++)
    ;
  return blk * c->bs < end ? blk * c->bs : end;
}

static int
cow_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  struct cow *c = (struct cow *)b;
  unsigned char *p = buf;
  const uint64_t end = off + len;
  int r;

  while (off < end) {
    bool w;
    uint64_t stop = run_end(c, off, end, &w);
    size_t n = (size_t)(stop - off);
    if (w) {
      if ((r = bfs_pread_all(c->fd, p, n, off)) < 0)
        return bfs_error(-EIO, "%s: reading the scratch file at %" PRIu64
                         ": %s", c->name, off, strerror(-r));
    }
    else if ((r = bfs_blk_pread(b->below, p, n, off)) < 0)
      return r;
    p += n;
    off = stop;
  }
  return 0;
}

static int
write_blocks(struct cow *c, const void *buf, size_t len, uint64_t off)
{
  int r = bfs_pwrite_all(c->fd, buf, len, off);

  if (r < 0)
    return bfs_error(-EIO, "%s: write: %s", c->name, strerror(-r));
  for (uint64_t blk = off / c->bs; blk * c->bs < off + len; blk++)
    if ((r = mark(c, blk)) < 0)
      return r;
  return 0;
}

static int
cow_pwrite(struct bfs_blk *b, const void *buf, size_t len, uint64_t off)
{
  struct cow *c = (struct cow *)b;
  const uint64_t end = off + len;
  uint64_t wstart, wend;
  CLEANUP_FREE unsigned char *tmp = NULL;
  int r = 0;

  if (off % c->bs == 0 && (end % c->bs == 0 || end == b->size)) {
    ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE(&c->wlock);
    return write_blocks(c, buf, len, off);
  }
  /* widen to whole blocks: read the edges, lay the new bytes over them */
  wstart = off / c->bs * c->bs;
  wend = (end + c->bs - 1) / c->bs * c->bs;
  if (wend > b->size)
    wend = b->size;
  if (!(tmp = malloc(wend - wstart)))
    return bfs_error(-ENOMEM, "%s: out of memory", c->name);
  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE(&c->wlock);
  if (wstart < off)
    r = cow_pread(b, tmp, (size_t)(off - wstart), wstart);
  if (r == 0 && end < wend)
    r = cow_pread(b, tmp + (end - wstart), (size_t)(wend - end), end);
  if (r < 0)
    return r;
  memcpy(tmp + (off - wstart), buf, len);
  return write_blocks(c, tmp, (size_t)(wend - wstart), wstart);
}

static int
cow_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                 struct bfs_blk_status *st)
{
  struct cow *c = (struct cow *)b;
  bool w;
  uint64_t stop = run_end(c, off, off + max, &w);
  int r;

  if (w) {
    st->len = stop - off;
    st->kind = BFS_BLK_DATA;
    st->layer = 0;
    st->fd = c->fd;
    st->fd_off = off;
    return 0;
  }
  if ((r = bfs_blk_block_status(b->below, off, stop - off, st)) < 0)
    return r;
  if (st->kind != BFS_BLK_HOLE)
    st->layer++;
  return 0;
}

static void
cow_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len)
{
  bfs_blk_prefetch(b->below, off, len);
}

static int
cow_flush(struct bfs_blk *b)
{
  struct cow *c = (struct cow *)b;
  if (fdatasync(c->fd) < 0)
    return bfs_error(-errno, "%s: fdatasync: %s", c->name, strerror(errno));
  return 0;
}

static void
cow_close(struct bfs_blk *b)
{
  struct cow *c = (struct cow *)b;
  for (size_t i = 0; i < c->nchunks; i++)
    free(c->chunks[i]);
  free(c->chunks);
  if (c->fd >= 0)
    close(c->fd);
  pthread_rwlock_destroy(&c->wlock);
  free(c->name);
  free(c);
}

static const struct bfs_blk_ops cow_ops = {
  .name = "cow",
  .pread = cow_pread,
  .block_status = cow_block_status,
  .prefetch = cow_prefetch,
  .pwrite = cow_pwrite,
  .flush = cow_flush,
  .close = cow_close,
};

/* The blocks the scratch file already holds: its allocated ranges. */
static int
load_written(struct cow *c, uint64_t size)
{
  uint64_t pos = 0;

  while (pos < size) {
    off_t d = lseek(c->fd, (off_t)pos, SEEK_DATA);
    if (d < 0 && errno == ENXIO)
      return 0;
    if (d < 0)
      return bfs_error(-errno, "%s: SEEK_DATA: %s", c->name, strerror(errno));
    if ((uint64_t)d >= size)
      return 0;
    off_t h = lseek(c->fd, d, SEEK_HOLE);
    if (h < 0)
      return bfs_error(-errno, "%s: SEEK_HOLE: %s", c->name, strerror(errno));
    uint64_t e = (uint64_t)h < size ? (uint64_t)h : size;
    for (uint64_t blk = (uint64_t)d / c->bs; blk * c->bs < e; blk++) {
      int r = mark(c, blk);
      if (r < 0)
        return r;
    }
    pos = e > (uint64_t)d ? e : (uint64_t)d + 1;
  }
  return 0;
}

int
blk_cow_open(struct bfs_blk *inner, int scratch_fd, const char *name,
             struct bfs_blk **out)
{
  struct cow *c = calloc(1, sizeof *c);
  struct statvfs sv;
  int r;

  *out = NULL;
  if (c) {
    c->fd = scratch_fd;
    c->bs = COW_BLOCK;
    if (fstatvfs(scratch_fd, &sv) == 0 && sv.f_bsize > COW_BLOCK &&
        sv.f_bsize <= COW_BLOCK_MAX && !(sv.f_bsize & (sv.f_bsize - 1)))
      c->bs = sv.f_bsize;
    c->words = (size_t)((1ull << COW_CHUNK_BITS) / c->bs / 64);
    c->nchunks = (size_t)((inner->size + (1ull << COW_CHUNK_BITS) - 1)
                          >> COW_CHUNK_BITS);
    c->chunks = calloc(c->nchunks ? c->nchunks : 1, sizeof *c->chunks);
    c->name = strdup(name ? name : "(scratch)");
  }
  if (!c || !c->chunks || !c->name) {
    if (c) {
      free(c->chunks);
      free(c->name);
      free(c);
    }
    close(scratch_fd);
    bfs_blk_close(inner);
    return bfs_error(-ENOMEM, "out of memory");
  }
  pthread_rwlock_init(&c->wlock, NULL);
  c->b.ops = &cow_ops;
  c->b.size = inner->size;
  c->b.name = c->name;
  c->b.below = inner;
  c->b.info = (struct bfs_blk_info){ .format = "cow",
                                     .virtual_size = inner->size };
  if ((r = load_written(c, inner->size)) < 0) {
    bfs_blk_close(&c->b);
    return r;
  }
  *out = &c->b;
  return 0;
}
