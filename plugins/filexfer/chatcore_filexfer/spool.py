"""The spool directory: file bodies stored under server-generated names, written by append.

Only ids made by ``new_name`` are ever joined to the spool path, so nothing a client sends
can name a file. Nothing here reads a whole file into memory.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

READ_CHUNK = 1 << 20  # bytes per read when hashing a stored file
_NAME = re.compile(r"[0-9a-f]{32}")


class SpoolError(Exception):
    """A spool write failed; ``full`` is True when the disk (or its quota) is out of space.
    A shared store (``largeobjects``) also says ``held`` (the stored length, when another node
    wrote meanwhile), ``gone`` (the upload was finished or removed) or ``idle`` (another node made
    it idle: it must be made active again first)."""

    def __init__(self, reason: str, full: bool = False, held: Optional[int] = None, gone: bool = False,
                 idle: bool = False) -> None:
        super().__init__(reason)
        self.full, self.held, self.gone, self.idle = full, held, gone, idle


class Spool:
    """File bodies under ``root``, one file per upload, named by a random hex id."""

    shared = False  # one node's files: its memory of an upload (length, running hash) is the truth

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    @staticmethod
    def new_name() -> str:
        """A fresh server-generated file name (32 hex digits)."""
        return uuid.uuid4().hex

    def path(self, name: str) -> Path:
        """The path of spool file ``name``; refuses anything that is not a generated id."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"not a spool name: {name!r}")
        return self.root / name

    def create(self, name: str) -> None:
        """Create an empty file for a new upload (fails if it somehow exists)."""
        fd = os.open(self.path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)

    def size(self, name: str) -> Optional[int]:
        """Bytes stored for ``name``, or None if the file is missing."""
        try:
            return self.path(name).stat().st_size
        except FileNotFoundError:
            return None

    def append(self, name: str, offset: int, data: bytes, touched: Optional[float] = None) -> int:
        """Write ``data`` at ``offset``, which must be the current end; returns the new size.
        (``touched`` is for a shared store, which records the chunk's time; the index does here.)

        On any failure the file is cut back to ``offset``, so a full disk never leaves a
        half-written chunk behind; raises SpoolError.
        """
        path = self.path(name)
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError as exc:
            raise SpoolError(f"cannot open spool file: {exc.strerror}") from None
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            if end != offset:
                raise SpoolError(f"spool file holds {end} bytes, not {offset}")
            view = memoryview(data)
            while view:
                written = self._write(fd, view)
                view = view[written:]
            return offset + len(data)
        except OSError as exc:
            try:
                os.ftruncate(fd, offset)
            except OSError:
                pass
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            raise SpoolError("the server's disk is full" if full else f"write failed: {exc.strerror}", full) from None
        finally:
            os.close(fd)

    @staticmethod
    def _write(fd: int, data: memoryview) -> int:
        """One ``os.write`` (a separate method so tests can simulate a full disk)."""
        return os.write(fd, data)

    def open(self, name: str) -> BinaryIO:
        """Open a stored file for reading (unbuffered reads of the size asked for)."""
        return open(self.path(name), "rb", buffering=0)

    def hash_prefix(self, name: str, length: int) -> "hashlib._Hash":
        """A SHA-256 object fed the first ``length`` bytes of ``name``, read in 1 MiB pieces."""
        digest = hashlib.sha256()
        with self.open(name) as fh:
            left = length
            while left > 0:
                piece = fh.read(min(READ_CHUNK, left))
                if not piece:
                    break
                digest.update(piece)
                left -= len(piece)
        return digest

    def remove(self, name: str) -> None:
        """Delete ``name``; a file already gone is fine."""
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            pass

    def names(self) -> Iterator[str]:
        """The generated names present in the spool (anything else there is ignored)."""
        for entry in os.scandir(self.root):
            if entry.is_file(follow_symlinks=False) and _NAME.fullmatch(entry.name):
                yield entry.name

    def remove_strays(self) -> int:
        """Nothing between starts: one node owns this spool, and ``FileService.reconcile`` deletes
        files no row names when it starts (only a crash leaves one)."""
        return 0

    def used_bytes(self) -> int:
        """Bytes the spool's files occupy (for diagnostics and tests)."""
        return sum((self.root / name).stat().st_size for name in self.names())
