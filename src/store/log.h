/*
 * log.h — the log file of a store, as a value: the file (its path, its
 * descriptor, the writer's lock), its mapping, its header, and where the
 * log ends and what of it is durable. log.c is the only code that changes
 * these fields; the rest of the engine reads them.
 *
 * The mapping never moves (the address space is reserved up front), so
 * `base + offset` stays valid for every offset below `cap` while the log
 * is open. Readers that do not hold the writer's lock read `end` with
 * mapkv__log_end() (acquire): the records below it are complete and never
 * change.
 */
#ifndef MAPKV_LOG_H
#define MAPKV_LOG_H

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "format.h"
#include "mapkv/mapkv.h"
#include "mapkv/mmf.h"

typedef struct mapkv__log {
  char *path; /* the file the store's path names (a link resolved) */
  int fd;     /* -1 when closed */
  int readonly;
  mmf_t *map;
  uint8_t *base;     /* file offset 0 */
  uint64_t cap;      /* bytes mapped, the size of the file */
  uint64_t reserve;  /* address space reserved at base */
  uint64_t wanted;   /* the reservation asked for (reserve is less when the
                        address space allowed only less) */
  uint64_t page;     /* the machine's page size */
  uint64_t end;      /* the next record goes here */
  uint64_t flushed;  /* [0, flushed) is durable */
  uint64_t seq;      /* newest sequence number used */
  mapkv__header hdr; /* as on disk */
  unsigned rec_head; /* bytes before a record's key (format version) */
  /* What the header's sealed end says (FORMAT.md): the log below it is
   * known durable and checked. `lost` is the offset of the first damage a
   * crash may have caused (a write that never reached the disk), or the
   * header's sealed end when a record crosses it, which stays unsealed so
   * that every later open sees it as the first did. */
  uint64_t sealed, lost;
  /* This open created the file (and holds its lock): a failure before the
   * open completes removes it again (mapkv__log_unmake()). */
  int created;
} mapkv__log;

/* The default reservation (mapkv_options.reserve 0): 64 GiB, or less when
 * the address space allows only less (see mapkv__log_open()). */
#define MAPKV__DEFAULT_RESERVE (64ull << 30)

/* How a new log beside another one is made (mapkv__log_create_beside()). */
typedef struct mapkv__new_log {
  uint64_t size;           /* bytes reserved on disk and mapped */
  uint64_t reserve;        /* the reservation asked for, and the least */
  uint64_t floor;          /* taken when that much address space cannot be
                              had (floor == reserve: that or nothing) */
  const struct stat *like; /* the file whose mode the new one takes */
  int keep_owner;          /* and whose owner (or -EPERM) */
} mapkv__new_log;

/* Opens (with MAPKV_CREATE in o->flags, creating) the log at path: the
 * path resolved (a symbolic link names its target), the file opened
 * without blocking (anything but a regular file is MAPKV_ENOTDB), for a
 * writer locked (waiting up to o->lock_timeout_ms) on the file the path
 * names once locked, mapped, and its header decoded (when both copies are
 * intact and differ, the one whose file id verifies the first record). A
 * reader maps the file; a writer reserves o->reserve bytes of address
 * space (at least twice the file) and fails if it cannot have them, or
 * with reserve 0 MAPKV__DEFAULT_RESERVE, halved as often as the address
 * space requires, down to mapkv__log_reserve_floor(). A store of an older
 * format version opens read-only only. Sets end, flushed and seq to the
 * header page; recovery sets them. 0 or an error, with *lg closed and a
 * file this open created removed. */
int mapkv__log_open(mapkv__log *lg, const char *path, const mapkv_options *o);

/* The least reservation a writer of a file of `size` bytes takes when the
 * default one cannot be had: twice the file, and room for its first
 * growth (o->initial_size, o->growth_step). */
uint64_t mapkv__log_reserve_floor(uint64_t size, const mapkv_options *o);

/* Removes the file of a log this open created (lg->created), if its path
 * still names it: a create that fails leaves nothing behind. A file the
 * open did not create is never removed. */
