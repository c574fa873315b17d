/* kvopt.h — one "name=value,name=value" option string, as -o takes it.
 *
 * The drivers' and layouts' settings (restic_password_file=, ceph_conf=,
 * pbs_keyfile=, nas_tz=) travel as one such string from the command line
 * to the catalog's scan and the disk service; values cannot hold a comma.
 */
#ifndef BFS_COMMON_KVOPT_H
#define BFS_COMMON_KVOPT_H

/* the value of name in opts (NULL: none): 0 and a malloc'd *value, or
 * -ENOENT when name is not there, -ENOMEM */
int bfs_kvopt_get(const char *opts, const char *name, char **value);

/* opts with name=value appended (or replaced): a new malloc'd string, or
 * NULL on ENOMEM; opts may be NULL */
char *bfs_kvopt_set(const char *opts, const char *name, const char *value);

#endif
