/* main.c — the backupfs command dispatcher.
 *
 * One binary, one command per module (see DESIGN.md §1).  When the first
 * argument is not a command name, the call is the mount.fuse3 form
 * (`backupfs REPO MOUNTPOINT -o OPTS`) and goes to the mount command.
 * -v / -vv / --verbose (anywhere before `--`) are taken out here for every
 * command: more log (info, debug) on stderr and in a mount's log.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "catalog/catalog.h"
#include "common/error.h"
#include "fs/fs.h"
#include "blk/image-cmd.h"
#include "history/history.h"
#include "restore/restore.h"
#include "serve/serve.h"

#ifndef BFS_VERSION
#define BFS_VERSION "unknown"
#endif

static const struct command {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *usage;
} commands[] = {
  { "mount", fs_mount_cmd, "mount [-f] [-o OPTS] REPO MOUNTPOINT" },
  { "scan", catalog_scan_cmd, "scan REPO" },
  { "list", catalog_list_cmd, "list [--json] REPO [VM]" },
  { "verify", restore_verify_cmd, "verify REPO [VM[@TIME]]" },
  { "restore", restore_cmd, "restore file|disk|quick|consolidate|status ..." },
  { "index", fs_index_cmd, "index REPO [VM[@TIME]]" },
  { "find", fs_find_cmd, "find [--all-versions] REPO [VM] GLOB" },
  { "history", history_cmd, "history [--recursive] REPO VM PATH" },
  { "diff", history_diff_cmd, "diff [--blocks] REPO VM@T1 VM@T2 [PATH]" },
  { "image", image_cmd, "image info|map|cat IMAGE" },
  { "status", fs_status_cmd, "status [--json] MOUNTPOINT" },
  { "umount", fs_umount_cmd, "umount [--force] MOUNTPOINT" },
  { "serve", serve_cmd, "serve [--socket PATH|--tcp [ADDR:]PORT] REPO" },
};

static void
usage(FILE *f)
{
  fprintf(f, "usage: backupfs COMMAND [ARGS]\n"
             "       backupfs REPO MOUNTPOINT -o OPTS   (mount.fuse3 form)\n\n"
             "Browse, copy from and boot qcow2 VM backups.\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  backupfs %s\n", commands[i].usage);
  fprintf(f, "\noptions of every command:\n"
             "  -v, --verbose      more log (info); -vv: debug\n"
             "  -V, --version      print the version\n"
             "  -h, --help         this help (COMMAND --help: that command's)\n"
             "\nEvery command has --help.  See backupfs(1).\n");
}

/* Take -v, -vv, --verbose out of argv (up to `--`); returns the new argc. */
static int
take_verbosity(int argc, char **argv)
{
  int out = 1, more = 0;
  bool ended = false;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!ended && !strcmp(a, "--"))
      ended = true;
    if (!ended && (!strcmp(a, "-v") || !strcmp(a, "-vv") ||
                   !strcmp(a, "-vvv") || !strcmp(a, "--verbose"))) {
      more += a[1] == '-' ? 1 : (int)strlen(a) - 1;
      continue;
    }
    argv[out++] = argv[i];
  }
  argv[out] = NULL;
  bfs_log_level += more;
  if (bfs_log_level > BFS_LOG_DEBUG)
    bfs_log_level = BFS_LOG_DEBUG;
  return out;
}

int
main(int argc, char **argv)
{
  argc = take_verbosity(argc, argv);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
    printf("backupfs %s\n", BFS_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name))
      return commands[i].fn(argc - 1, argv + 1);
  if (argv[1][0] != '-' && argc >= 3)
    return fs_mount_cmd(argc, argv);   /* mount.fuse3 form */
  fprintf(stderr, "backupfs: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
