/* restic-internal.h — what the restic reader's files share (not an API).
 *
 * restic-crypto.c: keys, scrypt, authenticated decryption, SHA-256, hex and
 *   base64, the v2 "unpacked" JSON header and zstd.
 * restic-json.c: parsers from memory (key file, master key, config, index,
 *   snapshot, tree) — no I/O, so the fuzz target feeds them directly.
 * restic-repo.c: the repository (files beneath its fd, index, blob cache,
 *   snapshots, trees); restic-file.c: random access to one file.
 *
 * Parsers return 0 or -errno with bfs_error() naming `name` (the repository
 * file the bytes came from) and the reason.
 */
#ifndef BFS_RESTIC_INTERNAL_H
#define BFS_RESTIC_INTERNAL_H

#include "blk/restic.h"

#include <pthread.h>

/* named limits for untrusted input */
#define RESTIC_FILE_MAX      (512u << 20)  /* an index/snapshot/key/config file */
#define RESTIC_JSON_MAX      (1024u << 20) /* decompressed JSON */
#define RESTIC_BLOB_MAX      (64u << 20)   /* a blob, encrypted or plain */
#define RESTIC_SCRYPT_MEM    (1024ull << 20)
#define RESTIC_TREE_DEPTH    256
#define RESTIC_NAME_MAX      4096          /* one node name / link target */

struct restic_key {
  uint8_t enc[32];      /* AES-256-CTR */
  uint8_t mac_k[16];    /* AES-128 key encrypting the nonce (Poly1305-AES) */
  uint8_t mac_r[16];    /* Poly1305 r (clamped by Poly1305 itself) */
};

/* ---- restic-crypto.c ---- */
void restic_wipe(void *p, size_t len);
void restic_sha256(const void *p, size_t len, uint8_t out[RESTIC_ID_LEN]);
/* scrypt(password, salt, N, r, p) -> 64 bytes -> enc || mac k || mac r */
int restic_kdf(const char *pw, size_t pw_len, const uint8_t *salt,
               size_t salt_len, uint64_t n, uint64_t r, uint64_t p,
               struct restic_key *out);
/* Poly1305-AES of msg: Poly1305 keyed r || AES-128_k(iv) */
int restic_mac(const struct restic_key *k, const uint8_t iv[16],
               const uint8_t *msg, size_t len, uint8_t tag[16]);
/* IV(16) || ciphertext || MAC(16): verify the MAC, then decrypt into out
 * (len - 32 bytes; out may equal in + 16).  -EBADMSG when the MAC does not
 * match, -EINVAL when len < 32; no message set (callers name the data). */
int restic_decrypt(const struct restic_key *k, const uint8_t *in, size_t len,
                   uint8_t *out);
#define RESTIC_CRYPTO_OVERHEAD 32
/* zstd: exactly want bytes (want > 0), or up to cap when want is 0 (*out
 * malloc'd, *out_len its length).  -EIO with a message naming name. */
int restic_zstd(const uint8_t *in, size_t len, size_t want, size_t cap,
                const char *name, uint8_t **out, size_t *out_len);
/* zstd into out: exactly want bytes or -EIO (no message set) */
int restic_zstd_into(const uint8_t *in, size_t len, uint8_t *out, size_t want);
/* A decrypted file's plaintext -> JSON text: '{' / '[' as is, 2 = zstd.
 * *json points into plain or is malloc'd into *owned. */
int restic_unpack_json(const uint8_t *plain, size_t len, const char *name,
                       const char **json, size_t *json_len, uint8_t **owned);
int restic_hex_id(const char *s, uint8_t out[RESTIC_ID_LEN]);  /* 0 / -EINVAL */
void restic_id_hex(const uint8_t id[RESTIC_ID_LEN],
                   char out[2 * RESTIC_ID_LEN + 1]);
int restic_base64(const char *s, size_t len, uint8_t **out, size_t *out_len);
/* RFC 3339 with optional fraction and Z / +hh:mm -> UTC seconds, nsec */
int restic_parse_time(const char *s, int64_t *sec, int32_t *nsec);

/* ---- restic-json.c ---- */
struct restic_keyfile {
  uint64_t n, r, p;
  uint8_t *salt, *data;
  size_t salt_len, data_len;
};
int restic_parse_keyfile(const char *json, size_t len, const char *name,
                         struct restic_keyfile *kf);
