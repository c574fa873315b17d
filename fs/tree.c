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
queue(struct mnt *m, fuse_ino_t ino, const char *name)
{
  if (!m->se)
    return;                         /* not mounted: the kernel knows nothing */
  struct inval *v = calloc(1, sizeof *v);
  if (!v)
    return;
  v->ino = ino;
  v->name = name ? strdup(name) : NULL;
  pthread_mutex_lock(&m->q_lock);
  *m->q_tail = v;
  m->q_tail = &v->next;
  pthread_mutex_unlock(&m->q_lock);
}

void
tree_queue_inval_entry(struct mnt *m, fuse_ino_t parent, const char *name)
{
  queue(m, parent, name);
}

void
tree_queue_inval_inode(struct mnt *m, fuse_ino_t ino)
{
  queue(m, ino, NULL);
}

static void
wake(struct mnt *m)
{
  uint64_t one = 1;
  if (m->wake_fd >= 0 && write(m->wake_fd, &one, sizeof one) < 0)
    bfs_log(BFS_LOG_DEBUG, "eventfd: %m");
}

static void
send_invalidations(struct mnt *m)
{
  pthread_mutex_lock(&m->q_lock);
  struct inval *v = m->q_head;
  m->q_head = NULL;
  m->q_tail = &m->q_head;
  pthread_mutex_unlock(&m->q_lock);
  while (v) {
    struct inval *next = v->next;
    if (m->se) {
      if (v->name)
        fuse_lowlevel_notify_inval_entry(m->se, v->ino, v->name,
                                         strlen(v->name));
      else
        fuse_lowlevel_notify_inval_inode(m->se, v->ino, 0, 0);
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
perm_of(struct mnt *m, const char *rel, struct perm *p, struct stat *out)
{
  struct stat st;
  int fd = m->repo_fd, root;
  /* a layer in another store (catalog.h: ".root<i>/" locators) */
  if (rel && *rel && (root = catalog_locator_root(m->cat, rel, &rel)) != 0) {
    if (root < 0) return false;
    fd = catalog_root_fd(m->cat, (size_t)root);
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
want_perms(struct mnt *m, struct want *w)
{
  const struct catalog_backup *b = w->b;
  struct stat st;

  w->disks = calloc(b->ndisks ? b->ndisks : 1, sizeof *w->disks);
  for (size_t i = 0; w->disks && i < b->ndisks; i++) {
    const struct catalog_disk *cd = &b->disks[i];
    struct perm p;
    for (size_t k = 0; k < cd->chain_len; k++) {
      if (!perm_of(m, cd->chain[k], &p, NULL)) {
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
      perm_of(m, d, &w->dir, NULL);
  }
  if (b->domain_xml && perm_of(m, b->domain_xml, &w->domain, &st)) {
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
drop_kid(struct mnt *m, struct node *dir, struct node *kid)
{
  tree_queue_inval_entry(m, dir->ino, kid->name);
  node_remove_kid(dir, kid);
  node_unlink(m, kid);
}

static struct node *
add_kid(struct mnt *m, struct node *dir, enum node_kind kind,
        const char *name)
{
  struct node *n = node_new(m, kind, name, dir);
  if (n && node_add_kid(dir, n) < 0) {
    node_unlink(m, n);
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
add_vm_config(struct mnt *m, struct node *bn, const struct want *w)
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
      struct node *c = add_kid(m, bn, N_JSON, keys[i][1]);
      if (c) {
        c->blob = blob_new(json_object_get_string(v),
                           (size_t)json_object_get_string_len(v));
        c->perm = w->dir;
      }
    }
  json_object_put(o);
}

/* disks/<disk>.img of each of the backup's disks, into dd */
static void
add_disks(struct mnt *m, struct node *dd, const struct want *w)
{
  const struct catalog_backup *b = w->b;
  char path[PATH_MAX];

  for (size_t i = 0; i < b->ndisks; i++) {
    const struct catalog_disk *cd = &b->disks[i];
    char name[NAME_MAX + 1];
    if (!valid_name(cd->name) || !cd->image ||
        snprintf(name, sizeof name, "%s.img", cd->name) >= (int)sizeof name ||
        snprintf(path, sizeof path, "%s/%s", m->repo, cd->image) >=
        (int)sizeof path || node_kid(dd, name))
      continue;
    char owner[3 * NAME_MAX + 8];
    snprintf(owner, sizeof owner, "%s/%s/%s", b->vm, b->name, name);
    struct disk *d = disk_new(m, path, cd, owner);
    if (!d)
      continue;
    if (w->disks)
      d->perm = w->disks[i];
    if (m->scratch &&
        asprintf(&d->scratch_path, "%s/%s/%s/%s", m->scratch, b->vm,
                 b->name, name) < 0)
      d->scratch_path = NULL;
    struct node *dn = add_kid(m, dd, N_DISK, name);
    if (dn)
      dn->disk = d;
    else
      disk_unref(d);
  }
}

/* Fill an empty backup directory. */
static void
build_backup(struct mnt *m, struct node *bn, const struct want *w)
{
  const struct catalog_backup *b = w->b;

  bn->mtime = b->time;
  bn->perm = w->dir;
  struct node *j = add_kid(m, bn, N_JSON, "backup.json");
  if (j) {
    j->blob = blob_new(w->json, strlen(w->json));
    j->perm = w->dir;
  }
  if (b->domain_xml && w->domain.mode) {
    struct node *x = add_kid(m, bn, N_DOMAIN, "domain.xml");
    if (x) {
      x->path = strdup(b->domain_xml);
      x->size = w->domain_id.size;
      x->id = w->domain_id;
      x->perm = w->domain;
    }
  }
  add_vm_config(m, bn, w);
  struct node *dd = add_kid(m, bn, N_DISKS, "disks");
  if (!dd)
    return;
  dd->perm = w->dir;
  add_disks(m, dd, w);
  if (files_enabled() && dd->nkids > 0) {
    struct node *f = add_kid(m, bn, N_FILES, "files");
    if (f && asprintf(&f->key, "%s/%s", b->vm, b->name) < 0)
      f->key = NULL;
    if (f)
      f->path = files_broken_reason(b);  /* files/ says it, no appliance */
    if (f)
      f->perm = w->dir;
  }
}

static void
clear_dir(struct mnt *m, struct node *dir)
{
  while (dir->nkids)
    drop_kid(m, dir, dir->kids[dir->nkids - 1]);
}

/* Bring one VM directory in line with its backups (write lock held). */
static void
apply_vm(struct mnt *m, struct node *vn, struct want *ws, size_t nw)
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
      drop_kid(m, vn, k);
  }
  /* new and changed ones, in catalog (chronological) order */
  if (nw > 0) {
    const char *target = ws[nw - 1].b->name;
    if (!latest)
      latest = node_new(m, N_LATEST, "latest", vn);
    if (latest && (!latest->blob || strcmp(latest->blob->data, target))) {
      blob_unref(latest->blob);
      latest->blob = blob_new(target, strlen(target));
      latest->mtime = ws[nw - 1].b->time;
      tree_queue_inval_inode(m, latest->ino);
    }
    if (latest) {
      latest->perm = vn->perm;
      kids[nk++] = latest;
    }
    vn->mtime = ws[nw - 1].b->time;
  }
  else if (latest) {
    tree_queue_inval_entry(m, vn->ino, "latest");
    node_unlink(m, latest);
  }
  for (size_t j = 0; j < nw; j++) {
    if (!valid_name(ws[j].b->name) || !strcmp(ws[j].b->name, "latest"))
      continue;
    struct node *bn = node_kid(vn, ws[j].b->name);
    if (bn && bn->kind == N_BACKUP) {
      if (!backup_same(bn, &ws[j])) {
        clear_dir(m, bn);
        build_backup(m, bn, &ws[j]);
        tree_queue_inval_inode(m, bn->ino);
      }
    }
    else if ((bn = node_new(m, N_BACKUP, ws[j].b->name, vn)))
      build_backup(m, bn, &ws[j]);
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
vm_perm(struct mnt *m, struct want_vm *v)
{
  const struct catalog_backup *b = &v->bs[v->n - 1];
  if (b->ndisks && b->disks[0].image) {
    CLEANUP_FREE char *d = dir_of(b->disks[0].image);
    CLEANUP_FREE char *up = d ? dir_of(d) : NULL;
    if (up)
      perm_of(m, up, &v->perm, NULL);
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
apply_by_name(struct mnt *m, struct node *root, struct want_vm *vms, size_t nvms)
{
  struct node *by = node_kid(root, "by-name"), *nb = node_new(m, N_VM, "by-name",
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
    struct node *l = add_kid(m, nb, N_LATEST, name);
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
    if (nb) node_unlink(m, nb);
    if (by && !same) drop_kid(m, root, by);
    return;
  }
  if (by) drop_kid(m, root, by);
  nb->perm = root->perm;
  nb->mtime = root->mtime;
  if (node_add_kid(root, nb) < 0) node_unlink(m, nb);
}

/* Every VM's backups as the catalog has them, with their backup.json and
 * the repository's permissions (no tree lock held).  vms has nnames
 * entries, those of VMs the catalog could not list empty. */
static int
read_vms(struct mnt *m, char **names, size_t nnames, struct want_vm *vms)
{
  for (size_t i = 0; i < nnames; i++) {
    vms[i].name = names[i];
    if (catalog_backups(m->cat, names[i], &vms[i].bs, &vms[i].n) < 0) {
      bfs_log(BFS_LOG_WARN, "%s: %s", names[i], bfs_last_error());
      vms[i].bs = NULL;
      vms[i].n = 0;
      continue;
    }
    vms[i].ws = calloc(vms[i].n ? vms[i].n : 1, sizeof *vms[i].ws);
    if (!vms[i].ws)
      return -ENOMEM;
    for (size_t j = 0; j < vms[i].n; j++) {
      vms[i].ws[j].b = &vms[i].bs[j];
      vms[i].ws[j].json = catalog_backup_json(m->cat, &vms[i].bs[j]);
      if (!vms[i].ws[j].json)
        vms[i].ws[j].json = strdup("{}\n");
      want_perms(m, &vms[i].ws[j]);
    }
    if (vms[i].n)
      vm_perm(m, &vms[i]);
  }
  return 0;
}

/* Bring the root in line with the VMs read (write lock held). */
static void
apply_root(struct mnt *m, const struct perm *root_perm, char **names,
           struct want_vm *vms, size_t nnames)
{
  struct node *root = m->root;

  if (!perm_eq(&root->perm, root_perm)) {
    root->perm = *root_perm;
    tree_queue_inval_inode(m, root->ino);
  }
  bool by_name = true;              /* by-name/, unless a VM is called so */
  for (size_t j = 0; j < nnames; j++)
    by_name &= strcmp(names[j], "by-name") != 0;
  for (size_t i = root->nkids; i-- > 0;) {
    bool keep = by_name && !strcmp(root->kids[i]->name, "by-name");
    for (size_t j = 0; j < nnames && !keep; j++)
      keep = !strcmp(names[j], root->kids[i]->name) && vms[j].n > 0;
    if (!keep)
      drop_kid(m, root, root->kids[i]);
  }
  for (size_t j = 0; j < nnames; j++) {
    if (vms[j].n == 0 || !vms[j].ws || !valid_name(names[j]))
      continue;
    struct node *vn = node_kid(root, names[j]);
    if (!vn && !(vn = add_kid(m, root, N_VM, names[j])))
      continue;
    if (!perm_eq(&vn->perm, &vms[j].perm)) {
      vn->perm = vms[j].perm;
      tree_queue_inval_inode(m, vn->ino);
    }
    apply_vm(m, vn, vms[j].ws, vms[j].n);
    if (vn->mtime > root->mtime)
      root->mtime = vn->mtime;
  }
  if (by_name)
    apply_by_name(m, root, vms, nnames);
}

int
tree_refresh(struct mnt *m, bool scan)
{
  char **names = NULL;
  size_t nnames = 0;
  struct want_vm *vms = NULL;
  struct perm root_perm = { 0 };
  int r;

  pthread_mutex_lock(&m->scan_lock);
  atomic_store(&m->dirty, false);
  m->last_scan = time(NULL);
  if (scan) {
    struct catalog_scan_stats stats;
    r = catalog_scan(m->cat, &stats);
    if (r < 0) {
      bfs_log(BFS_LOG_WARN, "rescan of %s: %s", m->repo, bfs_last_error());
      goto out;
    }
  }
  r = catalog_vms(m->cat, &names, &nnames);
  if (r < 0)
    goto out;
  vms = calloc(nnames ? nnames : 1, sizeof *vms);
  r = vms ? read_vms(m, names, nnames, vms) : -ENOMEM;
  if (r < 0)
    goto out;
  perm_of(m, "", &root_perm, NULL);

  pthread_rwlock_wrlock(&m->tree_lock);
  apply_root(m, &root_perm, names, vms, nnames);
  pthread_rwlock_unlock(&m->tree_lock);

out:
  if (vms)
    free_want_vms(vms, nnames);
  catalog_names_free(names, nnames);
  pthread_mutex_unlock(&m->scan_lock);
  wake(m);                          /* the watcher sends the invalidations */
  return r;
}

void
tree_request_rescan(struct mnt *m)
{
  atomic_store(&m->dirty, true);
  wake(m);
}

void
tree_maybe_refresh(struct mnt *m)
{
  if (m->inotify_ok ? atomic_load(&m->dirty)
                     : time(NULL) - m->last_scan >= RESCAN_INTERVAL)
    tree_refresh(m, true);
}

/* ---- inotify ---- */

static int
watch_dir(struct mnt *m, const char *path, int depth)
{
  int wd = inotify_add_watch(m->ino_fd, path,
                             IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                             IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF |
                             IN_ATTRIB |
                             IN_ONLYDIR | IN_EXCL_UNLINK);
  if (wd < 0) {
    bfs_log(BFS_LOG_DEBUG, "inotify %s: %m", path);
    return -1;
  }
  if ((size_t)wd >= m->wd_cap) {
    size_t ncap = m->wd_cap ? m->wd_cap : 64;
    while (ncap <= (size_t)wd)
      ncap *= 2;
    char **np = realloc(m->wd_paths, ncap * sizeof *np);
    if (np)
      m->wd_paths = np;
    int *nd = realloc(m->wd_depth, ncap * sizeof *nd);
    if (nd)
      m->wd_depth = nd;
    if (!np || !nd)
      return wd;
    memset(m->wd_paths + m->wd_cap, 0, (ncap - m->wd_cap) * sizeof *np);
    m->wd_cap = ncap;
  }
  free(m->wd_paths[wd]);
  m->wd_paths[wd] = strdup(path);
  m->wd_depth[wd] = depth;
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
    watch_dir(m, sub, depth + 1);
  }
  closedir(d);
  return wd;
}

static void
read_events(struct mnt *m)
{
  char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
  ssize_t len;

  while ((len = read(m->ino_fd, buf, sizeof buf)) > 0) {
    for (char *p = buf; p < buf + len;) {
      struct inotify_event *ev = (struct inotify_event *)p;
      p += sizeof *ev + ev->len;
      atomic_store(&m->dirty, true);
      if (ev->mask & IN_IGNORED && ev->wd >= 0 &&
          (size_t)ev->wd < m->wd_cap) {
        free(m->wd_paths[ev->wd]);
        m->wd_paths[ev->wd] = NULL;
      }
      if ((ev->mask & (IN_CREATE | IN_MOVED_TO)) && (ev->mask & IN_ISDIR) &&
          ev->len && ev->wd >= 0 && (size_t)ev->wd < m->wd_cap &&
          m->wd_paths[ev->wd] && m->wd_depth[ev->wd] < WATCH_DEPTH) {
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s/%s", m->wd_paths[ev->wd],
                     ev->name) < (int)sizeof sub)
          watch_dir(m, sub, m->wd_depth[ev->wd] + 1);
      }
      if (ev->mask & IN_Q_OVERFLOW)
        atomic_store(&m->dirty, true);
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
  struct mnt *m = arg;
  int64_t first = 0, last = 0;

  while (!atomic_load(&m->stop)) {
    struct pollfd p[2] = {
      { .fd = m->wake_fd, .events = POLLIN },
      { .fd = m->ino_fd, .events = POLLIN },
    };
    int timeout = -1;
    if (first) {
      int64_t t = now_ms();
      int64_t due = last + DEBOUNCE_MS;
      if (due > first + DEBOUNCE_MAX_MS)
        due = first + DEBOUNCE_MAX_MS;
      timeout = due > t ? (int)(due - t) : 0;
    }
    int n = poll(p, m->ino_fd >= 0 ? 2 : 1, timeout);
    if (n < 0 && errno != EINTR)
      break;
    if (p[0].revents & POLLIN) {
      uint64_t v;
      if (read(m->wake_fd, &v, sizeof v) < 0)
        bfs_log(BFS_LOG_DEBUG, "eventfd: %m");
    }
    if (m->ino_fd >= 0 && (p[1].revents & POLLIN)) {
      read_events(m);
      last = now_ms();
      if (!first)
        first = last;
    }
    if (first && !atomic_load(&m->dirty))
      first = 0;                    /* a readdir already rescanned */
    if (!first && atomic_load(&m->dirty))
      first = last = now_ms();      /* tree_request_rescan() */
    if (first && (now_ms() >= last + DEBOUNCE_MS ||
                  now_ms() >= first + DEBOUNCE_MAX_MS)) {
      first = 0;
      tree_refresh(m, true);
    }
    send_invalidations(m);
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
tree_watch_start(struct mnt *m)
{
  m->q_tail = &m->q_head;
  m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (m->wake_fd < 0)
    return bfs_error(-errno, "eventfd: %m");
  m->ino_fd = m->no_inotify ? -1 : inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (m->ino_fd >= 0)
    m->inotify_ok = watch_dir(m, m->repo, 0) >= 0 && !network_fs(m->repo);
  if (!m->inotify_ok)
    bfs_log(BFS_LOG_INFO, "%s: inotify unavailable or blind to remote "
            "writers: rescanning on listing", m->repo);
  int r = pthread_create(&m->watcher, NULL, watcher, m);
  if (r)
    return bfs_error(-r, "pthread_create: %s", strerror(r));
  return 0;
}

void
tree_watch_stop(struct mnt *m)
{
  atomic_store(&m->stop, true);
  wake(m);
  pthread_join(m->watcher, NULL);
  /* drop what is still queued; atomic: the guest pool's reaper reads it
   * (session_stopping) */
  __atomic_store_n(&m->se, NULL, __ATOMIC_RELEASE);
  send_invalidations(m);
  if (m->ino_fd >= 0)
    close(m->ino_fd);
  close(m->wake_fd);
  for (size_t i = 0; i < m->wd_cap; i++)
    free(m->wd_paths[i]);
  free(m->wd_paths);
  free(m->wd_depth);
  m->wd_paths = NULL;
  m->wd_depth = NULL;
  m->wd_cap = 0;
}
