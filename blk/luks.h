/* luks.h — LUKS decryption for the block layer: a passphrase object and a
 * crypto object that decrypts 512-byte sectors.
 *
 * struct blk_key holds a passphrase in locked memory (mlock when the system
 * allows it), wiped when freed.  Callers read it from a key file once and
 * hand the object down (struct blk_recipe.key); it never becomes a string
 * in an options field, so it cannot reach the catalog, a log or a file.
 *
 * struct blk_luks is one opened LUKS header: libcryptsetup reads the header
 * (from a private memfd copy of its bytes, never a path of the repository)
 * and, with a key, recovers the master key (kept in locked memory); the
 * sectors are decrypted here with libcrypto.  The cipher is what the header
 * names ("aes" with "xts-plain64", "cbc-essiv:sha256", ...); a cipher or
 * mode libcrypto does not have is refused by name at open.
 */
#ifndef BFS_BLK_LUKS_H
#define BFS_BLK_LUKS_H

#include <stddef.h>
#include <stdint.h>

#include "blk/blk.h"

#define BLK_LUKS_SECTOR 512
#define BLK_LUKS_MAX_HEADER (64u * 1024 * 1024)   /* header + key material */
#define BLK_LUKS_NEED_KEY "encrypted (LUKS): a key is needed (--key-file)"

/* A passphrase: from a key file (one trailing newline ignored; at most
 * RESTIC_PASSWORD_MAX bytes) or from memory.  0 or -errno. */
int blk_key_from_file(const char *path, struct blk_key **out);
int blk_key_from_memory(const void *pass, size_t len, struct blk_key **out);
void blk_key_free(struct blk_key *k);

struct blk_luks;
/* Open the LUKS header in hdr[0, len) (name for messages).  key NULL: the
 * header is checked and described, decrypt refuses with BLK_LUKS_NEED_KEY
 * (-ENOKEY).  A key that opens no key slot is -EACCES "wrong passphrase";
 * a damaged or truncated header -EIO. */
int blk_luks_open(const void *hdr, size_t len, const struct blk_key *key,
                  const char *name, struct blk_luks **out);
/* "aes-256-xts-plain64": cipher, key bits, mode (static for l's life) */
const char *blk_luks_cipher(const struct blk_luks *l);
bool blk_luks_has_key(const struct blk_luks *l);
/* Decrypt len bytes (a multiple of 512) in place; sector is the IV number
 * of the first 512 bytes.  Thread-safe.  0 or -errno. */
int blk_luks_decrypt(struct blk_luks *l, void *buf, size_t len,
                     uint64_t sector);
void blk_luks_free(struct blk_luks *l);

#endif
