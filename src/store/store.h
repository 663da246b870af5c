/*
 * store.h — an open store: its log (log.h), its key map (keymap.h), its
 * options, and what the API files share about reading and writing them.
 *
 * Modules and who calls whom (no cycles; src/README.md draws it):
 *   options.c, open.c, read.c, write.c, cursor.c, compact.c, inspect.c,
 *   salvage.c  — the public API, on store.h
 *   recover.c  — the key map rebuilt from a scan of the log
 *   scan.c     — the walks over the log and the batch rules
 *   keymap.c   — key -> newest record, over index.c (the hash table)
 *   log.c      — the log file: create, open, lock, map, grow, flush,
 *                header, replace
 *   format.c   — the bytes of headers and records
 *   os.c       — the system calls other than the mapping core's
 *   error.c    — codes and messages
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
 * through the log's base, which never moves (the mapping is reserved up
 * front), at offsets the index gives, below the log's end.
 */
#ifndef MAPKV_STORE_H
#define MAPKV_STORE_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "format.h"
#include "keymap.h"
#include "log.h"
#include "mapkv/mapkv.h"

struct mapkv {
  mapkv__log log;
  mapkv__keymap map;
  mapkv_options opts;
  int known_damage; /* damage is still in the file (found at open or since) */
  int readonly;     /* log.readonly, where no lock is held (compaction
                       replaces log whole) */
  mapkv_stats rec;  /* recovery figures of the last open */
  uint64_t *hashes; /* writer's scratch: key hashes of a batch */
  size_t nhashes;
  uint8_t *wbuf; /* writer's scratch: the records of a durable commit */
  size_t wcap;
  /* Durable commits waiting for the writer (write.c: group commit); the
   * first is the one writing. */
  pthread_mutex_t qlock;
  struct mapkv__commit *qhead, *qtail;
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

/* The process's open handles, so that the calls that begin something
 * (batches, cursors) and close can tell a handle that was closed from an
 * open one, instead of using freed memory: 1 if db is open. */
int mapkv__handle_live(const mapkv_t *db);

/* options.c: the caller's options into db->opts (its size honoured), and
 * checked; the limits a handle enforces, once the store's header is read. */
int mapkv__options_take(mapkv_options *dst, const mapkv_options *src);
void mapkv__options_limits(mapkv_options *o, const mapkv__header *h);

/* A walk's callback (scan.h) that counts in checksum_failures a damaged
 * record the key map points at (ctx: the store). */
void mapkv__count_damaged(void *ctx, uint64_t off, const mapkv__rec *r);

/* inspect.c: the smallest mapkv_stats a caller may pass (the first
 * published one). */
#define MAPKV__STATS_MIN_SIZE                                                  \
  (offsetof(mapkv_stats, max_value_size) + sizeof(uint32_t))

#endif
