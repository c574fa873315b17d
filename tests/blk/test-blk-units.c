/* test-blk-units.c — unit tests of the blk qcow2 and raw drivers under the
 * cache filter on qcow2 images built in memory (blk_io_memory): every
 * cluster kind, subclusters, compressed payloads (zlib, zstd) including
 * corrupt ones, metadata past the end of the file, refused features, and
 * concurrent reads with caches small enough to force evictions; recipes of
 * files on disk (a raw base never probed).  Ported from the image core's
 * tests (tests/unit/test-image.c) when image/ went: same assertions.
 *
 * Layout of the built images: header in cluster 0, L1 in cluster 1, one L2
 * table in cluster 2, data appended from cluster 3 on.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "common/error.h"
#include "common/pool.h"
#include "blk/recipe.h"

static int failures, checks;
static struct bfs_pool *pool;           /* the second pass: worker threads */

#define CHECK(cond, ...) do {                                       \
    checks++;                                                       \
    if (!(cond)) {                                                  \
      failures++;                                                   \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                 \
      fprintf(stderr, " [last error: %s]\n", bfs_last_error());     \
    }                                                               \
  } while (0)

struct q {
  unsigned char *buf;
  size_t len, cap;
  unsigned cb;
  uint64_t cs;
  int ext;
};

static void
put64(struct q *q, uint64_t off, uint64_t v)
{
  v = htobe64(v);
  memcpy(q->buf + off, &v, 8);
}

static void
put32(struct q *q, uint64_t off, uint32_t v)
{
  v = htobe32(v);
  memcpy(q->buf + off, &v, 4);
}

static void
grow(struct q *q, size_t len)
{
  if (len > q->cap) {
    q->buf = realloc(q->buf, len);
    memset(q->buf + q->cap, 0, len - q->cap);
    q->cap = len;
  }
  if (len > q->len)
    q->len = len;
}

/* a v3 (or v2) image of vsize bytes with the three metadata clusters */
static void
q_init(struct q *q, unsigned cb, uint64_t vsize, int version, int ext,
       int zstd)
{
  memset(q, 0, sizeof *q);
  q->cb = cb;
  q->cs = 1ull << cb;
  q->ext = ext;
  grow(q, 3 * q->cs);
  put32(q, 0, 0x514649fb);
  put32(q, 4, (uint32_t)version);
  put32(q, 20, cb);
  put64(q, 24, vsize);
  put32(q, 36, 1);                    /* l1_size */
  put64(q, 40, q->cs);                /* l1 offset */
  put64(q, q->cs, 2 * q->cs);         /* L1[0] -> L2 in cluster 2 */
  if (version == 3) {
    uint64_t incompat = (ext ? 1u << 4 : 0) | (zstd ? 1u << 3 : 0);
    put64(q, 72, incompat);
    put32(q, 96, 4);
    put32(q, 100, 112);
    q->buf[104] = zstd ? 1 : 0;
  }
}

static uint64_t
q_data(struct q *q, const void *data, size_t len)
{
  uint64_t off = (q->len + q->cs - 1) & ~(q->cs - 1);
  grow(q, off + len);
  memcpy(q->buf + off, data, len);
  return off;
}

static void
q_l2(struct q *q, unsigned i, uint64_t entry, uint64_t bitmap)
{
  uint64_t off = 2 * q->cs + (uint64_t)i * (q->ext ? 16 : 8);
  put64(q, off, entry);
  if (q->ext)
    put64(q, off + 8, bitmap);
}

/* compressed descriptor for a payload at host offset coff, clen bytes */
static uint64_t
q_cdesc(const struct q *q, uint64_t coff, size_t clen)
{
  unsigned shift = 62 - (q->cb - 8);
  uint64_t nsec = ((coff + clen - 1) >> 9) - (coff >> 9);
  return (1ull << 62) | (nsec << shift) | coff;
}

static size_t
deflate_raw(const void *in, size_t len, void *out, size_t cap)
{
  z_stream z = { 0 };
  deflateInit2(&z, 6, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY);
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)len;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  deflate(&z, Z_FINISH);
  deflateEnd(&z);
  return cap - z.avail_out;
}

typedef struct bfs_blk chain_t;

