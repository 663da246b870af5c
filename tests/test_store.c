/*
 * test_store.c — the storage engine through its public API (mapkv.h):
 * open/create/close round trips, single operations, size limits, options,
 * batches, cursors, figures, growth, verification, compaction, read-only
 * handles, files that are not (intact) stores, fault injection (full disk,
 * failing msync, a failing mapping core, out of memory), and the error
 * codes and messages.
 *
 * Faults are injected through the engine's system-call table (store/os.h)
 * and the mapping core's (mmf/mmf_sys.h); teardown restores both.
 * Multi-threaded behaviour is in test_concurrency.c, two processes in
 * test_lock.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mapkv/mapkv.h"
#include "mmf/mmf_sys.h"
#include "store/format.h"
#include "store/os.h"
#include "testutil.h"

/* The out-of-memory test lowers RLIMIT_AS in a child process; under
 * AddressSanitizer a failed allocation must then return NULL (as malloc
 * does) instead of aborting the child. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "allocator_may_return_null=1";
}

/* ---- fixture: what a test creates is released in teardown ---------------- */

#define FX_PATHS  16
#define FX_DBS    16
#define REC(k, v) (30u + (uint64_t)(k) + (uint64_t)(v)) /* record bytes */
#define HDR       4096u

static struct {
  char paths[FX_PATHS][256];
  int npaths;
  mapkv_t *dbs[FX_DBS];
} fx;

static mapkv_t *const SENTINEL = (mapkv_t *)&fx;

static int setup(void **state) {
  (void)state;
  memset(&fx, 0, sizeof fx);
  mapkv__os_reset();
  mmf__sys_reset();
  return 0;
}

static void unlink_with_suffix(const char *path, const char *suffix) {
  char buf[300];
  snprintf(buf, sizeof buf, "%s%s", path, suffix);
  unlink(buf);
}

static int teardown(void **state) {
  (void)state;
  mapkv__os_reset();
  mmf__sys_reset();
  for (int i = 0; i < FX_DBS; i++) {
    if (fx.dbs[i] != NULL)
      mapkv_close(fx.dbs[i]);
    fx.dbs[i] = NULL;
  }
  for (int i = 0; i < fx.npaths; i++) {
    unlink(fx.paths[i]);
    unlink_with_suffix(fx.paths[i], ".compact");
    unlink_with_suffix(fx.paths[i], ".creating");
  }
  return 0;
}

/* A fresh scratch path, removed (with its .compact/.creating) in teardown. */
static const char *fx_path(const char *tag) {
  assert_true(fx.npaths < FX_PATHS);
  tu_path(fx.paths[fx.npaths], sizeof fx.paths[0], tag);
  return fx.paths[fx.npaths++];
}

static void track(mapkv_t *db) {
  for (int i = 0; i < FX_DBS; i++) {
    if (fx.dbs[i] == NULL) {
      fx.dbs[i] = db;
      return;
    }
  }
  fail_msg("too many open handles in one test");
}

static void untrack(mapkv_t *db) {
  for (int i = 0; i < FX_DBS; i++)
    if (fx.dbs[i] == db)
      fx.dbs[i] = NULL;
}

/* Fails the test with both codes' names and the last message. */
#define assert_rc(expr, want)                                                  \
  do {                                                                         \
    int rc_ = (expr), want_ = (want);                                          \
    if (rc_ != want_)                                                          \
      fail_msg("%s: got %d (%s; \"%s\"), want %d (%s)", #expr, rc_,            \
               mapkv_strerror(rc_), mapkv_errmsg(), want_,                     \
               mapkv_strerror(want_));                                         \
  } while (0)

static mapkv_options opts_with(unsigned flags) {
  mapkv_options o;
  mapkv_options_init(&o);
  o.flags = flags;
  return o;
}

static mapkv_t *open_opts(const char *path, const mapkv_options *o) {
  mapkv_t *db = NULL;
  assert_rc(mapkv_open(path, o, &db), 0);
  assert_non_null(db);
  track(db);
  return db;
}

/* Opens (creating) with the default options. */
static mapkv_t *open_new(const char *path) {
  mapkv_options o = opts_with(MAPKV_CREATE);
  return open_opts(path, &o);
}

static mapkv_t *open_rdonly(const char *path) {
  mapkv_options o = opts_with(MAPKV_RDONLY);
  return open_opts(path, &o);
}

static void close_ok(mapkv_t *db) {
  untrack(db);
  assert_rc(mapkv_close(db), 0);
}

/* Deterministic bytes for a value: key number and version. */
static void fill_val(uint8_t *buf, size_t len, uint64_t seed) {
  uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull | 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = (uint8_t)(x >> 24);
  }
}

static size_t mkkey(char *buf, size_t cap, const char *pfx, unsigned i) {
  int n = snprintf(buf, cap, "%s%08u", pfx, i);
  assert_true(n > 0 && (size_t)n < cap);
  return (size_t)n;
}

static void put_str(mapkv_t *db, const char *k, const char *v) {
  assert_rc(mapkv_put(db, k, strlen(k), v, strlen(v)), 0);
}

/* Asserts that key k holds exactly the len bytes at want. */
static void expect_val(mapkv_t *db, const void *k, size_t klen,
                       const void *want, size_t len) {
  uint8_t *buf = malloc(len + 1);
  size_t got = (size_t)-1;
  const void *view = NULL;
  size_t vlen = (size_t)-1;
  assert_non_null(buf);
  assert_rc(mapkv_get(db, k, klen, buf, len + 1, &got), 0);
  assert_int_equal(got, len);
  assert_memory_equal(buf, want, len);
  free(buf);
  assert_rc(mapkv_get_view(db, k, klen, &view, &vlen), 0);
  assert_int_equal(vlen, len);
  if (len > 0)
    assert_memory_equal(view, want, len);
  assert_int_equal(mapkv_exists(db, k, klen), 1);
}

static void expect_str(mapkv_t *db, const char *k, const char *v) {
  expect_val(db, k, strlen(k), v, strlen(v));
}

static void expect_missing(mapkv_t *db, const void *k, size_t klen) {
  uint8_t buf[8];
  size_t vlen = 12345;
  const void *view = SENTINEL;
  assert_rc(mapkv_get(db, k, klen, buf, sizeof buf, &vlen), MAPKV_NOTFOUND);
  assert_int_equal(vlen, 12345); /* outputs only on success */
  assert_rc(mapkv_get_view(db, k, klen, &view, &vlen), MAPKV_NOTFOUND);
  assert_ptr_equal(view, SENTINEL);
  assert_int_equal(mapkv_exists(db, k, klen), 0);
}

static mapkv_stats stat_of(mapkv_t *db) {
  mapkv_stats st;
  memset(&st, 0xEE, sizeof st);
  assert_rc(mapkv_stat(db, &st), 0);
  return st;
}

/* Whole-file snapshots, for "the file is unchanged" checks. */
typedef struct snap {
  uint8_t *bytes;
  size_t len;
} snap;

static snap snap_take(const char *path) {
  snap s;
  s.bytes = tu_slurp(path, &s.len);
  return s;
}

/* Asserts that the file holds exactly the snapshot's bytes; frees it. */
static void snap_expect_same(const char *path, snap s) {
  size_t len;
  uint8_t *now = tu_slurp(path, &len);
  int same = len == s.len && memcmp(now, s.bytes, len) == 0;
  size_t first = 0;
  if (!same && len == s.len)
    while (first < len && now[first] == s.bytes[first])
      first++;
  free(now);
  free(s.bytes);
  if (!same)
    fail_msg("%s changed: %zu bytes before, %zu after, first difference at "
             "%zu",
             path, s.len, len, first);
}

static void write_file(const char *path, const void *data, size_t len) {
  int fd = tu_file_with(path, data, len);
  close(fd);
}

/* A copy of the file as it is now: what a crash would leave. */
static void copy_file(const char *from, const char *to) {
  size_t len;
  uint8_t *b = tu_slurp(from, &len);
  write_file(to, b, len);
  free(b);
}

static int file_exists(const char *path) { return tu_file_size(path) >= 0; }

/* The stats that must hold whatever happened: dead + live = the log. */
static void expect_consistent(const mapkv_stats *st, const char *path) {
  assert_int_equal(st->format_version, MAPKV_FORMAT_VERSION);
  assert_int_equal(st->live_bytes + st->dead_bytes, st->data_end - HDR);
  assert_true(st->data_end >= HDR);
  assert_true(st->data_end <= st->file_size);
  assert_int_equal(st->mapped_size, st->file_size);
  assert_true(st->reserved_size >= st->file_size);
  assert_true(st->index_slots >= st->records);
  assert_int_equal(st->index_slots & (st->index_slots - 1), 0);
  /* A slot and a control byte per slot. */
  assert_int_equal(st->index_bytes, st->index_slots * 9);
  if (path != NULL)
    assert_int_equal(st->file_size, (uint64_t)tu_file_size(path));
}

/* ---- open, create, close ------------------------------------------------- */

static void test_create_close_reopen(void **state) {
  const char *path = fx_path("store-create");
  mapkv_options o = opts_with(0);
  mapkv_t *db = SENTINEL;
  mapkv_stats st;
  (void)state;

  /* Without MAPKV_CREATE a missing store is an error and nothing appears. */
  assert_rc(mapkv_open(path, &o, &db), -ENOENT);
  assert_ptr_equal(db, SENTINEL);
  assert_false(file_exists(path));
  assert_non_null(strstr(mapkv_errmsg(), path));

  db = open_new(path);
  assert_true(file_exists(path));
  st = stat_of(db);
  expect_consistent(&st, path);
  assert_int_equal(st.records, 0);
  assert_int_equal(st.live_bytes, 0);
  assert_int_equal(st.dead_bytes, 0);
  assert_int_equal(st.data_end, HDR);
  assert_int_equal(st.last_seq, 0);
  assert_int_equal(st.generation, 0);
  assert_int_equal(st.recovered_batches, 0);
  assert_int_equal(st.dropped_tail_bytes, 0);
  assert_int_equal(st.damaged_regions, 0);
  put_str(db, "alpha", "one");
  put_str(db, "beta", "two");
  close_ok(db);
  assert_rc(mapkv_close(NULL), 0);

  /* No leftovers of the creation. */
  {
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.creating", path);
    assert_false(file_exists(tmp));
  }

  /* Reopen without CREATE, and with NULL options (the defaults). */
  db = open_opts(path, &o);
  expect_str(db, "alpha", "one");
  expect_str(db, "beta", "two");
  st = stat_of(db);
  assert_int_equal(st.records, 2);
  assert_int_equal(st.clean_open, 1);
  assert_int_equal(st.recovered_batches, 2);
  close_ok(db);

  db = NULL;
  assert_rc(mapkv_open(path, NULL, &db), 0);
  track(db);
  expect_str(db, "alpha", "one");
  put_str(db, "gamma", "three");
  close_ok(db);

  /* CREATE on an existing store opens it, keeping the data. */
  db = open_new(path);
  expect_str(db, "alpha", "one");
  expect_str(db, "gamma", "three");
  assert_int_equal(stat_of(db).records, 3);
  close_ok(db);
}

static void test_create_in_missing_directory(void **state) {
  char path[300];
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db = SENTINEL;
  (void)state;
  snprintf(path, sizeof path, "%s/no/such/dir/store", fx_path("nodir"));
  assert_rc(mapkv_open(path, &o, &db), -ENOENT);
  assert_ptr_equal(db, SENTINEL);
}

/* ---- single operations --------------------------------------------------- */

static void test_put_get_del_exists(void **state) {
  const char *path = fx_path("store-basic");
  mapkv_t *db = open_new(path);
  uint8_t buf[64];
  size_t vlen = 0;
  (void)state;

  expect_missing(db, "k", 1);
  put_str(db, "k", "value-1");
  expect_str(db, "k", "value-1");
  assert_rc(mapkv_get(db, "k", 1, buf, sizeof buf, NULL), 0); /* vlen NULL */
  assert_memory_equal(buf, "value-1", 7);

  /* Overwrite: shorter, then longer. */
  put_str(db, "k", "v2");
  expect_str(db, "k", "v2");
  put_str(db, "k", "a much longer third value");
  expect_str(db, "k", "a much longer third value");
  assert_int_equal(stat_of(db).records, 1);

  /* Keys are compared bytewise over their exact length. */
  put_str(db, "kk", "other");
  assert_rc(mapkv_put(db, "k\0", 2, "nul", 3), 0);
  expect_str(db, "k", "a much longer third value");
  expect_str(db, "kk", "other");
  expect_val(db, "k\0", 2, "nul", 3);
  assert_int_equal(stat_of(db).records, 3);

  /* Binary values with zero bytes. */
  {
    uint8_t v[300];
    fill_val(v, sizeof v, 7);
    v[0] = 0;
    v[299] = 0;
    assert_rc(mapkv_put(db, "bin", 3, v, sizeof v), 0);
    expect_val(db, "bin", 3, v, sizeof v);
  }

  /* Delete, then the key is gone and can come back. */
  assert_rc(mapkv_del(db, "k", 1), 0);
  expect_missing(db, "k", 1);
  assert_rc(mapkv_del(db, "k", 1), MAPKV_NOTFOUND);
  expect_str(db, "kk", "other");
  put_str(db, "k", "back");
  expect_str(db, "k", "back");
  assert_rc(mapkv_get(db, "k", 1, buf, sizeof buf, &vlen), 0);
  assert_int_equal(vlen, 4);

  close_ok(db);
  db = open_new(path);
  expect_str(db, "k", "back");
  expect_str(db, "kk", "other");
  expect_val(db, "k\0", 2, "nul", 3);
  assert_int_equal(stat_of(db).records, 4);
  close_ok(db);
}

static void test_empty_key_and_value(void **state) {
  const char *path = fx_path("store-empty");
  mapkv_t *db = open_new(path);
  const void *view = NULL;
  const void *k = NULL, *v = NULL;
  size_t vlen = 99, klen = 99;
  mapkv_cursor_t *c = NULL;
  mapkv_batch_t *b = NULL;
  (void)state;

  /* The empty key. */
  assert_rc(mapkv_put(db, "", 0, "for-empty-key", 13), 0);
  expect_val(db, "", 0, "for-empty-key", 13);
  expect_missing(db, "\0", 1);

  /* An empty value, given as "" or NULL, is a present key. */
  assert_rc(mapkv_put(db, "e1", 2, "", 0), 0);
  assert_rc(mapkv_put(db, "e2", 2, NULL, 0), 0);
  expect_val(db, "e1", 2, "", 0);
  expect_val(db, "e2", 2, "", 0);
  assert_rc(mapkv_get(db, "e1", 2, NULL, 0, &vlen), 0);
  assert_int_equal(vlen, 0);
  assert_rc(mapkv_get_view(db, "e2", 2, &view, &vlen), 0);
  assert_int_equal(vlen, 0);
  assert_non_null(view);

  /* Both empty. */
  assert_rc(mapkv_put(db, "", 0, "", 0), 0);
  expect_val(db, "", 0, "", 0);
  assert_int_equal(stat_of(db).records, 3);
  assert_int_equal(stat_of(db).live_bytes, REC(0, 0) + 2 * REC(2, 0));

  /* In a batch. */
  assert_rc(mapkv_batch_begin(db, &b), 0);
  assert_rc(mapkv_batch_put(b, "e3", 2, NULL, 0), 0);
  assert_rc(mapkv_batch_put(b, "e4", 2, "", 0), 0);
  assert_rc(mapkv_batch_commit(b), 0);
  expect_val(db, "e3", 2, "", 0);
  expect_val(db, "e4", 2, "", 0);
  assert_rc(mapkv_del(db, "e4", 2), 0);

  /* The cursor reports the empty key. */
  assert_rc(mapkv_cursor_open(db, "", 0, &c), 0);
  {
    int seen_empty = 0, n = 0, rc;
    while ((rc = mapkv_cursor_next(c, &k, &klen, &v, &vlen)) == 0) {
      n++;
      assert_int_equal(vlen, 0);
      if (klen == 0)
        seen_empty++;
    }
    assert_rc(rc, MAPKV_NOTFOUND);
    assert_int_equal(n, 4);
    assert_int_equal(seen_empty, 1);
  }
  mapkv_cursor_close(c);

  close_ok(db);
  db = open_new(path);
  expect_val(db, "", 0, "", 0);
  expect_val(db, "e1", 2, "", 0);
  expect_val(db, "e2", 2, "", 0);
  expect_val(db, "e3", 2, "", 0);
  assert_rc(mapkv_del(db, "", 0), 0);
  expect_missing(db, "", 0);
  assert_rc(mapkv_del(db, "", 0), MAPKV_NOTFOUND);
  close_ok(db);
}

