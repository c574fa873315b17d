/* img.c — opening one image file: format probe, qcow2 header and header
 * extensions, raw images.
 *
 * Opening reads only the first cluster's worth of header (plus the backing
 * name), so scanning thousands of files is cheap.  Every field from the file
 * is range-checked here once; later code (map.c) relies on the geometry in
 * struct img being sane: cluster bits 9..21, L1 inside the file and under
 * QCOW2_MAX_L1_BYTES, big enough for the virtual size.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "image/internal.h"

#define EXT_END 0x00000000u
#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_CRYPTO 0x0537be77u
#define EXT_DATA_FILE 0x44415441u
#define MAX_FORMAT_NAME 31

static uint32_t be32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static uint64_t be64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }

int
img_read_host(img_t *img, void *buf, size_t len, uint64_t off,
              const char *what)
{
  int r;

  if (!ck_range_ok(off, len, img->io.size))
    return bfs_error(-EIO, "%s: %s at offset %#" PRIx64 " (+%zu) lies past "
                     "the end of the file (%" PRIu64 " bytes): image is "
                     "truncated or corrupt", img->name, what, off, len,
                     img->io.size);
  r = img->io.pread(img->io.opaque, buf, len, off);
  if (r < 0)
    return bfs_error(r, "%s: reading %s at offset %#" PRIx64 ": %s",
                     img->name, what, off, strerror(-r));
  return 0;
}

/* A printable copy of a name from the file (backing file, format). */
static char *
dup_name(const unsigned char *p, size_t len)
{
  char *s = malloc(len + 1);
  if (!s)
    return NULL;
  memcpy(s, p, len);
  s[len] = '\0';
  return s;
}

static int
parse_extensions(img_t *img, const unsigned char *hdr, size_t hdr_len,
                  size_t start, bool partial)
{
  size_t pos = start;

  while (pos + 8 <= hdr_len) {
    uint32_t type = be32(hdr + pos), len = be32(hdr + pos + 4);
    size_t padded = ((size_t)len + 7) & ~(size_t)7;

    pos += 8;
    if (type == EXT_END)
      return 0;
    if (padded > hdr_len - pos && partial)
      return -EAGAIN;               /* read the whole first cluster */
    if (padded > hdr_len - pos)
      return bfs_error(-EIO, "%s: header extension %#x (%u bytes) runs past "
                       "the first cluster", img->name, type, len);
    switch (type) {
    case EXT_BACKING_FORMAT:
      if (len == 0 || len > MAX_FORMAT_NAME || memchr(hdr + pos, 0, len))
        return bfs_error(-EIO, "%s: invalid backing format extension",
                         img->name);
      free(img->info.backing_format);
      img->info.backing_format = dup_name(hdr + pos, len);
      if (!img->info.backing_format)
        return bfs_error(-ENOMEM, "%s: out of memory", img->name);
      break;
    case EXT_CRYPTO:
      img->info.encrypted = true;
      break;
    case EXT_DATA_FILE:
      img->info.external_data = true;
      break;
    default:
      break;                      /* feature names, bitmaps, ...: ignored */
    }
    pos += padded;
  }
  /* running off the cluster without an end marker: tolerated like QEMU
   * (it stops at the cluster end too) */
  return partial ? -EAGAIN : 0;
}

