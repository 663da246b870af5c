/*
 * mapkv.h — the mapkv storage engine: a crash-safe, log-structured
 * key-value store in one memory-mapped file.
 *
 * A store is one file: a header page, then records appended one after
 * another (FORMAT.md gives every byte). Puts, deletes and atomic batches
 * append records; a hash index in memory points at the newest record of
 * each key. Every record carries an xxHash checksum that is verified before
 * any byte of it is returned. Recovery on open verifies every record, keeps
 * every complete, intact batch, never drops what a clean close or a
 * writer's open made durable, and reports what it found: a key whose newest
 * batch damage cost answers MAPKV_ECORRUPT, never an older value.
 *
 * Conventions (as in lmdb.h):
 *  - Functions return 0 on success or a negative error code: one of the
 *    MAPKV_* codes below, or -errno for an operating-system failure (e.g.
 *    -ENOSPC, -EIO). mapkv_strerror() covers both; mapkv_errmsg() gives the
 *    message of the last failure on the calling thread, with context
 *    ("record at offset 81920: checksum mismatch").
 *  - Output parameters are written only on success.
 *  - The library never prints, exits or aborts, and never reads outside its
 *    mapping whatever a file contains.
 *  - A handle is thread-safe: one writer at a time (writers queue on an
 *    internal mutex) and any number of concurrent readers, which do not
 *    wait for commits (a get sees a batch all or nothing). Across processes,
 *    one process may hold a store open for writing; read-only opens by other
 *    processes are always allowed and see the state committed at their open.
 *
 * Ownership: pointers passed in are only read during the call (the library
 * copies what it keeps). Pointers handed out are owned by the library; each
 * function states how long they stay valid.
 *
 * Handles: every batch and cursor of a handle must end (commit, abort,
 * close) before the handle is closed (mapkv_close() refuses with
 * MAPKV_EBUSY otherwise), and no other call may be running on it. A closed
 * handle must not be used: the calls that begin something (batches,
 * cursors) and mapkv_close() itself tell a closed handle from an open one
 * and fail with MAPKV_EINVAL, but gets and puts on a closed handle read
 * freed memory.
 *
 * The store file (as with LMDB and every store on a mapping): it must not
 * be truncated, nor written by anything but the library, while open; a
 * read of bytes the file no longer has raises SIGBUS in the reading
 * process (the library installs no signal handlers: they belong to the
 * application). A file renamed over the store, or the store removed, while
 * a writer has it open leaves that writer writing to a file no path
 * names: mapkv_sync(), mapkv_compact() and mapkv_close() then fail with
 * MAPKV_EMOVED. A symbolic link at the store's path names the store it
 * points at.
 */
#ifndef MAPKV_MAPKV_H
#define MAPKV_MAPKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MAPKV_BUILDING) && defined(__GNUC__)
#define MAPKV_API __attribute__((visibility("default")))
#else
#define MAPKV_API
#endif

/** Library version: the release this header belongs to (the build reads
 * it from here; it is defined nowhere else). */
#define MAPKV_VERSION_MAJOR 0
#define MAPKV_VERSION_MINOR 2
#define MAPKV_VERSION_PATCH 0
#define MAPKV__STR_(x)      #x
#define MAPKV__STR(x)       MAPKV__STR_(x)
/** "MAJOR.MINOR.PATCH" of this header, e.g. "0.1.0". */
#define MAPKV_VERSION_STRING                                                   \
  MAPKV__STR(MAPKV_VERSION_MAJOR)                                              \
  "." MAPKV__STR(MAPKV_VERSION_MINOR) "." MAPKV__STR(MAPKV_VERSION_PATCH)
/** The newest on-disk format version this library reads and writes. */
#define MAPKV_FORMAT_VERSION 2

