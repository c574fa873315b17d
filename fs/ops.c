/* ops.c — the FUSE low-level operations.
 *
 * Each operation finds the mount (struct mnt) as the session's userdata,
 * fuse_req_userdata(req), and passes it on to the helpers.  Metadata
 * requests resolve inodes under the tree read lock and copy out what they
 * need.  open() turns a node into a handle holding counted references
 * (disk + its block stack, a blob, a file descriptor, a guest path);
 * read() and lseek() then touch only the handle — no lock of ours on the
 * read path (THREAD MODEL in mount.h; a disk's read is disk-read.c's).
 * Directory listings are snapshotted at opendir so offsets stay stable
 * while the tree changes.
 *
 * Every handle and directory opened and not yet released is on a list of
 * the mount's (open_files, open_dirs): the kernel sends no RELEASE(DIR)
 * for what is still open when the session ends (an appliance killed at
 * SIGTERM holds its disks, a shell sits in a directory), so
 * ops_release_all frees them after the loop.
 *
 * Everything is read-only (each modifying operation answers EROFS) except,
 * with -o writable, the disks: their writes go to the disk's bfs_blk (the
 * copy-on-write filter).  Read failures are EIO; nothing here can take the
 * mount down.
 */
#include "fs/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/error.h"
#include "fs/holders.h"

#define MAX_IO (1024 * 1024)

struct handle {
  enum node_kind kind;
  struct disk *disk;
  struct bfs_blk *blk;              /* N_DISK: the disk's stack (acquired) */
  uint64_t size;
  struct blob *blob;
  int fd;
  struct gref gref;
  struct holder *holder;            /* N_DISK: who opened it (holders.c) */
  struct handle *prev, *next;       /* mnt.open_files */
  struct disk_stream stream;        /* N_DISK: read-ahead (disk-read.c) */
};

struct dirbuf {
  atomic_uint refs;                 /* opendir + each readdir in flight */
  char *p;
  size_t size, cap;
  size_t *ends;                     /* end offset of each entry */
  size_t n;
  struct dirbuf *prev, *next;       /* mnt.open_dirs */
};

/* ---- per-thread read buffer (threads come and go with the loop): an
 * anonymous mapping, whose pages cost memory only once touched, under the
 * mount's thread-specific key (mnt.buf_key) ---- */

static void
buf_free(void *b)
{
  munmap(b, MAX_IO);
}

static void *
thread_buf(struct mnt *m)
{
  void *b = pthread_getspecific(m->buf_key);
  if (!b) {
    /* mmap, not malloc: once glibc's mmap threshold has grown (a freed
     * big block raises it) a 1 MiB block comes from the thread's heap
     * and stays resident after the thread is gone */
    b = mmap(NULL, MAX_IO, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
      return NULL;
    pthread_setspecific(m->buf_key, b);
  }
  return b;
}

/* ---- helpers ---- */

static double
timeout_of(const struct mnt *m, const struct node *n)
{
  return m->entry_timeout;
}

static void
fill_entry(const struct mnt *m, const struct node *n,
           struct fuse_entry_param *e)
{
  memset(e, 0, sizeof *e);
  e->ino = n->ino;
  e->attr_timeout = e->entry_timeout = timeout_of(m, n);
  node_fill_stat(m, n, &e->attr);
}

static bool
is_files(const struct node *n)
{
  return n->kind == N_FILES || n->kind == N_GUEST;
}

static void
op_init(void *userdata, struct fuse_conn_info *conn)
{
  conn->max_write = MAX_IO;                 /* sets max_pages: 1 MiB reads */
  conn->max_read = MAX_IO;                  /* = -o max_read (mount-cmd.c) */
  conn->max_readahead = 64 * MAX_IO;        /* the bdi setting decides */
  if (conn->capable & FUSE_CAP_ASYNC_READ)
    conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_SPLICE_WRITE)
    conn->want |= FUSE_CAP_SPLICE_WRITE;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  /* let readahead keep more requests in flight across our workers (the
   * kernel's default is 12 background requests, congested at 9) */
  conn->max_background = 32;
  conn->congestion_threshold = 24;
  conn->time_gran = 1;
}

