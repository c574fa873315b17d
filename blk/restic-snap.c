/* restic-snap.c — snapshots and their trees.
 *
 * restic_snapshots reads every file in snapshots/ (storage id checked,
 * decrypted, JSON parsed) and sorts them by time; restic_walk goes through
 * a snapshot's tree blobs depth first (RESTIC_TREE_DEPTH levels at most, so
 * a tree that names itself ends in an error, not a loop), and
 * restic_file_open_path resolves one path component by component.
 */
#include "blk/restic-internal.h"

#include "common/cleanup.h"
#include "common/error.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct snap_arg {
  struct restic_snapshot *s;
};

static int
parse_snapshot_cb(const char *json, size_t len, const char *label, void *arg)
{
  struct snap_arg *a = arg;
  return restic_parse_snapshot(json, len, label, a->s);
}

static int
cmp_snap(const void *a, const void *b)
{
  const struct restic_snapshot *x = a, *y = b;
  if (x->time != y->time)
    return x->time < y->time ? -1 : 1;
  if (x->time_nsec != y->time_nsec)
    return x->time_nsec < y->time_nsec ? -1 : 1;
  return strcmp(x->id, y->id);
}

int
restic_snapshots(struct restic_repo *r, struct restic_snapshot **out,
                 size_t *n)
{
  char **names;
  size_t cnt;
  int ret = restic_list_dir(r, "snapshots", &names, &cnt);
  if (ret < 0)
    return ret;
  struct restic_snapshot *v = calloc(cnt ? cnt : 1, sizeof *v);
  if (!v) {
    restic_free_names(names, cnt);
    return bfs_error(-ENOMEM, "%s: out of memory", restic_repo_name(r));
  }
  size_t i;
  for (i = 0; i < cnt; i++) {
    struct snap_arg a = { &v[i] };
    if ((ret = restic_load_json_file(r, "snapshots", names[i],
                                     parse_snapshot_cb, &a)) < 0)
      break;
    memcpy(v[i].id, names[i], sizeof v[i].id);
  }
  restic_free_names(names, cnt);
  if (ret < 0) {
    restic_snapshots_free(v, i);
    return ret;
  }
  if (cnt)
    qsort(v, cnt, sizeof *v, cmp_snap);
  *out = v;
  *n = cnt;
  return 0;
}

int
restic_snapshot_get(struct restic_repo *r, const char *id,
                    struct restic_snapshot *out)
{
  memset(out, 0, sizeof *out);
  if (strlen(id) != 2 * RESTIC_ID_LEN ||
      strspn(id, "0123456789abcdef") != 2 * RESTIC_ID_LEN)
    return bfs_error(-EINVAL, "%s: '%s' is not a snapshot id",
                     restic_repo_name(r), id);
  struct snap_arg a = { out };
  int ret = restic_load_json_file(r, "snapshots", id, parse_snapshot_cb, &a);
  if (ret < 0) {
    restic_snapshot_clear(out);
    return ret;
  }
  memcpy(out->id, id, sizeof out->id);
  return 0;
}

void
restic_snapshots_free(struct restic_snapshot *s, size_t n)
{
  if (!s)
    return;
  for (size_t i = 0; i < n; i++)
    restic_snapshot_clear(&s[i]);
  free(s);
}

static void
to_node(const struct restic_tnode *t, const char *path, struct restic_node *n)
{
  n->path = path;
  n->type = t->type;
  n->size = t->size;
  n->mode = t->mode;
  n->mtime = t->mtime;
  n->mtime_nsec = t->mtime_nsec;
  n->uid = t->uid;
  n->gid = t->gid;
  n->linktarget = t->linktarget;
  n->content = (const uint8_t (*)[RESTIC_ID_LEN])t->content;
  n->n_content = t->n_content;
}

