"""The byte pipe under a session: raw bytes in (the reactor reads them), non-blocking writes.

The server never blocks on a client: the reactor hands each transport the raw bytes a socket
had (``receive`` gives back the plaintext), and writes go out with ``send_nowait``, so a client
that stops reading cannot stall the thread that sends to it. TLS runs over memory BIOs, so the
same non-blocking raw writes carry its records and one lock (the session's) keeps the TLS state
and the order of records consistent across threads.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)
_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
TLS_RECORD_START = 0x16  # a TLS handshake record; never the first byte of a valid plaintext frame
_READ_SIZE = 65536
_RECORD_HEADER = 5  # content type, version, length

Emit = Callable[[bytes], None]


class PlainTransport:
    """A TCP socket carrying frames as they are."""

    tls = False
    peer_closed = False  # the peer ended the stream inside the protocol (TLS close_notify)
    record_pending = False  # raw bytes of an incomplete TLS record are waiting

    def __init__(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock

    def attach(self, lock: threading.Lock, emit: Emit) -> None:
        """Called by the session: its lock, and how to queue bytes the transport must send itself."""

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv_into(self, view: memoryview) -> int:
        """Read into ``view`` (a blocking read, for the client's pipes); 0 on EOF."""
        return self.sock.recv_into(view)

    def receive(self, raw: bytes) -> bytes:
        """The plaintext carried by ``raw``, bytes the reactor read from the socket."""
        return raw

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
        """End the stream in both directions (the reactor then sees the end of the connection)."""
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
        self._header = b""  # the start of the next record's 5-byte header
        self._record_left = 0  # bytes of the current record still to come

    def attach(self, lock: threading.Lock, emit: Emit) -> None:
        self._lock, self._emit = lock, emit

    @property
    def record_pending(self) -> bool:  # type: ignore[override]
        """A record has begun and not ended (OpenSSL buffers its start internally, so the
        record boundaries are followed here, from each 5-byte record header)."""
        return bool(self._header) or self._record_left > 0

    def _follow_records(self, raw: bytes) -> None:
        at, size = 0, len(raw)
        while at < size:
            if self._record_left:
                step = min(self._record_left, size - at)
                self._record_left -= step
                at += step
            else:
                need = _RECORD_HEADER - len(self._header)
                self._header += raw[at:at + need]
                at += need
                if len(self._header) == _RECORD_HEADER:
                    self._record_left = int.from_bytes(self._header[3:5], "big")
                    self._header = b""

    def receive(self, raw: bytes) -> bytes:
        """Decrypt what ``raw`` completes (b"" when no record is whole yet); a close_notify sets
        ``peer_closed``. Raises ssl.SSLError for a broken record stream."""
        chunks: list[bytes] = []
        with self._lock:
            if raw:
                self._incoming.write(raw)
                self._follow_records(raw)
            try:
                while True:
                    chunks.append(self._tls.read(_READ_SIZE))
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
            finally:
                pending = self._outgoing.read()
                if pending:  # e.g. a key update answered while reading
                    self._emit(pending)
        return b"".join(chunks)

    def seal(self, data: bytes) -> bytes:
        self._tls.write(data)
        return self._outgoing.read()


class TlsAcceptor:
    """A server-side TLS handshake driven by bytes as they arrive; it never blocks."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self._sock = sock
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    def feed(self, raw: bytes) -> tuple[bool, bytes]:
        """Take the client's next bytes: (handshake complete, bytes to send the client).
        Raises ssl.SSLError when the handshake fails."""
        self._incoming.write(raw)
        try:
            self._tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        return done, self._outgoing.read()

    def transport(self) -> TlsTransport:
        """The session's transport, once ``feed`` said the handshake is complete."""
        return TlsTransport(self._sock, self._tls, self._incoming, self._outgoing)


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
