"""One accepted socket on its way through the server: the first byte picks plaintext or TLS,
the handshake runs as bytes arrive, frames are cut on the reactor's loop, and the session's
requests are served in order by the worker pool until the session ends.

The reactor owns the reading side (the socket, the TLS record layer's input, the frame
buffer); the worker serving the connection owns the session's state. They meet in the task
queue, and a connection whose queue holds too many bytes stops being read until it drains,
so a client that pipelines faster than the server works is held back by TCP, as before.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from chatcore import protocol
from chatcore.dispatch import send_error
from chatcore.limits import TokenBucket
from chatcore.session import Session
from chatcore.transport import TLS_RECORD_START, PlainTransport, TlsAcceptor

if TYPE_CHECKING:
    from chatcore.reactor import Reactor
    from chatcore.server import ChatServer

log = logging.getLogger(__name__)
_READ_SIZE = 65536
_BATCH = 32  # tasks a worker runs for one connection before letting others have a turn
_TASK_COST = 96  # bytes a queued request costs beyond its body (the objects holding it)
INFINITY = float("inf")

# phases
SNIFFING, HANDSHAKING, OPEN, ENDING = "sniffing", "handshaking", "open", "ending"
# tasks
OPENED, FRAME, CHECK, FAIL, END = range(5)


@dataclass(frozen=True)
class Policy:
    """The limits every connection runs under, read once from the config."""

    tls_context: Optional[ssl.SSLContext]
    send_buffer: int
    send_timeout: float
    frame_timeout: float
    login_timeout: float
    idle_timeout: Optional[float]
    rate_limit: float
    rate_burst: int
    request_queue: int  # bytes of received requests a connection may have waiting for a worker
    login_request_queue: int  # the same before it logged in


class Connection:
    """A client connection, from accept to the end of its session."""

    def __init__(self, server: "ChatServer", sock: socket.socket, address: tuple[str, int],
                 reactor: "Reactor", policy: Policy) -> None:
        sock.setblocking(False)
        self.sock, self.address, self.reactor, self.policy = sock, address, reactor, policy
        self._server = server
        self.phase = SNIFFING
        self.login_deadline = time.monotonic() + policy.login_timeout  # the TLS handshake counts against it
        self.scheduled_at = INFINITY
        self.watched = 0  # the events the reactor's selector holds for it
        self.session: Optional[Session] = None
        self._acceptor: Optional[TlsAcceptor] = None
        self._unsent = b""  # handshake bytes the kernel did not take yet
        self._frames = protocol.FrameAssembler()
        self._frame_started = 0.0  # when the incomplete frame (or TLS record) began; 0: none
        self._last_frame = time.monotonic()
        self._paused = False  # too many bytes queued: not read until a worker drains them
        self._resuming = False  # a worker asked the reactor to read again
        self._checking = False  # a CHECK task is queued: login and idle deadlines wait for it
        self._lock = threading.Lock()
        self._tasks: deque[tuple[int, Any]] = deque()
        self._queued = 0  # bytes of FRAME tasks waiting, with their _TASK_COST
        self._scheduled = False  # in the worker pool's queue or being served

    def __repr__(self) -> str:
        return repr(self.session) if self.session else f"<Connection {self.address[0]}:{self.address[1]} {self.phase}>"

    # -- reactor side ------------------------------------------------------------------------

    def events(self) -> int:
        if self.phase == ENDING or self._paused:
            return 0
        return selectors.EVENT_READ | (selectors.EVENT_WRITE if self._unsent else 0)

    def deadline(self) -> float:
        if self.phase in (SNIFFING, HANDSHAKING):
            return self.login_deadline
        if self.phase != OPEN:
            return INFINITY
        when = self._frame_started + self.policy.frame_timeout if self._frame_started and not self._paused else INFINITY
        if not self._checking:
            if self._waiting_for_login():
                when = min(when, self.login_deadline)
            elif self.policy.idle_timeout:
                when = min(when, self._last_frame + self.policy.idle_timeout)
        return when

    def _waiting_for_login(self) -> bool:
        return self._server.commands.login_required and self.session is not None and self.session.user is None

    def readable(self) -> None:
        room = self._queue_limit() - self._queued if self.phase == OPEN else _READ_SIZE
        try:
            raw = self.sock.recv(min(_READ_SIZE, max(4096, room)))  # never far past the queue's limit
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            raw = b""
        if self.phase == SNIFFING:
            self._sniff(raw)
        elif self.phase == HANDSHAKING:
            self._handshake(raw)
        elif self.phase == OPEN:
            self._receive(raw)

    def writable(self) -> None:
        self._send_unsent()

    def expire(self, now: float) -> None:
        if self.phase in (SNIFFING, HANDSHAKING):
            log.info("connection from %s:%d did not %s in time", *self.address,
                     "send anything" if self.phase == SNIFFING else "finish the TLS handshake")
            self._abandon()
        elif self.phase == OPEN:
            if (self._frame_started and now >= self._frame_started + self.policy.frame_timeout
                    and not (self._waiting_for_login() and now >= self.login_deadline)):
                what = "TLS record" if self._frames.partial == 0 else "frame"
                self._stop_reading(FAIL, ("protocol_error", f"{what} not completed within {self.policy.frame_timeout:g} s"))
            else:
                self._checking = True
                self._submit(CHECK, None)

    def _sniff(self, raw: bytes) -> None:
        if not raw:
            log.info("connection from %s:%d closed before sending anything", *self.address)
            self._abandon()
        elif raw[0] != TLS_RECORD_START:
            self._open(PlainTransport(self.sock), raw)
        elif self.policy.tls_context is None:
            log.info("TLS from %s:%d refused: TLS is off", *self.address)
            self._abandon()
        else:
            self._acceptor = TlsAcceptor(self.sock, self.policy.tls_context)
            self.phase = HANDSHAKING
            self._handshake(raw)

    def _handshake(self, raw: bytes) -> None:
        assert self._acceptor is not None
        if not raw:
            log.info("TLS handshake with %s:%d failed: closed during the handshake", *self.address)
            self._abandon()
            return
        try:
            done, reply = self._acceptor.feed(raw)
        except ssl.SSLError as exc:
            log.info("TLS handshake with %s:%d failed: %s", *self.address, exc)
            self._abandon()
            return
        self._unsent += reply
        if done:
            transport, self._acceptor = self._acceptor.transport(), None
            self._open(transport, b"")
        else:
            self._send_unsent()

    def _send_unsent(self) -> None:
        """Write handshake bytes; once the session exists its own send path takes the rest."""
        if not self._unsent:
            return
        if self.session is not None:
            self.session.queue_wire(self._unsent)
            self._unsent = b""
            return
        try:
            sent = self.sock.send(self._unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._abandon()
            return
        self._unsent = self._unsent[sent:]

    def _open(self, transport: PlainTransport, first: bytes) -> None:
        """The transport is settled: make the session and serve it."""
        policy = self.policy
        session = Session(transport, self.address, self._server.flusher, policy.send_buffer, policy.send_timeout)
        session.bucket = TokenBucket(policy.rate_limit, policy.rate_burst)
        self.session, self.phase = session, OPEN
        self._send_unsent()
        self._server.sessions.add(session)
        self._submit(OPENED, None)
        if self._server.stopping:
            session.close()
        self._receive(first, eof_possible=False)

    def _receive(self, raw: bytes, eof_possible: bool = True) -> None:
        assert self.session is not None
        transport = self.session.transport
        try:
            data = transport.receive(raw) if (raw or transport.tls) else b""
            bodies = self._frames.feed(data) if data else []
        except ssl.SSLError as exc:
            log.info("TLS error from %r: %s", self.session, exc)
            self._stop_reading(END, None)
            return
        except protocol.ProtocolError as exc:
            self._stop_reading(FAIL, ("protocol_error", str(exc)))
            return
        now = time.monotonic()
        for body in bodies:
            self._submit(FRAME, body)
        if bodies:
            self._last_frame = now
        if self._frames.partial or transport.record_pending:
            if not self._frame_started or bodies:
                self._frame_started = now
        else:
            self._frame_started = 0.0
        if eof_possible and (not raw or transport.peer_closed):
            if self._frames.partial:
                self._stop_reading(FAIL, ("protocol_error", "connection closed inside a frame"))
            else:
                self._stop_reading(END, None)

    def _stop_reading(self, kind: int, item: Any) -> None:
        """No more reading: queue the last task (an error to send, or just the end), then the end."""
        self.phase = ENDING
        self.reactor.forget(self)
        if kind == FAIL:
            self._submit(FAIL, item)
        self._submit(END, None)

    def _abandon(self) -> None:
        """End a connection that never had a session."""
        self.phase = ENDING
        self.reactor.forget(self)
        self._server.connection_ended(self)

    def _resume(self) -> None:
        """On the reactor's loop: the worker drained the queue enough to read again."""
        with self._lock:
            self._paused = self._resuming = False
        if self._frame_started:
            self._frame_started = time.monotonic()  # time waiting for us is not the client's
        self.reactor.update(self)

    def _checked(self) -> None:
        """On the reactor's loop: a CHECK ran; its deadlines are live again."""
        self._checking = False
        self.reactor.update(self)

    # -- the task queue ------------------------------------------------------------------------

    def _submit(self, kind: int, item: Any) -> None:
        with self._lock:
            self._tasks.append((kind, item))
            if kind == FRAME:
                self._queued += len(item) + _TASK_COST
                if self._queued > self._queue_limit():
                    self._paused = True  # the reactor's next update stops reading
            start = not self._scheduled
            self._scheduled = True
        if start:
            if self.reactor.leading():
                self.reactor.hand_over(self)
            else:
                self._server.workers.submit(self)

    @property
    def queued_bytes(self) -> int:
        """Bytes of received requests waiting for a worker (with their overhead)."""
        return self._queued

    def _queue_limit(self) -> int:
        """Bytes of requests this connection may have waiting: CHATCORE_REQUEST_QUEUE once logged
        in, CHATCORE_LOGIN_REQUEST_QUEUE before (a login needs a few hundred bytes; thousands of
        connections each queuing a quarter MiB behind slow logins would spend the server's memory)."""
        if self._server.commands.login_required and self.session is not None and self.session.user is None:
            return min(self.policy.login_request_queue, self.policy.request_queue)
        return self.policy.request_queue

    def serve(self) -> None:
        """A worker runs up to a batch of this connection's tasks, in order."""
        for _ in range(_BATCH):
            with self._lock:
                if not self._tasks:
                    self._scheduled = False
                    return
                kind, item = self._tasks.popleft()
                resume = False
                if kind == FRAME:
                    self._queued -= len(item) + _TASK_COST
                    if self._paused and not self._resuming and self._queued <= self._queue_limit() // 2:
                        self._resuming = resume = True  # one resume per pause
                more = bool(self._tasks)
            if resume:
                self.reactor.call(self._resume)
            self._run(kind, item, more)
        self._server.workers.submit(self)  # more remain: to the back of the line

    def _run(self, kind: int, item: Any, more: bool) -> None:
        session = self.session
        assert session is not None
        try:
            if kind == FRAME:
                if not session.closed:
                    session.more_requests = more or self._frames.partial > 0
                    user = session.user
                    self._serve_frame(session, item)
                    if session.user is not user:  # logged in or out: the login or idle deadline applies now
                        self.reactor.call(self.reactor.update, self)
            elif kind == OPENED:
                log.debug("connection %r opened", session)
                self._server.plugins.notify("chat_session_opened", session=session)
            elif kind == CHECK:
                self._check(session)
            elif kind == FAIL:
                code, reason = item
                if not session.closed:
                    send_error(session, None, code, f"{reason}; closing the connection")
                    session.close(f"protocol error: {reason}")
            elif kind == END:
                try:
                    self._server.end_session(session)
                finally:
                    self._server.connection_ended(self)
        except Exception:
            log.exception("connection %r failed", session)
            if kind != END:
                session.close("internal error")

    def _serve_frame(self, session: Session, body: bytes) -> None:
        try:
            message = protocol.decode_body(body)
        except protocol.MessageError as exc:
            echo = {"client_id": exc.client_id[:protocol.MAX_CLIENT_ID]} if exc.client_id else {}
            send_error(session, exc.command, "bad_request", str(exc), **echo)
            return
        except protocol.ProtocolError as exc:
            send_error(session, None, "protocol_error", f"{exc}; closing the connection")
            session.close(f"protocol error: {exc}")
            return
        self._server.dispatch(session, message)

    def _check(self, session: Session) -> None:
        """A login or idle deadline passed on the reactor: decide in order with the requests."""
        now = time.monotonic()
        try:
            if session.closed:
                return
            if self._waiting_for_login():
                if now >= self.login_deadline:
                    send_error(session, None, "login_timeout", f"log in within {self.policy.login_timeout:g} s of connecting")
                    session.close("did not log in in time")
            elif self.policy.idle_timeout and now >= self._last_frame + self.policy.idle_timeout:
                send_error(session, None, "idle_timeout", f"nothing received for {self.policy.idle_timeout:g} s")
                session.close("idle")
        finally:
            self.reactor.call(self._checked)
