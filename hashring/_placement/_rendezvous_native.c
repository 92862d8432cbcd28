/*
 * hashring._placement._rendezvous_native: rendezvous scoring of one node set in C.
 *
 * An optional accelerator of hashring/_placement/scores.py (RendezvousScores): the same
 * scores, computed per node in a C loop instead of in 128-bit lanes of a Python integer or
 * in numpy arrays. Node i scores position p (32 bits) by the SplitMix64 finaliser of
 * (p * GOLDEN64 mod 2**64) ^ seed_i; with equal weights the 64-bit mixes themselves are
 * compared, with unequal weights w_i / -log(u_i), u_i = ((mix >> 11) + 0.5) * 2**-53,
 * with the C library's log (the one math.log calls). Higher scores win; equal scores go to
 * the lower index (name order), as numpy's argmax and stable argsort do.
 *
 * numpy's log may round differently in the last bits (SIMD code), so with unequal weights
 * a result is given only when every comparison it rests on is clear by a relative 2**-30:
 * otherwise best() answers -1 and ranking() None, and the caller asks numpy. A mix whose
 * top 53 bits are all ones gives u == 1.0 (numpy: a division by -0.0); it is deferred too.
 *
 * Plain C99 against the CPython API; the object holds no Python objects (no GC), is
 * immutable after construction, and keeps the GIL for its whole (short) work.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define GOLDEN64 UINT64_C(0x9E3779B97F4A7C15)
#define MIX1 UINT64_C(0xBF58476D1CE4E5B9)
#define MIX2 UINT64_C(0x94D049BB133111EB)
#define TOP53 ((UINT64_C(1) << 53) - 1)
#define MAX_NODES ((Py_ssize_t)1 << 24)
#define STACK_NODES 64

static const double CLOSE = 1.0 - 1.0 / 1073741824.0; /* 1 - 2**-30 */
static const double UNIT = 1.0 / 9007199254740992.0;  /* 2**-53 */

typedef struct {
    PyObject_HEAD
    Py_ssize_t size;
    int equal;
    uint64_t *seeds; /* each seed after the mix's first xor-shift (linear over xor) */
    double *weights; /* NULL with equal weights */
} ScorerObject;

static inline uint64_t
mix_tail(uint64_t x)
{
    x *= MIX1;
    x ^= x >> 27;
    x *= MIX2;
    return x ^ (x >> 31);
}

/* The spread position after the first xor-shift: mix64(spread ^ s) is
 * mix_tail(pre ^ seeds[i]) because x ^ (x >> 30) is linear over xor. */
static int
spread_of(PyObject *position, uint64_t *pre)
{
    unsigned long long raw;
    if (PyLong_Check(position)) {
        raw = PyLong_AsUnsignedLongLongMask(position);
    }
    else {
        /* Any integer type (operator.index), as ``position & 0xFFFFFFFF`` takes. */
        PyObject *index = PyNumber_Index(position);
        if (index == NULL) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "position must be an int, not %.100s",
                             Py_TYPE(position)->tp_name);
            }
            return -1;
        }
        raw = PyLong_AsUnsignedLongLongMask(index);
        Py_DECREF(index);
    }
    if (raw == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    uint64_t spread = (uint64_t)(raw & 0xFFFFFFFFu) * GOLDEN64;
    *pre = spread ^ (spread >> 30);
    return 0;
}

static inline double
weighted_score(double weight, uint64_t mixed)
{
    double u = ((double)(mixed >> 11) + 0.5) * UNIT;
    return weight / -log(u);
}

/* ------------------------------------------------------------------ construction */

