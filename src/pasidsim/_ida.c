/*
 * pasidsim._ida: the persistent IDA of pasidsim/ida.py in C (same algorithm, same API).
 *
 * A version tree over one mutable store (Baker's trick): the store (a set of allocated IDs,
 * a min-heap of free IDs below the high-water mark `top`, and `top`) holds the contents of
 * the root version, the one without a parent; every other version is "its parent with ID `op`
 * toggled".  Reading or updating a version first reroots the store at it.  Parent links are
 * strong references and form a tree (never a cycle); deallocation walks chains iteratively.
 *
 * Kernel semantics modeled: lib/idr.c ida_alloc_range() (lowest free in [lo, hi]) and
 * idr_alloc_cyclic() (first free at or after the cursor, wrapping once).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    PyObject_HEAD
    PyObject *live;      /* set of int */
    Py_ssize_t *heap;    /* min-heap of free IDs in [1, top) (plus stale entries) */
    Py_ssize_t hlen, hcap;
    Py_ssize_t top;      /* every ID >= top is free; ID 0 is never allocated */
} StoreObject;

typedef struct IdaObject {
    PyObject_HEAD
    StoreObject *store;
    struct IdaObject *parent; /* NULL: this version is the root */
    Py_ssize_t op;            /* the ID toggled between this version and its parent */
    Py_ssize_t cursor;
    Py_hash_t hash;           /* -1: not computed */
} IdaObject;

static PyTypeObject StoreType;
static PyTypeObject IdaType;

/* ---------------------------------------------------------------- store ------------------ */

