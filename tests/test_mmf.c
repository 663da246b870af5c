/*
 * test_mmf.c — the mapping core against Python's mmap semantics
 * (/work/shared/MMAP-SEMANTICS.md): construction (§B), access modes (§B5,
 * §G3), len vs size (§D), close and closed maps (§C), repr (§N), error codes
 * and messages, and fault injection at open.
 *
 * Stream access, search, items, slices, move, flush and madvise are in
 * test_mmf_ops.c; resize, reservations, large files and fault injection
 * around resize/flush in test_mmf_resize.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mapkv/mmf.h"
#include "mmf/mmf_sys.h"
#include "testutil.h"

#include "mmf_fixture.h"

static mmf_t *const SENTINEL = (mmf_t *)&fx; /* "out untouched" marker */

/* Closes a descriptor registered with fx_fd() before teardown does. */
static void fx_close_fd(int fd) {
  int i;
  for (i = 0; i < fx.nfds; i++)
    if (fx.fds[i] == fd)
      fx.fds[i] = -1;
  assert_int_equal(close(fd), 0);
}

static int count_fds(void) {
  int n = 0;
  struct dirent *e;
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

static const int all_access[] = {MMF_ACCESS_DEFAULT, MMF_ACCESS_READ,
                                 MMF_ACCESS_WRITE, MMF_ACCESS_COPY};

/* ---- constants ----------------------------------------------------------- */

static void test_constants(void **state) {
  (void)state;
  assert_int_equal(mmf_pagesize(), sysconf(_SC_PAGESIZE));
  assert_int_equal(mmf_allocationgranularity(), mmf_pagesize());
  assert_int_equal(MMF_ACCESS_DEFAULT, 0);
  assert_int_equal(MMF_ACCESS_READ, 1);
  assert_int_equal(MMF_ACCESS_WRITE, 2);
  assert_int_equal(MMF_ACCESS_COPY, 3);
  assert_int_equal(MMF_MAP_SHARED, MAP_SHARED);
  assert_int_equal(MMF_MAP_PRIVATE, MAP_PRIVATE);
  assert_int_equal(MMF_PROT_READ, PROT_READ);
  assert_int_equal(MMF_PROT_WRITE, PROT_WRITE);
  assert_int_equal(MMF_MS_SYNC, MS_SYNC);
  assert_int_equal(MMF_MS_ASYNC, MS_ASYNC);
  assert_int_equal(MMF_MADV_NORMAL, MADV_NORMAL);
}

/* ---- construction (§B) --------------------------------------------------- */

/* B7: length 0 of an empty file, in every mode. */
static void test_open_empty_file(void **state) {
  int fd = fx_file(NULL, 0, NULL), before = count_fds();
  size_t i;
  mmf_t *m;
  (void)state;
  for (i = 0; i < 4; i++) {
    m = SENTINEL;
    EXPECT_ERR(mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, all_access[i], 0, 1),
               MMF_EVALUE, "cannot mmap an empty file");
    assert_ptr_equal(m, SENTINEL);
  }
  m = SENTINEL;
  EXPECT_ERR(mmf_open(&m, fd, 0, MMF_MAP_PRIVATE, RW, 0, 0, 1), MMF_EVALUE,
             "cannot mmap an empty file");
  /* The empty-file check comes before the offset check. */
  EXPECT_ERR(mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, 0, PS, 1), MMF_EVALUE,
             "cannot mmap an empty file");
  /* trackfd=False changes nothing about the size checks. */
  EXPECT_ERR(mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, 0, 0, 0), MMF_EVALUE,
             "cannot mmap an empty file");
  /* A positive length never extends the file. */
  EXPECT_ERR(mmf_open(&m, fd, 1, MMF_MAP_SHARED, RW, 0, 0, 1), MMF_EVALUE,
             "mmap length is greater than file size");
  assert_ptr_equal(m, SENTINEL);
  assert_int_equal(count_fds(), before);
}

/* B7: length 0 maps the rest of the file from offset, in every mode. */
static void test_open_length0_whole_file(void **state) {
  size_t fsize = (size_t)(3 * PS + 5), i;
  uint8_t *buf = malloc(fsize);
  const char *path;
  int fd;
  mmf_t *m;
  (void)state;
  pattern(buf, fsize, 7);
  fd = fx_file(buf, fsize, &path);
  for (i = 0; i < 4; i++) {
    m = fx_map(fd, 0, all_access[i], 0);
    assert_int_equal(mmf_len(m), (int64_t)fsize);
    assert_int_equal(mmf_size(m), (int64_t)fsize);
    assert_int_equal(mmf_offset(m), 0);
    assert_int_equal(mmf_tell(m), 0);
    expect_map(m, 0, buf, fsize);

    m = fx_map(fd, 0, all_access[i], PS);
    assert_int_equal(mmf_len(m), (int64_t)fsize - PS);
    assert_int_equal(mmf_size(m), (int64_t)fsize);
    assert_int_equal(mmf_offset(m), PS);
    expect_map(m, 0, buf + PS, fsize - (size_t)PS);

    /* Offset in the last, partial page: 5 bytes remain. */
    m = fx_map(fd, 0, all_access[i], 3 * PS);
    assert_int_equal(mmf_len(m), 5);
    expect_map(m, 0, buf + 3 * PS, 5);
  }
  /* Python's test_length_0_offset: bytes beyond the map are IndexError. */
  m = fx_map(fd, 0, MMF_ACCESS_READ, PS);
  EXPECT_ERR(mmf_get_item(m, (int64_t)fsize - PS), MMF_EINDEX,
             "mmap index out of range");
  assert_int_equal(mmf_get_item(m, (int64_t)fsize - PS - 1), buf[fsize - 1]);
  expect_file(path, buf, fsize);
  free(buf);
}

/* B7: length 0 with an offset at or after the end of the file. */
static void test_open_length0_offset_past_end(void **state) {
  int fd = fx_file(NULL, (size_t)(2 * PS), NULL), big;
  size_t i;
  mmf_t *m = SENTINEL;
  (void)state;
  for (i = 0; i < 4; i++) {
    EXPECT_ERR(
        mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, all_access[i], 2 * PS, 1),
        MMF_EVALUE, "mmap offset is greater than file size");
    EXPECT_ERR(
        mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, all_access[i], 3 * PS, 1),
        MMF_EVALUE, "mmap offset is greater than file size");
  }
  /* The size check runs before mmap(2) could complain about alignment. */
  EXPECT_ERR(mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, 0, 2 * PS + 1, 1),
             MMF_EVALUE, "mmap offset is greater than file size");
  EXPECT_ERR(mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, 0, INT64_MAX, 1),
             MMF_EVALUE, "mmap offset is greater than file size");
  /* Python's test_length_0_large_offset. */
  big = fx_file(NULL, 115699, NULL);
  EXPECT_ERR(mmf_open(&m, big, 0, MMF_MAP_SHARED, RW, 0, 2147418112, 1),
             MMF_EVALUE, "mmap offset is greater than file size");
  assert_ptr_equal(m, SENTINEL);
}

