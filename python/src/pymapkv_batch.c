/*
 * pymapkv_batch.c — mapkv.Batch: an atomic write batch (mapkv_batch_t).
 *
 * States: pending (b != NULL) until commit(), abort(), the end of its
 * `with` block, or the close of its store (which aborts it); then done,
 * and every operation raises ValueError. The C batch copies keys and
 * values as they are added, so nothing of the caller's is kept. Before a
 * commit releases the GIL, the C batch is taken out of the object, so no
 * other thread can add to it or commit it twice.
 */
#include "pymapkv.h"

typedef struct mapkv__py_batch {
  PyObject ob_base;
  mapkv__py_child link;   /* in store->children while pending */
  mapkv__py_store *store; /* strong reference */
  mapkv_batch_t *b;       /* NULL when done */
  Py_ssize_t nops;        /* puts and deletes added */
  const char *done;       /* why it is done: "committed", "aborted", ... */
  int ended;              /* by commit() or abort() (even a failed commit) */
} mapkv__py_batch;

#define BATCH_OF(c)                                                            \
  ((mapkv__py_batch *)((char *)(c)-offsetof(mapkv__py_batch, link)))

static void batch_detach(mapkv__py_child *c) {
  mapkv__py_batch *self = BATCH_OF(c);
  mapkv_batch_abort(self->b);
  self->b = NULL;
  self->done = "aborted by the close of its store";
}

PyObject *mapkv__py_batch_new(mapkv__py_store *s) {
  mapkv__py_batch *self;
  mapkv_batch_t *b;
  mapkv_t *db;
  int rc;
  if ((db = mapkv__py_store_db(s)) == NULL)
    return NULL;
  if ((rc = mapkv_batch_begin(db, &b)) != 0)
    return mapkv__py_raise(rc);
  self = PyObject_New(mapkv__py_batch, &mapkv__py_batch_type);
  if (self == NULL) {
    mapkv_batch_abort(b);
    return NULL;
  }
  Py_INCREF(s);
  self->store = s;
  self->b = b;
  self->nops = 0;
  self->done = NULL;
  self->ended = 0;
  mapkv__py_child_link(s, &self->link, batch_detach);
  return (PyObject *)self;
}

static void batch_dealloc(mapkv__py_batch *self) {
  if (self->b != NULL) {
    mapkv__py_child_unlink(&self->link);
    mapkv_batch_abort(self->b);
  }
  Py_DECREF(self->store);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The pending C batch, or NULL with ValueError set. */
static mapkv_batch_t *pending(mapkv__py_batch *self) {
  if (self->b != NULL && mapkv__py_store_usable(self->store))
    return self->b;
  if (self->b == NULL)
    PyErr_Format(PyExc_ValueError, "the batch was %s", self->done);
  else
    mapkv__py_closed(self->store);
  return NULL;
}

static int batch_add(mapkv__py_batch *self, PyObject *key, PyObject *value) {
  mapkv__py_bytes k, v;
  mapkv_batch_t *b;
  int rc;
  if ((b = pending(self)) == NULL || mapkv__py_bytes_get(key, &k, "key") < 0)
    return -1;
  if (value != NULL && mapkv__py_bytes_get(value, &v, "value") < 0) {
    mapkv__py_bytes_release(&k);
    return -1;
  }
  rc = value != NULL ? mapkv_batch_put(b, k.p, k.n, v.p, v.n)
                     : mapkv_batch_del(b, k.p, k.n);
  mapkv__py_bytes_release(&k);
  if (value != NULL)
    mapkv__py_bytes_release(&v);
  if (rc != 0) {
    mapkv__py_raise(rc);
    return -1;
  }
  self->nops++;
  return 0;
}

static int batch_ass_subscript(mapkv__py_batch *self, PyObject *key,
                               PyObject *value) {
  return batch_add(self, key, value);
}

PyDoc_STRVAR(put_doc, "put($self, key, value, /)\n--\n\n"
                      "Add a put of value under key (same as b[key] = "
                      "value).");

static PyObject *batch_put(mapkv__py_batch *self, PyObject *const *args,
                           Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_Format(PyExc_TypeError, "put expected 2 arguments, got %zd", nargs);
    return NULL;
  }
  if (batch_add(self, args[0], args[1]) < 0)
    return NULL;
  Py_RETURN_NONE;
}

PyDoc_STRVAR(delete_doc,
             "delete($self, key, /)\n--\n\n"
             "Add a delete of key (same as del b[key]). A key that is not in "
             "the\n"
             "store when the batch commits is no error.");

static PyObject *batch_delete(mapkv__py_batch *self, PyObject *key) {
  if (batch_add(self, key, NULL) < 0)
    return NULL;
  Py_RETURN_NONE;
}

/* Ends the batch: commits it (with the GIL released) or aborts it. */
static PyObject *finish(mapkv__py_batch *self, int commit) {
  mapkv__py_store *s = self->store;
  mapkv_batch_t *b;
  int rc;
  if ((b = pending(self)) == NULL)
    return NULL;
  self->b = NULL;
  self->ended = 1;
  mapkv__py_child_unlink(&self->link);
  if (!commit) {
    mapkv_batch_abort(b);
    self->done = "aborted";
    Py_RETURN_NONE;
  }
  mapkv__py_store_enter(s, 0);
  Py_BEGIN_ALLOW_THREADS rc = mapkv_batch_commit(b);
  Py_END_ALLOW_THREADS mapkv__py_store_leave(s, 0);
  if (rc != 0) {
    self->done = "aborted by a failed commit";
    return mapkv__py_raise(rc);
  }
  self->done = "committed";
  Py_RETURN_NONE;
}

