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
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "catalog/catalog-int.h"
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
  size_t pre, stem;

  if (len > 5 && !memcmp(s, "root.", 5)) { kind = NAS_ROOT; pre = 5; }
  else if (len > 9 && !memcmp(s, "datadisk.", 9)) { kind = NAS_DATADISK; pre = 9; }
  else return NAS_NOT_DISK;
  if (has_suffix(s, len, ".qcow2.tmp", &stem) ||
      has_suffix(s, len, ".qcow2.luks", &stem))
    return NAS_IGNORED;
  if (!has_suffix(s, len, ".qcow2", &stem) || stem <= pre)
    return NAS_NOT_DISK;
  if (memchr(s + pre, '/', stem - pre) || memchr(s + pre, '\0', stem - pre))
    return NAS_NOT_DISK;
  *volid_off = pre;
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
  }
  free(d->disks);
  memset(d, 0, sizeof *d);
}

static void
add_disk(struct domain_info *d, const char *target, const char *source)
{
  d->disks = cat_xrealloc(d->disks, d->ndisks + 1, sizeof *d->disks);
  d->disks[d->ndisks].target = cat_xstrdup(target);
  d->disks[d->ndisks].source = source ? cat_xstrdup(source) : NULL;
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

  char *target = NULL, *source = NULL;
  for (xmlNode *c = disk->children; c; c = c->next) {
    if (is_elem(c, "target") && !target)
      target = xml_prop(c, "dev");
    else if (is_elem(c, "source") && !source) {
      static const char *const attrs[] = { "file", "dev", "name", "volume" };
      for (size_t i = 0; i < 4 && !source; i++)
        source = xml_prop(c, attrs[i]);
    }
  }
  if (target && target[0])
    add_disk(d, target, source);
  free(target);
  free(source);
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
      add_disk(d, target, source[0] && strcmp(source, "-") ? source : NULL);
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

/* <vm>/<yyyy.MM.dd.HH.mm.ss>/ with NAS image names or domain-config.xml */
static bool
nas_dir(struct scan *s, const struct scan_dir *sd)
{
  if (sd->depth != 2 || !sd->nfiles) return false;
  const char *vm = sd->parts[0], *stamp = sd->parts[1], *reldir = sd->rel;
  char **names = sd->files;
  size_t n = sd->nfiles;
  int64_t t;
  size_t off, vlen;
  bool any = has_name(names, n, "domain-config.xml");

  if (nas_parse_stamp(stamp, strlen(stamp), &t) < 0) return false;
  for (size_t i = 0; i < n && !any; i++)
    any = nas_parse_disk_name(names[i], strlen(names[i]), &off, &vlen) != NAS_NOT_DISK;
  if (!any) return false;

  struct domain_info dom = { 0 };
  bool have_dom = false;
  if (has_name(names, n, "domain-config.xml"))
    have_dom = load_domain(s, reldir, "domain-config.xml", &dom);
  if (!have_dom && has_name(names, n, "domblklist.xml"))
    have_dom = load_domain(s, reldir, "domblklist.xml", &dom);

  struct model_backup *b = NULL;
  for (size_t i = 0; i < n; i++) {
    enum nas_disk_kind k = nas_parse_disk_name(names[i], strlen(names[i]),
                                               &off, &vlen);
    if (k != NAS_ROOT && k != NAS_DATADISK) continue;
    char *rel = cat_xasprintf("%s/%s", reldir, names[i]);
    if (scan_file_get(s, rel, FILE_IMAGE, "qcow2")) {
      if (!b) b = scan_add_backup(s, vm, t, "cloudstack-nas", rel);
      char *volid = cat_xstrndup(names[i] + off, vlen);
      const char *target = have_dom ? domain_target_for(&dom, volid) : NULL;
      char *name = target ? cat_xstrdup(target)
                 : k == NAS_ROOT ? cat_xstrdup("root")
                 : cat_xasprintf("datadisk-%s", volid);
      scan_add_disk(b, name, rel, volid, target ? 0 : k == NAS_ROOT ? 1 : 2);
      free(name);
      free(volid);
    }
    free(rel);
  }
  if (b) {
    qsort(b->disks, b->ndisks, sizeof *b->disks, cmp_disk);
    if (has_name(names, n, "domain-config.xml"))
      b->domain_xml = cat_xasprintf("%s/domain-config.xml", reldir);
    if (have_dom && (dom.name || dom.uuid)) {
      b->extra = cat_json_kv(2, "domain_name", dom.name,
                             "domain_uuid", dom.uuid);
    }
  }
  domain_info_free(&dom);
  return true;          /* a NAS directory, even with nothing finished yet */
}

const struct cat_layout layout_nas = {
  .name = "cloudstack-nas",
  .describe = "CloudStack NAS backup "
              "(<vm>/<yyyy.MM.dd.HH.mm.ss>/root.<volid>.qcow2)",
  .dir = nas_dir,
};