static void
Store_dealloc(StoreObject *self)
{
    Py_XDECREF(self->live);
    PyMem_Free(self->heap);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject StoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pasidsim._ida._Store",
    .tp_basicsize = sizeof(StoreObject),
    .tp_dealloc = (destructor)Store_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

static StoreObject *
store_new(void)
{
    StoreObject *s = PyObject_New(StoreObject, &StoreType);
    if (s == NULL)
        return NULL;
    s->live = PySet_New(NULL);
    s->heap = NULL;
    s->hlen = s->hcap = 0;
    s->top = 1;
    if (s->live == NULL) {
        Py_DECREF(s);
        return NULL;
    }
    return s;
}

static int
heap_push(StoreObject *s, Py_ssize_t x)
{
    if (s->hlen == s->hcap) {
        Py_ssize_t ncap = s->hcap ? s->hcap * 2 : 16;
        Py_ssize_t *nh = PyMem_Realloc(s->heap, ncap * sizeof(Py_ssize_t));
        if (nh == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->heap = nh;
        s->hcap = ncap;
    }
    Py_ssize_t i = s->hlen++;
    Py_ssize_t *h = s->heap;
    while (i > 0) {
        Py_ssize_t p = (i - 1) >> 1;
        if (h[p] <= x)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
    return 0;
}

static void
heap_pop(StoreObject *s)
{
    Py_ssize_t *h = s->heap;
    Py_ssize_t n = --s->hlen;
    if (n == 0)
        return;
    Py_ssize_t x = h[n], i = 0;
    for (;;) {
        Py_ssize_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h[c + 1] < h[c])
            c++;
        if (h[c] >= x)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* 1 if x is allocated, 0 if not, -1 on error */
static int
store_has(StoreObject *s, Py_ssize_t x)
{
    PyObject *k = PyLong_FromSsize_t(x);
    if (k == NULL)
        return -1;
    int r = PySet_Contains(s->live, k);
    Py_DECREF(k);
    return r;
}

static int
store_add(StoreObject *s, Py_ssize_t x)
{
    PyObject *k = PyLong_FromSsize_t(x);
    if (k == NULL)
        return -1;
    int r = PySet_Add(s->live, k);
    Py_DECREF(k);
    if (r < 0)
        return -1;
    if (s->hlen && s->heap[0] == x)
        heap_pop(s);
    if (x >= s->top) {
        for (Py_ssize_t g = s->top; g < x; g++)
            if (heap_push(s, g) < 0)
                return -1;
        s->top = x + 1;
    }
    return 0;
}

static int
store_remove(StoreObject *s, Py_ssize_t x)
{
    PyObject *k = PyLong_FromSsize_t(x);
    if (k == NULL)
        return -1;
    int r = PySet_Discard(s->live, k);
    Py_DECREF(k);
    if (r < 0)
        return -1;
    if (r == 0) {
        PyErr_Format(PyExc_KeyError, "%zd is not allocated", x);
        return -1;
    }
    return heap_push(s, x);
}

static int
store_toggle(StoreObject *s, Py_ssize_t x)
{
    int has = store_has(s, x);
    if (has < 0)
        return -1;
    return has ? store_remove(s, x) : store_add(s, x);
}

/* lowest free ID in [lo, hi], -1 if none, -2 on error */
static Py_ssize_t
store_find(StoreObject *s, Py_ssize_t lo, Py_ssize_t hi)
{
    if (lo > hi)
        return -1;
    if (lo <= 1) {
        while (s->hlen) {
            int has = store_has(s, s->heap[0]);
            if (has < 0)
                return -2;
            if (!has)
                break;
            heap_pop(s);
        }
        Py_ssize_t c = s->hlen ? s->heap[0] : s->top;
        return c <= hi ? c : -1;
    }
    Py_ssize_t c = lo;
    for (;;) {
        if (c >= s->top)
            break;
        int has = store_has(s, c);
        if (has < 0)
            return -2;
        if (!has)
            break;
        c++;
    }
    return c <= hi ? c : -1;
}

/* ---------------------------------------------------------------- versions --------------- */

static IdaObject *
version_new(StoreObject *store, Py_ssize_t cursor)
{
    IdaObject *v = PyObject_New(IdaObject, &IdaType);
    if (v == NULL)
        return NULL;
    Py_INCREF(store);
    v->store = store;
    v->parent = NULL;
    v->op = -1;
    v->cursor = cursor;
    v->hash = -1;
    return v;
}

/* Make `self` the root: replay the toggles on the path from the current root. */
static int
reroot(IdaObject *self)
{
    if (self->parent == NULL)
        return 0;
    Py_ssize_t n = 0, cap = 16;
    IdaObject **path = PyMem_Malloc(cap * sizeof(IdaObject *));
    if (path == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    IdaObject *v = self;
    while (v->parent != NULL) {
        if (n == cap) {
            cap *= 2;
            IdaObject **np = PyMem_Realloc(path, cap * sizeof(IdaObject *));
            if (np == NULL) {
                PyMem_Free(path);
                PyErr_NoMemory();
                return -1;
            }
            path = np;
        }
        path[n++] = v;
        v = v->parent;
    }
    /* v is the root.  Walk back: for u = path[n-1] .. path[0], flip the edge u -> v. */
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        IdaObject *u = path[i];
        if (store_toggle(self->store, u->op) < 0) {
            PyMem_Free(path);
            return -1;
        }
        /* u held a reference to v (u->parent == v); now v holds one to u. */
        Py_INCREF(u);
        v->parent = u;
        v->op = u->op;
        u->parent = NULL;
        u->op = -1;
        Py_DECREF(v); /* the reference u held; v is still referenced by its holders/u */
        v = u;
    }
    PyMem_Free(path);
    return 0;
}

/* `self` is the root; make `new` (a fresh version after toggling `ident`) the root. */
static void
link_root(IdaObject *self, IdaObject *new, Py_ssize_t ident)
{
    Py_INCREF(new);
    self->parent = new;
    self->op = ident;
}

static void
Ida_dealloc(IdaObject *self)
{
    IdaObject *p = self->parent;
    self->parent = NULL;
    Py_XDECREF(self->store);
    Py_TYPE(self)->tp_free((PyObject *)self);
    /* Free chains of versions only their children kept alive without recursing. */
    while (p != NULL && Py_REFCNT(p) == 1) {
        IdaObject *next = p->parent;
        p->parent = NULL;
        Py_DECREF(p);
        p = next;
    }
    Py_XDECREF(p);
}

static PyObject *
Ida_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "Ida() takes no arguments");
        return NULL;
    }
    StoreObject *s = store_new();
    if (s == NULL)
        return NULL;
    IdaObject *v = version_new(s, 0);
    Py_DECREF(s);
    return (PyObject *)v;
}

static PyObject *
derive(IdaObject *self, Py_ssize_t ident, Py_ssize_t cursor)
{
    /* store already rooted at self and `ident` already toggled */
    IdaObject *new = version_new(self->store, cursor);
    if (new == NULL)
        return NULL;
    link_root(self, new, ident);
    return (PyObject *)new;
}

/* Parse (lo, hi) and reroot `self`; 0 on success, -1 with an exception set. */
static int
range_args(IdaObject *self, PyObject *const *args, Py_ssize_t nargs, const char *name,
           Py_ssize_t *lo, Py_ssize_t *hi)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s(lo, hi) takes 2 arguments", name);
        return -1;
    }
    *lo = PyLong_AsSsize_t(args[0]);
    *hi = PyLong_AsSsize_t(args[1]);
    if ((*lo == -1 || *hi == -1) && PyErr_Occurred())
        return -1;
    return reroot(self);
}

