"""``configure_logger``: root records go through a queue to one stream handler.

Handlers that write to a terminal or file can block; the queue keeps that off the
connection threads. Call it once at each entry point.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
from typing import Any, Mapping, Optional

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
SECRET_FIELDS = frozenset({"password", "old", "new", "token"})
CREDENTIAL_COMMANDS = frozenset({"login", "register"})  # a password typed as the username must not leak

_listener: Optional[logging.handlers.QueueListener] = None


def configure_logger(level: str | int = "INFO") -> logging.handlers.QueueListener:
    """Route the root logger through a QueueHandler to a QueueListener feeding a StreamHandler."""
    global _listener
    root = logging.getLogger()
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if _listener is not None:
        return _listener
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    stream = logging.StreamHandler()
    stream.setFormatter(logging.Formatter(FORMAT))
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.handlers.QueueHandler(records))
    _listener = logging.handlers.QueueListener(records, stream, respect_handler_level=True)
    _listener.start()
    atexit.register(stop_logger)
    return _listener


def stop_logger() -> None:
    """Flush and stop the listener (registered with atexit)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def redact(message: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a message safe for DEBUG logs: secret fields replaced, long strings cut."""
    secret = SECRET_FIELDS | {"username"} if message.get("command") in CREDENTIAL_COMMANDS else SECRET_FIELDS
    safe: dict[str, Any] = {}
    for key, value in message.items():
        if key in secret:
            safe[key] = "***"
        elif isinstance(value, str) and len(value) > 200:
            safe[key] = value[:200] + f"...({len(value)} chars)"
        else:
            safe[key] = value
    return safe
