"""Chat across the nodes of a cluster (in-process nodes, and one ``chatcore serve`` process to
kill, on the machine's PostgreSQL and Redis): private and broadcast messages cross nodes, one
order per conversation, offline delivery and catch-up on another node, a Redis restart and a
full outbox losing nothing, a slow client stalling nobody, cluster-wide quotas and retention,
typing and message changes across nodes, PostgreSQL restarting, a killed node's users."""

from __future__ import annotations

import threading

import pytest

from chatcore import hookimpl
from chatcore.testing import PASSWORD

WAIT = 15.0
CHAT = ("private_message", "broadcast_message")


@pytest.fixture
def nodes(cluster_env, chat_server, tmp_path):
    """``nodes(count=2, env={...})``: in-process chat nodes of one cluster."""

    def factory(count=2, env=None):
        return [chat_server(env={**cluster_env, **(env or {})}, data_dir=tmp_path / f"node{index}")
                for index in range(count)]

    return factory


@pytest.fixture
def user(connect, known):
    """``user(home, node, name, v2=False, **login)``: a client of ``name`` logged in on ``node``;
    the account is registered on ``home`` first (once), and is the cluster's."""
    registered: set[str] = set()

    def factory(home, node, name, v2=False, **login):
        if name not in registered:
            known(home, name)
            registered.add(name)
        client = connect(node, timeout=WAIT)
        if v2:
            assert client.request(command="hello", client="tests", protocol=2)["protocol"] == 2
        reply = client.request(command="login", username=name, password=PASSWORD, **login)
        assert reply.get("response") == "ok", reply
        client.backlog = client.sync() + client.backlog
        return client

    return factory


def events(client, count, kinds=CHAT):
    """The next ``count`` chat events ``client`` receives (in order)."""
    return [client.expect(kinds, timeout=WAIT) for _ in range(count)]


def test_a_private_message_crosses_nodes(nodes, user, known, chat):
    a, b = nodes()
    alice = user(a, a, "alice")
    known(b, "alice")
    bob = user(a, b, "bob", v2=True)
    ack = chat(alice, "bob", "hello from node a")
    assert ack["type"] == "chat_ack" and ack["peer"] == "bob"
    got = bob.expect("private_message", timeout=WAIT)
    assert (got["peer"], got["to"], got["message"], got["id"], got["ts"]) == (
        "alice", "bob", "hello from node a", ack["id"], ack["ts"])
    assert "offline" not in got
    reply = chat(bob, "alice", "and back")
    assert alice.expect("private_message", timeout=WAIT)["id"] == reply["id"] > ack["id"]
    history = bob.request(command="get_history", peer="alice")
    assert [m["message"] for m in history["messages"]] == ["hello from node a", "and back"]


def test_a_broadcast_reaches_sessions_on_every_node(nodes, user, chat):
    a, b = nodes()
    alice = user(a, a, "alice")
    carol = user(a, a, "carol")
    bob = user(a, b, "bob")
    dave = user(a, b, "dave")
    ack = chat(alice, "", "to everyone")
    for client in (carol, bob, dave):
        got = client.expect("broadcast_message", timeout=WAIT)
        assert (got["peer"], got["message"], got["id"]) == ("alice", "to everyone", ack["id"])
    assert not [m for m in alice.sync() if m.get("type") == "broadcast_message"], "no echo to the sender"


def test_two_senders_on_two_nodes_give_every_receiver_one_gapless_order(nodes, user, chat):
    a, b = nodes()
    alice_a = user(a, a, "alice", v2=True)
    alice_b = user(a, b, "alice", v2=True)
    bob_a = user(a, a, "bob", v2=True)
    bob_b = user(a, b, "bob", v2=True)
    count = 40
    for number in range(count):  # pipelined from both nodes at once: their commits interleave
        alice_a.send(command="chat", peer="bob", message=f"a{number}", client_id=f"a{number}")
        alice_b.send(command="chat", peer="bob", message=f"b{number}", client_id=f"b{number}")
    acks = events(alice_a, count, "chat_ack") + events(alice_b, count, "chat_ack")
    stored = sorted(ack["id"] for ack in acks)
    for bob in (bob_a, bob_b):
        assert [m["id"] for m in events(bob, 2 * count)] == stored
    for alice, other in ((alice_b, "a"), (alice_a, "b")):  # each device sees the other's, in order
        copies = events(alice, count)
        assert [m["message"] for m in copies] == [f"{other}{n}" for n in range(count)]
        assert [m["id"] for m in copies] == sorted(m["id"] for m in copies)
    history = bob_b.request(command="get_history", peer="alice", limit=500)
    assert [m["id"] for m in history["messages"]] == stored
    for bob in (bob_a, bob_b):
        assert not [m for m in bob.sync() if m.get("type") in CHAT], "nothing twice"


