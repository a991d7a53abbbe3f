# cython: freethreading_compatible=False
"""The writing half of the journal: entries in journald's native protocol.

What it does, in C, so that the façade (:mod:`pystemd._writer`) stays a few
lines of Python per call:

* ``send()`` builds one entry, exactly the datagram ``sd_journal_sendv`` would
  build (``NAME=value`` lines, the binary form for values holding a newline,
  ``SYSLOG_IDENTIFIER`` of the program when none is given), in a single buffer
  (on the C stack for ordinary entries, no malloc), adds the caller's
  ``CODE_FILE``/``CODE_LINE``/``CODE_FUNC`` read from the interpreter's frame
  (``depth`` frames up: no stack walk, no source read, lines cached), and
  sends it with one ``send()`` on a socket connected to journald's once (see
  "journald's native socket" below: no GIL held while it waits, a memfd for
  entries too large for a datagram, as libsystemd).
* ``sendv()`` sends ready ``NAME=value`` items (str or bytes), plus optional
  ``name -> value`` fields.
* ``stream_fd()`` wraps ``sd_journal_stream_fd``.

Every failure is reported: a missing journald socket is ``NO_JOURNALD`` (or
``FileNotFoundError`` under ``STRICT``), never a silent success (libsystemd's
``sd_journal_sendv`` returns 0 then); any other error is an ``OSError``.

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
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcmp, memcpy, memmove, strlen

from libsystemd.sd_journal cimport sd_journal_stream_fd
from pystemd._errors cimport check_ctx

import errno as _errno
import os as _os

cdef extern from "unistd.h" nogil:
    int access(const char *path, int mode)
    enum:
        F_OK

cdef extern from "endian.h" nogil:
    uint64_t htole64(uint64_t v)

cdef extern from "Python.h":
    ctypedef object (*PyCFunction)(object, object)
    ctypedef struct PyMethodDef:
        const char *ml_name
        PyCFunction ml_meth
        int ml_flags
        const char *ml_doc
    enum:
        METH_FASTCALL
        METH_KEYWORDS
    object PyCFunction_NewEx(PyMethodDef *ml, object self, object module)
    const char *PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL
    object PyUnicode_AsEncodedString(object unicode, const char *encoding, const char *errors)

# The caller's code object and line, `depth` Python frames above the innermost
# one (0 = the function that called into this module). A new reference to the
# code object, or NULL (no exception set) when the stack is not that deep.
#
# The line comes from a small direct-mapped cache keyed by (code object,
# instruction offset): PyFrame_GetLineNumber walks the code's line table from
# its start on every call, which was a tenth of a send's cost in a long
# function. Each slot holds a strong reference to its code object, so a slot
# can never match a freed code object whose address was reused (at most
# PYSTEMD_LINES code objects are kept alive by it). Python < 3.11 has no
# PyFrame_GetLasti: no cache there. Only used with the GIL held.
cdef extern from *:
    """
    #include <frameobject.h>
    #define PYSTEMD_LINES 256
    #if PY_VERSION_HEX >= 0x030B0000
    static struct { PyObject *code; int lasti; int line; } pystemd_lines[PYSTEMD_LINES];
    #endif
    static int pystemd_line_of(PyFrameObject *f, PyObject *code) {
    #if PY_VERSION_HEX >= 0x030B0000
        int lasti = PyFrame_GetLasti(f);
        if (lasti >= 0) {
            size_t h = (((size_t) code >> 4) ^ ((size_t) lasti * 2654435761u)) & (PYSTEMD_LINES - 1);
            PyObject *old = pystemd_lines[h].code;
            int line;
            if (old == code && pystemd_lines[h].lasti == lasti)
                return pystemd_lines[h].line;
            line = PyFrame_GetLineNumber(f);
            Py_INCREF(code);
            pystemd_lines[h].code = code;
            pystemd_lines[h].lasti = lasti;
            pystemd_lines[h].line = line;
            Py_XDECREF(old);
            return line;
        }
    #endif
        return PyFrame_GetLineNumber(f);
    }
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
        *line = pystemd_line_of(f, code);
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
# journald's native socket
#
# Entries go out in journald's native protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL,
# the datagram sd_journal_sendv builds, byte for byte) on a datagram socket of
# our own that is *connected* to /run/systemd/journal/socket once, so a send is
# one send() of one buffer: no path lookup in the kernel per entry (libsystemd
# sends every datagram to the path), no iovec per field. What this buys, and
# the comparison with sd_journal_sendv's datagrams: docs/journal-writing.md.
#
# * A connect() that finds no socket (ENOENT) means journald is not running:
#   reported as such (NO_JOURNALD / FileNotFoundError), never a silent success.
# * A peer that went away (ECONNREFUSED/ENOTCONN: journald's socket unit was
#   stopped or restarted) is reconnected once and the entry sent again; if the
#   path is gone then, that is a missing journald as above.
# * An entry too large for one datagram (EMSGSIZE/ENOBUFS) goes in a sealed
#   memfd passed over the same socket, as libsystemd does.
# * The first attempt is a non-blocking send with the GIL held (a datagram copy
#   into the kernel: no wait); only when journald's queue is full (EAGAIN) is the
#   GIL released for a blocking send. EINTR runs the signal handlers and retries.
# * The socket is created and (re)connected with the GIL held; other threads'
#   sends on it are atomic datagrams. A program that closes every fd (EBADF or
#   ENOTSOCK on our fd) gets a new socket; one that closes it and reuses the
#   number for another socket must call reset() (as with libsystemd's cached
#   fd). To make that reuse unlikely the socket's fd is moved to 100 or above,
#   out of the low numbers a program that closed everything gets first. A
#   forked child shares the socket, as it shares libsystemd's.