static void
op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
  struct mnt *m = fuse_req_userdata(req);
  struct fuse_entry_param e;
  struct gref ref = { 0 };

  if (holders_status_entry(m, parent, name, &e)) {
    fuse_reply_entry(req, &e);
    return;
  }
  pthread_rwlock_rdlock(&m->tree_lock);
  struct node *p = node_find(m, parent);
  if (!p || (!node_is_dir(p) && p->kind != N_GUEST)) {
    pthread_rwlock_unlock(&m->tree_lock);
    fuse_reply_err(req, p ? ENOTDIR : ENOENT);
    return;
  }
  if (is_files(p)) {
    int r = files_ref(m, p, &ref);
    pthread_rwlock_unlock(&m->tree_lock);
    if (r == 0)
      r = files_lookup(m, req, &ref, name, &e);
    files_ref_free(&ref);
    if (r < 0)
      fuse_reply_err(req, -r);
    else
      fuse_reply_entry(req, &e);
    return;
  }
  struct node *n = node_kid(p, name);
  if (n) {
    atomic_fetch_add(&n->nlookup, 1);
    fill_entry(m, n, &e);
  }
  pthread_rwlock_unlock(&m->tree_lock);
  if (!n)
    fuse_reply_err(req, ENOENT);
  else if (fuse_reply_entry(req, &e) == -ENOENT)
    node_forget(m, e.ino, 1);                  /* the request was interrupted */
}

static void
op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
  struct mnt *m = fuse_req_userdata(req);
  node_forget(m, ino, nlookup);
  fuse_reply_none(req);
}

static void
op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *fs)
{
  struct mnt *m = fuse_req_userdata(req);
  for (size_t i = 0; i < count; i++)
    node_forget(m, fs[i].ino, fs[i].nlookup);
  fuse_reply_none(req);
}

static void
op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct mnt *m = fuse_req_userdata(req);
  struct stat st;
  struct gref ref = { 0 };
  double t;
  int r = 0;

  if (holders_status_attr(m, ino, &st)) {
    fuse_reply_attr(req, &st, 0);
    return;
  }
  pthread_rwlock_rdlock(&m->tree_lock);
  struct node *n = node_find(m, ino);
  if (!n)
    r = -ENOENT;
  else if (n->kind == N_GUEST)
    r = files_ref(m, n, &ref) < 0 ? -ENOENT : 1;
  else
    node_fill_stat(m, n, &st);
  t = n ? timeout_of(m, n) : 0;
  pthread_rwlock_unlock(&m->tree_lock);
  if (r == 1) {
    r = files_stat(m, req, &ref, &st);
    files_ref_free(&ref);
  }
  if (r < 0)
    fuse_reply_err(req, -r);
  else
    fuse_reply_attr(req, &st, t);
}

static void
op_readlink(fuse_req_t req, fuse_ino_t ino)
{
  struct mnt *m = fuse_req_userdata(req);
  struct gref ref = { 0 };
  struct blob *b = NULL;
  int r = -EINVAL;

  pthread_rwlock_rdlock(&m->tree_lock);
  struct node *n = node_find(m, ino);
  if (!n)
    r = -ENOENT;
  else if (n->kind == N_LATEST && n->blob)
    b = blob_ref(n->blob);
  else if (n->kind == N_GUEST)
    r = files_ref(m, n, &ref) < 0 ? -ENOENT : 1;
  pthread_rwlock_unlock(&m->tree_lock);
  if (b) {
    fuse_reply_readlink(req, b->data);
    blob_unref(b);
    return;
  }
  if (r == 1) {
    char *target = NULL;
    r = files_readlink(m, req, &ref, &target);
    files_ref_free(&ref);
    if (r == 0) {
      fuse_reply_readlink(req, target);
      free(target);
      return;
    }
  }
  fuse_reply_err(req, -r);
}

static void
handle_link(struct mnt *m, struct handle *h)
{
  pthread_mutex_lock(&m->open_lock);
  h->next = m->open_files;
  if (h->next)
    h->next->prev = h;
  m->open_files = h;
  pthread_mutex_unlock(&m->open_lock);
}

