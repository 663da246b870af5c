/*
 * mmf.c — the mapping core: Python's mmap.mmap object in C (Unix semantics
 * of CPython's Modules/mmapmodule.c, current main).
 *
 * This is the only file of mapkv that maps, remaps, syncs, advises or
 * truncates; every such call goes through the mmf__sys table (mmf_sys.h).
 *
 * Invariants of an open handle (data != NULL):
 *   - data points at `size` mapped bytes of file offset `offset` (or
 *     anonymous memory); size > 0 because mmap(2) refuses length 0;
 *   - pos >= 0, but pos may exceed size after a shrinking resize;
 *   - reserve == 0, or reserve >= round_up(size, page) bytes of address space
 *     starting at data are ours: [data, round_up(size)) is the mapping and the
 *     rest is a PROT_NONE placeholder that keeps other mappings out;
 *   - fd is our dup of the caller's descriptor (trackfd) or -1.
 * A closed handle has data == NULL and fd == -1; only close/closed/free,
 * seekable and repr work on it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "mapkv/mmf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mmf_sys.h"

struct mmf {
  uint8_t *data;   /* NULL once closed */
  int64_t size;    /* map length */
  int64_t pos;     /* file position; may exceed size */
  int64_t offset;  /* file offset of data[0] */
  int64_t exports; /* live mmf_buffer_acquire() exports */
  int64_t reserve; /* reserved address space at data, 0 = none */
  int fd;          /* dup of the caller's fd, or -1 */
  int flags;       /* mmap flags in use, including MAP_ANONYMOUS */
  int prot;
  int access;
  int trackfd;
  mmf_flush_hook_fn hook;
  void *hook_ctx;
};

/* ---- System call table --------------------------------------------------- */

static void *sys_mmap(void *addr, size_t len, int prot, int flags, int fd,
                      off_t off) {
  return mmap(addr, len, prot, flags, fd, off);
}
static int sys_munmap(void *addr, size_t len) { return munmap(addr, len); }
static void *sys_mremap_maymove(void *old, size_t old_len, size_t new_len) {
#ifdef MAPKV_NO_MREMAP
  (void)old;
  (void)old_len;
  (void)new_len;
  errno = ENOSYS;
  return MAP_FAILED;
#else
  return mremap(old, old_len, new_len, MREMAP_MAYMOVE);
#endif
}
static int sys_msync(void *addr, size_t len, int flags) {
  return msync(addr, len, flags);
}
static int sys_madvise(void *addr, size_t len, int advice) {
  return madvise(addr, len, advice);
}
static int sys_ftruncate(int fd, off_t len) { return ftruncate(fd, len); }
static int sys_fstat(int fd, struct stat *st) { return fstat(fd, st); }
static int sys_dup(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 0); }
static int sys_close(int fd) { return close(fd); }

struct mmf__sys mmf__sys = {sys_mmap,  sys_munmap,  sys_mremap_maymove,
                            sys_msync, sys_madvise, sys_ftruncate,
                            sys_fstat, sys_dup,     sys_close};

void mmf__sys_reset(void) {
  mmf__sys.mmap = sys_mmap;
  mmf__sys.munmap = sys_munmap;
  mmf__sys.mremap_maymove = sys_mremap_maymove;
  mmf__sys.msync = sys_msync;
  mmf__sys.madvise = sys_madvise;
  mmf__sys.ftruncate = sys_ftruncate;
  mmf__sys.fstat = sys_fstat;
  mmf__sys.dup = sys_dup;
  mmf__sys.close = sys_close;
}

/* ---- Errors -------------------------------------------------------------- */

static _Thread_local char errmsg_buf[256];

/* Records the message of a failure and returns its code. */
#ifdef __GNUC__
__attribute__((format(printf, 2, 3)))
#endif
static int
fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errmsg_buf, sizeof errmsg_buf, fmt, ap);
  va_end(ap);
  return code;
}

/* An OS failure: the errno of `call`, as -errno. */
static int fail_os(const char *call) {
  int e = errno ? errno : EIO;
  snprintf(errmsg_buf, sizeof errmsg_buf, "%s: %s", call, strerror(e));
  return -e;
}

