/*
 * compact.h — writing a compacted log: the live records of a key map
 * copied, in file order, into a new log beside the store. Compaction
 * (compact.c) renames it over the store; a compacting copy (copy.c)
 * renames it to where the copy goes.
 */
#ifndef MAPKV_COMPACT_H
#define MAPKV_COMPACT_H

#include <stdint.h>

#include "keymap.h"
#include "log.h"

/* Writes the live records of map (over src, whose records below src->end
 * must not change while this runs) into a new log at tmp, made as how
 * says (mapkv__log_create_beside()): each record its own batch, sequence
 * numbers from 1, prev 0, with a new key map beside it (sized for
 * expected_keys); the file flushed whole, then its header written (clean,
 * with exact figures, for a file no handle goes on writing; else not),
 * sealed to its end. A live record that fails its checksum stops the
 * copy: MAPKV_ECORRUPT, *damaged (may be NULL) the number found.
 * On success the open, locked log, its key map and the file at tmp are
 * the caller's; on failure *nl and *nm are freed and nothing is left at
 * tmp. */
int mapkv__compact_write(const mapkv__log *src, const mapkv__keymap *map,
                         const char *tmp, const mapkv__new_log *how,
                         uint64_t expected_keys, int clean, mapkv__log *nl,
                         mapkv__keymap *nm, uint64_t *damaged);

#endif