/* the image alone (no backing) under the cache filter */
static chain_t *
q_chain(struct q *q, size_t cache, size_t map)
{
  struct blk_cache_opts o = { .cache_bytes = cache, .map_bytes = map,
                              .pool = pool };
  struct blk_io *io;
  struct bfs_blk *b, *c;
  if (blk_io_memory(q->buf, q->len, "mem.qcow2", &io) < 0 ||
      blk_qcow2_open(io, NULL, NULL, &b) < 0 ||
      blk_cache_open(b, &o, &c) < 0)
    return NULL;
  return c;
}

static int
chain_pread(chain_t *c, void *buf, size_t len, uint64_t off)
{
  return bfs_blk_pread(c, buf, len, off);
}

static void
chain_close(chain_t *c)
{
  bfs_blk_close(c);
}

/* the image core's extents: maximal runs of one kind (DATA of one layer;
 * ZERO = zero clusters or nothing allocated) around off, from block status */
enum { CHAIN_EXTENT_DATA, CHAIN_EXTENT_ZERO };
struct chain_extent {
  uint64_t off, len;
  int kind, layer;
};

static int
kind_at(chain_t *c, uint64_t off, int *kind, int *layer, uint64_t *len)
{
  struct bfs_blk_status st;
  int r = bfs_blk_block_status(c, off, c->size - off, &st);
  if (r < 0)
    return r;
  *kind = st.kind == BFS_BLK_DATA ? CHAIN_EXTENT_DATA : CHAIN_EXTENT_ZERO;
  *layer = st.kind == BFS_BLK_DATA ? st.layer : -1;
  *len = st.len;
  return 0;
}

static int
chain_extent_at(chain_t *c, uint64_t off, struct chain_extent *e)
{
  uint64_t start = 0, pos = 0, len;
  int kind = -1, layer = -2, k, l, r;

  /* walk from 0 (the test images are small) to find the run around off */
  while (pos <= off) {
    if ((r = kind_at(c, pos, &k, &l, &len)) < 0)
      return r;
    if (pos == 0 || k != kind || l != layer) {
      start = pos;
      kind = k;
      layer = l;
    }
    pos += len;
  }
  while (pos < c->size) {
    if ((r = kind_at(c, pos, &k, &l, &len)) < 0)
      return r;
    if (k != kind || l != layer)
      break;
    pos += len;
  }
  *e = (struct chain_extent){ start, pos - start, kind, layer };
  return 0;
}

static int
chain_allocated(chain_t *c, uint64_t *bytes)
{
  uint64_t len;
  int k, l, r;

  *bytes = 0;
  for (uint64_t pos = 0; pos < c->size; pos += len) {
    if ((r = kind_at(c, pos, &k, &l, &len)) < 0)
      return r;
    if (k == CHAIN_EXTENT_DATA)
      *bytes += len;
  }
  return 0;
}

static void
fill(unsigned char *p, size_t len, unsigned seed)
{
  for (size_t i = 0; i < len; i++)
    p[i] = (unsigned char)((i * 7 + seed * 13 + (i >> 9)) % 251);
}

static int
is_zero(const unsigned char *p, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (p[i])
      return 0;
  return 1;
}

