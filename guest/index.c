/* index.c — guest file listings: the stored format, zstd-compressed.
 *
 * Where listings are stored is catalog/'s business (catalog/index.h: one
 * row per vm/time in `<catalog>.index.sqlite`); this file owns what they
 * are.  data is one zstd frame of records, each a run of NUL-terminated fields:
 *   path mode uid gid size mtime mtime_nsec atime ctime ino nlink flags link
 * (numbers in decimal, mode in octal, flags "e" for a virtual error file),
 * written in listing order with every directory before its contents, so
 * loading appends each name to its parent's listing in one pass.
 */
#include "guest/index.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "common/cleanup.h"
#include "blk/luks.h"
#include "catalog/catalog.h"
#include "catalog/index.h"
#include "common/error.h"
#include "guest/guest.h"

#define NFIELDS 13
#define MAX_BLOB ((size_t)1 << 32)   /* decompressed listing cap */

/* ---- serialisation ------------------------------------------------- */

struct buf {
  char *p;
  size_t len, cap;
};

static int
buf_add(struct buf *b, const char *s, size_t n)
{
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 1 << 16;
    while (nc < b->len + n + 1) nc *= 2;
    char *p = realloc(b->p, nc);
    if (!p)
      return -ENOMEM;
    b->p = p;
    b->cap = nc;
  }
  memcpy(b->p + b->len, s, n);
  b->p[b->len + n] = '\0';
  b->len += n + 1;
  return 0;
}

static int
put_entry(struct buf *b, const struct gc_entry *e)
{
  char f[10][32];
  const struct stat *st = &e->st;
  snprintf(f[0], 32, "%o", (unsigned)st->st_mode);
  snprintf(f[1], 32, "%u", (unsigned)st->st_uid);
  snprintf(f[2], 32, "%u", (unsigned)st->st_gid);
  snprintf(f[3], 32, "%" PRId64, (int64_t)st->st_size);
  snprintf(f[4], 32, "%" PRId64, (int64_t)st->st_mtim.tv_sec);
  snprintf(f[5], 32, "%ld", (long)st->st_mtim.tv_nsec);
  snprintf(f[6], 32, "%" PRId64, (int64_t)st->st_atim.tv_sec);
  snprintf(f[7], 32, "%" PRId64, (int64_t)st->st_ctim.tv_sec);
  snprintf(f[8], 32, "%" PRIu64, (uint64_t)st->st_ino);
  snprintf(f[9], 32, "%lu", (unsigned long)st->st_nlink);
  int r = buf_add(b, e->path, strlen(e->path));
  for (int i = 0; r == 0 && i < 10; i++)
    r = buf_add(b, f[i], strlen(f[i]));
  if (r == 0)
    r = buf_add(b, e->error_file ? "e" : "", e->error_file ? 1 : 0);
  if (r == 0)
    r = buf_add(b, e->link ? e->link : "", e->link ? strlen(e->link) : 0);
  return r;
}

static int
put_tree(struct buf *b, struct gcache *c, const char *dir, uint64_t *n)
{
  struct gc_entry *d = gc_find(c, dir);
  if (!d || !d->listed)
    return 0;
  for (size_t i = 0; i < d->nkids; i++) {
    CLEANUP_FREE char *p = gc_join(dir, d->kids[i]);
    struct gc_entry *e = p ? gc_find(c, p) : NULL;
    if (!p)
      return -ENOMEM;
    if (!e || !e->st.st_mode)
      continue;
    int r = put_entry(b, e);
    if (r < 0)
      return r;
    (*n)++;
    if (S_ISDIR(e->st.st_mode) && (r = put_tree(b, c, p, n)) < 0)
      return r;
  }
  return 0;
}

typedef int (*record_fn)(void *opaque, const char *path, const struct stat *st,
                         bool error_file, const char *link);

