/*
 * read.c — gets, zero-copy views, many keys at once, and mapkv_exists().
 *
 * A lookup probes the index, compares the key against each candidate
 * record, and verifies the checksum of the record it returns; it runs as a
 * seqlock reader (store.h) and is retried when a commit overlapped it, so
 * that a batch is seen all at once. A record recovery marked, or one that
 * fails its checksum, answers MAPKV_ECORRUPT.
 */
#include <string.h>

#include "store.h"
#include "store_err.h"

/* Finds key and checks its record. Caller holds rw for reading. On success
 * *val and *vlen describe the value inside the mapping. */
static int lookup_hashed(mapkv_t *db, const void *key, size_t klen,
                         uint64_t hash, const uint8_t **val, size_t *vlen) {
  mapkv__probe p;
  mapkv__rec r;
  uint64_t off, end;
  int damaged = 0;
  off = mapkv__keymap_find(&db->map, key, klen, hash, &p, &damaged);
  end = mapkv__log_end(&db->log);
  /* A slot of a commit still being applied may point past the end this
   * reader saw; the caller's retry then finds the commit done. */
  if (off == 0 || off >= end)
    return mapkv__fail_static(MAPKV_NOTFOUND, "key not found");
  if (damaged ||
      mapkv__log_decode(&db->log, off, end - off, 1, &r) != MAPKV__REC_OK) {
    atomic_fetch_add(&db->checksum_failures, 1);
    return mapkv__fail(MAPKV_ECORRUPT,
                       "record at offset %llu: checksum mismatch",
                       (unsigned long long)off);
  }
  /* Only a marked slot names a DEL record. */
  if (mapkv__keymap_marked(&db->map, off) || r.type != MAPKV__T_PUT) {
    atomic_fetch_add(&db->checksum_failures, 1);
    return mapkv__fail(MAPKV_ECORRUPT,
                       "the newest batch of this key (at offset %llu) was "
                       "lost to damage",
                       (unsigned long long)off);
  }
  *val = r.val;
  *vlen = r.vlen;
  return 0;
}

static int lookup(mapkv_t *db, const void *key, size_t klen,
                  const uint8_t **val, size_t *vlen) {
  if (key == NULL && klen > 0)
    return mapkv__fail(MAPKV_EINVAL, "NULL key with nonzero length");
  return lookup_hashed(db, key, klen, mapkv__index_hash(key, klen), val, vlen);
}

/* lookup() retried until no commit overlapped it. Caller holds rw for
 * reading. */
static int lookup_stable(mapkv_t *db, const void *key, size_t klen,
                         const uint8_t **val, size_t *vlen) {
  uint64_t ver;
  int rc;
  do {
    ver = mapkv__read_begin(db);
    rc = lookup(db, key, klen, val, vlen);
  } while (mapkv__read_retry(db, ver));
  return rc;
}

int mapkv_get(mapkv_t *db, const void *key, size_t klen, void *buf, size_t cap,
              size_t *vlen) {
  const uint8_t *v = NULL;
  size_t n = 0;
  int rc;
  if (db == NULL || (buf == NULL && cap > 0))
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or buffer");
  pthread_rwlock_rdlock(&db->rw);
  rc = lookup_stable(db, key, klen, &v, &n);
  if (rc == 0) {
    if (n > cap)
      rc = mapkv__fail(MAPKV_EBUFSMALL, "value of %zu bytes, buffer of %zu", n,
                       cap);
    else if (n > 0)
      memcpy(buf, v, n);
    if (vlen != NULL)
      *vlen = n;
  }
  pthread_rwlock_unlock(&db->rw);
  return rc;
}

