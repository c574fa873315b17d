/* restic-repo.c — a local restic repository: keys, config, index, blobs,
 * snapshots and trees.
 *
 * Files are opened beneath the repository's directory descriptor one
 * component at a time (openat, O_NOFOLLOW, O_DIRECTORY for directories),
 * so no symlink inside the repository is followed; names come from readdir
 * (checked to be 64 hex digits) or from ids.  Every file but config is
 * named by the SHA-256 of its bytes, which is checked before decryption.
 *
 * The index is one sorted array of blobs (id, pack, offset, lengths),
 * read-only after open.  Decoded blobs go through one LRU per repository
 * (RESTIC_CACHE_BYTES), whose entries are reference counted so a reader
 * copies out of an entry without holding the lock; decoding happens
 * outside the lock (two threads missing the same blob both decode it, the
 * second insert is dropped).  THREAD MODEL: r->lock guards the LRU list,
 * entry refs and the zero-id memo; everything else is immutable after
 * restic_open.  r->refs is atomic: files hold a reference.
 */
#include "blk/restic-internal.h"

#include "common/checked.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/ioutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESTIC_CACHE_BYTES (32u << 20)
#define RESTIC_ZERO_MEMO 16
#define RESTIC_INFLIGHT 64

struct restic_repo {
  atomic_uint refs;
  int dirfd;
  char *name;
  int version;
  struct restic_key key;
  struct restic_index ix;

  pthread_mutex_t lock;
  struct restic_cached *head, *tail;   /* head: most recently used */
  size_t cache_bytes, cache_max;
  /* blobs being decoded now (lock): a second reader of one waits for the
   * first instead of decoding it again (the kernel's readahead sends
   * several requests into one blob at once) */
  pthread_cond_t decoded;
  uint8_t inflight[RESTIC_INFLIGHT][RESTIC_ID_LEN];
  size_t n_inflight;
  struct { uint32_t len; uint8_t id[RESTIC_ID_LEN]; } zeros[RESTIC_ZERO_MEMO];
  size_t n_zeros;
};

/* open dir/name (name may be NULL: the directory itself) beneath the
 * repository; sub is an optional middle directory (data/xx/) */
static int
open_beneath(const struct restic_repo *r, const char *dir, const char *sub,
             const char *name)
{
  const char *comp[3] = { dir, sub, name };
  int fd = r->dirfd;
  for (size_t i = 0; i < 3; i++) {
    if (!comp[i])
      continue;
    bool last = true;
    for (size_t j = i + 1; j < 3; j++)
      last = last && !comp[j];
    int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY;
    if (!last || !name)
      flags |= O_DIRECTORY;
    int nfd = openat(fd, comp[i], flags);
    int e = errno;
    if (fd != r->dirfd)
      close(fd);
    if (nfd < 0)
      return -e;
    fd = nfd;
  }
  return fd;
}

/* a whole repository file into memory */
static int
read_file(const struct restic_repo *r, const char *dir, const char *name,
          uint8_t **out, size_t *len)
{
  CLEANUP_CLOSE int fd = open_beneath(r, dir, NULL, name);
  struct stat st;
  const char *sep = dir ? "/" : "";
  if (!dir)
    dir = "";
  if (fd < 0)
    return bfs_error(fd, "%s/%s%s%s: %s", r->name, dir, sep, name,
                     strerror(-fd));
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
    return bfs_error(-EIO, "%s/%s%s%s: not a regular file", r->name, dir, sep,
                     name);
  if ((uint64_t)st.st_size > RESTIC_FILE_MAX)
    return bfs_error(-EIO, "%s/%s%s%s: too large (%lld bytes)", r->name, dir,
                     sep, name, (long long)st.st_size);
  uint8_t *buf = malloc((size_t)st.st_size + 1);
  if (!buf)
    return bfs_error(-ENOMEM, "%s/%s%s%s: out of memory", r->name, dir, sep,
                     name);
  int ret = bfs_pread_all(fd, buf, (size_t)st.st_size, 0);
  if (ret < 0) {
    free(buf);
    return bfs_error(ret == -EIO ? -EIO : ret, "%s/%s%s%s: read: %s", r->name,
                     dir, sep, name, ret == -EIO ? "file shrank" : strerror(-ret));
  }
  *out = buf;
  *len = (size_t)st.st_size;
  return 0;
}

