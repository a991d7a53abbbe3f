# cython: freethreading_compatible=False
"""Thin layer for asyncio: sd_bus_call_async replies resolving Futures, and
signal matches feeding a queue.

The façade (pystemd.aio) subclasses :class:`Driver` and :class:`Match` and
wires them to the event loop (one reader on the bus fd, a writer only while
sd-bus wants POLLOUT, one timer re-armed only when sd-bus's deadline moves
earlier).

The C callbacks here run inside sd-bus's dispatch but never run user code:
they decode a reply and resolve a Future (``set_result`` only schedules the
awaiting task), or append a Message to a queue and wake its reader. If they
run on another thread than the loop's (another thread's blocking call on the
same Bus dispatched the message), they hand over with
``loop.call_soon_threadsafe``.

Each call owns a non-floating slot holding one reference to its
:class:`AsyncCall` (released by the slot's destroy callback). Cancelling the
Future unrefs the slot, so sd-bus forgets the call and drops its reply.
"""

from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.pythread cimport PyThread_get_thread_ident
from libc.stdint cimport uint8_t, uint64_t, UINT64_MAX

from libsystemd.sd_bus cimport *
from pystemd._bus cimport (
    Bus, Message, Variant, append_args, read_body, read_value, READ_KEEP_VARIANTS,
    cstr_arg, _timeout_usec,
)
from pystemd._errors cimport check, check_ctx, bus_error_from

import collections as _collections

cdef extern from "errno.h":
    enum:
        EINVAL

cdef enum:
    KIND_CALL = 0
    KIND_GET = 1
    KIND_GET_ALL = 2


cdef void _release_userdata(void *userdata) noexcept with gil:
    Py_DECREF(<object>userdata)


def _resolve(fut, value):
    if not fut.done():
        fut.set_result(value)


def _reject(fut, exc):
    if not fut.done():
        fut.set_exception(exc)


# ---------------------------------------------------------------------------
# calls

cdef class AsyncCall:
    """One method call in flight (or waiting for a window slot)."""
    cdef sd_bus_slot *slot
    cdef sd_bus_message *m        # built but not sent yet
    cdef Driver driver
    cdef readonly object future
    cdef int kind
    cdef int flags
    cdef uint64_t usec

    def __cinit__(self):
        self.slot = NULL
        self.m = NULL

    def __init__(self):
        raise TypeError("AsyncCall objects are created by the Driver")

    def __dealloc__(self):
        if self.m != NULL:
            sd_bus_message_unref(self.m)
            self.m = NULL
        # A live slot holds a reference to us, so it is gone by now.

    def _future_done(self, fut):
        """Future done-callback: a cancelled call gives its slot back."""
        if fut.cancelled():
            self.driver._cancel(self)


cdef int _on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) noexcept with gil:
    cdef AsyncCall call = <AsyncCall>userdata
    cdef Driver d = call.driver
    cdef char t = 0
    cdef const char *c = NULL
    value = None
    exc = None
    try:
        if sd_bus_message_is_method_error(m, NULL) > 0:
            exc = bus_error_from(sd_bus_message_get_error(m), -sd_bus_message_get_errno(m))
        elif call.kind == KIND_CALL:
            value = read_body(m, call.flags)
        elif call.kind == KIND_GET:
            check(sd_bus_message_peek_type(m, &t, &c))
            if t != b'v':
                raise ValueError(f"Properties.Get returned {chr(t)!r}, expected a variant")
            value = read_value(m, t, c, call.flags)
        else:
            value = read_value(m, b'a', b"{sv}", call.flags)
    except BaseException as e:
        exc = e
    try:
        d._settle(call, value, exc)
    except BaseException as e:
        d.bus.park_exception(e)
    return 0


