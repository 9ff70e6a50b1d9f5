"""Message features in rooms over the real wire: edit, delete (sender, moderator, administrator;
not a plain member), reactions, typing, pins (moderators; the room's info lists them), search
across rooms and private conversations without leaks, and a schema-1 rooms database upgraded."""

from __future__ import annotations

import sqlite3

import pytest

from chatcore.testing import FakeClock
from chatcore_chat.plugin import ChatPlugin
from chatcore_rooms import schema, store
from chatcore_rooms.plugin import RoomsPlugin

pytestmark = pytest.mark.usefixtures("backend")  # each test runs on SQLite and on PostgreSQL (conftest)


def code(reply: dict) -> str:
    assert reply["type"] == "error", reply
    return reply["code"]


def room_with(server, user, kit, *names):
    """alice owns #dev; the others joined it."""
    clients = [user(server, name) for name in ("alice", *names)]
    kit.ask(clients[0], "room_create", room="dev")
    for client in clients[1:]:
        kit.ask(client, "room_join", room="dev")
    kit.settle(server)
    for client in clients:
        client.sync()
    return clients


def test_edits_and_deletions_follow_the_room_roles(server, user, kit):
    alice, bob, carol = room_with(server, user, kit, "bob", "carol")
    outsider = user(server, "dave")
    seq = kit.post(bob, "dev", "deploy at 5 @carol")["seq"]
    carol.expect("room_message", seq=seq)
    edited = kit.ask(bob, "room_message_edit", room="dev", seq=seq, message="deploy at 6 @carol")
    assert edited["type"] == "room_message_edit_result" and edited["seq"] == seq
    event = carol.expect("message_edited")
    assert event == {"type": "message_edited", "room": "dev", "seq": seq, "sender": "bob",
                     "message": "deploy at 6 @carol", "edited": edited["edited"], "change_id": edited["change_id"]}
    assert "room_message" not in [m.get("type") for m in kit.settle(server, carol)]  # no new message, no mention
    item = kit.ask(carol, "room_history", room="dev")["messages"][-1]
    assert item["message"] == "deploy at 6 @carol" and item["edited"] == edited["edited"]
    assert code(kit.ask(carol, "room_message_edit", room="dev", seq=seq, message="mine now")) == "forbidden"
    assert code(kit.ask(outsider, "room_message_edit", room="dev", seq=seq, message="x")) == "not_member"
    assert code(kit.ask(bob, "room_message_edit", room="dev", seq=seq + 5, message="x")) == "unknown_message"
    # delete: a plain member may not delete another's message; the sender and a moderator may
    assert code(kit.ask(carol, "room_message_delete", room="dev", seq=seq)) == "forbidden"
    assert code(kit.ask(outsider, "room_message_delete", room="dev", seq=seq)) == "not_member"
    kit.ask(alice, "room_set_role", room="dev", user="carol", role="moderator")
    assert kit.ask(carol, "room_message_delete", room="dev", seq=seq)["type"] == "room_message_delete_result"
    assert bob.expect("message_deleted") == {"type": "message_deleted", "room": "dev", "seq": seq, "sender": "bob",
                                             "by": "carol", "change_id": 2}
    tomb = kit.ask(bob, "room_history", room="dev")["messages"][-1]
    assert tomb["deleted"] is True and tomb["message"] == "" and "mentions" not in tomb
    own = kit.post(bob, "dev", "oops")["seq"]
    assert kit.ask(bob, "room_message_delete", room="dev", seq=own)["type"] == "room_message_delete_result"
    other = kit.post(alice, "dev", "an owner's message")["seq"]
    for session in server.sessions.of_user("dave"):
        session.admin = True  # a server administrator, not a member
    assert kit.ask(outsider, "room_message_delete", room="dev", seq=other)["type"] == "room_message_delete_result"


