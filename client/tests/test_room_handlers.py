"""The rooms handlers with a fake view: badges from the login room list, live messages and
mentions, read markers from other devices, no double count of private messages the list
already counted, membership events, and what they send."""

from __future__ import annotations

from typing import Any

import pytest

from chatcore_client.handlers import Context, Dispatcher
from chatcore_client.handlers.auth import AuthHandlers
from chatcore_client.handlers.chat import ChatHandlers
from chatcore_client.handlers.core import CoreHandlers
from chatcore_client.handlers.rooms import RoomHandlers
from chatcore_client.state import ROOM, AppState
from chatcore_client.transfers import Transfers

HELLO = {"type": "hello", "plugins": ["auth", "chat", "rooms"],
         "commands": ["hello", "login", "chat", "get_history", "room_message", "room_history", "mark_read"]}
DEV = {"room": "dev", "topic": "ship it", "private": False, "history": "shared", "members": 2, "last_seq": 3,
       "role": "member", "read_seq": 1, "unread": 2, "mentions": 1}


class FakeView:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))


class Harness:
    def __init__(self) -> None:
        self.view = FakeView()
        self.sent: list[dict[str, Any]] = []
        self.state = AppState()
        self.ctx = Context(self.state, self.view, self.sent.append, Transfers(self.sent.append), lambda fn: fn())
        self.dispatcher = Dispatcher(self.view)
        self.auth, self.chat, self.rooms = AuthHandlers(self.ctx), ChatHandlers(self.ctx), RoomHandlers(self.ctx)
        self.chat.rooms = self.rooms
        for handlers in (CoreHandlers(self.ctx), self.auth, self.chat, self.rooms):
            handlers.register(self.dispatcher)
        self.mentions: list[str] = []
        self.rooms.mentioned = lambda key, line: self.mentions.append(key)

    def feed(self, **message: Any) -> None:
        self.dispatcher.dispatch(message)

    def login(self, rooms: list[dict[str, Any]] = (), private: list[dict[str, Any]] = (), as_of: int = 0) -> None:
        self.feed(**HELLO)
        self.auth.login("alice", "pw")
        self.feed(type="login_result", username="alice", response="ok")
        self.feed(type="room_list", rooms=list(rooms), private=list(private), invites=[], as_of=as_of, final=True)


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_the_login_room_list_sets_badges_and_live_messages_add_to_them(h):
    h.login([DEV])
    dev = h.state.conversations["#dev"]
    assert (dev.unread, dev.mentions, dev.room["topic"], dev.last_seq) == (2, 1, "ship it", 3)
    assert [c.key for c in h.state.ordered()][:2] == [ROOM, "#dev"]
    h.feed(type="room_message", room="dev", seq=3, sender="bob", ts="", message="already counted")
    assert dev.unread == 2  # seq 3 is in the list's count
    h.feed(type="room_message", room="dev", seq=4, sender="bob", ts="", message="@alice look", mentions=["alice"])
    assert (dev.unread, dev.mentions, h.mentions) == (3, 2, ["#dev"])
    h.feed(type="room_message", room="dev", seq=5, sender="alice", ts="", message="from my phone")
    assert (dev.unread, dev.mentions) == (0, 0)  # what this user sends anywhere counts as read


def test_opening_a_room_clears_it_and_tells_the_server(h):
    h.login([DEV])
    h.rooms.open("#dev")
    assert {"command": "mark_read", "room": "dev", "seq": 3} in h.sent
    assert {"command": "room_history", "room": "dev", "limit": 50} in h.sent
    assert h.state.conversations["#dev"].unread == 0
    h.feed(type="room_history", room="dev", messages=[{"seq": 2, "sender": "bob", "ts": "", "message": "x"},
                                                      {"seq": 3, "sender": "bob", "ts": "", "message": "y"}],
           has_more=True, next_before=2)
    assert h.rooms.load_older("#dev") and h.sent[-1] == {"command": "room_history", "room": "dev", "limit": 50,
                                                         "before": 2}
    h.chat.send_text("hello room")
    assert h.sent[-1]["command"] == "room_message" and h.sent[-1]["room"] == "dev"


