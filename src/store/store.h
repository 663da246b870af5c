/*
 * store.h — the state of an open store, shared by the engine's modules
 * (store.c: open/close/put/get/batches; scan.c: recovery and verify;
 * cursor.c; compact.c).
 *
 * Locking: `wlock` serialises writers (put, del, batch commit, sync,
 * compact, verify, stat); `rw` excludes readers only while the index table
 * or the mapping is replaced or resized (index growth, file growth,
 * compaction, close), which is rare. A commit changes index slots in place
 * without excluding readers: it makes `version` odd while it does, and
 * readers of the index run optimistically (mapkv__read_begin/retry), like a
 * seqlock, and retry a lookup that overlapped a commit. So a get never
 * waits for a commit, and still sees a batch all or nothing. Slots are
 * stored with release and loaded with acquire (index.h), so a reader that
 * sees a slot also sees the record it points at, which is complete and
 * never changes. Readers never call into the mapping core: they read
 * through `base`, which never moves (the mapping is reserved up front), at
 * offsets the index gives, below `end`.
 */
#ifndef MAPKV_STORE_H
#define MAPKV_STORE_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "format.h"
#include "index.h"
#include "mapkv/mapkv.h"
#include "mapkv/mmf.h"

struct mapkv {
  char *path;
  int fd;
  int readonly;
  mapkv_options opts;
  mmf_t *map;
  uint8_t *base;     /* start of the mapping: file offset 0 */
  uint64_t cap;      /* bytes mapped (== file size) */
  uint64_t reserve;  /* address space reserved at base */
  uint64_t end;      /* next record goes here */
  uint64_t flushed;  /* [0, flushed) has been made durable */
  uint64_t seq;      /* newest sequence number used */
  uint64_t page;     /* page size */
  mapkv__header hdr; /* as on disk (file_id, generation, created) */
  unsigned rec_head; /* bytes before a record's key (format version) */
  mapkv__index ix;
  uint64_t live_bytes;
  int known_damage; /* damage is still in the file (found at open or since) */
  /* What the header's sealed end says (FORMAT.md): the log below it is
   * known durable and checked. `lost` is the offset of the first damage a
   * crash may have caused (a write that never reached the disk), which
   * stays unsealed so that every later open sees it as the first did. */
  uint64_t sealed, lost;
  /* Records whose key recovery marked because damage cost the key's
   * newest batch: what the key's slot points at (sorted file offsets; fixed
   * after the open). A slot pointing at one answers MAPKV_ECORRUPT. */
  uint64_t *poison;
  size_t npoison;
  mapkv_stats rec;  /* recovery figures of the last open */
  uint64_t *hashes; /* writer's scratch: key hashes of a batch */
  size_t nhashes;
  atomic_uint_fast64_t checksum_failures;
  atomic_uint_fast64_t version; /* odd while a commit changes the index */
  /* Batches and cursors not yet ended: mapkv_close() refuses while any
   * is open. */
  atomic_uint_fast32_t children;
  pthread_mutex_t wlock;
  pthread_rwlock_t rw;
};

/* Readers of the index (holding rw for reading), around each lookup:
 *   do { v = mapkv__read_begin(db); ...lookup... }
 *   while (mapkv__read_retry(db, v));
 * Only what was read from the index needs the retry: records are
 * immutable. */
static inline uint64_t mapkv__read_begin(mapkv_t *db) {
  uint64_t v;
  unsigned spins = 0;
  while ((v = atomic_load_explicit(&db->version, memory_order_acquire)) & 1)
    if (++spins % 64 == 0)
      sched_yield(); /* a large batch is being applied */
  return v;
}

/* Whether a commit changed the index since v. The slot loads of the
 * lookup were acquire loads, so this load is not hoisted above them. */
static inline int mapkv__read_retry(mapkv_t *db, uint64_t v) {
  return atomic_load_explicit(&db->version, memory_order_relaxed) != v;
}

/* The writer (holding wlock) around changes of index slots. The slot
 * stores are release stores: a reader that sees one also sees the odd
 * version. */
static inline void mapkv__write_begin(mapkv_t *db) {
  uint64_t v = atomic_load_explicit(&db->version, memory_order_relaxed);
  atomic_store_explicit(&db->version, v + 1, memory_order_relaxed);
}

static inline void mapkv__write_end(mapkv_t *db) {
  uint64_t v = atomic_load_explicit(&db->version, memory_order_relaxed);
  atomic_store_explicit(&db->version, v + 1, memory_order_release);
}

/* `end` as a reader sees it (the writer stores it in mapkv__write_*). */
static inline uint64_t mapkv__end(const mapkv_t *db) {
  return __atomic_load_n(&db->end, __ATOMIC_ACQUIRE);
}

/* Decodes the record at file offset off of this store's format version
 * (avail bytes readable from there). */
static inline int mapkv__decode(const mapkv_t *db, uint64_t off, uint64_t avail,
                                int verify, mapkv__rec *r) {
  if (db->rec_head == MAPKV__REC_HEAD_V1)
    return mapkv__rec_decode_v1(db->base + off, avail, db->hdr.file_id, verify,
                                r);
  return mapkv__rec_decode(db->base + off, avail, db->hdr.file_id, verify, r);
}

/* Whether recovery marked the record at off as standing for a key whose
 * newest batch damage cost (see `poison`). */
