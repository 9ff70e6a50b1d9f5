"""A load-generator process: thousands of non-blocking client connections on one selector,
driven by commands from the harness over a pipe. Every command is bounded in time.

Frames are parsed by their length header only; a frame is decoded (base64, XOR, JSON) when
its connection is in ``decode`` mode (logins, senders, latency runs) or when it is one of the
sampled 1-in-K frames, so counting deliveries costs almost nothing.
"""

from __future__ import annotations

import os
import resource
import selectors
import socket
import time
from multiprocessing.connection import Connection
from typing import Any, Optional

from chatcore import protocol
from load import files

RECV_SIZE = 1 << 18
PASSWORD = "bench-password-1"
NS = 1_000_000_000


def raise_nofile() -> int:
    """Lift the soft open-file limit to the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Conn:
    """One client connection and its buffers."""

    __slots__ = ("sock", "fd", "name", "rbuf", "wbuf", "decode", "state", "started", "outstanding",
                 "reading", "closed", "peer", "sent", "events", "pad", "tally", "awaiting")

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.name = name
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.decode = True
        self.state = "connecting"
        self.started = time.monotonic()
        self.outstanding = 0
        self.reading = True
        self.closed = False
        self.peer = ""
        self.sent = 0
        self.events = 0
        self.pad = ""
        self.tally = True  # count what it receives as deliveries
        self.awaiting: tuple[str, ...] = ()  # reply types op_request waits for


class Phase:
    """Counters of one traffic run."""

    def __init__(self) -> None:
        self.sent = 0
        self.acked = 0
        self.delivered = 0  # frames received by counting connections + decoded deliveries
        self.errors = 0
        self.error_samples: list[str] = []
        self.latencies: list[int] = []  # microseconds, delivery - send
        self.other = 0


class Worker:
    """The connections of one process and the commands that drive them."""

    def __init__(self, pipe: Connection, wid: int) -> None:
        self.pipe = pipe
        self.wid = wid
        self.sel = selectors.DefaultSelector()
        self.sel.register(pipe.fileno(), selectors.EVENT_READ, None)
        self.conns: dict[str, Conn] = {}
        self.dirty: set[Conn] = set()
        self.key, self.iv = os.urandom(protocol.KEY_SIZE), os.urandom(protocol.IV_SIZE)
        self.sample = 1  # decode 1 in N frames of counting connections (0: never)
        self.frames = 0
        self.bytes = 0
        self.phase = Phase()
        self.measuring = (0, 0)  # monotonic ns window in which deliveries and latencies count
        self.closed_loop = False
        self.window_end = 0.0
        self.disconnects = 0
        self.login_waits: list[float] = []
        self.failures: list[str] = []
        self.last_rx = time.monotonic()
        self.nofile = raise_nofile()
        self.register = True
        self.presence = ""  # if set, say hello with this presence mode before logging in
        self.decode_after_login = False
        self.pad = ""
        self.probes: list[tuple[str, Any, int]] = []

    # -- plumbing ---------------------------------------------------------------------------

    def serve(self) -> None:
        """Answer commands until told to exit; sockets are serviced in between."""
        while True:
            self.poll(0.05)
            if self.pipe.poll():
                cmd = self.pipe.recv()
                if cmd["op"] == "exit":
                    self.op_close_all()
                    self.pipe.send({"ok": True})
                    return
                try:
                    result = getattr(self, "op_" + cmd["op"])(**cmd.get("args", {}))
                except Exception as exc:  # report, never die silently
                    import traceback
                    result = {"exception": f"{exc!r}", "traceback": traceback.format_exc()}
                self.pipe.send(result)

    def frame(self, obj: dict[str, Any]) -> bytes:
        """Encode a request (a per-process KEY/IV: the server accepts any, and it saves urandom calls)."""
        return protocol.encode_payload(protocol.dumps(obj), self.key, self.iv)

    def queue(self, conn: Conn, obj: dict[str, Any]) -> None:
        conn.wbuf += self.frame(obj)
        self.dirty.add(conn)

    def poll(self, timeout: float) -> None:
        """Flush what was queued, service ready sockets once, then flush what that queued
        (flushing first: a message stamped with its send time must not wait out the select)."""
        self.flush_dirty()
        for key, events in self.sel.select(timeout):
            conn: Optional[Conn] = key.data
            if conn is None:
                continue
            if events & selectors.EVENT_WRITE:
                if conn.state == "connecting":
                    self.connected(conn)
                else:
                    self.dirty.add(conn)
            if events & selectors.EVENT_READ and not conn.closed:
                self.readable(conn)
        self.flush_dirty()

    def flush_dirty(self) -> None:
        if self.dirty:
            for conn in list(self.dirty):
                self.flush(conn)
            self.dirty.clear()

    def interest(self, conn: Conn) -> None:
        """Register the events this connection currently needs."""
        mask = (selectors.EVENT_READ if conn.reading else 0) | \
               (selectors.EVENT_WRITE if conn.wbuf or conn.state == "connecting" else 0)
        if conn.closed:
            mask = 0
        if mask == conn.events:
            return
        if conn.events == 0:
            self.sel.register(conn.fd, mask, conn)
        elif mask == 0:
            self.sel.unregister(conn.fd)
        else:
            self.sel.modify(conn.fd, mask, conn)
        conn.events = mask

    def flush(self, conn: Conn) -> None:
        if conn.closed or conn.state == "connecting":
            return
        if conn.wbuf:
            try:
                sent = conn.sock.send(conn.wbuf)
                del conn.wbuf[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.lost(conn)
                return
        self.interest(conn)

    def lost(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.disconnects += 1
        self.interest(conn)
        conn.sock.close()

    def readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.lost(conn)
            return
        if not data:
            self.lost(conn)
            return
        self.last_rx = time.monotonic()
        self.bytes += len(data)
        buf = conn.rbuf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            total = 2 + (buf[pos] << 8 | buf[pos + 1])
            if end - pos < total:
                break
            self.frames += 1
            if conn.decode or (self.sample and self.frames % self.sample == 0):
                msg = protocol.decode_body(bytes(buf[pos + 2:pos + total]))
                self.message(conn, msg, counted=not conn.decode)
            elif self.measuring[0]:
                self.phase.delivered += 1
            pos += total
        if pos:
            del buf[:pos]

    # -- what arrives -------------------------------------------------------------------------

    def message(self, conn: Conn, msg: dict[str, Any], counted: bool) -> None:
        """React to one decoded frame (``counted``: a sampled frame of a counting connection)."""
        kind = msg.get("type")
        now = time.monotonic_ns()
        if conn.awaiting and kind in conn.awaiting:
            conn.awaiting = ()
            if kind == "error":
                self.failures.append(f"{conn.name}: {msg.get('code')}: {msg.get('reason')}")
            return
        if kind in ("private_message", "broadcast_message", "room_message"):
            if self.measuring[0] and conn.tally:
                self.phase.delivered += 1
            text = msg.get("message", "")
            if text.startswith("T") and self.measuring[0]:
                sent = int(text[1:text.index(" ")])
                if self.measuring[0] <= sent <= self.measuring[1]:
                    self.phase.latencies.append((now - sent) // 1000)
            if text.startswith("P"):  # a probe
                self.probes.append((conn.name, msg.get("peer"), (now - int(text[1:text.index(" ")])) // 1000))
        elif kind in ("chat_ack", "room_ack"):
            conn.outstanding -= 1
            if self.measuring[0]:
                self.phase.acked += 1
            if self.closed_loop and time.monotonic() < self.window_end:
                self.send_chat(conn)
        elif kind in ("login_result", "register_result"):
            self.auth_reply(conn, msg)
        elif kind == "error":
            self.phase.errors += 1
            if msg.get("command") in ("chat", "room_message"):
                conn.outstanding -= 1
            if len(self.phase.error_samples) < 5:
                self.phase.error_samples.append(f"{msg.get('code')}: {msg.get('reason')}")
        else:
            if counted and self.measuring[0]:
                self.phase.other += 1

    # -- connecting and logging in ------------------------------------------------------------

    def start_connect(self, name: str, port: int) -> Conn:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Conn(sock, name)
        self.conns[name] = conn
        err = sock.connect_ex(("127.0.0.1", port))
        if err not in (0, 115):  # EINPROGRESS
            conn.state = "failed"
            self.failures.append(f"{name}: connect error {err}")
            conn.closed = True
            sock.close()
            return conn
        self.interest(conn)
        return conn

    def connected(self, conn: Conn) -> None:
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            conn.state = "failed"
            self.failures.append(f"{conn.name}: connect error {os.strerror(err)}")
            self.lost(conn)
            return
        conn.state = "register" if self.register else "login"
        if self.presence:
            self.queue(conn, {"command": "hello", "client": "bench", "protocol": 2, "presence": self.presence})
        self.queue(conn, {"command": conn.state, "username": conn.name, "password": PASSWORD})

    def auth_reply(self, conn: Conn, msg: dict[str, Any]) -> None:
        ok = msg.get("response") == "ok"
        if msg["type"] == "register_result" and (ok or "exists" in str(msg.get("reason", ""))):
            conn.state = "login"
            self.queue(conn, {"command": "login", "username": conn.name, "password": PASSWORD})
        elif msg["type"] == "login_result" and ok:
            conn.state = "ready"
            conn.decode = self.decode_after_login
            self.login_waits.append(time.monotonic() - conn.started)
        else:
            conn.state = "failed"
            if len(self.failures) < 20:
                self.failures.append(f"{conn.name}: {msg.get('type')} {msg.get('reason')}")

    def op_connect(self, port: int, names: list[str], concurrency: int = 200, timeout: float = 120.0,
                   register: bool = True, decode_after: bool = False, presence: str = "") -> dict[str, Any]:
        """Connect and log in every name (at most ``concurrency`` logins in flight); with
        ``presence``, each first says hello asking for that presence mode."""
        self.register, self.decode_after_login, self.presence = register, decode_after, presence
        self.login_waits, self.failures = [], []
        frames0 = self.frames
        start = time.monotonic()
        todo = list(reversed(names))
        pending: list[Conn] = []
        while (todo or pending) and time.monotonic() - start < timeout:
            pending = [c for c in pending if c.state not in ("ready", "failed") and not c.closed]
            while todo and len(pending) < concurrency:
                conn = self.start_connect(todo.pop(), port)
                conn.started = time.monotonic()
                pending.append(conn)
            self.poll(0.01)
        elapsed = time.monotonic() - start
        ready = sum(1 for n in names if self.conns.get(n) and self.conns[n].state == "ready")
        waits = sorted(self.login_waits)
        return {"ready": ready, "asked": len(names), "elapsed": elapsed, "failures": self.failures[:10],
                "timed_out": bool(todo or pending), "login_wait_p50": waits[len(waits) // 2] if waits else None,
                "login_wait_max": waits[-1] if waits else None, "nofile": self.nofile,
                "frames": self.frames - frames0,
                "ready_names": [n for n in names if self.conns.get(n) and self.conns[n].state == "ready"]}

    # -- traffic -------------------------------------------------------------------------------

    def send_chat(self, conn: Conn, marker: str = "T") -> None:
        """Send one chat message to ``conn.peer`` whose text starts with the send time."""
        text = f"{marker}{time.monotonic_ns()} " + (conn.pad or self.pad)
        if conn.peer.startswith("#"):  # a room (the rooms plugin): bench/rooms.py
            conn.wbuf += self.frame({"command": "room_message", "room": conn.peer[1:], "message": text})
        else:
            conn.wbuf += self.frame({"command": "chat", "peer": conn.peer, "message": text})
        self.dirty.add(conn)
        conn.outstanding += 1
        conn.sent += 1
        self.phase.sent += 1

    def op_mode(self, decode: Optional[list[str]] = None, count: Optional[list[str]] = None,
                sample: Optional[int] = None, ignore: Optional[list[str]] = None) -> dict[str, Any]:
        """Set which connections decode every frame, how often counting ones are sampled, and
        which ones (decoding) are left out of the delivery count."""
        for name in ignore or ():
            self.conns[name].decode = True
            self.conns[name].tally = False
        for name in decode or ():
            self.conns[name].decode = True
        for name in count or ():
            self.conns[name].decode = False
        if sample is not None:
            self.sample = sample
        return {"ok": True}

    def op_run(self, start: float, warmup: float, measure: float, drain: float,
               senders: list[tuple[str, str, int]], window: int = 0, rate: float = 0.0,
               text_size: int = 64) -> dict[str, Any]:
        """Traffic from ``senders`` (name, peer, text size or 0 for ``text_size``): closed loop with ``window`` messages in flight
        each, or open loop at ``rate`` msg/s over this worker's senders; counts in the window."""
        self.phase = Phase()
        self.pad = "x" * max(0, text_size - 21)
        conns = [self.conns[name] for name, *_ in senders if self.conns.get(name) and not self.conns[name].closed]
        for (name, peer, size) in senders:
            if name in self.conns:
                self.conns[name].peer = peer
                self.conns[name].pad = "x" * max(0, size - 21) if size else ""
                self.conns[name].decode = True
                self.conns[name].outstanding = 0
        t_measure = start + warmup
        t_stop = t_measure + measure
        t_end = t_stop + drain
        self.measuring = (0, 0)
        self.closed_loop = window > 0
        self.window_end = t_stop
        while time.monotonic() < start:
            self.poll(max(0.0, min(0.01, start - time.monotonic())))
        if window > 0:
            for conn in conns:
                for _ in range(window):
                    self.send_chat(conn)
        sent_open = 0
        counted_at_measure = counted_at_stop = None
        rr = 0
        while True:
            now = time.monotonic()
            if now >= t_end:
                break
            if counted_at_measure is None and now >= t_measure:
                self.measuring = (int(t_measure * NS), int(t_stop * NS))
                counted_at_measure = (self.phase.sent, self.phase.acked)
            if counted_at_stop is None and now >= t_stop:
                counted_at_stop = (self.phase.sent, self.phase.acked, self.phase.delivered)
                self.closed_loop = False
            if rate > 0 and now < t_stop and conns:
                due = int((now - start) * rate) - sent_open
                for _ in range(min(due, 2000)):
                    self.send_chat(conns[rr % len(conns)])
                    rr += 1
                    sent_open += 1
            self.poll(0.0005 if rate > 0 else 0.005)
        if counted_at_measure is None:
            counted_at_measure = (0, 0)
        if counted_at_stop is None:
            counted_at_stop = (self.phase.sent, self.phase.acked, self.phase.delivered)
        in_flight = sum(c.outstanding for c in conns)
        self.measuring = (0, 0)
        self.closed_loop = False
        return {"sent": counted_at_stop[0] - counted_at_measure[0], "acked": self.phase.acked,
                "acked_in_window": counted_at_stop[1] - counted_at_measure[1] if window else None,
                "delivered_in_window": counted_at_stop[2], "delivered_total": self.phase.delivered,
                "errors": self.phase.errors, "error_samples": self.phase.error_samples,
                "latencies": self.phase.latencies, "in_flight": in_flight, "other": self.phase.other,
                "sent_total": self.phase.sent, "disconnects": self.disconnects}

    def op_request(self, requests: list[tuple[str, dict[str, Any]]], reply: list[str],
                   timeout: float = 60.0) -> dict[str, Any]:
        """Send each (name, payload) from that connection and wait for a reply of a type in
        ``reply`` (or ``error``) on each, 50 at a time; e.g. creating and joining rooms."""
        todo = [(self.conns[n], p) for n, p in requests if n in self.conns and not self.conns[n].closed]
        total = len(todo)
        failures0 = len(self.failures)
        start = time.monotonic()
        waiting: list[Conn] = []
        while (todo or waiting) and time.monotonic() - start < timeout:
            while todo and len(waiting) < 50:
                conn, payload = todo.pop()
                conn.decode, conn.awaiting = True, (*reply, "error")
                self.queue(conn, payload)
                waiting.append(conn)
            self.poll(0.005)
            waiting = [c for c in waiting if c.awaiting and not c.closed]
        return {"done": total - len(todo) - len(waiting), "failures": self.failures[failures0:][:5],
                "elapsed": time.monotonic() - start}

    def op_probe(self, sender: str, peer: str, timeout: float = 30.0) -> dict[str, Any]:
        """Send one marked message from ``sender`` to ``peer`` ("" = everyone); the receiving
        worker records it (see op_probes)."""
        conn = self.conns[sender]
        conn.peer = peer
        conn.decode = True
        conn.pad = "probe"
        self.send_chat(conn, marker="P")
        start = time.monotonic()
        while conn.outstanding > 0 and time.monotonic() - start < timeout:
            self.poll(0.005)
        return {"acked": conn.outstanding <= 0, "ack_ms": (time.monotonic() - start) * 1000}

    def op_probes(self, expect: int, timeout: float = 30.0, reset: bool = False) -> dict[str, Any]:
        """Wait until ``expect`` probe deliveries arrived here (or ``timeout``); report them."""
        if reset:
            self.probes = []
            return {"ok": True}
        start = time.monotonic()
        while len(self.probes) < expect and time.monotonic() - start < timeout:
            self.poll(0.005)
        lat = sorted(p[2] for p in self.probes)
        return {"count": len(self.probes), "max_us": lat[-1] if lat else None,
                "p50_us": lat[len(lat) // 2] if lat else None}

    def op_quiet(self, idle: float = 1.0, timeout: float = 120.0) -> dict[str, Any]:
        """Read until nothing arrived for ``idle`` seconds (or ``timeout``)."""
        start = time.monotonic()
        frames0, bytes0 = self.frames, self.bytes
        self.last_rx = time.monotonic()
        while time.monotonic() - self.last_rx < idle and time.monotonic() - start < timeout:
            self.poll(0.05)
        return {"frames": self.frames - frames0, "bytes": self.bytes - bytes0,
                "elapsed": time.monotonic() - start, "disconnects": self.disconnects}

    def op_reading(self, names: list[str], reading: bool) -> dict[str, Any]:
        """Stop (or resume) reading these connections: their kernel buffers fill up."""
        for name in names:
            conn = self.conns[name]
            conn.reading = reading
            if not conn.closed:
                self.interest(conn)
        return {"ok": True}

    def op_alive(self, names: list[str], timeout: float = 15.0) -> dict[str, Any]:
        """Read these connections until EOF or ``timeout``: how many the server still keeps open."""
        for name in names:
            conn = self.conns[name]
            conn.reading, conn.decode = True, False
            if not conn.closed:
                self.interest(conn)
        start = time.monotonic()
        conns = [self.conns[n] for n in names]
        while time.monotonic() - start < timeout and not all(c.closed for c in conns):
            self.poll(0.05)
            if time.monotonic() - self.last_rx > 2.0:
                break
        return {"open": sum(1 for c in conns if not c.closed)}

    def op_stats(self) -> dict[str, Any]:
        return {"conns": len(self.conns), "open": sum(1 for c in self.conns.values() if not c.closed),
                "ready": sum(1 for c in self.conns.values() if c.state == "ready" and not c.closed),
                "frames": self.frames, "bytes": self.bytes, "disconnects": self.disconnects}

    def op_close_all(self) -> dict[str, Any]:
        """Close every connection (RST: no TIME_WAIT left behind)."""
        linger = b"\x01\x00\x00\x00\x00\x00\x00\x00"
        for conn in self.conns.values():
            if not conn.closed:
                try:
                    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                except OSError:
                    pass
                conn.closed = True
                self.interest(conn)
                conn.sock.close()
        self.conns.clear()
        self.dirty.clear()
        self.disconnects = 0
        return {"ok": True}

    def op_files(self, port: int, size: int, sender: str, recipient: str, timeout: float = 300.0) -> dict[str, Any]:
        """Upload ``size`` bytes from ``sender`` to ``recipient`` and download them (blocking sockets)."""
        return files.transfer(port, size, sender, recipient, PASSWORD, timeout)


def main(pipe: Connection, wid: int) -> None:
    """Process entry point."""
    Worker(pipe, wid).serve()
