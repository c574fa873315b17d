/* test-flatten.c — the worker pool (common/pool.h) and the sparse-flatten
 * engine (blk/flatten.h) against a model disk in memory:
 *   - pool loops cover every item exactly once, nest (a loop inside a
 *     loop item) without deadlock, and return the first error with its
 *     message; async tasks run or are dropped, never lost;
 *   - flatten writes exactly the model's bytes, leaves holes unallocated
 *     (SEEK_DATA on the output), calls data/hole in disk order with
 *     every byte once, for 1..8 readers and sizes that are no multiple of
 *     the chunk; a read error in the middle stops it with the source's
 *     message; a sink error stops it with its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "blk/flatten.h"
#include "common/error.h"
#include "common/pool.h"

static int failures;
#define CHECK(cond, ...) do {                                            \
    if (!(cond)) {                                                       \
      failures++;                                                        \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);             \
      printf(__VA_ARGS__);                                               \
      printf(" [last error: %s]\n", bfs_last_error());                   \
    }                                                                    \
  } while (0)

/* ---- pool ---- */

struct counts {
  struct bfs_pool *p;
  unsigned hits[1000];
  size_t fail_at;
};

static int
count_item(void *arg, size_t i)
{
  struct counts *c = arg;
  __atomic_add_fetch(&c->hits[i], 1, __ATOMIC_RELAXED);
  if (i == c->fail_at)
    return bfs_error(-EIO, "item %zu failed on purpose", i);
  return 0;
}

static int
nested_item(void *arg, size_t i)
{
  struct counts *c = arg;
  struct counts inner = { .p = c->p, .fail_at = SIZE_MAX };
  int r = bfs_pool_for(c->p, 50, count_item, &inner);
  for (size_t k = 0; k < 50; k++)
    if (inner.hits[k] != 1)
      return bfs_error(-EIO, "inner item %zu ran %u times", k,
                       inner.hits[k]);
  __atomic_add_fetch(&c->hits[i], 1, __ATOMIC_RELAXED);
  return r;
}

static void
bump(void *arg)
{
  __atomic_add_fetch((unsigned *)arg, 1, __ATOMIC_RELAXED);
}

static void
test_pool(void)
{
  struct counts c = { .fail_at = SIZE_MAX };
  unsigned ran = 0;

  CHECK(bfs_pool_new(3, &c.p) == 0 && bfs_pool_threads(c.p) == 3, "pool");
  for (int round = 0; round < 20; round++) {
    memset(c.hits, 0, sizeof c.hits);
    CHECK(bfs_pool_for(c.p, 1000, count_item, &c) == 0, "loop");
    for (size_t i = 0; i < 1000; i++)
      CHECK(c.hits[i] == 1, "round %d item %zu ran %u times", round, i,
            c.hits[i]);
  }
  memset(c.hits, 0, sizeof c.hits);
  CHECK(bfs_pool_for(c.p, 40, nested_item, &c) == 0, "nested loops");
  for (size_t i = 0; i < 40; i++)
    CHECK(c.hits[i] == 1, "nested item %zu", i);
  memset(c.hits, 0, sizeof c.hits);
  c.fail_at = 500;
  bfs_clear_error();
  CHECK(bfs_pool_for(c.p, 1000, count_item, &c) == -EIO &&
        strstr(bfs_last_error(), "item 500 failed on purpose"),
        "the first error and its message reach the caller");
  c.fail_at = SIZE_MAX;
  for (int i = 0; i < 200; i++)
    bfs_pool_async(c.p, bump, bump, &ran);     /* run or dropped: counted */
  bfs_pool_free(c.p);
  CHECK(ran == 200, "async tasks ran or were dropped: %u of 200", ran);
  memset(c.hits, 0, sizeof c.hits);
  CHECK(bfs_pool_for(NULL, 10, count_item, &c) == 0 && c.hits[9] == 1,
        "a NULL pool runs on the caller");
}

/* ---- flatten over a model ---- */

#define MODEL_EXT 4096
struct model {
  uint64_t size;
  unsigned char *bytes;
  bool *data;                       /* per MODEL_EXT block */
  uint64_t fail_read_at;            /* a pread covering this fails */
  /* what the writer saw, in order */
  uint64_t next_data, next_any;
  bool order_ok;
  uint64_t data_bytes, hole_bytes;
  uint64_t fail_sink_at;
};

