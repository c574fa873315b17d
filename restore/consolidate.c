/* consolidate.c — `restore consolidate DEST` and `restore status DEST`.
 *
 * Consolidation pulls each overlay's backing into it, so the restored VM
 * stops depending on the backup, and then proves the result before saying
 * the backup may be released:
 *
 *   1. Before the pull, what the guest already wrote is read from the
 *      overlay file itself (its allocated clusters; a running domain is
 *      suspended for that instant, which flushes qemu's qcow2 metadata).
 *      Those blocks are the guest's, not the backup's, and are not compared.
 *      On a running domain a dirty bitmap is added through QMP (virsh
 *      qemu-monitor-command), so writes during the pull are counted.
 *   2. The pull: `virsh blockpull DOM TARGET --wait` when the domain runs,
 *      else `qemu-img rebase -f qcow2 -b '' OVERLAY`.  A failed pull leaves
 *      the overlay backed (qemu only drops the backing when the job
 *      completes): that is checked, said loudly with how to retry, and the
 *      exit status is 1.
 *   3. The check: the overlay, opened alone by our qcow2 driver (it must
 *      have no backing any more), is compared block by block with the point
 *      in time read through the chain by the disk service, outside the
 *      guest's blocks of step 1.  Any other difference fails — unless the
 *      bitmap says the guest wrote during the pull, then the result is "not
 *      verified" (never success).  The running domain is suspended while it
 *      is read and resumed afterwards.
 *   4. Verified: the NBD export (--via nbd) is stopped, the state says the
 *      backup may be released.
 * Progress and outcome are in DEST/.backupfs/quick.json (restore status).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blk/blk.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/opts.h"
#include "restore/quick.h"

#define CMP_BLOCK (64u << 10)
#define CMP_CHUNK (1u << 20)
#define BITMAP "backupfs-consolidate"

int
quick_run_output(char *const argv[], char **out)
{
  int p[2], status;
  pid_t pid;

  *out = NULL;
  if (pipe2(p, O_CLOEXEC) < 0)
    return bfs_error(-errno, "pipe: %s", strerror(errno));
  fflush(stdout);
  fflush(stderr);
  if ((pid = fork()) < 0) {
    close(p[0]);
    close(p[1]);
    return bfs_error(-errno, "fork: %s", strerror(errno));
  }
  if (pid == 0) {
    dup2(p[1], STDOUT_FILENO);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0)
      dup2(null, STDERR_FILENO);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(p[1]);
  size_t len = 0;
  FILE *m = open_memstream(out, &len);
  char buf[4096];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0 && m)
      fwrite(buf, 1, (size_t)n, m);
  close(p[0]);
  if (m)
    fclose(m);
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return bfs_error(-errno, "waitpid: %s", strerror(errno));
  if (!*out)
    return bfs_error(-ENOMEM, "out of memory");
  if (!WIFEXITED(status) || WEXITSTATUS(status))
    return bfs_error(-EIO, "%s %s failed", argv[0], argv[1] ? argv[1] : "");
  return 0;
}

/* "running", "paused", "shut off", ... or NULL (not defined / no virsh) */
static char *
domstate(const char *dom)
{
  char *argv[] = { "virsh", "domstate", (char *)dom, NULL };
  char *out = NULL;

  if (!restore_have_program("virsh") || quick_run_output(argv, &out) < 0) {
    free(out);
    bfs_clear_error();
    return NULL;
  }
  out[strcspn(out, "\n")] = 0;
  return out;
}

static int
virsh(const char *verb, const char *dom)
{
  char *argv[] = { "virsh", "-q", (char *)verb, (char *)dom, NULL };
  return restore_run(argv, true);
}

/* QMP through virsh; *reply (may be NULL) the parsed answer */
static int
qmp(const char *dom, const char *cmd, json_object **reply)
{
  char *argv[] = { "virsh", "qemu-monitor-command", (char *)dom, (char *)cmd,
                   NULL };
  CLEANUP_FREE char *out = NULL;
  int r = quick_run_output(argv, &out);

  if (r < 0)
    return r;
  json_object *o = json_tokener_parse(out);
  if (!o || json_object_object_get_ex(o, "error", NULL)) {
    json_object_put(o);
    return bfs_error(-EIO, "QMP %s: %s", cmd, out);
  }
  if (reply)
    *reply = o;
  else
    json_object_put(o);
  return 0;
}

