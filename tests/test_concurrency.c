/*
 * test_concurrency.c — one handle shared by threads: readers running
 * alongside a writer, compactions and cursors; writers queueing on the
 * handle, durable ones alongside compactions; batches becoming visible all
 * at once.
 *
 * Every value is derived from its key number and a version, so a reader can
 * check any value it sees; versions of a key only grow, so a reader can also
 * check that it never sees a key go back in time. Threads only count
 * failures (cmocka's asserts are not thread-safe); the main thread asserts
 * after joining them. Nothing here depends on timing: threads stop when the
 * work they watch is done.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mapkv/mapkv.h"
#include "store/index.h" /* mapkv__index_hash: keys that collide */
#include "store/store.h" /* mapkv__test_queued */
#include "testutil.h"

#define NKEYS 512
#define VMAX  160 /* longest value */

static char path[256];

static int setup(void **state) {
  (void)state;
  tu_path(path, sizeof path, "conc");
  return 0;
}

static int teardown(void **state) {
  char tmp[300];
  (void)state;
  unlink(path);
  snprintf(tmp, sizeof tmp, "%s.compact", path);
  unlink(tmp);
  return 0;
}

#define assert_rc(expr, want)                                                  \
  do {                                                                         \
    int rc_ = (expr), want_ = (want);                                          \
    if (rc_ != want_)                                                          \
      fail_msg("%s: got %d (%s; \"%s\"), want %d (%s)", #expr, rc_,            \
               mapkv_strerror(rc_), mapkv_errmsg(), want_,                     \
               mapkv_strerror(want_));                                         \
  } while (0)

/* ---- keys and values ----------------------------------------------------- */

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

/* A small per-thread PRNG. */
static uint32_t rnd(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(*s >> 33);
}

static size_t key_of(char *buf, unsigned tag, unsigned i) {
  return (size_t)snprintf(buf, 32, "t%u/key%05u", tag, i);
}

/* value(key i, version v): i (4 bytes), v (4 bytes), then bytes that depend
 * on both; the length depends on both too. */
static size_t val_of(uint8_t *buf, unsigned i, uint32_t v) {
  uint64_t h = mix(((uint64_t)i << 32) | v);
  size_t len = 8 + (size_t)(h % (VMAX - 8 + 1));
  memcpy(buf, &i, 4);
  memcpy(buf + 4, &v, 4);
  for (size_t j = 8; j < len; j++) {
    if ((j & 7) == 0)
      h = mix(h + j);
    buf[j] = (uint8_t)(h >> (8 * (j & 7)));
  }
  return len;
}

/* 0 if (buf, len) is a value of key i; its version in *v. */
static int check_val(const uint8_t *buf, size_t len, unsigned i, uint32_t *v) {
  uint8_t want[VMAX];
  unsigned got_i;
  if (len < 8 || len > VMAX)
    return -1;
  memcpy(&got_i, buf, 4);
  memcpy(v, buf + 4, 4);
  if (got_i != i || val_of(want, i, *v) != len)
    return -1;
  return memcmp(want, buf, len) == 0 ? 0 : -1;
}

/* Key number from a key "t<tag>/key<i>", or -1. */
static int parse_key(const void *k, size_t klen, unsigned tag) {
  char buf[32], want[32];
  unsigned i;
  if (klen == 0 || klen >= sizeof buf)
    return -1;
  memcpy(buf, k, klen);
  buf[klen] = '\0';
  if (sscanf(buf, "t%*u/key%5u", &i) != 1 || i >= NKEYS)
    return -1;
  if (key_of(want, tag, i) != klen || memcmp(want, buf, klen) != 0)
    return -1;
  return (int)i;
}

static mapkv_t *open_store(int sync_mode) {
  mapkv_options o;
  mapkv_t *db = NULL;
  mapkv_options_init(&o);
  o.flags = MAPKV_CREATE;
  o.sync_mode = sync_mode;
  o.initial_size = 16 << 10; /* many resizes while readers run */
  o.growth_step = 4 << 10;
  assert_rc(mapkv_open(path, &o, &db), 0);
  return db;
}

/* ---- readers, a writer, compactions and cursors -------------------------- */

typedef struct shared {
  mapkv_t *db;
  atomic_int stop;        /* readers and cursor walkers end */
  atomic_uint writer_ops; /* operations the writer has done */
  uint32_t model[NKEYS];  /* writer's: version of each key, 0 = absent */
  /* Failures, by kind; details of the first. */
  atomic_uint bad_values, bad_errors, went_back, bad_cursor, bad_writes;
  atomic_uint reads, found, cursor_walks, changed;
  atomic_int first_error;
  char first_msg[256];
  pthread_mutex_t msg_lock;
} shared;

#define WRITER_OPS  20000
#define COMPACTIONS 5

static void note(shared *s, atomic_uint *counter, int rc, const char *what) {
  atomic_fetch_add(counter, 1);
  pthread_mutex_lock(&s->msg_lock);
  if (s->first_msg[0] == '\0') {
    atomic_store(&s->first_error, rc);
    snprintf(s->first_msg, sizeof s->first_msg, "%s: %d (%s) %s", what, rc,
             mapkv_strerror(rc), rc != 0 ? mapkv_errmsg() : "");
  }
  pthread_mutex_unlock(&s->msg_lock);
}

typedef struct reader_arg {
  shared *s;
  unsigned id;
} reader_arg;