cdef extern from *:
    """
    #include <errno.h>
    #include <fcntl.h>
    #include <stddef.h>
    #include <string.h>
    #include <sys/mman.h>
    #include <sys/socket.h>
    #include <sys/un.h>
    #include <unistd.h>
    #ifndef MFD_ALLOW_SEALING
    #define MFD_ALLOW_SEALING 0x0002U
    #endif
    #ifndef F_ADD_SEALS
    #define F_ADD_SEALS 1033
    #define F_SEAL_SEAL 0x0001
    #define F_SEAL_SHRINK 0x0002
    #define F_SEAL_GROW 0x0004
    #define F_SEAL_WRITE 0x0008
    #endif
    #define PYSTEMD_JSOCK "/run/systemd/journal/socket"
    #define PYSTEMD_JSNDBUF (8 * 1024 * 1024)
    #define PYSTEMD_JFD_MIN 100
    extern char *program_invocation_short_name;

    static int pystemd_jfd = -1;        /* our socket, -1 until the first send */
    static int pystemd_jconnected = 0;  /* connected to journald's socket */

    /* (Re)connect our socket to journald's: 0 or -errno. GIL held. */
    static int pystemd_jconnect(void) {
        struct sockaddr_un sa;
        int fd = pystemd_jfd, v, r;
        socklen_t l = sizeof(v);
        pystemd_jconnected = 0;
        if (fd < 0) {
            fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (fd < 0)
                return -errno;
            /* out of the low numbers a program that closed every fd hands out
               again first (best effort: kept where it is if that fails) */
            if (fd < PYSTEMD_JFD_MIN) {
                int high = fcntl(fd, F_DUPFD_CLOEXEC, PYSTEMD_JFD_MIN);
                if (high >= 0) {
                    close(fd);
                    fd = high;
                }
            }
            /* room for large datagrams, as libsystemd's own socket (best effort:
               a smaller buffer only sends more entries through a memfd) */
            if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &l) < 0 || v < PYSTEMD_JSNDBUF) {
                v = PYSTEMD_JSNDBUF;
                if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
                    (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
            }
            pystemd_jfd = fd;
        }
        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        memcpy(sa.sun_path, PYSTEMD_JSOCK, sizeof(PYSTEMD_JSOCK));
        r = connect(fd, (struct sockaddr *) &sa, offsetof(struct sockaddr_un, sun_path) + sizeof(PYSTEMD_JSOCK));
        if (r < 0)
            return -errno;
        pystemd_jconnected = 1;
        return 0;
    }

    /* Forget our socket (closed unless `lost`: then it is not ours any more). */
    static void pystemd_jreset(int lost) {
        if (pystemd_jfd >= 0 && !lost)
            close(pystemd_jfd);
        pystemd_jfd = -1;
        pystemd_jconnected = 0;
    }

    /* One send() of the whole datagram: 0 or -errno. */
    static int pystemd_jsend(const char *p, size_t n, int nonblock) {
        ssize_t k = send(pystemd_jfd, p, n, MSG_NOSIGNAL | (nonblock ? MSG_DONTWAIT : 0));
        return k < 0 ? -errno : 0;
    }

    /* The datagram in a sealed memfd, the fd passed in an empty datagram:
       journald's way for entries larger than a datagram. 0 or -errno; no GIL. */
    static int pystemd_jsend_memfd(const char *p, size_t n) {
        union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } ctl;
        struct msghdr mh;
        struct cmsghdr *cm;
        size_t off = 0;
        ssize_t k;
        int r = 0;
        int mfd = memfd_create("journal-data", MFD_ALLOW_SEALING | MFD_CLOEXEC);
        if (mfd < 0)
            return -errno;
        while (off < n) {
            k = write(mfd, p + off, n - off);
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                r = -errno;
                goto out;
            }
            off += (size_t) k;
        }
        if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
            r = -errno;
            goto out;
        }
        memset(&ctl, 0, sizeof(ctl));
        memset(&mh, 0, sizeof(mh));
        mh.msg_control = &ctl;
        mh.msg_controllen = sizeof(ctl);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &mfd, sizeof(int));
        mh.msg_controllen = cm->cmsg_len;
        do
            k = sendmsg(pystemd_jfd, &mh, MSG_NOSIGNAL);
        while (k < 0 && errno == EINTR);
        if (k < 0)
            r = -errno;
    out:
        close(mfd);
        return r;
    }

    /* libsystemd adds SYSLOG_IDENTIFIER=<program_invocation_short_name> to an
       entry without one when the name is "safe" (no control character, quote or
       backslash); so do we. NULL when it would not. */
    static const char *pystemd_jident(size_t *len) {
        const char *s = program_invocation_short_name, *q;
        if (s == NULL || *s == 0)
            return NULL;
        for (q = s; *q; q++)
            if ((unsigned char) *q < 32 || *q == 127 || *q == 92 || *q == 34 || *q == 39)  /* backslash, quotes */
                return NULL;
        *len = (size_t) (q - s);
        return s;
    }
    """
    int pystemd_jfd
    int pystemd_jconnected
    int pystemd_jconnect()
    void pystemd_jreset(int lost)
    int pystemd_jsend(const char *p, size_t n, int nonblock) nogil
    int pystemd_jsend_memfd(const char *p, size_t n) nogil
    const char *pystemd_jident(size_t *len)
    enum:
        EAGAIN
        EINTR
        ENOENT
        EBADF
        ENOTSOCK
        ECONNREFUSED
        ENOTCONN
        EDESTADDRREQ
        EMSGSIZE
        ENOBUFS


cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1


cdef int _deliver(const char *p, size_t n) except? -9999:
    """One datagram to journald: 0, -ENOENT (no journald) or another -errno."""
    cdef int r, again = 1
    while True:
        if not pystemd_jconnected:
            r = pystemd_jconnect()
            if r < 0:
                return r
        r = pystemd_jsend(p, n, 1)
        if r == -EAGAIN:
            # journald's queue is full: wait for room without the GIL
            with nogil:
                r = pystemd_jsend(p, n, 0)
        if r == 0:
            return 0
        if r == -EINTR:
            PyErr_CheckSignals()
        elif r == -EMSGSIZE or r == -ENOBUFS:
            with nogil:
                r = pystemd_jsend_memfd(p, n)
            return r
        elif (r == -ECONNREFUSED or r == -ENOTCONN or r == -EDESTADDRREQ) and again:
            # journald's socket was closed (its unit stopped or restarted): once more
            again = 0
            r = pystemd_jconnect()
            if r < 0:
                return r
        elif (r == -EBADF or r == -ENOTSOCK) and again:
            again = 0
            pystemd_jreset(1)
        else:
            return r


def reset():
    """Close the socket entries are sent on; the next send opens and connects a new one.

    Only needed by a program that closed the socket's fd behind pystemd's back
    and may have reused its number (daemonizing code that closes every fd):
    call it after such a close. Tests use it too.
    """
    pystemd_jreset(0)


