/*
 * test_recovery.c — crash and corruption scenarios of the storage engine
 * (FORMAT.md, "Recovery"): reopening after a clean close and after a crash,
 * a crash at every record boundary and inside records, bit flips in the
 * header and in every field of a record, damage after open, zeroed pages,
 * batch atomicity, power cuts simulated from the flush hook, garbage and
 * foreign files, and records that come from another store.
 *
 * Every scenario is checked against a model: a workload is a list of
 * batches, and the state a store must show is the replay of the batches
 * recovery has to keep (get of every key, the live-key count, and a cursor
 * over the whole store). The engine's randomness (file ids) goes through
 * mapkv__os.random, which the fixture seeds, so every run writes the same
 * bytes and every scenario is reproducible.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <xxhash.h>

#include "mapkv/mapkv.h"
#include "store/format.h"
#include "store/os.h"
#include "testutil.h"

#define PAGE     4096u /* the format's page (header page, zeroed pages) */
#define KEY_CAP  32
#define VAL_CAP  20000
#define NEXTRA   4   /* keys after a workload's, written after recovery */
#define COMMIT_B 38u /* bytes of a COMMIT record */
#define MAX_RECS 160 /* records of the largest batch used here */

typedef unsigned long long ull;

/* ---- deterministic randomness -------------------------------------------- */

typedef struct rng_t {
  uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r) { /* splitmix64 */
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static uint32_t rng_below(rng_t *r, uint32_t n) {
  return (uint32_t)(rng_next(r) % n);
}

/* The engine's file ids come from here (mapkv__os.random). */
static rng_t id_rng;

static int seeded_random(void *buf, size_t n) {
  uint8_t *p = buf;
  while (n > 0) {
    uint64_t w = rng_next(&id_rng);
    size_t k = n < 8 ? n : 8;
    memcpy(p, &w, k);
    p += k;
    n -= k;
  }
  return 0;
}

/* ---- fixture: every file and handle a test makes is released ------------- */

#define FX_PATHS 32
#define FX_DBS   8

static struct {
  char paths[FX_PATHS][256];
  int npaths;
  mapkv_t *dbs[FX_DBS];
} fx;

/* Test allocations are tracked, so that a failed assertion (which leaves
 * the test function early) leaks nothing: teardown frees what is left. */
static struct {
  void **p;
  size_t n, cap;
} fx_mem;

static void *fx_keep(void *p) {
  if (p == NULL)
    return NULL;
  if (fx_mem.n == fx_mem.cap) {
    size_t cap = fx_mem.cap ? fx_mem.cap * 2 : 256;
    void **q = realloc(fx_mem.p, cap * sizeof *q);
    if (q == NULL) {
      free(p);
      return NULL;
    }
    fx_mem.p = q;
    fx_mem.cap = cap;
  }
  fx_mem.p[fx_mem.n++] = p;
  return p;
}

static size_t fx_find(const void *p) {
  for (size_t i = fx_mem.n; i-- > 0;)
    if (fx_mem.p[i] == p)
      return i;
  return SIZE_MAX;
}

static void *fx_malloc(size_t n) { return fx_keep(malloc(n)); }

static void *fx_calloc(size_t n, size_t size) {
  return fx_keep(calloc(n, size));
}

static void *fx_realloc(void *p, size_t n) {
  size_t i;
  void *q;
  if (p == NULL)
    return fx_malloc(n);
  i = fx_find(p);
  q = realloc(p, n);
  if (q != NULL && i != SIZE_MAX)
    fx_mem.p[i] = q;
  return q;
}

static void fx_free(void *p) {
  size_t i;
  if (p == NULL)
    return;
  i = fx_find(p);
  if (i != SIZE_MAX)
    fx_mem.p[i] = fx_mem.p[--fx_mem.n];
  free(p);
}

static uint8_t *fx_slurp(const char *path, size_t *len) {
  return fx_keep(tu_slurp(path, len));
}

static int setup(void **state) {
  (void)state;
  memset(&fx, 0, sizeof fx);
  mapkv__os_reset();
  id_rng.s = 0x5EED5EEDull;
  mapkv__os.random = seeded_random;
  return 0;
}

static void unlink_store(const char *path) {
  char b[300];
  unlink(path);
  snprintf(b, sizeof b, "%s.creating", path);
  unlink(b);
  snprintf(b, sizeof b, "%s.compact", path);
  unlink(b);
}

static int teardown(void **state) {
  (void)state;
  for (int i = 0; i < FX_DBS; i++) {
    if (fx.dbs[i] != NULL)
      mapkv_close(fx.dbs[i]);
    fx.dbs[i] = NULL;
  }
  for (int i = 0; i < fx.npaths; i++)
    unlink_store(fx.paths[i]);
  for (size_t i = 0; i < fx_mem.n; i++)
    free(fx_mem.p[i]);
  free(fx_mem.p);
  memset(&fx_mem, 0, sizeof fx_mem);
  mapkv__os_reset();
  return 0;
}

static const char *fx_path(const char *tag) {
  assert_true(fx.npaths < FX_PATHS);
  tu_path(fx.paths[fx.npaths], sizeof fx.paths[0], tag);
  return fx.paths[fx.npaths++];
}

static mapkv_options opts_of(unsigned flags) {
  mapkv_options o;
  mapkv_options_init(&o);
  o.flags = flags;
  o.initial_size = 64u << 10;
  o.growth_step = 64u << 10;
  o.reserve = 256ull << 20;
  return o;
}

static int open_db(const char *path, unsigned flags, mapkv_t **out) {
  mapkv_options o = opts_of(flags);
  return mapkv_open(path, &o, out);
}

static mapkv_t *fx_open(const char *path, unsigned flags) {
  mapkv_t *db = NULL;
  int rc = open_db(path, flags, &db);
  if (rc != 0)
    fail_msg("mapkv_open(%s, flags %u): %d %s", path, flags, rc,
             mapkv_errmsg());
  for (int i = 0; i < FX_DBS; i++) {
    if (fx.dbs[i] == NULL) {
      fx.dbs[i] = db;
      return db;
    }
  }
  fail_msg("too many open handles");
  return NULL;
}

static void fx_close(mapkv_t *db) {
  for (int i = 0; i < FX_DBS; i++)
    if (fx.dbs[i] == db)
      fx.dbs[i] = NULL;
  assert_int_equal(mapkv_close(db), 0);
}

/* ---- files --------------------------------------------------------------- */

/* Makes path hold exactly buf (rewritten in place: a scratch file is
 * reused many times, and keeping its blocks keeps the tests fast). */
static int write_path(const char *path, const uint8_t *buf, size_t len) {
  size_t done = 0;
  int fd = open(path, O_RDWR | O_CREAT, 0644);
  if (fd < 0)
    return -1;
  if (ftruncate(fd, (off_t)len) != 0) {
    close(fd);
    return -1;
  }
  while (done < len) {
    ssize_t n = pwrite(fd, buf + done, len - done, (off_t)done);
    if (n <= 0) {
      close(fd);
      return -1;
    }
    done += (size_t)n;
  }
  return close(fd);
}

static void put_file(const char *path, const uint8_t *buf, size_t len) {
  assert_int_equal(write_path(path, buf, len), 0);
}

/* 1 if the file's bytes [from, to) are all zero (or past its end). */
static int zero_on_disk(const char *path, uint64_t from, uint64_t to) {
  size_t len;
  uint8_t *b = fx_slurp(path, &len);
  int ok = 1;
  for (uint64_t i = from; i < to && i < len; i++)
    if (b[i] != 0)
      ok = 0;
  fx_free(b);
  return ok;
}

static uint64_t nonzero_end(const uint8_t *b, uint64_t lo, uint64_t hi) {
  while (hi > lo && b[hi - 1] == 0)
    hi--;
  return hi;
}

/* ---- keys, values, workloads and the model ------------------------------- */

static size_t key_of(uint32_t k, char *buf) {
  return (size_t)snprintf(buf, KEY_CAP, "key-%05u%.*s", (unsigned)k,
                          (int)(k % 4) * 4, "............");
}

static int parse_key(const void *p, size_t len, uint32_t *out) {
  const char *s = p;
  char k[KEY_CAP];
  uint32_t v = 0;
  if (len < 9 || memcmp(s, "key-", 4) != 0)
    return 0;
  for (int i = 4; i < 9; i++) {
    if (s[i] < '0' || s[i] > '9')
      return 0;
    v = v * 10 + (uint32_t)(s[i] - '0');
  }
  if (key_of(v, k) != len || memcmp(k, s, len) != 0)
    return 0;
  *out = v;
  return 1;
}

static void val_of(uint64_t vseed, uint32_t len, uint8_t *buf) {
  rng_t r = {vseed};
  for (uint32_t i = 0; i < len; i += 8) {
    uint64_t w = rng_next(&r);
    memcpy(buf + i, &w, len - i < 8 ? len - i : 8);
  }
}

typedef struct op_t {
  uint8_t del;
  uint32_t key, vlen;
  uint64_t vseed;
} op_t;

typedef struct batch_t {
  op_t *ops;
  size_t n;
  uint64_t start, end; /* file offsets, once committed */
} batch_t;

typedef struct wl_t {
  batch_t *b;
  size_t n, cap;
  uint32_t nkeys; /* keys 0..nkeys-1; NEXTRA more for writes after recovery */
  uint64_t vctr;
} wl_t;

typedef struct kst {
  uint8_t present;
  uint8_t damaged; /* may answer MAPKV_ECORRUPT instead (its batch was lost
                      to damage) */
  uint8_t maybe_missing; /* may be missing instead */
  uint32_t vlen;
  uint64_t vseed;
} kst;

static void wl_init(wl_t *w, uint32_t nkeys) {
  memset(w, 0, sizeof *w);
  w->nkeys = nkeys;
}

static void wl_free(wl_t *w) {
  for (size_t i = 0; i < w->n; i++)
    fx_free(w->b[i].ops);
  fx_free(w->b);
  memset(w, 0, sizeof *w);
}

static uint32_t univ(const wl_t *w) { return w->nkeys + NEXTRA; }

static uint64_t new_vseed(wl_t *w) {
  return ++w->vctr * 0x2545F4914F6CDD1Dull ^ 0xA5A5A5A5ull;
}

static batch_t *wl_add(wl_t *w, size_t nops) {
  batch_t *b;
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 64;
    batch_t *nb = fx_realloc(w->b, cap * sizeof *nb);
    assert_non_null(nb);
    w->b = nb;
    w->cap = cap;
  }
  b = &w->b[w->n++];
  b->ops = fx_calloc(nops, sizeof *b->ops);
  assert_non_null(b->ops);
  b->n = nops;
  b->start = b->end = 0;
  return b;
}

static void op_put(wl_t *w, op_t *o, uint32_t key, uint32_t vlen) {
  o->del = 0;
  o->key = key;
  o->vlen = vlen;
  o->vseed = new_vseed(w);
}

static void op_del(op_t *o, uint32_t key) {
  o->del = 1;
  o->key = key;
  o->vlen = 0;
  o->vseed = 0;
}

/* One batch from a spec: "p3 d4 p5:0" puts key 3, deletes key 4, puts key 5
 * with an empty value (default lengths vary with key and position). */
static void wl_spec(wl_t *w, const char *spec) {
  size_t n = 0;
  const char *s;
  batch_t *b;
  for (s = spec; *s; s++)
    if (*s == 'p' || *s == 'd')
      n++;
  b = wl_add(w, n);
  n = 0;
  for (s = spec; *s;) {
    char kind = *s;
    char *e;
    unsigned long k;
    if (kind != 'p' && kind != 'd') {
      s++;
      continue;
    }
    k = strtoul(s + 1, &e, 10);
    s = e;
    if (kind == 'd') {
      op_del(&b->ops[n++], (uint32_t)k);
      continue;
    }
    if (*s == ':') {
      unsigned long v = strtoul(s + 1, &e, 10);
      s = e;
      op_put(w, &b->ops[n++], (uint32_t)k, (uint32_t)v);
    } else {
      op_put(w, &b->ops[n++], (uint32_t)k,
             (uint32_t)(5 + (k * 13 + w->n * 7) % 60));
    }
  }
}

static void model_apply(kst *m, const batch_t *b) {
  for (size_t i = 0; i < b->n; i++) {
    const op_t *o = &b->ops[i];
    m[o->key].present = !o->del;
    m[o->key].vlen = o->vlen;
    m[o->key].vseed = o->vseed;
  }
}

/* The state after batches [0, upto) except those flagged in lost. */
static kst *model_of(const wl_t *w, size_t upto, const uint8_t *lost) {
  kst *m = fx_calloc(univ(w), sizeof *m);
  assert_non_null(m);
  for (size_t i = 0; i < upto; i++)
    if (lost == NULL || !lost[i])
      model_apply(m, &w->b[i]);
  return m;
}

/* The state after batches [0, upto) except batch lost_batch. */
static kst *model_without(const wl_t *w, size_t upto, size_t lost_batch) {
  kst *m = fx_calloc(univ(w), sizeof *m);
  assert_non_null(m);
  for (size_t i = 0; i < upto; i++)
    if (i != lost_batch)
      model_apply(m, &w->b[i]);
  return m;
}

typedef struct gen_t {
  uint32_t max_ops;   /* operations in a multi-op batch: 2..max_ops */
  uint32_t small_max; /* value bytes, usually */
  uint32_t big_pct;   /* percentage of big values */
  uint32_t big_min, big_max;
} gen_t;

static uint32_t gen_vlen(rng_t *r, const gen_t *g) {
  if (g->big_pct > 0 && rng_below(r, 100) < g->big_pct)
    return g->big_min + rng_below(r, g->big_max - g->big_min + 1);
  if (rng_below(r, 12) == 0)
    return 0;
  return 1 + rng_below(r, g->small_max);
}

/* Appends nb random batches: single puts, single deletes of live keys, and
 * multi-op batches of puts and deletes (a key may appear twice). */
static void wl_gen(wl_t *w, rng_t *r, size_t nb, const gen_t *g) {
  kst *m = model_of(w, w->n, NULL);
  for (size_t i = 0; i < nb; i++) {
    uint32_t u = rng_below(r, 100), live = 0, pick = 0;
    batch_t *b;
    for (uint32_t k = 0; k < w->nkeys; k++)
      live += m[k].present;
    if (u < 45 || (u < 60 && live == 0)) {
      /* One draw per statement (not two in one argument list), so that
       * every compiler makes the same workload. */
      uint32_t key = rng_below(r, w->nkeys);
      b = wl_add(w, 1);
      op_put(w, &b->ops[0], key, gen_vlen(r, g));
    } else if (u < 60) {
      uint32_t nth = rng_below(r, live);
      for (pick = 0; pick < w->nkeys; pick++)
        if (m[pick].present && nth-- == 0)
          break;
      b = wl_add(w, 1);
      op_del(&b->ops[0], pick);
    } else {
      b = wl_add(w, 2 + rng_below(r, g->max_ops - 1));
      for (size_t j = 0; j < b->n; j++) {
        uint32_t key;
        if (rng_below(r, 4) == 0) {
          op_del(&b->ops[j], rng_below(r, w->nkeys));
          continue;
        }
        key = rng_below(r, w->nkeys);
        op_put(w, &b->ops[j], key, gen_vlen(r, g));
      }
    }
    model_apply(m, b);
  }
  fx_free(m);
}

static uint64_t op_bytes(const op_t *o) {
  char k[KEY_CAP];
  return MAPKV__REC_OVERHEAD + key_of(o->key, k) + (o->del ? 0 : o->vlen);
}

static uint64_t batch_bytes(const batch_t *b) {
  uint64_t n = b->n > 1 ? COMMIT_B : 0;
  for (size_t i = 0; i < b->n; i++)
    n += op_bytes(&b->ops[i]);
  return n;
}

/* The records of a committed batch: offsets and sizes, the COMMIT last. */
static size_t batch_recs(const batch_t *b, uint64_t *off, uint64_t *size) {
  uint64_t at = b->start;
  size_t n = 0;
  assert_true(b->n + 1 <= MAX_RECS);
  for (size_t i = 0; i < b->n; i++) {
    off[n] = at;
    size[n] = op_bytes(&b->ops[i]);
    at += size[n++];
  }
  if (b->n > 1) {
    off[n] = at;
    size[n++] = COMMIT_B;
  }
  return n;
}

/* Sequence numbers used by batches [0, upto). */
static uint64_t wl_seq(const wl_t *w, size_t upto) {
  uint64_t s = 0;
  for (size_t i = 0; i < upto; i++)
    s += w->b[i].n + (w->b[i].n > 1);
  return s;
}

/* ---- talking to the store ------------------------------------------------ */

static mapkv_stats stats_of(mapkv_t *db) {
  mapkv_stats st;
  assert_int_equal(mapkv_stat(db, &st), 0);
  return st;
}

static uint64_t data_end_of(mapkv_t *db) { return stats_of(db).data_end; }

/* Commits b with its keys moved up by base, values built in v (VAL_CAP
 * bytes: one buffer per thread). */
static int commit_batch_at(mapkv_t *db, const batch_t *b, uint32_t base,
                           uint8_t *v) {
  char k[KEY_CAP];
  mapkv_batch_t *bt;
  int rc;
  if (b->n == 1) {
    const op_t *o = &b->ops[0];
    size_t kl = key_of(base + o->key, k);
    if (o->del)
      return mapkv_del(db, k, kl);
    val_of(o->vseed, o->vlen, v);
    return mapkv_put(db, k, kl, v, o->vlen);
  }
  if ((rc = mapkv_batch_begin(db, &bt)) != 0)
    return rc;
  for (size_t i = 0; i < b->n; i++) {
    const op_t *o = &b->ops[i];
    size_t kl = key_of(base + o->key, k);
    if (o->del) {
      rc = mapkv_batch_del(bt, k, kl);
    } else {
      val_of(o->vseed, o->vlen, v);
      rc = mapkv_batch_put(bt, k, kl, v, o->vlen);
    }
    if (rc != 0) {
      mapkv_batch_abort(bt);
      return rc;
    }
  }
  return mapkv_batch_commit(bt);
}

static int commit_batch(mapkv_t *db, const batch_t *b) {
  static uint8_t v[VAL_CAP];
  return commit_batch_at(db, b, 0, v);
}

/* Commits batches [from, to), noting where each one lies in the file. */
static void wl_run(mapkv_t *db, wl_t *w, size_t from, size_t to) {
  for (size_t i = from; i < to; i++) {
    batch_t *b = &w->b[i];
    int rc;
    b->start = data_end_of(db);
    rc = commit_batch(db, b);
    if (rc != 0)
      fail_msg("commit of batch %zu: %d %s", i, rc, mapkv_errmsg());
    b->end = data_end_of(db);
    assert_int_equal(b->end - b->start, batch_bytes(b));
  }
}

