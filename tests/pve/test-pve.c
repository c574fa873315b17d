/* test-pve.c — the vma and pbs drivers through blk/, on archives and
 * datastores that gen-pve.py writes from the format specifications, from
 * raw images with random data, explicit zeros and holes.  Oracle: each
 * source converted with `qemu-img convert -O raw`.
 *
 *   test-pve vma|vma-zst|pbs|pbs-bad|pbs-crypt GEN_PVE_PY AESGCM
 *   test-pve bench-read DATASTORE CACHE_MIB FIDX...   (bench/pbs-read.sh)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blk/pbs.h"
#include "blk/recipe.h"
#include "blk/vma.h"
#include "common/error.h"
#include "tests/blk/blktest.h"

static const char *gen, *aesgcm;
static void test_pbs_threads(void);

#define KEY1 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY2 "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

/* a raw image: random data, explicit zeros, holes, an unaligned tail */
static void
make_src(const char *name, uint64_t size, unsigned seed)
{
  const char *p = bt_path(name);
  bt_sh("qemu-img create -q -f raw '%s' %" PRIu64, p, size);
  for (unsigned i = 0; i < 6; i++) {
    uint64_t off = ((seed * 7919u + i * 104729u) % (size / 4096)) * 4096;
    uint64_t len = 4096 * (1 + (seed + i * 13) % 90);
    if (off + len > size)
      len = size - off;
    bt_sh("head -c %" PRIu64 " /dev/urandom | dd of='%s' bs=4096 seek=%"
          PRIu64 " oflag=seek_bytes conv=notrunc status=none", len, p, off);
  }
  /* explicit zeros (allocated), a partial block, the last bytes */
  bt_sh("dd if=/dev/zero of='%s' bs=4096 seek=%" PRIu64 " count=40 "
        "conv=notrunc status=none", p, (size / 2) / 4096);
  bt_sh("head -c 1000 /dev/urandom | dd of='%s' bs=1 seek=70000 "
        "conv=notrunc status=none", p);
  bt_sh("head -c 300 /dev/urandom | dd of='%s' bs=1 seek=%" PRIu64
        " conv=notrunc status=none", p, size - 300);
  bt_sh("qemu-img convert -O raw '%s' '%s.oracle'", p, p);
}

struct counts {
  unsigned data, zero, hole;
};

/* the whole disk, random reads and block status against the oracle */
static struct counts
compare(struct bfs_blk *b, const char *src, const char *what)
{
  struct tbuf o;
  char oname[256];
  unsigned char *buf;
  struct counts n = { 0, 0, 0 };
  uint64_t off;

  snprintf(oname, sizeof oname, "%s.oracle", src);
  o = bt_load(oname);
  CHECK(b->size == o.len, "%s: size %" PRIu64 " want %zu", what, b->size,
        o.len);
  if (b->size != o.len)
    return n;
  buf = malloc(1 << 20);
  for (off = 0; off < o.len; off += 1 << 20) {
    size_t len = o.len - off < (1 << 20) ? o.len - off : 1 << 20;
    int r = bfs_blk_pread(b, buf, len, off);
    CHECK(r == 0 && !memcmp(buf, o.p + off, len), "%s: read at %" PRIu64
          " differs (r=%d %s)", what, off, r, r ? bfs_last_error() : "");
  }
  srand(42);
  for (int i = 0; i < 300; i++) {
    uint64_t ro = ((uint64_t)rand() * 7) % o.len;
    size_t len = 1 + (size_t)rand() % 300000;
    if (len > o.len - ro)
      len = o.len - ro;
    int r = bfs_blk_pread(b, buf, len, ro);
    CHECK(r == 0 && !memcmp(buf, o.p + ro, len), "%s: random read %zu at %"
          PRIu64 " differs (r=%d)", what, len, ro, r);
  }
  for (off = 0; off < o.len;) {
    struct bfs_blk_status st;
    int r = bfs_blk_block_status(b, off, o.len - off, &st);
    CHECK(r == 0, "%s: block status at %" PRIu64 ": %s", what, off,
          bfs_last_error());
    if (r)
      break;
    if (st.kind != BFS_BLK_DATA)
      for (uint64_t k = 0; k < st.len; k++)
        if (o.p[off + k]) {
          CHECK(0, "%s: %s at %" PRIu64 " but the oracle has data", what,
                st.kind == BFS_BLK_ZERO ? "ZERO" : "HOLE", off + k);
          break;
        }
    if (st.kind == BFS_BLK_DATA && st.fd >= 0) {
      size_t len = st.len < (1 << 20) ? st.len : 1 << 20;
      CHECK(pread(st.fd, buf, len, (off_t)st.fd_off) == (ssize_t)len &&
            !memcmp(buf, o.p + off, len), "%s: plain DATA at %" PRIu64
            " is not the oracle's bytes", what, off);
    }
    n.data += st.kind == BFS_BLK_DATA;
    n.zero += st.kind == BFS_BLK_ZERO;
    n.hole += st.kind == BFS_BLK_HOLE;
    off += st.len;
  }
  free(buf);
  free(o.p);
  return n;
}

