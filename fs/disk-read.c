/* disk-read.c — reads of disks/<disk>.img: read-ahead of sequential
 * streams and replies without a copy through our memory.
 *
 * Read-ahead: each handle remembers where its last read ended; a read
 * starting near there (the kernel's own read-ahead sends several at once,
 * so "near" is RA_SLACK either way) is a stream, and the next RA_WINDOW
 * of the disk is prefetched on the disk service's pool (disk_readahead:
 * the page cache of every layer's file).  A random read prefetches nothing.
 *
 * Replies: when a request is all plain bytes of layer files and zeros
 * (block status of the stack: fd + offset, or ZERO/HOLE), it goes out as
 * fd-backed fuse_bufs (fuse_reply_data: libfuse splices them, the bytes
 * are copied once, in the kernel) with zeros from a never-written calloc
 * area, so no memset and no pread copy.  Anything else (compressed
 * clusters, encrypted layers) is read through the stack into the thread's
 * buffer.  A layer file now shorter than its map says (cut under us) takes
 * that path too: EIO with the reason, never a short reply of zeros.
 * Requests under SPLICE_MIN use the buffer: two splices cost more than a
 * 4 KiB copy.
 */
#include "fs/mount.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "common/error.h"

#define RA_WINDOW (16u << 20)               /* read-ahead of a stream */
#define RA_SLACK (8u << 20)
#define REPLY_PIECES 32                     /* fd pieces of one reply */
#define SPLICE_MIN (64u << 10)

static void
maybe_readahead(struct disk *d, struct disk_stream *s, uint64_t size_all,
                uint64_t off, size_t size)
{
  const uint64_t end = off + size;
  uint64_t last = atomic_exchange(&s->next, end), ra, from, to;

  if (off > last + RA_SLACK || off + RA_SLACK < last || end >= size_all)
    return;                                 /* not sequential, or done */
  ra = atomic_load(&s->end);
  if (ra >= end + RA_WINDOW / 2 && ra <= end + RA_WINDOW)
    return;                                 /* far enough ahead */
  to = end + RA_WINDOW < size_all ? end + RA_WINDOW : size_all;
  from = ra > end && ra < to ? ra : end;    /* else stale (a seek back) */
  if (atomic_compare_exchange_strong(&s->end, &ra, to))
    disk_readahead(d, from, to - from);
}

/* The reply as fd-backed pieces (spliced by libfuse: no copy through our
 * memory) when [off, off+size) is all plain file bytes and zeros; false
 * when some of it must be decoded (or a layer's file is shorter than its
 * map says: the pread path then answers EIO, never a short reply). */
static bool
reply_plain(fuse_req_t req, struct bfs_blk *b, const char *zeros,
            size_t size, uint64_t off)
{
  struct { struct fuse_bufvec v; struct fuse_buf more[REPLY_PIECES]; } bv;
  struct fuse_buf *buf = bv.v.buf;
  struct fdsize { int fd; uint64_t size; } checked[REPLY_PIECES];
  size_t n = 0, nchecked = 0;

  for (uint64_t pos = off, end = off + size; pos < end;) {
    struct bfs_blk_status st = { .fd = -1 };
    if (n == REPLY_PIECES + 1 || bfs_blk_block_status(b, pos, end - pos,
                                                      &st) < 0)
      return false;
    if (st.kind == BFS_BLK_DATA && st.fd < 0)
      return false;                         /* decoded bytes */
    if (st.kind == BFS_BLK_DATA) {
      size_t k = 0;
      while (k < nchecked && checked[k].fd != st.fd)
        k++;
      if (k == nchecked) {                  /* each file's size once */
        struct stat fst;
        if (nchecked == REPLY_PIECES || fstat(st.fd, &fst) < 0)
          return false;
        checked[nchecked++] = (struct fdsize){ st.fd, (uint64_t)fst.st_size };
      }
      if (checked[k].size < st.fd_off + st.len)
        return false;
      if (n && (buf[n - 1].flags & FUSE_BUF_IS_FD) &&
          buf[n - 1].fd == st.fd &&
          (uint64_t)buf[n - 1].pos + buf[n - 1].size == st.fd_off) {
        buf[n - 1].size += st.len;
      }
      else
        buf[n++] = (struct fuse_buf){ .size = st.len, .fd = st.fd,
          .pos = (off_t)st.fd_off,
          .flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY };
    }
    else if (n && !(buf[n - 1].flags & FUSE_BUF_IS_FD))
      buf[n - 1].size += st.len;
    else
      buf[n++] = (struct fuse_buf){ .size = st.len, .mem = (void *)zeros,
                                    .fd = -1 };
    pos += st.len;
  }
  bv.v.count = n;
  bv.v.idx = 0;
  bv.v.off = 0;
  fuse_reply_data(req, &bv.v, FUSE_BUF_SPLICE_NONBLOCK);
  return true;
}

void
disk_read_reply(fuse_req_t req, struct disk *d, struct bfs_blk *base,
                struct disk_stream *s, uint64_t size_all, char *buf,
                const char *zeros, size_t size, uint64_t off)
{
  struct bfs_blk *b = disk_target(d, base);
  int r;

  maybe_readahead(d, s, size_all, off, size);
  bfs_clear_error();
  if (size >= SPLICE_MIN && reply_plain(req, b, zeros, size, off))
    return;
  if ((r = bfs_blk_pread(b, buf, size, off)) < 0) {
    bfs_log(BFS_LOG_WARN, "%s: read %zu at %" PRIu64 ": %s", d->path, size,
            off, bfs_last_error());
    fuse_reply_err(req, EIO);
    return;
  }
  fuse_reply_buf(req, buf, size);
}
