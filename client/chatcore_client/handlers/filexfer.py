"""Handlers for the ``filexfer`` plugin: offers, uploads with progress, verified downloads."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Optional

from chatcore_client.download import Download
from chatcore_client.handlers import Context, Dispatcher
from chatcore_client.progress import TransferFailed, human_size
from chatcore_client.state import ROOM
from chatcore_client.transfers import Transfer
from chatcore_client.upload import Upload

FILE_COMMANDS = ("file_upload", "file_chunk", "file_upload_done", "file_cancel", "file_download", "file_decline",
                 "file_received", "file_list", "file_download_cancel")


class FileHandlers:
    """Store-and-forward transfers (docs/protocol.md §6) between the view and ``Transfers``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._tids = itertools.count(1)
        self.active: dict[str, Transfer] = {}  # transfer window id -> transfer, until it ends
        ctx.on_login.append(self.resume)

    def register(self, dispatcher: Dispatcher) -> None:
        """Claim this module's event types."""
        for event, handler in {
            "file_offer": self.offer, "file_upload_ready": self.ready, "file_uploaded": self.uploaded,
            "file_data": self.data, "file_data_end": self.data_end, "file_declined": self.declined,
            "file_delivered": self.delivered, "file_cancelled": self.cancelled,
            "file_cancel_result": self.cancel_result,
            "file_download_cancel_result": self.ctx.transfers.stopped.answered,
        }.items():
            dispatcher.register(event, handler)
        for command in FILE_COMMANDS:
            dispatcher.register(f"error:{command}", self.error)

    @property
    def available(self) -> bool:
        return self.ctx.state.server.offers("file_upload", "file_download")

    # -- sending -------------------------------------------------------------------------------

    def send_file(self, peer: str, path: Path) -> Optional[str]:
        """Offer ``path`` to ``peer``; progress and the result come back through the view."""
        if not self.available or peer == ROOM:
            return None
        tid = f"up-{next(self._tids)}"
        post = self.ctx.post
        view = self.ctx.view
        upload = Upload(path, peer,
                        progress=lambda p: post(lambda: view.transfer_progress(tid, p)),
                        finished=lambda u, error: post(lambda: self._upload_done(tid, u, error)))
        upload.tag = tid
        self.active[tid] = upload
        view.transfer_started(tid, f"Sending {upload.filename} to {peer}", upload.size)
        self.ctx.transfers.start_upload(upload)
        return tid

    def _upload_done(self, tid: str, upload: Upload, error: Optional[str]) -> None:
        self.active.pop(tid, None)
        if upload.cancelled:
            self.ctx.notice(upload.peer, f"You cancelled sending {upload.filename}.")
        elif error is None:
            self.ctx.view.transfer_finished(tid, True, f"{upload.filename} is on the server, waiting for {upload.peer}.")
            self.ctx.notice(upload.peer, f"You sent {upload.filename} ({human_size(upload.size)}).")
        else:
            self.ctx.view.transfer_finished(tid, False, f"{upload.filename} was not sent: {error}")

    def ready(self, message: dict[str, Any]) -> None:
        self.ctx.transfers.upload_ready(message)

    def uploaded(self, message: dict[str, Any]) -> None:
        self.ctx.transfers.uploaded(message)

    def cancel(self, tid: str) -> None:
        """The user pressed Cancel: stop the transfer (the server drops an upload's bytes)."""
        transfer = self.active.get(tid)
        if isinstance(transfer, Upload):
            self.ctx.transfers.cancel_upload(transfer)  # its finished callback says so in the conversation
        elif isinstance(transfer, Download):
            self.active.pop(tid, None)  # its rest is dropped, and file_data_end never marks it received
            self.ctx.transfers.cancel_download(transfer.file_id,
                                               stop_stream=self.ctx.state.server.offers("file_download_cancel"))
            self.ctx.notice(transfer.peer, f"You stopped receiving {transfer.filename}; the partial file was deleted.")

    def cancel_result(self, message: dict[str, Any]) -> None:
        """``file_cancel_result``: the server dropped a cancelled upload."""
        upload_id = str(message.get("upload_id"))
        for upload in [t for t in self.ctx.transfers.cancelled if t.upload_id == upload_id]:
            self.ctx.transfers.cancelled.remove(upload)
            self.ctx.notice(upload.peer, f"The server dropped {upload.filename}.")

    def suspend(self) -> None:
        """The connection is gone: pause transfers until the next login."""
        for transfer in self.ctx.transfers.suspend_all():
            self.ctx.view.transfer_note(transfer.tag, "Connection lost: paused, resumes after reconnecting…")

    def resume(self) -> None:
        """Logged in (again): continue paused transfers from where the server and the disk stand."""
        for transfer in self.ctx.transfers.resume_all():
            self.ctx.view.transfer_note(transfer.tag, "Reconnected: resuming…")

    def abort(self, reason: str) -> None:
        """No way back in: every transfer fails (uploads report through their callbacks)."""
        for transfer in self.ctx.transfers.abort_all(reason):
            if isinstance(transfer, Download):
                self._download_failed(transfer.file_id, reason)

    def declined(self, message: dict[str, Any]) -> None:
        peer = str(message.get("peer", ""))
        self.ctx.notice(peer, f"{peer} declined a file you sent.")

    def delivered(self, message: dict[str, Any]) -> None:
        peer = str(message.get("peer", ""))
        self.ctx.notice(peer, f"{peer} received the file you sent.")

    # -- receiving -----------------------------------------------------------------------------

    def offer(self, message: dict[str, Any]) -> None:
        """``file_offer``: note it in the sender's conversation and ask the user."""
        file_id = str(message.get("file_id"))
        if file_id in self.ctx.state.offers:
            return  # offered again after a reconnect
        self.ctx.state.offers[file_id] = message
        peer = str(message.get("peer", ""))
        self.ctx.state.conversation(peer)
        self.ctx.notice(peer, f"{peer} offers {message.get('filename')} ({human_size(int(message.get('size', 0)))}).")
        self.ctx.view.conversations_changed()
        self.ctx.view.file_offered(message)

    def accept(self, file_id: str, dest: Path) -> str:
        """Download an offered file to ``dest`` (chosen by the user)."""
        offer = self.ctx.state.offers[file_id]
        tid = f"down-{file_id}"
        download = Download(offer, dest, progress=lambda p: self.ctx.view.transfer_progress(tid, p))
        download.tag = tid
        self.active[tid] = download
        self.ctx.view.transfer_started(tid, f"Receiving {download.filename} from {download.peer}", download.size)
        self.ctx.transfers.start_download(download)
        return tid

    def decline(self, file_id: str) -> None:
        """Refuse an offered file."""
        offer = self.ctx.state.offers.pop(file_id, None)
        self.ctx.send({"command": "file_decline", "file_id": file_id})
        if offer is not None:
            self.ctx.notice(str(offer.get("peer", "")), f"You declined {offer.get('filename')}.")

    def data(self, message: dict[str, Any]) -> None:
        try:
            self.ctx.transfers.data(message)
        except TransferFailed as exc:
            self._download_failed(str(message.get("file_id")), str(exc))

    def data_end(self, message: dict[str, Any]) -> None:
        """The last chunk: shown as received only once size and SHA-256 match."""
        file_id = str(message.get("file_id"))
        try:
            download, path = self.ctx.transfers.data_end(message)
        except TransferFailed as exc:
            self._download_failed(file_id, str(exc))
            return
        if download is None or path is None:
            return
        self.ctx.state.offers.pop(file_id, None)
        self.active.pop(download.tag, None)
        self.ctx.view.transfer_finished(download.tag, True, f"Saved as {path.name} in {path.parent} (SHA-256 verified).")
        self.ctx.notice(download.peer, f"Received {download.filename} ({human_size(download.size)}, "
                                       f"SHA-256 verified) → {path}")

    def _download_failed(self, file_id: str, reason: str) -> None:
        self.active.pop(f"down-{file_id}", None)
        self.ctx.view.transfer_finished(f"down-{file_id}", False, reason)
        offer = self.ctx.state.offers.get(file_id)
        if offer is not None:
            self.ctx.notice(str(offer.get("peer", "")), f"Receiving {offer.get('filename')} failed: {reason}")

    def cancelled(self, message: dict[str, Any]) -> None:
        file_id = str(message.get("file_id"))
        offer = self.ctx.state.offers.pop(file_id, None)
        if offer is not None:
            self.ctx.notice(str(offer.get("peer", "")), f"{offer.get('peer')} withdrew {offer.get('filename')}.")

    def error(self, message: dict[str, Any]) -> None:
        """An ``error`` for a file command: fail the transfer it belongs to."""
        failed = self.ctx.transfers.error(message)
        reason = str(message.get("reason") or message.get("code"))
        if isinstance(failed, Download):
            self._download_failed(failed.file_id, reason)
        elif failed is None and message.get("command") != "file_download_cancel":  # that one: already cancelled
            self.ctx.view.show_error(f"File transfer: {reason}")
        # an Upload reports through its finished callback
