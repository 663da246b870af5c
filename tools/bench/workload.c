/*
 * workload.c — the workloads of mapkv-bench, run on one store inside that
 * store's child process: keys and values, the checks of every answer, the
 * order of the run, and the single-thread workloads (the concurrent ones
 * are in concurrent.c, the durable commits in durable.c).
 *
 * Keys and values: record i (0 <= i < num) has the key number 2i, written
 * as key_size lowercase hex digits ("%016llx" for 16 bytes); the odd
 * numbers 2i+1 are the keys that readmissing looks for, so missing keys are
 * spread among the present ones. A value is derived from its key number and
 * a generation (0 = first fill, 1 = overwrite, 2 = readwhilewriting's
 * writer, ...: workload.h lists them): 16 bytes of number and generation, then
 * the rest of one of a few thousand random patterns chosen by a hash of both.
 * Values are therefore incompressible and checkable with two memcmp, so
 * verification costs every store the same few nanoseconds.
 *
 * Every read is verified: present keys return exactly their expected
 * value, deleted and missing keys are not found; readseq sees every live
 * record exactly once. A wrong answer counts in bad_values and fails the
 * workload (and the run's exit code).
 *
 * Order on one store (the later workloads need the earlier ones' data):
 *   fillseq (own store, removed) — fillrandom (the load; untimed if not
 *   selected) — close — size — open — overwrite — readrandom —
 *   readrandom_mt — readmissing — multireadrandom — readseq — readprocs —
 *   readwhilewriting — deleterandom — close, removed — fillsync_empty (own
 *   store) — fillsync, fillsync_mt (one store of their own, loaded
 *   untimed) — rss (peak of the whole child).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "workload.h"
#include "mapkv/mmf.h"

const char *const bench_workload_names[W_COUNT] = {"fillseq",
                                                   "fillrandom",
                                                   "overwrite",
                                                   "readrandom",
                                                   "readrandom_mt",
                                                   "readmissing",
                                                   "multireadrandom",
                                                   "readseq",
                                                   "readprocs",
                                                   "readwhilewriting",
                                                   "deleterandom",
                                                   "fillsync_empty",
                                                   "fillsync",
                                                   "fillsync_mt",
                                                   "open",
                                                   "size",
                                                   "rss"};

const char *const bench_workload_about[W_COUNT] = {
    "num puts in ascending key order into an empty store, batches of 1000, "
    "no sync",
    "num puts in random order (a permutation) into an empty store, batches "
    "of 1000, no sync",
    "num puts in random order over the loaded store (every key once, new "
    "values), batches of 1000, no sync",
    "num gets of uniformly random present keys, 1 thread, every value "
    "verified",
    "--threads reader threads doing uniformly random gets of present keys, "
    "num in total and for at least --min-seconds, one reader (and read "
    "view) per thread, every value verified",
    "num gets of uniformly random absent keys (interleaved with the present "
    "ones), 1 thread, all must miss",
    "num gets of uniformly random present keys in calls of 32 keys (the "
    "store's batched lookup where it has one, else 32 gets), 1 thread, every "
    "value verified",
    "one iteration over all records (store order), every record verified",
    "--threads reader processes, each opening the store read-only, doing "
    "random gets (num in total, at least --min-seconds) while the store's "
    "process overwrites random keys with single puts; reads/s, and whether "
    "the readers see commits made after their open",
    "--threads readers doing random gets (num in total, at least "
    "--min-seconds) while one writer overwrites random keys with single "
    "puts; reader ops/s",
    "num/2 single deletes of random keys (a permutation), no sync; then "
    "every key checked",
    "--sync-num puts of new keys into an empty store, each one durable "
    "commit; bytes written to storage per commit",
    "--sync-num single puts over random keys of a store of num records "
    "(loaded untimed, closed, reopened), each one durable commit; bytes "
    "written to storage per commit",
    "--writers threads, each making durable single-put commits over random "
    "keys of the store of fillsync (reopened), --sync-num in total and for "
    "at least --min-seconds; bytes written to storage per commit",
    "seconds to open the loaded store of num records after a clean close",
    "bytes on disk of the loaded store after a clean close (allocated "
    "blocks), vs raw key+value bytes",
    "peak RSS (VmHWM) of the store's child process over all its workloads"};

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- random numbers ------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t mix64(uint64_t x) {
  uint64_t s = x;
  return splitmix(&s);
}

/* Uniform in [0, n) for n < 2^32. */
uint64_t bench_below(uint64_t *s, uint64_t n) {
  return ((splitmix(s) >> 32) * n) >> 32;
}

