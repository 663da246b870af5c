/*
 * mmf_demo.c — a tour of the mapping core: map a file, write through the
 * file position and through slices, search, grow the file with resize, and
 * flush a page-aligned range.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mapkv/mmf.h"

static int check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "%s: %s (%s)\n", what, mmf_strerror(rc), mmf_errmsg());
    exit(1);
  }
  return rc;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "mmf-demo.bin";
  char line[64], repr[160];
  int64_t n, at, ps = mmf_pagesize(), zero = 0;
  mmf_t *m = NULL;
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, "Hello Python!\n", 14) != 14) {
    perror(path);
    return 1;
  }
  check(mmf_open(&m, fd, 0, MMF_MAP_SHARED, MMF_PROT_READ | MMF_PROT_WRITE,
                 MMF_ACCESS_DEFAULT, 0, 1),
        "open");
  check(mmf_readline(m, line, sizeof line, &n), "readline");
  printf("readline    -> %.*s", (int)n, line);
  check(mmf_set_slice(m, &(int64_t){6}, NULL, NULL, " world!\n", 8),
        "slice assignment");
  check(mmf_get_slice(m, NULL, NULL, NULL, line, sizeof line, &n), "slice");
  printf("m[:]        -> %.*s", (int)n, line);
  check(mmf_find(m, "world", 5, &zero, NULL, &at), "find");
  printf("find(world) -> %" PRId64 "\n", at);
  check(mmf_resize(m, 3 * ps), "resize");
  printf("resize      -> len %" PRId64 ", file size %" PRId64 "\n", mmf_len(m),
         mmf_size(m));
  check(mmf_seek(m, 2 * ps, SEEK_SET, NULL), "seek");
  check((int)mmf_write(m, "page three", 10), "write");
  check(mmf_flush(m, 2 * ps, ps), "flush");
  check(mmf_rfind(m, "e", 1, &zero, NULL, &at), "rfind");
  printf("rfind(e)    -> %" PRId64 "\n", at);
  mmf_repr(m, repr, sizeof repr);
  printf("%s\n", repr);
  check(mmf_close(m), "close");
  mmf_repr(m, repr, sizeof repr);
  printf("%s\n", repr);
  mmf_free(m);
  close(fd);
  return 0;
}
