/*
 * test_faults.c — failures of the operating system and the mapping core,
 * injected.
 *
 * Every entry of the engine's system-call table (store/os.h) and the
 * mapping core's mmap, msync and ftruncate (mmf/mmf_sys.h) is replaced,
 * for every test, by a wrapper that passes the call on and counts it; a
 * test arms a wrapper to fail calls: after letting `skip` of them through,
 * `fail` of them (-1: every later one), optionally only the calls that
 * name a file whose name holds a given string. Each test checks what
 * mapkv.h promises of a failure: the code and the message, outputs left as
 * they were, the store's bytes and inode unchanged, no file and no
 * descriptor left behind, and a handle that goes on working.
 *
 * Covered: creating a store (a file id, the temporary file, its header
 * page, its sync, its link, the directory sync, a creator that lost the
 * race), opening and locking (flock failing or busy, a file replaced again
 * and again while locking, fstat, sizes no store has, the flushes of the
 * recovered log and of the header, the index), growing the file and the
 * index, syncing and closing, every step of compaction and of
 * mapkv_recover() (with keep_original's fallbacks from a hard link to a
 * rename), and the helpers of os.c on their own (writes retried, links
 * resolved, leftovers told from the files of live processes, owners
 * copied, a file system without fallocate, getrandom failing).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
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

#define assert_rc(expr, want)                                                  \
  do {                                                                         \
    int rc_ = (expr), want_ = (want);                                          \
    if (rc_ != want_)                                                          \
      fail_msg("%s: got %d (%s; \"%s\"), want %d (%s)", #expr, rc_,            \
               mapkv_strerror(rc_), mapkv_errmsg(), want_,                     \
               mapkv_strerror(want_));                                         \
  } while (0)

#define assert_msg_has(text)                                                   \
  do {                                                                         \
    if (strstr(mapkv_errmsg(), (text)) == NULL)                                \
      fail_msg("message \"%s\" does not say \"%s\"", mapkv_errmsg(), (text));  \
  } while (0)

/* ---- injected failures ----------------------------------------------------- */

/* What a wrapper does with the calls it sees (those whose file name holds
 * `match`, or all when match is NULL): counts them in `seen`, lets the
 * first `skip` through, then fails `fail` of them (-1: all) with errno
 * `err` (0: none fails), counted in `failed`. */
typedef struct plan {
  int skip, fail, err;
  const char *match;
  int seen, failed;
} plan;

static int fires(plan *p, const char *a, const char *b) {
  if (p->match != NULL && (a == NULL || strstr(a, p->match) == NULL) &&
      (b == NULL || strstr(b, p->match) == NULL))
    return 0;
  p->seen++;
  if (p->err == 0 || p->seen <= p->skip ||
      (p->fail >= 0 && p->failed >= p->fail))
    return 0;
  p->failed++;
  errno = p->err;
  return 1;
}

static struct {
  plan open, open_dir, fstat, stat, flock, reserve, pwrite, fsync, fsync_dir,
      rename, link, unlink, random, fchown, fchmod;
  plan mmap_file, mmap_anon, mmap_reserve, msync, ftruncate;
  int stat_lies;      /* stat of a file reports another inode this often */
  off_t fstat_size;   /* when nonzero, fstat says a regular file has this */
  size_t reserve_min; /* the smallest address reservation asked for */
  char last_dir[700]; /* the last directory opened (for a sync) */
  void (*on_flock)(void);
  int (*on_link)(const char *from, const char *to); /* instead of link() */
} F;

static struct mapkv__os real_os;
static struct mmf__sys real_sys;

/* Arms p: skip calls, then fail `fail` of them with err. */
static void arm(plan *p, int skip, int fail, int err, const char *match) {
  p->skip = skip;
  p->fail = fail;
  p->err = err;
  p->match = match;
  p->seen = p->failed = 0;
}

static void disarm(void) {
  memset(&F, 0, sizeof F);
  F.reserve_min = SIZE_MAX;
}

static int w_open(const char *path, int flags, mode_t mode) {
  if (flags & O_DIRECTORY) {
    snprintf(F.last_dir, sizeof F.last_dir, "%s", path);
    if (fires(&F.open_dir, path, NULL))
      return -1;
  } else if (fires(&F.open, path, NULL)) {
    return -1;
  }
  return real_os.open(path, flags, mode);
}

static int w_fstat(int fd, struct stat *st) {
  int rc;
  if (fires(&F.fstat, NULL, NULL))
    return -1;
  rc = real_os.fstat(fd, st);
  if (rc == 0 && F.fstat_size != 0 && S_ISREG(st->st_mode))
    st->st_size = F.fstat_size;
  return rc;
}

static int w_stat(const char *path, struct stat *st) {
  int rc;
  if (fires(&F.stat, path, NULL))
    return -1;
  rc = real_os.stat(path, st);
  if (rc == 0 && F.stat_lies != 0 && S_ISREG(st->st_mode)) {
    st->st_ino += 1000003; /* another file than the one opened */
    if (F.stat_lies > 0)
      F.stat_lies--;
  }
  return rc;
}

static int w_flock(int fd, int op) {
  if (F.on_flock != NULL)
    F.on_flock();
  if (fires(&F.flock, NULL, NULL))
    return -1;
  return real_os.flock(fd, op);
}

static int w_reserve(int fd, off_t off, off_t len) {
  if (fires(&F.reserve, NULL, NULL))
    return -1;
  return real_os.reserve(fd, off, len);
}

static ssize_t w_pwrite(int fd, const void *buf, size_t n, off_t off) {
  if (fires(&F.pwrite, NULL, NULL))
    return -1;
  return real_os.pwrite(fd, buf, n, off);
}

static int w_fsync(int fd) {
  struct stat st;
  int dir = real_os.fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
  if (fires(dir ? &F.fsync_dir : &F.fsync, NULL, NULL))
    return -1;
  return real_os.fsync(fd);
}

static int w_rename(const char *from, const char *to) {
  if (fires(&F.rename, from, to))
    return -1;
  return real_os.rename(from, to);
}

static int w_link(const char *from, const char *to) {
  if (fires(&F.link, to, NULL))
    return -1;
  if (F.on_link != NULL)
    return F.on_link(from, to);
  return real_os.link(from, to);
}

static int w_unlink(const char *path) {
  if (fires(&F.unlink, path, NULL))
    return -1;
  return real_os.unlink(path);
}

static int w_random(void *buf, size_t n) {
  if (fires(&F.random, NULL, NULL))
    return -1;
  return real_os.random(buf, n);
}

static int w_fchown(int fd, uid_t u, gid_t g) {
  if (fires(&F.fchown, NULL, NULL))
    return -1;
  return real_os.fchown(fd, u, g);
}

static int w_fchmod(int fd, mode_t m) {
  if (fires(&F.fchmod, NULL, NULL))
    return -1;
  return real_os.fchmod(fd, m);
}

/* The mapping core's mmap calls are of three kinds: address space reserved
 * (PROT_NONE), anonymous memory (the index's tables), and the file. */
static void *w_mmap(void *addr, size_t len, int prot, int flags, int fd,
                    off_t off) {
  plan *p = prot == PROT_NONE ? &F.mmap_reserve
            : fd < 0          ? &F.mmap_anon
                              : &F.mmap_file;
  if (prot == PROT_NONE && !(flags & MAP_FIXED) && len < F.reserve_min)
    F.reserve_min = len;
  if (fires(p, NULL, NULL))
    return MAP_FAILED;
  return real_sys.mmap(addr, len, prot, flags, fd, off);
}

static int w_msync(void *addr, size_t len, int flags) {
  if (fires(&F.msync, NULL, NULL))
    return -1;
  return real_sys.msync(addr, len, flags);
}

static int w_ftruncate(int fd, off_t len) {
  if (fires(&F.ftruncate, NULL, NULL))
    return -1;
  return real_sys.ftruncate(fd, len);
}

static void install(void) {
  mapkv__os_reset();
  mmf__sys_reset();
  real_os = mapkv__os;
  real_sys = mmf__sys;
  disarm();
  mapkv__os.open = w_open;
  mapkv__os.fstat = w_fstat;
  mapkv__os.stat = w_stat;
  mapkv__os.flock = w_flock;
  mapkv__os.reserve = w_reserve;
  mapkv__os.pwrite = w_pwrite;
  mapkv__os.fsync = w_fsync;
  mapkv__os.rename = w_rename;
  mapkv__os.link = w_link;
  mapkv__os.unlink = w_unlink;
  mapkv__os.random = w_random;
  mapkv__os.fchown = w_fchown;
  mapkv__os.fchmod = w_fchmod;
  mmf__sys.mmap = w_mmap;
  mmf__sys.msync = w_msync;
  mmf__sys.ftruncate = w_ftruncate;
}

/* ---- fixture: a directory of its own per test ------------------------------ */

#define FX_DBS   8
#define FX_PATHS 32

static char fx_dir[512]; /* the test's directory */
static struct {
  char paths[FX_PATHS][700];
  int npaths;
  mapkv_t *dbs[FX_DBS];
  char cwd[4096];
  int chdired;
} fx;

static int rm_entry(const char *p, const struct stat *st, int flag,
                    struct FTW *f) {
  (void)st;
  (void)f;
  if (flag == FTW_DNR)
    chmod(p, 0755);
  remove(p);
  return 0;
}

static int setup(void **state) {
  (void)state;
  memset(&fx, 0, sizeof fx);
  install();
  tu_path(fx_dir, sizeof fx_dir, "faults");
  assert_int_equal(mkdir(fx_dir, 0755), 0);
  return 0;
}