void mapkv__log_unmake(mapkv__log *lg);

/* Creates an empty log at tmp (which must not exist) for the store of
 * `old`: a new file id, the next generation, the same limits; the mode
 * (and with how->keep_owner the owner, or -EPERM and nothing left behind)
 * of how->like; locked, with how->size bytes reserved on disk and mapped
 * in a reservation of how->reserve (or down to how->floor). */
int mapkv__log_create_beside(mapkv__log *lg, const mapkv__log *old,
                             const char *tmp, const mapkv__new_log *how);

/* A read-only view of lg as it is now: its own mapping of the file's
 * bytes [0, lg->end) (which never change: records are appended, and a
 * compaction writes a new file), with lg's header, end and sequence
 * number, and sealed to its end (everything in it was checked). It stays
 * valid whatever happens to lg later, compaction and close included. The
 * caller holds lg's writer lock (or lg is read-only). Close it with
 * mapkv__log_close(). */
int mapkv__log_view(mapkv__log *view, const mapkv__log *lg);

/* Writes a copy of the log of view (mapkv__log_view()) to a new file at
 * tmp (which must not exist): the header page (the same file id,
 * generation and limits; clean, with the figures given, sealed to its
 * end), then the bytes [4096, end) as they are, zero up to a page
 * boundary; the mode (and with keep_owner the owner) of like; flushed to
 * stable storage. On failure nothing is left at tmp. */
int mapkv__log_write_copy(const mapkv__log *view, const char *tmp,
                          const struct stat *like, int keep_owner,
                          uint64_t live_records, uint64_t live_bytes);

/* Unmaps and closes the log (nothing written) and frees its path. Safe on
 * a closed or zeroed log. */
void mapkv__log_close(mapkv__log *lg);

/* The record at offset off, of the log's format version (avail readable
 * bytes from there). */
static inline int mapkv__log_decode(const mapkv__log *lg, uint64_t off,
                                    uint64_t avail, int verify, mapkv__rec *r) {
  if (lg->rec_head == MAPKV__REC_HEAD_V1)
    return mapkv__rec_decode_v1(lg->base + off, avail, lg->hdr.file_id, verify,
                                r);
  return mapkv__rec_decode(lg->base + off, avail, lg->hdr.file_id, verify, r);
}

/* The key of the record at off (whose header lies inside the mapping). */
static inline const uint8_t *mapkv__log_key_at(const mapkv__log *lg,
                                               uint64_t off) {
  return lg->base + off + lg->rec_head;
}

/* `end` for a reader that does not hold the writer's lock. */
static inline uint64_t mapkv__log_end(const mapkv__log *lg) {
  return __atomic_load_n(&lg->end, __ATOMIC_ACQUIRE);
}

/* The writer publishes a new end (the records below it complete). */
static inline void mapkv__log_set_end(mapkv__log *lg, uint64_t end) {
  __atomic_store_n(&lg->end, end, __ATOMIC_RELEASE);
}

/* n rounded up to the page size. */
static inline uint64_t mapkv__log_page_up(const mapkv__log *lg, uint64_t n) {
  return (n + lg->page - 1) / lg->page * lg->page;
}

/* Growth, in two steps so that the caller can keep the users of the
 * mapping core's view of the map (cursors' marker searches) out only while
 * its length changes. The first finds the size the file grows to for need
 * more bytes after `end` (initial_size first, then by a sixteenth of the
 * file, at least growth_step, past 2 MiB to a multiple of 2 MiB) and
 * allocates those blocks on disk (a full disk is an error now, not a
 * SIGBUS later; when the full step does not fit, what the write needs
 * may). *newcap == cap when no growth is needed. MAPKV_EFULL beyond the
 * format's size or the reservation, -ENOSPC. */
int mapkv__log_reserve_room(const mapkv__log *lg, uint64_t need,
                            uint64_t initial_size, uint64_t growth_step,
                            uint64_t *newcap);
