/* tree.c — the catalog as a tree, kept current while mounted.
 *
 * tree_refresh() optionally rescans the catalog (incremental), reads every
 * VM's backups and their backup.json text with no tree lock held, then
 * applies the difference to the tree under the write lock: vanished VMs and
 * backups are unlinked, new ones added, changed ones rebuilt, `latest`
 * retargeted.  Every dentry or inode the kernel may have cached for
 * something that changed is queued for invalidation.
 *
 * The watcher thread owns inotify (watches on the repository and its
 * directories down to WATCH_DEPTH), debounces events into rescans, and sends
 * the queued invalidations with no lock held.  Listing the root or a VM
 * directory rescans at once when events are pending; without inotify, or on
 * a network file system (whose remote writers inotify cannot see), listing
 * rescans at most every RESCAN_INTERVAL seconds.
 *
 * Permissions: each node carries the repository's owner, group and mode
 * of what it stands for (struct perm, stat'd here with no lock held,
 * never through a symlink): a disk the combination of its layers' modes, a
 * backup (and its disks/, files/, backup.json) the directory holding its
 * first disk's top image, a VM the directory above that.  A backup whose
 * layers' identities or permissions changed is rebuilt like one whose
 * backup.json changed.
 */
#include "fs/mount.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"

#define WATCH_DEPTH 3
#define RESCAN_INTERVAL 2           /* seconds, without inotify */
#define DEBOUNCE_MS 500             /* quiet time after the last event */
#define DEBOUNCE_MAX_MS 3000        /* rescan anyway after this long */

struct inval {
  struct inval *next;
  fuse_ino_t ino;                   /* parent for an entry, else the inode */
  char *name;                       /* NULL: inode invalidation */
};

/* ---- invalidation queue ---- */

static void
queue(fuse_ino_t ino, const char *name)
{
  if (!mnt.se)
    return;                         /* not mounted: the kernel knows nothing */
  struct inval *v = calloc(1, sizeof *v);
  if (!v)
    return;
  v->ino = ino;
  v->name = name ? strdup(name) : NULL;
  pthread_mutex_lock(&mnt.q_lock);
  *mnt.q_tail = v;
  mnt.q_tail = &v->next;
  pthread_mutex_unlock(&mnt.q_lock);
}

void
tree_queue_inval_entry(fuse_ino_t parent, const char *name)
{
  queue(parent, name);
}

void
tree_queue_inval_inode(fuse_ino_t ino)
{
  queue(ino, NULL);
}

static void
wake(void)
{
  uint64_t one = 1;
  if (mnt.wake_fd >= 0 && write(mnt.wake_fd, &one, sizeof one) < 0)
    bfs_log(BFS_LOG_DEBUG, "eventfd: %m");
}

static void
send_invalidations(void)
{
  pthread_mutex_lock(&mnt.q_lock);
  struct inval *v = mnt.q_head;
  mnt.q_head = NULL;
  mnt.q_tail = &mnt.q_head;
  pthread_mutex_unlock(&mnt.q_lock);
  while (v) {
    struct inval *next = v->next;
    if (mnt.se) {
      if (v->name)
        fuse_lowlevel_notify_inval_entry(mnt.se, v->ino, v->name,
                                         strlen(v->name));
      else
        fuse_lowlevel_notify_inval_inode(mnt.se, v->ino, 0, 0);
    }
    free(v->name);
    free(v);
    v = next;
  }
}

/* ---- building ---- */

struct want {                       /* one backup as the catalog has it */
  struct catalog_backup *b;
  char *json;
  struct perm dir;                  /* the directory of its first image */
  struct perm *disks;               /* per catalog disk: layers combined */
  struct perm domain;               /* domain.xml (mode 0: none) */
  struct bfs_file_id domain_id;
};

/* ---- the repository's permissions ---- */