static void *reader(void *p) {
  reader_arg *a = p;
  shared *s = a->s;
  uint64_t seed = 0x1234 + a->id;
  uint32_t last[NKEYS];
  unsigned mine = 0;
  memset(last, 0, sizeof last);
  do {
    /* Pace the readers by the writer's progress: the handle's reader/writer
     * lock lets a steady stream of readers hold off the writer for long
     * stretches, which would make the run time unbounded. */
    if (mine > 4 * atomic_load(&s->writer_ops) + 512) {
      sched_yield();
      continue;
    }
    for (int n = 0; n < 64; n++, mine++) {
      unsigned i = rnd(&seed) % NKEYS;
      char k[32];
      uint8_t buf[VMAX];
      size_t kl = key_of(k, 0, i), vl = 0;
      uint32_t v;
      int rc = mapkv_get(s->db, k, kl, buf, sizeof buf, &vl);
      atomic_fetch_add(&s->reads, 1);
      if (rc == MAPKV_NOTFOUND)
        continue;
      if (rc != 0) {
        note(s, &s->bad_errors, rc, "reader get");
        continue;
      }
      atomic_fetch_add(&s->found, 1);
      if (check_val(buf, vl, i, &v) != 0) {
        note(s, &s->bad_values, 0, "reader saw a wrong value");
        continue;
      }
      if (v < last[i])
        note(s, &s->went_back, 0, "reader saw an older version after a newer");
      last[i] = v;
      rc = mapkv_exists(s->db, k, kl);
      if (rc != 0 && rc != 1)
        note(s, &s->bad_errors, rc, "reader exists");
    }
  } while (!atomic_load(&s->stop));
  return NULL;
}

static void *writer(void *p) {
  shared *s = p;
  uint64_t seed = 42;
  uint32_t next_version = 1;
  for (unsigned op = 0; op < WRITER_OPS; op++) {
    unsigned i = rnd(&seed) % NKEYS, kind = rnd(&seed) % 100;
    char k[32];
    uint8_t v[VMAX];
    size_t kl = key_of(k, 0, i);
    int rc;
    if (kind < 65) {
      uint32_t ver = next_version++;
      rc = mapkv_put(s->db, k, kl, v, val_of(v, i, ver));
      if (rc != 0)
        note(s, &s->bad_writes, rc, "writer put");
      else
        s->model[i] = ver;
    } else if (kind < 85) {
      rc = mapkv_del(s->db, k, kl);
      if (rc != (s->model[i] ? 0 : MAPKV_NOTFOUND))
        note(s, &s->bad_writes, rc, "writer del");
      s->model[i] = 0;
    } else {
      /* A batch of 2..6 operations on random keys. */
      mapkv_batch_t *b = NULL;
      unsigned n = 2 + rnd(&seed) % 5, keys[6];
      uint32_t vers[6];
      rc = mapkv_batch_begin(s->db, &b);
      if (rc != 0) {
        note(s, &s->bad_writes, rc, "writer batch_begin");
        continue;
      }
      for (unsigned j = 0; j < n; j++) {
        keys[j] = rnd(&seed) % NKEYS;
        kl = key_of(k, 0, keys[j]);
        if (rnd(&seed) % 4 == 0) {
          vers[j] = 0;
          rc = mapkv_batch_del(b, k, kl);
        } else {
          vers[j] = next_version++;
          rc = mapkv_batch_put(b, k, kl, v, val_of(v, keys[j], vers[j]));
        }
        if (rc != 0)
          note(s, &s->bad_writes, rc, "writer batch op");
      }
      rc = mapkv_batch_commit(b);
      if (rc != 0)
        note(s, &s->bad_writes, rc, "writer batch_commit");
      else
        for (unsigned j = 0; j < n; j++)
          s->model[keys[j]] = vers[j];
    }
    atomic_fetch_add(&s->writer_ops, 1);
  }
  return NULL;
}

/* Walks one cursor; checks values and that no key comes twice. Only for
 * the compacting thread: keys and values point into the mapping, valid
 * until the next compaction. */
