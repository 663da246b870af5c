/* fuzz_format.c — see fuzz_format.h. */
#include "fuzz_format.h"

#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "fuzz_common.h"
#include "mapkv/mapkv.h"

static const uint8_t magic[8] = {'M', 'A', 'P', 'K', 'V', 0, 0x1a, '\n'};

uint64_t ff_le(const uint8_t *p, unsigned n) {
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

void ff_put_le(uint8_t *p, uint64_t v, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static int zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0)
      return 0;
  return 1;
}

/* ---- The header ----------------------------------------------------------
 */

int ff_copy(const uint8_t *p, ff_hdr *h, uint32_t *version, const char **why) {
  uint32_t v, page, flags, mk = 0, mv = 0;
  uint64_t end, sealed;
  *version = 0;
  *why = "no magic";
  if (memcmp(p, magic, 8) != 0)
    return MAPKV_ENOTDB;
  v = (uint32_t)ff_le(p + FF_H_VERSION, 4);
  *version = v;
  *why = "checksum";
  if (ff_le(p + FF_H_CHECKSUM, 8) != XXH3_64bits(p, FF_H_CHECKSUM))
    return MAPKV_ECORRUPT;
  if (v > FF_VERSION)
    return MAPKV_EVERSION;
  page = (uint32_t)ff_le(p + FF_H_PAGE, 4);
  flags = (uint32_t)ff_le(p + FF_H_FLAGS, 4);
  end = ff_le(p + FF_H_END, 8);
  if (v >= 2) {
    sealed = ff_le(p + FF_H_SEALED, 8);
    mk = (uint32_t)ff_le(p + FF_H_MAX_KEY, 4);
    mv = (uint32_t)ff_le(p + FF_H_MAX_VAL, 4);
  } else {
    sealed = (flags & 1) ? end : FF_PAGE;
  }
  *why = NULL;
  if (v == 0)
    *why = "version 0";
  else if (ff_le(p + FF_H_START, 4) != FF_PAGE)
    *why = "data start";
  else if (page < 512 || page > (1u << 30) || (page & (page - 1)) != 0)
    *why = "page size";
  else if ((flags & ~1u) != 0)
    *why = "flags";
  else if (ff_le(p + FF_H_FILE_ID, 8) == 0)
    *why = "file id 0";
  else if ((flags & 1) && end < FF_PAGE)
    *why = "clean data end";
  else if (!zero(p + (v >= 2 ? 96 : 80), v >= 2 ? 24 : 40))
    *why = "reserved";
  else if (sealed < FF_PAGE)
    *why = "sealed end";
  else if ((flags & 1) && sealed > end)
    *why = "clean sealed end after data end";
  else if (v >= 2 && (mk == 0 || mk > FF_KEY_MAX || mv == 0 || mv > FF_VAL_MAX))
    *why = "limits";
  if (*why != NULL)
    return MAPKV_ECORRUPT;
  memset(h, 0, sizeof *h);
  h->version = v;
  h->page_size = page;
  h->flags = flags;
  h->file_id = ff_le(p + FF_H_FILE_ID, 8);
  h->generation = ff_le(p + FF_H_GEN, 8);
  h->data_end = end;
  h->last_seq = ff_le(p + FF_H_LAST_SEQ, 8);
  h->live_records = ff_le(p + FF_H_LIVE_REC, 8);
  h->live_bytes = ff_le(p + FF_H_LIVE_B, 8);
  h->created = ff_le(p + FF_H_CREATED, 8);
  h->max_key = mk;
  h->max_value = mv;
  h->sealed_end = sealed;
  return 0;
}

void ff_copy_reseal(uint8_t *p) {
  ff_put_le(p + FF_H_CHECKSUM, XXH3_64bits(p, FF_H_CHECKSUM), 8);
}

/* Whether the record at 4096 verifies under a copy's file id. */
static int first_verifies(const uint8_t *img, size_t n, const ff_hdr *h) {
  ff_rec r;
  return ff_rec_decode(img + FF_PAGE, n - FF_PAGE, h->file_id,
                       h->version == 1 ? FF_HEAD_V1 : FF_HEAD, 1, &r) == FF_OK;
}

