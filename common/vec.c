/* vec.c — growth of the vector of vec.h. */
#include "common/vec.h"

#include <errno.h>
#include <stdint.h>

int
bfs_vec_reserve_(void **v, size_t *cap, size_t elem, size_t want)
{
  if (want <= *cap)
    return 0;
  /* from exactly what the first reservation asks: most vectors of a
   * scan's model hold one element (a backup's disk) */
  size_t ncap = *cap ? *cap : want;
  while (ncap < want) {
    if (ncap > SIZE_MAX / 2)
      return -ENOMEM;
    ncap *= 2;
  }
  size_t bytes;
  if (__builtin_mul_overflow(ncap, elem, &bytes))
    return -ENOMEM;
  void *p = realloc(*v, bytes ? bytes : 1);
  if (!p)
    return -ENOMEM;
  *v = p;
  *cap = ncap;
  return 0;
}
