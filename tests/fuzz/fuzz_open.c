/*
 * fuzz_open.c — libFuzzer target: opening damaged store files.
 *
 * The input becomes a store file (on tmpfs) in one of two ways:
 *  - raw: the input bytes are the file;
 *  - structure-aware (the input starts with 0x01): the rest of the input is
 *    a program that builds a real store through the API (puts, deletes,
 *    batches, compactions, clean and crash reopens), ends it with a clean
 *    close, a crash (the file copied while open, optionally zeroed or cut
 *    from some offset) or a clean close followed by a cut at a record
 *    boundary, then damages it record by record — fields changed with the
 *    checksum fixed up (seeded with the file id, as the library does),
 *    lengths, checksums and prev broken, single bits flipped in the key or
 *    prev of a key's newest record, records zeroed or duplicated — and
 *    header field by header field, every field of either copy set to a
 *    value of a class (0, 1, small, a boundary, all ones, random, copied
 *    from another header, nearby) and resealed, or a whole copy replaced by
 *    a header of another store or of this store's earlier generations —
 *    and finally flips bytes at (offset, xor) pairs. So the fuzzer explores
 *    damaged-but-plausible stores, which random mutation of checksummed
 *    records rarely reaches.
 *
 * The file is then opened read-only, read-only with MAPKV_VERIFY (a salvage
 * open), and (a copy) writable, and salvaged with mapkv_recover(). The
 * library must never crash, hang, leak (memory, descriptors, mappings) or
 * read out of bounds, and what it reports must follow the contract of
 * format 2 (the checks below say which part): the header page is decoded
 * as FORMAT.md says (fuzz_format.c decides, on its own, which copy is used
 * or which error every open returns); a salvage open refuses nothing the
 * header allows, and the other opens refuse only with MAPKV_ECORRUPT or
 * MAPKV_ETRUNCATED (a sealed end past the file), changing nothing;
 * nothing below the sealed end is dropped or zeroed; every key a cursor
 * returns reads back with the same bytes and every key that reads back is
 * returned; damaged keys answer MAPKV_ECORRUPT and stay so across a clean
 * close; verify reports what recovery found; compaction refuses while
 * damage is known; the salvaged store holds what the salvage open showed.
 * For the stores the program built, the result is also compared with what
 * was written: the exact store when only the header was edited within
 * what leaves the log sealed; the batches wholly before a cut; no older
 * value and no deleted key back after flips in a cleanly closed store;
 * and a refusal for a header of another store over the log. Any violation
 * aborts.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "fuzz_format.h"
#include "fuzz_kvset.h"
#include "mapkv/mapkv.h"

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

/* ---- What the input file is, and what must become of it ------------------
 */

/* The expectations a built store brings (EX_NONE for raw inputs, and for
 * damage whose outcome the contract leaves open). */
enum {
  EX_NONE,
  EX_EXACT,   /* every open shows `model` exactly, no damage */
  EX_TRUNC,   /* a sealed log cut short: every open but salvage refuses
                 with MAPKV_ETRUNCATED; salvage shows `model` (the batches
                 wholly before the cut) but for the keys `keys` marks */
  EX_FLIPS,   /* bits flipped in the sealed log of a cleanly closed store:
                 per key, as `keys` says; never another value */
  EX_FOREIGN, /* a header of another store over the log: every open but
                 salvage refuses; salvage shows nothing */
};

/* Per-key allowances of the judge (the byte stored as a key's value in
 * fctx.keys). */
enum {
  K_MAY_CORRUPT = 1,  /* MAPKV_ECORRUPT is allowed */
  K_MUST_CORRUPT = 2, /* the newest batch is lost: no value may be read */
  K_MAY_MISSING = 4,  /* MAPKV_NOTFOUND is allowed (the key's first record
                         was damaged, so its key is unknown) */
};

typedef struct fctx {
  const uint8_t *img; /* the file as written */
  size_t n;
  int hrc;          /* what ff_header() says every open must do */
  ff_hdr hdr;       /* the copy the store goes by (hrc == 0) */
  int which;        /* 0: copy A, 1: copy B */
  unsigned head;    /* record head of its version */
  int ex;           /* EX_* */
  kvset model;      /* see EX_* */
  kvset keys;       /* the keys the judge asks for, with K_* flags */
  uint64_t rw_seed; /* options of the writable open */
} fctx;

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

/* The limit a handle enforces: the store's, or less if asked for less. */
static uint32_t limit_of(uint32_t store, uint32_t dflt, uint32_t req) {
  uint32_t s = store ? store : dflt;
  return req == 0 || req > s ? s : req;
}

