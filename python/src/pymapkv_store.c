/*
 * pymapkv_store.c — mapkv.Store: an open store as a Python mapping of
 * bytes to bytes, and mapkv.open().
 *
 * The hot paths (db[k], db.get(k), k in db, db[k] = v) take their
 * arguments without keyword parsing, read bytes arguments in place, and
 * build results with one PyBytes_FromStringAndSize() from the mapping
 * (mapkv_get_view(): one copy, the one into the result). See pymapkv.h for
 * the GIL, the counting of calls that release it, and why gets copy
 * through mapkv_get() while a compaction runs.
 */
#include "pymapkv.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- Lifetime and threads ------------------------------------------------ */

PyObject *mapkv__py_closed(const mapkv__py_store *s) {
  if (s->db != NULL)
    PyErr_SetString(PyExc_ValueError,
                    "the store was opened before this process forked from "
                    "its opener; open it again in this process");
  else
    PyErr_SetString(PyExc_ValueError, "operation on a closed store");
  return NULL;
}

void mapkv__py_store_enter(mapkv__py_store *s, int compaction) {
  pthread_mutex_lock(&s->mu);
  s->active++;
  if (compaction)
    s->compacting++;
  pthread_mutex_unlock(&s->mu);
}

void mapkv__py_store_leave(mapkv__py_store *s, int compaction) {
  pthread_mutex_lock(&s->mu);
  s->active--;
  if (compaction)
    s->compacting--;
  if (s->waiters > 0)
    pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* Waits with the GIL released until no call (idle) or no compaction runs.
 */
static void wait_for(mapkv__py_store *s, int idle) {
  Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&s->mu);
  s->waiters++;
  while (idle ? s->active > 0 : s->compacting > 0)
    pthread_cond_wait(&s->cv, &s->mu);
  s->waiters--;
  pthread_mutex_unlock(&s->mu);
  Py_END_ALLOW_THREADS
}

void mapkv__py_store_wait_compaction(mapkv__py_store *s) { wait_for(s, 0); }

void mapkv__py_child_link(mapkv__py_store *s, mapkv__py_child *c,
                          void (*detach)(mapkv__py_child *)) {
  c->detach = detach;
  c->next = s->children.next;
  c->prev = &s->children;
  s->children.next->prev = c;
  s->children.next = c;
}

