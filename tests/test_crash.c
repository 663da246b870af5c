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
 * then the parent closes the store and the next round goes on with it.
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
 * lost, bytes dropped by recovery, ...) is printed at the end; a failure
 * names the round, the seed and the store file (kept for inspection).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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
#define NK            40 /* ordinary keys */
#define MARKER        NK /* index of the batch marker key */
#define NKEYS         (NK + 1)
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

static char g_keys[NKEYS][KEY_CAP];
static size_t g_klen[NKEYS];

static void make_keys(void) {
  for (unsigned i = 0; i < NK; i++) {
    int n = snprintf(g_keys[i], KEY_CAP, "key-%02u-", i);
    size_t pad = (i * 7u) % 19u;
    memset(g_keys[i] + n, 'a' + (int)(i % 26), pad);
    g_klen[i] = (size_t)n + pad;
  }
  g_klen[MARKER] = (size_t)snprintf(g_keys[MARKER], KEY_CAP, "~batch-marker");
}

static int key_index(const void *k, size_t kl) {
  for (int i = 0; i < NKEYS; i++)
    if (g_klen[i] == kl && memcmp(g_keys[i], k, kl) == 0)
      return i;
  return -1;
}

/* Value of key k as written by commit c: c (8 bytes), k (4 bytes), then
 * bytes from (seed, c, k) (a cheap generator: the writer makes values all
 * the time); one in 16 is 1.5-7.5 KiB. */
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

/* Commit c: half are batches of 2-7 operations (one in 10 of 20-89), each
 * with one put of the marker key; then single puts, single deletes and
 * batches of one operation. Keys repeat within a batch (the later wins). */
static void gen_commit(uint64_t c, commit_t *cm) {
  uint64_t s = h3(g_seed, c, 77);
  unsigned roll = (unsigned)(rng_next(&s) % 100);
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
  commit_t cm;
  int put = 0;
  gen_commit(c, &cm);
  for (unsigned i = 0; i < cm.n; i++)
    if (cm.op[i].key == k)
      put = !cm.op[i].del;
  return put;
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
  for (unsigned k = 0; k < NKEYS; k++)
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
  for (unsigned k = 0; k < NKEYS; k++) {
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
 * the batch marker rule. fresh: nothing was written since the open (the
 * recovery figures then describe the log as it is). */
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
    o->count++;
    o->live_bytes += REC_OVERHEAD + kl + vl;
  }
  mapkv_cursor_close(cur);
  if (rc != MAPKV_NOTFOUND)
    BAD("mapkv_cursor_next: %s (%s)", mapkv_strerror(rc), mapkv_errmsg());

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
  memset(s, 0, sizeof s);
  for (uint64_t p = 0; p <= a + 3; p++) {
    if (p > 0)
      model_apply(s, p);
    if (memcmp(s, o->cid, sizeof s) == 0) {
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
      n += snprintf(err + n, cap - (size_t)n, "; %s: store %llu, model %llu",
                    g_keys[k], (ull)o->cid[k], (ull)ma[k]);
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

enum { M_READY = 1, M_ACK, M_CBEGIN, M_CEND, M_RBEGIN, M_REND, M_ERR };

typedef struct msg_t {
  uint32_t kind;
  int32_t rc;
  uint64_t id;    /* READY: first commit it writes; ACK: the commit */
  uint64_t size;  /* file size after it */
  uint64_t gen;   /* generation */
  uint64_t extra; /* READY: bytes its recovery dropped */
  uint64_t recs;  /* READY: intact records in them */
} msg_t;

static void send_msg(int fd, uint32_t kind, int rc, uint64_t id, uint64_t size,
                     uint64_t gen, uint64_t extra, uint64_t recs) {
  msg_t m;
  const char *p = (const char *)&m;
  size_t left = sizeof m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  m.rc = rc;
  m.id = id;
  m.size = size;
  m.gen = gen;
  m.extra = extra;
  m.recs = recs;
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
} stats_t;

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

/* ---- the children -------------------------------------------------------- */

static void do_commit(mapkv_t *db, uint64_t c, uint64_t *cid, int wfd) {
  commit_t cm;
  uint8_t *val = g_vexp;
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
      child_die(wfd, rc, "commit %llu: deleted key %s, which is absent", (ull)c,
                g_keys[k]);
  } else {
    mapkv_batch_t *b;
    if ((rc = mapkv_batch_begin(db, &b)) != 0)
      child_die(wfd, rc, "commit %llu: mapkv_batch_begin: %s", (ull)c,
                mapkv_errmsg());
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
      child_die(wfd, rc, "commit %llu: adding to the batch: %s", (ull)c,
                mapkv_errmsg());
    }
    rc = mapkv_batch_commit(b);
  }
  if (rc != 0)
    child_die(wfd, rc, "commit %llu: %s (%s)", (ull)c, mapkv_strerror(rc),
              mapkv_errmsg());
  model_apply(cid, c);
}

/* The writer: opens (and, if a writer was killed since the last check,
 * checks) the store, then commits c = a+1, a+2, ... until killed. */
static _Noreturn void writer_main(const harness *h, int wfd) {
  mapkv_options o;
  mapkv_stats st;
  mapkv_t *db;
  uint64_t cid[NKEYS], c = h->a + 1, dropped = 0, drecs = 0;
  int rc, which = ST_A;

  memcpy(cid, h->m, sizeof cid);
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
      model_apply(cid, c++);
    dropped = ob.st.dropped_tail_bytes;
    drecs = ob.st.dropped_tail_records;
  }
  mapkv_stat(db, &st);
  send_msg(wfd, M_READY, which, c, st.file_size, st.generation, dropped, drecs);
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
    do_commit(db, c, cid, wfd);
    mapkv_stat(db, &st);
    send_msg(wfd, M_ACK, 0, c, st.file_size, st.generation, 0, 0);
    c++;
  }
}