/** Hard limits of the format (the per-store limits default lower). */
#define MAPKV_KEY_MAX           65535u      /**< bytes in a key */
#define MAPKV_VALUE_MAX         0x7fffffffu /**< bytes in a value */
#define MAPKV_FILE_MAX          (1ull << 40) /**< bytes in a store file (1 TiB) */
#define MAPKV_DEFAULT_KEY_MAX   4096u        /**< default max_key_size */
#define MAPKV_DEFAULT_VALUE_MAX (64u << 20) /**< default max_value_size */

/**
 * The version of the library in use at run time, "MAJOR.MINOR.PATCH" (a
 * static string, never NULL). A program built against one header and run
 * with another shared library can compare it with MAPKV_VERSION_STRING;
 * libraries of one major version are compatible with each other.
 */
MAPKV_API const char *mapkv_version(void);

/* ---- Errors -------------------------------------------------------------- */

#define MAPKV_ERRNO_MAP(X)                                                     \
  X(MAPKV_NOTFOUND, -30700, "key not found")                                   \
  X(MAPKV_EINVAL, -30701, "invalid argument")                                  \
  X(MAPKV_ENOTDB, -30702, "not a mapkv store")                                 \
  X(MAPKV_EVERSION, -30703, "store written by a newer format version")         \
  X(MAPKV_ETRUNCATED, -30704, "store file is truncated")                       \
  X(MAPKV_ECORRUPT, -30705, "store data is damaged (checksum mismatch)")       \
  X(MAPKV_EKEYSIZE, -30706, "key is larger than the store's limit")            \
  X(MAPKV_EVALSIZE, -30707, "value is larger than the store's limit")          \
  X(MAPKV_EREADONLY, -30708, "store is open read-only")                        \
  X(MAPKV_ELOCKED, -30709, "store is open for writing by another process")     \
  X(MAPKV_EFULL, -30710, "store reached its maximum size")                     \
  X(MAPKV_EBUFSMALL, -30711, "buffer too small for the value")                 \
  X(MAPKV_ECHANGED, -30712, "store was compacted while a cursor was open")     \
  X(MAPKV_ENOMEM, -30713, "out of memory")                                     \
  X(MAPKV_EMOVED, -30715, "store file was replaced or removed while open")     \
  X(MAPKV_EBUSY, -30716, "handle still has open batches or cursors")

enum mapkv_error {
#define MAPKV_ERR_ENUM(name, value, text) name = value,
  MAPKV_ERRNO_MAP(MAPKV_ERR_ENUM)
#undef MAPKV_ERR_ENUM
};

/** No longer returned: failures of the mapping are -errno, MAPKV_ENOMEM or
 * MAPKV_EINVAL. Kept so that code naming it still compiles. */
#define MAPKV_EMAP (-30714)

/** Static text for a return code: a MAPKV_* code, -errno, or 0. */
MAPKV_API const char *mapkv_strerror(int code);

/** The message of the last failure on the calling thread, with context.
 * Valid until the next mapkv_* call on this thread. Never NULL. */
MAPKV_API const char *mapkv_errmsg(void);

/* ---- Opening and closing ------------------------------------------------- */

/** Opaque store handle. */
typedef struct mapkv mapkv_t;

/** When commits become durable. */
enum mapkv_sync_mode {
  /** Every put, delete and batch commit returns only after its bytes are on
   * stable storage (one msync of the pages it wrote). The default. */
  MAPKV_SYNC_COMMIT = 0,
  /** The operating system writes data back when it chooses; a crash of the
   * process loses nothing, a power cut may lose recent commits. */
  MAPKV_SYNC_NONE = 1,
  /** Like NONE, but mapkv_sync() is the caller's durability barrier. */
  MAPKV_SYNC_EXPLICIT = 2
};

/** Open flags. */
#define MAPKV_CREATE 0x1u /**< create the store if the file does not exist */
#define MAPKV_RDONLY 0x2u /**< open read-only (no lock, no writes) */
/** With MAPKV_RDONLY, a salvage open: every open verifies every checksum,
 * but this one also refuses nothing that the others refuse to protect the
 * file (a log its header does not match, records after the data that are
 * not an interrupted write, a truncated file): it shows what is intact,
 * and mapkv_verify() reports the rest. For salvage tools (mapkv_recover()
 * uses it). A writable open with it behaves as one without. */
