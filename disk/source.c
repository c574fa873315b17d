/* source.c — the table of shared driver contexts (see source.h).
 *
 * Adding a driver that needs one: a row here calling the driver's own
 * context constructor (blk/<driver>.h); nothing else in disk/ changes.
 *
 *   vnbd  one per repository: the index cache (<catalog>.idx/, see
 *         blk/vnbd-cache.c), so a stream is indexed once per file
 *         identity, not on every open; without a catalog file, none.
 *   vma   one per archive (key: the locator): its extent index from the
 *         index cache or built once, and for .vma.zst/.vma.lzo the
 *         unpacked copy, an unlinked sparse file in <catalog>.idx/ (at
 *         most the uncompressed archive's size, all-zero blocks not
 *         written), shared by the archive's devices and dropped when the
 *         service's context goes (unmount) or, when the archive is
 *         replaced, at the next open over the new file (blk/vma-source.c).
 *   pbs   one per datastore (key: the layer option store=<root>, which
 *         the PBS layout writes): the chunk store over the datastore
 *         directory opened beneath the repository, with the key of
 *         -o pbs_keyfile= for encrypted datastores.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk/pbs.h"
#include "blk/rbd.h"
#include "blk/restic.h"
#include "blk/vma.h"
#include "blk/vnbd.h"
#include "common/beneath.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/kvopt.h"
#include "disk/source.h"

/* ---- vnbd ---- */

static int
vnbd_src_open(struct bfs_disk_ctx *ctx, const char *key, void **out)
{
  struct blk_idxcache *c = malloc(sizeof *c);
  (void)key;
  if (!c)
    return bfs_error(-ENOMEM, "out of memory");
  c->dirfd = blk_idxcache_open(bfs_disk_ctx_catalog_path(ctx));
  *out = c;
  return 0;
}

static void
vnbd_src_close(void *src)
{
  struct blk_idxcache *c = src;
  if (c->dirfd >= 0)
    close(c->dirfd);
  free(c);
}

/* ---- vma ---- */

static int
vma_src_key(const struct blk_layer *l, char **key)
{
  return (*key = strdup(l->locator)) ? 0 : -ENOMEM;
}

static int
vma_src_open(struct bfs_disk_ctx *ctx, const char *key, void **out)
{
  const char *repo = bfs_disk_ctx_repo(ctx);
  int fd = bfs_open_beneath(bfs_disk_ctx_repo_fd(ctx), repo, key);
  if (fd < 0)
    return fd;
  int cache = blk_idxcache_open(bfs_disk_ctx_catalog_path(ctx));
  struct vma_source *s;
  bool hit;
  int r = vma_source_open(fd, key, cache, cache, &s, &hit);
  close(fd);
  if (cache >= 0)
    close(cache);
  if (r < 0)
    return r;
  *out = s;
  return 0;
}

static void
vma_src_close(void *src)
{
  vma_source_free(src);
}

/* ---- pbs ---- */

static int
pbs_src_key(const struct blk_layer *l, char **key)
{
  if (bfs_kvopt_get(l->options, "store", key) < 0)
    return bfs_error(-EINVAL, "%s: pbs layer without its datastore "
                     "(store= option): rescan the repository", l->locator);
  return 0;
}

/* the datastore directory rel ("." the repository) beneath repo_fd, one
 * component at a time, no symlink followed */
static int
open_dir_beneath(int repo_fd, const char *repo, const char *rel)
{
  int fd = fcntl(repo_fd, F_DUPFD_CLOEXEC, 0);
  CLEANUP_FREE char *copy = strdup(rel);
  char *save = NULL;

  if (fd < 0 || !copy) {
    if (fd >= 0)
      close(fd);
    return bfs_error(-ENOMEM, "out of memory");
  }
  for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    if (!strcmp(c, "."))
      continue;
    int nfd = !strcmp(c, "..") ? (errno = EXDEV, -1)
            : openat(fd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(fd);
    if (nfd < 0)
      return bfs_error(-e, "%s/%s: datastore directory: %s", repo, rel,
                       strerror(e));
    fd = nfd;
  }
  return fd;
}

static int
pbs_src_open(struct bfs_disk_ctx *ctx, const char *key, void **out)
{
  const char *repo = bfs_disk_ctx_repo(ctx);
  CLEANUP_FREE char *keyfile = NULL;
  struct pbs_key k;
  struct pbs_store *st;
  int r;

  bool enc = bfs_disk_source_option(ctx, "pbs_keyfile", &keyfile) == 0;
  if (enc && (r = pbs_key_load(keyfile, NULL, &k)) < 0)
    return r;
  int fd = open_dir_beneath(bfs_disk_ctx_repo_fd(ctx), repo, key);
  if (fd < 0)
    return fd;
  CLEANUP_FREE char *name = strcmp(key, ".") ? NULL : strdup(repo);
  if ((r = pbs_store_open(fd, name ? name : key, enc ? &k : NULL, 0,
                          &st)) < 0)
    return r;
  *out = st;
  return 0;
}

