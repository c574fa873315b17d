/* mount.h — internals of the FUSE mount (fs/mount-*.c, tree.c, inode.c, ops.c).
 *
 * STATE
 *
 *   Everything the mount knows is one struct mnt, allocated by the mount
 *   command (mount-cmd.c) and given to libfuse as the session's userdata:
 *   an operation finds it with fuse_req_userdata(req), every helper below
 *   takes it as its first argument, and the threads we start (the watcher,
 *   the signal thread, the guest pool's stop poll) get it as theirs.  The
 *   one file-scope mutable variable of fs/ is holders.c's signal pipe: an
 *   asynchronous signal handler is given no argument, so the descriptor it
 *   writes to must be found without one.
 *
 * THREAD MODEL (who locks what)
 *
 *   The FUSE session runs a multithreaded loop: any number of worker threads
 *   call the operations in ops.c at once.  One background thread (tree.c,
 *   "watcher") reads inotify events, runs debounced rescans and sends kernel
 *   cache invalidations.  Locks (fields of struct mnt unless named
 *   otherwise), always taken in this order:
 *
 *   scan_lock       (mutex)   one catalog scan + tree rebuild at a time.  Held
 *                             by whoever refreshes (watcher or a readdir of the
 *                             root / a VM dir); never held by the read path.
 *   tree_lock       (rwlock)  the tree shape: every node's kids[], parent,
 *                             name, payload pointers, and the inode hash.
 *                             Read-locked by lookup/getattr/opendir/open;
 *                             write-locked only by a refresh applying its diff
 *                             and by forget freeing nodes.  Never held while
 *                             calling the catalog, guestfs,
 *                             fuse_lowlevel_notify_* or anything of the
 *                             disk service that opens or reads (building
 *                             and dropping disks only takes bfs_disk_get
 *                             and bfs_disk_put: its table lock, no I/O).
 *   disk.lock       (mutex)   -o writable only: making one disk's
 *                             copy-on-write overlay (d->cow).  Once set it
 *                             never changes while the disk lives.  Block
 *                             stacks belong to the disk service
 *                             (disk/disk.h; its locks are taken after
 *                             ours); partial-block writes lock inside the
 *                             COW filter (blk/cow.c).
 *   q_lock          (mutex)   the queue of pending kernel invalidations.
 *   open_lock       (mutex)   ops.c's lists of open handles and directories.
 *   holders.c's lock (mutex)  who holds disks (may be taken under the tree
 *                             read lock; nothing is taken under it).
 *
 *   The read path takes no lock of ours: open() resolves the node under the
 *   read lock, takes counted references to the payload (a struct disk or a
 *   struct blob) and stores them in fi->fh; read()/lseek() use only that
 *   handle, and every bfs_blk is thread-safe.  node.nlookup is atomic;
 *   payload reference counts are atomic.
 *
 *   Invalidations are never sent from a request thread (the kernel may hold
 *   the very directory lock the invalidation needs): refresh queues them and
 *   the watcher thread sends them with no lock held.
 *
 *   Guest files: guest_* calls may wait a long time on an appliance that
 *   itself reads our disks/<disk>.img through this mount.  They run with no lock
 *   of ours held, and at most max_threads/8 worker threads may be inside a
 *   guest call at once (guest_slots).  Threads waiting for a slot hold a
 *   worker too, so guest files are opened direct_io (no kernel readahead
 *   flooding the workers with parallel reads): only as many workers wait as
 *   processes read guest files, and disk reads find a free worker unless
 *   dozens of processes read guest files at once.  Every such wait is
 *   bounded (the guest pool kills appliances past guest_timeout /
 *   guest_call_timeout) and gives up with EINTR when the kernel interrupts
 *   the request or the session exits, so SIGTERM never waits on one.
 */
#ifndef BFS_FS_MOUNT_H
#define BFS_FS_MOUNT_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "catalog/catalog.h"
#include "common/beneath.h"
#include "common/htab.h"
#include "fs/mount-config.h"
#include "blk/blk.h"
#include "disk/disk.h"

#if HAVE_GUESTFS
#include "guest/guest.h"
#else
typedef struct guest guest_t;
typedef struct guest_pool guest_pool_t;
#endif

/* ---- payloads shared by nodes and open handles (refcounted) ---- */

/* The repository's owner, group and mode of what a node shows (mode 0: not
 * known, the defaults apply).  Used only when mnt.repo_perms. */
struct mnt;
struct perm {
  uid_t uid;
  gid_t gid;
  mode_t mode;
};

struct blob {                       /* backup.json text, latest's target */
  atomic_uint refs;
  size_t len;
  char data[];
};
struct blob *blob_new(const char *s, size_t len);
struct blob *blob_ref(struct blob *b);
void blob_unref(struct blob *b);

