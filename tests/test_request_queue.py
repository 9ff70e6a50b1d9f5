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
    """A plugin whose ``wait`` command blocks its worker until the test opens the gate."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()

    @hookimpl
    def chat_register_commands(self, register: Callable[..., Any]) -> None:
        register("wait", self.wait, auth=False)
        register("echo", lambda s, m: {"type": "echo", "n": m.get("n")}, auth=False)

    def wait(self, session: Any, message: dict[str, Any]) -> dict[str, Any]:
        self.entered.set()
        self.open.wait(30)
        return {"type": "waited"}


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
    blocked.sock.setblocking(False)
    written, deadline = 0, time.monotonic() + 30
    while conn.events() != 0 and time.monotonic() < deadline:
        _, writable, _ = select.select([], [blocked.sock], [], 0.1)  # feed it whenever it takes more
        if writable and written < len(wire):
            try:
                written += blocked.sock.send(wire[written:written + 65536])
            except BlockingIOError:
                pass
    assert conn.events() == 0, "the server kept reading a client whose requests could not be served"
    assert written < len(wire), "the client could write everything: nothing held it back"
    other = connect(server)  # meanwhile another client is served as usual
    assert other.request(command="echo", n=-1)["n"] == -1
    gate.open.set()
    blocked.sock.setblocking(True)
    blocked.sock.settimeout(30)
    blocked.sock.sendall(wire[written:])
    assert blocked.expect("waited", timeout=30)
    assert [blocked.expect("echo", timeout=30)["n"] for _ in range(16000)] == list(range(1, 16001))
