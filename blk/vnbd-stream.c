/* vnbd-stream.c — one pass over a virtnbdbackup stream into its index.
 *
 * The format (virtnbdbackup 1.9, libvirtnbdbackup/sparsestream; stream
 * version 2 adds compression, version 1 streams are the same without it)
 * is a sequence of frames, each opened by a 40-byte header
 *   KIND ' ' START(16 hex) ' ' LENGTH(16 hex) "\r\n"
 * with KIND one of meta, data, zero, stop, comp:
 *   meta 0 N   first frame: N bytes of JSON (virtualSize, dataSize,
 *              checkpointName, parentCheckpoint, incremental, compressed,
 *              compressionMethod, streamVersion, ...) then "\r\n";
 *   data S L   guest [S, S+L): L bytes then "\r\n"; compressed, one or
 *              more lz4 frames (the lz4 frame format, with checksums) whose
 *              sizes only the trailer knows, then "\r\n";
 *   zero S L   guest [S, S+L) reads as zeros, no payload (fulls only);
 *   stop 0 0   the end of the stream.
 * A compressed stream ends with the trailer: after the stop frame, a JSON
 * array with one entry per data frame (an integer: the size of its single
 * lz4 frame; or {"TOTAL": [size, ...]}: several lz4 frames, one per NBD
 * request), "\r\n", then "comp 0 N" with N the JSON's length.
 *
 * Everything is checked, nothing is guessed: a stream with no stop frame
 * (the backup was interrupted) or no trailer, a frame running past the end
 * of the file, a missing terminator, frames out of order or overlapping,
 * sizes that do not add up, is -EIO naming the file and the offset.  The
 * decoded size of each lz4 frame comes from its frame header (python-lz4
 * stores it) and is checked again on every decode.
 */
#include "blk/vnbd.h"

#include "common/checked.h"
#include "common/error.h"
#include "common/vec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <lz4frame.h>

#define HDR_LEN 40u

struct hdr {
  char kind[5];
  uint64_t start, len;
};

struct parse {
  struct blk_io *io;
  const char *name;
  struct vnbd_index *idx;
  size_t cap_ext, cap_blk;
  json_object *trailer;        /* compressed streams: the size list */
  size_t next_entry;
};

static int
hex16(const char *s, uint64_t *out)
{
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    char c = s[i];
    unsigned d;
    if (c >= '0' && c <= '9')
      d = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      d = (unsigned)(c - 'A' + 10);
    else
      return -1;
    v = v << 4 | d;
  }
  *out = v;
  return 0;
}

/* The frame header at off; limit is where frames must end. */
static int
read_hdr(struct parse *p, uint64_t off, uint64_t limit, struct hdr *h)
{
  char b[HDR_LEN];
  int r;

  if (!ck_range_ok(off, HDR_LEN, limit))
    return bfs_error(-EIO, "%s: stream ends at offset %" PRIu64 " before "
                     "its stop frame (%" PRIu64 " bytes of a frame header "
                     "there): a truncated or interrupted backup", p->name,
                     off, limit > off ? limit - off : 0);
  if ((r = blk_io_read(p->io, b, HDR_LEN, off, "frame header")) < 0)
    return r;
  if (b[4] != ' ' || b[21] != ' ' || b[38] != '\r' || b[39] != '\n' ||
      hex16(b + 5, &h->start) < 0 || hex16(b + 22, &h->len) < 0)
    return bfs_error(-EIO, "%s: no valid frame header at offset %" PRIu64,
                     p->name, off);
  memcpy(h->kind, b, 4);
  h->kind[4] = 0;
  return 0;
}

static int
expect_term(struct parse *p, uint64_t off, uint64_t limit, const char *what)
{
  char t[2];
  int r;

  if (!ck_range_ok(off, 2, limit))
    return bfs_error(-EIO, "%s: %s runs past the end of the stream at "
                     "offset %" PRIu64 ": a truncated or interrupted backup",
                     p->name, what, limit);
  if ((r = blk_io_read(p->io, t, 2, off, what)) < 0)
    return r;
  if (t[0] != '\r' || t[1] != '\n')
    return bfs_error(-EIO, "%s: %s not terminated at offset %" PRIu64,
                     p->name, what, off);
  return 0;
}

