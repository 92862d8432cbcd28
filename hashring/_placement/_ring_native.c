/* hashring._placement._ring_native: the ring's lookup after the hash, in C.
 *
 * An optional accelerator for HashRing (hashring/_placement/ring.py). A RingIndex is built
 * once per ring snapshot from the snapshot's sorted points (padded with 2**32 - 1) and their
 * owners, and is never changed afterwards: a membership change builds a new one with the
 * new snapshot, which is published by one assignment. Lookups hold the GIL and only read.
 *
 * Layout (compact: one table, one array of pairs)
 *   pairs[i] = {point, owner} for the n sorted points, then the padding pair
 *              {2**32 - 1, owner of the first point}: the walk below always stops on it.
 *   table[b] for each of the 2**bits equal ranges ("buckets") of the 32-bit circle:
 *              OWNER_FLAG | owner  when no point lies in the bucket (every position in it
 *                                  belongs to the first point after it), else
 *              i                   the index of the bucket's first point; a lookup steps
 *                                  over the points below its position from there.
 *
 * A lookup is therefore one table read for most positions, and a short walk over
 * contiguous pairs (points and owners side by side) for the others.
 *
 * Plain C99 against the CPython API, no other dependency.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define OWNER_FLAG 0x80000000u
#define MIN_BITS 1
#define MAX_BITS 28
#define MAX_POINTS ((Py_ssize_t)1 << 30)

typedef struct {
    uint32_t point;
    uint32_t owner;
} Pair;

typedef struct {
    PyObject_HEAD
    uint32_t *table; /* 2**bits entries */
    Pair *pairs;     /* size + 1 pairs, the last one the padding */
    PyObject *names; /* tuple of str, indexed by owner */
    Py_ssize_t size; /* real points */
    int bits;
    int shift;
} RingIndex;

static inline uint32_t
owner_index(const RingIndex *self, uint32_t position)
{
    uint32_t entry = self->table[position >> self->shift];
    if (entry & OWNER_FLAG) {
        return entry & ~OWNER_FLAG;
    }
    const Pair *pair = self->pairs + entry;
    while (pair->point < position) { /* the padding point 2**32 - 1 stops every walk */
        pair++;
    }
    return pair->owner;
}

static inline PyObject *
owner_name(const RingIndex *self, uint32_t position)
{
    PyObject *name = PyTuple_GET_ITEM(self->names, owner_index(self, position));
    Py_INCREF(name);
    return name;
}

/* ------------------------------------------------------------------ buffers */

/* A one-dimensional, C-contiguous buffer of native unsigned 32-bit ints (numpy uint32). */
static int
get_u32_buffer(PyObject *obj, Py_buffer *view, const char *what)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "%s must be a contiguous buffer of uint32 (a numpy uint32 array), not %.200s",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    const char *format = view->format ? view->format : "B";
    if (format[0] == '@' || format[0] == '=') {
        format++;
    }
#if PY_LITTLE_ENDIAN
    else if (format[0] == '<') {
        format++;
    }
#else
    else if (format[0] == '>' || format[0] == '!') {
        format++;
    }
