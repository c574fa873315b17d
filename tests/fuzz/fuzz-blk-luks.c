/* fuzz-blk-luks.c — libFuzzer target for LUKS-encrypted qcow2 in blk/:
 * the full disk encryption header extension, the LUKS header it points to
 * (through libcryptsetup, from a memfd) and decrypted reads.
 *
 * The input is one qcow2 image in memory, opened without a key (for
 * inspection: the extension and header are checked, reads must refuse)
 * and with the passphrase "fuzz" (the seeds' passphrase, corpus/blk-luks:
 * made by qemu-img with encrypt.iter-time=1, so key slots open fast); then
 * a few block-status walks and reads of at most 256 KiB through the
 * caching filter.  A read without a key that succeeds on encrypted data
 * would be a bug: abort.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blk/blk.h"
#include "blk/luks.h"
#include "tests/fuzz/fuzz.h"

FUZZ_QUIET_INIT

static void
one(const uint8_t *data, size_t size, const struct blk_key *key,
    unsigned char *buf)
{
  struct blk_cache_opts o = { .cache_bytes = 1 << 20, .map_bytes = 1 << 16 };
  struct blk_io *io;
  struct bfs_blk *q, *c;

  if (blk_io_memory(data, size, "fuzz.qcow2", &io) < 0 ||
      blk_qcow2_open_key(io, NULL, key, NULL, &q) < 0)
    return;
  if (bfs_blk_info(q)->encrypted && !key != bfs_blk_info(q)->key_missing &&
      bfs_blk_info(q)->encryption && !strcmp(bfs_blk_info(q)->encryption,
                                             "luks"))
    abort();                         /* key state misreported */
  if (blk_cache_open(q, &o, &c) < 0)
    return;
  fuzz_walk(c, buf, !key && bfs_blk_info(q)->encrypted ? FUZZ_NO_KEY : 0);
  bfs_blk_close(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  unsigned char *buf = malloc(FUZZ_BUF);
  struct blk_key *key;

  if (!buf || blk_key_from_memory("fuzz", 4, &key) < 0)
    abort();
  one(data, size, NULL, buf);
  one(data, size, key, buf);
  blk_key_free(key);
  free(buf);
  return 0;
}