#define CHECK_VALID(m)                                                         \
  do {                                                                         \
    if ((m) == NULL || (m)->data == NULL)                                      \
      return fail(MMF_ECLOSED, "mmap closed or invalid");                      \
  } while (0)

const char *mmf_strerror(int code) {
  switch (code) {
  case 0:
    return "success";
#define MMF_ERR_CASE(name, value, text)                                        \
  case value:                                                                  \
    return text;
    MMF_ERRNO_MAP(MMF_ERR_CASE)
#undef MMF_ERR_CASE
  default:
    break;
  }
  if (code < 0 && code > -4096)
    return strerror(-code);
  return "unknown error";
}

const char *mmf_errmsg(void) { return errmsg_buf; }

int mmf_is_oserror(int code) { return code < 0 && code > -4096; }

/* ---- Helpers ------------------------------------------------------------- */

int64_t mmf_pagesize(void) { return (int64_t)sysconf(_SC_PAGESIZE); }

int64_t mmf_allocationgranularity(void) { return mmf_pagesize(); }

static int64_t round_up_page(int64_t n) {
  int64_t ps = mmf_pagesize();
  return (n + ps - 1) / ps * ps;
}

static int is_writable(const mmf_t *m) { return m->access != MMF_ACCESS_READ; }

static int readonly_error(void) {
  return fail(MMF_ETYPE, "mmap can't modify a readonly memory map.");
}

/* A placeholder that owns address space without memory behind it. */
static void *reserve_space(void *addr, size_t len) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  if (addr != NULL)
    flags |= MAP_FIXED;
  return mmf__sys.mmap(addr, len, PROT_NONE, flags, -1, 0);
}

/* Reservations of at least this much are placed so that file offsets that
 * are multiples of it fall on addresses that are too: the kernel can then
 * map large page-cache folios with one page-table entry (a PMD), which
 * spares random reads most of their TLB misses. */
#define RESERVE_ALIGN MMF_HUGE_PAGE

/* Reserves span bytes of address space at an address congruent to offset
 * modulo RESERVE_ALIGN when span is large enough to benefit. */
static void *reserve_aligned(int64_t span, int64_t offset) {
  size_t extra = (size_t)RESERVE_ALIGN, head;
  uintptr_t p, want;
  char *raw;
  if (span < RESERVE_ALIGN || (size_t)span > SIZE_MAX - extra)
    return reserve_space(NULL, (size_t)span);
  raw = reserve_space(NULL, (size_t)span + extra);
  if (raw == MAP_FAILED)
    return reserve_space(NULL, (size_t)span);
  /* The first address at or after raw that is congruent to offset; head
   * < extra, so some padding is always left behind the span. */
  p = (uintptr_t)raw;
  want = ((p - (uintptr_t)(offset % RESERVE_ALIGN) + extra - 1) &
          ~(uintptr_t)(extra - 1)) +
         (uintptr_t)(offset % RESERVE_ALIGN);
  head = (size_t)(want - p);
  if (head > 0)
    mmf__sys.munmap(raw, head);
  mmf__sys.munmap(raw + head + (size_t)span, extra - head);
  return raw + head;
}

/* ---- Construction -------------------------------------------------------- */

int mmf_open(mmf_t **out, int fd, int64_t length, int flags, int prot,
             int access, int64_t offset, int trackfd) {
  return mmf_open_reserved(out, fd, length, flags, prot, access, offset,
                           trackfd, 0);
}

