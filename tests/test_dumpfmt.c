/*
 * test_dumpfmt.c — the dump text format module of the mapkv tool
 * (tools/dumpfmt.c, compiled into this test): header parsing, both item
 * encodings, empty items, limits, every error with its line number, state
 * rules, FILE input across read chunks, writer/reader round trips, and a
 * deterministic mutation loop that must never crash or over-read (run it
 * under ASan).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dumpfmt.h"

#define BIG 1000000u

/* A reader over an exact-size heap copy of s, so that ASan sees any read
 * past the end. The copy is freed with the reader via free_reader(). */
typedef struct mem_reader {
  dumpfmt_reader *r;
  uint8_t *copy;
} mem_reader;

static mem_reader open_mem(const void *s, size_t n, size_t max_key,
                           size_t max_value) {
  mem_reader m;
  m.copy = malloc(n > 0 ? n : 1);
  assert_non_null(m.copy);
  if (n > 0)
    memcpy(m.copy, s, n);
  m.r = dumpfmt_reader_mem(m.copy, n, max_key, max_value);
  assert_non_null(m.r);
  return m;
}

static void free_reader(mem_reader *m) {
  dumpfmt_reader_free(m->r);
  free(m->copy);
}

/* ---- parsing ------------------------------------------------------------ */

static void test_bytevalue(void **state) {
  static const char in[] = "VERSION=3\nformat=bytevalue\ntype=btree\n"
                           "mapsize=1048576\nHEADER=END\n"
                           " 6b6579\n 0076FF\n 00\n \nDATA=END\n";
  mem_reader m = open_mem(in, strlen(in), BIG, BIG);
  dumpfmt_header h;
  const uint8_t *k, *v;
  size_t kl, vl;
  (void)state;
  assert_int_equal(dumpfmt_read_header(m.r, &h), 0);
  assert_int_equal(h.version, 3);
  assert_int_equal(h.format, DUMPFMT_BYTEVALUE);
  assert_string_equal(h.type, "btree");
  assert_int_equal(h.duplicates, 0);
  assert_int_equal(h.lines, 5);
  assert_int_equal(dumpfmt_read_record(m.r, &k, &kl, &v, &vl), 1);
  assert_int_equal(kl, 3);
  assert_memory_equal(k, "key", 3);
  assert_int_equal(vl, 3);
  assert_memory_equal(v, "\x00\x76\xff", 3);
  assert_int_equal(dumpfmt_read_record(m.r, &k, &kl, &v, &vl), 1);
  assert_int_equal(kl, 1);
  assert_int_equal(k[0], 0);
  assert_int_equal(vl, 0);
  assert_non_null(v);
  assert_int_equal(dumpfmt_read_record(m.r, &k, &kl, &v, &vl), 0);
  assert_int_equal(dumpfmt_read_record(m.r, &k, &kl, &v, &vl), 0);
  assert_int_equal(dumpfmt_line(m.r), 10);
  assert_int_equal(dumpfmt_consumed(m.r), strlen(in));
  assert_string_equal(dumpfmt_errmsg(m.r), "");
  free_reader(&m);
}

static void test_print(void **state) {
  /* Printable bytes as is, "\\" a backslash, "\XX" any byte (either case),
   * raw non-printables accepted too. */
  static const char in[] = "VERSION=3\nformat=print\nHEADER=END\n"
                           " a b\\\\c\\0a\\FF\n \\\\\\\\\\00\x01\xe9\r\n"
                           " \n \nDATA=END";
  mem_reader m = open_mem(in, strlen(in), BIG, BIG);
  dumpfmt_header h;
  const uint8_t *k, *v;
  size_t kl, vl;
  (void)state;
  assert_int_equal(dumpfmt_read_header(m.r, &h), 0);
  assert_int_equal(h.format, DUMPFMT_PRINT);
  assert_string_equal(h.type, "");
  assert_int_equal(dumpfmt_read_record(m.r, &k, &kl, &v, &vl), 1);
  assert_int_equal(kl, 7);
  assert_memory_equal(k, "a b\\c\n\xff", 7);
  assert_int_equal(vl, 6);
  assert_memory_equal(v, "\\\\\x00\x01\xe9\r", 6);
  assert_int_equal(dumpfmt_read_record(m.r, &k, &kl, &v, &vl), 1);
  assert_int_equal(kl, 0);
  assert_int_equal(vl, 0);
  /* DATA=END without a final newline. */
  assert_int_equal(dumpfmt_read_record(m.r, &k, &kl, &v, &vl), 0);
  free_reader(&m);
}

