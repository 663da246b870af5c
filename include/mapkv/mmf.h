/*
 * mmf.h — the mapping core of mapkv: a C reproduction of the memory-mapped
 * file object documented by Python's `mmap` module (Unix build).
 *
 * Every method of Python's `mmap.mmap` has an `mmf_` function of the same
 * name and the same semantics, following CPython's Modules/mmapmodule.c
 * (current main). Where Python raises an exception, the function returns a
 * negative error code, one per exception class:
 *
 *   ValueError     MMF_EVALUE     (and MMF_ECLOSED: "mmap closed or invalid")
 *   TypeError      MMF_ETYPE      (writes to a read-only map, resize of a
 *                                  copy map)
 *   IndexError     MMF_EINDEX
 *   OverflowError  MMF_EOVERFLOW
 *   BufferError    MMF_EBUFFER    (close or resize while buffers are exported)
 *   OSError        -errno         (the errno of the failing system call)
 *
 * mmf_strerror() turns any code into text; mmf_errmsg() returns the message
 * of the last failure on the calling thread, naming the exact condition in
 * Python's words (e.g. "mmap length is greater than file size").
 *
 * Python's `None` for an optional integer argument is a NULL pointer here.
 *
 * Out of scope: Windows behaviour (tagname), and `set_name`.
 *
 * Extensions that do not change the Python behaviour:
 *   - mmf_data(): the mapped bytes for zero-copy access;
 *   - mmf_open_reserved(): reserve address space at open so that resize()
 *     within the reservation grows in place and the base never moves;
 *   - mmf_follow(): grow a map in place, inside its reservation, to follow
 *     a file another process grew (read-only maps too);
 *   - mmf_set_flush_hook(): a test hook that sees every range flushed.
 *
 * Threads: an mmf_t is not internally locked; callers serialise access to
 * one handle (the storage engine does). Distinct handles are independent.
 */
#ifndef MAPKV_MMF_H
#define MAPKV_MMF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MAPKV_BUILDING) && defined(__GNUC__)
#define MMF_API __attribute__((visibility("default")))
#else
#define MMF_API
#endif

/** Opaque handle of one mapping. */
typedef struct mmf mmf_t;

/* ---- Constants (Python: mmap.ACCESS_*, MAP_*, PROT_*, MADV_*, MS_*) ---- */

#define MMF_ACCESS_DEFAULT 0
#define MMF_ACCESS_READ    1
#define MMF_ACCESS_WRITE   2
#define MMF_ACCESS_COPY    3

#define MMF_MAP_SHARED    MAP_SHARED
#define MMF_MAP_PRIVATE   MAP_PRIVATE
#define MMF_MAP_ANONYMOUS MAP_ANONYMOUS
#ifdef MAP_POPULATE
#define MMF_MAP_POPULATE MAP_POPULATE
#endif
#ifdef MAP_NORESERVE
#define MMF_MAP_NORESERVE MAP_NORESERVE
#endif

#define MMF_PROT_READ  PROT_READ
#define MMF_PROT_WRITE PROT_WRITE
#define MMF_PROT_EXEC  PROT_EXEC

#define MMF_MS_SYNC       MS_SYNC
#define MMF_MS_ASYNC      MS_ASYNC
#define MMF_MS_INVALIDATE MS_INVALIDATE

#define MMF_MADV_NORMAL     MADV_NORMAL
#define MMF_MADV_RANDOM     MADV_RANDOM
#define MMF_MADV_SEQUENTIAL MADV_SEQUENTIAL
#define MMF_MADV_WILLNEED   MADV_WILLNEED
#define MMF_MADV_DONTNEED   MADV_DONTNEED
#ifdef MADV_FREE
#define MMF_MADV_FREE MADV_FREE
#endif
#ifdef MADV_REMOVE
#define MMF_MADV_REMOVE MADV_REMOVE
#endif
#ifdef MADV_DONTFORK
#define MMF_MADV_DONTFORK MADV_DONTFORK
#define MMF_MADV_DOFORK   MADV_DOFORK
#endif
#ifdef MADV_MERGEABLE
#define MMF_MADV_MERGEABLE   MADV_MERGEABLE
#define MMF_MADV_UNMERGEABLE MADV_UNMERGEABLE
#endif
/** The size of a large page (a PMD on x86-64): reservations of at least
 * this size are aligned to it (mmf_open_reserved()). */
