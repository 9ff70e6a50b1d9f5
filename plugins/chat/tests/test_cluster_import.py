"""``chatcore import-sqlite`` for chat: a single node's history moves into the cluster's schema
with its ids, timestamps and waiting offline messages, and a non-empty schema is refused."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg


def import_sqlite(cluster_env, data_dir):
    env = {**os.environ, **cluster_env, "STORAGE_DIR": str(data_dir), "CHATCORE_DISABLE_PLUGINS": "filexfer,rooms"}
    return subprocess.run([sys.executable, "-m", "chatcore", "import-sqlite"], capture_output=True, text=True,
                          env=env, cwd=data_dir.parent, timeout=120)


def test_a_single_nodes_history_moves_into_the_cluster(cluster_env, chat_server, login_as, register, chat, settle,
                                                        tmp_path):
    single_dir = tmp_path / "single"
    single = chat_server(data_dir=single_dir)
    alice = login_as(single, "alice", v2=True)
    bob = login_as(single, "bob", v2=True)
    live = chat(alice, "bob", "while bob is here")
    room = chat(alice, "", "to the room")
    settle(single, bob)
    edited = alice.request(command="message_edit", peer="", id=room["id"], message="to the whole room")
    reacted = bob.request(command="message_react", peer="alice", id=live["id"], emoji="+1")
    assert reacted["change_id"] == edited["change_id"] + 1
    bob.close()
    register(single, "carol")
    waiting = [chat(alice, "carol", f"for carol {n}") for n in range(3)]
    single.stop()

    done = import_sqlite(cluster_env, single_dir)
    assert done.returncode == 0, done.stderr
    again = import_sqlite(cluster_env, single_dir)
    assert again.returncode != 0 and "already holds messages" in again.stderr

    with psycopg.connect(cluster_env["CHATCORE_DATABASE_URL"]) as conn:
        rows = conn.execute("SELECT id, conv, seq, ts FROM chat.messages ORDER BY id").fetchall()
        seqs = dict(conn.execute("SELECT conv, last_seq FROM chat.conversations").fetchall())
    assert [row[0] for row in rows] == [live["id"], room["id"]] + [w["id"] for w in waiting]
    assert [row[2] for row in rows] == [1, 1, 1, 2, 3]
    assert seqs == {"alice\nbob": 1, "": 1, "alice\ncarol": 3}

    node = chat_server(env=cluster_env, data_dir=single_dir)  # its accounts, the history now in PostgreSQL
    carol = login_as(node, "carol", register=False, v2=True)
    got = [m for m in settle(node, carol) if m.get("type") == "private_message"]
    assert [(m["id"], m["ts"], m["offline"]) for m in got] == [(w["id"], w["ts"], True) for w in waiting]
    alice = login_as(node, "alice", register=False, v2=True)
    history = alice.request(command="get_history", peer="bob")
    assert [(m["id"], m["ts"], m["message"]) for m in history["messages"]] == [
        (live["id"], live["ts"], "while bob is here")]
    assert history["messages"][0]["reactions"] == [{"emoji": "+1", "count": 1, "users": ["bob"]}]
    assert history["last_change_id"] == reacted["change_id"]
    assert [hit["id"] for hit in alice.request(command="search", query="whole ROOM")["results"]] == [room["id"]]
    after = chat(alice, "carol", "new in the cluster")
    assert after["id"] > waiting[-1]["id"]
    assert carol.expect("private_message", timeout=10)["id"] == after["id"]
