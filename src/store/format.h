/*
 * format.h — the bytes of a mapkv file (FORMAT.md is the specification):
 * encoding and bounds-checked decoding of the header and of records.
 *
 * Nothing here trusts the file: every decoder is given the number of bytes
 * that may be read and checks each length against it before use.
 */
#ifndef MAPKV_FORMAT_H
#define MAPKV_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MAPKV__HDR_PAGE     4096u /* the header page; records start here */
#define MAPKV__HDR_COPY_B   2048u /* offset of the second header copy */
#define MAPKV__HDR_SIZE     128u  /* bytes of one header copy */
#define MAPKV__REC_HEAD     22u   /* record header before the key */
#define MAPKV__REC_TAIL     8u    /* checksum after the value */
#define MAPKV__REC_OVERHEAD (MAPKV__REC_HEAD + MAPKV__REC_TAIL)
#define MAPKV__SEQ_MAX      ((1ull << 48) - 1)
#define MAPKV__PREV_MAX     ((1ull << 48) - 1)
/* Format version 1 records: the same fields without `prev`. Stores of
 * version 1 are read (read-only opens); nothing writes them. */
#define MAPKV__REC_HEAD_V1 16u

/* Record fields (FORMAT.md, "Records"): byte offsets inside a record. */
#define MAPKV__R_TYPE  2u
#define MAPKV__R_FLAGS 3u
#define MAPKV__R_KLEN  4u  /* u16 */
#define MAPKV__R_VLEN  6u  /* u32 */
#define MAPKV__R_SEQ   10u /* u48 */
#define MAPKV__R_PREV  16u /* u48, version 2 */

/* The two bytes every record starts with. */
#define MAPKV__MARK0 0xB7u
#define MAPKV__MARK1 0x6Bu
extern const uint8_t mapkv__marker[2];

enum { MAPKV__T_PUT = 1, MAPKV__T_DEL = 2, MAPKV__T_COMMIT = 3 };
enum { MAPKV__F_FIRST = 1, MAPKV__F_LAST = 2 };
#define MAPKV__HF_CLEAN 1u
#define MAPKV__HF_KNOWN MAPKV__HF_CLEAN /* every flag this version knows */

/* The decoded header. */
typedef struct mapkv__header {
  uint32_t version;
  uint32_t page_size;
  uint32_t flags; /* MAPKV__HF_* */
  uint64_t file_id;
  uint64_t generation;
  uint64_t data_end; /* exact only with MAPKV__HF_CLEAN */
  uint64_t last_seq; /* exact only with MAPKV__HF_CLEAN */
  uint64_t live_records;
  uint64_t live_bytes;
  uint64_t created;
  uint32_t max_key;   /* the store's key limit (version 2; 0 in version 1) */
  uint32_t max_value; /* the store's value limit (version 2; 0 in version 1) */
  /* The log below this offset was written by a clean close or checked by a
   * writer's open, and made durable (version 2; in version 1 the data end
   * of a clean close, else 4096): damage found there later is damage, not
   * a write a crash lost. */
  uint64_t sealed_end;
} mapkv__header;

/* Writes one header copy (MAPKV__HDR_SIZE bytes, checksummed) at dst. */
void mapkv__header_encode(uint8_t *dst, const mapkv__header *h);

/* Decodes the header page (len bytes available at src). Returns 0 and fills
 * *h from the first intact copy, or MAPKV_ENOTDB, MAPKV_ETRUNCATED,
 * MAPKV_EVERSION, MAPKV_ECORRUPT, with the message set. A copy is intact
 * when its checksum holds and every field has a value FORMAT.md allows.
 * When both copies are intact and differ, *other (if not NULL) receives
 * copy B and *has_other is set to 1 (else 0), so that the caller can tell
 * from the log which one belongs to it. */
int mapkv__header_decode(const uint8_t *src, uint64_t len, mapkv__header *h,
                         mapkv__header *other, int *has_other);

/* A decoded record; key and val point into the buffer it was decoded from. */
typedef struct mapkv__rec {
  uint8_t type;
  uint8_t flags;
  uint32_t klen;
  uint32_t vlen;
  uint64_t seq;
  /* File offset of the newest record of this key before this record's
   * batch, or 0 (always 0 in version 1 and for COMMIT records). Untrusted:
   * a user checks that it lies before the record and decodes what is
   * there before relying on it. */
  uint64_t prev;
  const uint8_t *key;
  const uint8_t *val;
  uint64_t size; /* total bytes, MAPKV__REC_OVERHEAD + klen + vlen */
} mapkv__rec;

