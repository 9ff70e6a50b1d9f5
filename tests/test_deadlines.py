"""Deadlines hold over TLS exactly as over plaintext: a client trickling one TLS record a
byte at a time cannot stretch the login deadline or the frame deadline."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Optional

from chatcore import protocol

TRICKLE_GAP = 0.2  # seconds between the bytes a trickling client sends
CLOSED_WITHIN = 6.0  # seconds the test waits for the server to hang up (the deadlines are 1-2 s)


class TricklingTlsClient:
    """A TLS client over memory BIOs, so the test controls every raw byte it writes."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                self.incoming.write(self.sock.recv(65536))
        self.sock.sendall(self.outgoing.read())
        self.stopped = threading.Event()

    def record_for(self, message: dict) -> bytes:
        """The raw TLS record(s) carrying one frame."""
        self.tls.write(protocol.encode(message))
        return self.outgoing.read()

    def trickle(self, data: bytes) -> threading.Thread:
        """Send ``data`` a byte every TRICKLE_GAP seconds in the background, until the server hangs up."""
        def run() -> None:
            for byte in data:
                if self.stopped.wait(TRICKLE_GAP):
                    return
                try:
                    self.sock.send(bytes([byte]))
                except OSError:
                    return
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def read_until_closed(self, timeout: float) -> tuple[bool, list[dict]]:
        """(whether the server closed the connection within ``timeout``, the frames it sent first)."""
        end = time.monotonic() + timeout
        frames: list[dict] = []
        buffer = b""
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                raw = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                return True, frames
            if not raw:
                return True, frames
            self.incoming.write(raw)
            try:
                buffer += self.tls.read(1 << 20)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass
            buffer, decoded = _split_frames(buffer)
            frames.extend(decoded)
        return False, frames

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


def _split_frames(buffer: bytes) -> tuple[bytes, list[dict]]:
    frames = []
    while len(buffer) >= 2:
        total = 2 + protocol.HEADER.unpack_from(buffer)[0]
        if len(buffer) < total:
            break
        frames.append(protocol.decode(buffer[:total]))
        buffer = buffer[total:]
    return buffer, frames


def _codes(frames: list[dict]) -> list[Optional[str]]:
    return [frame.get("code") for frame in frames if frame.get("type") == "error"]


def test_a_tls_client_trickling_a_record_is_closed_at_the_login_deadline(make_server):
    server = make_server(plugins=["auth"], env={"CHATCORE_LOGIN_TIMEOUT": "1"})
    client = TricklingTlsClient(server.address)
    try:
        record = client.record_for({"command": "login", "username": "alice", "password": "x" * 200})
        client.trickle(record)  # ~300 bytes: a minute at this pace
        closed, frames = client.read_until_closed(CLOSED_WITHIN)
        assert closed, "the connection outlived its login deadline"
        assert _codes(frames) == ["login_timeout"]
    finally:
        client.close()


def test_a_tls_client_trickling_a_record_is_closed_at_the_frame_deadline(make_server, probe):
    server = make_server(plugins=[], extra=[("probe", probe)], env={"CHATCORE_FRAME_TIMEOUT": "1"})
    client = TricklingTlsClient(server.address)
    try:
        client.sock.sendall(client.record_for({"command": "ping", "nonce": "first"}))
        client.trickle(client.record_for({"command": "ping", "nonce": "x" * 200}))
        closed, frames = client.read_until_closed(CLOSED_WITHIN)
        assert closed, "a frame took longer than the frame deadline over TLS"
        assert frames[0] == {"type": "pong", "nonce": "first"}
        assert _codes(frames) == ["protocol_error"]
    finally:
        client.close()


def test_a_plaintext_frame_started_before_the_login_deadline_does_not_outlive_it(make_server):
    server = make_server(plugins=["auth"], env={"CHATCORE_LOGIN_TIMEOUT": "1", "CHATCORE_FRAME_TIMEOUT": "30"})
    sock = socket.create_connection(server.address, timeout=CLOSED_WITHIN)
    frame = protocol.encode({"command": "login", "username": "alice", "password": "secret!!"})
    sock.sendall(frame[:10])  # a frame begun, never finished
    reader = protocol.FrameReader(sock.recv_into, sock.settimeout)
    try:
        error = reader.read(idle_timeout=CLOSED_WITHIN)
        assert error is not None and error["code"] == "login_timeout"
        assert reader.read(idle_timeout=CLOSED_WITHIN) is None  # then the server hangs up
    finally:
        sock.close()
