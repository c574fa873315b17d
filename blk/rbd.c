/* rbd.c — a Ceph RBD snapshot as a struct bfs_blk (see rbd.h).
 *
 * The connection (struct rbd_conn) is a rados cluster handle and one ioctx
 * (pool, namespace), shared by every image of that pool: librados handles
 * and ioctxs are thread-safe.  client_mount_timeout and
 * rados_osd_op_timeout are bounded so a dead cluster is an error, not a
 * hang under a FUSE read.
 *
 * An image is opened with rbd_open_read_only at its snapshot.  pread is
 * rbd_read2 for small requests; a large one is split at 4 MiB and the
 * pieces are read in parallel (rbd_aio_read2, at most 8 in flight).  A
 * read must return exactly the bytes asked for: anything else is an error
 * naming image@snap and the reason.  librbd handles are thread-safe for
 * reads, so no lock is taken around them.  Read-ahead (prefetch, on the
 * mount's pool workers) reads the range once into librbd's object cacher
 * (rbd_cache_policy writeback: the writearound default caches no reads)
 * and drops the bytes; the stream's reads then find them cached.
 *
 * block_status comes from rbd_diff_iterate2 from the beginning of the
 * image (from-snapshot NULL, parent included, whole_object off): the
 * extents it reports are DATA, everything else is a HOLE.  The snapshot
 * never changes, so the extent list is built once, on the first call
 * (under a mutex), and searched from then on; for a very large image
 * without fast-diff that first call lists every object once.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "blk/rbd.h"
#include "common/error.h"

#define RBD_PIECE (4u << 20)
#define RBD_INFLIGHT 8
#define RBD_CHECK_NS 1000000000   /* the snapshot exists: re-checked */

struct rbd_conn {
  atomic_int refs;
  rados_t cluster;
  rados_ioctx_t io;
  char *name;
};

int
rbd_conn_open(const char *conf, const char *id, const char *pool,
              const char *ns, struct rbd_conn **out)
{
  struct rbd_conn *c;
  const char *where = conf ? conf : "the default ceph.conf";
  int r;

  *out = NULL;
  if (!pool || !*pool)
    return bfs_error(-EINVAL, "rbd: no pool given");
  if (!(c = calloc(1, sizeof *c)))
    return bfs_error(-ENOMEM, "rbd: out of memory");
  atomic_init(&c->refs, 1);
  if (asprintf(&c->name, "%s%s%s", pool, ns && *ns ? "/" : "",
               ns ? ns : "") < 0) {
    free(c);
    return bfs_error(-ENOMEM, "rbd: out of memory");
  }
  if ((r = rados_create(&c->cluster, id && *id ? id : "admin")) < 0) {
    r = bfs_error(r, "rbd: rados_create(%s): %s", id ? id : "admin",
                  strerror(-r));
    goto fail;
  }
  if ((r = rados_conf_read_file(c->cluster, conf)) < 0) {
    r = bfs_error(r, "rbd: %s: cannot read the Ceph configuration: %s%s",
                  where, strerror(-r),
                  conf ? "" : " (give -o ceph_conf=FILE)");
    goto fail_shutdown;
  }
  rados_conf_set(c->cluster, "client_mount_timeout", "30");
  rados_conf_set(c->cluster, "rados_osd_op_timeout", "120");
  rados_conf_set(c->cluster, "rados_mon_op_timeout", "60");
  /* reads of a stream: librbd's object cacher reads ahead of them (the
   * writearound default caches nothing; nothing is ever written here),
   * and keeps doing so past the first 50 MiB of the image */
  rados_conf_set(c->cluster, "rbd_cache_policy", "writeback");
  rados_conf_set(c->cluster, "rbd_readahead_max_bytes", "8388608");
  rados_conf_set(c->cluster, "rbd_readahead_disable_after_bytes", "0");
  rados_conf_set(c->cluster, "log_to_stderr", "false");
  rados_conf_set(c->cluster, "err_to_stderr", "false");
  if ((r = rados_connect(c->cluster)) < 0) {
    r = bfs_error(r, "rbd: connecting with %s as client.%s: %s", where,
                  id && *id ? id : "admin", strerror(-r));
    goto fail_shutdown;
  }
  if ((r = rados_ioctx_create(c->cluster, pool, &c->io)) < 0) {
    r = bfs_error(r, "rbd: pool '%s': %s", pool,
                  r == -ENOENT ? "no such pool in the cluster" : strerror(-r));
    goto fail_shutdown;
  }
  rados_ioctx_set_namespace(c->io, ns && *ns ? ns : NULL);
  *out = c;
  return 0;
fail_shutdown:
  rados_shutdown(c->cluster);
fail:
  free(c->name);
  free(c);
  return r;
}

void
rbd_conn_ref(struct rbd_conn *c)
{
  atomic_fetch_add(&c->refs, 1);
}