static int
parse_json(struct parse *p, uint64_t off, uint64_t len, const char *what,
           json_object **out)
{
  char *buf;
  int r;

  if (len == 0 || len > VNBD_META_MAX)
    return bfs_error(-EIO, "%s: %s at offset %" PRIu64 " has an implausible "
                     "length %" PRIu64, p->name, what, off, len);
  if (!(buf = malloc(len)))
    return bfs_error(-ENOMEM, "%s: out of memory", p->name);
  if ((r = blk_io_read(p->io, buf, len, off, what)) < 0) {
    free(buf);
    return r;
  }
  json_tokener *tok = json_tokener_new_ex(32);
  json_object *o = tok ? json_tokener_parse_ex(tok, buf, (int)len) : NULL;
  bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
            json_tokener_get_parse_end(tok) == len;
  if (tok)
    json_tokener_free(tok);
  free(buf);
  if (!ok) {
    json_object_put(o);
    return bfs_error(-EIO, "%s: %s at offset %" PRIu64 " is not valid JSON",
                     p->name, what, off);
  }
  *out = o;
  return 0;
}

/* a key in camelCase (version 2) or dashed (older streams) */
static json_object *
key(json_object *o, const char *camel, const char *dashed)
{
  json_object *v = NULL;
  if (!json_object_object_get_ex(o, camel, &v) && dashed)
    json_object_object_get_ex(o, dashed, &v);
  return v;
}

static int
meta_string(struct parse *p, json_object *o, const char *camel,
            const char *dashed, char **out)
{
  json_object *v = key(o, camel, dashed);
  *out = NULL;
  if (!v || json_object_is_type(v, json_type_null))
    return 0;
  if (!json_object_is_type(v, json_type_string))
    return bfs_error(-EIO, "%s: metadata field %s is not a string", p->name,
                     camel);
  if (!(*out = strdup(json_object_get_string(v))))
    return bfs_error(-ENOMEM, "%s: out of memory", p->name);
  return 0;
}

static int
meta_u64(struct parse *p, json_object *o, const char *camel,
         const char *dashed, bool need, uint64_t *out)
{
  json_object *v = key(o, camel, dashed);
  *out = 0;
  if (!v && !need)
    return 0;
  if (!v || !json_object_is_type(v, json_type_int) ||
      json_object_get_int64(v) < 0)
    return bfs_error(-EIO, "%s: metadata field %s is %s", p->name, camel,
                     v ? "not a non-negative integer" : "missing");
  *out = (uint64_t)json_object_get_int64(v);
  return 0;
}

static int
parse_meta(struct parse *p, json_object *o)
{
  struct vnbd_meta *m = &p->idx->meta;
  uint64_t ver;
  json_object *v;
  char *method = NULL;
  int r;

  if (!json_object_is_type(o, json_type_object))
    return bfs_error(-EIO, "%s: metadata is not a JSON object", p->name);
  if ((r = meta_u64(p, o, "virtualSize", "virtual-size", true,
                    &m->virtual_size)) < 0 ||
      (r = meta_u64(p, o, "dataSize", "data-size", true, &m->data_size)) < 0 ||
      (r = meta_u64(p, o, "streamVersion", "stream-version", false, &ver)) < 0)
    return r;
  if (m->virtual_size == 0)
    return bfs_error(-EIO, "%s: virtual size 0, not a disk", p->name);
  m->stream_version = ver ? (int)ver : 1;
  if (ver > 2)
    return bfs_error(-ENOTSUP, "%s: stream version %" PRIu64 " (this reader "
                     "knows versions 1 and 2)", p->name, ver);
  if ((v = key(o, "incremental", NULL)) &&
      !json_object_is_type(v, json_type_boolean))
    return bfs_error(-EIO, "%s: metadata field incremental is not a boolean",
                     p->name);
  m->incremental = v && json_object_get_boolean(v);
  /* false, or the lz4 level (an integer, even 0) / true: compressed */
  v = key(o, "compressed", NULL);
  if (v && !json_object_is_type(v, json_type_boolean) &&
      !json_object_is_type(v, json_type_int))
    return bfs_error(-EIO, "%s: metadata field compressed is neither a "
                     "boolean nor a level", p->name);
  m->compressed = m->stream_version == 2 && v &&
                  (json_object_is_type(v, json_type_int) ||
                   json_object_get_boolean(v));
  if ((r = meta_string(p, o, "checkpointName", "checkpoint-name",
                       &m->checkpoint)) < 0 ||
      (r = meta_string(p, o, "parentCheckpoint", "parent-checkpoint",
                       &m->parent)) < 0 ||
      (r = meta_string(p, o, "diskName", "disk-name", &m->disk_name)) < 0 ||
      (r = meta_string(p, o, "diskFormat", "disk-format",
                       &m->disk_format)) < 0 ||
      (r = meta_string(p, o, "date", NULL, &m->date)) < 0 ||
      (r = meta_string(p, o, "compressionMethod", "compression-method",
                       &method)) < 0)
    return r;
  if (!m->checkpoint && !(m->checkpoint = strdup("")))
    return bfs_error(-ENOMEM, "%s: out of memory", p->name);
  if (m->compressed && method && strcmp(method, "lz4")) {
    r = bfs_error(-ENOTSUP, "%s: compression method '%s' (only lz4 is "
                  "known)", p->name, method);
    free(method);
    return r;
  }
  free(method);
  return 0;
}

