/*
 * test_fuzz_regress.c — the findings of the fuzz targets (tests/fuzz), each
 * reduced to the smallest store that shows it, built here byte by byte
 * from a store the API wrote. The fuzz corpus replays the original inputs
 * (tests/fuzz/corpus/<target>/regress-*); these tests say what each one
 * is about and keep it fixed without the fuzzing toolchain.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mapkv/mapkv.h"
#include "store/format.h"
#include "testutil.h"

static mapkv_t *open_store(const char *path, unsigned flags) {
  mapkv_options o;
  mapkv_t *db = NULL;
  mapkv_options_init(&o);
  o.flags = flags;
  o.initial_size = 8192;
  o.growth_step = 4096;
  if (mapkv_open(path, &o, &db) != 0)
    fail_msg("mapkv_open(%s, %u): %s", path, flags, mapkv_errmsg());
  return db;
}

static void put_file(const char *path, const uint8_t *b, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

/* Sets data end and sealed end of both header copies (checksums valid). */
static void set_ends(uint8_t *img, size_t n, uint64_t end) {
  mapkv__header h;
  assert_int_equal(mapkv__header_decode(img, n, &h, NULL, NULL), 0);
  h.data_end = end;
  h.sealed_end = end;
  mapkv__header_encode(img, &h);
  mapkv__header_encode(img + MAPKV__HDR_COPY_B, &h);
}

/* The figures of a store: live bytes lie in the log. */
static mapkv_stats figures(mapkv_t *db) {
  mapkv_stats st;
  assert_int_equal(mapkv_stat(db, &st), 0);
  if (st.live_bytes > st.data_end - MAPKV__HDR_PAGE ||
      st.dead_bytes != st.data_end - MAPKV__HDR_PAGE - st.live_bytes)
    fail_msg("%llu live bytes and %llu dead bytes in a log of %llu bytes",
             (unsigned long long)st.live_bytes,
             (unsigned long long)st.dead_bytes,
             (unsigned long long)(st.data_end - MAPKV__HDR_PAGE));
  return st;
}

/* fuzz_open/regress-sealed-end-inside-record: a header (checksum valid)
 * whose sealed end lies inside a record of a batch that damage cost.
 * Recovery poisoned that record's key by giving it a slot, although the
 * record runs past the end of the log: its bytes there are zeroed by the
 * writer and then written over by the next records, and the live bytes
 * counted it whole (dead bytes wrapped around to 2^64 - 23). A record that
 * runs past its damaged span gets no slot now; its key, whose only record
 * that is, reads as missing. */
static void test_sealed_end_inside_record(void **state) {
  char path[512];
  mapkv_batch_t *b;
  mapkv_stats st;
  mapkv_t *db;
  uint8_t *img, v[8];
  size_t n, vl;
  (void)state;
  tu_path(path, sizeof path, "fz-sealed");

  /* a=1 at 4096 (32 bytes); batch {b=2, c=3} at 4128: b, c at 4160, and
   * its COMMIT at 4192 (38 bytes), to 4230 */
  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "a", 1, "1", 1), 0);
  assert_int_equal(mapkv_batch_begin(db, &b), 0);
  assert_int_equal(mapkv_batch_put(b, "b", 1, "2", 1), 0);
  assert_int_equal(mapkv_batch_put(b, "c", 1, "3", 1), 0);
  assert_int_equal(mapkv_batch_commit(b), 0);
  assert_int_equal(figures(db).data_end, 4230);
  assert_int_equal(mapkv_close(db), 0);

  img = tu_slurp(path, &n);
  img[4128 + MAPKV__REC_HEAD + 1] ^= 0x10; /* b's value: the batch is lost */
  set_ends(img, n, 4165);                  /* inside c's record header */
  put_file(path, img, n);

  for (int pass = 0; pass < 3; pass++) {
    /* read-only, writable, and writable after writes and a clean close */
    db = open_store(path, pass == 0 ? MAPKV_RDONLY : 0);
    st = figures(db);
    assert_int_equal(st.damaged_regions, 1);
    assert_int_equal(mapkv_get(db, "a", 1, v, sizeof v, &vl), 0);
    assert_int_equal(mapkv_get(db, "b", 1, v, sizeof v, &vl), MAPKV_ECORRUPT);
    if (pass < 2) {
      assert_int_equal(st.data_end, 4165);
      assert_int_equal(mapkv_get(db, "c", 1, v, sizeof v, &vl), MAPKV_NOTFOUND);
    } else {
      assert_int_equal(mapkv_get(db, "c", 1, v, sizeof v, &vl), 0);
      assert_int_equal(vl, 1);
      assert_int_equal(v[0], '4');
    }
    if (pass == 1) {
      assert_int_equal(mapkv_put(db, "x", 1, "new", 3), 0);
      assert_int_equal(mapkv_put(db, "c", 1, "4", 1), 0);
      figures(db);
    }
    assert_int_equal(mapkv_close(db), 0);
  }
  free(img);
  unlink(path);
}

