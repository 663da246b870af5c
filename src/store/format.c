/*
 * format.c — encoding and bounds-checked decoding of the header page and
 * of records (FORMAT.md).
 *
 * Header copy (128 bytes, at 0 and at 2048 of the header page):
 *   0 magic "MAPKV\0\x1a\n" | 8 version u32 | 12 data start u32 (4096)
 *   16 page size u32 | 20 flags u32 | 24 file id u64 | 32 generation u64
 *   40 data end u64 | 48 last seq u64 | 56 live records u64
 *   64 live bytes u64 | 72 created u64 | 80 max key u32 | 84 max value u32
 *   | 88 sealed end u64 | 96..119 zero | 120 XXH3-64 of [0,120)
 *   (version 1: 80..119 zero)
 * Record (version 2):
 *   0 marker B7 6B | 2 type u8 | 3 flags u8 | 4 key length u16
 *   6 value length u32 | 10 sequence u48 | 16 prev u48 | 22 key | value
 *   | XXH3-64 (seed = file id) of everything before it, u64
 *   (version 1: no prev; the key starts at 16)
 */
#include "format.h"

#include <assert.h>
#include <string.h>
#define XXH_INLINE_ALL /* the system xxhash.h, inlined for short records */
#include <xxhash.h>

#include "mapkv/mapkv.h"
#include "store_err.h"

const uint8_t mapkv__marker[2] = {MAPKV__MARK0, MAPKV__MARK1};
static const uint8_t magic[8] = {'M', 'A', 'P', 'K', 'V', 0, 0x1a, '\n'};

void mapkv__header_encode(uint8_t *dst, const mapkv__header *h) {
  uint8_t b[MAPKV__HDR_SIZE];
  memset(b, 0, sizeof b);
  memcpy(b, magic, 8);
  mapkv__put_le(b + 8, h->version, 4);
  mapkv__put_le(b + 12, MAPKV__HDR_PAGE, 4);
  mapkv__put_le(b + 16, h->page_size, 4);
  mapkv__put_le(b + 20, h->flags, 4);
  mapkv__put_le(b + 24, h->file_id, 8);
  mapkv__put_le(b + 32, h->generation, 8);
  mapkv__put_le(b + 40, h->data_end, 8);
  mapkv__put_le(b + 48, h->last_seq, 8);
  mapkv__put_le(b + 56, h->live_records, 8);
  mapkv__put_le(b + 64, h->live_bytes, 8);
  mapkv__put_le(b + 72, h->created, 8);
  if (h->version >= 2) {
    mapkv__put_le(b + 80, h->max_key, 4);
    mapkv__put_le(b + 84, h->max_value, 4);
    mapkv__put_le(b + 88, h->sealed_end, 8);
  }
  mapkv__put_le(b + 120, XXH3_64bits(b, 120), 8);
  memcpy(dst, b, sizeof b);
}

static int all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0)
      return 0;
  return 1;
}

/* Decodes one header copy: 0, MAPKV_ENOTDB (no magic), MAPKV_ECORRUPT
 * (checksum wrong, or a field FORMAT.md forbids: *why says which). *version
 * receives the version field of a copy that has the magic. A copy of a
 * newer version returns MAPKV_EVERSION if its checksum holds. */