/* Puts one of the extra keys (after the workload's) and notes it in m. */
static void put_extra(mapkv_t *db, const wl_t *w, kst *m, uint32_t which,
                      uint64_t vseed, uint32_t vlen) {
  static uint8_t v[VAL_CAP];
  char k[KEY_CAP];
  uint32_t key = w->nkeys + which;
  size_t kl = key_of(key, k);
  val_of(vseed, vlen, v);
  assert_int_equal(mapkv_put(db, k, kl, v, vlen), 0);
  m[key].present = 1;
  m[key].vlen = vlen;
  m[key].vseed = vseed;
}

/* 0 if db shows exactly state m over keys [0, n) — through get, the live-key
 * count and (with cursor) a cursor — else 1 with the first difference in
 * why. */
static int state_diff_ex(mapkv_t *db, const kst *m, uint32_t n, int cursor,
                         char *why, size_t cap) {
  static uint8_t got[VAL_CAP], want[VAL_CAP];
  char k[KEY_CAP];
  uint64_t present = 0, seen_n = 0;
  mapkv_cursor_t *c = NULL;
  mapkv_stats st;
  uint8_t *seen = fx_calloc(n + 1, 1);
  const void *kp, *vp;
  size_t kl, vl;
  int rc, bad = 1;
  if (seen == NULL) {
    snprintf(why, cap, "out of memory");
    return 1;
  }
  for (uint32_t i = 0; i < n; i++) {
    kl = key_of(i, k);
    vl = 0;
    rc = mapkv_get(db, k, kl, got, sizeof got, &vl);
    if (m[i].damaged && rc == MAPKV_ECORRUPT) {
      present++; /* a damaged key counts among the records */
      continue;
    }
    if (m[i].maybe_missing && rc == MAPKV_NOTFOUND)
      continue;
    if (!m[i].present) {
      if (rc != MAPKV_NOTFOUND) {
        snprintf(why, cap, "key %u: get returned %d, expected MAPKV_NOTFOUND",
                 (unsigned)i, rc);
        goto out;
      }
      continue;
    }
    present++;
    if (rc != 0) {
      snprintf(why, cap, "key %u: get returned %d (%s), expected %u bytes",
               (unsigned)i, rc, mapkv_strerror(rc), (unsigned)m[i].vlen);
      goto out;
    }
    val_of(m[i].vseed, m[i].vlen, want);
    if (vl != m[i].vlen || memcmp(got, want, vl) != 0) {
      snprintf(why, cap, "key %u: wrong value (%zu bytes, expected %u)",
               (unsigned)i, vl, (unsigned)m[i].vlen);
      goto out;
    }
  }
  if (mapkv_stat(db, &st) != 0 || st.records != present) {
    snprintf(why, cap, "stat: %llu live keys, expected %llu", (ull)st.records,
             (ull)present);
    goto out;
  }
  if (!cursor) {
    bad = 0;
    goto out;
  }
  if ((rc = mapkv_cursor_open(db, NULL, 0, &c)) != 0) {
    snprintf(why, cap, "cursor_open returned %d", rc);
    goto out;
  }
  while ((rc = mapkv_cursor_next(c, &kp, &kl, &vp, &vl)) == 0) {
    uint32_t i;
    if (!parse_key(kp, kl, &i) || i >= n || !m[i].present) {
      snprintf(why, cap, "cursor returned a key that is not live (%.*s)",
               (int)(kl < 20 ? kl : 20), (const char *)kp);
      goto out;
    }
    if (seen[i]) {
      snprintf(why, cap, "cursor returned key %u twice", (unsigned)i);
      goto out;
    }
    seen[i] = 1;
    seen_n++;
    val_of(m[i].vseed, m[i].vlen, want);
    if (vl != m[i].vlen || memcmp(vp, want, vl) != 0) {
      snprintf(why, cap, "cursor: key %u has a wrong value", (unsigned)i);
      goto out;
    }
  }
  if (rc != MAPKV_NOTFOUND) {
    snprintf(why, cap, "cursor_next returned %d", rc);
    goto out;
  }
  if (seen_n != present) {
    uint32_t miss = 0;
    while (miss < n && !(m[miss].present && !seen[miss]))
      miss++;
    snprintf(why, cap, "cursor returned %llu keys of %llu (key %u missing)",
             (ull)seen_n, (ull)present, (unsigned)miss);
    goto out;
  }
  bad = 0;
out:
  mapkv_cursor_close(c);
  fx_free(seen);
  return bad;
}

static int state_diff(mapkv_t *db, const kst *m, uint32_t n, char *why,
                      size_t cap) {
  return state_diff_ex(db, m, n, 1, why, cap);
}

static void expect_state_ex(mapkv_t *db, const kst *m, uint32_t n, int cursor,
                            const char *where) {
  char why[512];
  if (state_diff_ex(db, m, n, cursor, why, sizeof why) != 0)
    fail_msg("%s: %s", where, why);
}

static void expect_state(mapkv_t *db, const kst *m, uint32_t n,
                         const char *where) {
  expect_state_ex(db, m, n, 1, where);
}

/* Damaged spans reported by mapkv_verify(). */
typedef struct spans {
  size_t n;
  uint64_t off[8], len[8];
} spans;

static void on_damage(void *ctx, uint64_t off, uint64_t len, const char *what) {
  spans *s = ctx;
  (void)what;
  if (s->n < 8) {
    s->off[s->n] = off;
    s->len[s->n] = len;
  }
  s->n++;
}

static int verify_spans(mapkv_t *db, spans *s, uint64_t *count) {
  memset(s, 0, sizeof *s);
  *count = 12345;
  return mapkv_verify(db, on_damage, s, count);
}

/* ---- reopening after a clean close and after a crash --------------------- */

static void test_reopen_clean_and_crash(void **state) {
  const char *p = fx_path("rec-reopen"), *q = fx_path("rec-reopen-crash");
  gen_t g = {6, 200, 5, 1000, 6000};
  rng_t r = {11};
  mapkv_stats st;
  spans sp;
  uint64_t nd;
  uint8_t *img, *after;
  size_t len, alen;
  mapkv_t *db, *c;
  kst *m;
  wl_t w;
  (void)state;

  wl_init(&w, 48);
  wl_gen(&w, &r, 80, &g);
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, &w, 0, 40);
  m = model_of(&w, 40, NULL);

  /* A crash: the file as the open handle left it, never closed. */
  img = fx_slurp(p, &len);
  put_file(q, img, len);
  c = fx_open(q, 0);
  st = stats_of(c);
  assert_int_equal(st.clean_open, 0);
  assert_int_equal(st.recovered_batches, 40);
  assert_int_equal(st.data_end, w.b[39].end);
  assert_int_equal(st.last_seq, wl_seq(&w, 40));
  assert_int_equal(st.dropped_tail_bytes, 0);
  assert_int_equal(st.dropped_tail_records, 0);
  assert_int_equal(st.damaged_regions, 0);
  assert_int_equal(st.first_damage_offset, 0);
  expect_state(c, m, univ(&w), "crash copy");
  assert_int_equal(verify_spans(c, &sp, &nd), 0);
  assert_int_equal(nd, 0);
  assert_int_equal(sp.n, 0);
  fx_close(c);

  /* A read-only open of a crashed store recovers in memory and writes
   * nothing. */
  put_file(q, img, len);
  c = fx_open(q, MAPKV_RDONLY);
  st = stats_of(c);
  assert_int_equal(st.clean_open, 0);
  assert_int_equal(st.data_end, w.b[39].end);
  expect_state(c, m, univ(&w), "read-only crash copy");
  assert_int_equal(mapkv_put(c, "x", 1, "y", 1), MAPKV_EREADONLY);
  fx_close(c);
  after = fx_slurp(q, &alen);
  assert_int_equal(alen, len);
  assert_memory_equal(after, img, len);
  fx_free(after);
  fx_free(img);

  /* A clean close, then a clean open. */
  fx_close(db);
  db = fx_open(p, 0);
  st = stats_of(db);
  assert_int_equal(st.clean_open, 1);
  assert_int_equal(st.recovered_batches, 40);
  assert_int_equal(st.data_end, w.b[39].end);
  assert_int_equal(st.last_seq, wl_seq(&w, 40));
  assert_int_equal(st.dropped_tail_bytes, 0);
  assert_int_equal(st.damaged_regions, 0);
  expect_state(db, m, univ(&w), "clean reopen");
  assert_int_equal(verify_spans(db, &sp, &nd), 0);
  fx_free(m);

  /* More commits after the clean reopen, then another crash. */
  wl_run(db, &w, 40, 80);
  m = model_of(&w, 80, NULL);
  img = fx_slurp(p, &len);
  put_file(q, img, len);
  fx_free(img);
  c = fx_open(q, 0);
  st = stats_of(c);
  assert_int_equal(st.clean_open, 0);
  assert_int_equal(st.recovered_batches, 80);
  assert_int_equal(st.data_end, w.b[79].end);
  assert_int_equal(st.last_seq, wl_seq(&w, 80));
  assert_int_equal(st.damaged_regions, 0);
  assert_int_equal(st.dropped_tail_bytes, 0);
  expect_state(c, m, univ(&w), "second crash copy");
  fx_close(c);
  fx_close(db);

  db = fx_open(p, MAPKV_RDONLY);
  assert_int_equal(stats_of(db).clean_open, 1);
  expect_state(db, m, univ(&w), "read-only clean reopen");
  fx_close(db);
  fx_free(m);
  wl_free(&w);
}

/* ---- a crash at a record boundary or inside a record --------------------- */

typedef struct cut_env {
  const wl_t *w;
  kst **models; /* models[k]: the state after batches [0, k) */
  const uint8_t *img;
  size_t len;
  const char *path, *path2;
} cut_env;

/* The store cut at T (the file truncated there, or kept whole with the bytes
 * from T zeroed) must show exactly the batches that end at or before T. */
static void check_cut(const cut_env *e, uint64_t T, int zero_rest,
                      int write_after) {
  const wl_t *w = e->w;
  uint64_t off[MAX_RECS], size[MAX_RECS], prev, Te;
  size_t k = 0, nrec, complete = 0;
  char where[128];
  mapkv_stats st;
  mapkv_t *db;
  kst *m;

  snprintf(where, sizeof where, "cut at %llu (%s)", (ull)T,
           zero_rest ? "zeroed from there" : "truncated");
  if (zero_rest) {
    uint8_t *b = fx_malloc(e->len);
    assert_non_null(b);
    memcpy(b, e->img, T);
    memset(b + T, 0, e->len - T);
    put_file(e->path, b, e->len);
    fx_free(b);
  } else {
    put_file(e->path, e->img, T);
  }
  /* Zeroing from T is zeroing from Te: the bytes between were zero. */
  Te = T;
  while (zero_rest && Te < e->len && e->img[Te] == 0)
    Te++;
  while (k < w->n && w->b[k].end <= Te)
    k++;
  prev = k > 0 ? w->b[k - 1].end : MAPKV__HDR_PAGE;

  db = fx_open(e->path, 0);
  st = stats_of(db);
  if (st.data_end != prev || st.recovered_batches != k ||
      st.damaged_regions != 0 || st.first_damage_offset != 0)
    fail_msg("%s: data end %llu (expected %llu), %llu batches (expected %zu), "
             "%llu damaged regions at %llu (expected none)",
             where, (ull)st.data_end, (ull)prev, (ull)st.recovered_batches, k,
             (ull)st.damaged_regions, (ull)st.first_damage_offset);
  assert_int_equal(st.clean_open, 0);
  assert_int_equal(st.last_seq, wl_seq(w, k));
  if (T > prev) {
    /* Mid-batch: the partial batch is the dropped tail, its non-zero bytes
     * and its complete records. */
    uint64_t tail = nonzero_end(e->img, prev, T) - prev;
    nrec = batch_recs(&w->b[k], off, size);
    for (size_t i = 0; i < nrec; i++)
      complete += off[i] + size[i] <= Te;
    if (st.dropped_tail_bytes != tail || st.dropped_tail_records != complete)
      fail_msg("%s: dropped tail of %llu bytes / %llu records, expected "
               "%llu bytes / %zu records",
               where, (ull)st.dropped_tail_bytes, (ull)st.dropped_tail_records,
               (ull)tail, complete);
  } else {
    assert_int_equal(st.dropped_tail_bytes, 0);
    assert_int_equal(st.dropped_tail_records, 0);
  }
  expect_state(db, e->models[k], univ(w), where);
  /* The writer zeroed what it dropped. */
  if (!zero_on_disk(e->path, prev, T))
    fail_msg("%s: the dropped tail [%llu, %llu) was not zeroed", where,
             (ull)prev, (ull)T);
  assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), 0);
  if (!write_after) {
    fx_close(db);
    return;
  }

  /* A new commit after the cut, then a crash and a clean close: nothing of
   * the dropped batch may come back in either. */
  m = model_of(w, k, NULL);
  put_extra(db, w, m, 0, T * 7 + 1, (uint32_t)(T % 3));
  {
    size_t len2;
    uint8_t *img2 = fx_slurp(e->path, &len2);
    put_file(e->path2, img2, len2);
    fx_free(img2);
  }
  fx_close(db);
  db = fx_open(e->path, 0);
  assert_int_equal(stats_of(db).clean_open, 1);
  expect_state(db, m, univ(w), where);
  fx_close(db);
  db = fx_open(e->path2, 0);
  st = stats_of(db);
  assert_int_equal(st.clean_open, 0);
  if (st.recovered_batches != k + 1 || st.dropped_tail_bytes != 0 ||
      st.damaged_regions != 0)
    fail_msg("%s, a put, a crash: %llu batches (expected %zu), tail %llu, "
             "%llu damaged regions; data end %llu",
             where, (ull)st.recovered_batches, k + 1,
             (ull)st.dropped_tail_bytes, (ull)st.damaged_regions,
             (ull)st.data_end);
  expect_state(db, m, univ(w), where);
  fx_close(db);
  fx_free(m);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Builds the workload, crash-copies the store and checks every cut point:
 * every byte (every_byte) or every record boundary and offsets inside every
 * record's header, key, value and checksum. */
static void run_cuts(wl_t *w, int every_byte) {
  const char *p = fx_path("rec-cut"), *q = fx_path("rec-cut-a"),
             *q2 = fx_path("rec-cut-b");
  uint64_t *pts, off[MAX_RECS], size[MAX_RECS];
  size_t npts = 0, cap, len;
  mapkv_t *db;
  cut_env e;

  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, w, 0, w->n);
  memset(&e, 0, sizeof e);
  e.w = w;
  e.img = fx_slurp(p, &e.len);
  e.path = q;
  e.path2 = q2;
  fx_close(db);
  e.models = fx_calloc(w->n + 1, sizeof *e.models);
  assert_non_null(e.models);
  for (size_t k = 0; k <= w->n; k++)
    e.models[k] = model_of(w, k, NULL);

  len = w->b[w->n - 1].end;
  cap = every_byte ? len + 1 : 32 * wl_seq(w, w->n) + 8;
  pts = fx_malloc(cap * sizeof *pts);
  assert_non_null(pts);
  if (every_byte) {
    for (uint64_t t = MAPKV__HDR_PAGE; t <= len; t++)
      pts[npts++] = t;
  } else {
    for (size_t i = 0; i < w->n; i++) {
      size_t n = batch_recs(&w->b[i], off, size);
      for (size_t j = 0; j < n; j++) {
        uint64_t klen = size[j] - MAPKV__REC_OVERHEAD;
        const uint64_t in[] = {0, 1, 2, 10, 15, 16, 21, 22, 23, 22 + klen / 2};
        const uint64_t from_end[] = {9, 8, 1};
        for (size_t x = 0; x < sizeof in / sizeof in[0]; x++)
          if (in[x] < size[j])
            pts[npts++] = off[j] + in[x];
        for (size_t x = 0; x < sizeof from_end / sizeof from_end[0]; x++)
          pts[npts++] = off[j] + size[j] - from_end[x];
        pts[npts++] = off[j] + size[j] / 2;
      }
    }
    pts[npts++] = len;
    assert_true(npts <= cap);
    qsort(pts, npts, sizeof *pts, cmp_u64);
  }
  for (size_t i = 0; i < npts; i++) {
    if (i > 0 && pts[i] == pts[i - 1])
      continue;
    check_cut(&e, pts[i], 0, i % 6 == 0);
    check_cut(&e, pts[i], 1, i % 6 == 3);
  }
  for (size_t k = 0; k <= w->n; k++)
    fx_free(e.models[k]);
  fx_free(e.models);
  fx_free(pts);
  fx_free((void *)e.img);
}

static void test_crash_every_byte_small_store(void **state) {
  wl_t w;
  (void)state;
  wl_init(&w, 6);
  wl_spec(&w, "p0:3 p1:2 p2:4");
  wl_spec(&w, "p3:5");
  wl_spec(&w, "d1");
  wl_spec(&w, "p0:0 d2 p4:1");
  wl_spec(&w, "p2:2 p2:6");
  wl_spec(&w, "d0 d3");
  wl_spec(&w, "p5:3");
  run_cuts(&w, 1);
  wl_free(&w);
}

static void test_crash_at_every_record_boundary(void **state) {
  gen_t g = {6, 90, 4, 300, 700};
  rng_t r = {22};
  wl_t w;
  (void)state;
  wl_init(&w, 24);
  wl_gen(&w, &r, 26, &g);
  assert_true(wl_seq(&w, w.n) >= 60); /* records */
  {
    size_t multi = 0, dels = 0;
    for (size_t i = 0; i < w.n; i++) {
      multi += w.b[i].n > 1;
      for (size_t j = 0; j < w.b[i].n; j++)
        dels += w.b[i].ops[j].del;
    }
    assert_true(multi >= 5 && dels >= 5);
  }
  run_cuts(&w, 0);
  wl_free(&w);
}

/* ---- bit flips ----------------------------------------------------------- */

/* The workload the bit-flip tests damage: batches of one and of several
 * operations, deletes, overwrites, an empty value. */
static void flip_workload(wl_t *w) {
  wl_init(w, 16);
  wl_spec(w, "p0 p1 p2 p3 p4 p5"); /* 0: first batch of the file */
  wl_spec(w, "p6");
  wl_spec(w, "p0 d1 p7");
  wl_spec(w, "p2");
  wl_spec(w, "d3");
  wl_spec(w, "p0 d4 p8 p2"); /* 5: middle, several operations */
  wl_spec(w, "p9");
  wl_spec(w, "p5"); /* 7: middle, one put */
  wl_spec(w, "p10 p6");
  wl_spec(w, "d7"); /* 9: middle, one delete */
  wl_spec(w, "p11 p14:0");
  wl_spec(w, "p0 d8 p12"); /* 11: last of the 12-batch image */
  wl_spec(w, "p13");
  wl_spec(w, "p2"); /* 13: last of the 14-batch image */
}

typedef struct flip_t {
  const char *field;
  uint64_t at; /* offset inside the record */
  uint8_t bit;
} flip_t;

