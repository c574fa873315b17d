/* disk.c — `backupfs restore disk`: one whole disk out of a backup.
 *
 * Raw output: the source's extent list is taken first (cheap: the mount's
 * SEEK_DATA/SEEK_HOLE or the chain's extent map) so progress knows the
 * total; then the sparse-flatten engine (blk/flatten.h, shared with
 * `image cat`) reads the data extents on several threads and this thread
 * writes them in disk order: each is hashed (xxh3-128), passed through the
 * bandwidth limiter and written, skipping all-zero 4 KiB blocks, into a
 * file created for the purpose and sized with ftruncate, so holes stay
 * holes; each written range's writeback starts at once
 * (sync_file_range).  Behind the copy a thread reads the data extents
 * back from storage as soon as they are written (writeback waited for,
 * pages dropped, O_DIRECT) and hashes them again; after fdatasync the
 * holes are checked to hold no data: success is only reported when both
 * agree.  The bandwidth limit applies to the read-back too (it is I/O on
 * the same busy storage: one token bucket for both).  A block device (with
 * --force) gets its holes zeroed instead.
 *
 * qcow2 output is qemu-img convert from the raw source (the mounted disk
 * image, or the repository chain spelled as a json: filename), checked with
 * qemu-img compare.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "blk/luks.h"
#include "common/cleanup.h"
#include "blk/flatten.h"
#include "common/error.h"
#include "common/ioutil.h"
#include "common/json-str.h"
#include "common/opts.h"
#include "restore/restore-int.h"

#define CHUNK (4u << 20)

struct ext { uint64_t off, len; bool data; };

/* SIGINT/SIGTERM/SIGHUP: stop at the next piece and remove the partial file */

/* length of DIR without its trailing slashes ("rest//" -> 4; "/" -> 0) */
static size_t
strcspn_trailing(const char *dir)
{
  size_t n = strlen(dir);
  while (n > 0 && dir[n - 1] == '/')
    n--;
  return n;
}
static volatile sig_atomic_t interrupted;
static void on_signal(int sig) { interrupted = sig; }

static int
check_interrupted(const char *dest)
{
  return interrupted ? bfs_error(-EINTR, "%s: interrupted (signal %d); the "
                                 "partial file is removed", dest,
                                 (int) interrupted) : 0;
}

struct verifier;

struct job {
  struct rsrc *src;
  const char *dest;
  int fd;
  bool blockdev;
  struct ext *ext;
  size_t next;               /* ext[] entries before the terminator */
  uint64_t allocated;
  char *buf;
  struct throttle th;
  pthread_mutex_t th_lock;   /* th: the copy's and the read-back's */
  struct progress pr;
  struct verifier *v;        /* the read-back behind the copy */
  XXH3_state_t *hash;        /* copy: the data bytes in disk order */
  pthread_mutex_t pf_lock;
  uint64_t pf_end;           /* pf_lock: read-ahead asked for below this */
  bool json;             /* --json: the summary as JSON */
};

/* the summary line, or with --json the same as one object */
static void
summary(const struct job *j, const char *format, bool compressed)
{
  if (!j->json) {
    char a[32], b[32];
    if (!strcmp(format, "raw"))
      printf("restored %s to %s: %s of data, %s virtual, checked\n",
             restore_src_name(j->src), j->dest,
             bfs_human_size(j->allocated, a, sizeof a),
             bfs_human_size(restore_src_size(j->src), b, sizeof b));
    else
      printf("restored %s to %s (qcow2%s), checked\n",
             restore_src_name(j->src), j->dest,
             compressed ? ", compressed" : "");
    return;
  }
  json_object *o = json_object_new_object();
  json_object_object_add(o, "source", bfs_json_string(restore_src_name(j->src)));
  json_object_object_add(o, "dest", bfs_json_string(j->dest));
  json_object_object_add(o, "format", json_object_new_string(format));
  json_object_object_add(o, "compressed", json_object_new_boolean(compressed));
  json_object_object_add(o, "virtual_size",
                         json_object_new_uint64(restore_src_size(j->src)));
  if (!strcmp(format, "raw"))
    json_object_object_add(o, "allocated", json_object_new_uint64(j->allocated));
  json_object_object_add(o, "checked", json_object_new_boolean(true));
  puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                      JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(o);
}

