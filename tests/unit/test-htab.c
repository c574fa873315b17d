/* test-htab.c — common/htab.c and common/vec.c: lookups through growth,
 * removal, entries whose hashes collide, the iterator visiting each entry
 * once while it frees them, the string map, and the vector's growth. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/htab.h"
#include "common/vec.h"

static int fails;

#define CHECK(c)                                                            \
  do { if (!(c)) { fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, \
                           #c); fails++; } } while (0)

struct item {
  struct bfs_hlink h;
  unsigned long key;
  int seen;
};

static struct item *
find(struct bfs_htab *t, unsigned long key, uint64_t hash)
{
  BFS_HTAB_FOR_HASH(t, l, hash) {
    struct item *it = bfs_container_of(l, struct item, h);
    if (it->key == key)
      return it;
  }
  return NULL;
}

static bool
item_eq(const struct bfs_hlink *l, const void *key)
{
  return bfs_container_of(l, const struct item, h)->key ==
         *(const unsigned long *)key;
}

/* 10000 entries: the table grows from 16 buckets; every key is found
 * before and after half of them are removed */
static void
test_grow_remove(void)
{
  enum { N = 10000 };
  struct bfs_htab t;
  struct item *items = calloc(N, sizeof *items);
  CHECK(items && bfs_htab_init(&t, 0) == 0);
  for (unsigned long i = 0; i < N; i++) {
    items[i].key = i * 7919;
    bfs_htab_insert(&t, &items[i].h, bfs_hash_u64(items[i].key));
  }
  CHECK(bfs_htab_count(&t) == N);
  CHECK(t.nb >= N);
  for (unsigned long i = 0; i < N; i++)
    CHECK(find(&t, i * 7919, bfs_hash_u64(i * 7919)) == &items[i]);
  for (unsigned long i = 0; i < N; i += 2)
    bfs_htab_remove(&t, &items[i].h);
  CHECK(bfs_htab_count(&t) == N / 2);
  for (unsigned long i = 0; i < N; i++) {
    unsigned long k = i * 7919;
    struct bfs_hlink *l = bfs_htab_find(&t, bfs_hash_u64(k), item_eq, &k);
    CHECK(l == (i % 2 ? &items[i].h : NULL));
  }
  CHECK(find(&t, 1, bfs_hash_u64(1)) == NULL);
  bfs_htab_free(&t);
  free(items);
}

/* distinct keys with one hash: the caller's comparison tells them apart,
 * and removing the middle one keeps the others */
static void
test_collisions(void)
{
  struct bfs_htab t;
  struct item it[3] = { { .key = 1 }, { .key = 2 }, { .key = 3 } };
  CHECK(bfs_htab_init(&t, 4) == 0);
  for (int i = 0; i < 3; i++)
    bfs_htab_insert(&t, &it[i].h, 42);
  int n = 0;
  BFS_HTAB_FOR_HASH(&t, l, 42)
    n++;
  CHECK(n == 3);
  CHECK(find(&t, 2, 42) == &it[1]);
  bfs_htab_remove(&t, &it[1].h);
  CHECK(find(&t, 2, 42) == NULL);
  CHECK(find(&t, 1, 42) == &it[0] && find(&t, 3, 42) == &it[2]);
  CHECK(find(&t, 1, 43) == NULL);
  CHECK(bfs_htab_count(&t) == 2);
  bfs_htab_free(&t);
}

/* the iterator sees each entry once and tolerates freeing the current */
static void
test_iter(void)
{
  enum { N = 1000 };
  struct bfs_htab t;
  CHECK(bfs_htab_init(&t, 0) == 0);
  int *seen = calloc(N, sizeof *seen);
  for (unsigned long i = 0; i < N; i++) {
    struct item *it = calloc(1, sizeof *it);
    it->key = i;
    bfs_htab_insert(&t, &it->h, bfs_hash_u64(i));
  }
  struct bfs_htab_iter iter;
  bfs_htab_iter_init(&iter, &t);
  size_t visits = 0;
  for (struct bfs_hlink *l; (l = bfs_htab_iter_next(&iter)); visits++) {
    struct item *it = bfs_container_of(l, struct item, h);
    CHECK(it->key < N);
    seen[it->key]++;
    free(it);
  }
  CHECK(visits == N);
  for (int i = 0; i < N; i++)
    CHECK(seen[i] == 1);
  free(seen);
  bfs_htab_free(&t);
}