/* Why a record could not be decoded. */
enum {
  MAPKV__REC_OK = 0,
  MAPKV__REC_END = 1,     /* zero bytes: the end of the log */
  MAPKV__REC_SHORT = 2,   /* runs past the readable bytes */
  MAPKV__REC_BADHEAD = 3, /* marker, type, flags or lengths invalid */
  MAPKV__REC_BADSUM = 4   /* checksum mismatch */
};

/* Decodes the version 2 record at p with `avail` readable bytes. With
 * verify, the checksum (seeded with file_id) is checked too. Returns
 * MAPKV__REC_*. *r is filled (but for `size`, `key` and `val` only up to
 * the field that failed) also when the result is MAPKV__REC_BADSUM. */
int mapkv__rec_decode(const uint8_t *p, uint64_t avail, uint64_t file_id,
                      int verify, mapkv__rec *r);

/* The same for a record of format version 1 (no `prev`; r->prev = 0). */
int mapkv__rec_decode_v1(const uint8_t *p, uint64_t avail, uint64_t file_id,
                         int verify, mapkv__rec *r);

/* Reads the fields of what may be a damaged record at p (head bytes before
 * its key, avail readable), checking nothing but bounds: key is NULL when
 * the key length runs past avail, val NULL and size 0 when the value does.
 * For recovery, to learn which key a damaged record of a sealed log stood
 * for (its prev, or its key). 0, or -1 when not even the fixed fields are
 * readable. */
int mapkv__rec_decode_lenient(const uint8_t *p, uint64_t avail, unsigned head,
                              mapkv__rec *r);

/* Whether what lies of a record's fixed fields in the avail bytes at p
 * (head bytes of them in all) is what a record sound in structure has:
 * its marker, and the type, flags, lengths, sequence number and prev it
 * needs, each judged only if it lies wholly within avail; its lengths are
 * not held against avail. For a record that the end of what may be read
 * cuts: the answer depends on no byte past it. */
int mapkv__rec_cut_sound(const uint8_t *p, uint64_t avail, unsigned head);

/* The bytes before the key of a record of format `version`. */
static inline unsigned mapkv__rec_head(uint32_t version) {
  return version == 1 ? MAPKV__REC_HEAD_V1 : MAPKV__REC_HEAD;
}

/* Checks only the checksum of a record already decoded at p. */
int mapkv__rec_checksum_ok(const uint8_t *p, const mapkv__rec *r,
                           uint64_t file_id);

/* Writes a version 2 record at dst (which has room for
 * OVERHEAD+klen+vlen bytes). Returns the bytes written. */
uint64_t mapkv__rec_encode(uint8_t *dst, uint8_t type, uint8_t flags,
                           uint64_t seq, uint64_t prev, const void *key,
                           uint32_t klen, const void *val, uint32_t vlen,
                           uint64_t file_id);

/* Little-endian helpers. */
/* Callers pass a constant n (<= 8); on a little-endian host the memcpy
 * then compiles to one or two plain loads or stores. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline void mapkv__put_le(uint8_t *p, uint64_t v, unsigned n) {
  memcpy(p, &v, n);
}
static inline uint64_t mapkv__get_le(const uint8_t *p, unsigned n) {
  uint64_t v = 0;
  memcpy(&v, p, n);
  return v;
}
#else
static inline void mapkv__put_le(uint8_t *p, uint64_t v, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t mapkv__get_le(const uint8_t *p, unsigned n) {
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}
#endif

/* Fields of a record already known to lie in readable memory (its header
 * at least), for the paths that walk records decoded before. */
static inline uint8_t mapkv__rec_type_at(const uint8_t *p) {
  return p[MAPKV__R_TYPE];
}
static inline uint32_t mapkv__rec_klen_at(const uint8_t *p) {
  return (uint32_t)mapkv__get_le(p + MAPKV__R_KLEN, 2);
}
static inline uint32_t mapkv__rec_vlen_at(const uint8_t *p) {
  return (uint32_t)mapkv__get_le(p + MAPKV__R_VLEN, 4);
}
static inline uint64_t mapkv__rec_seq_at(const uint8_t *p) {
  return mapkv__get_le(p + MAPKV__R_SEQ, 6);
}

/* The value of a COMMIT record: the number of operations of its batch (4
 * bytes) and 4 zero bytes. */
#define MAPKV__COMMIT_VALUE 8u
static inline void mapkv__commit_value(uint8_t *v, uint64_t nops) {
  memset(v, 0, MAPKV__COMMIT_VALUE);
  mapkv__put_le(v, nops, 4);
}
static inline uint64_t mapkv__commit_count(const mapkv__rec *r) {
  return mapkv__get_le(r->val, 4);
}

#endif /* MAPKV_FORMAT_H */
