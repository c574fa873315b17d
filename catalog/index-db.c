/* index-db.c — the SQLite side of the guest file index (see index.h).
 *
 * Its own database file beside the catalog, so that an index run (minutes
 * of appliance work per point in time) never holds the catalog's write
 * lock, and a catalog rebuilt from scratch keeps the listings:
 *
 *   guest_index(vm, time, created, nfiles, data)   PRIMARY KEY (vm, time)
 *
 * version 1 (PRAGMA user_version).  Readers open it read-only and never
 * create it: a missing file is -ENOENT.  Every SQLite error goes through
 * db_sqlerr() (db.c), the catalog's one translation into -errno.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog-int.h"
#include "catalog/index.h"
#include "common/error.h"

#define INDEX_SCHEMA \
  "CREATE TABLE IF NOT EXISTS guest_index (" \
  " vm TEXT NOT NULL, time TEXT NOT NULL," \
  " created INTEGER NOT NULL, nfiles INTEGER NOT NULL," \
  " data BLOB NOT NULL, PRIMARY KEY (vm, time));" \
  "PRAGMA user_version = 1;"

static int
idx_open(const char *path, bool create, sqlite3 **out)
{
  sqlite3 *db = NULL;
  int r;

  *out = NULL;
  if (!create && access(path, R_OK) != 0)
    return bfs_error(-ENOENT, "%s: no file index", path);
  int flags = create ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                     : SQLITE_OPEN_READONLY;
  if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_FULLMUTEX, NULL) !=
      SQLITE_OK) {
    r = db ? db_sqlerr(db, "open file index")
           : bfs_error(-ENOMEM, "%s: cannot open file index", path);
    sqlite3_close(db);
    return r;
  }
  sqlite3_busy_timeout(db, 10000);
  if (create && sqlite3_exec(db, INDEX_SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
    r = db_sqlerr(db, "file index schema");
    sqlite3_close(db);
    return r;
  }
  *out = db;
  return 0;
}

/* prepare sql and bind the text arguments (NULL ones are skipped) */
static int
idx_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, const char *a,
            const char *b)
{
  int i = 1;
  if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK ||
      (a && sqlite3_bind_text(*st, i++, a, -1, SQLITE_STATIC) != SQLITE_OK) ||
      (b && sqlite3_bind_text(*st, i++, b, -1, SQLITE_STATIC) != SQLITE_OK))
    return db_sqlerr(db, sql);
  return 0;
}

int
catalog_index_put(const char *path, const char *vm, const char *time_name,
                  const void *blob, size_t len, uint64_t nfiles)
{
  sqlite3 *db;
  sqlite3_stmt *st = NULL;
  int r = idx_open(path, true, &db);
  if (r < 0)
    return r;
  static const char sql[] = "INSERT OR REPLACE INTO guest_index"
                            " (vm, time, created, nfiles, data)"
                            " VALUES (?, ?, ?, ?, ?)";
  if ((r = idx_prepare(db, sql, &st, vm, time_name)) == 0 &&
      (sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL)) != SQLITE_OK ||
       sqlite3_bind_int64(st, 4, (sqlite3_int64)nfiles) != SQLITE_OK ||
       sqlite3_bind_blob64(st, 5, blob ? blob : "", len, SQLITE_STATIC) !=
         SQLITE_OK ||
       sqlite3_step(st) != SQLITE_DONE))
    r = db_sqlerr(db, "store listing");
  sqlite3_finalize(st);
  sqlite3_close(db);
  return r;
}

int
catalog_index_get(const char *path, const char *vm, const char *time_name,
                  void **blob, size_t *len)
{
  sqlite3 *db;
  sqlite3_stmt *st = NULL;
  int r = idx_open(path, false, &db);
  if (r < 0)
    return r;
  if ((r = idx_prepare(db, "SELECT data FROM guest_index"
                       " WHERE vm = ? AND time = ?", &st, vm, time_name)) == 0) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      size_t n = sqlite3_column_bytes(st, 0);
      const void *p = sqlite3_column_blob(st, 0);
      *blob = cat_xmalloc(n ? n : 1);
      if (n)
        memcpy(*blob, p, n);
      *len = n;
    } else if (rc == SQLITE_DONE)
      r = bfs_error(-ENOENT, "%s: no file index for %s/%s", path, vm,
                    time_name);
    else
      r = db_sqlerr(db, "load listing");
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return r;
}

