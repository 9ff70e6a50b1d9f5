"""FileService without a server: uploads, resume across restarts, verification, expiry; on both
stores (``make_service``: SQLite and spool, or the cluster's PostgreSQL and large objects)."""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import threading
from pathlib import Path

import pytest

from chatcore.cluster import Database
from chatcore.errors import CommandError
from chatcore_filexfer.largeobjects import LargeObjectSpool
from chatcore_filexfer.limits import Limits
from chatcore_filexfer.pgindex import MIGRATIONS, PgIndex
from chatcore_filexfer.service import FileService
from chatcore_filexfer.spool import SpoolError


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def upload(service: FileService, data: bytes, sender: str = "ann", recipient: str = "Bob",
           chunk: int = 1000) -> str:
    entry, held = service.offer(sender, recipient, "f.bin", len(data), hashlib.sha256(data).hexdigest())
    for offset in range(held, len(data), chunk):
        service.write_chunk(sender, entry.upload_id, offset, b64(data[offset:offset + chunk]))
    return service.finish(sender, entry.upload_id)[0].file_id


def test_resume_after_restart_rebuilds_the_hash_from_disk(make_service, wire) -> None:
    data = os.urandom(5000)
    digest = hashlib.sha256(data).hexdigest()
    first = make_service(Limits(), Clock())
    entry, held = first.offer("ann", "Bob", "f.bin", len(data), digest)
    first.write_chunk("ann", entry.upload_id, 0, b64(data[:3000]))
    first.close()

    second = make_service(Limits(), Clock())
    assert second.reconcile() == (0, 0)
    again, held = second.offer("Ann", "bob", "other name.bin", len(data), digest.upper())
    assert (again.upload_id, held) == (entry.upload_id, 3000)
    second.write_chunk("ann", entry.upload_id, 3000, b64(data[3000:]))
    done, made = second.finish("ann", entry.upload_id)
    assert made and done.state == "ready" and done.file_id
    assert wire.stored_bytes(second, done.spool_name) == data
    second.close()


def test_reconcile_drops_orphans_both_ways(make_service, backend) -> None:
    service = make_service(Limits(), Clock())
    file_id = upload(service, b"x" * 10)
    entry = service.index.by_file(file_id)
    stray = service.spool.new_name()
    service.spool.create(stray)
    if backend == "sqlite":
        (service.spool.root / "not-ours.txt").write_text("left alone")
    service.spool.remove(entry.spool_name)
    assert service.reconcile() == (1, 1)
    assert list(service.spool.names()) == []
    if backend == "sqlite":
        assert (service.spool.root / "not-ours.txt").exists()
    assert service.index.by_file(file_id) is None


