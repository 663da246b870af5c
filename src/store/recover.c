/*
 * recover.c — the key map rebuilt from a scan of the log (recover.h).
 *
 * Accepted batches are applied in log order through a short queue: each
 * record's index slot is prefetched when it enters and the record applied
 * when it leaves (building the index of a large store is dominated by
 * cache misses on the table; this overlaps them). A damaged span is
 * handled where it lies, before the batch that follows it: below the
 * sealed end, the keys its records may have written are marked (see
 * mark_lost()), so that they answer MAPKV_ECORRUPT, never an older value.
 */
#include "recover.h"

#include <assert.h>
#include <string.h>

#include "scan.h"
#include "store_err.h"

#define APPLY_QUEUE 64

typedef struct rebuild {
  mapkv__log *lg;
  mapkv__keymap *km;
  uint64_t off[APPLY_QUEUE], hash[APPLY_QUEUE];
  unsigned head, n;
  /* The header's sealed end (FORMAT.md): damage below it is damage, not a
   * write a crash lost. */
  uint64_t sealed;
  uint64_t lost;     /* the first damage above it (or it, crossed), or 0 */
  uint64_t span_end; /* the end of the damaged span being marked */
  uint64_t bad;      /* records in damaged spans that fail their checksum */
  int rc;
} rebuild;

static int queue_pop(rebuild *b) {
  mapkv__rec r;
  uint64_t off = b->off[b->head], hash = b->hash[b->head];
  int d;
  b->head = (b->head + 1) % APPLY_QUEUE;
  b->n--;
  /* Decoded, bounds-checked and verified by the scan already. */
  d = mapkv__log_decode(b->lg, off, b->lg->cap - off, 0, &r);
  assert(d == MAPKV__REC_OK);
  (void)d;
  return mapkv__keymap_apply(b->km, off, &r, hash);
}

static int queue_drain(rebuild *b) {
  int rc = 0;
  while (b->n > 0 && rc == 0)
    rc = queue_pop(b);
  return rc;
}

static int apply_batch(void *ctx, const uint64_t *offs, size_t n) {
  rebuild *b = ctx;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = b->lg->base + offs[i];
    uint64_t hash;
    unsigned slot;
    int rc;
    if (mapkv__rec_type_at(p) == MAPKV__T_COMMIT)
      continue;
    if (b->n == APPLY_QUEUE && (rc = queue_pop(b)) != 0)
      return rc;
    hash = mapkv__index_hash(mapkv__log_key_at(b->lg, offs[i]),
                             mapkv__rec_klen_at(p));
    mapkv__index_prefetch(&b->km->ix, hash);
    slot = (b->head + b->n) % APPLY_QUEUE;
    b->off[slot] = offs[i];
    b->hash[slot] = hash;
    b->n++;
  }
  return 0;
}

/* Marks the key a damaged (or lost) record at off may have changed, so
 * that a get of it answers MAPKV_ECORRUPT instead of an older value: the
 * record its entry points at is marked (the entry itself keeps pointing at
 * a record with that key, so that its hash can always be taken from the
 * record). Its key bytes are trusted only if the record is intact;
 * otherwise prev, the key's newest record before it, names the key, when
 * what prev points at is an intact record the map still has as its key's
 * newest. */
static void mark_lost(void *ctx, uint64_t off, const mapkv__rec *r) {
  rebuild *b = ctx;
  mapkv__log *lg = b->lg;
  mapkv__keymap *km = b->km;
  mapkv__probe p;
  mapkv__rec pr, sr;
  uint64_t hash = 0, target = 0;
  int damaged = 0, intact, sound;
  if (b->rc != 0 || off >= b->sealed ||
      (r->type == MAPKV__T_COMMIT && r->klen == 0 && r->prev == 0))
    return;
  /* Sound in structure inside its damaged span (as the census reads it:
   * one read leniently is not, even if its checksum holds, e.g. a DEL with
   * a value), and intact. A record that runs past its span (its lengths,
   * or the sealed end, are damaged) is neither, and gets no entry: the
   * bytes past the span belong to other records, or lie after the log,
   * where new records will go. */
  sound =
      mapkv__log_decode(lg, off, b->span_end - off, 0, &sr) == MAPKV__REC_OK;
  intact = sound && (r->type == MAPKV__T_PUT || r->type == MAPKV__T_DEL) &&
           mapkv__rec_checksum_ok(lg->base + off, r, lg->hdr.file_id);
  if (!intact && r->prev >= MAPKV__HDR_PAGE && r->prev < off &&
      mapkv__log_decode(lg, r->prev, lg->cap - r->prev, 1, &pr) ==
          MAPKV__REC_OK &&
      pr.type != MAPKV__T_COMMIT &&
      mapkv__index_has(&km->ix, mapkv__index_hash(pr.key, pr.klen), r->prev))
    target = r->prev;
  if (target != 0 && r->key != NULL &&
      (pr.klen != r->klen || memcmp(pr.key, r->key, r->klen) != 0)) {
    /* prev names another key than the key bytes: one of the two was hit,
     * and which cannot be told. The key the bytes name, if it has an
     * entry, is marked too (else a hit prev naming another key's record
     * would leave this key's older value readable). */
    uint64_t also = mapkv__keymap_find(
        km, r->key, r->klen, mapkv__index_hash(r->key, r->klen), &p, &damaged);
    if (also != 0 && also != target &&
        (b->rc = mapkv__keymap_mark(km, also)) != 0)
      return;
  }
  if (target == 0 && r->key != NULL) {
    hash = mapkv__index_hash(r->key, r->klen);
    target = mapkv__keymap_find(km, r->key, r->klen, hash, &p, &damaged);
  }
  if (target == 0) {
    /* A key's first record. Damaged, its key bytes may be what was hit,
     * but are far more likely intact (values are the larger part): only a
     * record sound in structure is taken at its word. */
    if (r->key == NULL || !sound)
      return;
    /* A new key of the lost batch answers MAPKV_ECORRUPT too; a damaged
     * record counts for no live bytes (its lengths are untrusted). */
    if ((b->rc = mapkv__keymap_insert(km, hash, off, intact ? r->size : 0)) !=
        0)
      return;
    target = off;
  }
  b->rc = mapkv__keymap_mark(km, target);
}