#endif
    int is_u32 = view->itemsize == 4 && (strcmp(format, "I") == 0 || strcmp(format, "L") == 0);
    if (!is_u32 || view->ndim != 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be a one-dimensional buffer of uint32, got format '%s', "
                     "item size %zd, %d dimensions",
                     what, view->format ? view->format : "B", view->itemsize, view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ the type */

static void
RingIndex_dealloc(RingIndex *self)
{
    PyMem_Free(self->table);
    PyMem_Free(self->pairs);
    Py_XDECREF(self->names);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
build(RingIndex *self, const uint32_t *points, const uint32_t *owners, Py_ssize_t count,
      Py_ssize_t name_count)
{
    Py_ssize_t size = count - 1;
    if (points[size] != 0xFFFFFFFFu) {
        PyErr_SetString(PyExc_ValueError, "points must end with the padding point 2**32 - 1");
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if ((Py_ssize_t)owners[i] >= name_count) {
            PyErr_Format(PyExc_ValueError,
                         "owners[%zd] = %lu is not an index into the %zd names", i,
                         (unsigned long)owners[i], name_count);
            return -1;
        }
        if (i && points[i] < points[i - 1]) {
            PyErr_Format(PyExc_ValueError, "points must be sorted (index %zd is below %zd)", i,
                         i - 1);
            return -1;
        }
    }
    size_t buckets = (size_t)1 << self->bits;
    self->pairs = PyMem_Malloc((size_t)count * sizeof(Pair));
    self->table = PyMem_Malloc(buckets * sizeof(uint32_t));
    if (self->pairs == NULL || self->table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        self->pairs[i].point = points[i];
        self->pairs[i].owner = owners[i];
    }
    /* One pass over the points: the buckets before point i's bucket that hold no point
     * belong to point i's owner; point i's bucket starts its walk at i unless an earlier
     * point is in it. The buckets after the last point's belong to the wrap-around owner. */
    uint32_t *table = self->table;
    int shift = self->shift;
    size_t next = 0; /* the first bucket not yet written */
    for (Py_ssize_t i = 0; i < size; i++) {
        size_t bucket = (size_t)(points[i] >> shift);
        if (bucket < next) {
            continue;
        }
        uint32_t owner = OWNER_FLAG | owners[i];
        for (; next < bucket; next++) {
            table[next] = owner;
        }
        table[bucket] = (uint32_t)i;
        next = bucket + 1;
    }
    uint32_t wrap = OWNER_FLAG | owners[size]; /* the padding pair's: the first point's owner */
    for (; next < buckets; next++) {
        table[next] = wrap;
    }
    return 0;
}

static PyObject *
RingIndex_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"points", "owners", "names", "bits", NULL};
    PyObject *points_obj, *owners_obj, *names;
    int bits;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO!i:RingIndex", keywords, &points_obj,
                                     &owners_obj, &PyTuple_Type, &names, &bits)) {
        return NULL;
    }
    if (bits < MIN_BITS || bits > MAX_BITS) {
        PyErr_Format(PyExc_ValueError, "bits must be from %d to %d, got %d", MIN_BITS, MAX_BITS,
                     bits);
        return NULL;
    }
    Py_ssize_t name_count = PyTuple_GET_SIZE(names);
    if (name_count >= (Py_ssize_t)OWNER_FLAG) {
        PyErr_SetString(PyExc_ValueError, "too many names");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < name_count; i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, i))) {
            PyErr_Format(PyExc_TypeError, "names must be a tuple of str, item %zd is %.200s", i,
                         Py_TYPE(PyTuple_GET_ITEM(names, i))->tp_name);
            return NULL;
        }
    }
    Py_buffer points, owners;
    if (get_u32_buffer(points_obj, &points, "points") < 0) {
        return NULL;
    }
    if (get_u32_buffer(owners_obj, &owners, "owners") < 0) {
        PyBuffer_Release(&points);
        return NULL;
    }
    Py_ssize_t count = points.shape[0];
    RingIndex *self = NULL;
    if (count != owners.shape[0]) {
        PyErr_Format(PyExc_ValueError, "points and owners must have one length, got %zd and %zd",
                     count, owners.shape[0]);
    }
    else if (count < 2 || count - 1 > MAX_POINTS) {
        PyErr_Format(PyExc_ValueError,
                     "points must hold 1 to %zd points and the padding point, got %zd items",
                     MAX_POINTS, count);
    }
    else {
        self = (RingIndex *)type->tp_alloc(type, 0);
        if (self != NULL) {
            self->names = Py_NewRef(names);
            self->size = count - 1;
            self->bits = bits;
            self->shift = 32 - bits;
            if (build(self, (const uint32_t *)points.buf, (const uint32_t *)owners.buf, count,
                      name_count) < 0) {
                Py_CLEAR(self);
            }
        }
    }
    PyBuffer_Release(&points);
    PyBuffer_Release(&owners);
    return (PyObject *)self;
}

/* ------------------------------------------------------------------ single lookups */