static void test_header_keywords(void **state) {
  static const char in[] = "VERSION=3\ndatabase=x\ntype=averyveryverylongtype\n"
                           "duplicates=1\nkeys=1\nfoo=\nx=y=z\nHEADER=END\n"
                           "DATA=END\n\n\n";
  mem_reader m = open_mem(in, strlen(in), BIG, BIG);
  dumpfmt_header h;
  const uint8_t *k, *v;
  size_t kl, vl;
  (void)state;
  assert_int_equal(dumpfmt_read_header(m.r, &h), 0);
  assert_int_equal(h.format, DUMPFMT_BYTEVALUE); /* the default */
  assert_string_equal(h.type, "averyveryverylo");
  assert_int_equal(h.duplicates, 1);
  /* Blank lines after DATA=END are allowed. */
  assert_int_equal(dumpfmt_read_record(m.r, &k, &kl, &v, &vl), 0);
  free_reader(&m);
}

/* Inputs that must fail, the code, and a piece of the message. */
static const struct bad {
  const char *in;
  int code;
  const char *msg;
} bads[] = {
    {"", DUMPFMT_ESYNTAX, "empty input"},
    {"VERSION=3\n", DUMPFMT_ESYNTAX, "line 1: the input ends in the header"},
    {"VERSION=3\n\nHEADER=END\n", DUMPFMT_ESYNTAX, "line 2: empty line"},
    {"VERSION=2\nHEADER=END\n", DUMPFMT_ESYNTAX, "line 1: unsupported"},
    {"format=bytevalue\nHEADER=END\nDATA=END\n", DUMPFMT_ESYNTAX,
     "line 2: the header has no VERSION"},
    {"VERSION=3\nformat=xml\n", DUMPFMT_ESYNTAX, "line 2: unknown format"},
    {"VERSION=3\nnoequals\n", DUMPFMT_ESYNTAX, "line 2: expected NAME=VALUE"},
    {"VERSION=3\n=x\n", DUMPFMT_ESYNTAX, "line 2: expected NAME=VALUE"},
    {"VERSION=3\n 61\n", DUMPFMT_ESYNTAX, "line 2: data line in the header"},
    {"VERSION=3\nkeys=0\n", DUMPFMT_ESYNTAX, "line 2: the dump holds values"},
    {"VERSION=3\r\n", DUMPFMT_ESYNTAX, "line 1: carriage return"},
    {"VERSION=3\nHEADER=END\n", DUMPFMT_ESYNTAX,
     "line 2: the input ends "
     "without DATA=END"},
    {"VERSION=3\nHEADER=END\n 61\n", DUMPFMT_ESYNTAX,
     "line 3: the input ends after a key"},
    {"VERSION=3\nHEADER=END\n 61\nDATA=END\n", DUMPFMT_ESYNTAX,
     "line 4: DATA=END after a key"},
    {"VERSION=3\nHEADER=END\n 6\n 62\n", DUMPFMT_ESYNTAX,
     "line 3: odd number of hex digits (1) in a key"},
    {"VERSION=3\nHEADER=END\n 61\n 6z\n", DUMPFMT_ESYNTAX,
     "line 4, column 3: 'z' is not a hex digit"},
    {"VERSION=3\nHEADER=END\n 61\n 62\r\n", DUMPFMT_ESYNTAX,
     "line 4: carriage return"},
    {"VERSION=3\nHEADER=END\n 61\n 6\x01\n", DUMPFMT_ESYNTAX,
     "line 4, column 3: byte 0x01 is not a hex digit"},
    {"VERSION=3\nHEADER=END\n61\n", DUMPFMT_ESYNTAX,
     "line 3: expected a key line (starting with a space) or DATA=END, got "
     "\"61\""},
    {"VERSION=3\nHEADER=END\n 61\n62\n", DUMPFMT_ESYNTAX,
     "line 4: expected a value line"},
    {"VERSION=3\nHEADER=END\n\n", DUMPFMT_ESYNTAX, "line 3: empty line"},
    {"VERSION=3\nformat=print\nHEADER=END\n \\\n", DUMPFMT_ESYNTAX,
     "line 4, column 2: bad escape"},
    {"VERSION=3\nformat=print\nHEADER=END\n a\\0\n", DUMPFMT_ESYNTAX,
     "line 4, column 3: bad escape"},
    {"VERSION=3\nformat=print\nHEADER=END\n \\0g\n", DUMPFMT_ESYNTAX,
     "line 4, column 2: bad escape"},
    {"VERSION=3\nHEADER=END\nDATA=END\nVERSION=3\n", DUMPFMT_ESYNTAX,
     "line 4: a second database"},
    {"VERSION=3\nHEADER=END\nDATA=END\n x\n", DUMPFMT_ESYNTAX,
     "line 4: unexpected data after DATA=END"},
    {"VERSION=3\nHEADER=END\nDATA=ENDX\n", DUMPFMT_ESYNTAX,
     "line 3: expected a key line"},
    /* limits: keys of at most 4 bytes, values of at most 8 */
    {"VERSION=3\nHEADER=END\n 6162636465\n", DUMPFMT_ETOOBIG,
     "line 3: key longer than the limit of 4 bytes"},
    {"VERSION=3\nHEADER=END\n 61\n 616263646566676869\n", DUMPFMT_ETOOBIG,
     "line 4: value longer than the limit of 8 bytes"},
    {"VERSION=3\nformat=print\nHEADER=END\n a\n abcdefghi\n", DUMPFMT_ETOOBIG,
     "line 5: value of 9 bytes exceeds the limit of 8"},
    {"VERSION=3\nformat=print\nHEADER=END\n abcde\n", DUMPFMT_ETOOBIG,
     "line 4: key of 5 bytes exceeds the limit of 4"},
};

