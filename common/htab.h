/* htab.h — an intrusive chained hash table keyed with xxhash (XXH3), and a
 * small string -> pointer map built on it.
 *
 * Intrusive: the caller's struct holds a struct bfs_hlink; the table owns
 * no entries and allocates only its bucket array, so inserting never
 * allocates per entry and an entry can be on several tables (one link
 * each).  The link keeps the entry's 64-bit hash, so growing rehashes
 * without calling back and a lookup compares keys only when hashes match.
 *
 *   struct node { struct bfs_hlink h; uint64_t ino; ... };
 *   bfs_htab_init(&t, 0);
 *   bfs_htab_insert(&t, &n->h, bfs_hash_u64(n->ino));
 *   BFS_HTAB_FOR_HASH(&t, l, bfs_hash_u64(ino)) {
 *     struct node *n = bfs_container_of(l, struct node, h);
 *     if (n->ino == ino) return n;
 *   }
 *   or: l = bfs_htab_find(&t, hash, eq, &key)  with a caller's eq()
 *   bfs_htab_remove(&t, &n->h);
 *
 * Buckets are a power of two; the table doubles when entries exceed
 * buckets (load factor 1).  A failed growth keeps the longer chains, so
 * only bfs_htab_init() can fail.  Duplicate keys are allowed (the table
 * does not compare keys); callers that want unique keys look up first.
 *
 * struct bfs_strmap: string keys (owned by the caller, as they must live
 * as long as their entry) to void * values; one small allocation per key.
 *
 * THREAD MODEL: none inside; callers lock (a table and its entries' links
 * are guarded by whatever lock the caller's structure uses).
 */
#ifndef BFS_HTAB_H
#define BFS_HTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define bfs_container_of(ptr, type, member) \
  ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* XXH3 64-bit; the seed mixes in a second key part (e.g. a parent inode) */
uint64_t bfs_hash_bytes(const void *p, size_t len, uint64_t seed);
uint64_t bfs_hash_str(const char *s);
uint64_t bfs_hash_u64(uint64_t v);

struct bfs_hlink {
  struct bfs_hlink *next;
  uint64_t hash;
};

struct bfs_htab {
  struct bfs_hlink **b;
  size_t nb;                    /* buckets, a power of two */
  size_t n;                     /* entries */
};

/* min_buckets 0: a small default; rounded up to a power of two.
 * 0 or -ENOMEM. */
int bfs_htab_init(struct bfs_htab *t, size_t min_buckets);
/* frees the bucket array, not the entries (free them first, e.g. with an
 * iterator); the table is then empty and needs bfs_htab_init() again */
void bfs_htab_free(struct bfs_htab *t);

void bfs_htab_insert(struct bfs_htab *t, struct bfs_hlink *l, uint64_t hash);
/* l must be in t */
void bfs_htab_remove(struct bfs_htab *t, struct bfs_hlink *l);

static inline size_t
bfs_htab_count(const struct bfs_htab *t)
{
  return t->n;
}

/* the first (next) link whose hash equals hash, or NULL */
static inline struct bfs_hlink *
bfs_htab_same_hash(struct bfs_hlink *l, uint64_t hash)
{
  while (l && l->hash != hash)
    l = l->next;
  return l;
}

static inline struct bfs_hlink *
bfs_htab_first(const struct bfs_htab *t, uint64_t hash)
{
  return t->nb ? bfs_htab_same_hash(t->b[hash & (t->nb - 1)], hash) : NULL;
}

static inline struct bfs_hlink *
bfs_htab_next(const struct bfs_hlink *l)
{
  return bfs_htab_same_hash(l->next, l->hash);
}

/* every link of hash h (the caller compares its key); do not remove the
 * current link inside the loop */
#define BFS_HTAB_FOR_HASH(t, l, h)                                          \
  for (struct bfs_hlink *l = bfs_htab_first((t), (h)); l;                   \
       l = bfs_htab_next(l))

/* the first link of hash h for which eq(link, key) holds, or NULL */
struct bfs_hlink *bfs_htab_find(const struct bfs_htab *t, uint64_t hash,
                                bool (*eq)(const struct bfs_hlink *l,
                                           const void *key),
                                const void *key);

/* Visits every link once, in no order.  The link returned may be removed
 * and freed before the next call (the iterator has moved past it); no
 * other insert or remove during the walk. */
struct bfs_htab_iter {
  const struct bfs_htab *t;
  size_t i;
  struct bfs_hlink *next;
};
void bfs_htab_iter_init(struct bfs_htab_iter *it, const struct bfs_htab *t);
struct bfs_hlink *bfs_htab_iter_next(struct bfs_htab_iter *it);

/* ---- string -> pointer ---- */

struct bfs_strmap {
  struct bfs_htab t;
};

int bfs_strmap_init(struct bfs_strmap *m);            /* 0 or -ENOMEM */
void bfs_strmap_free(struct bfs_strmap *m);           /* not keys/values */
void *bfs_strmap_get(const struct bfs_strmap *m, const char *key);
/* adds or replaces; key is kept (not copied; on a replace the new key
 * replaces the old).  0 or -ENOMEM. */
int bfs_strmap_put(struct bfs_strmap *m, const char *key, void *val);
/* the value removed, or NULL */
void *bfs_strmap_del(struct bfs_strmap *m, const char *key);

static inline size_t
bfs_strmap_count(const struct bfs_strmap *m)
{
  return m->t.n;
}

#endif
