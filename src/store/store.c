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
#include <errno.h>
#include <fcntl.h>
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

void mapkv_options_init(mapkv_options *o) {
  memset(o, 0, sizeof *o);
  o->sync_mode = MAPKV_SYNC_COMMIT;
  o->initial_size = DEFAULT_INITIAL;
  o->growth_step = DEFAULT_STEP;
  o->max_key_size = MAPKV_DEFAULT_KEY_MAX;
  o->max_value_size = MAPKV_DEFAULT_VALUE_MAX;
  o->reserve = DEFAULT_RESERVE;
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
  if (o->max_key_size == 0)
    o->max_key_size = MAPKV_DEFAULT_KEY_MAX;
  if (o->max_value_size == 0)
    o->max_value_size = MAPKV_DEFAULT_VALUE_MAX;
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
  if (o->expected_keys > MAPKV_FILE_MAX / MAPKV__REC_OVERHEAD)
    return mapkv__fail(
        MAPKV_EINVAL, "expected_keys must not exceed %llu",
        (unsigned long long)(MAPKV_FILE_MAX / MAPKV__REC_OVERHEAD));
  return 0;
}

/* ---- Lookup and index maintenance ------------------------------------------
 */

uint64_t mapkv__find(const mapkv_t *db, const void *key, size_t klen,
                     uint64_t hash, mapkv__probe *p) {
  uint64_t off;
  mapkv__index_probe_start(&db->ix, hash, p);
  while ((off = mapkv__index_probe_next(&db->ix, p)) != 0) {
    const uint8_t *r = db->base + off;
    if (mapkv__get_le(r + 4, 2) == klen &&
        (klen == 0 || memcmp(r + MAPKV__REC_HEAD, key, klen) == 0))
      return off;
  }
  return 0;
}

static uint64_t rec_size_at(const mapkv_t *db, uint64_t off) {
  const uint8_t *r = db->base + off;
  return MAPKV__REC_OVERHEAD + mapkv__get_le(r + 4, 2) +
         mapkv__get_le(r + 6, 4);
}

