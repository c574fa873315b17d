/* pathchain.h — a recipe from an image path, for `backupfs image` only.
 *
 * The debug command is handed a path, not a catalog entry, so it resolves
 * the chain itself, once: the top image's format is probed (qcow2 magic,
 * else raw); each qcow2 layer's recorded backing name is taken relative to
 * that layer's directory (absolute names as they are) and its recorded
 * backing format is honoured (a raw layer is never probed).  Loops (by
 * device and inode), depth over BLK_MAX_DEPTH, and backing files outside
 * ROOT are refused; ROOT is the directory above the image's own directory
 * (a VM's backups) unless given, and `allow_outside` lifts the rule.
 * Every file is opened once, here; the opener hands out duplicates of
 * those descriptors, so what was checked is what is read.
 */
#ifndef BFS_BLK_PATHCHAIN_H
#define BFS_BLK_PATHCHAIN_H

#include <stdbool.h>

#include "blk/recipe.h"

struct blk_path_chain {
  size_t n;
  struct blk_layer layers[BLK_MAX_DEPTH];
  char *paths[BLK_MAX_DEPTH];
  int fds[BLK_MAX_DEPTH];
  char *root;                    /* realpath of the confinement root */
};

/* Resolve top's chain into pc (always free it with blk_path_chain_free,
 * also on failure: pc->n layers were resolved before the error). */
int blk_path_chain_resolve(const char *top, const char *root,
                           bool allow_outside, struct blk_path_chain *pc);
/* The opener for blk_open_recipe: opaque is the blk_path_chain. */
int blk_path_opener(void *opaque, const struct blk_layer *layer,
                          struct blk_io **out);
/* Open layer i alone (no backing), for showing its header. */
int blk_path_chain_inspect(struct blk_path_chain *pc, size_t i,
                           struct bfs_blk **out);
void blk_path_chain_free(struct blk_path_chain *pc);

#endif
