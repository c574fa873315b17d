/* luks.c — the LUKS crypto object and the passphrase object (see luks.h).
 *
 * The header bytes go into a sealed memfd (anonymous memory, no name in
 * any filesystem) that libcryptsetup opens as a detached header through
 * /proc/self/fd: crypt_load checks it (LUKS1, as QEMU writes it), and
 * crypt_volume_key_get turns the passphrase into the master key.  Metadata
 * locking is off (nothing here writes the header; no lock files in /run).
 * libcryptsetup's messages are collected and end up in the error text.
 * libcryptsetup promises no thread safety and sets up its crypto backend
 * on first use without a lock, so crypt_init and crypt_load are
 * serialised by cs_lock (a lock, not state); the key slot search (PBKDF2,
 * seconds with QEMU's default iter-time) runs on its own crypt_device
 * outside it, so images open in parallel.
 *
 * Sectors: the mode string is MODE[-IVGEN[:HASH]] (dm-crypt's spelling,
 * which QEMU writes): the IV of a sector is its number as 32-bit LE
 * (plain), 64-bit LE (plain64), or that 64-bit LE block encrypted with
 * the hash of the master key (essiv: the same cipher family, key size =
 * digest size, ECB, as QEMU and dm-crypt do).  Each call builds its own
 * EVP contexts, so decryption is thread-safe without locks.  libcrypto
 * has XTS for AES-128/256 only; XTS of other 16-byte-block ciphers in it
 * (AES-192: QEMU writes it) is built here over their ECB.
 *
 * Keys (passphrase, master key, ESSIV key) live in locked buffers that are
 * wiped (OPENSSL_cleanse) before they are freed.
 */
#include <ctype.h>
#include <pthread.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libcryptsetup.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "blk/luks.h"
#include "blk/restic.h"
#include "common/error.h"
#include "common/ioutil.h"

struct secbuf {
  unsigned char *p;
  size_t len;
  bool locked;
};

static int
secbuf_alloc(struct secbuf *s, size_t len)
{
  s->len = len;
  s->p = calloc(1, len ? len : 1);
  if (!s->p)
    return -ENOMEM;
  s->locked = mlock(s->p, s->len ? s->len : 1) == 0;   /* best effort */
  return 0;
}

static void
secbuf_free(struct secbuf *s)
{
  if (!s->p)
    return;
  OPENSSL_cleanse(s->p, s->len);
  if (s->locked)
    munlock(s->p, s->len ? s->len : 1);
  free(s->p);
  s->p = NULL;
}

struct blk_key {
  struct secbuf pass;
};

int
blk_key_from_memory(const void *pass, size_t len, struct blk_key **out)
{
  struct blk_key *k = calloc(1, sizeof *k);

  *out = NULL;
  if (!k || secbuf_alloc(&k->pass, len) < 0) {
    free(k);
    return bfs_error(-ENOMEM, "out of memory for a key");
  }
  memcpy(k->pass.p, pass, len);
  *out = k;
  return 0;
}

int
blk_key_from_file(const char *path, struct blk_key **out)
{
  char *pw;
  size_t len;
  int r;

  *out = NULL;
  if ((r = restic_read_password_file(path, &pw, &len)) < 0)
    return r;
  r = blk_key_from_memory(pw, len, out);
  restic_password_free(pw, len);
  return r;
}

void
blk_key_free(struct blk_key *k)
{
  if (!k)
    return;
  secbuf_free(&k->pass);
  free(k);
}

#define XTS_BLOCK 16

enum ivgen { IV_NONE, IV_PLAIN, IV_PLAIN64, IV_ESSIV };

struct blk_luks {
  char desc[96];                  /* "aes-256-xts-plain64" */
  EVP_CIPHER *cipher, *essiv;
  bool own_xts;                   /* XTS built here over cipher in ECB */
  enum ivgen ivgen;
  unsigned iv_len;
  struct secbuf mk, essiv_key;    /* empty without a key */
};

/* What libcryptsetup said while loading, for the error message. */
struct cs_log {
  char msg[256];
};

static void
cs_log_cb(int level, const char *msg, void *usrptr)
{
  struct cs_log *l = usrptr;
  size_t n;

  if (level != CRYPT_LOG_ERROR || l->msg[0])
    return;
  snprintf(l->msg, sizeof l->msg, "%s", msg);
  n = strlen(l->msg);
  while (n && isspace((unsigned char)l->msg[n - 1]))
    l->msg[--n] = '\0';
}

