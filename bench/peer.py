"""A peer for chatcore's figures: the XMPP server Prosody (Debian's 0.12) measured like ``bench/perf.py``.

- ``pairs``: Prosody's CPU per relayed 1:1 message and msg/s, ``--pairs`` senders -> receivers in a
  closed loop; Prosody has no ack, so the loop closes on delivery: each sender keeps ``--window``
  messages in flight and sends the next one whenever its receiver gets one;
- ``idle``: Prosody's RSS before and with ``--connections`` clients logged in (KiB per connection);
- ``storm``: ``idle`` for ``--logins`` clients (1,000, like ``perf.py storm``), for its CPU per
  login (SASL PLAIN on plain-text accounts: no password hash, so all of it is the login's cost
  outside a hash; its rosters are empty, so it announces nobody, where chatcore tells everyone);
- ``latency``: send -> receive p50/p99 at a fixed offered rate between random pairs (TCP_NODELAY
  clients, like bench/load's).

Each run starts a private Prosody (``prosody -F --config <temp>/prosody.cfg.lua``): one VirtualHost
"localhost", c2s on a free 127.0.0.1 port without TLS, SASL PLAIN on ``internal_plain`` accounts
written straight into its data directory, epoll with a listen backlog of 4096 (at its default 128
a 5,000-client login storm stalls on SYN retries), offline storage and s2s disabled (it stores and
acks nothing). Its own defaults otherwise; ``--no-nagle`` and ``--gc generational`` change two that
matter. mod_posix refuses to run as root, so as root Prosody runs as the ``prosody`` user
(``setpriv`` execs it: same pid). The clients are non-blocking sockets in one selector loop here.
Run: ``.venv/bin/python bench/peer.py [pairs|idle|storm|latency] [--pairs 100] [--messages 100000]
[--window 4] [--connections 5000] [--logins 1000] [--rate 1000] [--clients 1000]``. Not a test.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import re
import resource
import selectors
import shutil
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load.proc import ServerProcess, machine_ticks, proc_status, settle, steal_percent  # noqa: E402
from reconnect import PASSWORD, Client, drive, free_port, wait_listening  # noqa: E402

HOST = "localhost"
HEADER = (f"<?xml version='1.0'?><stream:stream to='{HOST}' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").encode()
BIND = b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>"
MESSAGE = re.compile(rb"<message")
SEQ = re.compile(rb"<body>(\d{10})x")
Tuning = dict[str, Any]  # Prosody settings that differ from its defaults: {"nagle": bool, "gc": mode}
DEFAULTS: Tuning = {"nagle": True, "gc": "default"}
CONFIG = """-- written by bench/peer.py
daemonize = false
data_path = "{data}"
certificates = "{certs}"
network_backend = "epoll"
network_settings = {{ tcp_backlog = 4096; nagle = {nagle} }}
{gc}c2s_ports = {{ {port} }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
log = {{ warn = "{log}" }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping" }}
modules_disabled = {{ "offline"; "s2s"; "s2s_auth_certs" }}
VirtualHost "{host}"
"""


def auth(user: str) -> bytes:
    """The SASL PLAIN <auth/> element for ``user``."""
    token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
    return f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>".encode()


def chat(to: str, body: str) -> bytes:
    """A type='chat' message stanza to a full JID."""
    return f"<message to='{to}@{HOST}/r' type='chat'><body>{body}</body></message>".encode()


class Peer(Client):
    """One XMPP c2s connection: logs in (SASL PLAIN, restart, bind, presence), then counts messages."""

    def __init__(self, name: str, port: int, pattern: re.Pattern[bytes] = MESSAGE, nodelay: bool = False) -> None:
        super().__init__(name, port, [], "")  # the socket and the out buffer; the login is ours
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(nodelay))
        self.out, self.stage, self.pattern = HEADER, 0, pattern
        self.steps = [(b"</stream:features>", auth(name)), (b"<success", HEADER),
                      (b"</stream:features>", BIND), (b"</jid>", b"<presence/>")]
        self.messages, self.tail = 0, b""  # tail: an unfinished match between reads
        self.seqs: list[int] = []  # latency: the body sequence numbers received since the loop took them
        self.feeds: Peer | None = None  # in pairs: the sender that sends one more per message received
        self.frame, self.total, self.sent = b"", 0, 0

    def readable(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError(f"{self.name}: closed by Prosody (login step {self.stage} of 4)")
        if b"error" in data or b"<failure" in data:
            raise ConnectionError(f"{self.name}: {data[-400:]!r}")
        if self.done is None:
            self.login(data)
        else:
            self.received(data)

    def login(self, data: bytes) -> None:
        """Advance the login by the next step whose marker has arrived."""
        self.inbuf += data
        marker, reply = self.steps[self.stage]
        if marker in self.inbuf:
            self.inbuf, self.stage = b"", self.stage + 1
            self.out += reply
            self.writable()  # a few hundred bytes on an idle socket: drive() no longer waits to write
            if self.out:
                raise ConnectionError(f"{self.name}: could not send login step {self.stage}")
            if self.stage == len(self.steps):
                self.done = time.monotonic()

    def received(self, data: bytes) -> None:
        """Count messages (and collect body sequence numbers) without parsing the XML."""
        joined = self.tail + data
        found = list(self.pattern.finditer(joined))
        self.messages += len(found)
        if self.pattern.groups:
            self.seqs.extend(int(m.group(1)) for m in found)
        self.tail = joined[max(found[-1].end() if found else 0, len(joined) - 24):]

    def pump(self, events: int, selector: selectors.BaseSelector) -> bool:
        """Write what is queued and read what came, as the selector's ``events`` allow; True if it read."""
        if events & selectors.EVENT_WRITE and self.out:
            self.writable()
            if not self.out:
                selector.modify(self.sock, selectors.EVENT_READ, self)
        if events & selectors.EVENT_READ:
            self.readable()
        return bool(events & selectors.EVENT_READ)

    def top_up(self, delivered: int, selector: selectors.BaseSelector) -> None:
        """Send one more message (up to ``total``) for each of ours that was delivered."""
        more = min(delivered, self.total - self.sent)
        if more > 0:
            self.sent += more
            self.send(self.frame * more, selector)

    def send(self, data: bytes, selector: selectors.BaseSelector) -> None:
        """Queue ``data``, write what the socket takes now and wait for writability for the rest."""
        pending = bool(self.out)
        self.out += data
        if not pending:
            try:
                self.writable()
            except BlockingIOError:
                pass
            if self.out:
                selector.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)


def write_accounts(data: Path, users: list[str]) -> None:
    """internal_plain accounts: <data>/localhost/accounts/<user>.dat, as ``prosodyctl register`` writes them."""
    accounts = data / HOST / "accounts"
    accounts.mkdir(parents=True)
    for user in users:
        (accounts / f"{user}.dat").write_text(f'return {{\n\t["password"] = "{PASSWORD}";\n}};\n')


def raise_nofile(need: int) -> None:
    """Raise this process's open-files limit (Prosody inherits it) to at least ``need``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))  # ValueError above the hard limit


@contextmanager
def prosody(users: list[str], tuning: Tuning) -> Iterator[tuple[ServerProcess, int]]:
    """A private Prosody with these accounts: (its process, its c2s port); stopped and removed after."""
    if shutil.which("prosody") is None:
        raise SystemExit("bench/peer.py needs Prosody: apt-get install -y prosody (Debian's 0.12)")
    tmp = Path(tempfile.mkdtemp(prefix="chatcore-prosody-"))
    log, server = tmp / "prosody.log", None
    try:
        port, data = free_port(), tmp / "data"
        (tmp / "certs").mkdir()
        write_accounts(data, users)
        config = tmp / "prosody.cfg.lua"
        gc = f'gc = {{ mode = "{tuning["gc"]}" }}\n' if tuning["gc"] != "default" else ""
        config.write_text(CONFIG.format(data=data, certs=tmp / "certs", port=port, log=log, host=HOST,
                                        nagle=str(tuning["nagle"]).lower(), gc=gc))
        argv = ["prosody", "-F", "--config", str(config)]
        if os.geteuid() == 0:
            shutil.chown(tmp, "prosody", "prosody")
            for path in tmp.rglob("*"):
                shutil.chown(path, "prosody", "prosody")
            argv = ["setpriv", "--reuid", "prosody", "--regid", "prosody", "--clear-groups", *argv]
        server = ServerProcess(argv, dict(os.environ), tmp, "prosody")
        server.start()  # its warnings and errors are printed below, also when it does not start
        wait_listening(port)
        yield server, port
    finally:
        if server is not None:
            server.stop()
        lines = log.read_text().splitlines() if log.exists() else []
        if warnings := [line for line in lines if "Received SIGTERM" not in line]:
            print("prosody.log:", *warnings[-30:], sep="\n", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


def login_all(peers: list[Peer], timeout: float = 300) -> float:
    """Log every peer in at once; seconds it took, or an error naming where they got stuck."""
    try:
        return drive(list[Client](peers), timeout)
    except TimeoutError as e:
        stuck = sorted({p.stage for p in peers if p.done is None})
        raise TimeoutError(f"XMPP logins: {e} (stuck at login steps {stuck})") from e


def relay(senders: list[Peer], receivers: list[Peer], window: int, timeout: float = 600) -> tuple[int, float]:
    """Run the closed loop until every receiver got its sender's messages: (messages, seconds)."""
    selector = selectors.DefaultSelector()
    for s, r in zip(senders, receivers):
        selector.register(s.sock, selectors.EVENT_READ, s)
        selector.register(r.sock, selectors.EVENT_READ, r)
    start, goal = time.monotonic(), sum(s.total for s in senders)
    for s in senders:
        s.top_up(window, selector)
    received = 0
    while received < goal:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"pairs did not finish in {timeout:g} s ({received} of {goal} received)")
        for key, events in selector.select(1.0):
            peer: Peer = key.data
            before = peer.messages
            if peer.pump(events, selector):
                received += peer.messages - before
                if peer.feeds and peer.messages > before:
                    peer.feeds.top_up(peer.messages - before, selector)
    selector.close()
    return goal, time.monotonic() - start


