/*
 * test_format.c — the bytes of a mapkv file (FORMAT.md) through format.h:
 * the header page (both copies, every field at its offset, the failure
 * codes) and records (layout, round trips, every invalid header, single-bit
 * damage, foreign file ids, and bounds: decode never reads past `avail`,
 * which the ASan build checks with exact-size heap buffers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <xxhash.h>

#include "mapkv/mapkv.h"
#include "store/format.h"

static const uint8_t MAGIC[8] = {0x4D, 0x41, 0x50, 0x4B,
                                 0x56, 0x00, 0x1A, 0x0A};
#define FID 0x0123456789ABCDEFull

/* ---- helpers ------------------------------------------------------------- */

static mapkv__header sample_header(void) {
  mapkv__header h;
  memset(&h, 0, sizeof h);
  h.version = 2;
  h.page_size = 4096;
  h.flags = MAPKV__HF_CLEAN;
  h.file_id = 0x0102030405060708ull;
  h.generation = 0x1112131415161718ull;
  h.data_end = 0x2122232425262728ull;
  h.last_seq = 0x3132333435363738ull;
  h.live_records = 0x4142434445464748ull;
  h.live_bytes = 0x5152535455565758ull;
  h.created = 0x6162636465666768ull;
  h.max_key = 0x0000A1A2u;
  h.max_value = 0x71727374u;
  h.sealed_end = 0x0000818283848586ull;
  return h;
}

static void assert_header_eq(const mapkv__header *a, const mapkv__header *b) {
  assert_int_equal(a->version, b->version);
  assert_int_equal(a->page_size, b->page_size);
  assert_int_equal(a->flags, b->flags);
  assert_true(a->file_id == b->file_id);
  assert_true(a->generation == b->generation);
  assert_true(a->data_end == b->data_end);
  assert_true(a->last_seq == b->last_seq);
  assert_true(a->live_records == b->live_records);
  assert_true(a->live_bytes == b->live_bytes);
  assert_true(a->created == b->created);
  assert_int_equal(a->max_key, b->max_key);
  assert_int_equal(a->max_value, b->max_value);
  assert_true(a->sealed_end == b->sealed_end);
}

/* A header page (exactly 4096 heap bytes) with copy A = *a, copy B = *b. */
static uint8_t *page_with(const mapkv__header *a, const mapkv__header *b) {
  uint8_t *p = calloc(1, MAPKV__HDR_PAGE);
  assert_non_null(p);
  if (a != NULL)
    mapkv__header_encode(p, a);
  if (b != NULL)
    mapkv__header_encode(p + MAPKV__HDR_COPY_B, b);
  return p;
}

/* Re-checksums one header copy after a test edited its fields. */
static void rechecksum(uint8_t *copy) {
  mapkv__put_le(copy + 120, XXH3_64bits(copy, 120), 8);
}

/* A heap buffer of exactly n bytes (at least 1 allocated byte) holding
 * src[0..n); reading src[n] would be a heap-buffer-overflow under ASan. */
static uint8_t *exact_copy(const uint8_t *src, size_t n) {
  uint8_t *p = malloc(n > 0 ? n : 1);
  assert_non_null(p);
  if (n > 0)
    memcpy(p, src, n);
  return p;
}

static int decode_exact(const uint8_t *src, size_t n, uint64_t fid, int verify,
                        mapkv__rec *r) {
  uint8_t *p = exact_copy(src, n);
  int rc = mapkv__rec_decode(p, n, fid, verify, r);
  free(p);
  return rc;
}

/* ---- header -------------------------------------------------------------- */

static void test_header_roundtrip(void **state) {
  (void)state;
  mapkv__header h = sample_header(), out;
  uint8_t *p = page_with(&h, &h);
  memset(&out, 0xAA, sizeof out);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   0);
  assert_header_eq(&out, &h);

  /* Extreme values survive too. */
  h.page_size = 1u << 30;
  h.flags = 0;
  h.file_id = UINT64_MAX;
  h.generation = 0;
  h.data_end = UINT64_MAX;
  h.last_seq = MAPKV__SEQ_MAX;
  h.live_records = 0;
  h.live_bytes = UINT64_MAX;
  h.created = 1;
  h.sealed_end = UINT64_MAX;
  h.max_key = MAPKV_KEY_MAX;
  h.max_value = MAPKV_VALUE_MAX;
  mapkv__header_encode(p, &h);
  mapkv__header_encode(p + MAPKV__HDR_COPY_B, &h);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   0);
  assert_header_eq(&out, &h);
  h.page_size = 512;
  h.sealed_end = 4096;
  h.max_key = 1;
  h.max_value = 1;
  mapkv__header_encode(p, &h);
  mapkv__header_encode(p + MAPKV__HDR_COPY_B, &h);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   0);
  assert_header_eq(&out, &h);

  /* A longer buffer (the whole mapped file) decodes the same. */
  uint8_t *big = calloc(1, 3 * MAPKV__HDR_PAGE);
  assert_non_null(big);
  memcpy(big, p, MAPKV__HDR_PAGE);
  memset(big + MAPKV__HDR_PAGE, 0x5A, 2 * MAPKV__HDR_PAGE);
  assert_int_equal(
      mapkv__header_decode(big, 3 * MAPKV__HDR_PAGE, &out, NULL, NULL), 0);
  assert_header_eq(&out, &h);
  free(big);
  free(p);
}

