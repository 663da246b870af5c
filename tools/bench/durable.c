/*
 * durable.c — the workloads of durable commits, and their baseline:
 *  - fillsync_empty: --sync-num single puts of new keys into an empty
 *    store, each one durable commit;
 *  - fillsync: the store a user has: num records loaded (untimed, in
 *    batches of BENCH_BATCH in ascending key order, not durable), the store
 *    closed and opened again durable, then --sync-num single puts over
 *    random present keys, each one durable commit;
 *  - fillsync_mt: the same store opened again, --writers threads each
 *    making durable single-put commits over random present keys, through a
 *    writer of its own (bk_vtable.writer_open), --sync-num commits in total
 *    and for at least --min-seconds;
 *  - the write+fdatasync baseline: append one key+value record with
 *    write(), then fdatasync(), --sync-num times.
 * Each reports commits/s and the bytes written to storage per commit, by
 * the two counters of iocount.h, read just before and just after the timed
 * commits. Before the timed part of fillsync and fillsync_mt the load's
 * dirty pages are written back (syncfs) and the store's own background
 * writes (an LSM's flushes and compactions after the load) are waited for
 * (bench_io_settle), so that neither is charged to the commits.
 *
 * The load is in ascending key order because that leaves the LSM stores
 * no compaction debt to pay during the commits (their sorted tables do not
 * overlap), and changes nothing for the others' commits, which overwrite
 * records of the same size.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "iocount.h"
#include "workload.h"

/* How long the store's own writes must have stopped before the timed
 * commits start, and the longest wait for that. */
static double quiet_seconds(const bench_config *cfg) {
  double q = cfg->min_seconds / 10;
  return q < 0.02 ? 0.02 : q > 0.2 ? 0.2 : q;
}

#define SETTLE_MAX 10.0

/* Writes back what the load left dirty on the filesystem of dir. */
static void write_back(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    syncfs(fd);
    close(fd);
  }
}

/* Checks the first m keys of order (their generations in r->gen) and a
 * sample of 1000 others, through a fresh reader. */
static void verify_written(run *r, void *db, bench_result *res,
                           const uint32_t *order, uint64_t m) {
  void *rd = r->bk->reader_open(db);
  char *k = malloc(r->g.ks);
  uint8_t *buf = malloc(r->g.vs + 64);
  if (rd == NULL || k == NULL || buf == NULL) {
    res->failed = 1;
    bench_note(res, "verification could not start");
  } else {
    for (uint64_t i = 0; i < m && i < r->n; i++) {
      size_t vl = 0;
      int rc;
      bench_make_key(&r->g, 2 * (uint64_t)order[i], k);
      rc = r->bk->get(rd, k, r->g.ks, buf, r->g.vs + 64, &vl);
      if (rc < 0) {
        res->failed = 1;
        bench_note(res, "get failed while verifying");
        break;
      }
      bench_check_read(r, res, order[i], rc == 1, buf, vl);
    }
  }
  if (rd != NULL)
    r->bk->reader_close(rd);
  free(k);
  free(buf);
  if (!res->failed)
    bench_verify_sample(r, db, res, r->n, 1000);
}

/* ---- fillsync_empty ------------------------------------------------------ */