static bool
perm_of(const char *rel, struct perm *p, struct stat *out)
{
  struct stat st;
  int fd = mnt.repo_fd, root;
  /* a layer in another store (catalog.h: ".root<i>/" locators) */
  if (rel && *rel && (root = catalog_locator_root(mnt.cat, rel, &rel)) != 0) {
    if (root < 0) return false;
    fd = catalog_root_fd(mnt.cat, (size_t)root);
  }
  if (fstatat(fd, rel && *rel ? rel : ".", &st,
              AT_SYMLINK_NOFOLLOW | (rel && *rel ? 0 : AT_EMPTY_PATH)) < 0)
    return false;
  p->uid = st.st_uid;
  p->gid = st.st_gid;
  p->mode = st.st_mode;
  if (out)
    *out = st;
  return true;
}

/* rel's directory ("" for the repository root), malloc'd */
static char *
dir_of(const char *rel)
{
  const char *slash = strrchr(rel, '/');
  return strndup(rel, slash ? (size_t)(slash - rel) : 0);
}

/* What a user may do with a disk is what every layer allows: a class keeps
 * a permission only if each layer grants it to that class (a layer with
 * another owner or group counts with what it grants everybody). */
static void
perm_meet(struct perm *a, const struct perm *b)
{
  mode_t ob = b->mode & 07, gb = (b->mode >> 3) & 07, ub = (b->mode >> 6) & 07;
  mode_t u = b->uid == a->uid ? ub : gb & ob;
  mode_t g = b->gid == a->gid ? gb : gb & ob;
  a->mode = (a->mode & ~0777) | (a->mode & 0777 & ((u << 6) | (g << 3) | ob));
}

static void
want_perms(struct want *w)
{
  const struct catalog_backup *b = w->b;
  struct stat st;

  w->disks = calloc(b->ndisks ? b->ndisks : 1, sizeof *w->disks);
  for (size_t i = 0; w->disks && i < b->ndisks; i++) {
    const struct catalog_disk *cd = &b->disks[i];
    struct perm p;
    for (size_t k = 0; k < cd->chain_len; k++) {
      if (!perm_of(cd->chain[k], &p, NULL)) {
        w->disks[i].mode = 0;
        break;
      }
      if (k == 0)
        w->disks[i] = p;
      else
        perm_meet(&w->disks[i], &p);
    }
  }
  if (b->ndisks && b->disks[0].image) {
    CLEANUP_FREE char *d = dir_of(b->disks[0].image);
    if (d)
      perm_of(d, &w->dir, NULL);
  }
  if (b->domain_xml && perm_of(b->domain_xml, &w->domain, &st)) {
    if (S_ISREG(st.st_mode))
      bfs_file_id_of(&st, &w->domain_id);
    else
      w->domain.mode = 0;
  }
}

static bool
perm_eq(const struct perm *a, const struct perm *b)
{
  return a->uid == b->uid && a->gid == b->gid && a->mode == b->mode;
}

static bool
id_eq(const struct bfs_file_id *a, const struct bfs_file_id *b)
{
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime_ns == b->mtime_ns;
}

/* the backup node bn still shows what w says (tree lock held) */
static bool
backup_same(const struct node *bn, const struct want *w)
{
  struct node *jn = node_kid(bn, "backup.json");
  struct node *dd = node_kid(bn, "disks"), *x = node_kid(bn, "domain.xml");
  char name[NAME_MAX + 1];

  if (x && x->kind != N_DOMAIN)       /* from backup.json: compared with it */
    x = NULL;
  if (!jn || !jn->blob || strcmp(jn->blob->data, w->json) ||
      !perm_eq(&bn->perm, &w->dir) || !w->disks || !!x != !!w->domain.mode ||
      (x && (!perm_eq(&x->perm, &w->domain) || !id_eq(&x->id, &w->domain_id))))
    return false;
  for (size_t i = 0; dd && i < w->b->ndisks; i++) {
    const struct catalog_disk *cd = &w->b->disks[i];
    struct node *dn;
    if (snprintf(name, sizeof name, "%s.img", cd->name) >= (int)sizeof name ||
        !(dn = node_kid(dd, name)) || !dn->disk)
      continue;
    if (!perm_eq(&dn->disk->perm, &w->disks[i]) ||
        dn->disk->nids != cd->chain_len)
      return false;
    for (size_t k = 0; k < cd->chain_len; k++)
      if (!id_eq(&dn->disk->ids[k], &cd->chain_id[k]))
        return false;
  }
  return true;
}

