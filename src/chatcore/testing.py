"""Testing kit (a pytest plugin): real servers on 127.0.0.1:0 and a blocking test client.

Fixtures: ``make_server(plugins=[...])`` starts a server with exactly those installed
plugins (plus any plugin objects given as ``extra``) in a temporary data directory and stops
it after the test; ``connect(server)`` opens a ``TestClient`` to it; ``tmpfs(size)`` mounts a
small real file system for full-disk tests (and ``read_only(path)`` makes a folder read-only);
``clock`` is a ``FakeClock`` to hand to a plugin instead of the real time. ``scrape(server)``
and ``http_get(server, path)`` read a server's metrics port (start it with
``env={"CHATCORE_METRICS_ADDRESS": "127.0.0.1:0"}``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatcore import protocol
from chatcore.config import Config
from chatcore.plugins import installed
from chatcore.server import ChatServer

DEFAULT_TIMEOUT = 5.0
PASSWORD = "correct horse battery"  # the tests' password: long enough for the accounts plugin's rules
Types = Optional[Union[str, Sequence[str]]]
_nonces = itertools.count(1)


class TestClient:
    """A blocking client for tests: ``send`` messages, ``expect`` replies by type and fields.

    Messages read while waiting for something else are kept, in order, for later ``expect``
    calls, so a test can expect events in any order.
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, address: tuple[str, int], timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.timeout = timeout
        self.reader = protocol.FrameReader(self.sock.recv_into, self.sock.settimeout)
        self.backlog: list[Any] = []
        self.eof = False

    def send(self, payload: Any = None, /, **fields: Any) -> None:
        """Send one message: a dict, or keyword fields (``send(command="chat", message="hi")``)."""
        payload = dict(fields) if payload is None else payload
        self.sock.sendall(protocol.encode(payload))

    def send_raw(self, data: bytes, timeout: Optional[float] = None) -> None:
        """Send bytes as they are (malformed frames, partial frames). ``timeout``: seconds this
        write may take instead of the client's timeout, for a bulk write the server reads only
        as fast as it serves it."""
        if timeout is None:
            self.sock.sendall(data)
            return
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.settimeout(self.timeout)

    def _read(self, timeout: float) -> Any:
        """The next message, None on EOF; raises TimeoutError when nothing came in time."""
        if self.eof:
            return None
        try:
            message = self.reader.read(idle_timeout=timeout)
        except (ConnectionResetError, BrokenPipeError):
            message = None
        if message is None:
            self.eof = True
        return message

    @staticmethod
    def _matches(message: Any, type_: Types, fields: Mapping[str, Any]) -> bool:
        if not isinstance(message, dict):
            return False
        wanted = (type_,) if isinstance(type_, str) else type_
        if wanted is not None and message.get("type") not in wanted:
            return False
        return all(message.get(k) == v for k, v in fields.items())

    def expect(self, type_: Types = None, timeout: Optional[float] = None, **fields: Any) -> dict[str, Any]:
        """The first message (kept or new) of ``type_`` (a type or several) whose fields equal ``fields``.

        Raises AssertionError, listing what did arrive, if none comes within ``timeout``.
        """
        for index, message in enumerate(self.backlog):
            if self._matches(message, type_, fields):
                return dict(self.backlog.pop(index))
        wait = self.timeout if timeout is None else timeout
        try:
            while True:
                message = self._read(wait)
                if message is None:
                    break
                if self._matches(message, type_, fields):
                    return dict(message)
                self.backlog.append(message)
        except TimeoutError:
            pass
        raise AssertionError(f"expected {type_} {fields or ''} within {wait:g} s"
                             f"{' (connection closed)' if self.eof else ''}; received: {self.backlog!r}")

    def request(self, payload: Any = None, /, *, reply: Types = None, **fields: Any) -> dict[str, Any]:
        """Send a command and return its reply: a message of type ``reply`` if given, else the
        first whose type is the command's name, ``<command>_result``, ``pong`` (for ping) or ``error``.
        ``reply`` may name several types."""
        payload = dict(fields) if payload is None else payload
        self.send(payload)
        command = payload.get("command", payload.get("type"))
        default = (command, f"{command}_result", "error") + (("pong",) if command == "ping" else ())
        return self.expect(reply or default)

    def login(self, username: str, password: str, register: bool = False) -> dict[str, Any]:
        """Log in through the accounts plugin (registering first if asked); fails the test
        unless the server says ok. Returns the ``login_result``."""
        if register:
            reply = self.request(command="register", username=username, password=password)
            assert reply.get("response") == "ok", reply
        reply = self.request(command="login", username=username, password=password)
        assert reply.get("response") == "ok", reply
        return reply

    def sync(self) -> list[Any]:
        """Round-trip a ``ping`` and return (and clear) everything that arrived before its ``pong``.

        The server handles a connection's messages in order, so once the pong is here every
        reply to earlier requests is too: a test waits for this event instead of sleeping.
        """
        nonce = f"sync-{next(_nonces)}"
        self.send(command="ping", nonce=nonce)
        self.expect("pong", nonce=nonce)
        arrived, self.backlog = self.backlog, []
        return arrived

    def expect_closed(self, timeout: Optional[float] = None) -> list[Any]:
        """Wait for the server to close the connection; returns what arrived before."""
        wait = self.timeout if timeout is None else timeout
        try:
            while True:
                message = self._read(wait)
                if message is None:
                    break
                self.backlog.append(message)
        except TimeoutError:
            raise AssertionError(f"connection still open after {wait:g} s; received {self.backlog!r}") from None
        except protocol.ProtocolError:
            pass
        arrived, self.backlog = self.backlog, []
        return arrived

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "TestClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def server_config(data_dir: Path, plugins: Sequence[str], env: Optional[Mapping[str, Any]] = None,
                  entry_points: Optional[Iterable[importlib.metadata.EntryPoint]] = None) -> Config:
    """A config for a loopback server on a free port with exactly ``plugins`` enabled."""
    available = installed(entry_points)
    values = {
        "CHATCORE_HOST": "127.0.0.1",
        "SERVER_PORT": "0",
        "STORAGE_DIR": str(data_dir),
        "CHATCORE_DISABLE_PLUGINS": ",".join(name for name in available if name not in plugins),
        "LOG_LEVEL": "DEBUG",
    }
    config = Config(values, base_dir=data_dir.parent)
    return config.with_overrides(**dict(env or {}))


