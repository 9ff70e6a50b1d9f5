"""Store-and-forward over real sockets with the real auth plugin: upload, offer, download."""

from __future__ import annotations

import os

import pytest

BOTH_STORES = True  # conftest.pytest_generate_tests: each test runs on SQLite and on PostgreSQL

CHUNK = 32 * 1024


def test_round_trip_of_a_multi_chunk_file_with_hash_check(start, login_as, wire) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    data = os.urandom(3 * CHUNK + 1234)
    ready = wire.offer(ann, "BOB", data, "holiday photos.zip")
    assert ready["offset"] == 0 and ready["chunk_size"] == CHUNK and ready["peer"] == "bob"
    wire.send_chunks(ann, ready["upload_id"], data)
    done = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])
    assert done["type"] == "file_uploaded" and done["upload_id"] == ready["upload_id"]

    offer = bob.expect("file_offer")
    assert offer["file_id"] == done["file_id"]
    assert (offer["peer"], offer["filename"], offer["size"], offer["sha256"]) == \
        ("ann", "holiday photos.zip", len(data), wire.sha(data))
    assert offer["ts"].endswith("Z")
    assert bob.request(command="file_list")["files"] == [{k: v for k, v in offer.items() if k != "type"}]

    received, end = wire.download(bob, offer["file_id"])
    assert received == data
    assert end == {"type": "file_data_end", "file_id": offer["file_id"], "size": len(data), "sha256": wire.sha(data)}
    delivered = ann.expect("file_delivered")
    assert (delivered["file_id"], delivered["peer"]) == (offer["file_id"], "bob")
    assert bob.request(command="file_list")["files"] == []  # taken: no longer offered

    bob.send(command="file_received", file_id=offer["file_id"])
    assert bob.sync() == []
    assert wire.stored_sizes(server) == []


def test_an_empty_file_round_trips(start, login_as, wire) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    file_id = wire.upload(ann, "bob", b"")
    assert wire.download(bob, file_id) == (b"", {"type": "file_data_end", "file_id": file_id, "size": 0,
                                                 "sha256": wire.sha(b"")})


def test_upload_resumes_from_the_offset_the_server_holds(start, login_as, connect, wire) -> None:
    server, _ = start()
    login_as(server, "bob")
    ann = login_as(server, "ann")
    data = os.urandom(4 * CHUNK + 7)
    first = wire.offer(ann, "bob", data)
    wire.send_chunks(ann, first["upload_id"], data, 0, 2 * CHUNK)
    assert ann.sync() == []
    ann.close()  # the connection breaks mid-upload

    again = login_as(server, "ann", register=False)
    resumed = wire.offer(again, "bob", data)
    assert (resumed["upload_id"], resumed["offset"]) == (first["upload_id"], 2 * CHUNK)
    wire.send_chunks(again, resumed["upload_id"], data, resumed["offset"])
    assert wire.ask(again, "file_uploaded", command="file_upload_done", upload_id=resumed["upload_id"])["type"] == "file_uploaded"


def test_upload_resumes_after_a_server_restart(start, login_as, wire) -> None:
    server, _ = start()
    login_as(server, "bob")
    ann = login_as(server, "ann")
    data = os.urandom(3 * CHUNK)
    first = wire.offer(ann, "bob", data)
    wire.send_chunks(ann, first["upload_id"], data, 0, CHUNK)
    ann.sync()
    server.stop()

    server, _ = start()
    ann = login_as(server, "ann", register=False)
    resumed = wire.offer(ann, "bob", data)
    assert (resumed["upload_id"], resumed["offset"]) == (first["upload_id"], CHUNK)
    wire.send_chunks(ann, resumed["upload_id"], data, CHUNK)
    file_id = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=resumed["upload_id"])["file_id"]
    bob = login_as(server, "bob", register=False)
    assert bob.expect("file_offer")["file_id"] == file_id
    assert wire.download(bob, file_id)[0] == data


def test_download_resumes_from_an_offset(start, login_as, wire) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    data = os.urandom(6 * CHUNK + 99)
    file_id = wire.upload(ann, "bob", data)
    bob.send(command="file_download", file_id=file_id)
    head, end = wire.receive(bob, file_id, 0, limit=2)
    assert end is None and head == data[:2 * CHUNK]
    bob.close()  # the connection breaks mid-download

    bob = login_as(server, "bob", register=False)
    tail, end = wire.download(bob, file_id, offset=len(head))
    assert head + tail == data
    assert end["sha256"] == wire.sha(data)


