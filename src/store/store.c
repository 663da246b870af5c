/*
 * store.c — opening, closing, reading and writing a store.
 *
 * Write protocol (one commit = one batch of records):
 *   1. under wlock, make room (fallocate the new blocks, then mmf_resize);
 *   2. encode the records after `end` (invisible: nothing points there);
 *   3. with MAPKV_SYNC_COMMIT, msync the pages from `flushed` to the new end
 *      — one flush per commit; on failure the bytes are zeroed and the
 *      commit is not applied;
 *   4. under rw (write), point the index at the new records, advance `end`.
 * The header is written only at open (clean flag cleared, flushed before
 * any record is written) and at close (clean flag, exact figures).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "os.h"
#include "store.h"
#include "store_err.h"

#define DEFAULT_INITIAL (1ull << 20)
#define DEFAULT_STEP    (1ull << 20)
#define DEFAULT_RESERVE (64ull << 30)
/* Growth adds 1/GROWTH_DIV of the file (at least growth_step): geometric,
 * so appends stay amortised O(1), while free space stays a small share. */
#define GROWTH_DIV 16
/* Growth past this size ends the file on a multiple of it, so that every
 * 2 MiB block of the file is first touched whole, inside the file, and the
 * page cache can give it one large folio (see advise_huge). */
#define GROWTH_ALIGN (2ull << 20)
#define APPLY_AHEAD  16 /* index slots prefetched ahead in a batch */

/* The sizes of the first published layouts of the structures whose size
 * the caller gives: later versions only add fields at their ends. */
#define OPTIONS_MIN_SIZE                                                       \
  (offsetof(mapkv_options, lock_timeout_ms) + sizeof(uint32_t))
#define STATS_MIN_SIZE                                                         \
  (offsetof(mapkv_stats, max_value_size) + sizeof(uint32_t))

int mapkv_options_init_size(mapkv_options *o, size_t size) {
  mapkv_options d;
  if (o == NULL || size < OPTIONS_MIN_SIZE)
    return mapkv__fail(MAPKV_EINVAL, "options of %zu bytes: at least %zu", size,
                       (size_t)OPTIONS_MIN_SIZE);
  memset(&d, 0, sizeof d);
  d.struct_size = size;
  d.sync_mode = MAPKV_SYNC_COMMIT;
  d.initial_size = DEFAULT_INITIAL;
  d.growth_step = DEFAULT_STEP;
  d.reserve = DEFAULT_RESERVE;
  /* Fields of a newer header than this library's are the caller's to
   * zero: they mean "default" too. */
  if (size > sizeof d)
    memset((char *)o + sizeof d, 0, size - sizeof d);
  memcpy(o, &d, size < sizeof d ? size : sizeof d);
  return 0;
}

/* The caller's options, of the size it was compiled with, into the
 * library's own: fields the caller does not have are defaults (zero);
 * fields the library does not know must be zero. */
static int copy_options(mapkv_options *dst, const mapkv_options *src) {
  size_t n = src->struct_size;
  if (n < OPTIONS_MIN_SIZE)
    return mapkv__fail(MAPKV_EINVAL,
                       "options not initialised (struct_size %zu): call "
                       "mapkv_options_init() first",
                       n);
  memset(dst, 0, sizeof *dst);
  memcpy(dst, src, n < sizeof *dst ? n : sizeof *dst);
  for (size_t i = sizeof *dst; i < n; i++)
    if (((const unsigned char *)src)[i] != 0)
      return mapkv__fail(MAPKV_EINVAL,
                         "options of a newer mapkv: a field this library "
                         "(%s) does not know is set",
                         MAPKV_VERSION_STRING);
  dst->struct_size = sizeof *dst;
  return 0;
}

static int check_options(mapkv_options *o) {
  if (o->flags & ~(MAPKV_CREATE | MAPKV_RDONLY | MAPKV_VERIFY))
    return mapkv__fail(MAPKV_EINVAL, "unknown open flags 0x%x", o->flags);
  if (o->sync_mode < MAPKV_SYNC_COMMIT || o->sync_mode > MAPKV_SYNC_EXPLICIT)
    return mapkv__fail(MAPKV_EINVAL, "unknown sync mode %d", o->sync_mode);
  if (o->initial_size == 0)
    o->initial_size = DEFAULT_INITIAL;
  if (o->growth_step == 0)
    o->growth_step = DEFAULT_STEP;
  if (o->reserve == 0)
    o->reserve = DEFAULT_RESERVE;
  if (o->max_key_size > MAPKV_KEY_MAX)
    return mapkv__fail(MAPKV_EINVAL, "max_key_size %u exceeds %u",
                       o->max_key_size, MAPKV_KEY_MAX);
  if (o->max_value_size > MAPKV_VALUE_MAX)
    return mapkv__fail(MAPKV_EINVAL, "max_value_size %u exceeds %u",
                       o->max_value_size, MAPKV_VALUE_MAX);
  if (o->initial_size > MAPKV_FILE_MAX || o->growth_step > MAPKV_FILE_MAX ||
      o->reserve > MAPKV_FILE_MAX)
    return mapkv__fail(MAPKV_EINVAL, "sizes must not exceed %llu bytes",
                       (unsigned long long)MAPKV_FILE_MAX);
  if (o->initial_size > o->reserve || o->growth_step > o->reserve)
    return mapkv__fail(MAPKV_EINVAL,
                       "initial_size (%llu) and growth_step (%llu) must not "
                       "exceed the address reservation (%llu bytes)",
                       (unsigned long long)o->initial_size,
                       (unsigned long long)o->growth_step,
                       (unsigned long long)o->reserve);
  if (o->expected_keys > MAPKV_FILE_MAX / MAPKV__REC_OVERHEAD)
    return mapkv__fail(
        MAPKV_EINVAL, "expected_keys must not exceed %llu",
        (unsigned long long)(MAPKV_FILE_MAX / MAPKV__REC_OVERHEAD));
  return 0;
}

/* ---- Lookup and index maintenance ------------------------------------------
 */

uint64_t mapkv__find(const mapkv_t *db, const void *key, size_t klen,
                     uint64_t hash, mapkv__probe *p, int *damaged) {
  uint64_t off, bad = 0;
  mapkv__probe badp;
  mapkv__index_probe_start(&db->ix, hash, p);
  while ((off = mapkv__index_probe_next(&db->ix, p)) != 0) {
    const uint8_t *r = db->base + off;
    mapkv__rec rec;
    if (mapkv__rec_klen_at(r) == klen &&
        (klen == 0 || memcmp(mapkv__key_at(db, off), key, klen) == 0))
      return off;
    /* A tag match for another key is rare (1 in 2^24 per slot probed):
     * only then is the record's checksum worth a look. */
    if (damaged != NULL && bad == 0 && off < mapkv__end(db) &&
        mapkv__decode(db, off, mapkv__end(db) - off, 1, &rec) !=
            MAPKV__REC_OK) {
      bad = off;
      badp = *p;
    }
  }
  if (bad != 0) {
    *damaged = 1;
    *p = badp;
    return bad;
  }
  return 0;
}

static uint64_t rec_size_at(const mapkv_t *db, uint64_t off) {
  const uint8_t *r = db->base + off;
  return db->rec_head + MAPKV__REC_TAIL + mapkv__rec_klen_at(r) +
         mapkv__rec_vlen_at(r);
}

/* The live bytes the record a slot points at counts for: its size, but
 * nothing for a damaged record that recovery gave a slot to poison its
 * key (its lengths are untrusted and may cover other records). Only
 * stores with poisoned keys have such slots. */
static uint64_t live_size_at(const mapkv_t *db, uint64_t off) {
  mapkv__rec r;
  if (db->npoison > 0 &&
      mapkv__decode(db, off, db->cap - off, 1, &r) != MAPKV__REC_OK)
    return 0;
  return rec_size_at(db, off);
}

/* Applies one intact record at off (of a key whose hash is given) to the
 * index and the live-byte count. Caller holds rw for writing, or wlock
 * between mapkv__write_begin/end, or owns db exclusively. 0 or
 * MAPKV_ENOMEM. */
