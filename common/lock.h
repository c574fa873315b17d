/* lock.h — scoped locks (as nbdkit's ACQUIRE_LOCK_FOR_CURRENT_SCOPE).
 *
 *   ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&m);        mutex held to end of scope
 *   ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE(&rw);     rwlock shared
 *   ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE(&rw);     rwlock exclusive
 *
 * Every return path unlocks, so error paths cannot leak a lock.  Header only.
 */
#ifndef BFS_LOCK_H
#define BFS_LOCK_H

#include <pthread.h>

static inline void
bfs_cleanup_unlock(pthread_mutex_t **m)
{
  pthread_mutex_unlock(*m);
}

static inline void
bfs_cleanup_rwunlock(pthread_rwlock_t **l)
{
  pthread_rwlock_unlock(*l);
}

#define BFS_LOCK_CAT_(a, b) a##b
#define BFS_LOCK_CAT(a, b) BFS_LOCK_CAT_(a, b)
#define BFS_LOCK_VAR BFS_LOCK_CAT(scoped_lock_, __LINE__)

#define ACQUIRE_LOCK_FOR_CURRENT_SCOPE(mutex)                              \
  __attribute__((cleanup(bfs_cleanup_unlock), unused))                     \
  pthread_mutex_t *BFS_LOCK_VAR = (mutex);                                 \
  pthread_mutex_lock(BFS_LOCK_VAR)

#define ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE(rwlock)                           \
  __attribute__((cleanup(bfs_cleanup_rwunlock), unused))                   \
  pthread_rwlock_t *BFS_LOCK_VAR = (rwlock);                               \
  pthread_rwlock_rdlock(BFS_LOCK_VAR)

#define ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE(rwlock)                           \
  __attribute__((cleanup(bfs_cleanup_rwunlock), unused))                   \
  pthread_rwlock_t *BFS_LOCK_VAR = (rwlock);                               \
  pthread_rwlock_wrlock(BFS_LOCK_VAR)

#endif
