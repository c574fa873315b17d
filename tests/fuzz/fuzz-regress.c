/* fuzz-regress.c — run the fuzz target over every file in a corpus
 * directory (default tests/fuzz/corpus/qcow2), so crashes once found stay
 * fixed.  Built always; `meson test --suite fuzz-regress`. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int
main(int argc, char **argv)
{
  const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/qcow2";
  DIR *d = opendir(dir);
  struct dirent *de;
  int n = 0;

  LLVMFuzzerInitialize(&argc, &argv);
  if (!d) {
    perror(dir);
    return 1;
  }
  while ((de = readdir(d))) {
    char path[4096];
    FILE *f;
    long len;
    unsigned char *buf;

    if (de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (!(f = fopen(path, "rb")))
      continue;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    buf = malloc(len > 0 ? (size_t)len : 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
      fprintf(stderr, "%s: read failed\n", path);
      return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)len);
    free(buf);
    n++;
  }
  closedir(d);
  printf("%d inputs ran without crashing\n", n);
  return n > 0 ? 0 : 1;
}