void mapkv__py_child_unlink(mapkv__py_child *c) {
  if (c->next == NULL)
    return;
  c->prev->next = c->next;
  c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

static void detach_children(mapkv__py_store *s) {
  while (s->children.next != &s->children) {
    mapkv__py_child *c = s->children.next;
    mapkv__py_child_unlink(c);
    c->detach(c);
  }
}

/* ---- Opening and closing ------------------------------------------------- */

static int parse_sync(const char *name, int *mode) {
  if (strcmp(name, "commit") == 0)
    *mode = MAPKV_SYNC_COMMIT;
  else if (strcmp(name, "none") == 0)
    *mode = MAPKV_SYNC_NONE;
  else if (strcmp(name, "explicit") == 0)
    *mode = MAPKV_SYNC_EXPLICIT;
  else {
    PyErr_Format(PyExc_ValueError,
                 "sync must be 'commit', 'none' or 'explicit', not '%s'", name);
    return -1;
  }
  return 0;
}

/* An unsigned integer option: 0 with *out set, or -1 with TypeError (not
 * an int) or ValueError (negative, or more than max) set. NULL leaves *out
 * alone. */
static int parse_uint(PyObject *o, const char *name, unsigned long long max,
                      unsigned long long *out) {
  int overflow = 0, huge = 0;
  long long sv;
  unsigned long long v;
  if (o == NULL)
    return 0;
  if (!PyLong_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name,
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  sv = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (sv == -1 && PyErr_Occurred())
    return -1;
  if ((overflow == 0 && sv < 0) || overflow < 0) {
    PyErr_Format(PyExc_ValueError, "%s must be a non-negative int", name);
    return -1;
  }
  v = (unsigned long long)sv;
  if (overflow > 0) {
    v = PyLong_AsUnsignedLongLong(o);
    if (PyErr_Occurred()) {
      if (!PyErr_ExceptionMatches(PyExc_OverflowError))
        return -1;
      PyErr_Clear();
      huge = 1; /* beyond 64 bits */
    }
  }
  if (huge || v > max) {
    PyErr_Format(PyExc_ValueError, "%s must be at most %llu", name, max);
    return -1;
  }
  *out = v;
  return 0;
}

int mapkv__py_parse_timeout(PyObject *o, const char *name, uint32_t *ms) {
  double sec, v;
  if (o == NULL)
    return 0;
  if (!PyLong_Check(o) && !PyFloat_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s must be a number of seconds, not %.100s",
                 name, Py_TYPE(o)->tp_name);
    return -1;
  }
  sec = PyFloat_AsDouble(o);
  if (sec == -1.0 && PyErr_Occurred())
    return -1;
  v = sec * 1000.0;
  if (!(v >= 0.0) || v > (double)UINT32_MAX) {
    PyErr_Format(PyExc_ValueError,
                 "%s must be a number of seconds from 0 to %lu", name,
                 (unsigned long)(UINT32_MAX / 1000));
    return -1;
  }
  *ms = (uint32_t)v;
  if ((double)*ms < v) /* rounded up: a wait is never shorter than asked */
    ++*ms;
  return 0;
}

PyObject *mapkv__py_store_open(PyObject *module, PyObject *args,
                               PyObject *kwargs) {
  static char *kwlist[] = {"path",
                           "create",
                           "readonly",
                           "sync",
                           "expected_keys",
                           "lock_timeout",
                           "max_key_size",
                           "max_value_size",
                           "reserve",
                           "salvage",
                           NULL};
  PyObject *path, *fspath = NULL, *encoded = NULL, *expected = NULL;
  PyObject *timeout = NULL, *max_key = NULL, *max_value = NULL;
  PyObject *reserve = NULL;
  int create = 1, readonly = 0, salvage = 0, rc;
  unsigned long long n;
  const char *sync = "commit";
  mapkv_options opts;
  mapkv__py_store *s = NULL;
  mapkv_t *db = NULL;
  (void)module;

  if (!PyArg_ParseTupleAndKeywords(
          args, kwargs, "O|$ppsOOOOOp:open", kwlist, &path, &create, &readonly,
          &sync, &expected, &timeout, &max_key, &max_value, &reserve, &salvage))
    return NULL;
  mapkv_options_init(&opts);
  if (parse_sync(sync, &opts.sync_mode) < 0)
    return NULL;
  n = opts.expected_keys;
  if (parse_uint(expected, "expected_keys", ULLONG_MAX, &n) < 0)
    return NULL;
  opts.expected_keys = n;
  n = opts.max_key_size;
  if (parse_uint(max_key, "max_key_size", UINT32_MAX, &n) < 0)
    return NULL;
  opts.max_key_size = (uint32_t)n;
  n = opts.max_value_size;
  if (parse_uint(max_value, "max_value_size", UINT32_MAX, &n) < 0)
    return NULL;
  opts.max_value_size = (uint32_t)n;
  n = opts.reserve;
  if (parse_uint(reserve, "reserve", ULLONG_MAX, &n) < 0)
    return NULL;
  opts.reserve = n;
  if (mapkv__py_parse_timeout(timeout, "lock_timeout", &opts.lock_timeout_ms) <
      0)
    return NULL;
  if (salvage)
    readonly = 1;
  opts.flags = (readonly ? MAPKV_RDONLY : 0) | (create ? MAPKV_CREATE : 0) |
               (salvage ? MAPKV_VERIFY : 0);
  if ((fspath = PyOS_FSPath(path)) == NULL)
    return NULL;
  if (!PyUnicode_FSConverter(fspath, &encoded))
    goto fail;
  s = PyObject_New(mapkv__py_store, &mapkv__py_store_type);
  if (s == NULL)
    goto fail;
  s->db = NULL;
  s->path = fspath;
  fspath = NULL;
  s->readonly = readonly;
  s->sync_mode = opts.sync_mode;
  s->forkgen = mapkv__py_forkgen;
  s->pins = s->active = s->compacting = s->waiters = 0;
  s->children.next = s->children.prev = &s->children;
  s->children.detach = NULL;
  s->weakrefs = NULL;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);

  Py_BEGIN_ALLOW_THREADS rc =
      mapkv_open(PyBytes_AS_STRING(encoded), &opts, &db);
  Py_END_ALLOW_THREADS if (rc != 0) {
    mapkv__py_raise(rc);
    goto fail;
  }
  s->db = db;
  Py_DECREF(encoded);
  return (PyObject *)s;
fail:
  Py_XDECREF(s);
  Py_XDECREF(fspath);
  Py_XDECREF(encoded);
  return NULL;
}

static void store_dealloc(mapkv__py_store *s) {
  /* Nothing refers to s any more: no child, no read view, no call. */
  if (s->weakrefs != NULL)
    PyObject_ClearWeakRefs((PyObject *)s);
  if (s->db != NULL && s->forkgen == mapkv__py_forkgen) {
    mapkv_t *db = s->db;
    s->db = NULL;
    Py_BEGIN_ALLOW_THREADS mapkv_close(db);
    Py_END_ALLOW_THREADS
  }
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  Py_XDECREF(s->path);
  Py_TYPE(s)->tp_free((PyObject *)s);
}

