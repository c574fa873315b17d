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
struct holder *holders_add(const struct node *n, pid_t pid);
/* that handle is released (NULL: nothing) */
void holders_remove(struct holder *h);

/* before fuse_session_mount: SIGTERM/SIGINT/SIGHUP/SIGUSR1 handlers that
 * only write to a pipe; SIGPIPE ignored.  0 or -errno. */
int holders_signals_install(void);
/* in the daemon, right before the session loop, on the loop's thread: the
 * thread that acts on those signals.  0 or -errno. */
int holders_signals_start(struct fuse_session *se);
/* right after the loop returned: stop that thread, default handlers */
void holders_signals_stop(void);

/* the status file: lookup in the root, getattr, open (a fresh snapshot) */
bool holders_status_entry(fuse_ino_t parent, const char *name,
                          struct fuse_entry_param *e);
bool holders_status_attr(fuse_ino_t ino, struct stat *st);
struct blob *holders_status_blob(void);

#endif
