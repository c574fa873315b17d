/* fuzz-restic.c — libFuzzer target for the restic reader's parsers.
 *
 * The first input byte picks what the rest is fed to:
 *   0 key file JSON   1 master key JSON   2 config JSON   3 index JSON
 *   4 snapshot JSON   5 tree JSON
 *   6 an encrypted file: the rest is sealed here with a fixed key (AES-256-
 *     CTR + Poly1305-AES, as restic writes it), then authenticated,
 *     decrypted, unpacked (v2 header, zstd) and parsed as index, tree,
 *     snapshot and config — the path every repository file takes
 *   7 the rest as an encrypted object as is (IV || data || MAC: the MAC
 *     check fails closed), and as a zstd blob of the length in its first
 *     two bytes, and as base64 / RFC 3339 time / hex id strings
 * Built with -Dfuzz=true (CC=clang); the corpus replays in suite
 * fuzz-regress through tests/catalog/fuzz-regress.c.
 */
#include "blk/restic-internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct restic_key fixed_key = {
  .enc = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
           17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 },
  .mac_k = { 0x5a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
  .mac_r = { 0xa5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
};

/* the JSON parser `which` (0..5) over json; each of the others' checks */
static void
parse_one(unsigned which, const char *json, size_t len)
{
  struct restic_index ix = { 0 };
  struct restic_tree t;
  struct restic_snapshot s;
  struct restic_keyfile kf;
  struct restic_key k;
  int version;

  switch (which) {
  case 0:
    if (restic_parse_keyfile(json, len, "fuzz", &kf) == 0)
      restic_keyfile_free(&kf);
    break;
  case 1:
    (void)restic_parse_masterkey(json, len, "fuzz", &k);
    break;
  case 2:
    (void)restic_parse_config(json, len, "fuzz", &version);
    break;
  case 3:
    if (restic_parse_index(json, len, "fuzz", &ix) == 0) {
      restic_index_sort(&ix);
      for (size_t i = 0; i < ix.n_blobs; i++)
        if (restic_index_find(&ix, ix.blobs[i].id) == NULL)
          abort();
    }
    restic_index_free(&ix);
    break;
  case 4:
    if (restic_parse_snapshot(json, len, "fuzz", &s) == 0)
      restic_snapshot_clear(&s);
    break;
  case 5:
    if (restic_parse_tree(json, len, "fuzz", &t) == 0)
      restic_tree_free(&t);
    break;
  }
}

static void
parse_all(const char *json, size_t len)
{
  for (unsigned which = 0; which < 6; which++)
    parse_one(which, json, len);
}

static void
sealed(const uint8_t *p, size_t n)
{
  size_t len = n + RESTIC_CRYPTO_OVERHEAD;
  uint8_t *buf = malloc(len), *plain = malloc(n + 1);
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int outl;
  if (!buf || !plain || !c)
    goto out;
  for (int i = 0; i < 16; i++)
    buf[i] = (uint8_t)(0x40 + i);
  if (!EVP_EncryptInit_ex(c, EVP_aes_256_ctr(), NULL, fixed_key.enc, buf) ||
      (n && !EVP_EncryptUpdate(c, buf + 16, &outl, p, (int)n)))
    goto out;
  if (restic_mac(&fixed_key, buf, buf + 16, n, buf + 16 + n) < 0)
    goto out;
  if (restic_decrypt(&fixed_key, buf, len, plain) != 0 ||
      (n && memcmp(plain, p, n) != 0))
    abort();                         /* our own seal must open */
  const char *json;
  size_t jlen;
  uint8_t *owned = NULL;
  if (restic_unpack_json(plain, n, "fuzz", &json, &jlen, &owned) == 0)
    parse_all(json, jlen);
  free(owned);
out:
  EVP_CIPHER_CTX_free(c);
  free(buf);
  free(plain);
}

static void
raw_bits(const uint8_t *p, size_t n)
{
  uint8_t *out = malloc(n + 1), *z;
  size_t zl;
  if (out && restic_decrypt(&fixed_key, p, n, out) == 0 && n >= 64)
    abort();                         /* a forged MAC must not pass */
  free(out);
  if (n >= 2) {
    size_t want = (size_t)p[0] << 8 | p[1];
    uint8_t *dst = malloc(want + 1);
    if (dst && want)
      (void)restic_zstd_into(p + 2, n - 2, dst, want);
    free(dst);
  }
  if (restic_zstd(p, n, 0, 1 << 20, "fuzz", &z, &zl) == 0)
    free(z);

  char *s = malloc(n + 1);
  if (!s)
    return;
  memcpy(s, p, n);
  s[n] = '\0';
  uint8_t *b;
  size_t bl;
  if (restic_base64(s, strlen(s), &b, &bl) == 0)
    free(b);
  int64_t sec;
  int32_t nsec;
  (void)restic_parse_time(s, &sec, &nsec);
  uint8_t id[RESTIC_ID_LEN];
  if (n >= 2 * RESTIC_ID_LEN)
    (void)restic_hex_id(s, id);
  free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  switch (data[0] % 8) {
  case 6:
    sealed(data + 1, size - 1);
    break;
  case 7:
    raw_bits(data + 1, size - 1);
    break;
  default:
    parse_one(data[0] % 8, (const char *)data + 1, size - 1);
  }
  return 0;
}