static void walk(shared *s) {
  mapkv_cursor_t *c = NULL;
  uint8_t seen[NKEYS];
  const void *k, *v;
  size_t kl, vl;
  int rc = mapkv_cursor_open(s->db, NULL, 0, &c);
  if (rc != 0) {
    note(s, &s->bad_cursor, rc, "cursor_open");
    return;
  }
  memset(seen, 0, sizeof seen);
  while ((rc = mapkv_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
    int i = parse_key(k, kl, 0);
    uint32_t ver;
    if (i < 0 || check_val(v, vl, (unsigned)i, &ver) != 0) {
      note(s, &s->bad_cursor, 0, "cursor saw a wrong key or value");
      continue;
    }
    if (seen[i]++)
      note(s, &s->bad_cursor, 0, "cursor reported a key twice");
  }
  mapkv_cursor_close(c);
  if (rc == MAPKV_NOTFOUND)
    atomic_fetch_add(&s->cursor_walks, 1);
  else
    note(s, &s->bad_cursor, rc, "cursor_next");
}

/* Cursors racing the compactions: they may end with MAPKV_ECHANGED (and
 * then keep returning it). The pointers they hand out may be unmapped by
 * a compaction at any moment, so this thread only looks at the lengths. */
static void walk_racing(shared *s) {
  mapkv_cursor_t *c = NULL;
  const void *k, *v;
  size_t kl, vl, n = 0;
  int rc = mapkv_cursor_open(s->db, NULL, 0, &c);
  if (rc != 0) {
    note(s, &s->bad_cursor, rc, "cursor_open");
    return;
  }
  while ((rc = mapkv_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
    if (kl != 11 || vl < 8 || vl > VMAX)
      note(s, &s->bad_cursor, 0, "racing cursor: wrong lengths");
    if (++n > NKEYS)
      note(s, &s->bad_cursor, 0, "racing cursor: more records than keys");
  }
  if (rc == MAPKV_ECHANGED) {
    atomic_fetch_add(&s->changed, 1);
    rc = mapkv_cursor_next(c, &k, &kl, &v, &vl);
    if (rc != MAPKV_ECHANGED)
      note(s, &s->bad_cursor, rc, "racing cursor after ECHANGED");
  } else if (rc != MAPKV_NOTFOUND) {
    note(s, &s->bad_cursor, rc, "racing cursor_next");
  }
  mapkv_cursor_close(c);
}

static void *compactor(void *p) {
  shared *s = p;
  for (unsigned c = 0; c < COMPACTIONS; c++) {
    int rc;
    /* Spread the compactions over the writer's run. */
    while (atomic_load(&s->writer_ops) <
           (c + 1) * WRITER_OPS / (COMPACTIONS + 1))
      sched_yield();
    rc = mapkv_compact(s->db);
    if (rc != 0)
      note(s, &s->bad_writes, rc, "compact");
    /* Only this thread compacts: its own cursors never see ECHANGED. */
    walk(s);
    walk(s);
  }
  return NULL;
}

static void *cursor_walker(void *p) {
  shared *s = p;
  unsigned walks = 0;
  do {
    if (walks * 250 > atomic_load(&s->writer_ops)) {
      sched_yield(); /* paced like the readers */
      continue;
    }
    walk_racing(s);
    walks++;
  } while (!atomic_load(&s->stop));
  return NULL;
}

/* The store holds exactly the model: by get, by cursor, by the figures. */
static void expect_model(mapkv_t *db, const uint32_t *model) {
  uint64_t present = 0;
  uint8_t seen[NKEYS];
  mapkv_cursor_t *c = NULL;
  const void *k, *v;
  size_t kl, vl;
  mapkv_stats st;
  int rc;
  for (unsigned i = 0; i < NKEYS; i++) {
    char key[32];
    uint8_t buf[VMAX];
    size_t len = 0;
    uint32_t ver = 0;
    size_t klen = key_of(key, 0, i);
    rc = mapkv_get(db, key, klen, buf, sizeof buf, &len);
    if (model[i] == 0) {
      assert_rc(rc, MAPKV_NOTFOUND);
      continue;
    }
    present++;
    assert_rc(rc, 0);
    assert_int_equal(check_val(buf, len, i, &ver), 0);
    assert_int_equal(ver, model[i]);
  }
  memset(seen, 0, sizeof seen);
  assert_rc(mapkv_cursor_open(db, NULL, 0, &c), 0);
  while ((rc = mapkv_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
    int i = parse_key(k, kl, 0);
    uint32_t ver = 0;
    assert_true(i >= 0);
    assert_int_equal(seen[i], 0);
    seen[i] = 1;
    assert_int_equal(check_val(v, vl, (unsigned)i, &ver), 0);
    assert_int_equal(ver, model[i]);
  }
  assert_rc(rc, MAPKV_NOTFOUND);
  mapkv_cursor_close(c);
  for (unsigned i = 0; i < NKEYS; i++)
    assert_int_equal(seen[i], model[i] != 0);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.records, present);
  assert_int_equal(st.live_bytes + st.dead_bytes, st.data_end - 4096);
}

static void test_readers_writer_compactor(void **state) {
  enum { NREADERS = 4 };
  shared *s = calloc(1, sizeof *s);
  pthread_t readers[NREADERS], w, comp, curs;
  reader_arg args[NREADERS];
  mapkv_stats st;
  (void)state;

  assert_non_null(s);
  pthread_mutex_init(&s->msg_lock, NULL);
  s->db = open_store(MAPKV_SYNC_NONE);
  for (unsigned i = 0; i < NREADERS; i++) {
    args[i].s = s;
    args[i].id = i;
    assert_int_equal(pthread_create(&readers[i], NULL, reader, &args[i]), 0);
  }
  assert_int_equal(pthread_create(&curs, NULL, cursor_walker, s), 0);
  assert_int_equal(pthread_create(&comp, NULL, compactor, s), 0);
  assert_int_equal(pthread_create(&w, NULL, writer, s), 0);
  assert_int_equal(pthread_join(w, NULL), 0);
  assert_int_equal(pthread_join(comp, NULL), 0);
  atomic_store(&s->stop, 1);
  for (unsigned i = 0; i < NREADERS; i++)
    assert_int_equal(pthread_join(readers[i], NULL), 0);
  assert_int_equal(pthread_join(curs, NULL), 0);

  if (s->first_msg[0] != '\0')
    print_message("first failure: %s\n", s->first_msg);
  print_message("reads %u (found %u), racing cursor walks ended by a "
                "compaction: %u\n",
                atomic_load(&s->reads), atomic_load(&s->found),
                atomic_load(&s->changed));
  assert_int_equal(atomic_load(&s->bad_values), 0);
  assert_int_equal(atomic_load(&s->bad_errors), 0);
  assert_int_equal(atomic_load(&s->went_back), 0);
  assert_int_equal(atomic_load(&s->bad_cursor), 0);
  assert_int_equal(atomic_load(&s->bad_writes), 0);
  assert_int_equal(atomic_load(&s->writer_ops), WRITER_OPS);
  assert_true(atomic_load(&s->reads) >= NREADERS * 64);
  /* Each compaction is followed by two walks of the compactor's own. */
  assert_true(atomic_load(&s->cursor_walks) >= 2 * COMPACTIONS);

  assert_rc(mapkv_stat(s->db, &st), 0);
  assert_int_equal(st.generation, COMPACTIONS);
  assert_int_equal(st.checksum_failures, 0);
  expect_model(s->db, s->model);
  assert_rc(mapkv_verify(s->db, NULL, NULL, NULL), 0);
  assert_rc(mapkv_close(s->db), 0);

  /* The same after a reopen. */
  s->db = open_store(MAPKV_SYNC_NONE);
  expect_model(s->db, s->model);
  assert_rc(mapkv_close(s->db), 0);
  pthread_mutex_destroy(&s->msg_lock);
  free(s);
}

/* ---- two writers on one handle ------------------------------------------- */

#define WKEYS       3000
#define SHARED_KEYS 16

typedef struct writer2_arg {
  mapkv_t *db;
  unsigned tag;      /* 1 or 2: the writer's own key space */
  unsigned failures; /* operations that did not return 0 */
  uint64_t records;  /* records this writer's commits wrote */
  uint64_t bytes;    /* their bytes */
} writer2_arg;

static void *writer2(void *p) {
  writer2_arg *a = p;
  uint8_t v[VMAX];
  char k[32];
  for (unsigned i = 0; i < WKEYS; i++) {
    size_t kl = key_of(k, a->tag, i), vl = val_of(v, i, a->tag);
    if (i % 10 == 9) {
      /* Every tenth key in a batch with a write to a shared key. */
      mapkv_batch_t *b = NULL;
      char sk[32];
      size_t skl = key_of(sk, 3, (i / 10) % SHARED_KEYS);
      uint8_t sv[VMAX];
      size_t svl = val_of(sv, (i / 10) % SHARED_KEYS, a->tag);
      if (mapkv_batch_begin(a->db, &b) != 0 ||
          mapkv_batch_put(b, k, kl, v, vl) != 0 ||
          mapkv_batch_put(b, sk, skl, sv, svl) != 0 ||
          mapkv_batch_commit(b) != 0) {
        a->failures++;
        continue;
      }
      a->records += 3;
      a->bytes += (30 + kl + vl) + (30 + skl + svl) + (30 + 8);
    } else {
      if (mapkv_put(a->db, k, kl, v, vl) != 0) {
        a->failures++;
        continue;
      }
      a->records += 1;
      a->bytes += 30 + kl + vl;
    }
  }
  return NULL;
}

static void test_two_writers(void **state) {
  mapkv_t *db = open_store(MAPKV_SYNC_NONE);
  writer2_arg a[2];
  pthread_t t[2];
  mapkv_stats st;
  (void)state;

  memset(a, 0, sizeof a);
  for (unsigned i = 0; i < 2; i++) {
    a[i].db = db;
    a[i].tag = i + 1;
    assert_int_equal(pthread_create(&t[i], NULL, writer2, &a[i]), 0);
  }
  for (unsigned i = 0; i < 2; i++)
    assert_int_equal(pthread_join(t[i], NULL), 0);
  assert_int_equal(a[0].failures, 0);
  assert_int_equal(a[1].failures, 0);

  /* Every commit got its own sequence numbers and its own bytes. */
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.records, 2 * WKEYS + SHARED_KEYS);
  assert_int_equal(st.last_seq, a[0].records + a[1].records);
  assert_int_equal(st.data_end, 4096 + a[0].bytes + a[1].bytes);
  assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);

  for (int pass = 0; pass < 2; pass++) {
    for (unsigned tag = 1; tag <= 2; tag++) {
      for (unsigned i = 0; i < WKEYS; i++) {
        char k[32];
        uint8_t buf[VMAX];
        size_t kl = key_of(k, tag, i), len = 0;
        uint32_t ver = 0;
        assert_rc(mapkv_get(db, k, kl, buf, sizeof buf, &len), 0);
        assert_int_equal(check_val(buf, len, i, &ver), 0);
        assert_int_equal(ver, tag);
      }
    }
    /* Each shared key holds the value one of the writers gave it. */
    for (unsigned i = 0; i < SHARED_KEYS; i++) {
      char k[32];
      uint8_t buf[VMAX];
      size_t kl = key_of(k, 3, i), len = 0;
      uint32_t ver = 0;
      assert_rc(mapkv_get(db, k, kl, buf, sizeof buf, &len), 0);
      assert_int_equal(check_val(buf, len, i, &ver), 0);
      assert_true(ver == 1 || ver == 2);
    }
    assert_rc(mapkv_close(db), 0);
    db = open_store(MAPKV_SYNC_NONE);
    assert_rc(mapkv_stat(db, &st), 0);
    assert_int_equal(st.records, 2 * WKEYS + SHARED_KEYS);
    assert_int_equal(st.last_seq, a[0].records + a[1].records);
  }
  assert_rc(mapkv_close(db), 0);
}

