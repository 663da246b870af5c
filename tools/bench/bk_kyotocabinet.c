/*
 * bk_kyotocabinet.c — Kyoto Cabinet's file hash database (HashDB, a .kch
 * file) through its C API (kclangc.h), tuned as its documentation ("Tips
 * and Hacks: tuning the file hash database") recommends for speed:
 *  - bnum (buckets) = 2x the records (the docs: 50%-400% of the records);
 *  - msiz (memory-mapped region) larger than the whole file, so every
 *    access goes through the map, not pread/pwrite (default only 64 MiB);
 *  - KCONOLOCK (no file locking: the bench is the only process);
 *  - non-durable workloads: no sync (a crash of the process loses nothing:
 *    the data sit in the shared map);
 *    fillsync: KCOAUTOSYNC (every update is followed by a synchronisation
 *    of the file, KC's own per-update durability).
 * HashDB has no atomic multi-record batch outside its transactions (which
 * journal every page), so a "batch" is plain sets: this favours Kyoto
 * Cabinet over the stores that commit each batch atomically.
 * The handle is thread-safe (record-level locking): readers and writers
 * are the handle itself. Other processes: a file database is open in one
 * writer process or in reader processes, never both (its file lock).
 */
#include <kclangc.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"

#define NAME "kyotocabinet"

static const char *kc_version(void) { return KCVERSION; }

static int kc_err(KCDB *db, const char *what) {
  return bk_fail(NAME, "%s: %s", what, kcdbemsg(db));
}

static int kc_open(const char *dir, const bk_options *o, void **out) {
  KCDB *db = kcdbnew();
  char name[160];
  unsigned long long bnum = o->expected * 2, msiz;
  uint32_t mode = KCOWRITER | KCOCREATE | KCONOLOCK;
  char *path;
  if (bnum < 1024)
    bnum = 1024;
  /* Records are key + value + a header of at most ~16 bytes, aligned to 8;
   * the bucket array takes 6 bytes per bucket. Twice that, plus slack. */
  msiz =
      (unsigned long long)o->expected * (o->key_size + o->value_size + 32) * 2 +
      bnum * 8 + (64ull << 20);
  snprintf(name, sizeof name, "store.kch#bnum=%llu#msiz=%llu", bnum, msiz);
  if (o->durable)
    mode |= KCOAUTOSYNC;
  if ((path = bk_path(dir, name)) == NULL) {
    kcdbdel(db);
    return bk_fail(NAME, "out of memory");
  }
  if (!kcdbopen(db, path, mode)) {
    kc_err(db, "kcdbopen");
    free(path);
    kcdbdel(db);
    return -1;
  }
  free(path);
  *out = db;
  return 0;
}

static int kc_close(void *h) {
  KCDB *db = h;
  int ok = kcdbclose(db);
  if (!ok)
    kc_err(db, "kcdbclose");
  kcdbdel(db);
  return ok ? 0 : -1;
}

static int kc_get(void *rd, const void *key, size_t klen, void *buf, size_t cap,
                  size_t *vlen) {
  KCDB *db = rd;
  int32_t n = kcdbgetbuf(db, key, klen, buf, cap);
  if (n >= 0) {
    if ((size_t)n > cap)
      return bk_fail(NAME, "value of %d bytes too large", (int)n);
    *vlen = (size_t)n;
    return 1;
  }
  return kcdbecode(db) == KCENOREC ? 0 : kc_err(db, "kcdbgetbuf");
}

static int kc_put(void *h, const void *key, size_t klen, const void *val,
                  size_t vlen) {
  KCDB *db = h;
  return kcdbset(db, key, klen, val, vlen) ? 0 : kc_err(db, "kcdbset");
}

static int kc_del(void *h, const void *key, size_t klen) {
  KCDB *db = h;
  if (kcdbremove(db, key, klen) || kcdbecode(db) == KCENOREC)
    return 0;
  return kc_err(db, "kcdbremove");
}

static int kc_batch_begin(void *h, int sorted) {
  (void)h;
  (void)sorted;
  return 0;
}

static int kc_batch_commit(void *h) {
  (void)h;
  return 0;
}

typedef struct kc_walk {
  bk_iter_fn fn;
  void *ctx;
  int stop;
} kc_walk;

static const char *kc_visit(const char *kbuf, size_t ksiz, const char *vbuf,
                            size_t vsiz, size_t *sp, void *opq) {
  kc_walk *w = opq;
  (void)sp;
  if (w->stop == 0)
    w->stop = w->fn(w->ctx, kbuf, ksiz, vbuf, vsiz);
  return KCVISNOP;
}

static int kc_iterate(void *h, bk_iter_fn fn, void *ctx) {
  KCDB *db = h;
  kc_walk w = {fn, ctx, 0};
  if (!kcdbiterate(db, kc_visit, &w, 0))
    return kc_err(db, "kcdbiterate");
  return w.stop;
}

const bk_vtable bk_kyotocabinet = {.name = NAME,
                                   .version = kc_version,
                                   .open = kc_open,
                                   .close = kc_close,
                                   .reader_open = bk_reader_is_db,
                                   .reader_close = bk_reader_none,
                                   .get = kc_get,
                                   .put = kc_put,
                                   .del = kc_del,
                                   .batch_begin = kc_batch_begin,
                                   .batch_put = kc_put,
                                   .batch_commit = kc_batch_commit,
                                   .writer_open = bk_reader_is_db,
                                   .writer_close = bk_reader_none,
                                   .sync_put = kc_put,
                                   .iterate = kc_iterate,
                                   .disk_size = bk_disk_size_dir,
                                   .no_ro = "a writer process excludes reader "
                                            "processes (file lock)"};