static void
pbs_src_close(void *src)
{
  pbs_store_unref(src);
}

/* ---- restic: the repository directory of a snapshot file ---- */

static int
restic_key(const struct blk_layer *l, char **key)
{
  const char *p = strstr(l->locator, "snapshots/");
  const char *last = NULL;
  for (; p; p = strstr(p + 1, "snapshots/"))   /* the last one */
    last = p;
  if (!last || (last != l->locator && last[-1] != '/'))
    return bfs_error(-EINVAL, "%s: not a restic snapshot file", l->locator);
  size_t n = last == l->locator ? 0 : (size_t)(last - l->locator) - 1;
  *key = n ? strndup(l->locator, n) : strdup(".");
  return *key ? 0 : -ENOMEM;
}

static int
restic_src_open(struct bfs_disk_ctx *ctx, const char *key, void **out)
{
  char *pwfile = NULL;
  int r = bfs_disk_source_option(ctx, "restic_password_file", &pwfile);
  if (r == -ENOENT && getenv("RESTIC_PASSWORD_FILE"))
    r = (pwfile = strdup(getenv("RESTIC_PASSWORD_FILE"))) ? 0 : -ENOMEM;
  if (r == -ENOENT)
    return bfs_error(-ENOKEY, "%s/%s: a restic repository: its password is "
                     "needed (--restic-password-file FILE, -o "
                     "restic_password_file=FILE or RESTIC_PASSWORD_FILE)",
                     bfs_disk_ctx_repo(ctx), key);
  if (r < 0)
    return r;
  r = restic_open_password_file(bfs_disk_ctx_repo_fd(ctx), key, pwfile,
                                (struct restic_repo **)out);
  free(pwfile);
  return r;
}

static void
restic_src_close(void *src)
{
  restic_close(src);
}

/* Ceph RBD: one connection per pool/namespace of the locators */
static int
rbd_key(const struct blk_layer *l, char **key)
{
  char *pool, *ns;
  int r = rbd_locator_parse(l->locator, &pool, &ns, NULL, NULL);
  if (r < 0)
    return r;
  r = asprintf(key, "%s%s%s", pool, ns[0] ? "/" : "", ns);
  free(pool);
  free(ns);
  return r < 0 ? bfs_error(-ENOMEM, "%s: out of memory", l->locator) : 0;
}

static int
rbd_source_open(struct bfs_disk_ctx *ctx, const char *key, void **out)
{
  char *conf = NULL, *id = NULL, *pool = strdup(key), *ns;
  struct rbd_conn *c = NULL;
  int r;

  if (!pool)
    return bfs_error(-ENOMEM, "rbd:%s: out of memory", key);
  ns = strchr(pool, '/');
  if (ns)
    *ns++ = '\0';
  if (((r = bfs_disk_source_option(ctx, "ceph_conf", &conf)) < 0 &&
       r != -ENOENT) ||
      ((r = bfs_disk_source_option(ctx, "ceph_id", &id)) < 0 && r != -ENOENT))
    r = bfs_error(r, "rbd:%s: source options: %s", key, strerror(-r));
  else
    r = rbd_conn_open(conf, id, pool, ns, &c);
  free(conf);
  free(id);
  free(pool);
  *out = c;
  return r;
}

static void
rbd_source_close(void *src)
{
  rbd_conn_unref(src);
}

static const struct bfs_disk_source sources[] = {
  /* driver, no_file, key, open, close */
  { "restic", false, restic_key, restic_src_open, restic_src_close },
  { "vnbd", false, NULL, vnbd_src_open, vnbd_src_close },
  { "vma", false, vma_src_key, vma_src_open, vma_src_close },
  { "pbs", false, pbs_src_key, pbs_src_open, pbs_src_close },
  { "rbd", true, rbd_key, rbd_source_open, rbd_source_close },
};

const struct bfs_disk_source *
bfs_disk_source_find(const char *driver)
{
  for (size_t i = 0; driver && i < sizeof sources / sizeof sources[0]; i++)
    if (sources[i].driver && !strcmp(sources[i].driver, driver))
      return &sources[i];
  return NULL;
}
