/* disk.c — the disk service (see disk.h): recipes opened beneath the
 * repository, identity-checked, shared, with an idle LRU of open stacks.
 *
 * Disks live in a hash table of the context keyed by owner + recipe
 * (locator, driver, options and identity of every layer), so two users of
 * the same point in time share one stack and one cache.  A disk's
 * reference count (ctx.lock) keeps the struct; its users count (disk.lock)
 * keeps the stack open; the idle list holds a reference of its own.  The
 * context makes one worker pool (common/pool.h) on the first open, for
 * every stack's caching filter: made lazily so that a daemon forks first.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "blk/recipe.h"
#include "common/beneath.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/kvopt.h"
#include "common/lock.h"
#include "common/pool.h"
#include "disk/disk.h"
#include "disk/source.h"

#define DISK_BUCKETS 1024
#define DISK_IDLE_DEFAULT 64

struct bfs_disk {
  struct bfs_disk_ctx *ctx;
  struct bfs_disk *hnext;            /* key table chain (ctx.lock) */
  struct bfs_disk *idle_prev, *idle_next;
  bool idle;                         /* on the idle list (ctx.lock) */
  unsigned refs;                     /* ctx.lock */
  char *key;
  uint64_t hash;
  char *name;
  uint64_t size;
  char *status;                      /* the catalog's: "ok" or why not */
  size_t n;
  struct blk_layer *layers;          /* strings owned below */
  char **loc, **drv, **opt;
  struct bfs_file_id *id;

  pthread_mutex_t lock;
  struct bfs_blk *blk;               /* open stack, or NULL (lock) */
  unsigned users;                    /* lock */
};

struct source_ctx {                  /* an open shared driver context */
  struct source_ctx *next;
  const struct bfs_disk_source *row;
  char *key;
  void *src;
};

struct bfs_disk_ctx {
  catalog_t *cat;
  char *repo;                        /* catalog_repo(cat), a copy */
  int repo_fd;
  struct bfs_disk_opts opts;         /* source_options: our copy */
  pthread_mutex_t src_lock;          /* sources (held while one opens) */
  struct source_ctx *sources;
  pthread_mutex_t lock;
  struct bfs_disk *buckets[DISK_BUCKETS];
  struct bfs_disk *idle_head, *idle_tail;   /* oldest first */
  size_t nidle;
  struct bfs_pool *pool;             /* lock: the stacks' workers, made on
                                        the first open (after any fork) */
};

int
bfs_disk_ctx_new(catalog_t *cat, int repo_fd, const struct bfs_disk_opts *o,
                 struct bfs_disk_ctx **out)
{
  struct bfs_disk_ctx *ctx = calloc(1, sizeof *ctx);

  *out = NULL;
  if (!ctx)
    return bfs_error(-ENOMEM, "out of memory");
  ctx->cat = cat;
  ctx->repo_fd = repo_fd;
  if (!(ctx->repo = strdup(catalog_repo(cat)))) {
    free(ctx);
    return bfs_error(-ENOMEM, "out of memory");
  }
  if (o)
    ctx->opts = *o;
  /* the catalog remembers the source options unless the caller has its
   * own */
  const char *so = o && o->source_options ? o->source_options
                 : catalog_source_options(cat);
  ctx->opts.source_options = NULL;
  if (so && !(ctx->opts.source_options = strdup(so))) {
    free(ctx->repo);
    free(ctx);
    return -ENOMEM;
  }
  pthread_mutex_init(&ctx->src_lock, NULL);
  if (!ctx->opts.idle_max)
    ctx->opts.idle_max = DISK_IDLE_DEFAULT;
  pthread_mutex_init(&ctx->lock, NULL);
  *out = ctx;
  return 0;
}

static void
idle_remove(struct bfs_disk_ctx *ctx, struct bfs_disk *d)   /* ctx.lock */
{
  *(d->idle_prev ? &d->idle_prev->idle_next : &ctx->idle_head) = d->idle_next;
  *(d->idle_next ? &d->idle_next->idle_prev : &ctx->idle_tail) = d->idle_prev;
  d->idle_prev = d->idle_next = NULL;
  d->idle = false;
  ctx->nidle--;
}

