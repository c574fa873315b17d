/* cmd.c — `backupfs scan` and `backupfs list`.
 *
 * scan prints one summary line (or --json) after building or updating the
 * catalog; list rescans incrementally first (unchanged files are only
 * stat'ed) unless --no-scan, then prints a table or JSON.  Both exit 0 on
 * success even when backups are broken (that is what `verify` is for), 1
 * on errors, 2 on usage errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "catalog/catalog-int.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/json-str.h"
#include "common/kvopt.h"
#include "common/opts.h"
#include "common/size.h"
#include "catalog/tz.h"
#include "blk/luks.h"

enum { OPT_CSB = 256, OPT_NO_SCAN, OPT_RESTIC_PW, OPT_SHOW_REMOVED, OPT_NAS_TZ,
       OPT_KEY_FILE, OPT_CEPH_CONF, OPT_CEPH_ID };

static const struct bfs_opt scan_opts[] = {
  { "cloudstack-backups", OPT_CSB, "FILE",
    "CloudStack listBackups JSON export: VM names,\n"
    "backup ids and dates of NAS and KBOSS\n"
    "backups (remembered)" },
  { "show-removed", OPT_SHOW_REMOVED, NULL,
    "show backups the export marks Removed,\n"
    "Expunged, Error or Failed (flagged)" },
  { "restic-password-file", OPT_RESTIC_PW, "FILE",
    "password of restic repositories (remembered:\n"
    "its name, never the password)" },
  { "ceph-conf", OPT_CEPH_CONF, "FILE",
    "ceph.conf of rbd:POOL repositories, naming the\n"
    "keyring (-o ceph_conf=; remembered)" },
  { "ceph-id", OPT_CEPH_ID, "NAME",
    "Ceph client name, default admin (-o ceph_id=)" },
  { "option", 'o', "NAME=VALUE", "a source option, as mount's -o NAME=VALUE\n"
    "(restic_password_file=, ...; remembered)" },
  { "nas-timezone", OPT_NAS_TZ, "ZONE",
    "the zone CloudStack NAS stamps are in\n"
    "(America/New_York, UTC; remembered;\n"
    "default: $TZ, else /etc/localtime)" },
  { "key-file", OPT_KEY_FILE, "FILE",
    "a LUKS passphrase file (checked, not kept):\n"
    "encrypted disks count as readable" },
  { "quiet", 'q', NULL, "no progress, no summary" },
  { 0 },
};

static const struct bfs_cmd scan_cmd = {
  .name = "scan",
  .usage = "scan [--catalog FILE] [--cloudstack-backups FILE]\n"
           "                     [--show-removed] [--restic-password-file FILE]\n"
           "                     [--ceph-conf FILE] [--ceph-id NAME]\n"
           "                     [-o NAME=VALUE] [--nas-timezone ZONE]\n"
           "                     [--key-file FILE] [--json] [--quiet]\n"
           "                     REPO [REPO...]",
  .about = "Build or update the catalog of the backup repository REPO (CloudStack\n"
    "NAS, CloudStack KBOSS or generic layout).  Files whose size, mtime and\n"
    "inode did not change are not reopened.  Prints VMs, backups, images,\n"
    "broken backups, image headers read and seconds.  More REPOs are more\n"
    "stores of the same repository (KBOSS secondary storage): scanned with\n"
    "the first, backing files found across all of them, remembered by the\n"
    "first's catalog.",
  .opts = scan_opts, .shared = BFS_OPTS_CATALOG | BFS_OPTS_JSON,
  .json_help = "print the summary as JSON",
  .need = "REPO [REPO...]", .min_args = 1, .max_args = -1,
};

static const struct bfs_opt list_opts[] = {
  { "no-scan", OPT_NO_SCAN, NULL,
    "list what the catalog holds without rescanning" },
  { "cloudstack-backups", OPT_CSB, "FILE", "as for scan" },
  { "show-removed", OPT_SHOW_REMOVED, NULL, "as for scan" },
  { "restic-password-file", OPT_RESTIC_PW, "FILE", "as for scan" },
  { "ceph-conf", OPT_CEPH_CONF, "FILE", "as for scan" },
  { "ceph-id", OPT_CEPH_ID, "NAME", "as for scan" },
  { "option", 'o', "NAME=VALUE", "as for scan" },
  { "nas-timezone", OPT_NAS_TZ, "ZONE", "as for scan" },
  { "key-file", OPT_KEY_FILE, "FILE", "as for scan" },
  { "quiet", 'q', NULL, "no progress" },
  { 0 },
};

static const struct bfs_cmd list_cmd = {
  .name = "list",
  .usage = "list [--json] [--no-scan] [--catalog FILE]\n"
           "                     [--cloudstack-backups FILE] [--show-removed]\n"
           "                     [--restic-password-file FILE] [-o NAME=VALUE]\n"
           "                     [--ceph-conf FILE] [--ceph-id NAME]\n"
           "                     [--nas-timezone ZONE] [--key-file FILE]\n"
           "                     REPO [REPO...] [VM]",
  .about = "List the VMs of REPO and their backups (points in time): disks, virtual\n"
    "size, bytes allocated by the top images, deepest backing chain and\n"
    "status (ok, or why the backup is broken).  The catalog is updated\n"
    "incrementally first.  More REPOs are more stores, as for scan; the\n"
    "last argument is a VM unless it is a directory.",
  .opts = list_opts, .shared = BFS_OPTS_CATALOG | BFS_OPTS_JSON,
  .json_help = "backup.json objects grouped by VM",
  .need = "REPO [REPO...] [VM]", .min_args = 1, .max_args = -1,
};

struct args {
  struct catalog_opts opts;
  char *source_options;             /* -o, --restic-password-file */
  bool json, no_scan, quiet;
  const char *repo, *vm;
};

