"""The systemd units: `systemd-analyze verify` finds nothing to say about either, and
`systemd-analyze security` keeps each one's exposure at or below 3.0 ("OK").

Both run without a running systemd (`--offline=true`); the units' programs must exist
for that, so each unit is checked as a copy whose ExecStart= names an executable that
does (the only change). systemd-analyze comes with Debian's `systemd` package, which
`scripts/setup.sh --test` installs; without it these tests are skipped, except in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = {
    "mediad.service": "/opt/mediad/.venv/bin/mediad",
    "mediad-binary.service": "/usr/local/bin/mediad",
}
MAX_EXPOSURE = 3.0
ANALYZE = shutil.which("systemd-analyze")
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("MEDIAD_REQUIRE_BINARY") == "1"

# Every unit has these (the list; MemoryDenyWriteExecute: see test_binary.py).
SANDBOX = [
    "User=mediad",
    "StateDirectory=mediad",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    "SystemCallFilter=@system-service",
    "LockPersonality=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "RestrictNamespaces=yes",
    "MemoryDenyWriteExecute=yes",
    "Type=notify",
    "WatchdogSec=60",
]


def analyze() -> str:
    if ANALYZE is None:
        message = "systemd-analyze is missing: apt-get install systemd (setup.sh --test does)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return ANALYZE


def checkable_copy(name: str, tmp_path: Path) -> Path:
    """The unit as installed (mediad.service), its program swapped for one that exists."""
    text = (ROOT / "systemd" / name).read_text()
    program = UNITS[name]
    assert f"ExecStart={program} serve --config /etc/mediad/config.yaml" in text
    stand_in = shutil.which("true")
    assert stand_in is not None
    copy = tmp_path / "mediad.service"
    copy.write_text(text.replace(f"ExecStart={program} ", f"ExecStart={stand_in} "))
    return copy


def directives(name: str) -> list[str]:
    lines = (ROOT / "systemd" / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "["))]


@pytest.mark.parametrize("name", sorted(UNITS))
def test_verify_finds_nothing_to_say(name: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [analyze(), "verify", "--man=no", str(checkable_copy(name, tmp_path))],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "" and out.stderr.strip() == "", out.stdout + out.stderr


@pytest.mark.parametrize("name", sorted(UNITS))
def test_security_exposure_is_ok(name: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [analyze(), "security", "--offline=true", "--no-pager",
         str(checkable_copy(name, tmp_path))],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    found = re.search(r"Overall exposure level for mediad\.service: (\d+\.\d)", out.stdout)
    assert found, out.stdout[-2000:]
    exposure = float(found[1])
    print(f"{name}: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE, out.stdout


@pytest.mark.parametrize("name", sorted(UNITS))
def test_the_sandbox_and_notify_settings(name: str) -> None:
    lines = directives(name)
    for wanted in SANDBOX:
        assert wanted in lines, f"{name} lacks {wanted}"
    # One of each: systemd would take the last of two, silently.
    keys = [line.split("=", 1)[0] for line in lines]
    repeatable = {"SystemCallFilter", "Environment", "EnvironmentFile", "After", "Wants"}
    assert sorted(k for k in set(keys) if keys.count(k) > 1 and k not in repeatable) == []
    # Only the onefile binary's unit lets a child notify: mediad runs as the child of the
    # bootloader, which is systemd's main process.
    assert ("NotifyAccess=all" in lines) == (name == "mediad-binary.service")
