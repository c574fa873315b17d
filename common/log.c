/* log.c — backupfs' logger: level filter, repeat limiter, sinks.
 *
 * One mutex serialises the limiter and the writes, so lines of different
 * threads never interleave.  The limiter keeps the LOG_SLOTS most recent
 * distinct messages (xxhash of common/htab.h + text); a message seen again within the
 * window only counts.  The sinks are chosen once by bfs_log_start() (see
 * log.h); before that, and for every command but a mount, stderr only.
 */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/htab.h"

#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#endif

#define LOG_LINE 2048
#define LOG_SLOTS 16
#define LOG_REPEAT_WINDOW 60        /* seconds */

int bfs_log_level = BFS_LOG_WARN;

enum sink { SINK_STDERR, SINK_JOURNAL_STREAM, SINK_JOURNAL, SINK_SYSLOG, SINK_FILE };

struct slot {
  uint64_t hash;
  int level;
  unsigned suppressed;              /* not written since `since` */
  time_t since;                     /* last time it was written */
  uint64_t used;                    /* LRU stamp; 0: free */
  char msg[LOG_LINE];
};

static struct {
  pthread_mutex_t lock;
  enum sink sink;
  bool also_stderr;
  FILE *file;
  char where[4096];
  uint64_t clock;
  struct slot slots[LOG_SLOTS];
} lg = { .lock = PTHREAD_MUTEX_INITIALIZER, .sink = SINK_STDERR };

static const char *const level_names[] = { "error", "warning", "info", "debug" };

int
bfs_log_parse_level(const char *name)
{
  static const char *const names[] = { "error", "warn", "info", "debug" };
  for (int i = 0; i < 4; i++)
    if (!strcmp(name, names[i]) || !strcmp(name, level_names[i]))
      return i;
  return bfs_error(-EINVAL, "log level '%s': want error, warn, info or debug",
                   name);
}

static void
write_stderr(int level, const char *msg)
{
  fprintf(stderr, "backupfs: %s: %s\n", level_names[level], msg);
}

/* lg.lock held */
static void
emit(int level, const char *msg)
{
  static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

  switch (lg.sink) {
  case SINK_STDERR:
    write_stderr(level, msg);
    return;
  case SINK_JOURNAL_STREAM:         /* journald reads <N> prefixes */
    fprintf(stderr, "<%d>%s: %s\n", prio[level], level_names[level], msg);
    return;
  case SINK_JOURNAL:
#if HAVE_LIBSYSTEMD
    sd_journal_print(prio[level], "%s: %s", level_names[level], msg);
#endif
    break;
  case SINK_SYSLOG:
    syslog(prio[level], "%s: %s", level_names[level], msg);
    break;
  case SINK_FILE: {
    char stamp[64];
    struct tm tm;
    time_t now = time(NULL);
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S%z", &tm);
    fprintf(lg.file, "%s backupfs[%ld]: %s: %s\n", stamp, (long)getpid(),
            level_names[level], msg);
    fflush(lg.file);
    break;
  }
  }
  if (lg.also_stderr)
    write_stderr(level, msg);
}

static void
emit_repeated(const struct slot *s, unsigned n)
{
  char line[LOG_LINE + 64];
  snprintf(line, sizeof line, "%s (repeated %u times)", s->msg, n);
  emit(s->level, line);
}

/* lg.lock held: write MSG unless it is a repeat within the window */
static void
limit_and_emit(int level, const char *msg)
{
  uint64_t h = bfs_hash_str(msg);
  time_t now = time(NULL);
  struct slot *lru = &lg.slots[0];

  for (int i = 0; i < LOG_SLOTS; i++) {
    struct slot *s = &lg.slots[i];
    if (s->used && s->hash == h && s->level == level && !strcmp(s->msg, msg)) {
      s->used = ++lg.clock;
      if (now - s->since < LOG_REPEAT_WINDOW) {
        s->suppressed++;
        return;
      }
      if (s->suppressed)
        emit_repeated(s, s->suppressed + 1);
      else
        emit(level, msg);
      s->suppressed = 0;
      s->since = now;
      return;
    }
    if (s->used < lru->used)
      lru = s;
  }
  if (lru->used && lru->suppressed)
    emit_repeated(lru, lru->suppressed);
  *lru = (struct slot){ .hash = h, .level = level, .since = now,
                        .used = ++lg.clock };
  snprintf(lru->msg, sizeof lru->msg, "%s", msg);
  emit(level, msg);
}

