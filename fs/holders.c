/* holders.c — disks held by other processes keep the daemon alive.
 *
 * A quick-restored VM runs on qcow2 overlays backed by
 * MNT/<vm>/<time>/disks/<disk>.img.  If the daemon went while the VM runs,
 * the VM's backing reads would fail and a block pull would "complete" with
 * zeros.  So:
 *
 *  - Every open handle of a disk carries a holder record: the opener's
 *    process (the kernel names the thread; its Tgid is taken), its command
 *    name at open time, and whether it is this daemon or one of its
 *    descendants (libguestfs appliances read the disks through the mount:
 *    they are shown, but they do not keep the mount).  The records are one
 *    list in the mount's struct holders (mnt.holders) under its lock;
 *    `others` counts the handles of everyone else.
 *  - SIGTERM/SIGINT/SIGHUP/SIGUSR1 handlers only write the signal number to
 *    a pipe (async-signal-safe; handlers are reset by exec, so appliances
 *    and other children are not affected), and one thread acts on it.  The
 *    pipe's write end is the one file-scope variable of fs/ (signal_pipe):
 *    a handler is given no argument to find the mount by.  libfuse's own
 *    fuse_set_signal_handlers() would not spare it (it keeps the session
 *    in a file-scope variable of its own) and would end the session at the
 *    first SIGTERM, held disks or not.  With
 *    no disk held by others the session ends at once: fuse_session_exit,
 *    then SIGUSR2 (a no-op handler without SA_RESTART) to the loop's thread
 *    to interrupt its sem_wait()/read(), repeated until the loop returns so
 *    that a wakeup cannot be lost.  Otherwise the daemon logs which images
 *    are held by which processes, keeps serving, and ends when the last of
 *    those handles is released; another SIGTERM logs again, it does not
 *    force.  SIGUSR1 (`backupfs umount --force`) ends at once, held or not.
 *  - The status file MNT/.backupfs-status (read-only, not listed, a fresh
 *    JSON snapshot at every open) is what `backupfs status` and `backupfs
 *    umount` read.  A file rather than a socket: it names the mount it
 *    describes without a state directory to agree on (fstab, systemd and
 *    user mounts alike), it needs no extra thread, and the mount's own
 *    permissions decide who sees it.
 *
 * Locks: the holders' lock (mutex) guards the list, the counters and the
 * stop state.
 * It may be taken under the tree read lock (open) and nothing else is taken
 * under it; /proc is read before it is taken.
 */
#include "fs/holders.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json-str.h"

#define MAX_ANCESTRY 64             /* ppid steps when looking for us */
#define WAKE_MS 100                 /* repeat the loop wakeup this often */
#define SIG_RELEASED 255            /* pipe byte: a holder went away */
#define SIG_QUIT 0                  /* pipe byte: the loop has returned */

struct holder {
  struct holder *prev, *next;
  char *path;                       /* "vm/time/disks/disk.img" */
  pid_t pid;                        /* process; the thread id if unknown */
  bool ours;                        /* this daemon or a descendant */
  char comm[17];
};

struct holders {                    /* mnt.holders */
  pthread_mutex_t lock;
  struct holder *head;
  unsigned others;                  /* handles held by other processes */
  int stop_sig;                     /* a stop was asked for (0: no) */
  unsigned stop_asks;               /* stop signals refused so far */
  int pipe[2];
  pid_t self;
  pthread_t thread, loop_thread;
  bool started;
  atomic_bool ending, loop_done;
};

/* The write end of hs->pipe, for on_signal: a signal handler is given no
 * argument, so this is the one file-scope variable of the mount (see the
 * note above and mount.h).  Set before the handlers are installed, -1
 * again once they are gone. */
static int signal_pipe = -1;

int
holders_init(struct mnt *m)
{
  struct holders *hs = calloc(1, sizeof *hs);
  if (!hs)
    return bfs_error(-ENOMEM, "out of memory");
  pthread_mutex_init(&hs->lock, NULL);
  hs->pipe[0] = hs->pipe[1] = -1;
  m->holders = hs;
  return 0;
}

/* ---- processes ---- */

/* "Key:\tvalue" of /proc/PID/status; -1 when not there */
static long
proc_status_field(pid_t pid, const char *key)
{
  char path[64], line[256];
  size_t klen = strlen(key);
  long v = -1;

  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  CLEANUP_FCLOSE FILE *f = fopen(path, "re");
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, key, klen) && line[klen] == ':') {
      v = strtol(line + klen + 1, NULL, 10);
      break;
    }
  return v;
}

static void
proc_comm(pid_t pid, char *buf, size_t size)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
  CLEANUP_FCLOSE FILE *f = fopen(path, "re");
  if (!f || !fgets(buf, size, f)) {
    snprintf(buf, size, "?");
    return;
  }
  buf[strcspn(buf, "\n")] = '\0';
}

