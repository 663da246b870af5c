/*
 * pymapkv_module.c — the module mapkv._mapkv: its exceptions, the
 * bytes-like argument helper, and the module's initialisation.
 *
 * Exceptions: mapkv.Error, and one subclass of it for every code of
 * MAPKV_ERRNO_MAP in mapkv.h (so a code added there gets its class with no
 * change here; class_name() only gives the known ones nicer names). Each
 * class carries its code in `code`; the message is mapkv_errmsg(). Some
 * also derive from the built-in exception a Python program would expect:
 * a missing key is a KeyError, a bad argument or an oversized key or value
 * a ValueError, a failed allocation a MemoryError. A -errno code is an
 * OSError with that errno (so -ENOENT is FileNotFoundError).
 */
#include "pymapkv.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

PyObject *mapkv__py_error;
PyObject *mapkv__py_notfound;
volatile unsigned long mapkv__py_forkgen;

typedef struct err_entry {
  int code;
  const char *macro; /* "MAPKV_NOTFOUND" */
  const char *text;
  PyObject *cls;
} err_entry;

static err_entry errors[] = {
#define MAPKV_PY_ERR_ENTRY(name, value, text) {value, #name, text, NULL},
    MAPKV_ERRNO_MAP(MAPKV_PY_ERR_ENTRY)
#undef MAPKV_PY_ERR_ENTRY
};
#define NERRORS (sizeof errors / sizeof errors[0])

/* The Python name of the class of a code. A code this table does not know
 * is named from its macro: MAPKV_EFOO_BAR -> FooBarError. */
static void class_name(const err_entry *e, char *buf, size_t cap) {
  static const struct {
    int code;
    const char *name;
  } names[] = {
      {MAPKV_NOTFOUND, "NotFoundError"},
      {MAPKV_EINVAL, "InvalidArgumentError"},
      {MAPKV_ENOTDB, "NotAStoreError"},
      {MAPKV_EVERSION, "VersionError"},
      {MAPKV_ETRUNCATED, "TruncatedError"},
      {MAPKV_ECORRUPT, "CorruptError"},
      {MAPKV_EKEYSIZE, "KeySizeError"},
      {MAPKV_EVALSIZE, "ValueSizeError"},
      {MAPKV_EREADONLY, "ReadOnlyError"},
      {MAPKV_ELOCKED, "LockedError"},
      {MAPKV_EFULL, "FullError"},
      {MAPKV_EBUFSMALL, "BufferTooSmallError"},
      {MAPKV_ECHANGED, "ChangedError"},
      {MAPKV_ENOMEM, "OutOfMemoryError"},
      {MAPKV_EMOVED, "MovedError"},
      {MAPKV_EBUSY, "BusyError"},
  };
  const char *m = e->macro + strlen("MAPKV_");
  size_t n = 0;
  int upper = 1;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (names[i].code == e->code) {
      snprintf(buf, cap, "%s", names[i].name);
      return;
    }
  if (m[0] == 'E' && m[1] != '\0')
    m++;
  for (; *m != '\0' && n + 6 < cap; m++) {
    if (*m == '_') {
      upper = 1;
      continue;
    }
    buf[n++] = upper ? *m : (char)(*m >= 'A' && *m <= 'Z' ? *m + 32 : *m);
    upper = 0;
  }
  snprintf(buf + n, cap - n, "Error");
}

/* The built-in exception a code's class also derives from, or NULL. */
static PyObject *builtin_base(int code) {
  switch (code) {
  case MAPKV_NOTFOUND:
    return PyExc_KeyError;
  case MAPKV_EINVAL:
  case MAPKV_EKEYSIZE:
  case MAPKV_EVALSIZE:
    return PyExc_ValueError;
  case MAPKV_ENOMEM:
    return PyExc_MemoryError;
  default:
    return NULL;
  }
}

/* add_ref() of Python 3.10, for 3.9. */
static int add_ref(PyObject *m, const char *name, PyObject *o) {
  Py_INCREF(o);
  if (PyModule_AddObject(m, name, o) < 0) {
    Py_DECREF(o);
    return -1;
  }
  return 0;
}

