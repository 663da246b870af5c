/*
 * test_mmf_resize.c — resize of the mapping core (§K): file-backed and
 * anonymous maps, the order of its checks, the position after a shrink,
 * resize(0); address-space reservations (mmf_open_reserved); files over
 * 4 GiB; and failures injected through mmf__sys around resize and flush.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "mmf_fixture.h"

#define I(v) (&(const int64_t){(v)})
#define GiB  ((int64_t)1 << 30)

/* Probes whether [addr, addr+len) is free address space. */
static int range_is_free(void *addr, size_t len) {
  void *p = mmap(addr, len, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED)
    return 0;
  munmap(p, len);
  return p == addr;
}

static mmf_t *fx_reserved(int fd, int64_t length, int flags, int access,
                          int64_t offset, int64_t reserve) {
  mmf_t *m = NULL;
  int rc =
      mmf_open_reserved(&m, fd, length, flags, RW, access, offset, 1, reserve);
  if (rc != 0)
    fail_msg("mmf_open_reserved: %d %s", rc, mmf_errmsg());
  return fx_keep(m);
}

/* The file holds `zeros` zero bytes from `off`. */
static void expect_file_zeros(const char *path, int64_t off, int64_t n) {
  size_t len = 0;
  int64_t i;
  uint8_t *got = tu_slurp(path, &len);
  assert_true(off + n <= (int64_t)len);
  for (i = off; i < off + n; i++)
    if (got[i] != 0) {
      free(got);
      fail_msg("file byte %lld is not zero", (long long)i);
    }
  free(got);
}

static void expect_map_zeros(const mmf_t *m, int64_t off, int64_t n) {
  const uint8_t *p = data_of(m);
  int64_t i;
  assert_true(off + n <= mmf_len(m));
  for (i = off; i < off + n; i++)
    if (p[i] != 0)
      fail_msg("map byte %lld is not zero", (long long)i);
}

static int large_files_supported(void) {
  return sizeof(void *) >= 8 && sizeof(off_t) >= 8;
}

/* A sparse file of `size` bytes. */
static int fx_sparse(int64_t size, const char **path) {
  int fd = fx_file(NULL, 0, path);
  if (ftruncate(fd, (off_t)size) != 0)
    fail_msg("ftruncate to %lld: %s", (long long)size, strerror(errno));
  return fd;
}

/* ---- resize of file-backed maps (§K) ------------------------------------- */

/* Python's test_basic, resize part, and growing again. */
static void test_resize_file_up_down(void **state) {
  const char *path;
  size_t len = (size_t)(2 * PS);
  uint8_t *buf = calloc(1, len), *tail = malloc((size_t)PS);
  int fd;
  mmf_t *m;
  (void)state;
  memcpy(buf + PS, "foo", 3);
  fd = fx_file(buf, len, &path);
  m = fx_map(fd, (int64_t)len, MMF_ACCESS_DEFAULT, 0);
  assert_int_equal(mmf_set_slice(m, I(PS + 3), I(PS + 6), NULL, "bar", 3), 0);
  memcpy(buf + PS + 3, "bar", 3);
  assert_int_equal(mmf_seek(m, 100, SEEK_SET, NULL), 0);

  assert_int_equal(mmf_resize(m, 512), 0);
  assert_int_equal(mmf_len(m), 512);
  assert_int_equal(mmf_tell(m), 100);
  EXPECT_ERR(mmf_seek(m, 513, SEEK_SET, NULL), MMF_EVALUE, "seek out of range");
  assert_int_equal(mmf_seek(m, 512, SEEK_SET, NULL), 0);
  assert_int_equal(tu_file_size(path), 512);
  assert_int_equal(mmf_size(m), 512);
  expect_map(m, 0, buf, 512);
  expect_file(path, buf, 512);

  /* Grow: the file grows with zeros and the map shows them. */
  assert_int_equal(mmf_resize(m, 3 * PS), 0);
  assert_int_equal(mmf_len(m), 3 * PS);
  assert_int_equal(mmf_tell(m), 512);
  assert_int_equal(tu_file_size(path), 3 * PS);
  assert_int_equal(mmf_size(m), 3 * PS);
  expect_map(m, 0, buf, 512);
  expect_map_zeros(m, 512, 3 * PS - 512);
  expect_file_zeros(path, 512, 3 * PS - 512);
  /* The new bytes are the file's. */
  pattern(tail, (size_t)PS, 11);
  assert_int_equal(mmf_set_slice(m, I(2 * PS), NULL, NULL, tail, (size_t)PS),
                   0);
  assert_int_equal(mmf_flush(m, 2 * PS, -1), 0);
  {
    uint8_t *got;
    size_t n;
    got = tu_slurp(path, &n);
    assert_int_equal(n, 3 * PS);
    assert_memory_equal(got, buf, 512);
    assert_memory_equal(got + 2 * PS, tail, (size_t)PS);
    free(got);
  }
  /* Same size: fine. */
  assert_int_equal(mmf_resize(m, 3 * PS), 0);
  assert_int_equal(mmf_len(m), 3 * PS);
  free(buf);
  free(tail);
}

/* Python's test_offset: resize keeps the bytes before the offset. */
static void test_resize_with_offset(void **state) {
  const char *path;
  const int64_t half = mmf_allocationgranularity();
  uint8_t *buf = malloc((size_t)(2 * half));
  uint8_t got3[3];
  int64_t n;
  int fd;
  mmf_t *m;
  (void)state;
  pattern(buf, (size_t)(2 * half), 21);
  memcpy(buf + half, "foo", 3);
  fd = fx_file(buf, (size_t)(2 * half), &path);
  m = fx_map(fd, 0, MMF_ACCESS_DEFAULT, half);
  assert_int_equal(mmf_len(m), half);
  assert_int_equal(mmf_get_slice(m, I(0), I(3), NULL, got3, 3, &n), 0);
  assert_memory_equal(got3, "foo", 3);

  assert_int_equal(mmf_resize(m, 512), 0);
  assert_int_equal(mmf_len(m), 512);
  EXPECT_ERR(mmf_seek(m, 513, SEEK_SET, NULL), MMF_EVALUE, "seek out of range");
  assert_int_equal(tu_file_size(path), half + 512);
  assert_int_equal(mmf_size(m), half + 512);
  assert_int_equal(mmf_offset(m), half);
  expect_file(path, buf, (size_t)(half + 512));
  expect_map(m, 0, buf + half, 512);

  assert_int_equal(mmf_resize(m, 2 * PS + 5), 0);
  assert_int_equal(tu_file_size(path), half + 2 * PS + 5);
  assert_int_equal(mmf_size(m), half + 2 * PS + 5);
  expect_map(m, 0, buf + half, 512);
  expect_map_zeros(m, 512, 2 * PS + 5 - 512);
  expect_file_zeros(path, half + 512, 2 * PS + 5 - 512);
  assert_int_equal(mmf_write(m, "end", 3), 3);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  {
    uint8_t *got;
    size_t len;
    got = tu_slurp(path, &len);
    assert_memory_equal(got, buf, (size_t)half); /* before the offset */
    assert_memory_equal(got + half, "end", 3);
    free(got);
  }
  free(buf);
}