static void test_errors(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
    mem_reader m = open_mem(bads[i].in, strlen(bads[i].in), 4, 8);
    dumpfmt_header h;
    const uint8_t *k, *v;
    size_t kl, vl;
    int rc = dumpfmt_read_header(m.r, &h);
    while (rc == 0 && (rc = dumpfmt_read_record(m.r, &k, &kl, &v, &vl)) == 1)
      rc = 0;
    if (rc != bads[i].code || strstr(dumpfmt_errmsg(m.r), bads[i].msg) == NULL)
      fail_msg("input %zu: got %d \"%s\", want %d \"%s\"", i, rc,
               dumpfmt_errmsg(m.r), bads[i].code, bads[i].msg);
    /* Errors are sticky. */
    assert_int_equal(dumpfmt_read_record(m.r, &k, &kl, &v, &vl), rc);
    free_reader(&m);
  }
}

static void test_state(void **state) {
  static const char in[] = "VERSION=3\nHEADER=END\nDATA=END\n";
  mem_reader m = open_mem(in, strlen(in), BIG, BIG);
  dumpfmt_header h;
  const uint8_t *k, *v;
  size_t kl, vl;
  (void)state;
  assert_int_equal(dumpfmt_read_record(m.r, &k, &kl, &v, &vl), DUMPFMT_ESTATE);
  assert_non_null(strstr(dumpfmt_errmsg(m.r), "header"));
  free_reader(&m);
  m = open_mem(in, strlen(in), BIG, BIG);
  assert_int_equal(dumpfmt_read_header(m.r, &h), 0);
  assert_int_equal(dumpfmt_read_header(m.r, &h), DUMPFMT_ESTATE);
  free_reader(&m);
  dumpfmt_reader_free(NULL);
}

