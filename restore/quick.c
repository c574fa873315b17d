/* quick.c — `backupfs restore quick`: boot a VM straight from a backup.
 *
 * For every disk of the point in time, DEST_DIR/<disk>.qcow2 is a qcow2
 * overlay whose backing is the point in time, reached one of three ways
 * (quick-via.c): the repository's files themselves (repo: qemu follows the
 * catalog's chain, no process of ours involved), an NBD export of
 * `backupfs serve` (nbd), or the mount's disks/<disk>.img (mount).  By
 * default the safest that works: repo, else nbd, else mount, and the
 * choice and its reason are printed.  The VM starts at once, writes land in
 * the overlay.  DEST_DIR/domain.xml comes from domxml.c;
 * DEST_DIR/.backupfs/quick.json (qstate.c) records how the overlays are
 * backed, for `restore consolidate` and `restore status`.
 *
 * Phases: the source (a mounted BACKUP_DIR, or --repo REPO VM@TIME), the
 * destination names, the way, the backing of each disk, the definition,
 * then writing (every output name claimed with O_EXCL first and removed
 * again when a later step fails; nothing is overwritten), then --start and
 * --consolidate.  Afterwards the commands to define, start and consolidate
 * are printed — also when --start fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/opts.h"
#include "restore/quick.h"

struct quick {
  /* options */
  const char *via_opt, *repo_opt, *catalog_opt, *new_name, *network, *bridge;
  bool same_identity, start, consolidate;
  /* the point in time */
  char bdir[PATH_MAX];               /* a mounted BACKUP_DIR, or "" */
  char *repo, *catalog, *vm, *time, *xml_in;
  bool guessed_xml;
  /* the destination */
  char dest[PATH_MAX];
  char *dxml;
  const char *via;
  struct qvia v;
  struct qvdisk *d;
  char **targets;
  size_t n;
  char *xml_out, *dom;
  char **made;
  size_t nmade;
};

enum { OPT_NAME = 256, OPT_SAME, OPT_START, OPT_CONSOLIDATE, OPT_VIA,
       OPT_REPO, OPT_NETWORK, OPT_BRIDGE };

static const struct bfs_opt quick_opts[] = {
  { "via", OPT_VIA, "repo|nbd|mount",
    "what backs the overlays: the repository's files\n"
    "(qemu reads the qcow2 chain itself), an NBD export\n"
    "of `backupfs serve`, or the mount's disks/<disk>.img;\n"
    "default: the first of these that works here" },
  { "repo", OPT_REPO, "REPO",
    "the repository (with VM[@TIME] instead of BACKUP_DIR)" },
  { "name", OPT_NAME, "NAME",
    "name of the restored domain (default <name>-restored)" },
  { "same-identity", OPT_SAME, NULL,
    "keep the original name, UUID and MAC addresses" },
  { "network", OPT_NETWORK, "NAME", "put every interface on libvirt network NAME" },
  { "bridge", OPT_BRIDGE, "BR",
    "put every interface on bridge BR (else interfaces on\n"
    "networks or bridges this host lacks are dropped)" },
  { "start", OPT_START, NULL, "define and start the domain with virsh" },
  { "consolidate", OPT_CONSOLIDATE, NULL,
    "with --start: pull the backing into the overlays and\n"
    "check them against the point in time" },
  { 0 },
};

static const struct bfs_cmd quick_cmd = {
  .name = "restore quick",
  .usage = "restore quick [OPTIONS] BACKUP_DIR DEST_DIR\n"
           "       backupfs restore quick [OPTIONS] --repo REPO VM[@TIME] DEST_DIR",
  .about = "Quick restore: create DEST_DIR/<disk>.qcow2, one overlay per disk backed by\n"
    "the point in time, and DEST_DIR/domain.xml, the VM definition pointed at\n"
    "them, so the VM boots at once from the backup while its writes go to the\n"
    "overlays.  Prints the commands to start it and to consolidate the overlays\n"
    "(`backupfs restore consolidate DEST_DIR`), after which the backup may go.",
  .opts = quick_opts, .shared = BFS_OPTS_CATALOG,
  .catalog_help = "the repository's catalog (with --repo)",
  .need = "BACKUP_DIR DEST_DIR", .min_args = 2, .max_args = 2,
};

