/* test-blk-hostile.c — hostile input per driver, through the blk interface.
 *
 * Images are made with qemu-img/qemu-io, loaded into memory and broken
 * there; every case must fail with the right errno and a message naming
 * the file and the reason (or, for the raw driver, show that a raw layer's
 * contents decide nothing).  Covers: truncated tables, L1/L2/data/
 * compressed payloads past EOF, the v2 zero flag, deflate and zstd streams
 * that do not decode to exactly one cluster (a 64 MiB zstd bomb too),
 * a backing name past the first cluster, unknown incompatible bits,
 * LUKS, virtual sizes not a multiple of 512, and recipes that are too
 * deep, name an unknown driver or disagree with their images.
 */
#include <errno.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "blk/qcow2.h"
#include "blk/recipe.h"
#include "blktest.h"
#include "common/error.h"

#define K 1024

/* Read the whole disk of b in one go: the error of the first bad byte. */
static int
read_all(struct bfs_blk *b)
{
  unsigned char *buf = malloc(b->size);
  int r = bfs_blk_pread(b, buf, b->size, 0);
  free(buf);
  return r;
}

/* Open name's bytes t as qcow2 (memory), read everything: expect errno e
 * at open (at_open) or at read, with the words in the message. */
static void
expect(const char *what, const struct tbuf *t, int e, bool at_open,
       const char *w1, const char *w2)
{
  struct bfs_blk *b = NULL;
  int r;

  bfs_clear_error();
  r = bt_open_qcow2_mem(t, "hostile.qcow2", &b);
  if (r == 0 && !at_open)
    r = read_all(b);
  bfs_blk_close(b);
  CHECK(r == e && bt_err_has("hostile.qcow2", w1) && bt_err_has(w2, NULL),
        "%s: got %d (%s), want %d with '%s'", what, r, bfs_last_error(), e,
        w1);
  if (r == e)
    printf("ok %s: %s\n", what, bfs_last_error());
}

static struct tbuf
image(const char *opts, const char *writes)
{
  bt_sh("rm -f '%s' && qemu-img create -q -f qcow2 -o %s '%s' 1M",
        bt_path("h.qcow2"), opts, bt_path("h.qcow2"));
  if (writes)
    bt_sh("qemu-io -f qcow2 %s '%s' >/dev/null", writes, bt_path("h.qcow2"));
  return bt_load("h.qcow2");
}

static void
tables(void)
{
  const char *w = "-c 'write -P 1 0 512k' -c 'write -P 2 600k 64k'";
  struct tbuf t = image("compat=1.1", w);
  t.len /= 2;
  expect("truncated image", &t, -EIO, false, "past the end", NULL);
  free(t.p);

  t = image("compat=1.1", w);
  bt_put64(&t, 40, 1ull << 40);
  expect("L1 past EOF", &t, -EIO, true, "L1 table", "past the end");
  free(t.p);

  t = image("compat=1.1", w);
  bt_put64(&t, bt_get64(&t, 40), (1ull << 63) | (1ull << 40));
  expect("L2 past EOF", &t, -EIO, false, "L2 table", "past the end");
  free(t.p);

  t = image("compat=1.1", w);
  bt_put64(&t, bt_l2_entry(&t, 0), (1ull << 63) | (1ull << 40));
  expect("data past EOF", &t, -EIO, false, "past the end", NULL);
  free(t.p);

  t = image("compat=1.1", w);
  bt_put32(&t, 36, 0);                          /* L1 of 0 entries for 1 MiB */
  expect("truncated L1 table", &t, -EIO, true, "L1 table too small", NULL);
  free(t.p);

  t = image("compat=1.1", w);
  bt_put64(&t, 72, 1ull << 17);
  expect("unknown incompatible bit", &t, -ENOTSUP, true, "incompatible",
         NULL);
  free(t.p);
}

