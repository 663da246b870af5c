/*
 * copy.c — mapkv_copy(): a consistent copy of a live store in a new file.
 *
 * The point the copy holds is taken under the writer lock, which is held
 * only for that: the handle's committed end, its figures, and a read-only
 * mapping of its file's bytes up to that end (log.c: mapkv__log_view()).
 * Records below the end never change (the log is appended, a writer's
 * recovery zeroes only what lies after it, compaction writes a new file),
 * and the mapping keeps the file whatever the handle does next; so the
 * copy is written from the view with the writer lock released, while
 * writers commit and readers read.
 *
 *   - A copy: the view's bytes written behind a new header page (the same
 *     file id, since every record checksum is seeded with it; clean, with
 *     the figures taken with the end, sealed to its end).
 *   - A compacting copy: the view recovered into a key map of its own (as
 *     an open does: every checksum verified), then its live records
 *     written as compaction writes them (compact.c:
 *     mapkv__compact_write()).
 *
 * Either is written to "<path>.copying.<pid>.<id>" in path's directory,
 * flushed, then opened read-only and compared with what was taken (the
 * open's recovery verifies every record), linked to path (or renamed over
 * it when forced) and the directory synced. A crash leaves path as it was
 * and at most the temporary file, which the next writable open of path
 * removes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compact.h"
#include "os.h"
#include "recover.h"
#include "store.h"
#include "store_err.h"

/* What the copy must hold, and what it is made from. */
typedef struct snapshot {
  mapkv__log view;
  struct stat st; /* the store file's mode and owner */
  uint64_t records, live_bytes;
} snapshot;

/* Takes the point the copy holds (see the top of this file). */
static int take_snapshot(mapkv_t *db, unsigned flags, snapshot *s) {
  int rc = 0;
  memset(s, 0, sizeof *s);
  s->view.fd = -1;
  pthread_mutex_lock(&db->wlock);
  if (db->known_damage || atomic_load(&db->checksum_failures) > 0)
    rc = mapkv__fail(MAPKV_ECORRUPT,
                     "%s has damaged records: a copy would not be the store, "
                     "and none was made (mapkv verify lists the damage, "
                     "mapkv recover salvages the intact records)",
                     db->log.path);
  else if (db->log.hdr.version != MAPKV_FORMAT_VERSION &&
           !(flags & MAPKV_COPY_COMPACT))
    rc = mapkv__fail(MAPKV_EVERSION,
                     "%s has format version %u, which this library no "
                     "longer writes: a compacting copy (MAPKV_COPY_COMPACT, "
                     "mapkv copy -c) rewrites it in version %u",
                     db->log.path, (unsigned)db->log.hdr.version,
                     (unsigned)MAPKV_FORMAT_VERSION);
  else if (mapkv__os.fstat(db->log.fd, &s->st) != 0)
    rc = mapkv__fail_errno("fstat");
  else
    rc = mapkv__log_view(&s->view, &db->log);
  s->records = db->map.ix.count;
  s->live_bytes = db->map.live_bytes;
  pthread_mutex_unlock(&db->wlock);
  return rc;
}

/* The figures the copy at tmp must show. */
typedef struct expect {
  uint64_t records, live_bytes, data_end, last_seq;
} expect;

/* Opens the copy at tmp read-only (its recovery verifies every record)
 * and compares its figures with what it must hold. */
static int verify_copy(const char *tmp, const expect *e) {
  mapkv_options o;
  mapkv_stats st;
  mapkv_t *c = NULL;
  char why[512];
  int rc;
  mapkv_options_init(&o);
  o.flags = MAPKV_RDONLY;
  if ((rc = mapkv_open(tmp, &o, &c)) != 0) {
    snprintf(why, sizeof why, "%s", mapkv_errmsg());
    return mapkv__fail(rc, "verifying the copy: %s", why);
  }
  rc = mapkv_stat(c, &st);
  mapkv_close(c);
  if (rc != 0)
    return rc;
  if (st.damaged_regions > 0 || st.damaged_keys > 0)
    return mapkv__fail(MAPKV_ECORRUPT,
                       "verifying the copy: %llu damaged span(s), the first "
                       "at offset %llu: the store's records there fail their "
                       "checksums (mapkv verify lists the damage)",
                       (unsigned long long)st.damaged_regions,
                       (unsigned long long)st.first_damage_offset);
  if (!st.clean_open || st.dropped_tail_bytes > 0 || st.records != e->records ||
      st.live_bytes != e->live_bytes || st.data_end != e->data_end ||
      st.last_seq != e->last_seq)
    return mapkv__fail(
        MAPKV_ECORRUPT,
        "verifying the copy: it holds %llu records (%llu live "
        "bytes, data end %llu, last sequence %llu), the store "
        "%llu (%llu, %llu, %llu)",
        (unsigned long long)st.records, (unsigned long long)st.live_bytes,
        (unsigned long long)st.data_end, (unsigned long long)st.last_seq,
        (unsigned long long)e->records, (unsigned long long)e->live_bytes,
        (unsigned long long)e->data_end, (unsigned long long)e->last_seq);
  return 0;
}

