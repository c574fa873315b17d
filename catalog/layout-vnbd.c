/* layout-vnbd.c — virtnbdbackup folders (virtnbdbackup 1.9's names):
 *
 *   <dir>/<disk>.full.data                       checkpoint <cpt>.0
 *        /<disk>.inc.<cpt>.<N>.data               checkpoint <cpt>.N
 *        /<disk>.diff.<epoch>.data                delta since the parent
 *                                                 checkpoint (its metadata)
 *        /<disk>.copy.data                        a copy (or a raw disk)
 *        /<name>.data.partial                         being written/interrupted
 *        /vmconfig.<cpt>.<N>.xml, vmconfig.<epoch>.xml, vmconfig.copy.xml
 *        /checkpoints/<cpt>.<N>.xml               libvirt checkpoint XML
 *        /<domain>.cpt                            the checkpoint list
 *
 * <cpt> is "virtnbdbackup" unless configured otherwise.  Each checkpoint
 * is a point in time; its disks are vnbd recipes, top first: inc.N,
 * inc.N-1 ... full (a diff: the diff over its parent checkpoint's chain).
 * The time is the checkpoint XML's <creationTime> (epoch seconds), else
 * the diff's epoch, else the stream's recorded date (local time without a
 * zone, read as UTC), else the stream file's mtime.  The domain XML
 * (vmconfig.*.xml) is the backup's domain.xml.  VM name: the folder's
 * name (virtnbdbackup writes one folder per VM); a folder that is the
 * repository itself: the <domain> of <domain>.cpt, else the domain XML's
 * <name> (copy backups write no .cpt).
 *
 * Every stream is indexed once per file identity (the scan needs its
 * metadata and must know it is whole): the index goes into the index
 * cache next to the catalog (blk/vnbd-cache.c), where the mount's disk
 * service finds it; the metadata and the verdict go into the file cache's
 * info.  A stream that does not parse (truncated, no stop frame) or is
 * still .partial makes its checkpoint and the later ones broken with the
 * reason; the earlier checkpoints stay good.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blk/vnbd.h"
#include "catalog/catalog-int.h"
#include "common/beneath.h"
#include "common/cleanup.h"
#include "common/error.h"

enum vkind { V_FULL, V_INC, V_DIFF, V_COPY };

struct vstream {
  char *file;                   /* name in the folder */
  char *target;                 /* vda */
  enum vkind kind;
  char *cpt;                    /* inc: "virtnbdbackup.2"; diff: epoch */
  long n;                       /* inc: 2; full 0; diff: epoch */
  bool partial;
  /* from the index (file cache info) */
  char *error, *parent, *date;
  uint64_t vsize, alloc;
  bool compressed;
  int64_t mtime;
};

enum vnbd_name_kind
vnbd_parse_stream_name(const char *s, size_t len, struct vnbd_name *out)
{
  memset(out, 0, sizeof *out);
  if (len > 8 && !memcmp(s + len - 8, ".partial", 8)) {
    out->partial = true;
    len -= 8;
  }
  if (len < 6 || memcmp(s + len - 5, ".data", 5) || s[0] == '.' ||
      memchr(s, '/', len) || memchr(s, '\0', len))
    return VNBD_NAME_NOT;
  len -= 5;
  const char *dot = memchr(s, '.', len);
  if (!dot || dot == s)
    return VNBD_NAME_NOT;
  const char *rest = dot + 1;
  size_t rl = len - (size_t)(rest - s);
  out->target_len = (size_t)(dot - s);
  if (rl == 4 && !memcmp(rest, "full", 4))
    return out->kind = VNBD_NAME_FULL;
  if (rl == 4 && !memcmp(rest, "copy", 4))
    return out->kind = VNBD_NAME_COPY;
  if (!(rl > 4 && !memcmp(rest, "inc.", 4)) &&
      !(rl > 5 && !memcmp(rest, "diff.", 5)))
    return VNBD_NAME_NOT;
  bool inc = rest[0] == 'i';
  const char *id = rest + (inc ? 4 : 5);
  size_t il = rl - (inc ? 4 : 5);
  const char *num = id + il;
  while (num > id && num[-1] >= '0' && num[-1] <= '9')
    num--;
  if (num == id + il || il - (size_t)(num - id) > 12 ||
      (inc && (num == id || num[-1] != '.')))
    return VNBD_NAME_NOT;
  char digits[13];
  memcpy(digits, num, il - (size_t)(num - id));
  digits[il - (size_t)(num - id)] = '\0';
  out->n = strtol(digits, NULL, 10);
  out->cpt_off = (size_t)(id - s);
  out->cpt_len = il;
  return out->kind = inc ? VNBD_NAME_INC : VNBD_NAME_DIFF;
}

