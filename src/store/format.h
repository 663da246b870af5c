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
#define MAPKV__REC_HEAD     16u   /* record header before the key */
#define MAPKV__REC_TAIL     8u    /* checksum after the value */
#define MAPKV__REC_OVERHEAD (MAPKV__REC_HEAD + MAPKV__REC_TAIL)
#define MAPKV__SEQ_MAX      ((1ull << 48) - 1)

/* The two bytes every record starts with. */
#define MAPKV__MARK0 0xB7u
#define MAPKV__MARK1 0x6Bu
extern const uint8_t mapkv__marker[2];

enum { MAPKV__T_PUT = 1, MAPKV__T_DEL = 2, MAPKV__T_COMMIT = 3 };
enum { MAPKV__F_FIRST = 1, MAPKV__F_LAST = 2 };
#define MAPKV__HF_CLEAN 1u

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
} mapkv__header;

/* Writes one header copy (MAPKV__HDR_SIZE bytes, checksummed) at dst. */
void mapkv__header_encode(uint8_t *dst, const mapkv__header *h);

/* Decodes the header page (len bytes available at src). Returns 0 and fills
 * *h from the first intact copy, or MAPKV_ENOTDB, MAPKV_ETRUNCATED,
 * MAPKV_EVERSION, MAPKV_ECORRUPT, with the message set. */
int mapkv__header_decode(const uint8_t *src, uint64_t len, mapkv__header *h);

/* A decoded record; key and val point into the buffer it was decoded from. */
typedef struct mapkv__rec {
  uint8_t type;
  uint8_t flags;
  uint32_t klen;
  uint32_t vlen;
  uint64_t seq;
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

/* Decodes the record at p with `avail` readable bytes. With verify, the
 * checksum (seeded with file_id) is checked too. Returns MAPKV__REC_*. */
int mapkv__rec_decode(const uint8_t *p, uint64_t avail, uint64_t file_id,
                      int verify, mapkv__rec *r);

/* Checks only the checksum of a record already decoded at p. */
int mapkv__rec_checksum_ok(const uint8_t *p, const mapkv__rec *r,
                           uint64_t file_id);

/* Writes a record at dst (which has room for OVERHEAD+klen+vlen bytes).
 * Returns the bytes written. */
uint64_t mapkv__rec_encode(uint8_t *dst, uint8_t type, uint8_t flags,
                           uint64_t seq, const void *key, uint32_t klen,
                           const void *val, uint32_t vlen, uint64_t file_id);

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

#endif /* MAPKV_FORMAT_H */
