"""Command handlers: turn requests into ``FileService``/``LegacyRelay`` calls and their results
into replies and events for the users involved."""

from __future__ import annotations

import functools
import logging
import sqlite3
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from chatcore import CommandError, protocol
from chatcore.cluster import DatabaseUnavailable
from chatcore_filexfer.crossnode import Notifier
from chatcore_filexfer.diskfull import is_disk_full
from chatcore_filexfer.index import READY, Entry
from chatcore_filexfer.legacy import LegacyRelay
from chatcore_filexfer.names import sanitize_filename
from chatcore_filexfer.service import FileService, offer_fields
from chatcore_filexfer.stream import Sink, Streams

if TYPE_CHECKING:
    from chatcore.server import ChatServer
    from chatcore.session import Session

log = logging.getLogger(__name__)

Reply = Optional[dict[str, Any]]
Handler = Callable[["Session", dict[str, Any]], Reply]
MAX_LEGACY_FIELD = 1024  # characters of a legacy md5/size string that are forwarded

# Every command: the fields the core type-checks before calling FileCommands.<name>.
COMMANDS: dict[str, dict[str, Any]] = {
    "file_upload": {"fields": {"peer": str, "filename": str, "size": int, "sha256": str},
                    "optional": {"client_id": str}},
    # bulk data, bounded by bytes (chunk size, quota), not by the per-session request rate
    "file_chunk": {"fields": {"upload_id": str, "offset": int, "data": str}, "limited": False},
    "file_upload_done": {"fields": {"upload_id": str}},
    "file_cancel": {"fields": {"upload_id": str}},
    "file_list": {"optional": {"after": str}},
    "file_download": {"fields": {"file_id": str}, "optional": {"offset": int}},
    "file_download_cancel": {"fields": {"file_id": str}},
    "file_decline": {"fields": {"file_id": str}},
    "file_received": {"fields": {"file_id": str}},
    "file_request": {"fields": {"peer": str, "filename": str, "size": (str, int, float), "md5": str}},
    "file_response": {"fields": {"peer": str, "response": str}, "optional": {"md5": str}},
}


def _storage_errors() -> tuple[type[BaseException], ...]:
    """What a full disk may raise: psycopg's errors too once cluster mode loaded it (only then
    can they occur, and a single node never imports psycopg)."""
    psycopg = sys.modules.get("psycopg")
    return (OSError, sqlite3.Error) if psycopg is None else (OSError, sqlite3.Error, psycopg.Error)


def counts_disk_full(handler: Callable[..., Reply]) -> Callable[..., Reply]:
    """A full disk, wherever in the handler the spool or the index hits it, becomes ``disk_full``
    (with the request's upload_id/file_id) counted in one warning a minute instead of a
    traceback per request; an unreachable cluster database is ``storage_error``; every other
    refusal is already a CommandError."""
    @functools.wraps(handler)
    def wrapper(self: "FileCommands", session: "Session", message: dict[str, Any]) -> Reply:
        try:
            return handler(self, session, message)
        except CommandError as exc:
            if exc.code == "disk_full":
                self.service.disk_full.failed(handler.__name__)
            raise
        except DatabaseUnavailable:  # cluster mode: PostgreSQL is down or every connection busy
            raise CommandError("storage_error", "the server cannot reach its file store now; try again later",
                               **_ids(message)) from None
        except _storage_errors() as exc:
            if not is_disk_full(exc):
                raise
            self.service.disk_full.failed(handler.__name__)
            raise CommandError("disk_full", "the server's disk is full; try again later", **_ids(message)) from None
    return wrapper


def _ids(message: dict[str, Any]) -> dict[str, str]:
    """The request's ``upload_id``/``file_id``, so the client knows which transfer an error stopped."""
    return {key: protocol.echo(message[key]) for key in ("upload_id", "file_id") if isinstance(message.get(key), str)}


