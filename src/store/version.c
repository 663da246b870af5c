/*
 * version.c — mapkv_version(): the version the library was built as, from
 * the one definition in include/mapkv/mapkv.h.
 */
#include "mapkv/mapkv.h"

const char *mapkv_version(void) { return MAPKV_VERSION_STRING; }
