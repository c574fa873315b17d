/* diff-blocks.c — `backupfs diff --blocks`: the changed extents of each
 * disk between two points in time, without an appliance.
 *
 * Each disk is opened from the repository as a blk/ stack
 * (restore_blk_repo: the chain restore disk --repo reads, checked against
 * the catalog) and compared in 64 KiB blocks.  A block is unchanged when,
 * piece by piece, both sides are holes or zeros, or both are plain data of
 * the same layer file (device and inode) at the same file offset (an
 * incremental that did not touch it reads its backing's cluster); anything
 * else is decided by reading both and comparing bytes.  So the result is
 * exactly a byte comparison of the two flat images in 64 KiB blocks, and
 * only blocks that really differ in where they come from are read.  Runs
 * of unchanged pieces longer than a block are skipped whole.  A block past
 * the end of the shorter disk is changed; a disk in one point in time only
 * is changed whole.  Consecutive changed blocks are one extent.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blk/blk.h"
#include "common/error.h"
#include "common/vec.h"
#include "history/history-int.h"
#include "restore/restore-int.h"

#define BLOCK (64u * 1024)

struct cursor {
  struct bfs_blk *b;
  uint64_t off, end;           /* st describes [off, end) */
  struct bfs_blk_status st;
};

/* (fd -> device, inode) of the layer files seen, both stacks */
struct fd_ids {
  int fd[2 * BLK_MAX_DEPTH];
  dev_t dev[2 * BLK_MAX_DEPTH];
  ino_t ino[2 * BLK_MAX_DEPTH];
  size_t n;
};

struct extents {
  uint64_t (*v)[2];
  size_t n, cap;
  uint64_t bytes;
};

static int
cur_at(struct cursor *c, uint64_t off)
{
  if (off >= c->off && off < c->end)
    return 0;
  int r = bfs_blk_block_status(c->b, off, c->b->size - off, &c->st);
  if (r < 0)
    return r;
  c->off = off;
  c->end = off + c->st.len;
  return 0;
}

static int
fd_id(struct fd_ids *t, int fd, dev_t *dev, ino_t *ino)
{
  for (size_t i = 0; i < t->n; i++)
    if (t->fd[i] == fd) {
      *dev = t->dev[i];
      *ino = t->ino[i];
      return 0;
    }
  struct stat st;
  if (fstat(fd, &st) < 0)
    return bfs_error(-errno, "fstat of a layer: %m");
  if (t->n < sizeof t->fd / sizeof t->fd[0]) {
    t->fd[t->n] = fd;
    t->dev[t->n] = st.st_dev;
    t->ino[t->n++] = st.st_ino;
  }
  *dev = st.st_dev;
  *ino = st.st_ino;
  return 0;
}

/* the pieces at off say the same bytes without reading them: 1 yes, 0 no */
static int
same_source(struct cursor *a, struct cursor *b, struct fd_ids *ids,
            uint64_t off)
{
  bool za = a->st.kind != BFS_BLK_DATA, zb = b->st.kind != BFS_BLK_DATA;
  if (za || zb)
    return za && zb;
  if (a->st.fd < 0 || b->st.fd < 0 ||
      a->st.fd_off + (off - a->off) != b->st.fd_off + (off - b->off))
    return 0;
  dev_t da, db;
  ino_t ia, ib;
  int r;
  if ((r = fd_id(ids, a->st.fd, &da, &ia)) < 0 ||
      (r = fd_id(ids, b->st.fd, &db, &ib)) < 0)
    return r;
  return da == db && ia == ib;
}

static int
ext_add(struct extents *x, uint64_t off, uint64_t len)
{
  x->bytes += len;
  if (x->n && x->v[x->n - 1][0] + x->v[x->n - 1][1] == off) {
    x->v[x->n - 1][1] += len;
    return 0;
  }
  if (bfs_vec_reserve_((void **)&x->v, &x->cap, sizeof *x->v, x->n + 1) < 0)
    return bfs_error(-ENOMEM, "out of memory");
  x->v[x->n][0] = off;
  x->v[x->n++][1] = len;
  return 0;
}

/* compare a and b (either may be NULL: that disk is missing) */
static int
compare(struct bfs_blk *ba, struct bfs_blk *bb, struct extents *x)
{
  uint64_t sa = ba ? ba->size : 0, sb = bb ? bb->size : 0;
  uint64_t size = sa > sb ? sa : sb, common = sa < sb ? sa : sb;
  struct cursor a = { ba, 0, 0, { 0 } }, b = { bb, 0, 0, { 0 } };
  struct fd_ids ids = { .n = 0 };
  char *buf_a = malloc(BLOCK), *buf_b = malloc(BLOCK);
  int r = buf_a && buf_b ? 0 : bfs_error(-ENOMEM, "out of memory");

  uint64_t off = 0;
  while (r == 0 && off < common) {
    uint64_t len = common - off < BLOCK ? common - off : BLOCK;
    uint64_t end = off + len, pos = off;
    int same = 1;
    while (same == 1 && pos < end) {
      if ((r = cur_at(&a, pos)) < 0 || (r = cur_at(&b, pos)) < 0)
        break;
      same = same_source(&a, &b, &ids, pos);
      uint64_t n = a.end < b.end ? a.end : b.end;
      pos = n < end ? n : end;
    }
    if (r == 0 && same < 0)
      r = same;
    if (r < 0)
      break;
    if (same) {
      /* the last piece goes on past this block on both sides: skip the
       * whole blocks it covers */
      uint64_t n = a.end < b.end ? a.end : b.end;
      uint64_t skip = n > common ? common : n;
      skip -= skip % BLOCK;
      off = skip > end ? skip : end;
      continue;
    }
    if ((r = bfs_blk_pread(ba, buf_a, len, off)) < 0 ||
        (r = bfs_blk_pread(bb, buf_b, len, off)) < 0)
      break;
    if (memcmp(buf_a, buf_b, len) && (r = ext_add(x, off, len)) < 0)
      break;
    off = end;
  }
  if (r == 0 && size > common)
    r = ext_add(x, common, size - common);
  free(buf_a);
  free(buf_b);
  return r;
}