def test_reactions_typing_and_pins(rooms_server, user, kit, login_as):
    clock = FakeClock()
    server = rooms_server(plugins=["auth", "rooms"], extra=[("chat", ChatPlugin(clock=clock))])
    alice, bob = room_with(server, user, kit, "bob")
    legacy = login_as(server, "bob", register=False)
    seq = kit.post(alice, "dev", "release checklist")["seq"]
    bob.expect("room_message")
    reacted = kit.ask(bob, "room_react", room="dev", seq=seq, emoji="✅")
    assert reacted["reactions"] == [{"emoji": "✅", "count": 1, "users": ["bob"]}]
    assert alice.expect("message_reactions")["reactions"] == reacted["reactions"]
    assert kit.ask(alice, "room_history", room="dev")["messages"][-1]["reactions"] == reacted["reactions"]
    assert code(kit.ask(bob, "room_react", room="dev", seq=seq, emoji="")) == "bad_request"
    # typing: members only, one event per interval, never to the typist's own sessions or legacy ones
    bob.send(command="room_typing", room="dev")
    assert alice.expect("typing") == {"type": "typing", "room": "dev", "sender": "bob", "expires_in": 6.0}
    bob.send(command="room_typing", room="dev")
    clock.advance(3)
    bob.send(command="room_typing", room="dev")
    alice.expect("typing")
    assert "typing" not in [m.get("type") for m in alice.sync() + bob.sync() + legacy.sync()]
    assert code(kit.ask(user(server, "eve"), "room_typing", room="dev")) == "not_member"
    # pins: moderators and the owner; the room's info lists them; room_pins gives the messages
    assert code(kit.ask(bob, "room_pin", room="dev", seq=seq)) == "forbidden"
    assert kit.ask(alice, "room_pin", room="dev", seq=seq) == {"type": "room_pin_result", "room": "dev", "seq": seq}
    event = bob.expect("room_event", kind="pinned")
    assert event["seq"] == seq and event["info"]["pins"] == [seq]
    pins = kit.ask(bob, "room_pins", room="dev")["messages"]
    assert [(p["seq"], p["message"], p["pinned_by"]) for p in pins] == [(seq, "release checklist", "alice")]
    listed = kit.ask(bob, "room_directory")["rooms"][0]
    assert listed["pins"] == [seq]
    assert kit.ask(alice, "room_unpin", room="dev", seq=seq)["type"] == "room_unpin_result"
    assert "pins" not in bob.expect("room_event", kind="unpinned")["info"]


def test_pins_are_limited_and_survive_a_restart(rooms_server, user, kit, tmp_path):
    server = rooms_server(env={"CHATCORE_ROOMS_MAX_PINS": "1"})
    alice, = room_with(server, user, kit)
    first, second = (kit.post(alice, "dev", text)["seq"] for text in ("one", "two"))
    kit.ask(alice, "room_pin", room="dev", seq=first)
    assert code(kit.ask(alice, "room_pin", room="dev", seq=second)) == "too_many_pins"
    server.stop()
    again = rooms_server(env={"CHATCORE_ROOMS_MAX_PINS": "1"})
    alice = user(again, "alice", register=False)
    assert kit.ask(alice, "room_directory")["rooms"][0]["pins"] == [first]
    kit.ask(alice, "room_message_delete", room="dev", seq=first)  # deleting a pinned message unpins it
    assert kit.ask(alice, "room_pins", room="dev")["messages"] == []


