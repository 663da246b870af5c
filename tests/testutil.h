/*
 * testutil.h — helpers shared by the cmocka tests: scratch files in the
 * test directory, and reading/writing whole files.
 */
#ifndef MAPKV_TESTUTIL_H
#define MAPKV_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Writes a fresh path under $MAPKV_TEST_TMPDIR (or /tmp) into buf; the file
 * does not exist afterwards. */
void tu_path(char *buf, size_t cap, const char *tag);

/* Creates (truncating) a file holding `len` bytes of `data` (zeros if data is
 * NULL), returns an O_RDWR descriptor or aborts the test. */
int tu_file_with(const char *path, const void *data, size_t len);

/* Reads the whole file into a malloc'd buffer; *len receives its size. */
uint8_t *tu_slurp(const char *path, size_t *len);

/* Size of a file by path, -1 if missing. */
int64_t tu_file_size(const char *path);

#endif