/* ---- writing, and FILE input -------------------------------------------- */

static void test_encode(void **state) {
  char out[64];
  uint8_t bin[8];
  size_t n, bad;
  (void)state;
  n = dumpfmt_encode(DUMPFMT_BYTEVALUE, "\x00\xab\x5c", 3, out);
  assert_int_equal(n, 6);
  assert_memory_equal(out, "00ab5c", 6);
  n = dumpfmt_encode(DUMPFMT_PRINT, "a \\\x7f\x1f~\xff", 7, out);
  assert_int_equal(n, 14);
  assert_memory_equal(out, "a \\\\\\7f\\1f~\\ff", 14);
  assert_int_equal(dumpfmt_encoded_max(5), 15);
  assert_int_equal(dumpfmt_encoded_max(SIZE_MAX / 2), SIZE_MAX);
  assert_int_equal(dumpfmt_hex_decode("00aBFf", 6, bin, &n, &bad), 0);
  assert_int_equal(n, 3);
  assert_memory_equal(bin, "\x00\xab\xff", 3);
  assert_int_equal(dumpfmt_hex_decode("", 0, bin, &n, &bad), 0);
  assert_int_equal(n, 0);
  assert_int_equal(dumpfmt_hex_decode("0g", 2, bin, &n, &bad), -1);
  assert_int_equal(bad, 1);
  assert_int_equal(dumpfmt_hex_decode("abc", 3, bin, &n, &bad), -1);
  assert_int_equal(bad, 3);
}

/* Writes items with the writer to a temporary FILE, reads them back with a
 * FILE reader: values far larger than the reader's 64 KiB chunk, every byte
 * value, empty items. */
