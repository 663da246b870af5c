/*
 * test_crash.c — process-crash harness: real processes killed with SIGKILL
 * at random moments while they write, grow, compact and recover a store.
 *
 * Every round forks a writer child that opens the store with
 * MAPKV_SYNC_COMMIT and tiny initial_size/growth_step (so that the file
 * grows all the time), then commits a deterministic stream of commits
 * 1, 2, 3, ... (single puts, single deletes, one-operation batches and
 * multi-operation batches of up to ~90 operations, some values several KiB)
 * and after each mapkv_put/mapkv_del/mapkv_batch_commit that returned 0
 * writes the commit's id to a pipe. Every so often it runs mapkv_compact; in
 * "tight" rounds it compacts in a loop with a commit every other pass; now
 * and then it closes the store cleanly and reopens it. A quarter of the
 * rounds use MAPKV_SYNC_NONE instead (a process crash loses nothing
 * acknowledged in any mode; commits are so fast there that kills often land
 * inside the writing of a batch, which leaves torn tails to recover). The
 * parent SIGKILLs it after a delay from a seeded PRNG (a quarter of them
 * below 100 us, most of the rest up to 20 ms, some up to 100 ms; usually
 * counted from the child's "store open" message, sometimes from fork() so
 * that the open itself is hit).
 *
 * Commit c's operations are a function of (seed, c), and the value of key k
 * written by commit c is a function of (seed, c, k) that starts with c and
 * k: the parent replays the acknowledged commits into a model and knows,
 * for every key, the bytes it must hold. After the kill it checks the store:
 *   - the raw file: the offset of its last non-zero byte (what recovery
 *     must report dropping), and whether a <db>.compact file was left;
 *   - a read-only open, then a writable open (which must agree): the store
 *     is exactly the model after the last acknowledged commit A, or after
 *     A+1 (the commit in flight at the kill) — every key, value byte and
 *     deletion, through a cursor walk, mapkv_get and mapkv_exists; so no
 *     acknowledged commit is lost and the in-flight one is all or nothing.
 *     A kill during a compaction or a reopen (no commit in flight) must
 *     leave exactly A;
 *   - every multi-operation batch also writes a "batch marker" key: the
 *     keys of the newest visible batch must all carry its id (or a newer
 *     single operation's), no key may show an older value, and no key a
 *     newer batch's;
 *   - mapkv_stat: records == keys of the cursor walk == model, live_bytes
 *     exact, dead_bytes/data_end/file_size consistent, no damage, no
 *     checksum failure, dropped_tail_bytes == (last non-zero byte - data
 *     end) and at most the in-flight commit's size, zero if it was kept,
 *     the generation counts the finished compactions;
 *   - mapkv_verify() returns 0 with no damaged span; after the writable
 *     open the file is zero from data_end to its end, and <db>.compact is
 *     gone;
 *   - the cursor walks the file in order (compaction keeps it): the keys
 *     written by one stream of commits come in the order of its commits;
 * then the parent closes the store and the next round goes on with it.
 *
 * Writer threads: a quarter of the rounds run 2-4 threads (the number from
 * the PRNG) in the writer child, all MAPKV_SYNC_COMMIT on one handle, so
 * that their commits meet in group commit. Thread t commits its own stream
 * (t, 1), (t, 2), ... (it goes on in the next such round) over its own 16
 * keys, a progress key that each of its batches writes, and 6 keys shared
 * by all threads: single puts, single deletes of its own keys, batches of
 * one operation and of 2-55 (about one operation in 8 on a shared key).
 * Thread 0 compacts now and then, alongside the others' commits. After a
 * commit returned 0, a thread reads its own keys back (mapkv_get must show
 * the commit), then acknowledges it over the pipe with one write of less
 * than PIPE_BUF bytes (whole even among several threads) that carries its
 * vector: the last commit of every thread that had returned before its
 * next commit begins. In half of these rounds, the writer kills itself
 * (SIGKILL) right after its threads' k-th acknowledgement (k from the
 * PRNG): just after a commit returned, where one that returned before its
 * records reached the file would be lost. After the kill the parent
 * checks, on the read-only and on the writable open:
 *   - each thread's keys are exactly its model after its last commit
 *     known to have returned (acknowledged, or in another thread's
 *     vector), A_t, or after A_t+1 (its commit in flight), all or nothing;
 *     the single writer's keys and those of threads that did not run are
 *     the model;
 *   - a shared key holds the value before the round if no surviving commit
 *     wrote it, else the effect of some thread's last surviving write to
 *     it; not one of a commit that had returned before another thread's
 *     surviving write to that key began (which lies after it in the log);
 *     a shared key showing a thread's in-flight commit proves it kept;
 *   - file order: everything of the round after everything before it, and
 *     a commit that had returned before another began before it;
 *   - recovery dropped at most the bytes and records of the in-flight
 *     commits not in the store (zero if all were kept); the rest as above.
 * The model then takes the store's state (the shared keys as shown), and
 * a commit in flight that nothing shows kept runs again in the next round
 * of its thread (it writes the same values). Reader children of these
 * rounds check every snapshot the same way, each thread's keys after any
 * of its commits of the round.
 *
 * Variations: "chained" rounds skip the parent's check, so that the next
 * writer child recovers the crashed store itself, checks it the same way
 * against the model, and writes on after the recovered tail (re-running the
 * in-flight commit if it was dropped); "recoverer" children open a crashed
 * store for writing and are killed during recovery (or exit without a clean
 * close); reader-only children (MAPKV_RDONLY) run alongside the writer,
 * check every snapshot they open against the model (it must equal the
 * replay of commits 1..P for some P) and are killed too; junk <db>.compact
 * files (garbage, or a copy of the store) are planted before writers and
 * before checks; while a writer lives, a second writable open must fail
 * with MAPKV_ELOCKED (that writer does not close and reopen the store: the
 * open would get in between).
 *
 * Environment:
 *   MAPKV_CRASH_KILLS=N    writer kills (one per round); default 200 (the
 *                          CI mode: ~5 s, ~9 s under AddressSanitizer, on
 *                          2 cores). A long run (~70 s):
 *                            MAPKV_CRASH_KILLS=3000 \
 *                            MAPKV_TEST_TMPDIR=build/tests/tmp \
 *                            build/tests/test_crash
 *   MAPKV_CRASH_SEED=S     the PRNG seed (default fixed; printed).
 *   MAPKV_CRASH_VERBOSE=1  one line per round.
 * A summary (kills, rounds, commits acknowledged, in-flight commits kept or
 * lost, bytes dropped by recovery, the rounds with writer threads, ...) is
 * printed at the end; a failure names the round, the seed and the store
 * file (kept for inspection). Built with -fsanitize=thread, the children's
 * reports go to stderr (TSAN_OPTIONS=symbolize=0 writes them before a kill
 * can cut them short; log_path=DIR/t keeps one file per child).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mapkv/mapkv.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define CRASH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CRASH_ASAN 1
#endif
#endif
#ifndef CRASH_ASAN
#define CRASH_ASAN 0
#endif

typedef unsigned long long ull;

#define DEFAULT_KILLS 200
#define NK            40       /* ordinary keys of the single writer */
#define MARKER        NK       /* index of the batch marker key */
#define NSKEYS        (NK + 1) /* the single writer's keys */
#define NTH           4        /* most writer threads */
#define NT            16       /* keys of one thread */
#define TKEYS         (NT + 1) /* ... and its progress key */
#define TBASE(t)      (NSKEYS + (t)*TKEYS)
#define PROGRESS(t)   (TBASE(t) + NT)
#define SBASE         (NSKEYS + NTH * TKEYS) /* keys shared by the threads */
#define NSH           6
#define NKEYS         (SBASE + NSH)
#define TAG_SHIFT     48 /* a value's tag: stream << TAG_SHIFT | commit */
#define MAXOPS        96 /* operations of the largest batch */
#define KEY_CAP       48
#define VAL_CAP       8192  /* largest value is 7499 bytes */
#define HDR_PAGE      4096u /* FORMAT.md: the header page */
#define REC_OVERHEAD  30u   /* FORMAT.md: 22-byte head + 8-byte checksum */
#define COMMIT_REC    32u   /* a COMMIT record */
#define READY_TIMEOUT 60000 /* ms a writer may take to open the store */

/* ---- deterministic randomness -------------------------------------------- */

static uint64_t g_seed;

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static uint64_t mix64(uint64_t x) { return rng_next(&x); }

static uint64_t h3(uint64_t a, uint64_t b, uint64_t c) {
  return mix64(mix64(mix64(a) ^ b) ^ c);
}

