/* stub.c — placeholder until the image core lands. */
#include <stdio.h>
#include "image/image.h"

int image_cmd(int argc, char **argv) { fprintf(stderr, "backupfs: image: not built yet\n"); return 2; }