/* fuzz_open/regress-damaged-length-covers-records: in a cleanly closed
 * store, the key length of a batch's first record grew (its checksum
 * fails), so that by its lengths it covers the batch's next record, which
 * is intact. Recovery gave both a slot to poison their keys and counted
 * both sizes as live: more live bytes than the log has (dead bytes
 * wrapped around). A damaged record counts for no live bytes now, when
 * its slot is made and when it is replaced. */
static void test_damaged_length_covers_records(void **state) {
  char path[512];
  mapkv_batch_t *b;
  mapkv_t *db;
  uint8_t *img, v[8];
  size_t n, vl;
  (void)state;
  tu_path(path, sizeof path, "fz-cover");

  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "a", 1, "1", 1), 0);
  assert_int_equal(mapkv_batch_begin(db, &b), 0);
  assert_int_equal(mapkv_batch_put(b, "b", 1, "2", 1), 0);
  assert_int_equal(mapkv_batch_put(b, "c", 1, "3", 1), 0);
  assert_int_equal(mapkv_batch_commit(b), 0);
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  assert_int_equal(img[4128 + MAPKV__R_KLEN], 1);
  img[4128 + MAPKV__R_KLEN] = 60; /* b now reaches to 4219, over c */
  put_file(path, img, n);

  for (int pass = 0; pass < 3; pass++) {
    db = open_store(path, pass == 0 ? MAPKV_RDONLY : 0);
    figures(db);
    assert_int_equal(mapkv_get(db, "a", 1, v, sizeof v, &vl),
                     pass < 2 ? 0 : MAPKV_NOTFOUND);
    assert_int_equal(mapkv_get(db, "c", 1, v, sizeof v, &vl),
                     pass < 2 ? MAPKV_ECORRUPT : 0);
    if (pass == 1) {
      assert_int_equal(mapkv_put(db, "c", 1, "4", 1), 0);
      assert_int_equal(mapkv_put(db, "d", 1, "5", 1), 0);
      assert_int_equal(mapkv_del(db, "a", 1), 0);
      figures(db);
    }
    assert_int_equal(mapkv_close(db), 0);
  }
  free(img);
  unlink(path);
}

/* fuzz_open/regress-prev-flip-names-another-key: one bit flipped in the
 * prev of a key's newest record in a cleanly closed store, so that it
 * names the newest record of another key. Recovery took prev at its word
 * and poisoned the other key: the damaged key read its superseded value
 * (and the intact other key answered MAPKV_ECORRUPT). When prev and the
 * key bytes disagree, the key the bytes name is poisoned too. */
static void test_prev_flip_names_another_key(void **state) {
  static const char old[] = "the old value of x, 33 bytes long";
  char path[512];
  mapkv_t *db;
  uint8_t *img, v[64];
  size_t n, vl;
  (void)state;
  tu_path(path, sizeof path, "fz-prev");

  /* x (64 bytes at 4096 = 0x1000), y (at 4160 = 0x1040), x again with
   * prev 0x1000 */
  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "x", 1, old, 33), 0);
  assert_int_equal(mapkv_put(db, "y", 1, "y", 1), 0);
  assert_int_equal(mapkv_put(db, "x", 1, "new", 3), 0);
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  assert_int_equal(mapkv__get_le(img + 4192 + MAPKV__R_PREV, 6), 4096);
  img[4192 + MAPKV__R_PREV] ^= 0x40; /* prev now names y's record */
  put_file(path, img, n);

  for (int pass = 0; pass < 3; pass++) {
    db = open_store(path, pass == 0 ? MAPKV_RDONLY : 0);
    figures(db);
    if (pass < 2)
      assert_int_equal(mapkv_get(db, "x", 1, v, sizeof v, &vl), MAPKV_ECORRUPT);
    else
      assert_int_equal(mapkv_get(db, "x", 1, v, sizeof v, &vl), 0);
    if (pass == 1)
      assert_int_equal(mapkv_put(db, "x", 1, "newer", 5), 0);
    assert_int_equal(mapkv_close(db), 0);
  }
  free(img);
  unlink(path);
}

/* fuzz_open/regress-zeros-below-sealed-end: a header (checksum valid)
 * whose sealed end lies 7 zero bytes after the last record. Damage, kept
 * in place; but once a write put a record after it, recovery read the
 * fields of a "record" at the zeros partly from that new record (a key
 * length of 0) and poisoned the empty key, which read back before the
 * write. What does not decode is now read no further than its span. */
