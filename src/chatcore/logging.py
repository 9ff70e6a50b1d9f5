"""``configure_logger``: root records go through a queue to one stream handler.

Handlers that write to a terminal or file can block; the queue keeps that off the
reactor and the workers. Call it once at each entry point. Two formats (``CHATCORE_LOG_FORMAT``):
``text``, a line for people, and ``json``, one JSON object per line for log shippers
(journald, Vector, Fluent Bit, Loki): {``time`` (ISO 8601 UTC, milliseconds), ``level``,
``logger``, ``message``, ``thread``, ``exception`` (the traceback, or null)}.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import logging.handlers
import queue
import time
from typing import Any, Mapping, Optional

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
FORMATS = ("text", "json")
SECRET_PARTS = ("pass", "pwd", "secret", "token", "key", "cred")  # any field whose name contains one
SECRET_FIELDS = frozenset({"old", "new"})  # change_password's passwords
# Requests that carry credentials: everything but these fields is hidden, whatever it is called
# (a password typed into the username box, or sent under a misspelled name such as ``passwd``).
CREDENTIAL_COMMANDS = frozenset({"login", "register", "change_password"})
NAMING_FIELDS = frozenset({"command", "type", "client_id"})
MAX_SHOWN = 200  # characters of a string value shown

_listener: Optional[logging.handlers.QueueListener] = None


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback's newlines are escaped in it)."""

    def format(self, record: logging.LogRecord) -> str:
        exception = record.exc_text or None
        if record.exc_info:
            exception = self.formatException(record.exc_info)
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            "thread": record.threadName, "exception": exception,
        }
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def formatter(fmt: str = "text") -> logging.Formatter:
    """The formatter of a CHATCORE_LOG_FORMAT value (``text`` or ``json``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; known: {', '.join(FORMATS)}")
    return JsonFormatter() if fmt == "json" else logging.Formatter(FORMAT)


class _Handoff(logging.handlers.QueueHandler):
    """Queues a copy of each record with its message merged and its traceback as text, so the
    listener's formatter still tells message and exception apart (the stock QueueHandler glues
    the traceback onto the message)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        prepared = copy.copy(record)
        prepared.msg, prepared.args = record.getMessage(), None
        if record.exc_info and not record.exc_text:
            prepared.exc_text = logging.Formatter().formatException(record.exc_info)
        prepared.exc_info = None
        return prepared


def configure_logger(level: str | int = "INFO", fmt: str = "text") -> logging.handlers.QueueListener:
    """Route the root logger through a QueueHandler to a QueueListener feeding a StreamHandler
    that writes ``fmt`` (``text`` or ``json``)."""
    global _listener
    root = logging.getLogger()
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if _listener is not None:
        return _listener
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    stream = logging.StreamHandler()
    stream.setFormatter(formatter(fmt))
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_Handoff(records))
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


def is_secret_field(name: str) -> bool:
    """Whether a field's name says it holds a secret (password, passwd, token, api_key, ...)."""
    folded = name.casefold()
    return folded in SECRET_FIELDS or any(part in folded for part in SECRET_PARTS)


def redact(message: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a request safe for DEBUG logs: secret fields replaced by field name at any
    depth, and for credential requests (named by ``command`` or ``type``) every field but
    the ones naming the request; long strings cut."""
    name = message.get("command", message.get("type"))
    if isinstance(name, str) and name in CREDENTIAL_COMMANDS:
        return {key: _shown(value) if key in NAMING_FIELDS else "***" for key, value in message.items()}
    return dict(_redacted(message))


def _redacted(value: Any, depth: int = 0) -> Any:
    if isinstance(value, Mapping):
        if depth > 8:
            return "{...}"
        return {key: "***" if isinstance(key, str) and is_secret_field(key) else _redacted(item, depth + 1)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item, depth + 1) for item in value[:20]] + (["..."] if len(value) > 20 else [])
    return _shown(value)


def _shown(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_SHOWN:
        return value[:MAX_SHOWN] + f"...({len(value)} chars)"
    return value
