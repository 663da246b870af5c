/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

void tu_path(char *buf, size_t cap, const char *tag) {
  static unsigned counter;
  const char *dir = getenv("MAPKV_TEST_TMPDIR");
  if (dir == NULL || *dir == '\0')
    dir = "/tmp";
  mkdir(dir, 0755);
  snprintf(buf, cap, "%s/%s-%ld-%u", dir, tag, (long)getpid(), counter++);
  unlink(buf);
}

int tu_file_with(const char *path, const void *data, size_t len) {
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  assert_true(fd >= 0);
  if (data != NULL) {
    assert_int_equal(write(fd, data, len), (ssize_t)len);
  } else if (len > 0) {
    assert_int_equal(ftruncate(fd, (off_t)len), 0);
  }
  return fd;
}

uint8_t *tu_slurp(const char *path, size_t *len) {
  struct stat st;
  uint8_t *buf;
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  assert_int_equal(fstat(fd, &st), 0);
  buf = malloc((size_t)st.st_size + 1);
  assert_non_null(buf);
  assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
  close(fd);
  *len = (size_t)st.st_size;
  return buf;
}

int64_t tu_file_size(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    return -1;
  return (int64_t)st.st_size;
}
