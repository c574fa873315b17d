/* source.c — the table of shared driver contexts (see source.h).
 *
 * Adding a driver that needs one: a row here calling the driver's own
 * context constructor (blk/<driver>.h); nothing else in disk/ changes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk/rbd.h"
#include "blk/restic.h"
#include "common/error.h"
#include "disk/source.h"

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
  { "restic", false, restic_key, restic_src_open, restic_src_close },
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
