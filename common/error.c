/* error.c — thread-local last error and a tiny logger.
 *
 * The message buffer is per thread so FUSE worker threads never see each
 * other's errors.  Logging goes to stderr, or to syslog once the mount has
 * daemonised.
 */
#include "error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#define ERRBUF 1024
static _Thread_local char errbuf[ERRBUF];
int bfs_log_level = BFS_LOG_WARN;
static bool use_syslog;

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

void
bfs_log_use_syslog(void)
{
  openlog("backupfs", LOG_PID, LOG_DAEMON);
  use_syslog = true;
}

void
bfs_log(int level, const char *fmt, ...)
{
  static const char *const names[] = { "error", "warning", "info", "debug" };
  static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
  va_list ap;

  if (level > bfs_log_level)
    return;
  va_start(ap, fmt);
  if (use_syslog)
    vsyslog(prio[level], fmt, ap);
  else {
    char line[2048];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "backupfs: %s: %s\n", names[level], line);
  }
  va_end(ap);
}