/* B7: a positive length or offset beyond the file, in every access mode. */
static void test_open_beyond_file(void **state) {
  const char *path;
  int fd = fx_file("aaaaaaaaaa", 10, &path), big;
  size_t i;
  mmf_t *m = SENTINEL;
  (void)state;
  for (i = 0; i < 4; i++) {
    EXPECT_ERR(mmf_open(&m, fd, 11, MMF_MAP_SHARED, RW, all_access[i], 0, 1),
               MMF_EVALUE, "mmap length is greater than file size");
    EXPECT_ERR(mmf_open(&m, fd, 1, MMF_MAP_SHARED, RW, all_access[i], PS, 1),
               MMF_EVALUE, "mmap length is greater than file size");
    EXPECT_ERR(
        mmf_open(&m, fd, INT64_MAX, MMF_MAP_SHARED, RW, all_access[i], 0, 1),
        MMF_EVALUE, "mmap length is greater than file size");
  }
  EXPECT_ERR(mmf_open(&m, fd, 11, MMF_MAP_PRIVATE, RW, 0, 0, 1), MMF_EVALUE,
             "mmap length is greater than file size");
  EXPECT_ERR(mmf_open(&m, fd, 11, MMF_MAP_SHARED, MMF_PROT_READ, 0, 0, 1),
             MMF_EVALUE, "mmap length is greater than file size");
  EXPECT_ERR(mmf_open(&m, fd, 11, MMF_MAP_SHARED, RW, 0, 0, 0), MMF_EVALUE,
             "mmap length is greater than file size");
  assert_ptr_equal(m, SENTINEL);
  /* Unix never extends the file in the constructor. */
  assert_int_equal(tu_file_size(path), 10);
  expect_file(path, "aaaaaaaaaa", 10);

  big = fx_file(NULL, (size_t)(2 * PS), &path);
  /* offset == file size with any positive length. */
  EXPECT_ERR(mmf_open(&m, big, 1, MMF_MAP_SHARED, RW, 0, 2 * PS, 1), MMF_EVALUE,
             "mmap length is greater than file size");
  EXPECT_ERR(mmf_open(&m, big, PS + 1, MMF_MAP_SHARED, RW, 0, PS, 1),
             MMF_EVALUE, "mmap length is greater than file size");
  EXPECT_ERR(mmf_open(&m, big, 1, MMF_MAP_SHARED, RW, 0, INT64_MAX, 1),
             MMF_EVALUE, "mmap length is greater than file size");
  assert_int_equal(tu_file_size(path), 2 * PS);
  /* Exactly to the end is fine. */
  m = fx_map(big, PS, MMF_ACCESS_WRITE, PS);
  assert_int_equal(mmf_len(m), PS);
  m = fx_map(big, 10, MMF_ACCESS_COPY, 0);
  assert_int_equal(mmf_len(m), 10);
}

/* B11: no alignment check of its own; mmap(2) says EINVAL. */
static void test_open_unaligned_offset(void **state) {
  int fd = fx_file(NULL, (size_t)(4 * PS), NULL), before;
  int64_t offsets[3];
  size_t i, j;
  mmf_t *m = SENTINEL;
  (void)state;
  offsets[0] = 1;
  offsets[1] = PS / 2;
  offsets[2] = PS + 1;
  before = count_fds();
  for (i = 0; i < 3; i++) {
    for (j = 0; j < 4; j++) {
      EXPECT_OS(mmf_open(&m, fd, PS, MMF_MAP_SHARED, RW, all_access[j],
                         offsets[i], 1),
                EINVAL, "mmap");
      EXPECT_OS(
          mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, all_access[j], offsets[i], 1),
          EINVAL, "mmap");
    }
    EXPECT_OS(mmf_open(&m, fd, PS, MMF_MAP_SHARED, RW, 0, offsets[i], 0),
              EINVAL, "mmap");
    /* Anonymous maps pass the offset through to mmap(2) as well. */
    EXPECT_OS(mmf_open(&m, -1, PS, MMF_MAP_SHARED, RW, 0, offsets[i], 1),
              EINVAL, "mmap");
  }
  assert_ptr_equal(m, SENTINEL);
  /* The dup'd descriptor of every failed open was closed. */
  assert_int_equal(count_fds(), before);
  /* A multiple of ALLOCATIONGRANULARITY is fine. */
  m = fx_map(fd, PS, MMF_ACCESS_WRITE, 3 * mmf_allocationgranularity());
  assert_int_equal(mmf_offset(m), 3 * PS);
}

/* B2, B3: negative length or offset is OverflowError, checked first. */
static void test_open_negative_length_offset(void **state) {
  int fd = fx_file(NULL, (size_t)PS, NULL);
  mmf_t *m = SENTINEL;
  (void)state;
  EXPECT_ERR(mmf_open(&m, fd, -1, MMF_MAP_SHARED, RW, 0, 0, 1), MMF_EOVERFLOW,
             "memory mapped length must be positive");
  EXPECT_ERR(mmf_open(&m, fd, INT64_MIN, MMF_MAP_SHARED, RW, 0, 0, 1),
             MMF_EOVERFLOW, "memory mapped length must be positive");
  EXPECT_ERR(mmf_open(&m, -1, -1, MMF_MAP_SHARED, RW, 0, 0, 1), MMF_EOVERFLOW,
             "memory mapped length must be positive");
  EXPECT_ERR(mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, 0, -1, 1), MMF_EOVERFLOW,
             "memory mapped offset must be positive");
  EXPECT_ERR(mmf_open(&m, fd, PS, MMF_MAP_SHARED, RW, 0, INT64_MIN, 1),
             MMF_EOVERFLOW, "memory mapped offset must be positive");
  /* Length before offset; both before access, fd and everything else. */
  EXPECT_ERR(mmf_open(&m, fd, -1, MMF_MAP_SHARED, RW, 0, -1, 1), MMF_EOVERFLOW,
             "memory mapped length must be positive");
  EXPECT_ERR(mmf_open(&m, fd, 1, MMF_MAP_PRIVATE, RW, 99, -1, 1), MMF_EOVERFLOW,
             "memory mapped offset must be positive");
  EXPECT_ERR(mmf_open(&m, -2, -5, MMF_MAP_SHARED, RW, 0, 0, 1), MMF_EOVERFLOW,
             "memory mapped length must be positive");
  EXPECT_ERR(mmf_open_reserved(&m, fd, PS, MMF_MAP_SHARED, RW, 0, 0, 1, -1),
             MMF_EOVERFLOW, "address reservation must be positive");
  assert_ptr_equal(m, SENTINEL);
  EXPECT_ERR(mmf_open(NULL, fd, PS, MMF_MAP_SHARED, RW, 0, 0, 1), MMF_EVALUE,
             "output handle pointer is NULL");
}

/* B4, B5: access together with flags/prot; invalid access values. */
static void test_open_access_and_flags(void **state) {
  int fd = fx_file("aaaaaaaaaa", 10, NULL);
  mmf_t *m = SENTINEL;
  const char *both = "mmap can't specify both access and flags, prot.";
  (void)state;
  /* Python's test_access_parameter. */
  EXPECT_ERR(mmf_open(&m, fd, 10, MMF_MAP_PRIVATE, MMF_PROT_READ,
                      MMF_ACCESS_WRITE, 0, 1),
             MMF_EVALUE, both);
  EXPECT_ERR(mmf_open(&m, fd, 10, MMF_MAP_PRIVATE, RW, MMF_ACCESS_READ, 0, 1),
             MMF_EVALUE, both);
  EXPECT_ERR(mmf_open(&m, fd, 10, MMF_MAP_SHARED, MMF_PROT_READ,
                      MMF_ACCESS_READ, 0, 1),
             MMF_EVALUE, both);
  EXPECT_ERR(mmf_open(&m, fd, 10, MMF_MAP_SHARED, RW | MMF_PROT_EXEC,
                      MMF_ACCESS_COPY, 0, 1),
             MMF_EVALUE, both);
  EXPECT_ERR(mmf_open(&m, fd, 10, MMF_MAP_SHARED | MMF_MAP_NORESERVE, RW,
                      MMF_ACCESS_WRITE, 0, 1),
             MMF_EVALUE, both);
  /* Checked before the validity of access. */
  EXPECT_ERR(mmf_open(&m, fd, 10, MMF_MAP_PRIVATE, RW, 4, 0, 1), MMF_EVALUE,
             both);
  /* And before any size check. */
  EXPECT_ERR(mmf_open(&m, fd, 11, MMF_MAP_PRIVATE, RW, MMF_ACCESS_READ, 0, 1),
             MMF_EVALUE, both);
  EXPECT_ERR(mmf_open(&m, fd, 10, MMF_MAP_SHARED, RW, 4, 0, 1), MMF_EVALUE,
             "mmap invalid access parameter.");
  EXPECT_ERR(mmf_open(&m, fd, 10, MMF_MAP_SHARED, RW, -1, 0, 1), MMF_EVALUE,
             "mmap invalid access parameter.");
  EXPECT_ERR(mmf_open(&m, fd, 10, MMF_MAP_SHARED, RW, INT_MAX, 0, 1),
             MMF_EVALUE, "mmap invalid access parameter.");
  EXPECT_ERR(mmf_open(&m, -1, 10, MMF_MAP_SHARED, RW, 4, 0, 1), MMF_EVALUE,
             "mmap invalid access parameter.");
  /* Invalid access is found before the size checks. */
  EXPECT_ERR(mmf_open(&m, fd, 11, MMF_MAP_SHARED, RW, 4, 0, 1), MMF_EVALUE,
             "mmap invalid access parameter.");
  assert_ptr_equal(m, SENTINEL);
  /* ACCESS_DEFAULT goes with any flags/prot. */
  m = fx_open(fd, 10, MMF_MAP_PRIVATE, MMF_PROT_READ, MMF_ACCESS_DEFAULT, 0, 1);
  assert_int_equal(mmf_access(m), MMF_ACCESS_READ);
}

