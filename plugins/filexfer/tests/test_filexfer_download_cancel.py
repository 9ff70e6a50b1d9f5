"""``file_download_cancel``: the stream stops at once, and no file_data of it follows the reply."""

from __future__ import annotations

import base64
import os

SIZE = 20 << 20  # more than the stream window and the kernel's socket buffers together can hold


def test_a_cancelled_download_stops_streaming_before_the_reply(start, login_as, wire) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    data = os.urandom(SIZE)
    file_id = wire.upload(ann, "bob", data)
    bob.expect("file_offer", file_id=file_id)
    bob.send(command="file_download", file_id=file_id)
    first = bob.expect("file_data", file_id=file_id)
    assert first["offset"] == 0
    bob.send(command="file_download_cancel", file_id=file_id)
    assert bob.expect("file_download_cancel_result") == {"type": "file_download_cancel_result", "file_id": file_id}
    before = [m for m in bob.backlog if m.get("file_id") == file_id]
    assert [m["type"] for m in before] == ["file_data"] * len(before)  # never file_data_end
    position = len(base64.b64decode(first["data"]))
    for message in before:  # what came before the reply is an unbroken prefix of the file
        assert message["offset"] == position
        chunk = base64.b64decode(message["data"])
        assert chunk == data[position:position + len(chunk)]
        position += len(chunk)
    assert position < SIZE
    arrived = bob.sync()  # the frames kept above, and whatever came after the reply, before the pong
    assert [m for m in arrived if m.get("file_id") == file_id] == before  # nothing after the reply

    assert [m for m in ann.sync() if m.get("type") == "file_delivered"] == []  # not delivered
    assert [f["file_id"] for f in bob.request(command="file_list")["files"]] == [file_id]  # still offered
    tail, end = wire.download(bob, file_id, offset=position)
    assert data[:position] + tail == data and end["sha256"] == wire.sha(data)


def test_cancelling_a_download_that_is_not_streaming_gets_the_same_answer(start, login_as, wire) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    file_id = wire.upload(ann, "bob", b"short")
    assert wire.download(bob, file_id)[0] == b"short"  # already ended
    for asked, echoed in [(file_id, file_id), ("0" * 32, "0" * 32), ("x" * 5000, "x" * 64)]:
        reply = bob.request(command="file_download_cancel", file_id=asked)
        assert reply == {"type": "file_download_cancel_result", "file_id": echoed}
    # another user cannot stop bob's stream: a session only ever stops its own
    bob.send(command="file_download", file_id=file_id)
    assert ann.request(command="file_download_cancel", file_id=file_id)["type"] == "file_download_cancel_result"
    assert wire.receive(bob, file_id)[0] == b"short"