static void
test_standard(int version)
{
  struct q q;
  unsigned char a[4096], got[4 * 4096];
  chain_t *c;
  struct chain_extent e;

  q_init(&q, 12, 6 * 4096, version, 0, 0);
  fill(a, sizeof a, 1);
  q_l2(&q, 0, (1ull << 63) | q_data(&q, a, sizeof a), 0);
  if (version >= 3)
    q_l2(&q, 2, 1, 0);                           /* zero cluster (v3 only) */
  fill(a, sizeof a, 2);
  q_l2(&q, 3, q_data(&q, a, sizeof a), 0);
  c = q_chain(&q, 0, 0);
  CHECK(c != NULL, "open v%d", version);
  if (c) {
    CHECK(chain_pread(c, got, sizeof got, 0) == 0, "read");
    fill(a, sizeof a, 1);
    CHECK(!memcmp(got, a, 4096), "cluster 0");
    CHECK(is_zero(got + 4096, 2 * 4096), "clusters 1-2 zero");
    fill(a, sizeof a, 2);
    CHECK(!memcmp(got + 3 * 4096, a, 4096), "cluster 3");
    CHECK(chain_extent_at(c, 100, &e) == 0 && e.off == 0 && e.len == 4096 &&
          e.kind == CHAIN_EXTENT_DATA && e.layer == 0, "extent 0");
    CHECK(chain_extent_at(c, 5000, &e) == 0 && e.off == 4096 &&
          e.len == 8192 && e.kind == CHAIN_EXTENT_ZERO, "extent 1");
    uint64_t alloc = 0;
    CHECK(chain_allocated(c, &alloc) == 0 && alloc == 8192, "allocated %llu",
          (unsigned long long)alloc);
    CHECK(chain_pread(c, got, 10, 6 * 4096 - 5) == -EINVAL, "read past end");
    chain_close(c);
  }
  /* data cluster past the end of the file */
  q_l2(&q, 4, 64 * 4096, 0);
  c = q_chain(&q, 0, 0);
  CHECK(c && chain_pread(c, got, 4096, 4 * 4096) == -EIO &&
        strstr(bfs_last_error(), "mem.qcow2") &&
        strstr(bfs_last_error(), "past the end"), "data past EOF is EIO");
  chain_close(c);
  /* unaligned data cluster */
  q_l2(&q, 4, 3 * 4096 + 512, 0);
  c = q_chain(&q, 0, 0);
  CHECK(c && chain_pread(c, got, 4096, 4 * 4096) == -EIO, "unaligned is EIO");
  chain_close(c);
  free(q.buf);
}

static void
test_compressed(int zstd)
{
  const size_t cs = 65536;
  struct q q;
  unsigned char *a = malloc(cs), *z = malloc(2 * cs), *got = malloc(2 * cs);
  size_t clen;
  uint64_t coff;
  chain_t *c;

  q_init(&q, 16, 2 * cs, 3, 0, zstd);
  fill(a, cs, 3);
  memset(a + 1000, 0, 20000);
  clen = zstd ? ZSTD_compress(z, 2 * cs, a, cs, 3)
              : deflate_raw(a, cs, z, 2 * cs);
  /* payload at an unaligned offset, and the file ends with it */
  coff = 3 * cs + 700;
  grow(&q, coff + clen);
  memcpy(q.buf + coff, z, clen);
  q.len = coff + clen;
  q_l2(&q, 1, q_cdesc(&q, coff, clen), 0);
  c = q_chain(&q, 1 << 20, 0);
  CHECK(c != NULL, "open compressed");
  if (c) {
    CHECK(chain_pread(c, got, cs, cs) == 0 && !memcmp(got, a, cs),
          "whole compressed cluster (%s)", zstd ? "zstd" : "zlib");
    CHECK(chain_pread(c, got, 777, cs + 3000) == 0 &&
          !memcmp(got, a + 3000, 777), "partial compressed cluster");
    CHECK(chain_pread(c, got, 2 * cs - 10, 5) == 0 && is_zero(got, cs - 5) &&
          !memcmp(got + cs - 5, a, cs - 5), "across kinds");
    chain_close(c);
  }
  /* corrupt payload */
  memset(q.buf + coff, 0xff, clen < 64 ? clen : 64);
  c = q_chain(&q, 0, 0);
  CHECK(c && chain_pread(c, got, 100, cs) == -EIO &&
        strstr(bfs_last_error(), "decompress"), "corrupt payload is EIO");
  chain_close(c);
  /* truncated payload */
  memcpy(q.buf + coff, z, clen);
  q.len = coff + clen / 2;
  c = q_chain(&q, 0, 0);
  CHECK(c && chain_pread(c, got, cs, cs) == -EIO, "truncated payload is EIO");
  chain_close(c);
  /* payload pointing past the end */
  q.len = coff + clen;
  q_l2(&q, 1, q_cdesc(&q, coff + 4 * cs, clen), 0);
  c = q_chain(&q, 0, 0);
  CHECK(c && chain_pread(c, got, cs, cs) == -EIO, "payload past EOF is EIO");
  chain_close(c);
  free(a);
  free(z);
  free(got);
  free(q.buf);
}

