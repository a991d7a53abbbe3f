#!/bin/sh
# Set everything up on a fresh Debian 12 machine (as root): system packages,
# a virtualenv in .venv, and pystemd built and installed into it (editable).
# Idempotent: re-running only does what is missing. Sourced by ci/demo and ci/test.
set -eu
cd "$(dirname "$0")/.."
# Temporary files (pip builds, pytest's tmp_path, ...) stay inside the checkout:
# the host's /tmp is left exactly as it was.
TMPDIR="$PWD/build/tmp"
export TMPDIR
mkdir -p "$TMPDIR"

PACKAGES="gcc pkg-config libsystemd-dev systemd systemd-container systemd-journal-remote dbus dbus-daemon util-linux man-db openssh-server"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "ci/setup.sh: missing packages:$missing (run as root, or install them)" >&2
        exit 1
    fi
    echo "== apt-get install$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
# pip and the build are quiet unless they fail
.venv/bin/python -m pip install -q -U pip 2>&1 | grep -v "^WARNING: Location" || true
echo "== building pystemd (Cython over libsystemd $(pkg-config --modversion libsystemd))"
.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -vE "^WARNING: Location|^ +|^$|^!!|^\*+$" || true
.venv/bin/python -c "import pystemd._bus" || { echo "ci/setup.sh: the build did not produce pystemd._bus" >&2; exit 1; }
# python-systemd and the older pystemd, each in its own venv (tests and bench compare against them)
./ci/peer-venvs.sh
