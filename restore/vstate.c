/* vstate.c — verify's memory: the content checksum of every image file.
 *
 * The catalog belongs to catalog/, so verify keeps its own small JSON file
 * (json-c) next to it: <catalog dir>/verify-<xxh64 of the repo path>.json,
 * or --state FILE.  Per image file (repository-relative path): xxh3-128 of
 * its raw bytes, size, mtime, when it was first and last verified.  The file
 * is replaced atomically (write a temporary, fsync, rename).
 *
 *   { "version": 1, "repo": "/srv/backups",
 *     "images": { "web01/2026.10.01.03.00.00/root.5.qcow2":
 *                 { "xxh3": "<32 hex>", "size": 123, "mtime": 1790000000,
 *                   "first_verified": "2026-11-22T01:50:00Z",
 *                   "last_verified": "2026-11-23T01:50:00Z" } } }
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/timefmt.h"
#include "restore/restore-int.h"

struct vstate {
  char *path;
  json_object *root, *images;
  bool dirty;
};

static int
mkdir_p(const char *dir)
{
  CLEANUP_FREE char *p = strdup(dir);

  if (!p)
    return -ENOMEM;
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = '\0';
      if (mkdir(p, 0755) < 0 && errno != EEXIST)
        return -errno;
      *s = '/';
    }
  if (mkdir(p, 0755) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

/* default: next to the catalog database */
static char *
default_path(const char *repo, const char *catalog_path)
{
  CLEANUP_FREE char *dir = NULL;
  char *out = NULL;
  unsigned long long h = XXH3_64bits(repo, strlen(repo));

  if (catalog_path) {
    CLEANUP_FREE char *c = strdup(catalog_path);
    dir = c ? strdup(dirname(c)) : NULL;
  }
  else {
    /* the catalog's own rule (catalog/catalog.c), so the two sit together */
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int r = 0;
    if (geteuid() == 0 && !xdg)
      dir = strdup("/var/cache/backupfs");
    else if (xdg && xdg[0] == '/')
      r = asprintf(&dir, "%s/backupfs", xdg);
    else
      r = asprintf(&dir, "%s/.cache/backupfs", home && home[0] == '/' ? home : "/tmp");
    if (r < 0)
      dir = NULL;
  }
  if (dir && asprintf(&out, "%s/verify-%016llx.json", dir, h) < 0)
    out = NULL;
  return out;
}

int
vstate_open(const char *repo, const char *catalog_path, const char *path,
            struct vstate **out)
{
  struct vstate *s = calloc(1, sizeof *s);

  if (!s)
    return bfs_error(-ENOMEM, "out of memory");
  s->path = path ? strdup(path) : default_path(repo, catalog_path);
  if (!s->path) {
    free(s);
    return bfs_error(-ENOMEM, "out of memory");
  }
  if (access(s->path, F_OK) == 0) {
    s->root = json_object_from_file(s->path);
    if (!s->root || !json_object_object_get_ex(s->root, "images", &s->images)
        || !json_object_is_type(s->images, json_type_object)) {
      int r = bfs_error(-EINVAL, "%s: not a verify state file: %s", s->path,
                        s->root ? "no images object" : json_util_get_last_err());
      vstate_close(s);
      return r;
    }
  }
  else {
    s->root = json_object_new_object();
    s->images = json_object_new_object();
    json_object_object_add(s->root, "version", json_object_new_int(1));
    json_object_object_add(s->root, "repo", json_object_new_string(repo));
    json_object_object_add(s->root, "images", s->images);
  }
  *out = s;
  return 0;
}

const char *
vstate_path(const struct vstate *s)
{
  return s->path;
}

int
vstate_check(struct vstate *s, const char *key, const char *xxh3,
             uint64_t size, int64_t mtime, bool record, bool reset)
{
  json_object *e, *v;
  char now[BFS_TIME_MAX];

  bfs_time_iso(time(NULL), now);
  if (!reset && json_object_object_get_ex(s->images, key, &e)) {
    const char *old = json_object_object_get_ex(e, "xxh3", &v)
                      ? json_object_get_string(v) : "";
    const char *first = json_object_object_get_ex(e, "first_verified", &v)
                        ? json_object_get_string(v) : "?";
    int64_t osize = json_object_object_get_ex(e, "size", &v)
                    ? json_object_get_int64(v) : -1;
    if (strcmp(old, xxh3))
      return bfs_error(-EIO, "%s: content changed since first verified %s "
                       "(xxh3 %s, now %s%s)", key, first, old, xxh3,
                       osize != (int64_t) size ? "; size changed" : "");
    json_object_object_add(e, "last_verified", json_object_new_string(now));
    s->dirty = true;
    return 0;
  }
  if (!record)
    return 0;
  e = json_object_new_object();
  json_object_object_add(e, "xxh3", json_object_new_string(xxh3));
  json_object_object_add(e, "size", json_object_new_int64(size));
  json_object_object_add(e, "mtime", json_object_new_int64(mtime));
  json_object_object_add(e, "first_verified", json_object_new_string(now));
  json_object_object_add(e, "last_verified", json_object_new_string(now));
  json_object_object_add(s->images, key, e);
  s->dirty = true;
  return 1;
}

int
vstate_save(struct vstate *s)
{
  CLEANUP_FREE char *tmp = NULL, *dcopy = strdup(s->path);
  const char *text;
  int fd, r;

  if (!s->dirty)
    return 0;
  if (!dcopy || asprintf(&tmp, "%s.tmp.%d", s->path, (int) getpid()) < 0)
    return bfs_error(-ENOMEM, "out of memory");
  if ((r = mkdir_p(dirname(dcopy))) < 0)
    return bfs_error(r, "%s: cannot create its directory: %s", s->path,
                     strerror(-r));
  text = json_object_to_json_string_ext(s->root, JSON_C_TO_STRING_PRETTY);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return bfs_error(-errno, "%s: %s", tmp, strerror(errno));
  size_t len = strlen(text);
  if (write(fd, text, len) != (ssize_t) len || write(fd, "\n", 1) != 1 ||
      fsync(fd) < 0) {
    r = -errno;
    close(fd);
    unlink(tmp);
    return bfs_error(r ? r : -EIO, "%s: write: %s", tmp, strerror(-r));
  }
  close(fd);
  if (rename(tmp, s->path) < 0) {
    r = -errno;
    unlink(tmp);
    return bfs_error(r, "%s: %s", s->path, strerror(-r));
  }
  s->dirty = false;
  return 0;
}

void
vstate_close(struct vstate *s)
{
  if (!s)
    return;
  json_object_put(s->root);
  free(s->path);
  free(s);
}
