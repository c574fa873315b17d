/* layout-kboss.c — CloudStack KBOSS (native incremental backups on secondary
 * storage):
 *
 *   backups/<account-id>/<volume-id>/<uuid>      qcow2, no extension
 *
 * Incrementals record an absolute backing path from the host that wrote
 * them (/mnt/<pool-uuid>/backups/...); resolve.c finds it again by suffix.
 * *.comp files (interrupted compressions) and anything else with a dot in
 * its name are not backups.  Each image is one point in time, its mtime.
 *
 * Without more metadata each volume is its own VM entry
 * "volume-<account>-<volume>" with one disk named after the volume.  With a
 * CloudStack listBackups export (--cloudstack-backups FILE) images are
 * grouped into backups of named VMs.  The export is the JSON CloudStack's
 * API returns (`cmk list backups -o json` or `listBackups&response=json`):
 *
 *   { "listbackupsresponse": { "count": 1, "backup": [ {
 *       "id": "a5c9...",                    backup id
 *       "virtualmachineid": "1f0e...",
 *       "virtualmachinename": "web01",
 *       "date": "2026-10-01T03:00:00+0000", point in time (ISO 8601)
 *       "type": "INCREMENTAL",
 *       "volumes": "[{\"uuid\":\"<volume-id>\",\"type\":\"ROOT\",
 *                     \"deviceid\":0,
 *                     \"path\":\"backups/2/<volume-id>/<uuid>\"}]"
 *   } ] } }
 *
 * "volumes" is a JSON string as CloudStack returns it (an array is accepted
 * too).  A volume matches the image whose file name is the last component of
 * its "path".  Disks are named root (ROOT) or datadisk-<volume uuid>,
 * ordered ROOT first, then by deviceid, then as listed.  The top-level
 * wrapper may be omitted (an object with "backup", or a bare array).
 * Images no listed backup names stay volume-<account>-<volume> entries.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "catalog/catalog-int.h"
#include "common/error.h"

struct kboss_image {
  char *account, *volume, *rel, *base;
  int64_t mtime;
  bool claimed;
};

struct kboss_state {            /* the images the walk found, grouped by
                                   kboss_finish */
  struct kboss_image *v;
  size_t n, cap;
};

static struct kboss_state *
kboss_state(struct scan *s)
{
  void **slot = scan_layout_state(s, &layout_kboss);
  if (!*slot)
    *slot = cat_xcalloc(1, sizeof(struct kboss_state));
  return *slot;
}

static void
kboss_state_free(void *p)
{
  struct kboss_state *ks = p;
  for (size_t i = 0; i < ks->n; i++) {
    free(ks->v[i].account); free(ks->v[i].volume);
    free(ks->v[i].rel); free(ks->v[i].base);
  }
  free(ks->v);
  free(ks);
}

bool
kboss_is_image_name(const char *s, size_t len)
{
  return len > 0 && len <= 255 && !memchr(s, '.', len) &&
         !memchr(s, '/', len) && !memchr(s, '\0', len);
}

/* backups/<account>/<volume>/, or <account>/<volume>/ when the repository
 * is a store's backups/ directory itself */
static bool
kboss_dir(struct scan *s, const struct scan_dir *sd)
{
  const char *account, *volume;
  if (sd->depth == 3 && !strcmp(sd->parts[0], "backups"))
    account = sd->parts[1], volume = sd->parts[2];
  else if (sd->depth == 2 && sd->repo_is_backups && sd->nfiles)
    account = sd->parts[0], volume = sd->parts[1];
  else
    return false;
  const char *reldir = sd->rel;
  char **names = sd->files;
  size_t n = sd->nfiles;
  struct kboss_state *ks = NULL;
  bool any = false;
  for (size_t i = 0; i < n; i++) {
    if (!kboss_is_image_name(names[i], strlen(names[i]))) continue;
    char *rel = cat_xasprintf("%s/%s", reldir, names[i]);
    /* KBOSS images are qcow2: opened as such, never probed; a stray file
     * without extension and without the qcow2 magic is not a backup */
    struct scan_file *f = scan_file_get(s, rel, FILE_IMAGE, "qcow2");
    if (f && f->format && !strcmp(f->format, "qcow2")) {
      if (!ks) ks = kboss_state(s);
      CAT_GROW(ks->v, ks->cap, ks->n);
      ks->v[ks->n++] = (struct kboss_image){
        .account = cat_xstrdup(account), .volume = cat_xstrdup(volume),
        .rel = rel, .base = cat_xstrdup(names[i]),
        .mtime = f->mtime_ns / 1000000000,
      };
      rel = NULL;
      any = true;
    }
    free(rel);
  }
  return any;
}

