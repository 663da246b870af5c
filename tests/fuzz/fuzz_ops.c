/*
 * fuzz_ops.c — libFuzzer target: sequences of API operations against a
 * model.
 *
 * The input is a program: two configuration bytes (sync mode, a small
 * address reservation so that writes can fail with MAPKV_EFULL, initial
 * size, small key/value limits), then operations with small keys and values
 * drawn from the input: put, get (with buffers too small, exact, larger;
 * each get also checks mapkv_get_many of its key and two model keys),
 * del, exists, batch begin/put/del/commit/abort, cursor walks over a prefix,
 * a cursor kept open across writes, get_view pointers kept across writes,
 * sync, compact, verify, a second writer (must get MAPKV_ELOCKED), a
 * read-only handle kept open as a snapshot, close and reopen, and "crash":
 * the file copied while the store is open (optionally zeroed or truncated
 * from some offset of the last commits), the handle dropped, and the copy
 * recovered.
 *
 * The same operations run against an in-memory model (a sorted array). The
 * expected result of every call is known in advance (including
 * MAPKV_NOTFOUND, MAPKV_EBUFSMALL, MAPKV_EKEYSIZE, MAPKV_EVALSIZE; only
 * MAPKV_EFULL is accepted as "nothing applied", and only with the small
 * reservation). After every operation the observable state must equal the
 * model: every get, exists, a full cursor walk, and mapkv_stat's records,
 * live bytes and damage counters. After a crash the store must hold exactly
 * the commits whose records lie wholly before the cut (all of them without
 * a cut). Any mismatch aborts.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "fuzz_kvset.h"
#include "mapkv/mapkv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* MAPKV_FUZZ_VERBOSE=1: what the crash and truncation operations do. */
static int verbose = -1;

#define HDR_PAGE  4096u
#define MAX_OPS   400
#define MAX_VIEWS 8
#define KEY_MAX   8

#define CHECK_RC(expr, want)                                                   \
  do {                                                                         \
    int rc_ = (expr), want_ = (want);                                          \
    if (rc_ != want_)                                                          \
      FUZZ_FAIL("%s returned %d (%s; \"%s\"), expected %d (%s)", #expr, rc_,   \
                mapkv_strerror(rc_), mapkv_errmsg(), want_,                    \
                mapkv_strerror(want_));                                        \
  } while (0)

/* One operation of a commit (kept for replaying after a crash). */
typedef struct lop {
  int del;
  uint8_t k[KEY_MAX];
  size_t kn;
  uint8_t *v;
  size_t vn;
} lop;

typedef struct commit {
  uint64_t end; /* data end after it */
  size_t first, n;
} commit;

typedef struct view {
  const void *p;
  uint8_t *copy;
  size_t n;
} view;

typedef struct state {
  const char *path;
  mapkv_options opts;
  int small_reserve;
  uint32_t store_key, store_val; /* the store's limits (its header) */
  uint32_t max_key, max_val;     /* what this handle enforces */
  mapkv_t *db;
  kvset model;
  uint64_t generation;
  /* the pending batch */
  mapkv_batch_t *batch;
  lop *bops;
  size_t nb, capb;
  /* commits since the last open or compaction, for crash cuts */
  kvset base;
  uint64_t base_end;
  lop *log;
  size_t nlog, caplog;
  commit *commits;
  size_t ncommits, capcommits;
  /* a cursor kept open */
  mapkv_cursor_t *cur;
  uint8_t cprefix[KEY_MAX];
  size_t cplen;
  kvset csnap;
  uint8_t *cmod, *cret;
  /* views kept */
  view views[MAX_VIEWS];
  size_t nviews;
  /* a read-only handle and what it must show */
  mapkv_t *ro;
  kvset rosnap;
} state;

static uint8_t keybuf[KEY_MAX], valbuf[12 * 1024], getbuf[12 * 1024 + 16];

/* ---- Input --------------------------------------------------------------- */

static size_t gen_key(fuzz_in *in, uint8_t *k) {
  uint8_t c = fuzz_u8(in);
  size_t n = c < 0xe0 ? c % 4u : 4u + c % 5u;
  for (size_t i = 0; i < n; i++) {
    uint8_t b = fuzz_u8(in);
    k[i] = b < 0xc0 ? (uint8_t)('a' + b % 4) : b;
  }
  return n;
}

static size_t gen_val(fuzz_in *in) {
  uint8_t spec = fuzz_u8(in), seed = fuzz_u8(in);
  size_t n = spec < 0xf0 ? spec % 40u : (size_t)(spec - 0xef) * 700u;
  for (size_t i = 0; i < n; i++)
    valbuf[i] = (uint8_t)(seed + i * 13);
  return n;
}

/* ---- Model bookkeeping --------------------------------------------------- */

static uint64_t live_bytes(const kvset *m) {
  uint64_t b = 0;
  for (size_t i = 0; i < m->n; i++)
    b += 30 + m->e[i].kn + m->e[i].vn;
  return b;
}

static void apply_op(kvset *m, const lop *o) {
  if (o->del)
    kvset_del(m, o->k, o->kn);
  else
    kvset_put(m, o->k, o->kn, o->v, o->vn);
}

