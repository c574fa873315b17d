/* layout-restic.c — restic repositories (virt-rbd-backup and the like):
 *
 *   <dir>/config, keys/, snapshots/<id>, index/, data/     (format v1, v2)
 *
 * The repository may be the whole repository root or any directory in it.
 * Every file of a snapshot whose name ends in .img or .raw is a disk (raw);
 * one ending in .qcow2 is shown as a broken disk (a qcow2 image stored in
 * restic is not read yet).  A point in time is a snapshot: its time, host
 * and paths.  The VM is the snapshot's tag "vm=NAME" (or "vm:NAME") when
 * it has one, else the image's name without extension (virt-rbd-backup
 * stores each RBD image as `restic backup --stdin --stdin-filename
 * <image>.img`).  Disks are named after the file without its extension.
 *
 * What a snapshot holds never changes (restic writes a snapshot file
 * once), so the scan keeps it in the file cache as the snapshot file's
 * info (JSON: time, host, tags, files with sizes) and opens the repository
 * (scrypt, every index file) only for snapshots it has not seen: a rescan
 * of an unchanged repository reads no restic file at all.  The password
 * comes from the restic_password_file source option (--restic-password-file,
 * -o restic_password_file=) or RESTIC_PASSWORD_FILE; without it, or with a
 * wrong one, the unseen snapshots show as one broken backup saying why.
 *
 * Each disk's recipe is one "restic" layer (blk/restic-layer.c): locator
 * <dir>/snapshots/<id>, options path=<file in the snapshot>.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blk/restic.h"
#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"

/* walking a snapshot stops here: a file-level backup of a whole system
 * is not a disk backup, and listing it would make every scan slow */
#define RESTIC_WALK_MAX 200000

static bool
has(char **v, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (!strcmp(v[i], name)) return true;
  return false;
}

static bool
is_snapshot_id(const char *s)
{
  return strlen(s) == 2 * RESTIC_ID_LEN &&
         strspn(s, "0123456789abcdef") == 2 * RESTIC_ID_LEN;
}

const char *
restic_disk_ext(const char *path)
{
  const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
  if (!dot || (slash && dot < slash) || dot == (slash ? slash + 1 : path))
    return NULL;
  return !strcmp(dot, ".img") || !strcmp(dot, ".raw") ||
         !strcmp(dot, ".qcow2") ? dot : NULL;
}

/* ---- reading a snapshot (only for snapshots the cache does not hold) ---- */

struct walk {
  struct json_object *files;
  size_t nodes;
};

static int
walk_cb(const struct restic_node *n, void *opaque)
{
  struct walk *w = opaque;
  if (++w->nodes > RESTIC_WALK_MAX)
    return 1;
  if (n->type != RESTIC_NODE_FILE || !restic_disk_ext(n->path))
    return 0;
  struct json_object *f = json_object_new_object();
  json_object_object_add(f, "path", json_object_new_string(n->path));
  json_object_object_add(f, "size", json_object_new_int64((int64_t)n->size));
  json_object_array_add(w->files, f);
  return 0;
}

static struct json_object *
str_array(char **v, size_t n)
{
  struct json_object *a = json_object_new_array();
  for (size_t i = 0; i < n; i++)
    json_object_array_add(a, json_object_new_string(v[i]));
  return a;
}

/* the cache form of snapshot id: a JSON text, or NULL with the error set */
static char *
read_snapshot(struct restic_repo *repo, const char *id)
{
  struct restic_snapshot sn;
  if (restic_snapshot_get(repo, id, &sn) < 0)
    return NULL;
  struct walk w = { .files = json_object_new_array() };
  int r = restic_walk(repo, &sn, walk_cb, &w);
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "time", json_object_new_int64(sn.time));
  json_object_object_add(o, "host", json_object_new_string(sn.hostname));
  json_object_object_add(o, "paths", str_array(sn.paths, sn.n_paths));
  json_object_object_add(o, "tags", str_array(sn.tags, sn.n_tags));
  json_object_object_add(o, "files", w.files);
  if (r > 0)
    json_object_object_add(o, "truncated", json_object_new_boolean(1));
  char *out = r < 0 ? NULL
            : cat_xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
  json_object_put(o);
  restic_snapshot_clear(&sn);
  return out;
}

