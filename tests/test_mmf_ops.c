/*
 * test_mmf_ops.c — stream access (§E, §G, §H), search (§F), items and
 * slices (§M), move (§J), flush (§I, Q4) and madvise (§L) of the mapping
 * core. Slices, searches and moves are also compared, over thousands of
 * generated cases, with small reference models written here from Python's
 * documented semantics.
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

/* A writable anonymous map holding `len` bytes of data. */
static mmf_t *anon_with(const void *data, size_t len) {
  mmf_t *m = fx_map(-1, (int64_t)len, MMF_ACCESS_DEFAULT, 0);
  memcpy(data_of(m), data, len);
  return m;
}

/* A shared writable map of a fresh file holding data. */
static mmf_t *file_with(const void *data, size_t len, const char **path) {
  int fd = fx_file(data, len, path);
  return fx_map(fd, 0, MMF_ACCESS_WRITE, 0);
}

/* Tiny deterministic generator for the model tests. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* ---- read / read_byte / readline (§E) ------------------------------------ */

static void test_read(void **state) {
  uint8_t data[256], buf[300];
  int64_t n, i;
  mmf_t *m;
  (void)state;
  for (i = 0; i < 256; i++)
    data[i] = (uint8_t)i;
  m = file_with(data, sizeof data, NULL);

  /* Python's test_read_all: n < 0 and n too large mean "to the end". */
  assert_int_equal(mmf_read(m, -1, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 256);
  assert_memory_equal(buf, data, 256);
  assert_int_equal(mmf_tell(m), 256);
  /* At the end: 0 bytes, no error. */
  n = -7;
  assert_int_equal(mmf_read(m, -1, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(mmf_read(m, 5, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(mmf_read(m, 5, NULL, 0, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(mmf_tell(m), 256);

  assert_int_equal(mmf_seek(m, 0, SEEK_SET, NULL), 0);
  assert_int_equal(mmf_read(m, INT64_MAX, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 256);
  assert_int_equal(mmf_seek(m, 0, SEEK_SET, NULL), 0);
  assert_int_equal(mmf_read(m, INT64_MIN, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 256);

  /* read(0) reads nothing and does not move. */
  assert_int_equal(mmf_seek(m, 0, SEEK_SET, NULL), 0);
  assert_int_equal(mmf_read(m, 0, buf, 0, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(mmf_tell(m), 0);

  assert_int_equal(mmf_read(m, 5, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 5);
  assert_memory_equal(buf, data, 5);
  assert_int_equal(mmf_tell(m), 5);
  assert_int_equal(mmf_read(m, 3, buf, 3, NULL), 0); /* nread optional */
  assert_memory_equal(buf, data + 5, 3);
  assert_int_equal(mmf_tell(m), 8);

  /* Past the end: what remains. */
  assert_int_equal(mmf_seek(m, 250, SEEK_SET, NULL), 0);
  assert_int_equal(mmf_read(m, 300, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 6);
  assert_memory_equal(buf, data + 250, 6);
  assert_int_equal(mmf_tell(m), 256);

  /* C-specific: a buffer too small fails without moving. */
  assert_int_equal(mmf_seek(m, 0, SEEK_SET, NULL), 0);
  n = -7;
  EXPECT_ERR(mmf_read(m, 10, buf, 9, &n), MMF_EVALUE, "read buffer too small");
  EXPECT_ERR(mmf_read(m, -1, buf, 255, &n), MMF_EVALUE,
             "read buffer too small");
  assert_int_equal(n, -7);
  assert_int_equal(mmf_tell(m), 0);
  assert_int_equal(mmf_seek(m, 250, SEEK_SET, NULL), 0);
  assert_int_equal(mmf_read(m, 100, buf, 6, &n), 0); /* only 6 remain */
  assert_int_equal(n, 6);
}

static void test_read_byte(void **state) {
  mmf_t *m = anon_with("a\x00\xff", 3);
  (void)state;
  assert_int_equal(mmf_read_byte(m), 'a');
  assert_int_equal(mmf_read_byte(m), 0);
  assert_int_equal(mmf_read_byte(m), 255);
  assert_int_equal(mmf_tell(m), 3);
  EXPECT_ERR(mmf_read_byte(m), MMF_EVALUE, "read byte out of range");
  EXPECT_ERR(mmf_read_byte(m), MMF_EVALUE, "read byte out of range");
  assert_int_equal(mmf_tell(m), 3);
  assert_int_equal(mmf_seek(m, -1, SEEK_END, NULL), 0);
  assert_int_equal(mmf_read_byte(m), 255);
}

static void test_readline(void **state) {
  static const char text[] = "one\ntwo\n\nthree";
  char buf[32];
  int64_t n;
  mmf_t *m = file_with(text, sizeof text - 1, NULL);
  (void)state;
  assert_int_equal(mmf_readline(m, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 4);
  assert_memory_equal(buf, "one\n", 4);
  assert_int_equal(mmf_tell(m), 4);
  assert_int_equal(mmf_readline(m, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 4);
  assert_memory_equal(buf, "two\n", 4);
  assert_int_equal(mmf_readline(m, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 1);
  assert_memory_equal(buf, "\n", 1);
  /* The last line has no newline: to the end. */
  assert_int_equal(mmf_readline(m, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 5);
  assert_memory_equal(buf, "three", 5);
  assert_int_equal(mmf_tell(m), 14);
  /* At the end: empty, no error. */
  assert_int_equal(mmf_readline(m, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(mmf_readline(m, NULL, 0, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(mmf_tell(m), 14);

  /* From the middle of a line. */
  assert_int_equal(mmf_seek(m, 5, SEEK_SET, NULL), 0);
  assert_int_equal(mmf_readline(m, buf, sizeof buf, NULL), 0);
  assert_memory_equal(buf, "wo\n", 3);
  assert_int_equal(mmf_tell(m), 8);

  /* Too small a buffer: nothing read, position kept. */
  assert_int_equal(mmf_seek(m, 0, SEEK_SET, NULL), 0);
  n = -7;
  EXPECT_ERR(mmf_readline(m, buf, 3, &n), MMF_EVALUE, "read buffer too small");
  assert_int_equal(n, -7);
  assert_int_equal(mmf_tell(m), 0);
  assert_int_equal(mmf_readline(m, buf, 4, &n), 0);
  assert_int_equal(n, 4);

  /* No newline at all. */
  m = anon_with("abcdef", 6);
  assert_int_equal(mmf_readline(m, buf, sizeof buf, &n), 0);
  assert_int_equal(n, 6);
  assert_memory_equal(buf, "abcdef", 6);
}

/* ---- seek / tell (§H) ---------------------------------------------------- */

static void test_seek(void **state) {
  int64_t np = -7;
  mmf_t *m = fx_map(-1, 100, MMF_ACCESS_DEFAULT, 0);
  (void)state;
  assert_int_equal(mmf_seekable(m), 1);
  assert_int_equal(mmf_tell(m), 0);
  /* Python's test_basic. */
  assert_int_equal(mmf_seek(m, 0, SEEK_SET, &np), 0);
  assert_int_equal(np, 0);
  assert_int_equal(mmf_seek(m, 42, SEEK_CUR, &np), 0);
  assert_int_equal(np, 42);
  assert_int_equal(mmf_tell(m), 42);
  assert_int_equal(mmf_seek(m, 0, SEEK_END, &np), 0);
  assert_int_equal(np, 100); /* exactly len is allowed */
  assert_int_equal(mmf_tell(m), 100);
  EXPECT_ERR(mmf_seek(m, -1, SEEK_SET, &np), MMF_EVALUE, "seek out of range");
  EXPECT_ERR(mmf_seek(m, 1, SEEK_END, &np), MMF_EVALUE, "seek out of range");
  EXPECT_ERR(mmf_seek(m, -101, SEEK_END, &np), MMF_EVALUE, "seek out of range");
  assert_int_equal(np, 100);
  assert_int_equal(mmf_tell(m), 100);

  assert_int_equal(mmf_seek(m, 10, SEEK_SET, &np), 0);
  assert_int_equal(np, 10);
  assert_int_equal(mmf_seek(m, 5, SEEK_CUR, &np), 0);
  assert_int_equal(np, 15);
  assert_int_equal(mmf_seek(m, -15, SEEK_CUR, &np), 0);
  assert_int_equal(np, 0);
  EXPECT_ERR(mmf_seek(m, -1, SEEK_CUR, &np), MMF_EVALUE, "seek out of range");
  assert_int_equal(mmf_seek(m, 100, SEEK_SET, NULL), 0);
  assert_int_equal(mmf_tell(m), 100);
  EXPECT_ERR(mmf_seek(m, 101, SEEK_SET, NULL), MMF_EVALUE, "seek out of range");
  assert_int_equal(mmf_seek(m, -100, SEEK_END, &np), 0);
  assert_int_equal(np, 0);
  assert_int_equal(mmf_seek(m, -30, SEEK_END, &np), 0);
  assert_int_equal(np, 70);
  assert_int_equal(mmf_seek(m, 30, SEEK_CUR, &np), 0);
  assert_int_equal(np, 100);
  EXPECT_ERR(mmf_seek(m, 1, SEEK_CUR, NULL), MMF_EVALUE, "seek out of range");

  /* Unknown whence, checked before the range. */
  assert_int_equal(mmf_seek(m, 50, SEEK_SET, NULL), 0);
  np = -7;
  EXPECT_ERR(mmf_seek(m, 0, 3, &np), MMF_EVALUE, "unknown seek type");
  EXPECT_ERR(mmf_seek(m, -1, -1, &np), MMF_EVALUE, "unknown seek type");
  EXPECT_ERR(mmf_seek(m, 1000, 99, &np), MMF_EVALUE, "unknown seek type");
  EXPECT_ERR(mmf_seek(m, 0, INT_MIN, &np), MMF_EVALUE, "unknown seek type");
  assert_int_equal(np, -7);

  /* Overflow guards. */
  EXPECT_ERR(mmf_seek(m, INT64_MAX, SEEK_CUR, &np), MMF_EVALUE,
             "seek out of range");
  EXPECT_ERR(mmf_seek(m, INT64_MAX - 49, SEEK_CUR, &np), MMF_EVALUE,
             "seek out of range");
  EXPECT_ERR(mmf_seek(m, INT64_MAX, SEEK_END, &np), MMF_EVALUE,
             "seek out of range");
  EXPECT_ERR(mmf_seek(m, INT64_MIN, SEEK_CUR, &np), MMF_EVALUE,
             "seek out of range");
  EXPECT_ERR(mmf_seek(m, INT64_MIN, SEEK_END, &np), MMF_EVALUE,
             "seek out of range");
  EXPECT_ERR(mmf_seek(m, INT64_MIN, SEEK_SET, &np), MMF_EVALUE,
             "seek out of range");
  EXPECT_ERR(mmf_seek(m, INT64_MAX, SEEK_SET, &np), MMF_EVALUE,
             "seek out of range");
  assert_int_equal(np, -7);
  assert_int_equal(mmf_tell(m), 50);
}

/* ---- write / write_byte (§G) --------------------------------------------- */

static void test_write(void **state) {
  const char *path;
  uint8_t big[8192];
  mmf_t *m = file_with("0123456789", 10, &path);
  (void)state;
  /* Python's test_write_returning_the_number_of_bytes_written. */
  assert_int_equal(mmf_write(m, "abc", 3), 3);
  assert_int_equal(mmf_tell(m), 3);
  assert_int_equal(mmf_write(m, "defghij", 7), 7);
  assert_int_equal(mmf_tell(m), 10);
  /* At the end: only an empty write succeeds. */
  EXPECT_ERR(mmf_write(m, "x", 1), MMF_EVALUE, "data out of range");
  assert_int_equal(mmf_write(m, "", 0), 0);
  assert_int_equal(mmf_write(m, NULL, 0), 0);
  assert_int_equal(mmf_tell(m), 10);
  /* All or nothing. */
  assert_int_equal(mmf_seek(m, 8, SEEK_SET, NULL), 0);
  EXPECT_ERR(mmf_write(m, "xyz", 3), MMF_EVALUE, "data out of range");
  assert_int_equal(mmf_tell(m), 8);
  expect_map(m, 0, "abcdefghij", 10);
  EXPECT_ERR(mmf_write(m, big, sizeof big), MMF_EVALUE, "data out of range");
  EXPECT_ERR(mmf_write(m, "x", SIZE_MAX), MMF_EVALUE, "data out of range");
  EXPECT_ERR(mmf_write(m, "x", (size_t)INT64_MAX + 1), MMF_EVALUE,
             "data out of range");
  assert_int_equal(mmf_write(m, "xy", 2), 2);
  assert_int_equal(mmf_tell(m), 10);
  expect_map(m, 0, "abcdefghxy", 10);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  expect_file(path, "abcdefghxy", 10);

  /* A whole-map write. */
  pattern(big, sizeof big, 77);
  m = fx_map(-1, (int64_t)sizeof big, MMF_ACCESS_WRITE, 0);
  assert_int_equal(mmf_write(m, big, sizeof big), (int64_t)sizeof big);
  expect_map(m, 0, big, sizeof big);
  assert_int_equal(mmf_tell(m), (int64_t)sizeof big);
}

static void test_write_byte(void **state) {
  mmf_t *m = anon_with("....", 4);
  (void)state;
  assert_int_equal(mmf_write_byte(m, 'x'), 0);
  assert_int_equal(mmf_write_byte(m, 0), 0);
  assert_int_equal(mmf_write_byte(m, 255), 0);
  assert_int_equal(mmf_tell(m), 3);
  EXPECT_ERR(mmf_write_byte(m, 256), MMF_EOVERFLOW,
             "unsigned byte integer is greater than maximum");
  EXPECT_ERR(mmf_write_byte(m, INT_MAX), MMF_EOVERFLOW,
             "unsigned byte integer is greater than maximum");
  EXPECT_ERR(mmf_write_byte(m, -1), MMF_EOVERFLOW,
             "unsigned byte integer is less than minimum");
  EXPECT_ERR(mmf_write_byte(m, INT_MIN), MMF_EOVERFLOW,
             "unsigned byte integer is less than minimum");
  assert_int_equal(mmf_tell(m), 3);
  assert_int_equal(mmf_write_byte(m, 'z'), 0);
  EXPECT_ERR(mmf_write_byte(m, 'q'), MMF_EVALUE, "write byte out of range");
  /* The argument is checked before the position. */
  EXPECT_ERR(mmf_write_byte(m, 300), MMF_EOVERFLOW,
             "unsigned byte integer is greater than maximum");
  assert_int_equal(mmf_tell(m), 4);
  expect_map(m, 0, "x\x00\xffz", 4);
  /* Python's test_io_methods: read_byte/write_byte round trip. */
  assert_int_equal(mmf_seek(m, 0, SEEK_SET, NULL), 0);
  assert_int_equal(mmf_read_byte(m), 'x');
  assert_int_equal(mmf_write_byte(m, 'Y'), 0);
  assert_int_equal(mmf_read_byte(m), 255);
  expect_map(m, 0, "xY\xffz", 4);
}

/* ---- find / rfind (§F) --------------------------------------------------- */

static int64_t find(const mmf_t *m, const char *sub, const int64_t *start,
                    const int64_t *end) {
  int64_t r = -99;
  int rc = mmf_find(m, sub, strlen(sub), start, end, &r);
  if (rc != 0)
    fail_msg("find: %d %s", rc, mmf_errmsg());
  return r;
}
static int64_t rfind(const mmf_t *m, const char *sub, const int64_t *start,
                     const int64_t *end) {
  int64_t r = -99;
  int rc = mmf_rfind(m, sub, strlen(sub), start, end, &r);
  if (rc != 0)
    fail_msg("rfind: %d %s", rc, mmf_errmsg());
  return r;
}
#define I(v) (&(const int64_t){(v)})

/* Python's test_find_end and test_rfind. */
static void test_find_python_cases(void **state) {
  mmf_t *m = file_with("one two ones", 12, NULL);
  (void)state;
  assert_int_equal(find(m, "one", NULL, NULL), 0);
  assert_int_equal(find(m, "ones", NULL, NULL), 8);
  assert_int_equal(find(m, "one", I(0), I(-1)), 0);
  assert_int_equal(find(m, "one", I(1), NULL), 8);
  assert_int_equal(find(m, "one", I(1), I(-1)), 8);
  assert_int_equal(find(m, "one", I(1), I(-2)), -1);
  assert_int_equal(find(m, "two", NULL, NULL), 4);
  assert_int_equal(find(m, "three", NULL, NULL), -1);

  assert_int_equal(rfind(m, "one", NULL, NULL), 8);
  assert_int_equal(rfind(m, "one ", NULL, NULL), 0);
  assert_int_equal(rfind(m, "one", I(0), I(-1)), 8);
  assert_int_equal(rfind(m, "one", I(0), I(-2)), 0);
  assert_int_equal(rfind(m, "one", I(1), I(-1)), 8);
  assert_int_equal(rfind(m, "one", I(1), I(-2)), -1);
  assert_int_equal(rfind(m, "three", NULL, NULL), -1);
  assert_int_equal(mmf_tell(m), 0);
}

/* F2, F3, F8: start defaults to the position; end only counts with start. */
static void test_find_defaults_to_position(void **state) {
  mmf_t *m = file_with("one two ones", 12, NULL);
  (void)state;
  assert_int_equal(mmf_seek(m, 1, SEEK_SET, NULL), 0);
  assert_int_equal(find(m, "one", NULL, NULL), 8);
  assert_int_equal(find(m, "one", I(0), NULL), 0);
  /* rfind also only searches [pos, len). */
  assert_int_equal(mmf_seek(m, 9, SEEK_SET, NULL), 0);
  assert_int_equal(rfind(m, "one", NULL, NULL), -1);
  assert_int_equal(rfind(m, "ne", NULL, NULL), 9);
  assert_int_equal(rfind(m, "one", I(0), NULL), 8);
  assert_int_equal(find(m, "one", NULL, NULL), -1);
  /* end is ignored when start is None. */
  assert_int_equal(mmf_seek(m, 0, SEEK_SET, NULL), 0);
  assert_int_equal(find(m, "ones", NULL, I(3)), 8);
  assert_int_equal(rfind(m, "one", NULL, I(3)), 8);
  assert_int_equal(find(m, "ones", I(0), I(3)), -1);
  assert_int_equal(rfind(m, "one", I(0), I(3)), 0);
  /* At the end, the default range is empty. */
  assert_int_equal(mmf_seek(m, 0, SEEK_END, NULL), 0);
  assert_int_equal(find(m, "s", NULL, NULL), -1);
  assert_int_equal(rfind(m, "s", NULL, NULL), -1);
  /* Searching never moves the position. */
  assert_int_equal(mmf_tell(m), 12);
  assert_int_equal(mmf_seek(m, 3, SEEK_SET, NULL), 0);
  assert_int_equal(find(m, "one", I(0), NULL), 0);
  assert_int_equal(rfind(m, "one", I(0), NULL), 8);
  assert_int_equal(mmf_tell(m), 3);
}

/* F4-F6: clamping, end < start, needle longer than the range, matches
 * wholly inside [start, end). */
static void test_find_bounds(void **state) {
  mmf_t *m = file_with("one two ones", 12, NULL), *a;
  (void)state;
  assert_int_equal(find(m, "one", I(-4), NULL), 8);
  assert_int_equal(find(m, "one", I(-100), NULL), 0);
  assert_int_equal(find(m, "one", I(INT64_MIN), I(INT64_MAX)), 0);
  assert_int_equal(rfind(m, "one", I(INT64_MIN), I(INT64_MAX)), 8);
  assert_int_equal(find(m, "ones", I(0), I(-1)), -1);
  assert_int_equal(find(m, "ones", I(0), I(1000)), 8);
  assert_int_equal(find(m, "one", I(0), I(-100)), -1);
  assert_int_equal(rfind(m, "one", I(-100), I(-9)), 0);
  assert_int_equal(rfind(m, "one", I(-100), I(-10)), -1);
  /* start at or beyond the end. */
  assert_int_equal(find(m, "s", I(12), NULL), -1);
  assert_int_equal(find(m, "s", I(11), NULL), 11);
  assert_int_equal(find(m, "s", I(13), NULL), -1);
  assert_int_equal(rfind(m, "s", I(INT64_MAX), NULL), -1);
  /* end < start. */
  assert_int_equal(find(m, "o", I(5), I(2)), -1);
  assert_int_equal(rfind(m, "o", I(5), I(2)), -1);
  assert_int_equal(find(m, "o", I(-1), I(-5)), -1);
  /* The needle is longer than the range or the map. */
  assert_int_equal(find(m, "one two", I(0), I(6)), -1);
  assert_int_equal(find(m, "one two", I(0), I(7)), 0);
  assert_int_equal(find(m, "one two ones!", NULL, NULL), -1);
  assert_int_equal(rfind(m, "one two ones!", NULL, NULL), -1);
  assert_int_equal(find(m, "one two ones", NULL, NULL), 0);
  assert_int_equal(rfind(m, "one two ones", NULL, NULL), 0);

  /* A match must lie wholly inside [start, end). */
  a = anon_with("abcabc", 6);
  assert_int_equal(find(a, "bc", I(0), I(2)), -1);
  assert_int_equal(find(a, "bc", I(0), I(3)), 1);
  assert_int_equal(find(a, "bc", I(2), I(6)), 4);
  assert_int_equal(find(a, "bc", I(2), I(5)), -1);
  assert_int_equal(rfind(a, "bc", I(0), I(5)), 1);
  assert_int_equal(rfind(a, "bc", I(0), I(6)), 4);
  assert_int_equal(rfind(a, "bc", I(2), I(6)), 4);
  assert_int_equal(rfind(a, "abc", I(1), I(6)), 3);
  assert_int_equal(rfind(a, "abc", I(1), I(5)), -1);
  assert_int_equal(rfind(a, "abc", I(0), I(5)), 0);
  assert_int_equal(rfind(a, "c", I(0), I(5)), 2);
  assert_int_equal(find(a, "a", I(1), NULL), 3);
  assert_int_equal(rfind(a, "a", I(0), I(3)), 0);
  /* Results are absolute indices. */
  assert_int_equal(find(a, "abc", I(3), NULL), 3);
  assert_int_equal(find(a, "abc", I(-3), NULL), 3);
}

/* F7 and Q4: the empty needle. */
static void test_find_empty_needle(void **state) {
  mmf_t *m = file_with("one two ones", 12, NULL);
  int64_t r = -99;
  (void)state;
  assert_int_equal(find(m, "", NULL, NULL), 0);
  assert_int_equal(rfind(m, "", NULL, NULL), 12);
  assert_int_equal(mmf_seek(m, 5, SEEK_SET, NULL), 0);
  assert_int_equal(find(m, "", NULL, NULL), 5);
  assert_int_equal(rfind(m, "", NULL, NULL), 12);
  assert_int_equal(find(m, "", NULL, I(7)), 5); /* end ignored */
  assert_int_equal(rfind(m, "", NULL, I(7)), 12);
  assert_int_equal(mmf_seek(m, 0, SEEK_END, NULL), 0);
  assert_int_equal(find(m, "", NULL, NULL), 12);
  assert_int_equal(rfind(m, "", NULL, NULL), 12);

  assert_int_equal(find(m, "", I(3), NULL), 3);
  assert_int_equal(find(m, "", I(12), NULL), 12);
  assert_int_equal(rfind(m, "", I(12), NULL), 12);
  /* start > len: -1 (like bytes.find), not len. */
  assert_int_equal(find(m, "", I(13), NULL), -1);
  assert_int_equal(rfind(m, "", I(13), NULL), -1);
  assert_int_equal(find(m, "", I(13), I(100)), -1);
  assert_int_equal(find(m, "", I(INT64_MAX), NULL), -1);
  assert_int_equal(rfind(m, "", I(INT64_MAX), I(INT64_MAX)), -1);
  /* Negative starts count from the end and clamp at 0. */
  assert_int_equal(find(m, "", I(-1), NULL), 11);
  assert_int_equal(find(m, "", I(-12), NULL), 0);
  assert_int_equal(find(m, "", I(-100), NULL), 0);
  assert_int_equal(find(m, "", I(INT64_MIN), NULL), 0);
  /* rfind gives the (clamped) end. */
  assert_int_equal(rfind(m, "", I(0), I(5)), 5);
  assert_int_equal(rfind(m, "", I(0), I(-2)), 10);
  assert_int_equal(rfind(m, "", I(0), I(100)), 12);
  assert_int_equal(rfind(m, "", I(-100), I(-100)), 0);
  assert_int_equal(find(m, "", I(12), I(100)), 12);
  assert_int_equal(find(m, "", I(4), I(4)), 4);
  assert_int_equal(rfind(m, "", I(4), I(4)), 4);
  /* end < start. */
  assert_int_equal(find(m, "", I(5), I(2)), -1);
  assert_int_equal(rfind(m, "", I(5), I(2)), -1);
  assert_int_equal(find(m, "", I(5), I(-100)), -1);
  /* A NULL needle is fine when empty, refused otherwise. */
  assert_int_equal(mmf_find(m, NULL, 0, I(2), NULL, &r), 0);
  assert_int_equal(r, 2);
  assert_int_equal(mmf_rfind(m, NULL, 0, I(2), NULL, &r), 0);
  assert_int_equal(r, 12);
  EXPECT_ERR(mmf_find(m, NULL, 1, NULL, NULL, &r), MMF_EVALUE,
             "needle is NULL");
  assert_int_equal(mmf_tell(m), 12);
}

/* Python's test_find_does_not_access_beyond_buffer: the page after the map
 * is inaccessible (a reservation placeholder), so any over-read faults. */
static void test_find_stays_inside_map(void **state) {
  mmf_t *m = NULL;
  uint8_t *p;
  int64_t r;
  (void)state;
  assert_int_equal(
      mmf_open_reserved(&m, -1, PS, MMF_MAP_PRIVATE, RW, 0, 0, 1, 4 * PS), 0);
  fx_keep(m);
  p = data_of(m);
  memset(p, 'x', (size_t)PS);
  p[PS - 1] = 'a';
  assert_int_equal(find(m, "ab", I(0), NULL), -1);
  assert_int_equal(find(m, "ab", I(PS - 1), NULL), -1);
  assert_int_equal(rfind(m, "ab", I(0), NULL), -1);
  assert_int_equal(find(m, "a", I(0), NULL), PS - 1);
  assert_int_equal(rfind(m, "xa", I(0), NULL), PS - 2);
  assert_int_equal(find(m, "xx", I(PS - 2), NULL), -1);
  assert_int_equal(find(m, "xxa", I(-3), NULL), PS - 3);
  assert_int_equal(rfind(m, "xxxxxxxxxxxxxxxxxxxxxxxxa", I(0), NULL), PS - 25);
  r = -99;
  assert_int_equal(mmf_find(m, p, (size_t)PS, I(0), NULL, &r), 0);
  assert_int_equal(r, 0);
  assert_int_equal(mmf_rfind(m, p, (size_t)PS, I(1), NULL, &r), 0);
  assert_int_equal(r, -1);
}

/* Naive Python find/rfind over an array, with the clamping of F4 and the
 * start > len rule of Q4. */
static int64_t ref_find(const uint8_t *hay, int64_t len, const uint8_t *sub,
                        int64_t k, int64_t start, int64_t end, int reverse) {
  int64_t i, best = -1;
  if (start > len)
    return -1;
  if (start < 0)
    start = start + len < 0 ? 0 : start + len;
  if (end < 0)
    end = end + len < 0 ? 0 : end + len;
  else if (end > len)
    end = len;
  for (i = start; i + k <= end; i++) {
    if (memcmp(hay + i, sub, (size_t)k) == 0) {
      best = i;
      if (!reverse)
        break;
    }
  }
  return best;
}

/* Python's test_tougher_find: embedded NUL bytes. */
static void test_find_tougher(void **state) {
  static const char data[] = "aabaac\0deef\0\0aa\0";
  const int64_t n = (int64_t)sizeof data - 1;
  char sub[32];
  int64_t s, f, r;
  mmf_t *m = file_with(data, (size_t)n, NULL);
  (void)state;
  for (s = 0; s <= n; s++) {
    for (f = s; f <= n; f++) {
      memcpy(sub, data + s, (size_t)(f - s));
      assert_int_equal(mmf_find(m, sub, (size_t)(f - s), NULL, NULL, &r), 0);
      assert_int_equal(r, ref_find((const uint8_t *)data, n,
                                   (const uint8_t *)sub, f - s, 0, n, 0));
      assert_int_equal(mmf_rfind(m, sub, (size_t)(f - s), NULL, NULL, &r), 0);
      assert_int_equal(r, ref_find((const uint8_t *)data, n,
                                   (const uint8_t *)sub, f - s, 0, n, 1));
      sub[f - s] = 'x';
      assert_int_equal(mmf_find(m, sub, (size_t)(f - s + 1), NULL, NULL, &r),
                       0);
      assert_int_equal(r, -1);
    }
  }
}

/* Many generated searches against the naive model. */
static void test_find_model(void **state) {
  enum { N = 300 };
  uint8_t hay[N], sub[8];
  int64_t bounds[16], r, k, start, end, i;
  int iter, si, ei;
  mmf_t *m;
  (void)state;
  for (i = 0; i < N; i++)
    hay[i] = (uint8_t) "ab\0c"[rng() % 4];
  m = anon_with(hay, N);
  bounds[0] = INT64_MIN;
  bounds[1] = -N - 1;
  bounds[2] = -N;
  bounds[3] = -N + 1;
  bounds[4] = -7;
  bounds[5] = -1;
  bounds[6] = 0;
  bounds[7] = 1;
  bounds[8] = 5;
  bounds[9] = N / 2;
  bounds[10] = N - 3;
  bounds[11] = N - 1;
  bounds[12] = N;
  bounds[13] = N + 1;
  bounds[14] = INT64_MAX;
  bounds[15] = 0; /* replaced by a random index */
  for (iter = 0; iter < 20000; iter++) {
    k = (int64_t)(rng() % 6);
    if (rng() % 3 == 0) {
      for (i = 0; i < k; i++)
        sub[i] = (uint8_t) "ab\0cd"[rng() % 5];
    } else {
      int64_t at = (int64_t)(rng() % (uint64_t)(N - k + 1));
      memcpy(sub, hay + at, (size_t)k);
    }
    bounds[15] = (int64_t)(rng() % (N + 1));
    si = (int)(rng() % 17); /* 16 = None */
    ei = (int)(rng() % 17);
    assert_int_equal(mmf_seek(m, (int64_t)(rng() % (N + 1)), SEEK_SET, NULL),
                     0);
    start = si == 16 ? mmf_tell(m) : bounds[si];
    end = (si == 16 || ei == 16) ? N : bounds[ei];
    assert_int_equal(mmf_find(m, sub, (size_t)k, si == 16 ? NULL : &bounds[si],
                              ei == 16 ? NULL : &bounds[ei], &r),
                     0);
    assert_int_equal(r, ref_find(hay, N, sub, k, start, end, 0));
    assert_int_equal(mmf_rfind(m, sub, (size_t)k, si == 16 ? NULL : &bounds[si],
                               ei == 16 ? NULL : &bounds[ei], &r),
                     0);
    assert_int_equal(r, ref_find(hay, N, sub, k, start, end, 1));
  }
}

/* rfind with very many candidate matches. */
static void test_rfind_many_matches(void **state) {
  enum { N = 65536 };
  uint8_t *hay = malloc(N);
  int64_t i, r, end;
  mmf_t *m;
  (void)state;
  for (i = 0; i < N; i++)
    hay[i] = (uint8_t)(i % 2 ? 'b' : 'a');
  m = anon_with(hay, N);
  assert_int_equal(rfind(m, "ab", NULL, NULL), N - 2);
  assert_int_equal(rfind(m, "ba", NULL, NULL), N - 3);
  assert_int_equal(rfind(m, "abab", NULL, NULL), N - 4);
  assert_int_equal(rfind(m, "abb", NULL, NULL), -1);
  assert_int_equal(find(m, "abb", NULL, NULL), -1);
  assert_int_equal(rfind(m, "a", NULL, NULL), N - 2);
  assert_int_equal(rfind(m, "b", NULL, NULL), N - 1);
  assert_int_equal(find(m, "ba", NULL, NULL), 1);
  for (end = N; end > N - 64; end--) {
    assert_int_equal(mmf_rfind(m, "aba", 3, I(0), &end, &r), 0);
    assert_int_equal(r, ref_find(hay, N, (const uint8_t *)"aba", 3, 0, end, 1));
  }
  /* Only the first pair qualifies. */
  assert_int_equal(rfind(m, "ab", I(0), I(3)), 0);
  assert_int_equal(rfind(m, "ab", I(0), I(1)), -1);
  /* A needle whose first byte occurs everywhere but never matches. */
  hay[N / 2] = 'c';
  memcpy(data_of(m), hay, N);
  assert_int_equal(rfind(m, "ac", NULL, NULL), -1);
  assert_int_equal(rfind(m, "bc", NULL, NULL), N / 2 - 1);
  assert_int_equal(rfind(m, "bca", NULL, NULL), -1);
  assert_int_equal(rfind(m, "bcb", NULL, NULL), N / 2 - 1);
  assert_int_equal(find(m, "bcb", NULL, NULL), N / 2 - 1);
  for (i = 0; i < 64; i++) {
    int64_t s = (int64_t)(rng() % N), e = (int64_t)(rng() % N);
    assert_int_equal(mmf_rfind(m, "bab", 3, &s, &e, &r), 0);
    assert_int_equal(r, ref_find(hay, N, (const uint8_t *)"bab", 3, s, e, 1));
    assert_int_equal(mmf_find(m, "bcb", 3, &s, &e, &r), 0);
    assert_int_equal(r, ref_find(hay, N, (const uint8_t *)"bcb", 3, s, e, 0));
  }
  free(hay);
}

/* ---- items (§M1, §M4) ---------------------------------------------------- */

static void test_get_item(void **state) {
  mmf_t *m = file_with("0123456789", 10, NULL), *a;
  (void)state;
  assert_int_equal(mmf_get_item(m, 0), '0');
  assert_int_equal(mmf_get_item(m, 9), '9');
  assert_int_equal(mmf_get_item(m, -1), '9');
  assert_int_equal(mmf_get_item(m, -10), '0');
  assert_int_equal(mmf_get_item(m, -3), '7');
  EXPECT_ERR(mmf_get_item(m, 10), MMF_EINDEX, "mmap index out of range");
  EXPECT_ERR(mmf_get_item(m, -11), MMF_EINDEX, "mmap index out of range");
  EXPECT_ERR(mmf_get_item(m, INT64_MAX), MMF_EINDEX, "mmap index out of range");
  EXPECT_ERR(mmf_get_item(m, INT64_MIN), MMF_EINDEX, "mmap index out of range");
  assert_int_equal(mmf_tell(m), 0);
  /* Bytes are returned as 0..255. */
  a = anon_with("\x80\xff", 2);
  assert_int_equal(mmf_get_item(a, 0), 128);
  assert_int_equal(mmf_get_item(a, -1), 255);
  /* Read-only maps can be indexed. */
  a = fx_map(-1, 3, MMF_ACCESS_READ, 0);
  assert_int_equal(mmf_get_item(a, 2), 0);
  EXPECT_ERR(mmf_get_item(a, 3), MMF_EINDEX, "mmap index out of range");
}

static void test_set_item(void **state) {
  const char *path;
  mmf_t *m = file_with("0123456789", 10, &path);
  (void)state;
  assert_int_equal(mmf_set_item(m, 0, 'a'), 0);
  assert_int_equal(mmf_set_item(m, -1, 'z'), 0);
  assert_int_equal(mmf_set_item(m, -10, 'A'), 0);
  assert_int_equal(mmf_set_item(m, 5, 0), 0);
  assert_int_equal(mmf_set_item(m, 6, 255), 0);
  expect_map(m, 0,
             "A1234\x00\xff"
             "78z",
             10);
  EXPECT_ERR(mmf_set_item(m, 10, 'a'), MMF_EINDEX, "mmap index out of range");
  EXPECT_ERR(mmf_set_item(m, -11, 'a'), MMF_EINDEX, "mmap index out of range");
  EXPECT_ERR(mmf_set_item(m, INT64_MIN, 'a'), MMF_EINDEX,
             "mmap index out of range");
  EXPECT_ERR(mmf_set_item(m, INT64_MAX, 'a'), MMF_EINDEX,
             "mmap index out of range");
  EXPECT_ERR(mmf_set_item(m, 0, 256), MMF_EVALUE,
             "mmap item value must be in range(0, 256)");
  EXPECT_ERR(mmf_set_item(m, -1, -1), MMF_EVALUE,
             "mmap item value must be in range(0, 256)");
  EXPECT_ERR(mmf_set_item(m, 0, INT_MIN), MMF_EVALUE,
             "mmap item value must be in range(0, 256)");
  EXPECT_ERR(mmf_set_item(m, 0, INT_MAX), MMF_EVALUE,
             "mmap item value must be in range(0, 256)");
  /* The index is checked before the value. */
  EXPECT_ERR(mmf_set_item(m, 10, 256), MMF_EINDEX, "mmap index out of range");
  EXPECT_ERR(mmf_set_item(m, -11, -1), MMF_EINDEX, "mmap index out of range");
  expect_map(m, 0,
             "A1234\x00\xff"
             "78z",
             10);
  assert_int_equal(mmf_tell(m), 0);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  expect_file(path,
              "A1234\x00\xff"
              "78z",
              10);
}

/* ---- slices (§M2, §M5) --------------------------------------------------- */

/* The indices of s[i:j:k] for a sequence of length len, following the
 * language reference: start/stop default to the ends for the sign of k;
 * negatives count from the end; out-of-range values are cut back to the
 * nearest end ("-1" and "len-1" for negative steps). The indices are then
 * enumerated one by one. */
static int64_t ref_slice(int64_t len, const int64_t *i, const int64_t *j,
                         const int64_t *k, int64_t *idx) {
  int64_t step = k != NULL ? *k : 1, start, stop, x, n = 0;
  uint64_t mag;
  assert_true(step != 0);
  mag = step > 0 ? (uint64_t)step : (uint64_t)0 - (uint64_t)step;
  if (step > 0) {
    start = i == NULL ? 0 : *i;
    stop = j == NULL ? len : *j;
    if (start < 0)
      start = start < -len ? 0 : start + len;
    if (start > len)
      start = len;
    if (stop < 0)
      stop = stop < -len ? 0 : stop + len;
    if (stop > len)
      stop = len;
    for (x = start; x < stop;) {
      idx[n++] = x;
      if ((uint64_t)(stop - x) <= mag)
        break;
      x += (int64_t)mag;
    }
  } else {
    start = i == NULL ? len - 1 : *i;
    stop = j == NULL ? -1 : *j;
    if (i != NULL && start < 0)
      start = start < -len ? -1 : start + len;
    if (start > len - 1)
      start = len - 1;
    if (j != NULL && stop < 0)
      stop = stop < -len ? -1 : stop + len;
    if (stop > len - 1)
      stop = len - 1;
    for (x = start; x > stop;) {
      idx[n++] = x;
      if ((uint64_t)(x - stop) <= mag)
        break;
      x -= (int64_t)mag;
    }
  }
  return n;
}

static void get_slice_str(const mmf_t *m, const int64_t *i, const int64_t *j,
                          const int64_t *k, const char *want) {
  char buf[64];
  int64_t n = -1;
  int rc = mmf_get_slice(m, i, j, k, buf, sizeof buf, &n);
  if (rc != 0)
    fail_msg("get_slice: %d %s", rc, mmf_errmsg());
  assert_int_equal(n, (int64_t)strlen(want));
  assert_memory_equal(buf, want, strlen(want));
}

static void test_slice_get_cases(void **state) {
  mmf_t *m = file_with("0123456789", 10, NULL);
  (void)state;
  get_slice_str(m, NULL, NULL, NULL, "0123456789");
  get_slice_str(m, NULL, NULL, I(-1), "9876543210");
  get_slice_str(m, I(1), I(-1), I(2), "1357");
  get_slice_str(m, NULL, NULL, I(3), "0369");
  get_slice_str(m, NULL, NULL, I(INT64_MIN), "9");
  get_slice_str(m, NULL, NULL, I(INT64_MAX), "0");
  get_slice_str(m, I(INT64_MIN), I(INT64_MAX), NULL, "0123456789");
  get_slice_str(m, I(INT64_MAX), I(INT64_MIN), I(-1), "9876543210");
  get_slice_str(m, I(INT64_MAX), I(INT64_MIN), I(INT64_MIN), "9");
  get_slice_str(m, I(-3), NULL, NULL, "789");
  get_slice_str(m, NULL, I(-3), NULL, "0123456");
  get_slice_str(m, I(-100), I(3), NULL, "012");
  get_slice_str(m, I(8), I(2), I(-3), "85");
  get_slice_str(m, I(2), I(8), I(-1), "");
  get_slice_str(m, I(5), I(2), NULL, "");
  get_slice_str(m, I(10), NULL, NULL, "");
  get_slice_str(m, I(100), NULL, I(-1), "9876543210");
  get_slice_str(m, I(-1), I(-11), I(-1), "9876543210");
  get_slice_str(m, I(-1), I(-10), I(-1), "987654321");
  get_slice_str(m, I(3), NULL, I(-1), "3210");
  get_slice_str(m, NULL, I(3), I(-1), "987654");
  get_slice_str(m, I(-100), I(-100), I(-1), "");
  get_slice_str(m, I(0), I(1), NULL, "0");
  get_slice_str(m, I(9), I(INT64_MAX), I(INT64_MAX), "9");
  get_slice_str(m, NULL, NULL, I(-3), "9630");
  assert_int_equal(mmf_tell(m), 0);
}

static void test_slice_step_zero(void **state) {
  mmf_t *m = anon_with("0123456789", 10), *r;
  char buf[16];
  int64_t n = -7;
  (void)state;
  EXPECT_ERR(mmf_get_slice(m, NULL, NULL, I(0), buf, sizeof buf, &n),
             MMF_EVALUE, "slice step cannot be zero");
  EXPECT_ERR(mmf_get_slice(m, I(1), I(5), I(0), buf, sizeof buf, &n),
             MMF_EVALUE, "slice step cannot be zero");
  assert_int_equal(n, -7);
  EXPECT_ERR(mmf_set_slice(m, NULL, NULL, I(0), "0123456789", 10), MMF_EVALUE,
             "slice step cannot be zero");
  /* The step is checked before the size of the data. */
  EXPECT_ERR(mmf_set_slice(m, NULL, NULL, I(0), "x", 1), MMF_EVALUE,
             "slice step cannot be zero");
  expect_map(m, 0, "0123456789", 10);
  /* ... and after read-only. */
  r = fx_map(-1, 10, MMF_ACCESS_READ, 0);
  EXPECT_ERR(mmf_set_slice(r, NULL, NULL, I(0), "x", 1), MMF_ETYPE,
             "mmap can't modify a readonly memory map.");
  EXPECT_ERR(mmf_get_slice(r, NULL, NULL, I(0), buf, sizeof buf, &n),
             MMF_EVALUE, "slice step cannot be zero");
}

static void test_slice_set_cases(void **state) {
  const char *path;
  mmf_t *m = file_with("0123456789", 10, &path);
  (void)state;
  assert_int_equal(mmf_set_slice(m, NULL, NULL, I(2), "abcde", 5), 0);
  expect_map(m, 0, "a1b3c5d7e9", 10);
  assert_int_equal(mmf_set_slice(m, NULL, NULL, I(-3), "WXYZ", 4), 0);
  expect_map(m, 0, "Z1bYc5X7eW", 10);
  assert_int_equal(mmf_set_slice(m, NULL, NULL, I(-1), "9876543210", 10), 0);
  expect_map(m, 0, "0123456789", 10);
  assert_int_equal(mmf_set_slice(m, I(-3), NULL, NULL, "xyz", 3), 0);
  expect_map(m, 0, "0123456xyz", 10);
  assert_int_equal(mmf_set_slice(m, NULL, NULL, I(INT64_MIN), "!", 1), 0);
  expect_map(m, 0, "0123456xy!", 10);
  assert_int_equal(mmf_set_slice(m, I(1), I(3), NULL, "AB", 2), 0);
  expect_map(m, 0, "0AB3456xy!", 10);
  /* Empty slices take empty data and change nothing. */
  assert_int_equal(mmf_set_slice(m, I(2), I(2), NULL, "", 0), 0);
  assert_int_equal(mmf_set_slice(m, I(5), I(2), NULL, NULL, 0), 0);
  assert_int_equal(mmf_set_slice(m, I(100), NULL, NULL, "", 0), 0);
  assert_int_equal(mmf_set_slice(m, I(2), I(8), I(-1), "", 0), 0);
  expect_map(m, 0, "0AB3456xy!", 10);
  /* Wrong sizes: IndexError, nothing written (no resizing ever). */
  EXPECT_ERR(mmf_set_slice(m, I(2), I(2), NULL, "x", 1), MMF_EINDEX,
             "mmap slice assignment is wrong size");
  EXPECT_ERR(mmf_set_slice(m, NULL, NULL, NULL, "123456789", 9), MMF_EINDEX,
             "mmap slice assignment is wrong size");
  EXPECT_ERR(mmf_set_slice(m, NULL, NULL, NULL, "12345678901", 11), MMF_EINDEX,
             "mmap slice assignment is wrong size");
  EXPECT_ERR(mmf_set_slice(m, NULL, NULL, I(2), "abcd", 4), MMF_EINDEX,
             "mmap slice assignment is wrong size");
  EXPECT_ERR(mmf_set_slice(m, NULL, NULL, I(-2), "abcdef", 6), MMF_EINDEX,
             "mmap slice assignment is wrong size");
  EXPECT_ERR(mmf_set_slice(m, I(0), I(3), NULL, "", 0), MMF_EINDEX,
             "mmap slice assignment is wrong size");
  expect_map(m, 0, "0AB3456xy!", 10);
  assert_int_equal(mmf_len(m), 10);
  assert_int_equal(mmf_tell(m), 0);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  expect_file(path, "0AB3456xy!", 10);
}

static void test_slice_buffer_too_small(void **state) {
  mmf_t *m = anon_with("0123456789", 10);
  char buf[16];
  int64_t n = -7;
  (void)state;
  EXPECT_ERR(mmf_get_slice(m, NULL, NULL, NULL, buf, 9, &n), MMF_EVALUE,
             "read buffer too small");
  EXPECT_ERR(mmf_get_slice(m, NULL, NULL, I(2), buf, 4, &n), MMF_EVALUE,
             "read buffer too small");
  assert_int_equal(n, -7);
  assert_int_equal(mmf_get_slice(m, NULL, NULL, I(2), buf, 5, &n), 0);
  assert_int_equal(n, 5);
  assert_memory_equal(buf, "02468", 5);
  assert_int_equal(mmf_get_slice(m, I(3), I(3), NULL, NULL, 0, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(mmf_get_slice(m, I(3), I(4), NULL, buf, 1, NULL), 0);
  assert_int_equal(buf[0], '3');
}

/* Every combination of interesting start/stop/step, on maps of several
 * lengths, against the reference model; reads, then writes. */
static void test_slice_model(void **state) {
  static const int64_t lens[] = {1, 2, 7, 16, 256};
  size_t li;
  (void)state;
  for (li = 0; li < sizeof lens / sizeof lens[0]; li++) {
    const int64_t len = lens[li];
    int64_t vals[24], steps[20], idx[300];
    uint8_t ref[256], got[256], data[256];
    int nv = 0, ns = 0, a, b, c;
    int64_t x, n, r;
    mmf_t *m = fx_map(-1, len, MMF_ACCESS_DEFAULT, 0);
    /* Python's test_extended_getslice indices plus the extremes. */
    static const int64_t fixed[] = {0, 1, 3, 19, 300, -1, -2, -31, -300};
    for (a = 0; a < 9; a++)
      vals[nv++] = fixed[a];
    vals[nv++] = INT64_MIN;
    vals[nv++] = INT64_MIN + 1;
    vals[nv++] = INT64_MAX;
    vals[nv++] = len;
    vals[nv++] = len - 1;
    vals[nv++] = len + 1;
    vals[nv++] = -len;
    vals[nv++] = -len - 1;
    vals[nv++] = -len + 1;
    for (a = 0; a < 9; a++)
      if (fixed[a] != 0)
        steps[ns++] = fixed[a];
    steps[ns++] = 2;
    steps[ns++] = -3;
    steps[ns++] = len;
    steps[ns++] = -len;
    steps[ns++] = INT64_MAX;
    steps[ns++] = INT64_MIN;
    steps[ns++] = INT64_MIN + 1;
    for (x = 0; x < len; x++)
      ref[x] = (uint8_t)(255 - x);
    memcpy(data_of(m), ref, (size_t)len);
    /* nv, ns index None. */
    for (a = 0; a <= nv; a++) {
      for (b = 0; b <= nv; b++) {
        for (c = 0; c <= ns; c++) {
          const int64_t *pi = a == nv ? NULL : &vals[a];
          const int64_t *pj = b == nv ? NULL : &vals[b];
          const int64_t *pk = c == ns ? NULL : &steps[c];
          int64_t want = ref_slice(len, pi, pj, pk, idx);
          n = -1;
          assert_int_equal(mmf_get_slice(m, pi, pj, pk, got, sizeof got, &n),
                           0);
          assert_int_equal(n, want);
          for (x = 0; x < want; x++)
            assert_int_equal(got[x], ref[idx[x]]);
          /* Assign the reversed selection, changed, like Python's
           * test_extended_set_del_slice. */
          for (x = 0; x < want; x++)
            data[x] = (uint8_t)(ref[idx[want - 1 - x]] ^ 0x5a);
          assert_int_equal(mmf_set_slice(m, pi, pj, pk, data, (size_t)want), 0);
          for (x = 0; x < want; x++)
            ref[idx[x]] = data[x];
          expect_map(m, 0, ref, (size_t)len);
          /* One byte more or less is the wrong size. */
          r = mmf_set_slice(m, pi, pj, pk, data, (size_t)want + 1);
          assert_int_equal(r, MMF_EINDEX);
          if (want > 0) {
            r = mmf_set_slice(m, pi, pj, pk, data, (size_t)want - 1);
            assert_int_equal(r, MMF_EINDEX);
          }
          expect_map(m, 0, ref, (size_t)len);
        }
      }
    }
    assert_int_equal(mmf_tell(m), 0);
  }
}

/* ---- move (§J) ----------------------------------------------------------- */

static void test_move_python_cases(void **state) {
  const char *path;
  static const char data[] = "0123456789";
  static const int64_t offs[] = {-100, -1, 0, 1, 100};
  char want[11];
  int64_t dest, src, count;
  size_t a, b, c;
  mmf_t *m = file_with("ABCDEabcde", 10, &path);
  (void)state;
  assert_int_equal(mmf_move(m, 5, 0, 5), 0);
  expect_map(m, 0, "ABCDEABCDE", 10);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  expect_file(path, "ABCDEABCDE", 10);

  /* Every valid (dest, src, count) of a 10-byte map. */
  m = fx_map(-1, 10, MMF_ACCESS_DEFAULT, 0);
  for (dest = 0; dest < 10; dest++) {
    for (src = 0; src < 10; src++) {
      for (count = 0; count < 10 - (dest > src ? dest : src); count++) {
        memcpy(want, data, 10);
        memmove(want + dest, data + src, (size_t)count);
        assert_int_equal(mmf_set_slice(m, NULL, NULL, NULL, data, 10), 0);
        assert_int_equal(mmf_move(m, dest, src, count), 0);
        expect_map(m, 0, want, 10);
      }
    }
  }

  /* Issue 5387: no crash for any of these, ValueError when invalid. */
  m = fx_map(-1, 100, MMF_ACCESS_DEFAULT, 0);
  for (a = 0; a < 5; a++)
    for (b = 0; b < 5; b++)
      for (c = 0; c < 5; c++) {
        int64_t d = offs[a], s = offs[b], n = offs[c];
        int ok = d >= 0 && s >= 0 && n >= 0 && 100 - d >= n && 100 - s >= n;
        if (ok)
          assert_int_equal(mmf_move(m, d, s, n), 0);
        else
          EXPECT_ERR(mmf_move(m, d, s, n), MMF_EVALUE,
                     "source, destination, or count out of range");
      }

  /* A single byte. */
  m = fx_map(-1, 1, MMF_ACCESS_DEFAULT, 0);
  EXPECT_ERR(mmf_move(m, 0, 0, 2), MMF_EVALUE,
             "source, destination, or count out of range");
  EXPECT_ERR(mmf_move(m, 1, 0, 1), MMF_EVALUE,
             "source, destination, or count out of range");
  EXPECT_ERR(mmf_move(m, 0, 1, 1), MMF_EVALUE,
             "source, destination, or count out of range");
  assert_int_equal(mmf_move(m, 0, 0, 1), 0);
  assert_int_equal(mmf_move(m, 0, 0, 0), 0);
}

static void test_move_bounds(void **state) {
  const char *msg = "source, destination, or count out of range";
  mmf_t *m = anon_with("0123456789", 10);
  (void)state;
  assert_int_equal(mmf_seek(m, 4, SEEK_SET, NULL), 0);
  assert_int_equal(mmf_move(m, 10, 0, 0), 0);
  assert_int_equal(mmf_move(m, 0, 10, 0), 0);
  assert_int_equal(mmf_move(m, 10, 10, 0), 0);
  assert_int_equal(mmf_move(m, 0, 0, 10), 0);
  EXPECT_ERR(mmf_move(m, 11, 0, 0), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_move(m, 0, 11, 0), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_move(m, 0, 0, 11), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_move(m, 1, 0, 10), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_move(m, 0, 1, 10), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_move(m, 6, 0, 5), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_move(m, -1, 0, 1), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_move(m, 0, -1, 1), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_move(m, 0, 0, -1), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_move(m, INT64_MIN, 0, 0), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_move(m, 0, 0, INT64_MAX), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_move(m, INT64_MAX, INT64_MAX, 1), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_move(m, INT64_MAX, 0, INT64_MIN), MMF_EVALUE, msg);
  expect_map(m, 0, "0123456789", 10);
  /* Overlapping moves in both directions (memmove). */
  assert_int_equal(mmf_move(m, 1, 0, 9), 0);
  expect_map(m, 0, "0012345678", 10);
  assert_int_equal(mmf_set_slice(m, NULL, NULL, NULL, "0123456789", 10), 0);
  assert_int_equal(mmf_move(m, 0, 1, 9), 0);
  expect_map(m, 0, "1234567899", 10);
  assert_int_equal(mmf_set_slice(m, NULL, NULL, NULL, "0123456789", 10), 0);
  assert_int_equal(mmf_move(m, 3, 1, 5), 0);
  expect_map(m, 0, "0121234589", 10);
  assert_int_equal(mmf_move(m, 5, 5, 5), 0);
  expect_map(m, 0, "0121234589", 10);
  /* move never touches the position. */
  assert_int_equal(mmf_tell(m), 4);
}

/* ---- flush (§I, Q4) ------------------------------------------------------ */

static struct {
  int n;
  void *ctx;
  int64_t off[16], len[16];
} hooks;
static void record_hook(void *ctx, int64_t off, int64_t len) {
  hooks.ctx = ctx;
  if (hooks.n < 16) {
    hooks.off[hooks.n] = off;
    hooks.len[hooks.n] = len;
  }
  hooks.n++;
}

static struct {
  int n;
  void *addr;
  size_t len;
  int flags;
} syncs;
static int recording_msync(void *addr, size_t len, int flags) {
  syncs.n++;
  syncs.addr = addr;
  syncs.len = len;
  syncs.flags = flags;
  return real.msync(addr, len, flags);
}

static void test_flush_ranges(void **state) {
  const char *msg = "flush values out of range";
  int fd = fx_file(NULL, (size_t)(2 * PS), NULL);
  mmf_t *m = fx_map(fd, 0, MMF_ACCESS_WRITE, 0), *small;
  uint8_t *p = data_of(m);
  (void)state;
  mmf__sys.msync = recording_msync;
  syncs.n = 0;
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  assert_ptr_equal(syncs.addr, p);
  assert_int_equal(syncs.len, 2 * PS);
  assert_int_equal(syncs.flags, MS_SYNC);
  /* offset alone: to the end. */
  assert_int_equal(mmf_flush(m, PS, -1), 0);
  assert_ptr_equal(syncs.addr, p + PS);
  assert_int_equal(syncs.len, PS);
  assert_int_equal(mmf_flush(m, PS, PS), 0);
  assert_int_equal(mmf_flush(m, 0, PS), 0);
  assert_ptr_equal(syncs.addr, p);
  assert_int_equal(syncs.len, PS);
  /* flush(len): size 0 passes. */
  assert_int_equal(mmf_flush(m, 2 * PS, -1), 0);
  assert_ptr_equal(syncs.addr, p + 2 * PS);
  assert_int_equal(syncs.len, 0);
  assert_int_equal(mmf_flush(m, 2 * PS, 0), 0);
  assert_int_equal(mmf_flush(m, 0, 0), 0);
  assert_int_equal(syncs.n, 7);

  EXPECT_ERR(mmf_flush(m, 2 * PS + 1, -1), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_flush(m, 0, -2), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_flush(m, 0, INT64_MIN), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_flush(m, -1, -1), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_flush(m, -PS, PS), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_flush(m, INT64_MIN, -1), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_flush(m, 0, 2 * PS + 1), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_flush(m, PS, PS + 1), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_flush(m, INT64_MAX, -1), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_flush(m, INT64_MAX, INT64_MAX), MMF_EVALUE, msg);
  EXPECT_ERR(mmf_flush(m, 0, INT64_MAX), MMF_EVALUE, msg);
  assert_int_equal(syncs.n, 7);

  /* msync wants a page-aligned start (Python's test_flush_return_value). */
  EXPECT_OS(mmf_flush(m, 1, 6), EINVAL, "msync");
  EXPECT_OS(mmf_flush(m, PS + 1, 0), EINVAL, "msync");
  EXPECT_OS(mmf_flush(m, PS / 2, -1), EINVAL, "msync");
  assert_int_equal(syncs.n, 10);

  /* On a short map flush(len) is unaligned. */
  small = file_with("0123456789", 10, NULL);
  assert_int_equal(mmf_flush(small, 0, -1), 0);
  EXPECT_OS(mmf_flush(small, 10, -1), EINVAL, "msync");
  EXPECT_ERR(mmf_flush(small, 11, -1), MMF_EVALUE, msg);
}

static void test_flush_flags(void **state) {
  mmf_t *m = file_with("0123456789", 10, NULL);
  (void)state;
  mmf__sys.msync = recording_msync;
  assert_int_equal(mmf_flush_flags(m, 0, -1, MMF_MS_ASYNC), 0);
  assert_int_equal(syncs.flags, MS_ASYNC);
  assert_int_equal(mmf_flush_flags(m, 0, -1, MMF_MS_SYNC), 0);
  assert_int_equal(syncs.flags, MS_SYNC);
  assert_int_equal(mmf_flush_flags(m, 0, 5, MMF_MS_INVALIDATE), 0);
  assert_int_equal(syncs.flags, MS_INVALIDATE);
  assert_int_equal(mmf_flush_flags(m, 0, -1, MMF_MS_SYNC | MMF_MS_INVALIDATE),
                   0);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  assert_int_equal(syncs.flags, MS_SYNC);
  EXPECT_OS(mmf_flush_flags(m, 0, -1, MMF_MS_SYNC | MMF_MS_ASYNC), EINVAL,
            "msync");
  EXPECT_OS(mmf_flush_flags(m, 0, -1, 0x40000), EINVAL, "msync");
  EXPECT_OS(mmf_flush_flags(m, 0, -1, -1), EINVAL, "msync");
  /* The range is checked first. */
  EXPECT_ERR(mmf_flush_flags(m, 0, -2, MMF_MS_SYNC | MMF_MS_ASYNC), MMF_EVALUE,
             "flush values out of range");
  EXPECT_ERR(mmf_flush_flags(m, 11, -1, MMF_MS_ASYNC), MMF_EVALUE,
             "flush values out of range");
}

/* The flush hook: file offset (map offset included) and length. */
static void test_flush_hook(void **state) {
  int fd = fx_file(NULL, (size_t)(4 * PS), NULL), ctx;
  mmf_t *m = fx_map(fd, 2 * PS, MMF_ACCESS_WRITE, PS), *o;
  (void)state;
  memset(&hooks, 0, sizeof hooks);
  assert_int_equal(mmf_set_flush_hook(m, record_hook, &ctx), 0);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  assert_int_equal(mmf_flush(m, PS, PS), 0);
  assert_int_equal(mmf_flush(m, PS, -1), 0);
  assert_int_equal(mmf_flush(m, 2 * PS, -1), 0);
  assert_int_equal(mmf_flush_flags(m, 0, PS, MMF_MS_ASYNC), 0);
  assert_int_equal(hooks.n, 5);
  assert_ptr_equal(hooks.ctx, &ctx);
  assert_int_equal(hooks.off[0], PS);
  assert_int_equal(hooks.len[0], 2 * PS);
  assert_int_equal(hooks.off[1], 2 * PS);
  assert_int_equal(hooks.len[1], PS);
  assert_int_equal(hooks.off[2], 2 * PS);
  assert_int_equal(hooks.len[2], PS);
  assert_int_equal(hooks.off[3], 3 * PS);
  assert_int_equal(hooks.len[3], 0);
  assert_int_equal(hooks.off[4], PS);
  assert_int_equal(hooks.len[4], PS);
  /* Failed flushes are not reported. */
  EXPECT_ERR(mmf_flush(m, 0, -2), MMF_EVALUE, "flush values out of range");
  EXPECT_OS(mmf_flush(m, 1, 1), EINVAL, "msync");
  EXPECT_OS(mmf_flush_flags(m, 0, -1, MMF_MS_SYNC | MMF_MS_ASYNC), EINVAL,
            "msync");
  assert_int_equal(hooks.n, 5);
  /* Removing the hook. */
  assert_int_equal(mmf_set_flush_hook(m, NULL, NULL), 0);
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  assert_int_equal(hooks.n, 5);

  /* Not for anonymous, read-only or copy-on-write maps. */
  o = fx_map(-1, PS, MMF_ACCESS_WRITE, 0);
  assert_int_equal(mmf_set_flush_hook(o, record_hook, NULL), 0);
  assert_int_equal(mmf_flush(o, 0, -1), 0);
  o = fx_open(-1, PS, MMF_MAP_PRIVATE, RW, 0, 0, 1);
  assert_int_equal(mmf_set_flush_hook(o, record_hook, NULL), 0);
  assert_int_equal(mmf_flush(o, 0, -1), 0);
  o = fx_map(fd, PS, MMF_ACCESS_READ, 0);
  assert_int_equal(mmf_set_flush_hook(o, record_hook, NULL), 0);
  assert_int_equal(mmf_flush(o, 0, -1), 0);
  o = fx_map(fd, PS, MMF_ACCESS_COPY, 0);
  assert_int_equal(mmf_set_flush_hook(o, record_hook, NULL), 0);
  assert_int_equal(mmf_flush(o, 0, -1), 0);
  /* MAP_PRIVATE with ACCESS_DEFAULT calls msync, but nothing reaches the
   * file, so there is nothing durable to report. */
  o = fx_open(fd, PS, MMF_MAP_PRIVATE, RW, 0, 0, 1);
  assert_int_equal(mmf_set_flush_hook(o, record_hook, NULL), 0);
  assert_int_equal(mmf_flush(o, 0, -1), 0);
  assert_int_equal(hooks.n, 5);

  /* A derived ACCESS_WRITE map reports. */
  o = fx_open(fd, PS, MMF_MAP_SHARED, MMF_PROT_WRITE, 0, 3 * PS, 1);
  assert_int_equal(mmf_set_flush_hook(o, record_hook, NULL), 0);
  assert_int_equal(mmf_flush(o, 0, -1), 0);
  assert_int_equal(hooks.n, 6);
  assert_int_equal(hooks.off[5], 3 * PS);
  assert_int_equal(hooks.len[5], PS);
}

/* I4: anonymous maps msync too (which succeeds on Linux). */
static void test_flush_anonymous(void **state) {
  mmf_t *m = fx_map(-1, 2 * PS, MMF_ACCESS_DEFAULT, 0);
  (void)state;
  mmf__sys.msync = recording_msync;
  syncs.n = 0;
  assert_int_equal(mmf_flush(m, 0, -1), 0);
  assert_int_equal(mmf_flush(m, PS, -1), 0);
  assert_int_equal(syncs.n, 2);
  EXPECT_OS(mmf_flush(m, 1, 1), EINVAL, "msync");
  EXPECT_ERR(mmf_flush(m, 0, 2 * PS + 1), MMF_EVALUE,
             "flush values out of range");
  /* Read-only and copy maps do not call msync at all. */
  m = fx_map(-1, PS, MMF_ACCESS_READ, 0);
  assert_int_equal(mmf_flush(m, 1, 1), 0);
  m = fx_map(-1, PS, MMF_ACCESS_COPY, 0);
  assert_int_equal(mmf_flush(m, 1, 1), 0);
  assert_int_equal(syncs.n, 3);
}

/* ---- madvise (§L) -------------------------------------------------------- */

static struct {
  int n;
  void *addr;
  size_t len;
  int advice;
} advs;
static int recording_madvise(void *addr, size_t len, int advice) {
  advs.n++;
  advs.addr = addr;
  advs.len = len;
  advs.advice = advice;
  return real.madvise(addr, len, advice);
}

static void test_madvise(void **state) {
  const int64_t size = 2 * PS;
  mmf_t *m = fx_open(-1, size, MMF_MAP_PRIVATE, RW, 0, 0, 1);
  uint8_t *p = data_of(m);
  (void)state;
  mmf__sys.madvise = recording_madvise;
  advs.n = 0;
  /* Python's test_madvise. */
  EXPECT_ERR(mmf_madvise(m, MMF_MADV_NORMAL, size, NULL), MMF_EVALUE,
             "madvise start out of bounds");
  EXPECT_ERR(mmf_madvise(m, MMF_MADV_NORMAL, -1, NULL), MMF_EVALUE,
             "madvise start out of bounds");
  EXPECT_ERR(mmf_madvise(m, MMF_MADV_NORMAL, INT64_MIN, NULL), MMF_EVALUE,
             "madvise start out of bounds");
  EXPECT_ERR(mmf_madvise(m, MMF_MADV_NORMAL, INT64_MAX, I(1)), MMF_EVALUE,
             "madvise start out of bounds");
  EXPECT_ERR(mmf_madvise(m, MMF_MADV_NORMAL, 0, I(-1)), MMF_EVALUE,
             "madvise length invalid");
  EXPECT_ERR(mmf_madvise(m, MMF_MADV_NORMAL, 0, I(INT64_MIN)), MMF_EVALUE,
             "madvise length invalid");
  /* start is checked before length. */
  EXPECT_ERR(mmf_madvise(m, MMF_MADV_NORMAL, size, I(-1)), MMF_EVALUE,
             "madvise start out of bounds");
  EXPECT_ERR(mmf_madvise(m, MMF_MADV_NORMAL, PS, I(INT64_MAX)), MMF_EOVERFLOW,
             "madvise length too large");
  EXPECT_ERR(mmf_madvise(m, MMF_MADV_NORMAL, 1, I(INT64_MAX)), MMF_EOVERFLOW,
             "madvise length too large");
  EXPECT_ERR(mmf_madvise(m, MMF_MADV_NORMAL, PS, I(INT64_MAX - PS + 1)),
             MMF_EOVERFLOW, "madvise length too large");
  assert_int_equal(advs.n, 0);

  /* Valid calls; the length is clamped to the map. */
  assert_int_equal(mmf_madvise(m, MMF_MADV_NORMAL, 0, NULL), 0);
  assert_ptr_equal(advs.addr, p);
  assert_int_equal(advs.len, size);
  assert_int_equal(advs.advice, MADV_NORMAL);
  assert_int_equal(mmf_madvise(m, MMF_MADV_RANDOM, PS, NULL), 0);
  assert_ptr_equal(advs.addr, p + PS);
  assert_int_equal(advs.len, PS);
  assert_int_equal(advs.advice, MADV_RANDOM);
  assert_int_equal(mmf_madvise(m, MMF_MADV_NORMAL, PS, I(PS)), 0);
  assert_int_equal(advs.len, PS);
  assert_int_equal(mmf_madvise(m, MMF_MADV_NORMAL, 0, I(size + 100)), 0);
  assert_int_equal(advs.len, size);
  assert_int_equal(mmf_madvise(m, MMF_MADV_NORMAL, PS, I(INT64_MAX - PS)), 0);
  assert_ptr_equal(advs.addr, p + PS);
  assert_int_equal(advs.len, PS);
  assert_int_equal(mmf_madvise(m, MMF_MADV_NORMAL, 0, I(INT64_MAX)), 0);
  assert_int_equal(advs.len, size);
  assert_int_equal(mmf_madvise(m, MMF_MADV_SEQUENTIAL, 0, I(0)), 0);
  assert_int_equal(advs.len, 0);
  /* The last byte: clamped to 1 byte, and refused by the kernel because
   * the start is not page-aligned. */
  EXPECT_OS(mmf_madvise(m, MMF_MADV_WILLNEED, size - 1, NULL), EINVAL,
            "madvise");
  assert_ptr_equal(advs.addr, p + size - 1);
  assert_int_equal(advs.len, 1);
  assert_int_equal(advs.n, 8);
}

static void test_madvise_os_errors_and_effect(void **state) {
  mmf_t *m = fx_open(-1, 2 * PS, MMF_MAP_PRIVATE, RW, 0, 0, 1);
  uint8_t *p = data_of(m);
  (void)state;
  EXPECT_OS(mmf_madvise(m, MMF_MADV_NORMAL, 1, NULL), EINVAL, "madvise");
  EXPECT_OS(mmf_madvise(m, MMF_MADV_NORMAL, PS + 7, I(10)), EINVAL, "madvise");
  EXPECT_OS(mmf_madvise(m, 12345, 0, NULL), EINVAL, "madvise");
  /* The advice really reaches the kernel: DONTNEED drops private pages. */
  memset(p, 0xaa, (size_t)(2 * PS));
  assert_int_equal(mmf_madvise(m, MMF_MADV_DONTNEED, PS, I(PS)), 0);
  assert_int_equal(mmf_get_item(m, 0), 0xaa);
  assert_int_equal(mmf_get_item(m, PS - 1), 0xaa);
  assert_int_equal(mmf_get_item(m, PS), 0);
  assert_int_equal(mmf_get_item(m, 2 * PS - 1), 0);
  /* Read-only maps take advice too. */
  m = fx_map(-1, PS, MMF_ACCESS_READ, 0);
  assert_int_equal(mmf_madvise(m, MMF_MADV_WILLNEED, 0, NULL), 0);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_read),
      T(test_read_byte),
      T(test_readline),
      T(test_seek),
      T(test_write),
      T(test_write_byte),
      T(test_find_python_cases),
      T(test_find_defaults_to_position),
      T(test_find_bounds),
      T(test_find_empty_needle),
      T(test_find_stays_inside_map),
      T(test_find_tougher),
      T(test_find_model),
      T(test_rfind_many_matches),
      T(test_get_item),
      T(test_set_item),
      T(test_slice_get_cases),
      T(test_slice_step_zero),
      T(test_slice_set_cases),
      T(test_slice_buffer_too_small),
      T(test_slice_model),
      T(test_move_python_cases),
      T(test_move_bounds),
      T(test_flush_ranges),
      T(test_flush_flags),
      T(test_flush_hook),
      T(test_flush_anonymous),
      T(test_madvise),
      T(test_madvise_os_errors_and_effect),
  };
#undef T
  PS = mmf_pagesize();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