static PyObject *
Ida_alloc_lowest(IdaObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t lo, hi;
    if (range_args(self, args, nargs, "alloc_lowest", &lo, &hi) < 0)
        return NULL;
    StoreObject *s = self->store;
    Py_ssize_t x = store_find(s, lo, hi);
    if (x == -2)
        return NULL;
    if (x < 0)
        return Py_BuildValue("(On)", (PyObject *)self, (Py_ssize_t)-1);
    if (store_add(s, x) < 0)
        return NULL;
    PyObject *new = derive(self, x, self->cursor);
    if (new == NULL)
        return NULL;
    PyObject *r = PyTuple_New(2);
    if (r == NULL) {
        Py_DECREF(new);
        return NULL;
    }
    PyTuple_SET_ITEM(r, 0, new);
    PyTuple_SET_ITEM(r, 1, PyLong_FromSsize_t(x));
    return r;
}

static PyObject *
Ida_alloc_cyclic(IdaObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t lo, hi;
    if (range_args(self, args, nargs, "alloc_cyclic", &lo, &hi) < 0)
        return NULL;
    StoreObject *s = self->store;
    Py_ssize_t start = (lo <= self->cursor && self->cursor <= hi) ? self->cursor : lo;
    Py_ssize_t x = store_find(s, start > 1 ? start : lo, hi);
    if (x == -2)
        return NULL;
    if (x < 0 && start > lo) {
        x = store_find(s, lo, start - 1);
        if (x == -2)
            return NULL;
    }
    if (x < 0)
        return Py_BuildValue("(On)", (PyObject *)self, (Py_ssize_t)-1);
    if (store_add(s, x) < 0)
        return NULL;
    PyObject *new = derive(self, x, x + 1);
    if (new == NULL)
        return NULL;
    return Py_BuildValue("(Nn)", new, x);
}

/* set(x) / clear(x): the version with x allocated / freed. */
static PyObject *
update(IdaObject *self, PyObject *arg, int (*op)(StoreObject *, Py_ssize_t))
{
    Py_ssize_t x = PyLong_AsSsize_t(arg);
    if (x == -1 && PyErr_Occurred())
        return NULL;
    if (reroot(self) < 0 || op(self->store, x) < 0)
        return NULL;
    return derive(self, x, self->cursor);
}

static PyObject *
Ida_set(IdaObject *self, PyObject *arg)
{
    return update(self, arg, store_add);
}

