/*
 * backend.h — the one interface through which mapkv-bench drives every
 * store: mapkv itself and each peer (LMDB, LevelDB, RocksDB, SQLite, Kyoto
 * Cabinet, tkrzw, gdbm). Each store is one adapter file, bk_<name>.c,
 * compiled only when its library was found (MAPKV_BENCH_HAVE_<NAME>).
 *
 * Rules every adapter keeps, so that the workloads measure the stores and
 * not the adapters:
 *  - a store lives in its own directory, which the bench creates empty and
 *    removes afterwards; the adapter chooses the file names inside it;
 *  - writes are not durable unless the store was opened with `durable`
 *    (then every put, batch commit and delete is one durable commit), but
 *    are never lost by a crash of the process alone;
 *  - get copies the value into the caller's buffer (the cost of the copy
 *    is part of every store's figure);
 *  - errors are printed (bk_fail) and returned as -1; "not found" is not an
 *    error.
 * Concurrency: reads go through a reader, one per thread (reader_open is
 * called on the thread that will use it). While readers run, one other
 * thread may call put. Durable commits from several threads at once go
 * through writers, one per thread (writer_open, on the thread that will
 * use it, then sync_put on the writer). Nothing else runs concurrently.
 * Other processes: open_ro opens, in a process of its own, a store that
 * another process holds open for writing (NULL when the store does not
 * allow it; no_ro says why).
 */
#ifndef MAPKV_BENCH_BACKEND_H
#define MAPKV_BENCH_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/** How a store is opened. */
typedef struct bk_options {
  int durable;       /**< one durable commit per write (fillsync) */
  uint64_t expected; /**< records the store will hold, for presizing */
  size_t key_size;   /**< bytes of every key */
  size_t value_size; /**< bytes of every value */
} bk_options;

/** Sees one record of iterate(); a nonzero return stops the walk and is
 * returned by iterate(). */
typedef int (*bk_iter_fn)(void *ctx, const void *key, size_t klen,
                          const void *val, size_t vlen);

/** The adapter of one store. Every function pointer is set, except
 * multi_get (NULL when the store has no batched lookup), view_begin and
 * view_end (NULL when the store has no read view to keep across gets),
 * open_ro (NULL when another process cannot read the store while one
 * writes it) and ro_refresh (NULL when nothing is needed to see newer
 * commits, or nothing can be done). */
typedef struct bk_vtable {
  const char *name; /**< as given to --backends */
  /** Library version, for the report (static string). */
  const char *(*version)(void);
  /** Opens (creating if needed) the store in dir; 0 or -1. */
  int (*open)(const char *dir, const bk_options *o, void **db);
  /** Closes cleanly: the next open finds everything written. 0 or -1; the
   * handle is gone either way. */
  int (*close)(void *db);
  /** A reader for the calling thread (NULL on error). */
  void *(*reader_open)(void *db);
  void (*reader_close)(void *rd);
  /** Starts a read view on the reader: until view_end, its gets may all
   * see the state of view_begin (LMDB: one read transaction; SQLite: one
   * BEGIN ... COMMIT). 0 or -1. May be NULL. */
  int (*view_begin)(void *rd);
  /** Ends the view of view_begin. 0 or -1. May be NULL. */
  int (*view_end)(void *rd);
  /** Copies the value of key into buf (cap bytes): 1 found (*vlen set),
   * 0 not found, -1 error. */
  int (*get)(void *rd, const void *key, size_t klen, void *buf, size_t cap,
             size_t *vlen);
  /** Looks up n keys in one call of the store's batched lookup: for each
   * key, found[i] = 1 and its value copied into bufs[i] (cap bytes, length
   * in vlens[i]), or found[i] = 0. 0 or -1. May be NULL. */
  int (*multi_get)(void *rd, size_t n, const void *const *keys,
                   const size_t *klens, void *const *bufs, size_t cap,
                   size_t *vlens, int *found);
  /** One put as its own commit. 0 or -1. */
  int (*put)(void *db, const void *key, size_t klen, const void *val,
             size_t vlen);
  /** Deletes key (missing is not an error). 0 or -1. */
  int (*del)(void *db, const void *key, size_t klen);
  /** A group of puts committed together, never synced. `sorted` promises
   * that the keys of this batch come in ascending order after every key in
   * the store (LMDB's MDB_APPEND). 0 or -1. */
  int (*batch_begin)(void *db, int sorted);
  int (*batch_put)(void *db, const void *key, size_t klen, const void *val,
                   size_t vlen);
  int (*batch_commit)(void *db);
  /** A writer for the calling thread, through which that thread makes
   * durable commits while other threads make theirs (NULL on error). For
   * thread-safe handles the writer is the handle itself. */
  void *(*writer_open)(void *db);
  void (*writer_close)(void *w);
  /** One put as one durable commit (the store was opened durable), on the
   * handle or on a writer of writer_open. */
  int (*sync_put)(void *w, const void *key, size_t klen, const void *val,
                  size_t vlen);
  /** Calls fn for every record. 0, -1, or fn's nonzero return. */
  int (*iterate)(void *db, bk_iter_fn fn, void *ctx);
  /** Bytes the store takes on disk: *apparent (sum of file sizes) and
   * *allocated (blocks). 0 or -1. */
  int (*disk_size)(void *db, const char *dir, int64_t *apparent,
                   int64_t *allocated);
  /** Opens read-only, in this process, the store in dir that another
   * process holds open for writing; readers of reader_open and get work on
   * the handle, close closes it. 0 or -1. May be NULL. */
  int (*open_ro)(const char *dir, const bk_options *o, void **db);
  /** Why open_ro is NULL (static string), else NULL. */
  const char *no_ro;
  /** Brings a handle of open_ro up to the newest commit of the writer
   * process (RocksDB's secondary instance catches up). 0 or -1. May be
   * NULL. */
  int (*ro_refresh)(void *db);
} bk_vtable;

/** The compiled-in stores, mapkv first; NULL-terminated. */
extern const bk_vtable *const bk_all[];

/* One extern per adapter (defined in bk_<name>.c). */
extern const bk_vtable bk_mapkv;
extern const bk_vtable bk_lmdb;
extern const bk_vtable bk_leveldb;
extern const bk_vtable bk_rocksdb;
extern const bk_vtable bk_sqlite;
extern const bk_vtable bk_kyotocabinet;
extern const bk_vtable bk_tkrzw;
extern const bk_vtable bk_gdbm;

/* ---- helpers for adapters (backends.c) ---------------------------------- */

#if defined(__GNUC__)
#define BK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define BK_PRINTF(a, b)
#endif

/** Prints "mapkv-bench: <store>: <message>" to stderr; returns -1. */
int bk_fail(const char *store, const char *fmt, ...) BK_PRINTF(2, 3);

/** Sums the sizes of the regular files under dir (recursively). */
int bk_dir_size(const char *dir, int64_t *apparent, int64_t *allocated);

/** disk_size for adapters whose store is just the files in dir. */
int bk_disk_size_dir(void *db, const char *dir, int64_t *apparent,
                     int64_t *allocated);

/** reader_open/reader_close for thread-safe handles: the reader is the
 * handle itself. */
void *bk_reader_is_db(void *db);
void bk_reader_none(void *rd);

/** Removes dir and everything under it (missing is fine). 0 or -1. */
int bk_rmtree(const char *dir);

/** Joins dir and name into a new string (malloc; NULL on failure). */
char *bk_path(const char *dir, const char *name);

#endif /* MAPKV_BENCH_BACKEND_H */
