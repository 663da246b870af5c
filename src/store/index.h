/*
 * index.h — the in-memory hash index: key hash -> file offset of the
 * newest record of that key.
 *
 * Open addressing with linear probing over 8-byte slots:
 *   slot = (low 24 bits of the key's 64-bit hash) << 40 | record offset
 * An empty slot is 0 (offset 0 is the header, never a record). The home
 * slot of a hash is its top `bits` bits; the tag is taken from the other
 * end of the hash, so it still tells keys apart when they share a home
 * (a false candidate costs a read of the record).
 *
 * Beside the slots, one control byte per slot (as in Swiss tables):
 *   ctrl = 0 for an empty slot, else 0x80 | the low 7 bits of the tag
 * A probe walks the control bytes and reads a slot only where the byte
 * matches, so a key that is absent is usually told so by the control
 * array alone: 1 byte per slot (2 MiB for a million keys) tends to stay in
 * the CPU caches where the 8-byte slots do not. Growing and deletion need
 * an entry's home, which the slot does not hold: they ask the owner for the
 * hashes of records (hashes_at), in batches so that the owner can prefetch.
 * Deletion shifts the probe run back, so there are no tombstones. The load
 * stays at most 3/4: memory is 9 / load <= 24 bytes per key once the
 * table has grown, and offsets are limited to 40 bits (MAPKV_FILE_MAX).
 *
 * The index only compares tags; the caller compares full keys against the
 * record at each candidate offset. One writer at a time; readers may probe
 * while the writer inserts, replaces or removes (they can see a probe run
 * mid-change and must validate, see store.h), but not while the table
 * grows.
 */
#ifndef MAPKV_INDEX_H
#define MAPKV_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define MAPKV__IX_OFFBITS 40
#define MAPKV__IX_OFFMASK ((1ull << MAPKV__IX_OFFBITS) - 1)
#define MAPKV__IX_TAGMASK ((1ull << (64 - MAPKV__IX_OFFBITS)) - 1)

/* Fills hashes[i] with the key hash of the record at offsets[i], i < n. */
typedef void (*mapkv__hashes_at_fn)(void *ctx, const uint64_t *offsets,
                                    uint64_t *hashes, size_t n);

typedef struct mapkv__index {
  uint64_t *slots;
  uint8_t *ctrl;   /* control bytes, one per slot (after the slots) */
  struct mmf *mem; /* the anonymous map holding slots and ctrl */
  uint64_t mask;   /* slots - 1 */
  unsigned bits;   /* log2(slots) */
  uint64_t count;
  uint64_t limit; /* count above which the table grows */
  mapkv__hashes_at_fn hashes_at;
  void *ctx;
} mapkv__index;

/* Slots are read by readers while the writer changes them (see store.h):
 * loads are acquire and stores release (plain moves on x86). */
static inline uint64_t mapkv__slot_load(const uint64_t *s) {
  return __atomic_load_n(s, __ATOMIC_ACQUIRE);
}

static inline void mapkv__slot_store(uint64_t *s, uint64_t v) {
  __atomic_store_n(s, v, __ATOMIC_RELEASE);
}

static inline uint8_t mapkv__ctrl_load(const uint8_t *c) {
  return __atomic_load_n(c, __ATOMIC_ACQUIRE);
}

static inline void mapkv__ctrl_store(uint8_t *c, uint8_t v) {
  __atomic_store_n(c, v, __ATOMIC_RELEASE);
}

/* The control byte of a full slot holding a key of this hash: the low 7
 * bits of its tag, so that a slot whose tag matches also matches here, and
 * one in 128 other entries does. */
static inline uint8_t mapkv__ctrl_of(uint64_t hash) {
  return (uint8_t)(0x80u | (hash & 0x7fu));
}

/* Testing: when set, called by the writer after each slot it changes while
 * readers may be probing (index removal, batch application), to widen the
 * windows in which readers see the index mid-change. NULL otherwise. */
extern void (*mapkv__test_pause)(void);

/* A probe sequence for one hash. */
typedef struct mapkv__probe {
  uint64_t pos;  /* next slot to look at */
  uint64_t tag;  /* low 24 bits of the hash */
  uint64_t last; /* slot of the last candidate returned */
  uint8_t ctrl;  /* control byte of the hash */
} mapkv__probe;