static void fill_sync_empty(run *r, const char *base) {
  bench_result res;
  bk_options o = r->opts;
  char *dir = bench_store_dir(base, "-sync-empty");
  char *k = malloc(r->g.ks);
  uint8_t *v = malloc(r->g.vs + 1);
  uint64_t n = r->cfg->sync_num, i;
  void *db = NULL;
  bench_io io;
  bench_io_sample a, b;
  double t0, t1;
  bench_result_init(&res, W_FILLSYNC_EMPTY);
  o.durable = 1;
  o.expected = n;
  if (dir == NULL || k == NULL || v == NULL ||
      bench_open_store(r, dir, &o, &db) != 0) {
    res.failed = 1;
    bench_note(&res, "could not open the store");
    goto out;
  }
  bench_io_find(dir, &io);
  bench_io_read(&io, &a);
  t0 = bench_now();
  for (i = 0; i < n; i++) {
    bench_make_key(&r->g, 2 * i, k);
    bench_make_value(&r->g, 2 * i, 0, v);
    if (r->bk->sync_put(db, k, r->g.ks, v, r->g.vs) != 0) {
      res.failed = 1;
      bench_note(&res, "sync put failed");
      break;
    }
  }
  t1 = bench_now();
  bench_io_read(&io, &b);
  bench_timed(&res, i, t0, t1);
  bench_io_per_op(&a, &b, i, &res.wbytes, &res.dbytes);
  if (!res.failed) {
    /* Verify every record: all of generation 0. */
    uint8_t *loaded = r->gen, *zero = calloc((size_t)n + 1, 1);
    if (zero != NULL) {
      r->gen = zero;
      bench_verify_sample(r, db, &res, n, n);
      r->gen = loaded;
      free(zero);
    }
  }
  if (r->bk->close(db) != 0) {
    res.failed = 1;
    bench_note(&res, "close failed");
  }
out:
  bench_emit(r, &res);
  if (dir != NULL)
    bench_rmtree(dir);
  free(dir);
  free(k);
  free(v);
}

/* ---- fillsync ------------------------------------------------------------ */

static void fill_sync(run *r, const char *dir) {
  bench_result res;
  bk_options o = r->opts;
  char *k = malloc(r->g.ks);
  uint8_t *v = malloc(r->g.vs + 1);
  uint32_t *order = bench_permutation(r->n, r->cfg->seed ^ 0xabab);
  uint64_t n = r->cfg->sync_num, i;
  void *db = NULL;
  bench_io io;
  bench_io_sample a, b;
  double t0, t1;
  bench_result_init(&res, W_FILLSYNC);
  o.durable = 1;
  if (k == NULL || v == NULL || order == NULL ||
      r->bk->open(dir, &o, &db) != 0) {
    res.failed = 1;
    bench_note(&res, "could not reopen the loaded store");
    goto out;
  }
  bench_io_find(dir, &io);
  bench_io_settle(quiet_seconds(r->cfg), SETTLE_MAX);
  bench_io_read(&io, &a);
  t0 = bench_now();
  for (i = 0; i < n; i++) {
    uint64_t idx = order[i % r->n];
    bench_make_key(&r->g, 2 * idx, k);
    bench_make_value(&r->g, 2 * idx, GEN_SYNC, v);
    if (r->bk->sync_put(db, k, r->g.ks, v, r->g.vs) != 0) {
      res.failed = 1;
      bench_note(&res, "sync put failed");
      break;
    }
  }
  t1 = bench_now();
  bench_io_read(&io, &b);
  bench_timed(&res, i, t0, t1);
  bench_io_per_op(&a, &b, i, &res.wbytes, &res.dbytes);
  for (uint64_t j = 0; j < i && j < r->n; j++)
    r->gen[order[j]] = GEN_SYNC;
  if (!res.failed)
    verify_written(r, db, &res, order, i);
  if (r->bk->close(db) != 0) {
    res.failed = 1;
    bench_note(&res, "close failed");
  }
out:
  bench_emit(r, &res);
  free(order);
  free(k);
  free(v);
}

/* ---- fillsync_mt --------------------------------------------------------- */

typedef struct fmt_ctx {
  run *r;
  void *db;
  const uint32_t *order;
  int writers;
  uint64_t quota;
  bench_gate gate;
  atomic_int ready; /* writers that have opened their writer */
  atomic_int failed;
} fmt_ctx;

typedef struct fmt_writer {
  fmt_ctx *c;
  int index;
  bench_span span;
} fmt_writer;

