/*
 * write.c — puts, deletes, batches and mapkv_sync().
 *
 * One commit = one batch of records, under wlock:
 *   1. make room: the log's blocks reserved on disk, then the mapping grown
 *      (readers that search the mapping are kept out only while its length
 *      changes) and room in the index, so that nothing below can fail
 *      half-way;
 *   2. encode the records after the log's end (invisible: nothing points
 *      there), each naming the key's newest record before the batch
 *      (prev);
 *   3. with MAPKV_SYNC_COMMIT, msync the pages from the last flushed byte
 *      to the new end — one flush per commit; on failure the bytes are
 *      zeroed and the commit is not applied;
 *   4. point the key map at the new records and publish the new end,
 *      between mapkv__write_begin/end: readers see the batch all at once.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_err.h"

/* Index slots prefetched this many operations ahead in a batch. */
#define APPLY_AHEAD 16

/* One operation of a commit. */
typedef struct op {
  uint8_t type;
  uint32_t klen, vlen;
  const void *key, *val;
} op;

static int check_kv(const mapkv_t *db, const void *key, size_t klen,
                    const void *val, size_t vlen) {
  if ((key == NULL && klen > 0) || (val == NULL && vlen > 0))
    return mapkv__fail(MAPKV_EINVAL, "NULL key or value with nonzero length");
  if (klen > db->opts.max_key_size)
    return mapkv__fail(MAPKV_EKEYSIZE,
                       "key of %zu bytes exceeds the limit of %u", klen,
                       db->opts.max_key_size);
  if (vlen > db->opts.max_value_size)
    return mapkv__fail(MAPKV_EVALSIZE,
                       "value of %zu bytes exceeds the limit of %u", vlen,
                       db->opts.max_value_size);
  return 0;
}

static int check_writable(const mapkv_t *db) {
  if (db->log.readonly)
    return mapkv__fail(MAPKV_EREADONLY, "%s is open read-only", db->log.path);
  return 0;
}

/* Makes room for `need` more bytes after the log's end, and for n more
 * keys in the index. Caller holds wlock. */
static int make_room(mapkv_t *db, uint64_t need, size_t n) {
  uint64_t newcap;
  int rc = mapkv__log_reserve_room(&db->log, need, db->opts.initial_size,
                                   db->opts.growth_step, &newcap);
  if (rc != 0)
    return rc;
  if (newcap != db->log.cap) {
    /* Readers never touch the mapping core, but cursors search through
     * it: keep them out while its length changes. The base does not
     * move. */
    pthread_rwlock_wrlock(&db->rw);
    rc = mapkv__log_resize(&db->log, newcap);
    pthread_rwlock_unlock(&db->rw);
    if (rc != 0)
      return rc;
  }
  if (db->map.ix.count + n > db->map.ix.limit) { /* only writers change it */
    pthread_rwlock_wrlock(&db->rw);
    rc = mapkv__keymap_reserve(&db->map, n);
    pthread_rwlock_unlock(&db->rw);
  }
  return rc;
}