enum { OPT_FORMAT = 256, OPT_BANDWIDTH, OPT_REPO, OPT_FORCE, OPT_KEY_FILE };

static const struct bfs_opt disk_opts[] = {
  { "format", OPT_FORMAT, "raw|qcow2", "output format (default raw)" },
  { "compress", 'c', NULL, "compress the qcow2 output" },
  { "bandwidth", OPT_BANDWIDTH, "MIB/S",
    "limit reading and writing to MiB per second" },
  { "repo", OPT_REPO, "REPO",
    "read VM@TIME of REPO instead of a mounted BACKUP_DIR;\n"
    "again: more stores of the same repository (KBOSS)" },
  { "force", OPT_FORCE, NULL, "write over an existing file or block device" },
  { "key-file", OPT_KEY_FILE, "FILE",
    "with --repo: passphrase of LUKS-encrypted images\n"
    "(one trailing newline ignored; raw output only)" },
  { 0 },
};

static const struct bfs_cmd disk_cmd = {
  .name = "restore disk",
  .usage = "restore disk [OPTIONS] BACKUP_DIR DISK DEST\n"
    "       backupfs restore disk [OPTIONS] --repo REPO VM[@TIME] DISK DEST",
  .about = "Restore one whole disk of a backup into DEST, sparse (holes stay holes),\n"
    "and check the result against the backup before reporting success.\n"
    "When DEST is a directory the disk goes to DEST/DISK.raw (or .qcow2).\n"
    "BACKUP_DIR is a point-in-time directory of a backupfs mount\n"
    "(/mnt/backups/web01/latest); with --repo the repository is read directly.",
  .opts = disk_opts, .shared = BFS_OPTS_CATALOG | BFS_OPTS_JSON,
  .json_help = "the summary as {source, dest, format, compressed,\n"
    "virtual_size, allocated, checked}",
  .catalog_help = "catalog database to use with --repo",
  .need = "BACKUP_DIR DISK DEST", .min_args = 3, .max_args = 3,
};

static int
list_extents(struct job *j)
{
  uint64_t off = 0, size = restore_src_size(j->src), len;
  size_t n = 0, cap = 0;
  bool data;

  while (off < size) {
    int r = restore_src_extent(j->src, off, &len, &data);
    if (r < 0)
      return r;
    if (n && j->ext[n - 1].data == data)
      j->ext[n - 1].len += len;
    else {
      if (n + 1 >= cap) {
        cap = cap ? cap * 2 : 64;
        struct ext *e = realloc(j->ext, cap * sizeof *e);
        if (!e)
          return bfs_error(-ENOMEM, "out of memory");
        j->ext = e;
      }
      j->ext[n++] = (struct ext) { off, len, data };
    }
    if (data)
      j->allocated += len;
    off += len;
  }
  if (n >= cap) {
    struct ext *e = realloc(j->ext, (n + 1) * sizeof *e);
    if (!e)
      return bfs_error(-ENOMEM, "out of memory");
    j->ext = e;
  }
  j->ext[n] = (struct ext) { size, 0, false };   /* terminator */
  j->next = n;
  return 0;
}

static int
zero_range(struct job *j, uint64_t off, uint64_t len)
{
  if (!j->blockdev)
    return 0;                    /* a new file: already a hole */
  uint64_t range[2] = { off, len };
  if (ioctl(j->fd, BLKZEROOUT, range) == 0)
    return 0;
  memset(j->buf, 0, CHUNK);
  while (len) {
    size_t n = len < CHUNK ? len : CHUNK;
    if (pwrite(j->fd, j->buf, n, off) != (ssize_t) n)
      return bfs_error(-EIO, "%s: writing zeros: %s", j->dest, strerror(errno));
    off += n;
    len -= n;
  }
  return 0;
}

