/* cmd.c — `backupfs restore file|disk|quick`: dispatch to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "restore/restore.h"
#include "restore/restore-int.h"

static void
usage(FILE *f)
{
  fprintf(f,
"usage: backupfs restore file BACKUP_DIR/files/PATH DEST [--force]\n"
"       backupfs restore disk BACKUP_DIR DISK DEST [--format raw|qcow2]\n"
"                             [--compress] [--bandwidth MIB/S]\n"
"       backupfs restore disk --repo REPO VM[@TIME] DISK DEST ...\n"
"       backupfs restore quick BACKUP_DIR DEST_DIR [--same-identity] [--start]\n"
"       backupfs restore quick --repo REPO VM[@TIME] DEST_DIR [--via repo|nbd|mount]\n"
"       backupfs restore consolidate DEST_DIR\n"
"       backupfs restore status DEST_DIR\n\n"
"BACKUP_DIR is a point-in-time directory of a backupfs mount, such as\n"
"/mnt/backups/web01/latest.  `backupfs restore SUBCOMMAND --help` for more.\n");
}

int
restore_cmd(int argc, char **argv)
{
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "disk"))
    return restore_disk_cmd(argc - 1, argv + 1);
  if (!strcmp(argv[1], "quick"))
    return restore_quick_cmd(argc - 1, argv + 1);
  if (!strcmp(argv[1], "consolidate"))
    return restore_consolidate_cmd(argc - 1, argv + 1);
  if (!strcmp(argv[1], "status"))
    return restore_status_cmd(argc - 1, argv + 1);
  if (!strcmp(argv[1], "file"))
    return restore_file_cmd(argc - 1, argv + 1);
  fprintf(stderr, "backupfs: restore: unknown subcommand '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
