"""Room messages over the real wire: who gets them, their gapless per-room sequence, history
access, mentions, and that the global room and legacy clients are untouched."""

from __future__ import annotations

import threading

import pytest

pytestmark = pytest.mark.usefixtures("backend")  # each test runs on SQLite and on PostgreSQL (conftest)


def code(reply: dict) -> str:
    assert reply["type"] == "error", reply
    return reply["code"]


def test_a_message_goes_to_every_session_of_every_member_and_nobody_else(server, user, login_as, kit):
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    alice_phone = user(server, "alice", register=False)
    bob_legacy = login_as(server, "bob", register=False)  # no hello: legacy sessions get no room events
    kit.ask(alice, "room_create", room="dev")
    kit.ask(bob, "room_join", room="dev")
    ack = kit.post(alice, "dev", "standup in 5", client_id="c-1")
    assert ack["type"] == "room_ack" and ack["room"] == "dev" and ack["seq"] == 1 and ack["client_id"] == "c-1"
    expected = {"type": "room_message", "room": "dev", "seq": 1, "sender": "alice", "ts": ack["ts"],
                "message": "standup in 5"}
    assert bob.expect("room_message") == expected
    assert alice_phone.expect("room_message") == expected  # the sender's other devices stay in sync
    for client in (alice, carol, bob_legacy):  # not the sending connection, not a non-member, not legacy
        assert "room_message" not in [m.get("type") for m in kit.settle(server, client)]
    assert code(kit.post(carol, "dev", "let me in")) == "not_member"
    assert code(kit.post(alice, "nowhere", "hello?")) == "unknown_room"
    assert code(kit.post(alice, "dev", "   ")) == "empty_message"
    assert code(kit.post(alice, "dev", "x" * 4001)) == "message_too_long"