/* Names come from the repository: never '/', '.', '..' or empty. */
static bool
valid_name(const char *s)
{
  return s && *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..") &&
         strlen(s) <= NAME_MAX;
}

static void
drop_kid(struct node *dir, struct node *kid)
{
  tree_queue_inval_entry(dir->ino, kid->name);
  node_remove_kid(dir, kid);
  node_unlink(kid);
}

static struct node *
add_kid(struct node *dir, enum node_kind kind, const char *name)
{
  struct node *n = node_new(kind, name, dir);
  if (n && node_add_kid(dir, n) < 0) {
    node_unlink(n);
    return NULL;
  }
  return n;
}

/* The VM definition a layout keeps in backup.json's extra ("vm_config":
 * the qemu-server.conf of a vzdump archive or PBS snapshot; "vm_domain_xml":
 * the libvirt domain XML of an RBD image's VM) as <backup>/qemu-server.conf
 * or <backup>/domain.xml, read-only text served from memory like
 * backup.json (and changing with it). */
static void
add_vm_config(struct node *bn, const struct want *w)
{
  static const char *const keys[][2] = {
    { "vm_config", "qemu-server.conf" }, { "vm_domain_xml", "domain.xml" },
  };
  struct json_object *o, *v;
  if (!w->b->extra || !(o = json_tokener_parse(w->b->extra)))
    return;
  for (size_t i = 0; i < 2; i++)
    if (json_object_object_get_ex(o, keys[i][0], &v) &&
        json_object_is_type(v, json_type_string) &&
        !node_kid(bn, keys[i][1])) {
      struct node *c = add_kid(bn, N_JSON, keys[i][1]);
      if (c) {
        c->blob = blob_new(json_object_get_string(v),
                           (size_t)json_object_get_string_len(v));
        c->perm = w->dir;
      }
    }
  json_object_put(o);
}

/* Fill an empty backup directory. */
static void
build_backup(struct node *bn, const struct want *w)
{
  const struct catalog_backup *b = w->b;
  char path[PATH_MAX];

  bn->mtime = b->time;
  bn->perm = w->dir;
  struct node *j = add_kid(bn, N_JSON, "backup.json");
  if (j) {
    j->blob = blob_new(w->json, strlen(w->json));
    j->perm = w->dir;
  }
  if (b->domain_xml && w->domain.mode) {
    struct node *x = add_kid(bn, N_DOMAIN, "domain.xml");
    if (x) {
      x->path = strdup(b->domain_xml);
      x->size = w->domain_id.size;
      x->id = w->domain_id;
      x->perm = w->domain;
    }
  }
  add_vm_config(bn, w);
  struct node *dd = add_kid(bn, N_DISKS, "disks");
  if (!dd)
    return;
  dd->perm = w->dir;
  for (size_t i = 0; i < b->ndisks; i++) {
    const struct catalog_disk *cd = &b->disks[i];
    char name[NAME_MAX + 1];
    if (!valid_name(cd->name) || !cd->image ||
        snprintf(name, sizeof name, "%s.img", cd->name) >= (int)sizeof name ||
        snprintf(path, sizeof path, "%s/%s", mnt.repo, cd->image) >=
        (int)sizeof path || node_kid(dd, name))
      continue;
    char owner[3 * NAME_MAX + 8];
    snprintf(owner, sizeof owner, "%s/%s/%s", b->vm, b->name, name);
    struct disk *d = disk_new(path, cd, owner);
    if (!d)
      continue;
    if (w->disks)
      d->perm = w->disks[i];
    if (mnt.scratch &&
        asprintf(&d->scratch_path, "%s/%s/%s/%s", mnt.scratch, b->vm,
                 b->name, name) < 0)
      d->scratch_path = NULL;
    struct node *dn = add_kid(dd, N_DISK, name);
    if (dn)
      dn->disk = d;
    else
      disk_unref(d);
  }
  if (files_enabled() && dd->nkids > 0) {
    struct node *f = add_kid(bn, N_FILES, "files");
    if (f && asprintf(&f->key, "%s/%s", b->vm, b->name) < 0)
      f->key = NULL;
    if (f)
      f->path = files_broken_reason(b);  /* files/ says it, no appliance */
    if (f)
      f->perm = w->dir;
  }
}