/* The trailer of a compressed stream; *limit becomes where the stop frame
 * must end. */
static int
read_trailer(struct parse *p, uint64_t *limit)
{
  const uint64_t fsize = p->idx->file_size;
  struct hdr h;
  uint64_t jpos;
  int r;

  if (fsize < 2 * HDR_LEN + 2 ||
      read_hdr(p, fsize - HDR_LEN, fsize, &h) < 0 || strcmp(h.kind, "comp") ||
      h.start != 0 || h.len > fsize - 2 * HDR_LEN - 2)
    return bfs_error(-EIO, "%s: compressed stream has no compression trailer "
                     "where it ends (offset %" PRIu64 "): a truncated or "
                     "interrupted backup", p->name, fsize);
  jpos = fsize - HDR_LEN - 2 - h.len;
  if ((r = expect_term(p, fsize - HDR_LEN - 2, fsize, "compression trailer"))
      < 0 ||
      (r = parse_json(p, jpos, h.len, "compression trailer", &p->trailer)) < 0)
    return r;
  if (!json_object_is_type(p->trailer, json_type_array))
    return bfs_error(-EIO, "%s: compression trailer at offset %" PRIu64
                     " is not a JSON array", p->name, jpos);
  *limit = jpos;
  return 0;
}

static int
grow(void **arr, size_t *cap, size_t n, size_t elt, const char *name)
{
  if (bfs_vec_reserve_(arr, cap, elt, n + 1) < 0)
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  return 0;
}

static int
add_block(struct parse *p, uint64_t voff, uint64_t foff, uint64_t clen,
          uint64_t dlen)
{
  struct vnbd_index *x = p->idx;
  int r = grow((void **)&x->blk, &p->cap_blk, x->n_blk, sizeof *x->blk,
               p->name);
  if (r < 0)
    return r;
  x->blk[x->n_blk++] = (struct vnbd_block){ voff, dlen, foff, clen };
  return 0;
}

/* The decoded size an lz4 frame's header records, 0 if it records none. */
static int
lz4_content_size(struct parse *p, uint64_t foff, uint64_t clen,
                 uint64_t *out)
{
  unsigned char b[LZ4F_HEADER_SIZE_MAX];
  size_t n = clen < sizeof b ? (size_t)clen : sizeof b;
  LZ4F_dctx *d;
  LZ4F_frameInfo_t fi;
  size_t e;
  int r;

  if ((r = blk_io_read(p->io, b, n, foff, "lz4 frame header")) < 0)
    return r;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
    return bfs_error(-ENOMEM, "%s: out of memory", p->name);
  e = LZ4F_getFrameInfo(d, &fi, b, &n);
  LZ4F_freeDecompressionContext(d);
  if (LZ4F_isError(e))
    return bfs_error(-EIO, "%s: no valid lz4 frame at offset %" PRIu64 " (%s)",
                     p->name, foff, LZ4F_getErrorName(e));
  *out = fi.contentSize;
  return 0;
}

/* The lz4 frames of the data frame [voff, voff+vlen) at file offset foff;
 * *clen becomes their total size. */