static PyObject *
Ida_clear(IdaObject *self, PyObject *arg)
{
    return update(self, arg, store_remove);
}

static PyObject *
Ida_find_free(IdaObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t lo, hi;
    if (range_args(self, args, nargs, "find_free", &lo, &hi) < 0)
        return NULL;
    Py_ssize_t x = store_find(self->store, lo, hi);
    if (x == -2)
        return NULL;
    return PyLong_FromSsize_t(x);
}

static PyObject *
Ida_ids(IdaObject *self, PyObject *Py_UNUSED(ignored))
{
    if (reroot(self) < 0)
        return NULL;
    PyObject *l = PySequence_List(self->store->live);
    if (l == NULL)
        return NULL;
    if (PyList_Sort(l) < 0) {
        Py_DECREF(l);
        return NULL;
    }
    return l;
}

static int
Ida_contains(IdaObject *self, PyObject *key)
{
    if (!PyLong_Check(key))
        return 0;
    if (reroot(self) < 0)
        return -1;
    return PySet_Contains(self->store->live, key);
}

static PyObject *
Ida_get_allocated(IdaObject *self, void *closure)
{
    if (reroot(self) < 0)
        return NULL;
    return PyLong_FromSsize_t(PySet_GET_SIZE(self->store->live));
}

static PyObject *
Ida_get_cursor(IdaObject *self, void *closure)
{
    return PyLong_FromSsize_t(self->cursor);
}

static PyObject *
frozen_ids(IdaObject *self)
{
    if (reroot(self) < 0)
        return NULL;
    return PyFrozenSet_New(self->store->live);
}

static Py_hash_t
Ida_hash(IdaObject *self)
{
    if (self->hash != -1)
        return self->hash;
    PyObject *fs = frozen_ids(self);
    if (fs == NULL)
        return -1;
    PyObject *t = Py_BuildValue("(nN)", self->cursor, fs);
    if (t == NULL)
        return -1;
    Py_hash_t h = PyObject_Hash(t);
    Py_DECREF(t);
    if (h != -1)
        self->hash = h;
    return h;
}

static PyObject *
Ida_richcompare(IdaObject *self, PyObject *other, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(other, &IdaType))
        Py_RETURN_NOTIMPLEMENTED;
    IdaObject *o = (IdaObject *)other;
    int eq;
    if (self == o)
        eq = 1;
    else if (self->cursor != o->cursor)
        eq = 0;
    else {
        PyObject *a = frozen_ids(self);
        if (a == NULL)
            return NULL;
        PyObject *b = frozen_ids(o);
        if (b == NULL) {
            Py_DECREF(a);
            return NULL;
        }
        eq = PyObject_RichCompareBool(a, b, Py_EQ);
        Py_DECREF(a);
        Py_DECREF(b);
        if (eq < 0)
            return NULL;
    }
    if (op == Py_NE)
        eq = !eq;
    return PyBool_FromLong(eq);
}