void
rbd_conn_unref(struct rbd_conn *c)
{
  if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
    return;
  rados_ioctx_destroy(c->io);
  rados_shutdown(c->cluster);
  free(c->name);
  free(c);
}

void *
rbd_conn_ioctx(struct rbd_conn *c)
{
  return c->io;
}

const char *
rbd_conn_name(const struct rbd_conn *c)
{
  return c->name;
}

static char *
xstrndup_or(const char *s, size_t n, int *r)
{
  char *d = strndup(s, n);
  if (!d) *r = -ENOMEM;
  return d;
}

int
rbd_locator_parse(const char *loc, char **pool, char **ns, char **image,
                  char **snap)
{
  const char *at = strchr(loc, '@'), *s1, *s2, *img;
  char *p[4] = { 0 };
  int r = 0;

  if (!at || !at[1] || at == loc)
    return bfs_error(-EINVAL, "%s: not an RBD locator POOL[/NS]/IMAGE@SNAP",
                     loc);
  s1 = memchr(loc, '/', at - loc);
  if (!s1 || s1 == loc)
    return bfs_error(-EINVAL, "%s: not an RBD locator POOL[/NS]/IMAGE@SNAP",
                     loc);
  s2 = memchr(s1 + 1, '/', at - s1 - 1);
  img = s2 ? s2 + 1 : s1 + 1;
  if (img == at || (s2 && (s2 == s1 + 1 || memchr(img, '/', at - img))))
    return bfs_error(-EINVAL, "%s: not an RBD locator POOL[/NS]/IMAGE@SNAP",
                     loc);
  p[0] = xstrndup_or(loc, s1 - loc, &r);
  p[1] = s2 ? xstrndup_or(s1 + 1, s2 - s1 - 1, &r) : xstrndup_or("", 0, &r);
  p[2] = xstrndup_or(img, at - img, &r);
  p[3] = xstrndup_or(at + 1, strlen(at + 1), &r);
  char **outs[4] = { pool, ns, image, snap };
  for (int i = 0; i < 4; i++) {
    if (r == 0 && outs[i])
      *outs[i] = p[i];
    else
      free(p[i]);
  }
  return r ? bfs_error(r, "%s: out of memory", loc) : 0;
}

/* ---- the snapshot as a disk ---- */

struct ext { uint64_t off, len; };

struct rbd_blk {
  struct bfs_blk b;
  struct rbd_conn *conn;
  rbd_image_t img;
  char *name;                       /* POOL[/NS]/IMAGE@SNAP */
  const char *snap;                 /* in name */
  char *image;
  pthread_mutex_t check_lock;       /* checked_at, gone */
  int64_t checked_at;               /* CLOCK_MONOTONIC ns */
  bool gone;
  pthread_mutex_t map_lock;
  bool mapped;
  struct ext *ext;                  /* DATA extents, sorted */
  size_t next, cap;
};

static int
read_error(struct rbd_blk *p, ssize_t r, size_t len, uint64_t off)
{
  if (r >= 0)
    return bfs_error(-EIO, "%s: short read at %" PRIu64 ": %zd of %zu bytes",
                     p->name, off, r, len);
  if (r == -ENOENT)
    return bfs_error(-ENOENT, "%s: read at %" PRIu64 ": the snapshot or "
                     "image is gone (removed from the cluster)", p->name, off);
  return bfs_error(-EIO, "%s: read of %zu bytes at %" PRIu64 ": %s", p->name,
                   len, off, strerror((int)-r));
}

/* The snapshot is still there.  librbd does not watch the header of an
 * image opened read-only at a snapshot, so its own view never learns of a
 * removal, and the OSDs trim a removed snapshot's objects in the
 * background: a read after a removal may succeed with stale or wrong
 * bytes.  So after a read the snapshot is looked up afresh (a new open
 * at the snapshot, a few round trips), at most once per RBD_CHECK_NS per
 * image; once it is gone every read fails. */
static int
still_there(struct rbd_blk *p, uint64_t off)
{
  struct timespec ts;
  int r = 0;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  pthread_mutex_lock(&p->check_lock);
  if (!p->gone && now - p->checked_at >= RBD_CHECK_NS) {
    rbd_image_t tmp;
    r = rbd_open_read_only(rbd_conn_ioctx(p->conn), p->image, &tmp, p->snap);
    if (r == 0) {
      rbd_close(tmp);
      p->checked_at = now;
    } else if (r == -ENOENT)
      p->gone = true;
  }
  bool gone = p->gone;
  pthread_mutex_unlock(&p->check_lock);
  if (gone)
    return bfs_error(-ENOENT, "%s: read at %" PRIu64 ": the snapshot is "
                     "gone (removed from the cluster)", p->name, off);
  if (r < 0)
    return bfs_error(-EIO, "%s: read at %" PRIu64 ": checking that the "
                     "snapshot is still there: %s", p->name, off,
                     strerror(-r));
  return 0;
}