int ff_header(const uint8_t *img, size_t n, ff_hdr *h, int *which) {
  ff_hdr a, b;
  uint32_t va, vb;
  const char *wa, *wb;
  int ra, rb;
  if (n < 8 || (memcmp(img, magic, 8) != 0 &&
                (n < FF_COPY_B + 8 || memcmp(img + FF_COPY_B, magic, 8) != 0)))
    return MAPKV_ENOTDB;
  if (n < FF_PAGE)
    return MAPKV_ETRUNCATED;
  ra = ff_copy(img, &a, &va, &wa);
  if (ra == MAPKV_EVERSION)
    return MAPKV_EVERSION;
  rb = ff_copy(img + FF_COPY_B, &b, &vb, &wb);
  if (ra == 0) {
    *h = a;
    *which = 0;
    if (rb == 0 && memcmp(img, img + FF_COPY_B, FF_HDR_SIZE) != 0 &&
        n > FF_PAGE && !first_verifies(img, n, &a) &&
        first_verifies(img, n, &b)) {
      *h = b;
      *which = 1;
    }
    return 0;
  }
  if (rb == 0) {
    *h = b;
    *which = 1;
    return 0;
  }
  if (rb != MAPKV_EVERSION && va <= FF_VERSION && vb <= FF_VERSION)
    return MAPKV_ECORRUPT;
  return MAPKV_EVERSION;
}

/* ---- Records --------------------------------------------------------------
 */

int ff_rec_decode(const uint8_t *p, uint64_t avail, uint64_t file_id,
                  unsigned head, int verify, ff_rec *r) {
  uint64_t body;
  if (avail < (uint64_t)head + FF_TAIL)
    return zero(p, (size_t)avail) ? FF_END : FF_SHORT;
  if (p[0] != 0xB7 || p[1] != 0x6B)
    return zero(p, 16) ? FF_END : FF_BADHEAD;
  r->type = p[FF_R_TYPE];
  r->flags = p[FF_R_FLAGS];
  r->klen = (uint32_t)ff_le(p + FF_R_KLEN, 2);
  r->vlen = (uint32_t)ff_le(p + FF_R_VLEN, 4);
  r->seq = ff_le(p + FF_R_SEQ, 6);
  r->prev = head > FF_R_PREV ? ff_le(p + FF_R_PREV, 6) : 0;
  if (r->type < FF_PUT || r->type > FF_COMMIT || (r->flags & ~3u) != 0 ||
      r->vlen > FF_VAL_MAX || r->seq == 0 ||
      (r->prev != 0 && r->prev < FF_PAGE) ||
      (r->type == FF_DEL && r->vlen != 0) ||
      (r->type == FF_COMMIT && (r->klen != 0 || r->vlen != 8 || r->prev != 0)))
    return FF_BADHEAD;
  body = (uint64_t)r->klen + r->vlen;
  if (avail - head - FF_TAIL < body)
    return FF_SHORT;
  r->size = head + FF_TAIL + body;
  r->key = p + head;
  r->val = r->key + r->klen;
  if (verify && XXH3_64bits_withSeed(p, (size_t)(head + body), file_id) !=
                    ff_le(p + head + body, 8))
    return FF_BADSUM;
  return FF_OK;
}

void ff_rec_reseal(uint8_t *img, size_t n, size_t off, uint64_t file_id) {
  size_t body;
  if (off + FF_HEAD > n)
    return;
  body = FF_HEAD + ff_le(img + off + FF_R_KLEN, 2) +
         ff_le(img + off + FF_R_VLEN, 4);
  if (body + FF_TAIL > n - off)
    return;
  ff_put_le(img + off + body, XXH3_64bits_withSeed(img + off, body, file_id),
            8);
}

size_t ff_rec_encode(uint8_t *dst, uint8_t type, uint8_t flags, uint64_t seq,
                     uint64_t prev, const void *key, uint32_t klen,
                     const void *val, uint32_t vlen, uint64_t file_id) {
  size_t n = FF_HEAD + (size_t)klen + vlen;
  dst[0] = 0xB7;
  dst[1] = 0x6B;
  dst[FF_R_TYPE] = type;
  dst[FF_R_FLAGS] = flags;
  ff_put_le(dst + FF_R_KLEN, klen, 2);
  ff_put_le(dst + FF_R_VLEN, vlen, 4);
  ff_put_le(dst + FF_R_SEQ, seq, 6);
  ff_put_le(dst + FF_R_PREV, prev, 6);
  if (klen > 0)
    memcpy(dst + FF_HEAD, key, klen);
  if (vlen > 0)
    memcpy(dst + FF_HEAD + klen, val, vlen);
  ff_put_le(dst + n, XXH3_64bits_withSeed(dst, n, file_id), 8);
  return n + FF_TAIL;
}

