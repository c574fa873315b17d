/* rbd.h — Ceph RBD snapshots as struct bfs_blk, read through librbd.
 *
 * A recipe layer of driver "rbd" names no file: its locator is
 * POOL[/NAMESPACE]/IMAGE@SNAP and the recipe's ctx is the struct rbd_conn
 * of that pool and namespace (a cluster connection and its ioctx), which
 * the disk service opens once per pool/namespace (disk/source.c) from the
 * source options ceph_conf= (the ceph.conf, which names the keyring) and
 * ceph_id= (the client name without "client.", default "admin").  The
 * catalog's RBD layout (catalog/layout-rbd.c) uses the same connection.
 *
 * The image is opened read-only at the snapshot; nothing is ever written
 * to the cluster.  A snapshot removed while it is open makes reads fail
 * (-ENOENT, naming image@snap), never zeros.
 */
#ifndef BFS_BLK_RBD_H
#define BFS_BLK_RBD_H

#include "blk/blk.h"

struct rbd_conn;

/* Connect: conf NULL is librados' own search (CEPH_CONF, /etc/ceph), id
 * NULL "admin"; ns NULL or "" the default namespace.  0 or -errno naming
 * the conf, pool and reason.  Thread-safe once open; refcounted. */
int rbd_conn_open(const char *conf, const char *id, const char *pool,
                  const char *ns, struct rbd_conn **out);
void rbd_conn_ref(struct rbd_conn *c);
void rbd_conn_unref(struct rbd_conn *c);
/* the rados_ioctx_t of the pool/namespace */
void *rbd_conn_ioctx(struct rbd_conn *c);
/* "POOL" or "POOL/NS", for messages and locators */
const char *rbd_conn_name(const struct rbd_conn *c);

/* Split a locator POOL[/NS]/IMAGE@SNAP (malloc'd parts; *ns "" when
 * absent; any of the out pointers may be NULL): 0 or -EINVAL. */
int rbd_locator_parse(const char *loc, char **pool, char **ns, char **image,
                      char **snap);

/* The table's driver: refuses (-EINVAL), an RBD layer needs its cluster. */
int blk_rbd_open(struct blk_io *io, const char *options,
                 struct bfs_blk *backing, struct bfs_blk **out);
/* The layer locator on conn (a struct rbd_conn, a reference is taken). */
int blk_rbd_open_locator(const char *locator, const char *options,
                         void *conn, struct bfs_blk *backing,
                         struct bfs_blk **out);
/* The recipe's form: io is the one blk_open_recipe makes over the
 * locator of a layer that is no file (its name is the locator). */
int blk_rbd_open_ctx(struct blk_io *io, const char *options, void *conn,
                     struct bfs_blk *backing, struct bfs_blk **out);

#endif