static void test_zeros_below_sealed_end(void **state) {
  char path[512];
  mapkv_stats st;
  mapkv_t *db;
  uint8_t *img, v[8];
  size_t n, vl;
  (void)state;
  tu_path(path, sizeof path, "fz-zeros");

  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "", 0, "e", 1), 0);
  assert_int_equal(mapkv_put(db, "k", 1, "v", 1), 0);
  st = figures(db);
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  set_ends(img, n, st.data_end + 7);
  put_file(path, img, n);

  for (int pass = 0; pass < 3; pass++) {
    db = open_store(path, pass == 0 ? MAPKV_RDONLY : 0);
    st = figures(db);
    assert_int_equal(st.damaged_regions, 1);
    assert_int_equal(st.damaged_keys, 0);
    assert_int_equal(mapkv_get(db, "", 0, v, sizeof v, &vl), 0);
    assert_int_equal(mapkv_get(db, "k", 1, v, sizeof v, &vl), 0);
    if (pass == 1)
      assert_int_equal(mapkv_put(db, "x", 1, "new", 3), 0);
    assert_int_equal(mapkv_close(db), 0);
  }
  free(img);
  unlink(path);
}

/* fuzz_open/regress-del-with-value: a record rewritten as a DEL that keeps
 * a value (not sound in structure: a DEL has none) under a valid checksum,
 * its value length grown over the batch's next record. Recovery, which
 * reads such a record leniently, took it for intact: it counted its size
 * as live bytes (with the next record's: more than the log, in the store
 * the fuzzer made). A record is intact only if it is sound in structure
 * too. */
static void test_del_with_value(void **state) {
  char path[512];
  mapkv_batch_t *b;
  mapkv_stats st;
  mapkv_t *db;
  uint8_t *img, v[8];
  size_t n, vl;
  uint64_t fid;
  (void)state;
  tu_path(path, sizeof path, "fz-delval");

  /* a at 4096; batch {b, c, d} at 4128, 4160, 4192, COMMIT at 4224 */
  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "a", 1, "1", 1), 0);
  assert_int_equal(mapkv_batch_begin(db, &b), 0);
  assert_int_equal(mapkv_batch_put(b, "b", 1, "2", 1), 0);
  assert_int_equal(mapkv_batch_put(b, "c", 1, "3", 1), 0);
  assert_int_equal(mapkv_batch_put(b, "d", 1, "4", 1), 0);
  assert_int_equal(mapkv_batch_commit(b), 0);
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  fid = mapkv__get_le(img + 24, 8);
  /* b becomes a DEL with a 43-byte value (to 4202: over c, into d) */
  mapkv__rec_encode(img + 4128, MAPKV__T_DEL, MAPKV__F_FIRST, 2, 0, "b", 1,
                    img + 4128 + MAPKV__REC_HEAD + 1, 43, fid);
  put_file(path, img, n);

  for (int pass = 0; pass < 3; pass++) {
    db = open_store(path, pass == 0 ? MAPKV_RDONLY : 0);
    st = figures(db);
    /* the live records: a, and c (poisoned: its batch is lost) */
    assert_int_equal(st.live_bytes, pass < 2 ? 64 : 96);
    assert_int_equal(mapkv_get(db, "a", 1, v, sizeof v, &vl), 0);
    assert_int_equal(mapkv_get(db, "c", 1, v, sizeof v, &vl), MAPKV_ECORRUPT);
    if (pass == 1) {
      assert_int_equal(mapkv_put(db, "b", 1, "5", 1), 0);
      assert_int_equal(figures(db).live_bytes, 96);
    }
    assert_int_equal(mapkv_close(db), 0);
  }
  free(img);
  unlink(path);
}

/* fuzz_open/regress-damaged-keys-counted-twice: damaged_keys counted every
 * poisoning, so a key poisoned twice (two damaged batches of one key, or
 * a damaged record and its copy) counted twice, and a key a later intact
 * batch wrote again still counted; the figure then changed with how the
 * damage was split into spans. It counts the keys that answer
 * MAPKV_ECORRUPT now. */
