/* find.c — `backupfs find REPO [VM] GLOB`: search the stored guest file
 * indexes of every backup (see index.c) without starting an appliance.
 *
 * GLOB is an fnmatch(3) pattern: with a '/' it is matched against the whole
 * guest path, else against the file name.  One line per match, in VM and
 * time order, tab-separated: vm@time, path, size, mtime (UTC) — so one file's
 * lines show in which backups it exists and when it changed.
 */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "fs/fs.h"
#include "guest/guest-cache.h"
#include "guest/index.h"

struct find_ctx {
  const char *glob;
  bool whole_path;
  uint64_t matches;
};

static int
visit(void *opaque, const char *vm, const char *time_name, const char *path,
      const struct stat *st, const char *link)
{
  struct find_ctx *x = opaque;
  const char *subject = x->whole_path ? path : gc_basename(path);
  if (fnmatch(x->glob, subject, 0) != 0)
    return 0;
  char when[32];
  time_t t = st->st_mtim.tv_sec;
  struct tm tm;
  if (!gmtime_r(&t, &tm) || !strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm))
    snprintf(when, sizeof when, "%" PRId64, (int64_t)t);
  printf("%s@%s\t%s%s\t%" PRId64 "\t%s\n", vm, time_name, path,
         S_ISDIR(st->st_mode) ? "/" : "", (int64_t)st->st_size, when);
  x->matches++;
  return 0;
}

static void
usage(FILE *f)
{
  fprintf(f,
    "usage: backupfs find [--catalog FILE] [--index FILE] REPO [VM] GLOB\n\n"
    "Search the guest file indexes (made by `backupfs index`) of all backups\n"
    "of REPO, or of one VM.  GLOB is a shell pattern matched against the file\n"
    "name, or against the whole guest path when it contains '/'.\n"
    "Prints one line per match: VM@TIME, PATH, SIZE, MTIME (tab-separated).\n"
    "Exit status 0 when something matched, 1 when nothing did, 2 on errors.\n\n"
    "  --catalog FILE   the repository's catalog (index is FILE.index.sqlite)\n"
    "  --index FILE     the index database itself\n");
}

int
fs_find_cmd(int argc, char **argv)
{
  static const struct option opts[] = {
    { "help", no_argument, NULL, 'h' },
    { "catalog", required_argument, NULL, 'c' },
    { "index", required_argument, NULL, 'x' },
    { NULL, 0, NULL, 0 },
  };
  const char *catalog = NULL, *index = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
    switch (c) {
    case 'h': usage(stdout); return 0;
    case 'c': catalog = optarg; break;
    case 'x': index = optarg; break;
    default: usage(stderr); return 2;
    }
  int nargs = argc - optind;
  if (nargs < 2 || nargs > 3) {
    usage(stderr);
    return 2;
  }
  const char *repo = argv[optind];
  const char *vm = nargs == 3 ? argv[optind + 1] : NULL;
  struct find_ctx x = { argv[argc - 1], strchr(argv[argc - 1], '/') != NULL, 0 };

  CLEANUP_FREE char *db = index ? strdup(index) : index_default_path(repo, catalog);
  if (!db) {
    fprintf(stderr, "backupfs: find: %s\n", bfs_last_error());
    return 2;
  }
  int r = index_foreach(db, vm, visit, &x);
  if (r < 0) {
    if (r == -ENOENT)
      fprintf(stderr, "backupfs: find: %s: no file index (run `backupfs index %s`)\n",
              db, repo);
    else
      fprintf(stderr, "backupfs: find: %s\n", bfs_last_error());
    return 2;
  }
  return x.matches ? 0 : 1;
}
