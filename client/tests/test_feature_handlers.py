"""The message-feature handlers with a fake view: "is typing" expiring by itself on an injected
clock (never sticking), the client's own typing notices spaced out, edits, deletions and
reactions changing the shown line in place (chat and rooms), and what the commands send."""

from __future__ import annotations

from typing import Any

from chatcore.testing import FakeClock
from chatcore_client.handlers import Context, Dispatcher
from chatcore_client.handlers.features import FeatureHandlers
from chatcore_client.state import ROOM, AppState, Line
from chatcore_client.transfers import Transfers
from chatcore_client.typing import Typing, label


class FakeView:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))


def harness(clock: FakeClock) -> tuple[FeatureHandlers, Dispatcher, list[dict[str, Any]], AppState, FakeView]:
    view, sent, state = FakeView(), [], AppState(user="alice")
    ctx = Context(state, view, sent.append, Transfers(sent.append), lambda fn: fn())
    dispatcher = Dispatcher(view)
    features = FeatureHandlers(ctx, Typing(clock))
    features.register(dispatcher)
    return features, dispatcher, sent, state, view


def test_typing_expires_on_the_receiving_side_and_never_sticks():
    clock = FakeClock()
    features, dispatcher, _, _, view = harness(clock)
    dispatcher.dispatch({"type": "typing", "sender": "bob", "to": "alice", "expires_in": 6.0})
    dispatcher.dispatch({"type": "typing", "room": "dev", "sender": "carol", "expires_in": 6.0})
    assert features.typing.who("bob") == ["bob"] and features.typing.who("#dev") == ["carol"]
    assert ("typing_changed", ("bob",)) in view.calls
    clock.advance(5.9)
    dispatcher.dispatch({"type": "typing", "sender": "dave", "to": "", "expires_in": 6.0})
    assert label(features.typing.who(ROOM)) == "dave is typing…"
    assert features.typing.who("bob") == ["bob"]
    clock.advance(0.2)  # no "stopped typing" ever comes: the entry simply runs out
    assert features.typing.who("bob") == [] and features.typing.who("#dev") == []
    assert features.typing.who(ROOM) == ["dave"]
    features.typing.stopped(ROOM, "dave")  # dave's message arrived
    assert features.typing.who(ROOM) == []
    assert label(["a", "b"]) == "a and b are typing…" and label(["a", "b", "c"]) == "3 people are typing…"


def test_own_typing_notices_are_spaced_out():
    clock = FakeClock()
    features, _, sent, _, _ = harness(clock)
    for _ in range(5):
        features.typed("bob")
    clock.advance(2.0)
    features.typed("bob")
    features.typed("#dev")
    assert sent == [{"command": "typing", "peer": "bob"}, {"command": "typing", "peer": "bob"},
                    {"command": "room_typing", "room": "dev"}]


def test_edits_deletions_and_reactions_change_the_shown_line():
    features, dispatcher, sent, state, view = harness(FakeClock())
    state.conversation("bob").append(Line("bob", "hi", "", 7))
    state.conversation(ROOM).append(Line("alice", "mine", "", 8, own=True))
    state.conversation("#dev").append(Line("carol", "seq five", "", 5))
    dispatcher.dispatch({"type": "message_edited", "id": 7, "sender": "bob", "to": "alice", "message": "hello",
                         "edited": "2026-01-01T00:00:00.000Z"})
    assert state.conversation("bob").find(7) == Line("bob", "hello", "", 7, edited=True)
    dispatcher.dispatch({"type": "message_reactions", "room": "dev", "seq": 5, "sender": "carol",
                         "reactions": [{"emoji": "👍", "count": 2, "users": ["bob", "ALICE"]}]})
    assert state.conversation("#dev").find(5).reactions == (("👍", 2, True),)
    features.react("#dev", 5, "👍")  # alice reacted already: the same emoji takes it back
    assert sent[-1] == {"command": "room_react", "room": "dev", "seq": 5, "emoji": "👍", "remove": True}
    features.edit(ROOM, 8, "mine, fixed")
    assert sent[-1] == {"command": "message_edit", "peer": "", "id": 8, "message": "mine, fixed"}
    dispatcher.dispatch({"type": "message_edit_result", "id": 8, "edited": "2026-01-01T00:00:00.000Z"})
    assert state.conversation(ROOM).find(8).text == "mine, fixed"
    features.delete(ROOM, 8)
    dispatcher.dispatch({"type": "message_delete_result", "id": 8})
    assert state.conversation(ROOM).find(8).deleted
    assert features.last_own(ROOM) is None  # a deleted message is not offered for editing
    assert [name for name, _ in view.calls].count("line_changed") == 4
    dispatcher.dispatch({"type": "error", "command": "message_edit", "code": "forbidden", "reason": "not yours"})
    assert "not yours" in state.conversation(ROOM).lines[-1].text


def test_a_reloaded_history_page_redraws_what_changed_while_away():
    from chatcore_client.handlers.chat import ChatHandlers

    features, dispatcher, sent, state, view = harness(FakeClock())
    chat = ChatHandlers(features.ctx)
    chat.register(dispatcher)
    dispatcher.dispatch({"type": "get_history", "peer": "bob", "has_more": False, "messages": [
        {"id": 3, "sender": "bob", "to": "alice", "ts": "", "message": "v1"},
        {"id": 4, "sender": "bob", "to": "alice", "ts": "", "message": "gone soon"}]})
    dispatcher.dispatch({"type": "get_history", "peer": "bob", "has_more": False, "messages": [  # after a reconnect
        {"id": 3, "sender": "bob", "to": "alice", "ts": "", "message": "v2", "edited": "2026-01-01T00:00:00.000Z",
         "reactions": [{"emoji": "🎉", "count": 1, "users": ["alice"]}]},
        {"id": 4, "sender": "bob", "to": "alice", "ts": "", "message": "", "deleted": True}]})
    bob = state.conversation("bob")
    assert [(line.text, line.edited, line.deleted, line.reactions) for line in bob.lines] == [
        ("v2", True, False, (("🎉", 1, True),)), ("", False, True, ())]
    assert [name for name, _ in view.calls].count("line_changed") == 2
