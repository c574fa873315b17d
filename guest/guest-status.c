/* guest-status.c — the pool's appliances for `backupfs status`.
 *
 * fs/holders.c puts guest_pool_status() under "appliances" in the mount's
 * status file, so `backupfs status MNT` can say which points in time have
 * an appliance starting (since when, waiting for what), running (its qemu
 * PID, a call in flight) or failed (why, when it retries).  Guests that
 * never launched or were closed idle are left out.
 *
 * The guest list only grows (guest_get prepends; nothing is freed before
 * guest_pool_free, after the FUSE session), so it is walked from a head
 * read under pool->lock without holding it: pool->lock is never taken
 * before a guest's slock (start_launcher takes them the other way round).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/json-str.h"
#include "guest/guest-int.h"

static struct json_object *
one(guest_t *g, time_t now)
{
  static const char *const names[] = {
    [G_IDLE] = "idle", [G_STARTING] = "starting", [G_READY] = "running",
    [G_FAILED] = "failed",
  };
  struct json_object *o = NULL;

  pthread_mutex_lock(&g->slock);
  if (g->state == G_IDLE)
    goto out;
  o = json_object_new_object();
  bfs_json_add_str(o, "key", g->key);
  json_object_object_add(o, "state", json_object_new_string(names[g->state]));
  switch (g->state) {
  case G_STARTING:
    json_object_object_add(o, "since", bfs_json_time(g->since));
    json_object_object_add(o, "elapsed_seconds",
                           json_object_new_int64(now - g->since));
    bfs_json_add_str(o, "waiting_for", g->phase ? g->phase : "the appliance");
    json_object_object_add(o, "gives_up_at",
                           bfs_json_time(g->since + g->pool->launch_timeout));
    break;
  case G_READY:
    json_object_object_add(o, "since", bfs_json_time(g->since));
    json_object_object_add(o, "qemu_pid", g->qemu_pid ?
                           json_object_new_int64(g->qemu_pid) : NULL);
    bfs_json_add_str(o, "call", g->call_since ? g->call_name : NULL);
    json_object_object_add(o, "call_seconds", g->call_since ?
                           json_object_new_int64(now - g->call_since) : NULL);
    json_object_object_add(o, "failed_mounts",
                           json_object_new_int64((int64_t)g->nfailed));
    break;
  case G_FAILED: {
    const char *e = g->launch_err ? g->launch_err : "launch failed";
    size_t k = strlen(g->key);
    if (!strncmp(e, g->key, k) && !strncmp(e + k, ": ", 2))
      e += k + 2;                        /* the key is there already */
    size_t n = strcspn(e, "\n");         /* the first line: what happened */
    char *line = strndup(e, n);
    json_object_object_add(o, "failed_at", bfs_json_time(g->failed_at));
    bfs_json_add_str(o, "error", line ? line : e);
    free(line);
    json_object_object_add(o, "retry_at", g->known_broken ? NULL :
                           bfs_json_time(g->failed_at + RETRY_SECONDS));
    json_object_object_add(o, "broken_in_catalog",
                           json_object_new_boolean(g->known_broken));
    break;
  }
  case G_IDLE:
    break;
  }
out:
  pthread_mutex_unlock(&g->slock);
  return o;
}

struct json_object *
guest_pool_status(guest_pool_t *pool)
{
  struct json_object *arr = json_object_new_array();
  time_t now = time(NULL);

  pthread_mutex_lock(&pool->lock);
  guest_t *head = pool->guests;
  pthread_mutex_unlock(&pool->lock);
  for (guest_t *g = head; g; g = g->next) {
    struct json_object *o = one(g, now);
    if (o)
      json_object_array_add(arr, o);
  }
  return arr;
}

void
guest_set_broken(guest_t *g, const char *why)
{
  pthread_mutex_lock(&g->slock);
  if (!why && g->known_broken) {             /* mended: launch next time */
    g->known_broken = false;
    g->state = G_IDLE;
    free(g->launch_err);
    g->launch_err = NULL;
  }
  else if (why && !g->known_broken &&
           (g->state == G_IDLE || g->state == G_FAILED)) {
    char *text = NULL;
    if (asprintf(&text, "%s: cannot show the guest's files: the catalog "
                 "found this backup broken: %s\nno appliance was started; "
                 "`backupfs list` shows the status, `backupfs verify` checks "
                 "the chain\n", g->key, why) < 0)
      text = NULL;
    if (text) {
      free(g->launch_err);
      g->launch_err = text;
      g->known_broken = true;
      g->failed_at = time(NULL);
      g->state = G_FAILED;
      pthread_cond_broadcast(&g->scond);
    }
  }
  pthread_mutex_unlock(&g->slock);
}