/* mapkv.h allows a NULL key or value with length 0 (only "NULL pointer with
 * nonzero length" is MAPKV_EINVAL): it is the empty key. Run in a child
 * process, so that a sanitizer aborting on undefined behaviour fails this
 * test only; the child reports the first failed check as its exit code. */
static int null_pointer_ops(const char *path) {
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db = NULL;
  mapkv_batch_t *b = NULL;
  uint8_t buf[16];
  size_t n = 0;
  int step = 9; /* exit codes from 10: a sanitizer exits with 1 */
#define CHECK(cond)                                                            \
  do {                                                                         \
    step++;                                                                    \
    if (!(cond))                                                               \
      return step;                                                             \
  } while (0)
  CHECK(mapkv_open(path, &o, &db) == 0);
  CHECK(mapkv_put(db, NULL, 0, "for-empty-key", 13) == 0);
  CHECK(mapkv_get(db, "", 0, buf, sizeof buf, &n) == 0 && n == 13);
  CHECK(mapkv_get(db, NULL, 0, buf, sizeof buf, &n) == 0 && n == 13);
  CHECK(memcmp(buf, "for-empty-key", 13) == 0);
  CHECK(mapkv_exists(db, NULL, 0) == 1);
  CHECK(mapkv_put(db, NULL, 0, NULL, 0) == 0);
  CHECK(mapkv_get(db, NULL, 0, NULL, 0, &n) == 0 && n == 0);
  CHECK(mapkv_del(db, NULL, 0) == 0);
  CHECK(mapkv_get(db, NULL, 0, buf, sizeof buf, &n) == MAPKV_NOTFOUND);
  CHECK(mapkv_del(db, NULL, 0) == MAPKV_NOTFOUND);
  /* A batch whose operations carry no bytes at all. */
  CHECK(mapkv_batch_begin(db, &b) == 0);
  CHECK(mapkv_batch_put(b, NULL, 0, NULL, 0) == 0);
  CHECK(mapkv_batch_del(b, NULL, 0) == 0);
  CHECK(mapkv_batch_put(b, NULL, 0, NULL, 0) == 0);
  CHECK(mapkv_batch_commit(b) == 0);
  CHECK(mapkv_get(db, "", 0, NULL, 0, &n) == 0 && n == 0);
  CHECK(mapkv_close(db) == 0);
#undef CHECK
  return 0;
}

static void test_null_pointer_zero_length(void **state) {
  const char *path = fx_path("store-nullkey");
  int status = 0;
  pid_t pid;
  (void)state;
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(null_pointer_ops(path));
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (WIFSIGNALED(status))
    fail_msg("the child died of signal %d", WTERMSIG(status));
  if (WEXITSTATUS(status) != 0)
    fail_msg("the child exited with %d: a failed check, or a sanitizer's "
             "report above",
             WEXITSTATUS(status));
}

/* ---- limits -------------------------------------------------------------- */

static void test_default_size_limits(void **state) {
  const char *path = fx_path("store-limits");
  mapkv_t *db = open_new(path);
  size_t vmax = MAPKV_DEFAULT_VALUE_MAX;
  uint8_t *key = malloc(MAPKV_DEFAULT_KEY_MAX + 1);
  uint8_t *val = malloc(vmax + 1);
  mapkv_batch_t *b = NULL;
  mapkv_stats before;
  snap s;
  (void)state;

  assert_non_null(key);
  assert_non_null(val);
  fill_val(key, MAPKV_DEFAULT_KEY_MAX + 1, 1);
  fill_val(val, vmax + 1, 2);
  put_str(db, "small", "x");

  /* One byte over: rejected with nothing written. */
  before = stat_of(db);
  s = snap_take(path);
  assert_rc(mapkv_put(db, key, MAPKV_DEFAULT_KEY_MAX + 1, "v", 1),
            MAPKV_EKEYSIZE);
  assert_non_null(strstr(mapkv_errmsg(), "4097"));
  assert_rc(mapkv_put(db, "k", 1, val, vmax + 1), MAPKV_EVALSIZE);
  assert_rc(mapkv_del(db, key, MAPKV_DEFAULT_KEY_MAX + 1), MAPKV_EKEYSIZE);
  assert_rc(mapkv_batch_begin(db, &b), 0);
  assert_rc(mapkv_batch_put(b, key, MAPKV_DEFAULT_KEY_MAX + 1, "v", 1),
            MAPKV_EKEYSIZE);
  assert_rc(mapkv_batch_put(b, "k", 1, val, vmax + 1), MAPKV_EVALSIZE);
  assert_rc(mapkv_batch_del(b, key, MAPKV_DEFAULT_KEY_MAX + 1), MAPKV_EKEYSIZE);
  assert_rc(mapkv_batch_commit(b), 0); /* nothing was added: empty */
  snap_expect_same(path, s);
  assert_int_equal(stat_of(db).data_end, before.data_end);
  assert_int_equal(stat_of(db).last_seq, before.last_seq);
  expect_missing(db, "k", 1);

  /* Exactly at the limits: accepted. */
  assert_rc(mapkv_put(db, key, MAPKV_DEFAULT_KEY_MAX, "kv", 2), 0);
  expect_val(db, key, MAPKV_DEFAULT_KEY_MAX, "kv", 2);
  assert_rc(mapkv_put(db, "big", 3, val, vmax), 0);
  expect_val(db, "big", 3, val, vmax);
  assert_int_equal(stat_of(db).live_bytes,
                   REC(5, 1) + REC(MAPKV_DEFAULT_KEY_MAX, 2) + REC(3, vmax));
  close_ok(db);

  db = open_new(path);
  expect_val(db, key, MAPKV_DEFAULT_KEY_MAX, "kv", 2);
  expect_val(db, "big", 3, val, vmax);
  close_ok(db);
  free(key);
  free(val);
}

static void test_custom_limits(void **state) {
  const char *path = fx_path("store-custom");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  uint8_t key[MAPKV_KEY_MAX + 1], val[101];
  snap s;
  (void)state;

  memset(key, 'k', sizeof key);
  memset(val, 'v', sizeof val);
  o.max_key_size = 16;
  o.max_value_size = 100;
  db = open_opts(path, &o);
  assert_rc(mapkv_put(db, key, 16, val, 100), 0);
  s = snap_take(path);
  assert_rc(mapkv_put(db, key, 17, val, 1), MAPKV_EKEYSIZE);
  assert_non_null(strstr(mapkv_errmsg(), "16"));
  assert_rc(mapkv_put(db, key, 1, val, 101), MAPKV_EVALSIZE);
  assert_non_null(strstr(mapkv_errmsg(), "100"));
  assert_rc(mapkv_del(db, key, 17), MAPKV_EKEYSIZE);
  snap_expect_same(path, s);
  expect_val(db, key, 16, val, 100);
  close_ok(db);

  /* Limits belong to the store: a handle opened with the defaults (0)
   * enforces the store's, and one asking for more gets the store's. */
  db = open_new(path);
  assert_int_equal(stat_of(db).max_key_size, 16);
  assert_int_equal(stat_of(db).max_value_size, 100);
  expect_val(db, key, 16, val, 100);
  assert_rc(mapkv_put(db, key, 17, val, 1), MAPKV_EKEYSIZE);
  assert_rc(mapkv_put(db, key, 1, val, 101), MAPKV_EVALSIZE);
  close_ok(db);
  o.flags = 0;
  o.max_key_size = MAPKV_KEY_MAX;
  o.max_value_size = MAPKV_VALUE_MAX;
  db = open_opts(path, &o);
  assert_int_equal(stat_of(db).max_key_size, 16);
  assert_rc(mapkv_put(db, key, 17, val, 1), MAPKV_EKEYSIZE);
  close_ok(db);
  /* ... and one asking for less gets less, for this handle only. */
  o.max_key_size = 8;
  o.max_value_size = 0;
  db = open_opts(path, &o);
  assert_int_equal(stat_of(db).max_key_size, 8);
  assert_int_equal(stat_of(db).max_value_size, 100);
  assert_rc(mapkv_put(db, key, 9, val, 1), MAPKV_EKEYSIZE);
  expect_val(db, key, 16, val, 100); /* reads are not limited */
  close_ok(db);
  db = open_new(path);
  assert_int_equal(stat_of(db).max_key_size, 16);
  close_ok(db);

  /* The format's hard key limit can be a store's limit; a handle with the
   * defaults then takes keys of any size the format allows (a key the
   * tool wrote can be deleted by an application). */
  unlink(path);
  o.flags = MAPKV_CREATE;
  o.max_key_size = MAPKV_KEY_MAX;
  o.max_value_size = MAPKV_VALUE_MAX;
  db = open_opts(path, &o);
  assert_rc(mapkv_put(db, key, MAPKV_KEY_MAX, "x", 1), 0);
  expect_val(db, key, MAPKV_KEY_MAX, "x", 1);
  assert_rc(mapkv_put(db, key, MAPKV_KEY_MAX + 1, "x", 1), MAPKV_EKEYSIZE);
  close_ok(db);
  db = open_new(path);
  assert_int_equal(stat_of(db).max_key_size, MAPKV_KEY_MAX);
  assert_int_equal(stat_of(db).max_value_size, MAPKV_VALUE_MAX);
  expect_val(db, key, MAPKV_KEY_MAX, "x", 1);
  assert_rc(mapkv_del(db, key, MAPKV_KEY_MAX), 0);
  close_ok(db);
}

/* Options, figures and salvage reports carry their size, so that a caller
 * compiled against another version of mapkv.h and the library agree on
 * which fields there are. */
static void test_sized_structs(void **state) {
  const char *path = fx_path("store-sized");
  /* A caller compiled with a newer header: 64 bytes more of options. */
  struct {
    mapkv_options o;
    uint8_t newer[64];
  } big;
  struct {
    mapkv_stats st;
    uint8_t newer[32];
  } bst;
  mapkv_options o;
  mapkv_stats st;
  mapkv_t *db = SENTINEL;
  (void)state;

  /* Not initialised: refused, and said why. */
  memset(&o, 0, sizeof o);
  o.flags = MAPKV_CREATE;
  assert_rc(mapkv_open(path, &o, &db), MAPKV_EINVAL);
  assert_non_null(strstr(mapkv_errmsg(), "mapkv_options_init"));
  assert_ptr_equal(db, SENTINEL);
  assert_false(file_exists(path));
  assert_rc(mapkv_options_init_size(&o, 8), MAPKV_EINVAL);
  assert_rc(mapkv_options_init_size(NULL, sizeof o), MAPKV_EINVAL);
  mapkv_options_init(&o);
  assert_int_equal(o.struct_size, sizeof o);
  o.struct_size = 12;
  assert_rc(mapkv_open(path, &o, &db), MAPKV_EINVAL);

  /* Newer fields the library does not know: zero is their default. */
  memset(&big, 0xAB, sizeof big);
  assert_rc(mapkv_options_init_size(&big.o, sizeof big), 0);
  assert_int_equal(big.o.struct_size, sizeof big);
  for (size_t i = 0; i < sizeof big.newer; i++)
    assert_int_equal(big.newer[i], 0);
  assert_int_equal(big.o.sync_mode, MAPKV_SYNC_COMMIT);
  big.o.flags = MAPKV_CREATE;
  db = open_opts(path, &big.o);
  put_str(db, "k", "v");
  close_ok(db);
  big.o.flags = 0;
  big.newer[10] = 1; /* ... but set, it asks for what this library lacks */
  db = SENTINEL;
  assert_rc(mapkv_open(path, &big.o, &db), MAPKV_EINVAL);
  assert_non_null(strstr(mapkv_errmsg(), "newer"));
  assert_ptr_equal(db, SENTINEL);

  /* Figures: a larger structure gets zeros beyond what the library has;
   * a smaller one (down to the first published) only what it holds. */
  db = open_new(path);
  memset(&bst, 0xCD, sizeof bst);
  assert_rc(mapkv_stat_size(db, &bst.st, sizeof bst), 0);
  assert_int_equal(bst.st.records, 1);
  for (size_t i = 0; i < sizeof bst.newer; i++)
    assert_int_equal(bst.newer[i], 0);
  assert_rc(mapkv_stat_size(db, &st, 16), MAPKV_EINVAL);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.records, 1);
  close_ok(db);

  /* The salvage report likewise. */
  {
    struct {
      mapkv_recover_info info;
      uint8_t newer[16];
    } bi;
    memset(&bi, 0xEF, sizeof bi);
    assert_rc(mapkv_recover_size(path, NULL, 0, 0, &bi.info, 8), MAPKV_EINVAL);
    assert_rc(mapkv_recover_size(path, NULL, 0, 0, &bi.info, sizeof bi), 0);
    assert_int_equal(bi.info.rewritten, 0); /* no damage: left alone */
    assert_int_equal(bi.info.found.records, 1);
    for (size_t i = 0; i < sizeof bi.newer; i++)
      assert_int_equal(bi.newer[i], 0);
  }
}

static void test_invalid_options(void **state) {
  const char *path = fx_path("store-badopts");
  struct {
    const char *what;
    mapkv_options o;
  } bad[10];
  int n = 0;
  (void)state;

#define BAD(field, value)                                                      \
  do {                                                                         \
    bad[n].what = #field " = " #value;                                         \
    bad[n].o = opts_with(MAPKV_CREATE);                                        \
    bad[n].o.field = (value);                                                  \
    n++;                                                                       \
  } while (0)
  BAD(flags, MAPKV_CREATE | 0x100u);
  BAD(sync_mode, 3);
  BAD(sync_mode, -1);
  BAD(max_key_size, MAPKV_KEY_MAX + 1);
  BAD(max_value_size, MAPKV_VALUE_MAX + 1u);
  BAD(initial_size, MAPKV_FILE_MAX + 1);
  BAD(growth_step, MAPKV_FILE_MAX + 1);
  BAD(reserve, MAPKV_FILE_MAX + 1);
  BAD(max_value_size, UINT32_MAX);
  BAD(expected_keys, MAPKV_FILE_MAX / MAPKV__REC_OVERHEAD + 1);
#undef BAD

  for (int i = 0; i < n; i++) {
    mapkv_t *db = SENTINEL;
    int rc = mapkv_open(path, &bad[i].o, &db);
    if (rc != MAPKV_EINVAL)
      fail_msg("%s: got %d (%s)", bad[i].what, rc, mapkv_strerror(rc));
    assert_ptr_equal(db, SENTINEL);
    assert_true(strlen(mapkv_errmsg()) > 0);
    assert_false(file_exists(path)); /* nothing created */
  }

  /* Zero fields mean the defaults (struct_size says which fields the
   * caller has). */
  {
    mapkv_options z;
    mapkv_t *db;
    memset(&z, 0, sizeof z);
    z.struct_size = sizeof z;
    z.flags = MAPKV_CREATE;
    db = open_opts(path, &z);
    put_str(db, "k", "v");
    close_ok(db);
  }
  /* The largest accepted values. */
  {
    mapkv_options m = opts_with(0);
    mapkv_t *db;
    m.max_key_size = MAPKV_KEY_MAX;
    m.max_value_size = MAPKV_VALUE_MAX;
    m.reserve = MAPKV_FILE_MAX;
    m.growth_step = 4096;
    m.sync_mode = MAPKV_SYNC_EXPLICIT;
    db = open_opts(path, &m);
    expect_str(db, "k", "v");
    close_ok(db);
  }
}

