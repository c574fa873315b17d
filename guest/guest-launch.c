/* guest-launch.c — starting one guest's appliance, in a thread of its own.
 *
 * The launcher thread (started by guest.c with the guest STARTING) takes a
 * pool slot, creates the handle on the backup's raw disks (readonly=1,
 * format=raw, autosync off), launches it, notes qemu's PID, then mounts the
 * filesystems: with inspection the OS root assembled from its fstab
 * (mountpoints mounted shortest first); without an OS every filesystem on
 * its own /<name>, named after the guest's disks as the mount knows them
 * (/dev/sda1 of the first disk vda.img → vda1, /dev/sdb → vdb, vg/lv →
 * vg-lv).  Mounts never replay journals (ext*: noload, xfs: norecovery,
 * btrfs: nologreplay) and fall back to plain "ro"; NTFS goes through ntfs-3g
 * read-only.  A filesystem that cannot be mounted is a directory holding a
 * virtual `.backupfs-error` with the reason.
 *
 * The launcher owns its handle alone until it publishes it (READY) under
 * g->lock and g->slock; each step updates g->phase, which files/
 * .backupfs-status shows.  Every process the launch starts is a child of
 * this thread (/proc/self/task/TID/children), which is how the watchdog
 * kills a launch that does not finish in time.  If the watchdog gave up on
 * this launch's generation meanwhile, the launcher only cleans up after
 * itself.
 */
#include "guest/guest-int.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"

#define MAX_TREE 256

/* ---- killing a launch ---------------------------------------------- */

/* Children of task tid of process pid, appended to out[*n]. */
static void
children_of(pid_t pid, pid_t tid, pid_t *out, size_t *n)
{
  char path[96], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)tid);
  CLEANUP_FCLOSE FILE *f = fopen(path, "re");
  if (!f)
    return;
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  buf[len] = '\0';
  for (char *s = buf, *end; *n < MAX_TREE; s = end) {
    long c = strtol(s, &end, 10);
    if (end == s)
      break;
    if (c > 0)
      out[(*n)++] = (pid_t)c;
  }
}

/* Every task of process p, each one's children appended. */
static void
children_of_process(pid_t p, pid_t *out, size_t *n)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", (int)p);
  DIR *d = opendir(path);
  if (!d)
    return;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_name[0] != '.')
      children_of(p, (pid_t)atoi(de->d_name), out, n);
  closedir(d);
}

void
guest_kill_tree(pid_t tid)
{
  pid_t tree[MAX_TREE];
  size_t n = 0;
  children_of(getpid(), tid, tree, &n);
  /* stop them all first so none forks or reaps meanwhile, then kill */
  for (size_t i = 0; i < n; i++) {
    kill(tree[i], SIGSTOP);
    children_of_process(tree[i], tree, &n);
  }
  for (size_t i = 0; i < n; i++)
    kill(tree[i], SIGKILL);
  if (n)
    bfs_log(BFS_LOG_INFO, "killed %zu process(es) of a launch (first %d)", n,
            (int)tree[0]);
}

void
guest_free_failed(struct failed_mount *f, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(f[i].mp);
    free(f[i].msg);
  }
  free(f);
}

/* ---- mounts -------------------------------------------------------- */

struct mounts {
  struct failed_mount *failed;
  size_t nfailed;
  bool has_os;
};

/* Mount dev on mp read-only without replaying a journal.  Returns NULL or
 * the reason it failed (malloc'd). */
static char *
mount_ro(guestfs_h *h, const char *dev, const char *name, const char *mp)
{
  CLEANUP_FREE char *type = guestfs_vfs_type(h, dev);
  const char *opts = NULL, *vfs = NULL;

  if (type && !strncmp(type, "ext", 3))
    opts = "ro,noload";
  else if (type && !strcmp(type, "xfs"))
    opts = "ro,norecovery";
  else if (type && !strcmp(type, "btrfs"))
    opts = "ro,nologreplay";
  else if (type && !strcmp(type, "ntfs"))
    opts = "ro", vfs = "ntfs-3g";

  if (opts && guestfs_mount_vfs(h, opts, vfs ? vfs : "", dev, mp) == 0)
    return NULL;
  if (vfs)   /* ntfs-3g read-only is already the fallback */
    goto fail;
  if (guestfs_mount_ro(h, dev, mp) == 0)
    return NULL;
 fail:;
  char *msg;
  if (asprintf(&msg, "%s (%s) could not be mounted on %s: %s\n", name,
               type ? type : "unknown filesystem", mp, guest_gerr(h)) < 0)
    msg = NULL;
  return msg;
}