cdef class Driver:
    """Asyncio calls on one Bus, for one event loop (the façade adds the loop wiring)."""
    cdef readonly Bus bus
    cdef readonly object loop
    cdef readonly unsigned long loop_thread
    cdef readonly object window          # int, or None for no limit
    cdef readonly Py_ssize_t in_flight
    cdef object _waiting                 # deque of AsyncCall not sent yet
    cdef set _calls                      # AsyncCall with a live slot
    cdef readonly bint closed
    cdef public bint draining            # set by the façade while it runs process()
    cdef object _fatal                   # the exception that broke the connection
    cdef object __weakref__

    def __cinit__(self):
        self.in_flight = 0
        self._waiting = _collections.deque()
        self._calls = set()
        self.closed = False
        self.draining = False
        self._fatal = None

    def __init__(self, bus, loop, window=64):
        if not isinstance(bus, Bus):
            raise TypeError(f"expected a pystemd.bus.Bus, got {type(bus).__name__}")
        if window is not None and int(window) < 1:
            raise ValueError(f"window must be a positive int or None, got {window!r}")
        (<Bus>bus).ensure_open()
        self.bus = <Bus>bus
        self.loop = loop
        self.window = None if window is None else int(window)
        self.loop_thread = PyThread_get_thread_ident()

    # -- loop side (overridden by the façade) --------------------------------

    def _set_closed(self):
        self.closed = True

    def _kick(self):
        """Something changed outside a drain (a send queued, a call finished
        on another thread): the façade schedules a drain/update."""

    # -- state the façade polls ----------------------------------------------

    def poll_state(self):
        """(events, deadline_us or None) in one lock round; 0 deadline = now."""
        cdef int ev
        cdef uint64_t t = 0
        cdef Bus b = self.bus
        b.acquire()
        try:
            ev = check(sd_bus_get_events(b.bus))
            if b._deferred or b._exc is not None:
                return ev, 0
            check(sd_bus_get_timeout(b.bus, &t))
        finally:
            b.release()
        return ev, (None if t == UINT64_MAX else t)

    def is_open(self):
        """False once the connection is closed or lost (sd_bus_is_open)."""
        cdef Bus b = self.bus
        if b.bus == NULL:
            return False
        return sd_bus_is_open(b.bus) > 0

    # -- calls ---------------------------------------------------------------

    cdef AsyncCall _new_call(self, sd_bus_message *m, int kind, int flags, uint64_t usec):
        cdef AsyncCall call = AsyncCall.__new__(AsyncCall)
        call.m = m
        call.driver = self
        call.kind = kind
        call.flags = flags
        call.usec = usec
        call.future = self.loop.create_future()
        call.future.add_done_callback(call._future_done)
        return call

    cdef object _check_usable(self):
        if self.closed:
            raise RuntimeError("this AsyncBus was closed")
        if self._fatal is not None:
            raise ConnectionError(f"the bus connection is gone: {self._fatal}")

    cdef object _submit(self, AsyncCall call):
        if self._waiting or (self.window is not None and self.in_flight >= self.window):
            self._waiting.append(call)
        else:
            self._send(call)
        if not self.draining:
            # one drain/update per burst of calls: arms the reply deadline
            # timer, and POLLOUT if the message did not go out at once
            self._kick()
        return call.future

    cdef int _send(self, AsyncCall call) except -1:
        """sd_bus_call_async (the bus lock is taken here)."""
        cdef Bus b = self.bus
        cdef sd_bus_message *m = call.m
        cdef int r
        b.acquire()
        try:
            r = sd_bus_call_async(b.bus, &call.slot, m, _on_reply, <void *>call, call.usec)
            if r >= 0:
                r = sd_bus_slot_set_destroy_callback(call.slot, _release_userdata)
                if r < 0:  # cancel the call: nothing would release `call`
                    sd_bus_slot_unref(call.slot)
                    call.slot = NULL
                else:
                    Py_INCREF(call)
        finally:
            b.release()
        call.m = NULL
        sd_bus_message_unref(m)
        if r < 0:
            try:
                check_ctx(r, "sd_bus_call_async")
            except BaseException as e:
                if not call.future.done():
                    call.future.set_exception(e)
            return 0
        self.in_flight += 1
        self._calls.add(call)
        return 0

    cdef int _drop_slot(self, AsyncCall call) except -1:
        cdef Bus b = self.bus
        cdef sd_bus_slot *s = call.slot
        if s == NULL:
            return 0
        call.slot = NULL
        self._calls.discard(call)
        self.in_flight -= 1
        if b.bus != NULL:
            b.acquire()
            try:
                sd_bus_slot_unref(s)   # destroy callback: Py_DECREF(call)
            finally:
                b.release()
        else:
            sd_bus_slot_unref(s)       # the slot keeps the closed sd_bus alive
        return 0

    cdef int _fill_window(self) except -1:
        cdef AsyncCall nxt
        while self._waiting and (self.window is None or self.in_flight < <Py_ssize_t>self.window):
            nxt = <AsyncCall>self._waiting.popleft()
            if nxt.future.done():
                continue
            self._send(nxt)
        return 0

    cdef int _settle(self, AsyncCall call, object value, object exc) except -1:
        """The reply arrived (inside sd_bus_process, possibly on another thread)."""
        self._drop_slot(call)   # sd-bus holds its own ref during the callback
        fut = call.future
        if PyThread_get_thread_ident() == self.loop_thread:
            if not fut.done():
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(value)
        else:
            if exc is not None:
                self.loop.call_soon_threadsafe(_reject, fut, exc)
            else:
                self.loop.call_soon_threadsafe(_resolve, fut, value)
        if self._waiting:
            self._fill_window()
        if not self.draining:
            # dispatched by a blocking call (this thread or another): the
            # loop must look at the bus again, its fd may stay quiet
            self._kick()
        return 0

    def _cancel(self, AsyncCall call):
        """The Future was cancelled: forget the call (its reply is dropped)."""
        if call.m != NULL:
            sd_bus_message_unref(call.m)
            call.m = NULL
            try:
                self._waiting.remove(call)
            except ValueError:
                pass
            return
        if call.slot != NULL:
            self._drop_slot(call)
            self._fill_window()
            self._kick()

    cdef object _start(self, destination, path, interface, member, signature, object args,
                       int kind, int flags, uint64_t usec):
        # build the method call under the bus lock and submit it as ``kind``
        cdef sd_bus_message *m = NULL
        cdef Bus b = self.bus
        self._check_usable()
        b.acquire()
        try:
            m = b.new_method_call(destination, path, interface, member)
            try:
                if signature:
                    append_args(m, signature, args)
                elif args:
                    raise TypeError(f"{len(args)} argument(s) given but the signature is empty")
            except BaseException:
                sd_bus_message_unref(m)
                raise
        finally:
            b.release()
        return self._submit(self._new_call(m, kind, flags, usec))

    def call(self, destination, path, interface, member, signature="", args=(),
             *, timeout=None, int flags=0):
        """Send a method call now; returns a Future of the reply body (a tuple)."""
        cdef uint64_t usec = _timeout_usec(timeout)
        return self._start(destination, path, interface, member, signature, args,
                           KIND_CALL, flags, usec)

    def get_property(self, destination, path, interface, name, *, timeout=None, int flags=0):
        """Future of Properties.Get, unwrapped (flags: KEEP_VARIANTS)."""
        cdef uint64_t usec = _timeout_usec(timeout)
        return self._start(destination, path, "org.freedesktop.DBus.Properties", "Get", b"ss",
                           (interface, name), KIND_GET, flags, usec)

    def get_all_properties(self, destination, path, interface, *, timeout=None, int flags=0):
        """Future of Properties.GetAll as a dict (interface None: all of them)."""
        cdef uint64_t usec = _timeout_usec(timeout)
        return self._start(destination, path, "org.freedesktop.DBus.Properties", "GetAll", b"s",
                           ("" if interface is None else interface,), KIND_GET_ALL, flags, usec)

    def fail_all(self, exc, bint fatal=False):
        """Fail every pending call with exc and forget them (``fatal``: the connection is gone)."""
        cdef AsyncCall call
        if fatal and self._fatal is None:
            self._fatal = exc
        while self._waiting:
            call = <AsyncCall>self._waiting.popleft()
            if call.m != NULL:
                sd_bus_message_unref(call.m)
                call.m = NULL
            if not call.future.done():
                call.future.set_exception(exc)
        for call in list(self._calls):
            self._drop_slot(call)
            if not call.future.done():
                call.future.set_exception(exc)

    @property
    def waiting(self):
        """Calls queued behind the window (not sent yet)."""
        return len(self._waiting)


