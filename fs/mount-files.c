/* mount-files.c — <vm>/<time>/files/ through the guest module (guest/guest.h).
 *
 * The only coupling with guest files: a files/ directory is the guest view
 * keyed "vm/time" over the mount's own disks/<disk>.img paths (as seen under the
 * mount point, so chain resolution has one implementation).  Guest paths get
 * inode numbers on lookup (hashed by files/ inode + path, freed on forget).
 * Every guest call runs with no lock of ours held and inside a guest slot,
 * so worker threads stay free for the disk reads the appliance makes
 * through this very mount.  Every wait (for a slot, for the appliance) gives
 * up when the kernel interrupts the request (fuse_req_interrupted: the
 * caller got a signal) or the session is ending (SIGTERM, unmount), with
 * EINTR; the pool kills its appliances as soon as the session has exited,
 * so the FUSE loop's join of its workers never waits on an appliance.
 * Limits: -o guest_timeout (launch), guest_call_timeout, guest_idle,
 * guest_list_wait.
 * Built only with libguestfs (HAVE_GUESTFS).
 */
#include "fs/mount.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"

#if HAVE_GUESTFS

bool
files_enabled(void)
{
  return true;
}

/* the guest pool's stop poll (arg: the mount) */
static bool
session_stopping(void *arg)
{
  struct mnt *m = arg;
  struct fuse_session *se = __atomic_load_n(&m->se, __ATOMIC_ACQUIRE);
  return se && fuse_session_exited(se);
}

/* a guest call's canceller (arg: the request waiting) */
static bool
req_cancelled(void *arg)
{
  fuse_req_t req = arg;
  return fuse_req_interrupted(req) ||
         session_stopping(fuse_req_userdata(req));
}

int
files_init(struct mnt *m)
{
  m->guests = guest_pool_new(4, m->guest_idle ? m->guest_idle : 300);
  if (m->guests) {
    /* A listing of files/ waits for the appliance (bounded by guest_timeout,
     * interruptible): a partial listing would make find, cp -a and rsync
     * silently miss the guest's files.  With -o guest_list_wait it answers
     * with .backupfs-status alone after that long, for interactive use;
     * .backupfs-status can be read at any time while the appliance starts. */
    guest_pool_set_limits(m->guests, m->guest_timeout,
                          m->guest_call_timeout, m->guest_list_wait);
    guest_pool_set_stop(m->guests, session_stopping, m);
  }
  if (m->guests && m->cat) {
    char *idx = guest_index_db_path(catalog_path(m->cat));
    if (idx)
      guest_pool_set_index(m->guests, idx);
    free(idx);
  }
  if (!m->guests)
    bfs_log(BFS_LOG_WARN, "guest files disabled: %s", bfs_last_error());
  /* Threads waiting for a slot still hold a FUSE worker: keep slots plus
   * waiters well under max_threads so that the appliance's own reads of
   * disks/<disk>.img through this mount always find a free worker. */
  unsigned slots = m->max_threads / 8 ? m->max_threads / 8 : 1;
  sem_init(&m->guest_slots, 0, slots);
  return 0;
}

void
files_shutdown(struct mnt *m)
{
  if (m->guests)
    guest_pool_free(m->guests);
  m->guests = NULL;
}

/* Under the tree read lock. */
int
files_ref(const struct mnt *m, const struct node *n, struct gref *ref)
{
  memset(ref, 0, sizeof *ref);
  ref->ino = n->ino;
  if (n->kind == N_GUEST) {
    ref->g = n->guest;
    ref->files_ino = n->files_ino;
    ref->path = strdup(n->path);
    return ref->path ? 0 : -ENOMEM;
  }
  if (n->kind != N_FILES || !n->key || !n->parent)
    return -ENOENT;
  struct node *vm = n->parent->parent;
  struct node *dd = node_kid(n->parent, "disks");
  if (!vm || !dd || !dd->nkids)
    return -ENOENT;
  ref->files_ino = n->ino;
  if (n->path && !(ref->broken = strdup(n->path)))
    return -ENOMEM;
  ref->path = strdup("/");
  ref->key = strdup(n->key);
  ref->disks = calloc(dd->nkids, sizeof *ref->disks);
  if (!ref->path || !ref->key || !ref->disks)
    return -ENOMEM;
  for (size_t i = 0; i < dd->nkids; i++) {
    if (asprintf(&ref->disks[i], "%s/%s/%s/disks/%s", m->mountpoint,
                 vm->name, n->parent->name, dd->kids[i]->name) < 0)
      return -ENOMEM;
    ref->ndisks++;
  }
  return 0;
}

