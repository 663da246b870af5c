/* fuzz_common.c — see fuzz_common.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fuzz_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/os.h" /* mapkv__os.random: the engine's file ids */

void fuzz_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "\n==== FUZZ CHECK FAILED at %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  fflush(stderr);
  abort();
}

/* ---- The scratch directory ---------------------------------------------- */

static char dir[512];

static void remove_dir(void) {
  DIR *d;
  struct dirent *e;
  char p[1024];
  if (dir[0] == '\0')
    return;
  d = opendir(dir);
  if (d != NULL) {
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
}

static int usable(const char *d) {
  struct stat st;
  return d != NULL && d[0] != '\0' && stat(d, &st) == 0 &&
         S_ISDIR(st.st_mode) && access(d, W_OK | X_OK) == 0;
}

const char *fuzz_dir(void) {
  const char *cands[4];
  if (dir[0] != '\0')
    return dir;
  cands[0] = getenv("MAPKV_FUZZ_TMPDIR");
  cands[1] = "/dev/shm";
  cands[2] = getenv("TMPDIR");
  cands[3] = "/tmp";
  for (int i = 0; i < 4; i++) {
    if (!usable(cands[i]))
      continue;
    snprintf(dir, sizeof dir, "%s/mapkv-fuzz-XXXXXX", cands[i]);
    if (mkdtemp(dir) != NULL) {
      atexit(remove_dir);
      return dir;
    }
  }
  dir[0] = '\0';
  FUZZ_FAIL("no usable scratch directory (set MAPKV_FUZZ_TMPDIR)");
}

const char *fuzz_path(int slot, const char *name) {
  static char paths[8][600];
  snprintf(paths[slot & 7], sizeof paths[0], "%s/%s", fuzz_dir(), name);
  return paths[slot & 7];
}

/* ---- Files --------------------------------------------------------------- */

void fuzz_write_file(const char *path, const void *p, size_t n) {
  const uint8_t *b = p;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    FUZZ_FAIL("open %s: %s", path, strerror(errno));
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      FUZZ_FAIL("write %s: %s", path, strerror(errno));
    b += w;
    n -= (size_t)w;
  }
  close(fd);
}

uint8_t *fuzz_read_file(const char *path, size_t *n) {
  struct stat st;
  uint8_t *buf;
  size_t got = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0)
    FUZZ_FAIL("open %s: %s", path, strerror(errno));
  buf = malloc((size_t)st.st_size + 1);
  if (buf == NULL)
    FUZZ_FAIL("out of memory reading %s", path);
  while (got < (size_t)st.st_size) {
    ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      FUZZ_FAIL("read %s: %s", path, strerror(errno));
    got += (size_t)r;
  }
  close(fd);
  buf[got] = 0;
  *n = got;
  return buf;
}

void fuzz_remove_store(const char *path) {
  char p[700];
  unlink(path);
  snprintf(p, sizeof p, "%s.compact", path);
  unlink(p);
}

/* ---- Leak checks --------------------------------------------------------- */

static int fd_baseline = -1;

static int lowest_free_fd(void) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0)
    close(fd);
  return fd;
}

void fuzz_leak_baseline(void) {
  fuzz_dir();
  fd_baseline = lowest_free_fd();
}

void fuzz_leak_check(void) {
  static char *maps;
  static size_t cap;
  size_t len = 0;
  int fd = lowest_free_fd();
  if (fd_baseline >= 0 && fd != fd_baseline)
    FUZZ_FAIL("file descriptor leak: the lowest free descriptor is %d, was %d",
              fd, fd_baseline);
  /* Every mapping of a store file must be gone: /proc/self/maps names the
   * file of each file mapping. */
  fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  for (;;) {
    ssize_t r;
    if (cap - len < 65536) {
      char *p = realloc(maps, cap + 262144);
      if (p == NULL)
        break;
      maps = p;
      cap += 262144;
    }
    r = read(fd, maps + len, cap - len - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
  }
  close(fd);
  if (maps != NULL) {
    const char *hit;
    maps[len] = '\0';
    hit = strstr(maps, dir);
    if (hit != NULL) {
      const char *ls = hit;
      while (ls > maps && ls[-1] != '\n')
        ls--;
      FUZZ_FAIL("mapping leak: a store file is still mapped: %.*s",
                (int)(strcspn(ls, "\n")), ls);
    }
  }
}

/* ---- Deterministic file ids ---------------------------------------------- */

static uint64_t rng_state;

static int det_random(void *buf, size_t n) {
  uint8_t *p = buf;
  while (n > 0) {
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (int i = 0; i < 8 && n > 0; i++, n--)
      *p++ = (uint8_t)(z >> (8 * i));
  }
  return 0;
}

void fuzz_seed_random(uint64_t seed) {
  rng_state = seed;
  mapkv__os.random = det_random;
}

uint64_t fuzz_hash(const void *p, size_t n) {
  const uint8_t *b = p;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  return h;
}
