/* guest-ops.c — the guest.h calls: lstat, readdir, readlink, pread, and the
 * walk behind `backupfs index`.
 *
 * Each call first asks the cache (g->clock only).  On a miss it lists the
 * directory concerned in one go — guestfs_ls, then guestfs_lstatnslist and
 * guestfs_readlinklist in batches — under g->lock, and stores the whole
 * listing, so a lookup costs at most one round of appliance calls per
 * directory.  A stat of a path whose parent was listed never goes to the
 * appliance.  File data is read in RA_CHUNK pieces kept in a few read-ahead
 * buffers, so a sequential copy asks the appliance once per chunk.
 */
#include "fs/guest-int.h"
#include "fs/index.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/error.h"

static void
maybe_load_index(guest_t *g)
{
  pthread_mutex_lock(&g->clock);
  bool tried = g->index_tried;
  g->index_tried = true;
  pthread_mutex_unlock(&g->clock);
  if (tried)
    return;
  CLEANUP_FREE char *db = guest_pool_index_path(g->pool);
  if (db)
    guest_use_index(g, db);
}

int
guest_use_index(guest_t *g, const char *db)
{
  CLEANUP_FREE char *vm = strdup(g->key);
  if (!vm)
    return -ENOMEM;
  char *slash = strrchr(vm, '/');
  if (!slash)
    return bfs_error(-EINVAL, "%s: key is not vm/time", g->key);
  *slash = '\0';
  pthread_mutex_lock(&g->clock);
  g->index_tried = true;
  int r = index_load(db, vm, slash + 1, &g->cache);
  pthread_mutex_unlock(&g->clock);
  if (r < 0 && r != -ENOENT)
    bfs_log(BFS_LOG_WARN, "%s: file index not used: %s", g->key,
            bfs_last_error());
  return r;
}

static void
synthetic_dir(struct stat *st)
{
  memset(st, 0, sizeof *st);
  st->st_mode = S_IFDIR | 0555;
  st->st_nlink = 2;
  st->st_ino = 1;
}

static void
set_error_file(struct gc_entry *e, const char *msg, uint64_t ino)
{
  memset(&e->st, 0, sizeof e->st);
  e->st.st_mode = S_IFREG | 0444;
  e->st.st_nlink = 1;
  e->st.st_size = strlen(msg);
  e->st.st_ino = ino;
  free(e->link);
  e->link = strdup(msg);
  e->error_file = true;
}

/* The launch failure message, while it stands (malloc'd), else NULL. */
static char *
launch_error(guest_t *g)
{
  pthread_mutex_lock(&g->lock);
  char *m = g->failed_at && g->launch_err ? strdup(g->launch_err) : NULL;
  pthread_mutex_unlock(&g->lock);
  return m;
}

static int
guest_errno(guestfs_h *h)
{
  int e = guestfs_last_errno(h);
  return e > 0 ? -e : -EIO;
}

