/* progress.c — progress line and bandwidth limiter for restores.
 *
 * The progress line is drawn on stderr only when stderr is a terminal,
 * at most five times a second, with rate and ETA when the total is known.
 * The limiter is a token bucket that starts empty and holds at most a tenth
 * of a second of traffic, so a limited copy never bursts above its rate.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "restore/restore-int.h"

double
restore_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
restore_parse_rate(const char *s, double *out)
{
  char *end;
  double v;

  errno = 0;
  v = strtod(s, &end);
  if (errno || end == s || *end || !(v > 0) || !isfinite(v))
    return -EINVAL;
  *out = v;
  return 0;
}

void
restore_progress_init(struct progress *p, const char *what, uint64_t total,
                      bool count_files)
{
  memset(p, 0, sizeof *p);
  p->what = what;
  p->total = total;
  p->count_files = count_files;
  p->tty = isatty(STDERR_FILENO);
  p->start = restore_now();
}

static void
draw(struct progress *p, double now)
{
  char done[32], rate[32], eta[32] = "";
  double secs = now - p->start;
  /* a rate over less than a second is noise ("120.9 TiB/s" after a
   * cached first read): shown once there is a second to measure */
  double bps = secs >= 1.0 ? p->done / secs : 0;

  bfs_human_size(p->done, done, sizeof done);
  if (bps > 0) {
    bfs_human_size((uint64_t) bps, rate, sizeof rate - 2);
    strcat(rate, "/s");
  }
  else
    snprintf(rate, sizeof rate, "-");
  if (p->total && bps > 0 && p->done <= p->total) {
    uint64_t left = (uint64_t) ((p->total - p->done) / bps);
    snprintf(eta, sizeof eta, "  ETA %" PRIu64 ":%02" PRIu64 ":%02" PRIu64,
             left / 3600, left / 60 % 60, left % 60);
  }
  if (p->count_files)
    fprintf(stderr, "\r%s: %" PRIu64 " files, %s  %s%s\033[K", p->what,
            p->files, done, rate, eta);
  else if (p->total) {
    char tot[32];
    fprintf(stderr, "\r%s: %5.1f%%  %s / %s  %s%s\033[K", p->what,
            100.0 * p->done / p->total, done,
            bfs_human_size(p->total, tot, sizeof tot), rate, eta);
  }
  else
    fprintf(stderr, "\r%s: %s  %s\033[K", p->what, done, rate);
  p->last_draw = now;
}

void
restore_progress_add(struct progress *p, uint64_t bytes)
{
  double now;

  p->done += bytes;
  if (!p->tty)
    return;
  now = restore_now();
  if (now - p->last_draw >= 0.2)
    draw(p, now);
}

void
restore_progress_done(struct progress *p)
{
  if (!p->tty)
    return;
  draw(p, restore_now());
  fputc('\n', stderr);
}

void
restore_throttle_init(struct throttle *t, double mib_per_s)
{
  memset(t, 0, sizeof *t);
  t->rate = mib_per_s * 1024 * 1024;
  t->burst = t->rate / 10;
  t->last = restore_now();
}

void
restore_throttle(struct throttle *t, uint64_t n)
{
  double now, wait;

  if (t->rate <= 0)
    return;
  now = restore_now();
  t->tokens += (now - t->last) * t->rate;
  if (t->tokens > t->burst)
    t->tokens = t->burst;
  t->last = now;
  t->tokens -= n;
  if (t->tokens >= 0)
    return;
  wait = -t->tokens / t->rate;
  struct timespec ts = { .tv_sec = (time_t) wait,
                         .tv_nsec = (long) ((wait - (time_t) wait) * 1e9) };
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
    ;
  /* the sleep paid the debt: the bucket is empty at the new time */
  t->tokens = 0;
  t->last = restore_now();
}
