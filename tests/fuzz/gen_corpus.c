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

static void programs(void) {
  prog p;

  /* fuzz_open, structure-aware: cfg, nops, ops, disposition, cut,
   * corruptions (sel, kind, arg), byte flips (offset u24, xor). Keys: a
   * length byte (% 9) and the bytes; values: spec (% 64) and a seed. */
  memset(&p, 0, sizeof p);
  EMIT(&p, 0x01, 0x00, 6);            /* sync COMMIT, 6 ops */
  EMIT(&p, 0x00, 1, 'a', 10, 1);      /* put a */
  EMIT(&p, 0x00, 2, 'b', 'b', 20, 2); /* put bb */
  EMIT(&p, 0x03, 1, 0x00);            /* batch of 3: put */
  EMIT(&p, 1, 'c', 5, 3);             /*   c */
  EMIT(&p, 0x01, 1, 'a');             /*   del a */
  EMIT(&p, 0x00, 1, 'd', 7, 4);       /*   put d */
  EMIT(&p, 0x00);                     /*   commit */
  EMIT(&p, 0x00, 1, 'e', 30, 5);      /* put e */
  EMIT(&p, 0x02, 1, 'b');             /* del b (absent) */
  EMIT(&p, 0x07);                     /* sync */
  EMIT(&p, 0x00);                     /* clean close */
  EMIT(&p, 0x00);                     /* no corruption */
  save("fuzz_open", "struct-clean", p.b, p.n);

  p.b[p.n - 2] = 0x01; /* crash instead of a clean close */
  p.n--;
  EMIT(&p, 0x00, 0x00, 0x00); /* cut (unused), no corruption */
  save("fuzz_open", "struct-crash", p.b, p.n);

  p.n -= 3;
  p.b[p.n - 1] = 0x02; /* crash, zeroed from the cut on */
  EMIT(&p, 0x30, 0x00, 0x00);
  save("fuzz_open", "struct-crash-cut", p.b, p.n);

  p.n -= 3;
  p.b[p.n - 1] = 0x00; /* clean close, then damage */
  EMIT(&p, 4);
  EMIT(&p, 1, 0, 3);  /* record 1: flags FIRST|LAST, resealed */
  EMIT(&p, 2, 6, 5);  /* record 2: value length +5, resealed */
  EMIT(&p, 0, 11, 2); /* header: CLEAN, data end at record 2 */
  EMIT(&p, 3, 8, 0);  /* record 3 zeroed */
  save("fuzz_open", "struct-damaged", p.b, p.n);
  EMIT(&p, 0x20, 0x10, 0x00, 0x40); /* and a byte flipped at 4128 */
  save("fuzz_open", "struct-damaged-flip", p.b, p.n);

  memset(&p, 0, sizeof p);
  EMIT(&p, 0x01, 0x01, 7);         /* sync NONE, 7 ops */
  EMIT(&p, 0x00, 1, 'k', 0xfb, 9); /* put k, 1 KiB */
  EMIT(&p, 0x04);                  /* compact */
  EMIT(&p, 0x01, 1, 'm', 12, 1);   /* put m */
  EMIT(&p, 0x05);                  /* close + reopen */
  EMIT(&p, 0x00, 1, 'n', 12, 2);   /* put n */
  EMIT(&p, 0x06);                  /* crash + reopen */
  EMIT(&p, 0x00, 1, 'k', 3, 3);    /* put k */
  EMIT(&p, 0x00, 2);               /* clean close; 2 corruptions */
  EMIT(&p, 0, 12, 0, 1, 5, 0xfe);  /* unclean; key length -2 */
  save("fuzz_open", "struct-history", p.b, p.n);

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
  EMIT(&p, 15);          /* reopen */
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
