/*
 * test_copy.c — mapkv_copy(): a copy of a store while its writer keeps
 * writing holds exactly the commits up to one point (every key and value
 * checked against a model of the writes, and the figures), the writer
 * does not wait for the copy (it commits and compacts while the copy is
 * written), compacting copies, stores with damage (refused), a path that
 * exists (-EEXIST unless forced) or lies in a missing directory, a full
 * disk and failing calls (nothing left behind), mode and owner, and
 * copies of read-only handles.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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

#define assert_rc(expr, want)                                                  \
  do {                                                                         \
    int rc_ = (expr), want_ = (want);                                          \
    if (rc_ != want_)                                                          \
      fail_msg("%s: got %d (%s; \"%s\"), want %d (%s)", #expr, rc_,            \
               mapkv_strerror(rc_), mapkv_errmsg(), want_,                     \
               mapkv_strerror(want_));                                         \
  } while (0)

/* ---- fixture: paths made by a test are removed in teardown --------------- */

#define FX_PATHS 16
static struct {
  char paths[FX_PATHS][300];
  int n;
} fx;

static int setup(void **state) {
  (void)state;
  memset(&fx, 0, sizeof fx);
  mapkv__os_reset();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  mapkv__os_reset();
  for (int i = fx.n - 1; i >= 0; i--) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'.*", fx.paths[i], fx.paths[i]);
    if (system(cmd) != 0)
      fprintf(stderr, "cleanup of %s failed\n", fx.paths[i]);
  }
  return 0;
}

static const char *fx_path(const char *tag) {
  assert_true(fx.n < FX_PATHS);
  tu_path(fx.paths[fx.n], sizeof fx.paths[0], tag);
  return fx.paths[fx.n++];
}

static mapkv_t *open_ok(const char *path, unsigned flags, int sync_mode) {
  mapkv_options o;
  mapkv_t *db = NULL;
  mapkv_options_init(&o);
  o.flags = flags;
  o.sync_mode = sync_mode;
  assert_rc(mapkv_open(path, &o, &db), 0);
  return db;
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

/* Entries of path's directory named "<base of path>.<anything>": the
 * temporary files of a copy to path. */
static int leftovers(const char *path) {
  char cmd[800];
  FILE *p;
  int n = -1;
  const char *slash = strrchr(path, '/');
  assert_non_null(slash);
  snprintf(cmd, sizeof cmd, "ls -a '%.*s' | grep -c -F '%s.' || true",
           (int)(slash - path), path, slash + 1);
  p = popen(cmd, "r");
  assert_non_null(p);
  if (fscanf(p, "%d", &n) != 1)
    n = -1;
  pclose(p);
  return n;
}

/* The file id of the store at path (header copy A, offset 24). */
static uint64_t file_id(const char *path) {
  uint8_t b[8];
  uint64_t id = 0;
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, b, 8, 24), 8);
  close(fd);
  for (int i = 7; i >= 0; i--)
    id = id << 8 | b[i];
  return id;
}

/* ---- the model: commit i of the writes, and the state after n commits ----- */

/* Commit i (from 1) puts key (7i mod NKEYS), on every fifth also deletes
 * key (3i mod NKEYS) (after the put: it wins when they are the same key),
 * and sets "counter" to i; all in one batch. The state after n commits
 * is therefore known from n alone, and a copy tells its n by its
 * counter. */
#define NKEYS 1500

static size_t key_of(unsigned k, char *buf) {
  return (size_t)sprintf(buf, "key:%05u", k);
}

static size_t val_of(uint64_t i, char *buf) {
  size_t n =
      (size_t)sprintf(buf, "value of commit %llu ", (unsigned long long)i);
  size_t pad = (size_t)(i * 37 % 180);
  memset(buf + n, 'a' + (int)(i % 26), pad);
  return n + pad;
}

typedef struct model {
  uint64_t by[NKEYS]; /* the commit whose value the key holds, 0: absent */
} model;

static void model_apply(model *m, uint64_t i) {
  m->by[i * 7 % NKEYS] = i;
  if (i % 5 == 0)
    m->by[i * 3 % NKEYS] = 0;
}

