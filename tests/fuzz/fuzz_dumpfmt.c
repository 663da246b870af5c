/*
 * fuzz_dumpfmt.c — libFuzzer target: the db_dump/mdb_dump text format
 * reader and writer of the mapkv tool (tools/dumpfmt.c).
 *
 * The input is parsed as a dump:
 *  - from memory and through a FILE (fmemopen): both must give the same
 *    header, records, final result, message, line count and consumed bytes;
 *  - again with a long ignored header line in front, sized so that a
 *    64 KiB read chunk of the FILE path ends inside the input (lines are
 *    then assembled across chunks): same header, records and result;
 *  - with small item limits: the records are a prefix of the large-limit
 *    parse, and it may stop early only with DUMPFMT_ETOOBIG on an item over
 *    the small limits.
 * A reader that failed keeps returning its error; one that finished keeps
 * returning 0. If the input parses, its records are written back with the
 * writer in both formats and parsed again: they must round-trip exactly,
 * as must each item through dumpfmt_encode()/dumpfmt_hex_decode().
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dumpfmt.h"
#include "fuzz_common.h"
#include "fuzz_kvset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BIG_KEY   65535u
#define BIG_VALUE (1u << 20)
#define SMALL_KEY 8u
#define SMALL_VAL 32u
#define CHUNK     65536u /* the FILE reader's chunk (dumpfmt.c) */

typedef struct parse {
  int hrc, end;
  dumpfmt_header h;
  kvset recs; /* in input order (not sorted) */
  char msg[400];
  uint64_t lines, consumed;
} parse;

static void run(dumpfmt_reader *r, size_t in_len, size_t max_key,
                size_t max_val, parse *p) {
  const uint8_t *k, *v;
  size_t kn, vn;
  uint64_t last_consumed = 0;
  int rc;
  FUZZ_CHECK(r != NULL);
  memset(&p->h, 0, sizeof p->h);
  kvset_clear(&p->recs);
  p->hrc = dumpfmt_read_header(r, &p->h);
  if (p->hrc != 0) {
    p->end = p->hrc;
  } else {
    FUZZ_CHECK(p->h.version == 3);
    FUZZ_CHECK(p->h.format == DUMPFMT_BYTEVALUE ||
               p->h.format == DUMPFMT_PRINT);
    FUZZ_CHECK(memchr(p->h.type, '\0', sizeof p->h.type) != NULL);
    FUZZ_CHECK(p->h.lines >= 2 && p->h.lines == dumpfmt_line(r));
    for (;;) {
      rc = dumpfmt_read_record(r, &k, &kn, &v, &vn);
      FUZZ_CHECK(dumpfmt_consumed(r) >= last_consumed);
      FUZZ_CHECK(dumpfmt_consumed(r) <= in_len);
      last_consumed = dumpfmt_consumed(r);
      if (rc != 1) {
        p->end = rc;
        break;
      }
      FUZZ_CHECK(k != NULL && v != NULL);
      FUZZ_CHECK(kn <= max_key && vn <= max_val);
      FUZZ_CHECK(p->recs.n < in_len / 4 + 1);
      kvset_add(&p->recs, k, kn, v, vn);
    }
  }
  if (p->end != 0) {
    if (p->end != DUMPFMT_ESYNTAX && p->end != DUMPFMT_ETOOBIG)
      FUZZ_FAIL("reader returned %d", p->end);
    FUZZ_CHECK(dumpfmt_errmsg(r)[0] != '\0');
    /* A dead reader stays dead. */
    FUZZ_CHECK(dumpfmt_read_record(r, &k, &kn, &v, &vn) == p->end);
    FUZZ_CHECK(dumpfmt_read_header(r, &p->h) == p->end);
  } else {
    FUZZ_CHECK(dumpfmt_read_record(r, &k, &kn, &v, &vn) == 0);
  }
  snprintf(p->msg, sizeof p->msg, "%s", dumpfmt_errmsg(r));
  p->lines = dumpfmt_line(r);
  p->consumed = dumpfmt_consumed(r);
  if (p->end == 0) {
    /* A finished reader refuses a second header. */
    FUZZ_CHECK(dumpfmt_read_header(r, &p->h) == DUMPFMT_ESTATE);
    FUZZ_CHECK(p->h.version == 3);
  }
  dumpfmt_reader_free(r);
}

