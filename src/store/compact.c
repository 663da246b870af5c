/*
 * compact.c — online compaction.
 *
 * Under the writer lock (readers keep working): the live records are copied
 * in file order into DB.compact, a new file with a new file id and the next
 * generation, each as its own batch with fresh sequence numbers; records
 * whose checksum fails are left behind. The new file is flushed whole, locked,
 * renamed over DB and the directory is synced; only then does the handle
 * switch to it (under the reader/writer lock). Until the rename, DB is
 * untouched; after it, DB is the complete new file: a crash leaves one or
 * the other, never neither. A leftover DB.compact is removed by the next
 * writable open or compaction.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "os.h"
#include "store.h"
#include "store_err.h"

static char *compact_path(const char *path) {
  size_t n = strlen(path);
  char *p = malloc(n + sizeof ".compact");
  if (p != NULL) {
    memcpy(p, path, n);
    memcpy(p + n, ".compact", sizeof ".compact");
  }
  return p;
}

void mapkv__compact_cleanup(mapkv_t *db) {
  char *tmp = compact_path(db->path);
  if (tmp != NULL)
    mapkv__os.unlink(tmp);
  free(tmp);
}

/* The new store being written. */
typedef struct target {
  int fd;
  mmf_t *map;
  uint8_t *base;
  uint64_t end, seq, live_bytes;
  mapkv__index ix;
  mapkv__header hdr;
} target;

static void target_hashes_at(void *ctx, const uint64_t *offs, uint64_t *hashes,
                             size_t n) {
  const target *t = ctx;
  mapkv__hash_records(t->base, MAPKV__REC_HEAD, offs, hashes, n);
}

/* Copies every live, intact record of db into t; a live record that fails
 * its checksum stops the copy (MAPKV_ECORRUPT): compaction never drops
 * damage silently. */
static int copy_live(mapkv_t *db, target *t) {
  mapkv__walk w;
  mapkv__rec r;
  uint64_t at, h, failures = atomic_load(&db->checksum_failures);
  mapkv__walk_init(&w, db->end);
  while (mapkv__walk_next(db, &w, &at, &r) == 0) {
    if (r.type != MAPKV__T_PUT)
      continue;
    h = mapkv__index_hash(r.key, r.klen);
    if (!mapkv__index_has(&db->ix, h, at))
      continue;
    if (mapkv__index_insert(&t->ix, h, t->end) != 0)
      return mapkv__fail(MAPKV_ENOMEM, "out of memory for the new index");
    t->end += mapkv__rec_encode(t->base + t->end, MAPKV__T_PUT,
                                MAPKV__F_FIRST | MAPKV__F_LAST, ++t->seq, 0,
                                r.key, r.klen, r.val, r.vlen, t->hdr.file_id);
    t->live_bytes += r.size;
  }
  if (atomic_load(&db->checksum_failures) != failures) {
    db->known_damage = 1;
    return mapkv__fail(MAPKV_ECORRUPT,
                       "%s: a live record failed its checksum during "
                       "compaction; the store is unchanged (mapkv verify "
                       "lists the damage, mapkv recover salvages)",
                       db->path);
  }
  return 0;
}