#define MAPKV_VERIFY 0x4u

/** Callback seeing every file range made durable (for power-cut tests). */
typedef void (*mapkv_flush_hook_fn)(void *ctx, int64_t file_offset,
                                    int64_t length);

/** Options of mapkv_open(). Initialise with mapkv_options_init(), which
 * records the size of the structure the caller was compiled with, so that
 * a library with more fields knows which ones the caller has; zero fields
 * mean "default". */
typedef struct mapkv_options {
  /** sizeof(mapkv_options) as the caller knows it (set by
   * mapkv_options_init(); mapkv_open() refuses 0). */
  size_t struct_size;
  unsigned flags;        /**< MAPKV_CREATE, MAPKV_RDONLY, MAPKV_VERIFY */
  int sync_mode;         /**< enum mapkv_sync_mode */
  uint64_t initial_size; /**< size the file grows to at its first write
                              (default 1 MiB; at most `reserve`) */
  uint64_t growth_step;  /**< minimum growth of the file (default 1 MiB;
                              at most `reserve`); the file grows by
                              max(step, size / 16), and past 2 MiB to a
                              multiple of 2 MiB */
  /** Key and value limits. A store records its limits in its header when
   * it is created (from these, or MAPKV_DEFAULT_KEY_MAX and
   * MAPKV_DEFAULT_VALUE_MAX when 0), and every later open enforces the
   * store's limits: 0 (the default) means the store's; a smaller value
   * lowers the limit for this handle only; a larger one gets the store's. */
  uint32_t max_key_size;
  uint32_t max_value_size;
  /** Address space a writer reserves for the mapping so that it never
   * moves (at least twice the file size at open, at most MAPKV_FILE_MAX).
   * 0 (what mapkv_options_init() sets): 64 GiB, or where the process may
   * not have that much (ulimit -v, RLIMIT_AS) the largest of 32 GiB,
   * 16 GiB, ... it can have, down to twice the file and room for its
   * first growth (mapkv_stats.reserved_size says what was had). A value
   * set here is reserved as it is, or the open fails (-ENOMEM). Growth
   * past the reservation fails with MAPKV_EFULL; reopen with a larger
   * reserve. Read-only opens map the file as it is and reserve nothing. */
  uint64_t reserve;
  /** Testing: called after each durable flush of the data file. */
  mapkv_flush_hook_fn flush_hook;
  void *flush_hook_ctx;
  /** Keys the store is expected to hold: the index is sized for at least
   * this many at open (12 to 24 bytes of memory per key, taken when
   * touched), so that filling it never rehashes. Default 0: sized for what
   * the store holds, grown as needed. At most MAPKV_FILE_MAX / 24. */
  uint64_t expected_keys;
  /** How long a writable open waits, in milliseconds, for another process
   * that holds the store open for writing to close it (SQLite's
   * busy_timeout): the lock is tried again after short sleeps (1 ms,
   * doubling up to 25 ms) until it is free or the time is up. Default 0:
   * MAPKV_ELOCKED at once. Read-only opens never wait (they take no lock). */
  uint32_t lock_timeout_ms;
} mapkv_options;

/** Fills the first `size` bytes of *opts with the defaults (bytes beyond
 * what this library knows are zeroed) and records size in
 * opts->struct_size.
 * @return 0, or MAPKV_EINVAL (NULL, or a size smaller than the first
 *   published mapkv_options) */
MAPKV_API int mapkv_options_init_size(mapkv_options *opts, size_t size);

/** Fills *opts with the defaults: mapkv_options_init_size() with the size
 * this header gives. */
static inline void mapkv_options_init(mapkv_options *opts) {
  (void)mapkv_options_init_size(opts, sizeof *opts);
}