static void
clear_dir(struct node *dir)
{
  while (dir->nkids)
    drop_kid(dir, dir->kids[dir->nkids - 1]);
}

/* Bring one VM directory in line with its backups (write lock held). */
static void
apply_vm(struct node *vn, struct want *ws, size_t nw)
{
  struct node **kids = calloc(nw + 1, sizeof *kids);
  size_t nk = 0;
  struct node *latest = node_kid(vn, "latest");

  if (!kids)
    return;
  /* unlink backups that vanished */
  for (size_t i = vn->nkids; i-- > 0;) {
    struct node *k = vn->kids[i];
    if (k->kind != N_BACKUP)
      continue;
    bool keep = false;
    for (size_t j = 0; j < nw && !keep; j++)
      keep = !strcmp(ws[j].b->name, k->name);
    if (!keep)
      drop_kid(vn, k);
  }
  /* new and changed ones, in catalog (chronological) order */
  if (nw > 0) {
    const char *target = ws[nw - 1].b->name;
    if (!latest)
      latest = node_new(N_LATEST, "latest", vn);
    if (latest && (!latest->blob || strcmp(latest->blob->data, target))) {
      blob_unref(latest->blob);
      latest->blob = blob_new(target, strlen(target));
      latest->mtime = ws[nw - 1].b->time;
      tree_queue_inval_inode(latest->ino);
    }
    if (latest) {
      latest->perm = vn->perm;
      kids[nk++] = latest;
    }
    vn->mtime = ws[nw - 1].b->time;
  }
  else if (latest) {
    tree_queue_inval_entry(vn->ino, "latest");
    node_unlink(latest);
  }
  for (size_t j = 0; j < nw; j++) {
    if (!valid_name(ws[j].b->name) || !strcmp(ws[j].b->name, "latest"))
      continue;
    struct node *bn = node_kid(vn, ws[j].b->name);
    if (bn && bn->kind == N_BACKUP) {
      if (!backup_same(bn, &ws[j])) {
        clear_dir(bn);
        build_backup(bn, &ws[j]);
        tree_queue_inval_inode(bn->ino);
      }
    }
    else if ((bn = node_new(N_BACKUP, ws[j].b->name, vn)))
      build_backup(bn, &ws[j]);
    if (bn)
      kids[nk++] = bn;
  }
  free(vn->kids);
  vn->kids = kids;
  vn->nkids = nk;
  vn->kids_cap = nw + 1;
  for (size_t i = 0; i < nk; i++)
    kids[i]->parent = vn;
}

struct want_vm {
  char *name;
  struct catalog_backup *bs;
  struct want *ws;
  size_t n;
  struct perm perm;                 /* the directory above its newest backup */
};

static void
vm_perm(struct want_vm *v)
{
  const struct catalog_backup *b = &v->bs[v->n - 1];
  if (b->ndisks && b->disks[0].image) {
    CLEANUP_FREE char *d = dir_of(b->disks[0].image);
    CLEANUP_FREE char *up = d ? dir_of(d) : NULL;
    if (up)
      perm_of(up, &v->perm, NULL);
  }
  else
    v->perm = v->ws[v->n - 1].dir;
}

static void
free_want_vms(struct want_vm *vms, size_t nvms)
{
  for (size_t i = 0; i < nvms; i++) {
    for (size_t j = 0; vms[i].ws && j < vms[i].n; j++) {
      free(vms[i].ws[j].json);
      free(vms[i].ws[j].disks);
    }
    free(vms[i].ws);
    catalog_backups_free(vms[i].bs, vms[i].n);
  }
  free(vms);
}

/* MNT/by-name/<display name> -> ../<vm>, from the CloudStack export's VM
 * names (vm_name of a VM's newest backup); a name two VMs share links the
 * first and "<name>-<vm>" for the others.  Rebuilt when it changes (write
 * lock held). */