static int apply_hashed(mapkv_t *db, uint64_t off, const mapkv__rec *r,
                        uint64_t hash) {
  mapkv__probe p;
  uint64_t old;
  int damaged = 0;
  if (r->type == MAPKV__T_COMMIT)
    return 0;
  old = mapkv__find(db, r->key, r->klen, hash, &p, &damaged);
  if (old != 0) {
    db->live_bytes -= live_size_at(db, old);
    if (r->type == MAPKV__T_PUT)
      mapkv__index_replace(&db->ix, &p, off);
    else
      mapkv__index_remove(&db->ix, &p);
  } else if (r->type == MAPKV__T_PUT) {
    if (mapkv__index_insert(&db->ix, hash, off) != 0)
      return mapkv__fail(MAPKV_ENOMEM, "out of memory growing the index");
  }
  if (r->type == MAPKV__T_PUT)
    db->live_bytes += r->size;
  return 0;
}

void mapkv__hash_records(const uint8_t *base, unsigned head,
                         const uint64_t *offs, uint64_t *hashes, size_t n) {
  /* Start every miss before waiting on the first. */
  for (size_t i = 0; i < n; i++)
    __builtin_prefetch(base + offs[i]);
  for (size_t i = 0; i < n; i++) {
    const uint8_t *r = base + offs[i];
    hashes[i] = mapkv__index_hash(r + head, mapkv__rec_klen_at(r));
  }
}

static void hashes_at(void *ctx, const uint64_t *offs, uint64_t *hashes,
                      size_t n) {
  const mapkv_t *db = ctx;
  mapkv__hash_records(db->base, db->rec_head, offs, hashes, n);
}

/* ---- Flushing and the header
 * ---------------------------------------------------- */

int mapkv__flush_to(mapkv_t *db, uint64_t upto) {
  uint64_t from = db->flushed / db->page * db->page;
  int rc;
  if (upto <= db->flushed)
    return 0;
  rc = mmf_flush(db->map, (int64_t)from, (int64_t)(upto - from));
  if (rc != 0)
    return mapkv__fail_mmf(rc, "flushing the data file");
  db->flushed = upto;
  return 0;
}

int mapkv__write_header(mapkv_t *db, int clean) {
  mapkv__header h = db->hdr;
  int rc;
  h.flags = clean ? MAPKV__HF_CLEAN : 0;
  h.data_end = db->end;
  h.last_seq = db->seq;
  h.live_records = db->ix.count;
  h.live_bytes = db->live_bytes;
  /* A clean close seals everything but damage a crash may have left. */
  if (clean && db->lost == 0)
    db->sealed = db->end;
  h.sealed_end = db->sealed;
  /* One copy at a time, each flushed: a torn write can damage at most the
   * copy being written, and the other one stays intact. */
  mapkv__header_encode(db->base, &h);
  if ((rc = mmf_flush(db->map, 0, (int64_t)db->page)) != 0)
    return mapkv__fail_mmf(rc, "flushing the header");
  mapkv__header_encode(db->base + MAPKV__HDR_COPY_B, &h);
  if ((rc = mmf_flush(db->map, 0, (int64_t)db->page)) != 0)
    return mapkv__fail_mmf(rc, "flushing the header");
  db->hdr = h;
  return 0;
}

/* ---- Creating, opening, recovering
 * ----------------------------------------------- */

/* Creates the store file atomically: a complete header page is written to a
 * temporary file, synced, and linked into place (which fails if another
 * process created the store first: then theirs is used). */
static int create_file(const mapkv_t *db) {
  const char *path = db->path;
  uint8_t *buf;
  mapkv__header h;
  char *tmp;
  int fd, rc = 0;

  memset(&h, 0, sizeof h);
  h.version = MAPKV_FORMAT_VERSION;
  h.page_size = (uint32_t)db->page;
  h.flags = MAPKV__HF_CLEAN;
  h.data_end = MAPKV__HDR_PAGE;
  h.sealed_end = MAPKV__HDR_PAGE;
  h.created = (uint64_t)time(NULL);
  h.max_key =
      db->opts.max_key_size ? db->opts.max_key_size : MAPKV_DEFAULT_KEY_MAX;
  h.max_value = db->opts.max_value_size ? db->opts.max_value_size
                                        : MAPKV_DEFAULT_VALUE_MAX;
  do {
    if (mapkv__os.random(&h.file_id, sizeof h.file_id) != 0)
      return mapkv__fail_errno("getrandom");
  } while (h.file_id == 0);

  /* A name of our own: creators racing on one path must not meet here,
   * and a creator that dies leaves a name the next writer can clean. */
  tmp = mapkv__os_tmp_name(path, "creating", h.file_id);
  buf = calloc(1, MAPKV__HDR_PAGE);
  if (tmp == NULL || buf == NULL) {
    free(tmp);
    free(buf);
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  }
  mapkv__header_encode(buf, &h);
  mapkv__header_encode(buf + MAPKV__HDR_COPY_B, &h);

  fd = mapkv__os.open(tmp, O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    rc = mapkv__fail_errno(path);
    goto out;
  }
  rc = mapkv__os_pwrite_all(fd, buf, MAPKV__HDR_PAGE, 0);
  if (rc == 0 && mapkv__os.fsync(fd) != 0)
    rc = -errno;
  mapkv__os.close(fd);
  if (rc == 0 && mapkv__os.link(tmp, path) != 0 && errno != EEXIST)
    rc = -errno;
  mapkv__os.unlink(tmp);
  if (rc == 0)
    rc = mapkv__os_sync_dir(path);
  if (rc != 0)
    rc = mapkv__fail(rc, "creating %s: %s", path, strerror(-rc));
out:
  free(tmp);
  free(buf);
  return rc;
}

static const char *file_kind(mode_t m) {
  return S_ISDIR(m)    ? "directory"
         : S_ISFIFO(m) ? "FIFO"
         : S_ISSOCK(m) ? "socket"
         : S_ISCHR(m)  ? "character device"
         : S_ISBLK(m)  ? "block device"
                       : "special file";
}

/* Opens the store file without blocking (a FIFO or a device would block
 * open() forever) and refuses anything but a regular file. */
static int open_store_file(const mapkv_t *db, int *out) {
  struct stat st;
  int fd = mapkv__os.open(db->path,
                          (db->readonly ? O_RDONLY : O_RDWR) | O_NONBLOCK, 0);
  if (fd < 0) {
    int e = errno;
    /* A directory (EISDIR), a socket (ENXIO): not a store. */
    if (e != ENOENT && mapkv__os.stat(db->path, &st) == 0 &&
        !S_ISREG(st.st_mode))
      return mapkv__fail(MAPKV_ENOTDB, "%s is not a regular file (a %s)",
                         db->path, file_kind(st.st_mode));
    return -e;
  }
  if (mapkv__os.fstat(fd, &st) != 0) {
    int e = errno;
    mapkv__os.close(fd);
    return mapkv__fail(-e, "fstat %s: %s", db->path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    mapkv__os.close(fd);
    return mapkv__fail(MAPKV_ENOTDB, "%s is not a regular file (a %s)",
                       db->path, file_kind(st.st_mode));
  }
  /* O_NONBLOCK changes nothing for a regular file's mapping, locks and
   * syncs; it stays set. */
  *out = fd;
  return 0;
}

/* A writer waiting for the lock (lock_timeout_ms) sleeps between tries,
 * 1 ms at first, doubling up to this. flock() has no timed form, and a
 * blocking flock() could only be cut short by a signal, which a library
 * must not use. */
#define LOCK_PAUSE_MAX_MS 25

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pause_ns(uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ns / 1000000000u);
  ts.tv_nsec = (long)(ns % 1000000000u);
  nanosleep(&ts, NULL); /* a signal cuts it short: the caller re-checks */
}

int mapkv__lock_fd(int fd, const char *path, uint32_t timeout_ms) {
  uint64_t deadline = 0, pause_ms = 1;
  if (timeout_ms > 0)
    deadline = monotonic_ns() + (uint64_t)timeout_ms * 1000000u;
  while (mapkv__os.flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    uint64_t now;
    if (e == EWOULDBLOCK && timeout_ms > 0 &&
        (now = monotonic_ns()) < deadline) {
      uint64_t ns = pause_ms * 1000000u;
      pause_ns(ns < deadline - now ? ns : deadline - now);
      pause_ms =
          pause_ms * 2 > LOCK_PAUSE_MAX_MS ? LOCK_PAUSE_MAX_MS : pause_ms * 2;
      continue;
    }
    if (e == EWOULDBLOCK && timeout_ms > 0)
      return mapkv__fail(MAPKV_ELOCKED,
                         "%s is open for writing by another process "
                         "(waited %lu ms for it)",
                         path, (unsigned long)timeout_ms);
    if (e == EWOULDBLOCK)
      return mapkv__fail(MAPKV_ELOCKED,
                         "%s is open for writing by another process", path);
    errno = e;
    return mapkv__fail_errno("flock");
  }
  return 0;
}

