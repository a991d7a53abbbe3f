# cython: freethreading_compatible=False
"""Thin layer for serving: sd-bus object vtables whose members call Python.

The façade (pystemd.serve) turns decorated classes into ``Member`` lists and
calls :func:`add_vtable`; everything here mirrors an sd-bus verb:

* ``add_vtable``      sd_bus_add_object_vtable, one interface at one path
* ``emit_signal``     sd_bus_message_new_signal + append + sd_bus_send
* ``emit_properties_changed``  sd_bus_emit_properties_changed_strv
* ``emit_object_added`` / ``emit_object_removed``, ``add_object_manager``
* ``request_name`` / ``release_name``

Lifetimes. The vtable array, the strings it points to and the per-member
records are owned by an ``Export`` object. sd-bus gets that object as
userdata, with one reference (INCREF'd here) that the slot's destroy callback
releases, so the memory lives exactly as long as the slot. The slot is
floating: the export stays on the bus until ``remove()`` or until the bus is
freed, whether or not Python keeps the handle.

Re-entrancy. A served member may only run Python code from ``process()`` (or
the event loop), never inside somebody's blocking call on the same bus. So
the first export on a bus installs a message filter: while ``Bus._in_call``
is set, an incoming method call is kept (a reference to the message) and
``Bus.defer``'d, and the deferred step puts it back in sd-bus's read queue
(``sd_bus_enqueue_for_read``), so the next ``process()`` dispatches it as if
it had just arrived. This covers methods and property Get/GetAll/Set alike
(sd-bus builds those replies synchronously, so they cannot be answered later
one by one).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.ref cimport Py_INCREF, Py_DECREF, PyObject
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport strlen

from libsystemd.sd_bus cimport *
from pystemd._bus cimport (
    Bus, Message, append_args, append_value, read_body, read_value,
    complete_type_len, READ_KEEP_VARIANTS, _busy_enter, _busy_exit, cstr_arg,
)
from pystemd._errors cimport check, check_ctx

import logging as _logging
import weakref as _weakref

from pystemd.errors import BusError as _BusError

cdef extern from "errno.h":
    enum:
        EINVAL
        EIO
        ENOTCONN

cdef extern from "pystemd/vtable.h" nogil:
    ctypedef struct pystemd_vt_entry:
        void *export
        void *member
    void pystemd_vt_start(sd_bus_vtable *v, uint64_t flags)
    void pystemd_vt_end(sd_bus_vtable *v)
    void pystemd_vt_method(sd_bus_vtable *v, const char *member, const char *signature,
                           const char *result, const char *names,
                           sd_bus_message_handler_t handler, size_t offset, uint64_t flags)
    void pystemd_vt_signal(sd_bus_vtable *v, const char *member, const char *signature,
                           const char *names, uint64_t flags)
    void pystemd_vt_property(sd_bus_vtable *v, const char *member, const char *signature,
                             sd_bus_property_get_t get, sd_bus_property_set_t set,
                             size_t offset, uint64_t flags)

log = _logging.getLogger("pystemd.serve")

# vtable flags, re-exported for the façade
DEPRECATED = SD_BUS_VTABLE_DEPRECATED
HIDDEN = SD_BUS_VTABLE_HIDDEN
UNPRIVILEGED = SD_BUS_VTABLE_UNPRIVILEGED
METHOD_NO_REPLY = SD_BUS_VTABLE_METHOD_NO_REPLY
PROPERTY_CONST = SD_BUS_VTABLE_PROPERTY_CONST
PROPERTY_EMITS_CHANGE = SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE
PROPERTY_EMITS_INVALIDATION = SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION
PROPERTY_EXPLICIT = SD_BUS_VTABLE_PROPERTY_EXPLICIT
SENSITIVE = SD_BUS_VTABLE_SENSITIVE

NAME_REPLACE_EXISTING = SD_BUS_NAME_REPLACE_EXISTING
NAME_ALLOW_REPLACEMENT = SD_BUS_NAME_ALLOW_REPLACEMENT
NAME_QUEUE = SD_BUS_NAME_QUEUE

FAILED = "org.freedesktop.DBus.Error.Failed"

# Set by pystemd.aio: called with the Bus after something was queued for
# sending outside process() (a signal, a late reply), so that an event loop
# can start watching for POLLOUT if the message did not fit the socket, and
# after work was deferred, so that the loop runs process() soon even if the
# message was read from the socket by a blocking call.
_send_hook = None
# Set by pystemd.serve: runs an awaitable returned by a served method,
# calling reply.finish(result) / reply.fail(exc) when it is done.
_async_runner = None


def set_hooks(send_hook=None, async_runner=None):
    global _send_hook, _async_runner
    if send_hook is not None:
        _send_hook = send_hook
    if async_runner is not None:
        _async_runner = async_runner


cdef int _sent(Bus bus, bint flush) except -1:
    """After queueing a message outside sd_bus_process(): make sure it goes out.

    Usually it was written at once. If not (the socket buffer is full, or the
    connection is still authenticating), an attached event loop is asked to
    watch for POLLOUT; without one, and when ``flush`` is set (signals,
    which nothing else would push out), the bus is flushed here, GIL released.
    """
    cdef uint64_t q = 0
    cdef int r
    if bus.bus == NULL or sd_bus_get_n_queued_write(bus.bus, &q) < 0 or q == 0:
        return 0
    if _send_hook is not None:
        try:
            if _send_hook(bus):
                return 0
        except BaseException as e:
            bus.park_exception(e)
    if not flush:
        return 0
    bus.acquire()
    bus._in_call += 1   # a method call read meanwhile waits for process()
    try:
        with nogil:
            r = sd_bus_flush(bus.bus)
    finally:
        bus._in_call -= 1
        bus.release()
    check_ctx(r, "sd_bus_flush")
    return 0


cdef inline void _deferred(Bus bus):
    if _send_hook is not None:
        try:
            _send_hook(bus)
        except BaseException as e:
            bus.park_exception(e)


cdef Bus _as_bus(object bus):
    if not isinstance(bus, Bus):
        raise TypeError(f"expected a pystemd.bus.Bus, got {type(bus).__name__}")
    return <Bus>bus


# ---------------------------------------------------------------------------
# turning a Python exception into a D-Bus error

_BUILTIN_ERRORS = (
    (PermissionError, "org.freedesktop.DBus.Error.AccessDenied"),
    (NotImplementedError, "org.freedesktop.DBus.Error.NotSupported"),
    (ValueError, "org.freedesktop.DBus.Error.InvalidArgs"),
)


def error_for(exc):
    """(name, message) of the D-Bus error a served member's exception becomes.

    A BusError keeps its name; PermissionError, NotImplementedError and
    ValueError become AccessDenied, NotSupported and InvalidArgs; anything
    else is org.freedesktop.DBus.Error.Failed with "Type: message".
    """
    cdef bytes b
    if isinstance(exc, _BusError):
        name = getattr(exc, "name", None) or type(exc).dbus_name or FAILED
        msg = getattr(exc, "message", None)
        if not isinstance(msg, str):
            msg = str(exc)
        if not isinstance(name, str):
            return FAILED, f"{type(exc).__name__}: {msg}"
        b = name.encode("utf-8", "replace")
        if b"\0" in b or not sd_bus_interface_name_is_valid(b):
            return FAILED, f"{name}: {msg}"
        return name, msg
    for cls, name in _BUILTIN_ERRORS:
        if isinstance(exc, cls):
            return name, str(exc) or type(exc).__name__
    text = str(exc)
    return FAILED, f"{type(exc).__name__}: {text}" if text else type(exc).__name__


cdef int _set_error(object exc, sd_bus_error *ret_error, object bus, str where) noexcept:
    """Fill ret_error from exc; return the negative errno sd-bus expects."""
    cdef int r
    cdef bytes n, m
    try:
        if not isinstance(exc, Exception):
            # KeyboardInterrupt, SystemExit...: the client gets an error, and
            # process() re-raises the exception in the serving program.
            if bus is not None:
                (<Bus>bus).park_exception(exc)
        elif not isinstance(exc, _BusError):
            log.error("%s raised", where, exc_info=exc)
        name, msg = error_for(exc)
        n = name.encode("utf-8")
        m = msg.encode("utf-8", "replace").replace(b"\0", b"\\0")
        r = sd_bus_error_set(ret_error, n, m)
        return r if r < 0 else -EIO
    except BaseException as e:
        if bus is not None:
            (<Bus>bus).park_exception(e)
        return -EIO


# ---------------------------------------------------------------------------
# members

cdef class Member:
    """One method, signal or property of an exported interface (built by the façade)."""
    cdef readonly str kind          # "method", "signal" or "property"
    cdef readonly str name
    cdef bytes _name, _sig, _result, _names
    cdef readonly uint64_t flags
    cdef readonly object call       # method: call(*args) or call(message, *args)
    cdef readonly object getter     # property: getter() -> value
    cdef readonly object setter     # property: setter(value), or None
    cdef readonly bint with_message
    cdef readonly int read_flags
    cdef Py_ssize_t _sig_len

    def __init__(self, str kind, name, signature="", result="", names=(),
                 uint64_t flags=0, call=None, getter=None, setter=None,
                 bint with_message=False, bint keep_variants=False):
        """names: argument names, in then out (all or none; see sd_bus_add_object_vtable(3))."""
        if kind not in ("method", "signal", "property"):
            raise ValueError(f"unknown member kind {kind!r}")
        self.kind = kind
        self._name = cstr_arg(name, "member name")
        if not sd_bus_member_name_is_valid(self._name):
            raise ValueError(f"invalid D-Bus member name {name!r}")
        self.name = self._name.decode()
        self._sig = cstr_arg(signature, "signature")
        self._result = cstr_arg(result, "signature")
        _check_signature(self._sig)
        _check_signature(self._result)
        self._sig_len = PyBytes_GET_SIZE(self._sig)
        parts = []
        for n in names:
            nb = cstr_arg(n, "argument name")
            if not sd_bus_member_name_is_valid(nb):
                raise ValueError(f"invalid argument name {n!r} in {self.name} (D-Bus names are [A-Za-z_][A-Za-z0-9_]*)")
            parts.append(nb + b"\0")
        self._names = b"".join(parts)  # the C string ends with one more NUL
        if parts and len(parts) != _count_types(self._sig) + _count_types(self._result):
            raise ValueError(f"{kind} {self.name}: name every argument (in and out) or none")
        self.flags = flags
        self.call = call
        self.getter = getter
        self.setter = setter
        self.with_message = with_message
        self.read_flags = READ_KEEP_VARIANTS if keep_variants else 0
        if kind == "method" and not callable(call):
            raise TypeError(f"method {self.name} needs a callable")
        if kind == "property":
            if self._sig_len == 0 or complete_type_len(self._sig) != self._sig_len:
                raise ValueError(f"property {self.name} must have one complete type, got {signature!r}")
            if not callable(getter):
                raise TypeError(f"property {self.name} needs a getter")
            if setter is not None and not callable(setter):
                raise TypeError(f"property {self.name}: setter is not callable")

    @property
    def signature(self):
        return self._sig.decode()

    @property
    def result(self):
        return self._result.decode()

    def __repr__(self):
        return f"<Member {self.kind} {self.name} {self.signature!r}>"


cdef int _check_signature(bytes sig) except -1:
    cdef const char *p = sig
    cdef Py_ssize_t i = 0, n = PyBytes_GET_SIZE(sig)
    if n > 255:
        raise ValueError("signature longer than 255 characters")
    while i < n:
        i += complete_type_len(p + i)
    return 0


# ---------------------------------------------------------------------------
# C callbacks

cdef inline Bus _bus_of(Export ex):
    b = ex._bus_ref()
    return <Bus>b if b is not None else None


cdef int _method_cb(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) noexcept with gil:
    # Python code does not run inside sd-bus's dispatch: keep the message and
    # let process() run the method right after sd_bus_process() returns
    # (PendingReply.__call__), so it may make blocking calls on this bus too.
    cdef pystemd_vt_entry *e = <pystemd_vt_entry *>userdata
    cdef Export ex = <Export>e.export
    cdef Member mb = <Member>e.member
    cdef Bus bus = _bus_of(ex)
    try:
        if bus is None:
            raise RuntimeError("the bus object is gone")
        bus.defer(PendingReply.new(bus, m, mb, _where(ex, mb)))
        _deferred(bus)
        return 1
    except BaseException as exc:
        return _set_error(exc, ret_error, bus, _where(ex, mb))


cdef str _where(Export ex, Member mb):
    return f"{ex.interface}.{mb.name} at {ex.path}"


cdef int _reply(sd_bus_message *m, Member mb, object result, sd_bus_error *ret_error,
                Bus bus, object where) noexcept:
    """Send the method return for result (or an error). Returns >0, or <0 with ret_error set."""
    cdef sd_bus_message *reply = NULL
    cdef int r
    cdef Py_ssize_t nout
    try:
        r = sd_bus_message_new_method_return(m, &reply)
        check_ctx(r, "sd_bus_message_new_method_return")
        try:
            if PyBytes_GET_SIZE(mb._result) == 0:
                if result is not None:
                    raise TypeError(f"returned {type(result).__name__}, but the method has no out arguments")
            else:
                nout = _count_types(mb._result)
                if nout == 1:
                    result = (result,)
                elif not isinstance(result, (tuple, list)) or len(result) != nout:
                    raise TypeError(f"must return a tuple of {nout} values for {mb.result!r}, got {type(result).__name__}")
                append_args(reply, mb._result, result)
            r = sd_bus_send(NULL, reply, NULL)
            check_ctx(r, "sd_bus_send (method reply)")
        finally:
            sd_bus_message_unref(reply)
        return 1
    except BaseException as exc:
        if isinstance(where, Export):
            where = _where(<Export>where, mb)
        if isinstance(exc, (TypeError, ValueError, OverflowError)):
            exc = RuntimeError(f"{where} {exc}")
        return _set_error(exc, ret_error, bus, where)


cdef Py_ssize_t _count_types(bytes sig) except -1:
    cdef const char *p = sig
    cdef Py_ssize_t i = 0, n = PyBytes_GET_SIZE(sig), count = 0
    while i < n:
        i += complete_type_len(p + i)
        count += 1
    return count


cdef int _prop_get_cb(sd_bus *b, const char *path, const char *interface, const char *property,
                      sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) noexcept with gil:
    cdef pystemd_vt_entry *e = <pystemd_vt_entry *>userdata
    cdef Export ex = <Export>e.export
    cdef Member mb = <Member>e.member
    try:
        value = mb.getter()
        append_value(reply, mb._sig, mb._sig_len, value)
        return 1
    except BaseException as exc:
        if ex._emitting:
            ex._emit_exc = exc
        return _set_error(exc, ret_error, _bus_of(ex), f"getter of {ex.interface}.{mb.name} at {ex.path}")


cdef int _prop_set_cb(sd_bus *b, const char *path, const char *interface, const char *property,
                      sd_bus_message *value, void *userdata, sd_bus_error *ret_error) noexcept with gil:
    cdef pystemd_vt_entry *e = <pystemd_vt_entry *>userdata
    cdef Export ex = <Export>e.export
    cdef Member mb = <Member>e.member
    cdef char t = 0
    cdef const char *c = NULL
    try:
        check(sd_bus_message_peek_type(value, &t, &c))
        v = read_value(value, t, c, 0)
        mb.setter(v)
        return 1
    except BaseException as exc:
        return _set_error(exc, ret_error, _bus_of(ex), f"setter of {ex.interface}.{mb.name} at {ex.path}")


cdef void _export_destroyed(void *userdata) noexcept with gil:
    cdef pystemd_vt_entry *e = <pystemd_vt_entry *>userdata
    cdef PyObject *o = <PyObject *>e.export
    (<Export>o).slot = NULL
    Py_DECREF(<object>o)


# ---------------------------------------------------------------------------
# postponing method calls that arrive during a blocking call

cdef int _postpone(Bus bus, sd_bus_message *m) noexcept:
    try:
        bus.defer(_Requeue.new(bus, m))
        _deferred(bus)
        return 1
    except BaseException as e:
        bus.park_exception(e)
        return 0


cdef class _Requeue:
    cdef object bus
    cdef sd_bus_message *m

    def __cinit__(self):
        self.m = NULL

    @staticmethod
    cdef _Requeue new(Bus bus, sd_bus_message *m):
        cdef _Requeue self = _Requeue.__new__(_Requeue)
        self.bus = bus
        self.m = sd_bus_message_ref(m)
        return self

    def __call__(self):
        cdef Bus bus = <Bus>self.bus
        cdef sd_bus_message *m = self.m
        if m == NULL:
            return
        self.m = NULL
        try:
            bus.acquire()
            try:
                check_ctx(sd_bus_enqueue_for_read(bus.bus, m), "sd_bus_enqueue_for_read")
            finally:
                bus.release()
        finally:
            sd_bus_message_unref(m)

    def __dealloc__(self):
        if self.m != NULL:
            sd_bus_message_unref(self.m)


cdef int _filter_cb(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) noexcept nogil:
    cdef uint8_t t = 0
    if sd_bus_message_get_type(m, &t) < 0 or t != SD_BUS_MESSAGE_METHOD_CALL:
        return 0
    with gil:
        return _filter_py(m, <_Server>userdata)


cdef int _filter_py(sd_bus_message *m, _Server srv) noexcept:
    try:
        b = srv.bus_ref()
        if b is None or (<Bus>b)._in_call == 0:
            return 0
        return _postpone(<Bus>b, m)
    except BaseException:
        return 0


cdef void _server_destroyed(void *userdata) noexcept with gil:
    Py_DECREF(<object>userdata)


cdef void _float(sd_bus_slot *slot) noexcept:
    # Hand the slot to the bus: sd_bus_slot_set_floating(1) gives the bus a
    # reference of its own, so drop ours. The slot now lives until it is
    # taken back (remove()) or the bus is freed, whose destroy callback runs.
    if sd_bus_slot_set_floating(slot, 1) >= 0:
        sd_bus_slot_unref(slot)


cdef class _Server:
    """Per-bus serving state: the filter that postpones calls during blocking calls."""
    cdef object bus_ref

    def __init__(self, bus):
        self.bus_ref = _weakref.ref(bus)


_servers = _weakref.WeakKeyDictionary()


cdef int _ensure_server(Bus bus) except -1:
    """Install the postponing filter once per bus (the bus lock must be held)."""
    cdef sd_bus_slot *slot = NULL
    cdef _Server srv
    cdef int r
    if bus in _servers:
        return 0
    srv = _Server(bus)
    check_ctx(sd_bus_add_filter(bus.bus, &slot, _filter_cb, <void *>srv), "sd_bus_add_filter")
    r = sd_bus_slot_set_destroy_callback(slot, _server_destroyed)
    if r < 0:
        sd_bus_slot_unref(slot)  # nothing refers to srv through it yet
        check_ctx(r, "sd_bus_slot_set_destroy_callback")
    Py_INCREF(srv)
    _float(slot)
    _servers[bus] = srv
    return 0


# ---------------------------------------------------------------------------
# exports

cdef class Export:
    """One interface exported at one path (an sd-bus vtable slot).

    Stays exported until ``remove()`` or until the bus is gone.
    """
    cdef object _bus_ref
    cdef readonly str path
    cdef readonly str interface
    cdef readonly list members
    cdef list _keep            # bytes objects the vtable points into
    cdef sd_bus_vtable *vtable
    cdef pystemd_vt_entry *entries
    cdef sd_bus_slot *slot     # floating; NULL once destroyed
    cdef bint _emitting
    cdef object _emit_exc
    cdef object __weakref__

    def __cinit__(self):
        self.vtable = NULL
        self.entries = NULL
        self.slot = NULL

    def __init__(self):
        raise TypeError("use add_vtable() to export an interface")

    def __dealloc__(self):
        # The slot holds a reference to us, so it is gone by now.
        free(self.vtable)
        free(self.entries)

    @property
    def bus(self):
        return self._bus_ref()

    @property
    def active(self):
        """True while the vtable is registered on the bus."""
        return self.slot != NULL

    def remove(self):
        """Take the interface off the bus. Idempotent."""
        cdef sd_bus_slot *s
        b = self._bus_ref()
        if self.slot == NULL:
            return
        if b is None or (<Bus>b).bus == NULL:
            # The bus was closed; its slots go when the last reference to the
            # connection (a message, maybe) does.
            return
        (<Bus>b).acquire()
        try:
            s = self.slot
            if s != NULL:
                # Take the slot back from the bus and drop it: the destroy
                # callback clears self.slot and releases the reference the
                # slot held on us.
                sd_bus_slot_ref(s)
                r = sd_bus_slot_set_floating(s, 0)
                sd_bus_slot_unref(s)
                check_ctx(r, "sd_bus_slot_set_floating")
        finally:
            (<Bus>b).release()

    def emit_properties_changed(self, names):
        """Emit PropertiesChanged for ``names`` (current values read from the getters)."""
        cdef list bl = [cstr_arg(x, "property name") for x in names]
        cdef char **strv
        cdef Py_ssize_t i, n = len(bl)
        cdef int r
        cdef Bus bus
        cdef bytes pb = self.path.encode()
        cdef bytes ib = self.interface.encode()
        if n == 0:
            return
        b = self._bus_ref()
        if b is None:
            raise ValueError("operation on a closed bus")
        bus = <Bus>b
        strv = <char **>calloc(n + 1, sizeof(char *))
        if strv == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                strv[i] = PyBytes_AS_STRING(bl[i])
            bus.acquire()
            try:
                self._emitting = True
                self._emit_exc = None
                r = sd_bus_emit_properties_changed_strv(bus.bus, pb, ib, strv)
                self._emitting = False
                exc = self._emit_exc
                self._emit_exc = None
                if r < 0 and exc is not None:
                    raise exc
                check_ctx(r, f"PropertiesChanged of {self.interface} at {self.path} for {list(names)}")
            finally:
                self._emitting = False
                bus.release()
        finally:
            free(strv)
        _sent(bus, True)

    def __repr__(self):
        state = "active" if self.slot != NULL else "removed"
        return f"<Export {self.interface} at {self.path} {state}>"


def add_vtable(bus, path, interface, members, *, uint64_t flags=0):
    """sd_bus_add_object_vtable: export ``members`` as ``interface`` at ``path``.

    Returns the :class:`Export`. ``flags`` apply to the whole interface (the
    START entry: DEPRECATED, HIDDEN, UNPRIVILEGED, a capability...).
    """
    cdef Bus b = _as_bus(bus)
    cdef Export ex = Export.__new__(Export)
    cdef Member mb
    cdef Py_ssize_t n, i
    cdef bytes p = cstr_arg(path, "object path")
    cdef bytes iface = cstr_arg(interface, "interface name")
    cdef sd_bus_slot *slot = NULL
    cdef sd_bus_property_set_t set_cb = NULL
    cdef int r
    if not sd_bus_object_path_is_valid(p):
        raise ValueError(f"invalid object path {path!r}")
    if not sd_bus_interface_name_is_valid(iface):
        raise ValueError(f"invalid interface name {interface!r}")
    members = list(members)
    seen = set()
    for m in members:
        if not isinstance(m, Member):
            raise TypeError(f"members must be Member objects, got {type(m).__name__}")
        key = ((<Member>m).kind == "property", (<Member>m).name)
        if (<Member>m).kind == "signal":
            key = ("signal", (<Member>m).name)
        if key in seen:
            raise ValueError(f"{(<Member>m).kind} {(<Member>m).name} defined twice in {interface}")
        seen.add(key)
    n = len(members)
    ex._bus_ref = _weakref.ref(b)
    ex.path = p.decode()
    ex.interface = iface.decode()
    ex.members = members
    ex._keep = [p, iface]
    ex.vtable = <sd_bus_vtable *>calloc(n + 2, sizeof(sd_bus_vtable))
    ex.entries = <pystemd_vt_entry *>calloc(n if n > 0 else 1, sizeof(pystemd_vt_entry))
    if ex.vtable == NULL or ex.entries == NULL:
        raise MemoryError()
    pystemd_vt_start(&ex.vtable[0], flags)
    ex.entries[0].export = <void *>ex
    for i in range(n):
        mb = <Member>members[i]
        ex.entries[i].export = <void *>ex
        ex.entries[i].member = <void *>mb
        if mb.kind == "method":
            pystemd_vt_method(&ex.vtable[i + 1], mb._name, mb._sig, mb._result, mb._names,
                              _method_cb, i * sizeof(pystemd_vt_entry), mb.flags)
        elif mb.kind == "signal":
            pystemd_vt_signal(&ex.vtable[i + 1], mb._name, mb._sig, mb._names, mb.flags)
        else:
            set_cb = NULL
            if mb.setter is not None:
                set_cb = _prop_set_cb
            pystemd_vt_property(&ex.vtable[i + 1], mb._name, mb._sig, _prop_get_cb, set_cb,
                                i * sizeof(pystemd_vt_entry), mb.flags)
    pystemd_vt_end(&ex.vtable[n + 1])
    b.acquire()
    try:
        _ensure_server(b)
        r = sd_bus_add_object_vtable(b.bus, &slot, p, iface, ex.vtable, <void *>ex.entries)
        if r == -EINVAL:
            raise ValueError(
                f"sd-bus refused the vtable of {interface} at {path} (invalid flags or "
                f"signatures, or an interface reserved by sd-bus)"
            )
        check_ctx(r, f"export of {interface} at {path}")
        r = sd_bus_slot_set_destroy_callback(slot, _export_destroyed)
        if r < 0:
            sd_bus_slot_unref(slot)  # removes the half-made export
            check_ctx(r, "sd_bus_slot_set_destroy_callback")
        Py_INCREF(ex)              # released by _export_destroyed
        ex.slot = slot             # borrowed from here on: the bus owns the slot
        _float(slot)
    finally:
        b.release()
    return ex


# ---------------------------------------------------------------------------
# replies sent later (async methods)

cdef class PendingReply:
    """A method call whose reply is sent when an awaitable finishes."""
    cdef object bus_ref
    cdef sd_bus_message *m
    cdef Member member
    cdef readonly str where

    def __cinit__(self):
        self.m = NULL

    def __init__(self):
        raise TypeError("PendingReply objects are created by pystemd")

    @staticmethod
    cdef PendingReply new(Bus bus, sd_bus_message *m, Member member, str where):
        cdef PendingReply self = PendingReply.__new__(PendingReply)
        self.bus_ref = _weakref.ref(bus) if bus is not None else None
        self.m = sd_bus_message_ref(m)
        self.member = member
        self.where = where
        return self

    def __dealloc__(self):
        if self.m != NULL:
            sd_bus_message_unref(self.m)

    @property
    def done(self):
        return self.m == NULL

    def __call__(self):
        """Run the method (from process(), outside sd-bus's dispatch) and reply."""
        cdef Member mb = self.member
        if self.m == NULL:
            return
        try:
            check(sd_bus_message_rewind(self.m, 1))
            args = read_body(self.m, mb.read_flags)
            if mb.with_message:
                result = mb.call(Message.wrap(self.m), *args)
            else:
                result = mb.call(*args)
        except BaseException as exc:
            self.fail(exc)
            return
        if hasattr(type(result), "__await__"):
            try:
                if _async_runner is None:
                    raise RuntimeError("an async method needs pystemd.serve imported")
                _async_runner(result, self)
            except BaseException as exc:
                if hasattr(result, "close"):
                    result.close()
                self.fail(exc)
            return
        self.finish(result)

    cdef object _take(self):
        b = self.bus_ref() if self.bus_ref is not None else None
        if self.m == NULL or b is None or (<Bus>b).bus == NULL:
            return None
        return b

    def finish(self, result):
        """Send the method return built from ``result``."""
        cdef sd_bus_error err = SD_BUS_ERROR_NULL
        cdef Bus bus
        b = self._take()
        if b is None:
            return
        bus = <Bus>b
        bus.acquire()
        try:
            r = _reply(self.m, self.member, result, &err, bus, self.where)
            if r < 0:
                check_ctx(sd_bus_reply_method_error(self.m, &err), "sd_bus_reply_method_error")
        finally:
            sd_bus_error_free(&err)
            sd_bus_message_unref(self.m)
            self.m = NULL
            bus.release()
        _sent(bus, False)

    def fail(self, exc):
        """Send the D-Bus error ``exc`` becomes (see :func:`error_for`)."""
        cdef sd_bus_error err = SD_BUS_ERROR_NULL
        cdef Bus bus
        b = self._take()
        if b is None:
            return
        bus = <Bus>b
        bus.acquire()
        try:
            _set_error(exc, &err, bus, self.where)
            check_ctx(sd_bus_reply_method_error(self.m, &err), "sd_bus_reply_method_error")
        finally:
            sd_bus_error_free(&err)
            sd_bus_message_unref(self.m)
            self.m = NULL
            bus.release()
        _sent(bus, False)


# ---------------------------------------------------------------------------
# signals, object manager, names

def emit_signal(bus, path, interface, member, signature="", args=(), *, destination=None):
    """Send a signal (``destination``: a unicast signal to one peer)."""
    cdef Bus b = _as_bus(bus)
    cdef bytes p = cstr_arg(path, "object path")
    cdef bytes i = cstr_arg(interface, "interface name")
    cdef bytes mb = cstr_arg(member, "member name")
    cdef bytes d
    cdef sd_bus_message *m = NULL
    cdef int r
    if not sd_bus_object_path_is_valid(p):
        raise ValueError(f"invalid object path {path!r}")
    if not sd_bus_interface_name_is_valid(i):
        raise ValueError(f"invalid interface name {interface!r}")
    if not sd_bus_member_name_is_valid(mb):
        raise ValueError(f"invalid member name {member!r}")
    b.acquire()
    try:
        check_ctx(sd_bus_message_new_signal(b.bus, &m, p, i, mb), "sd_bus_message_new_signal")
        try:
            if destination is not None:
                d = cstr_arg(destination, "destination")
                if not sd_bus_service_name_is_valid(d):
                    raise ValueError(f"invalid bus name {destination!r}")
                check(sd_bus_message_set_destination(m, d))
            if signature:
                append_args(m, signature, args)
            elif args:
                raise TypeError(f"{len(args)} argument(s) given but the signature is empty")
            r = sd_bus_send(b.bus, m, NULL)
            check_ctx(r, f"sending signal {interface}.{member}")
        finally:
            sd_bus_message_unref(m)
    finally:
        b.release()
    _sent(b, True)


def emit_object_added(bus, path):
    """InterfacesAdded for everything exported at ``path`` (needs an object manager above it)."""
    cdef Bus b = _as_bus(bus)
    cdef bytes p = cstr_arg(path, "object path")
    b.acquire()
    try:
        check_ctx(sd_bus_emit_object_added(b.bus, p), f"InterfacesAdded for {path}")
    finally:
        b.release()
    _sent(b, True)


def emit_object_removed(bus, path):
    """InterfacesRemoved for everything exported at ``path``."""
    cdef Bus b = _as_bus(bus)
    cdef bytes p = cstr_arg(path, "object path")
    b.acquire()
    try:
        check_ctx(sd_bus_emit_object_removed(b.bus, p), f"InterfacesRemoved for {path}")
    finally:
        b.release()
    _sent(b, True)


cdef class ObjectManager:
    """An org.freedesktop.DBus.ObjectManager at a path (sd_bus_add_object_manager)."""
    cdef object _bus_ref
    cdef sd_bus_slot *slot
    cdef readonly str path

    def __cinit__(self):
        self.slot = NULL

    def __init__(self, bus, path):
        cdef Bus b = _as_bus(bus)
        cdef bytes p = cstr_arg(path, "object path")
        if not sd_bus_object_path_is_valid(p):
            raise ValueError(f"invalid object path {path!r}")
        b.acquire()
        try:
            _ensure_server(b)
            check_ctx(sd_bus_add_object_manager(b.bus, &self.slot, p), f"object manager at {path}")
        finally:
            b.release()
        self._bus_ref = _weakref.ref(b)
        self.path = p.decode()

    def remove(self):
        """Take the object manager off the bus. Idempotent."""
        b = self._bus_ref() if self._bus_ref is not None else None
        if self.slot == NULL:
            return
        if b is None or (<Bus>b).bus == NULL:
            return
        (<Bus>b).acquire()
        try:
            sd_bus_slot_unref(self.slot)
            self.slot = NULL
        finally:
            (<Bus>b).release()

    def __dealloc__(self):
        # A non-floating slot holds a reference to the connection, so freeing
        # it here is safe even after the Bus object was closed.
        if self.slot != NULL:
            sd_bus_slot_unref(self.slot)
            self.slot = NULL


def request_name(bus, name, uint64_t flags=0):
    """sd_bus_request_name: True if acquired, False if queued (NAME_QUEUE).

    Raises FileExistsError when another peer owns it (and did not allow
    replacement), ValueError for an invalid or reserved name.
    """
    cdef Bus b = _as_bus(bus)
    cdef bytes n = cstr_arg(name, "bus name")
    cdef const char *c = n
    cdef int r
    if not sd_bus_service_name_is_valid(n) or n.startswith(b":"):
        raise ValueError(f"invalid well-known bus name {name!r}")
    cdef list pending
    b.acquire()
    try:
        pending = _busy_enter(b.bus)
        try:
            with nogil:
                r = sd_bus_request_name(b.bus, c, flags)
        finally:
            _busy_exit(b.bus, pending)
    finally:
        if b._wakeup is not None:
            b.left_behind()   # a synchronous call: it may have queued messages unread
        b.release()
    check_ctx(r, f"request name {n.decode()!r}")
    return r > 0


def release_name(bus, name):
    """sd_bus_release_name. Raises ProcessLookupError (ESRCH) if we did not own it."""
    cdef Bus b = _as_bus(bus)
    cdef bytes n = cstr_arg(name, "bus name")
    cdef const char *c = n
    cdef int r
    if not sd_bus_service_name_is_valid(n) or n.startswith(b":"):
        raise ValueError(f"invalid well-known bus name {name!r}")
    cdef list pending
    b.acquire()
    try:
        pending = _busy_enter(b.bus)
        try:
            with nogil:
                r = sd_bus_release_name(b.bus, c)
        finally:
            _busy_exit(b.bus, pending)
    finally:
        if b._wakeup is not None:
            b.left_behind()   # a synchronous call: it may have queued messages unread
        b.release()
    check_ctx(r, f"release name {n.decode()!r}")