static void check_stats(const fctx *fc, const mapkv_stats *st, unsigned flags,
                        uint32_t req_key, uint32_t req_val) {
  int salvage = (flags & MAPKV_RDONLY) && (flags & MAPKV_VERIFY);
  uint64_t sealed = fc->hdr.sealed_end;
  uint64_t nz = ff_nonzero_end(fc->img, FF_PAGE, fc->n);
  FUZZ_CHECK(st->format_version == fc->hdr.version);
  FUZZ_CHECK(st->clean_open == (fc->hdr.flags & 1));
  FUZZ_CHECK(st->generation == fc->hdr.generation);
  FUZZ_CHECK(st->file_size == fc->n && st->mapped_size == st->file_size);
  FUZZ_CHECK(st->data_end >= FF_PAGE && st->data_end <= st->file_size);
  /* Nothing below the sealed end is dropped. */
  if (st->data_end < (sealed < fc->n ? sealed : fc->n))
    FUZZ_FAIL("the log ends at %llu, below the sealed end %llu",
              (unsigned long long)st->data_end, (unsigned long long)sealed);
  FUZZ_CHECK(st->truncated_bytes ==
             (salvage && sealed > fc->n ? sealed - fc->n : 0));
  FUZZ_CHECK(st->dropped_tail_bytes ==
             (nz > st->data_end ? nz - st->data_end : 0));
  FUZZ_CHECK(st->live_bytes <= st->data_end - FF_PAGE);
  FUZZ_CHECK(st->dead_bytes == st->data_end - FF_PAGE - st->live_bytes);
  /* A damaged record with a slot (to poison its key) counts no bytes. */
  FUZZ_CHECK(st->records <=
             st->live_bytes / (fc->head + FF_TAIL) + st->damaged_keys);
  FUZZ_CHECK(st->damaged_regions == 0 || st->first_damage_offset >= FF_PAGE);
  FUZZ_CHECK(st->damaged_bytes >= st->damaged_regions);
  /* Keys are poisoned only by damage found. */
  FUZZ_CHECK(st->damaged_keys == 0 || st->damaged_regions > 0);
  FUZZ_CHECK(st->max_key_size ==
             limit_of(fc->hdr.max_key, MAPKV_DEFAULT_KEY_MAX, req_key));
  FUZZ_CHECK(st->max_value_size ==
             limit_of(fc->hdr.max_value, MAPKV_DEFAULT_VALUE_MAX, req_val));
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

/* Every key that stands in a record of the file (found by its marker,
 * read by structure alone) and that the cursor did not return must not
 * read back: a cursor sees every live key whose record is intact. The
 * keys that answer MAPKV_ECORRUPT are added to *corrupt (may be NULL). */
static void check_complete(mapkv_t *db, const fctx *fc, const kvset *set,
                           kvset *corrupt) {
  const uint8_t *f = fc->img;
  size_t checked = 0;
  for (size_t pos = FF_PAGE; pos + 1 < fc->n && checked < 4000; pos++) {
    size_t k;
    int rc;
    if (f[pos] != 0xb7 || f[pos + 1] != 0x6b ||
        fc->n - pos < fc->head + FF_TAIL)
      continue;
    k = (size_t)ff_le(f + pos + FF_R_KLEN, 2);
    if (k > fc->n - pos - fc->head || kvset_find(set, f + pos + fc->head, k))
      continue;
    checked++;
    rc = mapkv_get(db, f + pos + fc->head, k, NULL, 0, NULL);
    if (rc != MAPKV_NOTFOUND && rc != MAPKV_ECORRUPT)
      FUZZ_FAIL("the key of the record at offset %zu reads back (get says "
                "%d), but no cursor returned it",
                pos, rc);
    if (rc == MAPKV_ECORRUPT) {
      CHECK_RC(mapkv_exists(db, f + pos + fc->head, k), MAPKV_ECORRUPT);
      if (corrupt != NULL)
        kvset_put(corrupt, f + pos + fc->head, k, "", 0);
    }
  }
}

typedef struct vctx {
  uint64_t size, truncated, spans;
} vctx;

static void on_damage(void *ctx, uint64_t off, uint64_t len, const char *what) {
  vctx *v = ctx;
  v->spans++;
  if (what == NULL || what[0] == '\0' || len == 0 || off < FF_PAGE ||
      (off + len > v->size &&
       !(off == v->size && len == v->truncated && v->truncated > 0)))
    FUZZ_FAIL("verify reported a bad span: offset %llu, %llu bytes, file "
              "size %llu, truncated %llu (%s)",
              (unsigned long long)off, (unsigned long long)len,
              (unsigned long long)v->size, (unsigned long long)v->truncated,
              what ? what : "(null)");
}

/* mapkv_verify, checked for consistency; returns its result. */
static int check_verify(mapkv_t *db, const mapkv_stats *st, uint64_t bad) {
  vctx v = {st->file_size, st->truncated_bytes, 0};
  uint64_t damaged = 12345;
  int rc = mapkv_verify(db, on_damage, &v, &damaged);
  if (rc != 0 && rc != MAPKV_ECORRUPT)
    FUZZ_FAIL("mapkv_verify returned %d (%s)", rc, mapkv_strerror(rc));
  FUZZ_CHECK(damaged == v.spans);
  FUZZ_CHECK((rc == 0) == (v.spans == 0));
  if (st->damaged_regions > 0 && rc == 0)
    FUZZ_FAIL("recovery found %llu damaged regions but verify finds none",
              (unsigned long long)st->damaged_regions);
  if (st->truncated_bytes > 0 && rc == 0)
    FUZZ_FAIL("the file lacks %llu bytes of its log but verify finds nothing",
              (unsigned long long)st->truncated_bytes);
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
  int vrc; /* verify's result */
} obs;

/* The cursor's figures against the store's: it returns every live key but
 * the poisoned ones (which it skips, counting those it reaches). */
static void check_counts(const obs *o) {
  if (o->set.n + o->bad > o->st.records)
    FUZZ_FAIL("a cursor returned %zu keys and hit %llu damaged ones, but "
              "the store has %llu live keys",
              o->set.n, (unsigned long long)o->bad,
              (unsigned long long)o->st.records);
  if (o->st.damaged_keys == 0 && (o->bad != 0 || o->set.n != o->st.records))
    FUZZ_FAIL("no key is damaged, but a cursor returned %zu of %llu live "
              "keys and hit %llu damaged ones",
              o->set.n, (unsigned long long)o->st.records,
              (unsigned long long)o->bad);
  if (o->set.n + o->st.damaged_keys < o->st.records)
    FUZZ_FAIL("a cursor returned %zu keys; with %llu damaged keys the store "
              "cannot have %llu live keys",
              o->set.n, (unsigned long long)o->st.damaged_keys,
              (unsigned long long)o->st.records);
}

static int open_error_ok(int rc) {
  return rc == MAPKV_ENOTDB || rc == MAPKV_EVERSION || rc == MAPKV_ETRUNCATED ||
         rc == MAPKV_ECORRUPT;
}

/* What an open with `flags` must return before recovery has its say: the
 * header page's verdict, MAPKV_EVERSION for a writable open of a version 1
 * store, or -1 (recovery decides). */
static int open_verdict(const fctx *fc, unsigned flags) {
  if (fc->hrc != 0)
    return fc->hrc;
  if (!(flags & MAPKV_RDONLY) && fc->hdr.version < FF_VERSION)
    return MAPKV_EVERSION;
  return -1;
}

/* The result of an open against the contract; 1 if it succeeded. */
static int check_open_rc(const fctx *fc, unsigned flags, int rc, mapkv_t *db) {
  int v = open_verdict(fc, flags);
  int salvage = (flags & MAPKV_RDONLY) && (flags & MAPKV_VERIFY);
  if (rc != 0) {
    if (!open_error_ok(rc))
      FUZZ_FAIL("open (flags %u) failed with %d (%s; %s)", flags, rc,
                mapkv_strerror(rc), mapkv_errmsg());
    FUZZ_CHECK(db == NULL && mapkv_errmsg()[0] != '\0');
  }
  if (v != -1) {
    if (rc != v)
      FUZZ_FAIL("open (flags %u) returned %d (%s; %s); the header page says "
                "%d (%s)",
                flags, rc, mapkv_strerror(rc), mapkv_errmsg(), v,
                mapkv_strerror(v));
    return 0;
  }
  if (salvage && rc != 0)
    FUZZ_FAIL("a salvage open refused a store its header allows: %d (%s; %s)",
              rc, mapkv_strerror(rc), mapkv_errmsg());
  /* A sealed end past the file is truncation, and refused first. */
  if (!salvage && fc->hdr.sealed_end > fc->n && rc != MAPKV_ETRUNCATED)
    FUZZ_FAIL("the sealed end %llu lies past the file's %zu bytes, but open "
              "returned %d (%s)",
              (unsigned long long)fc->hdr.sealed_end, fc->n, rc,
              mapkv_strerror(rc));
  if (rc != 0 && rc != MAPKV_ECORRUPT && rc != MAPKV_ETRUNCATED)
    FUZZ_FAIL("open (flags %u) returned %d (%s; %s) for a header it must "
              "accept",
              flags, rc, mapkv_strerror(rc), mapkv_errmsg());
  if (rc == MAPKV_ETRUNCATED && fc->hdr.sealed_end <= fc->n)
    FUZZ_FAIL("MAPKV_ETRUNCATED, but the sealed end %llu lies in the file "
              "(%zu bytes)",
              (unsigned long long)fc->hdr.sealed_end, fc->n);
  return rc == 0;
}

/* The file at path still holds exactly the input. */
static void check_unchanged(const fctx *fc, const char *path,
                            const char *what) {
  size_t n;
  uint8_t *f = fuzz_read_file(path, &n);
  if (n != fc->n || memcmp(f, fc->img, n) != 0)
    FUZZ_FAIL("%s changed the file (%zu bytes, was %zu)", what, n, fc->n);
  free(f);
}

/* ---- The judge: a built store's keys against what was written -------------
 */

/* Every key fc->keys names answers as its flags allow against fc->model
 * (a value only if it is the model's, never a key the model lacks), and
 * the cursor (set) returns only what the model holds. */
static void judge(mapkv_t *db, const kvset *model, const kvset *keys,
                  const kvset *set, const char *when) {
  static uint8_t buf[70000];
  for (size_t i = 0; i < set->n; i++) {
    const kv *m = kvset_find(model, set->e[i].k, set->e[i].kn);
    if (m == NULL || m->vn != set->e[i].vn ||
        (m->vn > 0 && memcmp(m->v, set->e[i].v, m->vn) != 0)) {
      kvset_diff("cursor", set, "written", model);
      FUZZ_FAIL("%s: a cursor returned a key with a value that is not the "
                "newest written (%s)",
                when, m == NULL ? "a deleted or never written key" : "older");
    }
  }
  for (size_t i = 0; i < keys->n; i++) {
    const kv *k = &keys->e[i], *m = kvset_find(model, k->k, k->kn);
    uint8_t fl = k->vn > 0 ? k->v[0] : 0;
    size_t vn = 0;
    int rc = mapkv_get(db, k->k, k->kn, buf, sizeof buf, &vn);
    if (verbose) {
      fprintf(stderr, "judge: key #%zu (flags %u) ", i, (unsigned)fl);
      for (size_t j = 0; j < k->kn && j < 16; j++)
        fprintf(stderr, "%02x", k->k[j]);
      fprintf(stderr, ": %d\n", rc);
    }
    if (rc == 0) {
      if (m == NULL)
        FUZZ_FAIL("%s: key #%zu (%zu bytes) was deleted or never written, "
                  "but reads back (%zu bytes)",
                  when, i, k->kn, vn);
      if (fl & K_MUST_CORRUPT)
        FUZZ_FAIL("%s: the newest batch of key #%zu was lost to damage, but "
                  "it reads back (an older value)",
                  when, i);
      if (vn != m->vn || (vn > 0 && memcmp(buf, m->v, vn) != 0))
        FUZZ_FAIL("%s: key #%zu reads back %zu bytes other than the newest "
                  "written (%zu bytes)",
                  when, i, vn, m->vn);
    } else if (rc == MAPKV_ECORRUPT) {
      if (!(fl & K_MAY_CORRUPT))
        FUZZ_FAIL("%s: key #%zu answers MAPKV_ECORRUPT (%s), but damage did "
                  "not touch it",
                  when, i, mapkv_errmsg());
    } else if (rc == MAPKV_NOTFOUND) {
      if (m != NULL && !(fl & K_MAY_MISSING))
        FUZZ_FAIL("%s: key #%zu is missing (MAPKV_NOTFOUND), but it was "
                  "written and its first record is intact",
                  when, i);
    } else {
      FUZZ_FAIL("%s: get of key #%zu returned %d (%s)", when, i, rc,
                mapkv_strerror(rc));
    }
  }
}

/* The store shows exactly model, with no damage. */
static void expect_exactly(mapkv_t *db, const fctx *fc, const kvset *model,
                           const char *when) {
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
  FUZZ_CHECK(st.records == model->n);
  if (st.damaged_regions != 0 || st.damaged_keys != 0)
    FUZZ_FAIL("%s: %llu damaged regions and %llu damaged keys in an intact "
              "store",
              when, (unsigned long long)st.damaged_regions,
              (unsigned long long)st.damaged_keys);
  check_reads(db, model);
  check_prefix(db, model);
  if (fc != NULL)
    judge(db, model, &fc->keys, &got, when);
  kvset_free(&got);
}

/* What the expectations of a built store say about an open that worked. */
static void check_expected(mapkv_t *db, const fctx *fc, const obs *o,
                           int salvage, const char *when) {
  switch (fc->ex) {
  case EX_EXACT:
    expect_exactly(db, fc, &fc->model, when);
    if (o->vrc != 0)
      FUZZ_FAIL("%s: verify finds damage in an intact store", when);
    break;
  case EX_TRUNC:
    if (!salvage)
      FUZZ_FAIL("%s: a sealed log cut short, but the open worked", when);
    judge(db, &fc->model, &fc->keys, &o->set, when);
    break;
  case EX_FLIPS:
    judge(db, &fc->model, &fc->keys, &o->set, when);
    if (o->vrc == 0 || o->st.damaged_regions == 0)
      FUZZ_FAIL("%s: damage in the sealed log, but verify finds none", when);
    break;
  case EX_FOREIGN:
    if (!salvage)
      FUZZ_FAIL("%s: a header of another store over this log, but the open "
                "worked",
                when);
    if (o->set.n != 0 || o->vrc == 0)
      FUZZ_FAIL("%s: a header of another store, but a salvage open shows %zu "
                "keys (verify %d)",
                when, o->set.n, o->vrc);
    break;
  default:
    break;
  }
}

/* Opens path read-only (with extra flags), checks everything, closes. */
static void observe(const char *path, const fctx *fc, unsigned flags, obs *o) {
  mapkv_options opts;
  mapkv_batch_t *b = NULL;
  mapkv_cursor_t *c = NULL;
  mapkv_t *db = NULL;
  int salvage = (flags & MAPKV_VERIFY) != 0;
  mapkv_options_init(&opts);
  opts.flags = MAPKV_RDONLY | flags;
  o->rc = mapkv_open(path, &opts, &db);
  if (verbose && o->rc != 0)
    fprintf(stderr, "open%s: %d (%s)\n", salvage ? " (salvage)" : "", o->rc,
            mapkv_errmsg());
  check_unchanged(fc, path, "a read-only open");
  if (!check_open_rc(fc, MAPKV_RDONLY | flags, o->rc, db)) {
    if (fc->ex == EX_EXACT)
      FUZZ_FAIL("an intact store (the header edited within what FORMAT.md "
                "allows) was refused: %d (%s)",
                o->rc, mapkv_errmsg());
    return;
  }
  CHECK_RC(mapkv_stat(db, &o->st), 0);
  check_stats(fc, &o->st, MAPKV_RDONLY | flags, 0, 0);
  walk(db, NULL, 0, &o->set, &o->bad);
  if (verbose)
    fprintf(stderr,
            "open%s: %llu records (%zu intact), end %llu of %llu, clean %u, "
            "batches %llu, tail %llu bytes, %llu damaged regions, %llu "
            "damaged keys, %llu truncated\n",
            salvage ? " (salvage)" : "", (unsigned long long)o->st.records,
            o->set.n, (unsigned long long)o->st.data_end,
            (unsigned long long)o->st.file_size, o->st.clean_open,
            (unsigned long long)o->st.recovered_batches,
            (unsigned long long)o->st.dropped_tail_bytes,
            (unsigned long long)o->st.damaged_regions,
            (unsigned long long)o->st.damaged_keys,
            (unsigned long long)o->st.truncated_bytes);
  check_counts(o);
  check_complete(db, fc, &o->set, NULL);
  check_reads(db, &o->set);
  check_prefix(db, &o->set);
  o->vrc = check_verify(db, &o->st, o->bad);
  check_expected(db, fc, o, salvage, salvage ? "salvage open" : "open");
  /* A read-only handle refuses every write. */
  CHECK_RC(mapkv_put(db, "k", 1, "v", 1), MAPKV_EREADONLY);
  CHECK_RC(mapkv_del(db, "k", 1), MAPKV_EREADONLY);
  CHECK_RC(mapkv_batch_begin(db, &b), MAPKV_EREADONLY);
  CHECK_RC(mapkv_sync(db), MAPKV_EREADONLY);
  CHECK_RC(mapkv_compact(db), MAPKV_EREADONLY);
  /* close refuses while a cursor is open; a closed handle is told apart */
  CHECK_RC(mapkv_cursor_open(db, NULL, 0, &c), 0);
  CHECK_RC(mapkv_close(db), MAPKV_EBUSY);
  mapkv_cursor_close(c);
  CHECK_RC(mapkv_close(db), 0);
  CHECK_RC(mapkv_close(db), MAPKV_EINVAL);
  check_unchanged(fc, path, "a read-only open");
}

/* The same figures from two opens of the same bytes. */
static void same_recovery(const mapkv_stats *a, const mapkv_stats *b) {
  FUZZ_CHECK(a->records == b->records);
  FUZZ_CHECK(a->live_bytes == b->live_bytes);
  FUZZ_CHECK(a->data_end == b->data_end);
  FUZZ_CHECK(a->last_seq == b->last_seq);
  FUZZ_CHECK(a->clean_open == b->clean_open);
  FUZZ_CHECK(a->generation == b->generation);
  FUZZ_CHECK(a->recovered_batches == b->recovered_batches);
  FUZZ_CHECK(a->dropped_tail_bytes == b->dropped_tail_bytes);
  FUZZ_CHECK(a->dropped_tail_records == b->dropped_tail_records);
  FUZZ_CHECK(a->damaged_regions == b->damaged_regions);
  FUZZ_CHECK(a->damaged_bytes == b->damaged_bytes);
  FUZZ_CHECK(a->first_damage_offset == b->first_damage_offset);
  FUZZ_CHECK(a->damaged_keys == b->damaged_keys);
}

static int same_obs(const obs *a, const obs *b) {
  if (a->rc != b->rc)
    return 0;
  if (a->rc != 0)
    return 1;
  same_recovery(&a->st, &b->st);
  return kvset_equal(&a->set, &b->set) && a->bad == b->bad && a->vrc == b->vrc;
}

/* ---- The writable open ----------------------------------------------------
 */

static const uint8_t new_key[] = "\xffnk";
static const uint8_t new_val[] = "fuzzv";

/* The request for a limit: the store's (0), more than it, or less. */
static uint32_t limit_request(uint64_t seed, unsigned shift, uint32_t small,
                              uint32_t big) {
  switch ((seed >> shift) & 3) {
  case 1:
    return big;
  case 2:
    return small;
  default:
    return 0;
  }
}

/* The keys a write of the writable open made exact again. */
static void judge_written(kvset *keys, const void *k, size_t kn) {
  uint8_t fl = 0;
  kvset_put(keys, k, kn, &fl, 1);
}

/* Salvages path into a new store and checks it holds what the salvage open
 * showed (vf). */
static void check_salvage_copy(const char *path, const fctx *fc,
                               const obs *vf) {
  const char *out = fuzz_path(4, "salvaged.mkv");
  mapkv_recover_info info;
  mapkv_options opts;
  mapkv_t *db = NULL;
  int rc, over = 0;
  fuzz_remove_store(out);
  for (size_t i = 0; i < vf->set.n; i++)
    over |= vf->set.e[i].kn > vf->st.max_key_size ||
            vf->set.e[i].vn > vf->st.max_value_size;
  memset(&info, 0x5a, sizeof info);
  rc = mapkv_recover(path, out, 0, 0, &info);
  check_unchanged(fc, path, "a salvage into another file");
  if (rc != 0) {
    /* The store's limits (from its header) are the new store's: a record
     * beyond them cannot be copied, and nothing is left behind. */
    if (!(over && (rc == MAPKV_EKEYSIZE || rc == MAPKV_EVALSIZE)))
      FUZZ_FAIL("mapkv_recover into a new file failed: %d (%s; %s)", rc,
                mapkv_strerror(rc), mapkv_errmsg());
    FUZZ_CHECK(access(out, F_OK) != 0);
    return;
  }
  FUZZ_CHECK(!over);
  FUZZ_CHECK(info.rewritten == 1 && info.backup[0] == '\0');
  FUZZ_CHECK(info.saved == vf->set.n);
  FUZZ_CHECK(info.found.records == vf->st.records);
  FUZZ_CHECK(info.lost == vf->st.records - vf->set.n);
  FUZZ_CHECK(info.damaged == (vf->vrc != 0));
  mapkv_options_init(&opts);
  CHECK_RC(mapkv_open(out, &opts, &db), 0);
  expect_exactly(db, NULL, &vf->set, "the salvaged store");
  {
    mapkv_stats st;
    CHECK_RC(mapkv_stat(db, &st), 0);
    FUZZ_CHECK(st.clean_open == 1 && st.format_version == FF_VERSION);
    FUZZ_CHECK(st.max_key_size == vf->st.max_key_size &&
               st.max_value_size == vf->st.max_value_size);
    FUZZ_CHECK(check_verify(db, &st, 0) == 0);
  }
  CHECK_RC(mapkv_close(db), 0);
  fuzz_remove_store(out);
}

/* A writable open refused (path holds the input): mapkv_recover in place
 * salvages it; afterwards the store opens and holds what the salvage
 * open showed. */
static void check_recover_in_place(const char *path, const fctx *fc,
                                   const obs *vf) {
  mapkv_recover_info info;
  mapkv_options opts;
  mapkv_t *db = NULL;
  int rc, over = 0;
  for (size_t i = 0; i < vf->set.n; i++)
    over |= vf->set.e[i].kn > vf->st.max_key_size ||
            vf->set.e[i].vn > vf->st.max_value_size;
  rc = mapkv_recover(path, NULL, 0, 0, &info);
  if (rc != 0) {
    if (!(over && (rc == MAPKV_EKEYSIZE || rc == MAPKV_EVALSIZE)))
      FUZZ_FAIL("mapkv_recover in place failed: %d (%s; %s)", rc,
                mapkv_strerror(rc), mapkv_errmsg());
    check_unchanged(fc, path, "a failed recovery in place");
    return;
  }
  /* Refused by a writer: damage, truncation or an old format version. */
  FUZZ_CHECK(info.rewritten == 1 && info.backup[0] != '\0');
  FUZZ_CHECK(info.saved == vf->set.n);
  check_unchanged(fc, info.backup,
                  "recovery in place (the original's "
                  "second name)");
  unlink(info.backup);
  mapkv_options_init(&opts);
  CHECK_RC(mapkv_open(path, &opts, &db), 0);
  expect_exactly(db, NULL, &vf->set, "the store recovered in place");
  CHECK_RC(mapkv_close(db), 0);
}

/* Writable open of a copy: the same recovery as read-only, nothing below
 * the sealed end changed, then a put, a delete, a compaction (refused
 * while damage is known), a clean close and a reopen that shows the same
 * store and the same damage. */
static void check_writable(const char *path, const fctx *fc, const obs *ro,
                           const obs *vf) {
  mapkv_options opts;
  mapkv_stats st, st0;
  mapkv_t *db = NULL;
  kvset set = {0}, model = {0}, corrupt = {0}, keys = {0}, wmodel = {0};
  uint64_t bad;
  uint32_t rk, rv;
  int rc, full, damage;
  uint8_t *f;
  size_t n;

  mapkv_options_init(&opts);
  opts.initial_size = 8192;
  opts.growth_step = 4096;
  opts.max_key_size = rk = limit_request(fc->rw_seed, 0, 2, MAPKV_KEY_MAX);
  opts.max_value_size = rv = limit_request(fc->rw_seed, 2, 3, MAPKV_VALUE_MAX);
  rc = mapkv_open(path, &opts, &db);
  if (!check_open_rc(fc, 0, rc, db)) {
    if (fc->ex == EX_EXACT)
      FUZZ_FAIL("a writable open of a built store refused: %d (%s)", rc,
                mapkv_errmsg());
    /* Refused: nothing changed; read-only opens agree unless the store
     * is of an older format version. */
    check_unchanged(fc, path, "a refused writable open");
    if (open_verdict(fc, 0) == -1 && rc != ro->rc)
      FUZZ_FAIL("read-only open returned %d, writable open %d (%s)", ro->rc, rc,
                mapkv_errmsg());
    if (vf->rc == 0)
      check_recover_in_place(path, fc, vf);
    return;
  }
  if (ro->rc != 0)
    FUZZ_FAIL("read-only open failed with %d, writable open worked", ro->rc);
  CHECK_RC(mapkv_stat(db, &st), 0);
  check_stats(fc, &st, 0, rk, rv);
  same_recovery(&ro->st, &st);
  /* Nothing below the data end changed; after it, the dropped tail is
   * zero. */
  f = fuzz_read_file(path, &n);
  FUZZ_CHECK(n == fc->n);
  if (memcmp(f + FF_PAGE, fc->img + FF_PAGE, st.data_end - FF_PAGE) != 0)
    FUZZ_FAIL("a writable open changed the log below its end (%llu)",
              (unsigned long long)st.data_end);
  if (ff_nonzero_end(f, st.data_end, n) != st.data_end)
    FUZZ_FAIL("a writable open left bytes after the end of the log (%llu)",
              (unsigned long long)st.data_end);
  free(f);
  walk(db, NULL, 0, &set, &bad);
  if (!kvset_equal(&set, &ro->set) || bad != ro->bad) {
    kvset_diff("writable", &set, "read-only", &ro->set);
    FUZZ_FAIL("writable and read-only opens see different stores");
  }
  check_complete(db, fc, &set, &corrupt);
  check_verify(db, &st, bad);
  check_expected(db, fc, ro, 0, "writable open");
  kvset_copy(&model, &set);
  kvset_copy(&keys, &fc->keys);
  kvset_copy(&wmodel, &fc->model);
  st0 = st;

  /* Sequence numbers may be exhausted by a forged record: then writes fail
   * with MAPKV_EFULL and change nothing. Limits: the store's, or less if
   * the open asked for less. */
  full = st.last_seq + 3 > FF_SEQ_MAX;
  rc = mapkv_put(db, new_key, sizeof new_key, new_val, sizeof new_val);
  if (sizeof new_key > st.max_key_size) {
    CHECK_RC(rc, MAPKV_EKEYSIZE);
  } else if (sizeof new_val > st.max_value_size) {
    CHECK_RC(rc, MAPKV_EVALSIZE);
  } else if (rc == 0) {
    kvset_put(&model, new_key, sizeof new_key, new_val, sizeof new_val);
    kvset_put(&wmodel, new_key, sizeof new_key, new_val, sizeof new_val);
    kvset_del(&corrupt, new_key, sizeof new_key);
    judge_written(&keys, new_key, sizeof new_key);
  } else if (!(full && rc == MAPKV_EFULL)) {
    FUZZ_FAIL("put failed: %d (%s; %s)", rc, mapkv_strerror(rc),
              mapkv_errmsg());
  }
  if (set.n > 0) {
    const kv *victim = &set.e[set.n / 2];
    rc = mapkv_del(db, victim->k, victim->kn);
    if (victim->kn > st.max_key_size) {
      CHECK_RC(rc, MAPKV_EKEYSIZE);
    } else if (rc == 0) {
      kvset_del(&wmodel, victim->k, victim->kn);
      kvset_del(&model, victim->k, victim->kn);
      judge_written(&keys, victim->k, victim->kn);
      CHECK_RC(mapkv_get(db, victim->k, victim->kn, NULL, 0, NULL),
               MAPKV_NOTFOUND);
      CHECK_RC(mapkv_exists(db, victim->k, victim->kn), 0);
    } else if (!(full && rc == MAPKV_EFULL)) {
      FUZZ_FAIL("del of a live key failed: %d (%s; %s)", rc, mapkv_strerror(rc),
                mapkv_errmsg());
    }
  }
  CHECK_RC(mapkv_sync(db), 0);
  walk(db, NULL, 0, &set, &bad);
  if (!kvset_equal(&set, &model)) {
    kvset_diff("store", &set, "expected", &model);
    FUZZ_FAIL("after a put and a delete the store is not as expected");
  }
  check_reads(db, &model);
  /* Compaction keeps exactly the live records, and refuses while damage is
   * known (found at open, or a checksum failure since): the store is then
   * unchanged. */
  CHECK_RC(mapkv_stat(db, &st), 0);
  damage = st.damaged_regions > 0 || st.checksum_failures > 0;
  rc = mapkv_compact(db);
  if (damage) {
    CHECK_RC(rc, MAPKV_ECORRUPT);
    walk(db, NULL, 0, &set, &bad);
    if (!kvset_equal(&set, &model))
      FUZZ_FAIL("a refused compaction changed the store");
  } else {
    CHECK_RC(rc, 0);
    CHECK_RC(mapkv_stat(db, &st), 0);
    FUZZ_CHECK(st.data_end == FF_PAGE + st.live_bytes && st.dead_bytes == 0);
    FUZZ_CHECK(st.last_seq == model.n);
    FUZZ_CHECK(st.generation == fc->hdr.generation + 1);
    expect_exactly(db, NULL, &model, "after compaction");
    FUZZ_CHECK(check_verify(db, &st, 0) == 0);
  }
  if (fc->ex == EX_FLIPS)
    judge(db, &wmodel, &keys, &set, "after writes");
  {
    mapkv_batch_t *b = NULL;
    CHECK_RC(mapkv_batch_begin(db, &b), 0);
    CHECK_RC(mapkv_close(db), MAPKV_EBUSY);
    mapkv_batch_abort(b);
  }
  CHECK_RC(mapkv_close(db), 0);

  /* A clean close and reopen: the same store, the same damage. */
  mapkv_options_init(&opts);
  CHECK_RC(mapkv_open(path, &opts, &db), 0);
  CHECK_RC(mapkv_stat(db, &st), 0);
  FUZZ_CHECK(st.clean_open == 1 && st.dropped_tail_bytes == 0);
  walk(db, NULL, 0, &set, &bad);
  if (!kvset_equal(&set, &model)) {
    kvset_diff("store", &set, "expected", &model);
    FUZZ_FAIL("after a clean close and reopen the store is not as expected");
  }
  check_reads(db, &model);
  if (damage) {
    /* The same damage, the same damaged keys. */
    FUZZ_CHECK(st.damaged_regions == st0.damaged_regions);
    FUZZ_CHECK(st.damaged_bytes == st0.damaged_bytes);
    FUZZ_CHECK(st.damaged_keys == st0.damaged_keys);
    FUZZ_CHECK(st.first_damage_offset == st0.first_damage_offset);
    for (size_t i = 0; i < corrupt.n; i++)
      if (mapkv_get(db, corrupt.e[i].k, corrupt.e[i].kn, NULL, 0, NULL) !=
          MAPKV_ECORRUPT)
        FUZZ_FAIL("a damaged key (#%zu) no longer answers MAPKV_ECORRUPT "
                  "after a clean close and reopen",
                  i);
    if (fc->ex == EX_FLIPS)
      judge(db, &wmodel, &keys, &set, "after a clean close and reopen");
    CHECK_RC(mapkv_compact(db), MAPKV_ECORRUPT);
  } else {
    expect_exactly(db, NULL, &model, "after a clean close and reopen");
  }
  CHECK_RC(mapkv_close(db), 0);
  kvset_free(&set);
  kvset_free(&model);
  kvset_free(&corrupt);
  kvset_free(&keys);
  kvset_free(&wmodel);
}

/* Two intact header copies that differ, or one intact: the store goes by
 * one; the other copy made equal to it must change nothing. */
static void check_copy_choice(const fctx *fc, const obs *ro) {
  const char *alt = fuzz_path(5, "alt.mkv");
  const uint8_t *use = fc->img + (fc->which ? FF_COPY_B : 0);
  uint8_t *b;
  obs o = {0};
  fctx f2;
  if (fc->hrc != 0 || memcmp(fc->img, fc->img + FF_COPY_B, FF_HDR_SIZE) == 0)
    return;
  b = malloc(fc->n);
  FUZZ_CHECK(b != NULL);
  memcpy(b, fc->img, fc->n);
  memcpy(b + (fc->which ? 0 : FF_COPY_B), use, FF_HDR_SIZE);
  fuzz_write_file(alt, b, fc->n);
  f2 = *fc;
  f2.img = b;
  memset(&f2.model, 0, sizeof f2.model);
  memset(&f2.keys, 0, sizeof f2.keys);
  f2.ex = EX_NONE;
  {
    int hrc, which;
    ff_hdr h;
    hrc = ff_header(b, fc->n, &h, &which);
    FUZZ_CHECK(hrc == 0 && memcmp(&h, &fc->hdr, sizeof h) == 0);
  }
  observe(alt, &f2, 0, &o);
  if (!same_obs(ro, &o)) {
    kvset_diff("as is", &ro->set, "copies equal", &o.set);
    FUZZ_FAIL("the header copy the store does not go by (%c) changes what "
              "an open shows (%d vs %d)",
              fc->which ? 'A' : 'B', ro->rc, o.rc);
  }
  kvset_free(&o.set);
  fuzz_remove_store(alt);
  free(b);
}

/* ---- The structure-aware mode ---------------------------------------------
 */

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

static mapkv_t *build_open(const char *path, int sync_mode, int small) {
  mapkv_options opts;
  mapkv_t *db = NULL;
  mapkv_options_init(&opts);
  opts.flags = MAPKV_CREATE;
  opts.sync_mode = sync_mode;
  opts.initial_size = 8192;
  opts.growth_step = 4096;
  if (small) { /* limits travel with the store: asked for at creation */
    opts.max_key_size = 6;
    opts.max_value_size = 200;
  }
  CHECK_RC(mapkv_open(path, &opts, &db), 0);
  return db;
}

/* Header pages the damage may copy from: another store's, and this
 * store's at earlier points (before a compaction: another generation and
 * file id). */
#define BANK_MAX 8
typedef struct bank {
  uint8_t page[BANK_MAX][FF_PAGE];
  size_t n, turn;
} bank;

static void bank_add(bank *bk, const char *path) {
  size_t n;
  uint8_t *f = fuzz_read_file(path, &n);
  if (n >= FF_PAGE) {
    /* Full: the other store's two stay, this store's go round. */
    size_t i = bk->n < BANK_MAX ? bk->n++ : 2 + bk->turn++ % (BANK_MAX - 2);
    memcpy(bk->page[i], f, FF_PAGE);
  }
  free(f);
}

/* A small store of its own (another file id), at bank entries 0 (clean
 * close) and 1 (while open). */
static void bank_other_store(bank *bk) {
  const char *path = fuzz_path(6, "other.mkv");
  mapkv_t *db;
  fuzz_remove_store(path);
  db = build_open(path, MAPKV_SYNC_NONE, 0);
  CHECK_RC(mapkv_put(db, "o", 1, "other", 5), 0);
  CHECK_RC(mapkv_put(db, "p", 1, "store", 5), 0);
  bank_add(bk, path);
  CHECK_RC(mapkv_close(db), 0);
  bank_add(bk, path);
  fuzz_remove_store(path);
}

/* Records of an image from the start of the log (structure only). */
static size_t list_records(const uint8_t *f, size_t n, size_t *offs,
                           size_t max) {
  size_t pos = FF_PAGE, cnt = 0;
  while (cnt < max && pos + FF_OVERHEAD <= n && f[pos] == 0xb7 &&
         f[pos + 1] == 0x6b) {
    size_t size = FF_OVERHEAD + ff_le(f + pos + FF_R_KLEN, 2) +
                  ff_le(f + pos + FF_R_VLEN, 4);
    if (size > n - pos)
      break;
    offs[cnt++] = pos;
    pos += size;
  }
  return cnt;
}

/* What the program did to the image, for the expectations. */
typedef struct build {
  uint64_t fid;      /* the store's file id */
  int how;           /* 0 clean, 1 crash, 2 crash zeroed, 3 crash cut, 4 clean
                        and cut */
  uint64_t upto;     /* the log survives whole up to here */
  uint8_t *pristine; /* the image before the cut and the damage */
  ff_log log;        /* its intact log (pointing into pristine) */
  kvset model;       /* what was committed */
  int log_edited;    /* damage to the log beyond single-bit flips */
  size_t nflips;     /* single-bit flips in records of the log */
  bank bank;
} build;

static const struct {
  unsigned at, width;
} hfields[] = {
    {FF_H_MAGIC, 8},    {FF_H_VERSION, 4},      {FF_H_START, 4},
    {FF_H_PAGE, 4},     {FF_H_FLAGS, 4},        {FF_H_FILE_ID, 8},
    {FF_H_GEN, 8},      {FF_H_END, 8},          {FF_H_LAST_SEQ, 8},
    {FF_H_LIVE_REC, 8}, {FF_H_LIVE_B, 8},       {FF_H_CREATED, 8},
    {FF_H_MAX_KEY, 4},  {FF_H_MAX_VAL, 4},      {FF_H_SEALED, 8},
    {FF_H_RESERVED, 8}, {FF_H_RESERVED + 8, 8}, {FF_H_RESERVED + 16, 8}};
#define NHFIELDS (sizeof hfields / sizeof hfields[0])

static uint64_t width_mask(unsigned width) {
  return width >= 8 ? ~0ull : (1ull << (8 * width)) - 1;
}

/* A value of a class for header field f of the image (FORMAT.md's
 * boundaries, the image's own offsets, another header's field). */
static uint64_t header_value(fuzz_in *in, const build *bd, const uint8_t *img,
                             size_t n, size_t copy, unsigned f, unsigned cls) {
  unsigned at = hfields[f].at, width = hfields[f].width;
  uint8_t p = fuzz_u8(in);
  uint64_t cur = ff_le(img + copy + at, width), v;
  switch (cls % 8) {
  case 0:
    v = 0;
    break;
  case 1:
    v = 1;
    break;
  case 2:
    v = 2 + (uint64_t)p;
    break;
  case 3: {
    const ff_log *lg = &bd->log;
    uint64_t rb = lg->nrec > 0 ? lg->rec[fuzz_u8(in) % lg->nrec].off : FF_PAGE;
    const uint64_t b[] = {511,         512,
                          513,         4095,
                          4096,        4097,
                          1u << 30,    (1u << 30) + 1,
                          65535,       65536,
                          0x7fffffffu, 0x80000000u,
                          lg->end,     lg->end - 1,
                          lg->end + 1, n,
                          n + 1,       n - 1,
                          rb,          rb + 1,
                          2,           3,
                          FF_SEQ_MAX,  FF_SEQ_MAX + 1,
                          1ull << 40,  (1ull << 63) + 4096};
    v = b[p % (sizeof b / sizeof b[0])];
    break;
  }
  case 4:
    v = ~0ull;
    break;
  case 5:
    v = 0;
    for (int i = 0; i < 8; i++)
      v |= (uint64_t)fuzz_u8(in) << (8 * i);
    break;
  case 6: /* the same field of another header */
    v = bd->bank.n > 0 ? ff_le(bd->bank.page[p % bd->bank.n] +
                                   ((p & 0x80) ? FF_COPY_B : 0) + at,
                               width)
                       : cur;
    break;
  default:
    v = cur + (uint64_t)(int64_t)(int8_t)p;
    break;
  }
  return v & width_mask(width);
}

static void set_field(uint8_t *img, size_t copy, unsigned f, uint64_t v) {
  ff_put_le(img + copy + hfields[f].at, v, hfields[f].width);
  ff_copy_reseal(img + copy);
}

/* The records of the intact log that are their key's newest. */
static size_t newest_records(const ff_log *lg, size_t *out, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < lg->nrec && n < max; i++) {
    const ff_rec *r = &lg->rec[i];
    int newest = r->type != FF_COMMIT;
    for (size_t j = i + 1; j < lg->nrec && newest; j++)
      newest = !(lg->rec[j].type != FF_COMMIT && lg->rec[j].klen == r->klen &&
                 memcmp(lg->rec[j].key, r->key, r->klen) == 0);
    if (newest)
      out[n++] = i;
  }
  return n;
}

