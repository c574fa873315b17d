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
 *          and vm-100-disk-1 are VM vm-100); rbd_group=xml:DIR: DIR's
 *          *.xml (virsh dumpxml): an image a domain's <disk type='network'>
 *          <source protocol='rbd' name='POOL[/NS]/IMAGE'> names is the
 *          domain's <name>, the disk its <target dev>, and the XML is the
 *          backup's domain.xml (extra "vm_domain_xml"); a file that does
 *          not parse (or has a DTD) is skipped saying why;
 *          rbd_group=cloudstack:FILE: `cmk list volumes` JSON, image
 *          (path, else id: the volume uuid) -> vmname; images a mapping
 *          does not name: their image name.  Snapshots of one VM's images
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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
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

int64_t
rbd_snap_name_time(const char *snap)
{
  const char *p = NULL, *q = snap;
  while ((q = strstr(q, "-backup-")))
    p = q++;
  if (!p)
    return -1;
  p += strlen("-backup-");
  unsigned y, m, d;
  int n = 0;
  /* digits only: %u alone would take a sign or blanks ("-026") */
  for (int i = 0; i < 10; i++)
    if (i == 4 || i == 7 ? p[i] != '_' : !(p[i] >= '0' && p[i] <= '9'))
      return -1;
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

/* ---- rbd_group: which VM an image belongs to ---- */

/* an image a mapping names: its VM, disk name (NULL: the image's), and
 * the VM's domain XML (NULL: none) */
struct member { char *image, *vm, *disk, *xml; };
struct group {
  const char *rule;             /* "image", "prefix", "xml", "cloudstack" */
  struct member *m;
  size_t n;
};

#define GROUP_XML_MAX (1u << 20)        /* one domain XML */
#define GROUP_JSON_MAX (64u << 20)      /* a `list volumes` export */

static void
group_free(struct group *g)
{
  for (size_t i = 0; i < g->n; i++) {
    free(g->m[i].image); free(g->m[i].vm); free(g->m[i].disk);
    free(g->m[i].xml);
  }
  free(g->m);
}

static const struct member *
group_find(const struct group *g, const char *image)
{
  for (size_t i = 0; i < g->n; i++)
    if (!strcmp(g->m[i].image, image))
      return &g->m[i];
  return NULL;
}

/* names that become directories of the tree: one component, printable */
static bool
name_ok(const char *s)
{
  if (!s || !*s || !strcmp(s, ".") || !strcmp(s, "..") || strlen(s) > 255)
    return false;
  for (; *s; s++)
    if (*s == '/' || (unsigned char)*s < 0x20 || *s == 0x7f)
      return false;
  return true;
}

static void
group_add(struct group *g, const char *where, const char *image,
          const char *vm, const char *disk, const char *xml)
{
  if (!name_ok(vm)) {
    bfs_log(BFS_LOG_WARN, "rbd_group: %s: VM name of image %s is no file "
            "name (ignored)", where, image);
    return;
  }
  if (group_find(g, image)) {
    bfs_log(BFS_LOG_WARN, "rbd_group: %s: image %s is named twice (the "
            "first stands)", where, image);
    return;
  }
  g->m = cat_xrealloc(g->m, g->n + 1, sizeof *g->m);
  struct member *m = &g->m[g->n++];
  m->image = cat_xstrdup(image);
  m->vm = cat_xstrdup(vm);
  m->disk = name_ok(disk) ? cat_xstrdup(disk) : NULL;
  m->xml = xml ? cat_xstrdup(xml) : NULL;
}

/* One domain XML: its rbd network disks of pool (POOL[/NS]) are its VM's */
static int
group_xml_file(struct group *g, int dirfd, const char *dir, const char *fn,
               const char *pool)
{
  CLEANUP_FREE char *buf = NULL, *where = cat_xasprintf("%s/%s", dir, fn);
  struct domain_info d;
  size_t len, pl = strlen(pool);
  int r;

  if ((r = cat_read_file(dirfd, fn, GROUP_XML_MAX, &buf, &len)) < 0 ||
      (r = nas_parse_domain_xml(buf, len, &d)) < 0)
    return bfs_error_prefix(r, "rbd_group=xml: %s: ", where);
  if (!d.name) {
    domain_info_free(&d);
    return bfs_error(-EINVAL, "rbd_group=xml: %s: no <name>", where);
  }
  for (size_t i = 0; i < d.ndisks; i++) {
    const struct domain_disk *k = &d.disks[i];
    if (k->protocol && !strcmp(k->protocol, "rbd") && k->source &&
        !strncmp(k->source, pool, pl) && k->source[pl] == '/' &&
        name_ok(k->source + pl + 1))
      group_add(g, where, k->source + pl + 1, d.name, k->target, buf);
  }
  domain_info_free(&d);
  return 0;
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
  return strcmp((*a)->d_name, (*b)->d_name);
}

static int
want_xml(const struct dirent *e)
{
  size_t l = strlen(e->d_name);
  return e->d_name[0] != '.' && l > 4 && !strcmp(e->d_name + l - 4, ".xml");
}

/* rbd_group=xml:DIR: every DIR/<name>.xml (in name order); a file that
 * cannot be read or parsed is skipped with its reason, the rest count */
static int
group_xml(struct group *g, const char *dir, const char *pool)
{
  CLEANUP_CLOSE int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct dirent **e = NULL;
  int n;

  if (fd < 0 || (n = scandirat(fd, ".", &e, want_xml, by_name)) < 0)
    return bfs_error(-errno, "rbd_group=xml:%s: %s", dir, strerror(errno));
  for (int i = 0; i < n; i++) {
    if (group_xml_file(g, fd, dir, e[i]->d_name, pool) < 0)
      bfs_log(BFS_LOG_WARN, "%s (skipped)", bfs_last_error());
    free(e[i]);
  }
  free(e);
  return 0;
}

static const char *
json_str(struct json_object *o, const char *key)
{
  struct json_object *v;
  if (!json_object_object_get_ex(o, key, &v) ||
      !json_object_is_type(v, json_type_string) ||
      !json_object_get_string_len(v))
    return NULL;
  return json_object_get_string(v);
}

/* rbd_group=cloudstack:FILE: `cmk list volumes` JSON ({"volume": [...]},
 * or the API's {"listvolumesresponse": {"volume": [...]}}); CloudStack
 * names a volume's RBD image by its path (the volume uuid), else its id;
 * the VM is vmname, else virtualmachineid; volumes of no VM are left out */
static int
group_cloudstack(struct group *g, const char *file)
{
  CLEANUP_FREE char *buf = NULL;
  struct json_object *o, *a = NULL, *w;
  size_t len;
  int r;

  if ((r = cat_read_file(AT_FDCWD, file, GROUP_JSON_MAX, &buf, &len)) < 0)
    return bfs_error_prefix(r, "rbd_group=cloudstack: ");
  if (!(o = json_tokener_parse(buf)))
    return bfs_error(-EINVAL, "rbd_group=cloudstack:%s: not JSON", file);
  if (!json_object_object_get_ex(o, "listvolumesresponse", &w))
    w = o;
  if (!json_object_is_type(w, json_type_object) ||
      !json_object_object_get_ex(w, "volume", &a) ||
      !json_object_is_type(a, json_type_array)) {
    json_object_put(o);
    return bfs_error(-EINVAL, "rbd_group=cloudstack:%s: no \"volume\" "
                     "array (`cmk list volumes` output)", file);
  }
  for (size_t i = 0; i < json_object_array_length(a); i++) {
    struct json_object *v = json_object_array_get_idx(a, i);
    if (!json_object_is_type(v, json_type_object))
      continue;
    const char *img = json_str(v, "path") ? json_str(v, "path")
                                          : json_str(v, "id");
    const char *vm = json_str(v, "vmname") ? json_str(v, "vmname")
                                           : json_str(v, "virtualmachineid");
    if (img && vm)
      group_add(g, file, img, vm, NULL, NULL);
  }
  json_object_put(o);
  return 0;
}

/* the rbd_group option: image (or none), prefix, xml:DIR, cloudstack:FILE
 * (DIR and FILE absolute: a mount's rescans run in /) */
static int
group_open(struct group *g, const char *opt, const char *pool)
{
  memset(g, 0, sizeof *g);
  g->rule = "image";
  if (!opt || !strcmp(opt, "image") || !strcmp(opt, "prefix")) {
    if (opt)
      g->rule = opt;
    return 0;
  }
  bool xml = !strncmp(opt, "xml:", 4);
  if (!xml && strncmp(opt, "cloudstack:", 11))
    return bfs_error(-EINVAL, "rbd_group=%s: not image, prefix, xml:DIR "
                     "or cloudstack:FILE", opt);
  const char *arg = strchr(opt, ':') + 1;
  if (*arg != '/')
    return bfs_error(-EINVAL, "rbd_group=%s: give an absolute path", opt);
  g->rule = xml ? "xml" : "cloudstack";
  return xml ? group_xml(g, arg, pool) : group_cloudstack(g, arg);
}

size_t
rbd_prefix_vm_len(const char *image)
{
  const char *a = NULL;
  for (const char *q = image; (q = strpbrk(q, "-_")); q++)
    if (!strncmp(q + 1, "disk", 4) && q > image)
      a = q;
  return a ? (size_t)(a - image) : 0;
}

/* the VM of image, and the mapping's entry for it (or NULL) */
static char *
vm_of(const struct group *g, const char *image, const struct member **m)
{
  if ((*m = group_find(g, image)))
    return cat_xstrdup((*m)->vm);
  size_t n = !strcmp(g->rule, "prefix") ? rbd_prefix_vm_len(image) : 0;
  return n ? cat_xstrndup(image, n) : cat_xstrdup(image);
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
          const struct group *g)
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
  const struct member *m;
  CLEANUP_FREE char *vm = vm_of(g, image, &m);
  const char *disk = m && m->disk ? m->disk : image;
  for (int i = 0; i < n; i++) {
    struct timespec ts = { 0 };
    int64_t t = rbd_snap_name_time(snaps[i].name);
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
      b->extra = cat_json_kv(5, "pool", rbd_conn_name(c), "image", image,
                             "snapshot", snaps[i].name, "snap_id", id,
                             "vm_domain_xml", m ? m->xml : NULL);
    }
    struct scan_layer l = { loc, "rbd", NULL };
    scan_add_disk_recipe(s, b, disk, image, (int)b->ndisks, &l, 1,
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
  /* the connection is kept with the catalog (scans hold its scan lock) */
  if (!(c = s->cat->repo_handle)) {
    if ((r = rbd_conn_open(conf, id, pool, ns, &c)) < 0) {
      scan_fail(s, bfs_error_prefix(r, "%s: ", repo));
      return true;
    }
    s->cat->repo_handle = c;
    s->cat->repo_handle_free = conn_free;
  }
  struct group g;
  if ((r = group_open(&g, group, rbd_conn_name(c))) < 0) {
    group_free(&g);
    scan_fail(s, bfs_error_prefix(r, "%s: ", repo));
    return true;
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
    group_free(&g);
    return true;
  }
  for (size_t i = 0; i < max; i++)
    add_image(s, c, specs[i].name, &g);
  group_free(&g);
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