static bool
is_ours(const struct holders *hs, pid_t pid)
{
  for (int i = 0; i < MAX_ANCESTRY && pid > 1; i++) {
    if (pid == hs->self)
      return true;
    pid = proc_status_field(pid, "PPid");
  }
  return false;
}

/* "vm/time/disks/disk.img" of a disk node (tree read lock held) */
static char *
node_path(const struct node *n)
{
  const char *parts[4];
  size_t k = 0, len = 0;

  for (; n && n->kind != N_ROOT && k < 4; n = n->parent) {
    parts[k++] = n->name;
    len += strlen(n->name) + 1;
  }
  char *s = malloc(len + 1), *p = s;
  if (!s)
    return NULL;
  *s = '\0';
  while (k-- > 0)
    p += sprintf(p, "%s%s", p == s ? "" : "/", parts[k]);
  return s;
}

/* ---- holders ---- */

struct holder *
holders_add(struct mnt *m, const struct node *n, pid_t tid)
{
  struct holders *hs = m->holders;
  struct holder *h = calloc(1, sizeof *h);
  if (!h || !(h->path = node_path(n))) {
    free(h);
    return NULL;
  }
  long tgid = tid > 0 ? proc_status_field(tid, "Tgid") : -1;
  h->pid = tgid > 0 ? (pid_t)tgid : tid;
  h->ours = h->pid > 0 && is_ours(hs, h->pid);
  if (h->pid > 0)
    proc_comm(h->pid, h->comm, sizeof h->comm);
  else
    snprintf(h->comm, sizeof h->comm, "?");   /* outside our pid namespace */

  pthread_mutex_lock(&hs->lock);
  h->next = hs->head;
  if (hs->head)
    hs->head->prev = h;
  hs->head = h;
  if (!h->ours)
    hs->others++;
  pthread_mutex_unlock(&hs->lock);
  return h;
}

void
holders_remove(struct mnt *m, struct holder *h)
{
  struct holders *hs = m->holders;

  if (!h)
    return;
  pthread_mutex_lock(&hs->lock);
  *(h->prev ? &h->prev->next : &hs->head) = h->next;
  if (h->next)
    h->next->prev = h->prev;
  bool notify = false;
  if (!h->ours)
    notify = --hs->others == 0 && hs->stop_sig;
  pthread_mutex_unlock(&hs->lock);
  if (notify) {
    unsigned char c = SIG_RELEASED;
    if (write(hs->pipe[1], &c, 1) < 0)
      bfs_log(BFS_LOG_ERROR, "signal pipe: %m");
  }
  free(h->path);
  free(h);
}

/* "web01/.../vda.img by 1234 (qemu-system-x86), ..." of others (hs->lock) */
static void
others_text(const struct holders *hs, char *buf, size_t size)
{
  size_t len = 0;
  buf[0] = '\0';
  for (struct holder *h = hs->head; h && len < size; h = h->next) {
    if (h->ours)
      continue;
    int w = snprintf(buf + len, size - len, "%s%s by %d (%s)",
                     len ? ", " : "", h->path, (int)h->pid, h->comm);
    len += w > 0 ? (size_t)w : 0;
  }
}

/* ---- signals ---- */

static void
on_signal(int sig)
{
  int saved = errno;
  unsigned char c = (unsigned char)sig;
  if (write(signal_pipe, &c, 1) < 0) {
    /* the pipe is full: signals are already pending */
  }
  errno = saved;
}

static void
on_wake(int sig)
{
  /* only interrupts the loop's sem_wait()/read() */
}

static void
end_session(struct mnt *m)
{
  struct holders *hs = m->holders;

  if (atomic_exchange(&hs->ending, true))
    return;
  fuse_session_exit(m->se);
  pthread_kill(hs->loop_thread, SIGUSR2);
}

static void
on_stop(struct mnt *m, int sig)
{
  struct holders *hs = m->holders;
  char list[2048];
  const char *name = sigabbrev_np(sig);

  pthread_mutex_lock(&hs->lock);
  unsigned others = hs->others, asks = 0;
  if (sig != SIG_RELEASED && sig != SIGUSR1) {
    hs->stop_sig = sig;
    asks = others ? ++hs->stop_asks : 0;
  }
  others_text(hs, list, sizeof list);
  pthread_mutex_unlock(&hs->lock);

  if (sig == SIGUSR1) {
    if (others)
      bfs_log(BFS_LOG_WARN, "SIGUSR1: forced unmount of %s although disks "
              "are held: %s; their readers will get I/O errors",
              m->mountpoint, list);
    end_session(m);
  }
  else if (sig == SIG_RELEASED) {
    if (others == 0) {
      bfs_log(BFS_LOG_WARN, "%s: the last disk held by another process was "
              "closed; unmounting as asked", m->mountpoint);
      end_session(m);
    }
  }
  else if (others == 0)
    end_session(m);
  else
    bfs_log(BFS_LOG_WARN, "SIG%s: not unmounting %s: disks are held by "
            "other processes: %s; the daemon keeps serving them and exits "
            "when they are closed (force: backupfs umount --force %s, or "
            "SIGKILL; running VMs on those disks would then fail; stop "
            "request %u)", name ? name : "?", m->mountpoint, list,
            m->mountpoint, asks);
}

