"""Benchmark of the chat plugin: relay throughput between clients and broadcast fan-out, history on.

Starts ``chatcore serve`` (plugins auth + chat, a fresh temporary data directory, so every
message is committed to SQLite before it is acknowledged or delivered) in a separate
process, so the clients here do not share its GIL, then measures over loopback:

1. send -> chat_ack latency, one message at a time (the commit is on that path);
2. messages per second relayed from senders to receivers, pipelined, with 1 and 10 pairs;
3. broadcast fan-out: one sender, 100 receivers; messages and deliveries per second.

Run: ``.venv/bin/python bench/chat_relay.py [--messages N] [--receivers N]``. Not a test.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

from chatcore import protocol

PASSWORD = "benchmark password"
TEXT = "x" * 100


class Client:
    """A plain client: a socket, a frame reader thread, counters of what arrived."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = protocol.FrameReader(self.sock.recv_into, self.sock.settimeout)
        self.lock = threading.Condition()
        self.counts: dict[str, int] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self._thread: Optional[threading.Thread] = None

    def call(self, reply: str, **message: Any) -> dict[str, Any]:
        """Send and read until ``reply`` (before the reader thread starts)."""
        self.sock.sendall(protocol.encode(message))
        while True:
            got = self.reader.read()
            if got is None:
                raise RuntimeError("server closed the connection")
            if got.get("type") in (reply, "error"):
                return got

    def login(self, name: str) -> None:
        self.call("register_result", command="register", username=name, password=PASSWORD)
        result = self.call("login_result", command="login", username=name, password=PASSWORD)
        assert result.get("response") == "ok", result

    def start(self) -> None:
        """Count every incoming message by type from now on."""
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                got = self.reader.read()
            except (OSError, protocol.ProtocolError):
                return
            if got is None:
                return
            kind = got.get("type", "")
            with self.lock:
                self.counts[kind] = self.counts.get(kind, 0) + 1
                self.last[kind] = got
                self.lock.notify_all()

    def wait_for(self, kind: str, count: int, timeout: float = 120.0) -> None:
        with self.lock:
            if not self.lock.wait_for(lambda: self.counts.get(kind, 0) >= count, timeout):
                raise TimeoutError(f"{kind}: {self.counts.get(kind, 0)} of {count} after {timeout} s; "
                                   f"last error {self.last.get('error')}")

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()

    def send_many(self, frames: list[bytes]) -> None:
        self.sock.sendall(b"".join(frames))

    def close(self) -> None:
        self.sock.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(data: Path, port: int) -> subprocess.Popen[bytes]:
    """``chatcore serve`` with auth + chat, fast password hashing, no request rate limit and room
    for every benchmark connection from loopback."""
    env = dict(os.environ, STORAGE_DIR=str(data), LOG_LEVEL="WARNING", CHATCORE_PLUGINS="auth,chat",
               CHATCORE_AUTH_ARGON2_TIME_COST="1", CHATCORE_AUTH_ARGON2_MEMORY_KIB="1024",
               CHATCORE_RATE_LIMIT="1000000", CHATCORE_RATE_BURST="1000000",
               CHATCORE_MAX_CONNECTIONS_PER_ADDRESS="1000")
    process = subprocess.Popen([sys.executable, "-m", "chatcore", "serve", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=data.parent, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # a benchmark may poll; tests may not
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("the server exited at startup") from None
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the server did not start listening")


def chat_frames(peer: str, count: int, tag: str) -> list[bytes]:
    return [protocol.encode({"command": "chat", "peer": peer, "message": f"{tag} {n} {TEXT}"}) for n in range(count)]


def bench_latency(port: int, count: int) -> None:
    alice, bob = Client(port), Client(port)
    alice.login("lat_a")
    bob.login("lat_b")
    bob.start()
    samples = []
    for n in range(count):
        started = time.perf_counter()
        ack = alice.call("chat_ack", command="chat", peer="lat_b", message=f"{n} {TEXT}")
        samples.append(time.perf_counter() - started)
        assert ack["type"] == "chat_ack", ack
    bob.wait_for("private_message", count)
    samples.sort()
    pct = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))] * 1000  # noqa: E731
    print(f"send->ack latency, one at a time ({count} msgs): p50 {pct(0.50):.2f} ms, p99 {pct(0.99):.2f} ms, "
          f"max {samples[-1] * 1000:.2f} ms")
    alice.close()
    bob.close()


def bench_relay(port: int, pairs: int, count: int) -> None:
    senders, receivers = [], []
    for p in range(pairs):
        sender, receiver = Client(port), Client(port)
        sender.login(f"s{pairs}_{p}")
        receiver.login(f"r{pairs}_{p}")
        sender.start()
        receiver.start()
        senders.append(sender)
        receivers.append(receiver)
    batches = [chat_frames(f"r{pairs}_{p}", count, "relay") for p in range(pairs)]
    started = time.perf_counter()
    threads = [threading.Thread(target=s.send_many, args=(b,)) for s, b in zip(senders, batches)]
    for thread in threads:
        thread.start()
    for receiver in receivers:
        receiver.wait_for("private_message", count)
    for sender in senders:
        sender.wait_for("chat_ack", count)
    elapsed = time.perf_counter() - started
    total = pairs * count
    print(f"relay, {pairs} sender->receiver pair(s), {total} msgs pipelined: "
          f"{total / elapsed:,.0f} msg/s ({elapsed:.2f} s)")
    for client in senders + receivers:
        client.close()


def bench_broadcast(port: int, receivers_n: int, count: int) -> None:
    sender = Client(port)
    sender.login("bcast_sender")
    receivers = []
    for n in range(receivers_n):
        client = Client(port)
        client.login(f"bcast_{n}")
        client.start()
        receivers.append(client)
    sender.start()
    frames = chat_frames("", count, "broadcast")
    started = time.perf_counter()
    sender.send_many(frames)
    sender.wait_for("chat_ack", count)
    for receiver in receivers:
        receiver.wait_for("broadcast_message", count)
    elapsed = time.perf_counter() - started
    print(f"broadcast to {receivers_n} receivers, {count} msgs: {count / elapsed:,.0f} msg/s, "
          f"{count * receivers_n / elapsed:,.0f} deliveries/s ({elapsed:.2f} s)")
    for client in receivers + [sender]:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000, help="messages per relay pair")
    parser.add_argument("--broadcasts", type=int, default=2000, help="broadcast messages")
    parser.add_argument("--receivers", type=int, default=100, help="broadcast receivers")
    parser.add_argument("--latency", type=int, default=2000, help="one-at-a-time messages for latency")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        server = start_server(data, port)
        try:
            print(f"chatcore chat benchmark: auth + chat, history in {data / 'chat'} (SQLite WAL), "
                  f"{os.cpu_count()} CPUs, server in its own process")
            bench_latency(port, args.latency)
            bench_relay(port, 1, args.messages)
            bench_relay(port, 10, args.messages // 10)
            bench_broadcast(port, args.receivers, args.broadcasts)
            db = data / "chat" / "messages.sqlite3"
            print(f"history database: {db.stat().st_size / 1e6:.1f} MB (+ WAL)")
        finally:
            server.terminate()
            server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