static int add_errors(PyObject *m) {
  PyObject *dict;
  mapkv__py_error = PyErr_NewExceptionWithDoc(
      "mapkv.Error",
      "Base class of the errors of mapkv. Every subclass stands for one\n"
      "error code of the C library, in its `code` attribute (a negative\n"
      "int); str(e) is the library's message, with context.\n"
      "Operating-system failures are raised as OSError with their errno.",
      NULL, NULL);
  if (mapkv__py_error == NULL)
    return -1;
  if (PyObject_SetAttrString(mapkv__py_error, "code", Py_None) < 0 ||
      add_ref(m, "Error", mapkv__py_error) < 0)
    return -1;
  for (size_t i = 0; i < NERRORS; i++) {
    char name[64], qual[80], doc[200];
    PyObject *bases, *code, *extra = builtin_base(errors[i].code);
    class_name(&errors[i], name, sizeof name);
    snprintf(qual, sizeof qual, "mapkv.%s", name);
    snprintf(doc, sizeof doc, "%s (%s, code %d).", errors[i].text,
             errors[i].macro, errors[i].code);
    doc[0] = (char)(doc[0] >= 'a' && doc[0] <= 'z' ? doc[0] - 32 : doc[0]);
    bases = extra ? PyTuple_Pack(2, mapkv__py_error, extra)
                  : PyTuple_Pack(1, mapkv__py_error);
    if (bases == NULL)
      return -1;
    dict = PyDict_New();
    code = PyLong_FromLong(errors[i].code);
    if (dict == NULL || code == NULL ||
        PyDict_SetItemString(dict, "code", code) < 0) {
      Py_XDECREF(dict);
      Py_XDECREF(code);
      Py_DECREF(bases);
      return -1;
    }
    Py_DECREF(code);
    errors[i].cls = PyErr_NewExceptionWithDoc(qual, doc, bases, dict);
    Py_DECREF(bases);
    Py_DECREF(dict);
    if (errors[i].cls == NULL || add_ref(m, name, errors[i].cls) < 0)
      return -1;
    if (errors[i].code == MAPKV_NOTFOUND)
      mapkv__py_notfound = errors[i].cls;
  }
  return 0;
}

/* The message of the last failure as a str; paths in it are decoded as
 * os.fsdecode() does (undecodable bytes as surrogates). */
static PyObject *message(int rc) {
  const char *msg = mapkv_errmsg();
  return PyUnicode_DecodeFSDefault(msg[0] != '\0' ? msg : mapkv_strerror(rc));
}

PyObject *mapkv__py_exception(int rc) {
  PyObject *cls = mapkv__py_error, *msg, *e;
  if ((msg = message(rc)) == NULL)
    return NULL;
  if (rc < 0 && rc > -4096) {
    e = PyObject_CallFunction(PyExc_OSError, "iO", -rc, msg);
    Py_DECREF(msg);
    return e;
  }
  for (size_t i = 0; i < NERRORS; i++)
    if (errors[i].code == rc)
      cls = errors[i].cls;
  e = PyObject_CallOneArg(cls, msg);
  Py_DECREF(msg);
  return e;
}

PyObject *mapkv__py_raise(int rc) {
  PyObject *e = mapkv__py_exception(rc);
  if (e != NULL) {
    PyErr_SetObject((PyObject *)Py_TYPE(e), e);
    Py_DECREF(e);
  }
  return NULL;
}

PyObject *mapkv__py_raise_notfound(PyObject *key) {
  PyObject *t = PyTuple_Pack(1, key);
  if (t != NULL) {
    PyErr_SetObject(mapkv__py_notfound, t);
    Py_DECREF(t);
  }
  return NULL;
}

int mapkv__py_bytes_slow(PyObject *o, mapkv__py_bytes *b, const char *what) {
  if (PyUnicode_Check(o)) {
    PyErr_Format(PyExc_TypeError,
                 "%s must be bytes-like (bytes, bytearray, memoryview), "
                 "not str; encode it first",
                 what);
    return -1;
  }
  if (!PyObject_CheckBuffer(o)) {
    PyErr_Format(PyExc_TypeError,
                 "%s must be bytes-like (bytes, bytearray, memoryview), "
                 "not %.100s",
                 what, Py_TYPE(o)->tp_name);
    return -1;
  }
  if (PyObject_GetBuffer(o, &b->view, PyBUF_SIMPLE) < 0)
    return -1;
  b->p = b->view.buf;
  b->n = (size_t)b->view.len;
  b->has_view = 1;
  return 0;
}

static void after_fork_child(void) { mapkv__py_forkgen++; }

