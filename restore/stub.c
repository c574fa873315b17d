/* stub.c — placeholders until restore lands. */
#include <stdio.h>
#include "restore/restore.h"

int restore_cmd(int argc, char **argv) { fprintf(stderr, "backupfs: restore: not built yet\n"); return 2; }
int restore_verify_cmd(int argc, char **argv) { fprintf(stderr, "backupfs: verify: not built yet\n"); return 2; }
