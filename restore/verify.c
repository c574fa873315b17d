/* verify.c — `backupfs verify REPO [VM[@TIME]]`: check backups end to end.
 *
 * For every point in time selected (after bringing the catalog up to date):
 *   1. every image file of its recipe, once per run however many points in
 *      time share it: the header opens as the recipe's driver,
 *      blk_qcow2_check walks the L1/L2 tables (inside the file) and
 *      decompresses every compressed cluster, and the xxh3-128 of the
 *      file's raw bytes is compared with the one recorded on its first
 *      verification (vstate.c), or recorded now;
 *   2. the recipe opens through the disk service (disk/disk.h: the chain
 *      the scan resolved and checked; a broken one is the catalog's
 *      status, a swapped file a fault);
 *   3. a full read: every DATA extent (block status) of the point in time
 *      through the stack, so each cluster of each layer that the point in time
 *      shows is read and decoded.  Points in time go oldest first; data
 *      showing through from a lower layer whose own point in time was read
 *      in full earlier in the run is not read again (--reread does), so a
 *      chain of N incrementals costs its data once, not N times.
 * Every repository file is opened beneath the repository's descriptor (no
 * symlink followed) and the chain's layers must be the files the catalog
 * recorded: an image swapped since the scan is a fault, never verified.
 * A table (VM, time, disk, layers, bytes checked, result) goes to stdout;
 * the exit status is 1 when anything is wrong, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "catalog/catalog.h"
#include "common/beneath.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/opts.h"
#include "blk/blk.h"
#include "blk/luks.h"
#include "common/json-str.h"
#include "disk/disk.h"
#include "disk/source.h"
#include "restore/restore.h"
#include "restore/restore-int.h"

#define CHUNK (4u << 20)

struct fres {
  char *path;
  int r;
  char *msg;
  bool data_read;    /* every data cluster read: its point in time passed */
};

struct row { char *vm, *time, *disk, *result; size_t layers; uint64_t bytes; };

struct vctx {
  catalog_t *cat;
  const char *repo;               /* absolute, from the catalog */
  int repo_fd;                    /* files open beneath it */
  struct bfs_disk_ctx *disks;     /* the disk service over them */
  struct vstate *state;
  bool no_checksum, reset, reread;
  bool have_key;                  /* --key-file: encrypted disks are read */
  uint64_t read_bytes, reused_bytes;
  void *files;                    /* tsearch tree of struct fres */
  char *buf;
  struct row *rows;
  size_t nrows, faults, recorded;
};

enum { OPT_STATE = 256, OPT_NO_CHECKSUM, OPT_RESET, OPT_REREAD, OPT_KEY_FILE };

static const struct bfs_opt verify_opts[] = {
  { "state", OPT_STATE, "FILE", "checksum record (default: verify-<hash>.json\n"
    "next to the catalog)" },
  { "no-checksum", OPT_NO_CHECKSUM, NULL, "skip the file checksums" },
  { "reset-checksums", OPT_RESET, NULL,
    "record the current checksums, forgetting old ones" },
  { "reread", OPT_REREAD, NULL, "read each point in time in full, also the\n"
    "layers already read for an older point in time\nthis run" },
  { "key-file", OPT_KEY_FILE, "FILE", "passphrase of LUKS-encrypted images (one\n"
    "trailing newline ignored): their data is read" },
  { 0 },
};

static const struct bfs_cmd verify_cmd = {
  .name = "verify",
  .usage = "verify [--json] [OPTIONS] REPO [REPO...] [VM[@TIME]]",
  .about = "Check backups end to end: the structure of every image in each chain\n"
    "(header, tables inside the file, compressed clusters decompress, the\n"
    "backing chain resolves), a full read of every point in time, and the\n"
    "xxh3-128 checksum of every image file against the one recorded when it\n"
    "was first verified.  TIME is a backup name (2026-10-01T030000Z) or latest.\n"
    "Prints a table of results; exits 1 when anything is wrong.  More REPOs are\n"
    "more stores of the same repository, as for scan.",
  .opts = verify_opts, .shared = BFS_OPTS_CATALOG | BFS_OPTS_JSON,
  .json_help = "results as JSON on stdout",
  .need = "REPO [REPO...] [VM[@TIME]]", .min_args = 1, .max_args = -1,
};

static int
fres_cmp(const void *a, const void *b)
{
  return strcmp(((const struct fres *) a)->path, ((const struct fres *) b)->path);
}

static void
fres_free(void *p)
{
  struct fres *f = p;
  free(f->path);
  free(f->msg);
  free(f);
}