static int copy_decode(const uint8_t *p, mapkv__header *h, uint32_t *version,
                       const char **why) {
  uint32_t page, flags;
  uint64_t end, sealed;
  *why = "checksum mismatch";
  if (memcmp(p, magic, 8) != 0)
    return MAPKV_ENOTDB;
  *version = (uint32_t)mapkv__get_le(p + 8, 4);
  if (mapkv__get_le(p + 120, 8) != XXH3_64bits(p, 120))
    return MAPKV_ECORRUPT;
  if (*version > MAPKV_FORMAT_VERSION)
    return MAPKV_EVERSION;
  page = (uint32_t)mapkv__get_le(p + 16, 4);
  flags = (uint32_t)mapkv__get_le(p + 20, 4);
  end = mapkv__get_le(p + 40, 8);
  sealed = *version >= 2               ? mapkv__get_le(p + 88, 8)
           : (flags & MAPKV__HF_CLEAN) ? end
                                       : MAPKV__HDR_PAGE;
  if (*version == 0)
    *why = "version 0";
  else if (mapkv__get_le(p + 12, 4) != MAPKV__HDR_PAGE)
    *why = "data start is not 4096";
  else if (page < 512 || page > (1u << 30) || (page & (page - 1)) != 0)
    *why = "page size is not a power of two";
  else if (flags & ~MAPKV__HF_KNOWN)
    *why = "unknown flag bits";
  else if (mapkv__get_le(p + 24, 8) == 0)
    *why = "file id 0";
  else if ((flags & MAPKV__HF_CLEAN) && end < MAPKV__HDR_PAGE)
    *why = "data end before the first record";
  else if (!all_zero(p + (*version >= 2 ? 96 : 80), *version >= 2 ? 24 : 40))
    *why = "reserved bytes are not zero";
  else if (sealed < MAPKV__HDR_PAGE)
    *why = "sealed end before the first record";
  else if ((flags & MAPKV__HF_CLEAN) && sealed > end)
    *why = "sealed end after the data end of a clean close";
  else if (*version >= 2 && (mapkv__get_le(p + 80, 4) == 0 ||
                             mapkv__get_le(p + 80, 4) > MAPKV_KEY_MAX ||
                             mapkv__get_le(p + 84, 4) == 0 ||
                             mapkv__get_le(p + 84, 4) > MAPKV_VALUE_MAX))
    *why = "key or value limit out of range";
  else
    *why = NULL;
  if (*why != NULL)
    return MAPKV_ECORRUPT;
  memset(h, 0, sizeof *h);
  h->version = *version;
  h->page_size = page;
  h->flags = flags;
  h->file_id = mapkv__get_le(p + 24, 8);
  h->generation = mapkv__get_le(p + 32, 8);
  h->data_end = end;
  h->last_seq = mapkv__get_le(p + 48, 8);
  h->live_records = mapkv__get_le(p + 56, 8);
  h->live_bytes = mapkv__get_le(p + 64, 8);
  h->created = mapkv__get_le(p + 72, 8);
  if (*version >= 2) {
    h->max_key = (uint32_t)mapkv__get_le(p + 80, 4);
    h->max_value = (uint32_t)mapkv__get_le(p + 84, 4);
  }
  h->sealed_end = sealed;
  return 0;
}

/* Copy A is used if intact, else copy B. An intact copy of a newer version
 * refuses the file; so do two damaged copies of which one claims a newer
 * version (whose checksum this version may not know how to check). */
int mapkv__header_decode(const uint8_t *src, uint64_t len, mapkv__header *h,
                         mapkv__header *other, int *has_other) {
  uint32_t va = 0, vb = 0, newer;
  const char *wa, *wb;
  mapkv__header b_hdr;
  int a, b;
  if (has_other != NULL)
    *has_other = 0;
  if (len < 8 || (memcmp(src, magic, 8) != 0 &&
                  (len < MAPKV__HDR_COPY_B + 8 ||
                   memcmp(src + MAPKV__HDR_COPY_B, magic, 8) != 0)))
    return mapkv__fail(MAPKV_ENOTDB, "not a mapkv store (no magic number)");
  if (len < MAPKV__HDR_PAGE)
    return mapkv__fail(MAPKV_ETRUNCATED,
                       "file is %llu bytes, shorter than the %u-byte header",
                       (unsigned long long)len, MAPKV__HDR_PAGE);
  a = copy_decode(src, h, &va, &wa);
  if (a == MAPKV_EVERSION)
    goto newer_version;
  b = copy_decode(src + MAPKV__HDR_COPY_B, &b_hdr, &vb, &wb);
  if (a == 0) {
    if (b == 0 && other != NULL && has_other != NULL &&
        memcmp(src, src + MAPKV__HDR_COPY_B, MAPKV__HDR_SIZE) != 0) {
      *other = b_hdr;
      *has_other = 1;
    }
    return 0;
  }
  if (b == 0) {
    *h = b_hdr;
    return 0;
  }
  if (b != MAPKV_EVERSION && va <= MAPKV_FORMAT_VERSION &&
      vb <= MAPKV_FORMAT_VERSION)
    return mapkv__fail(MAPKV_ECORRUPT,
                       "header at offset 0: both copies damaged (copy A: "
                       "%s; copy B: %s)",
                       a == MAPKV_ENOTDB ? "no magic number" : wa,
                       b == MAPKV_ENOTDB ? "no magic number" : wb);
newer_version:
  newer = va > MAPKV_FORMAT_VERSION ? va : vb;
  return mapkv__fail(MAPKV_EVERSION, "store format version %u is newer than %u",
                     (unsigned)newer, MAPKV_FORMAT_VERSION);
}

