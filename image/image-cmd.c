/* image-cmd.c — `backupfs image info|map|cat IMAGE`: debug one image and
 * its backing chain.
 *
 *   info   every layer's header (path, format, version, sizes, compression,
 *          backing name and format)
 *   map    the merged extent map: offset length DATA|ZERO layer
 *   cat    the flat point in time, to stdout or -o FILE.  To a new regular
 *          file, -j reader threads fill 2 MiB chunks (DATA pieces only,
 *          kernel read-ahead started a few chunks ahead) and hand them to
 *          this thread, the only writer (concurrent pwrites would queue on
 *          the file's inode lock); ZERO extents stay holes.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "image/internal.h"

#define CAT_CHUNK (2u * 1024 * 1024)
#define CAT_MAX_THREADS 64

static int
fail(void)
{
  fprintf(stderr, "backupfs: %s\n", bfs_last_error());
  return 1;
}

static void
print_layer(size_t i, const char *path, const img_t *img)
{
  const struct img_info *in = img_get_info(img);
  printf("layer %zu: %s\n", i, path);
  printf("  format: %s\n", in->format == IMG_FORMAT_QCOW2 ? "qcow2" : "raw");
  if (in->format == IMG_FORMAT_QCOW2)
    printf("  version: %d\n", in->version);
  printf("  virtual size: %" PRIu64 "\n", in->virtual_size);
  printf("  file size: %" PRIu64 "\n", in->file_size);
  if (in->format == IMG_FORMAT_QCOW2) {
    printf("  cluster size: %u\n", 1u << in->cluster_bits);
    printf("  compression: %s\n",
           in->compression == IMG_COMPRESSION_ZSTD ? "zstd" : "zlib");
    printf("  extended l2: %s\n", in->extended_l2 ? "yes" : "no");
    if (in->encrypted)
      printf("  encrypted: yes (not supported)\n");
    if (in->external_data)
      printf("  external data file: yes (not supported)\n");
  }
  printf("  backing: %s\n", in->backing_file ? in->backing_file : "none");
  if (in->backing_file)
    printf("  backing format: %s\n",
           in->backing_format ? in->backing_format : "(probed)");
}

static int
cmd_info(const char *path)
{
  chain_t *c;
  uint64_t alloc;

  if (chain_open(path, NULL, &c) < 0) {
    char msg[1024];
    img_t *img;
    snprintf(msg, sizeof msg, "%s", bfs_last_error());
    if (img_open(path, &img) == 0) {         /* show what can be shown */
      print_layer(0, path, img);
      img_close(img);
    }
    fprintf(stderr, "backupfs: %s\n", msg);
    return 1;
  }
  printf("chain: %s\n  depth: %zu\n  virtual size: %" PRIu64 "\n", path,
         chain_depth(c), chain_size(c));
  if (chain_allocated(c, &alloc) < 0) {
    chain_close(c);
    return fail();
  }
  printf("  allocated: %" PRIu64 "\n", alloc);
  for (size_t i = 0; i < chain_depth(c); i++)
    print_layer(i, chain_layer_path(c, i), chain_layer(c, i));
  chain_close(c);
  return 0;
}

static int
cmd_map(const char *path)
{
  chain_t *c;
  struct chain_extent e;

  if (chain_open(path, NULL, &c) < 0)
    return fail();
  for (uint64_t off = 0; off < chain_size(c); off = e.off + e.len) {
    if (chain_extent_at(c, off, &e) < 0) {
      chain_close(c);
      return fail();
    }
    if (e.kind == CHAIN_EXTENT_DATA)
      printf("%" PRIu64 " %" PRIu64 " DATA %d\n", e.off, e.len, e.layer);
    else
      printf("%" PRIu64 " %" PRIu64 " ZERO -\n", e.off, e.len);
  }
  chain_close(c);
  if (fflush(stdout) != 0)
    return bfs_error(-errno, "stdout: %s", strerror(errno)), fail();
  return 0;
}

