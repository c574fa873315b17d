/* find.c — `backupfs find REPO [VM] GLOB`: search the stored guest file
 * indexes of every backup (see index.c) without starting an appliance.
 *
 * GLOB is an fnmatch(3) pattern: with a '/' it is matched against the whole
 * guest path, else against the file name.  Each indexed point in time's
 * matches come as a path-sorted list (index-list.c); a version of a path
 * (same type, mode, owner, size, mtime, link target) that is in several
 * consecutive indexed points in time of a VM is one row with the range,
 * unless --all-versions.  Rows are tab-separated, in VM, first time, path
 * order: vm@time, path, size, mtime (UTC), and for a range "..  LAST (N)".
 * A point in time that is not indexed is not seen: a range spans the
 * indexed ones (`backupfs history` shows the gaps).
 */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk/luks.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/vec.h"
#include "common/opts.h"
#include "common/timefmt.h"
#include "common/waitline.h"
#include "fs/fs.h"
#include "guest/guest-cache.h"
#include "guest/index.h"

struct run {
  struct index_entry e;     /* owned */
  char *first, *last;
  unsigned points;
};

struct find_ctx {
  const char *glob;
  bool whole_path, all_versions;
  json_object *json;        /* --json: the array of rows */
  uint64_t matches;
  char *vm;                 /* the VM whose runs are collected */
  struct run *runs;
  size_t nruns, cap;
  size_t *open;             /* indexes into runs of the runs still open, by path */
  size_t nopen;
  struct bfs_waitline *wl;  /* on a terminal: how far the search is */
  atomic_uint points;       /* indexed points in time read so far */
  atomic_uint_fast64_t shown;  /* matches printed so far */
};

static char *
progress_text(void *arg)
{
  struct find_ctx *x = arg;
  char *t = NULL;
  if (asprintf(&t, "find: searching the file indexes: %u point(s) in time "
               "read, %" PRIu64 " match(es)", atomic_load(&x->points),
               (uint64_t)atomic_load(&x->shown)) < 0)
    t = NULL;
  return t;
}

static bool
want(void *opaque, const char *path, const struct stat *st)
{
  struct find_ctx *x = opaque;
  return fnmatch(x->glob, x->whole_path ? path : gc_basename(path), 0) == 0;
}

static void
print_run(struct find_ctx *x, const char *vm, const struct run *u)
{
  const struct stat *st = &u->e.st;
  char when[32];
  bfs_time_iso(st->st_mtim.tv_sec, when);
  x->matches++;
  atomic_fetch_add(&x->shown, 1);
  if (x->json) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "vm", json_object_new_string(vm));
    json_object_object_add(o, "time", json_object_new_string(u->first));
    json_object_object_add(o, "last", json_object_new_string(u->last));
    json_object_object_add(o, "points", json_object_new_int(u->points));
    json_object_object_add(o, "path", json_object_new_string(u->e.path));
    json_object_object_add(o, "type",
                           json_object_new_string(index_type_name(st->st_mode)));
    json_object_object_add(o, "size", json_object_new_int64(st->st_size));
    json_object_object_add(o, "mtime", json_object_new_string(when));
    json_object_object_add(o, "mode", json_object_new_int(st->st_mode & 07777));
    json_object_object_add(o, "uid", json_object_new_int64(st->st_uid));
    json_object_object_add(o, "gid", json_object_new_int64(st->st_gid));
    if (u->e.link)
      json_object_object_add(o, "link", json_object_new_string(u->e.link));
    json_object_array_add(x->json, o);
    return;
  }
  printf("%s@%s\t%s%s\t%" PRId64 "\t%s", vm, u->first, u->e.path,
         S_ISDIR(st->st_mode) ? "/" : "", (int64_t)st->st_size, when);
  if (u->points > 1)
    printf("\t.. %s (%u)", u->last, u->points);
  putchar('\n');
}

static void
free_run(struct run *u)
{
  free(u->e.path);
  free(u->e.link);
  free(u->first);
  free(u->last);
}

/* print and forget the collected VM's runs */
static void
flush_vm(struct find_ctx *x)
{
  for (size_t i = 0; i < x->nruns; i++) {
    print_run(x, x->vm, &x->runs[i]);
    free_run(&x->runs[i]);
  }
  x->nruns = x->nopen = 0;
  free(x->vm);
  x->vm = NULL;
}

/* a new run from l's entry e (stolen) */
static int
start_run(struct find_ctx *x, struct index_entry *e, const char *t,
          size_t *open_out)
{
  if (bfs_vec_reserve_((void **)&x->runs, &x->cap,
                       sizeof *x->runs, x->nruns + 1) < 0)
    return bfs_error(-ENOMEM, "find: out of memory");
  struct run *u = &x->runs[x->nruns];
  u->e = *e;
  e->path = e->link = NULL;
  u->first = strdup(t);
  u->last = strdup(t);
  u->points = 1;
  if (!u->first || !u->last) {
    free_run(u);
    return bfs_error(-ENOMEM, "find: out of memory");
  }
  *open_out = x->nruns++;
  return 0;
}