/* A random permutation of 0..n-1. */
uint32_t *bench_permutation(uint64_t n, uint64_t seed) {
  uint32_t *p = malloc((size_t)n * sizeof *p);
  uint64_t s = seed;
  if (p == NULL)
    return NULL;
  for (uint64_t i = 0; i < n; i++)
    p[i] = (uint32_t)i;
  for (uint64_t i = n; i > 1; i--) {
    uint64_t j = bench_below(&s, i);
    uint32_t t = p[i - 1];
    p[i - 1] = p[j];
    p[j] = t;
  }
  return p;
}

/* ---- keys and values ----------------------------------------------------- */

int bench_kvgen_init(kvgen *g, const bench_config *cfg) {
  uint64_t s = cfg->seed ^ 0x5eed;
  size_t total;
  g->ks = cfg->key_size;
  g->vs = cfg->value_size;
  g->npat = 4096;
  while (g->npat > 16 && g->npat * g->vs > ((size_t)16 << 20))
    g->npat /= 2;
  total = (size_t)g->npat * g->vs;
  g->patterns = malloc(total > 0 ? total : 1);
  if (g->patterns == NULL)
    return -1;
  for (size_t i = 0; i < total; i += 8) {
    uint64_t r = splitmix(&s);
    memcpy(g->patterns + i, &r, total - i < 8 ? total - i : 8);
  }
  return 0;
}

void bench_make_key(const kvgen *g, uint64_t number, char *k) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = g->ks; i-- > 0;) {
    k[i] = hex[number & 15];
    number >>= 4;
  }
}

static int parse_key(const kvgen *g, const void *key, size_t klen,
                     uint64_t *number) {
  const unsigned char *k = key;
  uint64_t n = 0;
  if (klen != g->ks)
    return -1;
  for (size_t i = 0; i < klen; i++) {
    unsigned c = k[i], d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return -1;
    if (i + 16 < klen && d != 0)
      return -1; /* beyond 64 bits: not one of ours */
    n = n << 4 | d;
  }
  *number = n;
  return 0;
}

/* The first min(16, vs) bytes of a value: number and generation. */
static size_t value_head(const kvgen *g, uint64_t number, unsigned gen,
                         uint8_t head[16], const uint8_t **pattern) {
  uint64_t h = mix64(number * 4 + gen), w = (uint64_t)gen | h << 8;
  for (unsigned i = 0; i < 8; i++) {
    head[i] = (uint8_t)(number >> (8 * i));
    head[8 + i] = (uint8_t)(w >> (8 * i));
  }
  *pattern = g->patterns + (h & (g->npat - 1)) * g->vs;
  return g->vs < 16 ? g->vs : 16;
}

void bench_make_value(const kvgen *g, uint64_t number, unsigned gen,
                      uint8_t *v) {
  uint8_t head[16];
  const uint8_t *pat;
  size_t h = value_head(g, number, gen, head, &pat);
  memcpy(v + h, pat + h, g->vs - h);
  memcpy(v, head, h);
}

int bench_value_ok(const kvgen *g, uint64_t number, unsigned gen,
                   const void *val, size_t vlen) {
  uint8_t head[16];
  const uint8_t *pat, *v = val;
  size_t h = value_head(g, number, gen, head, &pat);
  return vlen == g->vs && memcmp(v, head, h) == 0 &&
         memcmp(v + h, pat + h, g->vs - h) == 0;
}

/* ---- the run on one store ------------------------------------------------ */

static int selected(const run *r, int w) {
  return (r->cfg->workloads >> w) & 1u;
}

void bench_result_init(bench_result *res, int w) {
  memset(res, 0, sizeof *res);
  res->workload = w;
}

/* Records why a workload failed (the first reason wins). */
void bench_note(bench_result *res, const char *why) {
  if (res->note[0] == '\0')
    snprintf(res->note, sizeof res->note, "%s", why);
}

