/* qcow2-stat.h — facts about one qcow2 file that need its tables walked.
 *
 * The header's compression type only says how compressed clusters would be
 * coded; whether there are any is in the L2 tables.  The catalog's probe
 * asks once per file and caches the answer with the file's other header
 * facts (size, mtime, inode decide when it is asked again).
 */
#ifndef BFS_BLK_QCOW2_STAT_H
#define BFS_BLK_QCOW2_STAT_H

#include "blk/blk.h"

/* The compression of the clusters b (a qcow2 layer opened alone) holds:
 * "none" when no L2 entry is a compressed cluster, else the header's
 * type ("zlib", "zstd"; one qcow2 file has one).  Reads the L1 table and
 * every L2 table it names once, stopping at the first compressed cluster.
 * 0 and a static string, or -EIO with the file and the table that is
 * bad, -EINVAL when b is not a qcow2 layer. */
int blk_qcow2_compression(struct bfs_blk *b, const char **out);

/* A chain's compression from its layers' ("none", "zlib", "zstd", NULL for
 * a layer that could not be opened): "none", the one type present, or
 * "mixed" when layers use different types; NULL when a layer is NULL. */
const char *blk_compression_join(const char *const *layers, size_t n);

#endif
