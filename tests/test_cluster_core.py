"""The core of cluster mode on real PostgreSQL and Redis: the bus between nodes, the node
registry, migrations, the shared certificate, and riding out a restart of either service."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time

import pytest
import redis

from chatcore.cluster import Bus, Database, NodeRegistry
from chatcore.cluster.database import DatabaseUnavailable
from chatcore.config import ConfigError
from chatcore.testing import server_config

WAIT = 10.0


def wait_until(condition, timeout=WAIT):
    """Poll ``condition`` until true (True) or the timeout (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def two_nodes(make_server, cluster_env, tmp_path, **env):
    return [make_server(env={**cluster_env, **env}, data_dir=tmp_path / name) for name in ("a", "b")]


def test_an_event_published_on_one_node_reaches_the_others_and_not_itself(make_server, cluster_env, tmp_path):
    a, b = two_nodes(make_server, cluster_env, tmp_path)
    heard = {"a": queue.Queue(), "b": queue.Queue()}
    a.cluster.bus.subscribe("greeting", heard["a"].put)
    b.cluster.bus.subscribe("greeting", heard["b"].put)
    for number in range(100):
        a.cluster.bus.publish("greeting", {"n": number, "text": "héllo \U0001f600"})
    assert [heard["b"].get(timeout=WAIT)["n"] for _ in range(100)] == list(range(100))
    b.cluster.bus.publish("greeting", {"n": "from b"})
    assert heard["a"].get(timeout=WAIT) == {"n": "from b"}
    assert a.cluster.bus.flush() and heard["a"].empty(), "a node does not hear its own events"
    assert a.cluster.node_id != b.cluster.node_id
    assert sorted(a.cluster.nodes.alive()) == sorted([a.cluster.node_id, b.cluster.node_id])


def test_a_failing_subscriber_does_not_stop_the_reader(make_server, cluster_env, tmp_path):
    a, b = two_nodes(make_server, cluster_env, tmp_path)
    got = queue.Queue()

    def fussy(event):
        if event["n"] == 0:
            raise ValueError("a plugin's bug")
        got.put(event["n"])

    b.cluster.bus.subscribe("t", fussy)
    a.cluster.bus.publish("t", {"n": 0})
    a.cluster.bus.publish("t", {"n": 1})
    assert got.get(timeout=WAIT) == 1


def test_every_node_serves_the_same_certificate(make_server, cluster_env, tmp_path):
    a, b = two_nodes(make_server, cluster_env, tmp_path)
    assert a.tls_fingerprint and a.tls_fingerprint == b.tls_fingerprint
    alone = make_server(data_dir=tmp_path / "single")
    assert alone.cluster is None and alone.tls_fingerprint != a.tls_fingerprint


def test_a_node_that_stops_beating_is_claimed_by_exactly_one_other(cluster_env):
    client = redis.Redis.from_url(cluster_env["CHATCORE_REDIS_URL"])
    prefix = cluster_env["CHATCORE_REDIS_PREFIX"]
    ghost = NodeRegistry(client, prefix, "ghost", ttl=1.0)
    ghost.beat()  # then never again, as if killed
    claims: "queue.Queue[tuple[str, str]]" = queue.Queue()
    watchers = [NodeRegistry(client, prefix, name, ttl=1.0) for name in ("w1", "w2", "w3")]
    for watcher in watchers:
        watcher.on_node_lost(lambda node, me=watcher.node_id: claims.put((me, node)))
        watcher.start()
    try:
        claimer, lost = claims.get(timeout=WAIT)
        assert lost == "ghost"
        for watcher in watchers:  # every watcher has swept at least once more: nobody claims it again
            watcher.sweep()
        assert claims.empty()
        assert "ghost" not in watchers[0].alive()
    finally:
        for watcher in watchers:
            watcher.stop()
        client.close()


def test_migrate_creates_the_schemas_and_refuses_a_newer_one(cluster_env, tmp_path, postgres_url):
    env = {**os.environ, **cluster_env, "STORAGE_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "chatcore", "migrate"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "chatcore     version 1" in done.stdout
    database = Database(postgres_url)
    database.open()
    try:
        schema = database.schema("chatcore")
        assert schema.version() == 1
        with pytest.raises(RuntimeError, match="newer than this chatcore knows"):
            schema.migrate([])
        assert schema.migrate(["SELECT 1", "CREATE TABLE extra (x int)"]) == 2  # an upgrade applies once
        assert schema.migrate(["SELECT 1", "CREATE TABLE extra (x int)"]) == 2
    finally:
        database.close()
    unset = subprocess.run([sys.executable, "-m", "chatcore", "migrate"], capture_output=True, text=True,
                           env={**os.environ, "STORAGE_DIR": str(tmp_path / "data")}, cwd=tmp_path, timeout=60)
    assert unset.returncode == 2 and "CHATCORE_DATABASE_URL" in unset.stderr


def test_one_url_without_the_other_is_a_configuration_error(tmp_path, cluster_env):
    from chatcore.server import ChatServer

    config = server_config(tmp_path / "d", [], {"CHATCORE_DATABASE_URL": cluster_env["CHATCORE_DATABASE_URL"]})
    with pytest.raises(ConfigError, match="both"):
        ChatServer(config).open()


def test_the_bus_loses_nothing_when_redis_restarts_and_asks_for_a_resync(private_redis):
    def bus(name):
        client = redis.Redis.from_url(private_redis.url, socket_timeout=2, socket_connect_timeout=2)
        return Bus(client, "t:", name, block_ms=200)

    sender, receiver = bus("sender"), bus("receiver")
    got: "queue.Queue[int]" = queue.Queue()
    resynced = threading.Event()
    receiver.subscribe("n", lambda event: got.put(event["n"]))
    receiver.on_resync(resynced.set)
    sender.start()
    receiver.start()
    try:
        for number in range(50):
            sender.publish("n", {"n": number})
        assert [got.get(timeout=WAIT) for _ in range(50)] == list(range(50))
        private_redis.stop()
        for number in range(50, 100):  # while Redis is down: held in the outbox
            sender.publish("n", {"n": number})
        private_redis.start()
        assert resynced.wait(WAIT), "the receiver was told it may have missed events"
        assert sender.flush(WAIT)
        assert sorted(got.get(timeout=WAIT) for _ in range(50)) == list(range(50, 100))
    finally:
        sender.stop()
        receiver.stop()


def test_the_pool_recovers_when_postgresql_restarts(private_postgres):
    database = Database(private_postgres.url, min_size=2, max_size=4, timeout=20)
    database.open()
    try:
        schema = database.schema("probe")
        schema.migrate(["CREATE TABLE t (n int)"])
        with schema.connection() as conn:
            conn.execute("INSERT INTO t VALUES (1)")
        private_postgres.restart()
        with schema.connection() as conn:  # the pool replaces the connections the restart broke
            conn.execute("INSERT INTO t VALUES (2)")
        with schema.connection() as conn:
            assert conn.execute("SELECT n FROM t ORDER BY n").fetchall() == [(1,), (2,)]
        private_postgres.stop()
        database.timeout = 1.0
        with pytest.raises(DatabaseUnavailable):
            with schema.connection() as conn:
                conn.execute("SELECT 1")
    finally:
        database.close()


def test_nodes_run_as_processes_and_a_killed_one_is_claimed(start_node, cluster_env):
    first = start_node(cluster_env, plugins=(), env={"CHATCORE_NODE_TTL": "1"})
    second = start_node(cluster_env, plugins=(), env={"CHATCORE_NODE_TTL": "1"})
    first.kill()
    second.wait_for(rf"node {re.escape(first.node_id)} stopped beating")
    assert second.stop() == 0


def test_import_sqlite_keeps_the_single_nodes_certificate_so_pins_hold(make_server, cluster_env, tmp_path):
    single = make_server(data_dir=tmp_path / "single")
    pinned = single.tls_fingerprint
    single.stop()
    env = {**os.environ, **cluster_env}
    done = subprocess.run([sys.executable, "-m", "chatcore", "import-sqlite", "--data-dir", str(tmp_path / "single")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "imported the TLS certificate" in done.stdout
    node = make_server(env=cluster_env, data_dir=tmp_path / "node")
    assert node.tls_fingerprint == pinned
    missing = subprocess.run([sys.executable, "-m", "chatcore", "import-sqlite", "--data-dir", str(tmp_path / "nothing")],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert missing.returncode == 2 and "no data directory" in missing.stderr


def test_metrics_and_readiness_show_the_cluster(make_server, cluster_env, private_redis, tmp_path):
    from chatcore.testing import http_get, scrape

    env = {**cluster_env, "CHATCORE_REDIS_URL": private_redis.url, "CHATCORE_METRICS_ADDRESS": "127.0.0.1:0"}
    a = make_server(env=env, data_dir=tmp_path / "a")
    make_server(env=env, data_dir=tmp_path / "b")
    samples = scrape(a)
    assert samples.value("chatcore_cluster_nodes") == 2
    assert samples.value("chatcore_bus_connected") == 1
    assert samples.value("chatcore_database_connections") >= 1
    assert http_get(a, "/readyz")[0] == 200
    private_redis.stop()
    assert wait_until(lambda: not a.cluster.bus.connected.is_set()), "the reader notices at its next read"
    status, _, body = http_get(a, "/readyz")
    assert status == 503 and b"bus" in body
    private_redis.start()
    assert a.cluster.bus.connected.wait(WAIT)
    assert http_get(a, "/readyz")[0] == 200


def test_backup_in_cluster_mode_says_the_database_needs_pg_dump(cluster_env, tmp_path):
    env = {**os.environ, **cluster_env, "STORAGE_DIR": str(tmp_path / "data")}
    (tmp_path / "data").mkdir()
    done = subprocess.run([sys.executable, "-m", "chatcore", "backup", str(tmp_path / "copy")], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pg_dump" in done.stderr
