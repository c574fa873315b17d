/* opts.c — the shared command-line walker (see opts.h).
 *
 * The getopt tables (short option string, struct option array) are built
 * in struct bfs_args from the command's table plus the shared options, so
 * a command never spells out -h/-V/-v/--catalog/--json; the usage text is
 * printed from the same tables, so the two cannot drift apart.
 */
#include "common/opts.h"

#include <stdarg.h>
#include <string.h>

#include "common/log.h"

#ifndef BFS_VERSION
#define BFS_VERSION "unknown"
#endif

#define HELP_COLUMN 28

static const struct bfs_opt shared_catalog = {
  "catalog", BFS_OPT_CATALOG, "FILE",
  "SQLite catalog to use (default: one per repository\n"
  "in $XDG_CACHE_HOME/backupfs/, /var/cache/backupfs/\nfor root)" };
static const struct bfs_opt shared_json = {
  "json", BFS_OPT_JSON, NULL, "print the result as JSON" };
static const struct bfs_opt shared_tail[] = {
  { "verbose", 'v', NULL, "more log (info); -vv: debug" },
  { "version", 'V', NULL, "print the version" },
  { "help", 'h', NULL, "this help" },
  { 0 },
};

static bool
is_short(int key)
{
  return key > 0 && key < 128;
}

static void
add(struct bfs_args *a, size_t *nl, size_t *ns, const struct bfs_opt *o)
{
  if (*nl >= BFS_OPTS_MAX + 7)
    return;                          /* BFS_OPTS_MAX is far above any table */
  if (o->name)
    a->longopts[(*nl)++] = (struct option) {
      o->name, o->arg ? required_argument : no_argument, NULL, o->key };
  if (is_short(o->key)) {
    a->shortopts[(*ns)++] = (char)o->key;
    if (o->arg)
      a->shortopts[(*ns)++] = ':';
  }
}

void
bfs_opts_init(struct bfs_args *a, const struct bfs_cmd *cmd, int argc,
              char **argv)
{
  size_t nl = 0, ns = 0;

  memset(a, 0, sizeof *a);
  a->cmd = cmd;
  a->argc = argc;
  a->argv = argv;
  if (cmd->shared & BFS_OPTS_STOP)
    a->shortopts[ns++] = '+';
  a->shortopts[ns++] = ':';          /* tell a missing argument apart */
  for (const struct bfs_opt *o = cmd->opts; o && o->key; o++)
    add(a, &nl, &ns, o);
  if (cmd->shared & BFS_OPTS_CATALOG)
    add(a, &nl, &ns, &shared_catalog);
  if (cmd->shared & BFS_OPTS_JSON)
    add(a, &nl, &ns, &shared_json);
  for (const struct bfs_opt *o = shared_tail; o->key; o++)
    add(a, &nl, &ns, o);
  a->shortopts[ns] = '\0';
  a->longopts[nl] = (struct option) { 0 };
  optind = 0;                        /* full reinitialisation of getopt */
  opterr = 0;
}

static void
print_opt(FILE *f, const struct bfs_opt *o, const char *help)
{
  int n;
  if (is_short(o->key) && o->name)
    n = fprintf(f, "  -%c, --%s%s%s", o->key, o->name, o->arg ? " " : "",
                o->arg ? o->arg : "");
  else if (o->name)
    n = fprintf(f, "  --%s%s%s", o->name, o->arg ? " " : "",
                o->arg ? o->arg : "");
  else
    n = fprintf(f, "  -%c%s%s", o->key, o->arg ? " " : "",
                o->arg ? o->arg : "");
  if (n > HELP_COLUMN - 2) {
    fputc('\n', f);
    n = 0;
  }
  fprintf(f, "%*s", HELP_COLUMN - n, "");
  for (const char *p = help; *p; p++) {
    fputc(*p, f);
    if (*p == '\n')
      fprintf(f, "%*s", HELP_COLUMN, "");
  }
  fputc('\n', f);
}

void
bfs_opts_usage(const struct bfs_cmd *cmd, FILE *f)
{
  fprintf(f, "usage: backupfs %s\n", cmd->usage);
  if (cmd->about)
    fprintf(f, "\n%s\n", cmd->about);
  fputc('\n', f);
  for (const struct bfs_opt *o = cmd->opts; o && o->key; o++)
    print_opt(f, o, o->help);
  if (cmd->shared & BFS_OPTS_CATALOG)
    print_opt(f, &shared_catalog, cmd->catalog_help ? cmd->catalog_help
                                                    : shared_catalog.help);
  if (cmd->shared & BFS_OPTS_JSON)
    print_opt(f, &shared_json, cmd->json_help ? cmd->json_help
                                              : shared_json.help);
  for (const struct bfs_opt *o = shared_tail; o->key; o++)
    print_opt(f, o, o->help);
  fprintf(f, "  --%*s%s\n", HELP_COLUMN - 4, "", "end of the options");
  if (cmd->more) {
    fputc('\n', f);
    cmd->more(f);
  }
}

int
bfs_opts_bad(const struct bfs_args *a, const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "backupfs %s: ", a->cmd->name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  bfs_opts_usage(a->cmd, stderr);
  return 2;
}

/* the option argv[optind - 1] that getopt refused, for the message */
static const char *
refused(const struct bfs_args *a, char *buf, size_t len)
{
  const char *w = optind > 0 && optind <= a->argc ? a->argv[optind - 1] : "";
  if (optopt && is_short(optopt) && !(w[0] == '-' && w[1] == '-')) {
    snprintf(buf, len, "-%c", optopt);
    return buf;
  }
  return w;
}

static int
stop(struct bfs_args *a, int status)
{
  a->status = status;
  return -1;
}

int
bfs_opts_next(struct bfs_args *a)
{
  const struct bfs_cmd *cmd = a->cmd;
  char buf[8];
  int c;

  while ((c = getopt_long(a->argc, a->argv, a->shortopts, a->longopts,
                          NULL)) != -1) {
    switch (c) {
    case 'h':
      bfs_opts_usage(cmd, stdout);
      return stop(a, 0);
    case 'V':
      printf("backupfs %s\n", BFS_VERSION);
      return stop(a, 0);
    case 'v':
      if (bfs_log_level < BFS_LOG_DEBUG)
        bfs_log_level++;
      continue;
    case BFS_OPT_CATALOG:
      a->catalog = optarg;
      continue;
    case BFS_OPT_JSON:
      a->json = true;
      continue;
    case ':':
      return stop(a, bfs_opts_bad(a, "%s needs an argument",
                                  refused(a, buf, sizeof buf)));
    case '?':
      return stop(a, bfs_opts_bad(a, "unknown option '%s'",
                                  refused(a, buf, sizeof buf)));
    default:
      a->optarg = optarg;
      return c;
    }
  }
  a->pos = a->argv + optind;
  a->npos = a->argc - optind;
  if (a->npos < cmd->min_args ||
      (cmd->max_args >= 0 && a->npos > cmd->max_args)) {
    if (a->npos < cmd->min_args)
      return stop(a, bfs_opts_bad(a, "need %s", cmd->need ? cmd->need
                                                          : "more arguments"));
    return stop(a, bfs_opts_bad(a, "too many arguments ('%s'); want %s",
                                a->pos[cmd->max_args],
                                cmd->need ? cmd->need : "fewer"));
  }
  if (*cmd->name)
    bfs_log(BFS_LOG_DEBUG, "%s: %d operand(s)%s%s%s", cmd->name, a->npos,
            a->catalog ? ", catalog " : "", a->catalog ? a->catalog : "",
            a->json ? ", JSON output" : "");
  return 0;
}
