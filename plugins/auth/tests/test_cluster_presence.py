"""Presence across the nodes of a cluster: one ``peer_joined`` and one ``peer_left`` however
many nodes and sessions a user has, the user list at login holds every node's users, the
users of a node killed with ``kill -9`` go offline within the heartbeat's TTL and a sweep,
and a Redis that restarts empty costs no false events."""

from __future__ import annotations

import threading

import pytest

from chatcore.testing import PASSWORD

LOST_WITHIN = 15.0  # seconds: the bound issue 18 sets for a killed node's users to go offline


@pytest.fixture
def nodes(make_server, cluster_env, tmp_path):
    return [make_server(plugins=["auth"], env=cluster_env, data_dir=tmp_path / name) for name in ("a", "b")]


def presence_of(messages, peer):
    """The peer events about ``peer`` among ``messages``, in order."""
    return [m["type"] for m in messages if m.get("type") in ("peer_joined", "peer_left") and m.get("peer") == peer]


def test_a_user_on_two_nodes_joins_once_and_leaves_once_everywhere(nodes, login_as, connect):
    a, b = nodes
    on_a, on_b = login_as(a, "watcher_a"), login_as(b, "watcher_b")
    assert on_a.expect("peer_joined", peer="watcher_b")
    batched = connect(b)
    assert batched.request(command="hello", client="test", protocol=2, presence="batched")["presence"] == "batched"
    batched.login("batched_b", PASSWORD, register=True)

    laptop = login_as(a, "Uma")
    phone = login_as(b, "uma", register=False)
    tablet = login_as(a, "uma", register=False)
    for watcher in (on_a, on_b):
        assert watcher.expect("peer_joined", peer="Uma")
    assert batched.expect("presence", joined=["Uma"])["left"] == []
    for session in (laptop, phone):
        session.close()
    assert on_b.request(command="get_users")["data"] == ["batched_b", "Uma", "watcher_a"]
    tablet.close()
    for watcher in (on_a, on_b):
        assert watcher.expect("peer_left", peer="Uma")
    assert batched.expect("presence", left=["Uma"])["joined"] == []

    login_as(b, "marker_b"), login_as(a, "marker_a")  # sent after every event about Uma, from each node
    for watcher in (on_a, on_b):
        watcher.expect("peer_joined", peer="marker_b")
        watcher.expect("peer_joined", peer="marker_a")
        assert presence_of(watcher.sync(), "Uma") == []  # nothing more: once each


def test_the_user_list_at_login_holds_the_users_of_every_node(nodes, login_as):
    a, b = nodes
    login_as(a, "vera")
    login_as(a, "walt")
    late = login_as(b, "xena")
    assert late.request(command="get_users")["data"] == ["vera", "walt"]
    assert login_as(a, "yann").request(command="get_users")["data"] == ["vera", "walt", "xena"]


def test_the_users_of_a_killed_node_go_offline_once(make_server, start_node, cluster_env, tmp_path, login_as,
                                                    connect):
    fast = {"CHATCORE_NODE_TTL": "2"}
    here = make_server(plugins=["auth"], env={**cluster_env, **fast}, data_dir=tmp_path / "here")
    other = make_server(plugins=["auth"], env={**cluster_env, **fast}, data_dir=tmp_path / "other")
    doomed = start_node(cluster_env, plugins=("auth",), env=fast)
    watchers = [login_as(here, "watcher"), login_as(other, "watcher2")]
    zed = connect(doomed)
    zed.login("zed", PASSWORD, register=True)
    both = connect(doomed)
    both.login("amy", PASSWORD, register=True)
    also_here = login_as(here, "amy", register=False)  # amy stays online: she has a session on a live node
    for watcher in watchers:
        watcher.expect("peer_joined", peer="zed")
    doomed.kill()
    for watcher in watchers:
        assert watcher.expect("peer_left", timeout=LOST_WITHIN, peer="zed")
    assert "zed" not in watchers[0].request(command="get_users")["data"]
    assert "amy" in watchers[1].request(command="get_users")["data"]
    login_as(here, "marker")
    for watcher in watchers:
        watcher.expect("peer_joined", peer="marker")
        arrived = watcher.sync()
        assert presence_of(arrived, "zed") == [] and "peer_left" not in presence_of(arrived, "amy")
    assert also_here.request(command="ping")["type"] == "pong"


