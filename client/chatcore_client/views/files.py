"""File dialogs: an incoming offer (accept with save-as, or decline) and a transfer's progress."""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Any, Callable

from chatcore_client.progress import Progress, human_size


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
