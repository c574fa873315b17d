/* query.c — reading the catalog back: VM names and a VM's backups.
 *
 * Three statements per catalog_backups call (backups, their disks, their
 * chains), each walking an index in backup-id order, so listing one VM
 * costs the same however big the repository is.  Each chain layer comes
 * with the identity the scan recorded for its file (files table), which
 * openers check before serving the file.  Serialised by cat->lock:
 * FUSE worker threads call these concurrently.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog-int.h"
#include "blk/luks.h"
#include "common/error.h"

static char *
col_str(sqlite3_stmt *st, int i)
{
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? cat_xstrdup((const char *)t) : NULL;
}

int
catalog_vms(catalog_t *cat, char ***names, size_t *n)
{
  sqlite3_stmt *st;
  char **v = NULL;
  size_t cnt = 0, cap = 0;
  int rc;

  pthread_mutex_lock(&cat->lock);
  if (sqlite3_prepare_v2(cat->db, "SELECT name FROM vms ORDER BY name", -1,
                         &st, NULL) != SQLITE_OK) {
    rc = db_sqlerr(cat->db, "list VMs");
    pthread_mutex_unlock(&cat->lock);
    return rc;
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    CAT_GROW(v, cap, cnt);
    v[cnt++] = col_str(st, 0);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) {
    rc = db_sqlerr(cat->db, "list VMs");
    pthread_mutex_unlock(&cat->lock);
    catalog_names_free(v, cnt);
    return rc;
  }
  pthread_mutex_unlock(&cat->lock);
  *names = v;
  *n = cnt;
  return 0;
}

void
catalog_names_free(char **names, size_t n)
{
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

/* Backups are stored in (vm, time) order, so ids ascend with time and the
 * disk and chain rows come in the same order: advance a cursor. */
static int
find_backup(const int64_t *ids, size_t n, int64_t id, size_t *hint)
{
  while (*hint < n && ids[*hint] < id) (*hint)++;
  return *hint < n && ids[*hint] == id ? 0 : -1;
}