static const char *
repo_rel(struct vctx *v, const char *path)
{
  size_t n = strlen(v->repo);
  if (!strncmp(path, v->repo, n) && path[n] == '/')
    return path + n + 1;
  return path;
}

/* xxh3-128 of a file's bytes, compared with (or recorded in) the state */
static int
checksum(struct vctx *v, const char *path, bool record)
{
  CLEANUP_CLOSE int fd = catalog_open_locator(v->cat, repo_rel(v, path));
  XXH3_state_t *st;
  XXH128_canonical_t can;
  struct stat sb;
  char hex[33];
  uint64_t off = 0;
  int r = 0;

  if (fd < 0)
    return fd;
  if (fstat(fd, &sb) < 0)
    return bfs_error(-errno, "%s: %s", path, strerror(errno));
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  if (!(st = XXH3_createState()))
    return bfs_error(-ENOMEM, "out of memory");
  XXH3_128bits_reset(st);
  for (;;) {
    ssize_t n = pread(fd, v->buf, CHUNK, off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = bfs_error(-errno, "%s: read at %" PRIu64 ": %s", path, off,
                    strerror(errno));
      break;
    }
    if (n == 0)
      break;
    XXH3_128bits_update(st, v->buf, n);
    off += n;
  }
  XXH128_canonicalFromHash(&can, XXH3_128bits_digest(st));
  XXH3_freeState(st);
  if (r < 0)
    return r;
  for (int i = 0; i < 16; i++)
    snprintf(hex + 2 * i, 3, "%02x", can.digest[i]);
  r = vstate_check(v->state, repo_rel(v, path), hex, off, sb.st_mtime,
                   record, v->reset);
  if (r == 1)
    v->recorded++;
  return r < 0 ? r : 0;
}

/* structure and checksum of layer i of disk d (path: its full path), once
 * per run: opened alone as the recipe's driver (identity checked), then
 * blk_qcow2_check's table walk */
static int
check_file(struct vctx *v, struct bfs_disk *d, size_t i, const char *path)
{
  struct fres key = { .path = (char *) path }, **found, *f;
  struct bfs_blk *b = NULL;
  int r;

  if ((found = tfind(&key, &v->files, fres_cmp))) {
    if ((*found)->r < 0)
      bfs_error((*found)->r, "%s", (*found)->msg);
    return (*found)->r;
  }
  r = bfs_disk_inspect(d, i, &b);
  if (r == 0) {
    /* an encrypted image alone (inspected without its key): header and
     * checksum here; with --key-file the full read below checks its data */
    if (!bfs_blk_info(b)->encrypted)
      r = blk_qcow2_check(b);
    bfs_blk_close(b);
  }
  if (!v->no_checksum && r != -ENOENT) {
    /* a file that fails its check is compared but never recorded */
    int r2;
    if (r < 0) {
      CLEANUP_FREE char *msg = strdup(bfs_last_error());
      r2 = checksum(v, path, false);
      if (r2 == 0)
        bfs_error(r, "%s", msg ? msg : "fault");
      else
        r = r2;
    }
    else
      r = checksum(v, path, true);
  }
  f = calloc(1, sizeof *f);
  if (f && (f->path = strdup(path))) {
    f->r = r;
    f->msg = r < 0 ? strdup(bfs_last_error()) : NULL;
    if (!tsearch(f, &v->files, fres_cmp))
      fres_free(f);
  }
  else
    free(f);
  return r;
}

static struct fres *
fres_get(struct vctx *v, const char *path)
{
  struct fres key = { .path = (char *) path }, **found;

  found = tfind(&key, &v->files, fres_cmp);
  return found ? *found : NULL;
}

/* Read every data extent of the point in time.  Data that lives in a lower
 * layer whose own point in time was read in full earlier in this run was
 * read then (each layer's clusters are all visible in its own point in
 * time, and a lower layer only shows through where nothing covers it): it
 * counts as checked without being read again, unless --reread. */
