/*
 * test_lock.c — two processes on one store: the writer's exclusive lock
 * (MAPKV_ELOCKED for a second writer), a second writer that waits for the
 * lock (lock_timeout_ms), read-only opens beside a writer (seeing what was
 * committed before they opened), the lock released by a clean close and by
 * a killed process, and recovery of every acknowledged commit after
 * SIGKILL.
 *
 * Children report through pipes; the parent waits on those, never on time.
 * A child that dies early closes its pipe, so the parent's read fails
 * instead of hanging.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mapkv/mapkv.h"
#include "store/os.h"
#include "testutil.h"

static char path[256];
static pid_t child = -1;

static int setup(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_IGN); /* a child that died is an error, not a kill */
  tu_path(path, sizeof path, "lock");
  child = -1;
  return 0;
}

static int teardown(void **state) {
  char tmp[300];
  (void)state;
  if (child > 0) { /* a test failed while its child ran */
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    child = -1;
  }
  mapkv__os_reset();
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

static mapkv_t *open_flags(unsigned flags, int sync_mode) {
  mapkv_options o;
  mapkv_t *db = NULL;
  mapkv_options_init(&o);
  o.flags = flags;
  o.sync_mode = sync_mode;
  assert_rc(mapkv_open(path, &o, &db), 0);
  return db;
}

static int try_open(unsigned flags, mapkv_t **out) {
  mapkv_options o;
  mapkv_options_init(&o);
  o.flags = flags;
  return mapkv_open(path, &o, out);
}

/* Values derived from the operation number. */
static size_t key_of(char *buf, uint32_t op, char suffix) {
  if (suffix != 0)
    return (size_t)snprintf(buf, 32, "op%08u/%c", op, suffix);
  return (size_t)snprintf(buf, 32, "op%08u", op);
}

static size_t val_of(uint8_t *buf, uint32_t op, char suffix) {
  size_t len = 1 + (op * 7u + (unsigned)suffix) % 200;
  uint64_t x = ((uint64_t)op << 8 | (uint8_t)suffix) * 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < len; i++) {
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    buf[i] = (uint8_t)(x >> 56);
  }
  return len;
}

static int put_op(mapkv_t *db, uint32_t op) {
  char k[32];
  uint8_t v[256];
  size_t kl = key_of(k, op, 0);
  return mapkv_put(db, k, kl, v, val_of(v, op, 0));
}

/* 1 if the key of op (with suffix) holds its value, 0 if it is absent, -1
 * on anything else. No cmocka asserts: children use it. */
static int op_state(mapkv_t *db, uint32_t op, char suffix) {
  char k[32];
  uint8_t v[256], got[256];
  size_t kl = key_of(k, op, suffix), vl = val_of(v, op, suffix), gl = 0;
  int rc = mapkv_get(db, k, kl, got, sizeof got, &gl);
  if (rc == MAPKV_NOTFOUND)
    return 0;
  if (rc != 0 || gl != vl || memcmp(got, v, vl) != 0)
    return -1;
  return 1;
}

/* op_state() for the parent: fails the test on -1. */
static int has_op(mapkv_t *db, uint32_t op, char suffix) {
  int st = op_state(db, op, suffix);
  if (st < 0)
    fail_msg("op %u%c: wrong value or error (%s)", op, suffix ? suffix : ' ',
             mapkv_errmsg());
  return st;
}

/* Every op in [from, to) is present with its value. */
static void expect_ops(mapkv_t *db, uint32_t from, uint32_t to) {
  for (uint32_t op = from; op < to; op++)
    if (has_op(db, op, 0) != 1)
      fail_msg("op %u (of %u..%u) is missing", op, from, to - 1);
}

/* Writes one byte; 0 or -1 (SIGPIPE is ignored: a dead reader is -1). */
static int send_byte(int fd, char c) {
  ssize_t n;
  do
    n = write(fd, &c, 1);
  while (n < 0 && errno == EINTR);
  return n == 1 ? 0 : -1;
}

/* For children: exits if the parent is gone. */
static void write_byte(int fd, char c) {
  if (send_byte(fd, c) != 0)
    _exit(90);
}

/* The next byte from fd, or -1 at end of file. */
static int read_byte(int fd) {
  char c;
  ssize_t n;
  do
    n = read(fd, &c, 1);
  while (n < 0 && errno == EINTR);
  return n == 1 ? (unsigned char)c : -1;
}

/* ---- a second writer, readers, and a clean close ------------------------- */