int
catalog_index_foreach(const char *path, const char *vm, catalog_index_fn fn,
                      void *opaque)
{
  sqlite3 *db;
  sqlite3_stmt *st = NULL;
  int r = idx_open(path, false, &db), rc = SQLITE_DONE;
  if (r < 0)
    return r;
  r = idx_prepare(db, vm ? "SELECT vm, time, data FROM guest_index"
                           " WHERE vm = ? ORDER BY vm, time"
                         : "SELECT vm, time, data FROM guest_index"
                           " ORDER BY vm, time", &st, vm, NULL);
  while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(st, 0);
    const char *t = (const char *)sqlite3_column_text(st, 1);
    const void *p = sqlite3_column_blob(st, 2);
    size_t n = sqlite3_column_bytes(st, 2);
    if (!v || !t) {
      r = bfs_error(-EIO, "%s: file index row without vm or time", path);
      break;
    }
    r = fn(opaque, v, t, p ? p : "", n);
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = db_sqlerr(db, "read listings");
  sqlite3_finalize(st);
  sqlite3_close(db);
  return r;
}

int
catalog_index_times(const char *path, const char *vm, char ***times,
                    size_t *n)
{
  sqlite3 *db;
  sqlite3_stmt *st = NULL;
  char **v = NULL;
  size_t cnt = 0, cap = 0;
  int r = idx_open(path, false, &db), rc = SQLITE_DONE;

  *times = NULL;
  *n = 0;
  if (r < 0)
    return r;
  r = idx_prepare(db, "SELECT time FROM guest_index WHERE vm = ?"
                  " ORDER BY time", &st, vm, NULL);
  while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(st, 0);
    if (!t)
      continue;
    CAT_GROW(v, cap, cnt);
    v[cnt++] = cat_xstrdup(t);
  }
  if (r == 0 && rc != SQLITE_DONE)
    r = db_sqlerr(db, "list listings");
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (r < 0) {
    catalog_names_free(v, cnt);
    return r;
  }
  *times = v;
  *n = cnt;
  return 0;
}

int
catalog_index_prune(const char *path, const char *vm, char *const *keep,
                    size_t nkeep, unsigned *dropped)
{
  sqlite3 *db;
  sqlite3_stmt *st = NULL, *del = NULL;
  char **gone = NULL;             /* "vm\0time" */
  size_t ngone = 0, cap = 0;
  int r, rc = SQLITE_DONE;

  *dropped = 0;
  if ((r = idx_open(path, true, &db)) < 0)
    return r;
  if ((r = idx_prepare(db, "SELECT vm, time FROM guest_index", &st, NULL,
                       NULL)) < 0 ||
      (r = idx_prepare(db, "DELETE FROM guest_index WHERE vm = ? AND time = ?",
                       &del, NULL, NULL)) < 0)
    goto out;
  /* collect first: no deletes while the SELECT is stepping */
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(st, 0);
    const char *t = (const char *)sqlite3_column_text(st, 1);
    if (!v || !t || (vm && strcmp(v, vm)))
      continue;
    char *key = cat_xasprintf("%s/%s", v, t);
    bool kept = false;
    for (size_t i = 0; i < nkeep && !kept; i++)
      kept = !strcmp(keep[i], key);
    if (kept) {
      free(key);
      continue;
    }
    key[strlen(v)] = '\0';
    CAT_GROW(gone, cap, ngone);
    gone[ngone++] = key;
  }
  if (rc != SQLITE_DONE) {
    r = db_sqlerr(db, "list listings");
    goto out;
  }
  for (size_t i = 0; i < ngone && r == 0; i++) {
    const char *t = gone[i] + strlen(gone[i]) + 1;
    sqlite3_reset(del);
    if (sqlite3_bind_text(del, 1, gone[i], -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_text(del, 2, t, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(del) != SQLITE_DONE)
      r = db_sqlerr(db, "drop listing");
    else
      (*dropped)++;
  }
out:
  catalog_names_free(gone, ngone);
  sqlite3_finalize(st);
  sqlite3_finalize(del);
  sqlite3_close(db);
  return r;
}

char *
catalog_index_path(const char *catalog_db)
{
  char *p;
  if (asprintf(&p, "%s.index.sqlite", catalog_db) < 0)
    return NULL;
  return p;
}