static int teardown(void **state) {
  char sub[600];
  (void)state;
  mapkv__os_reset();
  mmf__sys_reset();
  for (int i = 0; i < FX_DBS; i++)
    if (fx.dbs[i] != NULL)
      mapkv_close(fx.dbs[i]);
  if (fx.chdired && chdir(fx.cwd) != 0)
    fprintf(stderr, "cannot return to %s\n", fx.cwd);
  snprintf(sub, sizeof sub, "%s/noread", fx_dir);
  chmod(sub, 0755);
  nftw(fx_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}

/* A path in the test's directory. */
static const char *fx_path(const char *name) {
  assert_true(fx.npaths < FX_PATHS);
  snprintf(fx.paths[fx.npaths], sizeof fx.paths[0], "%s/%s", fx_dir, name);
  return fx.paths[fx.npaths++];
}

/* Makes the test's directory the working directory (until teardown). */
static void enter_dir(void) {
  if (!fx.chdired)
    assert_non_null(getcwd(fx.cwd, sizeof fx.cwd));
  assert_int_equal(chdir(fx_dir), 0);
  fx.chdired = 1;
}

static void track(mapkv_t *db) {
  for (int i = 0; i < FX_DBS; i++)
    if (fx.dbs[i] == NULL) {
      fx.dbs[i] = db;
      return;
    }
  fail_msg("too many open handles in one test");
}

static void untrack(mapkv_t *db) {
  for (int i = 0; i < FX_DBS; i++)
    if (fx.dbs[i] == db)
      fx.dbs[i] = NULL;
}

static mapkv_options opts_with(unsigned flags) {
  mapkv_options o;
  mapkv_options_init(&o);
  o.flags = flags;
  return o;
}

static mapkv_t *open_opts(const char *path, const mapkv_options *o) {
  mapkv_t *db = NULL;
  assert_rc(mapkv_open(path, o, &db), 0);
  track(db);
  return db;
}

static mapkv_t *open_ok(const char *path, unsigned flags) {
  mapkv_options o = opts_with(flags);
  return open_opts(path, &o);
}

static void close_ok(mapkv_t *db) {
  untrack(db);
  assert_rc(mapkv_close(db), 0);
}

/* The handle a failed open must leave alone. */
static mapkv_t *const SENTINEL = (mapkv_t *)&fx;

/* Opens expecting failure `want`: *out untouched, nothing tracked. */
static void open_fails(const char *path, const mapkv_options *o, int want) {
  mapkv_t *db = SENTINEL;
  assert_rc(mapkv_open(path, o, &db), want);
  assert_ptr_equal(db, SENTINEL);
}

/* ---- contents: n keys, every other one written twice ----------------------- */

static void kv(unsigned i, unsigned ver, char *k, size_t kc, char *v,
               size_t vc) {
  snprintf(k, kc, "k%05u", i);
  snprintf(v, vc, "value of key %05u, version %u", i, ver);
}

static unsigned ver_of(unsigned i) { return i % 2 == 0 ? 2 : 1; }

static void fill(mapkv_t *db, unsigned n) {
  char k[16], v[64];
  for (unsigned i = 0; i < n; i++) {
    kv(i, 1, k, sizeof k, v, sizeof v);
    assert_rc(mapkv_put(db, k, strlen(k), v, strlen(v)), 0);
  }
  for (unsigned i = 0; i < n; i += 2) {
    kv(i, 2, k, sizeof k, v, sizeof v);
    assert_rc(mapkv_put(db, k, strlen(k), v, strlen(v)), 0);
  }
}

/* The same keys and values, each written once. */
static void fill_once(mapkv_t *db, unsigned n) {
  char k[16], v[64];
  for (unsigned i = 0; i < n; i++) {
    kv(i, ver_of(i), k, sizeof k, v, sizeof v);
    assert_rc(mapkv_put(db, k, strlen(k), v, strlen(v)), 0);
  }
}

static mapkv_stats stat_of(mapkv_t *db) {
  mapkv_stats st;
  assert_rc(mapkv_stat(db, &st), 0);
  return st;
}

/* The n keys of fill() have their values. */
static void expect_values(mapkv_t *db, unsigned n) {
  char k[16], v[64], buf[64];
  for (unsigned i = 0; i < n; i++) {
    size_t got = 0;
    kv(i, ver_of(i), k, sizeof k, v, sizeof v);
    assert_rc(mapkv_get(db, k, strlen(k), buf, sizeof buf, &got), 0);
    assert_int_equal(got, strlen(v));
    assert_memory_equal(buf, v, got);
  }
}

/* ... and no other key is there. */
static void expect_filled(mapkv_t *db, unsigned n) {
  expect_values(db, n);
  assert_int_equal(stat_of(db).records, n);
}

static void make_store(const char *path, unsigned n) {
  mapkv_t *db = open_ok(path, MAPKV_CREATE);
  fill(db, n);
  close_ok(db);
}

static void expect_store(const char *path, unsigned n) {
  mapkv_t *db = open_ok(path, MAPKV_RDONLY);
  expect_filled(db, n);
  assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);
  close_ok(db);
}

static void put_str(mapkv_t *db, const char *k, const char *v) {
  assert_rc(mapkv_put(db, k, strlen(k), v, strlen(v)), 0);
}

static void expect_str(mapkv_t *db, const char *k, const char *v) {
  char buf[256];
  size_t n = 0;
  assert_rc(mapkv_get(db, k, strlen(k), buf, sizeof buf, &n), 0);
  assert_int_equal(n, strlen(v));
  assert_memory_equal(buf, v, n);
}

static void expect_missing(mapkv_t *db, const char *k) {
  assert_int_equal(mapkv_exists(db, k, strlen(k)), 0);
}

/* ---- files: snapshots, the directory's names, descriptors ------------------ */

typedef struct snap {
  uint8_t *bytes;
  size_t len;
  ino_t ino;
} snap;

static snap snap_take(const char *path) {
  snap s;
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  s.ino = st.st_ino;
  s.bytes = tu_slurp(path, &s.len);
  return s;
}

/* Asserts that path is the same file with the same bytes; frees s. */
static void snap_same(const char *path, snap s) {
  struct stat st;
  size_t len;
  uint8_t *now;
  int same;
  if (stat(path, &st) != 0)
    fail_msg("%s is gone", path);
  now = tu_slurp(path, &len);
  same = len == s.len && memcmp(now, s.bytes, len) == 0;
  free(now);
  free(s.bytes);
  if (st.st_ino != s.ino)
    fail_msg("%s is another file now", path);
  if (!same)
    fail_msg("%s changed (%zu bytes before, %zu after)", path, s.len, len);
}

static void snap_free(snap s) { free(s.bytes); }

/* The names in the test's directory, sorted, joined by spaces. */
static void dir_names(const char *dir, char *out, size_t cap) {
  char names[64][256];
  int n = 0;
  struct dirent *e;
  DIR *d = opendir(dir);
  assert_non_null(d);
  while ((e = readdir(d)) != NULL && n < 64)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      snprintf(names[n++], sizeof names[0], "%s", e->d_name);
  closedir(d);
  qsort(names, (size_t)n, sizeof names[0],
        (int (*)(const void *, const void *))strcmp);
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    size_t l = strlen(out);
    snprintf(out + l, cap - l, "%s%s", i ? " " : "", names[i]);
  }
}

/* Asserts that the test's directory holds exactly these names (sorted,
 * separated by spaces): nothing was left behind. */
static void expect_dir(const char *names) {
  char got[4096];
  dir_names(fx_dir, got, sizeof got);
  if (strcmp(got, names) != 0)
    fail_msg("the directory holds \"%s\", not \"%s\"", got, names);
}

/* The one name in the test's directory that starts with prefix, or "". */
static void find_name(const char *prefix, char *out, size_t cap) {
  struct dirent *e;
  DIR *d = opendir(fx_dir);
  int n = 0;
  assert_non_null(d);
  out[0] = '\0';
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
      snprintf(out, cap, "%s/%s", fx_dir, e->d_name);
      n++;
    }
  closedir(d);
  assert_true(n <= 1);
}

/* Open descriptors of this process. */
static int fd_count(void) {
  struct dirent *e;
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own */
}

static void expect_fds(int before) {
  if (before >= 0)
    assert_int_equal(fd_count(), before);
}

