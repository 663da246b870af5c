/*
 * test_files.c — the store as a file among others: what compaction and
 * salvage keep of the file (mode, owner, symbolic links), files that are
 * not stores (FIFOs, directories, devices), leftovers of processes that
 * died while creating or salvaging a store, a store file replaced or
 * removed while open, handles used the wrong way (closed with batches or
 * cursors open, closed twice), and sizes no disk can give.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mapkv/mapkv.h"
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
    char cmd[640];
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

static int open_with(const char *path, unsigned flags, mapkv_t **db) {
  mapkv_options o;
  mapkv_options_init(&o);
  o.flags = flags;
  *db = NULL;
  return mapkv_open(path, &o, db);
}

static mapkv_t *open_ok(const char *path, unsigned flags) {
  mapkv_t *db;
  assert_rc(open_with(path, flags, &db), 0);
  return db;
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

/* A store at path holding k1..k3 (k2 written twice), closed. */
static void make_store(const char *path) {
  mapkv_t *db = open_ok(path, MAPKV_CREATE);
  put_str(db, "k1", "v1");
  put_str(db, "k2", "old");
  put_str(db, "k2", "v2");
  put_str(db, "k3", "v3");
  assert_rc(mapkv_close(db), 0);
}

static void expect_store(const char *path) {
  mapkv_t *db = open_ok(path, MAPKV_RDONLY);
  expect_str(db, "k1", "v1");
  expect_str(db, "k2", "v2");
  expect_str(db, "k3", "v3");
  assert_rc(mapkv_close(db), 0);
}

/* The number of directory entries of dir whose name starts with prefix. */
static int count_prefixed(const char *dir, const char *prefix) {
  char cmd[700];
  FILE *p;
  int n = -1;
  snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -c '^%s' || true", dir, prefix);
  p = popen(cmd, "r");
  assert_non_null(p);
  if (fscanf(p, "%d", &n) != 1)
    n = -1;
  pclose(p);
  return n;
}

static void split(const char *path, char *dir, char *base, size_t cap) {
  const char *slash = strrchr(path, '/');
  assert_non_null(slash);
  snprintf(dir, cap, "%.*s", (int)(slash - path), path);
  snprintf(base, cap, "%s", slash + 1);
}

/* ---- mode and owner across compaction and salvage ------------------------ */

static void test_compact_keeps_mode_and_owner(void **state) {
  const char *p = fx_path("files-perm");
  int root = geteuid() == 0;
  mapkv_recover_info info;
  struct stat st;
  mapkv_t *db;
  (void)state;

  make_store(p);
  assert_int_equal(chmod(p, 0600), 0);
  if (root)
    assert_int_equal(chown(p, 65534, 65534), 0);
  db = open_ok(p, 0);
  assert_rc(mapkv_compact(db), 0);
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  if (root) {
    assert_int_equal(st.st_uid, 65534);
    assert_int_equal(st.st_gid, 65534);
  }
  expect_store(p);

  assert_int_equal(chmod(p, 0640), 0);
  assert_rc(mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, &info), 0);
  assert_int_equal(info.rewritten, 1);
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0640);
  if (root)
    assert_int_equal(st.st_uid, 65534);
  expect_store(p);
  unlink(info.backup);
}

static int eperm_fchown(int fd, uid_t u, gid_t g) {
  (void)fd;
  (void)u;
  (void)g;
  errno = EPERM;
  return -1;
}

static int eperm_fchmod(int fd, mode_t m) {
  (void)fd;
  (void)m;
  errno = EPERM;
  return -1;
}

/* When the new file cannot take the store's owner or mode, nothing is
 * replaced, and nothing is left behind. */
static void test_compact_cannot_keep_owner(void **state) {
  const char *p = fx_path("files-noown");
  char dir[300], base[300];
  uint8_t *before, *after;
  size_t lb, la;
  mapkv_t *db;
  (void)state;

  make_store(p);
  split(p, dir, base, sizeof dir);
  if (geteuid() == 0) {
    assert_int_equal(chown(p, 65534, 65534), 0);
    mapkv__os.fchown = eperm_fchown;
  } else {
    mapkv__os.fchmod = eperm_fchmod;
  }
  before = tu_slurp(p, &lb);
  db = open_ok(p, 0);
  free(before);
  before = tu_slurp(p, &lb); /* after the open's header write */
  assert_rc(mapkv_compact(db), -EPERM);
  assert_non_null(strstr(mapkv_errmsg(), "owner or mode"));
  after = tu_slurp(p, &la);
  assert_int_equal(la, lb);
  assert_memory_equal(after, before, la);
  free(after);
  free(before);
  {
    char prefix[320];
    snprintf(prefix, sizeof prefix, "%s.", base);
    assert_int_equal(count_prefixed(dir, prefix), 0);
  }
  expect_str(db, "k2", "v2");
  assert_rc(mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, NULL),
            MAPKV_ELOCKED);
  assert_rc(mapkv_close(db), 0);
  assert_rc(mapkv_recover(p, NULL, MAPKV_RECOVER_FORCE, 0, NULL), -EPERM);
  mapkv__os_reset();
  expect_store(p);
}

