"""The ``rooms`` plugin installs under its short name, can be disabled, and refuses to run without ``chat``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chatcore.plugins import PluginError, installed


def test_rooms_is_installed_under_its_short_name():
    point = installed()["rooms"]
    assert point.value == "chatcore_rooms.plugin:RoomsPlugin"
    assert point.dist is not None and point.dist.name == "chatcore-rooms"


def test_hello_lists_rooms_and_its_commands(server, connect):
    hello = connect(server).request(command="hello", protocol=2)
    assert "rooms" in hello["plugins"]
    assert {"room_create", "room_message", "room_history", "mark_read"} <= set(hello["commands"])


def test_with_rooms_disabled_its_commands_are_unknown_and_chat_is_unchanged(rooms_server, login_as):
    server = rooms_server(plugins=["auth", "chat"])
    assert "rooms" not in server.plugin_names
    alice = login_as(server, "alice", v2=True)
    bob = login_as(server, "bob", v2=True)
    reply = alice.request(command="room_create", room="dev")
    assert reply["type"] == "error" and reply["code"] == "unknown_command"
    ack = alice.request({"command": "chat", "peer": "", "message": "hello room"}, reply="chat_ack")
    assert bob.expect("broadcast_message", id=ack["id"])["message"] == "hello room"
    assert "room_list" not in [m.get("type") for m in bob.sync()]


def test_chat_disabled_while_rooms_is_enabled_stops_the_start_with_a_clear_message(rooms_server):
    with pytest.raises(PluginError) as refused:
        rooms_server(plugins=["auth", "rooms"])
    message = str(refused.value)
    assert "plugin 'rooms' needs plugin 'chat', which is disabled" in message
    assert "CHATCORE_DISABLE_PLUGINS=chat,rooms" in message


def test_the_command_line_says_so_and_exits_with_status_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATCORE_", "SERVER_", "STORAGE_", "LOG_"))}
    env.update(CHATCORE_DISABLE_PLUGINS="chat", STORAGE_DIR=str(tmp_path / "data"), SERVER_PORT="0",
               CHATCORE_HOST="127.0.0.1")
    result = subprocess.run([sys.executable, "-m", "chatcore", "serve"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "plugin 'rooms' needs plugin 'chat', which is disabled" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "rooms").exists()  # refused before any storage was opened


def test_disabling_both_starts_fine(rooms_server):
    server = rooms_server(plugins=["auth"])
    assert server.plugin_names == ["auth"]
