/* status-cmd.c — `backupfs status [--json] MNT` and
 * `backupfs umount [--force] [--timeout S] MNT`.
 *
 * Both read MNT/.backupfs-status, the JSON snapshot the mount's daemon
 * serves (fs/holders.c: why a file and not a socket).  umount refuses while
 * disks are held by processes other than the daemon and its appliances and
 * names them; otherwise it runs `fusermount3 -u` (or, when only the daemon's
 * own appliances hold disks, which the kernel would call busy, sends the
 * daemon SIGTERM) and waits for the daemon to exit.  --force sends the
 * daemon SIGUSR1 (it drops the mount even though disks are held), detaches
 * the mount lazily, and says that running VMs on those disks will fail.  A stale mount (daemon gone) has no status: both
 * say so, and umount cleans it up lazily.
 */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/opts.h"
#include "fs/holders.h"

#define STATUS_MAX (16 << 20)
#define DEFAULT_TIMEOUT 60
#define BFS_STR_(x) #x
#define BFS_STR(x) BFS_STR_(x)

static int
read_status(const char *mp, struct json_object **out)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", mp, HOLDERS_STATUS_NAME);
  CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOTCONN)
    return bfs_error(-ENOTCONN, "%s: stale FUSE mount (its daemon died); "
                     "clean it up with: backupfs umount --force %s", mp, mp);
  if (fd < 0 && errno == ENOENT)
    return bfs_error(-ENOENT, "%s: not a backupfs mount (no %s)", mp,
                     HOLDERS_STATUS_NAME);
  if (fd < 0)
    return bfs_error(-errno, "%s: %m", path);
  CLEANUP_FREE char *buf = malloc(STATUS_MAX);
  size_t len = 0;
  ssize_t n;
  if (!buf)
    return bfs_error(-ENOMEM, "%s: out of memory", path);
  while (len < STATUS_MAX - 1 &&
         (n = read(fd, buf + len, STATUS_MAX - 1 - len)) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return bfs_error(-errno, "%s: %m", path);
    len += n;
  }
  buf[len] = '\0';
  *out = json_tokener_parse(buf);
  if (!*out || !json_object_is_type(*out, json_type_object))
    return bfs_error(-EIO, "%s: not a status object", path);
  return 0;
}