int mapkv_compact(mapkv_t *db) {
  target t;
  char *tmp = NULL;
  uint8_t page0[MAPKV__HDR_PAGE];
  uint64_t size;
  void *base;
  int rc, renamed = 0;

  if (db == NULL)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle");
  if (db->readonly)
    return mapkv__fail(MAPKV_EREADONLY, "%s is open read-only", db->path);
  memset(&t, 0, sizeof t);
  t.fd = -1;
  pthread_mutex_lock(&db->wlock);
  if (db->known_damage || atomic_load(&db->checksum_failures) > 0) {
    rc = mapkv__fail(MAPKV_ECORRUPT,
                     "%s has damaged records, which compaction would drop "
                     "without a trace; the store is unchanged (mapkv verify "
                     "lists the damage, mapkv recover salvages the intact "
                     "records and keeps the damaged file)",
                     db->path);
    goto out;
  }
  if ((rc = mapkv__check_path(db)) != 0)
    goto out;
  tmp = compact_path(db->path);
  if (tmp == NULL) {
    rc = mapkv__fail(MAPKV_ENOMEM, "out of memory");
    goto out;
  }

  t.hdr = db->hdr;
  t.hdr.version = MAPKV_FORMAT_VERSION;
  t.hdr.generation++;
  t.hdr.flags = 0;
  do {
    if (mapkv__os.random(&t.hdr.file_id, sizeof t.hdr.file_id) != 0) {
      rc = mapkv__fail_errno("getrandom");
      goto out;
    }
  } while (t.hdr.file_id == 0 || t.hdr.file_id == db->hdr.file_id);
  t.hdr.data_end = MAPKV__HDR_PAGE;
  t.hdr.sealed_end = MAPKV__HDR_PAGE;
  t.hdr.last_seq = 0;
  t.hdr.live_records = 0;
  t.hdr.live_bytes = 0;
  memset(page0, 0, sizeof page0);
  mapkv__header_encode(page0, &t.hdr);
  mapkv__header_encode(page0 + MAPKV__HDR_COPY_B, &t.hdr);

  mapkv__os.unlink(tmp);
  t.fd = mapkv__os.open(tmp, O_RDWR | O_CREAT | O_EXCL, 0644);
  if (t.fd < 0) {
    rc = mapkv__fail_errno(tmp);
    goto out;
  }
  /* Lock it now, so no other writer can take it once it is renamed. */
  if (mapkv__os.flock(t.fd, LOCK_EX | LOCK_NB) != 0) {
    rc = mapkv__fail_errno("flock");
    goto out;
  }
  /* The new file takes the store's mode and owner, or nothing is replaced. */
  if ((rc = mapkv__os_copy_owner(db->fd, t.fd)) != 0) {
    rc = mapkv__fail(rc,
                     "%s: the compacted file cannot keep the store's owner "
                     "or mode (%s); the store is unchanged",
                     db->path, strerror(-rc));
    goto out;
  }
  if ((rc = mapkv__os_pwrite_all(t.fd, page0, sizeof page0, 0)) != 0) {
    rc = mapkv__fail(rc, "writing %s: %s", tmp, strerror(-rc));
    goto out;
  }
  size = mapkv__page_up(db, MAPKV__HDR_PAGE + db->live_bytes);
  if (size < db->page * 2)
    size = db->page * 2;
  if (mapkv__os.reserve(t.fd, 0, (off_t)size) != 0) {
    rc = mapkv__fail_errno("reserving space for the compacted store");
    goto out;
  }
  rc = mmf_open_reserved(&t.map, t.fd, 0, MMF_MAP_SHARED,
                         MMF_PROT_READ | MMF_PROT_WRITE, MMF_ACCESS_WRITE, 0, 1,
                         (int64_t)db->reserve);
  if (rc == 0)
    rc = mmf_resize(t.map, (int64_t)size);
  if (rc != 0) {
    rc = mapkv__fail_mmf(rc, "mapping the compacted store");
    goto out;
  }
  mmf_data(t.map, &base, NULL);
  t.base = base;
  t.end = MAPKV__HDR_PAGE;
  if (mapkv__index_init(&t.ix,
                        db->ix.count > db->opts.expected_keys
                            ? db->ix.count
                            : db->opts.expected_keys,
                        target_hashes_at, &t) != 0) {
    rc = mapkv__fail(MAPKV_ENOMEM, "out of memory for the new index");
    goto out;
  }
  /* Writers are excluded by wlock, so the index is stable; readers may run
   * alongside. */
  if ((rc = copy_live(db, &t)) != 0)
    goto out;
  /* Flushed whole below, so the new log is sealed up to its end. */
  t.hdr.data_end = t.hdr.sealed_end = t.end;
  mapkv__header_encode(t.base, &t.hdr);
  mapkv__header_encode(t.base + MAPKV__HDR_COPY_B, &t.hdr);
  if (db->opts.flush_hook != NULL)
    mmf_set_flush_hook(t.map, db->opts.flush_hook, db->opts.flush_hook_ctx);
  if ((rc = mmf_flush(t.map, 0, -1)) != 0) {
    rc = mapkv__fail_mmf(rc, "flushing the compacted store");
    goto out;
  }
  if (mapkv__os.rename(tmp, db->path) != 0) {
    rc = mapkv__fail_errno("renaming the compacted store into place");
    goto out;
  }
  renamed = 1;
  /* From here on the new file is the store. */
  if ((rc = mapkv__os_sync_dir(db->path)) != 0)
    rc = mapkv__fail(rc, "syncing the directory of %s: %s", db->path,
                     strerror(-rc));

  pthread_rwlock_wrlock(&db->rw);
  {
    mmf_t *old_map = db->map;
    int old_fd = db->fd;
    mapkv__index old_ix = db->ix;
    db->map = t.map;
    db->fd = t.fd;
    db->base = t.base;
    db->cap = size;
    db->end = t.end;
    db->flushed = t.end;
    db->seq = t.seq;
    db->hdr = t.hdr;
    db->live_bytes = t.live_bytes;
    db->rec_head = MAPKV__REC_HEAD;
    db->sealed = t.end; /* flushed whole, every record checked */
    db->lost = 0;
    assert(db->npoison == 0); /* a store with damage is not compacted */
    db->ix = t.ix;
    db->ix.ctx = db; /* the index now asks the store for hashes */
    db->ix.hashes_at = old_ix.hashes_at;
    t.map = NULL;
    t.fd = -1;
    t.ix.slots = NULL;
    mmf_free(old_map);
    mapkv__os.close(old_fd);
    mapkv__index_free(&old_ix);
  }
  pthread_rwlock_unlock(&db->rw);

out:
  if (!renamed && t.fd >= 0)
    mapkv__os.unlink(tmp);
  mmf_free(t.map);
  if (t.fd >= 0)
    mapkv__os.close(t.fd);
  if (t.ix.slots != NULL)
    mapkv__index_free(&t.ix);
  pthread_mutex_unlock(&db->wlock);
  free(tmp);
  return rc;
}
