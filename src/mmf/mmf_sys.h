/*
 * mmf_sys.h — the system calls of the mapping core, behind a table of
 * function pointers so that tests can inject failures (ENOSPC from ftruncate,
 * EIO from msync, a failed mmap) the way SQLite's os layer allows.
 *
 * Internal: not installed, not exported from the shared library. Only
 * mmf.c calls through this table; tests assign entries and call
 * mmf__sys_reset() to restore the real calls.
 */
#ifndef MAPKV_MMF_SYS_H
#define MAPKV_MMF_SYS_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct mmf__sys {
  void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
  int (*munmap)(void *addr, size_t len);
  /* mremap with MREMAP_MAYMOVE; NULL-equivalent MAP_FAILED on error. */
  void *(*mremap_maymove)(void *old, size_t old_len, size_t new_len);
  int (*msync)(void *addr, size_t len, int flags);
  int (*madvise)(void *addr, size_t len, int advice);
  int (*ftruncate)(int fd, off_t len);
  int (*fstat)(int fd, struct stat *st);
  int (*dup)(int fd);
  int (*close)(int fd);
};

extern struct mmf__sys mmf__sys;

/** Restores every entry of mmf__sys to the real system call. */
void mmf__sys_reset(void);

#endif /* MAPKV_MMF_SYS_H */