static int
compressed_blocks(struct parse *p, struct vnbd_ext *e, uint64_t hpos,
                  uint64_t limit, uint64_t *clen)
{
  json_object *ent, *list = NULL;
  uint64_t total = 0, voff = e->voff, foff = e->foff;
  size_t n;
  int r;

  if (p->next_entry >= json_object_array_length(p->trailer))
    return bfs_error(-EIO, "%s: data frame at offset %" PRIu64 " has no "
                     "entry in the compression trailer", p->name, hpos);
  ent = json_object_array_get_idx(p->trailer, p->next_entry++);
  if (json_object_is_type(ent, json_type_object) &&
      json_object_object_length(ent) == 1) {
    json_object_object_foreach(ent, k, v) {
      char *end;
      total = strtoull(k, &end, 10);
      if (!*k || *end || !json_object_is_type(v, json_type_array))
        list = NULL;
      else
        list = v;
    }
  } else if (!json_object_is_type(ent, json_type_int)) {
    ent = NULL;
  }
  if (!ent || (json_object_is_type(ent, json_type_object) && !list))
    return bfs_error(-EIO, "%s: compression trailer entry %zu (data frame at "
                     "offset %" PRIu64 ") is malformed", p->name,
                     p->next_entry - 1, hpos);
  n = list ? json_object_array_length(list) : 1;
  e->blk = p->idx->n_blk;
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    json_object *s = list ? json_object_array_get_idx(list, i) : ent;
    uint64_t c, d = 0;
    if (!json_object_is_type(s, json_type_int) ||
        json_object_get_int64(s) <= 0)
      return bfs_error(-EIO, "%s: compression trailer entry %zu has a bad "
                       "block size", p->name, p->next_entry - 1);
    c = (uint64_t)json_object_get_int64(s);
    if (!ck_range_ok(foff, c, limit))
      return bfs_error(-EIO, "%s: data frame at offset %" PRIu64 " (guest "
                       "%" PRIu64 ", %" PRIu64 " bytes) runs past the end of "
                       "the stream at offset %" PRIu64 ": a truncated or "
                       "interrupted backup", p->name, hpos, e->voff, e->vlen,
                       limit);
    if ((r = lz4_content_size(p, foff, c, &d)) < 0)
      return r;
    if (d == 0 && n == 1)
      d = e->vlen;                  /* one frame: it is the whole extent */
    if (d == 0 || d > VNBD_BLOCK_MAX || d > e->vlen - (voff - e->voff))
      return bfs_error(-EIO, "%s: lz4 frame at offset %" PRIu64 " decodes "
                       "to %" PRIu64 " bytes, which does not fit its data "
                       "frame (guest %" PRIu64 ", %" PRIu64 " bytes)", p->name,
                       foff, d, e->voff, e->vlen);
    if ((r = add_block(p, voff, foff, c, d)) < 0)
      return r;
    voff += d;
    foff += c;
    sum += c;
  }
  if (voff != e->voff + e->vlen || (list && sum != total))
    return bfs_error(-EIO, "%s: the lz4 frames of the data frame at offset "
                     "%" PRIu64 " do not add up (%" PRIu64 " of %" PRIu64
                     " guest bytes, %" PRIu64 " of %" PRIu64 " stored)",
                     p->name, hpos, voff - e->voff, e->vlen, sum,
                     list ? total : sum);
  e->nblk = (uint32_t)n;
  *clen = sum;
  return 0;
}

static int
add_extent(struct parse *p, const struct hdr *h, uint64_t hpos,
           uint64_t limit, uint64_t *next)
{
  struct vnbd_index *x = p->idx;
  uint64_t prev = x->n_ext ? x->ext[x->n_ext - 1].voff +
                             x->ext[x->n_ext - 1].vlen : 0;
  bool data = !strcmp(h->kind, "data");
  struct vnbd_ext e = { .voff = h->start, .vlen = h->len,
                        .foff = hpos + HDR_LEN,
                        .kind = data ? VNBD_DATA : VNBD_ZERO };
  uint64_t plen = 0;
  int r;

  if (h->len == 0 || !ck_range_ok(h->start, h->len, x->meta.virtual_size))
    return bfs_error(-EIO, "%s: %s frame at offset %" PRIu64 " (guest %"
                     PRIu64 ", %" PRIu64 " bytes) is empty or past the "
                     "virtual size %" PRIu64, p->name, h->kind, hpos,
                     h->start, h->len, x->meta.virtual_size);
  if (h->start < prev)
    return bfs_error(-EIO, "%s: %s frame at offset %" PRIu64 " (guest %"
                     PRIu64 ") overlaps or precedes the frame before it",
                     p->name, h->kind, hpos, h->start);
  if (data && x->meta.compressed) {
    if ((r = compressed_blocks(p, &e, hpos, limit, &plen)) < 0)
      return r;
  } else if (data) {
    plen = h->len;
    if (!ck_range_ok(e.foff, plen, limit))
      return bfs_error(-EIO, "%s: data frame at offset %" PRIu64 " (guest %"
                       PRIu64 ", %" PRIu64 " bytes) runs past the end of "
                       "the stream at offset %" PRIu64 ": a truncated or "
                       "interrupted backup", p->name, hpos, h->start, h->len,
                       limit);
  }
  if (data && (r = expect_term(p, e.foff + plen, limit, "data frame")) < 0)
    return r;
  if ((r = grow((void **)&x->ext, &p->cap_ext, x->n_ext, sizeof *x->ext,
                p->name)) < 0)
    return r;
  x->ext[x->n_ext++] = e;
  *next = e.foff + (data ? plen + 2 : 0);
  return 0;
}