static ino_t inode_of(const char *path) {
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  return st.st_ino;
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static void touch(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(fd >= 0);
  close(fd);
}

static long dead_pid(void) {
  pid_t p = fork();
  assert_true(p >= 0);
  if (p == 0)
    _exit(0);
  assert_int_equal(waitpid(p, NULL, 0), p);
  return (long)p;
}

/* ---- os.c on its own --------------------------------------------------------- */

static int pw_eintr, pw_calls;

/* Writes at most 3 bytes a call, after failing pw_eintr calls with EINTR. */
static ssize_t short_pwrite(int fd, const void *buf, size_t n, off_t off) {
  pw_calls++;
  if (pw_eintr > 0) {
    pw_eintr--;
    errno = EINTR;
    return -1;
  }
  return pwrite(fd, buf, n > 3 ? 3 : n, off);
}

static ssize_t zero_pwrite(int fd, const void *buf, size_t n, off_t off) {
  (void)fd;
  (void)buf;
  (void)n;
  (void)off;
  return 0;
}

static void test_pwrite_all(void **state) {
  const char *p = fx_path("file");
  uint8_t buf[100], *got;
  size_t len;
  int fd = tu_file_with(p, NULL, 0);
  (void)state;
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (uint8_t)(i * 7 + 1);

  /* Short writes and interrupted ones are carried on. */
  mapkv__os.pwrite = short_pwrite;
  pw_eintr = 2;
  pw_calls = 0;
  assert_int_equal(mapkv__os_pwrite_all(fd, buf, sizeof buf, 10), 0);
  assert_int_equal(pw_calls, 2 + 34);
  got = tu_slurp(p, &len);
  assert_int_equal(len, 110);
  assert_memory_equal(got + 10, buf, sizeof buf);
  free(got);

  /* A write that writes nothing would never end: EIO. */
  mapkv__os.pwrite = zero_pwrite;
  assert_int_equal(mapkv__os_pwrite_all(fd, buf, sizeof buf, 0), -EIO);

  /* Any other failure is the call's. */
  mapkv__os.pwrite = w_pwrite;
  arm(&F.pwrite, 0, -1, ENOSPC, NULL);
  assert_int_equal(mapkv__os_pwrite_all(fd, buf, sizeof buf, 0), -ENOSPC);
  assert_int_equal(F.pwrite.failed, 1);
  assert_int_equal(mapkv__os_pwrite_all(fd, buf, 0, 0), 0); /* nothing */
  close(fd);
}

static void test_sync_dir(void **state) {
  char path[700];
  (void)state;

  /* A name without a directory: the working directory. */
  enter_dir();
  assert_int_equal(mapkv__os_sync_dir("store"), 0);
  assert_string_equal(F.last_dir, ".");
  assert_int_equal(F.fsync_dir.seen, 1);
  /* A name in the root directory. */
  assert_int_equal(mapkv__os_sync_dir("/no-such-store"), 0);
  assert_string_equal(F.last_dir, "/");
  assert_int_equal(F.fsync_dir.seen, 2);
  /* A directory that does not exist. */
  snprintf(path, sizeof path, "%s/missing/store", fx_dir);
  assert_int_equal(mapkv__os_sync_dir(path), -ENOENT);
  /* The directory cannot be opened, or synced. */
  arm(&F.open_dir, 0, -1, EACCES, NULL);
  assert_int_equal(mapkv__os_sync_dir(fx_path("store")), -EACCES);
  arm(&F.open_dir, 0, 0, 0, NULL);
  arm(&F.fsync_dir, 0, -1, EIO, NULL);
  assert_int_equal(mapkv__os_sync_dir(fx_path("store")), -EIO);
  assert_int_equal(F.fsync_dir.failed, 1);
}

static void test_resolve(void **state) {
  const char *file = fx_path("file"), *abs_link = fx_path("abs");
  const char *rel_link = fx_path("rel"), *missing = fx_path("missing");
  char *out = NULL, name[700], want[700];
  char *const none = (char *)&fx;
  (void)state;
  touch(file);

  /* Not a link, or missing: the path itself. */
  assert_int_equal(mapkv__os_resolve(file, &out), 0);
  assert_string_equal(out, file);
  free(out);
  assert_int_equal(mapkv__os_resolve(missing, &out), 0);
  assert_string_equal(out, missing);
  free(out);

  /* An absolute link: its target. */
  assert_int_equal(symlink(file, abs_link), 0);
  assert_int_equal(mapkv__os_resolve(abs_link, &out), 0);
  assert_string_equal(out, file);
  free(out);

  /* A relative link is taken from the link's directory, and may name a
   * file that does not exist yet (a store is created there). */
  assert_int_equal(symlink("sub/store", rel_link), 0);
  assert_int_equal(mapkv__os_resolve(rel_link, &out), 0);
  snprintf(want, sizeof want, "%s/sub/store", fx_dir);
  assert_string_equal(out, want);
  free(out);

  /* A link named without a directory, to one named without one. */
  enter_dir();
  assert_int_equal(symlink("file", "bare"), 0);
  assert_int_equal(mapkv__os_resolve("bare", &out), 0);
  assert_string_equal(out, "file");
  free(out);

  /* A chain of 40 links is followed; one of 41 is a loop. */
  for (int i = 0; i < 40; i++) {
    char target[32];
    snprintf(name, sizeof name, "%s/c%d", fx_dir, i);
    snprintf(target, sizeof target, "c%d", i + 1);
    assert_int_equal(symlink(target, name), 0);
  }
  touch(fx_path("c40"));
  assert_int_equal(mapkv__os_resolve(fx_path("c0"), &out), 0);
  snprintf(want, sizeof want, "%s/c40", fx_dir);
  assert_string_equal(out, want);
  free(out);
  assert_int_equal(symlink("c0", fx_path("c-1")), 0);
  out = none;
  assert_int_equal(mapkv__os_resolve(fx_path("c-1"), &out), -ELOOP);
  assert_ptr_equal(out, none);

  /* A store opened through the 41 links: the same. */
  {
    mapkv_options o = opts_with(MAPKV_CREATE);
    open_fails(fx_path("c-1"), &o, -ELOOP);
    assert_rc(mapkv_recover(fx_path("c-1"), NULL, 0, 0, NULL), -ELOOP);
  }
}

static atomic_int flip_stop;

/* Replaces `path` again and again by a link and by a regular file. */
static void *flipper(void *arg) {
  const char *path = arg;
  char l[720], f[720];
  snprintf(l, sizeof l, "%s.l", path);
  snprintf(f, sizeof f, "%s.f", path);
  while (!atomic_load(&flip_stop)) {
    int fd;
    if (symlink("target", l) == 0 && rename(l, path) != 0)
      unlink(l);
    fd = open(f, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0) {
      close(fd);
      if (rename(f, path) != 0)
        unlink(f);
    }
  }
  return NULL;
}

/* The link is replaced by a file between lstat() and readlink(): EINVAL
 * from readlink, and nothing returned. A race: tried for a few seconds;
 * every answer must be one of the three. */
static void test_resolve_readlink_race(void **state) {
  const char *p = fx_path("flip");
  char want[700];
  pthread_t t;
  struct timespec t0, now;
  unsigned links = 0, files = 0, raced = 0;
  (void)state;
  snprintf(want, sizeof want, "%s/target", fx_dir);
  touch(p);
  atomic_store(&flip_stop, 0);
  assert_int_equal(pthread_create(&t, NULL, flipper, (void *)p), 0);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do {
    char *out = (char *)&fx;
    int rc = mapkv__os_resolve(p, &out);
    if (rc == 0) {
      if (strcmp(out, want) == 0)
        links++;
      else if (strcmp(out, p) == 0)
        files++;
      else
        fail_msg("resolved to %s", out);
      free(out);
    } else {
      assert_int_equal(rc, -EINVAL);
      assert_ptr_equal(out, (char *)&fx);
      raced++;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while (raced == 0 && now.tv_sec - t0.tv_sec < 5);
  atomic_store(&flip_stop, 1);
  assert_int_equal(pthread_join(t, NULL), 0);
  if (raced == 0)
    fprintf(stderr, "readlink race not met (%u links, %u files seen)\n", links,
            files);
}

static void test_clean_stale(void **state) {
  const char *p = fx_path("store");
  long dead = dead_pid(), self = (long)getpid(), parent = (long)getppid();
  char gone[2][700], kept[16][700], name[700];
  int nk = 0;
  (void)state;
  touch(p);
  snprintf(gone[0], sizeof gone[0], "%s.creating.%ld.0123456789abcdef", p,
           dead);
  snprintf(gone[1], sizeof gone[1],
           "%s.recovering.%ld.0123456789abcdef.creating.%ld.fedcba9876543210",
           p, dead, dead);
  /* Names that almost match, and the files of live processes. */
  snprintf(kept[nk++], sizeof kept[0], "%s.creating.%ld.0123456789abcdef", p,
           self);
  snprintf(kept[nk++], sizeof kept[0], "%s.creating.%ld.0123456789abcdef", p,
           parent);
  snprintf(kept[nk++], sizeof kept[0], "%s.creating.1.0123456789abcdef", p);
  snprintf(kept[nk++], sizeof kept[0], "%s.creating.0%ld.0123456789abcdef", p,
           dead);
  snprintf(kept[nk++], sizeof kept[0], "%s.creating.x.0123456789abcdef", p);
  snprintf(kept[nk++], sizeof kept[0], "%s.creating..0123456789abcdef", p);
  snprintf(kept[nk++], sizeof kept[0], "%s.creating.%ld.0123456789abcdeg", p,
           dead);
  snprintf(kept[nk++], sizeof kept[0], "%s.creating.%ld.0123456789ABCDEF", p,
           dead);
  snprintf(kept[nk++], sizeof kept[0], "%s.creating.%ld.0123456789abcdef0", p,
           dead);
  snprintf(kept[nk++], sizeof kept[0], "%s.creating.%ld.0123456789abcde", p,
           dead);
  snprintf(kept[nk++], sizeof kept[0], "%s.creating.%ldx.0123456789abcdef", p,
           dead);
  snprintf(kept[nk++], sizeof kept[0], "%s.creatingx.%ld.0123456789abcdef", p,
           dead);
  snprintf(kept[nk++], sizeof kept[0], "%s.compacting.%ld.0123456789abcdef", p,
           dead);
  snprintf(kept[nk++], sizeof kept[0], "%s.%ld.0123456789abcdef", p, dead);
  snprintf(kept[nk++], sizeof kept[0], "%sx.creating.%ld.0123456789abcdef", p,
           dead);
  snprintf(kept[nk++], sizeof kept[0], "%s.creating", p);
  for (int i = 0; i < 2; i++)
    touch(gone[i]);
  for (int i = 0; i < nk; i++)
    touch(kept[i]);

  assert_int_equal(mapkv__os_clean_stale(p), 2);
  for (int i = 0; i < 2; i++)
    assert_false(exists(gone[i]));
  for (int i = 0; i < nk; i++)
    if (!exists(kept[i]))
      fail_msg("%s was removed", kept[i]);
  assert_true(exists(p));

  /* One that cannot be removed is not counted, and stays. */
  touch(gone[0]);
  arm(&F.unlink, 0, -1, EACCES, NULL);
  assert_int_equal(mapkv__os_clean_stale(p), 0);
  assert_int_equal(F.unlink.failed, 1);
  assert_true(exists(gone[0]));
  disarm();

  /* A store named without a directory: the working directory. */
  enter_dir();
  assert_int_equal(mapkv__os_clean_stale("store"), 1);
  assert_false(exists(gone[0]));

  /* A directory that cannot be read: nothing removed, no failure. */
  snprintf(name, sizeof name, "%s/missing/store", fx_dir);
  assert_int_equal(mapkv__os_clean_stale(name), 0);
  if (geteuid() != 0) {
    char dir[600], left[800];
    snprintf(dir, sizeof dir, "%s/noread", fx_dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(name, sizeof name, "%s/store", dir);
    snprintf(left, sizeof left, "%s.creating.%ld.0123456789abcdef", name, dead);
    touch(left);
    assert_int_equal(chmod(dir, 0300), 0); /* no listing */
    assert_int_equal(mapkv__os_clean_stale(name), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    assert_true(exists(left));
  }
}

static void test_copy_owner(void **state) {
  int a = tu_file_with(fx_path("a"), NULL, 0);
  int b = tu_file_with(fx_path("b"), NULL, 0);
  int root = geteuid() == 0;
  struct stat st;
  (void)state;
  assert_int_equal(fchmod(a, 0640), 0);
  assert_int_equal(fchmod(b, 0600), 0);
  if (root)
    assert_int_equal(fchown(a, 65534, 65534), 0);

  /* Neither file can be looked at, or the mode or owner not given. */
  arm(&F.fstat, 0, 1, EIO, NULL);
  assert_int_equal(mapkv__os_copy_owner(a, b), -EIO);
  arm(&F.fstat, 1, 1, EBADF, NULL);
  assert_int_equal(mapkv__os_copy_owner(a, b), -EBADF);
  assert_int_equal(F.fstat.failed, 1);
  if (root) {
    arm(&F.fchown, 0, -1, EPERM, NULL);
    assert_int_equal(mapkv__os_copy_owner(a, b), -EPERM);
    assert_int_equal(F.fchown.failed, 1);
    assert_int_equal(fstat(b, &st), 0);
    assert_int_equal(st.st_uid, 0);
    disarm();
  }
  arm(&F.fchmod, 0, -1, EPERM, NULL);
  assert_int_equal(mapkv__os_copy_owner(a, b), -EPERM);
  assert_int_equal(F.fchmod.failed, 1);
  assert_int_equal(fstat(b, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600); /* nothing given */
  disarm();

  assert_int_equal(mapkv__os_copy_owner(a, b), 0);
  assert_int_equal(fstat(b, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0640);
  if (root) {
    assert_int_equal(st.st_uid, 65534);
    assert_int_equal(st.st_gid, 65534);
  }
  /* The same owner is not given again (which needs no privilege). */
  {
    int seen = F.fchown.seen;
    assert_int_equal(mapkv__os_copy_owner(a, b), 0);
    assert_int_equal(F.fchown.seen, seen);
  }
  close(a);
  close(b);
}

/* A file system without fallocate (procfs here): reserving reports
 * success, and a full disk would show at a later flush instead. */
static void test_reserve_without_fallocate(void **state) {
  int fd = open("/proc/self/comm", O_WRONLY);
  (void)state;
  if (fd < 0)
    skip();
  if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 4096) == 0 || errno != EOPNOTSUPP) {
    close(fd);
    skip();
  }
  assert_int_equal(real_os.reserve(fd, 0, 4096), 0);
  close(fd);
}

/* getrandom() itself failing (here: a buffer it cannot write). */
static void test_random_failure(void **state) {
  void *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  (void)state;
  assert_true(ro != MAP_FAILED);
  errno = 0;
  assert_int_equal(real_os.random(ro, 16), -1);
  assert_int_equal(errno, EFAULT);
  munmap(ro, 4096);
}

/* ---- creating a store -------------------------------------------------------- */

/* A step of an operation made to fail: the wrapper, how many of its calls
 * pass first, the errno, which file's calls, and what the operation must
 * then return and say. */
typedef struct step {
  const char *what;
  plan *p;
  int skip, err;
  const char *match;
  int want;
  const char *msg;
} step;

/* Arms the step's failure once; more where the engine tries again with
 * less: address space (halved down to what the file needs) and blocks on
 * disk (the whole growth step, then what the write needs). */
static void arm_step(const step *s) {
  /* Address space is asked for again with less and less (down to what the
   * file needs): every try fails. */
  int fail = s->p == &F.mmap_reserve || (s->p == &F.mmap_file && s->skip == 0)
                 ? 1000
             : s->p == &F.reserve ? 2
                                  : 1;
  arm(s->p, s->skip, fail, s->err, s->match);
}

static void expect_step_failed(const step *s, int rc) {
  if (rc != s->want)
    fail_msg("%s: got %d (%s; \"%s\"), want %d (%s)", s->what, rc,
             mapkv_strerror(rc), mapkv_errmsg(), s->want,
             mapkv_strerror(s->want));
  if (s->p->failed < 1)
    fail_msg("%s: the injected failure was not reached", s->what);
  if (strstr(mapkv_errmsg(), s->msg) == NULL)
    fail_msg("%s: message \"%s\" does not say \"%s\"", s->what, mapkv_errmsg(),
             s->msg);
}

/* Every step of creating a store fails in turn: the open fails, with
 * nothing left behind — no store, no temporary file, no descriptor. */
static void test_create_failures(void **state) {
  const step steps[] = {
      {"the file id", &F.random, 0, EIO, NULL, -EIO, "getrandom"},
      {"the temporary file", &F.open, 0, EACCES, ".creating.", -EACCES,
       "store"},
      {"its header page", &F.pwrite, 0, ENOSPC, NULL, -ENOSPC, "creating"},
      {"its sync", &F.fsync, 0, EIO, NULL, -EIO, "creating"},
      {"its link into place", &F.link, 0, EIO, NULL, -EIO, "creating"},
      {"its link (no hard links)", &F.link, 0, EPERM, NULL, -EPERM, "creating"},
  };
  const char *p = fx_path("store");
  mapkv_options o = opts_with(MAPKV_CREATE);
  (void)state;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    mapkv_t *db = SENTINEL;
    int fds = fd_count();
    arm_step(&steps[i]);
    expect_step_failed(&steps[i], mapkv_open(p, &o, &db));
    assert_ptr_equal(db, SENTINEL);
    disarm();
    expect_dir("");
    expect_fds(fds);
  }
  /* And then it works. */
  make_store(p, 3);
  expect_store(p, 3);
}

/* The directory sync after the link fails: the open fails, and the store
 * is there, complete and empty, as a crash after the link leaves it. */
static void test_create_dir_sync_failure(void **state) {
  const char *p = fx_path("store");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  (void)state;
  /* A create that fails leaves nothing, even after the link. */
  arm(&F.fsync_dir, 0, 1, EIO, NULL);
  open_fails(p, &o, -EIO);
  assert_int_equal(F.fsync_dir.failed, 1);
  assert_msg_has("creating");
  expect_dir("");
  arm(&F.open_dir, 0, 1, EMFILE, NULL);
  open_fails(p, &o, -EMFILE);
  assert_msg_has("creating");
  expect_dir("");
  disarm();
  db = open_ok(p, MAPKV_CREATE);
  assert_int_equal(stat_of(db).records, 0);
  assert_int_equal(stat_of(db).clean_open, 1);
  close_ok(db);
}

static const char *winner;

/* Another creator linked its store into place first. */
static int lost_race_link(const char *from, const char *to) {
  (void)from;
  if (real_os.link(winner, to) != 0)
    return -1;
  errno = EEXIST;
  return -1;
}

/* Two creators race: the one whose link fails with EEXIST opens the other
 * one's store, and removes its own temporary file. */
static void test_create_race_lost(void **state) {
  const char *p = fx_path("store");
  mapkv_t *db;
  (void)state;
  winner = fx_path("winner");
  make_store(winner, 5);
  F.on_link = lost_race_link;
  db = open_ok(p, MAPKV_CREATE);
  F.on_link = NULL;
  expect_filled(db, 5);
  close_ok(db);
  expect_dir("store winner");
  assert_int_equal(inode_of(p), inode_of(winner));
}

/* ---- opening and locking ----------------------------------------------------- */

static void test_lock_failures(void **state) {
  const char *p = fx_path("store");
  mapkv_options o = opts_with(0);
  mapkv_t *db;
  snap s;
  int fds;
  (void)state;
  make_store(p, 4);
  s = snap_take(p);
  fds = fd_count();

  /* flock fails for another reason than another writer. */
  arm(&F.flock, 0, -1, ENOLCK, NULL);
  open_fails(p, &o, -ENOLCK);
  assert_msg_has("flock");
  expect_fds(fds);
  /* Another writer holds it. */
  arm(&F.flock, 0, -1, EWOULDBLOCK, NULL);
  open_fails(p, &o, MAPKV_ELOCKED);
  assert_msg_has("another process");
  o.lock_timeout_ms = 20;
  open_fails(p, &o, MAPKV_ELOCKED);
  assert_msg_has("20 ms");
  assert_true(F.flock.failed > 2); /* tried again meanwhile */
  expect_fds(fds);
  snap_same(p, s);

  /* ... and lets go while this one waits. */
  o.lock_timeout_ms = 5000;
  arm(&F.flock, 0, 3, EWOULDBLOCK, NULL);
  db = open_opts(p, &o);
  assert_int_equal(F.flock.failed, 3);
  expect_filled(db, 4);
  close_ok(db);

  /* A reader takes no lock. */
  arm(&F.flock, 0, -1, EIO, NULL);
  db = open_ok(p, MAPKV_RDONLY);
  assert_int_equal(F.flock.seen, 0);
  expect_filled(db, 4);
  close_ok(db);
}

/* The path names another file each time the lock is taken (a compaction
 * or a salvage renaming files over it without end): after 100 tries the
 * open gives up, holding nothing. */
static void test_keeps_being_replaced(void **state) {
  const char *p = fx_path("store");
  mapkv_options o = opts_with(0);
  mapkv_recover_info info, before;
  mapkv_t *db;
  snap s;
  int fds;
  (void)state;
  make_store(p, 4);
  s = snap_take(p);
  fds = fd_count();
  disarm();
  F.stat_lies = -1;
  open_fails(p, &o, MAPKV_ELOCKED);
  assert_msg_has("keeps being replaced");
  assert_int_equal(F.flock.seen, 100);
  expect_fds(fds);
  memset(&info, 0xA5, sizeof info);
  before = info;
  assert_rc(mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, &info),
            MAPKV_ELOCKED);
  assert_msg_has("keeps being replaced");
  assert_memory_equal(&info, &before, sizeof info);
  expect_fds(fds);
  snap_same(p, s);
  expect_dir("store");

  /* Replaced once: the second try holds. */
  disarm();
  F.stat_lies = 1;
  db = open_ok(p, 0);
  assert_int_equal(F.flock.seen, 2);
  expect_filled(db, 4);
  close_ok(db);
  expect_fds(fds);
}

static const char *replacement, *replaced;

/* Another process renames a store over the path just before the lock. */
static void rename_over_once(void) {
  if (replacement != NULL) {
    assert_int_equal(rename(replacement, replaced), 0);
    replacement = NULL;
  }
}

static void test_replaced_while_locking(void **state) {
  const char *p = fx_path("store"), *q = fx_path("other");
  mapkv_t *db;
  (void)state;
  make_store(p, 2);
  make_store(q, 7);
  replacement = q;
  replaced = p;
  disarm();
  F.on_flock = rename_over_once;
  db = open_ok(p, 0);
  assert_int_equal(F.flock.seen, 2);
  expect_filled(db, 7); /* the file the path names once locked */
  put_str(db, "after", "rename");
  close_ok(db);
  expect_dir("store");
}

static void test_open_fstat_failures(void **state) {
  const char *p = fx_path("store");
  mapkv_options w = opts_with(0), r = opts_with(MAPKV_RDONLY);
  mapkv_t *db;
  snap s;
  int fds;
  (void)state;
  make_store(p, 4);
  s = snap_take(p);
  fds = fd_count();
  disarm();

  /* The file just opened (a writer: open, lock, check, map). */
  arm(&F.fstat, 0, 1, EIO, NULL);
  open_fails(p, &w, -EIO);
  assert_int_equal(F.fstat.failed, 1);
  assert_msg_has(p);
  /* After the lock: taken for another file, and tried again. */
  arm(&F.fstat, 1, 1, EIO, NULL);
  db = open_opts(p, &w);
  assert_int_equal(F.flock.seen, 2);
  close_ok(db);
  snap_free(s);
  s = snap_take(p);
  /* Its size, for the mapping. */
  arm(&F.fstat, 2, 1, EIO, NULL);
  open_fails(p, &w, -EIO);
  assert_int_equal(F.fstat.failed, 1);
  assert_msg_has("fstat");
  arm(&F.fstat, 1, 1, EOVERFLOW, NULL); /* a reader: open, map */
  open_fails(p, &r, -EOVERFLOW);
  assert_int_equal(F.fstat.failed, 1);
  disarm();

  /* Larger than any store. */
  F.fstat_size = (off_t)MAPKV_FILE_MAX + 4096;
  open_fails(p, &w, MAPKV_ENOTDB);
  assert_msg_has("larger than any");
  open_fails(p, &r, MAPKV_ENOTDB);

  /* More than half of the largest store: a writer's reservation (twice
   * the file) is capped at MAPKV_FILE_MAX. The file is not really that
   * large, so the reservation is refused here. */
  F.fstat_size = (off_t)(MAPKV_FILE_MAX / 2 + 8192);
  arm(&F.mmap_reserve, 0, -1, ENOMEM, NULL);
  open_fails(p, &w, -ENOMEM);
  assert_msg_has("mapping");
  assert_int_equal(F.reserve_min, MAPKV_FILE_MAX);
  disarm();
  expect_fds(fds);
  snap_same(p, s);
  expect_store(p, 4);
}

/* A writer's open flushes the recovered log, then the header copies (the
 * clean flag cleared): each failing fails the open, and loses nothing. */
static void test_open_flush_failures(void **state) {
  const char *p = fx_path("store");
  mapkv_options w = opts_with(0);
  mapkv_t *db;
  snap s;
  int fds;
  (void)state;
  make_store(p, 6);
  fds = fd_count();

  s = snap_take(p);
  arm(&F.msync, 0, 1, EIO, NULL);
  open_fails(p, &w, -EIO);
  assert_int_equal(F.msync.failed, 1);
  assert_msg_has("flushing the data file");
  snap_same(p, s); /* nothing written yet */
  expect_fds(fds);

  for (int skip = 1; skip <= 2; skip++) {
    arm(&F.msync, skip, 1, EIO, NULL);
    open_fails(p, &w, -EIO);
    assert_int_equal(F.msync.failed, 1);
    assert_msg_has("flushing the header");
    expect_fds(fds);
    disarm();
    expect_store(p, 6);
  }

  /* A reader never flushes. */
  arm(&F.msync, 0, -1, EIO, NULL);
  db = open_ok(p, MAPKV_RDONLY);
  expect_filled(db, 6);
  close_ok(db);
  assert_int_equal(F.msync.seen, 0);
  disarm();
  db = open_ok(p, 0);
  expect_filled(db, 6);
  close_ok(db);
}

/* A close flushes the data, then the two header copies (clean): a failure
 * is returned, the handle is freed, and what was written is kept. */
static void test_close_flush_failures(void **state) {
  const char *p = fx_path("store");
  mapkv_options none = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  (void)state;
  none.sync_mode = MAPKV_SYNC_NONE;
  for (int skip = 0; skip <= 2; skip++) {
    char k[16];
    db = open_opts(p, &none);
    snprintf(k, sizeof k, "close%d", skip);
    put_str(db, k, "kept");
    arm(&F.msync, skip, 1, EIO, NULL);
    untrack(db);
    assert_rc(mapkv_close(db), -EIO);
    assert_int_equal(F.msync.failed, 1);
    assert_msg_has(skip == 0 ? "flushing the data file"
                             : "flushing the header");
    disarm();
    db = open_ok(p, MAPKV_RDONLY);
    expect_str(db, k, "kept");
    assert_int_equal(stat_of(db).records, (uint64_t)skip + 1);
    close_ok(db);
  }
  expect_dir("store");
}

/* A store that was not closed (its index sized from nothing) whose
 * writable open finds n keys: the open copy of its file as it was. */
static void make_crashed(const char *path, const char *copy, unsigned n) {
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_t *db;
  uint8_t *b;
  size_t len;
  int fd;
  o.sync_mode = MAPKV_SYNC_NONE;
  db = open_opts(path, &o);
  fill_once(db, n);
  b = tu_slurp(path, &len);
  fd = tu_file_with(copy, b, len);
  close(fd);
  free(b);
  close_ok(db);
}

/* Flips a byte of the file at off. */
static void flip_at(const char *path, uint64_t off) {
  int fd = open(path, O_RDWR);
  uint8_t c;
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
  c ^= 0x40;
  assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
  close(fd);
}

/* The index cannot be allocated, or grown while recovery fills it. */
static void test_index_failures_at_open(void **state) {
  const char *p = fx_path("store"), *crash = fx_path("crash");
  mapkv_options w = opts_with(0);
  mapkv_t *db;
  snap s;
  int fds;
  (void)state;
  make_store(p, 6);
  fds = fd_count();
  s = snap_take(p);
  arm(&F.mmap_anon, 0, -1, ENOMEM, NULL);
  open_fails(p, &w, MAPKV_ENOMEM);
  assert_msg_has("index");
  w.flags = MAPKV_RDONLY;
  open_fails(p, &w, MAPKV_ENOMEM);
  w.flags = 0;
  disarm();
  snap_same(p, s);
  expect_fds(fds);

  /* Grown while batches are applied (100 keys: the queue of records
   * waiting to be applied is full), when the log ends (20 keys), and
   * before a damaged span is handled (20 keys, then damage, then more). */
  for (unsigned n = 20; n <= 100; n += 80) {
    make_crashed(fx_path("tmp"), crash, n);
    unlink(fx_path("tmp"));
    s = snap_take(crash);
    arm(&F.mmap_anon, 1, -1, ENOMEM, NULL);
    open_fails(crash, &w, MAPKV_ENOMEM);
    assert_int_equal(F.mmap_anon.failed, 1);
    assert_msg_has("index");
    snap_same(crash, s);
    disarm();
    db = open_opts(crash, &w);
    expect_filled(db, n);
    close_ok(db);
    unlink(crash);
  }
  {
    mapkv_stats st;
    make_crashed(fx_path("tmp"), crash, 20);
    db = open_ok(fx_path("tmp"), MAPKV_RDONLY);
    st = stat_of(db);
    close_ok(db);
    unlink(fx_path("tmp"));
    /* Damage in the 14th record (each is 30 bytes, a key of 6 and a
     * value of 29), and intact batches after it. */
    assert_int_equal(st.data_end, 4096 + 20 * 65);
    flip_at(crash, 4096 + 13 * 65 + 40);
    s = snap_take(crash);
    arm(&F.mmap_anon, 1, -1, ENOMEM, NULL);
    open_fails(crash, &w, MAPKV_ENOMEM);
    assert_int_equal(F.mmap_anon.failed, 1);
    snap_same(crash, s);
    disarm();
    db = open_opts(crash, &w);
    assert_int_equal(stat_of(db).damaged_regions, 1);
    close_ok(db);
  }
}

/* Damage at the end of a sealed log: the key of its record is marked,
 * which needs room in the index. */
static void test_index_failure_marking_damage(void **state) {
  const char *p = fx_path("store"), *crash = fx_path("crash");
  mapkv_options w = opts_with(0);
  mapkv_t *db;
  mapkv_stats st;
  uint8_t *b;
  size_t len;
  snap s;
  int fd;
  (void)state;
  /* 13 keys closed cleanly; then a writer's open seals them, and the file
   * is copied while it is open (not clean: the index starts small). */
  db = open_ok(p, MAPKV_CREATE);
  fill_once(db, 13);
  close_ok(db);
  db = open_ok(p, 0);
  st = stat_of(db);
  b = tu_slurp(p, &len);
  fd = tu_file_with(crash, b, len);
  close(fd);
  free(b);
  close_ok(db);
  /* The last record's value damaged: 12 keys intact, the 13th marked. */
  flip_at(crash, st.data_end - 12);
  s = snap_take(crash);
  arm(&F.mmap_anon, 1, -1, ENOMEM, NULL);
  open_fails(crash, &w, MAPKV_ENOMEM);
  assert_int_equal(F.mmap_anon.failed, 1);
  snap_same(crash, s);
  disarm();
  db = open_opts(crash, &w);
  st = stat_of(db);
  assert_int_equal(st.damaged_keys, 1);
  assert_int_equal(st.records, 13);
  close_ok(db);
}

/* mapkv_sync() and mapkv_close() check that the path still names the
 * file; the check itself failing is reported. */
static void test_path_check_failures(void **state) {
  const char *p = fx_path("store");
  mapkv_t *db;
  (void)state;
  make_store(p, 2);
  db = open_ok(p, 0);
  arm(&F.fstat, 0, 1, EIO, NULL);
  assert_rc(mapkv_sync(db), -EIO);
  assert_msg_has("fstat");
  arm(&F.stat, 0, 1, EACCES, NULL);
  assert_rc(mapkv_sync(db), -EACCES);
  assert_msg_has(p);
  arm(&F.stat, 0, 1, EACCES, NULL);
  assert_rc(mapkv_compact(db), -EACCES);
  assert_int_equal(stat_of(db).generation, 0);
  put_str(db, "still", "works");
  arm(&F.stat, 0, 1, EACCES, NULL);
  untrack(db);
  assert_rc(mapkv_close(db), -EACCES); /* closed cleanly all the same */
  disarm();
  db = open_ok(p, MAPKV_RDONLY);
  assert_int_equal(stat_of(db).clean_open, 1);
  expect_str(db, "still", "works");
  close_ok(db);
  expect_dir("store");
}

/* ---- growing the file and the index ------------------------------------------ */

static void test_growth_failures(void **state) {
  const char *p = fx_path("store");
  mapkv_options o = opts_with(MAPKV_CREATE);
  uint8_t v[4000], big[16000];
  mapkv_stats before;
  mapkv_t *db;
  snap s;
  (void)state;
  memset(v, 'g', sizeof v);
  memset(big, 'G', sizeof big);
  o.initial_size = 64 << 10;
  o.growth_step = 64 << 10;
  db = open_opts(p, &o);
  while (stat_of(db).data_end + 2 * sizeof v < 64 << 10) {
    char k[16];
    snprintf(k, sizeof k, "g%llu", (unsigned long long)stat_of(db).data_end);
    assert_rc(mapkv_put(db, k, strlen(k), v, sizeof v), 0);
  }
  before = stat_of(db);
  assert_int_equal(before.file_size, 64 << 10);

  /* The file cannot be sized: nothing changes. */
  s = snap_take(p);
  arm(&F.ftruncate, 0, -1, EFBIG, NULL);
  assert_rc(mapkv_put(db, "big", 3, big, sizeof big), -EFBIG);
  assert_msg_has("growing the store file");
  assert_rc(mapkv_put(db, "big2", 4, big, sizeof big), -EFBIG);
  disarm();
  snap_same(p, s);
  expect_missing(db, "big");
  assert_int_equal(stat_of(db).data_end, before.data_end);
  assert_int_equal(stat_of(db).file_size, before.file_size);

  /* The grown part cannot be mapped: nothing is written (the mapping core
   * sized the file first: the bytes it had are as they were, the rest is
   * zeros). */
  s = snap_take(p);
  arm(&F.mmap_file, 0, -1, ENOMEM, NULL);
  assert_rc(mapkv_put(db, "big", 3, big, sizeof big), -ENOMEM);
  assert_msg_has("growing the store file");
  disarm();
  {
    size_t len;
    uint8_t *now = tu_slurp(p, &len);
    assert_true(len >= s.len);
    assert_memory_equal(now, s.bytes, s.len);
    for (size_t i = s.len; i < len; i++)
      assert_int_equal(now[i], 0);
    free(now);
    snap_free(s);
  }
  expect_missing(db, "big");
  assert_int_equal(stat_of(db).data_end, before.data_end);
  assert_int_equal(stat_of(db).mapped_size, before.file_size);

  /* Room again. */
  assert_rc(mapkv_put(db, "big", 3, big, sizeof big), 0);
  assert_true(stat_of(db).file_size > before.file_size);
  close_ok(db);
  db = open_ok(p, 0);
  assert_int_equal(stat_of(db).records, before.records + 1);
  assert_rc(mapkv_verify(db, NULL, NULL, NULL), 0);
  close_ok(db);
}

/* The reservation bounds growth: the last step is cut to what is left of
 * it, then the store is full. A reservation smaller than twice the file
 * is made that. */
static void test_growth_within_the_reservation(void **state) {
  const char *p = fx_path("store");
  mapkv_options o = opts_with(MAPKV_CREATE);
  uint8_t v[8000];
  mapkv_t *db;
  uint64_t sizes[8];
  unsigned n = 0, k = 0;
  int rc = 0;
  (void)state;
  memset(v, 'r', sizeof v);
  o.reserve = 256 << 10;
  o.initial_size = 64 << 10;
  o.growth_step = 128 << 10;
  db = open_opts(p, &o);
  sizes[n++] = stat_of(db).file_size;
  while (rc == 0 && k < 100) {
    char key[16];
    snprintf(key, sizeof key, "r%u", k++);
    rc = mapkv_put(db, key, strlen(key), v, sizeof v);
    if (rc == 0 && stat_of(db).file_size != sizes[n - 1]) {
      assert_true(n < 8);
      sizes[n++] = stat_of(db).file_size;
    }
  }
  assert_rc(rc, MAPKV_EFULL);
  assert_msg_has("reservation");
  assert_int_equal(n, 4);
  assert_int_equal(sizes[1], 64 << 10);
  assert_int_equal(sizes[2], 192 << 10);
  assert_int_equal(sizes[3], 256 << 10); /* not 320 KiB */
  close_ok(db);

  /* Reopened with a reservation smaller than the file: twice the file. */
  o.flags = 0;
  o.reserve = 128 << 10;
  db = open_opts(p, &o);
  assert_int_equal(stat_of(db).reserved_size, 512 << 10);
  assert_int_equal(stat_of(db).records, k - 1);
  close_ok(db);
}

/* The index cannot grow for a commit: nothing is written. */
static void test_index_growth_failure_at_commit(void **state) {
  const char *p = fx_path("store");
  mapkv_batch_t *b = NULL;
  mapkv_t *db;
  snap s;
  (void)state;
  db = open_ok(p, MAPKV_CREATE);
  fill_once(db, 12); /* a full table of 16 slots */
  assert_int_equal(stat_of(db).index_slots, 16);
  s = snap_take(p);
  arm(&F.mmap_anon, 0, -1, ENOMEM, NULL);
  assert_rc(mapkv_put(db, "thirteenth", 10, "v", 1), MAPKV_ENOMEM);
  assert_msg_has("growing the index");
  assert_rc(mapkv_batch_begin(db, &b), 0);
  assert_rc(mapkv_batch_put(b, "b1", 2, "v", 1), 0);
  assert_rc(mapkv_batch_put(b, "b2", 2, "v", 1), 0);
  assert_rc(mapkv_batch_commit(b), MAPKV_ENOMEM);
  /* Room is made before the key is looked up: a key already there too. */
  assert_rc(mapkv_put(db, "k00001", 6, "replaced", 8), MAPKV_ENOMEM);
  disarm();
  snap_same(p, s);
  expect_missing(db, "thirteenth");
  expect_missing(db, "b1");
  expect_filled(db, 12);
  put_str(db, "thirteenth", "v");
  put_str(db, "k00001", "replaced");
  close_ok(db);
  db = open_ok(p, MAPKV_RDONLY);
  assert_int_equal(stat_of(db).records, 13);
  close_ok(db);
}

/* ---- compaction ---------------------------------------------------------------- */

/* Every step of a compaction fails in turn: the store is unchanged (its
 * bytes and its inode), nothing is left behind, and the handle works on. */
static void test_compact_failures(void **state) {
  const step steps[] = {
      {"a file id", &F.random, 0, EIO, NULL, -EIO, "getrandom"},
      {"creating the file", &F.open, 0, EACCES, ".compact", -EACCES,
       ".compact"},
      {"locking it", &F.flock, 0, ENOLCK, NULL, -ENOLCK, "flock"},
      {"the store's owner", &F.fstat, 1, EIO, NULL, -EIO, "fstat"},
      {"the new file's owner", &F.fstat, 2, EIO, NULL, -EIO, "owner or mode"},
      {"the store's mode", &F.fchmod, 0, EPERM, NULL, -EPERM, "owner or mode"},
      {"its header page", &F.pwrite, 0, ENOSPC, NULL, -ENOSPC, "writing"},
      {"space for it", &F.reserve, 0, ENOSPC, NULL, -ENOSPC, "reserving"},
      {"address space for it", &F.mmap_reserve, 0, ENOMEM, NULL, -ENOMEM,
       "mapping"},
      {"mapping it", &F.mmap_file, 0, ENOMEM, NULL, -ENOMEM, "mapping"},
      {"sizing it", &F.ftruncate, 0, EFBIG, NULL, -EFBIG, "growing"},
      {"mapping what it grew by", &F.mmap_file, 1, ENOMEM, NULL, -ENOMEM,
       "growing"},
      {"its index", &F.mmap_anon, 0, ENOMEM, NULL, MAPKV_ENOMEM, "index"},
      {"flushing it", &F.msync, 0, EIO, NULL, -EIO, "flushing the data"},
      {"its first header copy", &F.msync, 1, EIO, NULL, -EIO,
       "flushing the header"},
      {"its second header copy", &F.msync, 2, EIO, NULL, -EIO,
       "flushing the header"},
      {"renaming it over the store", &F.rename, 0, EIO, NULL, -EIO, "renam"},
      {"checking the store's path", &F.fstat, 0, EIO, NULL, -EIO, "fstat"},
  };
  const char *p = fx_path("store");
  mapkv_t *db;
  (void)state;
  make_store(p, 40);
  db = open_ok(p, 0);
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    mapkv_stats before = stat_of(db);
    snap s = snap_take(p);
    int fds = fd_count();
    arm_step(&steps[i]);
    expect_step_failed(&steps[i], mapkv_compact(db));
    disarm();
    snap_same(p, s);
    expect_dir("store");
    expect_fds(fds);
    assert_int_equal(stat_of(db).generation, before.generation);
    assert_int_equal(stat_of(db).data_end, before.data_end);
    expect_filled(db, 40);
    put_str(db, "k00001", "value of key 00001, version 1"); /* writes on */
  }
  assert_rc(mapkv_compact(db), 0);
  assert_int_equal(stat_of(db).generation, 1);
  assert_int_equal(stat_of(db).dead_bytes, 0);
  expect_filled(db, 40);
  close_ok(db);
  expect_store(p, 40);
}

/* Only the directory sync after the rename fails: documented — the call
 * fails, and the handle already works on the new file. */
static void test_compact_dir_sync_failure(void **state) {
  const char *p = fx_path("store");
  mapkv_t *db;
  ino_t old;
  int fds;
  (void)state;
  make_store(p, 10);
  db = open_ok(p, 0);
  old = inode_of(p);
  fds = fd_count();
  arm(&F.open_dir, 0, -1, EMFILE, NULL);
  assert_rc(mapkv_compact(db), -EMFILE);
  assert_msg_has("syncing the directory");
  disarm();
  expect_fds(fds);
  expect_dir("store");
  assert_true(inode_of(p) != old);
  assert_int_equal(stat_of(db).generation, 1);
  assert_int_equal(stat_of(db).dead_bytes, 0);
  expect_filled(db, 10);
  put_str(db, "after", "compaction");
  close_ok(db);
  db = open_ok(p, MAPKV_RDONLY);
  assert_int_equal(stat_of(db).generation, 1);
  expect_str(db, "after", "compaction");
  close_ok(db);
}

/* A live record damaged in the file after the open (by something other
 * than the library): compaction stops at it and replaces nothing. */
static void test_compact_damaged_live_record(void **state) {
  const char *p = fx_path("store");
  char v[200], buf[256];
  mapkv_stats st;
  mapkv_t *db;
  size_t n;
  snap s;
  (void)state;
  make_store(p, 10);
  db = open_ok(p, 0);
  memset(v, 'd', sizeof v);
  assert_rc(mapkv_put(db, "victim", 6, v, sizeof v), 0);
  st = stat_of(db);
  flip_at(p, st.data_end - 8 - 100); /* inside its value */
  s = snap_take(p);
  assert_rc(mapkv_compact(db), MAPKV_ECORRUPT);
  assert_msg_has("during compaction");
  snap_same(p, s);
  expect_dir("store");
  assert_int_equal(stat_of(db).generation, 0);
  /* From now on the damage is known. */
  assert_rc(mapkv_compact(db), MAPKV_ECORRUPT);
  assert_msg_has("damaged records");
  assert_rc(mapkv_get(db, "victim", 6, buf, sizeof buf, &n), MAPKV_ECORRUPT);
  expect_values(db, 10); /* the others are intact */
  assert_int_equal(stat_of(db).records, 11);
  close_ok(db);
}

/* ---- mapkv_recover() ---------------------------------------------------------- */

#define RECOVER_N 20

/* Every step of a salvage in place fails in turn: the path names the
 * original, unchanged; no new store is left behind; *info is untouched. */
static void test_recover_in_place_failures(void **state) {
  const step steps[] = {
      {"the writer's lock", &F.flock, 0, ENOLCK, NULL, -ENOLCK, "flock"},
      {"mapping the store", &F.mmap_file, 0, ENOMEM, NULL, -ENOMEM, "mapping"},
      {"its index", &F.mmap_anon, 0, ENOMEM, NULL, MAPKV_ENOMEM, "index"},
      {"an id for the new store", &F.random, 0, EIO, NULL, -EIO, "getrandom"},
      {"the new store's file id", &F.random, 1, EIO, NULL, -EIO, "getrandom"},
      {"creating the new store", &F.open, 0, EACCES, ".creating.", -EACCES,
       ".recovering."},
      {"its header page", &F.pwrite, 0, ENOSPC, NULL, -ENOSPC, "creating"},
      {"syncing it", &F.fsync, 0, EIO, NULL, -EIO, "creating"},
      {"linking it into place", &F.link, 0, EIO, ".recovering.", -EIO,
       "creating"},
      {"flushing it at its open", &F.msync, 0, EIO, NULL, -EIO,
       "flushing the data"},
      {"its header at its open", &F.msync, 1, EIO, NULL, -EIO,
       "flushing the header"},
      {"its index", &F.mmap_anon, 1, ENOMEM, NULL, MAPKV_ENOMEM, "index"},
      {"its mode", &F.fchmod, 0, EPERM, NULL, -EPERM, "owner or mode"},
      {"space for the records", &F.reserve, 0, ENOSPC, NULL, -ENOSPC,
       "growing"},
      {"flushing it at its close", &F.msync, 3, EIO, NULL, -EIO,
       "flushing the data"},
      {"its header at its close", &F.msync, 4, EIO, NULL, -EIO,
       "flushing the header"},
      {"a second name for the original", &F.link, 0, EIO, ".orig-", -EIO,
       "keeping the original"},
  };
  const char *p = fx_path("store");
  mapkv_recover_info info, before;
  (void)state;
  make_store(p, RECOVER_N);
  memset(&info, 0xA5, sizeof info);
  before = info;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    snap s = snap_take(p);
    int fds = fd_count();
    arm_step(&steps[i]);
    expect_step_failed(&steps[i],
                       mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, &info));
    disarm();
    assert_memory_equal(&info, &before, sizeof info);
    snap_same(p, s);
    expect_dir("store");
    expect_fds(fds);
  }
  expect_store(p, RECOVER_N);
}

