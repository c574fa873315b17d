/* guest.c — a point in time's guest files through libguestfs (guest.h).
 *
 * One guest_t per point in time holds a guestfs handle on the backup's raw
 * disks (readonly=1, format=raw), launched on the first call that needs it.
 * After launch, inspection assembles the OS root from its fstab (mountpoints
 * mounted shortest first); without an OS every filesystem is mounted on its
 * own /<name> (sda1, vg-lv).  Mounts never replay journals (ext*: noload,
 * xfs: norecovery, btrfs: nologreplay) and fall back to plain "ro"; NTFS
 * goes through ntfs-3g read-only.  A filesystem that cannot be mounted is a
 * directory holding a virtual `.backupfs-error` with the reason.
 *
 * Everything learnt (attributes, listings, link targets) goes into the
 * guest's cache (guest-cache.c), which outlives the appliance; a stored file
 * index (index.c) fills it completely so listings never launch.  Reads of
 * file data go through a few read-ahead buffers of RA_CHUNK bytes.
 *
 * THREAD MODEL
 *   pool->lock  guards the guest list, live count and each guest's `live`
 *               flag; held only for bookkeeping, never across a guestfs call.
 *   g->lock     serialises every guestfs call on g->h (a handle is not
 *               thread-safe), launch and close.  Taken before pool->lock;
 *               code holding pool->lock only ever trylocks a g->lock.
 *   g->clock    guards the cache and read-ahead buffers; held briefly and
 *               never across a guestfs call, so cache hits do not wait on an
 *               appliance busy for another thread.
 * The reaper thread closes appliances idle for idle_seconds; launching
 * beyond max_live closes the least recently used idle appliance (or waits).
 */
#include "fs/guest.h"
#include "fs/guest-cache.h"
#include "fs/guest-int.h"

#include <errno.h>
#include <guestfs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"

const char *
guest_gerr(guestfs_h *h)
{
  const char *e = h ? guestfs_last_error(h) : NULL;
  return e ? e : "unknown libguestfs error";
}

/* ---- pool ---------------------------------------------------------- */

static void close_guest(guest_t *g);

static void *
reaper_main(void *arg)
{
  guest_pool_t *pool = arg;
  unsigned period = pool->idle_seconds / 4;
  if (period < 1) period = 1;
  if (period > 10) period = 10;

  pthread_mutex_lock(&pool->lock);
  while (!pool->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += period;
    pthread_cond_timedwait(&pool->cond, &pool->lock, &ts);
    if (pool->stop)
      break;
    for (;;) {
      guest_t *victim = NULL;
      time_t now = time(NULL);
      for (guest_t *g = pool->guests; g && !victim; g = g->next) {
        if (!g->live || pthread_mutex_trylock(&g->lock))
          continue;
        if (g->h && now - g->last_used >= (time_t)pool->idle_seconds)
          victim = g;
        else
          pthread_mutex_unlock(&g->lock);
      }
      if (!victim)
        break;
      pthread_mutex_unlock(&pool->lock);
      bfs_log(BFS_LOG_INFO, "%s: closing idle appliance", victim->key);
      close_guest(victim);
      pthread_mutex_unlock(&victim->lock);
      pthread_mutex_lock(&pool->lock);
    }
  }
  pthread_mutex_unlock(&pool->lock);
  return NULL;
}

guest_pool_t *
guest_pool_new(unsigned max_live, unsigned idle_seconds)
{
  guest_pool_t *pool = calloc(1, sizeof *pool);
  if (!pool)
    return NULL;
  pool->max_live = max_live ? max_live : 1;
  pool->idle_seconds = idle_seconds ? idle_seconds : 1;
  pthread_mutex_init(&pool->lock, NULL);
  pthread_cond_init(&pool->cond, NULL);
  if (pthread_create(&pool->reaper, NULL, reaper_main, pool) == 0)
    pool->reaper_started = true;
  return pool;
}

