"""The Admin window (announce to everyone, kick a user) for a server administrator, and the
app's part of the View protocol for moderation (a mixin of ``App``)."""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Any, Callable, Optional

from chatcore_client.connection import NotConnected

ANNOUNCE_MAX = 2000  # characters the server takes in one announcement


class AdminWindow(tk.Toplevel):
    """Two forms: an announcement to every logged-in user, and disconnecting a user."""

    def __init__(self, master: tk.Misc, on_announce: Callable[[str], None],
                 on_kick: Callable[[str, str], None]) -> None:
        super().__init__(master)
        self.title("Server administration")
        self.minsize(460, 300)
        self._on_announce, self._on_kick = on_announce, on_kick
        body = ttk.Frame(self, padding=16)
        body.pack(fill="both", expand=True)
        body.columnconfigure(1, weight=1)
        ttk.Label(body, text="Announce to everyone online", style="Title.TLabel").grid(row=0, column=0, columnspan=2,
                                                                                        sticky="w")
        self.announcement = tk.StringVar(self)
        self.announce_entry = ttk.Entry(body, textvariable=self.announcement)
        self.announce_entry.grid(row=1, column=0, columnspan=2, sticky="ew", pady=(8, 0), ipady=3)
        self.announce_entry.bind("<Return>", lambda _e: self._announce())
        self.announce_button = ttk.Button(body, text="Announce", style="Accent.TButton", command=self._announce)
        self.announce_button.grid(row=2, column=1, sticky="e", pady=(8, 16))
        ttk.Label(body, text="Disconnect a user", style="Title.TLabel").grid(row=3, column=0, columnspan=2, sticky="w")
        self.username, self.reason = tk.StringVar(self), tk.StringVar(self)
        for row, (label, variable) in enumerate((("User", self.username), ("Reason (optional)", self.reason)), 4):
            ttk.Label(body, text=label).grid(row=row, column=0, sticky="w", pady=(8, 0), padx=(0, 8))
            entry = ttk.Entry(body, textvariable=variable)
            entry.grid(row=row, column=1, sticky="ew", pady=(8, 0))
            if variable is self.username:
                self.username_entry = entry
        self.kick_button = ttk.Button(body, text="Disconnect", command=self._kick)
        self.kick_button.grid(row=6, column=1, sticky="e", pady=(8, 0))
        self.status = ttk.Label(body, text="The user may log in again: this is not a ban.", style="Muted.TLabel")
        self.status.grid(row=7, column=0, columnspan=2, sticky="w", pady=(12, 0))

    def focus_on(self, section: str) -> None:
        """Put the cursor in the announcement or the user field."""
        (self.announce_entry if section == "announce" else self.username_entry).focus_set()

    def _announce(self) -> None:
        text = self.announcement.get().strip()
        if not text:
            self.status.configure(text="Write the announcement first.", style="Error.TLabel")
        elif len(text) > ANNOUNCE_MAX:
            self.status.configure(text=f"At most {ANNOUNCE_MAX} characters.", style="Error.TLabel")
        else:
            self._on_announce(text)
            self.announcement.set("")
            self.status.configure(text="Announcement sent.", style="Muted.TLabel")

    def _kick(self) -> None:
        user = self.username.get().strip()
        if not user:
            self.status.configure(text="Name the user to disconnect.", style="Error.TLabel")
            return
        self._on_kick(user, self.reason.get().strip())
        self.username.set("")
        self.reason.set("")
        self.status.configure(text=f"Asked the server to disconnect {user}.", style="Muted.TLabel")


class AdminViews:
    """The app's moderation views: announcements for everyone, the Admin window for administrators."""

    main: Any
    login: Any
    admin: Any
    admin_window: Optional[AdminWindow]

    def show_error(self, text: str) -> None: ...

    def _admin_clicked(self, section: str) -> None:
        """Open (or raise) the Admin window at ``section`` (``announce`` or ``kick``)."""
        if self.admin_window is None or not self.admin_window.winfo_exists():
            self.admin_window = AdminWindow(self.main if self.main is not None else self.login,
                                            self._announce_clicked, self._kick_clicked)
        self.admin_window.lift()
        self.admin_window.focus_on(section)

    def _announce_clicked(self, text: str) -> None:
        try:
            self.admin.announce(text)
        except NotConnected as exc:
            self.show_error(str(exc))

    def _kick_clicked(self, username: str, reason: str) -> None:
        try:
            self.admin.kick(username, reason)
        except NotConnected as exc:
            self.show_error(str(exc))

    def announcement(self, text: str, by: str) -> None:
        if self.main is not None:
            self.main.show_announcement(text, by)

    def admin_changed(self, available: bool) -> None:
        if self.main is not None:
            self.main.set_admin(available)
        if not available and self.admin_window is not None and self.admin_window.winfo_exists():
            self.admin_window.destroy()