/* K2 and Python's test_resize_up/down_anonymous_mapping. */
static void test_resize_anonymous(void **state) {
  uint8_t *data = malloc((size_t)(2 * PS));
  mmf_t *m;
  (void)state;
  pattern(data, (size_t)(2 * PS), 31);

  /* Shared anonymous: no growing on Linux, shrinking is fine. */
  m = fx_map(-1, PS, MMF_ACCESS_DEFAULT, 0);
  memcpy(data_of(m), data, (size_t)PS);
  EXPECT_ERR(mmf_resize(m, 2 * PS), MMF_EVALUE,
             "mmap: can't expand a shared anonymous mapping on Linux");
  EXPECT_ERR(mmf_resize(m, PS + 1), MMF_EVALUE,
             "mmap: can't expand a shared anonymous mapping on Linux");
  assert_int_equal(mmf_len(m), PS);
  expect_map(m, 0, data, (size_t)PS);
  assert_int_equal(mmf_resize(m, PS), 0); /* not larger */
  assert_int_equal(mmf_resize(m, 100), 0);
  assert_int_equal(mmf_len(m), 100);
  assert_int_equal(mmf_size(m), 100);
  expect_map(m, 0, data, 100);
  EXPECT_ERR(mmf_resize(m, 101), MMF_EVALUE,
             "mmap: can't expand a shared anonymous mapping on Linux");
  /* The size check comes first. */
  EXPECT_ERR(mmf_resize(m, -1), MMF_EVALUE, "new size out of range");
  /* Also for a derived ACCESS_WRITE map. */
  m = fx_open(-1, PS, MMF_MAP_SHARED, MMF_PROT_WRITE, 0, 0, 1);
  EXPECT_ERR(mmf_resize(m, 2 * PS), MMF_EVALUE,
             "mmap: can't expand a shared anonymous mapping on Linux");

  /* Private anonymous grows with zeros and shrinks. */
  m = fx_open(-1, PS, MMF_MAP_PRIVATE, RW, 0, 0, 1);
  memcpy(data_of(m), data, (size_t)PS);
  assert_int_equal(mmf_resize(m, 2 * PS), 0);
  assert_int_equal(mmf_len(m), 2 * PS);
  assert_int_equal(mmf_size(m), 2 * PS);
  expect_map(m, 0, data, (size_t)PS);
  expect_map_zeros(m, PS, PS);
  memcpy(data_of(m), data, (size_t)(2 * PS));
  assert_int_equal(mmf_resize(m, PS), 0);
  expect_map(m, 0, data, (size_t)PS);
  assert_int_equal(mmf_resize(m, 8 * PS), 0);
  expect_map(m, 0, data, (size_t)PS);
  expect_map_zeros(m, PS, 7 * PS);
  assert_int_equal(mmf_resize(m, 3), 0);
  expect_map(m, 0, data, 3);
  free(data);
}

/* K1: the order of the checks. */
static void test_resize_check_order(void **state) {
  int fd = fx_file(NULL, (size_t)(2 * PS), NULL), zero;
  mmf_t *m, *r, *c, *t, *o;
  (void)state;
  r = fx_map(fd, 0, MMF_ACCESS_READ, 0);
  c = fx_map(fd, 0, MMF_ACCESS_COPY, 0);
  t = fx_open(fd, 0, MMF_MAP_SHARED, MMF_PROT_READ, 0, 0, 0);
  m = fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
  /* Exports first, whatever else is wrong. */
  assert_int_equal(mmf_buffer_acquire(r, NULL, NULL, NULL), 0);
  assert_int_equal(mmf_buffer_acquire(t, NULL, NULL, NULL), 0);
  EXPECT_ERR(mmf_resize(r, -1), MMF_EBUFFER,
             "mmap can't resize with extant buffers exported.");
  EXPECT_ERR(mmf_resize(t, -1), MMF_EBUFFER,
             "mmap can't resize with extant buffers exported.");
  mmf_buffer_release(r);
  mmf_buffer_release(t);
  /* Then trackfd (even on a read-only map), then access, then the size. */
  EXPECT_ERR(mmf_resize(t, -1), MMF_EVALUE,
             "mmap can't resize with trackfd=False.");
  EXPECT_ERR(mmf_resize(r, -1), MMF_ETYPE, NORESIZE_MSG);
  EXPECT_ERR(mmf_resize(c, -1), MMF_ETYPE, NORESIZE_MSG);
  EXPECT_ERR(mmf_resize(m, -1), MMF_EVALUE, "new size out of range");
  EXPECT_ERR(mmf_resize(m, INT64_MIN), MMF_EVALUE, "new size out of range");
  /* offset + newsize must not overflow. */
  o = fx_map(fd, PS, MMF_ACCESS_WRITE, PS);
  EXPECT_ERR(mmf_resize(o, INT64_MAX), MMF_EVALUE, "new size out of range");
  EXPECT_ERR(mmf_resize(o, INT64_MAX - PS + 1), MMF_EVALUE,
             "new size out of range");
  assert_int_equal(mmf_len(o), PS);
  assert_int_equal(mmf_len(m), 2 * PS);
  assert_int_equal(mmf_size(m), 2 * PS);
  /* An ftruncate that fails reports errno (a non-regular file here). */
  zero = fx_fd(open("/dev/zero", O_RDWR));
  o = fx_map(zero, PS, MMF_ACCESS_WRITE, 0);
  EXPECT_OS(mmf_resize(o, 2 * PS), EINVAL, "ftruncate");
  assert_int_equal(mmf_len(o), PS);
  /* Closed. */
  assert_int_equal(mmf_close(m), 0);
  EXPECT_ERR(mmf_resize(m, -1), MMF_ECLOSED, CLOSED_MSG);
}

static void test_resize_trackfd_off(void **state) {
  const char *path;
  int fd = fx_file("0123456789", 10, &path);
  mmf_t *m = fx_open(fd, 0, MMF_MAP_SHARED, RW, MMF_ACCESS_WRITE, 0, 0);
  (void)state;
  EXPECT_ERR(mmf_resize(m, 20), MMF_EVALUE,
             "mmap can't resize with trackfd=False.");
  EXPECT_ERR(mmf_resize(m, 5), MMF_EVALUE,
             "mmap can't resize with trackfd=False.");
  assert_int_equal(mmf_len(m), 10);
  assert_int_equal(tu_file_size(path), 10);
  expect_map(m, 0, "0123456789", 10);
}

static void test_resize_with_exports(void **state) {
  const char *path;
  int fd = fx_file("0123456789", 10, &path);
  mmf_t *m = fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
  void *p;
  (void)state;
  assert_int_equal(mmf_buffer_acquire(m, &p, NULL, NULL), 0);
  EXPECT_ERR(mmf_resize(m, 20), MMF_EBUFFER,
             "mmap can't resize with extant buffers exported.");
  EXPECT_ERR(mmf_resize(m, 5), MMF_EBUFFER,
             "mmap can't resize with extant buffers exported.");
  assert_int_equal(mmf_len(m), 10);
  assert_int_equal(tu_file_size(path), 10);
  assert_memory_equal(p, "0123456789", 10);
  mmf_buffer_release(m);
  assert_int_equal(mmf_resize(m, 5), 0);
  assert_int_equal(tu_file_size(path), 5);
}

/* K4: resize(0) truncates the file to offset, then mremap says EINVAL and
 * the map keeps its length. */
