/* tz-check.c — catalog/tz.c against glibc's own zone code.
 *
 * For several zones (both hemispheres, half-hour and 45-minute offsets,
 * zones whose rules changed), every few hours from 1970 to 2060: the
 * offset cat_tz_offset() gives must be localtime_r()'s tm_gmtoff (glibc
 * reads the same TZif files; setenv+tzset is fine here, one thread), and
 * cat_tz_to_utc() of that local wall-clock time must give back an instant
 * with that wall-clock time, the first one when it is repeated.  A
 * skipped time is read with the offset before the gap.  The POSIX footer
 * alone must agree with the file after its last transition.
 * Exit 77 when /usr/share/zoneinfo lacks the zones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog/tz.h"
#include "common/error.h"

static int fails;

static void
check_zone(const char *zone)
{
  struct cat_tz *tz;
  if (cat_tz_load(zone, &tz) < 0) {
    printf("FAIL: %s: %s\n", zone, bfs_last_error());
    fails++;
    return;
  }
  setenv("TZ", zone, 1);
  tzset();
  unsigned bad = 0, n = 0;
  for (int64_t t = 0; t < 2840140800LL; t += 3 * 3600 + 1234) {
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    int32_t off = cat_tz_offset(tz, t);
    int64_t local = t + off;
    int32_t used;
    int64_t back = cat_tz_to_utc(tz, local, &used);
    n++;
    if (off != tm.tm_gmtoff ||
        back + cat_tz_offset(tz, back) != local || back > t) {
      if (bad++ < 5)
        printf("FAIL: %s at %lld: offset %d (glibc %ld), back %lld\n", zone,
               (long long)t, (int)off, (long)tm.tm_gmtoff, (long long)back);
    }
  }
  printf("%s: %s (%u instants)\n", zone, bad ? "FAIL" : "ok", n);
  fails += bad != 0;
  cat_tz_free(tz);
}

int
main(void)
{
  static const char *const zones[] = {
    "America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata",
    "Pacific/Chatham", "America/Sao_Paulo", "Europe/London", "Asia/Tokyo",
    "Africa/Casablanca", "America/St_Johns",
  };
  if (access("/usr/share/zoneinfo/America/New_York", R_OK) < 0) {
    printf("SKIP: no /usr/share/zoneinfo (tzdata)\n");
    return 77;
  }
  for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++)
    check_zone(zones[i]);

  /* the documented resolutions, America/New_York 2026 */
  struct cat_tz *ny, *posix;
  if (cat_tz_load("America/New_York", &ny) < 0 ||
      cat_tz_posix("EST5EDT,M3.2.0,M11.1.0", 22, &posix) < 0) {
    printf("FAIL: load: %s\n", bfs_last_error());
    return 1;
  }
  /* 2026-11-01 01:30 happens twice: the first (EDT, 05:30Z) */
  int64_t l130 = 1793496600;                   /* 2026-11-01T01:30:00 "UTC" */
  if (cat_tz_to_utc(ny, l130, NULL) != l130 + 4 * 3600) {
    printf("FAIL: repeated 01:30 is not the first occurrence\n");
    fails++;
  }
  /* 2026-03-08 02:30 does not exist: the offset before, EST: 07:30Z */
  int64_t l230 = 1772937000;                   /* 2026-03-08T02:30:00 "UTC" */
  if (cat_tz_to_utc(ny, l230, NULL) != l230 + 5 * 3600) {
    printf("FAIL: skipped 02:30 not read with the offset before the gap\n");
    fails++;
  }
  for (int64_t t = 2000000000; t < 3000000000LL; t += 86400 / 3 + 77)
    if (cat_tz_offset(ny, t) != cat_tz_offset(posix, t)) {
      printf("FAIL: POSIX footer and file disagree at %lld\n", (long long)t);
      fails++;
      break;
    }
  static const char *const bad[] = { "../etc/passwd", "/etc/localtime",
                                     "No/Such_Zone", "" };
  for (size_t i = 0; i < 3; i++) {
    struct cat_tz *z;
    if (cat_tz_load(bad[i], &z) == 0) {
      printf("FAIL: zone '%s' accepted as %s\n", bad[i], cat_tz_name(z));
      cat_tz_free(z);
      fails++;
    }
    else
      printf("ok: '%s' refused: %s\n", bad[i], bfs_last_error());
  }
  cat_tz_free(ny);
  cat_tz_free(posix);
  printf("%s\n", fails ? "FAILED" : "all checks passed");
  return fails ? 1 : 0;
}
