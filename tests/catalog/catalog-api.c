/* catalog-api.c — the catalog API as the mount and restore use it, driven
 * by test-api.sh:
 *   catalog-api REPO CATALOG RAW VM TIME TOUCH
 * 1. scan; the backup VM@TIME exists and its backup.json parses;
 * 2. its first disk's recipe (qcow2 layers) opens through the disk
 *    service (the repository was moved: absolute backing names dangle)
 *    and reads exactly like RAW (qemu-img convert output); a second open
 *    gives the same shared stack; a layer whose mtime changed after the scan is
 *    refused with -EIO "changed since the scan";
 * 3. 8 threads list VMs and backups while the main thread rescans 20 times,
 *    changing TOUCH's mtime before each (it dates an undated backup, so
 *    each rescan rewrites the VM): every listing is complete.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "catalog/catalog-int.h"
#include "common/error.h"
#include "blk/blk.h"
#include "common/beneath.h"
#include "disk/disk.h"

#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); \
                       fputc('\n', stderr); exit(1); } while (0)

static catalog_t *cat;

static bool
fs_exists(void *repo, const char *rel)
{
  const char *roots[] = { repo };
  return resolve_fs_exists(roots, 1, rel);
}
static const char *vm;
static size_t expect_backups;
static atomic_int stop, bad, rounds;

static void *
reader(void *arg)
{
  while (!atomic_load(&stop)) {
    char **names;
    size_t n;
    struct catalog_backup *b;
    size_t nb;
    if (catalog_vms(cat, &names, &n) < 0 || n == 0) atomic_fetch_add(&bad, 1);
    else catalog_names_free(names, n);
    if (catalog_backups(cat, vm, &b, &nb) < 0 || nb != expect_backups)
      atomic_fetch_add(&bad, 1);
    else {
      for (size_t i = 0; i < nb; i++)
        if (b[i].ndisks == 0 || b[i].disks[0].chain_len == 0)
          atomic_fetch_add(&bad, 1);
      catalog_backups_free(b, nb);
    }
    atomic_fetch_add(&rounds, 1);
  }
  return arg;
}

int
main(int argc, char **argv)
{
  if (argc != 7) FAIL("usage: catalog-api REPO CATALOG RAW VM TIME TOUCH");
  struct catalog_opts o = { .catalog_path = argv[2] };
  struct catalog_scan_stats st;
  vm = argv[4];

  if (catalog_open(argv[1], &o, &cat) < 0 || catalog_scan(cat, &st) < 0)
    FAIL("open/scan: %s", bfs_last_error());
  struct catalog_backup *b;
  size_t nb, i;
  if (catalog_backups(cat, vm, &b, &nb) < 0)
    FAIL("backups: %s", bfs_last_error());
  for (i = 0; i < nb && strcmp(b[i].name, argv[5]); i++) ;
  if (i == nb) FAIL("no backup %s@%s", vm, argv[5]);
  expect_backups = nb;
  if (strcmp(b[i].status, "ok")) FAIL("status: %s", b[i].status);

  char *js = catalog_backup_json(cat, &b[i]);
  struct json_object *jo = js ? json_tokener_parse(js) : NULL, *v;
  if (!jo || !json_object_object_get_ex(jo, "disks", &v) ||
      json_object_array_length(v) != b[i].ndisks)
    FAIL("backup.json: %s", js ? js : "(null)");
  json_object_put(jo);
  free(js);
  printf("ok: backup.json of %s@%s\n", vm, argv[5]);

  /* the recipe through the disk service, compared with qemu-img */
  const struct catalog_disk *cd = &b[i].disks[0];
  for (size_t k = 0; k < cd->chain_len; k++)
    if (!cd->chain_driver[k] || strcmp(cd->chain_driver[k], "qcow2"))
      FAIL("layer %zu (%s): driver %s", k, cd->chain[k],
           cd->chain_driver[k] ? cd->chain_driver[k] : "(none)");
  int rfd = bfs_dir_open(catalog_repo(cat));
  struct bfs_disk_ctx *ctx;
  struct bfs_disk *d, *d2;
  if (rfd < 0 || bfs_disk_ctx_new(cat, rfd, NULL, &ctx) < 0)
    FAIL("disk ctx: %s", bfs_last_error());
  if (bfs_disk_open(ctx, vm, argv[5], cd->name, &d) < 0)
    FAIL("bfs_disk_open: %s", bfs_last_error());
  struct bfs_blk *c = bfs_disk_blk(d);
  if (bfs_blk_depth(c) != cd->chain_len)
    FAIL("depth %zu, catalog says %zu", bfs_blk_depth(c), cd->chain_len);
  FILE *raw = fopen(argv[3], "rb");
  if (!raw) FAIL("%s: %s", argv[3], strerror(errno));
  uint64_t size = c->size;
  static char want[1 << 16], got[1 << 16];
  for (uint64_t off = 0; off < size; off += sizeof got) {
    size_t len = size - off < sizeof got ? size - off : sizeof got;
    if (bfs_blk_pread(c, got, len, off) < 0) FAIL("read: %s", bfs_last_error());
    if (fread(want, 1, len, raw) != len) FAIL("%s: short", argv[3]);
    if (memcmp(want, got, len)) FAIL("data differs at %llu", (unsigned long long)off);
  }
  fclose(raw);
  printf("ok: moved recipe of %zu layers reads like qemu-img convert\n",
         cd->chain_len);
  /* a second user of the same disk shares the stack */
  if (bfs_disk_open(ctx, vm, argv[5], cd->name, &d2) < 0)
    FAIL("bfs_disk_open again: %s", bfs_last_error());
  if (d2 != d || bfs_disk_blk(d2) != c)
    FAIL("the same recipe opened twice is not shared");
  bfs_disk_close(d2);
  bfs_disk_close(d);
  /* a layer that is not the file the scan recorded is refused */
  char base[4096];
  struct stat sb;
  snprintf(base, sizeof base, "%s/%s", catalog_repo(cat),
           cd->chain[cd->chain_len - 1]);
  if (stat(base, &sb) < 0) FAIL("%s: %s", base, strerror(errno));
  struct timespec t2[2] = { sb.st_atim, { sb.st_mtim.tv_sec + 7, 0 } };
  if (utimensat(AT_FDCWD, base, t2, 0) < 0) FAIL("%s: %s", base, strerror(errno));
  bfs_disk_ctx_flush(ctx);
  int rc = bfs_disk_open(ctx, vm, argv[5], cd->name, &d);
  if (rc != -EIO || !strstr(bfs_last_error(), "changed since the scan"))
    FAIL("a changed base layer: %d %s", rc, bfs_last_error());
  printf("ok: one shared stack; a changed layer is refused (%s)\n",
         bfs_last_error());
  t2[1] = sb.st_mtim;
  if (utimensat(AT_FDCWD, base, t2, 0) < 0) FAIL("%s: %s", base, strerror(errno));
  bfs_disk_ctx_free(ctx);
  close(rfd);

  /* hostile names never resolve outside (the scan's one resolver) */
  char *out;
  const char *roots[] = { catalog_repo(cat) };
  if (resolve_backing_rel(roots, 1, cd->image,
                          "../../../../../../../etc/passwd", fs_exists,
                          (void *)catalog_repo(cat), &out) == 0)
    FAIL("resolved outside: %s", out);
  if (resolve_backing_rel(roots, 1, cd->image, "/etc/hostname",
                          fs_exists, (void *)catalog_repo(cat), &out) == 0)
    FAIL("absolute name outside the repository resolved: %s", out);
  printf("ok: hostile backing names refused\n");
  catalog_backups_free(b, nb);

  pthread_t th[8];
  for (int t = 0; t < 8; t++) pthread_create(&th[t], NULL, reader, NULL);
  for (int r = 0; r < 20; r++) {
    struct timespec ts[2] = { { 1790000000 + r, 0 }, { 1790000000 + r, 0 } };
    if (utimensat(AT_FDCWD, argv[6], ts, 0) < 0) FAIL("%s: %s", argv[6], strerror(errno));
    if (catalog_scan(cat, &st) < 0) FAIL("rescan: %s", bfs_last_error());
    if (st.reopened != 1) FAIL("rescan %d reopened %u", r, st.reopened);
  }
  while (atomic_load(&rounds) < 200) ;
  atomic_store(&stop, 1);
  for (int t = 0; t < 8; t++) pthread_join(th[t], NULL);
  if (atomic_load(&bad)) FAIL("%d inconsistent listings", atomic_load(&bad));
  printf("ok: %d concurrent listings during 20 rescans\n", atomic_load(&rounds));
  catalog_close(cat);
  return 0;
}
