/* chain.c — opening a point in time: the top image and its backing layers.
 *
 * Each layer's recorded backing name goes through the caller's resolver
 * (or, by default, is taken relative to the overlay's directory).  Formats:
 * a guest controls every byte of a raw disk, including a forged qcow2
 * header naming another VM's disk as its backing file, so a file's bytes
 * decide its format only when nobody else has:
 *   - the caller's record (opts->format: the catalog, which stored what the
 *     repository layout says, e.g. generic <disk>.raw/.img are raw) for the
 *     top and for every layer;
 *   - the overlay's recorded backing format for its backing layer; when
 *     both exist and disagree the chain is refused (corrupt or hostile);
 *   - only with neither is the file probed (qcow2 magic, else raw).
 * Loops are caught by (device, inode); depth is capped.
 * Encrypted and external-data layers are refused here, at open, with the
 * reason, so a chain that opens can be read.
 *
 * With opts->root every layer is opened beneath the repository descriptor
 * (no symlink followed, nothing outside it) and each open file's fstat goes
 * to opts->check, so a layer swapped after the scan is refused, not read.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/beneath.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "image/internal.h"

static int
default_resolve(const char *overlay, const char *name, char **out)
{
  CLEANUP_FREE char *dir = NULL;

  if (name[0] == '/' || !strchr(overlay, '/'))
    *out = strdup(name);
  else {
    dir = strdup(overlay);
    if (!dir || asprintf(out, "%s/%s", dirname(dir), name) < 0)
      *out = NULL;
  }
  if (!*out)
    return bfs_error(-ENOMEM, "out of memory");
  return 0;
}

static int
check_supported(const img_t *img)
{
  const struct img_info *in = img_get_info(img);
  if (in->encrypted)
    return bfs_error(-ENOTSUP, "%s: encrypted qcow2 (LUKS/AES) is not "
                     "supported", img_name(img));
  if (in->external_data)
    return bfs_error(-ENOTSUP, "%s: qcow2 with an external data file is not "
                     "supported", img_name(img));
  return 0;
}

static int
add_layer(chain_t *c, img_t *img, const char *path)
{
  img_t **l = realloc(c->layers, (c->depth + 1) * sizeof *l);
  char **p;
  if (l)
    c->layers = l;
  p = l ? realloc(c->paths, (c->depth + 1) * sizeof *p) : NULL;
  if (p)
    c->paths = p;
  if (!l || !p || !(p[c->depth] = strdup(path))) {
    img_close(img);
    return bfs_error(-ENOMEM, "%s: out of memory", path);
  }
  l[c->depth++] = img;
  return 0;
}

struct ident { dev_t dev; ino_t ino; };

/* ---- opening beneath the repository (opts->root) ---- */

static int
open_layer(const struct chain_opts *opts, const char *path, int fmt,
           img_t **out)
{
  struct img_io io;
  const char *rel;
  int r;

  if (!opts || !opts->root)
    return img_open_format(path, fmt, out);
  if (!(rel = bfs_path_beneath(opts->root, path)))
    return bfs_error(-EXDEV, "%s: not inside %s", path, opts->root);
  if ((r = img_io_file_beneath(opts->root_fd, opts->root, rel, &io)) < 0)
    return r;
  return img_open_io_fmt(&io, path, fmt, out);
}

/* the layer just added: its identity for loop detection and opts->check */
static int
layer_opened(chain_t *c, const struct chain_opts *opts, struct ident *seen,
             size_t *nseen)
{
  const char *path = c->paths[c->depth - 1], *rel = path;
  struct stat st;

  if (img_io_file_stat(&c->layers[c->depth - 1]->io, &st) < 0) {
    if (opts && opts->check)
      return bfs_error(-EIO, "%s: cannot check the file's identity", path);
    return 0;
  }
  for (size_t i = 0; i < *nseen; i++)
    if (seen[i].dev == st.st_dev && seen[i].ino == st.st_ino)
      return bfs_error(-ELOOP, "%s: backing file loop: '%s' is already "
                       "in the chain", c->depth > 1 ? c->paths[c->depth - 2]
                       : path, path);
  seen[(*nseen)++] = (struct ident){ st.st_dev, st.st_ino };
  if (opts && opts->root && bfs_path_beneath(opts->root, path))
    rel = bfs_path_beneath(opts->root, path);
  if (opts && opts->check)
    return opts->check(opts->check_opaque, c->depth - 1, rel, &st);
  return 0;
}

static const char *
fmt_name(int fmt)
{
  return fmt == IMG_FORMAT_QCOW2 ? "qcow2" : "raw";
}