static void
test_strmap(void)
{
  struct bfs_strmap m;
  static char keys[2000][16];
  CHECK(bfs_strmap_init(&m) == 0);
  CHECK(bfs_strmap_get(&m, "x") == NULL);
  for (int i = 0; i < 2000; i++) {
    snprintf(keys[i], sizeof keys[i], "vm-%d", i);
    CHECK(bfs_strmap_put(&m, keys[i], &keys[i]) == 0);
  }
  CHECK(bfs_strmap_count(&m) == 2000);
  char probe[16];
  for (int i = 0; i < 2000; i++) {
    snprintf(probe, sizeof probe, "vm-%d", i);     /* another pointer */
    CHECK(bfs_strmap_get(&m, probe) == &keys[i]);
  }
  CHECK(bfs_strmap_put(&m, "vm-7", &keys[8]) == 0);       /* replace */
  CHECK(bfs_strmap_count(&m) == 2000);
  CHECK(bfs_strmap_get(&m, "vm-7") == &keys[8]);
  CHECK(bfs_strmap_del(&m, "vm-7") == &keys[8]);
  CHECK(bfs_strmap_del(&m, "vm-7") == NULL);
  CHECK(bfs_strmap_get(&m, "vm-7") == NULL);
  CHECK(bfs_strmap_get(&m, "vm-70") == &keys[70]);
  CHECK(bfs_strmap_get(&m, "") == NULL);
  CHECK(bfs_strmap_count(&m) == 1999);
  bfs_strmap_free(&m);
}

/* the seed separates equal strings of different parents; equal input
 * hashes equal */
static void
test_hash(void)
{
  CHECK(bfs_hash_bytes("abc", 3, 1) != bfs_hash_bytes("abc", 3, 2));
  CHECK(bfs_hash_bytes("abc", 3, 0) == bfs_hash_str("abc"));
  CHECK(bfs_hash_u64(1) != bfs_hash_u64(2));
}

BFS_VEC_TYPE(ints, int);

static void
test_vec(void)
{
  struct ints v = BFS_VEC_INIT;
  for (int i = 0; i < 1000; i++)
    CHECK(bfs_vec_push(&v, i * 3) == 0);
  CHECK(v.n == 1000 && v.cap >= 1000 && v.cap < 2048);
  int ok = 1;
  for (int i = 0; i < 1000; i++)
    ok &= v.v[i] == i * 3;
  CHECK(ok);
  CHECK(bfs_vec_reserve(&v, 5000) == 0 && v.cap >= 5000 && v.n == 1000);
  /* a size that cannot be allocated: -ENOMEM and the vector intact */
  size_t cap = v.cap;
  CHECK(bfs_vec_reserve(&v, SIZE_MAX / 2) == -ENOMEM);
  CHECK(v.cap == cap && v.n == 1000 && v.v[999] == 2997);
  bfs_vec_free(&v);
  CHECK(!v.v && !v.n && !v.cap);

  BFS_VEC(const char *) s = BFS_VEC_INIT;
  CHECK(bfs_vec_push(&s, "a") == 0 && bfs_vec_push(&s, "b") == 0);
  CHECK(s.n == 2 && !strcmp(s.v[1], "b"));
  bfs_vec_free(&s);
}

int
main(void)
{
  test_grow_remove();
  test_collisions();
  test_iter();
  test_strmap();
  test_hash();
  test_vec();
  if (fails)
    return 1;
  printf("htab, vec: all cases pass\n");
  return 0;
}