PyDoc_STRVAR(
    open_doc,
    "open($module, /, path, *, create=True, readonly=False, sync='commit',\n"
    "     expected_keys=0, lock_timeout=0, max_key_size=0, max_value_size=0,\n"
    "     reserve=0, salvage=False)\n"
    "--\n\n"
    "Open the mapkv store in the file at path and return a Store.\n"
    "\n"
    "create: create the file if it does not exist (writable opens only).\n"
    "readonly: open without writing; read-only opens work while another\n"
    "  process writes the store, and see the state committed when they open.\n"
    "sync: when commits become durable. 'commit' (the default): every put,\n"
    "  delete and batch is on stable storage when it returns. 'none': the\n"
    "  operating system writes back when it chooses (a crash of the process\n"
    "  loses nothing, a power cut may lose recent commits). 'explicit': as\n"
    "  'none', with Store.sync() as the durability barrier.\n"
    "expected_keys: keys the store is expected to hold; the index is sized\n"
    "  for them once, so a fill never rehashes (0: grown as needed).\n"
    "lock_timeout: seconds a writable open waits for another process that\n"
    "  has the store open for writing to close it (0: LockedError at once).\n"
    "max_key_size, max_value_size: the limits of a new store, recorded in\n"
    "  it (0: 4096 bytes and 64 MiB; at most KEY_MAX and VALUE_MAX). An\n"
    "  existing store keeps its own; a smaller value lowers the limit for\n"
    "  this Store only.\n"
    "reserve: bytes of address space reserved for the file to grow in (0:\n"
    "  64 GiB; at least twice the file's size); a write that would grow the\n"
    "  file past it raises FullError.\n"
    "salvage: a read-only open that refuses nothing: a store cut short\n"
    "  (TruncatedError) or with damage after its data (CorruptError)\n"
    "  shows what is intact, and verify() reports the rest.\n"
    "\n"
    "Every open verifies every record's checksum. A writable open locks the\n"
    "file and recovers it after a crash; stat() reports what recovery found.\n"
    "A key whose newest write damage cost raises CorruptError, never an\n"
    "older value. A path that is not a regular file (a directory, a FIFO, a\n"
    "socket) raises NotAStoreError, as a file that is not a store does.");

PyDoc_STRVAR(
    recover_doc,
    "recover($module, /, path, out=None, *, force=False, lock_timeout=0)\n"
    "--\n\n"
    "Salvage the intact records of the store at path into a new store,\n"
    "and return a dict of what was found and done.\n"
    "\n"
    "With out, into a new store at out (FileExistsError if it exists);\n"
    "path is opened read-only and left as it is.\n"
    "Without out, in place, under the writer lock of path (LockedError if\n"
    "another process has it open for writing and does not close it within\n"
    "lock_timeout seconds): the new store replaces path, and the original\n"
    "is kept under a second name, returned as 'backup'\n"
    "('<path>.damaged-<unix time>'; '.v1-<time>' when a store of format\n"
    "version 1 was only upgraded; '.orig-<time>' with force). A store of\n"
    "the current format without damage is left alone unless force is true.\n"
    "Backups are never removed: delete them once the new store is known\n"
    "good.\n"
    "\n"
    "The dict: saved and lost (live records written to the new store and\n"
    "left behind: damaged, or of a batch damage cost), rewritten (False when\n"
    "the store was left alone), damaged (whether damage was found), backup\n"
    "(the original's new name, or None), found (stat() of the store as the\n"
    "salvage saw it). On failure path is unchanged and no new store is\n"
    "left behind.");

static PyObject *recover(PyObject *module, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"path", "out", "force", "lock_timeout", NULL};
  PyObject *path, *out = Py_None, *timeout = NULL, *fspath = NULL;
  PyObject *encoded = NULL, *out_encoded = NULL, *res = NULL, *v, *backup;
  mapkv_recover_info info;
  uint32_t ms = 0;
  int force = 0, rc;
  (void)module;

  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$pO:recover", kwlist,
                                   &path, &out, &force, &timeout))
    return NULL;
  if (mapkv__py_parse_timeout(timeout, "lock_timeout", &ms) < 0)
    return NULL;
  if ((fspath = PyOS_FSPath(path)) == NULL)
    return NULL;
  if (!PyUnicode_FSConverter(fspath, &encoded) ||
      (out != Py_None && !PyUnicode_FSConverter(out, &out_encoded)))
    goto done;
  memset(&info, 0, sizeof info);
  Py_BEGIN_ALLOW_THREADS rc =
      mapkv_recover(PyBytes_AS_STRING(encoded),
                    out_encoded != NULL ? PyBytes_AS_STRING(out_encoded) : NULL,
                    force ? MAPKV_RECOVER_FORCE : 0, ms, &info);
  Py_END_ALLOW_THREADS if (rc != 0) {
    mapkv__py_raise(rc);
    goto done;
  }
  info.backup[sizeof info.backup - 1] = '\0';
  if ((res = PyDict_New()) == NULL)
    goto done;
