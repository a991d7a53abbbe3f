# The one place where a libsystemd return code or an sd_bus_error becomes a
# Python exception. Every compiled module cimports these.
from libsystemd.sd_bus cimport sd_bus_error

# r >= 0: returns r. r < 0: raises the OSError subclass for -r.
cdef int check(int r) except -1
# The same, naming what failed ("sd_bus_start", a path, a bus address...).
cdef int check_ctx(int r, object what) except -1
# Raise OSError for a positive errno, naming what failed (may be None).
cdef int raise_errno(int err, object what) except -1
# Raise the BusError subclass registered for e.name (OSError when e has no name).
cdef int raise_bus_error(const sd_bus_error *e, int r) except -1
# Build (not raise) the exception for an sd_bus_error.
cdef object bus_error_from(const sd_bus_error *e, int r)
