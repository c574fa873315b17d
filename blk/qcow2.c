/* qcow2.c — the qcow2 driver's open: header, extensions, backing name.
 *
 * Opening reads the first cluster at most (4 KiB first; the rest only when
 * the extensions go on), so scanning thousands of files stays cheap.  Every
 * field is checked here once, with the limits of qcow2.h:
 *   - version 2 or 3; unknown incompatible bits, legacy AES encryption and
 *     external data files are refused by name; LUKS (blk/luks-qcow2.c)
 *     opens its header here, reads need the key;
 *   - cluster bits 9..21; the L1 table aligned, inside the file, under the
 *     cap and big enough for the virtual size;
 *   - the backing name lies inside the first cluster (QEMU refuses it
 *     elsewhere), 1..1023 bytes, no NUL;
 *   - the virtual size is the recorded size rounded down to 512 bytes, as
 *     QEMU reports it.
 * The backing is whatever bfs_blk the caller stacked below; a recorded
 * backing format that differs from that blk's format is refused.
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

static uint32_t be32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static uint64_t be64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }

int
qcow2_header_decode(const unsigned char *p, size_t len, struct qcow2_header *h)
{
  memset(h, 0, sizeof *h);
  if (len < QCOW2_V2_HEADER_LEN)
    return -EIO;
  h->magic = be32(p);
  h->version = be32(p + 4);
  h->backing_file_offset = be64(p + 8);
  h->backing_file_size = be32(p + 16);
  h->cluster_bits = be32(p + 20);
  h->size = be64(p + 24);
  h->crypt_method = be32(p + 32);
  h->l1_size = be32(p + 36);
  h->l1_table_offset = be64(p + 40);
  h->refcount_table_offset = be64(p + 48);
  h->refcount_table_clusters = be32(p + 56);
  h->nb_snapshots = be32(p + 60);
  h->snapshots_offset = be64(p + 64);
  h->header_length = QCOW2_V2_HEADER_LEN;
  if (h->version < 3)
    return 0;
  if (len < QCOW2_V3_HEADER_LEN)
    return -EIO;
  h->incompatible_features = be64(p + 72);
  h->compatible_features = be64(p + 80);
  h->autoclear_features = be64(p + 88);
  h->refcount_order = be32(p + 96);
  h->header_length = be32(p + 100);
  if (h->header_length > QCOW2_V3_HEADER_LEN && len > QCOW2_V3_HEADER_LEN)
    h->compression_type = p[104];
  return 0;
}

static char *
dup_name(const unsigned char *p, size_t len)
{
  char *s = malloc(len + 1);
  if (s) {
    memcpy(s, p, len);
    s[len] = '\0';
  }
  return s;
}

/* Header extensions in hdr[start, len).  -EAGAIN: read the whole cluster. */
static int
parse_extensions(struct qcow2 *q, const unsigned char *hdr, size_t len,
                 size_t start, bool partial)
{
  size_t pos = start;
  int r;

  while (pos + 8 <= len) {
    uint32_t type = be32(hdr + pos), elen = be32(hdr + pos + 4);
    size_t padded = ((size_t)elen + 7) & ~(size_t)7;

    pos += 8;
    if (type == QCOW2_EXT_END)
      return 0;
    if (padded > len - pos)
      return partial ? -EAGAIN
             : bfs_error(-EIO, "%s: header extension %#x (%u bytes) runs "
                         "past the first cluster", q->b.name, type, elen);
    switch (type) {
    case QCOW2_EXT_BACKING_FORMAT:
      if (elen == 0 || elen > QCOW2_MAX_FORMAT_NAME ||
          memchr(hdr + pos, 0, elen))
        return bfs_error(-EIO, "%s: invalid backing format extension",
                         q->b.name);
      free(q->backing_format);
      if (!(q->backing_format = dup_name(hdr + pos, elen)))
        return bfs_error(-ENOMEM, "%s: out of memory", q->b.name);
      break;
    case QCOW2_EXT_CRYPTO:          /* LUKS: blk/luks-qcow2.c */
      if ((r = qcow2_luks_ext(q, hdr + pos, elen)) < 0)
        return r;
      break;
    case QCOW2_EXT_DATA_FILE:
      q->b.info.external_data = true;
      break;
    default:
      break;                      /* feature names, bitmaps: ignored */
    }
    pos += padded;
  }
  return partial ? -EAGAIN : 0;   /* no end marker: stop at the cluster end */
}