/* ---- durable writers alongside compactions ------------------------------- */

#define DWRITERS     3
#define DKEYS        64
#define DOPS         240 /* commits of each writer */
#define DCOMPACTIONS 4

typedef struct durable_shared {
  mapkv_t *db;
  atomic_uint ops; /* commits done by all writers */
  atomic_int stop; /* the reader ends */
  atomic_uint errors, reads;
} durable_shared;

typedef struct durable_arg {
  durable_shared *s;
  unsigned tag; /* 1..DWRITERS: the writer's own key space */
  unsigned failures;
} durable_arg;

/* Commit op puts key op % DKEYS at version op + 1; every fourth is a batch
 * that also puts a shared key (key space DWRITERS + 1). Group commit puts
 * the writers' commits in one flush; compaction replaces the log under
 * them. */
static void *durable_writer(void *p) {
  durable_arg *a = p;
  for (unsigned op = 0; op < DOPS; op++) {
    unsigned i = op % DKEYS;
    char k[32];
    uint8_t v[VMAX];
    size_t kl = key_of(k, a->tag, i), vl = val_of(v, i, op + 1);
    int rc;
    if (op % 4 == 3) {
      mapkv_batch_t *b = NULL;
      char sk[32];
      uint8_t sv[VMAX];
      size_t skl = key_of(sk, DWRITERS + 1, (op / 4) % 8);
      size_t svl = val_of(sv, (op / 4) % 8, a->tag);
      rc = mapkv_batch_begin(a->s->db, &b);
      if (rc == 0 && (rc = mapkv_batch_put(b, k, kl, v, vl)) == 0 &&
          (rc = mapkv_batch_put(b, sk, skl, sv, svl)) == 0)
        rc = mapkv_batch_commit(b);
      else if (b != NULL)
        mapkv_batch_abort(b);
    } else {
      rc = mapkv_put(a->s->db, k, kl, v, vl);
    }
    a->failures += rc != 0;
    atomic_fetch_add(&a->s->ops, 1);
  }
  return NULL;
}

