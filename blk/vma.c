/* vma.c — the VMA header and the one-pass extent index (see vma.h).
 *
 * One sequential walk: the header (checked whole: MD5, sizes, every blob
 * offset inside the blob buffer), then extent after extent, each header
 * checked (magic, uuid, MD5, block count = the sum of its masks) before
 * its clusters go into the map.  A cluster written twice is corruption.
 * The walk stops at the end of the file; a partial extent there marks the
 * archive truncated and where it stops.  Save/load is a flat little-endian
 * byte string ("BFSVMAX1") holding the same arrays.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "blk/vma.h"
#include "common/checked.h"
#include "common/error.h"

#define HDR_FIXED 12288u
#define EXT_HDR 512u
#define EXT_SLOTS 59u

static uint64_t
be(const unsigned char *p, int n)
{
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

static int
md5_ok(const unsigned char *buf, size_t len, size_t md5_off)
{
  unsigned char want[16], got[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  unsigned char *copy = malloc(len);
  int ok;

  if (!copy)
    return -ENOMEM;
  memcpy(copy, buf, len);
  memcpy(want, buf + md5_off, 16);
  memset(copy + md5_off, 0, 16);
  ok = EVP_Digest(copy, len, got, &n, EVP_md5(), NULL) && n == 16 &&
       !memcmp(got, want, 16);
  free(copy);
  return ok;
}

/* blob at offset off of the blob buffer: 2-byte LE size, then data */
static int
blob_at(const unsigned char *bb, size_t bbsize, uint32_t off,
        const unsigned char **data, size_t *len)
{
  size_t n;

  if (off == 0 || (uint64_t)off + 2 > bbsize)
    return -1;
  n = bb[off] | (size_t)bb[off + 1] << 8;
  if ((uint64_t)off + 2 + n > bbsize)
    return -1;
  *data = bb + off + 2;
  *len = n;
  return 0;
}

static char *
blob_str(const unsigned char *p, size_t n)
{
  size_t l = strnlen((const char *)p, n);
  char *s = malloc(l + 1);
  if (s) {
    memcpy(s, p, l);
    s[l] = 0;
  }
  return s;
}

void
vma_index_free(struct vma_index *x)
{
  if (!x)
    return;
  for (size_t i = 0; i < x->ndev; i++) {
    free(x->devs[i].name);
    free(x->devs[i].map);
  }
  for (size_t i = 0; i < x->nconfig; i++) {
    free(x->configs[i].name);
    free(x->configs[i].data);
  }
  free(x);
}

/* vzdump writes every cluster of a device, zero ones as a blockinfo with
 * mask 0: 59 per 512-byte extent header at least.  So an archive of size
 * bytes holds at most this many clusters of one device, and a header that
 * claims more is corrupt: the bound keeps the map proportional to the
 * file, not to a number a hostile header names. */
static uint64_t
max_clusters(uint64_t size, uint64_t hs)
{
  uint64_t n = size > hs ? (size - hs) / 512 + 1 : 1;
  return n * 59 < UINT32_MAX ? n * 59 : UINT32_MAX;
}

