/* guest.c — a point in time's guest files through libguestfs (guest.h):
 * the pool, each guest's state, the bounded waits and the watchdog.
 *
 * One guest_t per point in time holds a guestfs handle on the backup's raw
 * disks, launched on the first call that needs it by a launcher thread
 * (guest-launch.c), so that a request waiting for it can give up: requests
 * wait on the guest's state (IDLE → STARTING → READY or FAILED) in short
 * slices, polling this thread's canceller (a FUSE interrupt, the mount
 * stopping) — -EINTR — and a listing of "/" can stop waiting after
 * list_patience seconds and show `.backupfs-status` instead (the mount's
 * files/: an operator's `ls` is not silence).
 *
 * Every wait is bounded by the watchdog (the reaper thread, twice a
 * second): a launch older than launch_timeout has its process tree killed
 * (the launcher thread's children: supermin, qemu, the recovery process)
 * and is failed; a launcher that still has not returned KILL_GRACE_SECONDS
 * later is given up on (its generation abandoned).  A guestfs call on a
 * READY appliance that takes longer than call_timeout gets its qemu killed
 * by PID (guestfs_get_pid), so the call returns and the guest fails.  A
 * failed guest shows `.backupfs-error` (what happened, when it retries) and
 * launches again on the first access RETRY_SECONDS later.  Idle close, pool
 * eviction and shutdown kill qemu first and then guestfs_close: the drives
 * are read-only, there is nothing to flush, and guestfs_shutdown on a hung
 * appliance is exactly the wait that must not happen.  When the pool's
 * should_stop says so (SIGTERM of the mount) every appliance is killed at
 * once and no new one starts.
 *
 * The canceller is thread-local (like the last error): the mount sets it
 * around each guest call it makes for a FUSE request.
 *
 * THREAD MODEL (lock order: g->lock, pool->lock, g->slock, g->clock;
 *               pool->lock only ever trylocks a g->lock)
 *   pool->lock  guest list, slot count, each guest's `live`, nlaunchers.
 *   g->lock     serialises guestfs calls on a READY g->h, and its close.
 *               Held across calls that the watchdog bounds; never waited
 *               for without polling the canceller.
 *   g->slock    state, phase, pids, call_since, failure; never held across
 *               a blocking call.  The launcher owns its handle alone until
 *               it publishes it under slock.
 *   g->clock    the cache and read-ahead buffers (guest-ops.c).
 */
#include "guest/guest.h"
#include "guest/guest-cache.h"
#include "guest/guest-int.h"

#include <errno.h>
#include <guestfs.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"

#define WATCH_MS 500
#define WAIT_SLICE_MS 200
#define DEFAULT_LAUNCH_TIMEOUT 300
#define DEFAULT_CALL_TIMEOUT 60

static __thread bool (*t_cancel_fn)(void *);
static __thread void *t_cancel_arg;

void
guest_set_canceller(bool (*cancelled)(void *arg), void *arg)
{
  t_cancel_fn = cancelled;
  t_cancel_arg = arg;
}

bool
guest_cancelled(void)
{
  return t_cancel_fn && t_cancel_fn(t_cancel_arg);
}

const char *
guest_gerr(guestfs_h *h)
{
  const char *e = h ? guestfs_last_error(h) : NULL;
  return e ? e : "unknown libguestfs error";
}

void
guest_fmt_time(time_t t, char *buf, size_t size)
{
  struct tm tm;
  if (!gmtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm))
    snprintf(buf, size, "%lld", (long long)t);
}

static void
deadline_in(struct timespec *ts, unsigned ms)
{
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000;
  if (ts->tv_nsec >= 1000000000) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000;
  }
}

/* ---- states -------------------------------------------------------- */