static void
handle_free(struct mnt *m, struct handle *h)
{
  pthread_mutex_lock(&m->open_lock);
  if (h->prev || m->open_files == h) {
    *(h->prev ? &h->prev->next : &m->open_files) = h->next;
    if (h->next)
      h->next->prev = h->prev;
  }
  pthread_mutex_unlock(&m->open_lock);
  if (h->blk)
    disk_release(h->disk);
  if (h->disk)
    disk_unref(h->disk);
  blob_unref(h->blob);
  if (h->fd >= 0)
    close(h->fd);
  files_ref_free(&h->gref);
  holders_remove(m, h->holder);
  free(h);
}

/* What the handle h of inode ino holds: counted references to the node's
 * payload, taken under the tree read lock.  0 or -errno. */
static int
handle_fill(struct mnt *m, fuse_req_t req, fuse_ino_t ino, int flags,
            bool wr, struct handle *h)
{
  int r = 0;

  pthread_rwlock_rdlock(&m->tree_lock);
  struct node *n = node_find(m, ino);
  if (ino == HOLDERS_STATUS_INO) {          /* a fresh snapshot per open */
    h->kind = N_JSON;
    h->blob = wr ? NULL : holders_status_blob(m);
    h->size = h->blob ? h->blob->len : 0;
    r = wr ? -EROFS : h->blob ? 0 : -ENOMEM;
  }
  else if (!n)
    r = -ENOENT;
  else if (wr && !(m->writable && n->kind == N_DISK))
    r = -EROFS;
  else if (wr && (flags & (O_TRUNC | O_APPEND)))
    r = -EPERM;                             /* fixed-size disks */
  else {
    h->kind = n->kind;
    switch (n->kind) {
    case N_DISK:
      h->disk = disk_ref(n->disk);
      h->size = n->disk->size;
      h->holder = holders_add(m, n, fuse_req_ctx(req)->pid);
      r = h->holder ? 0 : -ENOMEM;
      break;
    case N_JSON: case N_LATEST:
      h->blob = blob_ref(n->blob);
      h->size = n->blob ? n->blob->len : 0;
      break;
    case N_DOMAIN: {                        /* beneath the repository */
      struct stat st;
      h->size = n->size;
      h->fd = bfs_open_beneath(m->repo_fd, m->repo, n->path);
      if (h->fd >= 0 && (fstat(h->fd, &st) < 0 ||
                         bfs_file_id_check(n->path, &n->id, &st) < 0)) {
        close(h->fd);
        h->fd = -EIO;
      }
      if (h->fd < 0) {
        bfs_log(BFS_LOG_WARN, "%s; rescanning", bfs_last_error());
        tree_request_rescan(m);
        h->fd = -1;
        r = -EIO;
      }
      break;
    }
    case N_GUEST:
      r = files_ref(m, n, &h->gref);
      break;
    default:
      r = -EISDIR;
    }
  }
  pthread_rwlock_unlock(&m->tree_lock);
  return r;
}

/* What may wait, with no lock held: a disk's stack opened (lazily), a
 * guest file's size asked.  0 or -errno. */
static int
handle_open(struct mnt *m, fuse_req_t req, bool wr, struct handle *h)
{
  int r = 0;

  if (h->disk) {
    r = disk_open_blk(m, h->disk, wr, &h->blk);
    if (r == 0 && h->blk->size < h->size)
      h->size = h->blk->size;
  }
  if (r == 0 && h->kind == N_GUEST) {
    struct stat st;
    if (files_stat(m, req, &h->gref, &st) == 0)
      h->size = st.st_size;
  }
  return r;
}

