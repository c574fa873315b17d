/* pbs-key.c — PBS encryption key files (see pbs.h for the format).
 *
 * The file is the operator's, named on the command line (-o
 * pbs_keyfile=), so it is opened by path, read whole (small: 64 KiB cap)
 * and parsed with json-c.  kdf null: data is the 32-byte key.  Scrypt or
 * PBKDF2 (serde spells them "Scrypt"/"PBKDF2"; any case is accepted):
 * the passphrase derives an AES-256-GCM key that unwraps data = IV 16 ||
 * tag 16 || encrypted key.  A fingerprint in the file is checked against
 * the key (SHA-256 of a fixed input || id_key), so a wrong passphrase or
 * a file for another key is a clear error before any chunk is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "blk/pbs-int.h"
#include "common/error.h"

#define KEYFILE_MAX 65536

void
pbs_key_from_raw(const unsigned char raw[32], struct pbs_key *out)
{
  memcpy(out->enc, raw, 32);
  PKCS5_PBKDF2_HMAC((const char *)raw, 32, (const unsigned char *)"_id_key",
                    7, 10, EVP_sha256(), 32, out->id);
}

static int
b64(const char *in, unsigned char *out, size_t cap, size_t *len)
{
  size_t n = strlen(in), pad = 0;
  int got;

  if (n % 4 || (n / 4) * 3 > cap)
    return -1;
  got = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
  if (got < 0)
    return -1;
  while (pad < 2 && n > pad && in[n - 1 - pad] == '=')
    pad++;
  *len = (size_t)got - pad;
  return 0;
}

static json_object *
field(json_object *o, const char *k)
{
  json_object *v = NULL;
  return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static int
derive(const char *path, json_object *kdf, const char *pass,
       unsigned char dk[32])
{
  json_object *params = NULL, *salt_o;
  const char *kind = NULL;
  unsigned char salt[256];
  size_t slen;

  json_object_object_foreach(kdf, k, v) {
    kind = k;
    params = v;
    break;
  }
  if (!kind || !json_object_is_type(params, json_type_object) ||
      !(salt_o = field(params, "salt")) ||
      b64(json_object_get_string(salt_o), salt, sizeof salt, &slen) < 0)
    return bfs_error(-EINVAL, "%s: key file kdf is not understood", path);
  if (!pass)
    return bfs_error(-ENOKEY, "%s: the key is protected by a passphrase "
                     "(kdf %s): none was given", path, kind);
  if (!strcasecmp(kind, "scrypt")) {
    uint64_t n = (uint64_t)json_object_get_int64(field(params, "n"));
    uint64_t r = (uint64_t)json_object_get_int64(field(params, "r"));
    uint64_t p = (uint64_t)json_object_get_int64(field(params, "p"));
    if (!EVP_PBE_scrypt(pass, strlen(pass), salt, slen, n, r, p,
                        1025ull << 20, dk, 32))
      return bfs_error(-EINVAL, "%s: scrypt (n=%llu r=%llu p=%llu) failed",
                       path, (unsigned long long)n, (unsigned long long)r,
                       (unsigned long long)p);
    return 0;
  }
  if (!strcasecmp(kind, "pbkdf2")) {
    int64_t iter = json_object_get_int64(field(params, "iter"));
    if (iter < 1 || iter > 100000000 ||
        !PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), salt, (int)slen,
                           (int)iter, EVP_sha256(), 32, dk))
      return bfs_error(-EINVAL, "%s: pbkdf2 failed", path);
    return 0;
  }
  return bfs_error(-ENOTSUP, "%s: key derivation '%s' is not supported",
                   path, kind);
}

static int
unwrap(const char *path, const unsigned char dk[32], const unsigned char *d,
       size_t len, unsigned char key[32])
{
  EVP_CIPHER_CTX *c;
  int n = 0, ok;

  if (len != 64)
    return bfs_error(-EINVAL, "%s: wrapped key of %zu bytes (want 64)", path,
                     len);
  if (!(c = EVP_CIPHER_CTX_new()))
    return bfs_error(-ENOMEM, "%s: out of memory", path);
  ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 16, NULL) &&
       EVP_DecryptInit_ex(c, NULL, NULL, dk, d) &&
       EVP_DecryptUpdate(c, key, &n, d + 32, 32) &&
       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(d + 16)) &&
       EVP_DecryptFinal_ex(c, key + n, &n);
  EVP_CIPHER_CTX_free(c);
  return ok ? 0 : bfs_error(-EKEYREJECTED, "%s: cannot unwrap the key: "
                            "wrong passphrase?", path);
}

static int
check_fingerprint(const char *path, json_object *fp, const struct pbs_key *k)
{
  static const char input[] = "Proxmox Backup Encryption Key Fingerprint";
  unsigned char in[32], got[32];
  char want[65] = "", hex[65];
  unsigned int n = 32;
  const char *s;
  size_t j = 0;

  if (!fp || !json_object_is_type(fp, json_type_string))
    return 0;
  for (s = json_object_get_string(fp); *s && j < 64; s++)
    if (*s != ':')
      want[j++] = *s;
  EVP_Digest(input, sizeof input - 1, in, &n, EVP_sha256(), NULL);
  pbs_digest(in, 32, k, got);
  pbs_hex(got, hex);
  if (j != 64 || strncasecmp(want, hex, 64))
    return bfs_error(-EKEYREJECTED, "%s: the key does not match the "
                     "fingerprint recorded in the key file", path);
  return 0;
}

int
pbs_key_load(const char *path, const char *passphrase, struct pbs_key *out)
{
  char *buf = malloc(KEYFILE_MAX + 1);
  json_object *doc = NULL, *kdf, *data;
  unsigned char raw[256], dk[32], key[32];
  size_t len = 0, rlen;
  ssize_t n;
  int fd, r;

  if (!buf)
    return bfs_error(-ENOMEM, "%s: out of memory", path);
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
    r = bfs_error(-errno, "%s: %s", path, strerror(errno));
    goto out;
  }
  while ((n = read(fd, buf + len, KEYFILE_MAX - len)) > 0)
    len += (size_t)n;
  close(fd);
  if (n < 0 || len == KEYFILE_MAX) {
    r = bfs_error(-EINVAL, "%s: unreadable or larger than %d bytes", path,
                  KEYFILE_MAX);
    goto out;
  }
  buf[len] = 0;
  if (!(doc = json_tokener_parse(buf)) ||
      !json_object_is_type(doc, json_type_object) ||
      !(data = field(doc, "data")) ||
      !json_object_is_type(data, json_type_string) ||
      b64(json_object_get_string(data), raw, sizeof raw, &rlen) < 0) {
    r = bfs_error(-EINVAL, "%s: not a PBS key file (JSON with base64 "
                  "'data')", path);
    goto out;
  }
  kdf = field(doc, "kdf");
  if (!kdf) {
    if (rlen != 32) {
      r = bfs_error(-EINVAL, "%s: key of %zu bytes (want 32)", path, rlen);
      goto out;
    }
    memcpy(key, raw, 32);
  }
  else if ((r = derive(path, kdf, passphrase, dk)) < 0 ||
           (r = unwrap(path, dk, raw, rlen, key)) < 0)
    goto out;
  pbs_key_from_raw(key, out);
  r = check_fingerprint(path, field(doc, "fingerprint"), out);
out:
  OPENSSL_cleanse(key, sizeof key);
  OPENSSL_cleanse(dk, sizeof dk);
  json_object_put(doc);
  free(buf);
  return r;
}