static void
disk_free(struct bfs_disk *d)
{
  bfs_blk_close(d->blk);
  for (size_t i = 0; i < d->n; i++) {
    free(d->loc[i]);
    free(d->drv[i]);
    free(d->opt[i]);
  }
  free(d->loc);
  free(d->drv);
  free(d->opt);
  free(d->id);
  free(d->layers);
  free(d->key);
  free(d->name);
  free(d->status);
  pthread_mutex_destroy(&d->lock);
  free(d);
}

void
bfs_disk_put(struct bfs_disk *d)
{
  struct bfs_disk_ctx *ctx;
  bool last;

  if (!d)
    return;
  ctx = d->ctx;
  pthread_mutex_lock(&ctx->lock);
  last = --d->refs == 0;
  if (last) {
    struct bfs_disk **p = &ctx->buckets[d->hash % DISK_BUCKETS];
    while (*p && *p != d)
      p = &(*p)->hnext;
    if (*p)
      *p = d->hnext;
  }
  pthread_mutex_unlock(&ctx->lock);
  if (last)
    disk_free(d);
}

struct bfs_disk *
bfs_disk_ref(struct bfs_disk *d)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&d->ctx->lock);
  d->refs++;
  return d;
}

void
bfs_disk_ctx_flush(struct bfs_disk_ctx *ctx)
{
  for (;;) {
    pthread_mutex_lock(&ctx->lock);
    struct bfs_disk *d = ctx->idle_head;
    if (d)
      idle_remove(ctx, d);
    pthread_mutex_unlock(&ctx->lock);
    if (!d)
      break;
    pthread_mutex_lock(&d->lock);
    if (d->users == 0) {
      bfs_blk_close(d->blk);
      d->blk = NULL;
    }
    pthread_mutex_unlock(&d->lock);
    bfs_disk_put(d);                  /* the idle list's reference */
  }
}

void
bfs_disk_ctx_free(struct bfs_disk_ctx *ctx)
{
  if (!ctx)
    return;
  bfs_pool_free(ctx->pool);           /* its queued tasks release stacks */
  bfs_disk_ctx_flush(ctx);
  for (struct source_ctx *sc = ctx->sources, *next; sc; sc = next) {
    next = sc->next;
    sc->row->close(sc->src);
    free(sc->key);
    free(sc);
  }
  pthread_mutex_destroy(&ctx->src_lock);
  pthread_mutex_destroy(&ctx->lock);
  free((char *)ctx->opts.source_options);
  free(ctx->repo);
  free(ctx);
}

int
bfs_disk_ctx_repo_fd(const struct bfs_disk_ctx *ctx)
{
  return ctx->repo_fd;
}

const char *
bfs_disk_ctx_repo(const struct bfs_disk_ctx *ctx)
{
  return ctx->repo;
}

const char *
bfs_disk_ctx_catalog_path(struct bfs_disk_ctx *ctx)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&ctx->lock);
  return ctx->cat ? catalog_path(ctx->cat) : NULL;
}

int
bfs_disk_source_option(const struct bfs_disk_ctx *ctx, const char *name,
                       char **value)
{
  return bfs_kvopt_get(ctx->opts.source_options, name, value);
}

/* The shared context layer l's driver needs (NULL: none), opened on
 * first use. */
static int
source_get(struct bfs_disk_ctx *ctx, const struct blk_layer *l, void **out)
{
  const struct bfs_disk_source *row = bfs_disk_source_find(l->driver);
  CLEANUP_FREE char *key = NULL;
  int r = 0;

  *out = NULL;
  if (!row)
    return 0;
  if (row->key ? (r = row->key(l, &key)) < 0 : !(key = strdup("")))
    return row->key ? r : -ENOMEM;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&ctx->src_lock);
  for (struct source_ctx *sc = ctx->sources; sc; sc = sc->next)
    if (sc->row == row && !strcmp(sc->key, key)) {
      *out = sc->src;
      return 0;
    }
  struct source_ctx *sc = calloc(1, sizeof *sc);
  if (!sc)
    return -ENOMEM;
  if ((r = row->open(ctx, key, &sc->src)) < 0) {
    free(sc);
    return r;
  }
  sc->row = row;
  sc->key = key;
  key = NULL;
  sc->next = ctx->sources;
  ctx->sources = sc;
  *out = sc->src;
  return 0;
}