static bool
is_id_name(const char *s)
{
  uint8_t id[RESTIC_ID_LEN];
  return restic_hex_id(s, id) == 0;
}

static int
cmp_name(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the names in dir that are ids, sorted; a missing dir is empty */
int
restic_list_dir(const struct restic_repo *r, const char *dir, char ***out, size_t *n)
{
  int fd = open_beneath(r, dir, NULL, NULL);
  *out = NULL;
  *n = 0;
  if (fd == -ENOENT)
    return 0;
  if (fd < 0)
    return bfs_error(fd, "%s/%s: %s", r->name, dir, strerror(-fd));
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return bfs_error(-errno, "%s/%s: %s", r->name, dir, strerror(errno));
  }
  char **v = NULL;
  size_t cap = 0, cnt = 0;
  struct dirent *de;
  int ret = 0;
  while ((de = readdir(d))) {
    if (!is_id_name(de->d_name))
      continue;
    if (cnt == cap) {
      cap = cap ? cap * 2 : 16;
      char **nv = reallocarray(v, cap, sizeof *v);
      if (!nv) {
        ret = -ENOMEM;
        break;
      }
      v = nv;
    }
    if (!(v[cnt] = strdup(de->d_name))) {
      ret = -ENOMEM;
      break;
    }
    cnt++;
  }
  closedir(d);
  if (ret < 0) {
    for (size_t i = 0; i < cnt; i++)
      free(v[i]);
    free(v);
    return bfs_error(ret, "%s/%s: out of memory", r->name, dir);
  }
  if (cnt)
    qsort(v, cnt, sizeof *v, cmp_name);
  *out = v;
  *n = cnt;
  return 0;
}

