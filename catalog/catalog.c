/* catalog.c — opening and closing a catalog.
 *
 * One SQLite file per repository, outside it: $XDG_CACHE_HOME/backupfs/
 * (~/.cache/backupfs/), or /var/cache/backupfs/ for root, named after the
 * repository's realpath ("/srv/backups" -> "srv_backups-<hash>.db"; the
 * hash of the whole path keeps "/a_b" and "/a/b" apart).  --catalog FILE
 * overrides.  A catalog file of another repository that still exists is
 * refused, naming both; one whose repository is gone (moved or renamed) is
 * emptied (its cache would be wrong) and rebuilt by the next scan.
 *
 * More roots (KBOSS secondary stores, catalog_opts.extra_repos) belong to
 * the catalog of the first: remembered in its meta table ("extra_repos",
 * realpaths one a line) like the listBackups export, replaced when given
 * again.  Roots must be distinct directories, none inside another (a file
 * would have two locators).  Each root has a descriptor the catalog keeps
 * open; locators of root i > 0 carry the prefix ".root<i>/" (catalog.h).
 * A repository that is no directory but a layout's store ("rbd:POOL",
 * catalog_repo_not_dir) is kept as the string given and named the same
 * way ("rbd_POOL-<hash>.db").
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdio.h>

#include <libxml/parser.h>
#include <xxhash.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/beneath.h"
#include "common/kvopt.h"

static int
mkdir_p(char *dir, mode_t mode)
{
  struct stat st;
  if (stat(dir, &st) == 0)
    return S_ISDIR(st.st_mode) ? 0 : bfs_error(-ENOTDIR, "%s: not a directory", dir);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    int r = mkdir_p(dir, mode);
    *slash = '/';
    if (r < 0) return r;
  }
  if (mkdir(dir, mode) < 0 && errno != EEXIST)
    return bfs_error(-errno, "%s: cannot create catalog directory: %s", dir,
                     strerror(errno));
  return 0;
}

static int
default_path(const char *repo, char **out)
{
  CLEANUP_FREE char *dir = NULL;
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (geteuid() == 0 && !xdg)
    dir = cat_xstrdup("/var/cache/backupfs");
  else if (xdg && xdg[0] == '/')
    dir = cat_xasprintf("%s/backupfs", xdg);
  else if (home && home[0] == '/')
    dir = cat_xasprintf("%s/.cache/backupfs", home);
  else
    return bfs_error(-ENOENT, "no catalog directory: set XDG_CACHE_HOME or "
                     "HOME, or use --catalog FILE");
  int r = mkdir_p(dir, geteuid() == 0 ? 0755 : 0700);
  if (r < 0) return r;

  char name[128];
  size_t n = 0;
  for (const char *p = repo + (repo[0] == '/'); *p && n < 96; p++)
    name[n++] = (*p == '/' || *p == ' ' || *p == ':' ||
                 (unsigned char)*p < 0x20) ? '_' : *p;
  if (n == 0) name[n++] = '_';
  name[n] = '\0';
  *out = cat_xasprintf("%s/%s-%08llx.db", dir, name,
                       (unsigned long long)(XXH3_64bits(repo, strlen(repo)) &
                                            0xffffffffu));
  return 0;
}

static int
claim_repo(catalog_t *cat)
{
  CLEANUP_FREE char *old = NULL;
  int r = db_get_meta(cat->db, "repo", &old);
  struct stat st;
  if (r < 0 || (old && !strcmp(old, cat->repo))) return r;
  /* another repository's catalog is refused while that repository is
   * there; one whose repository is gone (moved, renamed) is rebuilt */
  if (old && stat(old, &st) == 0)
    return bfs_error(-EEXIST, "catalog %s belongs to the repository %s, not "
                     "to %s: refusing to overwrite it (use another "
                     "--catalog FILE)", cat->db_path, old, cat->repo);
  if (old)
    bfs_log(BFS_LOG_WARN, "catalog %s was for %s, which is gone; "
            "rebuilding it for %s", cat->db_path, old, cat->repo);
  if (sqlite3_exec(cat->db, "BEGIN IMMEDIATE; DELETE FROM files;"
                   " DELETE FROM meta; DELETE FROM chains; DELETE FROM disks;"
                   " DELETE FROM backups; DELETE FROM vms;", NULL, NULL,
                   NULL) != SQLITE_OK) {
    r = db_sqlerr(cat->db, "claim");
    sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
    return r;
  }
  if ((r = db_set_meta(cat->db, "repo", cat->repo)) < 0) {
    sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
    return r;
  }
  return sqlite3_exec(cat->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK
         ? 0 : db_sqlerr(cat->db, "claim");
}

