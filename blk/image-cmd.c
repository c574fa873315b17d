/* image-cmd.c — `backupfs image info|map|cat IMAGE`: debug one image and
 * its backing chain, read through the block layer (blk/).
 *
 * The chain is resolved from the path once (blk/pathchain.c: formats as
 * recorded, loops and depth refused, backing files confined to the image's
 * directory tree unless --root/--allow-outside), opened as a recipe, and
 * read through the caching filter like every other consumer.
 *
 *   info   every layer's header (path, format, version, sizes, compression,
 *          backing name and format)
 *   map    the merged extent map: offset length DATA|ZERO layer
 *   cat    the flat point in time, to stdout or -o FILE.  To a new regular
 *          file through the sparse-flatten engine (blk/flatten.h: -j
 *          reader threads, this thread the only writer, in order); ZERO
 *          extents stay holes.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "blk/flatten.h"
#include "blk/luks.h"
#include "blk/pathchain.h"
#include "common/ioutil.h"
#include "blk/image-cmd.h"

#define CAT_CHUNK (2u * 1024 * 1024)
#define CAT_MAX_THREADS 64

static int
fail(void)
{
  fprintf(stderr, "backupfs: %s\n", bfs_last_error());
  return 1;
}

/* How the chain of a path is found (the command's options). */
struct cmd_chain_opts {
  const char *root;
  bool allow_outside;
  bool sequential;             /* cat: hint the files for a sequential scan */
  const struct blk_key *key;   /* --key-file: LUKS passphrase, or NULL */
};

static void
print_layer(size_t i, const char *path, const struct bfs_blk *b)
{
  const struct bfs_blk_info *in = bfs_blk_info(b);
  const bool qcow2 = !strcmp(in->format, "qcow2");

  printf("layer %zu: %s\n", i, path);
  printf("  format: %s\n", in->format);
  if (qcow2)
    printf("  version: %d\n", in->version);
  printf("  virtual size: %" PRIu64 "\n", in->virtual_size);
  printf("  file size: %" PRIu64 "\n", in->file_size);
  if (qcow2) {
    printf("  cluster size: %u\n", 1u << in->cluster_bits);
    printf("  compression: %s\n", in->compression);
    printf("  extended l2: %s\n", in->extended_l2 ? "yes" : "no");
    if (in->encrypted && in->cipher)
      printf("  encrypted: %s %s%s\n", in->encryption, in->cipher,
             in->key_missing ? " (a key is needed: --key-file)" : "");
    else if (in->encrypted)
      printf("  encrypted: %s (not supported)\n", in->encryption);
    if (in->external_data)
      printf("  external data file: yes (not supported)\n");
  }
  printf("  backing: %s\n", in->backing_file ? in->backing_file : "none");
  if (in->backing_file)
    printf("  backing format: %s\n",
           in->backing_format ? in->backing_format : "(probed)");
}

/* Resolve path's chain and open it as a recipe with the cache on top. */
static int
open_chain(const char *path, const struct cmd_chain_opts *o,
           struct blk_path_chain *pc, struct bfs_blk **out)
{
  struct blk_recipe rc;
  int r;

  *out = NULL;
  if ((r = blk_path_chain_resolve(path, o->root, o->allow_outside, pc)) < 0)
    return r;
  if (o->sequential)
    for (size_t i = 0; i < pc->n; i++)
      posix_fadvise(pc->fds[i], 0, 0, POSIX_FADV_SEQUENTIAL);
  rc = (struct blk_recipe){ .n = pc->n, .layers = pc->layers,
                            .key = o->key };
  return blk_open_recipe(&rc, blk_path_opener, pc, out);
}

/* Bytes of the point in time that hold data (sum of DATA extents); walks
 * the whole map, so every table is checked. */
static int
allocated(struct bfs_blk *b, uint64_t *bytes)
{
  struct bfs_blk_status st;
  uint64_t sum = 0;
  int r;

  for (uint64_t off = 0; off < b->size; off += st.len) {
    if ((r = bfs_blk_block_status(b, off, b->size - off, &st)) < 0)
      return r;
    if (st.kind == BFS_BLK_DATA)
      sum += st.len;
  }
  *bytes = sum;
  return 0;
}

