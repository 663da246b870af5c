/*
 * write.c — puts, deletes, batches and mapkv_sync().
 *
 * One commit = one batch of records, under wlock:
 *   1. make room: the log's blocks reserved on disk, then the mapping grown
 *      (readers that search the mapping are kept out only while its length
 *      changes) and room in the index, so that nothing below can fail
 *      half-way;
 *   2. encode the records after the log's end (invisible: nothing points
 *      there), each naming the key's newest record before its batch
 *      (prev);
 *   3. with MAPKV_SYNC_COMMIT, write them through the file and flush the
 *      pages from the last flushed byte to the new end (log.c says why not
 *      through the mapping) — one flush; on failure the bytes are zeroed
 *      and the commit is not applied;
 *   4. point the key map at the new records and publish the new end,
 *      between mapkv__write_begin/end: readers see the batch all at once.
 *
 * Group commit: durable commits queue (qlock); the first in the queue
 * writes, for itself and every commit queued behind it when it starts, in
 * queue order, with one flush for all; the others wait for it (each on its
 * own condition variable), and the next in the queue then writes for those
 * that came meanwhile. Each caller returns once its own records are
 * durable; commits become visible in queue order. A lone writer finds the
 * queue empty and writes at once: nothing waits on a timer. Commits that
 * are not durable (sync modes NONE and EXPLICIT) have nothing to share and
 * take wlock directly.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_err.h"

/* Index slots prefetched this many operations ahead in a batch. */
#define APPLY_AHEAD 16
/* Commits one flush covers at most (bounding the group's scratch). */
#define GROUP_MAX 64

/* One operation of a commit. */
typedef struct op {
  uint8_t type;
  uint32_t klen, vlen;
  const void *key, *val;
} op;

/* A commit: its operations, and what became of them. */
typedef struct mapkv__commit {
  const op *ops;
  size_t n;
  int must_exist; /* mapkv_del(): MAPKV_NOTFOUND if the key is absent */
  int rc;
  char msg[256]; /* the failure's message, for a caller that did not write */
  uint64_t start, end; /* its records, once encoded */
  int done;            /* written (or failed) by the commit ahead of it */
  pthread_cond_t cv;
  struct mapkv__commit *next;
} commit;

/* Records what became of c: rc, and its message for c's own thread. */
static void set_rc(commit *c, int rc) {
  c->rc = rc;
  if (rc != 0)
    snprintf(c->msg, sizeof c->msg, "%s", mapkv_errmsg());
}

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
  if (db->readonly)
    return mapkv__fail(MAPKV_EREADONLY, "the store is open read-only");
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

static uint64_t commit_bytes(const commit *c) {
  uint64_t total = 0;
  for (size_t i = 0; i < c->n; i++)
    total += MAPKV__REC_OVERHEAD + (uint64_t)c->ops[i].klen + c->ops[i].vlen;
  if (c->n > 1)
    total += MAPKV__REC_OVERHEAD + MAPKV__COMMIT_VALUE;
  return total;
}

/* The keys written by the commits of a group so far, so that a later
 * commit of the group names them as prev and sees them in its
 * must_exist check: the index does not have them yet. */
typedef struct group_keys {
  struct gk {
    uint64_t hash, off;
    uint8_t type;
  } * e;
  size_t mask, n;
} group_keys;

/* Where the record at off is while the group is encoded. */
static const uint8_t *staged(const mapkv_t *db, const uint8_t *dst,
                             uint64_t off) {
  return dst + (off - db->log.end);
}

static const struct gk *group_find(const mapkv_t *db, const group_keys *g,
                                   const uint8_t *dst, const op *o,
                                   uint64_t hash) {
  if (g->e == NULL)
    return NULL;
  for (size_t i = hash & g->mask; g->e[i].off != 0; i = (i + 1) & g->mask) {
    const uint8_t *r = staged(db, dst, g->e[i].off);
    if (g->e[i].hash == hash && mapkv__rec_klen_at(r) == o->klen &&
        (o->klen == 0 || memcmp(r + MAPKV__REC_HEAD, o->key, o->klen) == 0))
      return &g->e[i];
  }
  return NULL;
}

