/* blk.h — the block layer: every disk is a stack of drivers and filters.
 *
 * A struct bfs_blk is one disk-shaped thing with a size and ops (nbdkit's
 * plugin/filter split, QEMU's BlockDriver): drivers turn bytes of a file
 * into a disk (raw, qcow2, ...), filters sit on another bfs_blk (the
 * extent-map/cluster cache, copy-on-write).  A driver with a backing gets it
 * as any bfs_blk and reads it only through its ops: it never reaches into
 * another layer's bytes.  Drivers read their own file only through a
 * struct blk_io (fd or memory), so every parser is fuzzable on memory, and
 * blk/ never opens a path in the read path: its callers hand it open files.
 *
 * Layers are numbered from the top: 0 is the topmost layer of a stack (the
 * scratch of a copy-on-write filter, else the top image), its backing 1,
 * and so on.  Filters that only cache are not layers.
 *
 * Contract of every bfs_blk: thread-safe; pread is exact (a request past the
 * size is -EINVAL, callers clamp; bad data is -EIO, never zeros);
 * block_status describes [off, off+len) with 0 < len <= max.  Everything
 * returns 0 / a value or -errno with bfs_last_error() naming the file and
 * the reason.
 */
#ifndef BFS_BLK_H
#define BFS_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLK_MAX_DEPTH 64          /* layers in one recipe */

/* ---- the small I/O layer under the drivers ---- */
struct blk_io;
/* An io over an open fd (ownership passes, also on failure); name is used
 * in messages.  Sized with fstat (block devices: lseek). */
int blk_io_fd(int fd, const char *name, struct blk_io **out);
/* An io over a caller-owned buffer (not copied, must outlive the io). */
int blk_io_memory(const void *buf, size_t len, const char *name,
                  struct blk_io **out);
uint64_t blk_io_size(const struct blk_io *io);
const char *blk_io_name(const struct blk_io *io);
int blk_io_fd_of(const struct blk_io *io);     /* -1 for memory */
/* Read exactly len bytes at off; a range past the end is -EIO naming the
 * file and what was read. */
int blk_io_read(struct blk_io *io, void *buf, size_t len, uint64_t off,
                const char *what);
/* Data or hole at off (SEEK_DATA/SEEK_HOLE; memory is all data), len
 * clamped to max.  0 or -errno. */
int blk_io_status(struct blk_io *io, uint64_t off, uint64_t max, bool *data,
                  uint64_t *len);
void blk_io_prefetch(struct blk_io *io, uint64_t off, uint64_t len);
void blk_io_close(struct blk_io *io);

/* ---- one disk ---- */
enum bfs_blk_kind {
  BFS_BLK_DATA,   /* some layer holds bytes here */
  BFS_BLK_ZERO,   /* a layer says zeros (qcow2 zero cluster) */
  BFS_BLK_HOLE,   /* nothing allocated in the whole stack: reads as zeros,
                     a consumer may punch it */
};

struct bfs_blk_status {
  uint64_t len;            /* bytes from off with this status */
  enum bfs_blk_kind kind;
  int layer;               /* layer that decides (0 = top); -1 for HOLE */
  /* plain bytes of a file (like QEMU's BDRV_BLOCK_OFFSET_VALID): they can
   * be pread from fd at fd_off; else fd is -1 */
  int fd;
  uint64_t fd_off;
  /* DATA that is not plain (a compressed cluster): the guest range that
   * decodes as a whole; a cache keeps it at this unit */
  uint64_t unit_off, unit_len;
};

struct bfs_blk_info {
  const char *format;          /* "raw", "qcow2", or the filter's name */
  bool is_filter;              /* adds no layer (the cache); the
                                  copy-on-write filter is a layer: 0 */
  int version;                 /* qcow2: 2 or 3 */
  uint64_t virtual_size;
  uint64_t file_size;
  unsigned cluster_bits;       /* qcow2 only */
  const char *compression;     /* qcow2 header compression type */
  bool extended_l2;
  bool encrypted;              /* qcow2 crypt_method 1 or 2 */
  const char *encryption;      /* "luks" (read with a key), "aes" (legacy,
                                  refused); NULL when not encrypted */
  const char *cipher;          /* LUKS: "aes-256-xts-plain64", else NULL */
  bool key_missing;            /* LUKS opened without a key: data reads
                                  are -ENOKEY (the recipe refuses it) */
  bool external_data;
  const char *backing_file;    /* as recorded, NULL when none */
  const char *backing_format;  /* as recorded, NULL when none */
};

