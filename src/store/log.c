/*
 * log.c — the log file of a store (see log.h): creating it, opening and
 * locking it, mapping and growing it, flushing it, its header, and
 * replacing it by a new file.
 *
 * Creation is atomic: a complete header page is written to a temporary
 * file of this process (os.h), synced, and linked into place, which fails
 * if another process created the store first (theirs is then used). An
 * open that created the file and then fails removes it again (holding its
 * lock, and only if the path still names it): a failed create leaves
 * nothing behind, and a file the open did not create is never removed.
 *
 * A writer's mapping lies in a reservation of address space, so that it
 * never moves as the file grows. The default reservation (64 GiB) may be
 * more than the process may have (ulimit -v, RLIMIT_AS): it is then
 * halved until it can be had, down to twice the file and room for its
 * first growth. A reservation the caller asked for is that or nothing.
 *
 * The writer's lock is an exclusive flock() on the file; after taking it,
 * the writer checks that the path still names the file it locked (a
 * compaction may have renamed a new file over it meanwhile), and locks
 * the new one if not.
 *
 * The header page holds two copies (FORMAT.md); they are written one at a
 * time, each flushed, so that a torn write can damage one copy at most.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "os.h"
#include "store_err.h"

/* Growth adds 1/GROWTH_DIV of the file (at least growth_step): geometric,
 * so appends stay amortised O(1), while free space stays a small share. */
#define GROWTH_DIV 16
/* Growth past this size ends the file on a multiple of it, so that every
 * 2 MiB block of the file is first touched whole, inside the file, and the
 * page cache can give it one large folio (see advise_huge). */
#define GROWTH_ALIGN ((uint64_t)MMF_HUGE_PAGE)
/* A writer waiting for the lock (lock_timeout_ms) sleeps between tries,
 * 1 ms at first, doubling up to this. flock() has no timed form, and a
 * blocking flock() could only be cut short by a signal, which a library
 * must not use. */
#define LOCK_PAUSE_MAX_MS 25

/* ---- Creating ------------------------------------------------------------ */

static int new_file_id(uint64_t *id, uint64_t unlike) {
  do {
    if (mapkv__os.random(id, sizeof *id) != 0)
      return mapkv__fail_errno("getrandom");
  } while (*id == 0 || *id == unlike);
  return 0;
}

