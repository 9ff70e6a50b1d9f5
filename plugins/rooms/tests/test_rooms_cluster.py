"""Rooms across the nodes of a cluster (in-process nodes on the machine's PostgreSQL and Redis):
room messages cross nodes, two senders on two nodes give every receiver one gapless order,
membership and room changes reach the other node's sessions and memory, a room made on one
node is usable on the other at once, a member resuming elsewhere misses nothing and gets
nothing twice, a Redis restart loses no room message, typing and an account removal cross
nodes, the daily quota is the cluster's, and a PostgreSQL restart costs only the answers
made while it was down."""

from __future__ import annotations

import pytest

from chatcore.testing import PASSWORD

WAIT = 15.0


@pytest.fixture
def nodes(cluster_env, rooms_server, tmp_path):
    """``nodes(count=2, env={...})``: in-process auth + chat + rooms nodes of one cluster."""

    def factory(count=2, env=None):
        return [rooms_server(env={**cluster_env, **(env or {})}, data_dir=tmp_path / f"node{index}")
                for index in range(count)]

    return factory


@pytest.fixture
def member(connect, known, kit):
    """``member(home, node, name)``: a v2 client of ``name`` logged in on ``node``, its login's
    room list read (``client.room_list``); the account is registered on ``home`` (the cluster's)."""

    def factory(home, node, name, **login):
        known(home, name)
        client = connect(node, timeout=WAIT)
        assert client.request(command="hello", client="tests", protocol=2)["protocol"] == 2
        reply = client.request(command="login", username=name, password=PASSWORD, **login)
        assert reply.get("response") == "ok", reply
        client.room_list = kit.read_list(client)
        return client

    return factory


def messages(client, count, kind="room_message"):
    """The next ``count`` events of ``kind`` ``client`` receives, in order."""
    return [client.expect(kind, timeout=WAIT) for _ in range(count)]


def test_a_room_message_crosses_nodes(nodes, member, kit):
    a, b = nodes()
    alice = member(a, a, "alice")
    bob = member(a, b, "bob")
    kit.ask(alice, "room_create", room="dev")
    assert kit.ask(bob, "room_join", room="dev")["room"]["members"] == 2
    alice.expect("room_event", kind="joined", timeout=WAIT)
    ack = kit.post(alice, "dev", "hello from node a")
    got = bob.expect("room_message", timeout=WAIT)
    assert (got["room"], got["seq"], got["sender"], got["message"], got["ts"]) == (
        "dev", ack["seq"], "alice", "hello from node a", ack["ts"])
    reply = kit.post(bob, "dev", "and back from b")
    assert alice.expect("room_message", timeout=WAIT)["seq"] == reply["seq"] == ack["seq"] + 1
    for client in (alice, bob):
        history = kit.ask(client, "room_history", room="dev")
        assert [(m["seq"], m["message"]) for m in history["messages"]] == [
            (1, "hello from node a"), (2, "and back from b")]
    assert not [m for m in alice.sync() + bob.sync() if m.get("type") == "room_message"], "no echo, nothing twice"


def test_two_senders_on_two_nodes_give_every_receiver_one_gapless_order(nodes, member, kit):
    a, b = nodes()
    alice = member(a, a, "alice")
    bob = member(a, b, "bob")
    carol_a, carol_b = member(a, a, "carol"), member(a, b, "carol")
    kit.ask(alice, "room_create", room="dev")
    for client in (bob, carol_a):
        assert kit.ask(client, "room_join", room="dev")["type"] == "room_join_result"
    count = 30
    for number in range(count):  # pipelined from both nodes at once: their commits interleave
        alice.send(command="room_message", room="dev", message=f"a{number}", client_id=f"a{number}")
        bob.send(command="room_message", room="dev", message=f"b{number}", client_id=f"b{number}")
    acks = messages(alice, count, "room_ack") + messages(bob, count, "room_ack")
    assert sorted(ack["seq"] for ack in acks) == list(range(1, 2 * count + 1))
    by_seq = {ack["seq"]: ack["client_id"] for ack in acks}
    for carol in (carol_a, carol_b):  # both of carol's devices: every seq once, in order
        got = messages(carol, 2 * count)
        assert [m["seq"] for m in got] == list(range(1, 2 * count + 1))
        assert [m["message"] for m in got] == [by_seq[m["seq"]] for m in got]
    for sender, other in ((alice, "b"), (bob, "a")):  # each sender gets the other's, in order
        got = messages(sender, count)
        assert [m["message"] for m in got] == [f"{other}{n}" for n in range(count)]
        assert [m["seq"] for m in got] == sorted(m["seq"] for m in got)
    for client in (alice, bob, carol_a, carol_b):
        assert not [m for m in client.sync() if m.get("type") == "room_message"], "nothing twice"