static void test_resize_zero_quirk(void **state) {
  const char *path;
  int fd = fx_file(NULL, (size_t)(3 * PS), &path);
  mmf_t *m = fx_map(fd, PS, MMF_ACCESS_WRITE, PS);
  uint8_t *p = data_of(m);
  (void)state;
  EXPECT_OS(mmf_resize(m, 0), EINVAL, "mremap");
  assert_int_equal(tu_file_size(path), PS);
  assert_int_equal(mmf_size(m), PS);
  assert_int_equal(mmf_len(m), PS);
  assert_ptr_equal(data_of(m), p);
  /* (The mapped bytes now lie beyond EOF: not touched.) */
  assert_int_equal(mmf_close(m), 0);

  /* Same with a reservation. */
  fd = fx_file(NULL, (size_t)(3 * PS), &path);
  m = fx_reserved(fd, PS, MMF_MAP_SHARED, MMF_ACCESS_WRITE, PS, 8 * PS);
  EXPECT_OS(mmf_resize(m, 0), EINVAL, "mremap");
  assert_int_equal(tu_file_size(path), PS);
  assert_int_equal(mmf_len(m), PS);
  assert_int_equal(mmf_reserved(m), 8 * PS);
  assert_int_equal(mmf_close(m), 0);

  /* Anonymous: no file, the map is intact. */
  m = fx_open(-1, PS, MMF_MAP_PRIVATE, RW, 0, 0, 1);
  assert_int_equal(mmf_write(m, "keep", 4), 4);
  EXPECT_OS(mmf_resize(m, 0), EINVAL, "mremap");
  assert_int_equal(mmf_len(m), PS);
  expect_map(m, 0, "keep", 4);
  m = fx_map(-1, PS, MMF_ACCESS_DEFAULT, 0);
  EXPECT_OS(mmf_resize(m, 0), EINVAL, "mremap");
}

