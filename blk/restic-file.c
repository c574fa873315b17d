/* restic-file.c — random access to one file of a snapshot.
 *
 * At open, every content blob is looked up in the index once: its decoded
 * length gives the prefix sums start[i] (start[n] = file size, checked
 * against the node's size: a file whose blobs do not add up is -EIO, never
 * a short file).  A read binary-searches the first blob, then copies from
 * each blob it touches through the repository's LRU (restic-repo.c), so
 * only those blobs are read and decoded.  restic_file_prefetch decodes a
 * range's blobs into that LRU ahead of a stream (the mount's read-ahead
 * runs it on the disk pool's workers: blobs decode in parallel).
 *
 * Zero blobs: restic stores identical chunks once, so the zero chunks of
 * an image are one blob id repeated.  Ids that occur more than once in the
 * file are compared with the SHA-256 of zeros of their length (memoised by
 * the repository per length, at most RESTIC_ZERO_CHECKS hashes per open);
 * such blobs are reported as zero by restic_file_extent and are never read
 * (the index entry, authenticated by its MAC'd index file, vouches for it).
 *
 * Thread-safe: the file is immutable after open.
 */
#include "blk/restic-internal.h"

#include "common/checked.h"
#include "common/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define RESTIC_ZERO_CHECKS 8

struct restic_file {
  struct restic_repo *r;
  char *name;
  uint64_t size;
  size_t n;
  uint8_t (*ids)[RESTIC_ID_LEN];
  uint64_t *start;           /* n + 1 prefix sums */
  uint8_t *zero;             /* per blob: 1 when all zeros */
};

static int
cmp_idx(const void *a, const void *b, void *arg)
{
  const uint8_t (*ids)[RESTIC_ID_LEN] = arg;
  return memcmp(ids[*(const size_t *)a], ids[*(const size_t *)b],
                RESTIC_ID_LEN);
}

/* mark blobs whose repeated id is the hash of zeros */
static void
find_zero_blobs(struct restic_file *f)
{
  size_t *ord = malloc(f->n * sizeof *ord);
  unsigned checks = 0;
  if (!ord)
    return;                      /* only an optimisation */
  for (size_t i = 0; i < f->n; i++)
    ord[i] = i;
  qsort_r(ord, f->n, sizeof *ord, cmp_idx, f->ids);
  for (size_t i = 0; i + 1 < f->n && checks < RESTIC_ZERO_CHECKS;) {
    size_t j = i + 1;
    while (j < f->n && !memcmp(f->ids[ord[i]], f->ids[ord[j]], RESTIC_ID_LEN))
      j++;
    if (j - i > 1) {
      uint64_t len = f->start[ord[i] + 1] - f->start[ord[i]];
      checks++;
      if (restic_repo_is_zero_id(f->r, f->ids[ord[i]], (uint32_t)len))
        for (size_t k = i; k < j; k++)
          f->zero[ord[k]] = 1;
    }
    i = j;
  }
  free(ord);
}

int
restic_file_open(struct restic_repo *r, const struct restic_node *n,
                 struct restic_file **out)
{
  const char *rn = restic_repo_name(r);
  if (n->type != RESTIC_NODE_FILE)
    return bfs_error(-EISDIR, "%s: %s: not a regular file", rn, n->path);
  struct restic_file *f = calloc(1, sizeof *f);
  if (!f)
    return bfs_error(-ENOMEM, "%s: out of memory", rn);
  f->r = r;
  f->n = n->n_content;
  f->name = strdup(n->path);
  f->ids = malloc((f->n ? f->n : 1) * sizeof *f->ids);
  f->start = malloc((f->n + 1) * sizeof *f->start);
  f->zero = calloc(f->n ? f->n : 1, 1);
  restic_repo_ref(r);
  int ret = 0;
  if (!f->name || !f->ids || !f->start || !f->zero) {
    ret = bfs_error(-ENOMEM, "%s: out of memory", rn);
    goto fail;
  }
  if (f->n)
    memcpy(f->ids, n->content, f->n * sizeof *f->ids);
  f->start[0] = 0;
  for (size_t i = 0; i < f->n; i++) {
    const struct restic_blob *b = restic_repo_blob(r, f->ids[i]);
    while (b && b->type != RESTIC_BLOB_DATA)
      b = restic_repo_blob_next(r, b);
    if (!b) {
      char hex[2 * RESTIC_ID_LEN + 1];
      restic_id_hex(f->ids[i], hex);
      ret = bfs_error(-EIO, "%s: %s: data blob %s (#%zu) is not in the index",
                      rn, n->path, hex, i);
      goto fail;
    }
    if (ck_add(f->start[i], (uint64_t)b->plain_len, &f->start[i + 1])) {
      ret = bfs_error(-EIO, "%s: %s: blob lengths overflow", rn, n->path);
      goto fail;
    }
  }
  f->size = f->start[f->n];
  if (f->size != n->size) {
    ret = bfs_error(-EIO, "%s: %s: content blobs hold %" PRIu64 " bytes, "
                    "the tree says %" PRIu64, rn, n->path, f->size, n->size);
    goto fail;
  }
  find_zero_blobs(f);
  *out = f;
  return 0;
fail:
  restic_file_close(f);
  return ret;
}

