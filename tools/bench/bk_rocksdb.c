/*
 * bk_rocksdb.c — RocksDB through its C API (rocksdb/c.h), configured as its
 * tuning guide (wiki "Setup Options and Basic Tuning") recommends for speed:
 *  - IncreaseParallelism(2): background flushes and compactions use both
 *    cores of the bench machine;
 *  - write_buffer_size 64 MiB, 3 write buffers, target_file_size_base
 *    64 MiB, max_bytes_for_level_base 256 MiB, dynamic level bytes;
 *  - block-based table with a 256 MiB LRU block cache and a bloom filter of
 *    10 bits per key (readmissing skips the table reads);
 *  - compression off: the values are random bytes (incompressible);
 *  - WriteOptions.sync = false, except for fillsync (sync = true); the WAL
 *    stays on, so a crash of the process loses nothing;
 *  - gets use rocksdb_get_pinned (no copy of the value inside RocksDB; the
 *    adapter copies it out like every other store); multireadrandom uses
 *    rocksdb_multi_get (MultiGet; the C API of 7.8 offers the batched,
 *    pinned variant only with column-family handles).
 * RocksDB handles are thread-safe: readers and writers are the handle
 * itself (concurrent durable writers queue inside RocksDB, which groups
 * the waiting writers' batches into one WAL write and one sync).
 * Reader processes (readprocs) open a secondary instance
 * (rocksdb_open_as_secondary, max_open_files = -1 as it requires, its own
 * files in a "secondary-<pid>" directory inside the store's): RocksDB's
 * way for other processes to read a store that a primary writes. A
 * secondary sees new commits only after rocksdb_try_catch_up_with_primary
 * (ro_refresh), which readprocs calls every BENCH_REFRESH_SECONDS.
 */
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

#define NAME "rocksdb"

#ifndef MAPKV_BENCH_ROCKSDB_VERSION
#define MAPKV_BENCH_ROCKSDB_VERSION "unknown"
#endif

typedef struct rdb {
  char *secondary; /* the secondary instance's directory, or NULL */
  rocksdb_t *db;
  rocksdb_options_t *opt;
  rocksdb_cache_t *cache;
  rocksdb_writeoptions_t *wopt, *wsync;
  rocksdb_readoptions_t *ropt;
  rocksdb_writebatch_t *batch;
} rdb;

static const char *rdb_version(void) { return MAPKV_BENCH_ROCKSDB_VERSION; }

static int rdb_err(const char *what, char *err) {
  bk_fail(NAME, "%s: %s", what, err);
  rocksdb_free(err);
  return -1;
}

static void rdb_free(rdb *h) {
  if (h->batch != NULL)
    rocksdb_writebatch_destroy(h->batch);
  if (h->db != NULL)
    rocksdb_close(h->db);
  if (h->opt != NULL)
    rocksdb_options_destroy(h->opt);
  if (h->cache != NULL)
    rocksdb_cache_destroy(h->cache);
  if (h->wopt != NULL)
    rocksdb_writeoptions_destroy(h->wopt);
  if (h->wsync != NULL)
    rocksdb_writeoptions_destroy(h->wsync);
  if (h->ropt != NULL)
    rocksdb_readoptions_destroy(h->ropt);
  if (h->secondary != NULL) {
    /* What the secondary instance wrote there: its info log. */
    bk_rmtree(h->secondary);
    free(h->secondary);
  }
  free(h);
}