/* The live records of the view, as compaction writes them, at tmp. */
static int write_compacted(snapshot *s, const char *tmp, int keep_owner,
                           expect *e) {
  mapkv__keymap vm, nm;
  mapkv__log nl;
  mapkv__new_log how;
  mapkv_stats found;
  int rc, damage = 0;
  /* The view's own key map: recovery over [0, end), every checksum
   * verified, everything below the end counted as sealed (damage, not a
   * tail). */
  if ((rc = mapkv__recover(&s->view, &vm, s->records, 0, &found, &damage)) != 0)
    return rc;
  if (damage || s->view.end != s->view.cap || vm.ix.count != s->records) {
    mapkv__keymap_free(&vm);
    return mapkv__fail(MAPKV_ECORRUPT,
                       "%s: the store's records fail their checksums (%llu "
                       "damaged span(s), the first at offset %llu); no copy "
                       "was made (mapkv verify lists the damage)",
                       s->view.path, (unsigned long long)found.damaged_regions,
                       (unsigned long long)found.first_damage_offset);
  }
  how.size = MAPKV__HDR_PAGE + vm.live_bytes;
  how.reserve = how.floor = how.size; /* the copy does not grow */
  how.like = &s->st;
  how.keep_owner = keep_owner;
  rc = mapkv__compact_write(&s->view, &vm, tmp, &how, 0, 1, &nl, &nm, NULL);
  mapkv__keymap_free(&vm);
  if (rc != 0)
    return rc;
  e->records = nm.ix.count;
  e->live_bytes = nm.live_bytes;
  e->data_end = nl.end;
  e->last_seq = nl.seq;
  mapkv__keymap_free(&nm);
  if (mapkv__os.fsync(nl.fd) != 0) {
    rc = mapkv__fail_errno("flushing the copy");
    mapkv__os.unlink(tmp);
  }
  mapkv__log_close(&nl);
  return rc;
}

/* The directory path goes in must be one: a copy into a missing directory
 * fails before any work, naming it. */
static int check_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  struct stat st;
  char *dir;
  int rc = 0;
  if (slash == NULL)
    return 0; /* the current directory */
  if ((dir = strdup(path)) == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  dir[slash == path ? 1 : slash - path] = '\0';
  if (mapkv__os.stat(dir, &st) != 0)
    rc = mapkv__fail(-errno, "%s: the directory %s: %s", path, dir,
                     strerror(errno));
  else if (!S_ISDIR(st.st_mode))
    rc = mapkv__fail(-ENOTDIR, "%s: %s is not a directory", path, dir);
  free(dir);
  return rc;
}

/* Puts the finished copy at path: linked (which fails if path exists; the
 * caller then removes tmp) or, forced, renamed over it; then the directory
 * synced. */
static int place(const char *tmp, const char *path, unsigned flags) {
  int rc;
  if (flags & MAPKV_COPY_FORCE) {
    if (mapkv__os.rename(tmp, path) != 0)
      return mapkv__fail(-errno, "renaming the copy to %s: %s", path,
                         strerror(errno));
  } else {
    if (mapkv__os.link(tmp, path) != 0) {
      rc = -errno;
      if (rc == -EEXIST)
        return mapkv__fail(rc,
                           "%s exists (made while the copy was written): "
                           "it was left as it is (MAPKV_COPY_FORCE, mapkv "
                           "copy --force, replaces it)",
                           path);
      return mapkv__fail(rc, "linking the copy to %s: %s", path, strerror(-rc));
    }
  }
  if ((rc = mapkv__os_sync_dir(path)) != 0)
    return mapkv__fail(rc, "syncing the directory of %s: %s", path,
                       strerror(-rc));
  return 0;
}

int mapkv_copy(mapkv_t *db, const char *path, unsigned flags) {
  snapshot s;
  expect e = {0, 0, 0, 0};
  struct stat st;
  char *tmp = NULL;
  uint64_t id;
  int rc, keep_owner = geteuid() == 0, made = 0;

  if (db == NULL || path == NULL ||
      (flags & ~(MAPKV_COPY_COMPACT | MAPKV_COPY_FORCE)) != 0)
    return mapkv__fail(MAPKV_EINVAL, "NULL handle or path, or unknown flags");
  if (!(flags & MAPKV_COPY_FORCE) && lstat(path, &st) == 0)
    return mapkv__fail(-EEXIST,
                       "%s exists: a copy makes a new file (remove it, or "
                       "replace it with MAPKV_COPY_FORCE, mapkv copy --force)",
                       path);
  if ((rc = check_dir(path)) != 0)
    return rc;
  if ((rc = take_snapshot(db, flags, &s)) != 0)
    goto done;
  if (lstat(path, &st) == 0 && st.st_dev == s.st.st_dev &&
      st.st_ino == s.st.st_ino) {
    rc = mapkv__fail(MAPKV_EINVAL, "%s is the store itself: nothing copied",
                     path);
    goto done;
  }
  if (mapkv__os.random(&id, sizeof id) != 0) {
    rc = mapkv__fail_errno("getrandom");
    goto done;
  }
  if ((tmp = mapkv__os_tmp_name(path, "copying", id)) == NULL) {
    rc = mapkv__fail(MAPKV_ENOMEM, "out of memory");
    goto done;
  }
  if (flags & MAPKV_COPY_COMPACT) {
    rc = write_compacted(&s, tmp, keep_owner, &e);
  } else {
    e.records = s.records;
    e.live_bytes = s.live_bytes;
    e.data_end = s.view.end;
    e.last_seq = s.view.seq;
    rc = mapkv__log_write_copy(&s.view, tmp, &s.st, keep_owner, s.records,
                               s.live_bytes);
  }
  if (rc != 0)
    goto done; /* nothing left at tmp */
  made = 1;
  /* The copy is complete on disk: nothing of the store is needed now. */
  mapkv__log_close(&s.view);
  if ((rc = verify_copy(tmp, &e)) == 0)
    rc = place(tmp, path, flags);

done:
  /* The temporary name goes: the copy's second name once it is linked to
   * path, the copy itself if it was not placed; renamed, it is gone. */
  if (made)
    mapkv__os.unlink(tmp);
  mapkv__log_close(&s.view);
  free(tmp);
  return rc;
}
