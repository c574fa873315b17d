/* guest-int.h — what guest.c (pool, launch, mounts) and guest-ops.c (the
 * guest.h calls) share.  See guest.c for the thread model. */
#ifndef BFS_GUEST_INT_H
#define BFS_GUEST_INT_H

#include <guestfs.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "fs/guest.h"
#include "fs/guest-cache.h"

#define RA_CHUNK ((4u << 20) - (64u << 10)) /* per guestfs_pread: the
                                 protocol caps a message at 4 MiB */
#define RA_BUFS 4               /* read-ahead buffers per guest */
#define NAMES_BATCH 1000        /* names per lstatnslist/readlinklist call */
#define CACHE_CAP 1000000       /* cached paths before the cache is reset */
#define RETRY_SECONDS 60        /* after a failed launch */
#define ERROR_NAME ".backupfs-error"

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

struct guest {
  guest_pool_t *pool;
  guest_t *next;
  char *key;
  char **disks;
  size_t ndisks;

  pthread_mutex_t lock;          /* guestfs calls, launch, close */
  guestfs_h *h;
  bool live;                     /* holds a pool slot (pool->lock) */
  time_t last_used;
  time_t failed_at;              /* launch failure, 0 if none */
  char *launch_err;
  bool has_os;
  struct failed_mount *failed;
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
  guest_t *guests;
  char *index_path;
  pthread_t reaper;
  bool reaper_started, stop;
};


/* g->lock held: launch if needed (or fail fast after a recent failure) */
int guest_ensure_launched(guest_t *g);
const char *guest_gerr(guestfs_h *h);
void guest_statns_to_stat(const struct guestfs_statns *s, struct stat *st);
/* pool->index_path (malloc'd copy) or NULL */
char *guest_pool_index_path(guest_pool_t *pool);

#endif