static int
cmd_info(const char *path, const struct cmd_chain_opts *o)
{
  struct blk_path_chain pc;
  struct bfs_blk *b, *l;
  uint64_t alloc;
  int r = open_chain(path, o, &pc, &b);

  if (r < 0) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", bfs_last_error());
    if (pc.n > 0 && blk_path_chain_inspect(&pc, 0, &l) == 0) {
      print_layer(0, path, l);      /* show what can be shown */
      bfs_blk_close(l);
    }
    blk_path_chain_free(&pc);
    fprintf(stderr, "backupfs: %s\n", msg);
    return 1;
  }
  printf("chain: %s\n  depth: %zu\n  virtual size: %" PRIu64 "\n", path,
         bfs_blk_depth(b), b->size);
  if ((r = allocated(b, &alloc)) == 0) {
    printf("  allocated: %" PRIu64 "\n", alloc);
    for (size_t i = 0; (l = bfs_blk_layer(b, i)); i++)
      print_layer(i, pc.paths[i], l);
  }
  bfs_blk_close(b);
  blk_path_chain_free(&pc);
  return r < 0 ? fail() : 0;
}

static bool
same_extent(const struct bfs_blk_status *a, const struct bfs_blk_status *b)
{
  bool ad = a->kind == BFS_BLK_DATA, bd = b->kind == BFS_BLK_DATA;
  return ad == bd && (!ad || a->layer == b->layer);
}

static int
cmd_map(const char *path, const struct cmd_chain_opts *o)
{
  struct blk_path_chain pc;
  struct bfs_blk *b;
  struct bfs_blk_status e, t;
  int r = open_chain(path, o, &pc, &b);

  for (uint64_t off = 0; r == 0 && off < b->size; off += e.len) {
    if ((r = bfs_blk_block_status(b, off, b->size - off, &e)) < 0)
      break;
    /* merge the pieces of one kind and layer into one line */
    while (off + e.len < b->size &&
           (r = bfs_blk_block_status(b, off + e.len, b->size - off - e.len,
                                     &t)) == 0 && same_extent(&e, &t))
      e.len += t.len;
    if (r < 0)
      break;
    if (e.kind == BFS_BLK_DATA)
      printf("%" PRIu64 " %" PRIu64 " DATA %d\n", off, e.len, e.layer);
    else
      printf("%" PRIu64 " %" PRIu64 " ZERO -\n", off, e.len);
  }
  bfs_blk_close(b);
  blk_path_chain_free(&pc);
  if (r < 0)
    return fail();
  if (fflush(stdout) != 0)
    return bfs_error(-errno, "stdout: %s", strerror(errno)), fail();
  return 0;
}

/* To a new regular file: the sparse-flatten engine (blk/flatten.h), the
 * one restore disk uses too. */
static int
cat_parallel(struct bfs_blk *c, int fd, const char *out, unsigned nthreads)
{
  struct blk_flatten_src src;
  struct blk_flatten_opts fo = { .threads = nthreads };

  if (ftruncate(fd, (off_t)c->size) < 0)
    return bfs_error(-errno, "%s: %s", out, strerror(errno));
  blk_flatten_src_blk(c, &src);
  return blk_flatten(&src, fd, out, &fo);
}

static int
cat_sequential(struct bfs_blk *c, int fd, const char *out)
{
  const uint64_t size = c->size;
  CLEANUP_FREE char *buf = malloc(CAT_CHUNK);
  int r;

  uint64_t alloc;

  if (!buf)
    return bfs_error(-ENOMEM, "out of memory");
  /* validate the whole map (tables, data ranges) before the first byte goes
   * out: a stream cannot be taken back */
  if ((r = allocated(c, &alloc)) < 0)
    return r;
  for (uint64_t off = 0; off < size; off += CAT_CHUNK) {
    size_t n = size - off < CAT_CHUNK ? (size_t)(size - off) : CAT_CHUNK;
    if ((r = bfs_blk_pread(c, buf, n, off)) < 0)
      return r;
    if ((r = bfs_write_all(fd, buf, n)) < 0)
      return bfs_error(r, "%s: write: %s", out, strerror(-r));
  }
  return 0;
}

static int
cmd_cat(const char *path, const char *out, unsigned nthreads,
        const struct cmd_chain_opts *o0)
{
  struct cmd_chain_opts o = *o0;
  struct blk_path_chain pc;
  struct bfs_blk *c;
  struct stat st;
  int fd = STDOUT_FILENO, r;

  o.sequential = true;
  if (open_chain(path, &o, &pc, &c) < 0) {
    blk_path_chain_free(&pc);
    return fail();
  }
  if (out) {
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      bfs_error(-errno, "%s: %s", out, strerror(errno));
      bfs_blk_close(c);
      blk_path_chain_free(&pc);
      return fail();
    }
  }
  else
    out = "stdout";
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0) {
    r = cat_parallel(c, fd, out, nthreads);
    /* stdout cannot be unlinked: empty it again rather than leave a
     * full-size file of partial data */
    if (r < 0 && fd == STDOUT_FILENO && ftruncate(fd, 0) < 0)
      bfs_log(BFS_LOG_WARN, "stdout: cannot truncate: %s", strerror(errno));
  }
  else
    r = cat_sequential(c, fd, out);
  if (r == 0 && fd != STDOUT_FILENO && close(fd) < 0)
    r = bfs_error(-errno, "%s: %s", out, strerror(errno));
  else if (fd != STDOUT_FILENO && r < 0)
    close(fd);
  bfs_blk_close(c);
  blk_path_chain_free(&pc);
  if (r < 0) {
    if (fd != STDOUT_FILENO)
      unlink(out);                  /* never leave a partial image behind */
    return fail();
  }
  return 0;
}

