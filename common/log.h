/* log.h — levels, sinks and rate limiting of backupfs' log.
 *
 * Commands log to stderr ("backupfs: warning: ...").  A mount daemon calls
 * bfs_log_start() once it is detached and from then on logs to, in order of
 * preference: the file of -o log=FILE; else the systemd journal when running
 * under systemd (stderr with <N> priority prefixes when stderr is the
 * journal stream, JOURNAL_STREAM, else sd_journal_print); else syslog when
 * /dev/log exists; else backupfs.log in the state directory (next to the
 * catalog).  A foreground mount also logs to stderr.
 *
 * Identical messages repeated within LOG_REPEAT_WINDOW seconds are written
 * once; the next one after the window, or bfs_log_close(), writes
 * "... (repeated N times)" with the count.  Thread-safe.
 */
#ifndef BFS_LOG_H
#define BFS_LOG_H

#include <stdbool.h>

enum { BFS_LOG_ERROR, BFS_LOG_WARN, BFS_LOG_INFO, BFS_LOG_DEBUG };
extern int bfs_log_level;          /* default BFS_LOG_WARN */

void bfs_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "error", "warn"/"warning", "info", "debug": the level, or -EINVAL with
 * bfs_last_error() listing the names. */
int bfs_log_parse_level(const char *name);

struct bfs_log_target {
  const char *file;                 /* -o log=FILE (absolute), or NULL */
  const char *state_dir;            /* where backupfs.log goes as a last resort */
  bool foreground;                  /* also stderr */
};
/* Switch from stderr to the daemon's sinks (above).  Returns 0 or -errno
 * (the log file cannot be opened; stderr stays). */
int bfs_log_start(const struct bfs_log_target *t);
/* Where the log goes now, for people: "/var/log/x.log", "syslog", ... */
const char *bfs_log_where(void);
/* Write pending "(repeated N times)" counts; close the file or syslog. */
void bfs_log_close(void);

#endif