#define BEFORE 100 /* ops the child commits before the parent opens */
#define AFTER  50  /* ops it commits after the parent's read-only open */

/* The child: opens for writing, commits ops [0, BEFORE), says 'R'; on 'P'
 * commits [BEFORE, BEFORE + AFTER) and says 'p'; on 'C' closes and exits. */
static void lock_holder(int to_parent, int from_parent) {
  mapkv_options o;
  mapkv_t *db = NULL;
  int cmd;
  mapkv_options_init(&o);
  o.flags = MAPKV_CREATE;
  if (mapkv_open(path, &o, &db) != 0)
    _exit(10);
  for (uint32_t op = 0; op < BEFORE; op++)
    if (put_op(db, op) != 0)
      _exit(11);
  write_byte(to_parent, 'R');
  while ((cmd = read_byte(from_parent)) != -1) {
    if (cmd == 'P') {
      for (uint32_t op = BEFORE; op < BEFORE + AFTER; op++)
        if (put_op(db, op) != 0)
          _exit(12);
      write_byte(to_parent, 'p');
    } else if (cmd == 'C') {
      _exit(mapkv_close(db) == 0 ? 0 : 13);
    }
  }
  _exit(14); /* the parent went away */
}

static void test_second_writer_locked_reader_allowed(void **state) {
  int up[2], down[2], status = 0;
  mapkv_t *db = (mapkv_t *)&child, *ro, *ro2;
  mapkv_stats st;
  (void)state;

  assert_int_equal(pipe(up), 0);
  assert_int_equal(pipe(down), 0);
  child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    close(up[0]);
    close(down[1]);
    lock_holder(up[1], down[0]);
  }
  close(up[1]);
  close(down[0]);
  assert_int_equal(read_byte(up[0]), 'R');

  /* Writing is refused, with a message; the output is untouched. */
  assert_rc(try_open(0, &db), MAPKV_ELOCKED);
  assert_ptr_equal(db, (mapkv_t *)&child);
  assert_non_null(strstr(mapkv_errmsg(), "another process"));
  assert_non_null(strstr(mapkv_errmsg(), path));
  assert_string_equal(mapkv_strerror(MAPKV_ELOCKED),
                      "store is open for writing by another process");
  assert_rc(try_open(MAPKV_CREATE, &db), MAPKV_ELOCKED);

  /* Reading is allowed and sees what was committed before the open. */
  ro = open_flags(MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  expect_ops(ro, 0, BEFORE);
  assert_int_equal(has_op(ro, BEFORE, 0), 0);
  assert_rc(mapkv_stat(ro, &st), 0);
  assert_int_equal(st.records, BEFORE);
  assert_int_equal(st.clean_open, 0); /* a writer has it open */
  assert_rc(mapkv_put(ro, "x", 1, "y", 1), MAPKV_EREADONLY);

  /* Commits after the reader opened are not part of its state. */
  assert_int_equal(send_byte(down[1], 'P'), 0);
  assert_int_equal(read_byte(up[0]), 'p');
  expect_ops(ro, 0, BEFORE);
  assert_int_equal(has_op(ro, BEFORE, 0), 0);
  assert_int_equal(has_op(ro, BEFORE + AFTER - 1, 0), 0);
  /* A reader opened now sees them. */
  ro2 = open_flags(MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  expect_ops(ro2, 0, BEFORE + AFTER);
  assert_rc(mapkv_verify(ro2, NULL, NULL, NULL), 0);
  assert_rc(mapkv_close(ro2), 0);
  /* Still locked. */
  assert_rc(try_open(0, &db), MAPKV_ELOCKED);

  /* The writer closes: the lock is free. */
  assert_int_equal(send_byte(down[1], 'C'), 0);
  assert_int_equal(waitpid(child, &status, 0), child);
  child = -1;
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(read_byte(up[0]), -1);
  close(up[0]);
  close(down[1]);

  /* The reader's handle lives on, unchanged. */
  assert_int_equal(has_op(ro, 0, 0), 1);
  assert_int_equal(has_op(ro, BEFORE, 0), 0);

  db = open_flags(0, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.clean_open, 1);
  assert_int_equal(st.records, BEFORE + AFTER);
  expect_ops(db, 0, BEFORE + AFTER);
  assert_rc(put_op(db, BEFORE + AFTER), 0);
  assert_rc(mapkv_close(db), 0);
  assert_rc(mapkv_close(ro), 0);
}

/* ---- a second writer that waits (lock_timeout_ms) ------------------------ */

/* The child: opens for writing, commits one key, says 'R'; on 'C' closes
 * the store, says 'D' and exits. */
static void lock_keeper(int to_parent, int from_parent) {
  mapkv_t *db = NULL;
  if (try_open(MAPKV_CREATE, &db) != 0)
    _exit(50);
  if (mapkv_put(db, "keeper", 6, "was here", 8) != 0)
    _exit(51);
  write_byte(to_parent, 'R');
  if (read_byte(from_parent) != 'C')
    _exit(52); /* the parent went away */
  if (mapkv_close(db) != 0)
    _exit(53);
  write_byte(to_parent, 'D');
  _exit(0);
}

/* The engine's flock(), counted: tries of the writer's lock, and of those
 * the ones another process held. After release_after busy tries, the
 * keeper is told to close (so the open is known to be waiting then). */
static int lock_tries, lock_busy, release_after, release_fd = -1;

static int counting_flock(int fd, int op) {
  int rc = flock(fd, op), e = errno;
  if (op == (LOCK_EX | LOCK_NB)) {
    lock_tries++;
    if (rc != 0 && e == EWOULDBLOCK && ++lock_busy == release_after)
      send_byte(release_fd, 'C');
  }
  errno = e;
  return rc;
}

static void count_flock(int release_after_busy, int fd) {
  lock_tries = lock_busy = 0;
  release_after = release_after_busy;
  release_fd = fd;
  mapkv__os.flock = counting_flock;
}

static int open_waiting(unsigned flags, uint32_t timeout_ms, mapkv_t **out) {
  mapkv_options o;
  mapkv_options_init(&o);
  o.flags = flags;
  o.lock_timeout_ms = timeout_ms;
  return mapkv_open(path, &o, out);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Starts lock_keeper and waits for its 'R'. */
static void start_keeper(int up[2], int down[2]) {
  assert_int_equal(pipe(up), 0);
  assert_int_equal(pipe(down), 0);
  child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    close(up[0]);
    close(down[1]);
    lock_keeper(up[1], down[0]);
  }
  close(up[1]);
  close(down[0]);
  assert_int_equal(read_byte(up[0]), 'R');
}

static void stop_keeper(int up[2], int down[2]) {
  int status = 0;
  assert_int_equal(waitpid(child, &status, 0), child);
  child = -1;
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  close(up[0]);
  close(down[1]);
}

static void test_lock_timeout_waits_for_close(void **state) {
  int up[2], down[2];
  mapkv_t *db = NULL;
  mapkv_stats st;
  char buf[16];
  size_t n = 0;
  (void)state;

  start_keeper(up, down);
  /* The open finds the lock held three times, then the keeper closes. */
  count_flock(3, down[1]);
  assert_rc(open_waiting(0, 60000, &db), 0);
  assert_true(lock_busy >= 3);
  assert_int_equal(lock_tries, lock_busy + 1);
  assert_int_equal(read_byte(up[0]), 'D');
  stop_keeper(up, down);

  /* A working writer on what the keeper left, closed cleanly. */
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.clean_open, 1);
  assert_rc(mapkv_get(db, "keeper", 6, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 8);
  assert_memory_equal(buf, "was here", 8);
  assert_rc(mapkv_put(db, "waiter", 6, "too", 3), 0);
  assert_rc(mapkv_close(db), 0);
}

static void test_lock_timeout_expires(void **state) {
  int up[2], down[2];
  mapkv_t *db = (mapkv_t *)&child, *ro = NULL;
  double t0, waited;
  (void)state;

  start_keeper(up, down);

  /* Without a timeout: one try, refused at once. */
  count_flock(0, -1);
  assert_rc(open_waiting(0, 0, &db), MAPKV_ELOCKED);
  assert_int_equal(lock_tries, 1);
  assert_null(strstr(mapkv_errmsg(), "waited"));

  /* With one: refused when it has passed, after a few tries with sleeps
   * between them (no busy spinning), the handle untouched. */
  count_flock(0, -1);
  t0 = now_seconds();
  assert_rc(open_waiting(MAPKV_CREATE, 300, &db), MAPKV_ELOCKED);
  waited = now_seconds() - t0;
  assert_ptr_equal(db, (mapkv_t *)&child);
  if (waited < 0.3 || waited > 20)
    fail_msg("gave up after %.3f s, not after 0.3 s", waited);
  if (lock_tries < 3 || lock_tries > 60)
    fail_msg("%d tries of the lock in 0.3 s", lock_tries);
  assert_non_null(strstr(mapkv_errmsg(), "another process"));
  assert_non_null(strstr(mapkv_errmsg(), "waited 300 ms"));

  /* A reader takes no lock, so it never waits. */
  count_flock(0, -1);
  assert_rc(open_waiting(MAPKV_RDONLY, 60000, &ro), 0);
  assert_int_equal(lock_tries, 0);
  assert_int_equal(has_op(ro, 0, 0), 0);
  assert_rc(mapkv_close(ro), 0);

  assert_int_equal(send_byte(down[1], 'C'), 0);
  assert_int_equal(read_byte(up[0]), 'D');
  stop_keeper(up, down);
}

/* ---- SIGKILL ------------------------------------------------------------- */

#define KILL_AFTER 3000 /* acknowledgements before the kill */
#define CHILD_MAX  1000000

/* The child: commits ops 0, 1, 2, ... (every fifth a batch of three keys
 * and a delete of the previous op's key), writing the op number to the
 * pipe after each commit returns. Runs until killed. */
static void committer(int to_parent) {
  mapkv_options o;
  mapkv_t *db = NULL;
  mapkv_options_init(&o);
  o.flags = MAPKV_CREATE;
  o.sync_mode = MAPKV_SYNC_NONE; /* a process crash loses nothing */
  o.initial_size = 64 << 10;     /* grows while it runs */
  o.growth_step = 16 << 10;
  if (mapkv_open(path, &o, &db) != 0)
    _exit(20);
  for (uint32_t op = 0; op < CHILD_MAX; op++) {
    int rc;
    if (op % 5 == 4) {
      mapkv_batch_t *b = NULL;
      char k[32];
      uint8_t v[256];
      if (mapkv_batch_begin(db, &b) != 0)
        _exit(21);
      for (char c = 'a'; c <= 'c'; c++) {
        size_t kl = key_of(k, op, c);
        if (mapkv_batch_put(b, k, kl, v, val_of(v, op, c)) != 0)
          _exit(22);
      }
      if (mapkv_batch_del(b, k, key_of(k, op - 1, 0)) != 0)
        _exit(23);
      rc = mapkv_batch_commit(b);
    } else {
      rc = put_op(db, op);
    }
    if (rc != 0)
      _exit(24);
    {
      ssize_t n;
      do
        n = write(to_parent, &op, sizeof op);
      while (n < 0 && errno == EINTR);
      if (n != (ssize_t)sizeof op)
        _exit(25);
    }
  }
  _exit(26); /* never killed */
}

static void test_killed_writer_releases_lock(void **state) {
  int up[2], status = 0;
  uint32_t acked = 0, op;
  uint64_t records;
  mapkv_t *db = NULL;
  mapkv_stats st;
  (void)state;

  assert_int_equal(pipe(up), 0);
  child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    close(up[0]);
    committer(up[1]);
  }
  close(up[1]);

  /* Acknowledgements arrive in order. */
  while (acked < KILL_AFTER) {
    ssize_t n = read(up[0], &op, sizeof op);
    if (n < 0 && errno == EINTR)
      continue;
    assert_int_equal(n, sizeof op);
    assert_int_equal(op, acked);
    acked++;
  }
  assert_rc(try_open(0, &db), MAPKV_ELOCKED);
  assert_int_equal(kill(child, SIGKILL), 0);
  assert_int_equal(waitpid(child, &status, 0), child);
  child = -1;
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGKILL);
  /* What the child acknowledged before it died counts too. */
  for (;;) {
    ssize_t n = read(up[0], &op, sizeof op);
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0)
      break;
    assert_int_equal(n, sizeof op);
    assert_int_equal(op, acked);
    acked++;
  }
  close(up[0]);

  /* The lock died with the process. */
  db = open_flags(0, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.clean_open, 0);
  assert_int_equal(st.damaged_regions, 0);
  assert_true(st.recovered_batches >= acked);

  /* Every acknowledged commit is there; the one in flight is all or
   * nothing. */
  for (op = 0; op < acked; op++) {
    int ok;
    if (op % 5 == 4) /* the batch, with its delete of op - 1 */
      ok = has_op(db, op, 'a') && has_op(db, op, 'b') && has_op(db, op, 'c') &&
           !has_op(db, op - 1, 0);
    else if (op % 5 != 3)
      ok = has_op(db, op, 0);
    else /* deleted by the next op, if that one was acknowledged */
      ok = op + 1 < acked ? !has_op(db, op, 0) : 1;
    if (!ok)
      fail_msg("acknowledged op %u of %u is not in the recovered store", op,
               acked);
  }
  if (acked % 5 == 4) {
    int n = has_op(db, acked, 'a') + has_op(db, acked, 'b') +
            has_op(db, acked, 'c');
    assert_true(n == 0 || n == 3);
    assert_int_equal(has_op(db, acked - 1, 0), n == 0); /* its delete */
  }
  assert_int_equal(has_op(db, acked + 1, 0), 0);
  assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);

  /* The recovered store takes writes and closes cleanly. */
  records = st.records;
  assert_rc(mapkv_put(db, "after", 5, "recovery", 8), 0);
  assert_rc(mapkv_close(db), 0);
  db = open_flags(MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.clean_open, 1);
  assert_int_equal(st.records, records + 1);
  assert_int_equal(has_op(db, 0, 0), 1);
  {
    uint8_t buf[16];
    size_t n = 0;
    assert_rc(mapkv_get(db, "after", 5, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 8);
  }
  assert_rc(mapkv_close(db), 0);
}