static void model_at(model *m, uint64_t n) {
  memset(m, 0, sizeof *m);
  for (uint64_t i = 1; i <= n; i++)
    model_apply(m, i);
}

/* Bytes of a record (FORMAT.md: 30 + key + value). */
#define REC(k, v) (30u + (uint64_t)(k) + (uint64_t)(v))

/* The log bytes commit i appends. */
static uint64_t commit_bytes(uint64_t i) {
  char k[32], v[256], c[32];
  uint64_t n = REC(key_of((unsigned)(i * 7 % NKEYS), k), val_of(i, v));
  if (i % 5 == 0)
    n += REC(key_of((unsigned)(i * 3 % NKEYS), k), 0);
  n += REC(7, sprintf(c, "%llu", (unsigned long long)i));
  return n + REC(0, 8); /* the COMMIT record */
}

static int do_commit(mapkv_t *db, uint64_t i) {
  char k[32], v[256], c[32];
  size_t kl, vl;
  mapkv_batch_t *b;
  int rc;
  if ((rc = mapkv_batch_begin(db, &b)) != 0)
    return rc;
  kl = key_of((unsigned)(i * 7 % NKEYS), k);
  vl = val_of(i, v);
  if ((rc = mapkv_batch_put(b, k, kl, v, vl)) == 0 && i % 5 == 0) {
    kl = key_of((unsigned)(i * 3 % NKEYS), k);
    rc = mapkv_batch_del(b, k, kl);
  }
  if (rc == 0)
    rc = mapkv_batch_put(b, "counter", 7, c,
                         (size_t)sprintf(c, "%llu", (unsigned long long)i));
  if (rc != 0) {
    mapkv_batch_abort(b);
    return rc;
  }
  return mapkv_batch_commit(b);
}

static void commits(mapkv_t *db, uint64_t from, uint64_t to) {
  for (uint64_t i = from; i <= to; i++)
    assert_rc(do_commit(db, i), 0);
}

/* Checks that the store at path is the model after some number of
 * commits, every key and value, and its figures; returns that number. */
