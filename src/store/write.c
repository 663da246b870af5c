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
 * queue order, as one batch with one flush; the others wait for it (each
 * on its own semaphore), and the next in the queue then writes for those
 * that came meanwhile. Each caller returns once its own records are
 * durable; commits become visible in queue order. A lone writer finds the
 * queue empty and writes at once: nothing waits on a timer (with several
 * writers, the first in the queue yields the processor a bounded number of
 * times for those the last flush released). Commits that are not durable
 * (sync modes NONE and EXPLICIT) have nothing to share and take wlock
 * directly.
 */
#include <assert.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_err.h"

/* Index slots prefetched this many operations ahead in a batch. */
#define APPLY_AHEAD 16
/* Commits one flush covers at most (bounding the group's scratch). */
#define GROUP_MAX 64
/* Times the first in the queue yields the processor at most, waiting for
 * the writers the last flush released (see commit_ops). */
#define GROUP_YIELDS 16

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
  sem_t sem;           /* posted once: done, or first in the queue */
  struct mapkv__commit *next;
} commit;

void (*mapkv__test_queued)(size_t qlen);

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

static uint64_t ops_bytes(const commit *c) {
  uint64_t total = 0;
  for (size_t i = 0; i < c->n; i++)
    total += MAPKV__REC_OVERHEAD + (uint64_t)c->ops[i].klen + c->ops[i].vlen;
  return total;
}

/* The keys the commits of a group put or delete, so that a mapkv_del()
 * later in the group sees them: the index does not have them yet. */
typedef struct group_keys {
  struct gk {
    uint64_t hash;
    const op *o; /* its newest operation in the group; NULL: a free slot */
  } * e;
  size_t mask;
} group_keys;

static struct gk *group_find(const group_keys *g, const op *o, uint64_t hash) {
  for (size_t i = hash & g->mask;; i = (i + 1) & g->mask) {
    struct gk *e = &g->e[i];
    if (e->o == NULL ||
        (e->hash == hash && e->o->klen == o->klen &&
         (o->klen == 0 || memcmp(e->o->key, o->key, o->klen) == 0)))
      return e;
  }
}

/* Fails (MAPKV_NOTFOUND) the commits of cs[0..count) that delete a key
 * absent by then: absent from the map, or deleted by an earlier commit of
 * the group. 0, or MAPKV_ENOMEM. */
static int check_dels(mapkv_t *db, commit **cs, size_t count, uint64_t nops) {
  group_keys g;
  size_t slots = 16, k;
  for (k = 0; k < count && !cs[k]->must_exist; k++)
    ;
  if (k == count)
    return 0;
  if (count == 1) {
    const op *o = &cs[0]->ops[0];
    mapkv__probe p;
    int damaged = 0;
    if (mapkv__keymap_find(&db->map, o->key, o->klen,
                           mapkv__index_hash(o->key, o->klen), &p,
                           &damaged) == 0)
      set_rc(cs[0], mapkv__fail_static(MAPKV_NOTFOUND, "key not found"));
    return 0;
  }
  while (slots < 2 * nops)
    slots *= 2;
  if ((g.e = calloc(slots, sizeof *g.e)) == NULL)
    return MAPKV_ENOMEM;
  g.mask = slots - 1;
  for (k = 0; k < count; k++) {
    commit *c = cs[k];
    if (c->rc != 0)
      continue;
    if (c->must_exist) {
      uint64_t h = mapkv__index_hash(c->ops[0].key, c->ops[0].klen);
      const struct gk *e = group_find(&g, &c->ops[0], h);
      mapkv__probe p;
      int damaged = 0;
      if (e->o != NULL
              ? e->o->type != MAPKV__T_PUT
              : mapkv__keymap_find(&db->map, c->ops[0].key, c->ops[0].klen, h,
                                   &p, &damaged) == 0) {
        set_rc(c, mapkv__fail_static(MAPKV_NOTFOUND, "key not found"));
        continue;
      }
    }
    for (size_t i = 0; i < c->n; i++) {
      uint64_t h = mapkv__index_hash(c->ops[i].key, c->ops[i].klen);
      struct gk *e = group_find(&g, &c->ops[i], h);
      e->hash = h;
      e->o = &c->ops[i];
    }
  }
  free(g.e);
  return 0;
}

