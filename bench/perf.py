"""The performance figures of issue 19, each from a fresh ``chatcore serve`` (history on):

- ``pairs``: server CPU per relayed 1:1 message and msg/s, 100 pairs in a closed loop (each
  sender keeps ``--window`` messages in flight and sends the next on each ``chat_ack``);
- ``storm``: server RSS before and after 1,000 password logins at once at the default Argon2id
  cost (the residue a storm leaves), and the server CPU per login outside the hash (logins at a
  tiny Argon2 cost, until the server is idle again, minus that hash's own CPU measured here;
  ``peer.py storm`` measures Prosody the same way).

RSS per idle connection at 5,000 / 10,000 and latency at fixed rates come from the load
harness (``bench/run.py --only connections`` / ``--only latency``). Run:
``./dev bench perf [pairs|storm] [--pairs 100] [--messages 200000] [--logins 1000]``. Not a test.
"""

from __future__ import annotations

import argparse
import os
import selectors
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import servers  # noqa: E402
from load.proc import cpu_seconds, machine_ticks, proc_status, settle, steal_percent  # noqa: E402
from reconnect import PASSWORD, Client, drive, free_port, wait_listening  # noqa: E402

from chatcore import protocol  # noqa: E402

TEXT = "x" * 100


class Sender(Client):
    """A logged-in client that keeps ``window`` chats to its peer in flight until ``total`` are acked."""

    def __init__(self, name: str, peer: str, port: int, window: int, total: int) -> None:
        super().__init__(name, port, [{"command": "login", "username": name, "password": PASSWORD}], "login_result")
        self.peer, self.window, self.total = peer, window, total
        self.sent = self.acked = 0
        self.frame = protocol.encode({"command": "chat", "peer": peer, "message": TEXT})
        self.running = False

    def start(self) -> None:
        self.running = True
        burst = min(self.window, self.total)
        self.out += self.frame * burst
        self.sent += burst

    def readable(self) -> None:
        if not self.running:  # logging in
            super().readable()
            return
        for frame in self.frames():
            message = protocol.decode(frame)
            if message.get("type") == "chat_ack":
                self.acked += 1
                if self.sent < self.total:
                    self.out += self.frame
                    self.sent += 1
            elif message.get("type") == "error":
                raise ConnectionError(f"{self.name}: {message}")


class Receiver(Client):
    """A logged-in client that counts the frames it receives without decoding them."""

    def __init__(self, name: str, port: int) -> None:
        super().__init__(name, port, [{"command": "login", "username": name, "password": PASSWORD}], "login_result")
        self.frames_seen = 0

    def count(self) -> None:
        self.frames_seen += sum(1 for _ in self.frames())


def register_all(port: int, names: list[str]) -> None:
    made = [Client(n, port, [{"command": "register", "username": n, "password": PASSWORD}], "register_result")
            for n in names]
    drive(made, 300)
    for c in made:
        c.sock.close()


def relay(senders: list[Sender], receivers: list[Receiver], timeout: float = 600) -> tuple[int, float]:
    """Run the closed loop until every sender's messages are acked and received: (messages, seconds)."""
    selector = selectors.DefaultSelector()
    for s in senders:
        s.start()
        selector.register(s.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, s)
    for r in receivers:
        selector.register(r.sock, selectors.EVENT_READ, r)
    start, goal = time.monotonic(), sum(s.total for s in senders)
    while sum(s.acked for s in senders) < goal or sum(r.frames_seen for r in receivers) < goal:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"pairs did not finish in {timeout:g} s")
        for key, events in selector.select(1.0):
            client = key.data
            if isinstance(client, Receiver):
                client.count()
                continue
            if events & selectors.EVENT_READ:
                client.readable()
            if client.out:
                client.writable()
    selector.close()
    return goal, time.monotonic() - start


