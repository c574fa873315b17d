/* blktest.c — see blktest.h. */
#include "blktest.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"

int bt_failures;
static char workdir[4096];

const char *
bt_workdir(const char *tag)
{
  const char *t = getenv("TMPDIR");
  if (system("command -v qemu-img >/dev/null && command -v qemu-io >/dev/null")
      != 0) {
    printf("SKIP: needs qemu-img and qemu-io\n");
    exit(77);
  }
  snprintf(workdir, sizeof workdir, "%s/bfs-%s.XXXXXX", t ? t : "/tmp", tag);
  if (!mkdtemp(workdir)) {
    perror("mkdtemp");
    exit(1);
  }
  return workdir;
}

void
bt_cleanup(void)
{
  if (workdir[0] && !getenv("BFS_KEEP"))
    bt_sh("rm -rf '%s'", workdir);
}

const char *
bt_path(const char *name)
{
  static char paths[8][4200];
  static unsigned next;
  char *p = paths[next++ % 8];
  snprintf(p, sizeof paths[0], "%s/%s", workdir, name);
  return p;
}

void
bt_sh(const char *fmt, ...)
{
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  if (system(cmd) != 0) {
    printf("FAIL: command failed: %s\n", cmd);
    exit(1);
  }
}

struct tbuf
bt_load(const char *name)
{
  struct tbuf b = { 0 };
  FILE *f = fopen(bt_path(name), "rb");
  long n;
  if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0) {
    printf("FAIL: cannot load %s\n", name);
    exit(1);
  }
  rewind(f);
  b.len = (size_t)n;
  b.p = malloc(b.len + 1);
  if (!b.p || fread(b.p, 1, b.len, f) != b.len) {
    printf("FAIL: cannot read %s\n", name);
    exit(1);
  }
  fclose(f);
  return b;
}

void
bt_save(const char *name, const struct tbuf *b)
{
  FILE *f = fopen(bt_path(name), "wb");
  if (!f || fwrite(b->p, 1, b->len, f) != b->len || fclose(f) != 0) {
    printf("FAIL: cannot write %s\n", name);
    exit(1);
  }
}

void
bt_put64(struct tbuf *b, uint64_t off, uint64_t v)
{
  v = htobe64(v);
  memcpy(b->p + off, &v, 8);
}

void
bt_put32(struct tbuf *b, uint64_t off, uint32_t v)
{
  v = htobe32(v);
  memcpy(b->p + off, &v, 4);
}

uint64_t
bt_get64(const struct tbuf *b, uint64_t off)
{
  uint64_t v;
  memcpy(&v, b->p + off, 8);
  return be64toh(v);
}

uint32_t
bt_get32(const struct tbuf *b, uint64_t off)
{
  uint32_t v;
  memcpy(&v, b->p + off, 4);
  return be32toh(v);
}

uint64_t
bt_l2_entry(const struct tbuf *b, uint64_t g)
{
  uint32_t cb = bt_get32(b, 20);
  uint64_t l1 = bt_get64(b, 40);
  uint64_t l2 = bt_get64(b, l1) & 0x00fffffffffffe00ull;
  return l2 + (g >> cb) * 8;
}

int
bt_open_qcow2_mem(const struct tbuf *b, const char *name, struct bfs_blk **out)
{
  struct blk_io *io;
  int r = blk_io_memory(b->p, b->len, name, &io);
  return r < 0 ? r : blk_qcow2_open(io, NULL, NULL, out);
}

bool
bt_err_has(const char *w1, const char *w2)
{
  const char *e = bfs_last_error();
  return (!w1 || strstr(e, w1)) && (!w2 || strstr(e, w2));
}
