/*
 * bk_lmdb.c — LMDB (liblmdb), configured as its documentation recommends
 * for speed:
 *  - non-durable: MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP (a crash of
 *    the process loses nothing, the OS writes back);
 *    durable (fillsync): no sync-weakening flag, one write transaction per
 *    put, committed with LMDB's fdatasync;
 *  - always MDB_NORDAHEAD (random reads) and MDB_NOTLS (read transactions
 *    belong to their reader object, not to the thread);
 *  - a map size fixed up front, 4x the raw data and at least 1 GiB;
 *  - batches are one write transaction; a sorted batch (fillseq) uses
 *    MDB_APPEND, LMDB's bulk-load path;
 *  - each reader keeps one read-only transaction and reuses it with
 *    mdb_txn_renew/mdb_txn_reset around every get (the documented way to
 *    reuse read transactions), so every get sees the newest commit;
 *    inside a read view (view_begin/view_end, readrandom_mt) the
 *    transaction is renewed once for the view and reset at its end, so the
 *    gets of one view share one read transaction;
 *  - writer threads (fillsync_mt) share the environment: each put is one
 *    write transaction of the calling thread, and LMDB serialises them on
 *    its writer mutex (how LMDB is used by several writing threads);
 *  - reader processes (readprocs) open their own environment with
 *    MDB_RDONLY on the same directory; each get, a fresh read transaction,
 *    sees the newest commit of the writer process.
 */
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#define NAME "lmdb"

typedef struct lm {
  MDB_env *env;
  MDB_dbi dbi;
  MDB_txn *batch; /* the write transaction of the batch being built */
  unsigned put_flags;
} lm;

typedef struct lm_reader {
  lm *h;
  MDB_txn *txn; /* reset between gets, or between views */
  int in_view;  /* txn renewed by view_begin */
} lm_reader;

static const char *lm_version(void) { return mdb_version(NULL, NULL, NULL); }

static int lm_err(const char *what, int rc) {
  return bk_fail(NAME, "%s: %s", what, mdb_strerror(rc));
}

static int lm_open_flags(const char *dir, const bk_options *o, int rdonly,
                         void **out) {
  lm *h = calloc(1, sizeof *h);
  MDB_txn *txn;
  size_t mapsize;
  unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
  int rc;
  if (h == NULL)
    return bk_fail(NAME, "out of memory");
  mapsize = (size_t)o->expected * (o->key_size + o->value_size) * 4;
  if (mapsize < (size_t)1 << 30)
    mapsize = (size_t)1 << 30;
  if (rdonly)
    flags |= MDB_RDONLY;
  else if (!o->durable)
    flags |= MDB_NOSYNC | MDB_NOMETASYNC | MDB_WRITEMAP;
  if ((rc = mdb_env_create(&h->env)) != 0) {
    free(h);
    return lm_err("mdb_env_create", rc);
  }
  if ((rc = mdb_env_set_mapsize(h->env, mapsize)) != 0 ||
      (rc = mdb_env_set_maxreaders(h->env, 256)) != 0 ||
      (rc = mdb_env_open(h->env, dir, flags, 0644)) != 0 ||
      (rc = mdb_txn_begin(h->env, NULL, rdonly ? MDB_RDONLY : 0, &txn)) != 0)
    goto fail;
  if ((rc = mdb_dbi_open(txn, NULL, 0, &h->dbi)) != 0) {
    mdb_txn_abort(txn);
    goto fail;
  }
  if ((rc = mdb_txn_commit(txn)) != 0)
    goto fail;
  *out = h;
  return 0;
fail:
  mdb_env_close(h->env);
  free(h);
  return lm_err("opening the environment", rc);
}

static int lm_open(const char *dir, const bk_options *o, void **out) {
  return lm_open_flags(dir, o, 0, out);
}

static int lm_open_ro(const char *dir, const bk_options *o, void **out) {
  return lm_open_flags(dir, o, 1, out);
}

static int lm_close(void *db) {
  lm *h = db;
  unsigned flags = 0;
  int rc = 0;
  if (h->batch != NULL)
    mdb_txn_abort(h->batch);
  /* A clean close of a NOSYNC environment flushes what it holds. */
  mdb_env_get_flags(h->env, &flags);
  if (!(flags & MDB_RDONLY))
    rc = mdb_env_sync(h->env, 1);
  mdb_env_close(h->env);
  free(h);
  return rc != 0 ? lm_err("mdb_env_sync", rc) : 0;
}

static void *lm_reader_open(void *db) {
  lm_reader *r = calloc(1, sizeof *r);
  int rc;
  if (r == NULL) {
    bk_fail(NAME, "out of memory");
    return NULL;
  }
  r->h = db;
  if ((rc = mdb_txn_begin(r->h->env, NULL, MDB_RDONLY, &r->txn)) != 0) {
    free(r);
    lm_err("mdb_txn_begin (read-only)", rc);
    return NULL;
  }
  mdb_txn_reset(r->txn);
  return r;
}

static void lm_reader_close(void *rd) {
  lm_reader *r = rd;
  mdb_txn_abort(r->txn);
  free(r);
}

