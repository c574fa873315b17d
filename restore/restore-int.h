/* restore-int.h — shared pieces of the restore module (not exported).
 *
 *   progress.c  progress line (rate, ETA) on a terminal, token-bucket limiter
 *   util.c      small helpers: sizes, backup.json, qemu-img runs, zero checks
 *   source.c    a disk to read: a mounted disks/<disk>.img (SEEK_DATA/HOLE)
 *   source-repo.c  or a point in time of a repository (disk/ service)
 *   disk.c      restore disk          quick.c / domxml.c  restore quick
 *   file.c      restore file          verify.c / vstate.c verify
 *   archive.c   restore file --format tar|zip (libarchive)
 *   file-repo.c restore file --repo: a private mount for the copy
 *   wait.c      what a command waits for on a mount (appliance start)
 */
#ifndef BFS_RESTORE_INT_H
#define BFS_RESTORE_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <json-c/json.h>

#include "catalog/catalog.h"
#include "common/size.h"

/* ---- progress and bandwidth ---- */
struct progress {
  const char *what;          /* label printed in front */
  uint64_t total;            /* 0: unknown (no percentage, no ETA) */
  uint64_t done;
  uint64_t files;            /* shown when count_files */
  bool count_files;
  bool tty;                  /* draw only on a terminal */
  double start, last_draw;
};
void restore_progress_init(struct progress *p, const char *what,
                           uint64_t total, bool count_files);
void restore_progress_add(struct progress *p, uint64_t bytes);
void restore_progress_done(struct progress *p);

struct throttle {
  double rate;               /* bytes per second; 0: unlimited */
  double tokens, burst, last;
};
void restore_throttle_init(struct throttle *t, double mib_per_s);
/* wait until n bytes may pass */
void restore_throttle(struct throttle *t, uint64_t n);

double restore_now(void);
/* parse a positive decimal (MiB/s), -EINVAL when not one */
int restore_parse_rate(const char *s, double *out);

/* ---- helpers ---- */
bool restore_is_zero(const void *buf, size_t len);
/* write the non-zero 4 KiB blocks of buf at off (holes stay holes) */
int restore_write_sparse(int fd, const char *name, const void *buf,
                         size_t len, uint64_t off);
/* parse BACKUP_DIR/backup.json; caller json_object_put()s */
int restore_backup_json(const char *backup_dir, json_object **out);
/* the disks[] entry named disk, or NULL with the error set */
json_object *restore_json_disk(json_object *bj, const char *backup_dir,
                               const char *disk);
const char *restore_json_str(json_object *o, const char *key);
/* run argv (execvp), wait; 0 or -EIO with the command named */
int restore_run(char *const argv[], bool quiet);
/* true when a program is found in PATH */
bool restore_have_program(const char *prog);

/* ---- sources ---- */
struct rsrc;
struct rsrc_ops {
  int (*extent)(struct rsrc *s, uint64_t off, uint64_t *len, bool *data);
  int (*pread)(struct rsrc *s, void *buf, size_t len, uint64_t off);
  int (*qemu_spec)(struct rsrc *s, char **spec, const char **fmt);
  void (*close)(struct rsrc *s);
  /* optional: start reading [off, off+len) ahead (a hint) */
  void (*prefetch)(struct rsrc *s, uint64_t off, uint64_t len);
};
struct rsrc {
  const struct rsrc_ops *ops;
  char *name;                /* for messages */
  uint64_t size;             /* virtual size */
  void *priv;
};
/* BACKUP_DIR/disks/<disk>.img of a mount */
int restore_src_mounted(const char *backup_dir, const char *disk,
                        struct rsrc **out);
/* VM@TIME of a repository (more: its other stores), disk by name; key:
 * the LUKS passphrase of encrypted layers (--key-file), or NULL (must
 * outlive the source) */
struct blk_key;
int restore_src_repo(const char *repo, const char *const *more, size_t nmore,
                     const char *catalog_path, const struct blk_key *key,
                     const char *vmtime,
                     const char *disk, struct rsrc **out);
void restore_src_close(struct rsrc *s);
/* The same point in time's disk as its blk/ stack (the disk service's:
 * every layer opened beneath the repository and checked against the
 * catalog, cache filter on top); *out lives until restore_src_close(*src). */
struct bfs_blk;
int restore_blk_repo(const char *repo, const char *catalog_path,
                     const struct blk_key *key, const char *vmtime,
                     const char *disk, struct rsrc **src,
                     struct bfs_blk **out);
uint64_t restore_src_size(const struct rsrc *s);
const char *restore_src_name(const struct rsrc *s);
/* the extent at off: *data says whether it holds data; *len > 0 */
int restore_src_extent(struct rsrc *s, uint64_t off, uint64_t *len,
                       bool *data);