static void test_header_layout(void **state) {
  (void)state;
  mapkv__header h = sample_header();
  uint8_t b[256];
  memset(b, 0xEE, sizeof b);
  mapkv__header_encode(b, &h);

  /* Magic, literally. */
  assert_memory_equal(b, MAGIC, 8);
  assert_memory_equal(b, "MAPKV\0\x1a\n", 8);
  /* version 2 at 8, data start 4096 at 12, page size at 16, flags at 20. */
  static const uint8_t v_ds_ps_fl[16] = {2, 0,    0, 0, 0x00, 0x10, 0, 0,
                                         0, 0x10, 0, 0, 1,    0,    0, 0};
  assert_memory_equal(b + 8, v_ds_ps_fl, 16);
  /* file id at 24, little-endian. */
  static const uint8_t fid[8] = {8, 7, 6, 5, 4, 3, 2, 1};
  assert_memory_equal(b + 24, fid, 8);
  /* Every u64 field at its offset. */
  assert_true(mapkv__get_le(b + 32, 8) == h.generation);
  assert_int_equal(b[32], 0x18);
  assert_int_equal(b[39], 0x11);
  assert_true(mapkv__get_le(b + 40, 8) == h.data_end);
  assert_true(mapkv__get_le(b + 48, 8) == h.last_seq);
  assert_true(mapkv__get_le(b + 56, 8) == h.live_records);
  assert_true(mapkv__get_le(b + 64, 8) == h.live_bytes);
  assert_true(mapkv__get_le(b + 72, 8) == h.created);
  assert_int_equal(b[72], 0x68);
  /* The store's key limit at 80, its value limit at 84 (u32). */
  static const uint8_t limits[8] = {0xA2, 0xA1, 0, 0, 0x74, 0x73, 0x72, 0x71};
  assert_memory_equal(b + 80, limits, 8);
  /* The sealed end at 88 (u64). */
  assert_true(mapkv__get_le(b + 88, 8) == h.sealed_end);
  assert_int_equal(b[88], 0x86);
  /* Reserved 96..119 is zero. */
  for (int i = 96; i < 120; i++)
    assert_int_equal(b[i], 0);
  /* Checksum at 120 = XXH3_64bits of bytes 0..119. */
  assert_true(mapkv__get_le(b + 120, 8) == XXH3_64bits(b, 120));
  /* Exactly 128 bytes are written. */
  for (int i = 128; i < 256; i++)
    assert_int_equal(b[i], 0xEE);

  /* The data start written is always 4096, whatever the struct says. */
  h.page_size = 65536;
  h.flags = 0;
  mapkv__header_encode(b, &h);
  assert_true(mapkv__get_le(b + 12, 4) == 4096);
  assert_true(mapkv__get_le(b + 16, 4) == 65536);
  assert_true(mapkv__get_le(b + 20, 4) == 0);

  /* Version 1 has no limits: bytes 80..119 are zero. */
  h.version = 1;
  mapkv__header_encode(b, &h);
  for (int i = 80; i < 120; i++)
    assert_int_equal(b[i], 0);
}

static void test_header_copy_a_damaged_uses_b(void **state) {
  (void)state;
  mapkv__header a = sample_header(), b = sample_header(), out;
  b.generation = 77;
  b.data_end = 4096 + 29;
  b.flags = 0;
  uint8_t *p = page_with(&a, &b);

  /* Intact A wins over a different intact B. */
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   0);
  assert_header_eq(&out, &a);

  /* Any single-bit damage anywhere in copy A: B is used. */
  for (unsigned bit = 0; bit < MAPKV__HDR_SIZE * 8; bit++) {
    p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    memset(&out, 0, sizeof out);
    int rc = mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL);
    if (rc != 0)
      fail_msg("bit %u of copy A: rc %d (%s)", bit, rc, mapkv_errmsg());
    assert_header_eq(&out, &b);
    p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
  }

  /* Copy A zeroed entirely (a torn write of the first page half). */
  memset(p, 0, MAPKV__HDR_SIZE);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   0);
  assert_header_eq(&out, &b);

  /* A intact, B damaged: A. */
  mapkv__header_encode(p, &a);
  p[MAPKV__HDR_COPY_B + 33] ^= 1;
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   0);
  assert_header_eq(&out, &a);
  free(p);
}

static void test_header_both_damaged(void **state) {
  (void)state;
  mapkv__header h = sample_header(), out;
  uint8_t *p = page_with(&h, &h);
  p[32] ^= 0x01;                      /* generation of A */
  p[MAPKV__HDR_COPY_B + 100] ^= 0x80; /* reserved byte of B */
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   MAPKV_ECORRUPT);
  assert_true(strlen(mapkv_errmsg()) > 0);

  /* Checksums damaged in both copies. */
  mapkv__header_encode(p, &h);
  mapkv__header_encode(p + MAPKV__HDR_COPY_B, &h);
  p[120] ^= 0x10;
  p[MAPKV__HDR_COPY_B + 127] ^= 0x10;
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   MAPKV_ECORRUPT);

  /* A zeroed, B damaged: B still has the magic, so it is a damaged store. */
  memset(p, 0, MAPKV__HDR_SIZE);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   MAPKV_ECORRUPT);

  /* A damaged, B zeroed. */
  mapkv__header_encode(p, &h);
  p[50] ^= 0x04;
  memset(p + MAPKV__HDR_COPY_B, 0, MAPKV__HDR_SIZE);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   MAPKV_ECORRUPT);
  free(p);
}

static void test_header_not_a_store(void **state) {
  (void)state;
  mapkv__header out;
  uint8_t *p = calloc(1, MAPKV__HDR_PAGE);
  assert_non_null(p);

  /* All zeros. */
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   MAPKV_ENOTDB);
  assert_true(strlen(mapkv_errmsg()) > 0);
  /* Text. */
  memset(p, 'x', MAPKV__HDR_PAGE);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   MAPKV_ENOTDB);
  /* Magic with one byte wrong in both places. */
  mapkv__header h = sample_header();
  mapkv__header_encode(p, &h);
  mapkv__header_encode(p + MAPKV__HDR_COPY_B, &h);
  p[7] = 0x0B;
  p[MAPKV__HDR_COPY_B + 0] = 'm';
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   MAPKV_ENOTDB);
  free(p);

  /* Short files without magic, in exact-size buffers: 0..2100 bytes. */
  for (size_t n = 0; n <= 2100; n++) {
    uint8_t *q = malloc(n > 0 ? n : 1);
    assert_non_null(q);
    memset(q, 0x33, n);
    assert_int_equal(mapkv__header_decode(q, n, &out, NULL, NULL),
                     MAPKV_ENOTDB);
    free(q);
  }
  /* Seven bytes of the magic are not the magic. */
  uint8_t *q = exact_copy(MAGIC, 7);
  assert_int_equal(mapkv__header_decode(q, 7, &out, NULL, NULL), MAPKV_ENOTDB);
  free(q);
}