/* B5: ACCESS_DEFAULT derives the access mode from prot. */
static void test_open_access_from_prot(void **state) {
  const char *path;
  uint8_t *buf = malloc((size_t)PS), *want = malloc((size_t)PS);
  int fd, ro;
  void *p;
  int64_t n;
  mmf_t *m;
  char repr[200];
  (void)state;
  pattern(buf, (size_t)PS, 3);
  fd = fx_file(buf, (size_t)PS, &path);

  /* PROT_READ only: ACCESS_READ, refuses writes, read-only export. */
  m = fx_open(fd, PS, MMF_MAP_SHARED, MMF_PROT_READ, MMF_ACCESS_DEFAULT, 0, 1);
  assert_int_equal(mmf_access(m), MMF_ACCESS_READ);
  mmf_repr(m, repr, sizeof repr);
  assert_non_null(strstr(repr, "access=ACCESS_READ,"));
  EXPECT_ERR(mmf_write(m, "x", 1), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_write_byte(m, 1), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_set_item(m, 0, 1), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_move(m, 0, 1, 1), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_resize(m, 2 * PS), MMF_ETYPE, NORESIZE_MSG);
  assert_int_equal(mmf_buffer_acquire(m, &p, &n, &ro), 0);
  assert_int_equal(ro, 1);
  mmf_buffer_release(m);
  expect_map(m, 0, buf, (size_t)PS);
  assert_int_equal(mmf_close(m), 0);

  /* MAP_PRIVATE + PROT_READ: also ACCESS_READ. */
  m = fx_open(fd, PS, MMF_MAP_PRIVATE, MMF_PROT_READ, MMF_ACCESS_DEFAULT, 0, 1);
  assert_int_equal(mmf_access(m), MMF_ACCESS_READ);
  EXPECT_ERR(mmf_write(m, "x", 1), MMF_ETYPE, READONLY_MSG);

  /* PROT_WRITE only: ACCESS_WRITE; the write reaches the file. */
  m = fx_open(fd, PS, MMF_MAP_SHARED, MMF_PROT_WRITE, MMF_ACCESS_DEFAULT, 0, 1);
  assert_int_equal(mmf_access(m), MMF_ACCESS_WRITE);
  mmf_repr(m, repr, sizeof repr);
  assert_non_null(strstr(repr, "access=ACCESS_WRITE,"));
  assert_int_equal(mmf_write(m, "xyz", 3), 3);
  assert_int_equal(mmf_write_byte(m, 'w'), 0);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  memcpy(want, buf, (size_t)PS);
  memcpy(want, "xyzw", 4);
  expect_file(path, want, (size_t)PS);
  assert_int_equal(mmf_close(m), 0);

  /* PROT_READ|PROT_WRITE: stays ACCESS_DEFAULT. */
  m = fx_open(fd, PS, MMF_MAP_SHARED, RW, MMF_ACCESS_DEFAULT, 0, 1);
  assert_int_equal(mmf_access(m), MMF_ACCESS_DEFAULT);
  assert_int_equal(mmf_write(m, "a", 1), 1);

  /* prot 0: ACCESS_READ (the memory is never touched). */
  m = fx_open(fd, PS, MMF_MAP_SHARED, 0, MMF_ACCESS_DEFAULT, 0, 1);
  assert_int_equal(mmf_access(m), MMF_ACCESS_READ);
  EXPECT_ERR(mmf_write(m, "x", 1), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_set_slice(m, NULL, NULL, NULL, "", 0), MMF_ETYPE,
             READONLY_MSG);
  assert_int_equal(mmf_close(m), 0);

  /* PROT_READ|PROT_EXEC: ACCESS_READ (Python's test_prot_readonly). */
  m = fx_open(-1, PS, MMF_MAP_PRIVATE, MMF_PROT_READ | MMF_PROT_EXEC,
              MMF_ACCESS_DEFAULT, 0, 1);
  assert_int_equal(mmf_access(m), MMF_ACCESS_READ);
  EXPECT_ERR(mmf_write(m, "x", 1), MMF_ETYPE, READONLY_MSG);
  assert_int_equal(mmf_get_item(m, 0), 0);
  free(buf);
  free(want);
}

/* B9: anonymous maps. */
static void test_open_anonymous(void **state) {
  int before = count_fds();
  int64_t x, n;
  uint8_t *zeros = calloc(1, (size_t)PS);
  mmf_t *m = SENTINEL;
  char repr[200];
  (void)state;
  EXPECT_OS(mmf_open(&m, -1, 0, MMF_MAP_SHARED, RW, 0, 0, 1), EINVAL, "mmap");
  EXPECT_OS(mmf_open(&m, -1, 0, MMF_MAP_PRIVATE, RW, 0, 0, 1), EINVAL, "mmap");
  assert_ptr_equal(m, SENTINEL);

  /* Python's test_anonymous. */
  m = fx_map(-1, PS, MMF_ACCESS_DEFAULT, 0);
  assert_int_equal(count_fds(), before); /* no descriptor kept */
  assert_int_equal(mmf_len(m), PS);
  assert_int_equal(mmf_size(m), PS);
  assert_int_equal(mmf_offset(m), 0);
  assert_int_equal(mmf_access(m), MMF_ACCESS_DEFAULT);
  for (x = 0; x < PS; x++)
    assert_int_equal(mmf_get_item(m, x), 0);
  for (x = 0; x < PS; x++) {
    assert_int_equal(mmf_set_item(m, x, (int)(x & 255)), 0);
    assert_int_equal(mmf_get_item(m, x), x & 255);
  }
  mmf_repr(m, repr, sizeof repr);
  {
    char want[200];
    snprintf(want, sizeof want,
             "<mmap.mmap closed=False, access=ACCESS_DEFAULT, length=%lld, "
             "pos=0, offset=0>",
             (long long)PS);
    assert_string_equal(repr, want);
  }

  /* Odd lengths work; size() is the length. */
  m = fx_map(-1, 3, MMF_ACCESS_WRITE, 0);
  assert_int_equal(mmf_len(m), 3);
  assert_int_equal(mmf_size(m), 3);

  /* Anonymous read-only: zeros, refuses writes. */
  m = fx_map(-1, PS, MMF_ACCESS_READ, 0);
  assert_int_equal(mmf_read(m, -1, zeros, (size_t)PS, &n), 0);
  assert_int_equal(n, PS);
  EXPECT_ERR(mmf_write_byte(m, 1), MMF_ETYPE, READONLY_MSG);

  /* Anonymous copy: writable, not resizable. */
  m = fx_map(-1, PS, MMF_ACCESS_COPY, 0);
  assert_int_equal(mmf_write(m, "abc", 3), 3);
  expect_map(m, 0, "abc", 3);
  EXPECT_ERR(mmf_resize(m, 2 * PS), MMF_ETYPE, NORESIZE_MSG);

  /* MAP_PRIVATE anonymous with ACCESS_DEFAULT. */
  m = fx_open(-1, PS, MMF_MAP_PRIVATE, RW, 0, 0, 1);
  assert_int_equal(mmf_access(m), MMF_ACCESS_DEFAULT);
  assert_int_equal(mmf_set_item(m, -1, 0xff), 0);
  assert_int_equal(mmf_get_item(m, PS - 1), 0xff);

  /* The offset of an anonymous map is passed through and reported. */
  m = fx_map(-1, PS, MMF_ACCESS_DEFAULT, PS);
  assert_int_equal(mmf_offset(m), PS);
  assert_int_equal(mmf_size(m), PS);
  assert_int_equal(count_fds(), before);
  free(zeros);
}

