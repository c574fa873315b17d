/* vnbd.h — virtnbdbackup's sparse stream (.data files) as a struct bfs_blk.
 *
 * One stream is one disk at one checkpoint: a full (every extent as data
 * or zero frames) or an incremental/differential (only the dirty extents;
 * the rest is the parent checkpoint's, so the layer below decides).  The
 * stream is parsed once into a flat extent index (struct vnbd_index: two
 * arrays of fixed-size records, cheap to serialise and to cache), after
 * which reads are random access: plain data frames are pread, lz4 frames
 * of a --compress stream are decoded one block at a time, only the blocks
 * a read touches.  Format: stream versions 1 and 2 as written by
 * virtnbdbackup 1.9 (libvirtnbdbackup/sparsestream, see vnbd-stream.c).
 */
#ifndef BFS_VNBD_H
#define BFS_VNBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk/blk.h"

#define VNBD_META_MAX   (1u << 20)      /* metadata / trailer JSON cap */
#define VNBD_BLOCK_MAX  (256ull << 20)  /* one decoded lz4 block, cap */

enum vnbd_kind { VNBD_DATA = 1, VNBD_ZERO = 2 };

/* One data or zero frame: guest [voff, voff+vlen).  Plain data is at file
 * offset foff; compressed data is blocks [blk, blk+nblk) of the index. */
struct vnbd_ext {
  uint64_t voff, vlen;
  uint64_t foff;
  uint32_t kind;
  uint32_t nblk;
  uint64_t blk;
};

/* One lz4 frame of a compressed data frame: it decodes to exactly dlen
 * bytes at guest voff, from clen bytes at file offset foff. */
struct vnbd_block {
  uint64_t voff, dlen;
  uint64_t foff, clen;
};

struct vnbd_meta {
  uint64_t virtual_size;
  uint64_t data_size;          /* bytes of data frames, as recorded */
  int stream_version;          /* 1 or 2 */
  bool incremental;            /* inc or diff: the parent fills the rest */
  bool compressed;             /* lz4 frames, trailer of block sizes */
  char *checkpoint;            /* checkpointName, "" when none (copy) */
  char *parent;                /* parentCheckpoint, NULL when none */
  char *disk_name, *disk_format, *date;  /* as recorded, or NULL */
};

struct vnbd_index {
  struct vnbd_meta meta;
  uint64_t file_size;
  size_t n_ext, n_blk;
  struct vnbd_ext *ext;        /* ascending, non-overlapping */
  struct vnbd_block *blk;
};

/* Parse the stream in io (not owned) in one pass: 0, or -errno naming the
 * file and the offset (a stream without its stop frame or compression
 * trailer, a frame past the end of the file, bad JSON, overlapping
 * extents, a decoded size that does not add up). */
int vnbd_index_build(struct blk_io *io, struct vnbd_index *idx);
void vnbd_index_free(struct vnbd_index *idx);

/* The index as one blob (malloc'd, host byte order) and back: decode
 * checks the blob against the stream's file size (-ESTALE) and every
 * record as the parser would (-EIO); idx is the caller's to free. */
int vnbd_index_encode(const struct vnbd_index *idx, void **blob,
                      size_t *len);
int vnbd_index_decode(const void *blob, size_t len, uint64_t file_size,
                      const char *name, struct vnbd_index *idx);

/* The driver (row "vnbd" of the driver table).  An incremental needs the
 * parent checkpoint's blk as backing (without one it opens for inspection
 * and reads reaching the parent are -EIO); a full refuses a backing. */
int blk_vnbd_open(struct blk_io *io, const char *options,
                  struct bfs_blk *backing, struct bfs_blk **out);
/* The same from a cached index blob (vnbd_index_encode) instead of a
 * parse; a blob that does not decode is the error, nothing is guessed. */
int blk_vnbd_open_index(struct blk_io *io, const void *blob, size_t len,
                        struct bfs_blk *backing, struct bfs_blk **out);
/* The index cache (vnbd-cache.c): indexes of streams and archives kept
 * in <catalog>.idx/, keyed by the indexed file's identity.  open: the
 * directory's fd (created 0700 if missing) or -errno; load: 0 and a
 * malloc'd blob or -errno (-ENOENT: a miss); store: 0 or -errno. */
struct stat;
int blk_idxcache_open(const char *catalog_path);
int blk_idxcache_load(int dirfd, const char *kind, const struct stat *st,
                      void **blob, size_t *len);
int blk_idxcache_store(int dirfd, const char *kind, const struct stat *st,
                       const void *blob, size_t len);
/* The recipe ctx of vnbd layers (disk/source.c: one per repository). */
struct blk_idxcache { int dirfd; };

/* The index of io's stream: from the cache when an entry for the file's
 * identity decodes (*hit true), else built and stored (cache_dirfd < 0:
 * just built).  0, or the build's error. */
int vnbd_index_get(struct blk_io *io, int cache_dirfd, struct vnbd_index *idx,
                   bool *hit);
/* The recipe's form: ctx NULL or a struct blk_idxcache. */
int blk_vnbd_open_ctx(struct blk_io *io, const char *options, void *ctx,
                      struct bfs_blk *backing, struct bfs_blk **out);

/* The index of a vnbd layer, NULL if b is not one. */
const struct vnbd_index *blk_vnbd_index(const struct bfs_blk *b);
/* The metadata of a vnbd layer, NULL if b is not one. */
const struct vnbd_meta *blk_vnbd_meta(const struct bfs_blk *b);

#endif