static void test_header_truncated(void **state) {
  (void)state;
  mapkv__header h = sample_header(), out;
  uint8_t *page = page_with(&h, &h);

  /* Magic at 0, fewer than 4096 bytes: every length 8..4095, exact-size. */
  for (size_t n = 8; n < MAPKV__HDR_PAGE; n++) {
    uint8_t *q = exact_copy(page, n);
    int rc = mapkv__header_decode(q, n, &out, NULL, NULL);
    if (rc != MAPKV_ETRUNCATED)
      fail_msg("len %zu: rc %d", n, rc);
    free(q);
  }
  assert_true(strlen(mapkv_errmsg()) > 0);

  /* No magic at 0 but at 2048: truncated once the magic at 2048 is there. */
  memset(page, 0, MAPKV__HDR_SIZE);
  for (size_t n = MAPKV__HDR_COPY_B + 8; n < MAPKV__HDR_PAGE; n += 7) {
    uint8_t *q = exact_copy(page, n);
    assert_int_equal(mapkv__header_decode(q, n, &out, NULL, NULL),
                     MAPKV_ETRUNCATED);
    free(q);
  }
  /* ...and only the full page decodes (from B). */
  uint8_t *q = exact_copy(page, MAPKV__HDR_PAGE);
  assert_int_equal(mapkv__header_decode(q, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   0);
  assert_header_eq(&out, &h);
  free(q);
  free(page);
}

static void test_header_version(void **state) {
  (void)state;
  mapkv__header h = sample_header(), out;
  h.version = 3;
  uint8_t *p = page_with(&h, &h);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   MAPKV_EVERSION);
  assert_non_null(strstr(mapkv_errmsg(), "3"));

  h.version = UINT32_MAX;
  mapkv__header_encode(p, &h);
  mapkv__header_encode(p + MAPKV__HDR_COPY_B, &h);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   MAPKV_EVERSION);

  /* Version 2 is MAPKV_FORMAT_VERSION; version 1 headers still decode
   * (their limits read as 0: none recorded). */
  assert_int_equal(MAPKV_FORMAT_VERSION, 2);
  h.version = 1;
  mapkv__header_encode(p, &h);
  mapkv__header_encode(p + MAPKV__HDR_COPY_B, &h);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   0);
  assert_int_equal(out.version, 1);
  assert_int_equal(out.max_key, 0);
  assert_int_equal(out.max_value, 0);
  /* ... and their sealed end is a clean close's data end, else 4096. */
  assert_true(out.sealed_end == h.data_end);
  h.flags = 0;
  mapkv__header_encode(p, &h);
  mapkv__header_encode(p + MAPKV__HDR_COPY_B, &h);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   0);
  assert_true(out.sealed_end == 4096);
  h.flags = MAPKV__HF_CLEAN;
  /* Version 0 never was a format: refused. */
  h.version = 0;
  mapkv__header_encode(p, &h);
  mapkv__header_encode(p + MAPKV__HDR_COPY_B, &h);
  assert_int_not_equal(
      mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL), 0);

  /* A data start other than 4096 (re-checksummed) is refused. */
  h.version = 2;
  mapkv__header_encode(p, &h);
  mapkv__header_encode(p + MAPKV__HDR_COPY_B, &h);
  mapkv__put_le(p + 12, 8192, 4);
  rechecksum(p);
  mapkv__put_le(p + MAPKV__HDR_COPY_B + 12, 8192, 4);
  rechecksum(p + MAPKV__HDR_COPY_B);
  assert_int_not_equal(
      mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL), 0);
  free(p);
}

/* Copy A is damaged (but says version 1), copy B is intact and says version
 * 2: the store is refused as newer, and the message names B's version. */
static void test_header_version_message_from_b(void **state) {
  (void)state;
  mapkv__header a = sample_header(), b = sample_header(), out;
  char msg[512];
  b.version = 3;
  uint8_t *p = page_with(&a, &b);
  p[40] ^= 0xFF; /* damage copy A's data end */
  int rc = mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL);
  free(p);
  snprintf(msg, sizeof msg, "%s", mapkv_errmsg());
  assert_int_equal(rc, MAPKV_EVERSION);
  if (strstr(msg, "version 3 ") == NULL)
    fail_msg("message does not name the newer version 3: \"%s\"", msg);
}

/* An intact copy A of a newer version refuses the file even when copy B is
 * an intact older one (a newer writer has touched the store); a damaged
 * copy A that claims a newer version does not hide an intact copy B. */
static void test_header_newer_copy_a_wins(void **state) {
  (void)state;
  mapkv__header a = sample_header(), b = sample_header(), out;
  a.version = 4;
  uint8_t *p = page_with(&a, &b);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   MAPKV_EVERSION);
  assert_non_null(strstr(mapkv_errmsg(), "version 4 "));
  p[40] ^= 0xFF; /* now copy A is damaged: B (version 2) is used */
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   0);
  assert_int_equal(out.version, 2);
  assert_header_eq(&out, &b);
  /* Both damaged, one claiming a newer version: refused as newer. */
  p[MAPKV__HDR_COPY_B + 40] ^= 0xFF;
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   MAPKV_EVERSION);
  free(p);
}

/* Every field FORMAT.md restricts, set (under a valid checksum) to a value
 * it forbids: the copy counts as damaged, so the other copy is used, and
 * with both copies so the store is refused as damaged. */
static void test_header_forbidden_fields(void **state) {
  (void)state;
  struct {
    unsigned off, size;
    uint64_t value;
    const char *what;
  } bad[] = {
      {8, 4, 0, "version 0"},
      {12, 4, 0, "data start 0"},
      {12, 4, 8192, "data start 8192"},
      {16, 4, 0, "page size 0"},
      {16, 4, 4095, "page size not a power of two"},
      {16, 4, 256, "page size below 512"},
      {16, 4, 1u << 31, "page size above 1 GiB"},
      {20, 4, 2, "flag bit 1"},
      {20, 4, 0x80000000u, "flag bit 31"},
      {20, 4, 0xFFFFFFFFu, "all flag bits"},
      {24, 8, 0, "file id 0"},
      {40, 8, 0, "clean with data end 0"},
      {40, 8, 4095, "clean with data end before the first record"},
      {80, 4, 0, "key limit 0"},
      {80, 4, MAPKV_KEY_MAX + 1u, "key limit above the format's"},
      {84, 4, 0, "value limit 0"},
      {84, 4, MAPKV_VALUE_MAX + 1u, "value limit above the format's"},
      {88, 8, 0, "sealed end 0"},
      {88, 8, 4095, "sealed end before the first record"},
      {88, 8, 4097, "clean, sealed end after the data end"},
      {96, 1, 1, "reserved byte 96"},
      {119, 1, 0x80, "reserved byte 119"},
  };
  mapkv__header h = sample_header(), out, other;
  h.data_end = 4096;
  h.sealed_end = 4096;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mapkv__header alt = h;
    int has_other = 7;
    alt.generation = 99;
    uint8_t *p = page_with(&h, &alt);
    mapkv__put_le(p + bad[i].off, bad[i].value, bad[i].size);
    rechecksum(p);
    int rc = mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, &other, &has_other);
    if (rc != 0 || out.generation != 99 || has_other != 0)
      fail_msg("%s in copy A: rc %d, generation %llu, has_other %d",
               bad[i].what, rc, (unsigned long long)out.generation, has_other);
    memcpy(p + MAPKV__HDR_COPY_B, p, MAPKV__HDR_SIZE);
    rc = mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL);
    if (rc != MAPKV_ECORRUPT)
      fail_msg("%s in both copies: rc %d", bad[i].what, rc);
    free(p);
  }
  /* Without CLEAN the data end is a bound, not exact: any value decodes,
   * and so does a sealed end after it. */
  h.flags = 0;
  h.data_end = 0;
  h.sealed_end = 8192;
  uint8_t *p = page_with(&h, &h);
  assert_int_equal(mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, NULL, NULL),
                   0);
  free(p);
}

/* Two intact copies that differ are both handed out, so that the log can
 * tell which one belongs to it; equal copies are not. */