static void
op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct mnt *m = fuse_req_userdata(req);
  struct handle *h = calloc(1, sizeof *h);
  int r;

  if (!h) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  h->fd = -1;
  bool wr = (fi->flags & O_ACCMODE) != O_RDONLY ||
            (fi->flags & (O_TRUNC | O_APPEND));
  r = handle_fill(m, req, ino, fi->flags, wr, h);
  if (r == 0)
    r = handle_open(m, req, wr, h);
  if (r < 0) {
    handle_free(m, h);
    fuse_reply_err(req, -r);
    return;
  }
  fi->fh = (uintptr_t)h;
  handle_link(m, h);
  fi->keep_cache = h->kind != N_GUEST && ino != HOLDERS_STATUS_INO;
  /* Guest files bypass the page cache: kernel readahead would send many
   * parallel reads that all wait on one appliance and hold every worker,
   * while the appliance itself needs a worker to read disks/<disk>.img
   * through this mount.  The guest module reads ahead on its own. */
  fi->direct_io = h->kind == N_GUEST || ino == HOLDERS_STATUS_INO;
  fi->noflush = 1;
  if (fuse_reply_open(req, fi) == -ENOENT)   /* the opener went away */
    handle_free(m, h);
}

static void
op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct mnt *m = fuse_req_userdata(req);
  handle_free(m, (struct handle *)(uintptr_t)fi->fh);
  fuse_reply_err(req, 0);
}

static void
read_disk(struct mnt *m, fuse_req_t req, struct handle *h, size_t size, off_t off)
{
  if ((uint64_t)off >= h->size) {
    fuse_reply_buf(req, NULL, 0);
    return;
  }
  if (size > h->size - off)
    size = h->size - off;
  if (size > MAX_IO)
    size = MAX_IO;
  char *buf = thread_buf(m);
  if (!buf) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  disk_read_reply(m, req, h->disk, h->blk, &h->stream, h->size, buf, size,
                  off);
}

static void
op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
        struct fuse_file_info *fi)
{
  struct mnt *m = fuse_req_userdata(req);
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;

  if (size > MAX_IO)
    size = MAX_IO;
  switch (h->kind) {
  case N_DISK:
    read_disk(m, req, h, size, off);
    return;
  case N_JSON: case N_LATEST:
    if ((uint64_t)off >= h->blob->len)
      fuse_reply_buf(req, NULL, 0);
    else
      fuse_reply_buf(req, h->blob->data + off,
                     size < h->blob->len - off ? size : h->blob->len - off);
    return;
  case N_DOMAIN: {
    void *buf = thread_buf(m);
    ssize_t n = buf ? pread(h->fd, buf, size, off) : -1;
    if (n < 0)
      fuse_reply_err(req, EIO);
    else
      fuse_reply_buf(req, buf, n);
    return;
  }
  case N_GUEST: {
    void *buf = thread_buf(m);
    size_t got = 0;
    int r = buf ? files_pread(m, req, &h->gref, buf, size, off, &got) : -ENOMEM;
    if (r < 0)
      fuse_reply_err(req, -r);
    else
      fuse_reply_buf(req, buf, got);
    return;
  }
  default:
    fuse_reply_err(req, EISDIR);
  }
}

/* Where data (or a hole) starts at or after pos in the disk, by block
 * status (DATA is data; ZERO and HOLE read as zeros); size when there is
 * none. */
static int
disk_seek(struct handle *h, uint64_t pos, int whence, uint64_t *out)
{
  struct bfs_blk *b = disk_target(h->disk, h->blk);
  struct bfs_blk_status st;

  while (pos < h->size) {
    if (bfs_blk_block_status(b, pos, h->size - pos, &st) < 0) {
      bfs_log(BFS_LOG_WARN, "%s: block status at %" PRIu64 ": %s",
              h->disk->path, pos, bfs_last_error());
      return -EIO;
    }
    if ((st.kind == BFS_BLK_DATA) == (whence == SEEK_DATA))
      break;
    pos += st.len;
  }
  *out = pos < h->size ? pos : h->size;
  return 0;
}

static void
op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
         struct fuse_file_info *fi)
{
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;
  uint64_t pos = off;