static void test_null_arguments(void **state) {
  const char *path = fx_path("store-null");
  mapkv_t *db = open_new(path), *out = SENTINEL;
  mapkv_batch_t *b = NULL;
  mapkv_cursor_t *c = NULL;
  uint8_t buf[8];
  const void *view = SENTINEL;
  mapkv_stats st;
  (void)state;

  put_str(db, "k", "v");
  assert_rc(mapkv_open(NULL, NULL, &out), MAPKV_EINVAL);
  assert_ptr_equal(out, SENTINEL);
  assert_rc(mapkv_open(path, NULL, NULL), MAPKV_EINVAL);

  assert_rc(mapkv_put(NULL, "k", 1, "v", 1), MAPKV_EINVAL);
  assert_rc(mapkv_put(db, NULL, 1, "v", 1), MAPKV_EINVAL);
  assert_rc(mapkv_put(db, "k", 1, NULL, 1), MAPKV_EINVAL);
  assert_rc(mapkv_get(NULL, "k", 1, buf, sizeof buf, NULL), MAPKV_EINVAL);
  assert_rc(mapkv_get(db, NULL, 1, buf, sizeof buf, NULL), MAPKV_EINVAL);
  assert_rc(mapkv_get(db, "k", 1, NULL, 8, NULL), MAPKV_EINVAL);
  assert_rc(mapkv_get_view(NULL, "k", 1, &view, NULL), MAPKV_EINVAL);
  assert_rc(mapkv_get_view(db, "k", 1, NULL, NULL), MAPKV_EINVAL);
  assert_rc(mapkv_get_view(db, NULL, 1, &view, NULL), MAPKV_EINVAL);
  assert_ptr_equal(view, SENTINEL);
  assert_rc(mapkv_del(NULL, "k", 1), MAPKV_EINVAL);
  assert_rc(mapkv_del(db, NULL, 1), MAPKV_EINVAL);
  assert_rc(mapkv_exists(NULL, "k", 1), MAPKV_EINVAL);
  assert_rc(mapkv_exists(db, NULL, 1), MAPKV_EINVAL);
  assert_rc(mapkv_batch_begin(NULL, &b), MAPKV_EINVAL);
  assert_rc(mapkv_batch_begin(db, NULL), MAPKV_EINVAL);
  assert_rc(mapkv_batch_put(NULL, "k", 1, "v", 1), MAPKV_EINVAL);
  assert_rc(mapkv_batch_del(NULL, "k", 1), MAPKV_EINVAL);
  assert_rc(mapkv_batch_commit(NULL), MAPKV_EINVAL);
  mapkv_batch_abort(NULL);
  assert_rc(mapkv_batch_begin(db, &b), 0);
  assert_rc(mapkv_batch_put(b, NULL, 1, "v", 1), MAPKV_EINVAL);
  assert_rc(mapkv_batch_put(b, "k", 1, NULL, 1), MAPKV_EINVAL);
  assert_rc(mapkv_batch_del(b, NULL, 1), MAPKV_EINVAL);
  mapkv_batch_abort(b);
  assert_rc(mapkv_cursor_open(NULL, NULL, 0, &c), MAPKV_EINVAL);
  assert_rc(mapkv_cursor_open(db, NULL, 0, NULL), MAPKV_EINVAL);
  assert_rc(mapkv_cursor_open(db, NULL, 3, &c), MAPKV_EINVAL);
  assert_rc(mapkv_cursor_next(NULL, NULL, NULL, NULL, NULL), MAPKV_EINVAL);
  mapkv_cursor_close(NULL);
  assert_rc(mapkv_sync(NULL), MAPKV_EINVAL);
  assert_rc(mapkv_compact(NULL), MAPKV_EINVAL);
  assert_rc(mapkv_stat(NULL, &st), MAPKV_EINVAL);
  assert_rc(mapkv_stat(db, NULL), MAPKV_EINVAL);
  assert_rc(mapkv_verify(NULL, NULL, NULL, NULL), MAPKV_EINVAL);

  /* Optional outputs may be NULL. */
  assert_rc(mapkv_cursor_open(db, NULL, 0, &c), 0);
  assert_rc(mapkv_cursor_next(c, NULL, NULL, NULL, NULL), 0);
  assert_rc(mapkv_cursor_next(c, NULL, NULL, NULL, NULL), MAPKV_NOTFOUND);
  mapkv_cursor_close(c);
  assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);
  expect_str(db, "k", "v");
  assert_int_equal(stat_of(db).records, 1);
  close_ok(db);
}

static void test_get_small_buffer(void **state) {
  const char *path = fx_path("store-bufsmall");
  mapkv_t *db = open_new(path);
  uint8_t v[100], buf[100];
  size_t vlen = 0;
  (void)state;

  fill_val(v, sizeof v, 3);
  assert_rc(mapkv_put(db, "k", 1, v, sizeof v), 0);
  memset(buf, 0xAA, sizeof buf);
  assert_rc(mapkv_get(db, "k", 1, buf, 10, &vlen), MAPKV_EBUFSMALL);
  assert_int_equal(vlen, 100);
  for (size_t i = 0; i < sizeof buf; i++)
    assert_int_equal(buf[i], 0xAA); /* nothing copied */
  assert_non_null(strstr(mapkv_errmsg(), "100"));
  vlen = 0;
  assert_rc(mapkv_get(db, "k", 1, buf, 99, &vlen), MAPKV_EBUFSMALL);
  assert_int_equal(vlen, 100);
  vlen = 0;
  assert_rc(mapkv_get(db, "k", 1, NULL, 0, &vlen), MAPKV_EBUFSMALL);
  assert_int_equal(vlen, 100);
  assert_rc(mapkv_get(db, "k", 1, buf, 10, NULL), MAPKV_EBUFSMALL);
  /* Exactly enough. */
  vlen = 0;
  assert_rc(mapkv_get(db, "k", 1, buf, 100, &vlen), 0);
  assert_int_equal(vlen, 100);
  assert_memory_equal(buf, v, 100);
  close_ok(db);
}

static void test_missing_key(void **state) {
  const char *path = fx_path("store-missing");
  mapkv_t *db = open_new(path);
  mapkv_stats before, after;
  snap s;
  (void)state;

  expect_missing(db, "nope", 4);
  assert_true(strlen(mapkv_errmsg()) > 0);
  put_str(db, "there", "yes");
  put_str(db, "gone", "soon");
  assert_rc(mapkv_del(db, "gone", 4), 0);

  before = stat_of(db);
  s = snap_take(path);
  assert_rc(mapkv_del(db, "nope", 4), MAPKV_NOTFOUND);
  assert_rc(mapkv_del(db, "gone", 4), MAPKV_NOTFOUND);
  assert_rc(mapkv_del(db, "ther", 4), MAPKV_NOTFOUND);
  after = stat_of(db);
  snap_expect_same(path, s);
  assert_int_equal(after.data_end, before.data_end);
  assert_int_equal(after.last_seq, before.last_seq);
  assert_int_equal(after.dead_bytes, before.dead_bytes);
  expect_missing(db, "gone", 4);
  expect_missing(db, "there-not", 9);
  expect_str(db, "there", "yes");
  close_ok(db);
}

/* ---- batches ------------------------------------------------------------- */

/* The state every reopen of the batch tests must find. */
static void expect_batch_state(mapkv_t *db) {
  expect_missing(db, "a", 1);
  expect_str(db, "b", "2");
  expect_str(db, "c", "third");
  expect_missing(db, "d", 1);
  expect_str(db, "e", "kept");
  assert_int_equal(stat_of(db).records, 3);
  assert_int_equal(stat_of(db).live_bytes, REC(1, 1) + REC(1, 5) + REC(1, 4));
}

static void test_batch_same_key(void **state) {
  const char *path = fx_path("store-batchsame");
  const char *crash = fx_path("store-batchsame-crash");
  mapkv_t *db = open_new(path);
  mapkv_batch_t *b = NULL;
  mapkv_stats before, after;
  (void)state;

  put_str(db, "b", "old");
  put_str(db, "e", "kept");
  before = stat_of(db);

  assert_rc(mapkv_batch_begin(db, &b), 0);
  assert_rc(mapkv_batch_put(b, "a", 1, "1", 1), 0); /* put then del: gone */
  assert_rc(mapkv_batch_del(b, "a", 1), 0);
  assert_rc(mapkv_batch_del(b, "b", 1), 0); /* del then put: the put */
  assert_rc(mapkv_batch_put(b, "b", 1, "2", 1), 0);
  assert_rc(mapkv_batch_put(b, "c", 1, "first", 5), 0); /* last put wins */
  assert_rc(mapkv_batch_put(b, "c", 1, "third", 5), 0);
  assert_rc(mapkv_batch_del(b, "d", 1), 0); /* del of a missing key */
  assert_rc(mapkv_batch_commit(b), 0);
  expect_batch_state(db);

  /* One batch of 7 operations: 7 records and a commit record. */
  after = stat_of(db);
  expect_consistent(&after, path);
  assert_int_equal(after.last_seq, before.last_seq + 8);
  assert_int_equal(after.data_end, before.data_end + REC(1, 1) + REC(1, 0) +
                                       REC(1, 0) + REC(1, 1) + REC(1, 5) +
                                       REC(1, 5) + REC(1, 0) + REC(0, 8));

  copy_file(path, crash); /* recovered by the full scan */
  close_ok(db);
  db = open_new(path); /* recovered by the clean walk */
  assert_int_equal(stat_of(db).clean_open, 1);
  expect_batch_state(db);
  close_ok(db);
  db = open_new(crash);
  assert_int_equal(stat_of(db).clean_open, 0);
  assert_int_equal(stat_of(db).recovered_batches, 3);
  expect_batch_state(db);
  close_ok(db);
}

/* A batch whose keys and values are all empty has no arena to copy from
 * (found by fuzz_ops): it must commit like any other. */
static void test_batch_all_empty(void **state) {
  const char *path = fx_path("store-batch-empty-kv");
  mapkv_options o;
  mapkv_batch_t *b;
  mapkv_t *db;
  size_t vlen = 99;
  char buf[4];
  (void)state;
  mapkv_options_init(&o);
  o.flags = MAPKV_CREATE;
  assert_int_equal(mapkv_open(path, &o, &db), 0);
  assert_int_equal(mapkv_batch_begin(db, &b), 0);
  assert_int_equal(mapkv_batch_put(b, "", 0, "", 0), 0);
  assert_int_equal(mapkv_batch_put(b, NULL, 0, NULL, 0), 0);
  assert_int_equal(mapkv_batch_commit(b), 0);
  assert_int_equal(mapkv_get(db, "", 0, buf, sizeof buf, &vlen), 0);
  assert_int_equal(vlen, 0);
  assert_int_equal(mapkv_batch_begin(db, &b), 0);
  assert_int_equal(mapkv_batch_del(b, "", 0), 0);
  assert_int_equal(mapkv_batch_del(b, NULL, 0), 0);
  assert_int_equal(mapkv_batch_commit(b), 0);
  assert_int_equal(mapkv_exists(db, "", 0), 0);
  assert_int_equal(mapkv_close(db), 0);
}

static void test_batch_empty_and_abort(void **state) {
  const char *path = fx_path("store-batchempty");
  mapkv_t *db = open_new(path);
  mapkv_batch_t *b = NULL;
  mapkv_stats before, after;
  snap s;
  (void)state;

  put_str(db, "x", "1");
  before = stat_of(db);
  s = snap_take(path);
  assert_rc(mapkv_batch_begin(db, &b), 0);
  assert_rc(mapkv_batch_commit(b), 0);

  assert_rc(mapkv_batch_begin(db, &b), 0);
  assert_rc(mapkv_batch_put(b, "y", 1, "2", 1), 0);
  assert_rc(mapkv_batch_del(b, "x", 1), 0);
  mapkv_batch_abort(b);
  after = stat_of(db);
  snap_expect_same(path, s);
  assert_int_equal(after.data_end, before.data_end);
  assert_int_equal(after.last_seq, before.last_seq);
  expect_str(db, "x", "1");
  expect_missing(db, "y", 1);
  close_ok(db);
}

static void test_batch_atomic_visibility(void **state) {
  const char *path = fx_path("store-batchvis");
  mapkv_t *db = open_new(path);
  mapkv_batch_t *b = NULL;
  mapkv_stats before;
  char k[32];
  uint8_t v[40];
  uint64_t bytes = 0;
  (void)state;

  put_str(db, "k00000005", "old");
  before = stat_of(db);
  assert_rc(mapkv_batch_begin(db, &b), 0);
  for (unsigned i = 0; i < 10; i++) {
    size_t kl = mkkey(k, sizeof k, "k", i);
    fill_val(v, sizeof v, i);
    assert_rc(mapkv_batch_put(b, k, kl, v, sizeof v), 0);
    bytes += REC(kl, sizeof v);
    /* Nothing is visible before the commit. */
    assert_int_equal(mapkv_exists(db, k, kl), i == 5);
  }
  expect_str(db, "k00000005", "old");
  assert_int_equal(stat_of(db).data_end, before.data_end);
  assert_rc(mapkv_batch_commit(b), 0);
  for (unsigned i = 0; i < 10; i++) {
    size_t kl = mkkey(k, sizeof k, "k", i);
    fill_val(v, sizeof v, i);
    expect_val(db, k, kl, v, sizeof v);
  }
  assert_int_equal(stat_of(db).data_end, before.data_end + bytes + REC(0, 8));
  assert_int_equal(stat_of(db).last_seq, before.last_seq + 11);
  assert_int_equal(stat_of(db).records, 10);

  /* The caller's buffers are copied at add time. */
  assert_rc(mapkv_batch_begin(db, &b), 0);
  memcpy(k, "temp", 5);
  assert_rc(mapkv_batch_put(b, k, 4, k, 5), 0);
  memcpy(k, "XXXX", 5);
  assert_rc(mapkv_batch_put(b, "other", 5, "o", 1), 0);
  assert_rc(mapkv_batch_commit(b), 0);
  expect_val(db, "temp", 4, "temp", 5);
  expect_missing(db, "XXXX", 4);
  close_ok(db);
}

static void test_batch_survives_reopen(void **state) {
  const char *path = fx_path("store-batchreopen");
  const char *crash = fx_path("store-batchreopen-crash");
  mapkv_t *db = open_new(path);
  mapkv_batch_t *b = NULL;
  char k[32];
  uint8_t v[200];
  (void)state;

  /* A batch large enough to grow its arena several times. */
  assert_rc(mapkv_batch_begin(db, &b), 0);
  for (unsigned i = 0; i < 500; i++) {
    size_t kl = mkkey(k, sizeof k, "batch/", i);
    fill_val(v, sizeof v, i);
    assert_rc(mapkv_batch_put(b, k, kl, v, (size_t)(i % 200)), 0);
  }
  for (unsigned i = 0; i < 500; i += 5) {
    size_t kl = mkkey(k, sizeof k, "batch/", i);
    assert_rc(mapkv_batch_del(b, k, kl), 0);
  }
  assert_rc(mapkv_batch_commit(b), 0);
  copy_file(path, crash);
  close_ok(db);

  for (int pass = 0; pass < 2; pass++) {
    db = open_new(pass == 0 ? path : crash);
    assert_int_equal(stat_of(db).clean_open, pass == 0);
    assert_int_equal(stat_of(db).records, 400);
    assert_int_equal(stat_of(db).recovered_batches, 1);
    for (unsigned i = 0; i < 500; i++) {
      size_t kl = mkkey(k, sizeof k, "batch/", i);
      fill_val(v, sizeof v, i);
      if (i % 5 == 0)
        expect_missing(db, k, kl);
      else
        expect_val(db, k, kl, v, (size_t)(i % 200));
    }
    assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);
    close_ok(db);
  }
}

