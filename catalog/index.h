/* index.h — the store behind the guest file index (`backupfs index`,
 * `find`, `history`, `diff`): SQLite, so it lives in catalog/.
 *
 * One row per point in time (vm, time) in a database file next to the
 * catalog (`<catalog>.index.sqlite`, schema versioned with user_version):
 * the listing is an opaque blob here; guest/index.c owns its format (the
 * walk, the records, zstd).  SQLite errors are translated once, in
 * index-db.c, into -errno with the file named.  Every call opens the file
 * and closes it again: index runs are rare and each call is one statement.
 * A missing database is -ENOENT ("no file index"), never created by a read.
 */
#ifndef BFS_CATALOG_INDEX_H
#define BFS_CATALOG_INDEX_H

#include <stddef.h>
#include <stdint.h>

/* Store (replace) the listing of vm@time: blob of len bytes, nfiles entries. */
int catalog_index_put(const char *db, const char *vm, const char *time,
                      const void *blob, size_t len, uint64_t nfiles);
/* The stored listing of vm@time (malloc'd into *blob); -ENOENT if none. */
int catalog_index_get(const char *db, const char *vm, const char *time,
                      void **blob, size_t *len);

/* Call fn for every stored listing (of one VM, or of all when vm is NULL)
 * in vm, time order; a non-zero return from fn stops the walk and is
 * returned.  blob is valid during the call only. */
typedef int (*catalog_index_fn)(void *opaque, const char *vm,
                                const char *time, const void *blob,
                                size_t len);
int catalog_index_foreach(const char *db, const char *vm, catalog_index_fn fn,
                          void *opaque);

/* The points in time of vm that have a listing, sorted (malloc'd names;
 * free with catalog_names_free). */
int catalog_index_times(const char *db, const char *vm, char ***times,
                        size_t *n);

/* Drop the listings of vm (or of every VM when vm is NULL) whose "vm/time"
 * key is not in keep[]; *dropped counts them. */
int catalog_index_prune(const char *db, const char *vm, char *const *keep,
                        size_t nkeep, unsigned *dropped);

/* The index database beside a catalog file: catalog_db + ".index.sqlite"
 * (malloc'd, NULL on ENOMEM). */
char *catalog_index_path(const char *catalog_db);

#endif