def test_wrong_hash_is_refused_and_discarded(start, login_as, wire) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    data = os.urandom(2 * CHUNK)
    ready = wire.ask(ann, "file_upload_ready", command="file_upload", peer="bob", filename="x", size=len(data),
                        sha256=wire.sha(b"something else"))
    wire.send_chunks(ann, ready["upload_id"], data)
    error = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])
    assert (error["type"], error["code"]) == ("error", "bad_hash")
    assert wire.stored_sizes(server) == []
    assert [m for m in bob.sync() if m.get("type") == "file_offer"] == []
    again = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])
    assert again["code"] == "unknown_upload"


def test_wrong_offsets_are_errors_that_say_where_to_continue(start, login_as, wire) -> None:
    server, _ = start()
    ann, _ = login_as(server, "ann"), login_as(server, "bob")
    data = os.urandom(2 * CHUNK)
    upload_id = wire.offer(ann, "bob", data)["upload_id"]

    ann.send(command="file_chunk", upload_id=upload_id, offset=100, data=wire.b64(data[100:200]))
    error = ann.expect("error")
    assert (error["command"], error["code"], error["offset"], error["upload_id"]) == \
        ("file_chunk", "bad_offset", 0, upload_id)
    early = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=upload_id)
    assert (early["code"], early["offset"]) == ("incomplete", 0)

    wire.send_chunks(ann, upload_id, data, 0, CHUNK)
    ann.send(command="file_chunk", upload_id=upload_id, offset=0, data=wire.b64(data[:10]))  # a repeat
    assert (ann.expect("error")["code"], ) == ("bad_offset", )
    ann.send(command="file_chunk", upload_id=upload_id, offset=CHUNK, data=wire.b64(os.urandom(CHUNK + 1)))
    assert ann.expect("error")["code"] == "too_large"
    ann.send(command="file_chunk", upload_id=upload_id, offset=CHUNK, data=wire.b64(data[CHUNK:] + b"x"))
    assert ann.expect("error")["code"] == "too_large"  # past the declared size
    wire.send_chunks(ann, upload_id, data, CHUNK)
    assert wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=upload_id)["type"] == "file_uploaded"


def test_over_size_is_refused_and_the_limit_is_announced(start, login_as, connect, wire) -> None:
    server, _ = start(env={"CHATCORE_FILEXFER_MAX_SIZE": "1K"})
    hello = connect(server).request(command="hello", protocol=2)
    assert hello["filexfer"]["max_size"] == 1024 and hello["filexfer"]["chunk_size"] == CHUNK
    ann, _ = login_as(server, "ann"), login_as(server, "bob")
    error = wire.ask(ann, "file_upload_ready", command="file_upload", peer="bob", filename="big", size=1025, sha256="0" * 64)
    assert (error["code"], error["max_size"]) == ("too_large", 1024)
    assert wire.ask(ann, "file_upload_ready", command="file_upload", peer="bob", filename="ok", size=1024,
                       sha256="0" * 64)["type"] == "file_upload_ready"


def test_over_quota_per_user_and_for_the_whole_spool(start, login_as, wire) -> None:
    server, _ = start(env={"CHATCORE_FILEXFER_USER_QUOTA": "5000", "CHATCORE_FILEXFER_SPOOL_LIMIT": "7500"})
    ann, cy, _ = login_as(server, "ann"), login_as(server, "cy"), login_as(server, "bob")
    assert wire.ask(ann, "file_upload_ready", command="file_upload", peer="bob", filename="a", size=3000,
                       sha256="1" * 64)["type"] == "file_upload_ready"
    error = wire.ask(ann, "file_upload_ready", command="file_upload", peer="bob", filename="b", size=2001, sha256="2" * 64)
    assert error["code"] == "quota" and "quota" in error["reason"]
    assert wire.ask(cy, "file_upload_ready", command="file_upload", peer="bob", filename="c", size=4000,
                      sha256="3" * 64)["type"] == "file_upload_ready"
    error = wire.ask(cy, "file_upload_ready", command="file_upload", peer="bob", filename="d", size=600, sha256="4" * 64)
    assert error["code"] == "quota" and "spool" in error["reason"]
    cancelled = ann.request(command="file_cancel", upload_id=wire.ask(ann, "file_upload_ready", command="file_upload", peer="bob", filename="a", size=3000, sha256="1" * 64)["upload_id"])
    assert cancelled["type"] == "file_cancel_result"
    assert wire.ask(cy, "file_upload_ready", command="file_upload", peer="bob", filename="d", size=600,
                      sha256="4" * 64)["type"] == "file_upload_ready"