static int
check_features(struct qcow2 *q)
{
  const struct qcow2_header *h = &q->h;
  const char *n = q->b.name;
  uint64_t inc = h->incompatible_features;

  if (h->version != 2 && h->version != 3)
    return bfs_error(-ENOTSUP, "%s: unsupported qcow2 version %u", n,
                     h->version);
  if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
      h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
    return bfs_error(-EIO, "%s: cluster bits %u out of range (%d..%d)", n,
                     h->cluster_bits, QCOW2_MIN_CLUSTER_BITS,
                     QCOW2_MAX_CLUSTER_BITS);
  q->cluster_bits = h->cluster_bits;
  q->cluster_size = 1ull << h->cluster_bits;
  if (h->version == 3) {
    if (h->header_length < QCOW2_V3_HEADER_LEN ||
        h->header_length > q->cluster_size)
      return bfs_error(-EIO, "%s: invalid qcow2 header length %u", n,
                       h->header_length);
    if (h->refcount_order > QCOW2_MAX_REFCOUNT_ORDER)
      return bfs_error(-EIO, "%s: invalid refcount order %u", n,
                       h->refcount_order);
  }
  if (inc & ~QCOW2_INCOMPAT_KNOWN)
    return bfs_error(-ENOTSUP, "%s: unknown incompatible qcow2 feature bits "
                     "%#" PRIx64 ": refusing to read", n,
                     (uint64_t)(inc & ~QCOW2_INCOMPAT_KNOWN));
  if (inc & QCOW2_INCOMPAT_CORRUPT)
    bfs_log(BFS_LOG_WARN, "%s: image is marked corrupt by QEMU; reading "
            "with full checks", n);
  q->extended_l2 = inc & QCOW2_INCOMPAT_EXTL2;
  q->b.info.external_data = inc & QCOW2_INCOMPAT_DATA_FILE;
  q->compression = QCOW2_COMPRESSION_ZLIB;
  if ((inc & QCOW2_INCOMPAT_COMPRESSION) && h->header_length <= 104)
    return bfs_error(-EIO, "%s: compression type bit set but header has no "
                     "compression type field", n);
  if (h->header_length > 104) {
    if (h->compression_type == 1)
      q->compression = QCOW2_COMPRESSION_ZSTD;
    else if (h->compression_type != 0)
      return bfs_error(-ENOTSUP, "%s: unknown compression type %u", n,
                       h->compression_type);
    if (h->compression_type && !(inc & QCOW2_INCOMPAT_COMPRESSION))
      return bfs_error(-EIO, "%s: compression type %u without its "
                       "incompatible feature bit", n, h->compression_type);
  }
  if (h->crypt_method > 2)
    return bfs_error(-EIO, "%s: invalid encryption method %u", n,
                     h->crypt_method);
  if (h->crypt_method)
    q->b.info.encrypted = true;
  return 0;
}

/* Read the first cluster's header part and its extensions. */
static int
read_header(struct qcow2 *q)
{
  unsigned char hdr0[112] = { 0 };
  CLEANUP_FREE unsigned char *hdr = NULL;
  size_t hdr_read, n;
  int r;

  if (q->file_size < QCOW2_V2_HEADER_LEN)
    return bfs_error(-EIO, "%s: qcow2 header truncated (file is %" PRIu64
                     " bytes)", q->b.name, q->file_size);
  n = q->file_size < sizeof hdr0 ? (size_t)q->file_size : sizeof hdr0;
  if ((r = blk_io_read(q->io, hdr0, n, 0, "qcow2 header")) < 0)
    return r;
  if (qcow2_header_decode(hdr0, n, &q->h) < 0)
    return bfs_error(-EIO, "%s: qcow2 v3 header truncated", q->b.name);
  if (q->h.magic != QCOW2_MAGIC)
    return bfs_error(-EIO, "%s: recorded as qcow2 but has no qcow2 magic",
                     q->b.name);
  if ((r = check_features(q)) < 0)
    return r;

  hdr_read = (size_t)(q->cluster_size < q->file_size ? q->cluster_size
                      : q->file_size);
  if (hdr_read < q->h.header_length)
    return bfs_error(-EIO, "%s: qcow2 header truncated", q->b.name);
  for (size_t want = hdr_read < 4096 ? hdr_read : 4096;; want = hdr_read) {
    free(hdr);
    if (!(hdr = malloc(want)))
      return bfs_error(-ENOMEM, "%s: out of memory", q->b.name);
    if ((r = blk_io_read(q->io, hdr, want, 0, "qcow2 header")) < 0)
      return r;
    r = parse_extensions(q, hdr, want, q->h.header_length, want < hdr_read);
    if (r != -EAGAIN)
      return r;
  }
}