/* The rename over the store fails: the path still names the original,
 * which also has its second name (the message says which). */
static void test_recover_rename_failure(void **state) {
  const char *p = fx_path("store");
  char backup[800];
  snap s;
  int fds;
  (void)state;
  make_store(p, RECOVER_N);
  s = snap_take(p);
  fds = fd_count();
  arm(&F.rename, 0, -1, EIO, ".recovering.");
  assert_rc(mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, NULL), -EIO);
  assert_msg_has("renaming the recovered store");
  assert_msg_has("kept as");
  disarm();
  find_name("store.orig-", backup, sizeof backup);
  assert_true(backup[0] != '\0');
  assert_msg_has(backup);
  assert_int_equal(inode_of(backup), s.ino);
  snap_same(p, s);
  expect_fds(fds);
  assert_int_equal(unlink(backup), 0);
  expect_dir("store");
  expect_store(p, RECOVER_N);
}

/* Where a second name cannot be given (no hard links on the file system,
 * or too many), the original is renamed to it instead. */
static void test_recover_keeps_original_by_rename(void **state) {
  const int errs[] = {EPERM, EMLINK, ENOTSUP};
  const char *p = fx_path("store");
  mapkv_recover_info info;
  (void)state;
  make_store(p, RECOVER_N);
  for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
    ino_t orig = inode_of(p);
    memset(&info, 0, sizeof info);
    arm(&F.link, 0, -1, errs[i], ".orig-");
    assert_rc(mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, &info), 0);
    assert_int_equal(F.link.failed, 1);
    assert_int_equal(F.rename.seen, 2); /* the original, then the new one */
    disarm();
    assert_int_equal(info.rewritten, 1);
    assert_int_equal(info.saved, RECOVER_N);
    assert_non_null(strstr(info.backup, ".orig-"));
    assert_int_equal(inode_of(info.backup), orig);
    assert_true(inode_of(p) != orig);
    expect_store(p, RECOVER_N);
    expect_store(info.backup, RECOVER_N);
    assert_int_equal(unlink(info.backup), 0);
    expect_dir("store");
  }
}

