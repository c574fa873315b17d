/* db.c — the SQLite side of the catalog: schema, migrations, file cache,
 * storing a scan's model.
 *
 * The schema version is PRAGMA user_version; migrations[v] takes a catalog
 * from version v to v + 1 and they run in order inside one IMMEDIATE
 * transaction, so two processes opening an old catalog at once migrate it
 * once.  A catalog newer than this binary is refused.  WAL mode lets the
 * mount keep reading while a scan writes.  A file that is not a database
 * (or corrupt) is moved aside to <file>.corrupt-<time> and rebuilt; a file
 * that cannot be opened says why (missing or read-only directory, mode).
 *
 *   meta(key, value)       repo, scanned_at, cloudstack_backups
 *   files(path, ...)       every probed file: stat identity (dev since v3)
 *                          + header
 *   vms, backups, disks, chains   the model; each VM carries the hash of
 *                          what is stored for it (v2) and is rewritten
 *                          only when a scan computes a different one;
 *                          chains rows are the disks' recipes (v4: path,
 *                          driver, options per layer, top first)
 *   verified(vm, backup, ok, result, at)   the last verify's verdict (v5)
 *   dirs(path, ...)        each directory's listing and stat identity (v6),
 *                          so a rescan reads only the directories that
 *                          changed (files are still stat'ed, every one)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"

static const char *const migrations[] = {
  /* 0 -> 1 */
  "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
  "CREATE TABLE files ("
  "  path TEXT PRIMARY KEY, kind INTEGER NOT NULL,"
  "  size INTEGER, alloc INTEGER, ino INTEGER, mtime_ns INTEGER,"
  "  format TEXT, compression TEXT, vsize INTEGER, encrypted INTEGER,"
  "  external INTEGER, backing TEXT, backing_format TEXT, backing_path TEXT,"
  "  error TEXT, info TEXT);"
  "CREATE TABLE vms (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
  "  source TEXT);"
  "CREATE TABLE backups (id INTEGER PRIMARY KEY, vm_id INTEGER NOT NULL,"
  "  name TEXT NOT NULL, time INTEGER NOT NULL, source TEXT,"
  "  domain_xml TEXT, status TEXT NOT NULL, extra TEXT,"
  "  UNIQUE (vm_id, name));"
  "CREATE TABLE disks (backup_id INTEGER NOT NULL, idx INTEGER NOT NULL,"
  "  name TEXT NOT NULL, image TEXT NOT NULL, volume TEXT,"
  "  virtual_size INTEGER, allocated INTEGER, format TEXT, compression TEXT,"
  "  encrypted INTEGER, status TEXT NOT NULL, depth INTEGER NOT NULL,"
  "  PRIMARY KEY (backup_id, idx)) WITHOUT ROWID;"
  "CREATE TABLE chains (backup_id INTEGER NOT NULL, disk_idx INTEGER NOT NULL,"
  "  depth INTEGER NOT NULL, path TEXT NOT NULL,"
  "  PRIMARY KEY (backup_id, disk_idx, depth)) WITHOUT ROWID;",
  /* 1 -> 2: per-VM model hash, so a rescan rewrites only what changed */
  "ALTER TABLE vms ADD COLUMN hash TEXT;",
  /* 2 -> 3: the device of each file, so a mount can tell the file it opens
   * is the one scanned (dev, ino, size, mtime_ns), and the format each file
   * was opened as by decision (layout name rule, recorded backing format)
   * or "probe"; older rows have neither, so every image is reopened once
   * (.raw/.img files were probed before) */
  "ALTER TABLE files ADD COLUMN dev INTEGER;"
  "ALTER TABLE files ADD COLUMN decided TEXT;",
  /* 3 -> 4: chains are recipes: each layer's driver (the format the scan
   * opened it as) and driver options, so blk opens exactly the list the
   * scan resolved; existing rows take their file's format */
  "ALTER TABLE chains ADD COLUMN driver TEXT;"
  "ALTER TABLE chains ADD COLUMN options TEXT;"
  "UPDATE chains SET driver = (SELECT f.format FROM files f"
  "  WHERE f.path = chains.path);",
  /* 4 -> 5: the last `backupfs verify` verdict of each point in time, by
   * name (vm, backup): a rescan rewrites the model rows, not what verify
   * found; result is "ok" or the first fault ("vda: ...") */
  "CREATE TABLE verified (vm TEXT NOT NULL, backup TEXT NOT NULL,"
  "  ok INTEGER NOT NULL, result TEXT NOT NULL, at INTEGER NOT NULL,"
  "  PRIMARY KEY (vm, backup)) WITHOUT ROWID;",
  /* 5 -> 6: the walk's directory listings (names '/'-terminated, sorted)
   * with the directory's identity; an empty table only costs one full
   * read of the tree */
  "CREATE TABLE dirs (path BLOB PRIMARY KEY, dev INTEGER, ino INTEGER,"
  "  mtime_ns INTEGER, ctime_ns INTEGER, listed_ns INTEGER, files BLOB,"
  "  subdirs BLOB) WITHOUT ROWID;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

