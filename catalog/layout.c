/* layout.c — the table of repository layouts (see layout.h).
 *
 * Order matters only between layouts that could claim the same directory:
 * the first that claims it wins.  NAS before generic (a NAS stamp
 * directory's root.<vol>.qcow2 would also match the generic rule), KBOSS
 * last (its image names have no extension and match nothing else).
 */
#include <stdio.h>
#include <string.h>

#include "catalog/catalog-int.h"

const struct cat_layout *const cat_layouts[] = {
  &layout_nas,
  &layout_generic,
  &layout_kboss,
  NULL,
};

_Static_assert(sizeof cat_layouts / sizeof cat_layouts[0] <= SCAN_LAYOUT_SLOTS,
               "more layouts than struct scan has state slots");

char *
catalog_known_layouts(void)
{
  size_t len = 1;
  for (size_t i = 0; cat_layouts[i]; i++)
    len += strlen(cat_layouts[i]->describe) + 2;
  char *out = cat_xmalloc(len), *p = out;
  for (size_t i = 0; cat_layouts[i]; i++)
    p += sprintf(p, "%s%s", i ? ", " : "", cat_layouts[i]->describe);
  *p = '\0';
  return out;
}
