/* blktest.h — helpers shared by the blk suite's C tests: a work directory,
 * qemu-img/qemu-io runs, files loaded into memory, big-endian patches, and
 * blk stacks opened over memory or over the files themselves.
 */
#ifndef BFS_BLKTEST_H
#define BFS_BLKTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk/blk.h"

struct tbuf {
  unsigned char *p;
  size_t len;
};

extern int bt_failures;             /* test programs only: the verdict */
#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      bt_failures++;                                                       \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                          \
      printf(__VA_ARGS__);                                                 \
      printf("\n");                                                        \
    }                                                                      \
  } while (0)

/* mkdtemp under $TMPDIR; exits 77 when qemu-img/qemu-io are missing */
const char *bt_workdir(const char *tag);
void bt_cleanup(void);
/* path of name inside the work dir (static buffer rotation: 8 at a time) */
const char *bt_path(const char *name);
/* run a shell command line; exit the test on failure */
void bt_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
struct tbuf bt_load(const char *name);
void bt_save(const char *name, const struct tbuf *b);
void bt_put64(struct tbuf *b, uint64_t off, uint64_t v);
void bt_put32(struct tbuf *b, uint64_t off, uint32_t v);
uint64_t bt_get64(const struct tbuf *b, uint64_t off);
uint32_t bt_get32(const struct tbuf *b, uint64_t off);
/* host offset of the L2 entry of guest offset g (first L1 entry only) */
uint64_t bt_l2_entry(const struct tbuf *b, uint64_t g);
/* open one qcow2 image over memory (no backing) */
int bt_open_qcow2_mem(const struct tbuf *b, const char *name,
                      struct bfs_blk **out);
/* true when the last error mentions every one of the words */
bool bt_err_has(const char *w1, const char *w2);

#endif
