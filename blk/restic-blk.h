/* restic-blk.h — a file of a restic snapshot as a struct bfs_blk.
 *
 * Size is the file's size (no rounding); pread reads through the restic
 * reader; block_status reports one content blob at a time as DATA (not
 * plain bytes of a file: fd -1, the blob is the decode unit) or ZERO for
 * blobs whose id is the SHA-256 of zeros.  restic's chunker stores no
 * holes, so there is never a HOLE.
 */
#ifndef BFS_RESTIC_BLK_H
#define BFS_RESTIC_BLK_H

#include "blk/blk.h"
#include "blk/restic.h"

/* f passes to the blk (also on failure); name is copied, for messages. */
int blk_restic_open(struct restic_file *f, const char *name,
                    struct bfs_blk **out);

/* The "restic" recipe driver (restic-layer.c): io is the snapshot file
 * <repo-dir>/snapshots/<id>, options "path=/file/in/snapshot", ctx the
 * open struct restic_repo; without ctx it refuses. */
int blk_restic_open_ctx(struct blk_io *io, const char *options, void *ctx,
                        struct bfs_blk *backing, struct bfs_blk **out);
int blk_restic_open_layer(struct blk_io *io, const char *options,
                          struct bfs_blk *backing, struct bfs_blk **out);

#endif