static void
Scorer_dealloc(ScorerObject *self)
{
    PyMem_Free(self->seeds);
    PyMem_Free(self->weights);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Scorer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"seeds", "weights", NULL};
    PyObject *seeds_arg;
    PyObject *weights_arg = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:Scorer", kwlist, &seeds_arg,
                                     &weights_arg)) {
        return NULL;
    }
    if (!PyList_Check(seeds_arg) && !PyTuple_Check(seeds_arg)) {
        PyErr_Format(PyExc_TypeError, "seeds must be a list or tuple of ints, not %.100s",
                     Py_TYPE(seeds_arg)->tp_name);
        return NULL;
    }
    if (weights_arg != Py_None && !PyList_Check(weights_arg) && !PyTuple_Check(weights_arg)) {
        PyErr_Format(PyExc_TypeError,
                     "weights must be None or a list or tuple of floats, not %.100s",
                     Py_TYPE(weights_arg)->tp_name);
        return NULL;
    }
    Py_ssize_t size = PySequence_Fast_GET_SIZE(seeds_arg);
    if (size < 1 || size > MAX_NODES) {
        PyErr_Format(PyExc_ValueError, "seeds must hold 1 to %zd values, got %zd", MAX_NODES,
                     size);
        return NULL;
    }
    if (weights_arg != Py_None && PySequence_Fast_GET_SIZE(weights_arg) != size) {
        PyErr_Format(PyExc_ValueError, "weights must hold one value per seed (%zd), got %zd",
                     size, PySequence_Fast_GET_SIZE(weights_arg));
        return NULL;
    }
    ScorerObject *self = (ScorerObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->size = size;
    self->equal = weights_arg == Py_None;
    self->seeds = PyMem_New(uint64_t, size);
    if (self->seeds == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    if (!self->equal) {
        self->weights = PyMem_New(double, size);
        if (self->weights == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    /* No Python code runs while the items are read (ints and floats are converted without
     * __index__ or __float__), so the borrowed items and the sizes stay valid; the size is
     * checked again all the same. */
    for (Py_ssize_t i = 0; i < size; i++) {
        if (i >= PySequence_Fast_GET_SIZE(seeds_arg)) {
            PyErr_SetString(PyExc_ValueError, "seeds changed size during construction");
            goto fail;
        }
        PyObject *item = PySequence_Fast_GET_ITEM(seeds_arg, i);
        if (!PyLong_Check(item)) {
            PyErr_Format(PyExc_TypeError, "seeds[%zd] must be an int, not %.100s", i,
                         Py_TYPE(item)->tp_name);
            goto fail;
        }
        unsigned long long seed = PyLong_AsUnsignedLongLong(item);
        if (seed == (unsigned long long)-1 && PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "seeds[%zd] must be from 0 to 2**64 - 1", i);
            }
            goto fail;
        }
        self->seeds[i] = (uint64_t)seed ^ ((uint64_t)seed >> 30);
    }
    for (Py_ssize_t i = 0; !self->equal && i < size; i++) {
        if (i >= PySequence_Fast_GET_SIZE(weights_arg)) {
            PyErr_SetString(PyExc_ValueError, "weights changed size during construction");
            goto fail;
        }
        PyObject *item = PySequence_Fast_GET_ITEM(weights_arg, i);
        double weight;
        if (PyFloat_Check(item)) {
            weight = PyFloat_AS_DOUBLE(item);
        }
        else if (PyLong_Check(item)) {
            weight = PyLong_AsDouble(item); /* no __float__: no Python code runs */
            if (weight == -1.0 && PyErr_Occurred()) {
                if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                    PyErr_Clear();
                    PyErr_Format(PyExc_ValueError, "weights[%zd] is too large for a float", i);
                }
                goto fail;
            }
        }
        else {
            PyErr_Format(PyExc_TypeError, "weights[%zd] must be a float, not %.100s", i,
                         Py_TYPE(item)->tp_name);
            goto fail;
        }
        if (!isfinite(weight) || !(weight > 0.0)) {
            PyErr_Format(PyExc_ValueError, "weights[%zd] must be finite and above 0", i);
            goto fail;
        }
        self->weights[i] = weight;
    }
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

/* ------------------------------------------------------------------ best */

/* Index of the best node, or -1 when numpy must decide (unequal weights only). */
static Py_ssize_t
best_index(const ScorerObject *self, uint64_t pre)
{
    const uint64_t *seeds = self->seeds;
    Py_ssize_t size = self->size;
    if (self->equal) {
        uint64_t best = mix_tail(pre ^ seeds[0]);
        Py_ssize_t index = 0;
        for (Py_ssize_t i = 1; i < size; i++) {
            uint64_t mixed = mix_tail(pre ^ seeds[i]);
            if (mixed > best) {
                best = mixed;
                index = i;
            }
        }
        return index;
    }
    const double *weights = self->weights;
    double best = -INFINITY;
    double second = -INFINITY;
    Py_ssize_t index = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        uint64_t mixed = mix_tail(pre ^ seeds[i]);
        if ((mixed >> 11) == TOP53) {
            return -1; /* u == 1.0 */
        }
        double score = weighted_score(weights[i], mixed);
        if (score > best) {
            second = best;
            best = score;
            index = i;
        }
        else if (score > second) {
            second = score;
        }
    }
    if (second >= best * CLOSE) {
        return -1; /* too close to trust a differently rounded log */
    }
    return index;
}

