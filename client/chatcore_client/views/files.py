"""File dialogs: an incoming offer (accept with save-as, or decline) and a transfer's progress."""

from __future__ import annotations

import tkinter as tk
from pathlib import Path
from tkinter import ttk
from typing import Any, Callable, Optional

from chatcore_client.connection import NotConnected
from chatcore_client.progress import Progress, human_size
from chatcore_client.state import ROOM


class FileOfferDialog(tk.Toplevel):
    """Not modal: several offers can wait while the user keeps chatting."""

    def __init__(self, master: tk.Misc, offer: dict[str, Any], on_accept: Callable[[], None],
                 on_decline: Callable[[], None]) -> None:
        super().__init__(master)
        self.title("Incoming file")
        self.minsize(380, 160)
        self.protocol("WM_DELETE_WINDOW", self.destroy)  # closing only postpones the decision
        body = ttk.Frame(self, padding=20)
        body.pack(fill="both", expand=True)
        ttk.Label(body, text=f"{offer.get('peer')} wants to send you a file", style="Title.TLabel").pack(anchor="w")
        ttk.Label(body, text=f"{offer.get('filename')}  ({human_size(int(offer.get('size', 0)))})").pack(
            anchor="w", pady=(8, 2))
        ttk.Label(body, text=f"SHA-256 {str(offer.get('sha256', ''))[:32]}…", style="Muted.TLabel").pack(anchor="w")
        buttons = ttk.Frame(body)
        buttons.pack(anchor="e", pady=(14, 0))
        self.decline_button = ttk.Button(buttons, text="Decline", command=lambda: self._done(on_decline))
        self.decline_button.pack(side="right")
        self.accept_button = ttk.Button(buttons, text="Save as…", style="Accent.TButton",
                                        command=lambda: self._done(on_accept))
        self.accept_button.pack(side="right", padx=(0, 8))

    def _done(self, action: Callable[[], None]) -> None:
        self.destroy()
        action()


class TransferWindow(tk.Toplevel):
    """A progress bar with bytes done, speed, and the verified result at the end."""

    def __init__(self, master: tk.Misc, title: str, total: int, on_cancel: Callable[[], None] | None = None) -> None:
        super().__init__(master)
        self.title(title)
        self.minsize(420, 150)
        self.total = total
        self.finished = False
        self.ok = False
        body = ttk.Frame(self, padding=20)
        body.pack(fill="both", expand=True)
        ttk.Label(body, text=title, style="Title.TLabel").pack(anchor="w")
        self.bar = ttk.Progressbar(body, maximum=max(total, 1), length=380, mode="determinate")
        self.bar.pack(fill="x", pady=(10, 6))
        self.detail = ttk.Label(body, text=f"0 B of {human_size(total)}", style="Muted.TLabel", wraplength=400)
        self.detail.pack(anchor="w")
        self.button = ttk.Button(body, text="Cancel" if on_cancel else "Close",
                                 command=on_cancel if on_cancel else self.destroy)
        self.button.pack(anchor="e", pady=(10, 0))

    def update_progress(self, progress: Progress) -> None:
        self.bar.configure(value=progress.done)
        self.detail.configure(text=f"{human_size(progress.done)} of {human_size(progress.total)} · "
                                   f"{human_size(progress.rate)}/s", style="Muted.TLabel")

    def note(self, text: str) -> None:
        """A word on the transfer's state (paused, resuming) until the next progress."""
        self.detail.configure(text=text, style="Warning.TLabel")

    def finish(self, ok: bool, text: str) -> None:
        self.finished, self.ok = True, ok
        if ok:
            self.bar.configure(value=max(self.total, 1))
        self.detail.configure(text=text, style="Ok.TLabel" if ok else "Error.TLabel")
        self.button.configure(text="Close", command=self.destroy)


class TransferViews:
    """The app's part of the handlers' View protocol for files: offer dialogs and transfer
    windows (a mixin of ``App``, which owns the attributes declared here)."""

    root: tk.Tk
    main: Any
    login: Any
    files: Any
    state: Any
    choose_open: Callable[..., Optional[str]]
    choose_save: Callable[..., Optional[str]]
    transfer_windows: dict[str, TransferWindow]
    offer_dialogs: dict[str, FileOfferDialog]

    def show_error(self, text: str) -> None: ...

    def file_offered(self, offer: dict[str, Any]) -> None:
        file_id = str(offer["file_id"])
        parent = self.main or self.login
        self.offer_dialogs[file_id] = FileOfferDialog(parent, offer, lambda: self._accept_offer(file_id),
                                                      lambda: self.files.decline(file_id))

    def transfer_started(self, tid: str, title: str, total: int) -> None:
        self.transfer_windows[tid] = TransferWindow(self.main or self.login, title, total,
                                                    on_cancel=lambda: self._cancel_transfer(tid))

    def _cancel_transfer(self, tid: str) -> None:
        """Cancel pressed in a transfer window: stop the transfer and close the window."""
        self.files.cancel(tid)
        window = self.transfer_windows.pop(tid, None)
        if window is not None and window.winfo_exists():
            window.destroy()

    def transfer_note(self, tid: str, text: str) -> None:
        window = self.transfer_windows.get(tid)
        if window is not None and window.winfo_exists():
            window.note(text)

    def transfer_progress(self, tid: str, progress: Progress) -> None:
        window = self.transfer_windows.get(tid)
        if window is not None and window.winfo_exists():
            window.update_progress(progress)

    def transfer_finished(self, tid: str, ok: bool, text: str) -> None:
        window = self.transfer_windows.get(tid)
        if window is not None and window.winfo_exists():
            window.finish(ok, text)

    def _send_file_clicked(self) -> None:
        peer = self.state.current
        if peer == ROOM or self.main is None:
            return
        chosen = self.choose_open(self.main)
        if chosen:
            self.files.send_file(peer, Path(chosen))

    def _accept_offer(self, file_id: str) -> None:
        offer = self.state.offers.get(file_id)
        if offer is None or self.main is None:
            return
        chosen = self.choose_save(self.main, Path(str(offer.get("filename", "file"))).name)
        if chosen:
            try:
                self.files.accept(file_id, Path(chosen))
            except (OSError, NotConnected) as exc:
                self.show_error(f"Could not receive {offer.get('filename')}: {exc}")
