/* pbs-store.c — the PBS chunk store: DataBlob decoding and a shared,
 * bounded cache of verified chunks (see pbs.h).
 *
 * THREAD MODEL: one mutex per store guards the hash table, the LRU list,
 * the byte count and the zero-digest table; chunk files are read and
 * decoded outside it.  An entry is LOADING (its loader works unlocked,
 * others wanting the same digest wait on the condition variable) or
 * READY (in the LRU).  Readers hold a reference while they copy out;
 * eviction skips referenced entries, so the cache may exceed its bound
 * by what readers hold at that moment, never more.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>
#include <zstd.h>

#include "blk/pbs-int.h"
#include "common/beneath.h"
#include "common/error.h"
#include "common/htab.h"
#include "common/ioutil.h"

#define NBUCKETS 1024                   /* to start with; the table grows */
#define ZERO_LENS 8

enum { LOADING, READY };

struct pbs_chunk {
  unsigned char digest[32];
  unsigned char *data;
  size_t len;
  int refs, state;
  struct bfs_hlink h;                   /* in the store's table, by digest */
  struct pbs_chunk *prev, *next;
};

struct pbs_store {
  int root_fd, chunks_fd;
  char *name;
  bool has_key;
  struct pbs_key key;
  size_t cap, bytes;
  int refs;
  pthread_mutex_t lock;
  pthread_cond_t loaded;
  struct bfs_htab chunks;
  struct pbs_chunk *head, *tail;        /* LRU: head most recent */
  struct { size_t len; unsigned char d[32]; } zero[ZERO_LENS];
  size_t nzero;
  uint64_t loads, hits;
};

static const unsigned char M_PLAIN[8] = { 66, 171, 56, 7, 190, 131, 112, 161 };
static const unsigned char M_ZSTD[8] = { 49, 185, 88, 66, 111, 182, 163, 127 };
static const unsigned char M_ENC[8] = { 123, 103, 133, 190, 34, 45, 76, 240 };
static const unsigned char M_ENCZ[8] = { 230, 89, 27, 191, 11, 191, 216, 11 };

void
pbs_hex(const unsigned char d[32], char out[65])
{
  for (int i = 0; i < 32; i++)
    sprintf(out + 2 * i, "%02x", d[i]);
}

void
pbs_digest(const unsigned char *data, size_t len, const struct pbs_key *key,
           unsigned char out[32])
{
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  unsigned int n = 32;

  /* allocation failure: a digest that matches nothing, so EIO follows */
  memset(out, 0, 32);
  if (!c)
    return;
  if (!EVP_DigestInit_ex(c, EVP_sha256(), NULL) ||
      !EVP_DigestUpdate(c, data, len) ||
      (key && !EVP_DigestUpdate(c, key->id, 32)) ||
      !EVP_DigestFinal_ex(c, out, &n))
    memset(out, 0, 32);
  EVP_MD_CTX_free(c);
}

static int
gcm_decrypt(const struct pbs_key *key, const unsigned char *iv,
            const unsigned char *tag, const unsigned char *in, size_t len,
            unsigned char *out)
{
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int n = 0, ok;

  if (!c)
    return -ENOMEM;
  ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 16, NULL) &&
       EVP_DecryptInit_ex(c, NULL, NULL, key->enc, iv) &&
       (len == 0 || EVP_DecryptUpdate(c, out, &n, in, (int)len)) &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag) &&
       EVP_DecryptFinal_ex(c, out + n, &n);
  EVP_CIPHER_CTX_free(c);
  return ok ? 0 : -EBADMSG;
}

static int
unzstd(const unsigned char *in, size_t len, size_t max, const char *what,
       unsigned char **out, size_t *out_len)
{
  unsigned char *buf = malloc(max ? max : 1);
  size_t n;

  if (!buf)
    return bfs_error(-ENOMEM, "%s: out of memory", what);
  n = ZSTD_decompress(buf, max, in, len);
  if (ZSTD_isError(n)) {
    free(buf);
    return bfs_error(-EIO, "%s: zstd data corrupt or larger than %zu bytes:"
                     " %s", what, max, ZSTD_getErrorName(n));
  }
  *out = buf;
  *out_len = n;
  return 0;
}