static PyObject *
RingIndex_owner_of_digest(RingIndex *self, PyObject *digest)
{
    if (!PyBytes_Check(digest)) {
        PyErr_Format(PyExc_TypeError, "digest must be bytes, not %.200s",
                     Py_TYPE(digest)->tp_name);
        return NULL;
    }
    if (PyBytes_GET_SIZE(digest) < 4) {
        PyErr_Format(PyExc_ValueError, "digest must hold at least 4 bytes, got %zd",
                     PyBytes_GET_SIZE(digest));
        return NULL;
    }
    const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(digest);
    uint32_t position = (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 |
                        (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
    return owner_name(self, position);
}

/* An int from -2**31 to 2**32 - 1 (mmh3's signed hash, or an unsigned position), mod 2**32. */
static int
position_of(PyObject *value, uint32_t *position)
{
    if (!PyLong_Check(value) || PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "position must be an int, not %.200s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow || v < -2147483648LL || v > 4294967295LL) {
        PyErr_SetString(PyExc_ValueError, "position must be from -2**31 to 2**32 - 1");
        return -1;
    }
    *position = (uint32_t)(v & 0xFFFFFFFFLL);
    return 0;
}

static PyObject *
RingIndex_owner_at(RingIndex *self, PyObject *value)
{
    uint32_t position;
    if (position_of(value, &position) < 0) {
        return NULL;
    }
    return owner_name(self, position);
}

static PyObject *
RingIndex_index_at(RingIndex *self, PyObject *value)
{
    uint32_t position;
    if (position_of(value, &position) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(owner_index(self, position));
}

/* ------------------------------------------------------------------ batch lookups */

static PyObject *
RingIndex_owners_of(RingIndex *self, PyObject *positions_obj)
{
    Py_buffer positions;
    if (get_u32_buffer(positions_obj, &positions, "positions") < 0) {
        return NULL;
    }
    Py_ssize_t count = positions.shape[0];
    const uint32_t *values = (const uint32_t *)positions.buf;
    PyObject *result = PyList_New(count);
    if (result != NULL) {
        for (Py_ssize_t i = 0; i < count; i++) {
            PyList_SET_ITEM(result, i, owner_name(self, values[i]));
        }
    }
    PyBuffer_Release(&positions);
    return result;
}

static PyObject *
RingIndex_fill_indices(RingIndex *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "fill_indices takes 2 arguments (positions, out), got %zd",
                     nargs);
        return NULL;
    }
    Py_buffer positions, out;
    if (get_u32_buffer(args[0], &positions, "positions") < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) <
        0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError,
                     "out must be a writable contiguous buffer of intp (a numpy intp array), "
                     "not %.200s",
                     Py_TYPE(args[1])->tp_name);
        PyBuffer_Release(&positions);
        return NULL;
    }
    PyObject *result = NULL;
    const char *format = out.format ? out.format : "B";
    if (format[0] == '@' || format[0] == '=') {
        format++;
    }
    int signed_word = (strcmp(format, "l") == 0 && sizeof(long) == sizeof(Py_ssize_t)) ||
                      (strcmp(format, "q") == 0 && sizeof(long long) == sizeof(Py_ssize_t)) ||
                      (strcmp(format, "n") == 0);
    if (!signed_word || out.itemsize != (Py_ssize_t)sizeof(Py_ssize_t) || out.ndim != 1) {
        PyErr_Format(PyExc_TypeError,
                     "out must be a one-dimensional buffer of intp, got format '%s', "
                     "item size %zd, %d dimensions",
                     out.format ? out.format : "B", out.itemsize, out.ndim);
    }
    else if (out.shape[0] != positions.shape[0]) {
        PyErr_Format(PyExc_ValueError, "out must have the length of positions (%zd), got %zd",
                     positions.shape[0], out.shape[0]);
    }
    else {
        const uint32_t *values = (const uint32_t *)positions.buf;
        Py_ssize_t *indices = (Py_ssize_t *)out.buf;
        for (Py_ssize_t i = 0; i < positions.shape[0]; i++) {
            indices[i] = (Py_ssize_t)owner_index(self, values[i]);
        }
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&positions);
    PyBuffer_Release(&out);
    return result;
}

/* ------------------------------------------------------------------ inspection */

static PyObject *
RingIndex_entries(RingIndex *self, PyObject *Py_UNUSED(ignored))
{
    return PyBytes_FromStringAndSize((const char *)self->table,
                                     (Py_ssize_t)(((size_t)1 << self->bits) * sizeof(uint32_t)));
}

static PyObject *
RingIndex_pairs(RingIndex *self, PyObject *Py_UNUSED(ignored))
{
    return PyBytes_FromStringAndSize((const char *)self->pairs,
                                     (self->size + 1) * (Py_ssize_t)sizeof(Pair));
}

static PyObject *
RingIndex_get_nbytes(RingIndex *self, void *Py_UNUSED(closure))
{
    size_t bytes = ((size_t)1 << self->bits) * sizeof(uint32_t) +
                   (size_t)(self->size + 1) * sizeof(Pair);
    return PyLong_FromSize_t(bytes);
}

