/*
 * open.c — mapkv_open() and mapkv_close(), and the process's registry of
 * open handles.
 *
 * An open: the options taken (options.c), the log opened and locked
 * (log.c), the key map rebuilt from it (recover.c); a writer then clears
 * the clean flag (the header written before any record) and removes what
 * dead processes and interrupted compactions left next to the store. An
 * open that created the file and fails removes it again (log.c). A
 * close of a writer flushes, writes the clean header with exact figures
 * and checks that the path still names the file.
 */
#include <stdlib.h>
#include <string.h>

#include "recover.h"
#include "store.h"
#include "store_err.h"

/* ---- Open handles --------------------------------------------------------- */

static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static const mapkv_t **handles;
static size_t nhandles, caphandles;

static int handle_add(const mapkv_t *db) {
  int rc = 0;
  pthread_mutex_lock(&handles_lock);
  if (nhandles == caphandles) {
    size_t cap = caphandles ? caphandles * 2 : 16;
    const mapkv_t **h = realloc(handles, cap * sizeof *h);
    if (h == NULL)
      rc = mapkv__fail(MAPKV_ENOMEM, "out of memory");
    else {
      handles = h;
      caphandles = cap;
    }
  }
  if (rc == 0)
    handles[nhandles++] = db;
  pthread_mutex_unlock(&handles_lock);
  return rc;
}

/* Removes db; 0 if it was not there. */
static int handle_remove(const mapkv_t *db) {
  int found = 0;
  pthread_mutex_lock(&handles_lock);
  for (size_t i = 0; i < nhandles; i++)
    if (handles[i] == db) {
      handles[i] = handles[--nhandles];
      found = 1;
      break;
    }
  if (nhandles == 0) {
    free(handles);
    handles = NULL;
    caphandles = 0;
  }
  pthread_mutex_unlock(&handles_lock);
  return found;
}

int mapkv__handle_live(const mapkv_t *db) {
  int found = 0;
  pthread_mutex_lock(&handles_lock);
  for (size_t i = 0; i < nhandles && !found; i++)
    found = handles[i] == db;
  pthread_mutex_unlock(&handles_lock);
  return found;
}

/* ---- Opening and closing ----------------------------------------------------- */

static void db_free(mapkv_t *db) {
  mapkv__keymap_free(&db->map);
  mapkv__log_close(&db->log);
  free(db->hashes);
  free(db->wbuf);
  pthread_mutex_destroy(&db->qlock);
  pthread_rwlock_destroy(&db->rw);
  pthread_mutex_destroy(&db->wlock);
  free(db);
}

int mapkv_open(const char *path, const mapkv_options *opts, mapkv_t **out) {
  pthread_rwlockattr_t attr;
  mapkv_t *db;
  int rc;

  if (path == NULL || out == NULL)
    return mapkv__fail(MAPKV_EINVAL, "path and out must not be NULL");
  db = calloc(1, sizeof *db);
  if (db == NULL)
    return mapkv__fail(MAPKV_ENOMEM, "out of memory");
  db->log.fd = -1;
  pthread_mutex_init(&db->wlock, NULL);
  pthread_mutex_init(&db->qlock, NULL);
  /* Readers come and go all the time; the writer must not starve. */
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr,
                                PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&db->rw, &attr);
  pthread_rwlockattr_destroy(&attr);
  atomic_init(&db->version, 0);
  if ((rc = mapkv__options_take(&db->opts, opts)) != 0 ||
      (rc = mapkv__log_open(&db->log, path, &db->opts)) != 0)
    goto fail;
  mapkv__options_limits(&db->opts, &db->log.hdr);
  db->readonly = db->log.readonly;
  if ((rc = mapkv__recover(&db->log, &db->map, db->opts.expected_keys,
                           db->log.readonly && (db->opts.flags & MAPKV_VERIFY),
                           &db->rec, &db->known_damage)) != 0)
    goto fail;
  if (!db->log.readonly) {
    /* From here on the file is being modified: clear the clean flag, and
     * make that durable before any record is written. */
    if ((rc = mapkv__log_write_header(&db->log, 0, db->map.ix.count,
                                      db->map.live_bytes)) != 0)
      goto fail;
    mapkv__log_clean_leftovers(&db->log);
  }
  if ((rc = handle_add(db)) != 0)
    goto fail;
  db->log.created = 0; /* a store now: nothing removes it */
  *out = db;
  return 0;
fail:
  mapkv__log_unmake(&db->log); /* a failed create leaves nothing behind */
  db_free(db);
  return rc;
}

int mapkv_close(mapkv_t *db) {
  int rc = 0;
  if (db == NULL)
    return 0;
  if (!mapkv__handle_live(db))
    return mapkv__fail(MAPKV_EINVAL, "not an open handle (closed already?)");
  if (atomic_load(&db->children) > 0)
    return mapkv__fail(MAPKV_EBUSY,
                       "%u batch(es) or cursor(s) of this handle are still "
                       "open: end them first; the handle stays open",
                       (unsigned)atomic_load(&db->children));
  handle_remove(db);
  if (!db->log.readonly) {
    rc = mapkv__log_flush_to(&db->log, db->log.end);
    /* Damage still in the file stays below the sealed end, where the next
     * open knows it for damage (not a tail) again. */
    if (rc == 0)
      rc = mapkv__log_write_header(&db->log, 1, db->map.ix.count,
                                   db->map.live_bytes);
    if (rc == 0)
      rc = mapkv__log_check_path(&db->log);
  }
  db_free(db);
  return rc;
}