void
restic_free_names(char **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

/* read dir/name, check its storage id, decrypt and unpack its JSON:
 * calls parse(json, len, label, arg) */
int
restic_load_json_file(struct restic_repo *r, const char *dir, const char *name,
               restic_parse_fn parse, void *arg)
{
  CLEANUP_FREE uint8_t *buf = NULL;
  CLEANUP_FREE uint8_t *owned = NULL;
  char label[4200];
  size_t len;
  int ret;

  snprintf(label, sizeof label, "%s/%s%s%s", r->name, dir ? dir : "",
           dir ? "/" : "", name);
  if ((ret = read_file(r, dir, name, &buf, &len)) < 0)
    return ret;
  if (dir) {
    uint8_t want[RESTIC_ID_LEN], got[RESTIC_ID_LEN];
    restic_hex_id(name, want);
    restic_sha256(buf, len, got);
    if (memcmp(want, got, RESTIC_ID_LEN) != 0)
      return bfs_error(-EIO, "%s: SHA-256 of the file does not match its name",
                       label);
  }
  ret = restic_decrypt(&r->key, buf, len, buf + 16);
  if (ret == -EBADMSG)
    return bfs_error(-EIO, "%s: MAC does not match (corrupt file, or not "
                     "this repository's key)", label);
  if (ret < 0)
    return bfs_error(-EIO, "%s: %s", label,
                     ret == -EINVAL ? "shorter than its encryption"
                                    : "decryption failed");
  const char *json;
  size_t jlen;
  if ((ret = restic_unpack_json(buf + 16, len - RESTIC_CRYPTO_OVERHEAD, label,
                                &json, &jlen, &owned)) < 0)
    return ret;
  ret = parse(json, jlen, label, arg);
  restic_wipe(buf, len);
  return ret;
}

/* try the password on each key file; the first whose data authenticates */
static int
unlock(struct restic_repo *r, const char *pw, size_t pw_len)
{
  char **keys;
  size_t n;
  int ret = restic_list_dir(r, "keys", &keys, &n);
  if (ret < 0)
    return ret;
  if (n == 0)
    return bfs_error(-EIO, "%s: no key files in keys/ (not a restic "
                     "repository?)", r->name);
  ret = -EACCES;
  for (size_t i = 0; i < n && ret == -EACCES; i++) {
    CLEANUP_FREE uint8_t *buf = NULL;
    struct restic_keyfile kf;
    struct restic_key dk;
    char label[4200];
    size_t len;

    snprintf(label, sizeof label, "%s/keys/%s", r->name, keys[i]);
    if ((ret = read_file(r, "keys", keys[i], &buf, &len)) < 0 ||
        (ret = restic_parse_keyfile((char *)buf, len, label, &kf)) < 0)
      break;
    ret = restic_kdf(pw, pw_len, kf.salt, kf.salt_len, kf.n, kf.r, kf.p, &dk);
    if (ret < 0) {
      restic_keyfile_free(&kf);
      ret = bfs_error(-EIO, "%s: scrypt parameters refused (N %" PRIu64
                      " r %" PRIu64 " p %" PRIu64 ")", label, kf.n, kf.r, kf.p);
      break;
    }
    ret = restic_decrypt(&dk, kf.data, kf.data_len, kf.data + 16);
    restic_wipe(&dk, sizeof dk);
    if (ret == 0)
      ret = restic_parse_masterkey((char *)kf.data + 16,
                                   kf.data_len - RESTIC_CRYPTO_OVERHEAD, label,
                                   &r->key);
    else if (ret == -EBADMSG)
      ret = -EACCES;
    else
      ret = bfs_error(-EIO, "%s: key data too short", label);
    restic_keyfile_free(&kf);
  }
  restic_free_names(keys, n);
  if (ret == -EACCES)
    return bfs_error(-EACCES, "%s: wrong password (no key in keys/ opens "
                     "with it)", r->name);
  return ret;
}

static int
parse_config_cb(const char *json, size_t len, const char *label, void *arg)
{
  return restic_parse_config(json, len, label, arg);
}

static int
parse_index_cb(const char *json, size_t len, const char *label, void *arg)
{
  return restic_parse_index(json, len, label, arg);
}

int
restic_open(int dirfd, const char *path, const char *pw, size_t pw_len,
            struct restic_repo **out)
{
  struct restic_repo *r = calloc(1, sizeof *r);
  int ret;

  if (!r)
    return bfs_error(-ENOMEM, "%s: out of memory", path);
  atomic_init(&r->refs, 1);
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->decoded, NULL);
  r->cache_max = RESTIC_CACHE_BYTES;
  r->dirfd = openat(dirfd < 0 ? AT_FDCWD : dirfd, path,
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (!(r->name = strdup(path))) {
    ret = bfs_error(-ENOMEM, "%s: out of memory", path);
    goto fail;
  }
  if (r->dirfd < 0) {
    ret = bfs_error(-errno, "%s: %s", path, strerror(errno));
    goto fail;
  }
  if ((ret = unlock(r, pw, pw_len)) < 0 ||
      (ret = restic_load_json_file(r, NULL, "config", parse_config_cb,
                            &r->version)) < 0)
    goto fail;

  char **names;
  size_t n;
  if ((ret = restic_list_dir(r, "index", &names, &n)) < 0)
    goto fail;
  for (size_t i = 0; i < n && ret == 0; i++)
    ret = restic_load_json_file(r, "index", names[i], parse_index_cb, &r->ix);
  restic_free_names(names, n);
  if (ret < 0)
    goto fail;
  restic_index_sort(&r->ix);
  *out = r;
  return 0;
fail:
  restic_close(r);
  return ret;
}

int
restic_read_password_file(const char *path, char **pw, size_t *len)
{
  CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return bfs_error(-errno, "%s: %s", path, strerror(errno));
  char *buf = malloc(RESTIC_PASSWORD_MAX + 2);
  size_t n = 0;
  if (!buf)
    return bfs_error(-ENOMEM, "%s: out of memory", path);
  for (;;) {
    ssize_t k = read(fd, buf + n, RESTIC_PASSWORD_MAX + 1 - n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0) {
      int e = errno;
      restic_password_free(buf, RESTIC_PASSWORD_MAX + 2);
      return bfs_error(-e, "%s: %s", path, strerror(e));
    }
    if (k == 0)
      break;
    n += (size_t)k;
    if (n > RESTIC_PASSWORD_MAX) {
      restic_password_free(buf, RESTIC_PASSWORD_MAX + 2);
      return bfs_error(-EINVAL, "%s: password file longer than %u bytes",
                       path, RESTIC_PASSWORD_MAX);
    }
  }
  if (n && buf[n - 1] == '\n') {
    n--;
    if (n && buf[n - 1] == '\r')
      n--;
  }
  if (n == 0 || memchr(buf, '\0', n)) {
    restic_password_free(buf, RESTIC_PASSWORD_MAX + 2);
    return bfs_error(-EINVAL, "%s: %s", path, n ? "password contains NUL"
                                                : "empty password");
  }
  buf[n] = '\0';
  *pw = buf;
  *len = n;
  return 0;
}

void
restic_password_free(char *pw, size_t len)
{
  if (!pw)
    return;
  /* the buffer is always RESTIC_PASSWORD_MAX + 2 bytes long */
  (void)len;
  restic_wipe(pw, RESTIC_PASSWORD_MAX + 2);
  free(pw);
}

int
restic_open_password_file(int dirfd, const char *path,
                          const char *password_file, struct restic_repo **out)
{
  char *pw;
  size_t len;
  int ret = restic_read_password_file(password_file, &pw, &len);
  if (ret < 0)
    return ret;
  ret = restic_open(dirfd, path, pw, len, out);
  restic_password_free(pw, len);
  return ret;
}

void
restic_repo_ref(struct restic_repo *r)
{
  atomic_fetch_add(&r->refs, 1);
}

void
restic_close(struct restic_repo *r)
{
  if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
    return;
  for (struct restic_cached *c = r->head, *nx; c; c = nx) {
    nx = c->next;
    free(c);
  }
  if (r->dirfd >= 0)
    close(r->dirfd);
  restic_index_free(&r->ix);
  restic_wipe(&r->key, sizeof r->key);
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->decoded);
  free(r->name);
  free(r);
}