/* Writes ops as one batch. Caller holds wlock and has checked the ops. */
static int commit_ops(mapkv_t *db, const op *ops, size_t n) {
  mapkv__log *lg = &db->log;
  mapkv__keymap *km = &db->map;
  uint64_t total = 0, at, seq, hash1 = 0, prev1 = 0;
  uint64_t *hashes = NULL;
  uint8_t cval[MAPKV__COMMIT_VALUE];
  mapkv__probe p1;
  int rc;

  for (size_t i = 0; i < n; i++)
    total += MAPKV__REC_OVERHEAD + (uint64_t)ops[i].klen + ops[i].vlen;
  if (n > 1)
    total += MAPKV__REC_OVERHEAD + sizeof cval;
  if (lg->seq + n + 1 > MAPKV__SEQ_MAX)
    return mapkv__fail(MAPKV_EFULL, "sequence numbers exhausted");
  if ((rc = make_room(db, total, n)) != 0)
    return rc;

  /* Every key's hash first, so that each index slot can be prefetched a
   * few operations before it is needed (a large batch misses the cache on
   * almost every slot). */
  if (n > 1 && n > db->nhashes) {
    uint64_t *h = realloc(db->hashes, n * sizeof *h);
    if (h != NULL) {
      db->hashes = h;
      db->nhashes = n;
    }
  }
  if (n > 1 && n <= db->nhashes) {
    hashes = db->hashes;
    for (size_t i = 0; i < n; i++)
      hashes[i] = mapkv__index_hash(ops[i].key, ops[i].klen);
  }

  /* Each record names the key's newest record before this batch (prev):
   * the map as it stands, since it changes only after the flush. */
  at = lg->end;
  seq = lg->seq;
  for (size_t i = 0; i < n; i++) {
    uint8_t flags =
        (uint8_t)((i == 0 ? MAPKV__F_FIRST : 0) | (n == 1 ? MAPKV__F_LAST : 0));
    uint64_t h =
        hashes != NULL ? hashes[i] : mapkv__index_hash(ops[i].key, ops[i].klen);
    mapkv__probe p;
    int damaged = 0;
    uint64_t prev;
    if (hashes != NULL && i + APPLY_AHEAD < n)
      mapkv__index_prefetch(&km->ix, hashes[i + APPLY_AHEAD]);
    prev = mapkv__keymap_find(km, ops[i].key, ops[i].klen, h, &p, &damaged);
    if (n == 1) {
      hash1 = h;
      prev1 = prev;
      p1 = p;
    }
    at += mapkv__rec_encode(lg->base + at, ops[i].type, flags, ++seq, prev,
                            ops[i].key, ops[i].klen, ops[i].val, ops[i].vlen,
                            lg->hdr.file_id);
  }
  if (n > 1) {
    mapkv__commit_value(cval, n);
    at +=
        mapkv__rec_encode(lg->base + at, MAPKV__T_COMMIT, MAPKV__F_LAST, ++seq,
                          0, NULL, 0, cval, sizeof cval, lg->hdr.file_id);
  }
  assert(at == lg->end + total && at <= lg->cap);
  if (db->opts.sync_mode == MAPKV_SYNC_COMMIT &&
      (rc = mapkv__log_flush_to(lg, at)) != 0) {
    mapkv__log_discard(lg, at);
    return rc;
  }

  /* Readers are not excluded: they see the index change through the
   * version (store.h) and retry, so the batch is visible all at once. */
  mapkv__write_begin(db);
  if (n == 1) {
    /* The probe of the lookup above is still valid: only this writer
     * changes the index, and the table did not grow since. */
    uint64_t off = lg->end;
    if (ops[0].type == MAPKV__T_PUT && prev1 != 0)
      mapkv__keymap_replace(km, &p1, prev1, off, at - off);
    else if (ops[0].type == MAPKV__T_PUT)
      rc = mapkv__keymap_insert(km, hash1, off, at - off);
    else if (prev1 != 0)
      mapkv__keymap_remove(km, &p1, prev1);
    assert(rc == 0); /* room was reserved */
    if (mapkv__test_pause != NULL)
      mapkv__test_pause();
  } else {
    size_t i = 0;
    for (uint64_t off = lg->end; off < at; i++) {
      mapkv__rec r;
      int d = mapkv__log_decode(lg, off, at - off, 0, &r);
      assert(d == MAPKV__REC_OK && i <= n); /* written just above */
      (void)d;
      if (hashes != NULL && i + APPLY_AHEAD < n)
        mapkv__index_prefetch(&km->ix, hashes[i + APPLY_AHEAD]);
      if (i < n)
        rc = mapkv__keymap_apply(
            km, off, &r,
            hashes != NULL ? hashes[i] : mapkv__index_hash(r.key, r.klen));
      assert(rc == 0); /* room was reserved */
      off += r.size;
      if (mapkv__test_pause != NULL)
        mapkv__test_pause();
    }
  }
  mapkv__log_committed(lg, at, seq);
  mapkv__write_end(db);
  return 0;
}

int mapkv_put(mapkv_t *db, const void *key, size_t klen, const void *val,
              size_t vlen) {
  op o = {MAPKV__T_PUT, (uint32_t)klen, (uint32_t)vlen, key, val};
  int rc;
  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  if ((rc = check_writable(db)) != 0 ||
      (rc = check_kv(db, key, klen, val, vlen)) != 0)
    return rc;
  pthread_mutex_lock(&db->wlock);
  rc = commit_ops(db, &o, 1);
  pthread_mutex_unlock(&db->wlock);
  return rc;
}

