/* serve-cmd.c — `backupfs serve`: point-in-time disks over NBD via nbdkit.
 *
 * This command only builds nbdkit's command line and runs it with our
 * plugin (serve/plugin.c, nbdkit-backupfs-plugin.so): a unix socket by
 * default, TCP for another hypervisor (TLS required there unless --no-tls:
 * PSK or X.509 certificates, nbdkit's own --tls), read-only unless --cow
 * (a scratch overlay per client; the backup is never written).
 *
 * -f: nbdkit runs in the foreground (exec, same PID: what a systemd unit
 * or restore's state dir records).  Else nbdkit daemonises itself once its
 * socket listens; we wait for that, then print the URI clients use, so a
 * URI is only printed for a server that is up.
 *
 * The plugin is looked for in $BACKUPFS_NBDKIT_PLUGIN, next to the binary
 * (the build tree: <dir>/serve/), then where meson installed it.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/opts.h"
#include "serve/serve.h"

#define PLUGIN_NAME "nbdkit-backupfs-plugin.so"
#ifndef BFS_PLUGINDIR
#define BFS_PLUGINDIR "/usr/local/lib/backupfs"
#endif
#define MAX_ARGS 64

enum { OPT_SOCKET = 256, OPT_TCP, OPT_PSK, OPT_CERTS, OPT_NO_TLS, OPT_RO,
       OPT_COW, OPT_SCRATCH, OPT_EXPORT, OPT_PIDFILE };

static const struct bfs_opt serve_opts[] = {
  { "socket", OPT_SOCKET, "PATH", "unix socket (default $XDG_RUNTIME_DIR or /tmp:\n"
    "backupfs-nbd.PID.sock)" },
  { "tcp", OPT_TCP, "[ADDR:]PORT", "listen on TCP instead (needs --tls-psk or\n"
    "--tls-certificates, or --no-tls)" },
  { "tls-psk", OPT_PSK, "FILE", "TLS with pre-shared keys (nbdkit --tls-psk)" },
  { "tls-certificates", OPT_CERTS, "DIR", "TLS with X.509 certificates" },
  { "no-tls", OPT_NO_TLS, NULL, "plain TCP (trusted networks only)" },
  { "readonly", OPT_RO, NULL, "clients cannot write (the default)" },
  { "cow", OPT_COW, NULL, "each client writes to its own scratch overlay,\n"
    "dropped when it disconnects" },
  { "scratch", OPT_SCRATCH, "DIR", "where --cow overlays live (default /tmp)" },
  { "export", OPT_EXPORT, "VM@TIME/DISK", "serve only this export (repeatable)" },
  { "pidfile", OPT_PIDFILE, "FILE", "nbdkit writes its PID here" },
  { "foreground", 'f', NULL, "stay in the foreground" },
  { 0 },
};

static const struct bfs_cmd serve_cmd_desc = {
  .name = "serve",
  .usage = "serve [OPTIONS] REPO",
  .about = "Export point-in-time disks as NBD exports named VM@TIME/DISK (TIME a\n"
    "backup name or latest) through nbdkit.  Prints the URI to connect to.",
  .opts = serve_opts, .shared = BFS_OPTS_CATALOG,
  .catalog_help = "the catalog (default: the repository's)",
  .need = "REPO", .min_args = 1, .max_args = 1,
};

char *
serve_plugin_path(void)
{
  const char *env = getenv("BACKUPFS_NBDKIT_PLUGIN");
  char exe[PATH_MAX], *p;
  ssize_t n;

  if (env && *env)
    return strdup(env);
  n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = 0;
      const char *sub[] = { "", "serve/" };
      for (size_t i = 0; i < 2; i++) {
        if (asprintf(&p, "%s/%s" PLUGIN_NAME, exe, sub[i]) < 0)
          break;
        if (access(p, R_OK) == 0)
          return p;
        free(p);
      }
    }
  }
  if (access(BFS_PLUGINDIR "/" PLUGIN_NAME, R_OK) == 0)
    return strdup(BFS_PLUGINDIR "/" PLUGIN_NAME);
  bfs_error(-ENOENT, "serve: the nbdkit plugin %s is not installed (looked "
            "next to the binary and in %s; built only when nbdkit-plugin-dev "
            "is found)", PLUGIN_NAME, BFS_PLUGINDIR);
  return NULL;
}

struct serve_args {
  const char *socket, *tcp, *psk, *certs, *scratch, *catalog, *pidfile;
  const char *exports[MAX_ARGS / 4];
  int nexports;
  bool no_tls, cow, fg;
};

/* 0, or 1: stop with exit status *status (help, version, usage error) */
static int
parse(int argc, char **argv, struct serve_args *a, const char **repo,
      int *status)
{
  struct bfs_args g;
  int c;

  bfs_opts_init(&g, &serve_cmd_desc, argc, argv);
  while ((c = bfs_opts_next(&g)) > 0) {
    switch (c) {
    case OPT_SOCKET: a->socket = g.optarg; break;
    case OPT_TCP: a->tcp = g.optarg; break;
    case OPT_PSK: a->psk = g.optarg; break;
    case OPT_CERTS: a->certs = g.optarg; break;
    case OPT_NO_TLS: a->no_tls = true; break;
    case OPT_RO: a->cow = false; break;
    case OPT_COW: a->cow = true; break;
    case OPT_SCRATCH: a->scratch = g.optarg; break;
    case OPT_PIDFILE: a->pidfile = g.optarg; break;
    case 'f': a->fg = true; break;
    case OPT_EXPORT:
      if (a->nexports >= (int)(sizeof a->exports / sizeof a->exports[0])) {
        *status = bfs_opts_bad(&g, "too many --export");
        return 1;
      }
      a->exports[a->nexports++] = g.optarg;
      break;
    }
  }
  if (c < 0) {
    *status = g.status;
    return 1;
  }
  a->catalog = g.catalog;
  *repo = g.pos[0];
  if (a->socket && a->tcp)
    return bfs_error(-EINVAL, "serve: --socket and --tcp exclude each other");
  if (a->psk && a->certs)
    return bfs_error(-EINVAL, "serve: one of --tls-psk, --tls-certificates");
  if ((a->psk || a->certs) && a->no_tls)
    return bfs_error(-EINVAL, "serve: --no-tls with a TLS option");
  if (a->tcp && !a->psk && !a->certs && !a->no_tls)
    return bfs_error(-EINVAL, "serve: --tcp serves backups to the network: "
                     "give --tls-psk FILE or --tls-certificates DIR (or "
                     "--no-tls on a trusted network)");
  if (a->scratch && !a->cow)
    return bfs_error(-EINVAL, "serve: --scratch without --cow");
  return 0;
}

