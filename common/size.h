/* size.h — the one human-readable size format of backupfs: "512 B",
 * "1.5 KiB", "20.0 GiB" (binary units, one decimal).  Tables, progress
 * lines and summaries all print sizes with it, so a size reads the same in
 * `list`, `verify` and `restore`. */
#ifndef BFS_SIZE_H
#define BFS_SIZE_H

#include <stddef.h>
#include <stdint.h>

#define BFS_HUMAN_SIZE_MAX 16          /* "1023.9 EiB" and the '\0' fit */

/* writes into buf (len >= BFS_HUMAN_SIZE_MAX is never cut) and returns it */
const char *bfs_human_size(uint64_t bytes, char *buf, size_t len);

#endif