static int
full_read(struct vctx *v, struct bfs_disk *d, struct bfs_blk *c,
          const char *label, uint64_t *bytes)
{
  uint64_t size = c->size, off = 0, total = 0;
  size_t depth = bfs_disk_layers(d);
  CLEANUP_FREE bool *done = calloc(depth, sizeof *done);
  struct bfs_blk_status e;
  struct progress pr;
  struct fres *f;
  int r = 0;

  if (!done)
    return bfs_error(-ENOMEM, "out of memory");
  for (size_t i = 1; i < depth && !v->reread; i++) {
    CLEANUP_FREE char *p = NULL;
    if (asprintf(&p, "%s/%s", v->repo, bfs_disk_layer_locator(d, i)) < 0)
      return bfs_error(-ENOMEM, "out of memory");
    done[i] = (f = fres_get(v, p)) && f->data_read;
  }
  for (uint64_t o = 0; o < size;) {        /* the total, for progress */
    if ((r = bfs_blk_block_status(c, o, size - o, &e)) < 0)
      return r;
    if (e.kind == BFS_BLK_DATA)
      total += e.len;
    o += e.len;
  }
  restore_progress_init(&pr, label, total, false);
  *bytes = 0;
  while (off < size && r == 0) {
    r = bfs_blk_block_status(c, off, size - off, &e);
    if (r < 0)
      break;
    uint64_t end = off + e.len;
    if (e.kind == BFS_BLK_DATA && e.layer > 0 && (size_t) e.layer < depth
        && done[e.layer]) {
      *bytes += end - off;
      v->reused_bytes += end - off;
      restore_progress_add(&pr, end - off);
    }
    else if (e.kind == BFS_BLK_DATA)
      for (uint64_t o = off; o < end && r == 0;) {
        size_t n = end - o < CHUNK ? end - o : CHUNK;
        r = bfs_blk_pread(c, v->buf, n, o);
        if (r < 0)
          bfs_error_prefix(r, "read at %" PRIu64 ": ", o);
        *bytes += n;
        v->read_bytes += n;
        restore_progress_add(&pr, n);
        o += n;
      }
    off = end;
  }
  if (pr.tty)
    fprintf(stderr, "\r\033[K");
  if (r == 0) {
    CLEANUP_FREE char *p = NULL;
    if (asprintf(&p, "%s/%s", v->repo, bfs_disk_layer_locator(d, 0)) >= 0 &&
        (f = fres_get(v, p)))
      f->data_read = true;
  }
  return r;
}

static void
add_row(struct vctx *v, const char *vm, const char *time, const char *disk,
        size_t layers, uint64_t bytes, int r)
{
  struct row *rows = realloc(v->rows, (v->nrows + 1) * sizeof *rows);

  if (!rows)
    return;
  v->rows = rows;
  rows[v->nrows++] = (struct row) {
    strdup(vm), strdup(time), strdup(disk),
    strdup(r != 0 ? bfs_last_error() : "ok"), layers, bytes,
  };
  if (r < 0)
    v->faults++;
}

static void
verify_disk(struct vctx *v, const struct catalog_backup *b,
            const struct catalog_disk *d)
{
  CLEANUP_FREE char *label = NULL;
  struct bfs_disk *sd = NULL;
  struct bfs_blk *c = NULL;
  uint64_t bytes = 0;
  size_t layers = d->chain_len;
  int r = 0;

  if (asprintf(&label, "%s@%s/%s", b->vm, b->name, d->name) < 0)
    return;
  if ((r = bfs_disk_get(v->disks, d, NULL, label, &sd)) < 0) {
    add_row(v, b->vm, b->name, d->name, layers, 0, r);
    return;
  }
  /* every file of the recipe alone, then the recipe as the disk service
   * opens it (identities checked); layers read through a shared source
   * (restic, PBS: every blob or chunk authenticated on read) are checked
   * by the full read alone */
  for (size_t i = 0; i < d->chain_len; i++) {
    CLEANUP_FREE char *p = NULL;
    if (d->chain_driver && bfs_disk_source_find(d->chain_driver[i]))
      continue;
    if (asprintf(&p, "%s/%s", v->repo, d->chain[i]) < 0)
      goto out;
    int r2 = check_file(v, sd, i, p);
    if (r2 < 0 && r == 0)
      r = r2;
  }
  if (r == 0 && d->encrypted && !v->have_key) {
    bfs_error(0, "ok (encrypted: header and checksum only, data not read; "
              "--key-file reads it)");
    add_row(v, b->vm, b->name, d->name, layers, 0, 1);
    goto out;
  }
  if (r == 0 && d->status && strcmp(d->status, "ok"))
    r = bfs_error(-EIO, "catalog: %s", d->status);
  if (r == 0 && (r = bfs_disk_acquire(sd, &c, NULL)) == 0) {
    r = full_read(v, sd, c, label, &bytes);
    bfs_disk_release(sd);
  }
  add_row(v, b->vm, b->name, d->name, layers, bytes, r);
out:
  bfs_disk_put(sd);
}

