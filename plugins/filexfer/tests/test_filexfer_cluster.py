"""File transfer across the nodes of a cluster: real PostgreSQL (index and large objects) and
Redis (offers and other events between nodes), two nodes in the test's process."""

from __future__ import annotations

import base64
import os
import threading

import psycopg
import pytest

from chatcore.testing import PASSWORD

HOUR = 3600.0


@pytest.fixture
def nodes(start, cluster_env, tmp_path, clock):
    """``nodes(**env)``: two nodes of one cluster sharing the test's fake clock -> [(server, plugin)] * 2."""
    def factory(**env):
        return [start(env={**cluster_env, **env}, clock=clock, data_dir=tmp_path / name) for name in ("a", "b")]
    return factory


@pytest.fixture
def join(connect):
    """``join(server, name)``: a client logged in as ``name`` on ``server``, registering there only
    if that node does not know the name yet (accounts may be per node or shared by the cluster)."""
    def factory(server, name):
        client = connect(server)
        if client.request(command="login", username=name, password=PASSWORD).get("response") != "ok":
            client.login(name, PASSWORD, register=True)
        client.backlog = client.sync() + client.backlog
        return client
    return factory


def large_objects(cluster_env) -> int:
    """How many large objects the cluster's database holds (none may be left orphaned)."""
    with psycopg.connect(cluster_env["CHATCORE_DATABASE_URL"]) as conn:
        row = conn.execute("SELECT COUNT(*) FROM pg_largeobject_metadata").fetchone()
    return int(row[0])


def known_everywhere(join, servers, *names):
    """Make every name an account every node knows (a recipient is looked up where the offer is made)."""
    for server in servers:
        for name in names:
            join(server, name).close()


def test_an_upload_begun_on_one_node_resumes_on_another_and_downloads_from_either(nodes, join, wire,
                                                                                   cluster_env) -> None:
    (a, _), (b, _) = nodes()
    known_everywhere(join, (a, b), "alice", "bob")
    data = os.urandom(5 * wire.CHUNK + 123)
    alice = join(a, "alice")
    ready = wire.offer(alice, "bob", data)
    wire.send_chunks(alice, ready["upload_id"], data, 0, 3 * wire.CHUNK)
    alice.sync()
    alice.close()  # the connection is cut; the load balancer sends her to the other node

    alice = join(b, "alice")
    again = wire.offer(alice, "bob", data)
    assert (again["upload_id"], again["offset"]) == (ready["upload_id"], 3 * wire.CHUNK)
    alice.send(command="file_chunk", upload_id=ready["upload_id"], offset=0, data=wire.b64(data[:10]))
    assert alice.expect("error")["code"] == "bad_offset"  # the offset checked is the stored one
    wire.send_chunks(alice, ready["upload_id"], data, again["offset"])
    done = wire.ask(alice, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])
    assert done["type"] == "file_uploaded", done
    assert large_objects(cluster_env) == 1
    stale = join(a, "alice")  # node a still remembers the upload as it was: asked again, it answers the same
    assert wire.ask(stale, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"]) == done

    bob = join(a, "bob")
    assert bob.expect("file_offer")["file_id"] == done["file_id"]
    received, end = wire.download(bob, done["file_id"])
    assert received == data and end["sha256"] == wire.sha(data)
    bob.close()
    bob = join(b, "bob")  # delivered, so no longer offered, but still resumable from the other node
    assert [m for m in bob.sync() if m.get("type") == "file_offer"] == []
    assert wire.download(bob, done["file_id"], offset=wire.CHUNK + 7)[0] == data[wire.CHUNK + 7:]
    bob.send(command="file_received", file_id=done["file_id"])  # on the node it did not download from
    bob.sync()
    assert large_objects(cluster_env) == 0
    assert alice.expect("file_delivered")["file_id"] == done["file_id"]
    assert [m for m in alice.sync() if m.get("type") == "file_delivered"] == []  # told once


def test_an_offer_reaches_the_recipient_on_the_other_node_and_the_answer_comes_back(nodes, join, wire,
                                                                                   cluster_env) -> None:
    (a, _), (b, _) = nodes()
    known_everywhere(join, (a, b), "alice", "bob")
    alice, bob = join(a, "alice"), join(b, "bob")
    data = os.urandom(40_000)
    file_id = wire.upload(alice, "bob", data)
    offer = bob.expect("file_offer")
    assert (offer["file_id"], offer["peer"], offer["size"]) == (file_id, "alice", len(data))
    assert wire.download(bob, file_id)[0] == data
    assert alice.expect("file_delivered")["file_id"] == file_id
    bob.send(command="file_received", file_id=file_id)
    bob.sync()
    assert large_objects(cluster_env) == 0

    second = wire.upload(alice, "bob", b"not wanted")
    assert bob.expect("file_offer")["file_id"] == second
    assert bob.request(command="file_decline", file_id=second)["type"] == "file_decline_result"
    assert alice.expect("file_declined")["file_id"] == second
    assert large_objects(cluster_env) == 0

    ready = wire.offer(alice, "bob", b"withdrawn")
    wire.send_chunks(alice, ready["upload_id"], b"withdrawn")
    third = wire.ask(alice, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])["file_id"]
    assert bob.expect("file_offer")["file_id"] == third
    withdrawn = wire.ask(alice, "file_cancel_result", command="file_cancel", upload_id=ready["upload_id"])
    assert withdrawn["file_id"] == third
    assert bob.expect("file_cancelled")["file_id"] == third
    assert large_objects(cluster_env) == 0


