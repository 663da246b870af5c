/*
 * test_version.c — mapkv_version(): the run-time version string is the
 * header's, and the one the build system read from the header (the project
 * version that names the shared library and the packages).
 */
#include <stdio.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mapkv/mapkv.h"

static void test_version_string(void **state) {
  char want[32];
  const char *v = mapkv_version();
  (void)state;
  assert_non_null(v);
  snprintf(want, sizeof want, "%d.%d.%d", MAPKV_VERSION_MAJOR,
           MAPKV_VERSION_MINOR, MAPKV_VERSION_PATCH);
  assert_string_equal(v, want);
  assert_string_equal(v, MAPKV_VERSION_STRING);
  /* A static string: the same pointer every time. */
  assert_ptr_equal(mapkv_version(), v);
}

static void test_version_is_the_build_version(void **state) {
  (void)state;
  assert_string_equal(mapkv_version(), MAPKV_PROJECT_VERSION);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_version_string),
      cmocka_unit_test(test_version_is_the_build_version),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
