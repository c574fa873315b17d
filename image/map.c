/* map.c — per-image cluster mapping: L1/L2 tables and compressed clusters.
 *
 * img_map() answers "what is at guest offset off in this one file" as a run
 * of equal mapping (unallocated, zero, contiguous data, one compressed
 * cluster).  The L1 table loads on first use; L2 tables go through a small
 * per-image cache (QCOW2_L2_CACHE_BYTES, at least one table), all under
 * img->lock, which is held only while scanning in-memory tables and reading
 * one table.  Entries are validated as they are used: host offsets aligned,
 * inside the file, subcluster bitmaps consistent.  Anything else is -EIO
 * naming the file.
 *
 * Decompression keeps one zlib and one zstd context per thread (pthread keys
 * with destructors), so readers never share a stream.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "common/checked.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "image/internal.h"

static int
load_l1(img_t *img)
{
  size_t bytes = (size_t)img->l1_size * 8;
  uint64_t *l1;
  int r;

  l1 = malloc(bytes ? bytes : 8);
  if (!l1)
    return bfs_error(-ENOMEM, "%s: out of memory for the L1 table", img->name);
  r = img_read_host(img, l1, bytes, img->l1_offset, "L1 table");
  if (r < 0) {
    free(l1);
    return r;
  }
  for (uint32_t i = 0; i < img->l1_size; i++)
    l1[i] = be64toh(l1[i]);
  img->l1 = l1;
  return 0;
}

/* The L2 table at host offset l2off, from the cache or the file. */
static int
get_l2(img_t *img, uint64_t l2off, const uint64_t **tab)
{
  struct l2_slot *victim;
  int r;

  if (!img->l2) {
    unsigned n = (unsigned)(QCOW2_L2_CACHE_BYTES / img->cluster_size);
    if (n < 1)
      n = 1;
    if (n > 64)
      n = 64;
    img->l2 = calloc(n, sizeof *img->l2);
    if (!img->l2)
      return bfs_error(-ENOMEM, "%s: out of memory", img->name);
    img->l2_slots = n;
  }
  victim = &img->l2[0];
  for (unsigned i = 0; i < img->l2_slots; i++) {
    struct l2_slot *s = &img->l2[i];
    if (s->tab && s->off == l2off) {
      s->stamp = ++img->l2_clock;
      *tab = s->tab;
      return 0;
    }
    if (!s->tab || (victim->tab && s->stamp < victim->stamp))
      victim = s;
  }
  if (!victim->tab) {
    victim->tab = malloc(img->cluster_size);
    if (!victim->tab)
      return bfs_error(-ENOMEM, "%s: out of memory for an L2 table",
                       img->name);
  }
  victim->off = 0;
  r = img_read_host(img, victim->tab, img->cluster_size, l2off, "L2 table");
  if (r < 0)
    return r;
  victim->off = l2off;
  victim->stamp = ++img->l2_clock;
  *tab = victim->tab;
  return 0;
}

/* One mapping unit (a subcluster with extended L2, else a cluster). */
struct unit {
  enum map_kind kind;
  uint64_t host;        /* DATA: host offset of the unit; COMPRESSED: entry */
};

static int
decode_unit(img_t *img, const uint64_t *tab, uint64_t l2i, unsigned sc,
            uint64_t guest, struct unit *u)
{
  const uint64_t cs = img->cluster_size;
  uint64_t e, host;

  if (img->info.extended_l2) {
    uint64_t bm;
    e = be64toh(tab[2 * l2i]);
    bm = be64toh(tab[2 * l2i + 1]);
    if (e & QCOW2_OFLAG_COMPRESSED) {
      u->kind = MAP_COMPRESSED;
      u->host = e;
      return 0;
    }
    host = e & QCOW2_OFFSET_MASK;
    bool alloc = bm & (1ull << sc), zero = bm & (1ull << (32 + sc));
    if (alloc && zero)
      return bfs_error(-EIO, "%s: subcluster %u of the cluster at guest "
                       "offset %#" PRIx64 " is both allocated and zero",
                       img->name, sc, guest);
    if (zero) {
      u->kind = MAP_ZERO;
      return 0;
    }
    if (!alloc) {
      u->kind = MAP_UNALLOC;
      return 0;
    }
    if (host == 0)
      return bfs_error(-EIO, "%s: allocated subcluster at guest offset %#"
                       PRIx64 " has no host cluster", img->name, guest);
    if (host & (cs - 1))
      return bfs_error(-EIO, "%s: data cluster offset %#" PRIx64 " (guest %#"
                       PRIx64 ") not aligned to a cluster", img->name, host,
                       guest);
    u->kind = MAP_DATA;
    u->host = host + ((uint64_t)sc << img->sc_bits);
    return 0;
  }
  e = be64toh(tab[l2i]);
  if (e & QCOW2_OFLAG_COMPRESSED) {
    u->kind = MAP_COMPRESSED;
    u->host = e;
    return 0;
  }
  host = e & QCOW2_OFFSET_MASK;
  if ((e & QCOW2_OFLAG_ZERO) && img->info.version < 3)
    return bfs_error(-EIO, "%s: zero flag on the L2 entry of guest offset %#"
                     PRIx64 " in a qcow2 v2 image (zero clusters are v3 "
                     "only): image is corrupt", img->name, guest);
  if (e & QCOW2_OFLAG_ZERO) {
    u->kind = MAP_ZERO;
    return 0;
  }
  if (host == 0) {
    u->kind = MAP_UNALLOC;
    return 0;
  }
  if (host & (cs - 1))
    return bfs_error(-EIO, "%s: data cluster offset %#" PRIx64 " (guest %#"
                     PRIx64 ") not aligned to a cluster", img->name, host,
                     guest);
  u->kind = MAP_DATA;
  u->host = host;
  return 0;
}

