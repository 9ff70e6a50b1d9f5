"""The first-contact dialog: show a server's certificate fingerprint and ask whether to trust it."""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Callable


class TrustDialog(tk.Toplevel):
    """Not modal (the app keeps pumping); ``on_answer(True/False)`` is called once."""

    def __init__(self, master: tk.Misc, server: str, fingerprint: str, on_answer: Callable[[bool], None],
                 cluster: str = "") -> None:
        """``cluster``: the server list ``server`` belongs to, whose nodes all share the answer."""
        super().__init__(master)
        self.title("Unknown server certificate")
        self.minsize(460, 220)
        self._on_answer: Callable[[bool], None] | None = on_answer
        self.protocol("WM_DELETE_WINDOW", lambda: self.answer(False))
        body = ttk.Frame(self, padding=20)
        body.pack(fill="both", expand=True)
        ttk.Label(body, text=f"First connection to {server}", style="Title.TLabel").pack(anchor="w")
        ttk.Label(body, wraplength=520, justify="left",
                  text="This server uses a certificate that no certificate authority vouches for. "
                       "Compare its fingerprint with the one the server's operator gave you "
                       "(the server logs it at start). If they match, trust it: this client will "
                       "remember it and warn you if it ever changes.").pack(anchor="w", pady=(8, 8))
        self.cluster = ttk.Label(body, wraplength=520, justify="left",
                                 text=f"The answer holds for every server of the list ({cluster}): the nodes "
                                      "of a cluster all serve this certificate." if cluster else "")
        if cluster:
            self.cluster.pack(anchor="w", pady=(0, 8))
        ttk.Label(body, text="SHA-256 fingerprint:").pack(anchor="w")
        pairs = fingerprint.split(":")
        shown = "\n".join(":".join(pairs[i:i + 16]) for i in range(0, len(pairs), 16))
        self.fingerprint = tk.Text(body, height=2, width=50, font=("TkFixedFont", 11), relief="flat",
                                   background="#f3f4f6")
        self.fingerprint.insert("1.0", shown)
        self.fingerprint.configure(state="disabled")
        self.fingerprint.pack(anchor="w", fill="x", pady=(2, 12))
        buttons = ttk.Frame(body)
        buttons.pack(anchor="e")
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=lambda: self.answer(False))
        self.cancel_button.pack(side="right")
        self.trust_button = ttk.Button(buttons, text="Trust and connect", style="Accent.TButton",
                                       command=lambda: self.answer(True))
        self.trust_button.pack(side="right", padx=(0, 8))
        self.bind("<Escape>", lambda _e: self.answer(False))

    def answer(self, trusted: bool) -> None:
        callback, self._on_answer = self._on_answer, None
        if callback is not None:
            callback(trusted)
        self.destroy()
