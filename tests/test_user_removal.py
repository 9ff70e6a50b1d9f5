"""Removing an account forgets it in every plugin: whoever registers the name next finds no
history, no pending message, no file and no offer of the old owner's — whether the removal
ran in a live server (over the admin socket) or with no server running (the CLI alone)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys

from chatcore.admin import admin_request
from chatcore.testing import PASSWORD

PLUGINS = ["auth", "chat", "filexfer", "rooms"]
DATA = b"alice's secret file"


def upload(client, peer: str, data: bytes = DATA) -> str:
    """A whole upload to ``peer``; returns the file_id."""
    ready = client.request(command="file_upload", peer=peer, filename="notes.txt", size=len(data),
                           sha256=hashlib.sha256(data).hexdigest(), reply="file_upload_ready")
    client.send(command="file_chunk", upload_id=ready["upload_id"], offset=0, data=base64.b64encode(data).decode())
    return client.request(command="file_upload_done", upload_id=ready["upload_id"], reply="file_uploaded")["file_id"]


def leave_traces(connect, server):
    """alice talks to bob and the room, sends carol a file; bob writes to alice and sends her
    a file while she is offline. Returns bob and carol's clients."""
    alice, bob, carol = connect(server), connect(server), connect(server)
    for client, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        client.login(name, PASSWORD, register=True)
    assert alice.request(command="chat", peer="bob", message="our secret", reply="chat_ack")["id"]
    assert alice.request(command="chat", peer="", message="hello room, alice here", reply="chat_ack")["id"]
    upload(alice, "carol")
    alice.request(command="logout")
    for i in range(3):
        bob.request(command="chat", peer="alice", message=f"for alice {i}", reply="chat_ack")
    upload(bob, "alice", b"for alice's eyes")
    return bob, carol


def assert_no_trace(connect, server):
    """A stranger registering the name inherits nothing; the others' views lose the old owner."""
    stranger = connect(server)
    stranger.send(command="hello", protocol=2)
    stranger.expect("hello")
    stranger.login("Alice", "a stranger's password", register=True)
    arrived = stranger.sync()
    assert not [m for m in arrived if m.get("type") in ("private_message", "file_offer")], arrived
    assert stranger.request(command="get_history", peer="bob")["messages"] == []
    room = stranger.request(command="get_history", peer="")["messages"]
    assert not [m for m in room if m["sender"].casefold() == "alice"]
    assert stranger.request(command="file_list")["files"] == []
    carol = connect(server)
    carol.login("carol", PASSWORD)
    assert carol.request(command="file_list")["files"] == []
    bob = connect(server)
    bob.login("bob", PASSWORD)
    assert bob.request(command="get_history", peer="alice")["data"] == []
    spool = server.data_dir / "filexfer" / "spool"
    assert list(spool.iterdir()) == []


def test_a_removal_in_a_live_server_leaves_nothing_for_the_next_owner(make_server, connect):
    server = make_server(plugins=PLUGINS)
    bob, carol = leave_traces(connect, server)
    assert admin_request(server.data_dir, {"command": "remove_user", "username": "ALICE"}) == \
        {"ok": True, "username": "alice"}
    assert carol.expect("file_cancelled")["peer"] == "alice"  # the file waiting for carol is gone
    assert bob.expect("file_declined")["peer"] == "alice"  # and bob's file to alice
    assert bob.request(command="chat", peer="alice", message="too late")["code"] == "unknown_peer"
    late = bob.request(command="file_upload", peer="alice", filename="x", size=1, sha256="0" * 64)
    assert late["code"] == "unknown_peer"
    assert_no_trace(connect, server)


def test_a_removal_with_no_server_running_leaves_nothing_either(make_server, connect, tmp_path):
    server = make_server(plugins=PLUGINS)
    leave_traces(connect, server)
    server.stop()
    env = {**os.environ, "STORAGE_DIR": str(server.data_dir), "CHATCORE_PLUGINS": ",".join(PLUGINS),
           "LOG_LEVEL": "WARNING"}
    removed = subprocess.run([sys.executable, "-m", "chatcore", "user", "remove", "alice"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert removed.returncode == 0, removed.stderr
    assert_no_trace(connect, make_server(plugins=PLUGINS))
