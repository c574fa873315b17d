/* layout-generic.c — the generic layout: <vm>/<backup-dir>/<disk>.{qcow2,img,raw}
 *
 * The backup directory's name is the point in time when it parses as one of
 * the common timestamp forms (layout_parse_time); otherwise the newest mtime
 * of the disk images inside it is.  The disk is named after the file (its
 * name without the extension).  The extension is the format: .qcow2 is
 * qcow2 (refused without the magic), .raw and .img are raw whatever their
 * first bytes say: a guest writes those bytes, and a forged qcow2 header in
 * them must not name another VM's disk as a backing file.
 *
 * The parsers take (buffer, length) rather than C strings so the fuzzer can
 * feed them arbitrary bytes; they never read past len.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog-int.h"

static bool
is_digit(char c)
{
  return c >= '0' && c <= '9';
}

static unsigned
days_in_month(unsigned y, unsigned m)
{
  static const unsigned dim[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
    return 29;
  return dim[m - 1];
}

/* Match s against pat: Y M D h m s are digits going into the fields, any
 * other character must match itself.  Returns characters consumed or 0. */
static size_t
match(const char *pat, const char *s, size_t len, unsigned f[6])
{
  size_t i = 0;
  memset(f, 0, 6 * sizeof f[0]);
  for (const char *p = pat; *p; p++, i++) {
    if (i >= len) return 0;
    const char *idx = strchr("YMDhms", *p);
    if (idx) {
      if (!is_digit(s[i])) return 0;
      f[idx - "YMDhms"] = f[idx - "YMDhms"] * 10 + (unsigned)(s[i] - '0');
    }
    else if (s[i] != *p)
      return 0;
  }
  return i;
}

static int
fields_to_time(const unsigned f[6], int64_t offset, int64_t *t)
{
  if (f[0] < 1970 || f[0] > 9999 || f[1] < 1 || f[1] > 12 || f[2] < 1 ||
      f[2] > days_in_month(f[0], f[1]) || f[3] > 23 || f[4] > 59 || f[5] > 59)
    return -EINVAL;
  *t = cat_days_from_civil(f[0], f[1], f[2]) * 86400 + f[3] * 3600 + f[4] * 60 +
       f[5] - offset;
  return 0;
}

/* after "...T03:00:00": optional .fraction, then Z, +hh:mm, +hhmm or nothing */
static int
iso_tail(const char *s, size_t len, int64_t *offset)
{
  size_t i = 0;
  *offset = 0;
  if (i < len && (s[i] == '.' || s[i] == ',')) {
    i++;
    size_t start = i;
    while (i < len && is_digit(s[i])) i++;
    if (i == start) return -EINVAL;
  }
  if (i == len) return 0;
  if (s[i] == 'Z' && i + 1 == len) return 0;
  if (s[i] != '+' && s[i] != '-') return -EINVAL;
  int sign = s[i] == '-' ? -1 : 1;
  i++;
  unsigned hh, mm;
  if (len - i == 5 && is_digit(s[i]) && is_digit(s[i + 1]) && s[i + 2] == ':' &&
      is_digit(s[i + 3]) && is_digit(s[i + 4])) {
    hh = (unsigned)(s[i] - '0') * 10 + (unsigned)(s[i + 1] - '0');
    mm = (unsigned)(s[i + 3] - '0') * 10 + (unsigned)(s[i + 4] - '0');
  }
  else if (len - i == 4 && is_digit(s[i]) && is_digit(s[i + 1]) &&
           is_digit(s[i + 2]) && is_digit(s[i + 3])) {
    hh = (unsigned)(s[i] - '0') * 10 + (unsigned)(s[i + 1] - '0');
    mm = (unsigned)(s[i + 2] - '0') * 10 + (unsigned)(s[i + 3] - '0');
  }
  else
    return -EINVAL;
  if (hh > 23 || mm > 59) return -EINVAL;
  *offset = sign * (int64_t)(hh * 3600 + mm * 60);
  return 0;
}