int
db_sqlerr(sqlite3 *db, const char *what)
{
  int code = sqlite3_errcode(db);
  int e = code == SQLITE_BUSY || code == SQLITE_LOCKED ? EBUSY
        : code == SQLITE_NOMEM ? ENOMEM
        : code == SQLITE_READONLY || code == SQLITE_PERM ? EROFS
        : code == SQLITE_CANTOPEN ? EACCES
        : code == SQLITE_FULL ? ENOSPC : EIO;
  return bfs_error(-e, "catalog %s: %s: %s", sqlite3_db_filename(db, "main"),
                   what, sqlite3_errmsg(db));
}

static int
exec(sqlite3 *db, const char *sql)
{
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
    return db_sqlerr(db, sql);
  return 0;
}

static int
user_version(sqlite3 *db, int *v)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
    return db_sqlerr(db, "user_version");
  int rc = sqlite3_step(st);
  *v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : db_sqlerr(db, "user_version");
}

static int
migrate(sqlite3 *db, const char *path)
{
  int v, r;
  if ((r = user_version(db, &v)) < 0) return r;
  if (v == SCHEMA_VERSION) return 0;
  if (v > SCHEMA_VERSION)
    return bfs_error(-EPROTO, "catalog %s: schema version %d is newer than "
                     "this backupfs understands (%d)", path, v, SCHEMA_VERSION);
  if ((r = exec(db, "BEGIN IMMEDIATE")) < 0) return r;
  if ((r = user_version(db, &v)) < 0) goto fail;      /* someone else did? */
  for (; v < SCHEMA_VERSION; v++)
    if ((r = exec(db, migrations[v])) < 0) goto fail;
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
  if ((r = exec(db, sql)) < 0 || (r = exec(db, "COMMIT")) < 0) goto fail;
  return 0;
fail:
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return r;
}

/* Why SQLite cannot open path ("unable to open database file" says
 * nothing): the directory is missing or not writable (WAL needs its -wal
 * and -shm files beside the database), or the file is not accessible. */