def test_an_offline_message_stored_on_one_node_arrives_at_login_on_another(nodes, user, known, chat):
    a, b = nodes()
    alice = user(a, a, "alice")
    known(a, "bob")  # bob exists (on both nodes) and has no session anywhere
    known(b, "bob")
    first = chat(alice, "bob", "while you were away")
    second = chat(alice, "bob", "and this too")
    bob = user(a, b, "bob", v2=True)
    got = events(bob, 2)
    assert [(m["id"], m.get("offline")) for m in got] == [(first["id"], True), (second["id"], True)]
    assert bob.expect("offline_done", timeout=WAIT) == {"type": "offline_done", "delivered": 2, "remaining": 0}
    live = chat(alice, "bob", "now live")
    assert bob.expect("private_message", timeout=WAIT)["id"] == live["id"]
    again = user(a, a, "bob")  # a later login elsewhere: already delivered
    assert not [m for m in again.sync() if m.get("type") in CHAT]


def test_catch_up_on_another_node_misses_nothing_and_doubles_nothing(nodes, user, chat):
    a, b = nodes()
    alice = user(a, a, "alice")
    bob = user(a, a, "bob", v2=True)
    seen = chat(alice, "bob", "seen")
    assert bob.expect("private_message", timeout=WAIT)["id"] == seen["id"]
    bob.close()
    missed = [chat(alice, "bob", f"missed {n}")["id"] for n in range(3)]
    missed.append(chat(alice, "", "a broadcast")["id"])
    bob = user(a, b, "bob", v2=True, since=seen["id"])
    assert [m["id"] for m in events(bob, 4)] == missed
    done = bob.expect("caught_up", timeout=WAIT)
    assert (done["complete"], done["delivered"], done["last_id"]) == (True, 4, missed[-1])
    after = chat(alice, "bob", "live again")
    assert [m["id"] for m in events(bob, 1)] == [after["id"]]
    assert not [m for m in bob.sync() if m.get("type") in CHAT]


def test_a_redis_restart_mid_traffic_loses_no_message(nodes, user, cluster_env, private_redis, chat):
    a, b = nodes(env={"CHATCORE_REDIS_URL": private_redis.url})
    alice = user(a, a, "alice")
    bob = user(a, b, "bob")
    acks = [chat(alice, "bob", f"before {n}")["id"] for n in range(5)]
    assert [m["id"] for m in events(bob, 5)] == acks
    private_redis.stop()
    during = [chat(alice, "bob", f"during {n}")["id"] for n in range(5)]  # stored: PostgreSQL is up
    private_redis.start()
    after = [chat(alice, "bob", f"after {n}")["id"] for n in range(5)]
    assert [m["id"] for m in events(bob, 10)] == during + after
    assert not [m for m in bob.sync() if m.get("type") in CHAT]


def test_events_dropped_from_a_full_outbox_are_read_back_from_postgresql(nodes, user, private_redis):
    a, b = nodes(env={"CHATCORE_REDIS_URL": private_redis.url, "CHATCORE_BUS_OUTBOX": "100"})
    alice = user(a, a, "alice")
    bob = user(a, b, "bob")
    private_redis.stop()
    for number in range(130):  # the outbox keeps the newest 100: 30 events are gone for good
        alice.send(command="chat", peer="bob", message=f"m{number}")
    acks = [ack["id"] for ack in events(alice, 130, "chat_ack")]
    private_redis.start()
    assert [m["id"] for m in events(bob, 130)] == acks  # the gap filled from the database, in order
    assert b.cluster.bus.resyncs >= 1
    assert not [m for m in bob.sync() if m.get("type") in CHAT]