static void *durable_compactor(void *p) {
  durable_shared *s = p;
  for (unsigned c = 0; c < DCOMPACTIONS; c++) {
    while (atomic_load(&s->ops) <
           (c + 1) * DWRITERS * DOPS / (DCOMPACTIONS + 1))
      sched_yield();
    if (mapkv_compact(s->db) != 0)
      atomic_fetch_add(&s->errors, 1);
  }
  return NULL;
}

/* Reads the writers' keys while they commit and the log is replaced:
 * mapkv_get and mapkv_exists answer found or not found, never an error. */
static void *durable_reader(void *p) {
  durable_shared *s = p;
  uint64_t seed = 7;
  do {
    unsigned tag = 1 + rnd(&seed) % DWRITERS, i = rnd(&seed) % DKEYS;
    char k[32];
    uint8_t buf[VMAX];
    size_t kl = key_of(k, tag, i), len = 0;
    uint32_t ver = 0;
    int rc = mapkv_get(s->db, k, kl, buf, sizeof buf, &len), e;
    if (rc != 0 && rc != MAPKV_NOTFOUND)
      atomic_fetch_add(&s->errors, 1);
    if (rc == 0 && check_val(buf, len, i, &ver) != 0)
      atomic_fetch_add(&s->errors, 1);
    e = mapkv_exists(s->db, k, kl);
    if (e != 0 && e != 1)
      atomic_fetch_add(&s->errors, 1);
    atomic_fetch_add(&s->reads, 1);
    if (atomic_load(&s->reads) % 64 == 0)
      sched_yield();
  } while (!atomic_load(&s->stop));
  return NULL;
}

static void test_durable_writers_compactor(void **state) {
  durable_shared s;
  durable_arg a[DWRITERS];
  pthread_t w[DWRITERS], comp, rd;
  mapkv_stats st;
  (void)state;

  memset(&s, 0, sizeof s);
  s.db = open_store(MAPKV_SYNC_COMMIT);
  assert_int_equal(pthread_create(&rd, NULL, durable_reader, &s), 0);
  assert_int_equal(pthread_create(&comp, NULL, durable_compactor, &s), 0);
  for (unsigned t = 0; t < DWRITERS; t++) {
    a[t].s = &s;
    a[t].tag = t + 1;
    a[t].failures = 0;
    assert_int_equal(pthread_create(&w[t], NULL, durable_writer, &a[t]), 0);
  }
  for (unsigned t = 0; t < DWRITERS; t++)
    assert_int_equal(pthread_join(w[t], NULL), 0);
  assert_int_equal(pthread_join(comp, NULL), 0);
  atomic_store(&s.stop, 1);
  assert_int_equal(pthread_join(rd, NULL), 0);
  for (unsigned t = 0; t < DWRITERS; t++)
    assert_int_equal(a[t].failures, 0);
  assert_int_equal(atomic_load(&s.errors), 0);
  assert_true(atomic_load(&s.reads) > 0);

  for (int pass = 0; pass < 2; pass++) {
    /* Each writer's keys hold its last version; a shared key one of the
     * writers' values. */
    for (unsigned tag = 1; tag <= DWRITERS; tag++)
      for (unsigned i = 0; i < DKEYS; i++) {
        char k[32];
        uint8_t buf[VMAX];
        size_t kl = key_of(k, tag, i), len = 0;
        uint32_t ver = 0;
        assert_rc(mapkv_get(s.db, k, kl, buf, sizeof buf, &len), 0);
        assert_int_equal(check_val(buf, len, i, &ver), 0);
        assert_int_equal(ver, i + DKEYS * ((DOPS - 1 - i) / DKEYS) + 1);
      }
    for (unsigned i = 0; i < 8; i++) {
      char k[32];
      uint8_t buf[VMAX];
      size_t kl = key_of(k, DWRITERS + 1, i), len = 0;
      uint32_t ver = 0;
      assert_rc(mapkv_get(s.db, k, kl, buf, sizeof buf, &len), 0);
      assert_int_equal(check_val(buf, len, i, &ver), 0);
      assert_true(ver >= 1 && ver <= DWRITERS);
    }
    assert_rc(mapkv_stat(s.db, &st), 0);
    assert_int_equal(st.records, DWRITERS * DKEYS + 8);
    assert_int_equal(st.generation, DCOMPACTIONS);
    assert_rc(mapkv_verify(s.db, NULL, NULL, NULL), 0);
    assert_rc(mapkv_close(s.db), 0);
    s.db = open_store(MAPKV_SYNC_COMMIT);
  }
  assert_rc(mapkv_close(s.db), 0);
}

/* ---- batches become visible at once -------------------------------------- */

#define GROUP   10
#define BATCHES 2000

typedef struct batch_shared {
  mapkv_t *db;
  atomic_int stop;
  atomic_uint errors, torn, reads, committed;
} batch_shared;

/* Every batch sets keys 0..GROUP-1 to the same version, applying them in
 * that order within the batch. A reader reading them in the same order
 * never sees a version smaller than one it read just before: if it did, it
 * would have read part of a batch. Every other round reads all of them
 * with one mapkv_get_many() (one group), which must see one version. */
