/* holders.h — who holds disks/<disk>.img open, when the daemon may go, and
 * the mount's status file (fs/holders.c; design note there). */
#ifndef BFS_FS_HOLDERS_H
#define BFS_FS_HOLDERS_H

#include "fs/mount.h"

/* the hidden, read-only status file in the mount's root (not listed) */
#define HOLDERS_STATUS_NAME ".backupfs-status"
#define HOLDERS_STATUS_INO ((fuse_ino_t)UINT64_MAX - 1)

struct holder;

/* a handle of disk node n was opened by (thread) pid; called with the tree
 * read lock held.  NULL only when out of memory (then the handle is not
 * counted, and the open fails). */
struct holder *holders_add(struct mnt *m, const struct node *n, pid_t pid);
/* that handle is released (NULL: nothing) */
void holders_remove(struct mnt *m, struct holder *h);

/* mnt.holders, with the mount's state; 0 or -ENOMEM */
int holders_init(struct mnt *m);
/* after every handle is released: default handlers, mnt.holders freed */
void holders_free(struct mnt *m);

/* before fuse_session_mount: SIGTERM/SIGINT/SIGHUP/SIGUSR1 handlers that
 * only write to a pipe; SIGPIPE ignored.  0 or -errno. */
int holders_signals_install(struct mnt *m);
/* in the daemon, right before the session loop, on the loop's thread: the
 * thread that acts on those signals (ending mnt.se).  0 or -errno. */
int holders_signals_start(struct mnt *m);
/* right after the loop returned: stop that thread, default handlers */
void holders_signals_stop(struct mnt *m);

/* the status file: lookup in the root, getattr, open (a fresh snapshot) */
bool holders_status_entry(struct mnt *m, fuse_ino_t parent, const char *name,
                          struct fuse_entry_param *e);
bool holders_status_attr(struct mnt *m, fuse_ino_t ino, struct stat *st);
struct blob *holders_status_blob(struct mnt *m);

#endif