int mmf_open_reserved(mmf_t **out, int fd, int64_t length, int flags, int prot,
                      int access, int64_t offset, int trackfd,
                      int64_t reserve) {
  struct stat st;
  mmf_t *m;
  void *base = NULL, *data;
  int64_t span = 0;
  int rc;

  if (out == NULL)
    return fail(MMF_EVALUE, "output handle pointer is NULL");
  if (length < 0)
    return fail(MMF_EOVERFLOW, "memory mapped length must be positive");
  if (offset < 0)
    return fail(MMF_EOVERFLOW, "memory mapped offset must be positive");
  if (reserve < 0)
    return fail(MMF_EOVERFLOW, "address reservation must be positive");
  if (access != MMF_ACCESS_DEFAULT &&
      (flags != MAP_SHARED || prot != (PROT_WRITE | PROT_READ)))
    return fail(MMF_EVALUE, "mmap can't specify both access and flags, prot.");

  switch (access) {
  case MMF_ACCESS_READ:
    flags = MAP_SHARED;
    prot = PROT_READ;
    break;
  case MMF_ACCESS_WRITE:
    flags = MAP_SHARED;
    prot = PROT_READ | PROT_WRITE;
    break;
  case MMF_ACCESS_COPY:
    flags = MAP_PRIVATE;
    prot = PROT_READ | PROT_WRITE;
    break;
  case MMF_ACCESS_DEFAULT:
    /* The access mode follows from prot. */
    if ((prot & PROT_READ) && (prot & PROT_WRITE))
      ;
    else if (prot & PROT_WRITE)
      access = MMF_ACCESS_WRITE;
    else
      access = MMF_ACCESS_READ;
    break;
  default:
    return fail(MMF_EVALUE, "mmap invalid access parameter.");
  }

  /* Size checks apply only to regular files whose size we can read. */
  if (fd != -1 && mmf__sys.fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    int64_t fsize = (int64_t)st.st_size;
    if (length == 0) {
      if (fsize == 0)
        return fail(MMF_EVALUE, "cannot mmap an empty file");
      if (offset >= fsize)
        return fail(MMF_EVALUE, "mmap offset is greater than file size");
      length = fsize - offset;
    } else if (offset > fsize || fsize - offset < length) {
      return fail(MMF_EVALUE, "mmap length is greater than file size");
    }
  }

  m = calloc(1, sizeof *m);
  if (m == NULL)
    return fail(MMF_ENOMEM, "out of memory");
  m->fd = -1;
  if (fd == -1) {
    flags |= MAP_ANONYMOUS;
  } else if (trackfd) {
    m->fd = mmf__sys.dup(fd);
    if (m->fd == -1) {
      rc = fail_os("dup");
      goto fail_free;
    }
  }

  if (reserve > 0) {
    span = round_up_page(reserve > length ? reserve : length);
    base = reserve_aligned(span, offset);
    if (base == MAP_FAILED) {
      base = NULL;
      rc = fail_os("mmap");
      goto fail_close;
    }
  }
  data = mmf__sys.mmap(base, (size_t)length, prot,
                       base != NULL ? flags | MAP_FIXED : flags, fd,
                       (off_t)offset);
  if (data == MAP_FAILED) {
    rc = fail_os("mmap");
    goto fail_unreserve;
  }

  m->data = data;
  m->size = length;
  m->pos = 0;
  m->offset = offset;
  m->reserve = span;
  m->flags = flags;
  m->prot = prot;
  m->access = access;
  m->trackfd = trackfd != 0;
  *out = m;
  return 0;

fail_unreserve:
  if (base != NULL)
    mmf__sys.munmap(base, (size_t)span);
fail_close:
  if (m->fd != -1)
    mmf__sys.close(m->fd);
fail_free:
  free(m);
  return rc;
}

/* Unmaps and forgets the mapping and the kept descriptor. */
static void release(mmf_t *m) {
  if (m->fd >= 0)
    mmf__sys.close(m->fd);
  m->fd = -1;
  if (m->data != NULL)
    mmf__sys.munmap(m->data, (size_t)(m->reserve > 0 ? m->reserve : m->size));
  m->data = NULL;
}

int mmf_close(mmf_t *m) {
  if (m == NULL)
    return 0;
  if (m->exports > 0)
    return fail(MMF_EBUFFER, "cannot close exported pointers exist");
  release(m);
  return 0;
}

void mmf_free(mmf_t *m) {
  if (m == NULL)
    return;
  release(m);
  free(m);
}

int mmf_closed(const mmf_t *m) { return m == NULL || m->data == NULL; }

/* ---- Sizes and position -------------------------------------------------- */

