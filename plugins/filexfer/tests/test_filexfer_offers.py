"""Unfinished uploads cannot hold the spool: per-sender caps on uploads in progress, idle offers
that stop reserving (fake clock), re-offers that do not renew, quotas that count what is held."""

from __future__ import annotations

import os

BOTH_STORES = True  # conftest.pytest_generate_tests: each test runs on SQLite and on PostgreSQL

MIB = 1 << 20
OFFER_TIMEOUT = 300.0


def empty_offer(wire, client, peer: str, size: int, n: int) -> dict:
    """``file_upload`` of ``size`` declared bytes (content n) that will never send a chunk."""
    return wire.ask(client, "file_upload_ready", command="file_upload", peer=peer, filename=f"f{n}.bin",
                    size=size, sha256=f"{n:064x}")


def test_a_flood_of_empty_offers_no_longer_blocks_another_users_upload(start, login_as, wire, clock) -> None:
    server, _ = start(clock=clock)  # the default limits: 256 MiB in progress per sender, a 10 GiB spool
    victim = login_as(server, "victim")
    replies = []
    for account in range(11):  # the report: 11 accounts, ~100 offers, 12 KB on disk; 128 x 80 MiB = 10 GiB
        flooder = login_as(server, f"flooder{account}")
        replies.append([empty_offer(wire, flooder, "victim", 80 * MIB, account * 100 + n) for n in range(12)])

    data = os.urandom(MIB)
    other = login_as(server, "sender")
    file_id = wire.upload(other, "victim", data)  # not refused with quota
    assert wire.download(victim, file_id)[0] == data
    for twelve in replies:  # three offers of 80 MiB each, then the 256 MiB in progress are reached
        assert [r["type"] for r in twelve] == ["file_upload_ready"] * 3 + ["error"] * 9
        assert {r["code"] for r in twelve[3:]} == {"quota"}
    assert "uploads in progress would declare 335544320 bytes" in replies[0][3]["reason"]

    clock.advance(OFFER_TIMEOUT + 1)
    victim.request(command="file_list")  # sweeps: offers that never sent a byte are gone
    assert len(wire.stored_sizes(server)) == 1


def test_one_sender_may_have_only_a_few_uploads_in_progress(start, login_as, wire) -> None:
    server, _ = start(env={"CHATCORE_FILEXFER_MAX_OFFERS": "3"})
    ann, _ = login_as(server, "ann"), login_as(server, "bob")
    ready = [empty_offer(wire, ann, "bob", 10, n) for n in range(3)]
    assert [r["type"] for r in ready] == ["file_upload_ready"] * 3
    fourth = empty_offer(wire, ann, "bob", 10, 3)
    assert (fourth["type"], fourth["code"]) == ("error", "quota")
    assert "3 uploads in progress; the limit is 3" in fourth["reason"]

    assert ann.request(command="file_cancel", upload_id=ready[0]["upload_id"])["type"] == "file_cancel_result"
    assert empty_offer(wire, ann, "bob", 10, 3)["type"] == "file_upload_ready"
    assert empty_offer(wire, ann, "bob", 10, 4)["code"] == "quota"
    resumed = empty_offer(wire, ann, "bob", 10, 1)  # offering one in progress again takes no new slot
    assert (resumed["type"], resumed["upload_id"]) == ("file_upload_ready", ready[1]["upload_id"])


def test_finished_uploads_do_not_count_as_in_progress(start, login_as, wire) -> None:
    server, _ = start(env={"CHATCORE_FILEXFER_MAX_OFFERS": "2"})
    ann, _ = login_as(server, "ann"), login_as(server, "bob")
    for n in range(4):  # four complete files, one after the other: never more than one in progress
        wire.upload(ann, "bob", f"file {n}".encode())
    assert [empty_offer(wire, ann, "bob", 10, n)["type"] for n in range(3)] == \
        ["file_upload_ready", "file_upload_ready", "error"]


