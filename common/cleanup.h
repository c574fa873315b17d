/* cleanup.h — scope-bound cleanup attributes (as in nbdkit/libguestfs).
 *
 *   CLEANUP_FREE char *s = strdup("x");   freed when s leaves scope
 *   CLEANUP_CLOSE int fd = open(...);     closed (if >= 0) when fd leaves scope
 *
 * Hand ownership out of a scope with TAKE(p), which returns p and nulls it.
 */
#ifndef BFS_CLEANUP_H
#define BFS_CLEANUP_H

#include <stdlib.h>
#include <stdio.h>

void cleanup_free(void *ptr);
void cleanup_close(int *fd);
void cleanup_fclose(FILE **fp);

#define CLEANUP_FREE __attribute__((cleanup(cleanup_free)))
#define CLEANUP_CLOSE __attribute__((cleanup(cleanup_close)))
#define CLEANUP_FCLOSE __attribute__((cleanup(cleanup_fclose)))

#define TAKE(p) ({ __typeof__(p) take_tmp_ = (p); (p) = NULL; take_tmp_; })
#define TAKE_FD(fd) ({ int take_fd_ = (fd); (fd) = -1; take_fd_; })

#endif
