/* mount-disk.c — disks/<disk>.img: the mount's side of the disk service.
 *
 * A struct disk is created per disk when the tree is built (cheap: the
 * catalog's recipe handed to bfs_disk_get(), which shares it with any other
 * user of the same recipe).  The block stack is opened by the disk service
 * on the first open() of the file and shared by every handle and reader
 * thread; stacks no handle uses go on the service's idle LRU (IDLE_CHAINS
 * open at most).  A stack that cannot be opened is not kept: the open
 * fails with EIO (the reason goes to the log once) and a later open tries
 * again, so a repaired repository heals without a remount.
 *
 * Every layer is opened beneath the repository's descriptor (no symlink
 * followed) and must be the file the catalog recorded for it (device,
 * inode, size, mtime): one that is not is a changed backup, so the open
 * fails with EIO, the reason is logged and a rescan is asked for; its bytes
 * are never served.
 *
 * -o writable: the disk's copy-on-write filter (blk_cow_open over a stack
 * borrowed from the service, writes in the scratch file) is made under
 * d->lock on the first open for writing, or on any open when the scratch
 * file already exists; from then on d->cow never changes while the disk
 * lives, and every read of the disk goes through it.
 *
 * Read-ahead (disk-read.c detects a sequential stream per handle): the window
 * ahead is prefetched on the disk service's worker pool (host page cache
 * of every layer's file, through the stack's prefetch), the task holding
 * a reference and a use of the stack until it ran or was dropped.
 */
#include "fs/mount.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk/luks.h"
#include "common/error.h"
#include "common/pool.h"

#define RA_TASK (2u << 20)                 /* bytes per read-ahead task */
#define IDLE_CHAINS 48                     /* descriptors: one per layer */

int
disks_init(struct mnt *m)
{
  struct bfs_disk_opts o = { .idle_max = IDLE_CHAINS, .key = m->key };
  return bfs_disk_ctx_new(m->cat, m->repo_fd, &o, &m->disks);
}

void
disks_shutdown(struct mnt *m)
{
  bfs_disk_ctx_free(m->disks);
  m->disks = NULL;
  blk_key_free(m->key);                /* wiped */
  m->key = NULL;
}

struct disk *
disk_new(struct mnt *m, const char *path, const struct catalog_disk *cd,
         const char *owner)
{
  struct disk *d = calloc(1, sizeof *d);
  if (!d)
    return NULL;
  d->path = strdup(path);
  d->ids = calloc(cd->chain_len + 1, sizeof *d->ids);
  if (!d->path || !d->ids ||
      bfs_disk_get(m->disks, cd, m->writable ? owner : NULL, path,
                   &d->sd) < 0) {
    free(d->ids);
    free(d->path);
    free(d);
    return NULL;
  }
  d->nids = cd->chain_len;
  for (size_t i = 0; cd->chain_id && i < cd->chain_len; i++)
    d->ids[i] = cd->chain_id[i];
  atomic_init(&d->refs, 1);
  d->size = cd->virtual_size;
  d->allocated = cd->allocated;
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
  bfs_blk_close(d->cow);                    /* releases its borrowed stack */
  bfs_disk_put(d->sd);
  free(d->scratch_path);
  pthread_mutex_destroy(&d->lock);
  free(d->ids);
  free(d->path);
  free(d);
}

static void
open_failed(struct mnt *m, struct disk *d, bool changed)
{
  if (changed) {
    bfs_log(BFS_LOG_WARN, "%s: refused, the backup changed since the "
            "catalog was built: %s; rescanning", d->path, bfs_last_error());
    tree_request_rescan(m);
  }
  else {
    if (!d->warned)
      bfs_log(BFS_LOG_WARN, "%s: cannot open chain: %s", d->path,
              bfs_last_error());
    d->warned = true;
  }
}

/* -o writable: the copy-on-write filter over the disk (d->lock held) */
static int
make_cow(struct mnt *m, struct disk *d, bool create)
{
  struct bfs_blk *below, *cow;
  bool changed = false;
  int fd = scratch_open(d, create), r;

  if (fd < 0)
    return create ? -EIO : 0;               /* none yet: reads the backup */
  if ((r = bfs_disk_borrow(d->sd, &below, &changed)) < 0) {
    close(fd);
    open_failed(m, d, changed);
    return -EIO;
  }
  if ((r = blk_cow_open(below, fd, d->scratch_path, &cow)) < 0) {
    bfs_log(BFS_LOG_WARN, "%s: %s", d->scratch_path, bfs_last_error());
    return -EIO;
  }
  __atomic_store_n(&d->cow, cow, __ATOMIC_RELEASE);
  return 0;
}

int
disk_open_blk(struct mnt *m, struct disk *d, bool for_write,
              struct bfs_blk **out)
{
  bool changed = false;
  int r;

  *out = NULL;
  bfs_clear_error();
  if ((r = bfs_disk_acquire(d->sd, out, &changed)) < 0) {
    open_failed(m, d, changed);
    return -EIO;
  }
  if (m->writable && d->scratch_path) {
    pthread_mutex_lock(&d->lock);
    r = d->cow ? 0 : make_cow(m, d, for_write);
    pthread_mutex_unlock(&d->lock);
    if (r < 0) {
      bfs_disk_release(d->sd);
      *out = NULL;
      return r;
    }
  }
  return 0;
}

struct bfs_blk *
disk_target(struct disk *d, struct bfs_blk *base)
{
  struct bfs_blk *cow = __atomic_load_n(&d->cow, __ATOMIC_ACQUIRE);
  return cow ? cow : base;
}

void
disk_release(struct disk *d)
{
  bfs_disk_release(d->sd);
}

/* ---- read-ahead of sequential streams, on the disk service's pool ---- */

struct ra_task {
  struct disk *d;                   /* a reference, and a user of blk */
  struct bfs_blk *blk;
  uint64_t off, len;
};

static void
ra_drop(void *arg)
{
  struct ra_task *t = arg;
  disk_release(t->d);
  disk_unref(t->d);
  free(t);
}

static void
ra_run(void *arg)
{
  struct ra_task *t = arg;
  bfs_blk_prefetch(t->blk, t->off, t->len);
  ra_drop(t);
}

/* In RA_TASK pieces: a worker is never long inside one prefetch (on a
 * busy disk posix_fadvise waits for request slots), so an unmount never
 * waits long for read-ahead; what is still queued is dropped. */
void
disk_readahead(struct disk *d, uint64_t off, uint64_t len)
{
  struct bfs_pool *pool = bfs_disk_pool(d->sd);

  for (uint64_t end = off + len; pool && off < end; off += RA_TASK) {
    struct ra_task *t = malloc(sizeof *t);
    if (!t)
      return;
    if (bfs_disk_acquire(d->sd, &t->blk, NULL) < 0) {
      free(t);
      return;
    }
    t->d = disk_ref(d);
    t->off = off;
    t->len = end - off < RA_TASK ? end - off : RA_TASK;
    if (bfs_pool_async(pool, ra_run, ra_drop, t) < 0)
      return;                               /* full: dropped, no harm */
  }
}

void
disk_idle_flush(struct mnt *m)
{
  if (m->disks)
    bfs_disk_ctx_flush(m->disks);
}