static void put_le(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* ---- keys, values, commits ----------------------------------------------- */

static char g_keybuf[NKEYS][KEY_CAP];
static const char *g_keys[NKEYS];
static size_t g_klen[NKEYS];

static void make_keys(void) {
  char *b;
  for (unsigned i = 0; i < NKEYS; i++)
    g_keys[i] = g_keybuf[i];
  for (unsigned i = 0; i < NK; i++) {
    int n = snprintf(b = g_keybuf[i], KEY_CAP, "key-%02u-", i);
    size_t pad = (i * 7u) % 19u;
    memset(b + n, 'a' + (int)(i % 26), pad);
    g_klen[i] = (size_t)n + pad;
  }
  g_klen[MARKER] = (size_t)snprintf(g_keybuf[MARKER], KEY_CAP, "~batch-marker");
  for (unsigned t = 0; t < NTH; t++) {
    for (unsigned j = 0; j < NT; j++) {
      unsigned i = TBASE(t) + j;
      int n = snprintf(b = g_keybuf[i], KEY_CAP, "t%u-key-%02u-", t, j);
      size_t pad = (j * 5u + t) % 13u;
      memset(b + n, 'a' + (int)((i + t) % 26), pad);
      g_klen[i] = (size_t)n + pad;
    }
    g_klen[PROGRESS(t)] =
        (size_t)snprintf(g_keybuf[PROGRESS(t)], KEY_CAP, "~t%u-progress", t);
  }
  for (unsigned j = 0; j < NSH; j++)
    g_klen[SBASE + j] =
        (size_t)snprintf(g_keybuf[SBASE + j], KEY_CAP, "shared-%02u", j);
}

/* Commits are numbered per stream: stream 0 is the single writer's, stream
 * t+1 writer thread t's. A value starts with its commit's tag. */
static uint64_t tag_of(unsigned stream, uint64_t c) {
  return (uint64_t)stream << TAG_SHIFT | c;
}
static unsigned stream_of(uint64_t tag) { return (unsigned)(tag >> TAG_SHIFT); }
static uint64_t id_of(uint64_t tag) { return tag & ((1ull << TAG_SHIFT) - 1); }
static int is_shared(unsigned k) { return k >= SBASE; }

static int key_index(const void *k, size_t kl) {
  for (int i = 0; i < NKEYS; i++)
    if (g_klen[i] == kl && memcmp(g_keys[i], k, kl) == 0)
      return i;
  return -1;
}

/* Value of key k as written by commit c (a tag): c (8 bytes), k (4
 * bytes), then bytes from (seed, c, k) (a cheap generator: the writer makes
 * values all the time); one in 16 is 1.5-7.5 KiB. */
static size_t val_len(uint64_t c, unsigned k) {
  uint64_t h = h3(g_seed, c, 1000 + k);
  if (h % 16 == 0)
    return 1500 + (size_t)((h >> 8) % 6000);
  return 12 + (size_t)((h >> 8) % 180);
}

static size_t val_make(uint64_t c, unsigned k, uint8_t *buf) {
  size_t n = val_len(c, k);
  uint64_t w = h3(g_seed, c, 5000 + k);
  size_t i = 12;
  put_le(buf, c, 8);
  put_le(buf + 8, k, 4);
  for (; i + 8 <= n; i += 8) {
    w = w * 6364136223846793005ull + 1442695040888963407ull;
    memcpy(buf + i, &w, 8);
  }
  for (; i < n; i++)
    buf[i] = (uint8_t)(w >> (8 * (i % 8)));
  return n;
}

enum { K_PUT = 1, K_DEL = 2, K_BATCH = 3 };

typedef struct cop {
  uint8_t del, key;
} cop;

typedef struct commit_t {
  int kind;   /* K_PUT: mapkv_put, K_DEL: mapkv_del, K_BATCH: a batch */
  unsigned n; /* operations */
  cop op[MAXOPS];
} commit_t;

/* Commit c of thread t (tag c): 45% batches of 2-7 operations (one in 10
 * of 16-55), each with one put of the thread's progress key and one
 * operation in 8 on a shared key; then single puts (one in 5 of a shared
 * key), single deletes of the thread's own keys and batches of one
 * operation (one in 4 on a shared key). Shared keys are never the target
 * of a single delete (whether it finds the key depends on the other
 * threads). */
static void gen_tcommit(unsigned t, uint64_t c, commit_t *cm) {
  uint64_t s = h3(g_seed, c, 77);
  unsigned roll = (unsigned)(rng_next(&s) % 100);
  if (roll < 45) {
    unsigned n = 2 + (unsigned)(rng_next(&s) % 6), pos;
    if (rng_next(&s) % 10 == 0)
      n = 16 + (unsigned)(rng_next(&s) % 40);
    pos = (unsigned)(rng_next(&s) % n);
    cm->kind = K_BATCH;
    cm->n = n;
    for (unsigned i = 0; i < n; i++) {
      if (i == pos) {
        cm->op[i].del = 0;
        cm->op[i].key = (uint8_t)PROGRESS(t);
      } else {
        int sh = rng_next(&s) % 8 == 0;
        cm->op[i].key = (uint8_t)(sh ? SBASE + rng_next(&s) % NSH
                                     : TBASE(t) + rng_next(&s) % NT);
        cm->op[i].del = rng_next(&s) % 6 == 0;
      }
    }
    return;
  }
  cm->n = 1;
  if (roll < 75) {
    int sh = rng_next(&s) % 5 == 0;
    cm->kind = K_PUT;
    cm->op[0].del = 0;
    cm->op[0].key = (uint8_t)(sh ? SBASE + rng_next(&s) % NSH
                                 : TBASE(t) + rng_next(&s) % NT);
  } else if (roll < 88) {
    cm->kind = K_DEL;
    cm->op[0].del = 1;
    cm->op[0].key = (uint8_t)(TBASE(t) + rng_next(&s) % NT);
  } else {
    int sh = rng_next(&s) % 4 == 0;
    cm->kind = K_BATCH;
    cm->op[0].key = (uint8_t)(sh ? SBASE + rng_next(&s) % NSH
                                 : TBASE(t) + rng_next(&s) % NT);
    cm->op[0].del = rng_next(&s) % 2 == 0;
  }
}

/* Commit c of the single writer (tag c): half are batches of 2-7
 * operations (one in 10 of 20-89), each with one put of the marker key;
 * then single puts, single deletes and batches of one operation. Keys
 * repeat within a batch (the later wins). Other tags: threads' commits
 * (above), or none. */
static void gen_commit(uint64_t c, commit_t *cm) {
  uint64_t s = h3(g_seed, c, 77);
  unsigned roll;
  if (stream_of(c) != 0 || c == 0) {
    if (stream_of(c) >= 1 && stream_of(c) <= NTH && id_of(c) != 0) {
      gen_tcommit(stream_of(c) - 1, c, cm);
    } else {
      cm->kind = K_BATCH;
      cm->n = 0;
    }
    return;
  }
  roll = (unsigned)(rng_next(&s) % 100);
  if (roll < 50) {
    unsigned n = 2 + (unsigned)(rng_next(&s) % 6), pos;
    if (rng_next(&s) % 10 == 0)
      n = 20 + (unsigned)(rng_next(&s) % 70);
    pos = (unsigned)(rng_next(&s) % n);
    cm->kind = K_BATCH;
    cm->n = n;
    for (unsigned i = 0; i < n; i++) {
      if (i == pos) {
        cm->op[i].del = 0;
        cm->op[i].key = MARKER;
      } else {
        cm->op[i].key = (uint8_t)(rng_next(&s) % NK);
        cm->op[i].del = rng_next(&s) % 6 == 0;
      }
    }
    return;
  }
  cm->n = 1;
  cm->op[0].key = (uint8_t)(rng_next(&s) % NK);
  if (roll < 78) {
    cm->kind = K_PUT;
    cm->op[0].del = 0;
  } else if (roll < 92) {
    cm->kind = K_DEL;
    cm->op[0].del = 1;
  } else {
    cm->kind = K_BATCH;
    cm->op[0].del = rng_next(&s) % 2 == 0;
  }
}

static int is_multi(uint64_t c) {
  commit_t cm;
  gen_commit(c, &cm);
  return cm.n > 1;
}

/* The model: for every key the commit whose value it holds, 0 if absent. */
static void model_apply(uint64_t *cid, uint64_t c) {
  commit_t cm;
  gen_commit(c, &cm);
  for (unsigned i = 0; i < cm.n; i++)
    cid[cm.op[i].key] = cm.op[i].del ? 0 : c;
}

/* The same but for the shared keys (their state depends on the order of
 * the threads' commits in the log). */
static void model_apply_own(uint64_t *cid, uint64_t c) {
  commit_t cm;
  gen_commit(c, &cm);
  for (unsigned i = 0; i < cm.n; i++)
    if (!is_shared(cm.op[i].key))
      cid[cm.op[i].key] = cm.op[i].del ? 0 : c;
}

/* What commit c does to key k at last: 0 nothing, 1 puts it, 2 deletes
 * it. */
static int commit_effect(uint64_t c, unsigned k) {
  commit_t cm;
  int eff = 0;
  gen_commit(c, &cm);
  for (unsigned i = 0; i < cm.n; i++)
    if (cm.op[i].key == k)
      eff = cm.op[i].del ? 2 : 1;
  return eff;
}

/* Bytes commit c appends to the log (an upper bound for a delete). */
static uint64_t commit_bytes(uint64_t c) {
  commit_t cm;
  uint64_t total = 0;
  gen_commit(c, &cm);
  for (unsigned i = 0; i < cm.n; i++) {
    unsigned k = cm.op[i].key;
    total += REC_OVERHEAD + g_klen[k] + (cm.op[i].del ? 0 : val_len(c, k));
  }
  return total + (cm.n > 1 ? COMMIT_REC : 0);
}

/* Whether commit c's last operation on key k is a put. */
static int commit_puts(uint64_t c, unsigned k) {
  return commit_effect(c, k) == 1;
}

/* Whether commit c is a single deletion of key k. */
static int single_del_of(uint64_t c, unsigned k) {
  commit_t cm;
  gen_commit(c, &cm);
  return cm.n == 1 && cm.op[0].del && cm.op[0].key == k;
}

/* Whether the writer compacts before commit c: about every 100 durable
 * commits (every 2000 in MAPKV_SYNC_NONE, where commits are so much faster
 * that compactions would take most of the time). */
static int compact_before(uint64_t c, int sync_mode) {
  return h3(g_seed, c, 99) % (sync_mode == MAPKV_SYNC_NONE ? 2000 : 100) == 0;
}

/* Whether the writer closes and reopens the store before commit c (a
 * clean close, then the walk of a clean store; kills land in both). */
static int reopen_before(uint64_t c, int sync_mode) {
  return h3(g_seed, c, 123) % (sync_mode == MAPKV_SYNC_NONE ? 3000 : 150) == 0;
}

/* ---- checking a store ---------------------------------------------------- */

typedef struct obs_t {
  uint64_t cid[NKEYS]; /* what the store holds, as the model writes it */
  uint64_t count, live_bytes;
  uint8_t order[NKEYS]; /* the keys in the cursor's (the file's) order */
  mapkv_stats st;
} obs_t;

static uint8_t g_vbuf[VAL_CAP], g_vexp[VAL_CAP];

#define BAD(...)                                                               \
  do {                                                                         \
    snprintf(err, cap, __VA_ARGS__);                                           \
    return -1;                                                                 \
  } while (0)

/* The batch marker rule on what a store shows: every key of the newest
 * visible batch m carries m (or a newer single operation's value, or is
 * absent after a newer single delete), none shows a value older than m,
 * and no key shows a batch newer than m. */
static int check_marker(const uint64_t *cid, char *err, size_t cap) {
  uint64_t m = cid[MARKER];
  commit_t cm;
  int eff[NKEYS];
  for (unsigned k = 0; k < NSKEYS; k++)
    if (cid[k] > m && is_multi(cid[k]))
      BAD("key %s shows batch %llu, newer than the batch marker (%llu)",
          g_keys[k], (ull)cid[k], (ull)m);
  if (m == 0)
    return 0;
  gen_commit(m, &cm);
  if (cm.n < 2)
    BAD("the batch marker shows commit %llu, which is not a batch", (ull)m);
  memset(eff, 0, sizeof eff);
  for (unsigned i = 0; i < cm.n; i++)
    eff[cm.op[i].key] = cm.op[i].del ? 2 : 1;
  for (unsigned k = 0; k < NSKEYS; k++) {
    if (eff[k] == 1 && cid[k] == 0) {
      /* Only a newer single delete (before the next batch) explains it. */
      uint64_t c = m + 1;
      while (!is_multi(c) && !single_del_of(c, k) && c < m + 100000)
        c++;
      if (!single_del_of(c, k))
        BAD("batch %llu is half-applied: it put key %s, which is absent",
            (ull)m, g_keys[k]);
    }
    if (eff[k] == 1 && cid[k] != 0 && cid[k] < m)
      BAD("batch %llu is half-applied: key %s shows commit %llu, older "
          "than the batch that wrote it",
          (ull)m, g_keys[k], (ull)cid[k]);
    if (eff[k] == 2 && cid[k] != 0 && cid[k] < m)
      BAD("batch %llu is half-applied: key %s shows commit %llu although "
          "the batch deleted it",
          (ull)m, g_keys[k], (ull)cid[k]);
  }
  return 0;
}

/* Reads everything the store shows through a cursor, mapkv_get and
 * mapkv_exists, checks every value byte, the statistics, mapkv_verify() and
 * the batch marker rule, and that the cursor (file order, which compaction
 * keeps) shows each stream's commits in the order they were made. fresh:
 * nothing was written since the open (the recovery figures then describe
 * the log as it is). */
static int observe(mapkv_t *db, int fresh, obs_t *o, char *err, size_t cap) {
  mapkv_cursor_t *cur;
  const void *k, *v;
  size_t kl, vl;
  uint64_t damaged = 99;
  int rc;

  memset(o, 0, sizeof *o);
  if ((rc = mapkv_cursor_open(db, NULL, 0, &cur)) != 0)
    BAD("mapkv_cursor_open: %s", mapkv_strerror(rc));
  while ((rc = mapkv_cursor_next(cur, &k, &kl, &v, &vl)) == 0) {
    int i = key_index(k, kl);
    uint64_t c;
    if (i < 0) {
      mapkv_cursor_close(cur);
      BAD("the cursor returned an unknown key of %zu bytes", kl);
    }
    if (o->cid[i] != 0) {
      mapkv_cursor_close(cur);
      BAD("the cursor returned key %s twice", g_keys[i]);
    }
    c = vl >= 12 ? get_le(v, 8) : 0;
    if (vl < 12 || c == 0 || get_le((const uint8_t *)v + 8, 4) != (unsigned)i ||
        val_make(c, (unsigned)i, g_vexp) != vl || memcmp(v, g_vexp, vl) != 0 ||
        !commit_puts(c, (unsigned)i)) {
      mapkv_cursor_close(cur);
      BAD("key %s has a value (%zu bytes, commit %llu) that no commit wrote",
          g_keys[i], vl, (ull)c);
    }
    o->cid[i] = c;
    o->order[o->count] = (uint8_t)i;
    o->count++;
    o->live_bytes += REC_OVERHEAD + kl + vl;
  }
  mapkv_cursor_close(cur);
  if (rc != MAPKV_NOTFOUND)
    BAD("mapkv_cursor_next: %s (%s)", mapkv_strerror(rc), mapkv_errmsg());
  for (uint64_t a = 0; a < o->count; a++)
    for (uint64_t b = a + 1; b < o->count; b++) {
      uint64_t x = o->cid[o->order[a]], y = o->cid[o->order[b]];
      if (stream_of(x) == stream_of(y) && id_of(y) < id_of(x))
        BAD("the cursor shows key %s (commit %u/%llu) after key %s (commit "
            "%u/%llu): the file holds a stream's commits out of order",
            g_keys[o->order[b]], stream_of(y), (ull)id_of(y),
            g_keys[o->order[a]], stream_of(x), (ull)id_of(x));
    }

  for (unsigned i = 0; i < NKEYS; i++) {
    size_t n = 0;
    rc = mapkv_get(db, g_keys[i], g_klen[i], g_vbuf, sizeof g_vbuf, &vl);
    if (o->cid[i] == 0) {
      if (rc != MAPKV_NOTFOUND)
        BAD("key %s: the cursor skipped it but mapkv_get says %s", g_keys[i],
            mapkv_strerror(rc));
    } else {
      n = val_make(o->cid[i], i, g_vexp);
      if (rc != 0 || vl != n || memcmp(g_vbuf, g_vexp, n) != 0)
        BAD("key %s: mapkv_get (%s, %zu bytes) disagrees with the cursor",
            g_keys[i], mapkv_strerror(rc), rc == 0 ? vl : 0);
    }
    if (mapkv_exists(db, g_keys[i], g_klen[i]) != (o->cid[i] != 0))
      BAD("key %s: mapkv_exists disagrees with mapkv_get", g_keys[i]);
  }

  if ((rc = mapkv_stat(db, &o->st)) != 0)
    BAD("mapkv_stat: %s", mapkv_strerror(rc));
  if (o->st.format_version != MAPKV_FORMAT_VERSION)
    BAD("stat: format_version %u", o->st.format_version);
  if (o->st.records != o->count)
    BAD("stat: records %llu, but the cursor walk counts %llu",
        (ull)o->st.records, (ull)o->count);
  if (o->st.live_bytes != o->live_bytes)
    BAD("stat: live_bytes %llu, the live records hold %llu",
        (ull)o->st.live_bytes, (ull)o->live_bytes);
  if (o->st.data_end < HDR_PAGE || o->st.data_end > o->st.file_size ||
      o->st.mapped_size != o->st.file_size ||
      o->st.reserved_size < o->st.file_size)
    BAD("stat: data_end %llu, file_size %llu, mapped %llu, reserved %llu",
        (ull)o->st.data_end, (ull)o->st.file_size, (ull)o->st.mapped_size,
        (ull)o->st.reserved_size);
  if (o->st.dead_bytes != o->st.data_end - HDR_PAGE - o->st.live_bytes)
    BAD("stat: dead_bytes %llu, data_end %llu, live_bytes %llu",
        (ull)o->st.dead_bytes, (ull)o->st.data_end, (ull)o->st.live_bytes);
  if (fresh && (o->st.last_seq < o->st.recovered_batches ||
                (o->count > 0 && o->st.recovered_batches == 0)))
    BAD("stat: last_seq %llu, recovered_batches %llu, %llu records",
        (ull)o->st.last_seq, (ull)o->st.recovered_batches, (ull)o->count);
  if (o->st.damaged_regions != 0 || o->st.damaged_bytes != 0 ||
      o->st.first_damage_offset != 0)
    BAD("stat: a process crash left damage in the middle: %llu regions, "
        "%llu bytes, the first at %llu",
        (ull)o->st.damaged_regions, (ull)o->st.damaged_bytes,
        (ull)o->st.first_damage_offset);
  if (o->st.checksum_failures != 0)
    BAD("stat: %llu checksum failures", (ull)o->st.checksum_failures);

  rc = mapkv_verify(db, NULL, NULL, &damaged);
  if (rc != 0 || damaged != 0)
    BAD("mapkv_verify: %s, %llu damaged spans (%s)", mapkv_strerror(rc),
        (ull)damaged, mapkv_errmsg());
  return check_marker(o->cid, err, cap);
}

/* Where a store that should hold state a (or a+1) stands: explains a
 * mismatch by replaying the history. */
static void explain(const obs_t *o, const uint64_t *ma, uint64_t a, char *err,
                    size_t cap) {
  uint64_t s[NKEYS];
  uint64_t found = 0;
  int n, have = 0;
  memset(s, 0, sizeof s); /* the single writer's keys replayed */
  for (uint64_t p = 0; p <= a + 3; p++) {
    if (p > 0)
      model_apply(s, p);
    if (memcmp(s, o->cid, NSKEYS * sizeof s[0]) == 0) {
      found = p;
      have = 1;
    }
  }
  if (have && found < a)
    n = snprintf(err, cap,
                 "the store holds the state after commit %llu, but commits "
                 "up to %llu were acknowledged: %llu acknowledged commits "
                 "lost",
                 (ull)found, (ull)a, (ull)(a - found));
  else if (have)
    n = snprintf(err, cap,
                 "the store holds the state after commit %llu, but only "
                 "commits up to %llu were acknowledged (at most %llu can be)",
                 (ull)found, (ull)a, (ull)(a + 1));
  else
    n = snprintf(err, cap,
                 "the store matches no state of the history (acknowledged: "
                 "%llu)",
                 (ull)a);
  for (unsigned k = 0; k < NKEYS && n > 0 && (size_t)n < cap; k++)
    if (o->cid[k] != ma[k])
      n += snprintf(err + n, cap - (size_t)n,
                    "; %s: store %u/%llu, model %u/%llu", g_keys[k],
                    stream_of(o->cid[k]), (ull)id_of(o->cid[k]),
                    stream_of(ma[k]), (ull)id_of(ma[k]));
}

enum { ST_A = 0, ST_A1 = 1, ST_BOTH = 2 };

/* Which state o is: ST_A (the model ma after commit a), ST_A1 (after commit
 * a+1, which differs) or ST_BOTH (a+1 changes nothing); -1 otherwise. With
 * exact, no commit was in flight: only ST_A/ST_BOTH. Also checks what
 * recovery reports dropping against the in-flight commit. */
static int match_state(const obs_t *o, const uint64_t *ma, uint64_t a,
                       int exact, char *err, size_t cap) {
  uint64_t mb[NKEYS];
  int ea, eb, which;
  commit_t cm;
  memcpy(mb, ma, sizeof mb);
  model_apply(mb, a + 1);
  ea = memcmp(o->cid, ma, sizeof mb) == 0;
  eb = memcmp(o->cid, mb, sizeof mb) == 0;
  if (!ea && !eb) {
    explain(o, ma, a, err, cap);
    return -1;
  }
  which = ea && eb ? ST_BOTH : ea ? ST_A : ST_A1;
  if (exact && which == ST_A1)
    BAD("the store holds commit %llu, which was never started (the writer "
        "was killed in a compaction or before its open)",
        (ull)(a + 1));
  gen_commit(a + 1, &cm);
  if (o->st.dropped_tail_bytes > (exact ? 0 : commit_bytes(a + 1)) ||
      o->st.dropped_tail_records > (exact ? 0 : cm.n + 1u) ||
      (which == ST_A1 && o->st.dropped_tail_bytes != 0))
    BAD("recovery dropped %llu bytes (%llu intact records) after keeping "
        "%s commit %llu (in flight: %s, %llu bytes, %u operations)",
        (ull)o->st.dropped_tail_bytes, (ull)o->st.dropped_tail_records,
        which == ST_A1 ? "the in-flight" : "acknowledged",
        (ull)(which == ST_A1 ? a + 1 : a), exact ? "none" : "one",
        (ull)commit_bytes(a + 1), cm.n);
  return which;
}

/* ---- messages from the children ------------------------------------------ */

enum {
  M_READY = 1,
  M_ACK,
  M_CBEGIN,
  M_CEND,
  M_RBEGIN,
  M_REND,
  M_ERR,
  M_TSTART, /* a writer thread starts */
  M_TACK    /* a writer thread's commit returned 0 */
};

/* Writer threads write their messages to the same pipe: each is one
 * write(2) of less than PIPE_BUF bytes, which the pipe keeps whole. */
typedef struct msg_t {
  uint32_t kind;
  int32_t rc;  /* M_TSTART, M_TACK: the thread */
  uint64_t id; /* READY: first commit it writes; ACK, TACK: the commit;
                  TSTART: the thread's first commit */
  union {
    struct {
      uint64_t size;  /* file size after it */
      uint64_t gen;   /* generation */
      uint64_t extra; /* READY: bytes its recovery dropped */
      uint64_t recs;  /* READY: intact records in them */
    };
    /* M_TSTART, M_TACK: the last commit of each thread that had returned
     * before the thread began its next commit */
    uint64_t vec[NTH];
  };
} msg_t;

_Static_assert(sizeof(msg_t) <= PIPE_BUF, "a message is one atomic write");

static void send_raw(int fd, const msg_t *m) {
  const char *p = (const char *)m;
  size_t left = sizeof *m;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      _exit(9);
    p += w;
    left -= (size_t)w;
  }
}

