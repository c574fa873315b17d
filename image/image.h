/* image.h — the image core: qcow2/raw files and their backing chains.
 *
 * No FUSE and no SQLite here; everything reads through struct img_io so the
 * parsers can be fed memory buffers by tests and fuzzers.
 *
 * Three levels:
 *   img_*    one file (qcow2 v2/v3 or raw): header, backing name, per-cluster
 *            mapping.  Opening is cheap (header only); tables load lazily.
 *   chain_*  a point in time: the top image and every backing layer below it,
 *            read with one lookup per request through a merged extent map
 *            (built lazily, bounded, shared by threads).  Thread-safe.
 *
 * All functions return 0 / a value, or -errno with bfs_last_error() naming the
 * file and the reason.  Corruption (metadata or data past EOF, bad tables,
 * undecodable compressed clusters) is -EIO, never zeros.  Unsupported
 * features (LUKS/AES encryption, external data files, unknown incompatible
 * feature bits) are -ENOTSUP with a clear message.
 */
#ifndef BFS_IMAGE_H
#define BFS_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* ---- named limits (cf. QEMU block/qcow2.h) ---- */
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (32u * 1024 * 1024)    /* L1 table size cap */
#define QCOW2_MAX_BACKING_NAME 1023
#define CHAIN_MAX_DEPTH 64                        /* default depth cap */

/* ---- the read interface every parser goes through ---- */
struct img_io {
  /* read exactly len bytes at off: 0, or -errno (a short read is -EIO) */
  int (*pread)(void *opaque, void *buf, size_t len, uint64_t off);
  void (*close)(void *opaque);      /* may be NULL */
  void *opaque;
  uint64_t size;                    /* size of the underlying file */
};
/* open path O_RDONLY|O_CLOEXEC and fill io (pread(2) based, thread-safe) */
int img_io_file(const char *path, struct img_io *io);
/* open rel beneath the directory dirfd (root names it in messages) with
 * bfs_open_beneath(): no symlinks, nothing outside it, regular files only */
int img_io_file_beneath(int dirfd, const char *root, const char *rel,
                        struct img_io *io);
/* io over a caller-owned buffer (not copied) */
void img_io_memory(const void *buf, size_t len, struct img_io *io);

/* ---- one image file ---- */
enum img_format { IMG_FORMAT_RAW = 0, IMG_FORMAT_QCOW2 = 1 };
enum img_compression { IMG_COMPRESSION_ZLIB = 0, IMG_COMPRESSION_ZSTD = 1 };

struct img_info {
  enum img_format format;
  int version;                      /* qcow2: 2 or 3; raw: 0 */
  uint64_t virtual_size;
  uint64_t file_size;
  unsigned cluster_bits;            /* qcow2 only */
  enum img_compression compression; /* qcow2 header compression type */
  bool extended_l2;                 /* subclusters */
  bool encrypted;                   /* LUKS or AES: reads refused */
  bool external_data;               /* external data file: reads refused */
  char *backing_file;               /* as recorded; NULL when none */
  char *backing_format;             /* "qcow2", "raw", ... or NULL */
};

typedef struct img img_t;

/* Open a file; the format is probed (qcow2 magic, else raw).  Reads only the
 * header: cheap enough for scanning thousands of files.  Probing is for
 * files nobody has said anything about: a raw disk's first bytes are the
 * guest's, so where a layout or a recorded backing format names the format,
 * open with img_open_format instead. */
int img_open(const char *path, img_t **out);
/* Open with a known format (IMG_FORMAT_RAW / IMG_FORMAT_QCOW2), or -1 to
 * probe.  A raw image is never probed; a file given as qcow2 without the
 * qcow2 magic is -EMEDIUMTYPE ("not a qcow2 image"). */
int img_open_format(const char *path, int fmt, img_t **out);
/* Open over an io (ownership of io passes to the image, also on failure).
 * name is used in messages. */
int img_open_io(struct img_io *io, const char *name, img_t **out);
/* img_open_format over an io (ownership passes, also on failure) */
int img_open_io_fmt(struct img_io *io, const char *name, int fmt,
                    img_t **out);
