/*
 * keymap.c — the key -> newest record map (keymap.h) over the hash index.
 *
 * Invariant: every entry points at a record of the log whose key hashes
 * to the entry's home and tag — also for keys recovery marked (their
 * entry points at an intact record of the key, or at the damaged record
 * whose key bytes are the key's), so that growing the table and removing
 * entries, which rehash keys from their records, keep every entry
 * findable.
 */
#include "keymap.h"

#include <stdlib.h>
#include <string.h>

#include "store_err.h"

static void hashes_at(void *ctx, const uint64_t *offs, uint64_t *hashes,
                      size_t n) {
  const mapkv__keymap *km = ctx;
  mapkv__keymap_hash_records(km->lg, offs, hashes, n);
}

int mapkv__keymap_init(mapkv__keymap *km, const mapkv__log *lg,
                       uint64_t expected) {
  memset(km, 0, sizeof *km);
  km->lg = lg;
  if (mapkv__index_init(&km->ix, expected, hashes_at, km) != 0)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory for the index");
  return 0;
}

void mapkv__keymap_free(mapkv__keymap *km) {
  mapkv__index_free(&km->ix);
  free(km->marked);
  km->marked = NULL;
  km->nmarked = 0;
  km->live_bytes = 0;
}

void mapkv__keymap_rebind(mapkv__keymap *km, const mapkv__log *lg) {
  km->lg = lg;
  km->ix.ctx = km;
}

uint64_t mapkv__keymap_find(const mapkv__keymap *km, const void *key,
                            size_t klen, uint64_t hash, mapkv__probe *p,
                            int *damaged) {
  const mapkv__log *lg = km->lg;
  uint64_t off, bad = 0;
  mapkv__probe badp;
  mapkv__index_probe_start(&km->ix, hash, p);
  while ((off = mapkv__index_probe_next(&km->ix, p)) != 0) {
    mapkv__rec rec;
    uint64_t end;
    if (mapkv__rec_klen_at(lg->base + off) == klen &&
        (klen == 0 || memcmp(mapkv__log_key_at(lg, off), key, klen) == 0))
      return off;
    /* A tag match for another key is rare (1 in 2^24 per slot probed):
     * only then is the record's checksum worth a look. */
    end = mapkv__log_end(lg);
    if (damaged != NULL && bad == 0 && off < end &&
        mapkv__log_decode(lg, off, end - off, 1, &rec) != MAPKV__REC_OK) {
      bad = off;
      badp = *p;
    }
  }
  if (bad != 0) {
    *damaged = 1;
    *p = badp;
    return bad;
  }
  return 0;
}

static uint64_t rec_size_at(const mapkv__log *lg, uint64_t off) {
  const uint8_t *r = lg->base + off;
  return lg->rec_head + MAPKV__REC_TAIL + mapkv__rec_klen_at(r) +
         mapkv__rec_vlen_at(r);
}

uint64_t mapkv__keymap_live_size(const mapkv__keymap *km, uint64_t off) {
  mapkv__rec r;
  /* Only stores with marked keys have entries for damaged records. */
  if (km->nmarked > 0 &&
      mapkv__log_decode(km->lg, off, km->lg->cap - off, 1, &r) != MAPKV__REC_OK)
    return 0;
  return rec_size_at(km->lg, off);
}

void mapkv__keymap_replace(mapkv__keymap *km, const mapkv__probe *p,
                           uint64_t old, uint64_t off, uint64_t size) {
  km->live_bytes -= mapkv__keymap_live_size(km, old);
  mapkv__index_replace(&km->ix, p, off);
  km->live_bytes += size;
}

void mapkv__keymap_remove(mapkv__keymap *km, const mapkv__probe *p,
                          uint64_t old) {
  km->live_bytes -= mapkv__keymap_live_size(km, old);
  mapkv__index_remove(&km->ix, p);
}

int mapkv__keymap_insert(mapkv__keymap *km, uint64_t hash, uint64_t off,
                         uint64_t size) {
  if (mapkv__index_insert(&km->ix, hash, off) != 0)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory growing the index");
  km->live_bytes += size;
  return 0;
}

int mapkv__keymap_reserve(mapkv__keymap *km, uint64_t more) {
  if (mapkv__index_reserve(&km->ix, more) != 0)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory growing the index");
  return 0;
}

int mapkv__keymap_apply(mapkv__keymap *km, uint64_t off, const mapkv__rec *r,
                        uint64_t hash) {
  mapkv__probe p;
  uint64_t old;
  int damaged = 0;
  if (r->type == MAPKV__T_COMMIT)
    return 0;
  old = mapkv__keymap_find(km, r->key, r->klen, hash, &p, &damaged);
  if (old != 0) {
    if (r->type == MAPKV__T_PUT)
      mapkv__keymap_replace(km, &p, old, off, r->size);
    else
      mapkv__keymap_remove(km, &p, old);
    return 0;
  }
  if (r->type == MAPKV__T_PUT)
    return mapkv__keymap_insert(km, hash, off, r->size);
  return 0;
}

int mapkv__keymap_mark(mapkv__keymap *km, uint64_t off) {
  if (km->nmarked % 64 == 0) {
    uint64_t *q = realloc(km->marked, (km->nmarked + 64) * sizeof *q);
    if (q == NULL)
      return mapkv__fail(MAPKV_ENOMEM, "out of memory during recovery");
    km->marked = q;
  }
  km->marked[km->nmarked++] = off;
  return 0;
}

static int cmp_offset(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

void mapkv__keymap_seal_marks(mapkv__keymap *km) {
  size_t n = 0;
  if (km->nmarked > 1)
    qsort(km->marked, km->nmarked, sizeof *km->marked, cmp_offset);
  for (size_t i = 0; i < km->nmarked; i++) {
    uint64_t off = km->marked[i], hash;
    if (n > 0 && off == km->marked[n - 1]) /* a key marked twice */
      continue;
    /* A key written again or deleted after the damage: its entry no
     * longer points at the mark, and it does not answer MAPKV_ECORRUPT. */
    mapkv__keymap_hash_records(km->lg, &off, &hash, 1);
    if (mapkv__index_has(&km->ix, hash, off))
      km->marked[n++] = off;
  }
  km->nmarked = n;
}

void mapkv__keymap_hash_records(const mapkv__log *lg, const uint64_t *offs,
                                uint64_t *hashes, size_t n) {
  /* Start every miss before waiting on the first. */
  for (size_t i = 0; i < n; i++)
    __builtin_prefetch(lg->base + offs[i]);
  for (size_t i = 0; i < n; i++)
    hashes[i] = mapkv__index_hash(mapkv__log_key_at(lg, offs[i]),
                                  mapkv__rec_klen_at(lg->base + offs[i]));
}
