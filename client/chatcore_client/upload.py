"""An outgoing file: hashed, then streamed in chunks from a worker thread, paused by a disconnect
and resumed from the offset the server holds."""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
from pathlib import Path
from typing import Any, Callable, Optional

from chatcore.protocol import CHUNK_SIZE
from chatcore_client.progress import Meter, ProgressFn, TransferFailed

Send = Callable[[dict[str, Any]], None]
_client_ids = itertools.count(1)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Upload:
    """One outgoing file: ``offer`` hashes it, ``stream`` sends the chunks from an offset.

    Both run in worker threads; ``progress`` and ``finished`` are called from them (a GUI
    must hand them to its own thread). ``finished(upload, error)`` runs once: error is None
    when the server confirmed the file (``file_id`` set). An upload cut off by a disconnect is
    *paused*, not failed: offering it again resumes from the bytes the server holds, and one
    whose ``file_upload_done`` went out sends that again instead (the lost reply may have been
    ``file_uploaded``: offering anew would make a second file).
    """

    def __init__(self, path: Path, peer: str, progress: Optional[ProgressFn] = None,
                 finished: Optional[Callable[["Upload", Optional[str]], None]] = None) -> None:
        self.path, self.peer = Path(path), peer
        self.filename = self.path.name
        self.size = self.path.stat().st_size
        self.sha256 = ""
        self.client_id = f"up-{next(_client_ids)}"
        self.tag = ""  # the caller's name for it (the GUI's transfer window)
        self.upload_id: Optional[str] = None
        self.file_id: Optional[str] = None
        self.error: Optional[str] = None
        self.done = threading.Event()
        self.streams: list[tuple[int, int]] = []  # (offset the server said it held, bytes sent from there)
        self._progress, self._finished = progress, finished
        self._lock = threading.Lock()
        self._generation = 0  # bumped to stop the running stream (pause, cancel, restart)
        self._streaming = False
        self.cancelled = False
        self.finishing = False  # file_upload_done was sent and not answered yet

    def __repr__(self) -> str:
        return f"<Upload {self.filename!r} to {self.peer} {self.upload_id or 'unoffered'}>"

    def offer(self) -> dict[str, Any]:
        """Hash the file and build the ``file_upload`` command (in the caller's thread)."""
        self.size = self.path.stat().st_size
        self.sha256 = sha256_file(self.path)
        return {"command": "file_upload", "peer": self.peer, "filename": self.filename, "size": self.size,
                "sha256": self.sha256, "client_id": self.client_id}

    def claim_stream(self) -> int:
        """Stop any running stream and return the generation a new one must run under."""
        with self._lock:
            self._generation += 1
            return self._generation

    def stream(self, send: Send, offset: int, chunk_size: int, generation: int) -> None:
        """Send every chunk from ``offset`` then ``file_upload_done``, until the generation changes."""
        assert self.upload_id is not None
        upload_id = self.upload_id
        chunk_size = max(1, min(chunk_size or CHUNK_SIZE, CHUNK_SIZE))
        meter = Meter(self.size, offset)
        with self._lock:
            self._streaming = True
        self.finishing = False
        self.streams.append((offset, 0))
        try:
            with self.path.open("rb") as source:
                source.seek(offset)
                position = offset
                while position < self.size:
                    if not self._still(generation, send, upload_id):
                        return
                    data = source.read(min(chunk_size, self.size - position))
                    if not data:
                        raise TransferFailed(f"{self.filename} shrank while it was being sent")
                    send({"command": "file_chunk", "upload_id": upload_id, "offset": position,
                          "data": base64.b64encode(data).decode("ascii")})
                    position += len(data)
                    self.streams[-1] = (offset, position - offset)
                    if self._progress:
                        self._progress(meter.at(position))
                if self._still(generation, send, upload_id):
                    self.finishing = True
                    send({"command": "file_upload_done", "upload_id": upload_id})
        finally:
            with self._lock:
                if self._generation == generation:
                    self._streaming = False

    def _still(self, generation: int, send: Send, upload_id: str) -> bool:
        """Whether this stream should go on; a cancelled one tells the server first."""
        with self._lock:
            if self._generation != generation:
                return False
            if not self.cancelled:
                return True
            self._streaming = False
        send({"command": "file_cancel", "upload_id": upload_id})
        return False

    def cancel(self) -> bool:
        """Stop sending; True when the caller must send ``file_cancel`` (no stream will)."""
        with self._lock:
            self.cancelled = True
            return not self._streaming

    def pause(self) -> None:
        """The connection is gone: stop streaming and forget the server's upload id until it is
        offered again, unless file_upload_done went out (that is asked again, by upload id)."""
        self.claim_stream()
        with self._lock:
            self._streaming = False
        if not self.finishing:
            self.upload_id = None

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
