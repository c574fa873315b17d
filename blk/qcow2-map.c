/* qcow2-map.c — the qcow2 driver's reads: L1/L2 mapping, block status,
 * pread, prefetch.
 *
 * qcow2_map() answers "what is at guest offset off in this file" as a run
 * of one mapping (unallocated, zero, contiguous data, one compressed
 * cluster).  The L1 table loads on first use; L2 tables go through a small
 * per-image cache, all under q->lock, held only while scanning in-memory
 * tables and reading one table.  Entries are checked as they are used:
 * host offsets aligned and inside the file, subcluster bitmaps consistent,
 * no zero flag in a v2 image (a v3-only bit: corruption).  Anything else is
 * -EIO naming the file.
 *
 * Unallocated ranges go to the backing through its ops (past its end:
 * zeros).  Whole compressed clusters next to each other are read with one
 * pread of their payloads and decoded straight into the caller's buffer.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blk/luks.h"
#include "blk/qcow2.h"
#include "common/checked.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/lock.h"

#define QCOW2_BATCH (1u << 20)        /* payload bytes per batched pread */
#define QCOW2_BATCH_CLUSTERS 64

static int
load_l1(struct qcow2 *q)
{
  size_t bytes = (size_t)q->h.l1_size * 8;
  uint64_t *l1 = malloc(bytes ? bytes : 8);
  int r;

  if (!l1)
    return bfs_error(-ENOMEM, "%s: out of memory for the L1 table", q->b.name);
  r = blk_io_read(q->io, l1, bytes, q->h.l1_table_offset, "L1 table");
  if (r < 0) {
    free(l1);
    return r;
  }
  for (uint32_t i = 0; i < q->h.l1_size; i++)
    l1[i] = be64toh(l1[i]);
  q->l1 = l1;
  return 0;
}

static int
get_l2(struct qcow2 *q, uint64_t l2off, const uint64_t **tab)
{
  struct qcow2_l2_slot *victim;
  int r;

  if (!q->l2) {
    unsigned n = (unsigned)(QCOW2_L2_CACHE_BYTES / q->cluster_size);
    n = n < 1 ? 1 : n > QCOW2_L2_CACHE_MAX_SLOTS ? QCOW2_L2_CACHE_MAX_SLOTS : n;
    if (!(q->l2 = calloc(n, sizeof *q->l2)))
      return bfs_error(-ENOMEM, "%s: out of memory", q->b.name);
    q->l2_slots = n;
  }
  victim = &q->l2[0];
  for (unsigned i = 0; i < q->l2_slots; i++) {
    struct qcow2_l2_slot *s = &q->l2[i];
    if (s->tab && s->off == l2off) {
      s->stamp = ++q->l2_clock;
      *tab = s->tab;
      return 0;
    }
    if (!s->tab || (victim->tab && s->stamp < victim->stamp))
      victim = s;
  }
  if (!victim->tab && !(victim->tab = malloc(q->cluster_size)))
    return bfs_error(-ENOMEM, "%s: out of memory for an L2 table", q->b.name);
  victim->off = 0;
  r = blk_io_read(q->io, victim->tab, q->cluster_size, l2off, "L2 table");
  if (r < 0)
    return r;
  victim->off = l2off;
  victim->stamp = ++q->l2_clock;
  *tab = victim->tab;
  return 0;
}

struct unit {
  enum qcow2_map_kind kind;
  uint64_t host;        /* DATA: host offset of the unit; COMPRESSED: entry */
};

static int
bad_host(struct qcow2 *q, uint64_t host, uint64_t guest)
{
  return bfs_error(-EIO, "%s: data cluster offset %#" PRIx64 " (guest %#"
                   PRIx64 ") not aligned to a cluster", q->b.name, host, guest);
}