static uint64_t check_copy(const char *path) {
  mapkv_t *c = open_ok(path, MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  mapkv_stats st;
  mapkv_cursor_t *cur;
  char buf[256], k[32], want[256];
  size_t n = 0, kl, wl;
  uint64_t at = 0, live = 0, bytes = 0, seen = 0;
  static model m;
  int rc;

  rc = mapkv_get(c, "counter", 7, buf, sizeof buf - 1, &n);
  if (rc == 0) {
    buf[n] = '\0';
    at = strtoull(buf, NULL, 10);
    assert_true(at > 0);
    live = 1;
    bytes = REC(7, n);
  } else {
    assert_rc(rc, MAPKV_NOTFOUND);
  }
  model_at(&m, at);
  for (unsigned key = 0; key < NKEYS; key++) {
    kl = key_of(key, k);
    rc = mapkv_get(c, k, kl, buf, sizeof buf, &n);
    if (m.by[key] == 0) {
      if (rc != MAPKV_NOTFOUND)
        fail_msg("%s at commit %llu: %s holds a value (%d), the model none",
                 path, (unsigned long long)at, k, rc);
      continue;
    }
    assert_rc(rc, 0);
    wl = val_of(m.by[key], want);
    if (n != wl || memcmp(buf, want, n) != 0)
      fail_msg("%s at commit %llu: %s holds the value of another commit", path,
               (unsigned long long)at, k);
    live++;
    bytes += REC(kl, wl);
  }
  assert_rc(mapkv_stat(c, &st), 0);
  assert_int_equal(st.records, live);
  assert_int_equal(st.live_bytes, bytes);
  assert_int_equal(st.clean_open, 1);
  assert_int_equal(st.damaged_regions, 0);
  assert_int_equal(st.dropped_tail_bytes, 0);
  assert_rc(mapkv_cursor_open(c, NULL, 0, &cur), 0);
  while (mapkv_cursor_next(cur, NULL, NULL, NULL, NULL) == 0)
    seen++;
  mapkv_cursor_close(cur);
  assert_int_equal(seen, live);
  assert_rc(mapkv_verify(c, NULL, NULL, NULL), 0);
  assert_rc(mapkv_close(c), 0);
  return at;
}

/* The log bytes of commits 1..n. */
static uint64_t log_bytes(uint64_t n) {
  uint64_t total = 0;
  for (uint64_t i = 1; i <= n; i++)
    total += commit_bytes(i);
  return total;
}

/* ---- copies of a store at rest -------------------------------------------- */

static void test_copy_is_the_store(void **state) {
  const char *p = fx_path("copy-src"), *d = fx_path("copy-dst");
  const char *dc = fx_path("copy-dstc");
  mapkv_stats a, b, cst;
  mapkv_t *db;
  (void)state;

  db = open_ok(p, MAPKV_CREATE, MAPKV_SYNC_NONE);
  commits(db, 1, 3000);
  assert_rc(mapkv_copy(db, d, 0), 0);
  assert_rc(mapkv_copy(db, dc, MAPKV_COPY_COMPACT), 0);
  assert_rc(mapkv_stat(db, &a), 0);
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(check_copy(d), 3000);
  assert_int_equal(check_copy(dc), 3000);

  /* A copy is the log as it is: the same file id, generation, records
   * and dead bytes, at the same offsets. */
  db = open_ok(d, MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_stat(db, &b), 0);
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(b.records, a.records);
  assert_int_equal(b.live_bytes, a.live_bytes);
  assert_int_equal(b.dead_bytes, a.dead_bytes);
  assert_int_equal(b.data_end, a.data_end);
  assert_int_equal(b.data_end, 4096 + log_bytes(3000));
  assert_int_equal(b.last_seq, a.last_seq);
  assert_int_equal(b.generation, a.generation);
  assert_int_equal(b.max_key_size, a.max_key_size);
  assert_int_equal(b.max_value_size, a.max_value_size);
  assert_int_equal(file_id(d), file_id(p));
  assert_int_equal(tu_file_size(d) % 4096, 0);

  /* A compacting copy: the live records, a new file id, the next
   * generation. */
  db = open_ok(dc, MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_stat(db, &cst), 0);
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(cst.records, a.records);
  assert_int_equal(cst.live_bytes, a.live_bytes);
  assert_int_equal(cst.dead_bytes, 0);
  assert_int_equal(cst.data_end, 4096 + a.live_bytes);
  assert_int_equal(cst.last_seq, a.records);
  assert_int_equal(cst.generation, a.generation + 1);
  assert_int_equal(cst.max_key_size, a.max_key_size);
  assert_true(file_id(dc) != file_id(p));
  assert_true(tu_file_size(dc) < tu_file_size(d));

  /* Both are stores like any other: writable, and compactable. */
  db = open_ok(d, 0, MAPKV_SYNC_COMMIT);
  commits(db, 3001, 3010);
  assert_rc(mapkv_compact(db), 0);
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(check_copy(d), 3010);
  db = open_ok(dc, 0, MAPKV_SYNC_COMMIT);
  commits(db, 3001, 3010);
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(check_copy(dc), 3010);
  assert_int_equal(leftovers(d), 0);
  assert_int_equal(leftovers(dc), 0);
}

static void test_copy_of_an_empty_store(void **state) {
  const char *p = fx_path("copy-empty"), *d = fx_path("copy-emptyd");
  const char *dc = fx_path("copy-emptyc");
  mapkv_t *db = open_ok(p, MAPKV_CREATE, MAPKV_SYNC_COMMIT);
  (void)state;
  assert_rc(mapkv_copy(db, d, 0), 0);
  assert_rc(mapkv_copy(db, dc, MAPKV_COPY_COMPACT), 0);
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(check_copy(d), 0);
  assert_int_equal(check_copy(dc), 0);
}

/* ---- copies while the writer writes ----------------------------------------- */

typedef struct writer_ctx {
  mapkv_t *db;
  atomic_uint_fast64_t committed; /* commits that returned */
  atomic_int stop;
  int rc;
} writer_ctx;

static void *writer(void *arg) {
  writer_ctx *w = arg;
  uint64_t i = atomic_load(&w->committed);
  while (!atomic_load(&w->stop)) {
    int rc = do_commit(w->db, ++i);
    if (rc == 0 && i % 997 == 0)
      rc = mapkv_compact(w->db);
    if (rc != 0) {
      w->rc = rc;
      break;
    }
    atomic_store(&w->committed, i);
  }
  return NULL;
}

/* Copies (plain and compacting, in turn) while another thread commits
 * and compacts: each copy is the model at one commit, between the
 * commits that had returned when the copy began and those that had when
 * it returned (one more: a commit may be visible before its call
 * returns). (That the writer does not wait for the copy is the next
 * test's.) */
static void test_copy_during_writes(void **state) {
  const char *p = fx_path("copy-live"), *d = fx_path("copy-lived");
  pthread_t t;
  writer_ctx w;
  int rounds = 16;
  (void)state;

  memset(&w, 0, sizeof w);
  w.db = open_ok(p, MAPKV_CREATE, MAPKV_SYNC_NONE);
  commits(w.db, 1, 2000);
  atomic_store(&w.committed, 2000);
  assert_int_equal(pthread_create(&t, NULL, writer, &w), 0);
  for (int r = 0; r < rounds; r++) {
    uint64_t before = atomic_load(&w.committed), after, at;
    unsigned flags = MAPKV_COPY_FORCE | (r % 2 ? MAPKV_COPY_COMPACT : 0);
    assert_rc(mapkv_copy(w.db, d, flags), 0);
    after = atomic_load(&w.committed);
    at = check_copy(d);
    if (at < before || at > after + 1)
      fail_msg("round %d: the copy holds commit %llu, not one of %llu..%llu", r,
               (unsigned long long)at, (unsigned long long)before,
               (unsigned long long)after + 1);
    assert_int_equal(leftovers(d), 0);
  }
  atomic_store(&w.stop, 1);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_rc(w.rc, 0);
  assert_rc(mapkv_close(w.db), 0);
}

/* The copy's flush (the last thing it writes) is held until another
 * thread has committed, compacted and committed again on the same handle:
 * the writer does not wait for the copy, and the copy holds the commits
 * made when it began, whatever happened to the store since. */
static struct {
  pthread_t copier;
  mapkv_t *db;
  uint64_t next;
  int fired, done, rc;
  pthread_mutex_t lock;
  pthread_cond_t cond;
} hold;

static int (*real_fsync)(int fd);

static void *hold_writer(void *arg) {
  int rc;
  (void)arg;
  rc = do_commit(hold.db, hold.next);
  if (rc == 0)
    rc = mapkv_compact(hold.db);
  if (rc == 0)
    rc = do_commit(hold.db, hold.next + 1);
  pthread_mutex_lock(&hold.lock);
  hold.rc = rc;
  hold.done = 1;
  pthread_cond_signal(&hold.cond);
  pthread_mutex_unlock(&hold.lock);
  return NULL;
}

static int holding_fsync(int fd) {
  if (pthread_equal(pthread_self(), hold.copier) && !hold.fired) {
    struct timespec until;
    pthread_t t;
    hold.fired = 1;
    assert_int_equal(pthread_create(&t, NULL, hold_writer, NULL), 0);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&hold.lock);
    while (!hold.done &&
           pthread_cond_timedwait(&hold.cond, &hold.lock, &until) == 0)
      ;
    pthread_mutex_unlock(&hold.lock);
    if (hold.done)
      pthread_join(t, NULL);
    else
      pthread_detach(t); /* blocked by the copy: the test fails below */
  }
  return real_fsync(fd);
}