/* a stream of the folder, by its name */
static bool
parse_stream_name(const char *name, struct vstream *v)
{
  struct vnbd_name nm;
  memset(v, 0, sizeof *v);
  switch (vnbd_parse_stream_name(name, strlen(name), &nm)) {
  case VNBD_NAME_FULL: v->kind = V_FULL; break;
  case VNBD_NAME_COPY: v->kind = V_COPY; break;
  case VNBD_NAME_INC: v->kind = V_INC; break;
  case VNBD_NAME_DIFF: v->kind = V_DIFF; break;
  default: return false;
  }
  v->partial = nm.partial;
  v->n = nm.n;
  if (nm.cpt_len)
    v->cpt = cat_xstrndup(name + nm.cpt_off, nm.cpt_len);
  v->file = cat_xstrdup(name);
  v->target = cat_xstrndup(name, nm.target_len);
  return true;
}

static void
vstream_free(struct vstream *v)
{
  free(v->file); free(v->target); free(v->cpt);
  free(v->error); free(v->parent); free(v->date);
}

static char *
stream_info(struct scan *s, const char *rel)
{
  struct json_object *o = json_object_new_object();
  struct blk_io *io = NULL;
  struct vnbd_index x;
  int fd = bfs_open_beneath(s->repo_fd, s->cat->repo, rel), r = fd;

  memset(&x, 0, sizeof x);
  if (fd >= 0 && (r = blk_io_fd(fd, rel, &io)) == 0) {
    int cache = blk_idxcache_open(catalog_path(s->cat));
    r = vnbd_index_get(io, cache, &x, NULL);
    if (cache >= 0)
      close(cache);
    blk_io_close(io);
  }
  if (r < 0)
    json_object_object_add(o, "error", json_object_new_string(bfs_last_error()));
  else {
    const struct vnbd_meta *m = &x.meta;
    json_object_object_add(o, "vsize", json_object_new_int64((int64_t)m->virtual_size));
    json_object_object_add(o, "alloc", json_object_new_int64((int64_t)m->data_size));
    json_object_object_add(o, "lz4", json_object_new_boolean(m->compressed));
    if (m->parent)
      json_object_object_add(o, "parent", json_object_new_string(m->parent));
    if (m->date)
      json_object_object_add(o, "date", json_object_new_string(m->date));
    vnbd_index_free(&x);
  }
  char *out = cat_xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
  json_object_put(o);
  return out;
}

static void
load_facts(struct scan *s, const char *dir, struct vstream *v)
{
  CLEANUP_FREE char *rel = strcmp(dir, ".") ? cat_xasprintf("%s/%s", dir, v->file)
                                            : cat_xstrdup(v->file);
  struct scan_file *f = scan_file_get(s, rel, FILE_META, NULL);
  if (!f) {
    v->error = cat_xasprintf("%s: vanished during the scan", rel);
    return;
  }
  v->mtime = f->mtime_ns / 1000000000;
  if (v->partial) {
    v->error = cat_xasprintf("%s: a half-written stream (the backup was "
                             "interrupted or is running)", rel);
    return;
  }
  if (!f->info) {
    f->info = stream_info(s, rel);
    f->dirty = true;
  }
  struct json_object *o = json_tokener_parse(f->info), *e;
  if (!o) {
    v->error = cat_xasprintf("%s: cached facts do not parse", rel);
    return;
  }
  if (json_object_object_get_ex(o, "error", &e))
    v->error = cat_xstrdup(json_object_get_string(e));
  if (json_object_object_get_ex(o, "vsize", &e))
    v->vsize = (uint64_t)json_object_get_int64(e);
  if (json_object_object_get_ex(o, "alloc", &e))
    v->alloc = (uint64_t)json_object_get_int64(e);
  if (json_object_object_get_ex(o, "lz4", &e))
    v->compressed = json_object_get_boolean(e);
  if (json_object_object_get_ex(o, "parent", &e))
    v->parent = cat_xstrdup(json_object_get_string(e));
  if (json_object_object_get_ex(o, "date", &e))
    v->date = cat_xstrdup(json_object_get_string(e));
  json_object_put(o);
}

static char *
join(const char *dir, const char *name)
{
  return strcmp(dir, ".") ? cat_xasprintf("%s/%s", dir, name)
                          : cat_xstrdup(name);
}

static bool
has_file(const struct scan_dir *d, const char *name)
{
  for (size_t i = 0; i < d->nfiles; i++)
    if (!strcmp(d->files[i], name))
      return true;
  return false;
}