PyDoc_STRVAR(close_doc,
             "close($self, /)\n--\n\n"
             "Flush and close the store. Pending batches are aborted and "
             "open\n"
             "iterators end. Raises BufferError while a read view is open or "
             "a\n"
             "memoryview it returned is still alive (the bytes would be "
             "unmapped);\n"
             "waits for calls running on other threads. Closing a closed "
             "store does\n"
             "nothing.");

static PyObject *store_close(mapkv__py_store *s, PyObject *unused) {
  mapkv_t *db;
  int rc;
  (void)unused;
  if (s->db != NULL && s->forkgen != mapkv__py_forkgen) {
    s->db = NULL; /* the parent's: forget it, never touch it */
    Py_RETURN_NONE;
  }
  if (s->db == NULL) {
    /* Closed, or being closed by another thread: wait until it is. */
    if (s->active > 0)
      wait_for(s, 1);
    Py_RETURN_NONE;
  }
  if (s->pins > 0) {
    PyErr_Format(PyExc_BufferError,
                 "cannot close the store: %zd read view(s) still open or "
                 "with memoryviews alive",
                 s->pins);
    return NULL;
  }
  /* From here on the store is closed to new calls; calls running on other
   * threads (with their own copy of the handle) finish first. */
  db = s->db;
  s->db = NULL;
  detach_children(s);
  while (s->active > 0)
    wait_for(s, 1);
  mapkv__py_store_enter(s, 0);
  Py_BEGIN_ALLOW_THREADS rc = mapkv_close(db);
  Py_END_ALLOW_THREADS mapkv__py_store_leave(s, 0);
  if (rc != 0)
    return mapkv__py_raise(rc);
  Py_RETURN_NONE;
}

static PyObject *store_enter(mapkv__py_store *s, PyObject *unused) {
  (void)unused;
  if (mapkv__py_store_db(s) == NULL)
    return NULL;
  Py_INCREF(s);
  return (PyObject *)s;
}

static PyObject *store_exit(mapkv__py_store *s, PyObject *const *args,
                            Py_ssize_t nargs) {
  (void)args;
  (void)nargs;
  return store_close(s, NULL);
}

/* ---- Gets ---------------------------------------------------------------- */

/* A get that copies inside the library (safe while a compaction runs on
 * another thread): 0 with *out a new bytes, or a return code (*out NULL;
 * with an exception set when the code is 1). */
static int get_copy(mapkv_t *db, const mapkv__py_bytes *k, PyObject **out) {
  char small[256];
  size_t n = 0;
  int rc = mapkv_get(db, k->p, k->n, small, sizeof small, &n);
  *out = NULL;
  if (rc == 0) {
    *out = PyBytes_FromStringAndSize(small, (Py_ssize_t)n);
    return *out != NULL ? 0 : 1;
  }
  while (rc == MAPKV_EBUFSMALL) {
    /* The value may be replaced between the calls: try again with the
     * length of the newer one. */
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    size_t got = 0;
    if (b == NULL)
      return 1;
    rc = mapkv_get(db, k->p, k->n, PyBytes_AS_STRING(b), n, &got);
    if (rc == 0) {
      if (got != n && _PyBytes_Resize(&b, (Py_ssize_t)got) < 0)
        return 1;
      *out = b;
      return 0;
    }
    Py_DECREF(b);
    n = got;
  }
  return rc;
}

/* The value of k as a new bytes: 0, MAPKV_NOTFOUND (no exception set),
 * another code, or 1 (exception set). */
static inline int lookup(mapkv__py_store *s, mapkv_t *db,
                         const mapkv__py_bytes *k, PyObject **out) {
  const void *v;
  size_t n;
  int rc;
  if (s->compacting > 0)
    return get_copy(db, k, out);
  rc = mapkv_get_view(db, k->p, k->n, &v, &n);
  if (rc != 0)
    return rc;
  *out = PyBytes_FromStringAndSize(v, (Py_ssize_t)n);
  return *out != NULL ? 0 : 1;
}

static PyObject *store_subscript(mapkv__py_store *s, PyObject *key) {
  mapkv__py_bytes k;
  mapkv_t *db;
  PyObject *res = NULL;
  int rc;
  if ((db = mapkv__py_store_db(s)) == NULL ||
      mapkv__py_bytes_get(key, &k, "key") < 0)
    return NULL;
  rc = lookup(s, db, &k, &res);
  mapkv__py_bytes_release(&k);
  if (rc == 0)
    return res;
  if (rc == MAPKV_NOTFOUND)
    return mapkv__py_raise_notfound(key);
  return rc == 1 ? NULL : mapkv__py_raise(rc);
}

PyDoc_STRVAR(get_doc, "get($self, key, default=None, /)\n--\n\n"
                      "The value of key as bytes, or default if the key is "
                      "not in the store.");

