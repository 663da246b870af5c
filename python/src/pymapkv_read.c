/*
 * pymapkv_read.c — mapkv.ReadView: zero-copy reads, r[key] returning a
 * memoryview of the value's bytes inside the mapping.
 *
 * The read view is the exporter of those memoryviews (the buffer
 * protocol): r[key] sets the value's address as the one pending export and
 * asks for a memoryview of the view itself, so each memoryview's managed
 * buffer holds a reference to the read view and gives its export back
 * (read_releasebuffer) when the last memoryview sharing it is gone or
 * released. `exports` counts those live exports.
 *
 * Life: the view starts pinned (store->pins), which keeps Store.close()
 * and compact() from unmapping the bytes. When its block ends (close()),
 * it releases every memoryview it handed out that can be released, so
 * using one afterwards raises ValueError. A memoryview made from one of
 * them (a slice, memoryview(mv)) shares its managed buffer and survives
 * that release; the export, and with it the pin, then lasts until the last
 * of them is gone: the bytes are never unmapped under a live memoryview.
 *
 * The handed-out memoryviews are kept (strong references) so that the end
 * can release them; ones nobody else refers to any more are dropped when
 * the list grows, so it stays proportional to the live ones.
 *
 * A snapshot of its own: the C library has no read transaction yet; a
 * view's gets see the newest commits, and its pointers stay valid as
 * mapkv_get_view()'s do (until compact or close, both refused while
 * pinned). With a C read view, view_begin(), view_get() and view_end() are
 * the three places that change: begin it, get through it, and end it once
 * the view has ended and its last export is gone (pin_release()).
 */
#include "pymapkv.h"

typedef struct mapkv__py_read {
  PyObject ob_base;
  mapkv__py_store *store; /* strong reference */
  int open;               /* inside its block */
  int pinned;             /* counted in store->pins */
  Py_ssize_t exports;     /* live buffer exports */
  /* The export r[key] is asking for (getbuffer refuses any other). */
  const void *pending;
  Py_ssize_t pending_len;
  int has_pending;
  PyObject **views; /* memoryviews handed out (strong references) */
  Py_ssize_t nviews, cap;
} mapkv__py_read;

static PyObject *str_release; /* "release" */

/* ---- The three calls a C read view would change -------------------------- */

static int view_begin(mapkv__py_read *r) {
  (void)r; /* would be: mapkv_read_begin(db, &r->rv) */
  return 0;
}

static int view_get(mapkv__py_read *r, const mapkv__py_bytes *k, const void **v,
                    size_t *n) {
  /* would be: a get through r->rv */
  return mapkv_get_view(r->store->db, k->p, k->n, v, n);
}

static void view_end(mapkv__py_read *r) {
  (void)r; /* would be: mapkv_read_end(r->rv) */
}

/* ---- Pinning ------------------------------------------------------------- */

static void pin_release(mapkv__py_read *r) {
  if (!r->pinned)
    return;
  r->pinned = 0;
  r->store->pins--;
  view_end(r);
}

PyObject *mapkv__py_read_new(mapkv__py_store *s) {
  mapkv__py_read *r;
  for (;;) {
    if (mapkv__py_store_db(s) == NULL)
      return NULL;
    if (s->compacting == 0)
      break;
    mapkv__py_store_wait_compaction(s);
  }
  r = PyObject_GC_New(mapkv__py_read, &mapkv__py_read_type);
  if (r == NULL)
    return NULL;
  Py_INCREF(s);
  r->store = s;
  r->open = 1;
  r->pinned = 1;
  r->exports = 0;
  r->pending = NULL;
  r->pending_len = 0;
  r->has_pending = 0;
  r->views = NULL;
  r->nviews = r->cap = 0;
  s->pins++;
  if (view_begin(r) != 0) {
    r->open = 0;
    r->pinned = 0;
    s->pins--;
    Py_DECREF(r);
    return NULL;
  }
  PyObject_GC_Track(r);
  return (PyObject *)r;
}

/* Drops the list of handed-out memoryviews; with release, releases each
 * first (a memoryview with exports of its own refuses, and keeps its
 * managed buffer, hence the pin, alive until it goes). */
static void drop_views(mapkv__py_read *r, int release) {
  PyObject **views = r->views;
  Py_ssize_t n = r->nviews;
  r->views = NULL;
  r->nviews = r->cap = 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    if (release && Py_REFCNT(views[i]) > 1) {
      PyObject *res = PyObject_CallMethodNoArgs(views[i], str_release);
      if (res == NULL)
        PyErr_Clear();
      Py_XDECREF(res);
    }
    Py_DECREF(views[i]);
  }
  PyMem_Free(views);
}

/* Keeps mv in the list, first dropping the ones only the list refers to
 * when it is full. */
