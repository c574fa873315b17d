/* catalog-int.h — internals shared by the catalog's files.
 *
 * A scan builds an in-memory model of the repository and then stores it:
 *
 *   scan.c     walks the repository (lstat only, never follows symlinks),
 *              hands each leaf directory to the layout recognisers, probes
 *              image headers (only for files whose size/mtime/inode changed),
 *              resolves chains and names the points in time;
 *   layout-*.c recognisers: pure name/content parsers (fuzzable, taking
 *              buffers) plus a directory handler adding backups to the model;
 *   resolve.c  backing-name resolution inside the repository;
 *   db.c       SQLite: schema, migrations, the file cache, storing the model;
 *   query.c    reading VMs and backups back for list, mount and restore;
 *   json.c     backup.json and the JSON forms of list/scan;
 *   cmd.c      the scan and list commands.
 *
 * Internal allocation failures abort (cat_xmalloc & co): they can only
 * happen on a machine already out of memory, and every caller would have to
 * give up anyway.  Errors from the repository (bad files, broken chains) are
 * data, recorded as a status, never a failure of the scan.
 */
#ifndef BFS_CATALOG_INT_H
#define BFS_CATALOG_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "catalog/catalog.h"
#include "catalog/layout.h"
#include "common/htab.h"

/* bump when recognisers change what they produce from the same files:
 * forces the stored model to be rebuilt on the next scan */
#define CATALOG_MODEL_VERSION 3

struct catalog {
  pthread_mutex_t lock;         /* serialises db (queries) */
  pthread_mutex_t scan_lock;    /* serialises scans (scan_db) */
  char *repo;                   /* realpath, no trailing slash; or the
                                   string as given (catalog_repo_not_dir) */
  bool not_dir;
  char *db_path;
  sqlite3 *db;                  /* queries */
  sqlite3 *scan_db;             /* scans (own connection: WAL lets queries
                                   read the previous state meanwhile) */
  char *cloudstack_backups;     /* absolute path or NULL */
  char *source_options;         /* catalog_opts.source_options, a copy */
  char **roots;                 /* [0] is repo; realpaths */
  int *root_fd;
  size_t nroots;
  bool show_removed;
  bool progress;
  bool luks_key;                /* catalog_opts.luks_key */
  /* a layout's handle on a repository that is no directory (the RBD
   * layout's cluster connection), kept from scan to scan so a mount's
   * rescans do not reconnect; freed with the catalog */
  void *repo_handle;
  void (*repo_handle_free)(void *);
};

/* one of the catalog's source options (catalog_opts.source_options) for
 * a layout: 0 and a malloc'd *value, or -ENOENT */
int cat_source_option(const catalog_t *cat, const char *name, char **value);

/* the descriptor a locator is opened beneath (root0_fd for root 0, the
 * catalog's for the others), *rel inside it and *root its path (may be
 * NULL); -1 with errno ENOENT for a locator of no root */
int cat_root_at(const catalog_t *cat, int root0_fd, const char *loc,
                const char **rel, const char **root);