  if (off < 0 || (whence != SEEK_DATA && whence != SEEK_HOLE)) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  if (h->kind != N_DISK) {
    /* small files: all data, the only hole is the end */
    if (pos >= h->size)
      fuse_reply_err(req, ENXIO);
    else
      fuse_reply_lseek(req, whence == SEEK_DATA ? off : (off_t)h->size);
    return;
  }
  if (pos >= h->size) {
    fuse_reply_err(req, ENXIO);
    return;
  }
  int r = disk_seek(h, pos, whence, &pos);
  if (r < 0)
    fuse_reply_err(req, EIO);
  else if (whence == SEEK_DATA && pos >= h->size)
    fuse_reply_err(req, ENXIO);
  else
    fuse_reply_lseek(req, pos);
}

/* ---- directories ---- */

static int
dirbuf_add(fuse_req_t req, struct dirbuf *d, const char *name,
           fuse_ino_t ino, mode_t mode)
{
  struct stat st = { .st_ino = ino, .st_mode = mode };
  size_t len = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
  if (d->size + len > d->cap) {
    size_t ncap = d->cap ? d->cap * 2 : 4096;
    while (ncap < d->size + len)
      ncap *= 2;
    char *np = realloc(d->p, ncap);
    if (!np)
      return -ENOMEM;
    d->p = np;
    d->cap = ncap;
    size_t *ne = realloc(d->ends, ncap / 24 * sizeof *ne);
    if (!ne)
      return -ENOMEM;
    d->ends = ne;
  }
  fuse_add_direntry(req, d->p + d->size, len, name, &st, d->size + len);
  d->size += len;
  d->ends[d->n++] = d->size;
  return 0;
}

static void
dirbuf_link(struct mnt *m, struct dirbuf *d)
{
  pthread_mutex_lock(&m->open_lock);
  d->next = m->open_dirs;
  if (d->next)
    d->next->prev = d;
  m->open_dirs = d;
  pthread_mutex_unlock(&m->open_lock);
}

static void
dirbuf_unref(struct mnt *m, struct dirbuf *d)
{
  if (atomic_fetch_sub(&d->refs, 1) == 1) {
    pthread_mutex_lock(&m->open_lock);
    if (d->prev || m->open_dirs == d) {
      *(d->prev ? &d->prev->next : &m->open_dirs) = d->next;
      if (d->next)
        d->next->prev = d->prev;
    }
    pthread_mutex_unlock(&m->open_lock);
    free(d->ends);
    free(d->p);
    free(d);
  }
}

/* The listing of directory ino of the fixed tree into d, under the tree
 * read lock: 0, 1 for a files/ directory (then ref is what the guest is
 * asked), or -errno. */
static int
dir_list(struct mnt *m, fuse_req_t req, fuse_ino_t ino, struct dirbuf *d,
         struct gref *ref)
{
  int r;

  pthread_rwlock_rdlock(&m->tree_lock);
  struct node *n = node_find(m, ino);
  if (!n)
    r = -ENOENT;
  else if (is_files(n))
    r = files_ref(m, n, ref) < 0 ? -ENOENT : 1;
  else if (!node_is_dir(n))
    r = -ENOTDIR;
  else {
    fuse_ino_t up = n->parent ? n->parent->ino : n->ino;
    r = dirbuf_add(req, d, ".", n->ino, S_IFDIR);
    if (r == 0)
      r = dirbuf_add(req, d, "..", up, S_IFDIR);
    for (size_t i = 0; r == 0 && i < n->nkids; i++) {
      struct stat st;
      node_fill_stat(m, n->kids[i], &st);
      r = dirbuf_add(req, d, n->kids[i]->name, n->kids[i]->ino, st.st_mode);
    }
  }
  pthread_rwlock_unlock(&m->tree_lock);
  return r;
}

/* The listing of a files/ directory (or one below it) from the guest, with
 * no lock held.  0 or -errno. */
static int
guest_list(struct mnt *m, fuse_req_t req, fuse_ino_t ino,
           const struct gref *ref, struct dirbuf *d)
{
  struct guest_listing gl = { 0 };
  int r = files_list(m, req, ref, &gl);

  if (r == 0)
    r = dirbuf_add(req, d, ".", ino, S_IFDIR);
  if (r == 0)
    r = dirbuf_add(req, d, "..", ino, S_IFDIR);
  for (size_t i = 0; r == 0 && i < gl.n; i++)
    r = dirbuf_add(req, d, gl.names[i], gl.inos[i], gl.modes[i]);
  files_list_free(&gl);
  return r;
}

