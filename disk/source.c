/* source.c — the table of shared driver contexts (see source.h).
 *
 * Adding a driver that needs one: a row here calling the driver's own
 * context constructor (blk/<driver>.h); nothing else in disk/ changes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "disk/source.h"

static const struct bfs_disk_source sources[] = {
  { 0 },                           /* rows: driver, no_file, key, open, close */
};

const struct bfs_disk_source *
bfs_disk_source_find(const char *driver)
{
  for (size_t i = 0; driver && i < sizeof sources / sizeof sources[0]; i++)
    if (sources[i].driver && !strcmp(sources[i].driver, driver))
      return &sources[i];
  return NULL;
}