/* Reads one "Name:   N kB" line of /proc/self/status, in bytes. */
static double proc_status_kb(const char *name) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  size_t n = strlen(name);
  double v = 0;
  if (f == NULL)
    return 0;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, name, n) == 0 && line[n] == ':') {
      v = strtod(line + n + 1, NULL) * 1024.0;
      break;
    }
  }
  fclose(f);
  return v;
}

/* Touches `bytes` of fresh anonymous memory and releases it, so that the
 * workload about to run finds recently used pages on the kernel's free
 * lists. On virtual machines whose host takes back the pages a guest
 * frees (free page reporting), a page that has been free for a few seconds
 * costs a host fault on its next first touch: measured on a 2-core KVM
 * guest, 2.2 ms per MiB against 0.05 ms for memory freed a moment before.
 * Without this, a workload that needs new memory (a fill, an append-only
 * overwrite) pays that host cost or not depending on how long ago the
 * previous workload freed its memory. Every store gets the same. */
static void touch_and_release(uint64_t bytes) {
  long page = sysconf(_SC_PAGESIZE);
  mmf_t *m;
  void *data;
  unsigned char *p;
  if (bytes == 0 || bytes > INT64_MAX || page <= 0 ||
      mmf_open(&m, -1, (int64_t)bytes, MMF_MAP_PRIVATE,
               MMF_PROT_READ | MMF_PROT_WRITE, MMF_ACCESS_DEFAULT, 0, 1) != 0)
    return;
#ifdef MMF_MADV_HUGEPAGE
  /* In 2 MiB pages, which return to the kernel as 2 MiB blocks: the large
   * page-cache folios and huge pages of the stores are taken from those. */
  mmf_madvise(m, MMF_MADV_HUGEPAGE, 0, NULL);
#endif
  mmf_data(m, &data, NULL);
  p = data;
  for (uint64_t i = 0; i < bytes; i += (uint64_t)page)
    p[i] = 1;
  mmf_free(m);
}

/* Resets the process's peak RSS (VmHWM) to its current RSS. 0 or -1. */
static int reset_peak_rss(void) {
  int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  int ok;
  if (fd < 0)
    return -1;
  ok = write(fd, "5", 1) == 1;
  close(fd);
  return ok ? 0 : -1;
}

/* Before a timed workload: the prefault, kept out of the peak RSS (the
 * peak so far is saved, the counter reset after the touch). */
void bench_prefault(run *r) {
  double hwm;
  if (!r->prefault)
    return;
  hwm = proc_status_kb("VmHWM");
  if (hwm > r->peak)
    r->peak = hwm;
  touch_and_release(r->cfg->prefault);
  if (reset_peak_rss() != 0) {
    /* Not expected after the check at the start; the peak now includes
     * the touch, so stop here and report it as it is. */
    r->prefault = 0;
  }
}

/* Sends a result to the parent and prints a progress line. */
void bench_emit(run *r, bench_result *res) {
  const char *w = bench_workload_names[res->workload];
  double anon = proc_status_kb("RssAnon");
  ssize_t n;
  if (anon > r->max_anon)
    r->max_anon = anon;
  if (res->bad_values > 0) {
    res->failed = 1;
    if (res->note[0] == '\0')
      snprintf(res->note, sizeof res->note, "%llu wrong answers",
               (unsigned long long)res->bad_values);
  }
  if (res->failed)
    r->failed = 1;
  n = write(r->fd, res, sizeof *res);
  if (n != (ssize_t)sizeof *res)
    r->failed = 1;
  if (res->failed)
    fprintf(stderr, "mapkv-bench: %s: %s FAILED: %s\n", r->bk->name, w,
            res->note);
  else if (res->unsupported)
    fprintf(stderr, "mapkv-bench: %s: %s not supported: %s\n", r->bk->name, w,
            res->note);
  else if (BENCH_IS_DURABLE(res->workload))
    fprintf(stderr,
            "mapkv-bench: %s: %s %.0f commits/s (%.3f s), %.0f bytes "
            "dirtied and %.0f written to the device per commit\n",
            r->bk->name, w, res->value, res->seconds, res->wbytes, res->dbytes);
  else if (res->workload == W_OPEN)
    fprintf(stderr, "mapkv-bench: %s: %s %.4f s\n", r->bk->name, w, res->value);
  else if (res->workload == W_SIZE || res->workload == W_RSS)
    fprintf(stderr, "mapkv-bench: %s: %s %.1f MiB\n", r->bk->name, w,
            res->value / 1048576.0);
  else
    fprintf(stderr, "mapkv-bench: %s: %s %.0f ops/s (%.3f s)\n", r->bk->name, w,
            res->value, res->seconds);
}

