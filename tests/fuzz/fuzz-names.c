/* fuzz-names.c — libFuzzer target for the name parsers of the QEMU bitmap,
 * Proxmox, Ceph RBD and restic layouts (catalog-int.h): virtnbdbackup
 * stream file names, vzdump archive names, PBS snapshot paths and drive
 * index names, virt-rbd-backup snapshot names and rbd_group=prefix's VM
 * of an image, restic disk file extensions and vm= tags.  (The generic
 * timestamps they build on are fuzz-layout's, tests/catalog.)
 *
 * The first input byte selects the parser (mod 8), the rest is its input,
 * given as (buffer, length) with no NUL appended (the RBD and restic
 * parsers take a C string: the input up to its first NUL).  Beyond not
 * crashing, what a parser accepts must hold: the parts it reports lie
 * inside the input, and a virtnbdbackup name is rebuilt byte for byte
 * from them.
 * The regression driver (fuzz-regress.c) replays corpus/names in suite
 * fuzz-regress; -Dfuzz=true builds the libFuzzer binary.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog-int.h"
#include "common/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  bfs_log_level = BFS_LOG_ERROR;
  return 0;
}

/* the name a parsed virtnbdbackup stream has */
static void
vnbd_check(const char *s, size_t len)
{
  static const char *const kinds[] = { NULL, "full", "copy", "inc", "diff" };
  struct vnbd_name n;
  enum vnbd_name_kind k = vnbd_parse_stream_name(s, len, &n);
  char buf[1024];
  int w;

  if (k == VNBD_NAME_NOT)
    return;
  if (k != n.kind || n.target_len == 0 || n.target_len >= len ||
      n.cpt_off + n.cpt_len > len || n.n < 0)
    abort();
  if ((k == VNBD_NAME_INC || k == VNBD_NAME_DIFF) != (n.cpt_len > 0))
    abort();
  if (len > 900)
    return;
  w = snprintf(buf, sizeof buf, "%.*s.%s%s%.*s.data%s", (int)n.target_len,
               s, kinds[k], n.cpt_len ? "." : "", (int)n.cpt_len,
               s + n.cpt_off, n.partial ? ".partial" : "");
  if (w < 0 || (size_t)w != len || memcmp(buf, s, len))
    abort();                     /* the parts are the whole name */
}

/* the RBD and restic parsers, on the C string s */
static void
rbd_restic_check(int which, const char *s)
{
  size_t len = strlen(s), n;
  const char *p;

  switch (which) {
  case 4: {                     /* a time from 1970 to the year 9999 */
    int64_t t = rbd_snap_name_time(s);
    if (t != -1 && (t < 0 || t > 253402300800 + 2 * 86400 ||
                    !strstr(s, "-backup-")))
      abort();
    break;
  }
  case 5:                       /* a proper prefix before [-_]disk */
    n = rbd_prefix_vm_len(s);
    if (n && (n >= len || (s[n] != '-' && s[n] != '_') ||
              strncmp(s + n + 1, "disk", 4)))
      abort();
    break;
  case 6:                       /* an extension of the last component */
    p = restic_disk_ext(s);
    if (p && (p <= s || p < s + len - 6 || p[-1] == '/' ||
              strchr(p, '/') || (strcmp(p, ".img") && strcmp(p, ".raw") &&
                                 strcmp(p, ".qcow2"))))
      abort();
    break;
  case 7:                       /* a non-empty name after "vm=" or "vm:" */
    p = restic_tag_vm(s);
    if (p && (p != s + 3 || !*p))
      abort();
    break;
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  const char *s = (const char *)data + 1;
  size_t len = size - 1, idlen = 0;
  int64_t t;

  switch (data[0] % 8) {
  case 0:
    vnbd_check(s, len);
    break;
  case 1: {
    const char *comp = "unset";
    if (vma_parse_name(s, len, &idlen, &t, &comp) == 0 &&
        (idlen == 0 || idlen > 9 || 12 + idlen >= len || s[12 + idlen] != '-' ||
         (comp && strcmp(comp, "zstd") && strcmp(comp, "lzo"))))
      abort();
    break;
  }
  case 2:
    if (pbs_parse_snapshot(s, len, &idlen, &t) == 0 &&
        (idlen == 0 || idlen > 9 || 3 + idlen >= len || s[3 + idlen] != '/'))
      abort();
    break;
  case 3: {
    size_t n = pbs_drive_name(s, len);
    if (n && (n + 15 != len || memcmp(s, "drive-", 6)))
      abort();
    break;
  }
  default: {
    char *z = strndup(s, len);
    if (!z)
      return 0;
    rbd_restic_check(data[0] % 8, z);
    free(z);
    break;
  }
  }
  bfs_clear_error();
  return 0;
}