static int
map_compressed(img_t *img, uint64_t e, uint64_t off, uint64_t max,
               struct img_map *m)
{
  const uint64_t cs = img->cluster_size, fsize = img->io.size;
  uint64_t coff = e & img->coffset_mask;
  uint64_t nsec = ((e >> img->csize_shift) & img->csize_mask) + 1;
  uint64_t csize = nsec * 512 - (coff & 511), end, fend;

  /* QEMU rounds the payload length up to a 512-byte sector, so the last
   * payload in a file may end before coff + csize, but never before the
   * sector that holds it. */
  fend = (fsize + 511) & ~511ull;
  if (coff == 0 || coff >= fsize || ck_add(coff, csize, &end) || end > fend)
    return bfs_error(-EIO, "%s: compressed cluster at guest offset %#" PRIx64
                     " points to %#" PRIx64 " (+%" PRIu64 "), past the end "
                     "of the file (%" PRIu64 " bytes)", img->name,
                     off & ~(cs - 1), coff, csize, fsize);
  if (end > fsize)
    csize = fsize - coff;
  m->kind = MAP_COMPRESSED;
  m->host_off = coff;
  m->csize = csize;
  m->cl_off = off & ~(cs - 1);
  m->len = m->cl_off + cs - off;
  if (m->len > max)
    m->len = max;
  return 0;
}

static int
map_qcow2(img_t *img, uint64_t off, uint64_t max, struct img_map *m)
{
  const unsigned cb = img->info.cluster_bits;
  const uint64_t cs = img->cluster_size, unit = 1ull << img->sc_bits;
  const uint64_t l2n = 1ull << img->l2_bits;
  uint64_t cl = off >> cb, l1i = cl >> img->l2_bits, l2i = cl & (l2n - 1);
  uint64_t l2off, limit, pos, expect = 0;
  const uint64_t *tab = NULL;
  struct unit u, first;
  int r;

  if (!img->l1 && (r = load_l1(img)) < 0)
    return r;
  if (l1i >= img->l1_size)          /* excluded by the open-time checks */
    return bfs_error(-EIO, "%s: guest offset %#" PRIx64 " beyond the L1 "
                     "table", img->name, off);
  const uint64_t max0 = max;
  /* never scan past the end of this L2 table's coverage */
  limit = ((l1i + 1) << (img->l2_bits + cb)) - off;
  if (max > limit)
    max = limit;

  l2off = img->l1[l1i] & QCOW2_OFFSET_MASK;
  if (l2off == 0) {
    /* a run of empty L1 entries is one unallocated run */
    uint64_t j = l1i + 1, cover = 1ull << (img->l2_bits + cb);
    while (j < img->l1_size && !(img->l1[j] & QCOW2_OFFSET_MASK))
      j++;
    m->kind = MAP_UNALLOC;
    m->len = j * cover - off;
    if (m->len > max0)
      m->len = max0;
    return 0;
  }
  if (l2off & (cs - 1))
    return bfs_error(-EIO, "%s: L2 table offset %#" PRIx64 " not aligned to "
                     "a cluster", img->name, l2off);
  r = get_l2(img, l2off, &tab);
  if (r < 0)
    return r;

  pos = off & ~(unit - 1);          /* start of the unit holding off */
  r = decode_unit(img, tab, l2i, (unsigned)((off >> img->sc_bits) & 31),
                  off, &first);
  if (r < 0)
    return r;
  if (first.kind == MAP_COMPRESSED)
    return map_compressed(img, first.host, off, max, m);

  m->kind = first.kind;
  m->host_off = first.kind == MAP_DATA ? first.host + (off - pos) : 0;
  /* extend over following units of the same kind (contiguous for data) */
  for (pos += unit; pos - off < max; pos += unit) {
    uint64_t c = pos >> cb;
    if (first.kind == MAP_DATA)
      expect = first.host + (pos - (off & ~(unit - 1)));
    r = decode_unit(img, tab, c & (l2n - 1),
                    (unsigned)((pos >> img->sc_bits) & 31), pos, &u);
    if (r < 0)
      return r;
    if (u.kind != first.kind || (u.kind == MAP_DATA && u.host != expect))
      break;
  }
  m->len = pos - off;
  if (m->len > max)
    m->len = max;
  if (m->kind == MAP_DATA && !ck_range_ok(m->host_off, m->len, img->io.size))
    return bfs_error(-EIO, "%s: data for guest offset %#" PRIx64 " at host "
                     "offset %#" PRIx64 " (+%" PRIu64 ") lies past the end of "
                     "the file (%" PRIu64 " bytes): image is truncated or "
                     "corrupt", img->name, off, m->host_off, m->len,
                     img->io.size);
  return 0;
}

