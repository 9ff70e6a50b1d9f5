"""File-transfer throughput: upload and download of one file through a chatcore server (in its
own process, plugins auth + filexfer, loopback), against a plain socket copy of the same bytes
in the same run, and the server's peak RSS. Not a test: it prints numbers.

    .venv/bin/python bench/filexfer.py [--mib 200]

The chatcore figures include the client's own work (base64 + JSON + the frame's XOR mask on
each 32 KiB chunk) because a real client pays it too; the plain copy is sendall/recv_into of
1 MiB blocks between the same kind of processes, writing to / reading from a file on disk.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from chatcore import protocol

CHUNK = 32 * 1024
BLOCK = 1 << 20
PASSWORD = "benchmark password"

SERVER = r"""
import sys, threading
from chatcore.config import Config
from chatcore.server import ChatServer
config = Config({"CHATCORE_HOST": "127.0.0.1", "SERVER_PORT": "0", "STORAGE_DIR": sys.argv[1],
                 "CHATCORE_PLUGINS": "auth,filexfer", "LOG_LEVEL": "WARNING",
                 "CHATCORE_FILEXFER_MAX_SIZE": "4G", "CHATCORE_FILEXFER_USER_QUOTA": "8G",
                 "CHATCORE_FILEXFER_SPOOL_LIMIT": "16G"})
server = ChatServer(config)
server.start()
print(server.address[1], flush=True)
sys.stdin.read()          # run until the benchmark closes our stdin
server.stop()
"""

PLAIN = r"""
import socket, sys
mode, path = sys.argv[1], sys.argv[2]
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
if mode == "receive":                     # client -> here -> file
    total = int(sys.argv[3]); got = 0; buf = bytearray(1 << 20); view = memoryview(buf)
    with open(path, "wb") as out:
        while got < total:
            n = conn.recv_into(view)
            if not n: break
            out.write(view[:n]); got += n
    conn.sendall(b"k")
else:                                     # file -> here -> client
    with open(path, "rb") as src:
        while block := src.read(1 << 20):
            conn.sendall(block)
conn.close()
"""


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the process's peak resident set size so far, in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


class Client:
    """A minimal blocking chatcore client."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = protocol.FrameReader(self.sock.recv_into, self.sock.settimeout, buffer_size=1 << 17)

    def send(self, **message: Any) -> None:
        self.sock.sendall(protocol.encode(message))

    def expect(self, *types: str) -> dict[str, Any]:
        while True:
            message = self.reader.read(idle_timeout=120)
            if message.get("type") in types:
                return message
            if message.get("type") == "error":
                raise RuntimeError(f"server error: {message}")

    def login(self, name: str) -> None:
        self.send(command="register", username=name, password=PASSWORD)
        self.expect("register_result")
        self.send(command="login", username=name, password=PASSWORD)
        reply = self.expect("login_result")
        assert reply["response"] == "ok", reply


def make_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; returns their SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(BLOCK)
    with open(path, "wb") as out:
        left = size
        while left:
            piece = block[:min(BLOCK, left)]
            # vary each block cheaply so the file is not one repeated MiB
            piece = left.to_bytes(8, "little") + piece[8:] if len(piece) >= 8 else piece
            out.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def upload(client: Client, path: Path, size: int, sha256: str) -> tuple[float, str]:
    """Upload ``path`` to bob; returns (seconds, file_id)."""
    began = time.perf_counter()
    client.send(command="file_upload", peer="bob", filename=path.name, size=size, sha256=sha256)
    upload_id = client.expect("file_upload_ready")["upload_id"]
    with open(path, "rb", buffering=0) as src:
        offset = 0
        while chunk := src.read(CHUNK):
            client.send(command="file_chunk", upload_id=upload_id, offset=offset,
                        data=base64.b64encode(chunk).decode("ascii"))
            offset += len(chunk)
    client.send(command="file_upload_done", upload_id=upload_id)
    file_id = client.expect("file_uploaded")["file_id"]
    return time.perf_counter() - began, file_id