/* ---- the layout ---- */

struct repo_scan {
  struct scan *s;
  const char *rel;                /* the repository directory */
  const char *prefix;             /* rel + "/", or "" for the root */
  const char *label;              /* VM name for what cannot be read */
  struct restic_repo *repo;
  char *open_error;               /* why the repository did not open */
  bool tried;
};

static struct restic_repo *
repo_get(struct repo_scan *rs)
{
  if (rs->tried)
    return rs->repo;
  rs->tried = true;
  char *pwfile = NULL;
  int r = cat_source_option(rs->s->cat, "restic_password_file", &pwfile);
  if (r == -ENOENT && getenv("RESTIC_PASSWORD_FILE"))
    pwfile = cat_xstrdup(getenv("RESTIC_PASSWORD_FILE")), r = 0;
  if (r == -ENOENT)
    rs->open_error = cat_xasprintf("%s/%s: a restic repository: its password "
                                   "is needed (--restic-password-file FILE, -o "
                                   "restic_password_file=FILE or "
                                   "RESTIC_PASSWORD_FILE)", rs->s->cat->repo,
                                   rs->rel);
  else if (r == 0 && restic_open_password_file(rs->s->repo_fd, rs->rel, pwfile,
                                               &rs->repo) < 0)
    rs->open_error = cat_xstrdup(bfs_last_error());
  free(pwfile);
  if (rs->open_error)
    bfs_log(BFS_LOG_WARN, "%s", rs->open_error);
  return rs->repo;
}

const char *
restic_tag_vm(const char *tag)
{
  return tag && (!strncmp(tag, "vm=", 3) || !strncmp(tag, "vm:", 3)) &&
         tag[3] ? tag + 3 : NULL;
}

static const char *
vm_tag(struct json_object *tags)
{
  size_t n = tags ? json_object_array_length(tags) : 0;
  const char *vm = NULL;
  for (size_t i = 0; i < n && !vm; i++)
    vm = restic_tag_vm(json_object_get_string(
      json_object_array_get_idx(tags, i)));
  return vm;
}

