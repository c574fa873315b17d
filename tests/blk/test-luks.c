/* test-luks.c — reads of a LUKS-encrypted qcow2 chain at odd offsets
 * against qemu-img's flat image (driven by luks.sh).
 *
 *   test-luks KEYFILE ORACLE.raw TOP.qcow2 [BACKING.qcow2|raw:FILE ...]
 *
 * Opens the chain with the qcow2 driver directly (no cache: the driver's
 * own sector alignment is what is tested), then through the caching
 * filter, and compares 1000 reads at random unaligned offsets and lengths
 * (and the whole disk) byte for byte; then 4 threads open the chain at
 * once (libcryptsetup) and read it concurrently through one cache.  Exit
 * 0 when every byte matches.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk/blk.h"
#include "blk/luks.h"
#include "common/error.h"
#include "common/ioutil.h"

static struct bfs_blk *
open_chain(int argc, char **argv, const struct blk_key *key)
{
  struct bfs_blk *below = NULL, *b;

  for (int i = argc - 1; i >= 3; i--) {
    const char *p = argv[i];
    bool raw = !strncmp(p, "raw:", 4);
    struct blk_io *io;
    int fd = open(raw ? p + 4 : p, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || blk_io_fd(fd, p, &io) < 0 ||
        (raw ? blk_raw_open(io, NULL, below, &b)
             : blk_qcow2_open_key(io, NULL, key, below, &b)) < 0) {
      fprintf(stderr, "open %s: %s\n", p, bfs_last_error());
      exit(1);
    }
    below = b;
  }
  return below;
}

static int
compare(struct bfs_blk *b, const unsigned char *ref, uint64_t size,
        const char *what)
{
  unsigned char *buf = malloc(size);
  unsigned seed = 12345;
  int bad = 0;

  if (bfs_blk_pread(b, buf, size, 0) < 0 || memcmp(buf, ref, size)) {
    fprintf(stderr, "%s: whole disk differs: %s\n", what, bfs_last_error());
    bad++;
  }
  for (int i = 0; i < 1000 && !bad; i++) {
    uint64_t off = (uint64_t)rand_r(&seed) % size;
    uint64_t len = 1 + (uint64_t)rand_r(&seed) % (i % 4 ? 5000 : 140000);
    if (len > size - off)
      len = size - off;
    memset(buf, 0xee, len);
    if (bfs_blk_pread(b, buf, len, off) < 0) {
      fprintf(stderr, "%s: read %" PRIu64 "+%" PRIu64 ": %s\n", what, off,
              len, bfs_last_error());
      bad++;
    }
    else if (memcmp(buf, ref + off, len)) {
      fprintf(stderr, "%s: bytes differ at %" PRIu64 "+%" PRIu64 "\n", what,
              off, len);
      bad++;
    }
  }
  free(buf);
  if (!bad)
    printf("ok %s: whole disk and 1000 unaligned reads match\n", what);
  return bad;
}

struct par {
  int argc;
  char **argv;
  const struct blk_key *key;
  struct bfs_blk *shared;
  const unsigned char *ref;
  int bad;
};

static void *
par_thread(void *arg)
{
  struct par *p = arg;
  struct bfs_blk *own = open_chain(p->argc, p->argv, p->key);
  unsigned seed = (unsigned)(uintptr_t)&own;
  uint64_t size = p->shared->size;
  unsigned char *buf = malloc(65536);

  for (int i = 0; i < 300 && !p->bad; i++) {
    struct bfs_blk *b = i % 2 ? own : p->shared;
    uint64_t off = (uint64_t)rand_r(&seed) % size;
    uint64_t len = 1 + (uint64_t)rand_r(&seed) % 65536;
    if (len > size - off)
      len = size - off;
    if (bfs_blk_pread(b, buf, len, off) < 0 || memcmp(buf, p->ref + off, len))
      p->bad = 1;
  }
  free(buf);
  bfs_blk_close(own);
  return NULL;
}

/* 4 threads: each opens the chain itself, reads it and the shared one. */
static int
parallel(int argc, char **argv, const struct blk_key *key,
         struct bfs_blk *shared, const unsigned char *ref)
{
  struct par p[4];
  pthread_t th[4];
  int bad = 0;

  for (int i = 0; i < 4; i++) {
    p[i] = (struct par){ argc, argv, key, shared, ref, 0 };
    pthread_create(&th[i], NULL, par_thread, &p[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    bad |= p[i].bad;
  }
  if (bad)
    fprintf(stderr, "parallel: a concurrent read differs\n");
  else
    printf("ok parallel: 4 threads opened and read concurrently\n");
  return bad;
}

int
main(int argc, char **argv)
{
  struct blk_key *key;
  struct bfs_blk *b, *c;
  unsigned char *ref;
  uint64_t size;
  int fd, bad;

  if (argc < 4) {
    fprintf(stderr, "usage: test-luks KEYFILE ORACLE TOP [BACKING...]\n");
    return 2;
  }
  if (blk_key_from_file(argv[1], &key) < 0) {
    fprintf(stderr, "%s\n", bfs_last_error());
    return 1;
  }
  b = open_chain(argc, argv, key);
  size = b->size;
  if ((fd = open(argv[2], O_RDONLY | O_CLOEXEC)) < 0 ||
      !(ref = malloc(size)) || bfs_pread_all(fd, ref, size, 0) < 0) {
    fprintf(stderr, "%s: cannot read the oracle\n", argv[2]);
    return 1;
  }
  close(fd);
  bad = compare(b, ref, size, "driver");
  if (blk_cache_open(b, NULL, &c) < 0) {
    fprintf(stderr, "cache: %s\n", bfs_last_error());
    return 1;
  }
  bad += compare(c, ref, size, "cache");
  bad += parallel(argc, argv, key, c, ref);
  blk_key_free(key);               /* the layers keep only the master key */
  bfs_blk_close(c);
  free(ref);
  return bad ? 1 : 0;
}