/* A single-bit flip in part `part` of record i of the intact log. */
static void flip_bit(uint8_t *img, size_t n, build *bd, size_t i, int part,
                     uint8_t arg) {
  const ff_rec *r = &bd->log.rec[i];
  uint64_t at;
  if (part == 0 && r->klen == 0)
    part = 1;
  if (part == 0)
    at = r->off + FF_HEAD + arg % r->klen;
  else if (part == 1)
    at = r->off + FF_R_PREV + arg % 6;
  else
    at = r->off + arg % r->size;
  if (at >= n)
    return;
  img[at] ^= (uint8_t)(1u << ((arg >> 5) & 7));
  bd->nflips++;
}

static void corrupt(fuzz_in *in, build *bd, uint8_t *f, size_t n,
                    const size_t *offs, size_t nrec) {
  uint8_t sel = fuzz_u8(in), kind = fuzz_u8(in) % 24, arg = fuzz_u8(in);
  uint64_t fid = bd->fid;
  size_t i, off, k, v, size;
  uint8_t *r;
  if (kind >= 15) { /* the header page */
    size_t copy = (sel & 1) ? FF_COPY_B : 0;
    if (n < FF_PAGE)
      return;
    switch (kind) {
    case 15: { /* CLEAN with data end and sealed end at a record boundary */
      size_t j = arg % (nrec + 1);
      uint64_t end = j < nrec ? offs[j] : bd->log.end;
      if (sel & 0x80)
        end += (sel >> 1) & 7;
      for (size_t c = 0; c <= FF_COPY_B; c += FF_COPY_B) {
        ff_put_le(f + c + FF_H_FLAGS, ff_le(f + c + FF_H_FLAGS, 4) | 1, 4);
        ff_put_le(f + c + FF_H_END, end, 8);
        if (sel & 0x40)
          ff_put_le(f + c + FF_H_SEALED, end, 8);
        ff_copy_reseal(f + c);
      }
      break;
    }
    case 16: /* toggle CLEAN in both copies */
      for (size_t c = 0; c <= FF_COPY_B; c += FF_COPY_B)
        set_field(f, c, 4, ff_le(f + c + FF_H_FLAGS, 4) ^ 1);
      break;
    case 17: /* wrong live figures */
      for (size_t c = 0; c <= FF_COPY_B; c += FF_COPY_B) {
        ff_put_le(f + c + FF_H_LIVE_REC, (uint64_t)arg * (sel + 1u), 8);
        set_field(f, c, 10,
                  ff_le(f + c + FF_H_LIVE_B, 8) ^ ((uint64_t)sel << 3));
      }
      break;
    case 18: /* a damaged copy (checksum not fixed) */
      f[copy + arg % FF_HDR_SIZE] ^= (uint8_t)(sel | 1);
      break;
    case 19: /* a field of one copy, resealed */
    case 20: /* a field of both copies, the same value, resealed */
    {
      unsigned fi = (unsigned)((sel >> 1) % NHFIELDS);
      uint64_t val = header_value(in, bd, f, n, copy, fi, arg);
      set_field(f, copy, fi, val);
      if (kind == 20)
        set_field(f, copy ^ FF_COPY_B, fi, val);
      break;
    }
    case 21: /* a whole copy (A, B or both) from another header */
    case 22: /* a field copied from another header */
    {
      const uint8_t *src;
      unsigned which = arg % 3, fi = (unsigned)((sel >> 1) % NHFIELDS);
      if (bd->bank.n == 0)
        break;
      src = bd->bank.page[(arg / 3) % bd->bank.n] + ((sel & 1) ? FF_COPY_B : 0);
      for (size_t c = 0; c <= FF_COPY_B; c += FF_COPY_B) {
        if ((which == 0 && c != 0) || (which == 1 && c == 0))
          continue;
        if (kind == 21)
          memcpy(f + c, src, FF_HDR_SIZE);
        else
          set_field(f, c, fi, ff_le(src + hfields[fi].at, hfields[fi].width));
      }
      break;
    }
    default: { /* the sealed end moved to a record boundary, both copies */
      size_t j = arg % (nrec + 1);
      uint64_t end = j < nrec ? offs[j] : bd->log.end;
      for (size_t c = 0; c <= FF_COPY_B; c += FF_COPY_B)
        set_field(f, c, 14, end);
      break;
    }
    }
    return;
  }
  if (kind >= 12 && kind <= 14) { /* single-bit flips in the intact log */
    static size_t newest[8192];
    size_t nn;
    if (bd->log.nrec == 0)
      return;
    if (kind == 14) {
      flip_bit(f, n, bd, sel % bd->log.nrec, 2, arg);
      return;
    }
    nn = newest_records(&bd->log, newest, sizeof newest / sizeof newest[0]);
    if (nn > 0)
      flip_bit(f, n, bd, newest[sel % nn], kind - 12, arg);
    return;
  }
  if (nrec == 0)
    return;
  bd->log_edited = 1;
  i = sel % nrec;
  off = offs[i];
  r = f + off;
  k = ff_le(r + FF_R_KLEN, 2);
  v = ff_le(r + FF_R_VLEN, 4);
  size = FF_OVERHEAD + k + v;
  /* An earlier corruption may have changed the lengths: the operations
   * that need the whole record skip one that no longer fits. */
  if (size > n - off && (kind == 7 || kind == 8 || kind == 9 || kind == 10))
    return;
  switch (kind) {
  case 0: /* flags */
    r[FF_R_FLAGS] = (arg & 0x80) ? arg : (uint8_t)(arg & 3);
    ff_rec_reseal(f, n, off, fid);
    break;
  case 1: /* type */
    r[FF_R_TYPE] = arg % 4;
    ff_rec_reseal(f, n, off, fid);
    break;
  case 2: /* sequence number moved */
    ff_put_le(r + FF_R_SEQ,
              ff_le(r + FF_R_SEQ, 6) + (uint64_t)(int64_t)(int8_t)arg, 6);
    ff_rec_reseal(f, n, off, fid);
    break;
  case 3: /* sequence number of another record */
    ff_put_le(r + FF_R_SEQ, ff_le(f + offs[(i + 1 + arg) % nrec] + FF_R_SEQ, 6),
              6);
    ff_rec_reseal(f, n, off, fid);
    break;
  case 4: /* value length, checksum left */
    ff_put_le(r + FF_R_VLEN, (uint32_t)(v + (uint32_t)(int32_t)(int8_t)arg), 4);
    break;
  case 5: /* key length, checksum left */
    ff_put_le(r + FF_R_KLEN, (uint16_t)(k + (uint16_t)(int16_t)(int8_t)arg), 2);
    break;
  case 6: /* value length, resealed: an intact record of the wrong size */
    ff_put_le(r + FF_R_VLEN, (uint32_t)(v + (uint32_t)(int32_t)(int8_t)arg), 4);
    ff_rec_reseal(f, n, off, fid);
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
  case 10: /* first value byte (a commit's count), resealed */
    if (FF_HEAD + k < size - 8) {
      r[FF_HEAD + k] = arg;
      ff_rec_reseal(f, n, off, fid);
    }
    break;
  default: { /* prev, resealed: an intact record naming another as its
                key's previous */
    const uint64_t pv[] = {
        0,          1, 4095,   4096, off, off + 1, offs[arg % nrec],
        FF_SEQ_MAX, n, off - 1};
    ff_put_le(r + FF_R_PREV, pv[(arg >> 4) % (sizeof pv / sizeof pv[0])], 6);
    ff_rec_reseal(f, n, off, fid);
    break;
  }
  }
}

