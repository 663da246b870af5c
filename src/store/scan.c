/*
 * scan.c — the walks over the log (scan.h): the batch rules, the scan
 * behind recovery (open) and mapkv_verify(), the walk behind cursors and
 * compaction, and the census of damaged spans.
 *
 * Batches: a batch is a run of records with consecutive sequence numbers,
 * the first flagged FIRST and the last flagged LAST (one record may be
 * both). A batch of more than one operation ends with a COMMIT record
 * whose value holds the number of operations before it. A batch is
 * accepted only if every record in it is intact, its sequence numbers
 * follow each other and exceed those of every accepted batch before it.
 *
 * Damage: a record that fails to decode, fails its checksum or breaks the
 * batch rules makes the span from the start of its batch damaged. The scan
 * then searches forward (mmf_find) for the next marker that starts an
 * intact FIRST record and resumes there. A damaged span followed by an
 * accepted batch is reported as damage in the middle; what follows the
 * last accepted batch is the tail (uncommitted or torn), which the caller
 * drops.
 */
#include "scan.h"

#include <stdlib.h>
#include <string.h>

#include "mapkv/mmf.h"
#include "store_err.h"

/* How far ahead of the scan the next records are fetched: the walk is
 * sequential but crosses a page every few dozen records, where the
 * hardware prefetcher stops. */
#define PREFETCH_AHEAD 4096
#define PREFETCH_SPAN  192 /* bytes fetched there (three cache lines) */

int mapkv__rules_take(mapkv__rules *st, const mapkv__rec *r, int *abandoned,
                      const char **why) {
  if (abandoned != NULL)
    *abandoned = 0;
  *why = NULL;
  if (r->flags & MAPKV__F_FIRST) {
    if (r->type == MAPKV__T_COMMIT)
      *why = "commit record without a batch";
    else if (r->seq <= st->done_seq)
      *why = "sequence number goes backwards";
    if (*why != NULL) {
      st->open = 0;
      return MAPKV__RULE_BREAK;
    }
    if (st->open && abandoned != NULL)
      *abandoned = 1; /* the open batch never ended */
    st->nops = 0;
  } else if (!st->open) {
    *why = "record outside a batch";
  } else if (r->seq != st->prev_seq + 1) {
    *why = "sequence number gap inside a batch";
  } else if (r->type == MAPKV__T_COMMIT &&
             (!(r->flags & MAPKV__F_LAST) ||
              mapkv__commit_count(r) != st->nops)) {
    *why = "commit record does not match its batch";
  } else if (r->type != MAPKV__T_COMMIT && (r->flags & MAPKV__F_LAST)) {
    *why = "multi-record batch without a commit record";
  }
  if (*why != NULL) {
    st->open = 0;
    return MAPKV__RULE_BREAK;
  }
  if (r->type != MAPKV__T_COMMIT)
    st->nops++;
  st->prev_seq = r->seq;
  st->open = !(r->flags & MAPKV__F_LAST);
  if (st->open)
    return MAPKV__RULE_MORE;
  st->done_seq = r->seq;
  return MAPKV__RULE_END;
}

typedef struct scanner {
  const mapkv__log *lg;
  const uint8_t *base;
  uint64_t limit;  /* readable bytes: records are decoded against this */
  uint64_t sealed; /* ... those that start before the header's sealed end,
                      against it */
  uint64_t stop;   /* no record starts at or after this offset */
  const mapkv__scan_cb *cb;
  mapkv__scan_res *res;
  uint64_t *offs; /* records of the pending batch */
  size_t n, cap;
  uint64_t pend_start;
  mapkv__rules rules;
  uint64_t tail_records; /* intact records since the last accepted batch */
  /* damaged spans not yet known to lie before an accepted batch */
  struct span {
    uint64_t off, len;
    const char *what;
  } * open;
  size_t nopen, capopen;
} scanner;

static int push(scanner *s, uint64_t off) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    uint64_t *p = realloc(s->offs, cap * sizeof *p);
    if (p == NULL)
      return mapkv__fail(MAPKV_ENOMEM, "out of memory during recovery");
    s->offs = p;
    s->cap = cap;
  }
  s->offs[s->n++] = off;
  return 0;
}

