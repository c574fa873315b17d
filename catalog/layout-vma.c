/* layout-vma.c — Proxmox vzdump dump directories:
 *
 *   <dump>/vzdump-qemu-<vmid>-YYYY_MM_DD-HH_MM_SS.vma[.zst|.lzo]
 *         /vzdump-qemu-<vmid>-YYYY_MM_DD-HH_MM_SS.log     (ignored)
 *         /vzdump-qemu-<vmid>-YYYY_MM_DD-HH_MM_SS.vma.notes
 *
 * Any directory holding such an archive is claimed.  One point in time
 * per archive, VM name <vmid> (as for PBS: the id is what vzdump names
 * files by; the config's `name:` goes into extra as "vm_name"), time from
 * the file name, read as UTC (vzdump writes the node's local time and
 * records no zone: on a node not running in UTC the times are shifted by
 * its offset).  One disk per device of the archive, named after the
 * device without "drive-" (scsi0, virtio1), a "vma" recipe layer: the
 * archive file, options dev=<device>.  qemu-server.conf from the archive
 * header is the VM definition: backup.json's extra "vm_config", shown by
 * the mount as <vm>/<time>/qemu-server.conf.
 *
 * The extent index is built in one pass (blk/vma.c) when the scan first
 * meets an archive (file identity changed) and stored in the index cache
 * next to the catalog (<catalog>.idx/vma-<dev>-<ino>-<size>-<mtime>, see
 * blk/vnbd-cache.c), where the disk service loads it on open; what the
 * scan needs from it (devices, sizes, broken devices, the config) is kept
 * in the file cache's info.  A .vma.zst / .vma.lzo is unpacked for that
 * pass into an unlinked sparse file in <catalog>.idx/ (at most the
 * uncompressed archive's size, gone when the pass ends; the mount unpacks
 * again, once per archive, and keeps that copy until unmount: see
 * disk/source.c).  A truncated archive (an interrupted backup) keeps the
 * devices it holds completely; the others are broken with the reason.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blk/vma.h"
#include "blk/vnbd.h"
#include "catalog/catalog-int.h"
#include "common/beneath.h"
#include "common/cleanup.h"
#include "common/error.h"

#define NOTES_MAX (64u << 10)

int
vma_parse_name(const char *s, size_t len, size_t *idlen, int64_t *t,
               const char **comp)
{
  size_t i = 12, stamp = 19;
  if (len < 12 || memcmp(s, "vzdump-qemu-", 12))
    return -EINVAL;
  while (i < len && s[i] >= '0' && s[i] <= '9')
    i++;
  if (i == 12 || i - 12 > 9 || i >= len || s[i] != '-' || len < i + 1 + stamp)
    return -EINVAL;
  *idlen = i - 12;
  const char *tail = s + i + 1 + stamp;
  size_t tl = len - (i + 1 + stamp);
  if (tl == 4 && !memcmp(tail, ".vma", 4)) *comp = NULL;
  else if (tl == 8 && !memcmp(tail, ".vma.zst", 8)) *comp = "zstd";
  else if (tl == 8 && !memcmp(tail, ".vma.lzo", 8)) *comp = "lzo";
  else return -EINVAL;
  /* YYYY_MM_DD-HH_MM_SS -> YYYY-MM-DD_HH-MM-SS (a generic form) */
  char buf[20];
  memcpy(buf, s + i + 1, stamp);
  buf[stamp] = '\0';
  if (buf[4] != '_' || buf[7] != '_' || buf[10] != '-' || buf[13] != '_' ||
      buf[16] != '_')
    return -EINVAL;
  buf[4] = buf[7] = '-';
  buf[10] = '_';
  buf[13] = buf[16] = '-';
  return layout_parse_time(buf, stamp, t);
}

/* the archive's facts as JSON for the file cache */
static char *
archive_info(struct scan *s, const char *rel)
{
  struct json_object *o = json_object_new_object();
  struct vma_source *src = NULL;
  bool hit;
  int fd = bfs_open_beneath(s->repo_fd, s->cat->repo, rel), r = fd;

  if (fd >= 0) {
    int cache = blk_idxcache_open(catalog_path(s->cat));
    r = vma_source_open(fd, rel, cache, cache, &src, &hit);
    if (cache >= 0)
      close(cache);
    close(fd);
  }
  if (r < 0)
    json_object_object_add(o, "error", json_object_new_string(bfs_last_error()));
  else {
    const struct vma_index *x = vma_source_index(src);
    struct json_object *a = json_object_new_array();
    for (size_t i = 0; i < x->ndev; i++) {
      const struct vma_dev *d = &x->devs[i];
      struct json_object *e = json_object_new_object();
      json_object_object_add(e, "name", json_object_new_string(d->name));
      json_object_object_add(e, "size", json_object_new_int64((int64_t)d->size));
      json_object_object_add(e, "alloc", json_object_new_int64(
                             (int64_t)((uint64_t)d->written * VMA_CLUSTER_SIZE)));
      if (vma_dev_check(x, d, rel) < 0)
        json_object_object_add(e, "error",
                               json_object_new_string(bfs_last_error()));
      json_object_array_add(a, e);
    }
    json_object_object_add(o, "devs", a);
    for (size_t i = 0; i < x->nconfig; i++)
      if (!strcmp(x->configs[i].name, "qemu-server.conf") &&
          !memchr(x->configs[i].data, '\0', x->configs[i].len))
        json_object_object_add(o, "conf", json_object_new_string_len(
                               (const char *)x->configs[i].data,
                               (int)x->configs[i].len));
    vma_source_free(src);
  }
  char *r2 = cat_xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
  json_object_put(o);
  return r2;
}

