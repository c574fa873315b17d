/* file-repo.c — `restore file --repo REPO VM@TIME PATH DEST`: guest files
 * without a mount of one's own.
 *
 * Guest files are read by a libguestfs appliance over the mount's own
 * disks/<disk>.img (guest/guest.h: one path for every backup format), so
 * the copy-out makes a private, read-only mount of REPO on a fresh 0700
 * directory (this same binary's `mount`, with --catalog passed on), copies
 * from MP/VM/TIME/files/PATH with the ordinary restore file walk, and
 * unmounts it with `backupfs umount` (which also ends the appliance) and
 * removes the directory — also when the copy fails.  SIGINT, SIGTERM and
 * SIGHUP during the copy interrupt the waits on the mount (FUSE interrupts:
 * the copy fails with EINTR) so the mount is still cleaned up; the signal
 * is then raised again.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "restore/restore-int.h"

static volatile sig_atomic_t caught;   /* the signal to raise after cleanup */

static void
on_signal(int sig)
{
  caught = sig;
}

static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };

static void
catch_signals(struct sigaction old[3])
{
  struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART */
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 3; i++)
    sigaction(sigs[i], &sa, &old[i]);
}

bool
restore_repo_interrupted(void)
{
  return caught != 0;
}

int
restore_repo_mount(struct repo_mount *m, const char *repo, const char *catalog,
                   const char *vmtime, const char *path)
{
  CLEANUP_FREE char *vm = NULL, *time = NULL;
  char self[PATH_MAX], opt[PATH_MAX + 16];
  struct stat st;
  const char *base = getenv("XDG_RUNTIME_DIR");
  int r;

  memset(m, 0, sizeof *m);
  if ((r = catalog_parse_vmtime(vmtime, &vm, &time)) < 0)
    return r;
  if (!path[0])
    return bfs_error(-EINVAL, "PATH: want a guest path such as /etc/hostname");
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0)
    return bfs_error(-errno, "/proc/self/exe: %m");
  self[n] = '\0';
  if (!base || access(base, W_OK) < 0)
    base = getenv("TMPDIR");
  if (!base || access(base, W_OK) < 0)
    base = "/tmp";
  if (asprintf(&m->dir, "%s/backupfs-restore.XXXXXX", base) < 0) {
    m->dir = NULL;
    return bfs_error(-ENOMEM, "out of memory");
  }
  if (!mkdtemp(m->dir)) {
    r = bfs_error(-errno, "%s: %m", m->dir);
    free(m->dir);
    m->dir = NULL;
    return r;
  }
  catch_signals(m->old);
  m->caught_set = true;
  snprintf(opt, sizeof opt, "catalog=%s", catalog ? catalog : "");
  char *argv[] = { self, "mount", "-o", opt, (char *)repo, m->dir, NULL };
  if (!catalog) {
    argv[2] = (char *)repo;
    argv[3] = m->dir;
    argv[4] = NULL;
  }
  if ((r = restore_run(argv, true)) < 0) {
    bfs_error_prefix(r, "%s: private mount: ", repo);
    rmdir(m->dir);
    free(m->dir);
    m->dir = NULL;
    return r;
  }
  m->mounted = true;
  if (asprintf(&m->src, "%s/%s/%s", m->dir, vm, time) < 0) {
    m->src = NULL;
    return bfs_error(-ENOMEM, "out of memory");
  }
  if (stat(m->src, &st) < 0)
    return bfs_error(-ENOENT, "%s@%s: no such point in time in %s (see: "
                     "backupfs list %s %s)", vm, time, repo, repo, vm);
  free(m->src);
  if (asprintf(&m->src, "%s/%s/%s/files%s%s", m->dir, vm, time,
               path[0] == '/' ? "" : "/", path) < 0) {
    m->src = NULL;
    return bfs_error(-ENOMEM, "out of memory");
  }
  m->prefix = strlen(m->dir) + 1;        /* messages: VM/TIME/files/... */
  return 0;
}

void
restore_repo_umount(struct repo_mount *m)
{
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

  if (m->mounted && n > 0) {
    self[n] = '\0';
    char *argv[] = { self, "umount", "--timeout", "30", m->dir, NULL };
    if (restore_run(argv, true) < 0)
      fprintf(stderr, "backupfs: restore file: %s: %s\n", m->dir,
              bfs_last_error());
  }
  if (m->dir && rmdir(m->dir) < 0)
    fprintf(stderr, "backupfs: restore file: private mount %s left behind: "
            "%s\n", m->dir, strerror(errno));
  if (m->caught_set)
    for (int i = 0; i < 3; i++)
      sigaction(sigs[i], &m->old[i], NULL);
  free(m->dir);
  free(m->src);
  memset(m, 0, sizeof *m);
  if (caught)
    raise(caught);
}
