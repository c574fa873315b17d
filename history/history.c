/* history.c — `backupfs history REPO VM PATH`: a guest path's versions
 * across a VM's points in time, from the stored indexes (no appliance).
 *
 * The points in time are the catalog's (all of them, oldest first); each
 * one that has a listing says absent or present with a version (type,
 * mode, owner, size, mtime, link target: index_entry_diff).  Walking them
 * in order gives events against the last indexed state:
 *
 *   first seen    present, never present before
 *   changed       present, a different version than the last one (what)
 *   unchanged     present, the same version as before a gap
 *   deleted       absent after present      reappeared  present after deleted
 *   absent        absent before first seen  not indexed no listing: unknown,
 *                                                      never guessed
 * and consecutive points in time in the same state are one row with the
 * range.  A directory PATH is its own entry (mode, owner, mtime: the mtime
 * moves when names are added or removed); --recursive gives every path of
 * the subtree that changed in the range (its full rows) and counts the
 * ones that did not.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/opts.h"
#include "common/timefmt.h"
#include "catalog/index.h"
#include "guest/index.h"
#include "blk/luks.h"
#include "history/history-int.h"
#include "history/history.h"

enum ev { EV_NOT_INDEXED, EV_ABSENT, EV_FIRST, EV_CHANGED, EV_UNCHANGED,
          EV_DELETED, EV_REAPPEARED };
static const char *const ev_names[] = {
  "not indexed", "absent", "first seen", "changed", "unchanged", "deleted",
  "reappeared",
};

struct row {
  enum ev ev;
  size_t first, last;                 /* points in time */
  const struct index_entry *e;        /* the version (present rows) */
  unsigned what;                      /* changed: INDEX_DIFF_* */
};

struct want_ctx {
  const char *path;
  bool recursive;
};

static bool
want(void *opaque, const char *path, const struct stat *st)
{
  struct want_ctx *w = opaque;
  return w->recursive ? index_path_under(path, w->path)
                      : !strcmp(path, w->path);
}

static bool
present_ev(enum ev e)
{
  return e == EV_FIRST || e == EV_CHANGED || e == EV_UNCHANGED ||
         e == EV_REAPPEARED;
}

/* rows of one path over the points in time (lists[i].v NULL: not indexed) */
static size_t
path_rows(const char *path, const struct index_list *lists,
          const bool *indexed, size_t n, struct row *rows)
{
  size_t nrows = 0;
  const struct index_entry *known = NULL;   /* last indexed state */
  bool known_set = false, seen = false;

  for (size_t i = 0; i < n; i++) {
    struct row *cur = nrows ? &rows[nrows - 1] : NULL;
    if (!indexed[i]) {
      if (cur && cur->ev == EV_NOT_INDEXED)
        cur->last = i;
      else
        rows[nrows++] = (struct row){ EV_NOT_INDEXED, i, i, NULL, 0 };
      continue;
    }
    const struct index_entry *e = index_list_find(&lists[i], path);
    bool contiguous = cur && cur->ev != EV_NOT_INDEXED;
    if (!e) {
      if (contiguous && (cur->ev == EV_ABSENT || cur->ev == EV_DELETED))
        cur->last = i;
      else
        rows[nrows++] = (struct row){
          known_set && known ? EV_DELETED : EV_ABSENT, i, i, NULL, 0 };
    } else if (contiguous && present_ev(cur->ev) &&
               !index_entry_diff(cur->e, e)) {
      cur->last = i;
    } else {
      struct row r = { EV_FIRST, i, i, e, 0 };
      if (seen && !known)
        r.ev = EV_REAPPEARED;
      else if (seen && (r.what = index_entry_diff(known, e)))
        r.ev = EV_CHANGED;
      else if (seen)
        r.ev = EV_UNCHANGED;
      rows[nrows++] = r;
      seen = true;
    }
    known = e;
    known_set = true;
  }
  return nrows;
}

/* a path whose rows show a change: anything but absent/not indexed and one
 * version present from the first indexed point in time on */
static bool
rows_change(const struct row *rows, size_t nrows, size_t first_indexed)
{
  for (size_t i = 0; i < nrows; i++)
    switch (rows[i].ev) {
    case EV_NOT_INDEXED: case EV_UNCHANGED: break;
    case EV_FIRST: if (rows[i].first != first_indexed) return true; break;
    default: return true;
    }
  return false;
}