static bool
has_disk(const struct catalog_backup *b, const char *name)
{
  for (size_t i = 0; i < b->ndisks; i++)
    if (!strcmp(b->disks[i].name, name))
      return true;
  return false;
}

/* one disk: open what exists on each side and compare */
static int
diff_disk(const char *repo, const char *catalog, const struct blk_key *key,
          const char *vt1,
          const char *vt2, const struct catalog_backup *b1,
          const struct catalog_backup *b2, const char *disk,
          struct extents *x, uint64_t *size)
{
  struct bfs_blk *ba = NULL, *bb = NULL;
  struct rsrc *sa = NULL, *sb = NULL;
  int r = 0;
  if (has_disk(b1, disk))
    r = restore_blk_repo(repo, catalog, key, vt1, disk, &sa, &ba);
  if (r == 0 && has_disk(b2, disk))
    r = restore_blk_repo(repo, catalog, key, vt2, disk, &sb, &bb);
  if (r == 0) {
    *size = bb ? bb->size : ba->size;
    r = compare(ba, bb, x);
  }
  if (sa)
    restore_src_close(sa);
  if (sb)
    restore_src_close(sb);
  return r;
}

int
hist_diff_blocks(const char *repo, const char *catalog,
                 const struct blk_key *key, const char *vm1,
                 const char *t1, const char *vm2, const char *t2,
                 const struct catalog_backup *b1,
                 const struct catalog_backup *b2, const char *only_disk,
                 bool json)
{
  char vt1[256], vt2[256];
  snprintf(vt1, sizeof vt1, "%s@%s", vm1, t1);
  snprintf(vt2, sizeof vt2, "%s@%s", vm2, t2);
  if (only_disk && !has_disk(b1, only_disk) && !has_disk(b2, only_disk)) {
    fprintf(stderr, "backupfs: diff: no disk named '%s' in %s or %s\n",
            only_disk, vt1, vt2);
    return 2;
  }
  /* the disks of both, T1's order first */
  const char *names[2 * 256];
  size_t nn = 0;
  for (int side = 0; side < 2; side++) {
    const struct catalog_backup *b = side ? b2 : b1;
    for (size_t i = 0; i < b->ndisks && nn < sizeof names / sizeof names[0]; i++) {
      bool dup = false;
      for (size_t k = 0; k < nn && !dup; k++)
        dup = !strcmp(names[k], b->disks[i].name);
      if (!dup && (!only_disk || !strcmp(only_disk, b->disks[i].name)))
        names[nn++] = b->disks[i].name;
    }
  }

  json_object *jo = json ? json_object_new_object() : NULL, *jd = NULL;
  if (jo) {
    json_object_object_add(jo, "from", json_object_new_string(vt1));
    json_object_object_add(jo, "to", json_object_new_string(vt2));
    jd = json_object_new_array();
    json_object_object_add(jo, "disks", jd);
  }
  uint64_t total = 0;
  size_t nextents = 0;
  int r = 0;
  for (size_t k = 0; k < nn && r == 0; k++) {
    struct extents x = { 0 };
    uint64_t size = 0;
    r = diff_disk(repo, catalog, key, vt1, vt2, b1, b2, names[k], &x, &size);
    if (r == 0 && !(has_disk(b1, names[k]) && has_disk(b2, names[k])))
      fprintf(stderr, "backupfs: diff: disk %s only in %s\n", names[k],
              has_disk(b1, names[k]) ? vt1 : vt2);
    for (size_t i = 0; r == 0 && !jo && i < x.n; i++)
      printf("%s\t%" PRIu64 "\t%" PRIu64 "\n", names[k], x.v[i][0], x.v[i][1]);
    if (r == 0 && jo) {
      json_object *d = json_object_new_object(), *e = json_object_new_array();
      json_object_object_add(d, "disk", json_object_new_string(names[k]));
      json_object_object_add(d, "size", json_object_new_int64(size));
      for (size_t i = 0; i < x.n; i++) {
        json_object *p = json_object_new_array();
        json_object_array_add(p, json_object_new_int64(x.v[i][0]));
        json_object_array_add(p, json_object_new_int64(x.v[i][1]));
        json_object_array_add(e, p);
      }
      json_object_object_add(d, "extents", e);
      json_object_object_add(d, "bytes", json_object_new_int64(x.bytes));
      json_object_array_add(jd, d);
    }
    total += x.bytes;
    nextents += x.n;
    free(x.v);
  }
  if (r < 0) {
    fprintf(stderr, "backupfs: diff: %s\n", bfs_last_error());
    json_object_put(jo);
    return 2;
  }
  if (jo) {
    json_object_object_add(jo, "bytes", json_object_new_int64(total));
    puts(json_object_to_json_string_ext(jo, JSON_C_TO_STRING_PRETTY));
    json_object_put(jo);
  } else
    printf("total\t%" PRIu64 "\t%zu extents, %zu disks\n", total, nextents,
           nn);
  return total ? 1 : 0;
}
