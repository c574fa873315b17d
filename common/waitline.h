/* waitline.h — one line on a terminal saying what a command waits for.
 *
 * A command that blocks on something slow (a libguestfs appliance booting,
 * its inspection, a listing) starts a waitline: while stderr is a terminal
 * a thread redraws one line twice a second ("\r...\033[K") from the text
 * the poll function returns (NULL: nothing to say, the line is cleared).
 * Nothing is drawn when stderr is not a terminal (start returns NULL, every
 * call takes NULL).  Before printing anything else the command calls
 * bfs_waitline_clear (the line is redrawn on the next tick).
 */
#ifndef BFS_WAITLINE_H
#define BFS_WAITLINE_H

struct bfs_waitline;
struct json_object;

/* poll(arg) returns a malloc'd text or NULL; called from the thread */
struct bfs_waitline *bfs_waitline_start(char *(*poll)(void *arg), void *arg);
void bfs_waitline_clear(struct bfs_waitline *w);
void bfs_waitline_stop(struct bfs_waitline *w);    /* clears, joins, frees */

/* The text for a status "appliances" array (guest_pool_status, the mount's
 * .backupfs-status): the first starting or busy appliance whose key starts
 * with key_prefix (NULL: any) — "vm/time: starting the appliance (12 s):
 * waiting for ...", "vm/time: in lstatnslist (3 s)" — or NULL. */
char *bfs_waitline_appliance_text(struct json_object *appliances,
                                  const char *key_prefix);

#endif