static void
print_rows(const struct hist_vm *h, const char *path, bool with_path,
           const struct row *rows, size_t nrows, json_object *jarr)
{
  for (size_t i = 0; i < nrows; i++) {
    const struct row *w = &rows[i];
    const char *first = h->b[w->first].name, *last = h->b[w->last].name;
    char range[80], what[64], when[32];
    if (w->e)
      bfs_time_iso(w->e->st.st_mtim.tv_sec, when);
    if (w->ev == EV_CHANGED)
      index_diff_names(w->what, what);
    if (jarr) {
      json_object *o = json_object_new_object();
      json_object_object_add(o, "first", json_object_new_string(first));
      json_object_object_add(o, "last", json_object_new_string(last));
      json_object_object_add(o, "points",
                             json_object_new_int(w->last - w->first + 1));
      json_object_object_add(o, "event", json_object_new_string(ev_names[w->ev]));
      if (w->ev == EV_CHANGED) {
        json_object *a = json_object_new_array();
        unsigned it = 0;
        const char *nm;
        while ((nm = index_diff_name(w->what, &it)))
          json_object_array_add(a, json_object_new_string(nm));
        json_object_object_add(o, "changed", a);
      }
      if (w->e) {
        const struct stat *st = &w->e->st;
        json_object_object_add(o, "type",
                               json_object_new_string(index_type_name(st->st_mode)));
        json_object_object_add(o, "size", json_object_new_int64(st->st_size));
        json_object_object_add(o, "mtime", json_object_new_string(when));
        json_object_object_add(o, "mode", json_object_new_int(st->st_mode & 07777));
        json_object_object_add(o, "uid", json_object_new_int64(st->st_uid));
        json_object_object_add(o, "gid", json_object_new_int64(st->st_gid));
        if (w->e->link)
          json_object_object_add(o, "link", json_object_new_string(w->e->link));
      }
      json_object_array_add(jarr, o);
      continue;
    }
    if (with_path)
      printf("%s\t", path);
    printf("%s\t%s", hist_range(first, last, range), ev_names[w->ev]);
    if (w->ev == EV_CHANGED)
      printf(" (%s)", what);
    if (w->e) {
      const struct stat *st = &w->e->st;
      printf("\t%s\t%" PRId64 "\t%s\t%04o\t%u:%u", index_type_name(st->st_mode),
             (int64_t)st->st_size, when, (unsigned)(st->st_mode & 07777),
             (unsigned)st->st_uid, (unsigned)st->st_gid);
      if (w->e->link)
        printf("\t-> %s", w->e->link);
    }
    putchar('\n');
  }
}

static int
cmp_str(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* every path of the lists, sorted, once (pointers into the lists) */
static const char **
all_paths(const struct index_list *lists, size_t n, size_t *count)
{
  size_t total = 0, k = 0;
  for (size_t i = 0; i < n; i++)
    total += lists[i].n;
  const char **v = malloc((total + 1) * sizeof *v);
  if (!v)
    return NULL;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < lists[i].n; j++)
      v[k++] = lists[i].v[j].path;
  qsort(v, k, sizeof *v, cmp_str);
  size_t u = 0;
  for (size_t i = 0; i < k; i++)
    if (!u || strcmp(v[u - 1], v[i]))
      v[u++] = v[i];
  *count = u;
  return v;
}

enum { OPT_KEY_FILE = 256 };

static const struct bfs_opt history_opts[] = {
  INDEX_OPT_ROW,
  { "recursive", 'r', NULL, "the changes of PATH's whole subtree" },
  { "key-file", OPT_KEY_FILE, "FILE", "passphrase of LUKS-encrypted images (one\n"
    "trailing newline ignored): their backups count\nas readable" },
  { 0 },
};

static const struct bfs_cmd history_cmd_desc = {
  .name = "history",
  .usage = "history [--catalog FILE] [--index FILE] [--recursive]\n"
    "                        [--key-file FILE] [--json] REPO VM PATH",
  .about = "The versions of the guest path PATH across every point in time of VM,\n"
    "oldest first, from the file indexes (`backupfs index`): one row per run\n"
    "of points in time in the same state, tab-separated: RANGE, EVENT, and for\n"
    "a present version TYPE, SIZE, MTIME, MODE, UID:GID (and -> TARGET).\n"
    "Events: first seen, changed (what: type, mode, owner, size, mtime,\n"
    "target), unchanged (after a gap), deleted, reappeared, absent, and\n"
    "not indexed for a point in time without an index (never guessed).\n"
    "A directory PATH is the directory entry itself; with --recursive, every\n"
    "path below it that changed (PATH column first), and a count of the rest.\n"
    "Exit status 0, 1 when PATH is in no indexed point in time, 2 on errors.",
  .opts = history_opts, .shared = BFS_OPTS_CATALOG | BFS_OPTS_JSON,
  .catalog_help = INDEX_CATALOG_HELP,
  .json_help = "{vm, path, versions: [{first, last, points, event,\n"
    "changed, type, size, mtime, mode, uid, gid, link}]}\n"
    "(--recursive: paths: [{path, versions}], unchanged)",
  .need = "REPO VM PATH", .min_args = 3, .max_args = 3,
};