static int
open_error(const char *path, sqlite3 *db)
{
  CLEANUP_FREE char *dir = cat_xstrdup(path);
  char *slash = strrchr(dir, '/');
  struct stat st;
  if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
  else strcpy(dir, ".");
  if (stat(dir, &st) < 0)
    return bfs_error(-errno, "catalog %s: cannot open: directory %s: %s",
                     path, dir, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return bfs_error(-ENOTDIR, "catalog %s: cannot open: %s is not a "
                     "directory", path, dir);
  if (access(path, F_OK) == 0 && access(path, R_OK | W_OK) < 0)
    return bfs_error(-errno, "catalog %s: cannot open: %s", path,
                     strerror(errno));
  if (access(dir, W_OK | X_OK) < 0)
    return bfs_error(-errno, "catalog %s: cannot open: directory %s: %s "
                     "(the catalog and its -wal/-shm files are created "
                     "there)", path, dir, strerror(errno));
  return bfs_error(-EACCES, "catalog %s: cannot open: %s", path,
                   db ? sqlite3_errmsg(db) : "out of memory");
}

/* A catalog is a cache of the repository: a file SQLite says is not a
 * database, or corrupt, is moved aside (kept for inspection) and rebuilt
 * by the next scan, rather than blocking every mount and listing. */
static int
move_aside(const char *path)
{
  char stamp[32];
  snprintf(stamp, sizeof stamp, "%lld", (long long)time(NULL));
  CLEANUP_FREE char *dest = cat_xasprintf("%s.corrupt-%s", path, stamp);
  if (rename(path, dest) < 0)
    return bfs_error(-errno, "catalog %s is corrupt and cannot be moved "
                     "aside: %s", path, strerror(errno));
  for (int i = 0; i < 2; i++) {
    CLEANUP_FREE char *side = cat_xasprintf("%s%s", path, i ? "-shm" : "-wal");
    unlink(side);
  }
  bfs_log(BFS_LOG_WARN, "catalog %s is not a valid database (corrupt); "
          "moved aside to %s, rebuilding it", path, dest);
  return 0;
}

static int
open_once(const char *path, sqlite3 **out, bool *corrupt)
{
  sqlite3 *db;
  int r;
  *corrupt = false;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                      SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    r = open_error(path, db);
    sqlite3_close(db);
    return r;
  }
  sqlite3_busy_timeout(db, 10000);
  if ((r = exec(db, "PRAGMA journal_mode = WAL")) < 0 ||
      (r = exec(db, "PRAGMA synchronous = NORMAL")) < 0 ||
      (r = migrate(db, path)) < 0) {
    int code = sqlite3_errcode(db);
    *corrupt = code == SQLITE_NOTADB || code == SQLITE_CORRUPT;
    if (code == SQLITE_CANTOPEN)
      r = open_error(path, db);
    sqlite3_close(db);
    return r;
  }
  *out = db;
  return 0;
}

int
db_open(const char *path, sqlite3 **out)
{
  bool corrupt;
  int r = open_once(path, out, &corrupt);
  if (r < 0 && corrupt && (r = move_aside(path)) == 0)
    r = open_once(path, out, &corrupt);
  return r;
}

int
db_get_meta(sqlite3 *db, const char *key, char **val)
{
  sqlite3_stmt *st;
  *val = NULL;
  if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st,
                         NULL) != SQLITE_OK)
    return db_sqlerr(db, "meta");
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
    *val = cat_xstrdup((const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_sqlerr(db, "meta");
}

int
db_set_meta(sqlite3 *db, const char *key, const char *val)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta VALUES (?, ?)", -1,
                         &st, NULL) != SQLITE_OK)
    return db_sqlerr(db, "meta");
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, val, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : db_sqlerr(db, "meta");
}

static char *
col_str(sqlite3_stmt *st, int i)
{
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? cat_xstrdup((const char *)t) : NULL;
}

int
db_load_files(sqlite3 *db, struct scan *s, const char *prefix)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, prefix ?
        "SELECT path, kind, size, alloc, ino, mtime_ns, format, compression,"
        " vsize, encrypted, external, backing, backing_format, backing_path,"
        " error, info, dev, decided FROM files"
        " WHERE path >= ?1 || '/' AND path < ?1 || '0'" :
        "SELECT path, kind, size, alloc, ino, mtime_ns, format, compression,"
        " vsize, encrypted, external, backing, backing_format, backing_path,"
        " error, info, dev, decided FROM files", -1, &st, NULL) != SQLITE_OK)
    return db_sqlerr(db, "load files");
  if (prefix)
    sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    struct scan_file *f = cat_xcalloc(1, sizeof *f);
    f->path = col_str(st, 0);
    f->kind = sqlite3_column_int(st, 1);
    f->size = sqlite3_column_int64(st, 2);
    f->alloc = sqlite3_column_int64(st, 3);
    f->ino = sqlite3_column_int64(st, 4);
    f->mtime_ns = sqlite3_column_int64(st, 5);
    f->format = scan_intern(s, (const char *)sqlite3_column_text(st, 6));
    f->compression = scan_intern(s, (const char *)sqlite3_column_text(st, 7));
    f->vsize = sqlite3_column_int64(st, 8);
    f->encrypted = sqlite3_column_int(st, 9);
    f->external = sqlite3_column_int(st, 10);
    f->backing = col_str(st, 11);
    f->backing_format = scan_intern(s,
                                    (const char *)sqlite3_column_text(st, 12));
    f->backing_path = col_str(st, 13);
    f->error = col_str(st, 14);
    f->info = col_str(st, 15);
    f->dev = sqlite3_column_int64(st, 16);
    f->decided = scan_intern(s, (const char *)sqlite3_column_text(st, 17));
    f->in_db = true;
    if (!f->path) { free(f); continue; }
    scan_file_add(s, f);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : db_sqlerr(db, "load files");
}


