/* disk-read.c — reads of disks/<disk>.img: read-ahead of sequential
 * streams.
 *
 * Read-ahead: each handle remembers where its last read ended; a read
 * starting near there (the kernel's own read-ahead sends several at once,
 * so "near" is RA_SLACK either way) continues a stream; from the
 * RA_STREAK-th such read in a row the next RA_WINDOW of the disk is
 * prefetched on the disk service's pool (disk_readahead: the page cache
 * of every layer's file).  A random read prefetches nothing: one landing
 * near the last by chance (RA_SLACK of a 2 GiB disk: 1 in 128) is not a
 * stream, whose 16 MiB would have been read for 4 KiB (measured: 718 MiB
 * read from the layers for 20,000 random 4 KiB reads).
 *
 * Replies are read through the stack into the thread's buffer and sent
 * with fuse_reply_buf.  Spliced fd-backed replies (fuse_reply_data) were
 * measured here and dropped: with a 16 MiB kernel read-ahead window they
 * cost more daemon CPU (149 vs 131 ticks per 2 GiB), more wall time (6.8-
 * 7.7 s vs 6.0 s) and 100+ MiB of RSS (libfuse's per-thread pipes and
 * fallback buffers) against 26-29 MiB.
 */
#include "fs/mount.h"

#include <errno.h>
#include <inttypes.h>

#include "common/error.h"

#define RA_WINDOW (16u << 20)               /* read-ahead of a stream */
#define RA_SLACK (8u << 20)
#define RA_STREAK 2

static void
maybe_readahead(struct disk *d, struct disk_stream *s, uint64_t size_all,
                uint64_t off, size_t size)
{
  const uint64_t end = off + size;
  uint64_t last = atomic_exchange(&s->next, end), ra, from, to;

  if (off > last + RA_SLACK || off + RA_SLACK < last) {
    atomic_store(&s->streak, 0);            /* not sequential */
    return;
  }
  if (atomic_fetch_add(&s->streak, 1) + 1 < RA_STREAK || end >= size_all)
    return;                                 /* not yet a stream, or done */
  ra = atomic_load(&s->end);
  if (ra >= end + RA_WINDOW / 2 && ra <= end + RA_WINDOW)
    return;                                 /* far enough ahead */
  to = end + RA_WINDOW < size_all ? end + RA_WINDOW : size_all;
  from = ra > end && ra < to ? ra : end;    /* else stale (a seek back) */
  if (atomic_compare_exchange_strong(&s->end, &ra, to))
    disk_readahead(d, from, to - from);
}

void
disk_read_reply(struct mnt *m, fuse_req_t req, struct disk *d,
                struct bfs_blk *base, struct disk_stream *s, uint64_t size_all,
                char *buf, size_t size, uint64_t off)
{
  struct bfs_blk *b = disk_target(d, base);
  int r;

  maybe_readahead(d, s, size_all, off, size);
  bfs_clear_error();
  if ((r = bfs_blk_pread(b, buf, size, off)) < 0) {
    bfs_log(BFS_LOG_WARN, "%s: read %zu at %" PRIu64 ": %s", d->path, size,
            off, bfs_last_error());
    if (r == -ENOENT)               /* a layer gone (RBD snapshot removed) */
      tree_request_rescan(m);
    fuse_reply_err(req, EIO);
    return;
  }
  fuse_reply_buf(req, buf, size);
}
