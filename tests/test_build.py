"""The build: clear failures, nothing generated in git, the compat version."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _setup_py(env_path: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=env_path)
    return subprocess.run(
        [sys.executable, str(REPO / "setup.py"), "build_ext", "--build-temp", str(tmp_path / "t"),
         "--build-lib", str(tmp_path / "l")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_build_without_pkg_config_says_what_is_missing(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    r = _setup_py(str(bindir), tmp_path)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("pystemd build: pkg-config not found"), r.stderr
    assert "Traceback" not in r.stderr


def test_build_without_libsystemd_headers_says_what_is_missing(tmp_path: Path) -> None:
    # A pkg-config that knows no libsystemd: what a machine without libsystemd-dev sees.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "pkg-config"
    fake.write_text("#!/bin/sh\necho 'Package libsystemd was not found' >&2\nexit 1\n")
    fake.chmod(0o755)
    r = _setup_py(f"{bindir}:/usr/bin:/bin", tmp_path)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "libsystemd development files not found" in last and "libsystemd-dev" in last, r.stderr
    assert "Traceback" not in r.stderr


def test_no_generated_c_in_git() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    generated = [
        f
        for f in files
        if f.endswith((".c", ".so", ".html")) and f.startswith(("pystemd/", "systemd/"))
    ]
    assert generated == []


def test_compiled_against_the_installed_libsystemd() -> None:
    from pystemd import _bus

    want = subprocess.run(
        ["pkg-config", "--modversion", "libsystemd"], capture_output=True, text=True
    )
    if want.returncode != 0:
        pytest.skip("pkg-config has no libsystemd")
    assert _bus._libsystemd_version() == int(want.stdout.split(".")[0])


def test_every_pyx_has_a_stub() -> None:
    pyx = sorted(p.stem for p in (REPO / "pystemd").glob("*.pyx"))
    pyi = sorted(p.stem for p in (REPO / "pystemd").glob("*.pyi"))
    assert [p for p in pyx if p not in pyi] == []


def test_sdist_contains_every_tracked_file(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    import tarfile

    tracked = set(
        subprocess.run(
            ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
    )
    r = subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--formats=gztar", "--dist-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (tarball,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(tarball) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert sorted(tracked - names) == []
    generated = [
        n
        for n in names
        if n.endswith(".so") or (n.endswith(".c") and n.startswith(("pystemd/", "systemd/")))
    ]
    assert generated == []