int mapkv_del(mapkv_t *db, const void *key, size_t klen) {
  op o = {MAPKV__T_DEL, (uint32_t)klen, 0, key, NULL};
  mapkv__probe p;
  int rc, damaged = 0;
  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  if ((rc = check_writable(db)) != 0 ||
      (rc = check_kv(db, key, klen, NULL, 0)) != 0)
    return rc;
  pthread_mutex_lock(&db->wlock);
  /* Only writers change the index, and we are the writer. */
  if (mapkv__keymap_find(&db->map, key, klen, mapkv__index_hash(key, klen), &p,
                         &damaged) == 0)
    rc = mapkv__fail_static(MAPKV_NOTFOUND, "key not found");
  else
    rc = commit_ops(db, &o, 1);
  pthread_mutex_unlock(&db->wlock);
  return rc;
}

int mapkv_sync(mapkv_t *db) {
  int rc;
  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  if ((rc = check_writable(db)) != 0)
    return rc;
  pthread_mutex_lock(&db->wlock);
  rc = mapkv__log_flush_to(&db->log, db->log.end);
  if (rc == 0)
    rc = mapkv__log_check_path(&db->log);
  pthread_mutex_unlock(&db->wlock);
  return rc;
}

/* ---- Batches ----------------------------------------------------------- */

struct mapkv_batch {
  mapkv_t *db;
  op *ops;
  size_t n, cap;
  uint8_t *arena; /* copies of keys and values */
  size_t used, size;
};

int mapkv_batch_begin(mapkv_t *db, mapkv_batch_t **out) {
  mapkv_batch_t *b;
  int rc;
  if (db == NULL || out == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or output");
  if (!mapkv__handle_live(db))
    return mapkv__fail(MAPKV_EINVAL, "not an open handle (closed already?)");
  if ((rc = check_writable(db)) != 0)
    return rc;
  b = calloc(1, sizeof *b);
  if (b == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  b->db = db;
  atomic_fetch_add(&db->children, 1);
  *out = b;
  return 0;
}

static int batch_add(mapkv_batch_t *b, uint8_t type, const void *key,
                     size_t klen, const void *val, size_t vlen) {
  size_t need;
  op *o;
  int rc;
  if (b == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL batch");
  if ((rc = check_kv(b->db, key, klen, val, vlen)) != 0)
    return rc;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    op *ops = realloc(b->ops, cap * sizeof *ops);
    if (ops == NULL)
      return mapkv__fail(MAPKV_ENOMEM, "out of memory");
    b->ops = ops;
    b->cap = cap;
  }
  need = klen + vlen;
  if (b->size - b->used < need) {
    size_t size = b->size ? b->size : 4096;
    uint8_t *a;
    while (size - b->used < need)
      size *= 2;
    a = realloc(b->arena, size);
    if (a == NULL)
      return mapkv__fail(MAPKV_ENOMEM, "out of memory");
    b->arena = a;
    b->size = size;
  }
  /* Keys and values are kept as arena offsets until commit, because the
   * arena may move as it grows. */
  o = &b->ops[b->n++];
  o->type = type;
  o->klen = (uint32_t)klen;
  o->vlen = (uint32_t)vlen;
  o->key = (const void *)(uintptr_t)b->used;
  if (klen > 0)
    memcpy(b->arena + b->used, key, klen);
  b->used += klen;
  o->val = (const void *)(uintptr_t)b->used;
  if (vlen > 0)
    memcpy(b->arena + b->used, val, vlen);
  b->used += vlen;
  return 0;
}

int mapkv_batch_put(mapkv_batch_t *b, const void *key, size_t klen,
                    const void *val, size_t vlen) {
  return batch_add(b, MAPKV__T_PUT, key, klen, val, vlen);
}

int mapkv_batch_del(mapkv_batch_t *b, const void *key, size_t klen) {
  return batch_add(b, MAPKV__T_DEL, key, klen, NULL, 0);
}

void mapkv_batch_abort(mapkv_batch_t *b) {
  if (b == NULL)
    return;
  atomic_fetch_sub(&b->db->children, 1);
  free(b->ops);
  free(b->arena);
  free(b);
}

int mapkv_batch_commit(mapkv_batch_t *b) {
  mapkv_t *db;
  int rc = 0;
  if (b == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL batch");
  db = b->db;
  for (size_t i = 0; i < b->n; i++) {
    /* All keys and values empty: no arena, nothing to point at. */
    b->ops[i].key = b->arena ? b->arena + (uintptr_t)b->ops[i].key : NULL;
    b->ops[i].val = b->arena ? b->arena + (uintptr_t)b->ops[i].val : NULL;
  }
  if (b->n > 0) {
    pthread_mutex_lock(&db->wlock);
    rc = commit_ops(db, b->ops, b->n);
    pthread_mutex_unlock(&db->wlock);
  }
  mapkv_batch_abort(b);
  return rc;
}