static void send_vec(int fd, uint32_t kind, unsigned t, uint64_t id,
                     const uint64_t *vec) {
  msg_t m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  m.rc = (int32_t)t;
  m.id = id;
  memcpy(m.vec, vec, sizeof m.vec);
  send_raw(fd, &m);
}

static void send_msg(int fd, uint32_t kind, int rc, uint64_t id, uint64_t size,
                     uint64_t gen, uint64_t extra, uint64_t recs) {
  msg_t m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  m.rc = rc;
  m.id = id;
  m.size = size;
  m.gen = gen;
  m.extra = extra;
  m.recs = recs;
  send_raw(fd, &m);
}

static _Noreturn void child_die(int wfd, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static _Noreturn void child_die(int wfd, int rc, const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "[crash child %ld] %s\n", (long)getpid(), buf);
  if (wfd >= 0)
    send_msg(wfd, M_ERR, rc, 0, 0, 0, 0, 0);
  _exit(3);
}

/* ---- the harness state --------------------------------------------------- */

typedef struct stats_t {
  ull rounds, kills, kills_before_ready, kills_in_compaction, kills_growing;
  ull kills_after_rename, kills_in_reopen, reopens, locked_probes;
  ull kills_reader, kills_recoverer, recoverers_done, reader_snapshots;
  ull acked, inflight_kept, inflight_lost, inflight_noop, max_lost_per_kill;
  ull dropped_bytes, dropped_records, tail_drops, leftover_compact;
  ull junk_planted, compactions, parent_compactions, chained, checks;
  ull tight_rounds, nosync_rounds, max_file, max_round_acks;
  /* rounds with writer threads */
  ull mt_rounds, mt_by_n[NTH + 1], mt_acked, mt_acked_by_vec, mt_max_acks;
  ull mt_inflight, mt_kept, mt_lost, mt_undecided, mt_kills_multi;
  ull mt_inflight_by_n[NTH + 1], mt_kills_in_compaction, mt_compactions;
  ull mt_hb_pairs, mt_hb_shared, mt_evidence, mt_reader_rounds, mt_ack_kills;
} stats_t;

/* What the writer threads of a round reported. */
typedef struct mtr_t {
  uint64_t acked[NTH]; /* last commit known to have returned 0 */
  uint64_t said[NTH];  /* ... that the thread acknowledged itself */
  int started[NTH];
  int pending[NTH]; /* commit acked+1 may be in the store */
  /* begin vectors of commits tc+1, tc+2, ... (NTH entries each): the
   * last commit of each thread that had returned before it began */
  uint64_t *bv[NTH];
  size_t nbv[NTH], capbv[NTH];
} mtr_t;

typedef struct harness {
  char path[512], cpath[600];
  uint64_t m[NKEYS]; /* the model after commit a */
  uint64_t a;        /* last commit known to be in the store */
  int pending;       /* the store may also hold commit a+1 */
  int unchecked;     /* a writer was killed since the last check */
  uint64_t gen;      /* generation of the store */
  int gen_maybe;     /* ... or gen+1 (killed in a compaction) */
  int ready_seen;    /* a writer opened the store since the last check */
  uint64_t prng;
  /* the writer's parameters */
  int tight, sync_mode, probe;
  uint64_t initial_size, growth_step;
  int round;
  /* writer threads: thread t commits tc[t]+1, tc[t]+2, ... */
  uint64_t tc[NTH];  /* the last commit of thread t in the model */
  int mt, nthreads;  /* this round's writer runs nthreads threads */
  uint64_t ack_kill; /* ... which kill it after this many commits, if not 0 */
  mtr_t t;
  stats_t s;
} harness;

/* Children alive, killed on failure. */
static pid_t g_kids[4];

static void kid_add(pid_t p) {
  for (int i = 0; i < 4; i++)
    if (g_kids[i] == 0) {
      g_kids[i] = p;
      return;
    }
}

static void kid_del(pid_t p) {
  for (int i = 0; i < 4; i++)
    if (g_kids[i] == p)
      g_kids[i] = 0;
}

static void kill_kids(void) {
  for (int i = 0; i < 4; i++)
    if (g_kids[i] > 0) {
      kill(g_kids[i], SIGKILL);
      waitpid(g_kids[i], NULL, 0);
      g_kids[i] = 0;
    }
}

