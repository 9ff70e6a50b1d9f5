"""Read markers and unread counts, synced across a user's devices: rooms and private conversations."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("backend")  # each test runs on SQLite and on PostgreSQL (conftest)


def code(reply: dict) -> str:
    assert reply["type"] == "error", reply
    return reply["code"]


def entry(listed: dict, room: str) -> dict:
    return next(r for r in listed["rooms"] if r["room"] == room)


def test_unread_counts_at_login(server, user, kit):
    alice, bob = user(server, "alice"), user(server, "bob")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(alice, "room_create", room="ops")
    kit.ask(bob, "room_join", room="dev")
    kit.ask(bob, "room_join", room="ops")
    bob.close()
    for i in range(5):
        kit.post(alice, "dev", f"dev {i}")
    kit.post(alice, "ops", "ops @bob")
    later = user(server, "bob", register=False)
    dev, ops = entry(later.room_list, "dev"), entry(later.room_list, "ops")
    assert (dev["unread"], dev["mentions"], dev["last_seq"], dev["read_seq"]) == (5, 0, 5, 0)
    assert (ops["unread"], ops["mentions"]) == (1, 1)
    assert "room_message" not in [m.get("type") for m in kit.settle(server, later)]  # no flood of old messages
    mine = entry(user(server, "alice", register=False).room_list, "dev")
    assert mine["unread"] == 0  # what one sends counts as read
    kit.post(later, "ops", "on it")  # replying reads the mention too
    assert entry(user(server, "bob", register=False).room_list, "ops")["mentions"] == 0


def test_a_read_marker_reaches_the_users_other_session(server, user, kit):
    alice, laptop = user(server, "alice"), user(server, "bob")
    desktop = user(server, "bob", register=False)
    kit.ask(alice, "room_create", room="dev")
    kit.ask(laptop, "room_join", room="dev")
    for i in range(3):
        kit.post(alice, "dev", f"hey @bob {i}")
    marked = kit.ask(laptop, "mark_read", room="dev", seq=2)
    assert marked == {"type": "mark_read_result", "room": "dev", "seq": 2, "unread": 1, "mentions": 1}
    assert desktop.expect("read_marker") == {"type": "read_marker", "room": "dev", "seq": 2, "unread": 1,
                                             "mentions": 1}
    assert "read_marker" not in [m.get("type") for m in kit.settle(server, laptop)]  # the reply, not an event too
    assert kit.ask(laptop, "mark_read", room="dev", seq=1)["seq"] == 2  # a marker never moves back
    assert kit.ask(laptop, "mark_read", room="dev", seq=99)["seq"] == 3  # nor past the newest message
    assert desktop.expect("read_marker", seq=3)["unread"] == 0
    phone = user(server, "bob", register=False)
    assert (entry(phone.room_list, "dev")["unread"], entry(phone.room_list, "dev")["mentions"]) == (0, 0)
    assert code(kit.ask(user(server, "carol"), "mark_read", room="dev", seq=1)) == "not_member"


def test_private_conversations_have_read_markers_and_unread_counts(server, user, kit, register):
    alice, bob = user(server, "alice"), user(server, "bob")
    bob.close()
    ids = [alice.request({"command": "chat", "peer": "bob", "message": f"psst {i}"}, reply="chat_ack")["id"]
           for i in range(3)]
    laptop = user(server, "bob", register=False)  # gets the three as offline messages, and the count
    assert laptop.room_list["private"] == [{"peer": "alice", "id": ids[0] - 1, "unread": 3}]
    assert laptop.room_list["as_of"] == ids[-1]
    desktop = user(server, "bob", register=False)
    assert desktop.room_list["private"][0]["unread"] == 3  # a later device knows too
    marked = kit.ask(laptop, "mark_read", peer="ALICE", id=ids[1])
    assert (marked["peer"], marked["id"], marked["unread"], marked["as_of"]) == ("alice", ids[1], 1, ids[-1])
    event = desktop.expect("read_marker")
    assert (event["peer"], event["id"], event["unread"]) == ("alice", ids[1], 1)
    kit.ask(laptop, "mark_read", peer="alice", id=ids[2])
    assert user(server, "bob", register=False).room_list["private"] == []  # nothing unread: not listed
    assert code(kit.ask(laptop, "mark_read", peer="nobody", id=1)) == "unknown_user"


def test_own_messages_and_replies_do_not_count_as_unread(server, user, kit):
    alice, bob = user(server, "alice"), user(server, "bob")
    bob.request({"command": "chat", "peer": "alice", "message": "hi"}, reply="chat_ack")
    alice.request({"command": "chat", "peer": "bob", "message": "hello back"}, reply="chat_ack")
    kit.settle(server)
    again = user(server, "alice", register=False)
    assert [(p["peer"], p["unread"]) for p in again.room_list["private"]] == [("bob", 1)]
    assert [(p["peer"], p["unread"]) for p in user(server, "bob", register=False).room_list["private"]] == [("alice", 1)]
