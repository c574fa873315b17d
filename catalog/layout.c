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
  &layout_restic,               /* a directory holding config + keys/ ... */
  &layout_nas,
  &layout_pbs,                  /* before generic: claims its datastore */
  &layout_vma,
  &layout_vnbd,
  &layout_generic,
  &layout_kboss,
  &layout_rbd,                  /* rbd:POOL[/NS], no directory */
  NULL,
};

_Static_assert(sizeof cat_layouts / sizeof cat_layouts[0] <= SCAN_LAYOUT_SLOTS,
               "more layouts than struct scan has state slots");

/* The settings layouts and drivers read from the source options
 * (catalog_opts.source_options); the mount takes these names from -o. */
static const char *const source_option_names[] = {
  "nas_tz",                     /* CloudStack NAS stamps' time zone */
  "restic_password_file",       /* restic repositories */
  "ceph_conf", "ceph_id",       /* Ceph RBD pools */
  "rbd_group",                  /* Ceph RBD: image|prefix, see layout-rbd.c */
  "pbs_keyfile",                /* encrypted PBS datastores */
  NULL,
};

bool
catalog_is_source_option(const char *tok)
{
  size_t len = strcspn(tok, "=");
  if (tok[len] != '=')
    return false;
  for (size_t i = 0; source_option_names[i]; i++)
    if (strlen(source_option_names[i]) == len &&
        !strncmp(source_option_names[i], tok, len))
      return true;
  return false;
}

bool
catalog_repo_not_dir(const char *repo)
{
  for (size_t i = 0; repo && cat_layouts[i]; i++)
    if (cat_layouts[i]->names && cat_layouts[i]->names(repo))
      return true;
  return false;
}

char *
catalog_source_option_list(void)
{
  size_t len = 1;
  for (size_t i = 0; source_option_names[i]; i++)
    len += strlen(source_option_names[i]) + 2;
  char *out = cat_xmalloc(len), *p = out;
  for (size_t i = 0; source_option_names[i]; i++)
    p += sprintf(p, "%s%s", i ? ", " : "", source_option_names[i]);
  *p = '\0';
  return out;
}

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