def test_full_disk_is_an_error_and_the_upload_can_continue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = FileService(tmp_path, Limits(), Clock())
    data = os.urandom(3000)
    entry, _ = service.offer("ann", "bob", "f", len(data), hashlib.sha256(data).hexdigest())
    service.write_chunk("ann", entry.upload_id, 0, b64(data[:1000]))

    def full(fd: int, view: memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(service.spool, "_write", full)
    with pytest.raises(CommandError) as caught:
        service.write_chunk("ann", entry.upload_id, 1000, b64(data[1000:2000]))
    assert caught.value.code == "disk_full"
    monkeypatch.undo()
    assert service.spool.size(entry.spool_name) == 1000
    service.write_chunk("ann", entry.upload_id, 1000, b64(data[1000:]))
    assert service.finish("ann", entry.upload_id)[0].state == "ready"


def test_sweep_removes_expired_files_and_idle_uploads_only(make_service) -> None:
    clock = Clock()
    service = make_service(Limits(expiry=100, partial_timeout=50), clock)
    file_id = upload(service, b"ready")
    ready = service.index.by_file(file_id)
    idle, _ = service.offer("ann", "bob", "idle", 10, "1" * 64)
    busy, _ = service.offer("ann", "bob", "busy", 10, "2" * 64)
    clock.now += 40
    service.write_chunk("ann", busy.upload_id, 0, b64(b"12345"))  # activity keeps it alive
    clock.now += 20
    assert [e.upload_id for e in service.sweep()] == [idle.upload_id]
    clock.now += 50
    gone = {e.upload_id for e in service.sweep()}
    assert gone == {busy.upload_id, ready.upload_id}
    assert service.index.by_file(file_id) is None
    assert list(service.spool.names()) == []


def test_quota_counts_partial_uploads_and_file_count(make_service) -> None:
    service = make_service(Limits(user_quota=100, spool_limit=150, max_files=2), Clock())
    service.offer("ann", "bob", "a", 60, "1" * 64)
    with pytest.raises(CommandError, match="quota") as caught:
        service.offer("ann", "bob", "b", 41, "2" * 64)
    assert caught.value.code == "quota"
    service.offer("ann", "bob", "b", 40, "2" * 64)
    with pytest.raises(CommandError) as caught:
        service.offer("ann", "bob", "c", 0, "3" * 64)
    assert caught.value.code == "quota"
    with pytest.raises(CommandError) as caught:
        service.offer("cy", "bob", "d", 51, "4" * 64)
    assert caught.value.code == "quota" and "spool" in caught.value.reason


def test_an_upload_finished_while_the_sweep_looks_at_it_stays_finished(make_service) -> None:
    clock = Clock()
    service = make_service(Limits(offer_timeout=50), clock)
    data = os.urandom(3000)
    entry, _ = service.offer("ann", "bob", "f", len(data), hashlib.sha256(data).hexdigest())
    service.write_chunk("ann", entry.upload_id, 0, b64(data))
    clock.now += 60
    (candidate,) = service.index.going_idle(clock.now - 50)  # the sweep's query saw it unfinished...
    done, made = service.finish("ann", entry.upload_id)  # ...and it is finished before the sweep acts
    assert made and service.sweep() == [] and service._idle_out(candidate, clock.now) is False
    assert service.uploads.get(entry.upload_id) is None  # no record left behind for a finished upload
    assert service.finish("ann", entry.upload_id) == (done, False)  # a retried upload_done still answers


@pytest.mark.parametrize("backend", ["postgres"])
def test_the_sweep_unlinks_stored_bytes_no_row_names(make_service, filexfer_database) -> None:
    service = make_service(Limits(), Clock())
    file_id = upload(service, b"kept")
    stray = service.spool.new_name()
    service.spool.create(stray)  # as if a node died between an offer's blob and its row
    with pytest.raises(SpoolError) as caught:
        service.spool.append(stray, 0, b"x")
    assert caught.value.gone

    def large_objects() -> int:
        with filexfer_database.schema("filexfer").connection() as conn:
            return conn.execute("SELECT COUNT(*) FROM pg_largeobject_metadata").fetchone()[0]

    assert large_objects() == 2
    assert service.sweep() == [] and large_objects() == 1
    assert service.index.by_file(file_id) is not None and service.spool.size(stray) is None


@pytest.mark.parametrize("backend", ["postgres"])
def test_two_nodes_write_one_upload_at_the_stored_offset_only(make_service) -> None:
    data = os.urandom(4000)
    node_a, node_b = make_service(Limits(), Clock()), make_service(Limits(), Clock())
    entry, _ = node_a.offer("ann", "bob", "f", len(data), hashlib.sha256(data).hexdigest())
    assert node_a.write_chunk("ann", entry.upload_id, 0, b64(data[:1000])) == 1000
    assert node_b.offer("ann", "bob", "f", len(data), hashlib.sha256(data).hexdigest())[1] == 1000
    assert node_b.write_chunk("ann", entry.upload_id, 1000, b64(data[1000:3000])) == 3000
    with pytest.raises(CommandError) as caught:  # node a remembers 1000: the store says 3000
        node_a.write_chunk("ann", entry.upload_id, 1000, b64(data[1000:2000]))
    assert (caught.value.code, caught.value.extra["offset"]) == ("bad_offset", 3000)
    assert node_a.write_chunk("ann", entry.upload_id, 3000, b64(data[3000:])) == 4000
    done, made = node_b.finish("ann", entry.upload_id)
    assert node_a.uploads.get(entry.upload_id) is not None  # node a still remembers it...
    node_a.sweep()
    assert node_a.uploads.get(entry.upload_id) is None  # ...until its sweep finds it finished elsewhere
    assert made and node_a.finish("ann", entry.upload_id) == (done, False)


def test_an_upload_rides_out_a_postgresql_outage(private_postgres, tmp_path: Path) -> None:
    database = Database(private_postgres.url, min_size=1, max_size=4, timeout=20)
    database.open()
    try:
        database.schema("filexfer").migrate(MIGRATIONS)
        schema = database.schema("filexfer")
        service = FileService(tmp_path, Limits(), Clock(), (PgIndex(schema), LargeObjectSpool(schema)))
        data = os.urandom(3000)
        entry, _ = service.offer("ann", "bob", "f", len(data), hashlib.sha256(data).hexdigest())
        service.write_chunk("ann", entry.upload_id, 0, b64(data[:1000]))
        private_postgres.stop()
        database.timeout = 1.0
        with pytest.raises(CommandError) as caught:
            service.write_chunk("ann", entry.upload_id, 1000, b64(data[1000:2000]))
        assert (caught.value.code, caught.value.extra["offset"]) == ("storage_error", 1000)
        private_postgres.start()
        database.timeout = 20.0
        assert service.offer("ann", "bob", "f", len(data), hashlib.sha256(data).hexdigest())[1] == 1000
        service.write_chunk("ann", entry.upload_id, 1000, b64(data[1000:]))
        assert service.finish("ann", entry.upload_id)[1]
    finally:
        database.close()


@pytest.mark.parametrize("backend", ["postgres"])
def test_two_nodes_offering_at_once_cannot_both_take_the_last_room(make_service) -> None:
    limits = Limits(user_quota=100, max_offers=50, offer_bytes=10_000)
    nodes = [make_service(limits, Clock()) for _ in range(2)]
    results: list[str] = []
    barrier = threading.Barrier(8)

    def offer(service: FileService, number: int) -> None:
        barrier.wait()
        try:
            service.offer("ann", "bob", "f", 60, f"{number:064x}")
            results.append("ok")
        except CommandError as exc:
            results.append(exc.code)

    threads = [threading.Thread(target=offer, args=(nodes[n % 2], n)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok"] + ["quota"] * 7
    assert nodes[0].index.usage("ann").files == 1


@pytest.mark.parametrize("backend", ["postgres"])
def test_an_upload_another_node_made_idle_must_fit_the_quota_again(make_service) -> None:
    clock = Clock()
    limits = Limits(user_quota=5000, offer_timeout=100)
    node_a, node_b = make_service(limits, clock), make_service(limits, clock)
    data = os.urandom(3000)
    entry, _ = node_a.offer("ann", "bob", "f", len(data), hashlib.sha256(data).hexdigest())
    clock.now += 50
    node_a.write_chunk("ann", entry.upload_id, 0, b64(data[:500]))
    clock.now += 10  # a chunk soon after another: every chunk's time is in the row, for every node's sweep
    node_a.write_chunk("ann", entry.upload_id, 500, b64(data[500:1000]))
    clock.now += 99
    assert node_b.sweep() == [] and node_b.index.by_upload(entry.upload_id).held is None
    clock.now += 2
    node_b.sweep()
    assert node_b.index.by_upload(entry.upload_id).held == 1000  # idle: it counts what it holds
    node_b.offer("ann", "bob", "g", 3000, "5" * 64)  # 1000 + 3000 fit the quota
    with pytest.raises(CommandError) as caught:  # node a still thinks it active: the store says idle
        node_a.write_chunk("ann", entry.upload_id, 1000, b64(data[1000:2000]))
    assert caught.value.code == "quota"
    node_b.cancel("ann", node_b.index.find_partial("ann", "bob", "5" * 64, 3000).upload_id)
    node_a.write_chunk("ann", entry.upload_id, 1000, b64(data[1000:2000]))
    assert node_a.index.by_upload(entry.upload_id).held is None  # active again, at its declared size
    assert node_a.index.by_upload(entry.upload_id).touched == clock.now
