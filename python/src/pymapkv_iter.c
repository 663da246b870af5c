/*
 * pymapkv_iter.c — mapkv.Iterator: keys, values or items of a store (or of
 * the keys with a prefix), over a mapkv_cursor_t.
 *
 * Each step copies what the cursor points at into new bytes with the GIL
 * held. A compaction running on another thread could unmap those bytes
 * between the cursor's return and the copy, so a step waits for a running
 * compaction to end first (the cursor then reports ChangedError, since the
 * file it walked is gone). The cursor is freed when the iteration ends,
 * when the iterator dies, or when its store closes (then the next step
 * raises ValueError).
 */
#include "pymapkv.h"

typedef struct mapkv__py_iter {
  PyObject ob_base;
  mapkv__py_child link;   /* in store->children while the cursor is open */
  mapkv__py_store *store; /* strong reference */
  mapkv_cursor_t *cur;    /* NULL once ended */
  int kind;               /* MAPKV__PY_KEYS, _VALUES, _ITEMS */
  int closed_by_store;
} mapkv__py_iter;

#define ITER_OF(c)                                                             \
  ((mapkv__py_iter *)((char *)(c)-offsetof(mapkv__py_iter, link)))

static void end(mapkv__py_iter *self) {
  if (self->cur == NULL)
    return;
  mapkv__py_child_unlink(&self->link);
  mapkv_cursor_close(self->cur);
  self->cur = NULL;
}

static void iter_detach(mapkv__py_child *c) {
  mapkv__py_iter *self = ITER_OF(c);
  mapkv_cursor_close(self->cur);
  self->cur = NULL;
  self->closed_by_store = 1;
}

PyObject *mapkv__py_iter_new(mapkv__py_store *s, int kind, PyObject *prefix) {
  mapkv__py_bytes p;
  mapkv__py_iter *self;
  mapkv_cursor_t *cur;
  mapkv_t *db;
  int rc;
  p.p = NULL;
  p.n = 0;
  p.has_view = 0;
  if ((db = mapkv__py_store_db(s)) == NULL)
    return NULL;
  if (prefix != NULL && mapkv__py_bytes_get(prefix, &p, "prefix") < 0)
    return NULL;
  rc = mapkv_cursor_open(db, p.p, p.n, &cur);
  mapkv__py_bytes_release(&p);
  if (rc != 0)
    return mapkv__py_raise(rc);
  self = PyObject_New(mapkv__py_iter, &mapkv__py_iter_type);
  if (self == NULL) {
    mapkv_cursor_close(cur);
    return NULL;
  }
  Py_INCREF(s);
  self->store = s;
  self->cur = cur;
  self->kind = kind;
  self->closed_by_store = 0;
  mapkv__py_child_link(s, &self->link, iter_detach);
  return (PyObject *)self;
}

static void iter_dealloc(mapkv__py_iter *self) {
  end(self);
  Py_DECREF(self->store);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *iter_next(mapkv__py_iter *self) {
  const void *k, *v;
  size_t kl, vl;
  PyObject *key, *val;
  int rc;
  while (self->cur != NULL && self->store->compacting > 0)
    mapkv__py_store_wait_compaction(self->store);
  if (self->cur == NULL) {
    if (self->closed_by_store)
      mapkv__py_closed(self->store);
    return NULL; /* ended: StopIteration */
  }
  if (!mapkv__py_store_usable(self->store))
    return mapkv__py_closed(self->store);
  rc = mapkv_cursor_next(self->cur, &k, &kl, &v, &vl);
  if (rc != 0) {
    end(self);
    return rc == MAPKV_NOTFOUND ? NULL : mapkv__py_raise(rc);
  }
  switch (self->kind) {
  case MAPKV__PY_KEYS:
    return PyBytes_FromStringAndSize(k, (Py_ssize_t)kl);
  case MAPKV__PY_VALUES:
    return PyBytes_FromStringAndSize(v, (Py_ssize_t)vl);
  default:
    key = PyBytes_FromStringAndSize(k, (Py_ssize_t)kl);
    val = key != NULL ? PyBytes_FromStringAndSize(v, (Py_ssize_t)vl) : NULL;
    if (val != NULL) {
      PyObject *t = PyTuple_New(2);
      if (t != NULL) {
        PyTuple_SET_ITEM(t, 0, key);
        PyTuple_SET_ITEM(t, 1, val);
        return t;
      }
      Py_DECREF(val);
    }
    Py_XDECREF(key);
    return NULL;
  }
}

static PyObject *iter_repr(mapkv__py_iter *self) {
  static const char *kinds[] = {"keys", "values", "items"};
  return PyUnicode_FromFormat("<mapkv.Iterator over the %s of %R%s>",
                              kinds[self->kind], self->store->path,
                              self->cur == NULL ? ", ended" : "");
}

PyDoc_STRVAR(iter_doc,
             "An iterator over the keys, values or items of a store, made by "
             "Store.keys(),\n"
             "values(), items() or iter(store). The order is the file's. A "
             "compaction\n"
             "of the store makes it raise ChangedError; closing the store, "
             "ValueError.");

PyTypeObject mapkv__py_iter_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mapkv.Iterator",
    .tp_basicsize = sizeof(mapkv__py_iter),
    .tp_dealloc = (destructor)iter_dealloc,
    .tp_repr = (reprfunc)iter_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = iter_doc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)iter_next,
};