static int
write_all(int fd, const void *buf, size_t len, uint64_t off, bool seq)
{
  const char *p = buf;
  while (len > 0) {
    ssize_t r = seq ? write(fd, p, len) : pwrite(fd, p, len, (off_t)off);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += r;
    len -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

/* One chunk on its way from a reader to the writer: the bytes, and which
 * ranges of it are DATA (the rest stays a hole in the output). */
struct cbuf {
  struct cbuf *next;
  uint64_t start;
  size_t nr, cap;
  struct { uint64_t off, len; } *r;
  char *data;
};

struct cat_job {
  chain_t *c;
  int fd;
  unsigned nthreads;
  const char *out;
  uint64_t next;        /* next chunk index (atomic) */
  int err;              /* first error (atomic) */
  char msg[1024];
  /* lock protects the queues: free buffers, full ones for the writer */
  pthread_mutex_t lock;
  pthread_cond_t have_full, have_free;
  struct cbuf *free, *full_head, *full_tail;
  unsigned readers_left;
};

static void
job_fail(struct cat_job *j)
{
  int zero = 0;
  pthread_mutex_lock(&j->lock);
  if (__atomic_compare_exchange_n(&j->err, &zero, 1, false, __ATOMIC_SEQ_CST,
                                  __ATOMIC_SEQ_CST))
    snprintf(j->msg, sizeof j->msg, "%s", bfs_last_error());
  pthread_mutex_unlock(&j->lock);
}

static int
add_range(struct cbuf *b, uint64_t off, uint64_t len)
{
  if (b->nr > 0 && b->r[b->nr - 1].off + b->r[b->nr - 1].len == off) {
    b->r[b->nr - 1].len += len;
    return 0;
  }
  if (b->nr == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    void *r = realloc(b->r, cap * sizeof *b->r);
    if (!r)
      return bfs_error(-ENOMEM, "out of memory");
    b->r = r;
    b->cap = cap;
  }
  b->r[b->nr].off = off;
  b->r[b->nr].len = len;
  b->nr++;
  return 0;
}

/* Read one chunk into b: DATA pieces only, neighbours merged so each
 * chain_pread covers a whole run (batched compressed reads). */
static int
fill_chunk(struct cat_job *j, struct cbuf *b, uint64_t end)
{
  uint64_t ds = b->start, de = b->start;     /* pending DATA run */

  for (uint64_t off = b->start; off <= end;) {
    struct chain_extent e = { .kind = CHAIN_EXTENT_ZERO };
    uint64_t n = 0;
    if (off < end) {
      if (chain_piece_at(j->c, off, &e) < 0)
        return -1;
      n = (e.off + e.len < end ? e.off + e.len : end) - off;
    }
    if (e.kind == CHAIN_EXTENT_DATA && off < end) {
      if (de != off)
        ds = off;
      de = off + n;
    }
    else if (de > ds) {
      if (chain_pread(j->c, b->data + (ds - b->start), (size_t)(de - ds), ds)
          < 0 || add_range(b, ds, de - ds) < 0)
        return -1;
      ds = de;
    }
    if (off == end)
      break;
    off += n;
  }
  return 0;
}

/* Reader: claim chunks, fill free buffers, queue them for the writer. */
static void *
cat_reader(void *arg)
{
  struct cat_job *j = arg;
  const uint64_t size = chain_size(j->c);

  for (;;) {
    struct cbuf *b;
    uint64_t idx, start, end;

    pthread_mutex_lock(&j->lock);
    while (!j->free)
      pthread_cond_wait(&j->have_free, &j->lock);
    b = j->free;
    j->free = b->next;
    pthread_mutex_unlock(&j->lock);

    idx = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
    start = idx * CAT_CHUNK;
    b->start = start;
    b->nr = 0;
    b->next = NULL;
    if (start < size && !__atomic_load_n(&j->err, __ATOMIC_RELAXED)) {
      end = size - start < CAT_CHUNK ? size : start + CAT_CHUNK;
      /* keep the disk busy: start reading the chunk nthreads ahead */
      if (idx == 0)
        chain_prefetch(j->c, 0, (uint64_t)CAT_CHUNK * j->nthreads);
      chain_prefetch(j->c, start + (uint64_t)CAT_CHUNK * j->nthreads,
                     CAT_CHUNK);
      if (fill_chunk(j, b, end) < 0) {
        job_fail(j);
        b->nr = 0;
      }
    }
    pthread_mutex_lock(&j->lock);
    if (start >= size || j->err) {
      b->next = j->free;
      j->free = b;
      j->readers_left--;
      pthread_cond_signal(&j->have_free);
      pthread_cond_signal(&j->have_full);
      pthread_mutex_unlock(&j->lock);
      return NULL;
    }
    if (j->full_tail)
      j->full_tail->next = b;
    else
      j->full_head = b;
    j->full_tail = b;
    pthread_cond_signal(&j->have_full);
    pthread_mutex_unlock(&j->lock);
  }
}

/* Readers decompress in parallel; this thread alone writes, so writers
 * never queue on the output file's inode lock. */
static int
cat_parallel(chain_t *c, int fd, const char *out, unsigned nthreads)
{
  struct cat_job j = { .c = c, .fd = fd, .out = out, .nthreads = nthreads };
  pthread_t th[CAT_MAX_THREADS];
  unsigned nbufs = 2 * nthreads, started = 0;
  struct cbuf *bufs = calloc(nbufs, sizeof *bufs);
  int r = 0;

  if (!bufs)
    return bfs_error(-ENOMEM, "out of memory");
  pthread_mutex_init(&j.lock, NULL);
  pthread_cond_init(&j.have_full, NULL);
  pthread_cond_init(&j.have_free, NULL);
  for (unsigned i = 0; i < nbufs; i++) {
    bufs[i].data = malloc(CAT_CHUNK);
    if (!bufs[i].data) {
      r = bfs_error(-ENOMEM, "out of memory");
      goto out;
    }
    bufs[i].next = j.free;
    j.free = &bufs[i];
  }
  if (ftruncate(fd, (off_t)chain_size(c)) < 0) {
    r = bfs_error(-errno, "%s: %s", out, strerror(errno));
    goto out;
  }
  j.readers_left = nthreads;
  for (; started < nthreads; started++)
    if (pthread_create(&th[started], NULL, cat_reader, &j) != 0)
      break;
  pthread_mutex_lock(&j.lock);
  j.readers_left -= nthreads - started;       /* never started */
  pthread_mutex_unlock(&j.lock);
  if (started == 0) {
    r = bfs_error(-EAGAIN, "cannot start threads");
    goto out;
  }
  for (;;) {
    struct cbuf *b;
    pthread_mutex_lock(&j.lock);
    while (!j.full_head && j.readers_left > 0)
      pthread_cond_wait(&j.have_full, &j.lock);
    b = j.full_head;
    if (!b) {
      pthread_mutex_unlock(&j.lock);
      break;
    }
    j.full_head = b->next;
    if (!j.full_head)
      j.full_tail = NULL;
    pthread_mutex_unlock(&j.lock);
    for (size_t i = 0; i < b->nr && !j.err; i++) {
      int w = write_all(fd, b->data + (b->r[i].off - b->start),
                        (size_t)b->r[i].len, b->r[i].off, false);
      if (w < 0) {
        bfs_error(w, "%s: write: %s", out, strerror(-w));
        job_fail(&j);
      }
    }
    pthread_mutex_lock(&j.lock);
    b->next = j.free;
    j.free = b;
    pthread_cond_signal(&j.have_free);
    pthread_mutex_unlock(&j.lock);
  }
  for (unsigned i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  if (j.err)
    r = bfs_error(-EIO, "%s", j.msg);
out:
  for (unsigned i = 0; i < nbufs; i++) {
    free(bufs[i].data);
    free(bufs[i].r);
  }
  free(bufs);
  pthread_cond_destroy(&j.have_full);
  pthread_cond_destroy(&j.have_free);
  pthread_mutex_destroy(&j.lock);
  return r;
}

static int
cat_sequential(chain_t *c, int fd, const char *out)
{
  const uint64_t size = chain_size(c);
  CLEANUP_FREE char *buf = malloc(CAT_CHUNK);
  int r;

  uint64_t alloc;

  if (!buf)
    return bfs_error(-ENOMEM, "out of memory");
  /* validate the whole map (tables, data ranges) before the first byte goes
   * out: a stream cannot be taken back */
  if ((r = chain_allocated(c, &alloc)) < 0)
    return r;
  for (uint64_t off = 0; off < size; off += CAT_CHUNK) {
    size_t n = size - off < CAT_CHUNK ? (size_t)(size - off) : CAT_CHUNK;
    if ((r = chain_pread(c, buf, n, off)) < 0)
      return r;
    if ((r = write_all(fd, buf, n, off, true)) < 0)
      return bfs_error(r, "%s: write: %s", out, strerror(-r));
  }
  return 0;
}

static int
cmd_cat(const char *path, const char *out, unsigned nthreads)
{
  chain_t *c;
  struct stat st;
  int fd = STDOUT_FILENO, r;

  if (chain_open(path, NULL, &c) < 0)
    return fail();
  if (out) {
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      bfs_error(-errno, "%s: %s", out, strerror(errno));
      chain_close(c);
      return fail();
    }
  }
  else
    out = "stdout";
  chain_hint_sequential(c);
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
    r = cat_parallel(c, fd, out, nthreads);
  else
    r = cat_sequential(c, fd, out);
  if (r == 0 && fd != STDOUT_FILENO && close(fd) < 0)
    r = bfs_error(-errno, "%s: %s", out, strerror(errno));
  else if (fd != STDOUT_FILENO && r < 0)
    close(fd);
  chain_close(c);
  if (r < 0) {
    if (fd != STDOUT_FILENO)
      unlink(out);                  /* never leave a partial image behind */
    return fail();
  }
  return 0;
}

static void
usage(FILE *f, const char *sub)
{
  if (!sub || !strcmp(sub, "info"))
    fprintf(f, "usage: backupfs image info IMAGE\n"
            "  Print the backing chain of IMAGE: each layer's path, format,\n"
            "  version, virtual size, cluster size, compression and backing.\n");
  if (!sub || !strcmp(sub, "map"))
    fprintf(f, "usage: backupfs image map IMAGE\n"
            "  Print the merged extent map of the point in time, one line per\n"
            "  extent: OFFSET LENGTH DATA|ZERO LAYER (layer 0 is IMAGE).\n");
  if (!sub || !strcmp(sub, "cat"))
    fprintf(f, "usage: backupfs image cat [-o FILE] [-j THREADS] IMAGE\n"
            "  Write the flat (raw) point in time to stdout or FILE.  A new\n"
            "  regular FILE is written sparse by THREADS workers (default 8).\n");
}

int
image_cmd(int argc, char **argv)
{
  static const struct option longopts[] = {
    { "help", no_argument, NULL, 'h' },
    { "output", required_argument, NULL, 'o' },
    { "threads", required_argument, NULL, 'j' },
    { NULL, 0, NULL, 0 },
  };
  const char *sub, *out = NULL;
  unsigned nthreads = 8;
  int opt;

  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout, NULL);
    return argc < 2 ? 2 : 0;
  }
  sub = argv[1];
  if (strcmp(sub, "info") && strcmp(sub, "map") && strcmp(sub, "cat")) {
    fprintf(stderr, "backupfs image: unknown subcommand '%s'\n", sub);
    usage(stderr, NULL);
    return 2;
  }
  optind = 1;
  while ((opt = getopt_long(argc - 1, argv + 1, "ho:j:", longopts, NULL))
         != -1) {
    switch (opt) {
    case 'h':
      usage(stdout, sub);
      return 0;
    case 'o':
      out = optarg;
      break;
    case 'j': {
      char *end;
      unsigned long v = strtoul(optarg, &end, 10);
      if (*end || v < 1 || v > CAT_MAX_THREADS) {
        fprintf(stderr, "backupfs image: -j wants 1..%d\n", CAT_MAX_THREADS);
        return 2;
      }
      nthreads = (unsigned)v;
      break;
    }
    default:
      usage(stderr, sub);
      return 2;
    }
  }
  if (optind + 1 != argc - 1 || ((out || nthreads != 8) && strcmp(sub, "cat"))) {
    usage(stderr, sub);
    return 2;
  }
  const char *path = argv[optind + 1];
  if (!strcmp(sub, "info"))
    return cmd_info(path);
  if (!strcmp(sub, "map"))
    return cmd_map(path);
  return cmd_cat(path, out, nthreads);
}
