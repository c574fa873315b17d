/* domxml.c — the libvirt domain definition of a quick restore (libxml2).
 *
 * From the backup's domain.xml (virsh dumpxml): every <disk device='disk'>
 * whose <target dev> names a backup disk (else the remaining ones in order)
 * becomes a file disk on the new qcow2 overlay (driver qcow2, no
 * backingStore, no encryption); disks of the original that were not backed
 * up are dropped; backup disks the definition lacks are added.  Unless the
 * identity is kept: a new <name>, a new random <uuid>, and no <mac> on the
 * interfaces, so libvirt generates fresh ones and nothing clashes with the
 * original VM.  Live-only state (domain id, vnet target names, dynamic
 * security labels) is dropped.  Without a domain.xml a minimal KVM
 * definition is written (the caller says it is a guess).
 *
 * The overlay's backing chain is written out as <backingStore> when the
 * caller gives one (quick restore --via repo: the repository's files, with
 * relabel='no' so libvirt never chowns a backup; --via nbd: the export),
 * so libvirt does not probe the overlay's header.  Host-specific networks
 * (CloudStack's cloudbr0 bridges, libvirt networks that do not exist here)
 * would stop the VM from starting: --network/--bridge put every interface
 * on one that exists, else such interfaces are dropped with a warning.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "restore/restore-int.h"

#define X (const xmlChar *)

static bool
is(const xmlNode *n, const char *name)
{
  return n->type == XML_ELEMENT_NODE && !xmlStrcmp(n->name, X name);
}

static xmlNode *
child(xmlNode *parent, const char *name)
{
  for (xmlNode *c = parent->children; c; c = c->next)
    if (is(c, name))
      return c;
  return NULL;
}

static xmlNode *
child_or_new(xmlNode *parent, const char *name)
{
  xmlNode *c = child(parent, name);
  return c ? c : xmlNewChild(parent, NULL, X name, NULL);
}

static void
remove_children(xmlNode *parent, const char *name)
{
  xmlNode *c = parent->children, *next;

  for (; c; c = next) {
    next = c->next;
    if (is(c, name)) {
      xmlUnlinkNode(c);
      xmlFreeNode(c);
    }
  }
}

/* an attribute's value as a malloc'd C string, or NULL */
static char *
attr(xmlNode *n, const char *name)
{
  xmlChar *v = xmlGetProp(n, X name);
  char *s = v ? strdup((const char *) v) : NULL;
  xmlFree(v);
  return s;
}

static int
new_uuid(char out[37])
{
  unsigned char u[16];

  if (getrandom(u, sizeof u, 0) != sizeof u)
    return bfs_error(-EIO, "getrandom: %s", strerror(errno));
  u[6] = (u[6] & 0x0f) | 0x40;      /* version 4 */
  u[8] = (u[8] & 0x3f) | 0x80;      /* RFC 4122 variant */
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5],
           u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  return 0;
}

static bool
is_target_name(const char *s)
{
  size_t n = strlen(s);
  return n >= 3 && strchr("vshx", s[0]) && s[1] == 'd' &&
         strspn(s + 2, "abcdefghijklmnopqrstuvwxyz") == n - 2;
}

/* a target dev not yet used in devices: vda, vdb, ... */
static void
free_target(xmlNode *devices, char out[8])
{
  for (int i = 0; i < 26; i++) {
    bool used = false;
    snprintf(out, 8, "vd%c", 'a' + i);
    for (xmlNode *c = devices->children; c && !used; c = c->next) {
      xmlNode *t = is(c, "disk") ? child(c, "target") : NULL;
      char *dev = t ? attr(t, "dev") : NULL;
      used = dev && !strcmp(dev, out);
      free(dev);
    }
    if (!used)
      return;
  }
}

/* <backingStore> chain of layers[0..n) under parent, ended by an empty
 * <backingStore/> (nothing more to probe) */
static void
add_backing(xmlNode *parent, const struct domxml_layer *l, size_t n)
{
  for (size_t i = 0; i < n; i++, l++) {
    xmlNode *bs = xmlNewChild(parent, NULL, X "backingStore", NULL), *src;
    xmlSetProp(xmlNewChild(bs, NULL, X "format", NULL), X "type",
               X l->format);
    src = xmlNewChild(bs, NULL, X "source", NULL);
    if (l->file) {
      xmlSetProp(bs, X "type", X "file");
      xmlSetProp(src, X "file", X l->file);
      xmlNode *sl = xmlNewChild(src, NULL, X "seclabel", NULL);
      xmlSetProp(sl, X "model", X "dac");
      xmlSetProp(sl, X "relabel", X "no");
    } else {
      xmlSetProp(bs, X "type", X "network");
      xmlSetProp(src, X "protocol", X "nbd");
      xmlSetProp(src, X "name", X l->nbd_name);
      xmlNode *h = xmlNewChild(src, NULL, X "host", NULL);
      xmlSetProp(h, X "transport", X "unix");
      xmlSetProp(h, X "socket", X l->nbd_socket);
    }
    parent = bs;
  }
  if (n)
    xmlNewChild(parent, NULL, X "backingStore", NULL);
}

