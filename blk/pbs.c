/* pbs.c — a PBS fixed index (.fidx) as a struct bfs_blk (see pbs.h).
 *
 * Open reads the 4096-byte header and the digest list once and checks
 * them (magic, chunk size a power of two in [4 KiB, 64 MiB], file size =
 * header + 32 per chunk, index checksum = SHA-256 of the digest list).
 * Reads map each chunk of the range to its digest, take it from the
 * shared store (which verifies it) and copy out.  block_status reports a
 * chunk at a time: ZERO when its digest is the zero chunk's, else DATA
 * with the chunk as the cache unit (not plain bytes: fd -1).  The index is
 * read-only after open; the store does its own locking.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blk/pbs-int.h"
#include "common/checked.h"
#include "common/error.h"

static const unsigned char M_FIDX[8] = { 47, 127, 65, 237, 145, 253, 15, 205 };

struct pbs_blk {
  struct bfs_blk b;
  struct pbs_store *store;
  unsigned char *digests;          /* 32 per chunk */
  uint64_t nchunks, chunk_size;
  unsigned char zero_full[32], zero_last[32];
  char *name;
};

static uint64_t
le64(const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static size_t
chunk_len(const struct pbs_blk *p, uint64_t i)
{
  uint64_t start = i * p->chunk_size;
  return (size_t)(p->b.size - start < p->chunk_size ? p->b.size - start
                                                    : p->chunk_size);
}

static bool
is_zero(const struct pbs_blk *p, uint64_t i)
{
  const unsigned char *d = p->digests + 32 * i;
  return !memcmp(d, i + 1 == p->nchunks ? p->zero_last : p->zero_full, 32);
}

static int
pblk_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  struct pbs_blk *p = (struct pbs_blk *)b;
  unsigned char *out = buf;

  while (len) {
    uint64_t i = off / p->chunk_size, in = off % p->chunk_size;
    size_t cl = chunk_len(p, i), n = cl - (size_t)in;
    struct pbs_chunk *c;
    int r;

    if (n > len)
      n = len;
    if (is_zero(p, i))
      memset(out, 0, n);
    else {
      if ((r = pbs_store_get(p->store, p->digests + 32 * i, cl, &c)) < 0)
        return bfs_error_prefix(r == -ENOKEY ? r : -EIO, "%s: chunk %" PRIu64
                                " (offset %" PRIu64 "): ", p->name, i,
                                i * p->chunk_size);
      memcpy(out, pbs_chunk_data(c) + in, n);
      pbs_chunk_put(p->store, c);
    }
    out += n;
    off += n;
    len -= n;
  }
  return 0;
}

static int
pblk_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                  struct bfs_blk_status *st)
{
  struct pbs_blk *p = (struct pbs_blk *)b;
  uint64_t i = off / p->chunk_size, len = 0;
  bool zero = is_zero(p, i);

  /* ZERO runs merge across chunks; DATA is one chunk (the unit) */
  for (uint64_t j = i; j < p->nchunks && len < max; j++) {
    uint64_t start = j * p->chunk_size;
    if (is_zero(p, j) != zero || (!zero && j != i))
      break;
    len = start + chunk_len(p, j) - off;
  }
  st->len = len < max ? len : max;
  st->kind = zero ? BFS_BLK_ZERO : BFS_BLK_DATA;
  st->layer = 0;
  st->fd = -1;
  if (!zero) {
    st->unit_off = i * p->chunk_size;
    st->unit_len = chunk_len(p, i);
  }
  return 0;
}

static void
pblk_close(struct bfs_blk *b)
{
  struct pbs_blk *p = (struct pbs_blk *)b;
  pbs_store_unref(p->store);
  free(p->digests);
  free(p->name);
  free(p);
}

static const struct bfs_blk_ops pbs_ops = {
  .name = "pbs",
  .pread = pblk_pread,
  .block_status = pblk_block_status,
  .close = pblk_close,
};