static uint64_t data_end(state *s) {
  mapkv_stats st;
  CHECK_RC(mapkv_stat(s->db, &st), 0);
  return st.data_end;
}

/* A commit of ops succeeded: apply it to the model and log it. */
static void committed(state *s, const lop *ops, size_t n) {
  commit *c;
  for (size_t i = 0; i < n; i++) {
    apply_op(&s->model, &ops[i]);
    if (s->cur != NULL) {
      kv *e = kvset_find(&s->csnap, ops[i].k, ops[i].kn);
      if (e != NULL)
        s->cmod[e - s->csnap.e] = 1;
    }
  }
  if (s->ncommits == s->capcommits) {
    s->capcommits = s->capcommits ? 2 * s->capcommits : 32;
    s->commits = realloc(s->commits, s->capcommits * sizeof *s->commits);
    FUZZ_CHECK(s->commits != NULL);
  }
  if (s->nlog + n > s->caplog) {
    s->caplog = (s->nlog + n) * 2;
    s->log = realloc(s->log, s->caplog * sizeof *s->log);
    FUZZ_CHECK(s->log != NULL);
  }
  c = &s->commits[s->ncommits++];
  c->first = s->nlog;
  c->n = n;
  c->end = data_end(s);
  for (size_t i = 0; i < n; i++) {
    lop *l = &s->log[s->nlog++];
    *l = ops[i];
    l->v = malloc(ops[i].vn > 0 ? ops[i].vn : 1);
    FUZZ_CHECK(l->v != NULL);
    if (ops[i].vn > 0)
      memcpy(l->v, ops[i].v, ops[i].vn);
  }
}

static void clear_log(state *s) {
  for (size_t i = 0; i < s->nlog; i++)
    free(s->log[i].v);
  s->nlog = 0;
  s->ncommits = 0;
}

/* The model after the logged commits whose records end at or before upto. */
static void replay(const state *s, uint64_t upto, kvset *out, uint64_t *end) {
  kvset_copy(out, &s->base);
  *end = s->base_end;
  for (size_t i = 0; i < s->ncommits && s->commits[i].end <= upto; i++) {
    for (size_t j = 0; j < s->commits[i].n; j++)
      apply_op(out, &s->log[s->commits[i].first + j]);
    *end = s->commits[i].end;
  }
}

/* A new starting point for crash cuts: now. */
static void set_base(state *s) {
  clear_log(s);
  kvset_copy(&s->base, &s->model);
  s->base_end = data_end(s);
}

static void clear_batch(state *s) {
  for (size_t i = 0; i < s->nb; i++)
    free(s->bops[i].v);
  s->nb = 0;
}

/* ---- Checks -------------------------------------------------------------- */

static void walk(mapkv_t *db, const void *prefix, size_t plen, kvset *out) {
  mapkv_cursor_t *c;
  const void *k, *v;
  size_t kn, vn;
  int rc;
  kvset_clear(out);
  CHECK_RC(mapkv_cursor_open(db, prefix, plen, &c), 0);
  while ((rc = mapkv_cursor_next(c, &k, &kn, &v, &vn)) == 0)
    kvset_add(out, k, kn, v, vn);
  mapkv_cursor_close(c);
  if (rc != MAPKV_NOTFOUND)
    FUZZ_FAIL("cursor_next returned %d (%s)", rc, mapkv_errmsg());
  if (kvset_sort(out) != 0)
    FUZZ_FAIL("a cursor returned a key twice");
}

/* The store (or a read-only handle) shows exactly model. */
static void check_handle(mapkv_t *db, const kvset *model, const char *what) {
  static kvset got;
  mapkv_stats st;
  CHECK_RC(mapkv_stat(db, &st), 0);
  if (st.records != model->n || st.live_bytes != live_bytes(model))
    FUZZ_FAIL("%s: stat says %llu records of %llu bytes, the model %zu of "
              "%llu",
              what, (unsigned long long)st.records,
              (unsigned long long)st.live_bytes, model->n,
              (unsigned long long)live_bytes(model));
  FUZZ_CHECK(st.damaged_regions == 0 && st.damaged_bytes == 0);
  FUZZ_CHECK(st.damaged_keys == 0 && st.truncated_bytes == 0);
  FUZZ_CHECK(st.checksum_failures == 0);
  FUZZ_CHECK(st.data_end >= HDR_PAGE && st.data_end <= st.file_size);
  FUZZ_CHECK(st.dead_bytes == st.data_end - HDR_PAGE - st.live_bytes);
  for (size_t i = 0; i < model->n; i++) {
    const kv *e = &model->e[i];
    size_t n = 0;
    int rc = mapkv_get(db, e->k, e->kn, getbuf, sizeof getbuf, &n);
    if (rc != 0 || n != e->vn || (n > 0 && memcmp(getbuf, e->v, n) != 0))
      FUZZ_FAIL("%s: get of model key #%zu: %d (%s), %zu bytes, expected %zu",
                what, i, rc, mapkv_strerror(rc), n, e->vn);
  }
  walk(db, NULL, 0, &got);
  if (!kvset_equal(&got, model)) {
    kvset_diff("store", &got, "model", model);
    FUZZ_FAIL("%s: a cursor walk differs from the model", what);
  }
}

