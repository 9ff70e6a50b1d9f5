"""``chat`` over real sockets through the real auth plugin: private, broadcast, self, errors, ids."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.usefixtures("backend")  # runs on SQLite and on PostgreSQL

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def kinds(messages: list) -> list:
    return [m.get("type") for m in messages]


def test_private_message_reaches_every_session_of_the_recipient(server, login_as, chat, settle):
    alice = login_as(server, "alice")
    bob = login_as(server, "Bob")
    bob_phone = login_as(server, "bob", register=False)
    ack = chat(alice, "BOB", "hello bob", client_id="c-1")
    assert ack["type"] == "chat_ack" and ack["peer"] == "Bob" and ack["client_id"] == "c-1"
    assert isinstance(ack["id"], int) and ISO_UTC.match(ack["ts"])
    expected = {"type": "private_message", "peer": "alice", "message": "hello bob",
                "id": ack["id"], "ts": ack["ts"], "to": "Bob"}
    assert bob.expect("private_message") == expected
    assert bob_phone.expect("private_message") == expected
    assert "private_message" not in kinds(settle(server, alice))  # no echo to the sending connection


def test_ack_without_client_id_has_none(server, login_as, chat):
    alice = login_as(server, "alice")
    login_as(server, "bob")
    ack = chat(alice, "bob", "hi")
    assert ack["type"] == "chat_ack" and "client_id" not in ack


def test_sender_other_v2_session_gets_a_copy_but_legacy_one_does_not(server, login_as, chat, settle):
    alice = login_as(server, "alice")
    alice_v2 = login_as(server, "alice", register=False, v2=True)
    alice_legacy = login_as(server, "alice", register=False)
    bob = login_as(server, "bob")
    ack = chat(alice, "bob", "synced")
    assert bob.expect("private_message", id=ack["id"])["to"] == "bob"
    copy = alice_v2.expect("private_message", id=ack["id"])
    assert copy["peer"] == "alice" and copy["to"] == "bob" and copy["message"] == "synced"
    assert "private_message" not in kinds(settle(server, alice_legacy))


def test_broadcast_goes_to_everyone_online_but_the_sending_connection(server, login_as, chat, register, settle):
    alice = login_as(server, "alice")
    alice_tablet = login_as(server, "alice", register=False)
    bob = login_as(server, "bob")
    carol = login_as(server, "carol")
    register(server, "dave")  # offline: broadcasts are not kept for later delivery
    ack = chat(alice, "", "hello all", client_id=7)
    assert ack["peer"] == "" and ack["client_id"] == 7
    for client in (alice_tablet, bob, carol):
        event = client.expect("broadcast_message", id=ack["id"])
        assert event == {"type": "broadcast_message", "peer": "alice", "message": "hello all",
                         "id": ack["id"], "ts": ack["ts"], "to": ""}
    assert "broadcast_message" not in kinds(settle(server, alice))


def test_message_to_yourself(server, login_as, chat, history, settle):
    alice = login_as(server, "alice")
    other = login_as(server, "alice", register=False)
    ack = chat(alice, "ALICE", "note to self")
    assert ack["type"] == "chat_ack" and ack["peer"] == "alice"
    assert "private_message" not in kinds(alice.backlog)  # the sending connection: the ack first
    for client in (alice, other):  # a note to self shows on every device, the sending one too
        assert client.expect("private_message", id=ack["id"])["message"] == "note to self"
        assert "private_message" not in kinds(settle(server, client))  # exactly once
    assert history(alice, "alice")["data"][-1][2] == "note to self"


def test_unknown_user_is_an_error_and_nothing_is_stored(server, login_as, chat, history):
    alice = login_as(server, "alice")
    reply = chat(alice, "nobody", "hello?")
    assert reply["type"] == "error" and reply["code"] == "unknown_peer" and reply["command"] == "chat"
    assert history(alice, "nobody")["code"] == "unknown_peer"
    assert chat(alice, "x" * 10_000, "hi")["code"] == "unknown_peer"  # a huge name is just unknown
    assert chat(alice, "", "still works")["type"] == "chat_ack"


def test_ids_increase_across_senders_and_kinds(server, login_as, chat, settle):
    alice = login_as(server, "alice")
    bob = login_as(server, "bob")
    acks = []
    for n in range(20):
        sender, peer = (alice, "bob") if n % 2 else (bob, "alice")
        acks.append(chat(sender, peer if n % 3 else "", f"m{n}"))
    ids = [a["id"] for a in acks]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [a["ts"] for a in acks] == sorted(a["ts"] for a in acks)
    received = [m["id"] for m in settle(server, bob) if m.get("type") in ("private_message", "broadcast_message")]
    assert received == sorted(received)


def test_wrong_typed_fields_are_bad_requests_and_the_session_goes_on(server, login_as, chat, history):
    alice = login_as(server, "alice")
    login_as(server, "bob")
    bad = [
        {"peer": 5, "message": "x"}, {"peer": None, "message": "x"}, {"peer": "bob", "message": 5},
        {"peer": "bob", "message": None}, {"peer": "bob", "message": ["x"]}, {"peer": "bob"},
        {"message": "x"}, {"peer": "bob", "message": "x", "client_id": [1]},
        {"peer": "bob", "message": "x", "client_id": True}, {"peer": "bob", "message": "x", "client_id": "c" * 129},
    ]
    for fields in bad:
        alice.send({"command": "chat", **fields})
        reply = alice.expect(("chat_ack", "error"))
        assert reply["type"] == "error" and reply["code"] == "bad_request", (fields, reply)
    for fields in ({"before": "1"}, {"limit": "10"}, {"limit": 0}, {"limit": -3}, {"limit": 1.5}, {"before": True}):
        reply = history(alice, "bob", **fields)
        assert reply["type"] == "error" and reply["code"] == "bad_request", (fields, reply)
    assert history(alice, 42)["code"] == "bad_request"
    assert history(alice, "bob", before=2**63 - 1)["type"] == "get_history"  # past every id: the newest page
    # beyond SQLite's integers: a clear reply either way (the core may refuse them as out of range)
    for reply in (history(alice, "bob", before=10**40), history(alice, "bob", limit=10**40),
                  chat(alice, "bob", "x", client_id=10**40)):
        assert reply["type"] in ("get_history", "chat_ack") or reply["code"] == "bad_request", reply
    assert chat(alice, "bob", "fine")["type"] == "chat_ack"


def test_empty_and_over_long_messages_are_refused(server, login_as, chat, history, settle):
    alice = login_as(server, "alice")
    bob = login_as(server, "bob")
    assert chat(alice, "bob", "")["code"] == "empty_message"
    assert chat(alice, "bob", " \n\t ")["code"] == "empty_message"
    too_long = chat(alice, "bob", "x" * 4001)
    assert too_long["code"] == "message_too_long" and "4000" in too_long["reason"]
    assert chat(alice, "bob", "\x01" * 4000)["type"] == "chat_ack"  # the limit, escaped to 24 kB of JSON
    assert chat(alice, "bob", "é" * 4000)["type"] == "chat_ack"
    assert [m["message"] for m in settle(server, bob) if m.get("type") == "private_message"] == ["\x01" * 4000, "é" * 4000]
    assert len(history(alice, "bob")["data"]) == 2


def test_length_limit_is_configurable_and_announced(chat_server, login_as, chat, connect):
    server = chat_server(env={"CHATCORE_CHAT_MAX_LENGTH": "10"})
    alice = login_as(server, "alice")
    login_as(server, "bob")
    assert chat(alice, "bob", "0123456789")["type"] == "chat_ack"
    assert chat(alice, "bob", "0123456789!")["code"] == "message_too_long"
    assert connect(server).request(command="hello", protocol=2)["chat_max_length"] == 10


def test_chat_needs_login(server, connect, chat, history):
    client = connect(server)
    assert chat(client, "", "hi")["code"] == "not_authenticated"
    assert history(client, "")["code"] == "not_authenticated"


def test_chat_disabled_while_auth_enabled(chat_server, login_as, chat, history):
    server = chat_server(plugins=["auth"])
    assert server.plugin_names == ["auth"]
    alice = login_as(server, "alice")
    reply = chat(alice, "", "anyone?")
    assert reply["type"] == "error" and reply["code"] == "unknown_command"
    assert history(alice, "")["code"] == "unknown_command"
    assert alice.request(command="get_users")["type"] == "get_users"  # auth still works


def test_a_reader_that_stalls_does_not_hold_up_the_others(chat_server, login_as, chat, settle):
    server = chat_server(env={"CHATCORE_SEND_BUFFER": "65536"})
    alice = login_as(server, "alice")
    bob = login_as(server, "bob")
    sleepy = login_as(server, "sleepy")  # never reads again
    text = "z" * 3990
    acks = [chat(alice, "", f"{n} {text}") for n in range(300)]  # ~1.6 MB that sleepy never reads
    assert all(a["type"] == "chat_ack" for a in acks)
    got = [m["id"] for m in settle(server, bob) if m.get("type") == "broadcast_message"]
    assert got == [a["id"] for a in acks]
    # (whether sleepy is dropped yet depends on the kernel's socket buffers: the core's concern)
    assert sleepy is not None