/* Opens path and, for a writer, takes the exclusive lock on the file that
 * the path names now (a compaction may rename a new file over it between
 * our open and our lock). A writer whose lock another process holds tries
 * again until opts.lock_timeout_ms have passed. */
static int open_locked(mapkv_t *db) {
  unsigned flags = db->opts.flags;
  for (int attempt = 0; attempt < 100; attempt++) {
    struct stat a, b;
    int fd = -1, rc = open_store_file(db, &fd);
    if (rc == -ENOENT && (flags & MAPKV_CREATE) && !db->readonly) {
      if ((rc = create_file(db)) != 0)
        return rc;
      continue;
    }
    if (rc != 0)
      return rc > -4096 && rc < 0
                 ? mapkv__fail(rc, "%s: %s", db->path, strerror(-rc))
                 : rc;
    if (db->readonly) {
      db->fd = fd;
      return 0;
    }
    if ((rc = mapkv__lock_fd(fd, db->path, db->opts.lock_timeout_ms)) != 0) {
      mapkv__os.close(fd);
      return rc;
    }
    if (mapkv__os.fstat(fd, &a) == 0 && mapkv__os.stat(db->path, &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      db->fd = fd;
      return 0;
    }
    mapkv__os.close(fd); /* replaced meanwhile: lock the new file */
  }
  return mapkv__fail(MAPKV_ELOCKED, "%s keeps being replaced", db->path);
}

int mapkv__check_path(mapkv_t *db) {
  struct stat a, b;
  if (mapkv__os.fstat(db->fd, &a) != 0)
    return mapkv__fail_errno("fstat");
  if (mapkv__os.stat(db->path, &b) != 0) {
    if (errno == ENOENT)
      return mapkv__fail(MAPKV_EMOVED,
                         "%s was removed while open: what is written now "
                         "goes to a file no path names",
                         db->path);
    return mapkv__fail_errno(db->path);
  }
  if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
    return mapkv__fail(MAPKV_EMOVED,
                       "%s was replaced by another file while open: what is "
                       "written now goes to a file no path names",
                       db->path);
  return 0;
}

/* Recovery applies accepted records through a short queue: each record's
 * index slot is prefetched when it enters, and the record is applied when
 * it leaves, in the same order. Building the index of a large store is
 * dominated by cache misses on the table; this overlaps them. */
#define APPLY_QUEUE 64

typedef struct apply_queue {
  mapkv_t *db;
  uint64_t off[APPLY_QUEUE], hash[APPLY_QUEUE];
  unsigned head, n;
} apply_queue;

static int queue_pop(apply_queue *q) {
  mapkv_t *db = q->db;
  mapkv__rec r;
  uint64_t off = q->off[q->head];
  uint64_t hash = q->hash[q->head];
  int d;
  q->head = (q->head + 1) % APPLY_QUEUE;
  q->n--;
  /* Decoded, bounds-checked and verified by the scan already. */
  d = mapkv__decode(db, off, db->cap - off, 0, &r);
  assert(d == MAPKV__REC_OK);
  (void)d;
  return apply_hashed(db, off, &r, hash);
}

static int queue_drain(apply_queue *q) {
  int rc = 0;
  while (q->n > 0 && rc == 0)
    rc = queue_pop(q);
  return rc;
}

/* What a recovery keeps besides the index. */
typedef struct rebuild {
  apply_queue q;
  /* The header's sealed end (FORMAT.md): damage below it is damage, not a
   * write a crash lost, and the keys it may have held answer
   * MAPKV_ECORRUPT. */
  uint64_t sealed;
  uint64_t lost; /* the first damage above it, or 0 */
  uint64_t span_end; /* the end of the damaged span being poisoned */
  uint64_t bad;      /* records in damaged spans that fail their checksum */
  int rc;
} rebuild;

static int apply_batch(void *ctx, const uint64_t *offs, size_t n) {
  rebuild *b = ctx;
  apply_queue *q = &b->q;
  mapkv_t *db = q->db;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = db->base + offs[i];
    uint64_t hash;
    unsigned slot;
    int rc;
    if (mapkv__rec_type_at(p) == MAPKV__T_COMMIT)
      continue;
    if (q->n == APPLY_QUEUE && (rc = queue_pop(q)) != 0)
      return rc;
    hash = mapkv__index_hash(mapkv__key_at(db, offs[i]), mapkv__rec_klen_at(p));
    mapkv__index_prefetch(&db->ix, hash);
    slot = (q->head + q->n) % APPLY_QUEUE;
    q->off[slot] = offs[i];
    q->hash[slot] = hash;
    q->n++;
  }
  return 0;
}

/* Marks the key a damaged (or lost) record at off may have changed, so
 * that a get of it answers MAPKV_ECORRUPT instead of an older value: the
 * record its slot points at is added to the poison list (the slot itself
 * keeps pointing at a record with that key, so that its hash can always be
 * taken from the record). Its key bytes are trusted only if the record is
 * intact; otherwise prev, the key's newest record before it, names the
 * key, when what prev points at is an intact record the index still has
 * as its key's newest. */
static void poison(void *ctx, uint64_t off, const mapkv__rec *r) {
  rebuild *b = ctx;
  mapkv_t *db = b->q.db;
  mapkv__probe p;
  mapkv__rec pr;
  uint64_t hash = 0, target = 0;
  int damaged = 0, intact;
  if (b->rc != 0 || off >= b->sealed ||
      (r->type == MAPKV__T_COMMIT && r->klen == 0 && r->prev == 0))
    return;
  intact = r->size > 0 &&
           (r->type == MAPKV__T_PUT || r->type == MAPKV__T_DEL) &&
           db->base[off] == MAPKV__MARK0 && db->base[off + 1] == MAPKV__MARK1 &&
           mapkv__rec_checksum_ok(db->base + off, r, db->hdr.file_id);
  if (!intact && r->prev >= MAPKV__HDR_PAGE && r->prev < off &&
      mapkv__decode(db, r->prev, db->cap - r->prev, 1, &pr) == MAPKV__REC_OK &&
      pr.type != MAPKV__T_COMMIT &&
      mapkv__index_has(&db->ix, mapkv__index_hash(pr.key, pr.klen), r->prev))
    target = r->prev;
  if (target == 0 && r->key != NULL) {
    hash = mapkv__index_hash(r->key, r->klen);
    target = mapkv__find(db, r->key, r->klen, hash, &p, &damaged);
  }
  if (target == 0 && !intact) {
    /* A key's first record, damaged: its key bytes may be what was hit,
     * but are far more likely intact (values are the larger part); only a
     * record sound in structure is taken at its word. */
    mapkv__rec sr;
    if (r->key == NULL ||
        mapkv__decode(db, off, db->cap - off, 0, &sr) != MAPKV__REC_OK)
      return;
  }
  if (db->npoison % 64 == 0) {
    uint64_t *q = realloc(db->poison, (db->npoison + 64) * sizeof *q);
    if (q == NULL) {
      b->rc = mapkv__fail(MAPKV_ENOMEM, "out of memory during recovery");
      return;
    }
    db->poison = q;
  }
  /* A record that runs past its damaged span (its lengths, or the sealed
   * end, are damaged) gets no slot: the bytes past the span belong to
   * other records, or lie after the log, where new records will go. */
  if (target == 0 && off + r->size > b->span_end)
    return;
  if (target == 0) {
    /* A new key of the lost batch: it answers MAPKV_ECORRUPT too (its
     * slot points at this record, whose key it is). */
    if (mapkv__index_insert(&db->ix, hash, off) != 0) {
      b->rc = mapkv__fail(MAPKV_ENOMEM, "out of memory growing the index");
      return;
    }
    if (intact)
      db->live_bytes += r->size;
    target = off;
  }
  db->poison[db->npoison++] = target;
}

