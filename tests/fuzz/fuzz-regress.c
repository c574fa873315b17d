/* fuzz-regress.c — replay a fuzz corpus without libFuzzer, so crashes
 * once found stay fixed: every file in the directories (or files) given
 * goes through LLVMFuzzerTestOneInput once, after LLVMFuzzerInitialize
 * when the target has one (weak, as libFuzzer calls it).  A crash fails
 * the test; the count of inputs is printed.  The one driver of every
 * fuzz target (tests/fuzz, catalog, restic, vnbd); suite fuzz-regress.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int
run_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); return -1; }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0, n;
  do {
    if (len == cap) {
      cap = cap ? cap * 2 : 4096;
      uint8_t *nb = realloc(buf, cap);
      if (!nb) { fclose(f); free(buf); return -1; }
      buf = nb;
    }
    n = fread(buf + len, 1, cap - len, f);
    len += n;
  } while (n > 0);
  fclose(f);
  LLVMFuzzerTestOneInput(buf, len);
  free(buf);
  return 0;
}

int
main(int argc, char **argv)
{
  unsigned count = 0;
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) < 0) { perror(argv[i]); return 1; }
    if (!S_ISDIR(st.st_mode)) {
      if (run_file(argv[i]) < 0) return 1;
      count++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    struct dirent *e;
    if (!d) { perror(argv[i]); return 1; }
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
      if (run_file(path) < 0) { closedir(d); return 1; }
      count++;
    }
    closedir(d);
  }
  printf("%u inputs replayed\n", count);
  return count ? 0 : 1;
}
