/* aesgcm.c — test helper for gen-pve.py: AES-256-GCM encryption, which
 * Python's stdlib and the openssl command line (enc refuses AEAD modes)
 * cannot do.  aesgcm KEYHEX IVHEX < plain > cipher || 16-byte tag; the IV
 * is 16 bytes and there is no AAD, as in PBS blobs and key files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static int
unhex(const char *s, unsigned char *out, size_t n)
{
  if (strlen(s) != 2 * n)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (sscanf(s + 2 * i, "%2hhx", &out[i]) != 1)
      return -1;
  return 0;
}

int
main(int argc, char **argv)
{
  unsigned char key[32], iv[16], tag[16], *in = NULL, *out;
  size_t len = 0, cap = 0, n;
  int olen = 0, flen = 0;
  EVP_CIPHER_CTX *c;

  if (argc != 3 || unhex(argv[1], key, 32) || unhex(argv[2], iv, 16)) {
    fprintf(stderr, "usage: aesgcm KEYHEX(32 bytes) IVHEX(16 bytes)\n");
    return 2;
  }
  for (;;) {
    if (len == cap && !(in = realloc(in, cap = cap ? 2 * cap : 65536)))
      return 1;
    if ((n = fread(in + len, 1, cap - len, stdin)) == 0)
      break;
    len += n;
  }
  if (!(out = malloc(len + 16)) || !(c = EVP_CIPHER_CTX_new()))
    return 1;
  if (!EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) ||
      !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 16, NULL) ||
      !EVP_EncryptInit_ex(c, NULL, NULL, key, iv) ||
      (len && !EVP_EncryptUpdate(c, out, &olen, in, (int)len)) ||
      !EVP_EncryptFinal_ex(c, out + olen, &flen) ||
      !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag))
    return 1;
  fwrite(out, 1, (size_t)(olen + flen), stdout);
  fwrite(tag, 1, 16, stdout);
  EVP_CIPHER_CTX_free(c);
  free(in);
  free(out);
  return 0;
}
