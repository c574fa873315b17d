/* restic-crypto.c — restic's cryptography and encodings through libcrypto.
 *
 * Keys: scrypt(password, salt, N, r, p) gives 64 bytes: the AES-256 key,
 * then the Poly1305-AES key as k (AES-128) || r.  An encrypted object is
 * IV || AES-256-CTR(ciphertext) || MAC, the MAC being Poly1305 over the
 * ciphertext with key r || AES-128_k(IV) — exactly OpenSSL 3's POLY1305
 * EVP_MAC key layout (r || s, r clamped by the MAC), so no own Poly1305.
 * The MAC is compared in constant time before anything is decrypted.
 *
 * Also here: SHA-256, hex ids, base64 (as Go's encoding/json writes
 * []byte), RFC 3339 times, zstd and the v2 unpacked-file header.
 */
#include "blk/restic-internal.h"

#include "common/checked.h"
#include "common/error.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <zstd.h>

void
restic_wipe(void *p, size_t len)
{
  if (p)
    OPENSSL_cleanse(p, len);
}

void
restic_sha256(const void *p, size_t len, uint8_t out[RESTIC_ID_LEN])
{
  unsigned int n = RESTIC_ID_LEN;
  if (!EVP_Digest(p, len, out, &n, EVP_sha256(), NULL))
    memset(out, 0, RESTIC_ID_LEN);   /* never matches a real id */
}

int
restic_kdf(const char *pw, size_t pw_len, const uint8_t *salt, size_t salt_len,
           uint64_t n, uint64_t r, uint64_t p, struct restic_key *out)
{
  uint8_t dk[64];
  uint64_t mem;

  if (n < 2 || (n & (n - 1)) || r == 0 || p == 0 || r > (1u << 20) ||
      p > (1u << 20) || r * p >= (1u << 30) ||
      ck_mul(n, r, &mem) || ck_mul(mem, 128, &mem) || mem > RESTIC_SCRYPT_MEM)
    return -EINVAL;
  if (!EVP_PBE_scrypt(pw, pw_len, salt, salt_len, n, r, p,
                      RESTIC_SCRYPT_MEM + (64u << 20), dk, sizeof dk)) {
    restic_wipe(dk, sizeof dk);
    return -ENOMEM;
  }
  memcpy(out->enc, dk, 32);
  memcpy(out->mac_k, dk + 32, 16);
  memcpy(out->mac_r, dk + 48, 16);
  restic_wipe(dk, sizeof dk);
  return 0;
}

int
restic_mac(const struct restic_key *k, const uint8_t iv[16],
             const uint8_t *msg, size_t len, uint8_t tag[16])
{
  uint8_t key[32];
  int outl = 0, ret = -EIO;
  size_t tl = 0;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  EVP_MAC *mac = NULL;
  EVP_MAC_CTX *m = NULL;

  memcpy(key, k->mac_r, 16);
  if (!c || !EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), NULL, k->mac_k, NULL) ||
      !EVP_CIPHER_CTX_set_padding(c, 0) ||
      !EVP_EncryptUpdate(c, key + 16, &outl, iv, 16) || outl != 16)
    goto out;
  mac = EVP_MAC_fetch(NULL, "POLY1305", NULL);
  m = mac ? EVP_MAC_CTX_new(mac) : NULL;
  if (!m || !EVP_MAC_init(m, key, sizeof key, NULL) ||
      !EVP_MAC_update(m, msg, len) || !EVP_MAC_final(m, tag, &tl, 16) ||
      tl != 16)
    goto out;
  ret = 0;
out:
  restic_wipe(key, sizeof key);
  EVP_MAC_CTX_free(m);
  EVP_MAC_free(mac);
  EVP_CIPHER_CTX_free(c);
  return ret;
}

int
restic_decrypt(const struct restic_key *k, const uint8_t *in, size_t len,
               uint8_t *out)
{
  uint8_t tag[16];
  const uint8_t *iv = in, *ct = in + 16;
  size_t ctlen;
  int outl = 0, ret;

  if (len < RESTIC_CRYPTO_OVERHEAD)
    return -EINVAL;
  ctlen = len - RESTIC_CRYPTO_OVERHEAD;
  ret = restic_mac(k, iv, ct, ctlen, tag);
  if (ret < 0)
    return ret;
  if (CRYPTO_memcmp(tag, in + len - 16, 16) != 0)
    return -EBADMSG;

  /* CTR is a stream: decrypt in place-safe chunks below INT_MAX */
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  if (!c || !EVP_DecryptInit_ex(c, EVP_aes_256_ctr(), NULL, k->enc, iv)) {
    EVP_CIPHER_CTX_free(c);
    return -EIO;
  }
  size_t done = 0;
  while (done < ctlen) {
    size_t n = ctlen - done > (1u << 30) ? (1u << 30) : ctlen - done;
    if (!EVP_DecryptUpdate(c, out + done, &outl, ct + done, (int)n) ||
        (size_t)outl != n) {
      EVP_CIPHER_CTX_free(c);
      return -EIO;
    }
    done += n;
  }
  EVP_CIPHER_CTX_free(c);
  return 0;
}

int
restic_zstd_into(const uint8_t *in, size_t len, uint8_t *out, size_t want)
{
  size_t got = ZSTD_decompress(out, want, in, len);
  return ZSTD_isError(got) || got != want ? -EIO : 0;
}

