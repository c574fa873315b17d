/* guest.h — a point in time's guest filesystems through libguestfs.
 *
 * The mount (fs/ops) asks this module about paths under <vm>/<time>/files/;
 * it never calls guestfs itself.  A guest_t is one point in time: the raw
 * disk images of that backup (the mount's own disks/<disk>.img, format raw).  Its
 * appliance is launched lazily on first use, read-only, journals not
 * replayed; it is closed after an idle timeout, and a pool caps how many run
 * at once (LRU).  With inspection the tree is the guest's root assembled from
 * its fstab; without, one directory per filesystem (sda1, vg-lv, ...).
 * Filesystems that cannot be mounted show as a directory holding a readable
 * `.backupfs-error`.
 *
 * Paths are absolute within files/ ("/" is files/ itself).  All calls are
 * thread-safe and return 0 or -errno (-ENOENT, -EIO, ...).  No call holds a
 * lock that a disk read through the mount needs while it waits on the
 * appliance.
 */
#ifndef BFS_GUEST_H
#define BFS_GUEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

typedef struct guest_pool guest_pool_t;
typedef struct guest guest_t;

/* max_live appliances at once; idle_seconds before an idle one is closed */
guest_pool_t *guest_pool_new(unsigned max_live, unsigned idle_seconds);
void guest_pool_free(guest_pool_t *pool);

/* The guest view of one point in time (created on first call, nothing is
 * launched yet).  key identifies it ("vm/time"); disk_paths are raw images.
 * With guest_pool_set_index (below), listings answer from the stored file
 * index (see `backupfs index`) without launching. */
guest_t *guest_get(guest_pool_t *pool, const char *key,
                   const char *const *disk_paths, size_t ndisks);

/* st_ino is the guest's inode number (hard links share it); st_mode carries
 * the guest's type and permission bits, st_uid/st_gid/times the guest's. */
int guest_lstat(guest_t *g, const char *path, struct stat *st);

struct guest_dirent {
  char *name;
  struct stat st;
};
int guest_readdir(guest_t *g, const char *path,
                  struct guest_dirent **ents, size_t *n);
void guest_dirents_free(struct guest_dirent *ents, size_t n);

int guest_readlink(guest_t *g, const char *path, char **target);

/* Read up to len bytes at off of a regular file; *got is what was read
 * (0 at end of file). */
int guest_pread(guest_t *g, const char *path, void *buf, size_t len,
                uint64_t off, size_t *got);

/* Answer listings and stats from the stored file index (`backupfs index`):
 * for the pool, the index database every guest looks itself up in ("vm/time"
 * keys) on first use; or for one guest, now.  guest_use_index returns
 * -ENOENT when the database has no index for it. */
int guest_pool_set_index(guest_pool_t *pool, const char *index_db);
/* The index database of a repository: next to its catalog file, e.g.
 *   guest_pool_set_index(pool, idx = guest_index_db_path(catalog_path(cat)))
 * (malloc'd; NULL on ENOMEM). */
char *guest_index_db_path(const char *catalog_db);
int guest_use_index(guest_t *g, const char *index_db);

/* Walk every guest filesystem of g once and store the listing in index_db
 * under vm/time (replacing an older one); *nfiles is the number of entries. */
int guest_index_build(guest_t *g, const char *index_db, const char *vm,
                      const char *time, uint64_t *nfiles);

#endif
