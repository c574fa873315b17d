/* qcow2-stat.c — one walk over a qcow2 file's tables (see qcow2-stat.h).
 *
 * Independent of qcow2-map.c's L2 cache: the walk reads each L2 table into
 * one buffer of its own, so asking never disturbs the reader's cache and
 * holds no lock of the driver.  Offsets are checked like the reader does
 * (inside the file, cluster-aligned); a bad one is an error, never a guess.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blk/qcow2-stat.h"
#include "blk/qcow2.h"
#include "common/error.h"

int
blk_qcow2_compression(struct bfs_blk *b, const char **out)
{
  const struct bfs_blk_info *in = bfs_blk_info(b);
  if (!in->format || strcmp(in->format, "qcow2"))
    return bfs_error(-EINVAL, "%s: not a qcow2 layer", b->name);
  struct qcow2 *q = (struct qcow2 *)b;
  size_t l1n = q->h.l1_size, esz = q->extended_l2 ? 16 : 8;
  size_t per = (size_t)(q->cluster_size / esz);
  uint64_t *l1 = malloc(l1n ? l1n * 8 : 8);
  unsigned char *l2 = malloc((size_t)q->cluster_size);
  bool found = false;
  int r = 0;

  if (!l1 || !l2) {
    r = bfs_error(-ENOMEM, "%s: out of memory for the tables", b->name);
    goto out;
  }
  if ((r = blk_io_read(q->io, l1, l1n * 8, q->h.l1_table_offset,
                       "L1 table")) < 0)
    goto out;
  for (size_t i = 0; i < l1n && !found; i++) {
    uint64_t off = be64toh(l1[i]) & QCOW2_OFFSET_MASK;
    if (!off) continue;
    if (off & (q->cluster_size - 1) || off > q->file_size ||
        q->file_size - off < q->cluster_size) {
      r = bfs_error(-EIO, "%s: L2 table offset %#" PRIx64 " (L1 entry %zu) "
                    "not a cluster inside the file", b->name, off, i);
      goto out;
    }
    if ((r = blk_io_read(q->io, l2, (size_t)q->cluster_size, off,
                         "L2 table")) < 0)
      goto out;
    for (size_t j = 0; j < per && !found; j++) {
      uint64_t e;
      memcpy(&e, l2 + j * esz, 8);
      found = (be64toh(e) & QCOW2_OFLAG_COMPRESSED) != 0;
    }
  }
  *out = !found ? "none"
       : q->compression == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib";
out:
  free(l1);
  free(l2);
  return r;
}

const char *
blk_compression_join(const char *const *layers, size_t n)
{
  const char *have = "none";
  for (size_t i = 0; i < n; i++) {
    if (!layers[i]) return NULL;
    if (!strcmp(layers[i], "none")) continue;
    if (!strcmp(have, "none")) have = layers[i];
    else if (strcmp(have, layers[i])) return "mixed";
  }
  return have;
}