/* B10: a bad descriptor fails in dup (trackfd) or in mmap (no trackfd). */
static void test_open_bad_fd(void **state) {
  int before, fd;
  mmf_t *m = SENTINEL;
  (void)state;
  before = count_fds();
  EXPECT_OS(mmf_open(&m, -2, PS, MMF_MAP_SHARED, RW, 0, 0, 1), EBADF, "dup");
  EXPECT_OS(mmf_open(&m, -2, 0, MMF_MAP_SHARED, RW, 0, 0, 1), EBADF, "dup");
  EXPECT_OS(mmf_open(&m, -2, PS, MMF_MAP_SHARED, RW, 0, 0, 0), EBADF, "mmap");
  EXPECT_OS(mmf_open(&m, INT_MIN, PS, MMF_MAP_SHARED, RW, 0, 0, 1), EBADF,
            "dup");
  /* A descriptor that was closed. */
  fd = fx_file(NULL, (size_t)PS, NULL);
  fx_close_fd(fd);
  EXPECT_OS(mmf_open(&m, fd, PS, MMF_MAP_SHARED, RW, 0, 0, 1), EBADF, "dup");
  EXPECT_OS(mmf_open(&m, fd, PS, MMF_MAP_SHARED, RW, MMF_ACCESS_READ, 0, 0),
            EBADF, "mmap");
  assert_ptr_equal(m, SENTINEL);
  assert_int_equal(count_fds(), before);
}

/* B11: a shared writable map needs a writable descriptor. */
static void test_open_rdonly_fd(void **state) {
  const char *path;
  uint8_t buf[100];
  int fd, before;
  mmf_t *m = SENTINEL;
  (void)state;
  pattern(buf, sizeof buf, 1);
  fd = fx_file(buf, sizeof buf, &path);
  fx_close_fd(fd);
  fd = fx_fd(open(path, O_RDONLY));
  before = count_fds();
  EXPECT_OS(mmf_open(&m, fd, 100, MMF_MAP_SHARED, RW, MMF_ACCESS_WRITE, 0, 1),
            EACCES, "mmap");
  EXPECT_OS(mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, MMF_ACCESS_DEFAULT, 0, 1),
            EACCES, "mmap");
  EXPECT_OS(mmf_open(&m, fd, 0, MMF_MAP_SHARED, MMF_PROT_WRITE, 0, 0, 0),
            EACCES, "mmap");
  assert_ptr_equal(m, SENTINEL);
  assert_int_equal(count_fds(), before);

  /* Read and copy maps of a read-only descriptor are fine. */
  m = fx_map(fd, 0, MMF_ACCESS_READ, 0);
  expect_map(m, 0, buf, sizeof buf);
  m = fx_map(fd, 0, MMF_ACCESS_COPY, 0);
  assert_int_equal(mmf_write(m, "copy", 4), 4);
  expect_map(m, 0, "copy", 4);
  m = fx_open(fd, 0, MMF_MAP_PRIVATE, RW, MMF_ACCESS_DEFAULT, 0, 1);
  assert_int_equal(mmf_set_item(m, 0, 'P'), 0);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  expect_file(path, buf, sizeof buf);
}

/* B8: non-regular descriptors skip the size checks. */
static void test_open_non_regular_fd(void **state) {
  int zero, dir, sv[2];
  int64_t n, i;
  uint8_t got[64];
  mmf_t *m = SENTINEL;
  (void)state;
  zero = fx_fd(open("/dev/zero", O_RDWR));
  /* Length 0 is not "cannot mmap an empty file": mmap(2) says EINVAL. */
  EXPECT_OS(mmf_open(&m, zero, 0, MMF_MAP_SHARED, RW, 0, 0, 1), EINVAL, "mmap");
  assert_ptr_equal(m, SENTINEL);
  /* A positive length is not compared with st_size (0). */
  m = fx_map(zero, 2 * PS, MMF_ACCESS_DEFAULT, 0);
  assert_int_equal(mmf_len(m), 2 * PS);
  assert_int_equal(mmf_size(m), 0);
  assert_int_equal(mmf_read(m, 64, got, sizeof got, &n), 0);
  assert_int_equal(n, 64);
  for (i = 0; i < 64; i++)
    assert_int_equal(got[i], 0);
  assert_int_equal(mmf_write(m, "z", 1), 1);
  /* Neither is the offset (a private map: a shared map of /dev/zero is a
   * shmem object of the map's length, and pages past it would SIGBUS). */
  m = fx_map(zero, PS, MMF_ACCESS_COPY, 1000 * PS);
  assert_int_equal(mmf_offset(m), 1000 * PS);
  assert_int_equal(mmf_get_item(m, 0), 0);

  /* A directory or a socket cannot be mapped (OSError, not ValueError). */
  m = SENTINEL;
  dir = fx_fd(open(".", O_RDONLY | O_DIRECTORY));
  {
    int rc = mmf_open(&m, dir, PS, MMF_MAP_SHARED, RW, MMF_ACCESS_READ, 0, 1);
    assert_true(rc == -ENODEV || rc == -EACCES);
    assert_true(mmf_is_oserror(rc));
    rc = mmf_open(&m, dir, 0, MMF_MAP_SHARED, RW, MMF_ACCESS_READ, 0, 1);
    assert_true(mmf_is_oserror(rc));
  }
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  fx_fd(sv[0]);
  fx_fd(sv[1]);
  EXPECT_OS(mmf_open(&m, sv[0], 10, MMF_MAP_SHARED, RW, 0, 0, 1), ENODEV,
            "mmap");
  assert_ptr_equal(m, SENTINEL);
}

/* B10, D2: trackfd. */
static void test_open_trackfd(void **state) {
  const char *path;
  int fd, before;
  uint8_t buf[256];
  mmf_t *m, *t;
  (void)state;
  pattern(buf, sizeof buf, 9);
  fd = fx_file(NULL, (size_t)(2 * PS), &path);
  before = count_fds();

  /* trackfd=True keeps a dup: the caller may close its descriptor. The dup
   * takes the lowest free number and, like Python's, is not inheritable. */
  {
    int lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    t = fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
    assert_true(fcntl(lowest, F_GETFD) & FD_CLOEXEC);
  }
  assert_int_equal(count_fds(), before + 1);
  /* trackfd=False keeps nothing. */
  m = fx_open(fd, 0, MMF_MAP_SHARED, RW, MMF_ACCESS_WRITE, 0, 0);
  assert_int_equal(count_fds(), before + 1);
  fx_close_fd(fd);

  assert_int_equal(mmf_size(t), 2 * PS);
  EXPECT_ERR(mmf_size(m), MMF_EVALUE, "can't get size with trackfd=False");
  EXPECT_ERR(mmf_resize(m, PS), MMF_EVALUE,
             "mmap can't resize with trackfd=False.");
  assert_int_equal(mmf_len(m), 2 * PS);
  assert_int_equal(tu_file_size(path), 2 * PS);

  /* Without the descriptor the map still works, flush included. */
  assert_int_equal(mmf_write(m, buf, sizeof buf), (int64_t)sizeof buf);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  expect_map(t, 0, buf, sizeof buf);
  assert_int_equal(mmf_resize(t, PS), 0);
  assert_int_equal(mmf_size(t), PS);
  assert_int_equal(tu_file_size(path), PS);
  assert_int_equal(mmf_close(t), 0);
  assert_int_equal(mmf_close(m), 0);
  assert_int_equal(count_fds(), before - 1);

  /* Anonymous with trackfd=False: no size(), no resize(). */
  m = fx_open(-1, PS, MMF_MAP_PRIVATE, RW, 0, 0, 0);
  EXPECT_ERR(mmf_size(m), MMF_EVALUE, "can't get size with trackfd=False");
  EXPECT_ERR(mmf_resize(m, 2 * PS), MMF_EVALUE,
             "mmap can't resize with trackfd=False.");
  assert_int_equal(mmf_len(m), PS);
}