static char *
read_text(const char *path, int *err)
{
  CLEANUP_FCLOSE FILE *f = fopen(path, "re");
  char *buf = NULL;
  size_t len = 0;

  *err = 0;
  if (!f) {
    *err = errno;
    return NULL;
  }
  FILE *m = open_memstream(&buf, &len);
  char tmp[65536];
  size_t n;
  if (!m) {
    *err = errno;
    return NULL;
  }
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
    fwrite(tmp, 1, n, m);
  if (ferror(f))
    *err = errno ? errno : EIO;
  fclose(m);
  if (*err) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* create path exclusively; remembered in made[] for cleanup */
static int
claim(struct quick *q, const char *path)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0644);
  if (fd < 0)
    return bfs_error(-errno, "%s: %s", path,
                     errno == EEXIST ? "exists; quick restore never "
                     "overwrites" : strerror(errno));
  q->made[q->nmade++] = strdup(path);
  return fd;
}

/* A FUSE mount without allow_other is only readable by the user who
 * mounted it; qemu under libvirt runs as another user. */
static void
warn_allow_other(const char *bdir)
{
  CLEANUP_FCLOSE FILE *f = fopen("/proc/self/mountinfo", "re");
  CLEANUP_FREE char *line = NULL;
  size_t cap = 0;
  struct stat st;

  if (!f || stat(bdir, &st) < 0)
    return;
  while (getline(&line, &cap, f) > 0) {
    unsigned maj, min;
    const char *sep = strstr(line, " - ");
    char fstype[64], source[4096], opts[4096];
    if (sscanf(line, "%*u %*u %u:%u", &maj, &min) != 2 || !sep ||
        maj != major(st.st_dev) || min != minor(st.st_dev) ||
        sscanf(sep, " - %63s %4095s %4095s", fstype, source, opts) != 3)
      continue;
    if (!strncmp(fstype, "fuse", 4) && !strstr(opts, "allow_other"))
      fprintf(stderr, "backupfs: warning: %s is on a FUSE mount without "
              "allow_other: qemu running as another user (libvirt) cannot "
              "read it; remount with -o allow_other\n", bdir);
    return;
  }
}

/* ---- phase 1: the point in time ---- */

/* The repository and catalog of the mount BACKUP_DIR lives in, from its
 * MOUNTPOINT/.backupfs-status (none: not a running backupfs mount). */
static void
mount_repo(struct quick *q)
{
  char mp[PATH_MAX];
  CLEANUP_FREE char *st = NULL;
  json_object *o;

  snprintf(mp, sizeof mp, "%s", q->bdir);
  char *m = dirname(dirname(mp));
  if (asprintf(&st, "%s/.backupfs-status", m) < 0 ||
      !(o = json_object_from_file(st)))
    return;
  const char *r = restore_json_str(o, "repository");
  const char *c = restore_json_str(o, "catalog");
  q->repo = r ? strdup(r) : NULL;
  q->catalog = c ? strdup(c) : NULL;
  json_object_put(o);
}

static int
add_disk_name(struct quick *q, const char *name, const char *status,
              const char *where)
{
  if (!name || !name[0] || strchr(name, '/') || name[0] == '.')
    return bfs_error(-EINVAL, "%s: disk %zu has no usable name", where, q->n);
  if (status && strcmp(status, "ok"))
    return bfs_error(-EIO, "%s: disk %s is broken: %s", where, name, status);
  q->d[q->n++].name = name;
  return 0;
}

static int
source_mount(struct quick *q, const char *arg, json_object **bj)
{
  json_object *disks;
  int r, err;
  size_t n;

  if (!realpath(arg, q->bdir))
    return bfs_error(-errno, "%s: %s", arg, strerror(errno));
  if ((r = restore_backup_json(q->bdir, bj)) < 0)
    return r;
  const char *vm = restore_json_str(*bj, "vm");
  CLEANUP_FREE char *copy = strdup(q->bdir);
  q->vm = strdup(vm ? vm : "restored");
  q->time = copy ? strdup(basename(copy)) : NULL;
  if (!json_object_object_get_ex(*bj, "disks", &disks) ||
      !json_object_is_type(disks, json_type_array) ||
      (n = json_object_array_length(disks)) == 0)
    return bfs_error(-EINVAL, "%s/backup.json: no disks", q->bdir);
  if (!(q->d = calloc(n, sizeof *q->d)) || !q->vm || !q->time)
    return bfs_error(-ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    json_object *jd = json_object_array_get_idx(disks, i);
    if ((r = add_disk_name(q, restore_json_str(jd, "name"),
                           restore_json_str(jd, "status"), q->bdir)) < 0)
      return r;
  }
  mount_repo(q);
  CLEANUP_FREE char *xp = NULL;
  if (asprintf(&xp, "%s/domain.xml", q->bdir) >= 0)
    q->xml_in = read_text(xp, &err);
  if (!q->xml_in && err != ENOENT)
    return bfs_error(-err, "%s: %s", xp, strerror(err));
  return 0;
}