int
img_map(img_t *img, uint64_t off, uint64_t max, struct img_map *m)
{
  const struct img_info *in = &img->info;
  int r;

  memset(m, 0, sizeof *m);
  if (off >= in->virtual_size || max == 0)
    return bfs_error(-EINVAL, "%s: mapping offset %#" PRIx64 " outside the "
                     "image", img->name, off);
  if (max > in->virtual_size - off)
    max = in->virtual_size - off;
  if (in->format == IMG_FORMAT_RAW) {
    /* holes of a sparse raw file read as zeros: say so, so the map (and
     * SEEK_HOLE, sparse copies) sees them; so does the tail of the last
     * sector past the end of a file that is not a multiple of 512 */
    bool data = true;
    uint64_t len;
    if (off >= img->io.size) {
      m->kind = MAP_ZERO;
      m->len = max;
      return 0;
    }
    if (max > img->io.size - off)
      max = img->io.size - off;
    len = max;
    if (img_io_file_status(&img->io, off, max, &data, &len) < 0 || len == 0) {
      data = true;
      len = max;
    }
    m->kind = data ? MAP_DATA : MAP_ZERO;
    m->host_off = off;
    m->len = len;
    return 0;
  }
  if (in->encrypted)
    return bfs_error(-ENOTSUP, "%s: encrypted qcow2 (LUKS/AES) is not "
                     "supported", img->name);
  if (in->external_data)
    return bfs_error(-ENOTSUP, "%s: qcow2 with an external data file is not "
                     "supported", img->name);
  pthread_mutex_lock(&img->lock);
  r = map_qcow2(img, off, max, m);
  pthread_mutex_unlock(&img->lock);
  return r;
}

/* ---- decompression ---- */

static pthread_key_t zlib_key, zstd_key;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;

static void
free_zlib(void *p)
{
  inflateEnd(p);
  free(p);
}

static void
free_zstd(void *p)
{
  ZSTD_freeDCtx(p);
}

static void
make_keys(void)
{
  pthread_key_create(&zlib_key, free_zlib);
  pthread_key_create(&zstd_key, free_zstd);
}

static int
inflate_raw(img_t *img, const void *in, size_t inlen, void *out,
            size_t outlen)
{
  z_stream *z = pthread_getspecific(zlib_key);
  int r;

  if (!z) {
    z = calloc(1, sizeof *z);
    if (!z || inflateInit2(z, -15) != Z_OK) {
      free(z);
      return bfs_error(-ENOMEM, "%s: cannot set up zlib", img->name);
    }
    pthread_setspecific(zlib_key, z);
  }
  else if (inflateReset(z) != Z_OK)
    return bfs_error(-EIO, "%s: zlib reset failed", img->name);
  z->next_in = (Bytef *)in;
  z->avail_in = (uInt)inlen;
  z->next_out = out;
  z->avail_out = (uInt)outlen;
  r = inflate(z, Z_FINISH);
  /* exactly one cluster: the output filled and the stream ended there
   * (trailing input is sector padding).  When the output filled before
   * inflate saw the end, one more byte of room tells a stream that ends
   * right there from one that decodes to more than a cluster. */
  if (z->avail_out != 0)
    return -EIO;                    /* less than a cluster, or bad data */
  if (r == Z_STREAM_END)
    return 0;
  if (r != Z_BUF_ERROR && r != Z_OK)
    return -EIO;
  unsigned char extra;
  z->next_out = &extra;
  z->avail_out = 1;
  r = inflate(z, Z_FINISH);
  return r == Z_STREAM_END && z->avail_out == 1 ? 0 : -EIO;
}