/**
 * Opens (or with MAPKV_CREATE creates) the store at path.
 *
 * A writable open takes an exclusive lock on the file (waiting up to
 * opts->lock_timeout_ms for another writer process to close it). Every
 * open runs recovery with every checksum verified (FORMAT.md,
 * "Recovery"): the newest complete intact batch ends the log; below the
 * header's sealed end nothing is dropped: damage there stays in the file,
 * is reported, and the keys whose newest batch it cost answer
 * MAPKV_ECORRUPT; after it, an uncommitted or torn tail is dropped (and,
 * by a writer, zeroed on disk), and damaged batches are skipped (their
 * keys keep their previous values: a write a crash lost). mapkv_stat()
 * tells what happened. A writable open then makes the recovered log
 * durable. A read-only open takes no lock and sees the state committed
 * when it opened. A store of format version 1 opens read-only only.
 * Temporary files that a process which died left next to the store (a
 * create, a salvage) are removed by a writable open.
 *
 * @param path  file name (copied)
 * @param opts  options, or NULL for the defaults
 * @param out   receives the handle; close it with mapkv_close()
 * @return 0, or MAPKV_EINVAL (bad options, such as an initial_size beyond
 *   the reservation), MAPKV_ENOTDB (not a mapkv store, or not a regular
 *   file: a FIFO or a device is refused without blocking), MAPKV_EVERSION
 *   (newer format; or version 1 opened for writing: see mapkv_recover()),
 *   MAPKV_ETRUNCATED (shorter than its header, or than the data its header
 *   records), MAPKV_ECORRUPT (both header copies damaged; a log the header
 *   does not belong to; after the data, records that fail their checksums
 *   and are not an interrupted write — nothing is changed, a salvage open
 *   shows what is intact), MAPKV_ELOCKED (another process writes it, and
 *   did not close it within lock_timeout_ms), MAPKV_ENOMEM, -ENOENT
 *   (missing, without MAPKV_CREATE), -ELOOP, -ENOSPC, other -errno.
 */
MAPKV_API int mapkv_open(const char *path, const mapkv_options *opts,
                         mapkv_t **out);

/**
 * Flushes, marks the file cleanly closed (sealed up to its end), releases
 * the lock and frees the handle. Every batch and cursor of the handle must
 * have ended, and no other call may be running on it. NULL is a no-op.
 * @return 0; MAPKV_EBUSY (batches or cursors still open: nothing was done,
 *   the handle stays open); MAPKV_EINVAL (not an open handle: closed
 *   already); MAPKV_EMOVED (the path no longer names the file, which was
 *   closed cleanly all the same); or the -errno of a failed flush (the
 *   handle is freed anyway).
 */
MAPKV_API int mapkv_close(mapkv_t *db);

/* ---- Single operations --------------------------------------------------- */

/**
 * Stores value under key (replacing any previous value) as one atomic,
 * and with MAPKV_SYNC_COMMIT durable, commit.
 * @return 0, MAPKV_EREADONLY, MAPKV_EKEYSIZE, MAPKV_EVALSIZE, MAPKV_EINVAL
 *   (NULL pointer with nonzero length), MAPKV_EFULL, MAPKV_ENOMEM (the
 *   index cannot grow; nothing written), -ENOSPC (disk full while growing;
 *   nothing written), -EIO and other -errno from the flush (the put is
 *   then not applied).
 */
MAPKV_API int mapkv_put(mapkv_t *db, const void *key, size_t klen,
                        const void *val, size_t vlen);

/**
 * Copies the value of key into buf.
 * @param buf    destination (may be NULL when cap is 0)
 * @param cap    capacity of buf
 * @param vlen   receives the value's length (also on MAPKV_EBUFSMALL, so the
 *               caller can size a buffer); may be NULL
 * @return 0, MAPKV_NOTFOUND, MAPKV_EBUFSMALL (nothing copied),
 *   MAPKV_ECORRUPT (the record's checksum failed, or recovery found the
 *   key's newest batch lost to damage; no byte returned).
 */
MAPKV_API int mapkv_get(mapkv_t *db, const void *key, size_t klen, void *buf,
                        size_t cap, size_t *vlen);