/* OpenSSL's name of cipher/mode with key of keybytes (XTS: both halves),
 * or an error naming what is not supported. */
static int
evp_name(const char *name, const char *cipher, const char *mode,
         size_t keybytes, char *out, size_t outlen)
{
  size_t bits = (!strcmp(mode, "xts") ? keybytes / 2 : keybytes) * 8;
  char m[8];

  if (strlen(mode) >= sizeof m || (strcmp(mode, "xts") && strcmp(mode, "cbc")
                                   && strcmp(mode, "ecb") && strcmp(mode, "ctr")))
    return bfs_error(-ENOTSUP, "%s: LUKS cipher mode '%s' is not supported "
                     "(xts, cbc, ctr, ecb are)", name, mode);
  for (size_t i = 0; i <= strlen(mode); i++)
    m[i] = (char)toupper((unsigned char)mode[i]);
  if (!strcmp(cipher, "aes") || !strcmp(cipher, "camellia"))
    snprintf(out, outlen, "%s-%zu-%s", !strcmp(cipher, "aes") ? "AES"
             : "CAMELLIA", bits, m);
  else if (!strcmp(cipher, "sm4") || !strcmp(cipher, "cast5"))
    snprintf(out, outlen, "%s-%s", !strcmp(cipher, "sm4") ? "SM4" : "CAST5", m);
  else if (!strcmp(cipher, "des3_ede"))
    snprintf(out, outlen, "DES-EDE3-%s", m);
  else
    return bfs_error(-ENOTSUP, "%s: LUKS cipher '%s-%s' is not supported "
                     "(libcrypto has no %s)", name, cipher, mode, cipher);
  return 0;
}

static int
fetch(const char *name, const char *what, const char *evp, size_t keybytes,
      EVP_CIPHER **out)
{
  EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, evp, NULL);

  if (!c)
    return bfs_error(-ENOTSUP, "%s: LUKS cipher %s is not available in "
                     "libcrypto (%s)", name, what, evp);
  if ((size_t)EVP_CIPHER_get_key_length(c) != keybytes) {
    EVP_CIPHER_free(c);
    return bfs_error(-ENOTSUP, "%s: LUKS cipher %s: %zu-byte key does not "
                     "fit %s", name, what, keybytes, evp);
  }
  *out = c;
  return 0;
}