void
bfs_disk_ctx_set_catalog(struct bfs_disk_ctx *ctx, catalog_t *cat)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&ctx->lock);
  ctx->cat = cat;
}

static char *
make_key(const struct catalog_disk *cd, const char *owner)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);

  if (!f)
    return NULL;
  fprintf(f, "%s\n%s\n", owner ? owner : "", cd->status ? cd->status : "");
  for (size_t i = 0; i < cd->chain_len; i++) {
    const struct bfs_file_id *id = cd->chain_id ? &cd->chain_id[i] : NULL;
    fprintf(f, "%s\n%s\n%s\n%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRId64
            "\n", cd->chain[i],
            cd->chain_driver && cd->chain_driver[i] ? cd->chain_driver[i] : "",
            cd->chain_options && cd->chain_options[i] ? cd->chain_options[i]
                                                      : "",
            id ? id->dev : 0, id ? id->ino : 0, id ? id->size : 0,
            id ? id->mtime_ns : 0);
  }
  if (fclose(f) != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

static char *
dup_or_null(const char *s, bool *oom)
{
  char *r = s ? strdup(s) : NULL;
  if (s && !r)
    *oom = true;
  return r;
}

static struct bfs_disk *
disk_new(struct bfs_disk_ctx *ctx, const struct catalog_disk *cd,
         const char *name, char *key, uint64_t hash)
{
  struct bfs_disk *d = calloc(1, sizeof *d);
  size_t n = cd->chain_len;
  bool oom = false;

  if (!d) {
    free(key);
    return NULL;
  }
  pthread_mutex_init(&d->lock, NULL);
  d->ctx = ctx;
  d->refs = 1;
  d->key = key;
  d->hash = hash;
  d->size = cd->virtual_size;
  d->name = dup_or_null(name ? name : cd->image, &oom);
  d->status = dup_or_null(cd->status ? cd->status : "ok", &oom);
  d->loc = calloc(n + 1, sizeof *d->loc);
  d->drv = calloc(n + 1, sizeof *d->drv);
  d->opt = calloc(n + 1, sizeof *d->opt);
  d->id = calloc(n + 1, sizeof *d->id);
  d->layers = calloc(n + 1, sizeof *d->layers);
  if (!d->loc || !d->drv || !d->opt || !d->id || !d->layers)
    oom = true;
  for (size_t i = 0; !oom && i < n; i++) {
    d->n = i + 1;
    d->loc[i] = dup_or_null(cd->chain[i], &oom);
    d->drv[i] = dup_or_null(cd->chain_driver ? cd->chain_driver[i] : NULL,
                            &oom);
    d->opt[i] = dup_or_null(cd->chain_options ? cd->chain_options[i] : NULL,
                            &oom);
    if (cd->chain_id)
      d->id[i] = cd->chain_id[i];
    d->layers[i] = (struct blk_layer){ d->drv[i], d->loc[i], d->opt[i] };
  }
  if (oom) {
    disk_free(d);
    return NULL;
  }
  return d;
}

int
bfs_disk_get(struct bfs_disk_ctx *ctx, const struct catalog_disk *cd,
             const char *owner, const char *name, struct bfs_disk **out)
{
  char *key = make_key(cd, owner);
  struct bfs_disk *d, *fresh;
  uint64_t h;

  *out = NULL;
  if (!key)
    return bfs_error(-ENOMEM, "out of memory");
  h = XXH3_64bits(key, strlen(key));
  pthread_mutex_lock(&ctx->lock);
  for (d = ctx->buckets[h % DISK_BUCKETS]; d; d = d->hnext)
    if (d->hash == h && !strcmp(d->key, key))
      break;
  if (d) {
    d->refs++;
    pthread_mutex_unlock(&ctx->lock);
    free(key);
    *out = d;
    return 0;
  }
  pthread_mutex_unlock(&ctx->lock);

  if (!(fresh = disk_new(ctx, cd, name, key, h)))
    return bfs_error(-ENOMEM, "out of memory");
  pthread_mutex_lock(&ctx->lock);
  for (d = ctx->buckets[h % DISK_BUCKETS]; d; d = d->hnext)
    if (d->hash == h && !strcmp(d->key, fresh->key))
      break;
  if (d)                              /* raced: take the other one */
    d->refs++;
  else {
    fresh->hnext = ctx->buckets[h % DISK_BUCKETS];
    ctx->buckets[h % DISK_BUCKETS] = fresh;
  }
  pthread_mutex_unlock(&ctx->lock);
  if (d)
    disk_free(fresh);
  *out = d ? d : fresh;
  return 0;
}

/* ---- opening a recipe ---- */

struct opener {
  struct bfs_disk *d;
  bool changed;
};

static int
open_layer(struct bfs_disk *d, size_t i, bool *changed, struct blk_io **io)
{
  const char *repo = d->ctx->repo, *rel = d->loc[i];
  const struct bfs_disk_source *row = bfs_disk_source_find(d->drv[i]);
  struct stat st;
  int fd, r, root;

  *io = NULL;
  if (row && row->no_file)          /* not a file: the driver opens it */
    return 0;
  /* beneath the locator's root: the caller's descriptor for the first,
   * the catalog's for other stores (catalog.h) */
  if ((root = catalog_locator_root(d->ctx->cat, d->loc[i], &rel)) < 0)
    return root;
  if (root > 0)
    repo = catalog_root_path(d->ctx->cat, (size_t)root);
  fd = bfs_open_beneath(root > 0 ? catalog_root_fd(d->ctx->cat, (size_t)root)
                                 : d->ctx->repo_fd, repo, rel);
  if (fd < 0) {
    /* a symlink, a vanished or non-regular file where the catalog has an
     * image: the repository changed since the scan */
    if (fd == -ELOOP || fd == -EXDEV || fd == -ENOENT || fd == -EINVAL) {
      *changed = true;
      return bfs_error_prefix(-EIO, "changed since the scan: ");
    }
    return fd;
  }
  if (fstat(fd, &st) < 0) {
    r = bfs_error(-errno, "%s/%s: fstat: %s", repo, d->loc[i],
                  strerror(errno));
    close(fd);
    return r;
  }
  if ((r = bfs_file_id_check(d->loc[i], &d->id[i], &st)) < 0) {
    close(fd);
    *changed = true;
    return bfs_error_prefix(-EIO, "changed since the scan: ");
  }
  return blk_io_fd(fd, d->loc[i], io);
}

static int
opener(void *opaque, const struct blk_layer *layer, struct blk_io **io)
{
  struct opener *o = opaque;
  size_t i = (size_t)(layer - o->d->layers);

  if (layer < o->d->layers || i >= o->d->n)
    return bfs_error(-EINVAL, "%s: not a layer of %s", layer->locator,
                     o->d->name);
  return open_layer(o->d, i, &o->changed, io);
}

static int
open_stack(struct bfs_disk *d, bool *changed)        /* d->lock held */
{
  struct blk_recipe rc = { .n = d->n, .layers = d->layers,
                           .cache = d->ctx->opts.cache,
                           .key = d->ctx->opts.key };
  struct opener o = { .d = d };
  int r = 0;               /* gcc -fsanitize: maybe-uninitialized */

  if (!rc.cache.pool) {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&d->ctx->lock);
    /* no pool (no threads to spare) only slows reads down */
    struct bfs_pool *p = d->ctx->pool;
    if (!p && bfs_pool_new(0, &p) < 0)
      bfs_log(BFS_LOG_WARN, "%s: reading with one thread: %s", d->name,
              bfs_last_error());
    __atomic_store_n(&d->ctx->pool, p, __ATOMIC_RELEASE);
    rc.cache.pool = p;
  }
  if (strcmp(d->status, "ok"))
    return bfs_error(-EIO, "%s", d->status);
  for (size_t i = 0; i < d->n; i++) {
    void *src;
    if (!d->drv[i])
      return bfs_error(-EIO, "%s: layer %s has no driver in the catalog",
                       d->name, d->loc[i]);
    if ((r = source_get(d->ctx, &d->layers[i], &src)) < 0)
      return bfs_error_prefix(r, "%s: ", d->name);
    if (src && rc.ctx && src != rc.ctx)
      return bfs_error(-EINVAL, "%s: layers of two different sources in "
                       "one recipe", d->name);
    if (src)
      rc.ctx = src;
  }
  r = blk_open_recipe(&rc, opener, &o, &d->blk);
  /* a layer that is no file and is gone (an RBD snapshot removed) is a
   * changed repository too */
  for (size_t i = 0; r == -ENOENT && i < d->n; i++) {
    const struct bfs_disk_source *row = bfs_disk_source_find(d->drv[i]);
    if (row && row->no_file)
      o.changed = true;
  }
  *changed = o.changed;
  if (r < 0)
    return r;
  if (d->blk->size != d->size)
    bfs_log(BFS_LOG_WARN, "%s: virtual size %" PRIu64 " differs from the "
            "catalog's %" PRIu64, d->name, d->blk->size, d->size);
  return 0;
}

