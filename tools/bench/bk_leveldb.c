/*
 * bk_leveldb.c — LevelDB through its C API (leveldb/c.h), configured as its
 * documentation (doc/index.md, "Performance") recommends for speed:
 *  - write_buffer_size 64 MiB (default 4 MiB): fewer, larger level-0 files
 *    during bulk loads;
 *  - a 256 MiB LRU block cache (default 8 MiB), so that reads of a store
 *    in the page cache do not re-decode blocks;
 *  - a bloom filter of 10 bits per key (readmissing skips the table reads);
 *  - compression off: the bench's values are random bytes, which snappy
 *    cannot shrink (it would only cost time);
 *  - WriteOptions.sync = false, except for fillsync (sync = true). The
 *    write-ahead log stays on, so a crash of the process loses nothing.
 *  - batches are one leveldb_writebatch_t written with leveldb_write.
 * LevelDB handles are thread-safe: readers and writers are the handle
 * itself (concurrent durable writers queue inside LevelDB, which writes
 * the batches of waiting writers as one log write and one sync). Another
 * process cannot open the store while one has it open (LOCK file).
 */
#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#define NAME "leveldb"

typedef struct ldb {
  leveldb_t *db;
  leveldb_options_t *opt;
  leveldb_cache_t *cache;
  leveldb_filterpolicy_t *filter;
  leveldb_writeoptions_t *wopt, *wsync;
  leveldb_readoptions_t *ropt;
  leveldb_writebatch_t *batch;
} ldb;

static const char *ldb_version(void) {
  static char v[32];
  snprintf(v, sizeof v, "%d.%d", leveldb_major_version(),
           leveldb_minor_version());
  return v;
}

static int ldb_err(const char *what, char *err) {
  bk_fail(NAME, "%s: %s", what, err);
  leveldb_free(err);
  return -1;
}

static void ldb_free(ldb *h) {
  if (h->batch != NULL)
    leveldb_writebatch_destroy(h->batch);
  if (h->db != NULL)
    leveldb_close(h->db);
  if (h->opt != NULL)
    leveldb_options_destroy(h->opt);
  if (h->cache != NULL)
    leveldb_cache_destroy(h->cache);
  if (h->filter != NULL)
    leveldb_filterpolicy_destroy(h->filter);
  if (h->wopt != NULL)
    leveldb_writeoptions_destroy(h->wopt);
  if (h->wsync != NULL)
    leveldb_writeoptions_destroy(h->wsync);
  if (h->ropt != NULL)
    leveldb_readoptions_destroy(h->ropt);
  free(h);
}

static int ldb_open(const char *dir, const bk_options *o, void **out) {
  ldb *h = calloc(1, sizeof *h);
  char *err = NULL;
  if (h == NULL)
    return bk_fail(NAME, "out of memory");
  h->opt = leveldb_options_create();
  h->cache = leveldb_cache_create_lru((size_t)256 << 20);
  h->filter = leveldb_filterpolicy_create_bloom(10);
  h->wopt = leveldb_writeoptions_create();
  h->wsync = leveldb_writeoptions_create();
  h->ropt = leveldb_readoptions_create();
  leveldb_options_set_create_if_missing(h->opt, 1);
  leveldb_options_set_write_buffer_size(h->opt, (size_t)64 << 20);
  leveldb_options_set_cache(h->opt, h->cache);
  leveldb_options_set_filter_policy(h->opt, h->filter);
  leveldb_options_set_compression(h->opt, leveldb_no_compression);
  leveldb_writeoptions_set_sync(h->wopt, (unsigned char)(o->durable != 0));
  leveldb_writeoptions_set_sync(h->wsync, 1);
  h->db = leveldb_open(h->opt, dir, &err);
  if (err != NULL) {
    h->db = NULL;
    ldb_free(h);
    return ldb_err("leveldb_open", err);
  }
  *out = h;
  return 0;
}

static int ldb_close(void *db) {
  ldb_free(db);
  return 0;
}

