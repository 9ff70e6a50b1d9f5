"""``chatcore import-sqlite`` for files: a single node's index and spool become the cluster's rows
and large objects, with ids, times and unfinished uploads kept; a non-empty target is refused."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from chatcore.testing import PASSWORD


def import_sqlite(data_dir, cluster_env):
    """Run ``chatcore import-sqlite`` on ``data_dir`` the way an operator does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATCORE_", "SERVER_", "STORAGE_"))}
    env.update(cluster_env, CHATCORE_PLUGINS="auth,filexfer")
    return subprocess.run([sys.executable, "-m", "chatcore", "import-sqlite", "--data-dir", str(data_dir)],
                          env=env, capture_output=True, text=True, timeout=120)


def test_import_sqlite_moves_files_and_unfinished_uploads_into_the_cluster(start, login_as, connect, wire, clock,
                                                                         cluster_env, tmp_path) -> None:
    data_dir = tmp_path / "single"
    single, _ = start(clock=clock, data_dir=data_dir)
    alice, _ = login_as(single, "alice"), login_as(single, "bob")
    data, partial = os.urandom(3 * wire.CHUNK + 5), os.urandom(2 * wire.CHUNK)
    file_id = wire.upload(alice, "bob", data)
    ready = wire.offer(alice, "bob", partial, "part.bin")
    wire.send_chunks(alice, ready["upload_id"], partial, 0, wire.CHUNK)
    alice.sync()
    offered = login_as(single, "bob", register=False).expect("file_offer")
    single.stop()

    result = import_sqlite(data_dir, cluster_env)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(cluster_env["CHATCORE_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM pg_largeobject_metadata").fetchone()[0] == 2
    again = import_sqlite(data_dir, cluster_env)
    assert again.returncode != 0 and "already holds files" in again.stderr

    node, _ = start(env=cluster_env, clock=clock, data_dir=tmp_path / "node")
    for name in ("alice", "bob"):  # accounts of this node (until they are shared through the cluster)
        client = connect(node)
        if client.request(command="login", username=name, password=PASSWORD).get("response") != "ok":
            client.login(name, PASSWORD, register=True)
        client.close()
    bob = login_as(node, "bob", register=False)
    assert bob.expect("file_offer") == offered  # same ids, name, size, hash and time
    assert wire.download(bob, file_id)[0] == data
    alice = login_as(node, "alice", register=False)
    resumed = wire.offer(alice, "bob", partial, "part.bin")
    assert (resumed["upload_id"], resumed["offset"]) == (ready["upload_id"], wire.CHUNK)
    wire.send_chunks(alice, ready["upload_id"], partial, wire.CHUNK)
    done = wire.ask(alice, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])
    assert done["type"] == "file_uploaded", done