def test_search_spans_rooms_and_conversations_but_never_leaks(rooms_server, user, kit):
    clock = FakeClock()  # one clock for both stores: the merge orders rooms' and chat's hits by time
    server = rooms_server(plugins=["auth"], extra=[("chat", ChatPlugin(clock=clock)), ("rooms", RoomsPlugin(clock=clock))])
    alice, bob = room_with(server, user, kit, "bob")
    carol = user(server, "carol")
    kit.ask(carol, "room_create", room="secret", private=True)
    kit.post(carol, "secret", "budget numbers for the board")
    clock.advance(1)
    kit.post(alice, "dev", "budget review on friday")
    clock.advance(1)
    alice.send(command="chat", peer="bob", message="budget draft attached")
    alice.expect("chat_ack")
    clock.advance(1)
    kit.ask(bob, "room_create", room="late", history="joined")
    kit.post(bob, "late", "budget before alice joined")
    kit.ask(alice, "room_join", room="late")
    clock.advance(1)
    kit.post(bob, "late", "budget after alice joined")
    found = kit.ask(alice, "search", query="budget")["results"]
    assert [(r.get("room"), r["message"]) for r in found] == [
        ("late", "budget after alice joined"), (None, "budget draft attached"), ("dev", "budget review on friday")]
    assert found[0]["seq"] == 2 and found[0]["marks"] == [[0, 6]]
    assert [r["message"] for r in kit.ask(carol, "search", query="budget")["results"]] == ["budget numbers for the board"]
    page = kit.ask(alice, "search", query="budget", limit=1)
    rest = kit.ask(alice, "search", query="budget", before=page["next_before"], limit=5)
    assert [r["message"] for r in page["results"] + rest["results"]] == [r["message"] for r in found]
    assert "dev" in [r.get("room") for r in kit.ask(bob, "search", query="budget")["results"]]
    kit.ask(bob, "room_leave", room="dev")  # a room one left is no longer searched
    assert [r.get("room") for r in kit.ask(bob, "search", query="budget")["results"]] == ["late", "late", None]
    kit.ask(bob, "room_message_edit", room="late", seq=2, message="forecast after alice joined")
    assert [r.get("room") for r in kit.ask(alice, "search", query="budget")["results"]] == [None, "dev"]
    assert kit.ask(alice, "search", query="forecast")["results"][0]["edited"]


def test_a_removed_account_leaves_no_reaction_pin_or_searchable_word(server, user, kit):
    from chatcore.admin import admin_request

    alice, bob = room_with(server, user, kit, "bob")
    by_bob = kit.post(bob, "dev", "bob's unique zebra plan")["seq"]
    by_alice = kit.post(alice, "dev", "alice's note")["seq"]
    kit.ask(alice, "room_pin", room="dev", seq=by_bob)
    kit.ask(bob, "room_react", room="dev", seq=by_alice, emoji="🦓")
    alice.send(command="chat", peer="", message="everyone: zebra")
    alice.expect("chat_ack")
    global_id = next(r["id"] for r in kit.ask(bob, "search", query="zebra")["results"] if "room" not in r)
    kit.ask(bob, "message_react", peer="", id=global_id, emoji="🦓")
    assert admin_request(server.data_dir, {"command": "remove_user", "username": "bob"})["ok"]
    assert kit.ask(alice, "room_pins", room="dev")["messages"] == []
    assert "pins" not in kit.ask(alice, "room_directory")["rooms"][0]
    assert "reactions" not in kit.ask(alice, "room_history", room="dev")["messages"][-1]
    assert [r.get("room") for r in kit.ask(alice, "search", query="zebra")["results"]] == [None]
    alice.send(command="get_history", peer="")
    assert "reactions" not in alice.expect("get_history")["messages"][-1]


@pytest.mark.sqlite_only
def test_a_schema_1_rooms_database_is_upgraded_and_searchable(tmp_path):
    path = tmp_path / schema.FILENAME
    old = sqlite3.connect(path)
    old.executescript(schema.SCHEMA + "PRAGMA user_version=1;")
    old.execute("INSERT INTO rooms (key, name, topic, private, history, created_by, created_ts, last_seq) "
                "VALUES ('dev', 'dev', '', 0, 'shared', 'alice', 1, 1)")
    old.execute("INSERT INTO messages (room_id, seq, sender, sender_key, ts, body, mentions, everyone) "
                "VALUES (1, 1, 'alice', 'alice', 1, 'kept from before', '', 0)")
    old.commit()
    old.close()
    conn = sqlite3.connect(path, isolation_level=None)
    schema.create_schema(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 4
    assert conn.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'before'").fetchall() == [(1,)]
    assert store.load(conn)["dev"].pins == []
    conn.close()