/* Source options are remembered like the export: given once (to scan or
 * mount), later commands on the same catalog use them; a name given again
 * replaces its value. */
static int
merge_source_options(catalog_t *cat, const char *given)
{
  int r = db_get_meta(cat->db, "source_options", &cat->source_options);
  if (r < 0 || !given || !*given)
    return r;
  char *merged = cat->source_options ? cat_xstrdup(cat->source_options) : NULL;
  for (const char *p = given; *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    if (eq && eq > p) {
      CLEANUP_FREE char *name = cat_xstrndup(p, eq - p);
      CLEANUP_FREE char *value = cat_xstrndup(eq + 1, len - (eq - p) - 1);
      char *next = bfs_kvopt_set(merged, name, value);
      if (!next) abort();
      free(merged);
      merged = next;
    }
    p = end ? end + 1 : p + len;
  }
  free(cat->source_options);
  cat->source_options = merged;
  return db_set_meta(cat->db, "source_options", merged);
}

static bool
inside(const char *a, const char *b)       /* a is b or below it */
{
  size_t l = strlen(b);
  return !strncmp(a, b, l) && (a[l] == '\0' || a[l] == '/' || l == 1);
}

static int
add_root(catalog_t *cat, const char *path)
{
  struct stat st;
  char *real = realpath(path, NULL);
  if (!real || stat(real, &st) < 0) {
    int r = bfs_error(-errno, "%s: %s", path, strerror(errno));
    free(real);
    return r;
  }
  if (!S_ISDIR(st.st_mode)) {
    free(real);
    return bfs_error(-ENOTDIR, "%s: not a directory", path);
  }
  for (size_t i = 0; i < cat->nroots; i++)
    if (inside(real, cat->roots[i]) || inside(cat->roots[i], real)) {
      int r = bfs_error(-EINVAL, "repository roots %s and %s overlap: give "
                        "each store once", cat->roots[i], real);
      free(real);
      return r;
    }
  cat->roots = cat_xrealloc(cat->roots, cat->nroots + 1, sizeof *cat->roots);
  cat->root_fd = cat_xrealloc(cat->root_fd, cat->nroots + 1,
                              sizeof *cat->root_fd);
  cat->roots[cat->nroots] = real;
  cat->root_fd[cat->nroots] = -1;
  int fd = bfs_dir_open(real);
  cat->nroots++;
  if (fd < 0)
    return fd;
  cat->root_fd[cat->nroots - 1] = fd;
  return 0;
}

/* the roots after the first: given (remembered then) or remembered */
static int
open_roots(catalog_t *cat, const struct catalog_opts *opts)
{
  CLEANUP_FREE char *list = NULL;
  int r;

  if (cat->not_dir) {           /* rbd:POOL: one store, no directory */
    if (opts->nextra_repos)
      return bfs_error(-EINVAL, "%s: a repository that is no directory "
                       "takes no more stores", cat->repo);
    cat->roots = cat_xcalloc(1, sizeof *cat->roots);
    cat->root_fd = cat_xcalloc(1, sizeof *cat->root_fd);
    cat->roots[0] = cat_xstrdup(cat->repo);
    cat->root_fd[0] = -1;
    cat->nroots = 1;
    return 0;
  }
  if ((r = add_root(cat, cat->repo)) < 0)
    return r;
  if (opts->nextra_repos) {
    size_t len = 1;
    for (size_t i = 0; i < opts->nextra_repos; i++) {
      if ((r = add_root(cat, opts->extra_repos[i])) < 0)
        return r;
      len += strlen(cat->roots[i + 1]) + 1;
    }
    list = cat_xmalloc(len);
    char *p = list;
    for (size_t i = 1; i < cat->nroots; i++)
      p += sprintf(p, "%s%s", i > 1 ? "\n" : "", cat->roots[i]);
    *p = '\0';
    return db_set_meta(cat->db, "extra_repos", list);
  }
  if ((r = db_get_meta(cat->db, "extra_repos", &list)) < 0 || !list)
    return r;
  for (char *save = NULL, *tok = strtok_r(list, "\n", &save); tok;
       tok = strtok_r(NULL, "\n", &save))
    if ((r = add_root(cat, tok)) < 0)
      return bfs_error_prefix(r, "a store this catalog remembers: ");
  return 0;
}