static PyObject *store_get(mapkv__py_store *s, PyObject *const *args,
                           Py_ssize_t nargs) {
  mapkv__py_bytes k;
  mapkv_t *db;
  PyObject *res = NULL;
  int rc;
  if (nargs < 1 || nargs > 2) {
    PyErr_Format(PyExc_TypeError,
                 "get expected 1 or 2 arguments (key[, default]), got %zd",
                 nargs);
    return NULL;
  }
  if ((db = mapkv__py_store_db(s)) == NULL ||
      mapkv__py_bytes_get(args[0], &k, "key") < 0)
    return NULL;
  rc = lookup(s, db, &k, &res);
  mapkv__py_bytes_release(&k);
  if (rc == 0)
    return res;
  if (rc == MAPKV_NOTFOUND) {
    res = nargs == 2 ? args[1] : Py_None;
    Py_INCREF(res);
    return res;
  }
  return rc == 1 ? NULL : mapkv__py_raise(rc);
}

PyDoc_STRVAR(get_many_doc,
             "get_many($self, keys, default=None, /)\n--\n\n"
             "The values of a sequence of keys, as a list of bytes (default "
             "for a\n"
             "key not in the store). Faster than single gets for many keys "
             "spread\n"
             "over a large store: their memory reads overlap.");

static PyObject *store_get_many(mapkv__py_store *s, PyObject *const *args,
                                Py_ssize_t nargs) {
  PyObject *seq = NULL, *list = NULL, *dflt = Py_None;
  mapkv__py_bytes *ks = NULL;
  const void **kp = NULL, **vp = NULL;
  size_t *kl = NULL, *vl = NULL;
  int *rcs = NULL;
  Py_ssize_t n, got = 0;
  mapkv_t *db;
  if (nargs < 1 || nargs > 2) {
    PyErr_Format(PyExc_TypeError,
                 "get_many expected 1 or 2 arguments (keys[, default]), got "
                 "%zd",
                 nargs);
    return NULL;
  }
  if (nargs == 2)
    dflt = args[1];
  if ((db = mapkv__py_store_db(s)) == NULL)
    return NULL;
  if (PyBytes_Check(args[0]) || PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError,
                    "get_many takes a sequence of keys, not one key");
    return NULL;
  }
  seq = PySequence_Fast(args[0], "get_many takes a sequence of keys");
  if (seq == NULL)
    return NULL;
  n = PySequence_Fast_GET_SIZE(seq);
  ks = PyMem_Malloc(sizeof *ks * (size_t)(n ? n : 1));
  kp = PyMem_Malloc(sizeof *kp * (size_t)(n ? n : 1));
  vp = PyMem_Malloc(sizeof *vp * (size_t)(n ? n : 1));
  kl = PyMem_Malloc(sizeof *kl * (size_t)(n ? n : 1));
  vl = PyMem_Malloc(sizeof *vl * (size_t)(n ? n : 1));
  rcs = PyMem_Malloc(sizeof *rcs * (size_t)(n ? n : 1));
  if (ks == NULL || kp == NULL || vp == NULL || kl == NULL || vl == NULL ||
      rcs == NULL) {
    PyErr_NoMemory();
    goto out;
  }
  for (; got < n; got++) {
    if (mapkv__py_bytes_get(PySequence_Fast_GET_ITEM(seq, got), &ks[got],
                            "key") < 0)
      goto out;
    kp[got] = ks[got].p;
    kl[got] = ks[got].n;
  }
  if ((list = PyList_New(n)) == NULL)
    goto out;
  if (s->compacting == 0) {
    int rc = mapkv_get_many(db, (size_t)n, kp, kl, vp, vl, rcs);
    if (rc != 0) {
      Py_CLEAR(list);
      mapkv__py_raise(rc);
      goto out;
    }
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *v = NULL;
    int rc;
    if (s->compacting == 0) {
      rc = rcs[i];
      if (rc == 0 &&
          (v = PyBytes_FromStringAndSize(vp[i], (Py_ssize_t)vl[i])) == NULL)
        rc = 1;
    } else {
      rc = get_copy(db, &ks[i], &v);
    }
    if (rc == MAPKV_NOTFOUND) {
      v = dflt;
      Py_INCREF(v);
    } else if (rc != 0) {
      Py_CLEAR(list);
      if (rc != 1)
        mapkv__py_raise(rc);
      goto out;
    }
    PyList_SET_ITEM(list, i, v);
  }
out:
  while (got > 0)
    mapkv__py_bytes_release(&ks[--got]);
  PyMem_Free(ks);
  PyMem_Free(kp);
  PyMem_Free(vp);
  PyMem_Free(kl);
  PyMem_Free(vl);
  PyMem_Free(rcs);
  Py_DECREF(seq);
  return list;
}

