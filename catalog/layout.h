/* layout.h — repository layouts as a table (layout.c holds it).
 *
 * A layout knows how one kind of backup repository is laid out: CloudStack
 * NAS stamp directories, KBOSS volume directories, generic disk
 * directories, and every format that arrives later (restic repositories,
 * PBS datastores, vzdump dumps, virtnbdbackup folders, Ceph RBD pools).
 * Adding one is one layout-*.c file and one row in layout.c's table.
 *
 * The scan (scan.c) walks the repository once, top down, lstat-level only
 * (no symlink followed, hidden entries skipped, FUSE mounts skipped), and
 * offers every directory to the layouts in table order:
 *
 *   names(repo) optional, before anything: the repository string is this
 *               layout's though it is no directory path ("rbd:POOL"):
 *               the catalog keeps the string as given (no realpath, db
 *               named by its hash), the scan has no repo_fd (-1) and
 *               walks nothing, the mount skips its placement checks.
 *   repo(s)     optional, before the walk: the repository as a whole is
 *               this layout's (a repository that is not a directory tree,
 *               such as rbd:POOL); true skips the directory walk.
 *   dir(s, d)   a directory, its sorted regular files and sub-directories
 *               (names only): the layout adds the backups it finds there
 *               (scan_add_backup, scan_add_disk / scan_add_disk_recipe) and
 *               returns true to claim d, and the walk does not descend
 *               below a claimed directory; false lets the next layout look,
 *               then the walk goes on into d's sub-directories (down to
 *               CAT_LAYOUT_MAX_DEPTH).
 *   finish(s)   optional, after the walk: group what the layout collected
 *               across directories (KBOSS), add its backups; also after
 *               a partial scan of one VM (s->only_vm: NAS names a stopped
 *               VM's disks from its other backups).
 *   state_free  optional: frees the layout's state (see scan_layout_state)
 *               at the end of every scan, also a failed one.
 *
 * A layout's own state lives behind scan_layout_state(), never in struct
 * scan.  Layouts decide formats by their names (the layout is the truth:
 * a .raw is raw whatever its bytes say); their parsers take (buffer,
 * length) so they can be fuzzed without SQLite (catalog-int.h).
 */
#ifndef BFS_CATALOG_LAYOUT_H
#define BFS_CATALOG_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>

struct scan;

/* the deepest directory offered to a layout ("." is depth 0) */
#define CAT_LAYOUT_MAX_DEPTH 4

struct scan_dir {
  const char *rel;              /* repository-relative; "." for the root */
  unsigned depth;               /* 0 the root, 1 <d0>, 2 <d0>/<d1>, ... */
  const char *const *parts;     /* rel's components, depth of them */
  char **files;                 /* regular files, sorted, not hidden */
  size_t nfiles;
  char **dirs;                  /* sub-directories, sorted, not hidden */
  size_t ndirs;
  bool repo_is_backups;         /* the repository's own name is "backups"
                                   (a KBOSS store mounted at its backups/) */
};

struct cat_layout {
  const char *name;             /* the source name, e.g. "cloudstack-nas" */
  const char *describe;         /* what it looks like, for messages */
  bool (*names)(const char *repo);
  bool (*repo)(struct scan *s);
  bool (*dir)(struct scan *s, const struct scan_dir *d);
  void (*finish)(struct scan *s);
  void (*state_free)(void *state);
};

/* the table, in the order directories are offered; NULL-terminated */
extern const struct cat_layout *const cat_layouts[];

/* the layout's own state slot for this scan (NULL until it sets it) */
void **scan_layout_state(struct scan *s, const struct cat_layout *l);

extern const struct cat_layout layout_nas;
extern const struct cat_layout layout_generic;
extern const struct cat_layout layout_kboss;
extern const struct cat_layout layout_pbs;
extern const struct cat_layout layout_vma;
extern const struct cat_layout layout_vnbd;
extern const struct cat_layout layout_restic;
extern const struct cat_layout layout_rbd;

#endif
