/* cmd.c — `backupfs scan` and `backupfs list`.
 *
 * scan prints one summary line (or --json) after building or updating the
 * catalog; list rescans incrementally first (unchanged files are only
 * stat'ed) unless --no-scan, then prints a table or JSON.  Both exit 0 on
 * success even when backups are broken (that is what `verify` is for), 1
 * on errors, 2 on usage errors.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/json-str.h"
#include "common/kvopt.h"
#include "catalog/tz.h"
#include "blk/luks.h"

enum { OPT_CATALOG = 256, OPT_CSB, OPT_NO_SCAN, OPT_NAS_TZ, OPT_KEY_FILE };

static const struct option long_opts[] = {
  { "catalog", required_argument, NULL, OPT_CATALOG },
  { "cloudstack-backups", required_argument, NULL, OPT_CSB },
  { "json", no_argument, NULL, 'j' },
  { "no-scan", no_argument, NULL, OPT_NO_SCAN },
  { "nas-timezone", required_argument, NULL, OPT_NAS_TZ },
  { "key-file", required_argument, NULL, OPT_KEY_FILE },
  { "quiet", no_argument, NULL, 'q' },
  { "help", no_argument, NULL, 'h' },
  { NULL, 0, NULL, 0 },
};

struct args {
  struct catalog_opts opts;
  bool json, no_scan, quiet;
  const char *repo, *vm;
  char *source_options;         /* --nas-timezone as nas_tz= */
};

/* --nas-timezone ZONE: checked now (a typo is a usage error, not a scan
 * with the wrong times), then the nas_tz source option */
static int
nas_timezone(struct args *a, const char *zone)
{
  struct cat_tz *tz;
  if (cat_tz_load(zone, &tz) < 0) {
    fprintf(stderr, "backupfs: --nas-timezone: %s\n", bfs_last_error());
    return -1;
  }
  cat_tz_free(tz);
  char *next = bfs_kvopt_set(a->source_options, "nas_tz", zone);
  if (!next) abort();
  free(a->source_options);
  a->source_options = next;
  a->opts.source_options = next;
  return 0;
}

static int
parse(int argc, char **argv, struct args *a, bool list, void (*help)(FILE *))
{
  int c;
  optind = 0;                               /* full reinitialisation */
  while ((c = getopt_long(argc, argv, "hjq", long_opts, NULL)) != -1)
    switch (c) {
    case OPT_CATALOG: a->opts.catalog_path = optarg; break;
    case OPT_CSB: a->opts.cloudstack_backups = optarg; break;
    case OPT_NAS_TZ:
      if (nas_timezone(a, optarg) < 0) return -1;
      break;
    case OPT_KEY_FILE: {
      /* scan and list read no disk: the key only has to be one, and
       * encrypted disks then count as readable */
      struct blk_key *key;
      if (blk_key_from_file(optarg, &key) < 0) {
        fprintf(stderr, "backupfs: --key-file %s: %s\n", optarg,
                bfs_last_error());
        return -1;
      }
      blk_key_free(key);
      a->opts.luks_key = true;
      break;
    }
    case 'j': a->json = true; break;
    case 'q': a->quiet = true; break;
    case OPT_NO_SCAN:
      if (!list) goto usage;
      a->no_scan = true;
      break;
    case 'h': help(stdout); exit(0);
    default: goto usage;
    }
  if (optind >= argc || argc - optind > (list ? 2 : 1)) goto usage;
  a->repo = argv[optind];
  a->vm = list && argc - optind == 2 ? argv[optind + 1] : NULL;
  a->opts.progress = !a->json && !a->quiet && isatty(STDERR_FILENO);
  return 0;
usage:
  help(stderr);
  return -1;
}

static void
scan_help(FILE *f)
{
  fprintf(f,
    "usage: backupfs scan [--catalog FILE] [--cloudstack-backups FILE]\n"
    "                     [--nas-timezone ZONE] [--key-file FILE] [--json]\n"
    "                     [--quiet] REPO\n\n"
    "Build or update the catalog of the backup repository REPO (CloudStack\n"
    "NAS, CloudStack KBOSS or generic layout).  Files whose size, mtime and\n"
    "inode did not change are not reopened.  Prints VMs, backups, images,\n"
    "broken backups, image headers read and seconds.\n\n"
    "  --catalog FILE              SQLite catalog to use (default: one per\n"
    "                              repository in $XDG_CACHE_HOME/backupfs/,\n"
    "                              /var/cache/backupfs/ for root)\n"
    "  --cloudstack-backups FILE   CloudStack listBackups JSON export naming\n"
    "                              the VMs of KBOSS volumes (remembered)\n"
    "  --key-file FILE             a LUKS passphrase file (checked, not kept):\n"
    "                              encrypted disks count as readable\n"
    "  --nas-timezone ZONE         the zone CloudStack NAS stamps are in\n"
    "                              (America/New_York, UTC; remembered;\n"
    "                              default: $TZ, else /etc/localtime)\n"
    "  --json                      print the summary as JSON\n"
    "  -q, --quiet                 no progress, no summary\n"
    "  -h, --help                  this help\n");
}

