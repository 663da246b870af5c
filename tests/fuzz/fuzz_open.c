/*
 * fuzz_open.c — libFuzzer target: opening damaged store files.
 *
 * The input becomes a store file (on tmpfs) in one of two ways:
 *  - raw: the input bytes are the file;
 *  - structure-aware (the input starts with 0x01): the rest of the input is
 *    a program that builds a real store through the API (puts, deletes,
 *    batches, compactions, clean and crash reopens), ends it with a clean
 *    close or a crash (the file copied while open, optionally cut short),
 *    then damages it record by record — fields changed with the checksum
 *    fixed up (seeded with the file id, as the library does), lengths and
 *    checksums broken, records zeroed or duplicated, header fields edited
 *    and resealed — and finally flips bytes at (offset, xor) pairs. So the
 *    fuzzer explores damaged-but-plausible stores, which random mutation of
 *    checksummed records rarely reaches.
 *
 * The file is then opened read-only, read-only with MAPKV_VERIFY, and (a
 * copy) writable. The library must never crash, hang, leak (memory,
 * descriptors, mappings) or read out of bounds, and what it reports must be
 * consistent (see the checks below): every key a cursor returns reads back
 * with the same bytes; a cursor sees every live key (those it skips are
 * counted as checksum failures); verify reports the damage recovery found;
 * read-only and writable opens agree; after a put, a delete and a
 * compaction the store holds exactly the expected keys, also after a clean
 * close and reopen. Any violation aborts.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "fuzz_common.h"
#include "fuzz_kvset.h"
#include "mapkv/mapkv.h"

#define HDR_PAGE   4096u
#define HDR_COPY_B 2048u
#define REC_HEAD   16u
#define REC_MIN    24u
#define SEQ_MAX    ((1ull << 48) - 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK_RC(expr, want)                                                   \
  do {                                                                         \
    int rc_ = (expr), want_ = (want);                                          \
    if (rc_ != want_)                                                          \
      FUZZ_FAIL("%s returned %d (%s; \"%s\"), expected %d (%s)", #expr, rc_,   \
                mapkv_strerror(rc_), mapkv_errmsg(), want_,                    \
                mapkv_strerror(want_));                                        \
  } while (0)

/* MAPKV_FUZZ_VERBOSE=1: what each open found; MAPKV_FUZZ_SAVE=FILE: a copy
 * of the store file built from the input (for reading reproducers). */
static int verbose;
static const char *save_to;

