# cython: freethreading_compatible=False
"""Thin layer over sd-id128: each verb returns the 16 raw bytes of an ID.

The façade (:mod:`pystemd.id128`) turns them into ``uuid.UUID`` and checks
its arguments; this layer only mirrors the C calls and checks every return
code through :mod:`pystemd._errors`.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

from libsystemd.sd_id128 cimport (
    sd_id128_get_boot, sd_id128_get_boot_app_specific, sd_id128_get_invocation,
    sd_id128_get_machine, sd_id128_get_machine_app_specific, sd_id128_randomize, sd_id128_t,
)
from pystemd._errors cimport check_ctx


cdef inline bytes _raw(sd_id128_t *i):
    return PyBytes_FromStringAndSize(<char *> i.bytes, 16)


cdef sd_id128_t _from(bytes b) except *:
    cdef sd_id128_t i
    if PyBytes_GET_SIZE(b) != 16:
        raise ValueError(f"an id128 is 16 bytes, got {PyBytes_GET_SIZE(b)}")
    memcpy(i.bytes, PyBytes_AS_STRING(b), 16)
    return i


def randomize():
    """``sd_id128_randomize``: a random (v4) ID."""
    cdef sd_id128_t i
    check_ctx(sd_id128_randomize(&i), "sd_id128_randomize")
    return _raw(&i)


def get_machine():
    """``sd_id128_get_machine``: this machine's ID (/etc/machine-id)."""
    cdef sd_id128_t i
    check_ctx(sd_id128_get_machine(&i), "/etc/machine-id")
    return _raw(&i)


def get_boot():
    """``sd_id128_get_boot``: this boot's ID (/proc/sys/kernel/random/boot_id)."""
    cdef sd_id128_t i
    check_ctx(sd_id128_get_boot(&i), "/proc/sys/kernel/random/boot_id")
    return _raw(&i)


def get_invocation():
    """``sd_id128_get_invocation``: the invocation ID of the calling unit ($INVOCATION_ID)."""
    cdef sd_id128_t i
    check_ctx(sd_id128_get_invocation(&i), "$INVOCATION_ID")
    return _raw(&i)


def get_machine_app_specific(bytes app_id):
    """``sd_id128_get_machine_app_specific``: the machine ID hashed with ``app_id`` (16 bytes)."""
    cdef sd_id128_t app = _from(app_id), i
    check_ctx(sd_id128_get_machine_app_specific(app, &i), "/etc/machine-id")
    return _raw(&i)


def get_boot_app_specific(bytes app_id):
    """``sd_id128_get_boot_app_specific``: the boot ID hashed with ``app_id`` (16 bytes)."""
    cdef sd_id128_t app = _from(app_id), i
    check_ctx(sd_id128_get_boot_app_specific(app, &i), "/proc/sys/kernel/random/boot_id")
    return _raw(&i)
