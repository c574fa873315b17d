/* vma.h — Proxmox vzdump VMA archives: the header, a one-pass extent
 * index, and each device as a struct bfs_blk.
 *
 * Format handled: VMA version 1 as pve-qemu's vma_spec.txt describes it
 * (header magic "VMA\0", 64 KiB clusters of 16 4 KiB blocks, extents
 * "VMAE" of up to 59 blockinfos, MD5 over header and extent headers, all
 * numbers big-endian except the 16-bit blob sizes, which vma-writer
 * stores little-endian).
 *
 * The index is plain data: per device one uint64 per cluster, 0 for a
 * cluster the archive never wrote (a HOLE), else (file offset / 512) << 16
 * | the 16-bit mask of stored 4 KiB blocks (a 0 bit is a ZERO block).  It
 * is built in one sequential pass (vma_index_build) and can be saved and
 * loaded (vma_index_save/load) so the catalog caches it.  A load checks
 * every entry against the archive's size again, so a stale or hostile
 * cache is an error, not a wild read.
 *
 * A truncated archive (an interrupted backup: the file ends inside an
 * extent) keeps every extent before the cut.  vzdump writes each device's
 * clusters in ascending order and always its last one, so a device whose
 * last cluster is not there is broken: opening it is -EIO saying where
 * the archive stops.  Devices the archive wrote completely open as usual;
 * their unwritten clusters are holes.
 *
 * Compressed archives: vzdump pipes the archive through one `zstd` (or
 * `lzop`) process, which writes one frame (or one lzop stream) with no
 * seek table, so no random access into them is sound.  vma_unpack()
 * decompresses once into an unlinked file (O_TMPFILE) in a directory the
 * caller gives (outside the repository; the disk service uses
 * $XDG_CACHE_HOME/backupfs/vma or /var/cache/backupfs/vma).  That file is
 * sparse (all-zero 4 KiB blocks are not written), at most the size of the
 * uncompressed archive, and is dropped by the kernel when its last
 * descriptor closes: when the last device blk over it is closed, or (its
 * blocks) at once when the archive is replaced (vma-source.c).
 *
 * Recipe layers (blk/recipe.c, driver "vma"): the locator is the archive
 * file (.vma, .vma.zst, .vma.lzo), options "dev=NAME" (the device name as
 * in the header, e.g. "drive-scsi0") or "devid=N"; the recipe's ctx
 * (struct blk_recipe.ctx) may point to a struct vma_source of that
 * archive (shared, not owned; it must outlive the blk), else the driver
 * builds an index itself (plain .vma only).
 */
#ifndef BFS_BLK_VMA_H
#define BFS_BLK_VMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk/blk.h"

#define VMA_CLUSTER_SIZE 65536u
#define VMA_BLOCK_SIZE 4096u
#define VMA_MAX_DEVS 256
#define VMA_MAX_CONFIGS 256
#define VMA_MAX_HEADER (16u << 20)        /* header_size cap */

struct vma_dev {
  unsigned id;                 /* 1..255 */
  char *name;
  uint64_t size;
  uint32_t nclusters;
  uint64_t *map;               /* nclusters entries, format above */
  uint32_t written;            /* clusters the archive holds */
};

struct vma_config {
  char *name;                  /* "qemu-server.conf", "qemu-server.fw" */
  unsigned char *data;
  size_t len;
};

struct vma_index {
  unsigned char uuid[16];
  int64_t ctime;
  uint64_t archive_size;       /* of the file the index was built on */
  uint64_t data_end;           /* end of the last whole extent */
  bool truncated;              /* the file ends inside an extent */
  size_t ndev, nconfig;
  struct vma_dev devs[VMA_MAX_DEVS];
  struct vma_config configs[VMA_MAX_CONFIGS];
};

/* Read the header and every extent header once: 0 and the index, or
 * -errno naming the archive and the reason (bad magic, version, MD5,
 * uuid, a blockinfo naming an unknown device or a cluster past it). */
int vma_index_build(struct blk_io *io, struct vma_index **out);
void vma_index_free(struct vma_index *x);
/* The device of that name, or NULL. */
const struct vma_dev *vma_index_dev(const struct vma_index *x,
                                    const char *name);
/* 0 when the device opens, else -EIO with the reason set. */
int vma_dev_check(const struct vma_index *x, const struct vma_dev *d,
                  const char *archive);

/* A malloc'd byte string of the index / the index back from one, checked
 * against the archive size it is used with. */
int vma_index_save(const struct vma_index *x, unsigned char **buf,
                   size_t *len);
int vma_index_load(const void *buf, size_t len, uint64_t archive_size,
                   const char *name, struct vma_index **out);

/* The table's driver: options "dev=NAME" or "devid=N"; no backing. */
int blk_vma_open(struct blk_io *io, const char *options,
                 struct bfs_blk *backing, struct bfs_blk **out);
/* The same with an index built before (x NULL: build one; else shared,
 * must outlive the blk). */
int blk_vma_open_index(struct blk_io *io, const char *options,
                       const struct vma_index *x, struct bfs_blk **out);

/* What the disk service shares between the devices of one archive
 * (disk/source.c, one per archive): its index, loaded from the index
 * cache (blk_idxcache_*, kind "vma") or built once, and for a .vma.zst /
 * .vma.lzo the fd of the unpacked copy (vma_unpack), read instead of the
 * compressed file the layer's io is over.  Both are of the file's
 * identity (dev, ino, size, mtime): a device opened over a replaced
 * archive makes them again from the new file and the old copy is dropped
 * (vma-source.c says how). */
struct vma_source;
/* Open (or build) the source of the archive in in_fd (not closed): the
 * index from cache_dirfd when an entry for the file's identity loads
 * (*hit), else built and stored; compressed archives are unpacked into
 * unpack_dirfd first.  cache_dirfd may be -1 (no cache). */
int vma_source_open(int in_fd, const char *name, int cache_dirfd,
                    int unpack_dirfd, struct vma_source **out, bool *hit);
void vma_source_free(struct vma_source *s);
/* the index of the archive as the source last opened it */
const struct vma_index *vma_source_index(const struct vma_source *s);

/* The recipe's form: ctx NULL or a struct vma_source. */
int blk_vma_open_ctx(struct blk_io *io, const char *options, void *ctx,
                     struct bfs_blk *backing, struct bfs_blk **out);

/* Decompress a .vma.zst / .vma.lzo (in_fd, not closed) into a sparse
 * O_TMPFILE in cache_dirfd: 0 and the new file's fd, or -errno naming the
 * archive (the kind is told by the magic; anything else is -EINVAL). */
int vma_unpack(int in_fd, const char *name, int cache_dirfd, int *out_fd);

#endif