static void
list_help(FILE *f)
{
  fprintf(f,
    "usage: backupfs list [--json] [--no-scan] [--catalog FILE]\n"
    "                     [--cloudstack-backups FILE] [--nas-timezone ZONE]\n"
    "                     [--key-file FILE] REPO [VM]\n\n"
    "List the VMs of REPO and their backups (points in time): disks, virtual\n"
    "size, bytes allocated by the top images, deepest backing chain and\n"
    "status (ok, or why the backup is broken).  The catalog is updated\n"
    "incrementally first.\n\n"
    "  --json        backup.json objects grouped by VM\n"
    "  --no-scan     list what the catalog holds without rescanning\n"
    "  --catalog FILE, --cloudstack-backups FILE, --nas-timezone ZONE,\n"
    "  --key-file FILE   as for scan\n"
    "  -h, --help    this help\n");
}

static int
fail(const char *what)
{
  fprintf(stderr, "backupfs: %s: %s\n", what, bfs_last_error());
  return 1;
}

int
catalog_scan_cmd(int argc, char **argv)
{
  struct args a = { 0 };
  catalog_t *cat;
  struct catalog_scan_stats st;

  if (parse(argc, argv, &a, false, scan_help) < 0) return 2;
  int ro = catalog_open(a.repo, &a.opts, &cat);
  free(a.source_options);               /* the catalog has its copy */
  if (ro < 0) return fail("scan");
  int r = catalog_scan(cat, &st);
  if (r < 0) {
    catalog_close(cat);
    return fail("scan");
  }
  if (a.json) {
    struct json_object *o = json_object_new_object();
    bfs_json_add_str(o, "repository", catalog_repo(cat));
    bfs_json_add_str(o, "catalog", catalog_path(cat));
    json_object_object_add(o, "vms", json_object_new_int64(st.vms));
    json_object_object_add(o, "backups", json_object_new_int64(st.backups));
    json_object_object_add(o, "images", json_object_new_int64(st.images));
    json_object_object_add(o, "broken", json_object_new_int64(st.broken));
    json_object_object_add(o, "reopened", json_object_new_int64(st.reopened));
    json_object_object_add(o, "changed_vms", json_object_new_int64(st.changed));
    json_object_object_add(o, "seconds", json_object_new_double(st.seconds));
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  }
  else if (!a.quiet)
    printf("%s: %u VMs, %u backups, %u images, %u broken, %u reopened, "
           "%.2f s\n", catalog_repo(cat), st.vms, st.backups, st.images,
           st.broken, st.reopened, st.seconds);
  catalog_close(cat);
  return 0;
}

struct row { char c[6][64]; char *status; };

/* table cells: control bytes shown as \xNN, long values cut with "..." */
static void
cell(char dst[64], const char *src)
{
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
    if (o + 5 >= 64 - 4) {
      memcpy(dst + o, "...", 4);
      return;
    }
    if (*p < 0x20 || *p == 0x7f)
      o += snprintf(dst + o, 64 - o, "\\x%02x", *p);
    else
      dst[o++] = (char)*p;
  }
  dst[o] = '\0';
}

static void
table_row(const struct catalog_backup *b, struct row *r)
{
  uint64_t vsize = 0, alloc = 0;
  size_t depth = 0;
  for (size_t i = 0; i < b->ndisks; i++) {
    vsize += b->disks[i].virtual_size;
    alloc += b->disks[i].allocated;
    if (b->disks[i].chain_len > depth) depth = b->disks[i].chain_len;
  }
  char v[16], al[16];
  cat_human_size(vsize, v);
  cat_human_size(alloc, al);
  cell(r->c[0], b->vm);
  cell(r->c[1], b->name);
  snprintf(r->c[2], 64, "%zu", b->ndisks);
  snprintf(r->c[3], 64, "%s", v);
  snprintf(r->c[4], 64, "%s", al);
  snprintf(r->c[5], 64, "%zu", depth);
  r->status = cat_xmalloc(4 * strlen(b->status) + 1);   /* not cut */
  char *q = r->status;
  for (const unsigned char *p = (const unsigned char *)b->status; *p; p++)
    q += (*p < 0x20 || *p == 0x7f) ? sprintf(q, "\\x%02x", *p)
                                   : (*q = (char)*p, 1);
  *q = '\0';
}

