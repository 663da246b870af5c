/*
 * compact.c — online compaction: a new log, the live records copied into
 * it, and the store's log and key map swapped for the new ones.
 *
 * Under the writer lock (readers keep working): the live records are
 * copied in file order into DB.compact, a new log (log.c: a new file id,
 * the next generation, the store's mode, owner and limits), each as its
 * own batch with fresh sequence numbers and prev 0, with a new key map
 * beside it (mapkv__compact_write(), which a compacting copy shares). The
 * new file is flushed whole, sealed to its end, renamed over DB, and the
 * directory is synced; only then does the handle switch to it (under the
 * reader/writer lock). Until the rename, DB is untouched; after it, DB is
 * the complete new file: a crash leaves one or the other, never neither.
 * A leftover DB.compact is removed by the next writable open.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "compact.h"
#include "os.h"
#include "scan.h"
#include "store.h"
#include "store_err.h"

/* Counts the damaged records the walk meets that the key map points at. */
typedef struct damage_count {
  const mapkv__keymap *map;
  uint64_t n;
} damage_count;

static void count_live_damage(void *ctx, uint64_t off, const mapkv__rec *r) {
  damage_count *d = ctx;
  if (r->type == MAPKV__T_PUT &&
      mapkv__index_has(&d->map->ix, mapkv__index_hash(r->key, r->klen), off))
    d->n++;
}

/* Copies every live, intact record of map (over src) into the new log and
 * map; *bad receives the live records that failed their checksums. */
static int copy_live(const mapkv__log *src, const mapkv__keymap *map,
                     mapkv__log *lg, mapkv__keymap *km, uint64_t *bad) {
  damage_count dc = {map, 0};
  mapkv__walk w;
  mapkv__rec r;
  uint64_t at, h, seq = 0;
  mapkv__walk_init(&w, src->end);
  w.damaged = count_live_damage;
  w.ctx = &dc;
  while (mapkv__walk_next(src, &w, &at, &r) == 0) {
    uint64_t size;
    int rc;
    if (r.type != MAPKV__T_PUT)
      continue;
    h = mapkv__index_hash(r.key, r.klen);
    if (!mapkv__index_has(&map->ix, h, at))
      continue;
    assert(lg->end + r.size <= lg->cap); /* sized for the live bytes */
    size = mapkv__rec_encode(lg->base + lg->end, MAPKV__T_PUT,
                             MAPKV__F_FIRST | MAPKV__F_LAST, ++seq, 0, r.key,
                             r.klen, r.val, r.vlen, lg->hdr.file_id);
    if ((rc = mapkv__keymap_insert(km, h, lg->end, size)) != 0)
      return rc;
    mapkv__log_committed(lg, lg->end + size, seq);
  }
  *bad = dc.n;
  if (dc.n > 0)
    return mapkv__fail(MAPKV_ECORRUPT,
                       "%s: %llu live record(s) failed their checksums",
                       src->path, (unsigned long long)dc.n);
  return 0;
}

int mapkv__compact_write(const mapkv__log *src, const mapkv__keymap *map,
                         const char *tmp, const mapkv__new_log *how,
                         uint64_t expected_keys, int clean, mapkv__log *nl,
                         mapkv__keymap *nm, uint64_t *damaged) {
  uint64_t bad = 0;
  int rc, mapped = 0;
  memset(nm, 0, sizeof *nm);
  if ((rc = mapkv__log_create_beside(nl, src, tmp, how)) != 0)
    goto fail;
  if ((rc = mapkv__keymap_init(
           nm, nl,
           map->ix.count > expected_keys ? map->ix.count : expected_keys)) != 0)
    goto fail;
  mapped = 1;
  if ((rc = copy_live(src, map, nl, nm, &bad)) != 0)
    goto fail;
  /* Flushed whole, then sealed to its end by its header. */
  if ((rc = mapkv__log_flush_to(nl, nl->cap)) != 0)
    goto fail;
  mapkv__log_seal(nl);
  if ((rc = mapkv__log_write_header(nl, clean, nm->ix.count, nm->live_bytes)) !=
      0)
    goto fail;
  if (damaged != NULL)
    *damaged = 0;
  return 0;
fail:
  if (damaged != NULL)
    *damaged = bad;
  if (mapped)
    mapkv__keymap_free(nm);
  if (nl->path != NULL)
    mapkv__os.unlink(tmp);
  mapkv__log_close(nl);
  return rc;
}

int mapkv_compact(mapkv_t *db) {
  mapkv__log nl, old;
  mapkv__keymap nm, oldm;
  mapkv__new_log how;
  struct stat st;
  char *tmp = NULL;
  uint64_t bad = 0;
  int rc, renamed = 0, made = 0;

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
  if (mapkv__os.fstat(db->log.fd, &st) != 0) {
    rc = mapkv__fail_errno("fstat");
    goto out;
  }
  if ((tmp = mapkv__log_compact_name(db->log.path)) == NULL) {
    rc = mapkv__fail(MAPKV_ENOMEM, "out of memory");
    goto out;
  }
  /* The new file takes the store's mode and owner, and a reservation like
   * the store's (or, when the address space allows only less for the two
   * of them, room for the live records to grow). Writers are excluded by
   * wlock, so the map is stable; readers may run alongside. */
  how.size = MAPKV__HDR_PAGE + db->map.live_bytes;
  how.reserve = db->log.reserve;
  how.floor = db->opts.reserve != 0
                  ? db->log.reserve
                  : mapkv__log_reserve_floor(how.size, &db->opts);
  how.like = &st;
  how.keep_owner = 1;
  rc = mapkv__compact_write(&db->log, &db->map, tmp, &how,
                            db->opts.expected_keys, 0, &nl, &nm, &bad);
  if (rc == MAPKV_ECORRUPT && bad > 0) {
    atomic_fetch_add(&db->checksum_failures, bad);
    db->known_damage = 1;
    rc = mapkv__fail(MAPKV_ECORRUPT,
                     "%s: a live record failed its checksum during "
                     "compaction; the store is unchanged (mapkv verify "
                     "lists the damage, mapkv recover salvages)",
                     db->log.path);
  }
  if (rc != 0)
    goto out;
  made = 1;
  rc = mapkv__log_replace(&nl, db->log.path, &renamed);
  if (!renamed) {
    mapkv__keymap_free(&nm);
    goto out;
  }
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
  mapkv__keymap_free(&oldm);
  mapkv__log_close(&old);
  memset(&nl, 0, sizeof nl);
  nl.fd = -1;

out:
  if (made)
    mapkv__os.unlink(nl.path);
  mapkv__log_close(&nl);
  pthread_mutex_unlock(&db->wlock);
  free(tmp);
  return rc;
}
