/* json-str.c — strings from the repository into JSON (json-c).
 *
 * Names come from the repository and are bytes, not necessarily UTF-8.
 * Every JSON output must be UTF-8, so a string that is not valid UTF-8 is
 * written with each offending byte replaced by U+FFFD, and a sibling
 * "<key>_hex" holds the exact bytes in hex ("<key>_hex": one per element
 * for arrays).  Valid strings are written as they are, without _hex.
 */
#include "common/json-str.h"
#include "common/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *
xmalloc(size_t n)
{
  void *p = malloc(n);
  if (!p) {
    fputs("backupfs: out of memory\n", stderr);
    abort();
  }
  return p;
}

static char *
xhexkey(const char *k)
{
  char *r = xmalloc(strlen(k) + 5);
  sprintf(r, "%s_hex", k);
  return r;
}

/* length of the valid UTF-8 sequence at p (strict: no overlongs, no
 * surrogates, at most U+10FFFF), or 0 */
static size_t
utf8_seq(const unsigned char *p)
{
  unsigned c = p[0];
  if (c < 0x80) return 1;
  size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
           : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  for (size_t i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
      (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
    return 0;
  return n;
}

bool
bfs_utf8_valid(const char *s)
{
  for (const unsigned char *p = (const unsigned char *)s; *p; ) {
    size_t n = utf8_seq(p);
    if (!n) return false;
    p += n;
  }
  return true;
}

/* s with every byte that is not part of valid UTF-8 replaced by U+FFFD */
static char *
utf8_fix(const char *s)
{
  char *r = xmalloc(strlen(s) * 3 + 1), *q = r;
  for (const unsigned char *p = (const unsigned char *)s; *p; ) {
    size_t n = utf8_seq(p);
    if (n) { memcpy(q, p, n); q += n; p += n; }
    else { memcpy(q, "\xef\xbf\xbd", 3); q += 3; p++; }
  }
  *q = '\0';
  return r;
}

static char *
hex(const char *s)
{
  size_t n = strlen(s);
  char *r = xmalloc(2 * n + 1);
  for (size_t i = 0; i < n; i++)
    snprintf(r + 2 * i, 3, "%02x", (unsigned char)s[i]);
  r[2 * n] = '\0';
  return r;
}

struct json_object *
bfs_json_string(const char *v)
{
  if (bfs_utf8_valid(v))
    return json_object_new_string(v);
  char *f = utf8_fix(v);
  struct json_object *o = json_object_new_string(f);
  free(f);
  return o;
}

void
bfs_json_add_str(struct json_object *o, const char *k, const char *v)
{
  if (!v) {
    json_object_object_add(o, k, NULL);
    return;
  }
  json_object_object_add(o, k, bfs_json_string(v));
  if (!bfs_utf8_valid(v)) {
    char *hk = xhexkey(k), *h = hex(v);
    json_object_object_add(o, hk, json_object_new_string(h));
    free(hk);
    free(h);
  }
}

void
bfs_json_add_str_array(struct json_object *o, const char *k, char **v, size_t n)
{
  struct json_object *a = json_object_new_array();
  bool bad = false;
  for (size_t i = 0; i < n; i++) {
    json_object_array_add(a, bfs_json_string(v[i]));
    bad |= !bfs_utf8_valid(v[i]);
  }
  json_object_object_add(o, k, a);
  if (bad) {
    char *hk = xhexkey(k);
    a = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
      char *h = hex(v[i]);
      json_object_array_add(a, json_object_new_string(h));
      free(h);
    }
    json_object_object_add(o, hk, a);
    free(hk);
  }
}

struct json_object *
bfs_json_time(time_t t)
{
  char buf[BFS_TIME_MAX];
  if (!t)
    return NULL;
  return json_object_new_string(bfs_time_iso(t, buf));
}