static int64_t
jint(struct json_object *o, const char *key)
{
  struct json_object *v;
  return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static const char *
jstr(struct json_object *o, const char *key, const char *dflt)
{
  struct json_object *v;
  return json_object_object_get_ex(o, key, &v) && v ?
         json_object_get_string(v) : dflt;
}

static struct json_object *
jarr(struct json_object *o, const char *key)
{
  struct json_object *v;
  return json_object_object_get_ex(o, key, &v) &&
         json_object_is_type(v, json_type_array) ? v : NULL;
}

/* one line per disk: "  PATH: held by PID (COMMAND) [, ...]" */
static void
print_disks(FILE *f, struct json_object *st, bool others_only)
{
  struct json_object *disks = jarr(st, "disks");
  for (size_t i = 0; disks && i < json_object_array_length(disks); i++) {
    struct json_object *d = json_object_array_get_idx(disks, i);
    struct json_object *hs = jarr(d, "holders");
    if (others_only && !jint(d, "held_by_others"))
      continue;
    fprintf(f, "  %s:", jstr(d, "path", "?"));
    const char *sep = " ";
    for (size_t k = 0; hs && k < json_object_array_length(hs); k++) {
      struct json_object *h = json_object_array_get_idx(hs, k), *own;
      bool child = json_object_object_get_ex(h, "daemon_child", &own) &&
                   json_object_get_boolean(own);
      if (others_only && child)
        continue;
      int64_t n = jint(h, "handles");
      fprintf(f, "%s%s %lld (%s)", sep, child ? "appliance" : "held by",
              (long long)jint(h, "pid"), jstr(h, "command", "?"));
      if (n > 1)
        fprintf(f, " x%lld", (long long)n);
      sep = ", ";
    }
    fputc('\n', f);
  }
}

/* "appliances: N (1 starting, ...)" and one line per appliance */
static void
print_appliances(FILE *f, struct json_object *st)
{
  struct json_object *as = jarr(st, "appliances");
  size_t n = as ? json_object_array_length(as) : 0;
  unsigned starting = 0, running = 0, failed = 0;

  for (size_t i = 0; i < n; i++) {
    const char *s = jstr(json_object_array_get_idx(as, i), "state", "");
    starting += !strcmp(s, "starting");
    running += !strcmp(s, "running");
    failed += !strcmp(s, "failed");
  }
  fprintf(f, "appliances: %u starting, %u running, %u failed; their disk "
          "handles: %lld\n", starting, running, failed,
          (long long)jint(st, "appliance_handles"));
  for (size_t i = 0; i < n; i++) {
    struct json_object *a = json_object_array_get_idx(as, i);
    const char *s = jstr(a, "state", "?");
    fprintf(f, "  %s: %s", jstr(a, "key", "?"), s);
    if (!strcmp(s, "starting"))
      fprintf(f, " since %s, waiting for %s (gives up at %s)",
              jstr(a, "since", "?"), jstr(a, "waiting_for", "?"),
              jstr(a, "gives_up_at", "?"));
    else if (!strcmp(s, "running")) {
      fprintf(f, " since %s", jstr(a, "since", "?"));
      if (jint(a, "qemu_pid"))
        fprintf(f, ", qemu %lld", (long long)jint(a, "qemu_pid"));
      if (strcmp(jstr(a, "call", ""), ""))
        fprintf(f, ", in %s for %lld s", jstr(a, "call", "?"),
                (long long)jint(a, "call_seconds"));
      if (jint(a, "failed_mounts"))
        fprintf(f, ", %lld filesystem(s) did not mount",
                (long long)jint(a, "failed_mounts"));
    }
    else if (!strcmp(s, "failed"))
      fprintf(f, " at %s: %s; retries on the first access after %s",
              jstr(a, "failed_at", "?"), jstr(a, "error", "?"),
              jstr(a, "retry_at", "?"));
    fputc('\n', f);
  }
}

static const struct bfs_cmd status_cmd = {
  .name = "status", .usage = "status [--json] MOUNTPOINT",
  .about = "What the mount's daemon is doing: its PID, repository and catalog, the last\n"
    "rescan, libguestfs appliances starting, running or failed, open disks and\n"
    "who holds them (appliances are the daemon's own).",
  .shared = BFS_OPTS_JSON, .json_help = "the daemon's status document",
  .need = "MOUNTPOINT", .min_args = 1, .max_args = 1,
};

enum { OPT_FORCE = 256, OPT_TIMEOUT };

static const struct bfs_opt umount_opts[] = {
  { "force", OPT_FORCE, NULL, "drop the mount even so: the daemon exits, the\n"
    "mount is detached; running VMs on those disks\nget I/O errors" },
  { "timeout", OPT_TIMEOUT, "S", "wait S seconds for the daemon to exit\n"
    "(default " BFS_STR(DEFAULT_TIMEOUT) ")" },
  { 0 },
};

static const struct bfs_cmd umount_cmd = {
  .name = "umount", .usage = "umount [--force] [--timeout S] MOUNTPOINT",
  .about = "Unmount a backupfs mount and wait for its daemon to exit.  Refuses while\n"
    "other processes (a quick-restored VM) hold its disks, and names them.",
  .opts = umount_opts, .need = "MOUNTPOINT", .min_args = 1, .max_args = 1,
};

int
fs_status_cmd(int argc, char **argv)
{
  struct json_object *st = NULL;
  struct bfs_args g;
  int r;

  bfs_opts_init(&g, &status_cmd, argc, argv);
  while ((r = bfs_opts_next(&g)) > 0)
    ;                                  /* only the shared options */
  if (r < 0)
    return g.status;
  bool json = g.json;
  const char *mp = g.pos[0];
  r = read_status(mp, &st);
  if (r < 0) {
    fprintf(stderr, "backupfs: status: %s\n", bfs_last_error());
    return 1;
  }
  if (json)
    puts(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PRETTY |
                                        JSON_C_TO_STRING_NOSLASHESCAPE));
  else {
    printf("%s: daemon %lld, repository %s\n", jstr(st, "mountpoint", mp),
           (long long)jint(st, "pid"), jstr(st, "repository", "?"));
    printf("catalog: %s\n", jstr(st, "catalog", "?"));
    printf("mounted: %s, last rescan: %s%s\n", jstr(st, "started", "?"),
           jstr(st, "last_rescan", "none"),
           jint(st, "rescan_running") ? " (rescanning now)" : "");
    print_appliances(stdout, st);
    struct json_object *disks = jarr(st, "disks");
    size_t nd = disks ? json_object_array_length(disks) : 0;
    printf("open disks: %zu, held by other processes: %lld handle(s)\n", nd,
           (long long)jint(st, "held_by_others"));
    print_disks(stdout, st, false);
    if (strcmp(jstr(st, "stop_signal", ""), ""))
      printf("stopping: %s received; exits when the disks held by others "
             "are closed\n", jstr(st, "stop_signal", "?"));
  }
  json_object_put(st);
  return 0;
}

/* fusermount3 ARGS... MP: its exit status, or -errno */
static int
fusermount(const char *opt, const char *mp)
{
  pid_t pid = fork();
  if (pid < 0)
    return bfs_error(-errno, "fork: %m");
  if (pid == 0) {
    execlp("fusermount3", "fusermount3", opt, "--", mp, (char *)NULL);
    fprintf(stderr, "backupfs: fusermount3: %m\n");
    _exit(127);
  }
  int ws;
  while (waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR)
      return bfs_error(-errno, "waitpid: %m");
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
}