MakeServer = Callable[..., ChatServer]


class FakeClock:
    """A clock that moves only when the test says so: give it to a plugin to test expiry,
    throttling or retention without sleeping."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fresh ``FakeClock`` for the test."""
    return FakeClock()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[MakeServer]:
    """Start servers for a test; each is stopped at teardown (in reverse order).

    ``make_server(plugins=("auth",), env={...}, extra=[(name, obj)], entry_points=None,
    data_dir=None)``: ``extra`` registers plugin objects directly, and one named like an
    installed plugin replaces it (``extra=[("auth", AuthPlugin(clock=fake))]``). ``data_dir``
    defaults to ``tmp_path/"data"``, so a second server made in the same test reopens the
    first one's storage (restart tests).
    """
    started: list[ChatServer] = []

    def factory(plugins: Sequence[str] = (), env: Optional[Mapping[str, Any]] = None,
                extra: Sequence[tuple[str, Any]] = (),
                entry_points: Optional[Iterable[importlib.metadata.EntryPoint]] = None,
                data_dir: Optional[Path] = None) -> ChatServer:
        points = list(entry_points) if entry_points is not None else None
        names = [*plugins, *(name for name, _ in extra)]  # an extra object may stand in for an installed plugin
        config = server_config(data_dir or tmp_path / "data", names, env, points)
        server = ChatServer(config, entry_points=points, extra_plugins=extra)
        server.start()
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()