/* ---- The intact log --------------------------------------------------------
 */

static void close_batch(ff_log *log) {
  ff_batch *b = &log->batch[log->nbatch - 1];
  const ff_rec *f = &log->rec[b->first], *l = &log->rec[b->first + b->n - 1];
  int ok =
      (f->flags & FF_FIRST) && (l->flags & FF_LAST) && f->type != FF_COMMIT;
  for (size_t i = 1; i < b->n && ok; i++) {
    const ff_rec *r = &log->rec[b->first + i];
    ok = r->seq == log->rec[b->first + i - 1].seq + 1 &&
         !(r->flags & FF_FIRST) && (i == b->n - 1 || !(r->flags & FF_LAST));
  }
  if (ok && b->n > 1)
    ok = l->type == FF_COMMIT && ff_le(l->val, 4) == b->n - 1;
  if (ok && b->n == 1)
    ok = f->flags == (FF_FIRST | FF_LAST);
  b->whole = ok;
  b->end = l->off + l->size;
}

void ff_log_parse(ff_log *log, const uint8_t *img, size_t n, uint64_t file_id,
                  unsigned head) {
  uint64_t pos = FF_PAGE;
  int open = 0;
  memset(log, 0, sizeof *log);
  log->end = FF_PAGE;
  while (pos < n) {
    ff_rec r;
    if (ff_rec_decode(img + pos, n - pos, file_id, head, 1, &r) != FF_OK)
      break;
    r.off = pos;
    if (log->nrec == log->caprec) {
      log->caprec = log->caprec ? 2 * log->caprec : 64;
      log->rec = realloc(log->rec, log->caprec * sizeof *log->rec);
      log->batch_of = realloc(log->batch_of, log->caprec * sizeof(size_t));
      FUZZ_CHECK(log->rec != NULL && log->batch_of != NULL);
    }
    if (!open || (r.flags & FF_FIRST)) {
      if (open)
        close_batch(log);
      if (log->nbatch == log->capbatch) {
        log->capbatch = log->capbatch ? 2 * log->capbatch : 32;
        log->batch = realloc(log->batch, log->capbatch * sizeof *log->batch);
        FUZZ_CHECK(log->batch != NULL);
      }
      log->batch[log->nbatch].first = log->nrec;
      log->batch[log->nbatch].n = 0;
      log->batch[log->nbatch].start = pos;
      log->nbatch++;
      open = 1;
    }
    log->batch_of[log->nrec] = log->nbatch - 1;
    log->rec[log->nrec++] = r;
    log->batch[log->nbatch - 1].n++;
    pos += r.size;
    log->end = pos;
    if (r.flags & FF_LAST) {
      close_batch(log);
      open = 0;
    }
  }
  if (open)
    close_batch(log); /* no LAST: not whole */
}

void ff_log_free(ff_log *log) {
  free(log->rec);
  free(log->batch);
  free(log->batch_of);
  memset(log, 0, sizeof *log);
}

void ff_log_replay(const ff_log *log, uint64_t upto, kvset *out) {
  kvset_clear(out);
  for (size_t b = 0; b < log->nbatch; b++) {
    const ff_batch *bt = &log->batch[b];
    if (!bt->whole || bt->end > upto)
      continue;
    for (size_t i = bt->first; i < bt->first + bt->n; i++) {
      const ff_rec *r = &log->rec[i];
      if (r->type == FF_PUT)
        kvset_put(out, r->key, r->klen, r->val, r->vlen);
      else if (r->type == FF_DEL)
        kvset_del(out, r->key, r->klen);
    }
  }
}

uint64_t ff_nonzero_end(const uint8_t *img, uint64_t lo, uint64_t hi) {
  while (hi > lo && img[hi - 1] == 0)
    hi--;
  return hi;
}