/* List dir through the appliance into the cache.  g->lock held. */
static int
fetch_dir_locked(guest_t *g, const char *dir)
{
  guestfs_h *h = g->h;

  for (size_t i = 0; i < g->nfailed; i++)
    if (!strcmp(g->failed[i].mp, dir)) {
      char **kids = calloc(2, sizeof *kids);
      CLEANUP_FREE char *ep = gc_join(dir, ".backupfs-error");
      if (!kids || !ep || !(kids[0] = strdup(".backupfs-error"))) {
        free(kids);
        return -ENOMEM;
      }
      pthread_mutex_lock(&g->clock);
      struct gc_entry *e = gc_get(&g->cache, dir);
      struct gc_entry *ee = gc_get(&g->cache, ep);
      if (e && ee) {
        if (!e->st.st_mode)
          synthetic_dir(&e->st);
        gc_set_kids(e, kids, 1);
        set_error_file(ee, g->failed[i].msg, 0xfffffffffffff000ULL + i);
      }
      else
        free(kids[0]), free(kids);
      pthread_mutex_unlock(&g->clock);
      return e && ee ? 0 : -ENOMEM;
    }

  char **names = guestfs_ls(h, dir);
  if (!names)
    return bfs_error(guest_errno(h), "%s: %s: %s", g->key, dir, guest_gerr(h));
  size_t n = 0;
  while (names[n]) n++;

  struct stat *sts = calloc(n ? n : 1, sizeof *sts);
  char **links = calloc(n ? n : 1, sizeof *links);
  int r = 0;
  if (!sts || !links) {
    r = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < n && r == 0; i += NAMES_BATCH) {
    size_t m = n - i < NAMES_BATCH ? n - i : NAMES_BATCH;
    char *batch[NAMES_BATCH + 1];
    memcpy(batch, names + i, m * sizeof *batch);
    batch[m] = NULL;
    struct guestfs_statns_list *l = guestfs_lstatnslist(h, dir, batch);
    if (!l || l->len != m) {
      r = bfs_error(-EIO, "%s: %s: %s", g->key, dir, guest_gerr(h));
      guestfs_free_statns_list(l);
      break;
    }
    size_t nl = 0;
    char *lbatch[NAMES_BATCH + 1];
    size_t lidx[NAMES_BATCH];
    for (size_t j = 0; j < m; j++) {
      guest_statns_to_stat(&l->val[j], &sts[i + j]);
      if (S_ISLNK(sts[i + j].st_mode)) {
        lidx[nl] = i + j;
        lbatch[nl++] = names[i + j];
      }
    }
    guestfs_free_statns_list(l);
    if (nl) {
      lbatch[nl] = NULL;
      char **t = guestfs_readlinklist(h, dir, lbatch);
      for (size_t j = 0; t && j < nl && t[j]; j++)
        links[lidx[j]] = t[j];
      free(t);
    }
  }
  if (r < 0)
    goto out;

  pthread_mutex_lock(&g->clock);
  struct gc_entry *de = gc_get(&g->cache, dir);
  for (size_t i = 0; de && i < n; i++) {
    CLEANUP_FREE char *p = gc_join(dir, names[i]);
    struct gc_entry *e = p ? gc_get(&g->cache, p) : NULL;
    if (!e) {
      de = NULL;
      break;
    }
    e->st = sts[i];
    if (links[i]) {
      free(e->link);
      e->link = TAKE(links[i]);
    }
  }
  if (de) {
    if (!de->st.st_mode)
      synthetic_dir(&de->st);
    gc_set_kids(de, TAKE(names), n);
  }
  else
    r = -ENOMEM;
  pthread_mutex_unlock(&g->clock);

 out:
  if (names) {
    for (size_t i = 0; i < n; i++)
      free(names[i]);
    free(names);
  }
  for (size_t i = 0; links && i < n; i++)
    free(links[i]);
  free(links);
  free(sts);
  return r;
}

static int
fetch_dir(guest_t *g, const char *dir)
{
  pthread_mutex_lock(&g->lock);
  int r = guest_ensure_launched(g);
  if (r == 0) {
    pthread_mutex_lock(&g->clock);
    struct gc_entry *e = gc_find(&g->cache, dir);
    bool listed = e && e->listed;
    pthread_mutex_unlock(&g->clock);
    if (!listed)
      r = fetch_dir_locked(g, dir);
    g->last_used = time(NULL);
  }
  pthread_mutex_unlock(&g->lock);
  return r;
}

/* The cache's answer for path: 1 found (copied out), 0 unknown, -ENOENT. */
static int
cached_lstat(guest_t *g, const char *path, struct stat *st)
{
  int r = 0;
  pthread_mutex_lock(&g->clock);
  struct gc_entry *e = gc_find(&g->cache, path);
  if (e && e->st.st_mode) {
    *st = e->st;
    r = 1;
  }
  else if (g->cache.complete)
    r = -ENOENT;
  else {
    CLEANUP_FREE char *parent = gc_parent(path);
    struct gc_entry *pe = parent ? gc_find(&g->cache, parent) : NULL;
    if (pe && pe->listed)
      r = -ENOENT;
  }
  pthread_mutex_unlock(&g->clock);
  return r;
}

static bool
is_launch_error_path(const char *path)
{
  return !strcmp(path, "/.backupfs-error");
}

int
guest_lstat(guest_t *g, const char *path, struct stat *st)
{
  if (path[0] != '/')
    return bfs_error(-EINVAL, "%s: %s: not an absolute path", g->key, path);
  if (!strcmp(path, "/")) {
    synthetic_dir(st);
    st->st_mode = S_IFDIR | 0755;
    return 0;
  }
  maybe_load_index(g);
  int r = cached_lstat(g, path, st);
  if (r != 0)
    return r == 1 ? 0 : bfs_error(r, "%s: %s: no such file", g->key, path);

  CLEANUP_FREE char *parent = gc_parent(path);
  if (!parent)
    return -ENOMEM;
  r = fetch_dir(g, parent);
  if (r < 0) {
    CLEANUP_FREE char *msg = launch_error(g);
    if (msg && is_launch_error_path(path)) {
      memset(st, 0, sizeof *st);
      st->st_mode = S_IFREG | 0444;
      st->st_nlink = 1;
      st->st_size = strlen(msg);
      st->st_ino = 2;
      return 0;
    }
    return r;
  }
  r = cached_lstat(g, path, st);
  if (r == 0)   /* listed but the entry was dropped (cache reset) */
    r = -EAGAIN;
  return r == 1 ? 0 : bfs_error(r, "%s: %s: no such file", g->key, path);
}