def download(client: Client, file_id: str, out_path: Path) -> tuple[float, str]:
    """Download ``file_id`` into ``out_path``; returns (seconds, SHA-256 of what arrived)."""
    digest = hashlib.sha256()
    began = time.perf_counter()
    client.send(command="file_download", file_id=file_id)
    with open(out_path, "wb") as out:
        while True:
            message = client.expect("file_data", "file_data_end")
            if message["type"] == "file_data_end":
                break
            data = base64.b64decode(message["data"])
            digest.update(data)
            out.write(data)
    seconds = time.perf_counter() - began
    client.send(command="file_received", file_id=file_id)
    return seconds, digest.hexdigest()


def plain_copy(path: Path, size: int, work: Path) -> tuple[float, float]:
    """(seconds to send ``path`` to a receiving process that writes it to disk,
        seconds to receive it from a process that reads it from disk)."""
    proc = subprocess.Popen([sys.executable, "-c", PLAIN, "receive", str(work / "plain-in"), str(size)],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    sock = socket.create_connection(("127.0.0.1", port))
    began = time.perf_counter()
    with open(path, "rb", buffering=0) as src:
        while block := src.read(BLOCK):
            sock.sendall(block)
    assert sock.recv(1) == b"k"
    send_seconds = time.perf_counter() - began
    sock.close()
    proc.wait()

    proc = subprocess.Popen([sys.executable, "-c", PLAIN, "send", str(path)], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    sock = socket.create_connection(("127.0.0.1", port))
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    began = time.perf_counter()
    got = 0
    with open(work / "plain-out", "wb") as out:
        while n := sock.recv_into(view):
            out.write(view[:n])
            got += n
    recv_seconds = time.perf_counter() - began
    assert got == size
    sock.close()
    proc.wait()
    return send_seconds, recv_seconds


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200, help="file size in MiB (default 200)")
    args = parser.parse_args(argv)
    size = args.mib << 20
    mb = size / 1e6
    with tempfile.TemporaryDirectory(prefix="chatcore-bench-filexfer-") as tmp:
        work = Path(tmp)
        source = work / "payload.bin"
        sha256 = make_file(source, size)
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(work / "data")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            port = int(server.stdout.readline())
            ann, bob = Client(port), Client(port)
            ann.login("ann")
            bob.login("bob")
            idle_rss = rss_kib(server.pid)
            cpu0, client0 = cpu_seconds(server.pid), time.process_time()
            up_seconds, file_id = upload(ann, source, size, sha256)
            bob.expect("file_offer")
            cpu1, client1 = cpu_seconds(server.pid), time.process_time()
            after_upload_peak = peak_rss_kib(server.pid)
            down_seconds, got_sha = download(bob, file_id, work / "downloaded.bin")
            cpu2, client2 = cpu_seconds(server.pid), time.process_time()
            peak = peak_rss_kib(server.pid)
            assert got_sha == sha256, "the downloaded file differs from the uploaded one"
            os.remove(work / "downloaded.bin")
        finally:
            server.stdin.close()
            server.wait(30)
        plain_send, plain_recv = plain_copy(source, size, work)

    print(f"file: {args.mib} MiB ({size} bytes), chunks of {CHUNK // 1024} KiB, server pid in its own process, loopback")
    print(f"{'':28}{'seconds':>9}{'MB/s':>10}{'vs plain':>10}")
    for label, seconds, plain in [("chatcore upload", up_seconds, plain_send),
                                  ("chatcore download", down_seconds, plain_recv),
                                  ("plain socket copy (send)", plain_send, plain_send),
                                  ("plain socket copy (recv)", plain_recv, plain_recv)]:
        print(f"{label:28}{seconds:9.2f}{mb / seconds:10.1f}{plain / seconds:10.3f}")
    print(f"server RSS: {idle_rss / 1024:.1f} MiB when idle after login; peak {after_upload_peak / 1024:.1f} MiB "
          f"through the upload, {peak / 1024:.1f} MiB through the download (VmHWM)")
    print(f"CPU seconds, server / client: upload {cpu1 - cpu0:.2f} / {client1 - client0:.2f}, "
          f"download {cpu2 - cpu1:.2f} / {client2 - client1:.2f} ({os.cpu_count()} CPUs)")
    print("download verified: SHA-256 matches")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