/* the verdict of b (its rows from first on) into the catalog, for list and
 * backup.json: "ok", or the first fault as "DISK: why" */
static void
record(struct vctx *v, const struct catalog_backup *b, size_t first)
{
  const struct row *bad = NULL;
  CLEANUP_FREE char *text = NULL;

  for (size_t i = first; i < v->nrows && !bad; i++)
    if (strncmp(v->rows[i].result, "ok", 2))
      bad = &v->rows[i];
  if (bad && asprintf(&text, "%s: %s", bad->disk, bad->result) < 0)
    text = NULL;
  if (catalog_set_verified(v->cat, b->vm, b->name, !bad,
                           bad ? (text ? text : bad->result) : "ok",
                           (int64_t) time(NULL)) < 0)
    fprintf(stderr, "backupfs: verify: warning: %s@%s: result not recorded "
            "in the catalog: %s\n", b->vm, b->name, bfs_last_error());
}

static void
verify_backup(struct vctx *v, const struct catalog_backup *b)
{
  if (b->ndisks == 0) {
    bfs_error(-EIO, "%s", b->status && strcmp(b->status, "ok") ? b->status
                                                            : "no disks");
    add_row(v, b->vm, b->name, "-", 0, 0, -EIO);
  }
  size_t first = v->nrows;
  for (size_t i = 0; i < b->ndisks; i++)
    verify_disk(v, b, &b->disks[i]);
  record(v, b, first);
}

static int
verify_vm(struct vctx *v, const char *vm, const char *time)
{
  struct catalog_backup *b = NULL;
  size_t n = 0;
  int r;

  r = catalog_backups(v->cat, vm, &b, &n);
  if (r < 0)
    return r;
  if (n == 0)
    r = bfs_error(-ENOENT, "%s: no backups of this VM in %s", vm, v->repo);
  else if (time) {
    r = catalog_find_backup(b, n, vm, time);
    if (r >= 0)
      verify_backup(v, &b[r]);
  }
  else
    for (size_t i = 0; i < n; i++)
      verify_backup(v, &b[i]);
  catalog_backups_free(b, n);
  return r < 0 ? r : 0;
}

static void
print_json(struct vctx *v)
{
  json_object *o = json_object_new_object(), *a = json_object_new_array();

  bfs_json_add_str(o, "repository", v->repo);
  for (size_t i = 0; i < v->nrows; i++) {
    struct row *r = &v->rows[i];
    json_object *e = json_object_new_object();
    bfs_json_add_str(e, "vm", r->vm);
    bfs_json_add_str(e, "time", r->time);
    bfs_json_add_str(e, "disk", r->disk);
    json_object_object_add(e, "layers", json_object_new_int64(r->layers));
    json_object_object_add(e, "checked_bytes", json_object_new_int64(r->bytes));
    json_object_object_add(e, "ok",
                           json_object_new_boolean(!strncmp(r->result, "ok", 2)));
    bfs_json_add_str(e, "result", r->result);
    json_object_array_add(a, e);
  }
  json_object_object_add(o, "results", a);
  json_object_object_add(o, "faults", json_object_new_int64(v->faults));
  if (v->state)
    bfs_json_add_str(o, "checksums", vstate_path(v->state));
  printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
  json_object_put(o);
}

static void
print_table(struct vctx *v)
{
  int w[3] = { 2, 4, 4 };
  char h[32];

  for (size_t i = 0; i < v->nrows; i++) {
    struct row *r = &v->rows[i];
    int l[3] = { (int) strlen(r->vm), (int) strlen(r->time),
                 (int) strlen(r->disk) };
    for (int k = 0; k < 3; k++)
      if (l[k] > w[k])
        w[k] = l[k];
  }
  printf("%-*s  %-*s  %-*s  %6s  %10s  %s\n", w[0], "VM", w[1], "TIME", w[2],
         "DISK", "LAYERS", "CHECKED", "RESULT");
  for (size_t i = 0; i < v->nrows; i++) {
    struct row *r = &v->rows[i];
    printf("%-*s  %-*s  %-*s  %6zu  %10s  %s%s\n", w[0], r->vm, w[1], r->time,
           w[2], r->disk, r->layers, bfs_human_size(r->bytes, h, sizeof h),
           strncmp(r->result, "ok", 2) ? "FAULT: " : "", r->result);
  }
}