int
bfs_disk_acquire(struct bfs_disk *d, struct bfs_blk **out, bool *changed)
{
  struct bfs_disk_ctx *ctx = d->ctx;
  bool was_idle = false, ch = false;
  int r = 0;

  *out = NULL;
  pthread_mutex_lock(&d->lock);
  if (!d->blk) {
    bfs_clear_error();
    r = open_stack(d, &ch);
  }
  if (r == 0) {
    d->users++;
    pthread_mutex_lock(&ctx->lock);
    if (d->idle) {
      idle_remove(ctx, d);
      was_idle = true;
    }
    pthread_mutex_unlock(&ctx->lock);
    *out = d->blk;
  }
  pthread_mutex_unlock(&d->lock);
  if (was_idle)
    bfs_disk_put(d);                  /* the idle list's reference */
  if (changed)
    *changed = ch;
  return r;
}

void
bfs_disk_release(struct bfs_disk *d)
{
  struct bfs_disk_ctx *ctx = d->ctx;

  pthread_mutex_lock(&d->lock);
  if (--d->users == 0 && d->blk) {
    pthread_mutex_lock(&ctx->lock);
    if (!d->idle) {
      d->refs++;
      d->idle = true;
      d->idle_prev = ctx->idle_tail;
      d->idle_next = NULL;
      *(ctx->idle_tail ? &ctx->idle_tail->idle_next : &ctx->idle_head) = d;
      ctx->idle_tail = d;
      ctx->nidle++;
    }
    pthread_mutex_unlock(&ctx->lock);
  }
  pthread_mutex_unlock(&d->lock);

  for (;;) {
    pthread_mutex_lock(&ctx->lock);
    struct bfs_disk *old = ctx->nidle > ctx->opts.idle_max ? ctx->idle_head
                                                           : NULL;
    if (old)
      idle_remove(ctx, old);
    pthread_mutex_unlock(&ctx->lock);
    if (!old)
      break;
    pthread_mutex_lock(&old->lock);
    if (old->users == 0 && old->blk && !old->idle) {
      bfs_blk_close(old->blk);
      old->blk = NULL;
    }
    pthread_mutex_unlock(&old->lock);
    bfs_disk_put(old);
  }
}