/* Builds the file described by the program in `in`; returns its image. */
static uint8_t *build_structured(fuzz_in *in, build *bd, size_t *out_n) {
  const char *path = fuzz_path(2, "build.mkv");
  uint8_t cfg = fuzz_u8(in);
  int sync_mode = cfg % 3, small = (cfg >> 2) & 1;
  mapkv_t *db;
  mapkv_stats st;
  uint8_t *img;
  size_t n, nops, nrec, ncorr, nmut;
  static size_t offs[8192];

  bank_other_store(&bd->bank);
  fuzz_remove_store(path);
  db = build_open(path, sync_mode, small);
  nops = fuzz_u8(in) % 32;
  for (size_t op = 0; op < nops && fuzz_left(in) > 0; op++) {
    switch (fuzz_u8(in) % 8) {
    case 0:
    case 1: {
      size_t kn = gen_key(in), vn = gen_val(in);
      int rc = mapkv_put(db, keybuf, kn, valbuf, vn);
      if (small && (kn > 6 || vn > 200)) {
        CHECK_RC(rc, kn > 6 ? MAPKV_EKEYSIZE : MAPKV_EVALSIZE);
        break;
      }
      CHECK_RC(rc, 0);
      kvset_put(&bd->model, keybuf, kn, valbuf, vn);
      break;
    }
    case 2: {
      size_t kn = gen_key(in);
      int rc = mapkv_del(db, keybuf, kn);
      if (small && kn > 6)
        CHECK_RC(rc, MAPKV_EKEYSIZE);
      else
        CHECK_RC(rc, kvset_del(&bd->model, keybuf, kn) ? 0 : MAPKV_NOTFOUND);
      break;
    }
    case 3: {
      mapkv_batch_t *b;
      kvset pend = {0};
      uint8_t dels[8] = {0};
      size_t cnt = 2 + fuzz_u8(in) % 5, added = 0;
      CHECK_RC(mapkv_batch_begin(db, &b), 0);
      for (size_t j = 0; j < cnt; j++) {
        uint8_t t = fuzz_u8(in);
        size_t kn = gen_key(in), vn = 0;
        int rc;
        if (t & 1) {
          rc = mapkv_batch_del(b, keybuf, kn);
        } else {
          vn = gen_val(in);
          rc = mapkv_batch_put(b, keybuf, kn, valbuf, vn);
        }
        if (small && (kn > 6 || vn > 200)) {
          CHECK_RC(rc, kn > 6 ? MAPKV_EKEYSIZE : MAPKV_EVALSIZE);
          continue;
        }
        CHECK_RC(rc, 0);
        dels[added] = t & 1;
        kvset_add(&pend, keybuf, kn, valbuf, vn); /* in order */
        added++;
      }
      if (fuzz_u8(in) == 0xff) {
        mapkv_batch_abort(b);
      } else {
        CHECK_RC(mapkv_batch_commit(b), 0);
        for (size_t j = 0; j < added; j++) {
          if (dels[j])
            kvset_del(&bd->model, pend.e[j].k, pend.e[j].kn);
          else
            kvset_put(&bd->model, pend.e[j].k, pend.e[j].kn, pend.e[j].v,
                      pend.e[j].vn);
        }
      }
      kvset_free(&pend);
      break;
    }
    case 4:
      bank_add(&bd->bank, path); /* the generation before */
      CHECK_RC(mapkv_compact(db), 0);
      break;
    case 5:
      CHECK_RC(mapkv_close(db), 0);
      bank_add(&bd->bank, path);
      db = build_open(path, sync_mode, 0); /* the store's limits */
      break;
    case 6: /* crash and recover */
      img = fuzz_read_file(path, &n);
      CHECK_RC(mapkv_close(db), 0);
      put_image(path, img, n);
      free(img);
      db = build_open(path, sync_mode, 0);
      CHECK_RC(mapkv_stat(db, &st), 0);
      FUZZ_CHECK(st.clean_open == 0 && st.damaged_regions == 0);
      break;
    default:
      CHECK_RC(mapkv_sync(db), 0);
      break;
    }
  }

  /* How the store is left: closed, or crashed (optionally cut short), or
   * closed and then cut short at a record boundary. */
  CHECK_RC(mapkv_stat(db, &st), 0);
  bd->how = fuzz_u8(in) % 5;
  if (bd->how == 0 || bd->how == 4) {
    CHECK_RC(mapkv_close(db), 0);
    img = fuzz_read_file(path, &n);
  } else {
    img = fuzz_read_file(path, &n);
    CHECK_RC(mapkv_close(db), 0); /* too late: the image is what a crash
                                     left */
  }
  fuzz_remove_store(path);
  bd->fid = ff_le(img + FF_H_FILE_ID, 8);
  bd->pristine = malloc(n);
  FUZZ_CHECK(bd->pristine != NULL);
  memcpy(bd->pristine, img, n);
  ff_log_parse(&bd->log, bd->pristine, n, bd->fid, FF_HEAD);
  FUZZ_CHECK(bd->log.end == st.data_end);
  {
    /* The log holds what was committed. */
    kvset replay = {0};
    ff_log_replay(&bd->log, UINT64_MAX, &replay);
    if (!kvset_equal(&replay, &bd->model)) {
      kvset_diff("log", &replay, "committed", &bd->model);
      FUZZ_FAIL("the store's log does not replay to what was committed");
    }
    kvset_free(&replay);
  }
  bd->upto = bd->log.end;
  if (bd->how == 4) {
    const ff_log *lg = &bd->log;
    size_t j = fuzz_u16(in) % (lg->nrec + 1);
    uint8_t d = fuzz_u8(in);
    uint64_t cut = j < lg->nrec ? lg->rec[j].off : lg->end;
    if (d & 0x80)
      cut += (d & 0x7f) % (j < lg->nrec ? lg->rec[j].size : 64);
    if (cut < n)
      n = cut;
    bd->upto = n;
  } else if (bd->how >= 2) {
    size_t cut = FF_PAGE + fuzz_u16(in) % (st.data_end - FF_PAGE + 1);
    if (bd->how == 2 && cut < n) {
      uint64_t upto = cut;
      while (upto < n && img[upto] == 0)
        upto++; /* bytes that were zero anyway */
      memset(img + cut, 0, n - cut);
      bd->upto = upto;
    } else if (bd->how == 3 && cut < n) {
      n = cut;
      bd->upto = cut;
    }
  }

  /* Damage record by record and field by field, then byte flips. */
  nrec = list_records(img, n, offs, sizeof offs / sizeof offs[0]);
  ncorr = fuzz_u8(in) % 9;
  for (size_t j = 0; j < ncorr; j++)
    corrupt(in, bd, img, n, offs, nrec);
  for (nmut = 0; nmut < 256 && fuzz_left(in) >= 4 && n > 0; nmut++) {
    size_t at = fuzz_u24(in) % n;
    uint8_t x = fuzz_u8(in);
    img[at] ^= x;
    if (x != 0 && at >= FF_PAGE)
      bd->log_edited = 1;
  }
  *out_n = n;
  return img;
}

