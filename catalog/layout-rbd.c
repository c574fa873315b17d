/* layout-rbd.c — Ceph RBD pools: repository "rbd:POOL[/NAMESPACE]".
 *
 * The repository is no directory: the layout names it (names hook) and
 * reads it in its repo hook through librados/librbd (blk/rbd.h), with the
 * source options ceph_conf= (ceph.conf, which names the keyring) and
 * ceph_id= (client name, default admin).  Every image of the pool (or
 * namespace) with snapshots is a disk, every snapshot a point in time:
 *
 *   time   virt-rbd-backup's names "<image>-backup-YYYY_MM_DD_<epoch>"
 *          (it formats datetime.utcnow() with %Y_%m_%d_%s): the epoch when
 *          it lies within a day of the date (%s of a naive UTC time is off
 *          by the host's UTC offset), else the date at 00:00 UTC; any other
 *          name: rbd_snap_get_timestamp (the snapshot's creation time);
 *   VM     -o rbd_group=image (default): the image name; rbd_group=prefix:
 *          the image name up to its last "-disk" or "_disk" (vm-100-disk-0
 *          and vm-100-disk-1 are VM vm-100); snapshots of one VM's images
 *          with the same time (to the second) are one backup;
 *   disk   named after the image, one recipe layer of driver "rbd" with
 *          locator POOL[/NS]/IMAGE@SNAP; vsize the image size at the
 *          snapshot; alloc from the object map (fast-diff) when the image
 *          has one, else the size.
 *
 * backup.json: source "ceph-rbd", extra {pool, image, snapshot, snap_id}.
 * A cluster that cannot be reached, a missing pool or conf fails the scan
 * with the reason (scan_fail); an image that vanishes between listing and
 * opening is skipped.  The connection stays with the catalog
 * (repo_handle) for its later scans: a mount's rescans do not reconnect.
 * Snapshots removed later disappear at the next scan (the mount rescans
 * on listing: the repository has no inotify).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "blk/rbd.h"
#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"

#define RBD_PREFIX "rbd:"

static bool
rbd_names(const char *repo)
{
  return repo && !strncmp(repo, RBD_PREFIX, strlen(RBD_PREFIX)) &&
         repo[strlen(RBD_PREFIX)];
}

/* the time in a virt-rbd-backup snapshot name, or -1 */
static int64_t
name_time(const char *snap)
{
  const char *p = NULL, *q = snap;
  while ((q = strstr(q, "-backup-")))
    p = q++;
  if (!p)
    return -1;
  p += strlen("-backup-");
  unsigned y, m, d;
  int n = 0;
  if (sscanf(p, "%4u_%2u_%2u%n", &y, &m, &d, &n) != 3 || n != 10 ||
      y < 1970 || m < 1 || m > 12 || d < 1 || d > 31)
    return -1;
  int64_t day = cat_days_from_civil((int)y, m, d) * 86400;
  p += n;
  if (*p == '\0')
    return day;
  if (*p != '_' || !p[1] || strspn(p + 1, "0123456789") != strlen(p + 1) ||
      strlen(p + 1) > 12)
    return -1;
  int64_t e = strtoll(p + 1, NULL, 10);
  return e >= day - 86400 && e < day + 2 * 86400 ? e : day;
}

static char *
vm_of(const char *image, const char *group)
{
  if (group && !strcmp(group, "prefix")) {
    const char *a = NULL;
    for (const char *q = image; (q = strpbrk(q, "-_")); q++)
      if (!strncmp(q + 1, "disk", 4) && q > image)
        a = q;
    if (a)
      return cat_xstrndup(image, (size_t)(a - image));
  }
  return cat_xstrdup(image);
}

static int
alloc_cb(uint64_t off, size_t len, int exists, void *arg)
{
  (void)off;
  if (exists)
    *(uint64_t *)arg += len;
  return 0;
}

