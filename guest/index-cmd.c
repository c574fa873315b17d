/* index-cmd.c — `backupfs index REPO [VM[@TIME]]`.
 *
 * The appliance must read the mount's own disks/<disk>.img (chain resolution
 * has one implementation), so without --mountpoint this command mounts the
 * repository itself: it runs `/proc/self/exe mount -f REPO TMPDIR` as a
 * child, waits for the tree, walks each selected point in time with one
 * appliance at a time (guest_index_build), then closes the appliances before
 * unmounting with `fusermount3 -u` and reaping the child.  On a terminal a
 * line says which point in time of how many is indexed and what its
 * appliance waits for (common/waitline.h over guest_pool_status).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/cleanup.h"
#include "catalog/catalog.h"
#include "common/error.h"
#include "common/waitline.h"
#include "common/json-str.h"
#include "common/opts.h"
#include "fs/fs.h"
#include "guest/guest.h"
#include "guest/index.h"

#define MOUNT_WAIT_SECONDS 600

static int
cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir (no dot files); with suffix, only names ending so. */
static char **
list_names(const char *dir, const char *suffix, size_t *n)
{
  DIR *d = opendir(dir);
  *n = 0;
  if (!d)
    return NULL;
  char **v = NULL;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name), sl = suffix ? strlen(suffix) : 0;
    if (e->d_name[0] == '.' || (suffix && (l <= sl ||
                                           strcmp(e->d_name + l - sl, suffix))))
      continue;
    char **nv = realloc(v, (*n + 2) * sizeof *nv);
    if (!nv)
      break;
    v = nv;
    v[(*n)++] = strdup(e->d_name);
    v[*n] = NULL;
  }
  closedir(d);
  if (v)
    qsort(v, *n, sizeof *v, cmp_str);
  return v;
}

static void
free_names(char **v, size_t n)
{
  for (size_t i = 0; v && i < n; i++)
    free(v[i]);
  free(v);
}

static pid_t
start_mount(const char *repo, const char *catalog, const char *key_file,
            const char *mnt)
{
  pid_t pid = fork();
  if (pid == 0) {
    const char *args[10];
    char *copt = NULL, *kopt = NULL;
    int i = 0;
    args[i++] = "backupfs";
    args[i++] = "mount";
    args[i++] = "-f";
    if (catalog && asprintf(&copt, "catalog=%s", catalog) > 0) {
      args[i++] = "-o";
      args[i++] = copt;
    }
    /* the key file's name (never the key) to the mount that reads it */
    if (key_file && asprintf(&kopt, "keyfile=%s", key_file) > 0) {
      args[i++] = "-o";
      args[i++] = kopt;
    }
    args[i++] = repo;
    args[i++] = mnt;
    args[i] = NULL;
    execv("/proc/self/exe", (char *const *)args);
    _exit(127);
  }
  if (pid < 0)
    return -1;

  struct stat parent, here;
  CLEANUP_FREE char *up = NULL;
  if (asprintf(&up, "%s/..", mnt) < 0 || stat(up, &parent) < 0)
    return -1;
  for (int i = 0; i < MOUNT_WAIT_SECONDS * 10; i++) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      bfs_error(-EIO, "%s: mount exited with status %d", repo,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
      return -1;
    }
    if (stat(mnt, &here) == 0 && here.st_dev != parent.st_dev)
      return pid;
    usleep(100 * 1000);
  }
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  bfs_error(-ETIMEDOUT, "%s: mount did not appear", repo);
  return -1;
}

