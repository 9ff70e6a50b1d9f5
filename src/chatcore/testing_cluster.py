"""Testing kit for cluster mode (a pytest plugin): real PostgreSQL and Redis, never mocks.

``cluster_env`` is the environment of one cluster for the test (a fresh database, a Redis key
prefix of its own): give it to every node, ``make_server(..., env=cluster_env, data_dir=...)``
for nodes in the test's process; ``known(node, name)`` makes sure the cluster has an account.
``private_redis`` and ``private_postgres`` are servers of the test's own, for tests that
restart them. ``start_node(cluster_env, plugins)`` runs a node as its own ``chatcore serve``
process (``kill()`` is ``kill -9``). When neither the machine's servers nor the binaries to
start them exist, these fixtures fail the test (saying what to install): cluster tests are
never skipped silently.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import pytest

from chatcore import services
from chatcore.server import ChatServer
from chatcore.services import Databases, PrivatePostgres, PrivateRedis, redis_namespace
from chatcore.testing import PASSWORD, TestClient


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[Databases]:
    """Where the tests' databases are made: the machine's PostgreSQL, or one started for the run."""
    with services.postgres_databases() as databases:
        yield databases


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Redis, or one started for the run."""
    with services.redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_databases: Databases) -> Iterator[str]:
    """A fresh, empty database for this test (dropped after)."""
    with postgres_databases.fresh() as url:
        yield url


@pytest.fixture
def cluster_env(postgres_url: str, redis_server_url: str) -> Iterator[dict[str, str]]:
    """Cluster-mode settings for this test's nodes: a fresh database and a Redis prefix of its own."""
    with redis_namespace(redis_server_url) as prefix:
        yield {"CHATCORE_DATABASE_URL": postgres_url, "CHATCORE_REDIS_URL": redis_server_url,
               "CHATCORE_REDIS_PREFIX": prefix}


def name_taken(reply: Mapping[str, Any]) -> bool:
    """Whether a ``register`` failed only because the name is taken."""
    return reply.get("response") == "fail" and any(word in str(reply.get("reason", "")).lower()
                                                   for word in ("exists", "taken"))


@pytest.fixture
def known(connect: Callable[..., TestClient]) -> Callable[[ChatServer, str], None]:
    """``known(node, name)``: the cluster has an account ``name`` (registered through ``node``
    unless it exists already), so that a message, an invitation or a ban can name it."""

    def factory(node: ChatServer, name: str) -> None:
        client = connect(node)
        reply = client.request(command="register", username=name, password=PASSWORD)
        assert reply.get("response") == "ok" or name_taken(reply), reply
        client.close()

    return factory


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis server of this test's own (started), to restart or kill."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this test's own (started), to restart."""
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.remove()


class NodeProcess:
    """A ``chatcore serve`` process of the cluster, listening on a free loopback port."""

    def __init__(self, data_dir: Path, env: Mapping[str, str], plugins: Sequence[str]) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("CHATCORE_", "SERVER_", "STORAGE_"))}
        clean.update({"CHATCORE_HOST": "127.0.0.1", "SERVER_PORT": "0", "STORAGE_DIR": str(data_dir),
                      "CHATCORE_PLUGINS": ",".join(plugins), "LOG_LEVEL": "INFO", **env})
        self.data_dir = data_dir
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.log: list[str] = []
        self.process = subprocess.Popen([sys.executable, "-m", "chatcore", "serve"], cwd=data_dir.parent,
                                        env=clean, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._pump, name="node-log", daemon=True).start()
        self.address = ("127.0.0.1", int(self.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1)))
        self.node_id = self.wait_for_logged(r"cluster node (\S+) joined")

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> "re.Match[str]":
        """The next log line matching ``pattern``; fails with the log so far when none comes."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no log line matched {pattern!r}; the node logged:\n{''.join(self.log)}") from None
            match = re.search(pattern, line)
            if match:
                return match

    def wait_for_logged(self, pattern: str) -> str:
        """The first group of ``pattern`` in a line logged already or still to come."""
        for line in list(self.log):
            match = re.search(pattern, line)
            if match:
                return match.group(1)
        return self.wait_for(pattern).group(1)

    def kill(self) -> None:
        """``kill -9``: no shutdown, no goodbye to the cluster."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the ordered shutdown."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """``start_node(cluster_env, plugins=(...), env=None, name=None)`` runs one more node of the
    cluster as a process with its own data directory; every node is stopped at teardown."""
    nodes: list[NodeProcess] = []

    def factory(cluster_env: Mapping[str, str], plugins: Sequence[str] = ("auth", "chat"),
                env: Optional[Mapping[str, str]] = None, name: Optional[str] = None) -> NodeProcess:
        data_dir = tmp_path / (name or f"node{len(nodes) + 1}")
        data_dir.mkdir(parents=True, exist_ok=True)
        node = NodeProcess(data_dir, {**cluster_env, **(env or {})}, plugins)
        nodes.append(node)
        return node

    yield factory
    for node in reversed(nodes):
        if node.process.poll() is None:
            node.stop()