def pairs(count: int, messages: int, window: int, pythonpath: str = "", env: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """100 senders -> 100 receivers, closed loop: server CPU per message and messages/s."""
    data = Path(tempfile.mkdtemp(prefix="chatcore-perf-"))
    port = free_port()
    server = servers.chatcore(data, {"SERVER_PORT": str(port), **(env or {})}, fast_hash=True, pythonpath=pythonpath or None)
    try:
        wait_listening(port)
        names = [f"p{i:04d}" for i in range(2 * count)]
        register_all(port, names)
        per_sender = messages // count
        senders = [Sender(names[2 * i], names[2 * i + 1], port, window, per_sender) for i in range(count)]
        receivers = [Receiver(names[2 * i + 1], port) for i in range(count)]
        drive([*senders, *receivers], 120)  # all logged in
        cpu0, ticks0 = cpu_seconds(server.pid), machine_ticks()
        goal, took = relay(senders, receivers)
        cpu = cpu_seconds(server.pid) - cpu0
        return {"pairs": count, "window": window, "messages": goal, "seconds": round(took, 2),
                "msg_per_s": round(goal / took), "server_cpu_s": round(cpu, 2), "steal_pct": steal_percent(ticks0),
                "server_us_per_msg": round(cpu / goal * 1e6, 1)}
    finally:
        server.stop()


def hash_cpu_ms(memory_kib: int, time_cost: int, rounds: int = 50) -> float:
    """CPU milliseconds of one Argon2id verify at these parameters, measured in this process."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
    digest = hasher.hash(PASSWORD)
    start = time.process_time()
    for _ in range(rounds):
        hasher.verify(digest, PASSWORD)
    return (time.process_time() - start) / rounds * 1000


def storm(logins: int, pythonpath: str = "", env: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """RSS before/after ``logins`` password logins at once (default Argon2id), and login CPU
    outside the hash (the same storm at a tiny Argon2 cost, minus that hash's CPU)."""
    out: dict[str, Any] = {"logins": logins}
    quiet = float(os.environ.get("PERF_SETTLE", "3"))  # longer than the hasher's 2 s quiet
    data = Path(tempfile.mkdtemp(prefix="chatcore-storm-"))
    names = [f"s{i:05d}" for i in range(logins)]
    for label, fast in (("tiny_hash", True), ("default_hash", False)):
        port = free_port()
        server = servers.chatcore(data, {"SERVER_PORT": str(port), **(env or {})}, fast_hash=fast,
                                  pythonpath=pythonpath or None)
        try:
            wait_listening(port)
            if label == "tiny_hash":
                register_all(port, names)
            time.sleep(quiet)  # the start's own hash (the dummy) has given its memory back
            rss0 = proc_status(server.pid).get("VmRSS", 0)
            cpu0 = cpu_seconds(server.pid)
            clients = [Client(n, port, [{"command": "hello", "protocol": 2, "presence": "batched"},
                                        {"command": "login", "username": n, "password": PASSWORD}], "login_result")
                       for n in names]
            took = drive(clients, 900)
            settle(server)  # what the logins set off (presence batches) counts too, as in peer.py's storm
            cpu = cpu_seconds(server.pid) - cpu0
            status_in = proc_status(server.pid)
            rss_in = status_in.get("VmRSS", 0)
            for c in clients:
                c.sock.close()
            time.sleep(quiet)  # the sessions end: what stays is the residue
            status_after = proc_status(server.pid)
            rss_after = status_after.get("VmRSS", 0)
            out[label] = {"seconds": round(took, 2), "server_cpu_ms_per_login": round(cpu / logins * 1000, 3),
                          "rss_start_kib": rss0, "rss_logged_in_kib": rss_in, "rss_after_close_kib": rss_after,
                          "residue_kib": rss_after - rss0, "threads_logged_in": status_in.get("Threads", 0),
                          "threads_after_close": status_after.get("Threads", 0)}
        finally:
            server.stop()
    tiny = hash_cpu_ms(1024, 1)
    out["tiny_hash_cpu_ms"] = round(tiny, 3)
    out["default_hash_cpu_ms"] = round(hash_cpu_ms(19456, 2, rounds=10), 2)
    out["login_cpu_ms_outside_hash"] = round(out["tiny_hash"]["server_cpu_ms_per_login"] - tiny, 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="*", default=["pairs", "storm"], choices=["pairs", "storm"])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--window", type=int, default=4, help="messages each sender keeps in flight")
    parser.add_argument("--logins", type=int, default=1000)
    parser.add_argument("--pythonpath", default="", help="run chatcore from these paths (to compare a commit)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a server setting")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    if "pairs" in args.what:
        print({"pairs": pairs(args.pairs, args.messages, args.window, args.pythonpath, env)})
    if "storm" in args.what:
        print({"storm": storm(args.logins, args.pythonpath, env)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