void
guest_fail_locked(guest_t *g, char *why)
{
  char when[40], retry[40];
  time_t now = time(NULL);
  guest_fmt_time(now, when, sizeof when);
  guest_fmt_time(now + RETRY_SECONDS, retry, sizeof retry);
  char *text;
  if (asprintf(&text, "%s: %s\nfailed at:  %s\nnext try:   on the first "
               "access after %s (every %d s)\n", g->key,
               why ? why : "the appliance failed", when, retry,
               RETRY_SECONDS) < 0)
    text = NULL;
  if (!g->launch_err)   /* report once; later failures are quiet */
    bfs_log(BFS_LOG_ERROR, "%s: %s (retrying in %d s)", g->key,
            why ? why : "launch failed", RETRY_SECONDS);
  free(why);
  free(g->launch_err);
  g->launch_err = text ? text : strdup("the appliance failed\n");
  g->failed_at = now;
  g->state = G_FAILED;
  pthread_cond_broadcast(&g->scond);
}

char *
guest_status_text(guest_t *g)
{
  char since[40], until[40];
  char *text = NULL;
  pthread_mutex_lock(&g->slock);
  if (g->state == G_STARTING) {
    guest_fmt_time(g->since, since, sizeof since);
    guest_fmt_time(g->since + g->pool->launch_timeout, until, sizeof until);
    if (asprintf(&text, "%s: the appliance (libguestfs) is starting\n"
                 "since:        %s\nwaiting for:  %s\n"
                 "gives up at:  %s (guest_timeout=%u s), then shows "
                 "%s and tries again %d s later\n",
                 g->key, since, g->phase ? g->phase : "the appliance",
                 until, g->pool->launch_timeout, ERROR_NAME,
                 RETRY_SECONDS) < 0)
      text = NULL;
  }
  pthread_mutex_unlock(&g->slock);
  return text;
}

char *
guest_error_text(guest_t *g)
{
  pthread_mutex_lock(&g->slock);
  char *m = g->state == G_FAILED && g->launch_err ? strdup(g->launch_err)
                                                   : NULL;
  pthread_mutex_unlock(&g->slock);
  return m;
}

/* slock held: start a launcher for g */
static int
start_launcher_locked(guest_t *g)
{
  guest_pool_t *pool = g->pool;
  g->state = G_STARTING;
  g->since = time(NULL);
  g->phase = "the launcher thread";
  g->gen++;
  g->launcher_tid = 0;
  g->killed_at = 0;
  free(g->kill_why);
  g->kill_why = NULL;

  pthread_attr_t attr;
  pthread_t t;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_mutex_lock(&pool->lock);
  pool->nlaunchers++;
  pthread_mutex_unlock(&pool->lock);
  int e = pthread_create(&t, &attr, guest_launcher_main, g);
  pthread_attr_destroy(&attr);
  if (e) {
    pthread_mutex_lock(&pool->lock);
    pool->nlaunchers--;
    pthread_mutex_unlock(&pool->lock);
    guest_fail_locked(g, strdup("cannot start a launcher thread"));
    return bfs_error(-e, "%s: cannot start a launcher thread", g->key);
  }
  return 0;
}

/* Wait for g->lock in slices, giving up when cancelled.  0 or -EINTR. */
static int
lock_cancellable(guest_t *g)
{
  for (;;) {
    struct timespec ts;
    deadline_in(&ts, WAIT_SLICE_MS);
    if (pthread_mutex_timedlock(&g->lock, &ts) == 0)
      return 0;
    if (guest_cancelled())
      return bfs_error(-EINTR, "%s: interrupted while waiting for the "
                       "appliance", g->key);
  }
}

int
guest_acquire(guest_t *g, bool listing)
{
  guest_pool_t *pool = g->pool;
  time_t start = time(NULL);
  int r;

  pthread_mutex_lock(&g->slock);
  for (;;) {
    time_t now = time(NULL);
    if (g->state == G_READY) {
      pthread_mutex_unlock(&g->slock);
      if ((r = lock_cancellable(g)) < 0)
        return r;
      pthread_mutex_lock(&g->slock);
      if (g->state == G_READY && g->h) {
        pthread_mutex_unlock(&g->slock);
        return 0;
      }
      pthread_mutex_unlock(&g->lock);      /* closed meanwhile: again */
      continue;
    }
    if (g->state == G_FAILED &&
        (g->known_broken || now - g->failed_at < RETRY_SECONDS)) {
      r = bfs_error(-EIO, "%s", g->launch_err);
      break;
    }
    if (g->state != G_STARTING) {
      if (atomic_load(&pool->stopping)) {
        r = bfs_error(-EIO, "%s: the mount is stopping", g->key);
        break;
      }
      if ((r = start_launcher_locked(g)) < 0)
        break;
    }
    if (guest_cancelled()) {
      r = bfs_error(-EINTR, "%s: interrupted while waiting for the appliance "
                    "to start", g->key);
      break;
    }
    if (listing && pool->list_patience &&
        now - start >= (time_t)pool->list_patience) {
      r = -EINPROGRESS;
      break;
    }
    /* the watchdog ends every launch; this is only a backstop */
    if (now - start > (time_t)pool->launch_timeout + 4 * KILL_GRACE_SECONDS) {
      r = bfs_error(-EIO, "%s: the appliance is still starting after %u s",
                    g->key, pool->launch_timeout);
      break;
    }
    struct timespec ts;
    deadline_in(&ts, WAIT_SLICE_MS);
    pthread_cond_timedwait(&g->scond, &g->slock, &ts);
  }
  pthread_mutex_unlock(&g->slock);
  return r;
}