/* ---- compaction never lets a second writer in ---------------------------- */

#define COMPACT_KEYS 200
#define COMPACTIONS  30

/* The child: until told to stop, tries to open for writing (must be refused
 * every time) and for reading (must see a complete store, the old file or
 * the new one). Exit code: 0, or the first unexpected result. */
static void prober(int to_parent, int from_parent) {
  unsigned attempts = 0;
  fcntl(from_parent, F_SETFL, O_NONBLOCK);
  write_byte(to_parent, 'S');
  for (;;) {
    mapkv_t *db = NULL;
    mapkv_stats st;
    char c;
    int rc = try_open(0, &db);
    if (rc == 0)
      _exit(40); /* a second writer got in (the handle is left alone) */
    if (rc != MAPKV_ELOCKED)
      _exit(41);
    rc = try_open(MAPKV_RDONLY, &db);
    if (rc != 0)
      _exit(42);
    if (mapkv_stat(db, &st) != 0 || st.records != COMPACT_KEYS ||
        op_state(db, 0, 0) != 1 || op_state(db, COMPACT_KEYS - 1, 0) != 1) {
      fprintf(stderr,
              "prober: read-only open after %u attempts: records %llu, "
              "generation %llu, data_end %llu, file_size %llu, clean %u, "
              "batches %llu, tail %llu bytes/%llu records, damaged %llu "
              "(%llu bytes at %llu); op 0: %d, op %u: %d\n",
              attempts, (unsigned long long)st.records,
              (unsigned long long)st.generation,
              (unsigned long long)st.data_end, (unsigned long long)st.file_size,
              st.clean_open, (unsigned long long)st.recovered_batches,
              (unsigned long long)st.dropped_tail_bytes,
              (unsigned long long)st.dropped_tail_records,
              (unsigned long long)st.damaged_regions,
              (unsigned long long)st.damaged_bytes,
              (unsigned long long)st.first_damage_offset, op_state(db, 0, 0),
              COMPACT_KEYS - 1, op_state(db, COMPACT_KEYS - 1, 0));
      _exit(43);
    }
    mapkv_close(db);
    attempts++;
    if (read(from_parent, &c, 1) == 1 || attempts > 1000000)
      break;
  }
  {
    ssize_t n = write(to_parent, &attempts, sizeof attempts);
    (void)n;
  }
  _exit(0);
}

