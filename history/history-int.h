/* history-int.h — shared by history.c, diff.c and diff-blocks.c.
 *
 * history/ is a frontend that compares points in time.  It sits above
 * guest/ (the stored listings: index.h), restore/ (a point in time's disks
 * opened without a mount) and catalog/ (which points in time exist), and
 * needs no appliance and no FUSE, so it is built whether or not libguestfs
 * is: guest/ could not hold it without depending on restore/.
 */
#ifndef BFS_HISTORY_INT_H
#define BFS_HISTORY_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "catalog/catalog.h"

/* One VM of a repository: the catalog (brought up to date), its points in
 * time oldest first, and the index database beside the catalog. */
struct hist_vm {
  catalog_t *cat;
  char *vm;
  char *db;
  struct catalog_backup *b;
  size_t n;
};
/* 0, or -errno with the error set (no such VM: -ENOENT).  luks_key: the
 * command has a LUKS key (catalog_opts.luks_key). */
int hist_open(const char *repo, const char *catalog, bool luks_key,
              const char *index, const char *vm, struct hist_vm *h);
void hist_close(struct hist_vm *h);
/* "T" or "T1 .. T2" into buf (80 bytes) */
const char *hist_range(const char *first, const char *last, char buf[static 80]);
/* "/etc//x/" -> "/etc/x" (malloc'd); NULL with the error set when not absolute */
char *hist_path(const char *arg);

/* diff --blocks between two points in time (vm@time, resolved names);
 * only_disk NULL for every disk.  Exit status (0 same, 1 differ, 2 error). */
struct blk_key;
int hist_diff_blocks(const char *repo, const char *catalog,
                     const struct blk_key *key, const char *vm1, const char *t1, const char *vm2,
                     const char *t2, const struct catalog_backup *b1,
                     const struct catalog_backup *b2, const char *only_disk,
                     bool json);

#endif