int64_t mmf_len(const mmf_t *m) {
  CHECK_VALID(m);
  return m->size;
}

int64_t mmf_size(const mmf_t *m) {
  struct stat st;
  CHECK_VALID(m);
  if (m->fd != -1) {
    if (mmf__sys.fstat(m->fd, &st) != 0)
      return fail_os("fstat");
    return (int64_t)st.st_size;
  }
  if (!m->trackfd)
    return fail(MMF_EVALUE, "can't get size with trackfd=False");
  return m->size;
}

int64_t mmf_tell(const mmf_t *m) {
  CHECK_VALID(m);
  return m->pos;
}

int mmf_seekable(const mmf_t *m) {
  (void)m;
  return 1;
}

int mmf_seek(mmf_t *m, int64_t dist, int whence, int64_t *newpos) {
  int64_t where;
  CHECK_VALID(m);
  switch (whence) {
  case SEEK_SET:
    where = dist;
    break;
  case SEEK_CUR:
    if (dist > 0 && INT64_MAX - m->pos < dist)
      return fail(MMF_EVALUE, "seek out of range");
    where = m->pos + dist;
    break;
  case SEEK_END:
    if (dist > 0 && INT64_MAX - m->size < dist)
      return fail(MMF_EVALUE, "seek out of range");
    where = m->size + dist;
    break;
  default:
    return fail(MMF_EVALUE, "unknown seek type");
  }
  if (where > m->size || where < 0)
    return fail(MMF_EVALUE, "seek out of range");
  m->pos = where;
  if (newpos != NULL)
    *newpos = where;
  return 0;
}

/* ---- Stream access ------------------------------------------------------- */

static int64_t remaining(const mmf_t *m) {
  return m->pos < m->size ? m->size - m->pos : 0;
}

static int too_small(void) { return fail(MMF_EVALUE, "read buffer too small"); }

int mmf_read(mmf_t *m, int64_t n, void *buf, size_t cap, int64_t *nread) {
  int64_t rest;
  CHECK_VALID(m);
  rest = remaining(m);
  if (n < 0 || n > rest)
    n = rest;
  if ((uint64_t)n > cap)
    return too_small();
  if (n > 0)
    memcpy(buf, m->data + m->pos, (size_t)n);
  m->pos += n;
  if (nread != NULL)
    *nread = n;
  return 0;
}

int mmf_read_byte(mmf_t *m) {
  CHECK_VALID(m);
  if (m->pos >= m->size)
    return fail(MMF_EVALUE, "read byte out of range");
  return m->data[m->pos++];
}

int mmf_readline(mmf_t *m, void *buf, size_t cap, int64_t *nread) {
  int64_t rest, n;
  const uint8_t *nl;
  CHECK_VALID(m);
  rest = remaining(m);
  n = rest;
  if (rest > 0) {
    nl = memchr(m->data + m->pos, '\n', (size_t)rest);
    if (nl != NULL)
      n = (int64_t)(nl - (m->data + m->pos)) + 1;
  }
  if ((uint64_t)n > cap)
    return too_small();
  if (n > 0)
    memcpy(buf, m->data + m->pos, (size_t)n);
  m->pos += n;
  if (nread != NULL)
    *nread = n;
  return 0;
}

int64_t mmf_write(mmf_t *m, const void *data, size_t len) {
  CHECK_VALID(m);
  if (!is_writable(m))
    return readonly_error();
  if (len > (uint64_t)INT64_MAX || m->pos > m->size ||
      m->size - m->pos < (int64_t)len)
    return fail(MMF_EVALUE, "data out of range");
  if (len > 0)
    memcpy(m->data + m->pos, data, len);
  m->pos += (int64_t)len;
  return (int64_t)len;
}

int mmf_write_byte(mmf_t *m, int value) {
  /* Python converts the argument before it looks at the map. */
  if (value > 255)
    return fail(MMF_EOVERFLOW, "unsigned byte integer is greater than maximum");
  if (value < 0)
    return fail(MMF_EOVERFLOW, "unsigned byte integer is less than minimum");
  CHECK_VALID(m);
  if (!is_writable(m))
    return readonly_error();
  if (m->pos >= m->size)
    return fail(MMF_EVALUE, "write byte out of range");
  m->data[m->pos++] = (uint8_t)value;
  return 0;
}