static void test_compaction_keeps_lock(void **state) {
  int up[2], down[2], status = 0;
  unsigned attempts = 0;
  ssize_t got;
  mapkv_t *db;
  mapkv_stats st;
  (void)state;

  db = open_flags(MAPKV_CREATE, MAPKV_SYNC_NONE);
  for (uint32_t op = 0; op < COMPACT_KEYS; op++)
    assert_rc(put_op(db, op), 0);
  assert_int_equal(pipe(up), 0);
  assert_int_equal(pipe(down), 0);
  child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    close(up[0]);
    close(down[1]);
    prober(up[1], down[0]);
  }
  close(up[1]);
  close(down[0]);
  assert_int_equal(read_byte(up[0]), 'S');

  for (unsigned c = 0; c < COMPACTIONS; c++) {
    /* Overwrite half the keys so that each compaction has work. */
    for (uint32_t op = c % 2; op < COMPACT_KEYS; op += 2)
      assert_rc(put_op(db, op), 0);
    assert_rc(mapkv_compact(db), 0);
  }
  send_byte(down[1], 'X'); /* the child may have failed already */
  got = read(up[0], &attempts, sizeof attempts);
  assert_int_equal(waitpid(child, &status, 0), child);
  child = -1;
  close(up[0]);
  close(down[1]);
  assert_true(WIFEXITED(status));
  if (WEXITSTATUS(status) != 0)
    fail_msg("the prober exited with %d", WEXITSTATUS(status));
  assert_int_equal(got, (ssize_t)sizeof attempts);
  assert_true(attempts >= 1);

  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.generation, COMPACTIONS);
  assert_int_equal(st.records, COMPACT_KEYS);
  assert_rc(mapkv_close(db), 0);
  db = open_flags(0, MAPKV_SYNC_COMMIT);
  expect_ops(db, 0, COMPACT_KEYS);
  assert_rc(mapkv_close(db), 0);
}

