/* mount-disk.c — disks/<disk>.img: lazily opened, shared backing chains.
 *
 * A struct disk is created per disk when the tree is built (cheap: a path
 * and two sizes from the catalog).  The chain is opened on the first open()
 * of the file, under the disk's own mutex, and then shared by every open
 * handle and every reader thread until the disk is dropped from the tree and
 * the last handle closes.  A chain that cannot be opened is not cached: the
 * open fails with EIO (the reason goes to the log once) and a later open
 * tries again, so a repaired repository heals without a remount.
 *
 * Every layer is opened beneath mnt.repo_fd (no symlink followed) and must
 * be the file the catalog recorded for it (path, device, inode, size,
 * mtime): one that is not is a changed backup, so the open fails with EIO,
 * the reason is logged and a rescan is asked for; its bytes are never served.
 *
 * Open chains hold a descriptor per layer, so chains no handle uses go on
 * an idle LRU (idle_lock; taken after a disk's lock, never before) and the
 * oldest are closed beyond IDLE_CHAINS.  d->opens (under d->lock) counts
 * handles using d->chain; a chain is only closed when it is zero.
 */
#include "fs/mount.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"

#define IDLE_CHAINS 64

static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct disk *idle_head, *idle_tail;  /* oldest first; each holds a ref */
static size_t nidle;

static void
idle_remove(struct disk *d)                 /* idle_lock held */
{
  *(d->idle_prev ? &d->idle_prev->idle_next : &idle_head) = d->idle_next;
  *(d->idle_next ? &d->idle_next->idle_prev : &idle_tail) = d->idle_prev;
  d->idle_prev = d->idle_next = NULL;
  d->idle = false;
  nidle--;
}

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
  /* the idle list holds a reference: d is not on it */
  if (d->chain)
    chain_close(d->chain);
  if (d->scratch_fd >= 0)
    close(d->scratch_fd);
  free(d->scratch_path);
  pthread_rwlock_destroy(&d->wlock);
  pthread_mutex_destroy(&d->lock);
  for (size_t i = 0; i < d->expect.n; i++)
    free(d->expect.rel[i]);
  free((void *)d->expect.rel);
  free((void *)d->expect.id);
  free(d->path);
  free(d);
}

int
disk_set_chain(struct disk *d, const struct catalog_disk *cd)
{
  char **rel = calloc(cd->chain_len + 1, sizeof *rel);
  struct bfs_file_id *id = calloc(cd->chain_len + 1, sizeof *id);

  if (!rel || !id) {
    free(rel);
    free(id);
    return -ENOMEM;
  }
  d->expect.rel = rel;
  d->expect.id = id;
  for (size_t i = 0; i < cd->chain_len; i++) {
    if (!(rel[i] = strdup(cd->chain[i])))
      return -ENOMEM;                       /* disk_unref frees what is set */
    d->expect.n = i + 1;
    if (cd->chain_id)
      id[i] = cd->chain_id[i];
  }
  return 0;
}

struct check_ctx {
  const struct bfs_chain_ids *expect;
  bool changed;
};

static int
check_layer(void *opaque, size_t depth, const char *rel, const struct stat *st)
{
  struct check_ctx *x = opaque;
  int r = bfs_chain_ids_check((void *)x->expect, depth, rel, st);
  if (r < 0)
    x->changed = true;
  return r;
}

int
disk_chain(struct disk *d, chain_t **out)
{
  int r = 0;
  bool was_idle = false;

  pthread_mutex_lock(&d->lock);
  if (!d->chain) {
    struct check_ctx x = { .expect = &d->expect };
    struct chain_opts opts = {
      .resolve = catalog_resolve_backing,
      .resolve_opaque = mnt.cat,
      .root = mnt.repo,
      .root_fd = mnt.repo_fd,
      .check = check_layer,
      .check_opaque = &x,
      .format = catalog_image_format,
    };
    chain_t *c;
    bfs_clear_error();
    r = chain_open(d->path, &opts, &c);
    /* a symlink, a vanished or non-regular file where the catalog has an
     * image: the repository changed since the scan, like a failed check */
    if (r == -ELOOP || r == -EXDEV || r == -ENOENT || r == -EINVAL)
      x.changed = true;
    if (r < 0 && x.changed) {
      bfs_log(BFS_LOG_WARN, "%s: refused, the backup changed since the "
              "catalog was built: %s; rescanning", d->path, bfs_last_error());
      tree_request_rescan();
      r = -EIO;
    }
    else if (r < 0) {
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
  if (r == 0) {
    d->opens++;
    pthread_mutex_lock(&idle_lock);
    if (d->idle) {
      idle_remove(d);
      was_idle = true;
    }
    pthread_mutex_unlock(&idle_lock);
  }
  *out = d->chain;
  pthread_mutex_unlock(&d->lock);
  if (was_idle)
    disk_unref(d);                          /* the idle list's reference */
  return r;
}

/* A handle is done with d->chain: park an unused chain on the idle list
 * and close the oldest idle ones beyond IDLE_CHAINS. */
void
disk_release(struct disk *d)
{
  pthread_mutex_lock(&d->lock);
  if (--d->opens == 0 && d->chain) {
    pthread_mutex_lock(&idle_lock);
    if (!d->idle) {
      disk_ref(d);
      d->idle = true;
      d->idle_prev = idle_tail;
      d->idle_next = NULL;
      *(idle_tail ? &idle_tail->idle_next : &idle_head) = d;
      idle_tail = d;
      nidle++;
    }
    pthread_mutex_unlock(&idle_lock);
  }
  pthread_mutex_unlock(&d->lock);

  for (;;) {
    pthread_mutex_lock(&idle_lock);
    struct disk *old = nidle > IDLE_CHAINS ? idle_head : NULL;
    if (old)
      idle_remove(old);
    pthread_mutex_unlock(&idle_lock);
    if (!old)
      break;
    pthread_mutex_lock(&old->lock);
    if (old->opens == 0 && old->chain && !old->idle) {
      chain_close(old->chain);
      old->chain = NULL;
    }
    pthread_mutex_unlock(&old->lock);
    disk_unref(old);
  }
}

/* Close every idle chain (unmount). */
void
disk_idle_flush(void)
{
  for (;;) {
    pthread_mutex_lock(&idle_lock);
    struct disk *d = idle_head;
    if (d)
      idle_remove(d);
    pthread_mutex_unlock(&idle_lock);
    if (!d)
      break;
    disk_unref(d);
  }
}