static void *batch_reader(void *p) {
  batch_shared *s = p;
  unsigned rounds = 0;
  do {
    uint32_t prev = 0;
    /* Paced by the writer, as in the test above. */
    if (rounds > 2 * atomic_load(&s->committed) + 64) {
      sched_yield();
      continue;
    }
    rounds++;
    if (rounds % 2 == 0) {
      /* One mapkv_get_many() group: the keys of one committed state, so
       * all of the same version. */
      char kb[GROUP][32];
      const void *keys[GROUP], *vals[GROUP];
      size_t klens[GROUP], vlens[GROUP];
      int rcs[GROUP];
      uint32_t first = 0;
      for (unsigned i = 0; i < GROUP; i++) {
        klens[i] = key_of(kb[i], 0, i);
        keys[i] = kb[i];
      }
      if (mapkv_get_many(s->db, GROUP, keys, klens, vals, vlens, rcs) != 0) {
        atomic_fetch_add(&s->errors, 1);
        break;
      }
      atomic_fetch_add(&s->reads, GROUP);
      if (rcs[0] == MAPKV_NOTFOUND) {
        for (unsigned i = 0; i < GROUP; i++)
          if (rcs[i] != MAPKV_NOTFOUND)
            atomic_fetch_add(&s->torn, 1);
        continue; /* before the first batch */
      }
      for (unsigned i = 0; i < GROUP; i++) {
        uint32_t ver = 0;
        if (rcs[i] != 0 || check_val(vals[i], vlens[i], i, &ver) != 0) {
          atomic_fetch_add(&s->errors, 1);
          break;
        }
        if (i == 0)
          first = ver;
        else if (ver != first)
          atomic_fetch_add(&s->torn, 1);
      }
      continue;
    }
    for (unsigned i = 0; i < GROUP; i++) {
      char k[32];
      uint8_t buf[VMAX];
      size_t kl = key_of(k, 0, i), len = 0;
      uint32_t ver = 0;
      int rc = mapkv_get(s->db, k, kl, buf, sizeof buf, &len);
      atomic_fetch_add(&s->reads, 1);
      if (rc == MAPKV_NOTFOUND && prev == 0)
        continue; /* before the first batch */
      if (rc != 0 || check_val(buf, len, i, &ver) != 0) {
        atomic_fetch_add(&s->errors, 1);
        break;
      }
      if (ver < prev)
        atomic_fetch_add(&s->torn, 1);
      prev = ver;
    }
  } while (!atomic_load(&s->stop));
  return NULL;
}

static void test_batch_visibility_under_readers(void **state) {
  batch_shared s;
  pthread_t r[3];
  mapkv_stats st;
  (void)state;

  memset(&s, 0, sizeof s);
  s.db = open_store(MAPKV_SYNC_NONE);
  for (int i = 0; i < 3; i++)
    assert_int_equal(pthread_create(&r[i], NULL, batch_reader, &s), 0);
  for (uint32_t ver = 1; ver <= BATCHES; ver++) {
    mapkv_batch_t *b = NULL;
    assert_rc(mapkv_batch_begin(s.db, &b), 0);
    for (unsigned i = 0; i < GROUP; i++) {
      char k[32];
      uint8_t v[VMAX];
      size_t kl = key_of(k, 0, i);
      assert_rc(mapkv_batch_put(b, k, kl, v, val_of(v, i, ver)), 0);
    }
    assert_rc(mapkv_batch_commit(b), 0);
    atomic_fetch_add(&s.committed, 1);
  }
  atomic_store(&s.stop, 1);
  for (int i = 0; i < 3; i++)
    assert_int_equal(pthread_join(r[i], NULL), 0);
  assert_int_equal(atomic_load(&s.errors), 0);
  assert_int_equal(atomic_load(&s.torn), 0);
  assert_true(atomic_load(&s.reads) > 0);
  assert_rc(mapkv_stat(s.db, &st), 0);
  assert_int_equal(st.records, GROUP);
  assert_int_equal(st.last_seq, (uint64_t)BATCHES * (GROUP + 1));
  assert_rc(mapkv_close(s.db), 0);
}

/* ---- deletions move index entries under readers -------------------------- */

#define POOL   256 /* key names, reused cyclically */
#define WINDOW 96  /* keys present at a time */
#define SLIDES 60000
#define HOME_BITS                                                              \
  12 /* every key name has the same home in a table of up to                   \
        2^HOME_BITS slots: one long probe run */

/* Key ids lo..hi-1 are present; id maps to name pool[id % POOL] with a
 * value of version id + 1. The writer slides the window: it inserts at hi
 * (at the end of the probe run) and deletes at lo (at its start), so every
 * deletion shifts the whole run back while readers probe it. lo is
 * announced before the deletions and hi published after the inserts. */
typedef struct slide_shared {
  mapkv_t *db;
  char keys[POOL][24];
  size_t klen[POOL];
  atomic_ulong lo, hi;
  atomic_int stop;
  atomic_uint errors, reads, scans;
} slide_shared;

/* Key names whose index hashes agree in their top HOME_BITS bits. */
static void colliding_keys(slide_shared *s) {
  unsigned n = 0;
  for (unsigned c = 0; n < POOL; c++) {
    char k[24];
    size_t kl = (size_t)snprintf(k, sizeof k, "k%u", c);
    if (mapkv__index_hash(k, kl) >> (64 - HOME_BITS) != 0)
      continue;
    memcpy(s->keys[n], k, kl);
    s->klen[n++] = kl;
  }
}

/* A get of a key that was present throughout must find it (a lookup that
 * raced with a shift retries); a cursor must return every key present
 * throughout its scan, once, with its right value. */