void
guest_release(guest_t *g)
{
  g->last_used = time(NULL);
  pthread_mutex_unlock(&g->lock);
}

void
guest_call_begin(guest_t *g, const char *what)
{
  pthread_mutex_lock(&g->slock);
  g->call_since = time(NULL);
  g->call_name = what;
  pthread_mutex_unlock(&g->slock);
}

int
guest_call_end(guest_t *g, bool call_failed)
{
  pthread_mutex_lock(&g->slock);
  g->call_since = 0;
  char *why = g->killed_at ? TAKE(g->kill_why) : NULL;
  bool killed = g->killed_at != 0;
  pthread_mutex_unlock(&g->slock);
  if (!killed && call_failed && g->h && !guestfs_is_ready(g->h)) {
    killed = true;
    if (asprintf(&why, "the appliance died: %s", guest_gerr(g->h)) < 0)
      why = NULL;
  }
  if (!killed)
    return 0;
  int r = bfs_error(-EIO, "%s: %s", g->key, why ? why : "appliance killed");
  guest_close_locked(g, why ? why : strdup("the appliance was killed"));
  return r;
}

/* ---- slots --------------------------------------------------------- */

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

void
guest_unreserve_slot(guest_pool_t *pool)
{
  pthread_mutex_lock(&pool->lock);
  pool->live--;
  pthread_mutex_unlock(&pool->lock);
}

static bool
given_up(guest_t *g, unsigned gen)
{
  pthread_mutex_lock(&g->slock);
  bool r = g->gen != gen || g->killed_at;
  pthread_mutex_unlock(&g->slock);
  return r || atomic_load(&g->pool->stopping);
}

int
guest_reserve_slot(guest_t *g, unsigned gen)
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
    pthread_mutex_unlock(&pool->lock);
    if (victim) {
      bfs_log(BFS_LOG_INFO, "%s: closing appliance (pool full)", victim->key);
      guest_close_locked(victim, NULL);
      pthread_mutex_unlock(&victim->lock);
    }
    else        /* every live appliance is busy: wait a little, look again */
      usleep(100 * 1000);
    if (given_up(g, gen))
      return -ECANCELED;
    pthread_mutex_lock(&pool->lock);
  }
  pool->live++;
  pthread_mutex_unlock(&pool->lock);
  return 0;
}

/* g->lock held (or g unreachable) */
void
guest_close_locked(guest_t *g, char *why)
{
  pthread_mutex_lock(&g->slock);
  guestfs_h *h = g->h;
  pid_t pid = g->qemu_pid;
  struct failed_mount *f = g->failed;
  size_t nf = g->nfailed;
  g->h = NULL;
  g->qemu_pid = 0;
  g->failed = NULL;
  g->nfailed = 0;
  g->call_since = 0;
  if (g->state == G_READY) {
    g->killed_at = 0;
    free(g->kill_why);
    g->kill_why = NULL;
  }
  if (why)
    guest_fail_locked(g, why);
  else if (g->state == G_READY)
    g->state = G_IDLE;
  pthread_cond_broadcast(&g->scond);
  pthread_mutex_unlock(&g->slock);
  if (h) {
    if (pid > 0)
      kill(pid, SIGKILL);  /* read-only: nothing to flush; never wait on it */
    guestfs_close(h);
    release_slot(g);
  }
  guest_free_failed(f, nf);
}