void restic_keyfile_free(struct restic_keyfile *kf);
int restic_parse_masterkey(const char *json, size_t len, const char *name,
                           struct restic_key *k);
int restic_parse_config(const char *json, size_t len, const char *name,
                        int *version);

enum { RESTIC_BLOB_DATA = 0, RESTIC_BLOB_TREE = 1 };
struct restic_blob {
  uint8_t id[RESTIC_ID_LEN];
  uint64_t offset;
  uint32_t length;               /* encrypted, in the pack */
  uint32_t plain_len;            /* decoded length */
  uint32_t pack;                 /* index into restic_index.packs */
  uint8_t type;
  uint8_t compressed;
};
struct restic_index {
  uint8_t (*packs)[RESTIC_ID_LEN];
  size_t n_packs, cap_packs;
  struct restic_blob *blobs;
  size_t n_blobs, cap_blobs;
};
/* Append an index file's packs and blobs (v1 and v2, and the legacy
 * top-level array); blobs are sorted later by restic_index_sort. */
int restic_parse_index(const char *json, size_t len, const char *name,
                       struct restic_index *ix);
void restic_index_sort(struct restic_index *ix);
/* The first entry for id (a blob may be stored in several packs), then
 * the next entry for the same id, or NULL. */
const struct restic_blob *restic_index_find(const struct restic_index *ix,
                                            const uint8_t id[RESTIC_ID_LEN]);
const struct restic_blob *restic_index_next(const struct restic_index *ix,
                                            const struct restic_blob *b);
void restic_index_free(struct restic_index *ix);

int restic_parse_snapshot(const char *json, size_t len, const char *name,
                          struct restic_snapshot *s);
void restic_snapshot_clear(struct restic_snapshot *s);

struct restic_tnode {
  char *name;
  enum restic_node_type type;
  uint64_t size;
  mode_t mode;
  int64_t mtime;
  int32_t mtime_nsec;
  uint32_t uid, gid;
  char *linktarget;
  uint8_t (*content)[RESTIC_ID_LEN];
  size_t n_content;
  bool has_subtree;
  uint8_t subtree[RESTIC_ID_LEN];
};
struct restic_tree {
  struct restic_tnode *nodes;
  size_t n;
};
int restic_parse_tree(const char *json, size_t len, const char *name,
                      struct restic_tree *t);
void restic_tree_free(struct restic_tree *t);

/* ---- restic-repo.c ---- */
/* The id-named files in dir (keys, index, snapshots), sorted; a missing
 * directory is empty.  Free with restic_free_names. */
int restic_list_dir(const struct restic_repo *r, const char *dir, char ***out,
                    size_t *n);
void restic_free_names(char **v, size_t n);
/* Read dir/name, check its SHA-256 against the name (dir != NULL),
 * decrypt and unpack its JSON, then parse(json, len, label, arg). */
typedef int (*restic_parse_fn)(const char *json, size_t len,
                               const char *label, void *arg);
int restic_load_json_file(struct restic_repo *r, const char *dir,
                          const char *name, restic_parse_fn parse, void *arg);
/* A decoded blob in the repository's LRU: hold a reference while reading. */
struct restic_cached {
  uint8_t id[RESTIC_ID_LEN];
  size_t len;
  unsigned refs;                 /* under the repository's cache lock */
  struct restic_cached *prev, *next;
  uint8_t data[];
};
void restic_repo_ref(struct restic_repo *r);
const struct restic_blob *restic_repo_blob(const struct restic_repo *r,
                                           const uint8_t id[RESTIC_ID_LEN]);
const struct restic_blob *restic_repo_blob_next(const struct restic_repo *r,
                                                const struct restic_blob *b);
/* Read, authenticate, decrypt, decompress and hash-check a blob. */
int restic_blob_get(struct restic_repo *r, const uint8_t id[RESTIC_ID_LEN],
                    int type, struct restic_cached **out);
void restic_blob_put(struct restic_repo *r, struct restic_cached *c);
int restic_load_tree(struct restic_repo *r, const uint8_t id[RESTIC_ID_LEN],
                     struct restic_tree *t);
/* true when id is SHA-256 of len zero bytes (memoised per length) */
bool restic_repo_is_zero_id(struct restic_repo *r,
                            const uint8_t id[RESTIC_ID_LEN], uint32_t len);

#endif
