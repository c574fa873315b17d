/* error.h — thread-local last error (logging: common/log.h).
 *
 * Functions return 0 / a value, or -errno.  The human message for the most
 * recent failure on this thread is kept here, set once where the failure is
 * detected (naming the file and the reason), and printed by whoever finally
 * reports it:
 *
 *   return bfs_error(-EIO, "%s: L1 table at %#" PRIx64 " past end of file", path, off);
 *   ...
 *   fprintf(stderr, "backupfs: %s\n", bfs_last_error());
 *
 * bfs_error() returns its first argument so it can be returned directly.
 * bfs_error_prefix() prepends context ("web01@...: ") to the current message.
 */
#ifndef BFS_ERROR_H
#define BFS_ERROR_H

#include <stdarg.h>

int bfs_error(int neg_errno, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int bfs_error_prefix(int neg_errno, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *bfs_last_error(void);
void bfs_clear_error(void);

#include "common/log.h"    /* bfs_log() and levels */

#endif