static int store_contains(mapkv__py_store *s, PyObject *key) {
  mapkv__py_bytes k;
  mapkv_t *db;
  int rc;
  if ((db = mapkv__py_store_db(s)) == NULL ||
      mapkv__py_bytes_get(key, &k, "key") < 0)
    return -1;
  rc = mapkv_exists(db, k.p, k.n);
  mapkv__py_bytes_release(&k);
  if (rc < 0) {
    mapkv__py_raise(rc);
    return -1;
  }
  return rc;
}

/* mapkv_stat(), with the GIL released when another thread may hold the
 * store's writer lock. */
static int stat_of(mapkv__py_store *s, mapkv_t *db, mapkv_stats *st) {
  int rc;
  if (s->active > 0) {
    mapkv__py_store_enter(s, 0);
    Py_BEGIN_ALLOW_THREADS rc = mapkv_stat(db, st);
    Py_END_ALLOW_THREADS mapkv__py_store_leave(s, 0);
  } else {
    rc = mapkv_stat(db, st);
  }
  return rc;
}

static Py_ssize_t store_len(mapkv__py_store *s) {
  mapkv_stats st;
  mapkv_t *db;
  int rc;
  if ((db = mapkv__py_store_db(s)) == NULL)
    return -1;
  if ((rc = stat_of(s, db, &st)) != 0) {
    mapkv__py_raise(rc);
    return -1;
  }
  if (st.records > (uint64_t)PY_SSIZE_T_MAX) {
    PyErr_SetString(PyExc_OverflowError, "too many records for len()");
    return -1;
  }
  return (Py_ssize_t)st.records;
}

/* ---- Writes -------------------------------------------------------------- */

static int store_ass_subscript(mapkv__py_store *s, PyObject *key,
                               PyObject *value) {
  mapkv__py_bytes k, v;
  mapkv_t *db;
  int rc;
  if ((db = mapkv__py_store_db(s)) == NULL ||
      mapkv__py_bytes_get(key, &k, "key") < 0)
    return -1;
  if (value != NULL && mapkv__py_bytes_get(value, &v, "value") < 0) {
    mapkv__py_bytes_release(&k);
    return -1;
  }
  if (mapkv__py_store_nogil_write(s)) {
    mapkv__py_store_enter(s, 0);
    Py_BEGIN_ALLOW_THREADS rc = value != NULL
                                    ? mapkv_put(db, k.p, k.n, v.p, v.n)
                                    : mapkv_del(db, k.p, k.n);
    Py_END_ALLOW_THREADS mapkv__py_store_leave(s, 0);
  } else {
    rc = value != NULL ? mapkv_put(db, k.p, k.n, v.p, v.n)
                       : mapkv_del(db, k.p, k.n);
  }
  mapkv__py_bytes_release(&k);
  if (value != NULL)
    mapkv__py_bytes_release(&v);
  if (rc == 0)
    return 0;
  if (rc == MAPKV_NOTFOUND)
    mapkv__py_raise_notfound(key);
  else
    mapkv__py_raise(rc);
  return -1;
}

PyDoc_STRVAR(update_doc,
             "update($self, other=(), /)\n--\n\n"
             "Store every pair of other (a mapping, or an iterable of "
             "(key, value)\n"
             "pairs) as one atomic batch.");

static PyObject *store_update(mapkv__py_store *s, PyObject *const *args,
                              Py_ssize_t nargs) {
  if (nargs > 1) {
    PyErr_Format(PyExc_TypeError, "update expected at most 1 argument, got %zd",
                 nargs);
    return NULL;
  }
  if (mapkv__py_store_db(s) == NULL)
    return NULL;
  if (nargs == 0)
    Py_RETURN_NONE;
  return mapkv__py_batch_update(s, args[0]);
}

/* ---- Maintenance --------------------------------------------------------- */