/* the destination must hold no data in [off, off+len), or only zeros */
static int
check_hole(struct job *j, uint64_t off, uint64_t len)
{
  uint64_t end = off + len;

  while (off < end) {
    off_t d = j->blockdev ? (off_t) off : lseek(j->fd, off, SEEK_DATA);
    if (d < 0 && errno == ENXIO)
      return 0;
    if (d < 0)
      d = off;                   /* no SEEK_DATA: read everything */
    if ((uint64_t) d >= end)
      return 0;
    size_t n = end - d < CHUNK ? end - d : CHUNK;
    if (pread(j->fd, j->buf, n, d) != (ssize_t) n)
      return bfs_error(-EIO, "%s: read back: %s", j->dest, strerror(errno));
    if (!restore_is_zero(j->buf, n))
      return bfs_error(-EIO, "%s: data at %jd where the backup has none",
                       j->dest, (intmax_t) d);
    off = d + n;
  }
  return 0;
}

/* ---- the check: a thread reads the destination back from storage
 * behind the copy, data extent by extent in disk order, each piece once
 * the copy has written it: its writeback waited for, its pages dropped,
 * then read with O_DIRECT (edges not on a DIO_ALIGN boundary, and all of
 * it where the destination refuses O_DIRECT, buffered) and hashed.  So
 * the device reads the source and the destination at once and the check
 * ends soon after the copy. ---- */

#define DIO_ALIGN 4096u

struct verifier {
  struct job *j;
  pthread_t th;
  pthread_mutex_t lock;
  pthread_cond_t moved;
  uint64_t written;          /* lock: the copy's data is on disk below this */
  bool ended;                /* lock: the copy stopped (written is final) */
  int dio;                   /* the destination opened O_DIRECT, or -1 */
  char *buf;                 /* CHUNK bytes, DIO_ALIGN-aligned */
  XXH3_state_t *hash;
  int err;                   /* the thread's result, its message in msg */
  char msg[1024];
};

/* the copy wrote every data byte below off (the writer thread) */
static void
verifier_advance(struct verifier *v, uint64_t off, bool ended)
{
  pthread_mutex_lock(&v->lock);
  if (off > v->written)
    v->written = off;
  v->ended |= ended;
  pthread_cond_signal(&v->moved);
  pthread_mutex_unlock(&v->lock);
}

/* wait until [.., end) is written; false when the copy stopped short */
static bool
verifier_wait(struct verifier *v, uint64_t end)
{
  bool ok;

  pthread_mutex_lock(&v->lock);
  while (v->written < end && !v->ended)
    pthread_cond_wait(&v->moved, &v->lock);
  ok = v->written >= end;
  pthread_mutex_unlock(&v->lock);
  return ok;
}

static int
rb_read(int fd, const char *dest, void *buf, size_t len, uint64_t off)
{
  int r = len ? bfs_pread_all(fd, buf, len, off) : 0;
  return r < 0 ? bfs_error(-EIO, "%s: read back: %s", dest,
                           r == -EIO ? "file ended early" : strerror(-r)) : 0;
}