/**
 * Zero-copy get: *val points at the value inside the mapping.
 * Lifetime: the bytes stay valid and unchanged until mapkv_compact() or
 * mapkv_close() on this handle (the mapping never moves, and records are
 * never rewritten in place); they are read-only.
 * @return as mapkv_get() (never MAPKV_EBUFSMALL).
 */
MAPKV_API int mapkv_get_view(mapkv_t *db, const void *key, size_t klen,
                             const void **val, size_t *vlen);

/**
 * Looks up n keys in one call, as n calls of mapkv_get_view() would, but
 * with their memory accesses overlapped: the index slots of a group of
 * keys are fetched together, then their records. For keys spread over a
 * store larger than the CPU caches, where a single get waits for two
 * memory reads one after the other, this is several times faster.
 *
 * @param keys, klens  the keys (keys[i] may be NULL when klens[i] is 0)
 * @param vals   receives, for each key found, a view of its value with
 *               mapkv_get_view()'s lifetime; NULL otherwise
 * @param vlens  receives each value's length (0 when not found); may be NULL
 * @param rcs    receives each key's result: 0, MAPKV_NOTFOUND or
 *               MAPKV_ECORRUPT
 * The keys are looked up in groups; each group sees one committed state,
 * and a commit may fall between groups. n = 0 is allowed (nothing happens).
 * @return 0 when every key was looked up (whatever rcs say), or
 *   MAPKV_EINVAL (a NULL handle, array or key; nothing looked up).
 */
MAPKV_API int mapkv_get_many(mapkv_t *db, size_t n, const void *const *keys,
                             const size_t *klens, const void **vals,
                             size_t *vlens, int *rcs);

/** Deletes key. @return 0, MAPKV_NOTFOUND (nothing written), and the errors
 * of mapkv_put(). */
MAPKV_API int mapkv_del(mapkv_t *db, const void *key, size_t klen);

/** 1 if key exists, 0 if not, or a negative error (MAPKV_ECORRUPT when
 * recovery found the key's newest batch lost to damage, or the slot's
 * record fails its checksum). */
MAPKV_API int mapkv_exists(mapkv_t *db, const void *key, size_t klen);

/* ---- Atomic batches ------------------------------------------------------ */

/** A write batch: puts and deletes that become visible and durable together
 * or not at all. Owned by the caller until commit or abort. */
typedef struct mapkv_batch mapkv_batch_t;

/** Starts an empty batch. The batch buffers its operations in memory
 * (copies of keys and values) until mapkv_batch_commit(). */
MAPKV_API int mapkv_batch_begin(mapkv_t *db, mapkv_batch_t **out);

/** Adds a put. @return 0, MAPKV_EKEYSIZE, MAPKV_EVALSIZE, MAPKV_ENOMEM,
 * MAPKV_EREADONLY, MAPKV_EINVAL. */
MAPKV_API int mapkv_batch_put(mapkv_batch_t *b, const void *key, size_t klen,
                              const void *val, size_t vlen);

/** Adds a delete (of a key that may or may not exist). */
MAPKV_API int mapkv_batch_del(mapkv_batch_t *b, const void *key, size_t klen);

/** Writes the batch as one commit and frees it (also on failure: then none
 * of its operations is applied). An empty batch commits nothing.
 * @return 0 or the errors of mapkv_put(). */
MAPKV_API int mapkv_batch_commit(mapkv_batch_t *b);

/** Discards the batch and frees it. NULL is a no-op. */
MAPKV_API void mapkv_batch_abort(mapkv_batch_t *b);

/* ---- Iteration ----------------------------------------------------------- */

/** A cursor over the live records (in file order, not key order). */
typedef struct mapkv_cursor mapkv_cursor_t;

/**
 * Opens a cursor over every live key, or over the keys starting with
 * prefix (plen bytes; NULL/0 for all). The cursor sees the records committed
 * before it opened; a key overwritten or deleted while the cursor runs is
 * reported with its newest value if that value was committed before the
 * cursor opened, and skipped otherwise. Readers and other cursors may run
 * concurrently. After mapkv_compact() the cursor returns MAPKV_ECHANGED.
 */
