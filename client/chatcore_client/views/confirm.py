"""A yes/no question in its own small window, for actions that cannot be undone (deleting a
room, handing it over). Not ``tkinter.messagebox``: that one is modal and runs a nested event
loop, which would stall the app's queue pump while it is open; this one is an ordinary
Toplevel whose buttons call back, so the app keeps working (and tests can press the buttons).
"""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Callable


class ConfirmDialog(tk.Toplevel):
    """``question`` with Cancel and a button saying ``action``; ``on_yes`` runs only for the latter."""

    def __init__(self, master: tk.Misc, title: str, question: str, action: str, on_yes: Callable[[], None]) -> None:
        super().__init__(master)
        self.title(title)
        self.minsize(360, 120)
        self.transient(master)  # type: ignore[call-overload]
        body = ttk.Frame(self, padding=16)
        body.pack(fill="both", expand=True)
        self.question = ttk.Label(body, text=question, wraplength=360, justify="left")
        self.question.pack(anchor="w")
        buttons = ttk.Frame(body)
        buttons.pack(anchor="e", pady=(14, 0))
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.destroy)
        self.cancel_button.pack(side="right")
        self.yes_button = ttk.Button(buttons, text=action, style="Danger.TButton", command=lambda: self._yes(on_yes))
        self.yes_button.pack(side="right", padx=(0, 8))
        self.bind("<Escape>", lambda _e: self.destroy())
        self.cancel_button.focus_set()  # Enter on a reflex does not delete anything

    def _yes(self, on_yes: Callable[[], None]) -> None:
        self.destroy()
        on_yes()