static int
point(void *opaque, const char *vm, const char *t, struct index_list *l)
{
  struct find_ctx *x = opaque;
  atomic_fetch_add(&x->points, 1);
  if (!x->vm || strcmp(x->vm, vm)) {
    bfs_waitline_clear(x->wl);              /* rows are printed next */
    flush_vm(x);
    if (!(x->vm = strdup(vm)))
      return bfs_error(-ENOMEM, "find: out of memory");
  }
  /* merge the open runs (path order) with this point in time's list; the
   * runs that go on, and the new ones, are the open runs after it */
  size_t *next = malloc((x->nopen + l->n + 1) * sizeof *next);
  size_t nnext = 0, i = 0, j = 0;
  int r = 0;
  if (!next)
    return bfs_error(-ENOMEM, "find: out of memory");
  while (r == 0 && j < l->n) {
    struct run *u = i < x->nopen ? &x->runs[x->open[i]] : NULL;
    int c = u ? strcmp(u->e.path, l->v[j].path) : 1;
    if (c < 0) {                  /* gone: the run ends */
      i++;
      continue;
    }
    if (c == 0 && !x->all_versions && !index_entry_diff(&u->e, &l->v[j])) {
      char *last = strdup(t);
      if (!last)
        r = bfs_error(-ENOMEM, "find: out of memory");
      else {
        free(u->last);
        u->last = last;
        u->points++;
        next[nnext++] = x->open[i];
      }
    } else
      r = start_run(x, &l->v[j], t, &next[nnext++]);
    i += c == 0;
    j++;
  }
  free(x->open);
  x->open = next;
  x->nopen = nnext;
  return r;
}

enum { OPT_ALL = 256, OPT_KEY_FILE };

static const struct bfs_opt find_opts[] = {
  INDEX_OPT_ROW,
  { "all-versions", OPT_ALL, NULL, "one line per point in time, nothing collapsed" },
  { "key-file", OPT_KEY_FILE, "FILE", "passphrase of LUKS-encrypted images (checked;\n"
    "the index is searched without reading a disk)" },
  { 0 },
};

static const struct bfs_cmd find_cmd = {
  .name = "find",
  .usage = "find [--catalog FILE] [--index FILE] [--all-versions]\n"
    "                     [--key-file FILE] [--json] REPO [VM] GLOB",
  .about = "Search the guest file indexes (made by `backupfs index`) of all backups\n"
    "of REPO, or of one VM.  GLOB is a shell pattern matched against the file\n"
    "name, or against the whole guest path when it contains '/'.\n"
    "Prints one line per version: VM@TIME, PATH, SIZE, MTIME (tab-separated);\n"
    "a version unchanged (type, mode, owner, size, mtime, link) in consecutive\n"
    "indexed points in time is one line ending in `.. LAST (N)`.\n"
    "Exit status 0 when something matched, 1 when nothing did, 2 on errors.",
  .opts = find_opts, .shared = BFS_OPTS_CATALOG | BFS_OPTS_JSON,
  .catalog_help = INDEX_CATALOG_HELP,
  .json_help = "a JSON array of {vm, time, last, points, path,\n"
    "type, size, mtime, mode, uid, gid, link}",
  .need = "REPO [VM] GLOB", .min_args = 2, .max_args = 3,
};

int
fs_find_cmd(int argc, char **argv)
{
  const char *index = NULL, *key_file = NULL;
  bool all = false;
  struct bfs_args g;
  int c;
  bfs_opts_init(&g, &find_cmd, argc, argv);
  while ((c = bfs_opts_next(&g)) > 0)
    switch (c) {
    case INDEX_OPT_INDEX: index = g.optarg; break;
    case OPT_ALL: all = true; break;
    case OPT_KEY_FILE: key_file = g.optarg; break;
    }
  if (c < 0)
    return g.status;
  /* find reads the index, never a disk: the key only has to be one */
  if (index_key_check("find", key_file))
    return 2;
  const char *catalog = g.catalog;
  bool json = g.json;
  const char *repo = g.pos[0];
  const char *vm = g.npos == 3 ? g.pos[1] : NULL;
  const char *glob = g.pos[g.npos - 1];
  struct find_ctx x = { .glob = glob,
                        .whole_path = strchr(glob, '/') != NULL,
                        .all_versions = all,
                        .json = json ? json_object_new_array() : NULL };

  CLEANUP_FREE char *db = index_db_open_path("find", index, repo, catalog);
  if (!db) {
    json_object_put(x.json);
    return 2;
  }
  x.wl = bfs_waitline_start(progress_text, &x);
  int r = index_list_foreach(db, vm, want, &x, point, &x);
  bfs_waitline_stop(x.wl);
  if (r == 0)
    flush_vm(&x);
  else
    for (size_t i = 0; i < x.nruns; i++)
      free_run(&x.runs[i]);
  free(x.vm);
  free(x.runs);
  free(x.open);
  if (r < 0) {
    json_object_put(x.json);
    if (r == -ENOENT)
      fprintf(stderr, "backupfs: find: %s: no file index (run `backupfs index %s`)\n",
              db, repo);
    else
      fprintf(stderr, "backupfs: find: %s\n", bfs_last_error());
    return 2;
  }
  if (x.json) {
    puts(json_object_to_json_string_ext(x.json, JSON_C_TO_STRING_PRETTY));
    json_object_put(x.json);
  }
  return x.matches ? 0 : 1;
}