def _socket_fd():
    """The fd entries are sent on, -1 before the first send (tests)."""
    return pystemd_jfd


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


cdef inline bint _text(object v, const char **p, Py_ssize_t *n) except -1:
    """p, n = the bytes of a str (UTF-8) or bytes object; False for any other type."""
    if PyUnicode_Check(v):
        p[0] = PyUnicode_AsUTF8AndSize(v, n)
    elif PyBytes_Check(v):
        p[0] = PyBytes_AS_STRING(v)
        n[0] = PyBytes_GET_SIZE(v)
    else:
        return False
    return True


def valid_field_name(name):
    """True if journald keeps a field called ``name`` (str or bytes)."""
    cdef Py_ssize_t n
    cdef const char *p
    return _text(name, &p, &n) and _name_ok(p, n)


cdef str _why_bad(object name):
    return (
        f"invalid journal field name {name!r}: journald keeps only names of 1-64 characters "
        "from A-Z, 0-9 and _, not starting with _ or a digit (it drops the others silently)"
    )


# ---------------------------------------------------------------------------
# one entry, as the datagram journald reads (stack first, heap when large)
#
# Each field is written as NAME=value and finished by _buf_end: a value holding
# a newline is turned into the binary form (NAME\n, its length as little-endian
# 64 bits, the value), then the field's closing newline is added.

cdef struct Buf:
    char *data
    size_t len
    size_t cap
    size_t cur              # where the open field starts
    Py_ssize_t n            # fields started
    bint open               # a field is being written
    bint has_ident          # a SYSLOG_IDENTIFIER field is among them
    char small[_SMALL_BYTES]


cdef inline void _buf_init(Buf *b) noexcept nogil:
    b.data = b.small
    b.len = 0
    b.cap = _SMALL_BYTES
    b.cur = 0
    b.n = 0
    b.open = False
    b.has_ident = False


cdef inline void _buf_free(Buf *b) noexcept nogil:
    if b.data != b.small:
        free(b.data)
    b.data = NULL


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


cdef int _buf_end(Buf *b) except -1:
    """Finish the open field (binary form if its value holds a newline; closing newline)."""
    cdef char *start = b.data + b.cur
    cdef char *eq = <char *> memchr(start, b'=', b.len - b.cur)
    cdef size_t nlen, vlen
    cdef uint64_t le
    if eq == NULL:  # every writer starts a field with NAME=; never send a broken one
        raise SystemError("pystemd._jsend: a journal field without '='")
    nlen = <size_t> (eq - start)
    vlen = b.len - b.cur - nlen - 1
    b.open = False
    if nlen == 17 and memcmp(start, b"SYSLOG_IDENTIFIER", 17) == 0:
        b.has_ident = True
    if vlen and memchr(eq + 1, b'\n', vlen) != NULL:
        _buf_reserve(b, 9)
        eq = b.data + b.cur + nlen
        memmove(eq + 9, eq + 1, vlen)
        eq[0] = b'\n'
        le = htole64(<uint64_t> vlen)
        memcpy(eq + 1, &le, 8)
        b.len += 8
    elif b.len == b.cap:
        _buf_reserve(b, 1)
    b.data[b.len] = b'\n'
    b.len += 1
    return 0


cdef int _buf_field(Buf *b) except -1:
    """Start a new field at the current end of the buffer (finishing the open one)."""
    if b.open:
        _buf_end(b)
    if b.n >= _FIELDS_MAX:
        raise FieldError(
            f"a journal entry holds at most {_FIELDS_MAX} fields: journald ignores larger ones"
        )
    b.cur = b.len
    b.n += 1
    b.open = True
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
    if not _text(v, &p, &l):
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
    cdef char num[24]
    cdef int k = 24
    # (the magnitude in unsigned arithmetic: -v overflows for the most negative v)
    cdef unsigned long long u = (0ULL - <unsigned long long> v) if v < 0 else <unsigned long long> v
    while True:
        k -= 1
        num[k] = <char> (48 + u % 10)  # '0' + digit
        u //= 10
        if u == 0:
            break
    if v < 0:
        k -= 1
        num[k] = 45  # '-'
    _buf_field(b)
    _buf_put(b, prefix, plen)
    return _buf_put(b, num + k, <size_t> (24 - k))


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


