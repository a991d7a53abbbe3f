"""The exceptions pystemd raises, importable without the compiled modules.

Two families:

* A negative errno from libsystemd with no D-Bus error attached becomes the
  builtin ``OSError`` subclass Python picks for that errno
  (``FileNotFoundError``, ``PermissionError``, ``ConnectionRefusedError``,
  ``TimeoutError`` ...), with ``strerror`` and a note saying which call failed.

* A D-Bus error reply becomes a :class:`BusError` subclass chosen by the error
  *name* (``org.freedesktop.systemd1.NoSuchUnit`` -> :class:`NoSuchUnit`).
  ``.name`` and ``.message`` are ``str``; ``.errno`` is the positive errno
  sd-bus associates with the name (or ``None``). Classes mix in the builtin
  that fits, so ``except PermissionError`` catches :class:`AccessDenied` and
  ``except LookupError`` catches :class:`NoSuchUnit`. A name nobody registered
  still raises a :class:`BusError` that carries it.

Register your own names with :func:`register`::

    @register("com.example.Error.Busy")
    class Busy(BusError): ...
"""

from __future__ import annotations

import errno as _errno
from typing import Any, Callable, Optional, TypeVar

__all__ = [
    "AccessDenied",
    "AddressInUse",
    "AdtAuditDataUnknown",
    "AuthFailed",
    "BadAddress",
    "BusError",
    "BusIOError",
    "Disconnected",
    "Failed",
    "FileExists",
    "FileNotFound",
    "InconsistentMessage",
    "InteractiveAuthorizationRequired",
    "InvalidArgs",
    "InvalidFileContent",
    "InvalidSignature",
    "JobFailed",
    "LimitsExceeded",
    "MatchRuleInvalid",
    "MatchRuleNotFound",
    "NameHasNoOwner",
    "NoMemory",
    "NoNetwork",
    "NoReply",
    "NoServer",
    "NoSuchJob",
    "NoSuchUnit",
    "NoUnitForInvocationID",
    "NoUnitForPID",
    "NotSupported",
    "ObjectPathInUse",
    "PropertyReadOnly",
    "PystemdError",
    "SELinuxSecurityContextUnknown",
    "ServiceUnknown",
    "TimedOut",
    "Timeout",
    "UnitExists",
    "UnitMasked",
    "UnixProcessIdUnknown",
    "UnknownInterface",
    "UnknownMethod",
    "UnknownObject",
    "UnknownProperty",
    "bus_error",
    "errno_name",
    "register",
]


class PystemdError(Exception):
    """Base class of the exceptions that are pystemd's own (not builtins)."""


_REGISTRY: dict[str, type[BusError]] = {}

E = TypeVar("E", bound="type[BusError]")


def register(name: str) -> Callable[[E], E]:
    """Class decorator: raise this class for D-Bus errors called ``name``."""

    def deco(cls: E) -> E:
        _REGISTRY[name] = cls
        if cls.__dict__.get("dbus_name") is None:
            cls.dbus_name = name
        return cls

    return deco


class BusError(PystemdError):
    """A D-Bus error reply (or an sd-bus error with a name).

    Attributes: ``name`` (the D-Bus error name, ``str``), ``message`` (``str``)
    and ``errno`` (positive ``int`` or ``None``).
    """

    dbus_name: Optional[str] = None

    # `errno` is a plain attribute here; OSError-derived subclasses reuse the
    # builtin slot of the same name.
    def __init__(self, name: str, message: str = "", errno: Optional[int] = None) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.errno = errno

    def __str__(self) -> str:
        if self.message:
            return f"{self.name}: {self.message}"
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (bus_error, (self.name, self.message, self.errno))


def bus_error(name: str, message: str = "", errno: Optional[int] = None) -> BusError:
    """Build the exception registered for ``name`` (``BusError`` if none is).

    ``System.Error.ENOENT`` and friends (the names sd-bus gives errors made
    from an errno) become a :class:`BusError` that is also the builtin
    ``OSError`` subclass for that errno (``FileNotFoundError`` ...).
    """
    cls = _REGISTRY.get(name)
    if cls is None:
        cls = _system_error_class(name) if name.startswith(_SYSTEM) else BusError
    if errno is None and cls.__dict__.get("_errno") is not None:
        errno = cls.__dict__["_errno"]
    return cls(name, message, errno)


_SYSTEM = "System.Error."
_SYSTEM_CLASSES: dict[str, type[BusError]] = {}


