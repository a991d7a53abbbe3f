#!/bin/sh
# Independent implementations the tests and benchmarks compare against, each
# in a venv of its own because they install the same import names as pystemd:
#   .venv-pysystemd          python-systemd 235 (PyPI systemd-python): package `systemd`
#   .venv-pystemd-upstream   the older pystemd 0.15.3 (PyPI pystemd): package `pystemd`
# Idempotent; needs gcc and libsystemd-dev (ci/setup.sh installs them).
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

make_venv() {  # dir, marker module, pip requirement...
    dir=$1; mod=$2; shift 2
    if [ -x "$dir/bin/python" ] && "$dir/bin/python" -I -c "import $mod" 2>/dev/null; then
        return 0
    fi
    echo "== peer venv $dir ($*)"
    "$PY" -m venv "$dir"
    "$dir/bin/python" -m pip install -q -U pip 2>&1 | grep -v "^WARNING: Location" || true
    "$dir/bin/python" -m pip install -q "$@" 2>&1 | grep -vE "^WARNING: Location|^ +|^$" || true
    "$dir/bin/python" -I -c "import $mod" || { echo "ci/peer-venvs.sh: could not install $*" >&2; exit 1; }
}

make_venv .venv-pysystemd systemd.journal "systemd-python==235"
make_venv .venv-pystemd-upstream pystemd.dbuslib "pystemd==0.15.3"
