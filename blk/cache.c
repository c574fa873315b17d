/* cache.c — the caching filter: a merged extent map and a decoded-unit LRU
 * over any stack.
 *
 * The disk is cut into regions of 2^CACHE_REGION_BITS bytes.  The first
 * access to a region asks the stack below for its block status once and
 * keeps the answers as a sorted array of segments: zeros/holes, plain bytes
 * of a file (fd + offset: read here directly, one pread, no layer walked),
 * or part of a decode unit (a compressed cluster: read through the stack).
 * A request then needs one lookup per segment.
 *
 * Decode units are cached whole in an LRU keyed by their guest range, as
 * read through the stack below (which is immutable, so the bytes of a
 * guest range never change; units of different layers may share a start,
 * not a range); requests covering whole units go straight
 * through the stack into the caller's buffer, so a sequential copy does
 * not churn the cache and the driver can batch neighbouring payloads.
 *
 * A request is gathered into pieces (plain preads, cut into slices; runs
 * of whole units, cut into one piece per thread; parts of units) and the
 * pieces run on the pool given at open (common/pool.h) with the calling
 * thread: one request's layer reads are in flight together and its
 * compressed clusters decode on every core.  Zeros are written in place.
 *
 * THREAD MODEL: regions live in a hash table under map_lock (rwlock).
 * Readers take it shared, copy the one segment they need and drop it.  A
 * missing region is built with no lock held, then inserted under the write
 * lock; a racing duplicate is dropped.  Memory is bounded by map_cap: past
 * it the least recently used half of the regions goes.  Recency is an
 * epoch clock that ticks when a region is added; a hit stores the epoch in
 * its region only when it changed, so the lookup path writes no shared
 * cache line but the read lock's.  The unit LRU is
 * under cc_lock (a mutex), bounded by cc_cap; hits are copied out under it.
 * Evicted entries are kept (CACHE_SPARE_BYTES of them, or one, on the
 * spare list under cc_lock) for the next miss of the same unit size
 * instead of going back to malloc: a full cache then recycles its own
 * blocks, where malloc and free on different FUSE threads spread them
 * over every thread's arena (measured: a 32 MiB cache held 70 MiB of
 * anonymous memory after random reads of a zstd image).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blk/blk.h"
#include "common/error.h"
#include "common/ioutil.h"
#include "common/lock.h"
#include "common/pool.h"

#define CACHE_REGION_BITS 26                      /* 64 MiB per region */
#define CACHE_REGION_SIZE (1ull << CACHE_REGION_BITS)
#define CACHE_MAP_CAP (64u * 1024 * 1024)
#define CACHE_UNITS_DEFAULT (32u * 1024 * 1024)
#define CACHE_MAP_BUCKETS 4096
#define CACHE_CC_BUCKETS 1024
#define CACHE_BATCH 32                            /* pieces per pool loop */
#define CACHE_RUN_MAX (8u << 20)                  /* bytes per unit run */
#define CACHE_PLAIN_SLICE (256u << 10)
#define CACHE_SPARE_BYTES (2u << 20)              /* kept evicted entries */

enum seg_kind { SEG_ZERO, SEG_HOLE, SEG_PLAIN, SEG_UNIT, SEG_OTHER };

struct seg {
  uint64_t off, len;
  uint64_t host;          /* PLAIN: fd offset of off; UNIT: unit_off */
  uint32_t unit_len;      /* UNIT */
  int32_t fd;             /* PLAIN */
  uint8_t kind;
  int16_t layer;
};

struct region {
  struct region *next;
  uint64_t index, stamp;
  size_t n;
  struct seg segs[];
};

struct centry {
  struct centry *next, *lru_prev, *lru_next;
  uint64_t unit_off;
  size_t len;
  unsigned char *data;    /* right after the struct */
};

struct cache {
  struct bfs_blk b;
  pthread_rwlock_t map_lock;
  struct region *buckets[CACHE_MAP_BUCKETS];
  size_t map_bytes, map_cap, nregions;
  uint64_t clock;

