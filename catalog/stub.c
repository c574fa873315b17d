/* stub.c — placeholders until the catalog lands. */
#include <stdio.h>
#include "catalog/catalog.h"

int catalog_scan_cmd(int argc, char **argv) { fprintf(stderr, "backupfs: scan: not built yet\n"); return 2; }
int catalog_list_cmd(int argc, char **argv) { fprintf(stderr, "backupfs: list: not built yet\n"); return 2; }