/* The fallbacks of keeping the original failing: nothing replaced. */
static void test_recover_keep_original_failures(void **state) {
  const char *p = fx_path("store");
  char names[8][800];
  snap s;
  int fds;
  time_t now = time(NULL);
  (void)state;
  make_store(p, RECOVER_N);
  s = snap_take(p);
  fds = fd_count();

  /* The rename cannot be done either. */
  arm(&F.link, 0, -1, EPERM, ".orig-");
  arm(&F.rename, 0, -1, EXDEV, ".orig-");
  assert_rc(mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, NULL), -EXDEV);
  assert_msg_has("keeping the original");
  disarm();
  expect_dir("store");
  /* Every name is taken. */
  arm(&F.link, 0, -1, EEXIST, ".orig-");
  assert_rc(mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, NULL), -EEXIST);
  assert_int_equal(F.link.failed, 999);
  assert_msg_has("keeping the original");
  disarm();
  expect_dir("store");
  expect_fds(fds);

  /* No hard link, and the name is taken (by another file, which a rename
   * would replace): nothing is renamed. */
  for (int i = 0; i < 8; i++) {
    snprintf(names[i], sizeof names[i], "%s.orig-%lld", p, (long long)now + i);
    touch(names[i]);
  }
  arm(&F.link, 0, -1, EPERM, ".orig-");
  assert_rc(mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, NULL), -EPERM);
  assert_int_equal(F.rename.seen, 0);
  disarm();
  for (int i = 0; i < 8; i++) {
    assert_int_equal(tu_file_size(names[i]), 0);
  }
  snap_same(p, s);
  expect_fds(fds);

  /* With hard links, a taken name is skipped for "-2". */
  {
    mapkv_recover_info info;
    assert_rc(mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, &info), 0);
    assert_int_equal(strncmp(info.backup, names[0], strlen(p) + 6), 0);
    assert_int_equal(strcmp(info.backup + strlen(info.backup) - 2, "-2"), 0);
    assert_int_equal(tu_file_size(info.backup), (int64_t)s.len);
    expect_store(p, RECOVER_N);
    unlink(info.backup);
  }
  for (int i = 0; i < 8; i++)
    unlink(names[i]);
  expect_dir("store");
}

