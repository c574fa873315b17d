/* guest-cache.h — what guest.c knows about one point in time's files.
 *
 * A hash table from absolute guest path to its attributes, symlink target
 * and, for directories that were listed, the names they hold.  Backups never
 * change, so entries never expire; the table is bounded (cleared when it
 * grows past a cap) and survives the appliance being closed.  A stored file
 * index (index.c) fills the same table in one go and marks it complete, so
 * a path missing from a complete table does not exist.
 *
 * Not thread-safe: guest.c holds the guest's cache lock around every call.
 */
#ifndef BFS_GUEST_CACHE_H
#define BFS_GUEST_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/htab.h"

struct gc_entry {
  char *path;
  struct stat st;
  char *link;              /* symlink target, or the text of an error file */
  bool error_file;         /* a virtual .backupfs-error (content is link) */
  bool listed;             /* directory: kids is its complete listing */
  char **kids;             /* names, sorted as listed */
  size_t nkids, kcap;
  struct bfs_hlink h;      /* in gcache.t, keyed by path */
};

struct gcache {
  struct bfs_htab t;       /* no buckets until the first gc_get */
  size_t cap;
  bool complete;           /* filled from an index: absent means ENOENT */
};

void gc_init(struct gcache *c, size_t cap);
void gc_clear(struct gcache *c);
struct gc_entry *gc_find(struct gcache *c, const char *path);
/* find or create (st zeroed) — NULL on ENOMEM */
struct gc_entry *gc_get(struct gcache *c, const char *path);
/* replace a directory's listing (takes ownership of kids) */
void gc_set_kids(struct gc_entry *e, char **kids, size_t n);
/* append one name to a directory's listing (copied); -ENOMEM */
int gc_add_kid(struct gc_entry *e, const char *name);

/* path helpers: join dir and name (malloc'd); parent of path (malloc'd) */
char *gc_join(const char *dir, const char *name);
char *gc_parent(const char *path);
const char *gc_basename(const char *path);

#endif
