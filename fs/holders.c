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
 *    list under H.lock; H.others counts the handles of everyone else.
 *  - SIGTERM/SIGINT/SIGHUP/SIGUSR1 handlers only write the signal number to
 *    a pipe (async-signal-safe; handlers are reset by exec, so appliances
 *    and other children are not affected), and one thread acts on it.  With
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
 * Locks: H.lock (mutex) guards the list, the counters and the stop state.
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

static struct {
  pthread_mutex_t lock;
  struct holder *head;
  unsigned others;                  /* handles held by other processes */
  int stop_sig;                     /* a stop was asked for (0: no) */
  unsigned stop_asks;               /* stop signals refused so far */
  int pipe[2];
  pid_t self;
  struct fuse_session *se;
  pthread_t thread, loop_thread;
  bool started;
  atomic_bool ending, loop_done;
} H = { .lock = PTHREAD_MUTEX_INITIALIZER, .pipe = { -1, -1 } };

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
is_ours(pid_t pid)
{
  for (int i = 0; i < MAX_ANCESTRY && pid > 1; i++) {
    if (pid == H.self)
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
holders_add(const struct node *n, pid_t tid)
{
  struct holder *h = calloc(1, sizeof *h);
  if (!h || !(h->path = node_path(n))) {
    free(h);
    return NULL;
  }
  long tgid = tid > 0 ? proc_status_field(tid, "Tgid") : -1;
  h->pid = tgid > 0 ? (pid_t)tgid : tid;
  h->ours = h->pid > 0 && is_ours(h->pid);
  if (h->pid > 0)
    proc_comm(h->pid, h->comm, sizeof h->comm);
  else
    snprintf(h->comm, sizeof h->comm, "?");   /* outside our pid namespace */

  pthread_mutex_lock(&H.lock);
  h->next = H.head;
  if (H.head)
    H.head->prev = h;
  H.head = h;
  if (!h->ours)
    H.others++;
  pthread_mutex_unlock(&H.lock);
  return h;
}

void
holders_remove(struct holder *h)
{
  if (!h)
    return;
  pthread_mutex_lock(&H.lock);
  *(h->prev ? &h->prev->next : &H.head) = h->next;
  if (h->next)
    h->next->prev = h->prev;
  bool notify = false;
  if (!h->ours)
    notify = --H.others == 0 && H.stop_sig;
  pthread_mutex_unlock(&H.lock);
  if (notify) {
    unsigned char c = SIG_RELEASED;
    if (write(H.pipe[1], &c, 1) < 0)
      bfs_log(BFS_LOG_ERROR, "signal pipe: %m");
  }
  free(h->path);
  free(h);
}

/* "web01/.../vda.img by 1234 (qemu-system-x86), ..." of others (H.lock) */
static void
others_text(char *buf, size_t size)
{
  size_t len = 0;
  buf[0] = '\0';
  for (struct holder *h = H.head; h && len < size; h = h->next) {
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
  if (write(H.pipe[1], &c, 1) < 0) {
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
end_session(void)
{
  if (atomic_exchange(&H.ending, true))
    return;
  fuse_session_exit(H.se);
  pthread_kill(H.loop_thread, SIGUSR2);
}

static void
on_stop(int sig)
{
  char list[2048];
  const char *name = sigabbrev_np(sig);

  pthread_mutex_lock(&H.lock);
  unsigned others = H.others, asks = 0;
  if (sig != SIG_RELEASED && sig != SIGUSR1) {
    H.stop_sig = sig;
    asks = others ? ++H.stop_asks : 0;
  }
  others_text(list, sizeof list);
  pthread_mutex_unlock(&H.lock);

  if (sig == SIGUSR1) {
    if (others)
      bfs_log(BFS_LOG_WARN, "SIGUSR1: forced unmount of %s although disks "
              "are held: %s; their readers will get I/O errors",
              mnt.mountpoint, list);
    end_session();
  }
  else if (sig == SIG_RELEASED) {
    if (others == 0) {
      bfs_log(BFS_LOG_WARN, "%s: the last disk held by another process was "
              "closed; unmounting as asked", mnt.mountpoint);
      end_session();
    }
  }
  else if (others == 0)
    end_session();
  else
    bfs_log(BFS_LOG_WARN, "SIG%s: not unmounting %s: disks are held by "
            "other processes: %s; the daemon keeps serving them and exits "
            "when they are closed (force: backupfs umount --force %s, or "
            "SIGKILL; running VMs on those disks would then fail; stop "
            "request %u)", name ? name : "?", mnt.mountpoint, list,
            mnt.mountpoint, asks);
}

static void *
signal_thread(void *arg)
{
  while (!atomic_load(&H.loop_done)) {
    struct pollfd p = { .fd = H.pipe[0], .events = POLLIN };
    bool ending = atomic_load(&H.ending);
    int r = poll(&p, 1, ending ? WAKE_MS : -1);
    if (atomic_load(&H.loop_done))
      break;
    if (ending)
      pthread_kill(H.loop_thread, SIGUSR2);   /* until the loop returns */
    if (r <= 0)
      continue;
    unsigned char buf[64];
    ssize_t n = read(H.pipe[0], buf, sizeof buf);
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] != SIG_QUIT)
        on_stop(buf[i]);
  }
  return NULL;
}

int
holders_signals_install(void)
{
  static const int stops[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
  struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };

  if (pipe2(H.pipe, O_CLOEXEC | O_NONBLOCK) < 0)
    return bfs_error(-errno, "signal pipe: %m");
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
holders_signals_start(struct fuse_session *se)
{
  sigset_t all, old;

  H.self = getpid();                /* after fuse_daemonize's fork */
  H.se = se;
  H.loop_thread = pthread_self();
  sigfillset(&all);                 /* the handlers run in other threads */
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int r = pthread_create(&H.thread, NULL, signal_thread, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r)
    return bfs_error(-r, "signal thread: %s", strerror(r));
  H.started = true;
  return 0;
}

void
holders_signals_stop(void)
{
  static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
  unsigned char c = SIG_QUIT;

  atomic_store(&H.loop_done, true);
  if (H.started) {
    if (write(H.pipe[1], &c, 1) < 0)
      bfs_log(BFS_LOG_ERROR, "signal pipe: %m");
    pthread_join(H.thread, NULL);
    H.started = false;
  }
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    signal(sigs[i], SIG_DFL);
  signal(SIGUSR2, SIG_IGN);
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

/* the disks and their holders (H.lock held) */
static struct json_object *
json_disks(void)
{
  struct json_object *disks = json_object_new_array();
  for (struct holder *h = H.head; h; h = h->next) {
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
    struct json_object *hs = json_object_object_get(d, "holders");
    struct json_object *o = find_by(hs, "pid", NULL, h->pid, h->ours);
    if (!o) {
      o = json_object_new_object();
      json_object_object_add(o, "pid", json_object_new_int64(h->pid));
      bfs_json_add_str(o, "command", h->comm);
      json_object_object_add(o, "daemon_child",
                             json_object_new_boolean(h->ours));
      json_object_object_add(o, "handles", json_object_new_int64(0));
      json_object_array_add(hs, o);
    }
    add_count(o, "handles");
  }
  return disks;
}

static char *
status_json(size_t *len)
{
  struct json_object *o = json_object_new_object();
  time_t last = 0;
  bool scanning = pthread_mutex_trylock(&mnt.scan_lock) != 0;

  if (!scanning) {
    last = mnt.last_scan;
    pthread_mutex_unlock(&mnt.scan_lock);
  }
  json_object_object_add(o, "pid", json_object_new_int64(getpid()));
  bfs_json_add_str(o, "mountpoint", mnt.mountpoint);
  bfs_json_add_str(o, "repository", mnt.repo);
  bfs_json_add_str(o, "catalog", mnt.cat ? catalog_path(mnt.cat) : NULL);
  json_object_object_add(o, "writable", json_object_new_boolean(mnt.writable));
  json_object_object_add(o, "started", bfs_json_time(mnt.start));
  json_object_object_add(o, "last_rescan", bfs_json_time(last));
  json_object_object_add(o, "rescan_running",
                         json_object_new_boolean(scanning));
  /* starting/running/failed appliances (guest/guest-status.c); their disk
   * handles show below as daemon_child holders */
#if HAVE_GUESTFS
  json_object_object_add(o, "appliances", mnt.guests ?
                         guest_pool_status(mnt.guests) :
                         json_object_new_array());
#else
  json_object_object_add(o, "appliances", json_object_new_array());
#endif

  pthread_mutex_lock(&H.lock);
  const char *sig = H.stop_sig ? sigabbrev_np(H.stop_sig) : NULL;
  char signame[16];
  snprintf(signame, sizeof signame, "SIG%s", sig ? sig : "?");
  json_object_object_add(o, "stopping", json_object_new_boolean(H.stop_sig));
  json_object_object_add(o, "stop_signal", H.stop_sig ?
                         json_object_new_string(signame) : NULL);
  json_object_object_add(o, "held_by_others", json_object_new_int64(H.others));
  unsigned ours = 0;
  for (struct holder *h = H.head; h; h = h->next)
    ours += h->ours;
  json_object_object_add(o, "appliance_handles", json_object_new_int64(ours));
  json_object_object_add(o, "disks", json_disks());
  pthread_mutex_unlock(&H.lock);

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
holders_status_blob(void)
{
  size_t len;
  CLEANUP_FREE char *s = status_json(&len);
  return s ? blob_new(s, len) : NULL;
}

bool
holders_status_attr(fuse_ino_t ino, struct stat *st)
{
  size_t len = 0;
  if (ino != HOLDERS_STATUS_INO)
    return false;
  free(status_json(&len));
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_mode = S_IFREG | 0444;
  st->st_nlink = 1;
  st->st_uid = mnt.uid;
  st->st_gid = mnt.gid;
  st->st_size = len;
  st->st_blksize = 4096;
  st->st_mtime = st->st_ctime = st->st_atime = time(NULL);
  return true;
}

bool
holders_status_entry(fuse_ino_t parent, const char *name,
                     struct fuse_entry_param *e)
{
  if (parent != FUSE_ROOT_ID || strcmp(name, HOLDERS_STATUS_NAME))
    return false;
  memset(e, 0, sizeof *e);
  e->ino = HOLDERS_STATUS_INO;
  return holders_status_attr(e->ino, &e->attr);   /* timeouts 0: fresh */
}
