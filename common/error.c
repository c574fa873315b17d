/* error.c — thread-local last error.
 *
 * The message buffer is per thread so FUSE worker threads never see each
 * other's errors.  Logging is in log.c.
 */
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ERRBUF 1024
static _Thread_local char errbuf[ERRBUF];

int
bfs_error(int neg_errno, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, sizeof errbuf, fmt, ap);
  va_end(ap);
  return neg_errno;
}

int
bfs_error_prefix(int neg_errno, const char *fmt, ...)
{
  char old[ERRBUF], pre[ERRBUF];
  va_list ap;

  memcpy(old, errbuf, sizeof old);
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  snprintf(errbuf, sizeof errbuf, "%s%s", pre,
           old[0] ? old : strerror(neg_errno < 0 ? -neg_errno : neg_errno));
  return neg_errno;
}

const char *
bfs_last_error(void)
{
  return errbuf[0] ? errbuf : "unknown error";
}

void
bfs_clear_error(void)
{
  errbuf[0] = '\0';
}
