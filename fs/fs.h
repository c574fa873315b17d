/* fs.h — the FUSE mount (low-level API) and guest files. */
#ifndef BFS_FS_H
#define BFS_FS_H

/* backupfs mount [-f] [-o OPTS] REPO MOUNTPOINT, and the mount.fuse3 form */
int fs_mount_cmd(int argc, char **argv);
/* backupfs index REPO [VM[@TIME]] */
int fs_index_cmd(int argc, char **argv);
/* backupfs find REPO [VM] GLOB */
int fs_find_cmd(int argc, char **argv);
/* backupfs status [--json] MNT; backupfs umount [--force] MNT */
int fs_status_cmd(int argc, char **argv);
int fs_umount_cmd(int argc, char **argv);

#endif