int
guest_pool_set_index(guest_pool_t *pool, const char *index_path)
{
  char *p = NULL;
  if (index_path && !(p = strdup(index_path)))
    return -ENOMEM;
  pthread_mutex_lock(&pool->lock);
  free(pool->index_path);
  pool->index_path = p;
  pthread_mutex_unlock(&pool->lock);
  return 0;
}

char *
guest_pool_index_path(guest_pool_t *pool)
{
  pthread_mutex_lock(&pool->lock);
  char *p = pool->index_path ? strdup(pool->index_path) : NULL;
  pthread_mutex_unlock(&pool->lock);
  return p;
}

static void
free_guest(guest_t *g)
{
  close_guest(g);
  gc_clear(&g->cache);
  for (size_t i = 0; i < g->ndisks; i++)
    free(g->disks[i]);
  free(g->disks);
  for (int i = 0; i < RA_BUFS; i++) {
    free(g->ra[i].path);
    free(g->ra[i].data);
  }
  free(g->launch_err);
  free(g->key);
  pthread_mutex_destroy(&g->lock);
  pthread_mutex_destroy(&g->clock);
  free(g);
}

void
guest_pool_free(guest_pool_t *pool)
{
  if (!pool)
    return;
  pthread_mutex_lock(&pool->lock);
  pool->stop = true;
  pthread_cond_broadcast(&pool->cond);
  pthread_mutex_unlock(&pool->lock);
  if (pool->reaper_started)
    pthread_join(pool->reaper, NULL);
  for (guest_t *g = pool->guests, *n; g; g = n) {
    n = g->next;
    free_guest(g);
  }
  free(pool->index_path);
  pthread_mutex_destroy(&pool->lock);
  pthread_cond_destroy(&pool->cond);
  free(pool);
}

guest_t *
guest_get(guest_pool_t *pool, const char *key,
          const char *const *disk_paths, size_t ndisks)
{
  pthread_mutex_lock(&pool->lock);
  for (guest_t *g = pool->guests; g; g = g->next)
    if (!strcmp(g->key, key)) {
      pthread_mutex_unlock(&pool->lock);
      return g;
    }
  guest_t *g = calloc(1, sizeof *g);
  if (!g || !(g->key = strdup(key)) ||
      !(g->disks = calloc(ndisks ? ndisks : 1, sizeof *g->disks)))
    goto nomem;
  for (; g->ndisks < ndisks; g->ndisks++)
    if (!(g->disks[g->ndisks] = strdup(disk_paths[g->ndisks])))
      goto nomem;
  g->pool = pool;
  pthread_mutex_init(&g->lock, NULL);
  pthread_mutex_init(&g->clock, NULL);
  gc_init(&g->cache, CACHE_CAP);
  g->next = pool->guests;
  pool->guests = g;
  pthread_mutex_unlock(&pool->lock);
  return g;

 nomem:
  pthread_mutex_unlock(&pool->lock);
  if (g) {
    for (size_t i = 0; i < g->ndisks; i++)
      free(g->disks[i]);
    free(g->disks);
    free(g->key);
    free(g);
  }
  bfs_error(-ENOMEM, "%s: out of memory", key);
  return NULL;
}

/* Take a live slot for g (g->lock held), closing the least recently used
 * idle appliance when the pool is full, or waiting for one to go idle. */
