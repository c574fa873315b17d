/* scan.c — walk a repository and build the catalog's model of it.
 *
 * One scan:
 *   1. load the file cache (path -> size, mtime, inode, header) from SQLite;
 *   2. walk: every directory, top down, is offered to the layouts of
 *      layout.c's table in order (layout.h); a layout that claims one adds
 *      its backups and the walk does not descend below it.  Only
 *      lstat-level information is used; symlinks are never followed and
 *      hidden entries (".name") are skipped.  A file whose size, mtime and
 *      inode match the cache is not reopened; a directory whose dev, inode,
 *      mtime and ctime match its cached listing is not read again (only
 *      listings older than their directory's last change by more than
 *      LISTING_SETTLE_NS are trusted: a change within the same timestamp
 *      tick would leave the mtime as it was).  Then each layout's finish
 *      step (KBOSS groups its images across directories);
 *   3. resolve every disk's chain (resolve.c) and its status, name the
 *      points in time (YYYY-MM-DDTHHMMSSZ, -1, -2 within one second);
 *   4. hash the model: if it is what the catalog already holds, only the
 *      file cache is touched; otherwise the model is rewritten.  All of it
 *      in one transaction (db_store).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "blk/blk.h"
#include "blk/qcow2.h"
#include "blk/qcow2-stat.h"
#include "common/log.h"
#include "common/beneath.h"

/* bump when probe() records a new fact about files (2: compression from
 * the clusters present): cached headers of older probes are read again */
#define SCAN_PROBE_VERSION "2"

/* a directory changed less than this before its listing was read may
 * have changed again within the same timestamp tick: read it again */
#define LISTING_SETTLE_NS 2000000000ll

static double
now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
progress(struct scan *s, bool final)
{
  if (!s->cat->progress) return;
  double t = now();
  if (!final && t - s->last_progress < 0.2) return;
  s->last_progress = t;
  if (final)
    fprintf(stderr, "\r\033[K");
  else
    fprintf(stderr, "\r\033[Kscanning: %u files, %zu backups, %u headers read",
            s->walked, s->nbackups, s->reopened);
}

/* ---- the file cache ---- */

static void
clear_header(struct scan_file *f)
{
  free(f->backing); free(f->error); free(f->backing_path);
  free(f->info); free(f->resolve_error);
  f->resolve_error = f->backing = NULL;
  f->decided = f->format = f->compression = f->backing_format = NULL;
  f->error = f->backing_path = f->info = NULL;
  f->vsize = 0;
  f->encrypted = f->external = false;
}

/* The format of a file nothing names: qcow2 by its magic, else raw (the
 * only place the scan looks at a file's bytes to decide). */
