"""Sessions: one per connection, with a bounded outbound queue, and the registry of them.

A send never blocks the caller: what the kernel will not take now waits in the session's
backlog, written by the shared ``Flusher`` thread. A backlog over ``send_buffer`` bytes, or
one that makes no progress for ``send_timeout`` seconds, disconnects that client only.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import itertools
import logging
import selectors
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional

from chatcore import protocol

if TYPE_CHECKING:
    from chatcore.transport import PlainTransport

log = logging.getLogger(__name__)
_session_ids = itertools.count(1)
_cork = threading.local()


@contextlib.contextmanager
def corked() -> Iterator[None]:
    """Within this block, sends made by this thread only queue; each session they touched is
    written once at the end. Fan-out loops use it to spend one system call per recipient
    instead of one per frame. Nested blocks flush with the outermost."""
    if getattr(_cork, "sessions", None) is not None:
        yield
        return
    touched: dict[int, "Session"] = {}
    _cork.sessions = touched
    try:
        yield
    finally:
        _cork.sessions = None
        for session in touched.values():
            session.push()


@functools.lru_cache(maxsize=256)
def _is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address; remembered, as every login asks and a storm of
    them comes from a few addresses."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Session:
    """A client connection: who it is, what protocol it speaks, and a non-blocking send."""

    def __init__(self, transport: "PlainTransport", address: tuple[str, int], flusher: "Flusher",
                 send_buffer: int = 1 << 20, send_timeout: float = 10.0) -> None:
        self.id = next(_session_ids)
        self.transport = transport
        self.address = address
        self.user: Optional[str] = None
        self.device = ""  # the named device the session logged in as (accounts plugins set it), "" for none
        self.admin = False  # logged in as a server administrator (accounts plugins set it; chatcore.moderation)
        self.protocol = 1
        self.client_name = ""
        self.connected_at = time.time()
        self.state: dict[str, Any] = {}  # per-plugin session data, keyed by plugin name
        self.close_reason = ""
        self.more_requests = False  # the client has already sent more than the request being handled
        self.bucket: Any = None  # the request-rate TokenBucket (set by the server)
        self._flusher = flusher
        self._send_buffer = send_buffer
        self._send_timeout = send_timeout
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._drain_waiters = 0  # threads in wait_drained: sends notify only when there are some
        self._backlog = bytearray()
        self._stalled_since = 0.0
        self._closed = False
        self._overflow = ""  # why the session must close, set under the lock by a failed send
        transport.attach(self._lock, self._queue_wire)

    def __repr__(self) -> str:
        who = self.user or "-"
        return f"<Session {self.id} {self.address[0]}:{self.address[1]} user={who}>"

    @property
    def tls(self) -> bool:
        return self.transport.tls

    @property
    def is_loopback(self) -> bool:
        """True for a client on this machine (127.0.0.0/8, ::1)."""
        return _is_loopback(self.address[0])

    @property
    def v2(self) -> bool:
        """True once the client said ``hello`` with protocol 2 or later."""
        return self.protocol >= 2

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Bytes accepted for sending but not yet taken by the kernel."""
        return len(self._backlog)

    def send(self, message: dict[str, Any]) -> bool:
        """Encode and queue one message; False if the session is closed (or just closed)."""
        return self.send_frame(protocol.encode(message))

    def send_frame(self, frame: bytes) -> bool:
        """Queue an already-encoded frame (encode once, send to many)."""
        with self._lock:
            if self._closed:
                return False
            try:
                self._queue_wire(self.transport.seal(frame))
            except OSError:
                self._overflow = "the connection failed"
            problem = self._overflow
        if problem:
            self.close(problem)
            return False
        return True

    def queue_wire(self, wire: bytes) -> None:
        """Queue bytes already in wire form (the end of a TLS handshake)."""
        with self._lock:
            if not self._closed:
                self._queue_wire(wire)
            problem = self._overflow
        if problem:
            self.close(problem)

    def _queue_wire(self, wire: bytes) -> None:
        """Add wire bytes to the backlog and write them now unless corked; the session lock is held."""
        was_empty = not self._backlog
        self._backlog += wire
        if len(self._backlog) > self._send_buffer:
            self._overflow = "send buffer full: the client is not reading"
            return
        scope = getattr(_cork, "sessions", None)
        if scope is not None:
            scope[self.id] = self
        elif was_empty:
            self._write_backlog()

    def _write_backlog(self) -> None:
        """Write what the kernel takes now; the flusher writes the rest when it can. Lock held."""
        try:
            sent = self.transport.send_nowait(self._backlog)
        except OSError:
            self._overflow = "connection lost while sending"
            return
        self._account(sent)
        if self._backlog:
            self._flusher.watch(self)

    def _account(self, sent: int) -> None:
        """Drop the bytes the kernel took; the stall clock restarts on progress and stops when
        the backlog is empty. Lock held."""
        if sent:
            del self._backlog[:sent]
            if self._drain_waiters:
                self._drained.notify_all()
        if not self._backlog:
            self._stalled_since = 0.0
        elif sent or not self._stalled_since:
            self._stalled_since = time.monotonic()

    def push(self) -> None:
        """Write the backlog a ``corked`` block queued."""
        with self._lock:
            if not self._closed and self._backlog:
                self._write_backlog()
            problem = self._overflow
        if problem:
            self.close(problem)

    def wait_drained(self, below: int = 0, timeout: Optional[float] = None) -> bool:
        """Block until at most ``below`` bytes are pending (for streaming senders); False if closed or timed out."""
        with self._drained:
            self._drain_waiters += 1
            try:
                self._drained.wait_for(lambda: self._closed or len(self._backlog) <= below, timeout)
            finally:
                self._drain_waiters -= 1
            return not self._closed and len(self._backlog) <= below

    def flush(self) -> None:
        """Write what the kernel takes from the backlog (flusher thread). Once it is empty the
        flusher stops watching, decided under the session lock so no queued byte is orphaned."""
        with self._lock:
            if self._closed:
                return
            try:
                sent = self.transport.send_nowait(self._backlog)
            except OSError:
                sent = -1
            else:
                self._account(sent)
                if not self._backlog:
                    self._flusher.forget(self)
        if sent < 0:
            self.close("connection lost while sending")

    def stalled_for(self, now: float) -> float:
        """Seconds the backlog has made no progress (0 when empty)."""
        return now - self._stalled_since if self._stalled_since else 0.0

    @property
    def send_timeout(self) -> float:
        return self._send_timeout

    def close(self, reason: str = "") -> None:
        """Stop sending and wake the connection's reader; its thread finishes the cleanup."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.close_reason = reason
            self._backlog = bytearray()
            self._drained.notify_all()
        if reason:
            log.info("disconnecting %r: %s", self, reason)
        self._flusher.forget(self)
        self.transport.shutdown()


class Flusher(threading.Thread):
    """One thread that writes every session's backlog as its socket becomes writable."""

    def __init__(self, tick: float = 0.25) -> None:
        super().__init__(name="chatcore-flusher", daemon=True)
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._watched: dict[int, Session] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._tick = tick
        self._stopping = False

    def watch(self, session: Session) -> None:
        """Start writing ``session``'s backlog when its socket can take more."""
        with self._lock:
            if session.id in self._watched:
                return
            try:
                self._selector.register(session.transport.fileno(), selectors.EVENT_WRITE, session)
            except (ValueError, KeyError, OSError):
                return
            self._watched[session.id] = session
        self._wake()

    def forget(self, session: Session) -> None:
        with self._lock:
            if self._watched.pop(session.id, None) is None:
                return
            try:
                self._selector.unregister(session.transport.fileno())
            except (ValueError, KeyError, OSError):
                pass

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    def run(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select(self._tick):
                if key.fileobj is self._wake_r:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                else:
                    key.data.flush()
            self._expire(time.monotonic())

    def _expire(self, now: float) -> None:
        with self._lock:
            stalled = [s for s in self._watched.values() if s.stalled_for(now) > s.send_timeout]
        for session in stalled:
            session.close(f"client read nothing for {session.send_timeout:g} s")

    def stop(self) -> None:
        self._stopping = True
        self._wake()
        if self.is_alive():
            self.join()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


class SessionRegistry:
    """Every live session, and the logged-in ones by user (case-insensitive).

    Each user's sessions are a tuple replaced whole under the lock, so ``of_user``, which every
    message's delivery asks up to three times, reads without taking it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[int, Session] = {}
        self._by_user: dict[str, tuple[Session, ...]] = {}
        self._unbound = threading.Condition(self._lock)  # wait_unbound's waiters, told on every unbind
        self._unbound_waiters = 0

    def add(self, session: Session) -> None:
        with self._lock:
            self._sessions[session.id] = session

    def remove(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def bind(self, session: Session, username: str) -> bool:
        """Mark ``session`` logged in as ``username``; True if it is the user's first session."""
        with self._lock:
            key = username.casefold()
            sessions = self._by_user.get(key, ()) + (session,)
            self._by_user[key] = sessions
            session.user = username
            return len(sessions) == 1

    def unbind(self, session: Session) -> bool:
        """Take ``session`` out of its user's list (``session.user`` stays); True if it was the last."""
        if session.user is None:
            return False
        with self._lock:
            key = session.user.casefold()
            sessions = tuple(s for s in self._by_user.get(key, ()) if s is not session)
            if self._unbound_waiters:
                self._unbound.notify_all()
            if sessions:
                self._by_user[key] = sessions
                return False
            self._by_user.pop(key, None)
            return True

    def wait_unbound(self, sessions: Iterable[Session], timeout: float) -> bool:
        """Block until none of ``sessions`` is logged in any more; False if ``timeout`` passed first."""
        waiting = list(sessions)

        def gone() -> bool:
            return not any(s in self._by_user.get((s.user or "").casefold(), ()) for s in waiting)

        with self._unbound:
            self._unbound_waiters += 1
            try:
                return self._unbound.wait_for(gone, timeout)
            finally:
                self._unbound_waiters -= 1

    def of_user(self, username: str) -> list[Session]:
        """The user's logged-in sessions (a copy; safe to iterate while others log in or out)."""
        return list(self._by_user.get(username.casefold(), ()))

    def online_users(self) -> list[str]:
        """Display names of users with at least one session, sorted case-insensitively."""
        with self._lock:
            names = [sessions[0].user for sessions in self._by_user.values() if sessions]
        return sorted((n for n in names if n), key=str.casefold)

    def is_online(self, username: str) -> bool:
        with self._lock:
            return bool(self._by_user.get(username.casefold()))

    def all(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())

    def authenticated(self) -> list[Session]:
        with self._lock:
            return [s for sessions in self._by_user.values() for s in sessions]

    def __len__(self) -> int:
        return len(self._sessions)

    def broadcast(self, message: dict[str, Any], sessions: Iterable[Session]) -> int:
        """Encode ``message`` once and queue it for every session given; returns how many took it."""
        frame = protocol.encode(message)
        return sum(1 for s in sessions if s.send_frame(frame))
