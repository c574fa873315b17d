/* checked.h — overflow-checked arithmetic for untrusted sizes and offsets.
 *
 * Every offset + length that comes from a file goes through these before it
 * is compared with the file size.  They return true on overflow (like the
 * compiler builtins they wrap), so the idiom is:
 *
 *   uint64_t end;
 *   if (ck_add(off, len, &end) || end > file_size) return corrupt(...);
 */
#ifndef BFS_CHECKED_H
#define BFS_CHECKED_H

#include <stdbool.h>
#include <stdint.h>

#define ck_add(a, b, r) __builtin_add_overflow((a), (b), (r))
#define ck_mul(a, b, r) __builtin_mul_overflow((a), (b), (r))
#define ck_sub(a, b, r) __builtin_sub_overflow((a), (b), (r))

/* true when [off, off+len) lies inside [0, size) without overflow */
static inline bool
ck_range_ok(uint64_t off, uint64_t len, uint64_t size)
{
  uint64_t end;
  return !ck_add(off, len, &end) && end <= size;
}

#endif