/* point one <disk> element at an overlay */
static void
set_disk(xmlNode *disk, const struct domxml_disk *dd)
{
  const char *overlay = dd->overlay;
  xmlNode *drv, *src;

  xmlSetProp(disk, X "type", X "file");
  xmlSetProp(disk, X "device", X "disk");
  drv = child_or_new(disk, "driver");
  xmlSetProp(drv, X "name", X "qemu");
  xmlSetProp(drv, X "type", X "qcow2");
  remove_children(disk, "source");
  remove_children(disk, "backingStore");
  remove_children(disk, "encryption");
  remove_children(disk, "auth");
  remove_children(disk, "mirror");
  src = xmlNewNode(NULL, X "source");
  xmlSetProp(src, X "file", X overlay);
  if (disk->children)
    xmlAddNextSibling(drv, src);
  else
    xmlAddChild(disk, src);
  if (dd->nbacking) {
    xmlNode *tmp = xmlNewNode(NULL, X "tmp");
    add_backing(tmp, dd->backing, dd->nbacking);
    xmlNode *bs = tmp->children;
    xmlUnlinkNode(bs);
    xmlAddNextSibling(src, bs);
    xmlFreeNode(tmp);
  }
}

static xmlNode *
add_disk(xmlNode *devices, const struct domxml_disk *dd)
{
  const char *name = dd->name;
  char dev[8];
  xmlNode *d = xmlNewChild(devices, NULL, X "disk", NULL), *t;

  xmlNewChild(d, NULL, X "driver", NULL);
  set_disk(d, dd);
  if (is_target_name(name))
    snprintf(dev, sizeof dev, "%.7s", name);
  else
    free_target(devices, dev);
  t = xmlNewChild(d, NULL, X "target", NULL);
  xmlSetProp(t, X "dev", X dev);
  xmlSetProp(t, X "bus", X (dev[0] == 's' ? "scsi" : dev[0] == 'h' ? "ide" :
                            dev[0] == 'x' ? "xen" : "virtio"));
  return d;
}

static xmlDoc *
minimal(const char *vm)
{
  xmlDoc *doc = xmlNewDoc(X "1.0");
  xmlNode *dom = xmlNewNode(NULL, X "domain"), *n, *os, *dev;

  xmlDocSetRootElement(doc, dom);
  xmlSetProp(dom, X "type", X "kvm");
  xmlNewChild(dom, NULL, X "name", X vm);
  n = xmlNewChild(dom, NULL, X "memory", X "2048");
  xmlSetProp(n, X "unit", X "MiB");
  xmlNewChild(dom, NULL, X "vcpu", X "2");
  os = xmlNewChild(dom, NULL, X "os", NULL);
  n = xmlNewChild(os, NULL, X "type", X "hvm");
  xmlSetProp(n, X "arch", X "x86_64");
  n = xmlNewChild(os, NULL, X "boot", NULL);
  xmlSetProp(n, X "dev", X "hd");
  n = xmlNewChild(dom, NULL, X "features", NULL);
  xmlNewChild(n, NULL, X "acpi", NULL);
  xmlNewChild(n, NULL, X "apic", NULL);
  dev = xmlNewChild(dom, NULL, X "devices", NULL);
  n = xmlNewChild(dev, NULL, X "interface", NULL);
  xmlSetProp(n, X "type", X "network");
  xmlSetProp(xmlNewChild(n, NULL, X "source", NULL), X "network", X "default");
  xmlSetProp(xmlNewChild(n, NULL, X "model", NULL), X "type", X "virtio");
  xmlSetProp(xmlNewChild(dev, NULL, X "serial", NULL), X "type", X "pty");
  xmlSetProp(xmlNewChild(dev, NULL, X "console", NULL), X "type", X "pty");
  n = xmlNewChild(dev, NULL, X "graphics", NULL);
  xmlSetProp(n, X "type", X "vnc");
  xmlSetProp(n, X "autoport", X "yes");
  return doc;
}

