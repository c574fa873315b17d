/* pool.h — a small pool of worker threads for the read path.
 *
 * Two uses:
 *   bfs_pool_for()    a parallel loop: fn(arg, i) for every i < n, run by
 *                     the pool's workers and the calling thread together;
 *                     returns when all are done.  The caller always works
 *                     too, so a loop started from a worker (or with every
 *                     worker busy) still finishes: nesting cannot deadlock.
 *   bfs_pool_async()  fire and forget (read-ahead): fn(arg) later on a
 *                     worker; a full queue drops the task (its drop()
 *                     runs instead), so a burst never grows memory.
 *
 * A NULL pool runs everything on the caller (bfs_pool_async: drop()).
 * Errors of a loop: the first -errno is returned with its message as the
 * caller's bfs_last_error(), and no further items start.
 */
#ifndef BFS_POOL_H
#define BFS_POOL_H

#include <stddef.h>

struct bfs_pool;

/* nthreads 0: one per online CPU (at least 1, at most 64) */
int bfs_pool_new(unsigned nthreads, struct bfs_pool **out);
/* Runs the queued async tasks' drop(), joins the workers. */
void bfs_pool_free(struct bfs_pool *p);
unsigned bfs_pool_threads(const struct bfs_pool *p);   /* 0 for NULL */

int bfs_pool_for(struct bfs_pool *p, size_t n,
                 int (*fn)(void *arg, size_t i), void *arg);

/* 0, or -EAGAIN when the queue is full or p is NULL (drop(arg) was run). */
int bfs_pool_async(struct bfs_pool *p, void (*fn)(void *arg),
                   void (*drop)(void *arg), void *arg);

#endif