def test_sequence_numbers_are_gapless_under_two_concurrent_senders(server, user, kit):
    alice, bob, watcher = user(server, "alice"), user(server, "bob"), user(server, "watcher")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(bob, "room_join", room="dev")
    kit.ask(watcher, "room_join", room="dev")
    count = 300
    acks: dict[str, list[int]] = {}

    def flood(client, name):
        for i in range(count):  # pipelined: no waiting for each ack
            client.send(command="room_message", room="dev", message=f"{name} {i}", client_id=i)
        acks[name] = [client.expect("room_ack", timeout=30)["seq"] for _ in range(count)]

    threads = [threading.Thread(target=flood, args=(c, n)) for c, n in ((alice, "alice"), (bob, "bob"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    seen = [watcher.expect("room_message", timeout=30) for _ in range(2 * count)]
    assert [m["seq"] for m in seen] == list(range(1, 2 * count + 1))  # in order, no gap, no repeat
    for name in ("alice", "bob"):
        assert acks[name] == sorted(acks[name])  # each sender's acks in the order sent
        mine = [m for m in seen if m["sender"] == name]
        assert [m["message"] for m in mine] == [f"{name} {i}" for i in range(count)]
    assert sorted(acks["alice"] + acks["bob"]) == list(range(1, 2 * count + 1))


def test_history_is_for_members_and_pages_like_get_history(server, user, kit):
    alice, bob = user(server, "alice"), user(server, "bob")
    kit.ask(alice, "room_create", room="dev")
    for i in range(1, 8):
        kit.post(alice, "dev", f"m{i}")
    assert code(kit.ask(bob, "room_history", room="dev")) == "not_member"
    kit.ask(bob, "room_join", room="dev")
    page = kit.ask(bob, "room_history", room="dev", limit=3)  # members see what came before they joined
    assert [m["seq"] for m in page["messages"]] == [5, 6, 7] and page["has_more"] and page["next_before"] == 5
    older = kit.ask(bob, "room_history", room="dev", before=page["next_before"], limit=10)
    assert [m["message"] for m in older["messages"]] == ["m1", "m2", "m3", "m4"] and not older["has_more"]
    assert kit.ask(bob, "room_history", room="dev", before=1)["messages"] == []
    assert code(kit.ask(bob, "room_history", room="dev", limit=0)) == "bad_request"
    kit.ask(alice, "room_kick", room="dev", user="bob")
    assert code(kit.ask(bob, "room_history", room="dev")) == "not_member"


def test_a_room_can_hide_what_came_before_a_member_joined(server, user, kit):
    alice, bob = user(server, "alice"), user(server, "bob")
    kit.ask(alice, "room_create", room="support", history="joined")
    kit.post(alice, "support", "before bob")
    kit.ask(bob, "room_join", room="support")
    kit.post(alice, "support", "after bob")
    assert [m["message"] for m in kit.ask(bob, "room_history", room="support")["messages"]] == ["after bob"]
    assert len(kit.ask(alice, "room_history", room="support")["messages"]) == 2


def test_history_pages_fit_one_frame(server, user, kit):
    alice = user(server, "alice")
    kit.ask(alice, "room_create", room="dev")
    for i in range(30):
        alice.send(command="room_message", room="dev", message=f"{i} " + "\u0001" * 3990)  # escaped: 6 bytes each
    for _ in range(30):
        alice.expect("room_ack")
    page = kit.ask(alice, "room_history", room="dev")
    assert 0 < len(page["messages"]) < 30 and page["has_more"]
    assert page["next_before"] == page["messages"][0]["seq"]


def test_mentions_are_recognised_for_members_only(server, user, kit):
    alice, bob = user(server, "alice"), user(server, "bob")
    user(server, "carol")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(bob, "room_join", room="dev")
    kit.post(alice, "dev", "@Bob. and @carol, and @nobody: look")
    seen = bob.expect("room_message")
    assert seen["mentions"] == ["bob"]  # carol is no member; the trailing dot is punctuation
    bob.close()
    bob = user(server, "bob", register=False)
    assert bob.room_list["rooms"][0]["mentions"] == 1 and bob.room_list["rooms"][0]["unread"] == 1


def test_at_room_needs_a_moderator(server, user, kit):
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(bob, "room_join", room="dev")
    kit.ask(carol, "room_join", room="dev")
    assert code(kit.post(bob, "dev", "@room lunch?")) == "mention_forbidden"
    kit.ask(alice, "room_set_role", room="dev", user="bob", role="moderator")
    assert kit.post(bob, "dev", "@room lunch?")["seq"] == 1
    event = carol.expect("room_message")
    assert event["everyone"] is True and set(event["mentions"]) == {"alice", "bob", "carol"}
    carol.close()
    assert user(server, "carol", register=False).room_list["rooms"][0]["mentions"] == 1
    bob.close()  # the sender is not mentioned by their own @room
    assert user(server, "bob", register=False).room_list["rooms"][0]["mentions"] == 0


def test_the_global_room_and_legacy_clients_work_as_before(server, login_as, user, kit):
    legacy = login_as(server, "oldtimer")
    alice = user(server, "alice")
    kit.ask(alice, "room_create", room="dev")
    kit.post(alice, "dev", "in the room")
    ack = alice.request({"command": "chat", "peer": "", "message": "to everyone"}, reply="chat_ack")
    event = legacy.expect("broadcast_message", id=ack["id"])
    assert event == {"type": "broadcast_message", "peer": "alice", "message": "to everyone", "id": ack["id"],
                     "ts": ack["ts"], "to": ""}
    assert {m.get("type") for m in kit.settle(server, legacy)} <= {"peer_joined"}  # nothing else, no room frames
    history = legacy.request(command="get_history", peer="")["data"]
    assert [row[2] for row in history] == ["to everyone"]  # room messages stay out of the global room


@pytest.mark.parametrize("field", ["message", "room"])
def test_message_fields_are_type_checked(server, user, kit, field):
    alice = user(server, "alice")
    alice.send({"command": "room_message", "room": "dev", "message": "hi", field: 7})
    assert alice.expect("error")["code"] == "bad_request"


def test_a_filter_plugin_sees_room_messages_too(rooms_server, user, kit):
    from chatcore import CommandError, hookimpl

    class NoShouting:
        @hookimpl
        def chatcore_chat_message_filter(self, session, message):
            if message.get("room") and message["message"].isupper():
                raise CommandError("rejected", "no shouting in rooms")
            message["message"] = message["message"].replace("darn", "d**n")

    server = rooms_server(extra=[("noshout", NoShouting())])
    alice = user(server, "alice")
    kit.ask(alice, "room_create", room="dev")
    assert code(kit.post(alice, "dev", "HELLO")) == "rejected"
    kit.post(alice, "dev", "darn it")
    assert kit.ask(alice, "room_history", room="dev")["messages"][-1]["message"] == "d**n it"