static PyObject *
Ida_from_ids(PyTypeObject *type, PyObject *args)
{
    PyObject *ids;
    Py_ssize_t cursor;
    if (!PyArg_ParseTuple(args, "On", &ids, &cursor))
        return NULL;
    StoreObject *s = store_new();
    if (s == NULL)
        return NULL;
    PyObject *it = PyObject_GetIter(ids), *item;
    if (it == NULL) {
        Py_DECREF(s);
        return NULL;
    }
    while ((item = PyIter_Next(it)) != NULL) {
        Py_ssize_t x = PyLong_AsSsize_t(item);
        Py_DECREF(item);
        if ((x == -1 && PyErr_Occurred()) || store_add(s, x) < 0) {
            Py_DECREF(it);
            Py_DECREF(s);
            return NULL;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        Py_DECREF(s);
        return NULL;
    }
    IdaObject *v = version_new(s, cursor);
    Py_DECREF(s);
    return (PyObject *)v;
}

static PyObject *
Ida_reduce(IdaObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *ids = Ida_ids(self, NULL);
    if (ids == NULL)
        return NULL;
    PyObject *ctor = PyObject_GetAttrString((PyObject *)Py_TYPE(self), "_from_ids");
    if (ctor == NULL) {
        Py_DECREF(ids);
        return NULL;
    }
    return Py_BuildValue("(N(Nn))", ctor, ids, self->cursor);
}

static PyObject *
Ida_repr(IdaObject *self)
{
    PyObject *ids = Ida_ids(self, NULL);
    if (ids == NULL)
        return NULL;
    PyObject *r = PyUnicode_FromFormat("Ida(%R, cursor=%zd)", ids, self->cursor);
    Py_DECREF(ids);
    return r;
}

static PyMethodDef Ida_methods[] = {
    {"alloc_lowest", (PyCFunction)(void (*)(void))Ida_alloc_lowest, METH_FASTCALL,
     "alloc_lowest(lo, hi) -> (Ida, id): lowest free ID in [lo, hi] (ida_alloc_range); -1 if none."},
    {"alloc_cyclic", (PyCFunction)(void (*)(void))Ida_alloc_cyclic, METH_FASTCALL,
     "alloc_cyclic(lo, hi) -> (Ida, id): first free ID at or after the cursor, wrapping once."},
    {"find_free", (PyCFunction)(void (*)(void))Ida_find_free, METH_FASTCALL,
     "find_free(lo, hi) -> id: lowest free ID in [lo, hi], or -1."},
    {"set", (PyCFunction)Ida_set, METH_O, "set(id) -> Ida: mark id allocated."},
    {"clear", (PyCFunction)Ida_clear, METH_O, "clear(id) -> Ida: mark id free."},
    {"ids", (PyCFunction)Ida_ids, METH_NOARGS, "ids() -> list: allocated IDs, ascending."},
    {"_from_ids", (PyCFunction)Ida_from_ids, METH_VARARGS | METH_CLASS,
     "_from_ids(ids, cursor) -> Ida (unpickling)."},
    {"__reduce__", (PyCFunction)Ida_reduce, METH_NOARGS, NULL},
    {NULL}
};

static PyGetSetDef Ida_getset[] = {
    {"allocated", (getter)Ida_get_allocated, NULL, "number of allocated IDs", NULL},
    {"cursor", (getter)Ida_get_cursor, NULL, "where a cyclic allocation starts", NULL},
    {NULL}
};

static PySequenceMethods Ida_as_sequence = {
    .sq_contains = (objobjproc)Ida_contains,
};

static PyTypeObject IdaType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pasidsim._ida.Ida",
    .tp_doc = "An immutable set of allocated IDs (persistent IDA; see pasidsim.ida).",
    .tp_basicsize = sizeof(IdaObject),
    .tp_dealloc = (destructor)Ida_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Ida_tp_new,
    .tp_methods = Ida_methods,
    .tp_getset = Ida_getset,
    .tp_hash = (hashfunc)Ida_hash,
    .tp_richcompare = (richcmpfunc)Ida_richcompare,
    .tp_as_sequence = &Ida_as_sequence,
    .tp_repr = (reprfunc)Ida_repr,
};

static struct PyModuleDef idamodule = {
    PyModuleDef_HEAD_INIT, "pasidsim._ida",
    "The persistent IDA of pasidsim.ida, in C.", -1, NULL
};

PyMODINIT_FUNC
PyInit__ida(void)
{
    if (PyType_Ready(&StoreType) < 0 || PyType_Ready(&IdaType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&idamodule);
    if (m == NULL)
        return NULL;
    Py_INCREF(&IdaType);
    if (PyModule_AddObject(m, "Ida", (PyObject *)&IdaType) < 0) {
        Py_DECREF(&IdaType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
