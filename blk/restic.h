/* restic.h — read restic repositories (format v1 and v2) without restic.
 *
 * A repository is a local directory opened read-only; every file in it is
 * opened with openat beneath the repository's descriptor, one path
 * component at a time, O_NOFOLLOW.  Opening derives the master key from
 * the password (scrypt, keys/), reads config and every index/ file into
 * one sorted blob table; snapshots and trees are read on demand.  Files in
 * a snapshot are read at random offsets through their content blob list
 * (prefix sums of the blobs' plaintext lengths, binary search), decoding
 * only the blobs a read touches, with a small bounded LRU of decoded
 * blobs shared by the repository's files.
 *
 * Every blob is authenticated (Poly1305-AES) before it is decrypted and
 * its plaintext's SHA-256 must equal its id; a bad MAC, a wrong hash or a
 * short/missing pack is -EIO naming the pack and the blob.  Everything is
 * thread-safe once open.  Functions return 0 / a value or -errno with the
 * message in bfs_last_error().  The password is never logged, and every
 * copy of it (and of derived keys) is wiped when no longer needed.
 *
 * Not supported (yet): REST/S3/SFTP back ends (a back end would need only
 * "list a directory" and "read a byte range of a named file", the two
 * operations repo-file reads use), the s3legacy layout, prefix matches of
 * snapshot ids.
 */
#ifndef BFS_RESTIC_H
#define BFS_RESTIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RESTIC_ID_LEN 32
#define RESTIC_PASSWORD_MAX 4096

struct restic_repo;
struct restic_file;

struct restic_snapshot {
  char id[2 * RESTIC_ID_LEN + 1];     /* hex storage id of the snapshot file */
  int64_t time;                       /* seconds since the epoch, UTC */
  int32_t time_nsec;
  char *hostname, *username;          /* "" when absent */
  char **paths;                       /* n_paths strings */
  size_t n_paths;
  char **tags;                        /* n_tags strings */
  size_t n_tags;
  uint8_t tree[RESTIC_ID_LEN];
};

enum restic_node_type {
  RESTIC_NODE_FILE, RESTIC_NODE_DIR, RESTIC_NODE_SYMLINK,
  RESTIC_NODE_OTHER,                  /* devices, fifos, sockets */
};

/* One entry of a snapshot's tree, as handed to a walk callback: valid only
 * during the callback (restic_file_open copies what it needs). */
struct restic_node {
  const char *path;                   /* "/tmp/d/f": absolute in the snapshot */
  enum restic_node_type type;
  uint64_t size;                      /* files: bytes */
  mode_t mode;                        /* POSIX st_mode (type and permissions) */
  int64_t mtime;
  int32_t mtime_nsec;
  uint32_t uid, gid;
  const char *linktarget;             /* symlinks, else NULL */
  const uint8_t (*content)[RESTIC_ID_LEN];  /* files: blob ids in order */
  size_t n_content;
};

/* Read a password file: at most RESTIC_PASSWORD_MAX bytes, one trailing
 * newline ("\n" or "\r\n") dropped.  *pw is NUL-terminated; release it with
 * restic_password_free (wipes it). */
int restic_read_password_file(const char *path, char **pw, size_t *len);
void restic_password_free(char *pw, size_t len);

/* Open the repository at path (dirfd: -1 or a directory path is relative
 * to).  The password is not kept: it is only used to derive the key. */
int restic_open(int dirfd, const char *path, const char *pw, size_t pw_len,
                struct restic_repo **out);
/* The same with the password read from a file (restic_read_password_file). */
int restic_open_password_file(int dirfd, const char *path,
                              const char *password_file,
                              struct restic_repo **out);
/* Drops the caller's reference; open files keep the repository alive. */
void restic_close(struct restic_repo *r);
int restic_repo_version(const struct restic_repo *r);     /* 1 or 2 */
const char *restic_repo_name(const struct restic_repo *r);

/* Every snapshot, sorted by time then id; free with restic_snapshots_free. */
int restic_snapshots(struct restic_repo *r, struct restic_snapshot **out,
                     size_t *n);
void restic_snapshots_free(struct restic_snapshot *s, size_t n);
/* One snapshot by its full id (64 hex digits); clear it with
 * restic_snapshot_clear. */
int restic_snapshot_get(struct restic_repo *r, const char *id,
                        struct restic_snapshot *out);
void restic_snapshot_clear(struct restic_snapshot *s);

/* Call cb for every node under the snapshot's tree, depth first, parents
 * before children.  cb returns 0 to go on, > 0 to stop (restic_walk returns
 * it), < 0 an error (returned). */
typedef int (*restic_walk_fn)(const struct restic_node *n, void *opaque);
int restic_walk(struct restic_repo *r, const struct restic_snapshot *s,
                restic_walk_fn cb, void *opaque);

/* Open a file node (from a walk) or a path in a snapshot for reading. */
int restic_file_open(struct restic_repo *r, const struct restic_node *n,
                     struct restic_file **out);
int restic_file_open_path(struct restic_repo *r,
                          const struct restic_snapshot *s, const char *path,
                          struct restic_file **out);
uint64_t restic_file_size(const struct restic_file *f);
const char *restic_file_name(const struct restic_file *f);
/* Exactly len bytes at off (a range past the size is -EINVAL); -EIO on a
 * blob that does not authenticate, hash or decode, naming pack and blob. */
int restic_file_pread(struct restic_file *f, void *buf, size_t len,
                      uint64_t off);
/* The blob holding off (< size): [*start, *start + *len) is one content
 * blob, *zero when it is known to be all zeros (its id is the SHA-256 of
 * zeros of its length: such blobs are never read). */
int restic_file_extent(struct restic_file *f, uint64_t off, uint64_t *start,
                       uint64_t *len, bool *zero);
/* Read-ahead: decode the blobs of [off, off + len) into the repository's
 * cache, so a stream's next reads find them (run on several threads at
 * once, several blobs decode in parallel).  Errors are left to the read
 * that needs the bytes. */
void restic_file_prefetch(struct restic_file *f, uint64_t off, uint64_t len);
void restic_file_close(struct restic_file *f);

#endif
