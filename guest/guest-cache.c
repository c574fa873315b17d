/* guest-cache.c — path → attributes table for guest files (see
 * guest-cache.h).  common/htab.h's chained table (xxhash, doubled when
 * the load factor passes 1), its buckets allocated on first use; cleared wholesale when it holds more than its cap, which
 * is simpler than LRU and fine for data that can always be fetched again.
 */
#include "guest/guest-cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
gc_init(struct gcache *c, size_t cap)
{
  memset(c, 0, sizeof *c);
  c->cap = cap;
}

static void
free_entry(struct gc_entry *e)
{
  free(e->path);
  free(e->link);
  for (size_t i = 0; i < e->nkids; i++)
    free(e->kids[i]);
  free(e->kids);
  free(e);
}

void
gc_clear(struct gcache *c)
{
  struct bfs_htab_iter it;
  bfs_htab_iter_init(&it, &c->t);
  for (struct bfs_hlink *l; (l = bfs_htab_iter_next(&it)); )
    free_entry(bfs_container_of(l, struct gc_entry, h));
  bfs_htab_free(&c->t);
  c->complete = false;
}

struct gc_entry *
gc_find(struct gcache *c, const char *path)
{
  BFS_HTAB_FOR_HASH(&c->t, l, bfs_hash_str(path)) {
    struct gc_entry *e = bfs_container_of(l, struct gc_entry, h);
    if (!strcmp(e->path, path))
      return e;
  }
  return NULL;
}

struct gc_entry *
gc_get(struct gcache *c, const char *path)
{
  struct gc_entry *e = gc_find(c, path);
  if (e)
    return e;
  if (c->cap && bfs_htab_count(&c->t) >= c->cap && !c->complete)
    gc_clear(c);
  if (!c->t.nb && bfs_htab_init(&c->t, 1024) < 0)
    return NULL;
  e = calloc(1, sizeof *e);
  if (!e || !(e->path = strdup(path))) {
    free(e);
    return NULL;
  }
  bfs_htab_insert(&c->t, &e->h, bfs_hash_str(path));
  return e;
}

void
gc_set_kids(struct gc_entry *e, char **kids, size_t n)
{
  for (size_t i = 0; i < e->nkids; i++)
    free(e->kids[i]);
  free(e->kids);
  e->kids = kids;
  e->nkids = e->kcap = n;
  e->listed = true;
}

int
gc_add_kid(struct gc_entry *e, const char *name)
{
  if (e->nkids == e->kcap) {
    size_t nc = e->kcap ? e->kcap * 2 : 8;
    char **k = realloc(e->kids, nc * sizeof *k);
    if (!k)
      return -ENOMEM;
    e->kids = k;
    e->kcap = nc;
  }
  if (!(e->kids[e->nkids] = strdup(name)))
    return -ENOMEM;
  e->nkids++;
  e->listed = true;
  return 0;
}

char *
gc_join(const char *dir, const char *name)
{
  char *s;
  if (asprintf(&s, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", name) < 0)
    return NULL;
  return s;
}

char *
gc_parent(const char *path)
{
  const char *slash = strrchr(path, '/');
  if (!slash || slash == path)
    return strdup("/");
  return strndup(path, slash - path);
}

const char *
gc_basename(const char *path)
{
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}
