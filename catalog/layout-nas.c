/* layout-nas.c — CloudStack NAS backups:
 *
 *   <vm-instance>/<yyyy.MM.dd.HH.mm.ss>/root.<volid>.qcow2
 *                                      datadisk.<volid>.qcow2
 *                                      domain-config.xml   (virsh dumpxml)
 *                                      domblklist.xml      (plain text table)
 *                                      dominfo.xml
 *
 * A stamp directory is claimed when its name is a NAS stamp and it holds a
 * NAS disk file or domain-config.xml.  Files being written (*.qcow2.tmp,
 * *.qcow2.luks, backup.xml, checkpoint.xml) are not backups.  The volid is
 * mapped to the guest target (vda, vdb) through the domain XML's disk source
 * paths, else through domblklist.xml; without either the disk is called
 * root or datadisk-<volid>.  Parsed domain files are cached in the catalog
 * (as JSON) keyed by size/mtime/inode like images.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "catalog/catalog-int.h"
#include "catalog/tz.h"
#include "common/log.h"
#include "common/error.h"

int
nas_parse_stamp(const char *s, size_t len, int64_t *t)
{
  /* yyyy.MM.dd.HH.mm.ss is one of the generic forms; accept only it */
  if (len != 19 || s[4] != '.' || s[7] != '.' || s[10] != '.' ||
      s[13] != '.' || s[16] != '.')
    return -EINVAL;
  return layout_parse_time(s, len, t);
}

static bool
has_suffix(const char *s, size_t len, const char *suf, size_t *stem)
{
  size_t sl = strlen(suf);
  if (len < sl || memcmp(s + len - sl, suf, sl)) return false;
  *stem = len - sl;
  return true;
}

enum nas_disk_kind
nas_parse_disk_name(const char *s, size_t len, size_t *volid_off,
                    size_t *volid_len)
{
  enum nas_disk_kind kind;
  size_t pre, stem, num = 0;

  /* pre-release scripts wrote <n>.root.<volid>.qcow2 */
  while (num < len && num < 4 && s[num] >= '0' && s[num] <= '9') num++;
  if (num && num < len && s[num] == '.') num++;
  else num = 0;
  s += num;
  len -= num;
  if (len > 5 && !memcmp(s, "root.", 5)) { kind = NAS_ROOT; pre = 5; }
  else if (len > 9 && !memcmp(s, "datadisk.", 9)) { kind = NAS_DATADISK; pre = 9; }
  else return NAS_NOT_DISK;
  if (has_suffix(s, len, ".qcow2.tmp", &stem) ||
      has_suffix(s, len, ".qcow2.luks", &stem))
    return stem > pre ? NAS_IGNORED : NAS_NOT_DISK;
  if (!has_suffix(s, len, ".qcow2", &stem) || stem <= pre)
    return NAS_NOT_DISK;
  if (memchr(s + pre, '/', stem - pre) || memchr(s + pre, '\0', stem - pre))
    return NAS_NOT_DISK;
  *volid_off = num + pre;
  *volid_len = stem - pre;
  return kind;
}

void
domain_info_free(struct domain_info *d)
{
  free(d->name);
  free(d->uuid);
  for (size_t i = 0; i < d->ndisks; i++) {
    free(d->disks[i].target);
    free(d->disks[i].source);
    free(d->disks[i].protocol);
  }
  free(d->disks);
  memset(d, 0, sizeof *d);
}

static void
add_disk(struct domain_info *d, const char *target, const char *source,
         const char *protocol)
{
  d->disks = cat_xrealloc(d->disks, d->ndisks + 1, sizeof *d->disks);
  d->disks[d->ndisks].target = cat_xstrdup(target);
  d->disks[d->ndisks].source = source ? cat_xstrdup(source) : NULL;
  d->disks[d->ndisks].protocol = protocol ? cat_xstrdup(protocol) : NULL;
  d->ndisks++;
}

static char *
xml_prop(xmlNode *n, const char *name)
{
  xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
  if (!v) return NULL;
  char *r = cat_xstrdup((const char *)v);
  xmlFree(v);
  return r;
}

