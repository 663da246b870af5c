/*
 * fuzz_format.h — the bytes of a mapkv file as the fuzz targets see them:
 * an implementation of FORMAT.md of their own (format version 2, and the
 * version 1 records stores of that version hold), written from the
 * specification and not from the engine, so that the targets can say what
 * an open must make of a header page, find records, and replay the
 * batches of an intact log into a model.
 *
 * Nothing here trusts the image: every read is bounded by its length.
 */
#ifndef MAPKV_FUZZ_FORMAT_H
#define MAPKV_FUZZ_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "fuzz_kvset.h"

#define FF_PAGE     4096u /* the header page; records start here */
#define FF_COPY_B   2048u /* offset of the second header copy */
#define FF_HDR_SIZE 128u  /* bytes of one header copy */
#define FF_HEAD     22u   /* record bytes before the key (version 2) */
#define FF_HEAD_V1  16u   /* ... in version 1 (no prev) */
#define FF_TAIL     8u    /* the checksum after the value */
#define FF_OVERHEAD (FF_HEAD + FF_TAIL)
#define FF_SEQ_MAX  ((1ull << 48) - 1)
#define FF_KEY_MAX  65535u
#define FF_VAL_MAX  0x7fffffffu
#define FF_VERSION  2u /* the newest format version */

/* Header copy fields: offset and width (FORMAT.md, "Header"). */
enum {
  FF_H_MAGIC = 0,      /* 8 */
  FF_H_VERSION = 8,    /* 4 */
  FF_H_START = 12,     /* 4: data start, 4096 */
  FF_H_PAGE = 16,      /* 4 */
  FF_H_FLAGS = 20,     /* 4: 1 = CLEAN */
  FF_H_FILE_ID = 24,   /* 8 */
  FF_H_GEN = 32,       /* 8 */
  FF_H_END = 40,       /* 8: data end */
  FF_H_LAST_SEQ = 48,  /* 8 */
  FF_H_LIVE_REC = 56,  /* 8 */
  FF_H_LIVE_B = 64,    /* 8 */
  FF_H_CREATED = 72,   /* 8 */
  FF_H_MAX_KEY = 80,   /* 4 */
  FF_H_MAX_VAL = 84,   /* 4 */
  FF_H_SEALED = 88,    /* 8 */
  FF_H_RESERVED = 96,  /* 24 zero bytes */
  FF_H_CHECKSUM = 120, /* 8: XXH3-64 of [0, 120) */
};

/* Record fields: offsets inside a record. */
enum {
  FF_R_TYPE = 2,
  FF_R_FLAGS = 3,
  FF_R_KLEN = 4, /* u16 */
  FF_R_VLEN = 6, /* u32 */
  FF_R_SEQ = 10, /* u48 */
  FF_R_PREV = 16 /* u48, version 2 */
};
enum { FF_PUT = 1, FF_DEL = 2, FF_COMMIT = 3 };
enum { FF_FIRST = 1, FF_LAST = 2 };

uint64_t ff_le(const uint8_t *p, unsigned n);
void ff_put_le(uint8_t *p, uint64_t v, unsigned n);

/* A decoded header copy. */
typedef struct ff_hdr {
  uint32_t version, page_size, flags, max_key, max_value;
  uint64_t file_id, generation, data_end, last_seq, live_records, live_bytes;
  uint64_t created, sealed_end;
} ff_hdr;

/* One header copy at p (128 bytes): 0 if intact (*h filled), MAPKV_ENOTDB
 * without the magic, MAPKV_EVERSION for a newer version whose checksum
 * holds, else MAPKV_ECORRUPT (*why says what). *version receives the
 * version field of a copy with the magic (else 0). */
int ff_copy(const uint8_t *p, ff_hdr *h, uint32_t *version, const char **why);

/* Recomputes the checksum of the header copy at p. */
void ff_copy_reseal(uint8_t *p);

/* What every open must make of the header page of an n-byte file: 0 with
 * *h the copy the store goes by and *which 0 (copy A) or 1 (copy B), or
 * the error every open returns (MAPKV_ENOTDB, MAPKV_ETRUNCATED,
 * MAPKV_EVERSION, MAPKV_ECORRUPT). Two intact copies that differ: copy A,
 * unless its file id fails the record at 4096 and copy B's verifies it. */
int ff_header(const uint8_t *img, size_t n, ff_hdr *h, int *which);

/* A record decoded from an image. */
typedef struct ff_rec {
  uint64_t off, size;
  uint8_t type, flags;
  uint32_t klen, vlen;
  uint64_t seq, prev;
  const uint8_t *key, *val;
} ff_rec;

enum { FF_OK = 0, FF_END, FF_SHORT, FF_BADHEAD, FF_BADSUM };

/* Decodes the record at p (avail readable bytes) with a head of `head`
 * bytes (FF_HEAD or FF_HEAD_V1); with verify, the checksum seeded with
 * file_id is checked too. FF_*. */
int ff_rec_decode(const uint8_t *p, uint64_t avail, uint64_t file_id,
                  unsigned head, int verify, ff_rec *r);

/* Recomputes the checksum of the version 2 record at off of an n-byte
 * image (as its lengths say); nothing if it does not fit. */
void ff_rec_reseal(uint8_t *img, size_t n, size_t off, uint64_t file_id);

/* Encodes a version 2 record at dst; returns its size. */
size_t ff_rec_encode(uint8_t *dst, uint8_t type, uint8_t flags, uint64_t seq,
                     uint64_t prev, const void *key, uint32_t klen,
                     const void *val, uint32_t vlen, uint64_t file_id);

/* The intact log of an image: its records from 4096 up to the first that
 * does not decode and verify, grouped into batches (FORMAT.md: a batch
 * starts with FIRST and ends with LAST; one of several operations ends
 * with a COMMIT counting them). For the images the targets build (a clean
 * close, or a copy taken while open), that is every record. */
typedef struct ff_batch {
  size_t first, n; /* its records: rec[first .. first + n) */
  uint64_t start, end;
  int whole; /* ends with LAST, keeps the batch rules */
} ff_batch;

typedef struct ff_log {
  ff_rec *rec;
  size_t nrec, caprec;
  ff_batch *batch;
  size_t nbatch, capbatch;
  size_t *batch_of; /* batch index of each record */
  uint64_t end;     /* after the last record */
} ff_log;

void ff_log_parse(ff_log *log, const uint8_t *img, size_t n, uint64_t file_id,
                  unsigned head);
void ff_log_free(ff_log *log);

/* The store the whole batches of log make that end at or before upto. */
void ff_log_replay(const ff_log *log, uint64_t upto, kvset *out);

/* The end of the last non-zero byte of img in [lo, hi), or lo. */
uint64_t ff_nonzero_end(const uint8_t *img, uint64_t lo, uint64_t hi);

#endif