static const char *
sniff(struct blk_io *io)
{
  unsigned char m[4];
  if (blk_io_size(io) < sizeof m || blk_io_read(io, m, sizeof m, 0, "magic") < 0)
    return "raw";
  return ((uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 |
          m[3]) == QCOW2_MAGIC ? "qcow2" : "raw";
}

static bool
has_qcow2_magic(struct blk_io *io)
{
  return !strcmp(sniff(io), "qcow2");
}

/* Open f's header through blk as fmt ("qcow2", "raw"), or sniffed when fmt
 * is NULL, with no backing (inspection only).  The decision is stored with
 * the file (files.decided) and its result in files.format, which becomes
 * the layer's driver in every recipe naming the file: one file, one
 * format, decided here. */
static void
probe(struct scan *s, struct scan_file *f, const char *fmt)
{
  struct blk_io *io = NULL;
  struct bfs_blk *b = NULL;
  int fd, r;

  s->reopened++;
  f->decided = scan_intern(s, fmt ? fmt : "probe");
  bfs_clear_error();
  const char *root, *rel;
  int dfd = cat_root_at(s->cat, s->repo_fd, f->path, &rel, &root);
  if ((fd = bfs_open_beneath(dfd, root, rel)) < 0 ||
      blk_io_fd(fd, f->path, &io) < 0) {
    f->error = cat_xstrdup(bfs_last_error());
    f->format = scan_intern(s, fmt);
    return;
  }
  const char *drv = fmt ? fmt : sniff(io);
  /* a broken qcow2 is still a qcow2; without the magic it is nothing */
  if (!strcmp(drv, "qcow2") && !has_qcow2_magic(io)) {
    f->error = cat_xasprintf("%s: not a qcow2 image", f->path);
    blk_io_close(io);
    return;
  }
  if ((r = blk_driver(drv)(io, NULL, NULL, &b)) < 0) {
    f->error = cat_xstrdup(bfs_last_error());
    f->format = scan_intern(s, drv);
    return;
  }
  const struct bfs_blk_info *in = bfs_blk_info(b);
  bool q = !strcmp(drv, "qcow2");
  f->format = scan_intern(s, blk_driver_name(drv));
  /* the clusters present, not the header's type (qcow2-stat.h) */
  const char *comp = "none";
  if (q && blk_qcow2_compression(b, &comp) < 0) {
    bfs_log(BFS_LOG_WARN, "%s", bfs_last_error());
    comp = "unknown";
  }
  f->compression = scan_intern(s, comp);
  f->vsize = in->virtual_size;
  f->encrypted = in->encrypted;
  /* LUKS reads with a key (catalog_opts.luks_key says whether there is
   * one); the legacy AES method never */
  if (in->encrypted && (!in->encryption || strcmp(in->encryption, "luks")))
    f->error = cat_xasprintf("%s: encrypted qcow2 (legacy AES) is not "
                             "supported", f->path);
  f->external = in->external_data;
  f->backing = in->backing_file ? cat_xstrdup(in->backing_file) : NULL;
  f->backing_format = scan_intern(s, in->backing_format);
  bfs_blk_close(b);
}

const char *
scan_intern(struct scan *s, const char *str)
{
  if (!str)
    return NULL;
  char *have = cat_map_get(&s->strings, str);
  if (!have) {
    have = cat_xstrdup(str);
    CAT_GROW(s->stringv, s->strings_cap, s->nstrings);
    s->stringv[s->nstrings++] = have;
    cat_map_put(&s->strings, have, have);
  }
  return have;
}

struct scan_file *
scan_file_find(const struct scan *s, const char *rel)
{
  BFS_HTAB_FOR_HASH(&s->files, l, bfs_hash_str(rel)) {
    struct scan_file *f = bfs_container_of(l, struct scan_file, h);
    if (!strcmp(f->path, rel))
      return f;
  }
  return NULL;
}

struct scan_listing *
scan_listing_new(const char *path, size_t path_len, const char *files,
                 size_t files_len, const char *dirs, size_t dirs_len)
{
  if (path_len > UINT32_MAX / 4 || files_len > UINT32_MAX / 4 ||
      dirs_len > UINT32_MAX / 4)
    return NULL;
  struct scan_listing *l = cat_xcalloc(1, sizeof *l + path_len + 1 +
                                       files_len + dirs_len + 1);
  l->path_len = (uint32_t)path_len;
  l->files_len = (uint32_t)files_len;
  l->dirs_len = (uint32_t)dirs_len;
  memcpy(l->path, path, path_len);
  if (files_len) memcpy(SCAN_LISTING_FILES(l), files, files_len);
  if (dirs_len) memcpy(SCAN_LISTING_DIRS(l), dirs, dirs_len);
  return l;
}

void
scan_listing_add(struct scan *s, struct scan_listing *l)
{
  bfs_htab_insert(&s->dirs, &l->h, bfs_hash_str(l->path));
}

static struct scan_listing *
listing_find(const struct scan *s, const char *rel)
{
  BFS_HTAB_FOR_HASH(&s->dirs, h, bfs_hash_str(rel)) {
    struct scan_listing *l = bfs_container_of(h, struct scan_listing, h);
    if (!strcmp(l->path, rel))
      return l;
  }
  return NULL;
}


void
scan_file_add(struct scan *s, struct scan_file *f)
{
  CAT_GROW(s->filev, s->files_cap, s->nfiles);
  s->filev[s->nfiles++] = f;
  bfs_htab_insert(&s->files, &f->h, bfs_hash_str(f->path));
}

struct scan_file *
scan_file_get(struct scan *s, const char *rel, int kind, const char *fmt)
{
  struct scan_file *f = scan_file_find(s, rel);
  struct stat st;

  if (f && f->seen)
    return f->kind == kind ? f : NULL;
  const char *in;
  int dfd = cat_root_at(s->cat, s->repo_fd, rel, &in, NULL);
  if (dfd < 0 || fstatat(dfd, in, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
      !S_ISREG(st.st_mode))
    return NULL;
  s->walked++;
  progress(s, false);

  int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  uint64_t alloc = (uint64_t)st.st_blocks * 512;
  /* unchanged, and opened as what is asked now (a probe request takes
   * any earlier decision) */
  if (f && f->kind == kind && f->size == (uint64_t)st.st_size &&
      f->mtime_ns == mtime && f->ino == (uint64_t)st.st_ino &&
      f->dev == (uint64_t)st.st_dev &&
      (kind != FILE_IMAGE || !fmt ||
       (f->decided && !strcmp(f->decided, fmt)))) {
    f->seen = true;
    if (f->alloc != alloc) { f->alloc = alloc; f->dirty = true; }
    return f;
  }
  if (!f) {
    f = cat_xcalloc(1, sizeof *f);
    f->path = cat_xstrdup(rel);
    scan_file_add(s, f);
  }
  clear_header(f);
  f->kind = kind;
  f->size = st.st_size;
  f->alloc = alloc;
  f->ino = st.st_ino;
  f->dev = st.st_dev;
  f->mtime_ns = mtime;
  f->seen = f->dirty = true;
  if (kind == FILE_IMAGE)
    probe(s, f, fmt);
  return f;
}

/* ---- the model ---- */

int
scan_fail(struct scan *s, int r)
{
  if (r < 0 && s->error == 0)
    s->error = r;
  return r;
}

struct model_backup *
scan_add_backup(struct scan *s, const char *vm, int64_t time,
                const char *source, const char *key)
{
  CAT_GROW(s->backups, s->backups_cap, s->nbackups);
  struct model_backup *b = &s->backups[s->nbackups++];
  memset(b, 0, sizeof *b);
  b->vm = scan_intern(s, vm);
  b->time = time;
  b->source = source;
  b->key = cat_xstrdup(key);
  return b;
}

void
scan_add_disk(struct model_backup *b, const char *name, const char *top,
              const char *volume, int order)
{
  CAT_GROW(b->disks, b->cap, b->ndisks);
  struct model_disk *d = &b->disks[b->ndisks++];
  memset(d, 0, sizeof *d);
  d->name = cat_xstrdup(name);
  d->top = cat_xstrdup(top);
  d->volume = volume ? cat_xstrdup(volume) : NULL;
  d->order = order;
}

void
scan_add_disk_recipe(struct scan *s, struct model_backup *b, const char *name,
                     const char *volume, int order,
                     const struct scan_layer *layers, size_t n,
                     uint64_t vsize, uint64_t alloc, const char *format,
                     const char *compression, const char *status)
{
  scan_add_disk(b, name, n ? layers[0].locator : "", volume, order);
  struct model_disk *d = &b->disks[b->ndisks - 1];
  d->preset = true;
  d->chain = cat_xcalloc(n ? n : 1, sizeof *d->chain);
  d->drivers = cat_xcalloc(n ? n : 1, sizeof *d->drivers);
  d->options = cat_xcalloc(n ? n : 1, sizeof *d->options);
  for (size_t i = 0; i < n; i++) {
    d->chain[i] = scan_intern(s, layers[i].locator);
    d->drivers[i] = scan_intern(s, layers[i].driver);
    d->options[i] = layers[i].options && layers[i].options[0]
                  ? cat_xstrdup(layers[i].options) : NULL;
  }
  d->chain_len = n;
  d->vsize = vsize;
  d->alloc = alloc;
  d->format = scan_intern(s, format);
  d->compression = scan_intern(s, compression);
  d->status = cat_xstrdup(status ? status
                          : n ? "ok" : "no layers: nothing to read");
}

static void
free_backup(struct model_backup *b)
{
  for (size_t j = 0; j < b->ndisks; j++) {
    struct model_disk *d = &b->disks[j];
    free(d->name); free(d->top); free(d->volume); free(d->status);
    for (size_t k = 0; d->options && k < d->chain_len; k++)
      free(d->options[k]);
    free(d->chain);
    free(d->drivers);
    free(d->options);

  }
  free(b->disks); free(b->key); free(b->domain_xml);
  free(b->extra); free(b->status);
}

void
scan_drop_backup(struct scan *s, size_t i)
{
  free_backup(&s->backups[i]);
  memmove(&s->backups[i], &s->backups[i + 1],
          (s->nbackups - i - 1) * sizeof *s->backups);
  s->nbackups--;
}

static void
free_model(struct scan *s)
{
  for (size_t i = 0; i < s->nbackups; i++)
    free_backup(&s->backups[i]);
  free(s->backups);
  for (size_t i = 0; i < s->nfiles; i++) {
    clear_header(s->filev[i]);
    free(s->filev[i]->path);
    free(s->filev[i]);
  }
  free(s->filev);
  bfs_htab_free(&s->files);
  struct bfs_htab_iter it;
  bfs_htab_iter_init(&it, &s->dirs);
  for (struct bfs_hlink *h; (h = bfs_htab_iter_next(&it)); )
    free(bfs_container_of(h, struct scan_listing, h));
  bfs_htab_free(&s->dirs);
  for (size_t i = 0; i < s->nstrings; i++)
    free(s->stringv[i]);
  free(s->stringv);
  cat_map_free(&s->strings);
}

/* ---- the walk ---- */

struct names { char **v; size_t n, cap; };

static void
names_free(struct names *n)
{
  for (size_t i = 0; i < n->n; i++) free(n->v[i]);
  free(n->v);
  memset(n, 0, sizeof *n);
}

static int
cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* rel is a FUSE mount point or lies below one */
static bool
in_fuse_mount(const struct scan *s, const char *rel)
{
  for (size_t i = 0; i < s->nfuse; i++) {
    size_t l = strlen(s->fuse_mounts[i]);
    if (!strncmp(rel, s->fuse_mounts[i], l) &&
        (rel[l] == '/' || rel[l] == '\0'))
      return true;
  }
  return false;
}

static int64_t
ts_ns(struct timespec t)
{
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int64_t
wall_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts_ns(ts);
}

/* names "a/b/" of a listing into v */
static void
names_unpack(struct names *v, const char *p, size_t len)
{
  for (const char *end = p + len, *slash; p < end; p = slash + 1) {
    if (!(slash = memchr(p, '/', (size_t)(end - p))))
      break;
    CAT_GROW(v->v, v->cap, v->n);
    v->v[v->n++] = cat_xstrndup(p, (size_t)(slash - p));
  }
}

static char *
names_pack(const struct names *v, size_t *len)
{
  size_t n = 0;
  for (size_t i = 0; i < v->n; i++)
    n += strlen(v->v[i]) + 1;
  char *r = cat_xmalloc(n + 1), *p = r;
  for (size_t i = 0; i < v->n; i++) {
    size_t l = strlen(v->v[i]);
    memcpy(p, v->v[i], l);
    p[l] = '/';
    p += l + 1;
  }
  *p = '\0';
  *len = n;
  return r;
}

/* the cached listing of rel when its directory (st) has not changed */
static bool
listing_reuse(struct scan *s, const char *rel, const struct stat *st,
              struct names *files, struct names *dirs)
{
  struct scan_listing *l = listing_find(s, rel);
  if (!l || l->dev != (uint64_t)st->st_dev || l->ino != (uint64_t)st->st_ino ||
      l->mtime_ns != ts_ns(st->st_mtim) || l->ctime_ns != ts_ns(st->st_ctim) ||
      l->mtime_ns > l->listed_ns - LISTING_SETTLE_NS ||
      l->ctime_ns > l->listed_ns - LISTING_SETTLE_NS)
    return false;
  l->seen = true;
  if (files) names_unpack(files, SCAN_LISTING_FILES(l), l->files_len);
  if (dirs) names_unpack(dirs, SCAN_LISTING_DIRS(l), l->dirs_len);
  return true;
}

/* remember what list_dir read (both lists complete) */
static void
listing_keep(struct scan *s, const char *rel, const struct stat *st,
             int64_t listed, const struct names *files,
             const struct names *dirs)
{
  struct scan_listing *old = listing_find(s, rel);
  size_t flen, dlen;
  CLEANUP_FREE char *f = names_pack(files, &flen);
  CLEANUP_FREE char *d = names_pack(dirs, &dlen);
  struct scan_listing *l = scan_listing_new(rel, strlen(rel), f, flen, d,
                                            dlen);
  if (!l) {                       /* too large to keep: read every time */
    if (old) old->seen = false;
    return;
  }
  if (old) {
    l->in_db = old->in_db;
    bfs_htab_remove(&s->dirs, &old->h);
    free(old);
  }
  l->dev = st->st_dev;
  l->ino = st->st_ino;
  l->mtime_ns = ts_ns(st->st_mtim);
  l->ctime_ns = ts_ns(st->st_ctim);
  l->listed_ns = listed;
  l->seen = l->dirty = true;
  scan_listing_add(s, l);
}

/* regular files and directories (not symlinks) of repo/rel, sorted (rel
 * "." is the repository itself); from its cached listing when the
 * directory has not changed */
static void
list_dir(struct scan *s, const char *rel, struct names *files,
         struct names *dirs)
{
  if (in_fuse_mount(s, rel)) {
    /* a FUSE file system below the repository (maybe a backupfs mount of
     * this very repository) is not part of it: walking into it could
     * wait on ourselves, and it holds no backups of its own */
    bfs_log(BFS_LOG_WARN, "%s/%s: a FUSE mount inside the repository: "
            "skipped", s->cat->repo, rel);
    return;
  }
  const char *in;
  int dfd = cat_root_at(s->cat, s->repo_fd, rel, &in, NULL);
  /* the identity is taken before the names: a change while reading
   * them shows in the next scan's stat */
  struct stat st;
  int64_t listed = wall_ns();
  bool have_st = dfd >= 0 &&
                 fstatat(dfd, in, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                 S_ISDIR(st.st_mode);
  if (have_st && listing_reuse(s, rel, &st, files, dirs))
    return;
  struct names fbuf = { 0 }, dbuf = { 0 };
  if (!files) files = &fbuf;          /* the listing keeps both */
  if (!dirs) dirs = &dbuf;
  int fd = dfd < 0 ? -1 : openat(dfd, in,
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT)          /* vanished meanwhile: nothing to say */
      bfs_log(BFS_LOG_WARN, "%s/%s: %s (skipped)", s->cat->repo, rel,
              strerror(errno));
    return;
  }
  /* getdents64 rather than fdopendir/readdir: a first scan reads each of
   * 100,000 directories once, and fdopendir's fstat and two fcntl calls
   * were as many system calls as the reading */
  union { struct dirent64 e; char b[16384]; } buf;
  bool complete = true;           /* a failed read is never kept */
  for (ssize_t got; complete; ) {
    if ((got = getdents64(fd, buf.b, sizeof buf.b)) <= 0) {
      complete = got == 0;
      break;
    }
    for (ssize_t off = 0; off < got; ) {
      const struct dirent64 *e = (const struct dirent64 *)(buf.b + off);
      off += e->d_reclen;
      if (e->d_name[0] == '.') continue;
      unsigned char type = e->d_type;
      if (type == DT_UNKNOWN) {
        struct stat est;
        if (fstatat(fd, e->d_name, &est, AT_SYMLINK_NOFOLLOW) < 0) continue;
        type = S_ISDIR(est.st_mode) ? DT_DIR : S_ISREG(est.st_mode) ? DT_REG
                                                                    : 0;
      }
      struct names *into = type == DT_DIR ? dirs : type == DT_REG ? files
                                                                  : NULL;
      if (!into) continue;
      CAT_GROW(into->v, into->cap, into->n);
      into->v[into->n++] = cat_xstrdup(e->d_name);
    }
  }
  close(fd);
  if (files->n > 1) qsort(files->v, files->n, sizeof *files->v, cmp_str);
  if (dirs->n > 1) qsort(dirs->v, dirs->n, sizeof *dirs->v, cmp_str);
  if (have_st && complete)
    listing_keep(s, rel, &st, listed, files, dirs);
  names_free(&fbuf);
  names_free(&dbuf);
}

void
scan_list(struct scan *s, const char *rel, struct scan_names *files,
          struct scan_names *dirs)
{
  struct names f = { 0 }, d = { 0 };
  list_dir(s, rel, files ? &f : NULL, dirs ? &d : NULL);
  if (files)
    *files = (struct scan_names){ f.v, f.n };
  if (dirs)
    *dirs = (struct scan_names){ d.v, d.n };
}

void
scan_names_free(struct scan_names *n)
{
  struct names x = { n->v, n->n, n->n };
  names_free(&x);
  n->v = NULL;
  n->n = 0;
}

/* Offer rel (depth components: parts) to the layouts in table order;
 * unless one claims it, go on into its sub-directories. */
static void
walk_dir(struct scan *s, const char *rel, unsigned depth, const char **parts,
         bool repo_is_backups)
{
  struct names files = { 0 }, dirs = { 0 };
  list_dir(s, rel, &files, &dirs);
  const struct scan_dir d = {
    .rel = rel, .depth = depth, .parts = parts,
    .files = files.v, .nfiles = files.n, .dirs = dirs.v, .ndirs = dirs.n,
    .repo_is_backups = repo_is_backups,
  };
  bool claimed = false;
  for (size_t i = 0; cat_layouts[i] && !claimed; i++)
    claimed = cat_layouts[i]->dir && cat_layouts[i]->dir(s, &d);
  names_free(&files);
  if (!claimed && depth < CAT_LAYOUT_MAX_DEPTH)
    for (size_t j = 0; j < dirs.n; j++) {
      CLEANUP_FREE char *sub = strcmp(rel, ".")
                               ? cat_xasprintf("%s/%s", rel, dirs.v[j])
                               : cat_xstrdup(dirs.v[j]);
      parts[depth] = dirs.v[j];
      walk_dir(s, sub, depth + 1, parts, repo_is_backups);
    }
  names_free(&dirs);
}

static void
walk(struct scan *s)
{
  const char *base = strrchr(s->cat->repo, '/');
  bool repo_is_backups = base && !strcmp(base + 1, "backups");
  const char *parts[CAT_LAYOUT_MAX_DEPTH + 1] = { 0 };

  if (s->cat->not_dir) {          /* only a layout's repo hook reads it */
    for (size_t i = 0; cat_layouts[i]; i++)
      if (cat_layouts[i]->repo && cat_layouts[i]->repo(s))
        return;
    return;
  }
  if (s->only_vm) {               /* one directory-based VM: <vm>/... */
    parts[0] = s->only_vm;
    walk_dir(s, s->only_vm, 1, parts, false);
    return;
  }
  for (size_t i = 0; cat_layouts[i]; i++)
    if (cat_layouts[i]->repo && cat_layouts[i]->repo(s))
      return;
  walk_dir(s, ".", 0, parts, repo_is_backups);
  for (size_t i = 1; i < s->cat->nroots; i++) {   /* more stores */
    char rel[32];
    base = strrchr(s->cat->roots[i], '/');
    snprintf(rel, sizeof rel, CAT_ROOT_PREFIX "%zu", i);
    walk_dir(s, rel, 0, parts, base && !strcmp(base + 1, "backups"));
  }
}

void **
scan_layout_state(struct scan *s, const struct cat_layout *l)
{
  for (size_t i = 0; cat_layouts[i] && i < SCAN_LAYOUT_SLOTS; i++)
    if (cat_layouts[i] == l)
      return &s->layout_state[i];
  abort();                        /* a layout not in the table */
}

static void
layouts_finish(struct scan *s)
{
  for (size_t i = 0; cat_layouts[i]; i++)
    if (cat_layouts[i]->finish)
      cat_layouts[i]->finish(s);
}

static void
layouts_free(struct scan *s)
{
  for (size_t i = 0; cat_layouts[i] && i < SCAN_LAYOUT_SLOTS; i++) {
    if (s->layout_state[i] && cat_layouts[i]->state_free)
      cat_layouts[i]->state_free(s->layout_state[i]);
    s->layout_state[i] = NULL;
  }
}

/* ---- chains, statuses and names ---- */

static bool
scan_exists(void *opaque, const char *rel)
{
  struct scan *s = opaque;
  struct scan_file *f = scan_file_find(s, rel);
  if (f && f->seen) return f->kind == FILE_IMAGE;
  if (in_fuse_mount(s, rel)) return false;      /* never a backing file */
  return resolve_fs_exists((const char *const *)s->cat->roots,
                           s->cat->nroots, rel);
}

static bool
ends_with(const char *s, const char *suf)
{
  size_t l = strlen(s), sl = strlen(suf);
  return l >= sl && !strcmp(s + l - sl, suf);
}

/* the backing of f, resolved once per scan (chains share their layers) */
static const char *
resolve_layer(struct scan *s, struct scan_file *f)
{
  if (!f->resolved) {
    char *next;
    f->resolved = true;
    free(f->resolve_error);
    f->resolve_error = NULL;
    if (resolve_backing_rel((const char *const *)s->cat->roots,
                            s->cat->nroots, f->path, f->backing, scan_exists,
                            s, &next) < 0) {
      f->resolve_error = cat_xstrdup(bfs_last_error());
      next = NULL;
    }
    if (!next != !f->backing_path ||
        (next && strcmp(f->backing_path, next))) {
      free(f->backing_path);
      f->backing_path = next;
      f->dirty = true;
    }
    else
      free(next);
  }
  return f->resolve_error ? NULL : f->backing_path;
}

static void
count(struct scan *s, struct scan_file *f)
{
  if (f && !f->counted) {
    f->counted = true;
    s->nimages++;
  }
}

/* The format a backing layer must have: the overlay's recorded backing
 * format, checked against what the layout's name rule says (a qcow2
 * overlay naming a .raw disk as a qcow2 backing file, or the reverse, is
 * refused rather than guessed); NULL when neither says (probe).  0, or
 * -1 with *why set. */
static int
backing_format(struct scan_file *over, const char *next, const char **fmt,
               char **why)
{
  const char *rec = over->backing_format;
  int r = layout_backing_format(rec, next, strlen(next), fmt);
  if (r == -ENOTSUP)
    *why = cat_xasprintf("%s: backing file %s has format '%s', which is "
                         "not supported", over->path, next, rec);
  else if (r < 0)
    *why = cat_xasprintf("%s: backing file %s is recorded as %s, but its "
                         "name makes it %s: refusing the chain", over->path,
                         next, rec, layout_file_format(next, strlen(next)));
  return r < 0 ? -1 : 0;
}

/* one more layer of d's recipe: its locator and the driver its file was
 * opened as (f->format is scan_intern()'s already); files[] keeps each
 * layer's file for chain_compression (NULL: none) */
static void
add_layer(struct scan *s, struct model_disk *d, size_t *cap, const char *rel,
          struct scan_file *f, struct scan_file **files)
{
  size_t c = *cap;
  CAT_GROW(d->chain, c, d->chain_len);
  if (c != *cap)                  /* drivers keeps chain's capacity */
    d->drivers = cat_xrealloc(d->drivers, c, sizeof *d->drivers);
  *cap = c;
  files[d->chain_len] = f;
  d->chain[d->chain_len] = f ? f->path : scan_intern(s, rel);
  d->drivers[d->chain_len++] = f ? f->format : NULL;
}

/* a disk's compression: its layers' together (qcow2-stat.h); files[k]
 * is layer k's file, or NULL to look it up */
static void
chain_compression(struct scan *s, struct model_disk *d,
                  struct scan_file *const *files)
{
  const char *v[BLK_MAX_DEPTH + 1];
  size_t n = 0;
  for (size_t k = 0; k < d->chain_len && n < BLK_MAX_DEPTH + 1; k++) {
    const struct scan_file *f = files[k] ? files[k]
                                         : scan_file_find(s, d->chain[k]);
    v[n++] = f && f->format ? f->compression : NULL;
  }
  const char *c = blk_compression_join(v, n);
  d->compression = scan_intern(s, c);
}

/* The one chain resolution of the program: from the top image the layout
 * found, each backing name resolved inside the repository (resolve.c),
 * each layer's format decided by the layout and the recorded backing
 * format (never by a raw file's bytes), loops and depth refused, and the
 * encrypted/unsupported layers refused with the reason as the status.
 * The result is the disk's recipe; blk opens exactly that list.  A disk
 * the scan resolved (not preset) also gets its compression here, from the
 * layers' files found on the way. */
static void
resolve_disk(struct scan *s, struct model_disk *d)
{
  if (d->preset) {                  /* the layout gave the recipe */
    s->nimages += d->chain_len;
    return;
  }
  struct scan_file *f = scan_file_find(s, d->top);
  /* the top was opened by its layout; a top first reached by the layout
   * now (rescan of a chain member) goes by the name rule */
  if (!f || !f->seen)
    f = scan_file_get(s, d->top, FILE_IMAGE,
                      layout_file_format(d->top, strlen(d->top)));
  size_t cap = 0;
  char *why = NULL;
  struct scan_file *files[BLK_MAX_DEPTH + 1];

  count(s, f);
  add_layer(s, d, &cap, d->top, f, files);
  if (f && f->format && !strcmp(f->format, "raw") && ends_with(f->path, ".qcow2"))
    why = cat_xasprintf("%s: not a qcow2 image", f->path);
  while (f && !why) {
    if (f->error) { why = cat_xstrdup(f->error); break; }
    if (f->external) {
      why = cat_xasprintf("%s: external data file, not supported", f->path);
      break;
    }
    if (!f->backing) break;
    const char *next = resolve_layer(s, f);
    if (!next) { why = cat_xstrdup(f->resolve_error); break; }
    bool loop = false;
    for (size_t i = 0; i < d->chain_len && !loop; i++)
      loop = !strcmp(d->chain[i], next);
    if (loop || d->chain_len >= BLK_MAX_DEPTH) {
      why = loop ? cat_xasprintf("%s: backing file loop through %s",
                                 d->top, next)
                 : cat_xasprintf("%s: chain deeper than %d", d->top,
                                 BLK_MAX_DEPTH);
      break;
    }
    const char *fmt;
    if (backing_format(f, next, &fmt, &why) < 0)
      break;
    f = scan_file_get(s, next, FILE_IMAGE, fmt);
    /* one file, one format: an earlier decision (or probe) stands */
    const char *have = !f || !f->decided ? NULL
                     : strcmp(f->decided, "probe") ? f->decided : f->format;
    if (fmt && have && strcmp(have, fmt)) {
      why = cat_xasprintf("%s: backing file %s is %s, but the chain of %s "
                          "records it as %s: refusing the chain", d->top,
                          next, have, d->top, fmt);
      break;
    }
    count(s, f);
    add_layer(s, d, &cap, next, f, files);
  }
  if (!f && !why)
    why = cat_xasprintf("%s: not a regular file",
                        d->chain[d->chain_len - 1]);
  d->status = why ? why : cat_xstrdup("ok");
  chain_compression(s, d, files);
}

static int
cmp_backup(const void *a, const void *b)
{
  const struct model_backup *x = a, *y = b;
  int c = strcmp(x->vm, y->vm);
  if (c) return c;
  if (x->time != y->time) return x->time < y->time ? -1 : 1;
  return strcmp(x->key, y->key);
}

static void
hash_str(XXH3_state_t *h, const char *s)
{
  XXH3_64bits_update(h, s ? s : "\1", s ? strlen(s) + 1 : 1);
}

static void
finish_model(struct scan *s, struct catalog_scan_stats *st)
{
  XXH3_state_t *h = XXH3_createState();
  size_t vcap = 0;
  if (!h) abort();

  if (s->nbackups > 1)
    qsort(s->backups, s->nbackups, sizeof *s->backups, cmp_backup);
  unsigned dup = 0;
  for (size_t i = 0; i < s->nbackups; i++) {
    struct model_backup *b = &s->backups[i];
    char tn[32];
    bool same_vm = i > 0 && !strcmp(b->vm, s->backups[i - 1].vm);
    if (!same_vm) {
      if (s->nvms)
        s->vms[s->nvms - 1].hash = XXH3_64bits_digest(h);
      CAT_GROW(s->vms, vcap, s->nvms);
      s->vms[s->nvms++] = (struct model_vm){ .name = b->vm, .first = i };
      XXH3_64bits_reset(h);
      uint64_t v = CATALOG_MODEL_VERSION;
      XXH3_64bits_update(h, &v, sizeof v);
    }
    s->vms[s->nvms - 1].n++;
    cat_time_name(b->time, tn);
    dup = same_vm && b->time == s->backups[i - 1].time ? dup + 1 : 0;
    if (dup) {
      char *n = cat_xasprintf("%s-%u", tn, dup);
      b->name = scan_intern(s, n);
      free(n);
    }
    else
      b->name = scan_intern(s, tn);

    for (size_t j = 0; j < b->ndisks; j++) {
      struct model_disk *d = &b->disks[j];
      resolve_disk(s, d);         /* and, unless preset, its compression */
      for (unsigned k = 2; ; k++) {          /* unique disk names */
        bool clash = false;
        for (size_t m = 0; m < j && !clash; m++)
          clash = !strcmp(b->disks[m].name, d->name);
        if (!clash) break;
        char *n2 = cat_xasprintf("%s-%u", d->name, k);
        free(d->name);
        d->name = n2;
      }
      if (!b->status && strcmp(d->status, "ok"))
        b->status = cat_xasprintf("%s: %s", d->name, d->status);
      hash_str(h, d->name); hash_str(h, d->top); hash_str(h, d->volume);
      hash_str(h, d->status);
      for (size_t k = 0; k < d->chain_len; k++) {
        hash_str(h, d->chain[k]);
        hash_str(h, d->drivers[k]);
        hash_str(h, d->options ? d->options[k] : NULL);
      }
      struct scan_file *f = d->preset ? NULL : scan_file_find(s, d->top);
      if (d->preset) {
        uint64_t nums[2] = { d->vsize, d->alloc };
        XXH3_64bits_update(h, nums, sizeof nums);
        hash_str(h, d->format); hash_str(h, d->compression);
      }
      if (f) {
        uint64_t nums[3] = { f->vsize, f->alloc, f->encrypted };
        XXH3_64bits_update(h, nums, sizeof nums);
        hash_str(h, f->format); hash_str(h, d->compression);
      }
    }
    if (!b->status) b->status = cat_xstrdup("ok");
    if (strcmp(b->status, "ok")) st->broken++;
    hash_str(h, b->vm); hash_str(h, b->name); hash_str(h, b->source);
    hash_str(h, b->domain_xml); hash_str(h, b->extra); hash_str(h, b->status);
    XXH3_64bits_update(h, &b->time, sizeof b->time);
    uint64_t nd = b->ndisks;
    XXH3_64bits_update(h, &nd, sizeof nd);
  }
  if (s->nvms)
    s->vms[s->nvms - 1].hash = XXH3_64bits_digest(h);
  XXH3_freeState(h);
  st->vms = s->nvms;
  st->backups = s->nbackups;
  st->images = s->nimages;
}

static int
scan_run(catalog_t *cat, const char *only_vm, struct catalog_scan_stats *stats)
{
  struct catalog_scan_stats st = { 0 };
  struct scan s = { .cat = cat, .repo_fd = -1, .only_vm = only_vm };
  double t0 = now();
  char *pv = NULL;                /* the cache's probe_version */
  bool reprobe = false;
  int r;

  pthread_mutex_lock(&cat->scan_lock);
  if (bfs_htab_init(&s.files, 0) < 0 || bfs_htab_init(&s.dirs, 0) < 0)
    abort();                                      /* as cat_x*: no memory */
  cat_map_init(&s.strings);
  /* a repository that is no directory (rbd:POOL) has no fd: its layout's
   * repo hook reads it */
  s.repo_fd = cat->not_dir ? -1
            : open(cat->repo, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (s.repo_fd < 0 && !cat->not_dir) {
    r = bfs_error(-errno, "%s: %s", cat->repo, strerror(errno));
    goto out;
  }
  if (!cat->scan_db && (r = db_open(cat->db_path, &cat->scan_db)) < 0)
    goto out;
  if ((r = db_load_files(cat->scan_db, &s, only_vm)) < 0 ||
      (r = db_load_dirs(cat->scan_db, &s, only_vm)) < 0)
    goto out;
  /* headers cached by an older probe lack facts it learnt since */
  reprobe = db_get_meta(cat->scan_db, "probe_version", &pv) == 0 &&
                 (!pv || strcmp(pv, SCAN_PROBE_VERSION));
  for (size_t i = 0; reprobe && i < s.nfiles; i++)
    s.filev[i]->mtime_ns = -1;            /* "changed": probed again */
  /* FUSE mounts are skipped; other mounts below the repository (NFS
   * submounts, bind mounts of storage) are part of it and walked */
  if (!cat->not_dir)
    s.nfuse = cat_fuse_mounts(cat->repo, &s.fuse_mounts);
  for (size_t i = 1; i < cat->nroots; i++) {    /* and below other stores */
    char **m;
    size_t n = cat_fuse_mounts(cat->roots[i], &m);
    s.fuse_mounts = cat_xrealloc(s.fuse_mounts, s.nfuse + n + 1,
                                 sizeof *s.fuse_mounts);
    for (size_t j = 0; j < n; j++) {
      s.fuse_mounts[s.nfuse++] = cat_xasprintf(CAT_ROOT_PREFIX "%zu/%s", i,
                                               m[j]);
      free(m[j]);
    }
    free(m);
  }
  walk(&s);
  if ((r = s.error) < 0)
    goto out;
  layouts_finish(&s);
  finish_model(&s, &st);
  r = db_store(cat->scan_db, &s);
  if (r == 0 && reprobe && !only_vm)
    r = db_set_meta(cat->scan_db, "probe_version", SCAN_PROBE_VERSION);
  progress(&s, true);
out:
  st.reopened = s.reopened;
  st.changed = s.changed_vms;
  st.seconds = now() - t0;
  if (stats) *stats = st;
  layouts_free(&s);
  free(pv);
  free_model(&s);
  free(s.vms);
  for (size_t i = 0; i < s.nfuse; i++) free(s.fuse_mounts[i]);
  free(s.fuse_mounts);
  if (s.repo_fd >= 0) close(s.repo_fd);
  pthread_mutex_unlock(&cat->scan_lock);
  return r < 0 ? r : 0;
}

int
catalog_scan(catalog_t *cat, struct catalog_scan_stats *stats)
{
  return scan_run(cat, NULL, stats);
}

int
catalog_scan_vm(catalog_t *cat, const char *vm, struct catalog_scan_stats *stats)
{
  CLEANUP_FREE char *source = NULL;
  int r;

  /* only VMs that are one directory of the repository can be rescanned on
   * their own (KBOSS volumes are grouped across the whole tree) */
  pthread_mutex_lock(&cat->lock);
  r = db_vm_source(cat->db, vm, &source);
  pthread_mutex_unlock(&cat->lock);
  if (r < 0) return r;
  if (!source || !strcmp(source, "cloudstack-kboss") || cat->not_dir ||
      !vm[0] ||
      cat->nroots > 1 || cat->cloudstack_backups ||
      strchr(vm, '/') || vm[0] == '.' || !strcmp(vm, "backups"))
    return scan_run(cat, NULL, stats);
  return scan_run(cat, vm, stats);
}