/* ---- the watchdog -------------------------------------------------- */

/* pool->lock held */
static void
watch(guest_pool_t *pool)
{
  time_t now = time(NULL);
  bool stop = atomic_load(&pool->stopping);
  if (!stop && pool->should_stop && pool->should_stop(pool->stop_arg)) {
    atomic_store(&pool->stopping, true);
    stop = true;
    bfs_log(BFS_LOG_INFO, "stopping: killing every appliance");
  }
  for (guest_t *g = pool->guests; g; g = g->next) {
    pid_t tree = 0, pid = 0;
    char *why = NULL;
    pthread_mutex_lock(&g->slock);
    if (g->state == G_STARTING && !g->killed_at &&
        (stop || now - g->since >= (time_t)pool->launch_timeout)) {
      if (stop)
        why = strdup("the mount is stopping");
      else if (asprintf(&why, "the appliance did not start within %u s "
                        "(guest_timeout) while waiting for %s; it was killed",
                        pool->launch_timeout, g->phase) < 0)
        why = NULL;
      g->killed_at = now;
      g->kill_why = why ? strdup(why) : NULL;
      tree = g->launcher_tid;
    }
    else if (g->state == G_STARTING && g->killed_at &&
             now - g->killed_at >= KILL_GRACE_SECONDS) {
      /* the launch did not return even when killed: give up on it */
      g->gen++;
      char *w = TAKE(g->kill_why);
      guest_fail_locked(g, w ? w : strdup("the appliance did not start"));
    }
    else if (g->state == G_READY && !g->killed_at &&
             (stop || (g->call_since &&
                       now - g->call_since >= (time_t)pool->call_timeout))) {
      if (stop)
        why = strdup("the mount is stopping");
      else if (asprintf(&why, "the appliance stopped answering (%s took "
                        "more than %u s); it was killed", g->call_name,
                        pool->call_timeout) < 0)
        why = NULL;
      g->killed_at = now;
      g->kill_why = why ? strdup(why) : NULL;
      pid = g->qemu_pid;
    }
    pthread_mutex_unlock(&g->slock);
    if (why)
      bfs_log(stop ? BFS_LOG_INFO : BFS_LOG_WARN, "%s: %s", g->key, why);
    free(why);
    if (tree > 0)
      guest_kill_tree(tree);
    if (pid > 0)
      kill(pid, SIGKILL);
  }
}

static void *
reaper_main(void *arg)
{
  guest_pool_t *pool = arg;

  pthread_mutex_lock(&pool->lock);
  while (!pool->stop) {
    struct timespec ts;
    deadline_in(&ts, WATCH_MS);
    pthread_cond_timedwait(&pool->cond, &pool->lock, &ts);
    if (pool->stop)
      break;
    watch(pool);
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
      guest_close_locked(victim, NULL);
      pthread_mutex_unlock(&victim->lock);
      pthread_mutex_lock(&pool->lock);
    }
  }
  pthread_mutex_unlock(&pool->lock);
  return NULL;
}

/* ---- pool ---------------------------------------------------------- */

guest_pool_t *
guest_pool_new(unsigned max_live, unsigned idle_seconds)
{
  guest_pool_t *pool = calloc(1, sizeof *pool);
  if (!pool)
    return NULL;
  pool->max_live = max_live ? max_live : 1;
  pool->idle_seconds = idle_seconds ? idle_seconds : 1;
  pool->launch_timeout = DEFAULT_LAUNCH_TIMEOUT;
  pool->call_timeout = DEFAULT_CALL_TIMEOUT;
  atomic_init(&pool->stopping, false);
  pthread_mutex_init(&pool->lock, NULL);
  pthread_cond_init(&pool->cond, NULL);
  if (pthread_create(&pool->reaper, NULL, reaper_main, pool) == 0)
    pool->reaper_started = true;
  return pool;
}

