/* mount-files.c — <vm>/<time>/files/ through the guest module (fs/guest.h).
 *
 * The only coupling with guest files: a files/ directory is the guest view
 * keyed "vm/time" over the mount's own disks/<disk>.img paths (as seen under the
 * mount point, so chain resolution has one implementation).  Guest paths get
 * inode numbers on lookup (hashed by files/ inode + path, freed on forget).
 * Every guest call runs with no lock of ours held and inside a guest slot,
 * so worker threads stay free for the disk reads the appliance makes
 * through this very mount.  Built only with libguestfs (HAVE_GUESTFS).
 */
#include "fs/mount.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#if HAVE_GUESTFS

/* Weak until the guest module is linked in: without it, no files/. */
#pragma weak guest_pool_new
#pragma weak guest_pool_free
#pragma weak guest_get
#pragma weak guest_lstat
#pragma weak guest_readdir
#pragma weak guest_dirents_free
#pragma weak guest_readlink
#pragma weak guest_pread
#pragma weak guest_pool_set_index
#pragma weak guest_index_db_path

bool
files_enabled(void)
{
  return mnt.guests != NULL || guest_pool_new != NULL;
}

int
files_init(void)
{
  if (!guest_pool_new)
    return 0;
  mnt.guests = guest_pool_new(4, 300);
  if (mnt.guests && mnt.cat && guest_pool_set_index && guest_index_db_path) {
    char *idx = guest_index_db_path(catalog_path(mnt.cat));
    if (idx)
      guest_pool_set_index(mnt.guests, idx);
    free(idx);
  }
  if (!mnt.guests)
    bfs_log(BFS_LOG_WARN, "guest files disabled: %s", bfs_last_error());
  /* Threads waiting for a slot still hold a FUSE worker: keep slots plus
   * waiters well under max_threads so that the appliance's own reads of
   * disks/<disk>.img through this mount always find a free worker. */
  unsigned slots = mnt.max_threads / 8 ? mnt.max_threads / 8 : 1;
  sem_init(&mnt.guest_slots, 0, slots);
  return 0;
}

void
files_shutdown(void)
{
  if (mnt.guests)
    guest_pool_free(mnt.guests);
  mnt.guests = NULL;
}

/* Under the tree read lock. */
int
files_ref(const struct node *n, struct gref *ref)
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
  ref->path = strdup("/");
  ref->key = strdup(n->key);
  ref->disks = calloc(dd->nkids, sizeof *ref->disks);
  if (!ref->path || !ref->key || !ref->disks)
    return -ENOMEM;
  for (size_t i = 0; i < dd->nkids; i++) {
    if (asprintf(&ref->disks[i], "%s/%s/%s/disks/%s", mnt.mountpoint,
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
  memset(ref, 0, sizeof *ref);
}

static int
guest_of(struct gref *ref)
{
  if (!ref->g && mnt.guests && ref->key)
    ref->g = guest_get(mnt.guests, ref->key,
                       (const char *const *)ref->disks, ref->ndisks);
  return ref->g ? 0 : -EIO;
}

static void slot_take(void) { while (sem_wait(&mnt.guest_slots) < 0) ; }
static void slot_give(void) { sem_post(&mnt.guest_slots); }

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
files_lookup(const struct gref *dir, const char *name,
             struct fuse_entry_param *e)
{
  struct gref ref = *dir;
  char *path;
  struct stat st;

  if (guest_of(&ref) < 0)
    return -EIO;
  if (asprintf(&path, "%s%s%s", dir->path,
               strcmp(dir->path, "/") ? "/" : "", name) < 0)
    return -ENOMEM;
  slot_take();
  int r = guest_lstat(ref.g, path, &st);
  slot_give();
  if (r < 0) {
    free(path);
    return r;
  }
  pthread_rwlock_wrlock(&mnt.tree_lock);
  struct node *n = node_guest_find(dir->files_ino, path);
  if (!n && (n = node_new(N_GUEST, name, NULL))) {
    n->path = path;
    path = NULL;
    n->guest = ref.g;
    n->files_ino = dir->files_ino;
    node_guest_insert(n);
  }
  if (n)
    atomic_fetch_add(&n->nlookup, 1);
  pthread_rwlock_unlock(&mnt.tree_lock);
  free(path);
  if (!n)
    return -ENOMEM;
  memset(e, 0, sizeof *e);
  e->ino = n->ino;
  e->attr = st;
  own_stat(&e->attr, n->ino, dir->files_ino);
  e->attr_timeout = e->entry_timeout = mnt.entry_timeout;
  return 0;
}

int
files_stat(const struct gref *ref0, struct stat *st)
{
  struct gref ref = *ref0;
  if (ref.ino == ref.files_ino) {           /* files/ itself */
    memset(st, 0, sizeof *st);
    st->st_ino = ref.ino;
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
    st->st_uid = mnt.uid;
    st->st_gid = mnt.gid;
    return 0;
  }
  if (guest_of(&ref) < 0)
    return -EIO;
  slot_take();
  int r = guest_lstat(ref.g, ref.path, st);
  slot_give();
  if (r == 0)
    own_stat(st, ref.ino, ref.files_ino);
  return r;
}

int
files_list(const struct gref *dir, struct guest_listing *gl)
{
  struct gref ref = *dir;
  struct guest_dirent *ents = NULL;
  size_t n = 0;

  memset(gl, 0, sizeof *gl);
  if (guest_of(&ref) < 0)
    return -EIO;
  slot_take();
  int r = guest_readdir(ref.g, ref.path, &ents, &n);
  slot_give();
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
files_readlink(const struct gref *ref0, char **target)
{
  struct gref ref = *ref0;
  if (guest_of(&ref) < 0)
    return -EIO;
  slot_take();
  int r = guest_readlink(ref.g, ref.path, target);
  slot_give();
  return r;
}

int
files_pread(const struct gref *ref0, void *buf, size_t len, uint64_t off,
            size_t *got)
{
  struct gref ref = *ref0;
  if (guest_of(&ref) < 0)
    return -EIO;
  slot_take();
  int r = guest_pread(ref.g, ref.path, buf, len, off, got);
  slot_give();
  return r;
}

#else /* !HAVE_GUESTFS */

bool files_enabled(void) { return false; }
int files_init(void) { return 0; }
void files_shutdown(void) { }
int files_ref(const struct node *n, struct gref *ref)
{ memset(ref, 0, sizeof *ref); return -ENOENT; }
void files_ref_free(struct gref *ref) { }
int files_lookup(const struct gref *dir, const char *name,
                 struct fuse_entry_param *e) { return -ENOENT; }
int files_stat(const struct gref *ref, struct stat *st) { return -ENOENT; }
int files_list(const struct gref *dir, struct guest_listing *gl)
{ memset(gl, 0, sizeof *gl); return -ENOENT; }
int files_readlink(const struct gref *ref, char **target) { return -ENOENT; }
int files_pread(const struct gref *ref, void *buf, size_t len, uint64_t off,
                size_t *got) { return -ENOENT; }

#endif

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