static int
m_extent(void *ctx, uint64_t off, uint64_t max, uint64_t *len, bool *data,
         int *fd, uint64_t *fd_off)
{
  struct model *m = ctx;

  (void)fd, (void)fd_off;           /* no plain files: fd stays -1 */
  uint64_t b = off / MODEL_EXT, end = off;

  *data = m->data[b];
  while (end < m->size && m->data[end / MODEL_EXT] == *data)
    end = (end / MODEL_EXT + 1) * MODEL_EXT;
  if (end > m->size)
    end = m->size;
  /* answer in odd pieces, as a block status may */
  *len = end - off > 3 * MODEL_EXT + 100 ? 3 * MODEL_EXT + 100 : end - off;
  if (*len > max)
    *len = max;
  return 0;
}

static int
m_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
  struct model *m = ctx;
  if (m->fail_read_at >= off && m->fail_read_at < off + len)
    return bfs_error(-EIO, "model: bad bytes at %llu",
                     (unsigned long long)m->fail_read_at);
  memcpy(buf, m->bytes + off, len);
  return 0;
}

static int
m_data(void *ctx, const void *buf, size_t len, uint64_t off)
{
  struct model *m = ctx;
  if (off != m->next_any || memcmp(buf, m->bytes + off, len))
    m->order_ok = false;
  m->next_any = off + len;
  m->data_bytes += len;
  if (m->fail_sink_at >= off && m->fail_sink_at < off + len)
    return bfs_error(-ENOSPC, "sink full at %llu",
                     (unsigned long long)m->fail_sink_at);
  return 0;
}

static int
m_hole(void *ctx, uint64_t off, uint64_t len)
{
  struct model *m = ctx;
  if (off != m->next_any)
    m->order_ok = false;
  m->next_any = off + len;
  m->hole_bytes += len;
  return 0;
}

static void
model_init(struct model *m, uint64_t size, unsigned seed)
{
  uint64_t nb = (size + MODEL_EXT - 1) / MODEL_EXT;
  memset(m, 0, sizeof *m);
  m->size = size;
  m->bytes = calloc(1, size);
  m->data = calloc(nb, sizeof *m->data);
  srand(seed);
  for (uint64_t b = 0; b < nb;) {
    bool d = rand() % 3 != 0;
    uint64_t run = 1 + (uint64_t)rand() % 300;
    for (; run-- && b < nb; b++) {
      m->data[b] = d;
      if (d)
        for (uint64_t i = b * MODEL_EXT; i < (b + 1) * MODEL_EXT && i < size;
             i++)
          m->bytes[i] = (unsigned char)(1 + (i * 31 + b) % 251);
    }
  }
  m->fail_read_at = m->fail_sink_at = UINT64_MAX;
  m->order_ok = true;
}

static int
run_flatten(struct model *m, unsigned threads, int *fdp)
{
  struct blk_flatten_src src = { .size = m->size, .ctx = m,
                                 .extent = m_extent, .pread = m_pread };
  struct blk_flatten_opts o = { .threads = threads, .data = m_data,
                                .hole = m_hole, .ctx = m };
  int fd = memfd_create("flat", MFD_CLOEXEC);

  *fdp = fd;
  if (fd < 0 || ftruncate(fd, (off_t)m->size) < 0)
    return -errno;
  m->next_any = m->data_bytes = m->hole_bytes = 0;
  m->order_ok = true;
  return blk_flatten(&src, fd, "memfd", &o);
}