/* Writes the commits cs[0..count) as one batch (durable mode: with one
 * flush) and applies them; a group's commits are all there after a crash
 * or none are, so that what survives is always a prefix of the commit
 * order. Caller holds wlock and has checked the operations. Each commit's
 * rc says what became of it. */
static void write_group(mapkv_t *db, commit **cs, size_t count) {
  mapkv__log *lg = &db->log;
  mapkv__keymap *km = &db->map;
  int durable = db->opts.sync_mode == MAPKV_SYNC_COMMIT;
  uint64_t total = 0, nops = 0, nrec = 0, at, seq, hash1 = 0, prev1 = 0;
  uint64_t *hashes = NULL;
  uint8_t *dst;
  mapkv__probe p1;
  int rc, first = 1;

  for (size_t k = 0; k < count; k++) {
    total += ops_bytes(cs[k]);
    nops += cs[k]->n;
  }
  if (nops > 1)
    total += MAPKV__REC_OVERHEAD + MAPKV__COMMIT_VALUE;
  if (lg->seq + nops + 1 > MAPKV__SEQ_MAX) {
    for (size_t k = 0; k < count; k++)
      set_rc(cs[k], mapkv__fail(MAPKV_EFULL, "sequence numbers exhausted"));
    return;
  }
  if ((rc = make_room(db, total, nops)) != 0 ||
      (rc = check_dels(db, cs, count, nops)) != 0) {
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
  for (size_t k = 0; k < count; k++)
    if (cs[k]->rc == 0)
      nrec += cs[k]->n;
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
    dst = db->wbuf - lg->end; /* the bytes of offset at are at dst + at */
  } else {
    dst = lg->base;
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

  /* Each record names the key's newest record before the batch (prev),
   * which the map holds: it changes only after the write. */
  at = lg->end;
  seq = lg->seq;
  for (size_t k = 0; k < count; k++) {
    commit *c = cs[k];
    const op *ops = c->ops;
    c->start = c->end = at;
    if (c->rc != 0)
      continue;
    for (size_t i = 0; i < c->n; i++) {
      uint8_t flags = (uint8_t)((first ? MAPKV__F_FIRST : 0) |
                                (nrec == 1 ? MAPKV__F_LAST : 0));
      uint64_t h = hashes != NULL ? hashes[i]
                                  : mapkv__index_hash(ops[i].key, ops[i].klen);
      mapkv__probe p;
      int damaged = 0;
      uint64_t prev;
      if (hashes != NULL && i + APPLY_AHEAD < c->n)
        mapkv__index_prefetch(&km->ix, hashes[i + APPLY_AHEAD]);
      prev = mapkv__keymap_find(km, ops[i].key, ops[i].klen, h, &p, &damaged);
      if (nrec == 1) {
        hash1 = h;
        prev1 = prev;
        p1 = p;
      }
      at += mapkv__rec_encode(dst + at, ops[i].type, flags, ++seq, prev,
                              ops[i].key, ops[i].klen, ops[i].val, ops[i].vlen,
                              lg->hdr.file_id);
      first = 0;
    }
    c->end = at;
  }
  if (nrec > 1) {
    uint8_t cval[MAPKV__COMMIT_VALUE];
    mapkv__commit_value(cval, nrec);
    at += mapkv__rec_encode(dst + at, MAPKV__T_COMMIT, MAPKV__F_LAST, ++seq, 0,
                            NULL, 0, cval, sizeof cval, lg->hdr.file_id);
  }
  assert(at <= lg->end + total && at <= lg->cap);

  if (durable && at > lg->end &&
      (rc = mapkv__log_write_durable(lg, db->wbuf, at - lg->end)) != 0) {
    for (size_t k = 0; k < count; k++)
      if (cs[k]->rc == 0)
        set_rc(cs[k], rc);
    return;
  }

  /* Readers are not excluded: they see the index change through the
   * version (store.h) and retry, so the batch is visible all at once. */
  mapkv__write_begin(db);
  if (nrec == 1) {
    /* The probe of the lookup above is still valid: only this writer
     * changes the index, and the table did not grow since. */
    uint64_t off = lg->end;
    size_t k = 0;
    uint8_t type;
    while (cs[k]->rc != 0)
      k++;
    type = cs[k]->ops[0].type;
    if (type == MAPKV__T_PUT && prev1 != 0)
      mapkv__keymap_replace(km, &p1, prev1, off, at - off);
    else if (type == MAPKV__T_PUT)
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
      assert(d == MAPKV__REC_OK); /* written above */
      (void)d;
      if (hashes != NULL && i + APPLY_AHEAD < cs[0]->n)
        mapkv__index_prefetch(&km->ix, hashes[i + APPLY_AHEAD]);
      rc = mapkv__keymap_apply(km, off, &r,
                               hashes != NULL && i < cs[0]->n
                                   ? hashes[i]
                                   : mapkv__index_hash(r.key, r.klen));
      assert(rc == 0); /* room was reserved */
      off += r.size;
      if (mapkv__test_pause != NULL)
        mapkv__test_pause();
    }
  }
  mapkv__log_committed(lg, at, seq);
  mapkv__write_end(db);
}