/* ---- small helpers (util.c) ---- */
void *cat_xmalloc(size_t n);
void *cat_xcalloc(size_t n, size_t sz);
void *cat_xrealloc(void *p, size_t n, size_t sz);
char *cat_xstrdup(const char *s);
char *cat_xstrndup(const char *s, size_t n);
char *cat_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* grow *p (element size sz) so that index n fits (common/vec.h's growth) */
void cat_grow_(void **p, size_t *cap, size_t elem, size_t n);
#define CAT_GROW(p, cap, n) \
  do { void *cat_grow_p_ = (p); size_t cat_grow_c_ = (cap); \
       cat_grow_(&cat_grow_p_, &cat_grow_c_, sizeof *(p), (n)); \
       (p) = cat_grow_p_; (cap) = cat_grow_c_; } while (0)

/* string-keyed hash map (common/htab.h; keys owned by the caller) */
struct cat_map {
  struct bfs_strmap m;
};
void cat_map_init(struct cat_map *m);
void cat_map_free(struct cat_map *m);
void *cat_map_get(const struct cat_map *m, const char *key);
void cat_map_put(struct cat_map *m, const char *key, void *val);

/* days since 1970-01-01 of a proleptic Gregorian date (tz.c) */
int64_t cat_days_from_civil(int64_t y, unsigned m, unsigned d);
/* "YYYY-MM-DDTHHMMSSZ" (buf >= 20 bytes), a tree name; the ISO 8601
 * time is bfs_time_iso (common/timefmt.h) */
void cat_time_name(int64_t t, char buf[static 32]);
/* FUSE mounts (fstype fuse, fuse.*, fuseblk) below repo (not repo
 * itself), as repo-relative paths, from /proc/self/mountinfo;
 * the count, *out a malloc'd array of malloc'd strings */
size_t cat_fuse_mounts(const char *repo, char ***out);
/* read a whole (small) file at dirfd/rel: 0 or -errno with the error set */
int cat_read_file(int dirfd, const char *rel, size_t max, char **buf,
                  size_t *len);

/* ---- name parsers (layout-*.c; buffers, not C strings, for fuzzing) ---- */
/* Timestamps of generic backup directories: 2026-10-01T03:00:00Z (any ISO
 * 8601 offset), 2026-10-01T030000Z, 20261001T030000Z, 2026.10.01.03.00.00,
 * 2026-10-01_03-00-00, epoch seconds (9-11 digits).  0 or -EINVAL. */
int layout_parse_time(const char *s, size_t len, int64_t *t);
/* CloudStack NAS stamp yyyy.MM.dd.HH.mm.ss only */
int nas_parse_stamp(const char *s, size_t len, int64_t *t);
enum nas_disk_kind { NAS_NOT_DISK = 0, NAS_ROOT, NAS_DATADISK, NAS_IGNORED };
/* [<n>.]root.<volid>.qcow2 / [<n>.]datadisk.<volid>.qcow2 (<n>. from
 * pre-release scripts); *.qcow2.tmp, *.qcow2.luks (files being written)
 * are NAS_IGNORED.  volid: offset/length inside s. */
enum nas_disk_kind nas_parse_disk_name(const char *s, size_t len,
                                       size_t *volid_off, size_t *volid_len);
/* generic <disk>.{qcow2,img,raw}: length of the disk name, or 0; *format
 * is what the extension says ("qcow2", or "raw" for .img and .raw) */
size_t generic_disk_name(const char *s, size_t len, const char **format);
/* The format the repository's layouts give a file by its (repo-relative)
 * name wherever it is reached (a disk, or some chain's backing layer):
 * "qcow2" for *.qcow2, "raw" for *.img and *.raw, NULL when the name says
 * nothing (then a recorded backing format, or a probe, decides). */
const char *layout_file_format(const char *rel, size_t len);
/* The format a chain's backing layer rel is opened as: the overlay's
 * recorded backing format (NULL: none), which must agree with the name
 * rule, else the name rule, else NULL (probe).  0, -ENOTSUP (a recorded
 * format other than raw/qcow2) or -EMEDIUMTYPE (recorded and name rule
 * contradict each other). */
int layout_backing_format(const char *recorded, const char *rel, size_t len,
                          const char **fmt);
/* the `name:` of a Proxmox qemu-server.conf's main section (not of a
 * [snapshot] section), malloc'd, or NULL (layout-vma.c; PBS too) */
char *pve_conf_name(const char *conf);
/* KBOSS image file names: no extension, not hidden, not *.comp */
bool kboss_is_image_name(const char *s, size_t len);
/* virtnbdbackup streams (layout-vnbd.c): <target>.full.data,
 * <target>.copy.data, <target>.inc.<cpt>.<N>.data, <target>.diff.<epoch>
 * .data, each maybe + ".partial"; the kind, or VNBD_NAME_NOT */
enum vnbd_name_kind { VNBD_NAME_NOT = 0, VNBD_NAME_FULL, VNBD_NAME_COPY,
                      VNBD_NAME_INC, VNBD_NAME_DIFF };
struct vnbd_name {
  enum vnbd_name_kind kind;
  bool partial;
  size_t target_len;            /* the target: s[0, target_len) */
  size_t cpt_off, cpt_len;      /* inc: "virtnbdbackup.2"; diff: "<epoch>" */
  long n;                       /* inc: N; diff: the epoch */
};
enum vnbd_name_kind vnbd_parse_stream_name(const char *s, size_t len,
                                      struct vnbd_name *out);
/* vzdump-qemu-<vmid>-YYYY_MM_DD-HH_MM_SS.vma[.zst|.lzo] (layout-vma.c):
 * 0 with the vmid (offset 12, *idlen), the time and the compression
 * (NULL, "zstd", "lzo"), or -EINVAL */
int vma_parse_name(const char *s, size_t len, size_t *idlen, int64_t *t,
                   const char **comp);
/* PBS (layout-pbs.c): a snapshot "vm/<id>/<time>" (id at offset 3,
 * *idlen digits; 0 or -EINVAL), and "drive-<dev>.img.fidx" (the length
 * of <dev> at s + 6, or 0) */
int pbs_parse_snapshot(const char *s, size_t len, size_t *idlen, int64_t *t);
size_t pbs_drive_name(const char *s, size_t len);
/* RBD (layout-rbd.c): the time in a virt-rbd-backup snapshot name
 * "<image>-backup-YYYY_MM_DD[_<epoch>]" (-1: none), and the length of the
 * VM name rbd_group=prefix takes from an image name (0: the whole name) */
int64_t rbd_snap_name_time(const char *snap);
size_t rbd_prefix_vm_len(const char *image);
/* restic (layout-restic.c): the extension that makes a snapshot's file a
 * disk (".img", ".raw", ".qcow2" in path, or NULL), and the VM a tag
 * "vm=NAME" or "vm:NAME" names (in tag, or NULL) */
const char *restic_disk_ext(const char *path);
const char *restic_tag_vm(const char *tag);

/* virsh dumpxml / domblklist: VM name, uuid, (target, source) per disk;
 * protocol: a network disk's <source protocol> ("rbd"), else NULL (not
 * kept in the cache form) */
struct domain_disk { char *target, *source, *protocol; };
struct domain_info {
  char *name, *uuid;
  struct domain_disk *disks;
  size_t ndisks;
};
int nas_parse_domain_xml(const char *buf, size_t len, struct domain_info *d);
int nas_parse_domblklist(const char *buf, size_t len, struct domain_info *d);
void domain_info_free(struct domain_info *d);
/* target for a NAS volid (source path's last component is, or starts
 * with, the volid), or NULL */
const char *domain_target_for(const struct domain_info *d, const char *volid);
/* cache form (json.c) */
char *domain_info_to_json(const struct domain_info *d);
int domain_info_from_json(const char *s, struct domain_info *d);

/* CloudStack listBackups export (layout-kboss.c documents the format) */
struct lb_volume {
  char *uuid, *type, *path;
  int deviceid;
  void *match;                  /* the layout's: the file it matched */
};
struct lb_backup {
  char *id, *vm, *vm_id;
  char *status, *type, *external_id;      /* NULL when absent */
  bool removed;                 /* status Removed/Expunged/Error/Failed */
  int64_t time;                 /* INT64_MIN: no (valid) date */
  struct lb_volume *vols;
  size_t nvols;
};
int kboss_parse_listbackups(const char *buf, size_t len,
                            struct lb_backup **out, size_t *n);
void kboss_listbackups_free(struct lb_backup *b, size_t n);

/* ---- the scan model ---- */
enum file_kind { FILE_IMAGE = 0, FILE_META = 1 };

struct scan_file {              /* one probed file (cached in the files table) */
  struct bfs_hlink h;           /* in scan.files, by path */
  char *path;                   /* repo-relative */
  int kind;
  uint64_t size, alloc, ino;
  int64_t mtime_ns;
  uint64_t dev;                 /* 0 in rows from before schema v3 */
  /* header (FILE_IMAGE) */
  /* format, compression, backing_format and decided: scan_intern()'s */
  const char *format, *compression;
  char *backing;
  const char *backing_format;
  char *error;
  const char *decided;          /* the format the file was opened as by
                                   decision ("qcow2", "raw"), or "probe";
                                   format is what it turned out to be (NULL:
                                   could not be opened, e.g. no qcow2 magic) */
  uint64_t vsize;
  bool encrypted, external;
  char *backing_path;           /* resolved, repo-relative, or NULL */
  char *info;                   /* FILE_META: parsed content (JSON) */
  bool seen, dirty, in_db;
  bool resolved, counted;       /* this scan: backing resolved, counted */
  char *resolve_error;          /* why the backing was not found */
};

/* One directory's listing as the walk last read it (the dirs table, v6):
 * an unchanged directory (dev, ino, mtime, ctime) is not read again.
 * files and dirs are the sorted names, each followed by '/' (a name never
 * holds one). */
struct scan_listing {
  struct bfs_hlink h;           /* in scan.dirs, by path */
  uint64_t dev, ino;
  int64_t mtime_ns, ctime_ns;
  int64_t listed_ns;            /* wall clock when it was read */
  uint32_t path_len, files_len, dirs_len;
  bool seen, dirty, in_db;
  char path[];                  /* repo-relative ("." for the repository),
                                   '\0', then files, then dirs: one block */
};
#define SCAN_LISTING_FILES(l) ((l)->path + (l)->path_len + 1)
#define SCAN_LISTING_DIRS(l) (SCAN_LISTING_FILES(l) + (l)->files_len)

struct model_disk {
  char *name;                   /* before de-duplication */
  char *top;                    /* repo-relative */
  char *volume;                 /* volume id when known */
  int order;                    /* sort key inside the backup */
  /* computed by resolve_disk: the recipe, top first; chain and drivers
   * strings belong to the scan (scan_intern, a scan_file's path) */
  const char **chain;           /* repo-relative locators */
  const char **drivers;         /* each layer's driver ("qcow2", "raw"; NULL
                                   where the file could not be opened) */
  char **options;               /* each layer's driver options, or NULL */
  size_t chain_len;
  char *status;
  /* scan_add_disk_recipe(): the layout gave the recipe and these */
  bool preset;
  uint64_t vsize, alloc;
  const char *format, *compression;       /* scan_intern()'s */
};

struct model_backup {
  const char *vm;               /* scan_intern()'s */
  int64_t time;
  const char *source;           /* static string */
  char *key;                    /* stable tie-break (top image path) */
  char *domain_xml;
  char *extra;                  /* JSON object text or NULL */
  struct model_disk *disks;
  size_t ndisks, cap;
  const char *name;             /* computed, scan_intern()'s */
  char *status;                 /* computed */
};

struct model_vm {
  const char *name;             /* scan_intern()'s */
  size_t first, n;              /* its backups in scan.backups */
  uint64_t hash;                /* of everything stored for it */
};

#define SCAN_LAYOUT_SLOTS 16    /* rows of layout.c's table at most */

struct scan {
  catalog_t *cat;
  const char *only_vm;          /* partial scan of one directory-based VM */
  int repo_fd;
  struct bfs_htab files;        /* struct scan_file by path */
  struct bfs_htab dirs;         /* struct scan_listing by path */
  struct cat_map strings;       /* scan_intern(): each string once */
  char **stringv;               /* their storage */
  size_t nstrings, strings_cap;
  struct scan_file **filev;
  size_t nfiles, files_cap;
  struct model_backup *backups;
  size_t nbackups, backups_cap;
  void *layout_state[SCAN_LAYOUT_SLOTS];   /* see scan_layout_state() */
  struct model_vm *vms;
  size_t nvms;
  char **fuse_mounts;           /* repo-relative FUSE mount points: never
                                   walked, never a backing file */
  size_t nfuse;
  unsigned reopened, walked, nimages, changed_vms;
  double last_progress;
  int error;                    /* scan_fail(): the scan fails with it */
};

/* scan.c services for layouts */
/* str (NULL: NULL) as one copy shared by the whole scan, freed with it */
const char *scan_intern(struct scan *s, const char *str);
/* the file at rel known to this scan (from the cache or probed), or NULL */
struct scan_file *scan_file_find(const struct scan *s, const char *rel);
/* add f (path set) to the scan's files */
void scan_file_add(struct scan *s, struct scan_file *f);
/* a listing of path (identity zero, not in the scan yet): NULL when a
 * part is longer than the table holds (4 GiB) */
struct scan_listing *scan_listing_new(const char *path, size_t path_len,
                                      const char *files, size_t files_len,
                                      const char *dirs, size_t dirs_len);
/* add l to the scan's directory listings */
void scan_listing_add(struct scan *s, struct scan_listing *l);
/* stat + probe (or reuse) a file: NULL if it is not a regular file.  fmt:
 * the format the layout gives an image ("qcow2", "raw"), or NULL to probe
 * (only where nothing names the format).  Within one scan the first
 * decision for a file stands (callers compare f->decided). */
struct scan_file *scan_file_get(struct scan *s, const char *rel, int kind,
                                const char *fmt);
/* A layout that cannot read the repository at all (a store that is no
 * directory: a cluster that does not answer): the scan fails with r and
 * its message, storing nothing.  Returns r. */
int scan_fail(struct scan *s, int r);
struct model_backup *scan_add_backup(struct scan *s, const char *vm,
                                     int64_t time, const char *source,
                                     const char *key);
/* drop backup i of the model (a layout's finish step: one the CloudStack
 * export marks removed) */
void scan_drop_backup(struct scan *s, size_t i);
void scan_add_disk(struct model_backup *b, const char *name, const char *top,
                   const char *volume, int order);
/* A disk whose recipe the layout knows itself (a format whose points in
 * time are not one file of the repository each: restic snapshots, PBS
 * indexes, RBD snapshots): the layers top first, the disk's virtual and
 * allocated size, format and compression as backup.json shows them, and
 * its status (NULL: "ok").  The chain is not resolved again; a layer whose
 * locator is a repository file the layout stat'ed with scan_file_get()
 * gets its identity checked on open, like any image. */
struct scan_layer { const char *locator, *driver, *options; };
void scan_add_disk_recipe(struct scan *s, struct model_backup *b,
                          const char *name,
                          const char *volume, int order,
                          const struct scan_layer *layers, size_t n,
                          uint64_t vsize, uint64_t alloc, const char *format,
                          const char *compression, const char *status);

/* The walk's own listing of repo/rel for layouts that walk below the
 * directory they claimed (PBS namespaces): regular files and
 * sub-directories, sorted, hidden ones and symlinks left out; either may
 * be NULL. */
struct scan_names { char **v; size_t n; };
void scan_list(struct scan *s, const char *rel, struct scan_names *files,
               struct scan_names *dirs);
void scan_names_free(struct scan_names *n);

/* resolve.c */
/* Resolve backing name of overlay (repo-relative) to a repo-relative path.
 * exists(rel) says whether a regular file is there. */
typedef bool (*resolve_exists_fn)(void *opaque, const char *rel);
int resolve_backing_rel(const char *const *roots, size_t nroots,
                        const char *overlay_rel,
                        const char *backing, resolve_exists_fn exists,
                        void *opaque, char **out_rel);
/* the locator prefix of root i > 0: ".root<i>" */
#define CAT_ROOT_PREFIX ".root"
/* lexical: join a repo-relative dir and a relative name; NULL if it escapes */
char *resolve_join(const char *dir, const char *name);
/* the locator's file is a regular file inside its root (realpath) */
bool resolve_fs_exists(const char *const *roots, size_t nroots,
                       const char *loc);
/* the root index of a locator and *rel inside it, or -1 (no such root) */
int resolve_root_of(size_t nroots, const char *loc, const char **rel);

/* db.c */
int db_open(const char *path, sqlite3 **out);
/* the file cache: all of it, or the paths under prefix/ */
int db_load_files(sqlite3 *db, struct scan *s, const char *prefix);
/* the directory listings: all of them, or those under prefix/ */
int db_load_dirs(sqlite3 *db, struct scan *s, const char *prefix);
/* store the file cache and every VM whose hash changed; VMs that vanished
 * are removed (only s->only_vm in a partial scan) */
int db_store(sqlite3 *db, struct scan *s);
/* the source of a VM as stored, or NULL */
int db_vm_source(sqlite3 *db, const char *vm, char **source);
int db_set_verified(sqlite3 *db, const char *vm, const char *backup, bool ok,
                    const char *result, int64_t at);
int db_get_meta(sqlite3 *db, const char *key, char **val);
int db_set_meta(sqlite3 *db, const char *key, const char *val);
int db_sqlerr(sqlite3 *db, const char *what);

/* json.c */
struct json_object;
struct json_object *catalog_backup_jobj(const struct catalog_backup *b);
/* repository bytes into JSON: valid UTF-8 as is, else U+FFFD for each bad
 * byte plus "<key>_hex" with the exact bytes (json.c documents it) */
/* {"k1": "v1", ...} from npairs (key, value) string pairs; NULL values are
 * left out; NULL when nothing is left */
char *cat_json_kv(int npairs, ...);

#endif
