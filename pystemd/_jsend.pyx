# cython: freethreading_compatible=False
"""Thin layer over the writing half of sd-journal.

What it does, in C, so that the façade (:mod:`pystemd._writer`) stays a few
lines of Python per call:

* ``send()`` builds every ``NAME=value`` field of one entry into a single
  buffer (on the C stack for ordinary entries, no malloc), adds the caller's
  ``CODE_FILE``/``CODE_LINE``/``CODE_FUNC`` read from the interpreter's frame
  (``depth`` frames up: no stack walk, no source read) and hands the iovecs to
  ``sd_journal_sendv`` with the GIL released.
* ``sendv()`` sends ready ``NAME=value`` items (str or bytes) without copying
  them, plus optional ``name -> value`` fields.
* ``stream_fd()`` wraps ``sd_journal_stream_fd``.

Every return code is checked. ``sd_journal_sendv`` reports success when
journald's socket does not exist (``ENOENT`` is swallowed by libsystemd, and
errno is restored), so after a successful return this module looks for the
socket itself (one ``access()``, trusted for 100 ms once it succeeded): a
missing socket is reported (raised under ``STRICT``, returned as the
``NO_JOURNALD`` bit otherwise), never a silent success.

``send``/``sendv`` (pystemd's flavour) and ``compat_send``/``compat_sendv``
(python-systemd's, for the drop-in) are the public verbs, C functions with
python-systemd's signatures; ``send_fields`` is the general form.

Field names are checked against journald's rule (``[A-Z0-9_]``, not starting
with ``_`` or a digit, at most 64 characters); journald silently drops fields
that break it. Under ``STRICT`` a bad name raises :class:`FieldError`,
otherwise the entry is sent as given and the ``BAD_NAME`` bit is returned
(python-systemd's behaviour, plus a report).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Next
from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_Check
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcpy
from posix.uio cimport iovec

from libsystemd.sd_journal cimport sd_journal_sendv, sd_journal_stream_fd
from pystemd._errors cimport check_ctx

import errno as _errno
import os as _os

cdef extern from "unistd.h" nogil:
    int access(const char *path, int mode)
    enum:
        F_OK

cdef extern from "stdio.h" nogil:
    int snprintf(char *s, size_t n, const char *fmt, ...)

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL
    object PyUnicode_AsEncodedString(object unicode, const char *encoding, const char *errors)

# The caller's code object and line, `depth` Python frames above the innermost
# one (0 = the function that called into this module). A new reference to the
# code object, or NULL (no exception set) when the stack is not that deep.
cdef extern from *:
    """
    #include <frameobject.h>
    static PyObject *pystemd_jsend_caller(int depth, int *line) {
        PyFrameObject *f = PyEval_GetFrame();
        PyFrameObject *back;
        PyObject *code;
        if (f == NULL)
            return NULL;
        Py_INCREF(f);
        while (depth-- > 0) {
            back = PyFrame_GetBack(f);
            Py_DECREF(f);
            if (back == NULL)
                return NULL;
            f = back;
        }
        code = (PyObject *) PyFrame_GetCode(f);
        *line = PyFrame_GetLineNumber(f);
        Py_DECREF(f);
        return code;
    }
    static inline PyObject *pystemd_code_filename(PyObject *code) {
        return ((PyCodeObject *) code)->co_filename;
    }
    static inline PyObject *pystemd_code_name(PyObject *code) {
        return ((PyCodeObject *) code)->co_name;
    }
    """
    PyObject *pystemd_jsend_caller(int depth, int *line)
    PyObject *pystemd_code_filename(PyObject *code)
    PyObject *pystemd_code_name(PyObject *code)


# flags (arguments)
STRICT = 1          # raise FieldError / FileNotFoundError instead of returning bits
LOCATION = 2        # add CODE_FILE/CODE_LINE/CODE_FUNC of the caller when none is given
# result bits (only ever returned without STRICT)
NO_JOURNALD = 1     # journald's socket does not exist: nothing was logged
BAD_NAME = 2        # a field name breaks journald's rule: journald drops that field

SOCKET_PATH = "/run/systemd/journal/socket"
STDOUT_PATH = "/run/systemd/journal/stdout"
# journald ignores an entry with more fields than this, or a field larger than
# DATA_SIZE_MAX (journal-importer.h, v252); refuse them here instead.
FIELDS_MAX = 1024
DATA_SIZE_MAX = 768 * 1024 * 1024
FIELD_NAME_MAX = 64

cdef enum:
    _STRICT = 1
    _LOCATION = 2
    _OLD_STYLE = 4
    _NO_JOURNALD = 1
    _BAD_NAME = 2
    _FIELDS_MAX = 1024
    _FIELD_NAME_MAX = 64
    _SMALL_BYTES = 2048
    _SMALL_FIELDS = 48

cdef size_t _DATA_SIZE_MAX = 768 * 1024 * 1024
cdef const char *_SOCKET = b"/run/systemd/journal/socket"


class FieldError(OSError, ValueError):
    """A field journald would reject or drop (bad name, no ``=``, too many, too large).

    Both a :class:`ValueError` (bad input) and ``OSError(EINVAL)``, which is what
    python-systemd raised for the same items (libsystemd's ``-EINVAL``).
    """

    def __init__(self, message):
        OSError.__init__(self, _errno.EINVAL, message)

    def __str__(self):
        return self.strerror


# ---------------------------------------------------------------------------
# is journald's socket there?
#
# sd_journal_sendv returns 0 when the socket does not exist (it swallows ENOENT
# and restores errno), so after a 0 we look for the socket ourselves. One
# access() costs about as much as the rest of pystemd's part of a send, so a
# positive answer is trusted for SOCKET_RECHECK_NS; a negative one never is
# (every send checks again until the socket appears). The socket of a running
# systemd only disappears when systemd-journald.socket itself is stopped; the
# entries of at most that window after it would go unreported.

cdef extern from "time.h" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    enum:
        CLOCK_MONOTONIC_COARSE

cdef enum:
    _SOCKET_RECHECK_NS = 100000000   # 100 ms

SOCKET_RECHECK_S = _SOCKET_RECHECK_NS / 1e9

# CLOCK_MONOTONIC_COARSE of the last time the socket was seen (0: never); a
# plain word, read and written by any thread: a stale value only costs a check.
cdef volatile long long _socket_seen_ns = 0


cdef inline bint _socket_seen() noexcept nogil:
    global _socket_seen_ns
    cdef timespec ts
    cdef long long now
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
    now = <long long> ts.tv_sec * 1000000000 + ts.tv_nsec
    if _socket_seen_ns != 0 and now - _socket_seen_ns < _SOCKET_RECHECK_NS:
        return True
    if access(_SOCKET, F_OK) != 0:
        _socket_seen_ns = 0
        return False
    _socket_seen_ns = now
    return True


def _forget_socket():
    """Make the next send look for journald's socket again (tests)."""
    global _socket_seen_ns
    _socket_seen_ns = 0


# ---------------------------------------------------------------------------
# field names

cdef inline bint _name_ok(const char *p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef char c
    if n <= 0 or n > _FIELD_NAME_MAX:
        return False
    if p[0] == b'_' or (p[0] >= b'0' and p[0] <= b'9'):
        return False
    for i in range(n):
        c = p[i]
        if not ((c >= b'A' and c <= b'Z') or (c >= b'0' and c <= b'9') or c == b'_'):
            return False
    return True


def valid_field_name(name):
    """True if journald keeps a field called ``name`` (str or bytes)."""
    cdef Py_ssize_t n
    cdef const char *p
    if PyUnicode_Check(name):
        p = PyUnicode_AsUTF8AndSize(name, &n)
    elif PyBytes_Check(name):
        p = PyBytes_AS_STRING(name)
        n = PyBytes_GET_SIZE(name)
    else:
        return False
    return _name_ok(p, n)


cdef str _why_bad(object name):
    return (
        f"invalid journal field name {name!r}: journald keeps only names of 1-64 characters "
        "from A-Z, 0-9 and _, not starting with _ or a digit (it drops the others silently)"
    )


# ---------------------------------------------------------------------------
# one entry's fields, contiguous in one buffer (stack first, heap when large)

cdef struct Buf:
    char *data
    size_t len
    size_t cap
    size_t *starts          # start offset of each field; a field ends where the next starts
    Py_ssize_t n
    Py_ssize_t ncap
    char small[_SMALL_BYTES]
    size_t small_starts[_SMALL_FIELDS]


cdef inline void _buf_init(Buf *b) noexcept nogil:
    b.data = b.small
    b.len = 0
    b.cap = _SMALL_BYTES
    b.starts = b.small_starts
    b.n = 0
    b.ncap = _SMALL_FIELDS


cdef inline void _buf_free(Buf *b) noexcept nogil:
    if b.data != b.small:
        free(b.data)
    if b.starts != b.small_starts:
        free(b.starts)
    b.data = NULL
    b.starts = NULL


cdef int _buf_reserve(Buf *b, size_t extra) except -1:
    cdef size_t need, cap
    cdef char *p
    if extra <= b.cap - b.len:
        return 0
    if extra > _DATA_SIZE_MAX or b.len + extra > _DATA_SIZE_MAX:
        raise FieldError(
            f"journal entry too large (more than {_DATA_SIZE_MAX} bytes): journald ignores it"
        )
    need = b.len + extra
    cap = b.cap * 2
    if cap < need:
        cap = need
    if b.data == b.small:
        p = <char *> malloc(cap)
        if p != NULL:
            memcpy(p, b.data, b.len)
    else:
        p = <char *> realloc(b.data, cap)
    if p == NULL:
        raise MemoryError("journal entry: out of memory")
    b.data = p
    b.cap = cap
    return 0


cdef int _buf_field(Buf *b) except -1:
    """Start a new field at the current end of the buffer."""
    cdef size_t *p
    cdef Py_ssize_t cap
    if b.n >= _FIELDS_MAX:
        raise FieldError(
            f"a journal entry holds at most {_FIELDS_MAX} fields: journald ignores larger ones"
        )
    if b.n == b.ncap:
        cap = b.ncap * 4
        if cap > _FIELDS_MAX:
            cap = _FIELDS_MAX
        if b.starts == b.small_starts:
            p = <size_t *> malloc(cap * sizeof(size_t))
            if p != NULL:
                memcpy(p, b.starts, b.n * sizeof(size_t))
        else:
            p = <size_t *> realloc(b.starts, cap * sizeof(size_t))
        if p == NULL:
            raise MemoryError("journal entry: out of memory")
        b.starts = p
        b.ncap = cap
    b.starts[b.n] = b.len
    b.n += 1
    return 0


cdef inline int _buf_put(Buf *b, const char *p, size_t l) except -1:
    if l > b.cap - b.len:
        _buf_reserve(b, l)
    memcpy(b.data + b.len, p, l)
    b.len += l
    return 0


cdef int _put_text(Buf *b, object v, str what) except -1:
    """str (UTF-8) or bytes (as is); anything else is a TypeError naming ``what``."""
    cdef Py_ssize_t l
    cdef const char *p
    if PyUnicode_Check(v):
        p = PyUnicode_AsUTF8AndSize(v, &l)
    elif PyBytes_Check(v):
        p = PyBytes_AS_STRING(v)
        l = PyBytes_GET_SIZE(v)
    else:
        raise TypeError(f"{what} must be str or bytes, got {type(v).__name__}")
    return _buf_put(b, p, <size_t> l)


cdef int _put_value(Buf *b, object v) except -1:
    """python-systemd's rule (_make_line): bytes as is, str as UTF-8, else str(v)."""
    cdef Py_ssize_t l
    cdef const char *p
    if PyBytes_Check(v):
        return _buf_put(b, PyBytes_AS_STRING(v), <size_t> PyBytes_GET_SIZE(v))
    if not PyUnicode_Check(v):
        v = str(v)
    p = PyUnicode_AsUTF8AndSize(v, &l)
    return _buf_put(b, p, <size_t> l)


cdef int _put_old_style_value(Buf *b, object v) except -1:
    """The older pystemd's rule for sendv(**fields): booleans as true/false, paths as paths."""
    if v is True:
        return _buf_put(b, b"true", 4)
    if v is False:
        return _buf_put(b, b"false", 5)
    if not (PyUnicode_Check(v) or PyBytes_Check(v)) and isinstance(v, _os.PathLike):
        v = _os.fspath(v)
    return _put_value(b, v)


cdef int _put_path_text(Buf *b, object s) except -1:
    """A file or function name from a code object: UTF-8, undecodable bytes restored."""
    cdef Py_ssize_t l
    cdef const char *p
    try:
        p = PyUnicode_AsUTF8AndSize(s, &l)
    except UnicodeEncodeError:
        raw = PyUnicode_AsEncodedString(s, b"utf-8", b"surrogateescape")
        return _buf_put(b, PyBytes_AS_STRING(raw), <size_t> PyBytes_GET_SIZE(raw))
    return _buf_put(b, p, <size_t> l)


cdef int _put_int_field(Buf *b, const char *prefix, size_t plen, long long v) except -1:
    cdef char num[32]
    cdef int k = snprintf(num, sizeof(num), b"%lld", v)
    _buf_field(b)
    _buf_put(b, prefix, plen)
    return _buf_put(b, num, <size_t> k)


cdef int _put_location(Buf *b, int depth) except -1:
    """CODE_FILE, CODE_LINE, CODE_FUNC of the frame ``depth`` levels up (if any)."""
    cdef int line = 0
    cdef PyObject *code = pystemd_jsend_caller(depth, &line)
    if code == NULL:
        return 0
    try:
        _buf_field(b)
        _buf_put(b, b"CODE_FILE=", 10)
        _put_path_text(b, <object> pystemd_code_filename(code))
        _put_int_field(b, b"CODE_LINE=", 10, line)
        _buf_field(b)
        _buf_put(b, b"CODE_FUNC=", 10)
        _put_path_text(b, <object> pystemd_code_name(code))
    finally:
        Py_XDECREF(code)
    return 0


cdef int _put_fields(Buf *b, dict fields, int flags, int *result) except -1:
    """Each ``name: value`` of ``fields`` as one ``NAME=value`` field."""
    cdef Py_ssize_t pos = 0, kl
    cdef PyObject *k
    cdef PyObject *v
    cdef const char *kp
    while PyDict_Next(fields, &pos, &k, &v):
        key = <object> k
        value = <object> v
        if not PyUnicode_Check(key):
            raise TypeError(f"journal field names must be str, got {type(key).__name__}")
        kp = PyUnicode_AsUTF8AndSize(key, &kl)
        if kl == 0 or memchr(kp, b'\n', <size_t> kl) != NULL or memchr(kp, b'=', <size_t> kl) != NULL:
            raise FieldError(f"journal field name must not be empty or contain '=' or a newline: {key!r}")
        if not _name_ok(kp, kl):
            if flags & _STRICT:
                raise FieldError(_why_bad(key))
            result[0] |= _BAD_NAME
        _buf_field(b)
        _buf_put(b, kp, <size_t> kl)
        _buf_put(b, b"=", 1)
        if flags & _OLD_STYLE:
            _put_old_style_value(b, value)
        else:
            _put_value(b, value)
    return 0


cdef int _submit(Buf *b, tuple items, int flags, int result) except -1:
    """sd_journal_sendv(items + b's fields) with the GIL released; report failures."""
    cdef Py_ssize_t nitems = PyTuple_GET_SIZE(items) if items is not None else 0
    cdef Py_ssize_t n = nitems + b.n, i
    cdef iovec small_iov[_SMALL_FIELDS]
    cdef iovec *iov = small_iov
    cdef const char *p
    cdef const char *eq
    cdef Py_ssize_t l
    cdef size_t total = b.len
    cdef int r = 0
    cdef bint missing = False

    if n == 0:
        raise FieldError("nothing to send: a journal entry needs at least one NAME=value field")
    if n > _FIELDS_MAX:
        raise FieldError(
            f"a journal entry holds at most {_FIELDS_MAX} fields, got {n}: journald ignores larger ones"
        )
    if n > _SMALL_FIELDS:
        iov = <iovec *> malloc(n * sizeof(iovec))
        if iov == NULL:
            raise MemoryError("journal entry: out of memory")
    try:
        for i in range(nitems):
            item = <object> PyTuple_GET_ITEM(items, i)
            if PyUnicode_Check(item):
                p = PyUnicode_AsUTF8AndSize(item, &l)
            elif PyBytes_Check(item):
                p = PyBytes_AS_STRING(item)
                l = PyBytes_GET_SIZE(item)
            else:
                raise TypeError(
                    f"journal items must be str or bytes 'NAME=value', got {type(item).__name__}"
                )
            eq = <const char *> memchr(p, b'=', <size_t> l)
            if eq == NULL or eq == p:
                raise FieldError(f"journal item must look like 'NAME=value', got {item[:80]!r}")
            if not _name_ok(p, eq - p):
                if flags & _STRICT:
                    raise FieldError(_why_bad((<bytes> p[: eq - p]).decode("utf-8", "replace")))
                result |= _BAD_NAME
            if memchr(p, b'\n', <size_t> (eq - p)) != NULL:
                raise FieldError(f"journal field name contains a newline: {item[:80]!r}")
            total += <size_t> l
            if total > _DATA_SIZE_MAX:
                raise FieldError(
                    f"journal entry too large (more than {_DATA_SIZE_MAX} bytes): journald ignores it"
                )
            iov[i].iov_base = <void *> p
            iov[i].iov_len = <size_t> l
        for i in range(b.n):
            iov[nitems + i].iov_base = b.data + b.starts[i]
            iov[nitems + i].iov_len = (b.starts[i + 1] if i + 1 < b.n else b.len) - b.starts[i]

        with nogil:
            r = sd_journal_sendv(iov, <int> n)
            if r == 0:
                missing = not _socket_seen()
    finally:
        if iov != small_iov:
            free(iov)

    check_ctx(r, SOCKET_PATH)
    if missing:
        if flags & _STRICT:
            raise FileNotFoundError(
                _errno.ENOENT,
                "journald is not running here (its socket does not exist); the entry was not logged",
                SOCKET_PATH,
            )
        result |= _NO_JOURNALD
    return result


# ---------------------------------------------------------------------------
# the verbs

cdef int _entry(message, message_id, code_file, code_line, code_func, dict fields, int depth,
                int flags) except -1:
    """Build and send one entry: MESSAGE, MESSAGE_ID, the CODE_* fields, then ``fields``."""
    cdef Buf b
    cdef int result = 0
    _buf_init(&b)
    try:
        _buf_field(&b)
        _buf_put(&b, b"MESSAGE=", 8)
        _put_text(&b, message, "MESSAGE")
        if message_id is not None:
            _buf_field(&b)
            _buf_put(&b, b"MESSAGE_ID=", 11)
            if not (PyUnicode_Check(message_id) or PyBytes_Check(message_id)):
                message_id = getattr(message_id, "hex", message_id)
            _put_text(&b, message_id, "MESSAGE_ID")
        if code_file is None and code_line is None and code_func is None:
            if flags & _LOCATION:
                _put_location(&b, depth)
        else:
            if code_file is not None:
                _buf_field(&b)
                _buf_put(&b, b"CODE_FILE=", 10)
                _put_text(&b, code_file, "CODE_FILE")
            if code_line is not None:
                try:
                    line = code_line.__index__()
                except AttributeError:
                    raise TypeError(
                        f"CODE_LINE must be an int, got {type(code_line).__name__}"
                    ) from None
                _put_int_field(&b, b"CODE_LINE=", 10, line)
            if code_func is not None:
                _buf_field(&b)
                _buf_put(&b, b"CODE_FUNC=", 10)
                _put_text(&b, code_func, "CODE_FUNC")
        if fields:
            _put_fields(&b, fields, flags, &result)
        return _submit(&b, None, flags, result)
    finally:
        _buf_free(&b)


cdef int _entry_v(tuple items, dict fields, int flags) except -1:
    """Send ``items`` (``'NAME=value'``, str or bytes, not copied) then ``fields``."""
    cdef Buf b
    cdef int result = 0
    _buf_init(&b)
    try:
        if fields:
            _put_fields(&b, fields, flags | _OLD_STYLE, &result)
        return _submit(&b, items, flags, result)
    finally:
        _buf_free(&b)


# The drop-in flavour's reporter (pystemd._writer._report): called with the
# result bits, the keyword fields and the items of a send that journald will
# not fully keep; it turns them into warnings.
cdef object _reporter = None


def set_reporter(fn):
    """Install the callable the ``compat_*`` verbs call with ``(bits, fields, items)``."""
    global _reporter
    _reporter = fn


cdef int _report(int r, dict fields, tuple items) except -1:
    if _reporter is not None:
        _reporter(r, fields, items)
    return 0


# The verbs themselves are C functions (no Python frame of their own: the
# caller's location is the innermost frame, and a call costs no wrapper).

@cython.binding(True)
def send(MESSAGE, MESSAGE_ID=None, CODE_FILE=None, CODE_LINE=None, CODE_FUNC=None, **kwargs):
    r"""Send one entry to the journal.

    >>> send("Hello world")
    >>> send("Binary", BINARY=b"\xde\xad\xbe\xef", MULTI_LINE="a\nb", COUNT=3)

    ``MESSAGE`` is str (sent as UTF-8) or bytes. ``MESSAGE_ID`` is a
    ``uuid.UUID`` or a hex str. Unless one of ``CODE_FILE``/``CODE_LINE``/
    ``CODE_FUNC`` is given, the three are the caller's file, line and
    function. Each keyword is one field: bytes are sent as they are (any
    content, newlines and NULs included), str as UTF-8, anything else as
    ``str(value)``.

    Raises ``FieldError`` (a ``ValueError``) for a name journald would drop
    (it keeps ``[A-Z0-9_]``, not starting with ``_`` or a digit, at most 64
    characters), ``FileNotFoundError`` when journald's socket does not exist,
    and ``OSError`` for any other failure of ``sd_journal_sendv``.
    """
    _entry(MESSAGE, MESSAGE_ID, CODE_FILE, CODE_LINE, CODE_FUNC, kwargs, 0, _STRICT | _LOCATION)


@cython.binding(True)
def compat_send(MESSAGE, MESSAGE_ID=None, CODE_FILE=None, CODE_LINE=None, CODE_FUNC=None,
                **kwargs):
    """python-systemd's ``journal.send``: as :func:`send`, but a field name journald
    drops and a missing journald are reported to the reporter (warnings), not raised."""
    cdef int r = _entry(MESSAGE, MESSAGE_ID, CODE_FILE, CODE_LINE, CODE_FUNC, kwargs, 0, _LOCATION)
    if r:
        _report(r, kwargs, ())


@cython.binding(True)
def sendv(*items, **fields):
    """Send ready ``'NAME=value'`` items (str or bytes), as python-systemd's ``sendv``.

    Keyword fields are accepted too, as in the older pystemd's
    ``sendv(*args, **kwargs)``: ``True``/``False`` become ``true``/``false``,
    paths their file name, bytes are sent as is, anything else ``str(value)``.
    No caller location is added. Errors as for :func:`send`; no field at all
    is a ``FieldError``.
    """
    _entry_v(items, fields, _STRICT)


@cython.binding(True)
def compat_sendv(*items, **fields):
    """python-systemd's ``journal.sendv`` (see :func:`sendv`; failures are reported, not raised)."""
    cdef int r = _entry_v(items, fields, 0)
    if r:
        _report(r, fields, items)


def send_fields(message, message_id, code_file, code_line, code_func, dict fields, int depth,
                int flags):
    """The general form: one entry, ``fields`` as given; location ``depth`` frames up
    (0 = the caller of this function) when ``flags`` has LOCATION and no CODE_* is given.

    Returns 0, or the result bits (NO_JOURNALD, BAD_NAME) without ``STRICT``.
    """
    return _entry(message, message_id, code_file, code_line, code_func, fields, depth, flags)


def caller(int depth):
    """``(CODE_FILE, CODE_LINE, CODE_FUNC)`` of the frame ``depth`` levels up, or None."""
    cdef int line = 0
    cdef PyObject *code = pystemd_jsend_caller(depth, &line)
    if code == NULL:
        return None
    try:
        return (<object> pystemd_code_filename(code), line, <object> pystemd_code_name(code))
    finally:
        Py_XDECREF(code)


def socket_present():
    """True if journald's native socket exists (where sd_journal_sendv writes)."""
    cdef int r
    with nogil:
        r = access(_SOCKET, F_OK)
    return r == 0


def stream_fd(identifier, int priority, level_prefix):
    """``sd_journal_stream_fd``: a connected stream socket; each line written is an entry.

    ``identifier`` is str, bytes or None (no SYSLOG_IDENTIFIER); ``priority``
    0-7; ``level_prefix`` true to honour ``<N>`` prefixes. Returns the fd.
    """
    cdef const char *ident = NULL
    cdef Py_ssize_t l
    cdef int lp = 1 if level_prefix else 0
    cdef int r
    if priority < 0 or priority > 7:
        raise ValueError(f"priority must be 0-7 (LOG_EMERG..LOG_DEBUG), got {priority}")
    if identifier is not None:
        if PyUnicode_Check(identifier):
            ident = PyUnicode_AsUTF8AndSize(identifier, &l)
        elif PyBytes_Check(identifier):
            ident = PyBytes_AS_STRING(identifier)
            l = PyBytes_GET_SIZE(identifier)
        else:
            raise TypeError(f"identifier must be str, bytes or None, got {type(identifier).__name__}")
        if memchr(ident, 0, <size_t> l) != NULL or memchr(ident, b'\n', <size_t> l) != NULL:
            raise ValueError(f"identifier must not contain NUL or newline: {identifier!r}")
    with nogil:
        r = sd_journal_stream_fd(ident, priority, lp)
    check_ctx(r, STDOUT_PATH)
    return r