static void roundtrip(int format) {
  enum { N = 6 };
  static const size_t sizes[N] = {0, 1, 256, 70000, 200001, 3};
  uint8_t *items[N];
  FILE *f = tmpfile();
  dumpfmt_reader *r;
  dumpfmt_header h;
  uint32_t x = 12345;
  assert_non_null(f);
  for (int i = 0; i < N; i++) {
    items[i] = malloc(sizes[i] + 1);
    assert_non_null(items[i]);
    for (size_t j = 0; j < sizes[i]; j++) {
      x = x * 1103515245u + 12345u;
      items[i][j] = i == 2 ? (uint8_t)j : (uint8_t)(x >> 16);
    }
  }
  assert_int_equal(dumpfmt_write_header(f, format, 1u << 20), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(dumpfmt_write_item(f, format, items[i], sizes[i]), 0);
  assert_int_equal(dumpfmt_write_item(f, format, items[0], 0), 0);
  assert_int_equal(dumpfmt_write_item(f, format, items[1], 1), 0);
  assert_int_equal(dumpfmt_write_end(f), 0);
  rewind(f);

  r = dumpfmt_reader_file(f, BIG, BIG);
  assert_non_null(r);
  assert_int_equal(dumpfmt_read_header(r, &h), 0);
  assert_int_equal(h.format, format);
  assert_string_equal(h.type, "btree");
  for (int i = 0; i + 1 < N + 2; i += 2) {
    const uint8_t *k, *v;
    size_t kl, vl;
    int a = i < N ? i : 0, b = i < N ? i + 1 : 1;
    assert_int_equal(dumpfmt_read_record(r, &k, &kl, &v, &vl), 1);
    assert_int_equal(kl, sizes[a]);
    assert_int_equal(vl, sizes[b]);
    if (kl > 0)
      assert_memory_equal(k, items[a], kl);
    if (vl > 0)
      assert_memory_equal(v, items[b], vl);
  }
  {
    const uint8_t *k, *v;
    size_t kl, vl;
    assert_int_equal(dumpfmt_read_record(r, &k, &kl, &v, &vl), 0);
  }
  dumpfmt_reader_free(r);
  fclose(f);
  for (int i = 0; i < N; i++)
    free(items[i]);
}

static void test_roundtrip_bytevalue(void **state) {
  (void)state;
  roundtrip(DUMPFMT_BYTEVALUE);
}

static void test_roundtrip_print(void **state) {
  (void)state;
  roundtrip(DUMPFMT_PRINT);
}

/* A long line that spans chunks and exceeds the limit fails cleanly. */
static void test_file_limit(void **state) {
  FILE *f = tmpfile();
  dumpfmt_reader *r;
  dumpfmt_header h;
  const uint8_t *k, *v;
  size_t kl, vl;
  (void)state;
  assert_non_null(f);
  fputs("VERSION=3\nHEADER=END\n 61\n ", f);
  for (int i = 0; i < 300000; i++)
    fputs("ab", f);
  fputs("\nDATA=END\n", f);
  rewind(f);
  r = dumpfmt_reader_file(f, 10, 200000);
  assert_int_equal(dumpfmt_read_header(r, &h), 0);
  assert_int_equal(dumpfmt_read_record(r, &k, &kl, &v, &vl), DUMPFMT_ETOOBIG);
  assert_non_null(strstr(dumpfmt_errmsg(r), "line 4: value longer"));
  dumpfmt_reader_free(r);
  fclose(f);
}

/* ---- mutations ---------------------------------------------------------- */

static void test_mutations(void **state) {
  static const char seed[] =
      "VERSION=3\nformat=print\ntype=btree\nHEADER=END\n a\\\\b\n \\00\\ff\n"
      " \n x\nDATA=END\n";
  static const char seed2[] = "VERSION=3\nformat=bytevalue\nHEADER=END\n"
                              " 00ff\n 6162\n \n 5c\nDATA=END\n";
  static const char alphabet[] = " \n\\=0aF9gVERSION3HEADER=ENDDATA=END\r\x00";
  uint32_t x = 1;
  (void)state;
  for (int iter = 0; iter < 20000; iter++) {
    const char *s = (iter & 1) ? seed : seed2;
    size_t n = strlen(s), len;
    uint8_t buf[256];
    mem_reader m;
    dumpfmt_header h;
    int edits, rc;
    memcpy(buf, s, n);
    len = n;
    x = x * 1664525u + 1013904223u;
    edits = 1 + (int)(x >> 29);
    for (int e = 0; e < edits; e++) {
      size_t at;
      x = x * 1664525u + 1013904223u;
      at = len > 0 ? (x >> 8) % len : 0;
      switch ((x >> 4) % 4) {
      case 0: /* replace a byte */
        if (len > 0)
          buf[at] = (uint8_t)alphabet[(x >> 20) % (sizeof alphabet - 1)];
        break;
      case 1: /* delete a byte */
        if (len > 0) {
          memmove(buf + at, buf + at + 1, len - at - 1);
          len--;
        }
        break;
      case 2: /* insert a byte */
        if (len < sizeof buf) {
          memmove(buf + at + 1, buf + at, len - at);
          buf[at] = (uint8_t)(x >> 24);
          len++;
        }
        break;
      default: /* truncate */
        len = at;
        break;
      }
    }
    m = open_mem(buf, len, 3, 5);
    rc = dumpfmt_read_header(m.r, &h);
    for (int guard = 0; rc == 0 && guard < 1000; guard++) {
      const uint8_t *k, *v;
      size_t kl, vl;
      rc = dumpfmt_read_record(m.r, &k, &kl, &v, &vl);
      if (rc == 1) {
        assert_true(kl <= 3 && vl <= 5);
        rc = 0;
      } else if (rc == 0) {
        break;
      }
    }
    assert_true(rc <= 0);
    if (rc < 0)
      assert_true(strlen(dumpfmt_errmsg(m.r)) > 0);
    free_reader(&m);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bytevalue),
      cmocka_unit_test(test_print),
      cmocka_unit_test(test_header_keywords),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_state),
      cmocka_unit_test(test_encode),
      cmocka_unit_test(test_roundtrip_bytevalue),
      cmocka_unit_test(test_roundtrip_print),
      cmocka_unit_test(test_file_limit),
      cmocka_unit_test(test_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