/* Flips in every field of a record of `size` bytes. */
static size_t flips_of(uint64_t size, int commit, flip_t *f) {
  uint64_t body = size - MAPKV__REC_OVERHEAD;
  size_t n = 0;
  const flip_t fixed[] = {{"marker", 0, 0},
                          {"marker", 1, 7},
                          {"type", 2, 0},
                          {"type", 2, 2},
                          {"flags", 3, 0},
                          {"flags", 3, 1},
                          {"flags", 3, 6},
                          {"key length", 4, 0},
                          {"key length", 5, 1},
                          {"value length", 6, 0},
                          {"value length", 7, 4},
                          {"value length", 9, 7},
                          {"seq", 10, 0},
                          {"seq", 12, 3},
                          {"seq", 15, 7},
                          {"prev", 16, 0},
                          {"prev", 18, 5},
                          {"prev", 21, 7},
                          {"checksum", size - 8, 0},
                          {"checksum", size - 1, 7}};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    f[n++] = fixed[i];
  if (commit) {
    f[n++] = (flip_t){"commit count", 22, 0};
    f[n++] = (flip_t){"commit count", 24, 5};
    f[n++] = (flip_t){"commit reserved", 27, 2};
  } else if (body > 0) {
    f[n++] = (flip_t){"key or value (first)", 22, 0};
    f[n++] = (flip_t){"key or value (middle)", 22 + body / 2, 3};
    f[n++] = (flip_t){"key or value (last)", 22 + body - 1, 6};
  }
  return n;
}

/* One damaged image: the flipped store, and what recovery must make of it. */
typedef struct flip_case {
  const wl_t *w;
  size_t nb;     /* batches in the image */
  size_t target; /* the damaged batch */
  size_t rec;    /* the damaged record in it */
  flip_t flip;
  uint8_t *img;
  size_t len;
} flip_case;

/* All cases: each target batch, each record, each field. Returns how many. */
static size_t flip_cases(const wl_t *w, uint8_t *img12, size_t len12,
                         uint8_t *img14, size_t len14, flip_case *out,
                         size_t cap) {
  const size_t targets[][2] = {{14, 0}, {14, 5},  {14, 7},
                               {14, 9}, {12, 11}, {14, 13}};
  uint64_t off[MAX_RECS], size[MAX_RECS];
  flip_t f[32];
  size_t n = 0;
  for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
    const batch_t *b = &w->b[targets[t][1]];
    size_t nrec = batch_recs(b, off, size);
    for (size_t r = 0; r < nrec; r++) {
      int commit = b->n > 1 && r == nrec - 1;
      size_t nf = flips_of(size[r], commit, f);
      for (size_t i = 0; i < nf; i++) {
        flip_case *c = &out[n++];
        assert_true(n <= cap);
        c->w = w;
        c->nb = targets[t][0];
        c->target = targets[t][1];
        c->rec = r;
        c->flip = f[i];
        c->img = c->nb == 12 ? img12 : img14;
        c->len = c->nb == 12 ? len12 : len14;
      }
    }
  }
  return n;
}

/* Writes the damaged image of case c to path; returns the end of its last
 * non-zero byte. */
static uint64_t write_flipped(const flip_case *c, const char *path) {
  uint64_t off[MAX_RECS], size[MAX_RECS], nz;
  uint8_t *b = fx_malloc(c->len);
  assert_non_null(b);
  batch_recs(&c->w->b[c->target], off, size);
  memcpy(b, c->img, c->len);
  b[off[c->rec] + c->flip.at] ^= (uint8_t)(1u << c->flip.bit);
  put_file(path, b, c->len);
  nz = nonzero_end(b, PAGE, c->len);
  fx_free(b);
  return nz;
}

/* Builds the flip workload; images after 12 and after 14 batches. */
static void flip_setup(wl_t *w, uint8_t **img12, size_t *len12, uint8_t **img14,
                       size_t *len14) {
  const char *p = fx_path("rec-flip-src");
  mapkv_t *db;
  flip_workload(w);
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, w, 0, 12);
  *img12 = fx_slurp(p, len12);
  wl_run(db, w, 12, 14);
  *img14 = fx_slurp(p, len14);
  fx_close(db);
}

/* Recovery of each damaged image: the damaged batch is gone (its keys have
 * their previous values), every other batch is intact, the figures and
 * verify name the damage. Reads through get; the cursor has its own test. */
static void test_bitflip_records(void **state) {
  const char *p = fx_path("rec-flip"), *q = fx_path("rec-flip-ro"),
             *q2 = fx_path("rec-flip-again");
  static flip_case cases[1024];
  uint8_t *img12, *img14;
  size_t len12, len14, n;
  wl_t w;
  (void)state;

  flip_setup(&w, &img12, &len12, &img14, &len14);
  n = flip_cases(&w, img12, len12, img14, len14, cases, 1024);
  assert_true(n > 300);
  for (size_t i = 0; i < n; i++) {
    const flip_case *c = &cases[i];
    const batch_t *t = &w.b[c->target];
    uint64_t off[MAX_RECS], size[MAX_RECS], nd, nz;
    size_t nrec = batch_recs(t, off, size);
    int last = c->target == c->nb - 1;
    char where[160];
    mapkv_stats st;
    mapkv_t *db;
    spans sp;
    kst *m = model_without(&w, c->nb, c->target);

    snprintf(where, sizeof where,
             "flip of bit %u of %s (offset %llu) in record %zu of batch %zu",
             (unsigned)c->flip.bit, c->flip.field,
             (ull)(off[c->rec] + c->flip.at), c->rec, c->target);
    nz = write_flipped(c, p);
    if (getenv("DBG_KEEP")) {
      write_flipped(c, "/tmp/mt/keep.mkv");
    }
    db = fx_open(p, 0);
    st = stats_of(db);
    expect_state_ex(db, m, univ(&w), 0, where);
    assert_int_equal(st.clean_open, 0);
    assert_int_equal(st.recovered_batches, c->nb - 1);
    if (!last) {
      if (st.damaged_regions != 1 || st.first_damage_offset != t->start ||
          st.damaged_bytes != t->end - t->start ||
          st.data_end != w.b[c->nb - 1].end || st.dropped_tail_bytes != 0)
        fail_msg("%s: %llu damaged regions, the first at %llu, %llu bytes; "
                 "data end %llu, tail %llu (expected 1 at %llu, %llu bytes; "
                 "data end %llu, no tail)",
                 where, (ull)st.damaged_regions, (ull)st.first_damage_offset,
                 (ull)st.damaged_bytes, (ull)st.data_end,
                 (ull)st.dropped_tail_bytes, (ull)t->start,
                 (ull)(t->end - t->start), (ull)w.b[c->nb - 1].end);
      /* verify reports the span, with its offset */
      if (verify_spans(db, &sp, &nd) != MAPKV_ECORRUPT || nd != 1 ||
          sp.n != 1 || sp.off[0] != t->start || sp.len[0] != t->end - t->start)
        fail_msg("%s: verify found %llu spans (first at %llu, %llu bytes), "
                 "expected one at %llu (%llu bytes)",
                 where, (ull)sp.n, (ull)sp.off[0], (ull)sp.len[0],
                 (ull)t->start, (ull)(t->end - t->start));
    } else {
      if (st.damaged_regions != 0 || st.first_damage_offset != 0 ||
          st.data_end != t->start || st.dropped_tail_bytes != nz - t->start ||
          st.dropped_tail_records < c->rec || st.dropped_tail_records >= nrec)
        fail_msg("%s: %llu damaged regions, data end %llu, tail %llu bytes / "
                 "%llu records (expected none, %llu, %llu bytes, %zu..%zu "
                 "records)",
                 where, (ull)st.damaged_regions, (ull)st.data_end,
                 (ull)st.dropped_tail_bytes, (ull)st.dropped_tail_records,
                 (ull)t->start, (ull)(nz - t->start), c->rec, nrec - 1);
      assert_true(zero_on_disk(p, t->start, t->end));
      assert_int_equal(verify_spans(db, &sp, &nd), 0);
    }

    /* A commit after the damage; a crash; recovery again. */
    put_extra(db, &w, m, 1, 1000 + i, 9);
    {
      size_t len2;
      uint8_t *img2 = fx_slurp(p, &len2);
      put_file(q2, img2, len2);
      fx_free(img2);
    }
    fx_close(db);
    db = fx_open(q2, 0);
    st = stats_of(db);
    assert_int_equal(st.clean_open, 0);
    assert_int_equal(st.dropped_tail_bytes, 0);
    assert_int_equal(st.damaged_regions, last ? 0 : 1);
    expect_state_ex(db, m, univ(&w), 0, where);
    fx_close(db);

    /* A read-only open of the damaged file: verify reports the span. */
    if (!last) {
      write_flipped(c, q);
      db = fx_open(q, MAPKV_RDONLY);
      if (verify_spans(db, &sp, &nd) != MAPKV_ECORRUPT || sp.n != 1 ||
          sp.off[0] != t->start)
        fail_msg("%s: read-only verify found %llu spans (first at %llu)", where,
                 (ull)sp.n, (ull)sp.off[0]);
      fx_close(db);
    }
    fx_free(m);
  }
  fx_free(img12);
  fx_free(img14);
  wl_free(&w);
}

/* A cursor over each recovered damaged image returns every live key once,
 * with its value: a damaged record's lengths must not make it step over
 * intact records. */
static void test_bitflip_cursor_sees_every_live_key(void **state) {
  const char *p = fx_path("rec-flipcur");
  static flip_case cases[1024];
  uint8_t *img12, *img14;
  size_t len12, len14, n;
  wl_t w;
  (void)state;

  flip_setup(&w, &img12, &len12, &img14, &len14);
  n = flip_cases(&w, img12, len12, img14, len14, cases, 1024);
  for (size_t i = 0; i < n; i++) {
    const flip_case *c = &cases[i];
    uint64_t off[MAX_RECS], size[MAX_RECS];
    char where[160];
    mapkv_t *db;
    kst *m = model_without(&w, c->nb, c->target);

    batch_recs(&w.b[c->target], off, size);
    snprintf(where, sizeof where,
             "cursor after a flip of bit %u of %s (offset %llu) in record "
             "%zu of batch %zu",
             (unsigned)c->flip.bit, c->flip.field,
             (ull)(off[c->rec] + c->flip.at), c->rec, c->target);
    write_flipped(c, p);
    db = fx_open(p, MAPKV_RDONLY);
    expect_state(db, m, univ(&w), where);
    fx_close(db);
    fx_free(m);
  }
  fx_free(img12);
  fx_free(img14);
  wl_free(&w);
}

/* The writer that recovered a damaged store closes it cleanly; the next
 * open must show the same state: the damaged batch stays dropped. */
static void test_bitflip_damage_stays_dropped_after_clean_close(void **state) {
  const char *p = fx_path("rec-flipc");
  static flip_case cases[1024];
  uint8_t *img12, *img14;
  size_t len12, len14, n;
  wl_t w;
  (void)state;

  flip_setup(&w, &img12, &len12, &img14, &len14);
  n = flip_cases(&w, img12, len12, img14, len14, cases, 1024);
  for (size_t i = 0; i < n; i++) {
    const flip_case *c = &cases[i];
    uint64_t off[MAX_RECS], size[MAX_RECS];
    char where[160];
    mapkv_t *db;
    kst *m = model_without(&w, c->nb, c->target);

    batch_recs(&w.b[c->target], off, size);
    snprintf(where, sizeof where,
             "clean reopen after a flip of bit %u of %s (offset %llu) in "
             "record %zu of batch %zu",
             (unsigned)c->flip.bit, c->flip.field,
             (ull)(off[c->rec] + c->flip.at), c->rec, c->target);
    write_flipped(c, p);
    db = fx_open(p, 0);
    put_extra(db, &w, m, 1, 2000 + i, 5);
    fx_close(db);
    db = fx_open(p, 0);
    expect_state(db, m, univ(&w), where);
    fx_close(db);
    fx_free(m);
  }
  fx_free(img12);
  fx_free(img14);
  wl_free(&w);
}

/* The smallest case of the above: a batch {put a, delete b} whose COMMIT
 * checksum is damaged; recovery drops it; after a clean close it is back. */
static void test_damaged_commit_not_applied_after_clean_close(void **state) {
  const char *p = fx_path("rec-commit");
  uint64_t off[MAX_RECS], size[MAX_RECS];
  uint8_t *img;
  size_t len;
  mapkv_t *db;
  kst *m;
  wl_t w;
  (void)state;

  wl_init(&w, 4);
  wl_spec(&w, "p0 p1");
  wl_spec(&w, "p0 d1"); /* the damaged batch */
  wl_spec(&w, "p2");
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, &w, 0, 3);
  img = fx_slurp(p, &len);
  fx_close(db);
  batch_recs(&w.b[1], off, size);
  img[off[2] + size[2] - 1] ^= 0x10; /* the COMMIT's checksum */
  put_file(p, img, len);
  fx_free(img);

  m = model_without(&w, 3, 1);
  db = fx_open(p, 0);
  assert_int_equal(stats_of(db).damaged_regions, 1);
  expect_state(db, m, univ(&w), "recovery of the damaged commit");
  fx_close(db); /* clean close by the writer that recovered the store */
  db = fx_open(p, 0);
  expect_state(db, m, univ(&w), "clean reopen");
  fx_close(db);
  fx_free(m);
  wl_free(&w);
}

/* A bit flip in a store that was closed cleanly: every open verifies every
 * checksum; the damaged key answers MAPKV_ECORRUPT (never its previous
 * value), every other key reads back, verify finds the damage, and so does
 * every later open. */
static void test_bitflip_in_cleanly_closed_store(void **state) {
  const char *p = fx_path("rec-cflip");
  uint64_t off[MAX_RECS], size[MAX_RECS], nd;
  uint8_t *img, buf[256];
  size_t len, vl = 77;
  char k[KEY_CAP];
  mapkv_stats st;
  mapkv_t *db;
  spans sp;
  kst *m;
  wl_t w;
  (void)state;

  flip_workload(&w);
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, &w, 0, 14);
  fx_close(db);
  img = fx_slurp(p, &len);
  m = model_of(&w, 14, NULL);

  /* A value byte, then a key length, of batch 7 (one put of key 5, whose
   * previous value is batch 0's). */
  batch_recs(&w.b[7], off, size);
  for (int which = 0; which < 2; which++) {
    uint64_t at = which == 0 ? off[0] + size[0] - 9 : off[0] + 4;
    uint8_t mask = which == 0 ? 0x01 : 0x02;
    img[at] ^= mask;
    put_file(p, img, len);
    img[at] ^= mask;
    for (int pass = 0; pass < 3; pass++) {
      /* read-only, writable, and writable again after a clean close */
      db = fx_open(p, pass == 0 ? MAPKV_RDONLY : 0);
      st = stats_of(db);
      assert_int_equal(st.clean_open, 1);
      assert_int_equal(st.damaged_regions, 1);
      assert_int_equal(st.first_damage_offset, w.b[7].start);
      assert_int_equal(st.damaged_keys, 1);
      memset(buf, 0xAA, sizeof buf);
      assert_int_equal(mapkv_get(db, k, key_of(5, k), buf, sizeof buf, &vl),
                       MAPKV_ECORRUPT);
      assert_int_equal(vl, 77); /* outputs untouched on failure */
      for (size_t i = 0; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0xAA);
      assert_int_equal(verify_spans(db, &sp, &nd), MAPKV_ECORRUPT);
      assert_int_equal(nd, 1);
      assert_int_equal(sp.off[0], w.b[7].start);
      assert_int_equal(sp.len[0], w.b[7].end - w.b[7].start);
      assert_true(stats_of(db).checksum_failures >= 1);
      /* every other key reads back */
      for (uint32_t i = 0; i < w.nkeys; i++) {
        size_t l;
        int rc = mapkv_get(db, k, key_of(i, k), NULL, 0, &l);
        if (i == 5)
          continue;
        assert_int_equal(rc, !m[i].present   ? MAPKV_NOTFOUND
                             : m[i].vlen > 0 ? MAPKV_EBUFSMALL
                                             : 0);
      }
      if (pass > 0)
        assert_int_equal(mapkv_compact(db), MAPKV_ECORRUPT);
      fx_close(db);
    }
  }
  fx_free(m);
  fx_free(img);
  wl_free(&w);
}

/* damaged_keys counts the keys that answer MAPKV_ECORRUPT: a key whose
 * lost newest batch was written again (or deleted) later in the log, by a
 * writer that opened the damaged store, reads back and is not counted by
 * the opens after that write. */
static void test_damaged_keys_written_again(void **state) {
  const char *p = fx_path("rec-dkagain");
  uint8_t *img, buf[16];
  size_t len, vl;
  mapkv_stats st;
  mapkv_t *db;
  (void)state;

  /* a=old (4096, 34 bytes), b=x (4130, 32), a=new (4162, 34), c=y (4196,
   * 32), b=new (4228): a cleanly closed store */
  db = fx_open(p, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "a", 1, "old", 3), 0);
  assert_int_equal(mapkv_put(db, "b", 1, "x", 1), 0);
  assert_int_equal(mapkv_put(db, "a", 1, "new", 3), 0);
  assert_int_equal(mapkv_put(db, "c", 1, "y", 1), 0);
  assert_int_equal(mapkv_put(db, "b", 1, "new", 3), 0);
  fx_close(db);
  img = fx_slurp(p, &len);
  assert_int_equal(img[4162 + 22], 'a');
  assert_int_equal(img[4228 + 22], 'b');
  img[4162 + 22 + 1 + 1] ^= 0x04; /* a byte of each newest value */
  img[4228 + 22 + 1 + 1] ^= 0x04;
  put_file(p, img, len);
  fx_free(img);

  db = fx_open(p, 0);
  st = stats_of(db);
  assert_int_equal(st.damaged_regions, 2);
  assert_int_equal(st.damaged_keys, 2);
  assert_int_equal(mapkv_get(db, "a", 1, buf, sizeof buf, &vl), MAPKV_ECORRUPT);
  assert_int_equal(mapkv_get(db, "b", 1, buf, sizeof buf, &vl), MAPKV_ECORRUPT);
  assert_int_equal(mapkv_put(db, "a", 1, "fixed", 5), 0);
  assert_int_equal(mapkv_del(db, "b", 1), 0);
  fx_close(db);

  for (int pass = 0; pass < 2; pass++) {
    db = fx_open(p, pass == 0 ? MAPKV_RDONLY : 0);
    st = stats_of(db);
    assert_int_equal(st.damaged_regions, 2); /* the damage stays */
    assert_int_equal(st.damaged_keys, 0);
    assert_int_equal(st.records, 2);
    assert_int_equal(mapkv_get(db, "a", 1, buf, sizeof buf, &vl), 0);
    assert_int_equal(vl, 5);
    assert_memory_equal(buf, "fixed", 5);
    assert_int_equal(mapkv_get(db, "b", 1, buf, sizeof buf, &vl),
                     MAPKV_NOTFOUND);
    assert_int_equal(mapkv_get(db, "c", 1, buf, sizeof buf, &vl), 0);
    assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), MAPKV_ECORRUPT);
    fx_close(db);
  }
}

