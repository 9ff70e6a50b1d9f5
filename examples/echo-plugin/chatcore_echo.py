"""A complete third-party chatcore plugin: ``echo`` sends a text back, upper-cased if asked.

Install it next to chatcore (``pip install ./examples/echo-plugin``) and it loads as the
plugin ``echo``; disable it with ``CHATCORE_DISABLE_PLUGINS=echo``.
"""

from __future__ import annotations

from typing import Any, Callable

from chatcore import CommandError, Setting, hookimpl

SHOUT = Setting("CHATCORE_ECHO_SHOUT", False, "Upper-case every echo.", bool)


class EchoPlugin:
    """One instance per server, so its settings live on the instance."""

    def __init__(self) -> None:
        self.shout = False

    @hookimpl
    def chat_settings(self) -> list[Setting]:
        return [SHOUT]

    @hookimpl
    def chat_configure(self, server: Any) -> None:
        self.shout = server.config.get(SHOUT)

    @hookimpl
    def chat_register_commands(self, register: Callable[..., Any]) -> None:
        register("echo", self.echo, auth=False, fields={"text": str})

    def echo(self, session: Any, message: dict[str, Any]) -> dict[str, Any]:
        text = message["text"]
        if len(text) > 1000:
            raise CommandError("too_long", "echo takes at most 1000 characters")
        return {"type": "echo", "text": text.upper() if self.shout else text}