int
restic_zstd(const uint8_t *in, size_t len, size_t want, size_t cap,
            const char *name, uint8_t **out, size_t *out_len)
{
  if (want) {
    uint8_t *buf = malloc(want);
    if (!buf)
      return bfs_error(-ENOMEM, "%s: out of memory", name);
    size_t got = ZSTD_decompress(buf, want, in, len);
    if (ZSTD_isError(got) || got != want) {
      free(buf);
      return bfs_error(-EIO, "%s: zstd data does not decode to %zu bytes (%s)",
                       name, want, ZSTD_isError(got) ? ZSTD_getErrorName(got)
                                                    : "wrong length");
    }
    *out = buf;
    *out_len = want;
    return 0;
  }

  ZSTD_DStream *ds = ZSTD_createDStream();
  size_t size = len * 4 + 4096, used = 0;
  uint8_t *buf = NULL;
  int ret = 0;
  if (!ds)
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  if (size > cap)
    size = cap;
  ZSTD_inBuffer ib = { in, len, 0 };
  for (;;) {
    if (!buf || used == size) {
      if (buf && size >= cap) {
        ret = bfs_error(-EIO, "%s: zstd data decodes to more than %zu bytes",
                        name, cap);
        break;
      }
      size_t nsize = buf ? (size > cap / 2 ? cap : size * 2) : size;
      uint8_t *nb = realloc(buf, nsize);
      if (!nb) {
        ret = bfs_error(-ENOMEM, "%s: out of memory", name);
        break;
      }
      buf = nb;
      size = nsize;
    }
    ZSTD_outBuffer ob = { buf, size, used };
    size_t r = ZSTD_decompressStream(ds, &ob, &ib);
    used = ob.pos;
    if (ZSTD_isError(r)) {
      ret = bfs_error(-EIO, "%s: bad zstd data (%s)", name,
                      ZSTD_getErrorName(r));
      break;
    }
    if (r == 0 && ib.pos == ib.size)
      break;                    /* frame complete, input consumed */
    if (ib.pos == ib.size && ob.pos < ob.size) {
      ret = bfs_error(-EIO, "%s: truncated zstd data", name);
      break;
    }
  }
  ZSTD_freeDStream(ds);
  if (ret < 0) {
    free(buf);
    return ret;
  }
  *out = buf;
  *out_len = used;
  return 0;
}

int
restic_unpack_json(const uint8_t *plain, size_t len, const char *name,
                   const char **json, size_t *json_len, uint8_t **owned)
{
  *owned = NULL;
  if (len == 0)
    return bfs_error(-EIO, "%s: empty file", name);
  if (plain[0] == '{' || plain[0] == '[') {
    *json = (const char *)plain;
    *json_len = len;
    return 0;
  }
  if (plain[0] != 2)
    return bfs_error(-EIO, "%s: unknown encoding version %u", name, plain[0]);
  size_t n;
  int ret = restic_zstd(plain + 1, len - 1, 0, RESTIC_JSON_MAX, name, owned, &n);
  if (ret < 0)
    return ret;
  *json = (const char *)*owned;
  *json_len = n;
  return 0;
}

static int
hexval(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int
restic_hex_id(const char *s, uint8_t out[RESTIC_ID_LEN])
{
  for (size_t i = 0; i < RESTIC_ID_LEN; i++) {
    int hi = hexval((unsigned char)s[2 * i]);
    int lo = hi < 0 ? -1 : hexval((unsigned char)s[2 * i + 1]);
    if (lo < 0)
      return -EINVAL;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return s[2 * RESTIC_ID_LEN] == '\0' ? 0 : -EINVAL;
}

void
restic_id_hex(const uint8_t id[RESTIC_ID_LEN], char out[2 * RESTIC_ID_LEN + 1])
{
  static const char hx[] = "0123456789abcdef";
  for (size_t i = 0; i < RESTIC_ID_LEN; i++) {
    out[2 * i] = hx[id[i] >> 4];
    out[2 * i + 1] = hx[id[i] & 15];
  }
  out[2 * RESTIC_ID_LEN] = '\0';
}

int
restic_base64(const char *s, size_t len, uint8_t **out, size_t *out_len)
{
  if (len % 4 || len > (64u << 20))
    return -EINVAL;
  size_t pad = 0;
  if (len && s[len - 1] == '=')
    pad++;
  if (len > 1 && s[len - 2] == '=')
    pad++;
  uint8_t *buf = malloc(len / 4 * 3 + 1);
  if (!buf)
    return -ENOMEM;
  int n = len ? EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len) : 0;
  if (n < 0 || (size_t)n != len / 4 * 3) {
    free(buf);
    return -EINVAL;
  }
  *out = buf;
  *out_len = (size_t)n - pad;
  return 0;
}

static int
digits(const char **p, int n, int *v)
{
  *v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (!isdigit((unsigned char)**p))
      return -EINVAL;
    *v = *v * 10 + (**p - '0');
  }
  return 0;
}

int
restic_parse_time(const char *s, int64_t *sec, int32_t *nsec)
{
  struct tm tm = { 0 };
  int y, mo, d, h, mi, se, ns = 0, off = 0;
  const char *p = s;

  if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
      digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
    return -EINVAL;
  p++;
  if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
      digits(&p, 2, &se))
    return -EINVAL;
  if (*p == '.') {
    int nd = 0;
    p++;
    while (isdigit((unsigned char)*p)) {
      if (nd < 9) {
        ns = ns * 10 + (*p - '0');
        nd++;
      }
      p++;
    }
    if (nd == 0)
      return -EINVAL;
    for (; nd < 9; nd++)
      ns *= 10;
  }
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1, oh, om;
    if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 ||
        om > 59)
      return -EINVAL;
    off = sign * (oh * 3600 + om * 60);
  } else {
    return -EINVAL;
  }
  if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
      se > 60)
    return -EINVAL;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  *sec = (int64_t)timegm(&tm) - off;
  *nsec = ns;
  return 0;
}
