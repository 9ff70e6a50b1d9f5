"""``file_upload_done`` is idempotent: sent again (a retry after a lost reply) it answers the same
file_uploaded while the file exists, and the recipient is offered the file once."""

from __future__ import annotations

import os

BOTH_STORES = True  # conftest.pytest_generate_tests: each test runs on SQLite and on PostgreSQL


def test_upload_done_sent_again_answers_the_same_file_and_offers_it_once(start, login_as, wire) -> None:
    server, _ = start()
    ann, bob = login_as(server, "ann"), login_as(server, "bob")
    data = os.urandom(2 * wire.CHUNK + 10)
    upload_id = wire.offer(ann, "bob", data)["upload_id"]
    wire.send_chunks(ann, upload_id, data)
    first = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=upload_id)
    assert first["type"] == "file_uploaded"
    again = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=upload_id)
    assert again == first == {"type": "file_uploaded", "upload_id": upload_id, "file_id": first["file_id"]}
    ann.close()  # the reply was lost with the connection: a new one asks once more
    ann = login_as(server, "ann", register=False)
    assert wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=upload_id) == first
    for other in (bob, login_as(server, "cy")):  # the recipient or a stranger: as if it did not exist
        refused = wire.ask(other, "file_uploaded", command="file_upload_done", upload_id=upload_id)
        assert (refused["code"], refused["upload_id"]) == ("unknown_upload", upload_id)

    offers = [m for m in bob.sync() if m.get("type") == "file_offer"]
    assert [m["file_id"] for m in offers] == [first["file_id"]]  # offered once
    assert len(bob.request(command="file_list")["files"]) == 1 and len(wire.stored_sizes(server)) == 1
    assert wire.download(bob, first["file_id"])[0] == data
    assert wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=upload_id) == first  # still kept

    bob.send(command="file_received", file_id=first["file_id"])  # the file is gone: nothing to answer
    bob.sync()
    gone = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=upload_id)
    assert (gone["type"], gone["code"]) == ("error", "unknown_upload")

