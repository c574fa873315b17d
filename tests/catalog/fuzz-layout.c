/* fuzz-layout.c — libFuzzer target for the catalog's parsers of untrusted
 * repository content: names (timestamps, NAS stamps and disk names,
 * generic disk names, KBOSS image names), domain XML, domblklist text,
 * listBackups JSON and backing-name resolution, and the format decisions
 * (which name is raw, qcow2 or probed; a backing layer's recorded format
 * against the name rule; a raw decision opening any bytes as raw).
 *
 * The first input byte selects the parser (0xfc a TZif zone, 0xfd-0xff
 * a POSIX TZ string, 0xf0-0xfb the format decisions, the others as
 * before), the rest is its input.  Every
 * parser takes (buffer, length), so no NUL is appended unless the parser
 * needs a C string.  Built as a libFuzzer binary with -Dfuzz=true; the
 * regression driver (fuzz-regress.c) replays the committed corpus in
 * `meson test --suite fuzz-regress`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog-int.h"
#include "catalog/tz.h"
#include "common/error.h"
#include "common/timefmt.h"
#include "blk/blk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
fake_exists(void *opaque, const char *rel)
{
  /* pretend files whose path has an even length exist */
  (void)opaque;
  return strlen(rel) % 2 == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1) return 0;
  const char *s = (const char *)data + 1;
  size_t len = size - 1;
  int64_t t;
  size_t off, vl;

  unsigned sel = data[0] < 0xf0 ? data[0] % 9u
               : data[0] >= 0xfc ? 11u : 9u + (data[0] & 1u);
  switch (sel) {
  case 0:
    if (layout_parse_time(s, len, &t) == 0) {
      char buf[32];
      cat_time_name(t, buf);
      bfs_time_iso(t, buf);
    }
    break;
  case 1:
    (void)nas_parse_stamp(s, len, &t);
    break;
  case 2:
    if (nas_parse_disk_name(s, len, &off, &vl) == NAS_ROOT ||
        nas_parse_disk_name(s, len, &off, &vl) == NAS_DATADISK)
      if (off + vl > len || vl == 0) abort();
    break;
  case 3: {
    const char *fmt;
    size_t n = generic_disk_name(s, len, &fmt);
    if (n > len) abort();
    (void)kboss_is_image_name(s, len);
    break;
  }
  case 4:
  case 5: {
    struct domain_info d, d2;
    int r = data[0] % 9 == 4 ? nas_parse_domain_xml(s, len, &d)
                             : nas_parse_domblklist(s, len, &d);
    if (r == 0) {
      char *js = domain_info_to_json(&d);
      if (domain_info_from_json(js, &d2) != 0 || d2.ndisks != d.ndisks)
        abort();                 /* the cache form must round-trip */
      for (size_t i = 0; i < d.ndisks; i++)
        (void)domain_target_for(&d, d.disks[i].target);
      (void)domain_target_for(&d, "");
      domain_info_free(&d2);
      free(js);
    }
    domain_info_free(&d);
    break;
  }
  case 6: {
    struct lb_backup *b;
    size_t n;
    if (kboss_parse_listbackups(s, len, &b, &n) == 0)
      kboss_listbackups_free(b, n);
    break;
  }
  case 7:
  case 8: {
    /* "dir\0name": lexical join, then resolution with a fake file set */
    char *copy = cat_xcalloc(len + 2, 1);     /* two NULs at the end */
    memcpy(copy, s, len);
    const char *name = copy + strlen(copy) + 1;
    char *j = resolve_join(copy, name);
    if (j && (j[0] == '/' || strstr(j, "/../") || !strncmp(j, "../", 3)))
      abort();                   /* never escapes */
    free(j);
    if (name[0]) {
      char *out;
      const char *roots[] = { "/repo", "/store2" };
      if (resolve_backing_rel(roots, 2, copy, name, fake_exists, NULL,
                              &out) == 0) {
        const char *in;
        if (out[0] == '/' || !strcmp(out, "..") || !strncmp(out, "../", 3) ||
            resolve_root_of(2, out, &in) < 0 || in[0] == '.')
          abort();               /* a locator of one of the roots */
        free(out);
      }
    }
    free(copy);
    break;
  }
  case 11: {
    /* TZif bytes (0xfc), or a POSIX TZ string (0xfd..0xff) */
    struct cat_tz *tz;
    int r = data[0] == 0xfc ? cat_tz_parse(s, len, "fuzz", &tz)
                            : cat_tz_posix(s, len, &tz);
    if (r == 0) {
      static const int64_t at[] = { INT64_C(-5000000000), 0, 1772937000,
                                    1793496600, INT64_C(4102444800) };
      for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        int32_t o = cat_tz_offset(tz, at[i]), used;
        if (o < -26 * 3600 || o > 26 * 3600) abort();
        (void)cat_tz_to_utc(tz, at[i] + o, &used);
      }
      cat_tz_free(tz);
    }
    break;
  }
  case 9: {
    /* "path\0recorded\0bytes": the name rule, the backing decision, and
     * the file opened as decided */
    char *copy = cat_xcalloc(len + 3, 1);
    memcpy(copy, s, len);
    const char *rec = copy + strlen(copy) + 1;
    size_t plen = strlen(copy), rlen = strlen(rec);
    size_t used = plen + 1 + rlen + 1;
    const char *rule = layout_file_format(copy, plen), *fmt;
    const char *base = strrchr(copy, '/') ? strrchr(copy, '/') + 1 : copy;
    size_t bl = strlen(base);
    bool says_raw = bl > 4 && base[0] != '.' &&
                    (!strcmp(base + bl - 4, ".raw") ||
                     !strcmp(base + bl - 4, ".img"));
    if (says_raw && (!rule || strcmp(rule, "raw")))
      abort();                   /* a raw-named file is raw, always */
    int r = layout_backing_format(rec[0] ? rec : NULL, copy, plen, &fmt);
    if (r == 0 && says_raw && strcmp(fmt, "raw"))
      abort();                   /* never a qcow2 reading of a raw name */
    if (r == 0 && !rec[0] && fmt != rule)
      abort();
    if (r == 0 && rec[0] && strcmp(fmt, rec))
      abort();
    if (r == 0 && fmt && used <= len) {
      struct blk_io *io;
      struct bfs_blk *img;
      size_t blen = len - used;
      bool raw = !strcmp(fmt, "raw");
      if (blk_io_memory(s + used, blen, "fuzz", &io) == 0 &&
          blk_driver(fmt)(io, NULL, NULL, &img) == 0) {
        const struct bfs_blk_info *in = bfs_blk_info(img);
        if (strcmp(in->format, fmt))
          abort();               /* the decision stands, bytes or not */
        if (raw &&
            (in->backing_file || in->virtual_size != ((blen + 511) & ~511ul)))
          abort();               /* raw bytes never name a backing file */
        bfs_blk_close(img);
      }
      bfs_clear_error();
    }
    free(copy);
    break;
  }
  case 10: {
    /* the generic name parser and the name rule agree */
    const char *fmt = NULL;
    size_t n = generic_disk_name(s, len, &fmt);
    if (n && memchr(s, '/', len)) abort();
    char *copy = cat_xstrndup(s, len);
    const char *rule = layout_file_format(copy, strlen(copy));
    if (n && strlen(copy) == len && (!fmt || !rule || strcmp(fmt, rule)))
      abort();
    free(copy);
    break;
  }
  }
  return 0;
}