/* checkpoints/<cpt>.xml's <creationTime>, or -1 */
static int64_t
checkpoint_time(struct scan *s, const char *dir, const char *cpt)
{
  CLEANUP_FREE char *name = cat_xasprintf("checkpoints/%s.xml", cpt);
  CLEANUP_FREE char *rel = join(dir, name);
  CLEANUP_FREE char *buf = NULL;
  size_t len;
  if (!scan_file_get(s, rel, FILE_META, NULL) ||
      cat_read_file(s->repo_fd, rel, 1 << 20, &buf, &len) < 0)
    return -1;
  buf[len ? len - 1 : 0] = '\0';
  const char *p = strstr(buf, "<creationTime>");
  if (!p)
    return -1;
  char *end;
  long long t = strtoll(p + 14, &end, 10);
  return end > p + 14 && *end == '<' && t > 0 ? (int64_t)t : -1;
}

static int64_t
point_time(struct scan *s, const char *dir, const struct vstream *top)
{
  int64_t t;
  if (top->kind == V_DIFF)
    return top->n;
  if (top->kind != V_COPY) {
    CLEANUP_FREE char *cpt = top->kind == V_FULL
      ? NULL : cat_xstrdup(top->cpt);
    if ((t = checkpoint_time(s, dir, cpt ? cpt : "virtnbdbackup.0")) > 0)
      return t;
  }
  if (top->date && layout_parse_time(top->date, strlen(top->date), &t) == 0)
    return t;
  return top->mtime;
}

/* the full and inc streams of target up to checkpoint n, top first, into
 * layers; the first broken one's reason into *status */
static size_t
chain_of(struct vstream *v, size_t nv, const char *target, long n,
         const struct vstream **out, size_t max, const char **status,
         char **missing)
{
  size_t k = 0;
  for (long c = n; c >= 0 && k < max; c--) {
    const struct vstream *hit = NULL;
    for (size_t i = 0; i < nv && !hit; i++)
      if (!strcmp(v[i].target, target) &&
          ((c == 0 && v[i].kind == V_FULL) || (c > 0 && v[i].kind == V_INC &&
                                               v[i].n == c)))
        hit = &v[i];
    if (!hit) {
      if (!*status && !*missing)
        *missing = c == 0 ? cat_xasprintf("no %s.full.data", target)
                          : cat_xasprintf("checkpoint %ld of %s is missing",
                                          c, target);
      return k;
    }
    if (!*status && hit->error)
      *status = hit->error;
    out[k++] = hit;
  }
  return k;
}

static void
add_point(struct scan *s, const struct scan_dir *d, const char *vm,
          struct vstream *v, size_t nv, const struct vstream *top,
          const char *cfg_ident)
{
  CLEANUP_FREE char *key = join(d->rel, top->file);
  struct model_backup *b = scan_add_backup(s, vm, point_time(s, d->rel, top),
                                           "virtnbdbackup", key);
  long n = top->kind == V_INC ? top->n : 0;
  if (top->kind == V_DIFF && top->parent) {
    const char *dot = strrchr(top->parent, '.');
    n = dot ? strtol(dot + 1, NULL, 10) : 0;
  }
  for (size_t i = 0; i < nv; i++) {
    const struct vstream *t = &v[i];
    const struct vstream *layers[BLK_MAX_DEPTH];
    const char *status = NULL;
    CLEANUP_FREE char *missing = NULL;
    size_t k = 0;
    if (t->kind == V_COPY) {
      /* copies (raw disks of a full, or a copy backup) are one layer and
       * belong to the full's or the copy's point in time */
      if (top->kind != V_COPY && top->kind != V_FULL)
        continue;
      layers[k++] = t;
      status = t->error;
    }
    else if (top->kind == V_COPY)
      continue;
    else if (top->kind == V_DIFF ? t->kind == V_DIFF && t->n == top->n
                                 : t->kind == V_FULL) {
      if (top->kind == V_DIFF) {
        layers[k++] = t;
        status = t->error;
      }
      k += chain_of(v, nv, t->target, n, layers + k, BLK_MAX_DEPTH - k,
                    &status, &missing);
    }
    else
      continue;
    struct scan_layer sl[BLK_MAX_DEPTH];
    char *rels[BLK_MAX_DEPTH];
    for (size_t j = 0; j < k; j++) {
      rels[j] = join(d->rel, layers[j]->file);
      sl[j] = (struct scan_layer){ rels[j], "vnbd", NULL };
    }
    uint64_t alloc = 0;
    for (size_t j = 0; j < k; j++)
      alloc += layers[j]->alloc;
    scan_add_disk_recipe(s, b, t->target, NULL, 0, sl, k, k ? layers[k - 1]->vsize : 0,
                         k && alloc > layers[k - 1]->vsize ? layers[k - 1]->vsize
                                                           : alloc,
                         "vnbd", k && layers[0]->compressed ? "lz4" : NULL,
                         status ? status : missing);
    for (size_t j = 0; j < k; j++)
      free(rels[j]);
  }
  CLEANUP_FREE char *cfg = cat_xasprintf("vmconfig.%s.xml", cfg_ident);
  if (has_file(d, cfg))
    b->domain_xml = join(d->rel, cfg);
  b->extra = cat_json_kv(1, "checkpoint", top->kind == V_FULL
                         ? "virtnbdbackup.0" : top->kind == V_INC ? top->cpt
                         : NULL);
}

