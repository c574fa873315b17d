/* layout-pbs.c — Proxmox Backup Server datastores (read-only):
 *
 *   <root>/.chunks/<4 hex>/<sha256>            the chunk store
 *   <root>[/ns/<ns>[/ns/<sub>...]]/vm/<id>/<time>/
 *        index.json.blob                       written last: absent = the
 *                                              snapshot is unfinished
 *        drive-<dev>.img.fidx                  one fixed index per disk
 *        qemu-server.conf.blob                 the VM config (a DataBlob)
 *
 * A directory is a datastore root when it holds vm/ or ns/ and a .chunks
 * directory; it is claimed and walked here (namespaces nest deeper than
 * the scan's own walk goes).  Only VM snapshots with fixed indexes are
 * backups (ct/ and host/ use dynamic indexes of file archives: ignored).
 *
 * VM names: the numeric <id>, prefixed by the namespace path when the
 * snapshot is in one (ns a/b, id 100: "a-b-100"), and by the datastore
 * directory's path when that is not the repository itself
 * ("store1-100").  The `name:` of qemu-server.conf is not the VM's name:
 * it can change between snapshots and two ids can share it, while the id
 * is what PBS groups by; it is in backup.json's extra as "vm_name".
 * The point in time is the snapshot directory's RFC 3339 name.
 *
 * Each disk is one "pbs" recipe layer: the .fidx file, options
 * store=<root> (disk/source.c opens one chunk store per datastore from
 * it, with -o pbs_keyfile= for encrypted ones).  The scan reads only the
 * 4 KiB index header (size, chunk size; cached in the file cache's info
 * by file identity) and the config blob (decoded with the pbs_keyfile
 * key when it is encrypted; without the key it is not shown).  Chunks are read and
 * verified on demand by blk/pbs*.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "blk/pbs.h"
#include "catalog/catalog-int.h"
#include "common/beneath.h"
#include "common/cleanup.h"
#include "common/error.h"

#define PBS_NS_MAX_DEPTH 8          /* PBS itself allows 7 */
#define PBS_CONF_MAX (1u << 20)

static bool
has_name(const struct scan_names *n, const char *name)
{
  for (size_t i = 0; i < n->n; i++)
    if (!strcmp(n->v[i], name))
      return true;
  return false;
}

size_t
pbs_drive_name(const char *s, size_t len)
{
  if (len <= 6 + 9 || memcmp(s, "drive-", 6) ||
      memcmp(s + len - 9, ".img.fidx", 9) || memchr(s, '/', len) ||
      memchr(s, '\0', len))
    return 0;
  return len - 6 - 9;
}

int
pbs_parse_snapshot(const char *s, size_t len, size_t *idlen, int64_t *t)
{
  size_t i = 3;
  if (len < 3 || memcmp(s, "vm/", 3))
    return -EINVAL;
  while (i < len && s[i] >= '0' && s[i] <= '9')
    i++;
  if (i == 3 || i - 3 > 9 || i >= len || s[i] != '/' || i + 1 == len ||
      memchr(s + i + 1, '/', len - i - 1))
    return -EINVAL;
  *idlen = i - 3;
  return layout_parse_time(s + i + 1, len - i - 1, t);
}

/* the index header's facts, through the file cache */
static int
fidx_facts(struct scan *s, struct scan_file *f, uint64_t *size,
           uint64_t *nchunks, char **err)
{
  *err = NULL;
  if (!f->info) {
    struct blk_io *io = NULL;
    unsigned char h[PBS_FIDX_HEADER];
    uint64_t sz = 0, cs = 0, n = 0;
    struct json_object *o = json_object_new_object();
    int fd = bfs_open_beneath(s->repo_fd, s->cat->repo, f->path), r = fd;
    if (fd >= 0 && (r = blk_io_fd(fd, f->path, &io)) == 0) {
      r = pbs_fidx_info(io, h, &sz, &cs, &n);
      blk_io_close(io);
    }
    if (r < 0)
      json_object_object_add(o, "error",
                             json_object_new_string(bfs_last_error()));
    else {
      json_object_object_add(o, "size", json_object_new_int64((int64_t)sz));
      json_object_object_add(o, "chunks", json_object_new_int64((int64_t)n));
    }
    f->info = cat_xstrdup(json_object_to_json_string_ext(o,
                                                         JSON_C_TO_STRING_PLAIN));
    f->dirty = true;
    json_object_put(o);
  }
  struct json_object *o = json_tokener_parse(f->info), *v;
  if (!o)
    return -EINVAL;
  if (json_object_object_get_ex(o, "error", &v))
    *err = cat_xstrdup(json_object_get_string(v));
  *size = json_object_object_get_ex(o, "size", &v)
        ? (uint64_t)json_object_get_int64(v) : 0;
  *nchunks = json_object_object_get_ex(o, "chunks", &v)
           ? (uint64_t)json_object_get_int64(v) : 0;
  json_object_put(o);
  return 0;
}

/* qemu-server.conf.blob decoded (unencrypted datastores), or NULL */
static char *
read_conf(struct scan *s, const char *snaprel)
{
  CLEANUP_FREE char *rel = cat_xasprintf("%s/qemu-server.conf.blob", snaprel);
  char *raw = NULL, *text = NULL;
  unsigned char *out = NULL;
  size_t len, olen;

  CLEANUP_FREE char *keyfile = NULL;
  struct pbs_key key;
  bool have_key = cat_source_option(s->cat, "pbs_keyfile", &keyfile) == 0 &&
                  pbs_key_load(keyfile, NULL, &key) == 0;

  if (cat_read_file(s->repo_fd, rel, PBS_CONF_MAX + 64, &raw, &len) < 0)
    return NULL;
  if (pbs_blob_decode((unsigned char *)raw, len, have_key ? &key : NULL,
                      PBS_CONF_MAX, rel, &out, &olen) == 0 &&
      !memchr(out, '\0', olen))
    text = cat_xstrndup((char *)out, olen);
  free(raw);
  free(out);
  return text;
}

