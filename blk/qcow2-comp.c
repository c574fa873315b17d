/* qcow2-comp.c — decoding compressed clusters: raw deflate (libdeflate)
 * and zstd.
 *
 * A compressed cluster must decode to exactly one cluster: shorter output,
 * a stream that would produce more (a zstd bomb, a deflate stream past the
 * cluster), or garbage is -EIO naming the file and the guest offset.
 * Trailing input after the end of the stream is QEMU's sector padding and
 * fine.  zstd: a frame wholly in the input decodes in one call into the
 * cluster (known output size, no window copy); anything else goes through
 * the stream decoder, which names the fault.  Decoder contexts are reused through a small per-image pool
 * (ctx_lock held only to take or return one), so threads never share one
 * and no context is built per cluster.
 */
#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "blk/qcow2.h"
#include "common/error.h"

#define ZSTD_WINDOW_LOG_MAX 24        /* a cluster is at most 2 MiB */

struct qcow2_dctx {
  struct libdeflate_decompressor *deflate;
  ZSTD_DCtx *zstd;
};

static void
dctx_free(struct qcow2_dctx *c)
{
  if (!c)
    return;
  if (c->deflate)
    libdeflate_free_decompressor(c->deflate);
  ZSTD_freeDCtx(c->zstd);
  free(c);
}

static struct qcow2_dctx *
dctx_get(struct qcow2 *q)
{
  struct qcow2_dctx *c = NULL;

  pthread_mutex_lock(&q->ctx_lock);
  if (q->nctx > 0)
    c = q->ctx_free[--q->nctx];
  pthread_mutex_unlock(&q->ctx_lock);
  if (c)
    return c;
  if (!(c = calloc(1, sizeof *c)))
    return NULL;
  if (q->compression == QCOW2_COMPRESSION_ZSTD) {
    c->zstd = ZSTD_createDCtx();
    if (c->zstd)
      ZSTD_DCtx_setParameter(c->zstd, ZSTD_d_windowLogMax,
                             ZSTD_WINDOW_LOG_MAX);
  }
  else
    c->deflate = libdeflate_alloc_decompressor();
  if (!c->zstd && !c->deflate) {
    free(c);
    return NULL;
  }
  return c;
}

static void
dctx_put(struct qcow2 *q, struct qcow2_dctx *c)
{
  pthread_mutex_lock(&q->ctx_lock);
  if (q->nctx < QCOW2_DCTX_POOL) {
    q->ctx_free[q->nctx++] = c;
    c = NULL;
  }
  pthread_mutex_unlock(&q->ctx_lock);
  dctx_free(c);
}

void
qcow2_comp_free(struct qcow2 *q)
{
  while (q->nctx > 0)
    dctx_free(q->ctx_free[--q->nctx]);
}

static const char *
inflate_exact(struct libdeflate_decompressor *d, const void *in, size_t inlen,
              void *out, size_t outlen)
{
  size_t in_used = 0, got = 0;
  enum libdeflate_result r =
      libdeflate_deflate_decompress_ex(d, in, inlen, out, outlen, &in_used,
                                       &got);

  if (r == LIBDEFLATE_INSUFFICIENT_SPACE)
    return "decodes to more than one cluster";
  if (r != LIBDEFLATE_SUCCESS)
    return "bad deflate stream";
  if (got != outlen)
    return "decodes to less than one cluster";
  return NULL;
}

static const char *
unzstd_stream(ZSTD_DCtx *d, const void *in, size_t inlen, void *out,
              size_t outlen)
{
  ZSTD_inBuffer ib = { in, inlen, 0 };
  ZSTD_outBuffer ob = { out, outlen, 0 };
  size_t r = 1;
  unsigned char extra;

  ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
  while (ob.pos < ob.size) {
    size_t in0 = ib.pos, out0 = ob.pos;
    r = ZSTD_decompressStream(d, &ob, &ib);
    if (ZSTD_isError(r))
      return "bad zstd frame";
    if (r == 0 && ob.pos < ob.size)
      return "decodes to less than one cluster";
    if (ib.pos == in0 && ob.pos == out0)
      return "zstd frame truncated";
  }
  /* the cluster is full: the frame must end here, not go on (a bomb) */
  while (r != 0) {
    ZSTD_outBuffer ox = { &extra, 1, 0 };
    size_t in0 = ib.pos;
    r = ZSTD_decompressStream(d, &ox, &ib);
    if (ZSTD_isError(r))
      return "bad zstd frame";
    if (ox.pos > 0)
      return "decodes to more than one cluster";
    if (r != 0 && ib.pos == in0)
      return "zstd frame truncated";
  }
  return NULL;
}

/* The whole frame in the input (the usual case): one call straight into
 * the cluster, whose size bounds the output; else (a frame cut short,
 * garbage) the stream decoder says exactly what is wrong. */
static const char *
unzstd_exact(ZSTD_DCtx *d, const void *in, size_t inlen, void *out,
             size_t outlen)
{
  size_t fsz = ZSTD_findFrameCompressedSize(in, inlen), got;

  if (ZSTD_isError(fsz))
    return unzstd_stream(d, in, inlen, out, outlen);
  got = ZSTD_decompressDCtx(d, out, outlen, in, fsz);
  if (ZSTD_isError(got))
    return ZSTD_getErrorCode(got) == ZSTD_error_dstSize_tooSmall
           ? "decodes to more than one cluster" : "bad zstd frame";
  return got == outlen ? NULL : "decodes to less than one cluster";
}

int
qcow2_decompress(struct qcow2 *q, const struct qcow2_map *m, const void *in,
                 void *out)
{
  struct qcow2_dctx *c = dctx_get(q);
  const char *why;
  const bool zstd = q->compression == QCOW2_COMPRESSION_ZSTD;

  if (!c)
    return bfs_error(-ENOMEM, "%s: cannot set up %s", q->b.name,
                     zstd ? "zstd" : "deflate");
  why = zstd ? unzstd_exact(c->zstd, in, m->csize, out, q->cluster_size)
        : inflate_exact(c->deflate, in, m->csize, out, q->cluster_size);
  dctx_put(q, c);
  if (why)
    return bfs_error(-EIO, "%s: compressed cluster at guest offset %#" PRIx64
                     " (host %#" PRIx64 ", %" PRIu64 " bytes) does not "
                     "decompress (%s: %s): image is corrupt", q->b.name,
                     m->cl_off, m->host, m->csize, zstd ? "zstd" : "zlib",
                     why);
  return 0;
}
