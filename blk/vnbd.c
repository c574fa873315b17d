/* vnbd.c — the block-layer driver over one virtnbdbackup stream (vnbd.h).
 *
 * Open parses the stream once (vnbd-stream.c) into a sorted extent index;
 * after that the index is immutable, so reads need no lock.  A read walks
 * the extents it covers: plain data is pread from the stream, a zero frame
 * is zeros, a compressed extent decodes only the lz4 frames the read
 * touches (into the caller's buffer when a frame is wholly inside it), and
 * a decode that fails its checksum or yields any other size than the
 * frame header promised is -EIO naming the file and the offset.  What no
 * frame covers is a HOLE in a full, and in an incremental the parent's:
 * the backing blk (the previous checkpoint) is read through its ops, with
 * its layer numbers shifted by one, as qcow2 does with its backing file.
 */
#include "blk/vnbd.h"

#include "common/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lz4frame.h>

struct vnbd {
  struct bfs_blk b;
  struct blk_io *io;
  struct vnbd_index x;
};

static const struct bfs_blk_ops vnbd_ops;

/* The first extent ending after off, or n_ext. */
static size_t
find_ext(const struct vnbd_index *x, uint64_t off)
{
  size_t lo = 0, hi = x->n_ext;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (x->ext[mid].voff + x->ext[mid].vlen <= off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* The block of extent e holding off (off inside e). */
static size_t
find_blk(const struct vnbd_index *x, const struct vnbd_ext *e, uint64_t off)
{
  size_t lo = e->blk, hi = e->blk + e->nblk;
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (x->blk[mid].voff <= off)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

static int
decode(struct vnbd *v, const struct vnbd_block *k, unsigned char *dst)
{
  unsigned char *src = malloc(k->clen ? k->clen : 1);
  LZ4F_dctx *d = NULL;
  size_t in = 0, out = 0, e = 1;
  int r;

  if (!src || LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION))) {
    free(src);
    return bfs_error(-ENOMEM, "%s: out of memory", v->b.name);
  }
  if ((r = blk_io_read(v->io, src, k->clen, k->foff, "lz4 frame")) < 0)
    goto out;
  while (in < k->clen && e != 0) {
    size_t sn = k->clen - in, dn = k->dlen - out;
    e = LZ4F_decompress(d, dst + out, &dn, src + in, &sn, NULL);
    if (LZ4F_isError(e)) {
      r = bfs_error(-EIO, "%s: lz4 frame at offset %" PRIu64 " (guest %"
                    PRIu64 ") does not decode: %s", v->b.name, k->foff,
                    k->voff, LZ4F_getErrorName(e));
      goto out;
    }
    in += sn;
    out += dn;
    if (sn == 0 && dn == 0)
      break;                      /* no progress: output full or stuck */
  }
  if (e != 0 || in != k->clen || out != k->dlen)
    r = bfs_error(-EIO, "%s: lz4 frame at offset %" PRIu64 " (guest %" PRIu64
                  ") decodes to %s%zu bytes from %zu of %" PRIu64 " stored, "
                  "%" PRIu64 " expected", v->b.name, k->foff, k->voff,
                  e != 0 ? "more than " : "", out, in, k->clen, k->dlen);
out:
  LZ4F_freeDecompressionContext(d);
  free(src);
  return r;
}

/* [off, off+n) of compressed extent e into p */
static int
read_compressed(struct vnbd *v, const struct vnbd_ext *e, unsigned char *p,
                uint64_t off, uint64_t n)
{
  const uint64_t end = off + n;
  unsigned char *tmp = NULL;
  int r = 0;

  for (size_t i = find_blk(&v->x, e, off); off < end; i++) {
    const struct vnbd_block *k = &v->x.blk[i];
    uint64_t skip = off - k->voff;
    uint64_t take = k->dlen - skip < end - off ? k->dlen - skip : end - off;

    if (skip == 0 && take == k->dlen) {
      r = decode(v, k, p);
    } else {
      if (!(tmp = malloc(k->dlen)))
        return bfs_error(-ENOMEM, "%s: out of memory", v->b.name);
      if ((r = decode(v, k, tmp)) == 0)
        memcpy(p, tmp + skip, take);
      free(tmp);
    }
    if (r < 0)
      return r;
    p += take;
    off += take;
  }
  return 0;
}

static int
no_parent(struct vnbd *v, uint64_t off)
{
  return bfs_error(-EIO, "%s: guest offset %#" PRIx64 " is in the parent "
                   "checkpoint '%s', which was not opened", v->b.name, off,
                   v->x.meta.parent ? v->x.meta.parent : "");
}

static int
read_below(struct vnbd *v, unsigned char *p, uint64_t off, uint64_t n)
{
  struct bfs_blk *below = v->b.below;
  uint64_t k = 0;
  int r;

  if (!below && v->x.meta.incremental)
    return no_parent(v, off);
  if (below && off < below->size)
    k = below->size - off < n ? below->size - off : n;
  if (k && (r = bfs_blk_pread(below, p, k, off)) < 0)
    return r;
  memset(p + k, 0, n - k);
  return 0;
}

static int
vnbd_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  struct vnbd *v = (struct vnbd *)b;
  const uint64_t end = off + len;
  unsigned char *p = buf;
  size_t i = find_ext(&v->x, off);
  int r;

  while (off < end) {
    const struct vnbd_ext *e = i < v->x.n_ext ? &v->x.ext[i] : NULL;
    uint64_t n;

    if (!e || off < e->voff) {          /* a gap before the next extent */
      n = (e && e->voff < end ? e->voff : end) - off;
      r = read_below(v, p, off, n);
    } else {
      n = (e->voff + e->vlen < end ? e->voff + e->vlen : end) - off;
      if (e->kind == VNBD_ZERO) {
        memset(p, 0, n);
        r = 0;
      } else if (e->nblk) {
        r = read_compressed(v, e, p, off, n);
      } else {
        r = blk_io_read(v->io, p, n, e->foff + (off - e->voff), "data frame");
      }
      i++;
    }
    if (r < 0)
      return r;
    p += n;
    off += n;
  }
  return 0;
}

