/* util.c — what history.c, diff.c and diff-blocks.c share: a VM's points
 * in time from the catalog (scanned first, incremental and cheap, so the
 * list is the repository's now), where its index is, path and range text.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "guest/guest.h"
#include "history/history-int.h"
#include "restore/restore-int.h"

int
hist_open(const char *repo, const char *catalog, bool luks_key,
          const char *index, const char *vm, struct hist_vm *h)
{
  int r;

  memset(h, 0, sizeof *h);
  if ((r = restore_open_catalog(repo, NULL, 0, catalog, luks_key,
                                &h->cat)) < 0)
    return r;
  if ((r = catalog_backups(h->cat, vm, &h->b, &h->n)) < 0)
    goto fail;
  if (h->n == 0) {
    r = bfs_error(-ENOENT, "%s: no VM '%s' in the repository", repo, vm);
    goto fail;
  }
  h->vm = strdup(vm);
  h->db = index ? strdup(index) : guest_index_db_path(catalog_path(h->cat));
  if (!h->vm || !h->db) {
    r = bfs_error(-ENOMEM, "out of memory");
    goto fail;
  }
  return 0;
fail:
  hist_close(h);
  return r;
}

void
hist_close(struct hist_vm *h)
{
  if (h->b)
    catalog_backups_free(h->b, h->n);
  if (h->cat)
    catalog_close(h->cat);
  free(h->vm);
  free(h->db);
  memset(h, 0, sizeof *h);
}

const char *
hist_range(const char *first, const char *last, char buf[static 80])
{
  if (!strcmp(first, last))
    snprintf(buf, 80, "%s", first);
  else
    snprintf(buf, 80, "%s .. %s", first, last);
  return buf;
}

char *
hist_path(const char *arg)
{
  if (arg[0] != '/') {
    bfs_error(-EINVAL, "%s: a guest path starts with '/'", arg);
    return NULL;
  }
  char *p = malloc(strlen(arg) + 1), *o = p;
  if (!p) {
    bfs_error(-ENOMEM, "out of memory");
    return NULL;
  }
  for (const char *s = arg; *s; s++)
    if (*s != '/' || o == p || o[-1] != '/')
      *o++ = *s;
  if (o > p + 1 && o[-1] == '/')
    o--;
  *o = '\0';
  return p;
}
