/*
 * options.c — mapkv_options: the defaults, the caller's structure taken
 * at the size it was compiled with (mapkv.h: struct_size), the checks, and
 * the limits a handle enforces once the store's header says its own.
 */
#include <stddef.h>
#include <string.h>

#include "store.h"
#include "store_err.h"

#define DEFAULT_INITIAL (1ull << 20)
#define DEFAULT_STEP    (1ull << 20)

/* The size of the first published mapkv_options with struct_size: later
 * versions only add fields at its end. */
#define OPTIONS_MIN_SIZE                                                       \
  (offsetof(mapkv_options, lock_timeout_ms) + sizeof(uint32_t))

int mapkv_options_init_size(mapkv_options *o, size_t size) {
  mapkv_options d;
  if (o == NULL || size < OPTIONS_MIN_SIZE)
    return mapkv__fail(MAPKV_EINVAL, "options of %zu bytes: at least %zu", size,
                       (size_t)OPTIONS_MIN_SIZE);
  memset(&d, 0, sizeof d);
  d.struct_size = size;
  d.sync_mode = MAPKV_SYNC_COMMIT;
  d.initial_size = DEFAULT_INITIAL;
  d.growth_step = DEFAULT_STEP;
  /* reserve stays 0: the default reservation, which is halved when the
   * address space allows only less (a reserve set is that or nothing). */
  /* Fields of a newer header than this library's are the caller's to
   * zero: they mean "default" too. */
  if (size > sizeof d)
    memset((char *)o + sizeof d, 0, size - sizeof d);
  memcpy(o, &d, size < sizeof d ? size : sizeof d);
  return 0;
}

/* The caller's options, of the size it was compiled with, into the
 * library's own: fields the caller does not have are defaults (zero);
 * fields the library does not know must be zero. */
static int copy_options(mapkv_options *dst, const mapkv_options *src) {
  size_t n = src->struct_size;
  if (n < OPTIONS_MIN_SIZE)
    return mapkv__fail(MAPKV_EINVAL,
                       "options not initialised (struct_size %zu): call "
                       "mapkv_options_init() first",
                       n);
  memset(dst, 0, sizeof *dst);
  memcpy(dst, src, n < sizeof *dst ? n : sizeof *dst);
  for (size_t i = sizeof *dst; i < n; i++)
    if (((const unsigned char *)src)[i] != 0)
      return mapkv__fail(MAPKV_EINVAL,
                         "options of a newer mapkv: a field this library "
                         "(%s) does not know is set",
                         MAPKV_VERSION_STRING);
  dst->struct_size = sizeof *dst;
  return 0;
}

static int check_options(mapkv_options *o) {
  uint64_t reserve;
  if (o->flags & ~(MAPKV_CREATE | MAPKV_RDONLY | MAPKV_VERIFY))
    return mapkv__fail(MAPKV_EINVAL, "unknown open flags 0x%x", o->flags);
  if (o->sync_mode < MAPKV_SYNC_COMMIT || o->sync_mode > MAPKV_SYNC_EXPLICIT)
    return mapkv__fail(MAPKV_EINVAL, "unknown sync mode %d", o->sync_mode);
  if (o->initial_size == 0)
    o->initial_size = DEFAULT_INITIAL;
  if (o->growth_step == 0)
    o->growth_step = DEFAULT_STEP;
  if (o->max_key_size > MAPKV_KEY_MAX)
    return mapkv__fail(MAPKV_EINVAL, "max_key_size %u exceeds %u",
                       o->max_key_size, MAPKV_KEY_MAX);
  if (o->max_value_size > MAPKV_VALUE_MAX)
    return mapkv__fail(MAPKV_EINVAL, "max_value_size %u exceeds %u",
                       o->max_value_size, MAPKV_VALUE_MAX);
  if (o->initial_size > MAPKV_FILE_MAX || o->growth_step > MAPKV_FILE_MAX ||
      o->reserve > MAPKV_FILE_MAX)
    return mapkv__fail(MAPKV_EINVAL, "sizes must not exceed %llu bytes",
                       (unsigned long long)MAPKV_FILE_MAX);
  reserve = o->reserve ? o->reserve : MAPKV__DEFAULT_RESERVE;
  if (o->initial_size > reserve || o->growth_step > reserve)
    return mapkv__fail(MAPKV_EINVAL,
                       "initial_size (%llu) and growth_step (%llu) must not "
                       "exceed the address reservation (%llu bytes)",
                       (unsigned long long)o->initial_size,
                       (unsigned long long)o->growth_step,
                       (unsigned long long)reserve);
  if (o->expected_keys > MAPKV_FILE_MAX / MAPKV__REC_OVERHEAD)
    return mapkv__fail(
        MAPKV_EINVAL, "expected_keys must not exceed %llu",
        (unsigned long long)(MAPKV_FILE_MAX / MAPKV__REC_OVERHEAD));
  return 0;
}

int mapkv__options_take(mapkv_options *dst, const mapkv_options *src) {
  int rc = src != NULL ? copy_options(dst, src)
                       : mapkv_options_init_size(dst, sizeof *dst);
  return rc != 0 ? rc : check_options(dst);
}

void mapkv__options_limits(mapkv_options *o, const mapkv__header *h) {
  uint32_t k = h->max_key ? h->max_key : MAPKV_DEFAULT_KEY_MAX;
  uint32_t v = h->max_value ? h->max_value : MAPKV_DEFAULT_VALUE_MAX;
  if (o->max_key_size == 0 || o->max_key_size > k)
    o->max_key_size = k;
  if (o->max_value_size == 0 || o->max_value_size > v)
    o->max_value_size = v;
}
