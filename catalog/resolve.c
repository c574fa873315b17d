/* resolve.c — find a backing file inside the repository's roots.
 *
 * A layer records its backing file as written by the host that made it:
 * relative to the overlay (CloudStack NAS: ../<older-stamp>/root.<id>.qcow2)
 * or absolute (KBOSS: /mnt/<pool-uuid>/backups/...).  In order:
 *
 *   1. the recorded name, relative to the overlay's directory (inside the
 *      overlay's root: ".." never climbs from one root into another), or
 *      absolute when it lies inside one of the roots as mounted now;
 *   2. the longest suffix of the name (whole path components) that names a
 *      file inside a root, the overlay's own root first, then the others
 *      in order: /mnt/p/backups/2/v/u -> backups/2/v/u.  KBOSS picks a
 *      secondary store per backup, so an incremental's parent may live in
 *      another store; its path below the store (backups/<account>/<volume>/
 *      <uuid>) is the same in all of them, and uuids are unique.
 *
 * Locators are root-relative paths, prefixed ".root<i>/" for root i > 0
 * (catalog.h).  A candidate whose first component is hidden is never
 * taken: the walk never sees such files, and in root 0 it could pose as
 * another root's prefix.  Every candidate is checked with realpath() to be
 * a regular file inside its root: a hostile backing name
 * ("../../etc/shadow", a symlink pointing outside) never leads out of the
 * roots.  Paths are handled lexically, so the scan can answer "exists"
 * from its file map.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"

#define MAX_COMPONENTS 256

/* split a path into its components (pointers into a copy) */
static size_t
split(char *p, char **comp, size_t max)
{
  size_t n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(p, "/", &save); tok;
       tok = strtok_r(NULL, "/", &save)) {
    if (n == max) return SIZE_MAX;
    comp[n++] = tok;
  }
  return n;
}

static char *
join(char **comp, size_t n)
{
  size_t len = 1;
  for (size_t i = 0; i < n; i++) len += strlen(comp[i]) + 1;
  char *r = cat_xmalloc(len), *q = r;
  for (size_t i = 0; i < n; i++) {
    if (i) *q++ = '/';
    size_t l = strlen(comp[i]);
    memcpy(q, comp[i], l);
    q += l;
  }
  *q = '\0';
  return r;
}

char *
resolve_join(const char *dir, const char *name)
{
  CLEANUP_FREE char *p = cat_xasprintf("%s/%s", dir, name);
  char *in[MAX_COMPONENTS], *out[MAX_COMPONENTS];
  size_t n = split(p, in, MAX_COMPONENTS), m = 0;
  if (n == SIZE_MAX) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(in[i], ".")) continue;
    if (!strcmp(in[i], "..")) {
      if (m == 0) return NULL;           /* escapes the repository */
      m--;
      continue;
    }
    out[m++] = in[i];
  }
  return m ? join(out, m) : NULL;
}

int
resolve_root_of(size_t nroots, const char *loc, const char **rel)
{
  size_t pl = strlen(CAT_ROOT_PREFIX);
  if (strncmp(loc, CAT_ROOT_PREFIX, pl)) {
    *rel = loc;
    return loc[0] == '.' && strcmp(loc, ".") ? -1 : 0;   /* "." the root */
  }
  const char *p = loc + pl;
  char *end;
  if (*p < '1' || *p > '9') return -1;
  unsigned long i = strtoul(p, &end, 10);
  if ((*end != '/' && *end) || (*end && !end[1]) || i >= nroots) return -1;
  *rel = *end ? end + 1 : ".";          /* ".root<i>": the root itself */
  return (int)i;
}

bool
resolve_fs_exists(const char *const *roots, size_t nroots, const char *loc)
{
  const char *rel;
  int i = resolve_root_of(nroots, loc, &rel);
  if (i < 0) return false;
  const char *repo = roots[i];
  CLEANUP_FREE char *p = cat_xasprintf("%s/%s", repo, rel);
  CLEANUP_FREE char *real = realpath(p, NULL);
  struct stat st;
  size_t rl = strlen(repo);
  if (!real || strncmp(real, repo, rl) || real[rl] != '/')
    return false;
  return stat(real, &st) == 0 && S_ISREG(st.st_mode);
}

/* root-relative candidate cand of root i */
static bool
try(size_t i, const char *cand, resolve_exists_fn exists, void *opaque,
    char **out)
{
  if (!cand || cand[0] == '.') return false;
  char *loc = i ? cat_xasprintf(CAT_ROOT_PREFIX "%zu/%s", i, cand)
                : cat_xstrdup(cand);
  if (!exists(opaque, loc)) {
    free(loc);
    return false;
  }
  *out = loc;
  return true;
}

int
resolve_backing_rel(const char *const *roots, size_t nroots,
                    const char *overlay_rel, const char *backing,
                    resolve_exists_fn exists, void *opaque, char **out_rel)
{
  const char *orel;
  int oroot = resolve_root_of(nroots, overlay_rel, &orel);
  *out_rel = NULL;

  if (!backing[0] || strlen(backing) > PATH_MAX || oroot < 0)
    return bfs_error(-EINVAL, "%s: invalid backing file name", overlay_rel);

  /* 1. as recorded */
  if (backing[0] == '/') {
    for (size_t i = 0; i < nroots; i++) {
      size_t rl = strlen(roots[i]);
      if (!strncmp(backing, roots[i], rl) && backing[rl] == '/') {
        CLEANUP_FREE char *c = resolve_join("", backing + rl + 1);
        if (try(i, c, exists, opaque, out_rel)) return 0;
      }
    }
  }
  else {
    CLEANUP_FREE char *dir = cat_xstrdup(orel);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0'; else dir[0] = '\0';
    CLEANUP_FREE char *c = resolve_join(dir, backing);
    if (try((size_t)oroot, c, exists, opaque, out_rel)) return 0;
  }

  /* 2. the longest path suffix that exists inside a root, the overlay's
   * own first */
  CLEANUP_FREE char *copy = cat_xstrdup(backing);
  char *comp[MAX_COMPONENTS];
  size_t n = split(copy, comp, MAX_COMPONENTS);
  if (n != SIZE_MAX) {
    size_t first = 0;
    for (size_t i = 0; i < n; i++)       /* suffixes never contain . or .. */
      if (!strcmp(comp[i], ".") || !strcmp(comp[i], ".."))
        first = i + 1;
    for (size_t j = first; j < n; j++) {
      CLEANUP_FREE char *c = join(comp + j, n - j);
      if (try((size_t)oroot, c, exists, opaque, out_rel)) return 0;
      for (size_t i = 0; i < nroots; i++)
        if (i != (size_t)oroot && try(i, c, exists, opaque, out_rel))
          return 0;
    }
  }
  return bfs_error(-ENOENT, "backing file '%s' of %s not found in the "
                   "repository", backing, overlay_rel);
}
