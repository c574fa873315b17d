/* luks-qcow2.c — LUKS-encrypted qcow2 (crypt_method 2): the qcow2 driver's
 * hooks into blk/luks.c.
 *
 * The full disk encryption header extension (0x0537be77, 16 bytes: offset
 * and length of the LUKS header inside the qcow2 file, big-endian) is
 * checked against the file: the offset cluster-aligned and past the
 * header cluster, the range inside the file and under BLK_LUKS_MAX_HEADER.
 * A crypt_method 2 image without it, an extension without crypt_method 2,
 * or two of them are corruption.
 *
 * Data clusters hold ciphertext; QEMU encrypts each 512-byte sector with
 * the sector's *host* offset / 512 as IV (crypt_physical_offset for LUKS,
 * docs/interop/qcow2.txt), so reads align to whole sectors around the
 * request, decrypt, and copy out.  Block status of encrypted data is not
 * plain bytes (fd -1) with the cluster as decode unit, so the caching
 * filter reads it through the driver.  Compressed clusters never occur in
 * an encrypted image (QEMU refuses to write them): qcow2_map reports them
 * as corruption.
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

int
qcow2_luks_ext(struct qcow2 *q, const unsigned char *p, uint32_t len)
{
  uint64_t v[2];

  if (q->crypto_ext)
    return bfs_error(-EIO, "%s: two full disk encryption header extensions",
                     q->b.name);
  if (len != 16)
    return bfs_error(-EIO, "%s: full disk encryption header extension of %u "
                     "bytes (16 expected)", q->b.name, len);
  memcpy(v, p, 16);
  q->crypto_ext = true;
  q->crypto_off = be64toh(v[0]);
  q->crypto_len = be64toh(v[1]);
  return 0;
}

int
qcow2_luks_open(struct qcow2 *q, const struct blk_key *key)
{
  CLEANUP_FREE unsigned char *hdr = NULL;
  const char *n = q->b.name;
  int r;

  if (q->crypto_ext && q->h.crypt_method != 2)
    return bfs_error(-EIO, "%s: full disk encryption header extension in an "
                     "image with encryption method %u (LUKS is 2)", n,
                     q->h.crypt_method);
  if (q->h.crypt_method != 2)
    return 0;
  if (!q->crypto_ext)
    return bfs_error(-EIO, "%s: LUKS-encrypted qcow2 without its full disk "
                     "encryption header extension", n);
  if (q->crypto_off < q->cluster_size ||
      (q->crypto_off & (q->cluster_size - 1)) || q->crypto_len == 0 ||
      q->crypto_len > BLK_LUKS_MAX_HEADER)
    return bfs_error(-EIO, "%s: LUKS header at %#" PRIx64 " (+%" PRIu64
                     ") is not a valid place (cluster-aligned, past the "
                     "header, 1..%u bytes)", n, q->crypto_off, q->crypto_len,
                     BLK_LUKS_MAX_HEADER);
  if (!ck_range_ok(q->crypto_off, q->crypto_len, q->file_size))
    return bfs_error(-EIO, "%s: LUKS header at %#" PRIx64 " (+%" PRIu64
                     ") lies past the end of the file (%" PRIu64 " bytes): "
                     "image is truncated", n, q->crypto_off, q->crypto_len,
                     q->file_size);
  if (!(hdr = malloc(q->crypto_len)))
    return bfs_error(-ENOMEM, "%s: out of memory", n);
  if ((r = blk_io_read(q->io, hdr, q->crypto_len, q->crypto_off,
                       "LUKS header")) < 0)
    return r;
  return blk_luks_open(hdr, q->crypto_len, key, n, &q->luks);
}

int
qcow2_luks_read(struct qcow2 *q, unsigned char *buf, size_t len,
                uint64_t off, uint64_t host)
{
  const uint64_t head = off & (BLK_LUKS_SECTOR - 1);
  const uint64_t hs = host - head;
  const size_t alen = (size_t)((head + len + BLK_LUKS_SECTOR - 1) &
                               ~(uint64_t)(BLK_LUKS_SECTOR - 1));
  CLEANUP_FREE unsigned char *tmp = NULL;
  unsigned char *p = buf;
  int r;

  if (!q->luks || q->h.crypt_method != 2)
    return bfs_error(-ENOTSUP, "%s: encrypted qcow2 (legacy AES, method %u) "
                     "is not supported", q->b.name, q->h.crypt_method);
  if (!blk_luks_has_key(q->luks))
    return bfs_error(-ENOKEY, "%s: " BLK_LUKS_NEED_KEY, q->b.name);
  if ((host & (BLK_LUKS_SECTOR - 1)) != head)
    return bfs_error(-EIO, "%s: encrypted data for guest offset %#" PRIx64
                     " at an unaligned host offset %#" PRIx64, q->b.name,
                     off, host);
  if (head || alen != len) {
    if (!(tmp = malloc(alen)))
      return bfs_error(-ENOMEM, "%s: out of memory", q->b.name);
    p = tmp;
  }
  if ((r = blk_io_read(q->io, p, alen, hs, "encrypted data")) < 0)
    return r;
  if ((r = blk_luks_decrypt(q->luks, p, alen, hs / BLK_LUKS_SECTOR)) < 0)
    return bfs_error_prefix(r, "%s: guest offset %#" PRIx64 ": ", q->b.name,
                            off);
  if (tmp)
    memcpy(buf, tmp + head, len);
  return 0;
}

void
qcow2_luks_status(struct qcow2 *q, uint64_t off, struct bfs_blk_status *st)
{
  const uint64_t cs = q->cluster_size, size = q->b.size;
  const uint64_t u = off & ~(cs - 1);

  st->fd = -1;
  st->fd_off = 0;
  st->unit_off = u;
  st->unit_len = cs < size - u ? cs : size - u;
  if (st->len > u + st->unit_len - off)
    st->len = u + st->unit_len - off;
}

void
qcow2_luks_free(struct qcow2 *q)
{
  blk_luks_free(q->luks);
  q->luks = NULL;
}