int
catalog_open(const char *repo, const struct catalog_opts *opts,
             catalog_t **out)
{
  struct catalog_opts none = { 0 };
  struct stat st;
  int r;

  if (!opts) opts = &none;
  xmlInitParser();
  catalog_t *cat = cat_xcalloc(1, sizeof *cat);
  pthread_mutex_init(&cat->lock, NULL);
  pthread_mutex_init(&cat->scan_lock, NULL);
  cat->progress = opts->progress;
  cat->show_removed = opts->show_removed;
  cat->luks_key = opts->luks_key;

  if ((cat->not_dir = catalog_repo_not_dir(repo)))
    cat->repo = cat_xstrdup(repo);   /* a layout's store: no path */
  else
    cat->repo = realpath(repo, NULL);
  if (cat->not_dir)
    ;
  else if (!cat->repo || stat(cat->repo, &st) < 0) {
    r = bfs_error(-errno, "%s: %s", repo, strerror(errno));
    goto fail;
  }
  else if (!S_ISDIR(st.st_mode)) {
    r = bfs_error(-ENOTDIR, "%s: not a directory", repo);
    goto fail;
  }
  if (opts->catalog_path)
    cat->db_path = cat_xstrdup(opts->catalog_path);
  else if ((r = default_path(cat->repo, &cat->db_path)) < 0)
    goto fail;
  if ((r = db_open(cat->db_path, &cat->db)) < 0 || (r = claim_repo(cat)) < 0)
    goto fail;

  /* the listBackups export is remembered, so later mounts use it too */
  if (opts->cloudstack_backups) {
    cat->cloudstack_backups = realpath(opts->cloudstack_backups, NULL);
    if (!cat->cloudstack_backups) {
      r = bfs_error(-errno, "%s: %s", opts->cloudstack_backups, strerror(errno));
      goto fail;
    }
    if ((r = db_set_meta(cat->db, "cloudstack_backups",
                         cat->cloudstack_backups)) < 0)
      goto fail;
  }
  else if ((r = db_get_meta(cat->db, "cloudstack_backups",
                            &cat->cloudstack_backups)) < 0)
    goto fail;
  if ((r = merge_source_options(cat, opts->source_options)) < 0 ||
      (r = open_roots(cat, opts)) < 0)
    goto fail;
  *out = cat;
  return 0;
fail:
  catalog_close(cat);
  return r;
}

void
catalog_close(catalog_t *cat)
{
  if (!cat) return;
  if (cat->repo_handle && cat->repo_handle_free)
    cat->repo_handle_free(cat->repo_handle);
  sqlite3_close(cat->db);
  sqlite3_close(cat->scan_db);
  pthread_mutex_destroy(&cat->lock);
  pthread_mutex_destroy(&cat->scan_lock);
  for (size_t i = 0; i < cat->nroots; i++) {
    if (cat->root_fd[i] >= 0) close(cat->root_fd[i]);
    free(cat->roots[i]);
  }
  free(cat->roots);
  free(cat->root_fd);
  free(cat->repo);
  free(cat->db_path);
  free(cat->cloudstack_backups);
  free(cat->source_options);
  free(cat);
}

const char *
catalog_source_options(const catalog_t *cat)
{
  return cat->source_options;
}

int
cat_source_option(const catalog_t *cat, const char *name, char **value)
{
  return bfs_kvopt_get(cat->source_options, name, value);
}

const char *
catalog_repo(const catalog_t *cat)
{
  return cat->repo;
}

const char *
catalog_path(const catalog_t *cat)
{
  return cat->db_path;
}

size_t
catalog_nroots(const catalog_t *cat)
{
  return cat->nroots;
}

const char *
catalog_root_path(const catalog_t *cat, size_t i)
{
  return i < cat->nroots ? cat->roots[i] : NULL;
}

int
catalog_root_fd(const catalog_t *cat, size_t i)
{
  return i < cat->nroots ? cat->root_fd[i] : -EBADF;
}

int
catalog_locator_root(const catalog_t *cat, const char *loc, const char **rel)
{
  int i = resolve_root_of(cat->nroots, loc, rel);
  return i < 0 ? bfs_error(-ENOENT, "%s: names no root of the repository",
                           loc) : i;
}

int
catalog_open_locator(const catalog_t *cat, const char *loc)
{
  const char *rel;
  int i = catalog_locator_root(cat, loc, &rel);
  if (i < 0)
    return i;
  return bfs_open_beneath(cat->root_fd[i], cat->roots[i], rel);
}

int
cat_root_at(const catalog_t *cat, int root0_fd, const char *loc,
            const char **rel, const char **root)
{
  int i = resolve_root_of(cat->nroots ? cat->nroots : 1, loc, rel);
  if (i < 0) {
    errno = ENOENT;
    return -1;
  }
  if (root) *root = i ? cat->roots[i] : cat->repo;
  return i ? cat->root_fd[i] : root0_fd;
}