/* A workload that could not run because an earlier step failed. */
void bench_emit_skipped(run *r, int w, const char *why) {
  bench_result res;
  bench_result_init(&res, w);
  res.failed = 1;
  snprintf(res.note, sizeof res.note, "not run: %s", why);
  bench_emit(r, &res);
}

void bench_timed(bench_result *res, uint64_t ops, double t0, double t1) {
  res->ops = ops;
  res->seconds = t1 - t0;
  res->value = res->seconds > 0 ? (double)ops / res->seconds : 0;
}

void bench_spans(bench_result *res, const bench_span *s, int n) {
  double t0 = 0, t1 = 0, sum = 0;
  uint64_t ops = 0;
  for (int i = 0; i < n; i++) {
    if (i == 0 || s[i].t0 < t0)
      t0 = s[i].t0;
    if (i == 0 || s[i].t1 > t1)
      t1 = s[i].t1;
    ops += s[i].ops;
    if (s[i].t1 > s[i].t0)
      sum += (double)s[i].ops / (s[i].t1 - s[i].t0);
  }
  bench_timed(res, ops, t0, t1);
  res->threads = n;
  res->per_thread = n > 0 ? sum / n : 0;
}

/* Counts a wrong answer, printing the first few. */
void bench_bad(run *r, bench_result *res, uint64_t number, const char *what) {
  if (res->bad_values++ < 5)
    fprintf(stderr, "mapkv-bench: %s: %s: key number %llu: %s\n", r->bk->name,
            bench_workload_names[res->workload], (unsigned long long)number,
            what);
}

/* Checks the answer of a get of record idx (key number 2 * idx): found or
 * not as its generation says, and then with its value. */
const char *bench_read_wrong(const kvgen *g, unsigned gen, uint64_t idx,
                             int found, const uint8_t *buf, size_t vl) {
  if (gen == GEN_DELETED)
    return found ? "deleted key found" : NULL;
  if (!found)
    return "present key not found";
  return bench_value_ok(g, 2 * idx, gen, buf, vl) ? NULL : "wrong value";
}

void bench_check_read(run *r, bench_result *res, uint64_t idx, int found,
                      const uint8_t *buf, size_t vl) {
  const char *why = bench_read_wrong(&r->g, r->gen[idx], idx, found, buf, vl);
  if (why != NULL)
    bench_bad(r, res, 2 * idx, why);
}

void bench_gate_init(bench_gate *g) {
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->state = 0;
}

void bench_gate_destroy(bench_gate *g) {
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
}

int bench_gate_wait(bench_gate *g) {
  int st;
  pthread_mutex_lock(&g->mu);
  while (g->state == 0)
    pthread_cond_wait(&g->cv, &g->mu);
  st = g->state;
  pthread_mutex_unlock(&g->mu);
  return st > 0;
}

void bench_gate_open(bench_gate *g, int go) {
  pthread_mutex_lock(&g->mu);
  g->state = go ? 1 : -1;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

char *bench_store_dir(const char *base, const char *suffix) {
  size_t a = strlen(base), b = strlen(suffix);
  char *p = malloc(a + b + 1);
  if (p != NULL) {
    memcpy(p, base, a);
    memcpy(p + a, suffix, b + 1);
  }
  return p;
}

int bench_rmtree(const char *dir) { return bk_rmtree(dir); }

int bench_open_store(run *r, const char *dir, const bk_options *o, void **db) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    return bk_fail(r->bk->name, "mkdir %s: %s", dir, strerror(errno));
  return r->bk->open(dir, o, db);
}