/* Notes a damaged span; it counts as damage in the middle only once an
 * accepted batch follows it (otherwise it is part of the tail). */
static int damage(scanner *s, uint64_t from, uint64_t to, const char *what) {
  if (to <= from)
    return 0;
  /* Damage right after damage is one span (with the first reason): the
   * same damaged bytes are one span whether or not a batch follows them
   * (recovery reports damage at the end of the sealed log as one), and
   * what recovery makes of them does not depend on where a batch start
   * that never ended cut them. */
  if (s->nopen > 0 &&
      s->open[s->nopen - 1].off + s->open[s->nopen - 1].len == from) {
    s->open[s->nopen - 1].len = to - s->open[s->nopen - 1].off;
    return 0;
  }
  if (s->nopen == s->capopen) {
    size_t cap = s->capopen ? s->capopen * 2 : 8;
    struct span *p = realloc(s->open, cap * sizeof *p);
    if (p == NULL)
      return mapkv__fail(MAPKV_ENOMEM, "out of memory during recovery");
    s->open = p;
    s->capopen = cap;
  }
  s->open[s->nopen].off = from;
  s->open[s->nopen].len = to - from;
  s->open[s->nopen].what = what;
  s->nopen++;
  return 0;
}

uint64_t mapkv__next_marker(const mapkv__log *lg, uint64_t from, uint64_t end) {
  int64_t start = (int64_t)from + 1, stop = (int64_t)end, at;
  if (start >= stop ||
      mmf_find(lg->map, mapkv__marker, 2, &start, &stop, &at) != 0 || at < 0)
    return end;
  return (uint64_t)at;
}

/* The bytes a record at pos may span. One that starts below the sealed
 * end ends by it: the log below it was checked and made durable as it
 * is, while what follows may be zeroed and written over by a writer, so
 * that a record reaching past it would read otherwise at the next open. */
static uint64_t avail_at(const scanner *s, uint64_t pos) {
  return pos < s->sealed ? s->sealed - pos : s->limit - pos;
}

/* The next offset in (from, stop) where an intact FIRST record newer than
 * every accepted batch starts, or 0. */
static uint64_t resync(scanner *s, uint64_t from) {
  mapkv__rec r;
  for (uint64_t at = mapkv__next_marker(s->lg, from, s->stop); at < s->stop;
       at = mapkv__next_marker(s->lg, at, s->stop))
    if (mapkv__log_decode(s->lg, at, avail_at(s, at), 1, &r) == MAPKV__REC_OK &&
        (r.flags & MAPKV__F_FIRST) && r.seq > s->res->last_seq)
      return at;
  return 0;
}

static const char *rec_problem(int rc) {
  switch (rc) {
  case MAPKV__REC_SHORT:
    return "record runs past the end of the file";
  case MAPKV__REC_BADHEAD:
    return "invalid record header";
  case MAPKV__REC_BADSUM:
    return "checksum mismatch";
  default:
    return "unexpected zero bytes";
  }
}

/* Hands the pending batch to the callback and makes it the accepted end.
 * Damage seen before it is reported first: it lies before the batch in
 * the log, and the caller acts on both in log order. */
static int accept(scanner *s, uint64_t end, uint64_t seq) {
  int rc = 0;
  /* Damage seen so far lies before an accepted batch: it is in the middle. */
  for (size_t i = 0; i < s->nopen && rc == 0; i++) {
    if (s->res->damaged == 0)
      s->res->first_damage = s->open[i].off;
    s->res->damaged++;
    s->res->damaged_bytes += s->open[i].len;
    if (s->cb->damage != NULL)
      rc = s->cb->damage(s->cb->ctx, s->open[i].off, s->open[i].len,
                         s->open[i].what);
  }
  s->nopen = 0;
  if (rc == 0 && s->cb->batch != NULL)
    rc = s->cb->batch(s->cb->ctx, s->offs, s->n);
  if (rc != 0)
    return rc;
  s->res->end = end;
  s->res->last_seq = seq;
  s->res->batches++;
  s->res->records += s->n;
  s->tail_records = 0;
  s->n = 0;
  return 0;
}