/* mapkv__apply() with the key's hash already computed. */
static int apply_hashed(mapkv_t *db, uint64_t off, const mapkv__rec *r,
                        uint64_t hash) {
  mapkv__probe p;
  uint64_t old;
  if (r->type == MAPKV__T_COMMIT)
    return 0;
  old = mapkv__find(db, r->key, r->klen, hash, &p);
  if (old != 0) {
    db->live_bytes -= rec_size_at(db, old);
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

int mapkv__apply(mapkv_t *db, uint64_t off, const mapkv__rec *r) {
  return apply_hashed(db, off, r, mapkv__index_hash(r->key, r->klen));
}

void mapkv__hash_records(const uint8_t *base, const uint64_t *offs,
                         uint64_t *hashes, size_t n) {
  /* Start every miss before waiting on the first. */
  for (size_t i = 0; i < n; i++)
    __builtin_prefetch(base + offs[i]);
  for (size_t i = 0; i < n; i++) {
    const uint8_t *r = base + offs[i];
    hashes[i] =
        mapkv__index_hash(r + MAPKV__REC_HEAD, (size_t)mapkv__get_le(r + 4, 2));
  }
}

static void hashes_at(void *ctx, const uint64_t *offs, uint64_t *hashes,
                      size_t n) {
  const mapkv_t *db = ctx;
  mapkv__hash_records(db->base, offs, hashes, n);
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
static int create_file(const char *path, uint64_t page) {
  uint8_t *buf;
  mapkv__header h;
  char *tmp;
  size_t n = strlen(path);
  int fd, rc = 0;

  memset(&h, 0, sizeof h);
  h.version = MAPKV_FORMAT_VERSION;
  h.page_size = (uint32_t)page;
  h.flags = MAPKV__HF_CLEAN;
  h.data_end = MAPKV__HDR_PAGE;
  h.created = (uint64_t)time(NULL);
  do {
    if (mapkv__os.random(&h.file_id, sizeof h.file_id) != 0)
      return mapkv__fail_errno("getrandom");
  } while (h.file_id == 0);

  tmp = malloc(n + 64);
  buf = calloc(1, MAPKV__HDR_PAGE);
  if (tmp == NULL || buf == NULL) {
    free(tmp);
    free(buf);
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  }
  /* A name of our own: creators racing on one path must not meet here. */
  snprintf(tmp, n + 64, "%s.creating.%ld.%016llx", path, (long)getpid(),
           (unsigned long long)h.file_id);
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

/* Opens path and, for a writer, takes the exclusive lock on the file that
 * the path names now (a compaction may rename a new file over it between
 * our open and our lock). A writer whose lock another process holds tries
 * again until opts.lock_timeout_ms have passed. */
static int open_locked(mapkv_t *db) {
  unsigned flags = db->opts.flags;
  uint32_t timeout_ms = db->readonly ? 0 : db->opts.lock_timeout_ms;
  uint64_t deadline = 0, pause_ms = 1;
  if (timeout_ms > 0)
    deadline = monotonic_ns() + (uint64_t)timeout_ms * 1000000u;
  for (int attempt = 0; attempt < 100; attempt++) {
    struct stat a, b;
    int fd = mapkv__os.open(db->path, db->readonly ? O_RDONLY : O_RDWR, 0);
    if (fd < 0) {
      if (errno == ENOENT && (flags & MAPKV_CREATE) && !db->readonly) {
        int rc = create_file(db->path, db->page);
        if (rc != 0)
          return rc;
        continue;
      }
      return mapkv__fail_errno(db->path);
    }
    if (db->readonly) {
      db->fd = fd;
      return 0;
    }
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
      mapkv__os.close(fd);
      if (e == EWOULDBLOCK && timeout_ms > 0)
        return mapkv__fail(MAPKV_ELOCKED,
                           "%s is open for writing by another process "
                           "(waited %lu ms for it)",
                           db->path, (unsigned long)timeout_ms);
      if (e == EWOULDBLOCK)
        return mapkv__fail(MAPKV_ELOCKED,
                           "%s is open for writing by another process",
                           db->path);
      errno = e;
      return mapkv__fail_errno("flock");
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
  q->head = (q->head + 1) % APPLY_QUEUE;
  q->n--;
  /* Decoded (and bounds-checked) by the scan already. */
  if (mapkv__rec_decode(db->base + off, db->cap - off, 0, 0, &r) !=
      MAPKV__REC_OK)
    return mapkv__fail(MAPKV_ECORRUPT, "record at offset %llu changed",
                       (unsigned long long)off);
  return apply_hashed(db, off, &r, hash);
}

static int queue_drain(apply_queue *q) {
  int rc = 0;
  while (q->n > 0 && rc == 0)
    rc = queue_pop(q);
  return rc;
}

static int apply_batch(void *ctx, const uint64_t *offs, size_t n) {
  apply_queue *q = ctx;
  mapkv_t *db = q->db;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = db->base + offs[i];
    uint64_t klen = mapkv__get_le(p + 4, 2), hash;
    unsigned slot;
    int rc;
    if (p[2] == MAPKV__T_COMMIT)
      continue;
    if (q->n == APPLY_QUEUE && (rc = queue_pop(q)) != 0)
      return rc;
    hash = mapkv__index_hash(p + MAPKV__REC_HEAD, (size_t)klen);
    mapkv__index_prefetch(&db->ix, hash);
    slot = (q->head + q->n) % APPLY_QUEUE;
    q->off[slot] = offs[i];
    q->hash[slot] = hash;
    q->n++;
  }
  return 0;
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

static int recover(mapkv_t *db) {
  apply_queue q = {db, {0}, {0}, 0, 0};
  mapkv__scan_cb cb = {apply_batch, NULL, &q};
  mapkv__scan_res res;
  int clean =
      !(db->opts.flags & MAPKV_VERIFY) && (db->hdr.flags & MAPKV__HF_CLEAN) &&
      db->hdr.data_end >= MAPKV__HDR_PAGE && db->hdr.data_end <= db->cap;
  int rc;

  memset(&db->rec, 0, sizeof db->rec);
  if (clean) {
    /* A clean close: the header knows where the data ends; the walk checks
     * structure and bounds, and gets verify checksums as they read. */
    uint64_t expect = db->hdr.live_records;
    if (expect > db->cap / MAPKV__REC_OVERHEAD)
      expect = 0;
    if ((rc = reset_index(db, expect)) != 0)
      return rc;
    rc = mapkv__scan(db, db->hdr.data_end, 0, &cb, &res);
    if (rc == 0)
      rc = queue_drain(&q);
    if (rc == 0 && res.end == db->hdr.data_end) {
      db->rec.clean_open = 1;
      db->unchecked_end = res.end;
      goto done;
    }
    if (rc != 0 && rc != MAPKV_ECORRUPT)
      return rc;
  }
  q.n = 0;
  db->unchecked_end = MAPKV__HDR_PAGE;
  if ((rc = reset_index(db, 0)) != 0)
    return rc;
  if ((rc = mapkv__scan(db, db->cap, 1, &cb, &res)) != 0 ||
      (rc = queue_drain(&q)) != 0)
    return rc;
done:
  db->end = res.end;
  db->seq = res.last_seq;
  db->rec.recovered_batches = res.batches;
  db->rec.dropped_tail_bytes = res.tail_bytes;
  db->rec.dropped_tail_records = res.tail_records;
  db->rec.damaged_regions = res.damaged;
  db->rec.damaged_bytes = res.damaged_bytes;
  db->rec.first_damage_offset = res.first_damage;
  db->known_damage = res.damaged > 0;
  if (!db->readonly && res.nonzero_end > db->end) {
    /* Zero the dropped tail so that none of it can come back later. */
    memset(db->base + db->end, 0, res.nonzero_end - db->end);
    db->flushed = db->end;
    if ((rc = mapkv__flush_to(db, res.nonzero_end)) != 0)
      return rc;
  }
  db->flushed = db->end;
  return 0;
}

static void db_free(mapkv_t *db) {
  if (db == NULL)
    return;
  mmf_free(db->map);
  if (db->fd >= 0)
    mapkv__os.close(db->fd);
  mapkv__index_free(&db->ix);
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

int mapkv_open(const char *path, const mapkv_options *opts, mapkv_t **out) {
  mapkv_t *db;
  struct stat st;
  uint64_t reserve;
  void *base;
  int rc;

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
    db->opts = *opts;
  else
    mapkv_options_init(&db->opts);
  if ((rc = check_options(&db->opts)) != 0)
    goto fail;
  db->readonly = (db->opts.flags & MAPKV_RDONLY) != 0;
  db->page = (uint64_t)mmf_pagesize();
  db->path = strdup(path);
  if (db->path == NULL) {
    rc = mapkv__fail(MAPKV_ENOMEM, "out of memory");
    goto fail;
  }
  if ((rc = open_locked(db)) != 0)
    goto fail;
  if (mapkv__os.fstat(db->fd, &st) != 0) {
    rc = mapkv__fail_errno("fstat");
    goto fail;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = mapkv__fail(MAPKV_ENOTDB, "%s is not a regular file", path);
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
  if ((rc = mapkv__header_decode(db->base, db->cap, &db->hdr)) != 0)
    goto fail;
  if (db->opts.flush_hook != NULL)
    mmf_set_flush_hook(db->map, db->opts.flush_hook, db->opts.flush_hook_ctx);
  if ((rc = recover(db)) != 0)
    goto fail;
  if (!db->readonly) {
    /* From here on the file is being modified: clear the clean flag, and
     * make that durable before any record is written. */
    if ((rc = mapkv__write_header(db, 0)) != 0)
      goto fail;
    mapkv__compact_cleanup(db); /* a compaction a crash interrupted */
  }
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
  if (!db->readonly) {
    rc = mapkv__flush_to(db, db->end);
    /* With damage still in the file, the next open must not trust the
     * quick walk of a clean close: it checks every checksum instead. */
    if (rc == 0)
      rc = mapkv__write_header(db, !db->known_damage);
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
  uint64_t total = 0, at, seq;
  uint8_t cval[8] = {0};
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

  at = db->end;
  seq = db->seq;
  for (size_t i = 0; i < n; i++) {
    uint8_t flags =
        (uint8_t)((i == 0 ? MAPKV__F_FIRST : 0) | (n == 1 ? MAPKV__F_LAST : 0));
    at += mapkv__rec_encode(db->base + at, ops[i].type, flags, ++seq,
                            ops[i].key, ops[i].klen, ops[i].val, ops[i].vlen,
                            db->hdr.file_id);
  }
  if (n > 1) {
    mapkv__put_le(cval, n, 4);
    at += mapkv__rec_encode(db->base + at, MAPKV__T_COMMIT, MAPKV__F_LAST,
                            ++seq, NULL, 0, cval, sizeof cval, db->hdr.file_id);
  }
  if (db->opts.sync_mode == MAPKV_SYNC_COMMIT &&
      (rc = mapkv__flush_to(db, at)) != 0) {
    memset(db->base + db->end, 0, at - db->end);
    return rc;
  }

  /* Hash every key first, so that each index slot can be prefetched a few
   * operations before it is needed (a large batch misses the cache on
   * almost every slot). */
  if (n > 1 && n > db->nhashes) {
    uint64_t *h = realloc(db->hashes, n * sizeof *h);
    if (h != NULL) {
      db->hashes = h;
      db->nhashes = n;
    }
  }
  if (n > 1 && n <= db->nhashes)
    for (size_t i = 0; i < n; i++)
      db->hashes[i] = mapkv__index_hash(ops[i].key, ops[i].klen);

  /* Readers are not excluded: they see the index change through the
   * version (store.h) and retry, so the batch is visible all at once. */
  mapkv__write_begin(db);
  {
    size_t i = 0;
    for (uint64_t off = db->end; off < at; i++) {
      mapkv__rec r;
      mapkv__rec_decode(db->base + off, at - off, 0, 0, &r);
      if (n > 1 && n <= db->nhashes) {
        if (i + APPLY_AHEAD < n)
          mapkv__index_prefetch(&db->ix, db->hashes[i + APPLY_AHEAD]);
        if (i < n)
          apply_hashed(db, off, &r, db->hashes[i]);
      } else {
        mapkv__apply(db, off, &r); /* cannot fail: room was reserved */
      }
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
  int rc;
  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  if ((rc = check_writable(db)) != 0 ||
      (rc = check_kv(db, key, klen, NULL, 0)) != 0)
    return rc;
  pthread_mutex_lock(&db->wlock);
  /* Only writers change the index, and we are the writer. */
  if (mapkv__find(db, key, klen, mapkv__index_hash(key, klen), &p) == 0)
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
  off = mapkv__find(db, key, klen, hash, &p);
  end = mapkv__end(db);
  /* A slot of a commit still being applied may point past the end this
   * reader saw; the caller's retry then finds the commit done. */
  if (off == 0 || off >= end)
    return mapkv__fail_static(MAPKV_NOTFOUND, "key not found");
  if (mapkv__rec_decode(db->base + off, end - off, db->hdr.file_id, 1, &r) !=
      MAPKV__REC_OK) {
    atomic_fetch_add(&db->checksum_failures, 1);
    return mapkv__fail(MAPKV_ECORRUPT,
                       "record at offset %llu: checksum mismatch",
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
  if (db == NULL || (key == NULL && klen > 0))
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or key");
  hash = mapkv__index_hash(key, klen);
  pthread_rwlock_rdlock(&db->rw);
  do {
    ver = mapkv__read_begin(db);
    off = mapkv__find(db, key, klen, hash, &p);
  } while (mapkv__read_retry(db, ver));
  pthread_rwlock_unlock(&db->rw);
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
  if ((rc = check_writable(db)) != 0)
    return rc;
  b = calloc(1, sizeof *b);
  if (b == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  b->db = db;
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

int mapkv_stat(mapkv_t *db, mapkv_stats *st) {
  if (db == NULL || st == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or output");
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
  pthread_rwlock_unlock(&db->rw);
  pthread_mutex_unlock(&db->wlock);
  return 0;
}

typedef struct verify_ctx {
  mapkv_damage_fn report;
  void *ctx;
  uint64_t spans;
} verify_ctx;

static void verify_damage(void *ctx, uint64_t off, uint64_t len,
                          const char *what) {
  verify_ctx *v = ctx;
  v->spans++;
  if (v->report != NULL)
    v->report(v->ctx, off, len, what);
}

int mapkv_verify(mapkv_t *db, mapkv_damage_fn report, void *ctx,
                 uint64_t *damaged) {
  verify_ctx v = {report, ctx, 0};
  mapkv__scan_cb cb = {NULL, verify_damage, &v};
  mapkv__scan_res res;
  int rc;
  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  pthread_mutex_lock(&db->wlock);
  rc = mapkv__scan(db, db->end, 1, &cb, &res);
  if (rc == 0 && res.end != db->end) {
    /* Damage at the very end of the data (nothing intact follows). */
    verify_damage(&v, res.end, db->end - res.end,
                  "damaged records at the end of the data");
  }
  pthread_mutex_unlock(&db->wlock);
  if (rc != 0)
    return rc;
  if (damaged != NULL)
    *damaged = v.spans;
  if (v.spans > 0)
    return mapkv__fail(
        MAPKV_ECORRUPT,
        "%llu damaged span(s), the first at "
        "offset %llu",
        (unsigned long long)v.spans,
        (unsigned long long)(res.damaged ? res.first_damage : res.end));
  return 0;
}
