/*
 * keymap.h — the map from each key to its newest record, as a value: the
 * hash index (index.h) over the records of one log, the bytes its live
 * records hold, and the records recovery marked because damage cost their
 * key's newest batch. keymap.c is the only code that changes it.
 *
 * The index holds tags and offsets only; the key of a candidate is the
 * record's, read from the log. The log must outlive the map (the map
 * points at it: mapkv__keymap_rebind() after the log moves).
 *
 * Concurrency: one writer at a time changes the map; readers may look up
 * while it replaces, inserts and removes entries (see store.h), but not
 * while the table grows.
 */
#ifndef MAPKV_KEYMAP_H
#define MAPKV_KEYMAP_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "index.h"
#include "log.h"

typedef struct mapkv__keymap {
  mapkv__index ix;
  const mapkv__log *lg; /* where the records are */
  uint64_t live_bytes;  /* bytes of the records the map points at */
  /* Records recovery marked because damage cost their key's newest batch:
   * what the key's entry points at (sorted file offsets, fixed after the
   * open). Such a key answers MAPKV_ECORRUPT. */
  uint64_t *marked;
  size_t nmarked;
} mapkv__keymap;

/* An empty map over the records of lg, sized for `expected` keys. 0 or
 * MAPKV_ENOMEM. */
int mapkv__keymap_init(mapkv__keymap *km, const mapkv__log *lg,
                       uint64_t expected);

/* Frees the map; safe on a zeroed or freed map. */
void mapkv__keymap_free(mapkv__keymap *km);

/* Points the map at the log it describes, after the log value moved. */
void mapkv__keymap_rebind(mapkv__keymap *km, const mapkv__log *lg);

/* The newest record of key: its offset, or 0; p receives the probe position
 * (for replace/remove). An entry whose tag matches but whose record fails
 * its checksum stands for a damaged record of this key: when no intact
 * record of the key is found, its offset is returned with *damaged set
 * (damaged may be NULL: such entries are then skipped). */
uint64_t mapkv__keymap_find(const mapkv__keymap *km, const void *key,
                            size_t klen, uint64_t hash, mapkv__probe *p,
                            int *damaged);

/* Whether recovery marked the record at off (see `marked`). */
static inline int mapkv__keymap_marked(const mapkv__keymap *km, uint64_t off) {
  size_t lo = 0, hi = km->nmarked;
  if (hi == 0)
    return 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (km->marked[mid] < off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < km->nmarked && km->marked[lo] == off;
}

/* The bytes the record at off counts for among the live ones: its size,
 * but nothing for a damaged record recovery gave an entry (its lengths are
 * untrusted). */
uint64_t mapkv__keymap_live_size(const mapkv__keymap *km, uint64_t off);

/* Applies the intact record r at off (of a key whose hash is given): a PUT
 * points its key at it, a DEL removes its key; a COMMIT changes nothing.
 * 0 or MAPKV_ENOMEM (map unchanged). */
int mapkv__keymap_apply(mapkv__keymap *km, uint64_t off, const mapkv__rec *r,
                        uint64_t hash);

/* Points the entry of the last candidate of p at off (a record of the same
 * key of `size` bytes), replacing the record at old. */
void mapkv__keymap_replace(mapkv__keymap *km, const mapkv__probe *p,
                           uint64_t old, uint64_t off, uint64_t size);

/* Removes the entry of the last candidate of p (pointing at old). */
void mapkv__keymap_remove(mapkv__keymap *km, const mapkv__probe *p,
                          uint64_t old);

/* Inserts a key known to be absent, pointing at off (`size` bytes). 0 or
 * MAPKV_ENOMEM. */
int mapkv__keymap_insert(mapkv__keymap *km, uint64_t hash, uint64_t off,
                         uint64_t size);

/* Makes room for `more` inserts without growing the table. 0 or
 * MAPKV_ENOMEM. */
int mapkv__keymap_reserve(mapkv__keymap *km, uint64_t more);

/* Recovery: marks the record at off (what a key's entry points at); the
 * marks are sorted and made unique by mapkv__keymap_seal_marks(), which
 * also drops those of keys written again or deleted later in the log (no
 * entry points at them any more). 0 or MAPKV_ENOMEM. */
int mapkv__keymap_mark(mapkv__keymap *km, uint64_t off);
void mapkv__keymap_seal_marks(mapkv__keymap *km);

/* The key hashes of the records at offs[i] of lg, i < n, with their
 * records prefetched first. */
void mapkv__keymap_hash_records(const mapkv__log *lg, const uint64_t *offs,
                                uint64_t *hashes, size_t n);

#endif
