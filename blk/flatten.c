/* flatten.c — the sparse-flatten engine (flatten.h).
 *
 * Chunks of FLAT_CHUNK bytes travel from readers to the writer through
 * two lists under one mutex: free buffers and filled ones.  A reader takes
 * a free buffer and the next chunk index in the same critical section, so
 * the chunk the writer waits for is always either being filled or queued:
 * the in-order writer cannot deadlock however the readers race.  Each
 * chunk records its runs (data or not) as the source's extents said, data
 * runs read with one pread each; readers start page-cache read-ahead of
 * the chunk `threads` ahead of theirs.  With copy_plain, a data run that
 * is plain bytes of a layer file is not read by the reader: the writer
 * copies it file to file (copy_file_range: one copy in the kernel, or a
 * reflink, instead of a copy out and one back in; measured on the depth-8
 * bench chain, 215 of 811 MiB plain: see the commit).  The first error
 * (its message copied from the failing thread) stops everyone.
 */
#include "blk/flatten.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk/blk.h"
#include "common/error.h"
#include "common/vec.h"
#include "common/ioutil.h"

#define FLAT_CHUNK (2u << 20)
#define FLAT_MAX_THREADS 64

struct run {
  uint64_t off, len;
  bool data;
  int fd;                           /* copy_plain: a plain run's file, or -1 */
  uint64_t fd_off;
};

struct chunk {
  struct chunk *next;
  uint64_t idx;
  size_t nr, cap;
  struct run *r;
  unsigned char *data;
};

struct job {
  const struct blk_flatten_src *src;
  bool copy_plain;
  unsigned threads;
  pthread_mutex_t lock;
  pthread_cond_t have_full, have_free;
  struct chunk *free, *full;
  uint64_t next;                    /* lock: next chunk to claim */
  uint64_t nchunks;
  unsigned readers_left;            /* lock */
  int err;                          /* lock (atomic reads) */
  char msg[1024];
};

static void
job_fail(struct job *j, int r)
{
  pthread_mutex_lock(&j->lock);
  if (!j->err) {
    snprintf(j->msg, sizeof j->msg, "%s", bfs_last_error());
    j->err = r < 0 ? r : -EIO;
  }
  pthread_cond_broadcast(&j->have_full);
  pthread_cond_broadcast(&j->have_free);
  pthread_mutex_unlock(&j->lock);
}

static bool
run_continues(const struct run *a, const struct run *u)
{
  if (a->data != u->data || a->off + a->len != u->off || a->fd != u->fd)
    return false;
  return a->fd < 0 || a->fd_off + a->len == u->fd_off;
}

static int
add_run(struct chunk *c, const struct run *u)
{
  if (c->nr > 0 && run_continues(&c->r[c->nr - 1], u)) {
    c->r[c->nr - 1].len += u->len;
    return 0;
  }
  if (bfs_vec_reserve_((void **)&c->r, &c->cap, sizeof *c->r, c->nr + 1) < 0)
    return bfs_error(-ENOMEM, "out of memory");
  c->r[c->nr++] = *u;
  return 0;
}

/* The runs of chunk c, then its data runs read (one pread each; plain
 * runs left to the writer under copy_plain). */
static int
fill_chunk(const struct job *j, struct chunk *c)
{
  const struct blk_flatten_src *src = j->src;
  const uint64_t start = c->idx * FLAT_CHUNK;
  const uint64_t end = src->size - start < FLAT_CHUNK ? src->size
                       : start + FLAT_CHUNK;
  int r;

  c->nr = 0;
  for (uint64_t off = start; off < end;) {
    uint64_t len = 0;
    bool data = true;
    struct run u = { .fd = -1 };
    if ((r = src->extent(src->ctx, off, end - off, &len, &data,
                         j->copy_plain ? &u.fd : NULL, &u.fd_off)) < 0)
      return r;
    if (len == 0)
      return bfs_error(-EIO, "empty extent at offset %llu",
                       (unsigned long long)off);
    if (len > end - off)
      len = end - off;
    u.off = off;
    u.len = len;
    u.data = data;
    if (!data)
      u.fd = -1;                    /* only data is copied file to file */
    if ((r = add_run(c, &u)) < 0)
      return r;
    off += len;
  }
  for (size_t i = 0; i < c->nr; i++)
    if (c->r[i].data && c->r[i].fd < 0 &&
        (r = src->pread(src->ctx, c->data + (c->r[i].off - start),
                        (size_t)c->r[i].len, c->r[i].off)) < 0)
      return r;
  return 0;
}