static PyObject *
RingIndex_get_bits(RingIndex *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->bits);
}

static PyObject *
RingIndex_get_size(RingIndex *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->size);
}

static PyObject *
RingIndex_get_names(RingIndex *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->names);
}

static PyMethodDef RingIndex_methods[] = {
    {"owner_of_digest", (PyCFunction)RingIndex_owner_of_digest, METH_O,
     "owner_of_digest(digest, /)\n--\n\n"
     "Name of the owner of the position read from the first 4 bytes (little-endian) of\n"
     "``digest`` (bytes, at least 4 long: ketama's MD5). O(1) expected.\n"
     "Raises TypeError (not bytes) or ValueError (shorter than 4 bytes)."},
    {"owner_at", (PyCFunction)RingIndex_owner_at, METH_O,
     "owner_at(position, /)\n--\n\n"
     "Name of the owner of ``position``, an int from -2**31 to 2**32 - 1 taken modulo\n"
     "2**32 (mmh3's signed hash, or an unsigned position). O(1) expected.\n"
     "Raises TypeError (not an int) or ValueError (out of range)."},
    {"index_at", (PyCFunction)RingIndex_index_at, METH_O,
     "index_at(position, /)\n--\n\n"
     "Index into ``names`` of the owner of ``position`` (as ``owner_at``)."},
    {"owners_of", (PyCFunction)RingIndex_owners_of, METH_O,
     "owners_of(positions, /)\n--\n\n"
     "List of the owners' names of a one-dimensional uint32 buffer of positions. O(k).\n"
     "Raises TypeError for any other buffer."},
    {"fill_indices", (PyCFunction)(void (*)(void))RingIndex_fill_indices, METH_FASTCALL,
     "fill_indices(positions, out, /)\n--\n\n"
     "Write the owner index of each uint32 position into ``out``, a writable intp buffer\n"
     "of the same length. O(k). Raises TypeError (buffer types) or ValueError (lengths)."},
    {"entries", (PyCFunction)RingIndex_entries, METH_NOARGS,
     "entries()\n--\n\n"
     "A copy of the bucket table as bytes of native uint32: 0x80000000 | owner for a\n"
     "bucket holding no point, else the index of its first point."},
    {"pairs", (PyCFunction)RingIndex_pairs, METH_NOARGS,
     "pairs()\n--\n\n"
     "A copy of the (point, owner) pairs, padding pair included, as bytes of native uint32."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef RingIndex_getset[] = {
    {"nbytes", (getter)RingIndex_get_nbytes, NULL, "Bytes held by the table and the pairs.",
     NULL},
    {"bits", (getter)RingIndex_get_bits, NULL, "log2 of the number of buckets.", NULL},
    {"size", (getter)RingIndex_get_size, NULL, "Number of points (without the padding).",
     NULL},
    {"names", (getter)RingIndex_get_names, NULL, "The owners' names, indexed by owner.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject RingIndex_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hashring._placement._ring_native.RingIndex",
    .tp_basicsize = sizeof(RingIndex),
    .tp_dealloc = (destructor)RingIndex_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "RingIndex(points, owners, names, bits)\n--\n\n"
              "Immutable lookup index of one ring snapshot: ``points`` the sorted uint32 points\n"
              "followed by the padding point 2**32 - 1, ``owners`` their owners (indices into\n"
              "the tuple of str ``names``) followed by the wrap-around owner, ``bits`` the\n"
              "log2 of the bucket count (1 to 28). Copies what it needs. O(points + 2**bits).\n"
              "Raises TypeError (argument types, buffer formats) or ValueError (lengths,\n"
              "unsorted points, missing padding, owners out of range, bits out of range).",
    .tp_methods = RingIndex_methods,
    .tp_getset = RingIndex_getset,
    .tp_new = RingIndex_new,
};

static struct PyModuleDef ring_native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hashring._placement._ring_native",
    .m_doc = "The ring's lookup after the hash, in C (an optional accelerator).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__ring_native(void)
{
    if (PyType_Ready(&RingIndex_Type) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&ring_native_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&RingIndex_Type);
    if (PyModule_AddObject(module, "RingIndex", (PyObject *)&RingIndex_Type) < 0) {
        Py_DECREF(&RingIndex_Type);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