/* Sets up an empty index sized for `expected` keys. 0 or MAPKV_ENOMEM. */
int mapkv__index_init(mapkv__index *ix, uint64_t expected,
                      mapkv__hashes_at_fn hashes_at, void *ctx);
/* Frees the table; the index may be initialised again. Safe on a zeroed
 * or already freed index. */
void mapkv__index_free(mapkv__index *ix);

/* Hash of a key, as the index wants it. */
uint64_t mapkv__index_hash(const void *key, size_t klen);

/* The home slot of a hash (for prefetching). */
static inline uint64_t mapkv__index_home(const mapkv__index *ix,
                                         uint64_t hash) {
  return hash >> (64 - ix->bits);
}

/* Fetches the home slot of a hash and its control byte ahead of a probe. */
static inline void mapkv__index_prefetch(const mapkv__index *ix,
                                         uint64_t hash) {
  uint64_t home = mapkv__index_home(ix, hash);
  __builtin_prefetch(&ix->ctrl[home]);
  __builtin_prefetch(&ix->slots[home]);
}

static inline void mapkv__index_probe_start(const mapkv__index *ix,
                                            uint64_t hash, mapkv__probe *p) {
  p->pos = mapkv__index_home(ix, hash);
  p->tag = hash & MAPKV__IX_TAGMASK;
  p->last = 0;
  p->ctrl = mapkv__ctrl_of(hash);
}

/* The offset of the next slot whose control byte and tag match, or 0 when
 * the probe run ends (an empty control byte, or an empty slot: readers may
 * see the two mid-change and then retry, see store.h). */
static inline uint64_t mapkv__index_probe_next(const mapkv__index *ix,
                                               mapkv__probe *p) {
  for (;;) {
    uint8_t c = mapkv__ctrl_load(&ix->ctrl[p->pos]);
    uint64_t s, at = p->pos;
    if (c == 0)
      return 0;
    p->pos = (p->pos + 1) & ix->mask;
    if (c != p->ctrl)
      continue;
    s = mapkv__slot_load(&ix->slots[at]);
    if (s == 0)
      return 0;
    if ((s >> MAPKV__IX_OFFBITS) == p->tag) {
      p->last = at;
      return s & MAPKV__IX_OFFMASK;
    }
  }
}

/* 1 if the probe run of hash holds a slot pointing at offset (p, which may
 * be NULL, then points at it for replace/remove): then the record there
 * (whose key has that hash) is its key's newest, so liveness needs no key
 * comparison and no read of any record. */
static inline int mapkv__index_find_offset(const mapkv__index *ix,
                                           uint64_t hash, uint64_t offset,
                                           mapkv__probe *p) {
  mapkv__probe q;
  uint64_t off;
  if (p == NULL)
    p = &q;
  mapkv__index_probe_start(ix, hash, p);
  while ((off = mapkv__index_probe_next(ix, p)) != 0)
    if (off == offset)
      return 1;
  return 0;
}

static inline int mapkv__index_has(const mapkv__index *ix, uint64_t hash,
                                   uint64_t offset) {
  return mapkv__index_find_offset(ix, hash, offset, NULL);
}

/* Points the slot of the last candidate of p at a new offset (of a record
 * with the same key). */
static inline void mapkv__index_replace(mapkv__index *ix, const mapkv__probe *p,
                                        uint64_t offset) {
  mapkv__slot_store(&ix->slots[p->last],
                    (ix->slots[p->last] & ~MAPKV__IX_OFFMASK) |
                        (offset & MAPKV__IX_OFFMASK));
}

/* Removes the last candidate of p. */
void mapkv__index_remove(mapkv__index *ix, const mapkv__probe *p);

/* Inserts a key known to be absent. 0 or MAPKV_ENOMEM (index unchanged). */
int mapkv__index_insert(mapkv__index *ix, uint64_t hash, uint64_t offset);

/* Makes room for `more` inserts without growing. 0 or MAPKV_ENOMEM. */
int mapkv__index_reserve(mapkv__index *ix, uint64_t more);

/* Bytes of memory held: a slot and a control byte per slot. */
static inline uint64_t mapkv__index_bytes(const mapkv__index *ix) {
  return (ix->mask + 1) * (sizeof(uint64_t) + 1);
}

#endif
