/* chain.c — placeholder (header probe milestone); the chain lands next. */
#include <errno.h>
#include "common/error.h"
#include "image/internal.h"

int chain_open(const char *top_path, const struct chain_opts *opts, chain_t **out)
{ *out = NULL; return bfs_error(-ENOSYS, "%s: chains not implemented yet", top_path); }
void chain_close(chain_t *c) { }
uint64_t chain_size(const chain_t *c) { return 0; }
size_t chain_depth(const chain_t *c) { return 1; }
const img_t *chain_layer(const chain_t *c, size_t i) { return NULL; }
const char *chain_layer_path(const chain_t *c, size_t i) { return NULL; }
int chain_pread(chain_t *c, void *buf, size_t len, uint64_t off) { return -ENOSYS; }
int chain_extent_at(chain_t *c, uint64_t off, struct chain_extent *out) { return -ENOSYS; }
int chain_allocated(chain_t *c, uint64_t *bytes) { return -ENOSYS; }
int img_check(img_t *img) { return 0; }