static void parse_mem(const uint8_t *d, size_t n, size_t mk, size_t mv,
                      parse *p) {
  run(dumpfmt_reader_mem(d, n, mk, mv), n, mk, mv, p);
}

static void parse_file(uint8_t *d, size_t n, size_t mk, size_t mv, parse *p) {
  FILE *f = n > 0 ? fmemopen(d, n, "r") : fopen("/dev/null", "r");
  FUZZ_CHECK(f != NULL);
  run(dumpfmt_reader_file(f, mk, mv), n, mk, mv, p);
  fclose(f);
}

static int same_header(const dumpfmt_header *a, const dumpfmt_header *b) {
  return a->version == b->version && a->format == b->format &&
         a->duplicates == b->duplicates && strcmp(a->type, b->type) == 0;
}

static void expect_same(const char *what, const parse *a, const parse *b,
                        int exact) {
  if (a->hrc != b->hrc || a->end != b->end ||
      (a->hrc == 0 && !same_header(&a->h, &b->h)) ||
      !kvset_equal(&a->recs, &b->recs) ||
      (exact && (strcmp(a->msg, b->msg) != 0 || a->lines != b->lines ||
                 a->consumed != b->consumed || a->h.lines != b->h.lines)))
    FUZZ_FAIL("%s: header %d/%d, result %d/%d, %zu/%zu records, lines "
              "%llu/%llu, consumed %llu/%llu, messages \"%s\" / \"%s\"",
              what, a->hrc, b->hrc, a->end, b->end, a->recs.n, b->recs.n,
              (unsigned long long)a->lines, (unsigned long long)b->lines,
              (unsigned long long)a->consumed, (unsigned long long)b->consumed,
              a->msg, b->msg);
}

static int fits_small(const kv *e) {
  return e->kn <= SMALL_KEY && e->vn <= SMALL_VAL;
}

/* Writes recs back in format fmt and parses the result. */
static void round_trip(const parse *orig, int fmt, uint64_t mapsize) {
  char *buf = NULL;
  size_t len = 0;
  parse again = {0};
  FILE *f = open_memstream(&buf, &len);
  FUZZ_CHECK(f != NULL);
  FUZZ_CHECK(dumpfmt_write_header(f, fmt, mapsize) == 0);
  for (size_t i = 0; i < orig->recs.n; i++) {
    const kv *e = &orig->recs.e[i];
    FUZZ_CHECK(dumpfmt_write_item(f, fmt, e->k, e->kn) == 0);
    FUZZ_CHECK(dumpfmt_write_item(f, fmt, e->v, e->vn) == 0);
  }
  FUZZ_CHECK(dumpfmt_write_end(f) == 0);
  FUZZ_CHECK(fclose(f) == 0);
  parse_mem((const uint8_t *)buf, len, BIG_KEY, BIG_VALUE, &again);
  if (again.end != 0 || again.h.format != fmt ||
      !kvset_equal(&again.recs, &orig->recs))
    FUZZ_FAIL("records written in format %d do not parse back: result %d "
              "(%s), %zu of %zu records",
              fmt, again.end, again.msg, again.recs.n, orig->recs.n);
  FUZZ_CHECK(again.lines == 3 + (mapsize != 0) + 1 + 2 * orig->recs.n + 1);
  kvset_free(&again.recs);
  free(buf);
}

