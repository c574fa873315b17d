/* source-repo.c — restore sources read straight from a repository.
 *
 * VM@TIME is looked up in the catalog (updated first, which is incremental
 * and cheap), its disk's chain opened with image/ using the catalog's
 * backing resolution, and read by the chain's merged extent map.  For
 * qemu-img the chain is spelled as a json: filename naming every layer's
 * resolved path, so qemu never has to follow a dangling backing name.
 * Every layer is opened beneath the repository's descriptor (no symlink
 * followed) and must be the file the catalog recorded (bfs_chain_ids_check):
 * a backup changed since the scan is refused, never restored.
 * restore_blk_repo gives the same chain as a blk/ stack, for callers that
 * need block status with layer and file offset (`backupfs diff --blocks`).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk/recipe.h"
#include "catalog/catalog.h"
#include "common/beneath.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "image/image.h"
#include "restore/restore-int.h"

struct repo_src {
  catalog_t *cat;
  chain_t *chain;
  int repo_fd;
};

int
restore_open_catalog(const char *repo, const char *catalog_path,
                     catalog_t **out)
{
  struct catalog_opts o = { .catalog_path = catalog_path };
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

int
restore_find_backup(struct catalog_backup *b, size_t n, const char *vm,
                    const char *time)
{
  if (n == 0)
    return bfs_error(-ENOENT, "%s: no backups of this VM in the repository",
                     vm);
  if (!strcmp(time, "latest"))
    return n - 1;
  for (size_t i = 0; i < n; i++)
    if (!strcmp(b[i].name, time))
      return i;
  return bfs_error(-ENOENT, "%s@%s: no such point in time (%s .. %s)", vm,
                   time, b[0].name, b[n - 1].name);
}

static int
r_extent(struct rsrc *s, uint64_t off, uint64_t *len, bool *data)
{
  struct repo_src *p = s->priv;
  struct chain_extent e;
  int r = chain_extent_at(p->chain, off, &e);

  if (r < 0)
    return r;
  if (e.off > off || e.off + e.len <= off)
    return bfs_error(-EIO, "%s: extent map does not cover %llu", s->name,
                     (unsigned long long) off);
  *data = e.kind == CHAIN_EXTENT_DATA;
  *len = e.off + e.len - off;
  if (*len > s->size - off)
    *len = s->size - off;
  return 0;
}

static int
r_pread(struct rsrc *s, void *buf, size_t len, uint64_t off)
{
  struct repo_src *p = s->priv;
  return chain_pread(p->chain, buf, len, off);
}

/* {"driver":fmt,"file":{"driver":"file","filename":path},"backing":...} */
static int
r_qemu_spec(struct rsrc *s, char **spec, const char **fmt)
{
  struct repo_src *p = s->priv;
  json_object *below = NULL;
  size_t depth = chain_depth(p->chain);

  for (size_t i = depth; i-- > 0;) {
    const img_t *img = chain_layer(p->chain, i);
    bool qcow2 = img_get_info(img)->format == IMG_FORMAT_QCOW2;
    json_object *node = json_object_new_object();
    json_object *file = json_object_new_object();

    json_object_object_add(file, "driver", json_object_new_string("file"));
    json_object_object_add(file, "filename",
                           json_object_new_string(chain_layer_path(p->chain, i)));
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

  if (p->chain)
    chain_close(p->chain);
  if (p->cat)
    catalog_close(p->cat);
  if (p->repo_fd >= 0)
    close(p->repo_fd);
  free(p);
  free(s->name);
}

static const struct rsrc_ops repo_ops = { r_extent, r_pread, r_qemu_spec, r_close };

int
restore_src_repo(const char *repo, const char *catalog_path,
                 const char *vmtime, const char *disk, struct rsrc **out)
{
  CLEANUP_FREE char *vm = NULL, *time = NULL, *top = NULL;
  struct catalog_backup *b = NULL;
  struct catalog_disk *d = NULL;
  struct repo_src *p;
  struct rsrc *s;
  size_t n = 0;
  int r, i;

  r = restore_split_vmtime(vmtime, &vm, &time);
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

  r = restore_open_catalog(repo, catalog_path, &p->cat);
  if (r < 0)
    goto fail;
  r = catalog_backups(p->cat, vm, &b, &n);
  if (r < 0)
    goto fail;
  r = i = restore_find_backup(b, n, vm, time);
  if (r < 0)
    goto fail;
  for (size_t k = 0; k < b[i].ndisks; k++)
    if (!strcmp(b[i].disks[k].name, disk))
      d = &b[i].disks[k];
  if (!d) {
    r = bfs_error(-ENOENT, "%s@%s: no disk named '%s'", vm, b[i].name, disk);
    goto fail;
  }
  if (asprintf(&s->name, "%s@%s/%s", vm, b[i].name, disk) < 0 ||
      asprintf(&top, "%s/%s", catalog_repo(p->cat), d->image) < 0) {
    r = bfs_error(-ENOMEM, "out of memory");
    goto fail;
  }
  if ((r = p->repo_fd = bfs_dir_open(catalog_repo(p->cat))) < 0)
    goto fail;
  struct bfs_chain_ids ids = { d->chain_len, d->chain, d->chain_id };
  struct chain_opts co = { .resolve = catalog_resolve_backing,
                           .resolve_opaque = p->cat,
                           .root = catalog_repo(p->cat),
                           .root_fd = p->repo_fd,
                           .check = bfs_chain_ids_check,
                           .check_opaque = &ids,
                           .format = catalog_image_format };
  r = chain_open(top, &co, &p->chain);
  if (r < 0) {
    bfs_error_prefix(r, "%s: ", s->name);
    goto fail;
  }
  s->size = chain_size(p->chain);
  catalog_backups_free(b, n);
  *out = s;
  return 0;

fail:
  if (b)
    catalog_backups_free(b, n);
  restore_src_close(s);
  return r;
}

/* ---- the same point in time as a block-layer stack ---- */

struct blk_src {
  int repo_fd;
  const char *root;
  struct bfs_chain_ids ids;
  const struct blk_layer *layers;
};

/* each layer opened beneath the repository and checked again against the
 * catalog: what was resolved is what is read */
static int
blk_src_opener(void *opaque, const struct blk_layer *l, struct blk_io **out)
{
  struct blk_src *x = opaque;
  struct stat st;
  int fd = bfs_open_beneath(x->repo_fd, x->root, l->locator), r;

  if (fd < 0)
    return fd;
  if (fstat(fd, &st) < 0)
    r = bfs_error(-errno, "%s/%s: %m", x->root, l->locator);
  else
    r = bfs_chain_ids_check(&x->ids, l - x->layers, l->locator, &st);
  if (r < 0) {
    close(fd);
    return r;
  }
  return blk_io_fd(fd, l->locator, out);
}

int
restore_blk_repo(const char *repo, const char *catalog_path,
                 const char *vmtime, const char *disk, struct bfs_blk **out)
{
  struct rsrc *s;
  struct blk_layer layers[BLK_MAX_DEPTH];
  int r = restore_src_repo(repo, catalog_path, vmtime, disk, &s);

  *out = NULL;
  if (r < 0)
    return r;
  /* the chain restore_src_repo resolved and checked names the layers and
   * their formats; the catalog's record checks them again as blk opens */
  struct repo_src *p = s->priv;
  struct catalog_backup *b = NULL;
  size_t n = 0, depth = chain_depth(p->chain);
  CLEANUP_FREE char *vm = NULL, *time = NULL;
  const char *root = catalog_repo(p->cat);
  if ((r = restore_split_vmtime(vmtime, &vm, &time)) < 0 ||
      (r = catalog_backups(p->cat, vm, &b, &n)) < 0 ||
      (r = restore_find_backup(b, n, vm, time)) < 0)
    goto out;
  struct catalog_disk *d = NULL;
  for (size_t k = 0; k < b[r].ndisks; k++)
    if (!strcmp(b[r].disks[k].name, disk))
      d = &b[r].disks[k];
  if (!d || depth > BLK_MAX_DEPTH || depth != d->chain_len) {
    r = bfs_error(-EIO, "%s: changed since the catalog was built", s->name);
    goto out;
  }
  for (size_t i = 0; i < depth; i++) {
    const char *rel = bfs_path_beneath(root, chain_layer_path(p->chain, i));
    if (!rel) {
      r = bfs_error(-EXDEV, "%s: %s is outside the repository", s->name,
                    chain_layer_path(p->chain, i));
      goto out;
    }
    layers[i] = (struct blk_layer){
      .driver = img_get_info(chain_layer(p->chain, i))->format ==
                IMG_FORMAT_QCOW2 ? "qcow2" : "raw",
      .locator = rel };
  }
  struct blk_src x = { p->repo_fd, root, { d->chain_len, d->chain, d->chain_id },
                       layers };
  struct blk_recipe rc = { .n = depth, .layers = layers };
  r = blk_open_recipe(&rc, blk_src_opener, &x, out);
  if (r < 0)
    bfs_error_prefix(r, "%s: ", s->name);
out:
  if (b)
    catalog_backups_free(b, n);
  restore_src_close(s);
  return r < 0 ? r : 0;
}