/* ---- Search -------------------------------------------------------------- */

/* Python's clamp of a find/rfind bound: negative counts from the end. */
static int64_t clamp_bound(int64_t v, int64_t size) {
  if (v < 0) {
    v += size;
    if (v < 0)
      v = 0;
  } else if (v > size) {
    v = size;
  }
  return v;
}

static const uint8_t *last_match(const uint8_t *hay, size_t n,
                                 const uint8_t *sub, size_t k) {
  const uint8_t *p;
  size_t limit;
  if (k > n)
    return NULL;
  /* Candidate starts are [0, n-k]; walk them backwards on the first byte. */
  limit = n - k + 1;
  while (limit > 0 && (p = memrchr(hay, sub[0], limit)) != NULL) {
    if (memcmp(p, sub, k) == 0)
      return p;
    limit = (size_t)(p - hay);
  }
  return NULL;
}

static int find_impl(const mmf_t *m, const void *sub, size_t sublen,
                     const int64_t *startp, const int64_t *endp, int reverse,
                     int64_t *result) {
  int64_t start, end;
  const uint8_t *hit;
  CHECK_VALID(m);
  if (sub == NULL && sublen > 0)
    return fail(MMF_EVALUE, "needle is NULL");
  start = m->pos;
  end = m->size;
  if (startp != NULL) {
    /* Python parses end only when start is given. */
    start = *startp;
    if (endp != NULL)
      end = *endp;
  }
  /* A start beyond the end never matches, not even an empty needle; other
   * than that, start and end are clamped the same way. */
  if (start > m->size) {
    *result = -1;
    return 0;
  }
  start = clamp_bound(start, m->size);
  end = clamp_bound(end, m->size);
  if (end < start || (uint64_t)(end - start) < sublen) {
    *result = -1;
    return 0;
  }
  if (sublen == 0) {
    *result = reverse ? end : start;
    return 0;
  }
  if (reverse)
    hit = last_match(m->data + start, (size_t)(end - start), sub, sublen);
  else
    hit = memmem(m->data + start, (size_t)(end - start), sub, sublen);
  *result = hit != NULL ? (int64_t)(hit - m->data) : -1;
  return 0;
}

int mmf_find(const mmf_t *m, const void *sub, size_t sublen,
             const int64_t *start, const int64_t *end, int64_t *result) {
  return find_impl(m, sub, sublen, start, end, 0, result);
}

int mmf_rfind(const mmf_t *m, const void *sub, size_t sublen,
              const int64_t *start, const int64_t *end, int64_t *result) {
  return find_impl(m, sub, sublen, start, end, 1, result);
}

/* ---- Items and slices ---------------------------------------------------- */

int mmf_get_item(const mmf_t *m, int64_t i) {
  CHECK_VALID(m);
  if (i < 0)
    i += m->size;
  if (i < 0 || i >= m->size)
    return fail(MMF_EINDEX, "mmap index out of range");
  return m->data[i];
}

int mmf_set_item(mmf_t *m, int64_t i, int value) {
  CHECK_VALID(m);
  if (!is_writable(m))
    return readonly_error();
  if (i < 0)
    i += m->size;
  if (i < 0 || i >= m->size)
    return fail(MMF_EINDEX, "mmap index out of range");
  if (value < 0 || value > 255)
    return fail(MMF_EVALUE, "mmap item value must be in range(0, 256)");
  m->data[i] = (uint8_t)value;
  return 0;
}

/* PySlice_Unpack + PySlice_AdjustIndices: fills start/step, returns the
 * slice length, or MMF_EVALUE for a zero step. */
