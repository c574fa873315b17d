/* quick.c — `backupfs restore quick`: boot a VM straight from a backup.
 *
 * For every disk of the point in time, DEST_DIR/<disk>.qcow2 is a qcow2
 * overlay whose backing file is the mounted BACKUP_DIR/disks/<disk>.img
 * (format raw, path made absolute with `latest` resolved, so the overlay
 * keeps pointing at this point in time).  The VM starts at once, writes land
 * in the overlay, and reads of untouched data go through the mount.
 * DEST_DIR/domain.xml comes from domxml.c.  Nothing is overwritten: every
 * output name is claimed with O_EXCL before anything is written, and removed
 * again when a later step fails.  Afterwards the commands to define, start
 * and consolidate (blockpull live, qemu-img rebase offline) are printed;
 * --start runs the first two when virsh is present.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/opts.h"
#include "restore/restore-int.h"

struct qdisk {
  const char *name;
  char backing[PATH_MAX];
  char *overlay;
  uint64_t size;
  char *target;
};

enum { OPT_NAME = 256, OPT_SAME, OPT_START };

static const struct bfs_opt quick_opts[] = {
  { "name", OPT_NAME, "NAME",
    "name of the restored domain (default <name>-restored)" },
  { "same-identity", OPT_SAME, NULL,
    "keep the original name, UUID and MAC addresses" },
  { "start", OPT_START, NULL, "define and start the domain with virsh" },
  { 0 },
};

static const struct bfs_cmd quick_cmd = {
  .name = "restore quick",
  .usage = "restore quick [OPTIONS] BACKUP_DIR DEST_DIR",
  .about = "Quick restore: create DEST_DIR/<disk>.qcow2, one overlay per disk backed by\n"
    "the mounted BACKUP_DIR/disks/<disk>.img, and DEST_DIR/domain.xml, the VM\n"
    "definition pointed at them, so the VM boots at once from the backup while\n"
    "its writes go to the overlays.  Prints the commands to start it and to\n"
    "consolidate the overlays, after which the mount may go.",
  .opts = quick_opts,
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
claim(const char *path, char **made, size_t *nmade)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0644);
  if (fd < 0)
    return bfs_error(-errno, "%s: %s", path,
                     errno == EEXIST ? "exists; quick restore never "
                     "overwrites" : strerror(errno));
  made[(*nmade)++] = strdup(path);
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

static void
print_next_steps(const char *dest, const char *dom, struct qdisk *d, size_t n,
                 bool started)
{
  printf("\nQuick restore of %s written to %s/\n", dom, dest);
  if (!started)
    printf("\nStart the VM:\n  virsh define %s/domain.xml\n  virsh start %s\n",
           dest, dom);
  printf("\nWhile it runs, reads of untouched data go through the backupfs "
         "mount,\nwhich must stay mounted (and readable by the qemu user: "
         "mount with -o allow_other).\n");
  printf("\nConsolidate, then the mount may go:\n  live:     ");
  for (size_t i = 0; i < n; i++)
    printf("%svirsh blockpull %s %s --wait", i ? " && " : "", dom, d[i].target);
  printf("\n  offline:  ");
  for (size_t i = 0; i < n; i++)
    printf("%sqemu-img rebase -f qcow2 -b '' %s", i ? " && " : "",
           d[i].overlay);
  printf("\n");
}

static int
quick(const char *backup_arg, const char *dest_arg, const char *new_name,
      bool same_identity, bool start)
{
  char bdir[PATH_MAX], dest[PATH_MAX];
  CLEANUP_FREE char *xml_in = NULL, *xml_out = NULL, *dom = NULL,
                    *xml_path = NULL, *dxml = NULL;
  json_object *bj = NULL, *disks;
  struct qdisk *d = NULL;
  char **made = NULL;
  size_t n = 0, nmade = 0;
  int r = 0, err = ENOMEM;

  if (!realpath(backup_arg, bdir))
    return bfs_error(-errno, "%s: %s", backup_arg, strerror(errno));
  r = restore_backup_json(bdir, &bj);
  if (r < 0)
    return r;
  const char *vm = restore_json_str(bj, "vm");
  if (!vm)
    vm = "restored";
  if (!json_object_object_get_ex(bj, "disks", &disks) ||
      !json_object_is_type(disks, json_type_array) ||
      (n = json_object_array_length(disks)) == 0) {
    r = bfs_error(-EINVAL, "%s/backup.json: no disks", bdir);
    goto out;
  }
  d = calloc(n, sizeof *d);
  made = calloc(n + 2, sizeof *made);
  if (!d || !made) {
    r = bfs_error(-ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    json_object *jd = json_object_array_get_idx(disks, i);
    const char *status = restore_json_str(jd, "status");
    CLEANUP_FREE char *img = NULL;
    struct stat st;

    d[i].name = restore_json_str(jd, "name");
    if (!d[i].name || !d[i].name[0] || strchr(d[i].name, '/') ||
        d[i].name[0] == '.') {
      r = bfs_error(-EINVAL, "%s/backup.json: disk %zu has no usable name",
                    bdir, i);
      goto out;
    }
    if (status && strcmp(status, "ok")) {
      r = bfs_error(-EIO, "%s: disk %s is broken: %s", bdir, d[i].name,
                    status);
      goto out;
    }
    if (asprintf(&img, "%s/disks/%s.img", bdir, d[i].name) < 0 ||
        !realpath(img, d[i].backing) || stat(d[i].backing, &st) < 0) {
      r = bfs_error(-errno, "%s: %s", img ? img : bdir, strerror(errno));
      goto out;
    }
    d[i].size = st.st_size;
    /* the chain must open now, not when the VM boots */
    int fd = open(d[i].backing, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      r = bfs_error(-errno, "%s: %s", d[i].backing, strerror(errno));
      goto out;
    }
    close(fd);
  }

  if (mkdir(dest_arg, 0755) < 0 && errno != EEXIST) {
    r = bfs_error(-errno, "%s: %s", dest_arg, strerror(errno));
    goto out;
  }
  if (!realpath(dest_arg, dest)) {
    r = bfs_error(-errno, "%s: %s", dest_arg, strerror(errno));
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (asprintf(&d[i].overlay, "%s/%s.qcow2", dest, d[i].name) < 0) {
      r = bfs_error(-ENOMEM, "out of memory");
      goto out;
    }
    if (lstat(d[i].overlay, &st) == 0) {
      r = bfs_error(-EEXIST, "%s: exists; quick restore never overwrites",
                    d[i].overlay);
      goto out;
    }
  }
  if (asprintf(&dxml, "%s/domain.xml", dest) < 0) {
    r = bfs_error(-ENOMEM, "out of memory");
    goto out;
  }

  /* the definition, built before anything is written */
  struct domxml_disk *dd = calloc(n, sizeof *dd);
  char **targets = calloc(n, sizeof *targets);
  if (!dd || !targets) {
    free(dd);
    free(targets);
    r = bfs_error(-ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    dd[i] = (struct domxml_disk) { d[i].name, d[i].overlay };
  if (asprintf(&xml_path, "%s/domain.xml", bdir) >= 0)
    xml_in = read_text(xml_path, &err);
  if (!xml_in && err != ENOENT) {
    r = bfs_error(-err, "%s: %s", xml_path, strerror(err));
    free(dd);
    free(targets);
    goto out;
  }
  struct domxml_opts o = { vm, new_name, same_identity };
  r = restore_domxml(xml_in, dd, n, &o, &xml_out, &dom, targets);
  for (size_t i = 0; i < n; i++)
    d[i].target = targets[i];
  free(dd);
  free(targets);
  if (r < 0)
    goto out;

  /* claim every output name, then write */
  int xfd = claim(dxml, made, &nmade);
  if (xfd < 0) {
    r = xfd;
    goto out;
  }
  size_t xlen = strlen(xml_out);
  if (write(xfd, xml_out, xlen) != (ssize_t) xlen || close(xfd) < 0) {
    r = bfs_error(-EIO, "%s: write: %s", dxml, strerror(errno));
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    char size[32];
    int fd = claim(d[i].overlay, made, &nmade);
    if (fd < 0) {
      r = fd;
      goto out;
    }
    close(fd);
    snprintf(size, sizeof size, "%" PRIu64, d[i].size);
    char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                     "-b", d[i].backing, "-u", d[i].overlay, size, NULL };
    r = restore_run(argv, false);
    if (r < 0)
      goto out;
    printf("%s: overlay on %s\n", d[i].overlay, d[i].backing);
  }
  printf("%s: domain %s\n", dxml, dom);
  warn_allow_other(bdir);

  if (start) {
    if (!restore_have_program("virsh")) {
      print_next_steps(dest, dom, d, n, false);
      r = bfs_error(-ENOENT, "--start: virsh not found; the files are in "
                    "place, start the VM by hand");
      nmade = 0;                       /* keep what was made */
      goto out;
    }
    char *def[] = { "virsh", "define", dxml, NULL };
    char *st[] = { "virsh", "start", dom, NULL };
    r = restore_run(def, false);
    if (r == 0)
      r = restore_run(st, false);
    nmade = 0;                         /* the files stay for a retry */
    if (r < 0)
      goto out;
  }
  print_next_steps(dest, dom, d, n, start);
  nmade = 0;

out:
  for (size_t i = 0; i < nmade; i++)
    unlink(made[i]);
  if (made)
    for (size_t i = 0; i < n + 2; i++)
      free(made[i]);
  free(made);
  if (d)
    for (size_t i = 0; i < n; i++) {
      free(d[i].overlay);
      free(d[i].target);
    }
  free(d);
  json_object_put(bj);
  return r;
}

int
restore_quick_cmd(int argc, char **argv)
{
  const char *name = NULL;
  bool same = false, start = false;
  struct bfs_args g;
  int c, r;

  bfs_opts_init(&g, &quick_cmd, argc, argv);
  while ((c = bfs_opts_next(&g)) > 0) {
    switch (c) {
    case OPT_NAME: name = g.optarg; break;
    case OPT_SAME: same = true; break;
    case OPT_START: start = true; break;
    }
  }
  if (c < 0)
    return g.status;
  r = quick(g.pos[0], g.pos[1], name, same, start);
  if (r < 0) {
    fprintf(stderr, "backupfs: restore quick: %s\n", bfs_last_error());
    return 1;
  }
  return 0;
}
