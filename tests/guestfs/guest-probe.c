/* guest-probe.c — drive guest/guest.h directly, without a mount.
 *
 *   guest-probe [-m MAX_LIVE] [-i IDLE_SECONDS] [-x INDEX_DB] < COMMANDS
 *
 * One command a line (fields separated by single spaces):
 *   guest KEY DISK...     select (create) the guest for KEY ("vm/time")
 *   ls PATH               one line per entry: name type mode uid gid size nlink
 *   stat PATH             type mode uid gid size nlink ino mtime
 *   readlink PATH         the target
 *   cat PATH OUT          copy the file to OUT in 128 KiB reads (like FUSE)
 *   index DB VM TIME      store the guest's listing in DB
 *   useindex DB           answer from DB for this guest
 *   sleep SECONDS
 * Each result line starts with "ok " or "error N ..." (N = errno); the
 * elapsed milliseconds of each command go to stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "guest/guest.h"

static char
ftype(mode_t m)
{
  return S_ISDIR(m) ? 'd' : S_ISLNK(m) ? 'l' : S_ISREG(m) ? 'f' :
         S_ISCHR(m) ? 'c' : S_ISBLK(m) ? 'b' : S_ISFIFO(m) ? 'p' : 's';
}

static double
now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
fail(int r)
{
  printf("error %d %s\n", -r, bfs_last_error());
}

int
main(int argc, char **argv)
{
  unsigned max_live = 2, idle = 600;
  const char *index_db = NULL;
  int c;
  while ((c = getopt(argc, argv, "m:i:x:v")) != -1)
    switch (c) {
    case 'm': max_live = atoi(optarg); break;
    case 'i': idle = atoi(optarg); break;
    case 'x': index_db = optarg; break;
    case 'v': bfs_log_level = BFS_LOG_DEBUG; break;
    default:
      fprintf(stderr, "usage: guest-probe [-m MAX] [-i IDLE] [-x DB] < CMDS\n");
      return 2;
    }
  guest_pool_t *pool = guest_pool_new(max_live, idle);
  if (index_db)
    guest_pool_set_index(pool, index_db);
  guest_t *g = NULL;
  char line[8192];
  setvbuf(stdout, NULL, _IOLBF, 0);

  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = '\0';
    char *args[64];
    int n = 0;
    for (char *s = strtok(line, " "); s && n < 64; s = strtok(NULL, " "))
      args[n++] = s;
    if (n == 0 || args[0][0] == '#')
      continue;
    double t0 = now_ms();
    int r = 0;
    if (!strcmp(args[0], "guest") && n >= 2) {
      g = guest_get(pool, args[1], (const char *const *)args + 2, n - 2);
      printf(g ? "ok\n" : "error\n");
    }
    else if (!g)
      printf("error no guest\n");
    else if (!strcmp(args[0], "ls") && n == 2) {
      struct guest_dirent *e;
      size_t k;
      if ((r = guest_readdir(g, args[1], &e, &k)) < 0)
        fail(r);
      else {
        printf("ok %zu\n", k);
        for (size_t i = 0; i < k; i++)
          printf("%s %c %04o %u %u %" PRId64 " %lu\n", e[i].name,
                 ftype(e[i].st.st_mode), (unsigned)(e[i].st.st_mode & 07777),
                 (unsigned)e[i].st.st_uid, (unsigned)e[i].st.st_gid,
                 (int64_t)e[i].st.st_size, (unsigned long)e[i].st.st_nlink);
        guest_dirents_free(e, k);
      }
    }
    else if (!strcmp(args[0], "stat") && n == 2) {
      struct stat st;
      if ((r = guest_lstat(g, args[1], &st)) < 0)
        fail(r);
      else
        printf("ok %c %04o %u %u %" PRId64 " %lu %" PRIu64 " %" PRId64 "\n",
               ftype(st.st_mode), (unsigned)(st.st_mode & 07777),
               (unsigned)st.st_uid, (unsigned)st.st_gid, (int64_t)st.st_size,
               (unsigned long)st.st_nlink, (uint64_t)st.st_ino,
               (int64_t)st.st_mtim.tv_sec);
    }
    else if (!strcmp(args[0], "readlink") && n == 2) {
      char *t;
      if ((r = guest_readlink(g, args[1], &t)) < 0)
        fail(r);
      else {
        printf("ok %s\n", t);
        free(t);
      }
    }
    else if (!strcmp(args[0], "cat") && n == 3) {
      FILE *f = fopen(args[2], "w");
      static char buf[128 * 1024];
      uint64_t off = 0;
      size_t got;
      while (f && (r = guest_pread(g, args[1], buf, sizeof buf, off, &got)) == 0
             && got > 0) {
        fwrite(buf, 1, got, f);
        off += got;
      }
      if (f)
        fclose(f);
      if (r < 0)
        fail(r);
      else
        printf("ok %" PRIu64 "\n", off);
    }
    else if (!strcmp(args[0], "index") && n == 4) {
      uint64_t nf = 0;
      if ((r = guest_index_build(g, args[1], args[2], args[3], &nf)) < 0)
        fail(r);
      else
        printf("ok %" PRIu64 "\n", nf);
    }
    else if (!strcmp(args[0], "useindex") && n == 2) {
      if ((r = guest_use_index(g, args[1])) < 0)
        fail(r);
      else
        printf("ok\n");
    }
    else if (!strcmp(args[0], "sleep") && n == 2) {
      sleep(atoi(args[1]));
      printf("ok\n");
    }
    else
      printf("error bad command %s\n", args[0]);
    fprintf(stderr, "%s %s: %.1f ms\n", args[0], n > 1 ? args[1] : "",
            now_ms() - t0);
  }
  guest_pool_free(pool);
  return 0;
}