static int ldb_get(void *rd, const void *key, size_t klen, void *buf,
                   size_t cap, size_t *vlen) {
  ldb *h = rd;
  char *err = NULL;
  size_t n;
  char *v = leveldb_get(h->db, h->ropt, key, klen, &n, &err);
  if (err != NULL)
    return ldb_err("leveldb_get", err);
  if (v == NULL)
    return 0;
  if (n > cap) {
    leveldb_free(v);
    return bk_fail(NAME, "value of %zu bytes too large", n);
  }
  memcpy(buf, v, n);
  *vlen = n;
  leveldb_free(v);
  return 1;
}

static int ldb_put_with(void *db, const leveldb_writeoptions_t *w,
                        const void *key, size_t klen, const void *val,
                        size_t vlen) {
  ldb *h = db;
  char *err = NULL;
  leveldb_put(h->db, w, key, klen, val, vlen, &err);
  return err != NULL ? ldb_err("leveldb_put", err) : 0;
}

static int ldb_put(void *db, const void *key, size_t klen, const void *val,
                   size_t vlen) {
  return ldb_put_with(db, ((ldb *)db)->wopt, key, klen, val, vlen);
}

static int ldb_sync_put(void *db, const void *key, size_t klen, const void *val,
                        size_t vlen) {
  return ldb_put_with(db, ((ldb *)db)->wsync, key, klen, val, vlen);
}

static int ldb_del(void *db, const void *key, size_t klen) {
  ldb *h = db;
  char *err = NULL;
  leveldb_delete(h->db, h->wopt, key, klen, &err);
  return err != NULL ? ldb_err("leveldb_delete", err) : 0;
}

static int ldb_batch_begin(void *db, int sorted) {
  ldb *h = db;
  (void)sorted;
  if (h->batch == NULL)
    h->batch = leveldb_writebatch_create();
  else
    leveldb_writebatch_clear(h->batch);
  return 0;
}

static int ldb_batch_put(void *db, const void *key, size_t klen,
                         const void *val, size_t vlen) {
  ldb *h = db;
  leveldb_writebatch_put(h->batch, key, klen, val, vlen);
  return 0;
}

static int ldb_batch_commit(void *db) {
  ldb *h = db;
  char *err = NULL;
  leveldb_write(h->db, h->wopt, h->batch, &err);
  leveldb_writebatch_clear(h->batch);
  return err != NULL ? ldb_err("leveldb_write", err) : 0;
}

static int ldb_iterate(void *db, bk_iter_fn fn, void *ctx) {
  ldb *h = db;
  leveldb_iterator_t *it = leveldb_create_iterator(h->db, h->ropt);
  char *err = NULL;
  int stop = 0;
  for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it);
       leveldb_iter_next(it)) {
    size_t kl, vl;
    const char *k = leveldb_iter_key(it, &kl);
    const char *v = leveldb_iter_value(it, &vl);
    if ((stop = fn(ctx, k, kl, v, vl)) != 0)
      break;
  }
  leveldb_iter_get_error(it, &err);
  leveldb_iter_destroy(it);
  if (err != NULL)
    return ldb_err("iterator", err);
  return stop;
}

const bk_vtable bk_leveldb = {.name = NAME,
                              .version = ldb_version,
                              .open = ldb_open,
                              .close = ldb_close,
                              .reader_open = bk_reader_is_db,
                              .reader_close = bk_reader_none,
                              .get = ldb_get,
                              .put = ldb_put,
                              .del = ldb_del,
                              .batch_begin = ldb_batch_begin,
                              .batch_put = ldb_batch_put,
                              .batch_commit = ldb_batch_commit,
                              .writer_open = bk_reader_is_db,
                              .writer_close = bk_reader_none,
                              .sync_put = ldb_sync_put,
                              .iterate = ldb_iterate,
                              .disk_size = bk_disk_size_dir,
                              .no_ro = "one process at a time: the open takes "
                                       "an exclusive lock (LOCK file)"};
