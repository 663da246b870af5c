/*
 * test_reserve.c — the address space a writer reserves for its mapping:
 * the default reservation halved when the process may not have that much
 * (reservations refused through the mapping core's system-call table, and
 * for real in a child under RLIMIT_AS), a reservation the caller set taken
 * as it is or not at all, what mapkv_stat() reports, growth past a smaller
 * reservation, and creates that fail leaving nothing behind (while an
 * existing store is never removed).
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
#include "store/os.h"
#include "testutil.h"

/* Sanitizers map terabytes of shadow memory: no address-space limit
 * leaves them room. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||     \
    __has_feature(memory_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

#define assert_rc(expr, want)                                                  \
  do {                                                                         \
    int rc_ = (expr), want_ = (want);                                          \
    if (rc_ != want_)                                                          \
      fail_msg("%s: got %d (%s; \"%s\"), want %d (%s)", #expr, rc_,            \
               mapkv_strerror(rc_), mapkv_errmsg(), want_,                     \
               mapkv_strerror(want_));                                         \
  } while (0)

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* ---- fixture ------------------------------------------------------------- */

#define FX_PATHS 8
static struct {
  char paths[FX_PATHS][300];
  int n;
} fx;

static int setup(void **state) {
  (void)state;
  memset(&fx, 0, sizeof fx);
  mapkv__os_reset();
  mmf__sys_reset();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  mapkv__os_reset();
  mmf__sys_reset();
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

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

/* Entries of path's directory that start with path's name: the store and
 * anything made beside it. */
static int entries(const char *path) {
  char cmd[800];
  FILE *p;
  int n = -1;
  const char *slash = strrchr(path, '/');
  assert_non_null(slash);
  snprintf(cmd, sizeof cmd, "ls -a '%.*s' | grep -c -F '%s' || true",
           (int)(slash - path), path, slash + 1);
  p = popen(cmd, "r");
  assert_non_null(p);
  if (fscanf(p, "%d", &n) != 1)
    n = -1;
  pclose(p);
  return n;
}

static int open_with(const char *path, unsigned flags, uint64_t reserve,
                     mapkv_t **db) {
  mapkv_options o;
  mapkv_options_init(&o);
  o.flags = flags;
  o.sync_mode = MAPKV_SYNC_NONE;
  o.reserve = reserve;
  *db = NULL;
  return mapkv_open(path, &o, db);
}

/* ---- reservations refused through the system-call table ------------------ */

/* Address-space reservations (PROT_NONE placeholders) of more than
 * `as_limit` bytes fail as under an address-space limit. */
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static uint64_t as_limit;
static unsigned refused;

static void *limited_mmap(void *addr, size_t len, int prot, int flags, int fd,
                          off_t off) {
  if (prot == PROT_NONE && addr == NULL && len > as_limit) {
    refused++;
    errno = ENOMEM;
    return MAP_FAILED;
  }
  return real_mmap(addr, len, prot, flags, fd, off);
}

static void limit_reservations(uint64_t limit) {
  if (mmf__sys.mmap != limited_mmap)
    real_mmap = mmf__sys.mmap;
  as_limit = limit;
  refused = 0;
  mmf__sys.mmap = limited_mmap;
}

static void test_options_leave_reserve_to_the_library(void **state) {
  mapkv_options o;
  (void)state;
  mapkv_options_init(&o);
  assert_int_equal(o.reserve, 0);
}

static void test_default_reservation_is_halved(void **state) {
  const char *p = fx_path("res-half");
  uint8_t val[4096];
  mapkv_stats st;
  mapkv_t *db;
  char k[32];
  int rc = 0, i;
  (void)state;

  limit_reservations(16 * MiB);
  assert_rc(open_with(p, MAPKV_CREATE, 0, &db), 0);
  assert_true(refused > 0);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.reserve_requested, 64 * GiB);
  assert_int_equal(st.reserved_size, 16 * MiB);
  assert_rc(mapkv_put(db, "k", 1, "v", 1), 0);
  assert_rc(mapkv_close(db), 0);
  /* Every open halves again. */
  assert_rc(open_with(p, 0, 0, &db), 0);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.reserved_size, 16 * MiB);
  /* The store works in what it has, and says why it cannot grow past it. */
  memset(val, 'v', sizeof val);
  for (i = 0; i < 10000 && rc == 0; i++) {
    snprintf(k, sizeof k, "k%05d", i);
    rc = mapkv_put(db, k, strlen(k), val, sizeof val);
  }
  assert_rc(rc, MAPKV_EFULL);
  assert_non_null(strstr(mapkv_errmsg(), "ulimit -v"));
  assert_true(i > 1000);
  /* Compaction works within it too. */
  assert_rc(mapkv_del(db, "k00000", 6), 0);
  assert_rc(mapkv_compact(db), 0);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_true(st.reserved_size <= 16 * MiB);
  assert_int_equal(st.records, (uint64_t)i - 1);
  assert_rc(mapkv_close(db), 0);
  /* A reader maps only the file. */
  assert_rc(open_with(p, MAPKV_RDONLY, 0, &db), 0);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.reserved_size, st.file_size);
  assert_int_equal(st.reserve_requested, st.file_size);
  assert_rc(mapkv_close(db), 0);
  mmf__sys_reset();
  /* Without the limit, the default. */
  assert_rc(open_with(p, 0, 0, &db), 0);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.reserved_size, 64 * GiB);
  assert_int_equal(st.reserve_requested, 64 * GiB);
  assert_rc(mapkv_close(db), 0);
}

