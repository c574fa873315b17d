/* timefmt.h — the UTC time formats of backupfs.  Every ISO 8601 time the
 * tools print or write into JSON ("2026-12-02T05:38:00Z": the catalog,
 * the restore state, the guest file index, the status files) and every
 * point-in-time name of the tree ("2026-12-02T053800Z") comes from here,
 * so the same instant reads the same everywhere.  A time gmtime cannot
 * represent is written as its number of seconds.  Both return buf. */
#ifndef BFS_TIMEFMT_H
#define BFS_TIMEFMT_H

#include <stdint.h>

#define BFS_TIME_MAX 32        /* either form and the '\0' fit */

/* ISO 8601 UTC: "2026-12-02T05:38:00Z" */
const char *bfs_time_iso(int64_t t, char buf[static BFS_TIME_MAX]);
/* the same without colons, a file name: "2026-12-02T053800Z" */
const char *bfs_time_name(int64_t t, char buf[static BFS_TIME_MAX]);

#endif