static void check_views(const state *s) {
  for (size_t i = 0; i < s->nviews; i++)
    if (s->views[i].n > 0 &&
        memcmp(s->views[i].p, s->views[i].copy, s->views[i].n) != 0)
      FUZZ_FAIL("the bytes of a get_view changed before compact/close");
}

static void drop_views(state *s) {
  for (size_t i = 0; i < s->nviews; i++)
    free(s->views[i].copy);
  s->nviews = 0;
}

static void close_cursor(state *s) {
  mapkv_cursor_close(s->cur);
  s->cur = NULL;
  kvset_clear(&s->csnap);
  free(s->cmod);
  free(s->cret);
  s->cmod = s->cret = NULL;
}

/* ---- Operations ---------------------------------------------------------- */

static int expect_size_error(const state *s, size_t kn, size_t vn) {
  if (kn > s->max_key)
    return MAPKV_EKEYSIZE;
  if (vn > s->max_val)
    return MAPKV_EVALSIZE;
  return 0;
}

/* A write returned rc where want was expected (want 0: or MAPKV_EFULL with
 * the small reservation). 1 if it was applied. */
static int write_result(const state *s, int rc, int want, const char *what) {
  if (rc == want)
    return rc == 0;
  if (want == 0 && rc == MAPKV_EFULL && s->small_reserve)
    return 0;
  FUZZ_FAIL("%s returned %d (%s; %s), expected %d (%s)", what, rc,
            mapkv_strerror(rc), mapkv_errmsg(), want, mapkv_strerror(want));
}

static void op_put(state *s, const uint8_t *k, size_t kn, size_t vn) {
  lop o = {0, {0}, kn, valbuf, vn};
  int want = expect_size_error(s, kn, vn);
  memcpy(o.k, k, kn);
  if (write_result(s, mapkv_put(s->db, k, kn, valbuf, vn), want, "put"))
    committed(s, &o, 1);
}

static void op_del(state *s, const uint8_t *k, size_t kn) {
  lop o = {1, {0}, kn, NULL, 0};
  int want = expect_size_error(s, kn, 0);
  memcpy(o.k, k, kn);
  if (want == 0 && kvset_find(&s->model, k, kn) == NULL)
    want = MAPKV_NOTFOUND;
  if (write_result(s, mapkv_del(s->db, k, kn), want, "del"))
    committed(s, &o, 1);
}

/* mapkv_get_many() of key and of the model's first and last keys (no
 * input consumed, so that the meaning of existing seeds does not change):
 * each answer as the model says. */
static void check_many(state *s, const uint8_t *key, size_t kn) {
  const void *keys[3], *vals[3];
  size_t klens[3], vlens[3], m = 1;
  int rcs[3];
  keys[0] = key;
  klens[0] = kn;
  if (s->model.n > 0) {
    const kv *a = &s->model.e[0], *b = &s->model.e[s->model.n - 1];
    keys[m] = a->k;
    klens[m++] = a->kn;
    keys[m] = b->k;
    klens[m++] = b->kn;
  }
  CHECK_RC(mapkv_get_many(s->db, m, keys, klens, vals, vlens, rcs), 0);
  for (size_t i = 0; i < m; i++) {
    const kv *e = kvset_find(&s->model, keys[i], klens[i]);
    if (e == NULL) {
      CHECK_RC(rcs[i], MAPKV_NOTFOUND);
      FUZZ_CHECK(vals[i] == NULL && vlens[i] == 0);
    } else {
      CHECK_RC(rcs[i], 0);
      FUZZ_CHECK(vlens[i] == e->vn &&
                 (e->vn == 0 || memcmp(vals[i], e->v, e->vn) == 0));
    }
  }
}

static void op_get(state *s, fuzz_in *in) {
  size_t kn = gen_key(in, keybuf), n = 12345, cap;
  uint8_t how = fuzz_u8(in) % 4;
  const kv *e = kvset_find(&s->model, keybuf, kn);
  size_t want_n = e != NULL ? e->vn : 0;
  int rc;
  cap = how == 0                 ? sizeof getbuf
        : how == 1               ? want_n
        : how == 2 && want_n > 0 ? want_n - 1
                                 : 0;
  rc = mapkv_get(s->db, keybuf, kn, cap > 0 ? getbuf : NULL, cap, &n);
  if (e == NULL) {
    CHECK_RC(rc, MAPKV_NOTFOUND);
    FUZZ_CHECK(n == 12345);
  } else if (cap < want_n) {
    CHECK_RC(rc, MAPKV_EBUFSMALL);
    FUZZ_CHECK(n == want_n);
  } else {
    CHECK_RC(rc, 0);
    FUZZ_CHECK(n == want_n && (n == 0 || memcmp(getbuf, e->v, n) == 0));
  }
  check_many(s, keybuf, kn);
}

static void batch_begin(state *s) {
  if (s->batch == NULL) {
    CHECK_RC(mapkv_batch_begin(s->db, &s->batch), 0);
    clear_batch(s);
  }
}

