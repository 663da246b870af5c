/*
 * os.c — the engine's system calls (see os.h). The mapping core (mmf) keeps
 * mmap/msync/mremap/madvise/ftruncate; everything else the engine does to
 * the operating system is here.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "os.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

struct mapkv__os mapkv__os = {os_open,    close,     fstat,  stat,   os_flock,
                              os_reserve, pwrite,    fsync,  rename, link,
                              unlink,     os_random, fchown, fchmod};

void mapkv__os_reset(void) {
  struct mapkv__os real = {os_open,    close,     fstat,  stat,   os_flock,
                           os_reserve, pwrite,    fsync,  rename, link,
                           unlink,     os_random, fchown, fchmod};
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

int mapkv__os_resolve(const char *path, char **out) {
  char *cur = strdup(path);
  if (cur == NULL)
    return -ENOMEM;
  for (int hops = 0;; hops++) {
    struct stat st;
    char target[4096], *next, *slash;
    ssize_t n;
    if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) {
      *out = cur; /* a missing file is created where the chain ends */
      return 0;
    }
    if (hops == 40) {
      free(cur);
      return -ELOOP;
    }
    n = readlink(cur, target, sizeof target - 1);
    if (n < 0) {
      int e = errno;
      free(cur);
      return -e;
    }
    target[n] = '\0';
    slash = strrchr(cur, '/');
    if (target[0] == '/' || slash == NULL) {
      next = strdup(target);
    } else {
      size_t dir = (size_t)(slash - cur) + 1;
      next = malloc(dir + (size_t)n + 1);
      if (next != NULL) {
        memcpy(next, cur, dir);
        memcpy(next + dir, target, (size_t)n + 1);
      }
    }
    free(cur);
    if (next == NULL)
      return -ENOMEM;
    cur = next;
  }
}

/* The kinds of temporary file the engine makes next to a store. */
static const char *const tmp_kinds[] = {"creating", "recovering", "copying"};

char *mapkv__os_tmp_name(const char *path, const char *what, uint64_t id) {
  size_t n = strlen(path) + strlen(what) + 48;
  char *name = malloc(n);
  if (name != NULL)
    snprintf(name, n, "%s.%s.%ld.%016llx", path, what, (long)getpid(),
             (unsigned long long)id);
  return name;
}

/* If name is "<base>.<kind>.<pid>.<16 hex>" for a known kind, *pid; also
 * with anything after a further '.' (the temporary files of a temporary
 * store, such as the header page of a store being created to salvage into,
 * belong to the same process). */
static int parse_tmp(const char *name, const char *base, long *pid) {
  size_t bl = strlen(base);
  const char *p;
  char *end;
  if (strncmp(name, base, bl) != 0 || name[bl] != '.')
    return 0;
  p = name + bl + 1;
  for (size_t i = 0; i < sizeof tmp_kinds / sizeof tmp_kinds[0]; i++) {
    size_t kl = strlen(tmp_kinds[i]);
    if (strncmp(p, tmp_kinds[i], kl) != 0 || p[kl] != '.')
      continue;
    p += kl + 1;
    if (*p < '1' || *p > '9')
      return 0;
    *pid = strtol(p, &end, 10);
    if (*end != '.' || strspn(end + 1, "0123456789abcdef") != 16 ||
        (end[17] != '\0' && end[17] != '.'))
      return 0;
    return 1;
  }
  return 0;
}

unsigned mapkv__os_clean_stale(const char *path) {
  char *copy = strdup(path), *slash, *dir, *base;
  unsigned removed = 0;
  struct dirent *e;
  DIR *d;
  if (copy == NULL)
    return 0;
  slash = strrchr(copy, '/');
  if (slash == NULL) {
    dir = ".";
    base = copy;
  } else {
    *slash = '\0';
    dir = slash == copy ? "/" : copy;
    base = slash + 1;
  }
  if ((d = opendir(dir)) != NULL) {
    while ((e = readdir(d)) != NULL) {
      long pid;
      char *full;
      size_t n;
      if (!parse_tmp(e->d_name, base, &pid) || pid == (long)getpid() ||
          kill((pid_t)pid, 0) == 0 || errno != ESRCH)
        continue;
      n = strlen(dir) + strlen(e->d_name) + 2;
      if ((full = malloc(n)) == NULL)
        break;
      snprintf(full, n, "%s/%s", dir, e->d_name);
      if (mapkv__os.unlink(full) == 0)
        removed++;
      free(full);
    }
    closedir(d);
  }
  free(copy);
  return removed;
}

int mapkv__os_give_mode(int dst_fd, const struct stat *like, int owner) {
  struct stat b;
  if (mapkv__os.fstat(dst_fd, &b) != 0)
    return -errno;
  if (owner && (like->st_uid != b.st_uid || like->st_gid != b.st_gid) &&
      mapkv__os.fchown(dst_fd, like->st_uid, like->st_gid) != 0)
    return -errno;
  if (mapkv__os.fchmod(dst_fd, like->st_mode & 07777) != 0)
    return -errno;
  return 0;
}

int mapkv__os_copy_owner(int fd, int dst_fd) {
  struct stat a;
  if (mapkv__os.fstat(fd, &a) != 0)
    return -errno;
  return mapkv__os_give_mode(dst_fd, &a, 1);
}