int restore_src_pread(struct rsrc *s, void *buf, size_t len, uint64_t off);
/* a read-ahead hint for [off, off+len); nothing when the source has none */
void restore_src_prefetch(struct rsrc *s, uint64_t off, uint64_t len);
/* bytes of data (sum of data extents) */
int restore_src_allocated(struct rsrc *s, uint64_t *bytes);
/* a filename qemu-img can open for this source (path or json: spec) and
 * its format */
int restore_src_qemu_spec(struct rsrc *s, char **spec, const char **fmt);

/* open the catalog of repo (more: its other stores, or none: the ones
 * the catalog remembers) and bring it up to date; luks_key: the command
 * has a LUKS key (catalog_opts.luks_key) */
int restore_open_catalog(const char *repo, const char *const *more,
                         size_t nmore, const char *catalog_path,
                         bool luks_key, catalog_t **out);


/* ---- domain XML (domxml.c) ---- */
/* One layer below a quick restore's overlay, for <backingStore> (top
 * first): a file (repository layer) or an NBD export on a unix socket. */
struct domxml_layer {
  const char *format;        /* "qcow2" or "raw" */
  const char *file;          /* a file layer, or NULL */
  const char *nbd_name;      /* an NBD export name (with nbd_socket) */
  const char *nbd_socket;
};
struct domxml_disk {
  const char *name;          /* backup disk name (target where known) */
  const char *overlay;       /* absolute path of the new overlay */
  const struct domxml_layer *backing;  /* NULL: none written (libvirt
                                          reads the overlay's header) */
  size_t nbacking;
};
struct domxml_opts {
  const char *vm;            /* for a minimal definition and the new name */
  const char *new_name;      /* NULL: <name>-restored */
  bool same_identity;        /* keep name, uuid, MACs */
  const char *network;       /* --network: every interface on this libvirt
                                network */
  const char *bridge;        /* --bridge: every interface on this bridge */
  /* libvirt networks that exist here (virsh net-list --all --name), or
   * NULL when unknown (then networks are kept) */
  char **networks;
  size_t nnetworks;
  const char *sysfs_net;     /* where bridges are looked for; NULL:
                                /sys/class/net */
};
/* Build DEST domain XML text from src_xml (NULL: a minimal definition).
 * *name_out receives the domain name (malloc'd); *targets[i] (malloc'd)
 * the target dev of disk i.  Interfaces on a bridge or network this host
 * does not have are rewritten (--network/--bridge) or dropped with a
 * warning. */
int restore_domxml(const char *src_xml, const struct domxml_disk *disks,
                   size_t n, const struct domxml_opts *o, char **xml_out,
                   char **name_out, char **targets);

/* ---- verify's checksum memory (vstate.c) ---- */
struct vstate;
/* path NULL: <catalog dir>/verify-<hash of repo>.json */
int vstate_open(const char *repo, const char *catalog_path, const char *path,
                struct vstate **out);
const char *vstate_path(const struct vstate *s);
/* compare xxh3 (hex) with the recorded one for key: 0 same, 1 newly recorded
 * (when record), -EIO changed; reset: record anew */
int vstate_check(struct vstate *s, const char *key, const char *xxh3,
                 uint64_t size, int64_t mtime, bool record, bool reset);
int vstate_save(struct vstate *s);
void vstate_close(struct vstate *s);

/* ---- commands ---- */
int restore_disk_cmd(int argc, char **argv);
int restore_quick_cmd(int argc, char **argv);
int restore_consolidate_cmd(int argc, char **argv);
int restore_status_cmd(int argc, char **argv);
int restore_file_cmd(int argc, char **argv);

/* file-repo.c: a private read-only mount of repo for the copy-out of
 * vmtime's guest path; m->src is the source below it (MP/VM/TIME/files/
 * PATH); restore_repo_umount ends it (also after a failed mount) */
struct repo_mount {
  char *dir, *src;
  size_t prefix;
  bool mounted, caught_set;
  struct sigaction old[3];
};
int restore_repo_mount(struct repo_mount *m, const char *repo,
                       const char *catalog, const char *vmtime,
                       const char *path);
void restore_repo_umount(struct repo_mount *m);
bool restore_repo_interrupted(void);   /* a signal came during the copy */

/* archive.c: write the tree sdir/sname (never following a link) as a tar
 * (pax) or zip archive to dest ("-": stdout) — owners, modes, mtimes,
 * symlinks, hard links (tar); 0, or the count of entries that failed (the
 * archive is removed then: never a short one) or -errno before anything
 * was written.  force: replace an existing dest. */
int restore_archive(int sdir, const char *sname, const char *src,
                    const char *dest, const char *format, bool force,
                    bool json, struct progress *pr);

#endif
