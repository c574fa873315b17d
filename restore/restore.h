/* restore.h — restore file/disk/quick and verify (disk/ + catalog/, never fs/). */
#ifndef BFS_RESTORE_H
#define BFS_RESTORE_H

/* backupfs restore file|disk|quick ... */
int restore_cmd(int argc, char **argv);
/* backupfs verify REPO [VM[@TIME]] */
int restore_verify_cmd(int argc, char **argv);

#endif
