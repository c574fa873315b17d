/* pbs.h — Proxmox Backup Server datastores, read-only: fixed indexes
 * (.fidx) as struct bfs_blk over a shared, verified chunk store.
 *
 * Formats handled (proxmox-backup pbs-datastore, file_formats.rs):
 *   - DataBlob v1.0: 8-byte magic (uncompressed, zstd, encrypted,
 *     encrypted+zstd), CRC32 (LE) of everything after the header, and for
 *     encrypted blobs a 16-byte IV and 16-byte AES-256-GCM tag, no AAD;
 *   - fixed index v1.0: a 4096-byte header (magic, uuid, ctime, SHA-256 of
 *     the digest list, size, chunk size; LE), then one SHA-256 per chunk;
 *   - chunk digests: SHA-256 of the plaintext, or for encrypted chunks
 *     SHA-256(plaintext || id_key), id_key = PBKDF2-HMAC-SHA256(key,
 *     "_id_key", 10 rounds);
 *   - key files (pbs_keyfile=): JSON {kdf, data (base64), fingerprint};
 *     kdf null (the key itself), or Scrypt / PBKDF2 deriving the AES-GCM
 *     key that unwraps data (IV 16 || tag 16 || encrypted key).
 * Layout: <root>/[ns/<ns>/]vm/<id>/<time>/ with index.json.blob (absent =
 * the snapshot is unfinished), drive-<dev>.img.fidx,
 * qemu-server.conf.blob; chunks in <root>/.chunks/<4 hex>/<64 hex>.
 *
 * Every chunk read checks the CRC, decrypts (the GCM tag authenticates),
 * decompresses to exactly the length the index says and checks the
 * digest: any mismatch, a missing chunk, a wrong key is -EIO naming the
 * chunk.  An all-zero chunk is recognised by its digest (computed once per
 * chunk length) and reported ZERO without reading it.
 *
 * The chunk store (struct pbs_store) is one object per datastore, shared
 * by all its disks and snapshots: it holds the datastore directory fd, the
 * key, and a bounded LRU of decoded chunks keyed by digest, so a chunk
 * that many snapshots share is read and verified once while it stays in
 * the cache.  Thread-safe; two readers missing the same chunk load it
 * once (the second waits).  Refcounted: each blk holds a reference.
 *
 * Recipe layers (driver "pbs"): the locator is the .fidx file (the opener
 * hands its fd as usual), the recipe's ctx (struct blk_recipe.ctx) is the
 * struct pbs_store of its datastore, options empty or "store=<root>" (the
 * datastore directory, repository-relative: the disk service's key for
 * the shared store; the driver ignores it).  The disk service creates the store when it
 * first opens a disk of a datastore: pbs_store_open() on a directory fd of
 * the datastore root opened beneath the repository, the key from
 * -o pbs_keyfile= loaded with pbs_key_load(); it keeps the store with the
 * repository and drops its own reference when the repository goes away.
 */
#ifndef BFS_BLK_PBS_H
#define BFS_BLK_PBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk/blk.h"

#define PBS_FIDX_HEADER 4096u
#define PBS_MIN_CHUNK 4096u
#define PBS_MAX_CHUNK (64u << 20)
#define PBS_MAX_BLOB (128u << 20)      /* proxmox-backup's own cap */
#define PBS_DEFAULT_CACHE (64u << 20)

struct pbs_key {
  unsigned char enc[32];           /* AES-256-GCM key */
  unsigned char id[32];            /* digest name space */
};

/* Load a PBS key file (path as the operator gave it, outside the
 * repository).  passphrase NULL for kdf none; needed for scrypt/pbkdf2. */
int pbs_key_load(const char *path, const char *passphrase,
                 struct pbs_key *out);
/* The key from raw bytes (tests, callers holding the key). */
void pbs_key_from_raw(const unsigned char raw[32], struct pbs_key *out);

struct pbs_store;
/* root_fd: the datastore directory (O_PATH is fine), owned from here on,
 * also on failure.  key NULL for an unencrypted datastore (encrypted
 * chunks are then -ENOKEY naming the option).  cache_bytes 0: default. */
int pbs_store_open(int root_fd, const char *name, const struct pbs_key *key,
                   size_t cache_bytes, struct pbs_store **out);
void pbs_store_ref(struct pbs_store *s);
void pbs_store_unref(struct pbs_store *s);

struct pbs_store_stats {
  uint64_t loads;                  /* chunk files read and verified */
  uint64_t hits;                   /* served from the cache */
  uint64_t bytes_cached;
};
void pbs_store_stats(struct pbs_store *s, struct pbs_store_stats *st);

/* Decode one DataBlob held in memory (what=its name for messages): check
 * its CRC, decrypt with key (may be NULL), decompress; a malloc'd result
 * of at most max bytes. */
int pbs_blob_decode(const unsigned char *raw, size_t len,
                    const struct pbs_key *key, size_t max, const char *what,
                    unsigned char **out, size_t *out_len);

/* A snapshot directory's state: 0 finished, -ENOENT unfinished (no
 * index.json.blob), other -errno; message set either way but 0. */
int pbs_snapshot_finished(int snap_dirfd, const char *name);

/* The header of the fixed index in io (read into h): 0 and the image
 * size, chunk size and chunk count after checking the magic, the chunk
 * size and the file's length against them; -errno naming io otherwise. */
int pbs_fidx_info(struct blk_io *io, unsigned char h[static PBS_FIDX_HEADER],
                  uint64_t *size, uint64_t *chunk_size, uint64_t *nchunks);

/* The fixed index of io as a disk over store (a reference is taken). */
int blk_pbs_open_store(struct blk_io *io, struct pbs_store *store,
                       struct bfs_blk **out);
/* The table's driver: refuses (-EINVAL) because it needs the store; the
 * recipe passes its ctx through blk_pbs_open_ctx. */
int blk_pbs_open(struct blk_io *io, const char *options,
                 struct bfs_blk *backing, struct bfs_blk **out);
int blk_pbs_open_ctx(struct blk_io *io, const char *options, void *ctx,
                     struct bfs_blk *backing, struct bfs_blk **out);

#endif