static void
op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct mnt *m = fuse_req_userdata(req);
  struct dirbuf *d = calloc(1, sizeof *d);
  struct gref ref = { 0 };
  int r;

  if (!d) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  atomic_init(&d->refs, 1);
  pthread_rwlock_rdlock(&m->tree_lock);
  struct node *n = node_find(m, ino);
  bool rescan = n && (n->kind == N_ROOT || n->kind == N_VM);
  pthread_rwlock_unlock(&m->tree_lock);
  if (rescan)
    tree_maybe_refresh(m);

  r = dir_list(m, req, ino, d, &ref);
  if (r == 1)                               /* files/: ask the guest */
    r = guest_list(m, req, ino, &ref, d);
  files_ref_free(&ref);
  if (r < 0) {
    free(d->ends);
    free(d->p);
    free(d);
    fuse_reply_err(req, -r);
    return;
  }
  fi->fh = (uintptr_t)d;
  fi->cache_readdir = 0;
  dirbuf_link(m, d);                /* before the reply: releasedir may race */
  if (fuse_reply_open(req, fi) == -ENOENT)
    dirbuf_unref(m, d);
}

static void
op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
           struct fuse_file_info *fi)
{
  struct mnt *m = fuse_req_userdata(req);
  struct dirbuf *d = (struct dirbuf *)(uintptr_t)fi->fh;

  /* a reference while the reply is written: a racing releasedir (after an
   * interrupted request) must not free the buffer under writev */
  atomic_fetch_add(&d->refs, 1);
  /* hand out whole entries only: the largest entry end within size */
  size_t lo = 0, hi = d->n, end = off;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (d->ends[mid] <= (size_t)off + size)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo > 0 && d->ends[lo - 1] > (size_t)off)
    end = d->ends[lo - 1];
  fuse_reply_buf(req, end > (size_t)off ? d->p + off : NULL, end - off);
  dirbuf_unref(m, d);
}

static void
op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct mnt *m = fuse_req_userdata(req);
  dirbuf_unref(m, (struct dirbuf *)(uintptr_t)fi->fh);
  fuse_reply_err(req, 0);
}

static void
op_statfs(fuse_req_t req, fuse_ino_t ino)
{
  struct mnt *m = fuse_req_userdata(req);
  struct statvfs sv = {
    .f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255,
    .f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV,
  };
  pthread_rwlock_rdlock(&m->tree_lock);
  sv.f_files = bfs_htab_count(&m->itab);
  pthread_rwlock_unlock(&m->tree_lock);
  fuse_reply_statfs(req, &sv);
}

/* ---- everything that would modify: EROFS ---- */

static void
op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
           struct fuse_file_info *fi)
{
  struct mnt *m = fuse_req_userdata(req);
  struct stat st;
  int err = EROFS;

  pthread_rwlock_rdlock(&m->tree_lock);
  struct node *n = node_find(m, ino);
  /* a writable disk keeps its size; time updates are accepted and ignored */
  if (n && n->kind == N_DISK && m->writable) {
    node_fill_stat(m, n, &st);
    if (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME |
                   FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
                   FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME))
      err = EPERM;
    else if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != st.st_size)
      err = EPERM;
    else
      err = 0;
  }
  pthread_rwlock_unlock(&m->tree_lock);
  if (err)
    fuse_reply_err(req, err);
  else
    fuse_reply_attr(req, &st, m->entry_timeout);
}

static void
op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
         dev_t rdev)
{
  fuse_reply_err(req, EROFS);
}

static void
op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
  fuse_reply_err(req, EROFS);
}

static void
op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
  fuse_reply_err(req, EROFS);
}

static void
op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
           const char *name)
{
  fuse_reply_err(req, EROFS);
}

static void
op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
          fuse_ino_t newparent, const char *newname, unsigned int flags)
{
  fuse_reply_err(req, EROFS);
}

static void
op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
        const char *newname)
{
  fuse_reply_err(req, EROFS);
}