static void crash_fail(const harness *h, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void crash_fail(const harness *h, int line, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  kill_kids();
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fail_msg("test_crash.c:%d: round %d (seed %llu, store %s, acknowledged "
           "%llu, pending %d): %s",
           line, h->round, (ull)g_seed, h->path, (ull)h->a, h->pending, buf);
}

#define CHECK(h, cond, ...)                                                    \
  do {                                                                         \
    if (!(cond))                                                               \
      crash_fail((h), __LINE__, __VA_ARGS__);                                  \
  } while (0)

static uint64_t prng(harness *h) { return rng_next(&h->prng); }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void writer_options(const harness *h, mapkv_options *o, unsigned flags) {
  mapkv_options_init(o);
  o->flags = flags;
  o->sync_mode = h->sync_mode;
  o->initial_size = h->initial_size;
  o->growth_step = h->growth_step;
  o->max_value_size = VAL_CAP;
  o->reserve = 1ull << 30;
}

/* ---- checking the keys of writer threads --------------------------------- */

/* What a store shows of a round with writer threads. */
typedef struct tres_t {
  int single; /* the single writer's keys: ST_A, ST_A1 or ST_BOTH */
  /* thread t's keys: the state after its commit pmin, and after pmax, the
   * first and the last of its commits after which they are what the
   * store shows (the store holds its commits up to one of those) */
  uint64_t pmin[NTH], pmax[NTH];
  ull hb_pairs;  /* key pairs whose order a happens-before fixes */
  ull hb_shared; /* shared key writes ordered by a happens-before */
  ull evidence;  /* threads whose shared keys prove a later state */
} tres_t;

static int same_keys(const uint64_t *x, const uint64_t *y, unsigned from,
                     unsigned n) {
  return memcmp(x + from, y + from, n * sizeof *x) == 0;
}

/* The begin vector of commit c of thread t, NULL if unknown. */
static const uint64_t *bvec(const harness *h, unsigned t, uint64_t c) {
  uint64_t i;
  if (t >= (unsigned)h->nthreads || c <= h->tc[t])
    return NULL;
  i = c - h->tc[t] - 1;
  return i < h->t.nbv[t] ? h->t.bv[t] + i * NTH : NULL;
}

/* Whether commit y of thread u had returned before commit w of thread t
 * began: then y lies before w in the log. */
static int returned_before(const harness *h, unsigned u, uint64_t y, unsigned t,
                           uint64_t w) {
  const uint64_t *b = bvec(h, t, w);
  return b != NULL && b[u] >= y;
}

/* Whether tag c is a commit of this round's threads. */
static int is_new(const harness *h, uint64_t c) {
  unsigned st = stream_of(c);
  return st >= 1 && st <= (unsigned)h->nthreads && id_of(c) > h->tc[st - 1];
}

/* The last commit in (from, upto] of thread t that writes each shared key
 * (0: none). */
static void shared_writes(unsigned t, uint64_t from, uint64_t upto,
                          uint64_t *lw) {
  commit_t cm;
  memset(lw, 0, NSH * sizeof *lw);
  for (uint64_t c = from + 1; c <= upto; c++) {
    gen_commit(tag_of(t + 1, c), &cm);
    for (unsigned i = 0; i < cm.n; i++)
      if (is_shared(cm.op[i].key))
        lw[cm.op[i].key - SBASE] = c;
  }
}

/* Thread t's keys match no state after its commits lo..hi: which state
 * they do match, if any, and where they differ from the state after lo. */
static int thread_mismatch(const harness *h, const obs_t *o, unsigned t,
                           uint64_t lo, uint64_t hi, char *err, size_t cap) {
  uint64_t s[NKEYS], at[NKEYS], found = 0;
  int n, have = 0;
  memcpy(s, h->m, sizeof s);
  for (uint64_t p = h->tc[t]; p <= lo + 3 && p <= lo + 1000000; p++) {
    if (p > h->tc[t])
      model_apply_own(s, tag_of(t + 1, p));
    if (p == lo)
      memcpy(at, s, sizeof at);
    if (same_keys(s, o->cid, TBASE(t), TKEYS)) {
      found = p;
      have = 1;
    }
  }
  if (hi == UINT64_MAX)
    n = snprintf(err, cap,
                 "thread %u's keys show no state after its commits from "
                 "%llu on",
                 t, (ull)lo);
  else if (have && found < lo)
    n = snprintf(err, cap,
                 "thread %u's keys show the state after its commit %llu, but "
                 "commits up to %llu had returned: %llu of them lost",
                 t, (ull)found, (ull)lo, (ull)(lo - found));
  else if (have)
    n = snprintf(err, cap,
                 "thread %u's keys show the state after its commit %llu, but "
                 "its commits up to %llu (at most) can be in the store",
                 t, (ull)found, (ull)hi);
  else
    n = snprintf(err, cap,
                 "thread %u's keys show no state of its history (%llu "
                 "returned, %llu at most)",
                 t, (ull)lo, (ull)hi);
  for (unsigned k = TBASE(t); k < TBASE(t) + TKEYS && n > 0 && (size_t)n < cap;
       k++)
    if (o->cid[k] != at[k])
      n += snprintf(err + n, cap - (size_t)n,
                    "; %s: store %u/%llu, after commit %llu %u/%llu", g_keys[k],
                    stream_of(o->cid[k]), (ull)id_of(o->cid[k]), (ull)lo,
                    stream_of(at[k]), (ull)id_of(at[k]));
  return -1;
}

/* Checks a store against a round with writer threads. The single writer's
 * keys: the model, or after its commit a+1 if one was in flight; the keys
 * of threads that did not run: the model; thread t's keys: the state after
 * one of its commits lo[t]..hi[t], all or nothing per commit; a shared key:
 * the value before the round if no thread's surviving commit wrote it,
 * else what the last of some thread's surviving writes made of it; with
 * hb (the threads' vectors are known), a value written by a commit that
 * had returned before another thread's surviving write to that key began
 * is refused (it lies before it in the log), and so is a cursor that shows
 * such a pair in the wrong order. Everything of the round lies after
 * everything before it in the file. */
static int match_threads(const harness *h, const obs_t *o, const uint64_t *lo,
                         const uint64_t *hi, int hb, tres_t *res, char *err,
                         size_t cap) {
  unsigned n = (unsigned)h->nthreads;
  uint64_t s[NKEYS], lw[NTH][NSH];

  memset(res, 0, sizeof *res);
  memcpy(s, h->m, sizeof s);
  if (h->pending)
    model_apply(s, h->a + 1);
  if (same_keys(o->cid, h->m, 0, NSKEYS))
    res->single = h->pending && same_keys(s, h->m, 0, NSKEYS) ? ST_BOTH : ST_A;
  else if (h->pending && same_keys(o->cid, s, 0, NSKEYS))
    res->single = ST_A1;
  else {
    explain(o, h->m, h->a, err, cap);
    return -1;
  }
  for (unsigned k = TBASE(n); k < SBASE; k++)
    if (o->cid[k] != h->m[k])
      BAD("key %s of thread %u, which did not run, shows %u/%llu; the model "
          "%u/%llu",
          g_keys[k], (k - NSKEYS) / TKEYS, stream_of(o->cid[k]),
          (ull)id_of(o->cid[k]), stream_of(h->m[k]), (ull)id_of(h->m[k]));

  for (unsigned t = 0; t < n; t++) {
    uint64_t p = h->tc[t], maxid = 0;
    for (unsigned k = TBASE(t); k < TBASE(t) + TKEYS; k++)
      if (id_of(o->cid[k]) > maxid)
        maxid = id_of(o->cid[k]);
    memcpy(s, h->m, sizeof s);
    while (p < lo[t])
      model_apply_own(s, tag_of(t + 1, ++p));
    /* After a batch newer than every key shown, the progress key shows
     * it (it is never deleted): no later state matches. */
    while (!same_keys(o->cid, s, TBASE(t), TKEYS)) {
      if (p >= hi[t] || (p >= maxid && is_multi(tag_of(t + 1, p + 1))) ||
          p - lo[t] > 1000000)
        return thread_mismatch(h, o, t, lo[t], hi[t], err, cap);
      model_apply_own(s, tag_of(t + 1, ++p));
    }
    res->pmin[t] = res->pmax[t] = p;
    /* A later state may show the same keys again (a put, then a delete of
     * the key): the last that does. */
    while (p < hi[t] && !(p >= maxid && is_multi(tag_of(t + 1, p + 1))) &&
           p - lo[t] <= 1000000) {
      model_apply_own(s, tag_of(t + 1, ++p));
      if (same_keys(o->cid, s, TBASE(t), TKEYS))
        res->pmax[t] = p;
    }
  }

  /* A shared key showing a thread's commit after pmin: it is in the
   * store, and so is every earlier commit of that thread. */
  for (unsigned j = 0; j < NSH; j++) {
    uint64_t v = o->cid[SBASE + j];
    unsigned u = stream_of(v) - 1;
    if (v == h->m[SBASE + j] || !is_new(h, v))
      continue;
    if (id_of(v) > res->pmax[u])
      BAD("shared key %s shows commit %u/%llu, but thread %u's own keys "
          "show its state after commit %llu (no later one than %llu): its "
          "commits are not all or nothing, or not in order",
          g_keys[SBASE + j], u + 1, (ull)id_of(v), u, (ull)res->pmin[u],
          (ull)res->pmax[u]);
    if (id_of(v) > res->pmin[u]) {
      res->pmin[u] = id_of(v);
      res->evidence++;
    }
  }
  for (unsigned t = 0; t < n; t++)
    shared_writes(t, h->tc[t], res->pmin[t], lw[t]);

  for (unsigned j = 0; j < NSH; j++) {
    unsigned k = SBASE + j;
    uint64_t v = o->cid[k], shadow = 0;
    unsigned shadow_t = 0, shadow_u = 0;
    int ok = 0, any = 0;
    for (unsigned t = 0; t < n; t++)
      any |= lw[t][j] != 0;
    if (!any && v == h->m[k])
      ok = 1; /* as before the round */
    /* Thread u's last surviving write: its last up to pmin, or one after
     * it up to pmax (more than are possible when pmin..pmax holds states
     * that do not match: never a store refused that should pass). */
    for (unsigned u = 0; u < n && !ok; u++)
      for (uint64_t c = res->pmin[u]; c <= res->pmax[u] && !ok; c++) {
        uint64_t w = c == res->pmin[u] ? lw[u][j] : c, tag = tag_of(u + 1, w);
        int eff = w != 0 ? commit_effect(tag, k) : 0;
        if (eff == 0 || (eff == 1 ? v != tag : v != 0))
          continue;
        ok = 1;
        for (unsigned t = 0; t < n && hb; t++)
          if (t != u && lw[t][j] != 0 &&
              returned_before(h, u, w, t, lw[t][j])) {
            ok = 0; /* an older write than t's, which survived */
            shadow = lw[t][j];
            shadow_t = t;
            shadow_u = u;
          }
      }
    if (!ok) {
      int m = snprintf(err, cap,
                       "shared key %s shows %u/%llu, which no surviving "
                       "commit explains as its last write (before the round: "
                       "%u/%llu)",
                       g_keys[k], stream_of(v), (ull)id_of(v),
                       stream_of(h->m[k]), (ull)id_of(h->m[k]));
      if (shadow != 0 && m > 0 && (size_t)m < cap)
        m += snprintf(err + m, cap - (size_t)m,
                      "; thread %u's commit %llu wrote it after thread %u's "
                      "had returned, and survived",
                      shadow_t, (ull)shadow, shadow_u);
      for (unsigned t = 0; t < n && m > 0 && (size_t)m < cap; t++)
        m += snprintf(err + m, cap - (size_t)m,
                      "; thread %u: state %llu..%llu, its last write to it "
                      "up to %llu: %llu",
                      t, (ull)res->pmin[t], (ull)res->pmax[t],
                      (ull)res->pmin[t], (ull)lw[t][j]);
      return -1;
    }
    for (unsigned t = 0; t < n && hb; t++)
      for (unsigned u = t + 1; u < n; u++)
        if (lw[t][j] != 0 && lw[u][j] != 0 &&
            (returned_before(h, t, lw[t][j], u, lw[u][j]) ||
             returned_before(h, u, lw[u][j], t, lw[t][j])))
          res->hb_shared++;
  }

  /* The file's order: the round's commits after everything before them,
   * and a commit that had returned before another began before it. */
  for (uint64_t a = 0; a < o->count; a++)
    for (uint64_t b = a + 1; b < o->count; b++) {
      unsigned i = o->order[a], j = o->order[b];
      uint64_t x = o->cid[i], y = o->cid[j];
      if (stream_of(x) == stream_of(y))
        continue; /* observe() checked them */
      if (is_new(h, x) && !is_new(h, y))
        BAD("the cursor shows key %s (commit %u/%llu, before this round) "
            "after key %s (commit %u/%llu, of this round)",
            g_keys[j], stream_of(y), (ull)id_of(y), g_keys[i], stream_of(x),
            (ull)id_of(x));
      if (!hb || !is_new(h, x) || !is_new(h, y))
        continue;
      if (returned_before(h, stream_of(y) - 1, id_of(y), stream_of(x) - 1,
                          id_of(x)))
        BAD("the cursor shows key %s (commit %u/%llu) after key %s (commit "
            "%u/%llu), but the first had returned before the second began",
            g_keys[j], stream_of(y), (ull)id_of(y), g_keys[i], stream_of(x),
            (ull)id_of(x));
      if (returned_before(h, stream_of(x) - 1, id_of(x), stream_of(y) - 1,
                          id_of(y)))
        res->hb_pairs++;
    }
  return 0;
}

/* The parent's check of a round with writer threads: each thread's state
 * is after its last commit known to have returned, or after the one it had
 * in flight; recovery dropped no more than the commits in flight that are
 * not in the store hold. */
static int match_mt(const harness *h, const obs_t *o, tres_t *res, char *err,
                    size_t cap) {
  uint64_t lo[NTH], hi[NTH], bytes = 0, recs = 0;
  commit_t cm;
  for (unsigned t = 0; t < NTH; t++) {
    lo[t] = h->t.acked[t];
    hi[t] = lo[t] + (uint64_t)h->t.pending[t];
  }
  if (match_threads(h, o, lo, hi, 1, res, err, cap) != 0)
    return -1;
  if (h->pending && res->single != ST_A1) {
    gen_commit(h->a + 1, &cm);
    bytes += commit_bytes(h->a + 1);
    recs += cm.n + 1u;
  }
  for (unsigned t = 0; t < (unsigned)h->nthreads; t++)
    if (h->t.pending[t] && res->pmin[t] == lo[t]) {
      uint64_t c = tag_of(t + 1, lo[t] + 1);
      gen_commit(c, &cm);
      bytes += commit_bytes(c);
      recs += cm.n + 1u;
    }
  if (o->st.dropped_tail_bytes > bytes || o->st.dropped_tail_records > recs)
    BAD("recovery dropped %llu bytes (%llu intact records); the commits in "
        "flight that are not in the store hold %llu bytes (%llu records)",
        (ull)o->st.dropped_tail_bytes, (ull)o->st.dropped_tail_records,
        (ull)bytes, (ull)recs);
  return 0;
}

/* ---- the children -------------------------------------------------------- */

static void do_commit(mapkv_t *db, uint64_t c, uint64_t *cid, uint8_t *val,
                      int wfd) {
  commit_t cm;
  int rc = 0;
  gen_commit(c, &cm);
  if (cm.kind == K_PUT) {
    unsigned k = cm.op[0].key;
    size_t n = val_make(c, k, val);
    rc = mapkv_put(db, g_keys[k], g_klen[k], val, n);
  } else if (cm.kind == K_DEL) {
    unsigned k = cm.op[0].key;
    rc = mapkv_del(db, g_keys[k], g_klen[k]);
    if (rc == MAPKV_NOTFOUND && cid[k] == 0)
      rc = 0; /* nothing to delete: nothing written, state unchanged */
    else if (rc == 0 && cid[k] == 0)
      child_die(wfd, rc, "commit %u/%llu: deleted key %s, which is absent",
                stream_of(c), (ull)id_of(c), g_keys[k]);
  } else {
    mapkv_batch_t *b;
    if ((rc = mapkv_batch_begin(db, &b)) != 0)
      child_die(wfd, rc, "commit %u/%llu: mapkv_batch_begin: %s", stream_of(c),
                (ull)id_of(c), mapkv_errmsg());
    for (unsigned i = 0; i < cm.n && rc == 0; i++) {
      unsigned k = cm.op[i].key;
      if (cm.op[i].del) {
        rc = mapkv_batch_del(b, g_keys[k], g_klen[k]);
      } else {
        size_t n = val_make(c, k, val);
        rc = mapkv_batch_put(b, g_keys[k], g_klen[k], val, n);
      }
    }
    if (rc != 0) {
      mapkv_batch_abort(b);
      child_die(wfd, rc, "commit %u/%llu: adding to the batch: %s",
                stream_of(c), (ull)id_of(c), mapkv_errmsg());
    }
    rc = mapkv_batch_commit(b);
  }
  if (rc != 0)
    child_die(wfd, rc, "commit %u/%llu: %s (%s)", stream_of(c), (ull)id_of(c),
              mapkv_strerror(rc), mapkv_errmsg());
  model_apply(cid, c);
}

/* A writer's open: opens (and, if a writer was killed since the last
 * check, checks) the store and tells the parent; *cid receives the model
 * and *c the single writer's next commit. */
static mapkv_t *writer_open(const harness *h, int wfd, uint64_t *cid,
                            uint64_t *c) {
  mapkv_options o;
  mapkv_stats st;
  mapkv_t *db;
  uint64_t dropped = 0, drecs = 0;
  int rc, which = ST_A;

  memcpy(cid, h->m, NKEYS * sizeof *cid);
  *c = h->a + 1;
  writer_options(h, &o, MAPKV_CREATE);
  if ((rc = mapkv_open(h->path, &o, &db)) != 0)
    child_die(wfd, rc, "writer: mapkv_open: %s", mapkv_errmsg());
  if (h->unchecked) {
    char err[2048];
    obs_t ob;
    if (observe(db, 1, &ob, err, sizeof err) != 0 ||
        (which = match_state(&ob, cid, h->a, !h->pending, err, sizeof err)) < 0)
      child_die(wfd, MAPKV_ECORRUPT, "writer: the recovered store: %s", err);
    if (which == ST_A1)
      model_apply(cid, (*c)++);
    dropped = ob.st.dropped_tail_bytes;
    drecs = ob.st.dropped_tail_records;
  }
  mapkv_stat(db, &st);
  send_msg(wfd, M_READY, which, *c, st.file_size, st.generation, dropped,
           drecs);
  return db;
}

/* The writer: opens the store, then commits c = a+1, a+2, ... until
 * killed. */
static _Noreturn void writer_main(const harness *h, int wfd) {
  mapkv_options o;
  mapkv_stats st;
  uint64_t cid[NKEYS], c;
  mapkv_t *db = writer_open(h, wfd, cid, &c);
  int rc;

  for (uint64_t iter = 0;; iter++) {
    if (h->tight || compact_before(c, h->sync_mode)) {
      send_msg(wfd, M_CBEGIN, 0, c, 0, 0, 0, 0);
      if ((rc = mapkv_compact(db)) != 0)
        child_die(wfd, rc, "writer: mapkv_compact: %s", mapkv_errmsg());
      mapkv_stat(db, &st);
      send_msg(wfd, M_CEND, 0, c, st.file_size, st.generation, 0, 0);
      if (h->tight && iter % 2 == 1)
        continue;
    }
    if (!h->probe && reopen_before(c, h->sync_mode)) {
      send_msg(wfd, M_RBEGIN, 0, c, 0, 0, 0, 0);
      if ((rc = mapkv_close(db)) != 0)
        child_die(wfd, rc, "writer: mapkv_close: %s", mapkv_errmsg());
      writer_options(h, &o, 0);
      if ((rc = mapkv_open(h->path, &o, &db)) != 0)
        child_die(wfd, rc, "writer: reopening: %s", mapkv_errmsg());
      mapkv_stat(db, &st);
      if (!st.clean_open || st.dropped_tail_bytes != 0)
        child_die(wfd, MAPKV_ECORRUPT,
                  "writer: reopening after a clean close: clean_open %u, "
                  "dropped %llu bytes",
                  st.clean_open, (ull)st.dropped_tail_bytes);
      send_msg(wfd, M_REND, 0, c, st.file_size, st.generation, 0, 0);
    }
    do_commit(db, c, cid, g_vexp, wfd);
    mapkv_stat(db, &st);
    send_msg(wfd, M_ACK, 0, c, st.file_size, st.generation, 0, 0);
    c++;
  }
}

/* The writer threads of one child share the handle and the pipe. */
typedef struct mt_child {
  const harness *h;
  mapkv_t *db;
  int wfd;
  _Atomic uint64_t done[NTH]; /* each thread's last commit that returned */
  _Atomic uint64_t acks;      /* acknowledgements sent by all threads */
} mt_child;

typedef struct mt_arg {
  mt_child *x;
  unsigned t;
} mt_arg;

/* Once commit c of thread t returned, mapkv_get shows it on the thread's
 * own keys (no other thread writes them). */
static void check_own(const mt_arg *a, uint64_t c, const uint64_t *cid,
                      uint8_t *buf, uint8_t *exp) {
  commit_t cm;
  gen_commit(c, &cm);
  for (unsigned i = 0; i < cm.n; i++) {
    unsigned k = cm.op[i].key;
    size_t vl = 0, n = 0;
    int rc, good;
    if (is_shared(k))
      continue;
    rc = mapkv_get(a->x->db, g_keys[k], g_klen[k], buf, VAL_CAP, &vl);
    if (cid[k] == 0) {
      good = rc == MAPKV_NOTFOUND;
    } else {
      n = val_make(cid[k], k, exp);
      good = rc == 0 && vl == n && memcmp(buf, exp, n) == 0;
    }
    if (!good)
      child_die(a->x->wfd, rc == 0 ? MAPKV_ECORRUPT : rc,
                "thread %u: commit %llu returned, but key %s reads %s (%zu "
                "bytes), not commit %u/%llu's",
                a->t, (ull)id_of(c), g_keys[k], mapkv_strerror(rc),
                rc == 0 ? vl : 0, stream_of(cid[k]), (ull)id_of(cid[k]));
  }
}

/* Writer thread t: commits tc[t]+1, tc[t]+2, ... (thread 0 compacts now
 * and then) and acknowledges each with the vector of the commits that had
 * returned before its next one begins. */
static void *mt_thread(void *arg) {
  const mt_arg *a = arg;
  mt_child *x = a->x;
  const harness *h = x->h;
  unsigned t = a->t;
  uint64_t cid[NKEYS], vec[NTH], c = h->tc[t] + 1;
  uint8_t *val = malloc(VAL_CAP), *buf = malloc(VAL_CAP);

  if (val == NULL || buf == NULL)
    child_die(x->wfd, MAPKV_ENOMEM, "thread %u: out of memory", t);
  memcpy(cid, h->m, sizeof cid);
  for (unsigned u = 0; u < NTH; u++)
    vec[u] = atomic_load(&x->done[u]);
  send_vec(x->wfd, M_TSTART, t, c, vec);
  for (;; c++) {
    uint64_t tag = tag_of(t + 1, c);
    if (t == 0 && compact_before(tag, MAPKV_SYNC_COMMIT)) {
      mapkv_stats st;
      int rc;
      send_msg(x->wfd, M_CBEGIN, 0, c, 0, 0, 0, 0);
      if ((rc = mapkv_compact(x->db)) != 0)
        child_die(x->wfd, rc, "thread 0: mapkv_compact: %s", mapkv_errmsg());
      mapkv_stat(x->db, &st);
      send_msg(x->wfd, M_CEND, 0, c, st.file_size, st.generation, 0, 0);
    }
    do_commit(x->db, tag, cid, val, x->wfd);
    check_own(a, tag, cid, buf, val);
    atomic_store(&x->done[t], c);
    for (unsigned u = 0; u < NTH; u++)
      vec[u] = atomic_load(&x->done[u]);
    send_vec(x->wfd, M_TACK, t, c, vec);
    if (h->ack_kill != 0 && atomic_fetch_add(&x->acks, 1) + 1 == h->ack_kill)
      kill(getpid(), SIGKILL);
  }
  return NULL;
}

/* The writer of a round with threads: opens the store like the single
 * writer, then runs nthreads writer threads until killed. */
static _Noreturn void mt_writer_main(const harness *h, int wfd) {
  static mt_child x;
  static mt_arg args[NTH];
  uint64_t cid[NKEYS], c;

  x.h = h;
  x.wfd = wfd;
  for (unsigned u = 0; u < NTH; u++)
    atomic_init(&x.done[u], h->tc[u]);
  atomic_init(&x.acks, 0);
  x.db = writer_open(h, wfd, cid, &c);
  for (unsigned t = 0; t < (unsigned)h->nthreads; t++) {
    pthread_t th;
    int rc;
    args[t].x = &x;
    args[t].t = t;
    if ((rc = pthread_create(&th, NULL, mt_thread, &args[t])) != 0)
      child_die(wfd, MAPKV_ENOMEM, "pthread_create: %s", strerror(rc));
    pthread_detach(th);
  }
  for (;;)
    pause();
}

/* A reader: opens the store read-only again and again while the writer
 * runs; every snapshot must be the replay of commits 1..P for some P >= a
 * (a batch is all or nothing for readers too), or, in a round with writer
 * threads, show each thread's keys after one of its commits (and the
 * shared keys and the file's order as match_threads() says). One byte per
 * snapshot. */
static _Noreturn void reader_main(const harness *h, int wfd) {
  uint64_t lo[NTH], hi[NTH];
  for (unsigned t = 0; t < NTH; t++) {
    lo[t] = h->tc[t];
    hi[t] = UINT64_MAX;
  }
  for (;;) {
    mapkv_options o;
    mapkv_t *db;
    char err[2048];
    obs_t ob;
    tres_t res;
    uint64_t s[NKEYS], p = h->a, maxc = 0;
    int rc;
    mapkv_options_init(&o);
    o.flags = MAPKV_RDONLY;
    o.reserve = 1ull << 30;
    if ((rc = mapkv_open(h->path, &o, &db)) != 0)
      child_die(-1, rc, "reader: mapkv_open: %s", mapkv_errmsg());
    if (observe(db, 1, &ob, err, sizeof err) != 0)
      child_die(-1, MAPKV_ECORRUPT, "reader: %s", err);
    if (h->mt && match_threads(h, &ob, lo, hi, 0, &res, err, sizeof err) != 0)
      child_die(-1, MAPKV_ECORRUPT, "reader: %s", err);
    memcpy(s, h->m, sizeof s);
    for (unsigned k = 0; k < NSKEYS; k++)
      if (ob.cid[k] > maxc)
        maxc = ob.cid[k];
    while (!h->mt && memcmp(s, ob.cid, sizeof s) != 0) {
      /* A batch after the newest value seen would show: no later match. */
      if ((p + 1 > maxc && is_multi(p + 1)) || p > h->a + 1000000) {
        explain(&ob, h->m, h->a, err, sizeof err);
        child_die(-1, MAPKV_ECORRUPT,
                  "reader: the snapshot is no prefix of the history: %s", err);
      }
      model_apply(s, ++p);
    }
    if ((rc = mapkv_close(db)) != 0)
      child_die(-1, rc, "reader: mapkv_close: %s", mapkv_strerror(rc));
    if (write(wfd, "s", 1) != 1)
      _exit(9);
  }
}

/* A recoverer: opens a crashed store for writing (recovery, zeroing the
 * tail, deleting <db>.compact), verifies it, and exits without a clean
 * close, unless killed first. */
static _Noreturn void recoverer_main(const harness *h) {
  mapkv_options o;
  mapkv_t *db;
  int rc;
  writer_options(h, &o, 0);
  if ((rc = mapkv_open(h->path, &o, &db)) != 0)
    child_die(-1, rc, "recoverer: mapkv_open: %s", mapkv_errmsg());
  if ((rc = mapkv_verify(db, NULL, NULL, NULL)) != 0)
    child_die(-1, rc, "recoverer: mapkv_verify: %s", mapkv_errmsg());
  _exit(0);
}

/* ---- the parent ---------------------------------------------------------- */

static pid_t spawn(harness *h, int *rfd, int kind) {
  int fds[2] = {-1, -1};
  pid_t pid;
  if (rfd != NULL)
    CHECK(h, pipe(fds) == 0, "pipe: %s", strerror(errno));
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  CHECK(h, pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    if (rfd != NULL)
      close(fds[0]);
    if (kind == 'w' && h->mt)
      mt_writer_main(h, fds[1]);
    if (kind == 'w')
      writer_main(h, fds[1]);
    if (kind == 'r')
      reader_main(h, fds[1]);
    recoverer_main(h);
  }
  kid_add(pid);
  if (rfd != NULL) {
    /* Room for every message of a round (40 bytes each). */
    (void)fcntl(fds[0], F_SETPIPE_SZ, 1 << 20);
    close(fds[1]);
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    *rfd = fds[0];
  }
  return pid;
}

/* SIGKILLs pid (it may have exited) and reaps it; 1 if the kill did it. */
static int kill_reap(harness *h, pid_t pid, const char *who) {
  int status;
  kill(pid, SIGKILL);
  CHECK(h, waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
  kid_del(pid);
  if (WIFSIGNALED(status)) {
    CHECK(h, WTERMSIG(status) == SIGKILL, "the %s died of signal %d", who,
          WTERMSIG(status));
    return 1;
  }
  CHECK(h, WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "the %s exited with status %d (see its message above)", who,
        WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return 0;
}

/* Kill delays: a quarter below 100 us, a quarter 0.1-2 ms, a third 2-20 ms,
 * the rest 20-100 ms. */
static uint64_t pick_delay(harness *h) {
  unsigned r = (unsigned)(prng(h) % 100);
  if (r < 25)
    return prng(h) % 100000;
  if (r < 50)
    return 100000 + prng(h) % 1900000;
  if (r < 85)
    return 2000000 + prng(h) % 18000000;
  return 20000000 + prng(h) % 80000000;
}

/* Sleeps until the monotonic clock reaches t, spinning for the last 300 us
 * (a sleep wakes up tens of microseconds late). */
static void wait_until(uint64_t t) {
  for (;;) {
    uint64_t now = now_ns();
    if (now >= t)
      return;
    if (t - now > 300000) {
      uint64_t ns = t - now - 300000;
      struct timespec ts;
      ts.tv_sec = (time_t)(ns / 1000000000ull);
      ts.tv_nsec = (long)(ns % 1000000000ull);
      nanosleep(&ts, NULL);
    }
  }
}

typedef struct round_t {
  int ready, in_compaction, in_reopen, eof;
  uint64_t last_size, acks;
  uint8_t buf[sizeof(msg_t) * 64];
  size_t have;
} round_t;

/* A check of a crashed store found state `which`, and recovery dropped
 * `tail` bytes: book-keeping of the commit that was in flight. */
static void resolved(harness *h, int which, uint64_t tail, uint64_t recs) {
  if (h->pending) {
    if (which == ST_A1) {
      h->s.inflight_kept++;
    } else if (which == ST_A) {
      h->s.inflight_lost++;
      if (h->s.max_lost_per_kill < 1)
        h->s.max_lost_per_kill = 1; /* the commit in flight, never more */
    } else {
      h->s.inflight_noop++;
    }
  }
  if (tail > 0)
    h->s.tail_drops++;
  h->s.dropped_bytes += tail;
  h->s.dropped_records += recs;
  h->s.checks++;
}

/* A writer thread's M_TSTART or M_TACK: the vector it carries is the begin
 * vector of the thread's next commit c. */
static void on_tmsg(harness *h, round_t *r, const msg_t *m) {
  mtr_t *x = &h->t;
  unsigned t = (unsigned)m->rc, n = (unsigned)h->nthreads;
  uint64_t c = m->kind == M_TSTART ? m->id : m->id + 1;
  CHECK(h, h->mt && r->ready && t < n, "message %u from thread %u", m->kind, t);
  if (m->kind == M_TSTART) {
    CHECK(h, !x->started[t] && m->id == h->tc[t] + 1,
          "thread %u starts at commit %llu after %llu", t, (ull)m->id,
          (ull)h->tc[t]);
    x->started[t] = 1;
  } else {
    CHECK(h, x->started[t] && m->id == x->said[t] + 1,
          "thread %u acknowledged commit %llu after %llu", t, (ull)m->id,
          (ull)x->said[t]);
    x->said[t] = m->id;
    r->acks++;
  }
  CHECK(h, x->nbv[t] == c - h->tc[t] - 1, "thread %u: vectors out of order", t);
  for (unsigned u = 0; u < NTH; u++) {
    const uint64_t *prev =
        x->nbv[t] > 0 ? x->bv[t] + (x->nbv[t] - 1) * NTH : h->tc;
    CHECK(h,
          m->vec[u] >= prev[u] && (u < n || m->vec[u] == h->tc[u]) &&
              (u != t || m->vec[u] == c - 1),
          "thread %u's vector before its commit %llu: thread %u at %llu "
          "(before: %llu)",
          t, (ull)c, u, (ull)m->vec[u], (ull)prev[u]);
    if (m->vec[u] > x->acked[u])
      x->acked[u] = m->vec[u];
  }
  if (x->nbv[t] == x->capbv[t]) {
    size_t cap = x->capbv[t] ? 2 * x->capbv[t] : 256;
    uint64_t *bv = realloc(x->bv[t], cap * NTH * sizeof *bv);
    CHECK(h, bv != NULL, "out of memory");
    x->bv[t] = bv;
    x->capbv[t] = cap;
  }
  memcpy(x->bv[t] + x->nbv[t] * NTH, m->vec, NTH * sizeof *m->vec);
  x->nbv[t]++;
}

static void on_msg(harness *h, round_t *r, const msg_t *m) {
  switch (m->kind) {
  case M_TSTART:
  case M_TACK:
    on_tmsg(h, r, m);
    return;
  case M_READY:
    CHECK(h, !r->ready, "two READY messages");
    CHECK(h,
          m->id == h->a + 1 ||
              (m->id == h->a + 2 && h->unchecked && m->rc == ST_A1),
          "the writer starts at commit %llu after %llu", (ull)m->id, (ull)h->a);
    CHECK(h, m->gen == h->gen || (h->gen_maybe && m->gen == h->gen + 1),
          "generation %llu at open, expected %llu%s", (ull)m->gen, (ull)h->gen,
          h->gen_maybe ? " or one more" : "");
    if (h->unchecked)
      resolved(h, m->rc, m->extra, m->recs); /* the writer checked the store */
    if (m->id == h->a + 2)
      model_apply(h->m, ++h->a);
    if (h->gen_maybe && m->gen == h->gen + 1)
      h->s.kills_after_rename++;
    h->gen = m->gen;
    h->gen_maybe = 0;
    h->pending = 0;
    h->unchecked = 0;
    h->ready_seen = 1;
    r->ready = 1;
    r->last_size = m->size;
    break;
  case M_ACK:
    CHECK(h, r->ready && m->id == h->a + 1,
          "acknowledgement of commit %llu after %llu", (ull)m->id, (ull)h->a);
    model_apply(h->m, ++h->a);
    h->s.acked++;
    r->acks++;
    r->last_size = m->size;
    r->in_compaction = 0;
    r->in_reopen = 0;
    break;
  case M_CBEGIN:
    r->in_compaction = 1;
    break;
  case M_RBEGIN:
    r->in_reopen = 1;
    break;
  case M_REND:
    CHECK(h, r->in_reopen && m->gen == h->gen,
          "generation %llu after reopening, expected %llu", (ull)m->gen,
          (ull)h->gen);
    h->s.reopens++;
    r->in_reopen = 0;
    r->last_size = m->size;
    break;
  case M_CEND:
    CHECK(h, r->in_compaction && m->gen == h->gen + 1,
          "compaction ended with generation %llu after %llu", (ull)m->gen,
          (ull)h->gen);
    h->gen = m->gen;
    h->s.compactions++;
    h->s.mt_compactions += (ull)h->mt;
    r->in_compaction = 0;
    r->last_size = m->size;
    break;
  case M_ERR:
    crash_fail(h, __LINE__, "the writer failed: %s (see its message above)",
               mapkv_strerror(m->rc));
    break;
  default:
    crash_fail(h, __LINE__, "unknown message %u from the writer", m->kind);
  }
  if (r->last_size > h->s.max_file)
    h->s.max_file = r->last_size;
}

/* Reads what the writer sent; 0 at EOF. */
static int drain(harness *h, round_t *r, int fd) {
  for (;;) {
    ssize_t n = read(fd, r->buf + r->have, sizeof r->buf - r->have);
    size_t off = 0;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      return 1;
    CHECK(h, n >= 0, "read: %s", strerror(errno));
    if (n == 0) {
      r->eof = 1;
      return 0;
    }
    r->have += (size_t)n;
    while (r->have - off >= sizeof(msg_t)) {
      msg_t m;
      memcpy(&m, r->buf + off, sizeof m);
      on_msg(h, r, &m);
      off += sizeof m;
    }
    memmove(r->buf, r->buf + off, r->have - off);
    r->have -= off;
  }
}

static void drain_reader(harness *h, int fd) {
  char buf[256];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    h->s.reader_snapshots += (ull)n;
}

/* A junk <db>.compact: random bytes, or a copy of the store itself. */
static void plant_junk(harness *h) {
  uint8_t buf[12288];
  size_t n = (size_t)(prng(h) % sizeof buf);
  int fd;
  if (prng(h) % 2 == 0) {
    int in = open(h->path, O_RDONLY);
    ssize_t got = in >= 0 ? pread(in, buf, sizeof buf, 0) : -1;
    if (in >= 0)
      close(in);
    n = got > 0 ? (size_t)got : 0;
  } else {
    uint64_t s = prng(h);
    for (size_t i = 0; i < n; i++)
      buf[i] = (uint8_t)rng_next(&s);
  }
  fd = open(h->cpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(h, fd >= 0, "creating %s: %s", h->cpath, strerror(errno));
  CHECK(h, write(fd, buf, n) == (ssize_t)n, "writing %s", h->cpath);
  close(fd);
  h->s.junk_planted++;
}

static uint8_t *slurp(harness *h, uint64_t *size) {
  struct stat st;
  uint8_t *buf;
  int fd = open(h->path, O_RDONLY);
  CHECK(h, fd >= 0 && fstat(fd, &st) == 0, "opening %s: %s", h->path,
        strerror(errno));
  buf = malloc((size_t)st.st_size + 1);
  CHECK(h, buf != NULL, "out of memory");
  CHECK(h, pread(fd, buf, (size_t)st.st_size, 0) == st.st_size, "reading %s",
        h->path);
  close(fd);
  *size = (uint64_t)st.st_size;
  return buf;
}

/* After the kill of a writer with threads: the commit each thread had in
 * flight (the one after its last known to have returned, if it had sent
 * its vector and was not compacting). */
static void mt_settle(harness *h, const round_t *r) {
  mtr_t *x = &h->t;
  unsigned inflight = 0;
  for (unsigned t = 0; t < (unsigned)h->nthreads; t++) {
    CHECK(h, x->acked[t] <= x->said[t] + 1,
          "thread %u's commit %llu had returned, but it acknowledged only "
          "%llu",
          t, (ull)x->acked[t], (ull)x->said[t]);
    x->pending[t] = r->ready && x->started[t] &&
                    x->nbv[t] > x->acked[t] - h->tc[t] &&
                    !(t == 0 && r->in_compaction);
    inflight += (unsigned)x->pending[t];
  }
  h->s.mt_inflight_by_n[inflight]++;
  h->s.mt_kills_multi += (ull)(inflight >= 2);
}

/* A check of a round with threads found res in the store o: the model
 * takes each thread's state, the shared keys' values, and the figures. */
static void mt_adopt(harness *h, const obs_t *o, const tres_t *res) {
  mtr_t *x = &h->t;
  ull acks = 0;
  for (unsigned t = 0; t < (unsigned)h->nthreads; t++) {
    acks += x->acked[t] - h->tc[t];
    h->s.mt_acked_by_vec += x->acked[t] - x->said[t];
    if (x->pending[t]) {
      h->s.mt_inflight++;
      if (res->pmin[t] > x->acked[t])
        h->s.mt_kept++;
      else if (res->pmax[t] == x->acked[t])
        h->s.mt_lost++;
      else
        h->s.mt_undecided++; /* in the store or not, nothing shows it */
    }
    while (h->tc[t] < res->pmin[t])
      model_apply_own(h->m, tag_of(t + 1, ++h->tc[t]));
  }
  for (unsigned k = SBASE; k < NKEYS; k++)
    h->m[k] = o->cid[k];
  h->s.mt_acked += acks;
  if (acks > h->s.mt_max_acks)
    h->s.mt_max_acks = acks;
  h->s.mt_hb_pairs += res->hb_pairs;
  h->s.mt_hb_shared += res->hb_shared;
  h->s.mt_evidence += res->evidence;
}

/* The parent's check after a kill: the raw file, a read-only open, a
 * writable open, and a clean close. */
static void parent_check(harness *h) {
  mapkv_options o;
  mapkv_t *db;
  char err[4096];
  obs_t ro, rw;
  tres_t tro, trw;
  uint64_t size, nz, expect_tail;
  uint8_t *raw = slurp(h, &size);
  int rc, which_ro, which, leftover = access(h->cpath, F_OK) == 0;

  for (nz = size; nz > HDR_PAGE && raw[nz - 1] == 0; nz--)
    ;
  free(raw);
  if (nz < HDR_PAGE)
    nz = HDR_PAGE;

  /* Read-only: sees the recovered state, changes nothing. */
  mapkv_options_init(&o);
  o.flags = MAPKV_RDONLY;
  o.reserve = 1ull << 30;
  rc = mapkv_open(h->path, &o, &db);
  CHECK(h, rc == 0, "read-only open: %s", mapkv_errmsg());
  if (observe(db, 1, &ro, err, sizeof err) != 0)
    crash_fail(h, __LINE__, "read-only open: %s", err);
  if (h->mt)
    which_ro = match_mt(h, &ro, &tro, err, sizeof err) == 0 ? tro.single : -1;
  else
    which_ro = match_state(&ro, h->m, h->a, !h->pending, err, sizeof err);
  if (which_ro < 0)
    crash_fail(h, __LINE__, "read-only open: %s", err);
  CHECK(h, mapkv_close(db) == 0, "closing the read-only handle");
  expect_tail = nz > ro.st.data_end ? nz - ro.st.data_end : 0;
  CHECK(h, ro.st.dropped_tail_bytes == expect_tail,
        "read-only open reports %llu dropped bytes; the file has %llu "
        "non-zero bytes after data end %llu",
        (ull)ro.st.dropped_tail_bytes, (ull)expect_tail, (ull)ro.st.data_end);
  if (h->ready_seen)
    CHECK(h, ro.st.clean_open == 0,
          "a killed writer left the store marked clean");

  if (prng(h) % 8 == 0)
    plant_junk(h); /* a leftover must not break the writable open */

  /* Writable: recovers, zeroes the dropped tail, deletes <db>.compact. */
  writer_options(h, &o, 0);
  rc = mapkv_open(h->path, &o, &db);
  CHECK(h, rc == 0, "writable open: %s", mapkv_errmsg());
  if (observe(db, 1, &rw, err, sizeof err) != 0)
    crash_fail(h, __LINE__, "writable open: %s", err);
  if (h->mt)
    which = match_mt(h, &rw, &trw, err, sizeof err) == 0 ? trw.single : -1;
  else
    which = match_state(&rw, h->m, h->a, !h->pending, err, sizeof err);
  if (which < 0)
    crash_fail(h, __LINE__, "writable open: %s", err);
  CHECK(h, which == which_ro,
        "the read-only open saw state %d, the writable open %d", which_ro,
        which);
  CHECK(h,
        memcmp(ro.cid, rw.cid, sizeof ro.cid) == 0 && ro.count == rw.count &&
            memcmp(ro.order, rw.order, sizeof ro.order) == 0,
        "the read-only and the writable open show different keys, values "
        "or orders");
  CHECK(h,
        rw.st.data_end == ro.st.data_end &&
            rw.st.dropped_tail_bytes == ro.st.dropped_tail_bytes &&
            rw.st.dropped_tail_records == ro.st.dropped_tail_records &&
            rw.st.clean_open == ro.st.clean_open &&
            rw.st.last_seq == ro.st.last_seq &&
            rw.st.recovered_batches == ro.st.recovered_batches,
        "read-only and writable recovery differ: data end %llu/%llu, "
        "dropped %llu/%llu bytes, %llu/%llu records, clean %u/%u",
        (ull)ro.st.data_end, (ull)rw.st.data_end, (ull)ro.st.dropped_tail_bytes,
        (ull)rw.st.dropped_tail_bytes, (ull)ro.st.dropped_tail_records,
        (ull)rw.st.dropped_tail_records, ro.st.clean_open, rw.st.clean_open);
  CHECK(h,
        rw.st.generation == h->gen ||
            (h->gen_maybe && rw.st.generation == h->gen + 1),
        "generation %llu, expected %llu%s", (ull)rw.st.generation, (ull)h->gen,
        h->gen_maybe ? " or one more" : "");
  CHECK(h, access(h->cpath, F_OK) != 0 && errno == ENOENT,
        "%s survived a writable open", h->cpath);
  raw = slurp(h, &size);
  CHECK(h, size == rw.st.file_size, "file of %llu bytes, stat says %llu",
        (ull)size, (ull)rw.st.file_size);
  for (uint64_t i = rw.st.data_end; i < size; i++)
    if (raw[i] != 0) {
      free(raw);
      crash_fail(h, __LINE__,
                 "byte %llu after data end %llu is not zero after a "
                 "writable open",
                 (ull)i, (ull)rw.st.data_end);
    }
  free(raw);

  resolved(h, which, rw.st.dropped_tail_bytes, rw.st.dropped_tail_records);
  if (which == ST_A1)
    model_apply(h->m, ++h->a);
  if (h->mt) {
    mt_adopt(h, &rw, &trw);
    CHECK(h, memcmp(h->m, rw.cid, sizeof h->m) == 0,
          "the model after the round is not what the store holds");
  }
  h->s.leftover_compact += (ull)leftover;
  if (h->gen_maybe && rw.st.generation == h->gen + 1)
    h->s.kills_after_rename++;
  h->gen = rw.st.generation;
  h->gen_maybe = 0;
  h->pending = 0;
  h->unchecked = 0;
  h->ready_seen = 0;

  /* Sometimes the parent compacts the recovered store itself. */
  if (prng(h) % 10 == 0) {
    rc = mapkv_compact(db);
    CHECK(h, rc == 0, "compacting the recovered store: %s", mapkv_errmsg());
    if (observe(db, 0, &rw, err, sizeof err) != 0)
      crash_fail(h, __LINE__, "after compacting the recovered store: %s", err);
    /* The recovery figures still describe the open (checked above). */
    rw.st.dropped_tail_bytes = rw.st.dropped_tail_records = 0;
    if (match_state(&rw, h->m, h->a, 1, err, sizeof err) < 0)
      crash_fail(h, __LINE__, "after compacting the recovered store: %s", err);
    CHECK(h, rw.st.generation == h->gen + 1, "generation %llu after %llu",
          (ull)rw.st.generation, (ull)h->gen);
    h->gen++;
    h->s.parent_compactions++;
  }
  CHECK(h, mapkv_close(db) == 0, "mapkv_close: %s", mapkv_errmsg());
}

/* A round with writer threads starts: nothing reported yet. */
static void mt_begin(harness *h, int nthreads) {
  for (unsigned t = 0; t < NTH; t++)
    free(h->t.bv[t]);
  memset(&h->t, 0, sizeof h->t);
  h->mt = nthreads > 0;
  h->nthreads = nthreads;
  for (unsigned t = 0; t < NTH; t++)
    h->t.acked[t] = h->t.said[t] = h->tc[t];
}

static void run_round(harness *h, int last) {
  round_t *r = calloc(1, sizeof *r);
  /* A quarter of the rounds run 2-4 writer threads (durable commits, no
   * tight compactions, no reopens, checked by the parent). */
  int mt = prng(h) % 4 == 0;
  int tight = !mt && prng(h) % 7 == 0, with_reader = prng(h) % 3 == 0;
  int chain = !mt && !last && prng(h) % 5 == 0;
  int from_fork = prng(h) % 10 == 0;
  /* In half of those the writer kills itself (SIGKILL) right after its
   * threads' k-th acknowledgement: just after a commit returned, where a
   * commit that returned before its records reached the file is lost. */
  int ack_kill = mt && !from_fork && prng(h) % 2 == 0;
  uint64_t ack_want = 1 + prng(h) % 40;
  static const uint64_t inits[] = {8192, 16384, 65536};
  static const uint64_t steps[] = {4096, 8192, 32768};
  uint64_t delay = pick_delay(h);
  uint64_t t_reader = 0, t_writer = 0;
  pid_t writer, reader = 0;
  int wfd, rfd = -1, writer_dead = 0, leftover;
  struct stat st;

  CHECK(h, r != NULL, "out of memory");
  h->tight = tight;
  h->ack_kill = ack_kill ? ack_want : 0;
  /* A second writable open while the writer lives: the writer then does
   * not close and reopen the store (the open would win in between). */
  h->probe = !from_fork && prng(h) % 4 == 0;
  /* Mostly durable commits; a quarter in MAPKV_SYNC_NONE, where a commit
   * takes microseconds and kills land inside its writing more often (a
   * process crash loses nothing acknowledged in any mode). */
  h->sync_mode = !mt && prng(h) % 4 == 0 ? MAPKV_SYNC_NONE : MAPKV_SYNC_COMMIT;
  mt_begin(h, mt ? 2 + (int)(prng(h) % 3) : 0);
  h->initial_size = inits[prng(h) % 3];
  h->growth_step = steps[prng(h) % 3];

  /* A crashed store: sometimes a writable open is killed in its recovery
   * (or finishes it and exits without a clean close) first. */
  if (h->unchecked && prng(h) % 6 == 0) {
    pid_t p = spawn(h, NULL, 'c');
    uint64_t t = now_ns() + prng(h) % 1000000;
    wait_until(t);
    if (kill_reap(h, p, "recoverer"))
      h->s.kills_recoverer++;
    else
      h->s.recoverers_done++;
  }
  if (prng(h) % 10 == 0)
    plant_junk(h); /* the writer's open must cope with a leftover */

  writer = spawn(h, &wfd, 'w');
  if (with_reader) {
    reader = spawn(h, &rfd, 'r');
    t_reader = now_ns() + pick_delay(h);
  }
  if (from_fork) {
    t_writer = now_ns() + delay;
  } else {
    uint64_t give_up = now_ns() + (uint64_t)READY_TIMEOUT * 1000000ull;
    while (!r->ready) {
      struct pollfd p = {wfd, POLLIN, 0};
      CHECK(h, now_ns() < give_up, "the writer did not open the store");
      if (poll(&p, 1, 100) > 0 && drain(h, r, wfd) == 0 && !r->ready) {
        kill_reap(h, writer, "writer");
        crash_fail(h, __LINE__, "the writer exited before opening the store");
      }
    }
    if (h->probe) {
      /* While the writer lives, nobody else may open the store for
       * writing (after the kill, the parent's writable open must work). */
      mapkv_options o;
      mapkv_t *db = NULL;
      writer_options(h, &o, 0);
      CHECK(h, mapkv_open(h->path, &o, &db) == MAPKV_ELOCKED,
            "a second writable open did not get MAPKV_ELOCKED");
      h->s.locked_probes++;
    }
    t_writer = now_ns() + delay;
  }
  if (ack_kill) {
    t_writer = now_ns() + 200000000ull; /* at the latest */
    while (now_ns() < t_writer) {
      struct pollfd p = {wfd, POLLIN, 0};
      int ms = (int)((t_writer - now_ns()) / 1000000) + 1;
      if (poll(&p, 1, ms) > 0 && drain(h, r, wfd) == 0)
        break; /* the writer died */
    }
    CHECK(h, kill_reap(h, writer, "writer") == 1, "the writer was not killed");
    writer_dead = 1;
    h->s.mt_ack_kills += (ull)(r->acks >= ack_want);
  }

  /* Sleep until the deadlines; the acknowledgements wait in the pipe (the
   * parent does not wake up for each, so it does not steer where the
   * writer is when the kill comes). A writer that fails exits with a
   * message, found below. */
  while (!writer_dead || reader != 0) {
    uint64_t next = writer_dead                          ? t_reader
                    : reader != 0 && t_reader < t_writer ? t_reader
                                                         : t_writer;
    wait_until(next);
    if (!writer_dead && now_ns() >= t_writer) {
      CHECK(h, kill_reap(h, writer, "writer") == 1,
            "the writer was not "
            "killed");
      writer_dead = 1;
    }
    if (reader != 0 && now_ns() >= t_reader) {
      if (kill_reap(h, reader, "reader"))
        h->s.kills_reader++;
      drain_reader(h, rfd);
      close(rfd);
      reader = 0;
    }
  }
  while (drain(h, r, wfd) != 0)
    ;
  close(wfd);
  CHECK(h, r->have == 0, "half a message left in the pipe");

  /* What the kill hit. */
  h->s.kills++;
  h->s.rounds++;
  h->s.tight_rounds += (ull)tight;
  h->s.nosync_rounds += (ull)(h->sync_mode == MAPKV_SYNC_NONE);
  if (!mt && r->acks > h->s.max_round_acks)
    h->s.max_round_acks = r->acks;
  if (mt) {
    h->s.mt_rounds++;
    h->s.mt_by_n[h->nthreads]++;
    h->s.mt_reader_rounds += (ull)with_reader;
    h->s.mt_kills_in_compaction += (ull)(r->ready && r->in_compaction);
    mt_settle(h, r);
  }
  if (!r->ready) {
    h->s.kills_before_ready++;
  } else {
    /* No commit is in flight in a compaction or a reopen (nor for the
     * single writer in a round with threads). A kill in a reopen may
     * leave the store cleanly closed. */
    h->pending = !mt && !r->in_compaction && !r->in_reopen;
    h->gen_maybe = r->in_compaction;
    if (r->in_reopen) {
      h->ready_seen = 0;
      h->s.kills_in_reopen++;
    } else if (r->in_compaction)
      h->s.kills_in_compaction++;
    else if (!mt && stat(h->path, &st) == 0 &&
             (uint64_t)st.st_size > r->last_size)
      h->s.kills_growing++;
  }
  h->unchecked = 1; /* also when killed in the open of a checked store */
  leftover = access(h->cpath, F_OK) == 0;

  if (getenv("MAPKV_CRASH_VERBOSE") != NULL) {
    char thr[32] = "";
    if (mt)
      snprintf(thr, sizeof thr, "%d threads%s ", h->nthreads,
               ack_kill ? " (self-kill)" : "");
    printf("round %4d: %s%s%s%s%s delay %7.3f ms, %3llu acks, a=%llu, ready "
           "%d, in compaction %d, leftover %d\n",
           h->round, thr, h->sync_mode == MAPKV_SYNC_NONE ? "nosync " : "",
           tight ? "tight " : "", with_reader ? "reader " : "",
           chain ? "chain " : "", (double)delay / 1e6, (ull)r->acks, (ull)h->a,
           r->ready, r->in_compaction, leftover);
  }
  free(r);
  if (chain) {
    h->s.chained++;
    return; /* the next writer recovers and checks it */
  }
  parent_check(h);
}

static uint64_t env_u64(const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  char *end;
  unsigned long long x;
  if (v == NULL || *v == '\0')
    return dflt;
  x = strtoull(v, &end, 0);
  return *end == '\0' ? (uint64_t)x : dflt;
}

static void test_crash_harness(void **state) {
  harness *h = calloc(1, sizeof *h);
  uint64_t kills = env_u64("MAPKV_CRASH_KILLS", DEFAULT_KILLS);
  uint64_t t0 = now_ns();
  mapkv_options o;
  mapkv_t *db;
  char err[4096];
  obs_t ob;
  double secs;
  (void)state;

  assert_non_null(h);
  g_seed = env_u64("MAPKV_CRASH_SEED", 0x6d61706b76ull);
  make_keys();
  h->prng = mix64(g_seed ^ 0xc0ffee);
  tu_path(h->path, sizeof h->path, "crash");
  snprintf(h->cpath, sizeof h->cpath, "%s.compact", h->path);
  printf("crash harness: seed %llu, %llu writer kills%s, store %s\n",
         (ull)g_seed, (ull)kills, CRASH_ASAN ? " (AddressSanitizer)" : "",
         h->path);

  /* The store starts empty and cleanly closed. */
  h->initial_size = 8192;
  h->growth_step = 4096;
  writer_options(h, &o, MAPKV_CREATE);
  assert_int_equal(mapkv_open(h->path, &o, &db), 0);
  assert_int_equal(mapkv_close(db), 0);

  for (uint64_t i = 0; i < kills; i++) {
    h->round = (int)i;
    run_round(h, i + 1 == kills);
  }
  CHECK(h, !h->unchecked, "the last round was not checked");

  /* The final store after a clean close: the exact model. */
  mapkv_options_init(&o);
  o.flags = MAPKV_RDONLY;
  assert_int_equal(mapkv_open(h->path, &o, &db), 0);
  if (observe(db, 1, &ob, err, sizeof err) != 0 ||
      match_state(&ob, h->m, h->a, 1, err, sizeof err) < 0)
    crash_fail(h, __LINE__, "the final store: %s", err);
  CHECK(h, ob.st.clean_open == 1, "the final open found no clean close");
  CHECK(h, memcmp(ob.cid, h->m, sizeof ob.cid) == 0,
        "the final store is not the model");
  assert_int_equal(mapkv_close(db), 0);

  secs = (double)(now_ns() - t0) / 1e9;
  printf("crash harness summary (seed %llu%s, %.1f s):\n"
         "  kills: %llu writers (%llu before the open finished, %llu in a "
         "compaction (%llu of them after its rename), %llu in a close and "
         "reopen, %llu after the file grew in the commit in flight), %llu "
         "readers, %llu recovering writers (%llu recoveries finished)\n"
         "  rounds: %llu (%llu MAPKV_SYNC_NONE, the rest MAPKV_SYNC_COMMIT; "
         "%llu tight-compaction; %llu chained: checked by the next "
         "writer), %llu checks of a crashed store\n"
         "  commits acknowledged: %llu (at most %llu in one round), all "
         "present after every recovery\n"
         "  commit in flight at a kill: kept %llu, dropped %llu, no-op %llu; "
         "max commits lost in flight per kill: %llu (limit 1); acknowledged "
         "commits lost: 0\n"
         "  recovery dropped %llu bytes (%llu intact records) in %llu "
         "tails; %llu leftover .compact files after kills, %llu junk ones "
         "planted\n"
         "  compactions: %llu by writers, %llu by the parent; %llu clean "
         "reopens by writers; largest file %llu bytes; %llu reader snapshots "
         "checked; %llu second writable opens refused (MAPKV_ELOCKED)\n"
         "  writer threads: %llu rounds (%llu with 2, %llu with 3, %llu with "
         "4 threads; %llu with a reader; %llu killed by the writer itself "
         "after an acknowledgement), %llu commits acknowledged (at most "
         "%llu in one round; %llu known only from another thread's vector), "
         "all present after every recovery\n"
         "  their commits in flight at a kill: %llu (kills with 0/1/2/3/4 in "
         "flight: %llu/%llu/%llu/%llu/%llu): kept %llu, lost %llu, nothing "
         "shows which %llu; %llu proven kept by a shared key; %llu kills in "
         "a compaction of thread 0 (%llu compactions)\n"
         "  file order against happens-before: %llu key pairs, %llu shared "
         "key writes ordered\n",
         (ull)g_seed, CRASH_ASAN ? ", ASan" : "", secs, h->s.kills,
         h->s.kills_before_ready, h->s.kills_in_compaction,
         h->s.kills_after_rename, h->s.kills_in_reopen, h->s.kills_growing,
         h->s.kills_reader, h->s.kills_recoverer, h->s.recoverers_done,
         h->s.rounds, h->s.nosync_rounds, h->s.tight_rounds, h->s.chained,
         h->s.checks, h->s.acked, h->s.max_round_acks, h->s.inflight_kept,
         h->s.inflight_lost, h->s.inflight_noop, h->s.max_lost_per_kill,
         h->s.dropped_bytes, h->s.dropped_records, h->s.tail_drops,
         h->s.leftover_compact, h->s.junk_planted, h->s.compactions,
         h->s.parent_compactions, h->s.reopens, h->s.max_file,
         h->s.reader_snapshots, h->s.locked_probes, h->s.mt_rounds,
         h->s.mt_by_n[2], h->s.mt_by_n[3], h->s.mt_by_n[4],
         h->s.mt_reader_rounds, h->s.mt_ack_kills, h->s.mt_acked,
         h->s.mt_max_acks, h->s.mt_acked_by_vec, h->s.mt_inflight,
         h->s.mt_inflight_by_n[0], h->s.mt_inflight_by_n[1],
         h->s.mt_inflight_by_n[2], h->s.mt_inflight_by_n[3],
         h->s.mt_inflight_by_n[4], h->s.mt_kept, h->s.mt_lost,
         h->s.mt_undecided, h->s.mt_evidence, h->s.mt_kills_in_compaction,
         h->s.mt_compactions, h->s.mt_hb_pairs, h->s.mt_hb_shared);
  fflush(stdout);
  assert_true(h->s.kills >= kills);
  assert_true(h->s.max_lost_per_kill <= 1);
  unlink(h->path);
  unlink(h->cpath);
  mt_begin(h, 0);
  free(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crash_harness),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