static void test_damaged_keys_counted_once(void **state) {
  char path[512];
  mapkv_stats st;
  mapkv_t *db;
  uint8_t *img, v[8];
  size_t n, vl;
  (void)state;
  tu_path(path, sizeof path, "fz-count");

  /* k=1 at 4096, k=2 at 4128, k=3 at 4160, j=1 at 4192, j=2 at 4224 */
  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "k", 1, "1", 1), 0);
  assert_int_equal(mapkv_put(db, "k", 1, "2", 1), 0);
  assert_int_equal(mapkv_put(db, "k", 1, "3", 1), 0);
  assert_int_equal(mapkv_put(db, "j", 1, "1", 1), 0);
  assert_int_equal(mapkv_put(db, "j", 1, "2", 1), 0);
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  img[4128 + MAPKV__REC_HEAD + 1] ^= 1; /* k=2: k poisoned, then written */
  img[4192 + MAPKV__REC_HEAD + 1] ^= 1; /* j=1 */
  img[4224 + MAPKV__REC_HEAD + 1] ^= 1; /* j=2: j poisoned twice */
  put_file(path, img, n);

  db = open_store(path, MAPKV_RDONLY);
  st = figures(db);
  assert_int_equal(st.damaged_regions, 2);
  assert_int_equal(st.damaged_keys, 1);
  assert_int_equal(mapkv_get(db, "k", 1, v, sizeof v, &vl), 0);
  assert_int_equal(v[0], '3');
  assert_int_equal(mapkv_get(db, "j", 1, v, sizeof v, &vl), MAPKV_ECORRUPT);
  assert_int_equal(mapkv_close(db), 0);
  free(img);
  unlink(path);
}

/* fuzz_open/regress-split-damage-spans: damage at the end of a cleanly
 * closed log — a damaged record, then a batch whose COMMIT was zeroed —
 * is one damaged span; once a write put a batch after it, the scan
 * reported it as two (cut where the batch that never ended starts), and
 * recovery poisoned each part on its own, so that a record running past
 * its part got no slot: the damaged keys changed with a write, a clean
 * close and a reopen. Damage right after damage is one span now. */
static void test_split_damage_spans(void **state) {
  char path[512];
  mapkv_batch_t *b;
  mapkv_stats st;
  mapkv_t *db;
  uint8_t *img, v[8];
  size_t n, vl;
  (void)state;
  tu_path(path, sizeof path, "fz-split");

  /* a at 4096; batch {b, c} at 4128, 4160, its COMMIT at 4192 */
  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "a", 1, "1", 1), 0);
  assert_int_equal(mapkv_batch_begin(db, &b), 0);
  assert_int_equal(mapkv_batch_put(b, "b", 1, "2", 1), 0);
  assert_int_equal(mapkv_batch_put(b, "c", 1, "3", 1), 0);
  assert_int_equal(mapkv_batch_commit(b), 0);
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  img[4096 + MAPKV__REC_HEAD + 1] ^= 0x10; /* a's value */
  memset(img + 4192, 0, 38);               /* the COMMIT */
  put_file(path, img, n);

  for (int pass = 0; pass < 3; pass++) {
    db = open_store(path, pass == 0 ? MAPKV_RDONLY : 0);
    st = figures(db);
    assert_int_equal(st.damaged_regions, 1);
    assert_int_equal(st.first_damage_offset, 4096);
    assert_int_equal(st.damaged_bytes, 4230 - 4096);
    assert_int_equal(st.damaged_keys, 3);
    assert_int_equal(mapkv_get(db, "a", 1, v, sizeof v, &vl), MAPKV_ECORRUPT);
    assert_int_equal(mapkv_get(db, "c", 1, v, sizeof v, &vl), MAPKV_ECORRUPT);
    if (pass == 1)
      assert_int_equal(mapkv_put(db, "x", 1, "new", 3), 0);
    assert_int_equal(mapkv_close(db), 0);
  }
  free(img);
  unlink(path);
}

/* fuzz_open/regress-intact-records-outside-batches: after the sealed end,
 * records outside any batch, three intact and two failing their
 * checksums. No batch verifies, so every open but a salvage one refuses
 * the store ("nothing verifies"), and changes nothing; but verify of the
 * salvage open found nothing to report (the tail rule alone does not call
 * it suspect: more records pass than fail). It reports the records that
 * fail now. */
