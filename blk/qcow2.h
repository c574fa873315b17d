/* qcow2.h — qcow2 on-disk layout, named limits and the driver's state.
 *
 * struct qcow2_header is the decoded header (cf. QEMU's QCowHeader; field
 * names follow docs/interop/qcow2.txt).  qcow2.c decodes and checks it once
 * at open; qcow2-map.c (tables, mapping, reads) and qcow2-comp.c
 * (compressed clusters) rely on the geometry in struct qcow2 being sane.
 */
#ifndef BFS_BLK_QCOW2_H
#define BFS_BLK_QCOW2_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blk/blk.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (32u * 1024 * 1024)  /* L1 table size cap */
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_FORMAT_NAME 31
#define QCOW2_MAX_VIRTUAL_SIZE (1ull << 56)     /* sanity cap: 64 PiB */
#define QCOW2_MAX_REFCOUNT_ORDER 6
#define QCOW2_L2_CACHE_BYTES (4u * 1024 * 1024) /* per image, >= 1 table */
#define QCOW2_L2_CACHE_MAX_SLOTS 64
#define QCOW2_SUBCLUSTERS 32
#define QCOW2_DCTX_POOL 16              /* idle decompression contexts kept */
#define QCOW2_V2_HEADER_LEN 72
#define QCOW2_V3_HEADER_LEN 104

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

#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

enum qcow2_compression { QCOW2_COMPRESSION_ZLIB = 0, QCOW2_COMPRESSION_ZSTD = 1 };

struct qcow2_header {
  uint32_t magic;
  uint32_t version;
  uint64_t backing_file_offset;
  uint32_t backing_file_size;
  uint32_t cluster_bits;
  uint64_t size;                  /* virtual size as recorded */
  uint32_t crypt_method;
  uint32_t l1_size;
  uint64_t l1_table_offset;
  uint64_t refcount_table_offset;
  uint32_t refcount_table_clusters;
  uint32_t nb_snapshots;
  uint64_t snapshots_offset;
  /* v3 (zero for v2) */
  uint64_t incompatible_features;
  uint64_t compatible_features;
  uint64_t autoclear_features;
  uint32_t refcount_order;
  uint32_t header_length;
  uint8_t compression_type;
};

/* Decode the fixed header from buf (len >= 72); 0 or -EIO when too short
 * for its version.  No semantic checks. */
int qcow2_header_decode(const unsigned char *buf, size_t len,
                        struct qcow2_header *h);

struct qcow2_l2_slot {
  uint64_t off;                   /* host offset of the table, 0 = empty */
  uint64_t stamp;
  uint64_t *tab;                  /* cluster_size bytes, big-endian */
};

struct qcow2 {
  struct bfs_blk b;
  struct blk_io *io;
  struct qcow2_header h;
  char *backing_file, *backing_format;

  /* geometry, immutable after open */
  uint64_t cluster_size;
  unsigned cluster_bits;
  unsigned l2_bits;               /* log2 entries per L2 table */
  unsigned sc_bits;               /* log2 mapping unit (subcluster) */
  bool extended_l2;
  enum qcow2_compression compression;
  unsigned csize_shift;
  uint64_t csize_mask, coffset_mask;
  uint64_t file_size;

  pthread_mutex_t lock;           /* l1 load and the L2 cache */
  uint64_t *l1;                   /* host-endian, NULL until loaded */
  struct qcow2_l2_slot *l2;
  unsigned l2_slots;
  uint64_t l2_clock;

  /* LUKS (crypt_method 2, blk/luks-qcow2.c): the crypto header extension
   * and the opened header; NULL for plain images */
  bool crypto_ext;
  uint64_t crypto_off, crypto_len;
  struct blk_luks *luks;

  /* decompression contexts, reused: taken and returned under ctx_lock */
  pthread_mutex_t ctx_lock;
  struct qcow2_dctx *ctx_free[QCOW2_DCTX_POOL];
  unsigned nctx;
};

enum qcow2_map_kind {
  QCOW2_MAP_UNALLOC,              /* look in the backing */
  QCOW2_MAP_ZERO,
  QCOW2_MAP_DATA,                 /* host bytes at host, contiguous */
  QCOW2_MAP_COMPRESSED,           /* one compressed cluster */
};

struct qcow2_map {
  enum qcow2_map_kind kind;
  uint64_t len;                   /* bytes from off with this mapping */
  uint64_t host;                  /* DATA: host offset of off;
                                     COMPRESSED: payload offset */
  uint64_t csize;                 /* COMPRESSED: payload bytes */
  uint64_t cl_off;                /* COMPRESSED: guest cluster start */
};

/* qcow2-map.c */
int qcow2_map(struct qcow2 *q, uint64_t off, uint64_t max,
              struct qcow2_map *m);
void qcow2_map_free(struct qcow2 *q);
int qcow2_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off);
int qcow2_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                       struct bfs_blk_status *st);
void qcow2_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len);
/* qcow2-comp.c: decode one compressed cluster (payload in memory) into
 * out (cluster_size bytes); a stream that does not decode to exactly one
 * cluster is -EIO */
int qcow2_decompress(struct qcow2 *q, const struct qcow2_map *m,
                     const void *in, void *out);
void qcow2_comp_free(struct qcow2 *q);

/* luks-qcow2.c: the LUKS hooks.  Parse the crypto header extension
 * (16 bytes: offset, length); after the geometry is checked, open the LUKS
 * header it points to (key may be NULL: reads then -ENOKEY); data reads
 * and block status of an encrypted image. */
struct blk_key;
int qcow2_luks_ext(struct qcow2 *q, const unsigned char *p, uint32_t len);
int qcow2_luks_open(struct qcow2 *q, const struct blk_key *key);
int qcow2_luks_read(struct qcow2 *q, unsigned char *buf, size_t len,
                    uint64_t off, uint64_t host);
void qcow2_luks_status(struct qcow2 *q, uint64_t off, struct bfs_blk_status *st);
void qcow2_luks_free(struct qcow2 *q);

#endif