static void
reserve_slot(guest_t *g)
{
  guest_pool_t *pool = g->pool;

  pthread_mutex_lock(&pool->lock);
  while (pool->live >= pool->max_live) {
    guest_t *victim = NULL;
    for (guest_t *o = pool->guests; o; o = o->next) {
      if (o == g || !o->live || pthread_mutex_trylock(&o->lock))
        continue;
      if (!victim || o->last_used < victim->last_used) {
        if (victim)
          pthread_mutex_unlock(&victim->lock);
        victim = o;
      }
      else
        pthread_mutex_unlock(&o->lock);
    }
    if (victim) {
      pthread_mutex_unlock(&pool->lock);
      bfs_log(BFS_LOG_INFO, "%s: closing appliance (pool full)", victim->key);
      close_guest(victim);
      pthread_mutex_unlock(&victim->lock);
      pthread_mutex_lock(&pool->lock);
      continue;
    }
    /* every live appliance is busy: wait a little and look again */
    pthread_mutex_unlock(&pool->lock);
    usleep(100 * 1000);
    pthread_mutex_lock(&pool->lock);
  }
  pool->live++;
  g->live = true;
  pthread_mutex_unlock(&pool->lock);
}

static void
release_slot(guest_t *g)
{
  pthread_mutex_lock(&g->pool->lock);
  if (g->live) {
    g->live = false;
    g->pool->live--;
  }
  pthread_mutex_unlock(&g->pool->lock);
}

/* g->lock held (or g unreachable) */
static void
close_guest(guest_t *g)
{
  if (g->h) {
    guestfs_shutdown(g->h);
    guestfs_close(g->h);
    g->h = NULL;
  }
  for (size_t i = 0; i < g->nfailed; i++) {
    free(g->failed[i].mp);
    free(g->failed[i].msg);
  }
  free(g->failed);
  g->failed = NULL;
  g->nfailed = 0;
  release_slot(g);
}

/* ---- launch and mounts --------------------------------------------- */

/* Mount dev on mp read-only without replaying a journal.  Returns NULL or
 * the reason it failed (malloc'd). */
static char *
mount_ro(guestfs_h *h, const char *dev, const char *mp)
{
  CLEANUP_FREE char *type = guestfs_vfs_type(h, dev);
  const char *opts = NULL, *vfs = NULL;

  if (type && !strncmp(type, "ext", 3))
    opts = "ro,noload";
  else if (type && !strcmp(type, "xfs"))
    opts = "ro,norecovery";
  else if (type && !strcmp(type, "btrfs"))
    opts = "ro,nologreplay";
  else if (type && !strcmp(type, "ntfs"))
    opts = "ro", vfs = "ntfs-3g";

  if (opts && guestfs_mount_vfs(h, opts, vfs ? vfs : "", dev, mp) == 0)
    return NULL;
  if (vfs)   /* ntfs-3g read-only is already the fallback */
    goto fail;
  if (guestfs_mount_ro(h, dev, mp) == 0)
    return NULL;
 fail:;
  char *msg;
  if (asprintf(&msg, "%s (%s) could not be mounted on %s: %s\n", dev,
               type ? type : "unknown filesystem", mp, guest_gerr(h)) < 0)
    msg = NULL;
  return msg;
}

static int
add_failed(guest_t *g, const char *mp, char *msg)
{
  struct failed_mount *f = realloc(g->failed, (g->nfailed + 1) * sizeof *f);
  if (!f) {
    free(msg);
    return -ENOMEM;
  }
  g->failed = f;
  f[g->nfailed].mp = strdup(mp);
  f[g->nfailed].msg = msg ? msg : strdup("could not be mounted\n");
  g->nfailed++;
  bfs_log(BFS_LOG_WARN, "%s: %s", g->key, f[g->nfailed - 1].msg);
  return 0;
}

static int
cmp_mp_len(const void *a, const void *b)
{
  const char *const *x = a, *const *y = b;
  size_t lx = strlen(x[0]), ly = strlen(y[0]);
  return lx < ly ? -1 : lx > ly ? 1 : strcmp(x[0], y[0]);
}

/* Directory name for a filesystem without an OS: /dev/sda1 → sda1,
 * /dev/vg/lv → vg-lv, /dev/mapper/x → x, btrfsvol:/dev/sda2/sub → sda2-sub. */