/* ---- processes racing to create one store -------------------------------- */

#define RACERS 4
#define ROUNDS 10

static void racer(unsigned id, int go) {
  mapkv_options o;
  mapkv_t *db = NULL;
  char k[16];
  int rc;
  mapkv_options_init(&o);
  o.flags = MAPKV_CREATE;
  if (read_byte(go) != 'G')
    _exit(30);
  for (unsigned tries = 0;; tries++) {
    rc = mapkv_open(path, &o, &db);
    if (rc == 0)
      break;
    if (rc != MAPKV_ELOCKED || tries > 10000000) {
      fprintf(stderr, "racer %u: open: %d (%s) %s\n", id, rc,
              mapkv_strerror(rc), mapkv_errmsg());
      _exit(31);
    }
    sched_yield(); /* another racer holds it: try again */
  }
  snprintf(k, sizeof k, "racer%u", id);
  if (mapkv_put(db, k, strlen(k), "here", 4) != 0)
    _exit(32);
  _exit(mapkv_close(db) == 0 ? 0 : 33);
}

/* Processes that open one new store with MAPKV_CREATE at the same moment:
 * each must end up using the one store (waiting while another writes it),
 * none may fail, and every one's key must be in it. */
static void test_racing_creators(void **state) {
  (void)state;
  for (unsigned round = 0; round < ROUNDS; round++) {
    pid_t pids[RACERS];
    int go[2], failed = 0;
    mapkv_t *db;
    mapkv_stats st;

    unlink(path);
    assert_int_equal(pipe(go), 0);
    for (unsigned i = 0; i < RACERS; i++) {
      pids[i] = fork();
      assert_true(pids[i] >= 0);
      if (pids[i] == 0) {
        close(go[1]);
        racer(i, go[0]);
      }
    }
    close(go[0]);
    for (unsigned i = 0; i < RACERS; i++)
      assert_int_equal(send_byte(go[1], 'G'), 0);
    close(go[1]);
    for (unsigned i = 0; i < RACERS; i++) {
      int status = 0;
      assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        failed++;
    }
    if (failed > 0)
      fail_msg("round %u: %d of %d creators failed", round, failed, RACERS);

    /* One store, with every racer's key. */
    db = open_flags(MAPKV_RDONLY, MAPKV_SYNC_COMMIT);
    assert_rc(mapkv_stat(db, &st), 0);
    assert_int_equal(st.records, RACERS);
    for (unsigned i = 0; i < RACERS; i++) {
      char k[16];
      uint8_t buf[8];
      size_t n = 0;
      snprintf(k, sizeof k, "racer%u", i);
      assert_rc(mapkv_get(db, k, strlen(k), buf, sizeof buf, &n), 0);
      assert_int_equal(n, 4);
    }
    assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);
    assert_rc(mapkv_close(db), 0);
    {
      char tmp[300];
      snprintf(tmp, sizeof tmp, "%s.creating", path);
      assert_int_equal(tu_file_size(tmp), -1);
    }
  }
}

int main(void) {
  /* MAPKV_TEST_FILTER=pattern runs only the matching tests. */
  if (getenv("MAPKV_TEST_FILTER") != NULL)
    cmocka_set_test_filter(getenv("MAPKV_TEST_FILTER"));
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_second_writer_locked_reader_allowed),
      T(test_lock_timeout_waits_for_close),
      T(test_lock_timeout_expires),
      T(test_killed_writer_releases_lock),
      T(test_compaction_keeps_lock),
      T(test_racing_creators),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