static void test_header_two_intact_copies(void **state) {
  (void)state;
  mapkv__header a = sample_header(), b = sample_header(), out, other;
  int has_other = -1;
  uint8_t *p = page_with(&a, &a);
  assert_int_equal(
      mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, &other, &has_other), 0);
  assert_int_equal(has_other, 0);
  free(p);
  b.file_id = 0x99;
  p = page_with(&a, &b);
  assert_int_equal(
      mapkv__header_decode(p, MAPKV__HDR_PAGE, &out, &other, &has_other), 0);
  assert_int_equal(has_other, 1);
  assert_header_eq(&out, &a);
  assert_header_eq(&other, &b);
  free(p);
}

/* ---- records ------------------------------------------------------------- */

/* Encodes into an exact-size heap buffer; *n receives the size. */
static uint8_t *encode_rec(uint8_t type, uint8_t flags, uint64_t seq,
                           const void *key, uint32_t klen, const void *val,
                           uint32_t vlen, uint64_t fid, size_t *n) {
  size_t size = MAPKV__REC_OVERHEAD + (size_t)klen + vlen;
  uint8_t *p = malloc(size);
  assert_non_null(p);
  uint64_t w =
      mapkv__rec_encode(p, type, flags, seq, 0, key, klen, val, vlen, fid);
  assert_true(w == size);
  *n = size;
  return p;
}

static void check_rec(const uint8_t *p, size_t n, uint8_t type, uint8_t flags,
                      uint64_t seq, const void *key, uint32_t klen,
                      const void *val, uint32_t vlen) {
  mapkv__rec r;
  memset(&r, 0xCC, sizeof r);
  assert_int_equal(mapkv__rec_decode(p, n, FID, 1, &r), MAPKV__REC_OK);
  assert_int_equal(r.type, type);
  assert_int_equal(r.flags, flags);
  assert_int_equal(r.klen, klen);
  assert_int_equal(r.vlen, vlen);
  assert_true(r.seq == seq);
  assert_true(r.size == n);
  assert_ptr_equal(r.key, p + MAPKV__REC_HEAD);
  assert_ptr_equal(r.val, p + MAPKV__REC_HEAD + klen);
  if (klen > 0)
    assert_memory_equal(r.key, key, klen);
  if (vlen > 0)
    assert_memory_equal(r.val, val, vlen);
  assert_true(mapkv__rec_checksum_ok(p, &r, FID));
  /* Without verify: same result. */
  mapkv__rec r2;
  assert_int_equal(mapkv__rec_decode(p, n, FID, 0, &r2), MAPKV__REC_OK);
  assert_true(r2.size == n);
}

static void test_rec_roundtrip(void **state) {
  (void)state;
  size_t n;
  uint8_t *p;

  p = encode_rec(MAPKV__T_PUT, MAPKV__F_FIRST | MAPKV__F_LAST, 1, "hello", 5,
                 "world!", 6, FID, &n);
  assert_int_equal(n, 30 + 5 + 6);
  check_rec(p, n, MAPKV__T_PUT, MAPKV__F_FIRST | MAPKV__F_LAST, 1, "hello", 5,
            "world!", 6);
  free(p);

  p = encode_rec(MAPKV__T_PUT, MAPKV__F_FIRST, 42, NULL, 0, NULL, 0, FID, &n);
  assert_int_equal(n, 30);
  check_rec(p, n, MAPKV__T_PUT, MAPKV__F_FIRST, 42, NULL, 0, NULL, 0);
  free(p);

  p = encode_rec(MAPKV__T_PUT, 0, 7, NULL, 0, "v", 1, FID, &n);
  check_rec(p, n, MAPKV__T_PUT, 0, 7, NULL, 0, "v", 1);
  free(p);

  p = encode_rec(MAPKV__T_PUT, 0, 8, "k", 1, NULL, 0, FID, &n);
  check_rec(p, n, MAPKV__T_PUT, 0, 8, "k", 1, NULL, 0);
  free(p);

  p = encode_rec(MAPKV__T_DEL, MAPKV__F_FIRST | MAPKV__F_LAST, MAPKV__SEQ_MAX,
                 "gone", 4, NULL, 0, FID, &n);
  check_rec(p, n, MAPKV__T_DEL, MAPKV__F_FIRST | MAPKV__F_LAST, MAPKV__SEQ_MAX,
            "gone", 4, NULL, 0);
  free(p);

  p = encode_rec(MAPKV__T_DEL, 0, 3, NULL, 0, NULL, 0, FID, &n);
  check_rec(p, n, MAPKV__T_DEL, 0, 3, NULL, 0, NULL, 0);
  free(p);

  uint8_t cv[8] = {3, 0, 0, 0, 0, 0, 0, 0};
  p = encode_rec(MAPKV__T_COMMIT, MAPKV__F_LAST, 1000, NULL, 0, cv, 8, FID, &n);
  assert_int_equal(n, 38);
  check_rec(p, n, MAPKV__T_COMMIT, MAPKV__F_LAST, 1000, NULL, 0, cv, 8);
  free(p);

  /* The longest key, with a value, at the end of an exact buffer. */
  uint8_t *key = malloc(MAPKV_KEY_MAX);
  uint8_t val[300];
  assert_non_null(key);
  for (size_t i = 0; i < MAPKV_KEY_MAX; i++)
    key[i] = (uint8_t)(i * 31 + 7);
  for (size_t i = 0; i < sizeof val; i++)
    val[i] = (uint8_t)(255 - i);
  p = encode_rec(MAPKV__T_PUT, MAPKV__F_FIRST | MAPKV__F_LAST, 9, key,
                 MAPKV_KEY_MAX, val, sizeof val, FID, &n);
  assert_int_equal(n, 30 + 65535 + 300);
  assert_int_equal(p[4], 0xFF);
  assert_int_equal(p[5], 0xFF);
  check_rec(p, n, MAPKV__T_PUT, MAPKV__F_FIRST | MAPKV__F_LAST, 9, key,
            MAPKV_KEY_MAX, val, sizeof val);
  /* One byte short. */
  mapkv__rec r;
  assert_int_equal(mapkv__rec_decode(p + 1, n - 1, FID, 1, &r),
                   MAPKV__REC_BADHEAD);
  assert_int_equal(mapkv__rec_decode(p, n - 1, FID, 1, &r), MAPKV__REC_SHORT);
  free(p);
  p = encode_rec(MAPKV__T_DEL, 0, 10, key, MAPKV_KEY_MAX, NULL, 0, FID, &n);
  check_rec(p, n, MAPKV__T_DEL, 0, 10, key, MAPKV_KEY_MAX, NULL, 0);
  free(p);
  free(key);
}