/* The result of get for key i after damage to batch t of a cleanly closed
 * store: the model's value, or MAPKV_ECORRUPT; never another value, never
 * a deleted key back. Keys t did not write read back exactly; keys whose
 * newest write t holds answer MAPKV_ECORRUPT (or are missing, when the
 * damaged write was their first and its key bytes are what was damaged). */
static int clean_flip_diff(mapkv_t *db, const wl_t *w, const kst *m, size_t t,
                           char *why, size_t cap) {
  static uint8_t got[VAL_CAP], want[VAL_CAP];
  char k[KEY_CAP];
  for (uint32_t i = 0; i < w->nkeys; i++) {
    size_t kl = key_of(i, k), vl = 0;
    int touched = 0, newest_in_t = 0, first_in_t = 1;
    int rc = mapkv_get(db, k, kl, got, sizeof got, &vl);
    for (size_t b = 0; b < t; b++)
      for (size_t j = 0; j < w->b[b].n; j++)
        if (w->b[b].ops[j].key == i)
          first_in_t = 0;
    for (size_t j = 0; j < w->b[t].n; j++)
      touched |= w->b[t].ops[j].key == i;
    newest_in_t = touched;
    for (size_t b = t + 1; b < w->n; b++)
      for (size_t j = 0; j < w->b[b].n; j++)
        if (w->b[b].ops[j].key == i)
          newest_in_t = 0;
    if (newest_in_t) {
      if (rc != MAPKV_ECORRUPT && !(first_in_t && rc == MAPKV_NOTFOUND)) {
        snprintf(why, cap,
                 "key %u (newest write damaged): get %d, expected "
                 "MAPKV_ECORRUPT",
                 (unsigned)i, rc);
        return 1;
      }
      continue;
    }
    if (!m[i].present) {
      if (rc != MAPKV_NOTFOUND) {
        snprintf(why, cap, "key %u: get %d, expected MAPKV_NOTFOUND",
                 (unsigned)i, rc);
        return 1;
      }
      continue;
    }
    val_of(m[i].vseed, m[i].vlen, want);
    if (rc != 0 || vl != m[i].vlen || memcmp(got, want, vl) != 0) {
      snprintf(why, cap,
               "key %u: get %d with %zu bytes, expected its %u-byte "
               "value",
               (unsigned)i, rc, vl, (unsigned)m[i].vlen);
      return 1;
    }
  }
  return 0;
}

/* One bit flipped in every field of every record of a cleanly closed
 * store: across read-only and writable opens, a clean close and a reopen,
 * no get returns an older value or brings a deleted key back, verify
 * reports the damage and compaction refuses to drop it. */
static void test_clean_store_flip_never_shows_older_value(void **state) {
  const char *p = fx_path("rec-cleanflip");
  uint8_t *img, *b;
  size_t len, cases = 0;
  mapkv_t *db;
  kst *m;
  wl_t w;
  (void)state;

  flip_workload(&w);
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, &w, 0, w.n);
  fx_close(db);
  img = fx_slurp(p, &len);
  b = fx_malloc(len);
  assert_non_null(b);
  m = model_of(&w, w.n, NULL);
  for (size_t t = 0; t < w.n; t++) {
    uint64_t off[MAX_RECS], size[MAX_RECS];
    size_t nrec = batch_recs(&w.b[t], off, size);
    for (size_t r = 0; r < nrec; r++) {
      flip_t f[32];
      size_t nf = flips_of(size[r], w.b[t].n > 1 && r == nrec - 1, f);
      for (size_t i = 0; i < nf; i++) {
        char where[200], why[300];
        uint64_t nd;
        spans sp;
        snprintf(where, sizeof where,
                 "clean store, bit %u of %s (offset %llu) of record %zu of "
                 "batch %zu",
                 (unsigned)f[i].bit, f[i].field, (ull)(off[r] + f[i].at), r, t);
        memcpy(b, img, len);
        b[off[r] + f[i].at] ^= (uint8_t)(1u << f[i].bit);
        put_file(p, b, len);
        if (getenv("DBG_KEEP"))
          put_file("/tmp/mt/keep2.mkv", b, len);
        for (int pass = 0; pass < 3; pass++) {
          db = fx_open(p, pass == 0 ? MAPKV_RDONLY : 0);
          if (clean_flip_diff(db, &w, m, t, why, sizeof why) != 0)
            fail_msg("%s, pass %d: %s", where, pass, why);
          if (verify_spans(db, &sp, &nd) != MAPKV_ECORRUPT || nd < 1)
            fail_msg("%s, pass %d: verify found no damage", where, pass);
          if (pass > 0 && mapkv_compact(db) != MAPKV_ECORRUPT)
            fail_msg("%s, pass %d: compaction did not refuse", where, pass);
          fx_close(db);
        }
        cases++;
      }
    }
  }
  assert_true(cases > 600);
  fx_free(m);
  fx_free(b);
  fx_free(img);
  wl_free(&w);
}

/* ---- batch rules broken by intact records ------------------------------ */

/* Rewrites the record at off with another type, flags, sequence number and
 * (count >= 0, for a COMMIT) operation count, under a valid checksum: the
 * record is intact, only the batch rules can reject it. */
static void reencode(uint8_t *img, uint64_t off, int type, int flags,
                     uint64_t seq, int count) {
  uint64_t fid = mapkv__get_le(img + 24, 8);
  uint32_t klen = (uint32_t)mapkv__get_le(img + off + 4, 2);
  uint32_t vlen = (uint32_t)mapkv__get_le(img + off + 6, 4);
  uint8_t *kv = fx_malloc(klen + vlen + 1);
  assert_non_null(kv);
  memcpy(kv, img + off + MAPKV__REC_HEAD, klen + vlen);
  if (count >= 0)
    mapkv__put_le(kv + klen, (uint64_t)count, 4);
  mapkv__rec_encode(img + off, (uint8_t)type, (uint8_t)flags, seq, 0, kv, klen,
                    kv + klen, vlen, fid);
  fx_free(kv);
}

static uint64_t seq_at(const uint8_t *img, uint64_t off) {
  return mapkv__get_le(img + off + 10, 6);
}

static void test_batch_rule_violations(void **state) {
  const char *p = fx_path("rec-rules"), *q = fx_path("rec-rules-b");
  uint64_t mo[MAX_RECS], ms[MAX_RECS], so[MAX_RECS], ss[MAX_RECS];
  const int FL = MAPKV__F_FIRST | MAPKV__F_LAST;
  uint8_t *img, *b;
  size_t len;
  mapkv_t *db;
  wl_t w;
  (void)state;

  flip_workload(&w);
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, &w, 0, 14);
  img = fx_slurp(p, &len);
  fx_close(db);
  b = fx_malloc(len + PAGE);
  assert_non_null(b);
  batch_recs(&w.b[5], mo, ms); /* M: p0 d4 p8 p2, COMMIT (records 0..4) */
  batch_recs(&w.b[7], so, ss); /* S: one put */

  for (int v = 0; v < 10; v++) {
    const char *what = "";
    size_t lost = 5, blen = len;
    int64_t shift = 0; /* bytes the batches after the damage moved */
    uint64_t span, nd;
    mapkv_stats st;
    spans sp;
    kst *m;
    memcpy(b, img, len);
    memset(b + len, 0, PAGE);
    switch (v) {
    case 0:
      what = "COMMIT counts one operation too many";
      reencode(b, mo[4], MAPKV__T_COMMIT, MAPKV__F_LAST, seq_at(b, mo[4]), 5);
      break;
    case 1:
      what = "COMMIT flagged FIRST";
      reencode(b, mo[4], MAPKV__T_COMMIT, FL, seq_at(b, mo[4]), -1);
      break;
    case 2:
      what = "sequence gap inside a batch";
      reencode(b, mo[1], MAPKV__T_DEL, 0, seq_at(b, mo[1]) + 1, -1);
      break;
    case 3:
      what = "second record of a batch flagged FIRST";
      reencode(b, mo[1], MAPKV__T_DEL, MAPKV__F_FIRST, seq_at(b, mo[1]), -1);
      break;
    case 4:
      what = "PUT flagged LAST before the COMMIT";
      reencode(b, mo[3], MAPKV__T_PUT, MAPKV__F_LAST, seq_at(b, mo[3]), -1);
      break;
    case 5:
      what = "COMMIT record missing";
      memmove(b + mo[4], b + mo[4] + COMMIT_B, len - mo[4] - COMMIT_B);
      memset(b + len - COMMIT_B, 0, COMMIT_B);
      shift = -(int64_t)COMMIT_B;
      break;
    case 6:
      what = "single record without LAST";
      lost = 7;
      reencode(b, so[0], MAPKV__T_PUT, MAPKV__F_FIRST, seq_at(b, so[0]), -1);
      break;
    case 7:
      what = "sequence number goes backwards";
      lost = 7;
      reencode(b, so[0], MAPKV__T_PUT, FL, seq_at(b, w.b[6].start), -1);
      break;
    case 8:
      what = "record outside any batch";
      lost = 7;
      reencode(b, so[0], MAPKV__T_PUT, 0, seq_at(b, so[0]), -1);
      break;
    default:
      what = "a batch repeated right after itself";
      lost = 14; /* nothing */
      shift = (int64_t)(w.b[6].end - w.b[6].start);
      memmove(b + w.b[6].end + shift, b + w.b[6].end, len - w.b[6].end);
      memcpy(b + w.b[6].end, b + w.b[6].start, (size_t)shift);
      blen = len + PAGE;
      break;
    }
    put_file(q, b, blen);
    m = lost < 14 ? model_without(&w, 14, lost) : model_of(&w, 14, NULL);
    span = lost < 14 ? (uint64_t)((int64_t)(w.b[lost].end - w.b[lost].start) +
                                  (v == 5 ? shift : 0))
                     : (uint64_t)shift;
    db = fx_open(q, 0);
    st = stats_of(db);
    expect_state(db, m, univ(&w), what);
    if (st.damaged_regions < 1 ||
        st.first_damage_offset != (lost < 14 ? w.b[lost].start : w.b[6].end) ||
        st.damaged_bytes != span ||
        st.data_end != (uint64_t)((int64_t)w.b[13].end + shift) ||
        st.dropped_tail_bytes != 0 || st.recovered_batches != 14 - (lost < 14))
      fail_msg("%s: %llu damaged regions from %llu, %llu bytes; data end "
               "%llu, tail %llu, %llu batches",
               what, (ull)st.damaged_regions, (ull)st.first_damage_offset,
               (ull)st.damaged_bytes, (ull)st.data_end,
               (ull)st.dropped_tail_bytes, (ull)st.recovered_batches);
    assert_int_equal(verify_spans(db, &sp, &nd), MAPKV_ECORRUPT);
    assert_true(nd >= 1);
    assert_int_equal(sp.off[0], st.first_damage_offset);
    /* the writer's clean close: the next (clean) open agrees */
    put_extra(db, &w, m, 2, 77 + (uint64_t)v, 4);
    fx_close(db);
    db = fx_open(q, 0);
    expect_state(db, m, univ(&w), what);
    fx_close(db);
    fx_free(m);
  }
  fx_free(b);
  fx_free(img);
  wl_free(&w);
}

/* ---- the header page ----------------------------------------------------- */

static void test_header_copy_damage(void **state) {
  const char *p = fx_path("rec-hdr"), *q = fx_path("rec-hdr-b");
  const uint32_t fields[] = {0,  7,  8,  12, 16, 20, 24,  31,  32,
                             40, 48, 56, 64, 72, 80, 119, 120, 127};
  uint8_t *clean, *crash, *b;
  size_t clen, xlen;
  mapkv_t *db;
  kst *m;
  wl_t w;
  gen_t g = {5, 100, 0, 0, 0};
  rng_t r = {33};
  (void)state;

  wl_init(&w, 20);
  wl_gen(&w, &r, 30, &g);
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, &w, 0, 30);
  crash = fx_slurp(p, &xlen);
  fx_close(db);
  clean = fx_slurp(p, &clen);
  m = model_of(&w, 30, NULL);
  b = fx_malloc(clen > xlen ? clen : xlen);
  assert_non_null(b);

  for (int which = 0; which < 2; which++) {
    const uint8_t *src = which ? crash : clean;
    size_t len = which ? xlen : clen;
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
      for (unsigned bit = 0; bit < 8; bit += 5) {
        char where[96];
        mapkv_t *ro;
        int rc;
        snprintf(where, sizeof where, "%s store, header byte %u bit %u",
                 which ? "crashed" : "clean", (unsigned)fields[f], bit);

        /* Copy A damaged: copy B serves. */
        memcpy(b, src, len);
        b[fields[f]] ^= (uint8_t)(1u << bit);
        put_file(q, b, len);
        db = fx_open(q, MAPKV_RDONLY);
        assert_int_equal(stats_of(db).clean_open, which ? 0 : 1);
        expect_state(db, m, univ(&w), where);
        fx_close(db);
        db = fx_open(q, 0);
        expect_state(db, m, univ(&w), where);
        fx_close(db);

        /* Copy B damaged: copy A serves. */
        memcpy(b, src, len);
        b[MAPKV__HDR_COPY_B + fields[f]] ^= (uint8_t)(1u << bit);
        put_file(q, b, len);
        db = fx_open(q, 0);
        expect_state(db, m, univ(&w), where);
        fx_close(db);

        /* Both damaged: not opened, and not written to. */
        memcpy(b, src, len);
        b[fields[f]] ^= (uint8_t)(1u << bit);
        b[MAPKV__HDR_COPY_B + fields[f]] ^= (uint8_t)(1u << bit);
        put_file(q, b, len);
        ro = NULL;
        rc = open_db(q, 0, &ro);
        if (fields[f] < 8)
          assert_int_equal(rc, MAPKV_ENOTDB);
        else if (fields[f] == 8 && bit != 1)
          assert_int_equal(rc, MAPKV_EVERSION); /* 2 ^ (1 << bit) > 2 */
        else
          assert_int_equal(rc, MAPKV_ECORRUPT);
        assert_null(ro);
        assert_int_equal(open_db(q, MAPKV_RDONLY, &ro), rc);
        {
          size_t l2;
          uint8_t *after = fx_slurp(q, &l2);
          assert_int_equal(l2, len);
          assert_memory_equal(after, b, len);
          fx_free(after);
        }
      }
    }
  }

  /* Bytes of the header page outside both copies are not part of either. */
  memcpy(b, clean, clen);
  b[1000] = 0x5A;
  b[3000] = 0xA5;
  put_file(q, b, clen);
  db = fx_open(q, 0);
  expect_state(db, m, univ(&w), "bytes between the header copies");
  fx_close(db);

  fx_free(b);
  fx_free(m);
  fx_free(clean);
  fx_free(crash);
  wl_free(&w);
}

/* ---- damage after open: no get returns bytes whose checksum fails -------- */

static void test_get_never_returns_damaged_bytes(void **state) {
  const char *p = fx_path("rec-live");
  uint64_t off[MAX_RECS], size[MAX_RECS], nd, fails;
  uint8_t buf[VAL_CAP], orig;
  uint8_t *map;
  const void *view, *kp, *vp;
  size_t vl, kl, nlive = 0, ncur = 0;
  char k[KEY_CAP];
  mapkv_t *db;
  mapkv_cursor_t *cur;
  spans sp;
  kst *m;
  wl_t w;
  int fd;
  (void)state;

  flip_workload(&w);
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, &w, 0, 14);
  m = model_of(&w, 14, NULL);
  for (uint32_t i = 0; i < w.nkeys; i++)
    nlive += m[i].present;

  /* A value byte of batch 7 (key 5), through pwrite on the file. */
  batch_recs(&w.b[7], off, size);
  fd = open(p, O_RDWR);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &orig, 1, (off_t)(off[0] + size[0] - 9)), 1);
  buf[0] = orig ^ 0x40;
  assert_int_equal(pwrite(fd, buf, 1, (off_t)(off[0] + size[0] - 9)), 1);

  memset(buf, 0xAA, 64);
  vl = 1234;
  assert_int_equal(mapkv_get(db, k, key_of(5, k), buf, sizeof buf, &vl),
                   MAPKV_ECORRUPT);
  assert_int_equal(vl, 1234);
  for (int i = 0; i < 64; i++)
    assert_int_equal(buf[i], 0xAA);
  view = NULL;
  assert_int_equal(mapkv_get_view(db, k, key_of(5, k), &view, &vl),
                   MAPKV_ECORRUPT);
  assert_null(view);
  fails = stats_of(db).checksum_failures;
  assert_true(fails >= 2);
  /* the cursor skips it, and returns every other live key */
  assert_int_equal(mapkv_cursor_open(db, NULL, 0, &cur), 0);
  while (mapkv_cursor_next(cur, &kp, &kl, &vp, &vl) == 0) {
    uint32_t i;
    assert_true(parse_key(kp, kl, &i));
    assert_int_not_equal(i, 5);
    ncur++;
  }
  mapkv_cursor_close(cur);
  assert_int_equal(ncur, nlive - 1);
  assert_true(stats_of(db).checksum_failures > fails);
  /* verify names the batch */
  assert_int_equal(verify_spans(db, &sp, &nd), MAPKV_ECORRUPT);
  assert_int_equal(nd, 1);
  assert_int_equal(sp.off[0], w.b[7].start);
  assert_int_equal(sp.len[0], w.b[7].end - w.b[7].start);
  /* undone, the value reads back */
  assert_int_equal(pwrite(fd, &orig, 1, (off_t)(off[0] + size[0] - 9)), 1);
  expect_state(db, m, univ(&w), "after the damage was undone");

  /* The last record's value, through a second shared mapping. */
  batch_recs(&w.b[13], off, size);
  map = mmap(NULL, (size_t)w.b[13].end, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
             0);
  assert_true(map != MAP_FAILED);
  map[off[0] + size[0] - 9] ^= 0x01;
  assert_int_equal(mapkv_get(db, k, key_of(2, k), buf, sizeof buf, &vl),
                   MAPKV_ECORRUPT);
  assert_int_equal(verify_spans(db, &sp, &nd), MAPKV_ECORRUPT);
  assert_int_equal(nd, 1);
  assert_int_equal(sp.off[0], w.b[13].start);
  assert_int_equal(sp.len[0], w.b[13].end - w.b[13].start);
  /* a checksum byte instead */
  map[off[0] + size[0] - 9] ^= 0x01;
  map[off[0] + size[0] - 3] ^= 0x80;
  assert_int_equal(mapkv_get(db, k, key_of(2, k), buf, sizeof buf, &vl),
                   MAPKV_ECORRUPT);
  map[off[0] + size[0] - 3] ^= 0x80;
  expect_state(db, m, univ(&w), "after the second damage was undone");
  assert_int_equal(munmap(map, (size_t)w.b[13].end), 0);
  close(fd);
  fx_close(db);
  fx_free(m);
  wl_free(&w);
}

/* ---- a zeroed page in the middle of the log ------------------------------ */