PyDoc_STRVAR(commit_doc,
             "commit($self, /)\n--\n\n"
             "Write every operation of the batch as one atomic commit. On "
             "failure\n"
             "none of them is applied. The batch is done either way.");

static PyObject *batch_commit(mapkv__py_batch *self, PyObject *unused) {
  (void)unused;
  return finish(self, 1);
}

PyDoc_STRVAR(abort_doc, "abort($self, /)\n--\n\n"
                        "Discard the batch: none of its operations is "
                        "applied.");

static PyObject *batch_abort(mapkv__py_batch *self, PyObject *unused) {
  (void)unused;
  return finish(self, 0);
}

static PyObject *batch_enter(mapkv__py_batch *self, PyObject *unused) {
  (void)unused;
  if (pending(self) == NULL)
    return NULL;
  Py_INCREF(self);
  return (PyObject *)self;
}

static PyObject *batch_exit(mapkv__py_batch *self, PyObject *const *args,
                            Py_ssize_t nargs) {
  int failed = nargs > 0 && args[0] != Py_None;
  /* Ended inside the block, or the block's exception is on its way: there
   * is nothing to add. A batch its store's close aborted is an error. */
  if (self->b == NULL && (self->ended || failed))
    Py_RETURN_NONE;
  return finish(self, !failed);
}

static Py_ssize_t batch_len(mapkv__py_batch *self) { return self->nops; }

static PyObject *batch_get_pending(mapkv__py_batch *self, void *c) {
  (void)c;
  return PyBool_FromLong(self->b != NULL);
}

static PyObject *batch_repr(mapkv__py_batch *self) {
  if (self->b != NULL)
    return PyUnicode_FromFormat("<mapkv.Batch of %R, %zd operation(s) pending>",
                                self->store->path, self->nops);
  return PyUnicode_FromFormat("<mapkv.Batch of %R, %s>", self->store->path,
                              self->done);
}

static PyMethodDef batch_methods[] = {
    {"put", (PyCFunction)(void (*)(void))batch_put, METH_FASTCALL, put_doc},
    {"delete", (PyCFunction)batch_delete, METH_O, delete_doc},
    {"commit", (PyCFunction)batch_commit, METH_NOARGS, commit_doc},
    {"abort", (PyCFunction)batch_abort, METH_NOARGS, abort_doc},
    {"__enter__", (PyCFunction)batch_enter, METH_NOARGS,
     "__enter__($self, /)\n--\n\nReturn the batch itself."},
    {"__exit__", (PyCFunction)(void (*)(void))batch_exit, METH_FASTCALL,
     "__exit__($self, exc_type, exc, tb, /)\n--\n\nCommit the batch, or abort "
     "it if the block raised."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef batch_getset[] = {
    {"pending", (getter)batch_get_pending, NULL,
     "Whether the batch can still take operations (not committed or "
     "aborted).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyMappingMethods batch_as_mapping = {
    (lenfunc)batch_len,
    NULL,
    (objobjargproc)batch_ass_subscript,
};

PyDoc_STRVAR(batch_doc,
             "An atomic write batch, made by Store.batch().\n"
             "\n"
             "    b[key] = value      add a put      (also b.put(key, value))\n"
             "    del b[key]          add a delete   (also b.delete(key))\n"
             "    len(b)              operations added\n"
             "    b.commit()          apply them all, atomically\n"
             "    b.abort()           discard them\n"
             "\n"
             "As a context manager it commits when the block ends normally "
             "and\n"
             "aborts when it raises. The batch holds copies of its keys and "
             "values;\n"
             "nothing is visible in the store before the commit.");

PyTypeObject mapkv__py_batch_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mapkv.Batch",
    .tp_basicsize = sizeof(mapkv__py_batch),
    .tp_dealloc = (destructor)batch_dealloc,
    .tp_repr = (reprfunc)batch_repr,
    .tp_as_mapping = &batch_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = batch_doc,
    .tp_methods = batch_methods,
    .tp_getset = batch_getset,
};

PyObject *mapkv__py_batch_update(mapkv__py_store *s, PyObject *pairs) {
  PyObject *batch, *items, *it, *pair, *res = NULL;
  if ((batch = mapkv__py_batch_new(s)) == NULL)
    return NULL;
  if (PyDict_Check(pairs))
    items = PyDict_Items(pairs);
  else if (PyObject_HasAttrString(pairs, "keys"))
    items = PyObject_CallMethod(pairs, "items", NULL);
  else {
    items = pairs;
    Py_INCREF(items);
  }
  if (items == NULL)
    goto out;
  if ((it = PyObject_GetIter(items)) == NULL)
    goto out_items;
  while ((pair = PyIter_Next(it)) != NULL) {
    PyObject *kv = PySequence_Fast(pair, "update takes (key, value) pairs");
    int rc = -1;
    Py_DECREF(pair);
    if (kv != NULL && PySequence_Fast_GET_SIZE(kv) != 2)
      PyErr_SetString(PyExc_ValueError, "update takes (key, value) pairs");
    else if (kv != NULL)
      rc = batch_add((mapkv__py_batch *)batch, PySequence_Fast_GET_ITEM(kv, 0),
                     PySequence_Fast_GET_ITEM(kv, 1));
    Py_XDECREF(kv);
    if (rc < 0)
      break;
  }
  Py_DECREF(it);
  if (!PyErr_Occurred())
    res = finish((mapkv__py_batch *)batch, 1);
out_items:
  Py_DECREF(items);
out:
  Py_DECREF(batch); /* aborts it if it was not committed */
  return res;
}
