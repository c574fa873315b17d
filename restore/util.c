/* util.c — small helpers shared by the restore commands: zero detection and
 * sparse writes, backup.json of a mounted point in time (json-c), running
 * qemu-img / virsh, and VM@TIME names.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "restore/restore-int.h"

#define BLK 4096

bool
restore_is_zero(const void *buf, size_t len)
{
  const unsigned char *p = buf;

  /* check the first 16 bytes, then compare the buffer with itself shifted */
  for (size_t i = 0; i < len && i < 16; i++)
    if (p[i])
      return false;
  return len <= 16 || memcmp(p, p + 16, len - 16) == 0;
}

static int
pwrite_all(int fd, const char *name, const char *p, size_t len, uint64_t off)
{
  while (len) {
    ssize_t r = pwrite(fd, p, len, off);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return bfs_error(-errno, "%s: write: %s", name, strerror(errno));
    }
    p += r;
    off += r;
    len -= r;
  }
  return 0;
}

int
restore_write_sparse(int fd, const char *name, const void *buf, size_t len,
                     uint64_t off)
{
  const char *p = buf;
  size_t i = 0;

  while (i < len) {
    size_t n = len - i < BLK ? len - i : BLK;
    if (restore_is_zero(p + i, n)) {
      i += n;
      continue;
    }
    /* a run of non-zero blocks goes out in one write */
    size_t j = i + n;
    while (j < len) {
      size_t m = len - j < BLK ? len - j : BLK;
      if (restore_is_zero(p + j, m))
        break;
      j += m;
    }
    int r = pwrite_all(fd, name, p + i, j - i, off + i);
    if (r < 0)
      return r;
    i = j;
  }
  return 0;
}

int
restore_backup_json(const char *backup_dir, json_object **out)
{
  CLEANUP_FREE char *path = NULL;
  json_object *j;

  if (asprintf(&path, "%s/backup.json", backup_dir) < 0)
    return bfs_error(-ENOMEM, "out of memory");
  if (access(path, R_OK) < 0)
    return bfs_error(-errno, "%s: %s (is %s a point-in-time directory of a "
                     "backupfs mount?)", path, strerror(errno), backup_dir);
  j = json_object_from_file(path);
  if (!j) {
    const char *m = json_util_get_last_err();
    return bfs_error(-EINVAL, "%s: not valid JSON: %.*s", path,
                     m ? (int) strcspn(m, "\n") : 7, m ? m : "unknown");
  }
  if (!json_object_is_type(j, json_type_object)) {
    json_object_put(j);
    return bfs_error(-EINVAL, "%s: not a JSON object", path);
  }
  *out = j;
  return 0;
}

const char *
restore_json_str(json_object *o, const char *key)
{
  json_object *v;

  if (!o || !json_object_object_get_ex(o, key, &v) ||
      !json_object_is_type(v, json_type_string))
    return NULL;
  return json_object_get_string(v);
}

json_object *
restore_json_disk(json_object *bj, const char *backup_dir, const char *disk)
{
  json_object *disks;
  size_t n;

  if (!json_object_object_get_ex(bj, "disks", &disks) ||
      !json_object_is_type(disks, json_type_array)) {
    bfs_error(-EINVAL, "%s/backup.json: no disks[] array", backup_dir);
    return NULL;
  }
  char names[512] = "";
  size_t used = 0;
  n = json_object_array_length(disks);
  for (size_t i = 0; i < n; i++) {
    json_object *d = json_object_array_get_idx(disks, i);
    const char *name = restore_json_str(d, "name");
    if (name && !strcmp(name, disk))
      return d;
    if (name && used < sizeof names) {
      int w = snprintf(names + used, sizeof names - used, "%s%s",
                       used ? ", " : "", name);
      used += w > 0 ? (size_t)w : 0;
    }
  }
  bfs_error(-ENOENT, "%s: no disk named '%s' in this backup (its disks: %s)",
            backup_dir, disk, names[0] ? names : "none");
  return NULL;
}

int
restore_run(char *const argv[], bool quiet)
{
  pid_t pid;
  int status;

  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (pid < 0)
    return bfs_error(-errno, "fork: %s", strerror(errno));
  if (pid == 0) {
    if (quiet) {
      int fd = open("/dev/null", O_WRONLY);
      if (fd >= 0)
        dup2(fd, STDOUT_FILENO);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "backupfs: %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return bfs_error(-errno, "waitpid: %s", strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  if (WIFEXITED(status))
    return bfs_error(-EIO, "%s %s failed (exit status %d)", argv[0],
                     argv[1] ? argv[1] : "", WEXITSTATUS(status));
  return bfs_error(-EIO, "%s %s killed by signal %d", argv[0],
                   argv[1] ? argv[1] : "", WTERMSIG(status));
}

bool
restore_have_program(const char *prog)
{
  const char *path = getenv("PATH");
  CLEANUP_FREE char *copy = strdup(path ? path : "/usr/bin:/bin");
  char *save = NULL;

  if (!copy)
    return false;
  for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    CLEANUP_FREE char *p = NULL;
    if (asprintf(&p, "%s/%s", d, prog) >= 0 && access(p, X_OK) == 0)
      return true;
  }
  return false;
}
