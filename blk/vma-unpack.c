/* vma-unpack.c — .vma.zst into a sparse cache file (see vma.h: why not a
 * seekable index, where the file lives, how big, when it is dropped).
 *
 * One streaming pass through libzstd; the output is an O_TMPFILE (no name,
 * so nothing to clean up after a crash) written with pwrite, skipping
 * all-zero 4 KiB blocks so they stay holes, and sized with ftruncate.  A
 * stream that ends early (an interrupted vzdump) unpacks as far as it goes
 * and is then an ordinary truncated archive for vma_index_build, which
 * says where it stops; a corrupt stream is -EIO naming the archive and
 * the compressed offset.  .vma.lzo is refused by name: the lzop container
 * needs liblzo2, which this build does not use.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

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

int
vma_unpack(int in_fd, const char *name, int cache_dirfd, int *out_fd)
{
  unsigned char magic[4];
  int out, r;

  *out_fd = -1;
  if ((r = bfs_pread_all(in_fd, magic, 4, 0)) < 0)
    return bfs_error(-EIO, "%s: too short for a compressed VMA archive",
                     name);
  if (!memcmp(magic, "\x89LZO", 4))
    return bfs_error(-ENOTSUP, "%s: .vma.lzo (lzop) archives are not "
                     "supported: decompress with lzop -d first", name);
  if (memcmp(magic, "\x28\xb5\x2f\xfd", 4))
    return bfs_error(-EINVAL, "%s: not a zstd-compressed VMA archive", name);
  out = openat(cache_dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (out < 0)
    return bfs_error(-errno, "%s: cannot create the unpack cache file: %s",
                     name, strerror(errno));
  if ((r = unpack_zstd(in_fd, name, out)) < 0) {
    close(out);
    return r;
  }
  *out_fd = out;
  return 0;
}