static void
strip_live_state(xmlNode *dom, xmlNode *devices, bool same_identity)
{
  xmlNode *c, *next;

  xmlUnsetProp(dom, X "id");
  for (c = dom->children; c; c = next) {
    next = c->next;
    if (is(c, "seclabel")) {
      char *type = attr(c, "type");
      if (type && !strcmp(type, "dynamic")) {
        xmlUnlinkNode(c);
        xmlFreeNode(c);
      }
      free(type);
    }
  }
  for (c = devices->children; c; c = c->next) {
    if (!is(c, "interface"))
      continue;
    if (!same_identity)
      remove_children(c, "mac");
    xmlNode *t = child(c, "target");
    char *dev = t ? attr(t, "dev") : NULL;
    if (dev && (!strncmp(dev, "vnet", 4) || !strncmp(dev, "macvtap", 7))) {
      xmlUnlinkNode(t);
      xmlFreeNode(t);
    }
    free(dev);
  }
}

static int
set_identity(xmlNode *dom, const struct domxml_opts *o, char **name_out)
{
  xmlNode *name = child(dom, "name"), *uuid;
  xmlChar *old = name ? xmlNodeGetContent(name) : NULL;
  char *nm = NULL, u[37];

  if (o->same_identity)
    nm = strdup(old ? (const char *) old : o->vm);
  else if (o->new_name)
    nm = strdup(o->new_name);
  else if (asprintf(&nm, "%s-restored", old ? (const char *) old : o->vm) < 0)
    nm = NULL;
  xmlFree(old);
  if (!nm)
    return bfs_error(-ENOMEM, "out of memory");
  if (!name)
    name = xmlNewChild(dom, NULL, X "name", NULL);
  xmlNodeSetContent(name, NULL);
  xmlNodeAddContent(name, X nm);
  *name_out = nm;
  if (!o->same_identity || !child(dom, "uuid")) {
    if (new_uuid(u) < 0)
      return -EIO;
    uuid = child_or_new(dom, "uuid");
    xmlNodeSetContent(uuid, X u);
    if (uuid != name->next) {    /* keep <uuid> right after <name> */
      xmlUnlinkNode(uuid);
      xmlAddNextSibling(name, uuid);
    }
  }
  return 0;
}

static int
set_disks(xmlNode *devices, const struct domxml_disk *disks, size_t n,
          char **targets)
{
  xmlNode **used = calloc(n + 1, sizeof *used), *c, *next;
  size_t i;

  if (!used)
    return bfs_error(-ENOMEM, "out of memory");
  /* first by target name, then the remaining disks in order */
  for (int pass = 0; pass < 2; pass++)
    for (i = 0; i < n; i++) {
      if (used[i])
        continue;
      for (c = devices->children; c && !used[i]; c = c->next) {
        if (!is(c, "disk") || xmlHasProp(c, X "_bfs"))
          continue;
        char *dev = attr(c, "device");
        bool isdisk = !dev || !strcmp(dev, "disk");
        free(dev);
        if (!isdisk)
          continue;
        xmlNode *t = child(c, "target");
        char *tdev = t ? attr(t, "dev") : NULL;
        if (pass == 1 || (tdev && !strcmp(tdev, disks[i].name))) {
          used[i] = c;
          xmlSetProp(c, X "_bfs", X "1");
        }
        free(tdev);
      }
    }
  /* drop disks that were not backed up */
  for (c = devices->children; c; c = next) {
    next = c->next;
    if (!is(c, "disk"))
      continue;
    char *dev = attr(c, "device");
    bool isdisk = !dev || !strcmp(dev, "disk");
    free(dev);
    if (isdisk && !xmlHasProp(c, X "_bfs")) {
      xmlNode *t = child(c, "target");
      char *tdev = t ? attr(t, "dev") : NULL;
      bfs_log(BFS_LOG_WARN, "domain.xml: disk %s is not in the backup; "
              "left out of the restored definition", tdev ? tdev : "?");
      free(tdev);
      xmlUnlinkNode(c);
      xmlFreeNode(c);
    }
  }
  for (i = 0; i < n; i++) {
    if (used[i]) {
      xmlUnsetProp(used[i], X "_bfs");
      set_disk(used[i], &disks[i]);
    }
    else
      used[i] = add_disk(devices, &disks[i]);
    xmlNode *t = child(used[i], "target");
    targets[i] = t ? attr(t, "dev") : NULL;
    if (!targets[i])
      targets[i] = strdup(disks[i].name);
  }
  free(used);
  return 0;
}

static bool
have_bridge(const struct domxml_opts *o, const char *br)
{
  CLEANUP_FREE char *p = NULL;

  if (!br || !*br || strchr(br, '/') || br[0] == '.')
    return false;
  if (asprintf(&p, "%s/%s", o->sysfs_net ? o->sysfs_net : "/sys/class/net",
               br) < 0)
    return true;                  /* cannot tell: keep it */
  return access(p, F_OK) == 0;
}

static bool
have_network(const struct domxml_opts *o, const char *net)
{
  if (!o->networks)
    return true;                  /* unknown here: keep it */
  for (size_t i = 0; net && i < o->nnetworks; i++)
    if (!strcmp(o->networks[i], net))
      return true;
  return false;
}