static int
read_backing_name(struct qcow2 *q)
{
  const struct qcow2_header *h = &q->h;
  CLEANUP_FREE unsigned char *name = NULL;
  int r;

  if (h->backing_file_offset == 0) {
    free(q->backing_format);      /* meaningless without a backing file */
    q->backing_format = NULL;
    return 0;
  }
  if (h->backing_file_size == 0 ||
      h->backing_file_size > QCOW2_MAX_BACKING_NAME)
    return bfs_error(-EIO, "%s: backing file name length %u out of range "
                     "(1..%d)", q->b.name, h->backing_file_size,
                     QCOW2_MAX_BACKING_NAME);
  if (!ck_range_ok(h->backing_file_offset, h->backing_file_size,
                   q->cluster_size))
    return bfs_error(-EIO, "%s: backing file name at offset %#" PRIx64
                     " (+%u) lies outside the first cluster (%" PRIu64
                     " bytes): image is corrupt", q->b.name,
                     h->backing_file_offset, h->backing_file_size,
                     q->cluster_size);
  if (!(name = malloc(h->backing_file_size)))
    return bfs_error(-ENOMEM, "%s: out of memory", q->b.name);
  r = blk_io_read(q->io, name, h->backing_file_size, h->backing_file_offset,
                  "backing file name");
  if (r < 0)
    return r;
  if (memchr(name, 0, h->backing_file_size))
    return bfs_error(-EIO, "%s: backing file name contains a NUL byte",
                     q->b.name);
  if (!(q->backing_file = dup_name(name, h->backing_file_size)))
    return bfs_error(-ENOMEM, "%s: out of memory", q->b.name);
  return 0;
}

static int
check_geometry(struct qcow2 *q)
{
  const struct qcow2_header *h = &q->h;
  const unsigned cb = q->cluster_bits;
  uint64_t l1_bytes = (uint64_t)h->l1_size * 8, l2_cover, need_l1;

  if (h->size > QCOW2_MAX_VIRTUAL_SIZE)
    return bfs_error(-EIO, "%s: virtual size %" PRIu64 " is absurd",
                     q->b.name, h->size);
  q->l2_bits = cb - (q->extended_l2 ? 4 : 3);
  if (q->extended_l2 && cb < 14)
    return bfs_error(-EIO, "%s: extended L2 needs clusters of at least "
                     "16 KiB (cluster bits %u)", q->b.name, cb);
  q->sc_bits = q->extended_l2 ? cb - 5 : cb;
  q->csize_shift = 62 - (cb - 8);
  q->csize_mask = (1ull << (cb - 8)) - 1;
  q->coffset_mask = (1ull << q->csize_shift) - 1;

  l2_cover = 1ull << (cb + q->l2_bits);
  need_l1 = (h->size + l2_cover - 1) / l2_cover;
  if (l1_bytes > QCOW2_MAX_L1_BYTES)
    return bfs_error(-EIO, "%s: L1 table of %u entries exceeds the limit "
                     "(%u bytes)", q->b.name, h->l1_size, QCOW2_MAX_L1_BYTES);
  if (h->l1_size < need_l1)
    return bfs_error(-EIO, "%s: L1 table too small (%u entries) for virtual "
                     "size %" PRIu64, q->b.name, h->l1_size, h->size);
  if (h->l1_size > 0) {
    if (h->l1_table_offset & (q->cluster_size - 1))
      return bfs_error(-EIO, "%s: L1 table offset %#" PRIx64 " not aligned "
                       "to a cluster", q->b.name, h->l1_table_offset);
    if (!ck_range_ok(h->l1_table_offset, l1_bytes, q->file_size))
      return bfs_error(-EIO, "%s: L1 table at %#" PRIx64 " (%" PRIu64
                       " bytes) lies past the end of the file (%" PRIu64
                       " bytes)", q->b.name, h->l1_table_offset, l1_bytes,
                       q->file_size);
  }
  return 0;
}