#define MMF_HUGE_PAGE ((int64_t)2 << 20)

#ifdef MADV_HUGEPAGE
#define MMF_MADV_HUGEPAGE   MADV_HUGEPAGE
#define MMF_MADV_NOHUGEPAGE MADV_NOHUGEPAGE
#endif
#ifdef MADV_DONTDUMP
#define MMF_MADV_DONTDUMP MADV_DONTDUMP
#define MMF_MADV_DODUMP   MADV_DODUMP
#endif
#ifdef MADV_HWPOISON
#define MMF_MADV_HWPOISON MADV_HWPOISON
#endif

/** Python's mmap.PAGESIZE: sysconf(_SC_PAGESIZE). */
MMF_API int64_t mmf_pagesize(void);
/** Python's mmap.ALLOCATIONGRANULARITY: equal to the page size on Unix. */
MMF_API int64_t mmf_allocationgranularity(void);

/* ---- Errors ---------------------------------------------------------------
 * Library codes live in a reserved range below any errno value, and
 * outside Berkeley DB's (-30800 to -30999) and LMDB's (-30799 to -30780),
 * as lmdb.h does; an OS failure is returned as -errno. */
#define MMF_ERRNO_MAP(X)                                                       \
  X(MMF_EVALUE, -30650, "invalid value (ValueError)")                          \
  X(MMF_ETYPE, -30651, "operation not allowed on this map (TypeError)")        \
  X(MMF_EINDEX, -30652, "index out of range (IndexError)")                     \
  X(MMF_EOVERFLOW, -30653, "value out of range (OverflowError)")               \
  X(MMF_EBUFFER, -30654, "exported buffers exist (BufferError)")               \
  X(MMF_ECLOSED, -30655, "mmap closed or invalid")                             \
  X(MMF_ENOMEM, -30656, "out of memory")

enum mmf_error {
#define MMF_ERR_ENUM(name, value, text) name = value,
  MMF_ERRNO_MAP(MMF_ERR_ENUM)
#undef MMF_ERR_ENUM
};

/** Static text for any return code: an MMF_E* code, -errno, or 0. */
MMF_API const char *mmf_strerror(int code);

/**
 * The message of the last failure on the calling thread, naming the exact
 * condition (Python's message, or "<syscall>: <strerror>" for OS errors).
 * Valid until the next mmf_* call on this thread. Never NULL.
 */
MMF_API const char *mmf_errmsg(void);

/** 1 if code is an OS error (-errno), 0 otherwise. */
MMF_API int mmf_is_oserror(int code);

/* ---- Construction and destruction ---------------------------------------- */

/**
 * Python: mmap(fileno, length, flags, prot, access, offset, trackfd=...).
 *
 * @param out     receives the new handle on success (untouched on failure)
 * @param fd      an open file descriptor, or -1 for anonymous memory
 * @param length  bytes to map; 0 = the whole file from offset (regular files)
 * @param flags   MMF_MAP_SHARED (Python's default) or MMF_MAP_PRIVATE, plus
 *                other MAP_* flags, passed to mmap(2)
 * @param prot    PROT_* bits; Python's default is PROT_READ|PROT_WRITE
 * @param access  MMF_ACCESS_DEFAULT / READ / WRITE / COPY
 * @param offset  file offset of the map, a multiple of ALLOCATIONGRANULARITY
 * @param trackfd nonzero: keep a dup of fd (needed by size() and resize())
 *
 * Errors: MMF_EOVERFLOW (negative length or offset), MMF_EVALUE (access
 * together with non-default flags/prot; invalid access; empty file; offset or
 * length beyond the file), -errno from dup/fstat/mmap (e.g. -EINVAL for an
 * unaligned offset or mmap(-1, 0), -EACCES for a writable shared map of a
 * read-only descriptor), MMF_ENOMEM.
 */
