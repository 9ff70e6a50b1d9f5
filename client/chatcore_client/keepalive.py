"""Keep-alive pings: three per server idle timeout, so a client with nothing to say is not closed
for silence; the pongs are counted (for the status and tests). No Tk here: the scheduler is
anything with Tk's ``after``/``after_cancel`` (the app passes its root)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

from chatcore_client.connection import NotConnected

PINGS_PER_IDLE = 3  # keep-alive pings per server idle timeout
MIN_PING_MS = 100


class Scheduler(Protocol):
    """Runs a callable later on the UI thread (Tk's ``after`` and ``after_cancel``)."""

    def after(self, ms: int, func: Callable[..., Any], *args: Any) -> str: ...

    def after_cancel(self, job: str) -> None: ...


class KeepAlive:
    """Sends ``ping`` through ``send`` every idle timeout / 3 (``root.after``) until stopped or
    not connected."""

    def __init__(self, root: Scheduler, send: Callable[[dict[str, Any]], None]) -> None:
        self.root, self.send = root, send
        self.pongs = 0
        self._job: Optional[str] = None

    def start(self, idle_timeout: float) -> None:
        """(Re)start for a server that closes sessions silent for ``idle_timeout`` seconds (0: never)."""
        self.stop()
        if idle_timeout > 0:  # well inside the timeout: a ping may wait behind a file chunk or a slow network
            every = max(MIN_PING_MS, int(idle_timeout * 1000 / PINGS_PER_IDLE))
            self._job = self.root.after(every, self._tick, every)

    def _tick(self, every_ms: int) -> None:
        try:
            self.send({"command": "ping"})
        except NotConnected:
            self._job = None
            return
        self._job = self.root.after(every_ms, self._tick, every_ms)

    def pong(self, message: dict[str, Any]) -> None:
        self.pongs += 1

    def stop(self) -> None:
        if self._job is not None:
            self.root.after_cancel(self._job)
            self._job = None
