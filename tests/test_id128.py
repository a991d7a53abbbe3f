"""pystemd.id128 and the systemd.id128 drop-in, checked against python-systemd 235 and libsystemd.

python-systemd runs in its own venv (``python -I``, same import name); its
answers for this machine and its SD_MESSAGE_* table are compared with ours.
The constants are also checked against the installed ``sd-messages.h``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import systemd.id128 as dropin
from pystemd import id128

REPO = Path(__file__).resolve().parent.parent
PYSYSTEMD = REPO / ".venv-pysystemd" / "bin" / "python"
SD_MESSAGES_H = Path("/usr/include/systemd/sd-messages.h")

APP = uuid.UUID("0b2f9b4b-2a77-4f6b-9d4e-2a6c1f0e9a11")

PEER = f"""
import json, uuid
from systemd import id128
app = uuid.UUID({str(APP)!r})
print(json.dumps({{
    "machine": id128.get_machine().hex,
    "boot": id128.get_boot().hex,
    "app": id128.get_machine_app_specific(app).hex,
    "consts": {{n: getattr(id128, n).hex for n in dir(id128) if n.startswith("SD_MESSAGE_")}},
    "names": sorted(n for n in dir(id128) if not n.startswith("_")),
    "version": id128.__version__,
}}))
"""

# the 50 constants v236 adds that pystemd carries (v236 adds 52; see docs/id128-login.md)
V236_LEFT_OUT = {"SD_MESSAGE_TPM_NVINDEX_EXHAUSTED", "SD_MESSAGE_TPM_NVPCR_UNSUPPORTED"}


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not os.access(PYSYSTEMD, os.X_OK):
        from pystemd.testing.pytest_plugin import unavailable

        unavailable(f"python-systemd's venv is missing ({PYSYSTEMD}); run ci/peer-venvs.sh")
    cp = subprocess.run(
        [str(PYSYSTEMD), "-I", "-c", PEER],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path_factory.mktemp("peer")),
    )
    assert cp.returncode == 0, cp.stderr
    out: dict[str, Any] = json.loads(cp.stdout)
    return out


def test_ids_match_python_systemd(peer: dict[str, Any]) -> None:
    for mod in (id128, dropin):
        assert mod.get_machine().hex == peer["machine"]
        assert mod.get_boot().hex == peer["boot"]
        assert mod.get_machine_app_specific(APP).hex == peer["app"]
        assert isinstance(mod.get_boot(), uuid.UUID)
    assert Path("/etc/machine-id").read_text().strip() == peer["machine"]
    assert (
        Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "") == peer["boot"]
    )


def test_python_systemd_constants_all_present_and_equal(peer: dict[str, Any]) -> None:
    assert len(peer["consts"]) == 65
    for name, value in peer["consts"].items():
        assert getattr(dropin, name).hex == value, name
        assert isinstance(getattr(dropin, name), uuid.UUID)
    # the same id under two names, as in python-systemd
    assert dropin.SD_MESSAGE_CONFIG_ERROR == dropin.SD_MESSAGE_INVALID_CONFIGURATION


def test_drop_in_names(peer: dict[str, Any]) -> None:
    ours = sorted(n for n in dir(dropin) if not n.startswith("_"))
    extra = set(ours) - set(peer["names"])
    assert set(peer["names"]) <= set(ours)
    assert len(extra) == 50 and all(n.startswith("SD_MESSAGE_") for n in extra)
    assert not (extra & V236_LEFT_OUT)
    assert dropin.__version__ == peer["version"] == "235"
    assert set(id128.MESSAGE_IDS) == {
        n[len("SD_MESSAGE_") :] for n in dir(id128) if n.startswith("SD_MESSAGE_")
    }
    assert len(id128.MESSAGE_IDS) == 115


def test_constants_match_the_installed_header() -> None:
    if not SD_MESSAGES_H.exists():
        pytest.skip("no sd-messages.h (libsystemd-dev)")
    text = SD_MESSAGES_H.read_text().replace("\\\n", " ")
    found = re.findall(r"#define\s+SD_MESSAGE_([A-Z0-9_]+)\s+SD_ID128_MAKE\(([0-9a-f,\s]+)\)", text)
    assert len(found) > 50
    checked = 0
    for name, parts in found:
        value = getattr(id128, "SD_MESSAGE_" + name, None)
        if value is None:
            continue
        assert value.hex == "".join(p.strip() for p in parts.split(",")), name
        checked += 1
    assert checked >= 60


def test_randomize() -> None:
    ids = {id128.randomize() for _ in range(1000)}
    assert len(ids) == 1000
    for u in list(ids)[:50]:
        assert u.version == 4 and u.variant == uuid.RFC_4122


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (APP, None),
        (str(APP), None),
        (APP.hex, None),
        (APP.bytes, None),
        (type("HasBytes", (), {"bytes": APP.bytes})(), None),
        ("not-a-uuid", ValueError),
        (b"short", ValueError),
        (5, TypeError),
        (None, TypeError),
    ],
)
def test_app_specific_arguments(app: Any, expected: Any) -> None:
    if expected is None:
        want = id128.get_machine_app_specific(APP)
        assert id128.get_machine_app_specific(app) == want
        assert id128.get_boot_app_specific(app) == id128.get_boot_app_specific(APP)
        assert want not in (id128.get_machine(), APP)
    else:
        with pytest.raises(expected):
            id128.get_machine_app_specific(app)
        with pytest.raises(expected):
            dropin.get_machine_app_specific(app)


def test_invocation_id_from_the_environment() -> None:
    inv = uuid.uuid4()
    code = "from pystemd import id128; print(id128.get_invocation().hex)"
    env = dict(os.environ, INVOCATION_ID=inv.hex)
    cp = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert cp.stdout.strip() == inv.hex, cp.stderr
    env.pop("INVOCATION_ID")
    code = (
        "from pystemd import id128\n"
        "try:\n    id128.get_invocation()\nexcept OSError as e:\n    print(e.errno)"
    )
    cp = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert cp.stdout.strip() == "6", cp.stderr  # ENXIO: not in a unit


IN_CONTAINER = """
import json, os
from pystemd import id128
print(json.dumps({"machine": id128.get_machine().hex, "inv": id128.get_invocation().hex,
                  "env": os.environ.get("INVOCATION_ID")}))
"""


@pytest.mark.sandbox
def test_inside_a_unit_of_the_sandbox(systemd_sandbox: Any) -> None:
    cp = systemd_sandbox.run(
        ["systemd-run", "--wait", "--pipe", "-q", sys.executable, "-c", IN_CONTAINER], check=False
    )
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)
    assert out["inv"] == out["env"] and len(out["inv"]) == 32
    container_mid = systemd_sandbox.run(["cat", "/etc/machine-id"]).stdout.strip()
    assert out["machine"] == container_mid