def test_a_node_claimed_as_dead_while_alive_registers_its_users_again(nodes, login_as):
    a, b = nodes
    watcher = login_as(b, "watcher")
    login_as(a, "zoe")
    watcher.expect("peer_joined", peer="zoe")
    b.pm.get_plugin("auth").presence.node_lost(a.cluster.node_id)  # as if a's heartbeat had lapsed
    watcher.expect("peer_left", peer="zoe")
    watcher.expect("peer_joined", peer="zoe")  # a's next check finds its entries gone and restores them
    assert watcher.request(command="get_users")["data"] == ["zoe"]


def test_presence_and_logins_ride_out_a_redis_that_restarts_empty(make_server, cluster_env, private_redis, tmp_path,
                                                                 login_as, connect):
    env = {**cluster_env, "CHATCORE_REDIS_URL": private_redis.url, "CHATCORE_NODE_TTL": "2"}
    a, b = (make_server(plugins=["auth"], env=env, data_dir=tmp_path / name) for name in ("a", "b"))
    watcher = login_as(b, "watcher")
    quinn = login_as(a, "quinn")
    watcher.expect("peer_joined", peer="quinn")
    connect(a).request(command="register", username="rita", password=PASSWORD)
    private_redis.stop()
    rita = connect(a)
    rita.login("rita", PASSWORD)  # no Redis: throttling lets it through, presence catches up later
    private_redis.start()  # empty: every presence entry is gone
    watcher.expect("peer_joined", peer="rita")  # a registered its users again
    for node in (a, b):
        assert node.pm.get_plugin("auth").presence.wait_refreshed()
    b.pm.get_plugin("auth").presence.resync()  # what the bus asks for after the outage
    assert watcher.request(command="get_users")["data"] == ["quinn", "rita"]
    assert presence_of(watcher.sync(), "quinn") == []  # quinn never left
    quinn.close()
    watcher.expect("peer_left", peer="quinn")
    assert presence_of(watcher.sync(), "quinn") == []


def test_a_dead_node_nobody_claimed_is_cleaned_up_by_the_presence_sweep(make_server, start_node, cluster_env,
                                                                        tmp_path, login_as, connect):
    fast = {"CHATCORE_NODE_TTL": "2"}
    here = make_server(plugins=["auth"], env={**cluster_env, **fast}, data_dir=tmp_path / "here")
    doomed = start_node(cluster_env, plugins=("auth",), env=fast)
    watcher = login_as(here, "watcher")
    connect(doomed).login("nia", PASSWORD, register=True)
    watcher.expect("peer_joined", peer="nia")
    doomed.kill()
    here.cluster.redis.srem(cluster_env["CHATCORE_REDIS_PREFIX"] + "nodes", doomed.node_id)  # its claim is lost
    assert watcher.expect("peer_left", timeout=LOST_WITHIN, peer="nia")
    assert "nia" not in watcher.request(command="get_users")["data"]


def test_a_resync_keeps_what_changed_after_it_read_redis(nodes, login_as):
    """A login applied between the resync's read of Redis and its comparison is newer than
    that read: the resync must not announce the user as gone."""
    a, _ = nodes
    watcher = login_as(a, "watcher")
    presence = a.pm.get_plugin("auth").presence
    read, compare = threading.Event(), threading.Event()

    def snapshot_then_wait(*args, original=presence._snapshot, **kwargs):
        result = original(*args, **kwargs)
        read.set()
        assert compare.wait(10)
        return result

    presence._snapshot = snapshot_then_wait
    resync = threading.Thread(target=presence.resync)
    resync.start()
    assert read.wait(10)
    login_as(a, "zoe")  # registered in Redis and applied after the read
    compare.set()
    resync.join(10)
    login_as(a, "marker")  # announced after anything the resync queued
    assert watcher.expect("peer_joined", peer="marker")
    assert presence_of(watcher.backlog, "zoe") == ["peer_joined"]
    assert watcher.request(command="get_users")["data"] == ["marker", "zoe"]
