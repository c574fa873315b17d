/* test-index.c — the index blob of a stream (vnbd_index_encode/decode).
 *
 *   test-index CORPUS_DIR
 * For the seed streams full-plain and full-lz4-chunked: the blob decodes
 * to the same index; a wrong file size is -ESTALE; a blob cut short, with
 * another magic, an empty extent, an extent past the file, blocks that do
 * not tile their extent, are -EIO.  Exit 1 on the first surprise.
 */
#include "blk/vnbd.h"
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails;

static void
expect(int got, int want, const char *what)
{
  if (got != want) {
    printf("FAIL %s: %d, want %d (%s)\n", what, got, want, bfs_last_error());
    fails++;
  } else {
    printf("ok %s%s%s\n", what, got ? ": " : "", got ? bfs_last_error() : "");
  }
}

static int
try(const unsigned char *blob, size_t len, uint64_t fsize)
{
  struct vnbd_index x;
  int r = vnbd_index_decode(blob, len, fsize, "seed.idx", &x);
  if (r == 0)
    vnbd_index_free(&x);
  return r;
}

static void
one(const char *dir, const char *seed)
{
  char path[4096];
  static unsigned char data[1 << 20];
  snprintf(path, sizeof path, "%s/%s", dir, seed);
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(1);
  }
  size_t n = fread(data, 1, sizeof data, f);
  fclose(f);

  struct blk_io *io;
  struct vnbd_index x, y;
  unsigned char *blob, *b2;
  size_t len, len2;
  if (blk_io_memory(data, n, seed, &io) < 0 || vnbd_index_build(io, &x) < 0 ||
      vnbd_index_encode(&x, (void **)&blob, &len) < 0) {
    printf("FAIL %s: %s\n", seed, bfs_last_error());
    exit(1);
  }
  blk_io_close(io);
  printf("%s: %zu extents, %zu lz4 blocks, blob %zu bytes\n", seed, x.n_ext,
         x.n_blk, len);
  expect(vnbd_index_decode(blob, len, n, seed, &y), 0, "decodes");
  vnbd_index_encode(&y, (void **)&b2, &len2);
  expect(len2 == len && !memcmp(blob, b2, len) && y.n_ext == x.n_ext &&
         !memcmp(y.ext, x.ext, x.n_ext * sizeof *x.ext) ? 0 : -1, 0,
         "round trip");
  free(b2);
  vnbd_index_free(&y);
  expect(try(blob, len, n + 1), -ESTALE, "another file size");
  expect(try(blob, len - 1, n), -EIO, "cut short");
  /* the blob's records are not aligned: patch them through copies */
  unsigned char *c = malloc(len);
  size_t ko = len - x.n_blk * sizeof *x.blk, eo = ko - x.n_ext * sizeof *x.ext;
  struct vnbd_ext e0;
  memcpy(c, blob, len);
  c[7] = '2';
  expect(try(c, len, n), -EIO, "another magic");
  memcpy(c, blob, len);
  memcpy(&e0, c + eo, sizeof e0);
  e0.vlen = 0;
  memcpy(c + eo, &e0, sizeof e0);
  expect(try(c, len, n), -EIO, "an empty extent");
  memcpy(c, blob, len);
  memcpy(&e0, c + eo, sizeof e0);
  e0.foff = n;
  memcpy(c + eo, &e0, sizeof e0);
  if (!e0.nblk)
    expect(try(c, len, n), -EIO, "an extent past the file");
  if (x.n_blk) {
    struct vnbd_block k;
    memcpy(c, blob, len);
    memcpy(&k, c + ko, sizeof k);
    k.dlen += 1;
    memcpy(c + ko, &k, sizeof k);
    expect(try(c, len, n), -EIO, "blocks that do not tile");
    memcpy(c, blob, len);
    memcpy(&k, c + ko, sizeof k);
    k.foff = n;
    memcpy(c + ko, &k, sizeof k);
    expect(try(c, len, n), -EIO, "a block past the file");
  }
  free(c);
  free(blob);
  vnbd_index_free(&x);
}

int
main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: test-index CORPUS_DIR\n");
    return 2;
  }
  one(argv[1], "full-plain");
  one(argv[1], "full-lz4-chunked");
  return fails ? 1 : 0;
}