  pthread_mutex_t cc_lock;
  struct centry *cc_buckets[CACHE_CC_BUCKETS];
  struct centry lru;      /* lru.lru_next is the newest */
  size_t cc_bytes, cc_cap;
  struct centry *spare;   /* evicted entries for reuse (next-linked) */
  size_t spare_bytes;
  struct bfs_pool *pool;  /* not owned; NULL: one thread */
};

struct segvec {
  struct seg *v;
  size_t n, cap;
};

static bool
mergeable(const struct seg *a, const struct seg *s)
{
  if (a->kind != s->kind || a->off + a->len != s->off || a->layer != s->layer)
    return false;
  if (s->kind == SEG_ZERO || s->kind == SEG_HOLE || s->kind == SEG_OTHER)
    return true;
  return s->kind == SEG_PLAIN && a->fd == s->fd && a->host + a->len == s->host;
}

static int
push(struct segvec *sv, const struct seg *s)
{
  if (sv->n > 0 && mergeable(&sv->v[sv->n - 1], s)) {
    sv->v[sv->n - 1].len += s->len;
    return 0;
  }
  if (sv->n == sv->cap) {
    size_t cap = sv->cap ? sv->cap * 2 : 16;
    struct seg *v = realloc(sv->v, cap * sizeof *v);
    if (!v)
      return bfs_error(-ENOMEM, "out of memory for the extent map");
    sv->v = v;
    sv->cap = cap;
  }
  sv->v[sv->n++] = *s;
  return 0;
}

static int
build_region(struct cache *c, uint64_t idx, struct region **out)
{
  struct bfs_blk *in = c->b.below;
  uint64_t off = idx << CACHE_REGION_BITS, end = off + CACHE_REGION_SIZE;
  struct segvec sv = { 0 };
  struct region *reg;
  int r = 0;

  if (end > c->b.size)
    end = c->b.size;
  while (off < end) {
    struct bfs_blk_status st;
    struct seg s = { .off = off, .fd = -1 };
    if ((r = bfs_blk_block_status(in, off, end - off, &st)) < 0)
      break;
    s.len = st.len;
    s.layer = (int16_t)st.layer;
    if (st.kind == BFS_BLK_ZERO)
      s.kind = SEG_ZERO;
    else if (st.kind == BFS_BLK_HOLE)
      s.kind = SEG_HOLE;
    else if (st.fd >= 0) {
      s.kind = SEG_PLAIN;
      s.fd = st.fd;
      s.host = st.fd_off;
    }
    else if (st.unit_len > 0 && st.unit_len <= UINT32_MAX &&
             st.unit_off <= off && off + st.len <= st.unit_off + st.unit_len &&
             st.unit_off + st.unit_len <= c->b.size) {
      s.kind = SEG_UNIT;
      s.host = st.unit_off;
      s.unit_len = (uint32_t)st.unit_len;
    }
    else
      s.kind = SEG_OTHER;
    if ((r = push(&sv, &s)) < 0)
      break;
    off += st.len;
  }
  if (r < 0 || !(reg = malloc(sizeof *reg + sv.n * sizeof sv.v[0]))) {
    free(sv.v);
    return r < 0 ? r : bfs_error(-ENOMEM, "out of memory for the extent map");
  }
  reg->index = idx;
  reg->n = sv.n;
  memcpy(reg->segs, sv.v, sv.n * sizeof sv.v[0]);
  free(sv.v);
  *out = reg;
  return 0;
}

static struct region *
find_region(struct cache *c, uint64_t idx)
{
  for (struct region *r = c->buckets[idx % CACHE_MAP_BUCKETS]; r; r = r->next)
    if (r->index == idx)
      return r;
  return NULL;
}

static size_t
region_bytes(const struct region *r)
{
  return sizeof *r + r->n * sizeof r->segs[0];
}

