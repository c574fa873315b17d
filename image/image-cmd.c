/* image-cmd.c — `backupfs image info|map|cat IMAGE` (header probe stage). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "image/image.h"

static void
print_info(const img_t *img)
{
  const struct img_info *in = img_get_info(img);
  printf("image: %s\n", img_name(img));
  printf("  format: %s\n", in->format == IMG_FORMAT_QCOW2 ? "qcow2" : "raw");
  if (in->format == IMG_FORMAT_QCOW2) {
    printf("  version: %d\n", in->version);
    printf("  cluster size: %u\n", 1u << in->cluster_bits);
    printf("  compression: %s\n",
           in->compression == IMG_COMPRESSION_ZSTD ? "zstd" : "zlib");
    printf("  extended l2: %s\n", in->extended_l2 ? "yes" : "no");
  }
  printf("  virtual size: %" PRIu64 "\n", in->virtual_size);
  printf("  file size: %" PRIu64 "\n", in->file_size);
  if (in->encrypted) printf("  encrypted: yes\n");
  if (in->external_data) printf("  external data file: yes\n");
  if (in->backing_file)
    printf("  backing file: %s\n  backing format: %s\n", in->backing_file,
           in->backing_format ? in->backing_format : "(probe)");
}

int
image_cmd(int argc, char **argv)
{
  img_t *img;
  int r;

  if (argc != 3 || strcmp(argv[1], "info")) {
    fprintf(stderr, "usage: backupfs image info IMAGE\n");
    return 2;
  }
  r = img_open(argv[2], &img);
  if (r < 0) {
    fprintf(stderr, "backupfs: %s\n", bfs_last_error());
    return 1;
  }
  print_info(img);
  img_close(img);
  return 0;
}
