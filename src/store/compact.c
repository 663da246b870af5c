/*
 * compact.c — online compaction: a new log, the live records copied into
 * it, and the store's log and key map swapped for the new ones.
 *
 * Under the writer lock (readers keep working): the live records are
 * copied in file order into DB.compact, a new log (log.c: a new file id,
 * the next generation, the store's mode, owner and limits), each as its
 * own batch with fresh sequence numbers and prev 0, with a new key map
 * beside it. The new file is flushed whole, sealed to its end, renamed
 * over DB, and the directory is synced; only then does the handle switch
 * to it (under the reader/writer lock). Until the rename, DB is untouched;
 * after it, DB is the complete new file: a crash leaves one or the other,
 * never neither. A leftover DB.compact is removed by the next writable
 * open.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"
#include "scan.h"
#include "store.h"
#include "store_err.h"

/* Copies every live, intact record of db into the new log and map; a live
 * record that fails its checksum stops the copy (MAPKV_ECORRUPT):
 * compaction never drops damage silently. */
static int copy_live(mapkv_t *db, mapkv__log *lg, mapkv__keymap *km) {
  mapkv__walk w;
  mapkv__rec r;
  uint64_t at, h, seq = 0;
  uint64_t failures = atomic_load(&db->checksum_failures);
  mapkv__walk_init(&w, db->log.end);
  w.damaged = mapkv__count_damaged;
  w.ctx = db;
  while (mapkv__walk_next(&db->log, &w, &at, &r) == 0) {
    uint64_t size;
    int rc;
    if (r.type != MAPKV__T_PUT)
      continue;
    h = mapkv__index_hash(r.key, r.klen);
    if (!mapkv__index_has(&db->map.ix, h, at))
      continue;
    assert(lg->end + r.size <= lg->cap); /* sized for the live bytes */
    size = mapkv__rec_encode(lg->base + lg->end, MAPKV__T_PUT,
                             MAPKV__F_FIRST | MAPKV__F_LAST, ++seq, 0, r.key,
                             r.klen, r.val, r.vlen, lg->hdr.file_id);
    if ((rc = mapkv__keymap_insert(km, h, lg->end, size)) != 0)
      return rc;
    mapkv__log_committed(lg, lg->end + size, seq);
  }
  if (atomic_load(&db->checksum_failures) != failures) {
    db->known_damage = 1;
    return mapkv__fail(MAPKV_ECORRUPT,
                       "%s: a live record failed its checksum during "
                       "compaction; the store is unchanged (mapkv verify "
                       "lists the damage, mapkv recover salvages)",
                       db->log.path);
  }
  return 0;
}

int mapkv_compact(mapkv_t *db) {
  mapkv__log nl, old;
  mapkv__keymap nm, oldm;
  char *tmp = NULL;
  int rc, renamed = 0, made = 0, mapped = 0;

  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  if (db->readonly)
    return mapkv__fail(MAPKV_EREADONLY, "the store is open read-only");
  memset(&nl, 0, sizeof nl);
  nl.fd = -1;
  pthread_mutex_lock(&db->wlock);
  if (db->known_damage || atomic_load(&db->checksum_failures) > 0) {
    rc = mapkv__fail(MAPKV_ECORRUPT,
                     "%s has damaged records, which compaction would drop "
                     "without a trace; the store is unchanged (mapkv verify "
                     "lists the damage, mapkv recover salvages the intact "
                     "records and keeps the damaged file)",
                     db->log.path);
    goto out;
  }
  if ((rc = mapkv__log_check_path(&db->log)) != 0)
    goto out;
  if ((tmp = mapkv__log_compact_name(db->log.path)) == NULL) {
    rc = mapkv__fail(MAPKV_ENOMEM, "out of memory");
    goto out;
  }
  if ((rc = mapkv__log_create_beside(
           &nl, &db->log, tmp, MAPKV__HDR_PAGE + db->map.live_bytes)) != 0)
    goto out;
  made = 1;
  if ((rc = mapkv__keymap_init(&nm, &nl,
                               db->map.ix.count > db->opts.expected_keys
                                   ? db->map.ix.count
                                   : db->opts.expected_keys)) != 0)
    goto out;
  mapped = 1;
  /* Writers are excluded by wlock, so the map is stable; readers may run
   * alongside. */
  if ((rc = copy_live(db, &nl, &nm)) != 0)
    goto out;
  /* Flushed whole, then sealed to its end by its header (not clean: the
   * handle goes on writing it). */
  if ((rc = mapkv__log_flush_to(&nl, nl.cap)) != 0)
    goto out;
  mapkv__log_seal(&nl);
  if ((rc = mapkv__log_write_header(&nl, 0, nm.ix.count, nm.live_bytes)) != 0)
    goto out;
  rc = mapkv__log_replace(&nl, db->log.path, &renamed);
  if (!renamed)
    goto out;
  /* From here on the new file is the store (rc: the directory sync). */
  made = 0;
  pthread_rwlock_wrlock(&db->rw);
  old = db->log;
  oldm = db->map;
  db->log = nl;
  db->map = nm;
  mapkv__keymap_rebind(&db->map, &db->log);
  db->known_damage = 0;
  pthread_rwlock_unlock(&db->rw);
  mapped = 0;
  mapkv__keymap_free(&oldm);
  mapkv__log_close(&old);
  memset(&nl, 0, sizeof nl);
  nl.fd = -1;

out:
  if (mapped)
    mapkv__keymap_free(&nm);
  if (made)
    mapkv__os.unlink(nl.path);
  mapkv__log_close(&nl);
  pthread_mutex_unlock(&db->wlock);
  free(tmp);
  return rc;
}
