# The thin Cython layer over sd-bus. Other compiled modules (serving, asyncio
# helpers) cimport these declarations to reach the sd_bus pointer directly.
from cpython.pythread cimport PyThread_type_lock
from libc.stdint cimport uint64_t
from libsystemd.sd_bus cimport sd_bus, sd_bus_message, sd_bus_slot

# flags for read_body / read_value
cdef enum:
    READ_KEEP_VARIANTS = 1   # return Variant(sig, value) instead of the bare value


cdef class Variant:
    cdef readonly str signature
    cdef readonly object value
    cdef bytes _sig


cdef class UnixFD:
    cdef int fd


cdef class Message:
    """A reference to an sd_bus_message (signals, method calls being served)."""
    cdef sd_bus_message *m
    cdef object __weakref__

    @staticmethod
    cdef Message wrap(sd_bus_message *m)   # takes a new reference
    cdef str _hdr(self, const char *v)


cdef class Bus:
    cdef sd_bus *bus
    cdef unsigned long _gen
    cdef PyThread_type_lock _lock
    cdef unsigned long _owner
    cdef int _depth
    cdef readonly str kind
    cdef readonly object description
    # GIL policy: how long (µs) a wait may spin with the GIL held before it
    # is released (see docs/bus.md "GIL policy").
    cdef public long long gil_hold_us
    # >0 while a blocking call on this bus is driving sd_bus_process() in its
    # wait loop. C callbacks that would run Python code (signal handlers,
    # served methods) must not run it then: they call defer(fn) instead, and
    # the next process() runs fn() first. So user callbacks only ever run from
    # process() / the event loop, never inside someone's blocking call.
    cdef int _in_call
    cdef list _deferred
    # An exception raised by a Python callback, re-raised from process().
    cdef object _exc
    # A shared (per-thread default) bus is closed silently when collected.
    cdef public bint shared
    cdef object __weakref__

    cdef int defer(self, object fn) except -1
    cdef void park_exception(self, object exc) noexcept
    cdef int run_deferred(self) except -1
    cdef int acquire(self) except -1
    cdef void release(self) noexcept
    cdef int ensure_open(self) except -1
    cdef sd_bus_message *new_method_call(self, object destination, object path,
                                         object interface, object member) except NULL
    cdef sd_bus_message *call_message(self, sd_bus_message *m, uint64_t usec) except NULL
    cdef int wait_until(self, int *done, uint64_t deadline_us) except -1
    cdef int _wait_loop(self, int *done, long long spin) except -1


cdef int append_args(sd_bus_message *m, object signature, object args) except -1
cdef int append_value(sd_bus_message *m, const char *sig, Py_ssize_t n, object value) except -1
cdef tuple read_body(sd_bus_message *m, int flags)
cdef object read_value(sd_bus_message *m, char t, const char *contents, int flags)
cdef Py_ssize_t complete_type_len(const char *sig) except -1