static void test_rec_consecutive(void **state) {
  (void)state;
  /* Records follow each other without padding; the log ends in zeros. */
  uint8_t buf[256];
  memset(buf, 0, sizeof buf);
  uint64_t at = 0;
  at += mapkv__rec_encode(buf + at, MAPKV__T_PUT, MAPKV__F_FIRST, 5, 0, "a", 1,
                          "1", 1, FID);
  at +=
      mapkv__rec_encode(buf + at, MAPKV__T_DEL, 0, 6, 0, "bb", 2, NULL, 0, FID);
  uint8_t cv[8] = {2, 0, 0, 0, 0, 0, 0, 0};
  at += mapkv__rec_encode(buf + at, MAPKV__T_COMMIT, MAPKV__F_LAST, 7, 0, NULL,
                          0, cv, 8, FID);
  assert_true(at == 32 + 32 + 38);

  static const uint8_t types[3] = {MAPKV__T_PUT, MAPKV__T_DEL, MAPKV__T_COMMIT};
  uint64_t pos = 0;
  mapkv__rec r;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(mapkv__rec_decode(buf + pos, sizeof buf - pos, FID, 1, &r),
                     MAPKV__REC_OK);
    assert_int_equal(r.type, types[i]);
    assert_true(r.seq == (uint64_t)(5 + i));
    pos += r.size;
  }
  assert_true(pos == at);
  assert_int_equal(mapkv__rec_decode(buf + pos, sizeof buf - pos, FID, 1, &r),
                   MAPKV__REC_END);
}

static void test_rec_layout(void **state) {
  (void)state;
  uint8_t b[64];
  memset(b, 0xEE, sizeof b);
  uint64_t n = mapkv__rec_encode(
      b, MAPKV__T_PUT, MAPKV__F_FIRST | MAPKV__F_LAST, 0x123456789ABCull,
      0xA1B2C3D4E5F6ull, "ab", 2, "xyz", 3, FID);
  assert_true(n == 35);
  static const uint8_t head[27] = {
      0xB7, 0x6B,                         /* marker */
      0x01,                               /* type PUT */
      0x03,                               /* flags FIRST|LAST */
      0x02, 0x00,                         /* key length */
      0x03, 0x00, 0x00, 0x00,             /* value length */
      0xBC, 0x9A, 0x78, 0x56, 0x34, 0x12, /* 48-bit sequence */
      0xF6, 0xE5, 0xD4, 0xC3, 0xB2, 0xA1, /* 48-bit prev */
      'a',  'b',  'x',  'y',  'z'};
  assert_memory_equal(b, head, sizeof head);
  uint64_t sum = XXH3_64bits_withSeed(b, 27, FID);
  for (int i = 0; i < 8; i++)
    assert_int_equal(b[27 + i], (uint8_t)(sum >> (8 * i)));
  /* Exactly 35 bytes are written. */
  for (size_t i = 35; i < sizeof b; i++)
    assert_int_equal(b[i], 0xEE);
  assert_int_equal(mapkv__marker[0], 0xB7);
  assert_int_equal(mapkv__marker[1], 0x6B);
  mapkv__rec r;
  assert_int_equal(mapkv__rec_decode(b, 35, FID, 1, &r), MAPKV__REC_OK);
  assert_true(r.prev == 0xA1B2C3D4E5F6ull);

  /* Other types, lengths and the sequence's top byte. */
  memset(b, 0xEE, sizeof b);
  uint8_t cv[8] = {9, 0, 0, 0, 0, 0, 0, 0};
  n = mapkv__rec_encode(b, MAPKV__T_COMMIT, MAPKV__F_LAST, MAPKV__SEQ_MAX, 0,
                        NULL, 0, cv, 8, 0);
  assert_true(n == 38);
  static const uint8_t chead[30] = {
      0xB7, 0x6B, 3, 2, 0, 0, 8, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
      0xFF, 0,    0, 0, 0, 0, 0, 9, 0, 0, 0,    0,    0,    0,    0};
  assert_memory_equal(b, chead, sizeof chead);
  assert_true(mapkv__get_le(b + 30, 8) == XXH3_64bits_withSeed(b, 30, 0));
  assert_int_equal(b[38], 0xEE);

  /* A key length above 255 and a value length above 65535 are LE. */
  size_t big = 30 + 300 + 70000;
  uint8_t *q = calloc(1, big);
  uint8_t *kv = calloc(1, 70000);
  assert_non_null(q);
  assert_non_null(kv);
  assert_true(mapkv__rec_encode(q, MAPKV__T_PUT, 0, 1, 0, kv, 300, kv, 70000,
                                FID) == big);
  assert_int_equal(q[4], 300 & 0xFF);
  assert_int_equal(q[5], 300 >> 8);
  assert_int_equal(q[6], 70000 & 0xFF);
  assert_int_equal(q[7], (70000 >> 8) & 0xFF);
  assert_int_equal(q[8], 70000 >> 16);
  assert_int_equal(q[9], 0);
  assert_true(mapkv__get_le(q + big - 8, 8) ==
              XXH3_64bits_withSeed(q, big - 8, FID));
  free(kv);
  free(q);
}

/* prev is 0 or a record offset (at least 4096), and 0 in a COMMIT. */
static void test_rec_prev(void **state) {
  (void)state;
  uint8_t b[64];
  uint8_t cv[8] = {2, 0, 0, 0, 0, 0, 0, 0};
  mapkv__rec r;
  static const uint64_t ok[] = {0, 4096, 4097, 1ull << 40, MAPKV__PREV_MAX};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    uint64_t n =
        mapkv__rec_encode(b, MAPKV__T_DEL, 0, 5, ok[i], "k", 1, NULL, 0, FID);
    assert_int_equal(mapkv__rec_decode(b, n, FID, 1, &r), MAPKV__REC_OK);
    assert_true(r.prev == ok[i]);
  }
  /* Offsets inside the header page, under a valid checksum. */
  static const uint64_t bad[] = {1, 100, 4095};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t n =
        mapkv__rec_encode(b, MAPKV__T_PUT, 0, 5, 0, "k", 1, "v", 1, FID);
    mapkv__put_le(b + 16, bad[i], 6);
    mapkv__put_le(b + n - 8, XXH3_64bits_withSeed(b, n - 8, FID), 8);
    assert_int_equal(mapkv__rec_decode(b, n, FID, 1, &r), MAPKV__REC_BADHEAD);
  }
  /* A COMMIT with a prev. */
  uint64_t n = mapkv__rec_encode(b, MAPKV__T_COMMIT, MAPKV__F_LAST, 9, 0, NULL,
                                 0, cv, 8, FID);
  mapkv__put_le(b + 16, 8192, 6);
  mapkv__put_le(b + n - 8, XXH3_64bits_withSeed(b, n - 8, FID), 8);
  assert_int_equal(mapkv__rec_decode(b, n, FID, 1, &r), MAPKV__REC_BADHEAD);
}