int
pbs_blob_decode(const unsigned char *raw, size_t len,
                const struct pbs_key *key, size_t max, const char *what,
                unsigned char **out, size_t *out_len)
{
  bool enc, comp;
  size_t hs;
  uint32_t crc;
  const unsigned char *p;
  unsigned char *plain;
  int r;

  *out = NULL;
  if (len < 12)
    return bfs_error(-EIO, "%s: %zu bytes, too short for a data blob", what,
                     len);
  if (!memcmp(raw, M_PLAIN, 8))
    enc = false, comp = false;
  else if (!memcmp(raw, M_ZSTD, 8))
    enc = false, comp = true;
  else if (!memcmp(raw, M_ENC, 8))
    enc = true, comp = false;
  else if (!memcmp(raw, M_ENCZ, 8))
    enc = true, comp = true;
  else
    return bfs_error(-EIO, "%s: not a data blob (unknown magic)", what);
  hs = enc ? 44 : 12;
  if (len < hs)
    return bfs_error(-EIO, "%s: encrypted blob of %zu bytes is shorter than "
                     "its header", what, len);
  crc = (uint32_t)raw[8] | (uint32_t)raw[9] << 8 | (uint32_t)raw[10] << 16 |
        (uint32_t)raw[11] << 24;
  if (crc32(0, raw + hs, (uInt)(len - hs)) != crc)
    return bfs_error(-EIO, "%s: blob CRC32 mismatch (file corrupt)", what);
  p = raw + hs;
  len -= hs;
  if (enc) {
    if (!key)
      return bfs_error(-ENOKEY, "%s: encrypted, and no key was given "
                       "(-o pbs_keyfile=FILE)", what);
    if (len > (comp ? PBS_MAX_BLOB : max))
      return bfs_error(-EIO, "%s: encrypted blob larger than %zu bytes",
                       what, comp ? (size_t)PBS_MAX_BLOB : max);
    if (!(plain = malloc(len ? len : 1)))
      return bfs_error(-ENOMEM, "%s: out of memory", what);
    if ((r = gcm_decrypt(key, raw + 12, raw + 28, p, len, plain)) < 0) {
      free(plain);
      return r == -ENOMEM ? bfs_error(r, "%s: out of memory", what)
                          : bfs_error(-EIO, "%s: decryption failed: the "
                                      "AES-GCM tag does not match (wrong "
                                      "key, or the blob is corrupt)", what);
    }
    if (!comp) {
      *out = plain;
      *out_len = len;
      return 0;
    }
    r = unzstd(plain, len, max, what, out, out_len);
    free(plain);
    return r;
  }
  if (comp)
    return unzstd(p, len, max, what, out, out_len);
  if (len > max)
    return bfs_error(-EIO, "%s: blob holds %zu bytes, more than %zu", what,
                     len, max);
  if (!(plain = malloc(len ? len : 1)))
    return bfs_error(-ENOMEM, "%s: out of memory", what);
  memcpy(plain, p, len);
  *out = plain;
  *out_len = len;
  return 0;
}

int
pbs_snapshot_finished(int snap_dirfd, const char *name)
{
  struct stat st;

  if (fstatat(snap_dirfd, "index.json.blob", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISREG(st.st_mode))
    return 0;
  if (errno == ENOENT || errno == 0)
    return bfs_error(-ENOENT, "%s: unfinished snapshot (no index.json.blob)",
                     name);
  return bfs_error(-errno, "%s/index.json.blob: %s", name, strerror(errno));
}

/* ---- the store ---- */

int
pbs_store_open(int root_fd, const char *name, const struct pbs_key *key,
               size_t cache_bytes, struct pbs_store **out)
{
  struct pbs_store *s;
  int cfd;

  *out = NULL;
  cfd = openat(root_fd, ".chunks", O_PATH | O_DIRECTORY | O_NOFOLLOW |
               O_CLOEXEC);
  if (cfd < 0) {
    int e = errno;
    close(root_fd);
    return bfs_error(-e, "%s/.chunks: %s (not a PBS datastore?)", name,
                     strerror(e));
  }
  if (!(s = calloc(1, sizeof *s)) || !(s->name = strdup(name)) ||
      bfs_htab_init(&s->chunks, NBUCKETS) < 0) {
    if (s)
      free(s->name);
    free(s);
    close(cfd);
    close(root_fd);
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  }
  s->root_fd = root_fd;
  s->chunks_fd = cfd;
  if (key) {
    s->key = *key;
    s->has_key = true;
  }
  s->cap = cache_bytes ? cache_bytes : PBS_DEFAULT_CACHE;
  s->refs = 1;
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->loaded, NULL);
  *out = s;
  return 0;
}