static void test_intact_records_outside_batches(void **state) {
  char path[512];
  mapkv_options o;
  mapkv_t *db;
  uint8_t *img, *after;
  uint64_t fid, at = MAPKV__HDR_PAGE, nd = 0;
  size_t n, n2;
  (void)state;
  tu_path(path, sizeof path, "fz-outside");

  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "a", 1, "1", 1), 0);
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  set_ends(img, n, MAPKV__HDR_PAGE); /* nothing sealed */
  fid = mapkv__get_le(img + 24, 8);
  for (int i = 0; i < 5; i++) {
    char k = (char)('a' + i);
    uint64_t size = mapkv__rec_encode(img + at, MAPKV__T_PUT, 0,
                                      (uint64_t)i + 1, 0, &k, 1, "v", 1, fid);
    if (i >= 3)
      img[at + size - 1] ^= 1; /* its checksum */
    at += size;
  }
  put_file(path, img, n);

  for (int ro = 0; ro < 2; ro++) {
    mapkv_options_init(&o);
    o.flags = ro ? MAPKV_RDONLY : 0;
    db = NULL;
    assert_int_equal(mapkv_open(path, &o, &db), MAPKV_ECORRUPT);
    after = tu_slurp(path, &n2);
    assert_int_equal(n2, n);
    assert_memory_equal(after, img, n);
    free(after);
  }
  db = open_store(path, MAPKV_RDONLY | MAPKV_VERIFY);
  assert_int_equal(mapkv_verify(db, NULL, NULL, &nd), MAPKV_ECORRUPT);
  assert_int_equal(nd, 1);
  assert_int_equal(mapkv_close(db), 0);
  free(img);
  unlink(path);
}

/* fuzz_open/regress-intact-record-past-sealed-end: an intact record
 * whose value runs past the sealed end (a header with a valid checksum
 * ending the log inside it), with another intact record inside its
 * value. Recovery stepped over the inner record by the outer one's
 * length; a writable open zeroes and writes over what follows the log,
 * after which the outer record failed its checksum and the next open
 * found (and poisoned) the inner one: the damaged keys changed across a
 * write, a clean close and a reopen. In a damaged span, records are read
 * no further than the span. */
static void test_intact_record_past_sealed_end(void **state) {
  char path[512];
  mapkv_stats st;
  mapkv_t *db;
  uint8_t *img, val[100], v[8];
  size_t n, vl;
  uint64_t fid;
  (void)state;
  tu_path(path, sizeof path, "fz-past");

  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "p", 1, "1", 1), 0); /* 4096 to 4128 */
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  fid = mapkv__get_le(img + 24, 8);
  /* x at 4128, 130 bytes, a batch that never ends; y at 4160, inside
   * x's value; then x's checksum made to hold over it */
  memset(val, 0, sizeof val);
  mapkv__rec_encode(img + 4128, MAPKV__T_PUT, MAPKV__F_FIRST, 2, 0, "x", 1, val,
                    sizeof val, fid);
  mapkv__rec_encode(img + 4160, MAPKV__T_PUT, 0, 3, 0, "y", 1, "1", 1, fid);
  {
    mapkv__rec r;
    assert_int_equal(mapkv__rec_decode(img + 4128, n - 4128, fid, 0, &r),
                     MAPKV__REC_OK);
    mapkv__rec_encode(img + 4128, MAPKV__T_PUT, MAPKV__F_FIRST, 2, 0, "x", 1,
                      img + 4128 + MAPKV__REC_HEAD + 1, sizeof val, fid);
  }
  set_ends(img, n, 4200); /* inside x, after y */
  put_file(path, img, n);

  for (int pass = 0; pass < 3; pass++) {
    db = open_store(path, pass == 0 ? MAPKV_RDONLY : 0);
    st = figures(db);
    assert_int_equal(st.damaged_regions, 1);
    assert_int_equal(st.damaged_keys, 1);
    assert_int_equal(mapkv_get(db, "p", 1, v, sizeof v, &vl), 0);
    assert_int_equal(mapkv_get(db, "y", 1, v, sizeof v, &vl), MAPKV_ECORRUPT);
    if (pass == 1)
      assert_int_equal(mapkv_put(db, "z", 1, "new", 3), 0);
    assert_int_equal(mapkv_close(db), 0);
  }
  free(img);
  unlink(path);
}

/* fuzz_open/regress-record-across-sealed-end: an intact record of a batch
 * that never ended, whose value runs from below the sealed end past it
 * (a header with a valid checksum ending the log inside it), covering an
 * intact batch. Recovery stepped over that batch by the record's length,
 * so its key answered MAPKV_ECORRUPT and the writer took sequence numbers
 * below the batch's. A writable open zeroes and writes over what follows
 * the log: the record then failed its checksum, the next open accepted
 * the batch it had covered, and the delete written after it (with a
 * lower sequence number) was refused as going backwards: the deleted key
 * answered MAPKV_ECORRUPT. A record that starts before the sealed end is
 * read no further than it. */
