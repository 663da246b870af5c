/*
 * gen_corpus.c — writes the seed corpus of the fuzz targets:
 *
 *   gen_corpus DIR
 *
 * DIR/fuzz_open: small real stores built through the API (empty, puts,
 * batches, deletes, compacted, crashed with a torn tail, a large value),
 * cut at their data end, and programs for fuzz_open's structure-aware mode
 * (first byte 0x01); DIR/fuzz_ops: operation programs for fuzz_ops (the
 * byte layouts are those the targets parse). File ids are deterministic.
 * The checked-in tests/fuzz/corpus was made with it; rerun it after a
 * change of the input layouts.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "mapkv/mapkv.h"

static const char *outdir;

static void save(const char *target, const char *name, const void *p,
                 size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", outdir, target);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
  fuzz_write_file(path, p, n);
}

#define OK(expr)                                                               \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ != 0)                                                              \
      FUZZ_FAIL("%s: %s", #expr, mapkv_errmsg());                              \
  } while (0)

static mapkv_t *open_new(const char *path) {
  mapkv_options o;
  mapkv_t *db;
  mapkv_options_init(&o);
  o.flags = MAPKV_CREATE;
  o.initial_size = 8192;
  o.growth_step = 4096;
  fuzz_remove_store(path);
  OK(mapkv_open(path, &o, &db));
  return db;
}

static void put_str(mapkv_t *db, const char *k, const char *v) {
  OK(mapkv_put(db, k, strlen(k), v, strlen(v)));
}

/* Saves the file of db (closed cleanly, or as a crash leaves it) cut at
 * its data end. */
static void save_store(const char *name, mapkv_t *db, const char *path,
                       int crash) {
  mapkv_stats st;
  uint8_t *img;
  size_t n;
  OK(mapkv_stat(db, &st));
  if (!crash)
    OK(mapkv_close(db));
  img = fuzz_read_file(path, &n);
  if (crash)
    mapkv_close(db);
  if (n > st.data_end)
    n = st.data_end;
  save("fuzz_open", name, img, n);
  free(img);
  fuzz_remove_store(path);
}

static void stores(const char *path) {
  mapkv_t *db;
  mapkv_batch_t *b;
  char k[32], v[64];
  static char big[3000];

  db = open_new(path);
  save_store("store-empty", db, path, 0);

  db = open_new(path);
  for (int i = 0; i < 6; i++) {
    snprintf(k, sizeof k, "key%d", i);
    snprintf(v, sizeof v, "value number %d", i);
    put_str(db, k, v);
  }
  put_str(db, "", "empty key");
  put_str(db, "empty value", "");
  save_store("store-puts", db, path, 0);

  db = open_new(path);
  put_str(db, "a", "1");
  OK(mapkv_batch_begin(db, &b));
  OK(mapkv_batch_put(b, "b", 1, "2", 1));
  OK(mapkv_batch_put(b, "c", 1, "3", 1));
  OK(mapkv_batch_del(b, "a", 1));
  OK(mapkv_batch_commit(b));
  OK(mapkv_batch_begin(db, &b));
  OK(mapkv_batch_put(b, "d", 1, "4", 1));
  OK(mapkv_batch_commit(b));
  put_str(db, "b", "22");
  save_store("store-batches", db, path, 0);

  db = open_new(path);
  for (int i = 0; i < 10; i++) {
    snprintf(k, sizeof k, "k%02d", i % 4);
    snprintf(v, sizeof v, "v%d", i);
    put_str(db, k, v);
  }
  OK(mapkv_del(db, "k01", 3));
  save_store("store-overwrites", db, path, 0);

  db = open_new(path);
  for (int i = 0; i < 10; i++) {
    snprintf(k, sizeof k, "k%02d", i % 4);
    snprintf(v, sizeof v, "v%d", i);
    put_str(db, k, v);
  }
  OK(mapkv_del(db, "k02", 3));
  OK(mapkv_compact(db));
  put_str(db, "after", "compaction");
  save_store("store-compacted", db, path, 0);

  /* Crashed: unclean header; the last batch torn off by the cut below. */
  db = open_new(path);
  put_str(db, "x", "one");
  put_str(db, "y", "two");
  OK(mapkv_batch_begin(db, &b));
  OK(mapkv_batch_put(b, "x", 1, "three", 5));
  OK(mapkv_batch_put(b, "z", 1, "four", 4));
  OK(mapkv_batch_commit(b));
  {
    mapkv_stats st;
    uint8_t *img;
    size_t n;
    OK(mapkv_stat(db, &st));
    img = fuzz_read_file(path, &n);
    mapkv_close(db);
    save("fuzz_open", "store-crashed", img, st.data_end);
    save("fuzz_open", "store-crashed-torn", img, st.data_end - 30);
    free(img);
    fuzz_remove_store(path);
  }

  db = open_new(path);
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)('a' + i % 26);
  OK(mapkv_put(db, "big", 3, big, sizeof big));
  put_str(db, "small", "s");
  save_store("store-big-value", db, path, 0);
}

