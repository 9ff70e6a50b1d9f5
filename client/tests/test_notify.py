"""Desktop notifications through a real ``notify-send`` stand-in (a shell script on disk, run
as a real process): what it is given, that ``notify`` returns at once, that failures and a
missing program are ignored, and that turning notifications off runs nothing."""

from __future__ import annotations

import select
import time
from pathlib import Path

from chatcore_client.notify import MAX_BODY, Notifier


def fake_notify_send(tmp_path: Path, body: str) -> Path:
    program = tmp_path / "notify-send"
    program.write_text("#!/bin/sh\n" + body)
    program.chmod(0o755)
    return program


def wait_idle(notifier: Notifier, timeout: float = 10.0) -> None:
    """Until the notification's worker thread has finished (the program exited)."""
    deadline = time.monotonic() + timeout
    while notifier._busy.locked():
        assert time.monotonic() < deadline, "notify-send never finished"
        select.select([], [], [], 0.005)


def test_a_notification_runs_notify_send_with_title_and_body(tmp_path):
    out = tmp_path / "args"
    program = fake_notify_send(tmp_path, f"printf '%s\\n' \"$@\" > {out}.tmp && mv {out}.tmp {out}\n")
    notifier = Notifier(True, which=lambda name: str(program) if name == "notify-send" else None)
    assert notifier.available()
    assert notifier.notify("@bob in #dev", "-rf is not an option here " + "x" * 300)
    wait_idle(notifier)
    title_and_body = out.read_text().splitlines()
    assert title_and_body[:3] == ["--app-name=chatcore", "--", "@bob in #dev"]
    assert title_and_body[3].startswith("-rf is not an option here") and len(title_and_body[3]) == MAX_BODY
    assert notifier.shown == 1


def test_failures_and_a_missing_program_are_ignored(tmp_path):
    failing = fake_notify_send(tmp_path, "exit 3\n")
    notifier = Notifier(True, which=lambda name: str(failing))
    assert notifier.notify("t", "b")
    wait_idle(notifier)
    assert notifier.notify("t", "again")  # the failure released it
    wait_idle(notifier)
    gone = Notifier(True, which=lambda name: str(tmp_path / "deleted-meanwhile"))
    assert gone.notify("t", "b")  # found at lookup, gone at launch: the OSError is swallowed
    wait_idle(gone)
    assert not Notifier(True, which=lambda name: None).notify("t", "b")  # not on PATH: the caller rings the bell


def test_off_runs_nothing(tmp_path):
    out = tmp_path / "ran"
    program = fake_notify_send(tmp_path, f"touch {out}\n")
    notifier = Notifier(False, which=lambda name: str(program))
    assert not notifier.available() and not notifier.notify("t", "b")
    assert not out.exists() and notifier.shown == 0


def test_one_notification_at_a_time(tmp_path):
    gate = tmp_path / "gate"
    program = fake_notify_send(tmp_path, f"while [ ! -e {gate} ]; do sleep 0.01; done\n")
    notifier = Notifier(True, which=lambda name: str(program))
    assert notifier.notify("first", "b")
    assert not notifier.notify("second", "b")  # the first is still showing: no second process
    gate.touch()
    wait_idle(notifier)
    assert notifier.notify("third", "b")
    wait_idle(notifier)
