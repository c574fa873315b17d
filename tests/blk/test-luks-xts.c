/* test-luks-xts.c — the XTS that blk/luks.c builds over an ECB cipher (for
 * AES-192-XTS, which libcrypto lacks) against libcrypto's own AES-128/256
 * XTS: the same keys and sectors must decrypt to the same bytes.  The
 * file includes blk/luks.c to reach its static setup.
 */
#include "blk/luks.c"

#include <openssl/rand.h>

static int
one(const char *evp_xts, const char *evp_ecb, size_t keybytes)
{
  struct blk_luks a = { .ivgen = IV_PLAIN64, .iv_len = 16 };
  struct blk_luks b = { .ivgen = IV_PLAIN64, .iv_len = 16, .own_xts = true };
  unsigned char buf1[8 * BLK_LUKS_SECTOR], buf2[sizeof buf1];
  int bad = 0;

  snprintf(a.desc, sizeof a.desc, "%s", evp_xts);
  snprintf(b.desc, sizeof b.desc, "%s", evp_ecb);
  a.cipher = EVP_CIPHER_fetch(NULL, evp_xts, NULL);
  b.cipher = EVP_CIPHER_fetch(NULL, evp_ecb, NULL);
  if (!a.cipher || !b.cipher || secbuf_alloc(&a.mk, keybytes) < 0 ||
      secbuf_alloc(&b.mk, keybytes) < 0)
    return 1;
  for (int round = 0; round < 50 && !bad; round++) {
    uint64_t sector = round == 0 ? 0 : round == 1 ? UINT64_MAX - 8
                      : (uint64_t)round * 1000003u;
    RAND_bytes(a.mk.p, (int)keybytes);
    memcpy(b.mk.p, a.mk.p, keybytes);
    RAND_bytes(buf1, sizeof buf1);
    memcpy(buf2, buf1, sizeof buf1);
    if (blk_luks_decrypt(&a, buf1, sizeof buf1, sector) < 0 ||
        blk_luks_decrypt(&b, buf2, sizeof buf2, sector) < 0) {
      fprintf(stderr, "%s: %s\n", evp_xts, bfs_last_error());
      bad = 1;
    }
    else if (memcmp(buf1, buf2, sizeof buf1)) {
      fprintf(stderr, "%s: XTS over %s differs at sector %" PRIu64 "\n",
              evp_xts, evp_ecb, sector);
      bad = 1;
    }
  }
  if (!bad)
    printf("ok XTS over %s equals %s (50 rounds of 8 sectors)\n", evp_ecb,
           evp_xts);
  EVP_CIPHER_free(a.cipher);
  EVP_CIPHER_free(b.cipher);
  secbuf_free(&a.mk);
  secbuf_free(&b.mk);
  return bad;
}

int
main(void)
{
  return one("AES-128-XTS", "AES-128-ECB", 32) |
         one("AES-256-XTS", "AES-256-ECB", 64);
}
