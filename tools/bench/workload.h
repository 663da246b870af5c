/*
 * workload.h — what the workload files of mapkv-bench share inside a
 * store's child process: keys and values (kvgen), the state of one store's
 * run, the checks of every read's answer, and the clock of concurrent
 * workloads. workload.c defines all of it; concurrent.c and durable.c use
 * it.
 */
#ifndef MAPKV_BENCH_WORKLOAD_H
#define MAPKV_BENCH_WORKLOAD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"

/** The generation of a deleted record (gen[] of run). */
#define GEN_DELETED 0xffu

/** Generations of values (the first fill is 0): overwrite 1,
 * readwhilewriting's writer 2, readprocs' writer 3, readprocs' last
 * commit 4; on the store of fillsync: fillsync 1, fillsync_mt 2. */
#define GEN_OVERWRITE 1u
#define GEN_RWW       2u
#define GEN_PROCS     3u
#define GEN_PROBE     4u
#define GEN_SYNC      1u
#define GEN_SYNC_MT   2u

/** Keys and values of a run (see workload.c). */
typedef struct kvgen {
  size_t ks, vs;
  uint8_t *patterns;
  uint64_t npat; /* power of two */
} kvgen;

int bench_kvgen_init(kvgen *g, const bench_config *cfg);
/** Writes the key of number into k (g->ks bytes). */
void bench_make_key(const kvgen *g, uint64_t number, char *k);
/** Writes the value of (number, gen) into v (g->vs bytes). */
void bench_make_value(const kvgen *g, uint64_t number, unsigned gen,
                      uint8_t *v);
/** 1 if val is exactly the value of (number, gen). */
int bench_value_ok(const kvgen *g, uint64_t number, unsigned gen,
                   const void *val, size_t vlen);

/** Random numbers: uniform in [0, n) for n < 2^32, from state *s. */
uint64_t bench_below(uint64_t *s, uint64_t n);
/** A random permutation of 0..n-1 (malloc; NULL if out of memory). */
uint32_t *bench_permutation(uint64_t n, uint64_t seed);

/** The state of one store's run. */
typedef struct run {
  const bench_config *cfg;
  const bk_vtable *bk;
  kvgen g;
  uint64_t n;
  uint8_t *gen; /* per record: its generation, or GEN_DELETED */
  char *dir;    /* the loaded store */
  void *db;
  bk_options opts;
  int fd;
  int failed;
  double max_anon; /* bytes of RssAnon, the largest seen after a workload */
  double peak;     /* VmHWM before the last prefault (bytes) */
  int prefault;    /* prefault before each workload (the peak can be reset) */
} run;

void bench_result_init(bench_result *res, int w);
/** Records why a workload failed (the first reason wins). */
void bench_note(bench_result *res, const char *why);
/** Sets ops, seconds and value (ops/s) of a single-thread timing. */
void bench_timed(bench_result *res, uint64_t ops, double t0, double t1);
/** Counts a wrong answer, printing the first few. Not thread-safe. */
void bench_bad(run *r, bench_result *res, uint64_t number, const char *what);
/** Why the answer of a get of record idx (found, value buf of vl bytes)
 * is wrong for a record of generation gen (GEN_DELETED: must be absent),
 * or NULL if it is right. No side effect. */
const char *bench_read_wrong(const kvgen *g, unsigned gen, uint64_t idx,
                             int found, const uint8_t *buf, size_t vl);
/** Checks the answer of a get of record idx against r->gen. */
void bench_check_read(run *r, bench_result *res, uint64_t idx, int found,
                      const uint8_t *buf, size_t vl);
/** Checks `count` random records (all if count >= n) through a fresh
 * reader, untimed. */
void bench_verify_sample(run *r, void *db, bench_result *res, uint64_t n,
                         uint64_t count);
/** fillseq / fillrandom / overwrite on db: batches of BENCH_BATCH puts in
 * the given order (NULL: ascending, sorted batches), setting r->gen[] to
 * gen. 0 or -1. */
int bench_fill(run *r, void *db, bench_result *res, const uint32_t *order,
               unsigned gen);
/** mkdir dir, then the store's open. 0 or -1. */
int bench_open_store(run *r, const char *dir, const bk_options *o, void **db);
/** base + suffix (malloc). */
char *bench_store_dir(const char *base, const char *suffix);
/** The prefault before a timed workload (see workload.c). */
void bench_prefault(run *r);
/** Sends a result to the parent and prints a progress line. */
void bench_emit(run *r, bench_result *res);
/** Sends "not run: why" for workload w. */
void bench_emit_skipped(run *r, int w, const char *why);

/* ---- the clock of concurrent workloads ----------------------------------
 * Every thread (or process) times itself: it runs until it has done its
 * quota of operations and at least min_seconds have passed since its own
 * start, and records its span. The workload's figure is all operations
 * over the wall time from the first start to the last end; the per-thread
 * figure is the mean of each thread's operations over its own span. */

typedef struct bench_span {
  double t0, t1; /* the thread's start and end */
  uint64_t ops;
} bench_span;

/** Where the threads of a workload wait until all of them are started
 * (then they go) or one could not be (then they give up). */
typedef struct bench_gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int state; /* 0 closed, 1 go, -1 give up */
} bench_gate;

void bench_gate_init(bench_gate *g);
void bench_gate_destroy(bench_gate *g);
/** Waits until the gate opens: 1 go, 0 give up. */
int bench_gate_wait(bench_gate *g);
/** Opens the gate: go (1) or give up (0). */
void bench_gate_open(bench_gate *g, int go);

/** 1 while a thread that has done `done` operations of `quota` since t0
 * should go on. The clock is read every (mask + 1) operations once the
 * quota is done (mask + 1 a power of two). */
static inline int bench_more(uint64_t done, uint64_t quota, double t0,
                             double min_seconds, uint64_t mask) {
  if (done < quota || (done & mask) != 0)
    return 1;
  return bench_now() - t0 < min_seconds;
}

/** Fills ops, seconds, value, per_thread and threads of res from n
 * spans. */
void bench_spans(bench_result *res, const bench_span *s, int n);

/* ---- concurrent.c -------------------------------------------------------- */
void bench_read_random_mt(run *r, bench_result *res);
void bench_read_while_writing(run *r, bench_result *res);
void bench_read_procs(run *r, bench_result *res);

/* ---- durable.c ----------------------------------------------------------- */
/** fillsync_empty, fillsync and fillsync_mt, as selected, each emitted;
 * base is the directory the stores are made from. */
void bench_durable(run *r, const char *base);

#endif /* MAPKV_BENCH_WORKLOAD_H */