/* Checks `count` random records through a fresh reader (untimed). */
void bench_verify_sample(run *r, void *db, bench_result *res, uint64_t n,
                         uint64_t count) {
  void *rd = r->bk->reader_open(db);
  char *k = malloc(r->g.ks);
  uint8_t *buf = malloc(r->g.vs + 64);
  uint64_t s = r->cfg->seed ^ 0x77;
  if (rd == NULL || k == NULL || buf == NULL) {
    res->failed = 1;
    bench_note(res, "verification could not start");
  } else {
    for (uint64_t i = 0; i < count; i++) {
      uint64_t idx = count >= n ? i % n : bench_below(&s, n);
      size_t vl = 0;
      int rc;
      if (idx >= n)
        break;
      bench_make_key(&r->g, 2 * idx, k);
      rc = r->bk->get(rd, k, r->g.ks, buf, r->g.vs + 64, &vl);
      if (rc < 0) {
        res->failed = 1;
        bench_note(res, "get failed while verifying");
        break;
      }
      bench_check_read(r, res, idx, rc == 1, buf, vl);
    }
  }
  if (rd != NULL)
    r->bk->reader_close(rd);
  free(k);
  free(buf);
}

/* fillseq / fillrandom / overwrite: batches of BENCH_BATCH puts. order ==
 * NULL: ascending key order (sorted batches). */
int bench_fill(run *r, void *db, bench_result *res, const uint32_t *order,
               unsigned gen) {
  const bk_vtable *bk = r->bk;
  char *k = malloc(r->g.ks);
  uint8_t *v = malloc(r->g.vs + 1);
  double t0, t1;
  uint64_t i, done = 0;
  if (k == NULL || v == NULL) {
    free(k);
    free(v);
    res->failed = 1;
    bench_note(res, "out of memory");
    return -1;
  }
  t0 = bench_now();
  for (i = 0; i < r->n; i += BENCH_BATCH) {
    uint64_t m = r->n - i < BENCH_BATCH ? r->n - i : BENCH_BATCH;
    if (bk->batch_begin(db, order == NULL) != 0)
      break;
    for (uint64_t j = 0; j < m; j++) {
      uint64_t idx = order != NULL ? order[i + j] : i + j;
      bench_make_key(&r->g, 2 * idx, k);
      bench_make_value(&r->g, 2 * idx, gen, v);
      if (bk->batch_put(db, k, r->g.ks, v, r->g.vs) != 0)
        goto out;
    }
    if (bk->batch_commit(db) != 0)
      break;
    done += m;
  }
out:
  t1 = bench_now();
  free(k);
  free(v);
  bench_timed(res, done, t0, t1);
  if (done != r->n) {
    res->failed = 1;
    bench_note(res, "a put or commit failed");
    return -1;
  }
  for (i = 0; i < r->n; i++)
    r->gen[i] = (uint8_t)gen;
  return 0;
}

/* readrandom (missing == 0) and readmissing (missing == 1). */
static void read_random(run *r, bench_result *res, int missing) {
  const bk_vtable *bk = r->bk;
  void *rd = bk->reader_open(r->db);
  char *k = malloc(r->g.ks);
  uint8_t *buf = malloc(r->g.vs + 64);
  uint64_t s = r->cfg->seed ^ (missing ? 0x3333 : 0x2222), i;
  double t0, t1;
  if (rd == NULL || k == NULL || buf == NULL) {
    res->failed = 1;
    bench_note(res, "could not open a reader");
    goto out;
  }
  t0 = bench_now();
  for (i = 0; i < r->n; i++) {
    uint64_t idx = bench_below(&s, r->n), number = 2 * idx + (missing ? 1 : 0);
    size_t vl = 0;
    int rc;
    bench_make_key(&r->g, number, k);
    rc = bk->get(rd, k, r->g.ks, buf, r->g.vs + 64, &vl);
    if (rc < 0) {
      res->failed = 1;
      bench_note(res, "get failed");
      break;
    }
    if (missing) {
      if (rc != 0)
        bench_bad(r, res, number, "absent key found");
    } else {
      bench_check_read(r, res, idx, rc == 1, buf, vl);
    }
  }
  t1 = bench_now();
  bench_timed(res, i, t0, t1);
out:
  if (rd != NULL)
    bk->reader_close(rd);
  free(k);
  free(buf);
}