uint64_t
restic_file_size(const struct restic_file *f)
{
  return f->size;
}

const char *
restic_file_name(const struct restic_file *f)
{
  return f->name;
}

/* index of the blob holding off (off < size) */
static size_t
blob_at(const struct restic_file *f, uint64_t off)
{
  size_t lo = 0, hi = f->n;      /* start[lo] <= off < start[hi] */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (f->start[mid] <= off)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

int
restic_file_pread(struct restic_file *f, void *buf, size_t len, uint64_t off)
{
  uint8_t *p = buf;
  if (!ck_range_ok(off, len, f->size))
    return bfs_error(-EINVAL, "%s: read of %zu bytes at %" PRIu64
                     " past the end (%" PRIu64 ")", f->name, len, off, f->size);
  if (len == 0)
    return 0;
  size_t i = blob_at(f, off);
  while (len) {
    uint64_t in = off - f->start[i];
    uint64_t avail = f->start[i + 1] - off;
    size_t n = avail < len ? (size_t)avail : len;
    if (f->zero[i]) {
      memset(p, 0, n);
    } else if (n) {
      struct restic_cached *c;
      int ret = restic_blob_get(f->r, f->ids[i], RESTIC_BLOB_DATA, &c);
      if (ret < 0)
        return bfs_error_prefix(ret, "%s: read at %" PRIu64 ": ", f->name, off);
      memcpy(p, c->data + in, n);
      restic_blob_put(f->r, c);
    }
    p += n;
    len -= n;
    off += n;
    i++;
  }
  return 0;
}

void
restic_file_prefetch(struct restic_file *f, uint64_t off, uint64_t len)
{
  if (off >= f->size || !len)
    return;
  uint64_t end = len < f->size - off ? off + len : f->size;
  for (size_t i = blob_at(f, off); i < f->n && f->start[i] < end; i++) {
    struct restic_cached *c;
    if (f->zero[i] || f->start[i + 1] == f->start[i])
      continue;
    if (restic_blob_get(f->r, f->ids[i], RESTIC_BLOB_DATA, &c) < 0) {
      bfs_clear_error();         /* the read that needs it will say */
      return;
    }
    restic_blob_put(f->r, c);
  }
}

int
restic_file_extent(struct restic_file *f, uint64_t off, uint64_t *start,
                   uint64_t *len, bool *zero)
{
  if (off >= f->size)
    return bfs_error(-EINVAL, "%s: offset %" PRIu64 " past the end (%" PRIu64
                     ")", f->name, off, f->size);
  size_t i = blob_at(f, off);
  /* empty blobs cannot hold off; skip them */
  while (f->start[i + 1] <= off)
    i++;
  *start = f->start[i];
  *len = f->start[i + 1] - f->start[i];
  *zero = f->zero[i];
  return 0;
}

void
restic_file_close(struct restic_file *f)
{
  if (!f)
    return;
  restic_close(f->r);
  free(f->name);
  free(f->ids);
  free(f->start);
  free(f->zero);
  free(f);
}
