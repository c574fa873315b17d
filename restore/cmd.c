/* cmd.c — `backupfs restore file|disk|quick`: dispatch to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "common/opts.h"
#include "restore/restore.h"
#include "restore/restore-int.h"

static const struct bfs_cmd restore_top = {
  .name = "restore",
  .usage = "restore file BACKUP_DIR/files/PATH DEST [--force]\n"
    "       backupfs restore disk BACKUP_DIR DISK DEST [--format raw|qcow2]\n"
    "                             [--compress] [--bandwidth MIB/S]\n"
    "       backupfs restore disk --repo REPO VM[@TIME] DISK DEST ...\n"
    "       backupfs restore quick BACKUP_DIR DEST_DIR [--same-identity] [--start]",
  .about = "BACKUP_DIR is a point-in-time directory of a backupfs mount, such as\n"
    "/mnt/backups/web01/latest.  `backupfs restore SUBCOMMAND --help` for more.",
  .shared = BFS_OPTS_STOP, .need = "a SUBCOMMAND (file, disk or quick)",
  .min_args = 1, .max_args = -1,
};

int
restore_cmd(int argc, char **argv)
{
  struct bfs_args g;
  int c;
  bfs_opts_init(&g, &restore_top, argc, argv);
  while ((c = bfs_opts_next(&g)) > 0)
    ;                                  /* only the shared options */
  if (c < 0)
    return g.status;
  if (!strcmp(g.pos[0], "disk"))
    return restore_disk_cmd(g.npos, g.pos);
  if (!strcmp(g.pos[0], "quick"))
    return restore_quick_cmd(g.npos, g.pos);
  if (!strcmp(g.pos[0], "file"))
    return restore_file_cmd(g.npos, g.pos);
  return bfs_opts_bad(&g, "unknown subcommand '%s'", g.pos[0]);
}
