/* grow.c — see grow.h. */
#include "common/grow.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int
bfs_grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first)
{
  if (need <= *cap)
    return 0;
  size_t nc = *cap ? *cap : first ? first : 1;
  while (nc < need) {
    if (nc > SIZE_MAX / 2)
      return -ENOMEM;
    nc *= 2;
  }
  void *a = reallocarray(*arr, nc, elem);
  if (!a)
    return -ENOMEM;
  *arr = a;
  *cap = nc;
  return 0;
}