/* put iface on o->network / o->bridge */
static void
rewrite_iface(xmlNode *iface, const struct domxml_opts *o)
{
  xmlNode *src;

  remove_children(iface, "source");
  remove_children(iface, "virtualport");    /* openvswitch, 802.1Qbh */
  remove_children(iface, "vlan");
  xmlSetProp(iface, X "type", X (o->network ? "network" : "bridge"));
  src = xmlNewNode(NULL, X "source");
  xmlSetProp(src, X (o->network ? "network" : "bridge"),
             X (o->network ? o->network : o->bridge));
  if (iface->children)
    xmlAddPrevSibling(iface->children, src);
  else
    xmlAddChild(iface, src);
}

/* libvirt refuses per-source relabel='no' when the domain relabels
 * nothing already (<seclabel relabel='no'> or type='none'): drop ours */
static void
backing_labels(xmlNode *dom, xmlNode *devices)
{
  bool off = false;

  for (xmlNode *c = dom->children; c && !off; c = c->next) {
    if (!is(c, "seclabel"))
      continue;
    char *type = attr(c, "type"), *rl = attr(c, "relabel"),
         *model = attr(c, "model");
    off = (type && !strcmp(type, "none")) ||
          (rl && !strcmp(rl, "no") && (!model || !strcmp(model, "dac")));
    free(type);
    free(rl);
    free(model);
  }
  if (!off)
    return;
  for (xmlNode *d = devices->children; d; d = d->next) {
    if (!is(d, "disk"))
      continue;
    for (xmlNode *bs = child(d, "backingStore"); bs; bs = child(bs, "backingStore")) {
      xmlNode *src = child(bs, "source");
      if (src)
        remove_children(src, "seclabel");
    }
  }
}

/* interfaces on networks this host does not have: rewritten or dropped */
static void
set_networks(xmlNode *devices, const struct domxml_opts *o)
{
  xmlNode *c, *next;

  for (c = devices->children; c; c = next) {
    next = c->next;
    if (!is(c, "interface"))
      continue;
    if (o->network || o->bridge) {
      rewrite_iface(c, o);
      continue;
    }
    char *type = attr(c, "type");
    xmlNode *src = child(c, "source");
    char *br = src ? attr(src, "bridge") : NULL;
    char *net = src ? attr(src, "network") : NULL;
    char *dev = src ? attr(src, "dev") : NULL;
    const char *missing = NULL, *what = NULL;
    if (type && !strcmp(type, "bridge") && !have_bridge(o, br))
      missing = br ? br : "?", what = "bridge";
    else if (type && !strcmp(type, "network") && !have_network(o, net))
      missing = net ? net : "?", what = "libvirt network";
    else if (type && !strcmp(type, "direct") && !have_bridge(o, dev))
      missing = dev ? dev : "?", what = "host interface";
    if (missing) {
      bfs_log(BFS_LOG_WARN, "domain.xml: interface on %s '%s', which this "
              "host does not have: dropped (give --network NAME or --bridge "
              "BR to keep it)", what, missing);
      xmlUnlinkNode(c);
      xmlFreeNode(c);
    }
    free(type);
    free(br);
    free(net);
    free(dev);
  }
}

int
restore_domxml(const char *src_xml, const struct domxml_disk *disks, size_t n,
               const struct domxml_opts *o, char **xml_out, char **name_out,
               char **targets)
{
  xmlDoc *doc;
  xmlNode *dom, *devices;
  xmlChar *mem = NULL;
  int len = 0, r;

  if (src_xml) {
    doc = xmlReadMemory(src_xml, strlen(src_xml), "domain.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOBLANKS |
                        XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        return bfs_error(-EINVAL, "domain.xml: not XML: %s",
                         e && e->message ? e->message : "parse error");
    }
  }
  else
    doc = minimal(o->vm);
  dom = xmlDocGetRootElement(doc);
  if (!dom || !is(dom, "domain")) {
    xmlFreeDoc(doc);
    return bfs_error(-EINVAL, "domain.xml: the root element is not <domain>");
  }
  devices = child_or_new(dom, "devices");
  strip_live_state(dom, devices, o->same_identity);
  r = set_identity(dom, o, name_out);
  if (r == 0)
    r = set_disks(devices, disks, n, targets);
  if (r == 0) {
    set_networks(devices, o);
    backing_labels(dom, devices);
  }
  if (r == 0) {
    xmlDocDumpFormatMemoryEnc(doc, &mem, &len, "UTF-8", 1);
    *xml_out = mem ? strndup((const char *) mem, len) : NULL;
    xmlFree(mem);
    if (!*xml_out)
      r = bfs_error(-ENOMEM, "out of memory");
  }
  xmlFreeDoc(doc);
  return r;
}