MAPKV_API int mapkv_cursor_open(mapkv_t *db, const void *prefix, size_t plen,
                                mapkv_cursor_t **out);

/**
 * Advances to the next live record. *key and *val point into the mapping and
 * stay valid as mapkv_get_view() values do. Checksums are verified; a
 * damaged record is skipped, and counted in mapkv_stat()'s checksum_failures
 * when the index points at it.
 * @return 0, MAPKV_NOTFOUND at the end, MAPKV_ECHANGED.
 */
MAPKV_API int mapkv_cursor_next(mapkv_cursor_t *c, const void **key,
                                size_t *klen, const void **val, size_t *vlen);

/** Frees the cursor. NULL is a no-op. */
MAPKV_API void mapkv_cursor_close(mapkv_cursor_t *c);

/* ---- Maintenance --------------------------------------------------------- */

/** Makes every commit so far durable (one msync of the unflushed pages).
 * @return 0, MAPKV_EREADONLY, MAPKV_EMOVED (durable, but in a file the
 *   store's path no longer names: see "The store file" above), -errno. */
MAPKV_API int mapkv_sync(mapkv_t *db);

/**
 * Online compaction: copies the live records into a new file, flushes it,
 * renames it over the store atomically and fsyncs the directory; then the
 * handle continues on the new file. Readers keep working during the copy;
 * writers wait. A crash at any point leaves the old or the new store.
 * Views and cursors taken before it become invalid. The new file takes the
 * store's mode and owner. A store in which damage was found (at open, or
 * a checksum failure since) is not compacted: compaction would drop the
 * damage without a trace; mapkv_recover() salvages it and keeps the
 * damaged file.
 * @return 0, MAPKV_EREADONLY, MAPKV_ECORRUPT (damage known, or a live
 *   record found damaged during the copy), MAPKV_EMOVED (the path no
 *   longer names the store's file), MAPKV_ENOMEM, -EPERM (the new file
 *   cannot take the store's owner), -ENOSPC and other -errno: the store is
 *   then unchanged, except when only the final directory sync failed (the
 *   handle then already uses the new file).
 */
MAPKV_API int mapkv_compact(mapkv_t *db);

/** Figures of a store (mapkv_stat()). */
typedef struct mapkv_stats {
  uint32_t format_version;
  uint32_t clean_open;    /**< 1 if the last open found a clean close (damage
                               found since is still reported below) */
  uint64_t records;       /**< live keys */
  uint64_t live_bytes;    /**< bytes of the live records */
  uint64_t dead_bytes;    /**< bytes of replaced/deleted/damaged records */
  uint64_t data_end;      /**< file offset where the next record goes */
  uint64_t file_size;     /**< bytes of the file (including free space) */
  uint64_t mapped_size;   /**< bytes mapped */
  uint64_t reserved_size; /**< address space reserved for the mapping (the
                               file size for a read-only handle) */
  uint64_t index_slots;   /**< slots of the hash index */
  uint64_t index_bytes;   /**< memory of the hash index */
  uint64_t last_seq;      /**< sequence number of the newest record */
  uint64_t generation;    /**< compactions the file has been through */
  /* What the last open's recovery found: */
  uint64_t recovered_batches;    /**< intact batches applied */
  uint64_t dropped_tail_bytes;   /**< bytes of an uncommitted or torn tail */
  uint64_t dropped_tail_records; /**< intact records in that tail */
  uint64_t damaged_regions;      /**< damaged spans skipped in the middle */
  uint64_t damaged_bytes;        /**< bytes in those spans (incl. the batches
                                      they broke) */
  uint64_t first_damage_offset;  /**< file offset of the first, or 0 */
  uint64_t checksum_failures;    /**< gets/cursors that hit a bad checksum
                                      since open */
  uint64_t damaged_keys;         /**< keys whose newest record the last open
                                      found damaged: they answer
                                      MAPKV_ECORRUPT until written again */
  uint64_t truncated_bytes;      /**< bytes the file lacks of the data its
                                      header records (salvage opens only) */
  uint32_t max_key_size;         /**< the store's key limit */
  uint32_t max_value_size;       /**< the store's value limit */
  uint64_t reserve_requested;    /**< the reservation the open asked for
                                      (the default, or the `reserve`
                                      option, at least twice the file);
                                      reserved_size is less when the
                                      address space allowed only less */
} mapkv_stats;