/* the caller's record of path's format, or -1 */
static int
known_format(const struct chain_opts *opts, const char *path)
{
  int f = opts && opts->format ? opts->format(opts->resolve_opaque, path)
                               : -1;
  return f == IMG_FORMAT_RAW || f == IMG_FORMAT_QCOW2 ? f : -1;
}

static int
open_chain(chain_t *c, img_t *top, const struct chain_opts *opts)
{
  unsigned max_depth = opts && opts->max_depth ? opts->max_depth
                       : CHAIN_MAX_DEPTH;
  CLEANUP_FREE struct ident *seen = calloc(max_depth + 1, sizeof *seen);
  size_t nseen = 0;
  int r;

  if (!seen) {
    img_close(top);
    return bfs_error(-ENOMEM, "out of memory");
  }
  r = add_layer(c, top, img_name(top));
  if (r < 0 || (r = layer_opened(c, opts, seen, &nseen)) < 0)
    return r;

  for (;;) {
    img_t *cur = c->layers[c->depth - 1], *next;
    const char *cur_path = c->paths[c->depth - 1];
    const struct img_info *in = img_get_info(cur);
    CLEANUP_FREE char *path = NULL;
    int fmt = -1;

    if ((r = check_supported(cur)) < 0)
      return r;
    if (!in->backing_file)
      return opts && opts->check ? opts->check(opts->check_opaque, c->depth,
                                               NULL, NULL) : 0;
    if (c->depth >= max_depth)
      return bfs_error(-ELOOP, "%s: backing chain deeper than %u layers",
                       c->paths[0], max_depth);
    if (opts && opts->resolve)
      r = opts->resolve(opts->resolve_opaque, cur_path, in->backing_file,
                        &path);
    else
      r = default_resolve(cur_path, in->backing_file, &path);
    if (r < 0)
      return bfs_error_prefix(r, "%s: backing file '%s': ", cur_path,
                              in->backing_file);
    if (in->backing_format) {
      if (!strcmp(in->backing_format, "raw"))
        fmt = IMG_FORMAT_RAW;
      else if (!strcmp(in->backing_format, "qcow2"))
        fmt = IMG_FORMAT_QCOW2;
      else
        return bfs_error(-ENOTSUP, "%s: backing file '%s' has format '%s', "
                         "which is not supported", cur_path,
                         in->backing_file, in->backing_format);
    }
    int known = known_format(opts, path);
    if (known >= 0 && fmt >= 0 && known != fmt)
      return bfs_error(-EIO, "%s: backing file '%s' is recorded as %s, but "
                       "%s is %s (as its repository layout says): refusing "
                       "the chain", cur_path, in->backing_file,
                       fmt_name(fmt), path, fmt_name(known));
    if (fmt < 0)
      fmt = known;
    r = open_layer(opts, path, fmt, &next);
    if (r < 0)
      return bfs_error_prefix(r, "%s: backing file '%s': ", cur_path,
                              in->backing_file);
    if ((r = add_layer(c, next, path)) < 0 ||
        (r = layer_opened(c, opts, seen, &nseen)) < 0)
      return r;
  }
}

int
chain_open_image(img_t *top, const struct chain_opts *opts, chain_t **out)
{
  chain_t *c = calloc(1, sizeof *c);
  int r;

  *out = NULL;
  if (!c) {
    img_close(top);
    return bfs_error(-ENOMEM, "out of memory");
  }
  chain_map_init(c, opts ? opts->cache_bytes : 0, opts ? opts->map_bytes : 0);
  r = open_chain(c, top, opts);
  if (r < 0) {
    chain_close(c);
    return r;
  }
  c->size = img_get_info(c->layers[0])->virtual_size;
  *out = c;
  return 0;
}

int
chain_open(const char *top_path, const struct chain_opts *opts,
           chain_t **out)
{
  img_t *top;
  int r;

  *out = NULL;
  r = open_layer(opts, top_path, known_format(opts, top_path), &top);
  if (r < 0)
    return r;
  return chain_open_image(top, opts, out);
}

void
chain_close(chain_t *c)
{
  if (!c)
    return;
  chain_map_free(c);
  for (size_t i = 0; i < c->depth; i++) {
    img_close(c->layers[i]);
    free(c->paths[i]);
  }
  free(c->layers);
  free(c->paths);
  free(c);
}

uint64_t chain_size(const chain_t *c) { return c->size; }
size_t chain_depth(const chain_t *c) { return c->depth; }

const img_t *
chain_layer(const chain_t *c, size_t i)
{
  return i < c->depth ? c->layers[i] : NULL;
}

const char *
chain_layer_path(const chain_t *c, size_t i)
{
  return i < c->depth ? c->paths[i] : NULL;
}

void
chain_hint_sequential(chain_t *c)
{
  for (size_t i = 0; i < c->depth; i++)
    img_io_hint_sequential(&c->layers[i]->io);
}