MMF_API int mmf_open(mmf_t **out, int fd, int64_t length, int flags, int prot,
                     int access, int64_t offset, int trackfd);

/**
 * mmf_open() plus an address-space reservation of `reserve` bytes (rounded
 * up to pages; 0 = none). While the map's length stays within the
 * reservation, resize() grows and shrinks in place: the address returned by
 * mmf_data() never changes. A resize beyond the reservation moves the map
 * like a plain one and drops the reservation (mmf_reserved() becomes 0).
 * Reserved but unmapped address space is inaccessible (PROT_NONE), costs no
 * memory, and is returned at close. A reservation of 2 MiB or more starts
 * at an address congruent to `offset` modulo 2 MiB, so that the kernel can
 * map 2 MiB page-cache folios with one page-table entry each.
 */
MMF_API int mmf_open_reserved(mmf_t **out, int fd, int64_t length, int flags,
                              int prot, int access, int64_t offset, int trackfd,
                              int64_t reserve);

/**
 * Python: close(). Unmaps and closes the kept descriptor; no msync.
 * Idempotent. Errors: MMF_EBUFFER while buffers are exported (the map stays
 * open). The handle stays valid for mmf_closed() and friends until
 * mmf_free(). A NULL handle is a no-op.
 */
MMF_API int mmf_close(mmf_t *m);

/** Destroys a handle, closing it first even if buffers are exported
 * (Python's deallocation). NULL is a no-op. */
MMF_API void mmf_free(mmf_t *m);

/** Python: the `closed` property. 1 if closed (or m is NULL), else 0. */
MMF_API int mmf_closed(const mmf_t *m);

/* ---- Sizes and position -------------------------------------------------- */

/** Python: len(m). The map length (>= 0) or MMF_ECLOSED. */
MMF_API int64_t mmf_len(const mmf_t *m);

/**
 * Python: size(). The size of the whole underlying file (fstat of the kept
 * descriptor), the map length for anonymous maps, or an error: MMF_ECLOSED,
 * MMF_EVALUE ("can't get size with trackfd=False"), -errno from fstat.
 */
MMF_API int64_t mmf_size(const mmf_t *m);

/** Python: tell(). The position (which may exceed len after a shrinking
 * resize) or MMF_ECLOSED. */
MMF_API int64_t mmf_tell(const mmf_t *m);

/** Python: seekable(). Always 1, even on a closed map. */
MMF_API int mmf_seekable(const mmf_t *m);

/**
 * Python: seek(pos, whence). whence is SEEK_SET, SEEK_CUR or SEEK_END.
 * On success the new position is stored in *newpos (if not NULL).
 * Errors: MMF_ECLOSED, MMF_EVALUE ("unknown seek type", "seek out of range").
 */
MMF_API int mmf_seek(mmf_t *m, int64_t pos, int whence, int64_t *newpos);

/* ---- Stream access at the position --------------------------------------- */

/**
 * Python: read(n). n < 0 means "to the end". Copies min(n, len - pos) bytes
 * into buf, advances the position and stores the count in *nread.
 * C-specific: if buf's capacity `cap` is smaller than that count, nothing is
 * read and MMF_EVALUE ("read buffer too small") is returned.
 * Errors: MMF_ECLOSED, MMF_EVALUE.
 */
MMF_API int mmf_read(mmf_t *m, int64_t n, void *buf, size_t cap,
                     int64_t *nread);

/** Python: read_byte(). The byte (0..255) or MMF_ECLOSED, MMF_EVALUE
 * ("read byte out of range"). */
MMF_API int mmf_read_byte(mmf_t *m);

/**
 * Python: readline(). Copies bytes from the position up to and including the
 * next '\n' (or to the end), advances the position, stores the count in
 * *nread. Capacity rule as in mmf_read(). Errors: MMF_ECLOSED, MMF_EVALUE.
 */
MMF_API int mmf_readline(mmf_t *m, void *buf, size_t cap, int64_t *nread);