static void
stop_mount(pid_t pid, const char *mnt)
{
  pid_t um = fork();
  if (um == 0) {
    execlp("fusermount3", "fusermount3", "-u", mnt, (char *)NULL);
    _exit(127);
  }
  int status = 0;
  if (um > 0)
    waitpid(um, &status, 0);
  if (um < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
}

/* ---- on a terminal: "[i/M] vm/time: starting the appliance ..." ---- */

struct feedback {
  guest_pool_t *pool;
  atomic_uint cur, total;
  char *_Atomic key;             /* "vm/time" being indexed */
};

static char *
feedback_poll(void *arg)
{
  struct feedback *f = arg;
  struct json_object *as = guest_pool_status(f->pool);
  char *what = bfs_waitline_appliance_text(as, NULL), *text = NULL;
  json_object_put(as);
  if ((what ? asprintf(&text, "[%u/%u] %s", atomic_load(&f->cur),
                      atomic_load(&f->total), what) :
       asprintf(&text, "[%u/%u] %s: walking the guest filesystems",
                atomic_load(&f->cur), atomic_load(&f->total),
                atomic_load(&f->key))) < 0)
    text = NULL;
  free(what);
  return text;
}

/* Index one point in time.  0 ok, -errno failed (reported). */
static int
index_one(guest_pool_t *pool, const char *db, const char *mnt,
          const char *vm, const char *time_name, json_object *jpoints,
          struct bfs_waitline *wl)
{
  CLEANUP_FREE char *disks_dir = NULL, *key = NULL;
  if (asprintf(&disks_dir, "%s/%s/%s/disks", mnt, vm, time_name) < 0 ||
      asprintf(&key, "%s/%s", vm, time_name) < 0)
    return -ENOMEM;
  size_t n;
  char **names = list_names(disks_dir, ".img", &n);
  if (!names || n == 0) {
    fprintf(stderr, "backupfs: index: %s@%s: no disks in %s\n", vm, time_name,
            disks_dir);
    free_names(names, n);
    return -ENOENT;
  }
  char **paths = calloc(n, sizeof *paths);
  if (!paths) {
    free_names(names, n);
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++)
    if (asprintf(&paths[i], "%s/%s", disks_dir, names[i]) < 0)
      paths[i] = NULL;
  free_names(names, n);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  guest_t *g = guest_get(pool, key, (const char *const *)paths, n);
  uint64_t nfiles = 0;
  int r = g ? guest_index_build(g, db, vm, time_name, &nfiles) : -ENOMEM;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  for (size_t i = 0; i < n; i++)
    free(paths[i]);
  free(paths);
  bfs_waitline_clear(wl);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  if (r < 0)
    fprintf(stderr, "backupfs: index: %s@%s: %s\n", vm, time_name,
            bfs_last_error());
  else if (!jpoints)
    printf("%s@%s: %" PRIu64 " entries indexed in %.1f s\n", vm, time_name,
           nfiles, secs);
  if (jpoints) {                   /* --json: one object per point in time */
    json_object *o = json_object_new_object();
    json_object_object_add(o, "vm", bfs_json_string(vm));
    json_object_object_add(o, "time", bfs_json_string(time_name));
    if (r < 0)
      json_object_object_add(o, "error", bfs_json_string(bfs_last_error()));
    else {
      json_object_object_add(o, "entries", json_object_new_uint64(nfiles));
      json_object_object_add(o, "seconds", json_object_new_double(secs));
    }
    json_object_array_add(jpoints, o);
  }
  return r;
}

enum { OPT_MNT = 256, OPT_KEY_FILE };

static const struct bfs_opt index_opts[] = {
  INDEX_OPT_ROW,
  { "mountpoint", OPT_MNT, "MNT", "use REPO already mounted on MNT instead of\n"
    "mounting it on a temporary directory" },
  { "key-file", OPT_KEY_FILE, "FILE", "passphrase of LUKS-encrypted images, for the\n"
    "mount (-o keyfile=FILE; with --mountpoint, the\nmount's own)" },
  { 0 },
};

static const struct bfs_cmd index_cmd = {
  .name = "index",
  .usage = "index [--catalog FILE] [--index FILE] [--mountpoint MNT]\n"
    "                      [--key-file FILE] REPO [VM[@TIME]]",
  .about = "Walk the guest filesystems of every point in time of REPO (or of one VM,\n"
    "or one VM@TIME; TIME may be `latest`) once, and store their file listing\n"
    "(zstd-compressed) next to the catalog, so that files/ lists without\n"
    "starting an appliance and `backupfs find` can search it.  Re-indexing a\n"
    "point in time replaces its listing.",
  .opts = index_opts, .shared = BFS_OPTS_CATALOG | BFS_OPTS_JSON,
  .json_help = "{index, points: [{vm, time, entries, seconds |\n"
    "error}], dropped}",
  .catalog_help = INDEX_CATALOG_HELP,
  .need = "REPO [VM[@TIME]]", .min_args = 1, .max_args = 2,
};

int
fs_index_cmd(int argc, char **argv)
{
  const char *index = NULL, *mnt = NULL, *key_file = NULL;
  struct bfs_args g;
  int c;
  bfs_opts_init(&g, &index_cmd, argc, argv);
  while ((c = bfs_opts_next(&g)) > 0)
    switch (c) {
    case INDEX_OPT_INDEX: index = g.optarg; break;
    case OPT_MNT: mnt = g.optarg; break;
    case OPT_KEY_FILE: key_file = g.optarg; break;
    }
  if (c < 0)
    return g.status;
  const char *catalog = g.catalog;
  const char *repo = g.pos[0];
  CLEANUP_FREE char *vm = NULL, *want_time = NULL;
  if (g.npos == 2) {
    if (catalog_parse_vmtime(g.pos[1], &vm, &want_time) < 0) {
      fprintf(stderr, "backupfs: index: %s\n", bfs_last_error());
      return 2;
    }
    if (!strchr(g.pos[1], '@')) {   /* VM alone: every point in time */
      free(want_time);
      want_time = NULL;
    }
  }

  CLEANUP_FREE char *db = index_db_open_path("index", index, repo, catalog);
  if (!db)
    return 2;

  char tmp[] = "/tmp/backupfs-index.XXXXXX";
  pid_t child = 0;
  if (!mnt) {
    if (!mkdtemp(tmp)) {
      fprintf(stderr, "backupfs: index: %s: %m\n", tmp);
      return 2;
    }
    mnt = tmp;
    if (key_file && strchr(key_file, ',')) {
      fprintf(stderr, "backupfs: index: --key-file %s: a comma cannot go "
              "into the mount's -o\n", key_file);
      rmdir(tmp);
      return 2;
    }
    if ((child = start_mount(repo, catalog, key_file, mnt)) < 0) {
      fprintf(stderr, "backupfs: index: %s\n", bfs_last_error());
      rmdir(tmp);
      return 2;
    }
  }

  json_object *jpoints = g.json ? json_object_new_array() : NULL;
  int failures = 0, done = 0;
  char **seen = NULL;            /* every vm/time in the tree */
  size_t nseen = 0;
  char **todo = NULL;            /* the vm/time to index */
  size_t ntodo = 0;
  guest_pool_t *pool = guest_pool_new(1, 60);
  size_t nvms;
  char **vms = list_names(mnt, NULL, &nvms);
  for (size_t i = 0; i < nvms; i++) {
    if (vm && strcmp(vms[i], vm))
      continue;
    CLEANUP_FREE char *vdir = NULL;
    if (asprintf(&vdir, "%s/%s", mnt, vms[i]) < 0)
      break;
    CLEANUP_FREE char *latest = NULL;
    if (want_time && !strcmp(want_time, "latest")) {
      CLEANUP_FREE char *lp = NULL;
      char buf[256];
      ssize_t l;
      if (asprintf(&lp, "%s/latest", vdir) >= 0 &&
          (l = readlink(lp, buf, sizeof buf - 1)) > 0) {
        buf[l] = '\0';
        latest = strdup(buf);
      }
    }
    size_t nt;
    char **times = list_names(vdir, NULL, &nt);
    for (size_t j = 0; j < nt; j++) {
      struct stat st;
      CLEANUP_FREE char *tp = NULL;
      if (asprintf(&tp, "%s/%s", vdir, times[j]) < 0 ||
          lstat(tp, &st) < 0 || !S_ISDIR(st.st_mode))
        continue;
      char **ns = realloc(seen, (nseen + 1) * sizeof *ns);
      if (ns && asprintf(&ns[nseen], "%s/%s", vms[i], times[j]) >= 0)
        nseen++;
      if (ns)
        seen = ns;
      if (want_time && strcmp(times[j], latest ? latest : want_time))
        continue;
      char **nt2 = realloc(todo, (ntodo + 1) * sizeof *nt2);
      if (nt2 && asprintf(&nt2[ntodo], "%s/%s", vms[i], times[j]) >= 0)
        ntodo++;
      if (nt2)
        todo = nt2;
    }
    free_names(times, nt);
  }
  free_names(vms, nvms);
  /* then index them, saying which on a terminal */
  struct feedback fb = { .pool = pool, .key = "" };
  atomic_store(&fb.total, (unsigned)ntodo);
  struct bfs_waitline *wl = pool ? bfs_waitline_start(feedback_poll, &fb)
                                 : NULL;
  for (size_t k = 0; k < ntodo; k++) {
    size_t l = strcspn(todo[k], "/");
    CLEANUP_FREE char *v = strndup(todo[k], l);
    atomic_store(&fb.key, todo[k]);
    atomic_store(&fb.cur, (unsigned)k + 1);
    done++;
    if (!v || index_one(pool, db, mnt, v, todo[k] + l + 1, jpoints, wl) < 0)
      failures++;
  }
  bfs_waitline_stop(wl);
  free_names(todo, ntodo);
  guest_pool_free(pool);   /* appliances close before the unmount */

  /* listings of points in time that are gone (a full run, or a whole VM) */
  unsigned dropped = 0;
  if (!want_time && nseen &&
      index_prune(db, vm, seen, nseen, &dropped) == 0 && dropped && !jpoints)
    printf("index: dropped %u point(s) in time no longer in %s\n", dropped,
           repo);
  free_names(seen, nseen);

  if (child > 0) {
    stop_mount(child, mnt);
    rmdir(mnt);
  }
  if (!done) {
    fprintf(stderr, "backupfs: index: %s: no point in time matches %s%s%s\n",
            repo, vm ? vm : "", want_time ? "@" : "", want_time ? want_time : "");
    json_object_put(jpoints);
    return 2;
  }
  if (jpoints) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "index", bfs_json_string(db));
    json_object_object_add(o, "points", jpoints);
    json_object_object_add(o, "dropped", json_object_new_int64(dropped));
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                        JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
  }
  else if (!failures)
    printf("index: %s\n", db);
  return failures ? 1 : 0;
}
