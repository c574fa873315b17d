/* restic-layer.c — the "restic" recipe driver: one file of one snapshot.
 *
 * A layer's locator is the snapshot's file in the repository,
 * <repo-dir>/snapshots/<id> (so the disk service checks its identity like
 * any image's), its options "path=<absolute path in the snapshot>" (the
 * rest of the string: a path may hold commas).  The recipe's ctx is the
 * open struct restic_repo of <repo-dir> (disk/source.c opens it once per
 * repository with the restic_password_file source option).  The snapshot
 * file the disk service opened is not read again: the repository reads
 * (and authenticates) the snapshot itself.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "blk/restic-blk.h"
#include "blk/restic.h"
#include "common/error.h"

int
blk_restic_open_ctx(struct blk_io *io, const char *options, void *ctx,
                    struct bfs_blk *backing, struct bfs_blk **out)
{
  char name[4096];
  struct restic_snapshot snap;
  struct restic_file *f;
  int r;

  *out = NULL;
  snprintf(name, sizeof name, "%s", io ? blk_io_name(io) : "restic layer");
  blk_io_close(io);
  const char *id = strrchr(name, '/');
  id = id ? id + 1 : name;
  if (backing) {
    bfs_blk_close(backing);
    return bfs_error(-EINVAL, "%s: a file in a restic snapshot has no "
                     "backing file", name);
  }
  if (!ctx)
    return bfs_error(-EINVAL, "%s: the restic driver needs its repository "
                     "(the recipe's ctx)", name);
  if (!options || strncmp(options, "path=", 5) || options[5] != '/')
    return bfs_error(-EINVAL, "%s: restic driver: options must be "
                     "path=/<file in the snapshot>, not '%s'", name,
                     options ? options : "");
  if ((r = restic_snapshot_get(ctx, id, &snap)) < 0)
    return r;
  r = restic_file_open_path(ctx, &snap, options + 5, &f);
  restic_snapshot_clear(&snap);
  if (r < 0)
    return r;
  char label[4200];
  snprintf(label, sizeof label, "%s:%s", name, options + 5);
  return blk_restic_open(f, label, out);
}

int
blk_restic_open_layer(struct blk_io *io, const char *options,
                      struct bfs_blk *backing, struct bfs_blk **out)
{
  return blk_restic_open_ctx(io, options, NULL, backing, out);
}