static int
source_repo(struct quick *q, const char *arg)
{
  CLEANUP_FREE char *vm = NULL, *time = NULL;
  struct catalog_backup *b = NULL;
  catalog_t *cat = NULL;
  size_t nb = 0;
  int r, i, err;

  if ((r = catalog_parse_vmtime(arg, &vm, &time)) < 0 ||
      (r = restore_open_catalog(q->repo_opt, NULL, 0, q->catalog_opt,
                                 false, &cat)) < 0)
    return r;
  q->repo = strdup(catalog_repo(cat));
  q->catalog = q->catalog_opt ? strdup(q->catalog_opt) : NULL;
  if ((r = catalog_backups(cat, vm, &b, &nb)) < 0 ||
      (r = i = catalog_find_backup(b, nb, vm, time)) < 0)
    goto out;
  if (strcmp(b[i].status, "ok")) {
    r = bfs_error(-EIO, "%s@%s is broken: %s", vm, b[i].name, b[i].status);
    goto out;
  }
  q->vm = strdup(vm);
  q->time = strdup(b[i].name);
  if (!(q->d = calloc(b[i].ndisks ? b[i].ndisks : 1, sizeof *q->d))) {
    r = bfs_error(-ENOMEM, "out of memory");
    goto out;
  }
  /* names outlive the catalog: kept with the disk's strings */
  for (size_t k = 0; k < b[i].ndisks; k++) {
    char *name = strdup(b[i].disks[k].name);
    q->d[q->n].strings[q->d[q->n].nstrings++] = name;
    if ((r = add_disk_name(q, name, b[i].disks[k].status, arg)) < 0)
      goto out;
  }
  if (!q->n) {
    r = bfs_error(-EINVAL, "%s@%s: no disks", vm, b[i].name);
    goto out;
  }
  if (b[i].domain_xml) {
    CLEANUP_FREE char *xp = NULL;
    if (asprintf(&xp, "%s/%s", q->repo, b[i].domain_xml) >= 0)
      q->xml_in = read_text(xp, &err);
    if (!q->xml_in && err != ENOENT) {
      r = bfs_error(-err, "%s: %s", xp, strerror(err));
      goto out;
    }
  }
  r = 0;
out:
  catalog_backups_free(b, nb);
  catalog_close(cat);
  return r;
}

/* ---- phase 2: destination names ---- */
static int
destination(struct quick *q, const char *arg)
{
  if (mkdir(arg, 0755) < 0 && errno != EEXIST)
    return bfs_error(-errno, "%s: %s", arg, strerror(errno));
  if (!realpath(arg, q->dest))
    return bfs_error(-errno, "%s: %s", arg, strerror(errno));
  if (!(q->made = calloc(q->n + 2, sizeof *q->made)) ||
      !(q->targets = calloc(q->n, sizeof *q->targets)) ||
      asprintf(&q->dxml, "%s/domain.xml", q->dest) < 0)
    return bfs_error(-ENOMEM, "out of memory");
  for (size_t i = 0; i < q->n; i++) {
    CLEANUP_FREE char *ov = NULL;
    struct stat st;
    if (asprintf(&ov, "%s/%s.qcow2", q->dest, q->d[i].name) < 0)
      return bfs_error(-ENOMEM, "out of memory");
    if (lstat(ov, &st) == 0)
      return bfs_error(-EEXIST, "%s: exists; quick restore never "
                       "overwrites", ov);
  }
  CLEANUP_FREE char *sp = NULL;
  if (asprintf(&sp, "%s/.backupfs/quick.json", q->dest) >= 0 &&
      access(sp, F_OK) == 0)
    return bfs_error(-EEXIST, "%s: exists; quick restore never "
                     "overwrites", sp);
  return 0;
}

