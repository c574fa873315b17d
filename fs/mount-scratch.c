/* mount-scratch.c — `-o writable`: where the scratch files live.
 *
 * Writes to disks/<disk>.img land in a sparse per-disk scratch file
 * SCRATCH/<vm>/<time>/<disk>.img outside the repository (the backup never
 * changes), through the block layer's copy-on-write filter (blk/cow.c:
 * whole blocks, so "allocated in the scratch file" means "written since
 * the backup"; a scratch file found again at the next mount is loaded from
 * its allocated ranges).  This file checks the scratch directory and
 * opens or creates a disk's scratch file; the FUSE ops only read and
 * write the disk's bfs_blk.
 */
#include "fs/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"

/* real (a resolved path) is the repository or lies inside it: by name, or
 * through another path to the same directory (a bind mount) */
static bool
inside_repo(const struct mnt *m, const char *real)
{
  CLEANUP_FREE char *p = strdup(real);
  struct stat rs, st;
  size_t rl = strlen(m->repo);

  if (!strncmp(real, m->repo, rl) && (real[rl] == '/' || real[rl] == '\0'))
    return true;
  if (!p || stat(m->repo, &rs) < 0)
    return true;                    /* cannot tell: refuse */
  for (;;) {
    if (stat(p[0] ? p : "/", &st) == 0 && st.st_dev == rs.st_dev &&
        st.st_ino == rs.st_ino)
      return true;
    char *slash = strrchr(p, '/');
    if (!slash || !p[0])
      return false;
    *slash = '\0';
  }
}

/* Resolve and check before creating anything: the directory's parent is
 * opened and checked, and the directory made beneath that descriptor, so
 * a symlink into the repository can never have us create a file there. */
int
scratch_init(struct mnt *m, const char *dir)
{
  CLEANUP_FREE char *c1 = strdup(dir), *c2 = strdup(dir), *preal = NULL;
  CLEANUP_CLOSE int pfd = -1;
  char fdpath[64];

  if (!c1 || !c2)
    return bfs_error(-ENOMEM, "out of memory");
  if ((m->scratch = realpath(dir, NULL))) {      /* it exists */
    if (inside_repo(m, m->scratch))
      return bfs_error(-EINVAL, "scratch %s: inside the repository %s; "
                       "backups are never written", m->scratch, m->repo);
  }
  else if (errno != ENOENT)
    return bfs_error(-errno, "scratch %s: %m", dir);
  else {
    const char *parent = dirname(c1), *base = basename(c2);
    pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0)
      return bfs_error(-errno, "scratch %s: %s: %m", dir, parent);
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", pfd);
    if (!(preal = realpath(fdpath, NULL)))
      return bfs_error(-errno, "scratch %s: %s: %m", dir, parent);
    if (inside_repo(m, preal))
      return bfs_error(-EINVAL, "scratch %s: inside the repository %s (in "
                       "%s); backups are never written: nothing created",
                       dir, m->repo, preal);
    if (!strcmp(base, ".") || !strcmp(base, "..") || !strcmp(base, "/"))
      return bfs_error(-EINVAL, "scratch %s: not a directory name", dir);
    if (mkdirat(pfd, base, 0700) < 0 && errno != EEXIST)
      return bfs_error(-errno, "scratch %s: %m", dir);
    m->scratch = realpath(dir, NULL);
    if (!m->scratch)
      return bfs_error(-errno, "scratch %s: %m", dir);
    if (inside_repo(m, m->scratch))       /* raced: a symlink put in place */
      return bfs_error(-EINVAL, "scratch %s: inside the repository %s; "
                       "backups are never written", m->scratch, m->repo);
  }
  struct stat st;
  if (stat(m->scratch, &st) < 0 || !S_ISDIR(st.st_mode))
    return bfs_error(-ENOTDIR, "scratch %s: not a directory", m->scratch);
  return 0;
}

static int
mkdirs(char *path)                  /* mkdir -p of path's directory */
{
  for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
    *p = '\0';
    int r = mkdir(path, 0700);
    *p = '/';
    if (r < 0 && errno != EEXIST)
      return -errno;
  }
  return 0;
}

int
scratch_open(struct disk *d, bool create)
{
  int fd = open(d->scratch_path, O_RDWR | O_CLOEXEC);

  if (fd < 0 && errno == ENOENT && create) {
    int r = mkdirs(d->scratch_path);
    fd = r < 0 ? -1 : open(d->scratch_path,
                           O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0 && ftruncate(fd, d->size) < 0) {
      close(fd);
      unlink(d->scratch_path);
      fd = -1;
    }
  }
  if (fd < 0 && (errno != ENOENT || create))
    bfs_log(BFS_LOG_WARN, "%s: %m", d->scratch_path);
  return fd < 0 ? -errno : fd;
}
