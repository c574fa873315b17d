/* layout-kboss.c — CloudStack KBOSS (native incremental backups on secondary
 * storage), and the CloudStack listBackups export for every layout:
 *
 *   backups/<account-id>/<volume-id>/<uuid>      qcow2, no extension
 *
 * Incrementals record an absolute backing path from the host that wrote
 * them (/mnt/<pool-uuid>/backups/...), often in another secondary store
 * (each backup picks one); resolve.c finds it again by suffix across the
 * repository's roots.  *.comp files (compressions in progress) and anything
 * with a dot in its name are not backups.  Parent/child links inside a
 * volume come from the backing name's last component (the parent's uuid).
 *
 * Without more metadata each volume is its own VM entry
 * "volume-<account>-<volume>" with one disk named after the volume.  With a
 * CloudStack listBackups export (--cloudstack-backups FILE, `cmk list
 * backups -o json` or `listBackups&response=json`), fields as
 * BackupResponse and Backup.VolumeInfo serialise them:
 *
 *   { "listbackupsresponse": { "count": 1, "backup": [ {
 *       "id": "a5c9...", "virtualmachineid": "1f0e...",
 *       "virtualmachinename": "web01", "externalid": "i-2-3-VM/2026.10...",
 *       "created": "2026-10-01T03:00:00+0000"   ("date" before 4.21),
 *       "type": "INCREMENTAL", "status": "BackedUp",
 *       "volumes": "[{\"uuid\":\"<volume-id>\",\"type\":\"ROOT\",
 *                     \"deviceId\":0, \"path\":\"<uuid>\"}]"
 *   } ] } }
 *
 * "volumes" is a JSON string as CloudStack returns it (an array is accepted
 * too); "deviceid" is accepted for "deviceId".  The wrapper may be omitted
 * (an object with "backup", or a bare array).  Disks are named root (ROOT)
 * or datadisk-<volume uuid>, ROOT first, then by deviceId, then as listed.
 * A VM's directory is its display name, or <name>-<vm id> when VMs of
 * different ids share it (tenants choose display names: one must never
 * put its backups into another's directory); backup.json's vm_name keeps
 * the display name (MNT/by-name/).
 *
 * Matching export volumes to files.  A volume's "path" names the secondary
 * file only for mid-chain backups; for end-of-chain and isolated ones it is
 * the volume's primary-storage path.  So:
 *   1. a path whose last component is an image's uuid, in the directory of
 *      the same volume uuid, is that image;
 *   2. per volume uuid, the export's dated entries in date order are the
 *      volume's backups in the order they were taken, and each incremental
 *      is the child of the backup before it (KBOSS chains one volume's
 *      backups linearly, a full starting a new chain).  An unmatched image
 *      whose parent is matched takes the entry right after the parent's
 *      entry, if that one is unmatched (the end of a chain); the isolated
 *      images left (fulls, no child) take the unmatched entries left,
 *      in order, only when the counts agree and no entry is dated after its
 *      image's mtime (a file is finished after its backup began;
 *      compression only moves mtime later).
 * This is sound because it never picks between candidates: each step
 * accepts a match only when the volume's sequence leaves exactly one.
 * Whatever stays unmatched stays a volume-<account>-<volume> entry, visible,
 * rather than a guess putting another backup's disk into a VM.
 *
 * Times (backup.json "time_source"): the export's date ("export");
 * otherwise the file's mtime ("mtime"), moved inside what the chain allows
 * ("chain-bounded"): after the parent's time, before every descendant's (its
 * date or mtime).  A compression finishing late moves a file's mtime past
 * its children's; the bound takes it back.
 *
 * Status Removed, Expunged, Error or Failed hides a backup (its files stay
 * layers of others) unless show_removed, then backup.json has "removed":
 * true and "cloudstack_status".  NAS backups are matched by externalid
 * (<instance>/<stamp>, their directory): display name, id, status, date.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"

struct kboss_image {
  char *account, *volume, *rel, *base;
  char *parent_base;            /* last component of the backing name */
  int64_t mtime;
  struct kboss_image *parent, *child;
  struct lb_backup *lb;         /* the export's backup of this image */
  struct lb_volume *lv;
  size_t pos;                   /* its entry in match_volume's list */
  int64_t time;
  const char *time_source;
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
    free(ks->v[i].rel); free(ks->v[i].base); free(ks->v[i].parent_base);
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
      const char *pb = f->backing ? strrchr(f->backing, '/') : NULL;
      ks->v[ks->n++] = (struct kboss_image){
        .account = cat_xstrdup(account), .volume = cat_xstrdup(volume),
        .rel = rel, .base = cat_xstrdup(names[i]),
        .parent_base = f->backing ? cat_xstrdup(pb ? pb + 1 : f->backing)
                                  : NULL,
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
      /* Backup.VolumeInfo serialises deviceId; older exports and hand
       * written ones say deviceid */
      lv->deviceid = (json_object_object_get_ex(v, "deviceId", &d) ||
                      json_object_object_get_ex(v, "deviceid", &d)) && d
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
    /* BackupResponse: "created" since 4.21 (ApiConstants.CREATED), "date"
     * before; java.util.Date as the API prints it, with its offset */
    char *date = jstr(e, "created");
    if (!date) date = jstr(e, "date");
    if (!date || layout_parse_time(date, strlen(date), &b->time) < 0)
      b->time = INT64_MIN;
    free(date);
    b->status = jstr(e, "status");
    b->type = jstr(e, "type");
    b->external_id = jstr(e, "externalid");
    b->removed = b->status && (!strcasecmp(b->status, "Removed") ||
                               !strcasecmp(b->status, "Expunged") ||
                               !strcasecmp(b->status, "Error") ||
                               !strcasecmp(b->status, "Failed"));
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
    free(b[i].status);
    free(b[i].type);
    free(b[i].external_id);
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

/* parent/child links inside a volume: the backing name's last component
 * is the parent's file name (uuids), and both sit in the same volume */
static void
link_chains(struct kboss_state *ks, struct cat_map *bybase)
{
  for (size_t i = 0; i < ks->n; i++) {
    struct kboss_image *k = &ks->v[i], *p;
    if (!k->parent_base) continue;
    p = cat_map_get(bybase, k->parent_base);
    if (p && p != k && !strcmp(p->volume, k->volume) && !p->child) {
      k->parent = p;
      p->child = k;
    }
  }
}

static void
claim(struct kboss_image *k, struct lb_backup *b, struct lb_volume *v)
{
  k->lb = b;
  k->lv = v;
  v->match = k;
}

struct vol_entry { const char *vol; struct lb_backup *b; struct lb_volume *v; };

static int
cmp_entry(const void *x, const void *y)       /* by volume, then date */
{
  const struct vol_entry *a = x, *b = y;
  int c = strcmp(a->vol, b->vol);
  if (c) return c;
  return a->b->time < b->b->time ? -1 : a->b->time > b->b->time;
}

static int
cmp_volume(const void *x, const void *y)
{
  const struct kboss_image *a = *(struct kboss_image *const *)x,
                           *b = *(struct kboss_image *const *)y;
  int c = strcmp(a->volume, b->volume);
  return c ? c : a->mtime < b->mtime ? -1 : a->mtime > b->mtime;
}

/* Match the export's volumes that name no file (end-of-chain and isolated
 * backups: their path is the primary-storage one) for one volume uuid:
 * img[0..ni) its images by mtime, e[0..ne) its dated entries by date (the
 * file note says why this is sound).
 *   - an image whose parent is matched is the entry right after the
 *     parent's, if that one is unmatched (the successor of a backup in
 *     time is its child);
 *   - the isolated images left (fulls: no backing name, no child) take
 *     the unmatched entries left, in order, only when the counts agree and
 *     no entry is dated after its image's mtime (a minute of clock skew
 *     allowed). */
static void
match_volume(struct kboss_image **img, size_t ni, struct vol_entry *e,
             size_t ne)
{
  for (size_t j = 0; j < ne; j++)
    if (e[j].v->match)
      ((struct kboss_image *)e[j].v->match)->pos = j;
  for (bool again = true; again;) {
    again = false;
    for (size_t i = 0; i < ni; i++) {
      struct kboss_image *k = img[i];
      size_t j = k->parent ? k->parent->pos : SIZE_MAX;
      if (k->lb || j == SIZE_MAX || j + 1 >= ne || e[j + 1].v->match ||
          e[j + 1].b->time == e[j].b->time)
        continue;
      claim(k, e[j + 1].b, e[j + 1].v);
      k->pos = j + 1;
      again = true;
    }
  }
  size_t niso = 0, nfree = 0;
  for (size_t i = 0; i < ni; i++)
    niso += !img[i]->lb && !img[i]->parent_base && !img[i]->child;
  for (size_t j = 0; j < ne; j++)
    nfree += !e[j].v->match;
  if (!niso || niso != nfree)
    return;
  for (size_t pass = 0; pass < 2; pass++)   /* check, then claim */
    for (size_t i = 0, j = 0; i < ni; i++) {
      struct kboss_image *k = img[i];
      if (k->lb || k->parent_base || k->child) continue;
      while (e[j].v->match) j++;
      if (!pass && e[j].b->time > k->mtime + 60)
        return;
      if (pass)
        claim(k, e[j].b, e[j].v);
      j++;
    }
}

static void
match_export(struct kboss_state *ks, struct lb_backup *lb, size_t nlb)
{
  struct cat_map bybase;
  cat_map_init(&bybase);
  for (size_t i = 0; i < ks->n; i++) {
    cat_map_put(&bybase, ks->v[i].base, &ks->v[i]);
    ks->v[i].pos = SIZE_MAX;
  }
  link_chains(ks, &bybase);

  /* 1. mid-chain backups: the path's last component is the file name */
  size_t nvols = 0;
  for (size_t i = 0; i < nlb; i++)
    for (size_t j = 0; j < lb[i].nvols; j++) {
      struct lb_volume *v = &lb[i].vols[j];
      nvols++;
      if (!v->path) continue;
      const char *last = strrchr(v->path, '/');
      struct kboss_image *k = cat_map_get(&bybase, last ? last + 1 : v->path);
      if (k && !k->lb && (!v->uuid || !strcmp(v->uuid, k->volume)))
        claim(k, &lb[i], v);
    }
  cat_map_free(&bybase);

  /* 2. the others by volume uuid, chain order and dates */
  struct vol_entry *e = cat_xcalloc(nvols + 1, sizeof *e);
  size_t ne = 0;
  for (size_t i = 0; i < nlb; i++)
    for (size_t j = 0; j < lb[i].nvols; j++)
      if (lb[i].vols[j].uuid && lb[i].time != INT64_MIN)
        e[ne++] = (struct vol_entry){ lb[i].vols[j].uuid, &lb[i],
                                      &lb[i].vols[j] };
  qsort(e, ne, sizeof *e, cmp_entry);
  struct kboss_image **img = cat_xcalloc(ks->n + 1, sizeof *img);
  for (size_t i = 0; i < ks->n; i++) img[i] = &ks->v[i];
  qsort(img, ks->n, sizeof *img, cmp_volume);
  for (size_t a = 0, i = 0; a < ne;) {
    size_t b = a;
    while (b < ne && !strcmp(e[b].vol, e[a].vol)) b++;
    while (i < ks->n && strcmp(img[i]->volume, e[a].vol) < 0) i++;
    size_t k = i;
    while (k < ks->n && !strcmp(img[k]->volume, e[a].vol)) k++;
    if (k > i)
      match_volume(img + i, k - i, e + a, b - a);
    a = b;
  }
  free(img);
  free(e);
}

/* Each image's point in time: the export's date when it has one; else its
 * mtime, kept inside what the chain allows: after the parent's time and
 * before every descendant's (a descendant's date, or its mtime: a file is
 * finished after its backup began).  A compression finishing late moves an
 * mtime past the next backup's; the bound takes it back. */
static int64_t
known_time(const struct kboss_image *k)     /* date, else an upper bound */
{
  return k->lb && k->lb->time != INT64_MIN ? k->lb->time : k->mtime;
}

static void
image_times(struct kboss_state *ks)
{
  struct kboss_image **c = cat_xcalloc(ks->n + 1, sizeof *c);
  int64_t *hi = cat_xcalloc(ks->n + 1, sizeof *hi);
  for (size_t i = 0; i < ks->n; i++) {
    if (ks->v[i].parent) continue;
    size_t n = 0;                       /* the chain, oldest first */
    for (struct kboss_image *k = &ks->v[i]; k && n < ks->n; k = k->child)
      c[n++] = k;
    hi[n - 1] = INT64_MAX;              /* before every descendant's */
    for (size_t j = n - 1; j-- > 0;) {
      int64_t t = known_time(c[j + 1]) - 1;
      hi[j] = t < hi[j + 1] ? t : hi[j + 1];
    }
    int64_t lo = INT64_MIN;             /* after the parent's */
    for (size_t j = 0; j < n; j++) {
      struct kboss_image *k = c[j];
      if (k->lb && k->lb->time != INT64_MIN) {
        k->time = k->lb->time;
        k->time_source = "export";
      }
      else {
        k->time = k->mtime;
        k->time_source = "mtime";
        if (k->time > hi[j])
          k->time = hi[j], k->time_source = "chain-bounded";
        if (lo != INT64_MIN && k->time <= lo)
          k->time = lo + 1, k->time_source = "chain-bounded";
      }
      lo = k->time;
    }
  }
  for (size_t i = 0; i < ks->n; i++)     /* a loop of backing names */
    if (!ks->v[i].time_source) {
      ks->v[i].time = known_time(&ks->v[i]);
      ks->v[i].time_source = ks->v[i].lb && ks->v[i].lb->time != INT64_MIN
                             ? "export" : "mtime";
    }
  free(c);
  free(hi);
}

/* backup.json's CloudStack fields; "removed": true only when shown */
static char *
backup_extra(const struct lb_backup *lb, const struct kboss_image *k)
{
  char *kv = cat_json_kv(7, "backup_id", lb->id, "vm_id", lb->vm_id,
                         "vm_name", lb->vm,
                         "cloudstack_status", lb->status,
                         "backup_type", lb->type,
                         "time_source", k->time_source,
                         "account", k->account);
  if (!lb->removed || !kv)
    return kv;
  struct json_object *o = json_tokener_parse(kv);
  free(kv);
  if (!o) abort();
  json_object_object_add(o, "removed", json_object_new_boolean(1));
  char *r = cat_xstrdup(json_object_to_json_string_ext(o,
                                                       JSON_C_TO_STRING_PLAIN));
  json_object_put(o);
  return r;
}

static void
group_listed(struct scan *s, struct kboss_state *ks, struct lb_backup *lb,
             size_t nlb)
{
  bool show = s->cat->show_removed;
  /* display names are the tenants' choice: one that two VMs (ids) share
   * names neither directory alone, both become <name>-<vm id> */
  struct cat_map first, shared;
  cat_map_init(&first);
  cat_map_init(&shared);
  for (size_t i = 0; i < nlb; i++) {
    if (!lb[i].vm || !lb[i].vm_id) continue;
    const char *id = cat_map_get(&first, lb[i].vm);
    if (!id)
      cat_map_put(&first, lb[i].vm, lb[i].vm_id);
    else if (strcmp(id, lb[i].vm_id))
      cat_map_put(&shared, lb[i].vm, lb[i].vm);
  }
  for (size_t i = 0; i < nlb; i++) {
    struct model_backup *b = NULL;
    CLEANUP_FREE char *vm = !lb[i].vm ? (lb[i].vm_id ? cat_xstrdup(lb[i].vm_id)
                                                     : NULL)
                          : lb[i].vm_id && cat_map_get(&shared, lb[i].vm)
                          ? cat_xasprintf("%s-%s", lb[i].vm, lb[i].vm_id)
                          : cat_xstrdup(lb[i].vm);
    if (!vm) continue;
    for (size_t j = 0; j < lb[i].nvols; j++) {
      struct lb_volume *v = &lb[i].vols[j];
      struct kboss_image *k = v->match;
      if (!k || k->claimed) continue;
      k->claimed = true;                /* hidden ones too: not a volume */
      if (lb[i].removed && !show) continue;
      if (!b) {
        b = scan_add_backup(s, vm, k->time, "cloudstack-kboss", k->rel);
        b->extra = backup_extra(&lb[i], k);
      }
      bool root = v->type && !strcasecmp(v->type, "ROOT");
      const char *vol = v->uuid ? v->uuid : k->volume;
      char *name = root ? cat_xstrdup("root") : cat_xasprintf("datadisk-%s", vol);
      int dev = v->deviceid < 0 ? 0 : v->deviceid;
      int order = root ? -1 : (dev < 1000000 ? dev * 1000 : 1000000000) + (int)j;
      scan_add_disk(b, name, k->rel, vol, order);
      free(name);
    }
  }
  cat_map_free(&first);
  cat_map_free(&shared);
}

/* The export names NAS backups too: externalid is <instance>/<stamp>, the
 * backup's directory (NASBackupProvider).  A match adds the display name,
 * backup id and status, takes the export's date (exact, with its offset)
 * and drops a removed backup unless show_removed. */
static void
apply_nas(struct scan *s, struct lb_backup *lb, size_t nlb)
{
  struct cat_map byext;
  cat_map_init(&byext);
  for (size_t i = 0; i < nlb; i++)
    if (lb[i].external_id)
      cat_map_put(&byext, lb[i].external_id, &lb[i]);
  for (size_t i = s->nbackups; i-- > 0;) {
    struct model_backup *b = &s->backups[i];
    if (strcmp(b->source, "cloudstack-nas") || !b->key) continue;
    /* the key is the stamp directory (or, from older layouts, an image
     * in it) */
    CLEANUP_FREE char *dir = cat_xstrdup(b->key);
    struct lb_backup *e = cat_map_get(&byext, dir);
    char *slash = strrchr(dir, '/');
    if (!e && slash) {
      *slash = '\0';
      e = cat_map_get(&byext, dir);
    }
    if (!e) continue;
    if (e->removed && !s->cat->show_removed) {
      scan_drop_backup(s, i);
      continue;
    }
    struct json_object *o = b->extra ? json_tokener_parse(b->extra) : NULL;
    if (!o) o = json_object_new_object();
    const char *kv[][2] = { { "backup_id", e->id }, { "vm_id", e->vm_id },
                            { "vm_name", e->vm },
                            { "cloudstack_status", e->status },
                            { "backup_type", e->type } };
    for (size_t k = 0; k < sizeof kv / sizeof kv[0]; k++)
      if (kv[k][1])
        json_object_object_add(o, kv[k][0], json_object_new_string(kv[k][1]));
    if (e->time != INT64_MIN) {
      b->time = e->time;
      json_object_object_add(o, "time_source", json_object_new_string("export"));
    }
    if (e->removed)
      json_object_object_add(o, "removed", json_object_new_boolean(1));
    free(b->extra);
    b->extra = cat_xstrdup(json_object_to_json_string_ext(o,
                                                    JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
  }
  cat_map_free(&byext);
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
  struct lb_backup *lb = NULL;
  size_t nlb = 0;

  if (lbfile) {
    char *buf;
    size_t len;
    int r = cat_read_file(AT_FDCWD, lbfile, 256 << 20, &buf, &len);
    if (r == 0) {
      r = kboss_parse_listbackups(buf, len, &lb, &nlb);
      free(buf);
      if (r < 0)
        bfs_error_prefix(r, "%s: ", lbfile);
    }
    if (r < 0)
      bfs_log(BFS_LOG_WARN, "%s (ignored)", bfs_last_error());
  }
  if (nlb)
    apply_nas(s, lb, nlb);
  if (!ks) {
    kboss_listbackups_free(lb, nlb);
    return;
  }
  first = s->nbackups;
  if (nlb)
    match_export(ks, lb, nlb);
  else {
    struct cat_map bybase;
    cat_map_init(&bybase);
    for (size_t i = 0; i < ks->n; i++)
      cat_map_put(&bybase, ks->v[i].base, &ks->v[i]);
    link_chains(ks, &bybase);
    cat_map_free(&bybase);
  }
  image_times(ks);
  if (nlb)
    group_listed(s, ks, lb, nlb);
  kboss_listbackups_free(lb, nlb);
  for (size_t i = first; i < s->nbackups; i++)
    if (s->backups[i].ndisks > 1)
      qsort(s->backups[i].disks, s->backups[i].ndisks,
            sizeof *s->backups[i].disks, cmp_order);

  for (size_t i = 0; i < ks->n; i++) {
    struct kboss_image *k = &ks->v[i];
    if (!k->claimed) {
      char *vm = cat_xasprintf("volume-%s-%s", k->account, k->volume);
      struct model_backup *b = scan_add_backup(s, vm, k->time,
                                               "cloudstack-kboss", k->rel);
      scan_add_disk(b, k->volume, k->rel, k->volume, 0);
      b->extra = cat_json_kv(3, "account", k->account, "volume", k->volume,
                             "time_source", k->time_source);
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