static void test_record_across_sealed_end(void **state) {
  char path[512];
  mapkv_stats st;
  mapkv_t *db;
  uint8_t *img, val[237], v[8];
  size_t n, vl;
  uint64_t fid;
  (void)state;
  tu_path(path, sizeof path, "fz-across");

  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "a", 1, "1", 1), 0); /* 4096 to 4128 */
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  fid = mapkv__get_le(img + 24, 8);
  /* k = "v" at 4167 (seq 3, a whole batch), inside the value of x at
   * 4128 (seq 2, FIRST only, 267 bytes), whose checksum holds over it */
  memset(val, 0, sizeof val);
  mapkv__rec_encode(img + 4167, MAPKV__T_PUT, MAPKV__F_FIRST | MAPKV__F_LAST, 3,
                    0, "k", 1, "v", 1, fid);
  memcpy(val, img + 4128 + MAPKV__REC_HEAD + 1, 4167 + 32 - 4151);
  mapkv__rec_encode(img + 4128, MAPKV__T_PUT, MAPKV__F_FIRST, 2, 0, "x", 1, val,
                    sizeof val, fid);
  set_ends(img, n, 4199); /* after k, inside x */
  put_file(path, img, n);

  for (int pass = 0; pass < 3; pass++) {
    db = open_store(path, pass == 0 ? MAPKV_RDONLY : 0);
    st = figures(db);
    assert_int_equal(st.damaged_regions, 1);
    assert_int_equal(mapkv_get(db, "k", 1, v, sizeof v, &vl), 0);
    assert_int_equal(mapkv_get(db, "a", 1, v, sizeof v, &vl),
                     pass < 2 ? 0 : MAPKV_NOTFOUND);
    if (pass == 1)
      assert_int_equal(mapkv_del(db, "a", 1), 0);
    assert_int_equal(mapkv_close(db), 0);
  }
  free(img);
  unlink(path);
}

/* fuzz_open/regress-walk-across-sealed-end: the sealed end inside the
 * first record (a header with a valid checksum), an intact copy of that
 * record after it. The scan reads a record that starts before the sealed
 * end no further than it, so the first is damage and the copy's batch is
 * accepted; the walk of cursors still took the first record for intact
 * and then refused the copy (its sequence number not above the first's):
 * a cursor missed a key that reads back. The walk bounds records as the
 * scan does. */
static void test_walk_across_sealed_end(void **state) {
  char path[512];
  mapkv_cursor_t *c;
  mapkv_stats st;
  mapkv_t *db;
  uint8_t *img, v[8];
  const void *k, *val;
  size_t n, vl, kl, seen;
  (void)state;
  tu_path(path, sizeof path, "fz-walk");

  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "a", 1, "1", 1), 0); /* 4096 to 4128 */
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  memcpy(img + 4128, img + 4096, 32); /* the same record again */
  set_ends(img, n, 4103);
  put_file(path, img, n);

  for (int pass = 0; pass < 2; pass++) {
    db = open_store(path, pass == 0 ? MAPKV_RDONLY : 0);
    st = figures(db);
    assert_int_equal(st.records, 1);
    assert_int_equal(mapkv_get(db, "a", 1, v, sizeof v, &vl), 0);
    assert_int_equal(mapkv_cursor_open(db, NULL, 0, &c), 0);
    for (seen = 0; mapkv_cursor_next(c, &k, &kl, &val, &vl) == 0; seen++)
      assert_true(kl == 1 && memcmp(k, "a", 1) == 0);
    mapkv_cursor_close(c);
    assert_int_equal(seen, 1);
    assert_int_equal(mapkv_close(db), 0);
  }
  free(img);
  unlink(path);
}

/* fuzz_open/regress-refused-after-clean-close: two damaged records, then
 * an intact one that the sealed end (a header with a valid checksum)
 * cuts. The census of the damaged end of the sealed log counted that
 * record whole, as intact, so the store was not one where nothing
 * verifies and a writable open took it; that open zeroed what follows
 * the log, the record's end with it, and after its clean close every
 * open refused the store. Records of the sealed log are read no further
 * than the sealed end there too: every open refuses from the start, and
 * changes nothing. */
static void test_refused_after_clean_close(void **state) {
  char path[512];
  mapkv_options o;
  mapkv_t *db = NULL;
  uint8_t *img, *after;
  size_t n, n2;
  (void)state;
  tu_path(path, sizeof path, "fz-refused");

  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "a", 1, "1", 1), 0); /* 4096 */
  assert_int_equal(mapkv_put(db, "b", 1, "2", 1), 0); /* 4128 */
  assert_int_equal(mapkv_put(db, "c", 1, "3", 1), 0); /* 4160 to 4192 */
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  img[4096 + MAPKV__REC_HEAD + 1] ^= 1;
  img[4128 + MAPKV__REC_HEAD + 1] ^= 1;
  set_ends(img, n, 4170); /* inside c */
  put_file(path, img, n);

  for (int ro = 0; ro < 2; ro++) {
    mapkv_options_init(&o);
    o.flags = ro ? MAPKV_RDONLY : 0;
    db = NULL;
    assert_int_equal(mapkv_open(path, &o, &db), MAPKV_ECORRUPT);
    assert_null(db);
    after = tu_slurp(path, &n2);
    assert_int_equal(n2, n);
    assert_memory_equal(after, img, n);
    free(after);
  }
  db = open_store(path, MAPKV_RDONLY | MAPKV_VERIFY);
  assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), MAPKV_ECORRUPT);
  assert_int_equal(mapkv_close(db), 0);
  free(img);
  unlink(path);
}

