"""Desktop notifications through ``notify-send`` (libnotify), for a mention while the window is
not focused. No Tk: the app decides when; this module only shows one.

``notify-send`` is looked up on ``PATH`` at each call (installing it needs no restart). It runs
in a worker thread, so a slow or hung notification daemon never blocks the Tk thread; it is
given ``TIMEOUT`` seconds, and every failure (not found, a non-zero exit, a timeout) is logged
at debug level and otherwise ignored: the window title still says what happened. One runs at a
time: a mention arriving while the previous notification is still being shown gets none (the
title and the badge carry it), so a burst of mentions cannot start a burst of processes.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from typing import Callable, Optional

log = logging.getLogger(__name__)

COMMAND = "notify-send"
TIMEOUT = 10.0  # seconds one notify-send may take before it is killed
MAX_BODY = 200  # characters of the message shown in the notification


class Notifier:
    """Shows desktop notifications when enabled and ``notify-send`` is on ``PATH``."""

    def __init__(self, enabled: bool = True, which: Callable[[str], Optional[str]] = shutil.which) -> None:
        self.enabled = enabled
        self._which = which
        self._busy = threading.Lock()  # held while one notify-send runs
        self.shown = 0  # notifications launched (for the curious and the tests)

    def available(self) -> bool:
        """Whether a notification would be shown now (enabled, and notify-send found)."""
        return self.enabled and self._which(COMMAND) is not None

    def notify(self, title: str, body: str) -> bool:
        """Start showing a notification; True when one was launched (returns at once)."""
        if not self.enabled:
            return False
        program = self._which(COMMAND)
        if program is None or not self._busy.acquire(blocking=False):
            return False
        if len(body) > MAX_BODY:
            body = body[:MAX_BODY - 1] + "…"
        argv = [program, "--app-name=chatcore", "--", title, body]
        try:
            threading.Thread(target=self._run, args=(argv,), name="notify-send", daemon=True).start()
        except RuntimeError:  # no thread could be started: no notification, nothing else lost
            self._busy.release()
            return False
        self.shown += 1
        return True

    def _run(self, argv: list[str]) -> None:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=TIMEOUT, check=False)
            if done.returncode:
                log.debug("%s exited with status %d", COMMAND, done.returncode)
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("%s failed: %s", COMMAND, exc)
        finally:
            self._busy.release()