/* The record decoder of both versions: head is the size of the fixed
 * header (16 in version 1, 22 in version 2, which adds prev at 16). */
static inline int rec_decode(const uint8_t *p, uint64_t avail, uint64_t file_id,
                             int verify, mapkv__rec *r, unsigned head) {
  uint64_t body;
  if (avail < (uint64_t)head + MAPKV__REC_TAIL) {
    /* Fewer bytes than a record: zeros are the end, anything else torn. */
    for (uint64_t i = 0; i < avail; i++)
      if (p[i] != 0)
        return MAPKV__REC_SHORT;
    return MAPKV__REC_END;
  }
  if (p[0] != MAPKV__MARK0 || p[1] != MAPKV__MARK1) {
    if (p[0] == 0 && p[1] == 0 && mapkv__get_le(p, 8) == 0 &&
        mapkv__get_le(p + 8, 8) == 0)
      return MAPKV__REC_END;
    return MAPKV__REC_BADHEAD;
  }
  r->type = p[MAPKV__R_TYPE];
  r->flags = p[MAPKV__R_FLAGS];
  r->klen = mapkv__rec_klen_at(p);
  r->vlen = mapkv__rec_vlen_at(p);
  r->seq = mapkv__rec_seq_at(p);
  r->prev = head > MAPKV__R_PREV ? mapkv__get_le(p + MAPKV__R_PREV, 6) : 0;
  if (r->type < MAPKV__T_PUT || r->type > MAPKV__T_COMMIT ||
      (r->flags & ~(MAPKV__F_FIRST | MAPKV__F_LAST)) != 0 ||
      r->vlen > MAPKV_VALUE_MAX || r->seq == 0 ||
      (r->prev != 0 && r->prev < MAPKV__HDR_PAGE) ||
      (r->type == MAPKV__T_DEL && r->vlen != 0) ||
      (r->type == MAPKV__T_COMMIT &&
       (r->klen != 0 || r->vlen != 8 || r->prev != 0)))
    return MAPKV__REC_BADHEAD;
  body = (uint64_t)r->klen + r->vlen;
  if (avail - head - MAPKV__REC_TAIL < body)
    return MAPKV__REC_SHORT;
  r->size = head + MAPKV__REC_TAIL + body;
  r->key = p + head;
  r->val = r->key + r->klen;
  if (verify && !mapkv__rec_checksum_ok(p, r, file_id))
    return MAPKV__REC_BADSUM;
  return MAPKV__REC_OK;
}

int mapkv__rec_decode(const uint8_t *p, uint64_t avail, uint64_t file_id,
                      int verify, mapkv__rec *r) {
  return rec_decode(p, avail, file_id, verify, r, MAPKV__REC_HEAD);
}

int mapkv__rec_decode_v1(const uint8_t *p, uint64_t avail, uint64_t file_id,
                         int verify, mapkv__rec *r) {
  return rec_decode(p, avail, file_id, verify, r, MAPKV__REC_HEAD_V1);
}