static void
zero_flag(void)
{
  struct tbuf t = image("compat=0.10", "-c 'write -P 7 0 64k'");
  uint64_t e = bt_l2_entry(&t, 0);
  bt_put64(&t, e, bt_get64(&t, e) | 1);
  expect("v2 zero flag", &t, -EIO, false, "zero flag", "v2");
  free(t.p);

  /* the same flag in v3 is a zero cluster: reads as zeros */
  t = image("compat=1.1", "-c 'write -P 7 0 64k'");
  e = bt_l2_entry(&t, 0);
  bt_put64(&t, e, bt_get64(&t, e) | 1);
  struct bfs_blk *b = NULL;
  unsigned char buf[512];
  CHECK(bt_open_qcow2_mem(&t, "v3.qcow2", &b) == 0 &&
        bfs_blk_pread(b, buf, sizeof buf, 0) == 0 && buf[0] == 0 &&
        buf[511] == 0, "v3 zero flag reads zeros: %s", bfs_last_error());
  bfs_blk_close(b);
  free(t.p);
}

/* Replace the compressed cluster at guest 0 with payload p (appended at
 * the end of the file, sector-aligned). */
static void
put_payload(struct tbuf *t, const void *p, size_t n)
{
  uint32_t cb = bt_get32(t, 20);
  unsigned shift = 62 - (cb - 8);
  uint64_t coff = (t->len + 511) & ~511ull, nsec = (n + 511) / 512;
  t->p = realloc(t->p, coff + nsec * 512);
  memset(t->p + t->len, 0, coff + nsec * 512 - t->len);
  memcpy(t->p + coff, p, n);
  t->len = coff + nsec * 512;
  bt_put64(t, bt_l2_entry(t, 0), QCOW2_OFLAG_COMPRESSED |
           ((nsec - 1) << shift) | coff);
}

static void
compressed(void)
{
  const size_t cs = 64 * K;
  unsigned char *src = calloc(1, 64u << 20), *dst = malloc(ZSTD_compressBound(64u << 20));
  const char *w = "-c 'write -c -P 3 0 64k'";
  struct tbuf t;
  size_t n;

  for (int i = 0; i < 2; i++) {           /* 2 clusters, then a 64 MiB bomb */
    size_t len = i ? 64u << 20 : 2 * cs;
    t = image("compat=1.1,compression_type=zstd", w);
    n = ZSTD_compress(dst, ZSTD_compressBound(len), src, len, 1);
    CHECK(!ZSTD_isError(n) && n < 120 * K, "zstd compress: %zu", n);
    put_payload(&t, dst, n);
    expect(i ? "zstd bomb (64 MiB)" : "zstd frame of two clusters", &t, -EIO,
           false, "more than one cluster", NULL);
    free(t.p);
  }
  t = image("compat=1.1,compression_type=zstd", w);
  n = ZSTD_compress(dst, ZSTD_compressBound(cs / 2), src, cs / 2, 1);
  put_payload(&t, dst, n);
  expect("zstd frame of half a cluster", &t, -EIO, false,
         "less than one cluster", NULL);
  free(t.p);

  struct libdeflate_compressor *c = libdeflate_alloc_compressor(6);
  t = image("compat=1.1", w);
  n = libdeflate_deflate_compress(c, src, 2 * cs, dst, 1 << 20);
  put_payload(&t, dst, n);
  expect("deflate stream of two clusters", &t, -EIO, false,
         "more than one cluster", NULL);
  free(t.p);
  t = image("compat=0.10", w);
  n = libdeflate_deflate_compress(c, src, cs - 512, dst, 1 << 20);
  put_payload(&t, dst, n);
  expect("deflate stream short of a cluster", &t, -EIO, false,
         "less than one cluster", NULL);
  free(t.p);
  libdeflate_free_compressor(c);

  t = image("compat=1.1", w);
  bt_put64(&t, bt_l2_entry(&t, 0), QCOW2_OFLAG_COMPRESSED | (1ull << 40));
  expect("compressed payload past EOF", &t, -EIO, false, "past the end",
         NULL);
  free(t.p);
  free(src);
  free(dst);
}