static int
cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Drop the least recently used half of the regions (write lock held). */
static void
evict(struct cache *c, const struct region *keep)
{
  uint64_t *stamps = malloc(c->nregions * sizeof *stamps), median = UINT64_MAX;
  size_t n = 0;

  if (stamps) {
    for (size_t b = 0; b < CACHE_MAP_BUCKETS; b++)
      for (struct region *r = c->buckets[b]; r; r = r->next)
        stamps[n++] = r->stamp;
    qsort(stamps, n, sizeof *stamps, cmp_u64);
    median = stamps[n / 2];
    /* epochs tie: drop the older ones when there are any, so one busy
     * epoch does not empty the map */
    if (stamps[0] < median)
      median--;
    free(stamps);
  }
  for (size_t b = 0; b < CACHE_MAP_BUCKETS; b++) {
    struct region **pp = &c->buckets[b];
    while (*pp) {
      struct region *r = *pp;
      if (r != keep && r->stamp <= median) {
        *pp = r->next;
        c->map_bytes -= region_bytes(r);
        c->nregions--;
        free(r);
      }
      else
        pp = &r->next;
    }
  }
}

static const struct seg *
find_seg(const struct region *reg, uint64_t off)
{
  size_t lo = 0, hi = reg->n;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (reg->segs[mid].off <= off)
      lo = mid;
    else
      hi = mid;
  }
  return &reg->segs[lo];
}

/* Copy the segment holding off (off < size) into *s. */
static int
get_seg(struct cache *c, uint64_t off, struct seg *s)
{
  uint64_t idx = off >> CACHE_REGION_BITS;
  struct region *reg, *mine = NULL;
  int r;

  {
    ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE(&c->map_lock);
    if ((reg = find_region(c, idx))) {
      /* the clock moves only when a region is added: a hit writes its
       * stamp once per epoch, not a shared counter per lookup */
      uint64_t now = __atomic_load_n(&c->clock, __ATOMIC_RELAXED);
      if (__atomic_load_n(&reg->stamp, __ATOMIC_RELAXED) != now)
        __atomic_store_n(&reg->stamp, now, __ATOMIC_RELAXED);
      *s = *find_seg(reg, off);
      return 0;
    }
  }
  if ((r = build_region(c, idx, &mine)) < 0)
    return r;
  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE(&c->map_lock);
  if ((reg = find_region(c, idx)))
    free(mine);
  else {
    reg = mine;
    reg->next = c->buckets[idx % CACHE_MAP_BUCKETS];
    c->buckets[idx % CACHE_MAP_BUCKETS] = reg;
    c->map_bytes += region_bytes(reg);
    c->nregions++;
    if (c->map_bytes > c->map_cap)
      evict(c, reg);
  }
  reg->stamp = __atomic_add_fetch(&c->clock, 1, __ATOMIC_RELAXED);
  *s = *find_seg(reg, off);
  return 0;
}

/* ---- the decoded-unit LRU ---- */

static size_t
cc_hash(uint64_t unit_off)
{
  return (size_t)((unit_off >> 9) * 0x9e3779b97f4a7c15ull >> 40) %
         CACHE_CC_BUCKETS;
}

static void
lru_unlink(struct centry *e)
{
  e->lru_prev->lru_next = e->lru_next;
  e->lru_next->lru_prev = e->lru_prev;
}

static void
lru_push(struct cache *c, struct centry *e)
{
  e->lru_next = c->lru.lru_next;
  e->lru_prev = &c->lru;
  c->lru.lru_next->lru_prev = e;
  c->lru.lru_next = e;
}

/* An entry no one holds back to the spare list, or freed (cc_lock held). */
static void
cc_recycle(struct cache *c, struct centry *e)
{
  if (c->spare && c->spare_bytes + e->len > CACHE_SPARE_BYTES) {
    free(e);
    return;
  }
  e->next = c->spare;
  c->spare = e;
  c->spare_bytes += e->len;
}