/* ---- Expectations of a built store ------------------------------------------
 */

static void key_flags(kvset *keys, const void *k, size_t kn, uint8_t fl) {
  kv *e = kvset_find(keys, k, kn);
  if (e != NULL)
    e->v[0] |= fl;
  else
    kvset_put(keys, k, kn, &fl, 1);
}

/* Every key of the log, exact. */
static void all_keys(const ff_log *lg, kvset *keys) {
  for (size_t i = 0; i < lg->nrec; i++)
    if (lg->rec[i].type != FF_COMMIT)
      key_flags(keys, lg->rec[i].key, lg->rec[i].klen, 0);
}

/* Marks what may answer MAPKV_ECORRUPT for damage in the bytes [a, b) of
 * img: whatever stands as a key where a marker is (what recovery may take
 * for a damaged record's key), and the key of the record a prev there
 * names. */
static void candidate_keys(const uint8_t *img, size_t n, uint64_t a, uint64_t b,
                           kvset *keys) {
  for (uint64_t p = a; p + 1 < b && p + 1 < n; p++) {
    uint64_t prev;
    size_t k;
    ff_rec r;
    if (img[p] != 0xb7 || img[p + 1] != 0x6b || n - p < FF_OVERHEAD)
      continue;
    k = (size_t)ff_le(img + p + FF_R_KLEN, 2);
    if (k <= n - p - FF_OVERHEAD)
      key_flags(keys, img + p + FF_HEAD, k, K_MAY_CORRUPT);
    prev = ff_le(img + p + FF_R_PREV, 6);
    if (prev >= FF_PAGE && prev < n &&
        ff_rec_decode(img + prev, n - prev, 0, FF_HEAD, 0, &r) == FF_OK)
      key_flags(keys, r.key, r.klen, K_MAY_CORRUPT);
  }
}

