/* restic-json.c — restic's JSON documents, parsed from memory (json-c).
 *
 * Key files (kdf, N, r, p, salt, data), the master key inside a key file
 * (mac.k, mac.r, encrypt), config (version 1 or 2), index files (packs with
 * their blobs: id, type, offset, length, and uncompressed_length for v2
 * compressed blobs; also the pre-0.8 bare array), snapshots (time, tree,
 * paths, hostname, username, tags) and tree blobs (nodes: name, type, mode
 * as Go's os.FileMode, mtime, uid, gid, size, content, subtree,
 * linktarget).  Every field is type-checked; anything malformed is -EIO
 * naming the repository file and the field — never a default that reads as
 * data.  No I/O here: the fuzz target calls these directly.
 */
#include "blk/restic-internal.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "common/vec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

static int
parse_doc(const char *json, size_t len, const char *name, json_type want,
          json_object **out)
{
  if (len > RESTIC_JSON_MAX || len > (size_t)INT32_MAX)
    return bfs_error(-EIO, "%s: JSON document too large", name);
  json_tokener *tok = json_tokener_new_ex(64);
  if (!tok)
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  json_object *o = json_tokener_parse_ex(tok, json, (int)len);
  enum json_tokener_error e = json_tokener_get_error(tok);
  size_t used = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  /* allow trailing whitespace (restic writes a newline after some files) */
  while (o && used < len && strchr(" \t\r\n", json[used]) && json[used])
    used++;
  if (!o || e != json_tokener_success || used != len) {
    json_object_put(o);
    return bfs_error(-EIO, "%s: not a valid JSON document (%s)", name,
                     e != json_tokener_success ? json_tokener_error_desc(e)
                                               : "trailing data");
  }
  if (!json_object_is_type(o, want)) {
    json_object_put(o);
    return bfs_error(-EIO, "%s: JSON document is not an %s", name,
                     want == json_type_array ? "array" : "object");
  }
  *out = o;
  return 0;
}

static void
put_json(json_object **o)
{
  json_object_put(*o);
}
#define CLEANUP_JSON __attribute__((cleanup(put_json)))

/* field helpers: 0 found, 1 absent/null (when optional), -EIO otherwise */
static int
get_field(json_object *o, const char *key, json_type t, bool required,
          const char *name, const char *what, json_object **v)
{
  json_object *f = NULL;
  if (!json_object_object_get_ex(o, key, &f) || f == NULL) {
    if (!required)
      return 1;
    return bfs_error(-EIO, "%s: %s has no \"%s\"", name, what, key);
  }
  if (!json_object_is_type(f, t))
    return bfs_error(-EIO, "%s: %s: \"%s\" has the wrong type", name, what, key);
  *v = f;
  return 0;
}

static int
get_u64(json_object *o, const char *key, bool required, uint64_t max,
        const char *name, const char *what, uint64_t *out)
{
  json_object *f = NULL;
  int ret = get_field(o, key, json_type_int, required, name, what, &f);
  if (ret != 0)
    return ret;
  int64_t v = json_object_get_int64(f);
  if (v < 0 || (uint64_t)v > max)
    return bfs_error(-EIO, "%s: %s: \"%s\" out of range", name, what, key);
  *out = (uint64_t)v;
  return 0;
}

static int
get_str(json_object *o, const char *key, bool required, const char *name,
        const char *what, const char **out, size_t *len)
{
  json_object *f = NULL;
  int ret = get_field(o, key, json_type_string, required, name, what, &f);
  if (ret != 0)
    return ret;
  *out = json_object_get_string(f);
  *len = (size_t)json_object_get_string_len(f);
  if (strlen(*out) != *len)
    return bfs_error(-EIO, "%s: %s: \"%s\" contains NUL", name, what, key);
  return 0;
}

static int
get_id(json_object *o, const char *key, bool required, const char *name,
       const char *what, uint8_t id[RESTIC_ID_LEN])
{
  const char *s;
  size_t l;
  int ret = get_str(o, key, required, name, what, &s, &l);
  if (ret != 0)
    return ret;
  if (restic_hex_id(s, id) < 0)
    return bfs_error(-EIO, "%s: %s: \"%s\" is not a 64-digit hex id", name,
                     what, key);
  return 0;
}

static int
get_b64(json_object *o, const char *key, const char *name, const char *what,
        uint8_t **out, size_t *len)
{
  const char *s;
  size_t l;
  int ret = get_str(o, key, true, name, what, &s, &l);
  if (ret != 0)
    return ret;
  if (restic_base64(s, l, out, len) < 0)
    return bfs_error(-EIO, "%s: %s: \"%s\" is not base64", name, what, key);
  return 0;
}