static char *
xml_text(xmlNode *n)
{
  xmlChar *v = xmlNodeGetContent(n);
  if (!v) return NULL;
  char *r = cat_xstrdup((const char *)v);
  xmlFree(v);
  return r;
}

static bool
is_elem(xmlNode *n, const char *name)
{
  return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

static void
parse_disk(struct domain_info *d, xmlNode *disk)
{
  char *dev = xml_prop(disk, "device");
  bool is_disk = !dev || !strcmp(dev, "disk") || !strcmp(dev, "lun");
  free(dev);
  if (!is_disk) return;                      /* cdrom, floppy */

  char *target = NULL, *source = NULL, *protocol = NULL;
  for (xmlNode *c = disk->children; c; c = c->next) {
    if (is_elem(c, "target") && !target)
      target = xml_prop(c, "dev");
    else if (is_elem(c, "source") && !source) {
      static const char *const attrs[] = { "file", "dev", "name", "volume" };
      for (size_t i = 0; i < 4 && !source; i++)
        source = xml_prop(c, attrs[i]);
      protocol = xml_prop(c, "protocol");
    }
  }
  if (target && target[0])
    add_disk(d, target, source, protocol);
  free(target);
  free(source);
  free(protocol);
}

int
nas_parse_domain_xml(const char *buf, size_t len, struct domain_info *d)
{
  memset(d, 0, sizeof *d);
  if (len > INT_MAX)
    return bfs_error(-EFBIG, "domain XML too large");
  xmlDoc *doc = xmlReadMemory(buf, (int)len, "domain.xml", NULL,
                              XML_PARSE_NONET | XML_PARSE_NOERROR |
                              XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
  if (!doc)
    return bfs_error(-EINVAL, "not well-formed XML");
  /* virsh dumpxml writes no DTD: one only serves entity tricks */
  if (doc->intSubset || doc->extSubset) {
    xmlFreeDoc(doc);
    return bfs_error(-EINVAL, "a DTD (<!DOCTYPE>) is refused");
  }
  xmlNode *root = xmlDocGetRootElement(doc);
  if (!root || !is_elem(root, "domain")) {
    xmlFreeDoc(doc);
    return bfs_error(-EINVAL, "no <domain> element");
  }
  for (xmlNode *c = root->children; c; c = c->next) {
    if (is_elem(c, "name") && !d->name) d->name = xml_text(c);
    else if (is_elem(c, "uuid") && !d->uuid) d->uuid = xml_text(c);
    else if (is_elem(c, "devices"))
      for (xmlNode *dv = c->children; dv; dv = dv->next)
        if (is_elem(dv, "disk"))
          parse_disk(d, dv);
  }
  xmlFreeDoc(doc);
  return 0;
}

/* " Target   Source\n------\n vda      /mnt/pool/uuid\n hdc -\n" */
int
nas_parse_domblklist(const char *buf, size_t len, struct domain_info *d)
{
  memset(d, 0, sizeof *d);
  size_t i = 0;
  while (i < len) {
    size_t eol = i;
    while (eol < len && buf[eol] != '\n') eol++;
    size_t a = i, b = eol;
    i = eol + 1;
    while (a < b && (buf[a] == ' ' || buf[a] == '\t')) a++;
    while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' ||
                     buf[b - 1] == '\r')) b--;
    if (a == b || buf[a] == '-') continue;
    size_t t = a;
    while (t < b && buf[t] != ' ' && buf[t] != '\t') t++;
    size_t s = t;
    while (s < b && (buf[s] == ' ' || buf[s] == '\t')) s++;
    char *target = cat_xstrndup(buf + a, t - a);
    char *source = cat_xstrndup(buf + s, b - s);
    if (strcmp(target, "Target") && strlen(target) == t - a &&
        strlen(source) == b - s)
      add_disk(d, target, source[0] && strcmp(source, "-") ? source : NULL,
               NULL);
    free(target);
    free(source);
  }
  return 0;
}

