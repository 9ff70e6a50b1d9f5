"""File transfers (docs/protocol.md §6) as small state machines, shared by the GUI and scripts.

An ``Upload`` (upload.py) hashes and streams from a worker thread (the caller's thread stays
free); a ``Download`` (download.py) is fed ``file_data`` messages by whoever reads the
connection. ``Transfers`` routes replies to them.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Optional, Union

from chatcore_client.download import Download, StoppedStreams
from chatcore_client.progress import TransferFailed
from chatcore_client.upload import CHUNK_SIZE, Send, Upload

log = logging.getLogger(__name__)

Later = Callable[[float, Callable[[], None]], None]  # run a function after some seconds, on any thread
RETRY_MARGIN = 0.02  # seconds added to a server's retry_after, so the retry is not refused again


Transfer = Union[Upload, Download]


def _timer(seconds: float, action: Callable[[], None]) -> None:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()


class Transfers:
    """Routes ``file_*`` replies to the uploads and downloads of one logical session.

    Offers carry a ``client_id`` the server echoes in ``file_upload_ready`` and in errors, so
    replies are matched by id (oldest offer first only for a reply without one). A disconnect
    ``suspend_all``s: transfers are kept and ``resume_all`` continues them on the next connection.
    """

    def __init__(self, send: Send, later: Later = _timer) -> None:
        self.send, self.later = send, later
        self._lock = threading.Lock()
        self._offered: dict[str, Upload] = {}  # client_id -> upload waiting for file_upload_ready
        self.uploads: dict[str, Upload] = {}  # upload_id -> upload being streamed or verified (under _lock)
        self.downloads: dict[str, Download] = {}
        self.suspended: list[Transfer] = []
        self.stopped = StoppedStreams()  # cancelled downloads whose stream may still arrive
        self.cancelled: list[Upload] = []  # cancelled uploads, until their file_cancel_result

    # -- uploads -------------------------------------------------------------------------------

    def start_upload(self, upload: Upload) -> threading.Thread:
        """Hash and offer in a worker thread; returns it (already started)."""
        def run() -> None:
            try:
                command = upload.offer()
            except Exception as exc:  # unreadable file
                log.warning("offering %s failed: %s", upload.filename, exc)
                upload.fail(str(exc))
                return
            self._offer(upload, command)
        thread = threading.Thread(target=run, daemon=True, name=f"chatcore-upload-{upload.filename}")
        thread.start()
        return thread

    def _offer(self, upload: Upload, command: dict[str, Any]) -> None:
        with self._lock:
            self._offered[upload.client_id] = upload
        try:
            self.send(command)
        except ConnectionError as exc:  # kept in _offered: suspend_all picks it up for the next connection
            log.info("offering %s waits for a connection: %s", upload.filename, exc)

    def _claim_offer(self, message: dict[str, Any]) -> Optional[Upload]:
        """The offer a reply answers: by its client_id, else the oldest (a server without echo)."""
        with self._lock:
            client_id = message.get("client_id")
            if isinstance(client_id, str):
                return self._offered.pop(client_id, None)
            return self._offered.pop(next(iter(self._offered)), None) if self._offered else None

    def upload_ready(self, message: dict[str, Any]) -> Optional[Upload]:
        """``file_upload_ready``: stream the upload it answers from the offset the server holds."""
        upload = self._claim_offer(message)
        if upload is None:
            return None
        upload.upload_id = str(message["upload_id"])
        if upload.cancelled:  # cancelled while the offer was on its way
            self._send_quietly({"command": "file_cancel", "upload_id": upload.upload_id})
            return upload
        self._track(upload)
        self._stream(upload, int(message.get("offset", 0)), int(message.get("chunk_size", CHUNK_SIZE)))
        return upload

    def _stream(self, upload: Upload, offset: int, chunk_size: int) -> None:
        generation = upload.claim_stream()

        def run() -> None:
            try:
                upload.stream(self.send, offset, chunk_size, generation)
            except ConnectionError as exc:  # the disconnect decides: suspend (resume later) or abort
                log.info("sending %s stopped: %s", upload.filename, exc)
            except Exception as exc:
                log.warning("sending %s failed: %s", upload.filename, exc)
                self._untrack(upload.upload_id or "")
                upload.fail(str(exc))
        threading.Thread(target=run, daemon=True, name=f"chatcore-upload-{upload.upload_id}").start()

    def _track(self, upload: Upload) -> None:
        """Route the server's answers about ``upload`` to it (worker threads call this too)."""
        assert upload.upload_id is not None
        with self._lock:
            self.uploads[upload.upload_id] = upload

    def _untrack(self, upload_id: str) -> Optional[Upload]:
        """Stop routing answers about ``upload_id``; the upload, if it was tracked."""
        with self._lock:
            return self.uploads.pop(upload_id, None)

    def uploaded(self, message: dict[str, Any]) -> Optional[Upload]:
        """``file_uploaded``: the server verified the hash."""
        upload = self._untrack(str(message.get("upload_id")))
        if upload is not None:
            upload.complete(str(message["file_id"]))
        return upload

    def cancel_upload(self, upload: Upload) -> None:
        """Stop an upload and have the server drop what it holds (or withdraw the finished file)."""
        must_send = upload.cancel()
        self.cancelled.append(upload)
        upload_id = upload.upload_id
        if upload_id is not None:
            self._untrack(upload_id)
            if must_send:
                self._send_quietly({"command": "file_cancel", "upload_id": upload_id})
        with self._lock:
            if upload in self.suspended:
                self.suspended.remove(upload)
        upload.fail("Cancelled.")

    def _send_quietly(self, command: dict[str, Any]) -> bool:
        """Send if connected; False (logged) when not."""
        try:
            self.send(command)
        except ConnectionError as exc:
            log.info("could not send %s: %s", command.get("command"), exc)
            return False
        return True

    # -- errors --------------------------------------------------------------------------------

    def error(self, message: dict[str, Any]) -> Optional[Transfer]:
        """An ``error`` for a file command: retry, restart or fail the transfer it names; None if none."""
        command = message.get("command")
        reason = str(message.get("reason") or message.get("code") or "failed")
        if command == "file_download_cancel":
            self.stopped.answered(message)
            return None
        if command == "file_upload":
            upload = self._claim_offer(message)
            if upload is None:
                return None
            retry = message.get("retry_after")
            if message.get("code") == "rate_limited" and isinstance(retry, (int, float)) and not upload.cancelled:
                offer = {"command": "file_upload", "peer": upload.peer, "filename": upload.filename,
                         "size": upload.size, "sha256": upload.sha256, "client_id": upload.client_id}
                self.later(float(retry) + RETRY_MARGIN, lambda: self._offer(upload, offer))
                return upload
            upload.fail(reason)
            return upload
        if "upload_id" in message:
            return self._upload_error(message, reason)
        if "file_id" in message:
            if self.stopped.drops(message):
                return None
            download = self.downloads.pop(str(message["file_id"]), None)
            if download is not None:
                download.abort()
            return download
        return None

    def _upload_error(self, message: dict[str, Any], reason: str) -> Optional[Upload]:
        with self._lock:
            upload = self.uploads.get(str(message["upload_id"]))
        if upload is None:
            return None
        offset = message.get("offset")
        if message.get("code") == "incomplete" and isinstance(offset, int) and not upload.cancelled:
            self._stream(upload, offset, CHUNK_SIZE)  # chunks lost with a connection: send them again
            return upload
        if message.get("code") == "bad_offset" and isinstance(offset, int) and not upload.cancelled:
            # the server holds a different amount (a resume raced the old connection): go on from there.
            # Errors for chunks of the stream being replaced all name its starting offset: ignore those.
            if not upload.streams or upload.streams[-1][0] != offset:
                self._stream(upload, offset, CHUNK_SIZE)
            return upload
        self._untrack(str(message["upload_id"]))
        upload.cancel()
        upload.fail(reason)
        return upload

    # -- downloads -----------------------------------------------------------------------------

    def start_download(self, download: Download) -> None:
        """Ask the server to stream a file into ``download`` (from what it already holds)."""
        self.downloads[download.file_id] = download
        self.stopped.restarted(download.file_id)
        self.send(download.request())

    def cancel_download(self, file_id: str, stop_stream: bool = True) -> Optional[Download]:
        """Stop a download: delete the partial file, and drop the rest of its stream, which the
        server stops at once if it can (``stop_stream``: it offers file_download_cancel)."""
        download = streaming = self.downloads.pop(file_id, None)
        with self._lock:
            for item in [t for t in self.suspended if isinstance(t, Download) and t.file_id == file_id]:
                self.suspended.remove(item)
                download = item
        if download is not None:
            download.abort()
        if streaming is not None:
            asked = stop_stream and self._send_quietly({"command": "file_download_cancel", "file_id": file_id,
                                                         "client_id": file_id})
            self.stopped.stopped(file_id, asked)
        return download

    def data(self, message: dict[str, Any]) -> Optional[Download]:
        """``file_data`` for a download in progress (raises TransferFailed and forgets it on bad data)."""
        if self.stopped.drops(message):
            return None
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
        if self.stopped.drops(message):  # a cancelled download's: it never counts as received
            return None, None
        download = self.downloads.pop(str(message.get("file_id")), None)
        if download is None:
            return None, None
        path = download.end(message)
        self._send_quietly({"command": "file_received", "file_id": download.file_id})
        return download, path

    # -- the connection's lifetime -------------------------------------------------------------

    def suspend_all(self) -> list[Transfer]:
        """The connection is gone: pause every transfer in flight and keep it for ``resume_all``."""
        with self._lock:
            offered, self._offered = list(self._offered.values()), {}
            paused: list[Transfer] = [*offered, *self.uploads.values(), *self.downloads.values()]
            self.uploads.clear()
            self.downloads.clear()
            for transfer in paused:
                if isinstance(transfer, Upload):
                    transfer.pause()
            self.suspended.extend(t for t in paused if t not in self.suspended)
            self.stopped.clear()
            return list(self.suspended)

    def resume_all(self) -> list[Transfer]:
        """On a new connection: offer paused uploads again (the server answers the offset it holds),
        or send file_upload_done again where it went out, and ask for paused downloads from the
        bytes already written."""
        with self._lock:
            resumed, self.suspended = [t for t in self.suspended if not (isinstance(t, Upload) and t.done.is_set())], []
        for transfer in resumed:
            if isinstance(transfer, Upload) and transfer.finishing and transfer.upload_id is not None:
                self._finish_again(transfer)
            elif isinstance(transfer, Upload):
                self.start_upload(transfer)
            else:
                try:
                    self.start_download(transfer)
                except ConnectionError:
                    with self._lock:
                        self.downloads.pop(transfer.file_id, None)
                        self.suspended.append(transfer)
        return resumed

    def _finish_again(self, upload: Upload) -> None:
        """Send file_upload_done again for an upload whose answer was lost with the connection: the
        server answers the same file_uploaded if it finished it (or finishes it, or says what is
        missing), where offering it anew could make a second file."""
        assert upload.upload_id is not None
        self._track(upload)
        try:
            self.send({"command": "file_upload_done", "upload_id": upload.upload_id})
        except ConnectionError:
            with self._lock:
                self.uploads.pop(upload.upload_id, None)
                self.suspended.append(upload)

    def abort_all(self, reason: str) -> list[Transfer]:
        """Give up on every transfer, paused ones included (quitting, or no way back in)."""
        with self._lock:
            offered, self._offered = list(self._offered.values()), {}
            every: list[Transfer] = [*offered, *self.uploads.values(), *self.downloads.values(), *self.suspended]
            self.uploads.clear()
            self.downloads.clear()
            self.suspended = []
        for transfer in every:
            if isinstance(transfer, Upload):
                transfer.pause()
                transfer.fail(reason)
            else:
                transfer.abort()
        return every