/* The format node of overlay in query-block, and its bitmap's count
 * (-1: none). */
static int
qmp_node(const char *dom, const char *overlay, char **node, int64_t *count)
{
  json_object *o = NULL, *ret;
  int r = qmp(dom, "{\"execute\":\"query-block\"}", &o);

  *node = NULL;
  *count = -1;
  if (r < 0)
    return r;
  if (json_object_object_get_ex(o, "return", &ret))
    for (size_t i = 0; i < json_object_array_length(ret) && !*node; i++) {
      json_object *ins, *bms;
      if (!json_object_object_get_ex(json_object_array_get_idx(ret, i),
                                     "inserted", &ins))
        continue;
      const char *f = restore_json_str(ins, "file");
      const char *nn = restore_json_str(ins, "node-name");
      /* a plain name, or (an explicit backing chain) a json: filename
       * naming the overlay's own file */
      CLEANUP_FREE char *quoted = NULL;
      if (asprintf(&quoted, "\"%s\"", overlay) < 0)
        quoted = NULL;
      if (!f || !nn || (strcmp(f, overlay) &&
                        (strncmp(f, "json:", 5) || !quoted ||
                         !strstr(f, quoted))))
        continue;
      *node = strdup(nn);
      if (json_object_object_get_ex(ins, "dirty-bitmaps", &bms))
        for (size_t k = 0; k < json_object_array_length(bms); k++) {
          json_object *b = json_object_array_get_idx(bms, k), *c;
          const char *bn = restore_json_str(b, "name");
          if (bn && !strcmp(bn, BITMAP) &&
              json_object_object_get_ex(b, "count", &c))
            *count = json_object_get_int64(c);
        }
    }
  json_object_put(o);
  return *node ? 0 : bfs_error(-ENOENT, "%s: not a disk of %s", overlay, dom);
}

static int
bitmap_cmd(const char *dom, const char *node, const char *verb)
{
  CLEANUP_FREE char *cmd = NULL;
  if (asprintf(&cmd, "{\"execute\":\"block-dirty-bitmap-%s\",\"arguments\":"
               "{\"node\":\"%s\",\"name\":\"" BITMAP "\"}}", verb, node) < 0)
    return bfs_error(-ENOMEM, "out of memory");
  return qmp(dom, cmd, NULL);
}

/* ---- the overlay file, read by our own qcow2 driver ---- */

/* A disk of nothing: under an overlay that is still backed, unallocated
 * clusters read as holes, so its block status tells what the guest wrote.
 * Labelled with the format the overlay records (the qcow2 driver checks). */
static int
hole_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  memset(buf, 0, len);
  return 0;
}

static int
hole_status(struct bfs_blk *b, uint64_t off, uint64_t max,
            struct bfs_blk_status *st)
{
  *st = (struct bfs_blk_status) { .len = max, .kind = BFS_BLK_HOLE,
                                  .layer = -1, .fd = -1 };
  return 0;
}

static void
hole_close(struct bfs_blk *b)
{
  free((char *)b->info.format);
  free(b);
}

static const struct bfs_blk_ops hole_ops = {
  .name = "nothing", .pread = hole_pread, .block_status = hole_status,
  .close = hole_close,
};

/* the overlay alone; hole_below: unallocated reads as holes (for the
 * guest's map) instead of failing on the recorded backing */
static int
open_overlay(const char *path, bool hole_below, struct bfs_blk **out,
             bool *backed)
{
  struct blk_io *io;
  struct bfs_blk *below = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC), r;

  if (fd < 0)
    return bfs_error(-errno, "%s: %s", path, strerror(errno));
  if ((r = blk_io_fd(fd, path, &io)) < 0)
    return r;
  if ((r = blk_qcow2_open(io, NULL, NULL, out)) < 0)
    return r;
  *backed = bfs_blk_info(*out)->backing_file != NULL;
  if (!hole_below || !*backed)
    return 0;
  const char *fmt = bfs_blk_info(*out)->backing_format;
  uint64_t size = (*out)->size;
  char *f = strdup(fmt ? fmt : "raw");
  bfs_blk_close(*out);
  *out = NULL;
  if (!f || !(below = calloc(1, sizeof *below))) {
    free(f);
    return bfs_error(-ENOMEM, "out of memory");
  }
  below->info.format = f;
  below->ops = &hole_ops;
  below->size = size;
  below->name = "nothing";
  below->info.virtual_size = size;
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
      (r = blk_io_fd(fd, path, &io)) < 0) {
    bfs_blk_close(below);
    return fd < 0 ? bfs_error(-errno, "%s: %s", path, strerror(errno)) : r;
  }
  return blk_qcow2_open(io, NULL, below, out);
}