/* dumpfmt_encode / dumpfmt_hex_decode on one item. */
static void encode_item(const kv *e) {
  static char *enc;
  static uint8_t *dec;
  static size_t cap;
  size_t max = dumpfmt_encoded_max(e->vn), n, out = 0;
  if (cap < max + 1) {
    free(enc);
    free(dec);
    cap = max + 1;
    enc = malloc(cap);
    dec = malloc(cap);
    FUZZ_CHECK(enc != NULL && dec != NULL);
  }
  n = dumpfmt_encode(DUMPFMT_BYTEVALUE, e->v, e->vn, enc);
  FUZZ_CHECK(n == 2 * e->vn);
  FUZZ_CHECK(dumpfmt_hex_decode(enc, n, dec, &out, NULL) == 0);
  FUZZ_CHECK(out == e->vn && (out == 0 || memcmp(dec, e->v, out) == 0));
  n = dumpfmt_encode(DUMPFMT_PRINT, e->v, e->vn, enc);
  FUZZ_CHECK(n >= e->vn && n <= max);
  for (size_t i = 0; i < n; i++)
    FUZZ_CHECK(enc[i] >= 0x20 && enc[i] < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t *pad;
  static size_t pad_cap;
  parse mem = {0}, file = {0}, pmem = {0}, pfile = {0}, small = {0};
  uint8_t *copy;
  size_t q, plen;

  copy = malloc(size + 1);
  FUZZ_CHECK(copy != NULL);
  if (size > 0)
    memcpy(copy, data, size);

  parse_mem(data, size, BIG_KEY, BIG_VALUE, &mem);
  parse_file(copy, size, BIG_KEY, BIG_VALUE, &file);
  expect_same("memory vs FILE", &mem, &file, 1);

  /* A FILE chunk boundary at byte q of the input. */
  q = (size_t)(fuzz_hash(data, size) % (size + 1));
  if (q > CHUNK - 3)
    q = CHUNK - 3;
  plen = CHUNK - q;
  if (pad_cap < plen + size) {
    free(pad);
    pad_cap = plen + size;
    pad = malloc(pad_cap);
    FUZZ_CHECK(pad != NULL);
  }
  pad[0] = 'x';
  pad[1] = '=';
  memset(pad + 2, 'a', plen - 3);
  pad[plen - 1] = '\n';
  if (size > 0)
    memcpy(pad + plen, data, size);
  parse_mem(pad, plen + size, BIG_KEY, BIG_VALUE, &pmem);
  parse_file(pad, plen + size, BIG_KEY, BIG_VALUE, &pfile);
  expect_same("padded: memory vs FILE", &pmem, &pfile, 1);
  expect_same("padded vs plain", &pmem, &mem, 0);
  if (mem.hrc == 0)
    FUZZ_CHECK(pmem.h.lines == mem.h.lines + 1);

  /* Small limits: a prefix of the records, cut only by an item too big. */
  parse_mem(data, size, SMALL_KEY, SMALL_VAL, &small);
  FUZZ_CHECK(small.hrc == mem.hrc);
  FUZZ_CHECK(small.recs.n <= mem.recs.n);
  for (size_t i = 0; i < small.recs.n; i++) {
    const kv *a = &small.recs.e[i], *b = &mem.recs.e[i];
    FUZZ_CHECK(a->kn == b->kn && a->vn == b->vn &&
               (a->kn == 0 || memcmp(a->k, b->k, a->kn) == 0) &&
               (a->vn == 0 || memcmp(a->v, b->v, a->vn) == 0));
  }
  if (small.hrc == 0) {
    if (small.end == 0) {
      FUZZ_CHECK(mem.end == 0 && small.recs.n == mem.recs.n);
    } else if (small.recs.n < mem.recs.n) {
      if (small.end != DUMPFMT_ETOOBIG || fits_small(&mem.recs.e[small.recs.n]))
        FUZZ_FAIL("small limits stopped at record %zu with %d (%s), which "
                  "the large limits read",
                  small.recs.n, small.end, small.msg);
    } else {
      FUZZ_CHECK(small.end == mem.end || small.end == DUMPFMT_ETOOBIG);
    }
  }

  if (mem.end == 0) {
    round_trip(&mem, DUMPFMT_BYTEVALUE, 0);
    round_trip(&mem, DUMPFMT_PRINT, 1u << 30);
    for (size_t i = 0; i < mem.recs.n; i++)
      encode_item(&mem.recs.e[i]);
  }

  kvset_free(&mem.recs);
  kvset_free(&file.recs);
  kvset_free(&pmem.recs);
  kvset_free(&pfile.recs);
  kvset_free(&small.recs);
  free(copy);
  return 0;
}