static int
parse_records(const char *p, size_t len, record_fn fn, void *opaque)
{
  size_t pos = 0;
  while (pos < len) {
    const char *f[NFIELDS];
    for (int i = 0; i < NFIELDS; i++) {
      const char *z = pos < len ? memchr(p + pos, '\0', len - pos) : NULL;
      if (!z)
        return bfs_error(-EIO, "file index: truncated record");
      f[i] = p + pos;
      pos = z - p + 1;
    }
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_mode = strtoul(f[1], NULL, 8);
    st.st_uid = strtoul(f[2], NULL, 10);
    st.st_gid = strtoul(f[3], NULL, 10);
    st.st_size = strtoll(f[4], NULL, 10);
    st.st_mtim.tv_sec = strtoll(f[5], NULL, 10);
    st.st_mtim.tv_nsec = strtol(f[6], NULL, 10);
    st.st_atim.tv_sec = strtoll(f[7], NULL, 10);
    st.st_ctim.tv_sec = strtoll(f[8], NULL, 10);
    st.st_ino = strtoull(f[9], NULL, 10);
    st.st_nlink = strtoul(f[10], NULL, 10);
    st.st_blksize = 4096;
    st.st_blocks = (st.st_size + 511) / 512;
    if (f[0][0] != '/' || !st.st_mode)
      return bfs_error(-EIO, "file index: bad record");
    int r = fn(opaque, f[0], &st, f[11][0] == 'e',
               f[12][0] || S_ISLNK(st.st_mode) ? f[12] : NULL);
    if (r)
      return r;
  }
  return 0;
}

static int
decompress(const void *z, size_t zl, char **out, size_t *len)
{
  unsigned long long n = ZSTD_getFrameContentSize(z, zl);
  if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN ||
      n > MAX_BLOB)
    return bfs_error(-EIO, "file index: bad zstd frame");
  char *p = malloc(n ? n : 1);
  if (!p)
    return -ENOMEM;
  size_t got = ZSTD_decompress(p, n, z, zl);
  if (ZSTD_isError(got) || got != n) {
    free(p);
    return bfs_error(-EIO, "file index: zstd: %s",
                     ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
  }
  *out = p;
  *len = n;
  return 0;
}

int
index_save(const char *dbpath, const char *vm, const char *time_name,
           struct gcache *c, uint64_t *nfiles)
{
  struct buf b = { 0 };
  uint64_t n = 0;
  int r = put_tree(&b, c, "/", &n);
  if (r < 0) {
    free(b.p);
    return bfs_error(r, "%s/%s: out of memory", vm, time_name);
  }
  size_t bound = ZSTD_compressBound(b.len);
  CLEANUP_FREE char *z = malloc(bound ? bound : 1);
  size_t zl = z ? ZSTD_compress(z, bound, b.p ? b.p : "", b.len, 3) : 0;
  free(b.p);
  if (!z || ZSTD_isError(zl))
    return bfs_error(-EIO, "%s/%s: zstd compression failed", vm, time_name);
  r = catalog_index_put(dbpath, vm, time_name, z, zl, n);
  if (r == 0 && nfiles)
    *nfiles = n;
  return r;
}

static int
load_record(void *opaque, const char *path, const struct stat *st,
            bool error_file, const char *link)
{
  struct gcache *c = opaque;
  struct gc_entry *e = gc_get(c, path);
  CLEANUP_FREE char *parent = gc_parent(path);
  struct gc_entry *pe = parent ? gc_find(c, parent) : NULL;
  if (!e || !parent)
    return -ENOMEM;
  if (!pe || !pe->listed)
    return bfs_error(-EIO, "file index: %s before its directory", path);
  e->st = *st;
  e->error_file = error_file;
  free(e->link);
  e->link = link ? strdup(link) : NULL;
  if (S_ISDIR(st->st_mode))
    e->listed = true;
  return gc_add_kid(pe, gc_basename(path));
}

