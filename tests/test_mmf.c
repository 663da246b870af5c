/* test_mmf.c — the mapping core against Python's mmap semantics. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mapkv/mmf.h"
#include "testutil.h"

static void test_basic_roundtrip(void **state) {
  char path[256];
  mmf_t *m = NULL;
  int fd;
  (void)state;
  tu_path(path, sizeof path, "mmf");
  fd = tu_file_with(path, "hello\nworld\n", 12);
  assert_int_equal(mmf_open(&m, fd, 0, MMF_MAP_SHARED,
                            MMF_PROT_READ | MMF_PROT_WRITE,
                            MMF_ACCESS_DEFAULT, 0, 1),
                   0);
  assert_int_equal(mmf_len(m), 12);
  assert_int_equal(mmf_size(m), 12);
  mmf_free(m);
  close(fd);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