static int
decode_unit(struct qcow2 *q, const uint64_t *tab, uint64_t l2i, unsigned sc,
            uint64_t guest, struct unit *u)
{
  uint64_t e, host;

  if (q->extended_l2) {
    uint64_t bm;
    e = be64toh(tab[2 * l2i]);
    bm = be64toh(tab[2 * l2i + 1]);
    if (e & QCOW2_OFLAG_COMPRESSED) {
      u->kind = QCOW2_MAP_COMPRESSED;
      u->host = e;
      return 0;
    }
    host = e & QCOW2_OFFSET_MASK;
    bool alloc = bm & (1ull << sc), zero = bm & (1ull << (32 + sc));
    if (alloc && zero)
      return bfs_error(-EIO, "%s: subcluster %u of the cluster at guest "
                       "offset %#" PRIx64 " is both allocated and zero",
                       q->b.name, sc, guest);
    if (zero || !alloc) {
      u->kind = zero ? QCOW2_MAP_ZERO : QCOW2_MAP_UNALLOC;
      return 0;
    }
    if (host == 0)
      return bfs_error(-EIO, "%s: allocated subcluster at guest offset %#"
                       PRIx64 " has no host cluster", q->b.name, guest);
    if (host & (q->cluster_size - 1))
      return bad_host(q, host, guest);
    u->kind = QCOW2_MAP_DATA;
    u->host = host + ((uint64_t)sc << q->sc_bits);
    return 0;
  }
  e = be64toh(tab[l2i]);
  if (e & QCOW2_OFLAG_COMPRESSED) {
    u->kind = QCOW2_MAP_COMPRESSED;
    u->host = e;
    return 0;
  }
  host = e & QCOW2_OFFSET_MASK;
  if (e & QCOW2_OFLAG_ZERO) {
    if (q->h.version < 3)
      return bfs_error(-EIO, "%s: L2 entry for guest offset %#" PRIx64
                       " has the zero flag, which qcow2 v2 does not have: "
                       "image is corrupt", q->b.name, guest);
    u->kind = QCOW2_MAP_ZERO;
    return 0;
  }
  if (host == 0) {
    u->kind = QCOW2_MAP_UNALLOC;
    return 0;
  }
  if (host & (q->cluster_size - 1))
    return bad_host(q, host, guest);
  u->kind = QCOW2_MAP_DATA;
  u->host = host;
  return 0;
}

static int
map_compressed(struct qcow2 *q, uint64_t e, uint64_t off, uint64_t max,
               struct qcow2_map *m)
{
  const uint64_t cs = q->cluster_size, fsize = q->file_size;
  uint64_t coff = e & q->coffset_mask;
  uint64_t nsec = ((e >> q->csize_shift) & q->csize_mask) + 1;
  uint64_t csize = nsec * 512 - (coff & 511), end, fend;

  /* QEMU rounds the payload length up to a sector, so the last payload in
   * a file may end before coff + csize, but not before its sector */
  fend = (fsize + 511) & ~511ull;
  if (coff == 0 || coff >= fsize || ck_add(coff, csize, &end) || end > fend)
    return bfs_error(-EIO, "%s: compressed cluster at guest offset %#" PRIx64
                     " points to %#" PRIx64 " (+%" PRIu64 "), past the end "
                     "of the file (%" PRIu64 " bytes)", q->b.name,
                     off & ~(cs - 1), coff, csize, fsize);
  if (end > fsize)
    csize = fsize - coff;
  m->kind = QCOW2_MAP_COMPRESSED;
  m->host = coff;
  m->csize = csize;
  m->cl_off = off & ~(cs - 1);
  m->len = m->cl_off + cs - off;
  if (m->len > max)
    m->len = max;
  return 0;
}