/* Renamed to its second name (no hard links), and then the new store
 * cannot be renamed over the path: the original gets its name back. */
static void test_recover_rename_back(void **state) {
  const char *p = fx_path("store");
  snap s;
  (void)state;
  make_store(p, RECOVER_N);
  s = snap_take(p);
  arm(&F.link, 0, -1, EPERM, ".orig-");
  arm(&F.rename, 0, -1, EIO, ".recovering.");
  assert_rc(mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, NULL), -EIO);
  assert_msg_has("renaming the recovered store");
  disarm();
  snap_same(p, s);
  expect_dir("store");
  expect_store(p, RECOVER_N);
}

/* Every step of a salvage into a new file fails in turn: the source is
 * unchanged, and no new store is left behind. */
static void test_recover_to_file_failures(void **state) {
  const step steps[] = {
      {"mapping the store", &F.mmap_file, 0, ENOMEM, NULL, -ENOMEM, "mapping"},
      {"an id for the new store", &F.random, 0, EIO, NULL, -EIO, "getrandom"},
      {"the new store's file id", &F.random, 1, EIO, NULL, -EIO, "getrandom"},
      {"its header page", &F.pwrite, 0, ENOSPC, NULL, -ENOSPC, "creating"},
      {"flushing it at its open", &F.msync, 0, EIO, NULL, -EIO,
       "flushing the data"},
      {"space for the records", &F.reserve, 0, ENOSPC, NULL, -ENOSPC,
       "growing"},
      {"flushing it at its close", &F.msync, 3, EIO, NULL, -EIO,
       "flushing the data"},
      {"linking it to its name", &F.link, 1, EIO, NULL, -EIO, "out"},
  };
  const char *p = fx_path("store"), *out = fx_path("out");
  mapkv_recover_info info, before;
  (void)state;
  make_store(p, RECOVER_N);
  memset(&info, 0xA5, sizeof info);
  before = info;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    snap s = snap_take(p);
    int fds = fd_count();
    arm_step(&steps[i]);
    expect_step_failed(&steps[i], mapkv_recover(p, out, 0, 0, &info));
    disarm();
    assert_memory_equal(&info, &before, sizeof info);
    snap_same(p, s);
    expect_dir("store");
    expect_fds(fds);
  }

  /* A missing source; an output that exists. */
  assert_rc(mapkv_recover(fx_path("none"), out, 0, 0, &info), -ENOENT);
  touch(out);
  assert_rc(mapkv_recover(p, out, 0, 0, &info), -EEXIST);
  assert_msg_has("exists");
  assert_int_equal(tu_file_size(out), 0);
  assert_memory_equal(&info, &before, sizeof info);
  unlink(out);
  expect_dir("store");

  assert_rc(mapkv_recover(p, out, 0, 0, &info), 0);
  assert_int_equal(info.saved, RECOVER_N);
  expect_store(out, RECOVER_N);
}