def test_a_room_made_on_one_node_is_usable_from_the_other_at_once(nodes, member, kit):
    a, b = nodes()
    alice = member(a, a, "alice")
    bob = member(a, b, "bob")
    kit.ask(alice, "room_create", room="fresh", topic="just made")
    joined = kit.ask(bob, "room_join", room="fresh")  # b may not have heard of it yet: the database decides
    assert joined["type"] == "room_join_result" and joined["room"]["topic"] == "just made"
    assert kit.post(bob, "fresh", "first!")["seq"] == 1
    assert alice.expect("room_message", timeout=WAIT)["message"] == "first!"
    assert kit.ask(bob, "mark_read", room="fresh", seq=1)["seq"] == 1
    assert "fresh" in [r["room"] for r in kit.ask(bob, "room_directory")["rooms"]]


def test_membership_and_room_changes_reach_the_other_node(nodes, member, known, kit):
    a, b = nodes()
    alice = member(a, a, "alice")
    bob, carol = member(a, b, "bob"), member(a, b, "carol")
    kit.ask(alice, "room_create", room="dev")
    for name, client in (("bob", bob), ("carol", carol)):
        kit.ask(client, "room_join", room="dev")
        assert alice.expect("room_event", kind="joined", timeout=WAIT)["user"] == name
    bob.expect("room_event", kind="joined", user="carol", timeout=WAIT)  # b's own join, told on b
    assert kit.ask(alice, "room_topic", room="dev", topic="release week")["topic"] == "release week"
    for client in (bob, carol):
        event = client.expect("room_event", kind="topic", timeout=WAIT)
        assert event["by"] == "alice" and event["info"]["topic"] == "release week"
    directory = kit.ask(bob, "room_directory")["rooms"]  # b's memory of the room changed too
    assert (directory[0]["topic"], directory[0]["members"]) == ("release week", 3)
    assert kit.ask(alice, "room_ban", room="dev", user="carol", reason="spam")["user"] == "carol"
    banned = carol.expect("room_event", kind="banned", timeout=WAIT)
    assert (banned["user"], banned["reason"], banned["info"]["members"]) == ("carol", "spam", 2)
    bob.expect("room_event", kind="banned", timeout=WAIT)
    assert kit.ask(carol, "room_join", room="dev")["code"] == "banned"
    assert kit.post(carol, "dev", "still here?")["code"] == "not_member"
    assert kit.ask(bob, "room_leave", room="dev")["room"] == "dev"
    assert alice.expect("room_event", kind="left", timeout=WAIT)["user"] == "bob"
    assert [m["user"] for m in kit.ask(alice, "room_members", room="dev")["members"]] == ["alice"]
    kit.post(alice, "dev", "alone now")
    assert not [m for m in bob.sync() + carol.sync() if m.get("type") == "room_message"], "they left"
    kit.ask(bob, "room_join", room="dev")
    alice.expect("room_event", kind="joined", timeout=WAIT)
    assert kit.ask(alice, "room_delete", room="dev")["room"] == "dev"
    assert bob.expect("room_event", kind="deleted", timeout=WAIT)["room"] == "dev"
    assert kit.ask(bob, "room_directory")["rooms"] == []
    assert kit.ask(bob, "room_create", room="dev")["room"]["role"] == "owner"  # the name is free again
    assert kit.ask(alice, "room_join", room="dev")["room"]["members"] == 2  # a's memory: the new room


def test_a_member_resuming_on_another_node_misses_nothing_and_gets_nothing_twice(nodes, member, kit):
    a, b = nodes()
    alice = member(a, a, "alice")
    bob = member(a, a, "bob")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(bob, "room_join", room="dev")
    seen = kit.post(alice, "dev", "seen")["seq"]
    bob.expect("room_message", seq=seen, timeout=WAIT)
    edited = kit.ask(alice, "room_message_edit", room="dev", seq=seen, message="seen, edited")
    bob.expect("message_edited", timeout=WAIT)
    kit.ask(bob, "mark_read", room="dev", seq=seen)
    bob.close()
    missed = [kit.post(alice, "dev", f"missed {n} @bob")["seq"] for n in range(3)]
    reacted = kit.ask(alice, "room_react", room="dev", seq=seen, emoji="+1")
    bob = member(a, b, "bob", room_changes_since=edited["change_id"])
    (dev,) = bob.room_list["rooms"]
    assert (dev["last_seq"], dev["read_seq"], dev["unread"], dev["mentions"]) == (missed[-1], seen, 3, 3)
    replayed = bob.expect("message_reactions", timeout=WAIT)
    assert (replayed["seq"], replayed["replayed"], replayed["change_id"]) == (seen, True, reacted["change_id"])
    assert bob.expect("room_changes_done", timeout=WAIT)["complete"] is True
    history = kit.ask(bob, "room_history", room="dev")
    assert [m["seq"] for m in history["messages"]] == [seen, *missed]
    live = kit.post(alice, "dev", "live again")["seq"]
    assert [m["seq"] for m in messages(bob, 1)] == [live]  # after its list: exactly what came since
    assert not [m for m in bob.sync() if m.get("type") == "room_message"]