/* ---- symbolic links ---------------------------------------------------- */

static void test_symlinked_store(void **state) {
  const char *d = fx_path("files-linkdir");
  const char *l = fx_path("files-link");
  char target[400], link2[400], loop[400], got[400];
  mapkv_recover_info info;
  struct stat st;
  mapkv_t *db;
  ssize_t n;
  (void)state;

  assert_int_equal(mkdir(d, 0755), 0);
  snprintf(target, sizeof target, "%s/store.db", d);
  make_store(target);
  /* A relative link, taken from the link's directory. */
  {
    char dir[300], base[300], rel[400];
    split(d, dir, base, sizeof dir);
    snprintf(rel, sizeof rel, "%s/store.db", base);
    assert_int_equal(symlink(rel, l), 0);
  }
  db = open_ok(l, 0);
  put_str(db, "k4", "v4");
  assert_rc(mapkv_compact(db), 0);
  put_str(db, "k5", "v5");
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(lstat(l, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  n = readlink(l, got, sizeof got - 1);
  assert_true(n > 0);
  got[n] = '\0';
  assert_non_null(strstr(got, "store.db"));
  db = open_ok(target, MAPKV_RDONLY);
  expect_str(db, "k4", "v4");
  expect_str(db, "k5", "v5");
  assert_rc(mapkv_close(db), 0);

  /* Salvage through the link replaces the target, and keeps the original
   * beside it. */
  assert_rc(mapkv_recover(l, NULL, MAPKV_RECOVER_FORCE, 0, &info), 0);
  assert_int_equal(lstat(l, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  assert_true(strncmp(info.backup, target, strlen(target)) == 0);
  unlink(info.backup);
  expect_store(l);

  /* A chain of links, and a link to a store not yet created. */
  snprintf(link2, sizeof link2, "%s/second", d);
  assert_int_equal(symlink(l, link2), 0);
  expect_store(link2);
  unlink(target);
  db = open_ok(link2, MAPKV_CREATE);
  put_str(db, "new", "store");
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(lstat(target, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(lstat(l, &st), 0);
  assert_true(S_ISLNK(st.st_mode));

  /* A loop of links. */
  snprintf(loop, sizeof loop, "%s/loop", d);
  assert_int_equal(symlink("loop", loop), 0);
  assert_rc(open_with(loop, MAPKV_CREATE, &db), -ELOOP);
  assert_null(db);
}

/* ---- files that are not stores ------------------------------------------- */

static void on_alarm(int sig) {
  (void)sig;
  fprintf(stderr, "an open blocked\n");
  _exit(3);
}

static void test_not_regular_files(void **state) {
  const char *f = fx_path("files-fifo");
  const char *d = fx_path("files-dir");
  const char *s = fx_path("files-sock");
  const char *blk = fx_path("files-blk");
  static const unsigned modes[] = {MAPKV_RDONLY, 0, MAPKV_CREATE,
                                   MAPKV_RDONLY | MAPKV_VERIFY};
  struct {
    const char *path, *kind;
  } files[] = {{f, "FIFO"},
               {d, "directory"},
               {"/dev/null", "character"},
               {s, "socket"},
               {blk, "block"}};
  struct sockaddr_un sa;
  int sock;
  (void)state;

  assert_int_equal(mkfifo(f, 0644), 0);
  assert_int_equal(mkdir(d, 0755), 0);
  sock = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(sock >= 0);
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s);
  if (strlen(s) >= sizeof sa.sun_path ||
      bind(sock, (struct sockaddr *)&sa, sizeof sa) != 0)
    files[3].path = NULL; /* a path too long for a socket here */
  /* A block device (of a loop device that most likely does not exist:
   * then open() fails, and the node is still told for what it is); only
   * where device nodes can be made. */
  if (mknod(blk, S_IFBLK | 0600, makedev(7, 250)) != 0)
    files[4].path = NULL;
  signal(SIGALRM, on_alarm);
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    if (files[i].path == NULL)
      continue;
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
      mapkv_t *db;
      int rc;
      alarm(10);
      rc = open_with(files[i].path, modes[m], &db);
      alarm(0);
      if (rc != MAPKV_ENOTDB)
        fail_msg("%s, flags %u: %d (%s)", files[i].kind, modes[m], rc,
                 mapkv_errmsg());
      assert_null(db);
      assert_non_null(strstr(mapkv_errmsg(), files[i].kind));
    }
    alarm(10);
    assert_rc(mapkv_recover(files[i].path, NULL, 0, 0, NULL), MAPKV_ENOTDB);
    alarm(0);
  }
  signal(SIGALRM, SIG_DFL);
  close(sock);
}

/* ---- leftovers of processes that died ------------------------------------ */

static long dead_pid(void) {
  pid_t p = fork();
  assert_true(p >= 0);
  if (p == 0)
    _exit(0);
  assert_int_equal(waitpid(p, NULL, 0), p);
  return (long)p;
}

static void touch(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(fd >= 0);
  close(fd);
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static void test_stale_temp_files(void **state) {
  const char *p = fx_path("files-stale");
  static const char *const kinds[] = {"creating", "recovering", "copying"};
  char name[4][400], live[400], odd[3][400];
  long dead = dead_pid();
  mapkv_t *db;
  (void)state;

  make_store(p);
  for (int i = 0; i < 3; i++) {
    snprintf(name[i], sizeof name[i], "%s.%s.%ld.0123456789abcdef", p, kinds[i],
             dead);
    touch(name[i]);
  }
  /* The header page of a store being created to salvage into. */
  snprintf(name[3], sizeof name[3],
           "%s.recovering.%ld.0123456789abcdef.creating.%ld.fedcba9876543210",
           p, dead, dead);
  touch(name[3]);
  snprintf(live, sizeof live, "%s.creating.%ld.0123456789abcdef", p,
           (long)getppid());
  touch(live);
  snprintf(odd[0], sizeof odd[0], "%s.creating.%ld.0123", p, dead);
  snprintf(odd[1], sizeof odd[1], "%s.unknown.%ld.0123456789abcdef", p, dead);
  snprintf(odd[2], sizeof odd[2], "%sx.creating.%ld.0123456789abcdef", p, dead);
  for (int i = 0; i < 3; i++)
    touch(odd[i]);

  /* A reader removes nothing. */
  db = open_ok(p, MAPKV_RDONLY);
  assert_rc(mapkv_close(db), 0);
  for (int i = 0; i < 4; i++)
    assert_true(exists(name[i]));
  /* A writer removes those of the dead process, and nothing else. */
  db = open_ok(p, 0);
  assert_rc(mapkv_close(db), 0);
  for (int i = 0; i < 4; i++)
    assert_false(exists(name[i]));
  assert_true(exists(live));
  for (int i = 0; i < 3; i++) {
    assert_true(exists(odd[i]));
    unlink(odd[i]);
  }
  unlink(live);
  expect_store(p);
}

static int stuck_link(const char *from, const char *to) {
  (void)from;
  (void)to;
  for (;;)
    pause(); /* killed here, after the header page was written */
  return -1;
}

/* A creator killed with the header page written but not yet linked into
 * place leaves its temporary file; the next writable open of the store
 * (creating it) removes it. */
static void test_killed_create_leaves_nothing_for_long(void **state) {
  const char *p = fx_path("files-killed");
  char dir[300], base[300], prefix[320];
  int status;
  pid_t child;
  mapkv_t *db;
  (void)state;

  split(p, dir, base, sizeof dir);
  snprintf(prefix, sizeof prefix, "%s.creating.", base);
  child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    mapkv__os.link = stuck_link;
    open_with(p, MAPKV_CREATE, &db);
    _exit(1);
  }
  for (int i = 0; i < 500 && count_prefixed(dir, prefix) == 0; i++)
    usleep(10000);
  assert_int_equal(count_prefixed(dir, prefix), 1);
  kill(child, SIGKILL);
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_false(exists(p));
  db = open_ok(p, MAPKV_CREATE);
  put_str(db, "k", "v");
  assert_rc(mapkv_close(db), 0);
  assert_int_equal(count_prefixed(dir, prefix), 0);
}

/* ---- the file changed underneath ----------------------------------------- */

static void test_store_replaced_while_open(void **state) {
  const char *p = fx_path("files-moved");
  const char *q = fx_path("files-other");
  mapkv_t *db;
  (void)state;

  make_store(p);
  make_store(q);
  db = open_ok(p, 0);
  put_str(db, "before", "1");
  assert_rc(mapkv_sync(db), 0);
  assert_int_equal(rename(q, p), 0); /* another file renamed over it */
  put_str(db, "after", "2");         /* acknowledged into the old inode */
  assert_rc(mapkv_sync(db), MAPKV_EMOVED);
  assert_non_null(strstr(mapkv_errmsg(), "replaced"));
  assert_rc(mapkv_compact(db), MAPKV_EMOVED);
  assert_rc(mapkv_close(db), MAPKV_EMOVED);
  /* The file the path names now is the other store, untouched. */
  db = open_ok(p, MAPKV_RDONLY);
  assert_rc(mapkv_get(db, "before", 6, NULL, 0, NULL), MAPKV_NOTFOUND);
  expect_str(db, "k1", "v1");
  assert_rc(mapkv_close(db), 0);

  /* Removed while open. */
  db = open_ok(p, 0);
  assert_int_equal(unlink(p), 0);
  assert_rc(mapkv_sync(db), MAPKV_EMOVED);
  assert_non_null(strstr(mapkv_errmsg(), "removed"));
  assert_rc(mapkv_close(db), MAPKV_EMOVED);
}

/* ---- handles used the wrong way ------------------------------------------ */

static void test_handle_misuse(void **state) {
  const char *p = fx_path("files-misuse");
  mapkv_batch_t *b;
  mapkv_cursor_t *c;
  mapkv_t *db;
  (void)state;

  make_store(p);
  db = open_ok(p, 0);
  assert_rc(mapkv_batch_begin(db, &b), 0);
  assert_rc(mapkv_batch_put(b, "x", 1, "y", 1), 0);
  assert_rc(mapkv_close(db), MAPKV_EBUSY);
  assert_non_null(strstr(mapkv_errmsg(), "still open"));
  /* The handle is still open and works. */
  put_str(db, "z", "1");
  assert_rc(mapkv_batch_commit(b), 0);
  expect_str(db, "x", "y");
  assert_rc(mapkv_cursor_open(db, NULL, 0, &c), 0);
  assert_rc(mapkv_close(db), MAPKV_EBUSY);
  mapkv_cursor_close(c);
  assert_rc(mapkv_batch_begin(db, &b), 0);
  mapkv_batch_abort(b);
  assert_rc(mapkv_close(db), 0);
  /* A closed handle is told from an open one where something begins. */
  assert_rc(mapkv_close(db), MAPKV_EINVAL);
  assert_non_null(strstr(mapkv_errmsg(), "closed"));
  assert_rc(mapkv_batch_begin(db, &b), MAPKV_EINVAL);
  assert_rc(mapkv_cursor_open(db, NULL, 0, &c), MAPKV_EINVAL);
  db = open_ok(p, MAPKV_RDONLY);
  expect_str(db, "z", "1");
  assert_rc(mapkv_close(db), 0);
}

/* ---- sizes no disk can give ---------------------------------------------- */

static void test_sizes_beyond_the_reservation(void **state) {
  const char *p = fx_path("files-sizes");
  mapkv_options o;
  mapkv_t *db = NULL;
  (void)state;

  mapkv_options_init(&o);
  o.flags = MAPKV_CREATE;
  o.initial_size = 1ull << 40; /* 1 TiB, above the default 64 GiB reserve */
  assert_rc(mapkv_open(p, &o, &db), MAPKV_EINVAL);
  assert_non_null(strstr(mapkv_errmsg(), "initial_size"));
  assert_null(db);
  assert_false(exists(p));
  o.initial_size = 0;
  o.growth_step = 128ull << 30;
  assert_rc(mapkv_open(p, &o, &db), MAPKV_EINVAL);
  assert_false(exists(p));
  /* Within the reservation, a large initial size is what was asked. */
  o.growth_step = 0;
  o.initial_size = 8u << 20;
  o.reserve = 16u << 20;
  assert_rc(mapkv_open(p, &o, &db), 0);
  put_str(db, "k", "v");
  {
    mapkv_stats st;
    assert_rc(mapkv_stat(db, &st), 0);
    assert_int_equal(st.file_size, 8u << 20);
  }
  assert_rc(mapkv_close(db), 0);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_compact_keeps_mode_and_owner),
      T(test_compact_cannot_keep_owner),
      T(test_symlinked_store),
      T(test_not_regular_files),
      T(test_stale_temp_files),
      T(test_killed_create_leaves_nothing_for_long),
      T(test_store_replaced_while_open),
      T(test_handle_misuse),
      T(test_sizes_beyond_the_reservation),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
