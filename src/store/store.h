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
  mapkv__index ix;
  uint64_t live_bytes;
  int known_damage; /* recovery skipped damage that is still in the file */
  /* The open accepted [header, unchecked_end) by structure alone (a clean
   * close): checksums there are checked as records are read. */
  uint64_t unchecked_end;
  mapkv_stats rec;  /* recovery figures of the last open */
  uint64_t *hashes; /* writer's scratch: key hashes of a batch */
  size_t nhashes;
  atomic_uint_fast64_t checksum_failures;
  atomic_uint_fast64_t version; /* odd while a commit changes the index */
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

/* Finds the newest record of key: its offset, or 0. p receives the probe
 * position (for replace/remove). Caller holds rw (read) or wlock. */
uint64_t mapkv__find(const mapkv_t *db, const void *key, size_t klen,
                     uint64_t hash, mapkv__probe *p);

/* Applies one intact record at off to the index and the live-byte count.
 * Caller holds rw for writing (or owns db exclusively). 0 or MAPKV_ENOMEM. */
int mapkv__apply(mapkv_t *db, uint64_t off, const mapkv__rec *r);

/* The index hashes of the keys of the records at offs[i] from base. */
void mapkv__hash_records(const uint8_t *base, const uint64_t *offs,
                         uint64_t *hashes, size_t n);

/* What the scanner reports to its user. */
typedef struct mapkv__scan_cb {
  /* A complete intact batch: `n` records at the offsets given. */
  int (*batch)(void *ctx, const uint64_t *offs, size_t n);
  /* A damaged span [off, off+len) with a reason. */
  void (*damage)(void *ctx, uint64_t off, uint64_t len, const char *what);
  void *ctx;
} mapkv__scan_cb;

/* Scan results. */
typedef struct mapkv__scan_res {
  uint64_t end;          /* end of the last accepted batch */
  uint64_t last_seq;     /* its last sequence number */
  uint64_t batches;      /* accepted batches */
  uint64_t tail_bytes;   /* non-zero bytes after end */
  uint64_t tail_records; /* intact records after end */
  uint64_t nonzero_end;  /* end of the last non-zero byte scanned */
  uint64_t damaged;      /* damaged spans before end */
  uint64_t damaged_bytes;
  uint64_t first_damage;
} mapkv__scan_res;

/* Walks the records in [MAPKV__HDR_PAGE, limit). With verify, checksums are
 * checked and damage is skipped by a forward search for the next marker;
 * without, the first anomaly stops the scan with MAPKV_ECORRUPT (the
 * caller then scans again with verify). Returns 0 or an error from cb. */
int mapkv__scan(const mapkv_t *db, uint64_t limit, int verify,
                const mapkv__scan_cb *cb, mapkv__scan_res *res);

/* The offset of the next intact record after a damaged one at `from`
 * (searching forward for the marker), or `end` if there is none. */
uint64_t mapkv__skip_damage(const mapkv_t *db, uint64_t from, uint64_t end);

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

/* Removes the temporary file of a compaction that did not finish. */
void mapkv__compact_cleanup(mapkv_t *db);

/* Round n up to the page size. */
static inline uint64_t mapkv__page_up(const mapkv_t *db, uint64_t n) {
  return (n + db->page - 1) / db->page * db->page;
}

#endif