def test_a_client_that_never_reads_does_not_stall_delivery_through_the_bus(nodes, user, chat):
    a, b = nodes(env={"CHATCORE_SEND_BUFFER": "256K"})
    alice = user(a, a, "alice")
    user(a, b, "sleeper")  # logged in on b, then never reads again
    carol = user(a, b, "carol")
    text = "x" * 3990
    sent = []
    for round_ in range(200):  # at most 200 x 20 x 4 KB = 16 MB: far past any socket buffers
        numbers = range(round_ * 20, round_ * 20 + 20)
        for number in numbers:
            alice.send(command="chat", peer="", message=f"{number} {text}")
        events(alice, 20, "chat_ack")
        sent += numbers
        assert [int(m["message"].split()[0]) for m in events(carol, 20)] == list(numbers)
        if not b.sessions.of_user("sleeper"):
            break
    assert not b.sessions.of_user("sleeper"), "the core drops a client at its send limit"
    last = chat(alice, "", "after the drop")
    assert carol.expect("broadcast_message", timeout=WAIT)["id"] == last["id"]


def test_quotas_count_the_whole_cluster(nodes, user, known, chat):
    a, b = nodes(env={"CHATCORE_CHAT_SENDER_DAILY_MESSAGES": "4", "CHATCORE_CHAT_PENDING_MAX_MESSAGES": "2"})
    alice_a = user(a, a, "alice")
    alice_b = user(a, b, "alice")
    for node in (a, b):
        known(node, "carol")  # offline everywhere: what alice sends her waits
    assert chat(alice_a, "carol", "one")["type"] == "chat_ack"
    assert chat(alice_b, "carol", "two")["type"] == "chat_ack"
    full = chat(alice_a, "carol", "three")
    assert full["code"] == "recipient_full", full  # two wait for her, whichever node took them
    assert chat(alice_b, "", "three")["type"] == "chat_ack"
    assert chat(alice_a, "", "four")["type"] == "chat_ack"
    over = chat(alice_b, "", "five")
    assert over["code"] == "daily_quota" and over["retry_after"] > 0, over


def test_typing_reaches_the_other_side_on_another_node(nodes, user, known):
    a, b = nodes(env={"CHATCORE_CHAT_TYPING_INTERVAL": "0"})
    alice = user(a, a, "alice", v2=True)
    known(b, "alice")
    bob = user(a, b, "bob", v2=True)
    for _ in range(20):  # pub/sub: a node's listener may subscribe a moment after it starts
        alice.send(command="typing", peer="bob")
        try:
            got = bob.expect("typing", timeout=1)
            break
        except AssertionError:
            continue
    assert got == {"type": "typing", "sender": "alice", "to": "bob", "expires_in": 6.0}
    assert "typing" not in [m.get("type") for m in alice.sync()]


def test_edits_deletions_and_reactions_reach_the_other_node_and_replay_there(nodes, user, known, chat):
    a, b = nodes()
    alice = user(a, a, "alice", v2=True)
    known(b, "alice")
    bob = user(a, b, "bob", v2=True)
    sent = chat(alice, "bob", "helo")
    assert bob.expect("private_message", timeout=WAIT)["id"] == sent["id"]
    edited = alice.request(command="message_edit", peer="bob", id=sent["id"], message="hello")
    got = bob.expect("message_edited", timeout=WAIT)
    assert (got["id"], got["message"], got["change_id"]) == (sent["id"], "hello", edited["change_id"])
    reacted = bob.request(command="message_react", peer="alice", id=sent["id"], emoji="+1")
    assert alice.expect("message_reactions", timeout=WAIT)["reactions"] == reacted["reactions"] == [
        {"emoji": "+1", "count": 1, "users": ["bob"]}]
    found = bob.request(command="search", query="HELLO")
    assert [hit["id"] for hit in found["results"]] == [sent["id"]]
    history = alice.request(command="get_history", peer="bob")
    assert history["last_change_id"] == reacted["change_id"]
    bob.close()
    other = chat(alice, "bob", "to delete")
    deleted = alice.request(command="message_delete", peer="bob", id=other["id"])
    again = user(a, a, "bob", v2=True, since=sent["id"], changes_since=edited["change_id"])
    replayed = [again.expect(("private_message", "message_deleted", "message_reactions"), timeout=WAIT)
                for _ in range(2)]
    assert [(m["type"], m["id"]) for m in replayed] == [("message_reactions", sent["id"]),
                                                        ("message_deleted", other["id"])]
    done = again.expect("caught_up", timeout=WAIT)
    assert done["changes_complete"] and done["last_change_id"] == deleted["change_id"]
    assert not alice.request(command="search", query="delete")["results"]


