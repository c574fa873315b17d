/* catalog.h — what a repository holds: VMs, points in time, disks, chains.
 *
 * Layout recognisers (CloudStack NAS, CloudStack KBOSS, generic) turn
 * repository files into backups; the SQLite catalog (outside the repository)
 * remembers them so rescans only reopen what changed.  This module is the
 * only place that calls sqlite3_*.
 *
 * A catalog_t is safe to use from several threads (calls are serialised
 * inside; none of them does image I/O beyond header probes during a scan).
 * All functions return 0 / a value or -errno with bfs_last_error() set.
 */
#ifndef BFS_CATALOG_H
#define BFS_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/beneath.h"

typedef struct catalog catalog_t;

struct catalog_opts {
  const char *catalog_path;         /* NULL: default per-repository file */
  const char *cloudstack_backups;   /* optional listBackups JSON export */
  bool progress;                    /* progress on stderr during scans */
  /* a LUKS key was given to this command (--key-file, -o keyfile=; the
   * key itself never reaches the catalog): without one, an encrypted
   * disk's status says a key is needed */
  bool luks_key;
  /* the layouts' and drivers' settings, "name=value,..." (common/kvopt.h:
   * restic_password_file=, ceph_conf=, nas_tz=, ...; file names, never a
   * secret itself): merged into the ones the catalog remembers, read by
   * the scan and by the disk service (catalog_source_options) */
  const char *source_options;
  /* more repository roots (KBOSS secondary stores) scanned with the first:
   * remembered by the catalog (which the first root keys); given again
   * they replace the remembered ones */
  const char *const *extra_repos;
  size_t nextra_repos;
  /* CloudStack backups the export marks Removed/Expunged/Error/Failed are
   * shown (flagged) instead of hidden: per command, not remembered */
  bool show_removed;
};

int catalog_open(const char *repo, const struct catalog_opts *opts,
                 catalog_t **out);
void catalog_close(catalog_t *cat);
const char *catalog_repo(const catalog_t *cat);   /* absolute path */
/* the repository string names no directory but a layout's store
 * ("rbd:POOL[/NAMESPACE]"): catalog_repo() is that string, there is no
 * repository directory to open, walk or place a mount against */
bool catalog_repo_not_dir(const char *repo);
const char *catalog_path(const catalog_t *cat);   /* the SQLite file */
const char *catalog_source_options(const catalog_t *cat);   /* or NULL */

/* Repository roots.  Root 0 is catalog_repo(); a locator (a repo-relative
 * path of the catalog: disk chains, images) of root i > 0 starts with the
 * component ".root<i>" (hidden names are never part of a repository, so
 * the two cannot meet).  catalog_locator_root() gives the locator's root
 * and *rel the path inside it, or -ENOENT for a root the catalog has not;
 * catalog_root_fd() is the catalog's O_DIRECTORY descriptor of a root
 * (open while the catalog is): open locators with bfs_open_beneath(fd,
 * catalog_root_path(), rel) and nothing outside any root is reached. */
size_t catalog_nroots(const catalog_t *cat);
const char *catalog_root_path(const catalog_t *cat, size_t i);
int catalog_root_fd(const catalog_t *cat, size_t i);
int catalog_locator_root(const catalog_t *cat, const char *loc,
                         const char **rel);
/* open a locator beneath its root (bfs_open_beneath's errors) */
int catalog_open_locator(const catalog_t *cat, const char *loc);

struct catalog_scan_stats {
  unsigned vms, backups, images, broken;
  unsigned reopened;                /* images whose header was (re)read */
  double seconds;
  unsigned changed;                 /* VMs added, changed or removed: 0 when
                                       listings are what they were */
};
/* Build or update: unchanged files (size, mtime, inode) are not reopened,
 * vanished backups disappear, new ones appear. */
int catalog_scan(catalog_t *cat, struct catalog_scan_stats *stats);
/* The same for one VM only, when it is a directory of the repository
 * (generic, CloudStack NAS): cheap enough before every listing of it.
 * Other VMs (KBOSS, or not in the catalog yet) get a full scan. */