const char *
domain_target_for(const struct domain_info *d, const char *volid)
{
  size_t vl = strlen(volid);
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < d->ndisks; i++) {
      const char *src = d->disks[i].source;
      if (!src) continue;
      const char *last = strrchr(src, '/');
      last = last ? last + 1 : src;
      if (pass == 0 && !strncmp(last, volid, vl) &&
          (last[vl] == '\0' || last[vl] == '.'))
        return d->disks[i].target;
      if (pass == 1 && strstr(src, volid))
        return d->disks[i].target;
    }
  return NULL;
}

/* the parsed domain of a stamp directory, through the catalog's cache */
static bool
load_domain(struct scan *s, const char *reldir, const char *file,
            struct domain_info *d)
{
  char *rel = cat_xasprintf("%s/%s", reldir, file);
  struct scan_file *f = scan_file_get(s, rel, FILE_META, NULL);
  free(rel);
  if (!f) return false;
  if (!f->info) {
    char *buf;
    size_t len;
    int r = cat_read_file(s->repo_fd, f->path, 16 << 20, &buf, &len);
    if (r == 0) {
      r = !strcmp(file, "domblklist.xml") ? nas_parse_domblklist(buf, len, d)
                                          : nas_parse_domain_xml(buf, len, d);
      free(buf);
    }
    if (r < 0) {
      bfs_log(BFS_LOG_WARN, "%s: %s", f->path, bfs_last_error());
      domain_info_free(d);
    }
    f->info = domain_info_to_json(d);
    f->dirty = true;
    domain_info_free(d);
  }
  if (domain_info_from_json(f->info, d) < 0) return false;
  if (d->ndisks || d->name) return true;
  domain_info_free(d);          /* unreadable: let the next file speak */
  return false;
}

static int
cmp_disk(const void *a, const void *b)
{
  const struct model_disk *x = a, *y = b;
  if (x->order != y->order) return x->order - y->order;
  return strcmp(x->name, y->name);
}

static bool
has_name(char **names, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (!strcmp(names[i], name)) return true;
  return false;
}

/* ---- the layout's state: the zone, and what the finish step names ---- */

struct nas_map {                /* volid -> target, seen in one backup */
  char *vm, *volid, *target;
  int64_t time;
};
struct nas_unnamed {            /* a disk of a backup without domain files */
  char *vm, *key, *volid;       /* the backup's key (its stamp directory) */
  int64_t time;
};
struct nas_state {
  bool tz_loaded;
  struct cat_tz *tz;            /* NULL: could not be loaded (tz_error) */
  char *tz_error;
  struct nas_map *maps;
  size_t nmaps, maps_cap;
  struct nas_unnamed *unnamed;
  size_t nunnamed, unnamed_cap;
};

static void
nas_state_free(void *p)
{
  struct nas_state *ns = p;
  cat_tz_free(ns->tz);
  free(ns->tz_error);
  for (size_t i = 0; i < ns->nmaps; i++) {
    free(ns->maps[i].vm); free(ns->maps[i].volid); free(ns->maps[i].target);
  }
  free(ns->maps);
  for (size_t i = 0; i < ns->nunnamed; i++) {
    free(ns->unnamed[i].vm); free(ns->unnamed[i].key);
    free(ns->unnamed[i].volid);
  }
  free(ns->unnamed);
  free(ns);
}

static struct nas_state *
nas_state(struct scan *s)
{
  void **slot = scan_layout_state(s, &layout_nas);
  struct nas_state *ns = *slot;
  if (!ns) *slot = ns = cat_xcalloc(1, sizeof *ns);
  if (!ns->tz_loaded) {
    /* nas_tz (-o nas_tz=, --nas-timezone) or the host's zone */
    char *zone = NULL;
    (void)cat_source_option(s->cat, "nas_tz", &zone);
    ns->tz_loaded = true;
    if (cat_tz_load(zone, &ns->tz) < 0) {
      ns->tz = NULL;
      ns->tz_error = cat_xasprintf("NAS time zone: %s", bfs_last_error());
      bfs_log(BFS_LOG_WARN, "%s", ns->tz_error);
    }
    free(zone);
  }
  return ns;
}

/* "+HH:MM" / "-HH:MM" */
static void
offset_str(int32_t off, char buf[static 16])
{
  int32_t a = off < 0 ? -off : off;
  snprintf(buf, 16, "%c%02d:%02d", off < 0 ? '-' : '+', (int)(a / 3600),
           (int)(a / 60 % 60));
}