static int
map_locked(struct qcow2 *q, uint64_t off, uint64_t max, struct qcow2_map *m)
{
  const unsigned cb = q->cluster_bits;
  const uint64_t unit = 1ull << q->sc_bits, l2n = 1ull << q->l2_bits;
  const uint64_t cover = 1ull << (q->l2_bits + cb);
  uint64_t cl = off >> cb, l1i = cl >> q->l2_bits, l2off, limit, pos;
  const uint64_t *tab = NULL;
  struct unit u, first;
  int r;

  if (!q->l1 && (r = load_l1(q)) < 0)
    return r;
  if (l1i >= q->h.l1_size)          /* excluded by the open-time checks */
    return bfs_error(-EIO, "%s: guest offset %#" PRIx64 " beyond the L1 "
                     "table", q->b.name, off);
  l2off = q->l1[l1i] & QCOW2_OFFSET_MASK;
  if (l2off == 0) {                 /* empty L1 entries: one unallocated run */
    uint64_t j = l1i + 1;
    while (j < q->h.l1_size && !(q->l1[j] & QCOW2_OFFSET_MASK))
      j++;
    m->kind = QCOW2_MAP_UNALLOC;
    m->len = j * cover - off < max ? j * cover - off : max;
    return 0;
  }
  limit = (l1i + 1) * cover - off;  /* stay inside this L2 table */
  if (max > limit)
    max = limit;
  if (l2off & (q->cluster_size - 1))
    return bfs_error(-EIO, "%s: L2 table offset %#" PRIx64 " not aligned to "
                     "a cluster", q->b.name, l2off);
  if ((r = get_l2(q, l2off, &tab)) < 0)
    return r;

  pos = off & ~(unit - 1);
  r = decode_unit(q, tab, cl & (l2n - 1), (unsigned)((off >> q->sc_bits) & 31),
                  off, &first);
  if (r < 0)
    return r;
  if (first.kind == QCOW2_MAP_COMPRESSED)
    return map_compressed(q, first.host, off, max, m);
  m->kind = first.kind;
  m->host = first.kind == QCOW2_MAP_DATA ? first.host + (off - pos) : 0;
  for (uint64_t base = pos, p = pos + unit; p - off < max; p += unit) {
    r = decode_unit(q, tab, (p >> cb) & (l2n - 1),
                    (unsigned)((p >> q->sc_bits) & 31), p, &u);
    if (r < 0)
      return r;
    if (u.kind != first.kind ||
        (u.kind == QCOW2_MAP_DATA && u.host != first.host + (p - base)))
      break;
    pos = p;
  }
  m->len = pos + unit - off < max ? pos + unit - off : max;
  if (m->kind == QCOW2_MAP_DATA && !ck_range_ok(m->host, m->len, q->file_size))
    return bfs_error(-EIO, "%s: data for guest offset %#" PRIx64 " at host "
                     "offset %#" PRIx64 " (+%" PRIu64 ") lies past the end of "
                     "the file (%" PRIu64 " bytes): image is truncated or "
                     "corrupt", q->b.name, off, m->host, m->len, q->file_size);
  return 0;
}

static int
refuse_unsupported(struct qcow2 *q)
{
  if (q->luks && !blk_luks_has_key(q->luks))
    return bfs_error(-ENOKEY, "%s: " BLK_LUKS_NEED_KEY, q->b.name);
  if (q->h.crypt_method && !q->luks)
    return bfs_error(-ENOTSUP, "%s: encrypted qcow2 (legacy AES, method %u) "
                     "is not supported", q->b.name, q->h.crypt_method);
  if (q->b.info.external_data)
    return bfs_error(-ENOTSUP, "%s: qcow2 with an external data file is not "
                     "supported", q->b.name);
  return 0;
}

int
qcow2_map(struct qcow2 *q, uint64_t off, uint64_t max, struct qcow2_map *m)
{
  int r;

  memset(m, 0, sizeof *m);
  if ((r = refuse_unsupported(q)) < 0)
    return r;
  if (off >= q->b.size || max == 0)
    return bfs_error(-EINVAL, "%s: mapping offset %#" PRIx64 " outside the "
                     "image", q->b.name, off);
  if (max > q->b.size - off)
    max = q->b.size - off;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&q->lock);
  if ((r = map_locked(q, off, max, m)) == 0 && q->luks &&
      m->kind == QCOW2_MAP_COMPRESSED)    /* QEMU never writes these */
    return bfs_error(-EIO, "%s: compressed cluster at guest offset %#" PRIx64
                     " in a LUKS-encrypted image: image is corrupt",
                     q->b.name, m->cl_off);
  return r;
}

void
qcow2_map_free(struct qcow2 *q)
{
  for (unsigned i = 0; i < q->l2_slots; i++)
    free(q->l2[i].tab);
  free(q->l2);
  free(q->l1);
}

static int
no_backing(struct qcow2 *q, uint64_t off)
{
  return bfs_error(-EIO, "%s: guest offset %#" PRIx64 " is in the backing "
                   "file '%s', which was not opened", q->b.name, off,
                   q->backing_file);
}