/* ---- cursors ------------------------------------------------------------- */

/* Walks a cursor to its end; counts records, checks each value against the
 * store (get), and that no key is reported twice. Returns the count. */
static int walk_cursor(mapkv_t *db, const char *prefix, char seen[][64],
                       int max) {
  mapkv_cursor_t *c = NULL;
  const void *k, *v;
  size_t kl, vl;
  int n = 0, rc;
  size_t plen = prefix ? strlen(prefix) : 0;
  assert_rc(mapkv_cursor_open(db, prefix, plen, &c), 0);
  while ((rc = mapkv_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
    uint8_t buf[256];
    size_t got = 0;
    assert_true(kl < 64);
    assert_true(kl >= plen);
    if (plen > 0)
      assert_memory_equal(k, prefix, plen);
    assert_rc(mapkv_get(db, k, kl, buf, sizeof buf, &got), 0);
    assert_int_equal(got, vl);
    assert_memory_equal(buf, v, vl);
    for (int i = 0; i < n; i++)
      if (strlen(seen[i]) == kl && memcmp(seen[i], k, kl) == 0)
        fail_msg("key %.*s reported twice", (int)kl, (const char *)k);
    assert_true(n < max);
    memcpy(seen[n], k, kl);
    seen[n][kl] = '\0';
    n++;
  }
  assert_rc(rc, MAPKV_NOTFOUND);
  assert_rc(mapkv_cursor_next(c, &k, &kl, &v, &vl), MAPKV_NOTFOUND);
  mapkv_cursor_close(c);
  return n;
}

static int seen_has(char seen[][64], int n, const char *key) {
  for (int i = 0; i < n; i++)
    if (strcmp(seen[i], key) == 0)
      return 1;
  return 0;
}

static void test_cursor_all_and_prefix(void **state) {
  const char *path = fx_path("store-cursor");
  mapkv_t *db = open_new(path);
  static char seen[200][64];
  char k[32];
  (void)state;

  /* An empty store. */
  assert_int_equal(walk_cursor(db, NULL, seen, 200), 0);
  assert_int_equal(walk_cursor(db, "a/", seen, 200), 0);

  for (unsigned i = 0; i < 50; i++) {
    mkkey(k, sizeof k, "a/", i);
    put_str(db, k, "va");
    mkkey(k, sizeof k, "b/", i);
    put_str(db, k, "vb");
  }
  put_str(db, "a", "short"); /* shorter than the prefix "a/" */
  assert_int_equal(walk_cursor(db, NULL, seen, 200), 101);
  assert_true(seen_has(seen, 101, "a"));
  assert_int_equal(walk_cursor(db, "a/", seen, 200), 50);
  for (unsigned i = 0; i < 50; i++) {
    mkkey(k, sizeof k, "a/", i);
    assert_true(seen_has(seen, 50, k));
  }
  assert_int_equal(walk_cursor(db, "b/0000004", seen, 200), 10);
  assert_int_equal(walk_cursor(db, "a", seen, 200), 51);
  assert_int_equal(walk_cursor(db, "c/", seen, 200), 0);
  assert_int_equal(walk_cursor(db, "a/00000049", seen, 200), 1);
  assert_int_equal(walk_cursor(db, "a/000000499", seen, 200), 0);

  /* The same after a reopen. */
  close_ok(db);
  db = open_rdonly(path);
  assert_int_equal(walk_cursor(db, NULL, seen, 200), 101);
  assert_int_equal(walk_cursor(db, "b/", seen, 200), 50);
  close_ok(db);
}

static void test_cursor_overwritten_and_deleted(void **state) {
  const char *path = fx_path("store-cursor-ow");
  mapkv_t *db = open_new(path);
  static char seen[64][64];
  mapkv_cursor_t *c = NULL;
  const void *k, *v;
  size_t kl, vl;
  int n, rc;
  char key[32];
  (void)state;

  for (unsigned i = 0; i < 10; i++) {
    mkkey(key, sizeof key, "k", i);
    put_str(db, key, "v0");
  }
  /* Overwritten several times and deleted before the cursor opens. */
  put_str(db, "k00000003", "v1");
  put_str(db, "k00000003", "v2");
  put_str(db, "k00000003", "newest");
  assert_rc(mapkv_del(db, "k00000005", 9), 0);
  put_str(db, "k00000007", "x");
  assert_rc(mapkv_del(db, "k00000007", 9), 0);
  put_str(db, "k00000007", "again");

  n = walk_cursor(db, NULL, seen, 64);
  assert_int_equal(n, 9);
  assert_false(seen_has(seen, n, "k00000005"));
  assert_true(seen_has(seen, n, "k00000003"));

  /* Check the values the cursor itself reports. */
  assert_rc(mapkv_cursor_open(db, "k00000003", 9, &c), 0);
  assert_rc(mapkv_cursor_next(c, &k, &kl, &v, &vl), 0);
  assert_int_equal(vl, 6);
  assert_memory_equal(v, "newest", 6);
  assert_rc(mapkv_cursor_next(c, &k, &kl, &v, &vl), MAPKV_NOTFOUND);
  mapkv_cursor_close(c);
  assert_rc(mapkv_cursor_open(db, "k00000007", 9, &c), 0);
  assert_rc(mapkv_cursor_next(c, &k, &kl, &v, &vl), 0);
  assert_int_equal(vl, 5);
  assert_memory_equal(v, "again", 5);
  mapkv_cursor_close(c);

  /* Changes after the cursor opened: new keys are not reported; a key
   * overwritten or deleted after the open is skipped (its newest value was
   * committed after the open); untouched keys are reported. */
  assert_rc(mapkv_cursor_open(db, NULL, 0, &c), 0);
  put_str(db, "k00000000", "after");
  assert_rc(mapkv_del(db, "k00000001", 9), 0);
  put_str(db, "new-key", "after");
  n = 0;
  while ((rc = mapkv_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
    assert_false(kl == 7 && memcmp(k, "new-key", 7) == 0);
    assert_false(kl == 9 && memcmp(k, "k00000000", 9) == 0);
    assert_false(kl == 9 && memcmp(k, "k00000001", 9) == 0);
    n++;
  }
  assert_rc(rc, MAPKV_NOTFOUND);
  assert_int_equal(n, 7);
  mapkv_cursor_close(c);
  close_ok(db);
}

static void test_cursor_after_compact(void **state) {
  const char *path = fx_path("store-cursor-compact");
  mapkv_t *db = open_new(path);
  mapkv_cursor_t *c = NULL;
  const void *k, *v;
  size_t kl, vl;
  static char seen[32][64];
  (void)state;

  for (unsigned i = 0; i < 20; i++) {
    char key[32];
    mkkey(key, sizeof key, "c", i);
    put_str(db, key, "value");
  }
  assert_rc(mapkv_cursor_open(db, NULL, 0, &c), 0);
  assert_rc(mapkv_cursor_next(c, &k, &kl, &v, &vl), 0);
  assert_rc(mapkv_compact(db), 0);
  assert_rc(mapkv_cursor_next(c, &k, &kl, &v, &vl), MAPKV_ECHANGED);
  assert_non_null(strstr(mapkv_errmsg(), "compact"));
  assert_rc(mapkv_cursor_next(c, &k, &kl, &v, &vl), MAPKV_ECHANGED);
  mapkv_cursor_close(c);

  /* A cursor that had not started yet is invalidated too. */
  assert_rc(mapkv_cursor_open(db, "c", 1, &c), 0);
  assert_rc(mapkv_compact(db), 0);
  assert_rc(mapkv_cursor_next(c, NULL, NULL, NULL, NULL), MAPKV_ECHANGED);
  mapkv_cursor_close(c);

  /* A new cursor works. */
  assert_int_equal(walk_cursor(db, NULL, seen, 32), 20);
  close_ok(db);
}

/* ---- figures ------------------------------------------------------------- */

static void test_stats_figures(void **state) {
  const char *path = fx_path("store-stats");
  mapkv_t *db = open_new(path);
  mapkv_batch_t *b = NULL;
  mapkv_stats st;
  uint64_t size0;
  (void)state;

  st = stat_of(db);
  expect_consistent(&st, path);
  size0 = st.file_size;
  assert_int_equal(st.data_end, HDR);

  put_str(db, "abc", "12345"); /* 30 + 3 + 5 = 38 */
  st = stat_of(db);
  expect_consistent(&st, path);
  assert_int_equal(st.records, 1);
  assert_int_equal(st.live_bytes, 38);
  assert_int_equal(st.dead_bytes, 0);
  assert_int_equal(st.data_end, HDR + 38);
  assert_int_equal(st.last_seq, 1);
  assert_true(st.file_size >= size0);

  put_str(db, "abc", "0123456789"); /* replaces: 43 live, 38 dead */
  st = stat_of(db);
  expect_consistent(&st, path);
  assert_int_equal(st.records, 1);
  assert_int_equal(st.live_bytes, 43);
  assert_int_equal(st.dead_bytes, 38);
  assert_int_equal(st.data_end, HDR + 81);
  assert_int_equal(st.last_seq, 2);

  put_str(db, "z", "");                  /* 31 */
  assert_rc(mapkv_del(db, "abc", 3), 0); /* a DEL record of 33 bytes */
  st = stat_of(db);
  expect_consistent(&st, path);
  assert_int_equal(st.records, 1);
  assert_int_equal(st.live_bytes, 31);
  assert_int_equal(st.dead_bytes, 38 + 43 + 33);
  assert_int_equal(st.data_end, HDR + 81 + 31 + 33);
  assert_int_equal(st.last_seq, 4);

  assert_rc(mapkv_batch_begin(db, &b), 0);
  assert_rc(mapkv_batch_put(b, "p", 1, "q", 1), 0);  /* 32 */
  assert_rc(mapkv_batch_put(b, "r", 1, "st", 2), 0); /* 33, commit 38 */
  assert_rc(mapkv_batch_commit(b), 0);
  st = stat_of(db);
  expect_consistent(&st, path);
  assert_int_equal(st.records, 3);
  assert_int_equal(st.live_bytes, 31 + 32 + 33);
  assert_int_equal(st.dead_bytes, 38 + 43 + 33 + 38);
  assert_int_equal(st.data_end, HDR + 81 + 31 + 33 + 32 + 33 + 38);
  assert_int_equal(st.last_seq, 7);
  assert_int_equal(st.generation, 0);
  assert_int_equal(st.checksum_failures, 0);

  /* Reopen: the same figures, rebuilt. */
  close_ok(db);
  db = open_new(path);
  st = stat_of(db);
  expect_consistent(&st, path);
  assert_int_equal(st.clean_open, 1);
  assert_int_equal(st.records, 3);
  assert_int_equal(st.live_bytes, 96);
  assert_int_equal(st.dead_bytes, 152);
  assert_int_equal(st.last_seq, 7);
  assert_int_equal(st.recovered_batches, 5);

  /* Compaction: only live records, a new generation, fresh sequence. */
  assert_rc(mapkv_compact(db), 0);
  st = stat_of(db);
  expect_consistent(&st, path);
  assert_int_equal(st.generation, 1);
  assert_int_equal(st.records, 3);
  assert_int_equal(st.live_bytes, 96);
  assert_int_equal(st.dead_bytes, 0);
  assert_int_equal(st.data_end, HDR + 96);
  assert_int_equal(st.last_seq, 3);
  put_str(db, "after", "compact");
  close_ok(db);
  db = open_new(path);
  st = stat_of(db);
  expect_consistent(&st, path);
  assert_int_equal(st.generation, 1);
  assert_int_equal(st.records, 4);
  assert_int_equal(st.clean_open, 1);
  assert_rc(mapkv_compact(db), 0);
  assert_int_equal(stat_of(db).generation, 2);
  close_ok(db);
  db = open_rdonly(path);
  assert_int_equal(stat_of(db).generation, 2);
  expect_str(db, "after", "compact");
  expect_str(db, "r", "st");
  close_ok(db);
}

static void test_clean_open_vs_crash(void **state) {
  const char *path = fx_path("store-clean");
  const char *crash = fx_path("store-crash");
  mapkv_t *db = open_new(path);
  mapkv_stats st;
  char k[32];
  (void)state;

  for (unsigned i = 0; i < 100; i++) {
    mkkey(k, sizeof k, "c", i);
    put_str(db, k, k);
  }
  assert_rc(mapkv_del(db, "c00000000", 9), 0);
  /* A crash now: the file as it is, never closed. */
  copy_file(path, crash);
  close_ok(db);

  db = open_new(path);
  st = stat_of(db);
  assert_int_equal(st.clean_open, 1);
  assert_int_equal(st.records, 99);
  close_ok(db);

  db = open_new(crash);
  st = stat_of(db);
  expect_consistent(&st, crash);
  assert_int_equal(st.clean_open, 0);
  assert_int_equal(st.records, 99);
  assert_int_equal(st.recovered_batches, 101);
  assert_int_equal(st.dropped_tail_bytes, 0);
  assert_int_equal(st.dropped_tail_records, 0);
  assert_int_equal(st.damaged_regions, 0);
  assert_int_equal(st.last_seq, 101);
  for (unsigned i = 1; i < 100; i++) {
    mkkey(k, sizeof k, "c", i);
    expect_str(db, k, k);
  }
  expect_missing(db, "c00000000", 9);
  assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);
  close_ok(db);
  /* Closed cleanly now. */
  db = open_rdonly(crash);
  assert_int_equal(stat_of(db).clean_open, 1);
  close_ok(db);
}

/* Counts growth steps (calls of the os table's reserve). */
static int reserve_calls;
static int (*real_reserve)(int fd, off_t off, off_t len);
static int counting_reserve(int fd, off_t off, off_t len) {
  reserve_calls++;
  return real_reserve(fd, off, len);
}

/* expected_keys sizes the index at open, so that filling the store to that
 * many keys never rehashes; it also sizes the index after a reopen and a
 * compaction, and a store without it is sized by what it holds. */
static void test_expected_keys(void **state) {
  const char *path = fx_path("store-expected");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  enum { N = 20000 };
  uint64_t slots;
  char k[32];
  (void)state;

  o.expected_keys = N;
  o.sync_mode = MAPKV_SYNC_NONE;
  db = open_opts(path, &o);
  slots = stat_of(db).index_slots;
  /* At most 3/4 full with N keys, and no larger than that needs. */
  assert_true(slots / 4 * 3 >= N);
  assert_true(slots / 2 / 4 * 3 < N);
  for (unsigned i = 0; i < N; i++) {
    size_t kl = mkkey(k, sizeof k, "x", i);
    assert_rc(mapkv_put(db, k, kl, k, kl), 0);
    if (i % 1000 == 0)
      assert_int_equal(stat_of(db).index_slots, slots);
  }
  assert_int_equal(stat_of(db).index_slots, slots);
  assert_int_equal(stat_of(db).records, N);
  close_ok(db);

  /* Reopened for four times as many keys: sized for them, all still there. */
  o = opts_with(0);
  o.expected_keys = 4 * N;
  db = open_opts(path, &o);
  assert_int_equal(stat_of(db).index_slots, 4 * slots);
  for (unsigned i = 0; i < N; i += 97) {
    size_t kl = mkkey(k, sizeof k, "x", i);
    assert_int_equal(mapkv_exists(db, k, kl), 1);
  }
  /* Compaction keeps the size asked for. */
  for (unsigned i = 0; i < N / 2; i++) {
    size_t kl = mkkey(k, sizeof k, "x", i);
    assert_rc(mapkv_del(db, k, kl), 0);
  }
  assert_rc(mapkv_compact(db), 0);
  assert_int_equal(stat_of(db).index_slots, 4 * slots);
  assert_int_equal(stat_of(db).records, N / 2);
  close_ok(db);

  /* Without it, the index is sized by the keys the store holds. */
  db = open_opts(path, NULL);
  assert_true(stat_of(db).index_slots < slots);
  assert_true(stat_of(db).index_slots / 4 * 3 >= N / 2);
  close_ok(db);
}

/* mapkv_get_many() answers each key as mapkv_get_view() does: present,
 * absent, deleted, empty and long keys, across several groups. */
static void test_get_many(void **state) {
  const char *path = fx_path("store-many");
  mapkv_t *db = open_new(path);
  enum { N = 300, Q = 101 }; /* Q keys asked: several groups and a rest */
  char kb[Q][40];
  const void *keys[Q], *vals[Q];
  size_t klens[Q], vlens[Q];
  int rcs[Q];
  mapkv_batch_t *b = NULL;
  (void)state;

  assert_rc(mapkv_batch_begin(db, &b), 0);
  for (unsigned i = 0; i < N; i++) {
    char k[40];
    uint8_t v[200];
    size_t kl = mkkey(k, sizeof k, "m", i), vl = (i * 7) % 200;
    fill_val(v, vl, i);
    assert_rc(mapkv_batch_put(b, k, kl, v, vl), 0);
  }
  assert_rc(mapkv_batch_put(b, "", 0, "empty-key", 9), 0);
  assert_rc(mapkv_batch_commit(b), 0);
  for (unsigned i = 0; i < N; i += 5) {
    char k[40];
    size_t kl = mkkey(k, sizeof k, "m", i);
    assert_rc(mapkv_del(db, k, kl), 0);
  }

  /* Present, deleted (every 5th), absent (i >= N), and the empty key. */
  for (unsigned q = 0; q < Q; q++) {
    unsigned i = q * 3 + 1;
    klens[q] = mkkey(kb[q], sizeof kb[q], "m", i);
    keys[q] = kb[q];
  }
  keys[Q - 1] = NULL;
  klens[Q - 1] = 0;
  memset(rcs, 0x55, sizeof rcs);
  assert_rc(mapkv_get_many(db, Q, keys, klens, vals, vlens, rcs), 0);
  for (unsigned q = 0; q < Q; q++) {
    const void *view = NULL;
    size_t vl = 0;
    int want = mapkv_get_view(db, keys[q], klens[q], &view, &vl);
    unsigned i = q * 3 + 1;
    assert_int_equal(rcs[q], want);
    if (q == Q - 1)
      assert_int_equal(want, 0);
    else
      assert_int_equal(want, i < N && i % 5 != 0 ? 0 : MAPKV_NOTFOUND);
    if (want == 0) {
      assert_ptr_equal(vals[q], view);
      assert_int_equal(vlens[q], vl);
    } else {
      assert_null(vals[q]);
      assert_int_equal(vlens[q], 0);
    }
  }
  assert_memory_equal(vals[Q - 1], "empty-key", 9);

  /* vlens may be NULL; n = 0 does nothing, whatever the arrays. */
  assert_rc(mapkv_get_many(db, 3, keys, klens, vals, NULL, rcs), 0);
  assert_int_equal(rcs[0], 0);
  assert_rc(mapkv_get_many(db, 0, NULL, NULL, NULL, NULL, NULL), 0);

  /* Bad arguments: EINVAL, nothing looked up. */
  memset(rcs, 0x55, sizeof rcs);
  assert_rc(mapkv_get_many(NULL, 1, keys, klens, vals, vlens, rcs),
            MAPKV_EINVAL);
  assert_rc(mapkv_get_many(db, 1, NULL, klens, vals, vlens, rcs), MAPKV_EINVAL);
  assert_rc(mapkv_get_many(db, 1, keys, NULL, vals, vlens, rcs), MAPKV_EINVAL);
  assert_rc(mapkv_get_many(db, 1, keys, klens, NULL, vlens, rcs), MAPKV_EINVAL);
  assert_rc(mapkv_get_many(db, 1, keys, klens, vals, vlens, NULL),
            MAPKV_EINVAL);
  keys[40] = NULL; /* with klens[40] > 0 */
  assert_rc(mapkv_get_many(db, Q, keys, klens, vals, vlens, rcs), MAPKV_EINVAL);
  assert_non_null(strstr(mapkv_errmsg(), "key 40"));
  for (unsigned q = 0; q < Q; q++)
    assert_int_equal(rcs[q], 0x55555555);
  close_ok(db);
}

static void test_growth_many_resizes(void **state) {
  const char *path = fx_path("store-growth");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  enum { N = 50000 };
  uint64_t prev_size = 0, live = 0;
  int growths = 0, big_growths = 0;
  char k[32];
  uint8_t v[64];
  (void)state;

  o.initial_size = 8192;
  o.growth_step = 4096;
  o.sync_mode = MAPKV_SYNC_NONE;
  db = open_opts(path, &o);
  reserve_calls = 0;
  real_reserve = mapkv__os.reserve;
  mapkv__os.reserve = counting_reserve;
  prev_size = stat_of(db).file_size;
  for (unsigned i = 0; i < N; i++) {
    size_t kl = mkkey(k, sizeof k, "g", i), vl = i % 61;
    mapkv_stats st;
    fill_val(v, vl, i);
    assert_rc(mapkv_put(db, k, kl, v, vl), 0);
    live += REC(kl, vl);
    st = stat_of(db);
    assert_true(st.data_end <= st.file_size);
    if (st.file_size != prev_size) {
      /* Each growth: by max(growth_step, size / 16), at least to
       * initial_size. */
      uint64_t step = prev_size / 16 > 4096 ? prev_size / 16 : 4096;
      assert_true(st.file_size >= prev_size + step);
      assert_true(st.file_size >= 8192);
      assert_int_equal(st.file_size % 4096, 0);
      /* Past 2 MiB the file ends on a 2 MiB boundary (large page-cache
       * folios), and overshoots the step by less than that. */
      if (st.file_size > (2u << 20)) {
        assert_int_equal(st.file_size % (2u << 20), 0);
        assert_true(st.file_size < prev_size + step + (2u << 20));
        big_growths++;
      }
      growths++;
    }
    prev_size = st.file_size;
  }
  mapkv__os_reset();
  assert_true(growths >= 10);
  assert_true(big_growths >= 1);
  assert_int_equal(reserve_calls, growths);
  assert_int_equal(stat_of(db).live_bytes, live);
  {
    mapkv_stats st = stat_of(db);
    expect_consistent(&st, path);
  }
  close_ok(db);

  db = open_new(path);
  assert_int_equal(stat_of(db).records, N);
  assert_int_equal(stat_of(db).live_bytes, live);
  for (unsigned i = 0; i < N; i++) {
    size_t kl = mkkey(k, sizeof k, "g", i), vl = i % 61;
    uint8_t got[64];
    size_t gl = 0;
    fill_val(v, vl, i);
    assert_rc(mapkv_get(db, k, kl, got, sizeof got, &gl), 0);
    assert_int_equal(gl, vl);
    assert_memory_equal(got, v, vl);
  }
  close_ok(db);
}

typedef struct damage_log {
  int n;
  uint64_t off, len;
  char what[128];
} damage_log;

static void log_damage(void *ctx, uint64_t off, uint64_t len,
                       const char *what) {
  damage_log *d = ctx;
  if (d->n++ == 0) {
    d->off = off;
    d->len = len;
    snprintf(d->what, sizeof d->what, "%s", what);
  }
}

static void test_verify(void **state) {
  const char *path = fx_path("store-verify");
  mapkv_t *db = open_new(path);
  uint64_t damaged = 77;
  damage_log d;
  (void)state;

  assert_rc(mapkv_verify(db, NULL, NULL, &damaged), 0);
  assert_int_equal(damaged, 0);
  for (unsigned i = 0; i < 200; i++) {
    char k[32];
    mkkey(k, sizeof k, "v", i);
    put_str(db, k, "some value");
  }
  assert_rc(mapkv_del(db, "v00000010", 9), 0);
  {
    mapkv_batch_t *b = NULL;
    assert_rc(mapkv_batch_begin(db, &b), 0);
    assert_rc(mapkv_batch_put(b, "b1", 2, "x", 1), 0);
    assert_rc(mapkv_batch_del(b, "v00000011", 9), 0);
    assert_rc(mapkv_batch_commit(b), 0);
  }
  damaged = 77;
  memset(&d, 0, sizeof d);
  assert_rc(mapkv_verify(db, log_damage, &d, &damaged), 0);
  assert_int_equal(damaged, 0);
  assert_int_equal(d.n, 0); /* the callback is called for damage only */
  assert_rc(mapkv_compact(db), 0);
  assert_rc(mapkv_verify(db, NULL, NULL, &damaged), 0);
  close_ok(db);
  db = open_rdonly(path);
  assert_rc(mapkv_verify(db, NULL, NULL, &damaged), 0);
  assert_int_equal(damaged, 0);
  close_ok(db);
}

/* ---- compaction ---------------------------------------------------------- */

static void test_compact_keeps_live_and_shrinks(void **state) {
  const char *path = fx_path("store-compact");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db, *ro;
  mapkv_stats before, after;
  enum { N = 2000 };
  char k[32], tmp[300];
  uint8_t v[100];
  (void)state;

  o.sync_mode = MAPKV_SYNC_NONE;
  db = open_opts(path, &o);
  for (unsigned round = 0; round < 5; round++) {
    for (unsigned i = 0; i < N; i++) {
      size_t kl = mkkey(k, sizeof k, "c", i);
      fill_val(v, sizeof v, i * 10 + round);
      assert_rc(mapkv_put(db, k, kl, v, sizeof v), 0);
    }
  }
  for (unsigned i = 0; i < N; i += 2) {
    size_t kl = mkkey(k, sizeof k, "c", i);
    assert_rc(mapkv_del(db, k, kl), 0);
  }
  before = stat_of(db);
  assert_int_equal(before.records, N / 2);
  assert_rc(mapkv_compact(db), 0);
  after = stat_of(db);
  expect_consistent(&after, path);
  assert_int_equal(after.records, N / 2);
  assert_int_equal(after.live_bytes, before.live_bytes);
  assert_int_equal(after.dead_bytes, 0);
  assert_int_equal(after.data_end, HDR + before.live_bytes);
  assert_int_equal(after.generation, before.generation + 1);
  assert_true(after.file_size < before.file_size);
  assert_int_equal(tu_file_size(path), (int64_t)after.file_size);
  snprintf(tmp, sizeof tmp, "%s.compact", path);
  assert_false(file_exists(tmp));

  for (unsigned i = 0; i < N; i++) {
    size_t kl = mkkey(k, sizeof k, "c", i);
    fill_val(v, sizeof v, i * 10 + 4);
    if (i % 2 == 0)
      expect_missing(db, k, kl);
    else
      expect_val(db, k, kl, v, sizeof v);
  }

  /* The file on disk is a complete store by itself. */
  ro = open_rdonly(path);
  assert_int_equal(stat_of(ro).records, N / 2);
  assert_int_equal(stat_of(ro).generation, 1);
  for (unsigned i = 1; i < N; i += 2) {
    size_t kl = mkkey(k, sizeof k, "c", i);
    fill_val(v, sizeof v, i * 10 + 4);
    expect_val(ro, k, kl, v, sizeof v);
  }
  assert_rc(mapkv_verify(ro, NULL, NULL, NULL), 0);
  close_ok(ro);

  /* Writes continue on the new file. */
  put_str(db, "after", "compaction");
  assert_rc(mapkv_del(db, "c00000001", 9), 0);
  close_ok(db);
  db = open_new(path);
  assert_int_equal(stat_of(db).records, N / 2);
  expect_str(db, "after", "compaction");
  expect_missing(db, "c00000001", 9);
  /* An empty store compacts too. */
  for (unsigned i = 0; i < N; i++) {
    size_t kl = mkkey(k, sizeof k, "c", i);
    int rc = mapkv_del(db, k, kl);
    assert_true(rc == 0 || rc == MAPKV_NOTFOUND);
  }
  assert_rc(mapkv_del(db, "after", 5), 0);
  assert_rc(mapkv_compact(db), 0);
  after = stat_of(db);
  assert_int_equal(after.records, 0);
  assert_int_equal(after.data_end, HDR);
  close_ok(db);
  db = open_new(path);
  assert_int_equal(stat_of(db).records, 0);
  assert_int_equal(stat_of(db).generation, 2);
  close_ok(db);
}

static void test_leftover_compact_file_removed(void **state) {
  const char *path = fx_path("store-leftover");
  char tmp[300];
  mapkv_t *db = open_new(path);
  (void)state;
  put_str(db, "k", "v");
  close_ok(db);
  snprintf(tmp, sizeof tmp, "%s.compact", path);
  write_file(tmp, "half a compaction", 17);
  db = open_rdonly(path); /* a reader leaves it alone */
  close_ok(db);
  assert_true(file_exists(tmp));
  db = open_new(path);
  assert_false(file_exists(tmp));
  expect_str(db, "k", "v");
  close_ok(db);
}

static int enospc_reserve(int fd, off_t off, off_t len) {
  (void)fd;
  (void)off;
  (void)len;
  errno = ENOSPC;
  return -1;
}

/* Space for the record, but not for a whole growth step: the file should
 * grow by what the record needs (as it does at the end of the address
 * reservation) instead of failing with -ENOSPC although the disk is not
 * full. */
static off_t space_left;
static int (*real_reserve2)(int fd, off_t off, off_t len);
static int limited_reserve(int fd, off_t off, off_t len) {
  if (len > space_left) {
    errno = ENOSPC;
    return -1;
  }
  space_left -= len;
  return real_reserve2(fd, off, len);
}

static void test_disk_nearly_full(void **state) {
  const char *path = fx_path("store-nearlyfull");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  uint8_t v[1000];
  mapkv_stats st;
  unsigned n = 0;
  (void)state;

  fill_val(v, sizeof v, 3);
  o.initial_size = 64 << 10;
  o.growth_step = 64 << 10;
  o.sync_mode = MAPKV_SYNC_NONE;
  db = open_opts(path, &o);
  assert_rc(mapkv_put(db, "first", 5, v, sizeof v), 0);
  st = stat_of(db);
  /* Fill the file up to its last kilobyte or so. */
  while (st.data_end + 2 * REC(12, sizeof v) <= st.file_size) {
    char k[32];
    size_t kl = mkkey(k, sizeof k, "fill", n++);
    assert_rc(mapkv_put(db, k, kl, v, sizeof v), 0);
    st = stat_of(db);
  }
  assert_int_equal(stat_of(db).file_size, st.file_size); /* no growth yet */

  /* 16 KiB left on the disk: enough for the next record, not for a 64 KiB
   * growth step. */
  real_reserve2 = mapkv__os.reserve;
  space_left = 16 << 10;
  mapkv__os.reserve = limited_reserve;
  for (unsigned i = 0; i < 4; i++) {
    char k[32];
    size_t kl = mkkey(k, sizeof k, "tail", i);
    assert_rc(mapkv_put(db, k, kl, v, sizeof v), 0);
    expect_val(db, k, kl, v, sizeof v);
  }
  mapkv__os_reset();
  assert_true(stat_of(db).file_size > st.file_size);
  close_ok(db);
}

static int eio_msync(void *addr, size_t len, int flags) {
  (void)addr;
  (void)len;
  (void)flags;
  errno = EIO;
  return -1;
}

/* ---- a random workload against a model ----------------------------------- */

#define MK 3000 /* keys */

typedef struct model {
  uint32_t ver[MK]; /* 0: absent */
  uint16_t len[MK];
} model;

static uint32_t lcg(uint64_t *st) {
  *st = *st * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(*st >> 33);
}

static size_t model_val(uint8_t *buf, unsigned i, uint32_t ver) {
  size_t len = (size_t)((i * 31u + ver * 17u) % 301u);
  fill_val(buf, len, (uint64_t)i << 32 | ver);
  return len;
}

static void expect_model(mapkv_t *db, const model *m) {
  static uint8_t seen[MK];
  uint64_t live = 0, records = 0;
  mapkv_cursor_t *c = NULL;
  const void *k, *v;
  size_t kl, vl;
  int rc;
  for (unsigned i = 0; i < MK; i++) {
    char key[32];
    uint8_t want[301];
    size_t klen = mkkey(key, sizeof key, "m", i);
    if (m->ver[i] == 0) {
      expect_missing(db, key, klen);
      continue;
    }
    assert_int_equal(model_val(want, i, m->ver[i]), m->len[i]);
    expect_val(db, key, klen, want, m->len[i]);
    live += REC(klen, m->len[i]);
    records++;
  }
  memset(seen, 0, sizeof seen);
  assert_rc(mapkv_cursor_open(db, "m", 1, &c), 0);
  while ((rc = mapkv_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
    char key[32];
    unsigned i;
    assert_true(kl < sizeof key);
    memcpy(key, k, kl);
    key[kl] = '\0';
    assert_int_equal(sscanf(key, "m%8u", &i), 1);
    assert_true(i < MK);
    assert_int_equal(seen[i], 0);
    seen[i] = 1;
    assert_int_not_equal(m->ver[i], 0);
    assert_int_equal(vl, m->len[i]);
  }
  assert_rc(rc, MAPKV_NOTFOUND);
  mapkv_cursor_close(c);
  {
    mapkv_stats st = stat_of(db);
    expect_consistent(&st, NULL);
    assert_int_equal(st.records, records);
    assert_int_equal(st.live_bytes, live);
  }
}

static void test_random_ops_against_model(void **state) {
  const char *path = fx_path("store-model");
  const char *crash = fx_path("store-model-crash");
  mapkv_options o = opts_with(MAPKV_CREATE);
  model *m = calloc(1, sizeof *m);
  mapkv_t *db;
  uint64_t rs = 2024;
  uint32_t next = 1;
  (void)state;

  assert_non_null(m);
  o.sync_mode = MAPKV_SYNC_NONE;
  o.initial_size = 16384;
  o.growth_step = 8192;
  db = open_opts(path, &o);
  for (unsigned op = 0; op < 30000; op++) {
    unsigned i = lcg(&rs) % MK, kind = lcg(&rs) % 100;
    char key[32];
    uint8_t v[301];
    size_t kl = mkkey(key, sizeof key, "m", i);
    if (kind < 60) {
      uint32_t ver = next++;
      size_t vl = model_val(v, i, ver);
      assert_rc(mapkv_put(db, key, kl, v, vl), 0);
      m->ver[i] = ver;
      m->len[i] = (uint16_t)vl;
    } else if (kind < 85) {
      assert_rc(mapkv_del(db, key, kl), m->ver[i] ? 0 : MAPKV_NOTFOUND);
      m->ver[i] = 0;
    } else {
      mapkv_batch_t *b = NULL;
      unsigned n = 1 + lcg(&rs) % 8;
      assert_rc(mapkv_batch_begin(db, &b), 0);
      for (unsigned j = 0; j < n; j++) {
        unsigned x = lcg(&rs) % MK;
        kl = mkkey(key, sizeof key, "m", x);
        if (lcg(&rs) % 3 == 0) {
          assert_rc(mapkv_batch_del(b, key, kl), 0);
          m->ver[x] = 0;
        } else {
          uint32_t ver = next++;
          size_t vl = model_val(v, x, ver);
          assert_rc(mapkv_batch_put(b, key, kl, v, vl), 0);
          m->ver[x] = ver;
          m->len[x] = (uint16_t)vl;
        }
      }
      assert_rc(mapkv_batch_commit(b), 0);
    }
    if (op == 15000) {
      expect_model(db, m);
      assert_rc(mapkv_compact(db), 0);
      expect_model(db, m);
    }
  }
  expect_model(db, m);
  copy_file(path, crash);
  close_ok(db);

  db = open_new(path); /* the clean walk */
  assert_int_equal(stat_of(db).clean_open, 1);
  expect_model(db, m);
  assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);
  assert_rc(mapkv_compact(db), 0);
  expect_model(db, m);
  close_ok(db);
  db = open_rdonly(path);
  expect_model(db, m);
  close_ok(db);

  db = open_new(crash); /* the full recovery scan */
  assert_int_equal(stat_of(db).clean_open, 0);
  assert_int_equal(stat_of(db).damaged_regions, 0);
  assert_int_equal(stat_of(db).dropped_tail_bytes, 0);
  expect_model(db, m);
  close_ok(db);
  free(m);
}

/* ---- a last record whose checksum ends in zero bytes --------------------- */

/* Puts records until the last byte of the log (the top byte of the last
 * record's checksum) is zero: about one record in 256. Returns how many
 * records were put; the last key is "z<n-1>". */
static unsigned put_until_last_byte_zero(mapkv_t *db, const char *path) {
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  for (unsigned i = 0; i < 20000; i++) {
    char k[32];
    uint8_t v[8], last = 0xFF;
    size_t kl = mkkey(k, sizeof k, "z", i);
    fill_val(v, sizeof v, i);
    assert_rc(mapkv_put(db, k, kl, v, sizeof v), 0);
    assert_int_equal(pread(fd, &last, 1, (off_t)stat_of(db).data_end - 1), 1);
    if (last == 0) {
      close(fd);
      return i + 1;
    }
  }
  close(fd);
  fail_msg("no record checksum ended in a zero byte");
  return 0;
}

static void expect_z_records(mapkv_t *db, unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    char k[32];
    uint8_t v[8];
    size_t kl = mkkey(k, sizeof k, "z", i);
    fill_val(v, sizeof v, i);
    expect_val(db, k, kl, v, sizeof v);
  }
  assert_int_equal(stat_of(db).records, n);
}

