/* inode.c — the mount's nodes and inode numbers.
 *
 * Every node the kernel may know has a fuse_ino_t, never reused, found
 * through an open hash table.  The fixed part of the tree (VMs, backups and
 * what is inside them) lives in kids[] arrays; guest files under files/ are
 * created on lookup and also hashed by (files/ inode, guest path) so a path
 * keeps its inode number while the kernel remembers it.
 *
 * Lifetime: a node is freed when it is unreachable (unlinked from the tree
 * by a refresh, or a guest node) and the kernel has forgotten it
 * (nlookup == 0).  See the THREAD MODEL in mount.h for the locks.
 */
#include "fs/mount.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"

struct blob *
blob_new(const char *s, size_t len)
{
  struct blob *b = malloc(sizeof *b + len + 1);
  if (!b)
    return NULL;
  atomic_init(&b->refs, 1);
  b->len = len;
  memcpy(b->data, s, len);
  b->data[len] = '\0';
  return b;
}

struct blob *
blob_ref(struct blob *b)
{
  if (b)
    atomic_fetch_add(&b->refs, 1);
  return b;
}

void
blob_unref(struct blob *b)
{
  if (b && atomic_fetch_sub(&b->refs, 1) == 1)
    free(b);
}

static size_t
hash_ino(fuse_ino_t ino, size_t size)
{
  return (ino * 0x9E3779B97F4A7C15ull >> 17) & (size - 1);
}