static struct blk_io *
io_of(const char *name)
{
  struct blk_io *io;
  int fd = open(bt_path(name), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || blk_io_fd(fd, name, &io) < 0) {
    printf("FAIL: open %s\n", name);
    exit(1);
  }
  return io;
}

static int
opener(void *opaque, const struct blk_layer *l, struct blk_io **io)
{
  *io = io_of(l->locator);
  return 0;
}

/* ---- VMA ---- */

static void
make_vma(void)
{
  make_src("a.raw", (6 << 20) + 20480, 1);
  make_src("b.raw", 1 << 20, 2);
  bt_sh("printf 'name: web01\\nmemory: 512\\nscsi0: local:vm-100-disk-0\\n'"
        " > '%s'", bt_path("conf"));
  bt_sh("printf '[OPTIONS]\\nenable: 1\\n' > '%s'", bt_path("fw"));
  bt_sh("python3 '%s' vma '%s' --dev drive-scsi0='%s' --dev drive-virtio1="
        "'%s' --config qemu-server.conf='%s' --config qemu-server.fw='%s'",
        gen, bt_path("a.vma"), bt_path("a.raw"), bt_path("b.raw"),
        bt_path("conf"), bt_path("fw"));
}

static void
test_vma(void)
{
  struct vma_index *x, *y;
  struct bfs_blk *b;
  unsigned char *saved;
  size_t slen;
  struct counts n;
  int r;

  make_vma();
  struct blk_io *xio = io_of("a.vma");
  r = vma_index_build(xio, &x);        /* build does not own the io */
  blk_io_close(xio);
  CHECK(r == 0, "index: %s", bfs_last_error());
  if (r)
    return;
  CHECK(x->ndev == 2 && !strcmp(x->devs[0].name, "drive-scsi0") &&
        !strcmp(x->devs[1].name, "drive-virtio1") &&
        x->devs[0].size == (6 << 20) + 20480, "devices as written");
  CHECK(x->nconfig == 2 && !strcmp(x->configs[0].name, "qemu-server.conf") &&
        x->configs[0].len > 10 && !memcmp(x->configs[0].data, "name: web01",
        11), "qemu-server.conf in the header");
  CHECK(!x->truncated, "a whole archive is not truncated");

  r = blk_vma_open_index(io_of("a.vma"), "dev=drive-scsi0", x, &b);
  CHECK(r == 0, "open scsi0: %s", bfs_last_error());
  if (r == 0) {
    n = compare(b, "a.raw", "vma scsi0");
    CHECK(n.data && n.zero && n.hole, "scsi0 has DATA %u ZERO %u HOLE %u",
          n.data, n.zero, n.hole);
    bfs_blk_close(b);
  }
  /* through the recipe and the table, the driver building its own index */
  struct blk_layer l = { "vma", "a.vma", "dev=drive-virtio1" };
  struct blk_recipe rc = { .n = 1, .layers = &l };
  r = blk_open_recipe(&rc, opener, NULL, &b);
  CHECK(r == 0, "recipe virtio1: %s", bfs_last_error());
  if (r == 0) {
    compare(b, "b.raw", "vma virtio1 (recipe, cache)");
    bfs_blk_close(b);
  }
  l.options = "";
  CHECK(blk_open_recipe(&rc, opener, NULL, &b) == -EINVAL &&
        bt_err_has("dev=NAME", NULL), "no device option: %s",
        bfs_last_error());
  l.options = "dev=nope";
  CHECK(blk_open_recipe(&rc, opener, NULL, &b) == -ENOENT &&
        bt_err_has("no device", "nope"), "unknown device: %s",
        bfs_last_error());

  /* save / load */
  CHECK(vma_index_save(x, &saved, &slen) == 0, "save");
  r = vma_index_load(saved, slen, x->archive_size, "saved", &y);
  CHECK(r == 0, "load: %s", bfs_last_error());
  if (r == 0) {
    CHECK(blk_vma_open_index(io_of("a.vma"), "devid=1", y, &b) == 0,
          "open from a loaded index: %s", bfs_last_error());
    compare(b, "a.raw", "vma scsi0 (loaded index)");
    bfs_blk_close(b);
    vma_index_free(y);
  }
  CHECK(vma_index_load(saved, slen, x->archive_size + 512, "saved", &y) ==
        -ESTALE, "a saved index for another size is stale");
  saved[slen - 3] ^= 0x40;         /* an offset of the last map entry */
  r = vma_index_load(saved, slen - 1, x->archive_size, "saved", &y);
  CHECK(r == -EIO && bt_err_has("corrupt", NULL), "short saved index: %d %s",
        r, bfs_last_error());
  free(saved);

  /* a truncated archive: the last extent is cut; the small device was
   * written early (interleaved clusters) and stays whole */
  struct stat st;
  stat(bt_path("a.vma"), &st);
  bt_sh("cp '%s' '%s' && truncate -s %jd '%s'", bt_path("a.vma"),
        bt_path("t.vma"), (intmax_t)(st.st_size - 5000), bt_path("t.vma"));
  r = blk_vma_open(io_of("t.vma"), "dev=drive-scsi0", NULL, &b);
  CHECK(r == -EIO && bt_err_has("truncated", "stops at offset") &&
        bt_err_has("drive-scsi0", NULL), "truncated scsi0: %d %s", r,
        bfs_last_error());
  r = blk_vma_open(io_of("t.vma"), "dev=drive-virtio1", NULL, &b);
  CHECK(r == 0, "the whole device of a truncated archive: %s",
        bfs_last_error());
  if (r == 0) {
    compare(b, "b.raw", "vma virtio1 of the truncated archive");
    bfs_blk_close(b);
  }
  /* a flipped header byte: the MD5 says so */
  bt_sh("cp '%s' '%s' && printf 'X' | dd of='%s' bs=1 seek=13000 "
        "conv=notrunc status=none", bt_path("a.vma"), bt_path("c.vma"),
        bt_path("c.vma"));
  CHECK(blk_vma_open(io_of("c.vma"), "devid=1", NULL, &b) == -EIO &&
        bt_err_has("MD5", NULL), "corrupt header: %s", bfs_last_error());
  vma_index_free(x);
}