/* Sets fc->ex, model and keys from what the program did and what the
 * header page now says. */
static int differs(const uint8_t *a, const uint8_t *b, uint64_t from,
                   uint64_t to) {
  return to > from && memcmp(a + from, b + from, to - from) != 0;
}

static void classify(fctx *fc, build *bd) {
  const ff_log *lg = &bd->log;
  const ff_hdr *h = &fc->hdr;
  static uint8_t hit[8192], lost[8192];
  int ours, pristine, any = 0, both = 0;
  fc->ex = EX_NONE;
  if (fc->hrc != 0 || h->version != FF_VERSION || lg->nrec > sizeof hit ||
      lg->nbatch > sizeof lost)
    return;
  /* Which records the flips changed (two flips of one bit cancel), and
   * in which part: 1 the key (or its length), 2 prev, 4 anything else. */
  memset(lost, 0, lg->nbatch);
  for (size_t i = 0; i < lg->nrec; i++) {
    const ff_rec *r = &lg->rec[i];
    const uint8_t *a = fc->img + r->off, *o = bd->pristine + r->off;
    uint64_t kend = FF_HEAD + r->klen;
    hit[i] = 0;
    if (bd->nflips == 0 || r->off + r->size > fc->n ||
        !differs(a, o, 0, r->size))
      continue;
    hit[i] = (uint8_t)((differs(a, o, FF_R_KLEN, FF_R_KLEN + 2) ||
                        differs(a, o, FF_HEAD, kend))
                           ? 1
                           : 0);
    hit[i] |= (uint8_t)(differs(a, o, FF_R_PREV, FF_HEAD) ? 2 : 0);
    if (hit[i] == 0)
      hit[i] = 4;
    both |= (hit[i] & 3) == 3;
    lost[lg->batch_of[i]] = 1;
    any = 1;
  }
  pristine = !bd->log_edited && !any;
  ours = h->file_id == bd->fid;
  if (ours && pristine) {
    all_keys(lg, &fc->keys);
    ff_log_replay(lg, bd->upto, &fc->model);
    if (h->sealed_end > fc->n && bd->how == 2 && bd->upto < lg->end) {
      /* Zeroed from a cut below a sealed end past the file: the zeros are
       * damage in the sealed log as well, and their keys answer
       * MAPKV_ECORRUPT in a salvage open; only the general checks. */
    } else if (h->sealed_end > fc->n) {
      /* Cut below the sealed end. The batch the cut goes through is lost:
       * its keys may answer MAPKV_ECORRUPT in a salvage open (those whose
       * records lie before the cut), or show the batches before it. */
      fc->ex = EX_TRUNC;
      for (size_t b = 0; b < lg->nbatch; b++) {
        const ff_batch *bt = &lg->batch[b];
        if (bt->start >= fc->n || bt->end <= fc->n)
          continue;
        for (size_t i = bt->first; i < bt->first + bt->n; i++)
          if (lg->rec[i].type != FF_COMMIT)
            key_flags(&fc->keys, lg->rec[i].key, lg->rec[i].klen,
                      K_MAY_CORRUPT);
        candidate_keys(fc->img, fc->n, bt->start, fc->n, &fc->keys);
      }
    } else {
      /* The log survives up to the end of its last whole batch before
       * the cut: a sealed end after it (in a batch cut short, or in the
       * zeros after the log) makes what lies before it damage. */
      uint64_t kept = FF_PAGE;
      for (size_t b = 0; b < lg->nbatch; b++)
        if (lg->batch[b].whole && lg->batch[b].end <= bd->upto &&
            lg->batch[b].end > kept)
          kept = lg->batch[b].end;
      /* ... and so does a sealed end inside a record (one that starts
       * before the sealed end must end by it). */
      int across = 0;
      for (size_t i = 0; i < lg->nrec; i++)
        across |= lg->rec[i].off < h->sealed_end &&
                  lg->rec[i].off + lg->rec[i].size > h->sealed_end;
      if (h->sealed_end <= kept && !across)
        fc->ex = EX_EXACT;
    }
    return;
  }
  if (ours && !bd->log_edited && bd->how == 0 && !both &&
      h->sealed_end >= lg->end && h->sealed_end <= fc->n) {
    /* Bits flipped in the sealed log. A damaged batch is lost: the keys
     * whose newest record it holds answer MAPKV_ECORRUPT (or may be
     * missing, when every record of the key was lost and its first was
     * hit); nothing may read an older value or bring a deleted key back;
     * every other key reads back exactly, but for what the damaged bytes
     * may be taken for (candidate_keys). A record hit in both its key
     * and its prev names no key any more: then only the general checks
     * apply. */
    fc->ex = EX_FLIPS;
    ff_log_replay(lg, UINT64_MAX, &fc->model);
    all_keys(lg, &fc->keys);
    for (size_t b = 0; b < lg->nbatch; b++)
      if (lost[b])
        candidate_keys(fc->img, fc->n, lg->batch[b].start, lg->batch[b].end,
                       &fc->keys);
    /* Per key (at its first record): its newest record's batch lost; and
     * whether the key may read as missing: when it was absent without the
     * lost batches (the older state; a DEL of a key that did not exist,
     * or none at all) and one of its records was hit, so that recovery
     * may not know the key (its prev names no record, its key bytes may
     * be the damage). */
    {
      kvset older = {0};
      for (size_t bi = 0; bi < lg->nbatch; bi++) {
        const ff_batch *bt = &lg->batch[bi];
        if (!bt->whole || lost[bi])
          continue;
        for (size_t i = bt->first; i < bt->first + bt->n; i++) {
          const ff_rec *r = &lg->rec[i];
          if (r->type == FF_PUT)
            kvset_put(&older, r->key, r->klen, r->val, r->vlen);
          else if (r->type == FF_DEL)
            kvset_del(&older, r->key, r->klen);
        }
      }
      for (size_t i = 0; i < lg->nrec; i++) {
        const ff_rec *r = &lg->rec[i];
        size_t newest = i;
        int first = 1, any_hit = 0;
        if (r->type == FF_COMMIT)
          continue;
        for (size_t j = 0; j < lg->nrec; j++) {
          const ff_rec *q = &lg->rec[j];
          if (q->type == FF_COMMIT || q->klen != r->klen ||
              memcmp(q->key, r->key, r->klen) != 0)
            continue;
          if (j < i)
            first = 0;
          newest = j;
          any_hit |= hit[j] != 0;
        }
        if (!first)
          continue;
        if (lost[lg->batch_of[newest]])
          key_flags(&fc->keys, r->key, r->klen, K_MAY_CORRUPT | K_MUST_CORRUPT);
        if (any_hit && kvset_find(&older, r->key, r->klen) == NULL)
          key_flags(&fc->keys, r->key, r->klen, K_MAY_MISSING);
      }
      kvset_free(&older);
    }
    return;
  }
  if (!ours && pristine) {
    /* A header of another store (or of this store's earlier generation)
     * over the log: the records are sound but fail their checksums. */
    size_t sound = 0;
    uint64_t pos = FF_PAGE;
    ff_rec r;
    while (pos < fc->n && ff_rec_decode(fc->img + pos, fc->n - pos, 0, FF_HEAD,
                                        0, &r) == FF_OK) {
      sound++;
      pos += r.size;
    }
    if (sound >= 2)
      fc->ex = EX_FOREIGN;
  }
}

