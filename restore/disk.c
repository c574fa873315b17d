/* disk.c — `backupfs restore disk`: one whole disk out of a backup.
 *
 * Raw output: the source's extent list is taken first (cheap: the mount's
 * SEEK_DATA/SEEK_HOLE or the chain's extent map) so progress knows the
 * total; then every data extent is read in 4 MiB pieces, passed through the
 * bandwidth limiter, hashed (xxh3-128) and written, skipping all-zero 4 KiB
 * blocks, into a file created for the purpose and sized with ftruncate, so
 * holes stay holes.  After fdatasync and dropping the page cache, the data
 * extents are read back from the destination and hashed again, and the
 * holes are checked to hold no data: success is only reported when both
 * agree.  The bandwidth limit applies to the read-back too (it is I/O on
 * the same busy storage).  A block device (with --force) gets its holes
 * zeroed instead.
 *
 * qcow2 output is qemu-img convert from the raw source (the mounted disk
 * image, or the repository chain spelled as a json: filename), checked with
 * qemu-img compare.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/cleanup.h"
#include "common/error.h"
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

struct job {
  struct rsrc *src;
  const char *dest;
  int fd;
  bool blockdev;
  struct ext *ext;
  size_t next;
  uint64_t allocated;
  char *buf;
  struct throttle th;
  struct progress pr;
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
             restore_human(j->allocated, a, sizeof a),
             restore_human(restore_src_size(j->src), b, sizeof b));
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

enum { OPT_FORMAT = 256, OPT_BANDWIDTH, OPT_REPO, OPT_FORCE };

static const struct bfs_opt disk_opts[] = {
  { "format", OPT_FORMAT, "raw|qcow2", "output format (default raw)" },
  { "compress", 'c', NULL, "compress the qcow2 output" },
  { "bandwidth", OPT_BANDWIDTH, "MIB/S",
    "limit reading and writing to MiB per second" },
  { "repo", OPT_REPO, "REPO",
    "read VM@TIME of REPO instead of a mounted BACKUP_DIR" },
  { "force", OPT_FORCE, NULL, "write over an existing file or block device" },
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

static int
copy(struct job *j, XXH128_hash_t *hash)
{
  XXH3_state_t *st = XXH3_createState();
  int r = 0;

  if (!st)
    return bfs_error(-ENOMEM, "out of memory");
  XXH3_128bits_reset(st);
  for (struct ext *e = j->ext; e->len; e++) {
    if (!e->data) {
      r = zero_range(j, e->off, e->len);
      if (r < 0)
        break;
      continue;
    }
    for (uint64_t o = e->off; o < e->off + e->len;) {
      size_t n = e->off + e->len - o < CHUNK ? e->off + e->len - o : CHUNK;
      if ((r = check_interrupted(j->dest)) < 0)
        goto out;
      restore_throttle(&j->th, n);
      r = restore_src_pread(j->src, j->buf, n, o);
      if (r < 0)
        goto out;
      XXH3_128bits_update(st, j->buf, n);
      if (j->blockdev)
        r = pwrite(j->fd, j->buf, n, o) == (ssize_t) n ? 0 :
            bfs_error(-EIO, "%s: write: %s", j->dest, strerror(errno));
      else
        r = restore_write_sparse(j->fd, j->dest, j->buf, n, o);
      if (r < 0)
        goto out;
      restore_progress_add(&j->pr, n);
      o += n;
    }
  }
out:
  *hash = XXH3_128bits_digest(st);
  XXH3_freeState(st);
  return r;
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

static int
check(struct job *j, XXH128_hash_t want)
{
  XXH3_state_t *st;
  XXH128_hash_t got;
  struct progress pr;
  int r = 0;

  if (fdatasync(j->fd) < 0)
    return bfs_error(-errno, "%s: fdatasync: %s", j->dest, strerror(errno));
  posix_fadvise(j->fd, 0, 0, POSIX_FADV_DONTNEED);
  if (!(st = XXH3_createState()))
    return bfs_error(-ENOMEM, "out of memory");
  XXH3_128bits_reset(st);
  restore_progress_init(&pr, "checking", j->allocated, false);
  for (struct ext *e = j->ext; e->len && r == 0; e++) {
    if (!e->data) {
      r = check_hole(j, e->off, e->len);
      continue;
    }
    for (uint64_t o = e->off; o < e->off + e->len;) {
      size_t n = e->off + e->len - o < CHUNK ? e->off + e->len - o : CHUNK;
      if ((r = check_interrupted(j->dest)) < 0)
        break;
      restore_throttle(&j->th, n);
      if (pread(j->fd, j->buf, n, o) != (ssize_t) n) {
        r = bfs_error(-EIO, "%s: read back: %s", j->dest, strerror(errno));
        break;
      }
      XXH3_128bits_update(st, j->buf, n);
      restore_progress_add(&pr, n);
      o += n;
    }
  }
  restore_progress_done(&pr);
  got = XXH3_128bits_digest(st);
  XXH3_freeState(st);
  if (r == 0 && !XXH128_isEqual(got, want))
    r = bfs_error(-EIO, "%s: read back differs from the backup", j->dest);
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
  if (r == 0) {
    restore_progress_init(&j->pr, "restoring", j->allocated, false);
    r = copy(j, &h);
    restore_progress_done(&j->pr);
  }
  if (r == 0)
    r = check(j, h);
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
  const char *format = "raw", *repo = NULL, *catalog = NULL;
  bool compress = false, force = false;
  double mibps = 0;
  struct job j = { .fd = -1 };
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
    case OPT_REPO: repo = g.optarg; break;
    case OPT_FORCE: force = true; break;
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
  if (repo)
    r = restore_src_repo(repo, catalog, g.pos[0], g.pos[1], &j.src);
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
  return r < 0 ? 1 : 0;
}