static int
open_qcow2(img_t *img)
{
  const uint64_t fsize = img->io.size;
  struct img_info *in = &img->info;
  unsigned char hdr0[112] = { 0 };
  CLEANUP_FREE unsigned char *hdr = NULL;
  uint64_t backing_off, l1_bytes, need_l1, l2_cover, incompat;
  uint32_t backing_len, crypt, hdr_len;
  unsigned cb;
  size_t hdr_read;
  int r;

  if (fsize < 72)
    return bfs_error(-EIO, "%s: qcow2 header truncated (file is %" PRIu64
                     " bytes)", img->name, fsize);
  r = img_read_host(img, hdr0, fsize < sizeof hdr0 ? (size_t)fsize
                    : sizeof hdr0, 0, "qcow2 header");
  if (r < 0)
    return r;

  in->format = IMG_FORMAT_QCOW2;
  in->version = (int)be32(hdr0 + 4);
  if (in->version != 2 && in->version != 3)
    return bfs_error(-ENOTSUP, "%s: unsupported qcow2 version %u", img->name,
                     be32(hdr0 + 4));
  backing_off = be64(hdr0 + 8);
  backing_len = be32(hdr0 + 16);
  cb = be32(hdr0 + 20);
  in->virtual_size = be64(hdr0 + 24);
  crypt = be32(hdr0 + 32);
  img->l1_size = be32(hdr0 + 36);
  img->l1_offset = be64(hdr0 + 40);

  if (cb < QCOW2_MIN_CLUSTER_BITS || cb > QCOW2_MAX_CLUSTER_BITS)
    return bfs_error(-EIO, "%s: cluster bits %u out of range (%d..%d)",
                     img->name, cb, QCOW2_MIN_CLUSTER_BITS,
                     QCOW2_MAX_CLUSTER_BITS);
  in->cluster_bits = cb;
  img->cluster_size = 1ull << cb;

  hdr_len = 72;
  incompat = 0;
  if (in->version == 3) {
    if (fsize < 104)
      return bfs_error(-EIO, "%s: qcow2 v3 header truncated", img->name);
    incompat = be64(hdr0 + 72);
    hdr_len = be32(hdr0 + 100);
    if (hdr_len < 104 || hdr_len > img->cluster_size)
      return bfs_error(-EIO, "%s: invalid qcow2 header length %u", img->name,
                       hdr_len);
    if (be32(hdr0 + 96) > 6)
      return bfs_error(-EIO, "%s: invalid refcount order %u", img->name,
                       be32(hdr0 + 96));
  }
  if (incompat & ~QCOW2_INCOMPAT_KNOWN)
    return bfs_error(-ENOTSUP, "%s: unknown incompatible qcow2 feature bits "
                     "%#" PRIx64 ": refusing to read", img->name,
                     (uint64_t)(incompat & ~QCOW2_INCOMPAT_KNOWN));
  if (incompat & QCOW2_INCOMPAT_CORRUPT)
    bfs_log(BFS_LOG_WARN, "%s: image is marked corrupt by QEMU; reading "
            "with full checks", img->name);
  in->extended_l2 = incompat & QCOW2_INCOMPAT_EXTL2;
  in->external_data = incompat & QCOW2_INCOMPAT_DATA_FILE;
  in->compression = IMG_COMPRESSION_ZLIB;
  if (incompat & QCOW2_INCOMPAT_COMPRESSION) {
    if (hdr_len < 105)
      return bfs_error(-EIO, "%s: compression type bit set but header has "
                       "no compression type field", img->name);
  }
  if (hdr_len >= 105) {
    unsigned ct = hdr0[104];
    if (ct == 1)
      in->compression = IMG_COMPRESSION_ZSTD;
    else if (ct != 0)
      return bfs_error(-ENOTSUP, "%s: unknown compression type %u", img->name,
                       ct);
    if (ct != 0 && !(incompat & QCOW2_INCOMPAT_COMPRESSION))
      return bfs_error(-EIO, "%s: compression type %u without its "
                       "incompatible feature bit", img->name, ct);
  }
  if (crypt > 2)
    return bfs_error(-EIO, "%s: invalid encryption method %u", img->name,
                     crypt);
  if (crypt != 0)
    in->encrypted = true;

  /* the first cluster holds the header and its extensions; they are
   * usually tiny, so read 4 KiB first and the whole cluster only if the
   * extensions go on (scanning must stay cheap with 2 MiB clusters) */
  hdr_read = (size_t)(img->cluster_size < fsize ? img->cluster_size : fsize);
  if (hdr_read < hdr_len)
    return bfs_error(-EIO, "%s: qcow2 header truncated", img->name);
  for (size_t want = hdr_read < 4096 ? hdr_read : 4096;; want = hdr_read) {
    free(hdr);
    hdr = malloc(want);
    if (!hdr)
      return bfs_error(-ENOMEM, "%s: out of memory", img->name);
    r = img_read_host(img, hdr, want, 0, "qcow2 header");
    if (r < 0)
      return r;
    r = parse_extensions(img, hdr, want, hdr_len, want < hdr_read);
    if (r != -EAGAIN)
      break;
  }
  if (r < 0)
    return r;

  if (backing_off != 0) {
    CLEANUP_FREE unsigned char *name = NULL;
    if (backing_len == 0 || backing_len > QCOW2_MAX_BACKING_NAME)
      return bfs_error(-EIO, "%s: backing file name length %u out of range "
                       "(1..%d)", img->name, backing_len,
                       QCOW2_MAX_BACKING_NAME);
    /* the name belongs to the header cluster (QEMU refuses it elsewhere) */
    if (backing_off > img->cluster_size ||
        backing_len > img->cluster_size - backing_off)
      return bfs_error(-EIO, "%s: backing file name at offset %#" PRIx64
                       " (+%u) lies beyond the first cluster (%" PRIu64
                       " bytes)", img->name, backing_off, backing_len,
                       img->cluster_size);
    name = malloc(backing_len);
    if (!name)
      return bfs_error(-ENOMEM, "%s: out of memory", img->name);
    r = img_read_host(img, name, backing_len, backing_off, "backing file name");
    if (r < 0)
      return r;
    if (memchr(name, 0, backing_len))
      return bfs_error(-EIO, "%s: backing file name contains a NUL byte",
                       img->name);
    in->backing_file = dup_name(name, backing_len);
    if (!in->backing_file)
      return bfs_error(-ENOMEM, "%s: out of memory", img->name);
  }
  else if (in->backing_format) {
    free(in->backing_format);      /* meaningless without a backing file */
    in->backing_format = NULL;
  }

  /* geometry of the tables */
  if (in->virtual_size > QCOW2_MAX_VIRTUAL_SIZE)
    return bfs_error(-EIO, "%s: virtual size %" PRIu64 " is absurd",
                     img->name, in->virtual_size);
  /* QEMU counts whole 512-byte sectors: a qcow2 size is rounded down */
  in->virtual_size &= ~(uint64_t)511;
  img->l2_bits = cb - (in->extended_l2 ? 4 : 3);
  if (in->extended_l2) {
    if (cb < 14)
      return bfs_error(-EIO, "%s: extended L2 needs clusters of at least "
                       "16 KiB (cluster bits %u)", img->name, cb);
    img->sc_bits = cb - 5;
  }
  else
    img->sc_bits = cb;
  img->csize_shift = 62 - (cb - 8);
  img->csize_mask = (1ull << (cb - 8)) - 1;
  img->coffset_mask = (1ull << img->csize_shift) - 1;

  l2_cover = 1ull << (cb + img->l2_bits);
  need_l1 = (in->virtual_size + l2_cover - 1) / l2_cover;
  l1_bytes = (uint64_t)img->l1_size * 8;
  if (l1_bytes > QCOW2_MAX_L1_BYTES)
    return bfs_error(-EIO, "%s: L1 table of %u entries exceeds the limit "
                     "(%u bytes)", img->name, img->l1_size,
                     QCOW2_MAX_L1_BYTES);
  if (img->l1_size < need_l1)
    return bfs_error(-EIO, "%s: L1 table too small (%u entries) for virtual "
                     "size %" PRIu64, img->name, img->l1_size,
                     in->virtual_size);
  if (img->l1_size > 0) {
    if (img->l1_offset & (img->cluster_size - 1))
      return bfs_error(-EIO, "%s: L1 table offset %#" PRIx64 " not aligned "
                       "to a cluster", img->name, img->l1_offset);
    if (!ck_range_ok(img->l1_offset, l1_bytes, fsize))
      return bfs_error(-EIO, "%s: L1 table at %#" PRIx64 " (%" PRIu64
                       " bytes) lies past the end of the file (%" PRIu64
                       " bytes)", img->name, img->l1_offset, l1_bytes, fsize);
  }
  return 0;
}