int
restore_verify_cmd(int argc, char **argv)
{
  const char *catalog = NULL, *state = NULL, *key_file = NULL;
  struct blk_key *key = NULL;
  struct vctx v = { .repo_fd = -1 };
  CLEANUP_FREE char *vm = NULL, *time = NULL;
  char **vms = NULL;
  size_t nvms = 0;
  bool json = false;
  struct bfs_args g;
  int c, r = 0;

  bfs_opts_init(&g, &verify_cmd, argc, argv);
  while ((c = bfs_opts_next(&g)) > 0) {
    switch (c) {
    case OPT_STATE: state = g.optarg; break;
    case OPT_NO_CHECKSUM: v.no_checksum = true; break;
    case OPT_RESET: v.reset = true; break;
    case OPT_REREAD: v.reread = true; break;
    case OPT_KEY_FILE: key_file = g.optarg; break;
    }
  }
  if (c < 0)
    return g.status;
  catalog = g.catalog;
  json = g.json;
  /* REPO [REPO...] [VM[@TIME]]: the last is a VM unless a directory */
  int last = g.npos;
  struct stat lst;
  if (g.npos >= 2 &&
      (stat(g.pos[g.npos - 1], &lst) < 0 || !S_ISDIR(lst.st_mode)))
    last--;
  if (last < g.npos) {
    if ((r = catalog_parse_vmtime(g.pos[last], &vm, &time)) < 0)
      goto out;
    if (!strchr(g.pos[last], '@')) {  /* VM alone: every backup */
      free(time);
      time = NULL;
    }
  }
  if (key_file && (r = blk_key_from_file(key_file, &key)) < 0) {
    bfs_error_prefix(r, "--key-file %s: ", key_file);
    goto out;
  }
  v.have_key = key != NULL;
  if (posix_memalign((void **) &v.buf, 4096, CHUNK)) {
    r = bfs_error(-ENOMEM, "out of memory");
    goto out;
  }
  if ((r = restore_open_catalog(g.pos[0], (const char *const *)g.pos + 1,
                                (size_t)(last - 1), catalog, key != NULL,
                                &v.cat)) < 0)
    goto out;
  v.repo = catalog_repo(v.cat);
  /* a store that is no directory (rbd:POOL) has no fd */
  if ((!catalog_repo_not_dir(v.repo) &&
       (r = v.repo_fd = bfs_dir_open(v.repo)) < 0) ||
      (r = bfs_disk_ctx_new(v.cat, v.repo_fd,
                            &(struct bfs_disk_opts){ .key = key },
                            &v.disks)) < 0)
    goto out;
  if (!v.no_checksum &&
      (r = vstate_open(v.repo, catalog, state, &v.state)) < 0)
    goto out;

  if (vm)
    r = verify_vm(&v, vm, time);
  else if ((r = catalog_vms(v.cat, &vms, &nvms)) == 0)
    for (size_t i = 0; i < nvms && r == 0; i++)
      r = verify_vm(&v, vms[i], NULL);
  if (r == 0 && v.nrows == 0)
    r = bfs_error(-ENOENT, "no backups found in %s: nothing verified", v.repo);
  if (r < 0)
    goto out;
  if (v.state)
    r = vstate_save(v.state);
  if (json) {
    print_json(&v);
    goto out;
  }
  print_table(&v);
  printf("\n%zu disk%s checked, %zu fault%s", v.nrows, v.nrows == 1 ? "" : "s",
         v.faults, v.faults == 1 ? "" : "s");
  if (v.state) {
    printf("; checksums: %s", vstate_path(v.state));
    if (v.recorded)
      printf(" (%zu recorded now)", v.recorded);
  }
  char rd[32], ru[32];
  printf("\n%s read through the chains", bfs_human_size(v.read_bytes, rd, sizeof rd));
  if (v.reused_bytes)
    printf("; %s more shared with older points in time, not read twice",
           bfs_human_size(v.reused_bytes, ru, sizeof ru));
  printf("\n");

out:
  if (r < 0)
    fprintf(stderr, "backupfs: verify: %s\n", bfs_last_error());
  if (vms)
    catalog_names_free(vms, nvms);
  for (size_t i = 0; i < v.nrows; i++) {
    free(v.rows[i].vm);
    free(v.rows[i].time);
    free(v.rows[i].disk);
    free(v.rows[i].result);
  }
  free(v.rows);
  tdestroy(v.files, fres_free);
  vstate_close(v.state);
  bfs_disk_ctx_free(v.disks);
  if (v.cat)
    catalog_close(v.cat);
  if (v.repo_fd >= 0)
    close(v.repo_fd);
  free(v.buf);
  blk_key_free(key);                    /* after the disk context */
  return r < 0 || v.faults ? 1 : 0;
}