static int rbd_pread_raw(struct rbd_blk *p, void *buf, size_t len,
                         uint64_t off);

static int
rbd_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  struct rbd_blk *p = (struct rbd_blk *)b;
  int r = rbd_pread_raw(p, buf, len, off);
  int r2 = still_there(p, off);
  return r2 < 0 ? r2 : r;
}

static int
rbd_pread_raw(struct rbd_blk *p, void *buf, size_t len, uint64_t off)
{
  const int flags = LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL;

  if (len <= RBD_PIECE) {
    ssize_t r = rbd_read2(p->img, off, len, buf, flags);
    return (size_t)r == len ? 0 : read_error(p, r, len, off);
  }
  rbd_completion_t c[RBD_INFLIGHT];
  size_t plen[RBD_INFLIGHT];
  uint64_t poff[RBD_INFLIGHT];
  size_t head = 0, n = 0, done = 0;
  int err = 0;

  while (done < len || n) {
    while (!err && n < RBD_INFLIGHT && done < len) {
      size_t k = (head + n) % RBD_INFLIGHT;
      plen[k] = len - done < RBD_PIECE ? len - done : RBD_PIECE;
      poff[k] = off + done;
      int r = rbd_aio_create_completion(NULL, NULL, &c[k]);
      if (r == 0 && (r = rbd_aio_read2(p->img, poff[k], plen[k],
                                       (char *)buf + done, c[k], flags)) < 0)
        rbd_aio_release(c[k]);
      if (r < 0) {
        err = read_error(p, r, plen[k], poff[k]);
        break;
      }
      done += plen[k];
      n++;
    }
    if (!n)
      break;
    rbd_aio_wait_for_complete(c[head]);
    ssize_t r = rbd_aio_get_return_value(c[head]);
    rbd_aio_release(c[head]);
    if (!err && (size_t)r != plen[head])
      err = read_error(p, r, plen[head], poff[head]);
    head = (head + 1) % RBD_INFLIGHT;
    n--;
    if (err && done < len)
      done = len;                   /* stop issuing, drain what is out */
  }
  return err;
}

static int
diff_cb(uint64_t off, size_t len, int exists, void *arg)
{
  struct rbd_blk *p = arg;

  if (!exists || !len)
    return 0;
  if (p->next && p->ext[p->next - 1].off + p->ext[p->next - 1].len == off) {
    p->ext[p->next - 1].len += len;
    return 0;
  }
  if (p->next && off < p->ext[p->next - 1].off + p->ext[p->next - 1].len)
    return -EIO;                    /* not sorted: refuse, never guess */
  if (p->next == p->cap) {
    size_t cap = p->cap ? 2 * p->cap : 64;
    struct ext *e = realloc(p->ext, cap * sizeof *e);
    if (!e)
      return -ENOMEM;
    p->ext = e;
    p->cap = cap;
  }
  p->ext[p->next++] = (struct ext){ off, len };
  return 0;
}

static int
build_map(struct rbd_blk *p)                /* map_lock held */
{
  p->next = 0;
  int r = rbd_diff_iterate2(p->img, NULL, 0, p->b.size, 1, 0, diff_cb, p);
  if (r < 0)
    return bfs_error(r == -ENOENT ? -ENOENT : -EIO, "%s: listing the "
                     "allocated extents (rbd_diff_iterate2): %s", p->name,
                     r == -ENOENT ? "the snapshot or image is gone"
                                  : strerror(-r));
  p->mapped = true;
  return 0;
}

static int
rbd_block_status(struct bfs_blk *b, uint64_t off, uint64_t max,
                 struct bfs_blk_status *st)
{
  struct rbd_blk *p = (struct rbd_blk *)b;
  int r = 0;

  pthread_mutex_lock(&p->map_lock);
  if (!p->mapped)
    r = build_map(p);
  pthread_mutex_unlock(&p->map_lock);
  if (r < 0)
    return r;
  /* the first extent ending after off */
  size_t lo = 0, hi = p->next;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (p->ext[mid].off + p->ext[mid].len <= off)
      lo = mid + 1;
    else
      hi = mid;
  }
  memset(st, 0, sizeof *st);
  st->fd = -1;
  if (lo < p->next && p->ext[lo].off <= off) {
    uint64_t end = p->ext[lo].off + p->ext[lo].len;
    st->kind = BFS_BLK_DATA;
    st->layer = 0;
    st->len = end - off < max ? end - off : max;
  } else {
    uint64_t end = lo < p->next ? p->ext[lo].off : p->b.size;
    st->kind = BFS_BLK_HOLE;
    st->layer = -1;
    st->len = end - off < max ? end - off : max;
  }
  return 0;
}

