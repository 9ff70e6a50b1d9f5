"""The moderation handlers with a fake view: announcements, the administrator flag from
login_result and admin_changed, and what the Admin window's actions send."""

from __future__ import annotations

from typing import Any

from chatcore_client.handlers import Context, Dispatcher
from chatcore_client.handlers.admin import AdminHandlers
from chatcore_client.handlers.auth import AuthHandlers
from chatcore_client.handlers.core import CoreHandlers
from chatcore_client.state import ROOM, AppState
from chatcore_client.transfers import Transfers

HELLO = {"type": "hello", "plugins": ["auth"], "commands": ["login", "admin_announce", "admin_kick"]}


class FakeView:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for method, args in self.calls if method == name]


def harness() -> tuple[Dispatcher, AdminHandlers, FakeView, list[dict[str, Any]], AppState]:
    view, sent, state = FakeView(), [], AppState()
    ctx = Context(state, view, sent.append, Transfers(sent.append), lambda fn: fn())
    dispatcher = Dispatcher(view)
    admin = AdminHandlers(ctx)
    for handlers in (CoreHandlers(ctx), AuthHandlers(ctx), admin):
        handlers.register(dispatcher)
    dispatcher.dispatch(HELLO)
    return dispatcher, admin, view, sent, state


def test_an_announcement_is_a_banner_and_a_line_in_the_room():
    dispatcher, _, view, _, state = harness()
    dispatcher.dispatch({"type": "announcement", "text": "Back in 5", "by": "", "ts": "2026-01-01T00:00:00.000Z"})
    assert view.named("announcement") == [("Back in 5", "")]
    assert state.conversation(ROOM).lines[-1].text == "Announcement from the server: Back in 5"
    dispatcher.dispatch({"type": "announcement", "text": ""})  # nothing to show
    assert len(view.named("announcement")) == 1


def test_the_admin_flag_comes_from_the_server_and_gates_the_menu():
    dispatcher, admin, view, sent, state = harness()
    dispatcher.dispatch({"type": "login_result", "response": "ok", "username": "alice", "admin": True})
    assert state.admin and admin.available
    dispatcher.dispatch({"type": "admin_changed", "admin": False})
    assert not state.admin and view.named("admin_changed") == [(False,)]
    dispatcher.dispatch({"type": "admin_changed", "admin": True})
    assert view.named("admin_changed")[-1] == (True,)
    admin.announce("hello all")
    admin.kick("bob", "spam")
    admin.kick("carol")
    assert sent[-3:] == [{"command": "admin_announce", "text": "hello all"},
                         {"command": "admin_kick", "username": "bob", "reason": "spam"},
                         {"command": "admin_kick", "username": "carol"}]
    dispatcher.dispatch({"type": "error", "command": "admin_kick", "code": "not_admin",
                         "reason": "only server administrators may kick users"})
    assert view.named("show_error")[-1] == ("The server refused: only server administrators may kick users",)


def test_a_plain_login_is_no_administrator():
    dispatcher, admin, _, _, state = harness()
    dispatcher.dispatch({"type": "login_result", "response": "ok", "username": "bob"})
    assert not state.admin and not admin.available