/* Parse MODE[-IVGEN[:HASH]] and set up the ciphers (without keys). */
static int
setup_cipher(struct blk_luks *l, const char *name, const char *cipher,
             const char *spec, size_t keybytes, char *hash, size_t hashlen)
{
  char mode[32], iv[32] = "", evp[64];
  const char *dash = strchr(spec, '-'), *colon;
  int r;

  hash[0] = '\0';
  snprintf(l->desc, sizeof l->desc, "%s-%zu-%s", cipher,
           (!strncmp(spec, "xts", 3) ? keybytes / 2 : keybytes) * 8, spec);
  if (strlen(spec) >= sizeof mode)
    return bfs_error(-ENOTSUP, "%s: LUKS cipher mode '%s' is not supported",
                     name, spec);
  snprintf(mode, sizeof mode, "%.*s", dash ? (int)(dash - spec)
           : (int)strlen(spec), spec);
  if (dash) {
    colon = strchr(dash + 1, ':');
    snprintf(iv, sizeof iv, "%.*s", colon ? (int)(colon - dash - 1)
             : (int)strlen(dash + 1), dash + 1);
    if (colon)
      snprintf(hash, hashlen, "%s", colon + 1);
  }
  if (!iv[0] && strcmp(mode, "ecb"))
    return bfs_error(-ENOTSUP, "%s: LUKS cipher %s has no IV generator",
                     name, l->desc);
  l->ivgen = !iv[0] ? IV_NONE : !strcmp(iv, "plain") ? IV_PLAIN
             : !strcmp(iv, "plain64") ? IV_PLAIN64
             : !strcmp(iv, "essiv") ? IV_ESSIV : (enum ivgen)-1;
  if ((int)l->ivgen < 0 || (l->ivgen == IV_ESSIV) != !!hash[0])
    return bfs_error(-ENOTSUP, "%s: LUKS IV generator '%s' of %s is not "
                     "supported (plain, plain64, essiv:HASH are)", name,
                     iv, l->desc);
  if ((r = evp_name(name, cipher, mode, keybytes, evp, sizeof evp)) < 0)
    return r;
  if (!strcmp(mode, "xts") && !(l->cipher = EVP_CIPHER_fetch(NULL, evp, NULL))) {
    /* libcrypto has AES-128/256-XTS only: XTS over the ECB cipher */
    if ((r = evp_name(name, cipher, "ecb", keybytes / 2, evp, sizeof evp)) < 0
        || (r = fetch(name, l->desc, evp, keybytes / 2, &l->cipher)) < 0)
      return r;
    if (EVP_CIPHER_get_block_size(l->cipher) != XTS_BLOCK)
      return bfs_error(-ENOTSUP, "%s: LUKS cipher %s: XTS needs 16-byte "
                       "blocks", name, l->desc);
    l->own_xts = true;
  }
  else if (!l->cipher && (r = fetch(name, l->desc, evp, keybytes,
                                    &l->cipher)) < 0)
    return r;
  else if ((size_t)EVP_CIPHER_get_key_length(l->cipher) != keybytes)
    return bfs_error(-ENOTSUP, "%s: LUKS cipher %s: %zu-byte key does not "
                     "fit %s", name, l->desc, keybytes, evp);
  l->iv_len = l->own_xts ? XTS_BLOCK
              : (unsigned)EVP_CIPHER_get_iv_length(l->cipher);
  if (l->ivgen != IV_NONE && l->iv_len < 8)
    return bfs_error(-ENOTSUP, "%s: LUKS cipher %s: IV of %u bytes is not "
                     "supported", name, l->desc, l->iv_len);
  if (l->ivgen == IV_ESSIV) {
    EVP_MD *md = EVP_MD_fetch(NULL, hash, NULL);
    size_t dl = md ? (size_t)EVP_MD_get_size(md) : 0;
    EVP_MD_free(md);
    if (!md)
      return bfs_error(-ENOTSUP, "%s: LUKS ESSIV hash '%s' is not available "
                       "in libcrypto", name, hash);
    /* the ESSIV cipher: the same family in ECB keyed by the digest */
    if ((r = evp_name(name, cipher, "ecb", dl, evp, sizeof evp)) < 0 ||
        (r = fetch(name, l->desc, evp, dl, &l->essiv)) < 0)
      return r;
    if ((unsigned)EVP_CIPHER_get_block_size(l->essiv) != l->iv_len)
      return bfs_error(-ENOTSUP, "%s: LUKS cipher %s: ESSIV block size does "
                       "not match the IV", name, l->desc);
  }
  return 0;
}

static int
essiv_key(struct blk_luks *l, const char *name, const char *hash)
{
  EVP_MD *md = EVP_MD_fetch(NULL, hash, NULL);
  unsigned n = 0;
  int ok;

  if (!md || secbuf_alloc(&l->essiv_key, (size_t)EVP_MD_get_size(md)) < 0) {
    EVP_MD_free(md);
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  }
  ok = EVP_Digest(l->mk.p, l->mk.len, l->essiv_key.p, &n, md, NULL);
  EVP_MD_free(md);
  if (!ok || n != l->essiv_key.len)
    return bfs_error(-EIO, "%s: ESSIV key: %s failed", name, hash);
  return 0;
}

static pthread_mutex_t cs_lock = PTHREAD_MUTEX_INITIALIZER;