static uint64_t le(const uint8_t *p, unsigned n) {
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- Observing an open store --------------------------------------------- */

/* Walks a cursor (over prefix, or everything) into *out, sorted; *bad
 * receives the checksum failures the walk counted. */
static void walk(mapkv_t *db, const void *prefix, size_t plen, kvset *out,
                 uint64_t *bad) {
  mapkv_stats a, b;
  mapkv_cursor_t *c;
  const void *k, *v;
  size_t kn, vn;
  int rc;
  kvset_clear(out);
  CHECK_RC(mapkv_stat(db, &a), 0);
  CHECK_RC(mapkv_cursor_open(db, prefix, plen, &c), 0);
  while ((rc = mapkv_cursor_next(c, &k, &kn, &v, &vn)) == 0) {
    FUZZ_CHECK(kn <= 65535 && vn <= 0x7fffffffu);
    FUZZ_CHECK((k != NULL || kn == 0) && (v != NULL || vn == 0));
    FUZZ_CHECK(kn >= plen && (plen == 0 || memcmp(k, prefix, plen) == 0));
    kvset_add(out, k, kn, v, vn); /* reads the bytes in the mapping */
    FUZZ_CHECK(out->n <= a.records);
  }
  if (rc != MAPKV_NOTFOUND)
    FUZZ_FAIL("cursor_next returned %d (%s; %s)", rc, mapkv_strerror(rc),
              mapkv_errmsg());
  CHECK_RC(mapkv_cursor_next(c, &k, &kn, &v, &vn), MAPKV_NOTFOUND);
  mapkv_cursor_close(c);
  CHECK_RC(mapkv_stat(db, &b), 0);
  *bad = b.checksum_failures - a.checksum_failures;
  if (kvset_sort(out) != 0)
    FUZZ_FAIL("a cursor returned the same key twice");
}

static void check_stats(const mapkv_stats *st) {
  FUZZ_CHECK(st->format_version == 1);
  FUZZ_CHECK(st->data_end >= HDR_PAGE && st->data_end <= st->file_size);
  FUZZ_CHECK(st->live_bytes <= st->data_end - HDR_PAGE);
  FUZZ_CHECK(st->dead_bytes == st->data_end - HDR_PAGE - st->live_bytes);
  FUZZ_CHECK(st->records <= st->live_bytes / REC_MIN);
  FUZZ_CHECK(st->mapped_size == st->file_size);
  FUZZ_CHECK(st->damaged_regions == 0 || st->first_damage_offset >= HDR_PAGE);
  FUZZ_CHECK(st->damaged_bytes >= st->damaged_regions);
}

/* Every key of set reads back with its bytes. */
static void check_reads(mapkv_t *db, const kvset *set) {
  static uint8_t *buf;
  static size_t cap;
  for (size_t i = 0; i < set->n; i++) {
    const kv *e = &set->e[i];
    const void *view;
    size_t n = 0;
    if (cap < e->vn + 1) {
      free(buf);
      cap = e->vn + 1;
      buf = malloc(cap);
      FUZZ_CHECK(buf != NULL);
    }
    CHECK_RC(mapkv_get(db, e->k, e->kn, buf, e->vn + 1, &n), 0);
    if (n != e->vn || (n > 0 && memcmp(buf, e->v, n) != 0))
      FUZZ_FAIL("mapkv_get returned other bytes than the cursor (%zu vs %zu "
                "bytes) for key #%zu",
                n, e->vn, i);
    CHECK_RC(mapkv_get_view(db, e->k, e->kn, &view, &n), 0);
    FUZZ_CHECK(n == e->vn && (n == 0 || memcmp(view, e->v, n) == 0));
    CHECK_RC(mapkv_exists(db, e->k, e->kn), 1);
    if (e->vn > 0) {
      n = 0;
      CHECK_RC(mapkv_get(db, e->k, e->kn, buf, e->vn - 1, &n), MAPKV_EBUFSMALL);
      FUZZ_CHECK(n == e->vn);
    }
  }
}

/* A cursor over a prefix sees the keys of the full walk with that prefix. */
static void check_prefix(mapkv_t *db, const kvset *all) {
  kvset sub = {0}, want = {0};
  uint64_t bad;
  const kv *pick;
  size_t plen;
  if (all->n == 0)
    return;
  pick = &all->e[all->n / 2];
  plen = pick->kn < 2 ? pick->kn : 2;
  walk(db, pick->k, plen, &sub, &bad);
  for (size_t i = 0; i < all->n; i++)
    if (all->e[i].kn >= plen && memcmp(all->e[i].k, pick->k, plen) == 0)
      kvset_add(&want, all->e[i].k, all->e[i].kn, all->e[i].v, all->e[i].vn);
  kvset_sort(&want);
  if (!kvset_equal(&sub, &want)) {
    kvset_diff("prefix walk", &sub, "full walk", &want);
    FUZZ_FAIL("a prefix cursor disagrees with the full walk");
  }
  kvset_free(&sub);
  kvset_free(&want);
}

typedef struct vctx {
  uint64_t end, spans;
} vctx;

static void on_damage(void *ctx, uint64_t off, uint64_t len, const char *what) {
  vctx *v = ctx;
  v->spans++;
  if (off < HDR_PAGE || len == 0 || off + len > v->end || what == NULL ||
      what[0] == '\0')
    FUZZ_FAIL("verify reported a bad span: offset %llu, %llu bytes, data "
              "end %llu (%s)",
              (unsigned long long)off, (unsigned long long)len,
              (unsigned long long)v->end, what ? what : "(null)");
}

/* mapkv_verify, checked for consistency; returns its result. */
static int check_verify(mapkv_t *db, const mapkv_stats *st, uint64_t bad) {
  vctx v = {st->data_end, 0};
  uint64_t damaged = 12345;
  int rc = mapkv_verify(db, on_damage, &v, &damaged);
  if (rc != 0 && rc != MAPKV_ECORRUPT)
    FUZZ_FAIL("mapkv_verify returned %d (%s)", rc, mapkv_strerror(rc));
  FUZZ_CHECK(damaged == v.spans);
  FUZZ_CHECK((rc == 0) == (v.spans == 0));
  if (st->damaged_regions > 0 && rc == 0)
    FUZZ_FAIL("recovery skipped %llu damaged regions but verify finds none",
              (unsigned long long)st->damaged_regions);
  if (bad > 0 && rc == 0)
    FUZZ_FAIL("a cursor hit %llu checksum failures but verify finds no damage",
              (unsigned long long)bad);
  return rc;
}

typedef struct obs {
  int rc;
  mapkv_stats st;
  kvset set;
  uint64_t bad;
} obs;

/* A cursor sees every live key whose record is intact. After a verified
 * recovery every live record is intact: the cursor returns exactly the live
 * keys. After a clean open (checksums unchecked) it may skip damaged ones
 * (it need not even reach them all: it steps over damage to the next intact
 * record); so then every PUT key in the log that the cursor did not return
 * must not read back either. */
static void check_complete(mapkv_t *db, const char *path, unsigned flags,
                           const obs *o) {
  uint8_t *f;
  size_t n, pos = HDR_PAGE;
  if ((flags & MAPKV_VERIFY) || !o->st.clean_open) {
    if (o->bad != 0 || o->set.n != o->st.records)
      FUZZ_FAIL("after a verified recovery a cursor returned %zu keys and "
                "hit %llu damaged ones, but the store has %llu live keys",
                o->set.n, (unsigned long long)o->bad,
                (unsigned long long)o->st.records);
    return;
  }
  if (o->set.n + o->bad > o->st.records)
    FUZZ_FAIL("a cursor returned %zu keys and hit %llu damaged ones, but "
              "the store has %llu live keys",
              o->set.n, (unsigned long long)o->bad,
              (unsigned long long)o->st.records);
  if (o->set.n == o->st.records)
    return;
  f = fuzz_read_file(path, &n);
  /* The clean walk accepted the structure of [HDR_PAGE, data end). */
  while (pos + REC_MIN <= n && pos < o->st.data_end) {
    size_t k = le(f + pos + 4, 2), v = le(f + pos + 6, 4);
    if (f[pos] != 0xb7 || f[pos + 1] != 0x6b || REC_MIN + k + v > n - pos)
      FUZZ_FAIL("harness: no record at offset %zu of a cleanly opened store",
                pos);
    if (f[pos + 2] == 1 && kvset_find(&o->set, f + pos + REC_HEAD, k) == NULL) {
      int rc = mapkv_get(db, f + pos + REC_HEAD, k, NULL, 0, NULL);
      if (rc != MAPKV_NOTFOUND && rc != MAPKV_ECORRUPT)
        FUZZ_FAIL("a live key whose record is intact (offset %zu; get says "
                  "%d) was not returned by a cursor",
                  pos, rc);
    }
    pos += REC_MIN + k + v;
  }
  free(f);
}

static int open_error_ok(int rc) {
  return rc == MAPKV_ENOTDB || rc == MAPKV_EVERSION || rc == MAPKV_ETRUNCATED ||
         rc == MAPKV_ECORRUPT;
}

/* Opens path read-only (with extra flags), checks everything, closes. */
static void observe(const char *path, unsigned flags, obs *o) {
  mapkv_options opts;
  mapkv_batch_t *b = NULL;
  mapkv_t *db = NULL;
  mapkv_options_init(&opts);
  opts.flags = MAPKV_RDONLY | flags;
  o->rc = mapkv_open(path, &opts, &db);
  if (o->rc != 0) {
    if (verbose)
      fprintf(stderr, "open: %d (%s)\n", o->rc, mapkv_errmsg());
    if (!open_error_ok(o->rc))
      FUZZ_FAIL("read-only open failed with %d (%s; %s)", o->rc,
                mapkv_strerror(o->rc), mapkv_errmsg());
    FUZZ_CHECK(db == NULL && mapkv_errmsg()[0] != '\0');
    return;
  }
  CHECK_RC(mapkv_stat(db, &o->st), 0);
  check_stats(&o->st);
  walk(db, NULL, 0, &o->set, &o->bad);
  if (verbose)
    fprintf(stderr,
            "open%s: %llu records (%zu intact), end %llu of %llu, clean %u, "
            "batches %llu, tail %llu bytes, %llu damaged regions\n",
            (flags & MAPKV_VERIFY) ? " (verify)" : "",
            (unsigned long long)o->st.records, o->set.n,
            (unsigned long long)o->st.data_end,
            (unsigned long long)o->st.file_size, o->st.clean_open,
            (unsigned long long)o->st.recovered_batches,
            (unsigned long long)o->st.dropped_tail_bytes,
            (unsigned long long)o->st.damaged_regions);
  check_complete(db, path, flags, o);
  check_reads(db, &o->set);
  check_prefix(db, &o->set);
  check_verify(db, &o->st, o->bad);
  /* A read-only handle refuses every write. */
  CHECK_RC(mapkv_put(db, "k", 1, "v", 1), MAPKV_EREADONLY);
  CHECK_RC(mapkv_del(db, "k", 1), MAPKV_EREADONLY);
  CHECK_RC(mapkv_batch_begin(db, &b), MAPKV_EREADONLY);
  CHECK_RC(mapkv_sync(db), MAPKV_EREADONLY);
  CHECK_RC(mapkv_compact(db), MAPKV_EREADONLY);
  CHECK_RC(mapkv_close(db), 0);
}

/* The same figures from two opens of the same bytes. */
static void same_recovery(const mapkv_stats *a, const mapkv_stats *b) {
  FUZZ_CHECK(a->records == b->records);
  FUZZ_CHECK(a->live_bytes == b->live_bytes);
  FUZZ_CHECK(a->data_end == b->data_end);
  FUZZ_CHECK(a->last_seq == b->last_seq);
  FUZZ_CHECK(a->clean_open == b->clean_open);
  FUZZ_CHECK(a->recovered_batches == b->recovered_batches);
  FUZZ_CHECK(a->dropped_tail_bytes == b->dropped_tail_bytes);
  FUZZ_CHECK(a->dropped_tail_records == b->dropped_tail_records);
  FUZZ_CHECK(a->damaged_regions == b->damaged_regions);
  FUZZ_CHECK(a->damaged_bytes == b->damaged_bytes);
  FUZZ_CHECK(a->first_damage_offset == b->first_damage_offset);
}

/* The store holds exactly model, with no damage left. */
static void expect_exactly(mapkv_t *db, const kvset *model, const char *when) {
  mapkv_stats st;
  kvset got = {0};
  uint64_t bad;
  walk(db, NULL, 0, &got, &bad);
  if (!kvset_equal(&got, model) || bad != 0) {
    kvset_diff("store", &got, "expected", model);
    FUZZ_FAIL("%s: the store does not hold the expected keys (%llu checksum "
              "failures)",
              when, (unsigned long long)bad);
  }
  CHECK_RC(mapkv_stat(db, &st), 0);
  check_stats(&st);
  FUZZ_CHECK(st.records == model->n);
  check_reads(db, model);
  check_prefix(db, model);
  /* The recovery figures are those of the last open, not of now. */
  st.damaged_regions = 0;
  if (check_verify(db, &st, 0) != 0)
    FUZZ_FAIL("%s: verify finds damage", when);
  kvset_free(&got);
}

static const uint8_t new_key[] = "\0mapkv-fuzz-new-key";
static const uint8_t new_val[] = "a value written by the fuzzer";

/* Writable open of a copy: the same recovery as read-only, then a put, a
 * delete, a compaction, a clean close and reopen. */
static void check_writable(const char *path, const obs *ro) {
  mapkv_options opts;
  mapkv_stats st;
  mapkv_t *db = NULL;
  kvset set = {0}, model = {0};
  uint64_t bad;
  int rc, full;

  mapkv_options_init(&opts);
  opts.initial_size = 8192;
  opts.growth_step = 4096;
  rc = mapkv_open(path, &opts, &db);
  if (ro->rc != 0) {
    if (rc != ro->rc)
      FUZZ_FAIL("read-only open failed with %d, writable open returned %d "
                "(%s)",
                ro->rc, rc, mapkv_errmsg());
    return;
  }
  if (rc != 0)
    FUZZ_FAIL("read-only open worked, writable open failed: %d (%s; %s)", rc,
              mapkv_strerror(rc), mapkv_errmsg());
  CHECK_RC(mapkv_stat(db, &st), 0);
  check_stats(&st);
  same_recovery(&ro->st, &st);
  walk(db, NULL, 0, &set, &bad);
  if (!kvset_equal(&set, &ro->set) || bad != ro->bad) {
    kvset_diff("writable", &set, "read-only", &ro->set);
    FUZZ_FAIL("writable and read-only opens see different stores");
  }
  check_verify(db, &st, bad);
  kvset_copy(&model, &set);

  /* Sequence numbers may be exhausted by a forged record: then writes fail
   * with MAPKV_EFULL and change nothing. */
  full = st.last_seq + 3 > SEQ_MAX;
  rc = mapkv_put(db, new_key, sizeof new_key, new_val, sizeof new_val);
  if (rc == 0) {
    kvset_put(&model, new_key, sizeof new_key, new_val, sizeof new_val);
  } else if (!(full && rc == MAPKV_EFULL)) {
    FUZZ_FAIL("put failed: %d (%s; %s)", rc, mapkv_strerror(rc),
              mapkv_errmsg());
  }
  if (set.n > 0) {
    const kv *victim = &set.e[set.n / 2];
    rc = mapkv_del(db, victim->k, victim->kn);
    if (rc == 0) {
      kvset_del(&model, victim->k, victim->kn);
      CHECK_RC(mapkv_get(db, victim->k, victim->kn, NULL, 0, NULL),
               MAPKV_NOTFOUND);
      CHECK_RC(mapkv_exists(db, victim->k, victim->kn), 0);
    } else if (!(full && rc == MAPKV_EFULL)) {
      FUZZ_FAIL("del of a live key failed: %d (%s; %s)", rc, mapkv_strerror(rc),
                mapkv_errmsg());
    }
  }
  CHECK_RC(mapkv_sync(db), 0);
  /* Before the compaction the damaged live records are still there. */
  walk(db, NULL, 0, &set, &bad);
  if (!kvset_equal(&set, &model)) {
    kvset_diff("store", &set, "expected", &model);
    FUZZ_FAIL("after a put and a delete the store is not as expected");
  }
  check_reads(db, &model);
  /* Compaction keeps exactly the intact live records. */
  CHECK_RC(mapkv_compact(db), 0);
  CHECK_RC(mapkv_stat(db, &st), 0);
  FUZZ_CHECK(st.data_end == HDR_PAGE + st.live_bytes && st.dead_bytes == 0);
  FUZZ_CHECK(st.last_seq == model.n);
  expect_exactly(db, &model, "after compaction");
  CHECK_RC(mapkv_close(db), 0);

  mapkv_options_init(&opts);
  CHECK_RC(mapkv_open(path, &opts, &db), 0);
  CHECK_RC(mapkv_stat(db, &st), 0);
  FUZZ_CHECK(st.clean_open == 1);
  expect_exactly(db, &model, "after a clean close and reopen");
  CHECK_RC(mapkv_close(db), 0);
  kvset_free(&set);
  kvset_free(&model);
}

/* ---- The structure-aware mode -------------------------------------------- */

static uint8_t keybuf[16], valbuf[4096];

static size_t gen_key(fuzz_in *in) {
  size_t n = fuzz_u8(in) % 9;
  for (size_t i = 0; i < n; i++)
    keybuf[i] = fuzz_u8(in);
  return n;
}

static size_t gen_val(fuzz_in *in) {
  uint8_t spec = fuzz_u8(in), seed = fuzz_u8(in);
  size_t n = spec < 0xf8 ? spec % 64u : (size_t)(spec - 0xf7) * 256u;
  for (size_t i = 0; i < n; i++)
    valbuf[i] = (uint8_t)(seed + i * 7);
  return n;
}

/* Replaces the store file with an image of it (as a crash leaves it). */
static void put_image(const char *path, const uint8_t *img, size_t n) {
  const char *tmp = fuzz_path(3, "image.tmp");
  fuzz_write_file(tmp, img, n);
  if (rename(tmp, path) != 0)
    FUZZ_FAIL("rename: %s", strerror(errno));
}

static mapkv_t *build_open(const char *path, int sync_mode) {
  mapkv_options opts;
  mapkv_t *db = NULL;
  mapkv_options_init(&opts);
  opts.flags = MAPKV_CREATE;
  opts.sync_mode = sync_mode;
  opts.initial_size = 8192;
  opts.growth_step = 4096;
  CHECK_RC(mapkv_open(path, &opts, &db), 0);
  return db;
}

/* Records of an image from the start of the log (structure only). */
static size_t list_records(const uint8_t *f, size_t n, size_t *offs,
                           size_t max) {
  size_t pos = HDR_PAGE, cnt = 0;
  while (cnt < max && pos + REC_MIN <= n && f[pos] == 0xb7 &&
         f[pos + 1] == 0x6b) {
    size_t size = REC_MIN + le(f + pos + 4, 2) + le(f + pos + 6, 4);
    if (size > n - pos)
      break;
    offs[cnt++] = pos;
    pos += size;
  }
  return cnt;
}

/* Recomputes the checksum of the record at off (as its lengths now say). */
static void reseal(uint8_t *f, size_t n, size_t off, uint64_t file_id) {
  size_t body = REC_HEAD + le(f + off + 4, 2) + le(f + off + 6, 4);
  if (off + body + 8 > n)
    return;
  put_le(f + off + body, XXH3_64bits_withSeed(f + off, body, file_id), 8);
}

static void reseal_header(uint8_t *f, size_t copy) {
  put_le(f + copy + 120, XXH3_64bits(f + copy, 120), 8);
}

static void header_field(uint8_t *f, size_t copy, unsigned at, unsigned width,
                         uint64_t v) {
  put_le(f + copy + at, v, width);
  reseal_header(f, copy);
}

static void corrupt(uint8_t *f, size_t n, const size_t *offs, size_t nrec,
                    uint8_t sel, uint8_t kind, uint8_t arg, uint64_t fid) {
  static const unsigned fields[11] = {8,  12, 16, 20, 24, 32,
                                      40, 48, 56, 64, 72};
  size_t i, off, k, v, size;
  uint8_t *r;
  kind %= 16;
  if (kind >= 11) { /* the header page */
    size_t copy = (sel & 1) ? HDR_COPY_B : 0;
    if (n < HDR_PAGE)
      return;
    switch (kind) {
    case 11: { /* CLEAN with a data end at (or near) a record boundary */
      size_t j = arg % (nrec + 1), end;
      end = j < nrec ? offs[j]
            : nrec > 0
                ? offs[nrec - 1] + REC_MIN + le(f + offs[nrec - 1] + 4, 2) +
                      le(f + offs[nrec - 1] + 6, 4)
                : HDR_PAGE;
      if (sel & 0x80)
        end += (sel >> 1) & 7;
      for (size_t c = 0; c <= HDR_COPY_B; c += HDR_COPY_B) {
        put_le(f + c + 20, le(f + c + 20, 4) | 1, 4);
        header_field(f, c, 40, 8, end);
      }
      break;
    }
    case 12: /* toggle CLEAN in both copies */
      for (size_t c = 0; c <= HDR_COPY_B; c += HDR_COPY_B)
        header_field(f, c, 20, 4, le(f + c + 20, 4) ^ 1);
      break;
    case 13: /* wrong live figures */
      for (size_t c = 0; c <= HDR_COPY_B; c += HDR_COPY_B) {
        put_le(f + c + 56, (uint64_t)arg * (sel + 1u), 8);
        header_field(f, c, 64, 8, le(f + c + 64, 8) ^ ((uint64_t)sel << 3));
      }
      break;
    case 14: /* a damaged copy */
      f[copy + arg % 128] ^= (uint8_t)(sel | 1);
      break;
    default: { /* any field of one copy, resealed */
      unsigned at = fields[(sel >> 1) % 11];
      unsigned width = at < 24 ? 4 : 8;
      uint64_t val = (arg & 0x80)   ? ~0ull
                     : (arg & 0x40) ? (uint64_t)arg << 36
                                    : arg;
      header_field(f, copy, at, width, val);
      break;
    }
    }
    return;
  }
  if (nrec == 0)
    return;
  i = sel % nrec;
  off = offs[i];
  r = f + off;
  k = le(r + 4, 2);
  v = le(r + 6, 4);
  size = REC_MIN + k + v;
  /* An earlier corruption may have changed the lengths: the operations
   * that need the whole record skip one that no longer fits. */
  if (size > n - off && (kind == 7 || kind == 8 || kind == 9 || kind == 10))
    return;
  switch (kind) {
  case 0: /* flags */
    r[3] = (arg & 0x80) ? arg : (uint8_t)(arg & 3);
    reseal(f, n, off, fid);
    break;
  case 1: /* type */
    r[2] = arg % 4;
    reseal(f, n, off, fid);
    break;
  case 2: /* sequence number moved */
    put_le(r + 10, le(r + 10, 6) + (uint64_t)(int64_t)(int8_t)arg, 6);
    reseal(f, n, off, fid);
    break;
  case 3: /* sequence number of another record */
    put_le(r + 10, le(f + offs[(i + 1 + arg) % nrec] + 10, 6), 6);
    reseal(f, n, off, fid);
    break;
  case 4: /* value length, checksum left */
    put_le(r + 6, (uint32_t)(v + (uint32_t)(int32_t)(int8_t)arg), 4);
    break;
  case 5: /* key length, checksum left */
    put_le(r + 4, (uint16_t)(k + (uint16_t)(int16_t)(int8_t)arg), 2);
    break;
  case 6: /* value length, resealed: an intact record of the wrong size */
    put_le(r + 6, (uint32_t)(v + (uint32_t)(int32_t)(int8_t)arg), 4);
    reseal(f, n, off, fid);
    break;
  case 7: /* checksum */
    r[size - 8 + arg % 8] ^= (uint8_t)(arg | 1);
    break;
  case 8: /* a hole */
    memset(r, 0, size);
    break;
  case 9: /* a record copied over the next one */
    if (i + 1 < nrec) {
      size_t at = offs[i + 1], m = size < n - at ? size : n - at;
      memmove(f + at, r, m);
    }
    break;
  default: /* first value byte (a commit's count), resealed */
    if (REC_HEAD + k < size - 8) {
      r[REC_HEAD + k] = arg;
      reseal(f, n, off, fid);
    }
    break;
  }
}

/* Builds the file described by the program in `in`; returns its image. */
static uint8_t *build_structured(fuzz_in *in, size_t *out_n) {
  const char *path = fuzz_path(2, "build.mkv");
  uint8_t cfg = fuzz_u8(in);
  int sync_mode = cfg % 3;
  mapkv_t *db;
  mapkv_stats st;
  uint8_t *img;
  size_t n, nops, nrec, ncorr, nmut;
  unsigned how;
  static size_t offs[8192];

  fuzz_remove_store(path);
  db = build_open(path, sync_mode);
  nops = fuzz_u8(in) % 32;
  for (size_t op = 0; op < nops && fuzz_left(in) > 0; op++) {
    switch (fuzz_u8(in) % 8) {
    case 0:
    case 1: {
      size_t kn = gen_key(in), vn = gen_val(in);
      CHECK_RC(mapkv_put(db, keybuf, kn, valbuf, vn), 0);
      break;
    }
    case 2: {
      size_t kn = gen_key(in);
      int rc = mapkv_del(db, keybuf, kn);
      if (rc != 0 && rc != MAPKV_NOTFOUND)
        FUZZ_FAIL("del: %d (%s)", rc, mapkv_errmsg());
      break;
    }
    case 3: {
      mapkv_batch_t *b;
      size_t cnt = 2 + fuzz_u8(in) % 5;
      CHECK_RC(mapkv_batch_begin(db, &b), 0);
      for (size_t j = 0; j < cnt; j++) {
        uint8_t t = fuzz_u8(in);
        size_t kn = gen_key(in);
        if (t & 1) {
          CHECK_RC(mapkv_batch_del(b, keybuf, kn), 0);
        } else {
          size_t vn = gen_val(in);
          CHECK_RC(mapkv_batch_put(b, keybuf, kn, valbuf, vn), 0);
        }
      }
      if (fuzz_u8(in) == 0xff)
        mapkv_batch_abort(b);
      else
        CHECK_RC(mapkv_batch_commit(b), 0);
      break;
    }
    case 4:
      CHECK_RC(mapkv_compact(db), 0);
      break;
    case 5:
      CHECK_RC(mapkv_close(db), 0);
      db = build_open(path, sync_mode);
      break;
    case 6: /* crash and recover */
      img = fuzz_read_file(path, &n);
      mapkv_close(db);
      put_image(path, img, n);
      free(img);
      db = build_open(path, sync_mode);
      break;
    default:
      CHECK_RC(mapkv_sync(db), 0);
      break;
    }
  }

  /* How the store is left: closed, or crashed (optionally cut short). */
  CHECK_RC(mapkv_stat(db, &st), 0);
  how = fuzz_u8(in) % 4;
  if (how == 0) {
    CHECK_RC(mapkv_close(db), 0);
    img = fuzz_read_file(path, &n);
  } else {
    size_t cut = HDR_PAGE + fuzz_u16(in) % (st.data_end - HDR_PAGE + 1);
    img = fuzz_read_file(path, &n);
    mapkv_close(db); /* too late: the image is what a crash left */
    if (how == 2 && cut < n)
      memset(img + cut, 0, n - cut);
    else if (how == 3 && cut < n)
      n = cut;
  }
  fuzz_remove_store(path);

  /* Damage record by record, then byte flips. */
  nrec = list_records(img, n, offs, sizeof offs / sizeof offs[0]);
  ncorr = fuzz_u8(in) % 9;
  for (size_t j = 0; j < ncorr; j++) {
    uint8_t sel = fuzz_u8(in), kind = fuzz_u8(in), arg = fuzz_u8(in);
    uint64_t fid = n >= 32 ? le(img + 24, 8) : 0;
    corrupt(img, n, offs, nrec, sel, kind, arg, fid);
  }
  for (nmut = 0; nmut < 256 && fuzz_left(in) >= 4 && n > 0; nmut++) {
    size_t at = fuzz_u24(in) % n;
    img[at] ^= fuzz_u8(in);
  }
  *out_n = n;
  return img;
}

/* ---- The target ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  verbose = getenv("MAPKV_FUZZ_VERBOSE") != NULL;
  save_to = getenv("MAPKV_FUZZ_SAVE");
  fuzz_dir();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in_path = fuzz_path(0, "in.mkv");
  const char *rw_path = fuzz_path(1, "rw.mkv");
  const uint8_t *img = data;
  uint8_t *built = NULL;
  size_t n = size;
  obs ro = {0}, vf = {0};

  fuzz_leak_baseline();
  fuzz_seed_random(fuzz_hash(data, size));
  if (size > 0 && data[0] == 0x01) {
    fuzz_in in = {data + 1, size - 1, 0};
    built = build_structured(&in, &n);
    img = built;
  }
  fuzz_write_file(in_path, img, n);
  if (save_to != NULL)
    fuzz_write_file(save_to, img, n);
  observe(in_path, 0, &ro);
  observe(in_path, MAPKV_VERIFY, &vf);
  if (ro.rc != vf.rc)
    FUZZ_FAIL("open results differ: %d without, %d with MAPKV_VERIFY", ro.rc,
              vf.rc);
  /* Without a clean walk, a plain open recovers exactly as MAPKV_VERIFY. */
  if (ro.rc == 0 && !ro.st.clean_open &&
      (!kvset_equal(&ro.set, &vf.set) || ro.st.records != vf.st.records)) {
    kvset_diff("plain", &ro.set, "verify", &vf.set);
    FUZZ_FAIL("a full recovery differs from a MAPKV_VERIFY open");
  }
  fuzz_write_file(rw_path, img, n);
  check_writable(rw_path, &ro);

  fuzz_remove_store(in_path);
  fuzz_remove_store(rw_path);
  kvset_free(&ro.set);
  kvset_free(&vf.set);
  free(built);
  fuzz_leak_check();
  return 0;
}