static int
walk(struct parse *p)
{
  struct vnbd_index *x = p->idx;
  uint64_t limit = x->file_size, pos, data = 0;
  json_object *meta = NULL;
  struct hdr h;
  int r;

  if ((r = read_hdr(p, 0, limit, &h)) < 0)
    return r;
  if (strcmp(h.kind, "meta") || h.start != 0)
    return bfs_error(-EIO, "%s: not a virtnbdbackup stream (no metadata "
                     "frame at offset 0)", p->name);
  if (!ck_range_ok(HDR_LEN, h.len, limit))
    return bfs_error(-EIO, "%s: metadata frame runs past the end of the "
                     "stream at offset %" PRIu64, p->name, limit);
  if ((r = parse_json(p, HDR_LEN, h.len, "metadata", &meta)) < 0)
    return r;
  r = parse_meta(p, meta);
  json_object_put(meta);
  if (r < 0 || (r = expect_term(p, HDR_LEN + h.len, limit, "metadata")) < 0)
    return r;
  if (x->meta.compressed && (r = read_trailer(p, &limit)) < 0)
    return r;

  for (pos = HDR_LEN + h.len + 2;;) {
    if ((r = read_hdr(p, pos, limit, &h)) < 0)
      return r;
    if (!strcmp(h.kind, "stop"))
      break;
    if (strcmp(h.kind, "data") && strcmp(h.kind, "zero"))
      return bfs_error(-EIO, "%s: unexpected '%s' frame at offset %" PRIu64,
                       p->name, h.kind, pos);
    if ((r = add_extent(p, &h, pos, limit, &pos)) < 0)
      return r;
    if (x->ext[x->n_ext - 1].kind == VNBD_DATA)
      data += x->ext[x->n_ext - 1].vlen;
  }
  if (h.start || h.len || pos + HDR_LEN != limit)
    return bfs_error(-EIO, "%s: %" PRIu64 " unexpected bytes after the stop "
                     "frame at offset %" PRIu64, p->name,
                     limit - pos - HDR_LEN, pos);
  if (p->trailer && p->next_entry != json_object_array_length(p->trailer))
    return bfs_error(-EIO, "%s: compression trailer lists %zu data frames, "
                     "the stream has %zu", p->name,
                     json_object_array_length(p->trailer), p->next_entry);
  if (data != x->meta.data_size)
    return bfs_error(-EIO, "%s: data frames hold %" PRIu64 " bytes, the "
                     "metadata says %" PRIu64, p->name, data,
                     x->meta.data_size);
  return 0;
}

int
vnbd_index_build(struct blk_io *io, struct vnbd_index *idx)
{
  struct parse p = { .io = io, .name = blk_io_name(io), .idx = idx };
  int r;

  memset(idx, 0, sizeof *idx);
  idx->file_size = blk_io_size(io);
  r = walk(&p);
  json_object_put(p.trailer);
  if (r < 0)
    vnbd_index_free(idx);
  return r;
}

void
vnbd_index_free(struct vnbd_index *idx)
{
  struct vnbd_meta *m = &idx->meta;
  free(m->checkpoint);
  free(m->parent);
  free(m->disk_name);
  free(m->disk_format);
  free(m->date);
  free(idx->ext);
  free(idx->blk);
  memset(idx, 0, sizeof *idx);
}
