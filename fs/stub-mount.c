/* stub-mount.c — placeholder until the mount lands. */
#include <stdio.h>
#include "fs/fs.h"

int fs_mount_cmd(int argc, char **argv) { fprintf(stderr, "backupfs: mount: not built yet\n"); return 2; }
