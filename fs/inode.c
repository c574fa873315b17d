/* inode.c — the mount's nodes and inode numbers.
 *
 * Every node the kernel may know has a fuse_ino_t, never reused, found
 * through the mount's itab (common/htab.h; the link is in the node).  The
 * fixed part of the tree (VMs, backups and what is inside them) lives in
 * kids[] arrays; guest files under files/ are created on lookup and also
 * on gtab, by (files/ inode, guest path), so a path keeps its inode number
 * while the kernel remembers it.
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

static uint64_t
hash_guest(fuse_ino_t files_ino, const char *path)
{
  return bfs_hash_bytes(path, strlen(path), files_ino);
}

int
nodes_init(struct mnt *m)
{
  if (bfs_htab_init(&m->itab, 1024) < 0 || bfs_htab_init(&m->gtab, 1024) < 0)
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
  bfs_htab_insert(&m->itab, &n->ilink, bfs_hash_u64(n->ino));
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
  BFS_HTAB_FOR_HASH(&m->itab, l, bfs_hash_u64(ino)) {
    struct node *n = bfs_container_of(l, struct node, ilink);
    if (n->ino == ino)
      return n;
  }
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
  BFS_HTAB_FOR_HASH(&m->gtab, l, hash_guest(files_ino, path)) {
    struct node *n = bfs_container_of(l, struct node, glink);
    if (n->files_ino == files_ino && !strcmp(n->path, path))
      return n;
  }
  return NULL;
}

void
node_guest_insert(struct mnt *m, struct node *n)
{
  bfs_htab_insert(&m->gtab, &n->glink, hash_guest(n->files_ino, n->path));
}

static void
unhash(struct mnt *m, struct node *n)
{
  bfs_htab_remove(&m->itab, &n->ilink);
  if (n->kind == N_GUEST)
    bfs_htab_remove(&m->gtab, &n->glink);
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
  struct bfs_htab_iter it;
  bfs_htab_iter_init(&it, &m->itab);
  for (struct bfs_hlink *l; (l = bfs_htab_iter_next(&it)); )
    node_destroy(bfs_container_of(l, struct node, ilink));
  bfs_htab_free(&m->itab);
  bfs_htab_free(&m->gtab);
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
