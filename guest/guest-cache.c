/* guest-cache.c — path → attributes table for guest files (see
 * guest-cache.h).  Chained hash table (FNV-1a), doubled when the load
 * factor passes 1; cleared wholesale when it holds more than its cap, which
 * is simpler than LRU and fine for data that can always be fetched again.
 */
#include "guest/guest-cache.h"
#include "common/vec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t
hash_path(const char *s)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  return h;
}

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
  for (size_t i = 0; i < c->nbuckets; i++) {
    struct gc_entry *e = c->buckets[i], *n;
    for (; e; e = n) {
      n = e->next;
      free_entry(e);
    }
  }
  free(c->buckets);
  c->buckets = NULL;
  c->nbuckets = c->count = 0;
  c->complete = false;
}

struct gc_entry *
gc_find(struct gcache *c, const char *path)
{
  if (!c->nbuckets)
    return NULL;
  struct gc_entry *e = c->buckets[hash_path(path) & (c->nbuckets - 1)];
  for (; e; e = e->next)
    if (!strcmp(e->path, path))
      return e;
  return NULL;
}

static int
grow(struct gcache *c)
{
  size_t nb = c->nbuckets ? c->nbuckets * 2 : 1024;
  struct gc_entry **b = calloc(nb, sizeof *b);
  if (!b)
    return -1;
  for (size_t i = 0; i < c->nbuckets; i++) {
    struct gc_entry *e = c->buckets[i], *n;
    for (; e; e = n) {
      n = e->next;
      size_t k = hash_path(e->path) & (nb - 1);
      e->next = b[k];
      b[k] = e;
    }
  }
  free(c->buckets);
  c->buckets = b;
  c->nbuckets = nb;
  return 0;
}

struct gc_entry *
gc_get(struct gcache *c, const char *path)
{
  struct gc_entry *e = gc_find(c, path);
  if (e)
    return e;
  if (c->cap && c->count >= c->cap && !c->complete) {
    size_t cap = c->cap;
    gc_clear(c);
    c->cap = cap;
  }
  if (c->count >= c->nbuckets && grow(c) < 0)
    return NULL;
  e = calloc(1, sizeof *e);
  if (!e || !(e->path = strdup(path))) {
    free(e);
    return NULL;
  }
  size_t k = hash_path(path) & (c->nbuckets - 1);
  e->next = c->buckets[k];
  c->buckets[k] = e;
  c->count++;
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
  if (bfs_vec_reserve_((void **)&e->kids, &e->kcap,
                       sizeof *e->kids, e->nkids + 1) < 0)
    return -ENOMEM;
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
