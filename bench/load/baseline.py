"""The baseline: a minimal threaded relay speaking chatcore's frames, with no plugins and no storage.

One thread per connection, a listen backlog of 1,024, ``login``/``register`` always succeed
(no accounts, no presence), ``chat`` relays by name (or to everyone for ``peer: ""``) with
the same event fields chatcore sends and acknowledges with ``chat_ack``. Sends are
non-blocking under a per-session lock with a 5 s stall limit, so one stalled reader costs
its sender at most that once. Files: chunks are decoded and dropped, downloads stream the
deterministic content of ``load.content`` through the same frame encoding.

    python -m load.baseline --port 0      (prints "baseline listening on HOST:PORT" on stderr)
"""

from __future__ import annotations

import argparse
import base64
import datetime
import itertools
import select
import socket
import sys
import threading
from typing import Any, Optional

from chatcore import protocol
from load.content import CHUNK, chunk_at

SEND_STALL = 5.0  # seconds a send may wait for a client that does not read
_DONTWAIT = socket.MSG_DONTWAIT


class Peer:
    """One connection: its socket, its user name once logged in, a send lock."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.name: Optional[str] = None
        self.lock = threading.Lock()
        self.alive = True

    def send(self, frame: bytes) -> bool:
        """Write the whole frame or give up after SEND_STALL seconds without progress (then close)."""
        view = memoryview(frame)
        with self.lock:
            while view and self.alive:
                try:
                    view = view[self.sock.send(view, _DONTWAIT):]
                    continue
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    self.alive = False
                    break
                if not select.select([], [self.sock], [], SEND_STALL)[1]:
                    self.alive = False
            if not self.alive:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return self.alive


class Relay:
    """Who is online, and the relay of chat messages and file frames."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users: dict[str, list[Peer]] = {}
        self.ids = itertools.count(1)
        self.uploads: dict[str, int] = {}

    def online(self, name: str) -> list[Peer]:
        with self.lock:
            return list(self.users.get(name.casefold(), ()))

    def everyone(self) -> list[Peer]:
        with self.lock:
            return [p for peers in self.users.values() for p in peers]

    def bind(self, peer: Peer, name: str) -> None:
        with self.lock:
            self.users.setdefault(name.casefold(), []).append(peer)
        peer.name = name

    def unbind(self, peer: Peer) -> None:
        if peer.name is None:
            return
        with self.lock:
            peers = self.users.get(peer.name.casefold(), [])
            if peer in peers:
                peers.remove(peer)
            if not peers:
                self.users.pop(peer.name.casefold(), None)

    def handle(self, peer: Peer, msg: dict[str, Any]) -> None:
        """Answer one request the way chatcore would, minus accounts and storage."""
        command = msg.get("command") or msg.get("type")
        if command in ("login", "register"):
            if command == "login" and peer.name is None:
                self.bind(peer, str(msg.get("username")))
            peer.send(protocol.encode({"type": f"{command}_result", "username": msg.get("username"), "response": "ok"}))
        elif command == "chat":
            self.chat(peer, msg)
        elif command == "ping":
            peer.send(protocol.encode({"type": "pong"}))
        elif command == "hello":
            peer.send(protocol.encode({"type": "hello", "protocol": 2, "presence": msg.get("presence", "each")}))
        elif command == "file_upload":
            upload_id = f"u{next(self.ids)}"
            self.uploads[upload_id] = int(msg["size"])
            peer.send(protocol.encode({"type": "file_upload_ready", "upload_id": upload_id, "offset": 0,
                                       "chunk_size": CHUNK}))
        elif command == "file_chunk":
            base64.b64decode(msg["data"], validate=True)  # the bytes a store would write
        elif command == "file_upload_done":
            upload_id = msg["upload_id"]
            peer.send(protocol.encode({"type": "file_uploaded", "upload_id": upload_id, "file_id": upload_id}))
        elif command == "file_download":
            self.stream(peer, msg["file_id"])
        elif command in ("file_received", "close"):
            pass
        else:
            peer.send(protocol.encode({"type": "error", "command": command, "code": "unknown_command",
                                       "reason": "baseline"}))

    def chat(self, peer: Peer, msg: dict[str, Any]) -> None:
        """Relay to the named user (or everyone but the sender), then acknowledge."""
        to = msg["peer"]
        ident = next(self.ids)
        ts = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        kind = "broadcast_message" if to == "" else "private_message"
        frame = protocol.encode({"type": kind, "peer": peer.name, "message": msg["message"], "id": ident,
                                 "ts": ts, "to": to})
        targets = self.everyone() if to == "" else self.online(to)
        for target in targets:
            if target is not peer:
                target.send(frame)
        ack = {"type": "chat_ack", "id": ident, "ts": ts, "peer": to}
        if "client_id" in msg:
            ack["client_id"] = msg["client_id"]
        peer.send(protocol.encode(ack))

    def stream(self, peer: Peer, file_id: str) -> None:
        """Send the file's bytes as file_data frames (same encoding as chatcore), then file_data_end."""
        size = self.uploads.get(file_id, 0)
        for offset in range(0, size, CHUNK):
            data = chunk_at(offset, min(CHUNK, size - offset))
            frame = protocol.encode({"type": "file_data", "file_id": file_id, "offset": offset,
                                     "data": base64.b64encode(data).decode("ascii")})
            if not peer.send(frame):
                return
        peer.send(protocol.encode({"type": "file_data_end", "file_id": file_id, "size": size}))


def serve_connection(relay: Relay, sock: socket.socket) -> None:
    """A connection's thread: read frames, handle them, forget the peer at EOF."""
    peer = Peer(sock)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = protocol.FrameReader(sock.recv_into, sock.settimeout)
    try:
        while peer.alive:
            msg = reader.read()
            if msg is None:
                break
            if isinstance(msg, dict):
                relay.handle(peer, msg)
    except (OSError, protocol.ProtocolError, protocol.MessageError, KeyError, ValueError):
        pass
    finally:
        relay.unbind(peer)
        peer.alive = False
        sock.close()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    listener = socket.create_server((args.host, args.port), backlog=1024)
    print(f"baseline listening on {args.host}:{listener.getsockname()[1]}", file=sys.stderr, flush=True)
    relay = Relay()
    try:
        while True:
            sock, _ = listener.accept()
            threading.Thread(target=serve_connection, args=(relay, sock), daemon=True).start()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
