"""A really full disk (a small tmpfs filled to the last byte): offers, chunks and upload_done get
``disk_full``, nothing stray stays in the spool, complete files stay intact, the log gets one
warning per interval instead of a traceback per request."""

from __future__ import annotations

import logging
import os


def full_disk_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("chatcore_filexfer") and r.levelno == logging.WARNING and "full" in r.getMessage()]


def test_a_full_disk_refuses_offers_chunks_and_upload_done_with_disk_full(small_disk, start, login_as, wire,
                                                                          clock, caplog) -> None:
    caplog.set_level(logging.INFO)
    server, _ = start(clock=clock, data_dir=small_disk / "data")
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    kept = os.urandom(5 * wire.CHUNK)
    kept_id = wire.upload(ann, "bob", kept)
    partial = os.urandom(3 * wire.CHUNK)
    partial_id = wire.offer(ann, "bob", partial)["upload_id"]
    wire.send_chunks(ann, partial_id, partial, 0, wire.CHUNK)
    whole = os.urandom(1000)
    whole_id = wire.offer(ann, "bob", whole)["upload_id"]
    wire.send_chunks(ann, whole_id, whole)
    assert [m for m in ann.sync() if m.get("type") == "error"] == []
    before = {path.name: path.stat().st_size for path in wire.spool_files(server)}

    filler = wire.fill_disk(small_disk)
    wire.send_chunks(ann, partial_id, partial, wire.CHUNK, 2 * wire.CHUNK)
    chunk = ann.expect("error")
    assert (chunk["command"], chunk["code"], chunk["upload_id"], chunk["offset"]) == \
        ("file_chunk", "disk_full", partial_id, wire.CHUNK)
    offer = wire.ask(ann, "file_upload_ready", command="file_upload", peer="bob", filename="new.bin",
                     size=100, sha256=wire.sha(b"new"))
    assert (offer["type"], offer["code"]) == ("error", "disk_full")
    done = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=whole_id)
    assert (done["code"], done["upload_id"]) == ("disk_full", whole_id)
    assert {path.name: path.stat().st_size for path in wire.spool_files(server)} == before  # nothing stray
    assert wire.download(bob, kept_id)[0] == kept  # complete files are intact and can be taken

    assert [r for r in caplog.records if r.exc_info] == []  # no traceback, for any request
    warned = full_disk_warnings(caplog)
    assert len(warned) == 1 and str(small_disk / "data" / "filexfer") in warned[0], warned
    clock.advance(61)
    wire.send_chunks(ann, partial_id, partial, wire.CHUNK, 2 * wire.CHUNK)
    assert ann.expect("error")["code"] == "disk_full"
    warned = full_disk_warnings(caplog)
    # since the first: the offer, upload_done, marking the download delivered, and this chunk
    assert len(warned) == 2 and "4 writes failed for lack of space in the last 61 s" in warned[1], warned

    filler.unlink()  # space again: everything goes on from where it stopped
    wire.send_chunks(ann, partial_id, partial, wire.CHUNK)
    partial_file = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=partial_id)["file_id"]
    whole_file = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=whole_id)["file_id"]
    assert wire.download(bob, partial_file)[0] == partial
    assert wire.download(bob, whole_file)[0] == whole


def test_on_a_full_disk_a_cancel_still_frees_the_space(small_disk, start, login_as, wire) -> None:
    server, _ = start(data_dir=small_disk / "data")
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    data = os.urandom(4 * wire.CHUNK)
    ready = wire.offer(ann, "bob", data)
    wire.send_chunks(ann, ready["upload_id"], data, 0, 2 * wire.CHUNK)
    kept_id = wire.upload(ann, "bob", b"a small file")
    ann.sync()

    wire.fill_disk(small_disk)
    cancelled = ann.request(command="file_cancel", upload_id=ready["upload_id"])
    assert (cancelled["type"], cancelled["upload_id"]) == ("file_cancel_result", ready["upload_id"])
    assert len(wire.spool_files(server)) == 1
    assert bob.request(command="file_list")["files"][0]["file_id"] == kept_id
    again = wire.offer(ann, "bob", data)  # the upload is gone from the index too
    assert again["upload_id"] != ready["upload_id"] and again["offset"] == 0
