/* pbs-int.h — what pbs.c (the fixed-index blk) needs of pbs-store.c (the
 * shared chunk store and its cache).  Not for other modules: pbs.h is the
 * interface.
 */
#ifndef BFS_BLK_PBS_INT_H
#define BFS_BLK_PBS_INT_H

#include "blk/pbs.h"

struct pbs_chunk;
/* The verified plaintext of the chunk with this digest, which must be len
 * bytes long: a reference the caller gives back with pbs_chunk_put. */
int pbs_store_get(struct pbs_store *s, const unsigned char digest[32],
                  size_t len, struct pbs_chunk **out);
const unsigned char *pbs_chunk_data(const struct pbs_chunk *c);
void pbs_chunk_put(struct pbs_store *s, struct pbs_chunk *c);
/* The digest a chunk of len zero bytes has in this store (keyed or not),
 * computed once per length. */
int pbs_store_zero_digest(struct pbs_store *s, size_t len,
                          unsigned char out[32]);
const char *pbs_store_name(const struct pbs_store *s);
/* SHA-256 of data, or of data || id when key is given */
void pbs_digest(const unsigned char *data, size_t len,
                const struct pbs_key *key, unsigned char out[32]);
void pbs_hex(const unsigned char d[32], char out[65]);

#endif
