"""An incoming file: written to a hidden temporary file and moved into place only once its size
and SHA-256 are checked."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
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
