/* serve.h — `backupfs serve`: NBD exports of point-in-time disks through
 * nbdkit and our plugin (serve/plugin.c). */
#ifndef BFS_SERVE_H
#define BFS_SERVE_H

int serve_cmd(int argc, char **argv);

#endif
