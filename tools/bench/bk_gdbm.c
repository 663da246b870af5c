/*
 * bk_gdbm.c — GNU dbm (gdbm.h), configured as its manual recommends for
 * speed:
 *  - GDBM_NOLOCK (no file locking: the bench is the only process);
 *  - memory-mapped I/O (the default since 1.9) with no limit on the map
 *    size (GDBM_SETMAXMAPSIZE), so the whole file is mapped;
 *  - a bucket cache large enough for every bucket of the store
 *    (GDBM_SETCACHESIZE; the default adapts from a small start);
 *  - non-durable workloads: no sync; fillsync: gdbm_store followed by
 *    gdbm_sync (msync + fsync of the file). The GDBM_SYNC open flag is
 *    documented to do the same, but gdbm 1.23 with its memory-mapped I/O
 *    did not sync per store when measured (strace), so the adapter calls
 *    gdbm_sync itself.
 * gdbm has no batches: a "batch" is plain gdbm_store calls. A gdbm handle
 * is not thread-safe, so one mutex serialises every call on it (uncontended
 * it costs a few nanoseconds; readwhilewriting, readrandom_mt and
 * fillsync_mt measure gdbm serialised). Other processes: a writer excludes
 * readers (file lock). gdbm_fetch and gdbm_nextkey return malloc'd
 * copies, freed here.
 */
#include <gdbm.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#define NAME "gdbm"

typedef struct gd {
  GDBM_FILE f;
  pthread_mutex_t mu;
} gd;

static const char *gd_version(void) { return gdbm_version; }

static int gd_err(const char *what) {
  return bk_fail(NAME, "%s: %s", what, gdbm_strerror(gdbm_errno));
}

static int gd_open(const char *dir, const bk_options *o, void **out) {
  gd *h = calloc(1, sizeof *h);
  char *path = bk_path(dir, "store.gdbm");
  int flags = GDBM_WRCREAT | GDBM_NOLOCK;
  size_t maxmap = SIZE_MAX;
  int cache;
  if (h == NULL || path == NULL) {
    free(h);
    free(path);
    return bk_fail(NAME, "out of memory");
  }
  h->f = gdbm_open(path, 0, flags, 0644, NULL);
  free(path);
  if (h->f == NULL) {
    free(h);
    return gd_err("gdbm_open");
  }
  /* About 100 bucket entries per 4 KiB bucket at half load: one cache slot
   * per bucket, with a floor. */
  cache = (int)(o->expected / 50 + 1024);
  if (gdbm_setopt(h->f, GDBM_SETCACHESIZE, &cache, sizeof cache) != 0 ||
      gdbm_setopt(h->f, GDBM_SETMAXMAPSIZE, &maxmap, sizeof maxmap) != 0) {
    gdbm_close(h->f);
    free(h);
    return gd_err("gdbm_setopt");
  }
  pthread_mutex_init(&h->mu, NULL);
  *out = h;
  return 0;
}

static int gd_close(void *db) {
  gd *h = db;
  int rc = gdbm_close(h->f);
  pthread_mutex_destroy(&h->mu);
  free(h);
  return rc != 0 ? gd_err("gdbm_close") : 0;
}

static int gd_get(void *rd, const void *key, size_t klen, void *buf, size_t cap,
                  size_t *vlen) {
  gd *h = rd;
  datum k = {(char *)(uintptr_t)key, (int)klen}, v;
  int found;
  pthread_mutex_lock(&h->mu);
  v = gdbm_fetch(h->f, k);
  if (v.dptr == NULL) {
    found = gdbm_errno == GDBM_ITEM_NOT_FOUND ? 0 : gd_err("gdbm_fetch");
  } else if ((size_t)v.dsize > cap) {
    found = bk_fail(NAME, "value of %d bytes too large", v.dsize);
  } else {
    memcpy(buf, v.dptr, (size_t)v.dsize);
    *vlen = (size_t)v.dsize;
    found = 1;
  }
  pthread_mutex_unlock(&h->mu);
  free(v.dptr);
  return found;
}

static int gd_put(void *db, const void *key, size_t klen, const void *val,
                  size_t vlen) {
  gd *h = db;
  datum k = {(char *)(uintptr_t)key, (int)klen};
  datum v = {(char *)(uintptr_t)val, (int)vlen};
  int rc;
  pthread_mutex_lock(&h->mu);
  rc = gdbm_store(h->f, k, v, GDBM_REPLACE);
  pthread_mutex_unlock(&h->mu);
  return rc != 0 ? gd_err("gdbm_store") : 0;
}

static int gd_sync_put(void *db, const void *key, size_t klen, const void *val,
                       size_t vlen) {
  gd *h = db;
  datum k = {(char *)(uintptr_t)key, (int)klen};
  datum v = {(char *)(uintptr_t)val, (int)vlen};
  int rc;
  pthread_mutex_lock(&h->mu);
  rc = gdbm_store(h->f, k, v, GDBM_REPLACE);
  if (rc == 0 && gdbm_sync(h->f) != 0)
    rc = -1;
  pthread_mutex_unlock(&h->mu);
  return rc != 0 ? gd_err("gdbm_store/gdbm_sync") : 0;
}

static int gd_del(void *db, const void *key, size_t klen) {
  gd *h = db;
  datum k = {(char *)(uintptr_t)key, (int)klen};
  int rc;
  pthread_mutex_lock(&h->mu);
  rc = gdbm_delete(h->f, k);
  if (rc != 0 && gdbm_errno == GDBM_ITEM_NOT_FOUND)
    rc = 0;
  pthread_mutex_unlock(&h->mu);
  return rc != 0 ? gd_err("gdbm_delete") : 0;
}

static int gd_batch_begin(void *db, int sorted) {
  (void)db;
  (void)sorted;
  return 0;
}

static int gd_batch_commit(void *db) {
  (void)db;
  return 0;
}

static int gd_iterate(void *db, bk_iter_fn fn, void *ctx) {
  gd *h = db;
  datum k, v;
  int stop = 0;
  pthread_mutex_lock(&h->mu);
  k = gdbm_firstkey(h->f);
  while (k.dptr != NULL && stop == 0) {
    datum next;
    v = gdbm_fetch(h->f, k);
    if (v.dptr == NULL) {
      stop = gd_err("gdbm_fetch");
      break;
    }
    stop = fn(ctx, k.dptr, (size_t)k.dsize, v.dptr, (size_t)v.dsize);
    free(v.dptr);
    next = gdbm_nextkey(h->f, k);
    free(k.dptr);
    k = next;
  }
  if (stop == 0 && k.dptr == NULL && gdbm_errno != GDBM_ITEM_NOT_FOUND &&
      gdbm_errno != GDBM_NO_ERROR)
    stop = gd_err("gdbm_nextkey");
  free(k.dptr);
  pthread_mutex_unlock(&h->mu);
  return stop;
}

const bk_vtable bk_gdbm = {.name = NAME,
                           .version = gd_version,
                           .open = gd_open,
                           .close = gd_close,
                           .reader_open = bk_reader_is_db,
                           .reader_close = bk_reader_none,
                           .get = gd_get,
                           .put = gd_put,
                           .del = gd_del,
                           .batch_begin = gd_batch_begin,
                           .batch_put = gd_put,
                           .batch_commit = gd_batch_commit,
                           .writer_open = bk_reader_is_db,
                           .writer_close = bk_reader_none,
                           .sync_put = gd_sync_put,
                           .iterate = gd_iterate,
                           .disk_size = bk_disk_size_dir,
                           .no_ro = "a writer process excludes reader "
                                    "processes (file lock)"};