#define ITEM(name, expr)                                                       \
  do {                                                                         \
    if ((v = (expr)) == NULL || PyDict_SetItemString(res, name, v) < 0) {      \
      Py_XDECREF(v);                                                           \
      Py_CLEAR(res);                                                           \
      goto done;                                                               \
    }                                                                          \
    Py_DECREF(v);                                                              \
  } while (0)
  ITEM("saved", PyLong_FromUnsignedLongLong(info.saved));
  ITEM("lost", PyLong_FromUnsignedLongLong(info.lost));
  ITEM("rewritten", PyBool_FromLong(info.rewritten));
  ITEM("damaged", PyBool_FromLong(info.damaged));
  if (info.backup[0] == '\0') {
    Py_INCREF(Py_None);
    backup = Py_None;
  } else if (PyBytes_Check(fspath)) {
    backup = PyBytes_FromString(info.backup);
  } else {
    backup = PyUnicode_DecodeFSDefault(info.backup);
  }
  ITEM("backup", backup);
  ITEM("found", mapkv__py_stats_dict(&info.found));
#undef ITEM
done:
  Py_XDECREF(fspath);
  Py_XDECREF(encoded);
  Py_XDECREF(out_encoded);
  return res;
}

/* For the tests: the exception object a return code is raised as. */
static PyObject *exception_for(PyObject *module, PyObject *arg) {
  long code = PyLong_AsLong(arg);
  (void)module;
  if (code == -1 && PyErr_Occurred())
    return NULL;
  if (code >= 0 || code < INT_MIN) {
    PyErr_SetString(PyExc_ValueError, "error codes are negative ints");
    return NULL;
  }
  return mapkv__py_exception((int)code);
}

static PyMethodDef module_methods[] = {
    {"_exception_for", exception_for, METH_O,
     "The exception a C return code is raised as (for tests)."},
    {"open", (PyCFunction)(void (*)(void))mapkv__py_store_open,
     METH_VARARGS | METH_KEYWORDS, open_doc},
    {"recover", (PyCFunction)(void (*)(void))recover,
     METH_VARARGS | METH_KEYWORDS, recover_doc},
    {NULL, NULL, 0, NULL}};

PyDoc_STRVAR(module_doc,
             "mapkv: an embedded key-value store on a memory-mapped file.\n"
             "\n"
             "    import mapkv\n"
             "    with mapkv.open('data.mkv') as db:\n"
             "        db[b'user:1'] = b'alice'          # durable when it "
             "returns\n"
             "        with db.batch() as b:              # all or nothing\n"
             "            b[b'user:2'] = b'bob'\n"
             "            del b[b'user:1']\n"
             "        with db.read() as r:               # zero-copy reads\n"
             "            view = r[b'user:2']            # memoryview of the "
             "mapped bytes\n"
             "        for key, value in db.items(prefix=b'user:'):\n"
             "            ...\n"
             "\n"
             "Keys and values are bytes-like objects (bytes, bytearray, "
             "memoryview);\n"
             "gets return bytes. Errors are mapkv.Error subclasses, one per "
             "error code\n"
             "of the C library, or OSError.");

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT,
                                        "mapkv._mapkv",
                                        module_doc,
                                        -1,
                                        module_methods,
                                        NULL,
                                        NULL,
                                        NULL,
                                        NULL};

static int add_type(PyObject *m, PyTypeObject *t, const char *name) {
  if (PyType_Ready(t) < 0)
    return -1;
  return add_ref(m, name, (PyObject *)t);
}

PyMODINIT_FUNC PyInit__mapkv(void) {
  static int atfork_done;
  PyObject *m = PyModule_Create(&module_def);
  if (m == NULL)
    return NULL;
  if (add_type(m, &mapkv__py_store_type, "Store") < 0 ||
      add_type(m, &mapkv__py_batch_type, "Batch") < 0 ||
      add_type(m, &mapkv__py_read_type, "ReadView") < 0 ||
      add_type(m, &mapkv__py_iter_type, "Iterator") < 0 ||
      mapkv__py_read_init() < 0 || add_errors(m) < 0)
    goto fail;
  if (PyModule_AddStringConstant(
          m, "__version__",
          Py_STRINGIFY(MAPKV_VERSION_MAJOR) "." Py_STRINGIFY(
              MAPKV_VERSION_MINOR) "." Py_STRINGIFY(MAPKV_VERSION_PATCH)) < 0 ||
      PyModule_AddIntConstant(m, "FORMAT_VERSION", MAPKV_FORMAT_VERSION) < 0 ||
      PyModule_AddIntConstant(m, "KEY_MAX", MAPKV_KEY_MAX) < 0 ||
      PyModule_AddIntConstant(m, "VALUE_MAX", MAPKV_VALUE_MAX) < 0)
    goto fail;
  if (!atfork_done) {
    if (pthread_atfork(NULL, NULL, after_fork_child) != 0) {
      PyErr_SetString(PyExc_OSError, "pthread_atfork failed");
      goto fail;
    }
    atfork_done = 1;
  }
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}