static int
unzstd(img_t *img, const void *in, size_t inlen, void *out, size_t outlen)
{
  ZSTD_DCtx *d = pthread_getspecific(zstd_key);
  ZSTD_inBuffer ib = { in, inlen, 0 };
  ZSTD_outBuffer ob = { out, outlen, 0 };

  if (!d) {
    d = ZSTD_createDCtx();
    if (!d)
      return bfs_error(-ENOMEM, "%s: cannot set up zstd", img->name);
    /* a cluster is at most 2 MiB: refuse frames that ask for huge windows */
    ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 24);
    pthread_setspecific(zstd_key, d);
  }
  ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
  /* exactly one cluster, from one frame: a frame that ends early is less
   * than a cluster (the bytes after it are sector padding, not a second
   * frame); one still going when the cluster is full is more (a bomb is
   * refused after one cluster of work) */
  size_t r = 1;
  while (ob.pos < ob.size) {
    size_t last_in = ib.pos, last_out = ob.pos;
    r = ZSTD_decompressStream(d, &ob, &ib);
    if (ZSTD_isError(r))
      return -EIO;
    if (r == 0 && ob.pos < ob.size)
      return -EIO;                  /* the frame ended short of a cluster */
    if (ib.pos == last_in && ob.pos == last_out)
      return -EIO;                  /* input exhausted before the output */
  }
  if (r != 0) {
    /* the frame has not said it ended: one more byte of room */
    unsigned char extra;
    ZSTD_outBuffer eb = { &extra, 1, 0 };
    for (;;) {
      size_t last_in = ib.pos;
      r = ZSTD_decompressStream(d, &eb, &ib);
      if (ZSTD_isError(r) || eb.pos != 0)
        return -EIO;                /* more than one cluster */
      if (r == 0)
        break;
      if (ib.pos == last_in)
        return -EIO;                /* frame truncated */
    }
  }
  return 0;
}

int
img_decompress(img_t *img, const struct img_map *m, void *out)
{
  CLEANUP_FREE void *in = NULL;
  int r;

  in = malloc(m->csize ? m->csize : 1);
  if (!in)
    return bfs_error(-ENOMEM, "%s: out of memory", img->name);
  r = img_read_host(img, in, m->csize, m->host_off, "compressed cluster");
  if (r < 0)
    return r;
  return img_decompress_buf(img, m, in, out);
}

int
img_decompress_buf(img_t *img, const struct img_map *m, const void *in,
                   void *out)
{
  int r;

  pthread_once(&keys_once, make_keys);
  if (img->info.compression == IMG_COMPRESSION_ZSTD)
    r = unzstd(img, in, m->csize, out, img->cluster_size);
  else
    r = inflate_raw(img, in, m->csize, out, img->cluster_size);
  if (r == -EIO)
    return bfs_error(-EIO, "%s: compressed cluster at guest offset %#" PRIx64
                     " (host %#" PRIx64 ", %" PRIu64 " bytes) does not "
                     "decompress to exactly one cluster (%s): image is "
                     "corrupt", img->name,
                     m->cl_off, m->host_off, m->csize,
                     img->info.compression == IMG_COMPRESSION_ZSTD ? "zstd"
                     : "zlib");
  return r;
}

int
img_check(img_t *img)
{
  const uint64_t vs = img->info.virtual_size;
  CLEANUP_FREE void *buf = NULL;
  struct img_map m;
  int r;

  if (img->info.format == IMG_FORMAT_RAW)
    return 0;
  buf = malloc(img->cluster_size);
  if (!buf)
    return bfs_error(-ENOMEM, "%s: out of memory", img->name);
  for (uint64_t off = 0; off < vs; off += m.len) {
    r = img_map(img, off, vs - off, &m);
    if (r < 0)
      return r;
    if (m.kind == MAP_COMPRESSED && (r = img_decompress(img, &m, buf)) < 0)
      return r;
  }
  return 0;
}