/* the domain's <name> in the folder's first vmconfig.*.xml, or NULL */
static char *
config_name(struct scan *s, const struct scan_dir *d)
{
  for (size_t i = 0; i < d->nfiles; i++) {
    const char *f = d->files[i];
    size_t l = strlen(f);
    if (l < 14 || strncmp(f, "vmconfig.", 9) || strcmp(f + l - 4, ".xml"))
      continue;
    CLEANUP_FREE char *rel = join(d->rel, f);
    CLEANUP_FREE char *buf = NULL;
    size_t len;
    struct domain_info di;
    char *name = NULL;
    if (!scan_file_get(s, rel, FILE_META, NULL) ||
        cat_read_file(s->repo_fd, rel, 16 << 20, &buf, &len) < 0)
      continue;
    if (nas_parse_domain_xml(buf, len, &di) == 0 && di.name && di.name[0] &&
        !strchr(di.name, '/'))
      name = cat_xstrdup(di.name);
    domain_info_free(&di);
    if (name)
      return name;
  }
  return NULL;
}

static int
cmp_stream(const void *a, const void *b)
{
  const struct vstream *x = a, *y = b;
  int c = strcmp(x->target, y->target);
  return c ? c : strcmp(x->file, y->file);
}

static bool
vnbd_dir(struct scan *s, const struct scan_dir *d)
{
  struct vstream *v = NULL;
  size_t nv = 0, cap = 0;
  char *cpt_domain = NULL;

  for (size_t i = 0; i < d->nfiles; i++) {
    struct vstream one;
    size_t l = strlen(d->files[i]);
    if (l > 4 && !strcmp(d->files[i] + l - 4, ".cpt") && !cpt_domain)
      cpt_domain = cat_xstrndup(d->files[i], l - 4);
    if (!parse_stream_name(d->files[i], &one))
      continue;
    CAT_GROW(v, cap, nv);
    v[nv++] = one;
  }
  if (!nv) {
    free(cpt_domain);
    return false;
  }
  qsort(v, nv, sizeof *v, cmp_stream);
  for (size_t i = 0; i < nv; i++)
    load_facts(s, d->rel, &v[i]);
  CLEANUP_FREE char *xml_name = d->depth || cpt_domain ? NULL
                                : config_name(s, d);
  const char *vm = d->depth ? d->parts[d->depth - 1]
                 : cpt_domain ? cpt_domain
                 : xml_name ? xml_name : "virtnbdbackup";
  /* one point in time per checkpoint (the full, each inc N), diff, copy
   * (a copy next to a full is a raw disk of that full) */
  bool have_full = false;
  for (size_t i = 0; i < nv; i++)
    have_full = have_full || v[i].kind == V_FULL;
  for (size_t i = 0; i < nv; i++) {
    const struct vstream *t = &v[i];
    bool first = true;              /* the first stream of its checkpoint */
    for (size_t j = 0; j < i && first; j++)
      first = !(v[j].kind == t->kind && v[j].n == t->n);
    if (!first || (t->kind == V_COPY && have_full))
      continue;
    char ident[64];
    if (t->kind == V_FULL) snprintf(ident, sizeof ident, "virtnbdbackup.0");
    else if (t->kind == V_COPY) snprintf(ident, sizeof ident, "copy");
    else snprintf(ident, sizeof ident, "%s", t->cpt);
    add_point(s, d, vm, v, nv, t, ident);
  }
  for (size_t i = 0; i < nv; i++)
    vstream_free(&v[i]);
  free(v);
  free(cpt_domain);
  return true;
}

const struct cat_layout layout_vnbd = {
  .name = "virtnbdbackup",
  .describe = "virtnbdbackup folder (<disk>.full.data, "
              "<disk>.inc.virtnbdbackup.N.data, vmconfig.*.xml)",
  .dir = vnbd_dir,
};
