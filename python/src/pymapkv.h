/*
 * pymapkv.h — declarations shared by the files of the mapkv Python
 * extension (mapkv._mapkv): the Store object and what hangs off it.
 *
 * Objects and what keeps what alive:
 *  - Store owns the mapkv_t handle. Batches, iterators and read views hold
 *    a strong reference to their Store; the Store never holds one to them.
 *  - Batches and iterators own C handles (mapkv_batch_t, mapkv_cursor_t)
 *    that point into the store handle. They are linked into their Store's
 *    `children` list, and Store.close() detaches them (frees their C
 *    handles) before it frees the store handle, so none can outlive it.
 *  - A read view hands out memoryviews of bytes inside the mapping. It is
 *    their exporter (the buffer protocol), counts its live exports, and
 *    keeps its Store "pinned" (Store.pins) from its start until it has
 *    ended and its last export is released. Store.close() and compact(),
 *    the two calls that unmap bytes a view may point at, refuse with
 *    BufferError while the store is pinned.
 *
 * The GIL and the store handle: the handle is thread-safe, so calls that
 * may block (durable commits, compaction, verification, open, close, and
 * any call made while another thread is inside one) run with the GIL
 * released. Such a call is counted in Store.active for its duration (and
 * compactions also in Store.compacting), under Store.mu, so that close()
 * can wait for them. Every other field is changed only with the GIL held.
 *
 * Pointers into the mapping: a value that a get or a cursor returns stays
 * valid until mapkv_compact() or mapkv_close(). A close never overlaps
 * another call. A compaction may run on another thread while this one
 * holds the GIL; so while Store.compacting is nonzero, gets copy through
 * mapkv_get() (which copies under the handle's own lock), cursors wait for
 * the compaction to end, and read views cannot start.
 */
#ifndef MAPKV_PYMAPKV_H
#define MAPKV_PYMAPKV_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>

#include "mapkv/mapkv.h"

/* ---- Module-wide --------------------------------------------------------- */

extern PyTypeObject mapkv__py_store_type;
extern PyTypeObject mapkv__py_batch_type;
extern PyTypeObject mapkv__py_read_type;
extern PyTypeObject mapkv__py_iter_type;

/* mapkv.Error, and its subclass for MAPKV_NOTFOUND (also a KeyError). */
extern PyObject *mapkv__py_error;
extern PyObject *mapkv__py_notfound;

/* Incremented in the child of every fork(): a Store opened before the fork
 * belongs to the parent (its index and lock do), so in the child it
 * behaves as closed and its handle is never touched. */
extern volatile unsigned long mapkv__py_forkgen;

/* A new exception object for return code rc (a MAPKV_* code or -errno),
 * with the message of mapkv_errmsg(); NULL with an exception set if it
 * cannot be made. */
PyObject *mapkv__py_exception(int rc);

/* Sets the exception for return code rc (a MAPKV_* code or -errno) with
 * the message of mapkv_errmsg(), and returns NULL. */
PyObject *mapkv__py_raise(int rc);

/* Sets NotFoundError(key) (a KeyError whose argument is the key) and
 * returns NULL. */
PyObject *mapkv__py_raise_notfound(PyObject *key);

/* A timeout argument in seconds (an int or a float, at least 0) as
 * milliseconds, rounded up: 0 with *ms set (left alone when o is NULL), or
 * -1 with TypeError or ValueError set. */
int mapkv__py_parse_timeout(PyObject *o, const char *name, uint32_t *ms);

/* The figures of st as a dict of ints (Store.stat()); NULL with an
 * exception set. */
PyObject *mapkv__py_stats_dict(const mapkv_stats *st);

/* ---- Bytes-like arguments ------------------------------------------------ */

/* A key, value or prefix argument: bytes, or any object exporting a
 * contiguous buffer (bytearray, memoryview, array, mmap...). str is
 * refused with TypeError. Release with mapkv__py_bytes_release(). */
typedef struct mapkv__py_bytes {
  const void *p;
  size_t n;
  int has_view;
  Py_buffer view;
} mapkv__py_bytes;

int mapkv__py_bytes_slow(PyObject *o, mapkv__py_bytes *b, const char *what);