/**
 * Python: write(data). All or nothing at the position; returns the number of
 * bytes written (== len) or: MMF_ECLOSED, MMF_ETYPE (read-only map),
 * MMF_EVALUE ("data out of range").
 */
MMF_API int64_t mmf_write(mmf_t *m, const void *data, size_t len);

/** Python: write_byte(b). Errors: MMF_EOVERFLOW (b outside 0..255),
 * MMF_ECLOSED, MMF_ETYPE, MMF_EVALUE ("write byte out of range"). */
MMF_API int mmf_write_byte(mmf_t *m, int value);

/* ---- Search -------------------------------------------------------------- */

/**
 * Python: find(sub, start, end). start NULL = the position; end is used only
 * when start is given (NULL = len). Negative indices count from the end and
 * are clamped to [0, len]. *result receives the absolute index of the first
 * match inside [start, end), or -1. An empty needle matches at start, or -1
 * when start lies beyond len. Does not move the position.
 * Errors: MMF_ECLOSED.
 */
MMF_API int mmf_find(const mmf_t *m, const void *sub, size_t sublen,
                     const int64_t *start, const int64_t *end, int64_t *result);

/** Python: rfind(sub, start, end): as mmf_find(), last match wholly inside
 * [start, end); an empty needle matches at end. */
MMF_API int mmf_rfind(const mmf_t *m, const void *sub, size_t sublen,
                      const int64_t *start, const int64_t *end,
                      int64_t *result);

/* ---- Items and slices ---------------------------------------------------- */

/** Python: m[i]. The byte value or MMF_ECLOSED, MMF_EINDEX. */
MMF_API int mmf_get_item(const mmf_t *m, int64_t i);

/** Python: m[i] = value. Errors, in Python's order: MMF_ECLOSED, MMF_ETYPE
 * (read-only), MMF_EINDEX, MMF_EVALUE (value outside 0..255). */
MMF_API int mmf_set_item(mmf_t *m, int64_t i, int value);

/**
 * Python: m[start:stop:step]. NULL = None. Slice indices are adjusted as
 * Python does (negative from the end, clamped). Copies the selected bytes
 * into buf (capacity rule as in mmf_read()) and stores the count in *n.
 * Errors: MMF_ECLOSED, MMF_EVALUE ("slice step cannot be zero").
 */
MMF_API int mmf_get_slice(const mmf_t *m, const int64_t *start,
                          const int64_t *stop, const int64_t *step, void *buf,
                          size_t cap, int64_t *n);

/**
 * Python: m[start:stop:step] = data. The map never changes length: len must
 * equal the slice length. Errors: MMF_ECLOSED, MMF_ETYPE (read-only),
 * MMF_EVALUE (step 0), MMF_EINDEX ("mmap slice assignment is wrong size").
 */
MMF_API int mmf_set_slice(mmf_t *m, const int64_t *start, const int64_t *stop,
                          const int64_t *step, const void *data, size_t len);

/* ---- Whole-map operations ------------------------------------------------ */

/** Python: move(dest, src, count) (memmove). Errors: MMF_ECLOSED, MMF_ETYPE,
 * MMF_EVALUE ("source, destination, or count out of range"). */
MMF_API int mmf_move(mmf_t *m, int64_t dest, int64_t src, int64_t count);

/**
 * Python: flush(offset=0, size=-1). size -1 = to the end. msync(MS_SYNC) of
 * [offset, offset+size); offset must be page-aligned (else -EINVAL). READ and
 * COPY maps check the range and do nothing. Errors: MMF_ECLOSED, MMF_EVALUE
 * ("flush values out of range"), -errno from msync.
 */
MMF_API int mmf_flush(mmf_t *m, int64_t offset, int64_t size);

/** flush() with msync flags (MMF_MS_SYNC, MMF_MS_ASYNC, MMF_MS_INVALIDATE),
 * as in CPython main's flush(..., flags=). Invalid flags give -EINVAL. */
MMF_API int mmf_flush_flags(mmf_t *m, int64_t offset, int64_t size, int flags);