static void
snapshot(struct scan *s, const char *store, const char *vm, const char *id,
         const char *snaprel, const char *tname)
{
  struct scan_names files = { 0 };
  CLEANUP_FREE char *path = cat_xasprintf("vm/%s/%s", id, tname);
  size_t idlen;
  int64_t t;

  if (pbs_parse_snapshot(path, strlen(path), &idlen, &t) < 0)
    return;
  scan_list(s, snaprel, &files, NULL);
  bool finished = has_name(&files, "index.json.blob");
  struct model_backup *b = scan_add_backup(s, vm, t, "pbs", snaprel);
  CLEANUP_FREE char *opt = cat_xasprintf("store=%s", store);
  const char *unfinished = "unfinished snapshot: no index.json.blob (the "
                           "backup did not complete)";
  for (size_t i = 0; i < files.n; i++) {
    size_t dl = pbs_drive_name(files.v[i], strlen(files.v[i]));
    if (!dl)
      continue;
    CLEANUP_FREE char *rel = cat_xasprintf("%s/%s", snaprel, files.v[i]);
    CLEANUP_FREE char *dev = cat_xstrndup(files.v[i] + 6, dl);
    CLEANUP_FREE char *err = NULL;
    struct scan_file *f = scan_file_get(s, rel, FILE_META, NULL);
    uint64_t size = 0, n = 0;
    if (!f || fidx_facts(s, f, &size, &n, &err) < 0)
      continue;
    struct scan_layer l = { rel, "pbs", opt };
    scan_add_disk_recipe(s, b, dev, NULL, 0, &l, 1, size, size, "pbs", "zstd",
                         !finished ? unfinished : err);
  }
  if (!b->ndisks && !finished)
    b->status = cat_xstrdup(unfinished);
  else if (!b->ndisks)
    b->status = cat_xstrdup("no drive-*.img.fidx in the snapshot");
  CLEANUP_FREE char *conf = has_name(&files, "qemu-server.conf.blob")
                          ? read_conf(s, snaprel) : NULL;
  CLEANUP_FREE char *name = conf ? pve_conf_name(conf) : NULL;
  b->extra = cat_json_kv(3, "vm_config", conf, "vm_name", name,
                         "datastore", store);
  scan_names_free(&files);
}

/* <nsrel>/vm/<id>/<time>/ and the namespaces below nsrel */
static void
walk_ns(struct scan *s, const char *store, const char *nsrel,
        const char *prefix, unsigned depth)
{
  struct scan_names ids = { 0 }, times = { 0 }, subs = { 0 };
  bool top = !strcmp(nsrel, ".");
  CLEANUP_FREE char *vmdir = top ? cat_xstrdup("vm")
                                 : cat_xasprintf("%s/vm", nsrel);
  CLEANUP_FREE char *nsdir = top ? cat_xstrdup("ns")
                                 : cat_xasprintf("%s/ns", nsrel);

  scan_list(s, vmdir, NULL, &ids);
  for (size_t i = 0; i < ids.n; i++) {
    const char *id = ids.v[i];
    if (!*id || strspn(id, "0123456789") != strlen(id) || strlen(id) > 9)
      continue;
    CLEANUP_FREE char *iddir = cat_xasprintf("%s/%s", vmdir, id);
    CLEANUP_FREE char *vm = cat_xasprintf("%s%s", prefix, id);
    scan_list(s, iddir, NULL, &times);
    for (size_t j = 0; j < times.n; j++) {
      CLEANUP_FREE char *snap = cat_xasprintf("%s/%s", iddir, times.v[j]);
      snapshot(s, store, vm, id, snap, times.v[j]);
    }
    scan_names_free(&times);
  }
  scan_names_free(&ids);
  if (depth >= PBS_NS_MAX_DEPTH)
    return;
  scan_list(s, nsdir, NULL, &subs);
  for (size_t i = 0; i < subs.n; i++) {
    CLEANUP_FREE char *sub = cat_xasprintf("%s/%s", nsdir, subs.v[i]);
    CLEANUP_FREE char *p = cat_xasprintf("%s%s-", prefix, subs.v[i]);
    walk_ns(s, store, sub, p, depth + 1);
  }
  scan_names_free(&subs);
}

static bool
pbs_dir(struct scan *s, const struct scan_dir *d)
{
  bool vm = false, ns = false;
  struct stat st;

  for (size_t i = 0; i < d->ndirs; i++) {
    vm = vm || !strcmp(d->dirs[i], "vm");
    ns = ns || !strcmp(d->dirs[i], "ns");
  }
  if (!vm && !ns)
    return false;
  CLEANUP_FREE char *chunks = cat_xasprintf("%s/.chunks", d->rel);
  if (fstatat(s->repo_fd, chunks, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
      !S_ISDIR(st.st_mode))
    return false;
  CLEANUP_FREE char *prefix = NULL;
  if (d->depth) {
    prefix = cat_xasprintf("%s-", d->rel);
    for (char *p = prefix; *p; p++)
      if (*p == '/')
        *p = '-';
  }
  walk_ns(s, d->rel, d->rel, prefix ? prefix : "", 0);
  return true;
}

const struct cat_layout layout_pbs = {
  .name = "pbs",
  .describe = "Proxmox Backup Server datastore "
              "(<root>[/ns/<ns>]/vm/<id>/<time>/drive-<dev>.img.fidx)",
  .dir = pbs_dir,
};