static void batch_add(state *s, int del, const uint8_t *k, size_t kn,
                      size_t vn) {
  int want = expect_size_error(s, kn, vn), rc;
  lop *o;
  batch_begin(s);
  rc = del ? mapkv_batch_del(s->batch, k, kn)
           : mapkv_batch_put(s->batch, k, kn, valbuf, vn);
  CHECK_RC(rc, want);
  if (rc != 0)
    return;
  if (s->nb == s->capb) {
    s->capb = s->capb ? 2 * s->capb : 16;
    s->bops = realloc(s->bops, s->capb * sizeof *s->bops);
    FUZZ_CHECK(s->bops != NULL);
  }
  o = &s->bops[s->nb++];
  o->del = del;
  memcpy(o->k, k, kn);
  o->kn = kn;
  o->vn = del ? 0 : vn;
  o->v = malloc(o->vn > 0 ? o->vn : 1);
  FUZZ_CHECK(o->v != NULL);
  if (o->vn > 0)
    memcpy(o->v, valbuf, o->vn);
}

static void batch_abort(state *s) {
  mapkv_batch_abort(s->batch);
  s->batch = NULL;
  clear_batch(s);
}

static void batch_commit(state *s) {
  int rc;
  batch_begin(s);
  rc = mapkv_batch_commit(s->batch);
  s->batch = NULL;
  if (s->nb == 0)
    CHECK_RC(rc, 0); /* an empty batch commits nothing */
  else if (write_result(s, rc, 0, "batch commit"))
    committed(s, s->bops, s->nb);
  clear_batch(s);
}

static void op_prefix_walk(state *s, fuzz_in *in) {
  static kvset got, want;
  uint8_t p[KEY_MAX];
  size_t plen = gen_key(in, p) % 3;
  walk(s->db, p, plen, &got);
  kvset_clear(&want);
  for (size_t i = 0; i < s->model.n; i++)
    if (s->model.e[i].kn >= plen && memcmp(s->model.e[i].k, p, plen) == 0)
      kvset_add(&want, s->model.e[i].k, s->model.e[i].kn, s->model.e[i].v,
                s->model.e[i].vn);
  if (!kvset_equal(&got, &want)) {
    kvset_diff("prefix walk", &got, "model", &want);
    FUZZ_FAIL("a prefix walk differs from the model");
  }
}

/* The kept cursor: opens it, or takes a few steps and checks them against
 * its snapshot (a key changed after the cursor opened is never returned;
 * every unchanged one is, once, with the value it had). */
static void op_cursor(state *s, fuzz_in *in) {
  if (s->cur == NULL) {
    s->cplen = gen_key(in, s->cprefix) % 3;
    CHECK_RC(mapkv_cursor_open(s->db, s->cprefix, s->cplen, &s->cur), 0);
    kvset_clear(&s->csnap);
    for (size_t i = 0; i < s->model.n; i++)
      if (s->model.e[i].kn >= s->cplen &&
          memcmp(s->model.e[i].k, s->cprefix, s->cplen) == 0)
        kvset_add(&s->csnap, s->model.e[i].k, s->model.e[i].kn, s->model.e[i].v,
                  s->model.e[i].vn);
    s->cmod = calloc(s->csnap.n + 1, 1);
    s->cret = calloc(s->csnap.n + 1, 1);
    FUZZ_CHECK(s->cmod != NULL && s->cret != NULL);
    return;
  }
  for (int steps = 1 + fuzz_u8(in) % 4; steps > 0; steps--) {
    const void *k, *v;
    size_t kn, vn, i;
    kv *e;
    int rc = mapkv_cursor_next(s->cur, &k, &kn, &v, &vn);
    if (rc == MAPKV_NOTFOUND) {
      for (i = 0; i < s->csnap.n; i++)
        if (!s->cmod[i] && !s->cret[i])
          FUZZ_FAIL("the kept cursor ended without returning an unchanged "
                    "key (#%zu of %zu)",
                    i, s->csnap.n);
      close_cursor(s);
      return;
    }
    CHECK_RC(rc, 0);
    e = kvset_find(&s->csnap, k, kn);
    if (e == NULL)
      FUZZ_FAIL("the kept cursor returned a key created after it opened");
    i = (size_t)(e - s->csnap.e);
    if (s->cret[i])
      FUZZ_FAIL("the kept cursor returned a key twice");
    if (s->cmod[i])
      FUZZ_FAIL("the kept cursor returned a key changed after it opened");
    if (vn != e->vn || (vn > 0 && memcmp(v, e->v, vn) != 0))
      FUZZ_FAIL("the kept cursor returned a value other than the one "
                "committed when it opened");
    s->cret[i] = 1;
  }
}