static void test_zeroed_page_in_the_middle(void **state) {
  const char *p = fx_path("rec-zpage"), *q = fx_path("rec-zpage-b"),
             *q2 = fx_path("rec-zpage-c");
  gen_t g = {4, 70, 0, 0, 0};
  rng_t r = {44};
  uint8_t *img, *b, *lost;
  uint64_t last_page, nd;
  size_t len, pages = 0;
  mapkv_t *db;
  spans sp;
  wl_t w;
  (void)state;

  wl_init(&w, 40);
  wl_gen(&w, &r, 220, &g);
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, &w, 0, w.n);
  img = fx_slurp(p, &len);
  fx_close(db);
  b = fx_malloc(len);
  lost = fx_calloc(w.n, 1);
  assert_non_null(b);
  assert_non_null(lost);
  last_page = w.b[w.n - 1].end / PAGE * PAGE;
  assert_true(last_page >= 5 * PAGE);

  /* every whole page strictly between the first and the last data page */
  for (uint64_t pg = 2 * PAGE; pg + PAGE <= last_page; pg += PAGE) {
    size_t first = w.n, lastb = 0;
    char where[64];
    mapkv_stats st;
    kst *m;
    snprintf(where, sizeof where, "page at %llu zeroed", (ull)pg);
    memset(lost, 0, w.n);
    for (size_t i = 0; i < w.n; i++) {
      if (w.b[i].start < pg + PAGE && w.b[i].end > pg) {
        lost[i] = 1;
        if (first == w.n)
          first = i;
        lastb = i;
      }
    }
    assert_true(first < w.n);
    memcpy(b, img, len);
    memset(b + pg, 0, PAGE);
    put_file(q, b, len);
    m = model_of(&w, w.n, lost);

    db = fx_open(q, 0);
    st = stats_of(db);
    expect_state(db, m, univ(&w), where);
    assert_int_equal(st.damaged_regions, 1);
    assert_int_equal(st.first_damage_offset, w.b[first].start);
    assert_int_equal(st.damaged_bytes, w.b[lastb].end - w.b[first].start);
    assert_int_equal(st.data_end, w.b[w.n - 1].end);
    assert_int_equal(st.recovered_batches, w.n - (lastb - first + 1));
    assert_int_equal(st.dropped_tail_bytes, 0);
    assert_int_equal(verify_spans(db, &sp, &nd), MAPKV_ECORRUPT);
    assert_int_equal(nd, 1);
    assert_int_equal(sp.off[0], w.b[first].start);
    assert_int_equal(sp.len[0], w.b[lastb].end - w.b[first].start);
    /* a commit after it, a crash, and recovery again */
    put_extra(db, &w, m, 0, pg, 33);
    {
      size_t l2;
      uint8_t *img2 = fx_slurp(q, &l2);
      put_file(q2, img2, l2);
      fx_free(img2);
    }
    fx_close(db);
    db = fx_open(q2, 0);
    assert_int_equal(stats_of(db).damaged_regions, 1);
    expect_state(db, m, univ(&w), where);
    fx_close(db);
    fx_free(m);
    pages++;
  }
  assert_true(pages >= 3);
  fx_free(lost);
  fx_free(b);
  fx_free(img);
  wl_free(&w);
}

/* ---- a batch of 100 puts is all there or not at all ---------------------- */

/* Commits a put of key whose record ends the next record on a page
 * boundary. */
static void pad_to_page(mapkv_t *db, wl_t *w, uint32_t key) {
  uint64_t end = data_end_of(db), need = (PAGE - end % PAGE) % PAGE;
  char k[KEY_CAP];
  size_t kl = key_of(key, k);
  batch_t *b;
  if (need == 0)
    return;
  if (need < MAPKV__REC_OVERHEAD + kl)
    need += PAGE;
  b = wl_add(w, 1);
  op_put(w, &b->ops[0], key, (uint32_t)(need - MAPKV__REC_OVERHEAD - kl));
  wl_run(db, w, w->n - 1, w->n);
  assert_int_equal(data_end_of(db) % PAGE, 0);
}

static void test_batch_atomicity(void **state) {
  const char *p = fx_path("rec-atom"), *q = fx_path("rec-atom-b");
  gen_t g = {5, 120, 0, 0, 0};
  rng_t r = {55};
  uint8_t *imgs[2], *b;
  size_t lens[2], bi, nimg[2], trials = 0, none = 0, all = 0;
  uint64_t total = 0;
  mapkv_t *db;
  batch_t *B;
  wl_t w;
  (void)state;

  /* earlier batches over keys 0..59 */
  wl_init(&w, 60);
  wl_gen(&w, &r, 12, &g);
  w.nkeys = 150;
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, &w, 0, w.n);
  pad_to_page(db, &w, 149);

  /* the batch: 100 puts of keys 40..139, sized to end on a page boundary */
  bi = w.n;
  B = wl_add(&w, 100);
  for (uint32_t i = 0; i < 100; i++) {
    op_put(&w, &B->ops[i], 40 + i, 40 + rng_below(&r, 160));
    if (i < 99)
      total += op_bytes(&B->ops[i]);
  }
  total += COMMIT_B + op_bytes(&B->ops[99]) - B->ops[99].vlen;
  B->ops[99].vlen = (uint32_t)((PAGE - total % PAGE) % PAGE);
  wl_run(db, &w, bi, bi + 1);
  B = &w.b[bi];
  assert_int_equal(B->start % PAGE, 0);
  assert_int_equal(B->end % PAGE, 0);
  assert_true(B->end - B->start >= 3 * PAGE);
  imgs[0] = fx_slurp(p, &lens[0]);
  nimg[0] = bi + 1;
  /* later batches over keys 0..149, some overwriting the batch's keys */
  {
    size_t from = w.n;
    wl_gen(&w, &r, 12, &g);
    wl_run(db, &w, from, w.n);
  }
  imgs[1] = fx_slurp(p, &lens[1]);
  nimg[1] = w.n;
  B = &w.b[bi];
  fx_close(db);
  b = fx_malloc(lens[0] > lens[1] ? lens[0] : lens[1]);
  assert_non_null(b);

  for (int im = 0; im < 2; im++) {
    int is_last = im == 0;
    kst *with = model_of(&w, nimg[im], NULL);
    kst *without = model_without(&w, nimg[im], bi);
    for (int t = 0; t < 40; t++) {
      uint64_t pages = (B->end - B->start) / PAGE, cut = 0;
      assert_true(pages < 64);
      int kind = t % 4, damaged = 1;
      size_t len = lens[im];
      char where[96];
      mapkv_stats st;
      memcpy(b, imgs[im], len);
      if (kind == 0 || (kind == 2 && !is_last)) {
        /* a random non-empty subset of the batch's pages never written */
        uint64_t mask;
        do
          mask = rng_next(&r) & ((1ull << pages) - 1);
        while (mask == 0);
        for (uint64_t pg = 0; pg < pages; pg++)
          if (mask >> pg & 1)
            memset(b + B->start + pg * PAGE, 0, PAGE);
        snprintf(where, sizeof where, "trial %d: pages %#llx zeroed", t,
                 (ull)mask);
      } else if (kind == 1) {
        /* some bytes of the batch damaged */
        uint32_t nflip = 1 + rng_below(&r, 4);
        for (uint32_t i = 0; i < nflip; i++) {
          uint32_t at = rng_below(&r, (uint32_t)(B->end - B->start));
          b[B->start + at] ^= (uint8_t)(1 + rng_below(&r, 255));
        }
        snprintf(where, sizeof where, "trial %d: %u bytes damaged", t,
                 (unsigned)nflip);
      } else if (kind == 2) {
        /* the crash came while the batch was written */
        cut = B->start + 1 + rng_below(&r, (uint32_t)(B->end - B->start - 1));
        if (t % 8 == 2)
          len = cut;
        else
          memset(b + cut, 0, len - cut);
        snprintf(where, sizeof where, "trial %d: cut at %llu", t, (ull)cut);
      } else {
        damaged = 0;
        snprintf(where, sizeof where, "trial %d: intact", t);
      }
      put_file(q, b, len);
      db = fx_open(q, 0);
      st = stats_of(db);
      expect_state(db, damaged ? without : with, univ(&w), where);
      if (is_last) {
        /* all 100 or none: count the batch's values visible */
        size_t vis = 0;
        for (size_t i = 0; i < 100; i++) {
          static uint8_t got[VAL_CAP], want[VAL_CAP];
          char k[KEY_CAP];
          size_t vl;
          const op_t *o = &B->ops[i];
          if (mapkv_get(db, k, key_of(o->key, k), got, sizeof got, &vl) == 0) {
            val_of(o->vseed, o->vlen, want);
            vis += vl == o->vlen && memcmp(got, want, vl) == 0;
          }
        }
        assert_true(vis == 0 || vis == 100);
        assert_int_equal(vis, damaged ? 0 : 100);
        none += vis == 0;
        all += vis == 100;
        assert_int_equal(st.data_end, damaged ? B->start : B->end);
        /* the tail: whatever is not zero after the batch's start */
        assert_int_equal(st.dropped_tail_bytes,
                         damaged ? nonzero_end(b, B->start, len) - B->start
                                 : 0);
      } else if (damaged) {
        assert_int_equal(st.damaged_regions, 1);
        assert_int_equal(st.first_damage_offset, B->start);
        assert_int_equal(st.damaged_bytes, B->end - B->start);
        assert_int_equal(st.data_end, w.b[w.n - 1].end);
      } else {
        assert_int_equal(st.damaged_regions, 0);
      }
      fx_close(db);
      trials++;
    }
    fx_free(with);
    fx_free(without);
  }
  assert_int_equal(trials, 80);
  assert_true(none > 0 && all > 0);
  fx_free(b);
  fx_free(imgs[0]);
  fx_free(imgs[1]);
  wl_free(&w);
}

/* ---- power cuts simulated from the flush hook ---------------------------- */

typedef struct pc_ctx {
  int fd; /* read descriptor of the live store */
  const char *crash;
  uint8_t *dur, *cur, *img; /* durable image, current file, crash image */
  size_t cap, size;
  size_t page;
  rng_t rng;
  const wl_t *w;
  kst *acked; /* the state every acknowledged commit makes */
  kst *next;  /* the same plus the commit in flight */
  int inflight;
  int enabled;
  unsigned flushes, cuts, torn, saw_next, saw_acked;
  int failed;
  char why[640];
  /* checks the crash image that pc_image() wrote (pc_check by default) */
  void (*check)(struct pc_ctx *c, int mode);
} pc_ctx;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
pc_fail(pc_ctx *c, const char *fmt, ...) {
  va_list ap;
  if (c->failed)
    return;
  c->failed = 1;
  va_start(ap, fmt);
  vsnprintf(c->why, sizeof c->why, fmt, ap);
  va_end(ap);
}

static void pc_grow(pc_ctx *c, size_t size) {
  if (size > c->cap) {
    size_t cap = size * 2;
    uint8_t *d = fx_realloc(c->dur, cap), *u, *i;
    if (d != NULL)
      c->dur = d;
    u = fx_realloc(c->cur, cap);
    if (u != NULL)
      c->cur = u;
    i = fx_realloc(c->img, cap);
    if (i != NULL)
      c->img = i;
    if (d == NULL || u == NULL || i == NULL) {
      pc_fail(c, "out of memory");
      return;
    }
    c->cap = cap;
  }
  if (size > c->size)
    memset(c->dur + c->size, 0, size - c->size); /* never flushed: zeros */
  c->size = size;
}

/* Writes to c->crash the file a power cut now leaves: mode 0, the durable
 * image plus a random subset of the pages written since; mode 1, the same
 * with one page torn; mode 2, exactly the durable image (right after a
 * flush). 0, or -1 when c failed. */
static int pc_image(pc_ctx *c, int mode) {
  size_t size = c->size, ndiff = 0, *diff;

  memcpy(c->img, c->dur, size);
  diff = fx_malloc((size / c->page + 1) * sizeof *diff);
  if (diff == NULL) {
    pc_fail(c, "out of memory");
    return -1;
  }
  if (mode < 2) {
    for (size_t pg = 0; pg < size; pg += c->page) {
      size_t l = size - pg < c->page ? size - pg : c->page;
      if (memcmp(c->cur + pg, c->dur + pg, l) != 0)
        diff[ndiff++] = pg;
    }
    for (size_t i = 0; i < ndiff; i++) {
      size_t l = size - diff[i] < c->page ? size - diff[i] : c->page;
      if (rng_next(&c->rng) & 1)
        memcpy(c->img + diff[i], c->cur + diff[i], l);
    }
    if (mode == 1 && ndiff > 0) {
      size_t pg = diff[rng_below(&c->rng, (uint32_t)ndiff)];
      size_t l = size - pg < c->page ? size - pg : c->page;
      size_t split =
          l < 16 ? 0 : 8 * (1 + rng_below(&c->rng, (uint32_t)(l / 8 - 1)));
      if (rng_next(&c->rng) & 1) { /* new start, old end */
        memcpy(c->img + pg, c->cur + pg, split);
        memcpy(c->img + pg + split, c->dur + pg + split, l - split);
      } else {
        memcpy(c->img + pg, c->dur + pg, split);
        memcpy(c->img + pg + split, c->cur + pg + split, l - split);
      }
      c->torn++;
    }
  }
  fx_free(diff);
  if (write_path(c->crash, c->img, size) != 0) {
    pc_fail(c, "cut %u: writing the crash image failed", c->cuts);
    return -1;
  }
  return 0;
}

/* The crash image holds every acknowledged commit, and the one in flight
 * entirely or not at all. */
static void pc_check(pc_ctx *c, int mode) {
  uint32_t n = univ(c->w);
  char why[512];
  const kst *match = NULL;
  mapkv_stats st;
  mapkv_t *db = NULL;
  int rc;

  rc = open_db(c->crash, 0, &db);
  if (rc != 0) {
    pc_fail(c, "cut %u (mode %d, flush %u): open returned %d (%s)", c->cuts,
            mode, c->flushes, rc, mapkv_errmsg());
    return;
  }
  /* Every acknowledged commit is there, and the one in flight entirely or
   * not at all; right after its flush, it is there. */
  if (!(mode == 2 && c->inflight >= 0) &&
      state_diff(db, c->acked, n, why, sizeof why) == 0) {
    match = c->acked;
    c->saw_acked++;
  } else if (c->inflight >= 0 &&
             state_diff(db, c->next, n, why, sizeof why) == 0) {
    match = c->next;
    c->saw_next++;
  } else {
    pc_fail(c, "cut %u (mode %d, flush %u, batch in flight %d): %s", c->cuts,
            mode, c->flushes, c->inflight, why);
    mapkv_close(db);
    return;
  }
  mapkv_stat(db, &st);
  if (st.damaged_regions != 0) {
    pc_fail(c, "cut %u: %llu damaged regions reported", c->cuts,
            (ull)st.damaged_regions);
    mapkv_close(db);
    return;
  }
  if (c->cuts % 4 == 0) {
    /* the recovered store takes a commit and survives a clean reopen */
    kst *m2 = fx_malloc(n * sizeof *m2);
    static uint8_t v[64];
    char k[KEY_CAP];
    size_t kl = key_of(c->w->nkeys, k);
    if (m2 == NULL) {
      pc_fail(c, "out of memory");
      mapkv_close(db);
      return;
    }
    memcpy(m2, match, n * sizeof *m2);
    val_of(c->cuts, 20, v);
    m2[c->w->nkeys].present = 1;
    m2[c->w->nkeys].vlen = 20;
    m2[c->w->nkeys].vseed = c->cuts;
    rc = mapkv_put(db, k, kl, v, 20);
    if (rc == 0)
      rc = mapkv_close(db);
    else
      mapkv_close(db);
    db = NULL;
    if (rc == 0)
      rc = open_db(c->crash, 0, &db);
    if (rc != 0)
      pc_fail(c, "cut %u: commit and reopen after recovery: %d", c->cuts, rc);
    else if (state_diff(db, m2, n, why, sizeof why) != 0)
      pc_fail(c, "cut %u: after a commit and a reopen: %s", c->cuts, why);
    fx_free(m2);
  }
  if (db != NULL)
    mapkv_close(db);
}

static void pc_cut(pc_ctx *c, int mode) {
  if (pc_image(c, mode) != 0)
    return;
  (c->check != NULL ? c->check : pc_check)(c, mode);
  unlink(c->crash);
  c->cuts++;
}

static void pc_hook(void *ctx, int64_t off, int64_t len) {
  pc_ctx *c = ctx;
  struct stat sb;
  size_t lo, hi;
  if (c->failed || fstat(c->fd, &sb) != 0) {
    pc_fail(c, "fstat of the store failed");
    return;
  }
  pc_grow(c, (size_t)sb.st_size);
  if (c->failed)
    return;
  if (pread(c->fd, c->cur, c->size, 0) != (ssize_t)c->size) {
    pc_fail(c, "reading the store failed");
    return;
  }
  c->flushes++;
  if (c->enabled) {
    pc_cut(c, 0);
    pc_cut(c, 1);
  }
  /* msync wrote the pages of the range: they are durable now */
  lo = (size_t)off / c->page * c->page;
  hi = ((size_t)(off + len) + c->page - 1) / c->page * c->page;
  if (hi > c->size)
    hi = c->size;
  if (lo < hi)
    memcpy(c->dur + lo, c->cur + lo, hi - lo);
  if (c->enabled && c->flushes % 3 == 0)
    pc_cut(c, 2);
}

static void pc_session(pc_ctx *c, const char *path, wl_t *w, size_t from,
                       size_t to) {
  mapkv_options o = opts_of(0);
  size_t len;
  uint8_t *img;
  mapkv_t *db = NULL;
  int rc;

  /* what a clean close left is durable */
  img = fx_slurp(path, &len);
  pc_grow(c, len);
  memcpy(c->dur, img, len);
  fx_free(img);

  o.flush_hook = pc_hook;
  o.flush_hook_ctx = c;
  c->enabled = 1;
  c->inflight = -1;
  rc = mapkv_open(path, &o, &db);
  if (rc != 0)
    fail_msg("open with the flush hook: %d %s", rc, mapkv_errmsg());
  for (size_t i = from; i < to && !c->failed; i++) {
    memcpy(c->next, c->acked, univ(w) * sizeof *c->next);
    model_apply(c->next, &w->b[i]);
    c->inflight = (int)i;
    w->b[i].start = data_end_of(db);
    rc = commit_batch(db, &w->b[i]);
    if (rc != 0) {
      mapkv_close(db);
      fail_msg("commit of batch %zu: %d %s", i, rc, mapkv_errmsg());
    }
    /* acknowledged */
    c->inflight = -1;
    memcpy(c->acked, c->next, univ(w) * sizeof *c->acked);
  }
  assert_int_equal(mapkv_close(db), 0);
  c->enabled = 0;
}

