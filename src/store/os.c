/*
 * os.c — the engine's system calls (see os.h). The mapping core (mmf) keeps
 * mmap/msync/mremap/madvise/ftruncate; everything else the engine does to
 * the operating system is here.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static int os_open(const char *path, int flags, mode_t mode) {
  int fd;
  do
    fd = open(path, flags | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  return fd;
}

static int os_flock(int fd, int op) {
  int rc;
  do
    rc = flock(fd, op);
  while (rc != 0 && errno == EINTR);
  return rc;
}

static int os_reserve(int fd, off_t off, off_t len) {
  int rc;
#ifdef FALLOC_FL_KEEP_SIZE
  do
    rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, off, len);
  while (rc != 0 && errno == EINTR);
  if (rc == 0 || (errno != EOPNOTSUPP && errno != ENOSYS))
    return rc;
#else
  (void)fd;
  (void)off;
  (void)len;
#endif
  /* No way to reserve without growing the file: the filesystem will
   * report a full disk on a later flush instead. */
  rc = 0;
  return rc;
}

static int os_random(void *buf, size_t n) {
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += got;
    n -= (size_t)got;
  }
  return 0;
}

struct mapkv__os mapkv__os = {os_open,  close,      fstat,  stat,
                              os_flock, os_reserve, pwrite, fsync,
                              rename,   link,       unlink, os_random};

void mapkv__os_reset(void) {
  struct mapkv__os real = {os_open, close, fstat,  stat, os_flock, os_reserve,
                           pwrite,  fsync, rename, link, unlink,   os_random};
  mapkv__os = real;
}

int mapkv__os_sync_dir(const char *path) {
  char *dir = strdup(path);
  char *slash;
  int fd, rc, e;
  if (dir == NULL)
    return -ENOMEM;
  slash = strrchr(dir, '/');
  if (slash == NULL)
    strcpy(dir, ".");
  else if (slash == dir)
    slash[1] = '\0';
  else
    *slash = '\0';
  fd = mapkv__os.open(dir, O_RDONLY | O_DIRECTORY, 0);
  e = errno;
  free(dir);
  if (fd < 0)
    return -e;
  rc = mapkv__os.fsync(fd);
  e = errno;
  mapkv__os.close(fd);
  return rc == 0 ? 0 : -e;
}

int mapkv__os_pwrite_all(int fd, const void *buf, size_t n, off_t off) {
  const uint8_t *p = buf;
  while (n > 0) {
    ssize_t w = mapkv__os.pwrite(fd, p, n, off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (w == 0)
      return -EIO;
    p += w;
    n -= (size_t)w;
    off += w;
  }
  return 0;
}