static int
load(catalog_t *cat, const char *vm, struct catalog_backup **out, size_t *n)
{
  static const char *const sql[] = {
    "SELECT b.id, b.name, b.time, b.source, b.domain_xml, b.status, b.extra,"
    " w.ok, w.result, w.at"
    " FROM backups b JOIN vms v ON v.id = b.vm_id"
    " LEFT JOIN verified w ON w.vm = v.name AND w.backup = b.name"
    " WHERE v.name = ?1 ORDER BY b.id",
    "SELECT d.backup_id, d.idx, d.name, d.image, d.volume, d.virtual_size,"
    " d.allocated, d.format, d.compression, d.encrypted, d.status, d.depth"
    " FROM vms v JOIN backups b ON b.vm_id = v.id"
    " JOIN disks d ON d.backup_id = b.id WHERE v.name = ?1"
    " ORDER BY d.backup_id, d.idx",
    "SELECT c.backup_id, c.disk_idx, c.depth, c.path,"
    " f.dev, f.ino, f.size, f.mtime_ns, c.driver, c.options"
    " FROM vms v JOIN backups b ON b.vm_id = v.id"
    " JOIN chains c ON c.backup_id = b.id"
    " LEFT JOIN files f ON f.path = c.path WHERE v.name = ?1"
    " ORDER BY c.backup_id, c.disk_idx, c.depth",
  };
  sqlite3_stmt *st[3] = { 0 };
  struct catalog_backup *bs = NULL;
  int64_t *ids = NULL;
  size_t cnt = 0, cap = 0, idcap = 0;
  int rc, r = 0;

  for (int i = 0; i < 3; i++) {
    if (sqlite3_prepare_v2(cat->db, sql[i], -1, &st[i], NULL) != SQLITE_OK) {
      r = db_sqlerr(cat->db, "list backups");
      goto out;
    }
    sqlite3_bind_text(st[i], 1, vm, -1, SQLITE_STATIC);
  }
  while ((rc = sqlite3_step(st[0])) == SQLITE_ROW) {
    CAT_GROW(bs, cap, cnt);
    CAT_GROW(ids, idcap, cnt);
    struct catalog_backup *b = &bs[cnt];
    memset(b, 0, sizeof *b);
    ids[cnt++] = sqlite3_column_int64(st[0], 0);
    b->vm = cat_xstrdup(vm);
    b->name = col_str(st[0], 1);
    b->time = sqlite3_column_int64(st[0], 2);
    b->source = col_str(st[0], 3);
    b->domain_xml = col_str(st[0], 4);
    b->status = col_str(st[0], 5);
    b->extra = col_str(st[0], 6);
    b->verify_ok = sqlite3_column_int(st[0], 7);
    b->verify_result = col_str(st[0], 8);
    b->verified_at = sqlite3_column_int64(st[0], 9);
  }
  if (rc != SQLITE_DONE) { r = db_sqlerr(cat->db, "list backups"); goto out; }
  size_t hint = 0;
  while ((rc = sqlite3_step(st[1])) == SQLITE_ROW) {
    if (find_backup(ids, cnt, sqlite3_column_int64(st[1], 0), &hint) < 0)
      continue;
    struct catalog_backup *b = &bs[hint];
    b->disks = cat_xrealloc(b->disks, b->ndisks + 1, sizeof *b->disks);
    struct catalog_disk *d = &b->disks[b->ndisks++];
    memset(d, 0, sizeof *d);
    d->name = col_str(st[1], 2);
    d->image = col_str(st[1], 3);
    d->volume = col_str(st[1], 4);
    d->virtual_size = sqlite3_column_int64(st[1], 5);
    d->allocated = sqlite3_column_int64(st[1], 6);
    d->format = col_str(st[1], 7);
    d->compression = col_str(st[1], 8);
    d->encrypted = sqlite3_column_int(st[1], 9);
    d->status = col_str(st[1], 10);
  }
  if (rc != SQLITE_DONE) r = db_sqlerr(cat->db, "list disks");
  hint = 0;
  while (r == 0 && (rc = sqlite3_step(st[2])) == SQLITE_ROW) {
    if (find_backup(ids, cnt, sqlite3_column_int64(st[2], 0), &hint) < 0)
      continue;
    struct catalog_backup *b = &bs[hint];
    size_t di = sqlite3_column_int64(st[2], 1);
    if (di >= b->ndisks) continue;
    struct catalog_disk *d = &b->disks[di];
    d->chain = cat_xrealloc(d->chain, d->chain_len + 1, sizeof *d->chain);
    d->chain_id = cat_xrealloc(d->chain_id, d->chain_len + 1,
                               sizeof *d->chain_id);
    d->chain_driver = cat_xrealloc(d->chain_driver, d->chain_len + 1,
                                   sizeof *d->chain_driver);
    d->chain_options = cat_xrealloc(d->chain_options, d->chain_len + 1,
                                    sizeof *d->chain_options);
    d->chain_driver[d->chain_len] = col_str(st[2], 8);
    d->chain_options[d->chain_len] = col_str(st[2], 9);
    d->chain_id[d->chain_len] = (struct bfs_file_id){
      .dev = (uint64_t)sqlite3_column_int64(st[2], 4),
      .ino = (uint64_t)sqlite3_column_int64(st[2], 5),   /* 0: no record */
      .size = (uint64_t)sqlite3_column_int64(st[2], 6),
      .mtime_ns = sqlite3_column_int64(st[2], 7),
    };
    d->chain[d->chain_len++] = col_str(st[2], 3);
  }
  if (r == 0 && rc != SQLITE_DONE) r = db_sqlerr(cat->db, "list chains");
out:
  for (int i = 0; i < 3; i++) sqlite3_finalize(st[i]);
  free(ids);
  if (r < 0) { catalog_backups_free(bs, cnt); return r; }
  *out = bs;
  *n = cnt;
  return 0;
}