/* fuzz_open/regress-foreign-header-sealed-inside-record: a header of
 * another store whose sealed end lies inside the first record of this
 * log. With records of the sealed log read no further than the sealed
 * end (above), that record counted as nothing, one sound record was left
 * failing its checksum, the store was not refused, and a writable open
 * would have zeroed the log. A sound record the sealed end cuts counts
 * with those that fail. */
static void test_foreign_header_sealed_inside_record(void **state) {
  char path[512], other[512];
  mapkv_options o;
  mapkv_t *db = NULL;
  uint8_t *img, *hdr, *after;
  size_t n, hn, n2;
  (void)state;
  tu_path(path, sizeof path, "fz-foreign");
  tu_path(other, sizeof other, "fz-foreign-other");

  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "a", 1, "1", 1), 0);  /* 4096 */
  assert_int_equal(mapkv_put(db, "bb", 2, "2", 1), 0); /* 4128 */
  assert_int_equal(mapkv_close(db), 0);
  db = open_store(other, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "o", 1, "other", 5), 0);
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  hdr = tu_slurp(other, &hn);
  memcpy(img, hdr, MAPKV__HDR_PAGE); /* the other store's header */
  set_ends(img, n, 4103);            /* inside a's record */
  put_file(path, img, n);

  for (int ro = 0; ro < 2; ro++) {
    mapkv_options_init(&o);
    o.flags = ro ? MAPKV_RDONLY : 0;
    db = NULL;
    assert_int_equal(mapkv_open(path, &o, &db), MAPKV_ECORRUPT);
    after = tu_slurp(path, &n2);
    assert_int_equal(n2, n);
    assert_memory_equal(after, img, n);
    free(after);
  }
  free(img);
  free(hdr);
  unlink(path);
  unlink(other);
}

/* fuzz_open/regress-cut-header-past-sealed-end.mkv: a damaged record, then
 * one whose fixed fields the sealed end (a header with a valid checksum)
 * cuts, with a prev past the sealed end that no record may have. Whether
 * a record the sealed end cuts counts with those that fail was decided by
 * its fields past the sealed end: this one did not, one record failed,
 * and a writable open took the store. That open zeroed what follows the
 * log, prev with it, and after its clean close the record was sound,
 * two records failed, and every open refused the store. Only what lies
 * of the record below the sealed end is judged now: every open refuses
 * from the start, and changes nothing. */
static void test_cut_header_past_sealed_end(void **state) {
  char path[512];
  mapkv_options o;
  mapkv_t *db = NULL;
  uint8_t *img, *after;
  size_t n, n2;
  (void)state;
  tu_path(path, sizeof path, "fz-cut-header");

  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "a", 1, "1", 1), 0); /* 4096 */
  assert_int_equal(mapkv_put(db, "b", 1, "2", 1), 0); /* 4128 */
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  assert_int_equal(mapkv__get_le(img + 4128 + MAPKV__R_SEQ, 6), 2);
  img[4096 + MAPKV__REC_HEAD + 1] ^= 1;      /* a fails its checksum */
  img[4128 + MAPKV__R_PREV] = 1;             /* no record may have prev 1 */
  set_ends(img, n, 4128 + MAPKV__R_SEQ + 1); /* after b's first seq byte */
  put_file(path, img, n);

  for (int ro = 0; ro < 2; ro++) {
    mapkv_options_init(&o);
    o.flags = ro ? MAPKV_RDONLY : 0;
    db = NULL;
    assert_int_equal(mapkv_open(path, &o, &db), MAPKV_ECORRUPT);
    assert_null(db);
    after = tu_slurp(path, &n2);
    assert_int_equal(n2, n);
    assert_memory_equal(after, img, n);
    free(after);
  }
  db = open_store(path, MAPKV_RDONLY | MAPKV_VERIFY);
  assert_int_equal(mapkv_verify(db, NULL, NULL, NULL), MAPKV_ECORRUPT);
  assert_int_equal(mapkv_close(db), 0);
  free(img);
  unlink(path);
}

