/* vec.h — a growable vector: any struct with members v (T *), n and cap.
 *
 *   BFS_VEC(char *) names = BFS_VEC_INIT;        or a member of a struct
 *   BFS_VEC_TYPE(runs, struct run);              a named type: struct runs
 *   if (bfs_vec_push(&names, s) < 0) ...         -ENOMEM, names unchanged
 *   for (size_t i = 0; i < names.n; i++) ... names.v[i] ...
 *   bfs_vec_free(&names);                        frees v, not the elements
 *
 * Capacity doubles (the first reservation takes exactly what it asks, so
 * a vector of one element costs one), so n pushes cost O(n).  The
 * macros evaluate their vector argument more than once.  Pointers into v
 * are valid only until the next push/reserve.
 *
 * THREAD MODEL: none inside; callers lock.
 */
#ifndef BFS_VEC_H
#define BFS_VEC_H

#include <stddef.h>
#include <stdlib.h>

#define BFS_VEC(T) struct { T *v; size_t n, cap; }
#define BFS_VEC_TYPE(name, T) struct name { T *v; size_t n, cap; }
#define BFS_VEC_INIT { NULL, 0, 0 }

/* *v holds *cap elements of elem bytes; make room for want.
 * 0 or -ENOMEM (then *v and *cap are unchanged). */
int bfs_vec_reserve_(void **v, size_t *cap, size_t elem, size_t want);

/* room for want elements in all; 0 or -ENOMEM */
#define bfs_vec_reserve(x, want)                                            \
  ({ void *bfs_vec_p_ = (x)->v;                                             \
     int bfs_vec_r_ = bfs_vec_reserve_(&bfs_vec_p_, &(x)->cap,              \
                                       sizeof *(x)->v, (want));             \
     (x)->v = bfs_vec_p_;                                                   \
     bfs_vec_r_; })

/* append e; 0 or -ENOMEM */
#define bfs_vec_push(x, e)                                                  \
  ({ int bfs_vec_pr_ = bfs_vec_reserve((x), (x)->n + 1);                    \
     if (!bfs_vec_pr_)                                                      \
       (x)->v[(x)->n++] = (e);                                              \
     bfs_vec_pr_; })

#define bfs_vec_free(x)                                                     \
  do { free((x)->v); (x)->v = NULL; (x)->n = (x)->cap = 0; } while (0)

#endif
