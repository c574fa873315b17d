/* index.h — stored guest file listings (`backupfs index`, `find`,
 * `history`, `diff`).
 *
 * One row per point in time (vm, time), stored by catalog/index.h in a
 * database next to the catalog (`<catalog>.index.sqlite`): the whole
 * listing as one zstd-compressed blob of records (path, mode, uid, gid,
 * size, times, inode, link count, link target), directories before their
 * contents.  index.c is the format; index-list.c turns listings into
 * path-sorted version lists that find, history and diff compare.
 */
#ifndef BFS_INDEX_H
#define BFS_INDEX_H

#include <stdbool.h>
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

/* The same for the entries of one point in time; -ENOENT if not indexed. */
int index_foreach_at(const char *db, const char *vm, const char *time,
                     index_visit_fn fn, void *opaque);

/* Drop the stored listings of vm (or of every VM when vm is NULL) whose
 * "vm/time" key is not in keep[] (points in time that no longer exist);
 * *dropped counts them. */
int index_prune(const char *db, const char *vm, char *const *keep,
                size_t nkeep, unsigned *dropped);

/* Where the index of repo lives: catalog_path + ".index.sqlite" when a
 * catalog file is named, else in the default cache directory. */
char *index_default_path(const char *repo, const char *catalog_path);

/* What the commands of the index (index, find, history, diff) share on
 * their command line: the --index row of their option table, the
 * --catalog help that says where the index is, the database to open, and
 * the check of a --key-file a reader of the index never needs to use. */
enum { INDEX_OPT_INDEX = 0x1101 };
#define INDEX_OPT_ROW { "index", INDEX_OPT_INDEX, "FILE", "the index database itself" }
#define INDEX_CATALOG_HELP "the repository's catalog (index is\nFILE.index.sqlite)"
/* --index FILE (index, may be NULL) or REPO's default; malloc'd, or NULL
 * with "backupfs CMD: ..." printed */
char *index_db_open_path(const char *cmd, const char *index, const char *repo,
                         const char *catalog);
/* 0 when key_file is NULL or a key; else the error printed, and 2 */
int index_key_check(const char *cmd, const char *key_file);

/* ---- versions (index-list.c) ---- */

/* One entry of a point in time, as compared across points in time. */
struct index_entry {
  char *path;
  struct stat st;
  char *link;                  /* symlink target, or NULL */
};
/* Entries of one point in time, sorted by path (strcmp). */
struct index_list {
  struct index_entry *v;
  size_t n, cap;
};
/* Which paths to keep (NULL: all). */
typedef bool (*index_want_fn)(void *opaque, const char *path,
                              const struct stat *st);

/* The listing of vm@time filtered by want, sorted; -ENOENT if not indexed. */
int index_list_load(const char *db, const char *vm, const char *time,
                    index_want_fn want, void *wopaque, struct index_list *out);
/* Every stored point in time (of vm, or all), in vm, time order: fn gets
 * each one's filtered, sorted list (owned by the walk). */
typedef int (*index_point_fn)(void *opaque, const char *vm, const char *time,
                              struct index_list *l);
int index_list_foreach(const char *db, const char *vm, index_want_fn want,
                       void *wopaque, index_point_fn fn, void *opaque);
int index_list_add(struct index_list *l, const char *path,
                   const struct stat *st, const char *link);
void index_list_sort(struct index_list *l);
/* the entry for path, or NULL */
const struct index_entry *index_list_find(const struct index_list *l,
                                          const char *path);
void index_list_free(struct index_list *l);

/* What tells two versions of a path apart: type and permissions (mode),
 * owner (uid, gid), size, mtime (to the nanosecond), symlink target.  The
 * listing holds no content hash; a change that keeps all of these (rare:
 * tools that restore mtimes) is not seen.  Returns a mask of INDEX_DIFF_*. */
enum {
  INDEX_DIFF_TYPE = 1, INDEX_DIFF_MODE = 2, INDEX_DIFF_OWNER = 4,
  INDEX_DIFF_SIZE = 8, INDEX_DIFF_MTIME = 16, INDEX_DIFF_LINK = 32,
};
unsigned index_entry_diff(const struct index_entry *a,
                          const struct index_entry *b);
/* "size, mtime" for a mask (buf of 64 bytes) */
const char *index_diff_names(unsigned mask, char buf[static 64]);
/* the names of a mask, one by one (NULL past the last): for JSON arrays */
const char *index_diff_name(unsigned mask, unsigned *iter);
/* "file", "directory", "symlink", ... for a mode */
const char *index_type_name(mode_t mode);
/* path is root or below it ("/etc" holds "/etc" and "/etc/x", not "/etcx") */
bool index_path_under(const char *path, const char *root);

#endif