static int cmp_offset(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* A damaged span of the middle: counted, and below the sealed end its
 * records' keys poisoned, in log order (the batches before it are in the
 * index, those after it not yet). */
static int on_damage(void *ctx, uint64_t off, uint64_t len, const char *what) {
  rebuild *b = ctx;
  mapkv__census_res c;
  int rc;
  (void)what;
  if (off + len > b->sealed && b->lost == 0)
    b->lost = off > b->sealed ? off : b->sealed;
  if ((rc = queue_drain(&b->q)) != 0)
    return rc;
  b->span_end = off + len;
  mapkv__census(b->q.db, off, off + len, off < b->sealed, poison, b, &c);
  b->bad += c.bad;
  return b->rc;
}

static int reset_index(mapkv_t *db, uint64_t expected) {
  if (expected < db->opts.expected_keys)
    expected = db->opts.expected_keys;
  mapkv__index_free(&db->ix);
  db->live_bytes = 0;
  if (mapkv__index_init(&db->ix, expected, hashes_at, db) != 0)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory for the index");
  return 0;
}

/* Rebuilds the index from the log, every checksum verified (FORMAT.md,
 * "Recovery"), and decides where the log ends. Nothing below the header's
 * data end is ever dropped: damage there stays in the file, is reported,
 * and the keys it held answer MAPKV_ECORRUPT. After it, an uncommitted or
 * torn tail is dropped, but a "tail" that looks like a log whose checksums
 * fail (a header of another store or generation, damage) is refused. A
 * read-only open with MAPKV_VERIFY (salvage) refuses nothing: it shows
 * what is intact. */
static int recover(mapkv_t *db) {
  rebuild b;
  mapkv__scan_cb cb = {apply_batch, on_damage, &b};
  mapkv__scan_res res;
  mapkv__census_res tail, end_damage;
  int salvage = db->readonly && (db->opts.flags & MAPKV_VERIFY);
  uint64_t expect = 0, end, bad;
  int rc;

  memset(&b, 0, sizeof b);
  memset(&end_damage, 0, sizeof end_damage);
  b.q.db = db;
  memset(&db->rec, 0, sizeof db->rec);
  db->rec.clean_open = (db->hdr.flags & MAPKV__HF_CLEAN) != 0;
  b.sealed = db->hdr.sealed_end;
  if (b.sealed > db->cap) {
    if (!salvage)
      return mapkv__fail(
          MAPKV_ETRUNCATED,
          "%s: the header records data up to offset %llu, but the file has "
          "%llu bytes: it was truncated (mapkv recover salvages the intact "
          "records)",
          db->path, (unsigned long long)b.sealed, (unsigned long long)db->cap);
    db->rec.truncated_bytes = b.sealed - db->cap;
    b.sealed = db->cap;
  }
  if (db->rec.clean_open)
    expect = db->hdr.live_records;
  if (expect > db->cap / MAPKV__REC_OVERHEAD)
    expect = 0;
  if ((rc = reset_index(db, expect)) != 0)
    return rc;
  if ((rc = mapkv__scan(db, db->cap, &cb, &res)) != 0 ||
      (rc = queue_drain(&b.q)) != 0)
    return rc;

  /* Damage at the end of the sealed log is not a tail. */
  end = res.end;
  if (b.sealed > end) {
    mapkv__census(db, end, b.sealed, 0, NULL, NULL, &end_damage);
    end = b.sealed;
  }
  memset(&tail, 0, sizeof tail);
  if (res.nonzero_end > end)
    mapkv__census(db, end, res.nonzero_end, 0, NULL, NULL, &tail);
  bad = b.bad + end_damage.bad + tail.bad;
  if (!salvage && bad >= 2 && res.records == 0)
    return mapkv__fail(
        MAPKV_ECORRUPT,
        "%s: %llu records fail their checksums and none passes: the header "
        "does not belong to this log (a header of another store or "
        "generation?) or the log is damaged; nothing was changed (mapkv "
        "verify lists the damage, mapkv recover salvages)",
        db->path, (unsigned long long)bad);
  if (!salvage && mapkv__tail_suspect(&tail))
    return mapkv__fail(
        MAPKV_ECORRUPT,
        "%s: after offset %llu, %llu records fail their checksums: damage, "
        "not an interrupted write; nothing was dropped (mapkv verify lists "
        "it, mapkv recover salvages the intact records)",
        db->path, (unsigned long long)end, (unsigned long long)tail.bad);
  if (b.sealed > res.end) {
    /* After the last intact batch, but sealed: damage, kept in place. */
    if ((rc = on_damage(&b, res.end, b.sealed - res.end,
                        "damaged records at the end of the data")) != 0)
      return rc;
    if (res.damaged == 0)
      res.first_damage = res.end;
    res.damaged++;
    res.damaged_bytes += b.sealed - res.end;
  }

  db->end = end;
  db->seq = res.last_seq;
  db->rec.recovered_batches = res.batches;
  db->rec.dropped_tail_bytes =
      res.nonzero_end > end ? res.nonzero_end - end : 0;
  db->rec.dropped_tail_records = tail.intact;
  db->rec.damaged_regions = res.damaged;
  db->rec.damaged_bytes = res.damaged_bytes;
  db->rec.first_damage_offset = res.first_damage;
  if (db->npoison > 1) {
    size_t n = 1;
    qsort(db->poison, db->npoison, sizeof *db->poison, cmp_offset);
    for (size_t i = 1; i < db->npoison; i++) /* a key poisoned twice */
      if (db->poison[i] != db->poison[n - 1])
        db->poison[n++] = db->poison[i];
    db->npoison = n;
  }
  db->rec.damaged_keys = db->npoison;
  db->known_damage = res.damaged > 0 || db->rec.truncated_bytes > 0;
  /* This open checks the log up to its end and (a writer) makes it
   * durable: sealed, but for damage a crash may have left. */
  db->lost = b.lost;
  db->sealed = b.lost != 0 ? b.lost : end;
  if (!db->readonly) {
    uint64_t upto = res.nonzero_end > end ? res.nonzero_end : end;
    /* Zero the dropped tail so that none of it can come back later, and
     * make the whole recovered log durable: the header written next seals
     * it. */
    if (res.nonzero_end > end)
      memset(db->base + end, 0, res.nonzero_end - end);
    db->flushed = 0;
    if ((rc = mapkv__flush_to(db, upto)) != 0)
      return rc;
  }
  db->flushed = db->end;
  return 0;
}

/* ---- Open handles ---------------------------------------------------------
 */

static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static const mapkv_t **handles;
static size_t nhandles, caphandles;

static int handle_add(const mapkv_t *db) {
  int rc = 0;
  pthread_mutex_lock(&handles_lock);
  if (nhandles == caphandles) {
    size_t cap = caphandles ? caphandles * 2 : 16;
    const mapkv_t **h = realloc(handles, cap * sizeof *h);
    if (h == NULL)
      rc = mapkv__fail(MAPKV_ENOMEM, "out of memory");
    else {
      handles = h;
      caphandles = cap;
    }
  }
  if (rc == 0)
    handles[nhandles++] = db;
  pthread_mutex_unlock(&handles_lock);
  return rc;
}

/* Removes db; 0 if it was not there. */
static int handle_remove(const mapkv_t *db) {
  int found = 0;
  pthread_mutex_lock(&handles_lock);
  for (size_t i = 0; i < nhandles; i++)
    if (handles[i] == db) {
      handles[i] = handles[--nhandles];
      found = 1;
      break;
    }
  if (nhandles == 0) {
    free(handles);
    handles = NULL;
    caphandles = 0;
  }
  pthread_mutex_unlock(&handles_lock);
  return found;
}

int mapkv__handle_live(const mapkv_t *db) {
  int found = 0;
  pthread_mutex_lock(&handles_lock);
  for (size_t i = 0; i < nhandles && !found; i++)
    found = handles[i] == db;
  pthread_mutex_unlock(&handles_lock);
  return found;
}

static void db_free(mapkv_t *db) {
  if (db == NULL)
    return;
  mmf_free(db->map);
  if (db->fd >= 0)
    mapkv__os.close(db->fd);
  mapkv__index_free(&db->ix);
  free(db->poison);
  free(db->hashes);
  pthread_rwlock_destroy(&db->rw);
  pthread_mutex_destroy(&db->wlock);
  free(db->path);
  free(db);
}

