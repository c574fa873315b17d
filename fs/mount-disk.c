/* mount-disk.c — disks/<disk>.img: lazily opened, shared backing chains.
 *
 * A struct disk is created per disk when the tree is built (cheap: a path
 * and two sizes from the catalog).  The chain is opened on the first open()
 * of the file, under the disk's own mutex, and then shared by every open
 * handle and every reader thread until the disk is dropped from the tree and
 * the last handle closes.  A chain that cannot be opened is not cached: the
 * open fails with EIO (the reason goes to the log once) and a later open
 * tries again, so a repaired repository heals without a remount.
 */
#include "fs/mount.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"

struct disk *
disk_new(const char *path, uint64_t size, uint64_t allocated)
{
  struct disk *d = calloc(1, sizeof *d);
  if (!d)
    return NULL;
  d->path = strdup(path);
  if (!d->path) {
    free(d);
    return NULL;
  }
  atomic_init(&d->refs, 1);
  d->scratch_fd = -1;
  pthread_rwlock_init(&d->wlock, NULL);
  d->size = size;
  d->allocated = allocated;
  pthread_mutex_init(&d->lock, NULL);
  return d;
}

struct disk *
disk_ref(struct disk *d)
{
  atomic_fetch_add(&d->refs, 1);
  return d;
}

void
disk_unref(struct disk *d)
{
  if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
    return;
  if (d->chain)
    chain_close(d->chain);
  if (d->scratch_fd >= 0)
    close(d->scratch_fd);
  free(d->scratch_path);
  pthread_rwlock_destroy(&d->wlock);
  pthread_mutex_destroy(&d->lock);
  free(d->path);
  free(d);
}

int
disk_chain(struct disk *d, chain_t **out)
{
  int r = 0;

  pthread_mutex_lock(&d->lock);
  if (!d->chain) {
    struct chain_opts opts = {
      .resolve = catalog_resolve_backing,
      .resolve_opaque = mnt.cat,
    };
    chain_t *c;
    bfs_clear_error();
    r = chain_open(d->path, &opts, &c);
    if (r < 0) {
      if (!d->warned)
        bfs_log(BFS_LOG_WARN, "%s: cannot open chain: %s", d->path,
                bfs_last_error());
      d->warned = true;
      r = -EIO;
    }
    else {
      d->chain = c;
      if (d->size != chain_size(c))
        bfs_log(BFS_LOG_WARN, "%s: virtual size %" PRIu64 " differs from the "
                "catalog's %" PRIu64, d->path, chain_size(c), d->size);
    }
  }
  *out = d->chain;
  pthread_mutex_unlock(&d->lock);
  return r;
}