int mapkv_get_view(mapkv_t *db, const void *key, size_t klen, const void **val,
                   size_t *vlen) {
  const uint8_t *v = NULL;
  size_t n = 0;
  int rc;
  if (db == NULL || val == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or output");
  pthread_rwlock_rdlock(&db->rw);
  rc = lookup_stable(db, key, klen, &v, &n);
  pthread_rwlock_unlock(&db->rw);
  if (rc == 0) {
    *val = v;
    if (vlen != NULL)
      *vlen = n;
  }
  return rc;
}

/* Keys per group of mapkv_get_many(): enough misses in flight to cover the
 * memory latency, few enough that the group's lines stay in L1. */
#define MANY_GROUP 16

/* Bytes of a candidate record fetched ahead: header, key and the start of
 * the value of a small record. */
#define MANY_AHEAD 192

int mapkv_get_many(mapkv_t *db, size_t n, const void *const *keys,
                   const size_t *klens, const void **vals, size_t *vlens,
                   int *rcs) {
  uint64_t hash[MANY_GROUP];
  if (n == 0)
    return 0;
  if (db == NULL || keys == NULL || klens == NULL || vals == NULL ||
      rcs == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or array");
  for (size_t i = 0; i < n; i++)
    if (keys[i] == NULL && klens[i] > 0)
      return mapkv__fail(MAPKV_EINVAL, "key %zu: NULL with nonzero length", i);
  for (size_t g = 0; g < n; g += MANY_GROUP) {
    size_t m = n - g < MANY_GROUP ? n - g : MANY_GROUP;
    uint64_t ver;
    /* Per group, so that a long call does not hold off index growth. */
    pthread_rwlock_rdlock(&db->rw);
    /* Stage 1: every key's home slot. */
    for (size_t j = 0; j < m; j++) {
      hash[j] = mapkv__index_hash(keys[g + j], klens[g + j]);
      mapkv__index_prefetch(&db->map.ix, hash[j]);
    }
    do {
      uint64_t end;
      ver = mapkv__read_begin(db);
      end = mapkv__log_end(&db->log);
      /* Stage 2: the first candidate record of every key (its slot is in
       * cache by now); what it holds is checked in stage 3. */
      for (size_t j = 0; j < m; j++) {
        mapkv__probe p;
        uint64_t off;
        mapkv__index_probe_start(&db->map.ix, hash[j], &p);
        off = mapkv__index_probe_next(&db->map.ix, &p);
        /* A hint only (no fault), kept inside the log all the same. */
        for (uint64_t b = 0; off != 0 && b < MANY_AHEAD && off + b < end;
             b += 64)
          __builtin_prefetch(db->log.base + off + b);
      }
      /* Stage 3: the lookups proper. */
      for (size_t j = 0; j < m; j++) {
        const uint8_t *v = NULL;
        size_t len = 0;
        int rc =
            lookup_hashed(db, keys[g + j], klens[g + j], hash[j], &v, &len);
        rcs[g + j] = rc;
        vals[g + j] = rc == 0 ? v : NULL;
        if (vlens != NULL)
          vlens[g + j] = rc == 0 ? len : 0;
      }
    } while (mapkv__read_retry(db, ver));
    pthread_rwlock_unlock(&db->rw);
  }
  return 0;
}

int mapkv_exists(mapkv_t *db, const void *key, size_t klen) {
  mapkv__probe p;
  uint64_t off, ver, hash;
  int damaged;
  if (db == NULL || (key == NULL && klen > 0))
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or key");
  hash = mapkv__index_hash(key, klen);
  /* The marks change with the map (compaction): read them under rw. */
  pthread_rwlock_rdlock(&db->rw);
  do {
    ver = mapkv__read_begin(db);
    damaged = 0;
    off = mapkv__keymap_find(&db->map, key, klen, hash, &p, &damaged);
  } while (mapkv__read_retry(db, ver));
  if (off != 0 && mapkv__keymap_marked(&db->map, off))
    damaged = 1;
  pthread_rwlock_unlock(&db->rw);
  if (damaged)
    return mapkv__fail(MAPKV_ECORRUPT,
                       "record at offset %llu: damaged, or its batch lost to "
                       "damage",
                       (unsigned long long)off);
  return off != 0;
}

void mapkv__count_damaged(void *ctx, uint64_t off, const mapkv__rec *r) {
  mapkv_t *db = ctx;
  if (r->type == MAPKV__T_PUT &&
      mapkv__index_has(&db->map.ix, mapkv__index_hash(r->key, r->klen), off))
    atomic_fetch_add(&db->checksum_failures, 1);
}