/* Asks for large page-cache folios behind the mapping: gets jump to random
 * records, and with 2 MiB folios mapped by one page-table entry each (the
 * core aligns the reservation) most of them no longer miss the TLB. Advice
 * only; kernels without file-backed huge pages refuse it harmlessly. */
static void advise_huge(mapkv_t *db) {
#ifdef MMF_MADV_HUGEPAGE
  mmf_madvise(db->map, MMF_MADV_HUGEPAGE, 0, NULL);
#else
  (void)db;
#endif
}

/* Both header copies are intact but differ (one written over by a copy
 * of another store's or generation's header, say): the one whose file id
 * verifies the first record of the log belongs to it. */
static void pick_header(const mapkv_t *db, const mapkv__header *b,
                        mapkv__header *h) {
  mapkv__rec r;
  uint64_t avail = db->cap - MAPKV__HDR_PAGE;
  const uint8_t *p = db->base + MAPKV__HDR_PAGE;
  int (*dec_a)(const uint8_t *, uint64_t, uint64_t, int, mapkv__rec *) =
      h->version == 1 ? mapkv__rec_decode_v1 : mapkv__rec_decode;
  int (*dec_b)(const uint8_t *, uint64_t, uint64_t, int, mapkv__rec *) =
      b->version == 1 ? mapkv__rec_decode_v1 : mapkv__rec_decode;
  if (db->cap <= MAPKV__HDR_PAGE)
    return;
  if (dec_a(p, avail, h->file_id, 1, &r) != MAPKV__REC_OK &&
      dec_b(p, avail, b->file_id, 1, &r) == MAPKV__REC_OK)
    *h = *b;
}

/* The limits a handle enforces: the store's own (recorded at creation),
 * or less if the caller asks for less. */
static void apply_limits(mapkv_t *db) {
  mapkv_options *o = &db->opts;
  uint32_t k = db->hdr.max_key ? db->hdr.max_key : MAPKV_DEFAULT_KEY_MAX;
  uint32_t v = db->hdr.max_value ? db->hdr.max_value : MAPKV_DEFAULT_VALUE_MAX;
  if (o->max_key_size == 0 || o->max_key_size > k)
    o->max_key_size = k;
  if (o->max_value_size == 0 || o->max_value_size > v)
    o->max_value_size = v;
}