# ---------------------------------------------------------------------------
# signal matches

cdef int _on_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) noexcept with gil:
    cdef Match mt = <Match>userdata
    try:
        mt._push(Message.wrap(m), None)
    except BaseException as e:
        mt.driver.bus.park_exception(e)
    return 0   # let other matches see it too


cdef int _on_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) noexcept with gil:
    cdef Match mt = <Match>userdata
    try:
        if sd_bus_message_is_method_error(m, NULL) > 0:
            exc = bus_error_from(sd_bus_message_get_error(m), -sd_bus_message_get_errno(m))
            mt._push(None, exc)
    except BaseException as e:
        mt.driver.bus.park_exception(e)
    return 0


cdef class Match:
    """A match rule whose signals are queued for an async reader."""
    cdef sd_bus_slot *slot
    cdef readonly Driver driver
    cdef readonly str rule
    cdef readonly object queue       # deque of Message
    cdef readonly Py_ssize_t maxsize
    cdef readonly Py_ssize_t dropped
    cdef Py_ssize_t _gap             # messages to deliver before the gap; -1: no gap
    cdef Py_ssize_t _lost            # dropped in the current gap
    cdef object _waiter
    cdef object _exc
    cdef object __weakref__

    def __cinit__(self):
        self.slot = NULL

    def __init__(self, Driver driver, rule, Py_ssize_t maxsize=0):
        cdef bytes r = cstr_arg(rule, "match rule")
        cdef Bus b = driver.bus
        cdef int rc
        driver._check_usable()
        self.driver = driver
        self.rule = r.decode()
        self.queue = _collections.deque()
        self.maxsize = maxsize
        self.dropped = 0
        self._gap = -1
        self._lost = 0
        self._waiter = None
        self._exc = None
        b.acquire()
        try:
            rc = sd_bus_add_match_async(b.bus, &self.slot, r, _on_signal, _on_installed, <void *>self)
            if rc == -EINVAL:
                raise ValueError(f"invalid match rule {self.rule!r}")
            check_ctx(rc, f"add match {self.rule!r}")
            rc = sd_bus_slot_set_destroy_callback(self.slot, _release_userdata)
            if rc < 0:
                sd_bus_slot_unref(self.slot)
                self.slot = NULL
                check_ctx(rc, "sd_bus_slot_set_destroy_callback")
            Py_INCREF(self)
        finally:
            b.release()
        driver._kick()

    cdef int _push(self, object msg, object exc) except -1:
        if exc is not None:
            if self._exc is None:
                self._exc = exc
        elif self.maxsize > 0 and len(self.queue) >= self.maxsize:
            if self._gap < 0:
                self._gap = len(self.queue)
            self._lost += 1
            self.dropped += 1
        else:
            self.queue.append(msg)
        if not self.driver.draining:
            self.driver._kick()
        w = self._waiter
        if w is not None:
            self._waiter = None
            if PyThread_get_thread_ident() == self.driver.loop_thread:
                if not w.done():
                    w.set_result(None)
            else:
                self.driver.loop.call_soon_threadsafe(_resolve, w, None)
        return 0

    def take(self):
        """The next queued Message; an int N where N signals were dropped; None if empty."""
        cdef Py_ssize_t n
        if self._gap == 0:
            n = self._lost
            self._gap = -1
            self._lost = 0
            return n
        if not self.queue:
            return None
        if self._gap > 0:
            self._gap -= 1
        return self.queue.popleft()

    def _take_error(self):
        """The install error (a BusError) or the overflow, once; else None."""
        exc = self._exc
        self._exc = None
        return exc

    def _set_waiter(self, fut):
        self._waiter = fut

    @property
    def active(self):
        return self.slot != NULL

    def remove(self):
        """Remove the match (RemoveMatch is sent). Idempotent."""
        cdef Bus b = self.driver.bus
        cdef sd_bus_slot *s = self.slot
        if s == NULL:
            return
        self.slot = NULL
        if b.bus != NULL:
            b.acquire()
            try:
                sd_bus_slot_unref(s)   # destroy callback: Py_DECREF(self)
            finally:
                b.release()
            self.driver._kick()
        else:
            sd_bus_slot_unref(s)
        w = self._waiter
        self._waiter = None
        if w is not None and not w.done():
            w.set_result(None)
