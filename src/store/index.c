/*
 * index.c — the hash index (see index.h for the slot layout and limits).
 */
#include "index.h"

#include <stdlib.h>

#define XXH_INLINE_ALL /* the system xxhash.h, inlined for short keys */
#include <xxhash.h>

#include "mapkv/mapkv.h"
#include "mapkv/mmf.h"

#define MIN_BITS 4
#define MAX_BITS 40 /* no store has more keys than 2^40 / 24 */
#define BATCH    64 /* entries rehashed per call of hashes_at */

void (*mapkv__test_pause)(void);

uint64_t mapkv__index_hash(const void *key, size_t klen) {
  return XXH3_64bits(key, klen);
}

/* A zeroed table of 2^bits slots followed by their 2^bits control bytes,
 * in anonymous memory from the mapping core, backed by huge pages where the
 * system allows (the table is probed at random, so TLB misses matter). */
static uint64_t *table_alloc(unsigned bits, mmf_t **mem) {
  int64_t len;
  void *p;
  if (bits > MAX_BITS)
    return NULL;
  len = (int64_t)((sizeof(uint64_t) + 1) << bits);
  if (mmf_open(mem, -1, len, MMF_MAP_PRIVATE, MMF_PROT_READ | MMF_PROT_WRITE,
               MMF_ACCESS_DEFAULT, 0, 1) != 0)
    return NULL;
#ifdef MMF_MADV_HUGEPAGE
  if (len >= MMF_HUGE_PAGE)
    mmf_madvise(*mem, MMF_MADV_HUGEPAGE, 0, NULL); /* advice only */
#endif
  mmf_data(*mem, &p, NULL);
  return p;
}

/* Smallest table that holds `keys` at a load of at most 3/4. */
static unsigned bits_for(uint64_t keys) {
  unsigned bits = MIN_BITS;
  while (bits <= MAX_BITS && (1ull << bits) / 4 * 3 < keys)
    bits++;
  return bits;
}

static void set_table(mapkv__index *ix, uint64_t *slots, mmf_t *mem,
                      unsigned bits) {
  ix->slots = slots;
  ix->ctrl = (uint8_t *)(slots + (1ull << bits));
  ix->mem = mem;
  ix->bits = bits;
  ix->mask = (1ull << bits) - 1;
  ix->limit = (1ull << bits) / 4 * 3;
}

int mapkv__index_init(mapkv__index *ix, uint64_t expected,
                      mapkv__hashes_at_fn hashes_at, void *ctx) {
  unsigned bits = bits_for(expected);
  mmf_t *mem;
  uint64_t *slots = table_alloc(bits, &mem);
  if (slots == NULL)
    return MAPKV_ENOMEM;
  set_table(ix, slots, mem, bits);
  ix->count = 0;
  ix->hashes_at = hashes_at;
  ix->ctx = ctx;
  return 0;
}

void mapkv__index_free(mapkv__index *ix) {
  mmf_free(ix->mem);
  ix->mem = NULL;
  ix->slots = NULL;
  ix->ctrl = NULL;
  ix->count = 0;
}

/* Puts entry s (control byte c) in the first empty slot from home: the
 * slot first, then its control byte, which makes it visible to probes. */
static void place(uint64_t *slots, uint8_t *ctrl, uint64_t mask, uint64_t home,
                  uint64_t s, uint8_t c) {
  uint64_t i = home;
  while (ctrl[i] != 0)
    i = (i + 1) & mask;
  mapkv__slot_store(&slots[i], s);
  mapkv__ctrl_store(&ctrl[i], c);
}

static int grow_to(mapkv__index *ix, unsigned bits) {
  uint64_t n = 1ull << bits, mask = n - 1, i = 0;
  uint64_t offs[BATCH], hashes[BATCH], ents[BATCH];
  mmf_t *mem;
  uint64_t *slots = table_alloc(bits, &mem);
  uint8_t *ctrl;
  if (slots == NULL)
    return MAPKV_ENOMEM;
  ctrl = (uint8_t *)(slots + n);
  while (i <= ix->mask) {
    size_t k = 0;
    for (; i <= ix->mask && k < BATCH; i++) {
      if (ix->slots[i] != 0) {
        ents[k] = ix->slots[i];
        offs[k++] = ix->slots[i] & MAPKV__IX_OFFMASK;
      }
    }
    if (k == 0)
      continue;
    ix->hashes_at(ix->ctx, offs, hashes, k);
    for (size_t j = 0; j < k; j++)
      place(slots, ctrl, mask, hashes[j] >> (64 - bits), ents[j],
            mapkv__ctrl_of(hashes[j]));
  }
  mmf_free(ix->mem);
  set_table(ix, slots, mem, bits);
  return 0;
}

int mapkv__index_reserve(mapkv__index *ix, uint64_t more) {
  if (more > UINT64_MAX - ix->count)
    return MAPKV_ENOMEM;
  if (ix->count + more <= ix->limit)
    return 0;
  return grow_to(ix, bits_for(ix->count + more));
}

int mapkv__index_insert(mapkv__index *ix, uint64_t hash, uint64_t offset) {
  int rc = mapkv__index_reserve(ix, 1);
  if (rc != 0)
    return rc;
  place(ix->slots, ix->ctrl, ix->mask, mapkv__index_home(ix, hash),
        (hash & MAPKV__IX_TAGMASK) << MAPKV__IX_OFFBITS |
            (offset & MAPKV__IX_OFFMASK),
        mapkv__ctrl_of(hash));
  ix->count++;
  return 0;
}

void mapkv__index_remove(mapkv__index *ix, const mapkv__probe *p) {
  uint64_t i = p->last, j = i;
  /* Shift later members of the probe run back into the hole unless their
   * home lies cyclically in (i, j]. */
  for (;;) {
    uint64_t k, off, h;
    j = (j + 1) & ix->mask;
    if (ix->slots[j] == 0)
      break;
    off = ix->slots[j] & MAPKV__IX_OFFMASK;
    ix->hashes_at(ix->ctx, &off, &h, 1);
    k = mapkv__index_home(ix, h);
    if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
      continue;
    mapkv__slot_store(&ix->slots[i], ix->slots[j]);
    mapkv__ctrl_store(&ix->ctrl[i], ix->ctrl[j]);
    if (mapkv__test_pause != NULL)
      mapkv__test_pause();
    i = j;
  }
  mapkv__ctrl_store(&ix->ctrl[i], 0);
  mapkv__slot_store(&ix->slots[i], 0);
  ix->count--;
}
