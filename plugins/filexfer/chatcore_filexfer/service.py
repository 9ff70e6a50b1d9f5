"""Store-and-forward transfers: offers, chunked uploads, verification, downloads, expiry.

No sockets and no pluggy here: callers pass user names in and get index entries back; the
plugin turns them into replies and events. The spool file's length is the truth about how
much of an upload has arrived, so a resume after a crash or restart starts from what is
really on disk; the SHA-256 is kept incrementally in memory and rebuilt from disk when
needed. An unfinished upload reserves its declared size only while chunks keep coming: after
``offer_timeout`` without one it goes idle and counts only what it holds (deleted if nothing).

In cluster mode the index is ``pgindex.PgIndex`` and the bodies ``largeobjects.LargeObjectSpool``
(``shared``): then the stored length is the truth, a resume re-reads the upload's state from
PostgreSQL, and the SHA-256 is computed by reading the stored bytes back when the upload ends.
"""

from __future__ import annotations

import binascii
import logging
import re
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from chatcore import protocol
from chatcore.errors import CommandError
from chatcore_filexfer.diskfull import DiskFullLog, is_disk_full
from chatcore_filexfer.expiry import Expiry
from chatcore_filexfer.index import READY, UPLOADING, Entry, Index
from chatcore_filexfer.limits import Limits
from chatcore_filexfer.names import sanitize_filename
from chatcore_filexfer.quota import refusal
from chatcore_filexfer.spool import Spool, SpoolError
from chatcore_filexfer.uploads import UploadState, UploadStates

if TYPE_CHECKING:  # cluster mode's; imported only then (psycopg)
    from chatcore_filexfer.largeobjects import LargeObjectSpool
    from chatcore_filexfer.pgindex import PgIndex

log = logging.getLogger(__name__)

Clock = Callable[[], float]
INDEX_FILE = "index.sqlite3"  # in <data>/filexfer/, beside the spool directory
SPOOL_DIR = "spool"
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_ID = re.compile(r"[0-9a-f]{32}")


def offer_fields(entry: Entry) -> dict[str, Any]:
    """The description of a waiting file that ``file_offer`` and ``file_list`` carry."""
    return {"file_id": entry.file_id, "peer": entry.sender, "filename": entry.filename,
            "size": entry.size, "sha256": entry.sha256, "ts": protocol.timestamp(int((entry.completed or entry.created) * 1000))}


def max_encoded(raw: int) -> int:
    """Length of the base64 text of ``raw`` bytes (with padding)."""
    return (raw + 2) // 3 * 4


