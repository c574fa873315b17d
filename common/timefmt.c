/* timefmt.c — see timefmt.h. */
#include "common/timefmt.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

static const char *
utc(int64_t t, bool colons, char buf[static BFS_TIME_MAX])
{
  struct tm tm;
  time_t tt = (time_t)t;
  if (!gmtime_r(&tt, &tm) ||
      !strftime(buf, BFS_TIME_MAX,
                colons ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%dT%H%M%SZ", &tm))
    snprintf(buf, BFS_TIME_MAX, "%" PRId64, t);
  return buf;
}

const char *
bfs_time_iso(int64_t t, char buf[static BFS_TIME_MAX])
{
  return utc(t, true, buf);
}

const char *
bfs_time_name(int64_t t, char buf[static BFS_TIME_MAX])
{
  return utc(t, false, buf);
}