/* Version 1 records: the key follows the sequence number, no prev. */
static void test_rec_v1(void **state) {
  (void)state;
  uint8_t b[64];
  mapkv__rec r;
  memset(b, 0, sizeof b);
  b[0] = 0xB7;
  b[1] = 0x6B;
  b[2] = MAPKV__T_PUT;
  b[3] = MAPKV__F_FIRST | MAPKV__F_LAST;
  mapkv__put_le(b + 4, 2, 2);
  mapkv__put_le(b + 6, 3, 4);
  mapkv__put_le(b + 10, 77, 6);
  memcpy(b + 16, "abxyz", 5);
  mapkv__put_le(b + 21, XXH3_64bits_withSeed(b, 21, FID), 8);
  assert_int_equal(mapkv__rec_decode_v1(b, 29, FID, 1, &r), MAPKV__REC_OK);
  assert_true(r.size == 29 && r.seq == 77 && r.prev == 0);
  assert_memory_equal(r.key, "ab", 2);
  assert_memory_equal(r.val, "xyz", 3);
  assert_int_equal(mapkv__rec_head(1), 16);
  assert_int_equal(mapkv__rec_head(2), MAPKV__REC_HEAD);
  /* Read as version 2 it is something else. */
  assert_int_not_equal(mapkv__rec_decode(b, 29, FID, 1, &r), MAPKV__REC_OK);
  /* Every prefix is short, and a flipped bit is caught. */
  for (size_t a = 1; a < 29; a++)
    assert_int_equal(mapkv__rec_decode_v1(b, a, FID, 1, &r), MAPKV__REC_SHORT);
  b[17] ^= 1;
  assert_int_equal(mapkv__rec_decode_v1(b, 29, FID, 1, &r), MAPKV__REC_BADSUM);
}

static void test_rec_short(void **state) {
  (void)state;
  size_t n;
  uint8_t *p = encode_rec(MAPKV__T_PUT, 0, 11, "key", 3, "value", 5, FID, &n);
  mapkv__rec r;
  /* Every length from the header size to one short of the record. */
  for (size_t a = MAPKV__REC_OVERHEAD; a < n; a++)
    assert_int_equal(decode_exact(p, a, FID, 1, &r), MAPKV__REC_SHORT);
  for (size_t a = MAPKV__REC_OVERHEAD; a < n; a++)
    assert_int_equal(decode_exact(p, a, FID, 0, &r), MAPKV__REC_SHORT);
  /* Fewer bytes than a header with the marker: SHORT, not END. */
  for (size_t a = 1; a < MAPKV__REC_OVERHEAD; a++)
    assert_int_equal(decode_exact(p, a, FID, 1, &r), MAPKV__REC_SHORT);
  assert_int_equal(decode_exact(p, n, FID, 1, &r), MAPKV__REC_OK);
  free(p);

  /* A header announcing the largest value, with only the header present. */
  uint8_t h[30];
  memset(h, 0, sizeof h);
  h[0] = 0xB7;
  h[1] = 0x6B;
  h[2] = MAPKV__T_PUT;
  mapkv__put_le(h + 4, 65535, 2);
  mapkv__put_le(h + 6, MAPKV_VALUE_MAX, 4);
  mapkv__put_le(h + 10, 1, 6);
  assert_int_equal(decode_exact(h, sizeof h, FID, 1, &r), MAPKV__REC_SHORT);
  assert_int_equal(decode_exact(h, sizeof h, FID, 0, &r), MAPKV__REC_SHORT);
}

static void test_rec_end_and_tail(void **state) {
  (void)state;
  mapkv__rec r;
  uint8_t zeros[100];
  memset(zeros, 0, sizeof zeros);
  /* Zero bytes of any length are the end of the log. */
  for (size_t a = 0; a <= sizeof zeros; a++) {
    int rc = decode_exact(zeros, a, FID, 1, &r);
    if (rc != MAPKV__REC_END)
      fail_msg("%zu zero bytes: %d", a, rc);
  }
  /* A non-zero byte anywhere in a tail shorter than a record: SHORT. */
  uint8_t t[MAPKV__REC_OVERHEAD];
  for (size_t a = 1; a < MAPKV__REC_OVERHEAD; a++)
    for (size_t i = 0; i < a; i++) {
      memset(t, 0, sizeof t);
      t[i] = 0x01;
      int rc = decode_exact(t, a, FID, 1, &r);
      if (rc != MAPKV__REC_SHORT)
        fail_msg("tail of %zu bytes, byte %zu set: %d", a, i, rc);
    }
  /* A full-size span of garbage that is not a marker: BADHEAD. */
  memset(t, 0x01, sizeof t);
  assert_int_equal(decode_exact(t, sizeof t, FID, 1, &r), MAPKV__REC_BADHEAD);
}

/* A PUT record in a 128-byte buffer, edited by the caller, re-checksummed
 * over its (possibly edited) lengths where they fit. */
static void mkhead(uint8_t *b, uint8_t m0, uint8_t m1, uint8_t type,
                   uint8_t flags, uint32_t klen, uint32_t vlen, uint64_t seq) {
  memset(b, 0, 128);
  b[0] = m0;
  b[1] = m1;
  b[2] = type;
  b[3] = flags;
  mapkv__put_le(b + 4, klen, 2);
  mapkv__put_le(b + 6, vlen, 4);
  mapkv__put_le(b + 10, seq, 6);
  for (uint32_t i = 0; i < 64; i++)
    b[22 + i] = (uint8_t)(i + 1);
  uint64_t body = 22 + (uint64_t)klen + vlen;
  if (body + 8 <= 128)
    mapkv__put_le(b + body, XXH3_64bits_withSeed(b, (size_t)body, FID), 8);
}