static struct json_object *
jget(struct json_object *o, const char *k)
{
  struct json_object *v = NULL;
  return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

/* the backups of one snapshot, from its cache form */
static void
add_snapshot(struct repo_scan *rs, const char *id, const char *snaprel,
             const char *info)
{
  struct json_object *o = json_tokener_parse(info);
  if (!o) return;
  int64_t t = json_object_get_int64(jget(o, "time"));
  const char *host = json_object_get_string(jget(o, "host"));
  const char *tagged = vm_tag(jget(o, "tags"));
  struct json_object *files = jget(o, "files");
  size_t n = files ? json_object_array_length(files) : 0;
  struct model_backup *b = NULL;

  for (size_t i = 0; i < n; i++) {
    struct json_object *f = json_object_array_get_idx(files, i);
    const char *path = json_object_get_string(jget(f, "path"));
    uint64_t size = (uint64_t)json_object_get_int64(jget(f, "size"));
    const char *ext = path ? restic_disk_ext(path) : NULL;
    if (!ext) continue;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    CLEANUP_FREE char *stem = cat_xstrndup(base, (size_t)(ext - base));
    if (!tagged || !b) {
      CLEANUP_FREE char *key = cat_xasprintf("%s:%s", snaprel, path);
      b = scan_add_backup(rs->s, tagged ? tagged : stem, t, "restic", key);
      b->extra = cat_json_kv(3, "restic_snapshot", id, "restic_host", host,
                             "restic_repository", rs->rel);
    }
    CLEANUP_FREE char *opt = cat_xasprintf("path=%s", path);
    struct scan_layer l = { snaprel, "restic", opt };
    bool qcow2 = !strcmp(ext, ".qcow2");
    CLEANUP_FREE char *why = qcow2
      ? cat_xasprintf("%s in restic snapshot %.8s: a qcow2 image stored in "
                      "restic is not read yet (only raw .img/.raw files)",
                      path, id)
      : NULL;
    scan_add_disk_recipe(rs->s, b, stem, NULL, 0, &l, 1, size, size,
                         qcow2 ? "qcow2" : "raw", "none", why);
  }
  json_object_put(o);
}

/* snapshot file names in rel/snapshots, sorted */
static size_t
list_snapshots(struct scan *s, const char *dir, char ***out)
{
  size_t n = 0, cap = 0;
  char **v = NULL;
  int fd = openat(s->repo_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                  O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  if (!d) {
    if (fd >= 0) close(fd);
    *out = NULL;
    return 0;
  }
  struct dirent *e;
  while ((e = readdir(d)))
    if (is_snapshot_id(e->d_name)) {
      CAT_GROW(v, cap, n);
      v[n++] = cat_xstrdup(e->d_name);
    }
  closedir(d);
  *out = v;
  return n;
}

static int
cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
restic_dir(struct scan *s, const struct scan_dir *d)
{
  if (!has(d->files, d->nfiles, "config") || !has(d->dirs, d->ndirs, "keys") ||
      !has(d->dirs, d->ndirs, "snapshots") || !has(d->dirs, d->ndirs, "data") ||
      !has(d->dirs, d->ndirs, "index"))
    return false;

  bool root = !strcmp(d->rel, ".");
  CLEANUP_FREE char *prefix = root ? cat_xstrdup("")
                                   : cat_xasprintf("%s/", d->rel);
  CLEANUP_FREE char *snapdir = cat_xasprintf("%ssnapshots", prefix);
  const char *last = strrchr(s->cat->repo, '/');
  const char *label = root ? (last ? last + 1 : "restic")
                           : d->parts[d->depth - 1];
  struct repo_scan rs = { .s = s, .rel = root ? "." : d->rel,
                          .prefix = prefix, .label = label };
  char **ids;
  size_t n = list_snapshots(s, snapdir, &ids), unread = 0;
  int64_t newest = INT64_MIN;

  if (n > 1) qsort(ids, n, sizeof *ids, cmp_str);
  for (size_t i = 0; i < n; i++) {
    CLEANUP_FREE char *snaprel = cat_xasprintf("%s/%s", snapdir, ids[i]);
    struct scan_file *f = scan_file_get(s, snaprel, FILE_META, NULL);
    if (!f) continue;
    if (!f->info) {
      struct restic_repo *repo = repo_get(&rs);
      char *info = repo ? read_snapshot(repo, ids[i]) : NULL;
      if (!info) {
        if (repo)
          bfs_log(BFS_LOG_WARN, "%s: %s", snaprel, bfs_last_error());
        unread++;
        if (f->mtime_ns / 1000000000 > newest)
          newest = f->mtime_ns / 1000000000;
        continue;
      }
      f->info = info;
      f->dirty = true;
    }
    add_snapshot(&rs, ids[i], snaprel, f->info);
  }
  if (unread) {     /* visible, and saying why */
    CLEANUP_FREE char *why = rs.open_error
      ? cat_xstrdup(rs.open_error)
      : cat_xasprintf("%s/%s: %zu snapshot(s) could not be read (see the log)",
                      s->cat->repo, rs.rel, unread);
    CLEANUP_FREE char *key = cat_xasprintf("%s:unread", snapdir);
    struct model_backup *b = scan_add_backup(s, label, newest, "restic", key);
    b->status = cat_xstrdup(why);
    b->extra = cat_json_kv(1, "restic_repository", rs.rel);
  }
  for (size_t i = 0; i < n; i++) free(ids[i]);
  free(ids);
  free(rs.open_error);
  restic_close(rs.repo);
  return true;
}

const struct cat_layout layout_restic = {
  .name = "restic",
  .describe = "restic repository (<dir>/config, keys/, snapshots/: "
              "<image>.img per snapshot)",
  .dir = restic_dir,
};
