/* pathchain.c — resolving an image path's backing chain into a recipe (see
 * pathchain.h).  Only `backupfs image` uses this; the mount, restore and
 * the catalog get their recipes from the scan.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk/pathchain.h"
#include "blk/qcow2.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/ioutil.h"

static int
dup_io(struct blk_path_chain *pc, size_t i, struct blk_io **out)
{
  int fd = fcntl(pc->fds[i], F_DUPFD_CLOEXEC, 0);

  *out = NULL;
  if (fd < 0)
    return bfs_error(-errno, "%s: dup: %s", pc->paths[i], strerror(errno));
  return blk_io_fd(fd, pc->paths[i], out);
}

int
blk_path_opener(void *opaque, const struct blk_layer *layer,
                      struct blk_io **out)
{
  struct blk_path_chain *pc = opaque;
  size_t i = (size_t)(layer - pc->layers);

  if (layer < pc->layers || i >= pc->n)
    return bfs_error(-EINVAL, "%s: not a layer of this chain",
                     layer->locator);
  return dup_io(pc, i, out);
}

int
blk_path_chain_inspect(struct blk_path_chain *pc, size_t i,
                       struct bfs_blk **out)
{
  struct blk_io *io;
  int r;

  *out = NULL;
  if (i >= pc->n)
    return bfs_error(-EINVAL, "no layer %zu", i);
  if ((r = dup_io(pc, i, &io)) < 0)
    return r;
  return blk_driver(pc->layers[i].driver)(io, NULL, NULL, out);
}

/* The top's format: qcow2 by its magic, else raw. */
static const char *
probe(int fd)
{
  unsigned char m[4];
  uint32_t v;

  if (bfs_pread_all(fd, m, 4, 0) < 0)
    return "raw";
  memcpy(&v, m, 4);
  return be32toh(v) == QCOW2_MAGIC ? "qcow2" : "raw";
}

static bool
inside(const char *root, const char *path)
{
  size_t n = strlen(root);
  if (n == 1 && root[0] == '/')
    return true;
  return !strncmp(root, path, n) && (path[n] == '/' || path[n] == '\0');
}

/* Where the open file fd really is (its path through /proc). */
static char *
fd_path(int fd)
{
  char link[64], buf[PATH_MAX];
  ssize_t n;

  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  if ((n = readlink(link, buf, sizeof buf - 1)) < 0)
    return NULL;
  buf[n] = '\0';
  return strdup(buf);
}

/* Open path as layer pc->n (checking identity against the layers so far). */
static int
add_layer(struct blk_path_chain *pc, const char *path, const char *driver,
          bool confine)
{
  const size_t i = pc->n;
  CLEANUP_FREE char *real = NULL;
  struct stat st;
  int fd;

  if (i >= BLK_MAX_DEPTH)
    return bfs_error(-ELOOP, "%s: backing chain deeper than %d layers",
                     pc->paths[0], BLK_MAX_DEPTH);
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
  if (fd < 0 && errno == EPERM)
    fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return bfs_error(-errno, "%s: %s", path, strerror(errno));
  /* confine what was opened, not what the name pointed to a moment ago */
  if (confine && (!(real = fd_path(fd)) || !inside(pc->root, real))) {
    int e = real ? -EPERM : -errno;
    close(fd);
    if (!real)
      return bfs_error(e, "%s: cannot tell where it is: %s", path,
                       strerror(-e));
    return bfs_error(-EPERM, "%s: backing file lies outside %s (the image's "
                     "directory tree): refused (--root DIR or "
                     "--allow-outside to read it)", path, pc->root);
  }
  if (fstat(fd, &st) < 0) {
    close(fd);
    return bfs_error(-errno, "%s: stat: %s", path, strerror(errno));
  }
  for (size_t j = 0; j < i; j++) {
    struct stat o;
    if (fstat(pc->fds[j], &o) == 0 && o.st_dev == st.st_dev &&
        o.st_ino == st.st_ino) {
      close(fd);
      return bfs_error(-ELOOP, "%s: backing file loop: '%s' is already in "
                       "the chain", pc->paths[i - 1], path);
    }
  }
  if (!(pc->paths[i] = strdup(path))) {
    close(fd);
    return bfs_error(-ENOMEM, "out of memory");
  }
  pc->fds[i] = fd;
  pc->layers[i] = (struct blk_layer){
    .driver = driver ? driver : probe(fd), .locator = pc->paths[i],
  };
  pc->n++;
  return 0;
}

static int
backing_path(const char *overlay, const char *name, char **out)
{
  CLEANUP_FREE char *dir = strdup(overlay);

  *out = NULL;
  if (!dir)
    return bfs_error(-ENOMEM, "out of memory");
  if (name[0] == '/' || !strchr(overlay, '/'))
    *out = strdup(name);
  else if (asprintf(out, "%s/%s", dirname(dir), name) < 0)
    *out = NULL;
  return *out ? 0 : bfs_error(-ENOMEM, "out of memory");
}

static int
default_root(const char *top, char **out)
{
  CLEANUP_FREE char *real = realpath(top, NULL);
  char *d;

  if (!real)
    return bfs_error(-errno, "%s: %s", top, strerror(errno));
  d = dirname(real);                 /* the image's directory */
  d = dirname(d);                    /* and the one above it */
  return (*out = strdup(d)) ? 0 : bfs_error(-ENOMEM, "out of memory");
}

int
blk_path_chain_resolve(const char *top, const char *root, bool allow_outside,
                       struct blk_path_chain *pc)
{
  int r;

  memset(pc, 0, sizeof *pc);
  if (root && !(pc->root = realpath(root, NULL)))
    return bfs_error(-errno, "%s: %s", root, strerror(errno));
  if (!root && !allow_outside && (r = default_root(top, &pc->root)) < 0)
    return r;
  if ((r = add_layer(pc, top, NULL, false)) < 0)
    return r;
  for (;;) {
    const size_t i = pc->n - 1;
    const struct bfs_blk_info *in;
    struct bfs_blk *b;
    CLEANUP_FREE char *path = NULL;
    const char *fmt;

    if (strcmp(pc->layers[i].driver, "qcow2"))
      return 0;                      /* raw: the bottom */
    if ((r = blk_path_chain_inspect(pc, i, &b)) < 0)
      return r;
    in = bfs_blk_info(b);
    if (!in->backing_file) {
      bfs_blk_close(b);
      return 0;
    }
    fmt = in->backing_format;
    if (fmt && !blk_driver(fmt))
      r = bfs_error(-ENOTSUP, "%s: backing file '%s' has format '%s', which "
                    "is not supported", pc->paths[i], in->backing_file, fmt);
    else if ((r = backing_path(pc->paths[i], in->backing_file, &path)) == 0) {
      r = add_layer(pc, path, fmt ? blk_driver_name(fmt) : NULL,
                    !allow_outside);
      if (r < 0 && r != -ELOOP)
        bfs_error_prefix(r, "%s: backing file '%s': ", pc->paths[i],
                         in->backing_file);
    }
    bfs_blk_close(b);
    if (r < 0)
      return r;
  }
}

void
blk_path_chain_free(struct blk_path_chain *pc)
{
  for (size_t i = 0; i < pc->n; i++) {
    close(pc->fds[i]);
    free(pc->paths[i]);
  }
  free(pc->root);
  pc->n = 0;
  pc->root = NULL;
}
