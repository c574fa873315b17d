/* stub-guest.c — placeholder until guest files land. */
#include <stdio.h>
#include "fs/fs.h"

int fs_index_cmd(int argc, char **argv) { fprintf(stderr, "backupfs: index: not built yet\n"); return 2; }
int fs_find_cmd(int argc, char **argv) { fprintf(stderr, "backupfs: find: not built yet\n"); return 2; }
