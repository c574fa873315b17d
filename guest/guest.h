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
 * `.backupfs-error`.  Directory names use the guest's disk names, taken
 * from the disk paths given (".../disks/vda.img" → vda, so /dev/sda1 of
 * the first disk is vda1).
 *
 * Every wait on an appliance is bounded: a launch (with inspection and
 * mounts) by the launch timeout, each call after it by the call timeout;
 * past it the appliance is killed, the guest shows `/.backupfs-error`
 * (what happened, when it retries) and launches again on the first access
 * a minute later.  While an appliance starts, `/.backupfs-status` says
 * since when and what it waits for (see list_patience below).  A caller can give up waiting (guest_set_canceller: -EINTR).
 *
 * Paths are absolute within files/ ("/" is files/ itself).  All calls are
 * thread-safe and return 0 or -errno (-ENOENT, -EIO, ...).  No call holds a
 * lock that a disk read through the mount needs while it waits on the
 * appliance.
 */
#ifndef BFS_GUEST_H
#define BFS_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* the virtual files of "/" (they come and go: never cache them) */
#define GUEST_ERROR_NAME ".backupfs-error"
#define GUEST_STATUS_NAME ".backupfs-status"

typedef struct guest_pool guest_pool_t;
typedef struct guest guest_t;

/* max_live appliances at once; idle_seconds before an idle one is closed
 * (its qemu killed: the drives are read-only, nothing is lost) */
guest_pool_t *guest_pool_new(unsigned max_live, unsigned idle_seconds);
/* Kills every appliance, waits a few seconds for launches to end, frees. */
void guest_pool_free(guest_pool_t *pool);
/* launch_timeout (default 300 s) bounds a launch with its inspection and
 * mounts, call_timeout (default 60 s) each guestfs call after it (0 keeps
 * the current value); with list_patience, a listing of "/" waits that long
 * for a starting appliance, then answers with `.backupfs-status` alone (0,
 * the default: it waits to the end).  Call before the first guest_get. */
void guest_pool_set_limits(guest_pool_t *pool, unsigned launch_timeout,
                           unsigned call_timeout, unsigned list_patience);
/* For the mount's status file: a new JSON array (json-c), one object per
 * point in time with an appliance that is not idle: {"key", "state":
 * "starting"|"running"|"failed", and since/elapsed_seconds/waiting_for/
 * gives_up_at,
 * since/qemu_pid/call/call_seconds/failed_mounts, or failed_at/error/
 * retry_at}.  Never waits on an appliance. */
struct json_object;
struct json_object *guest_pool_status(guest_pool_t *pool);
/* should_stop(arg) is polled twice a second from the pool's own thread;
 * once it says true every appliance is killed and none starts again (the
 * mount's SIGTERM: fuse_session_exited). */
void guest_pool_set_stop(guest_pool_t *pool, bool (*should_stop)(void *arg),
                         void *arg);
/* For the calling thread: while a call below waits on an appliance it polls
 * cancelled(arg) every 200 ms and returns -EINTR once it says true (a FUSE
 * request the kernel interrupted).  NULL: wait (bounded) to the end. */
void guest_set_canceller(bool (*cancelled)(void *arg), void *arg);

/* The guest view of one point in time (created on first call, nothing is
 * launched yet).  key identifies it ("vm/time"); disk_paths are raw images.
 * With guest_pool_set_index (below), listings answer from the stored file
 * index (see `backupfs index`) without launching. */
guest_t *guest_get(guest_pool_t *pool, const char *key,
                   const char *const *disk_paths, size_t ndisks);

/* The catalog knows why g's backup cannot be read (a broken chain: why,
 * NULL when it is whole): g then never launches an appliance; "/" holds
 * only .backupfs-error saying that reason, every other call fails -EIO
 * with it.  NULL lifts it (a rescan found the chain whole again). */
void guest_set_broken(guest_t *g, const char *why);

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