/* The bytes a record at pos (before end) may span in a walk: as in the
 * scan, one that starts below the sealed end (lg->sealed, where recovery
 * took the header's: see mapkv__recover()) ends by it. */
static uint64_t walk_avail(const mapkv__log *lg, uint64_t pos, uint64_t end) {
  return pos < lg->sealed && lg->sealed < end ? lg->sealed - pos : end - pos;
}

uint64_t mapkv__skip_damage(const mapkv__log *lg, uint64_t from, uint64_t end) {
  mapkv__rec r;
  for (uint64_t at = mapkv__next_marker(lg, from, end); at < end;
       at = mapkv__next_marker(lg, at, end))
    if (mapkv__log_decode(lg, at, walk_avail(lg, at, end), 1, &r) ==
        MAPKV__REC_OK)
      return at;
  return end;
}

/* Whether a record whose checksum fails shows the mark of a write that did
 * not reach the disk whole: its checksum field zero (its last page never
 * written), or a whole 512-byte sector of it, at a sector boundary of the
 * file, zero (a page or sector in the middle never written). */
static int torn(const uint8_t *p, uint64_t off, uint64_t size) {
  uint64_t first = (off + 511) / 512 * 512;
  if (mapkv__get_le(p + size - MAPKV__REC_TAIL, 8) == 0)
    return 1;
  for (uint64_t s = first; s + 512 <= off + size; s += 512) {
    const uint8_t *q = p + (s - off);
    uint64_t w = 0;
    for (unsigned i = 0; i < 512; i += 8) {
      uint64_t x;
      memcpy(&x, q + i, 8);
      w |= x;
    }
    if (w == 0)
      return 1;
  }
  return 0;
}

void mapkv__census(const mapkv__log *lg, uint64_t from, uint64_t to,
                   int lenient, mapkv__census_fn fn, void *ctx,
                   mapkv__census_res *res) {
  uint64_t pos = from;
  int boundary = 1; /* a record must start at pos */
  memset(res, 0, sizeof *res);
  while (pos < to) {
    mapkv__rec r;
    /* Leniently (a damaged span of the log), a record is read no further
     * than the span: past it lie other records, or what follows the log,
     * which a writer zeroes and writes over. One sound in structure that
     * the span cuts counts with those that fail their checksums: it can
     * be neither stepped over nor confirmed. Sound as far as the span
     * shows it: its fields past the span may be zeroed by a writer too. */
    int d = mapkv__log_decode(lg, pos, (lenient ? to : lg->cap) - pos, 0, &r);
    if (d == MAPKV__REC_SHORT && lenient &&
        mapkv__rec_cut_sound(lg->base + pos, to - pos, lg->rec_head)) {
      res->records++;
      res->bad++;
      res->cut++;
    }
    if (d != MAPKV__REC_OK) {
      if (lenient && boundary && fn != NULL && d != MAPKV__REC_END &&
          mapkv__rec_decode_lenient(lg->base + pos, to - pos, lg->rec_head,
                                    &r) == 0)
        fn(ctx, pos, &r);
      boundary = 0;
      pos = mapkv__next_marker(lg, pos, to);
      continue;
    }
    res->records++;
    if (fn != NULL)
      fn(ctx, pos, &r);
    if (mapkv__rec_checksum_ok(lg->base + pos, &r, lg->hdr.file_id)) {
      res->intact++;
      boundary = 1;
      pos += r.size;
    } else {
      if (torn(lg->base + pos, pos, r.size))
        res->torn++;
      else
        res->bad++;
      boundary = 0;
      pos = mapkv__next_marker(lg, pos, to);
    }
  }
}