struct disk {                       /* disks/<disk>.img */
  atomic_uint refs;
  char *path;                       /* absolute path of the top image */
  uint64_t size, allocated;
  struct bfs_file_id *ids;          /* the catalog's layer identities */
  size_t nids;
  struct perm perm;                 /* all layers' permissions combined */
  struct bfs_disk *sd;              /* the disk service's shared disk */
  pthread_mutex_t lock;             /* making cow */
  struct bfs_blk *cow;              /* -o writable: set once, then immutable */
  bool warned;                      /* open failure logged once */
  char *scratch_path;               /* -o writable: its scratch file */
};
/* the disk service's context for the mount (mnt.disks) */
int disks_init(struct mnt *m);
void disks_shutdown(struct mnt *m);
/* a disk of the tree from the catalog's recipe; owner: "vm/time/disk" */
struct disk *disk_new(struct mnt *m, const char *path,
                      const struct catalog_disk *cd, const char *owner);
struct disk *disk_ref(struct disk *d);
void disk_unref(struct disk *d);
/* the disk's stack, opened on first use, for one more handle: 0 or -EIO;
 * for_write makes the -o writable overlay */
int disk_open_blk(struct mnt *m, struct disk *d, bool for_write,
                  struct bfs_blk **out);
/* what reads and writes of the disk go to: the overlay once there is one,
 * else base (the handle's stack) */
struct bfs_blk *disk_target(struct disk *d, struct bfs_blk *base);
/* that handle is done with the stack */
void disk_release(struct disk *d);
/* start reading [off, off+len) of the disk's backup into the page cache,
 * asynchronously (best effort) */
void disk_readahead(struct disk *d, uint64_t off, uint64_t len);
void disk_idle_flush(struct mnt *m);

/* disk-read.c — one read of a disk and its reply; read-ahead state per
 * handle; size is at most buf's */
struct disk_stream {
  _Atomic uint64_t next;            /* where the last read ended */
  _Atomic uint64_t end;             /* read ahead up to here */
  _Atomic uint32_t streak;          /* reads in a row near the last one */
};
void disk_read_reply(struct mnt *m, fuse_req_t req, struct disk *d,
                     struct bfs_blk *base, struct disk_stream *s,
                     uint64_t size_all, char *buf, size_t size, uint64_t off);

/* mount-scratch.c — -o writable */
int scratch_init(struct mnt *m, const char *dir);
/* the disk's scratch file, read-write: opened if it exists, created (with
 * the disk's size) if create; a new descriptor, or -errno */
int scratch_open(struct disk *d, bool create);

/* ---- the tree ---- */

enum node_kind {
  N_ROOT, N_VM, N_LATEST, N_BACKUP, N_JSON, N_DOMAIN, N_DISKS, N_DISK,
  N_FILES, N_GUEST,
};

struct node {
  fuse_ino_t ino;
  enum node_kind kind;
  char *name;
  struct node *parent;              /* NULL once unlinked, and for root */
  struct node **kids;               /* directories in the tree; not N_GUEST */
  size_t nkids, kids_cap;
  atomic_uint_fast64_t nlookup;     /* kernel references */
  bool unlinked;                    /* no longer reachable from the root */
  struct bfs_hlink ilink;           /* on mnt.itab, by ino */
  struct bfs_hlink glink;           /* N_GUEST: on mnt.gtab */
  time_t mtime;
  /* payload by kind */
  struct blob *blob;                /* N_JSON, N_LATEST */
  struct disk *disk;                /* N_DISK */
  char *path;                       /* N_DOMAIN: repo-relative file;
                                       N_GUEST: guest path; N_FILES: why
                                       the catalog calls it broken */
  uint64_t size;                    /* N_DOMAIN */
  struct bfs_file_id id;            /* N_DOMAIN: the file as stat'd */
  struct perm perm;                 /* not N_GUEST, N_DISK (disk->perm) */
  guest_t *guest;                   /* N_FILES, N_GUEST */
  fuse_ino_t files_ino;             /* N_GUEST: its files/ directory */
  char *key;                        /* N_FILES: "vm/time" */
};

struct mnt {
  catalog_t *cat;
  struct fuse_session *se;
  char *repo;                       /* absolute */
  char *mountpoint;                 /* absolute */
  int repo_fd;                      /* O_PATH: repository files open beneath */
  bool repo_perms;                  /* show the repository's owners and
                                       modes (allow_other, or root) */
  uid_t uid;
  gid_t gid;
  time_t start;
  double entry_timeout;
  struct bfs_disk_ctx *disks;       /* the disk service (disk/disk.h) */
  struct blk_key *key;              /* -o keyfile=: LUKS passphrase, or NULL
                                       (outlives disks; wiped when freed) */
  bool writable;                    /* -o writable: disks take writes */
  char *scratch;                    /* their scratch directory */

  pthread_mutex_t scan_lock;
  time_t last_scan;
  atomic_bool dirty;                /* inotify saw a change not yet scanned */
  bool inotify_ok;                  /* events are trusted */
  bool no_inotify;                  /* -o noinotify */

  pthread_rwlock_t tree_lock;
  struct node *root;
  struct bfs_htab itab;             /* every node, by ino */
  struct bfs_htab gtab;             /* guest nodes, by (files_ino, path) */
  fuse_ino_t next_ino;

