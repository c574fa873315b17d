/* recipe.h — a disk as a recipe: the exact ordered list of layers to open.
 *
 * Layers are listed TOP FIRST (layers[0] is the image a point in time
 * names, layers[n-1] its base), the same order as backup.json's `chain` and
 * as the layer numbers of block status.  Each layer is a driver name (a row
 * of the driver table: "raw", "qcow2"), a locator (what the opener callback
 * understands: a repository-relative path, a test buffer's name) and
 * driver options.  blk_open_recipe() opens exactly that list, bottom up,
 * each layer the backing of the one above, and puts the caching filter on
 * top.  It resolves nothing itself: whoever wrote the recipe (the catalog's
 * scan, the debug command) resolved and checked the chain once.
 */
#ifndef BFS_BLK_RECIPE_H
#define BFS_BLK_RECIPE_H

#include <stdbool.h>
#include <stddef.h>

#include "blk/blk.h"

struct blk_layer {
  const char *driver;
  const char *locator;
  const char *options;           /* NULL or "" for none */
};

struct blk_recipe {
  size_t n;
  const struct blk_layer *layers;      /* top first */
  struct blk_cache_opts cache;
  bool no_cache;                       /* leave the caching filter off */
  /* in-process context for the drivers that take one, never stored: pbs
   * its struct pbs_store, vma NULL or a struct vma_index (blk/pbs.h,
   * blk/vma.h); those recipes are one layer */
  void *ctx;
  /* LUKS passphrase for encrypted qcow2 layers (blk/luks.h), or NULL:
   * only read while opening, never copied into a layer's options */
  const struct blk_key *key;
};

/* Turn a layer's locator into an open io (blk_io_fd over a file opened
 * beneath the repository, or blk_io_memory): 0, or -errno with the error
 * set. */
typedef int (*blk_opener_fn)(void *opaque, const struct blk_layer *layer,
                             struct blk_io **io_out);

/* 0 and the stack in *out, or -errno naming the layer and the reason:
 * empty or deeper than BLK_MAX_DEPTH, an unknown driver, a layer that
 * does not open, an encrypted layer without its key (-ENOKEY) or with
 * legacy AES, a layer with an external data file,
 * a layer whose recorded backing disagrees with the recipe. */
int blk_open_recipe(const struct blk_recipe *r, blk_opener_fn opener,
                    void *opaque, struct bfs_blk **out);

#endif