static int lm_view_begin(void *rd) {
  lm_reader *r = rd;
  int rc = mdb_txn_renew(r->txn);
  if (rc != 0)
    return lm_err("mdb_txn_renew", rc);
  r->in_view = 1;
  return 0;
}

static int lm_view_end(void *rd) {
  lm_reader *r = rd;
  if (r->in_view)
    mdb_txn_reset(r->txn);
  r->in_view = 0;
  return 0;
}

static int lm_get(void *rd, const void *key, size_t klen, void *buf, size_t cap,
                  size_t *vlen) {
  lm_reader *r = rd;
  MDB_val k = {klen, (void *)(uintptr_t)key}, v;
  int rc = r->in_view ? 0 : mdb_txn_renew(r->txn), found;
  if (rc != 0)
    return lm_err("mdb_txn_renew", rc);
  rc = mdb_get(r->txn, r->h->dbi, &k, &v);
  if (rc == 0) {
    if (v.mv_size > cap) {
      found = bk_fail(NAME, "value of %zu bytes too large", v.mv_size);
    } else {
      memcpy(buf, v.mv_data, v.mv_size);
      *vlen = v.mv_size;
      found = 1;
    }
  } else if (rc == MDB_NOTFOUND) {
    found = 0;
  } else {
    found = lm_err("mdb_get", rc);
  }
  if (!r->in_view)
    mdb_txn_reset(r->txn);
  return found;
}

/* One write transaction around one operation. */
static int lm_single(lm *h, const void *key, size_t klen, const void *val,
                     size_t vlen, int del) {
  MDB_val k = {klen, (void *)(uintptr_t)key},
          v = {vlen, (void *)(uintptr_t)val};
  MDB_txn *txn;
  int rc = mdb_txn_begin(h->env, NULL, 0, &txn);
  if (rc != 0)
    return lm_err("mdb_txn_begin", rc);
  rc = del ? mdb_del(txn, h->dbi, &k, NULL) : mdb_put(txn, h->dbi, &k, &v, 0);
  if (rc != 0 && !(del && rc == MDB_NOTFOUND)) {
    mdb_txn_abort(txn);
    return lm_err(del ? "mdb_del" : "mdb_put", rc);
  }
  if ((rc = mdb_txn_commit(txn)) != 0)
    return lm_err("mdb_txn_commit", rc);
  return 0;
}

static int lm_put(void *db, const void *key, size_t klen, const void *val,
                  size_t vlen) {
  return lm_single(db, key, klen, val, vlen, 0);
}

static int lm_del(void *db, const void *key, size_t klen) {
  return lm_single(db, key, klen, NULL, 0, 1);
}

static int lm_batch_begin(void *db, int sorted) {
  lm *h = db;
  int rc = mdb_txn_begin(h->env, NULL, 0, &h->batch);
  if (rc != 0) {
    h->batch = NULL;
    return lm_err("mdb_txn_begin", rc);
  }
  h->put_flags = sorted ? MDB_APPEND : 0;
  return 0;
}

static int lm_batch_put(void *db, const void *key, size_t klen, const void *val,
                        size_t vlen) {
  lm *h = db;
  MDB_val k = {klen, (void *)(uintptr_t)key},
          v = {vlen, (void *)(uintptr_t)val};
  int rc = mdb_put(h->batch, h->dbi, &k, &v, h->put_flags);
  return rc != 0 ? lm_err("mdb_put", rc) : 0;
}

static int lm_batch_commit(void *db) {
  lm *h = db;
  int rc = mdb_txn_commit(h->batch);
  h->batch = NULL;
  return rc != 0 ? lm_err("mdb_txn_commit", rc) : 0;
}

static int lm_iterate(void *db, bk_iter_fn fn, void *ctx) {
  lm *h = db;
  MDB_txn *txn;
  MDB_cursor *c;
  MDB_val k, v;
  int rc = mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn), stop = 0;
  if (rc != 0)
    return lm_err("mdb_txn_begin (read-only)", rc);
  if ((rc = mdb_cursor_open(txn, h->dbi, &c)) != 0) {
    mdb_txn_abort(txn);
    return lm_err("mdb_cursor_open", rc);
  }
  while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0 &&
         (stop = fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) == 0)
    ;
  mdb_cursor_close(c);
  mdb_txn_abort(txn);
  if (stop != 0)
    return stop;
  return rc != MDB_NOTFOUND ? lm_err("mdb_cursor_get", rc) : 0;
}

const bk_vtable bk_lmdb = {.name = NAME,
                           .version = lm_version,
                           .open = lm_open,
                           .close = lm_close,
                           .reader_open = lm_reader_open,
                           .reader_close = lm_reader_close,
                           .view_begin = lm_view_begin,
                           .view_end = lm_view_end,
                           .get = lm_get,
                           .put = lm_put,
                           .del = lm_del,
                           .batch_begin = lm_batch_begin,
                           .batch_put = lm_batch_put,
                           .batch_commit = lm_batch_commit,
                           .writer_open = bk_reader_is_db,
                           .writer_close = bk_reader_none,
                           .sync_put = lm_put,
                           .iterate = lm_iterate,
                           .disk_size = bk_disk_size_dir,
                           .open_ro = lm_open_ro};