/* Encrypted (LUKS) disks read fine with a key; a command given none shows
 * them as needing one (the stored status is the key-independent truth). */
static void
need_key(struct catalog_backup *bs, size_t n)
{
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < bs[i].ndisks; j++) {
      struct catalog_disk *d = &bs[i].disks[j];
      if (!d->encrypted || strcmp(d->status, "ok")) continue;
      free(d->status);
      d->status = cat_xasprintf("%s: " BLK_LUKS_NEED_KEY, d->image);
      if (!strcmp(bs[i].status, "ok")) {
        free(bs[i].status);
        bs[i].status = cat_xasprintf("%s: %s", d->name, d->status);
      }
    }
}

int
catalog_backups(catalog_t *cat, const char *vm, struct catalog_backup **out,
                size_t *n)
{
  pthread_mutex_lock(&cat->lock);
  /* one read transaction: the three statements see one snapshot even if a
   * scan commits meanwhile (WAL) */
  if (sqlite3_exec(cat->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
    int e = db_sqlerr(cat->db, "begin");
    pthread_mutex_unlock(&cat->lock);
    return e;
  }
  int r = load(cat, vm, out, n);
  sqlite3_exec(cat->db, "COMMIT", NULL, NULL, NULL);
  if (r == 0 && !cat->luks_key)
    need_key(*out, *n);
  if (r == 0 && *n == 0) {
    /* tell "no such VM" from "a VM without backups" (which cannot exist) */
    free(*out);
    r = bfs_error(-ENOENT, "%s: no VM named '%s' in the catalog", cat->repo, vm);
  }
  pthread_mutex_unlock(&cat->lock);
  return r;
}

void
catalog_backups_free(struct catalog_backup *b, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < b[i].ndisks; j++) {
      struct catalog_disk *d = &b[i].disks[j];
      free(d->name); free(d->image); free(d->format); free(d->compression);
      free(d->status); free(d->volume);
      for (size_t k = 0; k < d->chain_len; k++) {
        free(d->chain[k]);
        free(d->chain_driver[k]);
        free(d->chain_options[k]);
      }
      free(d->chain);
      free(d->chain_id);
      free(d->chain_driver);
      free(d->chain_options);
    }
    free(b[i].disks); free(b[i].vm); free(b[i].name); free(b[i].source);
    free(b[i].domain_xml); free(b[i].status); free(b[i].extra);
    free(b[i].verify_result);
  }
  free(b);
}

int
catalog_set_verified(catalog_t *cat, const char *vm, const char *backup,
                     bool ok, const char *result, int64_t at)
{
  pthread_mutex_lock(&cat->lock);
  int r = db_set_verified(cat->db, vm, backup, ok, result, at);
  pthread_mutex_unlock(&cat->lock);
  return r;
}

int
catalog_find_backup(const struct catalog_backup *b, size_t n, const char *vm,
                    const char *time)
{
  if (n == 0)
    return bfs_error(-ENOENT, "%s: no backups of this VM in the repository",
                     vm);
  if (!strcmp(time, "latest"))
    return (int)(n - 1);
  for (size_t i = 0; i < n; i++)
    if (!strcmp(b[i].name, time))
      return (int)i;
  return bfs_error(-ENOENT, "%s@%s: no such point in time (%s .. %s)", vm,
                   time, b[0].name, b[n - 1].name);
}

int
catalog_parse_vmtime(const char *arg, char **vm, char **time)
{
  const char *at = strrchr(arg, '@');

  *vm = *time = NULL;
  if (at == arg)
    return bfs_error(-EINVAL, "%s: expected VM or VM@TIME", arg);
  *vm = at ? strndup(arg, at - arg) : strdup(arg);
  *time = strdup(at && at[1] ? at + 1 : "latest");
  if (!*vm || !*time) {
    free(*vm);
    free(*time);
    *vm = *time = NULL;
    return bfs_error(-ENOMEM, "out of memory");
  }
  return 0;
}