/* Programs for fuzz_open's structure-aware mode and for fuzz_ops. */
typedef struct prog {
  uint8_t b[512];
  size_t n;
} prog;

static void emit_bytes(prog *p, const int *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    p->b[p->n++] = (uint8_t)b[i];
}
#define EMIT(p, ...)                                                           \
  emit_bytes(p, (const int[]){__VA_ARGS__},                                    \
             sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

/* The operations of the fuzz_open programs below: cfg 0 (sync COMMIT,
 * the default limits), then 6 operations making 7 records: put a, put
 * bb, a batch {put c, del a, put d} (3 records and a COMMIT), put e, a
 * delete of an absent key (nothing written), sync. */
static void base_ops(prog *p) {
  EMIT(p, 0x01, 0x00, 6);            /* structure-aware; cfg; 6 ops */
  EMIT(p, 0x00, 1, 'a', 10, 1);      /* put a */
  EMIT(p, 0x00, 2, 'b', 'b', 20, 2); /* put bb */
  EMIT(p, 0x03, 1, 0x00);            /* batch of 3: put */
  EMIT(p, 1, 'c', 5, 3);             /*   c */
  EMIT(p, 0x01, 1, 'a');             /*   del a */
  EMIT(p, 0x00, 1, 'd', 7, 4);       /*   put d */
  EMIT(p, 0x00);                     /*   commit */
  EMIT(p, 0x00, 1, 'e', 30, 5);      /* put e */
  EMIT(p, 0x02, 1, 'b');             /* del b (absent) */
  EMIT(p, 0x07);                     /* sync */
}

#define NRECS 7 /* records base_ops() writes */

/* A history: sync NONE, a compaction (the header of the generation
 * before goes to the bank of headers), close and reopen, crash and
 * recovery. */
static void history_ops(prog *p) {
  EMIT(p, 0x01, 0x01, 8);         /* structure-aware; sync NONE; 8 ops */
  EMIT(p, 0x00, 1, 'k', 0xfb, 9); /* put k, 1 KiB */
  EMIT(p, 0x00, 1, 'j', 12, 9);   /* put j */
  EMIT(p, 0x04);                  /* compact */
  EMIT(p, 0x01, 1, 'm', 12, 1);   /* put m */
  EMIT(p, 0x05);                  /* close + reopen */
  EMIT(p, 0x00, 1, 'n', 12, 2);   /* put n */
  EMIT(p, 0x06);                  /* crash + reopen */
  EMIT(p, 0x00, 1, 'k', 3, 3);    /* put k */
}

static void save_prog(const char *name, const prog *p) {
  save("fuzz_open", name, p->b, p->n);
}

static void programs(void) {
  static const char *fields[18] = {
      "magic",  "version", "start",   "page",      "flags",     "fileid",
      "gen",    "end",     "lastseq", "liverec",   "livebytes", "created",
      "maxkey", "maxval",  "sealed",  "reserved0", "reserved8", "reserved16"};
  static const char *classes[8] = {"zero", "one",    "small",  "bound",
                                   "max",  "random", "copied", "near"};
  char name[96];
  prog p;

  /* fuzz_open, structure-aware: 0x01, cfg, nops, ops, disposition (% 5:
   * clean, crash, crash zeroed from a cut, crash cut, clean and cut at a
   * record boundary), the cut (u16; for the last: a record index u16 and
   * an offset byte), corruptions (count % 9; each sel, kind % 24, arg,
   * and for header values a class parameter), byte flips (offset u24,
   * xor). Keys: a length byte (% 9) and the bytes; values: spec (% 64)
   * and a seed. */
  memset(&p, 0, sizeof p);
  base_ops(&p);
  EMIT(&p, 0x00, 0x00); /* clean close; no corruption */
  save_prog("struct-clean", &p);

  memset(&p, 0, sizeof p);
  base_ops(&p);
  EMIT(&p, 0x01, 0x00); /* crash; no corruption */
  save_prog("struct-crash", &p);

  memset(&p, 0, sizeof p);
  base_ops(&p);
  EMIT(&p, 0x02, 0x70, 0x00, 0x00); /* crash, zeroed from 4096 + 112 */
  save_prog("struct-crash-zeroed", &p);

  memset(&p, 0, sizeof p);
  base_ops(&p);
  EMIT(&p, 0x03, 0x70, 0x00, 0x00); /* crash, cut at 4096 + 112 */
  save_prog("struct-crash-cut", &p);

  /* A cleanly closed store cut at every record boundary, and inside
   * records. */
  for (int j = 0; j <= NRECS; j++) {
    memset(&p, 0, sizeof p);
    base_ops(&p);
    EMIT(&p, 0x04, j, 0x00, 0x00, 0x00);
    snprintf(name, sizeof name, "struct-trunc-at-%d", j);
    save_prog(name, &p);
  }
  for (int j = 0; j < NRECS; j += 3) {
    memset(&p, 0, sizeof p);
    base_ops(&p);
    EMIT(&p, 0x04, j, 0x00, 0x80 + 7 * j + 5, 0x00);
    snprintf(name, sizeof name, "struct-trunc-inside-%d", j);
    save_prog(name, &p);
  }

  /* Record damage with checksums fixed up and broken. */
  memset(&p, 0, sizeof p);
  base_ops(&p);
  EMIT(&p, 0x00, 4);
  EMIT(&p, 1, 0, 3);  /* record 1: flags FIRST|LAST, resealed */
  EMIT(&p, 2, 6, 5);  /* record 2: value length +5, resealed */
  EMIT(&p, 0, 15, 2); /* header: CLEAN, data end at record 2 */
  EMIT(&p, 3, 8, 0);  /* record 3 zeroed */
  save_prog("struct-damaged", &p);
  EMIT(&p, 0x20, 0x10, 0x00, 0x40); /* and a byte flipped at 4128 */
  save_prog("struct-damaged-flip", &p);

  memset(&p, 0, sizeof p);
  base_ops(&p);
  EMIT(&p, 0x00, 3);
  EMIT(&p, 4, 11, 0x40); /* record 4: prev = its own offset, resealed */
  EMIT(&p, 1, 5, 0xfe);  /* record 1: key length -2 */
  EMIT(&p, 5, 4, 0x07);  /* record 5: value length +7 */
  save_prog("struct-prev-lengths", &p);

  /* Single-bit flips in the key and the prev of the newest records of a
   * cleanly closed store, and anywhere in a record. */
  for (int i = 0; i < 5; i++) {
    memset(&p, 0, sizeof p);
    base_ops(&p);
    EMIT(&p, 0x00, 1, i, 12, (i * 37) & 0xff); /* key bit */
    snprintf(name, sizeof name, "struct-flip-key-%d", i);
    save_prog(name, &p);
    memset(&p, 0, sizeof p);
    base_ops(&p);
    EMIT(&p, 0x00, 1, i, 13, (i * 53 + 0x60) & 0xff); /* prev bit */
    snprintf(name, sizeof name, "struct-flip-prev-%d", i);
    save_prog(name, &p);
  }
  for (int i = 0; i < NRECS; i += 2) {
    memset(&p, 0, sizeof p);
    base_ops(&p);
    EMIT(&p, 0x00, 2, i, 14, (i * 29) & 0xff, (i + 3) % NRECS, 14, 0xe1);
    snprintf(name, sizeof name, "struct-flip-any-%d", i);
    save_prog(name, &p);
  }

  /* Every header field of either copy and of both, a value of each class,
   * with a valid checksum. */
  for (int f = 0; f < 18; f++) {
    for (int k = 0; k < 3; k++) {
      int cls = (f + 3 * k) % 8, copy = k == 1; /* A, B, both */
      memset(&p, 0, sizeof p);
      base_ops(&p);
      EMIT(&p, 0x00, 1, (f << 1) | copy, k == 2 ? 20 : 19, cls,
           (f * 11 + k) & 0xff);
      if (cls == 3)
        EMIT(&p, f % NRECS); /* a record boundary */
      if (cls == 5)
        EMIT(&p, 0x11, 0x22, f, 0x44, 0x55, 0x66, 0x77, k);
      snprintf(name, sizeof name, "struct-header-%s-%s-%s", fields[f],
               k == 0   ? "a"
               : k == 1 ? "b"
                        : "both",
               classes[cls]);
      save_prog(name, &p);
    }
  }

  /* Headers of another store and of this store's generation before a
   * compaction over the log: a whole copy A, B or both; one field. */
  for (int e = 0; e < 4; e++) {
    static const char *bank[4] = {"other-open", "other-clean", "gen0-open",
                                  "gen1-clean-older"};
    for (int which = 0; which < 3; which++) {
      memset(&p, 0, sizeof p);
      history_ops(&p);
      EMIT(&p, 0x00, 1, 0x00, 21, e * 3 + which);
      snprintf(name, sizeof name, "struct-header-of-%s-%s", bank[e],
               which == 0   ? "a"
               : which == 1 ? "b"
                            : "both");
      save_prog(name, &p);
    }
  }
  memset(&p, 0, sizeof p);
  history_ops(&p);
  EMIT(&p, 0x00, 2, 5 << 1, 22, 2 * 3 + 2, 14 << 1, 22, 2 * 3 + 2);
  save_prog("struct-header-of-gen0-fileid-sealed", &p);

  memset(&p, 0, sizeof p);
  history_ops(&p);
  EMIT(&p, 0x00, 2);              /* clean close, 2 corruptions */
  EMIT(&p, 0, 16, 0, 1, 5, 0xfe); /* unclean; key length -2 */
  save_prog("struct-history", &p);

  memset(&p, 0, sizeof p);
  EMIT(&p, 0x01, 0x04, 3); /* small limits (6, 200) */
  EMIT(&p, 0x00, 7, 'l', 'o', 'n', 'g', 'k', 'e', 'y', 3, 1); /* EKEYSIZE */
  EMIT(&p, 0x00, 2, 'o', 'k', 0xf8, 2); /* 256 bytes: EVALSIZE */
  EMIT(&p, 0x00, 2, 'o', 'k', 9, 2);    /* put ok */
  EMIT(&p, 0x00, 1, 12 << 1, 19, 2, 0); /* key limit of copy A: 2 */
  save_prog("struct-limits", &p);

  /* fuzz_ops: c0 (sync mode, small reserve, initial size), c1 (limits),
   * then ops (byte % 21). Keys: c (% 4 bytes, or 4-8 from 0xe0), bytes
   * (< 0xc0: 'a'-'d'); values: spec (% 40, or 700-byte steps from 0xf0),
   * seed. */
  memset(&p, 0, sizeof p);
  EMIT(&p, 0x00, 0x00);
  EMIT(&p, 0, 2, 0, 1, 5, 1); /* put ab */
  EMIT(&p, 1, 1, 2, 7, 2);    /* put c */
  EMIT(&p, 4, 2, 0, 1, 0);    /* get ab, big buffer */
  EMIT(&p, 4, 2, 0, 1, 2);    /* get ab, buffer too small */
  EMIT(&p, 5, 1, 2);          /* del c */
  EMIT(&p, 6, 1, 2);          /* exists c */
  EMIT(&p, 7);                /* batch begin */
  EMIT(&p, 8, 1, 3, 9, 3);    /* batch put d */
  EMIT(&p, 9, 2, 0, 1);       /* batch del ab */
  EMIT(&p, 10);               /* commit */
  EMIT(&p, 12, 1, 3);         /* prefix walk "d"... */
  EMIT(&p, 13);               /* sync */
  save("fuzz_ops", "ops-basic", p.b, p.n);

  EMIT(&p, 17, 0);       /* kept cursor over everything */
  EMIT(&p, 19, 2, 0);    /* misc: a view */
  EMIT(&p, 0);           /* put */
  EMIT(&p, 1, 1, 20, 7); /*   b */
  EMIT(&p, 17, 3);       /* cursor: 4 steps */
  EMIT(&p, 18, 0);       /* reader snapshot */
  EMIT(&p, 14);          /* compact */
  EMIT(&p, 18, 2);       /* reader check */
  EMIT(&p, 15, 0);       /* reopen (the store's limits) */
  EMIT(&p, 19, 0);       /* verify */
  EMIT(&p, 19, 1);       /* second writer */
  save("fuzz_ops", "ops-cursor-compact", p.b, p.n);

  EMIT(&p, 0, 1, 1, 25, 4); /* put b */
  EMIT(&p, 0, 1, 2, 25, 5); /* put c */
  EMIT(&p, 7);
  EMIT(&p, 8, 1, 0, 9, 6);
  EMIT(&p, 8, 1, 1, 9, 7);
  EMIT(&p, 10);
  EMIT(&p, 16, 1, 0x20, 0x00); /* crash, zeroed from a cut */
  EMIT(&p, 0, 1, 3, 25, 8);
  EMIT(&p, 16, 2, 0x07, 0x00); /* crash, truncated */
  EMIT(&p, 16, 0, 0, 0);       /* crash */
  save("fuzz_ops", "ops-crash", p.b, p.n);

  memset(&p, 0, sizeof p);
  EMIT(&p, 0x05, 0xc1); /* NONE, small reserve, key max 2,
                              value max 16 */
  for (int i = 0; i < 12; i++)
    EMIT(&p, 0, 1, i & 3, 0xf3, i); /* 2800-byte values: EVALSIZE */
  EMIT(&p, 0, 0xe1, 0, 1, 2, 3);    /* 5-byte key: EKEYSIZE */
  save("fuzz_ops", "ops-limits", p.b, p.n);

  memset(&p, 0, sizeof p);
  EMIT(&p, 0x04, 0x00); /* COMMIT, small reserve */
  for (int i = 0; i < 30; i++)
    EMIT(&p, 0, 1, i & 3, 0xf4, i); /* 3500 bytes each: EFULL */
  EMIT(&p, 14);
  EMIT(&p, 20, 1, 0); /* overwrite a model key */
  save("fuzz_ops", "ops-full", p.b, p.n);

  /* Limits travel with the store: reopened asking for the store's (0),
   * more (capped) and less. */
  memset(&p, 0, sizeof p);
  EMIT(&p, 0x00, 0xc6);           /* key max 3, value max 32 */
  EMIT(&p, 0, 2, 0, 1, 20, 1);    /* put ab */
  EMIT(&p, 15, 0x05);             /* reopen asking for more: capped */
  EMIT(&p, 0, 0xe1, 0, 1, 2, 3);  /* 5-byte key: EKEYSIZE */
  EMIT(&p, 0, 1, 2, 35, 2);       /* 35-byte value: EVALSIZE */
  EMIT(&p, 15, 0x0a);             /* reopen asking for less: key 1, value 8 */
  EMIT(&p, 0, 2, 0, 1, 5, 3);     /* 2-byte key: EKEYSIZE */
  EMIT(&p, 4, 2, 0, 1, 0);        /* get ab: still there */
  EMIT(&p, 5, 2, 0, 1);           /* del ab: EKEYSIZE */
  EMIT(&p, 16, 0x08, 0x00, 0x00); /* crash, reopen asking for a smaller key */
  EMIT(&p, 15, 0x00);             /* reopen: the store's */
  EMIT(&p, 0, 3, 0, 1, 2, 9, 4);  /* put abc */
  save("fuzz_ops", "ops-limits-reopen", p.b, p.n);

  /* close refuses while a batch or a cursor is open */
  memset(&p, 0, sizeof p);
  EMIT(&p, 0x00, 0x00);
  EMIT(&p, 0, 1, 0, 5, 1); /* put a */
  EMIT(&p, 19, 3);         /* close with nothing open (a cursor opened) */
  EMIT(&p, 7);             /* batch begin */
  EMIT(&p, 19, 3);         /* close with a batch open */
  EMIT(&p, 10);            /* commit (empty) */
  EMIT(&p, 17, 0);         /* a kept cursor */
  EMIT(&p, 19, 3);         /* close with the cursor open */
  EMIT(&p, 15, 0);         /* reopen (ends the cursor first) */
  save("fuzz_ops", "ops-close-busy", p.b, p.n);

  /* A cleanly closed store cut at record boundaries (and inside a record
   * of a batch): refused but for salvage, recovered in place. */
  for (int j = 0; j < 8; j++) {
    memset(&p, 0, sizeof p);
    EMIT(&p, 0x01, 0x00);
    EMIT(&p, 0, 1, 0, 5, 1);  /* put a */
    EMIT(&p, 7);              /* batch */
    EMIT(&p, 8, 1, 1, 9, 2);  /*   put b */
    EMIT(&p, 9, 1, 0);        /*   del a */
    EMIT(&p, 8, 1, 2, 0, 3);  /*   put c, empty */
    EMIT(&p, 10);             /* commit: 3 records and a COMMIT */
    EMIT(&p, 0, 1, 3, 30, 4); /* put d */
    EMIT(&p, 21, j, 0, j == 7 ? 0x85 : j >= 5 ? 0x80 + j : 0);
    EMIT(&p, 0, 1, 0, 7, 5); /* put a, after the recovery */
    EMIT(&p, 15, 0);         /* reopen */
    snprintf(name, sizeof name, "ops-truncate-%d", j);
    save("fuzz_ops", name, p.b, p.n);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  outdir = argv[1];
  mkdir(outdir, 0755);
  fuzz_seed_random(42);
  stores(fuzz_path(0, "seed.mkv"));
  programs();
  return 0;
}