def test_a_corrupt_or_short_upload_is_refused_whichever_node_finishes_it(nodes, join, wire, cluster_env) -> None:
    (a, _), (b, _) = nodes()
    known_everywhere(join, (a, b), "alice", "bob")
    data = os.urandom(2 * wire.CHUNK)
    on_a, on_b = join(a, "alice"), join(b, "alice")
    ready = wire.offer(on_a, "bob", data)
    wire.send_chunks(on_a, ready["upload_id"], data, 0, wire.CHUNK)
    on_a.sync()
    short = wire.ask(on_b, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])
    assert (short["code"], short["offset"]) == ("incomplete", wire.CHUNK)

    corrupt = bytes(byte ^ 1 for byte in data[wire.CHUNK:])
    wire.send_chunks(on_b, ready["upload_id"], data[:wire.CHUNK] + corrupt, wire.CHUNK)
    on_b.sync()
    refused = wire.ask(on_a, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])
    assert refused["code"] == "bad_hash"
    assert large_objects(cluster_env) == 0
    on_b.send(command="file_chunk", upload_id=ready["upload_id"], offset=2 * wire.CHUNK, data=wire.b64(b"x"))
    assert on_b.expect("error")["code"] == "unknown_upload"  # node b had it in memory: the store says gone
    again = wire.ask(on_b, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])
    assert again["code"] == "unknown_upload"


def test_expiry_removes_the_large_object_once_however_many_nodes_sweep(nodes, join, wire, clock,
                                                                     cluster_env) -> None:
    (a, plugin_a), (b, plugin_b) = nodes(CHATCORE_FILEXFER_EXPIRY=str(2 * HOUR),
                                         CHATCORE_FILEXFER_PARTIAL_TIMEOUT=str(HOUR))
    known_everywhere(join, (a, b), "alice", "bob")
    alice = join(a, "alice")
    file_id = wire.upload(alice, "bob", os.urandom(50_000))
    partial = wire.offer(alice, "bob", b"y" * 1000)
    wire.send_chunks(alice, partial["upload_id"], b"y" * 1000, 0, 500)
    alice.sync()
    assert large_objects(cluster_env) == 2

    clock.advance(3 * HOUR)
    gone: list[list] = []
    sweeps = [threading.Thread(target=lambda p=p: gone.append(p.commands.service.sweep()))
              for p in (plugin_a, plugin_b) for _ in range(2)]
    for sweep in sweeps:
        sweep.start()
    for sweep in sweeps:
        sweep.join()
    removed = sorted(entry.upload_id for result in gone for entry in result)
    assert len(removed) == 2 and partial["upload_id"] in removed  # each once, by one node
    assert large_objects(cluster_env) == 0
    bob = join(b, "bob")
    assert bob.request(command="file_list")["files"] == []
    bob.send(command="file_download", file_id=file_id)
    assert bob.expect("error")["code"] == "unknown_file"


def test_the_expiry_notice_reaches_the_sender_on_another_node(nodes, join, wire, clock, cluster_env) -> None:
    (a, plugin_a), (b, _) = nodes(CHATCORE_FILEXFER_EXPIRY=str(HOUR))
    known_everywhere(join, (a, b), "alice", "bob")
    alice = join(b, "alice")
    file_id = wire.upload(alice, "bob", b"nobody takes this")
    clock.advance(2 * HOUR)
    plugin_a.commands.sweep()
    assert alice.expect("file_expired")["file_id"] == file_id
    assert large_objects(cluster_env) == 0


def test_quotas_count_every_nodes_files(nodes, join, wire) -> None:
    (a, _), (b, _) = nodes(CHATCORE_FILEXFER_USER_QUOTA="100000", CHATCORE_FILEXFER_MAX_OFFERS="2")
    known_everywhere(join, (a, b), "alice", "bob")
    on_a, on_b = join(a, "alice"), join(b, "alice")
    wire.offer(on_a, "bob", os.urandom(80_000))
    refused = wire.ask(on_b, "file_upload_ready", command="file_upload", peer="bob", filename="f",
                       size=30_000, sha256="0" * 64)
    assert refused["code"] == "quota" and "quota" in refused["reason"]
    wire.offer(on_b, "bob", os.urandom(10_000))
    third = wire.ask(on_a, "file_upload_ready", command="file_upload", peer="bob", filename="g",
                     size=10, sha256="1" * 64)
    assert third["code"] == "quota" and "in progress" in third["reason"]