int
index_load(const char *dbpath, const char *vm, const char *time_name,
           struct gcache *c)
{
  CLEANUP_FREE void *z = NULL;
  CLEANUP_FREE char *data = NULL;
  size_t zl = 0, len = 0;
  int r = catalog_index_get(dbpath, vm, time_name, &z, &zl);
  if (r == 0)
    r = decompress(z, zl, &data, &len);
  if (r < 0)
    return r;

  gc_clear(c);
  struct gc_entry *root = gc_get(c, "/");
  if (!root)
    return -ENOMEM;
  root->st.st_mode = S_IFDIR | 0755;
  root->st.st_nlink = 2;
  root->st.st_ino = 1;
  root->listed = true;
  c->complete = true;   /* no cap while loading, nothing ever evicted */
  r = parse_records(data, len, load_record, c);
  if (r) {
    gc_clear(c);
    return r < 0 ? r : -EIO;
  }
  return 0;
}

struct foreach_ctx {
  index_visit_fn fn;
  void *opaque;
  const char *vm, *time;
};

static int
foreach_record(void *opaque, const char *path, const struct stat *st,
               bool error_file, const char *link)
{
  struct foreach_ctx *x = opaque;
  if (error_file)
    return 0;
  return x->fn(x->opaque, x->vm, x->time, path, st, link);
}

static int
foreach_blob(void *opaque, const char *vm, const char *time_name,
             const void *z, size_t zl)
{
  struct foreach_ctx x = *(struct foreach_ctx *)opaque;
  char *data;
  size_t len;
  x.vm = vm;
  x.time = time_name;
  int r = decompress(z, zl, &data, &len);
  if (r == 0) {
    r = parse_records(data, len, foreach_record, &x);
    free(data);
  }
  return r;
}

int
index_foreach(const char *dbpath, const char *vm, index_visit_fn fn,
              void *opaque)
{
  struct foreach_ctx x = { fn, opaque, NULL, NULL };
  return catalog_index_foreach(dbpath, vm, foreach_blob, &x);
}

int
index_foreach_at(const char *dbpath, const char *vm, const char *time_name,
                 index_visit_fn fn, void *opaque)
{
  CLEANUP_FREE void *z = NULL;
  size_t zl = 0;
  struct foreach_ctx x = { fn, opaque, NULL, NULL };
  int r = catalog_index_get(dbpath, vm, time_name, &z, &zl);
  return r < 0 ? r : foreach_blob(&x, vm, time_name, z, zl);
}

int
index_prune(const char *dbpath, const char *vm, char *const *keep,
            size_t nkeep, unsigned *dropped)
{
  return catalog_index_prune(dbpath, vm, keep, nkeep, dropped);
}

char *
index_db_open_path(const char *cmd, const char *index, const char *repo,
                   const char *catalog)
{
  char *db = index ? strdup(index) : index_default_path(repo, catalog);
  if (!db)
    fprintf(stderr, "backupfs: %s: %s\n", cmd,
            index ? strerror(ENOMEM) : bfs_last_error());
  return db;
}

int
index_key_check(const char *cmd, const char *key_file)
{
  struct blk_key *key = NULL;
  if (key_file && blk_key_from_file(key_file, &key) < 0) {
    fprintf(stderr, "backupfs: %s: --key-file %s: %s\n", cmd, key_file,
            bfs_last_error());
    return 2;
  }
  blk_key_free(key);
  return 0;
}

char *
index_default_path(const char *repo, const char *catalog_db)
{
  char *p = NULL;
  if (catalog_db)
    return guest_index_db_path(catalog_db);
  /* the catalog names its default file; the index sits next to it */
  catalog_t *cat = NULL;
  struct catalog_opts opts = { 0 };
  if (catalog_open(repo, &opts, &cat) < 0)
    return NULL;
  p = guest_index_db_path(catalog_path(cat));
  catalog_close(cat);
  return p;
}

char *
guest_index_db_path(const char *catalog_db)
{
  return catalog_index_path(catalog_db);
}