def _system_error_class(name: str) -> type[BusError]:
    """A BusError mixed with the OSError subclass for ``System.Error.E<NAME>``."""
    cls = _SYSTEM_CLASSES.get(name)
    if cls is not None:
        return cls
    code = getattr(_errno, name[len(_SYSTEM) :], None)
    if not isinstance(code, int) or not name[len(_SYSTEM) :].startswith("E"):
        return BusError
    builtin = type(OSError(code, ""))
    cls = type(
        "BusError_" + name[len(_SYSTEM) :],
        (BusError, builtin),
        {"__module__": __name__, "__doc__": f"``{name}``", "dbus_name": name, "_errno": code},
    )
    if len(_SYSTEM_CLASSES) < 512:  # errno names are a finite set; never grow without bound
        _SYSTEM_CLASSES[name] = cls
    return cls


def _std(short: str, *bases: type, dbus: str = "org.freedesktop.DBus.Error.") -> type[BusError]:
    cls = type(short, (BusError, *bases), {"__module__": __name__, "__doc__": f"``{dbus}{short}``"})
    register(dbus + short)(cls)
    return cls


# The freedesktop standard errors (sd-bus knows all of these by name).
Failed = _std("Failed")
NoMemory = _std("NoMemory", MemoryError)
ServiceUnknown = _std("ServiceUnknown", LookupError)
NameHasNoOwner = _std("NameHasNoOwner", LookupError)
NoReply = _std("NoReply", TimeoutError)
BusIOError = _std("IOError", OSError)
BadAddress = _std("BadAddress", ValueError)
NotSupported = _std("NotSupported", NotImplementedError)
LimitsExceeded = _std("LimitsExceeded")
AccessDenied = _std("AccessDenied", PermissionError)
AuthFailed = _std("AuthFailed", PermissionError)
InteractiveAuthorizationRequired = _std("InteractiveAuthorizationRequired", PermissionError)
NoServer = _std("NoServer", ConnectionError)
Timeout = _std("Timeout", TimeoutError)
TimedOut = _std("TimedOut", TimeoutError)
NoNetwork = _std("NoNetwork", ConnectionError)
AddressInUse = _std("AddressInUse", OSError)
Disconnected = _std("Disconnected", ConnectionError)
InvalidArgs = _std("InvalidArgs", ValueError)
FileNotFound = _std("FileNotFound", FileNotFoundError)
FileExists = _std("FileExists", FileExistsError)
UnknownMethod = _std("UnknownMethod", LookupError)
UnknownObject = _std("UnknownObject", LookupError)
UnknownInterface = _std("UnknownInterface", LookupError)
UnknownProperty = _std("UnknownProperty", LookupError)
PropertyReadOnly = _std("PropertyReadOnly", PermissionError)
UnixProcessIdUnknown = _std("UnixProcessIdUnknown", LookupError)
InvalidSignature = _std("InvalidSignature", ValueError)
InconsistentMessage = _std("InconsistentMessage", ValueError)
MatchRuleNotFound = _std("MatchRuleNotFound", LookupError)
MatchRuleInvalid = _std("MatchRuleInvalid", ValueError)
ObjectPathInUse = _std("ObjectPathInUse", FileExistsError)
InvalidFileContent = _std("InvalidFileContent", ValueError)
SELinuxSecurityContextUnknown = _std("SELinuxSecurityContextUnknown", LookupError)
AdtAuditDataUnknown = _std("AdtAuditDataUnknown", LookupError)

# systemd's own (org.freedesktop.systemd1.*), the ones agents meet daily.
_S1 = "org.freedesktop.systemd1."
NoSuchUnit = _std("NoSuchUnit", LookupError, dbus=_S1)
NoUnitForPID = _std("NoUnitForPID", LookupError, dbus=_S1)
NoUnitForInvocationID = _std("NoUnitForInvocationID", LookupError, dbus=_S1)
NoSuchJob = _std("NoSuchJob", LookupError, dbus=_S1)
UnitExists = _std("UnitExists", FileExistsError, dbus=_S1)
UnitMasked = _std("UnitMasked", PermissionError, dbus=_S1)
JobFailed = _std("JobFailed", dbus=_S1)
for _n in (
    "LoadFailed",
    "NotSubscribed",
    "AlreadySubscribed",
    "OnlyByDependency",
    "TransactionJobsConflicting",
    "TransactionOrderIsCyclic",
    "TransactionIsDestructive",
    "UnitGenerated",
    "UnitLinked",
    "JobTypeNotApplicable",
    "NoIsolation",
    "ShuttingDown",
    "ScopeNotRunning",
    "NoSuchDynamicUser",
    "NotReferenced",
    "UnitInactive",
    "UnitBad",
    "DiskFull",
):
    globals()[_n] = _std(_n, dbus=_S1)
    __all__.append(_n)
del _n


def errno_name(err: int) -> str:
    """'ENOENT' for 2, 'E123' for an errno the platform does not name."""
    return _errno.errorcode.get(err, f"E{err}")
