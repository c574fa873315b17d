/* repo-pending.c — stands in for source-repo.c and verify.c until the
 * catalog module lands on this branch (both need catalog_*). */
#include <errno.h>
#include <stdio.h>

#include "common/error.h"
#include "restore/restore.h"
#include "restore/restore-int.h"

int
restore_src_repo(const char *repo, const char *catalog_path,
                 const char *vmtime, const char *disk, struct rsrc **out)
{
  return bfs_error(-ENOTSUP, "--repo: not available in this build yet");
}

int
restore_verify_cmd(int argc, char **argv)
{
  fprintf(stderr, "backupfs: verify: not available in this build yet\n");
  return 2;
}