static int64_t adjust_slice(int64_t size, const int64_t *startp,
                            const int64_t *stopp, const int64_t *stepp,
                            int64_t *startout, int64_t *stepout) {
  int64_t step = stepp != NULL ? *stepp : 1;
  int64_t start, stop;
  if (step == 0)
    return fail(MMF_EVALUE, "slice step cannot be zero");
  if (step < -INT64_MAX)
    step = -INT64_MAX; /* so that -step cannot overflow */
  start = startp != NULL ? *startp : (step < 0 ? INT64_MAX : 0);
  stop = stopp != NULL ? *stopp : (step < 0 ? INT64_MIN : INT64_MAX);

  if (start < 0) {
    start += size;
    if (start < 0)
      start = step < 0 ? -1 : 0;
  } else if (start >= size) {
    start = step < 0 ? size - 1 : size;
  }
  if (stop < 0) {
    stop += size;
    if (stop < 0)
      stop = step < 0 ? -1 : 0;
  } else if (stop >= size) {
    stop = step < 0 ? size - 1 : size;
  }
  *startout = start;
  *stepout = step;
  if (step < 0) {
    if (stop < start)
      return (start - stop - 1) / (-step) + 1;
  } else if (start < stop) {
    return (stop - start - 1) / step + 1;
  }
  return 0;
}

int mmf_get_slice(const mmf_t *m, const int64_t *startp, const int64_t *stopp,
                  const int64_t *stepp, void *buf, size_t cap, int64_t *n) {
  int64_t start = 0, step = 1, len, i;
  uint8_t *out = buf;
  CHECK_VALID(m);
  len = adjust_slice(m->size, startp, stopp, stepp, &start, &step);
  if (len < 0)
    return (int)len;
  if ((uint64_t)len > cap)
    return too_small();
  if (step == 1 && len > 0)
    memcpy(out, m->data + start, (size_t)len);
  else
    for (i = 0; i < len; i++)
      out[i] = m->data[start + i * step];
  if (n != NULL)
    *n = len;
  return 0;
}

int mmf_set_slice(mmf_t *m, const int64_t *startp, const int64_t *stopp,
                  const int64_t *stepp, const void *data, size_t len) {
  int64_t start = 0, step = 1, slicelen, i;
  const uint8_t *in = data;
  CHECK_VALID(m);
  if (!is_writable(m))
    return readonly_error();
  slicelen = adjust_slice(m->size, startp, stopp, stepp, &start, &step);
  if (slicelen < 0)
    return (int)slicelen;
  if ((uint64_t)slicelen != len)
    return fail(MMF_EINDEX, "mmap slice assignment is wrong size");
  if (step == 1 && slicelen > 0)
    memcpy(m->data + start, in, (size_t)slicelen);
  else
    for (i = 0; i < slicelen; i++)
      m->data[start + i * step] = in[i];
  return 0;
}

/* ---- Whole-map operations ------------------------------------------------ */

int mmf_move(mmf_t *m, int64_t dest, int64_t src, int64_t count) {
  CHECK_VALID(m);
  if (!is_writable(m))
    return readonly_error();
  if (dest < 0 || src < 0 || count < 0 || m->size - dest < count ||
      m->size - src < count)
    return fail(MMF_EVALUE, "source, destination, or count out of range");
  if (count > 0)
    memmove(m->data + dest, m->data + src, (size_t)count);
  return 0;
}

int mmf_flush(mmf_t *m, int64_t offset, int64_t size) {
  return mmf_flush_flags(m, offset, size, MS_SYNC);
}

int mmf_flush_flags(mmf_t *m, int64_t offset, int64_t size, int flags) {
  CHECK_VALID(m);
  if (offset < 0)
    return fail(MMF_EVALUE, "flush values out of range");
  if (size == -1)
    size = m->size - offset;
  if (size < 0 || m->size - offset < size)
    return fail(MMF_EVALUE, "flush values out of range");
  if (m->access == MMF_ACCESS_READ || m->access == MMF_ACCESS_COPY)
    return 0;
  if (mmf__sys.msync(m->data + offset, (size_t)size, flags) != 0)
    return fail_os("msync");
  if (m->hook != NULL && (m->flags & MAP_SHARED) && !(m->flags & MAP_ANONYMOUS))
    m->hook(m->hook_ctx, m->offset + offset, size);
  return 0;
}