/* A damaged span of the middle (or at the end of the sealed log): counted,
 * and below the sealed end its records' keys marked, in log order (the
 * batches before it are in the map, those after it not yet). */
static int on_damage(void *ctx, uint64_t off, uint64_t len, const char *what) {
  rebuild *b = ctx;
  mapkv__census_res c;
  int rc;
  (void)what;
  if (off + len > b->sealed && b->lost == 0)
    b->lost = off > b->sealed ? off : b->sealed;
  if ((rc = queue_drain(b)) != 0)
    return rc;
  b->span_end = off + len;
  mapkv__census(b->lg, off, off + len, off < b->sealed, mark_lost, b, &c);
  b->bad += c.bad;
  /* A record the sealed end cuts would be read whole once the log is
   * sealed past it, completed by what a writer appends there: the sealed
   * end stays where it is, as for damage a crash may have left, so that
   * every later open (and every walk) reads the log as this one. */
  if (c.cut > 0 && off + len == b->sealed && b->lost == 0)
    b->lost = b->sealed;
  return b->rc;
}

int mapkv__recover(mapkv__log *lg, mapkv__keymap *km, uint64_t expected_keys,
                   int salvage, mapkv_stats *found, int *known_damage) {
  rebuild b;
  mapkv__scan_cb cb = {apply_batch, on_damage, &b};
  mapkv__scan_res res;
  mapkv__census_res tail, end_damage;
  uint64_t expect = 0, end, bad;
  int rc;

  memset(&b, 0, sizeof b);
  memset(&end_damage, 0, sizeof end_damage);
  memset(&tail, 0, sizeof tail);
  memset(found, 0, sizeof *found);
  b.lg = lg;
  b.km = km;
  found->clean_open = (lg->hdr.flags & MAPKV__HF_CLEAN) != 0;
  b.sealed = lg->hdr.sealed_end;
  if (b.sealed > lg->cap) {
    if (!salvage)
      return mapkv__fail(
          MAPKV_ETRUNCATED,
          "%s: the header records data up to offset %llu, but the file has "
          "%llu bytes: it was truncated (mapkv recover salvages the intact "
          "records)",
          lg->path, (unsigned long long)b.sealed, (unsigned long long)lg->cap);
    found->truncated_bytes = b.sealed - lg->cap;
    b.sealed = lg->cap;
  }
  if (found->clean_open &&
      lg->hdr.live_records <= lg->cap / MAPKV__REC_OVERHEAD)
    expect = lg->hdr.live_records;
  if ((rc = mapkv__keymap_init(
           km, lg, expect > expected_keys ? expect : expected_keys)) != 0)
    return rc;
  if ((rc = mapkv__scan(lg, lg->cap, &cb, &res)) != 0 ||
      (rc = queue_drain(&b)) != 0)
    goto fail;

  /* Damage at the end of the sealed log is not a tail. */
  end = res.end;
  if (b.sealed > end) {
    mapkv__census(lg, end, b.sealed, 1, NULL, NULL, &end_damage);
    end = b.sealed;
  }
  if (res.nonzero_end > end)
    mapkv__census(lg, end, res.nonzero_end, 0, NULL, NULL, &tail);
  bad = b.bad + end_damage.bad + tail.bad;
  rc = 0;
  if (!salvage && bad >= 2 && res.records == 0)
    rc = mapkv__fail(
        MAPKV_ECORRUPT,
        "%s: %llu records fail their checksums and none passes: the header "
        "does not belong to this log (a header of another store or "
        "generation?) or the log is damaged; nothing was changed (mapkv "
        "verify lists the damage, mapkv recover salvages)",
        lg->path, (unsigned long long)bad);
  else if (!salvage && mapkv__tail_suspect(&tail))
    rc = mapkv__fail(
        MAPKV_ECORRUPT,
        "%s: after offset %llu, %llu records fail their checksums: damage, "
        "not an interrupted write; nothing was dropped (mapkv verify lists "
        "it, mapkv recover salvages the intact records)",
        lg->path, (unsigned long long)end, (unsigned long long)tail.bad);
  if (rc != 0)
    goto fail;
  if (b.sealed > res.end) {
    /* After the last intact batch, but sealed: damage, kept in place. */
    if ((rc = on_damage(&b, res.end, b.sealed - res.end,
                        "damaged records at the end of the data")) != 0)
      goto fail;
    if (res.damaged == 0)
      res.first_damage = res.end;
    res.damaged++;
    res.damaged_bytes += b.sealed - res.end;
  }
  mapkv__keymap_seal_marks(km);

  found->recovered_batches = res.batches;
  found->dropped_tail_bytes = res.nonzero_end > end ? res.nonzero_end - end : 0;
  found->dropped_tail_records = tail.intact;
  found->damaged_regions = res.damaged;
  found->damaged_bytes = res.damaged_bytes;
  found->first_damage_offset = res.first_damage;
  found->damaged_keys = km->nmarked;
  *known_damage = res.damaged > 0 || found->truncated_bytes > 0;
  if ((rc = mapkv__log_recovered(lg, end, res.last_seq, b.lost,
                                 res.nonzero_end)) != 0)
    goto fail;
  return 0;
fail:
  mapkv__keymap_free(km);
  return rc;
}