int
img_open_io_fmt(struct img_io *io, const char *name, int fmt, img_t **out)
{
  img_t *img;
  unsigned char magic[4];
  int r;

  *out = NULL;
  img = calloc(1, sizeof *img);
  if (!img || !(img->name = strdup(name ? name : "(image)"))) {
    free(img);
    if (io->close)
      io->close(io->opaque);
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  }
  img->io = *io;
  pthread_mutex_init(&img->lock, NULL);
  img->info.file_size = io->size;

  if (io->size == 0) {
    r = bfs_error(-EIO, "%s: empty file, not a disk image", img->name);
    goto fail;
  }
  if (io->size >= 4) {
    r = img_read_host(img, magic, 4, 0, "magic");
    if (r < 0)
      goto fail;
  }
  if (fmt == IMG_FORMAT_QCOW2 && (io->size < 4 || be32(magic) != QCOW2_MAGIC)) {
    r = bfs_error(-EMEDIUMTYPE, "%s: not a qcow2 image (recorded as qcow2 "
                  "but has no qcow2 magic)", img->name);
    goto fail;
  }
  if (fmt != IMG_FORMAT_RAW && io->size >= 4 && be32(magic) == QCOW2_MAGIC) {
    r = open_qcow2(img);
    if (r < 0)
      goto fail;
  }
  else {
    img->info.format = IMG_FORMAT_RAW;
    /* QEMU rounds a raw file up to whole sectors; the tail reads as zeros
     * (img_map) */
    img->info.virtual_size = (io->size + 511) & ~(uint64_t)511;
  }
  *out = img;
  return 0;

fail:
  img_close(img);
  return r;
}

int
img_open_io(struct img_io *io, const char *name, img_t **out)
{
  return img_open_io_fmt(io, name, -1, out);
}

int
img_open_format(const char *path, int fmt, img_t **out)
{
  struct img_io io;
  int r;

  *out = NULL;
  r = img_io_file(path, &io);
  if (r < 0)
    return r;
  return img_open_io_fmt(&io, path, fmt, out);
}

int
img_open(const char *path, img_t **out)
{
  return img_open_format(path, -1, out);
}

const struct img_info *
img_get_info(const img_t *img)
{
  return &img->info;
}

const char *
img_name(const img_t *img)
{
  return img->name;
}

void
img_close(img_t *img)
{
  if (!img)
    return;
  if (img->io.close)
    img->io.close(img->io.opaque);
  for (unsigned i = 0; i < img->l2_slots; i++)
    free(img->l2[i].tab);
  free(img->l2);
  free(img->l1);
  pthread_mutex_destroy(&img->lock);
  free(img->info.backing_file);
  free(img->info.backing_format);
  free(img->name);
  free(img);
}