PyObject *mapkv__py_stats_dict(const mapkv_stats *st) {
  PyObject *d = PyDict_New();
  if (d == NULL)
    return NULL;
#define FIELD(name)                                                            \
  do {                                                                         \
    PyObject *v = PyLong_FromUnsignedLongLong((unsigned long long)st->name);   \
    if (v == NULL || PyDict_SetItemString(d, #name, v) < 0) {                  \
      Py_XDECREF(v);                                                           \
      Py_DECREF(d);                                                            \
      return NULL;                                                             \
    }                                                                          \
    Py_DECREF(v);                                                              \
  } while (0)
  FIELD(records);
  FIELD(live_bytes);
  FIELD(dead_bytes);
  FIELD(data_end);
  FIELD(file_size);
  FIELD(mapped_size);
  FIELD(reserved_size);
  FIELD(index_slots);
  FIELD(index_bytes);
  FIELD(last_seq);
  FIELD(generation);
  FIELD(format_version);
  FIELD(clean_open);
  FIELD(max_key_size);
  FIELD(max_value_size);
  FIELD(recovered_batches);
  FIELD(dropped_tail_bytes);
  FIELD(dropped_tail_records);
  FIELD(damaged_regions);
  FIELD(damaged_bytes);
  FIELD(first_damage_offset);
  FIELD(damaged_keys);
  FIELD(truncated_bytes);
  FIELD(checksum_failures);
#undef FIELD
  return d;
}

PyDoc_STRVAR(
    stat_doc,
    "stat($self, /)\n--\n\n"
    "Figures of the store as a dict of ints: records (live keys),\n"
    "live_bytes, dead_bytes, data_end, file_size, mapped_size,\n"
    "reserved_size, index_slots, index_bytes, last_seq, generation,\n"
    "format_version, clean_open (1 if the last open found a clean close),\n"
    "max_key_size and max_value_size (the limits this handle enforces), and\n"
    "what the last open's recovery found: recovered_batches,\n"
    "dropped_tail_bytes and dropped_tail_records (an uncommitted or torn\n"
    "tail), damaged_regions, damaged_bytes, first_damage_offset (damage\n"
    "in the middle of the log), damaged_keys (keys whose newest batch the\n"
    "damage cost: they raise CorruptError until written again),\n"
    "truncated_bytes (what the file lacks of the data its header records:\n"
    "salvage opens only); checksum_failures counts reads that met a\n"
    "damaged record since the open.");

static PyObject *store_stat(mapkv__py_store *s, PyObject *unused) {
  mapkv_stats st;
  mapkv_t *db;
  int rc;
  (void)unused;
  if ((db = mapkv__py_store_db(s)) == NULL)
    return NULL;
  if ((rc = stat_of(s, db, &st)) != 0)
    return mapkv__py_raise(rc);
  return mapkv__py_stats_dict(&st);
}

/* The damaged spans mapkv_verify() reports (collected without the GIL). */
typedef struct span {
  uint64_t off, len;
  char *what;
} span;

typedef struct spans {
  span *v;
  size_t n, cap;
} spans;

static void on_damage(void *ctx, uint64_t off, uint64_t len, const char *what) {
  spans *sp = ctx;
  if (sp->n == sp->cap) {
    size_t cap = sp->cap ? sp->cap * 2 : 8;
    span *v = realloc(sp->v, cap * sizeof *v);
    if (v == NULL)
      return; /* the count in the message stays exact */
    sp->v = v;
    sp->cap = cap;
  }
  sp->v[sp->n].off = off;
  sp->v[sp->n].len = len;
  sp->v[sp->n].what = strdup(what != NULL ? what : "");
  sp->n++;
}

PyDoc_STRVAR(verify_doc,
             "verify($self, /)\n--\n\n"
             "Check every record's checksum and the batch structure of the "
             "whole\n"
             "file. Returns None if the store is intact; raises CorruptError "
             "if\n"
             "not, whose `damage` attribute lists every damaged span as\n"
             "(file_offset, length, reason). Writers wait while it runs.");

static PyObject *store_verify(mapkv__py_store *s, PyObject *unused) {
  spans sp = {NULL, 0, 0};
  uint64_t damaged = 0;
  PyObject *exc = NULL, *list = NULL;
  mapkv_t *db;
  int rc;
  (void)unused;
  if ((db = mapkv__py_store_db(s)) == NULL)
    return NULL;
  mapkv__py_store_enter(s, 0);
  Py_BEGIN_ALLOW_THREADS rc = mapkv_verify(db, on_damage, &sp, &damaged);
  Py_END_ALLOW_THREADS mapkv__py_store_leave(s, 0);
  if (rc == MAPKV_ECORRUPT && (exc = mapkv__py_exception(rc)) != NULL &&
      (list = PyList_New(0)) != NULL) {
    for (size_t i = 0; i < sp.n; i++) {
      PyObject *t = Py_BuildValue("(KKs)", (unsigned long long)sp.v[i].off,
                                  (unsigned long long)sp.v[i].len,
                                  sp.v[i].what ? sp.v[i].what : "");
      if (t == NULL || PyList_Append(list, t) < 0) {
        Py_XDECREF(t);
        Py_CLEAR(list);
        break;
      }
      Py_DECREF(t);
    }
    if (list != NULL && PyObject_SetAttrString(exc, "damage", list) == 0)
      PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  } else if (rc != 0 && rc != MAPKV_ECORRUPT) {
    mapkv__py_raise(rc);
  }
  Py_XDECREF(list);
  Py_XDECREF(exc);
  for (size_t i = 0; i < sp.n; i++)
    free(sp.v[i].what);
  free(sp.v);
  if (rc != 0)
    return NULL;
  Py_RETURN_NONE;
}

PyDoc_STRVAR(compact_doc,
             "compact($self, /)\n--\n\n"
             "Rewrite the live records into a new file that atomically "
             "replaces\n"
             "the store (a crash leaves the old or the new one). Gets on "
             "other\n"
             "threads go on meanwhile; writers wait. Raises BufferError while "
             "a\n"
             "read view is open or a memoryview it returned is alive. Open\n"
             "iterators raise ChangedError afterwards.");

static PyObject *store_compact(mapkv__py_store *s, PyObject *unused) {
  mapkv_t *db;
  int rc;
  (void)unused;
  if ((db = mapkv__py_store_db(s)) == NULL)
    return NULL;
  if (s->pins > 0) {
    PyErr_Format(PyExc_BufferError,
                 "cannot compact the store: %zd read view(s) still open or "
                 "with memoryviews alive",
                 s->pins);
    return NULL;
  }
  mapkv__py_store_enter(s, 1);
  Py_BEGIN_ALLOW_THREADS rc = mapkv_compact(db);
  Py_END_ALLOW_THREADS mapkv__py_store_leave(s, 1);
  if (rc != 0)
    return mapkv__py_raise(rc);
  Py_RETURN_NONE;
}

PyDoc_STRVAR(sync_doc, "sync($self, /)\n--\n\n"
                       "Make every commit so far durable (with sync='none' or "
                       "'explicit').\n"
                       "ReadOnlyError on a read-only store.");

static PyObject *store_sync(mapkv__py_store *s, PyObject *unused) {
  mapkv_t *db;
  int rc;
  (void)unused;
  if ((db = mapkv__py_store_db(s)) == NULL)
    return NULL;
  mapkv__py_store_enter(s, 0);
  Py_BEGIN_ALLOW_THREADS rc = mapkv_sync(db);
  Py_END_ALLOW_THREADS mapkv__py_store_leave(s, 0);
  if (rc != 0)
    return mapkv__py_raise(rc);
  Py_RETURN_NONE;
}

/* ---- Iteration, batches, read views -------------------------------------- */

static PyObject *iter_of(mapkv__py_store *s, PyObject *args, PyObject *kwargs,
                         int kind, const char *fmt) {
  static char *kwlist[] = {"prefix", NULL};
  PyObject *prefix = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, fmt, kwlist, &prefix))
    return NULL;
  return mapkv__py_iter_new(s, kind, prefix);
}

