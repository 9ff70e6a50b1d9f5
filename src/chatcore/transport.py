"""The byte pipe under a session: blocking reads with a settable timeout, non-blocking writes.

Reads block in the connection's own thread (SO_RCVTIMEO bounds a started frame); writes
never block, so a client that stops reading cannot stall the thread that sends to it.
"""

from __future__ import annotations

import socket
import struct
from typing import Optional

_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class PlainTransport:
    """A TCP socket used as a transport."""

    tls = False

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock

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
