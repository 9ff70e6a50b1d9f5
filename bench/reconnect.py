"""Reconnect storm after a restart: N clients that were online log in again at once, on device
tokens naming ``since`` (and catching up), or with their passwords, against a server with the
default Argon2id cost. Measures from the moment the restarted server accepts a connection to
the last client logged in (and, on tokens, caught up).

Run: ``./dev bench reconnect [--clients 1000] [--missed 20]``. Not a test. One process drives
every client over non-blocking sockets; the server runs in its own (``chatcore serve``).
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import servers  # noqa: E402
from load.proc import cpu_seconds  # noqa: E402

from chatcore import protocol  # noqa: E402

PASSWORD = "correct horse battery"


class Client:
    """One non-blocking connection that sends a few requests and parses frames as they come."""

    def __init__(self, name: str, port: int, requests: list[dict[str, Any]], until: str) -> None:
        self.name, self.until = name, until  # the message type that ends its job
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex(("127.0.0.1", port))
        self.out = b"".join(protocol.encode(r) for r in requests)
        self.inbuf = b""
        self.done: Optional[float] = None
        self.replies: list[dict[str, Any]] = []
        self.newest = 0

    def frames(self) -> Iterator[bytes]:
        """Read what the socket has and yield each frame it completes (header included)."""
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError(f"{self.name}: closed by the server")
        self.inbuf += data
        while len(self.inbuf) >= 2:
            total = 2 + protocol.HEADER.unpack_from(self.inbuf)[0]
            if len(self.inbuf) < total:
                break
            frame, self.inbuf = self.inbuf[:total], self.inbuf[total:]
            yield frame

    def readable(self) -> None:
        for frame in self.frames():
            message = protocol.decode(frame)
            self.newest = max(self.newest, int(message.get("id", 0) or 0))
            if message.get("type") in ("login_result", "register_result", "caught_up", "chat_ack"):
                self.replies.append(message)
                if message["type"] == "login_result" and message.get("response") != "ok":
                    raise ConnectionError(f"{self.name}: {message.get('reason')}")
            if message.get("type") == self.until and self.done is None:
                self.done = time.monotonic()

    def writable(self) -> None:
        sent = self.sock.send(self.out)
        self.out = self.out[sent:]


def drive(clients: list[Client], timeout: float) -> float:
    """Run every client until each got its ``until`` message; returns the seconds it took."""
    selector = selectors.DefaultSelector()
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
    start, waiting = time.monotonic(), len(clients)
    while waiting and time.monotonic() - start < timeout:
        for key, events in selector.select(0.05):
            client = key.data
            if events & selectors.EVENT_WRITE and client.out:
                client.writable()
                if not client.out:
                    selector.modify(client.sock, selectors.EVENT_READ, client)
            if events & selectors.EVENT_READ:
                before = client.done
                client.readable()
                if before is None and client.done is not None:
                    waiting -= 1
    if waiting:
        raise TimeoutError(f"{waiting} of {len(clients)} clients not done after {timeout:g} s")
    selector.close()
    return max(c.done for c in clients if c.done is not None) - start


def wait_listening(port: int, timeout: float = 30.0) -> float:
    """Block until a connection to ``port`` is accepted; the moment it was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return time.monotonic()
        time.sleep(0.002)
    raise TimeoutError(f"nothing listens on {port}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(clients: int, missed: int, modes: tuple[str, ...] = ("tokens", "passwords")) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="chatcore-reconnect-"))
    port = free_port()
    fixed = {"SERVER_PORT": str(port), "CHATCORE_CHAT_CATCH_UP_MAX": "100000"}
    names = [f"u{i:05d}" for i in range(clients)]
    setup = servers.chatcore(data, fixed, fast_hash=True)  # cheap hashes to make the accounts
    try:
        made = [Client(n, port, [{"command": "register", "username": n, "password": PASSWORD},
                                 {"command": "login", "username": n, "password": PASSWORD, "device": "bench"}],
                       "login_result") for n in names]
        drive(made, 300)
        tokens = {c.name: next(r["token"] for r in c.replies if r["type"] == "login_result") for c in made}
        for c in made:
            c.sock.close()
        sender = Client("u00000", port, [{"command": "login", "username": "u00000", "token": tokens["u00000"]}]
                        + [{"command": "chat", "peer": "", "message": f"missed {n}", "client_id": n}
                           for n in range(missed)], "chat_ack")
        drive([sender], 60)
        while len([r for r in sender.replies if r["type"] == "chat_ack"]) < missed:
            drive_more(sender)
        since = min(r["id"] for r in sender.replies if r["type"] == "chat_ack") - 1
        sender.sock.close()
    finally:
        setup.stop()
    results: dict[str, Any] = {"clients": clients, "missed": missed}
    for mode in modes:
        server = servers.chatcore(data, fixed, fast_hash=False)  # the default Argon2id cost from here on
        try:
            listening = wait_listening(port)
            cpu0 = cpu_seconds(server.pid)
            if mode == "tokens-only":  # token logins without a catch-up: what the login itself costs
                storm = [Client(n, port, [{"command": "hello", "protocol": 2, "presence": "batched"},
                                          {"command": "login", "username": n, "token": tokens[n]}],
                                "login_result") for n in names]
            elif mode == "tokens":
                storm = [Client(n, port, [{"command": "hello", "protocol": 2, "presence": "batched"},
                                          {"command": "login", "username": n, "token": tokens[n], "since": since}],
                                "caught_up") for n in names]
            else:
                storm = [Client(n, port, [{"command": "hello", "protocol": 2, "presence": "batched"},
                                          {"command": "login", "username": n, "password": PASSWORD}],
                                "login_result") for n in names]
            took = drive(storm, 600)
            last = max(c.done for c in storm if c.done is not None)
            results[mode] = {"seconds_from_listening": round(last - listening, 3), "storm_seconds": round(took, 3),
                             "server_cpu_s": round(cpu_seconds(server.pid) - cpu0, 2),
                             "caught_up_complete": sum(1 for c in storm for r in c.replies
                                                       if r["type"] == "caught_up" and r["complete"])}
            for c in storm:
                c.sock.close()
        finally:
            server.stop()
    return results


def drive_more(client: Client) -> None:
    """Read whatever else the one client has been sent (its remaining acks)."""
    client.sock.setblocking(True)
    client.sock.settimeout(10)
    client.readable()
    client.sock.setblocking(False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--missed", type=int, default=20, help="room messages sent while the clients were away")
    parser.add_argument("--modes", default="tokens,passwords", help="tokens, tokens-only, passwords (comma-separated)")
    args = parser.parse_args()
    print(run(args.clients, args.missed, tuple(args.modes.split(","))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