static const char *racer;

/* Another process creates the output while the salvage runs. */
static int output_appears(const char *from, const char *to) {
  if (strcmp(to, racer) == 0) {
    touch(to);
    errno = EEXIST;
    return -1;
  }
  return real_os.link(from, to);
}

static void test_recover_output_appears(void **state) {
  const char *p = fx_path("store"), *out = fx_path("out");
  (void)state;
  make_store(p, RECOVER_N);
  racer = out;
  F.on_link = output_appears;
  assert_rc(mapkv_recover(p, out, 0, 0, NULL), -EEXIST);
  assert_msg_has(out);
  F.on_link = NULL;
  assert_int_equal(tu_file_size(out), 0); /* theirs, untouched */
  expect_dir("out store");
  expect_store(p, RECOVER_N);
}

/* The directory sync after the new store took its name fails: the call
 * fails, and the new store has its name (as with compaction). */
static void test_recover_dir_sync_failure(void **state) {
  const char *p = fx_path("store"), *out = fx_path("out");
  char backup[800];
  ino_t orig;
  (void)state;
  make_store(p, RECOVER_N);
  arm(&F.fsync_dir, 1, 1, EIO, NULL); /* the first is the new store's */
  assert_rc(mapkv_recover(p, out, 0, 0, NULL), -EIO);
  assert_int_equal(F.fsync_dir.failed, 1);
  assert_msg_has("syncing the directory");
  disarm();
  expect_dir("out store");
  expect_store(out, RECOVER_N);
  unlink(out);

  orig = inode_of(p);
  arm(&F.fsync_dir, 1, 1, EIO, NULL);
  assert_rc(mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, NULL), -EIO);
  assert_int_equal(F.fsync_dir.failed, 1);
  assert_msg_has("syncing the directory");
  disarm();
  find_name("store.orig-", backup, sizeof backup);
  assert_true(backup[0] != '\0');
  assert_int_equal(inode_of(backup), orig);
  assert_true(inode_of(p) != orig);
  expect_store(p, RECOVER_N);
  expect_store(backup, RECOVER_N);
}

