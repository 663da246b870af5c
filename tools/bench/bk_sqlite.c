/*
 * bk_sqlite.c — SQLite as a key-value store, the way its documentation
 * recommends for speed:
 *  - one table `CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID`
 *    (the key is the clustered index: one B-tree lookup per get);
 *  - journal_mode=WAL; synchronous=OFF for the non-durable workloads (a
 *    crash of the process loses nothing, the OS writes back), FULL for
 *    fillsync (in WAL mode NORMAL does not sync at commit, FULL does);
 *  - mmap_size 4 GiB (reads come straight from the page cache), cache_size
 *    256 MiB (the whole B-tree fits: bulk inserts need not re-read pages),
 *    temp_store=MEMORY;
 *  - every statement prepared once and reused (bind, step, reset);
 *  - batches are one BEGIN ... COMMIT transaction;
 *  - connections opened SQLITE_OPEN_NOMUTEX: each reader (one per thread)
 *    has its own connection, the writer uses the main one (WAL lets
 *    readers and one writer run concurrently);
 *  - a read view (readrandom_mt) is one BEGIN ... COMMIT on the reader's
 *    connection: its gets share one read transaction;
 *  - writer threads (fillsync_mt) each open their own connection, with
 *    the same pragmas, and a busy timeout of 10 s: a writer that finds
 *    the write lock taken waits in SQLite's busy handler, so the commits
 *    of the threads are serialised by SQLite's WAL write lock;
 *  - reader processes (readprocs) open their connections with
 *    SQLITE_OPEN_READONLY; each get, its own read transaction, sees the
 *    newest commit of the writer process.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#define NAME "sqlite"

typedef struct sq {
  char *path;
  int durable;
  int readonly; /* a handle of open_ro: reader connections only */
  sqlite3 *db;
  sqlite3_stmt *put, *del, *begin, *commit, *iter;
} sq;

typedef struct sq_reader {
  sqlite3 *db;
  sqlite3_stmt *get;
} sq_reader;

static const char *sq_version(void) { return sqlite3_libversion(); }

static int sq_err(sqlite3 *db, const char *what) {
  return bk_fail(NAME, "%s: %s", what, sqlite3_errmsg(db));
}

/* Opens one connection with the pragmas every connection gets (a
 * read-only one leaves the journal mode, WAL, as the writer set it). */
static int sq_connect(const char *path, int durable, int readonly,
                      sqlite3 **out) {
  static const char *const pragmas = "PRAGMA mmap_size=4294967296;"
                                     "PRAGMA cache_size=-262144;"
                                     "PRAGMA temp_store=MEMORY;";
  sqlite3 *db;
  int rc =
      sqlite3_open_v2(path, &db,
                      (readonly ? SQLITE_OPEN_READONLY
                                : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                          SQLITE_OPEN_NOMUTEX,
                      NULL);
  if (rc != SQLITE_OK) {
    sq_err(db, "sqlite3_open_v2");
    sqlite3_close(db);
    return -1;
  }
  sqlite3_busy_timeout(db, 10000);
  if ((!readonly && sqlite3_exec(db, "PRAGMA journal_mode=WAL;", NULL, NULL,
                                 NULL) != SQLITE_OK) ||
      sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
      (!readonly && sqlite3_exec(db,
                                 durable ? "PRAGMA synchronous=FULL;"
                                         : "PRAGMA synchronous=OFF;",
                                 NULL, NULL, NULL) != SQLITE_OK)) {
    sq_err(db, "setting the pragmas");
    sqlite3_close(db);
    return -1;
  }
  *out = db;
  return 0;
}

static int sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) !=
      SQLITE_OK)
    return sq_err(db, sql);
  return 0;
}

static int sq_close(void *db) {
  sq *h = db;
  int rc;
  sqlite3_finalize(h->put);
  sqlite3_finalize(h->del);
  sqlite3_finalize(h->begin);
  sqlite3_finalize(h->commit);
  sqlite3_finalize(h->iter);
  rc = h->db != NULL ? sqlite3_close(h->db) : SQLITE_OK;
  if (rc != SQLITE_OK)
    sq_err(h->db, "sqlite3_close");
  free(h->path);
  free(h);
  return rc == SQLITE_OK ? 0 : -1;
}

static int sq_open(const char *dir, const bk_options *o, void **out) {
  sq *h = calloc(1, sizeof *h);
  if (h == NULL || (h->path = bk_path(dir, "store.sqlite")) == NULL) {
    free(h);
    return bk_fail(NAME, "out of memory");
  }
  h->durable = o->durable;
  if (sq_connect(h->path, o->durable, 0, &h->db) != 0) {
    h->db = NULL;
    sq_close(h);
    return -1;
  }
  if (sqlite3_exec(h->db,
                   "CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB) "
                   "WITHOUT ROWID",
                   NULL, NULL, NULL) != SQLITE_OK) {
    sq_err(h->db, "CREATE TABLE");
    sq_close(h);
    return -1;
  }
  if (sq_prepare(h->db, "INSERT OR REPLACE INTO kv(k, v) VALUES(?1, ?2)",
                 &h->put) != 0 ||
      sq_prepare(h->db, "DELETE FROM kv WHERE k = ?1", &h->del) != 0 ||
      sq_prepare(h->db, "BEGIN", &h->begin) != 0 ||
      sq_prepare(h->db, "COMMIT", &h->commit) != 0 ||
      sq_prepare(h->db, "SELECT k, v FROM kv", &h->iter) != 0) {
    sq_close(h);
    return -1;
  }
  *out = h;
  return 0;
}