void
guest_pool_set_limits(guest_pool_t *pool, unsigned launch_timeout,
                      unsigned call_timeout, unsigned list_patience)
{
  pthread_mutex_lock(&pool->lock);
  pool->list_patience = list_patience;
  if (launch_timeout)
    pool->launch_timeout = launch_timeout;
  if (call_timeout)
    pool->call_timeout = call_timeout;
  pthread_mutex_unlock(&pool->lock);
}

void
guest_pool_set_stop(guest_pool_t *pool, bool (*should_stop)(void *arg),
                    void *arg)
{
  pthread_mutex_lock(&pool->lock);
  pool->should_stop = should_stop;
  pool->stop_arg = arg;
  pthread_mutex_unlock(&pool->lock);
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
  guest_close_locked(g, NULL);
  gc_clear(&g->cache);
  for (size_t i = 0; i < g->ndisks; i++) {
    free(g->disks[i]);
    free(g->names ? g->names[i] : NULL);
  }
  free(g->disks);
  free(g->names);
  for (int i = 0; i < RA_BUFS; i++) {
    free(g->ra[i].path);
    free(g->ra[i].data);
  }
  free(g->launch_err);
  free(g->kill_why);
  free(g->key);
  pthread_mutex_destroy(&g->lock);
  pthread_mutex_destroy(&g->slock);
  pthread_cond_destroy(&g->scond);
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
  atomic_store(&pool->stopping, true);
  pthread_cond_broadcast(&pool->cond);
  pthread_mutex_unlock(&pool->lock);
  if (pool->reaper_started)
    pthread_join(pool->reaper, NULL);

  /* end the launches still at work, and wait (bounded) for their threads */
  pthread_mutex_lock(&pool->lock);
  watch(pool);
  time_t until = time(NULL) + 2 * KILL_GRACE_SECONDS;
  while (pool->nlaunchers && time(NULL) < until) {
    struct timespec ts;
    deadline_in(&ts, WAIT_SLICE_MS);
    pthread_cond_timedwait(&pool->cond, &pool->lock, &ts);
  }
  unsigned left = pool->nlaunchers;
  pthread_mutex_unlock(&pool->lock);
  if (left) {   /* they still use their guests: leave everything allocated */
    bfs_log(BFS_LOG_WARN, "%u appliance launch(es) did not end when killed",
            left);
    return;
  }
  for (guest_t *g = pool->guests, *n; g; g = n) {
    n = g->next;
    free_guest(g);
  }
  free(pool->index_path);
  pthread_mutex_destroy(&pool->lock);
  pthread_cond_destroy(&pool->cond);
  free(pool);
}

/* The disk's name for directory names: basename without .img/.raw/.qcow2 */
static char *
disk_name(const char *path)
{
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  size_t n = strlen(b);
  static const char *const ext[] = { ".img", ".raw", ".qcow2" };
  for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
    size_t e = strlen(ext[i]);
    if (n > e && !strcmp(b + n - e, ext[i])) {
      n -= e;
      break;
    }
  }
  return strndup(b, n);
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
      !(g->disks = calloc(ndisks ? ndisks : 1, sizeof *g->disks)) ||
      !(g->names = calloc(ndisks ? ndisks : 1, sizeof *g->names)))
    goto nomem;
  for (; g->ndisks < ndisks; g->ndisks++)
    if (!(g->disks[g->ndisks] = strdup(disk_paths[g->ndisks])) ||
        !(g->names[g->ndisks] = disk_name(disk_paths[g->ndisks]))) {
      g->ndisks++;
      goto nomem;
    }
  g->pool = pool;
  pthread_mutex_init(&g->lock, NULL);
  pthread_mutex_init(&g->slock, NULL);
  pthread_cond_init(&g->scond, NULL);
  pthread_mutex_init(&g->clock, NULL);
  gc_init(&g->cache, CACHE_CAP);
  g->next = pool->guests;
  pool->guests = g;
  pthread_mutex_unlock(&pool->lock);
  return g;

 nomem:
  pthread_mutex_unlock(&pool->lock);
  if (g) {
    for (size_t i = 0; i < g->ndisks; i++) {
      free(g->disks[i]);
      free(g->names ? g->names[i] : NULL);
    }
    free(g->disks);
    free(g->names);
    free(g->key);
    free(g);
  }
  bfs_error(-ENOMEM, "%s: out of memory", key);
  return NULL;
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
