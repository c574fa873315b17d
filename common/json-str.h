/* json-str.h — repository strings (bytes) into JSON that is always UTF-8;
 * see json-str.c for the rule (U+FFFD in the text, exact bytes in
 * "<key>_hex"). */
#ifndef BFS_JSON_STR_H
#define BFS_JSON_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <json-c/json.h>

bool bfs_utf8_valid(const char *s);
/* a json string of s, U+FFFD for bytes that are not UTF-8 */
struct json_object *bfs_json_string(const char *s);
/* o[k] = v (NULL: null), and o[k_hex] with the bytes when v is not UTF-8 */
void bfs_json_add_str(struct json_object *o, const char *k, const char *v);
/* o[k] = [v...], and o[k_hex] = [hex...] when one of them is not UTF-8 */
void bfs_json_add_str_array(struct json_object *o, const char *k, char **v,
                            size_t n);
/* a json string of t as ISO 8601 UTC ("2026-12-02T05:38:00Z"), or NULL
 * (json null) for 0: "never" */
struct json_object *bfs_json_time(time_t t);

#endif
