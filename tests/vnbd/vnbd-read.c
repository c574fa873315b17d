/* vnbd-read.c — test driver: a chain of virtnbdbackup streams through blk.
 *
 *   vnbd-read [-n|-c] OUT BASE.data [INC.data ...]
 *
 * Opens the streams as one recipe (the full at the bottom, each
 * incremental on the one before it; -n leaves the cache filter off; -c
 * opens each layer instead from its index blob, encoded after a parse
 * and decoded again, as a catalog's cache would: the blob must round-trip
 * byte for byte),
 * writes the flat raw image to OUT (zeros as holes) and prints each
 * layer's metadata and the block status totals of the whole stack:
 *   layer 0 checkpoint=virtnbdbackup.2 parent=virtnbdbackup.1 inc=1 lz4=0
 *   size=N data=D zero=Z hole=H layer0=.. layer1=..
 * Exit 1 with the error on stderr when anything fails.
 */
#include "blk/recipe.h"
#include "blk/vnbd.h"
#include "common/error.h"
#include "common/ioutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
opener(void *opaque, const struct blk_layer *l, struct blk_io **io)
{
  int fd = open(l->locator, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return bfs_error(-errno, "%s: %s", l->locator, strerror(errno));
  return blk_io_fd(fd, l->locator, io);
}

/* -c: bottom up, each layer from its encoded index, the cache on top */
static int
open_cached(const struct blk_recipe *rc, struct bfs_blk **out)
{
  struct bfs_blk *below = NULL, *b;
  int r;

  for (size_t i = rc->n; i-- > 0;) {
    struct blk_io *io;
    void *blob, *again;
    size_t len, len2;

    if ((r = opener(NULL, &rc->layers[i], &io)) < 0 ||
        (r = blk_vnbd_open(io, NULL, NULL, &b)) < 0)
      goto fail;
    r = vnbd_index_encode(blk_vnbd_index(b), &blob, &len);
    bfs_blk_close(b);
    if (r < 0 || (r = opener(NULL, &rc->layers[i], &io)) < 0 ||
        (r = blk_vnbd_open_index(io, blob, len, below, &b)) < 0) {
      below = NULL;
      goto fail;
    }
    below = b;
    if ((r = vnbd_index_encode(blk_vnbd_index(b), &again, &len2)) < 0)
      goto fail;
    if (len2 != len || memcmp(blob, again, len)) {
      fprintf(stderr, "vnbd-read: %s: index blob does not round-trip\n",
              rc->layers[i].locator);
      exit(1);
    }
    free(blob);
    free(again);
  }
  return blk_cache_open(below, &rc->cache, out);
fail:
  bfs_blk_close(below);
  return r;
}

int
main(int argc, char **argv)
{
  struct blk_layer layers[BLK_MAX_DEPTH];
  struct blk_recipe rc = { 0 };
  struct bfs_blk *b;
  uint64_t tot[3] = { 0 }, per_layer[BLK_MAX_DEPTH] = { 0 };
  const size_t chunk = 4u << 20;
  unsigned char *buf;
  int a = 1, fd, r;
  bool cached = false;

  if (argc > 1 && !strcmp(argv[1], "-n")) {
    rc.no_cache = true;
    a++;
  } else if (argc > 1 && !strcmp(argv[1], "-c")) {
    cached = true;
    a++;
  }
  if (argc - a < 2 || argc - a - 1 > BLK_MAX_DEPTH) {
    fprintf(stderr, "usage: vnbd-read [-n|-c] OUT BASE.data [INC.data ...]\n");
    return 2;
  }
  rc.n = (size_t)(argc - a - 1);
  for (size_t i = 0; i < rc.n; i++)           /* top first */
    layers[i] = (struct blk_layer){ "vnbd", argv[argc - 1 - (int)i], NULL };
  rc.layers = layers;
  if ((r = cached ? open_cached(&rc, &b)
                  : blk_open_recipe(&rc, opener, NULL, &b)) < 0) {
    fprintf(stderr, "vnbd-read: %s\n", bfs_last_error());
    return 1;
  }
  for (size_t i = 0; i < rc.n; i++) {
    const struct vnbd_meta *m = blk_vnbd_meta(bfs_blk_layer(b, i));
    printf("layer %zu checkpoint=%s parent=%s inc=%d lz4=%d size=%" PRIu64
           "\n", i, m->checkpoint, m->parent ? m->parent : "-",
           m->incremental, m->compressed, m->virtual_size);
  }
  fd = open(argv[a], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ftruncate(fd, (off_t)b->size) < 0) {
    fprintf(stderr, "vnbd-read: %s: %s\n", argv[a], strerror(errno));
    return 1;
  }
  if (!(buf = malloc(chunk)))
    return 1;
  for (uint64_t off = 0; off < b->size;) {
    struct bfs_blk_status st;
    if ((r = bfs_blk_block_status(b, off, chunk, &st)) < 0)
      goto fail;
    tot[st.kind == BFS_BLK_DATA ? 0 : st.kind == BFS_BLK_ZERO ? 1 : 2] +=
        st.len;
    if (st.layer >= 0 && st.layer < BLK_MAX_DEPTH)
      per_layer[st.layer] += st.len;
    if (st.kind == BFS_BLK_DATA) {
      if ((r = bfs_blk_pread(b, buf, st.len, off)) < 0)
        goto fail;
      if ((r = bfs_pwrite_all(fd, buf, st.len, off)) < 0) {
        fprintf(stderr, "vnbd-read: %s: %s\n", argv[a], strerror(-r));
        return 1;
      }
    }
    off += st.len;
  }
  if (close(fd) < 0) {
    fprintf(stderr, "vnbd-read: %s: %s\n", argv[a], strerror(errno));
    return 1;
  }
  printf("size=%" PRIu64 " data=%" PRIu64 " zero=%" PRIu64 " hole=%" PRIu64,
         b->size, tot[0], tot[1], tot[2]);
  for (size_t i = 0; i < rc.n; i++)
    printf(" layer%zu=%" PRIu64, i, per_layer[i]);
  printf("\n");
  free(buf);
  bfs_blk_close(b);
  return 0;
fail:
  fprintf(stderr, "vnbd-read: %s\n", bfs_last_error());
  return 1;
}
