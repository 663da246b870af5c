/*
 * cursor.c — iteration over the live records in file order.
 *
 * A cursor walks the log from the header to the end it saw at open. A
 * record is live if the index points at it. The walk (mapkv__walk_next)
 * follows what recovery accepted and runs a few records ahead of what the
 * cursor returns: each candidate's index slot is prefetched, and the
 * liveness check happens when the candidate is returned, so the cache
 * misses on the index overlap.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "scan.h"
#include "store.h"
#include "store_err.h"

#define AHEAD 16

struct mapkv_cursor {
  mapkv_t *db;
  mapkv__walk walk;                 /* over the log up to its end at open */
  uint64_t file_id;                 /* identifies the file the cursor walks */
  uint64_t off[AHEAD], hash[AHEAD]; /* candidates waiting, in file order */
  unsigned head, n;
  size_t plen;
  uint8_t prefix[];
};

int mapkv_cursor_open(mapkv_t *db, const void *prefix, size_t plen,
                      mapkv_cursor_t **out) {
  mapkv_cursor_t *c;
  if (db == NULL || out == NULL || (prefix == NULL && plen > 0))
    return mapkv__fail(MAPKV_EINVAL, "NULL handle, output or prefix");
  if (!mapkv__handle_live(db))
    return mapkv__fail(MAPKV_EINVAL, "not an open handle (closed already?)");
  c = malloc(sizeof *c + plen);
  if (c == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  c->db = db;
  c->plen = plen;
  c->head = c->n = 0;
  if (plen > 0)
    memcpy(c->prefix, prefix, plen);
  pthread_rwlock_rdlock(&db->rw);
  mapkv__walk_init(&c->walk, mapkv__log_end(&db->log));
  c->walk.damaged = mapkv__count_damaged;
  c->walk.ctx = db;
  c->file_id = db->log.hdr.file_id;
  pthread_rwlock_unlock(&db->rw);
  atomic_fetch_add(&db->children, 1);
  *out = c;
  return 0;
}

/* Walks ahead until AHEAD candidates wait or the walk ends. Caller holds
 * rw for reading. */
static void refill(mapkv_cursor_t *c) {
  mapkv_t *db = c->db;
  mapkv__rec r;
  uint64_t at, h;
  while (c->n < AHEAD && mapkv__walk_next(&db->log, &c->walk, &at, &r) == 0) {
    if (r.type != MAPKV__T_PUT || r.klen < c->plen ||
        (c->plen > 0 && memcmp(r.key, c->prefix, c->plen) != 0))
      continue;
    h = mapkv__index_hash(r.key, r.klen);
    mapkv__index_prefetch(&db->map.ix, h);
    c->off[(c->head + c->n) % AHEAD] = at;
    c->hash[(c->head + c->n) % AHEAD] = h;
    c->n++;
  }
}

int mapkv_cursor_next(mapkv_cursor_t *c, const void **key, size_t *klen,
                      const void **val, size_t *vlen) {
  mapkv_t *db;
  int rc = MAPKV_NOTFOUND;
  if (c == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL cursor");
  db = c->db;
  pthread_rwlock_rdlock(&db->rw);
  if (db->log.hdr.file_id != c->file_id) {
    pthread_rwlock_unlock(&db->rw);
    return mapkv__fail(MAPKV_ECHANGED,
                       "the store was compacted while the cursor was open");
  }
  for (;;) {
    mapkv__rec r;
    uint64_t at, h, ver;
    int live;
    if (c->n == 0)
      refill(c);
    if (c->n == 0)
      break;
    at = c->off[c->head];
    h = c->hash[c->head];
    c->head = (c->head + 1) % AHEAD;
    c->n--;
    /* Verified when it was queued; records never change in place. */
    if (mapkv__log_decode(&db->log, at, c->walk.end - at, 0, &r) !=
        MAPKV__REC_OK) {
      assert(0);
      continue;
    }
    do {
      ver = mapkv__read_begin(db);
      live = mapkv__index_has(&db->map.ix, h, at);
    } while (mapkv__read_retry(db, ver));
    if (!live)
      continue; /* replaced or deleted since */
    if (mapkv__keymap_marked(&db->map, at)) {
      /* Its batch was lost to damage: never handed out. */
      atomic_fetch_add(&db->checksum_failures, 1);
      continue;
    }
    if (c->n < AHEAD / 2)
      refill(c);
    if (key != NULL)
      *key = r.key;
    if (klen != NULL)
      *klen = r.klen;
    if (val != NULL)
      *val = r.val;
    if (vlen != NULL)
      *vlen = r.vlen;
    rc = 0;
    break;
  }
  pthread_rwlock_unlock(&db->rw);
  if (rc == MAPKV_NOTFOUND)
    mapkv__fail_static(rc, "no more records");
  return rc;
}

void mapkv_cursor_close(mapkv_cursor_t *c) {
  if (c == NULL)
    return;
  atomic_fetch_sub(&c->db->children, 1);
  free(c);
}