static int
vnbd_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                  struct bfs_blk_status *st)
{
  struct vnbd *v = (struct vnbd *)b;
  size_t i = find_ext(&v->x, off);
  const struct vnbd_ext *e = i < v->x.n_ext ? &v->x.ext[i] : NULL;
  struct bfs_blk *below = b->below;
  int r;

  st->layer = 0;
  if (!e || off < e->voff) {
    st->len = e && e->voff - off < max ? e->voff - off : max;
    if (!below && v->x.meta.incremental)
      return no_parent(v, off);
    if (!below || off >= below->size) {
      st->kind = BFS_BLK_HOLE;
      return 0;
    }
    if ((r = bfs_blk_block_status(below, off, st->len, st)) < 0)
      return r;
    if (st->kind != BFS_BLK_HOLE)
      st->layer++;
    return 0;
  }
  st->len = e->voff + e->vlen - off < max ? e->voff + e->vlen - off : max;
  if (e->kind == VNBD_ZERO) {
    st->kind = BFS_BLK_ZERO;
    return 0;
  }
  st->kind = BFS_BLK_DATA;
  if (!e->nblk) {
    st->fd = blk_io_fd_of(v->io);
    st->fd_off = e->foff + (off - e->voff);
    return 0;
  }
  const struct vnbd_block *k = &v->x.blk[find_blk(&v->x, e, off)];
  if (k->voff + k->dlen - off < st->len)
    st->len = k->voff + k->dlen - off;
  st->unit_off = k->voff;
  st->unit_len = k->dlen;
  return 0;
}

static void
vnbd_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len)
{
  struct vnbd *v = (struct vnbd *)b;
  size_t i = find_ext(&v->x, off);
  if (i < v->x.n_ext && v->x.ext[i].kind == VNBD_DATA && !v->x.ext[i].nblk &&
      off >= v->x.ext[i].voff) {
    const struct vnbd_ext *e = &v->x.ext[i];
    uint64_t n = e->voff + e->vlen - off < len ? e->voff + e->vlen - off : len;
    blk_io_prefetch(v->io, e->foff + (off - e->voff), n);
  }
}

static void
vnbd_close(struct bfs_blk *b)
{
  struct vnbd *v = (struct vnbd *)b;
  vnbd_index_free(&v->x);
  blk_io_close(v->io);
  free(v);
}

static const struct bfs_blk_ops vnbd_ops = {
  .name = "vnbd",
  .pread = vnbd_pread,
  .block_status = vnbd_block_status,
  .prefetch = vnbd_prefetch,
  .close = vnbd_close,
};

static int
check_backing(struct vnbd *v, struct bfs_blk *backing)
{
  const struct vnbd_meta *m = &v->x.meta, *pm;

  if (!backing)
    return 0;
  if (!m->incremental)
    return bfs_error(-EINVAL, "%s: a full backup (checkpoint '%s') has no "
                     "parent, but a backing layer was given", v->b.name,
                     m->checkpoint);
  pm = blk_vnbd_meta(backing);
  if (pm && m->parent && strcmp(pm->checkpoint, m->parent))
    return bfs_error(-EIO, "%s: parent checkpoint is '%s' but the layer "
                     "below (%s) is checkpoint '%s'", v->b.name, m->parent,
                     backing->name, pm->checkpoint);
  return 0;
}

