/* opts.h — one command line for every command.
 *
 * A command describes itself in a `struct bfs_cmd` (synopsis, description,
 * its own options as a table) and walks its arguments with bfs_opts_next(),
 * a getopt_long() wrapper that handles what every command shares:
 *   -h/--help      its usage, built from the table, on stdout; exit 0
 *   -V/--version   "backupfs VERSION"; exit 0
 *   -v/--verbose   more log, repeatable (-vv: debug)
 *   --catalog FILE when the command sets BFS_OPTS_CATALOG (a.catalog)
 *   --json         when the command sets BFS_OPTS_JSON (a.json)
 *   --             ends the options
 * Options may follow operands (getopt's permutation; the mount.fuse3 form
 * relies on it) unless BFS_OPTS_STOP says the first operand is a
 * subcommand.  Unknown options, missing arguments and a wrong number of
 * operands print the error and the usage on stderr and end with exit 2.
 *
 *   struct bfs_args a;
 *   bfs_opts_init(&a, &cmd, argc, argv);
 *   while ((c = bfs_opts_next(&a)) > 0)
 *     switch (c) {
 *     case 'f': force = true; break;
 *     case OPT_X: x = a.optarg; break;
 *     }
 *   if (c < 0) return a.status;        // help, version or a usage error
 *   ... a.pos[0 .. a.npos - 1] are the operands
 * The walker keeps getopt's state (optind, optarg): one walk at a time.
 */
#ifndef BFS_OPTS_H
#define BFS_OPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

struct bfs_opt {
  const char *name;        /* long name without "--", or NULL */
  int key;                 /* short letter, or >= 256 for a long-only one */
  const char *arg;         /* its argument's name in the usage, or NULL */
  const char *help;        /* "\n" continues it on the next line */
};

enum {
  BFS_OPTS_CATALOG = 1u << 0,   /* --catalog FILE */
  BFS_OPTS_JSON = 1u << 1,      /* --json */
  BFS_OPTS_STOP = 1u << 2,      /* options end at the first operand */
};

struct bfs_cmd {
  const char *name;        /* "scan", "restore disk": in messages */
  const char *usage;       /* after "usage: backupfs "; lines may follow */
  const char *about;       /* the paragraph after the usage, or NULL */
  const struct bfs_opt *opts;   /* ends with { 0 }; or NULL */
  unsigned shared;         /* BFS_OPTS_* */
  const char *catalog_help;     /* what --catalog means here, or NULL */
  const char *json_help;   /* what --json prints, or NULL */
  const char *need;        /* the operands, for "need REPO [VM]" */
  int min_args, max_args;  /* how many operands (max -1: any) */
  void (*more)(FILE *f);   /* text after the options, or NULL */
};

#define BFS_OPTS_MAX 40

struct bfs_args {
  const struct bfs_cmd *cmd;
  int argc;
  char **argv;
  const char *optarg;      /* of the option bfs_opts_next() returned */
  const char *catalog;     /* --catalog, or NULL */
  bool json;               /* --json */
  int status;              /* exit status when bfs_opts_next() is < 0 */
  char **pos;              /* the operands, after bfs_opts_next() == 0 */
  int npos;
  char shortopts[2 * BFS_OPTS_MAX + 8];
  struct option longopts[BFS_OPTS_MAX + 8];
};

enum { BFS_OPT_CATALOG = 0x1001, BFS_OPT_JSON = 0x1002 };

/* Start a walk of argv[1 .. argc - 1] (argv[0] is the command's name). */
void bfs_opts_init(struct bfs_args *a, const struct bfs_cmd *cmd, int argc,
                   char **argv);
/* The next option of the command's own table (> 0), 0 when the options
 * are done and the operands counted, or -1: stop and return a->status
 * (0 after --help/--version; 2 after a usage error, already printed). */
int bfs_opts_next(struct bfs_args *a);
/* A usage error found by the command: "backupfs CMD: MESSAGE" and the
 * usage on stderr; returns 2, the exit status. */
int bfs_opts_bad(const struct bfs_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The usage of cmd, from its table. */
void bfs_opts_usage(const struct bfs_cmd *cmd, FILE *f);

#endif
