/* tz.h — time zones for local-time stamps (CloudStack NAS), thread-safe.
 *
 * CloudStack's NASBackupProvider names a backup yyyy.MM.dd.HH.mm.ss in the
 * management server's local time.  The scan runs inside the multi-threaded
 * mount daemon, so it must not setenv("TZ") + tzset(): a zone is read here
 * from its TZif file (RFC 8536, /usr/share/zoneinfo/<ZONE>, /etc/localtime)
 * into an immutable object any thread may use.  Version 1 files are read
 * with 32-bit transitions, v2+ with the 64-bit block; times after the last
 * transition follow the file's POSIX TZ footer (slim files end their
 * transitions early), which is also accepted on its own (TZ=EST5EDT,...).
 *
 * Local times that do not map to exactly one instant (RFC 5545 §3.3.5):
 *   - a repeated time (the hour after DST ends) is the FIRST occurrence,
 *     the earlier instant, under the offset in force before the change;
 *   - a skipped time (the hour DST begins) is read with the offset in force
 *     before the gap, so 02:30 on a spring-forward night is 03:30 DST.
 * A writer formatting a real instant never produces a skipped time (the
 * repository was written under another zone); the stamp directory's name
 * stays in backup.json either way.
 */
#ifndef BFS_CATALOG_TZ_H
#define BFS_CATALOG_TZ_H

#include <stddef.h>
#include <stdint.h>

struct cat_tz;

/* A zone from TZif bytes buf[0, len) (name: for messages and cat_tz_name).
 * 0 or -EINVAL with the reason. */
int cat_tz_parse(const void *buf, size_t len, const char *name,
                 struct cat_tz **out);
/* A zone from a POSIX TZ string ("EST5EDT,M3.2.0,M11.1.0", "UTC0").
 * 0 or -EINVAL. */
int cat_tz_posix(const char *s, size_t len, struct cat_tz **out);
/* zone: "UTC", a name under /usr/share/zoneinfo ("America/New_York"; no
 * "..", not absolute), or NULL/"" for the host's: $TZ (":NAME", NAME, a
 * POSIX string; set but empty is UTC), else /etc/localtime.  0 or -errno
 * saying which file and why. */
int cat_tz_load(const char *zone, struct cat_tz **out);
void cat_tz_free(struct cat_tz *tz);
/* The zone's name as given, or as /etc/localtime links it
 * ("Europe/Berlin"; "localtime" when it is no link). */
const char *cat_tz_name(const struct cat_tz *tz);
/* The offset east of UTC in seconds in force at UTC instant t. */
int32_t cat_tz_offset(const struct cat_tz *tz, int64_t t);
/* The UTC instant of local wall-clock seconds (as if the wall clock were
 * UTC), resolved as the file note says; *offset (may be NULL) the offset
 * used. */
int64_t cat_tz_to_utc(const struct cat_tz *tz, int64_t local,
                      int32_t *offset);

#endif