static void
test_extended(void)
{
  const size_t cs = 32768, sc = cs / 32;
  struct q q;
  unsigned char *a = malloc(cs), *got = malloc(cs);
  uint64_t host;
  chain_t *c;
  struct chain_extent e;

  q_init(&q, 15, 2 * cs, 3, 1, 0);
  fill(a, cs, 5);
  host = q_data(&q, a, cs);
  /* sc 0 and 2 allocated, sc 1 zero, the rest unallocated */
  q_l2(&q, 0, host, (1ull << 0) | (1ull << 2) | (1ull << 33));
  c = q_chain(&q, 0, 0);
  CHECK(c != NULL, "open extended l2");
  if (c) {
    CHECK(chain_pread(c, got, cs, 0) == 0, "read subclusters");
    CHECK(!memcmp(got, a, sc) && is_zero(got + sc, sc) &&
          !memcmp(got + 2 * sc, a + 2 * sc, sc) &&
          is_zero(got + 3 * sc, cs - 3 * sc), "subcluster contents");
    CHECK(chain_extent_at(c, 0, &e) == 0 && e.len == sc, "subcluster extent");
    chain_close(c);
  }
  q_l2(&q, 0, host, (1ull << 4) | (1ull << 36));
  c = q_chain(&q, 0, 0);
  CHECK(c && chain_pread(c, got, 100, 4 * sc) == -EIO, "alloc+zero is EIO");
  chain_close(c);
  q_l2(&q, 0, 0, 1ull << 4);
  c = q_chain(&q, 0, 0);
  CHECK(c && chain_pread(c, got, 100, 4 * sc) == -EIO, "alloc without host");
  chain_close(c);
  free(a);
  free(got);
  free(q.buf);
}

/* a recipe's opener over the one in-memory image q */
static int
mem_opener(void *opaque, const struct blk_layer *l, struct blk_io **io)
{
  struct q *q = opaque;
  return blk_io_memory(q->buf, q->len, l->locator, io);
}

/* open buf as qcow2 (or raw) with no backing: inspection */
static int
open_mem(const void *buf, size_t len, const char *name, bool qcow2,
         struct bfs_blk **out)
{
  struct blk_io *io;
  *out = NULL;
  if (blk_io_memory(buf, len, name, &io) < 0)
    return -ENOMEM;
  return (qcow2 ? blk_qcow2_open : blk_raw_open)(io, NULL, NULL, out);
}

static void
test_header(void)
{
  struct q q;
  struct bfs_blk *img;
  const struct bfs_blk_info *in;

  q_init(&q, 16, 1 << 20, 3, 0, 1);
  /* backing name and backing format extension */
  memcpy(q.buf + 112, "\xe2\x79\x2a\xca\0\0\0\5qcow2\0\0\0\0\0\0\0\0\0\0\0", 24);
  memcpy(q.buf + 1024, "../base.img", 11);
  put64(&q, 8, 1024);
  put32(&q, 16, 11);
  CHECK(open_mem(q.buf, q.len, "h.qcow2", true, &img) == 0, "open header");
  if (img) {
    in = bfs_blk_info(img);
    CHECK(!strcmp(in->format, "qcow2") && in->version == 3 &&
          in->virtual_size == 1 << 20 && in->cluster_bits == 16 &&
          !strcmp(in->compression, "zstd") && !in->extended_l2,
          "header fields");
    CHECK(in->backing_file && !strcmp(in->backing_file, "../base.img"),
          "backing name");
    CHECK(in->backing_format && !strcmp(in->backing_format, "qcow2"),
          "backing format");
    CHECK(!strcmp(img->name, "h.qcow2"), "name");
    bfs_blk_close(img);
  }
  /* a long extension first: the backing format lies past the first 4 KiB */
  memset(q.buf + 112, 0, 24);
  put32(&q, 112, 0x6803f857);
  put32(&q, 116, 5000);
  memcpy(q.buf + 120 + 5000, "\xe2\x79\x2a\xca\0\0\0\3raw\0\0\0\0\0", 16);
  memcpy(q.buf + 6000, "../base.img", 11);
  put64(&q, 8, 6000);
  CHECK(open_mem(q.buf, q.len, "h.qcow2", true, &img) == 0 &&
        bfs_blk_info(img)->backing_format &&
        !strcmp(bfs_blk_info(img)->backing_format, "raw"),
        "extension past the first 4 KiB");
  bfs_blk_close(img);
  put64(&q, 72, (1ull << 3) | (1ull << 9));
  CHECK(open_mem(q.buf, q.len, "h.qcow2", true, &img) == -ENOTSUP &&
        strstr(bfs_last_error(), "incompatible"), "unknown incompat bit");
  put64(&q, 72, 1ull << 3);
  put32(&q, 32, 2);                                 /* LUKS */
  /* LUKS is read now (blk/luks.c), but a LUKS image without its full disk
   * encryption header extension is corrupt, at open and in a recipe */
  CHECK(open_mem(q.buf, q.len, "h.qcow2", true, &img) == -EIO &&
        strstr(bfs_last_error(), "encryption header extension"),
        "LUKS without its header extension refused");
  bfs_blk_close(img);
  {
    struct blk_layer l = { "qcow2", "h.qcow2", NULL };
    struct blk_recipe rc = { .n = 1, .layers = &l };
    struct bfs_blk *st;
    CHECK(blk_open_recipe(&rc, mem_opener, &q, &st) == -EIO,
          "LUKS without its header extension refused by the recipe");
  }
  put32(&q, 32, 0);
  put32(&q, 36, 0);                                 /* L1 too small */
  CHECK(open_mem(q.buf, q.len, "h.qcow2", true, &img) == -EIO, "L1 too small");
  /* raw: anything (a layout or a recorded backing format says raw) */
  CHECK(open_mem("hello world, not qcow2", 22, "r.raw", false, &img) == 0 &&
        !strcmp(bfs_blk_info(img)->format, "raw") &&
        bfs_blk_info(img)->virtual_size == 512,
        "raw, size in whole sectors as QEMU");
  bfs_blk_close(img);
  CHECK(open_mem("", 0, "e.raw", false, &img) == -EIO, "empty file refused");
  /* every truncation of a valid header fails cleanly or opens */
  free(q.buf);
  q_init(&q, 16, 1 << 20, 3, 0, 0);
  for (size_t n = 0; n < 200; n++)
    if (open_mem(q.buf, n, "t.qcow2", true, &img) == 0)
      bfs_blk_close(img);
  free(q.buf);
}

