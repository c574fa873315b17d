/* internal.h — shared between the image core's files; not a public API.
 *
 * struct img is one open file (qcow2 or raw).  img_map() is the single
 * primitive the chain builds on: "what does this image hold at guest offset
 * off, and for how many bytes does that stay the same?"  Tables load lazily
 * under img->lock; everything else in struct img is immutable after open.
 */
#ifndef BFS_IMAGE_INTERNAL_H
#define BFS_IMAGE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "image/image.h"

/* qcow2 on-disk constants (see qemu docs/interop/qcow2.txt) */
#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1full
#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO 1ull
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_MAX_VIRTUAL_SIZE (1ull << 56)        /* sanity cap: 64 PiB */
#define QCOW2_L2_CACHE_BYTES (4u * 1024 * 1024)   /* per image, >= 1 table */
#define QCOW2_SUBCLUSTERS 32

enum map_kind {
  MAP_UNALLOC,     /* nothing here: look in the backing file */
  MAP_ZERO,        /* reads as zeros */
  MAP_DATA,        /* host bytes at host_off, contiguous for len */
  MAP_COMPRESSED,  /* one compressed cluster: host_off, csize */
};

struct img_map {
  enum map_kind kind;
  uint64_t len;         /* bytes from off with this mapping */
  uint64_t host_off;    /* DATA: host offset of off; COMPRESSED: payload */
  uint64_t csize;       /* COMPRESSED: payload bytes available in the file */
  uint64_t cl_off;      /* COMPRESSED: guest offset where the cluster starts */
};

struct l2_slot {
  uint64_t off;         /* host offset of the table, 0 = empty slot */
  uint64_t stamp;
  uint64_t *tab;        /* cluster_size bytes, big-endian as on disk */
};

struct img {
  char *name;
  struct img_io io;
  struct img_info info;

  /* qcow2 geometry, immutable after open */
  uint64_t cluster_size;
  unsigned l2_bits;           /* log2 entries per L2 table */
  unsigned sc_bits;           /* log2 subcluster size (extended L2) */
  uint64_t l1_offset;
  uint32_t l1_size;
  unsigned csize_shift;
  uint64_t csize_mask, coffset_mask;

  /* lazily loaded tables */
  pthread_mutex_t lock;
  uint64_t *l1;               /* host-endian, NULL until loaded */
  struct l2_slot *l2;
  unsigned l2_slots;
  uint64_t l2_clock;
};


/* The mapping at guest offset off (< virtual size); len is clamped to max. */
int img_map(img_t *img, uint64_t off, uint64_t max, struct img_map *m);
/* Decompress one compressed cluster into out (cluster_size bytes). */
int img_decompress(img_t *img, const struct img_map *m, void *out);
/* The same with the payload (m->csize bytes) already in memory. */
int img_decompress_buf(img_t *img, const struct img_map *m, const void *in,
                       void *out);
/* fstat of a file io: 0, or -ENOTSUP for memory io / -errno */
int img_io_file_stat(const struct img_io *io, struct stat *st);
/* Hint the kernel that io will be read sequentially (file io only). */
void img_io_hint_sequential(const struct img_io *io);
/* Start reading [off, off+len) into the page cache (file io only). */
void img_io_prefetch(const struct img_io *io, uint64_t off, uint64_t len);
/* Data or hole at off in a file io (SEEK_DATA/SEEK_HOLE), clamped to max:
 * 0, or -ENOTSUP for memory io / -errno. */
int img_io_file_status(const struct img_io *io, uint64_t off, uint64_t max,
                       bool *data, uint64_t *len);
/* Read host bytes, checking the range against the file size (EIO naming
 * the file when it lies past the end). */
int img_read_host(img_t *img, void *buf, size_t len, uint64_t off,
                  const char *what);

/* ---- chains (chain.c opens them, extmap.c reads them) ---- */

#define CHAIN_REGION_BITS 26                      /* 64 MiB per map region */
#define CHAIN_MAP_CAP (64u * 1024 * 1024)         /* extent map bytes */
#define CHAIN_CACHE_DEFAULT (32u * 1024 * 1024)   /* decompressed clusters */
#define CHAIN_MAP_BUCKETS 4096
#define CHAIN_CC_BUCKETS 1024

/* One piece of the merged map: [off, off+len) reads from one place. */
enum seg_kind { SEG_ZERO, SEG_DATA, SEG_COMPRESSED };
struct seg {
  uint64_t off, len;
  uint64_t host;        /* DATA: host offset of off; COMPRESSED: payload */
  uint64_t cl_off;      /* COMPRESSED: guest offset of the cluster start */
  uint32_t csize;       /* COMPRESSED: payload bytes */
  uint8_t kind;
  int16_t layer;        /* -1 for ZERO */
};

struct region {
  struct region *next;  /* hash chain */
  uint64_t index;
  uint64_t stamp;       /* last use (atomic) */
  size_t n;
  struct seg segs[];
};

struct centry {         /* one decompressed cluster */
  struct centry *next, *lru_prev, *lru_next;
  int layer;
  uint64_t host;
  size_t len;
  unsigned char *data;  /* right after the struct, same allocation */
};

struct chain {
  size_t depth;
  img_t **layers;
  char **paths;
  uint64_t size;

  pthread_rwlock_t map_lock;        /* regions, map_bytes */
  struct region *buckets[CHAIN_MAP_BUCKETS];
  size_t map_bytes, map_cap, nregions;
  uint64_t clock;

  pthread_mutex_t cc_lock;          /* the decompressed-cluster LRU */
  struct centry *cc_buckets[CHAIN_CC_BUCKETS];
  struct centry lru;                /* list head: lru.lru_next is newest */
  size_t cc_bytes, cc_cap;
};

/* Hint every layer's file for a sequential scan (image cat). */
void chain_hint_sequential(chain_t *c);
/* Ask the kernel to start reading every host range behind [off, off+len)
 * of the point in time (asynchronous; errors ignored). */
void chain_prefetch(chain_t *c, uint64_t off, uint64_t len);
/* Like chain_extent_at() but only the one map piece holding off (no
 * scanning): cheap, for callers that walk the whole disk. */
int chain_piece_at(chain_t *c, uint64_t off, struct chain_extent *out);
void chain_map_init(chain_t *c, size_t cache_bytes, size_t map_bytes);
void chain_map_free(chain_t *c);

#endif
