/* main.c — the backupfs command dispatcher.
 *
 * One binary, one command per module (see DESIGN.md §1).  When the first
 * argument is not a command name, the call is the mount.fuse3 form
 * (`backupfs REPO MOUNTPOINT -o OPTS`) and goes to the mount command.
 * The options every command shares (-v, -V, -h, --catalog, --json, --) are
 * parsed by common/opts.c, here (before the command's name) and in each
 * command; -v/-vv: more log (info, debug) on stderr and in a mount's log.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "catalog/catalog.h"
#include "common/error.h"
#include "common/opts.h"
#include "fs/fs.h"
#include "blk/image-cmd.h"
#include "history/history.h"
#include "restore/restore.h"

static const struct command {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *usage;
} commands[] = {
  { "mount", fs_mount_cmd, "mount [-f] [-o OPTS] REPO MOUNTPOINT" },
  { "scan", catalog_scan_cmd, "scan REPO" },
  { "list", catalog_list_cmd, "list [--json] REPO [VM]" },
  { "verify", restore_verify_cmd, "verify REPO [VM[@TIME]]" },
  { "restore", restore_cmd, "restore file|disk|quick ..." },
  { "index", fs_index_cmd, "index REPO [VM[@TIME]]" },
  { "find", fs_find_cmd, "find [--all-versions] REPO [VM] GLOB" },
  { "history", history_cmd, "history [--recursive] REPO VM PATH" },
  { "diff", history_diff_cmd, "diff [--blocks] REPO VM@T1 VM@T2 [PATH]" },
  { "image", image_cmd, "image info|map|cat IMAGE" },
  { "status", fs_status_cmd, "status [--json] MOUNTPOINT" },
  { "umount", fs_umount_cmd, "umount [--force] MOUNTPOINT" },
};

static void
list_commands(FILE *f)
{
  fprintf(f, "commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  backupfs %s\n", commands[i].usage);
  fprintf(f, "\nEvery command takes -v, -V, -h and --; those that read a "
             "catalog --catalog FILE,\nthose that print data --json.  "
             "Every command has --help.  See backupfs(1).\n");
}

static const struct bfs_cmd main_cmd = {
  .name = "", .usage = "[-v] COMMAND [ARGS]\n"
  "       backupfs REPO MOUNTPOINT -o OPTS   (mount.fuse3 form)",
  .about = "Browse, copy from and boot qcow2 VM backups.",
  .shared = BFS_OPTS_STOP, .need = "a COMMAND", .min_args = 1,
  .max_args = -1, .more = list_commands,
};

int
main(int argc, char **argv)
{
  struct bfs_args a;
  int c;

  bfs_opts_init(&a, &main_cmd, argc, argv);
  while ((c = bfs_opts_next(&a)) > 0)
    ;                                  /* only the shared options */
  if (c < 0)
    return a.status;
  const char *cmd = a.pos[0];
  if (!strcmp(cmd, "help")) {
    bfs_opts_usage(&main_cmd, stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(cmd, commands[i].name))
      return commands[i].fn(a.npos, a.pos);
  if (a.npos >= 2)                   /* mount.fuse3 form: argv[0] unused */
    return fs_mount_cmd(a.npos + 1, a.pos - 1);
  fprintf(stderr, "backupfs: unknown command '%s'\n", cmd);
  bfs_opts_usage(&main_cmd, stderr);
  return 2;
}
