/*
 * bk_tkrzw.c — tkrzw's file hash database (HashDBM, a .tkh file) through
 * its C API (tkrzw_langc.h), tuned as its documentation recommends for
 * speed:
 *  - num_buckets = 2x the records (the docs: more buckets than records);
 *  - file=MemoryMapParallelFile (memory-mapped I/O with record-level
 *    concurrency, what tkrzw_dbm_perf uses for its hash benchmarks);
 *  - update_mode UPDATE_IN_PLACE (the default), no record compression;
 *  - no_lock=true (the bench is the only process);
 *  - non-durable workloads: no sync (a crash of the process loses nothing:
 *    the data sit in the shared map); fillsync: each set is followed by
 *    tkrzw_dbm_synchronize(hard=true) (msync/fsync of the file and its
 *    metadata), tkrzw's way of making one update durable.
 * HashDBM has no atomic multi-record batch, so a "batch" is plain sets:
 * this favours tkrzw over the stores that commit each batch atomically.
 * Gets use tkrzw_dbm_process with a read-only processor that copies the
 * value into the caller's buffer (no malloc, unlike tkrzw_dbm_get). The
 * handle is thread-safe: readers and writers are the handle itself.
 * Other processes: a writer process excludes all others (file lock).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tkrzw_langc.h>

#include "backend.h"

#define NAME "tkrzw"

static const char *tk_version(void) { return TKRZW_PACKAGE_VERSION; }

static int tk_err(const char *what) {
  return bk_fail(NAME, "%s: %s: %s", what,
                 tkrzw_status_code_name(tkrzw_get_last_status_code()),
                 tkrzw_get_last_status_message());
}

static int tk_open(const char *dir, const bk_options *o, void **out) {
  char params[256];
  unsigned long long buckets = o->expected * 2;
  char *path = bk_path(dir, "store.tkh");
  TkrzwDBM *db;
  if (path == NULL)
    return bk_fail(NAME, "out of memory");
  if (buckets < 1024)
    buckets = 1024;
  snprintf(params, sizeof params,
           "dbm=HashDBM,file=MemoryMapParallelFile,num_buckets=%llu,"
           "no_lock=true",
           buckets);
  db = tkrzw_dbm_open(path, true, params);
  free(path);
  if (db == NULL)
    return tk_err("tkrzw_dbm_open");
  *out = db;
  return 0;
}

static int tk_close(void *h) {
  return tkrzw_dbm_close(h) ? 0 : tk_err("tkrzw_dbm_close");
}

typedef struct tk_copy {
  void *buf;
  size_t cap, n;
  int found;
} tk_copy;

static const char *tk_copy_value(void *arg, const char *kp, int32_t ks,
                                 const char *vp, int32_t vs, int32_t *rs) {
  tk_copy *c = arg;
  (void)kp;
  (void)ks;
  (void)rs;
  if (vp != NULL && vs >= 0 && (size_t)vs <= c->cap) {
    memcpy(c->buf, vp, (size_t)vs);
    c->n = (size_t)vs;
    c->found = 1;
  } else if (vp != NULL) {
    c->found = -1;
  }
  return TKRZW_REC_PROC_NOOP;
}

static int tk_get(void *rd, const void *key, size_t klen, void *buf, size_t cap,
                  size_t *vlen) {
  tk_copy c = {buf, cap, 0, 0};
  if (!tkrzw_dbm_process(rd, key, (int32_t)klen, tk_copy_value, &c, false))
    return tk_err("tkrzw_dbm_process");
  if (c.found < 0)
    return bk_fail(NAME, "value too large");
  if (c.found)
    *vlen = c.n;
  return c.found;
}

static int tk_put(void *h, const void *key, size_t klen, const void *val,
                  size_t vlen) {
  if (!tkrzw_dbm_set(h, key, (int32_t)klen, val, (int32_t)vlen, true))
    return tk_err("tkrzw_dbm_set");
  return 0;
}

static int tk_sync_put(void *h, const void *key, size_t klen, const void *val,
                       size_t vlen) {
  if (tk_put(h, key, klen, val, vlen) != 0)
    return -1;
  if (!tkrzw_dbm_synchronize(h, true, NULL, NULL, ""))
    return tk_err("tkrzw_dbm_synchronize");
  return 0;
}

static int tk_del(void *h, const void *key, size_t klen) {
  if (tkrzw_dbm_remove(h, key, (int32_t)klen) ||
      tkrzw_get_last_status_code() == TKRZW_STATUS_NOT_FOUND_ERROR)
    return 0;
  return tk_err("tkrzw_dbm_remove");
}

static int tk_batch_begin(void *h, int sorted) {
  (void)h;
  (void)sorted;
  return 0;
}

static int tk_batch_commit(void *h) {
  (void)h;
  return 0;
}

typedef struct tk_walk {
  bk_iter_fn fn;
  void *ctx;
  int stop;
} tk_walk;

static const char *tk_visit(void *arg, const char *kp, int32_t ks,
                            const char *vp, int32_t vs, int32_t *rs) {
  tk_walk *w = arg;
  (void)rs;
  /* ProcessEach also calls the processor once before and once after the
   * records, without a record. */
  if (w->stop == 0 && vp != NULL && vs >= 0 && ks >= 0)
    w->stop = w->fn(w->ctx, kp, (size_t)ks, vp, (size_t)vs);
  return TKRZW_REC_PROC_NOOP;
}

static int tk_iterate(void *h, bk_iter_fn fn, void *ctx) {
  tk_walk w = {fn, ctx, 0};
  if (!tkrzw_dbm_process_each(h, tk_visit, &w, false))
    return tk_err("tkrzw_dbm_process_each");
  return w.stop;
}

const bk_vtable bk_tkrzw = {.name = NAME,
                            .version = tk_version,
                            .open = tk_open,
                            .close = tk_close,
                            .reader_open = bk_reader_is_db,
                            .reader_close = bk_reader_none,
                            .get = tk_get,
                            .put = tk_put,
                            .del = tk_del,
                            .batch_begin = tk_batch_begin,
                            .batch_put = tk_put,
                            .batch_commit = tk_batch_commit,
                            .writer_open = bk_reader_is_db,
                            .writer_close = bk_reader_none,
                            .sync_put = tk_sync_put,
                            .iterate = tk_iterate,
                            .disk_size = bk_disk_size_dir,
                            .no_ro = "a writer process excludes reader "
                                     "processes (file lock)"};
