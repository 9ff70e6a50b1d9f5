"""The spool empties itself: after download, after expiry, after an abandoned upload (fake clock)."""

from __future__ import annotations

import os

BOTH_STORES = True  # conftest.pytest_generate_tests: each test runs on SQLite and on PostgreSQL

HOUR = 3600.0


def test_spool_is_emptied_after_a_download_even_without_file_received(start, login_as, wire, clock) -> None:
    server, _ = start(env={"CHATCORE_FILEXFER_DELIVERED_KEEP": "600"}, clock=clock)
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    data = os.urandom(40_000)
    file_id = wire.upload(ann, "bob", data)
    assert wire.download(bob, file_id)[0] == data
    ann.expect("file_delivered", file_id=file_id)
    assert len(wire.stored_sizes(server)) == 1  # still resumable for a while

    clock.advance(599)
    bob.request(command="file_list")  # any file activity sweeps
    assert len(wire.stored_sizes(server)) == 1
    clock.advance(2)
    assert bob.request(command="file_list")["files"] == []
    assert wire.stored_sizes(server) == []
    assert [m for m in ann.sync() if m.get("type") == "file_expired"] == []  # delivered, not expired


def test_a_file_nobody_takes_expires_and_the_sender_is_told(start, login_as, wire, clock) -> None:
    server, _ = start(env={"CHATCORE_FILEXFER_EXPIRY": str(48 * HOUR)}, clock=clock)
    login_as(server, "bob").request(command="logout")
    ann = login_as(server, "ann")
    file_id = wire.upload(ann, "bob", os.urandom(5000))
    clock.advance(47 * HOUR)
    ann.request(command="file_list")
    assert len(wire.stored_sizes(server)) == 1
    clock.advance(2 * HOUR)
    ann.request(command="file_list")
    assert wire.stored_sizes(server) == []
    assert ann.expect("file_expired")["file_id"] == file_id

    bob = login_as(server, "bob", register=False)
    assert [m for m in bob.sync() if m.get("type") == "file_offer"] == []
    bob.send(command="file_download", file_id=file_id)
    assert bob.expect("error")["code"] == "unknown_file"


def test_an_abandoned_partial_upload_is_cleaned_up_even_if_offered_again(start, login_as, wire, clock) -> None:
    server, _ = start(env={"CHATCORE_FILEXFER_PARTIAL_TIMEOUT": str(HOUR)}, clock=clock)
    ann, _ = login_as(server, "ann"), login_as(server, "bob")
    data = os.urandom(3 * wire.CHUNK)
    ready = wire.offer(ann, "bob", data)
    wire.send_chunks(ann, ready["upload_id"], data, 0, wire.CHUNK)
    ann.sync()
    clock.advance(HOUR - 1)
    ann.request(command="file_list")
    assert wire.stored_sizes(server) == [wire.CHUNK]
    again = wire.offer(ann, "bob", data)  # resumable until the partial timeout, counted from the chunk
    assert (again["upload_id"], again["offset"]) == (ready["upload_id"], wire.CHUNK)

    clock.advance(2)
    ann.request(command="file_list")
    assert wire.stored_sizes(server) == []
    assert ann.expect("file_expired")["upload_id"] == ready["upload_id"]
    fresh = wire.offer(ann, "bob", data)  # offering again starts from scratch
    assert fresh["offset"] == 0 and fresh["upload_id"] != ready["upload_id"]


def test_expired_files_are_cleaned_at_startup_too(start, login_as, wire, clock) -> None:
    server, _ = start(clock=clock)
    ann, _ = login_as(server, "ann"), login_as(server, "bob")
    wire.upload(ann, "bob", b"forgotten")
    server.stop()
    clock.advance(8 * 24 * HOUR)
    server, _ = start(clock=clock)
    assert wire.stored_sizes(server) == []
