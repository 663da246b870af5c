/*
 * backends.c — the list of compiled-in stores and the helpers the adapters
 * share (error printing, disk usage of a store directory).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"

const bk_vtable *const bk_all[] = {&bk_mapkv,
#ifdef MAPKV_BENCH_HAVE_LMDB
                                   &bk_lmdb,
#endif
#ifdef MAPKV_BENCH_HAVE_LEVELDB
                                   &bk_leveldb,
#endif
#ifdef MAPKV_BENCH_HAVE_ROCKSDB
                                   &bk_rocksdb,
#endif
#ifdef MAPKV_BENCH_HAVE_SQLITE
                                   &bk_sqlite,
#endif
#ifdef MAPKV_BENCH_HAVE_KYOTOCABINET
                                   &bk_kyotocabinet,
#endif
#ifdef MAPKV_BENCH_HAVE_TKRZW
                                   &bk_tkrzw,
#endif
#ifdef MAPKV_BENCH_HAVE_GDBM
                                   &bk_gdbm,
#endif
                                   NULL};

int bk_fail(const char *store, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "mapkv-bench: %s: ", store);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return -1;
}

/* nftw has no context argument: the sums live here for the one walk that
 * runs at a time (the bench is single-threaded when it measures sizes). */
static int64_t walk_apparent, walk_allocated;

static int add_file(const char *path, const struct stat *st, int type,
                    struct FTW *f) {
  (void)path;
  (void)f;
  if (type == FTW_F && S_ISREG(st->st_mode)) {
    walk_apparent += (int64_t)st->st_size;
    walk_allocated += (int64_t)st->st_blocks * 512;
  }
  return 0;
}

int bk_dir_size(const char *dir, int64_t *apparent, int64_t *allocated) {
  walk_apparent = walk_allocated = 0;
  if (nftw(dir, add_file, 16, FTW_PHYS) != 0)
    return -1;
  *apparent = walk_apparent;
  *allocated = walk_allocated;
  return 0;
}

int bk_disk_size_dir(void *db, const char *dir, int64_t *apparent,
                     int64_t *allocated) {
  (void)db;
  return bk_dir_size(dir, apparent, allocated);
}

void *bk_reader_is_db(void *db) { return db; }

void bk_reader_none(void *rd) { (void)rd; }

char *bk_path(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (p == NULL)
    return NULL;
  memcpy(p, dir, a);
  p[a] = '/';
  memcpy(p + a + 1, name, b + 1);
  return p;
}

static int rm_entry(const char *path, const struct stat *st, int type,
                    struct FTW *f) {
  (void)st;
  (void)f;
  return (type == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT
             ? 0
             : -1;
}

int bk_rmtree(const char *dir) {
  struct stat st;
  if (lstat(dir, &st) != 0)
    return errno == ENOENT ? 0 : -1;
  return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
