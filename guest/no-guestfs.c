/* no-guestfs.c — what stands in for the libguestfs parts of guest/ in a
 * build without libguestfs (meson -Dguestfs=disabled): `backupfs index`
 * says so, and guest_index_db_path (used by find) stays in index.c. */
#include <stdio.h>

#include "fs/fs.h"

int
fs_index_cmd(int argc, char **argv)
{
  fprintf(stderr, "backupfs: index: this build has no libguestfs "
          "(meson setup -Dguestfs=enabled)\n");
  return 1;
}
