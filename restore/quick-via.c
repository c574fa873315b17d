/* quick-via.c — what a quick restore's overlays are backed by.
 *
 *   mount  BACKUP_DIR/disks/<disk>.img of a backupfs mount, as raw: the
 *          mount's daemon must keep serving until consolidation.
 *   repo   the repository's own files: qemu follows the catalog's chain
 *          itself, spelled as the json: spec restore already builds for
 *          qemu-img (restore_src_qemu_spec) in the overlay's header and as
 *          an explicit <backingStore> chain in the domain XML (relabel='no':
 *          libvirt never chowns a backup).  No process of ours is needed,
 *          so it is the safest; it fits only when every layer is a plain
 *          qcow2/raw file (no LUKS, no external data file, no archive
 *          format) and qemu opens the spec here (qemu-io -U -r).
 *   nbd    an export of `backupfs serve` (nbdkit, daemonised, its own
 *          process group) on DEST/.backupfs/nbd.sock, one export per disk,
 *          named with the backup's name (never "latest"); its PID is kept in
 *          the restore's state until consolidation is verified.  Works for
 *          every format the block layer reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "blk/blk.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "restore/quick.h"
#include "serve/serve.h"

bool
quick_have_plugin(void)
{
  char *p = serve_plugin_path();
  bool ok = p != NULL;

  free(p);
  bfs_clear_error();
  return ok;
}

static char *
keep(struct qvdisk *d, char *s)
{
  if (s && d->nstrings < sizeof d->strings / sizeof d->strings[0])
    d->strings[d->nstrings++] = s;
  else {
    free(s);
    s = NULL;
  }
  return s;
}

void
quick_vdisk_free(struct qvdisk *d)
{
  free(d->backing);
  free(d->layers);
  for (size_t i = 0; i < d->nstrings; i++)
    free(d->strings[i]);
  d->backing = NULL;
  d->layers = NULL;
  d->nstrings = 0;
}

int
quick_via_mount(const struct qvia *v, struct qvdisk *d)
{
  CLEANUP_FREE char *img = NULL;
  char real[PATH_MAX];
  struct stat st;

  if (!v->bdir)
    return bfs_error(-EINVAL, "--via mount needs a mounted BACKUP_DIR");
  if (asprintf(&img, "%s/disks/%s.img", v->bdir, d->name) < 0)
    return bfs_error(-ENOMEM, "out of memory");
  if (!realpath(img, real) || stat(real, &st) < 0)
    return bfs_error(-errno, "%s: %s", img, strerror(errno));
  /* the chain must open now, not when the VM boots */
  int fd = open(real, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return bfs_error(-errno, "%s: %s", real, strerror(errno));
  close(fd);
  if (!(d->backing = strdup(real)))
    return bfs_error(-ENOMEM, "out of memory");
  d->backing_fmt = "raw";
  d->size = (uint64_t)st.st_size;
  return 0;
}

/* the point in time's disk through the disk service */
static int
open_repo(const struct qvia *v, const char *disk, struct rsrc **src,
          struct bfs_blk **blk)
{
  CLEANUP_FREE char *vt = NULL;

  if (!v->repo)
    return bfs_error(-EINVAL, "the repository is not known (give --repo "
                     "REPO, or a BACKUP_DIR of a running backupfs mount)");
  if (asprintf(&vt, "%s@%s", v->vm, v->time) < 0)
    return bfs_error(-ENOMEM, "out of memory");
  return restore_blk_repo(v->repo, v->catalog, NULL, vt, disk, src, blk);
}

static char *
layer_path(const struct qvia *v, struct bfs_blk *l)
{
  char *p = NULL;
  if (asprintf(&p, "%s/%s", v->repo, l->name) < 0)
    return NULL;
  return p;
}

char *
quick_repo_unfit(const struct qvia *v, const char *disk)
{
  struct rsrc *src = NULL;
  struct bfs_blk *blk;
  CLEANUP_FREE char *spec = NULL;
  const char *fmt;
  char *why = NULL;
  int r = open_repo(v, disk, &src, &blk);

  if (r < 0) {
    if (asprintf(&why, "%s", bfs_last_error()) < 0)
      why = NULL;
    return why ? why : strdup("cannot open the point in time");
  }
  size_t depth = bfs_blk_depth(blk);
  for (size_t i = 0; i < depth && !why; i++) {
    struct bfs_blk *l = bfs_blk_layer(blk, i);
    const struct bfs_blk_info *in = bfs_blk_info(l);
    CLEANUP_FREE char *path = layer_path(v, l);
    struct stat st;
    int e = 0;
    if (strcmp(in->format, "qcow2") && strcmp(in->format, "raw"))
      e = asprintf(&why, "layer %s is %s, which qemu does not read",
                   l->name, in->format);
    else if (in->encrypted)
      e = asprintf(&why, "layer %s is encrypted", l->name);
    else if (in->external_data)
      e = asprintf(&why, "layer %s has an external data file", l->name);
    else if (!strcmp(in->format, "raw") && i + 1 < depth)
      e = asprintf(&why, "raw layer %s has a layer below it", l->name);
    else if (!path || stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
             access(path, R_OK) < 0)
      e = asprintf(&why, "layer %s is not a readable plain file here",
                   l->name);
    if (e < 0)
      why = NULL;
  }
  if (!why && restore_src_qemu_spec(src, &spec, &fmt) < 0 &&
      asprintf(&why, "%s", bfs_last_error()) < 0)
    why = NULL;
  if (!why && spec) {
    /* qemu-io opens the whole chain (qemu-img info would not) */
    char *argv[] = { "qemu-io", "-U", "-r", "-c", "read 0 512", spec, NULL };
    if (restore_run(argv, true) < 0 &&
        asprintf(&why, "qemu cannot open the chain here") < 0)
      why = NULL;
  }
  restore_src_close(src);
  return why;
}