void
files_ref_free(struct gref *ref)
{
  for (size_t i = 0; i < ref->ndisks; i++)
    free(ref->disks[i]);
  free(ref->disks);
  free(ref->key);
  free(ref->path);
  free(ref->broken);
  memset(ref, 0, sizeof *ref);
}

static int
guest_of(struct mnt *m, struct gref *ref)
{
  if (!ref->g && m->guests && ref->key) {
    ref->g = guest_get(m->guests, ref->key,
                       (const char *const *)ref->disks, ref->ndisks);
    if (ref->g)                 /* a rescan may have mended it: NULL too */
      guest_set_broken(ref->g, ref->broken);
  }
  return ref->g ? 0 : -EIO;
}

/* A guest slot for request req, then its canceller for the guest calls:
 * 0, or -EINTR when the request is interrupted or the session ends. */
static int
slot_take(struct mnt *m, fuse_req_t req)
{
  for (;;) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200 * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    if (sem_timedwait(&m->guest_slots, &ts) == 0)
      break;
    if (req_cancelled(req))
      return -EINTR;
  }
  guest_set_canceller(req_cancelled, req);
  return 0;
}

static void
slot_give(struct mnt *m)
{
  guest_set_canceller(NULL, NULL);
  sem_post(&m->guest_slots);
}

/* The kernel knows a guest file by our node id; st_ino is what stat(2)
 * shows.  Files with several names (hard links) show one st_ino derived from
 * the guest's inode and this files/ tree (top bit set, so it never equals a
 * node id of ours), so cp -a, rsync -H and restore file keep the links.
 * Guest setuid/setgid bits are shown as they are: the mount is nosuid. */
static void
own_stat(struct stat *st, fuse_ino_t ino, fuse_ino_t files_ino)
{
  if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
    uint64_t h = (uint64_t)st->st_ino * 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t)files_ino * 0xc2b2ae3d27d4eb4full;
    st->st_ino = (ino_t)(h | (1ull << 63));
  } else {
    st->st_ino = ino;
  }
  st->st_dev = 0;
}

int
files_lookup(struct mnt *m, fuse_req_t req, const struct gref *dir,
             const char *name, struct fuse_entry_param *e)
{
  struct gref ref = *dir;
  char *path;
  struct stat st;

  if (guest_of(m, &ref) < 0)
    return -EIO;
  if (asprintf(&path, "%s%s%s", dir->path,
               strcmp(dir->path, "/") ? "/" : "", name) < 0)
    return -ENOMEM;
  int r = slot_take(m, req);
  if (r == 0) {
    r = guest_lstat(ref.g, path, &st);
    slot_give(m);
  }
  if (r < 0) {
    free(path);
    return r;
  }
  pthread_rwlock_wrlock(&m->tree_lock);
  struct node *n = node_guest_find(m, dir->files_ino, path);
  if (!n && (n = node_new(m, N_GUEST, name, NULL))) {
    n->path = path;
    path = NULL;
    n->guest = ref.g;
    n->files_ino = dir->files_ino;
    node_guest_insert(m, n);
  }
  if (n)
    atomic_fetch_add(&n->nlookup, 1);
  pthread_rwlock_unlock(&m->tree_lock);
  free(path);
  if (!n)
    return -ENOMEM;
  memset(e, 0, sizeof *e);
  e->ino = n->ino;
  e->attr = st;
  own_stat(&e->attr, n->ino, dir->files_ino);
  e->attr_timeout = e->entry_timeout = m->entry_timeout;
  if (!strcmp(dir->path, "/") && (!strcmp(name, GUEST_ERROR_NAME) ||
                                  !strcmp(name, GUEST_STATUS_NAME)))
    e->attr_timeout = e->entry_timeout = 0;   /* they come and go */
  return 0;
}