def pairs(count: int, messages: int, window: int, tuning: Tuning = DEFAULTS) -> dict[str, Any]:
    """``count`` senders -> ``count`` receivers, closed on delivery: Prosody CPU per message and msg/s."""
    raise_nofile(4 * count + 100)
    with prosody([f"{k}{i}" for i in range(count) for k in "sr"], tuning) as (server, port):
        senders = [Peer(f"s{i}", port) for i in range(count)]
        receivers = [Peer(f"r{i}", port) for i in range(count)]
        login_all([*senders, *receivers])
        per_sender = messages // count
        for i, (s, r) in enumerate(zip(senders, receivers)):
            s.frame, s.total, r.feeds = chat(f"r{i}", "x" * 100), per_sender, s
        settle(server)
        cpu0, ticks0 = server.cpu(), machine_ticks()
        goal, took = relay(senders, receivers, window)
        cpu = server.cpu() - cpu0
        return {"pairs": count, "window": window, "prosody": tuning, "messages": goal, "seconds": round(took, 2),
                "msg_per_s": round(goal / took), "server_cpu_s": round(cpu, 2), "steal_pct": steal_percent(ticks0),
                "server_us_per_msg": round(cpu / goal * 1e6, 1)}


def idle(connections: int, tuning: Tuning = DEFAULTS) -> dict[str, Any]:
    """Prosody's RSS before and with ``connections`` idle clients logged in (and available), all
    at once, and its CPU per login for that storm until it is idle again."""
    raise_nofile(2 * connections + 200)
    with prosody([f"c{i}" for i in range(connections)], tuning) as (server, port):
        settle(server)
        rss0, cpu0 = server.rss_kib(), server.cpu()
        peers = [Peer(f"c{i}", port) for i in range(connections)]
        took = login_all(peers, 600)
        settle(server)
        cpu = server.cpu() - cpu0
        status = proc_status(server.pid)
        rss = status.get("VmRSS", 0)
        for p in peers:
            p.sock.close()
        return {"connections": connections, "prosody": tuning, "login_seconds": round(took, 2),
                "rss_start_kib": rss0, "rss_logged_in_kib": rss, "hwm_kib": status.get("VmHWM", 0),
                "kib_per_conn": round(rss / connections, 1),
                "kib_per_conn_marginal": round((rss - rss0) / connections, 1),
                "server_cpu_ms_per_login": round(cpu / connections * 1000, 3)}


