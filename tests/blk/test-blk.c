/* test-blk.c — the block layer stacked in memory against a flat model.
 *
 * Builds, with qemu-img/qemu-io at test time, a raw base (3 MiB, shorter
 * than the disk, with holes), a qcow2 v2 layer over it (4 KiB clusters,
 * deflate-compressed and plain writes) and a qcow2 v3 top (64 KiB clusters,
 * zstd, zero clusters).  Every write is cluster-aligned in its layer, so
 * the model knows per 512-byte sector which layer decides and what it
 * holds.  The stack is
 *     raw -> qcow2 -> qcow2 -> cache filter -> copy-on-write filter
 * opened through a recipe twice: over memory buffers and over the files'
 * descriptors (plain bytes then come back as fd + offset and are checked
 * by reading that fd).  Random reads (also from 4 threads), random
 * unaligned writes into the COW filter (also 4 threads sharing blocks at
 * their borders), and block status walks are
 * checked byte for byte and extent by extent against the model.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "blk/recipe.h"
#include "blktest.h"
#include "common/error.h"
#include "common/pool.h"
#include "common/ioutil.h"

#define M (1024 * 1024)
#define DISK (4 * M + 64 * 1024 + 3 * 512)   /* not a multiple of 4 KiB */
#define BASE (3 * M)
#define SECTORS (DISK / 512)
#define C1 4096                              /* layer 1 (v2) clusters */
#define C0 65536                             /* layer 0 (v3) clusters */

/* the model, layer numbers as in the qcow2 stack (top = 0) */
struct model {
  unsigned char *bytes;
  signed char layer[SECTORS];                /* -1: hole */
  unsigned char kind[SECTORS];               /* enum bfs_blk_kind */
};