static void *slide_reader(void *p) {
  slide_shared *s = p;
  uint64_t seed = (uint64_t)(uintptr_t)&seed;
  unsigned round = 0;
  do {
    unsigned long lo = atomic_load(&s->lo), hi = atomic_load(&s->hi), id;
    uint8_t buf[VMAX];
    size_t len = 0;
    uint32_t ver = 0;
    int rc, ex;
    if (hi <= lo)
      continue;
    id = lo + rnd(&seed) % (hi - lo);
    rc = mapkv_get(s->db, s->keys[id % POOL], s->klen[id % POOL], buf,
                   sizeof buf, &len);
    ex = mapkv_exists(s->db, s->keys[id % POOL], s->klen[id % POOL]);
    if (id < atomic_load(&s->lo))
      continue; /* deleted meanwhile: nothing to check */
    if (rc != 0 || ex != 1 || check_val(buf, len, id % POOL, &ver) != 0 ||
        ver != id + 1)
      atomic_fetch_add(&s->errors, 1);
    atomic_fetch_add(&s->reads, 1);
    if (++round % 512 == 0) {
      unsigned char seen[POOL] = {0};
      mapkv_cursor_t *c = NULL;
      const void *k, *v;
      size_t kl, vl;
      unsigned long chi = atomic_load(&s->hi), clo;
      if (mapkv_cursor_open(s->db, NULL, 0, &c) != 0) {
        atomic_fetch_add(&s->errors, 1);
        continue;
      }
      while ((rc = mapkv_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
        unsigned i = 0;
        while (i < POOL && (kl != s->klen[i] || memcmp(k, s->keys[i], kl)))
          i++;
        if (i == POOL || seen[i]++ || check_val(v, vl, i, &ver) != 0 ||
            ver % POOL != (i + 1) % POOL)
          atomic_fetch_add(&s->errors, 1);
      }
      mapkv_cursor_close(c);
      clo = atomic_load(&s->lo);
      if (rc != MAPKV_NOTFOUND)
        atomic_fetch_add(&s->errors, 1);
      for (unsigned long i = clo; i < chi; i++)
        if (!seen[i % POOL])
          atomic_fetch_add(&s->errors, 1);
      atomic_fetch_add(&s->scans, 1);
    }
  } while (!atomic_load(&s->stop));
  return NULL;
}

static int slide_put(slide_shared *s, mapkv_batch_t *b, unsigned long id) {
  uint8_t v[VMAX];
  size_t vl = val_of(v, (unsigned)(id % POOL), (uint32_t)(id + 1));
  const char *k = s->keys[id % POOL];
  size_t kl = s->klen[id % POOL];
  return b ? mapkv_batch_put(b, k, kl, v, vl) : mapkv_put(s->db, k, kl, v, vl);
}

static int slide_del(slide_shared *s, mapkv_batch_t *b, unsigned long id) {
  const char *k = s->keys[id % POOL];
  size_t kl = s->klen[id % POOL];
  return b ? mapkv_batch_del(b, k, kl) : mapkv_del(s->db, k, kl);
}

/* Lets readers run in the middle of index changes now and then. */
static unsigned pauses;
static void pause_writer(void) {
  if (++pauses % 8 == 0)
    sched_yield();
}

static void test_deletes_under_readers(void **state) {
  slide_shared *s = calloc(1, sizeof *s);
  pthread_t r[2];
  mapkv_stats st;
  unsigned long lo = 0, hi = 0;
  (void)state;

  assert_non_null(s);
  colliding_keys(s);
  s->db = open_store(MAPKV_SYNC_NONE);
  for (; hi < WINDOW; hi++)
    assert_rc(slide_put(s, NULL, hi), 0);
  atomic_store(&s->hi, hi);
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&r[i], NULL, slide_reader, s), 0);
  mapkv__test_pause = pause_writer;
  for (unsigned step = 0; step < SLIDES; step++) {
    if (step % 2 == 0) { /* single operations */
      assert_rc(slide_put(s, NULL, hi), 0);
      atomic_store(&s->hi, ++hi);
      atomic_store(&s->lo, lo + 1);
      assert_rc(slide_del(s, NULL, lo++), 0);
    } else { /* a batch that slides by 4 */
      mapkv_batch_t *b = NULL;
      assert_rc(mapkv_batch_begin(s->db, &b), 0);
      atomic_store(&s->lo, lo + 4);
      for (int i = 0; i < 4; i++) {
        assert_rc(slide_del(s, b, lo++), 0);
        assert_rc(slide_put(s, b, hi++), 0);
      }
      assert_rc(mapkv_batch_commit(b), 0);
      atomic_store(&s->hi, hi);
    }
  }
  mapkv__test_pause = NULL;
  atomic_store(&s->stop, 1);
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_join(r[i], NULL), 0);
  assert_int_equal(atomic_load(&s->errors), 0);
  assert_true(atomic_load(&s->reads) > 0);
  assert_true(atomic_load(&s->scans) > 0);
  assert_rc(mapkv_stat(s->db, &st), 0);
  assert_int_equal(st.records, WINDOW);
  assert_true(st.index_slots <= (1u << HOME_BITS));
  assert_rc(mapkv_close(s->db), 0);
  free(s);
}

/* ---- a group of durable commits ----------------------------------------- */

/* Durable commits that queue while one is being flushed are written
 * together: the test holds the first commit in its flush until every other
 * thread has joined the queue, one at a time (mapkv__test_queued says
 * when), so that the group and its order are known. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t qlen;
  int hold;
  unsigned flushes;
} gq = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void gq_queued(size_t qlen) {
  pthread_mutex_lock(&gq.mu);
  gq.qlen = qlen;
  pthread_cond_broadcast(&gq.cv);
  pthread_mutex_unlock(&gq.mu);
}

static void gq_flush(void *ctx, int64_t off, int64_t len) {
  (void)ctx;
  (void)off;
  (void)len;
  pthread_mutex_lock(&gq.mu);
  gq.flushes++;
  pthread_cond_broadcast(&gq.cv);
  while (gq.hold)
    pthread_cond_wait(&gq.cv, &gq.mu);
  pthread_mutex_unlock(&gq.mu);
}

typedef struct gop {
  char kind; /* 'p' put, 'd' delete, 'b' batch: put key, delete key2 */
  const char *key, *val, *key2;
  int want;
  mapkv_t *db;
  int rc;
  char msg[128];
} gop;

static void *gop_run(void *arg) {
  gop *g = arg;
  mapkv_batch_t *b;
  if (g->kind == 'p') {
    g->rc = mapkv_put(g->db, g->key, strlen(g->key), g->val, strlen(g->val));
  } else if (g->kind == 'd') {
    g->rc = mapkv_del(g->db, g->key, strlen(g->key));
  } else if ((g->rc = mapkv_batch_begin(g->db, &b)) == 0) {
    g->rc = mapkv_batch_put(b, g->key, strlen(g->key), g->val, strlen(g->val));
    if (g->rc == 0)
      g->rc = mapkv_batch_del(b, g->key2, strlen(g->key2));
    if (g->rc == 0)
      g->rc = mapkv_batch_commit(b);
    else
      mapkv_batch_abort(b);
  }
  snprintf(g->msg, sizeof g->msg, "%s", g->rc != 0 ? mapkv_errmsg() : "");
  return NULL;
}