static void
header(void)
{
  struct tbuf t;
  struct bfs_blk *b = NULL;

  bt_sh("printf 'raw' > '%s'", bt_path("x"));
  bt_sh("rm -f '%s' && qemu-img create -q -f qcow2 -o compat=1.1,"
        "cluster_size=4096 -u -b x -F raw '%s' 1M", bt_path("h.qcow2"),
        bt_path("h.qcow2"));
  t = bt_load("h.qcow2");
  CHECK(t.len > 4096 + 16, "image too small");
  memcpy(t.p + 4096 + 8, "x", 1);
  bt_put64(&t, 8, 4096 + 8);              /* name in the second cluster */
  expect("backing name past the first cluster", &t, -EIO, true,
         "outside the first cluster", NULL);
  bt_put64(&t, 8, 4096 - 1);              /* straddling the boundary */
  bt_put32(&t, 16, 2);
  expect("backing name across the first cluster", &t, -EIO, true,
         "outside the first cluster", NULL);
  free(t.p);

  t = image("compat=1.1", NULL);
  bt_put64(&t, 24, 1000);                 /* QEMU: 512 (whole sectors) */
  CHECK(bt_open_qcow2_mem(&t, "odd.qcow2", &b) == 0 && b->size == 512,
        "virtual size 1000 opens as 512: %s", bfs_last_error());
  bfs_blk_close(b);
  free(t.p);

  /* qemu-img's PBKDF2 timing fails now and then on a loaded machine */
  bt_sh("rm -f '%s' && for i in 1 2 3 4 5; do qemu-img create -q -f qcow2 "
        "--object secret,id=s,data=x -o encrypt.format=luks,"
        "encrypt.key-secret=s,encrypt.iter-time=20 '%s' 1M 2>/dev/null && "
        "break; done",
        bt_path("luks.qcow2"), bt_path("luks.qcow2"));
  t = bt_load("luks.qcow2");
  expect("LUKS without a key", &t, -ENOKEY, false, "a key is needed", NULL);
  free(t.p);
}

static void
raw_driver(void)
{
  /* a raw disk whose first bytes are a qcow2 header naming a backing file
   * stays raw: its bytes are data, nothing else is opened */
  struct tbuf q = image("compat=1.1", NULL), raw = { 0 };
  struct blk_io *io;
  struct bfs_blk *b;
  unsigned char buf[1024];

  bt_sh("rm -f '%s' && qemu-img create -q -f qcow2 -u -b ../../vmB/disk.raw "
        "-F raw '%s' 1M", bt_path("h.qcow2"), bt_path("h.qcow2"));
  free(q.p);
  q = bt_load("h.qcow2");
  raw.len = 1000;                         /* not a multiple of 512 */
  raw.p = q.p;
  if (blk_io_memory(raw.p, raw.len, "forged.raw", &io) < 0 ||
      blk_raw_open(io, NULL, NULL, &b) < 0) {
    CHECK(0, "raw open: %s", bfs_last_error());
    return;
  }
  CHECK(b->size == 1024 && !bfs_blk_info(b)->backing_file &&
        !strcmp(bfs_blk_info(b)->format, "raw"), "raw size %lu",
        (unsigned long)b->size);
  CHECK(bfs_blk_pread(b, buf, 1024, 0) == 0 && !memcmp(buf, raw.p, 1000) &&
        buf[1000] == 0 && buf[1023] == 0, "raw bytes as they are");
  CHECK(bfs_blk_pread(b, buf, 1, 1024) == -EINVAL, "raw read past the end");
  bfs_blk_close(b);

  CHECK(blk_io_memory(raw.p, 0, "empty.raw", &io) == 0 &&
        blk_raw_open(io, NULL, NULL, &b) == -EIO && bt_err_has("empty.raw",
        "empty"), "empty raw refused: %s", bfs_last_error());
  free(q.p);
}

/* ---- recipes ---- */

/* opaque: two images, one for "base*" locators, one for the others */
static int
mem_opener(void *opaque, const struct blk_layer *l, struct blk_io **out)
{
  const struct tbuf *t = opaque;
  if (!strcmp(l->locator, "missing"))
    return bfs_error(-ENOENT, "missing: no such layer");
  if (!strncmp(l->locator, "base", 4))
    t++;
  return blk_io_memory(t->p, t->len, l->locator, out);
}