/* ---- a borrowed stack as a bfs_blk of its own ---- */

struct borrow {
  struct bfs_blk b;
  struct bfs_disk *d;
  struct bfs_blk *s;
};

static int
bw_pread(struct bfs_blk *b, void *buf, size_t len, uint64_t off)
{
  return bfs_blk_pread(((struct borrow *)b)->s, buf, len, off);
}

static int
bw_status(struct bfs_blk *b, uint64_t off, uint64_t max,
          struct bfs_blk_status *st)
{
  return bfs_blk_block_status(((struct borrow *)b)->s, off, max, st);
}

static void
bw_prefetch(struct bfs_blk *b, uint64_t off, uint64_t len)
{
  bfs_blk_prefetch(((struct borrow *)b)->s, off, len);
}

static void
bw_close(struct bfs_blk *b)
{
  struct borrow *w = (struct borrow *)b;
  bfs_disk_release(w->d);
  bfs_disk_put(w->d);
  free(w);
}

static const struct bfs_blk_ops borrow_ops = {
  .name = "borrow", .pread = bw_pread, .block_status = bw_status,
  .prefetch = bw_prefetch, .close = bw_close,
};

int
bfs_disk_borrow(struct bfs_disk *d, struct bfs_blk **out, bool *changed)
{
  struct borrow *w = calloc(1, sizeof *w);
  int r;

  *out = NULL;
  if (!w)
    return bfs_error(-ENOMEM, "out of memory");
  if ((r = bfs_disk_acquire(d, &w->s, changed)) < 0) {
    free(w);
    return r;
  }
  w->d = bfs_disk_ref(d);
  w->b.ops = &borrow_ops;
  w->b.size = w->s->size;
  w->b.name = d->name;
  w->b.info = w->s->info;
  w->b.info.is_filter = true;
  *out = &w->b;
  return 0;
}

