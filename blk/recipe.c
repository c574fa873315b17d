/* recipe.c — the driver table and opening a recipe (see recipe.h).
 *
 * Adding a format is one driver file and one row in drivers[].  A layer
 * that records a backing file must have one below it in the recipe, and
 * one that records none must be the bottom: the recipe and the images
 * agree, or the disk does not open.
 */
#include <errno.h>
#include <string.h>

#include "blk/luks.h"
#include "blk/pbs.h"
#include "blk/rbd.h"
#include "blk/recipe.h"
#include "blk/restic-blk.h"
#include "blk/vma.h"
#include "blk/vnbd.h"
#include "common/error.h"

static const struct {
  const char *name;
  blk_open_fn open;
  /* drivers that take the layer's ctx */
  int (*open_ctx)(struct blk_io *io, const char *options, void *ctx,
                  struct bfs_blk *backing, struct bfs_blk **out);
} drivers[] = {
  { "raw", blk_raw_open, NULL },
  { "qcow2", blk_qcow2_open, NULL },
  { "vma", blk_vma_open, blk_vma_open_ctx },
  { "pbs", blk_pbs_open, blk_pbs_open_ctx },
  { "vnbd", blk_vnbd_open, blk_vnbd_open_ctx },   /* virtnbdbackup streams */
  { "restic", blk_restic_open_layer, blk_restic_open_ctx },
  { "rbd", blk_rbd_open, blk_rbd_open_ctx },   /* Ceph RBD: no file */
};

static size_t
driver_row(const char *name)
{
  size_t i;
  for (i = 0; name && i < sizeof drivers / sizeof drivers[0]; i++)
    if (!strcmp(drivers[i].name, name))
      break;
  return i;
}

blk_open_fn
blk_driver(const char *name)
{
  size_t i = driver_row(name);
  return i < sizeof drivers / sizeof drivers[0] ? drivers[i].open : NULL;
}

const char *
blk_driver_name(const char *name)
{
  for (size_t i = 0; name && i < sizeof drivers / sizeof drivers[0]; i++)
    if (!strcmp(drivers[i].name, name))
      return drivers[i].name;
  return NULL;
}

static int
check_layer(const struct bfs_blk *b, bool bottom)
{
  const struct bfs_blk_info *in = bfs_blk_info(b);

  if (in->encrypted && in->key_missing)
    return bfs_error(-ENOKEY, "%s: " BLK_LUKS_NEED_KEY, b->name);
  if (in->encrypted && (!in->encryption || strcmp(in->encryption, "luks")))
    return bfs_error(-ENOTSUP, "%s: encrypted qcow2 (legacy AES) is not "
                     "supported", b->name);
  if (in->external_data)
    return bfs_error(-ENOTSUP, "%s: qcow2 with an external data file is not "
                     "supported", b->name);
  if (bottom && in->backing_file)
    return bfs_error(-ENOENT, "%s: backing file '%s' is not in the recipe",
                     b->name, in->backing_file);
  return 0;
}

int
blk_open_recipe(const struct blk_recipe *rc, blk_opener_fn opener,
                void *opaque, struct bfs_blk **out)
{
  struct bfs_blk *below = NULL, *b;
  int r;

  *out = NULL;
  if (rc->n == 0)
    return bfs_error(-EINVAL, "empty recipe: no layers to open");
  if (rc->n > BLK_MAX_DEPTH)
    return bfs_error(-ELOOP, "%s: backing chain deeper than %d layers",
                     rc->layers[0].locator, BLK_MAX_DEPTH);
  for (size_t i = 0; i < rc->n; i++)
    if (!blk_driver(rc->layers[i].driver))
      return bfs_error(-ENOTSUP, "%s: unknown driver '%s'",
                       rc->layers[i].locator,
                       rc->layers[i].driver ? rc->layers[i].driver : "(null)");

  for (size_t i = rc->n; i-- > 0;) {
    const struct blk_layer *l = &rc->layers[i];
    struct blk_io *io;

    if ((r = opener(opaque, l, &io)) < 0) {
      bfs_blk_close(below);
      return r;
    }
    /* a layer that is no file (an RBD snapshot) gets an io over its
     * locator's own bytes: its name is the locator */
    if (!io && (r = blk_io_memory(l->locator, strlen(l->locator), l->locator,
                                  &io)) < 0) {
      bfs_blk_close(below);
      return r;
    }
    size_t row = driver_row(l->driver);
    if (rc->key && !strcmp(l->driver, "qcow2"))   /* LUKS passphrase */
      r = blk_qcow2_open_key(io, l->options, rc->key, below, &b);
    else if (drivers[row].open_ctx)
      r = drivers[row].open_ctx(io, l->options, rc->ctx, below, &b);
    else
      r = drivers[row].open(io, l->options, below, &b);
    below = NULL;                   /* owned by the driver now */
    if (r == 0 && (r = check_layer(b, i == rc->n - 1)) < 0)
      bfs_blk_close(b);
    if (r < 0)
      return r;
    below = b;
  }
  if (rc->no_cache) {
    *out = below;
    return 0;
  }
  return blk_cache_open(below, &rc->cache, out);
}
