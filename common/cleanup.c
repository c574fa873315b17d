/* cleanup.c — the functions behind the CLEANUP_* attributes. */
#include "cleanup.h"

#include <unistd.h>

void
cleanup_free(void *ptr)
{
  free(*(void **)ptr);
}

void
cleanup_close(int *fd)
{
  if (*fd >= 0)
    close(*fd);
}

void
cleanup_fclose(FILE **fp)
{
  if (*fp)
    fclose(*fp);
}