/* [off, off+len) of the destination from storage into v->buf */
static int
read_back(struct verifier *v, size_t len, uint64_t off)
{
  const struct job *j = v->j;
  uint64_t a = (off + DIO_ALIGN - 1) / DIO_ALIGN * DIO_ALIGN;
  uint64_t e = (off + len) / DIO_ALIGN * DIO_ALIGN;
  char *p = v->buf;
  int r;

  /* written back and out of the page cache: the buffered reads too come
   * from the device */
  sync_file_range(j->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WAIT_BEFORE |
                  SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
  posix_fadvise(j->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
  if (v->dio < 0 || a >= e)
    return rb_read(j->fd, j->dest, p, len, off);
  r = bfs_pread_all(v->dio, p + (a - off), e - a, a);
  if (r == -EINVAL) {                       /* no O_DIRECT here after all */
    close(v->dio);
    v->dio = -1;
    return rb_read(j->fd, j->dest, p, len, off);
  }
  if (r < 0)
    return bfs_error(-EIO, "%s: read back: %s", j->dest,
                     r == -EIO ? "file ended early" : strerror(-r));
  if ((r = rb_read(j->fd, j->dest, p, a - off, off)) < 0)
    return r;
  return rb_read(j->fd, j->dest, p + (e - off), off + len - e, e);
}

static void *
verifier_run(void *arg)
{
  struct verifier *v = arg;
  struct job *j = v->j;
  int r = 0;

  for (const struct ext *e = j->ext; e->len && r == 0; e++) {
    if (!e->data)
      continue;
    for (uint64_t o = e->off; o < e->off + e->len && r == 0;) {
      size_t n = e->off + e->len - o < CHUNK ? e->off + e->len - o : CHUNK;
      if (!verifier_wait(v, o + n))
        r = -ECANCELED;                     /* the copy failed: it says why */
      else if ((r = check_interrupted(j->dest)) == 0) {
        pthread_mutex_lock(&j->th_lock);
        restore_throttle(&j->th, n);
        pthread_mutex_unlock(&j->th_lock);
        if ((r = read_back(v, n, o)) == 0)
          XXH3_128bits_update(v->hash, v->buf, n);
      }
      o += n;
    }
  }
  v->err = r;
  snprintf(v->msg, sizeof v->msg, "%s", r < 0 ? bfs_last_error() : "");
  return NULL;
}

static void
verifier_free(struct verifier *v)
{
  pthread_cond_destroy(&v->moved);
  pthread_mutex_destroy(&v->lock);
  if (v->dio >= 0)
    close(v->dio);
  XXH3_freeState(v->hash);
  free(v->buf);
}

static int
verifier_start(struct job *j, struct verifier *v)
{
  char path[64];

  *v = (struct verifier){ .j = j, .dio = -1 };
  if (posix_memalign((void **)&v->buf, DIO_ALIGN, CHUNK) ||
      !(v->hash = XXH3_createState())) {
    free(v->buf);
    return bfs_error(-ENOMEM, "out of memory");
  }
  XXH3_128bits_reset(v->hash);
  /* the file itself, not its name (which could be replaced meanwhile) */
  snprintf(path, sizeof path, "/proc/self/fd/%d", j->fd);
  v->dio = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
  pthread_mutex_init(&v->lock, NULL);
  pthread_cond_init(&v->moved, NULL);
  if (pthread_create(&v->th, NULL, verifier_run, v) != 0) {
    verifier_free(v);
    return bfs_error(-EAGAIN, "cannot start the read-back thread");
  }
  return 0;
}

/* Joins the thread; 0 when the read back hashes to want, and the holes
 * hold no data.  r: the copy's result (the read-back only waits for it). */
static int
verifier_finish(struct verifier *v, int r, XXH128_hash_t want)
{
  struct job *j = v->j;

  verifier_advance(v, r == 0 ? UINT64_MAX : 0, true);
  pthread_join(v->th, NULL);
  if (r == 0 && v->err < 0)
    r = bfs_error(v->err, "%s", v->msg);
  if (r == 0)                    /* the holes, from storage too */
    posix_fadvise(j->fd, 0, 0, POSIX_FADV_DONTNEED);
  for (const struct ext *e = j->ext; e->len && r == 0; e++)
    if (!e->data)
      r = check_hole(j, e->off, e->len);
  if (r == 0 && !XXH128_isEqual(XXH3_128bits_digest(v->hash), want))
    r = bfs_error(-EIO, "%s: read back differs from the backup", j->dest);
  verifier_free(v);
  return r;
}

/* ---- the copy: the sparse-flatten engine (blk/flatten.h) over the
 * source; its writer thread calls these in disk order ---- */

/* the entry of ext[] holding off (< the size): a binary search, so the
 * engine's extent queries cost no SEEK_DATA/SEEK_HOLE round trips
 * through a mount; list_extents() already asked the source once */
static const struct ext *
ext_at(const struct job *j, uint64_t off)
{
  size_t lo = 0, hi = j->next;        /* ext[lo].off <= off < ext[hi].off */

  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (j->ext[mid].off <= off)
      lo = mid;
    else
      hi = mid;
  }
  return &j->ext[lo];
}

static int
src_extent(void *ctx, uint64_t off, uint64_t max, uint64_t *len, bool *data,
           int *fd, uint64_t *fd_off)
{
  struct job *j = ctx;

  (void)fd, (void)fd_off;         /* never copy_plain: the copy hashes */
  if (j->next == 0 || off >= restore_src_size(j->src))
    return bfs_error(-EIO, "%s: no extent at %llu", restore_src_name(j->src),
                     (unsigned long long) off);
  const struct ext *e = ext_at(j, off);
  *len = e->off + e->len - off;
  *data = e->data;
  if (*len > max)
    *len = max;
  return 0;
}

static int
src_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
  return restore_src_pread(((struct job *)ctx)->src, buf, len, off);
}

