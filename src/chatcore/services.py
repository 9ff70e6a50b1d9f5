"""PostgreSQL and Redis servers for tests and benchmarks: the machine's own when they run,
private instances otherwise (also for tests that restart them).

A run never touches what others keep there: each test gets a database of its own (created,
then dropped) and a Redis key prefix of its own (its keys deleted after). Private instances
run from Debian's binaries (``./dev`` installs ``postgresql`` and ``redis-server``) in a
temporary directory, on a free loopback port; PostgreSQL refuses to run as root, so as root
it runs as the ``postgres`` account.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import psycopg
import redis

MACHINE_POSTGRES = os.environ.get("CHATCORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MACHINE_REDIS = os.environ.get("CHATCORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
START_TIMEOUT = 30.0


class ServiceMissing(RuntimeError):
    """Neither a running server nor the binaries to start one: the cluster tests cannot run."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until(ready: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {timeout:g} s")


def postgres_reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def redis_reachable(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def postgres_bindir() -> Path:
    """Where Debian's (or the PATH's) ``initdb`` and ``postgres`` are."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    if which:
        return Path(which).parent
    raise ServiceMissing("PostgreSQL is not running on 127.0.0.1:5432 and initdb is not installed (apt install postgresql)")


class PrivatePostgres:
    """A PostgreSQL of our own on a free port; ``restart()`` keeps its data, ``remove()`` ends it.

    Its directory is a new one under the system's temporary directory, not under pytest's
    (which only root may enter, and as root the server runs as ``postgres``)."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="chatcore-postgres-"))
        self.port = free_port()
        self.bindir = postgres_bindir()
        self._user = "postgres" if os.geteuid() == 0 else None
        self.process: Optional[subprocess.Popen[bytes]] = None
        if self._user:
            account = pwd.getpwnam(self._user)
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        self._run([str(self.bindir / "initdb"), "-D", str(self.directory / "pg"), "-U", "postgres", "--auth=trust",
                   "--no-sync", "-E", "UTF8"])

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self._user, "--", *argv] if self._user else argv

    def _run(self, argv: list[str]) -> None:
        subprocess.run(self._as_user(argv), check=True, capture_output=True)

    def start(self) -> None:
        argv = [str(self.bindir / "postgres"), "-D", str(self.directory / "pg"), "-p", str(self.port),
                "-k", str(self.directory), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                "-c", "full_page_writes=off", "-c", "max_connections=200"]
        log = open(self.directory / "postgres.log", "ab")
        self.process = subprocess.Popen(self._as_user(argv), stdout=log, stderr=log)
        log.close()
        _wait_until(lambda: postgres_reachable(self.url), f"PostgreSQL on port {self.port}")

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster: transactions rolled back, clients cut off).
        The signal goes to the postmaster itself, since ``runuser`` does not pass it on."""
        if self.process is not None and self.process.poll() is None:
            pid_file = self.directory / "pg" / "postmaster.pid"
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
            except (OSError, ValueError, IndexError):
                self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=START_TIMEOUT)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop, and delete the data."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class PrivateRedis:
    """A redis-server of our own, keeping nothing on disk, on a free port."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceMissing("Redis is not running on 127.0.0.1:6379 and redis-server is not installed "
                                 "(apt install redis-server)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: Optional[subprocess.Popen[bytes]] = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.directory / "redis.log", "ab")
        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
                                        stdout=log, stderr=log)
        log.close()
        _wait_until(lambda: redis_reachable(self.url), f"Redis on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=START_TIMEOUT)
        self.process = None

    def restart(self) -> None:
        """Kill and start again on the same port: like a crash, everything it held is gone."""
        self.stop()
        self.start()


class Databases:
    """Fresh databases on one PostgreSQL server, each dropped when done."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        name = f"chatcore_test_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield self.admin_url.rsplit("/", 1)[0] + "/" + name
        finally:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def redis_namespace(url: str) -> Iterator[str]:
    """A key prefix of our own on ``url``; its keys are deleted afterwards."""
    prefix = f"chatcore-test-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start:start + 500])
        except redis.RedisError:
            pass
        finally:
            client.close()


@contextlib.contextmanager
def postgres_databases() -> Iterator[Databases]:
    """Where fresh databases are made: the machine's PostgreSQL when it answers, else a private
    one started for the block (and removed after)."""
    if postgres_reachable(MACHINE_POSTGRES):
        yield Databases(MACHINE_POSTGRES)
        return
    server = PrivatePostgres()
    server.start()
    try:
        yield Databases(server.url)
    finally:
        server.remove()


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """The URL of the machine's Redis when it answers, else of a private one started for the
    block (working in ``directory``)."""
    if redis_reachable(MACHINE_REDIS):
        yield MACHINE_REDIS
        return
    server = PrivateRedis(directory)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