static int
check_backing(struct qcow2 *q, struct bfs_blk *backing)
{
  if (!backing)
    return 0;
  if (!q->backing_file)
    return bfs_error(-EINVAL, "%s: has no backing file, but a backing layer "
                     "was given", q->b.name);
  if (q->backing_format && strcmp(q->backing_format, backing->info.format))
    return bfs_error(-EIO, "%s: backing file '%s' is recorded as %s but its "
                     "layer is %s", q->b.name, q->backing_file,
                     q->backing_format, backing->info.format);
  return 0;
}

static void
qcow2_close(struct bfs_blk *b)
{
  struct qcow2 *q = (struct qcow2 *)b;
  qcow2_map_free(q);
  qcow2_comp_free(q);
  qcow2_luks_free(q);
  pthread_mutex_destroy(&q->lock);
  pthread_mutex_destroy(&q->ctx_lock);
  blk_io_close(q->io);
  free(q->backing_file);
  free(q->backing_format);
  free(q);
}

static const struct bfs_blk_ops qcow2_ops = {
  .name = "qcow2",
  .pread = qcow2_pread,
  .block_status = qcow2_block_status,
  .prefetch = qcow2_prefetch,
  .close = qcow2_close,
};

int
blk_qcow2_open(struct blk_io *io, const char *options,
               struct bfs_blk *backing, struct bfs_blk **out)
{
  return blk_qcow2_open_key(io, options, NULL, backing, out);
}

int
blk_qcow2_open_key(struct blk_io *io, const char *options,
                   const struct blk_key *key, struct bfs_blk *backing,
                   struct bfs_blk **out)
{
  struct qcow2 *q = calloc(1, sizeof *q);
  int r;

  *out = NULL;
  if (!q) {
    r = bfs_error(-ENOMEM, "%s: out of memory", blk_io_name(io));
    bfs_blk_close(backing);
    blk_io_close(io);
    return r;
  }
  q->io = io;
  q->b.ops = &qcow2_ops;
  q->b.name = blk_io_name(io);
  q->b.below = backing;              /* owned from here on */
  q->file_size = blk_io_size(io);
  pthread_mutex_init(&q->lock, NULL);
  pthread_mutex_init(&q->ctx_lock, NULL);
  if (options && *options)
    r = bfs_error(-EINVAL, "%s: qcow2 driver: unknown options '%s'",
                  q->b.name, options);
  else if (q->file_size == 0)
    r = bfs_error(-EIO, "%s: empty file, not a disk image", q->b.name);
  else if ((r = read_header(q)) == 0 && (r = read_backing_name(q)) == 0 &&
           (r = check_geometry(q)) == 0 && (r = qcow2_luks_open(q, key)) == 0)
    r = check_backing(q, backing);
  if (r < 0) {
    bfs_blk_close(&q->b);
    return r;
  }
  q->b.size = q->h.size & ~511ull;   /* QEMU counts whole sectors */
  const bool encrypted = q->b.info.encrypted;
  const bool external = q->b.info.external_data;
  q->b.info = (struct bfs_blk_info){
    .format = "qcow2", .version = (int)q->h.version,
    .virtual_size = q->b.size, .file_size = q->file_size,
    .cluster_bits = q->cluster_bits,
    .compression = q->compression == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib",
    .extended_l2 = q->extended_l2, .encrypted = encrypted,
    .encryption = !encrypted ? NULL : q->luks ? "luks" : "aes",
    .cipher = q->luks ? blk_luks_cipher(q->luks) : NULL,
    .key_missing = q->luks && !blk_luks_has_key(q->luks),
    .external_data = external,
    .backing_file = q->backing_file, .backing_format = q->backing_format,
  };
  *out = &q->b;
  return 0;
}
