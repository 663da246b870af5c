/*
 * inspect.c — mapkv_stat() and mapkv_verify(): the figures of a store, and
 * a walk over the whole file with every checksum checked.
 */
#include <stddef.h>
#include <string.h>

#include "scan.h"
#include "store.h"
#include "store_err.h"

int mapkv_stat_size(mapkv_t *db, mapkv_stats *out, size_t size) {
  mapkv_stats full, *st = &full;
  if (db == NULL || out == NULL || size < MAPKV__STATS_MIN_SIZE)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or output, or a size "
                                     "smaller than any mapkv_stats");
  pthread_mutex_lock(&db->wlock); /* the figures of one commit boundary */
  pthread_rwlock_rdlock(&db->rw);
  *st = db->rec;
  st->format_version = db->log.hdr.version;
  st->records = db->map.ix.count;
  st->live_bytes = db->map.live_bytes;
  st->dead_bytes = db->log.end - MAPKV__HDR_PAGE - db->map.live_bytes;
  st->data_end = db->log.end;
  st->file_size = db->log.cap;
  st->mapped_size = db->log.cap;
  st->reserved_size = db->log.reserve;
  st->reserve_requested = db->log.wanted;
  st->index_slots = db->map.ix.mask + 1;
  st->index_bytes = mapkv__index_bytes(&db->map.ix);
  st->last_seq = db->log.seq;
  st->generation = db->log.hdr.generation;
  st->checksum_failures = atomic_load(&db->checksum_failures);
  st->max_key_size = db->opts.max_key_size;
  st->max_value_size = db->opts.max_value_size;
  pthread_rwlock_unlock(&db->rw);
  pthread_mutex_unlock(&db->wlock);
  if (size > sizeof full)
    memset((char *)out + sizeof full, 0, size - sizeof full);
  memcpy(out, &full, size < sizeof full ? size : sizeof full);
  return 0;
}

typedef struct verify_ctx {
  mapkv_damage_fn report;
  void *ctx;
  uint64_t spans;
} verify_ctx;

static int verify_damage(void *ctx, uint64_t off, uint64_t len,
                         const char *what) {
  verify_ctx *v = ctx;
  v->spans++;
  if (v->report != NULL)
    v->report(v->ctx, off, len, what);
  return 0;
}

int mapkv_verify(mapkv_t *db, mapkv_damage_fn report, void *ctx,
                 uint64_t *damaged) {
  verify_ctx v = {report, ctx, 0};
  mapkv__scan_cb cb = {NULL, verify_damage, &v};
  mapkv__scan_res res;
  mapkv__census_res tail;
  uint64_t first = 0, from;
  int rc;
  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  pthread_mutex_lock(&db->wlock);
  /* The whole file, not only the data: what lies after it is either an
   * interrupted write (which the next writer drops) or damage. */
  rc = mapkv__scan(&db->log, db->log.cap, &cb, &res);
  if (rc == 0 && res.damaged > 0)
    first = res.first_damage;
  if (rc == 0 && res.end < db->log.end) {
    /* Damage at the very end of the data (nothing intact follows). */
    verify_damage(&v, res.end, db->log.end - res.end,
                  "damaged records at the end of the data");
    if (first == 0)
      first = res.end;
  }
  from = res.end > db->log.end ? res.end : db->log.end;
  if (rc == 0 && res.nonzero_end > from) {
    mapkv__census(&db->log, from, res.nonzero_end, 0, NULL, NULL, &tail);
    if (mapkv__tail_suspect(&tail)) {
      verify_damage(&v, from, res.nonzero_end - from,
                    "records that fail their checksums after the data "
                    "(not an interrupted write)");
      if (first == 0)
        first = from;
    }
  }
  if (rc == 0 && res.records == 0 && v.spans == 0) {
    /* Nothing verifies (no batch accepted) while sound records fail their
     * checksums: what makes every open but a salvage one refuse the store
     * (mapkv__recover()), counted the same way. */
    uint64_t s = db->log.hdr.sealed_end < db->log.cap ? db->log.hdr.sealed_end
                                                      : db->log.cap;
    mapkv__census_res sealed_part;
    memset(&tail, 0, sizeof tail);
    mapkv__census(&db->log, MAPKV__HDR_PAGE, s, 1, NULL, NULL, &sealed_part);
    if (res.nonzero_end > s)
      mapkv__census(&db->log, s, res.nonzero_end, 0, NULL, NULL, &tail);
    if (sealed_part.bad + tail.bad >= 2) {
      verify_damage(&v, MAPKV__HDR_PAGE, res.nonzero_end - MAPKV__HDR_PAGE,
                    "records fail their checksums and none is in an "
                    "accepted batch (a header of another store or "
                    "generation?)");
      if (first == 0)
        first = MAPKV__HDR_PAGE;
    }
  }
  if (rc == 0 && db->rec.truncated_bytes > 0) {
    verify_damage(&v, db->log.cap, db->rec.truncated_bytes,
                  "the file ends before the data its header records "
                  "(truncated)");
    if (first == 0)
      first = db->log.cap;
  }
  pthread_mutex_unlock(&db->wlock);
  if (rc != 0)
    return rc;
  if (damaged != NULL)
    *damaged = v.spans;
  if (v.spans > 0)
    return mapkv__fail(MAPKV_ECORRUPT,
                       "%llu damaged span(s), the first at offset %llu",
                       (unsigned long long)v.spans, (unsigned long long)first);
  return 0;
}