def test_hostile_offsets_and_sizes_are_refused_in_cluster_mode(nodes, join, wire) -> None:
    (a, _), (b, _) = nodes()
    known_everywhere(join, (a, b), "alice", "bob")
    alice, bob = join(a, "alice"), join(b, "bob")
    data = b"z" * 100
    ready = wire.offer(alice, "bob", data)
    for offset in (-1, 1, 2**53, -(2**62), 2**62):
        alice.send(command="file_chunk", upload_id=ready["upload_id"], offset=offset, data=wire.b64(data))
        error = alice.expect("error")
        assert (error["code"], error["offset"]) == ("bad_offset", 0), offset
    for size in (2**62, -1):
        refused = wire.ask(alice, "file_upload_ready", command="file_upload", peer="bob", filename="h",
                           size=size, sha256="2" * 64)
        assert refused["code"] in ("too_large", "bad_request"), size
    alice.send(command="file_chunk", upload_id=ready["upload_id"], offset=0, data=wire.b64(data + b"!"))
    assert alice.expect("error")["code"] == "too_large"  # past the declared size: nothing stored
    wire.send_chunks(alice, ready["upload_id"], data)
    file_id = wire.ask(alice, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])["file_id"]
    for offset in (-1, 101, 2**53, -(2**62)):
        bob.send(command="file_download", file_id=file_id, offset=offset)
        assert bob.expect("error")["code"] == "bad_offset", offset
    for message, code in [({"command": "file_chunk", "upload_id": "0" * 32, "offset": 0, "data": ""}, "unknown_upload"),
                          ({"command": "file_chunk", "upload_id": "../../x", "offset": 0, "data": ""}, "unknown_upload"),
                          ({"command": "file_upload_done", "upload_id": "0" * 32}, "unknown_upload"),
                          ({"command": "file_cancel", "upload_id": "' OR 1=1 --"}, "unknown_upload"),
                          ({"command": "file_download", "file_id": "0" * 32}, "unknown_file"),
                          ({"command": "file_decline", "file_id": "z" * 40000}, "unknown_file"),
                          ({"command": "file_received", "file_id": file_id + "'; DROP TABLE files; --"}, "unknown_file")]:
        bob.send(message)
        assert bob.expect("error")["code"] == code, message
    bob.send(command="file_download", file_id=file_id, offset=99)
    assert base64.b64decode(bob.expect("file_data")["data"]) == b"z"
    assert bob.expect("file_data_end")["sha256"] == wire.sha(data)


def test_an_upload_survives_the_kill_of_its_node(start_node, cluster_env, join, wire) -> None:
    fast = {"CHATCORE_AUTH_ARGON2_MEMORY_KIB": "1024", "CHATCORE_AUTH_ARGON2_TIME_COST": "1"}
    first, second = (start_node(cluster_env, plugins=("auth", "filexfer"), env=fast) for _ in range(2))
    known_everywhere(join, (first, second), "alice", "bob")
    data = os.urandom(4 * wire.CHUNK)
    alice = join(first, "alice")
    ready = wire.offer(alice, "bob", data)
    wire.send_chunks(alice, ready["upload_id"], data, 0, 2 * wire.CHUNK)
    alice.sync()
    first.kill()  # kill -9 in the middle of the upload

    bob, alice = join(second, "bob"), join(second, "alice")
    again = wire.offer(alice, "bob", data)
    assert (again["upload_id"], again["offset"]) == (ready["upload_id"], 2 * wire.CHUNK)
    wire.send_chunks(alice, ready["upload_id"], data, again["offset"])
    done = wire.ask(alice, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])
    assert bob.expect("file_offer")["file_id"] == done["file_id"]
    assert wire.download(bob, done["file_id"])[0] == data


def test_an_offer_made_while_redis_is_down_reaches_the_other_node_when_it_is_back(start, cluster_env, private_redis,
                                                                                 join, wire, tmp_path) -> None:
    env = {**cluster_env, "CHATCORE_REDIS_URL": private_redis.url}
    (a, _), (b, _) = (start(env=env, data_dir=tmp_path / name) for name in ("a", "b"))
    known_everywhere(join, (a, b), "alice", "bob")
    alice, bob = join(a, "alice"), join(b, "bob")
    private_redis.stop()
    file_id = wire.upload(alice, "bob", b"sent during the outage")  # the database takes it; the bus cannot
    private_redis.start()
    assert bob.expect("file_offer", timeout=30)["file_id"] == file_id
    assert wire.download(bob, file_id)[0] == b"sent during the outage"