/* verify() on an intact store whose last checksum ends in 0x00. */
static void test_verify_last_checksum_zero(void **state) {
  const char *path = fx_path("store-zerosum-verify");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  uint64_t damaged = 99;
  unsigned n;
  (void)state;
  o.sync_mode = MAPKV_SYNC_NONE;
  db = open_opts(path, &o);
  n = put_until_last_byte_zero(db, path);
  expect_z_records(db, n);
  assert_rc(mapkv_verify(db, NULL, NULL, &damaged), 0);
  assert_int_equal(damaged, 0);
  close_ok(db);
}

/* A crash (no clean close) when the last record's checksum ends in 0x00:
 * recovery must keep that committed record. */
static void test_recover_last_checksum_zero(void **state) {
  const char *path = fx_path("store-zerosum");
  const char *crash = fx_path("store-zerosum-crash");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  mapkv_stats st;
  unsigned n;
  (void)state;
  db = open_opts(path, &o); /* SYNC_COMMIT: every put acknowledged durable */
  n = put_until_last_byte_zero(db, path);
  copy_file(path, crash);
  close_ok(db);

  db = open_rdonly(crash);
  st = stat_of(db);
  assert_int_equal(st.dropped_tail_bytes, 0);
  expect_z_records(db, n);
  close_ok(db);
  db = open_new(crash);
  assert_int_equal(stat_of(db).clean_open, 0);
  expect_z_records(db, n);
  close_ok(db);
}

