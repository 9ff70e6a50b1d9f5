"""An incoming file: written to a hidden temporary file and moved into place only once its size
and SHA-256 are checked; and the streams of cancelled downloads, whose rest is dropped."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from chatcore_client.progress import Meter, ProgressFn, TransferFailed


class Download:
    """One incoming file, written to a hidden temporary file and renamed only once verified.

    A download cut off by a disconnect keeps its partial file and asks again from there.
    """

    def __init__(self, offer: dict[str, Any], dest: Path, progress: Optional[ProgressFn] = None) -> None:
        self.file_id: str = str(offer["file_id"])
        self.filename: str = str(offer.get("filename", "file"))
        self.peer: str = str(offer.get("peer", ""))
        self.size: int = int(offer["size"])
        self.sha256: str = str(offer["sha256"]).lower()
        self.dest = Path(dest)
        self.tag = ""
        self.written = 0
        self.requests: list[int] = []  # the offset of every file_download sent
        self._progress = progress
        self._digest = hashlib.sha256()
        self._meter = Meter(self.size)
        fd, name = tempfile.mkstemp(prefix=f".{self.dest.name}.", suffix=".part", dir=self.dest.parent)
        self._tmp = Path(name)
        self._out = os.fdopen(fd, "wb")

    @property
    def temp_path(self) -> Path:
        return self._tmp

    def request(self) -> dict[str, Any]:
        """The ``file_download`` command that starts (or resumes) the stream."""
        self.requests.append(self.written)
        command: dict[str, Any] = {"command": "file_download", "file_id": self.file_id}
        if self.written:
            command["offset"] = self.written
        return command

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


class StoppedStreams:
    """Cancelled downloads whose stream may still be arriving: their ``file_data``, ``file_data_end``
    and errors are dropped. A server with ``file_download_cancel`` answers when the stream has
    stopped (nothing of it follows the answer); on one without, the stream runs to its end."""

    def __init__(self) -> None:
        self._asked: Counter[str] = Counter()  # file_id -> file_download_cancel requests not answered yet
        self._until_end: set[str] = set()  # streams that run to their file_data_end

    def __contains__(self, file_id: object) -> bool:
        return file_id in self._asked or file_id in self._until_end

    def stopped(self, file_id: str, asked: bool) -> None:
        """A download was cancelled while streaming; ``asked``: file_download_cancel was sent."""
        if asked:
            self._asked[file_id] += 1
        else:
            self._until_end.add(file_id)

    def answered(self, message: dict[str, Any]) -> None:
        """The answer to file_download_cancel: its result means the stream has stopped; an error
        (``rate_limited``, say; it names the file by ``client_id``) that it runs to its end."""
        file_id = str(message.get("file_id") or message.get("client_id") or "")
        left = self._asked.pop(file_id, 0) - 1
        if left > 0:
            self._asked[file_id] = left
        if message.get("type") == "error":
            self._until_end.add(file_id)

    def drops(self, message: dict[str, Any]) -> bool:
        """Whether ``message`` belongs to a stopped stream (then it is dropped); a file_data_end ends
        a stream the server was not asked to stop, never one it will answer for."""
        file_id = str(message.get("file_id"))
        if file_id not in self:
            return False
        if message.get("type") == "file_data_end":
            self._until_end.discard(file_id)
        return True

    def restarted(self, file_id: str) -> None:
        """The file is asked for again: a server without file_download_cancel replaces the old
        stream, so only an answer still due for it keeps its frames dropped."""
        self._until_end.discard(file_id)

    def clear(self) -> None:
        """A new connection: nothing of the old one's streams arrives on it."""
        self._asked.clear()
        self._until_end.clear()