cdef int _put_field(Buf *b, object key, object value, int flags, int *result) except -1:
    """One ``name=value`` keyword field."""
    cdef Py_ssize_t kl
    cdef const char *kp
    if not PyUnicode_Check(key):
        raise TypeError(f"journal field names must be str, got {type(key).__name__}")
    kp = PyUnicode_AsUTF8AndSize(key, &kl)
    if not _name_ok(kp, kl):  # (a good name has no '=' or newline)
        if kl == 0 or memchr(kp, b'\n', <size_t> kl) != NULL or memchr(kp, b'=', <size_t> kl) != NULL:
            raise FieldError(f"journal field name must not be empty or contain '=' or a newline: {key!r}")
        if flags & _STRICT:
            raise FieldError(_why_bad(key))
        result[0] |= _BAD_NAME
    _buf_field(b)
    _buf_put(b, kp, <size_t> kl)
    _buf_put(b, b"=", 1)
    if flags & _OLD_STYLE:
        return _put_old_style_value(b, value)
    return _put_value(b, value)


cdef int _put_fields(Buf *b, dict fields, int flags, int *result) except -1:
    """Each ``name: value`` of ``fields`` as one ``NAME=value`` field."""
    cdef Py_ssize_t pos = 0
    cdef PyObject *k
    cdef PyObject *v
    while PyDict_Next(fields, &pos, &k, &v):
        _put_field(b, <object> k, <object> v, flags, result)
    return 0


cdef int _put_items(Buf *b, tuple items, int flags, int *result) except -1:
    """Each ready ``NAME=value`` item (str or bytes) as one field."""
    cdef Py_ssize_t i, l
    cdef const char *p
    cdef const char *eq
    for i in range(PyTuple_GET_SIZE(items)):
        item = <object> PyTuple_GET_ITEM(items, i)
        if not _text(item, &p, &l):
            raise TypeError(
                f"journal items must be str or bytes 'NAME=value', got {type(item).__name__}"
            )
        eq = <const char *> memchr(p, b'=', <size_t> l)
        if eq == NULL or eq == p:
            raise FieldError(f"journal item must look like 'NAME=value', got {item[:80]!r}")
        if not _name_ok(p, eq - p):  # (a good name has no newline)
            if flags & _STRICT:
                raise FieldError(_why_bad((<bytes> p[: eq - p]).decode("utf-8", "replace")))
            if memchr(p, b'\n', <size_t> (eq - p)) != NULL:
                raise FieldError(f"journal field name contains a newline: {item[:80]!r}")
            result[0] |= _BAD_NAME
        _buf_field(b)
        _buf_put(b, p, <size_t> l)
    return 0


cdef int _submit(Buf *b, int flags, int result) except -1:
    """Send the entry in ``b`` to journald; report failures (raise or return bits)."""
    cdef const char *ident
    cdef size_t il = 0
    cdef int r
    if b.n == 0:
        raise FieldError("nothing to send: a journal entry needs at least one NAME=value field")
    if b.open:
        _buf_end(b)
    if not b.has_ident:
        ident = pystemd_jident(&il)
        if ident != NULL:
            _buf_field(b)
            _buf_put(b, b"SYSLOG_IDENTIFIER=", 18)
            _buf_put(b, ident, il)
            _buf_end(b)
    r = _deliver(b.data, b.len)
    if r == -ENOENT:
        if flags & _STRICT:
            raise FileNotFoundError(
                _errno.ENOENT,
                "journald is not running here (its socket does not exist); the entry was not logged",
                SOCKET_PATH,
            )
        return result | _NO_JOURNALD
    check_ctx(r, SOCKET_PATH)
    return result


# ---------------------------------------------------------------------------
# the verbs