def test_only_the_recipient_downloads_or_declines_and_only_the_sender_uploads(start, login_as, wire) -> None:
    server, _ = start()
    ann, bob, cy = login_as(server, "ann"), login_as(server, "bob"), login_as(server, "cy")
    data = os.urandom(CHUNK + 5)
    ready = wire.offer(ann, "bob", data)
    cy.send(command="file_chunk", upload_id=ready["upload_id"], offset=0, data=wire.b64(b"evil"))
    assert cy.expect("error")["code"] == "forbidden"
    assert wire.ask(cy, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])["code"] == "forbidden"
    assert cy.request(command="file_cancel", upload_id=ready["upload_id"])["code"] == "unknown_upload"
    wire.send_chunks(ann, ready["upload_id"], data)
    file_id = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])["file_id"]

    cy.send(command="file_download", file_id=file_id)
    assert cy.expect("error")["code"] == "forbidden"
    assert cy.request(command="file_decline", file_id=file_id)["code"] == "forbidden"
    cy.send(command="file_received", file_id=file_id)
    assert cy.expect("error")["code"] == "forbidden"
    assert [m for m in cy.sync() if m.get("type") == "file_data"] == []
    assert cy.request(command="file_list")["files"] == []
    assert [m for m in ann.sync() if m.get("type") != "peer_joined"] == []  # the sender was told nothing
    assert wire.download(bob, file_id)[0] == data


def test_decline_deletes_the_file_and_tells_the_sender(start, login_as, wire) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    file_id = wire.upload(ann, "bob", os.urandom(1000))
    bob.expect("file_offer", file_id=file_id)
    assert bob.request(command="file_decline", file_id=file_id) == {"type": "file_decline_result", "file_id": file_id}
    declined = ann.expect("file_declined")
    assert (declined["file_id"], declined["peer"]) == (file_id, "bob")
    assert wire.stored_sizes(server) == []
    bob.send(command="file_download", file_id=file_id)
    assert bob.expect("error")["code"] == "unknown_file"


def test_offer_is_delivered_at_login_to_an_offline_recipient(start, login_as, wire) -> None:
    server, _ = start()
    login_as(server, "bob").request(command="logout")
    ann = login_as(server, "ann")
    data = os.urandom(2 * CHUNK + 1)
    file_id = wire.upload(ann, "Bob", data, "notes.txt")

    bob = login_as(server, "BOB", register=False)
    offer = bob.expect("file_offer")
    assert (offer["file_id"], offer["peer"], offer["filename"], offer["size"]) == (file_id, "ann", "notes.txt", len(data))
    assert wire.download(bob, file_id)[0] == data


def test_hostile_filenames_never_escape_the_spool(start, login_as, wire, tmp_path) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    hostile = {
        "../../etc/passwd": "passwd",
        "/etc/shadow": "shadow",
        "..\\..\\windows\\win.ini": "win.ini",
        "evil\x00.txt": "evil.txt",
        "CON": "_CON",
        "nul.tar.gz": "_nul.tar.gz",
        "": "file",
        "..": "file",
        "a" * 5000 + ".txt": "a" * 251 + ".txt",
    }
    for raw, shown in hostile.items():
        data = raw.encode("utf-8", "surrogatepass") or b"empty"
        file_id = wire.upload(ann, "bob", data, raw)
        offer = bob.expect("file_offer", file_id=file_id)
        assert offer["filename"] == shown, raw
    names = set(wire.stored(server))
    assert len(names) == len(hostile) and all(len(name) == 32 and int(name, 16) >= 0 for name in names)
    everything = {path.name for path in tmp_path.rglob("*")}
    assert not everything & {"passwd", "shadow", "win.ini", "CON", "evil.txt"}
    assert not (server.data_dir.parent.parent / "etc").exists()