/* ---- phase 3: the way ---- */
static int
choose_via(struct quick *q)
{
  CLEANUP_FREE char *why = NULL;

  q->v = (struct qvia) { .repo = q->repo, .catalog = q->catalog,
                         .vm = q->vm, .time = q->time,
                         .bdir = q->bdir[0] ? q->bdir : NULL,
                         .dest = q->dest };
  if (q->via_opt) {
    if (strcmp(q->via_opt, "repo") && strcmp(q->via_opt, "nbd") &&
        strcmp(q->via_opt, "mount"))
      return bfs_error(-EINVAL, "--via %s: repo, nbd or mount", q->via_opt);
    q->via = q->via_opt;
    if (!strcmp(q->via, "repo"))
      for (size_t i = 0; i < q->n && !why; i++)
        why = quick_repo_unfit(&q->v, q->d[i].name);
    if (why)
      return bfs_error(-ENOTSUP, "--via repo: disk %s: %s", q->d[0].name,
                       why);
    if (!strcmp(q->via, "nbd") && !quick_have_plugin())
      return bfs_error(-ENOENT, "--via nbd: the nbdkit plugin is not "
                       "installed (backupfs serve needs it)");
    printf("via %s: as asked (--via)\n", q->via);
    return 0;
  }
  if (!q->repo) {
    q->via = "mount";
    printf("via mount: the repository of %s is not known (give --repo, or "
           "a BACKUP_DIR of a running mount)\n", q->bdir);
    return 0;
  }
  for (size_t i = 0; i < q->n && !why; i++)
    why = quick_repo_unfit(&q->v, q->d[i].name);
  if (!why) {
    q->via = "repo";
    printf("via repo: every layer is a plain qcow2/raw file qemu reads "
           "itself; no backupfs process needed\n");
  } else if (quick_have_plugin()) {
    q->via = "nbd";
    printf("via nbd: not repo (%s); the NBD export stays up until "
           "consolidation\n", why);
  } else if (q->bdir[0]) {
    q->via = "mount";
    printf("via mount: not repo (%s), no nbdkit plugin; the mount must stay "
           "until consolidation\n", why);
  } else
    return bfs_error(-ENOTSUP, "no way to back the overlays: not repo (%s), "
                     "no nbdkit plugin, no mount", why);
  return 0;
}

/* ---- phase 4: each disk's backing ---- */
static int
backings(struct quick *q)
{
  int r = 0;

  if (!strcmp(q->via, "nbd"))
    return quick_via_nbd(&q->v, q->d, q->n);
  for (size_t i = 0; i < q->n && r == 0; i++)
    r = !strcmp(q->via, "repo") ? quick_via_repo(&q->v, &q->d[i])
                                : quick_via_mount(&q->v, &q->d[i]);
  return r;
}

/* ---- phase 5: the definition ---- */

/* libvirt networks that exist (virsh net-list --all --name), or none
 * known (NULL) when virsh cannot tell */
static char **
libvirt_networks(size_t *n)
{
  char *argv[] = { "virsh", "-q", "net-list", "--all", "--name", NULL };
  CLEANUP_FREE char *out = NULL;
  char **v = NULL, *save = NULL;

  *n = 0;
  if (!restore_have_program("virsh") || quick_run_output(argv, &out) < 0) {
    bfs_clear_error();
    return NULL;
  }
  v = calloc(strlen(out) / 2 + 2, sizeof *v);
  for (char *t = strtok_r(out, " \n", &save); v && t;
       t = strtok_r(NULL, " \n", &save))
    v[(*n)++] = strdup(t);
  return v;
}