struct ranges {
  uint64_t *off, *len;
  size_t n, cap;
  uint64_t bytes;
};

/* what the guest wrote: the overlay's allocated (data or zero) ranges */
static int
guest_map(const char *overlay, struct ranges *g)
{
  struct bfs_blk *b;
  bool backed;
  int r = open_overlay(overlay, true, &b, &backed);

  if (r < 0)
    return r;
  for (uint64_t off = 0; off < b->size && r == 0;) {
    struct bfs_blk_status st;
    if ((r = bfs_blk_block_status(b, off, b->size - off, &st)) < 0)
      break;
    if (st.kind != BFS_BLK_HOLE && st.layer == 0) {
      if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        uint64_t *o = realloc(g->off, g->cap * sizeof *o);
        if (o)
          g->off = o;
        uint64_t *l = o ? realloc(g->len, g->cap * sizeof *l) : NULL;
        if (!l) {
          r = bfs_error(-ENOMEM, "out of memory");
          break;
        }
        g->len = l;
      }
      g->off[g->n] = off;
      g->len[g->n++] = st.len;
      g->bytes += st.len;
    }
    off += st.len;
  }
  bfs_blk_close(b);
  return r;
}

static bool
in_ranges(const struct ranges *g, uint64_t off, uint64_t len)
{
  for (size_t i = 0; i < g->n; i++)
    if (off < g->off[i] + g->len[i] && g->off[i] < off + len)
      return true;
  return false;
}

/* the point in time of disk i, through the chain */
static int
open_pit(const struct qstate *q, size_t i, struct rsrc **src)
{
  CLEANUP_FREE char *vt = NULL;
  struct bfs_blk *blk;

  if (!q->repo)
    return restore_src_mounted(q->bdir, q->disks[i].name, src);
  if (asprintf(&vt, "%s@%s", q->vm, q->time) < 0)
    return bfs_error(-ENOMEM, "out of memory");
  return restore_blk_repo(q->repo, q->catalog, NULL, vt, q->disks[i].name, src,
                          &blk);
}

/* compare; *diff the blocks that differ outside g, *first the first */
static int
compare(const struct qstate *q, size_t i, const struct ranges *g,
        uint64_t *diff, uint64_t *first)
{
  const char *ov = q->disks[i].overlay;
  struct bfs_blk *b;
  struct rsrc *src = NULL;
  bool backed;
  int r;

  *diff = 0;
  if ((r = open_overlay(ov, false, &b, &backed)) < 0)
    return r;
  if (backed) {
    bfs_blk_close(b);
    return bfs_error(-EIO, "%s: still has a backing file: the pull did not "
                     "complete", ov);
  }
  if ((r = open_pit(q, i, &src)) < 0) {
    bfs_blk_close(b);
    return r;
  }
  uint64_t size = restore_src_size(src);
  CLEANUP_FREE char *x = malloc(CMP_CHUNK), *y = malloc(CMP_CHUNK);
  if (b->size != size)
    r = bfs_error(-EIO, "%s: %" PRIu64 " bytes, the point in time %" PRIu64,
                  ov, b->size, size);
  else if (!x || !y)
    r = bfs_error(-ENOMEM, "out of memory");
  for (uint64_t off = 0; r == 0 && off < size; off += CMP_CHUNK) {
    size_t len = size - off < CMP_CHUNK ? (size_t)(size - off) : CMP_CHUNK;
    if ((r = bfs_blk_pread(b, x, len, off)) < 0 ||
        (r = restore_src_pread(src, y, len, off)) < 0)
      break;
    for (size_t k = 0; k < len; k += CMP_BLOCK) {
      size_t l = len - k < CMP_BLOCK ? len - k : CMP_BLOCK;
      if (memcmp(x + k, y + k, l) && !in_ranges(g, off + k, l)) {
        if (!(*diff)++)
          *first = off + k;
      }
    }
  }
  restore_src_close(src);
  bfs_blk_close(b);
  return r;
}