static void *fmt_write(void *arg) {
  fmt_writer *me = arg;
  fmt_ctx *c = me->c;
  run *r = c->r;
  void *w = r->bk->writer_open(c->db);
  char *k = malloc(r->g.ks);
  uint8_t *v = malloc(r->g.vs + 1);
  uint64_t done = 0;
  double t0;
  int ok = w != NULL && k != NULL && v != NULL;
  if (!ok)
    atomic_store(&c->failed, 1);
  atomic_fetch_add(&c->ready, 1);
  if (!bench_gate_wait(&c->gate))
    ok = 0;
  t0 = me->span.t0 = bench_now();
  while (ok && bench_more(done, c->quota, t0, r->cfg->min_seconds, 0)) {
    /* Writer j takes every writers-th key of the order, from j. */
    uint64_t idx =
        c->order[((uint64_t)me->index + (uint64_t)c->writers * done) % r->n];
    bench_make_key(&r->g, 2 * idx, k);
    bench_make_value(&r->g, 2 * idx, GEN_SYNC_MT, v);
    if (r->bk->sync_put(w, k, r->g.ks, v, r->g.vs) != 0) {
      atomic_store(&c->failed, 1);
      break;
    }
    done++;
  }
  me->span.t1 = bench_now();
  me->span.ops = done;
  if (w != NULL)
    r->bk->writer_close(w);
  free(k);
  free(v);
  return NULL;
}

static void fill_sync_mt(run *r, const char *dir) {
  bench_result res;
  bk_options o = r->opts;
  int nw = r->cfg->writers, started = 0;
  uint32_t *order = bench_permutation(r->n, r->cfg->seed ^ 0xcdcd);
  fmt_writer *me = calloc((size_t)nw, sizeof *me);
  pthread_t *th = calloc((size_t)nw, sizeof *th);
  bench_span *spans = calloc((size_t)nw, sizeof *spans);
  uint32_t *written = NULL;
  uint64_t total = 0;
  fmt_ctx c;
  bench_io io;
  bench_io_sample a, b;
  bench_result_init(&res, W_FILLSYNC_MT);
  memset(&c, 0, sizeof c);
  o.durable = 1;
  if (order == NULL || me == NULL || th == NULL || spans == NULL ||
      r->bk->open(dir, &o, &c.db) != 0) {
    c.db = NULL;
    res.failed = 1;
    bench_note(&res, "could not reopen the loaded store");
    goto out;
  }
  c.r = r;
  c.order = order;
  c.writers = nw;
  c.quota =
      r->cfg->sync_num / (uint64_t)nw > 0 ? r->cfg->sync_num / (uint64_t)nw : 1;
  bench_gate_init(&c.gate);
  atomic_init(&c.ready, 0);
  atomic_init(&c.failed, 0);
  bench_io_find(dir, &io);
  bench_io_settle(quiet_seconds(r->cfg), SETTLE_MAX);
  for (int i = 0; i < nw; i++) {
    me[i].c = &c;
    me[i].index = i;
    if (pthread_create(&th[i], NULL, fmt_write, &me[i]) != 0)
      break;
    started++;
  }
  /* The writers' connections are open before the counters are read. */
  while (atomic_load(&c.ready) < started) {
    const struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  bench_io_read(&io, &a);
  bench_gate_open(&c.gate, started == nw && !atomic_load(&c.failed));
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
    spans[i] = me[i].span;
    total += me[i].span.ops;
  }
  bench_io_read(&io, &b);
  bench_gate_destroy(&c.gate);
  if (started != nw || atomic_load(&c.failed)) {
    res.failed = 1;
    bench_note(&res, started != nw ? "could not start the threads"
                                   : "a writer failed");
  }
  bench_spans(&res, spans, started);
  bench_io_per_op(&a, &b, total, &res.wbytes, &res.dbytes);
  /* The keys written, in no particular order, for the check. */
  if ((written = malloc(
           (size_t)(total < r->n ? total : r->n) * sizeof *written + 1)) ==
      NULL) {
    res.failed = 1;
    bench_note(&res, "out of memory");
  } else {
    uint64_t m = 0;
    for (int j = 0; j < nw; j++)
      for (uint64_t i = 0; i < me[j].span.ops; i++) {
        uint64_t at = ((uint64_t)j + (uint64_t)nw * i) % r->n;
        if (r->gen[order[at]] != GEN_SYNC_MT && m < r->n) {
          r->gen[order[at]] = GEN_SYNC_MT;
          written[m++] = order[at];
        }
      }
    if (!res.failed)
      verify_written(r, c.db, &res, written, m);
  }
out:
  if (c.db != NULL && r->bk->close(c.db) != 0) {
    res.failed = 1;
    bench_note(&res, "close failed");
  }
  bench_emit(r, &res);
  free(written);
  free(order);
  free(me);
  free(th);
  free(spans);
}