/* files of a stamp directory that are no disk: the domain dumps, the
 * backup job's XML, logs */
static bool
side_file(const char *name)
{
  static const char *const exts[] = { ".xml", ".log", ".txt", ".json" };
  size_t len = strlen(name), stem;
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
    if (has_suffix(name, len, exts[i], &stem)) return true;
  return false;
}

/* the final name's file of a *.qcow2.tmp / *.qcow2.luks is there */
static bool
final_exists(char **names, size_t n, const char *partial)
{
  const char *dot = strrchr(partial, '.');
  char *fin = cat_xstrndup(partial, (size_t)(dot - partial));
  bool r = has_name(names, n, fin);
  free(fin);
  return r;
}

/* <vm>/<yyyy.MM.dd.HH.mm.ss>/ with NAS image names or domain-config.xml.
 * Every file of a claimed directory is accounted for: NAS disks (also
 * the pre-release <n>.root.<volid>.qcow2), other image names as disks
 * named after the file, *.qcow2.tmp without its final file as
 * "unfinished", side files (*.xml, *.log, *.txt, *.json) as nothing, and
 * anything else as the reason the backup is broken. */
static bool
nas_dir(struct scan *s, const struct scan_dir *sd)
{
  if (sd->depth != 2 || !sd->nfiles) return false;
  const char *vm = sd->parts[0], *stamp = sd->parts[1], *reldir = sd->rel;
  char **names = sd->files;
  size_t n = sd->nfiles;
  int64_t local;
  size_t off, vlen;
  bool any = has_name(names, n, "domain-config.xml");

  if (nas_parse_stamp(stamp, strlen(stamp), &local) < 0) return false;
  for (size_t i = 0; i < n && !any; i++)
    any = nas_parse_disk_name(names[i], strlen(names[i]), &off, &vlen) != NAS_NOT_DISK;
  if (!any) return false;

  struct nas_state *ns = nas_state(s);
  int32_t utc_off = 0;
  int64_t t = ns->tz ? cat_tz_to_utc(ns->tz, local, &utc_off) : local;

  struct domain_info dom = { 0 };
  bool have_dom = false;
  if (has_name(names, n, "domain-config.xml"))
    have_dom = load_domain(s, reldir, "domain-config.xml", &dom);
  if (!have_dom && has_name(names, n, "domblklist.xml"))
    have_dom = load_domain(s, reldir, "domblklist.xml", &dom);

  struct model_backup *b = scan_add_backup(s, vm, t, layout_nas.name, reldir);
  char *why = ns->tz_error ? cat_xstrdup(ns->tz_error) : NULL;
  for (size_t i = 0; i < n; i++) {
    const char *fn = names[i];
    enum nas_disk_kind k = nas_parse_disk_name(fn, strlen(fn), &off, &vlen);
    const char *fmt = NULL;
    size_t gl;
    char *rel = cat_xasprintf("%s/%s", reldir, fn);
    if (k == NAS_ROOT || k == NAS_DATADISK) {
      if (scan_file_get(s, rel, FILE_IMAGE, "qcow2")) {
        char *volid = cat_xstrndup(fn + off, vlen);
        const char *target = have_dom ? domain_target_for(&dom, volid) : NULL;
        char *name = target ? cat_xstrdup(target)
                   : k == NAS_ROOT ? cat_xstrdup("root")
                   : cat_xasprintf("datadisk-%s", volid);
        scan_add_disk(b, name, rel, volid, target ? 0 : k == NAS_ROOT ? 1 : 2);
        if (target) {
          CAT_GROW(ns->maps, ns->maps_cap, ns->nmaps);
          ns->maps[ns->nmaps++] = (struct nas_map){
            cat_xstrdup(vm), cat_xstrdup(volid), cat_xstrdup(target), t };
        }
        else if (!have_dom) {       /* a stopped VM's: named in finish */
          CAT_GROW(ns->unnamed, ns->unnamed_cap, ns->nunnamed);
          ns->unnamed[ns->nunnamed++] = (struct nas_unnamed){
            cat_xstrdup(vm), cat_xstrdup(reldir), cat_xstrdup(volid), t };
        }
        free(name);
        free(volid);
      }
    }
    else if (k == NAS_IGNORED) {
      if (!final_exists(names, n, fn) && !why)
        why = cat_xasprintf("unfinished: %s is still being written", rel);
    }
    else if (!strcmp(fn, "domain-config.xml") || side_file(fn))
      ;
    else if ((gl = generic_disk_name(fn, strlen(fn), &fmt))) {
      if (scan_file_get(s, rel, FILE_IMAGE, fmt)) {
        char *name = cat_xstrndup(fn, gl);
        scan_add_disk(b, name, rel, NULL, 3);
        free(name);
      }
    }
    else if (!why)
      why = cat_xasprintf("%s: not a CloudStack NAS image name "
                          "(root.<volid>.qcow2, datadisk.<volid>.qcow2)", rel);
    free(rel);
  }
  if (!why && !b->ndisks)
    why = cat_xasprintf("%s: no disk image in the backup directory", reldir);
  b->status = why;
  if (b->ndisks > 1)
    qsort(b->disks, b->ndisks, sizeof *b->disks, cmp_disk);
  if (has_name(names, n, "domain-config.xml"))
    b->domain_xml = cat_xasprintf("%s/domain-config.xml", reldir);
  char ofs[16];
  offset_str(utc_off, ofs);
  b->extra = cat_json_kv(5, "domain_name", have_dom ? dom.name : NULL,
                         "domain_uuid", have_dom ? dom.uuid : NULL,
                         "stamp", stamp,
                         "timezone", ns->tz ? cat_tz_name(ns->tz) : NULL,
                         "utc_offset", ns->tz ? ofs : NULL);
  domain_info_free(&dom);
  return true;          /* a NAS directory, even with nothing finished yet */
}

