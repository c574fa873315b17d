/* vma-unpack.c — .vma.zst into a sparse cache file (see vma.h: why not a
 * seekable index, where the file lives, how big, when it is dropped).
 *
 * One streaming pass through libzstd; the output is an O_TMPFILE (no name,
 * so nothing to clean up after a crash) written with pwrite, skipping
 * all-zero 4 KiB blocks so they stay holes, and sized with ftruncate.  A
 * stream that ends early (an interrupted vzdump) unpacks as far as it goes
 * and is then an ordinary truncated archive for vma_index_build, which
 * says where it stops; a corrupt stream is -EIO naming the archive and
 * the compressed offset.  .vma.lzo: the lzop container (lzop 1.x: magic,
 * version, method, flags, optional filter/extra field, header checksum;
 * then blocks of uncompressed size, compressed size, Adler-32 or CRC-32
 * checksums, data stored or LZO1X) decoded with liblzo2's
 * lzo1x_decompress_safe, every checksum it carries checked.  Built
 * without liblzo2, .vma.lzo is refused by name.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>
#if HAVE_LZO2
#include <lzo/lzo1x.h>
#endif

#include "blk/vma.h"
#include "common/error.h"
#include "common/ioutil.h"

static bool
all_zero(const unsigned char *p, size_t n)
{
  return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/* write buf at off, leaving whole zero 4 KiB blocks as holes */
static int
sparse_write(int fd, const unsigned char *buf, size_t n, uint64_t off)
{
  size_t i = 0;

  while (i < n) {
    size_t k = VMA_BLOCK_SIZE - (off + i) % VMA_BLOCK_SIZE;
    if (k > n - i)
      k = n - i;
    if (!all_zero(buf + i, k)) {
      int r = bfs_pwrite_all(fd, buf + i, k, off + i);
      if (r < 0)
        return r;
    }
    i += k;
  }
  return 0;
}

static int
unpack_zstd(int in, const char *nm, int out)
{
  size_t in_cap = ZSTD_DStreamInSize(), out_cap = ZSTD_DStreamOutSize();
  unsigned char *ib = malloc(in_cap), *ob = malloc(out_cap);
  ZSTD_DCtx *z = ZSTD_createDCtx();
  uint64_t in_off = 0, out_off = 0;
  size_t last = 0;
  int r = 0;

  if (!ib || !ob || !z) {
    r = bfs_error(-ENOMEM, "%s: out of memory", nm);
    goto out;
  }
  for (;;) {
    ssize_t got = pread(in, ib, in_cap, (off_t)in_off);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      r = bfs_error(-errno, "%s: read at %" PRIu64 ": %s", nm, in_off,
                    strerror(errno));
      goto out;
    }
    if (got == 0)
      break;
    ZSTD_inBuffer zi = { ib, (size_t)got, 0 };
    while (zi.pos < zi.size) {
      ZSTD_outBuffer zo = { ob, out_cap, 0 };
      last = ZSTD_decompressStream(z, &zo, &zi);
      if (ZSTD_isError(last)) {
        r = bfs_error(-EIO, "%s: zstd stream corrupt near compressed offset "
                      "%" PRIu64 ": %s", nm, in_off + zi.pos,
                      ZSTD_getErrorName(last));
        goto out;
      }
      if ((r = sparse_write(out, ob, zo.pos, out_off)) < 0) {
        r = bfs_error(r, "%s: writing the unpacked cache: %s", nm,
                      strerror(-r));
        goto out;
      }
      out_off += zo.pos;
    }
    in_off += (uint64_t)got;
  }
  /* last != 0: the stream ended inside a frame (interrupted backup); what
   * came out is a truncated archive, reported by the index */
  if (last != 0)
    bfs_log(BFS_LOG_WARN, "%s: zstd stream ends inside a frame after %"
            PRIu64 " bytes: the archive is truncated", nm, in_off);
  if (ftruncate(out, (off_t)out_off) < 0)
    r = bfs_error(-errno, "%s: sizing the unpacked cache: %s", nm,
                  strerror(errno));
out:
  ZSTD_freeDCtx(z);
  free(ib);
  free(ob);
  return r;
}


#if HAVE_LZO2
#define LZOP_MAX_BLOCK (64u << 20)
#define F_ADLER32_D 0x1u
#define F_ADLER32_C 0x2u
#define F_H_EXTRA_FIELD 0x40u
#define F_CRC32_D 0x100u
#define F_CRC32_C 0x200u
#define F_H_FILTER 0x800u
#define F_H_CRC32 0x1000u

struct rd {
  int fd;
  uint64_t off;
  const char *nm;
  uLong sum;                     /* running header checksum */
  bool crc, hsum;
};