static PyObject *
Scorer_best(ScorerObject *self, PyObject *position)
{
    uint64_t pre;
    if (spread_of(position, &pre) < 0) {
        return NULL;
    }
    return PyLong_FromSsize_t(best_index(self, pre));
}

/* ------------------------------------------------------------------ ranking */

/* A node and its sort key: ascending keys are descending scores. With equal weights the key
 * is ~mix; with unequal weights ~(the score's bits), since positive finite doubles order
 * as their bit patterns. Both sorts below are stable and start from index order, so equal
 * scores keep the lower index first, as numpy's stable argsort does. */
typedef struct {
    uint64_t key;
    Py_ssize_t index;
} Entry;

static void
insertion_sort(Entry *entries, Py_ssize_t size)
{
    for (Py_ssize_t i = 1; i < size; i++) {
        Entry entry = entries[i];
        Py_ssize_t j = i;
        while (j > 0 && entries[j - 1].key > entry.key) {
            entries[j] = entries[j - 1];
            j--;
        }
        entries[j] = entry;
    }
}

/* LSD radix sort, a byte at a time; the result ends in entries. */
static void
radix_sort(Entry *entries, Entry *spare, Py_ssize_t size)
{
    Entry *from = entries;
    Entry *to = spare;
    for (int shift = 0; shift < 64; shift += 8) {
        Py_ssize_t start[256] = {0};
        for (Py_ssize_t i = 0; i < size; i++) {
            start[(from[i].key >> shift) & 0xFF]++;
        }
        if (start[(from[0].key >> shift) & 0xFF] == size) {
            continue; /* every key has this byte: the pass would change nothing */
        }
        Py_ssize_t total = 0;
        for (int digit = 0; digit < 256; digit++) {
            Py_ssize_t count = start[digit];
            start[digit] = total;
            total += count;
        }
        for (Py_ssize_t i = 0; i < size; i++) {
            to[start[(from[i].key >> shift) & 0xFF]++] = from[i];
        }
        Entry *swap = from;
        from = to;
        to = swap;
    }
    if (from != entries) {
        memcpy(entries, from, (size_t)size * sizeof(Entry));
    }
}

static inline double
score_of(uint64_t key)
{
    uint64_t bits = ~key;
    double score;
    memcpy(&score, &bits, sizeof score);
    return score;
}

