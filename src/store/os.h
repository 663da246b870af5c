/*
 * os.h — every system call of the storage engine other than the mapping
 * core's: opening, locking, allocating and syncing files, renames, and
 * randomness. Calls go through a table so that tests can inject failures
 * (ENOSPC from fallocate, EIO from fsync, a failing rename).
 *
 * Internal; not exported from the shared library.
 */
#ifndef MAPKV_OS_H
#define MAPKV_OS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct mapkv__os {
  int (*open)(const char *path, int flags, mode_t mode);
  int (*close)(int fd);
  int (*fstat)(int fd, struct stat *st);
  int (*stat)(const char *path, struct stat *st);
  int (*flock)(int fd, int op);
  /* Reserves blocks for [off, off+len) without changing the file size. */
  int (*reserve)(int fd, off_t off, off_t len);
  ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
  int (*fsync)(int fd);
  int (*rename)(const char *from, const char *to);
  int (*link)(const char *from, const char *to);
  int (*unlink)(const char *path);
  /* Fills buf with n random bytes. */
  int (*random)(void *buf, size_t n);
};

extern struct mapkv__os mapkv__os;

/* Restores the real system calls. */
void mapkv__os_reset(void);

/* fsync of the directory holding path (so a rename or link is durable). */
int mapkv__os_sync_dir(const char *path);

/* Writes all n bytes at off (retrying short writes); -errno on failure. */
int mapkv__os_pwrite_all(int fd, const void *buf, size_t n, off_t off);

#endif