int mapkv__walk_next(const mapkv__log *lg, mapkv__walk *w, uint64_t *at,
                     mapkv__rec *r) {
  while (w->pos < w->end) {
    uint64_t pos = w->pos;
    const char *why;
    int d = mapkv__log_decode(lg, pos, walk_avail(lg, pos, w->end), 0, r);
    if (d == MAPKV__REC_OK &&
        !mapkv__rec_checksum_ok(lg->base + pos, r, lg->hdr.file_id)) {
      if (w->damaged != NULL)
        w->damaged(w->ctx, pos, r);
      d = MAPKV__REC_BADSUM;
    }
    /* Only an intact record that keeps the rules is handed out, and only
     * its lengths are trusted. */
    if (d != MAPKV__REC_OK ||
        mapkv__rules_take(&w->rules, r, NULL, &why) == MAPKV__RULE_BREAK) {
      mapkv__rules_reset(&w->rules);
      w->pos = mapkv__skip_damage(lg, pos, w->end);
      continue;
    }
    w->pos = pos + r->size;
    *at = pos;
    return 0;
  }
  return MAPKV_NOTFOUND;
}

/* The end of the last non-zero byte in [lo, hi). */
static uint64_t nonzero_end(const uint8_t *base, uint64_t lo, uint64_t hi) {
  while (hi > lo && (hi & 7) != 0 && base[hi - 1] == 0)
    hi--;
  while (hi >= lo + 8) {
    uint64_t w;
    memcpy(&w, base + hi - 8, 8);
    if (w != 0)
      break;
    hi -= 8;
  }
  while (hi > lo && base[hi - 1] == 0)
    hi--;
  return hi;
}

int mapkv__scan(const mapkv__log *lg, uint64_t limit, const mapkv__scan_cb *cb,
                mapkv__scan_res *res) {
  scanner s;
  uint64_t pos = MAPKV__HDR_PAGE;
  int rc = 0;
  memset(&s, 0, sizeof s);
  memset(res, 0, sizeof *res);
  s.lg = lg;
  s.base = lg->base;
  s.cb = cb;
  s.res = res;
  res->end = MAPKV__HDR_PAGE;
  /* No record can start at or after the last non-zero byte (a record
   * starts with its marker): the walk and the forward searches stop there.
   * A record may still end after it, since its last bytes can be zero. */
  s.limit = limit;
  s.sealed = lg->hdr.sealed_end < limit ? lg->hdr.sealed_end : limit;
  s.stop = nonzero_end(lg->base, MAPKV__HDR_PAGE, limit);
  res->nonzero_end = s.stop;

  while (pos < s.stop) {
    mapkv__rec r;
    const char *what = NULL;
    int d, rule = MAPKV__RULE_BREAK, abandoned = 0;
    if (pos + PREFETCH_AHEAD + PREFETCH_SPAN < s.limit)
      for (unsigned b = 0; b < PREFETCH_SPAN; b += 64)
        __builtin_prefetch(s.base + pos + PREFETCH_AHEAD + b);
    d = mapkv__log_decode(lg, pos, avail_at(&s, pos), 1, &r);
    if (d != MAPKV__REC_OK) {
      what = rec_problem(d);
      mapkv__rules_reset(&s.rules);
    } else {
      rule = mapkv__rules_take(&s.rules, &r, &abandoned, &what);
    }
    if (abandoned) {
      /* The open batch never ended: its records are the damage; the FIRST
       * record here begins a batch of its own. */
      if ((rc = damage(&s, s.pend_start, pos, "batch ends without a commit")) !=
          0)
        goto out;
      s.n = 0;
    }
    if (rule == MAPKV__RULE_BREAK) {
      uint64_t from = s.n > 0 ? s.pend_start : pos, next;
      if (d == MAPKV__REC_OK)
        s.tail_records++;
      s.n = 0;
      next = resync(&s, pos);
      if (next == 0)
        break; /* no intact batch start follows: the rest is the tail */
      if ((rc = damage(&s, from, next, what)) != 0)
        goto out;
      pos = next;
      continue;
    }
    if (r.flags & MAPKV__F_FIRST)
      s.pend_start = pos;
    if ((rc = push(&s, pos)) != 0)
      goto out;
    s.tail_records++;
    pos += r.size;
    if (rule == MAPKV__RULE_END && (rc = accept(&s, pos, r.seq)) != 0)
      goto out;
  }
  res->tail_records = s.tail_records;
  res->tail_bytes = s.stop > res->end ? s.stop - res->end : 0;
out:
  free(s.offs);
  free(s.open);
  return rc;
}