int
layout_parse_time(const char *s, size_t len, int64_t *t)
{
  unsigned f[6];
  size_t n;
  int64_t offset;

  /* ISO 8601 extended: 2026-10-01T03:00:00[.fff][Z|+hh:mm|+hhmm] */
  if ((n = match("YYYY-MM-DDThh:mm:ss", s, len, f)) ||
      (n = match("YYYY-MM-DD hh:mm:ss", s, len, f))) {
    if (iso_tail(s + n, len - n, &offset) < 0) return -EINVAL;
    return fields_to_time(f, offset, t);
  }
  /* basic and our own names, optional Z: 20261001T030000Z, 2026-10-01T030000Z */
  if ((n = match("YYYYMMDDThhmmss", s, len, f)) ||
      (n = match("YYYY-MM-DDThhmmss", s, len, f))) {
    if (n == len || (n + 1 == len && s[n] == 'Z'))
      return fields_to_time(f, 0, t);
    return -EINVAL;
  }
  if (((n = match("YYYY.MM.DD.hh.mm.ss", s, len, f)) ||
       (n = match("YYYY-MM-DD_hh-mm-ss", s, len, f))) && n == len)
    return fields_to_time(f, 0, t);

  /* epoch seconds: 9 to 11 digits (1973 .. 5138) */
  if (len >= 9 && len <= 11) {
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
      if (!is_digit(s[i])) return -EINVAL;
      v = v * 10 + (s[i] - '0');
    }
    *t = v;
    return 0;
  }
  return -EINVAL;
}

size_t
generic_disk_name(const char *s, size_t len, const char **format)
{
  static const struct { const char *ext; const char *fmt; } exts[] = {
    { ".qcow2", "qcow2" }, { ".img", "raw" }, { ".raw", "raw" },
  };
  if (len == 0 || s[0] == '.' || memchr(s, '\0', len) || memchr(s, '/', len))
    return 0;
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
    size_t el = strlen(exts[i].ext);
    if (len > el && !memcmp(s + len - el, exts[i].ext, el)) {
      if (format) *format = exts[i].fmt;
      return len - el;
    }
  }
  return 0;
}

const char *
layout_file_format(const char *rel, size_t len)
{
  const char *base = rel, *fmt = NULL;
  for (size_t i = 0; i < len; i++)
    if (rel[i] == '/') base = rel + i + 1;
  size_t blen = len - (size_t)(base - rel);
  if (blen && generic_disk_name(base, blen, &fmt))
    return fmt;
  return NULL;
}

int
layout_backing_format(const char *recorded, const char *rel, size_t len,
                      const char **fmt)
{
  const char *rule = layout_file_format(rel, len);
  *fmt = NULL;
  if (recorded && strcmp(recorded, "raw") && strcmp(recorded, "qcow2"))
    return -ENOTSUP;
  if (recorded && rule && strcmp(recorded, rule))
    return -EMEDIUMTYPE;
  *fmt = recorded ? recorded : rule;
  return 0;
}

static int
cmp_disk(const void *a, const void *b)
{
  return strcmp(((const struct model_disk *)a)->name,
                ((const struct model_disk *)b)->name);
}

/* <vm>/<backup-dir>/ with <disk>.{qcow2,img,raw} files */
static bool
generic_dir(struct scan *s, const struct scan_dir *sd)
{
  if (sd->depth != 2 || !sd->nfiles) return false;
  const char *vm = sd->parts[0], *bdir = sd->parts[1], *reldir = sd->rel;
  char **names = sd->files;
  size_t n = sd->nfiles;
  struct model_backup *b = NULL;
  int64_t t = 0, newest = INT64_MIN;
  bool dated = layout_parse_time(bdir, strlen(bdir), &t) == 0;

  for (size_t i = 0; i < n; i++) {
    const char *fmt = NULL;
    size_t stem = generic_disk_name(names[i], strlen(names[i]), &fmt);
    if (!stem) continue;
    char *rel = cat_xasprintf("%s/%s", reldir, names[i]);
    /* the extension decides: a .raw/.img is raw whatever its bytes say */
    struct scan_file *f = scan_file_get(s, rel, FILE_IMAGE, fmt);
    if (f) {
      if (!b)
        b = scan_add_backup(s, vm, t, "generic", reldir);
      char *dname = cat_xstrndup(names[i], stem);
      scan_add_disk(b, dname, rel, NULL, 0);
      free(dname);
      if (f->mtime_ns / 1000000000 > newest)
        newest = f->mtime_ns / 1000000000;
    }
    free(rel);
  }
  if (!b) return false;
  if (!dated) b->time = newest;
  qsort(b->disks, b->ndisks, sizeof *b->disks, cmp_disk);
  return true;
}

const struct cat_layout layout_generic = {
  .name = "generic",
  .describe = "generic (<vm>/<backup-dir>/<disk>.qcow2|.img|.raw)",
  .dir = generic_dir,
};
