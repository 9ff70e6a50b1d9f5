"""Connecting off the UI thread, and reconnecting with backoff; no Tk here.

A TLS handshake and the first-contact trust question can take long, so connections open in a
worker thread whose outcome is posted back to the UI thread. The worker walks a server list
(a cluster's nodes) until one answers. The trust question itself is
asked on the UI thread while the worker waits, and the wait ends if the app quits first.
Reconnect attempts are spaced by a ``Backoff`` through an injectable timer (Tk's ``after`` in
the app, anything in tests).
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

from chatcore_client.backoff import Backoff
from chatcore_client.connection import ConnectError, Connection, DowngradeRefused, open_connection
from chatcore_client.pinning import PinError, server_key
from chatcore_client.servers import Address, rotation

log = logging.getLogger(__name__)

TRUST_POLL = 0.25  # seconds between checks, while the trust question waits, that the app is not quitting
Post = Callable[[Callable[[], None]], None]  # run a callable on the UI thread soon
Timer = Callable[[float, Callable[[], None]], Any]  # run a callable on the UI thread after some seconds
Reply = Callable[[bool], None]


@dataclass(frozen=True)
class Failed:
    """Why a walk through the server list connected nowhere: ``reason`` for the user, the index of
    the server tried last, and whether a server was refused (certificate, downgrade) rather than
    unreachable."""

    reason: str
    last_tried: int
    refused: bool = False
    error: Optional[Exception] = None  # the last attempt's exception (ConnectError or PinError)


def walk(servers: Sequence[Address], start: int, opener: Callable[..., Connection],
         trying: Optional[Callable[[int], None]] = None, **options: Any) -> Union[Connection, Failed]:
    """Try each of ``servers`` once from index ``start`` (wrapping), calling ``trying(index)``
    first, until one connects, or refuses (a changed or declined certificate, a downgrade: the
    walk stops there, as a single server's attempt would). Blocks: call it off the UI thread."""
    reasons: list[str] = []
    index, error = start, None
    for index in rotation(len(servers), start):
        if trying is not None:
            trying(index)
        host, port = servers[index]
        try:
            return opener(host, port, **options)
        except (PinError, DowngradeRefused) as exc:
            return Failed(str(exc), index, refused=True, error=exc)
        except ConnectError as exc:
            reasons.append(str(exc))
            error = exc
        except Exception as exc:  # still the user's to see, not a silent thread death
            log.exception("connecting to %s failed", server_key(host, port))
            reasons.append(f"Could not connect to {server_key(host, port)}: {exc}")
            error = ConnectError(reasons[-1])
    if len(reasons) == 1:
        return Failed(reasons[0], index, error=error)
    return Failed("No server answered:\n" + "\n".join(reasons) if reasons else "No server is given.", index,
                  error=error)


class Connector:
    """Opens connections in a worker thread and schedules reconnects; ``closing()`` says the app quits."""

    def __init__(self, post: Post, timer: Timer, closing: Callable[[], bool],
                 opener: Callable[..., Connection] = open_connection) -> None:
        self._post, self._timer, self._closing, self._opener = post, timer, closing, opener
        self.backoff = Backoff()
        self.reconnecting = False  # a connection was lost and attempts to get it back are under way

    def open(self, servers: Sequence[Address], connected: Callable[[Connection], None],
             failed: Callable[[Failed], None], *, start: int = 0,
             trying: Optional[Callable[[int], None]] = None, **options: Any) -> threading.Thread:
        """Connect in a worker thread to the first of ``servers`` that answers, trying each once
        from index ``start`` (wrapping). ``options`` go to ``open_connection`` (pins, pin_key, ask,
        tls, ca_context, timeout). On the UI thread: ``trying(index)`` before each attempt, then
        ``connected(connection)`` or ``failed(Failed)``. A refused certificate or downgrade ends the
        walk, as it ends a single server's attempt: a warning for the user, not a dead node."""
        def work() -> None:
            def announce(index: int) -> None:
                if trying is not None:
                    self._post(functools.partial(trying, index))

            outcome = walk(servers, start, self._opener, announce, **options)
            if isinstance(outcome, Failed):
                self._post(lambda: failed(outcome))
            else:
                self._post(lambda: connected(outcome))

        thread = threading.Thread(target=work, daemon=True, name="chatcore-client-connect")
        thread.start()
        return thread

    def ask(self, show: Callable[[Reply], None]) -> bool:
        """On a worker thread: have ``show(reply)`` ask the user on the UI thread and wait for the
        answer; False when the app quits first (before or while the question is shown)."""
        answered = threading.Event()
        answer = [False]

        def reply(trusted: bool) -> None:
            answer[0] = trusted
            answered.set()

        def show_unless_closing() -> None:
            if self._closing():
                answered.set()
            else:
                show(reply)

        self._post(show_unless_closing)
        while not answered.wait(TRUST_POLL):  # a quit before the question showed must not park this thread
            if self._closing():
                return False
        return answer[0]

    def retry_later(self, attempt: Callable[[], None]) -> float:
        """Schedule ``attempt`` after the next backoff delay; returns the delay in seconds."""
        self.reconnecting = True
        delay = self.backoff.next()
        self._timer(delay, attempt)
        return delay

    def succeeded(self) -> None:
        """Connected and logged in again: the next loss starts from the shortest delay."""
        self.backoff.reset()
        self.reconnecting = False

    def gave_up(self) -> None:
        """No more attempts (the user is asked to log in again)."""
        self.reconnecting = False


def tk_timer(widget: Any) -> Timer:
    """A Timer on Tk's ``after`` (milliseconds)."""
    def schedule(seconds: float, action: Callable[[], None]) -> Optional[str]:
        return str(widget.after(int(seconds * 1000), action))
    return schedule