static void op_view(state *s, fuzz_in *in) {
  const kv *e;
  const void *p;
  size_t n;
  view *w;
  uint8_t pick = fuzz_u8(in);
  if (s->model.n == 0)
    return;
  e = &s->model.e[pick % s->model.n];
  CHECK_RC(mapkv_get_view(s->db, e->k, e->kn, &p, &n), 0);
  FUZZ_CHECK(n == e->vn && (n == 0 || memcmp(p, e->v, n) == 0));
  if (s->nviews == MAX_VIEWS) {
    free(s->views[0].copy);
    memmove(&s->views[0], &s->views[1], (MAX_VIEWS - 1) * sizeof s->views[0]);
    s->nviews--;
  }
  w = &s->views[s->nviews++];
  w->p = p;
  w->n = n;
  w->copy = malloc(n > 0 ? n : 1);
  FUZZ_CHECK(w->copy != NULL);
  if (n > 0)
    memcpy(w->copy, p, n);
}

/* The limits a handle enforces: the store's (a request of 0), or less if
 * asked for less; a larger request is capped to the store's. */
static uint32_t limit_of(uint32_t store, uint32_t req) {
  return req == 0 || req > store ? store : req;
}

/* Opens the store asking for the limits `how` says: the store's, more, or
 * less. */
static void open_db_limits(state *s, uint8_t how) {
  mapkv_options o = s->opts;
  mapkv_stats st;
  o.max_key_size = (how & 3) == 1   ? MAPKV_KEY_MAX
                   : (how & 3) == 2 ? 1u + (how >> 4) % 4
                                    : 0;
  o.max_value_size = ((how >> 2) & 3) == 1   ? MAPKV_VALUE_MAX
                     : ((how >> 2) & 3) == 2 ? 8u << ((how >> 6) & 3)
                                             : 0;
  s->max_key = limit_of(s->store_key, o.max_key_size);
  s->max_val = limit_of(s->store_val, o.max_value_size);
  CHECK_RC(mapkv_open(s->path, &o, &s->db), 0);
  CHECK_RC(mapkv_stat(s->db, &st), 0);
  FUZZ_CHECK(st.max_key_size == s->max_key && st.max_value_size == s->max_val);
  FUZZ_CHECK(st.format_version == 2);
}

static void op_compact(state *s) {
  mapkv_stats st;
  CHECK_RC(mapkv_compact(s->db), 0);
  drop_views(s);
  s->generation++;
  if (s->cur != NULL) {
    const void *k, *v;
    size_t kn, vn;
    CHECK_RC(mapkv_cursor_next(s->cur, &k, &kn, &v, &vn), MAPKV_ECHANGED);
    close_cursor(s);
  }
  CHECK_RC(mapkv_stat(s->db, &st), 0);
  FUZZ_CHECK(st.generation == s->generation);
  FUZZ_CHECK(st.data_end == HDR_PAGE + st.live_bytes);
  FUZZ_CHECK(st.last_seq == s->model.n);
  set_base(s);
}

/* Ends everything that refers to the handle (before it goes away). */
static void detach(state *s) {
  if (s->cur != NULL)
    close_cursor(s);
  batch_abort(s);
  drop_views(s);
}

static void op_reopen(state *s, uint8_t how) {
  mapkv_stats before, st;
  mapkv_t *old = s->db;
  CHECK_RC(mapkv_stat(s->db, &before), 0);
  detach(s);
  CHECK_RC(mapkv_close(s->db), 0);
  /* A closed handle is told from an open one (the pointer is only
   * compared). */
  CHECK_RC(mapkv_close(old), MAPKV_EINVAL);
  s->db = NULL;
  open_db_limits(s, how);
  CHECK_RC(mapkv_stat(s->db, &st), 0);
  FUZZ_CHECK(st.clean_open == 1);
  FUZZ_CHECK(st.data_end == before.data_end && st.last_seq == before.last_seq);
  FUZZ_CHECK(st.generation == s->generation);
  FUZZ_CHECK(st.dropped_tail_bytes == 0 && st.damaged_regions == 0);
  FUZZ_CHECK(st.damaged_keys == 0);
  set_base(s);
}

static void op_crash(state *s, fuzz_in *in) {
  const char *tmp = fuzz_path(2, "crash.tmp");
  uint8_t hb = fuzz_u8(in), how = hb % 3;
  uint64_t end = data_end(s), cut, upto, want_end, nz;
  uint8_t *img;
  size_t n;
  kvset want = {0};
  mapkv_stats st;

  cut = s->base_end + fuzz_u16(in) % (end - s->base_end + 1);
  detach(s);
  img = fuzz_read_file(s->path, &n); /* what a crash leaves behind */
  upto = UINT64_MAX;
  if (how == 1 && cut < n) { /* the bytes from cut on never made it */
    upto = cut;
    while (upto < n && img[upto] == 0)
      upto++; /* bytes that were zero anyway */
    if (upto == n)
      upto = UINT64_MAX;
    memset(img + cut, 0, n - cut);
  } else if (how == 2 && cut < n) { /* the file ends at cut */
    upto = cut;
    n = cut;
  }
  replay(s, upto, &want, &want_end);
  if (verbose)
    fprintf(stderr, "crash %d at %llu: the log ends at %llu\n", how,
            (unsigned long long)cut, (unsigned long long)want_end);
  if (how == 0 && !kvset_equal(&want, &s->model))
    FUZZ_FAIL("harness: the commit log does not replay to the model");
  for (nz = n; nz > HDR_PAGE && img[nz - 1] == 0; nz--)
    ;
  CHECK_RC(mapkv_close(s->db), 0); /* too late: the image is the store */
  s->db = NULL;
  fuzz_write_file(tmp, img, n);
  if (rename(tmp, s->path) != 0) /* a new inode: a reader keeps the old */
    FUZZ_FAIL("rename: %s", strerror(errno));
  free(img);

  /* Every cut lies above the sealed end (the log of the last open): crash
   * semantics, never truncation. */
  open_db_limits(s, hb >> 2);
  CHECK_RC(mapkv_stat(s->db, &st), 0);
  FUZZ_CHECK(st.clean_open == 0);
  FUZZ_CHECK(st.damaged_regions == 0 && st.damaged_keys == 0);
  if (st.data_end != want_end)
    FUZZ_FAIL("after a crash (cut %d at %llu) recovery ends the log at %llu, "
              "the last whole commit ends at %llu",
              how, (unsigned long long)cut, (unsigned long long)st.data_end,
              (unsigned long long)want_end);
  FUZZ_CHECK(st.dropped_tail_bytes == (nz > want_end ? nz - want_end : 0));
  kvset_copy(&s->model, &want);
  kvset_free(&want);
  set_base(s);
}