void
guest_dirents_free(struct guest_dirent *ents, size_t n)
{
  for (size_t i = 0; ents && i < n; i++)
    free(ents[i].name);
  free(ents);
}

/* 1 answered, 0 unknown, <0 error */
static int
cached_readdir(guest_t *g, const char *path, struct guest_dirent **ents,
               size_t *n)
{
  int r = 0;
  pthread_mutex_lock(&g->clock);
  struct gc_entry *e = gc_find(&g->cache, path);
  if (e && e->listed) {
    struct guest_dirent *d = calloc(e->nkids ? e->nkids : 1, sizeof *d);
    size_t i;
    for (i = 0; d && i < e->nkids; i++) {
      CLEANUP_FREE char *p = gc_join(path, e->kids[i]);
      struct gc_entry *k = p ? gc_find(&g->cache, p) : NULL;
      if (!(d[i].name = strdup(e->kids[i])))
        break;
      if (k)
        d[i].st = k->st;
    }
    if (!d || i < e->nkids) {
      guest_dirents_free(d, i);
      r = -ENOMEM;
    }
    else {
      *ents = d;
      *n = e->nkids;
      r = 1;
    }
  }
  else if (g->cache.complete)
    r = e && e->st.st_mode && !S_ISDIR(e->st.st_mode) ? -ENOTDIR : -ENOENT;
  pthread_mutex_unlock(&g->clock);
  return r;
}

int
guest_readdir(guest_t *g, const char *path,
              struct guest_dirent **ents, size_t *n)
{
  *ents = NULL;
  *n = 0;
  maybe_load_index(g);
  int r = cached_readdir(g, path, ents, n);
  if (r != 0)
    return r == 1 ? 0 : bfs_error(r, "%s: %s: cannot list", g->key, path);
  r = fetch_dir(g, path);
  if (r < 0) {
    CLEANUP_FREE char *msg = launch_error(g);
    if (msg && !strcmp(path, "/")) {
      struct guest_dirent *d = calloc(1, sizeof *d);
      if (!d || !(d->name = strdup(".backupfs-error"))) {
        free(d);
        return -ENOMEM;
      }
      d->st.st_mode = S_IFREG | 0444;
      d->st.st_nlink = 1;
      d->st.st_size = strlen(msg);
      d->st.st_ino = 2;
      *ents = d;
      *n = 1;
      return 0;
    }
    return r;
  }
  r = cached_readdir(g, path, ents, n);
  if (r == 0)
    r = -EAGAIN;
  return r == 1 ? 0 : r;
}

int
guest_readlink(guest_t *g, const char *path, char **target)
{
  struct stat st;
  int r = guest_lstat(g, path, &st);
  if (r < 0)
    return r;
  if (!S_ISLNK(st.st_mode))
    return bfs_error(-EINVAL, "%s: %s: not a symbolic link", g->key, path);
  pthread_mutex_lock(&g->clock);
  struct gc_entry *e = gc_find(&g->cache, path);
  *target = e && e->link ? strdup(e->link) : NULL;
  pthread_mutex_unlock(&g->clock);
  if (*target)
    return 0;

  pthread_mutex_lock(&g->lock);
  r = guest_ensure_launched(g);
  if (r == 0 && !(*target = guestfs_readlink(g->h, path)))
    r = bfs_error(guest_errno(g->h), "%s: %s: %s", g->key, path,
                  guest_gerr(g->h));
  pthread_mutex_unlock(&g->lock);
  return r;
}

/* Copy what the read-ahead buffers hold at off (clock held). */
static size_t
ra_copy(guest_t *g, const char *path, char *buf, size_t len, uint64_t off)
{
  for (int i = 0; i < RA_BUFS; i++) {
    struct rabuf *b = &g->ra[i];
    if (b->path && off >= b->off && off < b->off + b->len &&
        !strcmp(b->path, path)) {
      size_t k = b->off + b->len - off;
      if (k > len) k = len;
      memcpy(buf, b->data + (off - b->off), k);
      b->stamp = ++g->ra_clock;
      return k;
    }
  }
  return 0;
}

static void
ra_store(guest_t *g, const char *path, char *data, size_t len, uint64_t off)
{
  struct rabuf *v = &g->ra[0];
  for (int i = 1; i < RA_BUFS; i++)
    if (g->ra[i].stamp < v->stamp)
      v = &g->ra[i];
  char *p = strdup(path);
  if (!p) {
    free(data);
    return;
  }
  free(v->path);
  free(v->data);
  v->path = p;
  v->data = data;
  v->off = off;
  v->len = len;
  v->stamp = ++g->ra_clock;
}

