/* tz.c — a small thread-safe TZif reader (see tz.h).
 *
 * A zone is the list of its transitions (UTC instant, offset from then on),
 * the offset before the first one, and the POSIX rule after the last one.
 * Everything is read once and never changes: no global state, no tzset().
 * The TZif parser takes (buffer, length) and checks every count against
 * the length before reading (fuzz-layout.c feeds it).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog/catalog-int.h"
#include "catalog/tz.h"
#include "common/error.h"

#define TZ_DIR "/usr/share/zoneinfo"
#define TZ_MAX_FILE (1u << 20)
#define TZ_MAX_TIMES 100000u
#define TZ_MAX_TYPES 256u

struct tz_date {                /* a POSIX TZ rule date and time */
  char kind;                    /* 'J' Julian 1..365, 'D' 0..365, 'M' */
  int n, m, w, d;
  int32_t secs;                 /* local time of the change */
};

struct tz_rule {
  bool valid, has_dst;
  int32_t std, dst;             /* east of UTC */
  struct tz_date start, end;
};

struct cat_tz {
  char *name;
  size_t n;
  int64_t *at;                  /* transition instants, ascending */
  int32_t *off;                 /* offset from at[i] on */
  int32_t off0;                 /* before at[0] (local time type 0) */
  struct tz_rule rule;          /* after at[n-1] (or always when n == 0) */
};

/* ---- calendar ---- */