static int
parse_header(struct blk_io *io, struct vma_index *x, uint32_t *hsize_out)
{
  const char *nm = blk_io_name(io);
  unsigned char fixed[60], *h;
  uint32_t bbo, bbs, hs;
  int r;

  if ((r = blk_io_read(io, fixed, sizeof fixed, 0, "VMA header")) < 0)
    return r;
  if (memcmp(fixed, "VMA\0", 4))
    return bfs_error(-EINVAL, "%s: not a VMA archive (bad magic)", nm);
  if (be(fixed + 4, 4) != 1)
    return bfs_error(-ENOTSUP, "%s: VMA version %" PRIu64 " is not "
                     "supported (only 1)", nm, be(fixed + 4, 4));
  bbo = (uint32_t)be(fixed + 48, 4);
  bbs = (uint32_t)be(fixed + 52, 4);
  hs = (uint32_t)be(fixed + 56, 4);
  if (hs < HDR_FIXED || hs > VMA_MAX_HEADER || hs % 512 || bbo % 512 ||
      bbs % 512 || bbo < HDR_FIXED || (uint64_t)bbo + bbs > hs)
    return bfs_error(-EIO, "%s: VMA header sizes are corrupt (header %"
                     PRIu32 ", blob buffer %" PRIu32 "+%" PRIu32 ")", nm, hs,
                     bbo, bbs);
  if (!(h = malloc(hs)))
    return bfs_error(-ENOMEM, "%s: out of memory", nm);
  if ((r = blk_io_read(io, h, hs, 0, "VMA header")) < 0)
    goto out;
  if ((r = md5_ok(h, hs, 32)) <= 0) {
    r = r < 0 ? bfs_error(r, "%s: out of memory", nm)
              : bfs_error(-EIO, "%s: VMA header checksum (MD5) mismatch", nm);
    goto out;
  }
  memcpy(x->uuid, h + 8, 16);
  x->ctime = (int64_t)be(h + 24, 8);
  const unsigned char *bb = h + bbo;
  for (unsigned i = 0; i < VMA_MAX_CONFIGS; i++) {
    uint32_t no = (uint32_t)be(h + 2044 + 4 * i, 4);
    uint32_t dof = (uint32_t)be(h + 3068 + 4 * i, 4);
    const unsigned char *np, *dp;
    size_t nl, dl;
    struct vma_config *c;

    if (!no && !dof)
      continue;
    if (blob_at(bb, bbs, no, &np, &nl) < 0 ||
        blob_at(bb, bbs, dof, &dp, &dl) < 0) {
      r = bfs_error(-EIO, "%s: VMA config %u points outside the blob "
                    "buffer", nm, i);
      goto out;
    }
    c = &x->configs[x->nconfig++];
    c->name = blob_str(np, nl);
    c->data = malloc(dl ? dl : 1);
    if (!c->name || !c->data) {
      r = bfs_error(-ENOMEM, "%s: out of memory", nm);
      goto out;
    }
    memcpy(c->data, dp, dl);
    c->len = dl;
  }
  for (unsigned id = 1; id < VMA_MAX_DEVS; id++) {
    const unsigned char *di = h + 4096 + 32 * id, *np;
    uint32_t no = (uint32_t)be(di, 4);
    uint64_t size = be(di + 8, 8), nc;
    size_t nl;
    struct vma_dev *d;

    if (!no)
      continue;
    if (blob_at(bb, bbs, no, &np, &nl) < 0) {
      r = bfs_error(-EIO, "%s: VMA device %u: name outside the blob buffer",
                    nm, id);
      goto out;
    }
    nc = size / VMA_CLUSTER_SIZE + (size % VMA_CLUSTER_SIZE != 0);
    if (size == 0 || nc > max_clusters(blk_io_size(io), hs)) {
      r = bfs_error(-EIO, "%s: VMA device %u: size %" PRIu64 " is not "
                    "possible in an archive of %" PRIu64 " bytes (corrupt "
                    "header)", nm, id, size, blk_io_size(io));
      goto out;
    }
    d = &x->devs[x->ndev++];
    d->id = id;
    d->size = size;
    d->nclusters = (uint32_t)nc;
    d->name = blob_str(np, nl);
    d->map = calloc(nc, sizeof *d->map);
    if (!d->name || !d->map) {
      r = bfs_error(-ENOMEM, "%s: out of memory for device %u (%" PRIu64
                    " clusters)", nm, id, nc);
      goto out;
    }
  }
  if (x->ndev == 0) {
    r = bfs_error(-EIO, "%s: VMA archive lists no devices", nm);
    goto out;
  }
  *hsize_out = hs;
  r = 0;
out:
  free(h);
  return r;
}

static struct vma_dev *
dev_by_id(struct vma_index *x, unsigned id)
{
  for (size_t i = 0; i < x->ndev; i++)
    if (x->devs[i].id == id)
      return &x->devs[i];
  return NULL;
}

static int
parse_extent(struct vma_index *x, const char *nm, const unsigned char *e,
             uint64_t off, uint64_t *ext_len)
{
  unsigned blocks = (unsigned)be(e + 6, 2), sum = 0;
  uint64_t data = off + EXT_HDR;
  int r;

  if (memcmp(e, "VMAE", 4))
    return bfs_error(-EIO, "%s: no VMA extent at offset %" PRIu64 " (bad "
                     "magic)", nm, off);
  if (memcmp(e + 8, x->uuid, 16))
    return bfs_error(-EIO, "%s: VMA extent at offset %" PRIu64 " belongs to "
                     "another archive (uuid)", nm, off);
  if ((r = md5_ok(e, EXT_HDR, 24)) <= 0)
    return r < 0 ? bfs_error(r, "%s: out of memory", nm)
                 : bfs_error(-EIO, "%s: VMA extent at offset %" PRIu64
                             ": header checksum (MD5) mismatch", nm, off);
  for (unsigned i = 0; i < EXT_SLOTS; i++)
    sum += (unsigned)__builtin_popcount((unsigned)be(e + 40 + 8 * i, 2));
  if (sum != blocks)
    return bfs_error(-EIO, "%s: VMA extent at offset %" PRIu64 ": block "
                     "count %u, masks say %u", nm, off, blocks, sum);
  for (unsigned i = 0; i < EXT_SLOTS; i++) {
    const unsigned char *bi = e + 40 + 8 * i;
    unsigned mask = (unsigned)be(bi, 2), id = bi[3];
    uint32_t cl = (uint32_t)be(bi + 4, 4);
    struct vma_dev *d;

    if (id == 0) {
      if (mask)
        return bfs_error(-EIO, "%s: VMA extent at offset %" PRIu64
                         ": data for device 0", nm, off);
      continue;
    }
    if (!(d = dev_by_id(x, id)) || cl >= d->nclusters)
      return bfs_error(-EIO, "%s: VMA extent at offset %" PRIu64 ": cluster "
                       "%" PRIu32 " of device %u is not in the header", nm,
                       off, cl, id);
    if (d->map[cl])
      return bfs_error(-EIO, "%s: VMA extent at offset %" PRIu64 ": cluster "
                       "%" PRIu32 " of device '%s' written twice", nm, off,
                       cl, d->name);
    d->map[cl] = (data / 512) << 16 | mask;
    d->written++;
    data += VMA_BLOCK_SIZE * (uint64_t)__builtin_popcount(mask);
  }
  *ext_len = EXT_HDR + (uint64_t)blocks * VMA_BLOCK_SIZE;
  return 0;
}

