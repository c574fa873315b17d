/* beneath.h — opening repository files so that nobody who writes the
 * repository can make us read anything outside it.
 *
 * A repository path is checked by the scan and opened later, maybe hours
 * later: in between, an image may become a symlink to /etc/shadow or a
 * different file.  So every repository file is opened
 *
 *   - relative to a descriptor of the repository directory, with no
 *     symlink followed anywhere on the way and no ".." out of it
 *     (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS;
 *     where the kernel lacks openat2, a walk of O_NOFOLLOW|O_DIRECTORY
 *     openat()s, one component at a time, refusing "..");
 *   - O_RDONLY|O_CLOEXEC|O_NOFOLLOW, O_NOATIME where we own the file
 *     (retried without it on EPERM), O_NONBLOCK while opening so a FIFO
 *     planted in the repository cannot hang us; only regular files pass;
 *
 * and then its identity (device, inode, size, mtime) is compared with what
 * the catalog recorded at scan time: a file that changed is a changed
 * backup (rescan), never data.  The disk service (disk/disk.c) does that
 * with bfs_file_id_check() for every layer of a recipe it opens;
 * bfs_chain_ids_check() is the same check over a whole chain's list.
 */
#ifndef BFS_BENEATH_H
#define BFS_BENEATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Open a directory to open beneath (O_PATH|O_DIRECTORY|O_CLOEXEC; the path
 * itself may be reached through symlinks: it is the operator's).  fd or
 * -errno with the message set. */
int bfs_dir_open(const char *path);

/* Open the regular file rel (relative, no "..") beneath dirfd as described
 * above.  root names dirfd in messages (may be NULL).  fd or -errno: ELOOP
 * for a symlink on the way, EXDEV for a path leading out of dirfd, EINVAL
 * for what is not a regular file, each with a message naming root/rel. */
int bfs_open_beneath(int dirfd, const char *root, const char *rel);
/* The same without openat2 (used where the kernel has none; for tests). */
int bfs_open_beneath_walk(int dirfd, const char *root, const char *rel);

/* path with the prefix root + "/" removed, or NULL when path is not below
 * root (lexically: callers pass paths they built from root). */
const char *bfs_path_beneath(const char *root, const char *path);

/* ---- identity ---- */

struct bfs_file_id {
  uint64_t dev, ino, size;
  int64_t mtime_ns;
};
void bfs_file_id_of(const struct stat *st, struct bfs_file_id *id);
/* 0 when st is the file want describes; -EIO naming name and what differs
 * otherwise (want->ino == 0: the catalog has no record of the file). */
int bfs_file_id_check(const char *name, const struct bfs_file_id *want,
                      const struct stat *st);

/* The chain a catalog expects for one disk: repo-relative paths, top first,
 * and their identities.  bfs_chain_ids_check is a chain_opts.check: layer
 * depth opened as rel with st must be the expected one; called with
 * rel == NULL when the chain ends after depth layers. */
struct bfs_chain_ids {
  size_t n;
  char *const *rel;
  const struct bfs_file_id *id;
};
int bfs_chain_ids_check(void *chain_ids, size_t depth, const char *rel,
                        const struct stat *st);

#endif
