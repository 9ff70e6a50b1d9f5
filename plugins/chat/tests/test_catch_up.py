"""Lossless reconnect: a login that names ``since`` (the newest message id its client has seen)
gets everything it missed after it, in order, once, then ``caught_up``; across a server restart
too; beyond the cap it says the catch-up was incomplete."""

from __future__ import annotations

import pytest

from chatcore.testing import PASSWORD

pytestmark = pytest.mark.usefixtures("backend")  # runs on SQLite and on PostgreSQL


def relogin(connect, server, name: str, since: int):
    """A new connection of ``name`` logging in with ``since``; returns it and its ``caught_up``."""
    client = connect(server)
    client.request(command="hello", protocol=2)
    reply = client.request(command="login", username=name, password=PASSWORD, since=since)
    assert reply["response"] == "ok", reply
    done = client.expect("caught_up")
    return client, done


def messages(arrived: list) -> list[dict]:
    return [m for m in arrived if m.get("type") in ("private_message", "broadcast_message")]


def test_a_reconnect_gets_what_it_missed_once_in_order(server, login_as, connect, chat):
    alice = login_as(server, "alice", v2=True)
    bob = login_as(server, "bob", v2=True)
    seen = chat(alice, "bob", "before")["id"]
    bob.expect("private_message", id=seen)
    bob.close()  # bob's device drops
    missed = [chat(alice, "bob", f"while away {n}")["id"] for n in range(4)]
    missed.append(chat(alice, "", "to the room")["id"])  # a broadcast is never kept as offline, yet missed
    chat(alice, "alice", "a note to self")  # not bob's conversation: not his to catch up on
    again, done = relogin(connect, server, "bob", seen)
    assert [m["id"] for m in messages(again.backlog)] == missed
    assert done == {"type": "caught_up", "complete": True, "delivered": 5, "last_id": missed[-1]}
    later = connect(server)
    later.login("bob", PASSWORD)  # a login without since: the missed messages are not offline any more
    assert not [m for m in messages(later.sync()) if m.get("offline")]


def test_catching_up_across_a_server_restart_loses_and_doubles_nothing(chat_server, login_as, connect, chat,
                                                                       tmp_path):
    server = chat_server()
    alice = login_as(server, "alice", v2=True)
    bob = login_as(server, "bob", v2=True)
    seen = [chat(alice, "bob", f"first {n}")["id"] for n in range(3)]
    assert [bob.expect("private_message")["id"] for _ in seen] == seen
    bob.close()
    missed = [chat(alice, "bob", f"second {n}")["id"] for n in range(3)]
    server.stop()
    restarted = chat_server()
    again, done = relogin(connect, restarted, "bob", seen[-1])
    assert [m["id"] for m in messages(again.backlog)] == missed
    assert (done["complete"], done["delivered"]) == (True, 3)
    alice2 = login_as(restarted, "alice", v2=True, register=False)
    live = chat(alice2, "bob", "after the catch-up")["id"]
    assert again.expect("private_message", id=live)["message"] == "after the catch-up"  # live delivery goes on


def test_beyond_the_cap_the_catch_up_says_it_is_incomplete(chat_server, login_as, connect, chat):
    server = chat_server(env={"CHATCORE_CHAT_CATCH_UP_MAX": "10"})
    alice = login_as(server, "alice", v2=True)
    login_as(server, "bob", v2=True).close()
    missed = [chat(alice, "bob", f"m{n}")["id"] for n in range(25)]
    again, done = relogin(connect, server, "bob", 0)
    assert [m["id"] for m in messages(again.backlog)] == missed[:10]
    assert done == {"type": "caught_up", "complete": False, "delivered": 10, "last_id": missed[9]}
    live = chat(alice, "bob", "live again")["id"]
    assert again.expect("private_message", id=live)["message"] == "live again"


def test_a_reconnect_that_missed_nothing_is_told_so(server, login_as, connect, chat):
    alice = login_as(server, "alice", v2=True)
    seen = chat(alice, "alice", "hello me")["id"]
    _, done = relogin(connect, server, "alice", seen)
    assert done == {"type": "caught_up", "complete": True, "delivered": 0, "last_id": seen}