static void
cc_remove(struct cache *c, struct centry *e)
{
  struct centry **pp = &c->cc_buckets[cc_hash(e->unit_off)];
  while (*pp != e)
    pp = &(*pp)->next;
  *pp = e->next;
  lru_unlink(e);
  c->cc_bytes -= e->len;
  cc_recycle(c, e);
}

/* An entry for a unit of len bytes: a spare of that size, or new. */
static struct centry *
cc_alloc(struct cache *c, size_t len)
{
  struct centry *e;

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&c->cc_lock);
    for (struct centry **pp = &c->spare; (e = *pp); pp = &e->next)
      if (e->len == len) {
        *pp = e->next;
        c->spare_bytes -= e->len;
        return e;
      }
  }
  if (!(e = malloc(sizeof *e + len)))
    return NULL;
  e->data = (unsigned char *)(e + 1);
  e->len = len;
  return e;
}

static void
cc_drop(struct cache *c, struct centry *e)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&c->cc_lock);
  cc_recycle(c, e);
}

static bool
cc_copy_out(struct cache *c, const struct seg *s, void *buf, uint64_t off,
            size_t len)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&c->cc_lock);
  for (struct centry *e = c->cc_buckets[cc_hash(s->host)]; e; e = e->next)
    if (e->unit_off == s->host && e->len == s->unit_len) {
      lru_unlink(e);
      lru_push(c, e);
      memcpy(buf, e->data + (off - s->host), len);
      return true;
    }
  return false;
}

static void
cc_insert(struct cache *c, struct centry *e)
{
  size_t h = cc_hash(e->unit_off);
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&c->cc_lock);

  for (struct centry *o = c->cc_buckets[h]; o; o = o->next)
    if (o->unit_off == e->unit_off && o->len == e->len) {
      cc_recycle(c, e);             /* another thread won */
      return;
    }
  while (c->cc_bytes + e->len > c->cc_cap && c->lru.lru_prev != &c->lru)
    cc_remove(c, c->lru.lru_prev);
  if (e->len > c->cc_cap) {
    free(e);
    return;
  }
  e->next = c->cc_buckets[h];
  c->cc_buckets[h] = e;
  lru_push(c, e);
  c->cc_bytes += e->len;
}

/* Part of one decode unit: from the LRU, or decoded once and kept. */
static int
read_unit_part(struct cache *c, const struct seg *s, void *buf, uint64_t off,
               size_t len)
{
  struct centry *e;
  int r;

  if (cc_copy_out(c, s, buf, off, len))
    return 0;
  if (!(e = cc_alloc(c, s->unit_len)))
    return bfs_error(-ENOMEM, "%s: out of memory for a decoded unit",
                     c->b.name);
  e->unit_off = s->host;
  if ((r = bfs_blk_pread(c->b.below, e->data, s->unit_len, s->host)) < 0) {
    cc_drop(c, e);
    return r;
  }
  memcpy(buf, e->data + (off - s->host), len);
  cc_insert(c, e);
  return 0;
}

/* ---- one request: gathered into pieces, run on the pool ---- */

enum piece_kind { P_PLAIN, P_BELOW, P_PART };

struct piece {
  uint8_t kind;
  unsigned char *dst;
  uint64_t off;            /* guest offset */
  size_t len;
  struct seg s;            /* P_PLAIN, P_PART: the segment */
};

struct batch {
  struct cache *c;
  size_t n;
  struct piece p[CACHE_BATCH];
};

static int
run_piece(void *arg, size_t i)
{
  struct batch *bt = arg;
  struct cache *c = bt->c;
  const struct piece *pc = &bt->p[i];
  uint64_t host;
  int r;

  switch (pc->kind) {
  case P_PLAIN:
    host = pc->s.host + (pc->off - pc->s.off);
    r = bfs_pread_all(pc->s.fd, pc->dst, pc->len, host);
    if (r < 0)
      return bfs_error(-EIO, "%s: layer %d: reading %zu bytes at host "
                       "offset %#" PRIx64 ": %s", c->b.name, pc->s.layer,
                       pc->len, host,
                       r == -EIO ? "file ended early (changed under us?)"
                       : strerror(-r));
    return 0;
  case P_PART:
    return read_unit_part(c, &pc->s, pc->dst, pc->off, pc->len);
  default:
    return bfs_blk_pread(c->b.below, pc->dst, pc->len, pc->off);
  }
}

