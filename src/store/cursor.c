/*
 * cursor.c — iteration over the live records in file order.
 *
 * A cursor walks the log from the header to the end it saw at open. A
 * record is live if the index points at it; damaged spans (skipped at
 * recovery) are stepped over with a forward search for the next record
 * the index knows. Every record returned has had its checksum verified.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_err.h"

struct mapkv_cursor {
  mapkv_t *db;
  uint64_t pos, end;
  uint64_t file_id; /* identifies the file the cursor walks */
  size_t plen;
  uint8_t prefix[];
};

int mapkv_cursor_open(mapkv_t *db, const void *prefix, size_t plen,
                      mapkv_cursor_t **out) {
  mapkv_cursor_t *c;
  if (db == NULL || out == NULL || (prefix == NULL && plen > 0))
    return mapkv__fail(MAPKV_EINVAL, "NULL handle, output or prefix");
  c = malloc(sizeof *c + plen);
  if (c == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  c->db = db;
  c->plen = plen;
  if (plen > 0)
    memcpy(c->prefix, prefix, plen);
  pthread_rwlock_rdlock(&db->rw);
  c->pos = MAPKV__HDR_PAGE;
  c->end = db->end;
  c->file_id = db->hdr.file_id;
  pthread_rwlock_unlock(&db->rw);
  *out = c;
  return 0;
}

int mapkv_cursor_next(mapkv_cursor_t *c, const void **key, size_t *klen,
                      const void **val, size_t *vlen) {
  mapkv_t *db;
  int rc = MAPKV_NOTFOUND;
  if (c == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL cursor");
  db = c->db;
  pthread_rwlock_rdlock(&db->rw);
  if (db->hdr.file_id != c->file_id) {
    pthread_rwlock_unlock(&db->rw);
    return mapkv__fail(MAPKV_ECHANGED,
                       "the store was compacted while the cursor was open");
  }
  while (c->pos < c->end) {
    mapkv__rec r;
    mapkv__probe p;
    uint64_t at = c->pos;
    int live;
    /* The lengths are trusted only once the checksum holds: a damaged
     * length must not make the walk jump over intact records. */
    if (mapkv__rec_decode(db->base + at, c->end - at, 0, 0, &r) !=
        MAPKV__REC_OK) {
      c->pos = mapkv__skip_damage(db, at, c->end);
      continue;
    }
    live = r.type == MAPKV__T_PUT &&
           mapkv__find(db, r.key, r.klen, mapkv__index_hash(r.key, r.klen),
                       &p) == at;
    if (!mapkv__rec_checksum_ok(db->base + at, &r, db->hdr.file_id)) {
      if (live)
        atomic_fetch_add(&db->checksum_failures, 1);
      c->pos = mapkv__skip_damage(db, at, c->end);
      continue;
    }
    c->pos += r.size;
    if (!live || r.klen < c->plen ||
        (c->plen > 0 && memcmp(r.key, c->prefix, c->plen) != 0))
      continue;
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

void mapkv_cursor_close(mapkv_cursor_t *c) { free(c); }