class FileCommands:
    """The plugin's commands for one server, plus the events they cause."""

    def __init__(self, server: "ChatServer", service: FileService, relay: LegacyRelay) -> None:
        self.server = server
        self.service = service
        self.relay = relay
        self.streams = Streams(service.spool, service.limits.chunk_size, service.limits.stream_window,
                               self._delivered, service.limits.max_downloads)
        self.notifier = Notifier(server, self.offer_waiting)

    # -- helpers ---------------------------------------------------------------------------

    def _to_user(self, user: str, message: dict[str, Any]) -> int:
        """Send ``message`` to every session of ``user``, on every node; how many here took it."""
        return self.notifier.to_user(user, message)

    def _lookup(self, name: str) -> Optional[str]:
        """The registered display name for ``name``, or None."""
        if not name or len(name) > protocol.MAX_ECHO or self.server.users.removed_recently(name):
            return None  # a name just removed takes no new files, even from a request already under way
        return self.server.lookup_user(name)

    def forget_user(self, username: str) -> int:
        """Delete every upload and file to or from ``username`` (the account is being removed) and
        tell the other side: the recipient of a waiting file gets ``file_cancelled``, the sender of
        a file to the user ``file_declined``. Returns how many were deleted."""
        key = username.casefold()
        self.relay.forget(username)
        removed = 0
        for entry in self.service.index.involving(key):
            if entry.file_id is not None:
                self.streams.cancel_file(entry.file_id)
            if not self.service.remove(entry):
                continue
            removed += 1
            if entry.state != READY:
                continue
            if entry.sender_key == key and entry.recipient_key != key:
                self._to_user(entry.recipient, {"type": "file_cancelled", "file_id": entry.file_id,
                                                "peer": entry.sender})
            elif entry.recipient_key == key and entry.sender_key != key:
                self._to_user(entry.sender, {"type": "file_declined", "file_id": entry.file_id,
                                             "upload_id": entry.upload_id, "peer": entry.recipient})
        return removed

    def sweep(self) -> None:
        """Delete expired files and abandoned uploads; tell senders who are online."""
        for entry in self.service.sweep():
            if entry.state == READY:
                self.streams.cancel_file(str(entry.file_id))
            if entry.delivered is None:
                self._to_user(entry.sender, {"type": "file_expired", "upload_id": entry.upload_id,
                                         "file_id": entry.file_id, "peer": entry.recipient})

    def offer_waiting(self, session: "Session") -> None:
        """Offer a session that just logged in every file waiting for its user."""
        assert session.user is not None
        for entry in self.service.waiting_for(session.user):
            session.send({"type": "file_offer", **offer_fields(entry)})

    def _delivered(self, entry: Entry, sink: Sink) -> None:
        """A download sent the whole file: stop offering it and tell the sender (once). On a full
        disk it cannot be marked, so it stays offered; the download still ends with file_data_end."""
        try:
            first = self.service.delivered(entry)
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc):
                raise
            self.service.disk_full.failed("marking a download delivered")
            return
        if first:
            self._tell_delivered(entry)

    def _tell_delivered(self, entry: Entry) -> None:
        self._to_user(entry.sender, {"type": "file_delivered", "upload_id": entry.upload_id,
                                     "file_id": entry.file_id, "peer": entry.recipient})

    # -- store and forward (docs/protocol.md §6) -----------------------------------------------

    @counts_disk_full
    def file_upload(self, session: "Session", message: dict[str, Any]) -> Reply:
        """Offer a file to a registered user: a new upload, or the unfinished one to resume."""
        assert session.user is not None
        recipient = self._lookup(message["peer"])
        if recipient is None:
            raise CommandError("unknown_peer", "no registered user has that name")
        self.sweep()
        entry, held = self.service.offer(session.user, recipient, message["filename"], message["size"],
                                         message["sha256"])
        ready = {"type": "file_upload_ready", "upload_id": entry.upload_id, "offset": held,
                 "chunk_size": self.service.limits.chunk_size, "peer": entry.recipient,
                 "filename": entry.filename, "size": entry.size}
        if "client_id" in message:  # lets a client with several offers in flight match the reply
            ready["client_id"] = message["client_id"][:protocol.MAX_CLIENT_ID]
        return ready

    @counts_disk_full
    def file_chunk(self, session: "Session", message: dict[str, Any]) -> Reply:
        """Store one chunk; silent on success (the sender streams chunks without waiting)."""
        assert session.user is not None
        self.service.write_chunk(session.user, message["upload_id"], message["offset"], message["data"])
        return None

    @counts_disk_full
    def file_upload_done(self, session: "Session", message: dict[str, Any]) -> Reply:
        """Verify the upload and offer the file to its recipient now (or at their next login). Asked
        again (a client retrying after a reconnect) it answers the same file_uploaded, offering nothing."""
        assert session.user is not None
        entry, made = self.service.finish(session.user, message["upload_id"])
        if made:
            self._to_user(entry.recipient, {"type": "file_offer", **offer_fields(entry)})
        return {"type": "file_uploaded", "upload_id": entry.upload_id, "file_id": entry.file_id}

    @counts_disk_full
    def file_cancel(self, session: "Session", message: dict[str, Any]) -> Reply:
        """The sender withdraws an upload or a file its recipient has not taken yet."""
        assert session.user is not None
        entry = self.service.cancel(session.user, message["upload_id"])
        if entry.state == READY:
            self.streams.cancel_file(str(entry.file_id))
            self._to_user(entry.recipient, {"type": "file_cancelled", "file_id": entry.file_id,
                                            "peer": entry.sender})
        return {"type": "file_cancel_result", "upload_id": entry.upload_id, "file_id": entry.file_id}

    @counts_disk_full
    def file_list(self, session: "Session", message: dict[str, Any]) -> Reply:
        """The files waiting for the user, oldest first, as many as fit one frame (then ``has_more``;
        ask again with ``after`` = the last file_id received)."""
        assert session.user is not None
        self.sweep()
        entries = self.service.waiting_for(session.user)
        after = message.get("after")
        if after:
            ids = [entry.file_id for entry in entries]
            entries = entries[ids.index(after) + 1:] if after in ids else []
        room = protocol.MAX_JSON - len(protocol.dumps({"type": "file_list", "files": [], "has_more": False})) - 64
        files = protocol.fitting((offer_fields(entry) for entry in entries), room)
        return {"type": "file_list", "files": files, "has_more": len(files) < len(entries)}

    @counts_disk_full
    def file_download(self, session: "Session", message: dict[str, Any]) -> Reply:
        """Start streaming a file (from ``offset`` to resume) in its own thread; no reply here."""
        assert session.user is not None
        entry = self.service.for_download(session.user, message["file_id"], message.get("offset", 0))
        if not self.streams.start(session, entry, message.get("offset", 0)):
            raise CommandError("busy", f"at most {self.streams.per_session} downloads at once per connection",
                                file_id=entry.file_id)
        return None

    @counts_disk_full
    def file_download_cancel(self, session: "Session", message: dict[str, Any]) -> Reply:
        """Stop this connection's stream of a file. The reply goes out only after the stream has
        stopped, so no file_data of that file follows it; it is the same when no such stream runs
        (never started, already ended, unknown id): either way none follows."""
        file_id = protocol.echo(message["file_id"])
        stopped = self.streams.cancel(session.id, file_id)
        log.debug("filexfer: %r cancelled the download of %s (%s)", session, file_id,
                  "stopped" if stopped else "no stream ran")
        return {"type": "file_download_cancel_result", "file_id": file_id}

    @counts_disk_full
    def file_decline(self, session: "Session", message: dict[str, Any]) -> Reply:
        """The recipient refuses a file: delete it and tell the sender."""
        assert session.user is not None
        entry = self.service.decline(session.user, message["file_id"])
        self.streams.cancel_file(str(entry.file_id))
        self._to_user(entry.sender, {"type": "file_declined", "file_id": entry.file_id,
                                     "upload_id": entry.upload_id, "peer": entry.recipient})
        return {"type": "file_decline_result", "file_id": entry.file_id}

    @counts_disk_full
    def file_received(self, session: "Session", message: dict[str, Any]) -> Reply:
        """The recipient confirms it holds the whole file: delete the spool copy now (no reply)."""
        assert session.user is not None
        entry, told = self.service.received(session.user, message["file_id"])
        self.streams.cancel_file(str(entry.file_id))
        if not told:
            self._tell_delivered(entry)
        return None

    # -- legacy peer-to-peer signalling (docs/protocol.md §6, legacy) -----------------------------------------

    def file_request(self, session: "Session", message: dict[str, Any]) -> Reply:
        """Forward a legacy file_request to the peer's sessions and remember it for the answer."""
        assert session.user is not None
        peer = message["peer"]
        target = self._lookup(peer)
        if target is None or not self.server.sessions.is_online(target):
            why = "no registered user has that name" if target is None else f"{target} is not online"
            return {"type": "file_response", "peer": protocol.echo(peer), "response": "error", "reason": why}
        if target.casefold() == session.user.casefold():
            return {"type": "file_response", "peer": target, "response": "error",
                    "reason": "you cannot send a file to yourself"}
        size, md5 = message["size"], message["md5"]
        if isinstance(size, str):
            size = size[:MAX_LEGACY_FIELD]
        filename = sanitize_filename(message["filename"])
        self.relay.requested(session.user, target, filename, md5[:MAX_LEGACY_FIELD])
        self.notifier.local(target, {"type": "file_request", "peer": session.user, "filename": filename,
                               "size": size, "md5": md5[:MAX_LEGACY_FIELD]})
        return None

    def file_response(self, session: "Session", message: dict[str, Any]) -> Reply:
        """Forward an accept/deny only to a user who really asked this one; accept carries ``ip``."""
        assert session.user is not None
        response = message["response"]
        if response not in ("accept", "deny"):
            raise CommandError("bad_request", "field 'response' must be 'accept' or 'deny'")
        request = self.relay.answer(session.user, protocol.echo(message["peer"]), message.get("md5"))
        if request is None:
            raise CommandError("no_request", f"{protocol.echo(message['peer'])!r} has no open file_request to you")
        forwarded: dict[str, Any] = {"type": "file_response", "peer": session.user, "response": response,
                                     "filename": request.filename, "md5": request.md5}
        if response == "accept":
            forwarded["ip"] = session.address[0]
        if not self.notifier.local(request.requester, forwarded):
            raise CommandError("unknown_peer", f"{request.requester} is no longer online")
        return None


class Sweeper(threading.Thread):
    """Calls ``sweep`` every ``interval`` seconds until stopped (expiry needs no traffic)."""

    def __init__(self, interval: float, sweep: Callable[[], None]) -> None:
        super().__init__(name="filexfer-sweeper", daemon=True)
        self._interval = interval
        self._sweep = sweep
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self._interval):
            try:
                self._sweep()
            except Exception:
                log.exception("filexfer: sweep failed")

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()
