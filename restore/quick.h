/* quick.h — quick restore's pieces (not exported beyond restore/).
 *
 *   quick.c        the command: phases (source, disks, via, overlays and
 *                  domain XML, state, start) and the next steps printed
 *   quick-via.c    how overlays are backed: mount, repo (qemu follows the
 *                  repository's chain itself) or nbd (`backupfs serve`)
 *   qstate.c       DEST/.backupfs/quick.json
 *   consolidate.c  `restore consolidate` (block pull, then the check
 *                  against the point in time) and `restore status`
 */
#ifndef BFS_RESTORE_QUICK_H
#define BFS_RESTORE_QUICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "restore/restore-int.h"

/* ---- state (qstate.c): every string malloc'd ---- */
struct qstate_disk {
  char *name, *target, *overlay;
  char *backing;              /* the overlay's backing, as qemu names it */
  char *state;                /* "backed", "pulled", "verified", "failed" */
};
struct qstate {
  char *dest;                 /* absolute DEST_DIR */
  char *via;                  /* "mount", "repo", "nbd" */
  char *repo, *catalog;       /* the point in time's repository (or NULL:
                                 only a mounted BACKUP_DIR was known) */
  char *vm, *time;            /* time: the backup's name, never "latest" */
  char *bdir;                 /* the mounted BACKUP_DIR, or NULL */
  char *domain;
  char *state;                /* "backed", "consolidating", "consolidated",
                                 "failed" */
  char *message;              /* what happened last, what to do next */
  pid_t serve_pid;            /* via nbd: the export's nbdkit */
  char *serve_socket;
  struct qstate_disk *disks;
  size_t ndisks;
};
/* DEST/.backupfs (created 0700) into *out */
int qstate_dir(const char *dest, char **out);
int qstate_save(const struct qstate *q);
int qstate_load(const char *dest, struct qstate *q);
void qstate_set(char **field, const char *value);
void qstate_free(struct qstate *q);

/* ---- via (quick-via.c) ---- */
/* One disk of the point in time as quick restore backs its overlay. */
struct qvdisk {
  const char *name;
  uint64_t size;
  char *backing;              /* qemu-img create -b */
  const char *backing_fmt;    /* -F */
  struct domxml_layer *layers;  /* <backingStore> chain, or NULL */
  size_t nlayers;
  char *strings[2 * 64 + 2];  /* owned by layers[] */
  size_t nstrings;
};
struct qvia {
  const char *repo, *catalog, *vm, *time, *bdir;
  const char *dest;           /* absolute, exists */
  bool have_plugin;
  pid_t serve_pid;            /* started by quick_via_nbd */
  char *serve_socket;
};
/* Why --via repo cannot be used for disk (malloc'd), or NULL when it can:
 * every layer a plain qcow2/raw file qemu opens as the catalog's chain. */
char *quick_repo_unfit(const struct qvia *v, const char *disk);
/* Fill d's backing for the chosen way. */
int quick_via_mount(const struct qvia *v, struct qvdisk *d);
int quick_via_repo(const struct qvia *v, struct qvdisk *d);
/* Start `backupfs serve` for every disk (once) and back d on its export. */
int quick_via_nbd(struct qvia *v, struct qvdisk *d, size_t n);
/* (Re)start `backupfs serve` on DEST/.backupfs/nbd.sock for the disks
 * names[0..n) of v's point in time; sets v->serve_pid, v->serve_socket. */
int quick_via_serve(struct qvia *v, const char *const *names, size_t n);
/* Stop the export quick_via_nbd started (a failed restore). */
void quick_via_stop(struct qvia *v);
bool quick_have_plugin(void);
void quick_vdisk_free(struct qvdisk *d);

/* ---- consolidation (consolidate.c) ---- */
/* Pull every overlay's backing into it (virsh blockpull --wait on a
 * running domain, qemu-img rebase offline), check the result against the
 * point in time, record and print the outcome; 0 only when verified. */
int quick_consolidate(struct qstate *q);

/* run argv and capture its stdout (malloc'd, NUL-terminated) */
int quick_run_output(char *const argv[], char **out);

#endif
