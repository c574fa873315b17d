/* source.h — shared contexts of drivers that read more than one file per
 * layer (a PBS chunk store, a restic repository, a Ceph cluster
 * connection, a cached VMA index): one row per driver in source.c.
 *
 * The disk service (disk.c) opens a recipe layer of such a driver with its
 * source's context as the recipe's ctx (blk/recipe.h): the context is
 * opened once, on first use, keyed by (driver, key(layer)), and shared by
 * every disk of the service's context until bfs_disk_ctx_free().  A row
 * with no_file set names locators that are no file of the repository
 * (an RBD image@snapshot): such a layer's driver gets no io (NULL) and no
 * identity check is made by the disk service (the driver checks what it
 * opens itself).
 *
 * Secrets and settings (passwords, key files, ceph.conf) come from the
 * service's source options (bfs_disk_opts.source_options, the mount's -o
 * string form "name=value,..."): bfs_disk_source_option() reads one.
 */
#ifndef BFS_DISK_SOURCE_H
#define BFS_DISK_SOURCE_H

#include <stdbool.h>

#include "blk/recipe.h"

struct bfs_disk_ctx;

struct bfs_disk_source {
  const char *driver;               /* the recipe driver it serves */
  bool no_file;
  /* the shared context a layer needs (malloc'd; NULL function: one per
   * repository, key ""): 0 or -errno */
  int (*key)(const struct blk_layer *layer, char **key);
  /* open the context for key: 0 or -errno with the error set */
  int (*open)(struct bfs_disk_ctx *ctx, const char *key, void **out);
  void (*close)(void *src);
};

/* the row serving driver, or NULL */
const struct bfs_disk_source *bfs_disk_source_find(const char *driver);

/* what a source's open may ask of the disk service's context */
int bfs_disk_ctx_repo_fd(const struct bfs_disk_ctx *ctx);
const char *bfs_disk_ctx_repo(const struct bfs_disk_ctx *ctx);
/* the catalog's SQLite file (its index cache lives next to it), or NULL */
const char *bfs_disk_ctx_catalog_path(struct bfs_disk_ctx *ctx);
/* one name=value of the source options: 0 and a malloc'd *value, or
 * -ENOENT when it is not given */
int bfs_disk_source_option(const struct bfs_disk_ctx *ctx, const char *name,
                           char **value);

#endif
