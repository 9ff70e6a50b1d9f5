"""The Login window, as in the original system plus a server address and a status line."""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Callable

# on_submit(host, port_text, username, password)
Submit = Callable[[str, str, str, str], None]
PADDING = 20


class LoginWindow(tk.Toplevel):
    """Title "Login", at least 300×180, resizable, 20 px padding; Return logs in."""

    def __init__(self, master: tk.Misc, host: str, port: int, on_login: Submit, on_register: Submit,
                 on_close: Callable[[], None]) -> None:
        super().__init__(master)
        self.title("Login")
        self.minsize(300, 180)
        self.resizable(True, True)
        self.protocol("WM_DELETE_WINDOW", on_close)
        self._on_login, self._on_register = on_login, on_register
        body = ttk.Frame(self, padding=PADDING)
        body.pack(fill="both", expand=True)
        body.columnconfigure(1, weight=1)

        self.host = tk.StringVar(self, host)
        self.port = tk.StringVar(self, str(port))
        self.username = tk.StringVar(self)
        self.password = tk.StringVar(self)
        self.remember = tk.BooleanVar(self, False)

        ttk.Label(body, text="Server").grid(row=0, column=0, sticky="w", pady=4, padx=(0, 10))
        server = ttk.Frame(body)
        server.grid(row=0, column=1, sticky="ew")
        server.columnconfigure(0, weight=1)
        self.host_entry = ttk.Entry(server, textvariable=self.host, width=18)
        self.host_entry.grid(row=0, column=0, sticky="ew")
        ttk.Label(server, text=":").grid(row=0, column=1, padx=2)
        self.port_entry = ttk.Entry(server, textvariable=self.port, width=6)
        self.port_entry.grid(row=0, column=2)

        ttk.Label(body, text="Username").grid(row=1, column=0, sticky="w", pady=4, padx=(0, 10))
        self.username_entry = ttk.Entry(body, textvariable=self.username)
        self.username_entry.grid(row=1, column=1, sticky="ew", pady=4)
        ttk.Label(body, text="Password").grid(row=2, column=0, sticky="w", pady=4, padx=(0, 10))
        self.password_entry = ttk.Entry(body, textvariable=self.password, show="*")
        self.password_entry.grid(row=2, column=1, sticky="ew", pady=4)

        self.remember_check = ttk.Checkbutton(body, text="Remember me", variable=self.remember)
        self.remember_check.grid(row=3, column=1, sticky="w", pady=(4, 0))

        buttons = ttk.Frame(body)
        buttons.grid(row=4, column=0, columnspan=2, pady=(12, 0), sticky="e")
        self.register_button = ttk.Button(buttons, text="Register", command=self.submit_register)
        self.register_button.pack(side="right")
        self.login_button = ttk.Button(buttons, text="Login", style="Accent.TButton", default="active",
                                       command=self.submit_login)
        self.login_button.pack(side="right", padx=(0, 8))

        self.status = ttk.Label(body, text="", wraplength=300 - 2 * PADDING, justify="left")
        self.status.grid(row=5, column=0, columnspan=2, sticky="ew", pady=(12, 0))
        body.rowconfigure(5, weight=1)
        # wrap at the width inside the padding: wrapping wider than that made a long error widen
        # the window, which widened the wrap, until the text fitted on one or two very long lines
        body.bind("<Configure>", lambda e: self.status.configure(wraplength=max(200, e.width - 2 * PADDING - 4)))

        for key in ("<Return>", "<KP_Enter>"):
            self.bind(key, lambda _e: self.submit_login())
        self.username_entry.focus_set()

    def release(self) -> None:
        """Drop the Tk variables on the Tk thread (garbage collection in another thread would call Tcl there)."""
        for name in ("host", "port", "username", "password", "remember"):
            setattr(self, name, None)

    def _values(self) -> tuple[str, str, str, str]:
        return self.host.get().strip(), self.port.get().strip(), self.username.get().strip(), self.password.get()

    def submit_login(self) -> None:
        if str(self.login_button["state"]) != "disabled":
            self._on_login(*self._values())

    def submit_register(self) -> None:
        if str(self.register_button["state"]) != "disabled":
            self._on_register(*self._values())

    def set_busy(self, busy: bool, text: str = "") -> None:
        """Disable the buttons while connecting or waiting for the server."""
        state = "disabled" if busy else "normal"
        self.login_button.configure(state=state)
        self.register_button.configure(state=state)
        if text:
            self.show_info(text)

    def show_error(self, text: str) -> None:
        self.status.configure(text=text, style="Error.TLabel")

    def show_warning(self, text: str) -> None:
        self.status.configure(text=text, style="Warning.TLabel")

    def show_info(self, text: str) -> None:
        self.status.configure(text=text, style="Muted.TLabel")