def test_a_read_marker_from_another_device_sets_the_badges(h):
    h.login([DEV], private=[{"peer": "bob", "id": 7, "unread": 4}], as_of=11)
    assert h.state.conversations["bob"].unread == 4
    h.feed(type="read_marker", room="dev", seq=3, unread=0, mentions=0)
    assert (h.state.conversations["#dev"].unread, h.state.conversations["#dev"].mentions) == (0, 0)
    h.feed(type="read_marker", peer="bob", id=11, unread=0, as_of=11)
    assert h.state.conversations["bob"].unread == 0


def test_private_messages_the_room_list_counted_are_not_counted_again(h):
    h.login(private=[{"peer": "bob", "id": 7, "unread": 2}], as_of=9)
    for id_ in (8, 9):  # the offline backlog after the list: already in its count
        h.feed(type="private_message", peer="bob", to="alice", id=id_, ts="", message="m", offline=True)
    assert h.state.conversations["bob"].unread == 2
    h.feed(type="private_message", peer="bob", to="alice", id=10, ts="", message="new")
    assert h.state.conversations["bob"].unread == 3
    h.chat.open("bob")
    h.feed(type="get_history", peer="bob", messages=[{"id": 10, "sender": "bob", "to": "alice", "ts": "",
                                                      "message": "new"}], has_more=False)
    assert h.sent[-1] == {"command": "mark_read", "peer": "bob", "id": 10}  # read here: cleared everywhere


def test_membership_events(h):
    h.login([DEV])
    h.feed(type="room_event", room="dev", kind="joined", by="carol", user="carol", role="member",
           info={**DEV, "members": 3})
    dev = h.state.conversations["#dev"]
    assert dev.room["members"] == 3 and "carol joined" in dev.lines[-1].text
    h.feed(type="room_event", room="dev", kind="role", by="bob", user="alice", role="moderator", info=DEV)
    assert dev.room["role"] == "moderator"
    h.feed(type="room_event", room="dev", kind="kicked", by="bob", user="alice", reason="oops", info=DEV)
    assert "#dev" not in h.state.conversations
    assert "kicked by bob (oops)" in h.state.conversations[ROOM].lines[-1].text
    h.feed(type="room_event", room="ops", kind="joined", by="alice", user="alice", role="owner",
           info={**DEV, "room": "ops"})  # joined on another device
    assert h.state.conversations["#ops"].room["role"] == "owner"


def test_the_room_change_cursor_is_its_own_and_named_on_a_token_reconnect(h):
    from chatcore_client.handlers import Credentials
    from chatcore_client.handlers.features import FeatureHandlers
    FeatureHandlers(h.ctx).register(h.dispatcher)
    h.login([DEV])
    h.feed(type="room_history", room="dev", messages=[{"seq": 3, "sender": "bob", "ts": "", "message": "hi"}],
           has_more=False, last_change_id=4)
    h.feed(type="message_edited", room="dev", seq=3, sender="bob", message="hi!", edited="x", change_id=6)
    h.feed(type="message_edited", id=9, sender="bob", to="", message="x", edited="x", change_id=2)  # chat's own
    assert (h.state.newest_room_change_id, h.state.newest_change_id) == (6, 2)
    h.auth.resume(Credentials("alice", token="t0k3n"))
    assert h.sent[-1]["room_changes_since"] == 6 and h.state.room_replaying
    h.feed(type="message_deleted", room="dev", seq=3, sender="bob", by="bob", change_id=8, replayed=True)
    assert h.state.conversations["#dev"].find(3).deleted and h.state.newest_room_change_id == 6
    h.feed(type="room_changes_done", complete=True, last_change_id=11)
    assert h.state.newest_room_change_id == 11 and not h.state.room_replaying
