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
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "blk/flatten.h"
#include "common/opts.h"
#include "blk/luks.h"
#include "blk/pathchain.h"
#include "common/ioutil.h"
#include "common/json-str.h"
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

/* print_layer() as a JSON object */
static json_object *
layer_json(size_t i, const char *path, const struct bfs_blk *b)
{
  const struct bfs_blk_info *in = bfs_blk_info(b);
  const bool qcow2 = !strcmp(in->format, "qcow2");
  json_object *o = json_object_new_object();

  json_object_object_add(o, "layer", json_object_new_int64((int64_t)i));
  json_object_object_add(o, "path", bfs_json_string(path));
  json_object_object_add(o, "format", json_object_new_string(in->format));
  if (qcow2)
    json_object_object_add(o, "version", json_object_new_int(in->version));
  json_object_object_add(o, "virtual_size",
                         json_object_new_uint64(in->virtual_size));
  json_object_object_add(o, "file_size", json_object_new_uint64(in->file_size));
  if (qcow2) {
    json_object_object_add(o, "cluster_size",
                           json_object_new_int64(1ll << in->cluster_bits));
    json_object_object_add(o, "compression",
                           json_object_new_string(in->compression));
    json_object_object_add(o, "extended_l2",
                           json_object_new_boolean(in->extended_l2));
    json_object_object_add(o, "encrypted", json_object_new_boolean(in->encrypted));
    if (in->encrypted) {
      json_object_object_add(o, "encryption",
                             json_object_new_string(in->encryption));
      if (in->cipher)
        json_object_object_add(o, "cipher", json_object_new_string(in->cipher));
      json_object_object_add(o, "supported",
                             json_object_new_boolean(in->cipher != NULL));
      json_object_object_add(o, "key_missing",
                             json_object_new_boolean(in->key_missing));
    }
    json_object_object_add(o, "external_data",
                           json_object_new_boolean(in->external_data));
  }
  json_object_object_add(o, "backing", in->backing_file ?
                         bfs_json_string(in->backing_file) : NULL);
  if (in->backing_file)
    json_object_object_add(o, "backing_format", in->backing_format ?
                           json_object_new_string(in->backing_format) : NULL);
  return o;
}