def http_get(server: ChatServer, path: str, headers: Optional[Mapping[str, str]] = None,
             timeout: float = DEFAULT_TIMEOUT) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` from the server's metrics port: (status, headers, body), errors included."""
    assert server.metrics.address is not None, "start the server with CHATCORE_METRICS_ADDRESS=127.0.0.1:0"
    host, port = server.metrics.address
    request = urllib.request.Request(f"http://{host}:{port}{path}", headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


class Samples(dict[tuple[str, tuple[tuple[str, str], ...]], float]):
    """One scrape's samples by (name, sorted labels)."""

    def value(self, name: str, **labels: Any) -> Optional[float]:
        """The sample ``name`` with exactly these labels, or None."""
        return self.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))))

    def total(self, name: str) -> float:
        """The sum of every sample called ``name`` (over its labels)."""
        return sum(value for (sample, _), value in self.items() if sample == name)


def scrape(server: ChatServer) -> Samples:
    """Scrape ``/metrics`` over HTTP and parse it (Prometheus text format)."""
    status, _, body = http_get(server, "/metrics")
    assert status == 200, body
    samples = Samples()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def remount(path: Path, size: str) -> None:
    """Give a ``tmpfs`` mount another size (``"64m"``): frees a full disk, or fills one."""
    result = subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Within this block ``path`` is read-only to whatever opens a file there from now on, as a
    disk the kernel remounted read-only after an error: a read-only bind mount over it (files
    the server already holds open keep writing below it; a remount of their own mount would be
    refused as busy). Skips, saying why, where mounting is not permitted."""
    bound = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount for a read-only test (needs root or CAP_SYS_ADMIN): "
                    f"{bound.stderr.strip() or bound.returncode}")
    try:
        result = subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        yield
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``tmpfs(size="4m", name="small-disk")``: a real file system of that size mounted in the
    test's temp dir, for tests of a full disk; unmounted at teardown (ask for this fixture before
    the server fixtures, so the servers stop first). Skips, saying why, where mounting is not
    permitted (it needs root or CAP_SYS_ADMIN)."""
    mounted: list[Path] = []

    def factory(size: str = "4m", name: str = "small-disk") -> Path:
        path = tmp_path / name
        path.mkdir(exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs for a full-disk test (needs root or CAP_SYS_ADMIN): "
                        f"{result.stderr.strip() or result.returncode}")
        mounted.append(path)
        return path

    yield factory
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], capture_output=True)


@pytest.fixture
def login_as(connect: Callable[..., TestClient]) -> Callable[..., TestClient]:
    """``login_as(server, name, password=PASSWORD, register=True, v2=False)``: a client logged in
    through the accounts plugin (registering first unless told not to; ``v2`` says ``hello``
    with protocol 2 before). It returns once the login has finished on the server (a ping round
    trip: the session is online, offline delivery done), keeping whatever arrived for ``expect``."""

    def factory(server: ChatServer, name: str, password: str = PASSWORD, register: bool = True,
                v2: bool = False) -> TestClient:
        client = connect(server)
        if v2:
            assert client.request(command="hello", client="tests", protocol=2)["protocol"] == 2
        client.login(name, password, register)
        client.backlog = client.sync() + client.backlog
        return client

    return factory


@pytest.fixture
def register(connect: Callable[..., TestClient]) -> Callable[..., None]:
    """``register(server, name, password=PASSWORD)``: create an account without logging in."""

    def factory(server: ChatServer, name: str, password: str = PASSWORD) -> None:
        client = connect(server)
        reply = client.request(command="register", username=name, password=password)
        assert reply["response"] == "ok", reply
        client.close()

    return factory


@pytest.fixture
def connect() -> Iterator[Callable[..., TestClient]]:
    """Open ``TestClient`` connections (``connect(server)``), closed at teardown."""
    clients: list[TestClient] = []

    def factory(server: ChatServer, timeout: float = DEFAULT_TIMEOUT) -> TestClient:
        host, port = server.address
        client = TestClient(("127.0.0.1" if host in ("0.0.0.0", "") else host, port), timeout)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