static void op_reader(state *s, fuzz_in *in) {
  uint8_t how = fuzz_u8(in) % 3;
  if (s->ro == NULL) {
    mapkv_options o;
    mapkv_options_init(&o);
    o.flags = MAPKV_RDONLY;
    CHECK_RC(mapkv_open(s->path, &o, &s->ro), 0);
    kvset_copy(&s->rosnap, &s->model);
  }
  check_handle(s->ro, &s->rosnap, "read-only snapshot");
  if (how == 1) {
    CHECK_RC(mapkv_close(s->ro), 0);
    s->ro = NULL;
  }
}

/* The record boundaries of the logged commits (a record of a batch of
 * several operations is followed by its COMMIT, 38 bytes). */
static size_t log_boundaries(const state *s, uint64_t *out, size_t max) {
  size_t n = 0;
  uint64_t at = s->base_end;
  out[n++] = at;
  for (size_t i = 0; i < s->ncommits && n + 1 < max; i++) {
    const commit *c = &s->commits[i];
    for (size_t j = 0; j < c->n && n + 1 < max; j++) {
      const lop *o = &s->log[c->first + j];
      at += 30 + o->kn + (o->del ? 0 : o->vn);
      out[n++] = at;
    }
    if (c->n > 1 && n + 1 < max)
      out[n++] = at += 38;
    FUZZ_CHECK(at == c->end);
  }
  return n;
}

/* Every key the store or its logged commits ever held. */
static void universe(const state *s, kvset *u) {
  kvset_clear(u);
  for (size_t i = 0; i < s->base.n; i++)
    kvset_put(u, s->base.e[i].k, s->base.e[i].kn, "", 0);
  for (size_t i = 0; i < s->nlog; i++)
    kvset_put(u, s->log[i].k, s->log[i].kn, "", 0);
}

/* A cleanly closed store cut short at a record boundary (or inside a
 * record): every open but a salvage one refuses with MAPKV_ETRUNCATED and
 * changes nothing; a salvage open shows the commits wholly before the cut
 * (the keys of the commit the cut goes through may answer MAPKV_ECORRUPT
 * instead); mapkv_recover() in place keeps what the salvage open shows. */
