"""Expiry and idleness, the sweep half of ``service.FileService``: files past their expiry and
uploads idle past the partial timeout are deleted; uploads without a chunk for the offer timeout
stop reserving what they lack. Every deletion is conditional on the row, so when several nodes
of a cluster sweep at once each entry is deleted, and reported, by exactly one of them.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Callable, Union

from chatcore_filexfer.diskfull import DiskFullLog, is_disk_full
from chatcore_filexfer.index import UPLOADING, Entry, Index
from chatcore_filexfer.limits import Limits
from chatcore_filexfer.spool import Spool
from chatcore_filexfer.uploads import UploadStates

if TYPE_CHECKING:
    from chatcore_filexfer.largeobjects import LargeObjectSpool
    from chatcore_filexfer.pgindex import PgIndex

log = logging.getLogger(__name__)


class Expiry:
    """The sweep, mixed into ``FileService`` (which provides the attributes and ``remove``)."""

    limits: Limits
    clock: Callable[[], float]
    index: "Union[Index, PgIndex]"
    spool: "Union[Spool, LargeObjectSpool]"
    uploads: UploadStates
    disk_full: DiskFullLog

    def remove(self, entry: Entry) -> bool:
        raise NotImplementedError

    def sweep(self) -> list[Entry]:
        """Delete files past their expiry and uploads idle past the partial timeout, and make uploads
        without a chunk for the offer timeout idle (deleting those that hold nothing); returns the deleted."""
        now = self.clock()
        candidates = self.index.expired(now - self.limits.expiry, now - self.limits.partial_timeout,
                                        now - self.limits.delivered_keep)
        gone = [entry for entry in candidates
                if self._still_expired(entry, now) and self._sweep_one(self.remove, entry)]
        gone += [entry for entry in self.index.going_idle(now - self.limits.offer_timeout)
                 if self._sweep_one(lambda e: self._idle_out(e, now), entry)]
        self._forget_finished_elsewhere()
        if self.spool.remove_strays():
            log.warning("filexfer: unlinked stored bytes no index row named (a node stopped half-way)")
        for entry in gone:
            log.info("filexfer: %s %s from %s to %s (%d bytes) expired", entry.state, entry.upload_id,
                     entry.sender, entry.recipient, entry.size)
        return gone

    def _forget_finished_elsewhere(self) -> None:
        """Drop this node's records of uploads another node finished or removed (shared store),
        so memory holds only what may still go on."""
        if not self.spool.shared:
            return
        known = self.uploads.ids()
        live = self.index.unfinished(known) if known else set()
        for upload_id in known:
            state = self.uploads.get(upload_id)
            if upload_id in live or state is None:
                continue
            with state.lock:
                state.closed = True
                self.uploads.discard(state)

    def _sweep_one(self, action: Callable[[Entry], bool], entry: Entry) -> bool:
        """Run one sweep step; a full disk skips the entry (the next sweep tries again), not the sweep."""
        try:
            return action(entry)
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc):
                raise
            self.disk_full.failed(f"sweeping {entry.upload_id}")
            return False

    def _still_expired(self, entry: Entry, now: float) -> bool:
        """Re-check a partial upload against its in-memory activity time (the row lags behind)."""
        if entry.state != UPLOADING:
            return True
        state = self.uploads.get(entry.upload_id)
        touched = max(entry.touched, state.touched if state is not None else 0.0)
        return touched < now - self.limits.partial_timeout

    def _idle_out(self, entry: Entry, now: float) -> bool:
        """An upload without a chunk for the offer timeout stops reserving what it lacks: it counts
        at the bytes it holds from now on, or is deleted if it holds none. True if it was deleted."""
        state = self.uploads.slot(entry)
        with state.lock:
            if state.closed or state.idle or state.touched >= now - self.limits.offer_timeout:
                return False
            current = self.index.by_upload(entry.upload_id)
            if current is None or current.state != UPLOADING:  # finished or removed since the query
                self.uploads.discard(state)
                return False
            stale = state.received < 0 or self.spool.shared  # another node may have written since
            held = (self.spool.size(entry.spool_name) or 0) if stale else state.received
            if held == 0:
                return self.remove(entry)
            self.index.set_held(entry.upload_id, held)
            state.idle = True
            return False