def test_a_redis_restart_loses_no_room_message(nodes, member, kit, private_redis):
    a, b = nodes(env={"CHATCORE_REDIS_URL": private_redis.url})
    alice = member(a, a, "alice")
    bob = member(a, b, "bob")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(bob, "room_join", room="dev")
    assert kit.post(alice, "dev", "before")["seq"] == 1
    bob.expect("room_message", seq=1, timeout=WAIT)
    private_redis.stop()
    during = [kit.post(alice, "dev", f"during {n}")["seq"] for n in range(5)]  # stored: PostgreSQL is up
    kit.ask(alice, "room_topic", room="dev", topic="set while Redis was away")
    private_redis.start()
    after = kit.post(alice, "dev", "after")["seq"]
    assert [m["seq"] for m in messages(bob, 6)] == [*during, after]
    assert not [m for m in bob.sync() if m.get("type") == "room_message"]
    assert kit.ask(bob, "room_directory")["rooms"][0]["topic"] == "set while Redis was away"


def test_typing_and_an_account_removal_reach_the_other_node(nodes, member, kit):
    from chatcore.admin import admin_request

    a, b = nodes(env={"CHATCORE_CHAT_TYPING_INTERVAL": "0"})
    alice = member(a, a, "alice")
    bob, carol = member(a, b, "bob"), member(a, b, "carol")
    kit.ask(alice, "room_create", room="dev")
    for client in (bob, carol):
        kit.ask(client, "room_join", room="dev")
    alice.expect("room_event", kind="joined", user="carol", timeout=WAIT)
    for _ in range(20):  # pub/sub: a node's listener may subscribe a moment after it starts
        alice.send(command="room_typing", room="dev")
        try:
            got = bob.expect("typing", timeout=1)
            break
        except AssertionError:
            continue
    assert (got["room"], got["sender"]) == ("dev", "alice")
    kit.post(bob, "dev", "a message of bob's")
    assert admin_request(a.data_dir, {"command": "remove_user", "username": "bob"})["ok"]  # removed on a
    left = carol.expect("room_event", kind="left", user="bob", timeout=WAIT)
    assert (left["reason"], left["info"]["members"]) == ("account removed", 2)
    assert [m["user"] for m in kit.ask(carol, "room_members", room="dev")["members"]] == ["alice", "carol"]
    assert [m["sender"] for m in kit.ask(carol, "room_history", room="dev")["messages"]] == []


def test_the_daily_quota_counts_room_messages_on_every_node(nodes, member, kit):
    a, b = nodes(env={"CHATCORE_CHAT_SENDER_DAILY_MESSAGES": "3"})
    alice_a, alice_b = member(a, a, "alice"), member(a, b, "alice")
    kit.ask(alice_a, "room_create", room="dev")
    assert [kit.post(alice_a, "dev", "one")["seq"], kit.post(alice_b, "dev", "two")["seq"],
            kit.post(alice_a, "dev", "three")["seq"]] == [1, 2, 3]
    refused = kit.post(alice_b, "dev", "four")  # the cluster's count, whichever node took the others
    assert refused["code"] == "daily_quota" and refused["retry_after"] > 0, refused
    assert kit.ask(alice_b, "room_history", room="dev")["messages"][-1]["seq"] == 3  # no seq used


def test_a_postgresql_restart_answers_unavailable_then_rooms_go_on(nodes, member, kit, private_postgres):
    (a,) = nodes(count=1, env={"CHATCORE_DATABASE_URL": private_postgres.url, "CHATCORE_DATABASE_TIMEOUT": "3"})
    alice, bob = member(a, a, "alice"), member(a, a, "bob")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(bob, "room_join", room="dev")
    assert kit.post(alice, "dev", "before")["seq"] == 1
    private_postgres.stop()
    refused = kit.post(alice, "dev", "while it is down")
    assert refused["type"] == "error" and refused["code"] == "unavailable", refused
    private_postgres.start()
    assert kit.post(alice, "dev", "after")["seq"] == 2  # nothing stored, no seq used, the writer reconnected
    assert [m["message"] for m in messages(bob, 2)] == ["before", "after"]