static void
print_json(json_object *o)
{
  puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                      JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put(o);
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
cmd_info(const char *path, const struct cmd_chain_opts *o, bool json)
{
  struct blk_path_chain pc;
  struct bfs_blk *b, *l;
  uint64_t alloc;
  int r = open_chain(path, o, &pc, &b);

  if (r < 0) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", bfs_last_error());
    if (pc.n > 0 && blk_path_chain_inspect(&pc, 0, &l) == 0) {
      if (json) {                   /* show what can be shown */
        json_object *jo = json_object_new_object();
        json_object_object_add(jo, "chain", bfs_json_string(path));
        json_object_object_add(jo, "error", json_object_new_string(msg));
        json_object *ja = json_object_new_array();
        json_object_array_add(ja, layer_json(0, path, l));
        json_object_object_add(jo, "layers", ja);
        print_json(jo);
      }
      else
        print_layer(0, path, l);
      bfs_blk_close(l);
    }
    blk_path_chain_free(&pc);
    fprintf(stderr, "backupfs: %s\n", msg);
    return 1;
  }
  if (json) {
    if ((r = allocated(b, &alloc)) == 0) {
      json_object *jo = json_object_new_object(), *ja = json_object_new_array();
      json_object_object_add(jo, "chain", bfs_json_string(path));
      json_object_object_add(jo, "depth",
                             json_object_new_int64((int64_t)bfs_blk_depth(b)));
      json_object_object_add(jo, "virtual_size", json_object_new_uint64(b->size));
      json_object_object_add(jo, "allocated", json_object_new_uint64(alloc));
      for (size_t i = 0; (l = bfs_blk_layer(b, i)); i++)
        json_object_array_add(ja, layer_json(i, pc.paths[i], l));
      json_object_object_add(jo, "layers", ja);
      print_json(jo);
    }
  }
  else
    printf("chain: %s\n  depth: %zu\n  virtual size: %" PRIu64 "\n", path,
           bfs_blk_depth(b), b->size);
  if (!json && (r = allocated(b, &alloc)) == 0) {
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
cmd_map(const char *path, const struct cmd_chain_opts *o, bool json)
{
  struct blk_path_chain pc;
  struct bfs_blk *b;
  struct bfs_blk_status e, t;
  int r = open_chain(path, o, &pc, &b);
  bool first = true;

  if (r == 0 && json) {              /* streamed: a map can be long */
    json_object *jp = bfs_json_string(path);
    printf("{\"chain\": %s, \"virtual_size\": %" PRIu64 ", \"extents\": [",
           json_object_to_json_string_ext(jp, JSON_C_TO_STRING_NOSLASHESCAPE),
           b->size);
    json_object_put(jp);
  }

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
    if (json && e.kind == BFS_BLK_DATA)
      printf("%s\n  {\"offset\": %" PRIu64 ", \"length\": %" PRIu64
             ", \"data\": true, \"layer\": %d}", first ? "" : ",", off, e.len,
             e.layer);
    else if (json)
      printf("%s\n  {\"offset\": %" PRIu64 ", \"length\": %" PRIu64
             ", \"data\": false}", first ? "" : ",", off, e.len);
    else if (e.kind == BFS_BLK_DATA)
      printf("%" PRIu64 " %" PRIu64 " DATA %d\n", off, e.len, e.layer);
    else
      printf("%" PRIu64 " %" PRIu64 " ZERO -\n", off, e.len);
    first = false;
  }
  if (r == 0 && json)
    printf("\n]}\n");
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
  struct blk_flatten_opts fo = { .threads = nthreads, .copy_plain = true };

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

enum { OPT_ROOT = 256, OPT_ALLOW_OUTSIDE, OPT_KEY_FILE };

#define CHAIN_OPTS                                                          \
  { "root", OPT_ROOT, "DIR", "backing files must lie under DIR (default:\n" \
    "the directory above IMAGE's own directory)" },                         \
  { "allow-outside", OPT_ALLOW_OUTSIDE, NULL,                               \
    "follow backing files wherever they point" },                          \
  { "key-file", OPT_KEY_FILE, "FILE", "passphrase of LUKS-encrypted qcow2\n" \
    "layers (one trailing newline ignored)" }

static const struct bfs_opt chain_opts[] = { CHAIN_OPTS, { 0 } };
static const struct bfs_opt cat_opts[] = {
  { "output", 'o', "FILE", "write to FILE instead of stdout" },
  { "threads", 'j', "THREADS", "reader threads for a new regular FILE\n"
    "(default 8)" },
  CHAIN_OPTS, { 0 },
};

static const struct bfs_cmd image_cmds[] = {
  { .name = "image info", .usage = "image info [CHAIN-OPTIONS] [--json] IMAGE",
    .about = "Print the backing chain of IMAGE: each layer's path, format,\n"
      "version, virtual size, cluster size, compression and backing.",
    .opts = chain_opts, .shared = BFS_OPTS_JSON,
    .json_help = "{chain, depth, virtual_size, allocated, layers:\n"
      "[{layer, path, format, version, virtual_size,\nfile_size, cluster_size, "
      "compression, ...}]}",
    .need = "IMAGE", .min_args = 1, .max_args = 1 },
  { .name = "image map", .usage = "image map [CHAIN-OPTIONS] [--json] IMAGE",
    .about = "Print the merged extent map of the point in time, one line per\n"
      "extent: OFFSET LENGTH DATA|ZERO LAYER (layer 0 is IMAGE).",
    .opts = chain_opts, .shared = BFS_OPTS_JSON,
    .json_help = "{chain, virtual_size, extents: [{offset, length,\n"
      "data, layer}]}",
    .need = "IMAGE", .min_args = 1, .max_args = 1 },
  { .name = "image cat",
    .usage = "image cat [CHAIN-OPTIONS] [-o FILE] [-j THREADS] IMAGE",
    .about = "Write the flat (raw) point in time to stdout or FILE.  A new\n"
      "regular FILE is written sparse by THREADS workers (default 8).",
    .opts = cat_opts, .need = "IMAGE", .min_args = 1, .max_args = 1 },
};
#define N_IMAGE_CMDS (sizeof image_cmds / sizeof image_cmds[0])

/* `image --help`: every subcommand's usage */
static void
all_usages(FILE *f)
{
  for (size_t i = 0; i < N_IMAGE_CMDS; i++) {
    if (i)
      fputc('\n', f);
    bfs_opts_usage(&image_cmds[i], f);
  }
}

static const struct bfs_cmd image_top = {
  .name = "image", .usage = "image info|map|cat [OPTIONS] IMAGE",
  .shared = BFS_OPTS_STOP, .need = "a SUBCOMMAND (info, map or cat)",
  .min_args = 1, .max_args = -1, .more = all_usages,
};

int
image_cmd(int argc, char **argv)
{
  struct cmd_chain_opts co = { 0 };
  const char *out = NULL, *key_file = NULL;
  const struct bfs_cmd *cmd = NULL;
  unsigned nthreads = 8;
  struct bfs_args g;
  int opt;

  bfs_opts_init(&g, &image_top, argc, argv);
  while ((opt = bfs_opts_next(&g)) > 0)
    ;                                  /* only the shared options */
  if (opt < 0)
    return g.status;
  const char *sub = g.pos[0];
  for (size_t i = 0; i < N_IMAGE_CMDS; i++)
    if (!strcmp(sub, image_cmds[i].name + strlen("image ")))
      cmd = &image_cmds[i];
  if (!cmd)
    return bfs_opts_bad(&g, "unknown subcommand '%s'", sub);
  bfs_opts_init(&g, cmd, g.npos, g.pos);
  while ((opt = bfs_opts_next(&g)) > 0) {
    switch (opt) {
    case 'o':
      out = g.optarg;
      break;
    case 'j': {
      char *end;
      unsigned long v = strtoul(g.optarg, &end, 10);
      if (*end || v < 1 || v > CAT_MAX_THREADS)
        return bfs_opts_bad(&g, "-j wants 1..%d", CAT_MAX_THREADS);
      nthreads = (unsigned)v;
      break;
    }
    case OPT_ROOT:
      co.root = g.optarg;
      break;
    case OPT_ALLOW_OUTSIDE:
      co.allow_outside = true;
      break;
    case OPT_KEY_FILE:
      key_file = g.optarg;
      break;
    }
  }
  if (opt < 0)
    return g.status;
  if (co.root && co.allow_outside)
    return bfs_opts_bad(&g, "--root and --allow-outside exclude each other");
  const char *path = g.pos[0];
  struct blk_key *key = NULL;
  int ret;
  if (key_file && blk_key_from_file(key_file, &key) < 0)
    return fail();
  co.key = key;
  if (!strcmp(sub, "info"))
    ret = cmd_info(path, &co, g.json);
  else if (!strcmp(sub, "map"))
    ret = cmd_map(path, &co, g.json);
  else
    ret = cmd_cat(path, out, nthreads, &co);
  blk_key_free(key);                /* wiped */
  return ret;
}