def test_declared_bytes_in_progress_are_capped(start, login_as, wire) -> None:
    server, _ = start(env={"CHATCORE_FILEXFER_OFFER_BYTES": "1000"})
    ann, _ = login_as(server, "ann"), login_as(server, "bob")
    assert empty_offer(wire, ann, "bob", 600, 1)["type"] == "file_upload_ready"
    over = empty_offer(wire, ann, "bob", 401, 2)
    assert (over["code"], over["command"]) == ("quota", "file_upload")
    assert "would declare 1001 bytes; the limit is 1000" in over["reason"]
    data = os.urandom(400)
    wire.upload(ann, "bob", data)  # 600 + 400 fit; once complete the 400 are no longer "in progress"
    assert empty_offer(wire, ann, "bob", 400, 3)["type"] == "file_upload_ready"


def test_an_offer_that_gets_no_chunk_is_deleted_after_the_offer_timeout(start, login_as, wire, clock) -> None:
    server, _ = start(clock=clock)
    ann, _ = login_as(server, "ann"), login_as(server, "bob")
    ready = empty_offer(wire, ann, "bob", 5000, 1)
    clock.advance(OFFER_TIMEOUT - 1)
    ann.request(command="file_list")
    assert len(wire.stored_sizes(server)) == 1
    clock.advance(2)
    ann.request(command="file_list")
    assert wire.stored_sizes(server) == []
    expired = ann.expect("file_expired")
    assert (expired["upload_id"], expired["file_id"], expired["peer"]) == (ready["upload_id"], None, "bob")
    again = empty_offer(wire, ann, "bob", 5000, 1)
    assert again["upload_id"] != ready["upload_id"] and again["offset"] == 0


def test_an_idle_upload_counts_only_the_bytes_it_holds(start, login_as, wire, clock) -> None:
    chunk = wire.CHUNK
    server, _ = start(env={"CHATCORE_FILEXFER_SPOOL_LIMIT": str(4 * chunk)}, clock=clock)
    ann, cy, bob = login_as(server, "ann"), login_as(server, "cy"), login_as(server, "bob")
    data = os.urandom(3 * chunk)
    ready = wire.offer(ann, "bob", data)
    wire.send_chunks(ann, ready["upload_id"], data, 0, chunk)
    ann.sync()
    assert "spool is full" in empty_offer(wire, cy, "bob", 2 * chunk, 1)["reason"]  # ann reserves 3 chunks

    clock.advance(OFFER_TIMEOUT + 1)  # no chunk since: ann's upload holds 1 chunk and reserves no more
    other = empty_offer(wire, cy, "bob", 2 * chunk, 1)
    assert other["type"] == "file_upload_ready"
    assert [size for size in wire.stored_sizes(server) if size] == [chunk]

    again = wire.ask(ann, "file_upload_ready", command="file_upload", peer="bob", filename="data.bin",
                     size=len(data), sha256=wire.sha(data))
    assert (again["code"], "spool is full" in again["reason"]) == ("quota", True)  # it needs 2 chunks again
    wire.send_chunks(ann, ready["upload_id"], data, chunk, 2 * chunk)  # a chunk without asking: the same
    refused = ann.expect("error")
    assert (refused["code"], refused["upload_id"], refused["offset"]) == ("quota", ready["upload_id"], chunk)

    assert cy.request(command="file_cancel", upload_id=other["upload_id"])["type"] == "file_cancel_result"
    assert wire.offer(ann, "bob", data)["offset"] == chunk
    wire.send_chunks(ann, ready["upload_id"], data, chunk)
    file_id = wire.ask(ann, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])["file_id"]
    assert wire.download(bob, file_id)[0] == data


def test_offering_again_does_not_keep_an_empty_offer_alive(start, login_as, wire, clock) -> None:
    server, _ = start(clock=clock)
    ann, _ = login_as(server, "ann"), login_as(server, "bob")
    ready = empty_offer(wire, ann, "bob", 5000, 1)
    for _ in range(3):
        clock.advance(OFFER_TIMEOUT / 3 - 1)
        again = empty_offer(wire, ann, "bob", 5000, 1)
        assert (again["upload_id"], again["offset"]) == (ready["upload_id"], 0)
    clock.advance(4)  # OFFER_TIMEOUT + 1 after the offer, though it was offered again 1 s ago
    ann.request(command="file_list")
    assert wire.stored_sizes(server) == []
    assert ann.expect("file_expired")["upload_id"] == ready["upload_id"]