/* Read-ahead in windows of PF_WINDOW bytes of the disk, each asked once
 * when the engine's request comes within half a window of the last, and
 * only for the data extents in it: the engine asks per chunk, a hint
 * through a mount is a round trip, and a hole needs none. */
#define PF_WINDOW (32u << 20)

static void
src_prefetch(void *ctx, uint64_t off, uint64_t len)
{
  struct job *j = ctx;
  uint64_t start, end;

  pthread_mutex_lock(&j->pf_lock);
  if (off + len + PF_WINDOW / 2 <= j->pf_end) {
    pthread_mutex_unlock(&j->pf_lock);
    return;
  }
  start = off > j->pf_end ? off : j->pf_end;
  end = off + len > start + PF_WINDOW ? off + len : start + PF_WINDOW;
  j->pf_end = end;
  pthread_mutex_unlock(&j->pf_lock);
  if (j->next == 0 || start >= restore_src_size(j->src))
    return;
  for (const struct ext *e = ext_at(j, start); e->len && e->off < end; e++) {
    uint64_t a = e->off > start ? e->off : start;
    uint64_t b = e->off + e->len < end ? e->off + e->len : end;
    if (e->data && a < b)
      restore_src_prefetch(j->src, a, b - a);
  }
}

static int
dest_write(void *ctx, int fd, const void *buf, size_t len, uint64_t off)
{
  struct job *j = ctx;
  if (!j->blockdev)
    return restore_write_sparse(fd, j->dest, buf, len, off);
  int r = bfs_pwrite_all(fd, buf, len, off);
  return r < 0 ? bfs_error(-EIO, "%s: write: %s", j->dest, strerror(-r)) : 0;
}