void bench_durable(run *r, const char *base) {
  const unsigned w = r->cfg->workloads;
  char *dir;
  if ((w >> W_FILLSYNC_EMPTY) & 1u) {
    bench_prefault(r);
    fill_sync_empty(r, base);
  }
  if (!((w >> W_FILLSYNC) & 1u) && !((w >> W_FILLSYNC_MT) & 1u))
    return;
  dir = bench_store_dir(base, "-sync");
  {
    /* The load: num records, not durable, closed as a user's program
     * would before the next one opens the store. */
    bench_result res;
    void *db = NULL;
    const char *broken = NULL;
    bench_prefault(r);
    bench_result_init(&res, W_FILLSYNC);
    if (dir == NULL || bench_open_store(r, dir, &r->opts, &db) != 0) {
      broken = "the store could not be opened for the load";
      db = NULL;
    } else if (bench_fill(r, db, &res, NULL, 0) != 0) {
      broken = "the load failed";
    }
    if (db != NULL && r->bk->close(db) != 0 && broken == NULL)
      broken = "close after the load failed";
    if (broken != NULL) {
      if ((w >> W_FILLSYNC) & 1u)
        bench_emit_skipped(r, W_FILLSYNC, broken);
      if ((w >> W_FILLSYNC_MT) & 1u)
        bench_emit_skipped(r, W_FILLSYNC_MT, broken);
      goto out;
    }
    write_back(dir);
  }
  if ((w >> W_FILLSYNC) & 1u) {
    bench_prefault(r);
    fill_sync(r, dir);
  }
  if ((w >> W_FILLSYNC_MT) & 1u) {
    bench_prefault(r);
    fill_sync_mt(r, dir);
  }
out:
  if (dir != NULL)
    bench_rmtree(dir);
  free(dir);
}

/* ---- the write+fdatasync baseline ---------------------------------------- */

int bench_run_fdatasync(const bench_config *cfg, const char *dir, int fd) {
  bench_result res;
  kvgen g;
  char *path = bench_store_dir(dir, "-fdatasync.log");
  uint8_t *rec;
  size_t len = cfg->key_size + cfg->value_size;
  bench_io io;
  bench_io_sample a, b;
  double t0, t1;
  uint64_t i;
  int f, rc = 0;
  bench_result_init(&res, W_FILLSYNC);
  if (path == NULL || bench_kvgen_init(&g, cfg) != 0 ||
      (rec = malloc(len)) == NULL) {
    fprintf(stderr, "mapkv-bench: out of memory\n");
    return 1;
  }
  f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (f < 0) {
    res.failed = 1;
    snprintf(res.note, sizeof res.note, "open: %s", strerror(errno));
  } else {
    bench_io_find(path, &io);
    bench_io_read(&io, &a);
    t0 = bench_now();
    for (i = 0; i < cfg->sync_num; i++) {
      bench_make_key(&g, 2 * i, (char *)rec);
      bench_make_value(&g, 2 * i, 0, rec + cfg->key_size);
      if (write(f, rec, len) != (ssize_t)len || fdatasync(f) != 0) {
        res.failed = 1;
        snprintf(res.note, sizeof res.note, "write/fdatasync: %s",
                 strerror(errno));
        break;
      }
    }
    t1 = bench_now();
    bench_io_read(&io, &b);
    bench_timed(&res, i, t0, t1);
    bench_io_per_op(&a, &b, i, &res.wbytes, &res.dbytes);
    close(f);
  }
  /* The same figures stand beside fillsync and fillsync_empty. */
  for (int w = 0; w < 2; w++) {
    res.workload = w == 0 ? W_FILLSYNC : W_FILLSYNC_EMPTY;
    if (write(fd, &res, sizeof res) != (ssize_t)sizeof res)
      rc = 1;
  }
  if (!res.failed)
    fprintf(stderr,
            "mapkv-bench: write+fdatasync: %.0f commits/s, %.0f bytes "
            "dirtied and %.0f written to the device per commit\n",
            res.value, res.wbytes, res.dbytes);
  unlink(path);
  free(path);
  free(rec);
  free(g.patterns);
  return res.failed || rc;
}