char *
pve_conf_name(const char *conf)
{
  for (const char *l = conf; l && *l;) {
    const char *eol = strchr(l, '\n');
    size_t n = eol ? (size_t)(eol - l) : strlen(l);
    if (n && l[0] == '[')
      break;
    if (n > 6 && !memcmp(l, "name: ", 6))
      return cat_xstrndup(l + 6, n - 6);
    l = eol ? eol + 1 : NULL;
  }
  return NULL;
}

static void
add_archive(struct scan *s, const struct scan_dir *sd, const char *file,
            size_t idlen, int64_t t, const char *comp)
{
  CLEANUP_FREE char *rel = strcmp(sd->rel, ".")
                         ? cat_xasprintf("%s/%s", sd->rel, file)
                         : cat_xstrdup(file);
  struct scan_file *f = scan_file_get(s, rel, FILE_META, NULL);
  if (!f)
    return;
  if (!f->info) {
    f->info = archive_info(s, rel);
    f->dirty = true;
  }
  CLEANUP_FREE char *vm = cat_xstrndup(file + 12, idlen);
  struct model_backup *b = scan_add_backup(s, vm, t, "vzdump", rel);
  struct json_object *o = json_tokener_parse(f->info), *v, *devs;
  if (!o) {
    b->status = cat_xstrdup("the archive's cached facts do not parse");
    return;
  }
  if (json_object_object_get_ex(o, "error", &v))
    b->status = cat_xasprintf("%s", json_object_get_string(v));
  if (json_object_object_get_ex(o, "devs", &devs))
    for (size_t i = 0; i < json_object_array_length(devs); i++) {
      struct json_object *e = json_object_array_get_idx(devs, i), *n, *z, *al;
      if (!json_object_object_get_ex(e, "name", &n) ||
          !json_object_object_get_ex(e, "size", &z))
        continue;
      const char *dev = json_object_get_string(n);
      CLEANUP_FREE char *opt = cat_xasprintf("dev=%s", dev);
      const char *dname = !strncmp(dev, "drive-", 6) && dev[6] ? dev + 6 : dev;
      struct scan_layer l = { rel, "vma", opt };
      uint64_t size = (uint64_t)json_object_get_int64(z);
      uint64_t alloc = json_object_object_get_ex(e, "alloc", &al)
                     ? (uint64_t)json_object_get_int64(al) : size;
      scan_add_disk_recipe(s, b, dname, NULL, (int)i, &l, 1, size,
                           alloc < size ? alloc : size, "vma", comp,
                           json_object_object_get_ex(e, "error", &v)
                           ? json_object_get_string(v) : NULL);
    }
  if (!b->status && !b->ndisks)
    b->status = cat_xstrdup("the archive holds no device");
  const char *conf = json_object_object_get_ex(o, "conf", &v)
                   ? json_object_get_string(v) : NULL;
  CLEANUP_FREE char *name = conf ? pve_conf_name(conf) : NULL;
  /* <archive>.notes: the operator's note on this backup */
  CLEANUP_FREE char *notes = NULL;
  CLEANUP_FREE char *nrel = cat_xasprintf("%s.notes", rel);
  char *buf;
  size_t len;
  if (scan_file_get(s, nrel, FILE_META, NULL) &&
      cat_read_file(s->repo_fd, nrel, NOTES_MAX, &buf, &len) == 0) {
    notes = cat_xstrndup(buf, len);
    free(buf);
  }
  b->extra = cat_json_kv(3, "vm_config", conf, "vm_name", name,
                         "notes", notes);
  json_object_put(o);
}

static bool
vma_dir(struct scan *s, const struct scan_dir *sd)
{
  bool any = false;
  for (size_t i = 0; i < sd->nfiles; i++) {
    const char *file = sd->files[i];
    size_t idlen;
    int64_t t;
    const char *comp;
    if (vma_parse_name(file, strlen(file), &idlen, &t, &comp) < 0)
      continue;
    add_archive(s, sd, file, idlen, t, comp);
    any = true;
  }
  return any;
}

const struct cat_layout layout_vma = {
  .name = "vzdump",
  .describe = "vzdump dump directory "
              "(vzdump-qemu-<vmid>-YYYY_MM_DD-HH_MM_SS.vma[.zst|.lzo])",
  .dir = vma_dir,
};