static void
apply_by_name(struct node *root, struct want_vm *vms, size_t nvms)
{
  struct node *by = node_kid(root, "by-name"), *nb = node_new(N_VM, "by-name",
                                                              root);
  for (size_t j = 0; nb && j < nvms; j++) {
    CLEANUP_FREE char *d = vms[j].n ? catalog_backup_extra(
                             &vms[j].bs[vms[j].n - 1], "vm_name") : NULL;
    CLEANUP_FREE char *name = NULL, *target = NULL;
    if (!d || !valid_name(vms[j].name) ||
        (node_kid(nb, d) ? asprintf(&name, "%s-%s", d, vms[j].name)
                         : asprintf(&name, "%s", d)) < 0 ||
        !valid_name(name) || asprintf(&target, "../%s", vms[j].name) < 0)
      continue;
    struct node *l = add_kid(nb, N_LATEST, name);
    if (l && (l->blob = blob_new(target, strlen(target)))) {
      l->perm = root->perm;
      l->mtime = root->mtime;
    }
  }
  bool same = by && nb && by->nkids == nb->nkids;
  for (size_t i = 0; same && i < nb->nkids; i++) {
    struct node *o = node_kid(by, nb->kids[i]->name);
    same = o && o->blob && nb->kids[i]->blob &&
           !strcmp(o->blob->data, nb->kids[i]->blob->data);
  }
  if (same || !nb || !nb->nkids) {
    if (nb) node_unlink(nb);
    if (by && !same) drop_kid(root, by);
    return;
  }
  if (by) drop_kid(root, by);
  nb->perm = root->perm;
  nb->mtime = root->mtime;
  if (node_add_kid(root, nb) < 0) node_unlink(nb);
}

int
tree_refresh(bool scan)
{
  char **names = NULL;
  size_t nnames = 0;
  struct want_vm *vms = NULL;
  int r;

  pthread_mutex_lock(&mnt.scan_lock);
  atomic_store(&mnt.dirty, false);
  mnt.last_scan = time(NULL);
  if (scan) {
    struct catalog_scan_stats stats;
    r = catalog_scan(mnt.cat, &stats);
    if (r < 0) {
      bfs_log(BFS_LOG_WARN, "rescan of %s: %s", mnt.repo, bfs_last_error());
      goto out;
    }
  }
  r = catalog_vms(mnt.cat, &names, &nnames);
  if (r < 0)
    goto out;
  vms = calloc(nnames ? nnames : 1, sizeof *vms);
  if (!vms) {
    r = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < nnames; i++) {
    vms[i].name = names[i];
    r = catalog_backups(mnt.cat, names[i], &vms[i].bs, &vms[i].n);
    if (r < 0) {
      bfs_log(BFS_LOG_WARN, "%s: %s", names[i], bfs_last_error());
      vms[i].bs = NULL;
      vms[i].n = 0;
      continue;
    }
    vms[i].ws = calloc(vms[i].n ? vms[i].n : 1, sizeof *vms[i].ws);
    if (!vms[i].ws) {
      r = -ENOMEM;
      nnames = i + 1;
      goto out;
    }
    for (size_t j = 0; j < vms[i].n; j++) {
      vms[i].ws[j].b = &vms[i].bs[j];
      vms[i].ws[j].json = catalog_backup_json(mnt.cat, &vms[i].bs[j]);
      if (!vms[i].ws[j].json)
        vms[i].ws[j].json = strdup("{}\n");
      want_perms(&vms[i].ws[j]);
    }
    if (vms[i].n)
      vm_perm(&vms[i]);
  }
  struct perm root_perm = { 0 };
  perm_of("", &root_perm, NULL);

  pthread_rwlock_wrlock(&mnt.tree_lock);
  struct node *root = mnt.root;
  if (!perm_eq(&root->perm, &root_perm)) {
    root->perm = root_perm;
    tree_queue_inval_inode(root->ino);
  }
  bool by_name = true;              /* by-name/, unless a VM is called so */
  for (size_t j = 0; j < nnames; j++)
    by_name &= strcmp(names[j], "by-name") != 0;
  for (size_t i = root->nkids; i-- > 0;) {
    bool keep = by_name && !strcmp(root->kids[i]->name, "by-name");
    for (size_t j = 0; j < nnames && !keep; j++)
      keep = !strcmp(names[j], root->kids[i]->name) && vms[j].n > 0;
    if (!keep)
      drop_kid(root, root->kids[i]);
  }
  for (size_t j = 0; j < nnames; j++) {
    if (vms[j].n == 0 || !vms[j].ws || !valid_name(names[j]))
      continue;
    struct node *vn = node_kid(root, names[j]);
    if (!vn && !(vn = add_kid(root, N_VM, names[j])))
      continue;
    if (!perm_eq(&vn->perm, &vms[j].perm)) {
      vn->perm = vms[j].perm;
      tree_queue_inval_inode(vn->ino);
    }
    apply_vm(vn, vms[j].ws, vms[j].n);
    if (vn->mtime > root->mtime)
      root->mtime = vn->mtime;
  }
  if (by_name)
    apply_by_name(root, vms, nnames);
  pthread_rwlock_unlock(&mnt.tree_lock);
  r = 0;

out:
  if (vms)
    free_want_vms(vms, nnames);
  catalog_names_free(names, nnames);
  pthread_mutex_unlock(&mnt.scan_lock);
  wake();                           /* the watcher sends the invalidations */
  return r;
}

