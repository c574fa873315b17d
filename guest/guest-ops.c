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
#include "guest/guest-int.h"
#include "guest/index.h"

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

static int
guest_errno(guestfs_h *h)
{
  int e = guestfs_last_errno(h);
  return e > 0 ? -e : -EIO;
}

/* List dir through the appliance into the cache.  g->lock held; each
 * guestfs call is watched (guest_call_begin/end). */
static int
fetch_dir_locked(guest_t *g, const char *dir)
{
  guestfs_h *h = g->h;
  int dead;

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

  guest_call_begin(g, "listing a directory");
  char **names = guestfs_ls(h, dir);
  int err = names ? 0 : guest_errno(h);
  if ((dead = guest_call_end(g, !names)) < 0) {
    for (size_t i = 0; names && names[i]; i++)
      free(names[i]);
    free(names);
    return dead;
  }
  if (!names)
    return bfs_error(err, "%s: %s: %s", g->key, dir, guest_gerr(h));
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
    guest_call_begin(g, "reading attributes");
    struct guestfs_statns_list *l = guestfs_lstatnslist(h, dir, batch);
    if ((dead = guest_call_end(g, !l)) < 0) {
      guestfs_free_statns_list(l);
      r = dead;
      break;
    }
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
      guest_call_begin(g, "reading symbolic links");
      char **t = guestfs_readlinklist(h, dir, lbatch);
      if ((dead = guest_call_end(g, !t)) < 0) {
        for (size_t j = 0; t && t[j]; j++)
          free(t[j]);
        free(t);
        r = dead;
        break;
      }
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

/* Make sure dir is listed in the cache.  With `listing`, -EINPROGRESS
 * when the appliance is still starting after the pool's list_patience. */
static int
fetch_dir(guest_t *g, const char *dir, bool listing)
{
  int r = guest_acquire(g, listing);
  if (r < 0)
    return r;
  pthread_mutex_lock(&g->clock);
  struct gc_entry *e = gc_find(&g->cache, dir);
  bool listed = e && e->listed;
  pthread_mutex_unlock(&g->clock);
  if (!listed)
    r = fetch_dir_locked(g, dir);
  guest_release(g);
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
  return !strcmp(path, "/" ERROR_NAME);
}

static bool
is_status_path(const char *path)
{
  return !strcmp(path, "/" GUEST_STATUS_NAME);
}

static void
text_file_stat(struct stat *st, const char *text, ino_t ino)
{
  memset(st, 0, sizeof *st);
  st->st_mode = S_IFREG | 0444;
  st->st_nlink = 1;
  st->st_size = strlen(text);
  st->st_ino = ino;
  st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = time(NULL);
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
  if (is_launch_error_path(path)) {   /* while the failure stands */
    CLEANUP_FREE char *msg = guest_error_text(g);
    if (msg) {
      text_file_stat(st, msg, 2);
      return 0;
    }
  }
  if (is_status_path(path)) {    /* only while starting; never launches */
    CLEANUP_FREE char *msg = guest_status_text(g);
    if (!msg)
      return bfs_error(-ENOENT, "%s: %s: no appliance is starting", g->key,
                       path);
    text_file_stat(st, msg, 3);
    return 0;
  }
  maybe_load_index(g);
  int r = cached_lstat(g, path, st);
  if (r != 0)
    return r == 1 ? 0 : bfs_error(r, "%s: %s: no such file", g->key, path);

  CLEANUP_FREE char *parent = gc_parent(path);
  if (!parent)
    return -ENOMEM;
  r = fetch_dir(g, parent, false);
  if (r < 0) {
    CLEANUP_FREE char *msg = guest_error_text(g);
    if (msg && is_launch_error_path(path)) {
      text_file_stat(st, msg, 2);
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

/* Append the virtual file name (text) to a listing of files/. */
static int
add_text_entry(struct guest_dirent **ents, size_t *n, const char *name,
               const char *text, ino_t ino)
{
  for (size_t i = 0; i < *n; i++)
    if (!strcmp((*ents)[i].name, name))
      return 0;
  struct guest_dirent *d = realloc(*ents, (*n + 1) * sizeof *d);
  if (!d)
    return -ENOMEM;
  *ents = d;
  if (!(d[*n].name = strdup(name)))
    return -ENOMEM;
  text_file_stat(&d[*n].st, text, ino);
  (*n)++;
  return 0;
}

int
guest_readdir(guest_t *g, const char *path,
              struct guest_dirent **ents, size_t *n)
{
  *ents = NULL;
  *n = 0;
  maybe_load_index(g);
  bool root = !strcmp(path, "/");
  int r = cached_readdir(g, path, ents, n);
  if (r < 0)
    return bfs_error(r, "%s: %s: cannot list", g->key, path);
  if (r == 0) {
    r = fetch_dir(g, path, root);
    if (r == 0 && (r = cached_readdir(g, path, ents, n)) == 0)
      r = -EAGAIN;                   /* listed, then dropped (cache reset) */
  }
  if (!root || (r < 0 && r != -EINPROGRESS && r != -EIO))
    return r < 0 ? r : 0;
  /* files/ shows what is going on: starting, or why it failed */
  CLEANUP_FREE char *status = guest_status_text(g);
  CLEANUP_FREE char *err = status ? NULL : guest_error_text(g);
  if (!status && !err) {
    if (r == -EINPROGRESS)    /* it just stopped starting: look again */
      return guest_readdir(g, path, ents, n);
    return r < 0 ? r : 0;
  }
  int e = status ? add_text_entry(ents, n, GUEST_STATUS_NAME, status, 3)
                 : add_text_entry(ents, n, ERROR_NAME, err, 2);
  if (e < 0) {
    guest_dirents_free(*ents, *n);
    *ents = NULL;
    *n = 0;
    return e;
  }
  return 0;
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

  if ((r = guest_acquire(g, false)) < 0)
    return r;
  guest_call_begin(g, "reading a symbolic link");
  *target = guestfs_readlink(g->h, path);
  int err = *target ? 0 : guest_errno(g->h);
  if ((r = guest_call_end(g, !*target)) == 0 && !*target)
    r = bfs_error(err, "%s: %s: %s", g->key, path, guest_gerr(g->h));
  if (r < 0) {
    free(*target);
    *target = NULL;
  }
  guest_release(g);
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
    msg = guest_error_text(g);
  if (!msg && is_status_path(path))
    msg = guest_status_text(g);
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
    if ((r = guest_acquire(g, false)) < 0)
      return r;       /* never a short read that looks like end of file */
    /* another reader may have fetched it while we waited for the lock */
    pthread_mutex_lock(&g->clock);
    k = ra_copy(g, path, buf + done, len - done, off + done);
    pthread_mutex_unlock(&g->clock);
    if (k) {
      guest_release(g);
      done += k;
      continue;
    }
    guest_call_begin(g, "reading a file");
    data = guestfs_pread(g->h, path, want, at, &sz);
    int err = data ? 0 : guest_errno(g->h);
    if ((r = guest_call_end(g, !data)) == 0 && !data)
      r = bfs_error(err, "%s: %s: %s", g->key, path, guest_gerr(g->h));
    if (r < 0) {
      free(data);
      data = NULL;
    }
    guest_release(g);
    if (r < 0)
      return r;
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

  int r = guest_acquire(g, false);
  if (r == 0)
    guest_release(g);
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