static size_t
hash_guest(fuse_ino_t files_ino, const char *path, size_t size)
{
  uint64_t h = 1469598103934665603ull ^ files_ino;
  for (const unsigned char *p = (const unsigned char *)path; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  return h & (size - 1);
}

int
nodes_init(struct mnt *m)
{
  m->itab_size = 1024;
  m->itab = calloc(m->itab_size, sizeof *m->itab);
  m->gtab_size = 1024;
  m->gtab = calloc(m->gtab_size, sizeof *m->gtab);
  if (!m->itab || !m->gtab)
    return bfs_error(-ENOMEM, "out of memory");
  m->next_ino = FUSE_ROOT_ID;
  /* a store that is no directory (rbd:POOL) has no fd: nothing of the
   * tree is a file of it */
  int fd = catalog_repo_not_dir(m->repo) ? -1 : bfs_dir_open(m->repo);
  if (fd < 0 && !catalog_repo_not_dir(m->repo))
    return fd;
  m->repo_fd = fd;
  m->root = node_new(m, N_ROOT, "", NULL);
  if (!m->root)
    return bfs_error(-ENOMEM, "out of memory");
  atomic_store(&m->root->nlookup, 1);    /* the kernel never forgets root */
  return 0;
}

static void
itab_grow(struct mnt *m)
{
  size_t nsize = m->itab_size * 2;
  struct node **nt = calloc(nsize, sizeof *nt);
  if (!nt)
    return;                               /* keep the longer chains */
  for (size_t i = 0; i < m->itab_size; i++)
    for (struct node *n = m->itab[i], *next; n; n = next) {
      next = n->hnext;
      size_t h = hash_ino(n->ino, nsize);
      n->hnext = nt[h];
      nt[h] = n;
    }
  free(m->itab);
  m->itab = nt;
  m->itab_size = nsize;
}

struct node *
node_new(struct mnt *m, enum node_kind kind, const char *name,
         struct node *parent)
{
  struct node *n = calloc(1, sizeof *n);
  if (!n)
    return NULL;
  n->name = strdup(name);
  if (!n->name) {
    free(n);
    return NULL;
  }
  n->kind = kind;
  n->parent = parent;
  n->ino = m->next_ino++;
  n->mtime = parent ? parent->mtime : m->start;
  atomic_init(&n->nlookup, 0);
  if (m->nnodes >= m->itab_size)
    itab_grow(m);
  size_t h = hash_ino(n->ino, m->itab_size);
  n->hnext = m->itab[h];
  m->itab[h] = n;
  m->nnodes++;
  return n;
}

int
node_add_kid(struct node *dir, struct node *kid)
{
  if (dir->nkids == dir->kids_cap) {
    size_t ncap = dir->kids_cap ? dir->kids_cap * 2 : 4;
    struct node **nk = realloc(dir->kids, ncap * sizeof *nk);
    if (!nk)
      return -ENOMEM;
    dir->kids = nk;
    dir->kids_cap = ncap;
  }
  dir->kids[dir->nkids++] = kid;
  kid->parent = dir;
  return 0;
}

void
node_remove_kid(struct node *dir, struct node *kid)
{
  for (size_t i = 0; i < dir->nkids; i++)
    if (dir->kids[i] == kid) {
      memmove(&dir->kids[i], &dir->kids[i + 1],
              (dir->nkids - i - 1) * sizeof *dir->kids);
      dir->nkids--;
      return;
    }
}

struct node *
node_find(struct mnt *m, fuse_ino_t ino)
{
  for (struct node *n = m->itab[hash_ino(ino, m->itab_size)]; n;
       n = n->hnext)
    if (n->ino == ino)
      return n;
  return NULL;
}

struct node *
node_kid(const struct node *dir, const char *name)
{
  for (size_t i = 0; i < dir->nkids; i++)
    if (!strcmp(dir->kids[i]->name, name))
      return dir->kids[i];
  return NULL;
}

struct node *
node_guest_find(struct mnt *m, fuse_ino_t files_ino, const char *path)
{
  for (struct node *n = m->gtab[hash_guest(files_ino, path, m->gtab_size)];
       n; n = n->gnext)
    if (n->files_ino == files_ino && !strcmp(n->path, path))
      return n;
  return NULL;
}

void
node_guest_insert(struct mnt *m, struct node *n)
{
  size_t h = hash_guest(n->files_ino, n->path, m->gtab_size);
  n->gnext = m->gtab[h];
  m->gtab[h] = n;
}

static void
unhash(struct mnt *m, struct node *n)
{
  struct node **pp = &m->itab[hash_ino(n->ino, m->itab_size)];
  for (; *pp; pp = &(*pp)->hnext)
    if (*pp == n) {
      *pp = n->hnext;
      m->nnodes--;
      break;
    }
  if (n->kind == N_GUEST) {
    pp = &m->gtab[hash_guest(n->files_ino, n->path, m->gtab_size)];
    for (; *pp; pp = &(*pp)->gnext)
      if (*pp == n) {
        *pp = n->gnext;
        break;
      }
  }
}

/* n's memory and payload references (unhashed, or every node at once) */
static void
node_destroy(struct node *n)
{
  blob_unref(n->blob);
  if (n->disk)
    disk_unref(n->disk);
  free(n->kids);
  free(n->path);
  free(n->key);
  free(n->name);
  free(n);
}

static void
node_free(struct mnt *m, struct node *n)
{
  unhash(m, n);
  node_destroy(n);
}

/* Detach n and everything below it from the tree; free what the kernel
 * does not reference. */
void
node_unlink(struct mnt *m, struct node *n)
{
  for (size_t i = 0; i < n->nkids; i++)
    node_unlink(m, n->kids[i]);
  free(n->kids);
  n->kids = NULL;
  n->nkids = n->kids_cap = 0;
  n->parent = NULL;
  n->unlinked = true;
  if (atomic_load(&n->nlookup) == 0)
    node_free(m, n);
}

void
node_forget(struct mnt *m, fuse_ino_t ino, uint64_t nlookup)
{
  pthread_rwlock_rdlock(&m->tree_lock);
  struct node *n = node_find(m, ino);
  bool last = n && atomic_fetch_sub(&n->nlookup, nlookup) == nlookup;
  bool freeable = last && (n->unlinked || n->kind == N_GUEST);
  pthread_rwlock_unlock(&m->tree_lock);
  if (!freeable)
    return;
  pthread_rwlock_wrlock(&m->tree_lock);
  n = node_find(m, ino);                  /* a lookup may have revived it */
  if (n && atomic_load(&n->nlookup) == 0 &&
      (n->unlinked || n->kind == N_GUEST))
    node_free(m, n);
  pthread_rwlock_unlock(&m->tree_lock);
}

void
nodes_free_all(struct mnt *m)
{
  for (size_t i = 0; m->itab && i < m->itab_size; i++)
    for (struct node *n = m->itab[i], *next; n; n = next) {
      next = n->hnext;
      node_destroy(n);
    }
  free(m->itab);
  free(m->gtab);
  m->itab = m->gtab = NULL;
  m->root = NULL;
  if (m->repo_fd >= 0)
    close(m->repo_fd);
  m->repo_fd = -1;
}

bool
node_is_dir(const struct node *n)
{
  switch (n->kind) {
  case N_ROOT: case N_VM: case N_BACKUP: case N_DISKS: case N_FILES:
    return true;
  default:
    return false;
  }
}

/* Attributes of the fixed tree (guest nodes: mount-files.c). */
/* the repository's owner and permission bits (write bits off) of p, or
 * dflt with the mounting user */
static mode_t
perm_apply(const struct mnt *m, const struct perm *p, mode_t dflt,
           mode_t keep, struct stat *st)
{
  if (!m->repo_perms || !p->mode)
    return dflt;
  st->st_uid = p->uid;
  st->st_gid = p->gid;
  return p->mode & keep;
}

void
node_fill_stat(const struct mnt *m, const struct node *n, struct stat *st)
{
  memset(st, 0, sizeof *st);
  st->st_ino = n->ino;
  st->st_uid = m->uid;
  st->st_gid = m->gid;
  st->st_blksize = 65536;
  st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = n->mtime;
  st->st_nlink = 1;
  switch (n->kind) {
  case N_ROOT: case N_VM: case N_BACKUP: case N_DISKS: case N_FILES:
    st->st_mode = S_IFDIR | perm_apply(m, &n->perm, 0555, 0555, st);
    st->st_nlink = 2;
    for (size_t i = 0; i < n->nkids; i++)
      if (node_is_dir(n->kids[i]))
        st->st_nlink++;
    break;
  case N_LATEST:
    perm_apply(m, &n->perm, 0, 0, st);
    st->st_mode = S_IFLNK | 0777;
    st->st_size = n->blob ? n->blob->len : 0;
    break;
  case N_JSON:                      /* its backup directory's read bits */
    st->st_mode = S_IFREG | perm_apply(m, &n->perm, 0444, 0444, st);
    st->st_size = n->blob ? n->blob->len : 0;
    st->st_blocks = (st->st_size + 511) / 512;
    break;
  case N_DOMAIN:
    st->st_mode = S_IFREG | perm_apply(m, &n->perm, 0444, 0555, st);
    st->st_size = n->size;
    st->st_blocks = (st->st_size + 511) / 512;
    break;
  case N_DISK:
    st->st_mode = S_IFREG | perm_apply(m, &n->disk->perm, 0444, 0555, st);
    if (m->writable)
      st->st_mode |= S_IWUSR;
    st->st_size = n->disk->size;
    st->st_blocks = (n->disk->allocated + 511) / 512;
    break;
  case N_GUEST:
    break;
  }
}