int
vma_index_build(struct blk_io *io, struct vma_index **out)
{
  const char *nm = blk_io_name(io);
  uint64_t size = blk_io_size(io), off;
  struct vma_index *x;
  uint32_t hs = 0;
  unsigned char e[EXT_HDR];
  int r;

  *out = NULL;
  if (!(x = calloc(1, sizeof *x)))
    return bfs_error(-ENOMEM, "%s: out of memory", nm);
  if ((r = parse_header(io, x, &hs)) < 0)
    goto fail;
  x->archive_size = size;
  for (off = hs; off < size;) {
    uint64_t len = 0;

    if (size - off < EXT_HDR) {
      x->truncated = true;
      break;
    }
    if ((r = blk_io_read(io, e, EXT_HDR, off, "VMA extent header")) < 0 ||
        (r = parse_extent(x, nm, e, off, &len)) < 0)
      goto fail;
    if (len > size - off) {
      /* the cut extent's clusters are not there: forget them */
      for (size_t i = 0; i < x->ndev; i++)
        for (uint32_t c = 0; c < x->devs[i].nclusters; c++)
          if (x->devs[i].map[c] >> 16 >= (off + EXT_HDR) / 512) {
            x->devs[i].map[c] = 0;
            x->devs[i].written--;
          }
      x->truncated = true;
      break;
    }
    off += len;
  }
  x->data_end = off;
  *out = x;
  return 0;
fail:
  vma_index_free(x);
  return r;
}

const struct vma_dev *
vma_index_dev(const struct vma_index *x, const char *name)
{
  for (size_t i = 0; i < x->ndev; i++)
    if (!strcmp(x->devs[i].name, name))
      return &x->devs[i];
  return NULL;
}

int
vma_dev_check(const struct vma_index *x, const struct vma_dev *d,
              const char *archive)
{
  if (x->truncated && !d->map[d->nclusters - 1])
    return bfs_error(-EIO, "%s: archive is truncated: it stops at offset %"
                     PRIu64 " (the last whole extent ends at %" PRIu64 "); "
                     "device '%s' has %" PRIu32 " of its %" PRIu32
                     " clusters", archive, x->archive_size, x->data_end,
                     d->name, d->written, d->nclusters);
  return 0;
}

/* ---- save / load ---- */

struct wbuf {
  unsigned char *p;
  size_t len, cap;
  bool oom;
};

static void
put(struct wbuf *w, const void *src, size_t n)
{
  if (w->oom)
    return;
  if (w->len + n > w->cap) {
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + n)
      cap *= 2;
    unsigned char *p = realloc(w->p, cap);
    if (!p) {
      w->oom = true;
      return;
    }
    w->p = p;
    w->cap = cap;
  }
  memcpy(w->p + w->len, src, n);
  w->len += n;
}

static void
put64(struct wbuf *w, uint64_t v)
{
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(v >> (8 * i));
  put(w, b, 8);
}

