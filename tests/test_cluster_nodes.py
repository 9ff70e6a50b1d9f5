"""Three chatcore nodes as processes sharing one PostgreSQL and one Redis (issue 18): what a
user sees when the nodes they and their peers use differ, when a node dies, and when a
client moves to another node."""

from __future__ import annotations

import pytest

from chatcore.testing import PASSWORD, TestClient

WAIT = 20.0
NODE_ENV = {"CHATCORE_NODE_TTL": "2", "CHATCORE_AUTH_PRESENCE_DELAY": "0"}


@pytest.fixture
def three(start_node, cluster_env):
    return [start_node(cluster_env, plugins=("auth", "chat"), env=NODE_ENV) for _ in range(3)]


def client(node, name, register=False, **login):
    """A client of ``node`` logged in as ``name`` (registering the account first if asked)."""
    conn = TestClient(node.address, timeout=WAIT)
    if register:
        assert conn.request(command="register", username=name, password=PASSWORD)["response"] == "ok"
    reply = conn.request(command="login", username=name, **(login or {"password": PASSWORD}), reply="login_result")
    assert reply["response"] == "ok", reply
    return conn


def events_about(conn, name, until):
    """The presence events about ``name`` that ``conn`` received, up to and including ``until``."""
    seen = []
    while True:
        event = conn.expect(("peer_joined", "peer_left"), timeout=WAIT, peer=name)
        seen.append(event["type"])
        if event["type"] == until:
            return seen


def test_a_private_message_crosses_nodes(three):
    n1, _, n3 = three
    alice, bob = client(n1, "alice", register=True), client(n3, "bob", register=True)
    ack = alice.request(command="chat", peer="bob", message="hello from node 1", reply="chat_ack")
    got = bob.expect("private_message", peer="alice")
    assert got["message"] == "hello from node 1" and got["id"] == ack["id"]
    bob.request(command="chat", peer="alice", message="hello back", reply="chat_ack")
    assert alice.expect("private_message", peer="bob")["message"] == "hello back"


def test_one_user_on_two_nodes_makes_one_join_and_one_leave(three):
    n1, n2, n3 = three
    client(n2, "alice", register=True).close()
    watcher = client(n1, "carol", register=True)
    first = client(n2, "alice")
    second = client(n3, "alice")
    assert watcher.expect("peer_joined", peer="alice")
    first.close()
    second.request(command="ping")
    second.close()
    assert events_about(watcher, "alice", "peer_left") == ["peer_left"], "no second join, and one leave"


def test_a_killed_node_has_its_users_marked_offline_and_no_acked_message_is_lost(three):
    n1, n2, n3 = three
    client(n3, "bob", register=True).close()
    watcher = client(n1, "carol", register=True)
    alice = client(n2, "alice", register=True)
    watcher.expect("peer_joined", peer="alice")
    acked = [alice.request(command="chat", peer="bob", message=f"m{n}", reply="chat_ack")["id"] for n in range(20)]
    n2.kill()
    assert watcher.expect("peer_left", peer="alice", timeout=15)
    bob = TestClient(n3.address, timeout=WAIT)
    bob.send(command="login", username="bob", password=PASSWORD, since=0)
    got = [bob.expect("private_message", peer="alice")["id"] for _ in acked]
    assert got == acked
    bob.expect("caught_up")


def test_a_client_resumes_on_another_node_with_nothing_missed_or_doubled(three):
    n1, n2, n3 = three
    alice = client(n2, "alice", register=True)
    bob = TestClient(n1.address, timeout=WAIT)
    assert bob.request(command="register", username="bob", password=PASSWORD)["response"] == "ok"
    token = bob.request(command="login", username="bob", password=PASSWORD, device="laptop")["token"]
    before = [alice.request(command="chat", peer="bob", message=f"seen {n}", reply="chat_ack")["id"] for n in range(5)]
    assert [bob.expect("private_message")["id"] for _ in before] == before
    bob.close()
    missed = [alice.request(command="chat", peer="bob", message=f"missed {n}", reply="chat_ack")["id"]
              for n in range(5)]
    again = TestClient(n3.address, timeout=WAIT)
    again.send(command="login", username="bob", token=token, since=before[-1])
    assert again.expect("login_result")["response"] == "ok"
    caught_up = again.expect("caught_up")
    delivered = [m["id"] for m in again.sync() + again.backlog if isinstance(m, dict) and m.get("type") == "private_message"]
    assert caught_up["complete"] and delivered == missed


@pytest.fixture
def three_with_rooms(start_node, cluster_env):
    return [start_node(cluster_env, plugins=("auth", "chat", "rooms"), env=NODE_ENV) for _ in range(3)]


def v2_client(node, name, register=False):
    """A protocol-2 client (it gets room events) of ``node`` logged in as ``name``."""
    conn = TestClient(node.address, timeout=WAIT)
    conn.request(command="hello", protocol=2, reply="hello")
    if register:
        assert conn.request(command="register", username=name, password=PASSWORD)["response"] == "ok"
    assert conn.request(command="login", username=name, password=PASSWORD, reply="login_result")["response"] == "ok"
    return conn


def test_a_room_message_crosses_nodes(three_with_rooms):
    n1, _, n3 = three_with_rooms
    alice, bob = v2_client(n1, "alice", register=True), v2_client(n3, "bob", register=True)
    alice.request(command="room_create", room="ops", reply="room_create_result")
    bob.request(command="room_join", room="ops", reply="room_join_result")
    ack = alice.request(command="room_message", room="ops", message="deploy at noon", reply="room_ack")
    got = bob.expect("room_message", room="ops")
    assert (got["seq"], got["sender"], got["message"]) == (ack["seq"], "alice", "deploy at noon")


def test_two_senders_on_two_nodes_give_every_receiver_one_gapless_order(three_with_rooms):
    n1, n2, n3 = three_with_rooms
    alice, bob = v2_client(n1, "alice", register=True), v2_client(n2, "bob", register=True)
    carol, dave = v2_client(n3, "carol", register=True), v2_client(n1, "dave", register=True)
    alice.request(command="room_create", room="general", reply="room_create_result")
    for member in (bob, carol, dave):
        member.request(command="room_join", room="general", reply="room_join_result")
    for n in range(30):  # both pipelines full at once: the nodes' writers race for every seq
        alice.send(command="room_message", room="general", message=f"a{n}")
        bob.send(command="room_message", room="general", message=f"b{n}")
    acked = sorted([alice.expect("room_ack")["seq"] for _ in range(30)] + [bob.expect("room_ack")["seq"] for _ in range(30)])
    assert acked == list(range(1, 61))
    seen = {}
    for name, receiver in (("carol", carol), ("dave", dave)):
        messages = [receiver.expect("room_message", room="general") for _ in range(60)]
        seen[name] = [(m["seq"], m["sender"], m["message"]) for m in messages]
        assert [seq for seq, _, _ in seen[name]] == list(range(1, 61)), f"{name} saw a gap or a repeat"
    assert seen["carol"] == seen["dave"]
    assert [text for _, sender, text in seen["carol"] if sender == "alice"] == [f"a{n}" for n in range(30)]