int64_t
cat_days_from_civil(int64_t y, unsigned m, unsigned d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static int64_t
year_of_days(int64_t z)
{
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  return (int64_t)yoe + era * 400 + (mp >= 10);
}

static bool
is_leap(int64_t y)
{
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int64_t y, int m)
{
  static const int md[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  return md[m - 1] + (m == 2 && is_leap(y));
}

static int64_t
floor_div(int64_t a, int64_t b)
{
  return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* the day (since the epoch) a rule date falls on in year y */
static int64_t
rule_day(int64_t y, const struct tz_date *r)
{
  int64_t jan1 = cat_days_from_civil(y, 1, 1);
  if (r->kind == 'J')
    return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
  if (r->kind == 'D')
    return jan1 + r->n;
  int64_t first = cat_days_from_civil(y, (unsigned)r->m, 1);
  int wd = (int)((first % 7 + 7 + 4) % 7);       /* 1970-01-01: Thursday */
  int64_t day = first + (r->d - wd + 7) % 7 + (int64_t)(r->w - 1) * 7;
  while (day >= first + month_days(y, r->m))
    day -= 7;
  return day;
}

static int32_t
rule_offset(const struct tz_rule *r, int64_t t)
{
  if (!r->has_dst) return r->std;
  int64_t y = year_of_days(floor_div(t + r->std, 86400));
  int64_t start = rule_day(y, &r->start) * 86400 + r->start.secs - r->std;
  int64_t end = rule_day(y, &r->end) * 86400 + r->end.secs - r->dst;
  bool dst = start < end ? t >= start && t < end : !(t >= end && t < start);
  return dst ? r->dst : r->std;
}

/* ---- POSIX TZ strings ---- */

struct rd { const char *s; size_t len, i; };

static bool
at_end(const struct rd *p) { return p->i >= p->len; }

static char
peek(const struct rd *p) { return at_end(p) ? '\0' : p->s[p->i]; }

static bool
is_digit(char c) { return c >= '0' && c <= '9'; }

static bool
is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static bool
read_num(struct rd *p, int max_digits, int max, int *out)
{
  int v = 0, nd = 0;
  while (nd < max_digits && is_digit(peek(p))) {
    v = v * 10 + (p->s[p->i++] - '0');
    nd++;
  }
  if (!nd || v > max) return false;
  *out = v;
  return true;
}

static bool
read_name(struct rd *p)
{
  size_t start = p->i;
  if (peek(p) == '<') {
    p->i++;
    while (!at_end(p) && peek(p) != '>') p->i++;
    if (peek(p) != '>' || p->i == start + 1) return false;
    p->i++;
    return true;
  }
  while (is_alpha(peek(p))) p->i++;
  return p->i > start;
}

/* [+-]hh[:mm[:ss]] with hours up to max_h: seconds */
static bool
read_hms(struct rd *p, int max_h, int32_t *out)
{
  int sign = 1, h, m = 0, s = 0;
  if (peek(p) == '+' || peek(p) == '-')
    sign = p->s[p->i++] == '-' ? -1 : 1;
  if (!read_num(p, 3, max_h, &h)) return false;
  if (peek(p) == ':') {
    p->i++;
    if (!read_num(p, 2, 59, &m)) return false;
    if (peek(p) == ':') {
      p->i++;
      if (!read_num(p, 2, 59, &s)) return false;
    }
  }
  *out = sign * (h * 3600 + m * 60 + s);
  return true;
}

static bool
read_date(struct rd *p, struct tz_date *d)
{
  memset(d, 0, sizeof *d);
  if (peek(p) == 'M') {
    p->i++;
    d->kind = 'M';
    if (!read_num(p, 2, 12, &d->m) || d->m < 1 || peek(p) != '.') return false;
    p->i++;
    if (!read_num(p, 1, 5, &d->w) || d->w < 1 || peek(p) != '.') return false;
    p->i++;
    if (!read_num(p, 1, 6, &d->d)) return false;
  }
  else if (peek(p) == 'J') {
    p->i++;
    d->kind = 'J';
    if (!read_num(p, 3, 365, &d->n) || d->n < 1) return false;
  }
  else {
    d->kind = 'D';
    if (!read_num(p, 3, 365, &d->n)) return false;
  }
  d->secs = 7200;
  if (peek(p) == '/') {
    p->i++;
    if (!read_hms(p, 167, &d->secs)) return false;  /* RFC 8536 3.3.1 */
  }
  return true;
}

static int
parse_rule(const char *s, size_t len, struct tz_rule *r)
{
  struct rd p = { s, len, 0 };
  int32_t off;
  memset(r, 0, sizeof *r);
  if (!read_name(&p) || !read_hms(&p, 24, &off))
    return -EINVAL;
  r->std = -off;
  if (!at_end(&p)) {
    if (!read_name(&p)) return -EINVAL;
    r->has_dst = true;
    r->dst = r->std + 3600;
    if (!at_end(&p) && peek(&p) != ',') {
      if (!read_hms(&p, 24, &off)) return -EINVAL;
      r->dst = -off;
    }
    if (at_end(&p)) {             /* POSIX's default: US rules */
      r->start = (struct tz_date){ 'M', 0, 3, 2, 0, 7200 };
      r->end = (struct tz_date){ 'M', 0, 11, 1, 0, 7200 };
    }
    else {
      if (peek(&p) != ',') return -EINVAL;
      p.i++;
      if (!read_date(&p, &r->start) || peek(&p) != ',') return -EINVAL;
      p.i++;
      if (!read_date(&p, &r->end)) return -EINVAL;
    }
  }
  if (!at_end(&p)) return -EINVAL;
  r->valid = true;
  return 0;
}

/* ---- TZif ---- */

static uint32_t
be32(const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
  return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_hdr {
  char version;
  uint32_t isut, isstd, leap, times, types, chars;
};

static int
read_hdr(const unsigned char *b, size_t len, struct tzif_hdr *h)
{
  if (len < 44 || memcmp(b, "TZif", 4))
    return bfs_error(-EINVAL, "not a TZif file (no TZif magic)");
  h->version = (char)b[4];
  h->isut = be32(b + 20); h->isstd = be32(b + 24); h->leap = be32(b + 28);
  h->times = be32(b + 32); h->types = be32(b + 36); h->chars = be32(b + 40);
  if (h->times > TZ_MAX_TIMES || h->types == 0 || h->types > TZ_MAX_TYPES ||
      h->leap > TZ_MAX_TIMES || h->chars > 4096 ||
      (h->isut && h->isut != h->types) || (h->isstd && h->isstd != h->types))
    return bfs_error(-EINVAL, "TZif header counts out of range");
  return 0;
}

static uint64_t
block_len(const struct tzif_hdr *h, unsigned tsize)
{
  return (uint64_t)h->times * (tsize + 1) + (uint64_t)h->types * 6 +
         h->chars + (uint64_t)h->leap * (tsize + 4) + h->isstd + h->isut;
}

static int
load_block(struct cat_tz *tz, const unsigned char *b, size_t len,
           const struct tzif_hdr *h, unsigned tsize)
{
  if (block_len(h, tsize) > len)
    return bfs_error(-EINVAL, "TZif data block truncated");
  const unsigned char *times = b, *idx = b + (size_t)h->times * tsize;
  const unsigned char *types = idx + h->times;
  int32_t toff[TZ_MAX_TYPES];
  for (uint32_t i = 0; i < h->types; i++) {
    uint32_t u = be32(types + 6 * i);
    if (u == 0x80000000u || types[6 * i + 4] > 1 ||
        types[6 * i + 5] >= h->chars)
      return bfs_error(-EINVAL, "TZif local time type %u is invalid", i);
    int32_t o = (int32_t)u;
    if (o < -25 * 3600 || o > 26 * 3600)
      return bfs_error(-EINVAL, "TZif offset %d out of range", (int)o);
    toff[i] = o;
  }
  tz->at = cat_xcalloc(h->times ? h->times : 1, sizeof *tz->at);
  tz->off = cat_xcalloc(h->times ? h->times : 1, sizeof *tz->off);
  for (uint32_t i = 0; i < h->times; i++) {
    int64_t t = tsize == 8 ? be64(times + 8 * i)
                           : (int64_t)(int32_t)be32(times + 4 * i);
    if (i && t <= tz->at[i - 1])
      return bfs_error(-EINVAL, "TZif transitions not in ascending order");
    if (idx[i] >= h->types)
      return bfs_error(-EINVAL, "TZif transition %u names no type", i);
    tz->at[i] = t;
    tz->off[i] = toff[idx[i]];
  }
  tz->n = h->times;
  tz->off0 = toff[0];
  return 0;
}

static void
tz_clear(struct cat_tz *tz)
{
  free(tz->name);
  free(tz->at);
  free(tz->off);
}

int
cat_tz_parse(const void *buf, size_t len, const char *name,
             struct cat_tz **out)
{
  const unsigned char *b = buf;
  struct tzif_hdr h;
  struct cat_tz tz = { 0 };
  int r;

  if ((r = read_hdr(b, len, &h)) < 0) return r;
  size_t pos = 44;
  if (h.version >= '2') {             /* skip v1, read the 64-bit block */
    uint64_t v1 = block_len(&h, 4);
    if (v1 > len - pos)
      return bfs_error(-EINVAL, "TZif v1 data block truncated");
    pos += (size_t)v1;
    if ((r = read_hdr(b + pos, len - pos, &h)) < 0) return r;
    pos += 44;
    if ((r = load_block(&tz, b + pos, len - pos, &h, 8)) < 0) goto fail;
    pos += (size_t)block_len(&h, 8);
    /* footer: \n<POSIX TZ string>\n, empty when there is no rule */
    if (pos >= len || b[pos] != '\n') {
      r = bfs_error(-EINVAL, "TZif footer missing");
      goto fail;
    }
    const unsigned char *nl = memchr(b + pos + 1, '\n', len - pos - 1);
    if (!nl) {
      r = bfs_error(-EINVAL, "TZif footer not terminated");
      goto fail;
    }
    size_t flen = (size_t)(nl - (b + pos + 1));
    if (flen && parse_rule((const char *)b + pos + 1, flen, &tz.rule) < 0) {
      r = bfs_error(-EINVAL, "TZif footer '%.*s' is no POSIX TZ rule",
                    (int)(flen > 64 ? 64 : flen), b + pos + 1);
      goto fail;
    }
  }
  else if ((r = load_block(&tz, b + pos, len - pos, &h, 4)) < 0)
    goto fail;
  tz.name = cat_xstrdup(name ? name : "localtime");
  *out = cat_xmalloc(sizeof **out);
  **out = tz;
  return 0;
fail:
  tz_clear(&tz);
  return r;
}

int
cat_tz_posix(const char *s, size_t len, struct cat_tz **out)
{
  struct tz_rule rule;
  if (parse_rule(s, len, &rule) < 0)
    return bfs_error(-EINVAL, "'%.*s' is no POSIX TZ string",
                     (int)(len > 64 ? 64 : len), s);
  struct cat_tz *tz = cat_xcalloc(1, sizeof *tz);
  tz->rule = rule;
  tz->off0 = rule.std;
  tz->name = cat_xstrndup(s, len);
  *out = tz;
  return 0;
}

void
cat_tz_free(struct cat_tz *tz)
{
  if (!tz) return;
  tz_clear(tz);
  free(tz);
}

const char *
cat_tz_name(const struct cat_tz *tz)
{
  return tz->name;
}

int32_t
cat_tz_offset(const struct cat_tz *tz, int64_t t)
{
  if (tz->n == 0 || t >= tz->at[tz->n - 1]) {
    if (tz->rule.valid) return rule_offset(&tz->rule, t);
    return tz->n ? tz->off[tz->n - 1] : tz->off0;
  }
  if (t < tz->at[0]) return tz->off0;
  size_t lo = 0, hi = tz->n - 1;          /* at[lo] <= t < at[hi] */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (tz->at[mid] <= t) lo = mid; else hi = mid;
  }
  return tz->off[lo];
}

int64_t
cat_tz_to_utc(const struct cat_tz *tz, int64_t local, int32_t *offset)
{
  /* the offsets in force a day before and a day after: zones change at
   * most once a day, so the instant is local minus one of them */
  int32_t before = cat_tz_offset(tz, local - 86400 - 26 * 3600);
  int32_t after = cat_tz_offset(tz, local + 86400 + 26 * 3600);
  int64_t tb = local - before, ta = local - after;
  bool vb = cat_tz_offset(tz, tb) == before;
  bool va = cat_tz_offset(tz, ta) == after;
  int32_t o = before;                     /* a skipped time: before's */
  if (vb && va) o = tb <= ta ? before : after;   /* repeated: the first */
  else if (va) o = after;
  if (offset) *offset = o;
  return local - o;
}

/* ---- loading ---- */

static bool
valid_zone_name(const char *z)
{
  if (!z[0] || z[0] == '/' || strlen(z) > 255) return false;
  for (const char *p = z; *p; p++)
    if (!is_alpha(*p) && !is_digit(*p) && !strchr("/_+-.", *p))
      return false;
  for (const char *p = z; p; p = strchr(p, '/')) {
    if (*p == '/') p++;
    if (p[0] == '.' ) return false;       /* ., .. and hidden components */
  }
  return true;
}

static int
load_file(const char *path, const char *name, struct cat_tz **out)
{
  char *real = realpath(path, NULL), *buf;
  size_t len;
  if (!real)
    return bfs_error(-errno, "%s: %s", path, strerror(errno));
  int r = cat_read_file(AT_FDCWD, real, TZ_MAX_FILE, &buf, &len);
  free(real);
  if (r < 0) return r;
  r = cat_tz_parse(buf, len, name, out);
  free(buf);
  if (r < 0)
    return bfs_error(r, "%s: %s", path, bfs_last_error());
  return 0;
}

static int
load_utc(const char *name, struct cat_tz **out)
{
  struct cat_tz *tz = cat_xcalloc(1, sizeof *tz);
  tz->name = cat_xstrdup(name);
  *out = tz;
  return 0;
}

static int
load_named(const char *zone, struct cat_tz **out)
{
  if (!strcmp(zone, "UTC") || !strcmp(zone, "Etc/UTC"))
    return load_utc(zone, out);
  if (valid_zone_name(zone)) {
    char *path = cat_xasprintf("%s/%s", TZ_DIR, zone);
    bool there = access(path, F_OK) == 0;
    int r = there ? load_file(path, zone, out) : 0;
    free(path);
    if (there) return r;
  }
  /* not a zone file: a POSIX TZ string ("EST5EDT", "<+03>-3") */
  if (cat_tz_posix(zone, strlen(zone), out) == 0)
    return 0;
  return bfs_error(-ENOENT, "unknown time zone '%s' (no %s/%s, no POSIX TZ "
                   "string)", zone, TZ_DIR, zone);
}

int
cat_tz_load(const char *zone, struct cat_tz **out)
{
  if (zone && zone[0])
    return load_named(zone, out);
  const char *env = getenv("TZ");
  if (env) {
    if (env[0] == ':') env++;
    return env[0] ? load_named(env, out) : load_utc("UTC", out);
  }
  if (access("/etc/localtime", F_OK) < 0)
    return load_utc("UTC", out);          /* glibc's default too */
  char link[PATH_MAX];
  ssize_t n = readlink("/etc/localtime", link, sizeof link - 1);
  const char *name = "localtime", *z;
  if (n > 0) {
    link[n] = '\0';
    if ((z = strstr(link, "zoneinfo/")) && z[9])
      name = z + 9;
  }
  return load_file("/etc/localtime", name, out);
}
