/* guest-int.h — what guest.c (pool, states, waits, watchdog), guest-launch.c
 * (the launcher thread, mounts, killing appliances) and guest-ops.c (the
 * guest.h calls) share.  See guest.c for the thread model. */
#ifndef BFS_GUEST_INT_H
#define BFS_GUEST_INT_H

#include <guestfs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "guest/guest.h"
#include "guest/guest-cache.h"

#define RA_CHUNK ((4u << 20) - (64u << 10)) /* per guestfs_pread: the
                                 protocol caps a message at 4 MiB */
#define RA_BUFS 4               /* read-ahead buffers per guest */
#define NAMES_BATCH 1000        /* names per lstatnslist/readlinklist call */
#define CACHE_CAP 1000000       /* cached paths before the cache is reset */
#define RETRY_SECONDS 60        /* after a failed launch */
#define KILL_GRACE_SECONDS 5    /* a killed launch that still has not
                                   returned is given up on after this */
#define ERROR_NAME GUEST_ERROR_NAME

struct rabuf {
  char *path;
  uint64_t off;
  size_t len;
  char *data;
  uint64_t stamp;
};

struct failed_mount {
  char *mp;
  char *msg;
};

enum guest_state {
  G_IDLE,                        /* no appliance */
  G_STARTING,                    /* a launcher thread is at work */
  G_READY,                       /* h is launched, filesystems mounted */
  G_FAILED,                      /* the last launch failed at failed_at */
};

struct guest {
  guest_pool_t *pool;
  guest_t *next;
  char *key;
  char **disks;
  char **names;                  /* each disk's name (vda), for fs_name */
  size_t ndisks;

  pthread_mutex_t lock;          /* guestfs calls on h (READY), close */

  pthread_mutex_t slock;         /* everything below up to the cache;
                                    never held across a blocking call */
  pthread_cond_t scond;          /* state changed */
  enum guest_state state;
  guestfs_h *h;                  /* READY only */
  unsigned gen;                  /* launch generation (abandoned launches) */
  pid_t launcher_tid;            /* its children are the appliance */
  time_t since;                  /* STARTING: since; READY: since */
  const char *phase;             /* STARTING: what it waits for */
  pid_t qemu_pid;                /* READY: guestfs_get_pid, 0 unknown */
  time_t call_since;             /* a guestfs call in flight since, or 0 */
  const char *call_name;         /* ... and which */
  time_t killed_at;              /* the watchdog killed the appliance */
  char *kill_why;                /* ... and why (malloc'd) */
  bool live;                     /* holds a pool slot (pool->lock) */
  time_t last_used;
  time_t failed_at;              /* FAILED: when */
  char *launch_err;              /* FAILED: the text of .backupfs-error */
  bool known_broken;             /* FAILED for good: the catalog's reason */
  bool has_os;
  struct failed_mount *failed;   /* READY: filesystems that did not mount */
  size_t nfailed;

  pthread_mutex_t clock;         /* cache and read-ahead */
  struct gcache cache;
  bool index_tried;
  struct rabuf ra[RA_BUFS];
  uint64_t ra_clock;
};

struct guest_pool {
  pthread_mutex_t lock;
  pthread_cond_t cond;           /* reaper sleep / stop */
  unsigned max_live, idle_seconds, live;
  unsigned launch_timeout, call_timeout;
  unsigned list_patience;        /* 0: a listing of "/" waits to the end */
  bool (*should_stop)(void *);   /* polled by the watchdog */
  void *stop_arg;
  atomic_bool stopping;          /* appliances killed, no new launches */
  unsigned nlaunchers;           /* launcher threads alive (lock, cond) */
  guest_t *guests;
  char *index_path;
  pthread_t reaper;
  bool reaper_started, stop;
};

/* guest.c — waits.  guest_acquire: wait (bounded, cancellable) until g has
 * a launched appliance, starting one if needed; 0 with g->lock held.
 * With `listing`, give up after pool->list_patience seconds (if set) with
 * -EINPROGRESS while it is still starting.  guest_release: g->lock back. */
int guest_acquire(guest_t *g, bool listing);
void guest_release(guest_t *g);
/* around each guestfs call on g->h (g->lock held): the watchdog kills an
 * appliance whose call takes longer than call_timeout.  call_end (told
 * whether the call failed) returns 0, or -EIO when the appliance was killed
 * or died: g->h is then closed, the guest failed, the message set. */
void guest_call_begin(guest_t *g, const char *what);
int guest_call_end(guest_t *g, bool call_failed);
/* the text of files/.backupfs-status while g starts, of .backupfs-error
 * while its failure stands (malloc'd), else NULL */
char *guest_status_text(guest_t *g);
char *guest_error_text(guest_t *g);
bool guest_cancelled(void);       /* this thread's canceller says stop */
/* g->lock held (or g unreachable): kill and close a READY appliance; with
 * why (taken) the guest is failed with that reason, else idle */
void guest_close_locked(guest_t *g, char *why);
/* g->slock held: record a failure (takes why) and wake the waiters */
void guest_fail_locked(guest_t *g, char *why);

/* guest-launch.c — the launcher thread (detached; pool->nlaunchers counts
 * it), started with g in STARTING; it ends in READY or FAILED unless the
 * watchdog gave up on its generation first */
void *guest_launcher_main(void *arg);
void guest_kill_tree(pid_t tid);       /* SIGKILL tid's descendants */
void guest_free_failed(struct failed_mount *f, size_t n);
/* the slot bookkeeping of guest.c, for the launcher: reserve one (closing
 * the least recently used idle appliance, or waiting) — -ECANCELED when the
 * pool stops or launch gen is given up on; release an unused one */
int guest_reserve_slot(guest_t *g, unsigned gen);
void guest_unreserve_slot(guest_pool_t *pool);

const char *guest_gerr(guestfs_h *h);
void guest_statns_to_stat(const struct guestfs_statns *s, struct stat *st);
/* pool->index_path (malloc'd copy) or NULL */
char *guest_pool_index_path(guest_pool_t *pool);
/* "2026-12-02 00:10:05 UTC" */
void guest_fmt_time(time_t t, char *buf, size_t size);

#endif