/** Fills the first `size` bytes of *st (a mapkv_stats of the size the
 * caller knows: fields a newer library has beyond them are left out, and
 * bytes beyond what this library knows are zeroed).
 * @return 0, MAPKV_EINVAL (NULL, or size smaller than the first published
 *   mapkv_stats). */
MAPKV_API int mapkv_stat_size(mapkv_t *db, mapkv_stats *st, size_t size);

/** Fills *st: mapkv_stat_size() with the size this header gives. */
static inline int mapkv_stat(mapkv_t *db, mapkv_stats *st) {
  return mapkv_stat_size(db, st, sizeof *st);
}

/** Flags of mapkv_copy(). */
#define MAPKV_COPY_COMPACT 0x1u /**< copy only the live records */
#define MAPKV_COPY_FORCE   0x2u /**< replace path if it exists */

/**
 * Hot copy: writes a consistent copy of the store to a new file at path
 * while the handle's writers keep writing. The copy holds exactly the
 * commits the handle had made when the call began (a read-only handle:
 * the state it opened), whatever is committed, compacted or closed
 * meanwhile. Writers wait only while that point is taken (the file is
 * mapped once more), not while the copy is written; readers never wait.
 * A read-only handle copies a store another process writes.
 *
 * Without MAPKV_COPY_COMPACT the copy is the log's bytes as they are: the
 * same file id, generation, creation time and limits, dead records
 * included, closed cleanly. With it, the live records only, as
 * mapkv_compact() writes them: a new file id, the next generation, the
 * same limits. A store of format version 1 is copied with
 * MAPKV_COPY_COMPACT only (the copy is then of format 2).
 *
 * The copy is written under a temporary name in path's directory
 * ("<path>.copying.<pid>.<16 hex digits>"), flushed to stable storage,
 * verified (opened, every record's checksum checked, and its figures
 * compared with the store's), linked to path (or with MAPKV_COPY_FORCE
 * renamed over it), and the directory is synced: path is never a partial
 * copy, and a failure leaves no temporary file. The copy takes the store
 * file's mode; its owner is the caller, or for a caller running as root
 * the store's owner and group. A symbolic link at path is not followed:
 * with MAPKV_COPY_FORCE it is replaced.
 *
 * A store in which damage was found (at open, or a checksum failure
 * since, or during the copy) is not copied: the copy would not be the
 * store; mapkv_recover() salvages it.
 *
 * @param path   the new file (copied; must not exist without
 *               MAPKV_COPY_FORCE, and must not be the store itself)
 * @param flags  MAPKV_COPY_COMPACT, MAPKV_COPY_FORCE
 * @return 0; MAPKV_EINVAL (NULL, unknown flags, path names the store's
 *   own file), -EEXIST (path exists, without MAPKV_COPY_FORCE), MAPKV_ECORRUPT
 *   (damage known, or found while copying or verifying), MAPKV_EVERSION
 *   (format version 1 without MAPKV_COPY_COMPACT), MAPKV_ENOMEM, -ENOENT
 *   (path's directory is missing), -EACCES, -ENOSPC, -EIO and other -errno.
 *   On failure nothing was made and path is as it was, except when only
 *   the final directory sync failed (path then holds the copy).
 */
MAPKV_API int mapkv_copy(mapkv_t *db, const char *path, unsigned flags);

/** One damaged span found by mapkv_verify(). */
typedef void (*mapkv_damage_fn)(void *ctx, uint64_t offset, uint64_t length,
                                const char *what);