int
db_load_dirs(sqlite3 *db, struct scan *s, const char *prefix)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, prefix ?
        "SELECT path, dev, ino, mtime_ns, ctime_ns, listed_ns, files, subdirs"
        " FROM dirs WHERE path >= CAST(?1 || '/' AS BLOB)"
        " AND path < CAST(?1 || '0' AS BLOB)" :
        "SELECT path, dev, ino, mtime_ns, ctime_ns, listed_ns, files, subdirs"
        " FROM dirs", -1, &st, NULL) != SQLITE_OK)
    return db_sqlerr(db, "load directories");
  if (prefix)
    sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *path = sqlite3_column_blob(st, 0);
    size_t plen = (size_t)sqlite3_column_bytes(st, 0);
    const char *files = sqlite3_column_blob(st, 6);
    size_t flen = (size_t)sqlite3_column_bytes(st, 6);
    const char *dirs = sqlite3_column_blob(st, 7);
    size_t dlen = (size_t)sqlite3_column_bytes(st, 7);
    struct scan_listing *l = path && !memchr(path, '\0', plen)
      ? scan_listing_new(path, plen, files, flen, dirs, dlen) : NULL;
    if (!l) continue;                 /* not ours: read the directory */
    l->dev = sqlite3_column_int64(st, 1);
    l->ino = sqlite3_column_int64(st, 2);
    l->mtime_ns = sqlite3_column_int64(st, 3);
    l->ctime_ns = sqlite3_column_int64(st, 4);
    l->listed_ns = sqlite3_column_int64(st, 5);
    l->in_db = true;
    scan_listing_add(s, l);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : db_sqlerr(db, "load directories");
}

