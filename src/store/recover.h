/*
 * recover.h — turning a scan of the log into the key map (FORMAT.md,
 * "Recovery"): where the log ends, what was dropped, what damage was
 * found and which keys it cost.
 */
#ifndef MAPKV_RECOVER_H
#define MAPKV_RECOVER_H

#include <stdint.h>

#include "keymap.h"
#include "log.h"
#include "mapkv/mapkv.h"

/* Rebuilds km (initialised here, sized for the header's figures or
 * expected_keys) from the log with every checksum verified, decides where
 * the log ends (mapkv__log_recovered()), and fills the recovery figures of
 * *found (clean_open, recovered_batches, dropped_tail_*, damaged_*,
 * damaged_keys, truncated_bytes; the rest zero). Nothing below the header's
 * sealed end is dropped: damage there stays in the file, is reported, and
 * the keys it held are marked (they answer MAPKV_ECORRUPT). After it, an
 * uncommitted or torn tail is dropped, but a tail that looks like a log
 * whose checksums fail, a log the header does not belong to, and a file
 * shorter than its header records are refused (MAPKV_ECORRUPT,
 * MAPKV_ETRUNCATED) unless salvage: then what is intact is shown.
 * *known_damage says whether damage stays in the file. 0 or an error (km
 * freed then). */
int mapkv__recover(mapkv__log *lg, mapkv__keymap *km, uint64_t expected_keys,
                   int salvage, mapkv_stats *found, int *known_damage);

#endif