static void
recipes(void)
{
  struct tbuf tt[2], t = tt[0] = tt[1] = image("compat=1.1",
                                                "-c 'write -P 5 0 64k'");
  struct blk_layer deep[BLK_MAX_DEPTH + 1];
  struct blk_recipe rc = { .layers = deep };
  struct bfs_blk *b = NULL;
  int r;

  for (int i = 0; i <= BLK_MAX_DEPTH; i++)
    deep[i] = (struct blk_layer){ "raw", "layer", NULL };
  rc.n = BLK_MAX_DEPTH + 1;
  r = blk_open_recipe(&rc, mem_opener, tt, &b);
  CHECK(r == -ELOOP && bt_err_has("deeper than", NULL), "deep recipe: %d %s",
        r, bfs_last_error());

  rc.n = 0;
  CHECK(blk_open_recipe(&rc, mem_opener, tt, &b) == -EINVAL, "empty recipe");

  deep[0] = (struct blk_layer){ "vmdk", "a.vmdk", NULL };
  rc.n = 1;
  r = blk_open_recipe(&rc, mem_opener, tt, &b);
  CHECK(r == -ENOTSUP && bt_err_has("unknown driver 'vmdk'", "a.vmdk"),
        "unknown driver: %d %s", r, bfs_last_error());

  /* a layer that opens fails cleanly (no leak) when the next one does not */
  deep[0] = (struct blk_layer){ "qcow2", "missing", NULL };
  deep[1] = (struct blk_layer){ "raw", "base", NULL };
  rc.n = 2;
  r = blk_open_recipe(&rc, mem_opener, tt, &b);
  CHECK(r == -ENOENT, "missing layer: %d %s", r, bfs_last_error());

  /* a qcow2 without a backing file given one, and raw given a backing */
  deep[0] = (struct blk_layer){ "qcow2", "top.qcow2", NULL };
  r = blk_open_recipe(&rc, mem_opener, tt, &b);
  CHECK(r == -EINVAL && bt_err_has("top.qcow2", "no backing file"),
        "qcow2 with an extra layer: %d %s", r, bfs_last_error());
  deep[0] = (struct blk_layer){ "raw", "top.raw", NULL };
  r = blk_open_recipe(&rc, mem_opener, tt, &b);
  CHECK(r == -EINVAL && bt_err_has("top.raw", "no backing"),
        "raw with a backing: %d %s", r, bfs_last_error());
  deep[0] = (struct blk_layer){ "raw", "top.raw", "size=5" };
  rc.n = 1;
  r = blk_open_recipe(&rc, mem_opener, tt, &b);
  CHECK(r == -EINVAL && bt_err_has("unknown options", NULL),
        "unknown option: %d %s", r, bfs_last_error());
  free(t.p);

  /* a qcow2 that records a backing file must have it in the recipe, in
   * the recorded format */
  bt_sh("rm -f '%s' && qemu-img create -q -f qcow2 -u -b base.raw -F raw "
        "'%s' 1M", bt_path("h.qcow2"), bt_path("h.qcow2"));
  tt[0] = bt_load("h.qcow2");
  tt[1] = image("compat=1.1", NULL);
  deep[0] = (struct blk_layer){ "qcow2", "top.qcow2", NULL };
  rc.n = 1;
  r = blk_open_recipe(&rc, mem_opener, tt, &b);
  CHECK(r == -ENOENT && bt_err_has("top.qcow2", "not in the recipe"),
        "backing left out: %d %s", r, bfs_last_error());
  deep[1] = (struct blk_layer){ "qcow2", "base.qcow2", NULL };
  rc.n = 2;
  r = blk_open_recipe(&rc, mem_opener, tt, &b);
  CHECK(r == -EIO && bt_err_has("recorded as raw", NULL),
        "backing format differs: %d %s", r, bfs_last_error());
  deep[1] = (struct blk_layer){ "raw", "base.raw", NULL };
  r = blk_open_recipe(&rc, mem_opener, tt, &b);
  CHECK(r == 0 && bfs_blk_depth(b) == 2, "recipe as recorded: %d %s", r,
        bfs_last_error());
  if (r == 0)
    bfs_blk_close(b);
  free(tt[0].p);
  free(tt[1].p);
}

int
main(void)
{
  bfs_log_level = BFS_LOG_ERROR;
  bt_workdir("blk-hostile");
  tables();
  zero_flag();
  compressed();
  header();
  raw_driver();
  recipes();
  bt_cleanup();
  printf("%d failures\n", bt_failures);
  return bt_failures ? 1 : 0;
}
