/* vnbd-index.c — a stream's index as one blob, and back (vnbd.h).
 *
 * So a catalog can keep the index and skip the parse: the blob is
 *   "BFSVNBD1", u64 file_size, virtual_size, data_size, n_ext, n_blk,
 *   u32 stream_version, flags (1 incremental, 2 compressed),
 *   six strings (u32 length, 0xffffffff for NULL, bytes): checkpoint,
 *   parent, disk_name, disk_format, date,
 *   then the extent and block records as in vnbd.h,
 * all in host byte order (a cache is per machine).  Decoding trusts
 * nothing: the file size must be the stream's, and every extent and block
 * is checked as the parser checks it (order, bounds, kinds, lz4 blocks
 * that tile their extent), so a stale or damaged blob is -EIO and the
 * caller parses the stream again.
 */
#include "blk/vnbd.h"

#include "common/checked.h"
#include "common/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "BFSVNBD1"
#define NSTR 5

struct rd {
  const unsigned char *p;
  size_t left;
};

static bool
take(struct rd *r, void *dst, size_t n)
{
  if (r->left < n)
    return false;
  if (n)
    memcpy(dst, r->p, n);
  r->p += n;
  r->left -= n;
  return true;
}

static char **
str_slot(struct vnbd_meta *m, int i)
{
  char **s[NSTR] = { &m->checkpoint, &m->parent, &m->disk_name,
                     &m->disk_format, &m->date };
  return s[i];
}

int
vnbd_index_encode(const struct vnbd_index *x, void **out, size_t *outlen)
{
  struct vnbd_meta *m = (struct vnbd_meta *)&x->meta;
  size_t len = 8 + 5 * 8 + 2 * 4 + x->n_ext * sizeof *x->ext +
               x->n_blk * sizeof *x->blk;
  unsigned char *b, *p;

  for (int i = 0; i < NSTR; i++)
    len += 4 + (*str_slot(m, i) ? strlen(*str_slot(m, i)) : 0);
  if (!(b = malloc(len)))
    return bfs_error(-ENOMEM, "out of memory");
  p = b;
#define PUT(v) do { memcpy(p, &(v), sizeof(v)); p += sizeof(v); } while (0)
  memcpy(p, MAGIC, 8);
  p += 8;
  uint64_t n_ext = x->n_ext, n_blk = x->n_blk;
  uint32_t ver = (uint32_t)m->stream_version,
           flags = (m->incremental ? 1u : 0) | (m->compressed ? 2u : 0);
  PUT(x->file_size);
  PUT(m->virtual_size);
  PUT(m->data_size);
  PUT(n_ext);
  PUT(n_blk);
  PUT(ver);
  PUT(flags);
  for (int i = 0; i < NSTR; i++) {
    const char *s = *str_slot(m, i);
    uint32_t l = s ? (uint32_t)strlen(s) : UINT32_MAX;
    PUT(l);
    if (s) {
      memcpy(p, s, l);
      p += l;
    }
  }
#undef PUT
  if (x->n_ext)
    memcpy(p, x->ext, x->n_ext * sizeof *x->ext);
  p += x->n_ext * sizeof *x->ext;
  if (x->n_blk)
    memcpy(p, x->blk, x->n_blk * sizeof *x->blk);
  *out = b;
  *outlen = len;
  return 0;
}