/* ---- access modes (§B5, §G, §I3, §K1) ------------------------------------ */

static int hook_calls;
static int64_t hook_off, hook_len;
static void count_hook(void *ctx, int64_t off, int64_t len) {
  (void)ctx;
  hook_calls++;
  hook_off = off;
  hook_len = len;
}

static void test_access_read_refuses_writes(void **state) {
  const char *path;
  int fd, ro;
  void *p;
  int64_t n;
  mmf_t *m;
  (void)state;
  /* Python's test_access_parameter, read-only part. */
  fd = fx_file("aaaaaaaaaa", 10, &path);
  fx_close_fd(fd);
  fd = fx_fd(open(path, O_RDONLY));
  m = fx_map(fd, 10, MMF_ACCESS_READ, 0);
  assert_int_equal(mmf_access(m), MMF_ACCESS_READ);
  expect_map(m, 0, "aaaaaaaaaa", 10);
  hook_calls = 0;
  assert_int_equal(mmf_set_flush_hook(m, count_hook, NULL), 0);

  assert_int_equal(mmf_seek(m, 2, SEEK_SET, NULL), 0);
  EXPECT_ERR(mmf_write(m, "abc", 3), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_write(m, "", 0), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_write_byte(m, 'd'), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_set_item(m, 0, 'b'), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_set_slice(m, NULL, NULL, NULL, "bbbbbbbbbb", 10), MMF_ETYPE,
             READONLY_MSG);
  EXPECT_ERR(mmf_move(m, 0, 5, 5), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_resize(m, 20), MMF_ETYPE, NORESIZE_MSG);
  assert_int_equal(mmf_tell(m), 2);

  /* Read-only is reported before any argument problem. */
  EXPECT_ERR(mmf_set_item(m, 100, 'b'), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_set_item(m, 0, 1000), MMF_ETYPE, READONLY_MSG);
  {
    int64_t zero = 0;
    EXPECT_ERR(mmf_set_slice(m, NULL, NULL, &zero, "b", 1), MMF_ETYPE,
               READONLY_MSG);
  }
  EXPECT_ERR(mmf_set_slice(m, NULL, NULL, NULL, "b", 1), MMF_ETYPE,
             READONLY_MSG);
  EXPECT_ERR(mmf_move(m, -1, 0, 100), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_resize(m, -1), MMF_ETYPE, NORESIZE_MSG);
  assert_int_equal(mmf_seek(m, 0, SEEK_END, NULL), 0);
  EXPECT_ERR(mmf_write(m, "abc", 3), MMF_ETYPE, READONLY_MSG);
  EXPECT_ERR(mmf_write_byte(m, 'd'), MMF_ETYPE, READONLY_MSG);
  /* ... but write_byte converts its argument first. */
  EXPECT_ERR(mmf_write_byte(m, 256), MMF_EOVERFLOW,
             "unsigned byte integer is greater than maximum");

  /* flush is a no-op after the range check (no alignment error). */
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  assert_int_equal(mmf_flush(m, 1, 3), 0);
  assert_int_equal(mmf_flush(m, 10, -1), 0);
  assert_int_equal(mmf_flush_flags(m, 3, 1, MMF_MS_ASYNC), 0);
  EXPECT_ERR(mmf_flush(m, 11, -1), MMF_EVALUE, "flush values out of range");
  EXPECT_ERR(mmf_flush(m, 0, -2), MMF_EVALUE, "flush values out of range");
  EXPECT_ERR(mmf_flush(m, 0, 11), MMF_EVALUE, "flush values out of range");
  assert_int_equal(hook_calls, 0);

  /* Exports are read-only. */
  assert_int_equal(mmf_buffer_acquire(m, &p, &n, &ro), 0);
  assert_int_equal(ro, 1);
  assert_int_equal(n, 10);
  /* BufferError comes before TypeError in resize. */
  EXPECT_ERR(mmf_resize(m, 20), MMF_EBUFFER,
             "mmap can't resize with extant buffers exported.");
  mmf_buffer_release(m);

  expect_map(m, 0, "aaaaaaaaaa", 10);
  assert_int_equal(mmf_close(m), 0);
  expect_file(path, "aaaaaaaaaa", 10);
}

static void test_access_copy(void **state) {
  const char *path;
  int fd, ro;
  void *p;
  mmf_t *m, *shared;
  (void)state;
  /* Python's test_access_parameter, copy-on-write part. */
  fd = fx_file("cccccccccc", 10, &path);
  m = fx_map(fd, 10, MMF_ACCESS_COPY, 0);
  assert_int_equal(mmf_access(m), MMF_ACCESS_COPY);
  hook_calls = 0;
  assert_int_equal(mmf_set_flush_hook(m, count_hook, NULL), 0);
  assert_int_equal(mmf_set_slice(m, NULL, NULL, NULL, "dddddddddd", 10), 0);
  expect_map(m, 0, "dddddddddd", 10);
  assert_int_equal(mmf_write(m, "ee", 2), 2);
  assert_int_equal(mmf_write_byte(m, 'f'), 0);
  assert_int_equal(mmf_set_item(m, -1, 'g'), 0);
  assert_int_equal(mmf_move(m, 5, 0, 2), 0);
  expect_map(m, 0, "eefddeeddg", 10);

  /* flush checks the range and does nothing else. */
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  assert_int_equal(mmf_flush(m, 1, 1), 0);
  EXPECT_ERR(mmf_flush(m, 11, -1), MMF_EVALUE, "flush values out of range");
  assert_int_equal(hook_calls, 0);
  expect_file(path, "cccccccccc", 10);

  /* Another (shared) map of the file does not see the private bytes. */
  shared = fx_map(fd, 10, MMF_ACCESS_READ, 0);
  expect_map(shared, 0, "cccccccccc", 10);

  EXPECT_ERR(mmf_resize(m, 20), MMF_ETYPE, NORESIZE_MSG);
  EXPECT_ERR(mmf_resize(m, 5), MMF_ETYPE, NORESIZE_MSG);
  assert_int_equal(mmf_len(m), 10);
  assert_int_equal(mmf_buffer_acquire(m, &p, NULL, &ro), 0);
  assert_int_equal(ro, 0);
  mmf_buffer_release(m);

  assert_int_equal(mmf_close(m), 0);
  expect_file(path, "cccccccccc", 10);
  assert_int_equal(tu_file_size(path), 10);
}

static void test_access_write_reaches_file(void **state) {
  const char *path;
  int fd;
  char got[10];
  mmf_t *m;
  (void)state;
  fd = fx_file("aaaaaaaaaa", 10, &path);
  m = fx_map(fd, 10, MMF_ACCESS_WRITE, 0);
  assert_int_equal(mmf_access(m), MMF_ACCESS_WRITE);
  assert_int_equal(mmf_set_slice(m, NULL, NULL, NULL, "cccccccccc", 10), 0);
  expect_map(m, 0, "cccccccccc", 10);
  /* A shared map and the page cache are one: read(2) sees it at once. */
  assert_int_equal(pread(fd, got, 10, 0), 10);
  assert_memory_equal(got, "cccccccccc", 10);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  assert_int_equal(mmf_close(m), 0);
  expect_file(path, "cccccccccc", 10);
  /* And the other way round: a write(2) shows in the map. */
  m = fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
  assert_int_equal(pwrite(fd, "XY", 2, 4), 2);
  expect_map(m, 0, "ccccXYcccc", 10);
}

/* B6, K7: MAP_PRIVATE with ACCESS_DEFAULT is writable and resizable, and
 * resize truncates the real file; writes never reach it. */