int
restic_parse_keyfile(const char *json, size_t len, const char *name,
                     struct restic_keyfile *kf)
{
  CLEANUP_JSON json_object *o = NULL;
  const char *kdf;
  size_t l;
  int ret;

  memset(kf, 0, sizeof *kf);
  if ((ret = parse_doc(json, len, name, json_type_object, &o)) < 0 ||
      (ret = get_str(o, "kdf", true, name, "key file", &kdf, &l)) < 0)
    return ret;
  if (strcmp(kdf, "scrypt") != 0)
    return bfs_error(-EIO, "%s: unsupported key derivation \"%s\"", name, kdf);
  if ((ret = get_u64(o, "N", true, UINT32_MAX, name, "key file", &kf->n)) < 0 ||
      (ret = get_u64(o, "r", true, UINT32_MAX, name, "key file", &kf->r)) < 0 ||
      (ret = get_u64(o, "p", true, UINT32_MAX, name, "key file", &kf->p)) < 0 ||
      (ret = get_b64(o, "salt", name, "key file", &kf->salt,
                     &kf->salt_len)) < 0 ||
      (ret = get_b64(o, "data", name, "key file", &kf->data,
                     &kf->data_len)) < 0) {
    restic_keyfile_free(kf);
    return ret;
  }
  return 0;
}

void
restic_keyfile_free(struct restic_keyfile *kf)
{
  free(kf->salt);
  restic_wipe(kf->data, kf->data_len);
  free(kf->data);
  memset(kf, 0, sizeof *kf);
}

static void
wipe_str(json_object *o, const char *key)
{
  json_object *v;
  if (o && json_object_object_get_ex(o, key, &v) &&
      json_object_is_type(v, json_type_string))
    restic_wipe((char *)json_object_get_string(v),
                (size_t)json_object_get_string_len(v));
}

int
restic_parse_masterkey(const char *json, size_t len, const char *name,
                       struct restic_key *k)
{
  CLEANUP_JSON json_object *o = NULL;
  json_object *mac;
  uint8_t *mk = NULL, *mr = NULL, *enc = NULL;
  size_t lk = 0, lr = 0, le = 0;
  int ret;

  if ((ret = parse_doc(json, len, name, json_type_object, &o)) < 0 ||
      (ret = get_field(o, "mac", json_type_object, true, name, "master key",
                       &mac)) < 0)
    return ret;
  if ((ret = get_b64(mac, "k", name, "master key", &mk, &lk)) < 0 ||
      (ret = get_b64(mac, "r", name, "master key", &mr, &lr)) < 0 ||
      (ret = get_b64(o, "encrypt", name, "master key", &enc, &le)) < 0)
    goto out;
  if (lk != 16 || lr != 16 || le != 32) {
    ret = bfs_error(-EIO, "%s: master key has the wrong length", name);
    goto out;
  }
  memcpy(k->mac_k, mk, 16);
  memcpy(k->mac_r, mr, 16);
  memcpy(k->enc, enc, 32);
out:
  restic_wipe(mk, lk);
  restic_wipe(mr, lr);
  restic_wipe(enc, le);
  free(mk);
  free(mr);
  free(enc);
  /* json-c's copies of the key text */
  wipe_str(o, "encrypt");
  if (o && json_object_object_get_ex(o, "mac", &mac) &&
      json_object_is_type(mac, json_type_object)) {
    wipe_str(mac, "k");
    wipe_str(mac, "r");
  }
  return ret;
}

int
restic_parse_config(const char *json, size_t len, const char *name,
                    int *version)
{
  CLEANUP_JSON json_object *o = NULL;
  uint64_t v;
  int ret;

  if ((ret = parse_doc(json, len, name, json_type_object, &o)) < 0 ||
      (ret = get_u64(o, "version", true, 1000, name, "config", &v)) < 0)
    return ret;
  if (v != 1 && v != 2)
    return bfs_error(-EIO, "%s: repository version %" PRIu64 " not supported",
                     name, v);
  *version = (int)v;
  return 0;
}

