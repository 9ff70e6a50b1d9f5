"""docs/haproxy.cfg for real: HAProxy checks it, then runs it (addresses swapped for the test's)
in front of two real nodes; clients connect through it over TLS and pin the nodes' one
certificate, leastconn spreads them, and a stopped node is marked down by the /readyz check so
new clients reach the other; a node whose storage turns read-only (its chat port still
accepting) is marked down too and its clients are cut, to reconnect to the other node. Skipped,
saying why, where HAProxy is not installed (or, for the read-only case, mounting is not allowed)."""

from __future__ import annotations

import re
import select
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from chatcore.testing import read_only, scrape
from chatcore_client.api import ChatClient
from chatcore_client.pinning import PinStore

CONFIG = Path(__file__).resolve().parents[2] / "docs" / "haproxy.cfg"
WAIT = 20.0  # seconds for HAProxy to start and for a check to change a node's state


def haproxy() -> str:
    path = shutil.which("haproxy") or (shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin"))
    if path is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy) to check docs/haproxy.cfg")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``condition`` until truthy; fail saying ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        select.select([], [], [], 0.05)
    return value


def runnable(config: str, port: int, nodes: list[tuple[int, int]], admin: Path) -> str:
    """The documented config with the test's addresses: the frontend on ``port``, the runtime
    API at ``admin``, 1000 connections at most, and one server line per (chat port, metrics port)
    on loopback, checked every 200 ms (the test's pace; every other setting is the document's)."""
    config = config.replace("bind :8888", f"bind 127.0.0.1:{port}")
    config = config.replace("maxconn 30000", "maxconn 1000")  # within a test machine's file limit
    config = config.replace("/run/haproxy/admin.sock", str(admin))
    servers = [f"    server chat{n} 127.0.0.1:{chat} port {metrics} inter 200ms"
               for n, (chat, metrics) in enumerate(nodes, 1)]
    config, count = re.subn(r"(?m)^    server chat\d .*\n", "", config)
    assert count == 3, "docs/haproxy.cfg should name three nodes"
    return config + "\n".join(servers) + "\n"


class Balancer:
    """A running HAProxy and its runtime API."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, admin: Path, log: Path) -> None:
        self.proc, self.port, self.admin, self.log = proc, port, admin, log

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, str]:
        """Each server's state as the checks see it: ``UP``, ``DOWN`` …"""
        rows = [line.split(",") for line in self.command("show stat").splitlines() if line.startswith("chatcore,")]
        return {row[1]: row[17].split(" ")[0] for row in rows if row[1].startswith("chat")}

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"haproxy exited: {self.log.read_text()}")
        try:
            return bool(self.states())
        except OSError:
            return False


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[Callable[[list[tuple[int, int]]], Balancer]]:
    """``balancer([(chat port, metrics port), ...])``: HAProxy on docs/haproxy.cfg in front of them."""
    binary = haproxy()
    started: list[Balancer] = []

    def start(nodes: list[tuple[int, int]]) -> Balancer:
        port, admin, log = free_port(), tmp_path / "haproxy.sock", tmp_path / "haproxy.log"
        config = tmp_path / "haproxy.cfg"
        config.write_text(runnable(CONFIG.read_text(), port, nodes, admin))
        with log.open("wb") as out:
            proc = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT)
        started.append(Balancer(proc, port, admin, log))
        wait_until(started[-1].ready, "haproxy's runtime API")
        return started[-1]

    yield start
    for running in started:
        running.proc.terminate()
        try:
            running.proc.wait(10)
        except subprocess.TimeoutExpired:
            running.proc.kill()
            running.proc.wait()


def test_the_example_config_is_valid():
    result = subprocess.run([haproxy(), "-c", "-f", str(CONFIG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def same_certificate(server: Any) -> dict[str, str]:
    """Settings for another node serving ``server``'s certificate, as every node of a cluster does
    (behind one balancer address a node with another certificate is refused as changed)."""
    tls = server.data_dir / "tls"
    return {"CHATCORE_TLS_CERT": str(tls / "cert.pem"), "CHATCORE_TLS_KEY": str(tls / "key.pem")}


def connections(server: Any) -> float:
    return scrape(server).total("chatcore_connections")


def two_nodes_behind(make_server: Any, balancer: Any, tmp_path: Path) -> tuple[Any, Any, Balancer]:
    """Two auth nodes with the cluster's one certificate and their metrics (for /readyz), and
    HAProxy in front of them, once it reports both up."""
    metrics = {"CHATCORE_METRICS_ADDRESS": "127.0.0.1:0"}
    first = make_server(plugins=["auth"], data_dir=tmp_path / "a", env=metrics)
    second = make_server(plugins=["auth"], data_dir=tmp_path / "b", env={**metrics, **same_certificate(first)})
    front = balancer([(node.address[1], node.metrics.address[1]) for node in (first, second)])
    wait_until(lambda: front.states() == {"chat1": "UP", "chat2": "UP"}, "both nodes up")
    return first, second, front


def test_clients_through_haproxy_spread_over_the_nodes_and_avoid_a_stopped_one(make_server, balancer, tmp_path):
    first, second, front = two_nodes_behind(make_server, balancer, tmp_path)
    nodes = [first, second]
    pins = PinStore(tmp_path / "pins.json")
    asked: list[str] = []
    clients = []
    for _ in nodes:
        client = ChatClient.connect("127.0.0.1", front.port, pins=pins, ask=lambda *a: asked.append(a[2]) or True)
        clients.append(client)
        assert client.tls and client.server.plugins  # TLS end to end: HAProxy passes the bytes through
    assert len(asked) == 1  # both nodes present the cluster's one certificate: pinned once
    wait_until(lambda: [connections(node) for node in nodes] == [1, 1], "one client on each node (leastconn)")
    first.stop()
    wait_until(lambda: front.states().get("chat1") == "DOWN", "the stopped node marked down by /readyz")
    late = ChatClient.connect("127.0.0.1", front.port, pins=pins, ask=lambda *_: False)
    clients.append(late)
    assert late.server.plugins and connections(second) == 2  # every new client on the live node
    for client in clients:
        client.close()


def test_a_node_that_cannot_store_is_taken_out_and_its_clients_are_cut_to_reconnect_elsewhere(
        make_server, balancer, tmp_path):
    first, second, front = two_nodes_behind(make_server, balancer, tmp_path)
    nodes = [first, second]
    clients = [ChatClient.connect("127.0.0.1", front.port, pins=PinStore(tmp_path / f"pins{n}.json"),
                                  ask=lambda *_: True) for n in range(2)]
    wait_until(lambda: [connections(node) for node in nodes] == [1, 1], "one client on each node")
    with read_only(first.data_dir):  # its chat port still accepts: only /readyz tells
        wait_until(lambda: front.states().get("chat1") == "DOWN", "the node marked down by its /readyz 503")
        cut = wait_until(lambda: [c for c in clients if c.connection.closed], "its client cut (on-marked-down)")
        assert len(cut) == 1 and connections(second) == 1
        cut[0].reconnect()  # through the balancer again: to the node that can store
        assert connections(second) == 2 and cut[0].server.plugins == ["auth"]
    wait_until(lambda: front.states().get("chat1") == "UP", "the node back up once it can store again")
    for client in clients:
        client.close()