static void test_power_cut_from_flush_hook(void **state) {
  const char *p = fx_path("rec-power"), *q = fx_path("rec-power-cut");
  gen_t g = {8, 160, 8, 1500, 7000};
  rng_t r = {66};
  mapkv_t *db;
  pc_ctx c;
  wl_t w;
  (void)state;

  wl_init(&w, 64);
  wl_gen(&w, &r, 270, &g);
  db = fx_open(p, MAPKV_CREATE);
  fx_close(db);

  memset(&c, 0, sizeof c);
  c.crash = q;
  c.page = (size_t)sysconf(_SC_PAGESIZE);
  c.rng.s = 77;
  c.w = &w;
  c.acked = fx_calloc(univ(&w), sizeof *c.acked);
  c.next = fx_calloc(univ(&w), sizeof *c.next);
  assert_non_null(c.acked);
  assert_non_null(c.next);
  c.fd = open(p, O_RDONLY);
  assert_true(c.fd >= 0);

  /* two sessions: the second one opens what the first closed */
  pc_session(&c, p, &w, 0, 150);
  pc_session(&c, p, &w, 150, w.n);
  close(c.fd);
  if (c.failed)
    fail_msg("%s", c.why);
  print_message("power cuts: %u simulated (%u torn pages) over %u flushes; "
                "%u kept the commit in flight, %u did not\n",
                c.cuts, c.torn, c.flushes, c.saw_next, c.saw_acked);
  assert_true(c.cuts >= 500);
  assert_true(c.torn >= 100);
  assert_true(c.saw_next > 0 && c.saw_acked > 0);

  db = fx_open(p, MAPKV_RDONLY);
  expect_state(db, c.acked, univ(&w), "the live store");
  fx_close(db);
  fx_free(c.acked);
  fx_free(c.next);
  fx_free(c.dur);
  fx_free(c.cur);
  fx_free(c.img);
  wl_free(&w);
}

/* ---- power cuts under group commit -------------------------------------- */

#define GC_THREADS 4
#define GC_KEYS    48 /* keys of each thread, stored from t * GC_KEYS */

/* A writer thread: its own workload over its own keys, and what its
 * acknowledged commits and its commit in flight make of them. */
typedef struct gc_writer {
  struct gc_ctx *g;
  mapkv_t *db;
  wl_t w;
  uint32_t base;
  kst acked[GC_KEYS], next[GC_KEYS];
  int inflight; /* batch in flight, -1 none */
  int rc;
  char msg[256];
  uint8_t v[VAL_CAP];
} gc_writer;

typedef struct gc_ctx {
  pc_ctx pc;          /* first: the flush hook gets a gc_ctx as a pc_ctx */
  pthread_mutex_t mu; /* the writers' models; held by the hook */
  gc_writer th[GC_THREADS];
  unsigned groups; /* cuts that kept the commits of two writers or more */
  unsigned kept_inflight, lost_inflight;
} gc_ctx;

/* 0 if keys [base, base + GC_KEYS) of db hold exactly m. */
static int gc_range_diff(mapkv_t *db, const kst *m, uint32_t base) {
  static uint8_t got[VAL_CAP], want[VAL_CAP];
  char k[KEY_CAP];
  for (uint32_t i = 0; i < GC_KEYS; i++) {
    size_t kl = key_of(base + i, k), vl = 0;
    int rc = mapkv_get(db, k, kl, got, sizeof got, &vl);
    if (!m[i].present) {
      if (rc != MAPKV_NOTFOUND)
        return 1;
      continue;
    }
    val_of(m[i].vseed, m[i].vlen, want);
    if (rc != 0 || vl != m[i].vlen || memcmp(got, want, vl) != 0)
      return 1;
  }
  return 0;
}

/* Each writer's keys show its acknowledged commits and its commit in
 * flight entirely or not at all; then the whole store (cursor, stat) is
 * checked against the states found. */
static void gc_check(pc_ctx *c, int mode) {
  gc_ctx *g = (gc_ctx *)c;
  kst whole[GC_THREADS * GC_KEYS + NEXTRA];
  char why[512];
  unsigned kept = 0;
  mapkv_stats st;
  mapkv_t *db = NULL;
  int rc;
  (void)mode;

  memset(whole, 0, sizeof whole);
  rc = open_db(c->crash, 0, &db);
  if (rc != 0) {
    pc_fail(c, "cut %u (flush %u): open returned %d (%s)", c->cuts, c->flushes,
            rc, mapkv_errmsg());
    return;
  }
  for (int t = 0; t < GC_THREADS; t++) {
    const gc_writer *w = &g->th[t];
    const kst *m = w->acked;
    if (gc_range_diff(db, w->acked, w->base) != 0) {
      if (w->inflight < 0 || gc_range_diff(db, w->next, w->base) != 0) {
        pc_fail(c,
                "cut %u (mode %d, flush %u): writer %d's keys are neither "
                "its acknowledged state nor that plus batch %d",
                c->cuts, mode, c->flushes, t, w->inflight);
        mapkv_close(db);
        return;
      }
      m = w->next;
      kept++;
      g->kept_inflight++;
    } else if (w->inflight >= 0) {
      g->lost_inflight++;
    }
    memcpy(whole + w->base, m, GC_KEYS * sizeof *m);
  }
  if (kept >= 2)
    g->groups++;
  if (state_diff(db, whole, GC_THREADS * GC_KEYS + NEXTRA, why, sizeof why) !=
      0) {
    pc_fail(c, "cut %u (mode %d, flush %u): %s", c->cuts, mode, c->flushes,
            why);
  } else if (mapkv_stat(db, &st) != 0 || st.damaged_regions != 0) {
    pc_fail(c, "cut %u: damage reported after a power cut", c->cuts);
  }
  mapkv_close(db);
}

/* The models cannot change while the hook cuts: a writer marks its commit
 * in flight (under mu) before it calls the store and acknowledged after. */
static void gc_hook(void *ctx, int64_t off, int64_t len) {
  gc_ctx *g = ctx;
  pthread_mutex_lock(&g->mu);
  pc_hook(&g->pc, off, len);
  pthread_mutex_unlock(&g->mu);
}

static void *gc_run(void *arg) {
  gc_writer *w = arg;
  for (size_t i = 0; i < w->w.n; i++) {
    int rc;
    pthread_mutex_lock(&w->g->mu);
    if (w->g->pc.failed) {
      pthread_mutex_unlock(&w->g->mu);
      break;
    }
    memcpy(w->next, w->acked, sizeof w->next);
    model_apply(w->next, &w->w.b[i]);
    w->inflight = (int)i;
    pthread_mutex_unlock(&w->g->mu);
    rc = commit_batch_at(w->db, &w->w.b[i], w->base, w->v);
    if (rc != 0) {
      w->rc = rc;
      snprintf(w->msg, sizeof w->msg, "batch %zu: %d %s", i, rc,
               mapkv_errmsg());
      break;
    }
    pthread_mutex_lock(&w->g->mu);
    memcpy(w->acked, w->next, sizeof w->acked);
    w->inflight = -1;
    pthread_mutex_unlock(&w->g->mu);
  }
  return NULL;
}

/* Several threads commit durably at once, so that commits share flushes;
 * a power cut is simulated at every flush: every commit whose call
 * returned survives, and each one in flight is all or nothing. */
static void test_power_cut_under_group_commit(void **state) {
  const char *p = fx_path("rec-gpower"), *q = fx_path("rec-gpower-cut");
  gen_t gen = {6, 120, 5, 1500, 5000};
  pthread_t tid[GC_THREADS];
  mapkv_options o = opts_of(0);
  gc_ctx *g = fx_calloc(1, sizeof *g);
  mapkv_t *db;
  (void)state;

  assert_non_null(g);
  db = fx_open(p, MAPKV_CREATE);
  fx_close(db);
  pthread_mutex_init(&g->mu, NULL);
  g->pc.crash = q;
  g->pc.page = (size_t)sysconf(_SC_PAGESIZE);
  g->pc.rng.s = 91;
  g->pc.check = gc_check;
  g->pc.fd = open(p, O_RDONLY);
  assert_true(g->pc.fd >= 0);
  {
    size_t len;
    uint8_t *img = fx_slurp(p, &len); /* a clean close: durable */
    pc_grow(&g->pc, len);
    memcpy(g->pc.dur, img, len);
    fx_free(img);
  }
  for (int t = 0; t < GC_THREADS; t++) {
    rng_t r = {(uint64_t)(1000 + t)};
    gc_writer *w = &g->th[t];
    w->g = g;
    w->base = (uint32_t)t * GC_KEYS;
    w->inflight = -1;
    wl_init(&w->w, GC_KEYS);
    w->w.vctr = (uint64_t)t << 32; /* values differ between writers */
    wl_gen(&w->w, &r, 90, &gen);
  }
  o.flush_hook = gc_hook;
  o.flush_hook_ctx = g;
  assert_int_equal(mapkv_open(p, &o, &db), 0);
  g->pc.enabled = 1;
  for (int t = 0; t < GC_THREADS; t++) {
    g->th[t].db = db;
    assert_int_equal(pthread_create(&tid[t], NULL, gc_run, &g->th[t]), 0);
  }
  for (int t = 0; t < GC_THREADS; t++)
    pthread_join(tid[t], NULL);
  g->pc.enabled = 0;
  assert_int_equal(mapkv_close(db), 0);
  close(g->pc.fd);
  if (g->pc.failed)
    fail_msg("%s", g->pc.why);
  for (int t = 0; t < GC_THREADS; t++)
    if (g->th[t].rc != 0)
      fail_msg("writer %d: %s", t, g->th[t].msg);
  print_message("group commit: %u power cuts over %u flushes; %u kept the "
                "commits of several writers; in flight %u kept, %u lost\n",
                g->pc.cuts, g->pc.flushes, g->groups, g->kept_inflight,
                g->lost_inflight);
  /* fewer flushes than commits: commits shared them */
  assert_true(g->pc.flushes < GC_THREADS * 90);
  assert_true(g->groups > 0);
  assert_true(g->kept_inflight > 0 && g->lost_inflight > 0);

  db = fx_open(p, MAPKV_RDONLY);
  for (int t = 0; t < GC_THREADS; t++)
    if (gc_range_diff(db, g->th[t].acked, g->th[t].base) != 0)
      fail_msg("the live store: writer %d's keys differ", t);
  fx_close(db);
  for (int t = 0; t < GC_THREADS; t++)
    wl_free(&g->th[t].w);
  pthread_mutex_destroy(&g->mu);
  fx_free(g->pc.dur);
  fx_free(g->pc.cur);
  fx_free(g->pc.img);
}

/* 1 if the file at path holds exactly b[0..len). */
static int files_equal_buf(const char *path, const uint8_t *b, size_t len) {
  size_t alen;
  uint8_t *after = fx_slurp(path, &alen);
  int same = alen == len && memcmp(after, b, len) == 0;
  fx_free(after);
  return same;
}

/* ---- a cleanly closed store cut short ----------------------------------- */

/* A cleanly closed store truncated at every record boundary (and inside
 * records): every open but a salvage refuses with MAPKV_ETRUNCATED and
 * changes nothing; a salvage open shows exactly the batches wholly before
 * the cut, verify reports the truncation, and mapkv_recover() salvages
 * exactly those. */
static void test_truncated_clean_store(void **state) {
  const char *p = fx_path("rec-trunc"), *q = fx_path("rec-trunc-cut");
  gen_t g = {4, 60, 0, 0, 0};
  rng_t r = {123};
  size_t len, cuts = 0;
  uint8_t *img;
  mapkv_t *db;
  wl_t w;
  (void)state;

  wl_init(&w, 24);
  wl_gen(&w, &r, 30, &g);
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, &w, 0, w.n);
  fx_close(db);
  img = fx_slurp(p, &len);
  for (size_t i = 0; i < w.n; i++) {
    uint64_t off[MAX_RECS], size[MAX_RECS];
    size_t nrec = batch_recs(&w.b[i], off, size);
    for (size_t j = 0; j < nrec; j++) {
      uint64_t pts[2] = {off[j], off[j] + size[j] / 2};
      for (int x = 0; x < 2; x++) {
        uint64_t T = pts[x];
        size_t k = 0;
        char where[96];
        mapkv_t *none = NULL;
        mapkv_recover_info info;
        kst *m;
        if (T <= MAPKV__HDR_PAGE)
          continue;
        snprintf(where, sizeof where, "clean store cut at %llu", (ull)T);
        while (k < w.n && w.b[k].end <= T)
          k++;
        put_file(q, img, T);
        assert_int_equal(open_db(q, 0, &none), MAPKV_ETRUNCATED);
        assert_non_null(strstr(mapkv_errmsg(), "truncated"));
        assert_int_equal(open_db(q, MAPKV_RDONLY, &none), MAPKV_ETRUNCATED);
        assert_null(none);
        if (!files_equal_buf(q, img, T))
          fail_msg("%s: the file was changed", where);
        /* What was cut off cannot be seen; what the cut batch wrote (part
         * of it may be left) answers MAPKV_ECORRUPT. */
        m = model_of(&w, k, NULL);
        for (size_t o = 0; k < w.n && o < w.b[k].n; o++)
          m[w.b[k].ops[o].key].damaged = 1;
        db = fx_open(q, MAPKV_RDONLY | MAPKV_VERIFY);
        assert_true(stats_of(db).truncated_bytes == w.b[w.n - 1].end - T);
        expect_state_ex(db, m, univ(&w), 0, where);
        assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), MAPKV_ECORRUPT);
        fx_close(db);
        assert_int_equal(mapkv_recover(q, NULL, 0, 0, &info), 0);
        assert_int_equal(info.rewritten, 1);
        unlink(info.backup);
        /* Salvage leaves the damaged keys behind; those whose records of
         * the cut batch were all cut off keep their older values. */
        for (uint32_t key = 0; key < univ(&w); key++)
          if (m[key].damaged) {
            m[key].damaged = 0;
            m[key].maybe_missing = 1;
          }
        db = fx_open(q, 0);
        expect_state(db, m, univ(&w), where);
        fx_close(db);
        fx_free(m);
        cuts++;
      }
    }
  }
  assert_true(cuts > 50);
  fx_free(img);
  wl_free(&w);
}

/* A tail of large records, several of them missing pages that never
 * reached the disk (zero sectors): an interrupted write, dropped. The same
 * records with those pages holding other bytes instead: not a torn write,
 * refused with nothing changed. */
static void test_torn_tail_of_large_records(void **state) {
  const char *p = fx_path("rec-torn"), *q = fx_path("rec-torn-c");
  uint8_t *img, *b;
  size_t len, base_end;
  static uint8_t v[20000];
  mapkv_t *db, *none = NULL;
  mapkv_batch_t *bt;
  kst *m;
  wl_t w;
  (void)state;

  wl_init(&w, 8);
  wl_spec(&w, "p0 p1");
  wl_spec(&w, "p2");
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, &w, 0, w.n);
  base_end = data_end_of(db);
  /* An uncommitted batch of six 20000-byte values after it (no COMMIT). */
  assert_int_equal(mapkv_batch_begin(db, &bt), 0);
  memset(v, 0x5A, sizeof v);
  for (int i = 0; i < 6; i++) {
    char k[8];
    snprintf(k, sizeof k, "big%d", i);
    assert_int_equal(mapkv_batch_put(bt, k, strlen(k), v, sizeof v), 0);
  }
  assert_int_equal(mapkv_batch_commit(bt), 0);
  img = fx_slurp(p, &len);
  fx_close(db);
  m = model_of(&w, w.n, NULL);
  b = fx_malloc(len);
  assert_non_null(b);

  /* The batch's COMMIT gone and a page of each of its records never
   * written: the records fail their checksums, torn. */
  memcpy(b, img, len);
  {
    uint64_t rec = base_end;
    for (int i = 0; i < 6; i++) {
      uint64_t size = MAPKV__REC_OVERHEAD + 4 + sizeof v;
      uint64_t page = (rec + 8192) / PAGE * PAGE;
      memset(b + page, 0, PAGE);
      rec += size;
    }
    memset(b + rec, 0, MAPKV__REC_OVERHEAD + 8); /* the COMMIT */
  }
  put_file(q, b, len);
  db = fx_open(q, 0);
  assert_int_equal(stats_of(db).data_end, base_end);
  assert_true(stats_of(db).dropped_tail_bytes > 0);
  expect_state(db, m, univ(&w), "a tail of torn large records");
  fx_close(db);
  assert_true(zero_on_disk(q, base_end, len));

  /* The same pages holding other bytes: not torn. */
  memcpy(b, img, len);
  {
    uint64_t rec = base_end;
    for (int i = 0; i < 6; i++) {
      uint64_t size = MAPKV__REC_OVERHEAD + 4 + sizeof v;
      uint64_t page = (rec + 8192) / PAGE * PAGE;
      memset(b + page, 0x33, PAGE);
      rec += size;
    }
    memset(b + rec, 0, MAPKV__REC_OVERHEAD + 8);
  }
  put_file(q, b, len);
  assert_int_equal(open_db(q, 0, &none), MAPKV_ECORRUPT);
  assert_null(none);
  assert_true(files_equal_buf(q, b, len));
  fx_free(b);
  fx_free(m);
  fx_free(img);
  wl_free(&w);
}

/* The store's own header from before a compaction put back over the
 * compacted log (a restored backup of the header): another file id, so
 * nothing verifies. Refused by every open, never zeroed; verify says so;
 * with the right header back, every record is there. A copy A from the old
 * generation beside an intact copy B of the right one: B, which matches
 * the log, is used. */
static void test_header_of_another_generation(void **state) {
  const char *p = fx_path("rec-oldhdr");
  uint8_t *old, *cur, *b;
  size_t lo, lc;
  kst *m;
  mapkv_t *db, *none = NULL;
  wl_t w;
  (void)state;

  flip_workload(&w);
  db = fx_open(p, MAPKV_CREATE);
  wl_run(db, &w, 0, w.n);
  fx_close(db);
  old = fx_slurp(p, &lo);
  db = fx_open(p, 0);
  assert_int_equal(mapkv_compact(db), 0);
  fx_close(db);
  cur = fx_slurp(p, &lc);
  b = fx_malloc(lc);
  assert_non_null(b);
  m = model_of(&w, w.n, NULL);

  memcpy(b, cur, lc);
  memcpy(b, old, PAGE);
  put_file(p, b, lc);
  for (int ro = 0; ro < 2; ro++) {
    assert_int_equal(open_db(p, ro ? MAPKV_RDONLY : 0, &none), MAPKV_ECORRUPT);
    assert_non_null(strstr(mapkv_errmsg(), "does not belong"));
    assert_null(none);
  }
  assert_true(files_equal_buf(p, b, lc));
  db = fx_open(p, MAPKV_RDONLY | MAPKV_VERIFY);
  assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), MAPKV_ECORRUPT);
  fx_close(db);
  /* The right header back: nothing was lost. */
  memcpy(b, cur, PAGE);
  put_file(p, b, lc);
  db = fx_open(p, 0);
  expect_state(db, m, univ(&w), "right header back");
  fx_close(db);

  /* Copy A of the old generation, copy B of the current one. */
  memcpy(b, cur, lc);
  memcpy(b, old, MAPKV__HDR_SIZE);
  put_file(p, b, lc);
  db = fx_open(p, 0);
  assert_int_equal(stats_of(db).damaged_regions, 0);
  expect_state(db, m, univ(&w), "copy A of another generation");
  fx_close(db);
  fx_free(m);
  fx_free(b);
  fx_free(cur);
  fx_free(old);
  wl_free(&w);
}