int
history_cmd(int argc, char **argv)
{
  const char *index = NULL, *key_file = NULL;
  bool recursive = false;
  struct bfs_args g;
  int c;
  bfs_opts_init(&g, &history_cmd_desc, argc, argv);
  while ((c = bfs_opts_next(&g)) > 0)
    switch (c) {
    case INDEX_OPT_INDEX: index = g.optarg; break;
    case 'r': recursive = true; break;
    case OPT_KEY_FILE: key_file = g.optarg; break;
    }
  if (c < 0)
    return g.status;
  const char *catalog = g.catalog;
  bool json = g.json;
  const char *repo = g.pos[0], *vm = g.pos[1];
  char *path = hist_path(g.pos[2]);
  struct hist_vm h;
  /* history reads the index, never a disk: the key only has to be one */
  if (index_key_check("history", key_file)) {
    free(path);
    return 2;
  }
  if (!path || hist_open(repo, catalog, key_file != NULL, index, vm, &h) < 0) {
    fprintf(stderr, "backupfs: history: %s\n", bfs_last_error());
    free(path);
    return 2;
  }

  int status = 2, r = 0;
  char **times = NULL;
  size_t ntimes = 0, first_indexed = h.n, npaths = 0;
  struct index_list *lists = calloc(h.n, sizeof *lists);
  bool *indexed = calloc(h.n, sizeof *indexed);
  struct row *rows = calloc(h.n, sizeof *rows);
  const char **paths = NULL;
  json_object *jo = NULL, *jarr = NULL;
  if (!lists || !indexed || !rows) {
    r = bfs_error(-ENOMEM, "out of memory");
    goto out;
  }
  r = catalog_index_times(h.db, vm, &times, &ntimes);
  if (r == -ENOENT)
    bfs_error(r, "%s: no file index (run `backupfs index %s %s`)", h.db,
              repo, vm);
  if (r < 0)
    goto out;
  struct want_ctx w = { path, recursive };
  for (size_t i = 0; i < h.n; i++) {
    if (!bsearch(&h.b[i].name, times, ntimes, sizeof *times, cmp_str))
      continue;
    r = index_list_load(h.db, vm, h.b[i].name, want, &w, &lists[i]);
    if (r == -ENOENT) {               /* dropped meanwhile: not indexed */
      r = 0;
      continue;
    }
    if (r < 0)
      goto out;
    indexed[i] = true;
    if (first_indexed == h.n)
      first_indexed = i;
  }

  if (!recursive) {
    paths = malloc(sizeof *paths);
    if (!paths) {
      r = bfs_error(-ENOMEM, "out of memory");
      goto out;
    }
    paths[0] = path;
    npaths = 1;
  } else if (!(paths = all_paths(lists, h.n, &npaths))) {
    r = bfs_error(-ENOMEM, "out of memory");
    goto out;
  }

  if (json) {
    jo = json_object_new_object();
    json_object_object_add(jo, "vm", json_object_new_string(vm));
    json_object_object_add(jo, "path", json_object_new_string(path));
    jarr = json_object_new_array();
    json_object_object_add(jo, recursive ? "paths" : "versions", jarr);
  }
  bool found = false;
  unsigned unchanged = 0;
  for (size_t k = 0; k < npaths; k++) {
    size_t nrows = path_rows(paths[k], lists, indexed, h.n, rows);
    for (size_t i = 0; i < nrows; i++)
      found |= rows[i].e != NULL;
    if (recursive && !rows_change(rows, nrows, first_indexed)) {
      unchanged++;
      continue;
    }
    json_object *vers = jarr;
    if (json && recursive) {
      json_object *p = json_object_new_object();
      json_object_object_add(p, "path", json_object_new_string(paths[k]));
      vers = json_object_new_array();
      json_object_object_add(p, "versions", vers);
      json_object_array_add(jarr, p);
    }
    print_rows(&h, paths[k], recursive, rows, nrows, vers);
  }
  if (recursive && json)
    json_object_object_add(jo, "unchanged", json_object_new_int(unchanged));
  else if (recursive && unchanged)
    printf("# %u path(s) under %s unchanged in every indexed point in time\n",
           unchanged, path);
  if (jo)
    puts(json_object_to_json_string_ext(jo, JSON_C_TO_STRING_PRETTY));
  status = found ? 0 : 1;
  if (!found && !json)
    fprintf(stderr, "backupfs: history: %s: %s is in no indexed point in "
            "time\n", vm, path);
out:
  if (r < 0)
    fprintf(stderr, "backupfs: history: %s\n", bfs_last_error());
  json_object_put(jo);
  for (size_t i = 0; lists && i < h.n; i++)
    index_list_free(&lists[i]);
  free(lists);
  free(indexed);
  free(rows);
  free(paths);
  catalog_names_free(times, ntimes);
  hist_close(&h);
  free(path);
  return r < 0 ? 2 : status;
}