def test_a_postgresql_restart_answers_unavailable_then_chat_goes_on(nodes, user, private_postgres, chat):
    (a,) = nodes(count=1, env={"CHATCORE_DATABASE_URL": private_postgres.url, "CHATCORE_DATABASE_TIMEOUT": "3"})
    alice = user(a, a, "alice")
    bob = user(a, a, "bob")
    before = chat(alice, "bob", "before")
    private_postgres.stop()
    refused = chat(alice, "bob", "while it is down")
    assert refused["type"] == "error" and refused["code"] == "unavailable", refused
    private_postgres.start()
    after = chat(alice, "bob", "after")
    assert after["type"] == "chat_ack" and after["id"] > before["id"]
    assert [m["message"] for m in events(bob, 2)] == ["before", "after"]


def test_the_users_of_a_killed_node_get_their_messages_at_their_next_login(nodes, user, known, chat, settle,
                                                                          start_node, cluster_env):
    fast = {"CHATCORE_AUTH_ARGON2_TIME_COST": "1", "CHATCORE_AUTH_ARGON2_MEMORY_KIB": "1024",
            "CHATCORE_NODE_TTL": "1"}
    (a,) = nodes(count=1, env={"CHATCORE_NODE_TTL": "1"})
    lost = threading.Event()
    a.cluster.nodes.on_node_lost(lambda node_id: lost.set())  # after chat's own handler
    b = start_node(cluster_env, env=fast)
    alice = user(a, a, "alice")
    user(a, b, "bob")  # bob's only session is on b
    b.kill()  # kill -9: b never says goodbye, its presence rows stay until a claims it
    assert lost.wait(WAIT), "a never saw b die"
    settle(a)  # chat's clean-up of b's sessions went through a's writer before this
    sent = chat(alice, "bob", "for when you are back")
    bob = user(a, a, "bob", v2=True)
    got = events(bob, 1)
    assert (got[0]["id"], got[0].get("offline")) == (sent["id"], True)


def test_one_node_runs_the_retention_sweeps(nodes, user, chat):
    from chatcore_chat.service import sweeper

    a, b = nodes(env={"CHATCORE_CHAT_RETENTION_COUNT": "2"})
    assert sorted([sweeper(a.cluster), sweeper(b.cluster)]) == [False, True]
    alice = user(a, a, "alice", v2=True)
    ids = [chat(alice, "", f"m{n}")["id"] for n in range(4)]
    on_duty = a if sweeper(a.cluster) else b
    assert on_duty.pm.get_plugin("chat").service.retention.sweep() == 2  # the count is the cluster's
    assert [m["id"] for m in alice.request(command="get_history", peer="")["messages"]] == ids[2:]


def test_the_service_calls_for_other_plugins_read_postgresql(nodes, user, chat):
    (a,) = nodes(count=1)
    alice, bob = user(a, a, "alice"), user(a, a, "bob")
    service = a.pm.get_plugin("chat").service
    start = service.newest_id()
    ids = [chat(alice, "bob", f"unread {n}")["id"] for n in range(3)]
    chat(bob, "alice", "a reply is not unread for bob")
    assert service.newest_id() == ids[-1] + 1
    assert service.unread("bob", "alice", start, ids[-1], 10) == 3
    assert service.unread("bob", "alice", ids[0], ids[-1], 1) == 1


class LogoutProbe:
    """Says when a user's session has logged out (after chat's own handling)."""

    def __init__(self, name):
        self.name, self.done = name, threading.Event()

    @hookimpl(trylast=True)
    def chat_logging_out(self, session):
        if session.user == self.name:
            self.done.set()


def test_a_message_that_reached_none_of_a_users_closing_sessions_waits_for_their_next_login(
        cluster_env, chat_server, tmp_path, user, chat, settle, writer_held):
    a = chat_server(env=cluster_env, data_dir=tmp_path / "a")
    probe = LogoutProbe("bob")
    b = chat_server(env=cluster_env, data_dir=tmp_path / "b", extra=[("logout-probe", probe)])
    alice = user(a, a, "alice")
    bob = user(a, b, "bob")
    heard = threading.Event()
    b.cluster.bus.subscribe("chat.message", lambda event: heard.set())  # after chat's own handler
    with writer_held(b):  # b learns of the message only after bob's session there is gone
        bob.close()
        assert probe.done.wait(WAIT)
        sent = chat(alice, "bob", "sent while bob's presence still counted")  # so it does not wait...
        assert heard.wait(WAIT)
    settle(b)
    settle(b)  # ...but b, finding no session of his to take it, keeps it for his next login
    again = user(a, a, "bob", v2=True)
    got = events(again, 1)
    assert (got[0]["id"], got[0].get("offline")) == (sent["id"], True)