int mmf_madvise(mmf_t *m, int option, int64_t start, const int64_t *lengthp) {
  int64_t length;
  CHECK_VALID(m);
  if (start < 0 || start >= m->size)
    return fail(MMF_EVALUE, "madvise start out of bounds");
  length = lengthp != NULL ? *lengthp : m->size;
  if (length < 0)
    return fail(MMF_EVALUE, "madvise length invalid");
  if (INT64_MAX - start < length)
    return fail(MMF_EOVERFLOW, "madvise length too large");
  if (start + length > m->size)
    length = m->size - start;
  if (mmf__sys.madvise(m->data + start, (size_t)length, option) != 0)
    return fail_os("madvise");
  return 0;
}

/* Grows or shrinks a map inside its reservation; the base never moves. */
static int resize_reserved(mmf_t *m, int64_t newsize) {
  int64_t old_end = round_up_page(m->size), new_end = round_up_page(newsize);
  int anon = (m->flags & MAP_ANONYMOUS) != 0;
  void *p;
  if (newsize == 0) {
    errno = EINVAL; /* what mremap says to a zero length */
    return fail_os("mremap");
  }
  if (new_end > old_end) {
    p = mmf__sys.mmap(m->data + old_end, (size_t)(new_end - old_end), m->prot,
                      m->flags | MAP_FIXED, anon ? -1 : m->fd,
                      anon ? 0 : (off_t)(m->offset + old_end));
    if (p == MAP_FAILED) {
      int rc = fail_os("mmap");
      /* A failed MAP_FIXED may have unmapped the range: keep it reserved. */
      reserve_space(m->data + old_end, (size_t)(new_end - old_end));
      return rc;
    }
  } else if (new_end < old_end) {
    p = reserve_space(m->data + new_end, (size_t)(old_end - new_end));
    if (p == MAP_FAILED)
      return fail_os("mmap");
  }
  m->size = newsize;
  return 0;
}

#ifdef MAPKV_NO_MREMAP
/* The portable path: a new mapping, private contents copied, old unmapped. */
static int resize_moving(mmf_t *m, int64_t newsize) {
  int anon = (m->flags & MAP_ANONYMOUS) != 0;
  void *p;
  p = mmf__sys.mmap(NULL, (size_t)newsize, m->prot, m->flags, anon ? -1 : m->fd,
                    anon ? 0 : (off_t)m->offset);
  if (p == MAP_FAILED)
    return fail_os("mmap");
  /* A shared file map sees the file; anything else lives only in memory. */
  if (anon || (m->flags & MAP_PRIVATE))
    memcpy(p, m->data, (size_t)(newsize < m->size ? newsize : m->size));
  mmf__sys.munmap(m->data, (size_t)(m->reserve > 0 ? m->reserve : m->size));
  m->data = p;
  m->size = newsize;
  m->reserve = 0;
  return 0;
}
#else
static int resize_moving(mmf_t *m, int64_t newsize) {
  int64_t old_end = round_up_page(m->size);
  void *p = mmf__sys.mremap_maymove(m->data, (size_t)m->size, (size_t)newsize);
  if (p == MAP_FAILED)
    return fail_os("mremap");
  /* Leaving a reservation: free what remains of the old placeholder. */
  if (m->reserve > old_end && p != (void *)m->data)
    mmf__sys.munmap(m->data + old_end, (size_t)(m->reserve - old_end));
  m->data = p;
  m->size = newsize;
  m->reserve = 0;
  return 0;
}
#endif

