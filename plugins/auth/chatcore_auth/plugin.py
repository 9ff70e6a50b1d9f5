"""Hook implementations of the ``auth`` plugin (its behaviour arrives with its own issue)."""

from __future__ import annotations

from typing import Any, Callable

from chatcore import hookimpl

NAME = "auth"


class AuthPlugin:
    """Accounts, login and presence; one instance per server."""

    @hookimpl
    def chat_register_commands(self, register: Callable[..., Any]) -> None:
        """Nothing yet: the plugin only registers itself."""