/* Error files and special files answered without the appliance: 1 done. */
static int
pread_special(guest_t *g, const char *path, const struct stat *st, char *buf,
              size_t len, uint64_t off, size_t *got)
{
  CLEANUP_FREE char *msg = NULL;
  pthread_mutex_lock(&g->clock);
  struct gc_entry *e = gc_find(&g->cache, path);
  if (e && e->error_file && e->link)
    msg = strdup(e->link);
  pthread_mutex_unlock(&g->clock);
  if (!msg && is_launch_error_path(path))
    msg = launch_error(g);
  if (msg) {
    size_t ml = strlen(msg);
    *got = off < ml ? (ml - off < len ? ml - off : len) : 0;
    memcpy(buf, msg + (off < ml ? off : 0), *got);
    return 1;
  }
  if (S_ISDIR(st->st_mode))
    return bfs_error(-EISDIR, "%s: %s: is a directory", g->key, path);
  if (!S_ISREG(st->st_mode))   /* devices, fifos, sockets, links */
    return bfs_error(-ENXIO, "%s: %s: not a regular file", g->key, path);
  return 0;
}

int
guest_pread(guest_t *g, const char *path, void *vbuf, size_t len,
            uint64_t off, size_t *got)
{
  char *buf = vbuf;
  struct stat st;
  *got = 0;
  int r = guest_lstat(g, path, &st);
  if (r < 0)
    return r;
  if ((r = pread_special(g, path, &st, buf, len, off, got)) != 0)
    return r < 0 ? r : 0;
  uint64_t size = st.st_size;
  if (off >= size)
    return 0;
  if (len > size - off)
    len = size - off;

  size_t done = 0;
  while (done < len) {
    pthread_mutex_lock(&g->clock);
    size_t k = ra_copy(g, path, buf + done, len - done, off + done);
    pthread_mutex_unlock(&g->clock);
    if (k) {
      done += k;
      continue;
    }
    /* miss: one chunk from the appliance, kept for the reads that follow */
    uint64_t at = off + done;
    size_t want = size - at < RA_CHUNK ? size - at : RA_CHUNK;
    size_t sz = 0;
    char *data = NULL;
    pthread_mutex_lock(&g->lock);
    /* another reader may have fetched it while we waited for the lock */
    pthread_mutex_lock(&g->clock);
    k = ra_copy(g, path, buf + done, len - done, off + done);
    pthread_mutex_unlock(&g->clock);
    if (k) {
      pthread_mutex_unlock(&g->lock);
      done += k;
      continue;
    }
    r = guest_ensure_launched(g);
    if (r == 0) {
      data = guestfs_pread(g->h, path, want, at, &sz);
      if (!data)
        r = bfs_error(guest_errno(g->h), "%s: %s: %s", g->key, path,
                      guest_gerr(g->h));
      g->last_used = time(NULL);
    }
    pthread_mutex_unlock(&g->lock);
    if (r < 0)
      return done ? (*got = done, 0) : r;
    if (sz == 0)   /* file shorter than its stat said */
      break;
    size_t c = sz < len - done ? sz : len - done;
    memcpy(buf + done, data, c);
    done += c;
    pthread_mutex_lock(&g->clock);
    ra_store(g, path, data, sz, at);
    pthread_mutex_unlock(&g->clock);
  }
  *got = done;
  return 0;
}

/* ---- index walk ---------------------------------------------------- */

static int
walk(guest_t *g, const char *dir, uint64_t *count)
{
  struct guest_dirent *ents;
  size_t n;
  int r = guest_readdir(g, dir, &ents, &n);
  if (r < 0)
    return r;
  for (size_t i = 0; i < n && r == 0; i++) {
    (*count)++;
    if (S_ISDIR(ents[i].st.st_mode)) {
      CLEANUP_FREE char *p = gc_join(dir, ents[i].name);
      r = p ? walk(g, p, count) : -ENOMEM;
      if (r < 0)   /* an unreadable directory is listed as empty */
        r = (r == -ENOMEM) ? r : 0;
    }
  }
  guest_dirents_free(ents, n);
  return r;
}

int
guest_index_build(guest_t *g, const char *db, const char *vm,
                  const char *time, uint64_t *nfiles)
{
  uint64_t count = 0;
  pthread_mutex_lock(&g->clock);
  size_t cap = g->cache.cap;
  g->cache.cap = 0;              /* the walk must keep everything */
  g->index_tried = true;         /* index what is there, not an old index */
  pthread_mutex_unlock(&g->clock);

  pthread_mutex_lock(&g->lock);
  int r = guest_ensure_launched(g);
  pthread_mutex_unlock(&g->lock);
  if (r == 0)
    r = walk(g, "/", &count);
  if (r == 0) {
    pthread_mutex_lock(&g->clock);
    r = index_save(db, vm, time, &g->cache, nfiles);
    pthread_mutex_unlock(&g->clock);
  }
  pthread_mutex_lock(&g->clock);
  g->cache.cap = cap;
  pthread_mutex_unlock(&g->clock);
  return r;
}