/* multireadrandom: the keys of readrandom, BENCH_MULTI per call. */
static void multi_read(run *r, bench_result *res) {
  const bk_vtable *bk = r->bk;
  void *rd = bk->reader_open(r->db);
  char *kmem = malloc(BENCH_MULTI * r->g.ks);
  uint8_t *vmem = malloc(BENCH_MULTI * (r->g.vs + 64));
  const void *keys[BENCH_MULTI];
  void *bufs[BENCH_MULTI];
  size_t klens[BENCH_MULTI], vlens[BENCH_MULTI];
  uint64_t idx[BENCH_MULTI];
  int found[BENCH_MULTI];
  uint64_t s = r->cfg->seed ^ 0x2222, i = 0;
  double t0, t1;
  if (rd == NULL || kmem == NULL || vmem == NULL) {
    res->failed = 1;
    bench_note(res, "could not open a reader");
    goto out;
  }
  for (size_t j = 0; j < BENCH_MULTI; j++) {
    keys[j] = kmem + j * r->g.ks;
    klens[j] = r->g.ks;
    bufs[j] = vmem + j * (r->g.vs + 64);
  }
  t0 = bench_now();
  while (i < r->n) {
    size_t m = r->n - i < BENCH_MULTI ? (size_t)(r->n - i) : BENCH_MULTI;
    for (size_t j = 0; j < m; j++) {
      idx[j] = bench_below(&s, r->n);
      bench_make_key(&r->g, 2 * idx[j], kmem + j * r->g.ks);
    }
    if (bk->multi_get != NULL) {
      if (bk->multi_get(rd, m, keys, klens, bufs, r->g.vs + 64, vlens, found) !=
          0) {
        res->failed = 1;
        bench_note(res, "multi_get failed");
        break;
      }
    } else {
      for (size_t j = 0; j < m; j++) {
        int rc =
            bk->get(rd, keys[j], klens[j], bufs[j], r->g.vs + 64, &vlens[j]);
        if (rc < 0) {
          res->failed = 1;
          bench_note(res, "get failed");
          goto done;
        }
        found[j] = rc;
      }
    }
    for (size_t j = 0; j < m; j++)
      bench_check_read(r, res, idx[j], found[j], bufs[j], vlens[j]);
    i += m;
  }
done:
  t1 = bench_now();
  bench_timed(res, i, t0, t1);
out:
  if (rd != NULL)
    bk->reader_close(rd);
  free(kmem);
  free(vmem);
}

/* readseq: one iteration over everything. */
typedef struct seq_ctx {
  run *r;
  bench_result *res;
  uint8_t *seen; /* one bit per record */
  uint64_t count;
} seq_ctx;

static int seq_visit(void *ctx, const void *key, size_t klen, const void *val,
                     size_t vlen) {
  seq_ctx *c = ctx;
  uint64_t number, idx;
  c->count++;
  if (parse_key(&c->r->g, key, klen, &number) != 0 || (number & 1) != 0 ||
      (idx = number / 2) >= c->r->n) {
    bench_bad(c->r, c->res, 0,
              "iteration returned a key that was never written");
    return 0;
  }
  if (c->r->gen[idx] == GEN_DELETED)
    bench_bad(c->r, c->res, number, "iteration returned a deleted key");
  else if (c->seen[idx / 8] & (1u << (idx % 8)))
    bench_bad(c->r, c->res, number, "iteration returned a key twice");
  else if (!bench_value_ok(&c->r->g, number, c->r->gen[idx], val, vlen))
    bench_bad(c->r, c->res, number, "iteration returned a wrong value");
  c->seen[idx / 8] |= (uint8_t)(1u << (idx % 8));
  return 0;
}

static void read_seq(run *r, bench_result *res) {
  seq_ctx c = {r, res, calloc((size_t)(r->n / 8 + 1), 1), 0};
  uint64_t live = 0;
  double t0, t1;
  int rc;
  if (c.seen == NULL) {
    res->failed = 1;
    bench_note(res, "out of memory");
    return;
  }
  t0 = bench_now();
  rc = r->bk->iterate(r->db, seq_visit, &c);
  t1 = bench_now();
  bench_timed(res, c.count, t0, t1);
  if (rc != 0) {
    res->failed = 1;
    bench_note(res, "iteration failed");
  }
  for (uint64_t i = 0; i < r->n; i++)
    live += r->gen[i] != GEN_DELETED;
  if (rc == 0 && c.count != live) {
    char msg[96];
    snprintf(msg, sizeof msg, "iteration saw %llu records of %llu",
             (unsigned long long)c.count, (unsigned long long)live);
    bench_bad(r, res, 0, msg);
  }
  free(c.seen);
}