/* ---- concurrency: 4 threads, tiny caches forcing evictions ---- */

struct tctx {
  chain_t *c;
  const unsigned char *expect;
  uint64_t size;
  unsigned seed;
  int bad;
};

static void *
reader(void *arg)
{
  struct tctx *t = arg;
  unsigned char *buf = malloc(300000);
  for (int i = 0; i < 400; i++) {
    uint64_t off = (uint64_t)rand_r(&t->seed) % t->size;
    size_t len = (size_t)rand_r(&t->seed) % 300000;
    if (len > t->size - off)
      len = (size_t)(t->size - off);
    if (chain_pread(t->c, buf, len, off) < 0 ||
        memcmp(buf, t->expect + off, len))
      t->bad++;
  }
  free(buf);
  return NULL;
}

static void
test_threads(void)
{
  const size_t cs = 4096, n = 512;        /* 2 MiB, one L2 table */
  struct q q;
  unsigned char *expect = calloc(n, cs), *z = malloc(2 * cs);
  pthread_t th[4];
  struct tctx t[4];
  chain_t *c;

  q_init(&q, 12, n * cs, 3, 0, 0);
  for (size_t i = 0; i < n; i++) {
    unsigned char *a = expect + i * cs;
    switch (i % 4) {
    case 0: case 1:
      fill(a, cs, (unsigned)i);
      if (i % 8 == 1) {                   /* compressed */
        size_t clen = deflate_raw(a, cs, z, 2 * cs);
        uint64_t coff = q_data(&q, z, clen);
        q_l2(&q, (unsigned)i, q_cdesc(&q, coff, clen), 0);
      }
      else
        q_l2(&q, (unsigned)i, q_data(&q, a, cs), 0);
      break;
    case 2:
      q_l2(&q, (unsigned)i, 1, 0);
      break;
    default:
      break;
    }
  }
  /* cache of 4 clusters, map cap of 1 byte: constant eviction */
  c = q_chain(&q, 4 * cs, 1);
  CHECK(c != NULL, "open threaded image");
  if (c) {
    for (int i = 0; i < 4; i++) {
      t[i] = (struct tctx){ c, expect, n * cs, (unsigned)i + 1, 0 };
      pthread_create(&th[i], NULL, reader, &t[i]);
    }
    for (int i = 0; i < 4; i++) {
      pthread_join(th[i], NULL);
      CHECK(t[i].bad == 0, "thread %d: %d bad reads", i, t[i].bad);
    }
    chain_close(c);
  }
  free(expect);
  free(z);
  free(q.buf);
}

