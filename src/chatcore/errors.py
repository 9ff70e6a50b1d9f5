"""The one error a handler raises to refuse a request: ``CommandError``. A leaf module (it
imports nothing of chatcore), so plugins' service layers can raise it without the server."""

from __future__ import annotations

from typing import Any


class CommandError(Exception):
    """Raised by a handler to answer ``error`` {command, code, reason, **extra}; the session goes on.

    ``extra`` adds fields a client can act on (``retry_after``, ``offset``, ``max_size``).
    """

    def __init__(self, code: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.extra = extra


__all__ = ["CommandError"]