def latency(rate: float, clients: int, seconds: float = 10.0, tuning: Tuning = DEFAULTS,
            drain: float = 5.0) -> dict[str, Any]:
    """Messages between random pairs of logged-in clients at a fixed offered rate: latency percentiles."""
    raise_nofile(2 * clients + 200)
    with prosody([f"c{i}" for i in range(clients)], tuning) as (server, port):
        peers = [Peer(f"c{i}", port, SEQ, nodelay=True) for i in range(clients)]  # like bench/load's clients
        login_all(peers)
        settle(server)
        selector = selectors.DefaultSelector()
        for p in peers:
            selector.register(p.sock, selectors.EVENT_READ, p)
        rng, sent_at, took = random.Random(19), list[float](), list[float]()
        cpu0, ticks0 = server.cpu(), machine_ticks()
        start = time.monotonic()
        while True:
            now = time.monotonic()
            if now - start < seconds:
                while len(sent_at) < (now - start) * rate:
                    a, b = rng.sample(range(clients), 2)
                    sent_at.append(time.monotonic())
                    peers[a].send(chat(f"c{b}", f"{len(sent_at) - 1:010d}" + "x" * 90), selector)
            elif len(took) >= len(sent_at) or now - start > seconds + drain:
                break
            wait = max(0.0, start + len(sent_at) / rate - time.monotonic())
            for key, events in selector.select(min(wait, 0.05)):
                peer = key.data
                if peer.pump(events, selector):
                    arrived = time.monotonic()
                    took.extend(arrived - sent_at[seq] for seq in peer.seqs)
                    peer.seqs.clear()
        cpu = server.cpu() - cpu0
        selector.close()
        received, took = len(took), sorted(took) or [float("nan")]
        p50, p99, top = (round(took[min(len(took) - 1, int(q * len(took)))] * 1000, 2) for q in (0.5, 0.99, 1))
        return {"clients": clients, "rate": rate, "seconds": seconds, "prosody": tuning, "sent": len(sent_at),
                "received": received, "p50_ms": p50, "p99_ms": p99, "max_ms": top, "server_cpu_s": round(cpu, 2),
                "steal_pct": steal_percent(ticks0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="*", default=["pairs"], choices=["pairs", "idle", "storm", "latency"])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=4, help="messages each sender keeps in flight")
    parser.add_argument("--connections", type=int, default=5000, help="idle: clients logged in")
    parser.add_argument("--logins", type=int, default=1000, help="storm: clients logging in at once")
    parser.add_argument("--rate", type=float, default=1000, help="latency: offered messages per second")
    parser.add_argument("--clients", type=int, default=1000, help="latency: clients logged in")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency: how long to offer the rate")
    parser.add_argument("--no-nagle", dest="nagle", action="store_false",
                        help="Prosody's network_settings nagle = false (its default keeps Nagle on)")
    parser.add_argument("--gc", default="default", choices=["default", "incremental", "generational"],
                        help="Prosody's Lua GC mode (its default is incremental)")
    args = parser.parse_args()
    tuning: Tuning = {"nagle": args.nagle, "gc": args.gc}
    if "pairs" in args.what:
        print({"pairs": pairs(args.pairs, args.messages, args.window, tuning)})
    if "idle" in args.what:
        print({"idle": idle(args.connections, tuning)})
    if "storm" in args.what:
        print({"storm": idle(args.logins, tuning)})
    if "latency" in args.what:
        print({"latency": latency(args.rate, args.clients, args.seconds, tuning)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
