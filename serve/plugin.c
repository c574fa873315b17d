/* plugin.c — nbdkit-backupfs-plugin.so: point-in-time disks over NBD.
 *
 * nbdkit (a well-kept NBD server) does the protocol, sockets, TLS and
 * daemonising; this plugin only maps an export name to a disk of the disk
 * service (disk/disk.h) and serves its bytes: the same recipe, the same
 * identity checks and the same block stack as the mount, so the exported
 * bytes are the mount's bytes.  `backupfs serve` (serve/serve-cmd.c) builds
 * the nbdkit command line; the plugin can also be run by hand:
 *   nbdkit -r -U SOCK .../nbdkit-backupfs-plugin.so repo=DIR [catalog=FILE]
 *          [export=VM@TIME/DISK]... [cow=true scratch=DIR]
 *
 * Export names are VM@TIME/DISK (TIME a backup name or "latest").  Names
 * come from clients: anything else (no '/', a second '/', empty parts,
 * "." or "..", control bytes, an unknown VM, time or disk, a name outside
 * export=) is refused with an nbdkit_error saying why.  Exports are looked
 * up when a client opens them (the VM is rescanned first, cheap), so a
 * backup that appears later is served and "latest" follows it.
 *
 * Extents (base:allocation) come from the stack's block status: holes and
 * zero clusters are HOLE|ZERO, so qemu and nbdcopy skip them.  A read that
 * fails is EIO to the client with the disk's reason in nbdkit's log.
 * cow=true gives every writable connection its own scratch overlay (an
 * unlinked file in scratch=, blk/cow.c) dropped when it disconnects; the
 * backup itself is never written.
 *
 * THREAD MODEL: PARALLEL.  The disk service and every bfs_blk are
 * thread-safe; the plugin's state (one static struct, set up in
 * config/after_fork and read-only afterwards) takes no lock.  SQLite is
 * opened only after nbdkit forks (after_fork): get_ready checks the
 * repository and the export= names in the foreground, then closes.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "common/beneath.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "disk/disk.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#define MAX_EXPORTS 10000            /* nbdkit's own list limit */
#define MAX_EXTENTS 1024             /* per .extents call */

static struct {
  char *repo;
  char *catalog;
  char **only;                       /* export= names; NULL: every disk */
  size_t nonly;
  bool cow;
  char *scratch;
  /* after fork */
  catalog_t *cat;
  int repo_fd;
  struct bfs_disk_ctx *ctx;
} sv = { .repo_fd = -1 };

struct conn {
  struct bfs_disk *disk;
  struct bfs_blk *blk;               /* the disk's stack, or a cow over it */
  bool cow;
  char *name;
};

static int
bad(const char *fmt, const char *name)
{
  nbdkit_error(fmt, name);
  errno = EINVAL;
  return -1;
}

/* name -> vm, time, disk (malloc'd); -1 with nbdkit_error when hostile */
static int
split_name(const char *name, char **vm, char **time, char **disk)
{
  const char *slash = strchr(name, '/');

  if (!*name)
    return bad("no export name given: name one as VM@TIME/DISK "
               "(nbdinfo --list shows them)%s", "");
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    if (*p < 0x20 || *p == 0x7f) {        /* not echoed: it is the log's */
      nbdkit_error("export name with a control character (0x%02x at byte "
                   "%zu) refused", *p, (size_t)(p - (const unsigned char *)name));
      errno = EINVAL;
      return -1;
    }
  if (strlen(name) > 4096)
    return bad("export name '%.64s...': too long", name);
  if (!slash || strchr(slash + 1, '/'))
    return bad("export name '%s': not VM@TIME/DISK (exactly one '/')", name);
  if (slash == name || !slash[1] || !strcmp(slash + 1, ".") ||
      !strcmp(slash + 1, ".."))
    return bad("export name '%s': empty or '.'/'..' part refused", name);
  CLEANUP_FREE char *vt = strndup(name, (size_t)(slash - name));
  if (!vt || !(*disk = strdup(slash + 1))) {
    nbdkit_error("out of memory");
    errno = ENOMEM;
    return -1;
  }
  if (catalog_parse_vmtime(vt, vm, time) < 0 || !**vm || !**time ||
      !strcmp(*vm, ".") || !strcmp(*vm, "..") || !strcmp(*time, ".") ||
      !strcmp(*time, "..")) {
    free(*disk);
    *disk = NULL;
    return bad("export name '%s': not VM@TIME/DISK (empty, '.' or '..' "
               "part refused)", name);
  }
  return 0;
}

