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
  int (*fchown)(int fd, uid_t uid, gid_t gid);
  int (*fchmod)(int fd, mode_t mode);
};

extern struct mapkv__os mapkv__os;

/* Restores the real system calls. */
void mapkv__os_reset(void);

/* fsync of the directory holding path (so a rename or link is durable). */
int mapkv__os_sync_dir(const char *path);

/* Writes all n bytes at off (retrying short writes); -errno on failure. */
int mapkv__os_pwrite_all(int fd, const void *buf, size_t n, off_t off);

/* The file a store path names: path itself, or when its last component is
 * a symbolic link, what the chain of links points at (relative links taken
 * from the link's directory), whether or not that exists. malloc'd into
 * *out; 0, -ENOMEM, -ELOOP or another -errno. */
int mapkv__os_resolve(const char *path, char **out);

/* Temporary files of a store: "<path>.<what>.<pid>.<16 hex digits>", in
 * the store's directory, named for the process that made them so that a
 * leftover of a process that died can be told from the work of a live
 * one. malloc'd, or NULL. */
char *mapkv__os_tmp_name(const char *path, const char *what, uint64_t id);

/* Removes the temporary files of path (mapkv__os_tmp_name(), for every
 * `what` the engine uses) whose process no longer runs. Returns how many
 * were removed. */
unsigned mapkv__os_clean_stale(const char *path);

/* The mode bits and owner of the file at fd given to the file at dst_fd:
 * 0, or -errno (-EPERM when the owner cannot be kept). */
int mapkv__os_copy_owner(int fd, int dst_fd);

/* The mode bits of like given to the file at dst_fd, and with owner its
 * owner and group too: 0, or -errno (-EPERM when the owner cannot be
 * given). */
int mapkv__os_give_mode(int dst_fd, const struct stat *like, int owner);

#endif