static int
dest_data(void *ctx, const void *buf, size_t len, uint64_t off)
{
  struct job *j = ctx;
  int r = check_interrupted(j->dest);
  if (r < 0)
    return r;
  XXH3_128bits_update(j->hash, buf, len);
  restore_progress_add(&j->pr, len);
  /* its writeback starts now, not at the final fdatasync */
  sync_file_range(j->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
  verifier_advance(j->v, off + len, false);
  pthread_mutex_lock(&j->th_lock);
  restore_throttle(&j->th, len);
  pthread_mutex_unlock(&j->th_lock);
  return 0;
}

static int
dest_hole(void *ctx, uint64_t off, uint64_t len)
{
  return zero_range(ctx, off, len);
}

static int
copy(struct job *j, XXH128_hash_t *hash)
{
  struct blk_flatten_src src = { .size = restore_src_size(j->src), .ctx = j,
                                 .extent = src_extent, .pread = src_pread,
                                 .prefetch = src_prefetch };
  struct blk_flatten_opts fo = { .write = dest_write, .data = dest_data,
                                 .hole = dest_hole, .ctx = j };
  int r;

  if (!(j->hash = XXH3_createState()))
    return bfs_error(-ENOMEM, "out of memory");
  XXH3_128bits_reset(j->hash);
  r = blk_flatten(&src, j->fd, j->dest, &fo);
  *hash = XXH3_128bits_digest(j->hash);
  XXH3_freeState(j->hash);
  j->hash = NULL;
  return r;
}

static int
open_dest(struct job *j, bool force, bool *created)
{
  struct stat st;

  *created = false;
  if (stat(j->dest, &st) == 0) {
    if (!force)
      return bfs_error(-EEXIST, "%s: exists (use --force to write over it)",
                       j->dest);
    if (S_ISBLK(st.st_mode)) {
      uint64_t size = 0;
      j->blockdev = true;
      j->fd = open(j->dest, O_RDWR | O_CLOEXEC | O_EXCL);
      if (j->fd < 0)
        return bfs_error(-errno, "%s: %s", j->dest, strerror(errno));
      if (ioctl(j->fd, BLKGETSIZE64, &size) < 0 ||
          size < restore_src_size(j->src))
        return bfs_error(-ENOSPC, "%s: device smaller than the disk "
                         "(%" PRIu64 " bytes)", j->dest,
                         restore_src_size(j->src));
      return 0;
    }
    if (!S_ISREG(st.st_mode))
      return bfs_error(-EINVAL, "%s: not a regular file or block device",
                       j->dest);
    if (unlink(j->dest) < 0)
      return bfs_error(-errno, "%s: %s", j->dest, strerror(errno));
  }
  j->fd = open(j->dest, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
               0600);
  if (j->fd < 0)
    return bfs_error(-errno, "%s: %s", j->dest, strerror(errno));
  *created = true;
  if (ftruncate(j->fd, restore_src_size(j->src)) < 0)
    return bfs_error(-errno, "%s: ftruncate: %s", j->dest, strerror(errno));
  return 0;
}

static int
restore_raw(struct job *j, bool force)
{
  struct verifier v;
  XXH128_hash_t h;
  bool created;
  int r;

  r = list_extents(j);
  if (r < 0)
    return r;
  if (posix_memalign((void **) &j->buf, 4096, CHUNK))
    return bfs_error(-ENOMEM, "out of memory");
  struct sigaction sa = { .sa_handler = on_signal };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  r = open_dest(j, force, &created);
  if (r == 0 && (r = verifier_start(j, &v)) == 0) {
    j->v = &v;
    restore_progress_init(&j->pr, "restoring", j->allocated, false);
    r = copy(j, &h);
    restore_progress_done(&j->pr);
    if (r == 0 && fdatasync(j->fd) < 0)
      r = bfs_error(-errno, "%s: fdatasync: %s", j->dest, strerror(errno));
    r = verifier_finish(&v, r, h);
    j->v = NULL;
  }
  if (j->fd >= 0 && close(j->fd) < 0 && r == 0)
    r = bfs_error(-errno, "%s: close: %s", j->dest, strerror(errno));
  j->fd = -1;
  if (r < 0 && created)
    unlink(j->dest);
  if (r == 0)
    summary(j, "raw", false);
  return r;
}

static int
restore_qcow2(struct job *j, bool compress, double mibps)
{
  CLEANUP_FREE char *spec = NULL, *rate = NULL;
  const char *fmt;
  struct stat st;
  char *argv[20];
  int a = 0, r;

  if (lstat(j->dest, &st) == 0)
    return bfs_error(-EEXIST, "%s: exists; remove it first", j->dest);
  r = restore_src_qemu_spec(j->src, &spec, &fmt);
  if (r < 0)
    return r;
  argv[a++] = "qemu-img";
  argv[a++] = "convert";
  if (isatty(STDERR_FILENO))
    argv[a++] = "-p";
  if (compress)
    argv[a++] = "-c";
  if (mibps > 0) {
    if (asprintf(&rate, "%.0f", mibps * 1024 * 1024) < 0)
      return bfs_error(-ENOMEM, "out of memory");
    argv[a++] = "-r";
    argv[a++] = rate;
  }
  if (fmt) {
    argv[a++] = "-f";
    argv[a++] = (char *) fmt;
  }
  argv[a++] = "-O";
  argv[a++] = "qcow2";
  argv[a++] = spec;
  argv[a++] = (char *) j->dest;
  argv[a] = NULL;
  r = restore_run(argv, false);
  if (r < 0) {
    unlink(j->dest);
    return r;
  }
  a = 0;
  argv[a++] = "qemu-img";
  argv[a++] = "compare";
  argv[a++] = "-q";
  if (fmt) {
    argv[a++] = "-f";
    argv[a++] = (char *) fmt;
  }
  argv[a++] = "-F";
  argv[a++] = "qcow2";
  argv[a++] = spec;
  argv[a++] = (char *) j->dest;
  argv[a] = NULL;
  r = restore_run(argv, false);
  if (r < 0)
    return bfs_error(r, "%s: differs from the backup (qemu-img compare)",
                     j->dest);
  summary(j, "qcow2", compress);
  return 0;
}

int
restore_disk_cmd(int argc, char **argv)
{
  const char *format = "raw", *repo = NULL, *catalog = NULL, *more[16];
  const char *key_file = NULL;
  size_t nmore = 0;
  struct blk_key *key = NULL;
  bool compress = false, force = false;
  double mibps = 0;
  struct job j = { .fd = -1, .th_lock = PTHREAD_MUTEX_INITIALIZER,
                  .pf_lock = PTHREAD_MUTEX_INITIALIZER };
  struct bfs_args g;
  int c, r;

  bfs_opts_init(&g, &disk_cmd, argc, argv);
  while ((c = bfs_opts_next(&g)) > 0) {
    switch (c) {
    case OPT_FORMAT: format = g.optarg; break;
    case 'c': compress = true; break;
    case OPT_BANDWIDTH:
      if (restore_parse_rate(g.optarg, &mibps) < 0) {
        fprintf(stderr, "backupfs: restore disk: --bandwidth %s: expected "
                "MiB per second, a positive number\n", g.optarg);
        return 2;
      }
      break;
    case OPT_REPO:            /* again: more stores of the repository */
      if (!repo)
        repo = g.optarg;
      else if (nmore < 16)
        more[nmore++] = g.optarg;
      else
        return bfs_opts_bad(&g, "at most 17 --repo");
      break;
    case OPT_FORCE: force = true; break;
    case OPT_KEY_FILE: key_file = g.optarg; break;
    }
  }
  if (c < 0)
    return g.status;
  catalog = g.catalog;
  j.json = g.json;
  if (strcmp(format, "raw") && strcmp(format, "qcow2")) {
    fprintf(stderr, "backupfs: restore disk: --format %s: raw or qcow2\n",
            format);
    return 2;
  }
  if (compress && strcmp(format, "qcow2")) {
    fprintf(stderr, "backupfs: restore disk: --compress needs --format qcow2\n");
    return 2;
  }
  j.dest = g.pos[2];
  struct stat dst;
  CLEANUP_FREE char *in_dir = NULL;
  if (stat(j.dest, &dst) == 0 && S_ISDIR(dst.st_mode)) {  /* DEST/<disk>.<fmt> */
    const char *disk = g.pos[1];
    if (strchr(disk, '/') ||
        asprintf(&in_dir, "%.*s/%s.%s", (int)strcspn_trailing(j.dest),
                 j.dest, disk, !strcmp(format, "raw") ? "raw" : "qcow2") < 0) {
      fprintf(stderr, "backupfs: restore disk: %s: not a disk name\n", disk);
      return 2;
    }
    j.dest = in_dir;
  }
  if (key_file && !repo) {
    fprintf(stderr, "backupfs: restore disk: --key-file goes with --repo "
            "(a mount takes -o keyfile=FILE)\n");
    return 2;
  }
  if (key_file && blk_key_from_file(key_file, &key) < 0) {
    fprintf(stderr, "backupfs: restore disk: --key-file %s: %s\n", key_file,
            bfs_last_error());
    return 1;
  }
  if (repo)
    r = restore_src_repo(repo, more, nmore, catalog, key, g.pos[0], g.pos[1],
                         &j.src);
  else {
    json_object *bj = NULL;
    r = restore_backup_json(g.pos[0], &bj);
    if (r == 0 && !restore_json_disk(bj, g.pos[0], g.pos[1]))
      r = -ENOENT;
    if (bj)
      json_object_put(bj);
    if (r == 0)
      r = restore_src_mounted(g.pos[0], g.pos[1], &j.src);
  }
  if (r == 0) {
    restore_throttle_init(&j.th, mibps);
    r = !strcmp(format, "raw") ? restore_raw(&j, force)
                               : restore_qcow2(&j, compress, mibps);
  }
  if (r < 0)
    fprintf(stderr, "backupfs: restore disk: %s\n", bfs_last_error());
  if (j.fd >= 0)
    close(j.fd);
  free(j.buf);
  free(j.ext);
  restore_src_close(j.src);
  blk_key_free(key);                    /* wiped */
  return r < 0 ? 1 : 0;
}
