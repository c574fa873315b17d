/* restic-read.c — drives the restic reader's API for the tests and the
 * benchmark.
 *
 *   restic-read snapshots REPO PWFILE
 *   restic-read ls REPO PWFILE SNAP
 *   restic-read cat REPO PWFILE SNAP PATH OUT [BLOCK]
 *   restic-read extents REPO PWFILE SNAP PATH
 *   restic-read check-extents REPO PWFILE SNAP PATH GOOD
 *       reads each blob extent alone and prints "OFF LEN ok|differs|error
 *       MESSAGE" against the bytes of file GOOD at the same offsets
 *   restic-read read REPO PWFILE SNAP PATH OFF LEN OUT
 *   restic-read random REPO PWFILE SNAP PATH REF COUNT SEED [THREADS]
 *   restic-read blk REPO PWFILE SNAP PATH OUT
 *       the file as a struct bfs_blk: read into OUT through bfs_blk_pread,
 *       then print the block status totals "data D zero Z hole H"
 *       (exit 77 when the block layer is not built)
 *
 * SNAP is a snapshot id, a unique prefix of one, "latest", or "#N" (N-th
 * oldest, from 0).  Errors go to stderr as "restic-read: MESSAGE", exit 1;
 * a data mismatch exits 2.
 */
#include "blk/restic.h"

#include "common/error.h"
#include "blk/restic-blk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int
die(void)
{
  fprintf(stderr, "restic-read: %s\n", bfs_last_error());
  return 1;
}

