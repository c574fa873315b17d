/* pool.c — worker threads for parallel loops and read-ahead (pool.h).
 *
 * One mutex (lock) guards the queue of loops still wanting helpers, the
 * ring of async tasks and every loop's helper/active counts and error.
 * Items of a loop are claimed with an atomic counter, so the lock is taken
 * a few times per loop, not per item.  A loop lives on its caller's stack:
 * the caller takes it off the queue when its own share is done and waits
 * until no worker is inside it (active == 0) before returning.
 */
#include "common/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/error.h"

#define POOL_MAX_THREADS 64
#define POOL_ASYNC_SLOTS 64

struct loop {
  struct loop *next;
  bool queued;
  int (*fn)(void *arg, size_t i);
  void *arg;
  size_t n;
  size_t next_i;                    /* atomic: next item to claim */
  unsigned helpers;                 /* lock: workers still wanted */
  unsigned active;                  /* lock: workers inside */
  int err;                          /* first error (atomic read) */
  char msg[512];
};

struct task {
  void (*fn)(void *arg);
  void (*drop)(void *arg);
  void *arg;
};

struct bfs_pool {
  pthread_mutex_t lock;
  pthread_cond_t work, idle;
  struct loop *loops;
  struct task ring[POOL_ASYNC_SLOTS];
  size_t head, count;
  bool stop;
  unsigned nthreads;
  pthread_t th[POOL_MAX_THREADS];
};

static void
loop_items(struct bfs_pool *p, struct loop *l)
{
  for (;;) {
    size_t i = __atomic_fetch_add(&l->next_i, 1, __ATOMIC_RELAXED);
    if (i >= l->n || __atomic_load_n(&l->err, __ATOMIC_RELAXED))
      return;
    bfs_clear_error();
    int r = l->fn(l->arg, i);
    if (r < 0) {
      pthread_mutex_lock(&p->lock);
      if (!l->err) {
        snprintf(l->msg, sizeof l->msg, "%s", bfs_last_error());
        __atomic_store_n(&l->err, r, __ATOMIC_RELAXED);
      }
      pthread_mutex_unlock(&p->lock);
    }
  }
}

static void
unqueue(struct bfs_pool *p, struct loop *l)          /* lock held */
{
  struct loop **pp = &p->loops;
  while (*pp && *pp != l)
    pp = &(*pp)->next;
  if (*pp)
    *pp = l->next;
  l->queued = false;
}

static void *
worker(void *arg)
{
  struct bfs_pool *p = arg;

  pthread_mutex_lock(&p->lock);
  while (!p->stop) {
    if (p->loops) {
      struct loop *l = p->loops;
      if (--l->helpers == 0)
        unqueue(p, l);
      l->active++;
      pthread_mutex_unlock(&p->lock);
      loop_items(p, l);
      pthread_mutex_lock(&p->lock);
      if (--l->active == 0)
        pthread_cond_broadcast(&p->idle);
    }
    else if (p->count) {
      struct task t = p->ring[p->head];
      p->head = (p->head + 1) % POOL_ASYNC_SLOTS;
      p->count--;
      pthread_mutex_unlock(&p->lock);
      t.fn(t.arg);
      pthread_mutex_lock(&p->lock);
    }
    else
      pthread_cond_wait(&p->work, &p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  return NULL;
}

int
bfs_pool_new(unsigned nthreads, struct bfs_pool **out)
{
  struct bfs_pool *p = calloc(1, sizeof *p);

  *out = NULL;
  if (!p)
    return bfs_error(-ENOMEM, "out of memory for a thread pool");
  if (nthreads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    nthreads = n > 0 ? (unsigned)n : 1;
  }
  if (nthreads > POOL_MAX_THREADS)
    nthreads = POOL_MAX_THREADS;
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->work, NULL);
  pthread_cond_init(&p->idle, NULL);
  for (; p->nthreads < nthreads; p->nthreads++)
    if (pthread_create(&p->th[p->nthreads], NULL, worker, p) != 0)
      break;
  if (p->nthreads == 0) {
    bfs_pool_free(p);
    return bfs_error(-EAGAIN, "cannot start the worker threads");
  }
  *out = p;
  return 0;
}

void
bfs_pool_free(struct bfs_pool *p)
{
  if (!p)
    return;
  pthread_mutex_lock(&p->lock);
  p->stop = true;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->lock);
  for (unsigned i = 0; i < p->nthreads; i++)
    pthread_join(p->th[i], NULL);
  for (; p->count; p->count--, p->head = (p->head + 1) % POOL_ASYNC_SLOTS)
    if (p->ring[p->head].drop)
      p->ring[p->head].drop(p->ring[p->head].arg);
  pthread_cond_destroy(&p->work);
  pthread_cond_destroy(&p->idle);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

unsigned
bfs_pool_threads(const struct bfs_pool *p)
{
  return p ? p->nthreads : 0;
}

int
bfs_pool_for(struct bfs_pool *p, size_t n, int (*fn)(void *arg, size_t i),
             void *arg)
{
  struct loop l = { .fn = fn, .arg = arg, .n = n };

  if (!p || n < 2) {
    for (size_t i = 0; i < n; i++) {
      int r = fn(arg, i);
      if (r < 0)
        return r;
    }
    return 0;
  }
  l.helpers = n - 1 < p->nthreads ? (unsigned)(n - 1) : p->nthreads;
  pthread_mutex_lock(&p->lock);
  l.queued = true;
  l.next = p->loops;
  p->loops = &l;
  if (l.helpers == 1)
    pthread_cond_signal(&p->work);
  else
    pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->lock);

  loop_items(p, &l);

  pthread_mutex_lock(&p->lock);
  if (l.queued)
    unqueue(p, &l);
  while (l.active > 0)
    pthread_cond_wait(&p->idle, &p->lock);
  pthread_mutex_unlock(&p->lock);
  if (l.err)
    return bfs_error(l.err, "%s", l.msg);
  return 0;
}

int
bfs_pool_async(struct bfs_pool *p, void (*fn)(void *arg),
               void (*drop)(void *arg), void *arg)
{
  bool queued = false;

  if (p) {
    pthread_mutex_lock(&p->lock);
    if (!p->stop && p->count < POOL_ASYNC_SLOTS) {
      p->ring[(p->head + p->count) % POOL_ASYNC_SLOTS] =
          (struct task){ fn, drop, arg };
      p->count++;
      queued = true;
      pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->lock);
  }
  if (queued)
    return 0;
  if (drop)
    drop(arg);
  return -EAGAIN;
}