/* ---- listBackups ---- */

static char *
jstr(struct json_object *o, const char *key)
{
  struct json_object *v;
  if (!json_object_object_get_ex(o, key, &v) || !v) return NULL;
  if (json_object_is_type(v, json_type_string) ||
      json_object_is_type(v, json_type_int))
    return cat_xstrdup(json_object_get_string(v));
  return NULL;
}

static struct json_object *
parse_json(const char *buf, size_t len)
{
  if (len > INT_MAX) return NULL;
  struct json_tokener *tok = json_tokener_new();
  if (!tok) return NULL;
  struct json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
  if (o && json_tokener_get_error(tok) == json_tokener_success &&
      (size_t)json_tokener_get_parse_end(tok) < len) {
    /* trailing bytes: only whitespace allowed */
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
      if (!strchr(" \t\r\n", buf[i]) || !buf[i]) {
        json_object_put(o);
        o = NULL;
        break;
      }
  }
  if (!o || json_tokener_get_error(tok) != json_tokener_success) {
    json_object_put(o);
    o = NULL;
  }
  json_tokener_free(tok);
  return o;
}

static void
parse_volumes(struct lb_backup *b, struct json_object *vols)
{
  struct json_object *owned = NULL;
  if (json_object_is_type(vols, json_type_string)) {
    const char *s = json_object_get_string(vols);
    vols = owned = parse_json(s, strlen(s));
  }
  if (vols && json_object_is_type(vols, json_type_array)) {
    size_t n = json_object_array_length(vols);
    b->vols = cat_xcalloc(n, sizeof *b->vols);
    for (size_t i = 0; i < n; i++) {
      struct json_object *v = json_object_array_get_idx(vols, i), *d;
      if (!v || !json_object_is_type(v, json_type_object)) continue;
      struct lb_volume *lv = &b->vols[b->nvols++];
      lv->uuid = jstr(v, "uuid");
      lv->type = jstr(v, "type");
      lv->path = jstr(v, "path");
      lv->deviceid = json_object_object_get_ex(v, "deviceid", &d) && d
                     ? json_object_get_int(d) : INT_MAX;
    }
  }
  json_object_put(owned);
}

int
kboss_parse_listbackups(const char *buf, size_t len, struct lb_backup **out,
                        size_t *n)
{
  struct json_object *root = parse_json(buf, len), *o = root, *inner, *arr;
  *out = NULL;
  *n = 0;
  if (!root)
    return bfs_error(-EINVAL, "not valid JSON");
  if (json_object_is_type(o, json_type_object) &&
      json_object_object_get_ex(o, "listbackupsresponse", &inner) && inner)
    o = inner;
  if (json_object_is_type(o, json_type_array))
    arr = o;
  else if (!json_object_is_type(o, json_type_object)) {
    json_object_put(root);
    return bfs_error(-EINVAL, "not a listBackups response");
  }
  else if (!json_object_object_get_ex(o, "backup", &arr) || !arr) {
    json_object_put(root);
    return 0;                   /* an empty response has no "backup" at all */
  }
  else if (!json_object_is_type(arr, json_type_array)) {
    json_object_put(root);
    return bfs_error(-EINVAL, "\"backup\" is not a list");
  }

  size_t cnt = json_object_array_length(arr);
  struct lb_backup *bs = cat_xcalloc(cnt, sizeof *bs);
  size_t m = 0;
  for (size_t i = 0; i < cnt; i++) {
    struct json_object *e = json_object_array_get_idx(arr, i), *vols;
    if (!e || !json_object_is_type(e, json_type_object)) continue;
    struct lb_backup *b = &bs[m++];
    b->id = jstr(e, "id");
    b->vm = jstr(e, "virtualmachinename");
    b->vm_id = jstr(e, "virtualmachineid");
    char *date = jstr(e, "date");
    if (!date || layout_parse_time(date, strlen(date), &b->time) < 0)
      b->time = INT64_MIN;
    free(date);
    if (json_object_object_get_ex(e, "volumes", &vols) && vols)
      parse_volumes(b, vols);
  }
  json_object_put(root);
  *out = bs;
  *n = m;
  return 0;
}