/* A reservation the caller set is had as it is, or the open fails; a
 * store it created is removed, one that existed is left as it was. */
static void test_reserve_set_is_exact(void **state) {
  const char *p = fx_path("res-exact");
  uint8_t *before, *after;
  size_t lb, la;
  mapkv_stats st;
  mapkv_t *db;
  (void)state;

  limit_reservations(16 * MiB);
  assert_rc(open_with(p, MAPKV_CREATE, 64 * MiB, &db), -ENOMEM);
  assert_null(db);
  assert_non_null(strstr(mapkv_errmsg(), "reserve option"));
  assert_false(exists(p));
  assert_int_equal(entries(p), 0);
  assert_rc(open_with(p, MAPKV_CREATE, 8 * MiB, &db), 0);
  assert_rc(mapkv_stat(db, &st), 0);
  assert_int_equal(st.reserved_size, 8 * MiB);
  assert_int_equal(st.reserve_requested, 8 * MiB);
  assert_rc(mapkv_put(db, "k", 1, "v", 1), 0);
  assert_rc(mapkv_close(db), 0);
  before = tu_slurp(p, &lb);
  assert_rc(open_with(p, MAPKV_CREATE, 64 * MiB, &db), -ENOMEM);
  after = tu_slurp(p, &la);
  assert_int_equal(la, lb);
  assert_memory_equal(after, before, la);
  free(after);
  free(before);
  assert_int_equal(entries(p), 1);
}

/* The halving stops at twice the file and room for its first growth. */
static void test_reservation_floor(void **state) {
  const char *p = fx_path("res-floor");
  mapkv_t *db;
  (void)state;

  limit_reservations(1 * MiB);
  /* A new store needs its first growth (1 MiB) and more. */
  assert_rc(open_with(p, MAPKV_CREATE, 0, &db), -ENOMEM);
  assert_non_null(strstr(mapkv_errmsg(), "down to"));
  assert_false(exists(p));
  assert_int_equal(entries(p), 0);
  mmf__sys_reset();
  assert_rc(open_with(p, MAPKV_CREATE, 0, &db), 0);
  {
    uint8_t v[1000];
    memset(v, 1, sizeof v);
    for (int i = 0; i < 3000; i++) {
      char k[16];
      snprintf(k, sizeof k, "%d", i);
      assert_rc(mapkv_put(db, k, strlen(k), v, sizeof v), 0);
    }
  }
  assert_rc(mapkv_close(db), 0);
  assert_true(tu_file_size(p) > (int64_t)(3 * MiB));
  /* A file of about 3 MiB: twice it is needed; less is refused. */
  limit_reservations(5 * MiB);
  assert_rc(open_with(p, 0, 0, &db), -ENOMEM);
  assert_true(exists(p));
  limit_reservations(12 * MiB);
  assert_rc(open_with(p, 0, 0, &db), 0);
  assert_rc(mapkv_close(db), 0);
}

/* A create that fails after the file was linked into place removes it. */
static int (*real_msync)(void *, size_t, int);
static int eio_msync(void *addr, size_t len, int flags) {
  (void)addr;
  (void)len;
  (void)flags;
  errno = EIO;
  return -1;
}

static int (*real_fsync)(int);
static int eio_dir_fsync(int fd) {
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    errno = EIO;
    return -1;
  }
  return real_fsync(fd);
}

