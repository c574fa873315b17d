/* test-beneath.c — common/beneath.c on a scratch tree: both the openat2
 * path and the openat walk (the fallback for kernels without openat2)
 * refuse symlinks (final and intermediate), "..", absolute paths, FIFOs
 * (without hanging) and directories, open regular files, and the identity
 * check catches a file replaced after it was recorded. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/beneath.h"
#include "common/error.h"

static int fails;

#define CHECK(cond, ...) do { if (!(cond)) { fails++; \
  fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
  fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (%s)\n", bfs_last_error()); } \
  } while (0)

static void
put(const char *path, const char *s)
{
  FILE *f = fopen(path, "w");
  if (!f || fputs(s, f) < 0 || fclose(f)) {
    perror(path);
    exit(99);
  }
}

int
main(void)
{
  char root[] = "/tmp/bfs-beneath.XXXXXX", p[4096];
  if (!mkdtemp(root))
    return 99;
#define P(x) (snprintf(p, sizeof p, "%s/%s", root, x), p)
  mkdir(P("repo"), 0755);
  mkdir(P("repo/vm"), 0755);
  put(P("repo/vm/disk.qcow2"), "image");
  put(P("outside"), "HOST");
  if (symlink("../../outside", P("repo/vm/link.qcow2")) ||
      symlink("vm", P("repo/vmlink")) ||
      mkfifo(P("repo/vm/fifo"), 0644))
    return 99;
  int dir = bfs_dir_open(P("repo"));
  CHECK(dir >= 0, "dir open");

  int (*fn[2])(int, const char *, const char *) = {
    bfs_open_beneath, bfs_open_beneath_walk,
  };
  for (int i = 0; i < 2; i++) {
    const char *how = i ? "walk" : "openat2";
    int fd = fn[i](dir, "repo", "vm/disk.qcow2");
    char buf[8] = { 0 };
    CHECK(fd >= 0 && read(fd, buf, 5) == 5 && !strcmp(buf, "image"),
          "%s: regular file", how);
    CHECK(fd < 0 || (fcntl(fd, F_GETFL) & O_NONBLOCK) == 0,
          "%s: O_NONBLOCK left set", how);
    if (fd >= 0) close(fd);
    fd = fn[i](dir, "repo", "./vm//disk.qcow2");
    CHECK(fd >= 0, "%s: ./ and // components", how);
    if (fd >= 0) close(fd);
    CHECK(fn[i](dir, "repo", "vm/link.qcow2") == -ELOOP, "%s: final symlink", how);
    CHECK(fn[i](dir, "repo", "vmlink/disk.qcow2") == -ELOOP,
          "%s: symlink in the middle", how);
    CHECK(fn[i](dir, "repo", "vm/../../outside") == -EXDEV, "%s: ..", how);
    CHECK(fn[i](dir, "repo", "/etc/passwd") == -EXDEV, "%s: absolute", how);
    CHECK(fn[i](dir, "repo", "vm/fifo") == -EINVAL, "%s: fifo", how);
    CHECK(fn[i](dir, "repo", "vm") == -EINVAL, "%s: directory", how);
    CHECK(fn[i](dir, "repo", "vm/missing") == -ENOENT, "%s: missing", how);
  }

  /* identity: recorded, then the file replaced by another one */
  struct stat st;
  struct bfs_file_id id;
  int fd = bfs_open_beneath(dir, "repo", "vm/disk.qcow2");
  CHECK(fd >= 0 && fstat(fd, &st) == 0, "stat");
  bfs_file_id_of(&st, &id);
  CHECK(bfs_file_id_check("disk", &id, &st) == 0, "same file");
  close(fd);
  put(P("repo/vm/new"), "other");
  char from[4096];
  snprintf(from, sizeof from, "%s/repo/vm/new", root);
  if (rename(from, P("repo/vm/disk.qcow2")) < 0)
    return 99;
  fd = bfs_open_beneath(dir, "repo", "vm/disk.qcow2");
  CHECK(fd >= 0 && fstat(fd, &st) == 0, "stat 2");
  CHECK(bfs_file_id_check("disk", &id, &st) == -EIO &&
        strstr(bfs_last_error(), "changed since the catalog"), "replaced file");
  close(fd);
  struct bfs_file_id none = { 0 };
  CHECK(bfs_file_id_check("disk", &none, &st) == -EIO, "no record");
  char *rel[] = { (char *)"vm/disk.qcow2" };
  bfs_file_id_of(&st, &id);
  struct bfs_chain_ids ids = { 1, rel, &id };
  CHECK(bfs_chain_ids_check(&ids, 0, "vm/disk.qcow2", &st) == 0, "chain ok");
  CHECK(bfs_chain_ids_check(&ids, 0, "vm/other", &st) == -EIO, "chain path");
  CHECK(bfs_chain_ids_check(&ids, 1, NULL, NULL) == 0, "chain end");
  CHECK(bfs_chain_ids_check(&ids, 2, NULL, NULL) == -EIO, "chain longer");
  CHECK(bfs_path_beneath("/r", "/r/a/b") && !strcmp(bfs_path_beneath("/r", "/r/a/b"), "a/b"),
        "path_beneath");
  CHECK(!bfs_path_beneath("/r", "/rx/a") && !bfs_path_beneath("/r", "/r/"),
        "path_beneath outside");
  close(dir);

  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", root);
  if (fails)
    return 1;
  printf("ok: beneath: openat2 and walk refuse links, .., fifos; identity checked\n");
  return 0;
}