/**
 * Python: madvise(option, start=0, length=None). length NULL = len.
 * Errors: MMF_ECLOSED, MMF_EVALUE ("madvise start out of bounds", "madvise
 * length invalid"), MMF_EOVERFLOW ("madvise length too large"), -errno.
 */
MMF_API int mmf_madvise(mmf_t *m, int option, int64_t start,
                        const int64_t *length);

/**
 * Python: resize(newsize). Resizes the file (ftruncate to offset+newsize)
 * and then the map. The position is not clamped. Errors, in Python's order:
 * MMF_ECLOSED, MMF_EBUFFER, MMF_EVALUE ("mmap can't resize with
 * trackfd=False"), MMF_ETYPE (READ or COPY map), MMF_EVALUE ("new size out of
 * range", growing a shared anonymous map), -errno from ftruncate/mremap (as in
 * Python, a failed remap after a successful ftruncate leaves the file at its
 * new size; resize(0) is -EINVAL after truncating the file to offset).
 * Built with MAPKV_NO_MREMAP, the map is rebuilt with mmap/munmap instead
 * (same results; private contents are copied).
 */
MMF_API int mmf_resize(mmf_t *m, int64_t newsize);

/**
 * Extension (no Python counterpart): grows the map to `newsize` bytes in
 * place, inside its reservation, to follow a file that another process (or
 * another handle) has grown — without changing the file, and for maps of
 * any access, READ included. The base never moves, so pointers into the
 * map stay valid, and the bytes already mapped stay mapped while the rest
 * is added: other threads may read the map meanwhile (the caller
 * serialises calls of mmf_follow on one handle). Errors: MMF_ECLOSED;
 * MMF_EVALUE for a map without a kept file descriptor, a smaller size,
 * a size beyond the reservation (or a map without one) and a size past the
 * end of the file ("mmap length is greater than file size"); -errno from
 * fstat/mmap (the map is unchanged).
 */
MMF_API int mmf_follow(mmf_t *m, int64_t newsize);

/* ---- Buffer protocol and zero-copy access -------------------------------- */

/**
 * The mapped bytes: *ptr and *len (either may be NULL). The pointer is valid
 * until the next resize (which may move a map opened without reservation)
 * or close. Errors: MMF_ECLOSED.
 */
MMF_API int mmf_data(const mmf_t *m, void **ptr, int64_t *len);

/**
 * Python's buffer export (memoryview(m)): like mmf_data(), and counts an
 * export: close() and resize() fail with MMF_EBUFFER until every export is
 * released. *readonly (may be NULL) is 1 for ACCESS_READ maps.
 */
MMF_API int mmf_buffer_acquire(mmf_t *m, void **ptr, int64_t *len,
                               int *readonly);
/** Releases one export taken by mmf_buffer_acquire(). */
MMF_API void mmf_buffer_release(mmf_t *m);

/** Python: repr(m), written NUL-terminated into buf (truncated to cap).
 * Returns the full length of the text (as snprintf). */
MMF_API int mmf_repr(const mmf_t *m, char *buf, size_t cap);

/** The access mode after derivation from prot (Python's repr shows it), or
 * MMF_ECLOSED. */
MMF_API int mmf_access(const mmf_t *m);

/** The file offset the map starts at, or MMF_ECLOSED. */
MMF_API int64_t mmf_offset(const mmf_t *m);

/** The reserved address space in bytes (0 if none), or MMF_ECLOSED. */
MMF_API int64_t mmf_reserved(const mmf_t *m);

/* ---- Fault injection ----------------------------------------------------- */

/**
 * Called after every successful msync of a shared file-backed map with the file
 * range made durable: `file_offset` (map offset + flush offset) and `length`
 * as passed to msync. For tests that rebuild the file a power cut would leave.
 * NULL removes the hook. The hook must not call back into this handle.
 */
typedef void (*mmf_flush_hook_fn)(void *ctx, int64_t file_offset,
                                  int64_t length);
MMF_API int mmf_set_flush_hook(mmf_t *m, mmf_flush_hook_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* MAPKV_MMF_H */