static void
bind_str(sqlite3_stmt *st, int i, const char *s)
{
  if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

static int
step(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? 0 : db_sqlerr(db, what);
}

/* Bulk rows go ROWS_BATCH to an INSERT: executing a statement costs
 * about as much again as the row it writes (cursor open and close, halt,
 * reset), and a first scan of 100,000 images writes a million rows. */
#define ROWS_BATCH 32

/* "<head> (?, ?), (?, ?)..." with nrows rows of ncols */
static int
prepare_rows(sqlite3 *db, const char *head, int ncols, int nrows,
             sqlite3_stmt **st)
{
  size_t hl = strlen(head), rl = (size_t)ncols * 3 + 3;
  CLEANUP_FREE char *sql = cat_xmalloc(hl + (size_t)nrows * rl + 1);
  char *p = sql + hl;
  memcpy(sql, head, hl);
  for (int i = 0; i < nrows; i++) {
    *p++ = i ? ',' : ' ';
    *p++ = '(';
    for (int j = 0; j < ncols; j++) {
      if (j) { *p++ = ','; *p++ = ' '; }
      *p++ = '?';
    }
    *p++ = ')';
  }
  *p = '\0';
  if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
    return db_sqlerr(db, head);
  return 0;
}

/* rows [0, n) through bind(st, first parameter - 1, row): ROWS_BATCH to
 * batch, the rest one by one through one */
static int
insert_rows(sqlite3 *db, sqlite3_stmt *batch, sqlite3_stmt *one, int ncols,
            void *const *rows, size_t n,
            void (*bind)(sqlite3_stmt *, int, const void *), const char *what)
{
  size_t i = 0;
  int r = 0;
  for (; n - i >= ROWS_BATCH && r == 0; i += ROWS_BATCH) {
    for (int k = 0; k < ROWS_BATCH; k++)
      bind(batch, k * ncols, rows[i + (size_t)k]);
    r = step(db, batch, what);
  }
  for (; i < n && r == 0; i++) {
    bind(one, 0, rows[i]);
    r = step(db, one, what);
  }
  return r;
}

#define FILE_COLS 18

static void
bind_file(sqlite3_stmt *ins, int p, const void *row)
{
  const struct scan_file *f = row;
  bind_str(ins, p + 1, f->path);
  sqlite3_bind_int(ins, p + 2, f->kind);
  sqlite3_bind_int64(ins, p + 3, (int64_t)f->size);
  sqlite3_bind_int64(ins, p + 4, (int64_t)f->alloc);
  sqlite3_bind_int64(ins, p + 5, (int64_t)f->ino);
  sqlite3_bind_int64(ins, p + 6, f->mtime_ns);
  bind_str(ins, p + 7, f->format);
  bind_str(ins, p + 8, f->compression);
  sqlite3_bind_int64(ins, p + 9, (int64_t)f->vsize);
  sqlite3_bind_int(ins, p + 10, f->encrypted);
  sqlite3_bind_int(ins, p + 11, f->external);
  bind_str(ins, p + 12, f->backing);
  bind_str(ins, p + 13, f->backing_format);
  bind_str(ins, p + 14, f->backing_path);
  bind_str(ins, p + 15, f->error);
  bind_str(ins, p + 16, f->info);
  sqlite3_bind_int64(ins, p + 17, (int64_t)f->dev);
  bind_str(ins, p + 18, f->decided);
}

static int
store_files(sqlite3 *db, struct scan *s)
{
  static const char ins_sql[] = "INSERT OR REPLACE INTO files VALUES";
  sqlite3_stmt *ins = NULL, *ins1 = NULL, *del = NULL;
  struct scan_file **v = NULL;
  size_t n = 0, cap = 0;
  int r = 0;
  if ((r = prepare_rows(db, ins_sql, FILE_COLS, ROWS_BATCH, &ins)) < 0 ||
      (r = prepare_rows(db, ins_sql, FILE_COLS, 1, &ins1)) < 0)
    goto out;
  if (sqlite3_prepare_v2(db, "DELETE FROM files WHERE path = ?", -1, &del,
                         NULL) != SQLITE_OK) {
    r = db_sqlerr(db, "store files");
    goto out;
  }
  for (size_t i = 0; i < s->nfiles && r == 0; i++) {
    struct scan_file *f = s->filev[i];
    if (!f->seen) {
      if (f->in_db) {
        bind_str(del, 1, f->path);
        r = step(db, del, "delete file");
      }
      continue;
    }
    if (!f->dirty) continue;
    CAT_GROW(v, cap, n);
    v[n++] = f;
  }
  if (r == 0)
    r = insert_rows(db, ins, ins1, FILE_COLS, (void *const *)v, n, bind_file,
                    "store file");
out:
  free(v);
  sqlite3_finalize(ins);
  sqlite3_finalize(ins1);
  sqlite3_finalize(del);
  return r;
}

/* BLOB order of the primary key (memcmp, then length) */
static int
cmp_listing(const void *a, const void *b)
{
  const struct scan_listing *x = *(struct scan_listing *const *)a;
  const struct scan_listing *y = *(struct scan_listing *const *)b;
  size_t n = x->path_len < y->path_len ? x->path_len : y->path_len;
  int c = memcmp(x->path, y->path, n);
  return c ? c : (x->path_len > y->path_len) - (x->path_len < y->path_len);
}

#define DIR_COLS 8

static void
bind_dir(sqlite3_stmt *ins, int p, const void *row)
{
  const struct scan_listing *l = row;
  sqlite3_bind_blob(ins, p + 1, l->path, (int)l->path_len, SQLITE_STATIC);
  sqlite3_bind_int64(ins, p + 2, (int64_t)l->dev);
  sqlite3_bind_int64(ins, p + 3, (int64_t)l->ino);
  sqlite3_bind_int64(ins, p + 4, l->mtime_ns);
  sqlite3_bind_int64(ins, p + 5, l->ctime_ns);
  sqlite3_bind_int64(ins, p + 6, l->listed_ns);
  sqlite3_bind_blob(ins, p + 7, SCAN_LISTING_FILES(l), (int)l->files_len,
                    SQLITE_STATIC);
  sqlite3_bind_blob(ins, p + 8, SCAN_LISTING_DIRS(l), (int)l->dirs_len,
                    SQLITE_STATIC);
}

/* the listings read this scan; those of directories gone (or no longer
 * reached) are dropped.  Written in key order: the hash table's order
 * would insert at random places of the B-tree, and a fresh catalog's
 * 100,000 listings then cost more than all the files' rows. */
static int
store_dirs(sqlite3 *db, struct scan *s)
{
  static const char ins_sql[] = "INSERT OR REPLACE INTO dirs VALUES";
  sqlite3_stmt *ins = NULL, *ins1 = NULL, *del = NULL;
  struct bfs_htab_iter it;
  struct scan_listing **v = NULL;
  size_t n = 0, cap = 0, nput = 0;
  int r = 0;
  if ((r = prepare_rows(db, ins_sql, DIR_COLS, ROWS_BATCH, &ins)) < 0 ||
      (r = prepare_rows(db, ins_sql, DIR_COLS, 1, &ins1)) < 0)
    goto out;
  if (sqlite3_prepare_v2(db, "DELETE FROM dirs WHERE path = ?", -1, &del,
                         NULL) != SQLITE_OK) {
    r = db_sqlerr(db, "store directories");
    goto out;
  }
  bfs_htab_iter_init(&it, &s->dirs);
  for (struct bfs_hlink *h; (h = bfs_htab_iter_next(&it)); ) {
    struct scan_listing *l = bfs_container_of(h, struct scan_listing, h);
    if (l->seen ? l->dirty : l->in_db) {
      CAT_GROW(v, cap, n);
      v[n++] = l;
    }
  }
  if (n > 1) qsort(v, n, sizeof *v, cmp_listing);
  /* deletions first, then the rows to write, each in key order */
  for (size_t i = 0; i < n && r == 0; i++) {
    struct scan_listing *l = v[i];
    if (l->seen) {
      v[nput++] = l;
      continue;
    }
    sqlite3_bind_blob(del, 1, l->path, (int)l->path_len, SQLITE_STATIC);
    r = step(db, del, "delete directory");
  }
  if (r == 0)
    r = insert_rows(db, ins, ins1, DIR_COLS, (void *const *)v, nput, bind_dir,
                    "store directory");
out:
  free(v);
  sqlite3_finalize(ins);
  sqlite3_finalize(ins1);
  sqlite3_finalize(del);
  return r;
}

static int
delete_vm(sqlite3 *db, sqlite3_stmt **del, int64_t id)
{
  int r = 0;
  for (int i = 0; i < 4 && r == 0; i++) {
    sqlite3_bind_int64(del[i], 1, id);
    r = step(db, del[i], "delete VM");
  }
  return r;
}

/* A point in time's recipe is chain_len rows (550,000 of them for
 * 100,000 incremental images): each VM's go ROWS_BATCH to an INSERT. */
#define CHAIN_COLS 6
struct chain_row {
  int64_t bid;
  size_t disk, depth;
  const char *path, *driver, *options;
};

static void
bind_chain(sqlite3_stmt *ins, int p, const void *row)
{
  const struct chain_row *c = row;
  sqlite3_bind_int64(ins, p + 1, c->bid);
  sqlite3_bind_int64(ins, p + 2, (int64_t)c->disk);
  sqlite3_bind_int64(ins, p + 3, (int64_t)c->depth);
  bind_str(ins, p + 4, c->path);
  bind_str(ins, p + 5, c->driver);
  bind_str(ins, p + 6, c->options);
}

static int
store_vm(sqlite3 *db, struct scan *s, struct model_vm *vm, sqlite3_stmt **st,
         sqlite3_stmt *chains)
{
  struct chain_row pend[ROWS_BATCH];       /* a VM's layers, batched */
  void *rows[ROWS_BATCH];
  size_t npend = 0;
  char hs[32];
  int r;
  for (size_t i = 0; i < ROWS_BATCH; i++)
    rows[i] = &pend[i];
  snprintf(hs, sizeof hs, "%016" PRIx64, vm->hash);
  bind_str(st[0], 1, vm->name);
  bind_str(st[0], 2, s->backups[vm->first].source);
  bind_str(st[0], 3, hs);
  if ((r = step(db, st[0], "store vm")) < 0) return r;
  int64_t vm_id = sqlite3_last_insert_rowid(db);

  for (size_t i = vm->first; i < vm->first + vm->n && r == 0; i++) {
    struct model_backup *b = &s->backups[i];
    sqlite3_bind_int64(st[1], 1, vm_id);
    bind_str(st[1], 2, b->name);
    sqlite3_bind_int64(st[1], 3, b->time);
    bind_str(st[1], 4, b->source);
    bind_str(st[1], 5, b->domain_xml);
    bind_str(st[1], 6, b->status);
    bind_str(st[1], 7, b->extra);
    if ((r = step(db, st[1], "store backup")) < 0) break;
    int64_t bid = sqlite3_last_insert_rowid(db);
    for (size_t j = 0; j < b->ndisks && r == 0; j++) {
      struct model_disk *d = &b->disks[j];
      struct scan_file *f = d->preset ? NULL : scan_file_find(s, d->top);
      bool ok = f && f->format;
      sqlite3_bind_int64(st[2], 1, bid);
      sqlite3_bind_int64(st[2], 2, (int64_t)j);
      bind_str(st[2], 3, d->name);
      bind_str(st[2], 4, d->top);
      bind_str(st[2], 5, d->volume);
      if (d->preset) {          /* the layout's own figures */
        sqlite3_bind_int64(st[2], 6, (int64_t)d->vsize);
        sqlite3_bind_int64(st[2], 7, (int64_t)d->alloc);
        bind_str(st[2], 8, d->format);
        bind_str(st[2], 9, d->compression);
      }
      else {
        sqlite3_bind_int64(st[2], 6, ok ? (int64_t)f->vsize : 0);
        sqlite3_bind_int64(st[2], 7, f ? (int64_t)f->alloc : 0);
        bind_str(st[2], 8, ok ? f->format : NULL);
        bind_str(st[2], 9, !ok ? NULL : d->compression ? d->compression
                                                     : f->compression);
      }
      sqlite3_bind_int(st[2], 10, f && f->encrypted);
      bind_str(st[2], 11, d->status);
      sqlite3_bind_int64(st[2], 12, (int64_t)d->chain_len);
      if ((r = step(db, st[2], "store disk")) < 0) break;
      for (size_t k = 0; k < d->chain_len && r == 0; k++) {
        pend[npend++] = (struct chain_row){ bid, j, k, d->chain[k],
          d->drivers[k], d->options ? d->options[k] : NULL };
        if (npend == ROWS_BATCH) {
          r = insert_rows(db, chains, st[3], CHAIN_COLS, rows, npend,
                          bind_chain, "store chain");
          npend = 0;
        }
      }
    }
  }
  if (r == 0)                                  /* the VM's last few */
    r = insert_rows(db, chains, st[3], CHAIN_COLS, rows, npend, bind_chain,
                    "store chain");
  return r;
}

/* Rewrite the VMs whose hash differs from the stored one; drop the VMs
 * that are gone (all of them, or only s->only_vm in a partial scan). */
static int
store_model(sqlite3 *db, struct scan *s, bool *changed)
{
  static const char *const sql[] = {
    "INSERT INTO vms (name, source, hash) VALUES (?1, ?2, ?3)",
    "INSERT INTO backups (vm_id, name, time, source, domain_xml, status, extra)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    "INSERT INTO disks VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    "INSERT INTO chains VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    "DELETE FROM chains WHERE backup_id IN"
    " (SELECT id FROM backups WHERE vm_id = ?1)",
    "DELETE FROM disks WHERE backup_id IN"
    " (SELECT id FROM backups WHERE vm_id = ?1)",
    "DELETE FROM backups WHERE vm_id = ?1",
    "DELETE FROM vms WHERE id = ?1",
    "SELECT id, name, hash FROM vms WHERE ?1 IS NULL OR name = ?1",
  };
  enum { NST = sizeof sql / sizeof sql[0] };
  /* and st[NST]: sql[3], ROWS_BATCH rows at a time */
  sqlite3_stmt *st[NST + 1] = { 0 };
  struct cat_map model;
  int r = 0, rc;

  cat_map_init(&model);
  for (size_t i = 0; i < s->nvms; i++)
    cat_map_put(&model, s->vms[i].name, &s->vms[i]);
  for (size_t i = 0; i < NST; i++)
    if (sqlite3_prepare_v2(db, sql[i], -1, &st[i], NULL) != SQLITE_OK) {
      r = db_sqlerr(db, "store model");
      goto out;
    }
  if ((r = prepare_rows(db, "INSERT INTO chains VALUES", CHAIN_COLS,
                        ROWS_BATCH, &st[NST])) < 0)
    goto out;

  /* stored VMs: unchanged ones are kept (and marked), others deleted */
  struct keep { int64_t id; struct model_vm *vm; } *gone = NULL;
  size_t ngone = 0, gcap = 0;
  bool *same = cat_xcalloc(s->nvms + 1, sizeof *same);
  bind_str(st[8], 1, s->only_vm);
  while ((rc = sqlite3_step(st[8])) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st[8], 1);
    const char *hash = (const char *)sqlite3_column_text(st[8], 2);
    struct model_vm *vm = name ? cat_map_get(&model, name) : NULL;
    char hs[32];
    if (vm) snprintf(hs, sizeof hs, "%016" PRIx64, vm->hash);
    if (vm && hash && !strcmp(hash, hs)) {
      same[vm - s->vms] = true;
      continue;
    }
    CAT_GROW(gone, gcap, ngone);
    gone[ngone++] = (struct keep){ sqlite3_column_int64(st[8], 0), vm };
  }
  sqlite3_reset(st[8]);
  if (rc != SQLITE_DONE) r = db_sqlerr(db, "store model");
  for (size_t i = 0; i < ngone && r == 0; i++)
    r = delete_vm(db, st + 4, gone[i].id);
  for (size_t i = 0; i < s->nvms && r == 0; i++)
    if (!same[i])
      r = store_vm(db, s, &s->vms[i], st, st[NST]);
  s->changed_vms = 0;
  for (size_t i = 0; i < ngone; i++)
    if (!gone[i].vm) s->changed_vms++;           /* removed */
  for (size_t i = 0; i < s->nvms; i++)
    if (!same[i]) s->changed_vms++;              /* added or changed */
  *changed = s->changed_vms > 0;
  free(same);
  free(gone);
out:
  for (size_t i = 0; i <= NST; i++) sqlite3_finalize(st[i]);
  cat_map_free(&model);
  return r;
}

