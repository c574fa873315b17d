/* image-cmd.c — `backupfs image info|map|cat IMAGE`: debug one image and
 * its backing chain.
 *
 *   info   every layer's header (path, format, version, sizes, compression,
 *          backing name and format)
 *   map    the merged extent map: offset length DATA|ZERO layer
 *   cat    the flat point in time, to stdout or -o FILE.  To a regular file
 *          it runs -j worker threads over 8 MiB chunks, writes only DATA
 *          extents with pwrite and leaves ZERO extents as holes.
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
#include "image/image.h"

#define CAT_CHUNK (8u * 1024 * 1024)
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

struct cat_job {
  chain_t *c;
  int fd;
  const char *out;
  uint64_t next;        /* next chunk index (atomic) */
  int err;              /* first error (atomic) */
  pthread_mutex_t msg_lock;
  char msg[1024];
};

static void
job_fail(struct cat_job *j)
{
  int zero = 0;
  pthread_mutex_lock(&j->msg_lock);
  if (__atomic_compare_exchange_n(&j->err, &zero, 1, false, __ATOMIC_SEQ_CST,
                                  __ATOMIC_SEQ_CST))
    snprintf(j->msg, sizeof j->msg, "%s", bfs_last_error());
  pthread_mutex_unlock(&j->msg_lock);
}

/* Worker: whole chunks, DATA extents only, pwrite at their offsets. */
static void *
cat_worker(void *arg)
{
  struct cat_job *j = arg;
  const uint64_t size = chain_size(j->c);
  CLEANUP_FREE char *buf = malloc(CAT_CHUNK);

  if (!buf) {
    bfs_error(-ENOMEM, "out of memory");
    job_fail(j);
    return NULL;
  }
  while (!__atomic_load_n(&j->err, __ATOMIC_RELAXED)) {
    uint64_t idx = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
    uint64_t start = idx * CAT_CHUNK, end, off;
    if (start >= size)
      break;
    end = size - start < CAT_CHUNK ? size : start + CAT_CHUNK;
    for (off = start; off < end;) {
      struct chain_extent e;
      uint64_t n;
      int r;
      if (chain_extent_at(j->c, off, &e) < 0) {
        job_fail(j);
        return NULL;
      }
      n = (e.off + e.len < end ? e.off + e.len : end) - off;
      if (e.kind == CHAIN_EXTENT_DATA) {
        if (chain_pread(j->c, buf, (size_t)n, off) < 0) {
          job_fail(j);
          return NULL;
        }
        if ((r = write_all(j->fd, buf, (size_t)n, off, false)) < 0) {
          bfs_error(r, "%s: write: %s", j->out, strerror(-r));
          job_fail(j);
          return NULL;
        }
      }
      off += n;
    }
  }
  return NULL;
}

static int
cat_parallel(chain_t *c, int fd, const char *out, unsigned nthreads)
{
  struct cat_job j = { .c = c, .fd = fd, .out = out };
  pthread_t th[CAT_MAX_THREADS];
  unsigned started = 0;

  pthread_mutex_init(&j.msg_lock, NULL);
  if (ftruncate(fd, (off_t)chain_size(c)) < 0)
    return bfs_error(-errno, "%s: %s", out, strerror(errno));
  for (; started < nthreads; started++)
    if (pthread_create(&th[started], NULL, cat_worker, &j) != 0)
      break;
  if (started == 0)
    cat_worker(&j);
  for (unsigned i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  pthread_mutex_destroy(&j.msg_lock);
  if (j.err)
    return bfs_error(-EIO, "%s", j.msg);
  return 0;
}

static int
cat_sequential(chain_t *c, int fd, const char *out)
{
  const uint64_t size = chain_size(c);
  CLEANUP_FREE char *buf = malloc(CAT_CHUNK);
  int r;

  if (!buf)
    return bfs_error(-ENOMEM, "out of memory");
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
            "  regular FILE is written sparse by THREADS workers (default 4).\n");
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
  unsigned nthreads = 4;
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
  if (optind + 1 != argc - 1 || ((out || nthreads != 4) && strcmp(sub, "cat"))) {
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
