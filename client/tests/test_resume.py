"""Transfers cut off by a disconnect resume on the next connection, over real sockets.

The client closes its own connection mid-transfer (from the progress callback, so the cut
lands at a known point), waits until the server has finished with the old connection, then
``reconnect``s: the upload is offered again and continues from the offset the server holds,
the download asks for the rest from the bytes already written.
"""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from chatcore_client.api import Closed
from chatcore_client.progress import Progress

from .conftest import ALL_PLUGINS

SIZE = 2_000_000  # 62 chunks of 32 KiB
CUT_AT = 600_000


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_upload_resumes_from_the_servers_offset_after_a_disconnect(make_server, api_client, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    alice, bob = api_client(server, "alice"), api_client(server, "bob")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(SIZE))
    cut = threading.Event()

    def progress(p: Progress) -> None:
        if p.done >= CUT_AT and not cut.is_set():
            cut.set()
            alice.connection.close()  # the next chunk finds no connection: the upload pauses

    upload = alice.start_upload("bob", source, progress)
    with pytest.raises(Closed):
        alice.wait_upload(upload)
    assert not upload.done.is_set() and upload in alice.transfers.suspended
    sent_before = upload.streams[0][1]
    assert upload.streams[0][0] == 0 and CUT_AT <= sent_before < SIZE
    bob.expect("peer_left", match=lambda m: m.get("peer") == "alice")  # the server is done with that connection

    alice.reconnect()
    file_id = alice.wait_upload(upload)
    resumed_at, sent_after = upload.streams[1]
    assert 0 < resumed_at <= sent_before  # file_upload_ready said the server already held these bytes
    assert sent_after == SIZE - resumed_at  # and only the missing ones were sent
    assert len(upload.streams) == 2

    offer = bob.offers()
    assert offer["file_id"] == file_id and offer["size"] == SIZE
    target = tmp_path / "got.bin"
    bob.download(offer, target)
    assert _digest(target.read_bytes()) == _digest(source.read_bytes())


def test_download_resumes_from_the_bytes_written_after_a_disconnect(make_server, api_client, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    alice, bob = api_client(server, "alice"), api_client(server, "bob")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(SIZE))
    alice.upload("bob", source)
    offer = bob.offers()
    target = tmp_path / "got.bin"
    cut = threading.Event()

    def progress(p: Progress) -> None:
        if p.done >= CUT_AT and not cut.is_set():
            cut.set()
            bob.connection.close()  # what the reader had already queued is discarded with the connection

    download = bob.start_download(offer, target, progress)
    with pytest.raises(Closed):
        bob.wait_download(download)
    written = download.written
    assert CUT_AT <= written < SIZE and download.temp_path.stat().st_size == written
    assert not target.exists()

    bob.reconnect()
    assert bob.wait_download(download) == target
    assert download.requests == [0, written]  # the second file_download asked only for the rest
    assert _digest(target.read_bytes()) == _digest(source.read_bytes())
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert alice.expect("file_delivered")["file_id"] == offer["file_id"]


def test_an_upload_whose_done_went_out_asks_again_after_a_reconnect_not_anew(make_server, api_client, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    alice, bob = api_client(server, "alice"), api_client(server, "bob")
    source = tmp_path / "report.pdf"
    source.write_bytes(os.urandom(300_000))
    sent: list[str] = []
    done_sent = threading.Event()
    send = alice.transfers.send

    def recording(message: dict) -> None:
        sent.append(message["command"])
        send(message)
        if message["command"] == "file_upload_done":
            done_sent.set()

    alice.transfers.send = recording
    upload = alice.start_upload("bob", source)
    alice.transfers.upload_ready(alice.expect("file_upload_ready"))  # streams in a worker thread
    offer = bob.offers()  # the server finished the upload: its file_uploaded is on the way to alice...
    assert done_sent.wait(10)
    alice.connection.close()  # ...and is lost with the connection
    with pytest.raises(Closed):
        alice.wait_upload(upload)
    assert upload in alice.transfers.suspended
    before = len(sent)

    alice.reconnect()
    assert alice.wait_upload(upload) == offer["file_id"]
    assert sent[before:] == ["file_upload_done"]  # asked again: no new offer, no chunk sent twice
    assert len(upload.streams) == 1
    assert [f["file_id"] for f in bob.request("file_list", ["file_list"])["files"]] == [offer["file_id"]]
    assert bob.take("file_offer") == []  # offered to bob once