int
restic_repo_version(const struct restic_repo *r)
{
  return r->version;
}

const char *
restic_repo_name(const struct restic_repo *r)
{
  return r->name;
}

const struct restic_blob *
restic_repo_blob(const struct restic_repo *r, const uint8_t id[RESTIC_ID_LEN])
{
  return restic_index_find(&r->ix, id);
}

const struct restic_blob *
restic_repo_blob_next(const struct restic_repo *r, const struct restic_blob *b)
{
  return restic_index_next(&r->ix, b);
}

/* ---- the blob LRU (r->lock held) ---- */
static void
lru_unlink(struct restic_repo *r, struct restic_cached *c)
{
  if (c->prev)
    c->prev->next = c->next;
  else
    r->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    r->tail = c->prev;
  c->prev = c->next = NULL;
}

static void
lru_push(struct restic_repo *r, struct restic_cached *c)
{
  c->next = r->head;
  c->prev = NULL;
  if (r->head)
    r->head->prev = c;
  r->head = c;
  if (!r->tail)
    r->tail = c;
}

static void
lru_evict(struct restic_repo *r)
{
  struct restic_cached *c = r->tail;
  while (c && r->cache_bytes > r->cache_max) {
    struct restic_cached *pv = c->prev;
    if (c->refs == 0) {
      lru_unlink(r, c);
      r->cache_bytes -= c->len;
      free(c);
    }
    c = pv;
  }
}

static struct restic_cached *
lru_find(struct restic_repo *r, const uint8_t id[RESTIC_ID_LEN])
{
  for (struct restic_cached *c = r->head; c; c = c->next)
    if (memcmp(c->id, id, RESTIC_ID_LEN) == 0) {
      lru_unlink(r, c);
      lru_push(r, c);
      c->refs++;
      return c;
    }
  return NULL;
}