@pytest.mark.parametrize("message, code", [
    ({"command": "file_upload", "peer": "bob", "filename": "x", "size": "10", "sha256": "0" * 64}, "bad_request"),
    ({"command": "file_upload", "peer": "bob", "filename": "x", "size": True, "sha256": "0" * 64}, "bad_request"),
    ({"command": "file_upload", "peer": "bob", "filename": "x", "size": -1, "sha256": "0" * 64}, "bad_request"),
    ({"command": "file_upload", "peer": "bob", "filename": "x", "size": 2 ** 40, "sha256": "0" * 64}, "too_large"),
    # beyond 64 bits the core itself may refuse the integer before the plugin sees it
    ({"command": "file_upload", "peer": "bob", "filename": "x", "size": 10 ** 40, "sha256": "0" * 64},
     ("too_large", "bad_request")),
    ({"command": "file_upload", "peer": "bob", "filename": "x", "size": 1, "sha256": "xyz"}, "bad_request"),
    ({"command": "file_upload", "peer": "nobody", "filename": "x", "size": 1, "sha256": "0" * 64}, "unknown_peer"),
    ({"command": "file_upload", "peer": "b" * 10000, "filename": "x", "size": 1, "sha256": "0" * 64}, "unknown_peer"),
    ({"command": "file_upload", "peer": "bob", "filename": ["x"], "size": 1, "sha256": "0" * 64}, "bad_request"),
    ({"command": "file_chunk", "upload_id": "../../x", "offset": 0, "data": ""}, "unknown_upload"),
    ({"command": "file_chunk", "upload_id": "0" * 32, "offset": 0, "data": ""}, "unknown_upload"),
    ({"command": "file_chunk", "upload_id": 5, "offset": 0, "data": ""}, "bad_request"),
    ({"command": "file_download", "file_id": "0" * 32, "offset": -5}, "unknown_file"),
    ({"command": "file_download", "file_id": None}, "bad_request"),
    ({"command": "file_decline", "file_id": "z" * 40000}, "unknown_file"),
    ({"command": "file_list", "after": 3}, "bad_request"),
])
@pytest.mark.single_store  # a server per case; test_filexfer_cluster has the hostile input that reaches PostgreSQL
def test_bad_input_gets_a_clear_error_and_the_session_goes_on(start, login_as, message, code) -> None:
    server, _ = start()
    login_as(server, "bob")
    ann = login_as(server, "ann")
    ann.send(message)
    reply = ann.expect("error")
    assert reply["type"] == "error" and reply["code"] in ((code,) if isinstance(code, str) else code), reply
    assert ann.request(command="ping")["type"] == "pong"


def test_chunk_data_that_is_not_base64_or_too_big_is_refused(start, login_as, wire) -> None:
    server, _ = start()
    ann, _ = login_as(server, "ann"), login_as(server, "bob")
    upload_id = wire.offer(ann, "bob", b"x" * 100)["upload_id"]
    for data, code in [("not base64!", "bad_request"), ("QUJD\n", "bad_request"), ("é", "bad_request"),
                       ("A" * 43696, "too_large")]:
        ann.send(command="file_chunk", upload_id=upload_id, offset=0, data=data)
        assert ann.expect("error")["code"] == code, data
    wire.send_chunks(ann, upload_id, b"x" * 100)
    assert wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=upload_id)["type"] == "file_uploaded"


@pytest.mark.single_store  # refused before any store is asked
def test_files_require_login(start, connect) -> None:
    server, _ = start()
    client = connect(server)
    assert client.request(command="file_list")["code"] == "not_authenticated"


@pytest.mark.single_store  # it makes the spool directory's writes fail
def test_a_full_disk_is_an_error_reply_not_a_corrupt_file(start, login_as, wire, monkeypatch) -> None:
    import errno

    server, plugin = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    data = os.urandom(3 * CHUNK)
    upload_id = wire.offer(ann, "bob", data)["upload_id"]
    wire.send_chunks(ann, upload_id, data, 0, CHUNK)
    ann.sync()

    def disk_full(fd: int, view: memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    spool = plugin.commands.service.spool
    monkeypatch.setattr(spool, "_write", disk_full)
    wire.send_chunks(ann, upload_id, data, CHUNK, 2 * CHUNK)
    error = ann.expect("error")
    assert (error["code"], error["offset"]) == ("disk_full", CHUNK)
    monkeypatch.undo()
    assert wire.stored_sizes(server) == [CHUNK]
    resumed = wire.offer(ann, "bob", data)
    assert resumed["offset"] == CHUNK
    wire.send_chunks(ann, upload_id, data, CHUNK)
    file_id = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=upload_id)["file_id"]
    assert wire.download(bob, file_id)[0] == data


def test_the_recipient_keeps_talking_while_a_download_streams(start, login_as, wire) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    data = os.urandom(64 * CHUNK)
    file_id = wire.upload(ann, "bob", data)
    bob.send(command="file_download", file_id=file_id)
    bob.send(command="ping", nonce="during")
    assert bob.request(command="file_list")["type"] == "file_list"  # answered while streaming
    bob.expect("pong", nonce="during")
    received, end = wire.receive(bob, file_id)
    assert received == data and end is not None


def test_an_offer_echoes_its_client_id_in_the_reply_and_in_errors(start, login_as, wire) -> None:
    server, _ = start()
    login_as(server, "bob")
    ann = login_as(server, "ann")
    data = os.urandom(100)
    ready = ann.request(command="file_upload", peer="bob", filename="a.txt", size=len(data),
                        sha256=wire.sha(data), client_id="offer-1", reply=("file_upload_ready", "error"))
    assert (ready["type"], ready["client_id"]) == ("file_upload_ready", "offer-1")
    refused = ann.request(command="file_upload", peer="nobody", filename="b.txt", size=1,
                          sha256=wire.sha(b"x"), client_id="offer-2")
    assert (refused["code"], refused["client_id"], refused["command"]) == ("unknown_peer", "offer-2", "file_upload")