/* "[ADDR:]PORT" -> addr (malloc'd or NULL) and port */
static int
split_tcp(const char *s, char **addr, const char **port)
{
  const char *colon = strrchr(s, ':');

  *addr = NULL;
  *port = colon ? colon + 1 : s;
  if (!**port || strspn(*port, "0123456789") != strlen(*port))
    return bfs_error(-EINVAL, "serve: --tcp %s: not [ADDR:]PORT", s);
  if (colon && colon > s) {
    const char *b = s, *e = colon;
    if (*b == '[' && e[-1] == ']') {        /* [::1]:10809 */
      b++;
      e--;
    }
    if (!(*addr = strndup(b, (size_t)(e - b))))
      return bfs_error(-ENOMEM, "out of memory");
  }
  return 0;
}

/* The first user of a PSK file (USER:HEXKEY lines; malloc'd), or NULL:
 * libnbd would otherwise try the login name.  The key is not kept. */
static char *
psk_user(const char *file)
{
  CLEANUP_FCLOSE FILE *f = fopen(file, "re");
  char line[512], *colon;

  if (!f || !fgets(line, sizeof line, f) || !(colon = strchr(line, ':')) ||
      colon == line)
    return NULL;
  *colon = 0;
  for (char *p = line; *p; p++)         /* URI-safe user names only */
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                "0123456789._-", *p))
      return NULL;
  return strdup(line);
}

/* the URI a client uses (malloc'd) */
static char *
make_uri(const struct serve_args *a, const char *sock, const char *addr,
         const char *port)
{
  const char *exp = a->nexports == 1 ? a->exports[0] : "";
  CLEANUP_FREE char *user = a->psk ? psk_user(a->psk) : NULL;
  char *u = NULL;
  int r;

  if (!a->tcp)
    r = asprintf(&u, "nbd+unix:///%s?socket=%s", exp, sock);
  else
    r = asprintf(&u, "%s://%s%s%s%s%s:%s/%s%s%s", a->no_tls ? "nbd" : "nbds",
                 user ? user : "", user ? "@" : "",
                 addr && strchr(addr, ':') ? "[" : "",
                 addr ? addr : "localhost",
                 addr && strchr(addr, ':') ? "]" : "", port, exp,
                 a->psk ? "?tls-psk-file=" : "", a->psk ? a->psk : "");
  return r < 0 ? NULL : u;
}