static void test_private_default_writable_resizable(void **state) {
  const char *path;
  size_t len = (size_t)(2 * PS);
  uint8_t *buf = malloc(len), *zeros = calloc(1, (size_t)PS);
  int fd;
  mmf_t *m;
  char repr[200];
  (void)state;
  pattern(buf, len, 5);
  fd = fx_file(buf, len, &path);
  m = fx_open(fd, 0, MMF_MAP_PRIVATE, RW, MMF_ACCESS_DEFAULT, 0, 1);
  assert_int_equal(mmf_access(m), MMF_ACCESS_DEFAULT);
  mmf_repr(m, repr, sizeof repr);
  assert_non_null(strstr(repr, "access=ACCESS_DEFAULT,"));
  hook_calls = 0;
  assert_int_equal(mmf_write(m, "XYZ", 3), 3);
  assert_int_equal(mmf_flush(m, 0, -1), 0); /* msync is called and succeeds */
  /* Unlike COPY maps, flush really calls msync: an unaligned offset fails. */
  EXPECT_OS(mmf_flush(m, 1, 1), EINVAL, "msync");
  expect_file(path, buf, len);

  assert_int_equal(mmf_resize(m, 3 * PS), 0);
  assert_int_equal(mmf_len(m), 3 * PS);
  assert_int_equal(tu_file_size(path), 3 * PS);
  assert_int_equal(mmf_size(m), 3 * PS);
  expect_map(m, 0, "XYZ", 3);
  expect_map(m, 3, buf + 3, len - 3);
  expect_map(m, (int64_t)len, zeros, (size_t)PS);

  assert_int_equal(mmf_resize(m, PS), 0);
  assert_int_equal(tu_file_size(path), PS);
  expect_map(m, 0, "XYZ", 3);
  assert_int_equal(mmf_close(m), 0);
  expect_file(path, buf, (size_t)PS);
  free(buf);
  free(zeros);
}

/* ---- len vs size (§D) ---------------------------------------------------- */

static void test_len_vs_size(void **state) {
  const char *path;
  int fd;
  mmf_t *m, *o;
  (void)state;
  fd = fx_file(NULL, (size_t)(3 * PS), &path);
  /* Python's D3 example. */
  m = fx_map(fd, PS, MMF_ACCESS_DEFAULT, 0);
  assert_int_equal(mmf_len(m), PS);
  assert_int_equal(mmf_size(m), 3 * PS);
  /* With an offset, size() still reports the whole file. */
  o = fx_map(fd, 0, MMF_ACCESS_READ, PS);
  assert_int_equal(mmf_len(o), 2 * PS);
  assert_int_equal(mmf_size(o), 3 * PS);
  assert_int_equal(mmf_offset(o), PS);
  o = fx_map(fd, PS, MMF_ACCESS_WRITE, 2 * PS);
  assert_int_equal(mmf_len(o), PS);
  assert_int_equal(mmf_size(o), 3 * PS);

  /* size() follows the file, len() the map. */
  assert_int_equal(ftruncate(fd, 5 * PS + 3), 0);
  assert_int_equal(mmf_size(m), 5 * PS + 3);
  assert_int_equal(mmf_size(o), 5 * PS + 3);
  assert_int_equal(mmf_len(m), PS);
  assert_int_equal(mmf_len(o), PS);
  assert_int_equal(ftruncate(fd, 3 * PS), 0);
  assert_int_equal(mmf_size(m), 3 * PS);

  /* Anonymous: size() is the length. */
  m = fx_map(-1, 5 * PS + 1, MMF_ACCESS_DEFAULT, 0);
  assert_int_equal(mmf_len(m), 5 * PS + 1);
  assert_int_equal(mmf_size(m), 5 * PS + 1);

  /* trackfd=False. */
  m = fx_open(fd, PS, MMF_MAP_SHARED, RW, 0, 0, 0);
  EXPECT_ERR(mmf_size(m), MMF_EVALUE, "can't get size with trackfd=False");
  assert_int_equal(mmf_len(m), PS);
  (void)path;
}

/* ---- closed maps (§C) ---------------------------------------------------- */

static void test_closed_map_operations(void **state) {
  int fd = fx_file(NULL, (size_t)(2 * PS), NULL);
  uint8_t buf[16];
  int64_t n = 123, r = 123, one = 1, zero = 0;
  void *p = NULL;
  char repr[64];
  mmf_t *m;
  (void)state;
  m = fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
  assert_int_equal(mmf_closed(m), 0);
  assert_int_equal(mmf_close(m), 0);
  assert_int_equal(mmf_closed(m), 1);

  EXPECT_ERR(mmf_len(m), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_size(m), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_tell(m), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_seek(m, 0, SEEK_SET, &n), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_seek(m, 0, 99, &n), MMF_ECLOSED, CLOSED_MSG);
  assert_int_equal(n, 123);
  EXPECT_ERR(mmf_read(m, 1, buf, sizeof buf, &n), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_read(m, -1, buf, 0, &n), MMF_ECLOSED, CLOSED_MSG);
  assert_int_equal(n, 123);
  EXPECT_ERR(mmf_read_byte(m), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_readline(m, buf, sizeof buf, &n), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_write(m, "x", 1), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_write(m, "", 0), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_write_byte(m, 1), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_find(m, "x", 1, NULL, NULL, &r), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_find(m, "", 0, &zero, NULL, &r), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_rfind(m, "x", 1, NULL, NULL, &r), MMF_ECLOSED, CLOSED_MSG);
  assert_int_equal(r, 123);
  EXPECT_ERR(mmf_get_item(m, 0), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_set_item(m, 0, 1), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_get_slice(m, NULL, &one, NULL, buf, sizeof buf, &n),
             MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_get_slice(m, NULL, NULL, &zero, buf, sizeof buf, &n),
             MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_set_slice(m, NULL, &one, NULL, "x", 1), MMF_ECLOSED,
             CLOSED_MSG);
  EXPECT_ERR(mmf_move(m, 0, 0, 0), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_flush(m, 0, -1), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_flush_flags(m, 0, -1, MMF_MS_ASYNC), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_madvise(m, MMF_MADV_NORMAL, 0, NULL), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_resize(m, PS), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_data(m, &p, &n), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_buffer_acquire(m, &p, &n, NULL), MMF_ECLOSED, CLOSED_MSG);
  assert_null(p);
  EXPECT_ERR(mmf_access(m), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_offset(m), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_reserved(m), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_set_flush_hook(m, count_hook, NULL), MMF_ECLOSED, CLOSED_MSG);
  /* write_byte converts its argument before it looks at the map. */
  EXPECT_ERR(mmf_write_byte(m, 256), MMF_EOVERFLOW,
             "unsigned byte integer is greater than maximum");
  EXPECT_ERR(mmf_write_byte(m, -1), MMF_EOVERFLOW,
             "unsigned byte integer is less than minimum");

  /* These work on a closed map. */
  assert_int_equal(mmf_closed(m), 1);
  assert_int_equal(mmf_seekable(m), 1);
  assert_int_equal(mmf_repr(m, repr, sizeof repr), 23);
  assert_string_equal(repr, "<mmap.mmap closed=True>");
  assert_int_equal(mmf_close(m), 0);
  assert_int_equal(mmf_close(m), 0);
  assert_int_equal(mmf_closed(m), 1);
  mmf_buffer_release(m); /* harmless */

  /* A NULL handle behaves as a closed one. */
  EXPECT_ERR(mmf_len(NULL), MMF_ECLOSED, CLOSED_MSG);
  EXPECT_ERR(mmf_read_byte(NULL), MMF_ECLOSED, CLOSED_MSG);
  assert_int_equal(mmf_closed(NULL), 1);
  assert_int_equal(mmf_seekable(NULL), 1);
  assert_int_equal(mmf_close(NULL), 0);
  mmf_free(NULL);
  mmf_buffer_release(NULL);
  mmf_repr(NULL, repr, sizeof repr);
  assert_string_equal(repr, "<mmap.mmap closed=True>");
}