/* ---- failures during compaction and close -------------------------------- */

static int eio_rename(const char *from, const char *to) {
  (void)from;
  (void)to;
  errno = EIO;
  return -1;
}

static int eio_fsync(int fd) {
  (void)fd;
  errno = EIO;
  return -1;
}

static void fill_compactable(mapkv_t *db) {
  char k[32];
  for (unsigned round = 0; round < 3; round++)
    for (unsigned i = 0; i < 300; i++) {
      mkkey(k, sizeof k, "f", i);
      put_str(db, k, round == 2 ? k : "older value");
    }
  for (unsigned i = 0; i < 300; i += 3) {
    size_t kl = mkkey(k, sizeof k, "f", i);
    assert_rc(mapkv_del(db, k, kl), 0);
  }
}

static void expect_compactable(mapkv_t *db) {
  char k[32];
  for (unsigned i = 0; i < 300; i++) {
    size_t kl = mkkey(k, sizeof k, "f", i);
    if (i % 3 == 0)
      expect_missing(db, k, kl);
    else
      expect_str(db, k, k);
  }
  assert_int_equal(stat_of(db).records, 200);
}

static void test_compact_failures(void **state) {
  const char *path = fx_path("store-compact-fail");
  char tmp[300];
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  mapkv_stats before, after;
  snap s;
  (void)state;

  o.sync_mode = MAPKV_SYNC_NONE; /* compaction flushes its file anyway */
  db = open_opts(path, &o);

  snprintf(tmp, sizeof tmp, "%s.compact", path);
  fill_compactable(db);
  before = stat_of(db);

  /* The rename fails: the store is unchanged, the handle on the old file. */
  s = snap_take(path);
  mapkv__os.rename = eio_rename;
  assert_rc(mapkv_compact(db), -EIO);
  assert_non_null(strstr(mapkv_errmsg(), "renam"));
  mapkv__os_reset();
  snap_expect_same(path, s);
  assert_false(file_exists(tmp));
  after = stat_of(db);
  assert_int_equal(after.generation, before.generation);
  assert_int_equal(after.data_end, before.data_end);
  expect_compactable(db);

  /* No space for the new file: unchanged too. */
  s = snap_take(path);
  mapkv__os.reserve = enospc_reserve;
  assert_rc(mapkv_compact(db), -ENOSPC);
  mapkv__os_reset();
  snap_expect_same(path, s);
  assert_false(file_exists(tmp));
  assert_int_equal(stat_of(db).generation, before.generation);
  expect_compactable(db);

  /* The new file cannot be flushed: unchanged. */
  s = snap_take(path);
  mmf__sys.msync = eio_msync;
  assert_rc(mapkv_compact(db), -EIO);
  mmf__sys_reset();
  snap_expect_same(path, s);
  assert_false(file_exists(tmp));
  assert_int_equal(stat_of(db).generation, before.generation);

  /* Writes go on after failed compactions. */
  put_str(db, "more", "data");
  assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);

  /* Only the directory sync fails: the handle is on the new file. */
  mapkv__os.fsync = eio_fsync;
  assert_rc(mapkv_compact(db), -EIO);
  mapkv__os_reset();
  after = stat_of(db);
  assert_int_equal(after.generation, before.generation + 1);
  assert_int_equal(after.dead_bytes, 0);
  assert_int_equal(after.file_size, (uint64_t)tu_file_size(path));
  assert_false(file_exists(tmp));
  expect_str(db, "more", "data");
  put_str(db, "after", "dirsync");
  close_ok(db);
  db = open_new(path);
  assert_int_equal(stat_of(db).generation, before.generation + 1);
  expect_str(db, "after", "dirsync");
  expect_str(db, "more", "data");
  assert_int_equal(stat_of(db).records, 202);
  close_ok(db);
}

static void test_close_flush_failure(void **state) {
  const char *path = fx_path("store-close-eio");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  (void)state;

  o.sync_mode = MAPKV_SYNC_NONE;
  db = open_opts(path, &o);
  put_str(db, "k", "v");
  mmf__sys.msync = eio_msync;
  untrack(db);
  assert_rc(mapkv_close(db), -EIO); /* and the handle is freed */
  mmf__sys_reset();

  /* Not marked clean; the data the process wrote is there. */
  db = open_new(path);
  assert_int_equal(stat_of(db).clean_open, 0);
  expect_str(db, "k", "v");
  close_ok(db);
}

/* ---- views --------------------------------------------------------------- */

static void test_view_stable_until_compact(void **state) {
  const char *path = fx_path("store-view");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  const void *view = NULL, *view2 = NULL;
  size_t vlen = 0;
  uint8_t v[1000], copy[1000];
  mapkv_stats before;
  (void)state;

  o.initial_size = 8192;
  o.growth_step = 4096;
  o.sync_mode = MAPKV_SYNC_NONE;
  db = open_opts(path, &o);
  fill_val(v, sizeof v, 11);
  assert_rc(mapkv_put(db, "k", 1, v, sizeof v), 0);
  assert_rc(mapkv_get_view(db, "k", 1, &view, &vlen), 0);
  assert_int_equal(vlen, sizeof v);
  memcpy(copy, view, sizeof copy);
  before = stat_of(db);

  /* Overwrites, deletes and growth: the view still shows the old bytes. */
  assert_rc(mapkv_put(db, "k", 1, "new", 3), 0);
  assert_rc(mapkv_del(db, "k", 1), 0);
  for (unsigned i = 0; i < 400; i++) {
    char k[32];
    size_t kl = mkkey(k, sizeof k, "grow", i);
    assert_rc(mapkv_put(db, k, kl, v, 500), 0);
  }
  assert_true(stat_of(db).file_size >= 8 * before.file_size);
  assert_memory_equal(view, copy, sizeof copy);
  assert_memory_equal(view, v, sizeof v);

  /* Views of the same record are the same pointer. */
  assert_rc(mapkv_put(db, "k", 1, v, sizeof v), 0);
  assert_rc(mapkv_get_view(db, "k", 1, &view, NULL), 0);
  assert_rc(mapkv_get_view(db, "k", 1, &view2, NULL), 0);
  assert_ptr_equal(view, view2);
  close_ok(db);
}

/* ---- read-only handles --------------------------------------------------- */

static void test_readonly_handle(void **state) {
  const char *path = fx_path("store-ro");
  mapkv_t *db = open_new(path), *ro, *ro2;
  mapkv_batch_t *b = (mapkv_batch_t *)&fx;
  mapkv_cursor_t *c = NULL;
  uint64_t damaged = 9;
  snap s;
  (void)state;

  put_str(db, "k", "v");
  put_str(db, "gone", "x");
  assert_rc(mapkv_del(db, "gone", 4), 0);
  close_ok(db);

  s = snap_take(path);
  ro = open_rdonly(path);
  expect_str(ro, "k", "v");
  expect_missing(ro, "gone", 4);
  assert_rc(mapkv_put(ro, "k", 1, "w", 1), MAPKV_EREADONLY);
  assert_non_null(strstr(mapkv_errmsg(), "read-only"));
  assert_rc(mapkv_put(ro, "new", 3, "w", 1), MAPKV_EREADONLY);
  assert_rc(mapkv_del(ro, "k", 1), MAPKV_EREADONLY);
  assert_rc(mapkv_del(ro, "missing", 7), MAPKV_EREADONLY);
  assert_rc(mapkv_batch_begin(ro, &b), MAPKV_EREADONLY);
  assert_ptr_equal(b, (mapkv_batch_t *)&fx);
  assert_rc(mapkv_sync(ro), MAPKV_EREADONLY);
  assert_rc(mapkv_compact(ro), MAPKV_EREADONLY);
  /* Reading operations work. */
  assert_rc(mapkv_verify(ro, NULL, NULL, &damaged), 0);
  assert_int_equal(damaged, 0);
  assert_rc(mapkv_cursor_open(ro, NULL, 0, &c), 0);
  assert_rc(mapkv_cursor_next(c, NULL, NULL, NULL, NULL), 0);
  assert_rc(mapkv_cursor_next(c, NULL, NULL, NULL, NULL), MAPKV_NOTFOUND);
  mapkv_cursor_close(c);
  assert_int_equal(stat_of(ro).records, 1);
  assert_int_equal(stat_of(ro).clean_open, 1);
  /* Several readers at once. */
  ro2 = open_rdonly(path);
  expect_str(ro2, "k", "v");
  close_ok(ro2);
  expect_str(ro, "k", "v");
  close_ok(ro);
  snap_expect_same(path, s);

  /* MAPKV_CREATE does not make a read-only open create anything. */
  {
    const char *missing = fx_path("store-ro-missing");
    mapkv_options o = opts_with(MAPKV_RDONLY);
    mapkv_t *out = SENTINEL;
    assert_rc(mapkv_open(missing, &o, &out), -ENOENT);
    assert_ptr_equal(out, SENTINEL);
    o.flags = MAPKV_RDONLY | MAPKV_CREATE;
    assert_rc(mapkv_open(missing, &o, &out), -ENOENT);
    assert_ptr_equal(out, SENTINEL);
    assert_false(file_exists(missing));
  }
}