/* ---- by name ---- */

int
bfs_disk_open(struct bfs_disk_ctx *ctx, const char *vm, const char *time,
              const char *disk, struct bfs_disk **out)
{
  struct catalog_backup *b = NULL;
  struct catalog_disk *cd = NULL;
  CLEANUP_FREE char *name = NULL;
  struct bfs_blk *blk;
  size_t n = 0, i;
  bool changed;
  int r;

  *out = NULL;
  if ((r = catalog_backups(ctx->cat, vm, &b, &n)) < 0)
    return r;
  if ((r = catalog_find_backup(b, n, vm, time)) < 0)
    goto out;
  i = (size_t)r;
  for (size_t k = 0; k < b[i].ndisks && !cd; k++)
    if (!strcmp(b[i].disks[k].name, disk))
      cd = &b[i].disks[k];
  if (!cd) {                       /* say which disks there are */
    char list[512] = "";
    size_t len = 0;
    for (size_t k = 0; k < b[i].ndisks && len < sizeof list; k++)
      len += snprintf(list + len, sizeof list - len, "%s%s", k ? ", " : "",
                      b[i].disks[k].name);
    r = bfs_error(-ENOENT, "%s@%s: no disk named '%s' (its disks: %s)", vm,
                  b[i].name, disk, b[i].ndisks ? list : "none");
    goto out;
  }
  if (asprintf(&name, "%s@%s/%s", vm, b[i].name, disk) < 0) {
    name = NULL;
    r = bfs_error(-ENOMEM, "out of memory");
    goto out;
  }
  if ((r = bfs_disk_get(ctx, cd, NULL, name, out)) < 0)
    goto out;
  if ((r = bfs_disk_acquire(*out, &blk, &changed)) < 0) {
    bfs_error_prefix(r, "%s: ", name);
    bfs_disk_put(*out);
    *out = NULL;
  }
out:
  catalog_backups_free(b, n);
  return r;
}

void
bfs_disk_close(struct bfs_disk *d)
{
  if (!d)
    return;
  bfs_disk_release(d);
  bfs_disk_put(d);
}

struct bfs_blk *
bfs_disk_blk(struct bfs_disk *d)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE(&d->lock);
  return d->blk;
}

struct bfs_pool *
bfs_disk_pool(const struct bfs_disk *d)
{
  return __atomic_load_n(&d->ctx->pool, __ATOMIC_ACQUIRE);
}

const char *bfs_disk_name(const struct bfs_disk *d) { return d->name; }
uint64_t bfs_disk_size(const struct bfs_disk *d) { return d->size; }
size_t bfs_disk_layers(const struct bfs_disk *d) { return d->n; }

const char *
bfs_disk_layer_locator(const struct bfs_disk *d, size_t i)
{
  return i < d->n ? d->loc[i] : NULL;
}

const char *
bfs_disk_layer_driver(const struct bfs_disk *d, size_t i)
{
  return i < d->n ? d->drv[i] : NULL;
}

const char *
bfs_disk_repo(const struct bfs_disk *d)
{
  return d->ctx->repo;
}

int
bfs_disk_inspect(struct bfs_disk *d, size_t i, struct bfs_blk **out)
{
  struct blk_io *io;
  bool changed = false;
  blk_open_fn fn;
  int r;

  *out = NULL;
  if (i >= d->n)
    return bfs_error(-EINVAL, "%s: no layer %zu", d->name, i);
  if (!(fn = blk_driver(d->drv[i])))
    return bfs_error(-EIO, "%s: layer %s has no driver in the catalog",
                     d->name, d->loc[i]);
  if (bfs_disk_source_find(d->drv[i]))   /* needs its source: the stack */
    return bfs_error(-ENOTSUP, "%s: layer %s (%s) is only read as part of "
                     "its disk", d->name, d->loc[i], d->drv[i]);
  if ((r = open_layer(d, i, &changed, &io)) < 0)
    return r;
  return fn(io, d->opt[i], NULL, out);
}