int
qcow2_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                   struct bfs_blk_status *st)
{
  struct qcow2 *q = (struct qcow2 *)b;
  struct bfs_blk *below = b->below;
  struct qcow2_map m;
  int r;

  if ((r = qcow2_map(q, off, max, &m)) < 0)
    return r;
  st->len = m.len;
  st->layer = 0;
  switch (m.kind) {
  case QCOW2_MAP_UNALLOC:
    if (!below && q->backing_file)
      return no_backing(q, off);
    if (!below || off >= below->size) {
      st->kind = BFS_BLK_HOLE;
      return 0;
    }
    if ((r = bfs_blk_block_status(below, off, m.len, st)) < 0)
      return r;
    if (st->kind != BFS_BLK_HOLE)
      st->layer++;
    return 0;
  case QCOW2_MAP_ZERO:
    st->kind = BFS_BLK_ZERO;
    return 0;
  case QCOW2_MAP_DATA:
    st->kind = BFS_BLK_DATA;
    st->fd = blk_io_fd_of(q->io);
    st->fd_off = m.host;
    if (q->luks)                      /* ciphertext: not plain bytes */
      qcow2_luks_status(q, off, st);
    return 0;
  case QCOW2_MAP_COMPRESSED:
    st->kind = BFS_BLK_DATA;
    st->unit_off = m.cl_off;
    st->unit_len = q->cluster_size < b->size - m.cl_off ? q->cluster_size
                   : b->size - m.cl_off;
    return 0;
  }
  return bfs_error(-EIO, "%s: bad mapping", q->b.name);
}

/* Decode the compressed cluster of m into out (cluster_size bytes). */
static int
read_one_compressed(struct qcow2 *q, const struct qcow2_map *m, void *out)
{
  CLEANUP_FREE void *in = malloc(m->csize ? m->csize : 1);
  int r;

  if (!in)
    return bfs_error(-ENOMEM, "%s: out of memory", q->b.name);
  r = blk_io_read(q->io, in, m->csize, m->host, "compressed cluster");
  return r < 0 ? r : qcow2_decompress(q, m, in, out);
}

/* Whole compressed clusters from off (== first->cl_off) while they fit in
 * [off, end) and their payloads lie within one batch: one pread, then each
 * decoded into buf.  Returns the bytes filled, or -errno. */
static int64_t
read_compressed_run(struct qcow2 *q, const struct qcow2_map *first,
                    unsigned char *buf, uint64_t off, uint64_t end)
{
  const uint64_t cs = q->cluster_size;
  struct qcow2_map run[QCOW2_BATCH_CLUSTERS];
  uint64_t lo = first->host, hi = first->host + first->csize, pos = off + cs;
  CLEANUP_FREE unsigned char *in = NULL;
  size_t n = 1;
  int r = 0;

  run[0] = *first;
  while (n < QCOW2_BATCH_CLUSTERS && pos < q->b.size && end - pos >= cs) {
    struct qcow2_map m;
    if ((r = qcow2_map(q, pos, cs, &m)) < 0)
      return r;
    /* QEMU compresses in parallel: neighbours may be slightly out of
     * order; accept any payload keeping the window within a batch */
    uint64_t nlo = m.host < lo ? m.host : lo;
    uint64_t nhi = m.host + m.csize > hi ? m.host + m.csize : hi;
    if (m.kind != QCOW2_MAP_COMPRESSED || m.cl_off != pos ||
        nhi - nlo > QCOW2_BATCH)
      break;
    run[n++] = m;
    lo = nlo;
    hi = nhi;
    pos += cs;
  }
  if (n == 1) {
    r = read_one_compressed(q, first, buf);
    return r < 0 ? r : (int64_t)cs;
  }
  if (!(in = malloc(hi - lo)))
    return bfs_error(-ENOMEM, "%s: out of memory", q->b.name);
  r = blk_io_read(q->io, in, hi - lo, lo, "compressed clusters");
  for (size_t i = 0; r == 0 && i < n; i++)
    r = qcow2_decompress(q, &run[i], in + (run[i].host - lo), buf + i * cs);
  return r < 0 ? r : (int64_t)(n * cs);
}