void
tree_request_rescan(void)
{
  atomic_store(&mnt.dirty, true);
  wake();
}

void
tree_maybe_refresh(void)
{
  if (mnt.inotify_ok ? atomic_load(&mnt.dirty)
                     : time(NULL) - mnt.last_scan >= RESCAN_INTERVAL)
    tree_refresh(true);
}

/* ---- inotify ---- */

static char **wd_paths;             /* indexed by watch descriptor */
static int *wd_depth;
static size_t wd_cap;

static int
watch_dir(const char *path, int depth)
{
  int wd = inotify_add_watch(mnt.ino_fd, path,
                             IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                             IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF |
                             IN_ATTRIB |
                             IN_ONLYDIR | IN_EXCL_UNLINK);
  if (wd < 0) {
    bfs_log(BFS_LOG_DEBUG, "inotify %s: %m", path);
    return -1;
  }
  if ((size_t)wd >= wd_cap) {
    size_t ncap = wd_cap ? wd_cap : 64;
    while (ncap <= (size_t)wd)
      ncap *= 2;
    char **np = realloc(wd_paths, ncap * sizeof *np);
    if (np)
      wd_paths = np;
    int *nd = realloc(wd_depth, ncap * sizeof *nd);
    if (nd)
      wd_depth = nd;
    if (!np || !nd)
      return wd;
    memset(wd_paths + wd_cap, 0, (ncap - wd_cap) * sizeof *np);
    wd_cap = ncap;
  }
  free(wd_paths[wd]);
  wd_paths[wd] = strdup(path);
  wd_depth[wd] = depth;
  if (depth >= WATCH_DEPTH)
    return wd;
  DIR *d = opendir(path);
  if (!d)
    return wd;
  struct dirent *de;
  while ((de = readdir(d))) {
    char sub[PATH_MAX];
    if (de->d_name[0] == '.' ||
        (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) ||
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) >= (int)sizeof sub)
      continue;
    struct stat st;
    if (de->d_type == DT_UNKNOWN && (lstat(sub, &st) < 0 || !S_ISDIR(st.st_mode)))
      continue;
    watch_dir(sub, depth + 1);
  }
  closedir(d);
  return wd;
}

static void
read_events(void)
{
  char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
  ssize_t len;

  while ((len = read(mnt.ino_fd, buf, sizeof buf)) > 0) {
    for (char *p = buf; p < buf + len;) {
      struct inotify_event *ev = (struct inotify_event *)p;
      p += sizeof *ev + ev->len;
      atomic_store(&mnt.dirty, true);
      if (ev->mask & IN_IGNORED && ev->wd >= 0 && (size_t)ev->wd < wd_cap) {
        free(wd_paths[ev->wd]);
        wd_paths[ev->wd] = NULL;
      }
      if ((ev->mask & (IN_CREATE | IN_MOVED_TO)) && (ev->mask & IN_ISDIR) &&
          ev->len && ev->wd >= 0 && (size_t)ev->wd < wd_cap &&
          wd_paths[ev->wd] && wd_depth[ev->wd] < WATCH_DEPTH) {
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", wd_paths[ev->wd], ev->name) <
            (int)sizeof sub)
          watch_dir(sub, wd_depth[ev->wd] + 1);
      }
      if (ev->mask & IN_Q_OVERFLOW)
        atomic_store(&mnt.dirty, true);
    }
  }
}