int
vma_index_save(const struct vma_index *x, unsigned char **buf, size_t *len)
{
  struct wbuf w = { 0 };

  put(&w, "BFSVMAX1", 8);
  put(&w, x->uuid, 16);
  put64(&w, (uint64_t)x->ctime);
  put64(&w, x->archive_size);
  put64(&w, x->data_end);
  put64(&w, x->truncated);
  put64(&w, x->nconfig);
  for (size_t i = 0; i < x->nconfig; i++) {
    put64(&w, strlen(x->configs[i].name));
    put(&w, x->configs[i].name, strlen(x->configs[i].name));
    put64(&w, x->configs[i].len);
    put(&w, x->configs[i].data, x->configs[i].len);
  }
  put64(&w, x->ndev);
  for (size_t i = 0; i < x->ndev; i++) {
    const struct vma_dev *d = &x->devs[i];
    put64(&w, d->id);
    put64(&w, strlen(d->name));
    put(&w, d->name, strlen(d->name));
    put64(&w, d->size);
    for (uint32_t c = 0; c < d->nclusters; c++)
      put64(&w, d->map[c]);
  }
  if (w.oom) {
    free(w.p);
    return bfs_error(-ENOMEM, "VMA index: out of memory");
  }
  *buf = w.p;
  *len = w.len;
  return 0;
}

struct rbuf {
  const unsigned char *p;
  size_t len, pos;
  bool bad;
};

static uint64_t
get64(struct rbuf *r)
{
  uint64_t v = 0;
  if (r->bad || r->len - r->pos < 8) {
    r->bad = true;
    return 0;
  }
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)r->p[r->pos + i] << (8 * i);
  r->pos += 8;
  return v;
}

static unsigned char *
getbytes(struct rbuf *r, uint64_t n, bool str)
{
  unsigned char *s;
  if (r->bad || n > r->len - r->pos || n > VMA_MAX_HEADER ||
      !(s = malloc(n + 1))) {
    r->bad = true;
    return NULL;
  }
  memcpy(s, r->p + r->pos, n);
  s[n] = 0;
  if (str && strlen((char *)s) != n) {
    free(s);
    r->bad = true;
    return NULL;
  }
  r->pos += n;
  return s;
}

int
vma_index_load(const void *buf, size_t len, uint64_t archive_size,
               const char *name, struct vma_index **out)
{
  struct rbuf r = { buf, len, 0, false };
  struct vma_index *x;
  uint64_t n;

  *out = NULL;
  if (len < 24 || memcmp(buf, "BFSVMAX1", 8))
    return bfs_error(-EINVAL, "%s: not a saved VMA index", name);
  if (!(x = calloc(1, sizeof *x)))
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  r.pos = 8;
  memcpy(x->uuid, r.p + 8, 16);
  r.pos += 16;
  x->ctime = (int64_t)get64(&r);
  x->archive_size = get64(&r);
  x->data_end = get64(&r);
  x->truncated = get64(&r) != 0;
  if (!r.bad && x->archive_size != archive_size) {
    uint64_t was = x->archive_size;
    vma_index_free(x);
    return bfs_error(-ESTALE, "%s: saved VMA index is for an archive of %"
                     PRIu64 " bytes, the file has %" PRIu64, name, was,
                     archive_size);
  }
  if ((n = get64(&r)) > VMA_MAX_CONFIGS)
    r.bad = true;
  for (uint64_t i = 0; !r.bad && i < n; i++) {
    struct vma_config *c = &x->configs[x->nconfig++];
    c->name = (char *)getbytes(&r, get64(&r), true);
    c->len = (size_t)get64(&r);
    c->data = getbytes(&r, c->len, false);
  }
  if ((n = get64(&r)) > VMA_MAX_DEVS - 1)
    r.bad = true;
  for (uint64_t i = 0; !r.bad && i < n; i++) {
    struct vma_dev *d = &x->devs[x->ndev++];
    uint64_t nc, id = get64(&r);
    d->id = (unsigned)id;
    d->name = (char *)getbytes(&r, get64(&r), true);
    d->size = get64(&r);
    nc = d->size / VMA_CLUSTER_SIZE + (d->size % VMA_CLUSTER_SIZE != 0);
    if (r.bad || id == 0 || id >= VMA_MAX_DEVS || d->size == 0 ||
        nc > (r.len - r.pos) / 8 || nc > max_clusters(archive_size, 0)) {
      r.bad = true;
      break;
    }
    d->nclusters = (uint32_t)nc;
    if (!(d->map = malloc(nc * 8))) {
      r.bad = true;
      break;
    }
    for (uint64_t c = 0; c < nc; c++) {
      uint64_t e = get64(&r), end;
      unsigned mask = e & 0xffff;
      d->map[c] = e;
      if (!e)
        continue;
      d->written++;
      if (ck_range_ok((e >> 16) * 512, (uint64_t)__builtin_popcount(mask) *
                      VMA_BLOCK_SIZE, x->data_end) &&
          !ck_add((e >> 16) * 512, 0, &end) && (e >> 16) * 512 >= HDR_FIXED)
        continue;
      r.bad = true;
      break;
    }
  }
  if (r.bad || r.pos != r.len || x->data_end > archive_size) {
    vma_index_free(x);
    return bfs_error(-EIO, "%s: saved VMA index is corrupt", name);
  }
  *out = x;
  return 0;
}
