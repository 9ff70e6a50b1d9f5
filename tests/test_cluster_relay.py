"""The operator's and administrators' actions reach the user's sessions on every node."""

from __future__ import annotations

from chatcore.control import handlers
from chatcore.testing import PASSWORD


def logged_in(connect, server, name):
    """A session of ``name`` on ``server``, registering the account where it is not known yet
    (per node while accounts are per node, once when they are shared)."""
    client = connect(server)
    reply = client.request(command="login", username=name, password=PASSWORD, reply="login_result")
    if reply.get("response") != "ok":
        client.request(command="register", username=name, password=PASSWORD, reply="register_result")
        reply = client.request(command="login", username=name, password=PASSWORD, reply="login_result")
    assert reply["response"] == "ok", reply
    return client


def nodes(make_server, cluster_env, tmp_path):
    return [make_server(plugins=["auth"], env={**cluster_env, "CHATCORE_AUTH_PRESENCE_DELAY": "0"},
                        data_dir=tmp_path / name) for name in ("a", "b")]


def test_a_kick_on_one_node_ends_the_users_sessions_on_the_other(make_server, connect, cluster_env, tmp_path):
    a, b = nodes(make_server, cluster_env, tmp_path)
    logged_in(connect, a, "alice").close()
    on_b = logged_in(connect, b, "alice")
    reply = handlers(a)["kick"]({"username": "alice", "reason": "spam"})
    assert reply["ok"] and reply["cluster"]
    ended = on_b.expect("session_ended", timeout=10)
    assert ended["code"] == "kicked" and "spam" in ended["reason"]
    on_b.expect_closed(timeout=10)


def test_an_announcement_reaches_every_node(make_server, connect, cluster_env, tmp_path):
    a, b = nodes(make_server, cluster_env, tmp_path)
    on_a, on_b = logged_in(connect, a, "alice"), logged_in(connect, b, "bob")
    assert handlers(a)["announce"]({"text": "maintenance at noon"})["ok"]
    assert on_a.expect("announcement", timeout=10)["text"] == "maintenance at noon"
    heard = on_b.expect("announcement", timeout=10)
    assert heard["text"] == "maintenance at noon" and heard["by"] == ""


def test_the_admin_flag_reaches_the_users_sessions_on_every_node(make_server, connect, cluster_env, tmp_path):
    a, b = nodes(make_server, cluster_env, tmp_path)
    on_b = logged_in(connect, b, "carol")
    assert handlers(a)["set_admin"]({"username": "carol", "admin": True})["ok"]
    assert on_b.expect("admin_changed", timeout=10)["admin"] is True


def test_status_names_this_node_and_the_nodes_alive(make_server, cluster_env, tmp_path):
    import os
    import subprocess
    import sys

    a, b = nodes(make_server, cluster_env, tmp_path)
    reply = handlers(a)["status"]({})
    assert reply["cluster"]["node"] == a.cluster.node_id
    assert sorted(reply["cluster"]["nodes"]) == sorted([a.cluster.node_id, b.cluster.node_id])
    shown = subprocess.run([sys.executable, "-m", "chatcore", "status"], capture_output=True, text=True,
                           env={**os.environ, "STORAGE_DIR": str(a.data_dir)}, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert f"node {a.cluster.node_id}; 2 alive" in shown.stdout
