/* vma-int.h — what vma-blk.c (a device as a blk) and vma-source.c (the
 * shared, replaceable copy of an archive) need of each other.  Not for
 * other modules: vma.h is the interface.
 */
#ifndef BFS_BLK_VMA_INT_H
#define BFS_BLK_VMA_INT_H

#include "blk/vma.h"

/* One state of an archive file: its index and, for a compressed one, the
 * unpacked copy.  Reference-counted: the source holds one while it is
 * current, each open device one. */
struct vma_gen;
void vma_gen_unref(struct vma_gen *g);
/* true once the source replaced it (the file changed): its copy is gone */
bool vma_gen_stale(const struct vma_gen *g);

/* blk_vma_open_index that takes over a reference to gen (NULL: none),
 * given back when the blk closes or the open fails. */
int vma_blk_open_gen(struct blk_io *io, const char *options,
                     const struct vma_index *x, struct vma_gen *gen,
                     struct bfs_blk **out);

#endif
