"""The operator's way into a running server: a data-directory lock and an admin socket.

A server holds ``<data>/server.lock`` (flock) while it runs, so a second server cannot use
the same data and the CLI knows whether one is live. The live server listens on a Unix
socket beside it, ``<data>/admin.sock`` (the directory is 0700, the socket 0600, and the
peer must run as the server's own user); the CLI sends one JSON request per line and reads
one JSON reply, so account changes made with ``chatcore user`` reach live sessions at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Any, Callable, Optional

log = logging.getLogger(__name__)

LOCK_NAME = "server.lock"
SOCKET_NAME = "admin.sock"
MAX_REQUEST = 64 << 10  # bytes of one admin request
MAX_REPLY = 16 << 20  # bytes of one admin reply read by the CLI
SUN_PATH_MAX = 107  # bytes of a Unix socket path (sun_path less its terminating NUL)
Handler = Callable[[dict[str, Any]], dict[str, Any]]


class DataDirInUse(RuntimeError):
    """Another process (a running server) holds the data directory's lock."""


class NoServer(ConnectionError):
    """No server answers on the data directory's admin socket."""


class DataDirLock:
    """An exclusive flock on ``<data>/server.lock``, held by a server (or an offline CLI job)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """Take the lock or raise DataDirInUse at once (never waits)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirInUse(f"another chatcore server uses the data directory {self.path.parent}") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "DataDirLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def socket_address(data_dir: Path) -> str:
    """Where the admin socket of ``data_dir`` lives: a path in it, or, when that path is too
    long for a Unix socket, an abstract name derived from it (guarded by the peer check)."""
    path = str(Path(data_dir).resolve() / SOCKET_NAME)
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        return path
    return "\0chatcore-admin-" + hashlib.sha256(os.fsencode(path)).hexdigest()[:40]


class AdminServer(threading.Thread):
    """Answers admin requests, one connection at a time, with ``handlers[request["command"]]``."""

    def __init__(self, data_dir: Path, handlers: dict[str, Handler]) -> None:
        super().__init__(name="chatcore-admin", daemon=True)
        self._address = socket_address(data_dir)
        self._handlers = handlers
        self._stopping = False
        if not self._address.startswith("\0"):
            try:
                os.unlink(self._address)  # left by a server that crashed; we hold the lock
            except FileNotFoundError:
                pass
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self._address)
        if not self._address.startswith("\0"):
            os.chmod(self._address, 0o600)  # its directory is 0700 already: nobody else could reach it meanwhile
        self._sock.listen(8)

    def run(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self._serve(conn)
                except Exception:
                    log.exception("admin request failed")

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10.0)
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
        if uid not in (os.getuid(), 0):
            log.warning("admin socket: refused a client running as uid %d", uid)
            return
        request = _read_line(conn)
        if not isinstance(request, dict) or request.get("command") not in self._handlers:
            reply: dict[str, Any] = {"ok": False, "error": f"unknown admin command; known: {sorted(self._handlers)}"}
        else:
            log.info("admin: %s", request["command"])
            try:
                reply = self._handlers[request["command"]](request)
            except Exception:
                log.exception("admin command %s failed", request["command"])
                reply = {"ok": False, "error": "the command failed on the server; the server's log says why"}
        conn.sendall(json.dumps(reply).encode() + b"\n")

    def stop(self) -> None:
        self._stopping = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if self.is_alive():
            self.join(5.0)
        if not self._address.startswith("\0"):
            try:
                os.unlink(self._address)
            except FileNotFoundError:
                pass


def _read_line(conn: socket.socket, limit: int = MAX_REQUEST) -> Any:
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    try:
        return json.loads(data)
    except ValueError:
        return None


def admin_request(data_dir: Path, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to the server running on ``data_dir``; NoServer when none answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_address(data_dir))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NoServer(f"no chatcore server is running on {data_dir}") from exc
        sock.sendall(json.dumps(request).encode() + b"\n")
        reply = _read_line(sock, MAX_REPLY)
    if not isinstance(reply, dict):
        raise NoServer(f"the chatcore server on {data_dir} gave no answer (run this as the server's own user)")
    return reply