static int
definition(struct quick *q)
{
  struct domxml_disk *dd = calloc(q->n, sizeof *dd);
  size_t nnet = 0;
  char **nets = libvirt_networks(&nnet);
  int r;

  if (!dd) {
    free(nets);
    return bfs_error(-ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < q->n; i++) {
    if (asprintf(&q->d[i].strings[q->d[i].nstrings], "%s/%s.qcow2",
                 q->dest, q->d[i].name) < 0)
      return bfs_error(-ENOMEM, "out of memory");
    dd[i] = (struct domxml_disk) {
      q->d[i].name, q->d[i].strings[q->d[i].nstrings++],
      q->d[i].layers, q->d[i].nlayers };
  }
  struct domxml_opts o = {
    .vm = q->vm, .new_name = q->new_name, .same_identity = q->same_identity,
    .network = q->network, .bridge = q->bridge, .networks = nets,
    .nnetworks = nnet };
  q->guessed_xml = !q->xml_in;
  r = restore_domxml(q->xml_in, dd, q->n, &o, &q->xml_out, &q->dom,
                     q->targets);
  free(dd);
  for (size_t i = 0; i < nnet; i++)
    free(nets[i]);
  free(nets);
  return r;
}

static const char *
overlay_of(const struct quick *q, size_t i)
{
  return q->d[i].strings[q->d[i].nstrings - 1];
}

/* ---- phase 6: write ---- */
static int
write_all(struct quick *q)
{
  int xfd = claim(q, q->dxml), r;

  if (xfd < 0)
    return xfd;
  size_t xlen = strlen(q->xml_out);
  if (write(xfd, q->xml_out, xlen) != (ssize_t)xlen || close(xfd) < 0)
    return bfs_error(-EIO, "%s: write: %s", q->dxml, strerror(errno));
  for (size_t i = 0; i < q->n; i++) {
    char size[32];
    const char *ov = overlay_of(q, i);
    int fd = claim(q, ov);
    if (fd < 0)
      return fd;
    close(fd);
    snprintf(size, sizeof size, "%" PRIu64, q->d[i].size);
    char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                     "-F", (char *)q->d[i].backing_fmt, "-b", q->d[i].backing,
                     "-u", (char *)ov, size, NULL };
    if ((r = restore_run(argv, false)) < 0)
      return r;
    printf("%s: overlay on %s\n", ov, !strcmp(q->via, "repo")
           ? q->d[i].layers[0].file : q->d[i].backing);
  }
  printf("%s: domain %s%s\n", q->dxml, q->dom, q->guessed_xml
         ? " (a GUESS: the backup has no domain.xml; check memory, CPUs, "
           "machine type and devices before starting it)" : "");
  if (!strcmp(q->via, "mount"))
    warn_allow_other(q->bdir);

  struct qstate_disk *sd = calloc(q->n, sizeof *sd);
  if (!sd)
    return bfs_error(-ENOMEM, "out of memory");
  for (size_t i = 0; i < q->n; i++)
    sd[i] = (struct qstate_disk) { (char *)q->d[i].name, q->targets[i],
                                   (char *)overlay_of(q, i), q->d[i].backing,
                                   "backed" };
  struct qstate st = {
    .dest = q->dest, .via = (char *)q->via, .repo = q->repo,
    .catalog = q->catalog, .vm = q->vm, .time = q->time,
    .bdir = q->bdir[0] ? q->bdir : NULL, .domain = q->dom,
    .state = "backed",
    .message = "overlays backed by the point in time; consolidate with "
               "`backupfs restore consolidate`",
    .serve_pid = q->v.serve_pid, .serve_socket = q->v.serve_socket,
    .disks = sd, .ndisks = q->n };
  r = qstate_save(&st);
  free(sd);
  return r;
}

static void
print_next_steps(const struct quick *q, bool started)
{
  printf("\nQuick restore of %s written to %s/ (via %s)\n", q->dom, q->dest,
         q->via);
  if (!started)
    printf("\nStart the VM:\n  virsh define %s/domain.xml\n  virsh start %s\n",
           q->dest, q->dom);
  if (!strcmp(q->via, "mount"))
    printf("\nWhile it runs, reads of untouched data go through the backupfs "
           "mount,\nwhich must stay mounted (and readable by the qemu user: "
           "mount with -o allow_other).\n");
  else if (!strcmp(q->via, "nbd"))
    printf("\nWhile it runs, reads of untouched data go through the NBD "
           "export (nbdkit %d,\n%s), which must stay up; `backupfs restore "
           "consolidate` stops it when done.\n", (int)q->v.serve_pid,
           q->v.serve_socket);
  else
    printf("\nWhile it runs, qemu reads untouched data from the repository's "
           "files, which\nmust stay (no backupfs process is needed).\n");
  printf("\nConsolidate and check against the point in time, then the backup "
         "may go:\n  backupfs restore consolidate %s\n", q->dest);
  printf("  (by hand, live:    ");
  for (size_t i = 0; i < q->n; i++)
    printf("%svirsh blockpull %s %s --wait", i ? " && " : "", q->dom,
           q->targets[i]);
  printf("\n            offline: ");
  for (size_t i = 0; i < q->n; i++)
    printf("%sqemu-img rebase -f qcow2 -b '' %s", i ? " && " : "",
           overlay_of(q, i));
  printf(")\n  progress: backupfs restore status %s\n", q->dest);
}