int mapkv__rec_decode_lenient(const uint8_t *p, uint64_t avail, unsigned head,
                              mapkv__rec *r) {
  if (avail < (uint64_t)head + MAPKV__REC_TAIL)
    return -1;
  r->type = p[MAPKV__R_TYPE];
  r->flags = p[MAPKV__R_FLAGS];
  r->klen = mapkv__rec_klen_at(p);
  r->vlen = mapkv__rec_vlen_at(p);
  r->seq = mapkv__rec_seq_at(p);
  r->prev = head > MAPKV__R_PREV ? mapkv__get_le(p + MAPKV__R_PREV, 6) : 0;
  r->key = r->val = NULL;
  r->size = 0;
  if (avail - head - MAPKV__REC_TAIL >= r->klen) {
    r->key = p + head;
    if (avail - head - MAPKV__REC_TAIL - r->klen >= r->vlen) {
      r->val = r->key + r->klen;
      r->size = head + MAPKV__REC_TAIL + (uint64_t)r->klen + r->vlen;
    }
  }
  return 0;
}

int mapkv__rec_cut_sound(const uint8_t *p, uint64_t avail, unsigned head) {
  uint8_t type, flags;
  if (avail < 2 || p[0] != MAPKV__MARK0 || p[1] != MAPKV__MARK1)
    return 0;
  if (avail <= MAPKV__R_TYPE)
    return 1;
  type = p[MAPKV__R_TYPE];
  if (type < MAPKV__T_PUT || type > MAPKV__T_COMMIT)
    return 0;
  if (avail <= MAPKV__R_FLAGS)
    return 1;
  flags = p[MAPKV__R_FLAGS];
  if ((flags & ~(MAPKV__F_FIRST | MAPKV__F_LAST)) != 0)
    return 0;
  if (avail >= MAPKV__R_KLEN + 2 && type == MAPKV__T_COMMIT &&
      mapkv__rec_klen_at(p) != 0)
    return 0;
  if (avail >= MAPKV__R_VLEN + 4) {
    uint32_t vlen = mapkv__rec_vlen_at(p);
    if (vlen > MAPKV_VALUE_MAX || (type == MAPKV__T_DEL && vlen != 0) ||
        (type == MAPKV__T_COMMIT && vlen != 8))
      return 0;
  }
  if (avail >= MAPKV__R_SEQ + 6 && mapkv__rec_seq_at(p) == 0)
    return 0;
  if (head > MAPKV__R_PREV && avail >= MAPKV__R_PREV + 6) {
    uint64_t prev = mapkv__get_le(p + MAPKV__R_PREV, 6);
    if ((prev != 0 && prev < MAPKV__HDR_PAGE) ||
        (type == MAPKV__T_COMMIT && prev != 0))
      return 0;
  }
  return 1;
}

int mapkv__rec_checksum_ok(const uint8_t *p, const mapkv__rec *r,
                           uint64_t file_id) {
  uint64_t n = r->size - MAPKV__REC_TAIL;
  return XXH3_64bits_withSeed(p, (size_t)n, file_id) == mapkv__get_le(p + n, 8);
}

uint64_t mapkv__rec_encode(uint8_t *dst, uint8_t type, uint8_t flags,
                           uint64_t seq, uint64_t prev, const void *key,
                           uint32_t klen, const void *val, uint32_t vlen,
                           uint64_t file_id) {
  uint64_t n = MAPKV__REC_HEAD + (uint64_t)klen + vlen;
  assert(seq >= 1 && seq <= MAPKV__SEQ_MAX);
  assert(prev == 0 || (prev >= MAPKV__HDR_PAGE && prev <= MAPKV__PREV_MAX));
  dst[0] = MAPKV__MARK0;
  dst[1] = MAPKV__MARK1;
  dst[MAPKV__R_TYPE] = type;
  dst[MAPKV__R_FLAGS] = flags;
  mapkv__put_le(dst + MAPKV__R_KLEN, klen, 2);
  mapkv__put_le(dst + MAPKV__R_VLEN, vlen, 4);
  mapkv__put_le(dst + MAPKV__R_SEQ, seq, 6);
  mapkv__put_le(dst + MAPKV__R_PREV, prev, 6);
  if (klen > 0)
    memcpy(dst + MAPKV__REC_HEAD, key, klen);
  if (vlen > 0)
    memcpy(dst + MAPKV__REC_HEAD + klen, val, vlen);
  mapkv__put_le(dst + n, XXH3_64bits_withSeed(dst, (size_t)n, file_id), 8);
  return n + MAPKV__REC_TAIL;
}