int catalog_scan_vm(catalog_t *cat, const char *vm,
                    struct catalog_scan_stats *stats);

struct catalog_disk {
  char *name;                 /* vda, sdb, root, datadisk-<id> */
  char *image;                /* repo-relative path of the top image */
  /* the recipe: the exact layer list the scan resolved, top first (the
   * same list as backup.json's chain); blk opens exactly this */
  char **chain;               /* repo-relative paths (locators) */
  struct bfs_file_id *chain_id;  /* each layer's identity at scan time
                                    (ino 0: none recorded) */
  char **chain_driver;        /* "qcow2" / "raw"; NULL: the layer could not
                                 be opened (the status says why) */
  char **chain_options;       /* driver options, NULL for none */
  size_t chain_len;
  uint64_t virtual_size;
  uint64_t allocated;         /* bytes on disk of the top image */
  char *format;               /* "qcow2" or "raw" */
  char *compression;          /* "none", "zlib" or "zstd" */
  bool encrypted;
  char *status;               /* "ok" or why it is broken */
  char *volume;               /* CloudStack volume id when known, or NULL */
};

struct catalog_backup {
  char *vm;
  char *name;                 /* YYYY-MM-DDTHHMMSSZ, -1/-2 for same second */
  int64_t time;               /* UTC seconds */
  char *source;               /* "cloudstack-nas", "cloudstack-kboss", "generic" */
  char *domain_xml;           /* repo-relative path, or NULL */
  char *status;               /* "ok" or why it is broken */
  size_t ndisks;
  struct catalog_disk *disks;
  char *extra;                /* layout-specific fields (JSON object text:
                                 domain_name/uuid, account/volume,
                                 backup_id/vm_id) merged into backup.json */
  char *verify_result;        /* the last `backupfs verify`: "ok" or its
                                 first fault; NULL: never verified */
  bool verify_ok;
  int64_t verified_at;        /* UTC seconds */
};

/* VM names, sorted. */
int catalog_vms(catalog_t *cat, char ***names, size_t *n);
void catalog_names_free(char **names, size_t n);
/* A VM's backups, oldest first. */
int catalog_backups(catalog_t *cat, const char *vm,
                    struct catalog_backup **out, size_t *n);
void catalog_backups_free(struct catalog_backup *b, size_t n);
/* The index of the backup named time ("latest": the newest) among a VM's
 * backups b[0..n) as catalog_backups() returns them, or -ENOENT saying
 * which names there are.  The one VM@TIME lookup of the program. */
int catalog_find_backup(const struct catalog_backup *b, size_t n,
                        const char *vm, const char *time);
/* Record the verdict of `backupfs verify` for vm@backup (result: "ok" or
 * the first fault) at time at; list and backup.json show it. */
int catalog_set_verified(catalog_t *cat, const char *vm, const char *backup,
                         bool ok, const char *result, int64_t at);
/* VM@TIME (or VM: TIME "latest") split into malloc'd vm and time; the one
 * parser of the program's VM@TIME arguments.  0 or -EINVAL. */
int catalog_parse_vmtime(const char *arg, char **vm, char **time);
/* What the known repository layouts look like, one line for messages
 * ("CloudStack NAS backup (<vm>/...), ..."), malloc'd. */
char *catalog_known_layouts(void);
/* tok ("name=value") sets one of the layouts' and drivers' source options */
bool catalog_is_source_option(const char *tok);
/* their names, for messages (malloc'd) */
char *catalog_source_option_list(void);

/* one of a backup's layout fields (extra) as text: a string, or "true" for
 * a true boolean (CloudStack's "removed"); malloc'd, or NULL */
char *catalog_backup_extra(const struct catalog_backup *b, const char *key);

/* backup.json text of one backup (malloc'd, json-c). */
char *catalog_backup_json(const catalog_t *cat, const struct catalog_backup *b);

/* commands */
int catalog_scan_cmd(int argc, char **argv);
int catalog_list_cmd(int argc, char **argv);

#endif
