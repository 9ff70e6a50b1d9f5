"""Byte pipes under a connection: plain TCP, or TLS over memory BIOs.

An ``ssl.SSLSocket`` must not be read in one thread while another writes it (OpenSSL's SSL
object is not safe for that; it shows up as ``bad record mac``). ``TlsPipe`` therefore keeps
the raw socket and drives an ``SSLObject`` under one lock, which is held only for memory
operations and raw sends, never during the blocking ``recv``. The server does the same.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Optional

from chatcore.transport import PlainTransport, bio_handshake

_RECV = 65536


class PlainPipe(PlainTransport):
    """A TCP socket (the server's plain transport: blocking reads, ``shutdown`` wakes a reader),
    written with ``sendall`` from any thread (the caller locks)."""

    def settimeout(self, seconds: Optional[float]) -> None:
        self.sock.settimeout(seconds)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)


class TlsPipe(PlainPipe):
    """TLS through an ``SSLObject``; reads and writes may run in different threads."""

    tls = True

    def __init__(self, sock: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO,
                 outgoing: ssl.MemoryBIO) -> None:
        super().__init__(sock)
        self.tls_object, self._in, self._out = tls, incoming, outgoing
        self._lock = threading.Lock()

    def peer_certificate(self) -> bytes:
        return self.tls_object.getpeercert(binary_form=True) or b""

    def _flush(self) -> None:
        """Send the records OpenSSL produced (call with the lock held)."""
        pending = self._out.read()
        if pending:
            self.sock.sendall(pending)

    def recv_into(self, view: memoryview) -> int:
        """Decrypted bytes into ``view``; 0 at the end of the stream."""
        while True:
            with self._lock:
                try:
                    count = int(self.tls_object.read(len(view), view))  # with a buffer it returns the count
                    self._flush()
                    return count
                except ssl.SSLWantReadError:
                    self._flush()
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return 0
            data = self.sock.recv(_RECV)  # blocking, outside the lock: writers go on meanwhile
            with self._lock:
                if data:
                    self._in.write(data)
                else:
                    self._in.write_eof()

    def sendall(self, data: bytes) -> None:
        with self._lock:
            self.tls_object.write(data)
            self._flush()


def tls_handshake(sock: socket.socket, context: ssl.SSLContext, host: str, timeout: float) -> TlsPipe:
    """Run a client handshake over ``sock`` with memory BIOs; raises ssl.SSLError/OSError on failure."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=host)
    bio_handshake(sock, tls, incoming, outgoing, timeout)
    sock.settimeout(None)
    return TlsPipe(sock, tls, incoming, outgoing)