static void
add_piece(struct batch *bt, uint8_t kind, unsigned char *dst, uint64_t off,
          size_t len, const struct seg *s)
{
  struct piece *pc = &bt->p[bt->n++];
  pc->kind = kind;
  pc->dst = dst;
  pc->off = off;
  pc->len = len;
  if (s)
    pc->s = *s;
}

/* Whole units from off (the start of s's unit) within [off, end), at most
 * CACHE_RUN_MAX bytes, cut into up to `ways` pieces on unit boundaries:
 * each one read through the stack (the driver batches its payloads), the
 * pieces decoded in parallel.  Returns the bytes covered or -errno. */
static int64_t
add_unit_run(struct batch *bt, const struct seg *s, unsigned char *buf,
             uint64_t off, uint64_t end, size_t ways)
{
  struct cache *c = bt->c;
  uint64_t bounds[CACHE_BATCH + 1];
  size_t nu = 1;
  uint64_t pos = off + s->unit_len;
  int r;

  bounds[0] = off;
  bounds[1] = pos;
  while (pos < end && pos - off < CACHE_RUN_MAX && nu < CACHE_BATCH) {
    struct seg t;
    if ((r = get_seg(c, pos, &t)) < 0)
      return r;
    if (t.kind != SEG_UNIT || t.host != pos || pos + t.unit_len > end)
      break;
    pos += t.unit_len;
    bounds[++nu] = pos;
  }
  if (ways > nu)
    ways = nu;
  for (size_t w = 0; w < ways; w++) {
    uint64_t a = bounds[nu * w / ways], b = bounds[nu * (w + 1) / ways];
    add_piece(bt, P_BELOW, buf + (a - off), a, (size_t)(b - a), NULL);
  }
  return (int64_t)(pos - off);
}

static int
cache_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  struct cache *c = (struct cache *)b;
  unsigned char *p = buf;
  const uint64_t end = off + len;
  const size_t ways = bfs_pool_threads(c->pool) + 1;
  struct batch bt;
  int r;

  bt.c = c;
  while (off < end) {
    bt.n = 0;
    /* gather pieces until the batch is full (room for one unit run) */
    while (off < end && bt.n + ways <= CACHE_BATCH) {
      struct seg s;
      uint64_t segend;
      size_t n;

      if ((r = get_seg(c, off, &s)) < 0)
        return r;
      segend = s.off + s.len;
      n = (size_t)((segend < end ? segend : end) - off);
      switch (s.kind) {
      case SEG_ZERO:
      case SEG_HOLE:
        memset(p, 0, n);
        break;
      case SEG_PLAIN:
        /* big plain runs in slices: more I/O in flight, copies on every
         * core */
        if (ways > 1 && n > CACHE_PLAIN_SLICE)
          n = CACHE_PLAIN_SLICE;
        add_piece(&bt, P_PLAIN, p, off, n, &s);
        break;
      case SEG_UNIT:
        if (off == s.host && end - off >= s.unit_len) {
          int64_t got = add_unit_run(&bt, &s, p, off, end, ways);
          if (got < 0)
            return (int)got;
          n = (size_t)got;
        }
        else
          add_piece(&bt, P_PART, p, off, n, &s);
        break;
      default:
        add_piece(&bt, P_BELOW, p, off, n, NULL);
        break;
      }
      p += n;
      off += n;
    }
    if ((r = bfs_pool_for(c->pool, bt.n, run_piece, &bt)) < 0)
      return r;
  }
  return 0;
}

