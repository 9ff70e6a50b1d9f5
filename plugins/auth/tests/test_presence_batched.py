"""Batched presence: a session that says ``hello`` with ``"presence": "batched"`` gets
``presence`` {joined, left} frames (each user's net change per announcer batch) instead of
one ``peer_joined``/``peer_left`` per user."""

from __future__ import annotations

import threading

import pytest

from chatcore import protocol
from chatcore.testing import PASSWORD
from chatcore_auth.presence import MAX_GATHER, NAMES_PER_FRAME, Change, _net_changes, batched_frames, gather_seconds


def batched_client(server, connect):
    client = connect(server)
    reply = client.request(command="hello", client="test", protocol=2, presence="batched")
    assert reply["presence"] == "batched"
    return client


def follow(client, online: set[str], until: set[str]) -> set[str]:
    """Apply ``presence`` frames to ``online`` until it equals ``until`` (fails after the client's timeout)."""
    while online != until:
        event = client.expect("presence")
        assert not set(event["joined"]) & set(event["left"]), event
        online |= set(event["joined"])
        online -= set(event["left"])
    return online


def test_hello_reports_the_presence_mode(server, connect):
    plain = connect(server).request(command="hello", client="test", protocol=2)
    assert plain["presence"] == "each"
    assert batched_client(server, connect)


def test_unknown_presence_mode_is_refused_and_the_session_goes_on(server, connect):
    client = connect(server)
    for bad in ("sometimes", 3, ["batched"], None):
        reply = client.request(command="hello", protocol=2, presence=bad)
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply
        assert "presence" in reply["reason"]
    client.login("alice", PASSWORD, register=True)


@pytest.mark.both_backends
def test_batched_session_gets_presence_frames_not_peer_events(server, connect, login_as):
    watcher = batched_client(server, connect)
    watcher.login("watcher", PASSWORD, register=True)
    legacy = login_as(server, "legacy")
    assert watcher.expect("presence") == {"type": "presence", "joined": ["legacy"], "left": []}
    bob = login_as(server, "bob")
    assert legacy.expect("peer_joined") == {"type": "peer_joined", "peer": "bob"}
    assert watcher.expect("presence") == {"type": "presence", "joined": ["bob"], "left": []}
    bob.close()
    assert watcher.expect("presence") == {"type": "presence", "joined": [], "left": ["bob"]}
    assert legacy.expect("peer_left") == {"type": "peer_left", "peer": "bob"}
    assert not [m for m in watcher.sync() if m.get("type") in ("peer_joined", "peer_left")]


@pytest.mark.both_backends
def test_batched_session_never_hears_about_its_own_user(server, connect):
    first = batched_client(server, connect)
    first.login("alice", PASSWORD, register=True)
    second = batched_client(server, connect)
    second.login("alice", PASSWORD)
    second.close()
    third = batched_client(server, connect)
    third.login("bob", PASSWORD, register=True)
    assert first.expect("presence") == {"type": "presence", "joined": ["bob"], "left": []}
    assert not [m for m in first.sync() if m.get("type") == "presence"]


@pytest.mark.both_backends
def test_login_storm_ends_with_the_watchers_view_equal_to_get_users(server, connect):
    watcher = batched_client(server, connect)
    watcher.login("watcher", PASSWORD, register=True)
    names = [f"user{i}" for i in range(24)]
    clients: dict[str, object] = {}

    def log_in(name: str) -> None:
        client = connect(server)
        client.login(name, PASSWORD, register=True)
        clients[name] = client

    threads = [threading.Thread(target=log_in, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(clients) == sorted(names)
    online = follow(watcher, set(), set(names))
    assert online == set(watcher.request(command="get_users")["data"])
    leaving = names[:10]
    for name in leaving:
        clients[name].close()
    online = follow(watcher, online, set(names[10:]))
    assert online == set(watcher.request(command="get_users")["data"])


def change(user: str, online: bool) -> Change:
    return Change(user.lower(), user, online, b"")


def test_net_changes_cancel_a_join_and_leave_within_one_batch():
    batch = [change("a", True), change("b", True), change("a", False), change("c", False),
             change("b", False), change("b", True)]
    net = _net_changes(batch)
    assert {key: c.online for key, c in net.items()} == {"b": True, "c": False}


def test_big_batches_are_split_into_frames_that_fit():
    joined = [f"{i:032d}" for i in range(NAMES_PER_FRAME * 2 + 7)]  # longest legal names
    left = [f"L{i:031d}" for i in range(NAMES_PER_FRAME // 2)]
    frames = list(batched_frames(joined, left))
    decoded = [protocol.decode(frame) for frame in frames]
    assert all(len(frame) - 2 <= protocol.MAX_FRAME for frame in frames)
    assert all(len(d["joined"]) + len(d["left"]) <= NAMES_PER_FRAME for d in decoded)
    assert [n for d in decoded for n in d["joined"]] == joined
    assert [n for d in decoded for n in d["left"]] == left


def test_a_batch_that_was_costly_to_write_lets_the_next_gather_longer_up_to_a_bound():
    assert gather_seconds(0.05, 0.0) == 0.05  # at ordinary rates: the configured delay
    assert gather_seconds(0.05, 0.001) == 0.05
    assert gather_seconds(0.05, 0.02) == pytest.approx(0.18)  # nine times the cost: a tenth of a core
    assert gather_seconds(0.05, 5.0) == MAX_GATHER
    assert gather_seconds(2.0, 5.0) == 2.0  # never shorter than the operator's delay
