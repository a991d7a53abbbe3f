# The module only exports cdef functions (cimported by the other compiled modules).