/* The handle with every option set; the database is not opened. */
static rdb *rdb_new(const bk_options *o) {
  rdb *h = calloc(1, sizeof *h);
  rocksdb_block_based_table_options_t *t;
  if (h == NULL)
    return NULL;
  h->opt = rocksdb_options_create();
  h->cache = rocksdb_cache_create_lru((size_t)256 << 20);
  h->wopt = rocksdb_writeoptions_create();
  h->wsync = rocksdb_writeoptions_create();
  h->ropt = rocksdb_readoptions_create();
  rocksdb_options_set_create_if_missing(h->opt, 1);
  rocksdb_options_increase_parallelism(h->opt, 2);
  rocksdb_options_set_write_buffer_size(h->opt, (size_t)64 << 20);
  rocksdb_options_set_max_write_buffer_number(h->opt, 3);
  rocksdb_options_set_target_file_size_base(h->opt, (uint64_t)64 << 20);
  rocksdb_options_set_max_bytes_for_level_base(h->opt, (uint64_t)256 << 20);
  rocksdb_options_set_level_compaction_dynamic_level_bytes(h->opt, 1);
  rocksdb_options_set_compression(h->opt, rocksdb_no_compression);
  t = rocksdb_block_based_options_create();
  rocksdb_block_based_options_set_block_cache(t, h->cache);
  /* The table options take ownership of the filter policy. */
  rocksdb_block_based_options_set_filter_policy(
      t, rocksdb_filterpolicy_create_bloom(10));
  rocksdb_options_set_block_based_table_factory(h->opt, t);
  rocksdb_block_based_options_destroy(t);
  rocksdb_writeoptions_set_sync(h->wopt, (unsigned char)(o->durable != 0));
  rocksdb_writeoptions_set_sync(h->wsync, 1);
  return h;
}

static int rdb_open(const char *dir, const bk_options *o, void **out) {
  rdb *h = rdb_new(o);
  char *err = NULL;
  if (h == NULL)
    return bk_fail(NAME, "out of memory");
  h->db = rocksdb_open(h->opt, dir, &err);
  if (err != NULL) {
    h->db = NULL;
    rdb_free(h);
    return rdb_err("rocksdb_open", err);
  }
  *out = h;
  return 0;
}

static int rdb_open_ro(const char *dir, const bk_options *o, void **out) {
  rdb *h = rdb_new(o);
  char *err = NULL, name[64];
  if (h == NULL)
    return bk_fail(NAME, "out of memory");
  snprintf(name, sizeof name, "secondary-%ld", (long)getpid());
  if ((h->secondary = bk_path(dir, name)) == NULL) {
    rdb_free(h);
    return bk_fail(NAME, "out of memory");
  }
  rocksdb_options_set_max_open_files(h->opt, -1);
  h->db = rocksdb_open_as_secondary(h->opt, dir, h->secondary, &err);
  if (err != NULL) {
    h->db = NULL;
    rdb_free(h);
    return rdb_err("rocksdb_open_as_secondary", err);
  }
  *out = h;
  return 0;
}

static int rdb_refresh(void *db) {
  rdb *h = db;
  char *err = NULL;
  rocksdb_try_catch_up_with_primary(h->db, &err);
  return err != NULL ? rdb_err("rocksdb_try_catch_up_with_primary", err) : 0;
}

static int rdb_close(void *db) {
  rdb_free(db);
  return 0;
}

static int rdb_get(void *rd, const void *key, size_t klen, void *buf,
                   size_t cap, size_t *vlen) {
  rdb *h = rd;
  char *err = NULL;
  size_t n;
  const char *v;
  rocksdb_pinnableslice_t *p =
      rocksdb_get_pinned(h->db, h->ropt, key, klen, &err);
  if (err != NULL)
    return rdb_err("rocksdb_get_pinned", err);
  if (p == NULL)
    return 0;
  v = rocksdb_pinnableslice_value(p, &n);
  if (n > cap) {
    rocksdb_pinnableslice_destroy(p);
    return bk_fail(NAME, "value of %zu bytes too large", n);
  }
  memcpy(buf, v, n);
  *vlen = n;
  rocksdb_pinnableslice_destroy(p);
  return 1;
}

