/* ioutil.h — whole-buffer file I/O: pread/pwrite/write that retry on EINTR
 * and short transfers.
 *
 * A read that hits end of file before len bytes is -EIO (the file ended
 * early: for an image that is truncation, never zeros).  All return 0 or
 * -errno and leave the message to the caller, who knows the file name.
 */
#ifndef BFS_IOUTIL_H
#define BFS_IOUTIL_H

#include <stddef.h>
#include <stdint.h>

int bfs_pread_all(int fd, void *buf, size_t len, uint64_t off);
int bfs_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
int bfs_write_all(int fd, const void *buf, size_t len);

#endif