static void delete_random(run *r, bench_result *res) {
  uint64_t m = r->n / 2 > 0 ? r->n / 2 : r->n, i;
  uint32_t *order = bench_permutation(r->n, r->cfg->seed ^ 0x5555);
  char *k = malloc(r->g.ks);
  double t0, t1;
  if (order == NULL || k == NULL) {
    res->failed = 1;
    bench_note(res, "out of memory");
    free(order);
    free(k);
    return;
  }
  t0 = bench_now();
  for (i = 0; i < m; i++) {
    bench_make_key(&r->g, 2 * (uint64_t)order[i], k);
    if (r->bk->del(r->db, k, r->g.ks) != 0) {
      res->failed = 1;
      bench_note(res, "del failed");
      break;
    }
  }
  t1 = bench_now();
  bench_timed(res, i, t0, t1);
  for (uint64_t j = 0; j < i; j++)
    r->gen[order[j]] = GEN_DELETED;
  free(order);
  free(k);
  /* Every key, untimed: deleted ones gone, the others intact. */
  if (!res->failed)
    bench_verify_sample(r, r->db, res, r->n, r->n);
}

int bench_run_store(const bench_config *cfg, const bk_vtable *bk,
                    const char *dir, int fd) {
  const unsigned need_load =
      (1u << W_FILLRANDOM) | (1u << W_OVERWRITE) | (1u << W_READRANDOM) |
      (1u << W_READRANDOM_MT) | (1u << W_READMISSING) | (1u << W_MULTIREAD) |
      (1u << W_READSEQ) | (1u << W_READPROCS) | (1u << W_READWHILEWRITING) |
      (1u << W_DELETERANDOM) | (1u << W_OPEN) | (1u << W_SIZE) | (1u << W_RSS);
  run r;
  bench_result res;
  uint32_t *order = NULL;
  double base_rss;
  memset(&r, 0, sizeof r);
  r.cfg = cfg;
  r.bk = bk;
  r.n = cfg->num;
  r.fd = fd;
  r.opts.durable = 0;
  r.opts.expected = cfg->num;
  r.opts.key_size = cfg->key_size;
  r.opts.value_size = cfg->value_size;
  r.gen = calloc((size_t)r.n + 1, 1);
  r.dir = bench_store_dir(dir, "");
  if (bench_kvgen_init(&r.g, cfg) != 0 || r.gen == NULL || r.dir == NULL) {
    fprintf(stderr, "mapkv-bench: out of memory\n");
    return 1;
  }
  base_rss = proc_status_kb("VmRSS");
  r.prefault = cfg->prefault > 0 && reset_peak_rss() == 0;

  if (selected(&r, W_FILLSEQ)) {
    char *d = bench_store_dir(dir, "-fillseq");
    void *db = NULL;
    bench_prefault(&r);
    bench_result_init(&res, W_FILLSEQ);
    if (d == NULL || bench_open_store(&r, d, &r.opts, &db) != 0) {
      res.failed = 1;
      bench_note(&res, "could not open the store");
    } else {
      if (bench_fill(&r, db, &res, NULL, 0) == 0)
        bench_verify_sample(&r, db, &res, r.n, 1000);
      if (bk->close(db) != 0) {
        res.failed = 1;
        bench_note(&res, "close failed");
      }
    }
    bench_emit(&r, &res);
    if (d != NULL)
      bench_rmtree(d);
    free(d);
  }

  if (cfg->workloads & need_load) {
    const char *broken = NULL;
    int64_t apparent = 0, allocated = 0;
    double t0, t1;
    order = bench_permutation(r.n, cfg->seed ^ 0x1111);
    bench_prefault(&r);
    bench_result_init(&res, W_FILLRANDOM);
    if (order == NULL || bench_open_store(&r, r.dir, &r.opts, &r.db) != 0) {
      broken = "the store could not be opened";
      r.db = NULL;
    } else if (bench_fill(&r, r.db, &res, order, 0) != 0) {
      broken = "the load (fillrandom) failed";
    } else {
      bench_verify_sample(&r, r.db, &res, r.n, 1000);
    }
    if (r.db != NULL && bk->close(r.db) != 0 && broken == NULL)
      broken = "close after the load failed";
    r.db = NULL;
    if (broken != NULL) {
      res.failed = 1;
      bench_note(&res, broken);
    }
    if (selected(&r, W_FILLRANDOM))
      bench_emit(&r, &res);
    else if (broken != NULL)
      r.failed = 1;

    /* size: the loaded store after a clean close. */
    if (selected(&r, W_SIZE)) {
      bench_result_init(&res, W_SIZE);
      if (broken != NULL) {
        res.failed = 1;
        snprintf(res.note, sizeof res.note, "not run: %s", broken);
      } else if (bk->disk_size(NULL, r.dir, &apparent, &allocated) != 0) {
        res.failed = 1;
        bench_note(&res, "could not measure the files");
      } else {
        res.value = (double)allocated;
        res.extra[0] = (double)apparent;
        res.ops = r.n;
      }
      bench_emit(&r, &res);
    }

    /* open: time to open the loaded store after a clean close. */
    if (broken == NULL) {
      bench_result_init(&res, W_OPEN);
      t0 = bench_now();
      if (bk->open(r.dir, &r.opts, &r.db) != 0) {
        r.db = NULL;
        broken = "reopening the store failed";
        res.failed = 1;
        bench_note(&res, broken);
      }
      t1 = bench_now();
      res.seconds = t1 - t0;
      res.value = res.seconds;
      res.ops = r.n;
      if (selected(&r, W_OPEN))
        bench_emit(&r, &res);
    } else if (selected(&r, W_OPEN)) {
      bench_emit_skipped(&r, W_OPEN, broken);
    }

    for (int w = W_OVERWRITE; w <= W_DELETERANDOM; w++) {
      uint32_t *o2;
      if (!selected(&r, w))
        continue;
      if (broken != NULL) {
        bench_emit_skipped(&r, w, broken);
        continue;
      }
      bench_prefault(&r);
      bench_result_init(&res, w);
      switch (w) {
      case W_OVERWRITE:
        o2 = bench_permutation(r.n, cfg->seed ^ 0x6666);
        if (o2 == NULL || bench_fill(&r, r.db, &res, o2, 1) != 0)
          broken = "overwrite failed";
        else
          bench_verify_sample(&r, r.db, &res, r.n, 1000);
        if (o2 == NULL) {
          res.failed = 1;
          bench_note(&res, "out of memory");
        }
        free(o2);
        break;
      case W_READRANDOM:
        read_random(&r, &res, 0);
        break;
      case W_READRANDOM_MT:
        bench_read_random_mt(&r, &res);
        break;
      case W_READMISSING:
        read_random(&r, &res, 1);
        break;
      case W_MULTIREAD:
        multi_read(&r, &res);
        break;
      case W_READSEQ:
        read_seq(&r, &res);
        break;
      case W_READPROCS:
        bench_read_procs(&r, &res);
        break;
      case W_READWHILEWRITING:
        bench_read_while_writing(&r, &res);
        break;
      case W_DELETERANDOM:
        delete_random(&r, &res);
        break;
      default:
        break;
      }
      bench_emit(&r, &res);
    }
    if (r.db != NULL && bk->close(r.db) != 0) {
      fprintf(stderr, "mapkv-bench: %s: close failed\n", bk->name);
      r.failed = 1;
    }
    r.db = NULL;
    bench_rmtree(r.dir);
  }

  if (selected(&r, W_FILLSYNC_EMPTY) || selected(&r, W_FILLSYNC) ||
      selected(&r, W_FILLSYNC_MT))
    bench_durable(&r, dir);

  if (selected(&r, W_RSS)) {
    bench_result_init(&res, W_RSS);
    res.value = proc_status_kb("VmHWM");
    if (r.peak > res.value)
      res.value = r.peak;
    res.extra[0] = base_rss;
    res.extra[1] = r.max_anon;
    bench_emit(&r, &res);
  }
  free(order);
  free(r.gen);
  free(r.dir);
  free(r.g.patterns);
  return r.failed;
}