static char *
fs_name(const char *dev)
{
  const char *s = dev;
  if (!strncmp(s, "btrfsvol:", 9)) s += 9;    /* btrfsvol:/dev/sda2/sub */
  if (!strncmp(s, "/dev/mapper/", 12)) s += 12;
  else if (!strncmp(s, "/dev/", 5)) s += 5;
  char *n = strdup(s);
  for (char *p = n; p && *p; p++)
    if (*p == '/')
      *p = '-';
  return n;
}

static void
free_strv(char **v)
{
  if (!v)
    return;
  for (size_t i = 0; v[i]; i++)
    free(v[i]);
  free(v);
}

static int
setup_mounts(guest_t *g)
{
  guestfs_h *h = g->h;
  char **roots = guestfs_inspect_os(h);

  if (roots && roots[0]) {
    char **mps = guestfs_inspect_get_mountpoints(h, roots[0]);
    free_strv(roots);
    if (!mps)
      return bfs_error(-EIO, "%s: inspection: %s", g->key, guest_gerr(h));
    size_t n = 0;
    while (mps[n]) n++;
    qsort(mps, n / 2, 2 * sizeof *mps, cmp_mp_len);
    g->has_os = true;
    for (size_t i = 0; i + 1 < n; i += 2) {
      char *msg = mount_ro(h, mps[i + 1], mps[i]);
      if (msg)
        add_failed(g, mps[i], msg);
    }
    free_strv(mps);
    return 0;
  }
  free_strv(roots);

  /* no OS: one directory per filesystem */
  g->has_os = false;
  char **fss = guestfs_list_filesystems(h);
  if (!fss)
    return bfs_error(-EIO, "%s: listing filesystems: %s", g->key, guest_gerr(h));
  char **kids = calloc(1, sizeof *kids);
  size_t nkids = 0;
  for (size_t i = 0; kids && fss[i] && fss[i + 1]; i += 2) {
    const char *dev = fss[i], *type = fss[i + 1];
    if (!strcmp(type, "unknown") || !strcmp(type, "swap") || !type[0])
      continue;
    CLEANUP_FREE char *name = fs_name(dev);
    CLEANUP_FREE char *mp = name ? gc_join("/", name) : NULL;
    char **k = realloc(kids, (nkids + 2) * sizeof *k);
    if (!mp || !k)
      break;
    kids = k;
    kids[nkids++] = strdup(name);
    kids[nkids] = NULL;
    if (guestfs_mkmountpoint(h, mp) < 0) {
      char *msg;
      if (asprintf(&msg, "%s: cannot create mountpoint: %s\n", dev, guest_gerr(h)) < 0)
        msg = NULL;
      add_failed(g, mp, msg);
      continue;
    }
    char *msg = mount_ro(h, dev, mp);
    if (msg)
      add_failed(g, mp, msg);
  }
  free_strv(fss);
  if (!kids)
    return bfs_error(-ENOMEM, "%s: out of memory", g->key);

  /* the root listing is ours: each filesystem's directory */
  struct guestfs_statns **sts = calloc(nkids ? nkids : 1, sizeof *sts);
  if (!sts) {
    free_strv(kids);
    return bfs_error(-ENOMEM, "%s: out of memory", g->key);
  }
  for (size_t i = 0; i < nkids; i++) {
    CLEANUP_FREE char *p = gc_join("/", kids[i]);
    sts[i] = p ? guestfs_lstatns(h, p) : NULL;
  }
  pthread_mutex_lock(&g->clock);
  for (size_t i = 0; i < nkids; i++) {
    CLEANUP_FREE char *p = gc_join("/", kids[i]);
    struct gc_entry *e = p ? gc_get(&g->cache, p) : NULL;
    if (e && sts[i])
      guest_statns_to_stat(sts[i], &e->st);
    else if (e) {
      memset(&e->st, 0, sizeof e->st);
      e->st.st_mode = S_IFDIR | 0555;
      e->st.st_nlink = 2;
    }
    guestfs_free_statns(sts[i]);
  }
  free(sts);
  struct gc_entry *root = gc_get(&g->cache, "/");
  if (root)
    gc_set_kids(root, kids, nkids);
  pthread_mutex_unlock(&g->clock);
  return 0;
}