static int keep_view(mapkv__py_read *r, PyObject *mv) {
  if (r->nviews == r->cap) {
    Py_ssize_t live = 0, cap;
    PyObject **v;
    for (Py_ssize_t i = 0; i < r->nviews; i++) {
      if (Py_REFCNT(r->views[i]) == 1)
        Py_DECREF(r->views[i]);
      else
        r->views[live++] = r->views[i];
    }
    r->nviews = live;
    if (live >= r->cap / 2) {
      cap = r->cap ? r->cap * 2 : 16;
      v = PyMem_Realloc(r->views, sizeof *v * (size_t)cap);
      if (v == NULL) {
        PyErr_NoMemory();
        return -1;
      }
      r->views = v;
      r->cap = cap;
    }
  }
  r->views[r->nviews++] = mv;
  return 0;
}

/* ---- Buffer protocol ----------------------------------------------------- */

static int read_getbuffer(mapkv__py_read *r, Py_buffer *view, int flags) {
  if (!r->has_pending) {
    PyErr_SetString(PyExc_BufferError,
                    "a read view exports the values r[key] returns, not "
                    "itself");
    view->obj = NULL;
    return -1;
  }
  if (PyBuffer_FillInfo(view, (PyObject *)r, (void *)r->pending, r->pending_len,
                        1, flags) < 0)
    return -1;
  r->exports++;
  return 0;
}

static void read_releasebuffer(mapkv__py_read *r, Py_buffer *view) {
  (void)view;
  if (--r->exports == 0 && !r->open)
    pin_release(r);
}

static PyBufferProcs read_as_buffer = {
    (getbufferproc)read_getbuffer,
    (releasebufferproc)read_releasebuffer,
};

/* ---- Gets ---------------------------------------------------------------- */

/* The store handle for a get through r, or NULL with ValueError set. */
static mapkv_t *usable(mapkv__py_read *r) {
  if (!r->open) {
    PyErr_SetString(PyExc_ValueError,
                    "the read view has ended (use it inside its with block)");
    return NULL;
  }
  return mapkv__py_store_db(r->store);
}

/* A memoryview of the value of key: 0 with *out set, MAPKV_NOTFOUND, or
 * -1 with an exception set. */
static int get_view(mapkv__py_read *r, PyObject *key, PyObject **out) {
  static const char empty[1];
  mapkv__py_bytes k;
  const void *v;
  size_t n;
  PyObject *mv;
  int rc;
  if (usable(r) == NULL || mapkv__py_bytes_get(key, &k, "key") < 0)
    return -1;
  rc = view_get(r, &k, &v, &n);
  mapkv__py_bytes_release(&k);
  if (rc != 0) {
    if (rc == MAPKV_NOTFOUND)
      return rc;
    mapkv__py_raise(rc);
    return -1;
  }
  r->pending = n > 0 ? v : empty;
  r->pending_len = (Py_ssize_t)n;
  r->has_pending = 1;
  mv = PyMemoryView_FromObject((PyObject *)r);
  r->has_pending = 0;
  if (mv == NULL)
    return -1;
  if (keep_view(r, mv) < 0) {
    Py_DECREF(mv);
    return -1;
  }
  Py_INCREF(mv);
  *out = mv;
  return 0;
}

static PyObject *read_subscript(mapkv__py_read *r, PyObject *key) {
  PyObject *mv;
  int rc = get_view(r, key, &mv);
  if (rc == 0)
    return mv;
  return rc == MAPKV_NOTFOUND ? mapkv__py_raise_notfound(key) : NULL;
}

PyDoc_STRVAR(read_get_doc,
             "get($self, key, default=None, /)\n--\n\n"
             "A memoryview of the value of key, as r[key], or default if the "
             "key is\n"
             "not in the store.");

static PyObject *read_get(mapkv__py_read *r, PyObject *const *args,
                          Py_ssize_t nargs) {
  PyObject *mv;
  int rc;
  if (nargs < 1 || nargs > 2) {
    PyErr_Format(PyExc_TypeError,
                 "get expected 1 or 2 arguments (key[, default]), got %zd",
                 nargs);
    return NULL;
  }
  rc = get_view(r, args[0], &mv);
  if (rc == 0)
    return mv;
  if (rc != MAPKV_NOTFOUND)
    return NULL;
  mv = nargs == 2 ? args[1] : Py_None;
  Py_INCREF(mv);
  return mv;
}

static int read_contains(mapkv__py_read *r, PyObject *key) {
  mapkv__py_bytes k;
  mapkv_t *db;
  int rc;
  if ((db = usable(r)) == NULL || mapkv__py_bytes_get(key, &k, "key") < 0)
    return -1;
  rc = mapkv_exists(db, k.p, k.n);
  mapkv__py_bytes_release(&k);
  if (rc < 0) {
    mapkv__py_raise(rc);
    return -1;
  }
  return rc;
}

