# The thin Cython layer over sd-bus. Other compiled modules (serving, asyncio
# helpers) cimport these declarations to reach the sd_bus pointer directly.
from pystemd._rlock cimport RLock
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


cdef class Slot:
    """A match registered by Bus.add_match(); sd-bus owns the slot (floating),
    and holds a reference to this object until its destroy callback runs."""
    cdef sd_bus_slot *slot
    cdef object _bus_ref          # weakref to the Bus
    cdef readonly object callback
    cdef readonly str rule
    cdef int _install_done
    cdef sd_bus_message *_install_reply
    cdef object __weakref__


cdef class Bus:
    cdef sd_bus *bus
    cdef unsigned long _gen
    cdef RLock _rl          # one thread at a time (re-entrant: callbacks)
    cdef readonly str kind
    cdef readonly object description
    # GIL policy: how long (µs) a wait may spin with the GIL held before it
    # is released (see docs/bus.md "GIL policy").
    cdef public long long gil_hold_us
    # >0 while a blocking call on this bus is driving sd_bus_process() in its
    # wait loop. C callbacks that would run Python code must not run it then:
    # they call defer(fn) instead, and the next process() runs fn() first. So
    # user callbacks only ever run from process() / the event loop, never
    # inside someone's blocking call. (The match callbacks of this module
    # always defer, in or out of a call: sd-bus forbids a recursive
    # sd_bus_process(), so Python code must not run inside its dispatch.)
    cdef int _in_call
    # fn() or (fn, arg) items, run by process()
    cdef list _deferred
    # Exceptions raised by Python callbacks, re-raised from process() in order:
    # _exc is the next one, _more_exc the ones after it.
    cdef object _exc
    cdef list _more_exc
    # Slots of the matches registered through this Bus (removed by close());
    # Bus's tp_traverse visits them (see "The garbage collector" in _bus.pyx).
    cdef list _slots
    # A shared (per-thread default) bus is closed silently when collected.
    cdef public bint shared
    # How many LimitsExceeded refusals the last call_many/get_property_many retried.
    cdef readonly Py_ssize_t last_batch_limit_hits
    # The wake-up hook: a callable (no arguments) that the blocking paths call
    # when they return leaving work for an event loop behind: messages that
    # sd-bus read into its queue without dispatching them (sd_bus_call() does
    # that, and the fd then stays quiet), deferred callbacks, parked
    # exceptions. Set by pystemd.aio while a loop drives this Bus; None
    # otherwise, and then the blocking paths pay one pointer comparison.
    cdef object _wakeup
    cdef object __weakref__

    cdef int defer(self, object fn) except -1
    cdef void park_exception(self, object exc) noexcept
    cdef int run_deferred(self) except -1
    cdef object _take_exception(self)
    cdef int acquire(self) except -1
    cdef void release(self) noexcept
    cdef int ensure_open(self) except -1
    # after a blocking path: call _wakeup() if it left work behind (see above)
    cdef void left_behind(self) noexcept
    cdef void _drop_slots(self) noexcept
    cdef sd_bus_message *new_method_call(self, object destination, object path,
                                         object interface, object member) except NULL
    cdef sd_bus_message *call_message(self, sd_bus_message *m, uint64_t usec) except NULL
    cdef sd_bus_message *_call_message(self, sd_bus_message *m, uint64_t usec) except NULL
    cdef sd_bus_message *_await_reply(self, uint64_t cookie, uint64_t start, uint64_t total) except NULL
    cdef int wait_until(self, int *done, uint64_t deadline_us) except -1
    cdef int _wait_loop(self, int *done, long long spin) except -1
    cdef list _run_batch(self, list items, bint is_get, uint64_t usec, Py_ssize_t window,
                         bint retry_limits, int flags, Py_ssize_t base, list limit_hits)
    cdef list _batch(self, object requests, bint is_get, object window, object timeout,
                     int flags, bint return_exceptions, bint retry_limits)


cdef int append_args(sd_bus_message *m, object signature, object args) except -1
cdef int append_value(sd_bus_message *m, const char *sig, Py_ssize_t n, object value) except -1
cdef tuple read_body(sd_bus_message *m, int flags)
cdef object read_value(sd_bus_message *m, char t, const char *contents, int flags)
cdef Py_ssize_t complete_type_len(const char *sig) except -1
# argument checks shared with the serving and asyncio modules
cdef bytes cstr_arg(object value, str what)       # str/bytes -> bytes, no NUL
cdef uint64_t _timeout_usec(object timeout) except? 0  # seconds -> µs (0: default)

# Around a synchronous sd-bus call made without the GIL (sd_bus_call,
# sd_bus_request_name...): messages other threads drop meanwhile are
# unreferenced afterwards, with the GIL, by the thread that drove the bus
# (sd-bus reference counts are not atomic).
cdef list _busy_enter(sd_bus *bus)
cdef void _busy_exit(sd_bus *bus, list pending) noexcept
