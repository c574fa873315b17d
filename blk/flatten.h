/* flatten.h — the one sparse-flatten engine: a disk's point in time into
 * a file (or device), data read in parallel, holes left as holes.
 *
 * Used by `backupfs image cat -o FILE` (blk/image-cmd.c) and `backupfs
 * restore disk` (restore/disk.c).  The disk is cut into chunks; reader
 * threads claim chunks in order, ask the source's extents (block status,
 * never SEEK on the output), read the data runs and queue the chunk; the
 * calling thread alone writes, in disk order, so the output file's inode
 * lock is never contended and a consumer's hash sees the bytes in order.
 * The output must already have the disk's size (ftruncate) when holes are
 * to stay holes.
 */
#ifndef BFS_BLK_FLATTEN_H
#define BFS_BLK_FLATTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bfs_blk;

struct blk_flatten_src {
  uint64_t size;
  void *ctx;
  /* thread-safe: the extent at off, 0 < *len (clamped to max here); with
   * fd (copy_plain; else NULL), data that is plain bytes of a file for all
   * of *len also sets *fd >= 0 and *fd_off (left -1 otherwise) */
  int (*extent)(void *ctx, uint64_t off, uint64_t max, uint64_t *len,
                bool *data, int *fd, uint64_t *fd_off);
  /* thread-safe, exact */
  int (*pread)(void *ctx, void *buf, size_t len, uint64_t off);
  /* optional: start reading [off, off+len) into the page cache */
  void (*prefetch)(void *ctx, uint64_t off, uint64_t len);
};

/* A bfs_blk as the source (DATA is data; ZERO and HOLE are holes; plain
 * files from block status). */
void blk_flatten_src_blk(struct bfs_blk *b, struct blk_flatten_src *src);

struct blk_flatten_opts {
  unsigned threads;            /* readers; 0: one per CPU (at most 64) */
  /* plain file ranges (src->extent's fd) go file to file by
   * copy_file_range on the writer, never through a buffer; only with write
   * and data NULL */
  bool copy_plain;
  /* all on the writer (calling) thread, in disk order; a negative return
   * stops the copy with that error */
  /* write one data range; NULL: pwrite it whole */
  int (*write)(void *ctx, int fd, const void *buf, size_t len,
               uint64_t off);
  /* after a data range is written (hash, progress, throttle) */
  int (*data)(void *ctx, const void *buf, size_t len, uint64_t off);
  /* a range without data (a block device zeroes it); NULL: nothing */
  int (*hole)(void *ctx, uint64_t off, uint64_t len);
  void *ctx;
};

/* Copy src into fd (name for messages).  0 or -errno with the error set;
 * on failure the output holds a partial copy the caller removes. */
int blk_flatten(const struct blk_flatten_src *src, int fd, const char *name,
                const struct blk_flatten_opts *o);

#endif
