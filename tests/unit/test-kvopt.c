/* test-kvopt.c — common/kvopt.c: lookup, replacement and the edges of
 * "name=value,..." strings (a name that is a prefix of another, empty
 * entries, empty values). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kvopt.h"

static int fails;

static void
want_get(const char *opts, const char *name, int rc, const char *value)
{
  char *v = NULL;
  int r = bfs_kvopt_get(opts, name, &v);
  if (r != rc || (value && (!v || strcmp(v, value))) || (!value && v)) {
    fprintf(stderr, "FAIL get(%s, %s): %d '%s', want %d '%s'\n",
            opts ? opts : "NULL", name, r, v ? v : "NULL", rc,
            value ? value : "NULL");
    fails++;
  }
  free(v);
}

static void
want_set(const char *opts, const char *name, const char *value,
         const char *want)
{
  char *s = bfs_kvopt_set(opts, name, value);
  if (!s || strcmp(s, want)) {
    fprintf(stderr, "FAIL set(%s, %s=%s): '%s', want '%s'\n",
            opts ? opts : "NULL", name, value, s ? s : "NULL", want);
    fails++;
  }
  free(s);
}

int
main(void)
{
  want_get(NULL, "a", -ENOENT, NULL);
  want_get("", "a", -ENOENT, NULL);
  want_get("a=1", "a", 0, "1");
  want_get("ab=1,a=2", "a", 0, "2");
  want_get("a=,b=3", "a", 0, "");
  want_get(",,b=3,", "b", 0, "3");
  want_get("a", "a", -ENOENT, NULL);
  want_get("ceph_conf=/etc/ceph/c.conf,ceph_id=admin", "ceph_id", 0, "admin");
  want_set(NULL, "a", "1", "a=1");
  want_set("a=1,b=2", "a", "3", "b=2,a=3");
  want_set("ab=1", "a", "2", "ab=1,a=2");
  want_set(",a=1,,", "b", "2", "a=1,b=2");
  if (fails)
    return 1;
  printf("kvopt: all cases pass\n");
  return 0;
}