static void
add_image(struct scan *s, struct rbd_conn *c, const char *image,
          const char *group)
{
  rbd_image_t img;
  rbd_snap_info_t *snaps = NULL;
  int max = 16, n, r;

  if ((r = rbd_open_read_only(rbd_conn_ioctx(c), image, &img, NULL)) < 0) {
    bfs_log(BFS_LOG_WARN, "rbd:%s/%s: cannot open (skipped): %s",
            rbd_conn_name(c), image, strerror(-r));
    return;
  }
  for (;;) {
    snaps = cat_xcalloc((size_t)max, sizeof *snaps);
    n = rbd_snap_list(img, snaps, &max);
    if (n != -ERANGE)
      break;
    free(snaps);
  }
  if (n < 0) {
    bfs_log(BFS_LOG_WARN, "rbd:%s/%s: listing snapshots (skipped): %s",
            rbd_conn_name(c), image, strerror(-n));
    free(snaps);
    rbd_close(img);
    return;
  }
  uint64_t features = 0, flags = 0;
  rbd_get_features(img, &features);
  rbd_get_flags(img, &flags);
  bool fast = (features & RBD_FEATURE_FAST_DIFF) &&
              !(flags & RBD_FLAG_FAST_DIFF_INVALID);
  CLEANUP_FREE char *vm = vm_of(image, group);
  for (int i = 0; i < n; i++) {
    struct timespec ts = { 0 };
    int64_t t = name_time(snaps[i].name);
    if (t < 0 && rbd_snap_get_timestamp(img, snaps[i].id, &ts) == 0)
      t = ts.tv_sec;
    if (t < 0)
      t = 0;
    CLEANUP_FREE char *loc = cat_xasprintf("%s/%s@%s", rbd_conn_name(c),
                                           image, snaps[i].name);
    uint64_t alloc = snaps[i].size;
    if (fast) {
      uint64_t a = 0;
      rbd_image_t at;
      if (rbd_open_read_only(rbd_conn_ioctx(c), image, &at,
                             snaps[i].name) == 0) {
        if (rbd_diff_iterate2(at, NULL, 0, snaps[i].size, 1, 1, alloc_cb,
                              &a) == 0)
          alloc = a;
        rbd_close(at);
      }
    }
    /* the VM's backup at this time, if another image made it already */
    struct model_backup *b = NULL;
    for (size_t k = 0; k < s->nbackups; k++)
      if (s->backups[k].time == t && !strcmp(s->backups[k].vm, vm) &&
          !strcmp(s->backups[k].source, "ceph-rbd"))
        b = &s->backups[k];
    if (!b) {
      char id[24];
      snprintf(id, sizeof id, "%" PRIu64, snaps[i].id);
      b = scan_add_backup(s, vm, t, "ceph-rbd", loc);
      b->extra = cat_json_kv(4, "pool", rbd_conn_name(c), "image", image,
                             "snapshot", snaps[i].name, "snap_id", id);
    }
    struct scan_layer l = { loc, "rbd", NULL };
    scan_add_disk_recipe(s, b, image, image, (int)b->ndisks, &l, 1,
                         snaps[i].size, alloc, "rbd", NULL, NULL);
  }
  rbd_snap_list_end(snaps);
  free(snaps);
  rbd_close(img);
}

static void
conn_free(void *c)
{
  rbd_conn_unref(c);
}

static bool
rbd_repo(struct scan *s)
{
  const char *repo = catalog_repo(s->cat);
  CLEANUP_FREE char *conf = NULL, *id = NULL, *group = NULL;
  struct rbd_conn *c;
  int r;

  if (!rbd_names(repo))
    return false;
  CLEANUP_FREE char *pool = cat_xstrdup(repo + strlen(RBD_PREFIX));
  char *ns = strchr(pool, '/');
  if (ns)
    *ns++ = '\0';
  if (ns && (!*ns || strchr(ns, '/'))) {
    scan_fail(s, bfs_error(-EINVAL, "%s: not rbd:POOL[/NAMESPACE]", repo));
    return true;
  }
  cat_source_option(s->cat, "ceph_conf", &conf);
  cat_source_option(s->cat, "ceph_id", &id);
  cat_source_option(s->cat, "rbd_group", &group);
  if (group && strcmp(group, "image") && strcmp(group, "prefix")) {
    scan_fail(s, bfs_error(-EINVAL, "%s: rbd_group=%s: not image or prefix",
                           repo, group));
    return true;
  }
  /* the connection is kept with the catalog (scans hold its scan lock) */
  if (!(c = s->cat->repo_handle)) {
    if ((r = rbd_conn_open(conf, id, pool, ns, &c)) < 0) {
      scan_fail(s, bfs_error_prefix(r, "%s: ", repo));
      return true;
    }
    s->cat->repo_handle = c;
    s->cat->repo_handle_free = conn_free;
  }
  rbd_image_spec_t *specs = NULL;
  size_t max = 64;
  for (;;) {
    specs = cat_xcalloc(max, sizeof *specs);
    r = rbd_list2(rbd_conn_ioctx(c), specs, &max);
    if (r != -ERANGE)
      break;
    free(specs);
  }
  if (r < 0) {
    scan_fail(s, bfs_error(-EIO, "%s: listing images: %s", repo,
                           strerror(-r)));
    free(specs);
    return true;
  }
  for (size_t i = 0; i < max; i++)
    add_image(s, c, specs[i].name, group);
  rbd_image_spec_list_cleanup(specs, max);
  free(specs);
  return true;
}

const struct cat_layout layout_rbd = {
  .name = "ceph-rbd",
  .describe = "Ceph RBD pool snapshots (rbd:POOL[/NAMESPACE])",
  .names = rbd_names,
  .repo = rbd_repo,
};
