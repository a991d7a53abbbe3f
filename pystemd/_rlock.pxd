# A re-entrant per-object lock: one for each Bus (_bus) and each journal
# Reader (_journal), so an object is used by one thread at a time while the
# thread that holds it may re-enter (a callback, a converter). Taken with the
# GIL held; a contended take waits for the lock without the GIL.
from cpython.pythread cimport (
    NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock,
    PyThread_free_lock, PyThread_get_thread_ident, PyThread_release_lock,
    PyThread_type_lock,
)


cdef struct RLock:
    PyThread_type_lock lock
    unsigned long owner      # the holder's thread ident, 0 when free
    int depth                # how many times the holder has taken it


cdef inline int rlock_init(RLock *l) except -1:
    l.owner = 0
    l.depth = 0
    l.lock = PyThread_allocate_lock()
    if l.lock == NULL:
        raise MemoryError()
    return 0


cdef inline void rlock_free(RLock *l) noexcept:
    if l.lock != NULL:
        PyThread_free_lock(l.lock)
        l.lock = NULL


cdef inline bint rlock_mine(RLock *l) noexcept:
    """Held by the calling thread (the caller then counts one level deeper)."""
    return l.depth > 0 and l.owner == PyThread_get_thread_ident()


cdef inline void rlock_take(RLock *l) noexcept:
    """Take a lock the calling thread does not hold (check rlock_mine first)."""
    if not PyThread_acquire_lock(l.lock, NOWAIT_LOCK):
        with nogil:
            PyThread_acquire_lock(l.lock, WAIT_LOCK)
    l.owner = PyThread_get_thread_ident()
    l.depth = 1


cdef inline void rlock_release(RLock *l) noexcept:
    l.depth -= 1
    if l.depth == 0:
        l.owner = 0
        PyThread_release_lock(l.lock)