static int
check(const struct vnbd_index *x, const char *name)
{
  uint64_t prev = 0, data = 0, nb = 0;

  for (size_t i = 0; i < x->n_ext; i++) {
    const struct vnbd_ext *e = &x->ext[i];
    if (e->vlen == 0 || e->voff < prev ||
        !ck_range_ok(e->voff, e->vlen, x->meta.virtual_size) ||
        (e->kind != VNBD_DATA && e->kind != VNBD_ZERO) ||
        (e->kind == VNBD_ZERO && e->nblk) ||
        (e->nblk && !x->meta.compressed) ||
        (e->kind == VNBD_DATA && x->meta.compressed && !e->nblk) ||
        (e->kind == VNBD_DATA && !e->nblk &&
         !ck_range_ok(e->foff, e->vlen, x->file_size)))
      return bfs_error(-EIO, "%s: cached index: extent %zu is not valid",
                       name, i);
    if (e->nblk) {
      uint64_t v = e->voff;
      if (e->blk != nb || !ck_range_ok(e->blk, e->nblk, x->n_blk))
        return bfs_error(-EIO, "%s: cached index: extent %zu has bad "
                         "blocks", name, i);
      for (uint64_t k = e->blk; k < e->blk + e->nblk; k++) {
        const struct vnbd_block *b = &x->blk[k];
        if (b->voff != v || b->dlen == 0 || b->dlen > VNBD_BLOCK_MAX ||
            b->dlen > e->voff + e->vlen - v || b->clen == 0 ||
            !ck_range_ok(b->foff, b->clen, x->file_size))
          return bfs_error(-EIO, "%s: cached index: block %" PRIu64
                           " is not valid", name, k);
        v += b->dlen;
      }
      if (v != e->voff + e->vlen)
        return bfs_error(-EIO, "%s: cached index: the blocks of extent %zu "
                         "do not cover it", name, i);
      nb += e->nblk;
    }
    if (e->kind == VNBD_DATA)
      data += e->vlen;
    prev = e->voff + e->vlen;
  }
  if (nb != x->n_blk || data != x->meta.data_size)
    return bfs_error(-EIO, "%s: cached index does not add up", name);
  return 0;
}

int
vnbd_index_decode(const void *blob, size_t len, uint64_t file_size,
                  const char *name, struct vnbd_index *x)
{
  struct rd r = { blob, len };
  char magic[8];
  uint64_t n_ext, n_blk;
  uint32_t ver, flags;
  int ret = -EIO;

  memset(x, 0, sizeof *x);
  if (!take(&r, magic, 8) || memcmp(magic, MAGIC, 8) ||
      !take(&r, &x->file_size, 8) || !take(&r, &x->meta.virtual_size, 8) ||
      !take(&r, &x->meta.data_size, 8) || !take(&r, &n_ext, 8) ||
      !take(&r, &n_blk, 8) || !take(&r, &ver, 4) || !take(&r, &flags, 4))
    goto bad;
  if (x->file_size != file_size) {
    ret = bfs_error(-ESTALE, "%s: cached index is for a file of %" PRIu64
                    " bytes, the stream has %" PRIu64, name, x->file_size,
                    file_size);
    goto out;
  }
  if ((ver != 1 && ver != 2) || flags > 3 || x->meta.virtual_size == 0)
    goto bad;
  x->meta.stream_version = (int)ver;
  x->meta.incremental = flags & 1;
  x->meta.compressed = flags & 2;
  for (int i = 0; i < NSTR; i++) {
    uint32_t l;
    if (!take(&r, &l, 4))
      goto bad;
    if (l == UINT32_MAX)
      continue;
    if (l > r.left || memchr(r.p, 0, l))
      goto bad;
    char *s = strndup((const char *)r.p, l);
    if (!s) {
      ret = bfs_error(-ENOMEM, "%s: out of memory", name);
      goto out;
    }
    *str_slot(&x->meta, i) = s;
    r.p += l;
    r.left -= l;
  }
  if (!x->meta.checkpoint ||
      n_ext > r.left / sizeof *x->ext ||
      n_blk > (r.left - n_ext * sizeof *x->ext) / sizeof *x->blk ||
      r.left != n_ext * sizeof *x->ext + n_blk * sizeof *x->blk)
    goto bad;
  x->n_ext = (size_t)n_ext;
  x->n_blk = (size_t)n_blk;
  if ((n_ext && !(x->ext = malloc(n_ext * sizeof *x->ext))) ||
      (n_blk && !(x->blk = malloc(n_blk * sizeof *x->blk)))) {
    ret = bfs_error(-ENOMEM, "%s: out of memory", name);
    goto out;
  }
  take(&r, x->ext, n_ext * sizeof *x->ext);
  take(&r, x->blk, n_blk * sizeof *x->blk);
  if ((ret = check(x, name)) == 0)
    return 0;
  goto out;
bad:
  ret = bfs_error(-EIO, "%s: cached index is damaged or of another version",
                  name);
out:
  vnbd_index_free(x);
  return ret;
}