static bool
allowed(const char *name)
{
  if (!sv.nonly)
    return true;
  for (size_t i = 0; i < sv.nonly; i++)
    if (!strcmp(sv.only[i], name))
      return true;
  return false;
}

static int
bs_config(const char *key, const char *value)
{
  char **slot = NULL;

  if (!strcmp(key, "repo"))
    slot = &sv.repo;
  else if (!strcmp(key, "catalog"))
    slot = &sv.catalog;
  else if (!strcmp(key, "scratch"))
    slot = &sv.scratch;
  else if (!strcmp(key, "cow")) {
    int b = nbdkit_parse_bool(value);
    if (b < 0)
      return -1;
    sv.cow = b;
    return 0;
  } else if (!strcmp(key, "export")) {
    char **n = realloc(sv.only, (sv.nonly + 1) * sizeof *n);
    if (!n || !(n[sv.nonly] = strdup(value))) {
      if (n)
        sv.only = n;
      nbdkit_error("out of memory");
      return -1;
    }
    sv.only = n;
    sv.nonly++;
    return 0;
  } else {
    nbdkit_error("unknown parameter '%s' (repo=, catalog=, export=, cow=, "
                 "scratch=)", key);
    return -1;
  }
  free(*slot);
  /* rbd:POOL names no directory: kept as given */
  bool as_is = !strcmp(key, "catalog") ||
               (slot == &sv.repo && catalog_repo_not_dir(value));
  if (!(*slot = as_is ? strdup(value) : nbdkit_realpath(value)))
    return -1;
  return 0;
}

static int
bs_config_complete(void)
{
  if (!sv.repo) {
    nbdkit_error("repo=DIR is required");
    return -1;
  }
  if (sv.cow && !sv.scratch && !(sv.scratch = strdup(P_tmpdir))) {
    nbdkit_error("out of memory");
    return -1;
  }
  return 0;
}

static int
open_catalog(bool scan)
{
  struct catalog_opts o = { .catalog_path = sv.catalog };
  struct catalog_scan_stats st;
  int r = catalog_open(sv.repo, &o, &sv.cat);

  if (r == 0 && scan && (r = catalog_scan(sv.cat, &st)) < 0) {
    catalog_close(sv.cat);
    sv.cat = NULL;
  }
  if (r < 0)
    nbdkit_error("%s: %s", sv.repo, bfs_last_error());
  return r < 0 ? -1 : 0;
}

/* -1 with nbdkit_error unless VM@TIME/DISK names a disk of the catalog */
static int
check_export(const char *name)
{
  CLEANUP_FREE char *vm = NULL, *time = NULL, *disk = NULL;
  struct catalog_backup *b = NULL;
  size_t n = 0;
  int r, i;

  if (split_name(name, &vm, &time, &disk) < 0)
    return -1;
  if ((r = catalog_backups(sv.cat, vm, &b, &n)) < 0 ||
      (r = i = catalog_find_backup(b, n, vm, time)) < 0) {
    nbdkit_error("export %s: %s", name, bfs_last_error());
    catalog_backups_free(b, n);
    return -1;
  }
  for (size_t k = 0; k < b[i].ndisks; k++)
    if (!strcmp(b[i].disks[k].name, disk)) {
      catalog_backups_free(b, n);
      return 0;
    }
  nbdkit_error("export %s: backup %s@%s has no disk '%s'", name, vm,
               b[i].name, disk);
  catalog_backups_free(b, n);
  return -1;
}

static int
bs_get_ready(void)
{
  int r = 0;

  if (open_catalog(true) < 0)
    return -1;
  for (size_t i = 0; i < sv.nonly && r == 0; i++)
    r = check_export(sv.only[i]);
  catalog_close(sv.cat);
  sv.cat = NULL;
  return r;
}

static int
bs_after_fork(void)
{
  int r;

  if (open_catalog(false) < 0)
    return -1;
  if ((!catalog_repo_not_dir(sv.repo) &&
       (r = sv.repo_fd = bfs_dir_open(catalog_repo(sv.cat))) < 0) ||
      (r = bfs_disk_ctx_new(sv.cat, sv.repo_fd, NULL, &sv.ctx)) < 0) {
    nbdkit_error("%s: %s", sv.repo, bfs_last_error());
    return -1;
  }
  return 0;
}

