/* diff.c — `backupfs diff REPO VM@T1 VM@T2 [PATH]`: what changed between
 * two points in time.
 *
 * Files: both points in time's stored listings (under PATH when given) as
 * path-sorted lists, merged: a path only in T2 is added, only in T1
 * removed, in both with another version (index_entry_diff) changed.  Both
 * must be indexed: a listing that is not there is an error, never taken as
 * empty.  --blocks compares the disks instead (diff-blocks.c).  The exit
 * status is diff(1)'s: 0 nothing differs, 1 something does, 2 trouble.
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
#include "guest/index.h"
#include "blk/luks.h"
#include "history/history-int.h"
#include "history/history.h"
#include "restore/restore-int.h"

struct side {
  char *vm, *time;             /* as given, then the resolved name */
  struct hist_vm h;
  int idx;                     /* the point in time in h.b */
  struct index_list l;
};

static bool
want_under(void *opaque, const char *path, const struct stat *st)
{
  return !opaque || index_path_under(path, opaque);
}

static void
emit(const char *kind, const struct index_entry *e, unsigned what,
     json_object *jarr)
{
  const struct stat *st = &e->st;
  char when[32], w[64];
  bfs_time_iso(st->st_mtim.tv_sec, when);
  if (jarr) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "change", json_object_new_string(kind));
    json_object_object_add(o, "path", json_object_new_string(e->path));
    json_object_object_add(o, "type",
                           json_object_new_string(index_type_name(st->st_mode)));
    json_object_object_add(o, "size", json_object_new_int64(st->st_size));
    json_object_object_add(o, "mtime", json_object_new_string(when));
    if (what) {
      json_object *a = json_object_new_array();
      unsigned it = 0;
      const char *n;
      while ((n = index_diff_name(what, &it)))
        json_object_array_add(a, json_object_new_string(n));
      json_object_object_add(o, "changed", a);
    }
    json_object_array_add(jarr, o);
    return;
  }
  printf("%s\t%s%s\t%" PRId64 "\t%s", kind, e->path,
         S_ISDIR(st->st_mode) ? "/" : "", (int64_t)st->st_size, when);
  if (what)
    printf("\t(%s)", index_diff_names(what, w));
  putchar('\n');
}

/* resolve VM@TIME against the catalog (latest, names) */
static int
side_open(struct side *s, const char *arg, const char *repo,
          const char *catalog, bool luks_key, const char *index)
{
  int r;
  if ((r = catalog_parse_vmtime(arg, &s->vm, &s->time)) < 0 ||
      (r = hist_open(repo, catalog, luks_key, index, s->vm, &s->h)) < 0 ||
      (r = s->idx = catalog_find_backup(s->h.b, s->h.n, s->vm, s->time)) < 0)
    return r;
  return 0;
}

static void
side_close(struct side *s)
{
  index_list_free(&s->l);
  hist_close(&s->h);
  free(s->vm);
  free(s->time);
}

enum { OPT_BLOCKS = 256, OPT_KEY_FILE };

static const struct bfs_opt diff_opts[] = {
  INDEX_OPT_ROW,
  { "blocks", OPT_BLOCKS, NULL, "compare the disks, not the files" },
  { "key-file", OPT_KEY_FILE, "FILE", "passphrase of LUKS-encrypted images (one\n"
    "trailing newline ignored)" },
  { 0 },
};

static const struct bfs_cmd diff_cmd = {
  .name = "diff",
  .usage = "diff [--catalog FILE] [--index FILE] [--json]\n"
    "                     REPO VM@T1 VM@T2 [PATH]\n"
    "       backupfs diff --blocks [--catalog FILE] [--key-file FILE] [--json]\n"
    "                     REPO VM@T1 VM@T2 [DISK]",
  .about = "What changed from VM@T1 to VM@T2 (TIME may be `latest`).\n"
    "Files, from the file indexes (`backupfs index`; both must be indexed),\n"
    "under PATH when given: one tab-separated line per path, CHANGE PATH SIZE\n"
    "MTIME (of T2; removed: of T1) and for `changed` what changed (type,\n"
    "mode, owner, size, mtime, target); CHANGE is added, removed or changed.\n"
    "--blocks: the changed extents of each disk (or of DISK), from block\n"
    "status and bytes in 64 KiB blocks, no appliance: DISK OFFSET LENGTH\n"
    "lines and a total line.\n"
    "Exit status 0 when nothing differs, 1 when something does, 2 on errors.",
  .opts = diff_opts, .shared = BFS_OPTS_CATALOG | BFS_OPTS_JSON,
  .catalog_help = INDEX_CATALOG_HELP,
  .json_help = "files: {from, to, changes: [{change, path, type,\n"
    "size, mtime, changed}]}; blocks: {from, to,\n"
    "disks: [{disk, size, extents: [[offset, length]],\nbytes}], bytes}",
  .need = "REPO VM@T1 VM@T2", .min_args = 3, .max_args = 4,
};