static int
read_compressed(struct qcow2 *q, const struct qcow2_map *m, unsigned char *p,
                uint64_t off, uint64_t end, size_t *done)
{
  const uint64_t cs = q->cluster_size;
  CLEANUP_FREE unsigned char *tmp = NULL;
  int r;

  if (off == m->cl_off && end - off >= cs) {
    int64_t got = read_compressed_run(q, m, p, off, end);
    if (got < 0)
      return (int)got;
    *done = (size_t)got;
    return 0;
  }
  if (!(tmp = malloc(cs)))
    return bfs_error(-ENOMEM, "%s: out of memory", q->b.name);
  if ((r = read_one_compressed(q, m, tmp)) < 0)
    return r;
  memcpy(p, tmp + (off - m->cl_off), *done);
  return 0;
}

int
qcow2_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  struct qcow2 *q = (struct qcow2 *)b;
  unsigned char *p = buf;
  const uint64_t end = off + len;
  int r;

  while (off < end) {
    struct qcow2_map m;
    size_t n;

    if ((r = qcow2_map(q, off, end - off, &m)) < 0)
      return r;
    n = (size_t)m.len;
    switch (m.kind) {
    case QCOW2_MAP_UNALLOC: {
      struct bfs_blk *below = b->below;
      size_t k = 0;
      if (!below && q->backing_file)
        return no_backing(q, off);
      if (below && off < below->size)
        k = below->size - off < n ? (size_t)(below->size - off) : n;
      if (k && (r = bfs_blk_pread(below, p, k, off)) < 0)
        return r;
      memset(p + k, 0, n - k);      /* past a shorter backing: zeros */
      break;
    }
    case QCOW2_MAP_ZERO:
      memset(p, 0, n);
      break;
    case QCOW2_MAP_DATA:
      r = q->luks ? qcow2_luks_read(q, p, n, off, m.host)
          : blk_io_read(q->io, p, n, m.host, "data");
      if (r < 0)
        return r;
      break;
    case QCOW2_MAP_COMPRESSED:
      if ((r = read_compressed(q, &m, p, off, end, &n)) < 0)
        return r;
      break;
    }
    p += n;
    off += n;
  }
  return 0;
}

void
qcow2_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len)
{
  struct qcow2 *q = (struct qcow2 *)b;
  const uint64_t end = off + len;
  uint64_t lo = 0, hi = 0;

  /* coalesce neighbouring host ranges into one hint */
  while (off < end) {
    struct qcow2_map m;
    uint64_t h0, h1;
    if (qcow2_map(q, off, end - off, &m) < 0)
      break;
    if (m.kind == QCOW2_MAP_UNALLOC && b->below)
      bfs_blk_prefetch(b->below, off, m.len);
    if (m.kind == QCOW2_MAP_DATA || m.kind == QCOW2_MAP_COMPRESSED) {
      h0 = m.host;
      h1 = m.host + (m.kind == QCOW2_MAP_DATA ? m.len : m.csize);
      if (hi > lo && h0 >= lo && h0 <= hi + 65536)
        hi = h1 > hi ? h1 : hi;
      else {
        if (hi > lo)
          blk_io_prefetch(q->io, lo, hi - lo);
        lo = h0;
        hi = h1;
      }
    }
    off += m.len;
  }
  if (hi > lo)
    blk_io_prefetch(q->io, lo, hi - lo);
}

/* The structure check of verify: map the whole image (every L1 and L2
 * entry checked as the reads would check it: tables and data inside the
 * file) and decode every compressed cluster.  Encrypted and external-data
 * images are refused like their reads. */
int
blk_qcow2_check(struct bfs_blk *b)
{
  struct qcow2 *q = (struct qcow2 *)b;
  CLEANUP_FREE void *buf = NULL;
  struct qcow2_map m;
  int r;

  if (!b->info.format || strcmp(b->info.format, "qcow2") || b->info.is_filter)
    return 0;                        /* raw: nothing but bytes */
  if (!(buf = malloc(q->cluster_size)))
    return bfs_error(-ENOMEM, "%s: out of memory", q->b.name);
  for (uint64_t off = 0; off < b->size; off += m.len) {
    if ((r = qcow2_map(q, off, b->size - off, &m)) < 0)
      return r;
    if (m.len == 0)
      return bfs_error(-EIO, "%s: empty mapping at %#" PRIx64, q->b.name, off);
    if (m.kind == QCOW2_MAP_COMPRESSED &&
        (r = read_one_compressed(q, &m, buf)) < 0)
      return r;
  }
  return 0;
}