/* Writes a header page holding h (both copies) at offset 0 of fd. */
static int write_header_page(int fd, const mapkv__header *h, const char *name) {
  uint8_t *buf = calloc(1, MAPKV__HDR_PAGE);
  int rc;
  if (buf == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  mapkv__header_encode(buf, h);
  mapkv__header_encode(buf + MAPKV__HDR_COPY_B, h);
  rc = mapkv__os_pwrite_all(fd, buf, MAPKV__HDR_PAGE, 0);
  free(buf);
  if (rc != 0)
    return mapkv__fail(rc, "writing %s: %s", name, strerror(-rc));
  return 0;
}

/* Removes the file at path if it is the file `st` describes. */
static void unlink_if_same(const char *path, const struct stat *st) {
  struct stat now;
  if (mapkv__os.stat(path, &now) == 0 && now.st_dev == st->st_dev &&
      now.st_ino == st->st_ino)
    mapkv__os.unlink(path);
}

/* Creates the store file at path (see the top of this file). *made
 * receives the identity of the file this call linked into place (st_ino
 * 0 when another creator was first). */
static int create_file(const char *path, uint64_t page, const mapkv_options *o,
                       struct stat *made) {
  mapkv__header h;
  struct stat st;
  char *tmp;
  int fd, rc, linked = 0;

  memset(made, 0, sizeof *made);
  memset(&h, 0, sizeof h);
  h.version = MAPKV_FORMAT_VERSION;
  h.page_size = (uint32_t)page;
  h.flags = MAPKV__HF_CLEAN;
  h.data_end = MAPKV__HDR_PAGE;
  h.sealed_end = MAPKV__HDR_PAGE;
  h.created = (uint64_t)time(NULL);
  h.max_key = o->max_key_size ? o->max_key_size : MAPKV_DEFAULT_KEY_MAX;
  h.max_value = o->max_value_size ? o->max_value_size : MAPKV_DEFAULT_VALUE_MAX;
  if ((rc = new_file_id(&h.file_id, 0)) != 0)
    return rc;
  /* A name of our own: creators racing on one path must not meet here,
   * and a creator that dies leaves a name the next writer can clean. */
  if ((tmp = mapkv__os_tmp_name(path, "creating", h.file_id)) == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  fd = mapkv__os.open(tmp, O_RDWR | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    rc = mapkv__fail_errno(path);
    free(tmp);
    return rc;
  }
  rc = write_header_page(fd, &h, tmp);
  if (rc == 0 && mapkv__os.fsync(fd) != 0)
    rc = -errno;
  if (rc == 0 && mapkv__os.fstat(fd, &st) != 0)
    rc = -errno;
  mapkv__os.close(fd);
  if (rc == 0) {
    if (mapkv__os.link(tmp, path) == 0)
      linked = 1;
    else if (errno != EEXIST)
      rc = -errno;
  }
  mapkv__os.unlink(tmp);
  if (rc == 0)
    rc = mapkv__os_sync_dir(path);
  if (rc != 0 && linked)
    unlink_if_same(path, &st); /* no half-made store left behind */
  else if (linked)
    *made = st;
  if (rc != 0 && rc > -4096)
    rc = mapkv__fail(rc, "creating %s: %s", path, strerror(-rc));
  free(tmp);
  return rc;
}

/* ---- Opening and locking --------------------------------------------------- */

static const char *file_kind(mode_t m) {
  return S_ISDIR(m)    ? "directory"
         : S_ISFIFO(m) ? "FIFO"
         : S_ISSOCK(m) ? "socket"
         : S_ISCHR(m)  ? "character device"
         : S_ISBLK(m)  ? "block device"
                       : "special file";
}

/* Opens the file at path without blocking (a FIFO or a device would block
 * open() forever) and refuses anything but a regular file. -errno (no
 * message) when open() fails for another reason. */
static int open_regular(const char *path, int flags, int *out) {
  struct stat st;
  int fd = mapkv__os.open(path, flags | O_NONBLOCK, 0);
  if (fd < 0) {
    int e = errno;
    /* A directory (EISDIR), a socket (ENXIO): not a store. */
    if (e != ENOENT && mapkv__os.stat(path, &st) == 0 && !S_ISREG(st.st_mode))
      return mapkv__fail(MAPKV_ENOTDB, "%s is not a regular file (a %s)", path,
                         file_kind(st.st_mode));
    return -e;
  }
  if (mapkv__os.fstat(fd, &st) != 0) {
    int e = errno;
    mapkv__os.close(fd);
    return mapkv__fail(-e, "fstat %s: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    mapkv__os.close(fd);
    return mapkv__fail(MAPKV_ENOTDB, "%s is not a regular file (a %s)", path,
                       file_kind(st.st_mode));
  }
  /* O_NONBLOCK changes nothing for a regular file's mapping, locks and
   * syncs; it stays set. */
  *out = fd;
  return 0;
}

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pause_ns(uint64_t ns) {
  struct timespec ts;
  ts.tv_sec = (time_t)(ns / 1000000000u);
  ts.tv_nsec = (long)(ns % 1000000000u);
  nanosleep(&ts, NULL); /* a signal cuts it short: the caller re-checks */
}

int mapkv__lock_fd(int fd, const char *path, uint32_t timeout_ms) {
  uint64_t deadline = 0, pause_ms = 1;
  if (timeout_ms > 0)
    deadline = monotonic_ns() + (uint64_t)timeout_ms * 1000000u;
  while (mapkv__os.flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    uint64_t now;
    if (e == EWOULDBLOCK && timeout_ms > 0 &&
        (now = monotonic_ns()) < deadline) {
      uint64_t ns = pause_ms * 1000000u;
      pause_ns(ns < deadline - now ? ns : deadline - now);
      pause_ms =
          pause_ms * 2 > LOCK_PAUSE_MAX_MS ? LOCK_PAUSE_MAX_MS : pause_ms * 2;
      continue;
    }
    if (e == EWOULDBLOCK && timeout_ms > 0)
      return mapkv__fail(MAPKV_ELOCKED,
                         "%s is open for writing by another process "
                         "(waited %lu ms for it)",
                         path, (unsigned long)timeout_ms);
    if (e == EWOULDBLOCK)
      return mapkv__fail(MAPKV_ELOCKED,
                         "%s is open for writing by another process", path);
    errno = e;
    return mapkv__fail_errno("flock");
  }
  return 0;
}

/* Opens path and, for a writer, takes the lock on the file the path names
 * once it is locked; creates the file if asked to and missing (*created:
 * the file locked is the one this call created). */
static int open_locked(const char *path, int readonly, int create,
                       uint64_t page, const mapkv_options *o, int *out,
                       int *created) {
  struct stat made;
  memset(&made, 0, sizeof made);
  *created = 0;
  for (int attempt = 0; attempt < 100; attempt++) {
    struct stat a, b;
    int fd = -1, rc = open_regular(path, readonly ? O_RDONLY : O_RDWR, &fd);
    if (rc == -ENOENT && create && !readonly) {
      if ((rc = create_file(path, page, o, &made)) != 0)
        return rc;
      continue;
    }
    if (rc != 0)
      return rc > -4096 && rc < 0
                 ? mapkv__fail(rc, "%s: %s", path, strerror(-rc))
                 : rc;
    if (readonly) {
      *out = fd;
      return 0;
    }
    if ((rc = mapkv__lock_fd(fd, path, o->lock_timeout_ms)) != 0) {
      mapkv__os.close(fd);
      return rc;
    }
    if (mapkv__os.fstat(fd, &a) == 0 && mapkv__os.stat(path, &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      *out = fd;
      *created = made.st_ino != 0 && a.st_dev == made.st_dev &&
                 a.st_ino == made.st_ino;
      return 0;
    }
    mapkv__os.close(fd); /* replaced meanwhile: lock the new file */
  }
  return mapkv__fail(MAPKV_ELOCKED, "%s keeps being replaced", path);
}

int mapkv__lock_path(const char *path, uint32_t timeout_ms, int *out) {
  mapkv_options o;
  mapkv_options_init(&o);
  o.lock_timeout_ms = timeout_ms;
  /* A writer's lock on a descriptor opened read-only: flock() does not
   * care, and the caller need not be able to write the file. */
  for (int attempt = 0; attempt < 100; attempt++) {
    struct stat a, b;
    int fd = -1, rc = open_regular(path, O_RDONLY, &fd);
    if (rc != 0)
      return rc > -4096 && rc < 0
                 ? mapkv__fail(rc, "%s: %s", path, strerror(-rc))
                 : rc;
    if ((rc = mapkv__lock_fd(fd, path, o.lock_timeout_ms)) != 0) {
      mapkv__os.close(fd);
      return rc;
    }
    if (mapkv__os.fstat(fd, &a) == 0 && mapkv__os.stat(path, &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      *out = fd;
      return 0;
    }
    mapkv__os.close(fd);
  }
  return mapkv__fail(MAPKV_ELOCKED, "%s keeps being replaced", path);
}

/* Asks for large page-cache folios behind the mapping: gets jump to random
 * records, and with 2 MiB folios mapped by one page-table entry each (the
 * core aligns the reservation) most of them no longer miss the TLB. Advice
 * only; kernels without file-backed huge pages refuse it harmlessly. */
static void advise_huge(mapkv__log *lg) {
#ifdef MMF_MADV_HUGEPAGE
  mmf_madvise(lg->map, MMF_MADV_HUGEPAGE, 0, NULL);
#else
  (void)lg;
#endif
}

/* Maps fd (of cap bytes) in a reservation of `want` bytes; when that much
 * address space cannot be had (ENOMEM: an address-space limit), in one of
 * half as much, and so on down to floor (floor >= want: want or nothing;
 * asked: the caller's reserve option asked for it). */
static int map_file(mapkv__log *lg, uint64_t want, uint64_t floor, int asked) {
  uint64_t r;
  void *base;
  int rc;
  lg->wanted = r = mapkv__log_page_up(lg, want);
  floor = mapkv__log_page_up(lg, floor);
  if (floor > r)
    floor = r;
  for (;;) {
    rc = mmf_open_reserved(
        &lg->map, lg->fd, 0, MMF_MAP_SHARED, MMF_PROT_READ | MMF_PROT_WRITE,
        lg->readonly ? MMF_ACCESS_READ : MMF_ACCESS_WRITE, 0, 1, (int64_t)r);
    if (rc != -ENOMEM || r <= floor)
      break;
    r = mapkv__log_page_up(lg, r / 2 > floor ? r / 2 : floor);
  }
  if (rc == -ENOMEM && floor < lg->wanted)
    return mapkv__fail(rc,
                       "mapping the store: no reservation of address space "
                       "from %llu bytes down to %llu could be had (%s: an "
                       "address-space limit, ulimit -v?)",
                       (unsigned long long)lg->wanted,
                       (unsigned long long)floor, mmf_errmsg());
  if (rc == -ENOMEM && asked)
    return mapkv__fail(rc,
                       "mapping the store: a reservation of %llu bytes of "
                       "address space (the reserve option, at least twice "
                       "the file) cannot be had (%s)",
                       (unsigned long long)lg->wanted, mmf_errmsg());
  if (rc != 0)
    return mapkv__fail_mmf(rc, "mapping the store");
  lg->reserve = r;
  mmf_data(lg->map, &base, NULL);
  lg->base = base;
  advise_huge(lg);
  return 0;
}

/* Both header copies are intact but differ (one written over by a copy of
 * another store's or generation's header, say): the one whose file id
 * verifies the first record of the log belongs to it. */
static void pick_header(const mapkv__log *lg, const mapkv__header *b,
                        mapkv__header *h) {
  mapkv__rec r;
  uint64_t avail = lg->cap - MAPKV__HDR_PAGE;
  const uint8_t *p = lg->base + MAPKV__HDR_PAGE;
  int (*dec_a)(const uint8_t *, uint64_t, uint64_t, int, mapkv__rec *) =
      h->version == 1 ? mapkv__rec_decode_v1 : mapkv__rec_decode;
  int (*dec_b)(const uint8_t *, uint64_t, uint64_t, int, mapkv__rec *) =
      b->version == 1 ? mapkv__rec_decode_v1 : mapkv__rec_decode;
  if (lg->cap <= MAPKV__HDR_PAGE)
    return;
  if (dec_a(p, avail, h->file_id, 1, &r) != MAPKV__REC_OK &&
      dec_b(p, avail, b->file_id, 1, &r) == MAPKV__REC_OK)
    *h = *b;
}

uint64_t mapkv__log_reserve_floor(uint64_t size, const mapkv_options *o) {
  uint64_t f = 2 * size;
  if (f < size + o->growth_step)
    f = size + o->growth_step;
  if (f < o->initial_size)
    f = o->initial_size;
  return f < MAPKV_FILE_MAX ? f : MAPKV_FILE_MAX;
}

int mapkv__log_open(mapkv__log *lg, const char *path, const mapkv_options *o) {
  mapkv__header other;
  struct stat st;
  uint64_t want, floor;
  int rc, has_other, created = 0;

  memset(lg, 0, sizeof *lg);
  lg->fd = -1;
  lg->readonly = (o->flags & MAPKV_RDONLY) != 0;
  lg->page = (uint64_t)mmf_pagesize();
  /* A symbolic link names the store it points at: every later operation
   * (compaction's rename, the inode checks) works on that file, in its own
   * directory. */
  if ((rc = mapkv__os_resolve(path, &lg->path)) != 0) {
    lg->path = NULL;
    return mapkv__fail(rc, "%s: %s", path, strerror(-rc));
  }
  if ((rc = open_locked(lg->path, lg->readonly, (o->flags & MAPKV_CREATE) != 0,
                        lg->page, o, &lg->fd, &created)) != 0)
    goto fail;
  lg->created = created;
  if (mapkv__os.fstat(lg->fd, &st) != 0) {
    rc = mapkv__fail_errno("fstat");
    goto fail;
  }
  if (st.st_size == 0) {
    rc = mapkv__fail(MAPKV_ENOTDB, "%s is empty, not a mapkv store", path);
    goto fail;
  }
  if ((uint64_t)st.st_size > MAPKV_FILE_MAX) {
    rc = mapkv__fail(MAPKV_ENOTDB, "%s is larger than any mapkv store", path);
    goto fail;
  }
  lg->cap = (uint64_t)st.st_size;
  /* A writer reserves room to grow in place (the default reservation, or
   * less when the address space allows only less; the caller's, or
   * nothing); a reader never grows. */
  if (lg->readonly) {
    want = floor = lg->cap;
  } else {
    want = o->reserve ? o->reserve : MAPKV__DEFAULT_RESERVE;
    if (want < 2 * lg->cap)
      want = 2 * lg->cap;
    if (want > MAPKV_FILE_MAX)
      want = MAPKV_FILE_MAX;
    floor = o->reserve ? want : mapkv__log_reserve_floor(lg->cap, o);
  }
  if ((rc = map_file(lg, want, floor, !lg->readonly && o->reserve != 0)) != 0)
    goto fail;
  if ((rc = mapkv__header_decode(lg->base, lg->cap, &lg->hdr, &other,
                                 &has_other)) != 0)
    goto fail;
  if (has_other)
    pick_header(lg, &other, &lg->hdr);
  lg->rec_head = mapkv__rec_head(lg->hdr.version);
  if (lg->hdr.version < MAPKV_FORMAT_VERSION && !lg->readonly) {
    rc = mapkv__fail(MAPKV_EVERSION,
                     "%s has format version %u, which this library reads but "
                     "no longer writes: open it read-only, or convert it "
                     "with `mapkv upgrade` (mapkv_recover())",
                     path, (unsigned)lg->hdr.version);
    goto fail;
  }
  if (o->flush_hook != NULL)
    mmf_set_flush_hook(lg->map, o->flush_hook, o->flush_hook_ctx);
  lg->end = lg->flushed = MAPKV__HDR_PAGE;
  lg->sealed = lg->hdr.sealed_end;
  return 0;
fail:
  mapkv__log_unmake(lg);
  mapkv__log_close(lg);
  return rc;
}

void mapkv__log_unmake(mapkv__log *lg) {
  struct stat st;
  if (!lg->created || lg->fd < 0 || lg->path == NULL)
    return;
  lg->created = 0;
  if (mapkv__os.fstat(lg->fd, &st) == 0)
    unlink_if_same(lg->path, &st);
}

int mapkv__log_create_beside(mapkv__log *lg, const mapkv__log *old,
                             const char *tmp, const mapkv__new_log *how) {
  uint64_t size;
  int rc;
  memset(lg, 0, sizeof *lg);
  lg->fd = -1;
  lg->page = old->page;
  lg->hdr = old->hdr;
  lg->hdr.version = MAPKV_FORMAT_VERSION;
  lg->hdr.generation++;
  lg->hdr.flags = 0;
  lg->hdr.data_end = lg->hdr.sealed_end = MAPKV__HDR_PAGE;
  lg->hdr.last_seq = lg->hdr.live_records = lg->hdr.live_bytes = 0;
  /* A store of format version 1 records no limits: it had the defaults. */
  if (lg->hdr.max_key == 0)
    lg->hdr.max_key = MAPKV_DEFAULT_KEY_MAX;
  if (lg->hdr.max_value == 0)
    lg->hdr.max_value = MAPKV_DEFAULT_VALUE_MAX;
  lg->rec_head = MAPKV__REC_HEAD;
  if ((rc = new_file_id(&lg->hdr.file_id, old->hdr.file_id)) != 0)
    return rc;
  if ((lg->path = strdup(tmp)) == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  mapkv__os.unlink(tmp);
  lg->fd = mapkv__os.open(tmp, O_RDWR | O_CREAT | O_EXCL, 0644);
  if (lg->fd < 0) {
    rc = mapkv__fail_errno(tmp);
    goto fail;
  }
  /* Locked now, so that no other writer can take it once it is renamed. */
  if (mapkv__os.flock(lg->fd, LOCK_EX | LOCK_NB) != 0) {
    rc = mapkv__fail_errno("flock");
    goto fail;
  }
  /* The new file takes the store's mode (and owner), or nothing is made. */
  if ((rc = mapkv__os_give_mode(lg->fd, how->like, how->keep_owner)) != 0) {
    rc = mapkv__fail(rc,
                     "%s: the new file cannot take the store's %s (%s); the "
                     "store is unchanged",
                     old->path, how->keep_owner ? "owner or mode" : "mode",
                     strerror(-rc));
    goto fail;
  }
  if ((rc = write_header_page(lg->fd, &lg->hdr, tmp)) != 0)
    goto fail;
  size = mapkv__log_page_up(lg, how->size);
  if (size < lg->page * 2)
    size = lg->page * 2;
  if (mapkv__os.reserve(lg->fd, 0, (off_t)size) != 0) {
    rc = mapkv__fail_errno("reserving space for the compacted store");
    goto fail;
  }
  lg->cap = MAPKV__HDR_PAGE;
  if ((rc = map_file(lg, how->reserve > size ? how->reserve : size,
                     how->floor > size ? how->floor : size, 0)) != 0)
    goto fail;
  if ((rc = mapkv__log_resize(lg, size)) != 0)
    goto fail;
  lg->end = lg->flushed = lg->sealed = MAPKV__HDR_PAGE;
  return 0;
fail:
  mapkv__os.unlink(tmp);
  mapkv__log_close(lg);
  return rc;
}

int mapkv__log_view(mapkv__log *v, const mapkv__log *lg) {
  void *base;
  int rc;
  memset(v, 0, sizeof *v);
  v->fd = -1;
  v->readonly = 1;
  v->page = lg->page;
  v->hdr = lg->hdr;
  v->rec_head = lg->rec_head;
  v->cap = v->end = v->flushed = v->sealed = lg->end;
  v->hdr.sealed_end = lg->end;
  v->seq = lg->seq;
  v->reserve = v->wanted = mapkv__log_page_up(lg, lg->end);
  if ((v->path = strdup(lg->path)) == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  /* A mapping of its own: it keeps the file (not the path) whatever lg's
   * handle does with it next. */
  rc = mmf_open(&v->map, lg->fd, (int64_t)lg->end, MMF_MAP_SHARED,
                MMF_PROT_READ | MMF_PROT_WRITE, MMF_ACCESS_READ, 0, 0);
  if (rc != 0) {
    rc = mapkv__fail_mmf(rc, "mapping the store to copy it");
    mapkv__log_close(v);
    return rc;
  }
  mmf_data(v->map, &base, NULL);
  v->base = base;
  return 0;
}

/* Bytes written per call when copying a log. */
#define COPY_CHUNK (8u << 20)

int mapkv__log_write_copy(const mapkv__log *v, const char *tmp,
                          const struct stat *like, int keep_owner,
                          uint64_t live_records, uint64_t live_bytes) {
  static const uint8_t zeros[512];
  mapkv__header h = v->hdr;
  uint64_t size = mapkv__log_page_up(v, v->end), off;
  int fd, rc;

  assert(v->hdr.version == MAPKV_FORMAT_VERSION);
  fd = mapkv__os.open(tmp, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0)
    return mapkv__fail_errno(tmp);
  if ((rc = mapkv__os_give_mode(fd, like, keep_owner)) != 0) {
    rc = mapkv__fail(rc, "%s: the copy cannot take the store's %s (%s)", tmp,
                     keep_owner ? "owner or mode" : "mode", strerror(-rc));
    goto fail;
  }
  /* Blocks first: a full disk is an error before anything is written. */
  if (mapkv__os.reserve(fd, 0, (off_t)size) != 0) {
    rc = mapkv__fail_errno("reserving space for the copy");
    goto fail;
  }
  /* Closed cleanly at the end of the log, with exact figures: everything
   * in it was checked, and the copy is made durable whole below. */
  h.flags = MAPKV__HF_CLEAN;
  h.data_end = h.sealed_end = v->end;
  h.last_seq = v->seq;
  h.live_records = live_records;
  h.live_bytes = live_bytes;
  if ((rc = write_header_page(fd, &h, tmp)) != 0)
    goto fail;
  for (off = MAPKV__HDR_PAGE; off < v->end; off += COPY_CHUNK) {
    uint64_t n = v->end - off < COPY_CHUNK ? v->end - off : COPY_CHUNK;
    if ((rc = mapkv__os_pwrite_all(fd, v->base + off, (size_t)n, (off_t)off)) !=
        0) {
      rc = mapkv__fail(rc, "writing %s: %s", tmp, strerror(-rc));
      goto fail;
    }
  }
  /* Free space, as every store ends with, up to a page boundary. */
  for (off = v->end; off < size; off += sizeof zeros) {
    uint64_t n = size - off < sizeof zeros ? size - off : sizeof zeros;
    if ((rc = mapkv__os_pwrite_all(fd, zeros, (size_t)n, (off_t)off)) != 0) {
      rc = mapkv__fail(rc, "writing %s: %s", tmp, strerror(-rc));
      goto fail;
    }
  }
  if (mapkv__os.fsync(fd) != 0) {
    rc = mapkv__fail_errno("flushing the copy");
    goto fail;
  }
  mapkv__os.close(fd);
  return 0;
fail:
  mapkv__os.close(fd);
  mapkv__os.unlink(tmp);
  return rc;
}

void mapkv__log_close(mapkv__log *lg) {
  mmf_free(lg->map);
  lg->map = NULL;
  lg->base = NULL;
  if (lg->fd >= 0)
    mapkv__os.close(lg->fd);
  lg->fd = -1;
  free(lg->path);
  lg->path = NULL;
}

/* ---- Growing and flushing ------------------------------------------------- */

int mapkv__log_reserve_room(const mapkv__log *lg, uint64_t need,
                            uint64_t initial_size, uint64_t growth_step,
                            uint64_t *newcap) {
  uint64_t want = lg->end + need, cap, grow, least;
  int rc;
  *newcap = lg->cap;
  if (want <= lg->cap)
    return 0;
  if (want > MAPKV_FILE_MAX)
    return mapkv__fail(MAPKV_EFULL, "store would exceed %llu bytes",
                       (unsigned long long)MAPKV_FILE_MAX);
  least = mapkv__log_page_up(lg, want);
  if (least > lg->reserve && lg->reserve < lg->wanted)
    return mapkv__fail(MAPKV_EFULL,
                       "store needs %llu bytes, beyond its %llu-byte "
                       "address reservation (%llu bytes were asked for, but "
                       "the address space allowed no more: raise its limit, "
                       "ulimit -v, and reopen)",
                       (unsigned long long)least,
                       (unsigned long long)lg->reserve,
                       (unsigned long long)lg->wanted);
  if (least > lg->reserve)
    return mapkv__fail(MAPKV_EFULL,
                       "store needs %llu bytes, beyond its %llu-byte "
                       "address reservation (reopen with a larger reserve)",
                       (unsigned long long)least,
                       (unsigned long long)lg->reserve);
  /* The first growth makes the file initial_size; later ones add a
   * sixteenth of the size (at least growth_step). */
  if (lg->cap < initial_size) {
    cap = initial_size;
  } else {
    grow =
        lg->cap / GROWTH_DIV > growth_step ? lg->cap / GROWTH_DIV : growth_step;
    cap = lg->cap + grow;
  }
  cap = mapkv__log_page_up(lg, cap < want ? want : cap);
  if (cap > GROWTH_ALIGN)
    cap = (cap + GROWTH_ALIGN - 1) & ~(GROWTH_ALIGN - 1);
  if (cap > lg->reserve)
    cap = lg->reserve;
  /* Blocks first: a full disk is an error now, not a SIGBUS later. When
   * the full step does not fit on the disk, what this write needs may. */
  rc = mapkv__os.reserve(lg->fd, (off_t)lg->cap, (off_t)(cap - lg->cap));
  if (rc != 0 && errno == ENOSPC && cap > least) {
    cap = least;
    rc = mapkv__os.reserve(lg->fd, (off_t)lg->cap, (off_t)(cap - lg->cap));
  }
  if (rc != 0)
    return mapkv__fail_errno("growing the store file");
  *newcap = cap;
  return 0;
}

int mapkv__log_resize(mapkv__log *lg, uint64_t newcap) {
  int rc = mmf_resize(lg->map, (int64_t)newcap);
  if (rc != 0)
    return mapkv__fail_mmf(rc, "growing the store file");
  lg->cap = newcap;
  advise_huge(lg);
  return 0;
}

int mapkv__log_recovered(mapkv__log *lg, uint64_t end, uint64_t seq,
                         uint64_t lost, uint64_t nonzero_end) {
  int rc;
  lg->end = end;
  lg->seq = seq;
  /* This open checks the log up to its end and (a writer) makes it
   * durable: sealed, but for damage a crash may have left. */
  lg->lost = lost;
  lg->sealed = lost != 0 ? lost : end;
  if (!lg->readonly) {
    uint64_t upto = nonzero_end > end ? nonzero_end : end;
    /* Zero the dropped tail so that none of it can come back later. */
    if (nonzero_end > end)
      memset(lg->base + end, 0, nonzero_end - end);
    lg->flushed = 0;
    if ((rc = mapkv__log_flush_to(lg, upto)) != 0)
      return rc;
  }
  lg->flushed = end;
  return 0;
}

int mapkv__log_write_durable(mapkv__log *lg, const void *buf, uint64_t n) {
  int rc;
  assert(!lg->readonly && lg->end + n <= lg->cap);
  rc = mapkv__os_pwrite_all(lg->fd, buf, (size_t)n, (off_t)lg->end);
  if (rc != 0)
    rc = mapkv__fail(rc, "writing the data file: %s", strerror(-rc));
  else
    rc = mapkv__log_flush_to(lg, lg->end + n);
  if (rc != 0)
    mapkv__log_discard(lg, lg->end + n);
  return rc;
}

int mapkv__log_flush_to(mapkv__log *lg, uint64_t upto) {
  uint64_t from = lg->flushed / lg->page * lg->page;
  int rc;
  if (upto <= lg->flushed)
    return 0;
  rc = mmf_flush(lg->map, (int64_t)from, (int64_t)(upto - from));
  if (rc != 0)
    return mapkv__fail_mmf(rc, "flushing the data file");
  lg->flushed = upto;
  return 0;
}

int mapkv__log_write_header(mapkv__log *lg, int clean, uint64_t live_records,
                            uint64_t live_bytes) {
  mapkv__header h = lg->hdr;
  int rc;
  assert(!lg->readonly);
  h.flags = clean ? MAPKV__HF_CLEAN : 0;
  h.data_end = lg->end;
  h.last_seq = lg->seq;
  h.live_records = live_records;
  h.live_bytes = live_bytes;
  /* A clean close seals everything but damage a crash may have left. */
  if (clean && lg->lost == 0)
    lg->sealed = lg->end;
  h.sealed_end = lg->sealed;
  /* One copy at a time, each flushed: a torn write can damage at most the
   * copy being written, and the other one stays intact. */
  mapkv__header_encode(lg->base, &h);
  if ((rc = mmf_flush(lg->map, 0, (int64_t)lg->page)) != 0)
    return mapkv__fail_mmf(rc, "flushing the header");
  mapkv__header_encode(lg->base + MAPKV__HDR_COPY_B, &h);
  if ((rc = mmf_flush(lg->map, 0, (int64_t)lg->page)) != 0)
    return mapkv__fail_mmf(rc, "flushing the header");
  lg->hdr = h;
  return 0;
}

/* ---- The file among others ------------------------------------------------ */

int mapkv__log_check_path(const mapkv__log *lg) {
  struct stat a, b;
  if (mapkv__os.fstat(lg->fd, &a) != 0)
    return mapkv__fail_errno("fstat");
  if (mapkv__os.stat(lg->path, &b) != 0) {
    if (errno == ENOENT)
      return mapkv__fail(MAPKV_EMOVED,
                         "%s was removed while open: what is written now "
                         "goes to a file no path names",
                         lg->path);
    return mapkv__fail_errno(lg->path);
  }
  if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
    return mapkv__fail(MAPKV_EMOVED,
                       "%s was replaced by another file while open: what is "
                       "written now goes to a file no path names",
                       lg->path);
  return 0;
}

int mapkv__log_replace(mapkv__log *lg, const char *path, int *renamed) {
  char *p = strdup(path);
  int rc;
  *renamed = 0;
  if (p == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  if (mapkv__os.rename(lg->path, path) != 0) {
    rc = mapkv__fail_errno("renaming the compacted store into place");
    free(p);
    return rc;
  }
  *renamed = 1;
  free(lg->path);
  lg->path = p;
  if ((rc = mapkv__os_sync_dir(path)) != 0)
    return mapkv__fail(rc, "syncing the directory of %s: %s", path,
                       strerror(-rc));
  return 0;
}

char *mapkv__log_compact_name(const char *path) {
  size_t n = strlen(path);
  char *p = malloc(n + sizeof ".compact");
  if (p != NULL) {
    memcpy(p, path, n);
    memcpy(p + n, ".compact", sizeof ".compact");
  }
  return p;
}

void mapkv__log_clean_leftovers(const mapkv__log *lg) {
  char *tmp = mapkv__log_compact_name(lg->path);
  if (tmp != NULL)
    mapkv__os.unlink(tmp); /* a compaction a crash interrupted */
  free(tmp);
  mapkv__os_clean_stale(lg->path); /* ... or a create or a salvage */
}