/* ---- phase 7: start ---- */
static int
start(struct quick *q)
{
  if (!restore_have_program("virsh"))
    return bfs_error(-ENOENT, "--start: virsh not found; the files are in "
                     "place, start the VM by hand");
  char *def[] = { "virsh", "define", q->dxml, NULL };
  char *st[] = { "virsh", "start", q->dom, NULL };
  int r = restore_run(def, false);
  if (r == 0)
    r = restore_run(st, false);
  if (r < 0)
    bfs_error_prefix(r, "--start: ");
  return r;
}

static int
quick(struct quick *q, const char *src_arg, const char *dest_arg)
{
  json_object *bj = NULL;
  int r;

  r = q->repo_opt ? source_repo(q, src_arg) : source_mount(q, src_arg, &bj);
  if (r == 0)
    r = destination(q, dest_arg);
  if (r == 0)
    r = choose_via(q);
  if (r == 0)
    r = backings(q);
  if (r == 0)
    r = definition(q);
  if (r == 0)
    r = write_all(q);
  json_object_put(bj);
  if (r < 0) {
    for (size_t i = 0; i < q->nmade; i++)
      unlink(q->made[i]);
    quick_via_stop(&q->v);
    return r;
  }
  q->nmade = 0;                        /* the files stay from here on */
  if (!q->start) {
    print_next_steps(q, false);
    return 0;
  }
  if ((r = start(q)) < 0) {
    print_next_steps(q, false);        /* the next steps, still */
    return r;
  }
  print_next_steps(q, true);
  if (!q->consolidate)
    return 0;
  struct qstate st;
  if ((r = qstate_load(q->dest, &st)) == 0)
    r = quick_consolidate(&st);
  qstate_free(&st);
  return r;
}

static void
quick_free(struct quick *q)
{
  for (size_t i = 0; q->d && i < q->n; i++)
    quick_vdisk_free(&q->d[i]);
  if (q->d && !q->n)
    quick_vdisk_free(&q->d[0]);
  for (size_t i = 0; q->targets && i < q->n; i++)
    free(q->targets[i]);
  for (size_t i = 0; q->made && i < q->n + 2; i++)
    free(q->made[i]);
  free(q->d);
  free(q->targets);
  free(q->made);
  free(q->repo);
  free(q->catalog);
  free(q->vm);
  free(q->time);
  free(q->xml_in);
  free(q->dxml);
  free(q->xml_out);
  free(q->dom);
  free(q->v.serve_socket);
}

int
restore_quick_cmd(int argc, char **argv)
{
  struct quick q = { 0 };
  struct bfs_args g;
  int c, r;

  bfs_opts_init(&g, &quick_cmd, argc, argv);
  while ((c = bfs_opts_next(&g)) > 0) {
    switch (c) {
    case OPT_NAME: q.new_name = g.optarg; break;
    case OPT_SAME: q.same_identity = true; break;
    case OPT_START: q.start = true; break;
    case OPT_CONSOLIDATE: q.consolidate = true; break;
    case OPT_VIA: q.via_opt = g.optarg; break;
    case OPT_REPO: q.repo_opt = g.optarg; break;
    case OPT_NETWORK: q.network = g.optarg; break;
    case OPT_BRIDGE: q.bridge = g.optarg; break;
    }
  }
  if (c < 0)
    return g.status;
  q.catalog_opt = g.catalog;
  if (q.network && q.bridge)
    return bfs_opts_bad(&g, "--network or --bridge, not both");
  if (q.consolidate && !q.start)
    return bfs_opts_bad(&g, "--consolidate needs --start (or run `backupfs "
                        "restore consolidate DEST_DIR` later)");
  r = quick(&q, g.pos[0], g.pos[1]);
  quick_free(&q);
  if (r < 0) {
    fprintf(stderr, "backupfs: restore quick: %s\n", bfs_last_error());
    return 1;
  }
  return 0;
}
