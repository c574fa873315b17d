/* source-repo.c — restore sources read straight from a repository.
 *
 * VM@TIME is looked up in the catalog (updated first, which is incremental
 * and cheap) and its disk opened by the disk service (disk/disk.h): the
 * recipe the scan resolved, every layer opened beneath the repository's
 * descriptor and checked to be the file the catalog recorded (a backup
 * changed since the scan is refused, never restored), read through the
 * caching filter.  For qemu-img the recipe is spelled as a json: filename
 * naming every layer's path and driver, so qemu never has to follow a
 * dangling backing name; an RBD snapshot (no file) is spelled as qemu's
 * rbd driver with the ceph_conf/ceph_id source options.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk/rbd.h"
#include "blk/recipe.h"
#include "catalog/catalog.h"
#include "common/beneath.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "disk/disk.h"
#include "disk/source.h"
#include "restore/restore-int.h"

struct repo_src {
  catalog_t *cat;
  int repo_fd;
  struct bfs_disk_ctx *ctx;
  struct bfs_disk *disk;
  struct bfs_blk *blk;
};

int
restore_open_catalog(const char *repo, const char *const *more, size_t nmore,
                     const char *catalog_path, bool luks_key, catalog_t **out)
{
  struct catalog_opts o = { .catalog_path = catalog_path,
                            .extra_repos = more, .nextra_repos = nmore,
                            .luks_key = luks_key };
  struct catalog_scan_stats st;
  catalog_t *cat;
  int r;

  r = catalog_open(repo, &o, &cat);
  if (r < 0)
    return r;
  r = catalog_scan(cat, &st);
  if (r < 0) {
    catalog_close(cat);
    return r;
  }
  *out = cat;
  return 0;
}

static int
r_extent(struct rsrc *s, uint64_t off, uint64_t *len, bool *data)
{
  struct repo_src *p = s->priv;
  struct bfs_blk_status st;
  int r = bfs_blk_block_status(p->blk, off, s->size - off, &st);

  if (r < 0)
    return r;
  *data = st.kind == BFS_BLK_DATA;
  *len = st.len;
  return 0;
}

static int
r_pread(struct rsrc *s, void *buf, size_t len, uint64_t off)
{
  struct repo_src *p = s->priv;
  return bfs_blk_pread(p->blk, buf, len, off);
}

/* {"driver":"raw","file":{"driver":"rbd","pool":..,"image":..,
 * "snapshot":..}} for one RBD layer (the recipe's only one) */
static int
rbd_spec(struct repo_src *p, const char *loc, char **spec)
{
  CLEANUP_FREE char *pool = NULL, *ns = NULL, *image = NULL, *snap = NULL;
  CLEANUP_FREE char *conf = NULL, *id = NULL;
  int r = rbd_locator_parse(loc, &pool, &ns, &image, &snap);
  if (r < 0)
    return r;
  bfs_disk_source_option(p->ctx, "ceph_conf", &conf);
  bfs_disk_source_option(p->ctx, "ceph_id", &id);
  json_object *file = json_object_new_object(), *node = json_object_new_object();
  json_object_object_add(file, "driver", json_object_new_string("rbd"));
  json_object_object_add(file, "pool", json_object_new_string(pool));
  if (ns[0])
    json_object_object_add(file, "namespace", json_object_new_string(ns));
  json_object_object_add(file, "image", json_object_new_string(image));
  json_object_object_add(file, "snapshot", json_object_new_string(snap));
  if (conf)
    json_object_object_add(file, "conf", json_object_new_string(conf));
  if (id)
    json_object_object_add(file, "user", json_object_new_string(id));
  json_object_object_add(node, "driver", json_object_new_string("raw"));
  json_object_object_add(node, "file", file);
  r = asprintf(spec, "json:%s",
               json_object_to_json_string_ext(node, JSON_C_TO_STRING_PLAIN));
  json_object_put(node);
  return r < 0 ? bfs_error(-ENOMEM, "out of memory") : 0;
}