int mapkv_open(const char *path, const mapkv_options *opts, mapkv_t **out) {
  mapkv_t *db;
  struct stat st;
  mapkv__header other;
  uint64_t reserve;
  void *base;
  int rc, has_other;

  if (path == NULL || out == NULL)
    return mapkv__fail(MAPKV_EINVAL, "path and out must not be NULL");
  db = calloc(1, sizeof *db);
  if (db == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  db->fd = -1;
  pthread_mutex_init(&db->wlock, NULL);
  {
    /* Readers come and go all the time; the writer must not starve. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&db->rw, &attr);
    atomic_init(&db->version, 0);
    pthread_rwlockattr_destroy(&attr);
  }
  if (opts != NULL)
    rc = copy_options(&db->opts, opts);
  else
    rc = mapkv_options_init_size(&db->opts, sizeof db->opts);
  if (rc != 0 || (rc = check_options(&db->opts)) != 0)
    goto fail;
  db->readonly = (db->opts.flags & MAPKV_RDONLY) != 0;
  db->page = (uint64_t)mmf_pagesize();
  /* A symbolic link names the store it points at: every later operation
   * (compaction's rename, the inode checks) works on that file, in its own
   * directory. */
  if ((rc = mapkv__os_resolve(path, &db->path)) != 0) {
    rc = mapkv__fail(rc, "%s: %s", path, strerror(-rc));
    goto fail;
  }
  if ((rc = open_locked(db)) != 0)
    goto fail;
  if (mapkv__os.fstat(db->fd, &st) != 0) {
    rc = mapkv__fail_errno("fstat");
    goto fail;
  }
  if (st.st_size == 0) {
    rc = mapkv__fail(MAPKV_ENOTDB, "%s is empty, not a mapkv store", path);
    goto fail;
  }
  if ((uint64_t)st.st_size > MAPKV_FILE_MAX) {
    rc = mapkv__fail(MAPKV_ENOTDB, "%s is larger than any mapkv store", path);
    goto fail;
  }
  db->cap = (uint64_t)st.st_size;
  /* A writer reserves room to grow in place; a reader never grows. */
  reserve = db->readonly ? db->cap : db->opts.reserve;
  if (!db->readonly && reserve < 2 * db->cap)
    reserve = 2 * db->cap;
  if (reserve > MAPKV_FILE_MAX)
    reserve = MAPKV_FILE_MAX;
  db->reserve = mapkv__page_up(db, reserve);
  rc = mmf_open_reserved(&db->map, db->fd, 0, MMF_MAP_SHARED,
                         MMF_PROT_READ | MMF_PROT_WRITE,
                         db->readonly ? MMF_ACCESS_READ : MMF_ACCESS_WRITE, 0,
                         1, (int64_t)db->reserve);
  if (rc != 0) {
    rc = mapkv__fail_mmf(rc, "mapping the store");
    goto fail;
  }
  mmf_data(db->map, &base, NULL);
  db->base = base;
  advise_huge(db);
  if ((rc = mapkv__header_decode(db->base, db->cap, &db->hdr, &other,
                                 &has_other)) != 0)
    goto fail;
  if (has_other)
    pick_header(db, &other, &db->hdr);
  db->rec_head = mapkv__rec_head(db->hdr.version);
  if (db->hdr.version < MAPKV_FORMAT_VERSION && !db->readonly) {
    rc = mapkv__fail(MAPKV_EVERSION,
                     "%s has format version %u, which this library reads but "
                     "no longer writes: open it read-only, or convert it "
                     "with `mapkv upgrade` (mapkv_recover())",
                     path, (unsigned)db->hdr.version);
    goto fail;
  }
  apply_limits(db);
  if (db->opts.flush_hook != NULL)
    mmf_set_flush_hook(db->map, db->opts.flush_hook, db->opts.flush_hook_ctx);
  if ((rc = recover(db)) != 0)
    goto fail;
  if (!db->readonly) {
    /* From here on the file is being modified: clear the clean flag, and
     * make that durable before any record is written. */
    if ((rc = mapkv__write_header(db, 0)) != 0)
      goto fail;
    mapkv__compact_cleanup(db);      /* a compaction a crash interrupted */
    mapkv__os_clean_stale(db->path); /* ... or a create or a recovery */
  }
  if ((rc = handle_add(db)) != 0)
    goto fail;
  *out = db;
  return 0;
fail:
  db_free(db);
  return rc;
}

int mapkv_close(mapkv_t *db) {
  int rc = 0;
  if (db == NULL)
    return 0;
  if (!mapkv__handle_live(db))
    return mapkv__fail(MAPKV_EINVAL, "not an open handle (closed already?)");
  if (atomic_load(&db->children) > 0)
    return mapkv__fail(MAPKV_EBUSY,
                       "%u batch(es) or cursor(s) of this handle are still "
                       "open: end them first; the handle stays open",
                       (unsigned)atomic_load(&db->children));
  handle_remove(db);
  if (!db->readonly) {
    rc = mapkv__flush_to(db, db->end);
    /* Damage still in the file stays below the data end, where the next
     * open knows it for damage (not a tail) again. */
    if (rc == 0)
      rc = mapkv__write_header(db, 1);
    if (rc == 0)
      rc = mapkv__check_path(db);
  }
  db_free(db);
  return rc;
}

/* ---- Writing
 * ---------------------------------------------------------------------- */

/* One operation of a commit. */
typedef struct op {
  uint8_t type;
  uint32_t klen, vlen;
  const void *key, *val;
} op;

static int check_kv(const mapkv_t *db, const void *key, size_t klen,
                    const void *val, size_t vlen) {
  if ((key == NULL && klen > 0) || (val == NULL && vlen > 0))
    return mapkv__fail(MAPKV_EINVAL, "NULL key or value with nonzero length");
  if (klen > db->opts.max_key_size)
    return mapkv__fail(MAPKV_EKEYSIZE,
                       "key of %zu bytes exceeds the limit of %u", klen,
                       db->opts.max_key_size);
  if (vlen > db->opts.max_value_size)
    return mapkv__fail(MAPKV_EVALSIZE,
                       "value of %zu bytes exceeds the limit of %u", vlen,
                       db->opts.max_value_size);
  return 0;
}

static int check_writable(const mapkv_t *db) {
  if (db->readonly)
    return mapkv__fail(MAPKV_EREADONLY, "%s is open read-only", db->path);
  return 0;
}

/* Makes room for `need` more bytes after end. Caller holds wlock. */
static int ensure_room(mapkv_t *db, uint64_t need) {
  uint64_t want = db->end + need, newcap, grow, least;
  int rc;
  if (want <= db->cap)
    return 0;
  if (want > MAPKV_FILE_MAX)
    return mapkv__fail(MAPKV_EFULL, "store would exceed %llu bytes",
                       (unsigned long long)MAPKV_FILE_MAX);
  least = mapkv__page_up(db, want);
  if (least > db->reserve)
    return mapkv__fail(MAPKV_EFULL,
                       "store needs %llu bytes, beyond its %llu-byte "
                       "address reservation (reopen with a larger reserve)",
                       (unsigned long long)least,
                       (unsigned long long)db->reserve);
  /* The first growth makes the file initial_size; later ones add a
   * sixteenth of the size (at least growth_step). */
  if (db->cap < db->opts.initial_size) {
    newcap = db->opts.initial_size;
  } else {
    grow = db->cap / GROWTH_DIV > db->opts.growth_step ? db->cap / GROWTH_DIV
                                                       : db->opts.growth_step;
    newcap = db->cap + grow;
  }
  newcap = mapkv__page_up(db, newcap < want ? want : newcap);
  if (newcap > GROWTH_ALIGN)
    newcap = (newcap + GROWTH_ALIGN - 1) & ~(GROWTH_ALIGN - 1);
  if (newcap > db->reserve)
    newcap = db->reserve;
  /* Blocks first: a full disk is an error now, not a SIGBUS later. When
   * the full step does not fit on the disk, what this write needs may. */
  rc = mapkv__os.reserve(db->fd, (off_t)db->cap, (off_t)(newcap - db->cap));
  if (rc != 0 && errno == ENOSPC && newcap > least) {
    newcap = least;
    rc = mapkv__os.reserve(db->fd, (off_t)db->cap, (off_t)(newcap - db->cap));
  }
  if (rc != 0)
    return mapkv__fail_errno("growing the store file");
  /* Readers never touch the mapping core, but cursors search through it:
   * keep them out while its length changes. The base does not move. */
  pthread_rwlock_wrlock(&db->rw);
  rc = mmf_resize(db->map, (int64_t)newcap);
  if (rc == 0) {
    db->cap = newcap;
    advise_huge(db);
  }
  pthread_rwlock_unlock(&db->rw);
  if (rc != 0)
    return mapkv__fail_mmf(rc, "growing the store file");
  return 0;
}

/* Writes ops as one batch. Caller holds wlock and has checked the ops. */
static int commit_ops(mapkv_t *db, const op *ops, size_t n) {
  uint64_t total = 0, at, seq, hash1 = 0, prev1 = 0;
  uint64_t *hashes = NULL;
  uint8_t cval[8] = {0};
  mapkv__probe p1;
  int rc;

  for (size_t i = 0; i < n; i++)
    total += MAPKV__REC_OVERHEAD + (uint64_t)ops[i].klen + ops[i].vlen;
  if (n > 1)
    total += MAPKV__REC_OVERHEAD + sizeof cval;
  if (db->seq + n + 1 > MAPKV__SEQ_MAX)
    return mapkv__fail(MAPKV_EFULL, "sequence numbers exhausted");
  if ((rc = ensure_room(db, total)) != 0)
    return rc;
  /* Room in the index before anything is written, so that applying the
   * batch below cannot fail half-way. */
  if (db->ix.count + n > db->ix.limit) { /* only writers change these */
    pthread_rwlock_wrlock(&db->rw);
    rc = mapkv__index_reserve(&db->ix, n);
    pthread_rwlock_unlock(&db->rw);
    if (rc != 0)
      return mapkv__fail(MAPKV_ENOMEM, "out of memory growing the index");
  }

  /* Every key's hash first, so that each index slot can be prefetched a
   * few operations before it is needed (a large batch misses the cache on
   * almost every slot). */
  if (n > 1 && n > db->nhashes) {
    uint64_t *h = realloc(db->hashes, n * sizeof *h);
    if (h != NULL) {
      db->hashes = h;
      db->nhashes = n;
    }
  }
  if (n > 1 && n <= db->nhashes) {
    hashes = db->hashes;
    for (size_t i = 0; i < n; i++)
      hashes[i] = mapkv__index_hash(ops[i].key, ops[i].klen);
  }

  /* Each record names the key's newest record before this batch (prev):
   * the index as it stands, since it changes only after the flush. */
  at = db->end;
  seq = db->seq;
  for (size_t i = 0; i < n; i++) {
    uint8_t flags =
        (uint8_t)((i == 0 ? MAPKV__F_FIRST : 0) | (n == 1 ? MAPKV__F_LAST : 0));
    uint64_t h =
        hashes != NULL ? hashes[i] : mapkv__index_hash(ops[i].key, ops[i].klen);
    mapkv__probe p;
    int damaged = 0;
    uint64_t prev;
    if (hashes != NULL && i + APPLY_AHEAD < n)
      mapkv__index_prefetch(&db->ix, hashes[i + APPLY_AHEAD]);
    prev = mapkv__find(db, ops[i].key, ops[i].klen, h, &p, &damaged);
    if (n == 1) {
      hash1 = h;
      prev1 = prev;
      p1 = p;
    }
    at += mapkv__rec_encode(db->base + at, ops[i].type, flags, ++seq, prev,
                            ops[i].key, ops[i].klen, ops[i].val, ops[i].vlen,
                            db->hdr.file_id);
  }
  if (n > 1) {
    mapkv__put_le(cval, n, 4);
    at +=
        mapkv__rec_encode(db->base + at, MAPKV__T_COMMIT, MAPKV__F_LAST, ++seq,
                          0, NULL, 0, cval, sizeof cval, db->hdr.file_id);
  }
  if (db->opts.sync_mode == MAPKV_SYNC_COMMIT &&
      (rc = mapkv__flush_to(db, at)) != 0) {
    memset(db->base + db->end, 0, at - db->end);
    return rc;
  }

  /* Readers are not excluded: they see the index change through the
   * version (store.h) and retry, so the batch is visible all at once. */
  mapkv__write_begin(db);
  if (n == 1) {
    /* The probe of the lookup above is still valid: only this writer
     * changes the index, and the table did not grow since. */
    uint64_t off = db->end;
    if (prev1 != 0)
      db->live_bytes -= live_size_at(db, prev1);
    if (ops[0].type == MAPKV__T_PUT) {
      if (prev1 != 0)
        mapkv__index_replace(&db->ix, &p1, off);
      else
        rc = mapkv__index_insert(&db->ix, hash1, off);
      db->live_bytes += at - off;
    } else if (prev1 != 0) {
      mapkv__index_remove(&db->ix, &p1);
    }
    assert(rc == 0); /* room was reserved */
    if (mapkv__test_pause != NULL)
      mapkv__test_pause();
  } else {
    size_t i = 0;
    for (uint64_t off = db->end; off < at; i++) {
      mapkv__rec r;
      int d = mapkv__decode(db, off, at - off, 0, &r);
      assert(d == MAPKV__REC_OK && i <= n); /* written just above */
      (void)d;
      if (hashes != NULL && i + APPLY_AHEAD < n)
        mapkv__index_prefetch(&db->ix, hashes[i + APPLY_AHEAD]);
      if (i < n)
        rc = apply_hashed(db, off, &r,
                          hashes != NULL ? hashes[i]
                                         : mapkv__index_hash(r.key, r.klen));
      assert(rc == 0); /* room was reserved */
      off += r.size;
      if (mapkv__test_pause != NULL)
        mapkv__test_pause();
    }
  }
  __atomic_store_n(&db->end, at, __ATOMIC_RELEASE);
  db->seq = seq;
  mapkv__write_end(db);
  return 0;
}

int mapkv_put(mapkv_t *db, const void *key, size_t klen, const void *val,
              size_t vlen) {
  op o = {MAPKV__T_PUT, (uint32_t)klen, (uint32_t)vlen, key, val};
  int rc;
  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  if ((rc = check_writable(db)) != 0 ||
      (rc = check_kv(db, key, klen, val, vlen)) != 0)
    return rc;
  pthread_mutex_lock(&db->wlock);
  rc = commit_ops(db, &o, 1);
  pthread_mutex_unlock(&db->wlock);
  return rc;
}

int mapkv_del(mapkv_t *db, const void *key, size_t klen) {
  op o = {MAPKV__T_DEL, (uint32_t)klen, 0, key, NULL};
  mapkv__probe p;
  int rc, damaged = 0;
  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  if ((rc = check_writable(db)) != 0 ||
      (rc = check_kv(db, key, klen, NULL, 0)) != 0)
    return rc;
  pthread_mutex_lock(&db->wlock);
  /* Only writers change the index, and we are the writer. */
  if (mapkv__find(db, key, klen, mapkv__index_hash(key, klen), &p, &damaged) ==
      0)
    rc = mapkv__fail_static(MAPKV_NOTFOUND, "key not found");
  else
    rc = commit_ops(db, &o, 1);
  pthread_mutex_unlock(&db->wlock);
  return rc;
}

int mapkv_sync(mapkv_t *db) {
  int rc;
  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  if ((rc = check_writable(db)) != 0)
    return rc;
  pthread_mutex_lock(&db->wlock);
  rc = mapkv__flush_to(db, db->end);
  if (rc == 0)
    rc = mapkv__check_path(db);
  pthread_mutex_unlock(&db->wlock);
  return rc;
}

/* ---- Reading
 * ------------------------------------------------------------------------ */

/* Finds key and checks its record. Caller holds rw for reading. On success
 * *val and *vlen describe the value inside the mapping. */
static int lookup_hashed(mapkv_t *db, const void *key, size_t klen,
                         uint64_t hash, const uint8_t **val, size_t *vlen) {
  mapkv__probe p;
  mapkv__rec r;
  uint64_t off, end;
  int damaged = 0;
  off = mapkv__find(db, key, klen, hash, &p, &damaged);
  end = mapkv__end(db);
  /* A slot of a commit still being applied may point past the end this
   * reader saw; the caller's retry then finds the commit done. */
  if (off == 0 || off >= end)
    return mapkv__fail_static(MAPKV_NOTFOUND, "key not found");
  if (damaged || mapkv__decode(db, off, end - off, 1, &r) != MAPKV__REC_OK) {
    atomic_fetch_add(&db->checksum_failures, 1);
    return mapkv__fail(MAPKV_ECORRUPT,
                       "record at offset %llu: checksum mismatch",
                       (unsigned long long)off);
  }
  /* Only a marked slot names a DEL record. */
  if ((db->npoison > 0 && mapkv__poisoned(db, off)) || r.type != MAPKV__T_PUT) {
    atomic_fetch_add(&db->checksum_failures, 1);
    return mapkv__fail(MAPKV_ECORRUPT,
                       "the newest batch of this key (at offset %llu) was "
                       "lost to damage",
                       (unsigned long long)off);
  }
  *val = r.val;
  *vlen = r.vlen;
  return 0;
}

static int lookup(mapkv_t *db, const void *key, size_t klen,
                  const uint8_t **val, size_t *vlen) {
  if (key == NULL && klen > 0)
    return mapkv__fail(MAPKV_EINVAL, "NULL key with nonzero length");
  return lookup_hashed(db, key, klen, mapkv__index_hash(key, klen), val, vlen);
}

/* lookup() retried until no commit overlapped it. Caller holds rw for
 * reading. */
static int lookup_stable(mapkv_t *db, const void *key, size_t klen,
                         const uint8_t **val, size_t *vlen) {
  uint64_t ver;
  int rc;
  do {
    ver = mapkv__read_begin(db);
    rc = lookup(db, key, klen, val, vlen);
  } while (mapkv__read_retry(db, ver));
  return rc;
}

int mapkv_get(mapkv_t *db, const void *key, size_t klen, void *buf, size_t cap,
              size_t *vlen) {
  const uint8_t *v;
  size_t n;
  int rc;
  if (db == NULL || (buf == NULL && cap > 0))
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or buffer");
  pthread_rwlock_rdlock(&db->rw);
  rc = lookup_stable(db, key, klen, &v, &n);
  if (rc == 0) {
    if (n > cap)
      rc = mapkv__fail(MAPKV_EBUFSMALL, "value of %zu bytes, buffer of %zu", n,
                       cap);
    else if (n > 0)
      memcpy(buf, v, n);
    if (vlen != NULL)
      *vlen = n;
  }
  pthread_rwlock_unlock(&db->rw);
  return rc;
}

int mapkv_get_view(mapkv_t *db, const void *key, size_t klen, const void **val,
                   size_t *vlen) {
  const uint8_t *v;
  size_t n;
  int rc;
  if (db == NULL || val == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or output");
  pthread_rwlock_rdlock(&db->rw);
  rc = lookup_stable(db, key, klen, &v, &n);
  pthread_rwlock_unlock(&db->rw);
  if (rc == 0) {
    *val = v;
    if (vlen != NULL)
      *vlen = n;
  }
  return rc;
}

/* Keys per group of mapkv_get_many(): enough misses in flight to cover the
 * memory latency, few enough that the group's lines stay in L1. */
#define MANY_GROUP 16

/* Bytes of a candidate record fetched ahead: header, key and the start of
 * the value of a small record. */
#define MANY_AHEAD 192

int mapkv_get_many(mapkv_t *db, size_t n, const void *const *keys,
                   const size_t *klens, const void **vals, size_t *vlens,
                   int *rcs) {
  uint64_t hash[MANY_GROUP];
  if (n == 0)
    return 0;
  if (db == NULL || keys == NULL || klens == NULL || vals == NULL ||
      rcs == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or array");
  for (size_t i = 0; i < n; i++)
    if (keys[i] == NULL && klens[i] > 0)
      return mapkv__fail(MAPKV_EINVAL, "key %zu: NULL with nonzero length", i);
  for (size_t g = 0; g < n; g += MANY_GROUP) {
    size_t m = n - g < MANY_GROUP ? n - g : MANY_GROUP;
    uint64_t ver;
    /* Per group, so that a long call does not hold off index growth. */
    pthread_rwlock_rdlock(&db->rw);
    /* Stage 1: every key's home slot. */
    for (size_t j = 0; j < m; j++) {
      hash[j] = mapkv__index_hash(keys[g + j], klens[g + j]);
      mapkv__index_prefetch(&db->ix, hash[j]);
    }
    do {
      uint64_t end;
      ver = mapkv__read_begin(db);
      end = mapkv__end(db);
      /* Stage 2: the first candidate record of every key (its slot is in
       * cache by now); what it holds is checked in stage 3. */
      for (size_t j = 0; j < m; j++) {
        mapkv__probe p;
        uint64_t off;
        mapkv__index_probe_start(&db->ix, hash[j], &p);
        off = mapkv__index_probe_next(&db->ix, &p);
        /* A hint only (no fault), kept inside the log all the same. */
        for (uint64_t b = 0; off != 0 && b < MANY_AHEAD && off + b < end;
             b += 64)
          __builtin_prefetch(db->base + off + b);
      }
      /* Stage 3: the lookups proper. */
      for (size_t j = 0; j < m; j++) {
        const uint8_t *v = NULL;
        size_t len = 0;
        int rc =
            lookup_hashed(db, keys[g + j], klens[g + j], hash[j], &v, &len);
        rcs[g + j] = rc;
        vals[g + j] = rc == 0 ? v : NULL;
        if (vlens != NULL)
          vlens[g + j] = rc == 0 ? len : 0;
      }
    } while (mapkv__read_retry(db, ver));
    pthread_rwlock_unlock(&db->rw);
  }
  return 0;
}

int mapkv_exists(mapkv_t *db, const void *key, size_t klen) {
  mapkv__probe p;
  uint64_t off, ver, hash;
  int damaged;
  if (db == NULL || (key == NULL && klen > 0))
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or key");
  hash = mapkv__index_hash(key, klen);
  pthread_rwlock_rdlock(&db->rw);
  do {
    ver = mapkv__read_begin(db);
    damaged = 0;
    off = mapkv__find(db, key, klen, hash, &p, &damaged);
  } while (mapkv__read_retry(db, ver));
  pthread_rwlock_unlock(&db->rw);
  if (damaged || (off != 0 && db->npoison > 0 && mapkv__poisoned(db, off)))
    return mapkv__fail(MAPKV_ECORRUPT,
                       "record at offset %llu: damaged, or its batch lost to "
                       "damage",
                       (unsigned long long)off);
  return off != 0;
}

/* ---- Batches
 * ----------------------------------------------------------------------------
 */

struct mapkv_batch {
  mapkv_t *db;
  op *ops;
  size_t n, cap;
  uint8_t *arena; /* copies of keys and values */
  size_t used, size;
};

int mapkv_batch_begin(mapkv_t *db, mapkv_batch_t **out) {
  mapkv_batch_t *b;
  int rc;
  if (db == NULL || out == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or output");
  if (!mapkv__handle_live(db))
    return mapkv__fail(MAPKV_EINVAL, "not an open handle (closed already?)");
  if ((rc = check_writable(db)) != 0)
    return rc;
  b = calloc(1, sizeof *b);
  if (b == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  b->db = db;
  atomic_fetch_add(&db->children, 1);
  *out = b;
  return 0;
}

static int batch_add(mapkv_batch_t *b, uint8_t type, const void *key,
                     size_t klen, const void *val, size_t vlen) {
  size_t need;
  op *o;
  int rc;
  if (b == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL batch");
  if ((rc = check_kv(b->db, key, klen, val, vlen)) != 0)
    return rc;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    op *ops = realloc(b->ops, cap * sizeof *ops);
    if (ops == NULL)
      return mapkv__fail(MAPKV_ENOMEM, "out of memory");
    b->ops = ops;
    b->cap = cap;
  }
  need = klen + vlen;
  if (b->size - b->used < need) {
    size_t size = b->size ? b->size : 4096;
    uint8_t *a;
    while (size - b->used < need)
      size *= 2;
    a = realloc(b->arena, size);
    if (a == NULL)
      return mapkv__fail(MAPKV_ENOMEM, "out of memory");
    b->arena = a;
    b->size = size;
  }
  /* Keys and values are kept as arena offsets until commit, because the
   * arena may move as it grows. */
  o = &b->ops[b->n++];
  o->type = type;
  o->klen = (uint32_t)klen;
  o->vlen = (uint32_t)vlen;
  o->key = (const void *)(uintptr_t)b->used;
  if (klen > 0)
    memcpy(b->arena + b->used, key, klen);
  b->used += klen;
  o->val = (const void *)(uintptr_t)b->used;
  if (vlen > 0)
    memcpy(b->arena + b->used, val, vlen);
  b->used += vlen;
  return 0;
}

int mapkv_batch_put(mapkv_batch_t *b, const void *key, size_t klen,
                    const void *val, size_t vlen) {
  return batch_add(b, MAPKV__T_PUT, key, klen, val, vlen);
}

int mapkv_batch_del(mapkv_batch_t *b, const void *key, size_t klen) {
  return batch_add(b, MAPKV__T_DEL, key, klen, NULL, 0);
}

void mapkv_batch_abort(mapkv_batch_t *b) {
  if (b == NULL)
    return;
  atomic_fetch_sub(&b->db->children, 1);
  free(b->ops);
  free(b->arena);
  free(b);
}

int mapkv_batch_commit(mapkv_batch_t *b) {
  mapkv_t *db;
  int rc = 0;
  if (b == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL batch");
  db = b->db;
  for (size_t i = 0; i < b->n; i++) {
    /* All keys and values empty: no arena, nothing to point at. */
    b->ops[i].key = b->arena ? b->arena + (uintptr_t)b->ops[i].key : NULL;
    b->ops[i].val = b->arena ? b->arena + (uintptr_t)b->ops[i].val : NULL;
  }
  if (b->n > 0) {
    pthread_mutex_lock(&db->wlock);
    rc = commit_ops(db, b->ops, b->n);
    pthread_mutex_unlock(&db->wlock);
  }
  mapkv_batch_abort(b);
  return rc;
}

/* ---- Figures and verification
 * ------------------------------------------------------------ */

int mapkv_stat_size(mapkv_t *db, mapkv_stats *out, size_t size) {
  mapkv_stats full, *st = &full;
  if (db == NULL || out == NULL || size < STATS_MIN_SIZE)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or output, or a size "
                                     "smaller than any mapkv_stats");
  pthread_mutex_lock(&db->wlock); /* the figures of one commit boundary */
  pthread_rwlock_rdlock(&db->rw);
  *st = db->rec;
  st->format_version = db->hdr.version;
  st->records = db->ix.count;
  st->live_bytes = db->live_bytes;
  st->dead_bytes = db->end - MAPKV__HDR_PAGE - db->live_bytes;
  st->data_end = db->end;
  st->file_size = db->cap;
  st->mapped_size = db->cap;
  st->reserved_size = db->reserve;
  st->index_slots = db->ix.mask + 1;
  st->index_bytes = mapkv__index_bytes(&db->ix);
  st->last_seq = db->seq;
  st->generation = db->hdr.generation;
  st->checksum_failures = atomic_load(&db->checksum_failures);
  st->max_key_size = db->opts.max_key_size;
  st->max_value_size = db->opts.max_value_size;
  pthread_rwlock_unlock(&db->rw);
  pthread_mutex_unlock(&db->wlock);
  if (size > sizeof full)
    memset((char *)out + sizeof full, 0, size - sizeof full);
  memcpy(out, &full, size < sizeof full ? size : sizeof full);
  return 0;
}

typedef struct verify_ctx {
  mapkv_damage_fn report;
  void *ctx;
  uint64_t spans;
} verify_ctx;

static int verify_damage(void *ctx, uint64_t off, uint64_t len,
                         const char *what) {
  verify_ctx *v = ctx;
  v->spans++;
  if (v->report != NULL)
    v->report(v->ctx, off, len, what);
  return 0;
}

int mapkv_verify(mapkv_t *db, mapkv_damage_fn report, void *ctx,
                 uint64_t *damaged) {
  verify_ctx v = {report, ctx, 0};
  mapkv__scan_cb cb = {NULL, verify_damage, &v};
  mapkv__scan_res res;
  mapkv__census_res tail;
  uint64_t first = 0, from;
  int rc;
  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  pthread_mutex_lock(&db->wlock);
  /* The whole file, not only the data: what lies after it is either an
   * interrupted write (which the next writer drops) or damage. */
  rc = mapkv__scan(db, db->cap, &cb, &res);
  if (rc == 0 && res.damaged > 0)
    first = res.first_damage;
  if (rc == 0 && res.end < db->end) {
    /* Damage at the very end of the data (nothing intact follows). */
    verify_damage(&v, res.end, db->end - res.end,
                  "damaged records at the end of the data");
    if (first == 0)
      first = res.end;
  }
  from = res.end > db->end ? res.end : db->end;
  if (rc == 0 && res.nonzero_end > from) {
    mapkv__census(db, from, res.nonzero_end, 0, NULL, NULL, &tail);
    if (mapkv__tail_suspect(&tail)) {
      verify_damage(&v, from, res.nonzero_end - from,
                    "records that fail their checksums after the data "
                    "(not an interrupted write)");
      if (first == 0)
        first = from;
    }
  }
  if (rc == 0 && db->rec.truncated_bytes > 0) {
    verify_damage(&v, db->cap, db->rec.truncated_bytes,
                  "the file ends before the data its header records "
                  "(truncated)");
    if (first == 0)
      first = db->cap;
  }
  pthread_mutex_unlock(&db->wlock);
  if (rc != 0)
    return rc;
  if (damaged != NULL)
    *damaged = v.spans;
  if (v.spans > 0)
    return mapkv__fail(MAPKV_ECORRUPT,
                       "%llu damaged span(s), the first at offset %llu",
                       (unsigned long long)v.spans, (unsigned long long)first);
  return 0;
}
