/* util.c — small helpers for the catalog: allocation that aborts on OOM,
 * the string-keyed map (common/htab.h's, aborting on OOM as the rest of
 * the catalog), time and size formatting,
 * and the FUSE mounts below a repository (read from /proc/self/mountinfo,
 * so the scan learns about them without sending them a single request).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/vec.h"

static void __attribute__((noreturn))
oom(void)
{
  fprintf(stderr, "backupfs: out of memory\n");
  abort();
}

void *
cat_xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (!p) oom();
  return p;
}

void *
cat_xcalloc(size_t n, size_t sz)
{
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (!p) oom();
  return p;
}

void
cat_grow_(void **p, size_t *cap, size_t elem, size_t n)
{
  if (bfs_vec_reserve_(p, cap, elem, n + 1) < 0) oom();
}

void *
cat_xrealloc(void *p, size_t n, size_t sz)
{
  size_t bytes;
  if (__builtin_mul_overflow(n, sz, &bytes)) oom();
  p = realloc(p, bytes ? bytes : 1);
  if (!p) oom();
  return p;
}

char *
cat_xstrdup(const char *s)
{
  char *r = strdup(s);
  if (!r) oom();
  return r;
}

char *
cat_xstrndup(const char *s, size_t n)
{
  char *r = strndup(s, n);
  if (!r) oom();
  return r;
}

char *
cat_xasprintf(const char *fmt, ...)
{
  va_list ap;
  char *r;
  va_start(ap, fmt);
  if (vasprintf(&r, fmt, ap) < 0) oom();
  va_end(ap);
  return r;
}

void
cat_map_init(struct cat_map *m)
{
  if (bfs_strmap_init(&m->m) < 0) oom();
}

void
cat_map_free(struct cat_map *m)
{
  bfs_strmap_free(&m->m);
}

void *
cat_map_get(const struct cat_map *m, const char *key)
{
  return bfs_strmap_get(&m->m, key);
}

void
cat_map_put(struct cat_map *m, const char *key, void *val)
{
  if (bfs_strmap_put(&m->m, key, val) < 0) oom();
}

void
cat_time_name(int64_t t, char buf[static 32])
{
  struct tm tm;
  time_t tt = (time_t)t;
  if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H%M%SZ", &tm))
    snprintf(buf, 32, "%lld", (long long)t);
}

void
cat_time_iso(int64_t t, char buf[static 32])
{
  struct tm tm;
  time_t tt = (time_t)t;
  if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
    snprintf(buf, 32, "%lld", (long long)t);
}

int
cat_read_file(int dirfd, const char *rel, size_t max, char **buf, size_t *len)
{
  CLEANUP_CLOSE int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat st;
  if (fd < 0)
    return bfs_error(-errno, "%s: %s", rel, strerror(errno));
  if (fstat(fd, &st) < 0)
    return bfs_error(-errno, "%s: %s", rel, strerror(errno));
  if (!S_ISREG(st.st_mode))
    return bfs_error(-EINVAL, "%s: not a regular file", rel);
  if ((uint64_t)st.st_size > max)
    return bfs_error(-EFBIG, "%s: larger than %zu bytes", rel, max);
  char *b = cat_xmalloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int e = r < 0 ? errno : EIO;
      free(b);
      return bfs_error(-e, "%s: read: %s", rel, strerror(e));
    }
    got += (size_t)r;
  }
  b[got] = '\0';
  *buf = b;
  *len = got;
  return 0;
}

/* mountinfo escapes blanks and backslashes as \ooo */
static void
unescape(char *p)
{
  char *q = p;
  while (*p) {
    if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
        p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
      *q++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
      p += 4;
    }
    else
      *q++ = *p++;
  }
  *q = '\0';
}

size_t
cat_fuse_mounts(const char *repo, char ***out)
{
  FILE *f = fopen("/proc/self/mountinfo", "re");
  size_t rl = strlen(repo), n = 0, cap = 0;
  char *line = NULL;
  size_t lcap = 0;

  *out = NULL;
  if (!f)
    return 0;
  while (getline(&line, &lcap, f) > 0) {
    /* id parent major:minor root MOUNTPOINT options... - FSTYPE source ... */
    char *save = NULL, *mp = NULL, *tok;
    int i = 0;
    bool sep = false;
    const char *fstype = NULL;
    for (tok = strtok_r(line, " \n", &save); tok;
         tok = strtok_r(NULL, " \n", &save), i++) {
      if (i == 4) mp = tok;
      else if (sep) { fstype = tok; break; }
      else if (i > 4 && !strcmp(tok, "-")) sep = true;
    }
    if (!mp || !fstype ||
        (strcmp(fstype, "fuse") && strcmp(fstype, "fuseblk") &&
         strncmp(fstype, "fuse.", 5)))
      continue;
    unescape(mp);
    /* below the repository: a repository on a FUSE file system (sshfs)
     * is walked like any other */
    if (strncmp(mp, repo, rl) || mp[rl] != '/' || !mp[rl + 1])
      continue;
    CAT_GROW(*out, cap, n);
    (*out)[n++] = cat_xstrdup(mp + rl + 1);
  }
  free(line);
  fclose(f);
  return n;
}