cdef int _put_head(Buf *b, message, message_id, code_file, code_line, code_func, int depth,
                   int flags) except -1:
    """MESSAGE, MESSAGE_ID, then the given CODE_* fields or the caller's location."""
    _buf_field(b)
    _buf_put(b, b"MESSAGE=", 8)
    _put_text(b, message, "MESSAGE")
    if message_id is not None:
        _buf_field(b)
        _buf_put(b, b"MESSAGE_ID=", 11)
        if not (PyUnicode_Check(message_id) or PyBytes_Check(message_id)):
            message_id = getattr(message_id, "hex", message_id)
        _put_text(b, message_id, "MESSAGE_ID")
    if code_file is None and code_line is None and code_func is None:
        if flags & _LOCATION:
            _put_location(b, depth)
        return 0
    if code_file is not None:
        _buf_field(b)
        _buf_put(b, b"CODE_FILE=", 10)
        _put_text(b, code_file, "CODE_FILE")
    if code_line is not None:
        try:
            line = code_line.__index__()
        except AttributeError:
            raise TypeError(f"CODE_LINE must be an int, got {type(code_line).__name__}") from None
        _put_int_field(b, b"CODE_LINE=", 10, line)
    if code_func is not None:
        _buf_field(b)
        _buf_put(b, b"CODE_FUNC=", 10)
        _put_text(b, code_func, "CODE_FUNC")
    return 0


cdef int _entry(message, message_id, code_file, code_line, code_func, dict fields, int depth,
                int flags) except -1:
    """Build and send one entry: MESSAGE, MESSAGE_ID, the CODE_* fields, then ``fields``."""
    cdef Buf b
    cdef int result = 0
    _buf_init(&b)
    try:
        _put_head(&b, message, message_id, code_file, code_line, code_func, depth, flags)
        if fields:
            _put_fields(&b, fields, flags, &result)
        return _submit(&b, flags, result)
    finally:
        _buf_free(&b)


cdef int _entry_v(tuple items, dict fields, int flags) except -1:
    """Send ``items`` (``'NAME=value'``, str or bytes, not copied) then ``fields``."""
    cdef Buf b
    cdef int result = 0
    _buf_init(&b)
    try:
        _put_items(&b, items, flags, &result)
        if fields:
            _put_fields(&b, fields, flags | _OLD_STYLE, &result)
        return _submit(&b, flags, result)
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

# send() and compat_send() take python-systemd's arguments (MESSAGE,
# MESSAGE_ID=None, CODE_FILE=None, CODE_LINE=None, CODE_FUNC=None, **fields)
# through CPython's vectorcall convention: the keyword fields are read from the
# call's own arrays, no dict is made for them (a third of what the Python side
# of a send cost).

cdef const char *_PARAM_NAMES[5]
_PARAM_NAMES[:] = [b"MESSAGE", b"MESSAGE_ID", b"CODE_FILE", b"CODE_LINE", b"CODE_FUNC"]


cdef inline int _param_index(object name) except -2:
    """Which of send()'s named parameters ``name`` is, or -1 (a field)."""
    cdef Py_ssize_t n
    cdef const char *p
    cdef int i
    if not PyUnicode_Check(name):
        return -1
    p = PyUnicode_AsUTF8AndSize(name, &n)
    if n != 7 and n != 9 and n != 10:
        return -1
    for i in range(5):
        if strlen(_PARAM_NAMES[i]) == <size_t> n and memcmp(p, _PARAM_NAMES[i], <size_t> n) == 0:
            return i
    return -1


cdef int _send_call(PyObject **args, Py_ssize_t nargs, object kwnames, int flags) except -1:
    """One send() call, its arguments as vectorcall gives them; the result bits."""
    cdef PyObject *p[5]
    cdef Py_ssize_t kpos[5]     # where named parameters sit among the keywords (ascending)
    cdef Py_ssize_t i, nkw = PyTuple_GET_SIZE(kwnames) if kwnames is not None else 0
    cdef int j, k = 0, nk = 0, result = 0
    cdef Buf b
    if nargs > 5:
        raise TypeError(f"send() takes from 1 to 5 positional arguments but {nargs} were given")
    for j in range(5):
        p[j] = args[j] if j < nargs else NULL
    for i in range(nkw):
        j = _param_index(<object> PyTuple_GET_ITEM(kwnames, i))
        if j >= 0:
            if p[j] != NULL:
                raise TypeError(f"send() got multiple values for argument '{_PARAM_NAMES[j].decode()}'")
            p[j] = args[nargs + i]
            kpos[nk] = i
            nk += 1
    if p[0] == NULL:
        raise TypeError("send() missing 1 required positional argument: 'MESSAGE'")
    _buf_init(&b)
    try:
        _put_head(&b, <object> p[0],
                  <object> p[1] if p[1] != NULL else None, <object> p[2] if p[2] != NULL else None,
                  <object> p[3] if p[3] != NULL else None, <object> p[4] if p[4] != NULL else None,
                  0, flags)
        for i in range(nkw):
            if k < nk and kpos[k] == i:
                k += 1
                continue
            _put_field(&b, <object> PyTuple_GET_ITEM(kwnames, i), <object> args[nargs + i], flags,
                       &result)
        return _submit(&b, flags, result)
    finally:
        _buf_free(&b)


