"""Cluster mode's figures (issue 18): 1, 2 and 3 nodes on this machine sharing one PostgreSQL
and one Redis, against a single node on SQLite.

- ``pairs``: closed-loop relay (as ``perf.py pairs``) with each sender on node i and its peer on
  node i+1, so every message crosses nodes when there are several: msg/s, CPU per message on
  each node, in PostgreSQL and in Redis, and the ratio of the total to single-node SQLite;
- ``latency``: an open loop at a fixed rate (default 1,000 msg/s) from senders on the first
  node to receivers on the last: p50 / p99 from send to receipt, cross-node when N > 1;
- ``failover``: ``--clients`` logged in on the first node on device tokens; it is killed
  (``kill -9``), messages are sent on the second meanwhile, and every client logs in on the
  second node with its token and ``since``: seconds from the kill until the last one has
  caught up, and how many caught up completely.

Everything shares the machine's 2 cores, so more nodes cannot be faster here: read the CPU per
message per component (what ``docs/scaling.md`` builds on), not a speed-up. PostgreSQL and Redis
are the machine's own when they run (a fresh database and key prefix per run), else private.
Run: ``./dev bench cluster [pairs|latency] [--nodes 1,2,3] [--pairs 50] [--messages 50000]``. Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import servers  # noqa: E402
from load.proc import ServerProcess, cpu_seconds  # noqa: E402
from perf import Receiver, Sender, register_all, relay  # noqa: E402
from reconnect import PASSWORD, Client, drive, free_port, wait_listening  # noqa: E402

from chatcore import protocol  # noqa: E402
from chatcore.services import postgres_databases, redis_namespace, redis_server  # noqa: E402

CLUSTER_ENV = {"CHATCORE_PLUGINS": "auth,chat", "CHATCORE_DATABASE_POOL_MAX": "8"}


def service_cpu(names: tuple[str, ...] = ("postgres", "redis-server")) -> dict[str, float]:
    """CPU seconds used so far by every process of each name (PostgreSQL's backends and Redis)."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals = {name: 0.0 for name in names}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        for name in names:
            if comm.startswith(name[:15]):
                totals[name] += (int(fields[11]) + int(fields[12])) / ticks
    return totals


class Services:
    """PostgreSQL and Redis for one run: the machine's, or private ones."""

    def __enter__(self) -> "Services":
        self._stack = contextlib.ExitStack()
        self.databases = self._stack.enter_context(postgres_databases())
        self.redis_url = self._stack.enter_context(redis_server(Path(tempfile.mkdtemp(prefix="chatcore-redis-"))))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    @contextlib.contextmanager
    def cluster(self) -> Iterator[dict[str, str]]:
        """Settings for one fresh cluster: its own database and Redis key prefix."""
        with self.databases.fresh() as url, redis_namespace(self.redis_url) as prefix:
            yield {"CHATCORE_DATABASE_URL": url, "CHATCORE_REDIS_URL": self.redis_url, "CHATCORE_REDIS_PREFIX": prefix}


def start_nodes(count: int, env: dict[str, str]) -> list[tuple[ServerProcess, int]]:
    nodes = []
    for number in range(count):
        port = free_port()
        data = Path(tempfile.mkdtemp(prefix=f"chatcore-node{number}-"))
        node = servers.chatcore(data, {**CLUSTER_ENV, **env, "SERVER_PORT": str(port)}, fast_hash=True)
        wait_listening(port)
        nodes.append((node, port))
    return nodes


def pairs_on(nodes: list[tuple[ServerProcess, int]], count: int, messages: int, window: int) -> dict[str, Any]:
    ports = [port for _, port in nodes]
    names = [f"p{i:04d}" for i in range(2 * count)]
    register_all(ports[0], names)
    per_sender = messages // count
    senders = [Sender(names[2 * i], names[2 * i + 1], ports[i % len(ports)], window, per_sender) for i in range(count)]
    receivers = [Receiver(names[2 * i + 1], ports[(i + 1) % len(ports)]) for i in range(count)]
    drive([*senders, *receivers], 120)
    cpu0 = [cpu_seconds(node.pid) for node, _ in nodes]
    svc0 = service_cpu()
    goal, took = relay(senders, receivers)
    node_cpu = [cpu_seconds(node.pid) - c for (node, _), c in zip(nodes, cpu0)]
    svc = {name: used - svc0[name] for name, used in service_cpu().items()}
    return {"nodes": len(nodes), "messages": goal, "seconds": round(took, 2), "msg_per_s": round(goal / took),
            "node_us_per_msg": [round(c / goal * 1e6, 1) for c in node_cpu],
            "postgres_us_per_msg": round(svc["postgres"] / goal * 1e6, 1),
            "redis_us_per_msg": round(svc["redis-server"] / goal * 1e6, 1),
            "total_us_per_msg": round((sum(node_cpu) + sum(svc.values())) / goal * 1e6, 1)}


class Timed(Client):
    """A receiver that records send-to-receipt latency from the send time in each message."""

    def __init__(self, name: str, port: int) -> None:
        super().__init__(name, port, [{"command": "login", "username": name, "password": PASSWORD}], "login_result")
        self.latencies: list[float] = []
        self.running = False

    def readable(self) -> None:
        if not self.running:
            super().readable()
            return
        now = time.perf_counter()
        for frame in self.frames():
            message = protocol.decode(frame)
            if message.get("type") == "private_message" and str(message.get("message", "")).startswith("t="):
                self.latencies.append(now - float(message["message"][2:]))


def latency_on(nodes: list[tuple[ServerProcess, int]], rate: int, seconds: float, count: int = 50) -> dict[str, Any]:
    ports = [port for _, port in nodes]
    names = [f"l{i:04d}" for i in range(2 * count)]
    register_all(ports[0], names)
    senders = [Client(names[2 * i], ports[0], [{"command": "login", "username": names[2 * i], "password": PASSWORD}],
                      "login_result") for i in range(count)]
    receivers = [Timed(names[2 * i + 1], ports[-1]) for i in range(count)]
    drive([*senders, *receivers], 120)
    selector = selectors.DefaultSelector()
    for r in receivers:
        r.running = True
        selector.register(r.sock, selectors.EVENT_READ, r)
    for s in senders:
        selector.register(s.sock, selectors.EVENT_READ, s)
    interval, start, sent = 1.0 / rate, time.perf_counter(), 0
    total = int(rate * seconds)
    while sent < total or sum(len(r.latencies) for r in receivers) < total:
        now = time.perf_counter()
        due = min(total, int((now - start) / interval) + 1)
        while sent < due:
            sender = senders[sent % count]
            sender.sock.send(protocol.encode({"command": "chat", "peer": names[2 * (sent % count) + 1],
                                              "message": f"t={time.perf_counter():.6f}"}))
            sent += 1
        if now - start > seconds + 60:
            raise TimeoutError("latency run did not finish")
        for key, _ in selector.select(min(interval, 0.01)):
            client = key.data
            if isinstance(client, Timed):
                client.readable()
            else:
                list(client.frames())  # acks: read and dropped
    values = sorted(v for r in receivers for v in r.latencies)
    return {"nodes": len(nodes), "rate": rate, "messages": len(values),
            "p50_ms": round(statistics.median(values) * 1000, 3),
            "p99_ms": round(values[int(len(values) * 0.99) - 1] * 1000, 3)}


def failover_on(nodes: list[tuple[ServerProcess, int]], clients: int, missed: int) -> dict[str, Any]:
    if len(nodes) < 2:
        raise SystemExit("failover needs at least 2 nodes")
    (first, port), (_, other) = nodes[0], nodes[1]
    names = [f"f{i:05d}" for i in range(clients)]
    online = [Client(n, port, [{"command": "register", "username": n, "password": PASSWORD},
                               {"command": "login", "username": n, "password": PASSWORD, "device": "bench"}],
                     "login_result") for n in names]
    drive(online, 300)
    tokens = {c.name: next(r["token"] for r in c.replies if r["type"] == "login_result") for c in online}
    sender = Client("f-sender", other, [{"command": "register", "username": "f-sender", "password": PASSWORD},
                                        {"command": "login", "username": "f-sender", "password": PASSWORD},
                                        {"command": "chat", "peer": "", "message": "before"}], "chat_ack")
    drive([sender], 60)
    since = next(r["id"] for r in sender.replies if r["type"] == "chat_ack")
    killed = time.monotonic()
    first.kill()
    sender.out += b"".join(protocol.encode({"command": "chat", "peer": "", "message": f"missed {n}"})
                           for n in range(missed))
    sender.until, sender.done = "never", None
    while sender.out:
        sender.writable()
    storm = [Client(n, other, [{"command": "hello", "protocol": 2, "presence": "batched"},
                               {"command": "login", "username": n, "token": tokens[n], "since": since}],
                    "caught_up") for n in names]
    drive(storm, 600)
    last = max(c.done for c in storm if c.done is not None)
    complete = sum(1 for c in storm for r in c.replies if r["type"] == "caught_up" and r.get("complete"))
    for c in [*online, *storm, sender]:
        c.sock.close()
    return {"nodes": len(nodes), "clients": clients, "missed": missed,
            "seconds_from_kill_to_all_caught_up": round(last - killed, 3), "caught_up_complete": complete}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", choices=("pairs", "latency", "failover"), default="pairs")
    parser.add_argument("--nodes", default="1,2,3", help="node counts to run, comma-separated (0: single-node SQLite)")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--messages", type=int, default=50000)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=500, help="failover: clients on the node killed")
    parser.add_argument("--missed", type=int, default=20, help="failover: messages sent while they move")
    args = parser.parse_args()
    results = []
    with Services() as services:
        for count in [int(n) for n in args.nodes.split(",")]:
            with contextlib.ExitStack() as stack:
                nodes = start_nodes(max(count, 1), stack.enter_context(services.cluster()) if count else {})
                for node, _ in nodes:
                    stack.callback(node.stop)
                if args.scenario == "pairs":
                    result = pairs_on(nodes, args.pairs, args.messages, args.window)
                elif args.scenario == "latency":
                    result = latency_on(nodes, args.rate, args.seconds)
                else:
                    result = failover_on(nodes, args.clients, args.missed)
                result["storage"] = "sqlite" if count == 0 else "postgresql+redis"
                print(json.dumps(result), flush=True)
                results.append(result)
    sqlite = next((r for r in results if r["storage"] == "sqlite" and "total_us_per_msg" in r), None)
    if sqlite:
        for r in results:
            if r is not sqlite:
                print(f"{r['nodes']} node(s): {r['total_us_per_msg'] / sqlite['total_us_per_msg']:.2f}x "
                      "the CPU per message of single-node SQLite")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
