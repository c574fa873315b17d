/* serve.h — `backupfs serve`: NBD exports of point-in-time disks through
 * nbdkit and our plugin (serve/plugin.c). */
#ifndef BFS_SERVE_H
#define BFS_SERVE_H

int serve_cmd(int argc, char **argv);
/* Where nbdkit-backupfs-plugin.so is ($BACKUPFS_NBDKIT_PLUGIN, next to the
 * binary, the install directory; malloc'd), or NULL with the error set. */
char *serve_plugin_path(void);

#endif
