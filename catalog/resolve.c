/* resolve.c — find a backing file inside the repository.
 *
 * A layer records its backing file as written by the host that made it:
 * relative to the overlay (CloudStack NAS: ../<older-stamp>/root.<id>.qcow2)
 * or absolute (KBOSS: /mnt/<pool-uuid>/backups/...).  In order:
 *
 *   1. the recorded name, relative to the overlay's directory, or absolute
 *      when it lies inside the repository as it is mounted now;
 *   2. the longest suffix of the name (whole path components) that names a
 *      file inside the repository: /mnt/p/backups/2/v/u -> backups/2/v/u.
 *
 * Every candidate is checked with realpath() to be a regular file inside
 * the repository: a hostile backing name ("../../etc/shadow", a symlink
 * pointing outside) never leads out of it.  Paths are handled lexically
 * and repo-relative, so the scan can answer "exists" from its file map.
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

bool
resolve_fs_exists(const char *repo, const char *rel)
{
  CLEANUP_FREE char *p = cat_xasprintf("%s/%s", repo, rel);
  CLEANUP_FREE char *real = realpath(p, NULL);
  struct stat st;
  size_t rl = strlen(repo);
  if (!real || strncmp(real, repo, rl) || real[rl] != '/')
    return false;
  return stat(real, &st) == 0 && S_ISREG(st.st_mode);
}

static bool
try(const char *cand, resolve_exists_fn exists, void *opaque, char **out)
{
  if (!cand || !exists(opaque, cand)) return false;
  *out = cat_xstrdup(cand);
  return true;
}

int
resolve_backing_rel(const char *repo, const char *overlay_rel,
                    const char *backing, resolve_exists_fn exists,
                    void *opaque, char **out_rel)
{
  size_t rl = strlen(repo);
  *out_rel = NULL;

  if (!backing[0] || strlen(backing) > PATH_MAX)
    return bfs_error(-EINVAL, "%s: invalid backing file name", overlay_rel);

  /* 1. as recorded */
  if (backing[0] == '/') {
    if (!strncmp(backing, repo, rl) && backing[rl] == '/') {
      CLEANUP_FREE char *c = resolve_join("", backing + rl + 1);
      if (try(c, exists, opaque, out_rel)) return 0;
    }
  }
  else {
    CLEANUP_FREE char *dir = cat_xstrdup(overlay_rel);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0'; else dir[0] = '\0';
    CLEANUP_FREE char *c = resolve_join(dir, backing);
    if (try(c, exists, opaque, out_rel)) return 0;
  }

  /* 2. the longest path suffix that exists inside the repository */
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
      if (try(c, exists, opaque, out_rel)) return 0;
    }
  }
  return bfs_error(-ENOENT, "backing file '%s' of %s not found in the "
                   "repository", backing, overlay_rel);
}