/* A salvage of more records than one batch holds. */
static void test_recover_many_batches(void **state) {
  const char *p = fx_path("store"), *out = fx_path("out");
  mapkv_options o = opts_with(MAPKV_CREATE);
  mapkv_recover_info info;
  mapkv_t *db;
  enum { N = 10000 * 2 + 7 };
  (void)state;
  o.sync_mode = MAPKV_SYNC_NONE;
  db = open_opts(p, &o);
  for (unsigned i = 0; i < N; i++) {
    char k[16], v[101];
    snprintf(k, sizeof k, "m%06u", i);
    snprintf(v, sizeof v, "%-100s", k);
    assert_rc(mapkv_put(db, k, strlen(k), v, 100), 0);
  }
  close_ok(db);
  assert_rc(mapkv_recover(p, out, 0, 0, &info), 0);
  assert_int_equal(info.saved, N);
  assert_int_equal(info.lost, 0);
  db = open_ok(out, MAPKV_RDONLY);
  assert_int_equal(stat_of(db).records, N);
  assert_int_equal(stat_of(db).recovered_batches, 3);
  {
    char v[101];
    snprintf(v, sizeof v, "%-100s", "m020006");
    expect_str(db, "m020006", v);
  }
  close_ok(db);

  /* ... and the salvage fails at its second batch (the file grows). */
  unlink(out);
  arm(&F.reserve, 1, -1, ENOSPC, NULL);
  assert_rc(mapkv_recover(p, out, 0, 0, &info), -ENOSPC);
  disarm();
  expect_dir("store");
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_pwrite_all),
      T(test_sync_dir),
      T(test_resolve),
      T(test_resolve_readlink_race),
      T(test_clean_stale),
      T(test_copy_owner),
      T(test_reserve_without_fallocate),
      T(test_random_failure),
      T(test_create_failures),
      T(test_create_dir_sync_failure),
      T(test_create_race_lost),
      T(test_lock_failures),
      T(test_keeps_being_replaced),
      T(test_replaced_while_locking),
      T(test_open_fstat_failures),
      T(test_open_flush_failures),
      T(test_close_flush_failures),
      T(test_index_failures_at_open),
      T(test_index_failure_marking_damage),
      T(test_path_check_failures),
      T(test_growth_failures),
      T(test_growth_within_the_reservation),
      T(test_index_growth_failure_at_commit),
      T(test_compact_failures),
      T(test_compact_dir_sync_failure),
      T(test_compact_damaged_live_record),
      T(test_recover_in_place_failures),
      T(test_recover_rename_failure),
      T(test_recover_keeps_original_by_rename),
      T(test_recover_keep_original_failures),
      T(test_recover_rename_back),
      T(test_recover_to_file_failures),
      T(test_recover_output_appears),
      T(test_recover_dir_sync_failure),
      T(test_recover_many_batches),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