static void test_rec_badhead(void **state) {
  (void)state;
  uint8_t b[128];
  mapkv__rec r;
  const uint8_t M0 = 0xB7, M1 = 0x6B;
  struct {
    uint8_t m0, m1, type, flags;
    uint32_t klen, vlen;
    uint64_t seq;
    const char *what;
  } bad[] = {
      {0x6B, 0xB7, 1, 0, 2, 3, 1, "marker swapped"},
      {0xB7, 0x6C, 1, 0, 2, 3, 1, "marker byte 1"},
      {0xB6, 0x6B, 1, 0, 2, 3, 1, "marker byte 0"},
      {0x00, 0x6B, 1, 0, 2, 3, 1, "marker zero 0"},
      {0xB7, 0x00, 1, 0, 2, 3, 1, "marker zero 1"},
      {0x00, 0x00, 1, 0, 2, 3, 1, "no marker, nonzero header"},
      {M0, M1, 0, 0, 2, 3, 1, "type 0"},
      {M0, M1, 4, 0, 2, 3, 1, "type 4"},
      {M0, M1, 0xFF, 0, 2, 3, 1, "type 255"},
      {M0, M1, 1, 4, 2, 3, 1, "flag bit 2"},
      {M0, M1, 1, 8, 2, 3, 1, "flag bit 3"},
      {M0, M1, 1, 0x80, 2, 3, 1, "flag bit 7"},
      {M0, M1, 1, 0xFF, 2, 3, 1, "all flag bits"},
      {M0, M1, 1, 0, 2, 3, 0, "seq 0"},
      {M0, M1, 2, 0, 0, 0, 0, "DEL seq 0"},
      {M0, M1, 2, 0, 2, 1, 1, "DEL with a 1-byte value"},
      {M0, M1, 2, 0, 2, 8, 1, "DEL with an 8-byte value"},
      {M0, M1, 2, 0, 0, 0x80000000u, 1, "DEL with a huge value"},
      {M0, M1, 3, 2, 1, 8, 1, "COMMIT with a key"},
      {M0, M1, 3, 2, 65535, 8, 1, "COMMIT with a long key"},
      {M0, M1, 3, 2, 0, 7, 1, "COMMIT vlen 7"},
      {M0, M1, 3, 2, 0, 9, 1, "COMMIT vlen 9"},
      {M0, M1, 3, 2, 0, 0, 1, "COMMIT vlen 0"},
      {M0, M1, 1, 0, 0, 0x80000000u, 1, "vlen 2^31"},
      {M0, M1, 1, 0, 0, 0xFFFFFFFFu, 1, "vlen 2^32-1"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mkhead(b, bad[i].m0, bad[i].m1, bad[i].type, bad[i].flags, bad[i].klen,
           bad[i].vlen, bad[i].seq);
    for (int verify = 0; verify <= 1; verify++) {
      int rc = mapkv__rec_decode(b, sizeof b, FID, verify, &r);
      if (rc != MAPKV__REC_BADHEAD)
        fail_msg("%s (verify %d): rc %d", bad[i].what, verify, rc);
      /* Also with only the header available. */
      rc = decode_exact(b, MAPKV__REC_OVERHEAD, FID, verify, &r);
      if (rc != MAPKV__REC_BADHEAD)
        fail_msg("%s (verify %d, 30 bytes): rc %d", bad[i].what, verify, rc);
    }
  }

  /* The valid neighbours of those headers decode. */
  struct {
    uint8_t type, flags;
    uint32_t klen, vlen;
    uint64_t seq;
  } good[] = {
      {1, 0, 2, 3, 1},          {1, 1, 2, 3, 1}, {1, 2, 2, 3, 1},
      {1, 3, 2, 3, 1},          {2, 3, 2, 0, 1}, {2, 0, 0, 0, 1},
      {3, 2, 0, 8, 1},          {3, 0, 0, 8, 2}, {1, 0, 0, 0, MAPKV__SEQ_MAX},
      {1, 3, 40, 50, 1u << 31},
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    mkhead(b, M0, M1, good[i].type, good[i].flags, good[i].klen, good[i].vlen,
           good[i].seq);
    size_t n = 30 + good[i].klen + good[i].vlen;
    int rc = decode_exact(b, n, FID, 1, &r);
    if (rc != MAPKV__REC_OK)
      fail_msg("good header %zu: rc %d", i, rc);
    assert_int_equal(r.type, good[i].type);
    assert_int_equal(r.flags, good[i].flags);
    assert_true(r.seq == good[i].seq);
  }

  /* vlen 2^31-1 is a valid length (the value just is not there). */
  mkhead(b, M0, M1, 1, 0, 0, MAPKV_VALUE_MAX, 1);
  assert_int_equal(mapkv__rec_decode(b, sizeof b, FID, 1, &r),
                   MAPKV__REC_SHORT);
}

/* Every single-bit flip of an encoded record makes a verified decode fail
 * with BADHEAD, SHORT or BADSUM, with the record at the end of an
 * exact-size buffer and with free space (zeros) after it. */
static void flip_every_bit(const uint8_t *rec, size_t n) {
  uint8_t *exact = malloc(n);
  uint8_t *roomy = calloc(1, n + 256);
  assert_non_null(exact);
  assert_non_null(roomy);
  for (size_t bit = 0; bit < n * 8; bit++) {
    uint8_t mask = (uint8_t)(1u << (bit % 8));
    memcpy(exact, rec, n);
    exact[bit / 8] ^= mask;
    memcpy(roomy, rec, n);
    roomy[bit / 8] ^= mask;
    mapkv__rec r;
    int rc1 = mapkv__rec_decode(exact, n, FID, 1, &r);
    int rc2 = mapkv__rec_decode(roomy, n + 256, FID, 1, &r);
    if ((rc1 != MAPKV__REC_BADHEAD && rc1 != MAPKV__REC_SHORT &&
         rc1 != MAPKV__REC_BADSUM) ||
        (rc2 != MAPKV__REC_BADHEAD && rc2 != MAPKV__REC_SHORT &&
         rc2 != MAPKV__REC_BADSUM))
      fail_msg("record of %zu bytes, bit %zu flipped: rc %d / %d", n, bit, rc1,
               rc2);
  }
  free(roomy);
  free(exact);
}

static void test_rec_bitflips(void **state) {
  (void)state;
  size_t n;
  uint8_t *p;
  p = encode_rec(MAPKV__T_PUT, MAPKV__F_FIRST | MAPKV__F_LAST, 0x10203, "key1",
                 4, "value-1", 7, FID, &n);
  flip_every_bit(p, n);
  free(p);
  p = encode_rec(MAPKV__T_PUT, 0, 1, NULL, 0, NULL, 0, FID, &n);
  flip_every_bit(p, n);
  free(p);
  p = encode_rec(MAPKV__T_DEL, MAPKV__F_FIRST, 99, "gone", 4, NULL, 0, FID, &n);
  flip_every_bit(p, n);
  free(p);
  uint8_t cv[8] = {2, 0, 0, 0, 0, 0, 0, 0};
  p = encode_rec(MAPKV__T_COMMIT, MAPKV__F_LAST, 100, NULL, 0, cv, 8, FID, &n);
  flip_every_bit(p, n);
  free(p);

  /* Without verify a flipped key byte is not noticed by decode, but the
   * checksum check catches it. */
  p = encode_rec(MAPKV__T_PUT, 0, 5, "abc", 3, "def", 3, FID, &n);
  mapkv__rec r;
  p[23] ^= 0x20;
  assert_int_equal(mapkv__rec_decode(p, n, FID, 0, &r), MAPKV__REC_OK);
  assert_false(mapkv__rec_checksum_ok(p, &r, FID));
  p[23] ^= 0x20;
  assert_true(mapkv__rec_checksum_ok(p, &r, FID));
  free(p);
}

static void test_rec_other_file_id(void **state) {
  (void)state;
  size_t n;
  mapkv__rec r;
  uint8_t *p = encode_rec(MAPKV__T_PUT, 3, 1, "k", 1, "v", 1, FID, &n);
  assert_int_equal(mapkv__rec_decode(p, n, FID, 1, &r), MAPKV__REC_OK);
  assert_int_equal(mapkv__rec_decode(p, n, FID + 1, 1, &r), MAPKV__REC_BADSUM);
  assert_int_equal(mapkv__rec_decode(p, n, FID ^ (1ull << 63), 1, &r),
                   MAPKV__REC_BADSUM);
  assert_int_equal(mapkv__rec_decode(p, n, 0, 1, &r), MAPKV__REC_BADSUM);
  assert_false(mapkv__rec_checksum_ok(p, &r, 1));
  /* Structure alone does not depend on the file id. */
  assert_int_equal(mapkv__rec_decode(p, n, 12345, 0, &r), MAPKV__REC_OK);
  free(p);

  /* Same content under two file ids: different checksums, each valid only
   * under its own id. */
  uint8_t a[32], b[32];
  mapkv__rec_encode(a, MAPKV__T_PUT, 3, 1, 0, "k", 1, "v", 1, 1);
  mapkv__rec_encode(b, MAPKV__T_PUT, 3, 1, 0, "k", 1, "v", 1, 2);
  assert_memory_equal(a, b, 24);
  assert_memory_not_equal(a + 24, b + 24, 8);
  assert_int_equal(mapkv__rec_decode(a, 32, 1, 1, &r), MAPKV__REC_OK);
  assert_int_equal(mapkv__rec_decode(b, 32, 2, 1, &r), MAPKV__REC_OK);
  assert_int_equal(mapkv__rec_decode(a, 32, 2, 1, &r), MAPKV__REC_BADSUM);
  assert_int_equal(mapkv__rec_decode(b, 32, 1, 1, &r), MAPKV__REC_BADSUM);
}

/* Decoding every prefix of a record placed at the very end of an exact-size
 * heap buffer: never reads past avail (ASan), SHORT until complete. */
static void prefixes(const uint8_t *rec, size_t n) {
  for (size_t a = 0; a <= n; a++) {
    uint8_t *q = malloc(a > 0 ? a : 1);
    assert_non_null(q);
    if (a > 0)
      memcpy(q, rec, a);
    mapkv__rec r;
    for (int verify = 0; verify <= 1; verify++) {
      int rc = mapkv__rec_decode(q, a, FID, verify, &r);
      int want = a == 0  ? MAPKV__REC_END
                 : a < n ? MAPKV__REC_SHORT
                         : MAPKV__REC_OK;
      if (rc != want)
        fail_msg("prefix %zu of %zu (verify %d): rc %d, want %d", a, n, verify,
                 rc, want);
    }
    free(q);
  }
}

static void test_rec_bounds(void **state) {
  (void)state;
  size_t n;
  uint8_t *p;
  p = encode_rec(MAPKV__T_PUT, 1, 77, "bounded", 7, "checks", 6, FID, &n);
  prefixes(p, n);
  free(p);
  p = encode_rec(MAPKV__T_PUT, 0, 1, NULL, 0, NULL, 0, FID, &n);
  prefixes(p, n);
  free(p);
  p = encode_rec(MAPKV__T_DEL, 0, 2, "d", 1, NULL, 0, FID, &n);
  prefixes(p, n);
  free(p);
  uint8_t cv[8] = {4, 0, 0, 0, 0, 0, 0, 0};
  p = encode_rec(MAPKV__T_COMMIT, 2, 3, NULL, 0, cv, 8, FID, &n);
  prefixes(p, n);
  free(p);

  /* A record in the last bytes of a log-sized buffer. */
  size_t cap = 4096 + 200;
  uint8_t *file = calloc(1, cap);
  assert_non_null(file);
  uint8_t val[150];
  memset(val, 0x42, sizeof val);
  size_t rn = 30 + 2 + sizeof val;
  uint64_t at = cap - rn;
  assert_true(mapkv__rec_encode(file + at, MAPKV__T_PUT, 3, 8, 0, "zz", 2, val,
                                sizeof val, FID) == rn);
  mapkv__rec r;
  assert_int_equal(mapkv__rec_decode(file + at, cap - at, FID, 1, &r),
                   MAPKV__REC_OK);
  assert_true(r.size == rn);
  assert_memory_equal(r.val, val, sizeof val);
  /* The value length grown by one: the record would run past the end. */
  mapkv__put_le(file + at + 6, sizeof val + 1, 4);
  assert_int_equal(mapkv__rec_decode(file + at, cap - at, FID, 1, &r),
                   MAPKV__REC_SHORT);
  /* The key length at its maximum: also past the end. */
  mapkv__put_le(file + at + 6, sizeof val, 4);
  mapkv__put_le(file + at + 4, 65535, 2);
  assert_int_equal(mapkv__rec_decode(file + at, cap - at, FID, 1, &r),
                   MAPKV__REC_SHORT);
  free(file);

  /* The largest key at the end of an exact buffer: every prefix near the
   * end (the full prefix loop over 65 KiB is covered by smaller records). */
  uint8_t *key = malloc(MAPKV_KEY_MAX);
  assert_non_null(key);
  memset(key, 0x6B, MAPKV_KEY_MAX);
  p = encode_rec(MAPKV__T_PUT, 0, 4, key, MAPKV_KEY_MAX, "v", 1, FID, &n);
  for (size_t a = n - 40; a <= n; a++) {
    int rc = decode_exact(p, a, FID, 1, &r);
    assert_int_equal(rc, a < n ? MAPKV__REC_SHORT : MAPKV__REC_OK);
  }
  free(p);
  free(key);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_header_roundtrip),
      cmocka_unit_test(test_header_layout),
      cmocka_unit_test(test_header_copy_a_damaged_uses_b),
      cmocka_unit_test(test_header_both_damaged),
      cmocka_unit_test(test_header_not_a_store),
      cmocka_unit_test(test_header_truncated),
      cmocka_unit_test(test_header_version),
      cmocka_unit_test(test_header_version_message_from_b),
      cmocka_unit_test(test_header_newer_copy_a_wins),
      cmocka_unit_test(test_header_forbidden_fields),
      cmocka_unit_test(test_header_two_intact_copies),
      cmocka_unit_test(test_rec_roundtrip),
      cmocka_unit_test(test_rec_consecutive),
      cmocka_unit_test(test_rec_layout),
      cmocka_unit_test(test_rec_prev),
      cmocka_unit_test(test_rec_v1),
      cmocka_unit_test(test_rec_short),
      cmocka_unit_test(test_rec_end_and_tail),
      cmocka_unit_test(test_rec_badhead),
      cmocka_unit_test(test_rec_bitflips),
      cmocka_unit_test(test_rec_other_file_id),
      cmocka_unit_test(test_rec_bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