/* ---- The target ------------------------------------------------------------
 */

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
  static build bd;
  uint8_t *built = NULL;
  obs ro = {0}, vf = {0};
  fctx fc;

  fuzz_leak_baseline();
  fuzz_seed_random(fuzz_hash(data, size));
  memset(&fc, 0, sizeof fc);
  memset(&bd, 0, sizeof bd);
  fc.img = data;
  fc.n = size;
  fc.rw_seed = fuzz_hash(data, size) >> 7;
  if (size > 0 && data[0] == 0x01) {
    fuzz_in in = {data + 1, size - 1, 0};
    built = build_structured(&in, &bd, &fc.n);
    fc.img = built;
  }
  fc.hrc = ff_header(fc.img, fc.n, &fc.hdr, &fc.which);
  fc.head = fc.hrc == 0 && fc.hdr.version == 1 ? FF_HEAD_V1 : FF_HEAD;
  if (built != NULL)
    classify(&fc, &bd);
  if (verbose)
    fprintf(stderr,
            "header: %d (copy %c, version %u, sealed end %llu), "
            "expectation %d\n",
            fc.hrc, fc.which ? 'B' : 'A', fc.hdr.version,
            (unsigned long long)fc.hdr.sealed_end, fc.ex);
  fuzz_write_file(in_path, fc.img, fc.n);
  if (save_to != NULL)
    fuzz_write_file(save_to, fc.img, fc.n);
  if (save_to != NULL && bd.pristine != NULL) {
    /* and the store before the cut and the damage, as FILE.pristine */
    char p[4096];
    snprintf(p, sizeof p, "%s.pristine", save_to);
    fuzz_write_file(p, bd.pristine, bd.log.end);
  }
  observe(in_path, &fc, 0, &ro);
  observe(in_path, &fc, MAPKV_VERIFY, &vf);
  /* Every open verifies every checksum: a plain read-only open that works
   * shows what a salvage open shows. A salvage open refuses nothing that a
   * plain one accepts, and verify reports what made the plain one refuse. */
  if (ro.rc == 0) {
    FUZZ_CHECK(vf.rc == 0);
    same_recovery(&ro.st, &vf.st);
    if (!kvset_equal(&ro.set, &vf.set) || ro.bad != vf.bad) {
      kvset_diff("plain", &ro.set, "salvage", &vf.set);
      FUZZ_FAIL("a plain read-only open differs from a salvage open");
    }
  } else if (vf.rc == 0 && vf.vrc == 0) {
    FUZZ_FAIL("a plain open refused (%d), but verify of a salvage open finds "
              "nothing",
              ro.rc);
  }
  check_copy_choice(&fc, &ro);
  if (vf.rc == 0)
    check_salvage_copy(in_path, &fc, &vf);
  fuzz_write_file(rw_path, fc.img, fc.n);
  check_writable(rw_path, &fc, &ro, &vf);

  fuzz_remove_store(in_path);
  fuzz_remove_store(rw_path);
  kvset_free(&ro.set);
  kvset_free(&vf.set);
  kvset_free(&fc.model);
  kvset_free(&fc.keys);
  kvset_free(&bd.model);
  ff_log_free(&bd.log);
  free(bd.pristine);
  free(built);
  fuzz_leak_check();
  return 0;
}