/* The target a volume has in its VM's backups with domain files: the
 * nearest earlier one's, else the nearest later one's (so new backups
 * never rename an old one's disks), or NULL. */
static const char *
mapped_target(const struct nas_state *ns, const char *vm, const char *volid,
              int64_t t)
{
  const struct nas_map *before = NULL, *after = NULL;
  for (size_t i = 0; i < ns->nmaps; i++) {
    const struct nas_map *m = &ns->maps[i];
    if (strcmp(m->vm, vm) || strcmp(m->volid, volid)) continue;
    if (m->time <= t && (!before || m->time > before->time)) before = m;
    if (m->time > t && (!after || m->time < after->time)) after = m;
  }
  return before ? before->target : after ? after->target : NULL;
}

/* Backups of stopped VMs (no domain-config.xml, no domblklist.xml) name
 * their disks like the same volumes in the VM's other backups. */
static void
nas_finish(struct scan *s)
{
  struct nas_state *ns = *scan_layout_state(s, &layout_nas);
  if (!ns || !ns->nunnamed) return;
  for (size_t i = 0; i < s->nbackups; i++) {
    struct model_backup *b = &s->backups[i];
    bool renamed = false;
    if (strcmp(b->source, layout_nas.name)) continue;
    for (size_t j = 0; j < b->ndisks; j++) {
      struct model_disk *d = &b->disks[j];
      if (!d->volume) continue;
      const char *target = NULL;
      for (size_t u = 0; u < ns->nunnamed && !target; u++)
        if (!strcmp(ns->unnamed[u].key, b->key) &&
            !strcmp(ns->unnamed[u].vm, b->vm) &&
            !strcmp(ns->unnamed[u].volid, d->volume))
          target = mapped_target(ns, b->vm, d->volume, b->time);
      if (!target) continue;
      free(d->name);
      d->name = cat_xstrdup(target);
      d->order = 0;
      renamed = true;
    }
    if (renamed)
      qsort(b->disks, b->ndisks, sizeof *b->disks, cmp_disk);
  }
}

const struct cat_layout layout_nas = {
  .name = "cloudstack-nas",
  .describe = "CloudStack NAS backup "
              "(<vm>/<yyyy.MM.dd.HH.mm.ss>/root.<volid>.qcow2)",
  .dir = nas_dir,
  .finish = nas_finish,
  .state_free = nas_state_free,
};