/* ---- recipes of files on disk: a shorter raw base, never probed ---- */

static char tmpdir[] = "/tmp/bfs-unit-XXXXXX";

static int
file_opener(void *opaque, const struct blk_layer *l, struct blk_io **io)
{
  char p[512];
  int fd;
  (*(int *)opaque)++;
  snprintf(p, sizeof p, "%s/%s", tmpdir, l->locator);
  if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
    return bfs_error(-errno, "%s: %s", p, strerror(errno));
  return blk_io_fd(fd, l->locator, io);
}

static void
write_file(const char *path, const void *buf, size_t len)
{
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
    abort();
}

static void
test_resolver(void)
{
  const size_t cs = 4096;
  struct q q;
  unsigned char base[3 * 4096], a[4096], got[8 * 4096];
  char top[256], basep[256];
  int calls = 0;
  struct blk_layer two[2] = { { "qcow2", "top.qcow2", NULL },
                              { "raw", "base.raw", NULL } };
  struct blk_recipe rc = { .n = 2, .layers = two }, rc1 = { .n = 1,
                                                             .layers = two };
  chain_t *c = NULL;

  if (!mkdtemp(tmpdir))
    abort();
  snprintf(top, sizeof top, "%s/top.qcow2", tmpdir);
  snprintf(basep, sizeof basep, "%s/base.raw", tmpdir);
  fill(base, sizeof base, 9);
  base[0] = 'Q'; base[1] = 'F'; base[2] = 'I'; base[3] = 0xfb; /* never probed */
  write_file(basep, base, sizeof base);
  /* overlay of 8 clusters over a 3-cluster raw base; cluster 1 is its own */
  q_init(&q, 12, 8 * cs, 3, 0, 0);
  memcpy(q.buf + 112, "\xe2\x79\x2a\xca\0\0\0\3raw\0\0\0\0\0\0\0\0\0", 16);
  memcpy(q.buf + 1024, "/mnt/gone/pool/base.raw", 23);
  put64(&q, 8, 1024);
  put32(&q, 16, 23);
  fill(a, cs, 4);
  q_l2(&q, 1, q_data(&q, a, cs), 0);
  write_file(top, q.buf, q.len);

  CHECK(blk_open_recipe(&rc1, file_opener, &calls, &c) == -ENOENT &&
        strstr(bfs_last_error(), "top.qcow2") &&
        strstr(bfs_last_error(), "/mnt/gone/pool/base.raw"),
        "a recorded backing the recipe lacks");
  calls = 0;
  CHECK(blk_open_recipe(&rc, file_opener, &calls, &c) == 0 && calls == 2,
        "recipe opened (%d files)", calls);
  if (c) {
    CHECK(bfs_blk_depth(c) == 2 &&
          !strcmp(bfs_blk_info(bfs_blk_layer(c, 1))->format, "raw"),
          "raw base despite its qcow2 magic");
    CHECK(chain_pread(c, got, sizeof got, 0) == 0, "read chain");
    CHECK(!memcmp(got, base, cs) && !memcmp(got + cs, a, cs) &&
          !memcmp(got + 2 * cs, base + 2 * cs, cs) &&
          is_zero(got + 3 * cs, 5 * cs), "overlay, base, zeros past the base");
    chain_close(c);
  }
  unlink(top);
  unlink(basep);
  rmdir(tmpdir);
  free(q.buf);
}

int
main(void)
{
  bfs_log_level = BFS_LOG_ERROR;
  for (int pass = 0; pass < 2; pass++) {
    /* pass 1: the cache runs a request's pieces on a pool */
    if (pass == 1 && bfs_pool_new(3, &pool) < 0) {
      fprintf(stderr, "no pool: %s\n", bfs_last_error());
      return 1;
    }
    test_standard(2);
    test_standard(3);
    test_compressed(0);
    test_compressed(1);
    test_extended();
    test_header();
    test_threads();
    if (pass == 0)
      test_resolver();                  /* files, no cache options */
  }
  bfs_pool_free(pool);
  printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