void
pbs_store_ref(struct pbs_store *s)
{
  pthread_mutex_lock(&s->lock);
  s->refs++;
  pthread_mutex_unlock(&s->lock);
}

void
pbs_store_unref(struct pbs_store *s)
{
  int left;

  if (!s)
    return;
  pthread_mutex_lock(&s->lock);
  left = --s->refs;
  pthread_mutex_unlock(&s->lock);
  if (left)
    return;
  struct bfs_htab_iter it;
  bfs_htab_iter_init(&it, &s->chunks);
  for (struct bfs_hlink *l; (l = bfs_htab_iter_next(&it)); ) {
    struct pbs_chunk *c = bfs_container_of(l, struct pbs_chunk, h);
    free(c->data);
    free(c);
  }
  bfs_htab_free(&s->chunks);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->loaded);
  close(s->chunks_fd);
  close(s->root_fd);
  free(s->name);
  free(s);
}

const char *
pbs_store_name(const struct pbs_store *s)
{
  return s->name;
}

void
pbs_store_stats(struct pbs_store *s, struct pbs_store_stats *st)
{
  pthread_mutex_lock(&s->lock);
  st->loads = s->loads;
  st->hits = s->hits;
  st->bytes_cached = s->bytes;
  pthread_mutex_unlock(&s->lock);
}

int
pbs_store_zero_digest(struct pbs_store *s, size_t len, unsigned char out[32])
{
  unsigned char *z;

  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; i < s->nzero; i++)
    if (s->zero[i].len == len) {
      memcpy(out, s->zero[i].d, 32);
      pthread_mutex_unlock(&s->lock);
      return 0;
    }
  pthread_mutex_unlock(&s->lock);
  if (!(z = calloc(1, len ? len : 1)))
    return bfs_error(-ENOMEM, "%s: out of memory", s->name);
  pbs_digest(z, len, s->has_key ? &s->key : NULL, out);
  free(z);
  pthread_mutex_lock(&s->lock);
  if (s->nzero < ZERO_LENS) {
    s->zero[s->nzero].len = len;
    memcpy(s->zero[s->nzero++].d, out, 32);
  }
  pthread_mutex_unlock(&s->lock);
  return 0;
}

static uint64_t
digest_hash(const unsigned char d[32])
{
  return bfs_hash_bytes(d, 32, 0);
}

/* s->lock held */
static struct pbs_chunk *
chunk_find(struct pbs_store *s, const unsigned char d[32])
{
  BFS_HTAB_FOR_HASH(&s->chunks, l, digest_hash(d)) {
    struct pbs_chunk *c = bfs_container_of(l, struct pbs_chunk, h);
    if (!memcmp(c->digest, d, 32))
      return c;
  }
  return NULL;
}

static void
lru_unlink(struct pbs_store *s, struct pbs_chunk *c)
{
  if (c->prev)
    c->prev->next = c->next;
  else if (s->head == c)
    s->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else if (s->tail == c)
    s->tail = c->prev;
  c->prev = c->next = NULL;
}

static void
lru_front(struct pbs_store *s, struct pbs_chunk *c)
{
  c->next = s->head;
  c->prev = NULL;
  if (s->head)
    s->head->prev = c;
  s->head = c;
  if (!s->tail)
    s->tail = c;
}

static void
evict(struct pbs_store *s)
{
  for (struct pbs_chunk *c = s->tail, *p; c && s->bytes > s->cap; c = p) {
    p = c->prev;
    if (c->refs)
      continue;
    lru_unlink(s, c);
    bfs_htab_remove(&s->chunks, &c->h);
    s->bytes -= c->len;
    free(c->data);
    free(c);
  }
}

