/*
 * mmf_fixture.h — the fixture shared by the mapping-core tests
 * (test_mmf*.c): scratch files, descriptors and maps that teardown
 * releases, error-checking macros, and byte-pattern helpers. Included by
 * each of those files (one executable each); every helper is static.
 */
#ifndef MAPKV_MMF_FIXTURE_H
#define MAPKV_MMF_FIXTURE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mapkv/mmf.h"
#include "mmf/mmf_sys.h"
#include "testutil.h"

#if defined(__GNUC__)
#define FX_UNUSED __attribute__((unused))
#else
#define FX_UNUSED
#endif

/* ---- fixture: everything a test creates is released in teardown ---------- */

#define FX_MAX       32
#define RW           (MMF_PROT_READ | MMF_PROT_WRITE)
#define CLOSED_MSG   "mmap closed or invalid"
#define READONLY_MSG "mmap can't modify a readonly memory map."
#define NORESIZE_MSG "mmap can't resize a readonly or copy-on-write memory map."

static struct {
  char paths[FX_MAX][256];
  int npaths;
  int fds[FX_MAX];
  int nfds;
  mmf_t *maps[FX_MAX];
  int nmaps;
} fx;

FX_UNUSED static int64_t PS;           /* mmf_pagesize() */
FX_UNUSED static struct mmf__sys real; /* the real system calls */

FX_UNUSED static int setup(void **state) {
  (void)state;
  memset(&fx, 0, sizeof fx);
  mmf__sys_reset();
  real = mmf__sys;
  return 0;
}

FX_UNUSED static int teardown(void **state) {
  int i;
  (void)state;
  mmf__sys_reset();
  for (i = 0; i < fx.nmaps; i++)
    mmf_free(fx.maps[i]);
  for (i = 0; i < fx.nfds; i++)
    if (fx.fds[i] >= 0)
      close(fx.fds[i]);
  for (i = 0; i < fx.npaths; i++)
    unlink(fx.paths[i]);
  memset(&fx, 0, sizeof fx);
  return 0;
}

FX_UNUSED static int fx_fd(int fd) {
  assert_true(fd >= 0);
  assert_true(fx.nfds < FX_MAX);
  fx.fds[fx.nfds++] = fd;
  return fd;
}

/* A scratch file holding `len` bytes of data (zeros if NULL); returns an
 * O_RDWR descriptor and, in *path, the file's name. */
FX_UNUSED static int fx_file(const void *data, size_t len, const char **path) {
  char *p;
  assert_true(fx.npaths < FX_MAX);
  p = fx.paths[fx.npaths++];
  tu_path(p, sizeof fx.paths[0], "mmf");
  if (path != NULL)
    *path = p;
  return fx_fd(tu_file_with(p, data, len));
}

FX_UNUSED static mmf_t *fx_keep(mmf_t *m) {
  assert_true(fx.nmaps < FX_MAX);
  fx.maps[fx.nmaps++] = m;
  return m;
}

FX_UNUSED static mmf_t *fx_open(int fd, int64_t length, int flags, int prot,
                                int access, int64_t offset, int trackfd) {
  mmf_t *m = NULL;
  int rc = mmf_open(&m, fd, length, flags, prot, access, offset, trackfd);
  if (rc != 0)
    fail_msg("mmf_open: %d %s", rc, mmf_errmsg());
  assert_non_null(m);
  return fx_keep(m);
}

FX_UNUSED static mmf_t *fx_map(int fd, int64_t length, int access,
                               int64_t offset) {
  return fx_open(fd, length, MMF_MAP_SHARED, RW, access, offset, 1);
}

#define EXPECT_ERR(expr, code, msg)                                            \
  do {                                                                         \
    int64_t rc_ = (int64_t)(expr);                                             \
    assert_int_equal(rc_, (int64_t)(code));                                    \
    assert_string_equal(mmf_errmsg(), (msg));                                  \
  } while (0)

/* An OS failure: -err and the message "<call>: <strerror(err)>". */
#define EXPECT_OS(expr, err, call)                                             \
  do {                                                                         \
    char want_[256];                                                           \
    int64_t rc_ = (int64_t)(expr);                                             \
    assert_int_equal(rc_, -(int64_t)(err));                                    \
    snprintf(want_, sizeof want_, "%s: %s", (call), strerror(err));            \
    assert_string_equal(mmf_errmsg(), want_);                                  \
    assert_true(mmf_is_oserror((int)rc_));                                     \
  } while (0)

#define EXPECT_OK(expr)                                                        \
  do {                                                                         \
    int64_t rc_ = (int64_t)(expr);                                             \
    if (rc_ < 0)                                                               \
      fail_msg("%s -> %lld (%s)", #expr, (long long)rc_, mmf_errmsg());        \
  } while (0)

FX_UNUSED static void pattern(uint8_t *buf, size_t len, unsigned seed) {
  size_t i;
  for (i = 0; i < len; i++)
    buf[i] = (uint8_t)(i * 31u + seed + (i >> 8));
}

FX_UNUSED static uint8_t *data_of(const mmf_t *m) {
  void *p = NULL;
  assert_int_equal(mmf_data(m, &p, NULL), 0);
  return p;
}

/* The map's bytes [off, off+len) equal want. */
FX_UNUSED static void expect_map(const mmf_t *m, int64_t off, const void *want,
                                 size_t len) {
  assert_true(off + (int64_t)len <= mmf_len(m));
  assert_memory_equal(data_of(m) + off, want, len);
}

/* The file on disk is exactly want[0..len). */
FX_UNUSED static void expect_file(const char *path, const void *want,
                                  size_t len) {
  size_t n = 0;
  uint8_t *got = tu_slurp(path, &n);
  assert_int_equal(n, len);
  if (len > 0 && memcmp(got, want, len) != 0) {
    free(got);
    fail_msg("file %s differs from the expected bytes", path);
  }
  free(got);
}

#endif