static void test_failed_create_leaves_nothing(void **state) {
  const char *p = fx_path("res-create");
  mapkv_t *db;
  (void)state;

  /* The flush of the new store's header. */
  real_msync = mmf__sys.msync;
  mmf__sys.msync = eio_msync;
  assert_rc(open_with(p, MAPKV_CREATE, 0, &db), -EIO);
  assert_false(exists(p));
  assert_int_equal(entries(p), 0);
  mmf__sys_reset();
  /* The sync of the directory after the link. */
  real_fsync = mapkv__os.fsync;
  mapkv__os.fsync = eio_dir_fsync;
  assert_rc(open_with(p, MAPKV_CREATE, 0, &db), -EIO);
  assert_false(exists(p));
  assert_int_equal(entries(p), 0);
  mapkv__os_reset();
  /* No reservation at all. */
  limit_reservations(0);
  assert_rc(open_with(p, MAPKV_CREATE, 0, &db), -ENOMEM);
  assert_false(exists(p));
  assert_int_equal(entries(p), 0);
  mmf__sys_reset();
  /* An existing store is never removed, whatever fails. */
  assert_rc(open_with(p, MAPKV_CREATE, 0, &db), 0);
  assert_rc(mapkv_put(db, "k", 1, "v", 1), 0);
  assert_rc(mapkv_close(db), 0);
  mmf__sys.msync = eio_msync;
  assert_rc(open_with(p, MAPKV_CREATE, 0, &db), -EIO);
  mmf__sys_reset();
  limit_reservations(0);
  assert_rc(open_with(p, MAPKV_CREATE, 0, &db), -ENOMEM);
  mmf__sys_reset();
  assert_rc(open_with(p, MAPKV_RDONLY, 0, &db), 0);
  {
    char v[4];
    size_t n;
    assert_rc(mapkv_get(db, "k", 1, v, sizeof v, &n), 0);
  }
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(entries(p), 1);
}

/* ---- a real address-space limit ------------------------------------------ */

/* Whether valgrind runs this process (its preloaded objects are mapped):
 * its own memory does not fit under the limit either. */
static int under_valgrind(void) {
  char line[512];
  int found = 0;
  FILE *f = fopen("/proc/self/maps", "r");
  if (f == NULL)
    return 0;
  while (!found && fgets(line, sizeof line, f) != NULL)
    found = strstr(line, "vgpreload") != NULL;
  fclose(f);
  return found;
}

/* In a child under RLIMIT_AS of 2 GiB: the default store works, with a
 * smaller reservation; a reservation set beyond the limit fails and
 * leaves nothing. Returns a step number on failure. */
static int limited_child(const char *p, const char *q, const char *c) {
  struct rlimit rl = {2 * GiB, 2 * GiB};
  mapkv_stats st;
  mapkv_t *db;
  char k[32], v[256];
  size_t n;
  if (setrlimit(RLIMIT_AS, &rl) != 0)
    return 1;
  if (open_with(p, MAPKV_CREATE, 0, &db) != 0)
    return 2;
  if (mapkv_stat(db, &st) != 0 || st.reserved_size >= 2 * GiB ||
      st.reserved_size < 2 * MiB || st.reserve_requested != 64 * GiB)
    return 3;
  memset(v, 'x', sizeof v);
  for (int i = 0; i < 20000; i++) {
    snprintf(k, sizeof k, "key%d", i);
    if (mapkv_put(db, k, strlen(k), v, sizeof v) != 0)
      return 4;
  }
  if (mapkv_compact(db) != 0 || mapkv_copy(db, c, 0) != 0)
    return 5;
  if (mapkv_close(db) != 0)
    return 6;
  if (open_with(p, 0, 0, &db) != 0 ||
      mapkv_get(db, "key19999", 8, v, sizeof v, &n) != 0 || n != 256 ||
      mapkv_close(db) != 0)
    return 7;
  if (open_with(q, MAPKV_CREATE, 4 * GiB, &db) != -ENOMEM || exists(q))
    return 8;
  if (open_with(p, 0, 4 * GiB, &db) != -ENOMEM || !exists(p))
    return 9;
  return 0;
}

static void test_under_an_address_space_limit(void **state) {
  const char *p = fx_path("res-rlimit"), *q = fx_path("res-rlimitq");
  const char *c = fx_path("res-rlimitc");
  mapkv_t *db;
  int status;
  pid_t pid;
  (void)state;

  if (UNDER_SANITIZER || under_valgrind())
    skip();
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(limited_child(p, q, c));
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  if (WEXITSTATUS(status) != 0)
    fail_msg("the child under RLIMIT_AS failed at step %d",
             WEXITSTATUS(status));
  assert_false(exists(q));
  assert_int_equal(entries(q), 0);
  assert_rc(open_with(c, MAPKV_RDONLY, 0, &db), 0);
  assert_rc(mapkv_close(db), 0);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_options_leave_reserve_to_the_library),
      T(test_default_reservation_is_halved),
      T(test_reserve_set_is_exact),
      T(test_reservation_floor),
      T(test_failed_create_leaves_nothing),
      T(test_under_an_address_space_limit),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