/* read + authenticate + decrypt + decompress + hash: a new entry */
static int
decode_blob(struct restic_repo *r, const struct restic_blob *b,
            struct restic_cached **out)
{
  char pack[2 * RESTIC_ID_LEN + 1], blob[2 * RESTIC_ID_LEN + 1], sub[3];
  uint8_t got[RESTIC_ID_LEN];
  int ret;

  restic_id_hex(r->ix.packs[b->pack], pack);
  restic_id_hex(b->id, blob);
  memcpy(sub, pack, 2);
  sub[2] = '\0';

  CLEANUP_CLOSE int fd = open_beneath(r, "data", sub, pack);
  if (fd < 0)
    return bfs_error(-EIO, "%s: pack %s (blob %s): %s", r->name, pack, blob,
                     strerror(-fd));
  CLEANUP_FREE uint8_t *buf = malloc(b->length);
  struct restic_cached *c = malloc(sizeof *c + b->plain_len + 1);
  if (!buf || !c) {
    free(c);
    return bfs_error(-ENOMEM, "%s: out of memory", r->name);
  }
  ret = bfs_pread_all(fd, buf, b->length, b->offset);
  if (ret < 0) {
    free(c);
    return bfs_error(-EIO, "%s: pack %s: blob %s at offset %" PRIu64
                     " length %" PRIu32 ": %s", r->name, pack, blob, b->offset,
                     b->length, ret == -EIO ? "pack is short" : strerror(-ret));
  }
  ret = restic_decrypt(&r->key, buf, b->length,
                       b->compressed ? buf + 16 : c->data);
  if (ret < 0) {
    free(c);
    return bfs_error(-EIO, "%s: pack %s: blob %s at offset %" PRIu64 ": %s",
                     r->name, pack, blob, b->offset,
                     ret == -EBADMSG ? "MAC does not match (corrupt pack)"
                                     : "cannot decrypt");
  }
  if (b->compressed &&
      restic_zstd_into(buf + 16, b->length - RESTIC_CRYPTO_OVERHEAD, c->data,
                       b->plain_len) < 0) {
    free(c);
    return bfs_error(-EIO, "%s: pack %s: blob %s: zstd data does not decode "
                     "to %" PRIu32 " bytes", r->name, pack, blob, b->plain_len);
  }
  restic_sha256(c->data, b->plain_len, got);
  if (memcmp(got, b->id, RESTIC_ID_LEN) != 0) {
    free(c);
    return bfs_error(-EIO, "%s: pack %s: blob %s: SHA-256 of the plaintext "
                     "does not match the blob id", r->name, pack, blob);
  }
  memcpy(c->id, b->id, RESTIC_ID_LEN);
  c->len = b->plain_len;
  c->data[c->len] = '\0';             /* tree JSON is parsed in place */
  c->refs = 1;
  c->prev = c->next = NULL;
  *out = c;
  return 0;
}

static ssize_t
inflight_find(const struct restic_repo *r, const uint8_t id[RESTIC_ID_LEN])
{
  for (size_t i = 0; i < r->n_inflight; i++)
    if (memcmp(r->inflight[i], id, RESTIC_ID_LEN) == 0)
      return (ssize_t)i;
  return -1;
}

/* every copy of the blob in turn (restic does the same): the first that
 * reads, authenticates and hashes wins; else the first failure */
static int
decode_any_copy(struct restic_repo *r, const uint8_t id[RESTIC_ID_LEN],
                int type, struct restic_cached **out)
{
  char first[1024] = "";
  int ret = -ENOENT, tried = 0;
  for (const struct restic_blob *b = restic_index_find(&r->ix, id);
       b && ret < 0; b = restic_index_next(&r->ix, b)) {
    if (b->type != type)
      continue;
    ret = decode_blob(r, b, out);
    if (ret < 0 && tried++ == 0)
      snprintf(first, sizeof first, "%s", bfs_last_error());
  }
  if (ret < 0 && tried == 0) {
    char hex[2 * RESTIC_ID_LEN + 1];
    restic_id_hex(id, hex);
    return bfs_error(-EIO, "%s: %s blob %s is not in the index", r->name,
                     type == RESTIC_BLOB_TREE ? "tree" : "data", hex);
  }
  if (ret < 0)
    return bfs_error(ret, "%s%s", first,
                     tried > 1 ? " (and every other copy fails too)" : "");
  return 0;
}