static void group_put(const mapkv_t *db, group_keys *g, const uint8_t *dst,
                      const op *o, uint64_t hash, uint64_t off) {
  struct gk *e = (struct gk *)group_find(db, g, dst, o, hash);
  if (g->e == NULL)
    return;
  if (e == NULL) {
    size_t i = hash & g->mask;
    while (g->e[i].off != 0)
      i = (i + 1) & g->mask;
    e = &g->e[i];
    e->hash = hash;
    g->n++;
  }
  e->off = off;
  e->type = o->type;
}

/* Writes the commits cs[0..count) as consecutive batches with one flush
 * (durable mode) and applies them. Caller holds wlock and has checked the
 * operations. Each commit's rc says what became of it. */
static void write_group(mapkv_t *db, commit **cs, size_t count) {
  mapkv__log *lg = &db->log;
  mapkv__keymap *km = &db->map;
  int durable = db->opts.sync_mode == MAPKV_SYNC_COMMIT;
  uint64_t total = 0, nops = 0, at, seq, hash1 = 0, prev1 = 0;
  uint64_t *hashes = NULL;
  group_keys g = {NULL, 0, 0};
  uint8_t *dst;
  mapkv__probe p1;
  int rc;

  for (size_t k = 0; k < count; k++) {
    total += commit_bytes(cs[k]);
    nops += cs[k]->n;
  }
  if (lg->seq + nops + count > MAPKV__SEQ_MAX) {
    for (size_t k = 0; k < count; k++)
      set_rc(cs[k], mapkv__fail(MAPKV_EFULL, "sequence numbers exhausted"));
    return;
  }
  if ((rc = make_room(db, total, nops)) != 0) {
    /* Not room for all (a full disk, a full store): each on its own, so
     * that those that fit are written. */
    if (count > 1) {
      for (size_t k = 0; k < count; k++)
        write_group(db, &cs[k], 1);
      return;
    }
    set_rc(cs[0], rc);
    return;
  }
  if (durable) {
    if (total > db->wcap) {
      uint8_t *w = realloc(db->wbuf, total);
      if (w == NULL) {
        for (size_t k = 0; k < count; k++)
          set_rc(cs[k], mapkv__fail(MAPKV_ENOMEM, "out of memory"));
        return;
      }
      db->wbuf = w;
      db->wcap = total;
    }
    dst = db->wbuf;
  } else {
    dst = lg->base + lg->end;
  }
  if (count > 1) {
    size_t slots = 16;
    while (slots < 2 * nops)
      slots *= 2;
    g.e = calloc(slots, sizeof *g.e); /* without it, prevs skip the group */
    g.mask = slots - 1;
  }

  /* Every key's hash first, so that each index slot can be prefetched a
   * few operations before it is needed (a large batch misses the cache on
   * almost every slot). */
  if (count == 1 && cs[0]->n > 1 && cs[0]->n > db->nhashes) {
    uint64_t *h = realloc(db->hashes, cs[0]->n * sizeof *h);
    if (h != NULL) {
      db->hashes = h;
      db->nhashes = cs[0]->n;
    }
  }
  if (count == 1 && cs[0]->n > 1 && cs[0]->n <= db->nhashes) {
    hashes = db->hashes;
    for (size_t i = 0; i < cs[0]->n; i++)
      hashes[i] = mapkv__index_hash(cs[0]->ops[i].key, cs[0]->ops[i].klen);
  }

  /* Each record names the key's newest record before its batch (prev):
   * an earlier commit of the group's, or the map's, which changes only
   * after the flush. */
  at = lg->end;
  seq = lg->seq;
  for (size_t k = 0; k < count; k++) {
    commit *c = cs[k];
    const op *ops = c->ops;
    size_t n = c->n;
    c->start = c->end = at;
    if (c->must_exist) {
      uint64_t h = mapkv__index_hash(ops[0].key, ops[0].klen);
      const struct gk *e = group_find(db, &g, dst, &ops[0], h);
      mapkv__probe p;
      int damaged = 0;
      if (e != NULL ? e->type != MAPKV__T_PUT
                    : mapkv__keymap_find(km, ops[0].key, ops[0].klen, h, &p,
                                         &damaged) == 0) {
        set_rc(c, mapkv__fail_static(MAPKV_NOTFOUND, "key not found"));
        continue;
      }
    }
    for (size_t i = 0; i < n; i++) {
      uint8_t flags = (uint8_t)((i == 0 ? MAPKV__F_FIRST : 0) |
                                (n == 1 ? MAPKV__F_LAST : 0));
      uint64_t h = hashes != NULL ? hashes[i]
                                  : mapkv__index_hash(ops[i].key, ops[i].klen);
      const struct gk *e = group_find(db, &g, dst, &ops[i], h);
      mapkv__probe p;
      int damaged = 0;
      uint64_t prev;
      if (hashes != NULL && i + APPLY_AHEAD < n)
        mapkv__index_prefetch(&km->ix, hashes[i + APPLY_AHEAD]);
      prev = mapkv__keymap_find(km, ops[i].key, ops[i].klen, h, &p, &damaged);
      if (count == 1 && n == 1) {
        hash1 = h;
        prev1 = prev;
        p1 = p;
      }
      if (e != NULL)
        prev = e->off;
      at += mapkv__rec_encode((uint8_t *)staged(db, dst, at), ops[i].type,
                              flags, ++seq, prev, ops[i].key, ops[i].klen,
                              ops[i].val, ops[i].vlen, lg->hdr.file_id);
    }
    if (n > 1) {
      uint8_t cval[MAPKV__COMMIT_VALUE];
      mapkv__commit_value(cval, n);
      at += mapkv__rec_encode((uint8_t *)staged(db, dst, at), MAPKV__T_COMMIT,
                              MAPKV__F_LAST, ++seq, 0, NULL, 0, cval,
                              sizeof cval, lg->hdr.file_id);
    }
    /* The batch's keys, for the commits after it in the group (last one
     * wins: their records come later). */
    for (uint64_t off = c->start; g.e != NULL && off < at;) {
      const uint8_t *r = staged(db, dst, off);
      mapkv__rec rec;
      mapkv__rec_decode(r, at - off, 0, 0, &rec);
      if (rec.type != MAPKV__T_COMMIT) {
        op o = {rec.type, rec.klen, rec.vlen, rec.key, rec.val};
        group_put(db, &g, dst, &o, mapkv__index_hash(rec.key, rec.klen), off);
      }
      off += rec.size;
    }
    c->end = at;
  }
  free(g.e);
  assert(at <= lg->end + total && at <= lg->cap);

  if (durable && at > lg->end &&
      (rc = mapkv__log_write_durable(lg, dst, at - lg->end)) != 0) {
    for (size_t k = 0; k < count; k++)
      if (cs[k]->rc == 0)
        set_rc(cs[k], rc);
    return;
  }

  /* Readers are not excluded: they see the index change through the
   * version (store.h) and retry, so the batches are visible all at once. */
  mapkv__write_begin(db);
  if (count == 1 && cs[0]->n == 1 && cs[0]->rc == 0) {
    /* The probe of the lookup above is still valid: only this writer
     * changes the index, and the table did not grow since. */
    const op *o = &cs[0]->ops[0];
    uint64_t off = lg->end;
    if (o->type == MAPKV__T_PUT && prev1 != 0)
      mapkv__keymap_replace(km, &p1, prev1, off, at - off);
    else if (o->type == MAPKV__T_PUT)
      rc = mapkv__keymap_insert(km, hash1, off, at - off);
    else if (prev1 != 0)
      mapkv__keymap_remove(km, &p1, prev1);
    assert(rc == 0); /* room was reserved */
    if (mapkv__test_pause != NULL)
      mapkv__test_pause();
  } else {
    for (size_t k = 0; k < count; k++) {
      size_t i = 0;
      if (cs[k]->rc != 0)
        continue;
      for (uint64_t off = cs[k]->start; off < cs[k]->end; i++) {
        mapkv__rec r;
        int d = mapkv__log_decode(lg, off, cs[k]->end - off, 0, &r);
        assert(d == MAPKV__REC_OK && i <= cs[k]->n); /* written above */
        (void)d;
        if (hashes != NULL && i + APPLY_AHEAD < cs[k]->n)
          mapkv__index_prefetch(&km->ix, hashes[i + APPLY_AHEAD]);
        if (i < cs[k]->n)
          rc = mapkv__keymap_apply(
              km, off, &r,
              hashes != NULL ? hashes[i] : mapkv__index_hash(r.key, r.klen));
        assert(rc == 0); /* room was reserved */
        off += r.size;
        if (mapkv__test_pause != NULL)
          mapkv__test_pause();
      }
    }
  }
  mapkv__log_committed(lg, at, seq);
  mapkv__write_end(db);
}

