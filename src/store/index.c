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
#define TAG_BITS (64 - MAPKV__IX_OFFBITS)

uint64_t mapkv__index_hash(const void *key, size_t klen) {
  return XXH3_64bits(key, klen);
}

/* Home slot of an entry in a table of 2^bits slots. */
static uint64_t entry_home(const mapkv__index *ix, uint64_t s, unsigned bits) {
  if (bits <= TAG_BITS)
    return (s >> MAPKV__IX_OFFBITS) >> (TAG_BITS - bits);
  return ix->hash_at(ix->ctx, s & MAPKV__IX_OFFMASK) >> (64 - bits);
}

/* A zeroed table of 2^bits slots in anonymous memory from the mapping
 * core, backed by huge pages where the system allows (the table is probed
 * at random, so TLB misses matter). */
static uint64_t *table_alloc(unsigned bits, mmf_t **mem) {
  int64_t len = (int64_t)sizeof(uint64_t) << bits;
  void *p;
  if (mmf_open(mem, -1, len, MMF_MAP_PRIVATE, MMF_PROT_READ | MMF_PROT_WRITE,
               MMF_ACCESS_DEFAULT, 0, 1) != 0)
    return NULL;
#ifdef MMF_MADV_HUGEPAGE
  if (len >= (2 << 20))
    mmf_madvise(*mem, MMF_MADV_HUGEPAGE, 0, NULL); /* advice only */
#endif
  mmf_data(*mem, &p, NULL);
  return p;
}

static unsigned bits_for(uint64_t keys) {
  unsigned bits = MIN_BITS;
  /* Smallest power of two that keeps the load at most 3/4. */
  while (bits < 63 && (1ull << bits) / 4 * 3 < keys)
    bits++;
  return bits;
}

int mapkv__index_init(mapkv__index *ix, uint64_t expected,
                      mapkv__hash_at_fn hash_at, void *ctx) {
  unsigned bits = bits_for(expected);
  ix->slots = table_alloc(bits, &ix->mem);
  if (ix->slots == NULL)
    return MAPKV_ENOMEM;
  ix->bits = bits;
  ix->mask = (1ull << bits) - 1;
  ix->count = 0;
  ix->hash_at = hash_at;
  ix->ctx = ctx;
  return 0;
}

void mapkv__index_free(mapkv__index *ix) {
  mmf_free(ix->mem);
  ix->mem = NULL;
  ix->slots = NULL;
  ix->count = 0;
}

static void place(uint64_t *slots, uint64_t mask, uint64_t home, uint64_t s) {
  uint64_t i = home;
  while (slots[i] != 0)
    i = (i + 1) & mask;
  slots[i] = s;
}

static int grow_to(mapkv__index *ix, unsigned bits) {
  uint64_t n = 1ull << bits, mask = n - 1, i;
  mmf_t *mem;
  uint64_t *slots = table_alloc(bits, &mem);
  if (slots == NULL)
    return MAPKV_ENOMEM;
  for (i = 0; i <= ix->mask; i++) {
    uint64_t s = ix->slots[i];
    if (s != 0)
      place(slots, mask, entry_home(ix, s, bits), s);
  }
  mmf_free(ix->mem);
  ix->mem = mem;
  ix->slots = slots;
  ix->mask = mask;
  ix->bits = bits;
  return 0;
}

int mapkv__index_reserve(mapkv__index *ix, uint64_t more) {
  unsigned bits = bits_for(ix->count + more);
  return bits > ix->bits ? grow_to(ix, bits) : 0;
}

int mapkv__index_insert(mapkv__index *ix, uint64_t hash, uint64_t offset) {
  int rc = mapkv__index_reserve(ix, 1);
  if (rc != 0)
    return rc;
  place(ix->slots, ix->mask, hash >> (64 - ix->bits),
        (hash >> MAPKV__IX_OFFBITS) << MAPKV__IX_OFFBITS |
            (offset & MAPKV__IX_OFFMASK));
  ix->count++;
  return 0;
}

void mapkv__index_remove(mapkv__index *ix, const mapkv__probe *p) {
  uint64_t i = p->last, j = i;
  /* Shift later members of the probe run back into the hole unless their
   * home lies cyclically in (i, j]. */
  for (;;) {
    uint64_t k;
    j = (j + 1) & ix->mask;
    if (ix->slots[j] == 0)
      break;
    k = entry_home(ix, ix->slots[j], ix->bits);
    if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
      continue;
    ix->slots[i] = ix->slots[j];
    i = j;
  }
  ix->slots[i] = 0;
  ix->count--;
}
