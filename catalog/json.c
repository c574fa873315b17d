/* json.c — JSON through json-c: backup.json, the cached form of parsed
 * domain files, and small key/value objects for layout extras.
 *
 * backup.json (DESIGN.md §1):
 *   { "vm", "name", "time" (ISO 8601 UTC), "source", "status",
 *     "domain_xml"?, <extra fields>,
 *     "disks": [ { "name", "image", "chain" [top first], "chain_depth",
 *                  "virtual_size", "allocated", "format", "compression",
 *                  "encrypted", "volume"?, "status" } ],
 *     "verify": { "ok", "result", "at" } or null (the last verify) }
 * "compression" is what the disk's clusters are (blk/qcow2-stat.h): none
 * (no compressed cluster in any layer, raw images), zlib or zstd (the one
 * type of the compressed clusters present), mixed (layers of both).
 *
 * Names come from the repository and are bytes, not necessarily UTF-8:
 * strings go through common/json-str.h (U+FFFD in the text, the exact
 * bytes in "<key>_hex", e.g. "chain_hex").  The cache form of domain files
 * (internal, read back by json-c) keeps raw bytes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "catalog/catalog-int.h"
#include "common/error.h"
#include "common/json-str.h"
#include "common/timefmt.h"

#define add_str bfs_json_add_str

/* raw bytes: the internal cache form only */
static void
add_raw(struct json_object *o, const char *k, const char *v)
{
  json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static void
add_int(struct json_object *o, const char *k, int64_t v)
{
  json_object_object_add(o, k, json_object_new_int64(v));
}

struct json_object *
catalog_backup_jobj(const struct catalog_backup *b)
{
  struct json_object *o = json_object_new_object(), *disks;
  char iso[32];

  bfs_time_iso(b->time, iso);
  add_str(o, "vm", b->vm);
  add_str(o, "name", b->name);
  add_str(o, "time", iso);
  add_str(o, "source", b->source);
  add_str(o, "status", b->status);
  if (b->verify_result) {       /* the last verify's verdict, else null */
    struct json_object *v = json_object_new_object();
    char at[32];
    bfs_time_iso(b->verified_at, at);
    json_object_object_add(v, "ok", json_object_new_boolean(b->verify_ok));
    add_str(v, "result", b->verify_result);
    add_str(v, "at", at);
    json_object_object_add(o, "verify", v);
  }
  else
    json_object_object_add(o, "verify", NULL);
  if (b->domain_xml) add_str(o, "domain_xml", b->domain_xml);
  if (b->extra) {
    struct json_object *x = json_tokener_parse(b->extra);
    if (x && json_object_is_type(x, json_type_object)) {
      json_object_object_foreach(x, k, v)
        if (!json_object_object_get_ex(o, k, NULL))
          json_object_object_add(o, k, json_object_get(v));
    }
    json_object_put(x);
  }
  disks = json_object_new_array();
  for (size_t i = 0; i < b->ndisks; i++) {
    const struct catalog_disk *d = &b->disks[i];
    struct json_object *jd = json_object_new_object();
    add_str(jd, "name", d->name);
    add_str(jd, "image", d->image);
    bfs_json_add_str_array(jd, "chain", d->chain, d->chain_len);
    add_int(jd, "chain_depth", (int64_t)d->chain_len);
    add_int(jd, "virtual_size", (int64_t)d->virtual_size);
    add_int(jd, "allocated", (int64_t)d->allocated);
    add_str(jd, "format", d->format);
    add_str(jd, "compression", d->compression);
    json_object_object_add(jd, "encrypted", json_object_new_boolean(d->encrypted));
    if (d->volume) add_str(jd, "volume", d->volume);
    add_str(jd, "status", d->status);
    json_object_array_add(disks, jd);
  }
  json_object_object_add(o, "disks", disks);
  return o;
}

char *
catalog_backup_json(const catalog_t *cat, const struct catalog_backup *b)
{
  struct json_object *o = catalog_backup_jobj(b);
  const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                 JSON_C_TO_STRING_SPACED |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
  char *r = s ? cat_xasprintf("%s\n", s) : NULL;
  json_object_put(o);
  if (!r) bfs_error(-ENOMEM, "backup.json: cannot format");
  return r;
}

char *
catalog_backup_extra(const struct catalog_backup *b, const char *key)
{
  struct json_object *o = b->extra ? json_tokener_parse(b->extra) : NULL, *v;
  char *r = NULL;
  if (o && json_object_object_get_ex(o, key, &v) && v &&
      (json_object_is_type(v, json_type_string) ||
       (json_object_is_type(v, json_type_boolean) &&
        json_object_get_boolean(v))))
    r = cat_xstrdup(json_object_get_string(v));
  json_object_put(o);
  return r;
}

char *
cat_json_kv(int npairs, ...)
{
  struct json_object *o = json_object_new_object();
  va_list ap;
  va_start(ap, npairs);
  for (int i = 0; i < npairs; i++) {
    const char *k = va_arg(ap, const char *), *v = va_arg(ap, const char *);
    if (v) add_str(o, k, v);
  }
  va_end(ap);
  char *r = json_object_object_length(o)
            ? cat_xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN))
            : NULL;
  json_object_put(o);
  return r;
}

char *
domain_info_to_json(const struct domain_info *d)
{
  struct json_object *o = json_object_new_object(), *a = json_object_new_array();
  if (d->name) add_raw(o, "name", d->name);
  if (d->uuid) add_raw(o, "uuid", d->uuid);
  for (size_t i = 0; i < d->ndisks; i++) {
    struct json_object *e = json_object_new_object();
    add_raw(e, "target", d->disks[i].target);
    if (d->disks[i].source) add_raw(e, "source", d->disks[i].source);
    json_object_array_add(a, e);
  }
  json_object_object_add(o, "disks", a);
  char *r = cat_xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
  json_object_put(o);
  return r;
}

static char *
get_str(struct json_object *o, const char *k)
{
  struct json_object *v;
  if (!json_object_object_get_ex(o, k, &v) ||
      !json_object_is_type(v, json_type_string))
    return NULL;
  return cat_xstrdup(json_object_get_string(v));
}

int
domain_info_from_json(const char *s, struct domain_info *d)
{
  struct json_object *o = s ? json_tokener_parse(s) : NULL, *a;
  memset(d, 0, sizeof *d);
  if (!o || !json_object_is_type(o, json_type_object)) {
    json_object_put(o);
    return -EINVAL;
  }
  d->name = get_str(o, "name");
  d->uuid = get_str(o, "uuid");
  if (json_object_object_get_ex(o, "disks", &a) &&
      json_object_is_type(a, json_type_array)) {
    size_t n = json_object_array_length(a);
    d->disks = cat_xcalloc(n, sizeof *d->disks);
    for (size_t i = 0; i < n; i++) {
      struct json_object *e = json_object_array_get_idx(a, i);
      char *t = get_str(e, "target");
      if (!t) continue;
      d->disks[d->ndisks].target = t;
      d->disks[d->ndisks++].source = get_str(e, "source");
    }
  }
  json_object_put(o);
  return 0;
}