static int
index_pack(json_object *pk, const char *name, struct restic_index *ix)
{
  json_object *blobs;
  uint8_t pid[RESTIC_ID_LEN];
  int ret;

  if (!json_object_is_type(pk, json_type_object))
    return bfs_error(-EIO, "%s: index pack entry is not an object", name);
  if ((ret = get_id(pk, "id", true, name, "index pack", pid)) < 0 ||
      (ret = get_field(pk, "blobs", json_type_array, true, name, "index pack",
                       &blobs)) < 0)
    return ret;
  if (ix->n_packs >= UINT32_MAX ||
      bfs_vec_reserve_((void **)&ix->packs, &ix->cap_packs,
                       sizeof *ix->packs, ix->n_packs + 1) < 0)
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  memcpy(ix->packs[ix->n_packs], pid, RESTIC_ID_LEN);

  size_t n = json_object_array_length(blobs);
  if (bfs_vec_reserve_((void **)&ix->blobs, &ix->cap_blobs,
                       sizeof *ix->blobs, ix->n_blobs + n) < 0)
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  for (size_t i = 0; i < n; i++) {
    json_object *b = json_object_array_get_idx(blobs, i);
    struct restic_blob *e = &ix->blobs[ix->n_blobs + i];
    const char *type;
    size_t tl;
    uint64_t off, length, ulen = 0;

    memset(e, 0, sizeof *e);
    if (!b || !json_object_is_type(b, json_type_object))
      return bfs_error(-EIO, "%s: index blob entry is not an object", name);
    if ((ret = get_id(b, "id", true, name, "index blob", e->id)) < 0 ||
        (ret = get_str(b, "type", true, name, "index blob", &type, &tl)) < 0 ||
        (ret = get_u64(b, "offset", true, INT64_MAX, name, "index blob",
                       &off)) < 0 ||
        (ret = get_u64(b, "length", true, RESTIC_BLOB_MAX, name, "index blob",
                       &length)) < 0 ||
        (ret = get_u64(b, "uncompressed_length", false, RESTIC_BLOB_MAX, name,
                       "index blob", &ulen)) < 0)
      return ret;
    if (strcmp(type, "data") == 0)
      e->type = RESTIC_BLOB_DATA;
    else if (strcmp(type, "tree") == 0)
      e->type = RESTIC_BLOB_TREE;
    else
      return bfs_error(-EIO, "%s: index blob of unknown type \"%s\"", name,
                       type);
    if (length < RESTIC_CRYPTO_OVERHEAD)
      return bfs_error(-EIO, "%s: index blob shorter than its encryption",
                       name);
    e->offset = off;
    e->length = (uint32_t)length;
    e->compressed = ret == 0;
    e->plain_len = e->compressed ? (uint32_t)ulen
                                 : (uint32_t)(length - RESTIC_CRYPTO_OVERHEAD);
    e->pack = (uint32_t)ix->n_packs;
  }
  ix->n_blobs += n;
  ix->n_packs++;
  return 0;
}

int
restic_parse_index(const char *json, size_t len, const char *name,
                   struct restic_index *ix)
{
  CLEANUP_JSON json_object *o = NULL;
  json_object *packs;
  int ret;

  /* restic before 0.8 wrote a bare array of packs */
  json_type t = len && json[0] == '[' ? json_type_array : json_type_object;
  if ((ret = parse_doc(json, len, name, t, &o)) < 0)
    return ret;
  packs = o;
  if (t == json_type_object &&
      (ret = get_field(o, "packs", json_type_array, false, name, "index",
                       &packs)) != 0)
    return ret < 0 ? ret : 0;       /* an index with no packs */
  size_t n = json_object_array_length(packs);
  for (size_t i = 0; i < n; i++)
    if ((ret = index_pack(json_object_array_get_idx(packs, i), name, ix)) < 0)
      return ret;
  return 0;
}

static int
cmp_blob(const void *a, const void *b)
{
  return memcmp(a, b, RESTIC_ID_LEN);
}

void
restic_index_sort(struct restic_index *ix)
{
  if (ix->n_blobs)
    qsort(ix->blobs, ix->n_blobs, sizeof *ix->blobs, cmp_blob);
}

const struct restic_blob *
restic_index_find(const struct restic_index *ix,
                  const uint8_t id[RESTIC_ID_LEN])
{
  size_t lo = 0, hi = ix->n_blobs;    /* first entry with an id >= id */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (memcmp(ix->blobs[mid].id, id, RESTIC_ID_LEN) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < ix->n_blobs && !memcmp(ix->blobs[lo].id, id, RESTIC_ID_LEN))
    return &ix->blobs[lo];
  return NULL;
}

const struct restic_blob *
restic_index_next(const struct restic_index *ix, const struct restic_blob *b)
{
  if (b + 1 < ix->blobs + ix->n_blobs && !memcmp(b[1].id, b->id, RESTIC_ID_LEN))
    return b + 1;
  return NULL;
}