/**
 * Walks every record of the file from the header to the end of the data,
 * checking every checksum, length and batch. Calls report (if not NULL) for
 * each damaged span with its file offset. *damaged (may be NULL) receives
 * the number of damaged spans, also when the result is MAPKV_ECORRUPT.
 * Writers wait while it runs; readers do not.
 * @return 0 if the store is intact, MAPKV_ECORRUPT if damage was found.
 */
MAPKV_API int mapkv_verify(mapkv_t *db, mapkv_damage_fn report, void *ctx,
                           uint64_t *damaged);

/* ---- Salvage and upgrade ------------------------------------------------- */

/** Flags of mapkv_recover(). */
#define MAPKV_RECOVER_FORCE 0x1u /**< rewrite in place even without damage */

/** What mapkv_recover() found and did. */
typedef struct mapkv_recover_info {
  uint64_t saved;    /**< live records written to the new store */
  uint64_t lost;     /**< live records left behind: damaged, or of a batch
                          damage cost */
  int rewritten;     /**< 0: in place, the store had nothing to salvage and
                          was left as it was */
  int damaged;       /**< 1 if the salvage found damage (mapkv_verify()) */
  char backup[4096]; /**< in place: the name the original now has ("" if
                          none) */
  mapkv_stats found; /**< mapkv_stat() of the store as the salvage saw it
                          (last: it grows with mapkv_stats) */
} mapkv_recover_info;

/**
 * Salvages the intact live records of the store at path into a new store.
 *
 * With out set, into out, which must not exist (-EEXIST otherwise); path
 * is opened read-only and not changed. The new store is written under a
 * temporary name next to out and linked into place when complete.
 *
 * With out NULL, in place, under the writer lock of path (MAPKV_ELOCKED if
 * another process has it open for writing): the new store is written next
 * to path, takes its mode and owner (or nothing is replaced), the original
 * gets the second name "<path>.damaged-<unix time>" (".v<N>-<time>" when
 * it was only upgraded from format version N, ".orig-<time>" when forced),
 * written to info->backup, and the new store is renamed over path; the
 * directory is synced. A store with no damage of the current format is
 * left alone (info->rewritten = 0) unless flags has MAPKV_RECOVER_FORCE; a
 * store of an older format version is always rewritten: this is how it is
 * upgraded. Backups are never removed by the library: delete them when the
 * recovered store is known good. A temporary file left by a recovery that
 * was killed is removed by the next writable open of the store it was for.
 *
 * A symbolic link at path names the store it points at (which is the file
 * replaced). Damaged records and the records of a batch that damage cost
 * are left behind (info->lost); everything else is kept, with the store's
 * key and value limits.
 *
 * @param lock_timeout_ms  in place: how long to wait for another process
 *               that has the store open for writing (0: not at all)
 * @param info  receives what was found and done (may be NULL; only its
 *               first info_size bytes are written)
 * @return 0, MAPKV_ELOCKED, -EEXIST, the errors of mapkv_open() for path,
 *   -ENOSPC and other -errno; on failure path is unchanged and no new store
 *   is left behind, except when only the final directory sync failed (the
 *   new store then has its name, as on success: out, or path with the
 *   original under its second name; *info is not written).
 */
MAPKV_API int mapkv_recover_size(const char *path, const char *out,
                                 unsigned flags, uint32_t lock_timeout_ms,
                                 mapkv_recover_info *info, size_t info_size);

/** mapkv_recover_size() with the size of mapkv_recover_info this header
 * gives (info_size: the bytes of *info the caller knows, as for
 * mapkv_stat_size()). */
static inline int mapkv_recover(const char *path, const char *out,
                                unsigned flags, uint32_t lock_timeout_ms,
                                mapkv_recover_info *info) {
  return mapkv_recover_size(path, out, flags, lock_timeout_ms, info,
                            sizeof *info);
}

#ifdef __cplusplus
}
#endif
#endif /* MAPKV_MAPKV_H */