static void
rbd_close_blk(struct bfs_blk *b)
{
  struct rbd_blk *p = (struct rbd_blk *)b;
  rbd_close(p->img);
  rbd_conn_unref(p->conn);
  pthread_mutex_destroy(&p->map_lock);
  pthread_mutex_destroy(&p->check_lock);
  free(p->image);
  free(p->ext);
  free(p->name);
  free(p);
}

/* read-ahead: the range is read once, into librbd's object cacher (the
 * bytes here are dropped), so the stream's own reads find it there */
static void
rbd_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len)
{
  struct rbd_blk *p = (struct rbd_blk *)b;
  if (len > 2 * RBD_PIECE)
    len = 2 * RBD_PIECE;
  void *buf = malloc(len);
  if (buf && rbd_pread_raw(p, buf, len, off) < 0)
    bfs_clear_error();
  free(buf);
}

static const struct bfs_blk_ops rbd_ops = {
  .name = "rbd",
  .pread = rbd_pread,
  .prefetch = rbd_prefetch,
  .block_status = rbd_block_status,
  .close = rbd_close_blk,
};

int
blk_rbd_open_locator(const char *locator, const char *options, void *conn,
                     struct bfs_blk *backing, struct bfs_blk **out)
{
  struct rbd_conn *c = conn;
  char *pool = NULL, *ns = NULL, *image = NULL, *snap = NULL;
  struct rbd_blk *p = NULL;
  uint64_t size;
  int r;

  *out = NULL;
  if (backing)
    r = bfs_error(-EINVAL, "%s: an RBD snapshot has no backing file", locator);
  else if (options && *options)
    r = bfs_error(-EINVAL, "%s: rbd driver: unknown options '%s'", locator,
                  options);
  else if (!c)
    r = bfs_error(-EINVAL, "%s: the rbd driver needs its cluster connection "
                  "(the recipe's ctx)", locator);
  else
    r = rbd_locator_parse(locator, &pool, &ns, &image, &snap);
  bfs_blk_close(backing);
  if (r < 0)
    return r;
  size_t pl = strlen(pool) + (ns[0] ? 1 + strlen(ns) : 0);
  if (strlen(rbd_conn_name(c)) != pl ||
      strncmp(locator, rbd_conn_name(c), pl)) {
    r = bfs_error(-EINVAL, "%s: not in the connection's pool %s", locator,
                  rbd_conn_name(c));
    goto out;
  }
  if (!(p = calloc(1, sizeof *p)) || !(p->name = strdup(locator))) {
    r = bfs_error(-ENOMEM, "%s: out of memory", locator);
    goto out;
  }
  if ((r = rbd_open_read_only(rbd_conn_ioctx(c), image, &p->img, snap)) < 0) {
    r = bfs_error(r == -ENOENT ? -ENOENT : -EIO, "%s: cannot open: %s",
                  locator, r == -ENOENT ? "no such image or snapshot"
                                        : strerror(-r));
    goto out;
  }
  if ((r = rbd_get_size(p->img, &size)) < 0) {
    rbd_close(p->img);
    r = bfs_error(-EIO, "%s: size: %s", locator, strerror(-r));
    goto out;
  }
  pthread_mutex_init(&p->map_lock, NULL);
  pthread_mutex_init(&p->check_lock, NULL);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  p->checked_at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  p->snap = strchr(p->name, '@') + 1;
  p->image = image;
  image = NULL;
  rbd_conn_ref(c);
  p->conn = c;
  p->b.ops = &rbd_ops;
  p->b.name = p->name;
  p->b.size = size;
  p->b.info.format = "rbd";
  p->b.info.virtual_size = size;
  p->b.info.file_size = size;
  *out = &p->b;
  p = NULL;
out:
  if (p) {
    free(p->name);
    free(p);
  }
  free(pool); free(ns); free(image); free(snap);
  return r;
}

int
blk_rbd_open(struct blk_io *io, const char *options, struct bfs_blk *backing,
             struct bfs_blk **out)
{
  blk_io_close(io);
  *out = NULL;
  bfs_blk_close(backing);
  return bfs_error(-EINVAL, "the rbd driver needs its cluster connection: "
                   "an RBD layer opens through the disk service");
}

int
blk_rbd_open_ctx(struct blk_io *io, const char *options, void *conn,
                 struct bfs_blk *backing, struct bfs_blk **out)
{
  char *loc = io ? strdup(blk_io_name(io)) : NULL;
  int r;

  blk_io_close(io);
  if (!loc) {
    *out = NULL;
    bfs_blk_close(backing);
    return bfs_error(-ENOMEM, "rbd: out of memory");
  }
  r = blk_rbd_open_locator(loc, options, conn, backing, out);
  free(loc);
  return r;
}
