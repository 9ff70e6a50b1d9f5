"""The byte pipe under a session: blocking reads with a settable timeout, non-blocking writes.

Reads block in the connection's own thread (SO_RCVTIMEO bounds a started frame); writes
never block, so a client that stops reading cannot stall the thread that sends to it. TLS
runs over memory BIOs, so the same non-blocking raw writes carry its records and one lock
(the session's) keeps the TLS state and the order of records consistent across threads.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
import time
from typing import Callable, Optional

from chatcore.protocol import FRAME_TIMEOUT, ProtocolError

log = logging.getLogger(__name__)
_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
TLS_RECORD_START = 0x16  # a TLS handshake record; never the first byte of a valid plaintext frame

Emit = Callable[[bytes], None]


class PlainTransport:
    """A TCP socket carrying frames as they are."""

    tls = False

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock

    def attach(self, lock: threading.Lock, emit: Emit) -> None:
        """Called by the session: its lock, and how to queue bytes the transport must send itself."""

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv_into(self, view: memoryview) -> int:
        """Read into ``view``; 0 on EOF, BlockingIOError when the receive timeout passes."""
        return self.sock.recv_into(view)

    def set_recv_timeout(self, seconds: Optional[float]) -> None:
        """Bound each blocking read (None: wait forever) without touching writes."""
        whole = 0 if seconds is None else int(seconds)
        micro = 0 if seconds is None else int((seconds - whole) * 1_000_000)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, micro))

    def seal(self, data: bytes) -> bytes:
        """The wire bytes for ``data`` (call with the session lock held)."""
        return data

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Send what the kernel takes now; 0 when its buffer is full."""
        try:
            return self.sock.send(data, _MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0

    def shutdown(self) -> None:
        """Wake a blocked read and end the stream in both directions."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


class TlsTransport(PlainTransport):
    """TLS over a memory-BIO ``SSLObject``: the raw socket stays ours, so writes stay non-blocking."""

    tls = True

    def __init__(self, sock: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO,
                 outgoing: ssl.MemoryBIO) -> None:
        super().__init__(sock)
        self._tls, self._incoming, self._outgoing = tls, incoming, outgoing
        self._lock = threading.Lock()
        self._emit: Emit = lambda data: None
        self._timeout: Optional[float] = None  # what set_recv_timeout asked for: bounds a whole recv_into
        self.record_timeout = FRAME_TIMEOUT  # seconds a TLS record, once begun, may take to arrive in full
        self._socket_timeout: Optional[float] = None  # what SO_RCVTIMEO is set to now

    def attach(self, lock: threading.Lock, emit: Emit) -> None:
        self._lock, self._emit = lock, emit

    def set_recv_timeout(self, seconds: Optional[float]) -> None:
        """Bound each ``recv_into`` call as a whole, however many raw reads its record takes."""
        self._timeout = seconds
        self._set_socket_timeout(seconds)

    def _set_socket_timeout(self, seconds: Optional[float]) -> None:
        if seconds != self._socket_timeout:
            super().set_recv_timeout(seconds)
            self._socket_timeout = seconds

    def recv_into(self, view: memoryview) -> int:
        """Decrypted bytes into ``view``; 0 on EOF or close_notify.

        A record may arrive in many pieces, each a raw read: the timeout is an absolute
        deadline for the whole call, so a client trickling a byte a second cannot stretch
        the login or frame deadline (BlockingIOError when it passes, as for plaintext). A
        record once begun must be complete within ``record_timeout`` even while the reader
        waits idly for its next frame: a started record is a started frame (ProtocolError).
        """
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        record_deadline: Optional[float] = None  # set once raw bytes came but no whole record yet
        while True:
            with self._lock:
                try:
                    return int(self._tls.read(len(view), view))  # with a buffer it returns the count
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    return 0
                finally:
                    pending = self._outgoing.read()
                    if pending:  # e.g. a key update answered while reading
                        self._emit(pending)
            if record_deadline is None:
                self._set_socket_timeout(self._timeout)
            else:
                now = time.monotonic()
                if now >= record_deadline:
                    raise self._record_stalled()
                if deadline is not None and now >= deadline:
                    raise BlockingIOError("receive timeout")
                left = min(record_deadline, deadline if deadline is not None else record_deadline) - now
                self._set_socket_timeout(max(0.001, round(left + 0.0005, 3)))
            try:
                raw = self.sock.recv(65536)
            except BlockingIOError:
                if record_deadline is not None and time.monotonic() >= record_deadline:
                    raise self._record_stalled() from None
                raise
            if record_deadline is None:
                record_deadline = time.monotonic() + self.record_timeout
            if not raw:
                return 0
            with self._lock:
                self._incoming.write(raw)

    def _record_stalled(self) -> ProtocolError:
        return ProtocolError(f"TLS record not completed within {self.record_timeout:g} s")

    def seal(self, data: bytes) -> bytes:
        self._tls.write(data)
        return self._outgoing.read()


def handshake(sock: socket.socket, context: ssl.SSLContext, timeout: float) -> TlsTransport:
    """Complete a server-side TLS handshake within ``timeout`` seconds (raises OSError otherwise)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=True)
    bio_handshake(sock, tls, incoming, outgoing, timeout)
    return TlsTransport(sock, tls, incoming, outgoing)


def bio_handshake(sock: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                  timeout: float) -> None:
    """Drive a memory-BIO TLS handshake over the raw ``sock`` (either side: the server's
    transport and the desktop client both use it) within ``timeout`` seconds in all; raises
    TimeoutError, ConnectionError or ssl.SSLError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = outgoing.read()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("TLS handshake took too long") from None
            sock.settimeout(remaining)
            if pending:
                sock.sendall(pending)
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed during the TLS handshake") from None
            incoming.write(data)
    pending = outgoing.read()
    if pending:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        sock.sendall(pending)


def peek_first_byte(sock: socket.socket, timeout: float) -> Optional[int]:
    """The first byte the client sent, left unread; None if it sent nothing in time or closed."""
    sock.settimeout(timeout)
    try:
        first = sock.recv(1, socket.MSG_PEEK)
    except (TimeoutError, OSError):
        return None
    return first[0] if first else None


def open_transport(sock: socket.socket, address: tuple[str, int], deadline: float,
                   tls_context: Optional[ssl.SSLContext], record_timeout: float) -> Optional[PlainTransport]:
    """Plaintext or TLS by the client's first byte (the handshake done by ``deadline``, a
    monotonic time); None when it sent nothing usable in time, or TLS when it is off."""
    first = peek_first_byte(sock, max(0.001, deadline - time.monotonic()))
    if first is None:
        log.info("connection from %s:%d closed before sending anything", *address)
        return None
    if first != TLS_RECORD_START:
        return PlainTransport(sock)
    if tls_context is None:
        log.info("TLS from %s:%d refused: TLS is off", *address)
        return None
    try:
        transport = handshake(sock, tls_context, max(0.001, deadline - time.monotonic()))
    except (OSError, ssl.SSLError) as exc:
        log.info("TLS handshake with %s:%d failed: %s", *address, exc)
        return None
    transport.record_timeout = record_timeout
    return transport
