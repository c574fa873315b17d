/* qstate.c — a quick restore's state: DEST/.backupfs/quick.json.
 *
 * What `restore consolidate` and `restore status` need after `restore
 * quick` has returned: how the overlays are backed (via mount, repo or
 * nbd), the point in time (repository, catalog, VM, backup name), the
 * domain, every disk (name, target, overlay), the NBD export's process
 * (PID, socket) that must stay alive until consolidation is verified, and
 * where consolidation stands (state + a message saying what to do next).
 * Written whole to a temporary file and renamed, so a reader never sees
 * half a state; the directory is the restore's own (DEST is the caller's).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/ioutil.h"
#include "restore/quick.h"

static void
put_str(json_object *o, const char *k, const char *v)
{
  if (v)
    json_object_object_add(o, k, json_object_new_string(v));
}

int
qstate_dir(const char *dest, char **out)
{
  if (asprintf(out, "%s/.backupfs", dest) < 0)
    return bfs_error(-ENOMEM, "out of memory");
  if (mkdir(*out, 0700) < 0 && errno != EEXIST) {
    int e = errno;
    free(*out);
    *out = NULL;
    return bfs_error(-e, "%s/.backupfs: %s", dest, strerror(e));
  }
  return 0;
}

int
qstate_save(const struct qstate *q)
{
  CLEANUP_FREE char *dir = NULL, *path = NULL, *tmp = NULL;
  json_object *o = json_object_new_object(), *ds = json_object_new_array();
  int r, fd;

  if ((r = qstate_dir(q->dest, &dir)) < 0) {
    json_object_put(o);
    json_object_put(ds);
    return r;
  }
  put_str(o, "via", q->via);
  put_str(o, "repository", q->repo);
  put_str(o, "catalog", q->catalog);
  put_str(o, "vm", q->vm);
  put_str(o, "time", q->time);
  put_str(o, "backup_dir", q->bdir);
  put_str(o, "domain", q->domain);
  put_str(o, "state", q->state);
  put_str(o, "message", q->message);
  if (q->serve_pid > 0)
    json_object_object_add(o, "serve_pid", json_object_new_int64(q->serve_pid));
  put_str(o, "serve_socket", q->serve_socket);
  for (size_t i = 0; i < q->ndisks; i++) {
    json_object *d = json_object_new_object();
    put_str(d, "name", q->disks[i].name);
    put_str(d, "target", q->disks[i].target);
    put_str(d, "overlay", q->disks[i].overlay);
    put_str(d, "backing", q->disks[i].backing);
    put_str(d, "state", q->disks[i].state);
    json_object_array_add(ds, d);
  }
  json_object_object_add(o, "disks", ds);
  if (asprintf(&path, "%s/quick.json", dir) < 0 ||
      asprintf(&tmp, "%s/.quick.json.tmp", dir) < 0) {
    json_object_put(o);
    return bfs_error(-ENOMEM, "out of memory");
  }
  const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    r = bfs_error(-errno, "%s: %s", tmp, strerror(errno));
  } else {
    r = bfs_write_all(fd, text, strlen(text));
    if (r == 0 && (bfs_write_all(fd, "\n", 1) < 0 || fsync(fd) < 0))
      r = bfs_error(-EIO, "%s: %s", tmp, strerror(errno));
    if (close(fd) < 0 && r == 0)
      r = bfs_error(-errno, "%s: %s", tmp, strerror(errno));
    if (r == 0 && rename(tmp, path) < 0)
      r = bfs_error(-errno, "%s: %s", path, strerror(errno));
    if (r < 0)
      unlink(tmp);
  }
  json_object_put(o);
  return r;
}

static char *
dup_str(json_object *o, const char *k)
{
  json_object *v;
  if (!json_object_object_get_ex(o, k, &v) ||
      !json_object_is_type(v, json_type_string))
    return NULL;
  return strdup(json_object_get_string(v));
}

int
qstate_load(const char *dest, struct qstate *q)
{
  CLEANUP_FREE char *path = NULL;
  json_object *o, *ds, *v;

  memset(q, 0, sizeof *q);
  if (asprintf(&path, "%s/.backupfs/quick.json", dest) < 0)
    return bfs_error(-ENOMEM, "out of memory");
  if (access(path, F_OK) < 0)
    return bfs_error(-ENOENT, "%s: not a quick restore's directory (no "
                     ".backupfs/quick.json)", dest);
  if (!(o = json_object_from_file(path)))
    return bfs_error(-EINVAL, "%s: not readable JSON", path);
  q->dest = strdup(dest);
  q->via = dup_str(o, "via");
  q->repo = dup_str(o, "repository");
  q->catalog = dup_str(o, "catalog");
  q->vm = dup_str(o, "vm");
  q->time = dup_str(o, "time");
  q->bdir = dup_str(o, "backup_dir");
  q->domain = dup_str(o, "domain");
  q->state = dup_str(o, "state");
  q->message = dup_str(o, "message");
  q->serve_socket = dup_str(o, "serve_socket");
  if (json_object_object_get_ex(o, "serve_pid", &v))
    q->serve_pid = (pid_t)json_object_get_int64(v);
  if (json_object_object_get_ex(o, "disks", &ds) &&
      json_object_is_type(ds, json_type_array)) {
    q->ndisks = json_object_array_length(ds);
    q->disks = calloc(q->ndisks ? q->ndisks : 1, sizeof *q->disks);
    for (size_t i = 0; q->disks && i < q->ndisks; i++) {
      json_object *d = json_object_array_get_idx(ds, i);
      q->disks[i].name = dup_str(d, "name");
      q->disks[i].target = dup_str(d, "target");
      q->disks[i].overlay = dup_str(d, "overlay");
      q->disks[i].backing = dup_str(d, "backing");
      q->disks[i].state = dup_str(d, "state");
    }
  }
  json_object_put(o);
  if (!q->dest || !q->via || !q->domain || !q->disks || !q->ndisks)
    return bfs_error(-EINVAL, "%s: incomplete quick restore state", path);
  for (size_t i = 0; i < q->ndisks; i++)
    if (!q->disks[i].name || !q->disks[i].target || !q->disks[i].overlay)
      return bfs_error(-EINVAL, "%s: disk %zu incomplete", path, i);
  return 0;
}

void
qstate_set(char **field, const char *value)
{
  free(*field);
  *field = value ? strdup(value) : NULL;
}

void
qstate_free(struct qstate *q)
{
  free(q->dest);
  free(q->via);
  free(q->repo);
  free(q->catalog);
  free(q->vm);
  free(q->time);
  free(q->bdir);
  free(q->domain);
  free(q->state);
  free(q->message);
  free(q->serve_socket);
  for (size_t i = 0; q->disks && i < q->ndisks; i++) {
    free(q->disks[i].name);
    free(q->disks[i].target);
    free(q->disks[i].overlay);
    free(q->disks[i].backing);
    free(q->disks[i].state);
  }
  free(q->disks);
  memset(q, 0, sizeof *q);
}