static void *sq_reader_open(void *db) {
  sq *h = db;
  sq_reader *r = calloc(1, sizeof *r);
  if (r == NULL) {
    bk_fail(NAME, "out of memory");
    return NULL;
  }
  if (sq_connect(h->path, h->durable, h->readonly, &r->db) != 0) {
    free(r);
    return NULL;
  }
  if (sq_prepare(r->db, "SELECT v FROM kv WHERE k = ?1", &r->get) != 0) {
    sqlite3_close(r->db);
    free(r);
    return NULL;
  }
  return r;
}

static void sq_reader_close(void *rd) {
  sq_reader *r = rd;
  sqlite3_finalize(r->get);
  sqlite3_close(r->db);
  free(r);
}

static int sq_view_begin(void *rd) {
  sq_reader *r = rd;
  return sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK
             ? 0
             : sq_err(r->db, "BEGIN");
}

static int sq_view_end(void *rd) {
  sq_reader *r = rd;
  return sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK
             ? 0
             : sq_err(r->db, "COMMIT");
}

/* A handle for reader processes: no connection of its own; each reader
 * opens a read-only one. */
static int sq_open_ro(const char *dir, const bk_options *o, void **out) {
  sq *h = calloc(1, sizeof *h);
  (void)o;
  if (h == NULL || (h->path = bk_path(dir, "store.sqlite")) == NULL) {
    free(h);
    return bk_fail(NAME, "out of memory");
  }
  h->readonly = 1;
  *out = h;
  return 0;
}

/* A writer thread's own connection (durable as the handle is). */
static void *sq_writer_open(void *db) {
  sq *h = db, *w = calloc(1, sizeof *w);
  if (w == NULL || (w->path = strdup(h->path)) == NULL) {
    free(w);
    bk_fail(NAME, "out of memory");
    return NULL;
  }
  w->durable = h->durable;
  if (sq_connect(w->path, w->durable, 0, &w->db) != 0) {
    w->db = NULL;
    sq_close(w);
    return NULL;
  }
  if (sq_prepare(w->db, "INSERT OR REPLACE INTO kv(k, v) VALUES(?1, ?2)",
                 &w->put) != 0) {
    sq_close(w);
    return NULL;
  }
  return w;
}

static void sq_writer_close(void *w) { sq_close(w); }

static int sq_get(void *rd, const void *key, size_t klen, void *buf, size_t cap,
                  size_t *vlen) {
  sq_reader *r = rd;
  int rc, found = 0;
  sqlite3_bind_blob(r->get, 1, key, (int)klen, SQLITE_STATIC);
  rc = sqlite3_step(r->get);
  if (rc == SQLITE_ROW) {
    size_t n = (size_t)sqlite3_column_bytes(r->get, 0);
    if (n > cap) {
      sqlite3_reset(r->get);
      return bk_fail(NAME, "value of %zu bytes too large", n);
    }
    if (n > 0)
      memcpy(buf, sqlite3_column_blob(r->get, 0), n);
    *vlen = n;
    found = 1;
  } else if (rc != SQLITE_DONE) {
    sq_err(r->db, "SELECT");
    sqlite3_reset(r->get);
    return -1;
  }
  sqlite3_reset(r->get);
  return found;
}

/* Runs a prepared statement that returns no rows. */
static int sq_run(sq *h, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : sq_err(h->db, what);
}

static int sq_put(void *db, const void *key, size_t klen, const void *val,
                  size_t vlen) {
  sq *h = db;
  sqlite3_bind_blob(h->put, 1, key, (int)klen, SQLITE_STATIC);
  sqlite3_bind_blob(h->put, 2, val, (int)vlen, SQLITE_STATIC);
  return sq_run(h, h->put, "INSERT");
}

static int sq_del(void *db, const void *key, size_t klen) {
  sq *h = db;
  sqlite3_bind_blob(h->del, 1, key, (int)klen, SQLITE_STATIC);
  return sq_run(h, h->del, "DELETE");
}

static int sq_batch_begin(void *db, int sorted) {
  sq *h = db;
  (void)sorted;
  return sq_run(h, h->begin, "BEGIN");
}

static int sq_batch_commit(void *db) {
  sq *h = db;
  return sq_run(h, h->commit, "COMMIT");
}

static int sq_iterate(void *db, bk_iter_fn fn, void *ctx) {
  sq *h = db;
  int rc, stop = 0;
  while ((rc = sqlite3_step(h->iter)) == SQLITE_ROW) {
    const void *k = sqlite3_column_blob(h->iter, 0);
    size_t kl = (size_t)sqlite3_column_bytes(h->iter, 0);
    const void *v = sqlite3_column_blob(h->iter, 1);
    size_t vl = (size_t)sqlite3_column_bytes(h->iter, 1);
    if ((stop = fn(ctx, k, kl, v, vl)) != 0)
      break;
  }
  sqlite3_reset(h->iter);
  if (stop != 0)
    return stop;
  return rc == SQLITE_DONE ? 0 : sq_err(h->db, "SELECT k, v");
}

const bk_vtable bk_sqlite = {.name = NAME,
                             .version = sq_version,
                             .open = sq_open,
                             .close = sq_close,
                             .reader_open = sq_reader_open,
                             .reader_close = sq_reader_close,
                             .view_begin = sq_view_begin,
                             .view_end = sq_view_end,
                             .get = sq_get,
                             .put = sq_put,
                             .del = sq_del,
                             .batch_begin = sq_batch_begin,
                             .batch_put = sq_put,
                             .batch_commit = sq_batch_commit,
                             .writer_open = sq_writer_open,
                             .writer_close = sq_writer_close,
                             .sync_put = sq_put,
                             .iterate = sq_iterate,
                             .disk_size = bk_disk_size_dir,
                             .open_ro = sq_open_ro};
