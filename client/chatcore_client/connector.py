"""Connecting off the UI thread, and reconnecting with backoff; no Tk here.

A TLS handshake and the first-contact trust question can take long, so connections open in a
worker thread whose outcome is posted back to the UI thread. The trust question itself is
asked on the UI thread while the worker waits, and the wait ends if the app quits first.
Reconnect attempts are spaced by a ``Backoff`` through an injectable timer (Tk's ``after`` in
the app, anything in tests).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from chatcore_client.backoff import Backoff
from chatcore_client.connection import ConnectError, Connection, open_connection
from chatcore_client.pinning import PinError, server_key

log = logging.getLogger(__name__)

TRUST_POLL = 0.25  # seconds between checks, while the trust question waits, that the app is not quitting
Post = Callable[[Callable[[], None]], None]  # run a callable on the UI thread soon
Timer = Callable[[float, Callable[[], None]], Any]  # run a callable on the UI thread after some seconds
Reply = Callable[[bool], None]


class Connector:
    """Opens connections in a worker thread and schedules reconnects; ``closing()`` says the app quits."""

    def __init__(self, post: Post, timer: Timer, closing: Callable[[], bool],
                 opener: Callable[..., Connection] = open_connection) -> None:
        self._post, self._timer, self._closing, self._opener = post, timer, closing, opener
        self.backoff = Backoff()
        self.reconnecting = False  # a connection was lost and attempts to get it back are under way

    def open(self, host: str, port: int, connected: Callable[[Connection], None],
             failed: Callable[[str], None], **options: Any) -> threading.Thread:
        """Connect to ``host:port`` in a worker thread (``options`` go to ``open_connection``:
        pins, ask, tls, ca_context); ``connected`` or ``failed`` runs on the UI thread."""
        def work() -> None:
            try:
                conn = self._opener(host, port, **options)
            except (ConnectError, PinError) as exc:
                message = str(exc)
                self._post(lambda: failed(message))
            except Exception as exc:  # anything else is still the user's to see, not a silent thread death
                log.exception("connecting to %s failed", server_key(host, port))
                message = f"Could not connect to {server_key(host, port)}: {exc}"
                self._post(lambda: failed(message))
            else:
                self._post(lambda: connected(conn))

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