void
kboss_listbackups_free(struct lb_backup *b, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(b[i].id);
    free(b[i].vm);
    free(b[i].vm_id);
    for (size_t j = 0; j < b[i].nvols; j++) {
      free(b[i].vols[j].uuid);
      free(b[i].vols[j].type);
      free(b[i].vols[j].path);
    }
    free(b[i].vols);
  }
  free(b);
}

/* ---- grouping ---- */

static void
group_listed(struct scan *s, struct kboss_state *ks, struct lb_backup *lb,
             size_t nlb)
{
  struct cat_map bybase;
  cat_map_init(&bybase);
  for (size_t i = 0; i < ks->n; i++)
    cat_map_put(&bybase, ks->v[i].base, &ks->v[i]);

  for (size_t i = 0; i < nlb; i++) {
    struct model_backup *b = NULL;
    int64_t newest = INT64_MIN;
    for (size_t j = 0; j < lb[i].nvols; j++) {
      struct lb_volume *v = &lb[i].vols[j];
      if (!v->path) continue;
      const char *last = strrchr(v->path, '/');
      struct kboss_image *k = cat_map_get(&bybase, last ? last + 1 : v->path);
      if (!k || k->claimed) continue;
      const char *vm = lb[i].vm ? lb[i].vm : lb[i].vm_id ? lb[i].vm_id : NULL;
      if (!vm) continue;
      if (!b) {
        b = scan_add_backup(s, vm, lb[i].time, "cloudstack-kboss", k->rel);
        if (lb[i].id)
          b->extra = cat_json_kv(2, "backup_id", lb[i].id,
                                 "vm_id", lb[i].vm_id);
      }
      bool root = v->type && !strcasecmp(v->type, "ROOT");
      const char *vol = v->uuid ? v->uuid : k->volume;
      char *name = root ? cat_xstrdup("root") : cat_xasprintf("datadisk-%s", vol);
      int dev = v->deviceid < 0 ? 0 : v->deviceid;
      int order = root ? -1 : (dev < 1000000 ? dev * 1000 : 1000000000) + (int)j;
      scan_add_disk(b, name, k->rel, vol, order);
      free(name);
      k->claimed = true;
      if (k->mtime > newest) newest = k->mtime;
    }
    if (b && b->time == INT64_MIN) b->time = newest;
  }
  cat_map_free(&bybase);
}

static int
cmp_order(const void *a, const void *b)
{
  const struct model_disk *x = a, *y = b;
  return x->order < y->order ? -1 : x->order > y->order;
}

static void
kboss_finish(struct scan *s)
{
  const char *lbfile = s->cat->cloudstack_backups;
  size_t first = s->nbackups;
  struct kboss_state *ks = *scan_layout_state(s, &layout_kboss);

  if (!ks) return;
  if (lbfile && ks->n) {
    char *buf;
    size_t len, nlb;
    struct lb_backup *lb;
    int r = cat_read_file(AT_FDCWD, lbfile, 256 << 20, &buf, &len);
    if (r == 0) {
      r = kboss_parse_listbackups(buf, len, &lb, &nlb);
      free(buf);
      if (r == 0) {
        group_listed(s, ks, lb, nlb);
        kboss_listbackups_free(lb, nlb);
      }
      else
        bfs_error_prefix(r, "%s: ", lbfile);
    }
    if (r < 0)
      bfs_log(BFS_LOG_WARN, "%s (ignored)", bfs_last_error());
  }
  for (size_t i = first; i < s->nbackups; i++)
    qsort(s->backups[i].disks, s->backups[i].ndisks,
          sizeof *s->backups[i].disks, cmp_order);

  for (size_t i = 0; i < ks->n; i++) {
    struct kboss_image *k = &ks->v[i];
    if (!k->claimed) {
      char *vm = cat_xasprintf("volume-%s-%s", k->account, k->volume);
      struct model_backup *b = scan_add_backup(s, vm, k->mtime,
                                               "cloudstack-kboss", k->rel);
      scan_add_disk(b, k->volume, k->rel, k->volume, 0);
      b->extra = cat_json_kv(2, "account", k->account, "volume", k->volume);
      free(vm);
    }
  }
}

const struct cat_layout layout_kboss = {
  .name = "cloudstack-kboss",
  .describe = "CloudStack KBOSS (backups/<account>/<volume>/<uuid>)",
  .dir = kboss_dir,
  .finish = kboss_finish,
  .state_free = kboss_state_free,
};