void
restic_index_free(struct restic_index *ix)
{
  free(ix->packs);
  free(ix->blobs);
  memset(ix, 0, sizeof *ix);
}

static int
str_list(json_object *o, const char *key, const char *name, char ***out,
         size_t *n)
{
  json_object *a;
  int ret = get_field(o, key, json_type_array, false, name, "snapshot", &a);
  *out = NULL;
  *n = 0;
  if (ret != 0)
    return ret < 0 ? ret : 0;
  size_t len = json_object_array_length(a);
  char **v = calloc(len + 1, sizeof *v);
  if (!v)
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  *out = v;
  for (size_t i = 0; i < len; i++) {
    json_object *s = json_object_array_get_idx(a, i);
    if (!s || !json_object_is_type(s, json_type_string))
      return bfs_error(-EIO, "%s: snapshot: \"%s\" holds a non-string", name,
                       key);
    if (!(v[i] = strdup(json_object_get_string(s))))
      return bfs_error(-ENOMEM, "%s: out of memory", name);
    (*n)++;
  }
  return 0;
}

int
restic_parse_snapshot(const char *json, size_t len, const char *name,
                      struct restic_snapshot *s)
{
  CLEANUP_JSON json_object *o = NULL;
  const char *time, *host = "", *user = "";
  size_t l;
  int ret;

  memset(s, 0, sizeof *s);
  if ((ret = parse_doc(json, len, name, json_type_object, &o)) < 0 ||
      (ret = get_str(o, "time", true, name, "snapshot", &time, &l)) < 0 ||
      (ret = get_id(o, "tree", true, name, "snapshot", s->tree)) < 0 ||
      (ret = get_str(o, "hostname", false, name, "snapshot", &host, &l)) < 0 ||
      (ret = get_str(o, "username", false, name, "snapshot", &user, &l)) < 0)
    return ret;
  if (restic_parse_time(time, &s->time, &s->time_nsec) < 0)
    return bfs_error(-EIO, "%s: snapshot: bad time \"%s\"", name, time);
  if (!(s->hostname = strdup(host)) || !(s->username = strdup(user))) {
    restic_snapshot_clear(s);
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  }
  if ((ret = str_list(o, "paths", name, &s->paths, &s->n_paths)) < 0 ||
      (ret = str_list(o, "tags", name, &s->tags, &s->n_tags)) < 0) {
    restic_snapshot_clear(s);
    return ret;
  }
  return 0;
}

void
restic_snapshot_clear(struct restic_snapshot *s)
{
  free(s->hostname);
  free(s->username);
  for (size_t i = 0; s->paths && s->paths[i]; i++)
    free(s->paths[i]);
  free(s->paths);
  for (size_t i = 0; s->tags && s->tags[i]; i++)
    free(s->tags[i]);
  free(s->tags);
  memset(s, 0, sizeof *s);
}

/* Go's os.FileMode -> POSIX st_mode */
static mode_t
go_mode(uint64_t m, enum restic_node_type t, const char *type)
{
  mode_t r = (mode_t)(m & 0777);
  if (m & (1u << 23))
    r |= S_ISUID;
  if (m & (1u << 22))
    r |= S_ISGID;
  if (m & (1u << 20))
    r |= S_ISVTX;
  switch (t) {
  case RESTIC_NODE_FILE: return r | S_IFREG;
  case RESTIC_NODE_DIR: return r | S_IFDIR;
  case RESTIC_NODE_SYMLINK: return r | S_IFLNK;
  case RESTIC_NODE_OTHER: break;
  }
  if (strcmp(type, "dev") == 0)
    return r | S_IFBLK;
  if (strcmp(type, "chardev") == 0)
    return r | S_IFCHR;
  if (strcmp(type, "fifo") == 0)
    return r | S_IFIFO;
  return r | S_IFSOCK;
}