static void test_copy_does_not_block_writers(void **state) {
  const char *p = fx_path("copy-hold"), *d = fx_path("copy-holdd");
  unsigned flag_sets[2] = {0, MAPKV_COPY_COMPACT};
  (void)state;

  memset(&hold, 0, sizeof hold);
  pthread_mutex_init(&hold.lock, NULL);
  pthread_cond_init(&hold.cond, NULL);
  hold.db = open_ok(p, MAPKV_CREATE, MAPKV_SYNC_COMMIT);
  commits(hold.db, 1, 500);
  real_fsync = mapkv__os.fsync;
  for (int r = 0; r < 2; r++) {
    uint64_t at = 500 + 2 * (uint64_t)r;
    hold.copier = pthread_self();
    hold.next = at + 1;
    hold.fired = hold.done = 0;
    hold.rc = 0;
    mapkv__os.fsync = holding_fsync;
    assert_rc(mapkv_copy(hold.db, d, flag_sets[r] | MAPKV_COPY_FORCE), 0);
    mapkv__os.fsync = real_fsync;
    assert_true(hold.fired);
    if (!hold.done)
      fail_msg("a commit waited for the copy");
    assert_rc(hold.rc, 0);
    assert_int_equal(check_copy(d), at);
    if (r == 0) {
      mapkv_t *c = open_ok(d, MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
      mapkv_stats st;
      assert_rc(mapkv_stat(c, &st), 0);
      assert_rc(mapkv_close(c), 0);
      assert_int_equal(st.data_end, 4096 + log_bytes(at));
      assert_int_equal(st.generation, 0);
    }
  }
  assert_rc(mapkv_close(hold.db), 0);
  assert_int_equal(check_copy(p), 504);
  pthread_cond_destroy(&hold.cond);
  pthread_mutex_destroy(&hold.lock);
}

/* A read-only handle copies the state it opened, while another handle
 * (here of the same process) writes and compacts the store. */
static void test_copy_of_a_read_only_handle(void **state) {
  const char *p = fx_path("copy-ro"), *d = fx_path("copy-rod");
  const char *dc = fx_path("copy-rodc");
  mapkv_t *w, *r;
  (void)state;

  w = open_ok(p, MAPKV_CREATE, MAPKV_SYNC_COMMIT);
  commits(w, 1, 300);
  r = open_ok(p, MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  commits(w, 301, 350);
  assert_rc(mapkv_copy(r, d, 0), 0);
  assert_rc(mapkv_compact(w), 0);
  commits(w, 351, 360);
  assert_rc(mapkv_copy(r, dc, MAPKV_COPY_COMPACT), 0);
  assert_int_equal(check_copy(d), 300);
  assert_int_equal(check_copy(dc), 300);
  /* The writer's copy has every commit. */
  assert_rc(mapkv_copy(w, d, MAPKV_COPY_FORCE), 0);
  assert_int_equal(check_copy(d), 360);
  assert_rc(mapkv_close(r), 0);
  assert_rc(mapkv_close(w), 0);
}

/* ---- refusals and failures: nothing is left behind ------------------------- */

static void flip_byte(const char *path, off_t at) {
  uint8_t b;
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &b, 1, at), 1);
  b ^= 0x5a;
  assert_int_equal(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

static void small_store(const char *path) {
  mapkv_t *db = open_ok(path, MAPKV_CREATE, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_put(db, "k1", 2, "value1", 6), 0);
  assert_rc(mapkv_put(db, "k2", 2, "value2", 6), 0);
  assert_rc(mapkv_put(db, "k3", 2, "value3", 6), 0);
  assert_rc(mapkv_close(db), 0);
}

/* Records of 2-byte keys and 6-byte values are 38 bytes: the second is at
 * 4134, its value at 4134 + 22 + 2. */
#define SECOND_VALUE (4134 + 24)

static void test_copy_of_a_damaged_store(void **state) {
  const char *p = fx_path("copy-dmg"), *d = fx_path("copy-dmgd");
  mapkv_t *db;
  (void)state;

  /* Damage the open found: refused, as compaction refuses it. */
  small_store(p);
  flip_byte(p, SECOND_VALUE);
  db = open_ok(p, 0, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_copy(db, d, 0), MAPKV_ECORRUPT);
  assert_non_null(strstr(mapkv_errmsg(), "damaged records"));
  assert_rc(mapkv_copy(db, d, MAPKV_COPY_COMPACT), MAPKV_ECORRUPT);
  assert_rc(mapkv_copy(db, d, MAPKV_COPY_FORCE), MAPKV_ECORRUPT);
  assert_false(exists(d));
  assert_int_equal(leftovers(d), 0);
  assert_rc(mapkv_close(db), 0);

  /* Damage since the open (the file written behind the library's back):
   * found by the copy, which is then not made. */
  unlink(p);
  small_store(p);
  db = open_ok(p, 0, MAPKV_SYNC_COMMIT);
  flip_byte(p, SECOND_VALUE);
  assert_rc(mapkv_copy(db, d, 0), MAPKV_ECORRUPT);
  assert_non_null(strstr(mapkv_errmsg(), "checksums"));
  assert_false(exists(d));
  assert_int_equal(leftovers(d), 0);
  assert_rc(mapkv_copy(db, d, MAPKV_COPY_COMPACT), MAPKV_ECORRUPT);
  assert_non_null(strstr(mapkv_errmsg(), "checksums"));
  assert_false(exists(d));
  assert_int_equal(leftovers(d), 0);
  flip_byte(p, SECOND_VALUE); /* as it was */
  assert_rc(mapkv_copy(db, d, 0), 0);
  assert_rc(mapkv_close(db), 0);
}

static void test_copy_to_an_existing_path(void **state) {
  const char *p = fx_path("copy-ex"), *d = fx_path("copy-exd");
  const char *l = fx_path("copy-exl");
  char buf[16];
  size_t n;
  mapkv_t *db, *c;
  int fd;
  (void)state;

  small_store(p);
  fd = tu_file_with(d, "precious", 8);
  close(fd);
  db = open_ok(p, 0, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_copy(db, d, 0), -EEXIST);
  assert_non_null(strstr(mapkv_errmsg(), "exists"));
  assert_rc(mapkv_copy(db, d, MAPKV_COPY_COMPACT), -EEXIST);
  assert_int_equal(tu_file_size(d), 8);
  /* A symbolic link there is a file that exists, dangling or not. */
  assert_int_equal(symlink("nowhere", l), 0);
  assert_rc(mapkv_copy(db, l, 0), -EEXIST);
  assert_true(exists(l));
  /* Forced, the file is replaced (the link itself, not what it names). */
  assert_rc(mapkv_copy(db, d, MAPKV_COPY_FORCE), 0);
  assert_rc(mapkv_copy(db, l, MAPKV_COPY_FORCE | MAPKV_COPY_COMPACT), 0);
  {
    struct stat st;
    assert_int_equal(lstat(l, &st), 0);
    assert_true(S_ISREG(st.st_mode));
  }
  c = open_ok(d, MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_get(c, "k2", 2, buf, sizeof buf, &n), 0);
  assert_memory_equal(buf, "value2", 6);
  assert_rc(mapkv_close(c), 0);
  /* Never over the store itself. */
  assert_rc(mapkv_copy(db, p, MAPKV_COPY_FORCE), MAPKV_EINVAL);
  assert_non_null(strstr(mapkv_errmsg(), "the store itself"));
  assert_rc(mapkv_copy(db, p, 0), -EEXIST);
  assert_int_equal(leftovers(p), 0);
  assert_rc(mapkv_put(db, "k4", 2, "v4", 2), 0);
  assert_rc(mapkv_close(db), 0);
  c = open_ok(p, MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_get(c, "k4", 2, buf, sizeof buf, &n), 0);
  assert_rc(mapkv_close(c), 0);
  assert_int_equal(leftovers(d), 0);
}

static void test_copy_into_a_missing_directory(void **state) {
  const char *p = fx_path("copy-md"), *dir = fx_path("copy-nodir");
  char d[400];
  mapkv_t *db;
  (void)state;

  small_store(p);
  snprintf(d, sizeof d, "%s/copy.db", dir);
  db = open_ok(p, MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_copy(db, d, 0), -ENOENT);
  assert_non_null(strstr(mapkv_errmsg(), dir));
  assert_rc(mapkv_copy(db, d, MAPKV_COPY_COMPACT | MAPKV_COPY_FORCE), -ENOENT);
  assert_false(exists(dir));
  /* A file where the directory should be. */
  snprintf(d, sizeof d, "%s/copy.db", p);
  assert_rc(mapkv_copy(db, d, 0), -ENOTDIR);
  assert_rc(mapkv_close(db), 0);
}

static int enospc_reserve(int fd, off_t off, off_t len) {
  (void)fd;
  (void)off;
  (void)len;
  errno = ENOSPC;
  return -1;
}

/* pwrite that fills the disk after `room` bytes. */
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static uint64_t room;
static ssize_t full_pwrite(int fd, const void *buf, size_t n, off_t off) {
  if (n > room) {
    if (room == 0) {
      errno = ENOSPC;
      return -1;
    }
    n = (size_t)room;
  }
  room -= n;
  return real_pwrite(fd, buf, n, off);
}

static int eio_fsync(int fd) {
  (void)fd;
  errno = EIO;
  return -1;
}

static int eio_link(const char *a, const char *b) {
  (void)a;
  (void)b;
  errno = EIO;
  return -1;
}

static int eio_rename(const char *a, const char *b) {
  (void)a;
  (void)b;
  errno = EIO;
  return -1;
}

static void test_copy_failures_leave_nothing(void **state) {
  const char *p = fx_path("copy-fail"), *d = fx_path("copy-faild");
  unsigned flag_sets[2] = {0, MAPKV_COPY_COMPACT};
  mapkv_t *db;
  int fd;
  (void)state;

  db = open_ok(p, MAPKV_CREATE, MAPKV_SYNC_NONE);
  commits(db, 1, 2000);
  real_pwrite = mapkv__os.pwrite;
  for (int i = 0; i < 2; i++) {
    unsigned f = flag_sets[i];
    /* A full disk: no blocks for the copy. */
    mapkv__os.reserve = enospc_reserve;
    assert_rc(mapkv_copy(db, d, f), -ENOSPC);
    mapkv__os_reset();
    assert_false(exists(d));
    assert_int_equal(leftovers(d), 0);
    /* A disk that fills while the copy is written. */
    room = 100000;
    mapkv__os.pwrite = full_pwrite;
    if (f == 0)
      assert_rc(mapkv_copy(db, d, f), -ENOSPC);
    mapkv__os_reset();
    assert_false(exists(d));
    assert_int_equal(leftovers(d), 0);
    /* The flush fails. */
    mapkv__os.fsync = eio_fsync;
    assert_rc(mapkv_copy(db, d, f), -EIO);
    mapkv__os_reset();
    assert_false(exists(d));
    assert_int_equal(leftovers(d), 0);
    /* The copy cannot be linked into place. */
    mapkv__os.link = eio_link;
    assert_rc(mapkv_copy(db, d, f), -EIO);
    mapkv__os_reset();
    assert_false(exists(d));
    assert_int_equal(leftovers(d), 0);
  }
  /* Forced over a file, a failed rename leaves the file. */
  fd = tu_file_with(d, "precious", 8);
  close(fd);
  mapkv__os.rename = eio_rename;
  assert_rc(mapkv_copy(db, d, MAPKV_COPY_FORCE), -EIO);
  mapkv__os_reset();
  assert_int_equal(tu_file_size(d), 8);
  assert_int_equal(leftovers(d), 0);
  /* The store noticed nothing. */
  commits(db, 2001, 2010);
  assert_rc(mapkv_copy(db, d, MAPKV_COPY_FORCE), 0);
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(check_copy(d), 2010);
  assert_int_equal(check_copy(p), 2010);
}

static void test_copy_mode_and_owner(void **state) {
  const char *p = fx_path("copy-mode"), *d = fx_path("copy-moded");
  const char *dc = fx_path("copy-modec");
  struct stat st;
  uid_t owner = geteuid();
  mapkv_t *db;
  (void)state;

  small_store(p);
  assert_int_equal(chmod(p, 0640), 0);
  /* Run as root, the copy takes the store's owner too. */
  if (geteuid() == 0 && chown(p, 65534, 65534) == 0)
    owner = 65534;
  db = open_ok(p, MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_copy(db, d, 0), 0);
  assert_rc(mapkv_copy(db, dc, MAPKV_COPY_COMPACT), 0);
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(stat(d, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0640);
  assert_int_equal(st.st_uid, owner);
  assert_int_equal(stat(dc, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0640);
  assert_int_equal(st.st_uid, owner);
}

/* A store of format version 1 (records without prev: a 16-byte record
 * header), cleanly closed, holding k0..k2: read-only opens read it. */
static void write_v1_store(const char *path) {
  uint8_t page[8192];
  mapkv__header h;
  size_t at = 4096;
  int fd;
  memset(page, 0, sizeof page);
  for (int i = 0; i < 3; i++) {
    uint8_t *r = page + at;
    r[0] = MAPKV__MARK0;
    r[1] = MAPKV__MARK1;
    r[2] = MAPKV__T_PUT;
    r[3] = MAPKV__F_FIRST | MAPKV__F_LAST;
    mapkv__put_le(r + 4, 2, 2);
    mapkv__put_le(r + 6, 6, 4);
    mapkv__put_le(r + 10, (uint64_t)i + 1, 6);
    r[16] = 'k';
    r[17] = (uint8_t)('0' + i);
    memcpy(r + 18, "value", 5);
    r[23] = (uint8_t)('0' + i);
    mapkv__put_le(r + 24, XXH3_64bits_withSeed(r, 24, 77), 8);
    at += 32;
  }
  memset(&h, 0, sizeof h);
  h.version = 1;
  h.page_size = 4096;
  h.flags = MAPKV__HF_CLEAN;
  h.file_id = 77;
  h.data_end = at;
  h.last_seq = 3;
  h.live_records = 3;
  h.live_bytes = 96;
  mapkv__header_encode(page, &h);
  mapkv__header_encode(page + MAPKV__HDR_COPY_B, &h);
  fd = tu_file_with(path, page, sizeof page);
  close(fd);
}

static void test_copy_of_a_version_1_store(void **state) {
  const char *p = fx_path("copy-v1"), *d = fx_path("copy-v1d");
  mapkv_stats st;
  mapkv_t *db;
  char buf[16];
  size_t n;
  (void)state;

  write_v1_store(p);
  db = open_ok(p, MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.format_version, 1);
  assert_int_equal(st.records, 3);
  /* Its bytes are of a version no longer written; its live records are
   * copied into the current one. */
  assert_rc(mapkv_copy(db, d, 0), MAPKV_EVERSION);
  assert_non_null(strstr(mapkv_errmsg(), "MAPKV_COPY_COMPACT"));
  assert_false(exists(d));
  assert_rc(mapkv_copy(db, d, MAPKV_COPY_COMPACT), 0);
  assert_rc(mapkv_close(db), 0);
  db = open_ok(d, 0, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.format_version, MAPKV_FORMAT_VERSION);
  assert_int_equal(st.records, 3);
  assert_int_equal(st.max_key_size, MAPKV_DEFAULT_KEY_MAX);
  assert_rc(mapkv_get(db, "k1", 2, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 6);
  assert_memory_equal(buf, "value1", 6);
  assert_rc(mapkv_put(db, "k3", 2, "v3", 2), 0);
  assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(leftovers(d), 0);
}

static void test_copy_bad_arguments(void **state) {
  const char *p = fx_path("copy-args"), *d = fx_path("copy-argsd");
  mapkv_t *db;
  (void)state;
  small_store(p);
  db = open_ok(p, MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_copy(NULL, d, 0), MAPKV_EINVAL);
  assert_rc(mapkv_copy(db, NULL, 0), MAPKV_EINVAL);
  assert_rc(mapkv_copy(db, d, 0x100), MAPKV_EINVAL);
  assert_false(exists(d));
  assert_rc(mapkv_close(db), 0);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_copy_is_the_store),
      T(test_copy_of_an_empty_store),
      T(test_copy_during_writes),
      T(test_copy_does_not_block_writers),
      T(test_copy_of_a_read_only_handle),
      T(test_copy_of_a_damaged_store),
      T(test_copy_to_an_existing_path),
      T(test_copy_into_a_missing_directory),
      T(test_copy_failures_leave_nothing),
      T(test_copy_mode_and_owner),
      T(test_copy_of_a_version_1_store),
      T(test_copy_bad_arguments),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