static void want_value(mapkv_t *db, const char *key, const char *val) {
  char buf[64];
  size_t len = 0;
  int rc = mapkv_get(db, key, strlen(key), buf, sizeof buf, &len);
  if (val == NULL) {
    assert_rc(rc, MAPKV_NOTFOUND);
    return;
  }
  assert_rc(rc, 0);
  assert_int_equal(len, strlen(val));
  assert_memory_equal(buf, val, len);
}

static void test_group_of_durable_commits(void **state) {
  gop first = {'p', "z", "zz", NULL, 0, NULL, 0, ""};
  /* in queue order: each sees the ones before it */
  gop ops[] = {
      {'d', "b", NULL, NULL, MAPKV_NOTFOUND, NULL, 0, ""}, /* absent */
      {'p', "b", "b2", NULL, 0, NULL, 0, ""},
      {'d', "b", NULL, NULL, 0, NULL, 0, ""}, /* put by the group */
      {'d', "b", NULL, NULL, MAPKV_NOTFOUND, NULL, 0, ""}, /* deleted by it */
      {'d', "a", NULL, NULL, 0, NULL, 0, ""},              /* in the store */
      {'b', "a", "a6", "c", 0, NULL, 0, ""},
      {'p', "c", "c7", NULL, 0, NULL, 0, ""},
      {'d', "a", NULL, NULL, 0, NULL, 0, ""},
      {'p', "b", "b9", NULL, 0, NULL, 0, ""},
      {'d', "c", NULL, NULL, 0, NULL, 0, ""},
  };
  enum { N = sizeof ops / sizeof ops[0] };
  pthread_t lead, t[N];
  mapkv_options o;
  mapkv_stats st;
  mapkv_t *db = NULL;
  char copy[300];
  (void)state;

  mapkv_options_init(&o);
  o.flags = MAPKV_CREATE;
  o.sync_mode = MAPKV_SYNC_COMMIT;
  o.flush_hook = gq_flush;
  assert_rc(mapkv_open(path, &o, &db), 0);
  assert_rc(mapkv_put(db, "a", 1, "a0", 2), 0);
  assert_rc(mapkv_stat(db, &st), 0);

  mapkv__test_queued = gq_queued;
  pthread_mutex_lock(&gq.mu);
  gq.hold = 1;
  gq.flushes = 0;
  pthread_mutex_unlock(&gq.mu);
  first.db = db;
  assert_int_equal(pthread_create(&lead, NULL, gop_run, &first), 0);
  pthread_mutex_lock(&gq.mu);
  while (gq.flushes == 0) /* the first commit is in its flush */
    pthread_cond_wait(&gq.cv, &gq.mu);
  pthread_mutex_unlock(&gq.mu);
  for (size_t i = 0; i < N; i++) {
    ops[i].db = db;
    assert_int_equal(pthread_create(&t[i], NULL, gop_run, &ops[i]), 0);
    pthread_mutex_lock(&gq.mu);
    while (gq.qlen < i + 2) /* the first commit is still queued */
      pthread_cond_wait(&gq.cv, &gq.mu);
    pthread_mutex_unlock(&gq.mu);
  }
  pthread_mutex_lock(&gq.mu);
  gq.hold = 0;
  pthread_cond_broadcast(&gq.cv);
  pthread_mutex_unlock(&gq.mu);
  assert_int_equal(pthread_join(lead, NULL), 0);
  for (size_t i = 0; i < N; i++)
    assert_int_equal(pthread_join(t[i], NULL), 0);
  mapkv__test_queued = NULL;

  assert_rc(first.rc, 0);
  for (size_t i = 0; i < N; i++) {
    if (ops[i].rc != ops[i].want)
      fail_msg("commit %zu of the group: %d (%s), want %d", i, ops[i].rc,
               ops[i].msg, ops[i].want);
    /* the message of a failure reaches the thread that made the call, the
     * one that wrote for the group or another */
    if (ops[i].want == MAPKV_NOTFOUND &&
        strstr(ops[i].msg, "not found") == NULL)
      fail_msg("commit %zu: message \"%s\"", i, ops[i].msg);
  }
  /* one flush for the first commit, one for all the others */
  assert_int_equal(gq.flushes, 2);

  for (int pass = 0; pass < 2; pass++) {
    want_value(db, "a", NULL);
    want_value(db, "b", "b9");
    want_value(db, "c", NULL);
    want_value(db, "z", "zz");
    assert_rc(mapkv_stat(db, &st), 0);
    assert_int_equal(st.records, 2);
    assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);
    /* and the same after a crash: no clean close, a new handle recovers */
    if (pass == 0) {
      mapkv_t *db2 = NULL;
      size_t len = 0;
      uint8_t *img = tu_slurp(path, &len);
      assert_non_null(img);
      snprintf(copy, sizeof copy, "%s.crash", path);
      close(tu_file_with(copy, img, len));
      free(img);
      assert_rc(mapkv_close(db), 0);
      mapkv_options_init(&o);
      assert_rc(mapkv_open(copy, &o, &db2), 0);
      assert_rc(mapkv_stat(db2, &st), 0);
      assert_int_equal(st.damaged_regions, 0);
      assert_int_equal(st.dropped_tail_bytes, 0);
      db = db2;
    }
  }
  assert_rc(mapkv_close(db), 0);
  unlink(copy);
}

int main(void) {
  /* MAPKV_TEST_FILTER=pattern runs only the matching tests. */
  if (getenv("MAPKV_TEST_FILTER") != NULL)
    cmocka_set_test_filter(getenv("MAPKV_TEST_FILTER"));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_readers_writer_compactor, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_two_writers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_durable_writers_compactor, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_batch_visibility_under_readers,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_deletes_under_readers, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_group_of_durable_commits, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
