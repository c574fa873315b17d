/* grow.h — the one growth rule of backupfs' arrays.
 *
 *   if (bfs_grow((void **)&v, &cap, n + 1, sizeof *v, 64) < 0)
 *     return bfs_error(-ENOMEM, "WHAT: out of memory");
 *   v[n++] = x;
 *
 * makes *arr (*cap elements of elem bytes) hold at least need elements:
 * the capacity doubles, from first when it is 0, with reallocarray (no
 * overflow of count * size).  0, or -ENOMEM with *arr and *cap as they
 * were: the caller names what ran out. */
#ifndef BFS_GROW_H
#define BFS_GROW_H

#include <stddef.h>

int bfs_grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first);

#endif