static int
cache_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                   struct bfs_blk_status *st)
{
  struct seg s;
  int r;

  if ((r = get_seg((struct cache *)b, off, &s)) < 0)
    return r;
  st->len = s.off + s.len - off < max ? s.off + s.len - off : max;
  st->layer = s.layer;
  st->kind = s.kind == SEG_ZERO ? BFS_BLK_ZERO
             : s.kind == SEG_HOLE ? BFS_BLK_HOLE : BFS_BLK_DATA;
  if (s.kind == SEG_PLAIN) {
    st->fd = s.fd;
    st->fd_off = s.host + (off - s.off);
  }
  if (s.kind == SEG_UNIT) {
    st->unit_off = s.host;
    st->unit_len = s.unit_len;
  }
  return 0;
}

static void
cache_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len)
{
  struct cache *c = (struct cache *)b;
  const uint64_t end = off + len;
  int fd = -1;
  uint64_t lo = 0, hi = 0;
  struct seg s;

  /* coalesce neighbouring host ranges of one file into one hint */
  for (; off < end; off = s.off + s.len) {
    if (get_seg(c, off, &s) < 0)
      break;
    uint64_t segend = s.off + s.len < end ? s.off + s.len : end;
    if (s.kind == SEG_UNIT || s.kind == SEG_OTHER) {
      bfs_blk_prefetch(b->below, off, segend - off);
      continue;
    }
    if (s.kind != SEG_PLAIN)
      continue;
    uint64_t h0 = s.host + (off - s.off), h1 = s.host + (segend - s.off);
    if (s.fd == fd && h0 >= lo && h0 <= hi + 65536) {
      hi = h1 > hi ? h1 : hi;
      continue;
    }
    if (fd >= 0)
      posix_fadvise(fd, (off_t)lo, (off_t)(hi - lo), POSIX_FADV_WILLNEED);
    fd = s.fd;
    lo = h0;
    hi = h1;
  }
  if (fd >= 0)
    posix_fadvise(fd, (off_t)lo, (off_t)(hi - lo), POSIX_FADV_WILLNEED);
}

static void
cache_close(struct bfs_blk *b)
{
  struct cache *c = (struct cache *)b;

  for (size_t i = 0; i < CACHE_MAP_BUCKETS; i++)
    while (c->buckets[i]) {
      struct region *r = c->buckets[i];
      c->buckets[i] = r->next;
      free(r);
    }
  while (c->lru.lru_next != &c->lru)
    cc_remove(c, c->lru.lru_next);
  while (c->spare) {
    struct centry *e = c->spare;
    c->spare = e->next;
    free(e);
  }
  pthread_rwlock_destroy(&c->map_lock);
  pthread_mutex_destroy(&c->cc_lock);
  free(c);
}

static const struct bfs_blk_ops cache_ops = {
  .name = "cache",
  .pread = cache_pread,
  .block_status = cache_block_status,
  .prefetch = cache_prefetch,
  .close = cache_close,
};

int
blk_cache_open(struct bfs_blk *inner, const struct blk_cache_opts *o,
               struct bfs_blk **out)
{
  struct cache *c = calloc(1, sizeof *c);

  *out = NULL;
  if (!c) {
    bfs_blk_close(inner);
    return bfs_error(-ENOMEM, "out of memory");
  }
  pthread_rwlock_init(&c->map_lock, NULL);
  pthread_mutex_init(&c->cc_lock, NULL);
  c->map_cap = o && o->map_bytes ? o->map_bytes : CACHE_MAP_CAP;
  c->cc_cap = o && o->cache_bytes ? o->cache_bytes : CACHE_UNITS_DEFAULT;
  c->pool = o ? o->pool : NULL;
  c->lru.lru_next = c->lru.lru_prev = &c->lru;
  c->b.ops = &cache_ops;
  c->b.size = inner->size;
  c->b.name = inner->name;
  c->b.below = inner;
  c->b.info = (struct bfs_blk_info){ .format = "cache", .is_filter = true,
                                     .virtual_size = inner->size };
  *out = &c->b;
  return 0;
}