int
restic_blob_get(struct restic_repo *r, const uint8_t id[RESTIC_ID_LEN],
                int type, struct restic_cached **out)
{
  struct restic_cached *c;
  bool mine = false;
  int ret;

  pthread_mutex_lock(&r->lock);
  while (!(c = lru_find(r, id)) && inflight_find(r, id) >= 0)
    pthread_cond_wait(&r->decoded, &r->lock);  /* another reader decodes it */
  if (!c && r->n_inflight < RESTIC_INFLIGHT) {
    memcpy(r->inflight[r->n_inflight++], id, RESTIC_ID_LEN);
    mine = true;
  }
  pthread_mutex_unlock(&r->lock);
  if (c) {
    *out = c;
    return 0;
  }

  ret = decode_any_copy(r, id, type, &c);

  pthread_mutex_lock(&r->lock);
  if (mine) {
    ssize_t i = inflight_find(r, id);
    if (i >= 0)
      memcpy(r->inflight[i], r->inflight[--r->n_inflight], RESTIC_ID_LEN);
    pthread_cond_broadcast(&r->decoded);
  }
  if (ret == 0) {
    struct restic_cached *other = lru_find(r, id);
    if (other) {
      free(c);
      c = other;
    } else {
      lru_push(r, c);
      r->cache_bytes += c->len;
      lru_evict(r);
    }
  }
  pthread_mutex_unlock(&r->lock);
  if (ret < 0)
    return ret;
  *out = c;
  return 0;
}

void
restic_blob_put(struct restic_repo *r, struct restic_cached *c)
{
  if (!c)
    return;
  pthread_mutex_lock(&r->lock);
  c->refs--;
  lru_evict(r);
  pthread_mutex_unlock(&r->lock);
}

bool
restic_repo_is_zero_id(struct restic_repo *r, const uint8_t id[RESTIC_ID_LEN],
                       uint32_t len)
{
  uint8_t h[RESTIC_ID_LEN];
  bool known = false;

  pthread_mutex_lock(&r->lock);
  for (size_t i = 0; i < r->n_zeros && !known; i++)
    if (r->zeros[i].len == len) {
      memcpy(h, r->zeros[i].id, RESTIC_ID_LEN);
      known = true;
    }
  pthread_mutex_unlock(&r->lock);
  if (!known) {
    uint8_t *z = calloc(1, len ? len : 1);
    if (!z)
      return false;
    restic_sha256(z, len, h);
    free(z);
    pthread_mutex_lock(&r->lock);
    size_t slot = r->n_zeros < RESTIC_ZERO_MEMO ? r->n_zeros++
                                                : len % RESTIC_ZERO_MEMO;
    r->zeros[slot].len = len;
    memcpy(r->zeros[slot].id, h, RESTIC_ID_LEN);
    pthread_mutex_unlock(&r->lock);
  }
  return memcmp(h, id, RESTIC_ID_LEN) == 0;
}

int
restic_load_tree(struct restic_repo *r, const uint8_t id[RESTIC_ID_LEN],
                 struct restic_tree *t)
{
  struct restic_cached *c;
  char label[4200], hex[2 * RESTIC_ID_LEN + 1];
  int ret = restic_blob_get(r, id, RESTIC_BLOB_TREE, &c);
  if (ret < 0)
    return ret;
  restic_id_hex(id, hex);
  snprintf(label, sizeof label, "%s: tree %s", r->name, hex);
  ret = restic_parse_tree((const char *)c->data, c->len, label, t);
  restic_blob_put(r, c);
  return ret;
}