int
pbs_fidx_info(struct blk_io *io, unsigned char h[static PBS_FIDX_HEADER],
              uint64_t *size_out, uint64_t *chunk_size, uint64_t *nchunks)
{
  const char *nm = blk_io_name(io);
  uint64_t size, cs, n, bytes;
  int r;

  if ((r = blk_io_read(io, h, PBS_FIDX_HEADER, 0, "fixed index header")) < 0)
    return r;
  if (memcmp(h, M_FIDX, 8))
    return bfs_error(-EINVAL, "%s: not a PBS fixed index (bad magic)", nm);
  size = le64(h + 64);
  cs = le64(h + 72);
  if (cs < PBS_MIN_CHUNK || cs > PBS_MAX_CHUNK || (cs & (cs - 1)))
    return bfs_error(-EIO, "%s: chunk size %" PRIu64 " is not a power of two"
                     " between %u and %u", nm, cs, PBS_MIN_CHUNK,
                     PBS_MAX_CHUNK);
  if (size == 0)
    return bfs_error(-EIO, "%s: the index describes an empty image", nm);
  n = size / cs + (size % cs != 0);
  if (ck_mul(n, 32, &bytes) || ck_add(bytes, PBS_FIDX_HEADER, &bytes) ||
      bytes != blk_io_size(io))
    return bfs_error(-EIO, "%s: %" PRIu64 " chunks need a file of %" PRIu64
                     " bytes, it has %" PRIu64 " (truncated or corrupt)", nm,
                     n, n * 32 + PBS_FIDX_HEADER, blk_io_size(io));
  *size_out = size;
  *chunk_size = cs;
  *nchunks = n;
  return 0;
}

static int
parse_fidx(struct pbs_blk *p, struct blk_io *io)
{
  const char *nm = blk_io_name(io);
  unsigned char h[PBS_FIDX_HEADER], sum[32];
  uint64_t size, cs, n;
  int r;

  if ((r = pbs_fidx_info(io, h, &size, &cs, &n)) < 0)
    return r;
  if (!(p->digests = malloc(n * 32)))
    return bfs_error(-ENOMEM, "%s: out of memory for %" PRIu64 " digests",
                     nm, n);
  if ((r = blk_io_read(io, p->digests, n * 32, PBS_FIDX_HEADER,
                       "digest list")) < 0)
    return r;
  pbs_digest(p->digests, n * 32, NULL, sum);
  if (memcmp(sum, h + 32, 32))
    return bfs_error(-EIO, "%s: index checksum mismatch (the digest list is "
                     "corrupt)", nm);
  p->b.size = size;
  p->nchunks = n;
  p->chunk_size = cs;
  return 0;
}

int
blk_pbs_open_store(struct blk_io *io, struct pbs_store *store,
                   struct bfs_blk **out)
{
  const char *nm = blk_io_name(io);
  struct pbs_blk *p;
  int r;

  *out = NULL;
  if (!(p = calloc(1, sizeof *p)) || !(p->name = strdup(nm))) {
    free(p);
    blk_io_close(io);
    return bfs_error(-ENOMEM, "%s: out of memory", nm);
  }
  if ((r = parse_fidx(p, io)) < 0 ||
      (r = pbs_store_zero_digest(store, (size_t)p->chunk_size,
                                 p->zero_full)) < 0 ||
      (r = pbs_store_zero_digest(store, chunk_len(p, p->nchunks - 1),
                                 p->zero_last)) < 0) {
    free(p->digests);
    free(p->name);
    free(p);
    blk_io_close(io);
    return r;
  }
  p->b.info.file_size = blk_io_size(io);
  blk_io_close(io);              /* everything is in memory now */
  pbs_store_ref(store);
  p->store = store;
  p->b.ops = &pbs_ops;
  p->b.name = p->name;
  p->b.info.format = "pbs";
  p->b.info.version = 1;
  p->b.info.virtual_size = p->b.size;
  p->b.info.compression = "zstd";
  *out = &p->b;
  return 0;
}

int
blk_pbs_open_ctx(struct blk_io *io, const char *options, void *ctx,
                 struct bfs_blk *backing, struct bfs_blk **out)
{
  int r = 0;

  *out = NULL;
  if (backing)
    r = bfs_error(-EINVAL, "%s: a PBS image has no backing file",
                  blk_io_name(io));
  else if (options && *options && (strncmp(options, "store=", 6) ||
                                    strchr(options, ',')))
    r = bfs_error(-EINVAL, "%s: pbs driver: unknown options '%s'",
                  blk_io_name(io), options);
  else if (!ctx)
    r = bfs_error(-EINVAL, "%s: the pbs driver needs its datastore's chunk "
                  "store (the recipe's ctx)", blk_io_name(io));
  if (r < 0) {
    bfs_blk_close(backing);
    blk_io_close(io);
    return r;
  }
  return blk_pbs_open_store(io, ctx, out);
}

int
blk_pbs_open(struct blk_io *io, const char *options, struct bfs_blk *backing,
             struct bfs_blk **out)
{
  return blk_pbs_open_ctx(io, options, NULL, backing, out);
}