/* The second maps the grown file (the base does not move). */
int mapkv__log_resize(mapkv__log *lg, uint64_t newcap);

/* Recovery found where the log ends: end (the next record goes there), the
 * last sequence number, and what the next header seals (the end, or
 * lost, 0 if none: the first damage a crash may have left, or the sealed
 * end a record crosses). A writer zeroes
 * [end, nonzero_end) (a dropped tail) and makes [0, max(end, nonzero_end))
 * durable, so that the header it writes next can seal it. */
int mapkv__log_recovered(mapkv__log *lg, uint64_t end, uint64_t seq,
                         uint64_t lost, uint64_t nonzero_end);

/* Zeroes [end, upto): the records of a commit that failed before it was
 * made visible (nothing points at them). */
static inline void mapkv__log_discard(mapkv__log *lg, uint64_t upto) {
  memset(lg->base + lg->end, 0, upto - lg->end);
}

/* Writes n bytes of records at the log's end through the file (not the
 * mapping) and makes [flushed, end + n) durable; the end is not moved
 * (mapkv__log_committed() publishes it). For durable commits: bytes
 * stored through the mapping dirty its page-cache folio as a whole, which
 * can be 2 MiB large (huge-page advice, readahead), and the flush then
 * writes all of it; bytes written through the file dirty only the blocks
 * they touch. Readers see them through the mapping all the same (one page
 * cache). 0, or -errno / MAPKV_* of the write or the flush (the bytes
 * are then zeroed: nothing points at them). */
int mapkv__log_write_durable(mapkv__log *lg, const void *buf, uint64_t n);

/* msync of the pages covering [flushed, upto); flushed = upto. */
int mapkv__log_flush_to(mapkv__log *lg, uint64_t upto);

/* A commit of records [end, upto) whose last sequence number is seq: the
 * new end is published (release) for readers. */
static inline void mapkv__log_committed(mapkv__log *lg, uint64_t upto,
                                        uint64_t seq) {
  mapkv__log_set_end(lg, upto);
  lg->seq = seq;
}

/* All of the log is durable (flushed to its end): the next header seals
 * it, but for damage a crash may have left. */
static inline void mapkv__log_seal(mapkv__log *lg) {
  if (lg->flushed >= lg->end && lg->lost == 0)
    lg->sealed = lg->end;
}

/* Writes both header copies, one at a time, each flushed: clean or not,
 * with the figures given and the log's end, last sequence number and
 * sealed end (a clean close seals the log up to its end, but for damage a
 * crash may have left). */
int mapkv__log_write_header(mapkv__log *lg, int clean, uint64_t live_records,
                            uint64_t live_bytes);

/* 0 if the path still names the log's file, MAPKV_EMOVED if it names
 * another file or none, or -errno. */
int mapkv__log_check_path(const mapkv__log *lg);

/* Renames the log's file (a temporary one) over path, syncs the directory
 * and makes path the log's path. *renamed says whether the rename was done
 * (then path names the new file, even if the directory sync failed). */
int mapkv__log_replace(mapkv__log *lg, const char *path, int *renamed);

/* Removes what an interrupted compaction (<path>.compact) and dead
 * processes (mapkv__os_clean_stale()) left next to the log. For a
 * writer. */
void mapkv__log_clean_leftovers(const mapkv__log *lg);

/* The name of a compaction's new file: "<path>.compact" (malloc'd). */
char *mapkv__log_compact_name(const char *path);

/* Takes the writer lock (flock LOCK_EX) on fd, trying again after short
 * sleeps for up to timeout_ms while another process holds it. 0,
 * MAPKV_ELOCKED (message names path), or -errno. */
int mapkv__lock_fd(int fd, const char *path, uint32_t timeout_ms);

/* Opens path read-only and takes the writer lock on the file it names
 * once locked (for an operation that must be the store's only writer
 * without opening it for writing). *fd receives the descriptor. */
int mapkv__lock_path(const char *path, uint32_t timeout_ms, int *fd);

#endif