int
serve_cmd(int argc, char **argv)
{
  struct serve_args a = { 0 };
  const char *repo = NULL, *port = NULL;
  CLEANUP_FREE char *plugin = NULL, *sock = NULL, *addr = NULL, *uri = NULL;
  char *kv[MAX_ARGS] = { 0 };
  const char *av[MAX_ARGS];
  int n = 0, nkv = 0, r, status = 2;

  if ((r = parse(argc, argv, &a, &repo, &status)) == 1)
    return status;
  if (r < 0)
    goto out;
  if (!(plugin = serve_plugin_path())) {
    r = -ENOENT;
    goto out;
  }
  if (a.tcp && (r = split_tcp(a.tcp, &addr, &port)) < 0)
    goto out;
  if (!a.tcp) {
    const char *rt = getenv("XDG_RUNTIME_DIR");
    if (a.socket)
      sock = strdup(a.socket);
    else if (asprintf(&sock, "%s/backupfs-nbd.%d.sock",
                      rt && *rt ? rt : "/tmp", (int)getpid()) < 0)
      sock = NULL;
  }
  if ((!a.tcp && !sock) || !(uri = make_uri(&a, sock, addr, port))) {
    r = bfs_error(-ENOMEM, "out of memory");
    goto out;
  }

  av[n++] = "nbdkit";
  if (a.fg)
    av[n++] = "-f";
  if (!a.cow)
    av[n++] = "-r";
  if (a.tcp) {
    if (addr) {
      av[n++] = "-i";
      av[n++] = addr;
    }
    av[n++] = "-p";
    av[n++] = port;
  } else {
    av[n++] = "-U";
    av[n++] = sock;
  }
  if (a.psk || a.certs) {
    av[n++] = "--tls=require";
    av[n++] = a.psk ? "--tls-psk" : "--tls-certificates";
    av[n++] = a.psk ? a.psk : a.certs;
  }
  if (a.pidfile) {
    av[n++] = "-P";
    av[n++] = a.pidfile;
  }
  if (bfs_log_level >= BFS_LOG_DEBUG)              /* -vv: nbdkit's debug too */
    av[n++] = "-v";
  av[n++] = plugin;
#define KV(...) do {                                                    \
    if (asprintf(&kv[nkv], __VA_ARGS__) < 0) {                          \
      r = bfs_error(-ENOMEM, "out of memory");                          \
      goto out;                                                         \
    }                                                                   \
    av[n++] = kv[nkv++];                                                \
  } while (0)
  KV("repo=%s", repo);
  if (a.catalog)
    KV("catalog=%s", a.catalog);
  for (int i = 0; i < a.nexports; i++)
    KV("export=%s", a.exports[i]);
  if (a.cow) {
    KV("cow=true");
    if (a.scratch)
      KV("scratch=%s", a.scratch);
  }
#undef KV
  av[n] = NULL;

  /* a sanitizer build's plugin in an uninstrumented nbdkit needs the
   * runtime preloaded there, and only there (tests/lib/preload.sh) */
  const char *pre = getenv("BACKUPFS_NBDKIT_PRELOAD");
  if (pre && *pre)
    setenv("LD_PRELOAD", pre, 1);
  fflush(stdout);
  if (a.fg) {
    printf("%s\n", uri);
    fflush(stdout);
    execvp("nbdkit", (char **)av);
    r = bfs_error(-errno, "serve: cannot run nbdkit: %s", strerror(errno));
    goto out;
  }
  pid_t pid = fork();
  if (pid < 0) {
    r = bfs_error(-errno, "serve: fork: %s", strerror(errno));
    goto out;
  }
  if (pid == 0) {
    execvp("nbdkit", (char **)av);
    fprintf(stderr, "backupfs: serve: cannot run nbdkit: %s\n",
            strerror(errno));
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) {
      r = bfs_error(-errno, "serve: waitpid: %s", strerror(errno));
      goto out;
    }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    r = bfs_error(-EIO, "serve: nbdkit did not start (its messages are "
                  "above)");
    goto out;
  }
  printf("%s\n", uri);
  r = 0;
out:
  for (int i = 0; i < nkv; i++)
    free(kv[i]);
  if (r < 0)
    fprintf(stderr, "backupfs: %s\n", bfs_last_error());
  return r < 0 ? 1 : 0;
}