int
catalog_list_cmd(int argc, char **argv)
{
  struct args a = { 0 };
  catalog_t *cat;
  char **vms = NULL;
  size_t nvms = 0;
  int rc = 0;

  if (parse(argc, argv, &a, true, list_help) < 0) return 2;
  int ro = catalog_open(a.repo, &a.opts, &cat);
  free(a.source_options);               /* the catalog has its copy */
  if (ro < 0) return fail("list");
  CLEANUP_FREE char *scanned = NULL;
  if (db_get_meta(cat->db, "scanned_at", &scanned) < 0) {
    catalog_close(cat);
    return fail("list");
  }
  /* a never-scanned catalog is scanned even with --no-scan; one VM is
   * rescanned on its own when it is a directory of the repository */
  if ((!a.no_scan || !scanned) &&
      (a.vm && scanned ? catalog_scan_vm(cat, a.vm, NULL)
                       : catalog_scan(cat, NULL)) < 0) {
    catalog_close(cat);
    return fail("list");
  }
  if (a.vm) {
    vms = cat_xcalloc(1, sizeof *vms);
    vms[0] = cat_xstrdup(a.vm);
    nvms = 1;
  }
  else if (catalog_vms(cat, &vms, &nvms) < 0) {
    catalog_close(cat);
    return fail("list");
  }

  struct json_object *jvms = a.json ? json_object_new_array() : NULL;
  struct row *rows = NULL;
  size_t nrows = 0, cap = 0;
  static const char *const head[7] = { "VM", "TIME", "DISKS", "VIRTUAL",
                                       "ALLOCATED", "DEPTH", "STATUS" };
  for (size_t i = 0; i < nvms; i++) {
    struct catalog_backup *bs;
    size_t n;
    if (catalog_backups(cat, vms[i], &bs, &n) < 0) {
      rc = fail("list");
      break;
    }
    struct json_object *jb = a.json ? json_object_new_array() : NULL;
    for (size_t j = 0; j < n; j++) {
      if (a.json)
        json_object_array_add(jb, catalog_backup_jobj(&bs[j]));
      else {
        CAT_GROW(rows, cap, nrows);
        table_row(&bs[j], &rows[nrows++]);
      }
    }
    if (a.json) {
      struct json_object *jv = json_object_new_object();
      bfs_json_add_str(jv, "name", vms[i]);
      json_object_object_add(jv, "backups", jb);
      json_object_array_add(jvms, jv);
    }
    catalog_backups_free(bs, n);
  }
  if (rc == 0 && a.json) {
    struct json_object *o = json_object_new_object();
    bfs_json_add_str(o, "repository", catalog_repo(cat));
    json_object_object_add(o, "vms", json_object_get(jvms));
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                  JSON_C_TO_STRING_SPACED |
                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  }
  else if (rc == 0) {
    int w[6];
    for (int c = 0; c < 6; c++) {
      w[c] = (int)strlen(head[c]);
      for (size_t i = 0; i < nrows; i++)
        if ((int)strlen(rows[i].c[c]) > w[c]) w[c] = (int)strlen(rows[i].c[c]);
    }
    for (size_t i = 0; i <= nrows; i++) {
      const char *const *c = i == 0 ? head : (const char *const[7]){
        rows[i - 1].c[0], rows[i - 1].c[1], rows[i - 1].c[2], rows[i - 1].c[3],
        rows[i - 1].c[4], rows[i - 1].c[5], rows[i - 1].status };
      printf("%-*s  %-*s  %*s  %*s  %*s  %*s  %s\n", w[0], c[0], w[1], c[1],
             w[2], c[2], w[3], c[3], w[4], c[4], w[5], c[5], c[6]);
    }
  }
  json_object_put(jvms);
  for (size_t i = 0; i < nrows; i++) free(rows[i].status);
  free(rows);
  catalog_names_free(vms, nvms);
  catalog_close(cat);
  return rc;
}
