/*
 * fuzz_common.h — helpers shared by the libFuzzer targets in tests/fuzz:
 * a per-process scratch directory (on tmpfs when there is one), whole-file
 * reads and writes, an input stream that yields zeros once exhausted, a
 * deterministic replacement for the engine's random file ids, leak checks
 * for descriptors and mappings, and a failure macro that aborts (so that
 * libFuzzer saves the input).
 */
#ifndef MAPKV_FUZZ_COMMON_H
#define MAPKV_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Prints the message (with file and line) and aborts. */
#define FUZZ_FAIL(...) fuzz_fail(__FILE__, __LINE__, __VA_ARGS__)
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond))                                                               \
      FUZZ_FAIL("check failed: %s", #cond);                                    \
  } while (0)

void fuzz_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* The scratch directory of this process, created on first use under
 * $MAPKV_FUZZ_TMPDIR, /dev/shm, $TMPDIR or /tmp, and removed (with what is
 * left in it) at exit. */
const char *fuzz_dir(void);

/* A path "<fuzz_dir>/<name>" in a static buffer (one per slot 0..7). */
const char *fuzz_path(int slot, const char *name);

/* Writes n bytes to path (created or truncated); aborts on failure. */
void fuzz_write_file(const char *path, const void *p, size_t n);

/* Reads the whole file into a malloc'd buffer (NUL-terminated for
 * convenience); aborts on failure. */
uint8_t *fuzz_read_file(const char *path, size_t *n);

/* Removes path and path.compact (missing files are fine). */
void fuzz_remove_store(const char *path);

/* Descriptor and mapping leak checks: fuzz_leak_baseline() once at start,
 * fuzz_leak_check() after each input (aborts on a descriptor left open or
 * a mapping of a file of the scratch directory left in place). */
void fuzz_leak_baseline(void);
void fuzz_leak_check(void);

/* Makes the engine's file ids a deterministic function of the seed (the
 * engine draws them from mapkv__os.random). */
void fuzz_seed_random(uint64_t seed);

/* A stream over the fuzzer's input: reads past the end yield zeros. */
typedef struct fuzz_in {
  const uint8_t *p;
  size_t n, pos;
} fuzz_in;

static inline uint8_t fuzz_u8(fuzz_in *in) {
  return in->pos < in->n ? in->p[in->pos++] : 0;
}
static inline uint32_t fuzz_u16(fuzz_in *in) {
  uint32_t lo = fuzz_u8(in);
  return lo | (uint32_t)fuzz_u8(in) << 8;
}
static inline uint32_t fuzz_u24(fuzz_in *in) {
  uint32_t lo = fuzz_u16(in);
  return lo | (uint32_t)fuzz_u8(in) << 16;
}
static inline size_t fuzz_left(const fuzz_in *in) {
  return in->pos < in->n ? in->n - in->pos : 0;
}

/* FNV-1a of a buffer (to derive seeds from the input). */
uint64_t fuzz_hash(const void *p, size_t n);

#endif