static int __attribute__((format(printf, 1, 2)))
msg(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("restic-read: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  return 1;
}

static int
pick(struct restic_snapshot *s, size_t n, const char *want)
{
  if (!strcmp(want, "latest"))
    return n ? (int)n - 1 : -1;
  if (want[0] == '#') {
    long i = strtol(want + 1, NULL, 10);
    return i >= 0 && (size_t)i < n ? (int)i : -1;
  }
  int hit = -1;
  for (size_t i = 0; i < n; i++)
    if (!strncmp(s[i].id, want, strlen(want))) {
      if (hit >= 0)
        return -1;
      hit = (int)i;
    }
  return hit;
}

struct walk_state {
  FILE *out;
};

static int
print_node(const struct restic_node *n, void *opaque)
{
  struct walk_state *w = opaque;
  static const char *const types[] = { "file", "dir", "symlink", "other" };
  fprintf(w->out, "%s %s %" PRIu64 " %o %" PRId64 ".%09d %u %u %zu%s%s\n",
          n->path, types[n->type], n->size, (unsigned)n->mode, n->mtime,
          n->mtime_nsec, n->uid, n->gid, n->n_content,
          n->linktarget ? " -> " : "", n->linktarget ? n->linktarget : "");
  return 0;
}

struct rand_arg {
  struct restic_file *f;
  const uint8_t *ref;
  uint64_t size;
  long count;
  unsigned seed;
  long bad;
  int err;
};

static void *
rand_reads(void *p)
{
  struct rand_arg *a = p;
  uint8_t *buf = malloc(4 << 20);
  if (!buf) {
    a->err = -ENOMEM;
    return NULL;
  }
  for (long i = 0; i < a->count; i++) {
    uint64_t off = a->size ? ((uint64_t)rand_r(&a->seed) << 31 |
                              (uint64_t)rand_r(&a->seed)) % a->size : 0;
    size_t len = (size_t)rand_r(&a->seed) % (i % 4 == 0 ? (4u << 20) : 70000);
    if (off + len > a->size)
      len = (size_t)(a->size - off);
    int ret = restic_file_pread(a->f, buf, len, off);
    if (ret < 0) {
      fprintf(stderr, "restic-read: %s\n", bfs_last_error());
      a->err = ret;
      break;
    }
    if (memcmp(buf, a->ref + off, len) != 0) {
      fprintf(stderr, "restic-read: mismatch at %" PRIu64 " len %zu\n", off,
              len);
      a->bad++;
    }
  }
  free(buf);
  return NULL;
}

static int
cmd_blk(struct restic_file *f, const char *outp)
{
  struct bfs_blk *b;
  if (blk_restic_open(f, restic_file_name(f), &b) < 0)
    return die();
  FILE *out = fopen(outp, "wb");
  size_t block = 1 << 20;
  char *buf = malloc(block);
  int rc = 0;
  if (!out || !buf)
    rc = msg("%s: %s\n", outp, strerror(errno));
  for (uint64_t off = 0; rc == 0 && off < b->size;) {
    size_t n = b->size - off < block ? (size_t)(b->size - off) : block;
    if (bfs_blk_pread(b, buf, n, off) < 0)
      rc = die();
    else if (fwrite(buf, 1, n, out) != n)
      rc = msg("%s: write failed\n", outp);
    off += n;
  }
  if (out && fclose(out) != 0 && rc == 0)
    rc = msg("%s: close failed\n", outp);
  free(buf);
  uint64_t tot[3] = { 0, 0, 0 };
  for (uint64_t off = 0; rc == 0 && off < b->size;) {
    struct bfs_blk_status st;
    if (bfs_blk_block_status(b, off, 1u << 30, &st) < 0) {
      rc = die();
      break;
    }
    if (st.unit_off > off || st.unit_off + st.unit_len < off + st.len)
      rc = msg("block status at %" PRIu64 ": unit does not hold it\n", off);
    tot[st.kind] += st.len;
    off += st.len;
  }
  if (rc == 0)
    printf("data %" PRIu64 " zero %" PRIu64 " hole %" PRIu64 "\n",
           tot[BFS_BLK_DATA], tot[BFS_BLK_ZERO], tot[BFS_BLK_HOLE]);
  bfs_blk_close(b);
  return rc;
}

static int
cmd_file(struct restic_repo *r, struct restic_snapshot *s, int argc,
         char **argv)
{
  const char *cmd = argv[1];
  struct restic_file *f;
  if (argc < 6)
    return msg("%s: missing PATH\n", cmd);
  if (restic_file_open_path(r, s, argv[5], &f) < 0)
    return die();
  uint64_t size = restic_file_size(f);
  int rc = 0;

  if (!strcmp(cmd, "blk"))
    return argc > 6 ? cmd_blk(f, argv[6]) : (restic_file_close(f), msg("blk: OUT\n"));

  if (!strcmp(cmd, "extents")) {
    for (uint64_t off = 0; off < size;) {
      uint64_t start, len;
      bool zero;
      if (restic_file_extent(f, off, &start, &len, &zero) < 0) {
        rc = die();
        break;
      }
      printf("%" PRIu64 " %" PRIu64 " %s\n", off, len, zero ? "zero" : "data");
      off += len;
    }
  } else if (!strcmp(cmd, "check-extents")) {
    FILE *good = argc > 6 ? fopen(argv[6], "rb") : NULL;
    if (!good)
      return msg("check-extents: GOOD: %s\n", strerror(errno));
    for (uint64_t off = 0; off < size && rc == 0;) {
      uint64_t start, len;
      bool zero;
      if (restic_file_extent(f, off, &start, &len, &zero) < 0) {
        rc = die();
        break;
      }
      char *a = malloc(len), *b = malloc(len);
      if (!a || !b || fseeko(good, (off_t)off, SEEK_SET) != 0 ||
          fread(b, 1, len, good) != len)
        rc = msg("check-extents: GOOD too short\n");
      else if (restic_file_pread(f, a, len, off) < 0)
        printf("%" PRIu64 " %" PRIu64 " error %s\n", off, len,
               bfs_last_error());
      else
        printf("%" PRIu64 " %" PRIu64 " %s\n", off, len,
               memcmp(a, b, len) ? "differs" : "ok");
      free(a);
      free(b);
      off += len;
    }
    fclose(good);
  } else if (!strcmp(cmd, "cat") || !strcmp(cmd, "read")) {
    uint64_t off = 0, len = size;
    size_t block = 1 << 20;
    const char *outp;
    if (!strcmp(cmd, "read")) {
      if (argc < 9)
        return msg("read: OFF LEN OUT\n");
      off = strtoull(argv[6], NULL, 0);
      len = strtoull(argv[7], NULL, 0);
      outp = argv[8];
    } else {
      if (argc < 7)
        return msg("cat: OUT\n");
      outp = argv[6];
      if (argc > 7)
        block = strtoul(argv[7], NULL, 0);
    }
    FILE *out = fopen(outp, "wb");
    char *buf = malloc(block);
    if (!out || !buf)
      return msg("%s: %s\n", outp, strerror(errno));
    while (len && rc == 0) {
      size_t n = len < block ? (size_t)len : block;
      if (restic_file_pread(f, buf, n, off) < 0)
        rc = die();
      else if (fwrite(buf, 1, n, out) != n)
        rc = msg("%s: write failed\n", outp);
      off += n;
      len -= n;
    }
    if (fclose(out) != 0 && rc == 0)
      rc = msg("%s: close failed\n", outp);
    free(buf);
  } else if (!strcmp(cmd, "random")) {
    if (argc < 9)
      return msg("random: REF COUNT SEED\n");
    int fd = open(argv[6], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
      return msg("%s: %s\n", argv[6], strerror(errno));
    if ((uint64_t)st.st_size != size) {
      fprintf(stderr, "restic-read: size %" PRIu64 " but reference has %lld\n",
              size, (long long)st.st_size);
      return 2;
    }
    const uint8_t *ref = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0)
                              : (const uint8_t *)"";
    if (ref == MAP_FAILED)
      return msg("mmap: %s\n", strerror(errno));
    int nt = argc > 9 ? atoi(argv[9]) : 1;
    if (nt < 1 || nt > 64)
      nt = 1;
    pthread_t th[64];
    struct rand_arg a[64];
    long total = 0, bad = 0;
    for (int i = 0; i < nt; i++) {
      a[i] = (struct rand_arg){ f, ref, size, atol(argv[7]),
                                (unsigned)atoi(argv[8]) + (unsigned)i, 0, 0 };
      pthread_create(&th[i], NULL, rand_reads, &a[i]);
    }
    for (int i = 0; i < nt; i++) {
      pthread_join(th[i], NULL);
      total += a[i].count;
      bad += a[i].bad;
      if (a[i].err)
        rc = 1;
    }
    printf("%ld random reads in %d threads, %ld mismatches\n", total, nt, bad);
    if (bad)
      rc = 2;
    close(fd);
  } else {
    fprintf(stderr, "restic-read: unknown command %s\n", cmd);
    rc = 1;
  }
  restic_file_close(f);
  return rc;
}

int
main(int argc, char **argv)
{
  if (argc < 4) {
    fprintf(stderr, "usage: restic-read snapshots|ls|cat|extents|read|random "
            "REPO PWFILE [SNAP PATH ...]\n");
    return 1;
  }
  struct restic_repo *r;
  if (restic_open_password_file(-1, argv[2], argv[3], &r) < 0)
    return die();
  struct restic_snapshot *s;
  size_t n;
  int rc = 0;
  if (restic_snapshots(r, &s, &n) < 0) {
    restic_close(r);
    return die();
  }
  if (!strcmp(argv[1], "snapshots")) {
    printf("version %d\n", restic_repo_version(r));
    for (size_t i = 0; i < n; i++) {
      char tb[64];
      time_t t = (time_t)s[i].time;
      strftime(tb, sizeof tb, "%Y-%m-%dT%H:%M:%S", gmtime(&t));
      printf("%s %s.%09dZ %s", s[i].id, tb, s[i].time_nsec, s[i].hostname);
      for (size_t j = 0; j < s[i].n_paths; j++)
        printf(" path=%s", s[i].paths[j]);
      for (size_t j = 0; j < s[i].n_tags; j++)
        printf(" tag=%s", s[i].tags[j]);
      printf("\n");
    }
  } else if (argc < 5) {
    fprintf(stderr, "restic-read: %s: missing SNAP\n", argv[1]);
    rc = 1;
  } else {
    int i = pick(s, n, argv[4]);
    if (i < 0) {
      fprintf(stderr, "restic-read: no single snapshot %s\n", argv[4]);
      rc = 1;
    } else if (!strcmp(argv[1], "ls")) {
      struct walk_state w = { stdout };
      if (restic_walk(r, &s[i], print_node, &w) < 0)
        rc = die();
    } else {
      rc = cmd_file(r, &s[i], argc, argv);
    }
  }
  restic_snapshots_free(s, n);
  restic_close(r);
  return rc;
}