/* A reader: opens the store read-only again and again while the writer
 * runs; every snapshot must be the replay of commits 1..P for some P >= a
 * (a batch is all or nothing for readers too). One byte per snapshot. */
static _Noreturn void reader_main(const harness *h, int wfd) {
  for (;;) {
    mapkv_options o;
    mapkv_t *db;
    char err[2048];
    obs_t ob;
    uint64_t s[NKEYS], p = h->a, maxc = 0;
    int rc;
    mapkv_options_init(&o);
    o.flags = MAPKV_RDONLY;
    o.reserve = 1ull << 30;
    if ((rc = mapkv_open(h->path, &o, &db)) != 0)
      child_die(-1, rc, "reader: mapkv_open: %s", mapkv_errmsg());
    if (observe(db, 1, &ob, err, sizeof err) != 0)
      child_die(-1, MAPKV_ECORRUPT, "reader: %s", err);
    memcpy(s, h->m, sizeof s);
    for (unsigned k = 0; k < NKEYS; k++)
      if (ob.cid[k] > maxc)
        maxc = ob.cid[k];
    while (memcmp(s, ob.cid, sizeof s) != 0) {
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

static void on_msg(harness *h, round_t *r, const msg_t *m) {
  switch (m->kind) {
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

/* The parent's check after a kill: the raw file, a read-only open, a
 * writable open, and a clean close. */
static void parent_check(harness *h) {
  mapkv_options o;
  mapkv_t *db;
  char err[4096];
  obs_t ro, rw;
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
  which = match_state(&rw, h->m, h->a, !h->pending, err, sizeof err);
  if (which < 0)
    crash_fail(h, __LINE__, "writable open: %s", err);
  CHECK(h, which == which_ro,
        "the read-only open saw state %d, the writable open %d", which_ro,
        which);
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

static void run_round(harness *h, int last) {
  round_t *r = calloc(1, sizeof *r);
  int tight = prng(h) % 7 == 0, with_reader = prng(h) % 3 == 0;
  int chain = !last && prng(h) % 5 == 0, from_fork = prng(h) % 10 == 0;
  static const uint64_t inits[] = {8192, 16384, 65536};
  static const uint64_t steps[] = {4096, 8192, 32768};
  uint64_t delay = pick_delay(h);
  uint64_t t_reader = 0, t_writer = 0;
  pid_t writer, reader = 0;
  int wfd, rfd = -1, writer_dead = 0, leftover;
  struct stat st;

  CHECK(h, r != NULL, "out of memory");
  h->tight = tight;
  /* A second writable open while the writer lives: the writer then does
   * not close and reopen the store (the open would win in between). */
  h->probe = !from_fork && prng(h) % 4 == 0;
  /* Mostly durable commits; a quarter in MAPKV_SYNC_NONE, where a commit
   * takes microseconds and kills land inside its writing more often (a
   * process crash loses nothing acknowledged in any mode). */
  h->sync_mode = prng(h) % 4 == 0 ? MAPKV_SYNC_NONE : MAPKV_SYNC_COMMIT;
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
  if (r->acks > h->s.max_round_acks)
    h->s.max_round_acks = r->acks;
  if (!r->ready) {
    h->s.kills_before_ready++;
  } else {
    /* No commit is in flight in a compaction or a reopen. A kill in a
     * reopen may leave the store cleanly closed. */
    h->pending = !r->in_compaction && !r->in_reopen;
    h->gen_maybe = r->in_compaction;
    if (r->in_reopen) {
      h->ready_seen = 0;
      h->s.kills_in_reopen++;
    } else if (r->in_compaction)
      h->s.kills_in_compaction++;
    else if (stat(h->path, &st) == 0 && (uint64_t)st.st_size > r->last_size)
      h->s.kills_growing++;
  }
  h->unchecked = 1; /* also when killed in the open of a checked store */
  leftover = access(h->cpath, F_OK) == 0;

  if (getenv("MAPKV_CRASH_VERBOSE") != NULL)
    printf("round %4d: %s%s%s%s delay %7.3f ms, %3llu acks, a=%llu, ready %d, "
           "in compaction %d, leftover %d\n",
           h->round, h->sync_mode == MAPKV_SYNC_NONE ? "nosync " : "",
           tight ? "tight " : "", with_reader ? "reader " : "",
           chain ? "chain " : "", (double)delay / 1e6, (ull)r->acks, (ull)h->a,
           r->ready, r->in_compaction, leftover);
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
         "checked; %llu second writable opens refused (MAPKV_ELOCKED)\n",
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
         h->s.reader_snapshots, h->s.locked_probes);
  fflush(stdout);
  assert_true(h->s.kills >= kills);
  assert_true(h->s.max_lost_per_kill <= 1);
  unlink(h->path);
  unlink(h->cpath);
  free(h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crash_harness),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