static int
vnbd_open(struct blk_io *io, const char *options, const void *blob,
          size_t blen, int cache_dirfd, struct bfs_blk *backing,
          struct bfs_blk **out)
{
  struct vnbd *v = calloc(1, sizeof *v);
  int r;

  *out = NULL;
  if (!v) {
    r = bfs_error(-ENOMEM, "%s: out of memory", blk_io_name(io));
    bfs_blk_close(backing);
    blk_io_close(io);
    return r;
  }
  v->io = io;
  v->b.ops = &vnbd_ops;
  v->b.name = blk_io_name(io);
  v->b.below = backing;                 /* owned from here on */
  if (options && *options)
    r = bfs_error(-EINVAL, "%s: vnbd driver: unknown options '%s'",
                  v->b.name, options);
  else if ((r = blob ? vnbd_index_decode(blob, blen, blk_io_size(io),
                                          v->b.name, &v->x)
                : cache_dirfd >= 0 ? vnbd_index_get(io, cache_dirfd, &v->x,
                                                    NULL)
                : vnbd_index_build(io, &v->x)) == 0)
    r = check_backing(v, backing);
  if (r < 0) {
    bfs_blk_close(&v->b);
    return r;
  }
  v->b.size = v->x.meta.virtual_size;
  v->b.info = (struct bfs_blk_info){
    .format = "vnbd",
    .version = v->x.meta.stream_version,
    .virtual_size = v->b.size,
    .file_size = v->x.file_size,
    .compression = v->x.meta.compressed ? "lz4" : NULL,
    /* the recipe checks an incremental has its parent below it */
    .backing_file = v->x.meta.incremental ?
                    (v->x.meta.parent ? v->x.meta.parent : "") : NULL,
  };
  *out = &v->b;
  return 0;
}

int
blk_vnbd_open(struct blk_io *io, const char *options,
              struct bfs_blk *backing, struct bfs_blk **out)
{
  return vnbd_open(io, options, NULL, 0, -1, backing, out);
}

int
blk_vnbd_open_index(struct blk_io *io, const void *blob, size_t len,
                    struct bfs_blk *backing, struct bfs_blk **out)
{
  if (!blob) {
    *out = NULL;
    bfs_blk_close(backing);
    blk_io_close(io);
    return bfs_error(-EINVAL, "no cached index given");
  }
  return vnbd_open(io, NULL, blob, len, -1, backing, out);
}

int
blk_vnbd_open_ctx(struct blk_io *io, const char *options, void *ctx,
                  struct bfs_blk *backing, struct bfs_blk **out)
{
  const struct blk_idxcache *c = ctx;
  return vnbd_open(io, options, NULL, 0, c ? c->dirfd : -1, backing, out);
}

int
vnbd_index_get(struct blk_io *io, int cache_dirfd, struct vnbd_index *idx,
               bool *hit)
{
  struct stat st;
  void *blob = NULL;
  size_t len = 0;
  int fd = blk_io_fd_of(io), r;

  if (hit)
    *hit = false;
  if (fd < 0 || cache_dirfd < 0 || fstat(fd, &st) < 0)
    return vnbd_index_build(io, idx);
  if (blk_idxcache_load(cache_dirfd, "vnbd", &st, &blob, &len) == 0) {
    r = vnbd_index_decode(blob, len, blk_io_size(io), blk_io_name(io), idx);
    free(blob);
    if (r == 0) {
      if (hit)
        *hit = true;
      return 0;
    }
    vnbd_index_free(idx);       /* a bad cache entry: rebuild it */
  }
  if ((r = vnbd_index_build(io, idx)) < 0)
    return r;
  if (vnbd_index_encode(idx, &blob, &len) == 0) {
    blk_idxcache_store(cache_dirfd, "vnbd", &st, blob, len);
    free(blob);
  }
  return 0;
}

const struct vnbd_index *
blk_vnbd_index(const struct bfs_blk *b)
{
  return b && b->ops == &vnbd_ops ? &((const struct vnbd *)b)->x : NULL;
}

const struct vnbd_meta *
blk_vnbd_meta(const struct bfs_blk *b)
{
  return b && b->ops == &vnbd_ops ? &((const struct vnbd *)b)->x.meta : NULL;
}
