/* image-cmd.h — `backupfs image info|map|cat IMAGE` (blk/image-cmd.c): the
 * debug command over one image path, read through the block layer. */
#ifndef BFS_BLK_IMAGE_CMD_H
#define BFS_BLK_IMAGE_CMD_H

int image_cmd(int argc, char **argv);

#endif