/* fuzz_open/regress-record-completed-past-sealed-end: a record whose value
 * length was grown (checksum fixed up) over the next record and one byte
 * past the sealed end, that byte the last of its checksum. Below the
 * sealed end it is read no further than it, and is damage; but a writer
 * appends there, and once the clean close had sealed the log past it,
 * the record was read whole: the first byte of the new record completed
 * its checksum (a marker byte, 1 in 256 for a checksum fixed up), it was
 * accepted, and the new record it covered was lost. A record that the
 * sealed end cuts keeps the sealed end where it is, as damage a crash
 * may have left does: every later open reads the log as the first. */
static void test_record_completed_past_sealed_end(void **state) {
  char path[512];
  mapkv_t *db;
  uint8_t *img, val[33], v[64];
  size_t n, vl;
  uint64_t fid, seq;
  (void)state;
  tu_path(path, sizeof path, "fz-completed");

  /* a at 4096, b at 4128 (31 bytes), c at 4159 to 4191 */
  db = open_store(path, MAPKV_CREATE);
  assert_int_equal(mapkv_put(db, "a", 1, "1", 1), 0);
  assert_int_equal(mapkv_put(db, "b", 1, "", 0), 0);
  assert_int_equal(mapkv_put(db, "c", 1, "3", 1), 0);
  assert_int_equal(figures(db).data_end, 4191);
  assert_int_equal(mapkv_close(db), 0);
  img = tu_slurp(path, &n);
  fid = mapkv__get_le(img + 24, 8);
  /* b grows to 64 bytes (to 4192), its checksum's last byte a marker's */
  memcpy(val, img + 4128 + MAPKV__REC_HEAD + 1, sizeof val);
  for (seq = 2;; seq++) {
    mapkv__rec_encode(img + 4128, MAPKV__T_PUT, MAPKV__F_FIRST | MAPKV__F_LAST,
                      seq, 0, "b", 1, val, sizeof val, fid);
    if (img[4191] == MAPKV__MARK0)
      break;
  }
  put_file(path, img, n);

  /* read-only; writable, a put; twice more, a put and its clean close */
  for (int pass = 0; pass < 4; pass++) {
    mapkv_cursor_t *c;
    const void *k;
    size_t kl, keys = 0;
    db = open_store(path, pass == 0 ? MAPKV_RDONLY : 0);
    figures(db);
    assert_int_equal(mapkv_get(db, "a", 1, v, sizeof v, &vl), 0);
    /* b's only record runs past its span (no entry): missing */
    assert_int_equal(mapkv_get(db, "b", 1, v, sizeof v, &vl), MAPKV_NOTFOUND);
    assert_int_equal(mapkv_get(db, "c", 1, v, sizeof v, &vl), MAPKV_ECORRUPT);
    assert_int_equal(mapkv_get(db, "x", 1, v, sizeof v, &vl),
                     pass < 2 ? MAPKV_NOTFOUND : 0);
    assert_int_equal(mapkv_get(db, "y", 1, v, sizeof v, &vl),
                     pass < 3 ? MAPKV_NOTFOUND : 0);
    /* a cursor returns what reads back */
    assert_int_equal(mapkv_cursor_open(db, NULL, 0, &c), 0);
    while (mapkv_cursor_next(c, &k, &kl, NULL, NULL) == 0)
      keys++;
    mapkv_cursor_close(c);
    assert_int_equal(keys, pass < 2 ? 1 : pass < 3 ? 2 : 3);
    if (pass == 1)
      assert_int_equal(mapkv_put(db, "x", 1, "new", 3), 0);
    if (pass == 2)
      assert_int_equal(mapkv_put(db, "y", 1, "newer", 5), 0);
    assert_int_equal(mapkv_close(db), 0);
  }
  free(img);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sealed_end_inside_record),
      cmocka_unit_test(test_damaged_length_covers_records),
      cmocka_unit_test(test_prev_flip_names_another_key),
      cmocka_unit_test(test_zeros_below_sealed_end),
      cmocka_unit_test(test_del_with_value),
      cmocka_unit_test(test_damaged_keys_counted_once),
      cmocka_unit_test(test_split_damage_spans),
      cmocka_unit_test(test_intact_records_outside_batches),
      cmocka_unit_test(test_intact_record_past_sealed_end),
      cmocka_unit_test(test_record_across_sealed_end),
      cmocka_unit_test(test_walk_across_sealed_end),
      cmocka_unit_test(test_refused_after_clean_close),
      cmocka_unit_test(test_foreign_header_sealed_inside_record),
      cmocka_unit_test(test_cut_header_past_sealed_end),
      cmocka_unit_test(test_record_completed_past_sealed_end),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