static void
say(struct qstate *q, const char *state, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static void
say(struct qstate *q, const char *state, const char *fmt, ...)
{
  char *m = NULL;
  va_list ap;

  va_start(ap, fmt);
  if (vasprintf(&m, fmt, ap) < 0)
    m = NULL;
  va_end(ap);
  qstate_set(&q->state, state);
  free(q->message);
  q->message = m;
  if (qstate_save(q) < 0)
    fprintf(stderr, "backupfs: warning: %s\n", bfs_last_error());
}

static int
consolidate_disk(struct qstate *q, size_t i, bool live, bool pause)
{
  struct qstate_disk *d = &q->disks[i];
  struct ranges g = { 0 };
  CLEANUP_FREE char *node = NULL;
  int64_t count = -1;
  uint64_t diff = 0, first = 0;
  int r;

  if (d->state && !strcmp(d->state, "verified"))
    return 0;
  /* 1. what the guest wrote so far, and a bitmap for what it writes next */
  if (pause && (r = virsh("suspend", q->domain)) < 0)
    return r;
  r = guest_map(d->overlay, &g);
  if (live && r == 0 && qmp_node(q->domain, d->overlay, &node, &count) == 0 &&
      bitmap_cmd(q->domain, node, "add") < 0) {
    free(node);
    node = NULL;
  }
  if (pause && virsh("resume", q->domain) < 0 && r == 0)
    r = -EIO;
  if (r < 0)
    goto out;
  if (live && !node) {
    fprintf(stderr, "backupfs: warning: %s: no dirty bitmap (QMP): guest "
            "writes during the pull cannot be told from a bad pull\n",
            d->target);
    bfs_clear_error();
  }

  /* 2. the pull */
  qstate_set(&d->state, "pulling");
  say(q, "consolidating", "pulling %s (%s) into %s", d->target, d->name,
      d->overlay);
  printf("%s: pulling the backing into %s%s\n", d->target, d->overlay,
         live ? " (live, virsh blockpull)" : " (offline, qemu-img rebase)");
  if (live) {
    char *argv[] = { "virsh", "blockpull", q->domain, d->target, "--wait",
                     NULL };
    r = restore_run(argv, false);
  } else {
    char *argv[] = { "qemu-img", "rebase", "-f", "qcow2", "-b", "", d->overlay,
                     NULL };
    r = restore_run(argv, false);
  }
  if (r < 0) {
    struct bfs_blk *b;
    bool backed = true;
    if (open_overlay(d->overlay, false, &b, &backed) == 0)
      bfs_blk_close(b);
    qstate_set(&d->state, backed ? "backed" : "failed");
    say(q, "failed", "the pull of %s failed; %s. Retry with `backupfs "
        "restore consolidate %s` once the backing (via %s) reads again",
        d->target, !backed ? "THE OVERLAY HAS NO BACKING ANY MORE: do not "
        "release the backup" : live ? "the overlay is still backed by the "
        "point in time, the VM keeps running on it" : "the overlay is still "
        "backed by the point in time, nothing is lost", q->dest, q->via);
    r = bfs_error(-EIO, "%s", q->message);
    goto out;
  }

  /* 3. the check, with the domain suspended */
  if (pause && (r = virsh("suspend", q->domain)) < 0)
    goto out;
  r = compare(q, i, &g, &diff, &first);
  if (live && node) {
    CLEANUP_FREE char *n2 = NULL;
    if (qmp_node(q->domain, d->overlay, &n2, &count) == 0)
      bitmap_cmd(q->domain, n2, "remove");
    bfs_clear_error();
  }
  if (pause && virsh("resume", q->domain) < 0 && r == 0)
    r = -EIO;
  if (r < 0) {
    qstate_set(&d->state, "failed");
    say(q, "failed", "%s: consolidated, but the check could not run: %s; do "
        "not release the backup", d->target, bfs_last_error());
    r = bfs_error(-EIO, "%s", q->message);
    goto out;
  }
  if (diff && (count > 0 || (live && !node))) {
    qstate_set(&d->state, "unverified");
    say(q, "failed", "%s: %" PRIu64 " blocks differ from the point in time "
        "(first at %" PRIu64 "), and the guest wrote during the pull: NOT "
        "verified, do not release the backup before checking the VM",
        d->target, diff, first);
    r = bfs_error(-EIO, "%s", q->message);
    goto out;
  }
  if (diff) {
    qstate_set(&d->state, "failed");
    say(q, "failed", "%s: the consolidated disk DIFFERS from the point in "
        "time in %" PRIu64 " blocks the guest did not write (first at %"
        PRIu64 "): the pull returned other bytes; do not release the "
        "backup", d->target, diff, first);
    r = bfs_error(-EIO, "%s", q->message);
    goto out;
  }
  qstate_set(&d->state, "verified");
  printf("%s: verified: equals the point in time outside the %" PRIu64
         " bytes the guest had written\n", d->target, g.bytes);
out:
  free(g.off);
  free(g.len);
  return r;
}

/* pid is our export's nbdkit and has not exited: not a zombie, and its
 * command line names the restore's socket (a recycled PID is not ours) */
static bool
export_alive(pid_t pid, const char *sock)
{
  CLEANUP_FREE char *p = NULL, *c = NULL;
  char buf[8192];
  ssize_t n;
  int fd;

  if (pid <= 1 || !sock || asprintf(&p, "/proc/%d/stat", (int)pid) < 0 ||
      asprintf(&c, "/proc/%d/cmdline", (int)pid) < 0)
    return false;
  if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
    return false;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  const char *e = n > 0 ? (buf[n] = 0, strrchr(buf, ')')) : NULL;
  if (!e || e[1] != ' ' || e[2] == 'Z' || e[2] == 'X')
    return false;
  if ((fd = open(c, O_RDONLY | O_CLOEXEC)) < 0)
    return false;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return false;
  for (ssize_t i = 0; i < n; i++)      /* NUL-separated arguments */
    if (!buf[i])
      buf[i] = ' ';
  buf[n] = 0;
  return strstr(buf, sock) != NULL;
}

/* the export of a quick restore, started again for an offline pull */
static int
restart_export(struct qstate *q)
{
  const char *names[64];
  struct qvia v = { .repo = q->repo, .catalog = q->catalog, .vm = q->vm,
                    .time = q->time, .dest = q->dest };
  int r;

  if (q->ndisks > 64)
    return bfs_error(-E2BIG, "more than 64 disks");
  for (size_t i = 0; i < q->ndisks; i++)
    names[i] = q->disks[i].name;
  fprintf(stderr, "backupfs: the NBD export (nbdkit %d) is not running: "
          "starting it again\n", (int)q->serve_pid);
  if ((r = quick_via_serve(&v, names, q->ndisks)) < 0) {
    free(v.serve_socket);
    return r;
  }
  q->serve_pid = v.serve_pid;
  free(q->serve_socket);
  q->serve_socket = v.serve_socket;
  return qstate_save(q);
}

int
quick_consolidate(struct qstate *q)
{
  CLEANUP_FREE char *ds = domstate(q->domain);
  bool live = ds && (!strcmp(ds, "running") || !strcmp(ds, "paused"));
  int r = 0;

  if (ds && !live && strcmp(ds, "shut off"))
    return bfs_error(-EBUSY, "domain %s is %s: start it or shut it off, then "
                     "retry", q->domain, ds);
  if (!strcmp(q->via, "nbd") &&
      !export_alive(q->serve_pid, q->serve_socket)) {
    if (live) {
      say(q, "failed", "the NBD export (nbdkit %d) is gone and the running "
          "VM's connection to it with it: the overlays are still backed. "
          "Shut the VM down (its writes are in the overlays), then rerun "
          "`backupfs restore consolidate %s` (it restarts the export)",
          (int)q->serve_pid, q->dest);
      fprintf(stderr, "backupfs: CONSOLIDATION FAILED: %s\n", q->message);
      return bfs_error(-EIO, "%s", q->message);
    }
    if ((r = restart_export(q)) < 0) {
      say(q, "failed", "the NBD export could not be started again: %s; the "
          "overlays are still backed, nothing is lost; rerun `backupfs "
          "restore consolidate %s` once the repository reads again",
          bfs_last_error(), q->dest);
      fprintf(stderr, "backupfs: CONSOLIDATION FAILED: %s\n", q->message);
      return bfs_error(-EIO, "%s", q->message);
    }
  }
  printf("consolidating %s (%s), via %s\n", q->domain,
         live ? "running: live block pull" : "not running: offline rebase",
         q->via);
  for (size_t i = 0; i < q->ndisks && r == 0; i++)
    r = consolidate_disk(q, i, live, live && !strcmp(ds, "running"));
  if (r < 0) {
    if (!q->state || strcmp(q->state, "failed"))    /* not said yet */
      say(q, "failed", "%s", bfs_last_error());
    fprintf(stderr, "backupfs: CONSOLIDATION FAILED: %s\n", q->message);
    return r;
  }
  if (!strcmp(q->via, "nbd") &&
      export_alive(q->serve_pid, q->serve_socket)) {
    kill(q->serve_pid, SIGTERM);
    printf("stopped the NBD export (nbdkit %d)\n", (int)q->serve_pid);
    q->serve_pid = 0;
  }
  say(q, "consolidated", "every disk pulled and verified against %s@%s: "
      "the backup may be released", q->vm ? q->vm : "?",
      q->time ? q->time : "?");
  printf("%s\n", q->message);
  return 0;
}

static int
dest_cmd(int argc, char **argv, const char *what, bool consolidate)
{
  struct qstate q;
  int r;

  const struct bfs_cmd cmd = {
    .name = consolidate ? "restore consolidate" : "restore status",
    .usage = consolidate ? "restore consolidate DEST_DIR"
                         : "restore status DEST_DIR",
    .about = consolidate
      ? "Pull the backing of a quick restore's overlays into them (live with "
        "virsh\nblockpull when the domain runs, else qemu-img rebase), check "
        "every disk\nagainst the point in time, and say whether the backup may "
        "be released.\nA failed pull leaves the overlays backed; rerun to retry."
      : "Show how a quick restore's overlays are backed and where "
        "consolidation\nstands (DEST_DIR/.backupfs/quick.json), with a running "
        "pull's progress.",
    .need = "DEST_DIR", .min_args = 1, .max_args = 1,
  };
  struct bfs_args g;
  int c;
  bfs_opts_init(&g, &cmd, argc, argv);
  while ((c = bfs_opts_next(&g)) > 0)
    ;                                  /* only the shared options */
  if (c < 0)
    return g.status;
  (void)what;
  if ((r = qstate_load(g.pos[0], &q)) < 0) {
    fprintf(stderr, "backupfs: restore %s: %s\n", what, bfs_last_error());
    qstate_free(&q);
    return 1;
  }
  if (consolidate) {
    r = quick_consolidate(&q);
    qstate_free(&q);
    return r < 0 ? 1 : 0;
  }
  printf("domain %s, via %s, %s@%s\nstate: %s\n%s\n", q.domain, q.via,
         q.vm ? q.vm : "?", q.time ? q.time : "?", q.state ? q.state : "?",
         q.message ? q.message : "");
  if (!strcmp(q.via, "nbd"))
    printf("NBD export: nbdkit %d on %s (%s)\n", (int)q.serve_pid,
           q.serve_socket ? q.serve_socket : "?",
           export_alive(q.serve_pid, q.serve_socket) ? "running"
                                                     : "not running");
  for (size_t i = 0; i < q.ndisks; i++) {
    printf("  %s (%s): %s, %s\n", q.disks[i].target, q.disks[i].name,
           q.disks[i].state ? q.disks[i].state : "?", q.disks[i].overlay);
    if (q.disks[i].state && !strcmp(q.disks[i].state, "pulling")) {
      char *a[] = { "virsh", "blockjob", q.domain, q.disks[i].target,
                    "--info", NULL };
      CLEANUP_FREE char *out = NULL;
      if (quick_run_output(a, &out) == 0)
        printf("    %s", out);
    }
  }
  qstate_free(&q);
  return 0;
}

int
restore_consolidate_cmd(int argc, char **argv)
{
  return dest_cmd(argc, argv, "consolidate", true);
}

int
restore_status_cmd(int argc, char **argv)
{
  return dest_cmd(argc, argv, "status", false);
}
