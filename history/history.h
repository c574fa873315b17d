/* history.h — comparing points in time: `backupfs history` and
 * `backupfs diff` (files from the guest indexes, or --blocks from the disks). */
#ifndef BFS_HISTORY_H
#define BFS_HISTORY_H

/* backupfs history [--catalog F] [--index F] [--recursive] [--json] REPO VM PATH */
int history_cmd(int argc, char **argv);
/* backupfs diff [--catalog F] [--index F] [--blocks] [--json]
 *               REPO VM@T1 VM@T2 [PATH|DISK] */
int history_diff_cmd(int argc, char **argv);

#endif