int mmf_resize(mmf_t *m, int64_t newsize) {
  CHECK_VALID(m);
  if (m->exports > 0)
    return fail(MMF_EBUFFER, "mmap can't resize with extant buffers exported.");
  if (!m->trackfd)
    return fail(MMF_EVALUE, "mmap can't resize with trackfd=False.");
  if (m->access != MMF_ACCESS_WRITE && m->access != MMF_ACCESS_DEFAULT)
    return fail(MMF_ETYPE,
                "mmap can't resize a readonly or copy-on-write memory map.");
  if (newsize < 0 || INT64_MAX - newsize < m->offset)
    return fail(MMF_EVALUE, "new size out of range");
  if (m->fd == -1 && !(m->flags & MAP_PRIVATE) && newsize > m->size)
    return fail(MMF_EVALUE,
                "mmap: can't expand a shared anonymous mapping on Linux");
  if (m->fd != -1 && mmf__sys.ftruncate(m->fd, (off_t)(m->offset + newsize)))
    return fail_os("ftruncate");
  if (m->reserve > 0 && round_up_page(newsize) <= m->reserve)
    return resize_reserved(m, newsize);
  if (newsize == 0) {
    errno = EINVAL;
    return fail_os("mremap");
  }
  return resize_moving(m, newsize);
}

/* Extension: grows a map to follow a file another process grew. */
int mmf_follow(mmf_t *m, int64_t newsize) {
  struct stat st;
  int64_t old_end, new_end;
  void *p;
  CHECK_VALID(m);
  if (m->fd == -1)
    return fail(MMF_EVALUE, "mmap can't follow without a file (trackfd=False "
                            "or anonymous)");
  if (newsize < m->size)
    return fail(MMF_EVALUE, "mmap can only follow a file that grew");
  if (m->reserve == 0 || INT64_MAX - newsize < m->offset ||
      round_up_page(newsize) > m->reserve)
    return fail(MMF_EVALUE, "new size beyond the address reservation");
  if (mmf__sys.fstat(m->fd, &st) != 0)
    return fail_os("fstat");
  if ((int64_t)st.st_size - m->offset < newsize)
    return fail(MMF_EVALUE, "mmap length is greater than file size");
  old_end = round_up_page(m->size);
  new_end = round_up_page(newsize);
  if (new_end > old_end) {
    p = mmf__sys.mmap(m->data + old_end, (size_t)(new_end - old_end), m->prot,
                      m->flags | MAP_FIXED, m->fd,
                      (off_t)(m->offset + old_end));
    if (p == MAP_FAILED) {
      int rc = fail_os("mmap");
      reserve_space(m->data + old_end, (size_t)(new_end - old_end));
      return rc;
    }
  }
  m->size = newsize;
  return 0;
}

/* ---- Buffers, introspection, hooks --------------------------------------- */

int mmf_data(const mmf_t *m, void **ptr, int64_t *len) {
  CHECK_VALID(m);
  if (ptr != NULL)
    *ptr = m->data;
  if (len != NULL)
    *len = m->size;
  return 0;
}

int mmf_buffer_acquire(mmf_t *m, void **ptr, int64_t *len, int *readonly) {
  CHECK_VALID(m);
  if (ptr != NULL)
    *ptr = m->data;
  if (len != NULL)
    *len = m->size;
  if (readonly != NULL)
    *readonly = m->access == MMF_ACCESS_READ;
  m->exports++;
  return 0;
}

void mmf_buffer_release(mmf_t *m) {
  if (m != NULL && m->exports > 0)
    m->exports--;
}

int mmf_repr(const mmf_t *m, char *buf, size_t cap) {
  static const char *const names[] = {"ACCESS_DEFAULT", "ACCESS_READ",
                                      "ACCESS_WRITE", "ACCESS_COPY"};
  if (mmf_closed(m))
    return snprintf(buf, cap, "<mmap.mmap closed=True>");
  return snprintf(buf, cap,
                  "<mmap.mmap closed=False, access=%s, length=%lld, "
                  "pos=%lld, offset=%lld>",
                  names[m->access], (long long)m->size, (long long)m->pos,
                  (long long)m->offset);
}

int mmf_access(const mmf_t *m) {
  CHECK_VALID(m);
  return m->access;
}

int64_t mmf_offset(const mmf_t *m) {
  CHECK_VALID(m);
  return m->offset;
}

int64_t mmf_reserved(const mmf_t *m) {
  CHECK_VALID(m);
  return m->reserve;
}

int mmf_set_flush_hook(mmf_t *m, mmf_flush_hook_fn fn, void *ctx) {
  CHECK_VALID(m);
  m->hook = fn;
  m->hook_ctx = ctx;
  return 0;
}