/* C1: close() while buffers are exported. */
static void test_close_with_exports(void **state) {
  const char *path;
  int fd = fx_file("0123456789", 10, &path), before, ro = -1;
  void *p, *q;
  int64_t n;
  mmf_t *m;
  (void)state;
  before = count_fds();
  m = fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
  assert_int_equal(count_fds(), before + 1);
  assert_int_equal(mmf_buffer_acquire(m, &p, &n, &ro), 0);
  assert_ptr_equal(p, data_of(m));
  assert_int_equal(n, 10);
  assert_int_equal(ro, 0);
  assert_int_equal(mmf_buffer_acquire(m, &q, NULL, NULL), 0);
  assert_ptr_equal(p, q);

  EXPECT_ERR(mmf_close(m), MMF_EBUFFER, "cannot close exported pointers exist");
  assert_int_equal(mmf_closed(m), 0);
  assert_int_equal(mmf_len(m), 10);
  assert_memory_equal(p, "0123456789", 10); /* still mapped */
  EXPECT_ERR(mmf_resize(m, 20), MMF_EBUFFER,
             "mmap can't resize with extant buffers exported.");
  /* Everything else still works with exports. */
  assert_int_equal(mmf_write(m, "ab", 2), 2);
  assert_int_equal(mmf_flush(m, 0, -1), 0);

  mmf_buffer_release(m);
  EXPECT_ERR(mmf_close(m), MMF_EBUFFER, "cannot close exported pointers exist");
  EXPECT_ERR(mmf_resize(m, 20), MMF_EBUFFER,
             "mmap can't resize with extant buffers exported.");
  mmf_buffer_release(m);
  assert_int_equal(mmf_close(m), 0);
  assert_int_equal(mmf_closed(m), 1);
  assert_int_equal(count_fds(), before);
  expect_file(path, "ab23456789", 10);

  /* mmf_free() closes even with exports (Python's dealloc). */
  m = NULL;
  assert_int_equal(
      mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, MMF_ACCESS_WRITE, 0, 1), 0);
  assert_int_equal(mmf_buffer_acquire(m, &p, NULL, NULL), 0);
  assert_int_equal(count_fds(), before + 1);
  mmf_free(m);
  assert_int_equal(count_fds(), before);
}

/* C1: close() unmaps and closes the dup, and never msyncs. */
static int msync_calls;
static int counting_msync(void *addr, size_t len, int flags) {
  msync_calls++;
  return real.msync(addr, len, flags);
}

static void test_close_releases_and_no_msync(void **state) {
  const char *path;
  int fd = fx_file("0123456789", 10, &path), before = count_fds();
  mmf_t *m;
  (void)state;
  mmf__sys.msync = counting_msync;
  msync_calls = 0;
  m = fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
  assert_int_equal(count_fds(), before + 1);
  assert_int_equal(mmf_write(m, "abc", 3), 3);
  assert_int_equal(mmf_close(m), 0);
  assert_int_equal(count_fds(), before);
  assert_int_equal(msync_calls, 0);
  /* A shared map writes through the page cache without msync. */
  expect_file(path, "abc3456789", 10);

  m = NULL;
  assert_int_equal(
      mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, MMF_ACCESS_WRITE, 0, 1), 0);
  assert_int_equal(mmf_write(m, "X", 1), 1);
  mmf_free(m);
  assert_int_equal(msync_calls, 0);
  assert_int_equal(count_fds(), before);
  expect_file(path, "Xbc3456789", 10);

  /* flush does call msync. */
  m = fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  assert_int_equal(msync_calls, 1);
}

/* ---- repr (§N1) ---------------------------------------------------------- */

static void test_repr(void **state) {
  int fd = fx_file(NULL, (size_t)(3 * PS), NULL);
  char repr[200], want[200], small[10];
  size_t i;
  mmf_t *m;
  static const char *const names[] = {"ACCESS_DEFAULT", "ACCESS_READ",
                                      "ACCESS_WRITE", "ACCESS_COPY"};
  (void)state;
  for (i = 0; i < 4; i++) {
    m = fx_map(fd, PS, all_access[i], PS);
    assert_int_equal(mmf_seek(m, 10, SEEK_SET, NULL), 0);
    snprintf(want, sizeof want,
             "<mmap.mmap closed=False, access=%s, length=%lld, pos=10, "
             "offset=%lld>",
             names[i], (long long)PS, (long long)PS);
    assert_int_equal(mmf_repr(m, repr, sizeof repr), (int)strlen(want));
    assert_string_equal(repr, want);
    assert_int_equal(mmf_close(m), 0);
    assert_int_equal(mmf_repr(m, repr, sizeof repr), 23);
    assert_string_equal(repr, "<mmap.mmap closed=True>");
  }
  /* The derived access is shown. */
  m = fx_open(fd, 0, MMF_MAP_SHARED, MMF_PROT_READ, 0, 0, 1);
  snprintf(want, sizeof want,
           "<mmap.mmap closed=False, access=ACCESS_READ, length=%lld, "
           "pos=0, offset=0>",
           (long long)(3 * PS));
  mmf_repr(m, repr, sizeof repr);
  assert_string_equal(repr, want);
  /* Truncation is snprintf's. */
  assert_int_equal(mmf_repr(m, small, sizeof small), (int)strlen(want));
  assert_string_equal(small, "<mmap.mma");
  assert_int_equal(mmf_repr(m, NULL, 0), (int)strlen(want));
  /* pos beyond len after a shrink is shown as is. */
  m = fx_open(-1, 2 * PS, MMF_MAP_PRIVATE, RW, 0, 0, 1);
  assert_int_equal(mmf_seek(m, 0, SEEK_END, NULL), 0);
  assert_int_equal(mmf_resize(m, 100), 0);
  mmf_repr(m, repr, sizeof repr);
  snprintf(want, sizeof want,
           "<mmap.mmap closed=False, access=ACCESS_DEFAULT, length=100, "
           "pos=%lld, offset=0>",
           (long long)(2 * PS));
  assert_string_equal(repr, want);
}

/* ---- errors -------------------------------------------------------------- */

static void test_strerror_and_is_oserror(void **state) {
  (void)state;
  assert_string_equal(mmf_strerror(0), "success");
  assert_string_equal(mmf_strerror(MMF_EVALUE), "invalid value (ValueError)");
  assert_string_equal(mmf_strerror(MMF_ETYPE),
                      "operation not allowed on this map (TypeError)");
  assert_string_equal(mmf_strerror(MMF_EINDEX),
                      "index out of range (IndexError)");
  assert_string_equal(mmf_strerror(MMF_EOVERFLOW),
                      "value out of range (OverflowError)");
  assert_string_equal(mmf_strerror(MMF_EBUFFER),
                      "exported buffers exist (BufferError)");
  assert_string_equal(mmf_strerror(MMF_ECLOSED), "mmap closed or invalid");
  assert_string_equal(mmf_strerror(MMF_ENOMEM), "out of memory");
  assert_string_equal(mmf_strerror(-EINVAL), strerror(EINVAL));
  assert_string_equal(mmf_strerror(-EACCES), strerror(EACCES));
  assert_string_equal(mmf_strerror(-ENOSPC), strerror(ENOSPC));
  assert_string_equal(mmf_strerror(-EIO), strerror(EIO));
  assert_string_equal(mmf_strerror(-EBADF), strerror(EBADF));
  assert_string_equal(mmf_strerror(1), "unknown error");
  assert_string_equal(mmf_strerror(-30999), "unknown error");
  assert_string_equal(mmf_strerror(INT_MIN), "unknown error");
  assert_string_equal(mmf_strerror(INT_MAX), "unknown error");

  /* Every code stays out of Berkeley DB's range (-30800 to -30999) and
   * LMDB's (-30799 to -30780), and out of the storage engine's (-30700
   * and down, to -30799), so that a program using several of them can
   * tell the codes apart. */
  {
    static const int codes[] = {
#define MMF_CODE(name, value, text) name,
        MMF_ERRNO_MAP(MMF_CODE)
#undef MMF_CODE
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
      assert_false(codes[i] <= -30700 && codes[i] >= -30999);
      assert_false(mmf_is_oserror(codes[i]));
    }
  }

  assert_true(mmf_is_oserror(-EINVAL));
  assert_true(mmf_is_oserror(-1));
  assert_true(mmf_is_oserror(-4095));
  assert_false(mmf_is_oserror(-4096));
  assert_false(mmf_is_oserror(0));
  assert_false(mmf_is_oserror(1));
  assert_false(mmf_is_oserror(MMF_EVALUE));
  assert_false(mmf_is_oserror(MMF_ETYPE));
  assert_false(mmf_is_oserror(MMF_EINDEX));
  assert_false(mmf_is_oserror(MMF_EOVERFLOW));
  assert_false(mmf_is_oserror(MMF_EBUFFER));
  assert_false(mmf_is_oserror(MMF_ECLOSED));
  assert_false(mmf_is_oserror(MMF_ENOMEM));
  /* Every library code is far below any errno. */
  assert_true(MMF_EVALUE < -4096 && MMF_ENOMEM < -4096);
}