static void
test_vma_zst(void)
{
  struct bfs_blk *b;
  struct blk_io *io;
  struct stat st;
  int in, fd, dfd, r;

  if (system("command -v zstd >/dev/null") != 0) {
    printf("SKIP: needs the zstd command\n");
    exit(77);
  }
  make_vma();
  bt_sh("zstd -q '%s' -o '%s'", bt_path("a.vma"), bt_path("a.vma.zst"));
  bt_sh("mkdir '%s'", bt_path("cache"));
  dfd = open(bt_path("cache"), O_RDONLY | O_DIRECTORY);
  in = open(bt_path("a.vma.zst"), O_RDONLY);
  r = vma_unpack(in, "a.vma.zst", dfd, &fd);
  CHECK(r == 0, "unpack: %s", bfs_last_error());
  close(in);
  if (r)
    return;
  fstat(fd, &st);
  CHECK((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size,
        "the unpacked cache is sparse (%jd of %jd bytes)",
        (intmax_t)st.st_blocks * 512, (intmax_t)st.st_size);
  blk_io_fd(fd, "a.vma.zst", &io);
  r = blk_vma_open(io, "dev=drive-scsi0", NULL, &b);
  CHECK(r == 0, "open unpacked: %s", bfs_last_error());
  if (r == 0) {
    compare(b, "a.raw", "vma.zst scsi0");
    bfs_blk_close(b);
  }
  bt_sh("test -z \"$(ls -A '%s')\"", bt_path("cache"));
  /* an interrupted vzdump: the zstd stream stops */
  stat(bt_path("a.vma.zst"), &st);
  bt_sh("head -c %jd '%s' > '%s'", (intmax_t)st.st_size / 2,
        bt_path("a.vma.zst"), bt_path("t.vma.zst"));
  in = open(bt_path("t.vma.zst"), O_RDONLY);
  r = vma_unpack(in, "t.vma.zst", dfd, &fd);
  close(in);
  CHECK(r == 0, "a cut zstd stream unpacks as far as it goes: %s",
        bfs_last_error());
  if (r == 0) {
    blk_io_fd(fd, "t.vma.zst", &io);
    r = blk_vma_open(io, "dev=drive-scsi0", NULL, &b);
    CHECK(r == -EIO && bt_err_has("truncated", NULL), "cut .zst: %d %s", r,
          bfs_last_error());
  }
  /* .vma.lzo as vzdump writes it (lzop), whole and cut */
  if (system("command -v lzop >/dev/null") != 0) {
    printf("no lzop command: .vma.lzo not tested\n");
    close(dfd);
    return;
  }
  bt_sh("lzop -q -o '%s' '%s'", bt_path("a.vma.lzo"), bt_path("a.vma"));
  in = open(bt_path("a.vma.lzo"), O_RDONLY);
  r = vma_unpack(in, "a.vma.lzo", dfd, &fd);
  close(in);
  CHECK(r == 0, "unpack .lzo: %s", bfs_last_error());
  if (r == 0) {
    blk_io_fd(fd, "a.vma.lzo", &io);
    r = blk_vma_open(io, "dev=drive-scsi0", NULL, &b);
    CHECK(r == 0, "open unpacked .lzo: %s", bfs_last_error());
    if (r == 0) {
      compare(b, "a.raw", "vma.lzo scsi0");
      bfs_blk_close(b);
    }
  }
  stat(bt_path("a.vma.lzo"), &st);
  bt_sh("head -c %jd '%s' > '%s'", (intmax_t)st.st_size / 2,
        bt_path("a.vma.lzo"), bt_path("t.vma.lzo"));
  in = open(bt_path("t.vma.lzo"), O_RDONLY);
  r = vma_unpack(in, "t.vma.lzo", dfd, &fd);
  close(in);
  CHECK(r == 0, "a cut lzop stream unpacks as far as it goes: %s",
        bfs_last_error());
  if (r == 0) {
    blk_io_fd(fd, "t.vma.lzo", &io);
    r = blk_vma_open(io, "dev=drive-scsi0", NULL, &b);
    CHECK(r == -EIO && bt_err_has("truncated", NULL), "cut .lzo: %d %s", r,
          bfs_last_error());
  }
  /* a flipped byte in the compressed data: a block checksum */
  bt_sh("cp '%s' '%s' && printf 'X' | dd of='%s' bs=1 seek=%jd "
        "conv=notrunc status=none", bt_path("a.vma.lzo"),
        bt_path("c.vma.lzo"), bt_path("c.vma.lzo"), (intmax_t)st.st_size / 3);
  in = open(bt_path("c.vma.lzo"), O_RDONLY);
  r = vma_unpack(in, "c.vma.lzo", dfd, &fd);
  close(in);
  CHECK(r == -EIO && bt_err_has("lzop block", NULL), "corrupt .lzo: %d %s",
        r, bfs_last_error());
  if (r == 0)
    close(fd);
  close(dfd);
}

/* ---- PBS ---- */

static struct pbs_store *
store_of(const char *root, const struct pbs_key *k, size_t cache)
{
  struct pbs_store *s;
  int fd = open(bt_path(root), O_PATH | O_DIRECTORY);
  if (pbs_store_open(fd, root, k, cache, &s) < 0) {
    printf("FAIL: store %s: %s\n", root, bfs_last_error());
    exit(1);
  }
  return s;
}

static int
open_fidx(struct pbs_store *s, const char *rel, struct bfs_blk **b)
{
  return blk_pbs_open_store(io_of(rel), s, b);
}

/* hex digest of chunk i of a fidx */
static void
chunk_hex(const char *fidx, unsigned i, char hex[65])
{
  struct tbuf t = bt_load(fidx);
  for (int k = 0; k < 32; k++)
    sprintf(hex + 2 * k, "%02x", t.p[4096 + 32 * i + k]);
  free(t.p);
}

#define SNAP1 "ds/vm/100/2026-01-01T00:00:00Z"
#define SNAP2 "ds/vm/100/2026-01-02T00:00:00Z"

static void
make_pbs(const char *root, const char *extra)
{
  make_src("a.raw", (6 << 20) + 20480, 3);
  bt_sh("cp '%s' '%s' && head -c 100000 /dev/urandom | dd of='%s' bs=1 "
        "seek=3000000 conv=notrunc status=none && qemu-img convert -O raw "
        "'%s' '%s.oracle'", bt_path("a.raw"), bt_path("a2.raw"),
        bt_path("a2.raw"), bt_path("a2.raw"), bt_path("a2.raw"));
  bt_sh("python3 '%s' pbs '%s' --vm 100 --time 2026-01-01T00:00:00Z "
        "--drive scsi0='%s' --chunk-size 262144 --compress %s", gen,
        bt_path(root), bt_path("a.raw"), extra);
  bt_sh("python3 '%s' pbs '%s' --vm 100 --time 2026-01-02T00:00:00Z "
        "--drive scsi0='%s' --chunk-size 262144 %s", gen, bt_path(root),
        bt_path("a2.raw"), extra);
  bt_sh("python3 '%s' pbs '%s' --vm 100 --time 2026-01-03T00:00:00Z "
        "--drive scsi0='%s' --chunk-size 262144 --unfinished %s", gen,
        bt_path(root), bt_path("a2.raw"), extra);
}

static void
test_pbs(void)
{
  struct pbs_store *s;
  struct pbs_store_stats s1, s2;
  struct bfs_blk *b;
  struct counts n;
  int fd, r;

  make_pbs("ds", "");
  s = store_of("ds", NULL, 0);
  r = open_fidx(s, SNAP1 "/drive-scsi0.img.fidx", &b);
  CHECK(r == 0, "open snap1: %s", bfs_last_error());
  if (r == 0) {
    n = compare(b, "a.raw", "pbs snap1 (zstd chunks)");
    CHECK(n.data && n.zero && !n.hole, "DATA %u ZERO %u HOLE %u", n.data,
          n.zero, n.hole);
    bfs_blk_close(b);
  }
  pbs_store_stats(s, &s1);
  r = open_fidx(s, SNAP2 "/drive-scsi0.img.fidx", &b);
  CHECK(r == 0, "open snap2: %s", bfs_last_error());
  if (r == 0) {
    compare(b, "a2.raw", "pbs snap2 (plain chunks, shared)");
    bfs_blk_close(b);
  }
  pbs_store_stats(s, &s2);
  CHECK(s2.loads - s1.loads <= 2 && s2.hits > s1.hits, "snap2 shares "
        "snap1's chunks: %" PRIu64 " new loads, %" PRIu64 " hits",
        s2.loads - s1.loads, s2.hits - s1.hits);
  printf("chunk loads: snap1 %" PRIu64 ", snap2 %" PRIu64 " more, hits %"
         PRIu64 "\n", s1.loads, s2.loads - s1.loads, s2.hits);

  /* the recipe, with the store as the ctx */
  struct blk_layer l = { "pbs", SNAP1 "/drive-scsi0.img.fidx", NULL };
  struct blk_recipe rc = { .n = 1, .layers = &l, .ctx = s };
  r = blk_open_recipe(&rc, opener, NULL, &b);
  CHECK(r == 0, "recipe: %s", bfs_last_error());
  if (r == 0) {
    compare(b, "a.raw", "pbs snap1 (recipe, cache)");
    bfs_blk_close(b);
  }
  /* a namespace: the same chunk store at the datastore root */
  bt_sh("python3 '%s' pbs '%s' --ns prod/web --vm 101 --time "
        "2026-01-04T00:00:00Z --drive efidisk0='%s' --chunk-size 262144",
        gen, bt_path("ds"), bt_path("a2.raw"));
  r = open_fidx(s, "ds/ns/prod/ns/web/vm/101/2026-01-04T00:00:00Z/"
                "drive-efidisk0.img.fidx", &b);
  CHECK(r == 0, "open in a namespace: %s", bfs_last_error());
  if (r == 0) {
    compare(b, "a2.raw", "pbs ns prod/web");
    bfs_blk_close(b);
  }
  rc.ctx = NULL;
  CHECK(blk_open_recipe(&rc, opener, NULL, &b) == -EINVAL &&
        bt_err_has("chunk store", NULL), "pbs without a store: %s",
        bfs_last_error());

  /* finished / unfinished, the config blob */
  fd = open(bt_path(SNAP1), O_PATH | O_DIRECTORY);
  CHECK(pbs_snapshot_finished(fd, SNAP1) == 0, "snap1 is finished");
  close(fd);
  fd = open(bt_path("ds/vm/100/2026-01-03T00:00:00Z"), O_PATH | O_DIRECTORY);
  CHECK(pbs_snapshot_finished(fd, "snap3") == -ENOENT &&
        bt_err_has("unfinished", "index.json.blob"), "snap3 unfinished: %s",
        bfs_last_error());
  close(fd);
  struct tbuf cb = bt_load(SNAP1 "/qemu-server.conf.blob");
  unsigned char *conf;
  size_t clen;
  CHECK(pbs_blob_decode(cb.p, cb.len, NULL, 1 << 20, "conf", &conf, &clen)
        == 0 && clen == 11 && !memcmp(conf, "name: test\n", 11),
        "qemu-server.conf.blob: %s", bfs_last_error());
  free(conf);
  cb.p[20] ^= 1;
  CHECK(pbs_blob_decode(cb.p, cb.len, NULL, 1 << 20, "conf", &conf, &clen)
        == -EIO && bt_err_has("CRC32", NULL), "flipped blob byte: %s",
        bfs_last_error());
  free(cb.p);
  pbs_store_unref(s);
  test_pbs_threads();
}

struct reader {
  struct bfs_blk *b;
  const unsigned char *oracle;
  unsigned seed;
  int bad;
};

static void *
reader_main(void *arg)
{
  struct reader *rd = arg;
  unsigned char *buf = malloc(300000);
  for (int i = 0; i < 400; i++) {
    uint64_t off = (uint64_t)rand_r(&rd->seed) % rd->b->size;
    size_t len = 1 + (size_t)rand_r(&rd->seed) % 300000;
    if (len > rd->b->size - off)
      len = (size_t)(rd->b->size - off);
    if (bfs_blk_pread(rd->b, buf, len, off) < 0 ||
        memcmp(buf, rd->oracle + off, len))
      rd->bad++;
  }
  free(buf);
  return NULL;
}

/* 4 threads over two disks of one store whose cache holds 3 chunks:
 * loads, waits for a loading chunk and evictions all race */
static void
test_pbs_threads(void)
{
  struct pbs_store *s = store_of("ds", NULL, 3 * 262144);
  struct bfs_blk *b1, *b2;
  struct tbuf o1 = bt_load("a.raw.oracle"), o2 = bt_load("a2.raw.oracle");
  struct reader rd[4];
  pthread_t t[4];
  struct pbs_store_stats st;

  CHECK(open_fidx(s, SNAP1 "/drive-scsi0.img.fidx", &b1) == 0 &&
        open_fidx(s, SNAP2 "/drive-scsi0.img.fidx", &b2) == 0, "open");
  for (int i = 0; i < 4; i++) {
    rd[i] = (struct reader){ i % 2 ? b2 : b1, i % 2 ? o2.p : o1.p,
                             (unsigned)i + 1, 0 };
    pthread_create(&t[i], NULL, reader_main, &rd[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    CHECK(rd[i].bad == 0, "thread %d: %d bad reads", i, rd[i].bad);
  }
  pbs_store_stats(s, &st);
  CHECK(st.bytes_cached <= 3 * 262144, "the cache stays bounded (%" PRIu64
        " bytes)", st.bytes_cached);
  printf("threads: %" PRIu64 " loads, %" PRIu64 " hits\n", st.loads,
         st.hits);
  bfs_blk_close(b1);
  bfs_blk_close(b2);
  pbs_store_unref(s);
  free(o1.p);
  free(o2.p);
}

static int
read_all(struct bfs_blk *b)
{
  unsigned char *buf = malloc(1 << 20);
  int r = 0;
  for (uint64_t off = 0; r == 0 && off < b->size; off += 1 << 20)
    r = bfs_blk_pread(b, buf, b->size - off < (1 << 20) ? b->size - off
                      : 1 << 20, off);
  free(buf);
  return r;
}

static void
test_pbs_bad(void)
{
  const char *fidx = SNAP1 "/drive-scsi0.img.fidx";
  char hex[65], hex2[65], path[512];
  struct pbs_store *s;
  struct bfs_blk *b;
  int r;

  make_pbs("ds", "");
  chunk_hex(fidx, 0, hex);
  chunk_hex(fidx, 24, hex2);        /* the short last chunk */
  /* a flipped byte: the CRC32 */
  snprintf(path, sizeof path, "ds/.chunks/%.4s/%s", hex, hex);
  bt_sh("cp '%s' '%s.orig' && printf 'X' | dd of='%s' bs=1 seek=30 "
        "conv=notrunc status=none", bt_path(path), bt_path(path),
        bt_path(path));
  s = store_of("ds", NULL, 0);
  CHECK(open_fidx(s, fidx, &b) == 0, "open");
  r = read_all(b);
  CHECK(r == -EIO && bt_err_has(hex, "CRC32"), "flipped chunk byte: %d %s",
        r, bfs_last_error());
  bfs_blk_close(b);
  pbs_store_unref(s);
  /* a well-formed blob with other content: the digest */
  bt_sh("python3 -c \"import sys,struct,zlib,hashlib; "
        "import os; d=os.urandom(262144); "
        "m=hashlib.sha256(b'Proxmox Backup uncompressed blob v1.0')"
        ".digest()[:8]; open(sys.argv[2],'wb').write(m+struct.pack('<I',"
        "zlib.crc32(d))+d)\" '%s.orig' '%s'", bt_path(path), bt_path(path));
  s = store_of("ds", NULL, 0);
  CHECK(open_fidx(s, fidx, &b) == 0, "open");
  r = read_all(b);
  CHECK(r == -EIO && bt_err_has(hex, "digest mismatch"), "substituted "
        "chunk: %d %s", r, bfs_last_error());
  bfs_blk_close(b);
  pbs_store_unref(s);
  bt_sh("mv '%s.orig' '%s'", bt_path(path), bt_path(path));
  /* a missing chunk */
  snprintf(path, sizeof path, "ds/.chunks/%.4s/%s", hex2, hex2);
  bt_sh("rm '%s'", bt_path(path));
  s = store_of("ds", NULL, 0);
  CHECK(open_fidx(s, fidx, &b) == 0, "open");
  r = read_all(b);
  CHECK(r == -EIO && bt_err_has(hex2, "missing"), "missing chunk: %d %s", r,
        bfs_last_error());
  bfs_blk_close(b);
  /* a truncated index, a flipped digest */
  bt_sh("head -c 4200 '%s' > '%s'", bt_path(fidx), bt_path("short.fidx"));
  CHECK(open_fidx(s, "short.fidx", &b) == -EIO && bt_err_has("truncated",
        NULL), "short fidx: %s", bfs_last_error());
  bt_sh("cp '%s' '%s' && printf 'X' | dd of='%s' bs=1 seek=4200 "
        "conv=notrunc status=none", bt_path(fidx), bt_path("flip.fidx"),
        bt_path("flip.fidx"));
  CHECK(open_fidx(s, "flip.fidx", &b) == -EIO && bt_err_has("index "
        "checksum", NULL), "flipped fidx digest: %s", bfs_last_error());
  pbs_store_unref(s);
}

static void
test_pbs_crypt(void)
{
  struct pbs_key k, k2;
  struct pbs_store *s;
  struct bfs_blk *b;
  char extra[512];
  int r;

  snprintf(extra, sizeof extra, "--key " KEY1 " --aesgcm '%s'", aesgcm);
  make_pbs("ds", extra);
  bt_sh("python3 '%s' keyfile '%s' --key " KEY1, gen, bt_path("k1.json"));
  bt_sh("python3 '%s' keyfile '%s' --key " KEY2, gen, bt_path("k2.json"));
  bt_sh("python3 '%s' keyfile '%s' --key " KEY1 " --kdf pbkdf2 --passphrase"
        " 'correct horse' --aesgcm '%s'", gen, bt_path("kp.json"), aesgcm);
  CHECK(pbs_key_load(bt_path("k1.json"), NULL, &k) == 0, "key: %s",
        bfs_last_error());
  s = store_of("ds", &k, 0);
  r = open_fidx(s, SNAP1 "/drive-scsi0.img.fidx", &b);
  CHECK(r == 0, "open encrypted: %s", bfs_last_error());
  if (r == 0) {
    struct counts n = compare(b, "a.raw", "pbs encrypted+zstd");
    CHECK(n.zero, "encrypted zero chunks are ZERO by their keyed digest");
    bfs_blk_close(b);
  }
  CHECK(open_fidx(s, SNAP2 "/drive-scsi0.img.fidx", &b) == 0, "open");
  compare(b, "a2.raw", "pbs encrypted");
  bfs_blk_close(b);
  pbs_store_unref(s);

  CHECK(pbs_key_load(bt_path("kp.json"), "correct horse", &k2) == 0 &&
        !memcmp(k.enc, k2.enc, 32), "pbkdf2 key file: %s", bfs_last_error());
  CHECK(pbs_key_load(bt_path("kp.json"), "wrong horse", &k2) ==
        -EKEYREJECTED && bt_err_has("passphrase", NULL), "wrong passphrase: "
        "%s", bfs_last_error());
  CHECK(pbs_key_load(bt_path("kp.json"), NULL, &k2) == -ENOKEY,
        "passphrase needed: %s", bfs_last_error());

  /* the wrong key, and none */
  CHECK(pbs_key_load(bt_path("k2.json"), NULL, &k2) == 0, "key 2");
  s = store_of("ds", &k2, 0);
  CHECK(open_fidx(s, SNAP1 "/drive-scsi0.img.fidx", &b) == 0, "open");
  r = read_all(b);
  CHECK(r == -EIO && bt_err_has("decryption failed", "wrong key") &&
        bt_err_has("chunk ", NULL), "wrong key: %d %s", r, bfs_last_error());
  bfs_blk_close(b);
  pbs_store_unref(s);
  s = store_of("ds", NULL, 0);
  CHECK(open_fidx(s, SNAP1 "/drive-scsi0.img.fidx", &b) == 0, "open");
  r = read_all(b);
  CHECK(r == -ENOKEY && bt_err_has("pbs_keyfile", NULL), "no key: %d %s", r,
        bfs_last_error());
  bfs_blk_close(b);
  pbs_store_unref(s);
}

/* bench/pbs-read.sh: read each fidx whole through one store, in order;
 * per fidx: MiB/s, chunk loads and cache hits */
static int
bench_read(int argc, char **argv)
{
  struct pbs_store *s;
  int fd = open(argv[2], O_PATH | O_DIRECTORY);
  size_t cache = (size_t)strtoull(argv[3], NULL, 0) << 20;
  unsigned char *buf = malloc(4 << 20);

  if (fd < 0 || pbs_store_open(fd, argv[2], NULL, cache, &s) < 0) {
    fprintf(stderr, "%s\n", bfs_last_error());
    return 1;
  }
  for (int i = 4; i < argc; i++) {
    struct pbs_store_stats a, z;
    struct blk_io *io;
    struct bfs_blk *b;
    struct timespec t0, t1;
    int f = open(argv[i], O_RDONLY);

    if (f < 0 || blk_io_fd(f, argv[i], &io) < 0 ||
        blk_pbs_open_store(io, s, &b) < 0) {
      fprintf(stderr, "%s\n", bfs_last_error());
      return 1;
    }
    pbs_store_stats(s, &a);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t off = 0; off < b->size; off += 4 << 20)
      if (bfs_blk_pread(b, buf, b->size - off < (4 << 20) ? b->size - off
                        : 4 << 20, off) < 0) {
        fprintf(stderr, "%s\n", bfs_last_error());
        return 1;
      }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pbs_store_stats(s, &z);
    double sec = (double)(t1.tv_sec - t0.tv_sec) +
                 (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%s: %.1f MiB in %.2f s = %.1f MiB/s; chunks loaded %" PRIu64
           ", cache hits %" PRIu64 "\n", argv[i], (double)b->size / 1048576,
           sec, (double)b->size / 1048576 / sec, z.loads - a.loads,
           z.hits - a.hits);
    bfs_blk_close(b);
  }
  pbs_store_unref(s);
  free(buf);
  return 0;
}

int
main(int argc, char **argv)
{
  if (argc >= 5 && !strcmp(argv[1], "bench-read"))
    return bench_read(argc, argv);
  if (argc != 4) {
    fprintf(stderr, "usage: test-pve TEST GEN_PVE_PY AESGCM\n");
    return 2;
  }
  gen = argv[2];
  aesgcm = argv[3];
  bt_workdir("pve");
  if (!strcmp(argv[1], "vma"))
    test_vma();
  else if (!strcmp(argv[1], "vma-zst"))
    test_vma_zst();
  else if (!strcmp(argv[1], "pbs"))
    test_pbs();
  else if (!strcmp(argv[1], "pbs-bad"))
    test_pbs_bad();
  else if (!strcmp(argv[1], "pbs-crypt"))
    test_pbs_crypt();
  else {
    fprintf(stderr, "unknown test %s\n", argv[1]);
    return 2;
  }
  bt_cleanup();
  printf("%s: %d failure(s)\n", argv[1], bt_failures);
  return bt_failures ? 1 : 0;
}