/* exactly n bytes, or 1 at a clean end of file (n bytes wanted, 0 there) */
static int
rd_get(struct rd *r, void *buf, size_t n, const char *what)
{
  size_t got = 0;
  while (got < n) {
    ssize_t k = pread(r->fd, (char *)buf + got, n - got,
                      (off_t)(r->off + got));
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return bfs_error(-errno, "%s: read at %" PRIu64 ": %s", r->nm,
                       r->off + got, strerror(errno));
    if (k == 0)
      return got == 0 ? 1 : bfs_error(-EIO, "%s: lzop %s cut at offset %"
                                      PRIu64, r->nm, what, r->off + got);
    got += (size_t)k;
  }
  if (r->hsum)
    r->sum = r->crc ? crc32(r->sum, buf, (uInt)n) : adler32(r->sum, buf,
                                                              (uInt)n);
  r->off += n;
  return 0;
}

static int
rd_u32(struct rd *r, uint32_t *v, const char *what)
{
  unsigned char b[4];
  int e = rd_get(r, b, 4, what);
  if (e == 1)
    e = bfs_error(-EIO, "%s: lzop stream ends before its %s", r->nm, what);
  *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
       b[3];
  return e;
}

static int
lzop_header(struct rd *r, uint32_t *flags)
{
  unsigned char b[16], name[256];
  uint32_t v, want;
  unsigned version, method;
  int e;

  r->off = 9;
  r->hsum = true;
  r->sum = adler32(0, NULL, 0);
  if ((e = rd_get(r, b, 4, "header")) != 0)
    return e == 1 ? bfs_error(-EIO, "%s: lzop header cut", r->nm) : e;
  version = (unsigned)b[0] << 8 | b[1];
  if (version >= 0x0940 && (e = rd_get(r, b + 4, 2, "header")) != 0)
    return e == 1 ? -EIO : e;
  if ((e = rd_get(r, b, 1, "header")) != 0)
    return e == 1 ? -EIO : e;
  method = b[0];
  if (version >= 0x0940 && (e = rd_get(r, b, 1, "header")) != 0)
    return e == 1 ? -EIO : e;
  if ((e = rd_u32(r, flags, "header flags")) < 0)
    return e;
  if (method < 1 || method > 3)
    return bfs_error(-ENOTSUP, "%s: lzop method %u is not LZO1X", r->nm,
                     method);
  if (*flags & F_H_FILTER)
    return bfs_error(-ENOTSUP, "%s: lzop filters are not supported", r->nm);
  if ((e = rd_u32(r, &v, "header")) < 0 || (e = rd_u32(r, &v, "header")) < 0 ||
      (version >= 0x0940 && (e = rd_u32(r, &v, "header")) < 0))
    return e;
  if ((e = rd_get(r, b, 1, "header")) != 0 ||
      (b[0] && (e = rd_get(r, name, b[0], "header")) != 0))
    return e == 1 ? -EIO : e;
  r->crc = (*flags & F_H_CRC32) != 0;
  /* the checksum so far was computed as Adler-32: redo as CRC-32 if asked */
  if (r->crc) {
    uint64_t end = r->off;
    unsigned char *h = malloc(end - 9);
    if (!h)
      return bfs_error(-ENOMEM, "%s: out of memory", r->nm);
    r->off = 9;
    r->hsum = false;
    e = rd_get(r, h, end - 9, "header");
    r->sum = crc32(0, h, (uInt)(end - 9));
    free(h);
    if (e)
      return e == 1 ? -EIO : e;
  }
  want = (uint32_t)r->sum;
  r->hsum = false;
  if ((e = rd_u32(r, &v, "header checksum")) < 0)
    return e;
  if (v != want)
    return bfs_error(-EIO, "%s: lzop header checksum mismatch", r->nm);
  if (*flags & F_H_EXTRA_FIELD) {
    uint32_t n;
    if ((e = rd_u32(r, &n, "extra field")) < 0)
      return e;
    r->off += n;
    if ((e = rd_u32(r, &v, "extra field checksum")) < 0)
      return e;
  }
  return 0;
}

static uint32_t
sum_of(bool crc, const unsigned char *p, size_t n)
{
  return crc ? (uint32_t)crc32(0, p, (uInt)n)
             : (uint32_t)adler32(adler32(0, NULL, 0), p, (uInt)n);
}