static void
usage(FILE *f, const char *sub)
{
  if (!sub || !strcmp(sub, "info"))
    fprintf(f, "usage: backupfs image info [CHAIN-OPTIONS] IMAGE\n"
            "  Print the backing chain of IMAGE: each layer's path, format,\n"
            "  version, virtual size, cluster size, compression and backing.\n");
  if (!sub || !strcmp(sub, "map"))
    fprintf(f, "usage: backupfs image map [CHAIN-OPTIONS] IMAGE\n"
            "  Print the merged extent map of the point in time, one line per\n"
            "  extent: OFFSET LENGTH DATA|ZERO LAYER (layer 0 is IMAGE).\n");
  if (!sub || !strcmp(sub, "cat"))
    fprintf(f, "usage: backupfs image cat [CHAIN-OPTIONS] [-o FILE] "
            "[-j THREADS] IMAGE\n"
            "  Write the flat (raw) point in time to stdout or FILE.  A new\n"
            "  regular FILE is written sparse by THREADS workers (default 8).\n");
  fprintf(f, "chain options:\n"
          "  --root DIR        backing files must lie under DIR (default: the\n"
          "                    directory above IMAGE's own directory)\n"
          "  --allow-outside   follow backing files wherever they point\n"
          "  --key-file FILE   passphrase of LUKS-encrypted qcow2 layers (one\n"
          "                    trailing newline ignored)\n");
}

int
image_cmd(int argc, char **argv)
{
  enum { OPT_ROOT = 256, OPT_ALLOW_OUTSIDE, OPT_KEY_FILE };
  static const struct option longopts[] = {
    { "help", no_argument, NULL, 'h' },
    { "output", required_argument, NULL, 'o' },
    { "threads", required_argument, NULL, 'j' },
    { "root", required_argument, NULL, OPT_ROOT },
    { "allow-outside", no_argument, NULL, OPT_ALLOW_OUTSIDE },
    { "key-file", required_argument, NULL, OPT_KEY_FILE },
    { NULL, 0, NULL, 0 },
  };
  struct cmd_chain_opts co = { 0 };
  const char *sub, *out = NULL, *key_file = NULL;
  unsigned nthreads = 8;
  int opt;

  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout, NULL);
    return argc < 2 ? 2 : 0;
  }
  sub = argv[1];
  if (strcmp(sub, "info") && strcmp(sub, "map") && strcmp(sub, "cat")) {
    fprintf(stderr, "backupfs image: unknown subcommand '%s'\n", sub);
    usage(stderr, NULL);
    return 2;
  }
  optind = 1;
  while ((opt = getopt_long(argc - 1, argv + 1, "ho:j:", longopts, NULL))
         != -1) {
    switch (opt) {
    case 'h':
      usage(stdout, sub);
      return 0;
    case 'o':
      out = optarg;
      break;
    case 'j': {
      char *end;
      unsigned long v = strtoul(optarg, &end, 10);
      if (*end || v < 1 || v > CAT_MAX_THREADS) {
        fprintf(stderr, "backupfs image: -j wants 1..%d\n", CAT_MAX_THREADS);
        return 2;
      }
      nthreads = (unsigned)v;
      break;
    }
    case OPT_ROOT:
      co.root = optarg;
      break;
    case OPT_ALLOW_OUTSIDE:
      co.allow_outside = true;
      break;
    case OPT_KEY_FILE:
      key_file = optarg;
      break;
    default:
      usage(stderr, sub);
      return 2;
    }
  }
  if (optind + 1 != argc - 1 || ((out || nthreads != 8) && strcmp(sub, "cat"))
      || (co.root && co.allow_outside)) {
    usage(stderr, sub);
    return 2;
  }
  const char *path = argv[optind + 1];
  struct blk_key *key = NULL;
  int ret;
  if (key_file && blk_key_from_file(key_file, &key) < 0)
    return fail();
  co.key = key;
  if (!strcmp(sub, "info"))
    ret = cmd_info(path, &co);
  else if (!strcmp(sub, "map"))
    ret = cmd_map(path, &co);
  else
    ret = cmd_cat(path, out, nthreads, &co);
  blk_key_free(key);                /* wiped */
  return ret;
}