static void
args_free(struct args *a)
{
  free(a->source_options);
}
#define CLEANUP_ARGS __attribute__((cleanup(args_free)))

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
  a->opts.source_options = a->source_options = next;
  return 0;
}

/* --key-file FILE: scan and list read no disk; the key only has to be
 * one, and encrypted disks then count as readable */
static int
key_file(struct args *a, const char *file)
{
  struct blk_key *key;
  if (blk_key_from_file(file, &key) < 0) {
    fprintf(stderr, "backupfs: --key-file %s: %s\n", file, bfs_last_error());
    return -1;
  }
  blk_key_free(key);
  a->opts.luks_key = true;
  return 0;
}

/* 0, or -1: return status (help, version, usage error) */
static int
parse(int argc, char **argv, struct args *a, const struct bfs_cmd *cmd,
      int *status)
{
  struct bfs_args g;
  int c;
  bfs_opts_init(&g, cmd, argc, argv);
  while ((c = bfs_opts_next(&g)) > 0)
    switch (c) {
    case OPT_CSB: a->opts.cloudstack_backups = g.optarg; break;
    case 'q': a->quiet = true; break;
    case OPT_NO_SCAN: a->no_scan = true; break;
    case OPT_SHOW_REMOVED: a->opts.show_removed = true; break;
    case OPT_NAS_TZ:
      if (nas_timezone(a, g.optarg) < 0) { *status = 2; return -1; }
      break;
    case OPT_KEY_FILE:
      if (key_file(a, g.optarg) < 0) { *status = 2; return -1; }
      break;
    case OPT_RESTIC_PW:
    case OPT_CEPH_CONF:
    case OPT_CEPH_ID:
    case 'o': {
      CLEANUP_FREE char *name = c == 'o'
        ? strndup(g.optarg, strcspn(g.optarg, "="))
        : strdup(c == OPT_CEPH_CONF ? "ceph_conf"
                 : c == OPT_CEPH_ID ? "ceph_id" : "restic_password_file");
      const char *value = c == 'o' ? g.optarg + strlen(name) : g.optarg;
      if (c == 'o' && !catalog_is_source_option(g.optarg)) {
        CLEANUP_FREE char *known = catalog_source_option_list();
        *status = bfs_opts_bad(&g, "-o %s: not a source option (known: "
                               "%s)", g.optarg, known);
        return -1;
      }
      if (c == 'o') value++;                        /* past '=' */
      char *next = bfs_kvopt_set(a->source_options, name, value);
      if (!next) abort();
      free(a->source_options);
      a->opts.source_options = a->source_options = next;
      break;
    }
    }
  if (c < 0) {
    *status = g.status;
    return -1;
  }
  a->opts.catalog_path = g.catalog;
  a->json = g.json;
  /* REPO [REPO...] [VM]: list's last operand is a VM unless it is a
   * directory */
  a->repo = g.pos[0];
  int last = g.npos;
  struct stat st;
  if (cmd == &list_cmd && g.npos >= 2 &&
      (stat(g.pos[g.npos - 1], &st) < 0 || !S_ISDIR(st.st_mode)))
    a->vm = g.pos[--last];
  a->opts.extra_repos = (const char *const *)g.pos + 1;
  a->opts.nextra_repos = (size_t)(last - 1);
  a->opts.progress = !a->json && !a->quiet && isatty(STDERR_FILENO);
  return 0;
}