static void
add_failed(guest_t *g, struct mounts *m, const char *mp, char *msg)
{
  struct failed_mount *f = realloc(m->failed, (m->nfailed + 1) * sizeof *f);
  if (!f) {
    free(msg);
    return;
  }
  m->failed = f;
  f[m->nfailed].mp = strdup(mp);
  f[m->nfailed].msg = msg ? msg : strdup("could not be mounted\n");
  if (!f[m->nfailed].mp) {
    free(f[m->nfailed].msg);
    return;
  }
  bfs_log(BFS_LOG_WARN, "%s: %s", g->key, f[m->nfailed].msg);
  m->nfailed++;
}

static int
cmp_mp_len(const void *a, const void *b)
{
  const char *const *x = a, *const *y = b;
  size_t lx = strlen(x[0]), ly = strlen(y[0]);
  return lx < ly ? -1 : lx > ly ? 1 : strcmp(x[0], y[0]);
}

/* The guest disk of an appliance device name ("sdb3" → disk 1, "3"). */
static bool
device_disk(const char *s, size_t *disk, const char **part)
{
  if (strncmp(s, "sd", 2) && strncmp(s, "vd", 2) && strncmp(s, "hd", 2))
    return false;
  s += 2;
  size_t idx = 0;
  const char *p = s;
  for (; *p >= 'a' && *p <= 'z'; p++)   /* sda..sdz, sdaa.. (bijective) */
    idx = idx * 26 + (size_t)(*p - 'a' + 1);
  if (p == s || p - s > 3)
    return false;
  for (const char *q = p; *q; q++)
    if (*q < '0' || *q > '9')
      return false;
  *disk = idx - 1;
  *part = p;
  return true;
}

/* Directory name for a filesystem without an OS: /dev/sda1 → vda1 (the
 * first disk's name + partition; "disk0" + "1" → disk0p1), /dev/vg/lv →
 * vg-lv, /dev/mapper/x → x, btrfsvol:/dev/sda2/sub → vda2-sub. */
static char *
fs_name(const guest_t *g, const char *dev)
{
  const char *s = dev;
  if (!strncmp(s, "btrfsvol:", 9)) s += 9;    /* btrfsvol:/dev/sda2/sub */
  if (!strncmp(s, "/dev/mapper/", 12)) s += 12;
  else if (!strncmp(s, "/dev/", 5)) s += 5;
  size_t len = strcspn(s, "/");
  CLEANUP_FREE char *first = strndup(s, len);
  size_t disk;
  const char *part;
  char *n = NULL;
  if (first && device_disk(first, &disk, &part) && disk < g->ndisks &&
      g->names[disk] && g->names[disk][0]) {
    const char *dn = g->names[disk];
    size_t dl = strlen(dn);
    bool digit = dl && dn[dl - 1] >= '0' && dn[dl - 1] <= '9';
    if (asprintf(&n, "%s%s%s%s", dn, *part && digit ? "p" : "", part,
                 s + len) < 0)
      n = NULL;
  }
  else
    n = strdup(s);
  for (char *p = n; p && *p; p++)
    if (*p == '/')
      *p = '-';
  return n;
}

static void
free_strv(char **v)
{
  if (!v)
    return;
  for (size_t i = 0; v[i]; i++)
    free(v[i]);
  free(v);
}

