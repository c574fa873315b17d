/* disk.h — the disk service: a catalog disk's recipe, opened as a block
 * stack, shared by every consumer (the mount, restore, verify, index, and
 * later the NBD export).
 *
 * The catalog's scan resolved and checked each disk's chain once and stored
 * its recipe (catalog_disk: layer locators, drivers, options, identities).
 * This service opens exactly that recipe: each layer's file beneath the
 * repository's descriptor (common/beneath.h: no symlink followed, nothing
 * outside it), its identity (dev, ino, size, mtime) compared with the
 * catalog's — a file that differs is -EIO "changed since the scan" and the
 * caller may ask for a rescan, its bytes are never served — then
 * blk_open_recipe() with the caching filter on top.  Drivers that need a
 * shared context (a chunk store, a restic repository, a Ceph connection)
 * get it from disk/source.h's table, opened once per service context.
 *
 * A struct bfs_disk is cheap to create (a copy of the recipe) and opens
 * its stack lazily on the first bfs_disk_acquire(); the stack is shared by
 * every user until the last one releases it, then parked on the context's
 * idle LRU (the oldest are closed beyond opts.idle_max: each open stack
 * holds a descriptor per layer).  A stack that fails to open is not kept:
 * the next acquire tries again, so a repaired repository heals.  Disks are
 * shared by key: the same owner tag and the same recipe (identities
 * included) give the same struct bfs_disk.
 *
 * THREAD MODEL: everything is thread-safe.  ctx.lock (mutex) guards the
 * key table, every disk's reference count and the idle list; disk.lock
 * (mutex) guards one disk's lazy open and its count of users.  Order:
 * disk.lock, then ctx.lock, never the reverse.  Once acquired, the
 * stack does not change until released, and a bfs_blk is thread-safe, so
 * readers take no lock of ours.
 *
 * All functions return 0 / a value or -errno with bfs_last_error() set.
 */
#ifndef BFS_DISK_H
#define BFS_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk/blk.h"
#include "catalog/catalog.h"

struct bfs_disk_opts {
  struct blk_cache_opts cache;
  size_t idle_max;                  /* idle open stacks kept; 0: 64 */
  /* LUKS passphrase for encrypted qcow2 layers, or NULL (the caller's,
   * must outlive the context; never copied) */
  const struct blk_key *key;
  /* "name=value,..." for the drivers' shared contexts (disk/source.h:
   * restic_password_file=, ceph_conf=, pbs_keyfile=, ...), or NULL:
   * the catalog's (catalog_source_options); copied */
  const char *source_options;
};

struct bfs_disk_ctx;
struct bfs_disk;

/* cat and repo_fd (a descriptor of catalog_repo(cat), see bfs_dir_open)
 * stay the caller's and must outlive the context. */
int bfs_disk_ctx_new(catalog_t *cat, int repo_fd,
                     const struct bfs_disk_opts *opts,
                     struct bfs_disk_ctx **out);
/* The catalog bfs_disk_open() asks from now on (the mount reopens its
 * catalog after daemonising; same repository). */
void bfs_disk_ctx_set_catalog(struct bfs_disk_ctx *ctx, catalog_t *cat);
/* Closes the idle stacks; every disk must have been put back. */
void bfs_disk_ctx_free(struct bfs_disk_ctx *ctx);
/* Close every idle stack now (unmount, or to let go of descriptors). */
void bfs_disk_ctx_flush(struct bfs_disk_ctx *ctx);

/* The shared disk of catalog disk cd (its recipe is copied; nothing is
 * opened).  owner: a tag that keeps disks apart even when their recipes
 * are equal (the mount's vm/time/disk, for per-disk scratch), or NULL.
 * name: for messages.  A new reference; bfs_disk_put() drops it. */
int bfs_disk_get(struct bfs_disk_ctx *ctx, const struct catalog_disk *cd,
                 const char *owner, const char *name, struct bfs_disk **out);
struct bfs_disk *bfs_disk_ref(struct bfs_disk *d);
void bfs_disk_put(struct bfs_disk *d);

/* The disk's stack, opened on first use, for one more user; *changed
 * (may be NULL) says an -EIO came from a repository file that is not the
 * one the catalog recorded (rescan).  bfs_disk_release() ends the use. */
int bfs_disk_acquire(struct bfs_disk *d, struct bfs_blk **out, bool *changed);
void bfs_disk_release(struct bfs_disk *d);
/* A bfs_blk over the acquired stack that releases it when closed: for
 * filters that own what they sit on (blk_cow_open). */
int bfs_disk_borrow(struct bfs_disk *d, struct bfs_blk **out, bool *changed);

/* VM@TIME ("latest" or a backup name) and a disk by name, looked up in
 * the catalog, got and acquired: bfs_disk_blk() reads it and
 * bfs_disk_close() releases and puts it back. */
int bfs_disk_open(struct bfs_disk_ctx *ctx, const char *vm, const char *time,
                  const char *disk, struct bfs_disk **out);
void bfs_disk_close(struct bfs_disk *d);
struct bfs_blk *bfs_disk_blk(struct bfs_disk *d);   /* acquired disks only */

/* The worker pool the disk's stacks read with (common/pool.h), for a
 * consumer's own read-ahead; NULL before the first open or without one. */
struct bfs_pool *bfs_disk_pool(const struct bfs_disk *d);

const char *bfs_disk_name(const struct bfs_disk *d);
uint64_t bfs_disk_size(const struct bfs_disk *d);   /* the catalog's */
/* the recipe: layers top first */
size_t bfs_disk_layers(const struct bfs_disk *d);
const char *bfs_disk_layer_locator(const struct bfs_disk *d, size_t i);
const char *bfs_disk_layer_driver(const struct bfs_disk *d, size_t i);
/* The repository directory the locators are relative to. */
const char *bfs_disk_repo(const struct bfs_disk *d);
/* Open layer i's file alone as the recipe's driver with no backing (for
 * checks of one file's structure), identity checked like every layer. */
int bfs_disk_inspect(struct bfs_disk *d, size_t i, struct bfs_blk **out);

#endif