/* rocksdb_multi_get: RocksDB's MultiGet for the group of keys. */
static int rdb_multi_get(void *rd, size_t n, const void *const *keys,
                         const size_t *klens, void *const *bufs, size_t cap,
                         size_t *vlens, int *found) {
  enum { MAX = 64 };
  rdb *h = rd;
  char *vals[MAX], *errs[MAX];
  size_t lens[MAX];
  int rc = 0;
  for (size_t g = 0; g < n && rc == 0; g += MAX) {
    size_t m = n - g < MAX ? n - g : MAX;
    rocksdb_multi_get(h->db, h->ropt, m, (const char *const *)(keys + g),
                      klens + g, vals, lens, errs);
    for (size_t i = 0; i < m; i++) {
      if (errs[i] != NULL) {
        if (rc == 0)
          rc = rdb_err("rocksdb_multi_get", errs[i]);
        else
          rocksdb_free(errs[i]);
      } else if (rc == 0 && vals[i] != NULL && lens[i] > cap) {
        rc = bk_fail(NAME, "value of %zu bytes too large", lens[i]);
      } else if (rc == 0) {
        found[g + i] = vals[i] != NULL;
        if (vals[i] != NULL) {
          memcpy(bufs[g + i], vals[i], lens[i]);
          vlens[g + i] = lens[i];
        }
      }
      if (vals[i] != NULL)
        rocksdb_free(vals[i]);
    }
  }
  return rc;
}

static int rdb_put(void *db, const void *key, size_t klen, const void *val,
                   size_t vlen) {
  rdb *h = db;
  char *err = NULL;
  rocksdb_put(h->db, h->wopt, key, klen, val, vlen, &err);
  return err != NULL ? rdb_err("rocksdb_put", err) : 0;
}

static int rdb_sync_put(void *db, const void *key, size_t klen, const void *val,
                        size_t vlen) {
  rdb *h = db;
  char *err = NULL;
  rocksdb_put(h->db, h->wsync, key, klen, val, vlen, &err);
  return err != NULL ? rdb_err("rocksdb_put", err) : 0;
}

static int rdb_del(void *db, const void *key, size_t klen) {
  rdb *h = db;
  char *err = NULL;
  rocksdb_delete(h->db, h->wopt, key, klen, &err);
  return err != NULL ? rdb_err("rocksdb_delete", err) : 0;
}

static int rdb_batch_begin(void *db, int sorted) {
  rdb *h = db;
  (void)sorted;
  if (h->batch == NULL)
    h->batch = rocksdb_writebatch_create();
  else
    rocksdb_writebatch_clear(h->batch);
  return 0;
}

static int rdb_batch_put(void *db, const void *key, size_t klen,
                         const void *val, size_t vlen) {
  rdb *h = db;
  rocksdb_writebatch_put(h->batch, key, klen, val, vlen);
  return 0;
}

static int rdb_batch_commit(void *db) {
  rdb *h = db;
  char *err = NULL;
  rocksdb_write(h->db, h->wopt, h->batch, &err);
  rocksdb_writebatch_clear(h->batch);
  return err != NULL ? rdb_err("rocksdb_write", err) : 0;
}

static int rdb_iterate(void *db, bk_iter_fn fn, void *ctx) {
  rdb *h = db;
  rocksdb_iterator_t *it = rocksdb_create_iterator(h->db, h->ropt);
  char *err = NULL;
  int stop = 0;
  for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
       rocksdb_iter_next(it)) {
    size_t kl, vl;
    const char *k = rocksdb_iter_key(it, &kl);
    const char *v = rocksdb_iter_value(it, &vl);
    if ((stop = fn(ctx, k, kl, v, vl)) != 0)
      break;
  }
  rocksdb_iter_get_error(it, &err);
  rocksdb_iter_destroy(it);
  if (err != NULL)
    return rdb_err("iterator", err);
  return stop;
}

const bk_vtable bk_rocksdb = {.name = NAME,
                              .version = rdb_version,
                              .open = rdb_open,
                              .close = rdb_close,
                              .reader_open = bk_reader_is_db,
                              .reader_close = bk_reader_none,
                              .get = rdb_get,
                              .multi_get = rdb_multi_get,
                              .put = rdb_put,
                              .del = rdb_del,
                              .batch_begin = rdb_batch_begin,
                              .batch_put = rdb_batch_put,
                              .batch_commit = rdb_batch_commit,
                              .writer_open = bk_reader_is_db,
                              .writer_close = bk_reader_none,
                              .sync_put = rdb_sync_put,
                              .iterate = rdb_iterate,
                              .disk_size = bk_disk_size_dir,
                              .open_ro = rdb_open_ro,
                              .ro_refresh = rdb_refresh};
