"""The systemd units in docs/ carry the hardening the README promises and pass
``systemd-analyze verify`` (where systemd is installed; the test says so when it is not)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ReadWritePaths": "/var/lib/chatcore", "PrivateTmp": "yes",
    "ProtectHome": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
    "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes", "RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
    "SystemCallFilter": "@system-service", "UMask": "0077", "User": "chatcore",
}


def settings(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"(\w+)=(.*)", line.strip())
        if match:
            found.setdefault(match[1], []).append(match[2])
    return found


def test_the_service_is_hardened():
    found = settings(DOCS / "chatcore.service")
    for key, value in HARDENING.items():
        assert value in found.get(key, []), f"chatcore.service lacks {key}={value}"
    assert found["ExecStart"] == ["/opt/chatcore/bin/chatcore serve"]
    assert "STORAGE_DIR=/var/lib/chatcore" in found["Environment"][0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_units_pass_systemd_analyze_verify(tmp_path):
    chatcore = Path(sys.executable).with_name("chatcore")  # the installed command stands in for /opt/chatcore's
    for name in ("chatcore.service", "chatcore-backup.service", "chatcore-backup.timer"):
        text = (DOCS / name).read_text(encoding="utf-8").replace("/opt/chatcore/bin/chatcore", str(chatcore))
        (tmp_path / name).write_text(text, encoding="utf-8")
    checked = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in
                                                              ("chatcore.service", "chatcore-backup.service",
                                                               "chatcore-backup.timer"))],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", checked.stdout + checked.stderr