static int
walk(struct restic_repo *r, const uint8_t id[RESTIC_ID_LEN], char *path,
     size_t plen, unsigned depth, restic_walk_fn cb, void *opaque)
{
  struct restic_tree t;
  char hex[2 * RESTIC_ID_LEN + 1];
  int ret;

  if (depth > RESTIC_TREE_DEPTH) {
    restic_id_hex(id, hex);
    return bfs_error(-EIO, "%s: tree %s: nested deeper than %d levels",
                     restic_repo_name(r), hex, RESTIC_TREE_DEPTH);
  }
  if ((ret = restic_load_tree(r, id, &t)) < 0)
    return ret;
  for (size_t i = 0; i < t.n && ret == 0; i++) {
    const struct restic_tnode *tn = &t.nodes[i];
    size_t nl = strlen(tn->name);
    if (plen + 1 + nl >= PATH_MAX) {
      ret = bfs_error(-ENAMETOOLONG, "%s: path %s/%s too long",
                      restic_repo_name(r), path, tn->name);
      break;
    }
    path[plen] = '/';
    memcpy(path + plen + 1, tn->name, nl + 1);
    struct restic_node n;
    to_node(tn, path, &n);
    ret = cb(&n, opaque);
    if (ret == 0 && tn->type == RESTIC_NODE_DIR && tn->has_subtree)
      ret = walk(r, tn->subtree, path, plen + 1 + nl, depth + 1, cb, opaque);
    path[plen] = '\0';
  }
  restic_tree_free(&t);
  return ret;
}

int
restic_walk(struct restic_repo *r, const struct restic_snapshot *s,
            restic_walk_fn cb, void *opaque)
{
  CLEANUP_FREE char *path = malloc(PATH_MAX);
  if (!path)
    return bfs_error(-ENOMEM, "%s: out of memory", restic_repo_name(r));
  path[0] = '\0';
  return walk(r, s->tree, path, 0, 0, cb, opaque);
}

int
restic_file_open_path(struct restic_repo *r, const struct restic_snapshot *s,
                      const char *path, struct restic_file **out)
{
  uint8_t id[RESTIC_ID_LEN];
  const char *p = path;
  int ret;

  memcpy(id, s->tree, RESTIC_ID_LEN);
  for (unsigned depth = 0; depth <= RESTIC_TREE_DEPTH; depth++) {
    while (*p == '/')
      p++;
    size_t cl = strcspn(p, "/");
    if (cl == 0)
      break;
    struct restic_tree t;
    if ((ret = restic_load_tree(r, id, &t)) < 0)
      return ret;
    const struct restic_tnode *hit = NULL;
    for (size_t i = 0; i < t.n && !hit; i++)
      if (strlen(t.nodes[i].name) == cl && !memcmp(t.nodes[i].name, p, cl))
        hit = &t.nodes[i];
    bool last = p[cl + strspn(p + cl, "/")] == '\0';
    if (!hit)
      ret = bfs_error(-ENOENT, "%s: snapshot %.8s: %s: no such file",
                      restic_repo_name(r), s->id, path);
    else if (last && hit->type != RESTIC_NODE_FILE)
      ret = bfs_error(-EISDIR, "%s: snapshot %.8s: %s: not a regular file",
                      restic_repo_name(r), s->id, path);
    else if (!last && (hit->type != RESTIC_NODE_DIR || !hit->has_subtree))
      ret = bfs_error(-ENOTDIR, "%s: snapshot %.8s: %s: not a directory",
                      restic_repo_name(r), s->id, path);
    else if (last) {
      struct restic_node n;
      to_node(hit, path, &n);
      ret = restic_file_open(r, &n, out);
      restic_tree_free(&t);
      return ret;
    } else {
      memcpy(id, hit->subtree, RESTIC_ID_LEN);
    }
    restic_tree_free(&t);
    if (ret < 0)
      return ret;
    p += cl;
  }
  return bfs_error(-EISDIR, "%s: snapshot %.8s: %s: not a regular file",
                   restic_repo_name(r), s->id, path);
}
