/* kvopt.c — "name=value,..." option strings (see kvopt.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kvopt.h"

int
bfs_kvopt_get(const char *opts, const char *name, char **value)
{
  size_t nl = strlen(name);
  *value = NULL;
  for (const char *p = opts; p && *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len > nl && !strncmp(p, name, nl) && p[nl] == '=')
      return (*value = strndup(p + nl + 1, len - nl - 1)) ? 0 : -ENOMEM;
    p = end ? end + 1 : p + len;
  }
  return -ENOENT;
}

char *
bfs_kvopt_set(const char *opts, const char *name, const char *value)
{
  size_t nl = strlen(name), cap = (opts ? strlen(opts) : 0) + nl +
                                  strlen(value) + 3;
  char *out = malloc(cap), *q = out;
  if (!out)
    return NULL;
  *q = '\0';
  for (const char *p = opts; p && *p;) {          /* keep the others */
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len && !(len > nl && !strncmp(p, name, nl) && p[nl] == '=')) {
      if (q != out) *q++ = ',';
      memcpy(q, p, len);
      q += len;
    }
    p = end ? end + 1 : p + len;
  }
  sprintf(q, "%s%s=%s", q != out ? "," : "", name, value);
  return out;
}