cdef dict _fields_of(PyObject **args, Py_ssize_t nargs, object kwnames):
    """The keyword fields of a send() call, as the dict ``**fields`` would be."""
    cdef dict fields = {}
    cdef Py_ssize_t i
    if kwnames is not None:
        for i in range(PyTuple_GET_SIZE(kwnames)):
            name = <object> PyTuple_GET_ITEM(kwnames, i)
            if _param_index(name) < 0:
                fields[name] = <object> args[nargs + i]
    return fields


cdef object _send_vc(PyObject *module, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    _send_call(args, nargs, <object> kwnames if kwnames != NULL else None, _STRICT | _LOCATION)
    return None


cdef object _compat_send_vc(PyObject *module, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    kw = <object> kwnames if kwnames != NULL else None
    cdef int r = _send_call(args, nargs, kw, _LOCATION)
    if r:
        _report(r, _fields_of(args, nargs, kw), ())
    return None


cdef PyMethodDef _send_defs[2]
_send_defs[0].ml_name = b"send"
_send_defs[0].ml_meth = <PyCFunction> <void *> _send_vc
_send_defs[0].ml_flags = METH_FASTCALL | METH_KEYWORDS
_send_defs[0].ml_doc = b"""send($module, /, MESSAGE, MESSAGE_ID=None, CODE_FILE=None, CODE_LINE=None, CODE_FUNC=None, **fields)
--

Send one entry to the journal.

>>> send("Hello world")
>>> send("Binary", BINARY=b"\\xde\\xad\\xbe\\xef", MULTI_LINE="a\\nb", COUNT=3)

``MESSAGE`` is str (sent as UTF-8) or bytes. ``MESSAGE_ID`` is a
``uuid.UUID`` or a hex str. Unless one of ``CODE_FILE``/``CODE_LINE``/
``CODE_FUNC`` is given, the three are the caller's file, line and
function. Each keyword is one field: bytes are sent as they are (any
content, newlines and NULs included), str as UTF-8, anything else as
``str(value)``.

Raises ``FieldError`` (a ``ValueError``) for a name journald would drop
(it keeps ``[A-Z0-9_]``, not starting with ``_`` or a digit, at most 64
characters), ``FileNotFoundError`` when journald's socket does not exist,
and ``OSError`` for any other failure to send.
"""
_send_defs[1].ml_name = b"send"
_send_defs[1].ml_meth = <PyCFunction> <void *> _compat_send_vc
_send_defs[1].ml_flags = METH_FASTCALL | METH_KEYWORDS
_send_defs[1].ml_doc = b"""send($module, /, MESSAGE, MESSAGE_ID=None, CODE_FILE=None, CODE_LINE=None, CODE_FUNC=None, **fields)
--

python-systemd's ``journal.send``: as pystemd's ``send``, but a field name
journald drops and a missing journald are reported to the reporter
(warnings), not raised.
"""

import sys as _sys
send = PyCFunction_NewEx(&_send_defs[0], _sys.modules[__name__], __name__)
compat_send = PyCFunction_NewEx(&_send_defs[1], _sys.modules[__name__], __name__)
del _sys


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
    """True if journald's native socket exists (where entries are sent)."""
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
        if not _text(identifier, &ident, &l):
            raise TypeError(f"identifier must be str, bytes or None, got {type(identifier).__name__}")
        if memchr(ident, 0, <size_t> l) != NULL or memchr(ident, b'\n', <size_t> l) != NULL:
            raise ValueError(f"identifier must not contain NUL or newline: {identifier!r}")
    with nogil:
        r = sd_journal_stream_fd(ident, priority, lp)
    check_ctx(r, STDOUT_PATH)
    return r