/* read, decode and verify one chunk file (unlocked) */
static int
load_chunk(struct pbs_store *s, const unsigned char d[32], size_t len,
           unsigned char **out)
{
  char hex[65], rel[80], what[160];
  struct stat st;
  unsigned char *raw, *plain = NULL, got[32];
  size_t plen = 0;
  int fd, r;

  pbs_hex(d, hex);
  snprintf(rel, sizeof rel, "%.4s/%s", hex, hex);
  snprintf(what, sizeof what, "%s: chunk %s", s->name, hex);
  if ((fd = bfs_open_beneath(s->chunks_fd, NULL, rel)) < 0)
    return bfs_error(-EIO, "%s: %s", what, fd == -ENOENT ? "missing from "
                     ".chunks" : bfs_last_error());
  if (fstat(fd, &st) < 0 || st.st_size < 12 ||
      (uint64_t)st.st_size > (uint64_t)len + 44) {
    close(fd);
    return bfs_error(-EIO, "%s: file of %jd bytes cannot hold a chunk of "
                     "%zu bytes", what, (intmax_t)st.st_size, len);
  }
  if (!(raw = malloc((size_t)st.st_size))) {
    close(fd);
    return bfs_error(-ENOMEM, "%s: out of memory", what);
  }
  r = bfs_pread_all(fd, raw, (size_t)st.st_size, 0);
  close(fd);
  if (r < 0) {
    free(raw);
    return bfs_error(-EIO, "%s: read: %s", what, strerror(-r));
  }
  r = pbs_blob_decode(raw, (size_t)st.st_size, s->has_key ? &s->key : NULL,
                      len, what, &plain, &plen);
  free(raw);
  if (r < 0)
    return r == -ENOKEY || r == -ENOMEM ? r : -EIO;
  if (plen != len) {
    free(plain);
    return bfs_error(-EIO, "%s: holds %zu bytes, the index says %zu", what,
                     plen, len);
  }
  pbs_digest(plain, plen, s->has_key ? &s->key : NULL, got);
  if (memcmp(got, d, 32)) {
    free(plain);
    return bfs_error(-EIO, "%s: digest mismatch: the chunk's content is "
                     "corrupt%s", what, s->has_key ? " (or another key)" : "");
  }
  *out = plain;
  return 0;
}

int
pbs_store_get(struct pbs_store *s, const unsigned char digest[32], size_t len,
              struct pbs_chunk **out)
{
  struct pbs_chunk *c;
  unsigned char *data = NULL;
  int r;

  pthread_mutex_lock(&s->lock);
  for (;;) {
    if (!(c = chunk_find(s, digest)))
      break;
    if (c->state == LOADING) {
      pthread_cond_wait(&s->loaded, &s->lock);
      continue;
    }
    if (c->len != len) {
      pthread_mutex_unlock(&s->lock);
      return bfs_error(-EIO, "%s: chunk used with lengths %zu and %zu",
                       s->name, c->len, len);
    }
    c->refs++;
    s->hits++;
    lru_unlink(s, c);
    lru_front(s, c);
    pthread_mutex_unlock(&s->lock);
    *out = c;
    return 0;
  }
  if (!(c = calloc(1, sizeof *c))) {
    pthread_mutex_unlock(&s->lock);
    return bfs_error(-ENOMEM, "%s: out of memory", s->name);
  }
  memcpy(c->digest, digest, 32);
  c->len = len;
  c->refs = 1;
  c->state = LOADING;
  bfs_htab_insert(&s->chunks, &c->h, digest_hash(digest));
  pthread_mutex_unlock(&s->lock);

  r = load_chunk(s, digest, len, &data);

  pthread_mutex_lock(&s->lock);
  if (r < 0) {
    bfs_htab_remove(&s->chunks, &c->h);
    free(c);
    c = NULL;
  }
  else {
    c->data = data;
    c->state = READY;
    s->loads++;
    s->bytes += len;
    lru_front(s, c);
    evict(s);
  }
  pthread_cond_broadcast(&s->loaded);
  pthread_mutex_unlock(&s->lock);
  *out = c;
  return r;
}

const unsigned char *
pbs_chunk_data(const struct pbs_chunk *c)
{
  return c->data;
}

void
pbs_chunk_put(struct pbs_store *s, struct pbs_chunk *c)
{
  pthread_mutex_lock(&s->lock);
  c->refs--;
  if (!c->refs && s->bytes > s->cap)
    evict(s);
  pthread_mutex_unlock(&s->lock);
}