/* "stores": the roots after the first, when there are */
static void
add_stores(struct json_object *o, const catalog_t *cat)
{
  if (catalog_nroots(cat) < 2)
    return;
  struct json_object *a = json_object_new_array();
  for (size_t i = 1; i < catalog_nroots(cat); i++)
    json_object_array_add(a, json_object_new_string(catalog_root_path(cat, i)));
  json_object_object_add(o, "stores", a);
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
  CLEANUP_ARGS struct args a = { 0 };
  catalog_t *cat;
  struct catalog_scan_stats st;

  int status;
  if (parse(argc, argv, &a, &scan_cmd, &status) < 0) return status;
  if (catalog_open(a.repo, &a.opts, &cat) < 0) return fail("scan");
  int r = catalog_scan(cat, &st);
  if (r < 0) {
    catalog_close(cat);
    return fail("scan");
  }
  if (a.json) {
    struct json_object *o = json_object_new_object();
    bfs_json_add_str(o, "repository", catalog_repo(cat));
    add_stores(o, cat);
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
  char v[BFS_HUMAN_SIZE_MAX], al[BFS_HUMAN_SIZE_MAX];
  bfs_human_size(vsize, v, sizeof v);
  bfs_human_size(alloc, al, sizeof al);
  cell(r->c[0], b->vm);
  cell(r->c[1], b->name);
  snprintf(r->c[2], 64, "%zu", b->ndisks);
  snprintf(r->c[3], 64, "%s", v);
  snprintf(r->c[4], 64, "%s", al);
  snprintf(r->c[5], 64, "%zu", depth);
  /* the scan's status, with the last verify's verdict when the scan found
   * nothing wrong, and a CloudStack removal (shown with --show-removed) */
  CLEANUP_FREE char *st = NULL;
  char at[32];
  cat_time_iso(b->verified_at, at);
  if (!strcmp(b->status, "ok") && b->verify_result &&
      asprintf(&st, b->verify_ok ? "ok (verified %s)" :
               "FAULT (verify %s): %s", at, b->verify_result) < 0)
    st = NULL;
  const char *status0 = st ? st : b->status;
  CLEANUP_FREE char *removed = catalog_backup_extra(b, "removed");
  CLEANUP_FREE char *cs = removed ? catalog_backup_extra(b, "cloudstack_status")
                                  : NULL;
  CLEANUP_FREE char *status = removed
    ? cat_xasprintf("%s (CloudStack: %s)", status0, cs ? cs : "removed")
    : NULL;
  const char *stx = status ? status : status0;
  r->status = cat_xmalloc(4 * strlen(stx) + 1);   /* not cut */
  char *q = r->status;
  for (const unsigned char *p = (const unsigned char *)stx; *p; p++)
    q += (*p < 0x20 || *p == 0x7f) ? sprintf(q, "\\x%02x", *p)
                                   : (*q = (char)*p, 1);
  *q = '\0';
}

int
catalog_list_cmd(int argc, char **argv)
{
  CLEANUP_ARGS struct args a = { 0 };
  catalog_t *cat;
  char **vms = NULL;
  size_t nvms = 0;
  int rc = 0;

  int status;
  if (parse(argc, argv, &a, &list_cmd, &status) < 0) return status;
  if (catalog_open(a.repo, &a.opts, &cat) < 0) return fail("list");
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
    add_stores(o, cat);
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
