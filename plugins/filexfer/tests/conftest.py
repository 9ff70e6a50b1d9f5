"""Shared helpers for the filexfer tests: servers with the real auth plugin, logged-in clients,
and upload/download drivers that speak the wire protocol."""

from __future__ import annotations

import base64
import errno
import hashlib
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Union

import pytest

from chatcore.cluster import Database
from chatcore.server import ChatServer
from chatcore.testing import FakeClock, TestClient
from chatcore_filexfer.index import Index
from chatcore_filexfer.largeobjects import LargeObjectSpool
from chatcore_filexfer.limits import Limits
from chatcore_filexfer.pgindex import MIGRATIONS, PgIndex
from chatcore_filexfer.plugin import FilexferPlugin
from chatcore_filexfer.service import Clock, FileService

CHUNK = 32 * 1024


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "single_store: in a BOTH_STORES module, run on SQLite only (the test is "
                            "about the spool directory, or the store makes no difference to it)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Wire-level tests of a module with ``BOTH_STORES = True`` run twice: on a single node
    (SQLite and spool) and on a node in cluster mode (PostgreSQL and large objects)."""
    if ("start" in metafunc.fixturenames and getattr(metafunc.module, "BOTH_STORES", False)
            and metafunc.definition.get_closest_marker("single_store") is None):
        metafunc.parametrize("store", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    """Where ``start``'s servers keep files: ``sqlite`` (a single node) or ``postgres`` (cluster mode)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def start(make_server: Callable[..., ChatServer], store: str,
          request: pytest.FixtureRequest) -> Callable[..., tuple[ChatServer, FilexferPlugin]]:
    """``start(env={...}, clock=None, data_dir=None)``: a server with the real auth plugin and a
    filexfer plugin instance the test can reach (and give a fake clock); background sweeps are off.
    With ``store`` = ``postgres`` every server of the test is a node of one cluster."""
    cluster: Mapping[str, str] = request.getfixturevalue("cluster_env") if store == "postgres" else {}

    def factory(env: Optional[Mapping[str, Any]] = None, clock: Optional[FakeClock] = None,
                data_dir: Optional[Path] = None) -> tuple[ChatServer, FilexferPlugin]:
        plugin = FilexferPlugin(clock=clock) if clock is not None else FilexferPlugin()
        settings = {**cluster, "CHATCORE_FILEXFER_SWEEP_INTERVAL": "0",
                    # cheap password hashing: these tests are about files, not passwords
                    "CHATCORE_AUTH_ARGON2_MEMORY_KIB": "1024", "CHATCORE_AUTH_ARGON2_TIME_COST": "1",
                    **dict(env or {})}
        # Not registered as "filexfer": make_server blocks every installed name it was not
        # asked for, and a blocked name silently refuses the extra object too.
        server = make_server(plugins=["auth"], env=settings, extra=[("filexfer-under-test", plugin)],
                             data_dir=data_dir)
        return server, plugin

    return factory


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The store under test: the single node's SQLite and spool, or the cluster's PostgreSQL."""
    return str(request.param)


@pytest.fixture
def filexfer_database(backend: str, request: pytest.FixtureRequest) -> Iterator[Optional[Database]]:
    """For ``postgres``: a fresh database with the plugin's schema migrated (None for ``sqlite``)."""
    if backend != "postgres":
        yield None
        return
    database = Database(request.getfixturevalue("postgres_url"), min_size=1, max_size=4)
    database.open()
    database.schema("filexfer").migrate(MIGRATIONS)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def make_index(filexfer_database: Optional[Database], tmp_path: Path) -> Callable[[], Union[Index, PgIndex]]:
    """``make_index()``: the index on the test's backend; called again it reopens the same one."""
    def factory() -> Union[Index, PgIndex]:
        if filexfer_database is None:
            return Index(tmp_path / "index.sqlite3")
        return PgIndex(filexfer_database.schema("filexfer"))
    return factory


@pytest.fixture
def make_service(filexfer_database: Optional[Database], tmp_path: Path) -> Iterator[Callable[..., FileService]]:
    """``make_service(limits, clock)``: a FileService on the test's backend; each call is another
    server (a restart, or another node of the cluster) on the same storage. Strays in the cluster's
    store count at once (no grace period)."""
    made: list[FileService] = []

    def factory(limits: Limits, clock: Clock) -> FileService:
        store = None
        if filexfer_database is not None:
            schema = filexfer_database.schema("filexfer")
            store = (PgIndex(schema), LargeObjectSpool(schema, stray_grace=0))
        service = FileService(tmp_path, limits, clock, store)
        made.append(service)
        return service

    yield factory
    for service in made:
        service.close()


def stored_bytes(service: FileService, name: str) -> bytes:
    """Every byte the service's store holds for ``name`` (a spool file or a large object)."""
    parts = []
    with service.spool.open(name) as source:
        while piece := source.read(1 << 20):
            parts.append(piece)
    return b"".join(parts)


