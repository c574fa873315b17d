/* extmap.c — the merged extent map of a chain, and reading through it.
 *
 * The virtual disk is cut into regions of 2^CHAIN_REGION_BITS bytes.  The
 * first access to a region resolves it through the layers once (top first,
 * descending only where a layer is unallocated, zeros past a shorter
 * backing file) into a sorted array of segments, each saying where its
 * bytes come from: zeros, a contiguous host range in one layer, or part of
 * one compressed cluster.  Reads then need one lookup per segment.
 *
 * THREAD MODEL: regions live in a hash table under map_lock (rwlock).
 * Readers take it shared, copy the one segment they need and drop it.  A
 * missing region is built with no chain lock held (layers lock their own
 * tables), then inserted under the write lock; a racing duplicate is
 * dropped.  Memory is bounded by map_cap: when exceeded, the least recently
 * used half of the regions is evicted.  Decompressed clusters live in an LRU
 * (cc_lock, a mutex) bounded by cc_cap; hits are copied out under the lock.
 * Requests covering whole compressed clusters decompress straight into the
 * caller's buffer, bypassing the cache, with the payloads of neighbouring
 * clusters fetched by one pread (read_compressed_run).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "image/internal.h"

#define REGION_SIZE (1ull << CHAIN_REGION_BITS)
/* chain_extent_at() looks at most this far each way: a huge empty disk is
 * reported as several long ZERO extents rather than scanned to its end */
#define CHAIN_EXTENT_SCAN (1ull << 34)

struct segvec {
  struct seg *v;
  size_t n, cap;
};