/* The header as a file libcryptsetup can open: a memfd. */
static int
header_memfd(const void *hdr, size_t len, const char *name)
{
  int fd = memfd_create("bfs-luks-header", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  int r;

  if (fd < 0)
    return bfs_error(-errno, "%s: memfd: %s", name, strerror(errno));
  if ((r = bfs_write_all(fd, hdr, len)) < 0) {
    close(fd);
    return bfs_error(r, "%s: memfd: %s", name, strerror(-r));
  }
  fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
  return fd;
}

static int
load(struct blk_luks *l, const void *hdr, size_t len,
     const struct blk_key *key, const char *name)
{
  struct crypt_device *cd = NULL;
  struct cs_log log = { "" };
  char path[64], hash[32];
  const char *cipher, *mode;
  int fd, r, ks, vk;
  bool locked;
  size_t vklen;

  if ((fd = header_memfd(hdr, len, name)) < 0)
    return fd;
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  pthread_mutex_lock(&cs_lock);
  locked = true;
  if ((r = crypt_init(&cd, path)) < 0) {
    r = bfs_error(-EIO, "%s: LUKS header: libcryptsetup cannot open it: %s",
                  name, strerror(-r));
    goto out;
  }
  crypt_set_log_callback(cd, cs_log_cb, &log);
  crypt_metadata_locking(cd, 0);
  r = crypt_load(cd, CRYPT_LUKS1, NULL);
  pthread_mutex_unlock(&cs_lock);
  locked = false;
  if (r < 0) {
    r = bfs_error(-EIO, "%s: LUKS header (%zu bytes) is damaged or not LUKS1"
                  "%s%s", name, len, log.msg[0] ? ": " : "", log.msg);
    goto out;
  }
  cipher = crypt_get_cipher(cd);
  mode = crypt_get_cipher_mode(cd);
  vk = crypt_get_volume_key_size(cd);
  if (!cipher || !mode || vk <= 0 || vk > 512) {
    r = bfs_error(-EIO, "%s: LUKS header names no usable cipher", name);
    goto out;
  }
  if ((r = setup_cipher(l, name, cipher, mode, (size_t)vk, hash,
                        sizeof hash)) < 0 || !key)
    goto out;
  if (secbuf_alloc(&l->mk, (size_t)vk) < 0) {
    r = bfs_error(-ENOMEM, "%s: out of memory", name);
    goto out;
  }
  vklen = l->mk.len;
  ks = crypt_volume_key_get(cd, CRYPT_ANY_SLOT, (char *)l->mk.p, &vklen,
                            (const char *)key->pass.p, key->pass.len);
  if (ks == -EPERM || ks == -ENOENT)
    r = bfs_error(-EACCES, "%s: LUKS: wrong passphrase (no key slot opens "
                  "with it)", name);
  else if (ks < 0)
    r = bfs_error(-ENOTSUP, "%s: LUKS key slots (%s): libcryptsetup cannot "
                  "decrypt them here (%s%s%s)", name, l->desc, strerror(-ks),
                  log.msg[0] ? ": " : "", log.msg);
  else if (vklen != l->mk.len)
    r = bfs_error(-EIO, "%s: LUKS master key of %zu bytes, header says %zu",
                  name, vklen, l->mk.len);
  else
    r = l->ivgen == IV_ESSIV ? essiv_key(l, name, hash) : 0;
  if (r < 0)
    secbuf_free(&l->mk);
out:
  crypt_free(cd);
  if (locked)
    pthread_mutex_unlock(&cs_lock);
  close(fd);
  return r;
}

int
blk_luks_open(const void *hdr, size_t len, const struct blk_key *key,
              const char *name, struct blk_luks **out)
{
  struct blk_luks *l;
  int r;

  *out = NULL;
  if (len == 0 || len > BLK_LUKS_MAX_HEADER)
    return bfs_error(-EIO, "%s: LUKS header of %zu bytes (1..%u expected)",
                     name, len, BLK_LUKS_MAX_HEADER);
  if (!(l = calloc(1, sizeof *l)))
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  if ((r = load(l, hdr, len, key, name)) < 0) {
    blk_luks_free(l);
    return r;
  }
  *out = l;
  return 0;
}

const char *
blk_luks_cipher(const struct blk_luks *l)
{
  return l->desc;
}

bool
blk_luks_has_key(const struct blk_luks *l)
{
  return l->mk.p != NULL;
}

static int
make_iv(struct blk_luks *l, EVP_CIPHER_CTX *ectx, uint64_t sector,
        unsigned char *iv)
{
  uint64_t le = htole64(l->ivgen == IV_PLAIN ? sector & 0xffffffffu : sector);
  int n;

  memset(iv, 0, l->iv_len);
  memcpy(iv, &le, 8);
  if (l->ivgen != IV_ESSIV)
    return 0;
  return EVP_EncryptUpdate(ectx, iv, &n, iv, (int)l->iv_len) &&
         n == (int)l->iv_len ? 0 : -1;
}

/* One sector of XTS (IEEE 1619, no stealing: 512 is whole blocks): the
 * tweak is the IV encrypted with the second key half (tctx), each block
 * is D(C ^ T) ^ T with T multiplied by x in GF(2^128) from block to
 * block; dctx decrypts ECB with the first half. */
static int
xts_sector(EVP_CIPHER_CTX *dctx, EVP_CIPHER_CTX *tctx, unsigned char *p,
           const unsigned char *iv)
{
  unsigned char t[BLK_LUKS_SECTOR];
  int n, ok;

  ok = EVP_EncryptUpdate(tctx, t, &n, iv, XTS_BLOCK) && n == XTS_BLOCK;
  for (size_t b = XTS_BLOCK; ok && b < sizeof t; b += XTS_BLOCK) {
    const unsigned char *prev = t + b - XTS_BLOCK;
    for (int i = 0; i < XTS_BLOCK; i++)
      t[b + i] = (unsigned char)(prev[i] << 1 |
                                 (i ? prev[i - 1] >> 7 : 0));
    if (prev[XTS_BLOCK - 1] & 0x80)
      t[b] ^= 0x87;
  }
  for (size_t i = 0; ok && i < sizeof t; i++)
    p[i] ^= t[i];
  ok = ok && EVP_DecryptUpdate(dctx, p, &n, p, BLK_LUKS_SECTOR) &&
       n == BLK_LUKS_SECTOR;
  for (size_t i = 0; ok && i < sizeof t; i++)
    p[i] ^= t[i];
  OPENSSL_cleanse(t, sizeof t);
  return ok ? 0 : -1;
}

int
blk_luks_decrypt(struct blk_luks *l, void *buf, size_t len, uint64_t sector)
{
  EVP_CIPHER_CTX *ctx = NULL, *ectx = NULL, *tctx = NULL;
  const size_t half = l->mk.len / 2;
  unsigned char *p = buf, iv[EVP_MAX_IV_LENGTH];
  int r = 0, n;

  if (!l->mk.p)
    return bfs_error(-ENOKEY, BLK_LUKS_NEED_KEY);
  if (len % BLK_LUKS_SECTOR)
    return bfs_error(-EINVAL, "LUKS: %zu bytes are not whole sectors", len);
  if (!(ctx = EVP_CIPHER_CTX_new()) ||
      !EVP_DecryptInit_ex2(ctx, l->cipher, l->mk.p, NULL, NULL) ||
      !EVP_CIPHER_CTX_set_padding(ctx, 0) ||
      (l->own_xts && (!(tctx = EVP_CIPHER_CTX_new()) ||
                      !EVP_EncryptInit_ex2(tctx, l->cipher, l->mk.p + half,
                                           NULL, NULL) ||
                      !EVP_CIPHER_CTX_set_padding(tctx, 0))) ||
      (l->essiv && (!(ectx = EVP_CIPHER_CTX_new()) ||
                    !EVP_EncryptInit_ex2(ectx, l->essiv, l->essiv_key.p,
                                         NULL, NULL) ||
                    !EVP_CIPHER_CTX_set_padding(ectx, 0)))) {
    r = bfs_error(-EIO, "LUKS: %s: cipher setup failed", l->desc);
    goto out;
  }
  for (size_t i = 0; i < len; i += BLK_LUKS_SECTOR, sector++) {
    bool ok;
    if (l->own_xts)
      ok = make_iv(l, ectx, sector, iv) == 0 &&
           xts_sector(ctx, tctx, p + i, iv) == 0;
    else
      ok = (l->ivgen == IV_NONE || (make_iv(l, ectx, sector, iv) == 0 &&
                                    EVP_DecryptInit_ex2(ctx, NULL, NULL, iv,
                                                        NULL))) &&
           EVP_DecryptUpdate(ctx, p + i, &n, p + i, BLK_LUKS_SECTOR) &&
           n == BLK_LUKS_SECTOR;
    if (!ok) {
      r = bfs_error(-EIO, "LUKS: %s: decrypting sector %" PRIu64 " failed",
                    l->desc, sector);
      break;
    }
  }
out:
  OPENSSL_cleanse(iv, sizeof iv);
  EVP_CIPHER_CTX_free(ctx);        /* frees (and clears) the key schedule */
  EVP_CIPHER_CTX_free(ectx);
  EVP_CIPHER_CTX_free(tctx);
  return r;
}

void
blk_luks_free(struct blk_luks *l)
{
  if (!l)
    return;
  EVP_CIPHER_free(l->cipher);
  EVP_CIPHER_free(l->essiv);
  secbuf_free(&l->mk);
  secbuf_free(&l->essiv_key);
  free(l);
}
