"""The reactor and the worker pool over real sockets: a session whose handler blocks is no
longer read once its queued requests pass CHATCORE_REQUEST_QUEUE (TCP holds its client back),
it resumes in order afterwards, and other sessions are served meanwhile."""

from __future__ import annotations

import select
import threading
import time
from typing import Any, Callable

from chatcore import hookimpl, protocol
from chatcore.server import ChatServer

LIMIT = 65536  # the smallest CHATCORE_REQUEST_QUEUE allowed


class Gate:
    """A plugin whose ``wait`` command blocks its worker until the test opens the gate (``logs_in``:
    it counts as a way to log in, so connections must log in, and queue little until they have)."""

    def __init__(self, logs_in: bool = False) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()
        self.logs_in = logs_in

    @hookimpl
    def chat_register_commands(self, register: Callable[..., Any]) -> None:
        register("wait", self.wait, auth=False, logs_in=self.logs_in)
        register("echo", lambda s, m: {"type": "echo", "n": m.get("n")}, auth=False)

    def wait(self, session: Any, message: dict[str, Any]) -> dict[str, Any]:
        self.entered.set()
        self.open.wait(30)
        return {"type": "waited"}


def flood_until_paused(client: Any, conn: Any, wire: bytes) -> int:
    """Write ``wire`` whenever the socket takes more, until the server stops reading it; bytes written."""
    client.sock.setblocking(False)
    written, deadline = 0, time.monotonic() + 30
    while conn.events() != 0 and time.monotonic() < deadline:
        _, writable, _ = select.select([], [client.sock], [], 0.1)  # feed it whenever it takes more
        if writable and written < len(wire):
            try:
                written += client.sock.send(wire[written:written + 65536])
            except BlockingIOError:
                pass
    assert conn.events() == 0, "the server kept reading a client whose requests could not be served"
    return written


def test_a_connection_not_logged_in_queues_only_the_login_allowance(make_server, connect):
    gate = Gate(logs_in=True)
    server = make_server(plugins=[], extra=[("gate", gate)], env={"CHATCORE_RATE_LIMIT": "1000000",
                                                                  "CHATCORE_RATE_BURST": "1000000"})
    client = connect(server)
    client.send(command="wait")
    assert gate.entered.wait(10)
    (conn,) = server.connections()
    flood_until_paused(client, conn, b"".join(protocol.encode({"command": "echo", "n": n, "pad": "x" * 1000})
                                              for n in range(4000)))
    assert 0 < conn.queued_bytes <= 16384 + 4096 + 1500  # CHATCORE_LOGIN_REQUEST_QUEUE, a last read, a frame
    gate.open.set()


def test_a_blocked_session_is_read_no_further_than_its_queue_then_resumes_in_order(make_server, connect):
    gate = Gate()
    server: ChatServer = make_server(plugins=[], extra=[("gate", gate)],
                                     env={"CHATCORE_REQUEST_QUEUE": str(LIMIT), "CHATCORE_RATE_LIMIT": "1000000",
                                          "CHATCORE_RATE_BURST": "1000000"})
    blocked = connect(server)
    blocked.send(command="wait")
    assert gate.entered.wait(10)
    (conn,) = server.connections()  # the blocked client's, the only one yet
    wire = b"".join(protocol.encode({"command": "echo", "n": n, "pad": "x" * 1000}) for n in range(1, 16001))
    written = flood_until_paused(blocked, conn, wire)
    assert written < len(wire), "the client could write everything: nothing held it back"
    assert conn.queued_bytes <= LIMIT + 4096 + 1500
    other = connect(server)  # meanwhile another client is served as usual
    assert other.request(command="echo", n=-1)["n"] == -1
    gate.open.set()
    blocked.send_raw(wire[written:], timeout=30)
    assert blocked.expect("waited", timeout=30)
    assert [blocked.expect("echo", timeout=30)["n"] for _ in range(16000)] == list(range(1, 16001))