/* Commits ops as one batch: at once (not durable), or through the queue
 * of durable commits (see the top of this file). */
static int commit_ops(mapkv_t *db, const op *ops, size_t n, int must_exist) {
  commit self, *group[GROUP_MAX], *c;
  size_t count = 0;
  memset(&self, 0, sizeof self);
  self.ops = ops;
  self.n = n;
  self.must_exist = must_exist;
  if (db->opts.sync_mode != MAPKV_SYNC_COMMIT) {
    commit *one = &self;
    pthread_mutex_lock(&db->wlock);
    write_group(db, &one, 1);
    pthread_mutex_unlock(&db->wlock);
    return self.rc;
  }
  pthread_cond_init(&self.cv, NULL);
  pthread_mutex_lock(&db->qlock);
  if (db->qtail != NULL)
    db->qtail->next = &self;
  else
    db->qhead = &self;
  db->qtail = &self;
  while (!self.done && db->qhead != &self)
    pthread_cond_wait(&self.cv, &db->qlock);
  if (self.done) {
    pthread_mutex_unlock(&db->qlock);
    pthread_cond_destroy(&self.cv);
    if (self.rc != 0) /* written by another thread: its message here */
      mapkv__fail(self.rc, "%s", self.msg);
    return self.rc;
  }
  /* First in the queue: write for those behind it too. */
  for (c = &self; c != NULL && count < GROUP_MAX; c = c->next)
    group[count++] = c;
  pthread_mutex_unlock(&db->qlock);

  pthread_mutex_lock(&db->wlock);
  write_group(db, group, count);
  pthread_mutex_unlock(&db->wlock);

  pthread_mutex_lock(&db->qlock);
  db->qhead = group[count - 1]->next;
  if (db->qhead == NULL)
    db->qtail = NULL;
  else
    pthread_cond_signal(&db->qhead->cv); /* the next one writes */
  for (size_t k = 1; k < count; k++) {
    group[k]->done = 1;
    pthread_cond_signal(&group[k]->cv);
  }
  pthread_mutex_unlock(&db->qlock);
  pthread_cond_destroy(&self.cv);
  if (self.rc != 0) /* the last failure's message may be another commit's */
    mapkv__fail(self.rc, "%s", self.msg);
  return self.rc;
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
  return commit_ops(db, &o, 1, 0);
}

int mapkv_del(mapkv_t *db, const void *key, size_t klen) {
  op o = {MAPKV__T_DEL, (uint32_t)klen, 0, key, NULL};
  int rc;
  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  if ((rc = check_writable(db)) != 0 ||
      (rc = check_kv(db, key, klen, NULL, 0)) != 0)
    return rc;
  return commit_ops(db, &o, 1, 1);
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
  if (b->n > 0)
    rc = commit_ops(db, b->ops, b->n, 0);
  mapkv_batch_abort(b);
  return rc;
}