PyDoc_STRVAR(keys_doc,
             "keys($self, /, prefix=b'')\n--\n\n"
             "An iterator over the keys (bytes) of the store, or of those "
             "that start\n"
             "with prefix. The order is the file's, not the keys'. It sees "
             "the records\n"
             "committed when it started; a key changed since is reported "
             "with its\n"
             "newest value if that was committed before, and skipped "
             "otherwise.");

static PyObject *store_keys(mapkv__py_store *s, PyObject *args,
                            PyObject *kwargs) {
  return iter_of(s, args, kwargs, MAPKV__PY_KEYS, "|O:keys");
}

PyDoc_STRVAR(values_doc, "values($self, /, prefix=b'')\n--\n\n"
                         "An iterator over the values (bytes), as keys().");

static PyObject *store_values(mapkv__py_store *s, PyObject *args,
                              PyObject *kwargs) {
  return iter_of(s, args, kwargs, MAPKV__PY_VALUES, "|O:values");
}

PyDoc_STRVAR(items_doc,
             "items($self, /, prefix=b'')\n--\n\n"
             "An iterator over (key, value) pairs of bytes, as keys().");

static PyObject *store_items(mapkv__py_store *s, PyObject *args,
                             PyObject *kwargs) {
  return iter_of(s, args, kwargs, MAPKV__PY_ITEMS, "|O:items");
}

static PyObject *store_iter(mapkv__py_store *s) {
  return mapkv__py_iter_new(s, MAPKV__PY_KEYS, NULL);
}

PyDoc_STRVAR(batch_doc,
             "batch($self, /)\n--\n\n"
             "A new atomic write batch. Used as a context manager, it "
             "commits when\n"
             "the block ends and aborts if the block raises:\n"
             "\n"
             "    with db.batch() as b:\n"
             "        b[b'k1'] = b'v1'\n"
             "        del b[b'k2']\n"
             "\n"
             "Its puts and deletes become visible (and, with sync='commit', "
             "durable)\n"
             "together or not at all.");

static PyObject *store_batch(mapkv__py_store *s, PyObject *unused) {
  (void)unused;
  return mapkv__py_batch_new(s);
}

PyDoc_STRVAR(read_doc,
             "read($self, /)\n--\n\n"
             "A read view for zero-copy reads, used as a context manager:\n"
             "\n"
             "    with db.read() as r:\n"
             "        view = r[b'key']        # memoryview of the mapped "
             "bytes\n"
             "\n"
             "The memoryviews it returns are valid inside the block; "
             "afterwards they\n"
             "are released (using one raises ValueError). While the view is "
             "open, or\n"
             "a memoryview derived from one of its values (such as a slice) "
             "is\n"
             "alive, close() and compact() raise BufferError.");