static void
bs_unload(void)
{
  if (sv.ctx)
    bfs_disk_ctx_free(sv.ctx);
  if (sv.repo_fd >= 0)
    close(sv.repo_fd);
  if (sv.cat)
    catalog_close(sv.cat);
  for (size_t i = 0; i < sv.nonly; i++)
    free(sv.only[i]);
  free(sv.only);
  free(sv.repo);
  free(sv.catalog);
  free(sv.scratch);
}

static int
add_export(struct nbdkit_exports *ex, const char *vm, const char *time,
           const struct catalog_disk *d, size_t *count)
{
  CLEANUP_FREE char *name = NULL, *desc = NULL;

  if (*count >= MAX_EXPORTS)
    return 0;
  if (asprintf(&name, "%s@%s/%s", vm, time, d->name) < 0 ||
      asprintf(&desc, "%s disk %s of %s, %" PRIu64 " bytes", d->format,
               d->name, vm, d->virtual_size) < 0) {
    nbdkit_error("out of memory");
    return -1;
  }
  if (!allowed(name))
    return 0;
  (*count)++;
  return nbdkit_add_export(ex, name, desc);
}

static int
bs_list_exports(int readonly, int is_tls, struct nbdkit_exports *ex)
{
  char **vms = NULL;
  size_t nvms = 0, count = 0;
  int r = catalog_vms(sv.cat, &vms, &nvms);

  if (r < 0) {
    nbdkit_error("%s: %s", sv.repo, bfs_last_error());
    return -1;
  }
  for (size_t v = 0; v < nvms && r == 0; v++) {
    struct catalog_backup *b = NULL;
    size_t n = 0;
    if (catalog_backups(sv.cat, vms[v], &b, &n) < 0)
      continue;                       /* a VM that vanished since */
    for (size_t i = 0; i < n && r == 0; i++) {
      if (strcmp(b[i].status, "ok"))
        continue;
      for (size_t k = 0; k < b[i].ndisks && r == 0; k++) {
        r = add_export(ex, vms[v], b[i].name, &b[i].disks[k], &count);
        if (r == 0 && i == n - 1)
          r = add_export(ex, vms[v], "latest", &b[i].disks[k], &count);
      }
    }
    catalog_backups_free(b, n);
  }
  catalog_names_free(vms, nvms);
  if (count >= MAX_EXPORTS)
    nbdkit_debug("export list cut at %d names", MAX_EXPORTS);
  return r;
}

static const char *
bs_default_export(int readonly, int is_tls)
{
  return sv.nonly == 1 ? sv.only[0] : "";
}

