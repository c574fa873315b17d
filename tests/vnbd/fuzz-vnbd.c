/* fuzz-vnbd.c — libFuzzer target for the virtnbdbackup stream reader.
 *
 * The input is a stream (.data file) in memory: it is indexed and opened
 * as a vnbd layer (blk_vnbd_open over blk_io_memory), then every extent's
 * block status is asked and up to 64 KiB read at each one (lz4 decoding
 * included), bounded to 256 steps; its index must encode, decode and
 * encode again to the same blob.  The input is also decoded as an index
 * blob itself (vnbd_index_decode's checks against a hostile cache).  Built with -Dfuzz=true (CC=clang);
 * the corpus replays in suite fuzz-regress through
 * tests/catalog/fuzz-regress.c.
 */
#include "blk/vnbd.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static unsigned char buf[64 << 10];
  struct blk_io *io;
  struct bfs_blk *b;

  struct vnbd_index x;
  uint64_t fsize;
  if (size >= 16) {
    memcpy(&fsize, data + 8, 8);
    if (vnbd_index_decode(data, size, fsize, "fuzz.idx", &x) == 0)
      vnbd_index_free(&x);
  }
  if (blk_io_memory(data, size, "fuzz.data", &io) < 0)
    return 0;
  if (blk_vnbd_open(io, NULL, NULL, &b) < 0)
    return 0;
  void *blob, *again;
  size_t len, len2;
  if (vnbd_index_encode(blk_vnbd_index(b), &blob, &len) == 0) {
    if (vnbd_index_decode(blob, len, size, "fuzz.idx", &x) < 0)
      abort();
    if (vnbd_index_encode(&x, &again, &len2) < 0 || len2 != len ||
        memcmp(blob, again, len))
      abort();
    free(again);
    vnbd_index_free(&x);
    free(blob);
  }
  uint64_t off = 0;
  for (int i = 0; i < 256 && off < b->size; i++) {
    struct bfs_blk_status st;
    if (bfs_blk_block_status(b, off, b->size - off, &st) < 0)
      st.len = b->size - off < 4096 ? b->size - off : 4096;
    size_t n = st.len < sizeof buf ? (size_t)st.len : sizeof buf;
    (void)bfs_blk_pread(b, buf, n, off);
    /* and a read straddling the end of the extent */
    if (st.len > 1 && off + st.len < b->size)
      (void)bfs_blk_pread(b, buf, 2, off + st.len - 1);
    off += st.len;
  }
  bfs_blk_close(b);
  return 0;
}
