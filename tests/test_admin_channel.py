"""The operator's live admin channel: ``chatcore status|kick|announce|plugin`` run as real
processes against a running server (over its admin socket), and say so when none runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatcore.testing import PASSWORD

PLUGINS = ["auth", "chat"]


@pytest.fixture
def chatcore(tmp_path: Path):
    """``chatcore("status", "--json")``: the real command on the data directory make_server uses."""

    def run(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "STORAGE_DIR": str(tmp_path / "data"), "LOG_LEVEL": "WARNING",
               "CHATCORE_PLUGINS": ",".join(PLUGINS)}
        return subprocess.run([sys.executable, "-m", "chatcore", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=60)

    return run


def login_device(connect, server, name: str, device: str, register: bool = False):
    """A client logged in as ``name`` on a named device."""
    client = connect(server)
    if register:
        assert client.request(command="register", username=name, password=PASSWORD)["response"] == "ok"
    reply = client.request(command="login", username=name, password=PASSWORD, device=device)
    assert reply["response"] == "ok", reply
    client.sync()
    return client


def test_status_shows_uptime_connections_users_and_plugins(chatcore, make_server, login_as, connect):
    server = make_server(plugins=PLUGINS)
    login_as(server, "alice"), login_as(server, "alice", register=False), login_as(server, "bob")
    connect(server).sync()  # connected, not logged in
    reply = chatcore("status", "--json")
    assert reply.returncode == 0, reply.stderr
    status = json.loads(reply.stdout)
    assert status["connections"] == 4 and status["sessions_logged_in"] == 3
    assert status["users_online"] == 2 and status["users"] == ["alice", "bob"]
    assert status["address"] == f"127.0.0.1:{server.address[1]}" and status["uptime"] >= 0
    plugins = {p["name"]: p for p in status["plugins"]}
    assert list(plugins) == ["core", "auth", "chat"]
    assert all(p["state"] == "active" for p in plugins.values())
    assert plugins["auth"]["essential"] and not plugins["chat"]["essential"] and "chat" in plugins["chat"]["commands"]
    text = chatcore("status").stdout
    assert "users online: 2: alice, bob" in text and "4 (4 TLS, 0 plaintext)" not in text
    assert "connections: 4 (0 TLS, 4 plaintext), 3 logged in" in text


def test_commands_that_need_a_server_say_that_none_runs(chatcore):
    for args in (["status"], ["kick", "alice"], ["announce", "hello"], ["plugin", "disable", "chat"]):
        reply = chatcore(*args)
        assert reply.returncode == 1, (args, reply)
        assert reply.stdout == "" and len(reply.stderr.strip().splitlines()) == 1, reply.stderr
        assert "no chatcore server is running on" in reply.stderr


def test_kick_ends_one_device_or_every_session_and_is_not_a_ban(chatcore, make_server, connect):
    server = make_server(plugins=PLUGINS)
    laptop = login_device(connect, server, "alice", "laptop", register=True)
    phone = login_device(connect, server, "alice", "phone")
    kicked = chatcore("kick", "ALICE", "--device", "phone", "--reason", "stop flooding the room")
    assert kicked.returncode == 0, kicked.stderr
    assert "ended 1 session(s)" in kicked.stdout
    final = [m for m in phone.expect_closed() if m.get("type") == "session_ended"][-1]
    assert final["code"] == "kicked" and final["reason"].endswith(": stop flooding the room")
    assert laptop.request(command="ping")["type"] == "pong"
    assert chatcore("kick", "alice").returncode == 0
    assert [m["code"] for m in laptop.expect_closed() if m.get("type") == "session_ended"] == ["kicked"]
    again = chatcore("kick", "alice")
    assert again.returncode == 1 and "alice has no live session" in again.stderr
    assert chatcore("kick", "nobody").returncode == 1
    assert connect(server).request(command="login", username="alice", password=PASSWORD)["response"] == "ok"


def test_announce_reaches_every_logged_in_session_only(chatcore, make_server, login_as, connect):
    server = make_server(plugins=PLUGINS)
    alice, bob = login_as(server, "alice"), login_as(server, "bob", v2=True)
    stranger = connect(server)
    stranger.sync()
    reply = chatcore("announce", "The server restarts at 18:00 UTC.")
    assert reply.returncode == 0, reply.stderr
    assert "announced to 2 session(s)" in reply.stdout
    for client in (alice, bob):
        event = client.expect("announcement")
        assert event["text"] == "The server restarts at 18:00 UTC." and event["by"] == "" and event["ts"]
    assert [m for m in stranger.sync() if m.get("type") == "announcement"] == []
    too_long = chatcore("announce", "x" * 2001)
    assert too_long.returncode == 1 and "longer than 2000" in too_long.stderr


def test_a_plugin_disabled_and_enabled_live(chatcore, make_server, login_as, connect):
    server = make_server(plugins=PLUGINS)
    alice = login_as(server, "alice")
    assert alice.request(command="chat", peer="", message="before", reply=("chat_ack", "error"))["type"] == "chat_ack"
    assert "chat" in connect(server).request(command="hello", protocol=2)["plugins"]  # hello's lists, cached before
    disabled = chatcore("plugin", "disable", "chat")
    assert disabled.returncode == 0 and "plugin chat disabled" in disabled.stdout
    refused = alice.request(command="chat", peer="", message="while off", reply=("chat_ack", "error"))
    assert refused["code"] == "plugin_disabled" and "disabled by the operator" in refused["reason"]
    hello = connect(server).request(command="hello", protocol=2)
    assert "chat" not in hello["plugins"] and "chat" not in hello["commands"]
    chat_row = [p for p in json.loads(chatcore("status", "--json").stdout)["plugins"] if p["name"] == "chat"][0]
    assert chat_row["state"] == "disabled" and chat_row["why"] == "disabled by the operator"
    assert "already disabled" in chatcore("plugin", "disable", "chat").stdout
    enabled = chatcore("plugin", "enable", "chat")
    assert enabled.returncode == 0 and "plugin chat enabled" in enabled.stdout
    assert alice.request(command="chat", peer="", message="after", reply=("chat_ack", "error"))["type"] == "chat_ack"
    assert "chat" in connect(server).request(command="hello", protocol=2)["plugins"]
    for name in ("auth", "core"):
        essential = chatcore("plugin", "disable", name)
        assert essential.returncode == 1 and "essential" in essential.stderr
    unknown = chatcore("plugin", "enable", "nope")
    assert unknown.returncode == 1 and "no plugin 'nope'" in unknown.stderr


def test_a_plugin_the_fault_budget_disabled_shows_in_status_and_can_be_enabled(chatcore, make_server, login_as):
    server = make_server(plugins=PLUGINS, env={"CHATCORE_FAULT_LIMIT": "1"})
    alice = login_as(server, "alice")
    for _ in range(2):  # over the budget of one failure: what repeated handler exceptions do
        server.budget.failure("chat", "a test")
    text = chatcore("status").stdout
    assert "chat       disabled (2 failures within 60 s (the last in a test))" in text
    assert alice.request(command="chat", peer="", message="x", reply=("chat_ack", "error"))["code"] == "plugin_disabled"
    assert chatcore("plugin", "enable", "chat").returncode == 0
    assert alice.request(command="chat", peer="", message="x", reply=("chat_ack", "error"))["type"] == "chat_ack"


def test_a_disabled_plugin_still_forgets_removed_users_and_closes_at_shutdown(chatcore, make_server, login_as):
    import threading

    server = make_server(plugins=PLUGINS)
    alice, bob = login_as(server, "alice"), login_as(server, "bob")
    assert alice.request(command="chat", peer="", message="alice was here", reply="chat_ack")["id"]
    assert chatcore("plugin", "disable", "chat").returncode == 0
    removed = chatcore("user", "remove", "alice")
    assert removed.returncode == 0, removed.stderr
    assert chatcore("plugin", "enable", "chat").returncode == 0
    assert bob.request(command="get_history", peer="")["data"] == []  # the disabled plugin forgot her too
    assert chatcore("plugin", "disable", "chat").returncode == 0
    server.stop()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("chat-")]  # its storage was closed