static int
tree_node(json_object *no, const char *name, struct restic_tnode *n)
{
  const char *s, *type;
  size_t l;
  uint64_t v;
  json_object *content;
  int ret;

  if (!json_object_is_type(no, json_type_object))
    return bfs_error(-EIO, "%s: tree node is not an object", name);
  if ((ret = get_str(no, "name", true, name, "tree node", &s, &l)) < 0 ||
      (ret = get_str(no, "type", true, name, "tree node", &type, &l)) < 0)
    return ret;
  if (!*s || l > RESTIC_NAME_MAX || strchr(s, '/') || strcmp(s, ".") == 0 ||
      strcmp(s, "..") == 0)
    return bfs_error(-EIO, "%s: tree node with a bad name", name);
  if (!(n->name = strdup(s)))
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  if (strcmp(type, "file") == 0)
    n->type = RESTIC_NODE_FILE;
  else if (strcmp(type, "dir") == 0)
    n->type = RESTIC_NODE_DIR;
  else if (strcmp(type, "symlink") == 0)
    n->type = RESTIC_NODE_SYMLINK;
  else if (!strcmp(type, "dev") || !strcmp(type, "chardev") ||
           !strcmp(type, "fifo") || !strcmp(type, "socket"))
    n->type = RESTIC_NODE_OTHER;
  else
    return bfs_error(-EIO, "%s: tree node \"%s\" of unknown type \"%s\"", name,
                     n->name, type);

  v = 0;
  if ((ret = get_u64(no, "mode", false, UINT32_MAX, name, "tree node", &v)) < 0)
    return ret;
  n->mode = go_mode(v, n->type, type);
  if ((ret = get_u64(no, "uid", false, UINT32_MAX, name, "tree node", &v)) < 0)
    return ret;
  n->uid = ret == 0 ? (uint32_t)v : 0;
  if ((ret = get_u64(no, "gid", false, UINT32_MAX, name, "tree node", &v)) < 0)
    return ret;
  n->gid = ret == 0 ? (uint32_t)v : 0;
  if ((ret = get_u64(no, "size", false, INT64_MAX, name, "tree node",
                     &n->size)) < 0)
    return ret;
  if ((ret = get_str(no, "mtime", false, name, "tree node", &s, &l)) < 0)
    return ret;
  if (ret == 0 && restic_parse_time(s, &n->mtime, &n->mtime_nsec) < 0)
    return bfs_error(-EIO, "%s: tree node \"%s\": bad mtime", name, n->name);
  if (n->type == RESTIC_NODE_SYMLINK) {
    if ((ret = get_str(no, "linktarget", false, name, "tree node", &s,
                       &l)) < 0)
      return ret;
    if (!(n->linktarget = strdup(ret == 0 ? s : "")))
      return bfs_error(-ENOMEM, "%s: out of memory", name);
  }
  if (n->type == RESTIC_NODE_DIR) {
    if ((ret = get_id(no, "subtree", true, name, "directory node",
                      n->subtree)) < 0)
      return ret;
    n->has_subtree = true;
  }
  if (n->type != RESTIC_NODE_FILE)
    return 0;
  if ((ret = get_field(no, "content", json_type_array, false, name,
                       "file node", &content)) < 0)
    return ret;
  if (ret == 0) {
    size_t cn = json_object_array_length(content);
    if (cn && !(n->content = calloc(cn, sizeof *n->content)))
      return bfs_error(-ENOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < cn; i++) {
      json_object *c = json_object_array_get_idx(content, i);
      if (!c || !json_object_is_type(c, json_type_string) ||
          restic_hex_id(json_object_get_string(c), n->content[i]) < 0)
        return bfs_error(-EIO, "%s: file node \"%s\": bad content id", name,
                         n->name);
    }
    n->n_content = cn;
  }
  return 0;
}

int
restic_parse_tree(const char *json, size_t len, const char *name,
                  struct restic_tree *t)
{
  CLEANUP_JSON json_object *o = NULL;
  json_object *nodes;
  int ret;

  memset(t, 0, sizeof *t);
  if ((ret = parse_doc(json, len, name, json_type_object, &o)) < 0 ||
      (ret = get_field(o, "nodes", json_type_array, false, name, "tree",
                       &nodes)) < 0)
    return ret;
  if (ret == 1)
    return 0;
  size_t n = json_object_array_length(nodes);
  if (n && !(t->nodes = calloc(n, sizeof *t->nodes)))
    return bfs_error(-ENOMEM, "%s: out of memory", name);
  for (size_t i = 0; i < n; i++) {
    t->n = i + 1;
    if ((ret = tree_node(json_object_array_get_idx(nodes, i), name,
                         &t->nodes[i])) < 0) {
      restic_tree_free(t);
      return ret;
    }
  }
  return 0;
}

void
restic_tree_free(struct restic_tree *t)
{
  for (size_t i = 0; i < t->n; i++) {
    free(t->nodes[i].name);
    free(t->nodes[i].linktarget);
    free(t->nodes[i].content);
  }
  free(t->nodes);
  memset(t, 0, sizeof *t);
}
