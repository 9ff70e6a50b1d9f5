"""The in-memory state of unfinished uploads: bytes held, running SHA-256, activity, idleness.

One record per upload, made on first use; its bytes held and hash are loaded from the spool
file only when a chunk or a resume needs them, so a restart costs nothing until an upload goes
on. Each record has its own lock, held while its bytes change.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from chatcore_filexfer.index import Entry
from chatcore_filexfer.spool import Spool


@dataclass
class UploadState:
    """In-memory state of an upload in progress: its lock, bytes received, running hash, activity."""

    entry: Entry
    lock: threading.RLock = field(default_factory=threading.RLock)
    received: int = -1  # -1: not loaded from disk yet
    digest: Any = None
    touched: float = 0.0  # when its last chunk (or the offer) arrived
    recorded: float = 0.0  # the activity time last written to the index, which lags behind
    idle: bool = False  # no chunk for offer_timeout: it reserves only what it holds
    closed: bool = False  # finished or removed: no more writes


class UploadStates:
    """The records by upload_id; thread-safe."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._lock = threading.Lock()
        self._by_id: dict[str, UploadState] = {}

    def get(self, upload_id: str) -> Optional[UploadState]:
        with self._lock:
            return self._by_id.get(upload_id)

    def pop(self, upload_id: str) -> Optional[UploadState]:
        """Forget an upload (finished or removed)."""
        with self._lock:
            return self._by_id.pop(upload_id, None)

    def discard(self, state: UploadState) -> None:
        """Forget ``state`` if it is still the upload's record (one made for an upload that is gone)."""
        with self._lock:
            if self._by_id.get(state.entry.upload_id) is state:
                del self._by_id[state.entry.upload_id]

    def add(self, entry: Entry, now: float) -> UploadState:
        """The record of an upload just offered: nothing received yet."""
        state = UploadState(entry, received=0, digest=hashlib.sha256(), touched=now, recorded=now)
        with self._lock:
            self._by_id[entry.upload_id] = state
        return state

    def slot(self, entry: Entry) -> UploadState:
        """The record of an unfinished upload, made (not yet loaded from disk) the first time."""
        with self._lock:
            state = self._by_id.get(entry.upload_id)
            if state is None:
                state = self._by_id[entry.upload_id] = UploadState(entry, touched=entry.touched,
                                                                   recorded=entry.touched,
                                                                   idle=entry.held is not None)
        return state

    def loaded(self, entry: Entry) -> UploadState:
        """The record with bytes held and hash loaded from disk (read the first time, or after a
        failed write left the length unknown)."""
        state = self.slot(entry)
        with state.lock:
            if state.received < 0:
                held = self._spool.size(entry.spool_name) or 0
                if held > entry.size:  # cannot happen through append(); never trust it
                    held = 0
                state.digest = self._spool.hash_prefix(entry.spool_name, held)
                state.received = held
        return state