class FileService(Expiry):
    """The spool, its index and the rules around them; one per server, thread-safe."""

    def __init__(self, root: Path, limits: Limits, clock: Clock,
                 store: Optional[tuple[PgIndex, LargeObjectSpool]] = None) -> None:
        """``store``: the cluster's (index, bodies); by default the SQLite index and spool under ``root``."""
        self.limits = limits
        self.clock = clock
        self.index: Union[Index, PgIndex]
        self.spool: Union[Spool, LargeObjectSpool]
        self._shared = store
        if store is None:
            self.spool, self.index = Spool(root / SPOOL_DIR), Index(root / INDEX_FILE)
        else:
            self.index, self.spool = store
        self.disk_full = DiskFullLog(root, clock)
        self._lock = threading.Lock()  # quota checks with the change they allow (insert, reactivation)
        self.uploads = UploadStates(self.spool)
        self._touch_every = min(60.0, limits.partial_timeout / 4, limits.offer_timeout / 4)

    def close(self) -> None:
        self.index.close()

    # -- startup ---------------------------------------------------------------------------

    def reconcile(self) -> tuple[int, int]:
        """Make spool and index agree after a crash: drop rows whose file is gone and files no
        row names. Returns (rows dropped, files deleted)."""
        if self._shared is not None:
            return self._reconcile_shared(*self._shared)
        known: set[str] = set()
        dropped = 0
        for entry in self.index.all():
            if self.spool.size(entry.spool_name) is None:
                self.index.delete(entry.upload_id)
                dropped += 1
            else:
                known.add(entry.spool_name)
        strays = [name for name in self.spool.names() if name not in known]
        for name in strays:
            self.spool.remove(name)
        if dropped or strays:
            log.warning("filexfer: dropped %d index row(s) without a file and %d stray spool file(s)",
                        dropped, len(strays))
        return dropped, len(strays)

    @staticmethod
    def _reconcile_shared(index: "PgIndex", blobs: "LargeObjectSpool") -> tuple[int, int]:
        """``reconcile`` for the cluster's store, one query each way however many rows."""
        dropped = sum(index.delete(entry.upload_id) for entry in index.without_blob())
        strays = blobs.remove_strays()
        if dropped or strays:
            log.warning("filexfer: dropped %d index row(s) without stored bytes and unlinked %d large "
                        "object(s) no row named", dropped, strays)
        return dropped, strays

    # -- upload ----------------------------------------------------------------------------

    def offer(self, sender: str, recipient: str, filename: str, size: int, sha256: str) -> tuple[Entry, int]:
        """Start an upload (or find the unfinished one of the same content) -> (entry, offset held)."""
        if size < 0:
            raise CommandError("bad_request", "field 'size' must be 0 or more")
        if size > self.limits.max_size:
            raise CommandError("too_large", f"the file has {size} bytes; the limit is {self.limits.max_size}",
                                max_size=self.limits.max_size)
        if not _SHA256.fullmatch(sha256):
            raise CommandError("bad_request", "field 'sha256' must be 64 hexadecimal digits")
        sha256 = sha256.lower()
        sender_key, recipient_key = sender.casefold(), recipient.casefold()
        now = self.clock()
        existing = self.index.find_partial(sender_key, recipient_key, sha256, size)
        if existing is not None:  # resume: same sender, recipient and content
            return existing, self._resume(existing)
        entry = Entry(upload_id=uuid.uuid4().hex, file_id=None, spool_name=self.spool.new_name(),
                      sender=sender, sender_key=sender_key, recipient=recipient, recipient_key=recipient_key,
                      filename=sanitize_filename(filename), size=size, sha256=sha256, state=UPLOADING,
                      created=now, touched=now, completed=None)
        self._create(entry.spool_name)  # before the lock: in cluster mode the lock holds a pooled connection
        try:
            with self._lock, self.index.exclusive():
                self._check_room(sender_key, size, size, new_file=True)
                self.index.insert(entry)
        except BaseException:  # refused, a full disk (SQLITE_FULL) or worse: no file without its row
            self.spool.remove(entry.spool_name)
            raise
        self.uploads.add(entry, now)
        return entry, 0

    def _create(self, name: str) -> None:
        """The empty spool file (or large object) of a new upload; CommandError if it cannot be made."""
        try:
            self.spool.create(name)
        except OSError as exc:
            if is_disk_full(exc):
                raise CommandError("disk_full", "the server's disk is full; try again later") from None
            raise CommandError("storage_error", f"the server cannot store files now ({exc.strerror})") from None

    def _check_room(self, sender_key: str, size: int, needed: int, new_file: bool, **extra: Any) -> None:
        """CommandError ``quota`` unless the sender may make an upload of ``size`` declared bytes
        active, taking ``needed`` more bytes; call with ``_lock`` held, so check and change are one step."""
        reason = refusal(self.limits, self.index.usage(sender_key), size, needed, new_file)
        if reason is not None:
            raise CommandError("quota", reason, **extra)

    def _resume(self, entry: Entry) -> int:
        """The bytes an unfinished upload holds, for a resume. Offering again does not count as
        activity (it would keep a reservation alive without data); an idle upload must fit the
        quotas again for what it still lacks (its next chunk makes it active)."""
        state = self.uploads.refresh(entry)
        with state.lock:
            if state.idle and state.received < entry.size:
                with self._lock, self.index.exclusive():
                    self._check_room(entry.sender_key, entry.size, entry.size - state.received, new_file=False)
            return state.received

    def _own_upload(self, user: str, upload_id: str) -> tuple[Entry, UploadState]:
        """The uploading entry ``upload_id`` if ``user`` sent it; CommandError otherwise.
        Active uploads are answered from memory, so a chunk costs no database read."""
        state = self.uploads.get(upload_id)
        if state is None:
            entry = self.index.by_upload(upload_id) if _ID.fullmatch(upload_id) else None
            if entry is None or entry.state != UPLOADING:
                raise CommandError("unknown_upload", "no upload in progress has that upload_id",
                                    upload_id=protocol.echo(upload_id))
            state = self.uploads.loaded(entry)
        elif state.received < 0:  # a failed write left the length unknown: reload from disk
            state = self.uploads.loaded(state.entry)
        if state.entry.sender_key != user.casefold():
            raise CommandError("forbidden", "only the sender of an upload may write to it", upload_id=upload_id)
        return state.entry, state

    def write_chunk(self, user: str, upload_id: str, offset: int, data: str) -> int:
        """Append one base64 chunk at ``offset`` (which must equal the bytes held) -> bytes held."""
        entry, state = self._own_upload(user, upload_id)
        if len(data) > max_encoded(self.limits.chunk_size):
            raise CommandError("too_large", f"a chunk carries at most {self.limits.chunk_size} bytes",
                                upload_id=upload_id)
        try:
            raw = binascii.a2b_base64(data, strict_mode=True)
        except (binascii.Error, ValueError):
            raise CommandError("bad_request", "field 'data' is not valid base64", upload_id=upload_id) from None
        with state.lock:
            if state.closed:  # finished, swept or cancelled meanwhile
                raise CommandError("unknown_upload", "the upload was removed", upload_id=upload_id)
            if self.spool.shared and (offset != state.received or offset + len(raw) > entry.size):
                self._reload(entry, state)  # another node may have written, finished or removed it since
            if offset != state.received:
                raise CommandError("bad_offset", f"the server holds {state.received} bytes; "
                                    f"send the chunk at offset {state.received}",
                                    upload_id=upload_id, offset=state.received)
            if state.received + len(raw) > entry.size:
                raise CommandError("too_large", f"the chunk goes past the declared size of {entry.size} bytes",
                                    upload_id=upload_id, offset=state.received)
            now = self.clock()
            state.received = self._store(entry, state, offset, raw, now)
            if state.digest is not None:
                state.digest.update(raw)
            state.touched = now
            if self.spool.shared:
                state.recorded = now  # the store wrote the row's time with the chunk
            elif now - state.recorded >= self._touch_every:
                self._record(upload_id, state, now)
            return state.received

    def _store(self, entry: Entry, state: UploadState, offset: int, raw: bytes, now: float) -> int:
        """Write one chunk (``state.lock`` held), making an idle upload active first -> bytes held.
        A shared store also records the chunk's time, and refuses a chunk for an upload another
        node made idle: then it must fit the quotas again, as here."""
        upload_id = entry.upload_id
        for attempt in (1, 2):
            if state.idle:
                self._reactivate(entry, state)
            try:
                return self.spool.append(entry.spool_name, offset, raw, now)
            except SpoolError as exc:
                if exc.idle and attempt == 1:
                    state.idle = True
                    continue
                state.received = -1  # reload from disk next time: append() cut the file back
                if exc.gone:
                    raise CommandError("unknown_upload", "the upload was finished or removed",
                                       upload_id=upload_id) from None
                if exc.held is not None:
                    raise CommandError("bad_offset", f"the server holds {exc.held} bytes; send the chunk at "
                                       f"offset {exc.held}", upload_id=upload_id, offset=exc.held) from None
                code = "disk_full" if exc.full else "storage_error"
                raise CommandError(code, f"chunk not stored: {exc}", upload_id=upload_id, offset=offset) from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _reload(self, entry: Entry, state: UploadState) -> None:
        """Re-read a shared store's length for ``state`` (its lock held); CommandError
        ``unknown_upload`` when another node finished or removed the upload meanwhile."""
        current = self.index.by_upload(entry.upload_id)
        held = self.spool.size(entry.spool_name)
        if current is None or current.state != UPLOADING or held is None:
            state.closed = True
            self.uploads.discard(state)
            raise CommandError("unknown_upload", "the upload was finished or removed", upload_id=entry.upload_id)
        state.received = held

    def _record(self, upload_id: str, state: UploadState, now: float) -> None:
        """Write a chunk's time to the index; on a full disk the chunk still counts (the time is
        only bookkeeping, kept in memory and written with a later chunk)."""
        try:
            self.index.touch(upload_id, now)
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc):
                raise
            self.disk_full.failed("recording a chunk's time")
            return
        state.recorded = now

    def _reactivate(self, entry: Entry, state: UploadState) -> None:
        """A chunk for an idle upload: it reserves its declared size again, if the quotas allow
        (``state.lock`` held)."""
        with self._lock, self.index.exclusive():
            self._check_room(entry.sender_key, entry.size, entry.size - state.received, new_file=False,
                             upload_id=entry.upload_id, offset=state.received)
            self.index.set_held(entry.upload_id, None)
        state.idle = False
        state.recorded = float("-inf")  # record this chunk's time at once: the row's is from before

    def finish(self, user: str, upload_id: str) -> tuple[Entry, bool]:
        """Verify a complete upload's size and SHA-256 and make it a file offered to its recipient.
        Returns (the file, whether this call made it): asked again for an upload the sender already
        finished (a retry after a lost reply), it returns that file while it exists, made once."""
        try:
            entry, state = self._own_upload(user, upload_id)
        except CommandError as exc:
            done = self._finished_by(user, upload_id) if exc.code == "unknown_upload" else None
            if done is None:
                raise
            return done, False
        with state.lock:
            if state.closed:  # finished by another request meanwhile, or removed
                done = self._finished_by(user, upload_id)
                if done is None:
                    raise CommandError("unknown_upload", "the upload was removed", upload_id=upload_id)
                return done, False
            if self.spool.shared:  # the store's length and bytes, whichever node wrote them
                try:
                    self._reload(entry, state)
                except CommandError:
                    done = self._finished_by(user, upload_id)  # finished on another node: answer the same
                    if done is None:
                        raise
                    return done, False
            if state.received != entry.size:
                raise CommandError("incomplete", f"the server holds {state.received} of {entry.size} bytes",
                                    upload_id=upload_id, offset=state.received)
            if self._digest(entry, state) != entry.sha256:
                self.remove(entry)
                raise CommandError("bad_hash", "the data received does not match the sha256 offered; "
                                    "the upload was discarded, offer the file again", upload_id=upload_id)
            file_id = uuid.uuid4().hex
            if not self.index.complete(upload_id, file_id, self.clock()):
                self.uploads.pop(upload_id)
                done = self._finished_by(user, upload_id)  # by another node meanwhile
                if done is None:
                    raise CommandError("unknown_upload", "the upload was removed", upload_id=upload_id)
                return done, False
            state.closed = True
        self.uploads.pop(upload_id)
        done = self.index.by_upload(upload_id)
        assert done is not None
        return done, True

    def _digest(self, entry: Entry, state: UploadState) -> str:
        """The SHA-256 of what is stored: the running hash, or (shared store) read back from it."""
        if state.digest is None:
            return self.spool.hash_prefix(entry.spool_name, entry.size).hexdigest()
        return str(state.digest.hexdigest())

    def _finished_by(self, user: str, upload_id: str) -> Optional[Entry]:
        """The complete file made from ``upload_id`` if ``user`` sent it, else None."""
        entry = self.index.by_upload(upload_id) if _ID.fullmatch(upload_id) else None
        if entry is None or entry.state != READY or entry.sender_key != user.casefold():
            return None
        return entry

    def cancel(self, user: str, upload_id: str) -> Entry:
        """The sender withdraws an upload or a file not yet taken; returns the removed entry."""
        entry = self.index.by_upload(upload_id) if _ID.fullmatch(upload_id) else None
        if entry is None or entry.sender_key != user.casefold():
            raise CommandError("unknown_upload", "you have no upload or waiting file with that upload_id",
                                upload_id=protocol.echo(upload_id))
        self.remove(entry)
        return entry

    # -- the recipient's side ----------------------------------------------------------------

    def waiting_for(self, user: str) -> list[Entry]:
        """Complete files offered to ``user``, oldest first."""
        return self.index.waiting_for(user.casefold())

    def _addressed(self, user: str, file_id: str) -> Entry:
        """The ready file ``file_id`` if ``user`` is its recipient; CommandError otherwise."""
        entry = self.index.by_file(file_id) if _ID.fullmatch(file_id) else None
        if entry is None or entry.state != READY:
            raise CommandError("unknown_file", "no file waits with that file_id", file_id=protocol.echo(file_id))
        if entry.recipient_key != user.casefold():
            raise CommandError("forbidden", "only the recipient may take or decline a file", file_id=file_id)
        return entry

    def for_download(self, user: str, file_id: str, offset: int) -> Entry:
        """Check that ``user`` may download ``file_id`` from ``offset``."""
        entry = self._addressed(user, file_id)
        if not 0 <= offset <= entry.size:
            raise CommandError("bad_offset", f"offset must be between 0 and {entry.size}",
                                file_id=file_id, offset=0)
        return entry

    def decline(self, user: str, file_id: str) -> Entry:
        """The recipient refuses a file: it is deleted; returns the entry (to tell the sender)."""
        entry = self._addressed(user, file_id)
        self.remove(entry)
        return entry

    def delivered(self, entry: Entry) -> bool:
        """A download streamed the whole file: stop offering it, keep it resumable for
        ``delivered_keep`` seconds. True the first time (tell the sender then)."""
        return self.index.mark_delivered(entry.upload_id, self.clock())

    def received(self, user: str, file_id: str) -> tuple[Entry, bool]:
        """The recipient confirms it has the file: delete it now.
        Returns (entry, whether it had been marked delivered before)."""
        entry = self._addressed(user, file_id)
        self.remove(entry)
        return entry, entry.delivered is not None

    # -- removal -----------------------------------------------------------------------------

    def remove(self, entry: Entry) -> bool:
        """Delete an entry's row, spool file and upload state; True if this call removed the row."""
        state = self.uploads.pop(entry.upload_id)
        if state is not None:
            with state.lock:  # wait out a chunk being written
                state.closed = True
                removed = self._delete(entry)
        else:
            removed = self._delete(entry)
        self.spool.remove(entry.spool_name)
        return removed

    def _delete(self, entry: Entry) -> bool:
        """Delete the row; on a full disk (the deletion is written too) free the file's space first."""
        try:
            return self.index.delete(entry.upload_id)
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc):
                raise
        self.spool.remove(entry.spool_name)
        return self.index.delete(entry.upload_id)