int
quick_via_repo(const struct qvia *v, struct qvdisk *d)
{
  struct rsrc *src = NULL;
  struct bfs_blk *blk;
  const char *fmt;
  int r = open_repo(v, d->name, &src, &blk);

  if (r < 0)
    return r;
  size_t depth = bfs_blk_depth(blk);
  d->size = blk->size;
  d->layers = calloc(depth ? depth : 1, sizeof *d->layers);
  if (!d->layers) {
    restore_src_close(src);
    return bfs_error(-ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < depth; i++) {
    struct bfs_blk *l = bfs_blk_layer(blk, i);
    const char *f = bfs_blk_info(l)->format;
    d->layers[i].format = !strcmp(f, "qcow2") ? "qcow2" : "raw";
    if (!(d->layers[i].file = keep(d, layer_path(v, l)))) {
      restore_src_close(src);
      return bfs_error(-ENOMEM, "out of memory");
    }
  }
  d->nlayers = depth;
  d->backing_fmt = d->layers[0].format;
  r = restore_src_qemu_spec(src, &d->backing, &fmt);
  restore_src_close(src);
  return r;
}

void
quick_via_stop(struct qvia *v)
{
  if (v->serve_pid > 0 && kill(v->serve_pid, SIGTERM) == 0)
    fprintf(stderr, "backupfs: stopped the NBD export (nbdkit %d)\n",
            (int)v->serve_pid);
  v->serve_pid = 0;
}

static int
read_pid(const char *path, pid_t *out)
{
  CLEANUP_FCLOSE FILE *f = fopen(path, "re");
  long pid;

  if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 1)
    return bfs_error(-EIO, "%s: no PID written by nbdkit", path);
  *out = (pid_t)pid;
  return 0;
}

int
quick_via_serve(struct qvia *v, const char *const *names, size_t n)
{
  CLEANUP_FREE char *dir = NULL, *pidf = NULL, *self = NULL;
  char *argv[16 + 2 * 64], *exp[64] = { 0 };
  size_t a = 0;
  int r;

  if (n > 64)
    return bfs_error(-E2BIG, "--via nbd: more than 64 disks");
  if ((r = qstate_dir(v->dest, &dir)) < 0)
    return r;
  free(v->serve_socket);
  if (asprintf(&v->serve_socket, "%s/nbd.sock", dir) < 0 ||
      asprintf(&pidf, "%s/serve.pid", dir) < 0 ||
      !(self = realpath("/proc/self/exe", NULL)))
    return bfs_error(-ENOMEM, "out of memory");
  if (strlen(v->serve_socket) >= sizeof ((struct sockaddr_un *)0)->sun_path)
    return bfs_error(-ENAMETOOLONG, "--via nbd: socket path %s is too long "
                     "for a unix socket; use a shorter DEST_DIR",
                     v->serve_socket);
  unlink(v->serve_socket);         /* a stale one of an earlier attempt */
  argv[a++] = self;
  argv[a++] = "serve";
  argv[a++] = "--socket";
  argv[a++] = v->serve_socket;
  argv[a++] = "--pidfile";
  argv[a++] = pidf;
  if (v->catalog) {
    argv[a++] = "--catalog";
    argv[a++] = (char *)v->catalog;
  }
  for (size_t i = 0; i < n; i++) {
    if (asprintf(&exp[i], "%s@%s/%s", v->vm, v->time, names[i]) < 0) {
      r = bfs_error(-ENOMEM, "out of memory");
      goto out;
    }
    argv[a++] = "--export";
    argv[a++] = exp[i];
  }
  argv[a++] = (char *)v->repo;
  argv[a] = NULL;
  if ((r = restore_run(argv, true)) < 0) {
    bfs_error_prefix(r, "--via nbd: backupfs serve: ");
    goto out;
  }
  r = read_pid(pidf, &v->serve_pid);
  if (r == 0)
    printf("NBD export: nbdkit %d on %s\n", (int)v->serve_pid,
           v->serve_socket);
out:
  for (size_t i = 0; i < n; i++)
    free(exp[i]);
  return r;
}

int
quick_via_nbd(struct qvia *v, struct qvdisk *d, size_t n)
{
  int r;

  if (!v->repo)
    return bfs_error(-EINVAL, "--via nbd: the repository is not known (give "
                     "--repo REPO, or a BACKUP_DIR of a running mount)");
  for (size_t i = 0; i < n; i++) {      /* sizes from the disk service */
    struct rsrc *src;
    struct bfs_blk *blk;
    if ((r = open_repo(v, d[i].name, &src, &blk)) < 0)
      return r;
    d[i].size = blk->size;
    restore_src_close(src);
  }
  const char *names[64] = { 0 };
  if (n > 64)
    return bfs_error(-E2BIG, "--via nbd: more than 64 disks");
  for (size_t i = 0; i < n; i++)
    names[i] = d[i].name;
  if ((r = quick_via_serve(v, names, n)) < 0)
    return r;
  for (size_t i = 0; i < n; i++) {
    char *name = NULL;
    if (asprintf(&name, "%s@%s/%s", v->vm, v->time, d[i].name) < 0 ||
        !keep(&d[i], name) ||
        !(d[i].layers = calloc(1, sizeof *d[i].layers)) ||
        asprintf(&d[i].backing, "nbd+unix:///%s?socket=%s", name,
                 v->serve_socket) < 0)
      return bfs_error(-ENOMEM, "out of memory");
    d[i].layers[0] = (struct domxml_layer) {
      .format = "raw", .nbd_name = name, .nbd_socket = v->serve_socket };
    d[i].nlayers = 1;
    d[i].backing_fmt = "raw";
  }
  return 0;
}