/* Commits ops as one batch: at once (not durable), or through the queue
 * of durable commits (see the top of this file). */
static int commit_ops(mapkv_t *db, const op *ops, size_t n, int must_exist) {
  commit self, *group[GROUP_MAX], *c, *next;
  size_t count = 0;
  int head;
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
  sem_init(&self.sem, 0, 0);
  pthread_mutex_lock(&db->qlock);
  if (db->qtail != NULL)
    db->qtail->next = &self;
  else
    db->qhead = &self;
  db->qtail = &self;
  db->qlen++;
  atomic_fetch_add_explicit(&db->qjoined, 1, memory_order_relaxed);
  if (mapkv__test_queued != NULL)
    mapkv__test_queued(db->qlen);
  head = db->qhead == &self;
  pthread_mutex_unlock(&db->qlock);
  if (!head) {
    /* Woken once: written by the commit ahead (done), or first now. */
    while (sem_wait(&self.sem) != 0)
      ; /* EINTR */
    if (self.done) {
      sem_destroy(&self.sem);
      if (self.rc != 0) /* written by another thread: its message here */
        mapkv__fail(self.rc, "%s", self.msg);
      return self.rc;
    }
  }
  /* First in the queue. The writers the last group released are coming
   * back (a writer commits again right after its commit returns): give
   * them the processor a few times, so that they join this group instead
   * of waiting a whole flush for the next. A lone writer (a group of one,
   * back already: itself) never yields; nor does anyone once the writers
   * expected stop coming (the next group expects fewer). qmark and
   * qexpect change only when a group is released, before its next first
   * learns that it is first. */
  for (int y = 0;
       y < GROUP_YIELDS &&
       atomic_load_explicit(&db->qjoined, memory_order_relaxed) - db->qmark <
           db->qexpect;
       y++)
    sched_yield();
  pthread_mutex_lock(&db->qlock);
  for (c = &self; c != NULL && count < GROUP_MAX; c = c->next)
    group[count++] = c;
  pthread_mutex_unlock(&db->qlock);

  pthread_mutex_lock(&db->wlock);
  write_group(db, group, count);
  pthread_mutex_unlock(&db->wlock);

  pthread_mutex_lock(&db->qlock);
  next = db->qhead = group[count - 1]->next;
  db->qlen -= count;
  db->qmark = atomic_load_explicit(&db->qjoined, memory_order_relaxed);
  db->qexpect = count;
  if (db->qhead == NULL)
    db->qtail = NULL;
  pthread_mutex_unlock(&db->qlock);
  /* Woken outside qlock, so that none wakes to wait for it. A commit
   * marked done may return at once: nothing of it is touched after its
   * post. */
  for (size_t k = 1; k < count; k++) {
    group[k]->done = 1;
    sem_post(&group[k]->sem);
  }
  if (next != NULL)
    sem_post(&next->sem); /* the next one writes */
  sem_destroy(&self.sem);
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
