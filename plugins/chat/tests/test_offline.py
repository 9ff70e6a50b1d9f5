"""Offline delivery: stored for a registered offline user, delivered once, in order, at login."""

from __future__ import annotations

import threading

import pytest

from chatcore import hookimpl
from chatcore.testing import PASSWORD

pytestmark = pytest.mark.usefixtures("backend")  # runs on SQLite and on PostgreSQL


def chat_events(messages: list) -> list:
    return [m for m in messages if m.get("type") in ("private_message", "broadcast_message")]


def test_offline_messages_arrive_once_in_order_at_next_login(server, login_as, register, chat, settle):
    register(server, "bob")
    alice = login_as(server, "alice")
    carol = login_as(server, "carol")
    acks = [chat(alice, "bob", "one"), chat(carol, "BOB", "two"), chat(alice, "bob", "three")]
    assert [a["peer"] for a in acks] == ["bob"] * 3
    chat(alice, "", "a broadcast bob misses")

    bob = login_as(server, "bob", register=False)
    got = chat_events(settle(server, bob))
    assert [(m["peer"], m["message"], m["id"]) for m in got] == [
        ("alice", "one", acks[0]["id"]), ("carol", "two", acks[1]["id"]), ("alice", "three", acks[2]["id"])]
    assert all(m["offline"] is True and m["to"] == "bob" and m["type"] == "private_message" for m in got)
    assert [m["ts"] for m in got] == [a["ts"] for a in acks]

    bob_again = login_as(server, "bob", register=False)  # another device later: already delivered
    assert chat_events(settle(server, bob_again)) == []
    bob.close()
    bob_again.close()
    assert chat_events(settle(server, login_as(server, "bob", register=False))) == []  # and never again


def test_live_messages_after_login_follow_the_offline_ones(server, login_as, register, chat, settle):
    register(server, "bob")
    alice = login_as(server, "alice")
    first = chat(alice, "bob", "while away")
    bob = login_as(server, "bob", register=False)
    second = chat(alice, "bob", "now live")
    got = chat_events(settle(server, bob))
    assert [(m["id"], m.get("offline", False)) for m in got] == [(first["id"], True), (second["id"], False)]


class LoginGate:
    """Holds the first login's ``chat_authenticated`` until a second session of the user is bound,
    so both devices are online before the chat plugin claims the offline messages."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.calls = 0
        self.lock = threading.Lock()
        self.second_bound = threading.Event()

    @hookimpl(tryfirst=True)
    def chat_authenticated(self, session, first):
        if session.user != self.user:
            return
        with self.lock:
            self.calls += 1
            mine = self.calls
        if mine == 1:
            assert self.second_bound.wait(5), "the second login never came"
        elif mine == 2:
            self.second_bound.set()


def test_two_devices_logging_in_at_once_each_get_the_backlog_exactly_once(chat_server, login_as, register,
                                                                           connect, chat, settle):
    gate = LoginGate("bob")
    server = chat_server(extra=[("gate", gate)])
    register(server, "bob")
    alice = login_as(server, "alice")
    acks = [chat(alice, "bob", f"offline {n}") for n in range(5)]

    phone, laptop = connect(server), connect(server)
    results: dict[str, dict] = {}

    def log_in(name: str, client) -> None:
        client.send(command="login", username="bob", password=PASSWORD)
        results[name] = client.expect("login_result")
        client.backlog = client.sync() + client.backlog  # the login (and its hooks) finished

    threads = [threading.Thread(target=log_in, args=(n, c)) for n, c in (("phone", phone), ("laptop", laptop))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert all(r["response"] == "ok" for r in results.values()) and len(results) == 2

    expected = [a["id"] for a in acks]
    for device in (phone, laptop):
        got = chat_events(settle(server, device))
        assert [m["id"] for m in got] == expected, got  # once each, in order
        assert all(m["offline"] for m in got)
    late = chat(alice, "bob", "live")
    for device in (phone, laptop):
        assert [m["id"] for m in chat_events(settle(server, device))] == [late["id"]]
    assert chat_events(settle(server, login_as(server, "bob", register=False))) == []


def test_concurrent_logins_never_duplicate(server, login_as, register, connect, chat, settle):
    register(server, "bob")
    alice = login_as(server, "alice")
    acks = [chat(alice, "bob", f"m{n}") for n in range(20)]
    clients = [connect(server) for _ in range(4)]
    barrier = threading.Barrier(len(clients))

    def log_in(client) -> None:
        barrier.wait(5)
        client.send(command="login", username="bob", password=PASSWORD)
        client.expect("login_result", response="ok")
        client.backlog = client.sync() + client.backlog  # the login (and its hooks) finished

    threads = [threading.Thread(target=log_in, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    expected = [a["id"] for a in acks]
    received = [[m["id"] for m in chat_events(settle(server, c))] for c in clients]
    # every device gets the whole backlog in order or (if it came online after the claim) none of it
    assert all(ids in (expected, []) for ids in received), received
    assert expected in received


def test_offline_user_is_distinct_from_unknown(server, login_as, register, chat, settle):
    register(server, "Bob")
    alice = login_as(server, "alice")
    assert chat(alice, "bob", "x")["type"] == "chat_ack"
    assert chat(alice, "bobby", "x")["code"] == "unknown_peer"
