/* index.h — stored guest file listings (`backupfs index`, `backupfs find`).
 *
 * One row per point in time (vm, time) in a small SQLite database next to
 * the catalog (`<catalog>.index.sqlite`): the whole listing as one
 * zstd-compressed blob of records (path, mode, uid, gid, size, times, inode,
 * link count, link target), directories before their contents.
 */
#ifndef BFS_INDEX_H
#define BFS_INDEX_H

#include <stdint.h>
#include <sys/stat.h>

#include "guest/guest-cache.h"

/* Store the listing held by c (walked from "/" through listed directories). */
int index_save(const char *db, const char *vm, const char *time,
               struct gcache *c, uint64_t *nfiles);
/* Fill c from the stored listing and mark it complete; -ENOENT if none. */
int index_load(const char *db, const char *vm, const char *time,
               struct gcache *c);

/* Call fn for every stored entry (of one VM, or all when vm is NULL), in
 * vm, time order; a non-zero return from fn stops the walk and is returned. */
typedef int (*index_visit_fn)(void *opaque, const char *vm, const char *time,
                              const char *path, const struct stat *st,
                              const char *link);
int index_foreach(const char *db, const char *vm, index_visit_fn fn,
                  void *opaque);

/* Drop the stored listings of vm (or of every VM when vm is NULL) whose
 * "vm/time" key is not in keep[] (points in time that no longer exist);
 * *dropped counts them. */
int index_prune(const char *db, const char *vm, char *const *keep,
                size_t nkeep, unsigned *dropped);

/* Where the index of repo lives: catalog_path + ".index.sqlite" when a
 * catalog file is named, else in the default cache directory. */
char *index_default_path(const char *repo, const char *catalog_path);

#endif
