/*
 * scan.h — walking the log: the batch rules (one checker, used by every
 * walk), the scan behind recovery and verification, the walk behind
 * cursors and compaction, and the census of damaged spans and tails.
 *
 * Nothing here trusts the file: every record is decoded against the bytes
 * that may be read, and only an intact record's lengths are stepped by;
 * past a record that is not, the walks search forward for the next marker.
 */
#ifndef MAPKV_SCAN_H
#define MAPKV_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "log.h"

/* ---- The batch rules (FORMAT.md, "Batches") ------------------------------ */

/* A batch is a run of intact records with consecutive sequence numbers, the
 * first flagged FIRST and the last flagged LAST (one record may be both),
 * whose sequence numbers exceed those of every batch that ended whole
 * before it; a batch of more than one operation ends with a COMMIT record
 * that counts the operations before it. */
typedef struct mapkv__rules {
  uint64_t done_seq; /* last sequence number of the last whole batch */
  uint64_t prev_seq; /* of the last record of the open batch */
  uint64_t nops;     /* PUT and DEL records of the open batch */
  int open;          /* a batch is open (its LAST not seen) */
} mapkv__rules;

enum { MAPKV__RULE_BREAK = -1, MAPKV__RULE_MORE = 0, MAPKV__RULE_END = 1 };

/* Takes the intact record r as the next of the log. Returns
 * MAPKV__RULE_MORE (r opens or continues a batch), MAPKV__RULE_END (r ends
 * one: done_seq is its sequence number), or MAPKV__RULE_BREAK (r breaks the
 * rules, *why says how; the open batch, if any, is abandoned: a FIRST
 * record must come next). *abandoned (may be NULL) is set to 1 when r, a
 * valid FIRST record, begins a batch while another was open (which never
 * ended: its records are damage), else 0. */
int mapkv__rules_take(mapkv__rules *st, const mapkv__rec *r, int *abandoned,
                      const char **why);

/* A record that breaks the rules or fails to decode: the next take must
 * begin a batch. */
static inline void mapkv__rules_reset(mapkv__rules *st) { st->open = 0; }

/* ---- Markers ---------------------------------------------------------------- */

/* The offset of the next record marker in (from, end), or end. */
uint64_t mapkv__next_marker(const mapkv__log *lg, uint64_t from, uint64_t end);

/* The offset of the next intact record after a damaged one at `from`
 * (searching forward for the marker), or `end` if there is none. */
uint64_t mapkv__skip_damage(const mapkv__log *lg, uint64_t from, uint64_t end);

/* ---- The scan: recovery and verification -------------------------------- */

/* What the scan reports to its user, in log order. */
typedef struct mapkv__scan_cb {
  /* A complete intact batch: `n` records at the offsets given. */
  int (*batch)(void *ctx, const uint64_t *offs, size_t n);
  /* A damaged span [off, off+len) in the middle (an accepted batch follows
   * it), with a reason; reported before that batch. 0 or an error. */
  int (*damage)(void *ctx, uint64_t off, uint64_t len, const char *what);
  void *ctx;
} mapkv__scan_cb;

typedef struct mapkv__scan_res {
  uint64_t end;          /* end of the last accepted batch */
  uint64_t last_seq;     /* its last sequence number */
  uint64_t batches;      /* accepted batches */
  uint64_t records;      /* records in them */
  uint64_t tail_bytes;   /* non-zero bytes after end */
  uint64_t tail_records; /* intact records after end */
  uint64_t nonzero_end;  /* end of the last non-zero byte scanned */
  uint64_t damaged;      /* damaged spans before end */
  uint64_t damaged_bytes;
  uint64_t first_damage;
} mapkv__scan_res;

/* Walks the records in [MAPKV__HDR_PAGE, limit) with every checksum
 * verified; damage is skipped by a forward search for the next marker
 * where an intact FIRST record newer than every accepted batch starts.
 * Returns 0 or an error from cb (or MAPKV_ENOMEM). */
int mapkv__scan(const mapkv__log *lg, uint64_t limit, const mapkv__scan_cb *cb,
                mapkv__scan_res *res);

/* ---- The walk: cursors and compaction ---------------------------------- */

/* A walk over the log that hands out the records recovery accepts: intact
 * records that keep the batch rules (as they come: the end of a batch is
 * not awaited, so the caller filters by liveness). A record that breaks
 * either is stepped over by a forward search, never by its own (untrusted)
 * lengths. */
typedef struct mapkv__walk {
  uint64_t pos, end;
  mapkv__rules rules;
  /* Called (if not NULL) for each record sound in structure whose checksum
   * fails, before it is stepped over. */
  void (*damaged)(void *ctx, uint64_t off, const mapkv__rec *r);
  void *ctx;
} mapkv__walk;

static inline void mapkv__walk_init(mapkv__walk *w, uint64_t end) {
  w->pos = MAPKV__HDR_PAGE;
  w->end = end;
  w->rules.done_seq = w->rules.prev_seq = w->rules.nops = 0;
  w->rules.open = 0;
  w->damaged = NULL;
  w->ctx = NULL;
}

/* The next record of the walk: 0 with *at and *r set, or MAPKV_NOTFOUND at
 * the end. */
int mapkv__walk_next(const mapkv__log *lg, mapkv__walk *w, uint64_t *at,
                     mapkv__rec *r);

/* ---- The census: damaged spans and tails ------------------------------- */

/* What a census of a span found: records that decode by structure, and
 * how many of them pass their checksum, fail it with the mark of a write
 * that did not reach the disk whole (torn), or fail it otherwise (bad);
 * leniently, also the records the span's end cuts that are sound as far
 * as the span shows them (cut: counted in records and bad too). */
typedef struct mapkv__census_res {
  uint64_t records, intact, torn, bad, cut;
} mapkv__census_res;

/* Called for each record of a census (decoded by structure; its checksum
 * may fail). */
typedef void (*mapkv__census_fn)(void *ctx, uint64_t off, const mapkv__rec *r);

/* Walks [from, to) by structure alone, stepping over what does not decode
 * by a forward search for the next marker, and counts what it finds;
 * fn (may be NULL) sees every record. Only an intact record's length is
 * stepped by. With lenient (a span of the sealed log), records are read
 * no further than `to`, and fn also sees what stands where a record must
 * start (from, and after an intact record) but does not decode, read by
 * mapkv__rec_decode_lenient() (from is then a record boundary). For
 * damaged spans and tails: nothing here is trusted beyond its bounds. */
void mapkv__census(const mapkv__log *lg, uint64_t from, uint64_t to,
                   int lenient, mapkv__census_fn fn, void *ctx,
                   mapkv__census_res *res);

/* Whether a tail after the durable data is something other than an
 * interrupted write. An interrupted write leaves intact records of an
 * uncommitted batch, records torn by pages that never reached the disk,
 * and at most one other record whose checksum fails (cut by the crash);
 * several structurally sound records that fail their checksums otherwise,
 * as many as pass or more, are damage or a log under another file id,
 * which recovery must not drop. */
static inline int mapkv__tail_suspect(const mapkv__census_res *t) {
  return t->bad >= 2 && t->bad >= t->intact;
}

#endif