static int
unpack_lzo(int in, const char *nm, int out)
{
  struct rd r = { in, 0, nm, 0, false, false };
  unsigned char *src = NULL, *dst = NULL;
  uint64_t out_off = 0;
  uint32_t flags, dlen, slen, dsum = 0, csum = 0;
  int e;

  if (lzo_init() != LZO_E_OK)
    return bfs_error(-EIO, "%s: liblzo2 does not initialise", nm);
  if ((e = lzop_header(&r, &flags)) < 0)
    return e;
  if (!(src = malloc(LZOP_MAX_BLOCK)) || !(dst = malloc(LZOP_MAX_BLOCK))) {
    e = bfs_error(-ENOMEM, "%s: out of memory", nm);
    goto out;
  }
  for (;;) {
    uint64_t at = r.off;
    unsigned char b4[4];

    e = rd_get(&r, b4, 4, "block header");
    if (e == 1) {
      bfs_log(BFS_LOG_WARN, "%s: lzop stream ends without its end marker "
              "after %" PRIu64 " bytes: the archive is truncated", nm, at);
      break;
    }
    if (e < 0)
      break;                      /* a cut stream: keep what came out */
    dlen = (uint32_t)b4[0] << 24 | (uint32_t)b4[1] << 16 |
           (uint32_t)b4[2] << 8 | b4[3];
    if (dlen == 0)
      break;
    if (dlen > LZOP_MAX_BLOCK || (e = rd_u32(&r, &slen, "block")) < 0) {
      e = e < 0 ? e : bfs_error(-EIO, "%s: lzop block at %" PRIu64 " of %"
                                PRIu32 " bytes is too large", nm, at, dlen);
      goto out;
    }
    if (slen == 0 || slen > dlen) {
      e = bfs_error(-EIO, "%s: lzop block at %" PRIu64 " is corrupt", nm,
                    at);
      goto out;
    }
    if (((flags & (F_ADLER32_D | F_CRC32_D)) &&
         (e = rd_u32(&r, &dsum, "block checksum")) < 0) ||
        (slen < dlen && (flags & (F_ADLER32_C | F_CRC32_C)) &&
         (e = rd_u32(&r, &csum, "block checksum")) < 0))
      break;
    e = rd_get(&r, src, slen, "block");
    if (e != 0)
      break;
    if (slen < dlen) {
      lzo_uint n = dlen;
      if ((flags & (F_ADLER32_C | F_CRC32_C)) &&
          sum_of(flags & F_CRC32_C, src, slen) != csum) {
        e = bfs_error(-EIO, "%s: lzop block at %" PRIu64 ": checksum of the "
                      "compressed data mismatch", nm, at);
        goto out;
      }
      if (lzo1x_decompress_safe(src, slen, dst, &n, NULL) != LZO_E_OK ||
          n != dlen) {
        e = bfs_error(-EIO, "%s: lzop block at %" PRIu64 " does not "
                      "decompress", nm, at);
        goto out;
      }
    }
    else
      memcpy(dst, src, dlen);
    if ((flags & (F_ADLER32_D | F_CRC32_D)) &&
        sum_of(flags & F_CRC32_D, dst, dlen) != dsum) {
      e = bfs_error(-EIO, "%s: lzop block at %" PRIu64 ": checksum mismatch",
                    nm, at);
      goto out;
    }
    if ((e = sparse_write(out, dst, dlen, out_off)) < 0) {
      e = bfs_error(e, "%s: writing the unpacked cache: %s", nm,
                    strerror(-e));
      goto out;
    }
    out_off += dlen;
  }
  e = 0;                          /* a cut block: truncated, said later */
  if (ftruncate(out, (off_t)out_off) < 0)
    e = bfs_error(-errno, "%s: sizing the unpacked cache: %s", nm,
                  strerror(errno));
out:
  free(src);
  free(dst);
  return e;
}
#endif

int
vma_unpack(int in_fd, const char *name, int cache_dirfd, int *out_fd)
{
  unsigned char magic[4];
  int out, r;

  *out_fd = -1;
  if ((r = bfs_pread_all(in_fd, magic, 4, 0)) < 0)
    return bfs_error(-EIO, "%s: too short for a compressed VMA archive",
                     name);
  bool lzo = !memcmp(magic, "\x89LZO", 4);
#if !HAVE_LZO2
  if (lzo)
    return bfs_error(-ENOTSUP, "%s: .vma.lzo (lzop) archives are not "
                     "supported by this build (no liblzo2): decompress with "
                     "lzop -d first", name);
#endif
  if (!lzo && memcmp(magic, "\x28\xb5\x2f\xfd", 4))
    return bfs_error(-EINVAL, "%s: not a zstd-compressed VMA archive", name);
  out = openat(cache_dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (out < 0)
    return bfs_error(-errno, "%s: cannot create the unpack cache file: %s",
                     name, strerror(errno));
#if HAVE_LZO2
  r = lzo ? unpack_lzo(in_fd, name, out) : unpack_zstd(in_fd, name, out);
#else
  r = unpack_zstd(in_fd, name, out);
#endif
  if (r < 0) {
    close(out);
    return r;
  }
  *out_fd = out;
  return 0;
}