struct bfs_blk;
struct bfs_blk_ops {
  const char *name;
  int (*pread)(struct bfs_blk *b, void *buf, size_t len, uint64_t off);
  int (*block_status)(struct bfs_blk *b, uint64_t off, uint64_t max,
                      struct bfs_blk_status *st);
  /* optional: start reading [off, off+len) into the page cache */
  void (*prefetch)(struct bfs_blk *b, uint64_t off, uint64_t len);
  /* optional: writable filters only */
  int (*pwrite)(struct bfs_blk *b, const void *buf, size_t len,
                uint64_t off);
  int (*flush)(struct bfs_blk *b);
  /* free what this blk owns except b->below (bfs_blk_close does that) */
  void (*close)(struct bfs_blk *b);
};

struct bfs_blk {
  const struct bfs_blk_ops *ops;
  uint64_t size;               /* virtual size, bytes */
  const char *name;            /* for messages (the locator) */
  struct bfs_blk *below;       /* backing or filtered blk, owned; or NULL */
  struct bfs_blk_info info;
};

/* Checked entry points: callers use these, not b->ops directly. */
int bfs_blk_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off);
int bfs_blk_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                         struct bfs_blk_status *st);
void bfs_blk_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len);
int bfs_blk_pwrite(struct bfs_blk *b, const void *buf, size_t len,
                   uint64_t off);
int bfs_blk_flush(struct bfs_blk *b);
const struct bfs_blk_info *bfs_blk_info(const struct bfs_blk *b);
/* Layer i of the stack (filters skipped), NULL past the bottom. */
struct bfs_blk *bfs_blk_layer(struct bfs_blk *b, size_t i);
size_t bfs_blk_depth(struct bfs_blk *b);
/* Closes b and everything below it. */
void bfs_blk_close(struct bfs_blk *b);

/* ---- drivers: io and backing pass to the driver, also on failure ---- */
typedef int (*blk_open_fn)(struct blk_io *io, const char *options,
                           struct bfs_blk *backing, struct bfs_blk **out);
int blk_raw_open(struct blk_io *io, const char *options,
                 struct bfs_blk *backing, struct bfs_blk **out);
/* backing NULL for an image that records one: it opens for inspection, and
 * reads that would reach the backing are -EIO */
int blk_qcow2_open(struct blk_io *io, const char *options,
                   struct bfs_blk *backing, struct bfs_blk **out);
/* The same with a LUKS passphrase for an encrypted image (blk/luks.h);
 * key NULL is blk_qcow2_open; a key for a plain image is unused.  The key
 * is only read during the call. */
struct blk_key;
int blk_qcow2_open_key(struct blk_io *io, const char *options,
                       const struct blk_key *key, struct bfs_blk *backing,
                       struct bfs_blk **out);
/* verify's structure check of one opened layer: for qcow2 every L1/L2
 * entry inside the file and every compressed cluster decodes (0 for raw);
 * 0 or -EIO with the reason */
int blk_qcow2_check(struct bfs_blk *b);
/* The driver for a name ("raw", "qcow2"), or NULL. */
blk_open_fn blk_driver(const char *name);
/* The table's own (static) spelling of a driver name, or NULL. */
const char *blk_driver_name(const char *name);

/* ---- filters: inner passes to the filter, also on failure ---- */
struct blk_cache_opts {
  size_t map_bytes;            /* extent map cap, 0: default 64 MiB */
  size_t cache_bytes;          /* decoded-unit LRU, 0: default 32 MiB */
  /* worker threads (common/pool.h) a request's pieces run on: layer
   * reads and compressed-cluster decoding in parallel; not owned, must
   * outlive the filter; NULL: the caller's thread only */
  struct bfs_pool *pool;
};
int blk_cache_open(struct bfs_blk *inner, const struct blk_cache_opts *o,
                   struct bfs_blk **out);
/* Copy-on-write over inner with scratch_fd (a read-write file, owned by
 * the filter from here on) holding written blocks. */
int blk_cow_open(struct bfs_blk *inner, int scratch_fd, const char *name,
                 struct bfs_blk **out);

#endif