static PyObject *store_read(mapkv__py_store *s, PyObject *unused) {
  (void)unused;
  return mapkv__py_read_new(s);
}

/* ---- Attributes ---------------------------------------------------------- */

static PyObject *store_get_path(mapkv__py_store *s, void *c) {
  (void)c;
  Py_INCREF(s->path);
  return s->path;
}

static PyObject *store_get_readonly(mapkv__py_store *s, void *c) {
  (void)c;
  return PyBool_FromLong(s->readonly);
}

static PyObject *store_get_closed(mapkv__py_store *s, void *c) {
  (void)c;
  return PyBool_FromLong(!mapkv__py_store_usable(s));
}

static PyObject *store_get_sync(mapkv__py_store *s, void *c) {
  (void)c;
  return PyUnicode_FromString(s->sync_mode == MAPKV_SYNC_COMMIT ? "commit"
                              : s->sync_mode == MAPKV_SYNC_NONE ? "none"
                                                                : "explicit");
}

static PyObject *store_repr(mapkv__py_store *s) {
  return PyUnicode_FromFormat("<mapkv.Store %R%s%s>", s->path,
                              s->readonly ? " readonly" : "",
                              mapkv__py_store_usable(s) ? "" : " closed");
}

static PyGetSetDef store_getset[] = {
    {"path", (getter)store_get_path, NULL, "The path the store was opened at.",
     NULL},
    {"readonly", (getter)store_get_readonly, NULL,
     "Whether the store was opened read-only.", NULL},
    {"closed", (getter)store_get_closed, NULL, "Whether the store is closed.",
     NULL},
    {"sync_mode", (getter)store_get_sync, NULL,
     "The sync mode: 'commit', 'none' or 'explicit'.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

#define FASTCALL(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL
#define KWARGS(f)   (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS

static PyMethodDef store_methods[] = {
    {"get", FASTCALL(store_get), get_doc},
    {"get_many", FASTCALL(store_get_many), get_many_doc},
    {"update", FASTCALL(store_update), update_doc},
    {"keys", KWARGS(store_keys), keys_doc},
    {"values", KWARGS(store_values), values_doc},
    {"items", KWARGS(store_items), items_doc},
    {"batch", (PyCFunction)store_batch, METH_NOARGS, batch_doc},
    {"read", (PyCFunction)store_read, METH_NOARGS, read_doc},
    {"stat", (PyCFunction)store_stat, METH_NOARGS, stat_doc},
    {"verify", (PyCFunction)store_verify, METH_NOARGS, verify_doc},
    {"compact", (PyCFunction)store_compact, METH_NOARGS, compact_doc},
    {"sync", (PyCFunction)store_sync, METH_NOARGS, sync_doc},
    {"close", (PyCFunction)store_close, METH_NOARGS, close_doc},
    {"__enter__", (PyCFunction)store_enter, METH_NOARGS,
     "__enter__($self, /)\n--\n\nReturn the store itself."},
    {"__exit__", FASTCALL(store_exit),
     "__exit__($self, exc_type, exc, tb, /)\n--\n\nClose the store."},
    {NULL, NULL, 0, NULL}};

static PyMappingMethods store_as_mapping = {
    (lenfunc)store_len,
    (binaryfunc)store_subscript,
    (objobjargproc)store_ass_subscript,
};

static PySequenceMethods store_as_sequence = {
    .sq_contains = (objobjproc)store_contains,
};

PyDoc_STRVAR(store_doc,
             "An open mapkv store: a mapping of bytes keys to bytes values "
             "in one\n"
             "memory-mapped file. Made by mapkv.open().\n"
             "\n"
             "    db[key]             the value (bytes); KeyError "
             "(NotFoundError) if\n"
             "                        the key is missing\n"
             "    db[key] = value     store (one atomic commit; durable with "
             "sync='commit')\n"
             "    del db[key]         delete; KeyError if missing\n"
             "    key in db, len(db), iter(db), db.get(key, default)\n"
             "\n"
             "Keys and values may be any bytes-like object (bytes, bytearray, "
             "memoryview);\n"
             "str is refused with TypeError. A store is a context manager "
             "that closes\n"
             "it, and may be shared by threads: gets never wait for commits, "
             "and calls\n"
             "that may block release the GIL.");

PyTypeObject mapkv__py_store_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mapkv.Store",
    .tp_basicsize = sizeof(mapkv__py_store),
    .tp_dealloc = (destructor)store_dealloc,
    .tp_repr = (reprfunc)store_repr,
    .tp_as_sequence = &store_as_sequence,
    .tp_as_mapping = &store_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = store_doc,
    .tp_weaklistoffset = offsetof(mapkv__py_store, weakrefs),
    .tp_iter = (getiterfunc)store_iter,
    .tp_methods = store_methods,
    .tp_getset = store_getset,
};