/* Make sure g->h is a launched appliance with filesystems mounted.
 * g->lock held. */
int
guest_ensure_launched(guest_t *g)
{
  if (g->h)
    return 0;
  time_t now = time(NULL);
  if (g->failed_at && now - g->failed_at < RETRY_SECONDS)
    return bfs_error(-EIO, "%s: %s", g->key, g->launch_err);

  reserve_slot(g);
  int r = -EIO;
  char *why = NULL;
  guestfs_h *h = guestfs_create_flags(GUESTFS_CREATE_NO_CLOSE_ON_EXIT);
  if (!h) {
    why = strdup("cannot create libguestfs handle");
    goto fail;
  }
  guestfs_set_error_handler(h, NULL, NULL);
  for (size_t i = 0; i < g->ndisks; i++)
    if (guestfs_add_drive_opts(h, g->disks[i],
                               GUESTFS_ADD_DRIVE_OPTS_READONLY, 1,
                               GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw", -1) < 0) {
      if (asprintf(&why, "%s: %s", g->disks[i], guest_gerr(h)) < 0) why = NULL;
      goto fail;
    }
  bfs_log(BFS_LOG_INFO, "%s: launching appliance", g->key);
  if (guestfs_launch(h) < 0) {
    if (asprintf(&why, "appliance failed to start: %s", guest_gerr(h)) < 0)
      why = NULL;
    goto fail;
  }
  g->h = h;
  if ((r = setup_mounts(g)) < 0) {
    why = strdup(bfs_last_error());
    g->h = NULL;
    goto fail;
  }
  g->failed_at = 0;
  free(g->launch_err);
  g->launch_err = NULL;
  g->last_used = time(NULL);
  return 0;

 fail:
  if (h)
    guestfs_close(h);
  for (size_t i = 0; i < g->nfailed; i++) {
    free(g->failed[i].mp);
    free(g->failed[i].msg);
  }
  free(g->failed);
  g->failed = NULL;
  g->nfailed = 0;
  release_slot(g);
  if (!g->launch_err)   /* report once; later failures are quiet */
    bfs_log(BFS_LOG_ERROR, "%s: %s (retrying in %d s)", g->key,
            why ? why : "launch failed", RETRY_SECONDS);
  free(g->launch_err);
  g->launch_err = why ? why : strdup("launch failed");
  g->failed_at = time(NULL);
  return bfs_error(r, "%s: %s", g->key, g->launch_err ? g->launch_err : "");
}

/* ---- attribute conversion ------------------------------------------ */

void
guest_statns_to_stat(const struct guestfs_statns *s, struct stat *st)
{
  memset(st, 0, sizeof *st);
  /* inode numbers of different filesystems must not collide */
  st->st_ino = (uint64_t)s->st_ino ^ ((uint64_t)(s->st_dev & 0xffff) << 48);
  st->st_mode = s->st_mode;
  st->st_nlink = s->st_nlink;
  st->st_uid = s->st_uid;
  st->st_gid = s->st_gid;
  st->st_rdev = s->st_rdev;
  st->st_size = s->st_size;
  st->st_blksize = s->st_blksize;
  st->st_blocks = s->st_blocks;
  st->st_atim.tv_sec = s->st_atime_sec;
  st->st_atim.tv_nsec = s->st_atime_nsec;
  st->st_mtim.tv_sec = s->st_mtime_sec;
  st->st_mtim.tv_nsec = s->st_mtime_nsec;
  st->st_ctim.tv_sec = s->st_ctime_sec;
  st->st_ctim.tv_nsec = s->st_ctime_nsec;
}