static inline int mapkv__poisoned(const mapkv_t *db, uint64_t off) {
  size_t lo = 0, hi = db->npoison;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (db->poison[mid] < off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < db->npoison && db->poison[lo] == off;
}

/* The key of the record at off (whose header lies inside the mapping). */
static inline const uint8_t *mapkv__key_at(const mapkv_t *db, uint64_t off) {
  return db->base + off + db->rec_head;
}

/* Finds the newest record of key: its offset, or 0. p receives the probe
 * position (for replace/remove). A slot whose tag matches but whose record
 * fails its checksum stands for a damaged record of this key (recovery
 * points a key's slot at its damaged newest record, whose key bytes may be
 * damaged too): when no intact record of the key is found, its offset is
 * returned with *damaged set (damaged may be NULL: then such slots are
 * skipped). Caller holds rw (read) or wlock. */
uint64_t mapkv__find(const mapkv_t *db, const void *key, size_t klen,
                     uint64_t hash, mapkv__probe *p, int *damaged);

/* The index hashes of the keys of the records at offs[i] from base, whose
 * keys start head bytes in (mapkv__rec_head()). */
void mapkv__hash_records(const uint8_t *base, unsigned head,
                         const uint64_t *offs, uint64_t *hashes, size_t n);

/* What the scanner reports to its user, in log order. */
typedef struct mapkv__scan_cb {
  /* A complete intact batch: `n` records at the offsets given. */
  int (*batch)(void *ctx, const uint64_t *offs, size_t n);
  /* A damaged span [off, off+len) in the middle (an accepted batch follows
   * it), with a reason; reported before that batch. 0 or an error. */
  int (*damage)(void *ctx, uint64_t off, uint64_t len, const char *what);
  void *ctx;
} mapkv__scan_cb;

/* Scan results. */
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
 * verified; damage is skipped by a forward search for the next marker.
 * Returns 0 or an error from cb. */
int mapkv__scan(const mapkv_t *db, uint64_t limit, const mapkv__scan_cb *cb,
                mapkv__scan_res *res);

/* The offset of the next record marker in (from, end), or end. */
uint64_t mapkv__next_marker(const mapkv_t *db, uint64_t from, uint64_t end);

/* The offset of the next intact record after a damaged one at `from`
 * (searching forward for the marker), or `end` if there is none. */
uint64_t mapkv__skip_damage(const mapkv_t *db, uint64_t from, uint64_t end);

/* What a census of a span found: records that decode by structure, and
 * how many of them pass their checksum, fail it with the mark of a write
 * that did not reach the disk whole (torn), or fail it otherwise (bad). */
typedef struct mapkv__census_res {
  uint64_t records, intact, torn, bad;
} mapkv__census_res;

/* Called for each record of a census (decoded by structure; its checksum
 * may fail). */
typedef void (*mapkv__census_fn)(void *ctx, uint64_t off, const mapkv__rec *r);

/* Walks [from, to) by structure alone, stepping over what does not decode
 * by a forward search for the next marker, and counts what it finds;
 * fn (may be NULL) sees every record. Only an intact record's length is
 * stepped by. With lenient, fn also sees what stands where a record must
 * start (from, and after an intact record) but does not decode, read by
 * mapkv__rec_decode_lenient() (from is then a record boundary). For
 * damaged spans and tails: nothing here is trusted beyond its bounds. */
void mapkv__census(const mapkv_t *db, uint64_t from, uint64_t to, int lenient,
                   mapkv__census_fn fn, void *ctx, mapkv__census_res *res);

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

/* A walk over the log that follows what recovery accepts: records whose
 * checksum holds and that keep the batch structure (FIRST, then
 * consecutive sequence numbers). A record that breaks either is stepped
 * over by a forward search, never by its own (untrusted) lengths. */
typedef struct mapkv__walk {
  uint64_t pos, end;
  uint64_t prev_seq; /* sequence number of the last record stepped over */
  uint64_t done_seq; /* ... of the last record that ended a batch */
  int in_batch;      /* inside a batch (its LAST not seen yet) */
  uint64_t nops;     /* PUT and DEL records of the batch so far */
} mapkv__walk;

static inline void mapkv__walk_init(mapkv__walk *w, uint64_t end) {
  w->pos = MAPKV__HDR_PAGE;
  w->end = end;
  w->prev_seq = w->done_seq = w->nops = 0;
  w->in_batch = 0;
}

/* The next record of the walk: 0 with *at and *r set, or MAPKV_NOTFOUND at
 * the end. A damaged record the index points at is counted in
 * checksum_failures. Caller holds rw (read) or wlock. */
int mapkv__walk_next(mapkv_t *db, mapkv__walk *w, uint64_t *at, mapkv__rec *r);

/* Writes both header copies (clean or not) through the map and flushes
 * each. */
int mapkv__write_header(mapkv_t *db, int clean);

/* msync of the pages covering [flushed, upto). */
int mapkv__flush_to(mapkv_t *db, uint64_t upto);

/* The process's open handles, so that the calls that begin something
 * (batches, cursors) and close can tell a handle that was closed from an
 * open one, instead of using freed memory: 1 if db is open. */
int mapkv__handle_live(const mapkv_t *db);

/* Takes the writer lock (flock LOCK_EX) on fd, trying again after short
 * sleeps for up to timeout_ms while another process holds it. 0,
 * MAPKV_ELOCKED (message names path), or -errno. */
int mapkv__lock_fd(int fd, const char *path, uint32_t timeout_ms);

/* 0 if db->path still names the file the handle has open, MAPKV_EMOVED if
 * it names another file or none (renamed over, removed), or -errno. */
int mapkv__check_path(mapkv_t *db);

/* Removes the temporary file of a compaction that did not finish. */
void mapkv__compact_cleanup(mapkv_t *db);

/* Round n up to the page size. */
static inline uint64_t mapkv__page_up(const mapkv_t *db, uint64_t n) {
  return (n + db->page - 1) / db->page * db->page;
}

#endif