static int
push(struct segvec *sv, const struct seg *s)
{
  if (sv->n > 0) {
    struct seg *last = &sv->v[sv->n - 1];
    if (last->kind == s->kind && last->off + last->len == s->off &&
        ((s->kind == SEG_ZERO) ||
         (s->kind == SEG_DATA && last->layer == s->layer &&
          last->host + last->len == s->host))) {
      last->len += s->len;
      return 0;
    }
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

/* Resolve [off, off+len) from layer i down. */
static int
resolve(chain_t *c, size_t i, uint64_t off, uint64_t len, struct segvec *sv)
{
  img_t *img = c->layers[i];
  uint64_t vs = img_get_info(img)->virtual_size;
  struct img_map m;
  int r;

  while (len > 0) {
    struct seg s = { .off = off, .layer = (int16_t)i };
    if (off >= vs) {            /* past a shorter layer: zeros */
      s.len = len;
      s.kind = SEG_ZERO;
      s.layer = -1;
      return push(sv, &s);
    }
    r = img_map(img, off, len, &m);
    if (r < 0)
      return r;
    s.len = m.len;
    switch (m.kind) {
    case MAP_UNALLOC:
      if (i + 1 < c->depth) {
        r = resolve(c, i + 1, off, m.len, sv);
        if (r < 0)
          return r;
        break;
      }
      __attribute__((fallthrough));   /* nothing below: zeros */
    case MAP_ZERO:
      s.kind = SEG_ZERO;
      s.layer = -1;
      r = push(sv, &s);
      break;
    case MAP_DATA:
      s.kind = SEG_DATA;
      s.host = m.host_off;
      r = push(sv, &s);
      break;
    case MAP_COMPRESSED:
      s.kind = SEG_COMPRESSED;
      s.host = m.host_off;
      s.csize = (uint32_t)m.csize;
      s.cl_off = m.cl_off;
      r = push(sv, &s);
      break;
    }
    if (r < 0)
      return r;
    off += m.len;
    len -= m.len;
  }
  return 0;
}

static struct region *
find_region(chain_t *c, uint64_t idx)
{
  for (struct region *r = c->buckets[idx % CHAIN_MAP_BUCKETS]; r; r = r->next)
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
evict(chain_t *c, const struct region *keep)
{
  uint64_t *stamps = malloc(c->nregions * sizeof *stamps), median;
  size_t n = 0;

  if (stamps) {
    for (size_t b = 0; b < CHAIN_MAP_BUCKETS; b++)
      for (struct region *r = c->buckets[b]; r; r = r->next)
        stamps[n++] = r->stamp;
    qsort(stamps, n, sizeof *stamps, cmp_u64);
    median = stamps[n / 2];
    free(stamps);
  }
  else
    median = UINT64_MAX;            /* no memory: drop everything */
  for (size_t b = 0; b < CHAIN_MAP_BUCKETS; b++) {
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

static int
build_region(chain_t *c, uint64_t idx, struct region **out)
{
  uint64_t start = idx << CHAIN_REGION_BITS, len = REGION_SIZE;
  struct segvec sv = { 0 };
  struct region *reg;
  int r;

  if (len > c->size - start)
    len = c->size - start;
  r = resolve(c, 0, start, len, &sv);
  if (r < 0) {
    free(sv.v);
    return r;
  }
  reg = malloc(sizeof *reg + sv.n * sizeof sv.v[0]);
  if (!reg) {
    free(sv.v);
    return bfs_error(-ENOMEM, "out of memory for the extent map");
  }
  reg->index = idx;
  reg->n = sv.n;
  memcpy(reg->segs, sv.v, sv.n * sizeof sv.v[0]);
  free(sv.v);
  *out = reg;
  return 0;
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

/* Copy the segment holding off (off < c->size) into *s. */
static int
get_seg(chain_t *c, uint64_t off, struct seg *s)
{
  uint64_t idx = off >> CHAIN_REGION_BITS;
  struct region *reg, *mine = NULL;
  int r;

  pthread_rwlock_rdlock(&c->map_lock);
  reg = find_region(c, idx);
  if (reg) {
    __atomic_store_n(&reg->stamp,
                     __atomic_add_fetch(&c->clock, 1, __ATOMIC_RELAXED),
                     __ATOMIC_RELAXED);
    *s = *find_seg(reg, off);
    pthread_rwlock_unlock(&c->map_lock);
    return 0;
  }
  pthread_rwlock_unlock(&c->map_lock);

  r = build_region(c, idx, &mine);
  if (r < 0)
    return r;
  pthread_rwlock_wrlock(&c->map_lock);
  reg = find_region(c, idx);
  if (reg)
    free(mine);
  else {
    reg = mine;
    reg->stamp = c->clock;
    reg->next = c->buckets[idx % CHAIN_MAP_BUCKETS];
    c->buckets[idx % CHAIN_MAP_BUCKETS] = reg;
    c->map_bytes += region_bytes(reg);
    c->nregions++;
    if (c->map_bytes > c->map_cap)
      evict(c, reg);
  }
  reg->stamp = ++c->clock;
  *s = *find_seg(reg, off);
  pthread_rwlock_unlock(&c->map_lock);
  return 0;
}

/* ---- decompressed-cluster LRU ---- */

static size_t
cc_hash(int layer, uint64_t host)
{
  return (size_t)((host >> 9) * 0x9e3779b97f4a7c15ull + (uint64_t)layer) %
         CHAIN_CC_BUCKETS;
}

static void
lru_unlink(struct centry *e)
{
  e->lru_prev->lru_next = e->lru_next;
  e->lru_next->lru_prev = e->lru_prev;
}

static void
lru_push(chain_t *c, struct centry *e)
{
  e->lru_next = c->lru.lru_next;
  e->lru_prev = &c->lru;
  c->lru.lru_next->lru_prev = e;
  c->lru.lru_next = e;
}

static void
cc_remove(chain_t *c, struct centry *e)
{
  struct centry **pp = &c->cc_buckets[cc_hash(e->layer, e->host)];
  while (*pp != e)
    pp = &(*pp)->next;
  *pp = e->next;
  lru_unlink(e);
  c->cc_bytes -= e->len;
  free(e);
}

/* Copy len bytes at offset within the decompressed cluster to buf. */
static int
read_compressed(chain_t *c, const struct seg *s, void *buf, uint64_t off,
                size_t len)
{
  img_t *img = c->layers[s->layer];
  const size_t cs = (size_t)(1ull << img_get_info(img)->cluster_bits);
  const uint64_t within = off - s->cl_off;
  struct img_map m = { .kind = MAP_COMPRESSED, .host_off = s->host,
                       .csize = s->csize, .cl_off = s->cl_off };
  size_t h = cc_hash(s->layer, s->host);
  struct centry *e;
  int r;

  if (within == 0 && len == cs)      /* whole cluster: no cache */
    return img_decompress(img, &m, buf);

  pthread_mutex_lock(&c->cc_lock);
  for (e = c->cc_buckets[h]; e; e = e->next)
    if (e->layer == s->layer && e->host == s->host) {
      lru_unlink(e);
      lru_push(c, e);
      memcpy(buf, e->data + within, len);
      pthread_mutex_unlock(&c->cc_lock);
      return 0;
    }
  pthread_mutex_unlock(&c->cc_lock);

  e = malloc(sizeof *e + cs);
  if (!e)
    return bfs_error(-ENOMEM, "out of memory for a compressed cluster");
  e->data = (unsigned char *)(e + 1);
  r = img_decompress(img, &m, e->data);
  if (r < 0) {
    free(e);
    return r;
  }
  memcpy(buf, e->data + within, len);
  e->layer = s->layer;
  e->host = s->host;
  e->len = cs;

  pthread_mutex_lock(&c->cc_lock);
  for (struct centry *o = c->cc_buckets[h]; o; o = o->next)
    if (o->layer == e->layer && o->host == e->host) {
      pthread_mutex_unlock(&c->cc_lock);     /* another thread won */
      free(e);
      return 0;
    }
  while (c->cc_bytes + cs > c->cc_cap && c->lru.lru_prev != &c->lru)
    cc_remove(c, c->lru.lru_prev);
  if (cs <= c->cc_cap) {
    e->next = c->cc_buckets[h];
    c->cc_buckets[h] = e;
    lru_push(c, e);
    c->cc_bytes += cs;
  }
  else
    free(e);
  pthread_mutex_unlock(&c->cc_lock);
  return 0;
}

/* Whole compressed clusters at off, stored next to each other in one layer
 * (QEMU writes them back to back): one pread for up to CHAIN_BATCH bytes of
 * payloads, then decompress each straight into buf.  Returns the bytes of
 * buf filled (at least the first cluster), or -errno. */
#define CHAIN_BATCH (1u << 20)
static int64_t
read_compressed_run(chain_t *c, const struct seg *first, unsigned char *buf,
                    uint64_t off, uint64_t end)
{
  img_t *img = c->layers[first->layer];
  const uint64_t cs = 1ull << img_get_info(img)->cluster_bits;
  struct seg run[64];
  size_t n = 0;
  uint64_t lo = first->host, hi = first->host + first->csize, pos = off;
  unsigned char *in;
  int r;

  run[n++] = *first;
  pos += cs;
  while (n < 64 && pos + cs <= end) {
    struct seg s;
    if ((r = get_seg(c, pos, &s)) < 0)
      return r;
    /* QEMU compresses in parallel, so neighbours may be stored slightly
     * out of order: accept any payload keeping the window within a batch */
    uint64_t nlo = s.host < lo ? s.host : lo;
    uint64_t nhi = s.host + s.csize > hi ? s.host + s.csize : hi;
    if (s.kind != SEG_COMPRESSED || s.layer != first->layer ||
        s.cl_off != pos || s.off != pos || s.len < cs ||
        nhi - nlo > CHAIN_BATCH)
      break;
    run[n++] = s;
    lo = nlo;
    hi = nhi;
    pos += cs;
  }
  if (n == 1) {
    struct img_map m = { .kind = MAP_COMPRESSED, .host_off = first->host,
                         .csize = first->csize, .cl_off = first->cl_off };
    r = img_decompress(img, &m, buf);
    return r < 0 ? r : (int64_t)cs;
  }
  in = malloc(hi - lo);
  if (!in)
    return bfs_error(-ENOMEM, "out of memory");
  r = img_read_host(img, in, hi - lo, lo, "compressed clusters");
  for (size_t i = 0; r == 0 && i < n; i++) {
    struct img_map m = { .kind = MAP_COMPRESSED, .host_off = run[i].host,
                         .csize = run[i].csize, .cl_off = run[i].cl_off };
    r = img_decompress_buf(img, &m, in + (run[i].host - lo), buf + i * cs);
  }
  free(in);
  return r < 0 ? r : (int64_t)(n * cs);
}

/* ---- public ---- */

void
chain_prefetch(chain_t *c, uint64_t off, uint64_t len)
{
  uint64_t end = off + len > c->size ? c->size : off + len;
  int layer = -1;
  uint64_t lo = 0, hi = 0;
  struct seg s;

  /* coalesce neighbouring host ranges of one layer into one hint */
  for (; off < end; off = s.off + s.len) {
    uint64_t h0, h1;
    if (get_seg(c, off, &s) < 0)
      break;
    if (s.kind == SEG_ZERO)
      continue;
    h0 = s.kind == SEG_DATA ? s.host + (off - s.off) : s.host;
    h1 = s.kind == SEG_DATA ? s.host + (s.off + s.len - off) : s.host + s.csize;
    if (s.kind == SEG_DATA && s.off + s.len > end)
      h1 -= s.off + s.len - end;
    if (s.layer == layer && h0 >= lo && h0 <= hi + 65536) {
      if (h1 > hi)
        hi = h1;
      continue;
    }
    if (layer >= 0)
      img_io_prefetch(&c->layers[layer]->io, lo, hi - lo);
    layer = s.layer;
    lo = h0;
    hi = h1;
  }
  if (layer >= 0)
    img_io_prefetch(&c->layers[layer]->io, lo, hi - lo);
}

void
chain_map_init(chain_t *c, size_t cache_bytes, size_t map_bytes)
{
  pthread_rwlock_init(&c->map_lock, NULL);
  pthread_mutex_init(&c->cc_lock, NULL);
  c->map_cap = map_bytes ? map_bytes : CHAIN_MAP_CAP;
  c->cc_cap = cache_bytes ? cache_bytes : CHAIN_CACHE_DEFAULT;
  c->lru.lru_next = c->lru.lru_prev = &c->lru;
}

void
chain_map_free(chain_t *c)
{
  for (size_t b = 0; b < CHAIN_MAP_BUCKETS; b++)
    while (c->buckets[b]) {
      struct region *r = c->buckets[b];
      c->buckets[b] = r->next;
      free(r);
    }
  while (c->lru.lru_next != &c->lru)
    cc_remove(c, c->lru.lru_next);
  pthread_rwlock_destroy(&c->map_lock);
  pthread_mutex_destroy(&c->cc_lock);
}

int
chain_pread(chain_t *c, void *buf, size_t len, uint64_t off)
{
  unsigned char *p = buf;
  uint64_t end;
  int r;

  if (ck_add(off, (uint64_t)len, &end) || end > c->size)
    return bfs_error(-EINVAL, "%s: read of %zu bytes at %" PRIu64 " past the "
                     "virtual size %" PRIu64, c->paths[0], len, off, c->size);
  while (off < end) {
    struct seg s;
    uint64_t segend;
    size_t n;

    r = get_seg(c, off, &s);
    if (r < 0)
      return r;
    segend = s.off + s.len;
    n = (size_t)((segend < end ? segend : end) - off);
    switch (s.kind) {
    case SEG_ZERO:
      memset(p, 0, n);
      break;
    case SEG_DATA:
      r = img_read_host(c->layers[s.layer], p, n, s.host + (off - s.off),
                        "data");
      if (r < 0)
        return r;
      break;
    case SEG_COMPRESSED: {
      uint64_t cs = 1ull << img_get_info(c->layers[s.layer])->cluster_bits;
      if (off == s.cl_off && s.off == off && s.len >= cs && end - off >= cs) {
        int64_t got = read_compressed_run(c, &s, p, off, end);
        if (got < 0)
          return (int)got;
        n = (size_t)got;
        break;
      }
      r = read_compressed(c, &s, p, off, n);
      if (r < 0)
        return r;
      break;
    }
    }
    p += n;
    off += n;
  }
  return 0;
}

static bool
same_extent(const struct seg *a, const struct seg *b)
{
  bool ad = a->kind != SEG_ZERO, bd = b->kind != SEG_ZERO;
  return ad == bd && (!ad || a->layer == b->layer);
}

int
chain_extent_at(chain_t *c, uint64_t off, struct chain_extent *out)
{
  struct seg s, t;
  uint64_t start, end;
  int r;

  if (off >= c->size)
    return bfs_error(-EINVAL, "%s: offset %" PRIu64 " past the virtual size",
                     c->paths[0], off);
  r = get_seg(c, off, &s);
  if (r < 0)
    return r;
  start = s.off;
  end = s.off + s.len;
  while (end < c->size && end - off < CHAIN_EXTENT_SCAN) {
    if ((r = get_seg(c, end, &t)) < 0)
      return r;
    if (!same_extent(&s, &t))
      break;
    end = t.off + t.len;
  }
  while (start > 0 && off - start < CHAIN_EXTENT_SCAN) {
    if ((r = get_seg(c, start - 1, &t)) < 0)
      return r;
    if (!same_extent(&s, &t))
      break;
    start = t.off;
  }
  out->off = start;
  out->len = end - start;
  out->kind = s.kind == SEG_ZERO ? CHAIN_EXTENT_ZERO : CHAIN_EXTENT_DATA;
  out->layer = s.kind == SEG_ZERO ? -1 : s.layer;
  return 0;
}

int
chain_piece_at(chain_t *c, uint64_t off, struct chain_extent *out)
{
  struct seg s;
  int r;

  if (off >= c->size)
    return bfs_error(-EINVAL, "%s: offset %" PRIu64 " past the virtual size",
                     c->paths[0], off);
  if ((r = get_seg(c, off, &s)) < 0)
    return r;
  out->off = s.off;
  out->len = s.len;
  out->kind = s.kind == SEG_ZERO ? CHAIN_EXTENT_ZERO : CHAIN_EXTENT_DATA;
  out->layer = s.kind == SEG_ZERO ? -1 : s.layer;
  return 0;
}

int
chain_allocated(chain_t *c, uint64_t *bytes)
{
  uint64_t sum = 0;
  struct seg s;
  int r;

  for (uint64_t off = 0; off < c->size; off = s.off + s.len) {
    if ((r = get_seg(c, off, &s)) < 0)
      return r;
    if (s.kind != SEG_ZERO)
      sum += s.len;
  }
  *bytes = sum;
  return 0;
}
