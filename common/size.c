/* size.c — bfs_human_size (see size.h).  Binary units up to EiB; below
 * 1 KiB the exact byte count.  A value that would round to 1024.0 of a unit
 * is shown in the next one ("1.0 MiB", not "1024.0 KiB"). */
#include "common/size.h"

#include <inttypes.h>
#include <stdio.h>

const char *
bfs_human_size(uint64_t bytes, char *buf, size_t len)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB",
                                       "PiB", "EiB" };
  double v = (double)bytes;
  size_t u = 0;

  while (v >= 1024 * 0.99995 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(buf, len, "%" PRIu64 " B", bytes);
  else
    snprintf(buf, len, "%.1f %s", v, units[u]);
  return buf;
}
