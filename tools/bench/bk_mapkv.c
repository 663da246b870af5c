/*
 * bk_mapkv.c — mapkv through its public API only (include/mapkv/mapkv.h).
 *
 * Configuration: the library defaults, except the sync mode:
 * MAPKV_SYNC_NONE for the non-durable workloads (a crash of the process
 * loses nothing; the OS writes back), MAPKV_SYNC_COMMIT for fillsync (one
 * msync per commit), and expected_keys = the records of the run, so that
 * the index is sized once (as Kyoto Cabinet's and tkrzw's bucket arrays
 * are). The handle is thread-safe, so every reader and every writer is the
 * handle itself (writers queue on the handle's internal mutex). Reader
 * processes open the store with MAPKV_RDONLY, which takes no lock and
 * sees the state committed at the open; the public API has no call that
 * brings such a handle up to newer commits, so ro_refresh is NULL, and
 * there is no read view to keep across gets (view_begin is NULL).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "mapkv/mapkv.h"

#define NAME "mapkv"

static const char *mk_version(void) {
#define MK_STR2(x) #x
#define MK_STR(x)  MK_STR2(x)
  return MK_STR(MAPKV_VERSION_MAJOR) "." MK_STR(MAPKV_VERSION_MINOR) "." MK_STR(
      MAPKV_VERSION_PATCH);
}

/* The handle and the batch being built (one writer at a time). */
typedef struct mk {
  mapkv_t *db;
  mapkv_batch_t *batch;
} mk;

static int mk_err(const char *what, int rc) {
  return bk_fail(NAME, "%s: %s (%s)", what, mapkv_strerror(rc), mapkv_errmsg());
}

static int mk_open_flags(const char *dir, const bk_options *o, unsigned flags,
                         void **out) {
  mapkv_options opts;
  char *path = bk_path(dir, "store.mapkv");
  mk *h = calloc(1, sizeof *h);
  int rc;
  if (path == NULL || h == NULL) {
    free(path);
    free(h);
    return bk_fail(NAME, "out of memory");
  }
  mapkv_options_init(&opts);
  opts.flags = flags;
  opts.sync_mode = o->durable ? MAPKV_SYNC_COMMIT : MAPKV_SYNC_NONE;
  opts.expected_keys = o->expected;
  rc = mapkv_open(path, &opts, &h->db);
  free(path);
  if (rc != 0) {
    free(h);
    return mk_err("mapkv_open", rc);
  }
  *out = h;
  return 0;
}

static int mk_open(const char *dir, const bk_options *o, void **out) {
  return mk_open_flags(dir, o, MAPKV_CREATE, out);
}

static int mk_open_ro(const char *dir, const bk_options *o, void **out) {
  return mk_open_flags(dir, o, MAPKV_RDONLY, out);
}

static int mk_close(void *db) {
  mk *h = db;
  int rc;
  mapkv_batch_abort(h->batch);
  rc = mapkv_close(h->db);
  free(h);
  return rc != 0 ? mk_err("mapkv_close", rc) : 0;
}

static int mk_get(void *rd, const void *key, size_t klen, void *buf, size_t cap,
                  size_t *vlen) {
  mk *h = rd;
  int rc = mapkv_get(h->db, key, klen, buf, cap, vlen);
  if (rc == 0)
    return 1;
  if (rc == MAPKV_NOTFOUND)
    return 0;
  return mk_err("mapkv_get", rc);
}

/* mapkv_get_many() in the groups the workload passes; the values are
 * copied out like every other store's. */
static int mk_multi_get(void *rd, size_t n, const void *const *keys,
                        const size_t *klens, void *const *bufs, size_t cap,
                        size_t *vlens, int *found) {
  enum { MAX = 64 };
  mk *h = rd;
  const void *vals[MAX];
  size_t lens[MAX];
  int rcs[MAX], rc;
  for (size_t g = 0; g < n; g += MAX) {
    size_t m = n - g < MAX ? n - g : MAX;
    rc = mapkv_get_many(h->db, m, keys + g, klens + g, vals, lens, rcs);
    if (rc != 0)
      return mk_err("mapkv_get_many", rc);
    for (size_t i = 0; i < m; i++) {
      found[g + i] = rcs[i] == 0;
      if (rcs[i] == MAPKV_NOTFOUND)
        continue;
      if (rcs[i] != 0)
        return mk_err("mapkv_get_many", rcs[i]);
      if (lens[i] > cap)
        return bk_fail(NAME, "value of %zu bytes too large", lens[i]);
      memcpy(bufs[g + i], vals[i], lens[i]);
      vlens[g + i] = lens[i];
    }
  }
  return 0;
}

static int mk_put(void *db, const void *key, size_t klen, const void *val,
                  size_t vlen) {
  mk *h = db;
  int rc = mapkv_put(h->db, key, klen, val, vlen);
  return rc != 0 ? mk_err("mapkv_put", rc) : 0;
}

static int mk_del(void *db, const void *key, size_t klen) {
  mk *h = db;
  int rc = mapkv_del(h->db, key, klen);
  return rc != 0 && rc != MAPKV_NOTFOUND ? mk_err("mapkv_del", rc) : 0;
}

static int mk_batch_begin(void *db, int sorted) {
  mk *h = db;
  int rc;
  (void)sorted;
  rc = mapkv_batch_begin(h->db, &h->batch);
  return rc != 0 ? mk_err("mapkv_batch_begin", rc) : 0;
}

static int mk_batch_put(void *db, const void *key, size_t klen, const void *val,
                        size_t vlen) {
  mk *h = db;
  int rc = mapkv_batch_put(h->batch, key, klen, val, vlen);
  return rc != 0 ? mk_err("mapkv_batch_put", rc) : 0;
}

static int mk_batch_commit(void *db) {
  mk *h = db;
  int rc = mapkv_batch_commit(h->batch);
  h->batch = NULL; /* freed by the commit, also on failure */
  return rc != 0 ? mk_err("mapkv_batch_commit", rc) : 0;
}

static int mk_iterate(void *db, bk_iter_fn fn, void *ctx) {
  mk *h = db;
  mapkv_cursor_t *c;
  const void *k, *v;
  size_t kl, vl;
  int rc = mapkv_cursor_open(h->db, NULL, 0, &c);
  if (rc != 0)
    return mk_err("mapkv_cursor_open", rc);
  while ((rc = mapkv_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
    int stop = fn(ctx, k, kl, v, vl);
    if (stop != 0) {
      mapkv_cursor_close(c);
      return stop;
    }
  }
  mapkv_cursor_close(c);
  return rc != MAPKV_NOTFOUND ? mk_err("mapkv_cursor_next", rc) : 0;
}

const bk_vtable bk_mapkv = {.name = NAME,
                            .version = mk_version,
                            .open = mk_open,
                            .close = mk_close,
                            .reader_open = bk_reader_is_db,
                            .reader_close = bk_reader_none,
                            .get = mk_get,
                            .multi_get = mk_multi_get,
                            .put = mk_put,
                            .del = mk_del,
                            .batch_begin = mk_batch_begin,
                            .batch_put = mk_batch_put,
                            .batch_commit = mk_batch_commit,
                            .writer_open = bk_reader_is_db,
                            .writer_close = bk_reader_none,
                            .sync_put = mk_put,
                            .iterate = mk_iterate,
                            .disk_size = bk_disk_size_dir,
                            .open_ro = mk_open_ro};