static PyObject *
Scorer_ranking(ScorerObject *self, PyObject *position)
{
    uint64_t pre;
    if (spread_of(position, &pre) < 0) {
        return NULL;
    }
    Py_ssize_t size = self->size;
    Entry stack[STACK_NODES];
    Entry *entries = stack;
    if (size > STACK_NODES) {
        entries = PyMem_New(Entry, 2 * size); /* the second half: the radix sort's spare */
        if (entries == NULL) {
            return PyErr_NoMemory();
        }
    }
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < size; i++) {
        uint64_t mixed = mix_tail(pre ^ self->seeds[i]);
        entries[i].index = i;
        if (self->equal) {
            entries[i].key = ~mixed;
            continue;
        }
        if ((mixed >> 11) == TOP53) {
            result = Py_NewRef(Py_None); /* u == 1.0 */
            goto done;
        }
        double score = weighted_score(self->weights[i], mixed);
        uint64_t bits;
        memcpy(&bits, &score, sizeof bits);
        entries[i].key = ~bits;
    }
    if (size > STACK_NODES) {
        radix_sort(entries, entries + size, size);
    }
    else {
        insertion_sort(entries, size);
    }
    if (!self->equal) {
        /* Every neighbour clear of the next: then every pair is, and numpy's order is
         * this one. */
        for (Py_ssize_t i = 1; i < size; i++) {
            if (score_of(entries[i].key) >= score_of(entries[i - 1].key) * CLOSE) {
                result = Py_NewRef(Py_None);
                goto done;
            }
        }
    }
    result = PyList_New(size);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *index = PyLong_FromSsize_t(entries[i].index);
        if (index == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, index);
    }
done:
    if (entries != stack) {
        PyMem_Free(entries);
    }
    return result;
}

/* ------------------------------------------------------------------ mixes */

static PyObject *
Scorer_mixes(ScorerObject *self, PyObject *position)
{
    uint64_t pre;
    if (spread_of(position, &pre) < 0) {
        return NULL;
    }
    PyObject *result = PyList_New(self->size);
    if (result == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->size; i++) {
        PyObject *mixed = PyLong_FromUnsignedLongLong(mix_tail(pre ^ self->seeds[i]));
        if (mixed == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, i, mixed);
    }
    return result;
}

static PyObject *
Scorer_get_size(ScorerObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->size);
}

static PyObject *
Scorer_get_equal(ScorerObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->equal);
}

static PyMethodDef Scorer_methods[] = {
    {"best", (PyCFunction)Scorer_best, METH_O,
     "best(position) -> int\n--\n\n"
     "Index of the highest-scoring node for ``position & 0xFFFFFFFF`` (ties: lowest\n"
     "index); -1 when numpy must decide (unequal weights, scores too close or u == 1.0).\n"
     "O(n). Raises TypeError if position is not an integer (operator.index)."},
    {"ranking", (PyCFunction)Scorer_ranking, METH_O,
     "ranking(position) -> list[int] | None\n--\n\n"
     "Node indices from highest to lowest score (ties: lowest index first); None when\n"
     "numpy must decide (as for best). O(n log n). Raises TypeError as best."},
    {"mixes", (PyCFunction)Scorer_mixes, METH_O,
     "mixes(position) -> list[int]\n--\n\n"
     "The 64-bit SplitMix64 mix of every node for the position. O(n)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Scorer_getset[] = {
    {"size", (getter)Scorer_get_size, NULL, "How many nodes are scored.", NULL},
    {"equal", (getter)Scorer_get_equal, NULL, "True if the mixes are compared (no weights).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ScorerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hashring._placement._rendezvous_native.Scorer",
    .tp_basicsize = sizeof(ScorerObject),
    .tp_itemsize = 0,
    .tp_dealloc = (destructor)Scorer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Scorer(seeds, weights=None)\n--\n\n"
              "Rendezvous scoring of one node set: ``seeds`` (ints from 0 to 2**64 - 1, one\n"
              "per node in name order) and ``weights`` (None: equal weights, the mixes are\n"
              "compared; else one finite float above 0 per node). Immutable. Raises\n"
              "TypeError for a wrong type, ValueError for an empty or mismatched set or a\n"
              "value out of range.",
    .tp_methods = Scorer_methods,
    .tp_getset = Scorer_getset,
    .tp_new = Scorer_new,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hashring._placement._rendezvous_native",
    .m_doc = "Rendezvous scoring in C: the optional accelerator of hashring's scores module.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__rendezvous_native(void)
{
    if (PyType_Ready(&ScorerType) < 0) {
        return NULL;
    }
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(mod, "Scorer", (PyObject *)&ScorerType) < 0 ||
        PyModule_AddIntConstant(mod, "MAX_SIZE", (long)MAX_NODES) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