static void *
signal_thread(void *arg)
{
  struct mnt *m = arg;
  struct holders *hs = m->holders;

  while (!atomic_load(&hs->loop_done)) {
    struct pollfd p = { .fd = hs->pipe[0], .events = POLLIN };
    bool ending = atomic_load(&hs->ending);
    int r = poll(&p, 1, ending ? WAKE_MS : -1);
    if (atomic_load(&hs->loop_done))
      break;
    if (ending)
      pthread_kill(hs->loop_thread, SIGUSR2);   /* until the loop returns */
    if (r <= 0)
      continue;
    unsigned char buf[64];
    ssize_t n = read(hs->pipe[0], buf, sizeof buf);
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] != SIG_QUIT)
        on_stop(m, buf[i]);
  }
  return NULL;
}

int
holders_signals_install(struct mnt *m)
{
  static const int stops[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
  struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
  struct holders *hs = m->holders;

  if (pipe2(hs->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
    return bfs_error(-errno, "signal pipe: %m");
  signal_pipe = hs->pipe[1];
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
    if (sigaction(stops[i], &sa, NULL) < 0)
      return bfs_error(-errno, "sigaction: %m");
  sa.sa_handler = on_wake;
  sa.sa_flags = 0;                  /* interrupt, do not restart */
  if (sigaction(SIGUSR2, &sa, NULL) < 0)
    return bfs_error(-errno, "sigaction: %m");
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
  return 0;
}

int
holders_signals_start(struct mnt *m)
{
  struct holders *hs = m->holders;
  sigset_t all, old;

  hs->self = getpid();              /* after fuse_daemonize's fork */
  hs->loop_thread = pthread_self();
  sigfillset(&all);                 /* the handlers run in other threads */
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int r = pthread_create(&hs->thread, NULL, signal_thread, m);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r)
    return bfs_error(-r, "signal thread: %s", strerror(r));
  hs->started = true;
  return 0;
}

/* default handlers again (SIGUSR2 ignored: a late wakeup is harmless) */
static void
signals_restore(void)
{
  static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };

  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    signal(sigs[i], SIG_DFL);
  signal(SIGUSR2, SIG_IGN);
}

void
holders_signals_stop(struct mnt *m)
{
  struct holders *hs = m->holders;
  unsigned char c = SIG_QUIT;

  atomic_store(&hs->loop_done, true);
  if (hs->started) {
    if (write(hs->pipe[1], &c, 1) < 0)
      bfs_log(BFS_LOG_ERROR, "signal pipe: %m");
    pthread_join(hs->thread, NULL);
    hs->started = false;
  }
  signals_restore();
}

void
holders_free(struct mnt *m)
{
  struct holders *hs = m->holders;

  if (!hs)
    return;
  if (hs->pipe[0] >= 0) {           /* no handler writes to it any more */
    signals_restore();
    signal_pipe = -1;
    close(hs->pipe[0]);
    close(hs->pipe[1]);
  }
  pthread_mutex_destroy(&hs->lock);   /* no handle is left (ops.c) */
  free(hs);
  m->holders = NULL;
}

/* ---- the status file ---- */

static struct json_object *
find_by(struct json_object *arr, const char *key, const char *s, int64_t v,
        bool ours)
{
  for (size_t i = 0; i < json_object_array_length(arr); i++) {
    struct json_object *o = json_object_array_get_idx(arr, i), *k;
    if (!json_object_object_get_ex(o, key, &k))
      continue;
    if (s ? !strcmp(json_object_get_string(k), s)
          : json_object_get_int64(k) == v &&
            json_object_get_boolean(json_object_object_get(o,
                                                           "daemon_child")) == ours)
      return o;
  }
  return NULL;
}

static void
add_count(struct json_object *o, const char *key)
{
  struct json_object *c = json_object_object_get(o, key);
  json_object_object_add(o, key,
                         json_object_new_int64(json_object_get_int64(c) + 1));
}

/* the disks and their holders (hs->lock held) */
static struct json_object *
json_disks(const struct holders *hs)
{
  struct json_object *disks = json_object_new_array();
  for (struct holder *h = hs->head; h; h = h->next) {
    struct json_object *d = find_by(disks, "path", h->path, 0, false);
    if (!d) {
      d = json_object_new_object();
      json_object_object_add(d, "path", json_object_new_string(h->path));
      json_object_object_add(d, "handles", json_object_new_int64(0));
      json_object_object_add(d, "held_by_others", json_object_new_int64(0));
      json_object_object_add(d, "holders", json_object_new_array());
      json_object_array_add(disks, d);
    }
    add_count(d, "handles");
    if (!h->ours)
      add_count(d, "held_by_others");
    struct json_object *list = json_object_object_get(d, "holders");
    struct json_object *o = find_by(list, "pid", NULL, h->pid, h->ours);
    if (!o) {
      o = json_object_new_object();
      json_object_object_add(o, "pid", json_object_new_int64(h->pid));
      bfs_json_add_str(o, "command", h->comm);
      json_object_object_add(o, "daemon_child",
                             json_object_new_boolean(h->ours));
      json_object_object_add(o, "handles", json_object_new_int64(0));
      json_object_array_add(list, o);
    }
    add_count(o, "handles");
  }
  return disks;
}

static char *
status_json(struct mnt *m, size_t *len)
{
  struct holders *hs = m->holders;
  struct json_object *o = json_object_new_object();
  time_t last = 0;
  bool scanning = pthread_mutex_trylock(&m->scan_lock) != 0;

  if (!scanning) {
    last = m->last_scan;
    pthread_mutex_unlock(&m->scan_lock);
  }
  json_object_object_add(o, "pid", json_object_new_int64(getpid()));
  bfs_json_add_str(o, "mountpoint", m->mountpoint);
  bfs_json_add_str(o, "repository", m->repo);
  bfs_json_add_str(o, "catalog", m->cat ? catalog_path(m->cat) : NULL);
  json_object_object_add(o, "writable", json_object_new_boolean(m->writable));
  json_object_object_add(o, "started", bfs_json_time(m->start));
  json_object_object_add(o, "last_rescan", bfs_json_time(last));
  json_object_object_add(o, "rescan_running",
                         json_object_new_boolean(scanning));
  /* starting/running/failed appliances (guest/guest-status.c); their disk
   * handles show below as daemon_child holders */
#if HAVE_GUESTFS
  json_object_object_add(o, "appliances", m->guests ?
                         guest_pool_status(m->guests) :
                         json_object_new_array());
#else
  json_object_object_add(o, "appliances", json_object_new_array());
#endif

  pthread_mutex_lock(&hs->lock);
  const char *sig = hs->stop_sig ? sigabbrev_np(hs->stop_sig) : NULL;
  char signame[16];
  snprintf(signame, sizeof signame, "SIG%s", sig ? sig : "?");
  json_object_object_add(o, "stopping", json_object_new_boolean(hs->stop_sig));
  json_object_object_add(o, "stop_signal", hs->stop_sig ?
                         json_object_new_string(signame) : NULL);
  json_object_object_add(o, "held_by_others", json_object_new_int64(hs->others));
  unsigned ours = 0;
  for (struct holder *h = hs->head; h; h = h->next)
    ours += h->ours;
  json_object_object_add(o, "appliance_handles", json_object_new_int64(ours));
  json_object_object_add(o, "disks", json_disks(hs));
  pthread_mutex_unlock(&hs->lock);

  const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
  char *copy = s ? strdup(s) : NULL;
  json_object_put(o);
  if (copy) {
    *len = strlen(copy);
    copy[(*len)++] = '\n';          /* replaces the '\0': not a C string */
  }
  return copy;
}

struct blob *
holders_status_blob(struct mnt *m)
{
  size_t len;
  CLEANUP_FREE char *s = status_json(m, &len);
  return s ? blob_new(s, len) : NULL;
}

bool
holders_status_attr(struct mnt *m, fuse_ino_t ino, struct stat *st)
{
  size_t len = 0;
  if (ino != HOLDERS_STATUS_INO)
    return false;
  free(status_json(m, &len));
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_mode = S_IFREG | 0444;
  st->st_nlink = 1;
  st->st_uid = m->uid;
  st->st_gid = m->gid;
  st->st_size = len;
  st->st_blksize = 4096;
  st->st_mtime = st->st_ctime = st->st_atime = time(NULL);
  return true;
}

bool
holders_status_entry(struct mnt *m, fuse_ino_t parent, const char *name,
                     struct fuse_entry_param *e)
{
  if (parent != FUSE_ROOT_ID || strcmp(name, HOLDERS_STATUS_NAME))
    return false;
  memset(e, 0, sizeof *e);
  e->ino = HOLDERS_STATUS_INO;
  return holders_status_attr(m, e->ino, &e->attr);   /* timeouts 0: fresh */
}