int
files_stat(struct mnt *m, fuse_req_t req, const struct gref *ref0,
           struct stat *st)
{
  struct gref ref = *ref0;
  if (ref.ino == ref.files_ino) {           /* files/ itself */
    memset(st, 0, sizeof *st);
    st->st_ino = ref.ino;
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
    st->st_uid = m->uid;
    st->st_gid = m->gid;
    return 0;
  }
  if (guest_of(m, &ref) < 0)
    return -EIO;
  int r = slot_take(m, req);
  if (r == 0) {
    r = guest_lstat(ref.g, ref.path, st);
    slot_give(m);
  }
  if (r == 0)
    own_stat(st, ref.ino, ref.files_ino);
  return r;
}

int
files_list(struct mnt *m, fuse_req_t req, const struct gref *dir,
           struct guest_listing *gl)
{
  struct gref ref = *dir;
  struct guest_dirent *ents = NULL;
  size_t n = 0;

  memset(gl, 0, sizeof *gl);
  if (guest_of(m, &ref) < 0)
    return -EIO;
  int r = slot_take(m, req);
  if (r == 0) {
    r = guest_readdir(ref.g, ref.path, &ents, &n);
    slot_give(m);
  }
  if (r < 0)
    return r;
  gl->names = calloc(n + 1, sizeof *gl->names);
  gl->inos = calloc(n + 1, sizeof *gl->inos);
  gl->modes = calloc(n + 1, sizeof *gl->modes);
  if (!gl->names || !gl->inos || !gl->modes) {
    guest_dirents_free(ents, n);
    files_list_free(gl);
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    gl->names[gl->n] = ents[i].name;
    ents[i].name = NULL;
    gl->inos[gl->n] = ents[i].st.st_ino;
    gl->modes[gl->n] = ents[i].st.st_mode;
    if (gl->names[gl->n])
      gl->n++;
  }
  guest_dirents_free(ents, n);
  return 0;
}

int
files_readlink(struct mnt *m, fuse_req_t req, const struct gref *ref0,
               char **target)
{
  struct gref ref = *ref0;
  if (guest_of(m, &ref) < 0)
    return -EIO;
  int r = slot_take(m, req);
  if (r == 0) {
    r = guest_readlink(ref.g, ref.path, target);
    slot_give(m);
  }
  return r;
}

int
files_pread(struct mnt *m, fuse_req_t req, const struct gref *ref0, void *buf,
            size_t len, uint64_t off, size_t *got)
{
  struct gref ref = *ref0;
  if (guest_of(m, &ref) < 0)
    return -EIO;
  int r = slot_take(m, req);
  if (r == 0) {
    r = guest_pread(ref.g, ref.path, buf, len, off, got);
    slot_give(m);
  }
  return r;
}

#else /* !HAVE_GUESTFS */

bool files_enabled(void) { return false; }
int files_init(struct mnt *m) { return 0; }
void files_shutdown(struct mnt *m) { }
int files_ref(const struct mnt *m, const struct node *n, struct gref *ref)
{ memset(ref, 0, sizeof *ref); return -ENOENT; }
void files_ref_free(struct gref *ref) { }
int files_lookup(struct mnt *m, fuse_req_t req, const struct gref *dir,
                 const char *name, struct fuse_entry_param *e)
{ return -ENOENT; }
int files_stat(struct mnt *m, fuse_req_t req, const struct gref *ref,
               struct stat *st)
{ return -ENOENT; }
int files_list(struct mnt *m, fuse_req_t req, const struct gref *dir,
               struct guest_listing *gl)
{ memset(gl, 0, sizeof *gl); return -ENOENT; }
int files_readlink(struct mnt *m, fuse_req_t req, const struct gref *ref,
                   char **target)
{ return -ENOENT; }
int files_pread(struct mnt *m, fuse_req_t req, const struct gref *ref,
                void *buf, size_t len, uint64_t off, size_t *got)
{ return -ENOENT; }

#endif

char *
files_broken_reason(const struct catalog_backup *b)
{
  char *s = NULL;
  for (size_t i = 0; i < b->ndisks; i++) {
    const struct catalog_disk *d = &b->disks[i];
    if (d->status && strcmp(d->status, "ok"))
      return asprintf(&s, "%s: %s", d->name, d->status) < 0 ? NULL : s;
  }
  return b->status && strcmp(b->status, "ok") ? strdup(b->status) : NULL;
}

void
files_list_free(struct guest_listing *gl)
{
  for (size_t i = 0; i < gl->n; i++)
    free(gl->names[i]);
  free(gl->names);
  free(gl->inos);
  free(gl->modes);
  memset(gl, 0, sizeof *gl);
}
