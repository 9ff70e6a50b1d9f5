"""``chatcore import-sqlite`` for rooms: a single node's rooms move into the cluster's schema with
their ids, seqs, timestamps, members, read markers, bans, pins, reactions and change log, new
messages continue the seqs, and a non-empty schema is refused."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg


def import_sqlite(cluster_env, data_dir):
    env = {**os.environ, **cluster_env, "STORAGE_DIR": str(data_dir), "CHATCORE_DISABLE_PLUGINS": "filexfer"}
    return subprocess.run([sys.executable, "-m", "chatcore", "import-sqlite"], capture_output=True, text=True,
                          env=env, cwd=data_dir.parent, timeout=120)


def test_a_single_nodes_rooms_move_into_the_cluster(cluster_env, rooms_server, user, kit, tmp_path):
    single_dir = tmp_path / "single"
    single = rooms_server(data_dir=single_dir)
    alice, bob, carol = (user(single, name) for name in ("alice", "bob", "carol"))
    kit.ask(alice, "room_create", room="dev", topic="imported")
    kit.ask(alice, "room_create", room="secret", private=True)
    for client in (bob, carol):
        kit.ask(client, "room_join", room="dev")
    kit.ask(alice, "room_ban", room="dev", user="carol", reason="noise")
    sent = [kit.post(alice, "dev", f"message {n} @bob") for n in range(3)]
    kit.ask(alice, "room_pin", room="dev", seq=2)
    reacted = kit.ask(bob, "room_react", room="dev", seq=1, emoji="+1")
    kit.ask(bob, "mark_read", room="dev", seq=1)
    single.stop()

    done = import_sqlite(cluster_env, single_dir)
    assert done.returncode == 0, done.stderr
    again = import_sqlite(cluster_env, single_dir)
    assert again.returncode != 0 and "already holds rooms or messages" in again.stderr

    with psycopg.connect(cluster_env["CHATCORE_DATABASE_URL"]) as conn:
        rooms = conn.execute("SELECT id, name, last_seq FROM rooms.rooms ORDER BY id").fetchall()
        rows = conn.execute("SELECT seq, ts FROM rooms.messages ORDER BY id").fetchall()
    assert rooms == [(1, "dev", 3), (2, "secret", 0)]
    assert [seq for seq, _ in rows] == [1, 2, 3]

    node = rooms_server(env=cluster_env, data_dir=single_dir)  # its accounts, the rooms now in PostgreSQL
    bob = user(node, "bob", register=False)
    (dev,) = bob.room_list["rooms"]
    assert (dev["topic"], dev["last_seq"], dev["read_seq"], dev["unread"], dev["mentions"], dev["pins"]) == (
        "imported", 3, 1, 2, 2, [2])
    history = kit.ask(bob, "room_history", room="dev")
    assert [(m["seq"], m["ts"]) for m in history["messages"]] == [(a["seq"], a["ts"]) for a in sent]
    assert history["messages"][0]["reactions"] == [{"emoji": "+1", "count": 1, "users": ["bob"]}]
    assert history["last_change_id"] == reacted["change_id"]
    assert [hit["seq"] for hit in kit.ask(bob, "search", query="MESSAGE 2")["results"]] == [3]
    carol = user(node, "carol", register=False)
    assert kit.ask(carol, "room_join", room="dev")["code"] == "banned"
    alice = user(node, "alice", register=False)
    assert kit.post(alice, "dev", "new in the cluster")["seq"] == 4
    assert bob.expect("room_message", seq=4)["message"] == "new in the cluster"
    assert kit.ask(alice, "room_create", room="third")["type"] == "room_create_result"  # ids continue