static void
op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
         off_t off, struct fuse_file_info *fi)
{
  struct mnt *m = fuse_req_userdata(req);
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;

  if (!m->writable || h->kind != N_DISK) {
    fuse_reply_err(req, EROFS);
    return;
  }
  if (off < 0 || (uint64_t)off >= h->size) {
    fuse_reply_err(req, size ? ENOSPC : 0);
    return;
  }
  if (size > h->size - off)
    size = h->size - off;
  bfs_clear_error();
  int r = bfs_blk_pwrite(disk_target(h->disk, h->blk), buf, size, off);
  if (r < 0) {
    bfs_log(BFS_LOG_WARN, "%s: write %zu at %" PRIu64 ": %s",
            h->disk->scratch_path, size, (uint64_t)off, bfs_last_error());
    fuse_reply_err(req, -r == ENOMEM || -r == ENOSPC ? -r : EIO);
  }
  else
    fuse_reply_write(req, size);
}

static void
op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
         struct fuse_file_info *fi)
{
  struct mnt *m = fuse_req_userdata(req);
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;
  struct bfs_blk *b = h->kind == N_DISK && m->writable
                     ? disk_target(h->disk, h->blk) : NULL;
  fuse_reply_err(req, b && bfs_blk_flush(b) < 0 ? EIO : 0);
}

static void
op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
          struct fuse_file_info *fi)
{
  fuse_reply_err(req, EROFS);
}

static void
op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
             off_t length, struct fuse_file_info *fi)
{
  struct mnt *m = fuse_req_userdata(req);
  fuse_reply_err(req, m->writable ? EOPNOTSUPP : EROFS);
}

static void
op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
            const char *value, size_t size, int flags)
{
  fuse_reply_err(req, EROFS);
}

static void
op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
  fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops fs_ops = {
  .init = op_init,
  .lookup = op_lookup,
  .forget = op_forget,
  .forget_multi = op_forget_multi,
  .getattr = op_getattr,
  .readlink = op_readlink,
  .open = op_open,
  .read = op_read,
  .release = op_release,
  .lseek = op_lseek,
  .opendir = op_opendir,
  .readdir = op_readdir,
  .releasedir = op_releasedir,
  .statfs = op_statfs,
  .setattr = op_setattr,
  .mknod = op_mknod,
  .mkdir = op_mkdir,
  .unlink = op_unlink,
  .rmdir = op_unlink,
  .symlink = op_symlink,
  .rename = op_rename,
  .link = op_link,
  .write = op_write,
  .fsync = op_fsync,
  .create = op_create,
  .fallocate = op_fallocate,
  .setxattr = op_setxattr,
  .removexattr = op_removexattr,
};

int
ops_init(struct mnt *m)
{
  pthread_mutex_init(&m->open_lock, NULL);
  int r = pthread_key_create(&m->buf_key, buf_free);
  if (r)
    return bfs_error(-r, "pthread_key_create: %s", strerror(r));
  m->buf_key_made = true;
  return 0;
}

void
ops_release_all(struct mnt *m)
{
  unsigned n = 0;

  if (!m->buf_key_made)
    return;                         /* ops_init did not run: nothing open */
  for (;;) {
    pthread_mutex_lock(&m->open_lock);
    struct handle *h = m->open_files;
    pthread_mutex_unlock(&m->open_lock);
    if (!h)
      break;
    handle_free(m, h);
    n++;
  }
  for (;;) {                         /* no readdir is in flight any more */
    pthread_mutex_lock(&m->open_lock);
    struct dirbuf *d = m->open_dirs;
    pthread_mutex_unlock(&m->open_lock);
    if (!d)
      break;
    atomic_store(&d->refs, 1);
    dirbuf_unref(m, d);
    n++;
  }
  if (n)
    bfs_log(BFS_LOG_INFO, "%u file(s) and directories still open at unmount "
            "closed", n);
  /* the workers are gone (their buffers with them); with -s the loop ran
   * on this thread */
  void *b = pthread_getspecific(m->buf_key);
  if (b)
    buf_free(b);
  pthread_key_delete(m->buf_key);
  m->buf_key_made = false;
}