static void *
reader(void *arg)
{
  struct job *j = arg;
  const struct blk_flatten_src *src = j->src;

  for (;;) {
    struct chunk *c;
    int r;

    pthread_mutex_lock(&j->lock);
    while (!j->free && !j->err)
      pthread_cond_wait(&j->have_free, &j->lock);
    if (j->err || j->next >= j->nchunks) {
      j->readers_left--;
      pthread_cond_broadcast(&j->have_full);
      pthread_mutex_unlock(&j->lock);
      return NULL;
    }
    c = j->free;
    j->free = c->next;
    c->idx = j->next++;
    pthread_mutex_unlock(&j->lock);

    if (src->prefetch) {
      uint64_t ahead = (c->idx + j->threads) * FLAT_CHUNK;
      if (c->idx == 0)
        src->prefetch(src->ctx, 0, (uint64_t)FLAT_CHUNK * j->threads);
      if (ahead < src->size)
        src->prefetch(src->ctx, ahead, FLAT_CHUNK);
    }
    if ((r = fill_chunk(j, c)) < 0)
      job_fail(j, r);
    pthread_mutex_lock(&j->lock);
    c->next = j->full;
    j->full = c;
    pthread_cond_broadcast(&j->have_full);
    pthread_mutex_unlock(&j->lock);
  }
}

/* Chunk idx off the full list, waiting for it; NULL on error. */
static struct chunk *
take(struct job *j, uint64_t idx)
{
  struct chunk *c = NULL;

  pthread_mutex_lock(&j->lock);
  while (!j->err) {
    struct chunk **pp = &j->full;
    while (*pp && (*pp)->idx != idx)
      pp = &(*pp)->next;
    if ((c = *pp)) {
      *pp = c->next;
      break;
    }
    if (j->readers_left == 0) {     /* cannot happen: the chunk is lost */
      snprintf(j->msg, sizeof j->msg, "chunk %llu never read",
               (unsigned long long)idx);
      j->err = -EIO;
      break;
    }
    pthread_cond_wait(&j->have_full, &j->lock);
  }
  pthread_mutex_unlock(&j->lock);
  return c;
}

/* Plain run u from its file into fd at the same guest offset; buf (room
 * for u->len) when the kernel cannot copy between these two files.  The
 * source ending early is EIO, as a pread of it would be. */
static int
copy_run(int fd, const char *name, const struct run *u, unsigned char *buf)
{
  loff_t in = (loff_t)u->fd_off, out = (loff_t)u->off;
  size_t left = (size_t)u->len;
  int r;

  while (left > 0) {
    ssize_t n = copy_file_range(u->fd, &in, fd, &out, left, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                  errno == EOPNOTSUPP || errno == EBADF))
      break;                        /* not between these two: by hand */
    if (n < 0)
      return bfs_error(-errno, "%s: copying %zu bytes at offset %llu: %s",
                       name, left, (unsigned long long)out, strerror(errno));
    if (n == 0)
      return bfs_error(-EIO, "%s: a layer file ended early at host offset "
                       "%llu (changed under us?)", name,
                       (unsigned long long)in);
    left -= (size_t)n;
  }
  if (left == 0)
    return 0;
  if ((r = bfs_pread_all(u->fd, buf, left, (uint64_t)in)) < 0)
    return bfs_error(-EIO, "%s: reading %zu bytes of a layer at host offset "
                     "%llu: %s", name, left, (unsigned long long)in,
                     r == -EIO ? "file ended early (changed under us?)"
                     : strerror(-r));
  if ((r = bfs_pwrite_all(fd, buf, left, (uint64_t)out)) < 0)
    return bfs_error(r, "%s: write: %s", name, strerror(-r));
  return 0;
}

static int
write_chunk(const struct blk_flatten_opts *o, int fd, const char *name,
            const struct chunk *c)
{
  const uint64_t start = c->idx * FLAT_CHUNK;
  int r = 0;

  for (size_t i = 0; i < c->nr && r == 0; i++) {
    const struct run *u = &c->r[i];
    const unsigned char *p = c->data + (u->off - start);
    if (!u->data) {
      if (o->hole)
        r = o->hole(o->ctx, u->off, u->len);
      continue;
    }
    if (u->fd >= 0)
      r = copy_run(fd, name, u, c->data + (u->off - start));
    else if (o->write)
      r = o->write(o->ctx, fd, p, (size_t)u->len, u->off);
    else if ((r = bfs_pwrite_all(fd, p, (size_t)u->len, u->off)) < 0)
      r = bfs_error(r, "%s: write: %s", name, strerror(-r));
    if (r == 0 && o->data)
      r = o->data(o->ctx, p, (size_t)u->len, u->off);
  }
  return r;
}

