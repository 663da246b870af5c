/*
 * store_demo.c — the main demo: a store of a million records built through
 * the library, read back and verified, then partly deleted. Prints the
 * time each step took. usage: store_demo DB [RECORDS]
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mapkv/mapkv.h"

#define BATCH 1000

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "store_demo: %s: %s (%s)\n", what, mapkv_strerror(rc),
          mapkv_errmsg());
  exit(1);
}

/* Record i: key "user:%011d" (16 bytes), a 100-byte value derived from i. */
static void make_kv(uint64_t i, char key[17], char val[101]) {
  snprintf(key, 17, "user:%011" PRIu64, i % 100000000000u);
  snprintf(val, 101, "%020" PRIu64 "|%078" PRIx64, i * 2654435761u,
           (uint64_t)(i * 0x9E3779B97F4A7C15ull));
}

/* Prints how long a step took, and its rate when it did n > 1 things. */
static void step(const char *what, double t0, uint64_t n) {
  double s = now() - t0;
  if (n > 1 && s > 0)
    printf("  %-36s %8.3f s  %10.0f ops/s\n", what, s, (double)n / s);
  else
    printf("  %-36s %8.3f s\n", what, s);
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "demo.mkv";
  uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000, i;
  char key[17], val[101], got[128];
  mapkv_options opts;
  mapkv_batch_t *b;
  mapkv_stats st;
  mapkv_t *db;
  size_t len;
  double t0;
  int rc;

  mapkv_options_init(&opts);
  opts.flags = MAPKV_CREATE;
  printf("mapkv demo: %" PRIu64 " records of 16-byte keys and 100-byte values"
         " in %s\n",
         n, path);

  t0 = now();
  if ((rc = mapkv_open(path, &opts, &db)) != 0)
    die("open", rc);
  for (i = 0; i < n; i += BATCH) {
    if ((rc = mapkv_batch_begin(db, &b)) != 0)
      die("batch", rc);
    for (uint64_t j = i; j < i + BATCH && j < n; j++) {
      make_kv(j, key, val);
      if ((rc = mapkv_batch_put(b, key, 16, val, 100)) != 0)
        die("batch put", rc);
    }
    if ((rc = mapkv_batch_commit(b)) != 0) /* durable on return */
      die("commit", rc);
  }
  step("load (durable batches of 1000)", t0, n);

  t0 = now();
  for (i = 0; i < n; i++) {
    uint64_t k = (i * 7919) % n; /* a scattered order */
    make_kv(k, key, val);
    if ((rc = mapkv_get(db, key, 16, got, sizeof got, &len)) != 0)
      die("get", rc);
    if (len != 100 || memcmp(got, val, 100) != 0) {
      fprintf(stderr, "store_demo: wrong value for %s\n", key);
      return 1;
    }
  }
  step("read back and check every value", t0, n);

  t0 = now();
  for (i = 0; i < n; i += 10) { /* every tenth record, one commit each */
    make_kv(i, key, val);
    if ((rc = mapkv_del(db, key, 16)) != 0)
      die("del", rc);
    if (i / 10 == 1000)
      break;
  }
  if ((rc = mapkv_batch_begin(db, &b)) != 0)
    die("batch", rc);
  for (i += 10; i < n; i += 10) { /* the rest of them in one batch */
    make_kv(i, key, val);
    mapkv_batch_del(b, key, 16);
  }
  if ((rc = mapkv_batch_commit(b)) != 0)
    die("commit", rc);
  step("delete every tenth record", t0, (n + 9) / 10);

  mapkv_stat(db, &st);
  printf("  live records %" PRIu64 ", live bytes %" PRIu64
         ", dead bytes %" PRIu64 "\n",
         st.records, st.live_bytes, st.dead_bytes);
  t0 = now();
  if ((rc = mapkv_close(db)) != 0)
    die("close", rc);
  step("close", t0, 1);

  t0 = now();
  opts.flags = MAPKV_RDONLY;
  if ((rc = mapkv_open(path, &opts, &db)) != 0)
    die("reopen", rc);
  mapkv_stat(db, &st);
  step("reopen (index rebuilt from the log)", t0, st.records);
  mapkv_close(db);
  return 0;
}