/* {"driver":fmt,"file":{"driver":"file","filename":path},"backing":...} */
static int
r_qemu_spec(struct rsrc *s, char **spec, const char **fmt)
{
  struct repo_src *p = s->priv;
  json_object *below = NULL;
  size_t depth = bfs_disk_layers(p->disk);

  /* qemu-img would need the passphrase on its command line or in a file
   * of ours: encrypted layers are read by backupfs only */
  for (size_t i = 0; i < depth; i++) {
    struct bfs_blk *l = bfs_blk_layer(p->blk, i);
    if (l && bfs_blk_info(l)->encrypted)
      return bfs_error(-ENOTSUP, "%s: encrypted (LUKS): restore it with "
                       "--format raw (the qcow2 form is written by "
                       "qemu-img, which never gets the key)", l->name);
  }
  if (depth == 1 && !strcmp(bfs_disk_layer_driver(p->disk, 0), "rbd")) {
    *fmt = NULL;
    return rbd_spec(p, bfs_disk_layer_locator(p->disk, 0), spec);
  }

  for (size_t i = depth; i-- > 0;) {
    bool qcow2 = !strcmp(bfs_disk_layer_driver(p->disk, i), "qcow2");
    json_object *node = json_object_new_object();
    json_object *file = json_object_new_object();
    CLEANUP_FREE char *path = NULL;

    if (asprintf(&path, "%s/%s", bfs_disk_repo(p->disk),
                 bfs_disk_layer_locator(p->disk, i)) < 0) {
      json_object_put(below);
      json_object_put(node);
      json_object_put(file);
      return bfs_error(-ENOMEM, "out of memory");
    }
    json_object_object_add(file, "driver", json_object_new_string("file"));
    json_object_object_add(file, "filename", json_object_new_string(path));
    json_object_object_add(node, "driver",
                           json_object_new_string(qcow2 ? "qcow2" : "raw"));
    json_object_object_add(node, "file", file);
    if (qcow2)
      json_object_object_add(node, "backing", below);
    else if (below) {
      json_object_put(below);
      json_object_put(node);
      return bfs_error(-ENOTSUP, "%s: a raw layer over another layer",
                       s->name);
    }
    below = node;
  }
  if (asprintf(spec, "json:%s",
               json_object_to_json_string_ext(below, JSON_C_TO_STRING_PLAIN)) < 0) {
    json_object_put(below);
    return bfs_error(-ENOMEM, "out of memory");
  }
  json_object_put(below);
  *fmt = NULL;                    /* the json: spec names its drivers */
  return 0;
}

static void
r_close(struct rsrc *s)
{
  struct repo_src *p = s->priv;

  bfs_disk_close(p->disk);
  bfs_disk_ctx_free(p->ctx);
  if (p->cat)
    catalog_close(p->cat);
  if (p->repo_fd >= 0)
    close(p->repo_fd);
  free(p);
  free(s->name);
}

static void
r_prefetch(struct rsrc *s, uint64_t off, uint64_t len)
{
  bfs_blk_prefetch(((struct repo_src *)s->priv)->blk, off, len);
}

static const struct rsrc_ops repo_ops = {
  r_extent, r_pread, r_qemu_spec, r_close, r_prefetch,
};

int
restore_src_repo(const char *repo, const char *const *more, size_t nmore,
                 const char *catalog_path, const struct blk_key *key,
                 const char *vmtime, const char *disk, struct rsrc **out)
{
  CLEANUP_FREE char *vm = NULL, *time = NULL;
  struct repo_src *p;
  struct rsrc *s;
  int r;

  r = catalog_parse_vmtime(vmtime, &vm, &time);
  if (r < 0)
    return r;
  s = calloc(1, sizeof *s);
  p = calloc(1, sizeof *p);
  if (!s || !p) {
    free(s);
    free(p);
    return bfs_error(-ENOMEM, "out of memory");
  }
  s->ops = &repo_ops;
  s->priv = p;
  p->repo_fd = -1;

  r = restore_open_catalog(repo, more, nmore, catalog_path, key != NULL,
                           &p->cat);
  if (r < 0)
    goto fail;
  /* a store that is no directory (rbd:POOL) has no fd */
  if (!catalog_repo_not_dir(catalog_repo(p->cat)) &&
      (r = p->repo_fd = bfs_dir_open(catalog_repo(p->cat))) < 0)
    goto fail;
  if ((r = bfs_disk_ctx_new(p->cat, p->repo_fd,
                            &(struct bfs_disk_opts){ .key = key },
                            &p->ctx)) < 0 ||
      (r = bfs_disk_open(p->ctx, vm, time, disk, &p->disk)) < 0)
    goto fail;
  p->blk = bfs_disk_blk(p->disk);
  if (!(s->name = strdup(bfs_disk_name(p->disk)))) {
    r = bfs_error(-ENOMEM, "out of memory");
    goto fail;
  }
  s->size = p->blk->size;
  *out = s;
  return 0;

fail:
  restore_src_close(s);
  return r;
}

/* ---- the same point in time as its block-layer stack ---- */

int
restore_blk_repo(const char *repo, const char *catalog_path,
                 const struct blk_key *key, const char *vmtime, const char *disk, struct rsrc **src,
                 struct bfs_blk **out)
{
  int r = restore_src_repo(repo, NULL, 0, catalog_path, key, vmtime, disk,
                           src);
  if (r < 0)
    return r;
  *out = ((struct repo_src *)(*src)->priv)->blk;
  return 0;
}