static void
test_flatten(void)
{
  static const uint64_t sizes[] = { 4096, (2u << 20) - 512, 2u << 20,
                                    (7u << 20) + 4096 * 3 + 512, 33u << 20 };
  static const unsigned threads[] = { 1, 2, 3, 8 };

  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
    for (size_t ti = 0; ti < sizeof threads / sizeof *threads; ti++) {
      struct model m;
      uint64_t want_data = 0;
      unsigned char *got;
      int fd, r;

      model_init(&m, sizes[si], (unsigned)(si * 10 + ti));
      for (uint64_t b = 0; b * MODEL_EXT < m.size; b++)
        if (m.data[b])
          want_data += m.size - b * MODEL_EXT < MODEL_EXT
                       ? m.size - b * MODEL_EXT : MODEL_EXT;
      r = run_flatten(&m, threads[ti], &fd);
      CHECK(r == 0, "flatten %llu bytes, %u threads",
            (unsigned long long)m.size, threads[ti]);
      CHECK(m.order_ok && m.next_any == m.size &&
            m.data_bytes == want_data &&
            m.data_bytes + m.hole_bytes == m.size,
            "size %llu threads %u: in order, every byte once (data %llu "
            "want %llu, holes %llu)", (unsigned long long)m.size,
            threads[ti], (unsigned long long)m.data_bytes,
            (unsigned long long)want_data,
            (unsigned long long)m.hole_bytes);
      got = malloc(m.size);
      CHECK(pread(fd, got, m.size, 0) == (ssize_t)m.size &&
            !memcmp(got, m.bytes, m.size), "output bytes, size %llu",
            (unsigned long long)m.size);
      /* holes stay holes: no data where the model has none */
      for (uint64_t b = 0; b * MODEL_EXT < m.size; b++)
        if (!m.data[b]) {
          off_t d = lseek(fd, (off_t)(b * MODEL_EXT), SEEK_DATA);
          CHECK(d < 0 || (uint64_t)d > b * MODEL_EXT,
                "block %llu of a hole was written",
                (unsigned long long)b);
          break;                    /* one probe per case is enough */
        }
      free(got);
      close(fd);
      free(m.bytes);
      free(m.data);
    }

  /* a read error in the middle: stopped, the source's message */
  struct model m;
  int fd;
  model_init(&m, 16u << 20, 7);
  memset(m.data, 1, (16u << 20) / MODEL_EXT);
  m.fail_read_at = (9u << 20) + 77;
  bfs_clear_error();
  CHECK(run_flatten(&m, 3, &fd) == -EIO &&
        strstr(bfs_last_error(), "model: bad bytes at"),
        "a read error stops the copy with its message");
  CHECK(m.next_any <= (9u << 20), "nothing past the bad chunk was "
        "handed on (%llu)", (unsigned long long)m.next_any);
  close(fd);
  m.fail_read_at = UINT64_MAX;
  m.fail_sink_at = 5u << 20;
  CHECK(run_flatten(&m, 3, &fd) == -ENOSPC &&
        strstr(bfs_last_error(), "sink full"),
        "a sink error stops the copy with its message");
  close(fd);
  free(m.bytes);
  free(m.data);
}

/* ---- copy_plain: plain runs go file to file ---- */

struct plain_model {
  struct model m;
  int src_fd;                       /* holds m.bytes at their guest offsets */
};

/* extents within one 64 KiB each; every other 64 KiB of data is plain
 * bytes of src_fd */
static int
m_extent_plain(void *ctx, uint64_t off, uint64_t max, uint64_t *len,
               bool *data, int *fd, uint64_t *fd_off)
{
  struct plain_model *pm = ctx;
  uint64_t to64k = 65536 - (off & 65535);
  int r = m_extent(ctx, off, max < to64k ? max : to64k, len, data, NULL,
                   NULL);

  if (r == 0 && fd && *data && (off >> 16) % 2 == 0) {
    *fd = pm->src_fd;
    *fd_off = off;
  }
  return r;
}

static int
run_copy_plain(struct plain_model *pm, unsigned threads, int *fdp)
{
  struct blk_flatten_src src = { .size = pm->m.size, .ctx = pm,
                                 .extent = m_extent_plain, .pread = m_pread };
  struct blk_flatten_opts o = { .threads = threads, .copy_plain = true };
  int fd = memfd_create("flat", MFD_CLOEXEC);

  *fdp = fd;
  if (fd < 0 || ftruncate(fd, (off_t)pm->m.size) < 0)
    return -errno;
  return blk_flatten(&src, fd, "memfd", &o);
}

static void
test_copy_plain(void)
{
  struct plain_model pm;
  const uint64_t size = (9u << 20) + 4096 * 5;
  unsigned char *got = malloc(size);
  int fd;

  model_init(&pm.m, size, 99);
  pm.src_fd = memfd_create("src", MFD_CLOEXEC);
  CHECK(pm.src_fd >= 0 &&
        pwrite(pm.src_fd, pm.m.bytes, size, 0) == (ssize_t)size,
        "source file");
  CHECK(run_copy_plain(&pm, 3, &fd) == 0, "copy_plain: %s",
        bfs_last_error());
  CHECK(pread(fd, got, size, 0) == (ssize_t)size &&
        !memcmp(got, pm.m.bytes, size), "copy_plain: output bytes");
  close(fd);

  /* the layer file ends early: EIO, never zeros */
  CHECK(ftruncate(pm.src_fd, 5u << 20) == 0, "truncate the source");
  bfs_clear_error();
  CHECK(run_copy_plain(&pm, 3, &fd) == -EIO &&
        strstr(bfs_last_error(), "ended early"),
        "a plain run past the file's end is EIO (%s)", bfs_last_error());
  close(fd);
  close(pm.src_fd);
  free(got);
  free(pm.m.bytes);
  free(pm.m.data);
}

int
main(void)
{
  bfs_log_level = BFS_LOG_ERROR;
  test_pool();
  test_flatten();
  test_copy_plain();
  printf("%d failures\n", failures);
  return failures ? 1 : 0;
}
