/* waitline.c — see waitline.h.  The thread and the command share one
 * mutex around drawing, so a clear from the command never interleaves with
 * a redraw; the thread sleeps on a condition variable so stop is prompt. */
#include "common/waitline.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define TICK_MS 500

struct bfs_waitline {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop, drawn;
  char *(*poll)(void *);
  void *arg;
};

static void
clear_locked(struct bfs_waitline *w)
{
  if (w->drawn)
    fputs("\r\033[K", stderr);
  w->drawn = false;
}

static void *
run(void *p)
{
  struct bfs_waitline *w = p;
  pthread_mutex_lock(&w->lock);
  while (!w->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += TICK_MS * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    if (w->stop)
      break;
    pthread_mutex_unlock(&w->lock);
    char *text = w->poll(w->arg);          /* may block on a FUSE read */
    pthread_mutex_lock(&w->lock);
    if (w->stop) {
      free(text);
      break;
    }
    if (text) {
      fprintf(stderr, "\r%s\033[K", text);
      fflush(stderr);
      w->drawn = true;
    }
    else
      clear_locked(w);
    free(text);
  }
  clear_locked(w);
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

struct bfs_waitline *
bfs_waitline_start(char *(*poll)(void *arg), void *arg)
{
  if (!isatty(STDERR_FILENO))
    return NULL;
  struct bfs_waitline *w = calloc(1, sizeof *w);
  if (!w)
    return NULL;
  w->poll = poll;
  w->arg = arg;
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cond, NULL);
  if (pthread_create(&w->thread, NULL, run, w)) {
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
    return NULL;
  }
  return w;
}

void
bfs_waitline_clear(struct bfs_waitline *w)
{
  if (!w)
    return;
  pthread_mutex_lock(&w->lock);
  clear_locked(w);
  fflush(stderr);
  pthread_mutex_unlock(&w->lock);
}

void
bfs_waitline_stop(struct bfs_waitline *w)
{
  if (!w)
    return;
  pthread_mutex_lock(&w->lock);
  w->stop = true;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->cond);
  free(w);
}

static const char *
str(struct json_object *o, const char *k)
{
  struct json_object *v;
  return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v)
                                                  : NULL;
}

static long long
num(struct json_object *o, const char *k)
{
  struct json_object *v;
  return json_object_object_get_ex(o, k, &v) && v ? json_object_get_int64(v)
                                                  : -1;
}

char *
bfs_waitline_appliance_text(struct json_object *as, const char *key_prefix)
{
  size_t n = as && json_object_is_type(as, json_type_array) ?
             json_object_array_length(as) : 0;
  char *text = NULL;

  for (size_t i = 0; i < n && !text; i++) {
    struct json_object *a = json_object_array_get_idx(as, i);
    const char *key = str(a, "key"), *state = str(a, "state");
    if (!key || !state || (key_prefix &&
                           strncmp(key, key_prefix, strlen(key_prefix))))
      continue;
    if (!strcmp(state, "starting")) {
      if (asprintf(&text, "%s: starting the appliance (%llds, gives up at "
                   "%s): waiting for %s", key, num(a, "elapsed_seconds"),
                   str(a, "gives_up_at") ? str(a, "gives_up_at") : "?",
                   str(a, "waiting_for") ? str(a, "waiting_for") : "?") < 0)
        text = NULL;
    }
    else if (!strcmp(state, "running") && str(a, "call") &&
             num(a, "call_seconds") >= 1) {
      if (asprintf(&text, "%s: appliance busy: %s (%llds)", key,
                   str(a, "call"), num(a, "call_seconds")) < 0)
        text = NULL;
    }
  }
  return text;
}