@pytest.fixture
def small_disk(tmpfs: Callable[..., Path]) -> Path:
    """A 4 MiB tmpfs of its own (a real file system that fills up). Ask for it before ``start``
    so the servers stop before it is unmounted."""
    return tmpfs("4m")


def fill_disk(folder: Path) -> Path:
    """Write ``folder/filler`` until its file system has no byte left; returns the filler."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        for block in (1 << 16, 1 << 12, 1 << 9, 1):  # ever smaller writes take the last bytes too
            try:
                while out.write(b"\0" * block):
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler




def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def ask(client: TestClient, reply: str, **fields: Any) -> dict[str, Any]:
    """Send a command and return its reply of type ``reply`` or its ``error``."""
    client.send(fields)
    return client.expect((reply, "error"))


def offer(client: TestClient, peer: str, data: bytes, filename: str = "data.bin") -> dict[str, Any]:
    """Send ``file_upload`` and return ``file_upload_ready``."""
    reply = ask(client, "file_upload_ready", command="file_upload", peer=peer, filename=filename,
                size=len(data), sha256=sha(data))
    assert reply["type"] == "file_upload_ready", reply
    return reply


def send_chunks(client: TestClient, upload_id: str, data: bytes, start: int = 0, stop: Optional[int] = None) -> None:
    """Send ``data[start:stop]`` as file_chunk frames of at most 32 KiB."""
    stop = len(data) if stop is None else stop
    for offset in range(start, stop, CHUNK):
        client.send(command="file_chunk", upload_id=upload_id, offset=offset,
                    data=b64(data[offset:min(offset + CHUNK, stop)]))


def upload(client: TestClient, peer: str, data: bytes, filename: str = "data.bin") -> str:
    """Upload ``data`` to ``peer`` in chunks; returns the file_id."""
    ready = offer(client, peer, data, filename)
    send_chunks(client, ready["upload_id"], data, ready["offset"])
    done = ask(client, "file_uploaded", command="file_upload_done", upload_id=ready["upload_id"])
    assert done["type"] == "file_uploaded", done
    return done["file_id"]


def receive(client: TestClient, file_id: str, offset: int = 0, limit: Optional[int] = None) -> tuple[bytes, Optional[dict]]:
    """Read file_data frames from ``offset`` until file_data_end (or ``limit`` frames);
    returns (bytes, the file_data_end or None)."""
    parts: list[bytes] = []
    position = offset
    frames = 0
    while limit is None or frames < limit:
        message = client.expect(("file_data", "file_data_end", "error"), file_id=file_id)
        if message["type"] == "file_data_end":
            return b"".join(parts), message
        assert message["type"] == "file_data", message
        assert message["offset"] == position
        chunk = base64.b64decode(message["data"])
        assert 0 < len(chunk) <= CHUNK
        parts.append(chunk)
        position += len(chunk)
        frames += 1
    return b"".join(parts), None


def download(client: TestClient, file_id: str, offset: int = 0) -> tuple[bytes, dict]:
    """Ask for ``file_id`` from ``offset`` and read it to the end."""
    client.send(command="file_download", file_id=file_id, offset=offset)
    data, end = receive(client, file_id, offset)
    assert end is not None
    return data, end


def spool_files(server: ChatServer) -> list[Path]:
    """Every file in the plugin's spool directory."""
    return sorted((server.data_dir / "filexfer" / "spool").iterdir())


def stored(server: ChatServer) -> dict[str, int]:
    """Every stored file body's name and size: the spool files, or in cluster mode the blobs."""
    if server.cluster is None:
        return {path.name: path.stat().st_size for path in spool_files(server)}
    with server.cluster.database.schema("filexfer").connection() as conn:
        return {str(name): int(length) for name, length in conn.execute("SELECT name, length FROM blobs")}


def stored_sizes(server: ChatServer) -> list[int]:
    """The sizes of every stored file body, smallest first (either store)."""
    return sorted(stored(server).values())


class Wire:
    """The helpers above as one object, handed to tests by the ``wire`` fixture (test modules
    cannot import conftest under ``--import-mode=importlib``)."""

    CHUNK = CHUNK
    sha = staticmethod(sha)
    b64 = staticmethod(b64)
    ask = staticmethod(ask)
    offer = staticmethod(offer)
    send_chunks = staticmethod(send_chunks)
    upload = staticmethod(upload)
    receive = staticmethod(receive)
    download = staticmethod(download)
    spool_files = staticmethod(spool_files)
    fill_disk = staticmethod(fill_disk)
    stored_bytes = staticmethod(stored_bytes)
    stored = staticmethod(stored)
    stored_sizes = staticmethod(stored_sizes)


@pytest.fixture
def wire() -> type[Wire]:
    return Wire
