"""Build the compiled part of pystemd against the system's libsystemd.

Everything declarative lives in pyproject.toml; this file only computes the
extension modules:

* every ``*.pyx`` under ``pystemd/`` and ``systemd/`` becomes one extension;
* compiler and linker flags come from ``pkg-config libsystemd``;
* ``-DLIBSYSTEMD_VERSION=<major>`` lets ``include/pystemd/compat.h`` stub out
  calls that the installed libsystemd is too old to have (they raise ENOSYS).

Set ``PYSTEMD_BUILD_ONLY=pystemd._bus,pystemd._errors`` to compile a subset
(handy while working on one module), ``PYSTEMD_DEBUG=1`` for -O0 -g, and
``PYSTEMD_ANNOTATE=1`` to get Cython's HTML annotation next to each .pyx.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
INCLUDE = HERE / "include"


def die(msg: str) -> None:
    # One clear line, no traceback: the user has to install something.
    sys.stderr.write(f"pystemd build: {msg}\n")
    raise SystemExit(1)


def pkg_config(*args: str) -> str:
    return subprocess.run(
        ["pkg-config", *args, "libsystemd"], check=True, capture_output=True, text=True
    ).stdout.strip()


def libsystemd_flags() -> tuple[int, list[str], list[str]]:
    if shutil.which("pkg-config") is None:
        die("pkg-config not found; install it (Debian: apt-get install pkg-config libsystemd-dev)")
    try:
        version = pkg_config("--modversion")
    except subprocess.CalledProcessError:
        die(
            "libsystemd development files not found by pkg-config; install libsystemd-dev (Debian) or systemd-devel (Fedora)"
        )
    cflags = pkg_config("--cflags").split()
    libs = pkg_config("--libs").split()
    include_dirs = [f[2:] for f in cflags if f.startswith("-I")] + ["/usr/include"]
    if not any((Path(d) / "systemd" / "sd-bus.h").exists() for d in include_dirs):
        die("systemd/sd-bus.h not found; install libsystemd-dev (Debian) or systemd-devel (Fedora)")
    try:
        major = int(version.split(".")[0].split("~")[0])
    except ValueError:
        die(f"cannot parse libsystemd version {version!r} from pkg-config")
    return major, cflags, libs


def extensions() -> list:
    # Metadata-only commands (egg_info, sdist) must work without a compiler.
    if any(a in sys.argv for a in ("egg_info", "sdist", "--name", "--version", "dist_info")):
        return []
    # libsystemd first: it is the dependency a user has to install by hand.
    major, cflags, libs = libsystemd_flags()
    try:
        from Cython.Build import cythonize
    except ImportError:
        die("Cython 3 is required to build pystemd (pip install 'Cython>=3')")
    from setuptools import Extension

    only = {m for m in os.environ.get("PYSTEMD_BUILD_ONLY", "").split(",") if m}
    debug = os.environ.get("PYSTEMD_DEBUG") == "1"

    exts = []
    for pyx in sorted([*HERE.glob("pystemd/*.pyx"), *HERE.glob("systemd/*.pyx")]):
        rel = pyx.relative_to(HERE)
        name = ".".join(rel.with_suffix("").parts)
        if only and name not in only:
            continue
        exts.append(
            Extension(
                name,
                [str(rel)],
                include_dirs=[str(INCLUDE)],
                define_macros=[("LIBSYSTEMD_VERSION", str(major)), ("_GNU_SOURCE", "1")],
                extra_compile_args=[
                    *cflags,
                    "-Wno-unused-function",
                    *(["-O0", "-g"] if debug else ["-O2"]),
                ],
                extra_link_args=libs,
            )
        )
    return cythonize(
        exts,
        include_path=[str(INCLUDE), str(HERE)],
        compiler_directives={
            "language_level": 3,
            "embedsignature": True,
            "binding": False,
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "cdivision": True,
            "freethreading_compatible": False,
        },
        annotate=os.environ.get("PYSTEMD_ANNOTATE") == "1",
        compile_time_env={},
        quiet=True,
    )


setup(ext_modules=extensions())