static void test_readonly_sees_state_at_open(void **state) {
  const char *path = fx_path("store-ro-snapshot");
  mapkv_t *db = open_new(path), *ro;
  (void)state;

  put_str(db, "before", "1");
  put_str(db, "changed", "old");
  ro = open_rdonly(path); /* no lock: allowed while a writer has it */
  put_str(db, "after", "2");
  put_str(db, "changed", "new");
  expect_str(ro, "before", "1");
  expect_str(ro, "changed", "old");
  expect_missing(ro, "after", 5);
  assert_int_equal(stat_of(ro).clean_open, 0); /* the writer is open */
  close_ok(ro);
  close_ok(db);
}

/* ---- files that are not intact stores ------------------------------------ */

/* Opening path must fail with want, in every mode, and leave it unchanged. */
static void expect_open_fails(const char *path, int want) {
  static const unsigned modes[] = {MAPKV_RDONLY, 0, MAPKV_CREATE};
  snap s = snap_take(path);
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    mapkv_options o = opts_with(modes[i]);
    mapkv_t *db = SENTINEL;
    int rc = mapkv_open(path, &o, &db);
    if (rc == 0)
      track(db); /* closed in teardown */
    if (rc != want)
      fail_msg("open(flags 0x%x): got %d (%s; \"%s\"), want %d (%s)", modes[i],
               rc, mapkv_strerror(rc), mapkv_errmsg(), want,
               mapkv_strerror(want));
    assert_ptr_equal(db, SENTINEL);
    assert_true(strlen(mapkv_errmsg()) > 0);
  }
  snap_expect_same(path, s);
  {
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.creating", path);
    assert_false(file_exists(tmp));
  }
}

static void test_open_not_a_store(void **state) {
  const char *path = fx_path("store-notdb");
  uint8_t junk[8192];
  const char *text = "This is a text file.\nIt is not a mapkv store.\n";
  (void)state;

  fill_val(junk, sizeof junk, 42);
  write_file(path, junk, sizeof junk);
  expect_open_fails(path, MAPKV_ENOTDB);
  assert_non_null(strstr(mapkv_errmsg(), "not a mapkv store"));

  write_file(path, text, strlen(text));
  expect_open_fails(path, MAPKV_ENOTDB);

  write_file(path, NULL, 0);
  expect_open_fails(path, MAPKV_ENOTDB);
  assert_int_equal(tu_file_size(path), 0);

  /* 7 bytes of the magic number and nothing else. */
  write_file(path, "MAPKV\0\x1a", 7);
  expect_open_fails(path, MAPKV_ENOTDB);

  /* A directory. */
  {
    const char *dir = fx_path("store-notdb-dir");
    mapkv_options o = opts_with(MAPKV_RDONLY);
    mapkv_t *db = SENTINEL;
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_rc(mapkv_open(dir, &o, &db), MAPKV_ENOTDB);
    o.flags = 0; /* open() says EISDIR: a directory is no store either */
    assert_rc(mapkv_open(dir, &o, &db), MAPKV_ENOTDB);
    assert_non_null(strstr(mapkv_errmsg(), "directory"));
    assert_ptr_equal(db, SENTINEL);
    rmdir(dir);
  }
}

static void test_open_truncated(void **state) {
  const char *path = fx_path("store-trunc");
  uint8_t head[100];
  (void)state;

  memset(head, 0, sizeof head);
  memcpy(head, "MAPKV\0\x1a\n", 8);
  write_file(path, head, sizeof head);
  expect_open_fails(path, MAPKV_ETRUNCATED);
  assert_non_null(strstr(mapkv_errmsg(), "100"));

  /* A real store cut inside its header page. */
  {
    mapkv_t *db;
    size_t len;
    uint8_t *b;
    unlink(path);
    db = open_new(path);
    put_str(db, "k", "v");
    close_ok(db);
    b = tu_slurp(path, &len);
    write_file(path, b, 4000);
    free(b);
    expect_open_fails(path, MAPKV_ETRUNCATED);
  }
}

/* Rewrites the header copies of a closed store: version va in copy A and
 * vb in copy B (0: leave that copy alone), with valid checksums. */
static void set_header_versions(const char *path, uint32_t va, uint32_t vb) {
  size_t len;
  uint8_t *b = tu_slurp(path, &len);
  mapkv__header h;
  assert_rc(mapkv__header_decode(b, len, &h, NULL, NULL), 0);
  if (va != 0) {
    h.version = va;
    mapkv__header_encode(b, &h);
  }
  if (vb != 0) {
    h.version = vb;
    mapkv__header_encode(b + MAPKV__HDR_COPY_B, &h);
  }
  write_file(path, b, len);
  free(b);
}

static void make_store(const char *path) {
  mapkv_t *db = open_new(path);
  put_str(db, "key", "value");
  close_ok(db);
}

static void test_open_newer_version(void **state) {
  const char *path = fx_path("store-v3");
  (void)state;
  make_store(path);
  set_header_versions(path, 3, 3);
  expect_open_fails(path, MAPKV_EVERSION);
  assert_non_null(strstr(mapkv_errmsg(), "version 3"));
}

/* Copy A is intact and says version 2 (a newer writer updated it and had
 * not yet updated copy B): FORMAT.md says a reader uses copy A when it is
 * intact, and refuses a newer version. */
static void test_open_newer_version_in_copy_a(void **state) {
  const char *path = fx_path("store-v3a");
  (void)state;
  make_store(path);
  set_header_versions(path, 3, 0);
  expect_open_fails(path, MAPKV_EVERSION);
}

static void flip_byte(const char *path, uint64_t off) {
  int fd = open(path, O_RDWR);
  uint8_t c;
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
  c ^= 0x5A;
  assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
  close(fd);
}

static void test_open_damaged_headers(void **state) {
  const char *path = fx_path("store-hdr");
  mapkv_t *db;
  (void)state;

  /* Copy A damaged: copy B serves. */
  make_store(path);
  flip_byte(path, 30); /* file id of copy A */
  db = open_new(path);
  expect_str(db, "key", "value");
  close_ok(db);

  /* Copy B damaged: copy A serves (the close rewrote both copies). */
  flip_byte(path, MAPKV__HDR_COPY_B + 30);
  db = open_rdonly(path);
  expect_str(db, "key", "value");
  close_ok(db);

  /* Both damaged. */
  flip_byte(path, 30);
  expect_open_fails(path, MAPKV_ECORRUPT);
  assert_non_null(strstr(mapkv_errmsg(), "header"));

  /* Both checksums damaged, elsewhere. */
  unlink(path);
  make_store(path);
  flip_byte(path, 120);
  flip_byte(path, MAPKV__HDR_COPY_B + 127);
  expect_open_fails(path, MAPKV_ECORRUPT);
}

/* Both copies fail their checksum and one claims a newer version (whose
 * checksum this version may not know how to check): FORMAT.md says the file
 * is refused as newer. Both damaged with known versions: corrupt. */
static void test_open_damaged_version_fields(void **state) {
  const char *path = fx_path("store-hdrver");
  (void)state;
  make_store(path);
  flip_byte(path, 8); /* version 2 ^ 0x5A = 88, checksum now wrong */
  flip_byte(path, MAPKV__HDR_COPY_B + 8);
  expect_open_fails(path, MAPKV_EVERSION);
  assert_non_null(strstr(mapkv_errmsg(), "88"));

  unlink(path);
  make_store(path);
  flip_byte(path, 8);                      /* A: claims version 88 */
  flip_byte(path, MAPKV__HDR_COPY_B + 40); /* B: version 2, damaged */
  expect_open_fails(path, MAPKV_EVERSION);

  /* A copy of version 0 is damaged, not newer. */
  unlink(path);
  make_store(path);
  flip_byte(path, 40);
  {
    int fd = open(path, O_RDWR);
    uint8_t zero = 0;
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &zero, 1, MAPKV__HDR_COPY_B + 8), 1);
    close(fd);
  }
  expect_open_fails(path, MAPKV_ECORRUPT);
}

/* ---- fault injection ----------------------------------------------------- */

static void test_disk_full(void **state) {
  const char *path = fx_path("store-enospc");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  mapkv_batch_t *b = NULL;
  mapkv_stats before, after;
  uint8_t *big = malloc(100 << 10), small[1000];
  snap s;
  (void)state;

  assert_non_null(big);
  fill_val(big, 100 << 10, 1);
  fill_val(small, sizeof small, 2);
  o.initial_size = 64 << 10;
  o.growth_step = 64 << 10;
  db = open_opts(path, &o);
  assert_rc(mapkv_put(db, "first", 5, small, sizeof small), 0);
  before = stat_of(db);
  assert_true(before.file_size >= 64 << 10);
  assert_true(before.file_size < 100 << 10); /* "big" does not fit */

  mapkv__os.reserve = enospc_reserve;
  s = snap_take(path);
  assert_rc(mapkv_put(db, "big", 3, big, 100 << 10), -ENOSPC);
  assert_true(strlen(mapkv_errmsg()) > 0);
  assert_rc(mapkv_batch_begin(db, &b), 0);
  assert_rc(mapkv_batch_put(b, "b1", 2, small, sizeof small), 0);
  assert_rc(mapkv_batch_put(b, "b2", 2, big, 100 << 10), 0);
  assert_rc(mapkv_batch_commit(b), -ENOSPC);
  snap_expect_same(path, s);
  after = stat_of(db);
  assert_int_equal(after.data_end, before.data_end);
  assert_int_equal(after.file_size, before.file_size);
  assert_int_equal(after.last_seq, before.last_seq);
  expect_missing(db, "big", 3);
  expect_missing(db, "b1", 2);
  expect_missing(db, "b2", 2);

  /* Records that fit in the file as it is are still written. */
  for (unsigned i = 0; i < 20; i++) {
    char k[32];
    size_t kl = mkkey(k, sizeof k, "fits", i);
    assert_rc(mapkv_put(db, k, kl, small, sizeof small), 0);
  }
  assert_int_equal(stat_of(db).file_size, before.file_size);
  assert_rc(mapkv_del(db, "first", 5), 0);

  /* Space again. */
  mapkv__os_reset();
  assert_rc(mapkv_put(db, "big", 3, big, 100 << 10), 0);
  expect_val(db, "big", 3, big, 100 << 10);
  close_ok(db);
  db = open_new(path);
  expect_val(db, "big", 3, big, 100 << 10);
  expect_val(db, "fits00000019", 12, small, sizeof small);
  expect_missing(db, "first", 5);
  expect_missing(db, "b1", 2);
  assert_int_equal(stat_of(db).records, 21);
  assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);
  close_ok(db);
  free(big);
}

static void test_msync_failure(void **state) {
  const char *path = fx_path("store-eio");
  mapkv_t *db = open_new(path);
  mapkv_batch_t *b = NULL;
  mapkv_stats before, after;
  snap s;
  (void)state;

  put_str(db, "a", "1");
  before = stat_of(db);
  s = snap_take(path);
  mmf__sys.msync = eio_msync;
  assert_rc(mapkv_put(db, "b", 1, "2", 1), -EIO);
  assert_non_null(strstr(mapkv_errmsg(), "msync"));
  expect_missing(db, "b", 1);
  assert_rc(mapkv_put(db, "a", 1, "changed", 7), -EIO);
  expect_str(db, "a", "1");
  assert_rc(mapkv_del(db, "a", 1), -EIO);
  expect_str(db, "a", "1");
  assert_rc(mapkv_batch_begin(db, &b), 0);
  assert_rc(mapkv_batch_put(b, "c", 1, "3", 1), 0);
  assert_rc(mapkv_batch_del(b, "a", 1), 0);
  assert_rc(mapkv_batch_commit(b), -EIO);
  expect_missing(db, "c", 1);
  expect_str(db, "a", "1");
  after = stat_of(db);
  assert_int_equal(after.data_end, before.data_end);
  assert_int_equal(after.last_seq, before.last_seq);
  assert_int_equal(after.records, 1);
  snap_expect_same(path, s); /* the failed commits' bytes were zeroed */

  mmf__sys_reset();
  put_str(db, "d", "4");
  expect_str(db, "d", "4");
  expect_missing(db, "b", 1);
  close_ok(db);
  db = open_new(path);
  expect_str(db, "a", "1");
  expect_str(db, "d", "4");
  expect_missing(db, "b", 1);
  expect_missing(db, "c", 1);
  assert_int_equal(stat_of(db).records, 2);
  assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);
  close_ok(db);
}

static void test_sync_failure_explicit(void **state) {
  const char *path = fx_path("store-eio-explicit");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  (void)state;
  o.sync_mode = MAPKV_SYNC_EXPLICIT;
  db = open_opts(path, &o);
  mmf__sys.msync = eio_msync;
  put_str(db, "k", "v"); /* no flush per commit in this mode */
  assert_rc(mapkv_sync(db), -EIO);
  mmf__sys_reset();
  assert_rc(mapkv_sync(db), 0);
  close_ok(db);
  db = open_new(path);
  expect_str(db, "k", "v");
  close_ok(db);
}

/* The mapping core sees an empty file (e.g. truncated by another process
 * between the engine's checks and the mapping): a non-OS mmf error. */
static int empty_fstat(int fd, struct stat *st) {
  int rc = fstat(fd, st);
  if (rc == 0)
    st->st_size = 0;
  return rc;
}

static void test_mapping_core_error(void **state) {
  const char *path = fx_path("store-emap");
  mapkv_t *db = SENTINEL;
  snap s;
  (void)state;
  make_store(path);
  s = snap_take(path);
  mmf__sys.fstat = empty_fstat;
  /* The mapping core refuses (ValueError: an empty file); the engine says
   * so with its own code, never the core's. */
  assert_rc(mapkv_open(path, NULL, &db), MAPKV_EINVAL);
  assert_ptr_equal(db, SENTINEL);
  assert_non_null(strstr(mapkv_errmsg(), "empty"));
  mmf__sys_reset();
  snap_expect_same(path, s);
  db = open_new(path);
  expect_str(db, "key", "value");
  close_ok(db);
}