static void op_truncate(state *s, fuzz_in *in) {
  static uint64_t bounds[MAX_OPS * 8 + 16];
  const char *tmp = fuzz_path(2, "cut.tmp");
  size_t nb, n, len2;
  uint16_t pick = (uint16_t)fuzz_u16(in);
  uint8_t inside = fuzz_u8(in);
  uint64_t end = data_end(s), cut, want_end;
  kvset want = {0}, u = {0}, got = {0};
  mapkv_recover_info info;
  mapkv_options o;
  mapkv_stats st;
  mapkv_t *db = NULL;
  uint8_t *img, *after;

  nb = log_boundaries(s, bounds, sizeof bounds / sizeof bounds[0]);
  cut = bounds[pick % nb];
  if ((inside & 0x80) && cut < end)
    cut += 1 + inside % 29; /* inside the record (at least 30 bytes) */
  if (verbose)
    fprintf(stderr, "truncate: a clean store of %llu bytes cut at %llu\n",
            (unsigned long long)end, (unsigned long long)cut);
  if (cut >= end)
    return; /* nothing of the log cut away */
  detach(s);
  CHECK_RC(mapkv_close(s->db), 0);
  s->db = NULL;
  img = fuzz_read_file(s->path, &n);
  FUZZ_CHECK(cut < n);
  n = (size_t)cut;
  fuzz_write_file(tmp, img, n);
  if (rename(tmp, s->path) != 0) /* a new inode: a reader keeps the old */
    FUZZ_FAIL("rename: %s", strerror(errno));

  for (int ro = 0; ro < 2; ro++) {
    o = s->opts;
    o.flags = ro ? MAPKV_RDONLY : 0;
    CHECK_RC(mapkv_open(s->path, &o, &db), MAPKV_ETRUNCATED);
    FUZZ_CHECK(db == NULL);
    after = fuzz_read_file(s->path, &len2);
    if (len2 != n || memcmp(after, img, n) != 0)
      FUZZ_FAIL("a refused open of a truncated store changed the file");
    free(after);
  }

  replay(s, cut, &want, &want_end);
  universe(s, &u);
  mapkv_options_init(&o);
  o.flags = MAPKV_RDONLY | MAPKV_VERIFY;
  CHECK_RC(mapkv_open(s->path, &o, &db), 0);
  CHECK_RC(mapkv_stat(db, &st), 0);
  FUZZ_CHECK(st.truncated_bytes == end - cut);
  FUZZ_CHECK(st.data_end == cut);
  CHECK_RC(mapkv_verify(db, NULL, NULL, NULL), MAPKV_ECORRUPT);
  walk(db, NULL, 0, &got);
  for (size_t i = 0; i < got.n; i++) {
    const kv *e = kvset_find(&want, got.e[i].k, got.e[i].kn);
    if (e == NULL || e->vn != got.e[i].vn ||
        (e->vn > 0 && memcmp(e->v, got.e[i].v, e->vn) != 0)) {
      kvset_diff("salvage", &got, "before the cut", &want);
      FUZZ_FAIL("a salvage open of a truncated store shows a key or value "
                "that is not of the commits before the cut");
    }
  }
  for (size_t i = 0; i < u.n; i++) {
    const kv *e = kvset_find(&want, u.e[i].k, u.e[i].kn);
    size_t vn = 0;
    int partial = 0;
    int rc = mapkv_get(db, u.e[i].k, u.e[i].kn, getbuf, sizeof getbuf, &vn);
    /* the commit the cut goes through */
    for (size_t c = 0; c < s->ncommits; c++) {
      const commit *cm = &s->commits[c];
      uint64_t start = c > 0 ? s->commits[c - 1].end : s->base_end;
      if (start < cut && cm->end > cut)
        for (size_t j = 0; j < cm->n; j++)
          partial |= s->log[cm->first + j].kn == u.e[i].kn &&
                     memcmp(s->log[cm->first + j].k, u.e[i].k, u.e[i].kn) == 0;
    }
    if (rc == MAPKV_ECORRUPT && partial)
      continue;
    if (e == NULL ? rc != MAPKV_NOTFOUND
                  : rc != 0 || vn != e->vn ||
                        (vn > 0 && memcmp(getbuf, e->v, vn) != 0))
      FUZZ_FAIL("a salvage open of a truncated store: get of key #%zu "
                "returned %d (%zu bytes), the commits before the cut say %s",
                i, rc, vn, e == NULL ? "missing" : "a value");
    if (e != NULL && kvset_find(&got, u.e[i].k, u.e[i].kn) == NULL)
      FUZZ_FAIL("a salvage open of a truncated store: key #%zu reads back "
                "but no cursor returned it",
                i);
  }
  CHECK_RC(mapkv_close(db), 0);

  CHECK_RC(mapkv_recover(s->path, NULL, 0, 0, &info), 0);
  FUZZ_CHECK(info.rewritten == 1 && info.damaged == 1);
  FUZZ_CHECK(info.saved == got.n && info.backup[0] != '\0');
  after = fuzz_read_file(info.backup, &len2);
  FUZZ_CHECK(len2 == n && memcmp(after, img, n) == 0);
  free(after);
  unlink(info.backup);
  free(img);

  open_db_limits(s, inside);
  CHECK_RC(mapkv_stat(s->db, &st), 0);
  FUZZ_CHECK(st.clean_open == 1 && st.damaged_regions == 0);
  kvset_copy(&s->model, &got);
  s->generation = st.generation;
  kvset_free(&want);
  kvset_free(&u);
  kvset_free(&got);
  set_base(s);
}

/* mapkv_close refuses while a batch or a cursor of the handle is open, and
 * leaves the handle as it was. */
static void op_close_busy(state *s) {
  mapkv_cursor_t *c = NULL;
  if (s->batch == NULL && s->cur == NULL)
    CHECK_RC(mapkv_cursor_open(s->db, NULL, 0, &c), 0);
  CHECK_RC(mapkv_close(s->db), MAPKV_EBUSY);
  mapkv_cursor_close(c);
}

static void op_misc(state *s, fuzz_in *in) {
  uint64_t damaged = 99;
  mapkv_t *second = NULL;
  mapkv_options o = s->opts;
  switch (fuzz_u8(in) % 4) {
  case 0:
    CHECK_RC(mapkv_verify(s->db, NULL, NULL, &damaged), 0);
    FUZZ_CHECK(damaged == 0);
    break;
  case 1:
    CHECK_RC(mapkv_open(s->path, &o, &second), MAPKV_ELOCKED);
    FUZZ_CHECK(second == NULL);
    break;
  case 2:
    op_view(s, in);
    break;
  default:
    op_close_busy(s);
    break;
  }
}

