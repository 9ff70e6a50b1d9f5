"""One file through a server: upload from one user, download by another (blocking sockets),
with the client's real work per 32 KiB chunk (base64, JSON, frame mask) and a SHA-256 check."""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from typing import Any

from chatcore import protocol
from load.content import CHUNK, chunk_at, sha256_of


class Blocking:
    """A blocking client connection that reads whole frames."""

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = protocol.FrameReader(self.sock.recv_into, lambda t: None, frame_timeout=timeout)

    def send(self, **obj: Any) -> None:
        self.sock.sendall(protocol.encode(obj))

    def expect(self, *types: str) -> dict[str, Any]:
        """The next message of one of ``types``; an ``error`` raises."""
        while True:
            msg = self.reader.read()
            if msg is None:
                raise ConnectionError(f"closed while waiting for {types}")
            if msg.get("type") == "error":
                raise RuntimeError(f"server error: {msg}")
            if msg.get("type") in types:
                return msg

    def login(self, name: str, password: str) -> None:
        self.send(command="register", username=name, password=password)
        self.expect("register_result")
        self.send(command="login", username=name, password=password)
        reply = self.expect("login_result")
        if reply.get("response") != "ok":
            raise RuntimeError(f"login failed: {reply}")

    def close(self) -> None:
        self.sock.close()


def transfer(port: int, size: int, sender: str, recipient: str, password: str, timeout: float) -> dict[str, Any]:
    """Upload then download ``size`` bytes; times and MB/s (10^6 bytes) of each direction."""
    digest = sha256_of(size)
    up, down = Blocking(port, timeout), Blocking(port, timeout)
    try:
        up.login(sender, password)
        down.login(recipient, password)
        t0 = time.monotonic()
        up.send(command="file_upload", peer=recipient, filename="bench.bin", size=size, sha256=digest)
        ready = up.expect("file_upload_ready")
        upload_id, step = ready["upload_id"], int(ready.get("chunk_size") or CHUNK)
        for offset in range(int(ready.get("offset", 0)), size, step):
            data = base64.b64encode(chunk_at(offset, min(step, size - offset))).decode("ascii")
            up.send(command="file_chunk", upload_id=upload_id, offset=offset, data=data)
        up.send(command="file_upload_done", upload_id=upload_id)
        file_id = up.expect("file_uploaded")["file_id"]
        t1 = time.monotonic()
        got = hashlib.sha256()
        received = 0
        down.send(command="file_download", file_id=file_id)
        while True:
            msg = down.expect("file_data", "file_data_end")
            if msg["type"] == "file_data_end":
                break
            chunk = base64.b64decode(msg["data"])
            got.update(chunk)
            received += len(chunk)
        t2 = time.monotonic()
        down.send(command="file_received", file_id=file_id)
    finally:
        up.close()
        down.close()
    return {"size": size, "upload_s": t1 - t0, "download_s": t2 - t1, "upload_mbps": size / (t1 - t0) / 1e6,
            "download_mbps": size / (t2 - t1) / 1e6, "received": received, "intact": got.hexdigest() == digest}