int
history_diff_cmd(int argc, char **argv)
{
  const char *index = NULL, *key_file = NULL;
  struct blk_key *key = NULL;
  bool blocks = false;
  struct bfs_args g;
  int c;
  bfs_opts_init(&g, &diff_cmd, argc, argv);
  while ((c = bfs_opts_next(&g)) > 0)
    switch (c) {
    case INDEX_OPT_INDEX: index = g.optarg; break;
    case OPT_BLOCKS: blocks = true; break;
    case OPT_KEY_FILE: key_file = g.optarg; break;
    }
  if (c < 0)
    return g.status;
  const char *catalog = g.catalog;
  bool json = g.json;
  int nargs = g.npos;
  const char *repo = g.pos[0];
  const char *arg4 = nargs == 4 ? g.pos[3] : NULL;
  struct side a = { 0 }, b = { 0 };
  char *under = NULL;
  int r, status = 2;
  json_object *jo = NULL, *jarr = NULL;

  if (key_file && (r = blk_key_from_file(key_file, &key)) < 0) {
    bfs_error_prefix(r, "--key-file %s: ", key_file);
    goto out;
  }
  if ((r = side_open(&a, g.pos[1], repo, catalog, key, index)) < 0 ||
      (r = side_open(&b, g.pos[2], repo, catalog, key, index)) < 0)
    goto out;
  const char *ta = a.h.b[a.idx].name, *tb = b.h.b[b.idx].name;
  if (blocks) {
    status = hist_diff_blocks(repo, catalog, key, a.vm, ta, b.vm, tb,
                              &a.h.b[a.idx], &b.h.b[b.idx], arg4, json);
    goto out;
  }
  if (arg4 && !(under = hist_path(arg4))) {
    r = -EINVAL;
    goto out;
  }
  if ((r = index_list_load(a.h.db, a.vm, ta, want_under, under, &a.l)) < 0 ||
      (r = index_list_load(b.h.db, b.vm, tb, want_under, under, &b.l)) < 0) {
    if (r == -ENOENT)
      bfs_error_prefix(r, "not indexed (run `backupfs index %s VM@TIME`): ",
                       repo);
    goto out;
  }

  if (json) {
    char from[256], to[256];
    snprintf(from, sizeof from, "%s@%s", a.vm, ta);
    snprintf(to, sizeof to, "%s@%s", b.vm, tb);
    jo = json_object_new_object();
    json_object_object_add(jo, "from", json_object_new_string(from));
    json_object_object_add(jo, "to", json_object_new_string(to));
    if (under)
      json_object_object_add(jo, "path", json_object_new_string(under));
    jarr = json_object_new_array();
    json_object_object_add(jo, "changes", jarr);
  }
  size_t i = 0, j = 0;
  unsigned added = 0, removed = 0, changed = 0;
  while (i < a.l.n || j < b.l.n) {
    int cmp = i == a.l.n ? 1 : j == b.l.n ? -1
            : strcmp(a.l.v[i].path, b.l.v[j].path);
    if (cmp < 0) {
      emit("removed", &a.l.v[i++], 0, jarr);
      removed++;
    } else if (cmp > 0) {
      emit("added", &b.l.v[j++], 0, jarr);
      added++;
    } else {
      unsigned what = index_entry_diff(&a.l.v[i], &b.l.v[j]);
      if (what) {
        emit("changed", &b.l.v[j], what, jarr);
        changed++;
      }
      i++;
      j++;
    }
  }
  if (jo)
    puts(json_object_to_json_string_ext(jo, JSON_C_TO_STRING_PRETTY));
  else
    printf("total\t%u added, %u removed, %u changed\n", added, removed,
           changed);
  status = added || removed || changed ? 1 : 0;
out:
  if (r < 0)
    fprintf(stderr, "backupfs: diff: %s\n", bfs_last_error());
  json_object_put(jo);
  free(under);
  side_close(&a);
  side_close(&b);
  blk_key_free(key);
  return r < 0 ? 2 : status;
}