int
db_store(sqlite3 *db, struct scan *s)
{
  int r;
  bool changed = false;
  CLEANUP_FREE char *scanned = NULL;

  if ((r = exec(db, "BEGIN IMMEDIATE")) < 0) return r;
  if ((r = store_files(db, s)) < 0 || (r = store_dirs(db, s)) < 0 ||
      (r = store_model(db, s, &changed)) < 0 ||
      (r = db_get_meta(db, "scanned_at", &scanned)) < 0)
    goto fail;
  if (changed || !scanned) {
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    if ((r = db_set_meta(db, "scanned_at", ts)) < 0)
      goto fail;
  }
  if ((r = exec(db, "COMMIT")) < 0) goto fail;
  return 0;
fail:
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return r;
}

int
db_vm_source(sqlite3 *db, const char *vm, char **source)
{
  sqlite3_stmt *st;
  *source = NULL;
  if (sqlite3_prepare_v2(db, "SELECT source FROM vms WHERE name = ?", -1, &st,
                         NULL) != SQLITE_OK)
    return db_sqlerr(db, "VM source");
  sqlite3_bind_text(st, 1, vm, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    *source = col_str(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_sqlerr(db, "VM source");
}

int
db_set_verified(sqlite3 *db, const char *vm, const char *backup, bool ok,
                const char *result, int64_t at)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO verified (vm, backup, ok,"
                         " result, at) VALUES (?1, ?2, ?3, ?4, ?5)", -1, &st,
                         NULL) != SQLITE_OK)
    return db_sqlerr(db, "record verify result");
  sqlite3_bind_text(st, 1, vm, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, backup, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, ok);
  sqlite3_bind_text(st, 4, result, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, at);
  int r = step(db, st, "record verify result");
  sqlite3_finalize(st);
  return r;
}