/* An unlinked scratch file in sv.scratch, for one connection. */
static int
scratch_fd(const char *name)
{
  int fd = open(sv.scratch, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

  if (fd < 0)
    nbdkit_error("%s: scratch file in %s: %s", name, sv.scratch,
                 strerror(errno));
  return fd;
}

static void
conn_free(struct conn *c)
{
  if (!c)
    return;
  if (c->cow && c->blk)
    bfs_blk_close(c->blk);            /* releases the borrowed stack */
  if (c->disk)
    bfs_disk_close(c->disk);
  free(c->name);
  free(c);
}

static void *
bs_open(int readonly)
{
  const char *name = nbdkit_export_name();
  CLEANUP_FREE char *vm = NULL, *time = NULL, *disk = NULL;
  struct catalog_scan_stats st;
  struct conn *c;
  int r;

  if (!name) {
    nbdkit_error("no export name");
    return NULL;
  }
  if (!*name && sv.nonly == 1)
    name = sv.only[0];
  if (split_name(name, &vm, &time, &disk) < 0)
    return NULL;
  if (!allowed(name)) {
    nbdkit_error("export %s: not served here (only the export= names)",
                 name);
    errno = ENOENT;
    return NULL;
  }
  if (!(c = calloc(1, sizeof *c)) || !(c->name = strdup(name))) {
    free(c);
    nbdkit_error("out of memory");
    return NULL;
  }
  /* a new backup of this VM since the last look; failures are the
   * lookup's to report */
  (void)catalog_scan_vm(sv.cat, vm, &st);
  if ((r = bfs_disk_open(sv.ctx, vm, time, disk, &c->disk)) < 0) {
    nbdkit_error("export %s: %s", name, bfs_last_error());
    errno = -r;
    conn_free(c);
    return NULL;
  }
  c->blk = bfs_disk_blk(c->disk);
  if (sv.cow && !readonly) {
    struct bfs_blk *below;
    int fd = scratch_fd(name);
    if (fd < 0 || (r = bfs_disk_borrow(c->disk, &below, NULL)) < 0) {
      if (fd >= 0) {
        close(fd);
        nbdkit_error("export %s: %s", name, bfs_last_error());
      }
      c->blk = NULL;
      conn_free(c);
      return NULL;
    }
    c->cow = true;
    if ((r = blk_cow_open(below, fd, name, &c->blk)) < 0) {
      nbdkit_error("export %s: %s", name, bfs_last_error());
      c->blk = NULL;
      conn_free(c);
      return NULL;
    }
  }
  nbdkit_debug("export %s opened (%s)", name, c->cow ? "copy-on-write"
                                                      : "read-only");
  return c;
}

static void
bs_close(void *handle)
{
  conn_free(handle);
}

static int64_t
bs_get_size(void *handle)
{
  struct conn *c = handle;
  return (int64_t)c->blk->size;
}

static int
bs_can_write(void *handle)
{
  struct conn *c = handle;
  return c->cow;
}

static int
bs_can_multi_conn(void *handle)
{
  struct conn *c = handle;
  return !c->cow;                     /* each cow client sees its own bytes */
}

static int
bs_can_extents(void *handle)
{
  return 1;
}

static int
fail_io(struct conn *c, int r, const char *what)
{
  nbdkit_error("export %s: %s: %s", c->name, what, bfs_last_error());
  errno = r == -EINVAL || r == -ENOSPC ? -r : EIO;
  return -1;
}

static int
bs_pread(void *handle, void *buf, uint32_t count, uint64_t off,
         uint32_t flags)
{
  struct conn *c = handle;
  int r = bfs_blk_pread(c->blk, buf, count, off);
  return r < 0 ? fail_io(c, r, "read") : 0;
}

static int
bs_pwrite(void *handle, const void *buf, uint32_t count, uint64_t off,
          uint32_t flags)
{
  struct conn *c = handle;
  int r = bfs_blk_pwrite(c->blk, buf, count, off);
  return r < 0 ? fail_io(c, r, "write to the scratch overlay") : 0;
}

static int
bs_flush(void *handle, uint32_t flags)
{
  struct conn *c = handle;
  int r = c->cow ? bfs_blk_flush(c->blk) : 0;
  return r < 0 ? fail_io(c, r, "flush of the scratch overlay") : 0;
}

static int
bs_extents(void *handle, uint32_t count, uint64_t off, uint32_t flags,
           struct nbdkit_extents *ex)
{
  struct conn *c = handle;
  uint64_t end = off + count;

  for (int n = 0; off < end && n < MAX_EXTENTS; n++) {
    struct bfs_blk_status st;
    int r = bfs_blk_block_status(c->blk, off, end - off, &st);
    if (r < 0)
      return fail_io(c, r, "block status");
    uint32_t type = st.kind == BFS_BLK_DATA ? 0
                    : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
    if (nbdkit_add_extent(ex, off, st.len, type) < 0)
      return -1;
    off += st.len;
    if (flags & NBDKIT_FLAG_REQ_ONE)
      break;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name = "backupfs",
  .longname = "backupfs point-in-time disks",
  .version = BFS_VERSION,
  .description = "VM backup disks of a backupfs repository as VM@TIME/DISK",
  .config = bs_config,
  .config_complete = bs_config_complete,
  .config_help =
    "repo=DIR               (required) the backup repository\n"
    "catalog=FILE           the catalog (default: the repository's)\n"
    "export=VM@TIME/DISK    serve only these (repeatable)\n"
    "cow=true               a scratch overlay per writable client\n"
    "scratch=DIR            where overlays live (default " P_tmpdir ")",
  .magic_config_key = "repo",
  .get_ready = bs_get_ready,
  .after_fork = bs_after_fork,
  .unload = bs_unload,
  .list_exports = bs_list_exports,
  .default_export = bs_default_export,
  .open = bs_open,
  .close = bs_close,
  .get_size = bs_get_size,
  .can_write = bs_can_write,
  .can_multi_conn = bs_can_multi_conn,
  .can_extents = bs_can_extents,
  .pread = bs_pread,
  .pwrite = bs_pwrite,
  .flush = bs_flush,
  .extents = bs_extents,
  .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN(plugin)