/* ---- garbage and foreign files ------------------------------------------- */

static void make_header(uint8_t *page, uint32_t flags, uint64_t file_id,
                        uint64_t data_end, uint64_t live) {
  mapkv__header h;
  memset(&h, 0, sizeof h);
  h.version = MAPKV_FORMAT_VERSION;
  h.page_size = PAGE;
  h.max_key = MAPKV_DEFAULT_KEY_MAX;
  h.max_value = MAPKV_DEFAULT_VALUE_MAX;
  h.flags = flags;
  h.file_id = file_id;
  h.data_end = data_end;
  h.sealed_end = (flags & MAPKV__HF_CLEAN) ? data_end : MAPKV__HDR_PAGE;
  h.live_records = live;
  h.created = 1700000000;
  memset(page, 0, PAGE);
  mapkv__header_encode(page, &h);
  mapkv__header_encode(page + MAPKV__HDR_COPY_B, &h);
}

/* Opening must fail with `want`, writable and read-only, and leave the file
 * as it was. */
static void expect_rejected(const char *path, const uint8_t *b, size_t len,
                            int want, const char *what) {
  for (int ro = 0; ro < 2; ro++) {
    mapkv_t *db = NULL;
    size_t l2;
    uint8_t *after;
    int rc;
    put_file(path, b, len);
    rc = open_db(path, ro ? MAPKV_RDONLY : 0, &db);
    if (rc != want)
      fail_msg("%s (%zu bytes, %s): open returned %d (%s), expected %d", what,
               len, ro ? "read-only" : "writable", rc, mapkv_strerror(rc),
               want);
    assert_null(db);
    after = fx_slurp(path, &l2);
    assert_int_equal(l2, len);
    if (len > 0)
      assert_memory_equal(after, b, len);
    fx_free(after);
  }
}

static void test_garbage_files(void **state) {
  const char *p = fx_path("rec-garbage"), *q = fx_path("rec-garbage-b");
  const size_t sizes[] = {0,    1,    7,    8,    9,     100,
                          2047, 2048, 2055, 2056, 2057,  4095,
                          4096, 4097, 5000, 8192, 65553, 300000};
  const size_t tails[] = {1, 23, 24, 25, 100, 4095, 4096, 4097, 50000, 200001};
  static const uint8_t magic[8] = {'M', 'A', 'P', 'K', 'V', 0, 0x1a, '\n'};
  size_t big = 300000 + 8;
  uint8_t *b = fx_malloc(big);
  rng_t r = {88};
  (void)state;
  assert_non_null(b);

  /* random bytes, zeros, 0xff: not a store */
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    for (size_t j = 0; j < sizes[i]; j++)
      b[j] = (uint8_t)rng_next(&r);
    expect_rejected(p, b, sizes[i], MAPKV_ENOTDB, "random bytes");
    memset(b, 0, sizes[i]);
    expect_rejected(p, b, sizes[i], MAPKV_ENOTDB, "zero bytes");
    memset(b, 0xff, sizes[i]);
    expect_rejected(p, b, sizes[i], MAPKV_ENOTDB, "0xff bytes");
  }

  /* the magic, but shorter than the header page */
  for (size_t len = 8; len < PAGE; len += 509) {
    for (size_t j = 0; j < len; j++)
      b[j] = (uint8_t)rng_next(&r);
    memcpy(b, magic, 8);
    expect_rejected(p, b, len, MAPKV_ETRUNCATED, "magic, truncated");
  }
  for (size_t j = 0; j < 3000; j++)
    b[j] = (uint8_t)rng_next(&r);
  memcpy(b + MAPKV__HDR_COPY_B, magic, 8);
  expect_rejected(p, b, 3000, MAPKV_ETRUNCATED, "magic of copy B, truncated");

  /* the magic with garbage: both copies damaged */
  for (size_t j = 0; j < 3 * PAGE; j++)
    b[j] = (uint8_t)rng_next(&r);
  memcpy(b, magic, 8);
  mapkv__put_le(b + 8, 1, 4); /* version 1 (a newer one is EVERSION) */
  mapkv__put_le(b + MAPKV__HDR_COPY_B + 8, 1, 4);
  expect_rejected(p, b, 3 * PAGE, MAPKV_ECORRUPT, "magic and garbage");
  memcpy(b + MAPKV__HDR_COPY_B, magic, 8);
  expect_rejected(p, b, 3 * PAGE, MAPKV_ECORRUPT, "two magics and garbage");

  /* a valid header (not clean) and garbage records: nothing is accepted,
   * the garbage is the dropped tail */
  for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
    for (int kind = 0; kind < 3; kind++) {
      size_t len = PAGE + tails[i];
      uint64_t nz;
      char where[96];
      mapkv_stats st;
      mapkv_t *db;
      make_header(b, 0, 0x1122334455667788ull, PAGE, 0);
      for (size_t j = PAGE; j < len; j++)
        b[j] = (uint8_t)rng_next(&r);
      if (kind == 1) {
        /* dense with markers */
        for (size_t j = PAGE; j + 1 < len; j += 7) {
          b[j] = MAPKV__MARK0;
          b[j + 1] = MAPKV__MARK1;
        }
      } else if (kind == 2) {
        /* records that decode, FIRST|LAST, rising sequence numbers, but
         * with checksums that do not match */
        uint64_t seq = 1;
        for (size_t j = PAGE; j + 30 + 9 <= len; j += 30 + 9) {
          mapkv__rec_encode(b + j, MAPKV__T_PUT, MAPKV__F_FIRST | MAPKV__F_LAST,
                            seq++, 0, "abcd", 4, "12345", 5, 0x99);
        }
      }
      b[len - 1] = (uint8_t)(1 + rng_below(&r, 255));
      nz = nonzero_end(b, PAGE, len);
      snprintf(where, sizeof where, "header and %zu garbage bytes (kind %d)",
               tails[i], kind);
      if (kind == 2 && tails[i] >= 2 * 39) {
        /* Sound records under another file id: not a torn write. Refused
         * by every open, the file unchanged; a salvage open shows nothing
         * of them, and verify reports them. */
        for (int ro = 1; ro >= 0; ro--) {
          mapkv_t *none = NULL;
          uint8_t *after;
          size_t alen;
          put_file(p, b, len);
          assert_int_equal(open_db(p, ro ? MAPKV_RDONLY : 0, &none),
                           MAPKV_ECORRUPT);
          assert_null(none);
          after = fx_slurp(p, &alen);
          assert_int_equal(alen, len);
          assert_memory_equal(after, b, len);
          fx_free(after);
        }
        db = fx_open(p, MAPKV_RDONLY | MAPKV_VERIFY);
        assert_int_equal(stats_of(db).records, 0);
        assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), MAPKV_ECORRUPT);
        fx_close(db);
        continue;
      }
      for (int ro = 1; ro >= 0; ro--) {
        put_file(p, b, len);
        db = fx_open(p, ro ? MAPKV_RDONLY : 0);
        st = stats_of(db);
        if (st.records != 0 || st.data_end != PAGE ||
            st.recovered_batches != 0 || st.dropped_tail_bytes != nz - PAGE ||
            st.damaged_regions != 0)
          fail_msg("%s: %llu records, data end %llu, %llu batches, tail %llu "
                   "(expected %llu), %llu damaged regions",
                   where, (ull)st.records, (ull)st.data_end,
                   (ull)st.recovered_batches, (ull)st.dropped_tail_bytes,
                   (ull)(nz - PAGE), (ull)st.damaged_regions);
        assert_int_equal(st.dropped_tail_records, 0);
        assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), 0);
        if (ro) {
          fx_close(db);
          continue;
        }
        /* the writer zeroed the garbage; a commit after it survives */
        assert_true(zero_on_disk(p, PAGE, len));
        assert_int_equal(mapkv_put(db, "k", 1, "v", 1), 0);
        {
          size_t l2;
          uint8_t *img = fx_slurp(p, &l2);
          put_file(q, img, l2);
          fx_free(img);
        }
        fx_close(db);
        db = fx_open(q, 0);
        st = stats_of(db);
        assert_int_equal(st.records, 1);
        assert_int_equal(st.dropped_tail_bytes, 0);
        assert_int_equal(mapkv_exists(db, "k", 1), 1);
        fx_close(db);
      }
    }
  }

  /* a clean header whose figures do not fit the file: a data end before
   * the first record is a damaged header; one beyond the file, truncation
   * (a salvage open works); one inside it, data kept in place and reported
   * as damage (never zeroed); never a crash, never a record */
  {
    const uint64_t ends[] = {0,           100,        PAGE + 1,
                             PAGE + 5000, 1ull << 39, UINT64_MAX};
    const int want[] = {MAPKV_ECORRUPT,   MAPKV_ECORRUPT,  0, 0,
                        MAPKV_ETRUNCATED, MAPKV_ETRUNCATED};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
      size_t len = PAGE + 6000;
      mapkv_t *db;
      make_header(b, MAPKV__HF_CLEAN, 0x1234, ends[i], UINT64_MAX);
      for (size_t j = PAGE; j < len; j++)
        b[j] = (uint8_t)rng_next(&r);
      for (int ro = 1; ro >= 0; ro--) {
        put_file(p, b, len);
        db = NULL;
        assert_int_equal(open_db(p, ro ? MAPKV_RDONLY : 0, &db), want[i]);
        if (db == NULL)
          continue;
        assert_int_equal(stats_of(db).records, 0);
        assert_int_equal(stats_of(db).data_end, ends[i]);
        assert_int_equal(stats_of(db).damaged_regions, 1);
        assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), MAPKV_ECORRUPT);
        fx_close(db);
        assert_true(!ro || files_equal_buf(p, b, len));
      }
      if (want[i] == MAPKV_ETRUNCATED) {
        db = fx_open(p, MAPKV_RDONLY | MAPKV_VERIFY);
        assert_true(stats_of(db).truncated_bytes > 0);
        assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), MAPKV_ECORRUPT);
        fx_close(db);
      }
    }
  }

  /* other formats */
  {
    static const char sqlite[16] = "SQLite format 3";
    memset(b, 0, 2 * PAGE);
    memcpy(b, sqlite, 16);
    b[16] = 0x10; /* page size 4096, big-endian */
    b[17] = 0x00;
    b[18] = 1;
    b[19] = 1;
    b[21] = 64;
    b[22] = 32;
    b[23] = 32;
    expect_rejected(p, b, 2 * PAGE, MAPKV_ENOTDB, "SQLite file");
  }
  {
    /* LMDB: two meta pages, page header then MDB_meta (magic 0xBEEFC0DE) */
    memset(b, 0, 4 * PAGE);
    for (int pg = 0; pg < 2; pg++) {
      uint8_t *m = b + pg * PAGE;
      m[0] = (uint8_t)pg;                    /* mp_pgno */
      m[10] = 0x08;                          /* mp_flags: P_META */
      mapkv__put_le(m + 16, 0xBEEFC0DEu, 4); /* mm_magic */
      mapkv__put_le(m + 20, 1, 4);           /* mm_version */
      mapkv__put_le(m + 32, 1048576, 8);     /* mm_mapsize */
    }
    expect_rejected(p, b, 4 * PAGE, MAPKV_ENOTDB, "LMDB file");
  }
  {
    /* a newer version of this format */
    mapkv__header h;
    memset(&h, 0, sizeof h);
    h.version = MAPKV_FORMAT_VERSION + 1;
    h.page_size = PAGE;
    h.file_id = 5;
    h.data_end = PAGE;
    memset(b, 0, 2 * PAGE);
    mapkv__header_encode(b, &h);
    mapkv__header_encode(b + MAPKV__HDR_COPY_B, &h);
    expect_rejected(p, b, 2 * PAGE, MAPKV_EVERSION, "format version 2");
  }
  fx_free(b);
}

/* ---- records of another store -------------------------------------------- */

/* tests/data/overlong-record.mkv (found by fuzz_open): an intact record at
 * 4096 that is not part of a batch and whose key length makes it span the
 * next records, one of which is an intact, accepted batch. Recovery skips
 * the stray record; cursors and compaction must too, instead of stepping
 * over the live record by the stray one's length. */
static void test_overlong_stray_record(void **state) {
  const char *data = getenv("MAPKV_TEST_DATA");
  const char *path = fx_path("rec-overlong");
  char src[1024];
  size_t len, n = 0, klen, vlen;
  uint8_t *buf;
  const void *k, *v;
  mapkv_cursor_t *c;
  mapkv_stats st;
  mapkv_t *db;
  static const uint8_t live_key[8] = {0xe0, 0xe0, 0xe0, 0xe0, 0xe0, 0, 0, 0};
  (void)state;
  assert_non_null(data);
  snprintf(src, sizeof src, "%s/overlong-record.mkv", data);
  buf = fx_slurp(src, &len);
  assert_int_equal(write_path(path, buf, len), 0);

  /* A store of format version 1: read-only opens read it; a writable
   * open is refused until it is upgraded. */
  db = fx_open(path, MAPKV_RDONLY);
  assert_int_equal(mapkv_stat(db, &st), 0);
  assert_int_equal(st.format_version, 1);
  assert_int_equal(st.records, 6);
  assert_int_equal(mapkv_exists(db, live_key, sizeof live_key), 1);
  assert_int_equal(mapkv_cursor_open(db, NULL, 0, &c), 0);
  while (mapkv_cursor_next(c, &k, &klen, &v, &vlen) == 0)
    n++;
  mapkv_cursor_close(c);
  assert_int_equal(n, 6);
  fx_close(db);
  {
    mapkv_t *none = NULL;
    mapkv_recover_info info;
    assert_int_equal(open_db(path, 0, &none), MAPKV_EVERSION);
    assert_non_null(strstr(mapkv_errmsg(), "upgrade"));
    assert_int_equal(mapkv_recover(path, NULL, 0, 0, &info), 0);
    assert_int_equal(info.rewritten, 1);
    assert_int_equal(info.saved, 6);
    assert_int_equal(info.found.format_version, 1);
    assert_non_null(strstr(info.backup, ".damaged-"));
    assert_true(tu_file_size(info.backup) == (int64_t)len);
    unlink(info.backup);
  }
  /* Upgraded: cursors and compaction keep every live record. */
  db = fx_open(path, 0);
  assert_int_equal(mapkv_stat(db, &st), 0);
  assert_int_equal(st.format_version, MAPKV_FORMAT_VERSION);
  assert_int_equal(st.records, 6);
  assert_int_equal(mapkv_exists(db, live_key, sizeof live_key), 1);
  n = 0;
  assert_int_equal(mapkv_cursor_open(db, NULL, 0, &c), 0);
  while (mapkv_cursor_next(c, &k, &klen, &v, &vlen) == 0)
    n++;
  mapkv_cursor_close(c);
  assert_int_equal(n, 6);
  assert_int_equal(mapkv_compact(db), 0);
  assert_int_equal(mapkv_stat(db, &st), 0);
  assert_int_equal(st.records, 6);
  assert_int_equal(mapkv_exists(db, live_key, sizeof live_key), 1);
  fx_close(db);
  db = fx_open(path, 0);
  assert_int_equal(mapkv_exists(db, live_key, sizeof live_key), 1);
  assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), 0);
  fx_close(db);
}

/* tests/data/damaged-batch-first-record.mkv (found by fuzz_open): a
 * cleanly closed store of format version 1 whose batch has a damaged first
 * record and an intact later one. The batch is lost as a whole: both keys
 * answer MAPKV_ECORRUPT (never a value of the lost batch, never an older
 * one); a cursor skips both; salvage leaves both behind and keeps the
 * rest. */
static void test_damaged_first_record_of_clean_batch(void **state) {
  const char *data = getenv("MAPKV_TEST_DATA");
  const char *path = fx_path("rec-dmgfirst");
  static const uint8_t intact[8] = {0x62, 0x14, 0x02, 0x03,
                                    0x01, 0x00, 0x01, 0x63};
  char src[1024];
  size_t len, n = 0, klen, vlen;
  uint8_t *buf, val[16];
  const void *k, *v;
  mapkv_cursor_t *c;
  mapkv_recover_info info;
  mapkv_stats st;
  mapkv_t *db;
  (void)state;
  assert_non_null(data);
  snprintf(src, sizeof src, "%s/damaged-batch-first-record.mkv", data);
  buf = fx_slurp(src, &len);
  assert_int_equal(write_path(path, buf, len), 0);

  /* Every key the lost batch wrote answers MAPKV_ECORRUPT: three (a put
   * whose record is damaged, a delete and an intact put). */
  db = fx_open(path, MAPKV_RDONLY);
  assert_int_equal(mapkv_stat(db, &st), 0);
  assert_int_equal(st.clean_open, 1);
  assert_int_equal(st.records, 7);
  assert_int_equal(st.damaged_regions, 1);
  assert_int_equal(st.damaged_keys, 3);
  assert_int_equal(mapkv_get(db, intact, sizeof intact, val, sizeof val, &vlen),
                   MAPKV_ECORRUPT);
  assert_int_equal(mapkv_cursor_open(db, NULL, 0, &c), 0);
  while (mapkv_cursor_next(c, &k, &klen, &v, &vlen) == 0)
    n++;
  mapkv_cursor_close(c);
  assert_int_equal(n, 4);
  assert_int_equal(mapkv_stat(db, &st), 0);
  assert_true(st.checksum_failures >= 1);
  assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), MAPKV_ECORRUPT);
  fx_close(db);

  assert_int_equal(mapkv_recover(path, NULL, 0, 0, &info), 0);
  assert_int_equal(info.rewritten, 1);
  assert_int_equal(info.damaged, 1);
  assert_int_equal(info.saved, 4);
  assert_int_equal(info.lost, 3);
  unlink(info.backup);
  db = fx_open(path, 0);
  assert_int_equal(mapkv_stat(db, &st), 0);
  assert_int_equal(st.records, 4);
  assert_int_equal(st.damaged_regions, 0);
  assert_int_equal(mapkv_exists(db, intact, sizeof intact), 0);
  assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), 0);
  assert_int_equal(mapkv_compact(db), 0);
  fx_close(db);
}

