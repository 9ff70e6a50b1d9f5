"""File transfers (PROTOCOL.md §2.4) as small state machines, shared by the GUI and scripts.

An ``Upload`` hashes and streams from a worker thread (the caller's thread stays free); a
``Download`` is fed ``file_data`` messages by whoever reads the connection and checks size and
SHA-256 before the file appears under its final name. ``Transfers`` routes replies to them.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Deque, Optional

log = logging.getLogger(__name__)

CHUNK_SIZE = 32 * 1024  # PROTOCOL.md §2.4: at most 32 KiB of raw bytes per chunk
Send = Callable[[dict[str, Any]], None]


class TransferFailed(Exception):
    """A transfer could not complete; the message is for the user."""


@dataclass(frozen=True)
class Progress:
    """Bytes done of total and the average speed so far."""

    done: int
    total: int
    rate: float  # bytes per second

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


ProgressFn = Callable[[Progress], None]


def human_size(size: float) -> str:
    """``1.5 MB`` style sizes for people (decimal units, like file managers)."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


class Meter:
    """Turns byte counts into Progress with a speed measured from the first byte."""

    def __init__(self, total: int, start_at: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.base, self.clock = total, start_at, clock
        self.started = clock()

    def at(self, done: int) -> Progress:
        elapsed = max(self.clock() - self.started, 1e-6)
        return Progress(done, self.total, (done - self.base) / elapsed)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Upload:
    """One outgoing file: ``begin`` hashes and offers it, ``ready`` streams the chunks.

    Both run in worker threads; ``progress`` and ``finished`` are called from them (a GUI
    must hand them to its own thread). ``finished(upload, error)`` runs once: error is None
    when the server confirmed the file (``file_id`` set).
    """

    def __init__(self, path: Path, peer: str, progress: Optional[ProgressFn] = None,
                 finished: Optional[Callable[["Upload", Optional[str]], None]] = None) -> None:
        self.path, self.peer = Path(path), peer
        self.filename = self.path.name
        self.size = self.path.stat().st_size
        self.sha256 = ""
        self.upload_id: Optional[str] = None
        self.file_id: Optional[str] = None
        self.error: Optional[str] = None
        self.done = threading.Event()
        self._progress, self._finished = progress, finished
        self._cancelled = threading.Event()

    def __repr__(self) -> str:
        return f"<Upload {self.filename!r} to {self.peer} {self.upload_id or 'unoffered'}>"

    def offer(self) -> dict[str, Any]:
        """Hash the file and build the ``file_upload`` command (in the caller's thread)."""
        self.sha256 = sha256_file(self.path)
        return {"command": "file_upload", "peer": self.peer, "filename": self.filename, "size": self.size,
                "sha256": self.sha256}

    def stream(self, send: Send, offset: int, chunk_size: int) -> None:
        """Send every chunk from ``offset`` then ``file_upload_done`` (in the caller's thread)."""
        assert self.upload_id is not None
        chunk_size = max(1, min(chunk_size or CHUNK_SIZE, CHUNK_SIZE))
        meter = Meter(self.size, offset)
        with self.path.open("rb") as source:
            source.seek(offset)
            position = offset
            while position < self.size:
                if self._cancelled.is_set():
                    send({"command": "file_cancel", "upload_id": self.upload_id})
                    self.fail("Cancelled.")
                    return
                data = source.read(min(chunk_size, self.size - position))
                if not data:
                    raise TransferFailed(f"{self.filename} shrank while it was being sent")
                send({"command": "file_chunk", "upload_id": self.upload_id, "offset": position,
                      "data": base64.b64encode(data).decode("ascii")})
                position += len(data)
                if self._progress:
                    self._progress(meter.at(position))
        send({"command": "file_upload_done", "upload_id": self.upload_id})

    def cancel(self) -> None:
        """Stop sending chunks; the server is told to drop what it has."""
        self._cancelled.set()

    def complete(self, file_id: str) -> None:
        """The server holds the whole file with the right hash."""
        self.file_id = file_id
        self._end(None)

    def fail(self, reason: str) -> None:
        """The transfer ended without the file on the server."""
        self._end(reason)

    def _end(self, error: Optional[str]) -> None:
        if self.done.is_set():
            return
        self.error = error
        self.done.set()
        if self._finished:
            self._finished(self, error)


class Download:
    """One incoming file, written to a hidden temporary file and renamed only once verified."""

    def __init__(self, offer: dict[str, Any], dest: Path, progress: Optional[ProgressFn] = None) -> None:
        self.file_id: str = str(offer["file_id"])
        self.filename: str = str(offer.get("filename", "file"))
        self.peer: str = str(offer.get("peer", ""))
        self.size: int = int(offer["size"])
        self.sha256: str = str(offer["sha256"]).lower()
        self.dest = Path(dest)
        self.written = 0
        self._progress = progress
        self._digest = hashlib.sha256()
        self._meter = Meter(self.size)
        fd, name = tempfile.mkstemp(prefix=f".{self.dest.name}.", suffix=".part", dir=self.dest.parent)
        self._tmp = Path(name)
        self._out = os.fdopen(fd, "wb")

    def request(self) -> dict[str, Any]:
        """The ``file_download`` command that starts the stream."""
        return {"command": "file_download", "file_id": self.file_id}

    def data(self, message: dict[str, Any]) -> None:
        """Append one ``file_data`` chunk; chunks must arrive in order."""
        if message.get("offset") != self.written:
            self.abort()
            raise TransferFailed(f"{self.filename}: data arrived out of order "
                                 f"(offset {message.get('offset')}, expected {self.written})")
        try:
            raw = base64.b64decode(message.get("data", ""), validate=True)
        except (binascii.Error, ValueError):
            self.abort()
            raise TransferFailed(f"{self.filename}: the server sent undecodable data") from None
        if self.written + len(raw) > self.size:
            self.abort()
            raise TransferFailed(f"{self.filename}: more data than the announced {self.size} bytes")
        self._out.write(raw)
        self._digest.update(raw)
        self.written += len(raw)
        if self._progress:
            self._progress(self._meter.at(self.written))

    def end(self, message: dict[str, Any]) -> Path:
        """``file_data_end``: check size and SHA-256, then move the file into place."""
        self._out.close()
        actual = self._digest.hexdigest()
        if self.written != self.size or message.get("size", self.size) != self.size:
            self.abort()
            raise TransferFailed(f"{self.filename}: received {self.written} of {self.size} bytes")
        if actual != self.sha256 or str(message.get("sha256", actual)).lower() != actual:
            self.abort()
            raise TransferFailed(f"{self.filename}: the SHA-256 does not match; the damaged file was deleted")
        os.replace(self._tmp, self.dest)
        return self.dest

    def abort(self) -> None:
        """Delete the partial file."""
        if not self._out.closed:
            self._out.close()
        self._tmp.unlink(missing_ok=True)


class Transfers:
    """Routes ``file_*`` replies to the uploads and downloads of one connection.

    Replies to ``file_upload`` carry no token of ours, but the server answers a connection's
    commands in order, so offers wait in a FIFO that is filled in the same critical section as
    the send.
    """

    def __init__(self, send: Send) -> None:
        self.send = send
        self._lock = threading.Lock()
        self._offered: Deque[Upload] = collections.deque()
        self.uploads: dict[str, Upload] = {}
        self.downloads: dict[str, Download] = {}

    def start_upload(self, upload: Upload) -> threading.Thread:
        """Hash and offer in a worker thread; returns it (already started)."""
        def run() -> None:
            try:
                command = upload.offer()
                with self._lock:
                    self.send(command)
                    self._offered.append(upload)
            except Exception as exc:  # unreadable file, lost connection
                log.warning("offering %s failed: %s", upload.filename, exc)
                upload.fail(str(exc))
        thread = threading.Thread(target=run, daemon=True, name=f"chatcore-upload-{upload.filename}")
        thread.start()
        return thread

    def upload_ready(self, message: dict[str, Any]) -> Optional[Upload]:
        """``file_upload_ready``: stream the oldest offered upload in a worker thread."""
        with self._lock:
            upload = self._offered.popleft() if self._offered else None
        if upload is None:
            return None
        upload.upload_id = str(message["upload_id"])
        self.uploads[upload.upload_id] = upload

        def run() -> None:
            try:
                upload.stream(self.send, int(message.get("offset", 0)), int(message.get("chunk_size", CHUNK_SIZE)))
            except Exception as exc:
                log.warning("sending %s failed: %s", upload.filename, exc)
                upload.fail(str(exc))
        threading.Thread(target=run, daemon=True, name=f"chatcore-upload-{upload.upload_id}").start()
        return upload

    def uploaded(self, message: dict[str, Any]) -> Optional[Upload]:
        """``file_uploaded``: the server verified the hash."""
        upload = self.uploads.pop(str(message.get("upload_id")), None)
        if upload is not None:
            upload.complete(str(message["file_id"]))
        return upload

    def error(self, message: dict[str, Any]) -> Optional[Download | Upload]:
        """An ``error`` for a file command: fail the transfer it names; None if it names none."""
        command = message.get("command")
        reason = str(message.get("reason") or message.get("code") or "failed")
        if command == "file_upload":
            with self._lock:
                upload = self._offered.popleft() if self._offered else None
            if upload is not None:
                upload.fail(reason)
            return upload
        if "upload_id" in message:
            upload = self.uploads.pop(str(message["upload_id"]), None)
            if upload is not None:
                upload.cancel()
                upload.fail(reason)
            return upload
        if "file_id" in message:
            download = self.downloads.pop(str(message["file_id"]), None)
            if download is not None:
                download.abort()
            return download
        return None

    def start_download(self, download: Download) -> None:
        """Ask the server to stream a file into ``download``."""
        self.downloads[download.file_id] = download
        self.send(download.request())

    def data(self, message: dict[str, Any]) -> Optional[Download]:
        """``file_data`` for a download in progress (raises TransferFailed and forgets it on bad data)."""
        download = self.downloads.get(str(message.get("file_id")))
        if download is not None:
            try:
                download.data(message)
            except TransferFailed:
                self.downloads.pop(download.file_id, None)
                raise
        return download

    def data_end(self, message: dict[str, Any]) -> tuple[Optional[Download], Optional[Path]]:
        """``file_data_end``: verify and place the file, then tell the server it may delete its copy."""
        download = self.downloads.pop(str(message.get("file_id")), None)
        if download is None:
            return None, None
        path = download.end(message)
        self.send({"command": "file_received", "file_id": download.file_id})
        return download, path

    def abort_all(self, reason: str) -> None:
        """The connection is gone: fail every transfer in flight."""
        with self._lock:
            offered, self._offered = list(self._offered), collections.deque()
        for upload in [*offered, *self.uploads.values()]:
            upload.cancel()
            upload.fail(reason)
        for download in self.downloads.values():
            download.abort()
        self.uploads.clear()
        self.downloads.clear()