void
bfs_log(int level, const char *fmt, ...)
{
  char line[LOG_LINE];
  va_list ap;
  int saved = errno;                /* callers' %m */

  if (level > bfs_log_level)
    return;
  if (level < BFS_LOG_ERROR)
    level = BFS_LOG_ERROR;
  va_start(ap, fmt);
  errno = saved;
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&lg.lock);
  limit_and_emit(level, line);
  pthread_mutex_unlock(&lg.lock);
  errno = saved;
}

/* JOURNAL_STREAM=<dev>:<ino> names stderr when it is the journal */
static bool
stderr_is_journal(void)
{
  const char *js = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;
  return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
         fstat(2, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

static bool
under_systemd(void)
{
#if HAVE_LIBSYSTEMD
  return getenv("INVOCATION_ID") || sd_booted() > 0;
#else
  return false;                     /* without libsystemd: syslog */
#endif
}

static FILE *
open_log_file(const char *path)
{
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
  if (fd < 0)
    return NULL;
  FILE *f = fdopen(fd, "a");
  if (!f)
    close(fd);
  return f;
}

int
bfs_log_start(const struct bfs_log_target *t)
{
  char path[4096];
  enum sink sink;
  FILE *f = NULL;

  if (t->file) {
    f = open_log_file(t->file);
    if (!f)
      return bfs_error(-errno, "log file %s: %m", t->file);
    sink = SINK_FILE;
    snprintf(path, sizeof path, "%s", t->file);
  }
  else if (stderr_is_journal()) {
    sink = SINK_JOURNAL_STREAM;
    snprintf(path, sizeof path, "the systemd journal (stderr)");
  }
  else if (under_systemd()) {
    sink = SINK_JOURNAL;
    snprintf(path, sizeof path, "the systemd journal");
  }
  else if (access("/dev/log", W_OK) == 0) {
    sink = SINK_SYSLOG;
    snprintf(path, sizeof path, "syslog");
  }
  else {
    snprintf(path, sizeof path, "%s/backupfs.log",
             t->state_dir ? t->state_dir : ".");
    f = open_log_file(path);
    if (!f)
      return bfs_error(-errno, "log file %s: %m", path);
    sink = SINK_FILE;
  }
  pthread_mutex_lock(&lg.lock);
  if (lg.file)
    fclose(lg.file);
  lg.file = f;
  lg.sink = sink;
  if (sink == SINK_SYSLOG)
    openlog("backupfs", LOG_PID, LOG_DAEMON);
  lg.also_stderr = t->foreground && sink != SINK_JOURNAL_STREAM;
  snprintf(lg.where, sizeof lg.where, "%s", path);
  pthread_mutex_unlock(&lg.lock);
  return 0;
}

const char *
bfs_log_where(void)
{
  return lg.where[0] ? lg.where : "stderr";
}

void
bfs_log_close(void)
{
  pthread_mutex_lock(&lg.lock);
  for (int i = 0; i < LOG_SLOTS; i++) {
    struct slot *s = &lg.slots[i];
    if (s->used && s->suppressed)
      emit_repeated(s, s->suppressed);
    s->suppressed = 0;
  }
  if (lg.sink == SINK_SYSLOG)
    closelog();
  if (lg.file)
    fclose(lg.file);
  lg.file = NULL;
  lg.sink = SINK_STDERR;
  lg.also_stderr = false;
  lg.where[0] = '\0';
  pthread_mutex_unlock(&lg.lock);
}