static void test_records_from_another_store(void **state) {
  const char *pa = fx_path("rec-for-a"), *pb = fx_path("rec-for-b"),
             *q = fx_path("rec-for-c");
  gen_t g = {5, 100, 0, 0, 0};
  rng_t r = {99};
  uint8_t *ia, *ib, *b;
  size_t la, lb, alog, blog, mid, rlen;
  uint64_t nd;
  mapkv_stats st;
  mapkv_t *db;
  spans sp;
  kst *m;
  wl_t wa, wb;
  (void)state;

  /* two stores over the same keys with different values; B has more
   * batches, so its sequence numbers run higher than A's */
  wl_init(&wa, 30);
  wl_gen(&wa, &r, 24, &g);
  wl_init(&wb, 30);
  wb.vctr = 1000000;
  wl_gen(&wb, &r, 60, &g);
  db = fx_open(pa, MAPKV_CREATE);
  wl_run(db, &wa, 0, wa.n);
  ia = fx_slurp(pa, &la);
  fx_close(db);
  db = fx_open(pb, MAPKV_CREATE);
  wl_run(db, &wb, 0, wb.n);
  ib = fx_slurp(pb, &lb);
  fx_close(db);
  alog = wa.b[wa.n - 1].end;
  blog = wb.b[wb.n - 1].end - PAGE;
  m = model_of(&wa, wa.n, NULL);
  b = fx_calloc(1, alog + blog + 2 * PAGE);
  assert_non_null(b);

  /* B's log after A's: sound records that fail their checksums are not a
   * torn write: no open drops them (nor changes the file); a salvage open
   * shows A, and verify reports the rest */
  memset(b, 0, alog + blog + 2 * PAGE);
  memcpy(b, ia, alog);
  memcpy(b + alog, ib + PAGE, blog);
  put_file(q, b, alog + blog + PAGE);
  {
    mapkv_t *none = NULL;
    uint8_t *after;
    size_t alen;
    assert_int_equal(open_db(q, 0, &none), MAPKV_ECORRUPT);
    assert_non_null(strstr(mapkv_errmsg(), "fail their checksums"));
    assert_int_equal(open_db(q, MAPKV_RDONLY, &none), MAPKV_ECORRUPT);
    assert_null(none);
    after = fx_slurp(q, &alen);
    assert_int_equal(alen, alog + blog + PAGE);
    assert_memory_equal(after, b, alen);
    fx_free(after);
  }
  db = fx_open(q, MAPKV_RDONLY | MAPKV_VERIFY);
  st = stats_of(db);
  assert_int_equal(st.data_end, alog);
  assert_int_equal(st.recovered_batches, wa.n);
  assert_int_equal(st.damaged_regions, 0);
  expect_state(db, m, univ(&wa), "B's records after A's");
  assert_int_equal(verify_spans(db, &sp, &nd), MAPKV_ECORRUPT);
  assert_int_equal(nd, 1);
  assert_int_equal(sp.off[0], alog);
  fx_close(db);

  /* B's log between A's batches: damage in the middle, A intact */
  mid = (size_t)wa.b[11].end;
  memset(b, 0, alog + blog + 2 * PAGE);
  memcpy(b, ia, mid);
  memcpy(b + mid, ib + PAGE, blog);
  memcpy(b + mid + blog, ia + mid, alog - mid);
  put_file(q, b, alog + blog + PAGE);
  db = fx_open(q, 0);
  st = stats_of(db);
  assert_int_equal(st.data_end, alog + blog);
  assert_int_equal(st.recovered_batches, wa.n);
  assert_int_equal(st.damaged_regions, 1);
  assert_int_equal(st.first_damage_offset, mid);
  assert_int_equal(st.damaged_bytes, blog);
  expect_state(db, m, univ(&wa), "B's records inside A's log");
  assert_int_equal(verify_spans(db, &sp, &nd), MAPKV_ECORRUPT);
  assert_int_equal(nd, 1);
  assert_int_equal(sp.off[0], mid);
  assert_int_equal(sp.len[0], blog);
  fx_close(db);

  /* A's header with B's log: a header that does not belong to the log,
   * refused (never the log zeroed); a salvage open shows nothing of it and
   * verify reports it */
  memset(b, 0, alog + blog + 2 * PAGE);
  memcpy(b, ia, PAGE);
  memcpy(b + PAGE, ib + PAGE, blog);
  put_file(q, b, PAGE + blog + PAGE);
  {
    mapkv_t *none = NULL;
    assert_int_equal(open_db(q, 0, &none), MAPKV_ECORRUPT);
    assert_non_null(strstr(mapkv_errmsg(), "does not belong"));
    assert_null(none);
  }
  db = fx_open(q, MAPKV_RDONLY | MAPKV_VERIFY);
  st = stats_of(db);
  assert_int_equal(st.records, 0);
  assert_int_equal(st.recovered_batches, 0);
  assert_int_equal(st.data_end, PAGE);
  assert_int_equal(verify_spans(db, &sp, &nd), MAPKV_ECORRUPT);
  fx_close(db);

  /* A's own old batches replayed after its end: their sequence numbers are
   * not newer, so they are not applied again */
  rlen = (size_t)(wa.b[8].end - wa.b[3].start);
  assert_true(rlen < blog);
  memset(b, 0, alog + blog + 2 * PAGE);
  memcpy(b, ia, alog);
  memcpy(b + alog, ia + wa.b[3].start, rlen);
  put_file(q, b, alog + rlen + PAGE);
  db = fx_open(q, 0);
  st = stats_of(db);
  assert_int_equal(st.data_end, alog);
  assert_int_equal(st.damaged_regions, 0);
  assert_true(st.dropped_tail_bytes > 0);
  expect_state(db, m, univ(&wa), "A's old batches replayed at the end");
  fx_close(db);
  /* ... and inside the log */
  memset(b, 0, alog + blog + 2 * PAGE);
  memcpy(b, ia, mid);
  memcpy(b + mid, ia + wa.b[3].start, rlen);
  memcpy(b + mid + rlen, ia + mid, alog - mid);
  put_file(q, b, alog + rlen + PAGE);
  db = fx_open(q, 0);
  st = stats_of(db);
  assert_int_equal(st.data_end, alog + rlen);
  assert_int_equal(st.damaged_regions, 1);
  assert_int_equal(st.first_damage_offset, mid);
  assert_int_equal(st.damaged_bytes, rlen);
  expect_state(db, m, univ(&wa), "A's old batches replayed in the middle");
  fx_close(db);

  fx_free(b);
  fx_free(m);
  fx_free(ia);
  fx_free(ib);
  wl_free(&wa);
  wl_free(&wb);
}

/* ---- the last record's final byte ---------------------------------------- */

/* Puts to one key until the last record's final byte (the top byte of its
 * checksum) is zero, which happens once in 256 records. Returns the value
 * number of the last put. */
static uint32_t put_until_last_byte_zero(mapkv_t *db, const char *path) {
  int fd = open(path, O_RDONLY);
  uint32_t i;
  assert_true(fd >= 0);
  for (i = 0; i < 20000; i++) {
    uint8_t last = 1;
    assert_int_equal(mapkv_put(db, "k", 1, &i, sizeof i), 0);
    assert_int_equal(pread(fd, &last, 1, (off_t)(data_end_of(db) - 1)), 1);
    if (last == 0)
      break;
  }
  close(fd);
  assert_true(i < 20000);
  return i;
}

static void test_crash_keeps_last_commit_ending_in_zero_byte(void **state) {
  const char *p = fx_path("rec-z"), *q = fx_path("rec-z-crash");
  uint32_t i, got = 0;
  uint64_t end;
  size_t len, vl;
  uint8_t *img;
  mapkv_t *db, *c;
  (void)state;

  db = fx_open(p, MAPKV_CREATE);
  i = put_until_last_byte_zero(db, p);
  end = data_end_of(db);
  img = fx_slurp(p, &len);
  put_file(q, img, len);
  fx_free(img);
  c = fx_open(q, 0);
  assert_int_equal(stats_of(c).data_end, end);
  assert_int_equal(stats_of(c).dropped_tail_bytes, 0);
  assert_int_equal(mapkv_get(c, "k", 1, &got, sizeof got, &vl), 0);
  assert_int_equal(got, i);
  fx_close(c);
  fx_close(db);
}

static void test_verify_store_whose_last_byte_is_zero(void **state) {
  const char *p = fx_path("rec-zv");
  spans sp;
  uint64_t nd;
  mapkv_t *db;
  (void)state;

  db = fx_open(p, MAPKV_CREATE);
  put_until_last_byte_zero(db, p);
  if (verify_spans(db, &sp, &nd) != 0)
    fail_msg("verify of an intact store: %llu damaged spans, the first at "
             "%llu (%llu bytes); data end %llu",
             (ull)sp.n, (ull)sp.off[0], (ull)sp.len[0], (ull)data_end_of(db));
  assert_int_equal(nd, 0);
  fx_close(db);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* ---- damage the library did not write, and keys written again --------------- */

/* Flips a byte of the file at off (through the file: an open handle's
 * mapping sees it). */
static void flip_file_byte(const char *path, uint64_t off) {
  uint8_t c;
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
  c ^= 0x20;
  assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
  close(fd);
}

/* A key's own bytes damaged after the open: the index entry no longer
 * names a record with the key, and that record fails its checksum. The
 * key answers MAPKV_ECORRUPT (its record may be what was hit), never "not
 * found", and no byte of it is returned. */
static void test_damaged_key_bytes_while_open(void **state) {
  const char *p = fx_path("rec-keybytes");
  uint8_t v[100], buf[128];
  const void *view = NULL;
  size_t vl = 77;
  mapkv_stats st;
  mapkv_t *db;
  (void)state;
  memset(v, 'v', sizeof v);
  db = fx_open(p, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "before", 6, "x", 1), 0);
  assert_int_equal(mapkv_put(db, "victim", 6, v, sizeof v), 0);
  st = stats_of(db);
  /* The record: a 22-byte header, the key, the value, the checksum. */
  flip_file_byte(p, st.data_end - (30 + 6 + sizeof v) + 22 + 2);
  assert_int_equal(mapkv_get(db, "victim", 6, buf, sizeof buf, &vl),
                   MAPKV_ECORRUPT);
  assert_int_equal(vl, 77);
  assert_int_equal(mapkv_get_view(db, "victim", 6, &view, &vl), MAPKV_ECORRUPT);
  assert_null(view);
  assert_int_equal(mapkv_exists(db, "victim", 6), MAPKV_ECORRUPT);
  assert_true(stats_of(db).checksum_failures >= 2);
  assert_int_equal(mapkv_exists(db, "before", 6), 1);
  /* Written again, the key has its new value. */
  assert_int_equal(mapkv_put(db, "victim", 6, "new", 3), 0);
  assert_int_equal(mapkv_get(db, "victim", 6, buf, sizeof buf, &vl), 0);
  assert_int_equal(vl, 3);
  assert_memory_equal(buf, "new", 3);
  fx_close(db);
}

/* A cleanly closed store whose first records of two keys are damaged:
 * both keys are marked, their entries naming the damaged records (which
 * count for no live bytes). Writing one again and deleting the other take
 * nothing from the live bytes of the others. */
static void test_marked_keys_written_again(void **state) {
  const char *p = fx_path("rec-marked");
  uint8_t v[40], buf[64];
  uint64_t off_a, off_c;
  size_t vl;
  mapkv_stats st;
  mapkv_t *db;
  (void)state;
  memset(v, 'm', sizeof v);
  db = fx_open(p, MAPKV_CREATE);
  off_a = stats_of(db).data_end;
  assert_int_equal(mapkv_put(db, "a", 1, v, sizeof v), 0);
  assert_int_equal(mapkv_put(db, "b", 1, v, sizeof v), 0);
  off_c = stats_of(db).data_end;
  assert_int_equal(mapkv_put(db, "c", 1, v, sizeof v), 0);
  assert_int_equal(mapkv_put(db, "d", 1, v, sizeof v), 0);
  fx_close(db);
  flip_file_byte(p, off_a + 30); /* values of a and c */
  flip_file_byte(p, off_c + 30);

  db = fx_open(p, 0);
  st = stats_of(db);
  assert_int_equal(st.damaged_keys, 2);
  assert_int_equal(st.records, 4);
  assert_int_equal(st.live_bytes, 2 * (30 + 1 + sizeof v));
  assert_int_equal(mapkv_get(db, "a", 1, buf, sizeof buf, &vl), MAPKV_ECORRUPT);
  assert_int_equal(mapkv_put(db, "a", 1, "again", 5), 0);
  assert_int_equal(mapkv_del(db, "c", 1), 0);
  st = stats_of(db);
  assert_int_equal(st.records, 3);
  assert_int_equal(st.live_bytes, 2 * (30 + 1 + sizeof v) + 30 + 1 + 5);
  assert_int_equal(st.live_bytes + st.dead_bytes, st.data_end - PAGE);
  assert_int_equal(mapkv_get(db, "a", 1, buf, sizeof buf, &vl), 0);
  assert_int_equal(vl, 5);
  assert_int_equal(mapkv_exists(db, "c", 1), 0);
  assert_int_equal(mapkv_exists(db, "b", 1), 1);
  fx_close(db);
  db = fx_open(p, MAPKV_RDONLY);
  assert_int_equal(mapkv_get(db, "a", 1, buf, sizeof buf, &vl), 0);
  assert_int_equal(mapkv_exists(db, "c", 1), 0);
  assert_int_equal(stats_of(db).records, 3);
  fx_close(db);
}

/* ---- stores of format version 1 ---------------------------------------------- */

/* Appends a record of format version 1 (no prev) at b + *at. */
static void put_v1_rec(uint8_t *b, uint64_t *at, uint64_t seq, const void *k,
                       uint32_t kl, const void *v, uint32_t vl,
                       uint64_t file_id) {
  uint8_t *p = b + *at;
  uint64_t n = MAPKV__REC_HEAD_V1 + (uint64_t)kl + vl;
  p[0] = MAPKV__MARK0;
  p[1] = MAPKV__MARK1;
  p[MAPKV__R_TYPE] = MAPKV__T_PUT;
  p[MAPKV__R_FLAGS] = MAPKV__F_FIRST | MAPKV__F_LAST;
  mapkv__put_le(p + MAPKV__R_KLEN, kl, 2);
  mapkv__put_le(p + MAPKV__R_VLEN, vl, 4);
  mapkv__put_le(p + MAPKV__R_SEQ, seq, 6);
  memcpy(p + MAPKV__REC_HEAD_V1, k, kl);
  memcpy(p + MAPKV__REC_HEAD_V1 + kl, v, vl);
  mapkv__put_le(p + n, XXH3_64bits_withSeed(p, (size_t)n, file_id), 8);
  *at += n + MAPKV__REC_TAIL;
}

/* An intact store of format version 1, cleanly closed, whose writer let
 * keys be larger than today's default limit (version 1 kept limits in the
 * handle's options only): it is upgraded, kept as <path>.v1-<time>, with
 * every record, and limits that hold them. */
static void test_upgrade_version_1(void **state) {
  const char *p = fx_path("rec-v1");
  enum { BIGKEY = 5000 };
  uint64_t fid = 0x0123456789abcdefull, at = PAGE;
  uint8_t *img = fx_calloc(1, 4 * PAGE), *key = fx_malloc(BIGKEY), buf[64];
  mapkv__header h;
  mapkv_recover_info info;
  mapkv_stats st;
  mapkv_t *db;
  size_t vl;
  assert_non_null(img);
  assert_non_null(key);
  (void)state;
  memset(key, 'K', BIGKEY);
  put_v1_rec(img, &at, 1, "small", 5, "one", 3, fid);
  put_v1_rec(img, &at, 2, key, BIGKEY, "big key", 7, fid);
  put_v1_rec(img, &at, 3, "last", 4, "three", 5, fid);
  memset(&h, 0, sizeof h);
  h.version = 1;
  h.page_size = PAGE;
  h.flags = MAPKV__HF_CLEAN;
  h.file_id = fid;
  h.data_end = at;
  h.last_seq = 3;
  h.live_records = 3;
  h.live_bytes = at - PAGE;
  h.created = 1;
  mapkv__header_encode(img, &h);
  mapkv__header_encode(img + MAPKV__HDR_COPY_B, &h);
  put_file(p, img, 4 * PAGE);

  db = fx_open(p, MAPKV_RDONLY);
  st = stats_of(db);
  assert_int_equal(st.format_version, 1);
  assert_int_equal(st.records, 3);
  assert_int_equal(mapkv_get(db, key, BIGKEY, buf, sizeof buf, &vl), 0);
  fx_close(db);

  assert_int_equal(mapkv_recover(p, NULL, 0, 0, &info), 0);
  assert_int_equal(info.rewritten, 1);
  assert_int_equal(info.damaged, 0);
  assert_int_equal(info.saved, 3);
  assert_int_equal(info.lost, 0);
  assert_int_equal(info.found.format_version, 1);
  assert_non_null(strstr(info.backup, ".v1-"));
  assert_int_equal(tu_file_size(info.backup), 4 * PAGE);
  unlink(info.backup);

  db = fx_open(p, 0);
  st = stats_of(db);
  assert_int_equal(st.format_version, MAPKV_FORMAT_VERSION);
  assert_int_equal(st.records, 3);
  assert_int_equal(st.max_key_size, BIGKEY);
  assert_int_equal(st.max_value_size, MAPKV_DEFAULT_VALUE_MAX);
  assert_int_equal(mapkv_get(db, key, BIGKEY, buf, sizeof buf, &vl), 0);
  assert_int_equal(vl, 7);
  assert_memory_equal(buf, "big key", 7);
  assert_int_equal(mapkv_get(db, "small", 5, buf, sizeof buf, &vl), 0);
  assert_int_equal(mapkv_put(db, key, BIGKEY, "written", 7), 0);
  assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), 0);
  fx_close(db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_reopen_clean_and_crash),
      T(test_crash_every_byte_small_store),
      T(test_crash_at_every_record_boundary),
      T(test_bitflip_records),
      T(test_bitflip_cursor_sees_every_live_key),
      T(test_bitflip_damage_stays_dropped_after_clean_close),
      T(test_damaged_commit_not_applied_after_clean_close),
      T(test_bitflip_in_cleanly_closed_store),
      T(test_damaged_keys_written_again),
      T(test_clean_store_flip_never_shows_older_value),
      T(test_truncated_clean_store),
      T(test_torn_tail_of_large_records),
      T(test_header_of_another_generation),
      T(test_batch_rule_violations),
      T(test_header_copy_damage),
      T(test_get_never_returns_damaged_bytes),
      T(test_zeroed_page_in_the_middle),
      T(test_batch_atomicity),
      T(test_power_cut_from_flush_hook),
      T(test_power_cut_under_group_commit),
      T(test_garbage_files),
      T(test_records_from_another_store),
      T(test_overlong_stray_record),
      T(test_damaged_first_record_of_clean_batch),
      T(test_crash_keeps_last_commit_ending_in_zero_byte),
      T(test_verify_store_whose_last_byte_is_zero),
      T(test_damaged_key_bytes_while_open),
      T(test_marked_keys_written_again),
      T(test_upgrade_version_1),
  };
  /* MAPKV_TEST_FILTER=test_garbage* runs a subset */
  if (getenv("MAPKV_TEST_FILTER") != NULL)
    cmocka_set_test_filter(getenv("MAPKV_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