static void check_all(state *s) {
  check_handle(s->db, &s->model, "store");
  check_views(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static state s;
  fuzz_in in = {data, size, 0};
  uint8_t c0, c1;

  if (verbose < 0)
    verbose = getenv("MAPKV_FUZZ_VERBOSE") != NULL;
  fuzz_leak_baseline();
  fuzz_seed_random(fuzz_hash(data, size));
  memset(&s, 0, sizeof s);
  s.path = fuzz_path(0, "ops.mkv");
  fuzz_remove_store(s.path);
  c0 = fuzz_u8(&in);
  c1 = fuzz_u8(&in);
  mapkv_options_init(&s.opts);
  s.opts.flags = MAPKV_CREATE;
  s.opts.sync_mode = c0 % 3;
  s.small_reserve = (c0 >> 2) & 1;
  if (s.small_reserve)
    s.opts.reserve = 64 * 1024;
  s.opts.initial_size = 4096u * (1u + ((c0 >> 3) & 3u));
  s.opts.growth_step = 4096;
  /* The store's limits, asked for at creation; they travel with it (its
   * header), and later opens ask for them (0), more or less. */
  s.store_key = MAPKV_DEFAULT_KEY_MAX;
  s.store_val = MAPKV_DEFAULT_VALUE_MAX;
  if (c1 & 0x80)
    s.store_key = 1u + (c1 & 3u);
  if (c1 & 0x40)
    s.store_val = 16u << ((c1 >> 2) & 3u);
  s.opts.max_key_size = s.store_key;
  s.opts.max_value_size = s.store_val;
  {
    mapkv_stats st;
    s.max_key = s.store_key;
    s.max_val = s.store_val;
    CHECK_RC(mapkv_open(s.path, &s.opts, &s.db), 0);
    CHECK_RC(mapkv_stat(s.db, &st), 0);
    FUZZ_CHECK(st.max_key_size == s.max_key && st.max_value_size == s.max_val);
  }
  s.opts.flags = 0;
  s.opts.max_key_size = s.opts.max_value_size = 0;
  set_base(&s);
  check_all(&s);

  for (int ops = 0; ops < MAX_OPS && fuzz_left(&in) > 0; ops++) {
    uint8_t op = fuzz_u8(&in) % 22;
    switch (op) {
    case 0:
    case 1:
    case 2:
    case 3: {
      size_t kn = gen_key(&in, keybuf), vn = gen_val(&in);
      op_put(&s, keybuf, kn, vn);
      break;
    }
    case 4:
      op_get(&s, &in);
      break;
    case 5: {
      size_t kn = gen_key(&in, keybuf);
      op_del(&s, keybuf, kn);
      break;
    }
    case 6: {
      size_t kn = gen_key(&in, keybuf);
      CHECK_RC(mapkv_exists(s.db, keybuf, kn),
               kvset_find(&s.model, keybuf, kn) != NULL);
      break;
    }
    case 7:
      batch_begin(&s);
      break;
    case 8: {
      size_t kn = gen_key(&in, keybuf), vn = gen_val(&in);
      batch_add(&s, 0, keybuf, kn, vn);
      break;
    }
    case 9: {
      size_t kn = gen_key(&in, keybuf);
      batch_add(&s, 1, keybuf, kn, 0);
      break;
    }
    case 10:
      batch_commit(&s);
      break;
    case 11:
      batch_abort(&s);
      break;
    case 12:
      op_prefix_walk(&s, &in);
      break;
    case 13:
      CHECK_RC(mapkv_sync(s.db), 0);
      break;
    case 14:
      op_compact(&s);
      break;
    case 15:
      op_reopen(&s, fuzz_u8(&in));
      break;
    case 16:
      op_crash(&s, &in);
      break;
    case 17:
      op_cursor(&s, &in);
      break;
    case 18:
      op_reader(&s, &in);
      break;
    case 19:
      op_misc(&s, &in);
      break;
    case 21:
      op_truncate(&s, &in);
      break;
    default: { /* a key the model has: overwrite or delete it */
      uint8_t pick = fuzz_u8(&in), what = fuzz_u8(&in);
      if (s.model.n > 0) {
        const kv *e = &s.model.e[pick % s.model.n];
        uint8_t k[KEY_MAX];
        size_t kn = e->kn;
        memcpy(k, e->k, kn);
        if (what & 1)
          op_del(&s, k, kn);
        else
          op_put(&s, k, kn, gen_val(&in));
      }
      break;
    }
    }
    check_all(&s);
  }

  /* The end: everything closed, and a clean reopen shows the model. */
  if (s.ro != NULL) {
    check_handle(s.ro, &s.rosnap, "read-only snapshot");
    CHECK_RC(mapkv_close(s.ro), 0);
  }
  op_reopen(&s, 0);
  check_all(&s);
  detach(&s);
  CHECK_RC(mapkv_close(s.db), 0);

  fuzz_remove_store(s.path);
  kvset_free(&s.model);
  kvset_free(&s.base);
  kvset_free(&s.csnap);
  kvset_free(&s.rosnap);
  clear_log(&s);
  free(s.log);
  free(s.commits);
  clear_batch(&s);
  free(s.bops);
  fuzz_leak_check();
  return 0;
}