const struct img_info *img_get_info(const img_t *img);
const char *img_name(const img_t *img);
void img_close(img_t *img);

/* Check a qcow2 image's structure end to end: L1/L2 tables inside the file,
 * every compressed cluster decompresses.  0, or -EIO with the reason. */
int img_check(img_t *img);

/* ---- a chain: one point in time ---- */
struct chain_opts {
  /* Map a layer's recorded backing name to a path to open.  NULL: relative
   * names are taken relative to the overlay's directory, absolute ones as
   * they are.  Return 0 and a malloc'd path, or -errno with the error set. */
  int (*resolve)(void *opaque, const char *overlay_path,
                 const char *backing_name, char **path_out);
  void *resolve_opaque;
  /* The format the caller has recorded for a file it is about to open
   * (IMG_FORMAT_RAW / IMG_FORMAT_QCOW2), or -1 when it has no record.
   * Asked (with resolve_opaque) for the top and for every backing layer.
   * A known format is what the file is opened as, never probed; a layer
   * whose recorded backing format contradicts it is refused (-EIO).
   * NULL: the top and layers without a recorded backing format are
   * probed (`image info` on a file outside any repository). */
  int (*format)(void *opaque, const char *path);
  unsigned max_depth;               /* 0: CHAIN_MAX_DEPTH */
  size_t cache_bytes;               /* decompressed-cluster LRU; 0: default */
  size_t map_bytes;                 /* extent map memory cap; 0: default */
  /* Non-NULL: every layer must lie beneath the directory root (paths from
   * resolve are absolute, under root) and is opened beneath root_fd with
   * no symlink followed (img_io_file_beneath). */
  const char *root;
  int root_fd;
  /* Optional: called for each layer once open, with its root-relative path
   * (or full path without root) and fstat, then once with rel == NULL and
   * st == NULL when the chain ends after depth layers; a negative return
   * fails the open (bfs_chain_ids_check checks against the catalog). */
  int (*check)(void *opaque, size_t depth, const char *rel,
               const struct stat *st);
  void *check_opaque;
};

typedef struct chain chain_t;

/* Open top_path and its whole backing chain.  Loops, missing layers, depth
 * over the cap, unsupported features: -errno with the reason. */
int chain_open(const char *top_path, const struct chain_opts *opts,
               chain_t **out);
/* The same over an already open top image (ownership passes, also on
 * failure); its backing layers are opened through opts->resolve.  Used by
 * the fuzzer with a resolver that refuses. */
int chain_open_image(img_t *top, const struct chain_opts *opts,
                     chain_t **out);
void chain_close(chain_t *c);

uint64_t chain_size(const chain_t *c);        /* virtual size of the top */
size_t chain_depth(const chain_t *c);         /* number of layers, >= 1 */
const img_t *chain_layer(const chain_t *c, size_t i);  /* 0 is the top */
const char *chain_layer_path(const chain_t *c, size_t i);

/* Read exactly len bytes at off (reads past the virtual size are -EINVAL;
 * callers clamp).  0, or -errno.  Safe from many threads at once. */
int chain_pread(chain_t *c, void *buf, size_t len, uint64_t off);

enum chain_extent_kind {
  CHAIN_EXTENT_DATA,   /* some layer holds data here */
  CHAIN_EXTENT_ZERO,   /* reads as zeros: zero clusters, or nothing allocated */
};
struct chain_extent {
  uint64_t off, len;
  enum chain_extent_kind kind;
  int layer;           /* layer index holding the data; -1 for ZERO */
};
/* The maximal extent of one kind (and layer) that contains off, but looking
 * at most 16 GiB either way from off (callers iterate: a huge empty disk
 * comes back as several long ZERO extents). */
int chain_extent_at(chain_t *c, uint64_t off, struct chain_extent *out);
/* Bytes of the point in time that hold data (sum of DATA extents). */
int chain_allocated(chain_t *c, uint64_t *bytes);

/* the `backupfs image info|map|cat IMAGE` command */
int image_cmd(int argc, char **argv);

#endif
