/* index-list.c — stored listings as version lists (see index.h).
 *
 * find, history and diff all ask the same question of the index: which
 * version of each path does a point in time hold?  A listing is walked once
 * (index_foreach / index_foreach_at), filtered, and kept as an array sorted
 * by path, so comparing two points in time is a merge and looking one path
 * up is a binary search; nothing but the filtered entries stays in memory.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/vec.h"
#include "guest/index.h"

int
index_list_add(struct index_list *l, const char *path, const struct stat *st,
               const char *link)
{
  if (bfs_vec_reserve_((void **)&l->v, &l->cap, sizeof *l->v, l->n + 1) < 0)
    return bfs_error(-ENOMEM, "file index: out of memory");
  struct index_entry *e = &l->v[l->n];
  e->path = strdup(path);
  e->link = link ? strdup(link) : NULL;
  e->st = *st;
  if (!e->path || (link && !e->link)) {
    free(e->path);
    free(e->link);
    return bfs_error(-ENOMEM, "file index: out of memory");
  }
  l->n++;
  return 0;
}

static int
cmp_entry(const void *a, const void *b)
{
  return strcmp(((const struct index_entry *)a)->path,
                ((const struct index_entry *)b)->path);
}

void
index_list_sort(struct index_list *l)
{
  if (l->n > 1)
    qsort(l->v, l->n, sizeof *l->v, cmp_entry);
}

const struct index_entry *
index_list_find(const struct index_list *l, const char *path)
{
  struct index_entry key = { .path = (char *)path };
  return l->n ? bsearch(&key, l->v, l->n, sizeof *l->v, cmp_entry) : NULL;
}

void
index_list_free(struct index_list *l)
{
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].path);
    free(l->v[i].link);
  }
  free(l->v);
  memset(l, 0, sizeof *l);
}

struct load_ctx {
  index_want_fn want;
  void *wopaque;
  struct index_list *l;
  /* index_list_foreach: the point in time being collected */
  index_point_fn fn;
  void *opaque;
  char *vm, *time;
};

static int
collect(void *opaque, const char *vm, const char *time_name, const char *path,
        const struct stat *st, const char *link)
{
  struct load_ctx *x = opaque;
  if (x->want && !x->want(x->wopaque, path, st))
    return 0;
  return index_list_add(x->l, path, st, link);
}

int
index_list_load(const char *db, const char *vm, const char *time_name,
                index_want_fn want, void *wopaque, struct index_list *out)
{
  struct load_ctx x = { .want = want, .wopaque = wopaque, .l = out };
  memset(out, 0, sizeof *out);
  int r = index_foreach_at(db, vm, time_name, collect, &x);
  if (r) {
    index_list_free(out);
    return r < 0 ? r : -EIO;
  }
  index_list_sort(out);
  return 0;
}

/* hand the collected point in time to fn and start over */
static int
flush_point(struct load_ctx *x)
{
  int r = 0;
  if (x->vm) {
    index_list_sort(x->l);
    r = x->fn(x->opaque, x->vm, x->time, x->l);
  }
  index_list_free(x->l);
  free(x->vm);
  free(x->time);
  x->vm = x->time = NULL;
  return r;
}

static int
collect_point(void *opaque, const char *vm, const char *time_name,
              const char *path, const struct stat *st, const char *link)
{
  struct load_ctx *x = opaque;
  int r;
  if (!x->vm || strcmp(x->vm, vm) || strcmp(x->time, time_name)) {
    if ((r = flush_point(x)))
      return r;
    x->vm = strdup(vm);
    x->time = strdup(time_name);
    if (!x->vm || !x->time)
      return bfs_error(-ENOMEM, "file index: out of memory");
  }
  return collect(opaque, vm, time_name, path, st, link);
}

int
index_list_foreach(const char *db, const char *vm, index_want_fn want,
                   void *wopaque, index_point_fn fn, void *opaque)
{
  struct index_list l = { 0 };
  struct load_ctx x = { want, wopaque, &l, fn, opaque, NULL, NULL };
  int r = index_foreach(db, vm, collect_point, &x);
  if (r == 0)
    r = flush_point(&x);
  else {
    index_list_free(&l);
    free(x.vm);
    free(x.time);
  }
  return r;
}

unsigned
index_entry_diff(const struct index_entry *a, const struct index_entry *b)
{
  const struct stat *x = &a->st, *y = &b->st;
  unsigned m = 0;
  if ((x->st_mode & S_IFMT) != (y->st_mode & S_IFMT))
    m |= INDEX_DIFF_TYPE;
  if ((x->st_mode & 07777) != (y->st_mode & 07777))
    m |= INDEX_DIFF_MODE;
  if (x->st_uid != y->st_uid || x->st_gid != y->st_gid)
    m |= INDEX_DIFF_OWNER;
  if (x->st_size != y->st_size)
    m |= INDEX_DIFF_SIZE;
  if (x->st_mtim.tv_sec != y->st_mtim.tv_sec ||
      x->st_mtim.tv_nsec != y->st_mtim.tv_nsec)
    m |= INDEX_DIFF_MTIME;
  if ((a->link || b->link) &&
      (!a->link || !b->link || strcmp(a->link, b->link)))
    m |= INDEX_DIFF_LINK;
  return m;
}

static const char *const diff_names[] = {
  "type", "mode", "owner", "size", "mtime", "target",
};

const char *
index_diff_name(unsigned mask, unsigned *iter)
{
  for (; *iter < sizeof diff_names / sizeof diff_names[0]; (*iter)++)
    if (mask & (1u << *iter))
      return diff_names[(*iter)++];
  return NULL;
}

const char *
index_diff_names(unsigned mask, char buf[static 64])
{
  unsigned it = 0;
  const char *n;
  size_t len = 0;
  buf[0] = '\0';
  while ((n = index_diff_name(mask, &it)))
    len += snprintf(buf + len, 64 - len, "%s%s", len ? ", " : "", n);
  return buf;
}

const char *
index_type_name(mode_t mode)
{
  switch (mode & S_IFMT) {
  case S_IFREG: return "file";
  case S_IFDIR: return "directory";
  case S_IFLNK: return "symlink";
  case S_IFCHR: return "char-device";
  case S_IFBLK: return "block-device";
  case S_IFIFO: return "fifo";
  case S_IFSOCK: return "socket";
  default: return "unknown";
  }
}

bool
index_path_under(const char *path, const char *root)
{
  size_t n = strlen(root);
  while (n > 1 && root[n - 1] == '/')
    n--;
  if (n == 1 && root[0] == '/')
    return path[0] == '/';
  return !strncmp(path, root, n) && (path[n] == '\0' || path[n] == '/');
}