static int64_t
now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *
watcher(void *arg)
{
  int64_t first = 0, last = 0;

  while (!atomic_load(&mnt.stop)) {
    struct pollfd p[2] = {
      { .fd = mnt.wake_fd, .events = POLLIN },
      { .fd = mnt.ino_fd, .events = POLLIN },
    };
    int timeout = -1;
    if (first) {
      int64_t t = now_ms();
      int64_t due = last + DEBOUNCE_MS;
      if (due > first + DEBOUNCE_MAX_MS)
        due = first + DEBOUNCE_MAX_MS;
      timeout = due > t ? (int)(due - t) : 0;
    }
    int n = poll(p, mnt.ino_fd >= 0 ? 2 : 1, timeout);
    if (n < 0 && errno != EINTR)
      break;
    if (p[0].revents & POLLIN) {
      uint64_t v;
      if (read(mnt.wake_fd, &v, sizeof v) < 0)
        bfs_log(BFS_LOG_DEBUG, "eventfd: %m");
    }
    if (mnt.ino_fd >= 0 && (p[1].revents & POLLIN)) {
      read_events();
      last = now_ms();
      if (!first)
        first = last;
    }
    if (first && !atomic_load(&mnt.dirty))
      first = 0;                    /* a readdir already rescanned */
    if (!first && atomic_load(&mnt.dirty))
      first = last = now_ms();      /* tree_request_rescan() */
    if (first && (now_ms() >= last + DEBOUNCE_MS ||
                  now_ms() >= first + DEBOUNCE_MAX_MS)) {
      first = 0;
      tree_refresh(true);
    }
    send_invalidations();
  }
  return NULL;
}

/* inotify sees only this host's writes on network file systems */
static bool
network_fs(const char *path)
{
  static const unsigned long magic[] = {
    0x6969,       /* NFS */       0xff534d42,   /* CIFS */
    0xfe534d42,   /* SMB2 */      0x517b,       /* SMB */
    0x65735546,   /* FUSE */      0x00c36400,   /* Ceph */
    0x01021997,   /* 9P */        0x5346414f,   /* AFS */
    0x01161970,   /* GFS2 */      0x7461636f,   /* OCFS2 */
    0x0bd00bd0,   /* Lustre */    0x47504653,   /* GPFS */
  };
  struct statfs sfs;
  if (statfs(path, &sfs) < 0)
    return false;
  for (size_t i = 0; i < sizeof magic / sizeof magic[0]; i++)
    if ((unsigned long)sfs.f_type == magic[i])
      return true;
  return false;
}

int
tree_watch_start(void)
{
  mnt.q_tail = &mnt.q_head;
  mnt.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (mnt.wake_fd < 0)
    return bfs_error(-errno, "eventfd: %m");
  mnt.ino_fd = mnt.no_inotify ? -1 : inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (mnt.ino_fd >= 0)
    mnt.inotify_ok = watch_dir(mnt.repo, 0) >= 0 && !network_fs(mnt.repo);
  if (!mnt.inotify_ok)
    bfs_log(BFS_LOG_INFO, "%s: inotify unavailable or blind to remote "
            "writers: rescanning on listing", mnt.repo);
  int r = pthread_create(&mnt.watcher, NULL, watcher, NULL);
  if (r)
    return bfs_error(-r, "pthread_create: %s", strerror(r));
  return 0;
}

void
tree_watch_stop(void)
{
  atomic_store(&mnt.stop, true);
  wake();
  pthread_join(mnt.watcher, NULL);
  /* drop what is still queued; atomic: the guest pool's reaper reads it
   * (session_stopping) */
  __atomic_store_n(&mnt.se, NULL, __ATOMIC_RELEASE);
  send_invalidations();
  if (mnt.ino_fd >= 0)
    close(mnt.ino_fd);
  close(mnt.wake_fd);
  for (size_t i = 0; i < wd_cap; i++)
    free(wd_paths[i]);
  free(wd_paths);
  free(wd_depth);
  wd_paths = NULL;
  wd_cap = 0;
}