/* 0, or -1 with TypeError/BufferError set. */
static inline int mapkv__py_bytes_get(PyObject *o, mapkv__py_bytes *b,
                                      const char *what) {
  if (PyBytes_Check(o)) {
    b->p = PyBytes_AS_STRING(o);
    b->n = (size_t)PyBytes_GET_SIZE(o);
    b->has_view = 0;
    return 0;
  }
  return mapkv__py_bytes_slow(o, b, what);
}

static inline void mapkv__py_bytes_release(mapkv__py_bytes *b) {
  if (b->has_view)
    PyBuffer_Release(&b->view);
}

/* ---- Store --------------------------------------------------------------- */

/* An object holding a C handle that points into the store handle. */
typedef struct mapkv__py_child {
  struct mapkv__py_child *prev, *next;
  /* Frees the C handle (the store is closing). GIL held. */
  void (*detach)(struct mapkv__py_child *c);
} mapkv__py_child;

typedef struct mapkv__py_store {
  PyObject ob_base;
  mapkv_t *db;    /* NULL once closed */
  PyObject *path; /* as given (str or bytes, after os.fspath) */
  int readonly;
  int sync_mode;         /* enum mapkv_sync_mode */
  unsigned long forkgen; /* mapkv__py_forkgen at open */
  Py_ssize_t pins;       /* read views started and not yet let go */
  Py_ssize_t active;     /* calls running with the GIL released (mu) */
  Py_ssize_t compacting; /* of which compactions (mu) */
  Py_ssize_t waiters;    /* threads waiting on cv (mu) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  mapkv__py_child children; /* list head of batches and iterators */
  PyObject *weakrefs;
} mapkv__py_store;

/* Whether s can be used here and now (open, and opened by this process).
 */
static inline int mapkv__py_store_usable(const mapkv__py_store *s) {
  return s->db != NULL && s->forkgen == mapkv__py_forkgen;
}

/* Sets ValueError for a closed (or inherited) store; returns NULL. */
PyObject *mapkv__py_closed(const mapkv__py_store *s);

/* The store handle, or NULL with ValueError set. */
static inline mapkv_t *mapkv__py_store_db(mapkv__py_store *s) {
  if (mapkv__py_store_usable(s))
    return s->db;
  mapkv__py_closed(s);
  return NULL;
}

/* Around a call made with the GIL released (called with the GIL held). */
void mapkv__py_store_enter(mapkv__py_store *s, int compaction);
void mapkv__py_store_leave(mapkv__py_store *s, int compaction);

/* Waits, with the GIL released, until no compaction runs on s. */
void mapkv__py_store_wait_compaction(mapkv__py_store *s);

/* Whether a write should release the GIL: it may block on the disk, or on
 * a thread that is inside a call (and holds the store's writer lock). */
static inline int mapkv__py_store_nogil_write(const mapkv__py_store *s) {
  return s->sync_mode == MAPKV_SYNC_COMMIT || s->active > 0;
}

void mapkv__py_child_link(mapkv__py_store *s, mapkv__py_child *c,
                          void (*detach)(mapkv__py_child *));
void mapkv__py_child_unlink(mapkv__py_child *c);

/* mapkv.open(): a new Store. */
PyObject *mapkv__py_store_open(PyObject *module, PyObject *args,
                               PyObject *kwargs);

/* Store.keys() and friends: a new iterator of kind MAPKV__PY_KEYS... */
enum { MAPKV__PY_KEYS, MAPKV__PY_VALUES, MAPKV__PY_ITEMS };
PyObject *mapkv__py_iter_new(mapkv__py_store *s, int kind, PyObject *prefix);

/* Store.batch(): a new pending batch. */
PyObject *mapkv__py_batch_new(mapkv__py_store *s);

/* Store.update(pairs): every pair put in one batch, committed. */
PyObject *mapkv__py_batch_update(mapkv__py_store *s, PyObject *pairs);

/* Store.read(): a new read view. */
PyObject *mapkv__py_read_new(mapkv__py_store *s);

/* Module initialisation of the read view type: 0, or -1 with an exception
 * set. */
int mapkv__py_read_init(void);

#endif