/* K8 and Python's test_resize_past_pos: the position is not clamped. */
static void test_resize_past_pos(void **state) {
  uint8_t buf[8192];
  int64_t n, r;
  mmf_t *m;
  int pass;
  (void)state;
  for (pass = 0; pass < 2; pass++) {
    if (pass == 0)
      m = fx_map(-1, 8192, MMF_ACCESS_DEFAULT, 0);
    else
      m = fx_map(fx_file(NULL, 8192, NULL), 0, MMF_ACCESS_WRITE, 0);
    assert_int_equal(mmf_read(m, 5000, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 5000);
    assert_int_equal(mmf_resize(m, 4096), 0);
    assert_int_equal(mmf_tell(m), 5000);
    assert_int_equal(mmf_read(m, 14, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(mmf_read(m, -1, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(mmf_readline(m, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 0);
    EXPECT_ERR(mmf_read_byte(m), MMF_EVALUE, "read byte out of range");
    EXPECT_ERR(mmf_write_byte(m, 42), MMF_EVALUE, "write byte out of range");
    EXPECT_ERR(mmf_write(m, "abc", 3), MMF_EVALUE, "data out of range");
    EXPECT_ERR(mmf_write(m, "", 0), MMF_EVALUE, "data out of range");
    EXPECT_ERR(mmf_seek(m, 0, SEEK_CUR, NULL), MMF_EVALUE, "seek out of range");
    EXPECT_ERR(mmf_seek(m, -1, SEEK_CUR, NULL), MMF_EVALUE,
               "seek out of range");
    /* The default search start is beyond the end. */
    assert_int_equal(mmf_find(m, "", 0, NULL, NULL, &r), 0);
    assert_int_equal(r, -1);
    assert_int_equal(mmf_rfind(m, "", 0, NULL, NULL, &r), 0);
    assert_int_equal(r, -1);
    assert_int_equal(mmf_find(m, "\0", 1, NULL, NULL, &r), 0);
    assert_int_equal(r, -1);
    assert_int_equal(mmf_tell(m), 5000);
    /* Going back into range is possible. */
    assert_int_equal(mmf_seek(m, -904, SEEK_CUR, &n), 0);
    assert_int_equal(n, 4096);
    assert_int_equal(mmf_seek(m, 5000, SEEK_SET, NULL), MMF_EVALUE);
    assert_int_equal(mmf_seek(m, 0, SEEK_SET, NULL), 0);
    assert_int_equal(mmf_tell(m), 0);
  }
  /* Growing back makes the old position valid again. */
  m = fx_open(-1, 8192, MMF_MAP_PRIVATE, RW, 0, 0, 1);
  assert_int_equal(mmf_seek(m, 5000, SEEK_SET, NULL), 0);
  assert_int_equal(mmf_resize(m, 4096), 0);
  EXPECT_ERR(mmf_read_byte(m), MMF_EVALUE, "read byte out of range");
  assert_int_equal(mmf_resize(m, 8192), 0);
  assert_int_equal(mmf_write_byte(m, 42), 0);
  assert_int_equal(mmf_tell(m), 5001);
  assert_int_equal(mmf_get_item(m, 5000), 42);
}

/* A random walk of writes, external writes and resizes of a shared file
 * map (with an offset) against a model of the file. With reserve > 0 the
 * map is reserved; the base must not move while within the reservation. */
static void resize_walk(int64_t reserve) {
  const char *path;
  const int64_t off = PS, maxlen = 9 * PS;
  uint8_t *model = calloc(1, (size_t)(off + maxlen)), *chunk = malloc(4096);
  int64_t flen, len, step;
  int fd;
  mmf_t *m;
  uint64_t seed = 12345;
  pattern(model, (size_t)(off + 3 * PS), 41);
  flen = off + 3 * PS;
  fd = fx_file(model, (size_t)flen, &path);
  m = reserve > 0
          ? fx_reserved(fd, 0, MMF_MAP_SHARED, MMF_ACCESS_WRITE, off, reserve)
          : fx_map(fd, 0, MMF_ACCESS_WRITE, off);
  len = 3 * PS;
  for (step = 0; step < 300; step++) {
    uint64_t op;
    seed = seed * 6364136223846793005u + 1442695040888963407u;
    op = (seed >> 33) % 4;
    if (op == 0) { /* write through the map */
      int64_t at = (int64_t)((seed >> 13) % (uint64_t)len);
      int64_t n = (int64_t)((seed >> 40) % 4096);
      if (n > len - at)
        n = len - at;
      pattern(chunk, (size_t)n, (unsigned)step);
      assert_int_equal(mmf_set_slice(m, &at, I(at + n), NULL, chunk, (size_t)n),
                       0);
      memcpy(model + off + at, chunk, (size_t)n);
    } else if (op == 1) { /* write(2) to the file, inside the map */
      int64_t at = (int64_t)((seed >> 13) % (uint64_t)len);
      int64_t n = len - at < 100 ? len - at : 100;
      pattern(chunk, (size_t)n, (unsigned)step + 1000);
      assert_int_equal(pwrite(fd, chunk, (size_t)n, (off_t)(off + at)), n);
      memcpy(model + off + at, chunk, (size_t)n);
    } else { /* resize */
      int64_t newlen = 1 + (int64_t)((seed >> 17) % (uint64_t)maxlen);
      void *before = data_of(m);
      int64_t res = mmf_reserved(m);
      if (step % 7 == 0)
        newlen = newlen / PS * PS + PS; /* page multiples too */
      if (newlen > maxlen)
        newlen = maxlen;
      assert_int_equal(mmf_resize(m, newlen), 0);
      if (newlen > len)
        memset(model + off + len, 0, (size_t)(newlen - len));
      len = newlen;
      flen = off + len;
      if (res > 0 && newlen <= res) {
        assert_ptr_equal(data_of(m), before);
        assert_int_equal(mmf_reserved(m), res);
      } else if (res > 0) {
        /* Moved out of the reservation, which is released entirely. */
        assert_int_equal(mmf_reserved(m), 0);
        assert_true(data_of(m) != before);
        assert_true(range_is_free(before, (size_t)res));
      }
    }
    assert_int_equal(mmf_len(m), len);
    assert_int_equal(mmf_size(m), flen);
    expect_map(m, 0, model + off, (size_t)len);
    if (step % 10 == 0) {
      assert_int_equal(mmf_flush(m, 0, -1), 0);
      expect_file(path, model, (size_t)flen);
    }
  }
  assert_int_equal(mmf_close(m), 0);
  expect_file(path, model, (size_t)flen);
  free(model);
  free(chunk);
}

static void test_resize_file_model(void **state) {
  (void)state;
  resize_walk(0);
}

static void test_resize_file_model_reserved(void **state) {
  (void)state;
  resize_walk(6 * PS);
}

/* ---- reservations (mmf_open_reserved) ------------------------------------ */

static void test_reserved_shared_file(void **state) {
  const char *path;
  uint8_t *buf = malloc((size_t)(17 * PS));
  uint8_t *p, *q;
  int fd;
  mmf_t *m;
  (void)state;
  pattern(buf, (size_t)PS, 51);
  fd = fx_file(buf, (size_t)PS, &path);
  m = fx_reserved(fd, 0, MMF_MAP_SHARED, MMF_ACCESS_WRITE, 0, 16 * PS);
  assert_int_equal(mmf_reserved(m), 16 * PS);
  assert_int_equal(mmf_len(m), PS);
  p = data_of(m);

  assert_int_equal(mmf_resize(m, 5 * PS), 0);
  assert_ptr_equal(data_of(m), p);
  assert_int_equal(mmf_reserved(m), 16 * PS);
  assert_int_equal(tu_file_size(path), 5 * PS);
  expect_map(m, 0, buf, (size_t)PS);
  expect_map_zeros(m, PS, 4 * PS);
  pattern(buf + PS, (size_t)(4 * PS), 52);
  memcpy(p + PS, buf + PS, (size_t)(4 * PS));

  assert_int_equal(mmf_resize(m, 2 * PS + 100), 0);
  assert_ptr_equal(data_of(m), p);
  assert_int_equal(tu_file_size(path), 2 * PS + 100);
  expect_map(m, 0, buf, (size_t)(2 * PS + 100));

  assert_int_equal(mmf_resize(m, 16 * PS), 0);
  assert_ptr_equal(data_of(m), p);
  assert_int_equal(mmf_reserved(m), 16 * PS);
  memset(buf + 2 * PS + 100, 0, (size_t)(14 * PS - 100));
  expect_map(m, 0, buf, (size_t)(16 * PS));
  assert_int_equal(mmf_set_item(m, -1, 0x77), 0);
  buf[16 * PS - 1] = 0x77;
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  expect_file(path, buf, (size_t)(16 * PS));

  /* Beyond the reservation: the map grows like a plain one (mremap may
   * move it, or grow it in place when the pages after it are free), the
   * reservation is gone, and a moved map's old address space returned. */
  assert_int_equal(mmf_resize(m, 17 * PS), 0);
  q = data_of(m);
  assert_int_equal(mmf_reserved(m), 0);
  assert_int_equal(mmf_len(m), 17 * PS);
  expect_map(m, 0, buf, (size_t)(16 * PS));
  expect_map_zeros(m, 16 * PS, PS);
  assert_int_equal(tu_file_size(path), 17 * PS);
  if (q != p)
    assert_true(range_is_free(p, (size_t)(16 * PS)));
  /* And it resizes as a plain map from then on. */
  assert_int_equal(mmf_resize(m, PS), 0);
  expect_map(m, 0, buf, (size_t)PS);
  assert_int_equal(tu_file_size(path), PS);
  free(buf);
}

/* MAP_PRIVATE file maps keep their private changes across a grow. */
static void test_reserved_private_file(void **state) {
  const char *path;
  uint8_t *buf = malloc((size_t)(2 * PS));
  uint8_t *p;
  int fd;
  mmf_t *m;
  (void)state;
  pattern(buf, (size_t)(2 * PS), 61);
  fd = fx_file(buf, (size_t)(2 * PS), &path);
  m = fx_reserved(fd, 0, MMF_MAP_PRIVATE, MMF_ACCESS_DEFAULT, 0, 8 * PS);
  assert_int_equal(mmf_access(m), MMF_ACCESS_DEFAULT);
  p = data_of(m);
  assert_int_equal(mmf_write(m, "PRIV", 4), 4);

  assert_int_equal(mmf_resize(m, 4 * PS), 0);
  assert_ptr_equal(data_of(m), p);
  assert_int_equal(tu_file_size(path), 4 * PS);
  expect_map(m, 0, "PRIV", 4);
  expect_map(m, 4, buf + 4, (size_t)(2 * PS - 4));
  expect_map_zeros(m, 2 * PS, 2 * PS);
  /* Untouched pages of a private map show the file. */
  assert_int_equal(pwrite(fd, "FILE", 4, 3 * PS), 4);
  expect_map(m, 3 * PS, "FILE", 4);
  /* The file never sees the private bytes. */
  {
    uint8_t *got;
    size_t n;
    got = tu_slurp(path, &n);
    assert_int_equal(n, 4 * PS);
    assert_memory_equal(got, buf, 4);
    free(got);
  }
  /* Beyond the reservation: moved, private bytes kept, and the whole old
   * reservation (map and unused placeholder) returned. */
  assert_int_equal(mmf_resize(m, 10 * PS), 0);
  assert_int_equal(mmf_reserved(m), 0);
  assert_true(data_of(m) != p);
  assert_true(range_is_free(p, (size_t)(8 * PS)));
  expect_map(m, 0, "PRIV", 4);
  expect_map(m, 4, buf + 4, (size_t)(2 * PS - 4));
  expect_map(m, 3 * PS, "FILE", 4);
  assert_int_equal(tu_file_size(path), 10 * PS);
  /* Shrinking keeps them too. */
  assert_int_equal(mmf_resize(m, PS), 0);
  expect_map(m, 0, "PRIV", 4);
  assert_int_equal(tu_file_size(path), PS);
  free(buf);
}

static void test_reserved_anonymous(void **state) {
  uint8_t *buf = malloc((size_t)PS), *p;
  mmf_t *m;
  (void)state;
  pattern(buf, (size_t)PS, 71);
  m = fx_reserved(-1, PS, MMF_MAP_PRIVATE, MMF_ACCESS_DEFAULT, 0, 8 * PS);
  p = data_of(m);
  memcpy(p, buf, (size_t)PS);
  assert_int_equal(mmf_resize(m, 3 * PS), 0);
  assert_ptr_equal(data_of(m), p);
  expect_map(m, 0, buf, (size_t)PS);
  expect_map_zeros(m, PS, 2 * PS);
  memset(p + PS, 0xee, (size_t)(2 * PS));
  assert_int_equal(mmf_resize(m, PS / 2), 0);
  assert_ptr_equal(data_of(m), p);
  assert_int_equal(mmf_len(m), PS / 2);
  assert_int_equal(mmf_size(m), PS / 2);
  assert_int_equal(mmf_resize(m, 8 * PS), 0);
  assert_ptr_equal(data_of(m), p);
  expect_map(m, 0, buf, (size_t)(PS / 2));
  expect_map_zeros(m, PS, 7 * PS); /* the dropped pages come back zero */
  assert_int_equal(mmf_resize(m, 9 * PS), 0);
  assert_int_equal(mmf_reserved(m), 0);
  expect_map(m, 0, buf, (size_t)(PS / 2));
  expect_map_zeros(m, PS, 8 * PS);
  if (data_of(m) != p) /* moved (see test_reserved_shared_file) */
    assert_true(range_is_free(p, (size_t)(8 * PS)));

  /* Shared anonymous: shrinking in place, never growing. */
  m = fx_reserved(-1, 4 * PS, MMF_MAP_SHARED, MMF_ACCESS_DEFAULT, 0, 8 * PS);
  p = data_of(m);
  memcpy(p, buf, (size_t)PS);
  EXPECT_ERR(mmf_resize(m, 5 * PS), MMF_EVALUE,
             "mmap: can't expand a shared anonymous mapping on Linux");
  assert_int_equal(mmf_resize(m, PS), 0);
  assert_ptr_equal(data_of(m), p);
  expect_map(m, 0, buf, (size_t)PS);
  EXPECT_ERR(mmf_resize(m, 2 * PS), MMF_EVALUE,
             "mmap: can't expand a shared anonymous mapping on Linux");
  free(buf);
}

static void test_reserved_sizes_and_release(void **state) {
  int fd = fx_file(NULL, (size_t)(4 * PS), NULL);
  uint8_t *p;
  mmf_t *m;
  (void)state;
  /* No reservation. */
  m = fx_reserved(fd, 0, MMF_MAP_SHARED, MMF_ACCESS_WRITE, 0, 0);
  assert_int_equal(mmf_reserved(m), 0);
  m = fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
  assert_int_equal(mmf_reserved(m), 0);
  /* Rounded up to pages; never smaller than the map. */
  m = fx_reserved(fd, 0, MMF_MAP_SHARED, MMF_ACCESS_WRITE, 0, 5 * PS + 1);
  assert_int_equal(mmf_reserved(m), 6 * PS);
  m = fx_reserved(fd, 0, MMF_MAP_SHARED, MMF_ACCESS_WRITE, 0, PS);
  assert_int_equal(mmf_reserved(m), 4 * PS);
  m = fx_reserved(fd, 10, MMF_MAP_SHARED, MMF_ACCESS_WRITE, 0, 1);
  assert_int_equal(mmf_reserved(m), PS);
  /* A reservation that the map fills grows like a plain map. */
  m = fx_reserved(fd, 0, MMF_MAP_SHARED, MMF_ACCESS_WRITE, 0, 4 * PS);
  assert_int_equal(mmf_set_item(m, -1, 9), 0);
  assert_int_equal(mmf_resize(m, 5 * PS), 0);
  assert_int_equal(mmf_reserved(m), 0);
  assert_int_equal(mmf_get_item(m, 4 * PS - 1), 9);
  /* Read-only and copy maps may be reserved (and never resize). */
  m = fx_reserved(fd, 0, MMF_MAP_SHARED, MMF_ACCESS_READ, 0, 8 * PS);
  assert_int_equal(mmf_reserved(m), 8 * PS);
  EXPECT_ERR(mmf_resize(m, 6 * PS), MMF_ETYPE, NORESIZE_MSG);
  /* close returns the whole reservation. */
  m = fx_reserved(fd, PS, MMF_MAP_SHARED, MMF_ACCESS_WRITE, PS, 16 * PS);
  p = data_of(m);
  assert_int_equal(mmf_offset(m), PS);
  assert_false(range_is_free(p, (size_t)(16 * PS)));
  assert_false(range_is_free(p + 8 * PS, (size_t)PS)); /* placeholder */
  assert_int_equal(mmf_close(m), 0);
  assert_true(range_is_free(p, (size_t)(16 * PS)));
  /* Closed handles report ECLOSED. */
  EXPECT_ERR(mmf_reserved(m), MMF_ECLOSED, CLOSED_MSG);
}

/* A reservation of 2 MiB or more is placed so that file offset o lands on
 * an address congruent to o modulo 2 MiB (large page-cache folios can then
 * be mapped whole); what was trimmed off is free again, and close returns
 * the rest. When the padded placeholder cannot be had, a plain one is. */
static int big_mmap_calls;
static void *no_big_mmap(void *addr, size_t len, int prot, int flags, int fd,
                         off_t off) {
  if (len > ((size_t)2 << 20) + ((size_t)64 << 20) - 1) {
    big_mmap_calls++;
    errno = ENOMEM;
    return MAP_FAILED;
  }
  return real.mmap(addr, len, prot, flags, fd, off);
}

static void test_reserved_alignment(void **state) {
  const int64_t A = (int64_t)2 << 20, span = (int64_t)64 << 20;
  int fd = fx_file(NULL, (size_t)(A + 16 * PS), NULL);
  uint8_t *p;
  mmf_t *m;
  (void)state;
  for (int64_t off = 0; off <= A; off += A / 2) {
    m = fx_reserved(fd, 8 * PS, MMF_MAP_SHARED, MMF_ACCESS_WRITE, off, span);
    p = data_of(m);
    assert_int_equal(((uintptr_t)p - (uintptr_t)off) % (uintptr_t)A, 0);
    assert_int_equal(mmf_reserved(m), span);
    /* The trimmed padding is free; the reservation is not. */
    assert_true(range_is_free(p - PS, (size_t)PS) ||
                (uintptr_t)p % (uintptr_t)A == 0);
    assert_true(range_is_free(p + span, (size_t)PS));
    assert_false(range_is_free(p + span - PS, (size_t)PS));
    assert_int_equal(mmf_set_item(m, 0, 7), 0);
    assert_int_equal(mmf_resize(m, A + 16 * PS - off), 0); /* file kept */
    assert_ptr_equal(data_of(m), p);
    assert_int_equal(mmf_close(m), 0);
    assert_true(range_is_free(p, (size_t)span));
  }
  /* Small reservations are not padded (nothing to gain). */
  m = fx_reserved(fd, 4 * PS, MMF_MAP_SHARED, MMF_ACCESS_WRITE, 0, 8 * PS);
  assert_int_equal(mmf_reserved(m), 8 * PS);
  /* No room for the padding: an unaligned reservation still works. */
  mmf__sys.mmap = no_big_mmap;
  big_mmap_calls = 0;
  m = fx_reserved(fd, 8 * PS, MMF_MAP_SHARED, MMF_ACCESS_WRITE, 0, span);
  assert_int_equal(big_mmap_calls, 1);
  assert_int_equal(mmf_reserved(m), span);
  assert_int_equal(mmf_resize(m, 16 * PS), 0);
  assert_int_equal(mmf_close(m), 0);
}

/* ---- files over 4 GiB ---------------------------------------------------- */

/* Python's test_large_offset and test_large_filesize, and writes. */
static void test_large_offset(void **state) {
  const char *path;
  const int64_t off = 4 * GiB + PS;
  int fd;
  char got[8], repr[200], want[200];
  int64_t r;
  mmf_t *m;
  (void)state;
  if (!large_files_supported())
    skip();
  fd = fx_sparse(5 * GiB, &path);

  /* A map at an offset above 4 GiB: write, read, find there. */
  m = fx_map(fd, 16 * PS, MMF_ACCESS_WRITE, off);
  assert_int_equal(mmf_offset(m), off);
  assert_int_equal(mmf_size(m), 5 * GiB);
  assert_int_equal(mmf_seek(m, 1000, SEEK_SET, NULL), 0);
  assert_int_equal(mmf_write(m, "needle", 6), 6);
  assert_int_equal(mmf_find(m, "needle", 6, I(0), NULL, &r), 0);
  assert_int_equal(r, 1000);
  assert_int_equal(mmf_rfind(m, "needle", 6, I(0), NULL, &r), 0);
  assert_int_equal(r, 1000);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  assert_int_equal(pread(fd, got, 6, (off_t)(off + 1000)), 6);
  assert_memory_equal(got, "needle", 6);
  assert_int_equal(pwrite(fd, "HAYSTACK", 8, (off_t)(off + 5000)), 8);
  assert_int_equal(mmf_seek(m, 5000, SEEK_SET, NULL), 0);
  assert_int_equal(mmf_read(m, 8, got, sizeof got, &r), 0);
  assert_memory_equal(got, "HAYSTACK", 8);
  mmf_repr(m, repr, sizeof repr);
  snprintf(want, sizeof want,
           "<mmap.mmap closed=False, access=ACCESS_WRITE, length=%lld, "
           "pos=5008, offset=%lld>",
           (long long)(16 * PS), (long long)off);
  assert_string_equal(repr, want);
  assert_int_equal(mmf_close(m), 0);

  /* length 0 with an offset above 4 GiB: the rest of the file. */
  assert_int_equal(pwrite(fd, " ", 1, 0x14FFFFFFFLL), 1);
  m = fx_map(fd, 0, MMF_ACCESS_READ, 0x140000000LL);
  assert_int_equal(mmf_len(m), 0x10000000LL);
  assert_int_equal(mmf_get_item(m, 0xFFFFFFFLL), ' ');
  assert_int_equal(mmf_get_item(m, -1), ' ');
  EXPECT_ERR(mmf_get_item(m, 0x10000000LL), MMF_EINDEX,
             "mmap index out of range");
  assert_int_equal(mmf_close(m), 0);

  /* Python's test_large_filesize: size() of a 6 GiB file. */
  assert_int_equal(ftruncate(fd, 0x180000000LL), 0);
  m = fx_map(fd, 0x10000, MMF_ACCESS_READ, 0);
  assert_int_equal(mmf_size(m), 0x180000000LL);
  assert_int_equal(mmf_len(m), 0x10000);
  /* The whole-file size checks work above 4 GiB too. */
  {
    mmf_t *x = NULL;
    EXPECT_ERR(mmf_open(&x, fd, 0, MMF_MAP_SHARED, RW, MMF_ACCESS_READ,
                        0x180000000LL, 1),
               MMF_EVALUE, "mmap offset is greater than file size");
    EXPECT_ERR(mmf_open(&x, fd, 2 * PS, MMF_MAP_SHARED, RW, MMF_ACCESS_READ,
                        0x180000000LL - PS, 1),
               MMF_EVALUE, "mmap length is greater than file size");
    assert_null(x);
  }
}

/* Python's _test_around_boundary for 2 GiB and 4 GiB: a map of the whole
 * file, read and searched across the boundary. */
static void test_around_boundaries(void **state) {
  static const int64_t bounds[] = {2 * GiB, 4 * GiB};
  size_t i;
  (void)state;
  if (!large_files_supported())
    skip();
  for (i = 0; i < 2; i++) {
    const int64_t b = bounds[i];
    char got[16];
    int64_t n, r;
    int fd = fx_sparse(b, NULL);
    mmf_t *m;
    assert_int_equal(pwrite(fd, "DEARdear", 8, (off_t)(b - 8)), 8);
    m = fx_map(fd, 0, MMF_ACCESS_READ, 0);
    assert_int_equal(mmf_len(m), b);
    assert_int_equal(
        mmf_get_slice(m, I(b - 8), I(b), NULL, got, sizeof got, &n), 0);
    assert_int_equal(n, 8);
    assert_memory_equal(got, "DEARdear", 8);
    assert_int_equal(mmf_close(m), 0);

    /* Now across the boundary. */
    assert_int_equal(ftruncate(fd, (off_t)(b + PS)), 0);
    assert_int_equal(pwrite(fd, "DEARdear", 8, (off_t)(b - 4)), 8);
    m = fx_map(fd, 0, MMF_ACCESS_READ, 0);
    assert_int_equal(mmf_len(m), b + PS);
    assert_int_equal(mmf_get_item(m, b), 'd');
    assert_int_equal(mmf_get_item(m, b - 1), 'R');
    assert_int_equal(mmf_find(m, "Rd", 2, I(b - PS), NULL, &r), 0);
    assert_int_equal(r, b - 1);
    assert_int_equal(mmf_rfind(m, "DEARdear", 8, I(b - PS), NULL, &r), 0);
    assert_int_equal(r, b - 4);
    assert_int_equal(mmf_find(m, "dear", 4, I(b - 8), I(b + 3), &r), 0);
    assert_int_equal(r, -1);
    assert_int_equal(mmf_seek(m, b - 2, SEEK_SET, NULL), 0);
    assert_int_equal(mmf_read(m, 4, got, sizeof got, &n), 0);
    assert_memory_equal(got, "ARde", 4);
    assert_int_equal(mmf_tell(m), b + 2);
    assert_int_equal(mmf_close(m), 0);
  }
}

/* resize across the 4 GiB boundary, plain and reserved. */
static void test_resize_across_4g(void **state) {
  int pass;
  (void)state;
  if (!large_files_supported())
    skip();
  for (pass = 0; pass < 2; pass++) {
    const char *path;
    const int64_t b = 4 * GiB, off = b - 2 * PS;
    char got[8];
    int fd = fx_sparse(b - PS, &path);
    void *p;
    mmf_t *m = pass == 0 ? fx_map(fd, PS, MMF_ACCESS_WRITE, off)
                         : fx_reserved(fd, PS, MMF_MAP_SHARED, MMF_ACCESS_WRITE,
                                       off, 8 * PS);
    p = data_of(m);
    assert_int_equal(mmf_write(m, "low", 3), 3);
    assert_int_equal(mmf_resize(m, 3 * PS), 0);
    assert_int_equal(tu_file_size(path), b + PS);
    assert_int_equal(mmf_size(m), b + PS);
    assert_int_equal(mmf_len(m), 3 * PS);
    if (pass == 1)
      assert_ptr_equal(data_of(m), p);
    expect_map(m, 0, "low", 3);
    expect_map_zeros(m, PS, 2 * PS);
    assert_int_equal(mmf_seek(m, 2 * PS - 4, SEEK_SET, NULL), 0);
    assert_int_equal(mmf_write(m, "BOUNDARY", 8), 8);
    assert_int_equal(mmf_flush(m, PS, -1), 0);
    assert_int_equal(pread(fd, got, 8, (off_t)(b - 4)), 8);
    assert_memory_equal(got, "BOUNDARY", 8);
    assert_int_equal(pwrite(fd, "HI", 2, (off_t)(b + 100)), 2);
    expect_map(m, 2 * PS + 100, "HI", 2);

    assert_int_equal(mmf_resize(m, 2 * PS + 2), 0);
    assert_int_equal(tu_file_size(path), b + 2);
    expect_map(m, 2 * PS - 4, "BOUNDA", 6);
    assert_int_equal(mmf_resize(m, PS), 0);
    assert_int_equal(tu_file_size(path), b - PS);
    assert_int_equal(mmf_size(m), b - PS);
    expect_map(m, 0, "low", 3);
    if (pass == 1)
      assert_ptr_equal(data_of(m), p);
    assert_int_equal(mmf_close(m), 0);
  }
}

/* ---- fault injection around resize and flush ----------------------------- */

static int failing_ftruncate(int fd, off_t len) {
  (void)fd;
  (void)len;
  errno = ENOSPC;
  return -1;
}
static int failing_msync(void *addr, size_t len, int flags) {
  (void)addr;
  (void)len;
  (void)flags;
  errno = EIO;
  return -1;
}
static void *failing_mmap(void *addr, size_t len, int prot, int flags, int fd,
                          off_t off) {
  (void)addr;
  (void)len;
  (void)prot;
  (void)flags;
  (void)fd;
  (void)off;
  errno = ENOMEM;
  return MAP_FAILED;
}
static void *failing_mremap(void *old, size_t old_len, size_t new_len) {
  (void)old;
  (void)old_len;
  (void)new_len;
  errno = ENOMEM;
  return MAP_FAILED;
}

static int hook_calls;
static void count_hook(void *ctx, int64_t off, int64_t len) {
  (void)ctx;
  (void)off;
  (void)len;
  hook_calls++;
}

static void test_fault_ftruncate_enospc(void **state) {
  int pass;
  (void)state;
  for (pass = 0; pass < 2; pass++) {
    const char *path;
    uint8_t *buf = malloc((size_t)(2 * PS));
    int fd;
    void *p;
    mmf_t *m;
    pattern(buf, (size_t)(2 * PS), 81);
    fd = fx_file(buf, (size_t)(2 * PS), &path);
    m = pass == 0
            ? fx_map(fd, 0, MMF_ACCESS_WRITE, 0)
            : fx_reserved(fd, 0, MMF_MAP_SHARED, MMF_ACCESS_WRITE, 0, 8 * PS);
    p = data_of(m);
    mmf__sys.ftruncate = failing_ftruncate;
    EXPECT_OS(mmf_resize(m, 4 * PS), ENOSPC, "ftruncate");
    EXPECT_OS(mmf_resize(m, PS), ENOSPC, "ftruncate");
    EXPECT_OS(mmf_resize(m, 0), ENOSPC, "ftruncate");
    assert_int_equal(mmf_len(m), 2 * PS);
    assert_ptr_equal(data_of(m), p);
    assert_int_equal(mmf_reserved(m), pass == 0 ? 0 : 8 * PS);
    expect_map(m, 0, buf, (size_t)(2 * PS));
    assert_int_equal(tu_file_size(path), 2 * PS);
    expect_file(path, buf, (size_t)(2 * PS));
    /* The map still works, and resizes once the disk has room. */
    assert_int_equal(mmf_write(m, "ok", 2), 2);
    mmf__sys_reset();
    assert_int_equal(mmf_resize(m, 4 * PS), 0);
    assert_int_equal(tu_file_size(path), 4 * PS);
    expect_map(m, 0, "ok", 2);
    /* Anonymous maps never ftruncate. */
    mmf__sys.ftruncate = failing_ftruncate;
    m = fx_open(-1, PS, MMF_MAP_PRIVATE, RW, 0, 0, 1);
    assert_int_equal(mmf_resize(m, 2 * PS), 0);
    mmf__sys_reset();
    free(buf);
  }
}

static void test_fault_msync_eio(void **state) {
  int fd = fx_file(NULL, (size_t)(2 * PS), NULL);
  mmf_t *m = fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
  (void)state;
  hook_calls = 0;
  assert_int_equal(mmf_set_flush_hook(m, count_hook, NULL), 0);
  mmf__sys.msync = failing_msync;
  EXPECT_OS(mmf_flush(m, 0, -1), EIO, "msync");
  EXPECT_OS(mmf_flush(m, PS, PS), EIO, "msync");
  EXPECT_OS(mmf_flush_flags(m, 0, -1, MMF_MS_ASYNC), EIO, "msync");
  assert_int_equal(hook_calls, 0);
  /* Range errors are still found first. */
  EXPECT_ERR(mmf_flush(m, 0, -2), MMF_EVALUE, "flush values out of range");
  /* Read-only and copy maps never reach msync. */
  assert_int_equal(mmf_flush(fx_map(fd, 0, MMF_ACCESS_READ, 0), 0, -1), 0);
  assert_int_equal(mmf_flush(fx_map(fd, 0, MMF_ACCESS_COPY, 0), 0, -1), 0);
  mmf__sys_reset();
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  assert_int_equal(hook_calls, 1);
}

/* A failed remap after a successful ftruncate: the file keeps its new size
 * (as in Python), the map its old length and contents. */
static void test_fault_remap_fails(void **state) {
  const char *path;
  uint8_t *buf = malloc((size_t)(2 * PS));
  int fd;
  void *p;
  int rc;
  mmf_t *m;
  (void)state;
  pattern(buf, (size_t)(2 * PS), 91);
  fd = fx_file(buf, (size_t)(2 * PS), &path);
  m = fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
  p = data_of(m);
  /* mremap, or mmap in a build without mremap. */
  mmf__sys.mremap_maymove = failing_mremap;
  mmf__sys.mmap = failing_mmap;
  rc = mmf_resize(m, 4 * PS);
  assert_int_equal(rc, -ENOMEM);
  assert_true(strcmp(mmf_errmsg(), "mremap: Cannot allocate memory") == 0 ||
              strcmp(mmf_errmsg(), "mmap: Cannot allocate memory") == 0);
  assert_int_equal(mmf_len(m), 2 * PS);
  assert_ptr_equal(data_of(m), p);
  assert_int_equal(tu_file_size(path), 4 * PS);
  expect_map(m, 0, buf, (size_t)(2 * PS));
  mmf__sys_reset();
  assert_int_equal(mmf_resize(m, 4 * PS), 0);
  expect_map(m, 0, buf, (size_t)(2 * PS));
  expect_map_zeros(m, 2 * PS, 2 * PS);

  /* Private anonymous: nothing else changes. */
  m = fx_open(-1, PS, MMF_MAP_PRIVATE, RW, 0, 0, 1);
  memcpy(data_of(m), buf, (size_t)PS);
  p = data_of(m);
  mmf__sys.mremap_maymove = failing_mremap;
  mmf__sys.mmap = failing_mmap;
  assert_int_equal(mmf_resize(m, 3 * PS), -ENOMEM);
  assert_int_equal(mmf_len(m), PS);
  assert_ptr_equal(data_of(m), p);
  expect_map(m, 0, buf, (size_t)PS);
  mmf__sys_reset();
  free(buf);
}

/* A MAP_FIXED mmap that fails after the kernel unmapped the range (which
 * mmap(2) permits); placeholders (PROT_NONE) still work. */
static void *unmapping_failing_mmap(void *addr, size_t len, int prot, int flags,
                                    int fd, off_t off) {
  if (prot != PROT_NONE && (flags & MAP_FIXED)) {
    munmap(addr, len);
    errno = ENOMEM;
    return MAP_FAILED;
  }
  return real.mmap(addr, len, prot, flags, fd, off);
}

/* Growing inside a reservation fails: the placeholder is restored, so a
 * later grow still happens in place. */
static void test_fault_reserved_grow_fails(void **state) {
  const char *path;
  uint8_t *buf = malloc((size_t)(2 * PS));
  uint8_t *p;
  int fd;
  mmf_t *m;
  (void)state;
  pattern(buf, (size_t)(2 * PS), 93);
  fd = fx_file(buf, (size_t)(2 * PS), &path);
  m = fx_reserved(fd, 0, MMF_MAP_SHARED, MMF_ACCESS_WRITE, 0, 8 * PS);
  p = data_of(m);
  mmf__sys.mmap = unmapping_failing_mmap;
  EXPECT_OS(mmf_resize(m, 4 * PS), ENOMEM, "mmap");
  /* The range is reserved again. */
  assert_false(range_is_free(p + 2 * PS, (size_t)(2 * PS)));
  assert_int_equal(mmf_len(m), 2 * PS);
  assert_int_equal(mmf_reserved(m), 8 * PS);
  assert_ptr_equal(data_of(m), p);
  expect_map(m, 0, buf, (size_t)(2 * PS));
  assert_int_equal(tu_file_size(path), 4 * PS); /* ftruncate not undone */
  mmf__sys_reset();
  assert_false(range_is_free(p + 2 * PS, (size_t)(6 * PS)));
  assert_int_equal(mmf_resize(m, 4 * PS), 0);
  assert_ptr_equal(data_of(m), p);
  expect_map(m, 0, buf, (size_t)(2 * PS));
  expect_map_zeros(m, 2 * PS, 2 * PS);

  /* A failed shrink leaves the length alone. */
  mmf__sys.mmap = failing_mmap;
  EXPECT_OS(mmf_resize(m, PS), ENOMEM, "mmap");
  assert_int_equal(mmf_len(m), 4 * PS);
  assert_ptr_equal(data_of(m), p);
  mmf__sys_reset();
  assert_int_equal(mmf_resize(m, PS), 0);
  assert_ptr_equal(data_of(m), p);
  expect_map(m, 0, buf, (size_t)PS);
  free(buf);
}

/* mmf_follow: a read-only map follows a file another handle grows, in
 * place; refusals leave the map as it was. */
static void test_follow(void **state) {
  const char *path;
  uint8_t *buf = malloc((size_t)(4 * PS)), *p;
  mmf_t *w, *r = NULL, *plain;
  int fd, rfd;
  (void)state;
  pattern(buf, (size_t)(4 * PS), 41);
  fd = fx_file(buf, (size_t)PS, &path);
  rfd = open(path, O_RDONLY);
  assert_true(rfd >= 0);
  w = fx_reserved(fd, 0, MMF_MAP_SHARED, MMF_ACCESS_WRITE, 0, 8 * PS);
  assert_int_equal(mmf_open_reserved(&r, rfd, 0, MMF_MAP_SHARED, RW,
                                     MMF_ACCESS_READ, 0, 1, 8 * PS),
                   0);
  fx_keep(r);
  p = data_of(r);
  /* Nothing to follow yet: the same size is a no-op; more is refused. */
  assert_int_equal(mmf_follow(r, PS), 0);
  EXPECT_ERR(mmf_follow(r, 2 * PS), MMF_EVALUE,
             "mmap length is greater than file size");
  EXPECT_ERR(mmf_follow(r, PS - 1), MMF_EVALUE,
             "mmap can only follow a file that grew");
  assert_int_equal(mmf_len(r), PS);
  /* The writer grows the file and writes the new pages. */
  assert_int_equal(mmf_resize(w, 3 * PS + 100), 0);
  assert_int_equal(mmf_set_slice(w, I(PS), I(3 * PS + 100), NULL, buf + PS,
                                 (size_t)(2 * PS + 100)),
                   0);
  assert_int_equal(mmf_follow(r, 3 * PS + 100), 0);
  assert_ptr_equal(data_of(r), p);
  assert_int_equal(mmf_len(r), 3 * PS + 100);
  expect_map(r, 0, buf, (size_t)(3 * PS + 100));
  /* Past the reservation, or with no reservation at all. */
  assert_int_equal(mmf_resize(w, 8 * PS + 1), 0);
  EXPECT_ERR(mmf_follow(r, 8 * PS + 1), MMF_EVALUE,
             "new size beyond the address reservation");
  assert_int_equal(mmf_follow(r, 8 * PS), 0);
  assert_ptr_equal(data_of(r), p);
  expect_map(r, 0, buf, (size_t)(3 * PS + 100));
  plain = fx_open(rfd, PS, MMF_MAP_SHARED, PROT_READ, MMF_ACCESS_DEFAULT, 0, 1);
  EXPECT_ERR(mmf_follow(plain, 2 * PS), MMF_EVALUE,
             "new size beyond the address reservation");
  /* No kept descriptor (anonymous). */
  {
    mmf_t *a = fx_open(-1, PS, MMF_MAP_PRIVATE, RW, 0, 0, 1);
    EXPECT_ERR(mmf_follow(a, 2 * PS), MMF_EVALUE,
               "mmap can't follow without a file (trackfd=False or "
               "anonymous)");
  }
  /* A failing mmap leaves the map and its reservation as they were. */
  assert_int_equal(mmf_resize(w, 2 * PS), 0); /* shrink the file... */
  {
    mmf_t *r2 = NULL;
    assert_int_equal(mmf_open_reserved(&r2, rfd, PS, MMF_MAP_SHARED, RW,
                                       MMF_ACCESS_READ, 0, 1, 8 * PS),
                     0);
    fx_keep(r2);
    p = data_of(r2);
    mmf__sys.mmap = unmapping_failing_mmap;
    EXPECT_OS(mmf_follow(r2, 2 * PS), ENOMEM, "mmap");
    mmf__sys_reset();
    assert_false(range_is_free(p + PS, (size_t)PS));
    assert_int_equal(mmf_len(r2), PS);
    assert_int_equal(mmf_follow(r2, 2 * PS), 0);
    assert_ptr_equal(data_of(r2), p);
    expect_map(r2, 0, buf, (size_t)(2 * PS));
  }
  /* Closed. */
  assert_int_equal(mmf_close(r), 0);
  EXPECT_ERR(mmf_follow(r, 2 * PS), MMF_ECLOSED, "mmap closed or invalid");
  close(rfd);
  free(buf);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_resize_file_up_down),
      T(test_resize_with_offset),
      T(test_resize_anonymous),
      T(test_resize_check_order),
      T(test_resize_trackfd_off),
      T(test_resize_with_exports),
      T(test_resize_zero_quirk),
      T(test_resize_past_pos),
      T(test_resize_file_model),
      T(test_resize_file_model_reserved),
      T(test_reserved_shared_file),
      T(test_reserved_private_file),
      T(test_reserved_anonymous),
      T(test_reserved_sizes_and_release),
      T(test_reserved_alignment),
      T(test_large_offset),
      T(test_around_boundaries),
      T(test_resize_across_4g),
      T(test_fault_ftruncate_enospc),
      T(test_fault_msync_eio),
      T(test_fault_remap_fails),
      T(test_fault_reserved_grow_fails),
      T(test_follow),
  };
#undef T
  PS = mmf_pagesize();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
