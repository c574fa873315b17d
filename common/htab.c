/* htab.c — the intrusive hash table and the string map (see htab.h). */
#include "common/htab.h"

#include <errno.h>
#include <stdlib.h>

#include <xxhash.h>

#define HTAB_MIN 16

uint64_t
bfs_hash_bytes(const void *p, size_t len, uint64_t seed)
{
  return XXH3_64bits_withSeed(p, len, seed);
}

uint64_t
bfs_hash_str(const char *s)
{
  return XXH3_64bits(s, strlen(s));
}

uint64_t
bfs_hash_u64(uint64_t v)
{
  return XXH3_64bits(&v, sizeof v);
}

static struct bfs_hlink **
buckets_new(size_t nb)
{
  return calloc(nb, sizeof(struct bfs_hlink *));
}

int
bfs_htab_init(struct bfs_htab *t, size_t min_buckets)
{
  size_t nb = HTAB_MIN;
  while (nb < min_buckets && nb < SIZE_MAX / 4)
    nb *= 2;
  t->n = 0;
  t->nb = 0;
  if (!(t->b = buckets_new(nb)))
    return -ENOMEM;
  t->nb = nb;
  return 0;
}

void
bfs_htab_free(struct bfs_htab *t)
{
  free(t->b);
  t->b = NULL;
  t->nb = t->n = 0;
}

static void
grow(struct bfs_htab *t)
{
  size_t nb = t->nb * 2;
  struct bfs_hlink **b = nb > t->nb ? buckets_new(nb) : NULL;
  if (!b)
    return;                       /* keep the longer chains */
  for (size_t i = 0; i < t->nb; i++)
    for (struct bfs_hlink *l = t->b[i], *next; l; l = next) {
      next = l->next;
      l->next = b[l->hash & (nb - 1)];
      b[l->hash & (nb - 1)] = l;
    }
  free(t->b);
  t->b = b;
  t->nb = nb;
}

void
bfs_htab_insert(struct bfs_htab *t, struct bfs_hlink *l, uint64_t hash)
{
  if (t->n >= t->nb)
    grow(t);
  struct bfs_hlink **head = &t->b[hash & (t->nb - 1)];
  l->hash = hash;
  l->next = *head;
  *head = l;
  t->n++;
}

void
bfs_htab_remove(struct bfs_htab *t, struct bfs_hlink *l)
{
  struct bfs_hlink **pp = &t->b[l->hash & (t->nb - 1)];
  while (*pp && *pp != l)
    pp = &(*pp)->next;
  if (*pp) {
    *pp = l->next;
    l->next = NULL;
    t->n--;
  }
}

struct bfs_hlink *
bfs_htab_find(const struct bfs_htab *t, uint64_t hash,
              bool (*eq)(const struct bfs_hlink *l, const void *key),
              const void *key)
{
  BFS_HTAB_FOR_HASH(t, l, hash)
    if (eq(l, key))
      return l;
  return NULL;
}

void
bfs_htab_iter_init(struct bfs_htab_iter *it, const struct bfs_htab *t)
{
  it->t = t;
  it->i = 0;
  it->next = NULL;
}

struct bfs_hlink *
bfs_htab_iter_next(struct bfs_htab_iter *it)
{
  while (!it->next && it->i < it->t->nb)
    it->next = it->t->b[it->i++];
  struct bfs_hlink *l = it->next;
  if (l)
    it->next = l->next;
  return l;
}

/* ---- string -> pointer ---- */

struct strent {
  struct bfs_hlink h;
  const char *key;
  void *val;
};

static bool
str_eq(const struct bfs_hlink *l, const void *key)
{
  return !strcmp(bfs_container_of(l, struct strent, h)->key, key);
}

static struct strent *
str_find(const struct bfs_strmap *m, const char *key, uint64_t hash)
{
  struct bfs_hlink *l = bfs_htab_find(&m->t, hash, str_eq, key);
  return l ? bfs_container_of(l, struct strent, h) : NULL;
}

int
bfs_strmap_init(struct bfs_strmap *m)
{
  return bfs_htab_init(&m->t, 0);
}

void
bfs_strmap_free(struct bfs_strmap *m)
{
  struct bfs_htab_iter it;
  bfs_htab_iter_init(&it, &m->t);
  for (struct bfs_hlink *l; (l = bfs_htab_iter_next(&it)); )
    free(bfs_container_of(l, struct strent, h));
  bfs_htab_free(&m->t);
}

void *
bfs_strmap_get(const struct bfs_strmap *m, const char *key)
{
  struct strent *e = str_find(m, key, bfs_hash_str(key));
  return e ? e->val : NULL;
}

int
bfs_strmap_put(struct bfs_strmap *m, const char *key, void *val)
{
  uint64_t hash = bfs_hash_str(key);
  struct strent *e = str_find(m, key, hash);
  if (e) {
    e->key = key;
    e->val = val;
    return 0;
  }
  if (!(e = malloc(sizeof *e)))
    return -ENOMEM;
  e->key = key;
  e->val = val;
  bfs_htab_insert(&m->t, &e->h, hash);
  return 0;
}

void *
bfs_strmap_del(struct bfs_strmap *m, const char *key)
{
  struct strent *e = str_find(m, key, bfs_hash_str(key));
  if (!e)
    return NULL;
  void *val = e->val;
  bfs_htab_remove(&m->t, &e->h);
  free(e);
  return val;
}