static int
setup_mounts(guest_t *g, guestfs_h *h, struct mounts *m)
{
  char **roots = guestfs_inspect_os(h);

  if (roots && roots[0]) {
    char **mps = guestfs_inspect_get_mountpoints(h, roots[0]);
    free_strv(roots);
    if (!mps)
      return bfs_error(-EIO, "inspection: %s", guest_gerr(h));
    size_t n = 0;
    while (mps[n]) n++;
    qsort(mps, n / 2, 2 * sizeof *mps, cmp_mp_len);
    m->has_os = true;
    for (size_t i = 0; i + 1 < n; i += 2) {
      char *msg = mount_ro(h, mps[i + 1], mps[i + 1], mps[i]);
      if (msg)
        add_failed(g, m, mps[i], msg);
    }
    free_strv(mps);
    return 0;
  }
  free_strv(roots);

  /* no OS: one directory per filesystem */
  m->has_os = false;
  char **fss = guestfs_list_filesystems(h);
  if (!fss)
    return bfs_error(-EIO, "listing filesystems: %s", guest_gerr(h));
  char **kids = calloc(1, sizeof *kids);
  size_t nkids = 0;
  for (size_t i = 0; kids && fss[i] && fss[i + 1]; i += 2) {
    const char *dev = fss[i], *type = fss[i + 1];
    if (!strcmp(type, "unknown") || !strcmp(type, "swap") || !type[0])
      continue;
    CLEANUP_FREE char *name = fs_name(g, dev);
    CLEANUP_FREE char *mp = name ? gc_join("/", name) : NULL;
    char **k = realloc(kids, (nkids + 2) * sizeof *k);
    if (!mp || !k)
      break;
    kids = k;
    if (!(kids[nkids] = strdup(name)))
      break;
    kids[++nkids] = NULL;
    if (guestfs_mkmountpoint(h, mp) < 0) {
      char *msg;
      if (asprintf(&msg, "%s: cannot create mountpoint: %s\n", name,
                   guest_gerr(h)) < 0)
        msg = NULL;
      add_failed(g, m, mp, msg);
      continue;
    }
    char *msg = mount_ro(h, dev, name, mp);
    if (msg)
      add_failed(g, m, mp, msg);
  }
  free_strv(fss);
  if (!kids)
    return bfs_error(-ENOMEM, "out of memory");

  /* the root listing is ours: each filesystem's directory */
  struct guestfs_statns **sts = calloc(nkids ? nkids : 1, sizeof *sts);
  if (!sts) {
    free_strv(kids);
    return bfs_error(-ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < nkids; i++) {
    CLEANUP_FREE char *p = gc_join("/", kids[i]);
    sts[i] = p ? guestfs_lstatns(h, p) : NULL;
  }
  pthread_mutex_lock(&g->clock);
  for (size_t i = 0; i < nkids; i++) {
    CLEANUP_FREE char *p = gc_join("/", kids[i]);
    struct gc_entry *e = p ? gc_get(&g->cache, p) : NULL;
    if (e && sts[i])
      guest_statns_to_stat(sts[i], &e->st);
    else if (e) {
      memset(&e->st, 0, sizeof e->st);
      e->st.st_mode = S_IFDIR | 0555;
      e->st.st_nlink = 2;
    }
    guestfs_free_statns(sts[i]);
  }
  free(sts);
  struct gc_entry *root = gc_get(&g->cache, "/");
  if (root)
    gc_set_kids(root, kids, nkids);
  else
    free_strv(kids);
  pthread_mutex_unlock(&g->clock);
  return 0;
}

/* ---- the launcher thread ------------------------------------------- */

/* false when this launch was given up on */
static bool
set_phase(guest_t *g, unsigned gen, const char *phase)
{
  pthread_mutex_lock(&g->slock);
  bool mine = g->gen == gen && !g->killed_at;
  if (mine)
    g->phase = phase;
  pthread_mutex_unlock(&g->slock);
  return mine && !atomic_load(&g->pool->stopping);
}

static void
launcher_done(guest_pool_t *pool)
{
  pthread_mutex_lock(&pool->lock);
  pool->nlaunchers--;
  pthread_cond_broadcast(&pool->cond);
  pthread_mutex_unlock(&pool->lock);
}

void *
guest_launcher_main(void *arg)
{
  guest_t *g = arg;
  guest_pool_t *pool = g->pool;
  guestfs_h *h = NULL;
  struct mounts m = { 0 };
  char *why = NULL;
  bool slot = false;
  pid_t pid = 0;

  pthread_mutex_lock(&g->slock);
  unsigned gen = g->gen;
  g->launcher_tid = (pid_t)syscall(SYS_gettid);
  g->phase = "a free appliance slot";
  pthread_mutex_unlock(&g->slock);

  if (guest_reserve_slot(g, gen) < 0)
    goto fail;
  slot = true;
  if (!set_phase(g, gen, "libguestfs to start the appliance (qemu)"))
    goto fail;
  h = guestfs_create_flags(GUESTFS_CREATE_NO_CLOSE_ON_EXIT);
  if (!h) {
    why = strdup("cannot create a libguestfs handle");
    goto fail;
  }
  guestfs_set_error_handler(h, NULL, NULL);
  guestfs_set_autosync(h, 0);        /* read-only drives: nothing to sync */
  for (size_t i = 0; i < g->ndisks; i++)
    if (guestfs_add_drive_opts(h, g->disks[i],
                               GUESTFS_ADD_DRIVE_OPTS_READONLY, 1,
                               GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw", -1) < 0) {
      if (asprintf(&why, "%s: %s", g->disks[i], guest_gerr(h)) < 0)
        why = NULL;
      goto fail;
    }
  bfs_log(BFS_LOG_INFO, "%s: launching appliance", g->key);
  if (guestfs_launch(h) < 0) {
    const char *e = guest_gerr(h);   /* its first line; the rest is advice */
    if (asprintf(&why, "appliance failed to start: %.*s", (int)strcspn(e, "\n"),
                 e) < 0)
      why = NULL;
    goto fail;
  }
  pid = guestfs_get_pid(h);
  pthread_mutex_lock(&g->slock);
  if (g->gen == gen)
    g->qemu_pid = pid > 0 ? pid : 0;   /* so a hung inspection is killable */
  pthread_mutex_unlock(&g->slock);
  if (!set_phase(g, gen, "inspection and mounting of the guest's filesystems"))
    goto fail;
  if (setup_mounts(g, h, &m) < 0) {
    why = strdup(bfs_last_error());
    goto fail;
  }

  /* publish (g->lock: nobody else may use the handle before READY) */
  pthread_mutex_lock(&g->lock);
  pthread_mutex_lock(&pool->lock);
  pthread_mutex_lock(&g->slock);
  bool mine = g->gen == gen && !g->killed_at && !atomic_load(&pool->stopping);
  if (mine) {
    g->live = true;                     /* the slot is the guest's now */
    g->h = h;
    g->qemu_pid = pid > 0 ? pid : 0;
    g->failed = m.failed;
    g->nfailed = m.nfailed;
    g->has_os = m.has_os;
    g->state = G_READY;
    g->since = g->last_used = time(NULL);
    g->call_since = 0;
    g->launcher_tid = 0;
    g->failed_at = 0;
    free(g->launch_err);
    g->launch_err = NULL;
    pthread_cond_broadcast(&g->scond);
  }
  pthread_mutex_unlock(&g->slock);
  pthread_mutex_unlock(&pool->lock);
  pthread_mutex_unlock(&g->lock);
  if (mine) {
    bfs_log(BFS_LOG_INFO, "%s: appliance ready (qemu pid %d)", g->key,
            (int)pid);
    launcher_done(pool);
    return NULL;
  }

 fail:
  if (h) {
    if (pid > 0)
      kill(pid, SIGKILL);
    guestfs_close(h);
  }
  guest_free_failed(m.failed, m.nfailed);
  if (slot)
    guest_unreserve_slot(pool);
  pthread_mutex_lock(&g->slock);
  if (g->gen == gen) {
    if (g->killed_at) {             /* the watchdog's reason comes first */
      char *w = NULL;
      if (asprintf(&w, "%s\nlibguestfs: %s", g->kill_why ? g->kill_why :
                   "the appliance was killed", why ? why : "-") < 0)
        w = NULL;
      free(why);
      why = w;
    }
    else if (!why && atomic_load(&pool->stopping))
      why = strdup("the mount is stopping");
    g->qemu_pid = 0;
    g->launcher_tid = 0;
    guest_fail_locked(g, why);
    why = NULL;
  }
  pthread_mutex_unlock(&g->slock);
  free(why);
  launcher_done(pool);
  return NULL;
}