static void *fail_in_thread(void *arg) {
  mmf_t *m = NULL;
  int rc = mmf_open(&m, -1, -1, MMF_MAP_SHARED, RW, 0, 0, 1);
  snprintf(arg, 128, "%d %s", rc, mmf_errmsg());
  return NULL;
}

/* mmf_errmsg() is per thread. */
static void test_errmsg_is_thread_local(void **state) {
  char theirs[128], want[128];
  pthread_t t;
  mmf_t *m = fx_map(-1, PS, MMF_ACCESS_DEFAULT, 0);
  (void)state;
  EXPECT_ERR(mmf_seek(m, 0, 7, NULL), MMF_EVALUE, "unknown seek type");
  assert_int_equal(pthread_create(&t, NULL, fail_in_thread, theirs), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  snprintf(want, sizeof want, "%d %s", MMF_EOVERFLOW,
           "memory mapped length must be positive");
  assert_string_equal(theirs, want);
  assert_string_equal(mmf_errmsg(), "unknown seek type");
}

/* ---- fault injection at open --------------------------------------------- */

static int mmap_calls, mmap_fail_at, last_dup = -1;
static void *mmap_placeholder;
static void *failing_mmap(void *addr, size_t len, int prot, int flags, int fd,
                          off_t off) {
  void *p;
  if (++mmap_calls == mmap_fail_at) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  p = real.mmap(addr, len, prot, flags, fd, off);
  if (prot == PROT_NONE)
    mmap_placeholder = p;
  return p;
}
static int recording_dup(int fd) {
  last_dup = real.dup(fd);
  return last_dup;
}
static int failing_dup(int fd) {
  (void)fd;
  errno = EMFILE;
  return -1;
}
static int failing_fstat(int fd, struct stat *st) {
  (void)fd;
  (void)st;
  errno = EIO;
  return -1;
}

/* Probes whether [addr, addr+len) is free address space. */
static int range_is_free(void *addr, size_t len) {
  void *p = mmap(addr, len, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED)
    return 0;
  munmap(p, len);
  return p == addr;
}

static void test_fault_mmap_in_open(void **state) {
  int fd = fx_file(NULL, (size_t)(2 * PS), NULL), before = count_fds();
  mmf_t *m = SENTINEL;
  (void)state;
  mmf__sys.mmap = failing_mmap;
  mmf__sys.dup = recording_dup;

  /* Plain open: the one mmap fails; the dup is closed. */
  mmap_calls = 0;
  mmap_fail_at = 1;
  last_dup = -1;
  EXPECT_OS(mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, 0, 0, 1), ENOMEM, "mmap");
  assert_ptr_equal(m, SENTINEL);
  assert_true(last_dup >= 0);
  errno = 0;
  assert_int_equal(fcntl(last_dup, F_GETFD), -1);
  assert_int_equal(errno, EBADF);
  assert_int_equal(count_fds(), before);

  /* Reserved open, the placeholder fails. */
  mmap_calls = 0;
  mmap_fail_at = 1;
  last_dup = -1;
  EXPECT_OS(mmf_open_reserved(&m, fd, PS, MMF_MAP_SHARED, RW, 0, 0, 1, 16 * PS),
            ENOMEM, "mmap");
  assert_int_equal(count_fds(), before);

  /* Reserved open, the map over the placeholder fails: the placeholder is
   * returned and the dup closed. */
  mmap_calls = 0;
  mmap_fail_at = 2;
  mmap_placeholder = NULL;
  last_dup = -1;
  EXPECT_OS(mmf_open_reserved(&m, fd, PS, MMF_MAP_SHARED, RW, 0, 0, 1, 16 * PS),
            ENOMEM, "mmap");
  assert_ptr_equal(m, SENTINEL);
  assert_non_null(mmap_placeholder);
  assert_true(range_is_free(mmap_placeholder, (size_t)(16 * PS)));
  errno = 0;
  assert_int_equal(fcntl(last_dup, F_GETFD), -1);
  assert_int_equal(errno, EBADF);
  assert_int_equal(count_fds(), before);

  /* Anonymous: nothing to close. */
  mmap_calls = 0;
  mmap_fail_at = 1;
  EXPECT_OS(mmf_open(&m, -1, PS, MMF_MAP_SHARED, RW, 0, 0, 1), ENOMEM, "mmap");
  assert_int_equal(count_fds(), before);

  /* Back to normal. */
  mmap_fail_at = 0;
  m = fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
  assert_int_equal(mmf_len(m), 2 * PS);
  assert_int_equal(count_fds(), before + 1);
}

static void test_fault_dup_and_fstat(void **state) {
  int fd = fx_file(NULL, (size_t)(2 * PS), NULL), before = count_fds();
  mmf_t *m = SENTINEL;
  (void)state;
  mmf__sys.dup = failing_dup;
  EXPECT_OS(mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, 0, 0, 1), EMFILE, "dup");
  assert_ptr_equal(m, SENTINEL);
  assert_int_equal(count_fds(), before);
  /* Without trackfd there is no dup. */
  m = fx_open(fd, 0, MMF_MAP_SHARED, RW, 0, 0, 0);
  assert_int_equal(mmf_len(m), 2 * PS);
  mmf__sys_reset();

  /* A failing fstat skips the size checks, like a non-regular file: length
   * 0 reaches mmap(2), which refuses it. */
  mmf__sys.fstat = failing_fstat;
  m = SENTINEL;
  EXPECT_OS(mmf_open(&m, fd, 0, MMF_MAP_SHARED, RW, 0, 0, 1), EINVAL, "mmap");
  assert_ptr_equal(m, SENTINEL);
  assert_int_equal(count_fds(), before);
  m = fx_map(fd, PS, MMF_ACCESS_WRITE, 0);
  /* And size() reports the fstat failure. */
  EXPECT_OS(mmf_size(m), EIO, "fstat");
  mmf__sys_reset();
  assert_int_equal(mmf_size(m), 2 * PS);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_constants),
      T(test_open_empty_file),
      T(test_open_length0_whole_file),
      T(test_open_length0_offset_past_end),
      T(test_open_beyond_file),
      T(test_open_unaligned_offset),
      T(test_open_negative_length_offset),
      T(test_open_access_and_flags),
      T(test_open_access_from_prot),
      T(test_open_anonymous),
      T(test_open_bad_fd),
      T(test_open_rdonly_fd),
      T(test_open_non_regular_fd),
      T(test_open_trackfd),
      T(test_access_read_refuses_writes),
      T(test_access_copy),
      T(test_access_write_reaches_file),
      T(test_private_default_writable_resizable),
      T(test_len_vs_size),
      T(test_closed_map_operations),
      T(test_close_with_exports),
      T(test_close_releases_and_no_msync),
      T(test_repr),
      T(test_strerror_and_is_oserror),
      T(test_errmsg_is_thread_local),
      T(test_fault_mmap_in_open),
      T(test_fault_dup_and_fstat),
  };
#undef T
  PS = mmf_pagesize();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