static uint64_t rng = 88172645463325252ull;
static uint64_t
rnd(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void
mark(struct model *m, uint64_t off, uint64_t len, int layer, int kind)
{
  for (uint64_t s = off / 512; s < (off + len + 511) / 512 && s < SECTORS; s++) {
    m->layer[s] = (signed char)layer;
    m->kind[s] = (unsigned char)kind;
  }
}

/* qemu-io writes into name (fmt), cluster-aligned; the model follows. */
static void
layer_writes(struct model *m, const char *name, int layer, uint64_t cs,
             uint64_t size, bool v3, int n)
{
  char cmd[16384];
  size_t pos = (size_t)snprintf(cmd, sizeof cmd, "qemu-io -f qcow2");
  unsigned char *used = calloc(size / cs, 1);

  for (int i = 0; i < n; i++) {
    uint64_t ncl = 1 + rnd() % 8, off = (rnd() % (size / cs - ncl)) * cs;
    uint64_t len = ncl * cs;
    unsigned pat = 1 + (unsigned)(rnd() % 250);
    int what = (int)(rnd() % (v3 ? 4 : 3));
    /* QEMU writes compressed clusters only where none is allocated yet */
    for (uint64_t c = off / cs; c < off / cs + ncl; c++) {
      if (what == 2 && used[c])
        what = 1;
      used[c] = 1;
    }
    if (what == 3) {                          /* zero clusters (v3) */
      pos += (size_t)snprintf(cmd + pos, sizeof cmd - pos,
                              " -c 'write -z %lu %lu'", (unsigned long)off,
                              (unsigned long)len);
      memset(m->bytes + off, 0, len);
      mark(m, off, len, layer, BFS_BLK_ZERO);
      continue;
    }
    pos += (size_t)snprintf(cmd + pos, sizeof cmd - pos,
                            " -c 'write %s -P %u %lu %lu'",
                            what == 2 ? "-c" : "", pat, (unsigned long)off,
                            (unsigned long)len);
    memset(m->bytes + off, (int)pat, len);
    mark(m, off, len, layer, BFS_BLK_DATA);
  }
  snprintf(cmd + pos, sizeof cmd - pos, " '%s' >/dev/null", bt_path(name));
  free(used);
  bt_sh("%s", cmd);
}

static void
build(struct model *m)
{
  int fd = open(bt_path("base.raw"), O_CREAT | O_RDWR | O_TRUNC, 0644);
  unsigned char blk[65536];

  m->bytes = calloc(1, DISK);
  memset(m->layer, -1, sizeof m->layer);
  memset(m->kind, BFS_BLK_HOLE, sizeof m->kind);
  if (fd < 0 || ftruncate(fd, BASE) < 0)
    exit(1);
  /* the raw base: data in some 64 KiB pieces, holes elsewhere */
  for (uint64_t off = 0; off < BASE; off += sizeof blk) {
    if (rnd() % 3 == 0)
      continue;
    for (size_t i = 0; i < sizeof blk; i++)
      blk[i] = (unsigned char)(rnd() | 1);
    if (bfs_pwrite_all(fd, blk, sizeof blk, off) < 0)
      exit(1);
    memcpy(m->bytes + off, blk, sizeof blk);
  }
  close(fd);
  mark(m, 0, BASE, 2, BFS_BLK_DATA);          /* memory: all data */
  bt_sh("qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=%d "
        "-b base.raw -F raw '%s' %d", C1, bt_path("mid.qcow2"), DISK);
  layer_writes(m, "mid.qcow2", 1, C1, DISK, false, 40);
  bt_sh("qemu-img create -q -f qcow2 -o compat=1.1,cluster_size=%d,"
        "compression_type=zstd -b mid.qcow2 -F qcow2 '%s' %d", C0,
        bt_path("top.qcow2"), DISK);
  layer_writes(m, "top.qcow2", 0, C0, DISK - C0, true, 20);
}

struct opener_ctx {
  bool memory;
  struct tbuf files[3];
};

static int
opener(void *opaque, const struct blk_layer *l, struct blk_io **out)
{
  struct opener_ctx *c = opaque;
  static const char *const names[] = { "top.qcow2", "mid.qcow2", "base.raw" };

  for (int i = 0; i < 3; i++) {
    if (strcmp(l->locator, names[i]))
      continue;
    if (c->memory)
      return blk_io_memory(c->files[i].p, c->files[i].len, names[i], out);
    int fd = open(bt_path(names[i]), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return bfs_error(-errno, "%s: %s", names[i], strerror(errno));
    return blk_io_fd(fd, names[i], out);
  }
  return bfs_error(-ENOENT, "%s: no such test layer", l->locator);
}

static int
shared_opener(void *opaque, const struct blk_layer *l, struct blk_io **out)
{
  int fd = open(bt_path(l->locator), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return bfs_error(-errno, "%s: %s", l->locator, strerror(errno));
  return blk_io_fd(fd, l->locator, out);
}

static void
check_reads(struct bfs_blk *b, const struct model *m, int n)
{
  unsigned char *buf = malloc(DISK);
  int r = bfs_blk_pread(b, buf, DISK, 0);

  CHECK(r == 0 && !memcmp(buf, m->bytes, DISK), "whole-disk read: %d %s", r,
        bfs_last_error());
  for (int i = 0; i < n; i++) {
    uint64_t off = rnd() % DISK, len = 1 + rnd() % (rnd() % 4 ? 70000 : 600000);
    if (len > DISK - off)
      len = DISK - off;
    r = bfs_blk_pread(b, buf, len, off);
    if (r != 0 || memcmp(buf, m->bytes + off, len)) {
      CHECK(0, "read %lu+%lu differs (r=%d %s)", (unsigned long)off,
            (unsigned long)len, r, bfs_last_error());
      break;
    }
  }
  CHECK(bfs_blk_pread(b, buf, 2, DISK - 1) == -EINVAL, "read past the end");
  free(buf);
}

/* Walk block status; every sector must match the model (shift: layers
 * added on top, 1 with the COW filter).  In fd mode raw sectors without
 * data may be reported as holes. */
static void
check_status(struct bfs_blk *b, const struct model *m, int shift,
             bool fd_mode)
{
  unsigned char *buf = malloc(4 * M);
  struct bfs_blk_status st;
  uint64_t off = 0;
  int bad = 0, plain = 0;

  while (off < DISK && bad < 5) {
    int r = bfs_blk_block_status(b, off, DISK - off, &st);
    if (r < 0) {
      CHECK(0, "block status at %lu: %s", (unsigned long)off,
            bfs_last_error());
      break;
    }
    for (uint64_t s = off / 512; s < (off + st.len) / 512; s++) {
      int want_layer = m->layer[s] < 0 ? -1 : m->layer[s] + shift;
      int want_kind = m->kind[s];
      if (m->layer[s] == -2) {                /* written into the COW */
        want_layer = 0;
        want_kind = BFS_BLK_DATA;
      }
      bool ok = (int)st.kind == want_kind &&
                (st.kind == BFS_BLK_HOLE || st.layer == want_layer);
      if (!ok && fd_mode && st.kind == BFS_BLK_HOLE &&
          m->layer[s] == 2 && !m->bytes[s * 512])
        ok = true;                            /* a hole of the raw file */
      if (!ok) {
        CHECK(0, "sector %lu: status kind %d layer %d, model kind %d "
              "layer %d", (unsigned long)s, st.kind, st.layer, want_kind,
              want_layer);
        bad++;
        break;
      }
    }
    if (st.fd >= 0) {                         /* plain bytes: really there */
      size_t n = st.len < 4 * M ? (size_t)st.len : 4 * M;
      plain++;
      CHECK(bfs_pread_all(st.fd, buf, n, st.fd_off) == 0 &&
            !memcmp(buf, m->bytes + off, n), "fd %d at %lu: bytes of %lu "
            "differ", st.fd, (unsigned long)st.fd_off, (unsigned long)off);
    }
    if (st.unit_len)
      CHECK(st.unit_off <= off && off + st.len <= st.unit_off + st.unit_len,
            "decode unit %lu+%lu does not hold %lu+%lu",
            (unsigned long)st.unit_off, (unsigned long)st.unit_len,
            (unsigned long)off, (unsigned long)st.len);
    off += st.len;
  }
  CHECK(!fd_mode || plain > 0, "fd mode: no plain extents reported");
  free(buf);
}

static void
cow_writes(struct bfs_blk *b, struct model *m, int n)
{
  unsigned char *buf = malloc(300000);

  for (int i = 0; i < n; i++) {
    uint64_t off = rnd() % DISK, len = 1 + rnd() % 300000;
    if (len > DISK - off)
      len = DISK - off;
    for (size_t k = 0; k < len; k++)
      buf[k] = (unsigned char)rnd();
    int r = bfs_blk_pwrite(b, buf, len, off);
    CHECK(r == 0, "cow write %lu+%lu: %s", (unsigned long)off,
          (unsigned long)len, bfs_last_error());
    memcpy(m->bytes + off, buf, len);
    /* whole 4 KiB blocks now come from the scratch */
    for (uint64_t s = off / 4096 * 8; s < (off + len + 4095) / 4096 * 8 &&
         s < SECTORS; s++)
      m->layer[s] = -2;
  }
  free(buf);
}

struct rthread {
  struct bfs_blk *b;
  const struct model *m;
  uint64_t seed;
  int bad;
};

static void *
reader(void *arg)
{
  struct rthread *t = arg;
  unsigned char *buf = malloc(200000);
  for (int i = 0; i < 300; i++) {
    t->seed = t->seed * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t off = (t->seed >> 11) % DISK, len = 1 + (t->seed >> 40) % 200000;
    if (len > DISK - off)
      len = DISK - off;
    if (bfs_blk_pread(t->b, buf, len, off) != 0 ||
        memcmp(buf, t->m->bytes + off, len))
      t->bad++;
  }
  free(buf);
  return NULL;
}

static void
check_threads(struct bfs_blk *b, const struct model *m)
{
  struct rthread t[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    t[i] = (struct rthread){ b, m, (uint64_t)i * 7919 + 1, 0 };
    pthread_create(&th[i], NULL, reader, &t[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    CHECK(t[i].bad == 0, "thread %d: %d bad reads", i, t[i].bad);
  }
}

/* Threads writing unaligned pieces of neighbouring regions whose borders
 * fall inside 4 KiB blocks: the blocks they share are read, patched and
 * written back by both, so a missing lock loses one side's bytes (a race:
 * caught often, not always, on a busy 2-core machine; never a false
 * alarm). */
struct wthread {
  struct bfs_blk *b;
  struct model *m;
  uint64_t lo, hi, seed;
  uint64_t done[2000][2];
  int n, bad;
  pthread_barrier_t *start;
};

static void *
writer(void *arg)
{
  struct wthread *t = arg;
  unsigned char buf[9000];

  pthread_barrier_wait(t->start);
  for (t->n = 0; t->n < 2000; t->n++) {
    t->seed = t->seed * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t len = 1 + (t->seed >> 33) % (t->n % 4 ? 100 : sizeof buf);
    uint64_t off = t->lo + (t->seed >> 11) % (t->hi - t->lo - len);
    if (t->n % 4)               /* mostly the blocks shared at the borders */
      off = t->n % 2 ? t->lo + (t->seed >> 20) % 50
            : t->hi - len - (t->seed >> 20) % 50;
    for (size_t k = 0; k < len; k++)
      buf[k] = (unsigned char)(t->seed >> (k % 56));
    if (bfs_blk_pwrite(t->b, buf, len, off) != 0)
      t->bad++;
    memcpy(t->m->bytes + off, buf, len);       /* bytes of this thread only */
    t->done[t->n][0] = off;
    t->done[t->n][1] = len;
  }
  return NULL;
}

static void
check_parallel_writes(struct bfs_blk *b, struct model *m)
{
  struct wthread t[4];
  pthread_t th[4];
  const uint64_t r = 64 * 1024 + 2048, base = 1000;
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, 4);
  for (int i = 0; i < 4; i++) {
    t[i] = (struct wthread){ .b = b, .m = m, .lo = base + i * r,
                             .hi = base + (i + 1) * r, .seed = 17 + i,
                             .start = &start };
    pthread_create(&th[i], NULL, writer, &t[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    CHECK(t[i].bad == 0, "writer %d: %d failed writes", i, t[i].bad);
    for (int k = 0; k < t[i].n; k++)
      for (uint64_t s = t[i].done[k][0] / 4096 * 8;
           s < (t[i].done[k][0] + t[i].done[k][1] + 4095) / 4096 * 8; s++)
        m->layer[s] = -2;
  }
  pthread_barrier_destroy(&start);
}

static void
run(struct model *m0, bool memory, struct bfs_pool *pool)
{
  static const struct blk_layer layers[] = {
    { "qcow2", "top.qcow2", NULL },
    { "qcow2", "mid.qcow2", NULL },
    { "raw", "base.raw", NULL },
  };
  struct opener_ctx ctx = { .memory = memory };
  struct blk_recipe rc = { .n = 3, .layers = layers,
                           .cache = { .cache_bytes = 256 * 1024,
                                      .map_bytes = 4096, .pool = pool } };
  struct model m = *m0;
  struct bfs_blk *b, *cow;
  int sfd, r;

  m.bytes = malloc(DISK);
  memcpy(m.bytes, m0->bytes, DISK);
  ctx.files[0] = bt_load("top.qcow2");
  ctx.files[1] = bt_load("mid.qcow2");
  ctx.files[2] = bt_load("base.raw");
  /* the drivers alone first (no cache): every read walks the layers */
  rc.no_cache = true;
  r = blk_open_recipe(&rc, opener, &ctx, &b);
  CHECK(r == 0, "open recipe without cache: %s", bfs_last_error());
  if (r == 0) {
    check_reads(b, &m, 100);
    check_status(b, &m, 0, !memory);
    bfs_blk_close(b);
  }
  rc.no_cache = false;
  r = blk_open_recipe(&rc, opener, &ctx, &b);
  CHECK(r == 0, "open recipe: %s", bfs_last_error());
  if (r < 0)
    exit(1);
  CHECK(b->size == DISK && bfs_blk_depth(b) == 3, "size %lu depth %zu",
        (unsigned long)b->size, bfs_blk_depth(b));
  CHECK(!strcmp(bfs_blk_info(bfs_blk_layer(b, 1))->format, "qcow2") &&
        !strcmp(bfs_blk_info(bfs_blk_layer(b, 2))->format, "raw"),
        "layer formats");
  CHECK(bfs_blk_pwrite(b, "x", 1, 0) == -EROFS, "the cache is read-only");
  check_reads(b, &m, 400);
  check_status(b, &m, 0, !memory);
  check_threads(b, &m);

  sfd = memfd_create("scratch", MFD_CLOEXEC);
  CHECK(sfd >= 0, "memfd_create: %s", strerror(errno));
  r = blk_cow_open(b, sfd, "scratch", &cow);
  CHECK(r == 0, "cow open: %s", bfs_last_error());
  check_status(cow, &m, 1, !memory);
  for (int round = 0; round < 4; round++) {
    cow_writes(cow, &m, 30);
    check_reads(cow, &m, 200);
    check_status(cow, &m, 1, !memory);
  }
  check_parallel_writes(cow, &m);
  check_reads(cow, &m, 200);
  check_status(cow, &m, 1, !memory);
  CHECK(bfs_blk_flush(cow) == 0, "flush: %s", bfs_last_error());
  check_threads(cow, &m);
  bfs_blk_close(cow);
  for (int i = 0; i < 3; i++)
    free(ctx.files[i].p);
  free(m.bytes);
  printf("%s stack%s: checked\n", memory ? "memory" : "fd",
         pool ? " (worker pool)" : "");
}

/* Decode units of two layers starting at the same guest offset: a 4 KiB
 * compressed cluster of the overlay over a 64 KiB one of its backing.  The
 * cache must keep them apart (keyed by range, not by start). */
static void
shared_unit_start(void)
{
  static const struct blk_layer layers[] = {
    { "qcow2", "upper.qcow2", NULL },
    { "qcow2", "lower.qcow2", NULL },
  };
  struct opener_ctx ctx = { .memory = false };
  struct blk_recipe rc = { .n = 2, .layers = layers };
  struct bfs_blk *b;
  unsigned char buf[16];

  bt_sh("qemu-img create -q -f qcow2 -o cluster_size=65536 '%s' 1M && "
        "qemu-io -f qcow2 -c 'write -c -P 0x41 0 64k' '%s' >/dev/null",
        bt_path("lower.qcow2"), bt_path("lower.qcow2"));
  bt_sh("qemu-img create -q -f qcow2 -o cluster_size=4096 -b lower.qcow2 "
        "-F qcow2 '%s' && qemu-io -f qcow2 -c 'write -c -P 0x42 0 4k' '%s' "
        ">/dev/null", bt_path("upper.qcow2"), bt_path("upper.qcow2"));
  int r = blk_open_recipe(&rc, shared_opener, &ctx, &b);
  CHECK(r == 0, "open: %s", bfs_last_error());
  if (r < 0)
    return;
  CHECK(bfs_blk_pread(b, buf, 10, 100) == 0 && buf[0] == 0x42 &&
        buf[9] == 0x42, "upper unit");
  CHECK(bfs_blk_pread(b, buf, 10, 5000) == 0 && buf[0] == 0x41 &&
        buf[9] == 0x41, "lower unit after the upper one is cached");
  CHECK(bfs_blk_pread(b, buf, 16, 4090) == 0 && buf[0] == 0x42 &&
        buf[5] == 0x42 && buf[6] == 0x41 && buf[15] == 0x41, "across both");
  bfs_blk_close(b);
  printf("units sharing a start: checked\n");
}

int
main(void)
{
  static struct model m;

  bt_workdir("blk");
  build(&m);
  run(&m, true, NULL);
  run(&m, false, NULL);
  /* again with a request's pieces on worker threads (cache.c) */
  struct bfs_pool *pool;
  if (bfs_pool_new(3, &pool) < 0) {
    fprintf(stderr, "no pool: %s\n", bfs_last_error());
    return 1;
  }
  run(&m, true, pool);
  run(&m, false, pool);
  bfs_pool_free(pool);
  shared_unit_start();
  free(m.bytes);
  bt_cleanup();
  printf("%d failures\n", bt_failures);
  return bt_failures ? 1 : 0;
}