static void test_out_of_memory(void **state) {
  const char *path = fx_path("store-enomem");
  mapkv_t *db = open_new(path);
  pid_t pid;
  int status = 0;
  (void)state;

  put_str(db, "k", "v");
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* The child: no more address space than it has now plus 16 MiB, then a
     * batch asked to hold a value of 64 MiB. */
    size_t big = MAPKV_DEFAULT_VALUE_MAX;
    void *val = mmap(NULL, big, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mapkv_batch_t *b = NULL;
    unsigned long pages = 0;
    struct rlimit rl;
    FILE *f = fopen("/proc/self/statm", "r");
    int rc;
    if (val == MAP_FAILED || f == NULL || fscanf(f, "%lu", &pages) != 1)
      _exit(10);
    fclose(f);
    if (mapkv_batch_begin(db, &b) != 0)
      _exit(11);
    if (getrlimit(RLIMIT_AS, &rl) != 0)
      _exit(12);
    rl.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (16u << 20);
    if (setrlimit(RLIMIT_AS, &rl) != 0)
      _exit(13);
    rc = mapkv_batch_put(b, "big", 3, val, big);
    if (rc != MAPKV_ENOMEM)
      _exit(rc == 0 ? 14 : 15);
    if (strstr(mapkv_errmsg(), "memory") == NULL)
      _exit(16);
    /* The batch is still usable. */
    if (mapkv_batch_put(b, "small", 5, "ok", 2) != 0)
      _exit(17);
    mapkv_batch_abort(b);
    _exit(0); /* without closing: the parent owns the store */
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  expect_str(db, "k", "v");
  expect_missing(db, "small", 5);
  close_ok(db);
}

static void test_store_full(void **state) {
  const char *path = fx_path("store-efull");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  enum { VSZ = 200 << 10 };
  uint8_t *v = malloc(VSZ);
  mapkv_stats before;
  unsigned n = 0;
  char k[32];
  snap s;
  int rc;
  (void)state;

  assert_non_null(v);
  fill_val(v, VSZ, 5);
  o.reserve = 1 << 20;
  db = open_opts(path, &o);
  assert_int_equal(stat_of(db).reserved_size, 1 << 20);
  for (;;) {
    size_t kl = mkkey(k, sizeof k, "full", n);
    before = stat_of(db);
    s = snap_take(path);
    rc = mapkv_put(db, k, kl, v, VSZ);
    if (rc != 0)
      break;
    free(s.bytes);
    n++;
    assert_true(n < 10);
  }
  assert_rc(rc, MAPKV_EFULL);
  assert_non_null(strstr(mapkv_errmsg(), "reserve"));
  assert_int_equal(n, 5); /* 5 x 200 KiB fit in 1 MiB, a sixth does not */
  snap_expect_same(path, s);
  assert_int_equal(stat_of(db).data_end, before.data_end);
  assert_int_equal(stat_of(db).file_size, before.file_size);
  assert_true(stat_of(db).file_size <= 1 << 20);
  expect_missing(db, k, strlen(k));
  /* A batch too large for the reservation: none of it is applied. */
  {
    mapkv_batch_t *b = NULL;
    s = snap_take(path);
    assert_rc(mapkv_batch_begin(db, &b), 0);
    assert_rc(mapkv_batch_put(b, "b-small", 7, v, 10), 0);
    assert_rc(mapkv_batch_put(b, "b-big", 5, v, VSZ), 0);
    assert_rc(mapkv_batch_commit(b), MAPKV_EFULL);
    snap_expect_same(path, s);
    expect_missing(db, "b-small", 7);
    expect_missing(db, "b-big", 5);
  }
  /* What fits still fits. */
  assert_rc(mapkv_put(db, "small", 5, v, 1000), 0);
  close_ok(db);

  /* Reopened with a larger reservation, the store grows. */
  o.reserve = 8 << 20;
  db = open_opts(path, &o);
  assert_rc(mapkv_put(db, k, strlen(k), v, VSZ), 0);
  assert_rc(mapkv_put(db, "another", 7, v, VSZ), 0);
  assert_true(stat_of(db).file_size > 1 << 20);
  for (unsigned i = 0; i <= n; i++) {
    size_t kl = mkkey(k, sizeof k, "full", i);
    expect_val(db, k, kl, v, VSZ);
  }
  close_ok(db);
  free(v);
}

/* A store whose last sequence number is the second-largest the format
 * has: a write needs more and is refused, with nothing written; a
 * compaction numbers the records from 1 again. */
static void test_sequence_numbers_exhausted(void **state) {
  const char *path = fx_path("store-seqmax");
  const uint64_t fid = 0x5e45e45e4ull;
  uint8_t img[2 * HDR];
  mapkv__header h;
  mapkv_batch_t *b = NULL;
  mapkv_t *db;
  uint64_t at = HDR;
  snap s;
  (void)state;
  memset(img, 0, sizeof img);
  at +=
      mapkv__rec_encode(img + at, MAPKV__T_PUT, MAPKV__F_FIRST | MAPKV__F_LAST,
                        MAPKV__SEQ_MAX - 1, 0, "key", 3, "value", 5, fid);
  memset(&h, 0, sizeof h);
  h.version = MAPKV_FORMAT_VERSION;
  h.page_size = HDR;
  h.flags = MAPKV__HF_CLEAN;
  h.file_id = fid;
  h.data_end = h.sealed_end = at;
  h.last_seq = MAPKV__SEQ_MAX - 1;
  h.live_records = 1;
  h.live_bytes = at - HDR;
  h.created = 1;
  h.max_key = MAPKV_DEFAULT_KEY_MAX;
  h.max_value = MAPKV_DEFAULT_VALUE_MAX;
  mapkv__header_encode(img, &h);
  mapkv__header_encode(img + MAPKV__HDR_COPY_B, &h);
  write_file(path, img, sizeof img);

  db = open_new(path);
  expect_str(db, "key", "value");
  assert_int_equal(stat_of(db).last_seq, MAPKV__SEQ_MAX - 1);
  s = snap_take(path);
  assert_rc(mapkv_put(db, "k2", 2, "v", 1), MAPKV_EFULL);
  assert_non_null(strstr(mapkv_errmsg(), "sequence numbers"));
  assert_rc(mapkv_del(db, "key", 3), MAPKV_EFULL);
  assert_rc(mapkv_batch_begin(db, &b), 0);
  assert_rc(mapkv_batch_put(b, "k3", 2, "v", 1), 0);
  assert_rc(mapkv_batch_commit(b), MAPKV_EFULL);
  snap_expect_same(path, s);
  expect_str(db, "key", "value");
  expect_missing(db, "k2", 2);

  assert_rc(mapkv_compact(db), 0);
  assert_int_equal(stat_of(db).last_seq, 1);
  put_str(db, "k2", "v");
  close_ok(db);
  db = open_rdonly(path);
  expect_str(db, "key", "value");
  expect_str(db, "k2", "v");
  close_ok(db);
}

static void test_locked_in_same_process(void **state) {
  const char *path = fx_path("store-lock1");
  mapkv_t *db = open_new(path), *other = SENTINEL, *ro;
  mapkv_options o = opts_with(MAPKV_CREATE);
  (void)state;

  put_str(db, "k", "v");
  assert_rc(mapkv_open(path, &o, &other), MAPKV_ELOCKED);
  assert_ptr_equal(other, SENTINEL);
  assert_non_null(strstr(mapkv_errmsg(), "another process"));
  o.flags = 0;
  assert_rc(mapkv_open(path, &o, &other), MAPKV_ELOCKED);
  ro = open_rdonly(path);
  expect_str(ro, "k", "v");
  close_ok(ro);
  close_ok(db);
  other = open_opts(path, &o);
  expect_str(other, "k", "v");
  close_ok(other);
}

/* ---- durability hooks and sync modes ------------------------------------- */

typedef struct flushes {
  int calls;
  int64_t lo, hi; /* union of the ranges seen */
} flushes;

static void flush_hook(void *ctx, int64_t off, int64_t len) {
  flushes *f = ctx;
  if (f->calls == 0 || off < f->lo)
    f->lo = off;
  if (f->calls == 0 || off + len > f->hi)
    f->hi = off + len;
  f->calls++;
}

static void test_sync_modes(void **state) {
  const char *path = fx_path("store-sync");
  mapkv_options o = opts_with(MAPKV_CREATE);
  flushes f;
  mapkv_t *db;
  uint64_t end0, end1;
  (void)state;

  memset(&f, 0, sizeof f);
  o.flush_hook = flush_hook;
  o.flush_hook_ctx = &f;

  /* COMMIT: every commit flushes the pages it wrote. */
  db = open_opts(path, &o);
  assert_true(f.calls >= 1); /* the header's clean flag */
  end0 = stat_of(db).data_end;
  memset(&f, 0, sizeof f);
  put_str(db, "k1", "v1");
  end1 = stat_of(db).data_end;
  assert_int_equal(f.calls, 1);
  assert_true(f.lo <= (int64_t)end0);
  assert_true(f.hi >= (int64_t)end1);
  memset(&f, 0, sizeof f);
  assert_rc(mapkv_sync(db), 0); /* nothing left to flush */
  assert_int_equal(f.calls, 0);
  close_ok(db);

  /* EXPLICIT: commits do not flush; mapkv_sync does. */
  o.sync_mode = MAPKV_SYNC_EXPLICIT;
  db = open_opts(path, &o);
  end0 = stat_of(db).data_end;
  memset(&f, 0, sizeof f);
  for (int i = 0; i < 10; i++)
    put_str(db, i % 2 ? "k2" : "k3", "v");
  assert_int_equal(f.calls, 0);
  end1 = stat_of(db).data_end;
  assert_rc(mapkv_sync(db), 0);
  assert_int_equal(f.calls, 1);
  assert_true(f.lo <= (int64_t)end0);
  assert_true(f.hi >= (int64_t)end1);
  close_ok(db);

  /* NONE: the close flushes. */
  o.sync_mode = MAPKV_SYNC_NONE;
  db = open_opts(path, &o);
  memset(&f, 0, sizeof f);
  put_str(db, "k4", "v4");
  assert_int_equal(f.calls, 0);
  close_ok(db);
  assert_true(f.calls >= 1);

  db = open_rdonly(path);
  expect_str(db, "k1", "v1");
  expect_str(db, "k2", "v");
  expect_str(db, "k4", "v4");
  close_ok(db);
}

/* ---- errors and messages ------------------------------------------------- */

static void test_strerror_all_codes(void **state) {
  static const int codes[] = {
#define CODE(name, value, text) name,
      MAPKV_ERRNO_MAP(CODE)
#undef CODE
  };
  size_t n = sizeof codes / sizeof codes[0];
  (void)state;

  assert_int_equal(n, 16);
  for (size_t i = 0; i < n; i++) {
    const char *s = mapkv_strerror(codes[i]);
    assert_non_null(s);
    assert_true(strlen(s) > 0);
    assert_string_not_equal(s, mapkv_strerror(0));
    assert_string_not_equal(s, "unknown error");
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(s, mapkv_strerror(codes[j]));
  }
  assert_string_equal(mapkv_strerror(MAPKV_ELOCKED),
                      "store is open for writing by another process");
  assert_true(strlen(mapkv_strerror(0)) > 0);
  assert_string_equal(mapkv_strerror(-ENOSPC), strerror(ENOSPC));
  assert_string_equal(mapkv_strerror(-EIO), strerror(EIO));
  assert_true(strlen(mapkv_strerror(12345)) > 0);
  assert_true(strlen(mapkv_strerror(-30799)) > 0);
  assert_non_null(mapkv_errmsg());
}

static void test_checksum_mismatch_message(void **state) {
  const char *path = fx_path("store-badsum");
  mapkv_t *db = open_new(path);
  uint8_t v[64], buf[64];
  uint64_t off, damaged = 0;
  damage_log d;
  char offtxt[32];
  static char seen[8][64];
  (void)state;

  fill_val(v, sizeof v, 9);
  put_str(db, "before", "intact");
  off = stat_of(db).data_end; /* the record of "target" starts here */
  assert_rc(mapkv_put(db, "target", 6, v, sizeof v), 0);
  put_str(db, "after", "intact");
  close_ok(db);

  flip_byte(path, off + MAPKV__REC_HEAD + 6 + 20); /* a byte of the value */
  db = open_new(path);
  assert_int_equal(stat_of(db).clean_open, 1);
  assert_rc(mapkv_get(db, "target", 6, buf, sizeof buf, NULL), MAPKV_ECORRUPT);
  snprintf(offtxt, sizeof offtxt, "%llu", (unsigned long long)off);
  assert_non_null(strstr(mapkv_errmsg(), "offset"));
  assert_non_null(strstr(mapkv_errmsg(), offtxt));
  assert_non_null(strstr(mapkv_errmsg(), "checksum"));
  {
    const void *view = SENTINEL;
    assert_rc(mapkv_get_view(db, "target", 6, &view, NULL), MAPKV_ECORRUPT);
    assert_ptr_equal(view, SENTINEL);
  }
  assert_int_equal(stat_of(db).checksum_failures, 2);
  {
    const void *keys[3] = {"before", "target", "after"}, *vals[3];
    size_t klens[3] = {6, 6, 5}, vlens[3];
    int rcs[3];
    assert_rc(mapkv_get_many(db, 3, keys, klens, vals, vlens, rcs), 0);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[1], MAPKV_ECORRUPT);
    assert_null(vals[1]);
    assert_int_equal(rcs[2], 0);
    assert_memory_equal(vals[2], "intact", 6);
  }
  assert_int_equal(stat_of(db).checksum_failures, 3);
  expect_str(db, "before", "intact");
  expect_str(db, "after", "intact");

  /* A cursor skips the damaged record and counts it. */
  assert_int_equal(walk_cursor(db, NULL, seen, 8), 2);
  assert_int_equal(stat_of(db).checksum_failures, 4);

  /* verify() finds it, with its offset. */
  memset(&d, 0, sizeof d);
  assert_rc(mapkv_verify(db, log_damage, &d, &damaged), MAPKV_ECORRUPT);
  assert_int_equal(damaged, 1);
  assert_int_equal(d.n, 1);
  assert_int_equal(d.off, off);
  assert_int_equal(d.len, REC(6, sizeof v));
  assert_true(strlen(d.what) > 0);
  assert_non_null(strstr(mapkv_errmsg(), offtxt));

  /* Compaction would drop the damaged record without a trace: refused,
   * and the store is unchanged (recover is the way to salvage). */
  {
    snap sn = snap_take(path);
    assert_rc(mapkv_compact(db), MAPKV_ECORRUPT);
    assert_non_null(strstr(mapkv_errmsg(), "recover"));
    snap_expect_same(path, sn);
  }
  assert_rc(mapkv_get(db, "target", 6, NULL, 0, NULL), MAPKV_ECORRUPT);
  expect_str(db, "before", "intact");
  expect_str(db, "after", "intact");
  assert_rc(mapkv_verify(db, NULL, NULL, &damaged), MAPKV_ECORRUPT);
  assert_int_equal(damaged, 1);
  close_ok(db);
}

int main(void) {
  /* MAPKV_TEST_FILTER=pattern runs only the matching tests. */
  if (getenv("MAPKV_TEST_FILTER") != NULL)
    cmocka_set_test_filter(getenv("MAPKV_TEST_FILTER"));
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_create_close_reopen),
      T(test_create_in_missing_directory),
      T(test_put_get_del_exists),
      T(test_empty_key_and_value),
      T(test_default_size_limits),
      T(test_custom_limits),
      T(test_invalid_options),
      T(test_sized_structs),
      T(test_null_arguments),
      T(test_get_small_buffer),
      T(test_missing_key),
      T(test_batch_same_key),
      T(test_batch_empty_and_abort),
      T(test_batch_all_empty),
      T(test_batch_atomic_visibility),
      T(test_batch_survives_reopen),
      T(test_cursor_all_and_prefix),
      T(test_cursor_overwritten_and_deleted),
      T(test_cursor_after_compact),
      T(test_stats_figures),
      T(test_clean_open_vs_crash),
      T(test_growth_many_resizes),
      T(test_expected_keys),
      T(test_get_many),
      T(test_verify),
      T(test_compact_keeps_live_and_shrinks),
      T(test_leftover_compact_file_removed),
      T(test_compact_failures),
      T(test_random_ops_against_model),
      T(test_verify_last_checksum_zero),
      T(test_recover_last_checksum_zero),
      T(test_close_flush_failure),
      T(test_view_stable_until_compact),
      T(test_readonly_handle),
      T(test_readonly_sees_state_at_open),
      T(test_open_not_a_store),
      T(test_open_truncated),
      T(test_open_newer_version),
      T(test_open_newer_version_in_copy_a),
      T(test_open_damaged_headers),
      T(test_open_damaged_version_fields),
      T(test_disk_full),
      T(test_disk_nearly_full),
      T(test_msync_failure),
      T(test_sync_failure_explicit),
      T(test_mapping_core_error),
      T(test_out_of_memory),
      T(test_store_full),
      T(test_sequence_numbers_exhausted),
      T(test_locked_in_same_process),
      T(test_sync_modes),
      T(test_strerror_all_codes),
      T(test_checksum_mismatch_message),
      T(test_null_pointer_zero_length),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