  pthread_mutex_t q_lock;
  struct inval *q_head, **q_tail;
  int wake_fd;                      /* eventfd: wake the watcher */
  int ino_fd;                       /* inotify, or -1 */
  pthread_t watcher;
  atomic_bool stop;
  char **wd_paths;                  /* the watcher's: path of each watch */
  int *wd_depth;                    /* ... and its depth, by descriptor */
  size_t wd_cap;

  pthread_mutex_t open_lock;        /* ops.c: what the kernel has open */
  struct handle *open_files;
  struct dirbuf *open_dirs;
  pthread_key_t buf_key;            /* ops.c: each worker's read buffer */
  bool buf_key_made;

  struct holders *holders;          /* holders.c */

  guest_pool_t *guests;
  unsigned guest_timeout, guest_call_timeout, guest_idle; /* s, 0: default */
  unsigned guest_list_wait;         /* s a files/ listing waits; 0: to the end */
  sem_t guest_slots;
  unsigned max_threads;
};

/* inode.c — nodes and the inode hash (callers hold tree_lock as noted) */
struct node *node_new(struct mnt *m, enum node_kind kind, const char *name,
                      struct node *parent);          /* write lock */
int node_add_kid(struct node *dir, struct node *kid); /* write lock */
void node_remove_kid(struct node *dir, struct node *kid); /* write lock */
struct node *node_find(struct mnt *m, fuse_ino_t ino); /* read lock */
struct node *node_kid(const struct node *dir, const char *name); /* read */
void node_unlink(struct mnt *m, struct node *n);      /* write lock */
void node_forget(struct mnt *m, fuse_ino_t ino,
                 uint64_t nlookup);                   /* takes the lock */
struct node *node_guest_find(struct mnt *m, fuse_ino_t files_ino,
                             const char *path);       /* read lock */
void node_guest_insert(struct mnt *m, struct node *n); /* write lock */
void node_fill_stat(const struct mnt *m, const struct node *n,
                    struct stat *st);
bool node_is_dir(const struct node *n);
int nodes_init(struct mnt *m);
void nodes_free_all(struct mnt *m);

/* tree.c — catalog to tree, inotify, invalidations */
/* scan the catalog (if scan) and apply the diff */
int tree_refresh(struct mnt *m, bool scan);
void tree_maybe_refresh(struct mnt *m);     /* readdir of root / VM dir */
/* a file changed under us: rescan soon */
void tree_request_rescan(struct mnt *m);
int tree_watch_start(struct mnt *m);
void tree_watch_stop(struct mnt *m);
void tree_queue_inval_entry(struct mnt *m, fuse_ino_t parent,
                            const char *name);
void tree_queue_inval_inode(struct mnt *m, fuse_ino_t ino);

/* ops.c */
extern const struct fuse_lowlevel_ops fs_ops;
/* before the session: the lists of open handles, the buffers' key */
int ops_init(struct mnt *m);
/* after the FUSE loop: free the handles the kernel never released */
void ops_release_all(struct mnt *m);

/* mount-files.c — files/ through guest/guest.h.  files_ref() is called under
 * the tree read lock and copies what the other calls need; those run with
 * no lock held (they may wait on an appliance). */
struct gref {
  guest_t *g;                       /* NULL until files_guest() */
  char *key;                        /* "vm/time" */
  char **disks;                     /* the mount's own disks/<disk>.img */
  size_t ndisks;
  fuse_ino_t files_ino;             /* the files/ directory */
  fuse_ino_t ino;                   /* this node */
  char *path;                       /* guest path, "/" for files/ itself */
  char *broken;                     /* the catalog's reason, or NULL */
};
struct guest_listing {
  char **names;
  fuse_ino_t *inos;
  mode_t *modes;
  size_t n;
};
bool files_enabled(void);
/* why the catalog calls b broken ("vda: ..."; malloc'd), NULL when ok */
char *files_broken_reason(const struct catalog_backup *b);
int files_init(struct mnt *m);
void files_shutdown(struct mnt *m);
int files_ref(const struct mnt *m, const struct node *n, struct gref *ref);
void files_ref_free(struct gref *ref);
/* req: the FUSE request waiting (interrupts end the wait with -EINTR) */
int files_lookup(struct mnt *m, fuse_req_t req, const struct gref *dir,
                 const char *name, struct fuse_entry_param *e);
int files_stat(struct mnt *m, fuse_req_t req, const struct gref *ref,
               struct stat *st);
int files_list(struct mnt *m, fuse_req_t req, const struct gref *dir,
               struct guest_listing *gl);
void files_list_free(struct guest_listing *gl);
int files_readlink(struct mnt *m, fuse_req_t req, const struct gref *ref,
                   char **target);
int files_pread(struct mnt *m, fuse_req_t req, const struct gref *ref,
                void *buf, size_t len, uint64_t off, size_t *got);

#endif
