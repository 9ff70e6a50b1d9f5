"""The in-memory state of unfinished uploads: bytes held, running SHA-256, activity, idleness.

One record per upload, made on first use; its bytes held and hash are loaded from the spool
file only when a chunk or a resume needs them, so a restart costs nothing until an upload goes
on. Each record has its own lock, held while its bytes change. With a shared store (cluster
mode: another node may have written since) no running hash is kept, the SHA-256 is read back
from the store at the end, and ``refresh`` re-reads a record from its row and the store.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Union

from chatcore_filexfer.index import Entry
from chatcore_filexfer.spool import Spool

if TYPE_CHECKING:
    from chatcore_filexfer.largeobjects import LargeObjectSpool


@dataclass
class UploadState:
    """In-memory state of an upload in progress: its lock, bytes received, running hash, activity."""

    entry: Entry
    lock: threading.RLock = field(default_factory=threading.RLock)
    received: int = -1  # -1: not loaded from disk yet
    digest: Any = None  # None with a shared store: the hash is read back from it at the end
    touched: float = 0.0  # when its last chunk (or the offer) arrived
    recorded: float = 0.0  # the activity time last written to the index, which lags behind
    idle: bool = False  # no chunk for offer_timeout: it reserves only what it holds
    closed: bool = False  # finished or removed: no more writes


class UploadStates:
    """The records by upload_id; thread-safe."""

    def __init__(self, spool: "Union[Spool, LargeObjectSpool]") -> None:
        self._spool = spool
        self._lock = threading.Lock()
        self._by_id: dict[str, UploadState] = {}

    def get(self, upload_id: str) -> Optional[UploadState]:
        with self._lock:
            return self._by_id.get(upload_id)

    def ids(self) -> list[str]:
        """The upload_ids with a record."""
        with self._lock:
            return list(self._by_id)

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
        digest = None if self._spool.shared else hashlib.sha256()
        state = UploadState(entry, received=0, digest=digest, touched=now, recorded=now)
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
                if not self._spool.shared:
                    state.digest = self._spool.hash_prefix(entry.spool_name, held)
                state.received = held
        return state

    def refresh(self, entry: Entry) -> UploadState:
        """The record re-read from ``entry`` (a fresh row) and the store: with a shared store another
        node may have written chunks or made the upload idle since this node last saw it."""
        state = self.slot(entry)
        with state.lock:
            if self._spool.shared and not state.closed:
                state.entry, state.received, state.idle = entry, -1, entry.held is not None
                state.touched = max(state.touched, entry.touched)
        return self.loaded(entry)