int
blk_flatten(const struct blk_flatten_src *src, int fd, const char *name,
            const struct blk_flatten_opts *o)
{
  struct job j = { .src = src };
  pthread_t th[FLAT_MAX_THREADS];
  struct chunk *bufs;
  unsigned nbufs, started = 0;
  int r = 0;

  j.copy_plain = o->copy_plain && !o->write && !o->data;
  j.threads = o->threads;
  if (j.threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    j.threads = n > 0 ? (unsigned)n : 1;
  }
  if (j.threads > FLAT_MAX_THREADS)
    j.threads = FLAT_MAX_THREADS;
  j.nchunks = (src->size + FLAT_CHUNK - 1) / FLAT_CHUNK;
  nbufs = 2 * j.threads + 1;
  if (!(bufs = calloc(nbufs, sizeof *bufs)))
    return bfs_error(-ENOMEM, "out of memory");
  pthread_mutex_init(&j.lock, NULL);
  pthread_cond_init(&j.have_full, NULL);
  pthread_cond_init(&j.have_free, NULL);
  for (unsigned i = 0; i < nbufs; i++) {
    if (!(bufs[i].data = malloc(FLAT_CHUNK))) {
      r = bfs_error(-ENOMEM, "out of memory");
      goto out;
    }
    bufs[i].next = j.free;
    j.free = &bufs[i];
  }
  j.readers_left = j.threads;
  for (; started < j.threads; started++)
    if (pthread_create(&th[started], NULL, reader, &j) != 0)
      break;
  pthread_mutex_lock(&j.lock);
  j.readers_left -= j.threads - started;        /* never started */
  pthread_mutex_unlock(&j.lock);
  if (started == 0) {
    r = bfs_error(-EAGAIN, "cannot start threads");
    goto out;
  }
  for (uint64_t idx = 0; idx < j.nchunks; idx++) {
    struct chunk *c = take(&j, idx);
    if (!c)
      break;
    bfs_clear_error();
    if ((r = write_chunk(o, fd, name, c)) < 0)
      job_fail(&j, r);
    pthread_mutex_lock(&j.lock);
    c->next = j.free;
    j.free = c;
    pthread_cond_signal(&j.have_free);
    pthread_mutex_unlock(&j.lock);
    if (r < 0)
      break;
  }
  for (unsigned i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  if (j.err)
    r = bfs_error(j.err, "%s", j.msg);
out:
  for (unsigned i = 0; i < nbufs; i++) {
    free(bufs[i].data);
    free(bufs[i].r);
  }
  free(bufs);
  pthread_cond_destroy(&j.have_full);
  pthread_cond_destroy(&j.have_free);
  pthread_mutex_destroy(&j.lock);
  return r;
}

/* ---- a bfs_blk as the source ---- */

static int
blk_extent(void *ctx, uint64_t off, uint64_t max, uint64_t *len, bool *data,
           int *fd, uint64_t *fd_off)
{
  struct bfs_blk_status st;
  int r = bfs_blk_block_status(ctx, off, max, &st);
  if (r < 0)
    return r;
  *len = st.len;
  *data = st.kind == BFS_BLK_DATA;
  if (fd && *data) {          /* plain for all of len: st.fd, else -1 */
    *fd = st.fd;
    *fd_off = st.fd_off;
  }
  return 0;
}

static int
blk_read(void *ctx, void *buf, size_t len, uint64_t off)
{
  return bfs_blk_pread(ctx, buf, len, off);
}

static void
blk_ahead(void *ctx, uint64_t off, uint64_t len)
{
  struct bfs_blk *b = ctx;
  if (off < b->size)
    bfs_blk_prefetch(b, off, len < b->size - off ? len : b->size - off);
}

void
blk_flatten_src_blk(struct bfs_blk *b, struct blk_flatten_src *src)
{
  *src = (struct blk_flatten_src){ .size = b->size, .ctx = b,
                                   .extent = blk_extent, .pread = blk_read,
                                   .prefetch = blk_ahead };
}