/* ---- Ending -------------------------------------------------------------- */

PyDoc_STRVAR(read_close_doc,
             "close($self, /)\n--\n\n"
             "End the read view (what the end of its with block does): every "
             "memoryview\n"
             "it returned is released, and it takes no more gets. Ending an "
             "ended\n"
             "view does nothing.");

static PyObject *read_close(mapkv__py_read *r, PyObject *unused) {
  (void)unused;
  if (!r->open)
    Py_RETURN_NONE;
  r->open = 0;
  drop_views(r, 1);
  if (r->exports == 0)
    pin_release(r);
  Py_RETURN_NONE;
}

static PyObject *read_enter(mapkv__py_read *r, PyObject *unused) {
  (void)unused;
  if (usable(r) == NULL)
    return NULL;
  Py_INCREF(r);
  return (PyObject *)r;
}

static PyObject *read_exit(mapkv__py_read *r, PyObject *const *args,
                           Py_ssize_t nargs) {
  (void)args;
  (void)nargs;
  return read_close(r, NULL);
}

static int read_traverse(mapkv__py_read *r, visitproc visit, void *arg) {
  Py_VISIT(r->store);
  for (Py_ssize_t i = 0; i < r->nviews; i++)
    Py_VISIT(r->views[i]);
  return 0;
}

/* The memoryviews refer back to r (through their managed buffers): a view
 * left open and dropped is such a cycle. Breaking it gives the exports
 * back; the store reference stays for pin_release(). */
static int read_clear(mapkv__py_read *r) {
  r->open = 0;
  drop_views(r, 0);
  return 0;
}

static void read_dealloc(mapkv__py_read *r) {
  PyObject_GC_UnTrack(r);
  r->open = 0;
  drop_views(r, 0);
  /* Every export held a reference to r: none is left. */
  pin_release(r);
  Py_DECREF(r->store);
  PyObject_GC_Del(r);
}

static PyObject *read_get_closed(mapkv__py_read *r, void *c) {
  (void)c;
  return PyBool_FromLong(!r->open);
}

static PyObject *read_get_exports(mapkv__py_read *r, void *c) {
  (void)c;
  return PyLong_FromSsize_t(r->exports);
}

static PyObject *read_repr(mapkv__py_read *r) {
  return PyUnicode_FromFormat("<mapkv.ReadView of %R, %s, %zd export(s)>",
                              r->store->path, r->open ? "open" : "ended",
                              r->exports);
}

static PyMethodDef read_methods[] = {
    {"get", (PyCFunction)(void (*)(void))read_get, METH_FASTCALL, read_get_doc},
    {"close", (PyCFunction)read_close, METH_NOARGS, read_close_doc},
    {"__enter__", (PyCFunction)read_enter, METH_NOARGS,
     "__enter__($self, /)\n--\n\nReturn the read view itself."},
    {"__exit__", (PyCFunction)(void (*)(void))read_exit, METH_FASTCALL,
     "__exit__($self, exc_type, exc, tb, /)\n--\n\nEnd the read view."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef read_getset[] = {
    {"closed", (getter)read_get_closed, NULL, "Whether the view has ended.",
     NULL},
    {"exports", (getter)read_get_exports, NULL,
     "Buffers of values still exported (memoryviews alive, or derived ones).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMappingMethods read_as_mapping = {
    NULL,
    (binaryfunc)read_subscript,
    NULL,
};

static PySequenceMethods read_as_sequence = {
    .sq_contains = (objobjproc)read_contains,
};

PyDoc_STRVAR(read_doc,
             "A read view, made by Store.read(), for zero-copy reads:\n"
             "\n"
             "    with db.read() as r:\n"
             "        mv = r[key]         # memoryview of the value in the "
             "mapping\n"
             "        r.get(key, default), key in r\n"
             "\n"
             "The memoryviews are read-only and valid inside the block; when "
             "it ends\n"
             "they are released, and using one raises ValueError. Slices of "
             "them, and\n"
             "other memoryviews made from them, stay valid as long as they "
             "live, and\n"
             "until they are gone the store refuses close() and compact() "
             "with\n"
             "BufferError.");

PyTypeObject mapkv__py_read_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mapkv.ReadView",
    .tp_basicsize = sizeof(mapkv__py_read),
    .tp_dealloc = (destructor)read_dealloc,
    .tp_repr = (reprfunc)read_repr,
    .tp_as_sequence = &read_as_sequence,
    .tp_as_mapping = &read_as_mapping,
    .tp_as_buffer = &read_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = read_doc,
    .tp_traverse = (traverseproc)read_traverse,
    .tp_clear = (inquiry)read_clear,
    .tp_methods = read_methods,
    .tp_getset = read_getset,
};

int mapkv__py_read_init(void) {
  str_release = PyUnicode_InternFromString("release");
  return str_release != NULL ? 0 : -1;
}