static bool
alive(pid_t pid)
{
  char path[64], line[512];
  if (kill(pid, 0) < 0 && errno == ESRCH)
    return false;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  CLEANUP_FCLOSE FILE *f = fopen(path, "re");
  if (!f || !fgets(line, sizeof line, f))
    return false;
  const char *p = strrchr(line, ')');
  return !(p && p[1] == ' ' && p[2] == 'Z');    /* a zombie has exited */
}

static int
wait_exit(pid_t pid, long timeout)
{
  struct timespec ts = { 0, 100 * 1000 * 1000 };
  for (long i = 0; i < timeout * 10; i++) {
    if (!alive(pid))
      return 0;
    nanosleep(&ts, NULL);
  }
  return alive(pid) ? -ETIMEDOUT : 0;
}

/* umount without --force: refused while others hold disks, else unmounted
 * (or the daemon asked to, when only its appliances hold disks): 0 or 1 */
static int
umount_asked(const char *mp, struct json_object *st, pid_t pid)
{
  if (jint(st, "held_by_others") > 0) {
    fprintf(stderr, "backupfs: umount: %s: not unmounting: disks are held "
            "by other processes (a running VM on a quick restore?):\n", mp);
    print_disks(stderr, st, true);
    fprintf(stderr, "Stop them first, or force it with backupfs umount "
            "--force %s (they will get I/O errors)\n", mp);
    return 1;
  }
  if (jint(st, "appliance_handles") > 0) {
    /* the kernel would answer busy: the daemon closes its appliances */
    if (pid > 0 && kill(pid, SIGTERM) < 0) {
      fprintf(stderr, "backupfs: umount: daemon %d: %s\n", (int)pid,
              strerror(errno));
      return 1;
    }
  }
  else if (fusermount("-u", mp) != 0) {
    fprintf(stderr, "backupfs: umount: %s: busy, but no disk is held by "
            "another process: a shell or program has its directory or a "
            "file there (see: fuser -vm %s)\n", mp, mp);
    return 1;
  }
  return 0;
}

/* umount --force: the daemon told to end (SIGUSR1) and the mount detached,
 * held disks or not: 0, or 1 when the daemon could not be signalled */
static int
umount_forced(const char *mp, struct json_object *st, pid_t pid)
{
  int rc = 0;

  if (jint(st, "held_by_others") > 0) {
    fprintf(stderr, "backupfs: umount: warning: %s: forcing although disks "
            "are held; running VMs on them will fail (I/O errors):\n", mp);
    print_disks(stderr, st, true);
  }
  if (pid > 0 && kill(pid, SIGUSR1) < 0) {
    fprintf(stderr, "backupfs: umount: daemon %d: %s\n", (int)pid,
            strerror(errno));
    rc = 1;
  }
  /* detach now; the daemon closes its end as it exits */
  if (fusermount("-uz", mp) != 0 && rc == 0)
    fprintf(stderr, "backupfs: umount: %s: fusermount3 -uz failed; the "
            "daemon unmounts it as it exits\n", mp);
  return rc;
}

int
fs_umount_cmd(int argc, char **argv)
{
  bool force = false;
  long timeout = DEFAULT_TIMEOUT;
  struct json_object *st = NULL;
  struct bfs_args g;
  char *end;
  int r;

  bfs_opts_init(&g, &umount_cmd, argc, argv);
  while ((r = bfs_opts_next(&g)) > 0)
    switch (r) {
    case OPT_FORCE: force = true; break;
    case OPT_TIMEOUT:
      timeout = strtol(g.optarg, &end, 10);
      if (*end || !*g.optarg || timeout < 0)
        return bfs_opts_bad(&g, "--timeout: want seconds, got '%s'", g.optarg);
      break;
    }
  if (r < 0)
    return g.status;
  const char *mp = g.pos[0];
  r = read_status(mp, &st);
  if (r == -ENOTCONN && force) {
    fprintf(stderr, "backupfs: umount: %s: its daemon is gone; detaching the "
            "stale mount\n", mp);
    return fusermount("-uz", mp) == 0 ? 0 : 1;
  }
  if (r < 0) {
    fprintf(stderr, "backupfs: umount: %s\n", bfs_last_error());
    return 1;
  }
  pid_t pid = (pid_t)jint(st, "pid");
  int rc = force ? umount_forced(mp, st, pid) : umount_asked(mp, st, pid);

  if ((rc == 0 || force) && pid > 0 && wait_exit(pid, timeout) < 0) {
    fprintf(stderr, "backupfs: umount: %s: unmounted, but daemon %d has not "
            "exited after %ld s\n", mp, (int)pid, timeout);
    rc = 1;
  }
  json_object_put(st);
  return rc;
}
