"""The Devices window: the user's devices that hold a login token, and a way to sign one out."""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Any, Callable, Optional

from chatcore_client.connection import NotConnected
from chatcore_client.state import local_time


class DevicesWindow(tk.Toplevel):
    """A list of devices (name, last used, from where, online now) with Revoke for the selected one."""

    def __init__(self, master: tk.Misc, on_revoke: Callable[[str], None], on_refresh: Callable[[], None]) -> None:
        super().__init__(master)
        self.title("Devices")
        self.minsize(520, 240)
        self._on_revoke = on_revoke
        body = ttk.Frame(self, padding=16)
        body.pack(fill="both", expand=True)
        ttk.Label(body, text="Devices signed in to your account", style="Title.TLabel").pack(anchor="w")
        self.tree = ttk.Treeview(body, columns=("used", "address", "state"), show="tree headings", height=8,
                                 selectmode="browse")
        self.tree.heading("#0", text="Device")
        self.tree.heading("used", text="Last used")
        self.tree.heading("address", text="From")
        self.tree.heading("state", text="")
        self.tree.column("#0", width=200)
        self.tree.column("used", width=110)
        self.tree.column("address", width=110)
        self.tree.column("state", width=110)
        self.tree.pack(fill="both", expand=True, pady=(10, 0))
        self.tree.bind("<<TreeviewSelect>>", lambda _e: self._selection_changed())
        buttons = ttk.Frame(body)
        buttons.pack(fill="x", pady=(10, 0))
        self.status = ttk.Label(buttons, text="Loading…", style="Muted.TLabel")
        self.status.pack(side="left")
        self.revoke_button = ttk.Button(buttons, text="Revoke", state="disabled", command=self._revoke)
        self.revoke_button.pack(side="right")
        ttk.Button(buttons, text="Refresh", command=on_refresh).pack(side="right", padx=(0, 8))

    def show(self, devices: list[dict[str, Any]]) -> None:
        """Replace the list with what the server reported."""
        self.tree.delete(*self.tree.get_children())
        for device in devices:
            name = str(device.get("device", ""))
            state = "this device" if device.get("current") else ("online" if device.get("online") else "")
            self.tree.insert("", "end", iid=name, text=name,
                             values=(local_time(str(device.get("last_used", ""))), device.get("last_address", ""),
                                     state))
        self.status.configure(text=f"{len(devices)} device(s)" if devices else "No device holds a token.")
        self._selection_changed()

    def names(self) -> list[str]:
        """The device names shown, in order."""
        return list(self.tree.get_children())

    def _selection_changed(self) -> None:
        self.revoke_button.configure(state="normal" if self.tree.selection() else "disabled")

    def _revoke(self) -> None:
        for name in self.tree.selection():
            self.status.configure(text=f"Signing {name} out…")
            self._on_revoke(name)


class DeviceViews:
    """The app's part of the View protocol for devices: the Devices window (a mixin of ``App``)."""

    main: Any
    login: Any
    auth: Any
    devices_window: Optional[DevicesWindow]

    def show_error(self, text: str) -> None: ...

    def _devices_clicked(self) -> None:
        """Open (or raise) the Devices window and ask the server for the list."""
        if self.devices_window is None or not self.devices_window.winfo_exists():
            parent = self.main if self.main is not None else self.login
            self.devices_window = DevicesWindow(parent, self._revoke_clicked, self._refresh_devices)
        self.devices_window.lift()
        self._refresh_devices()

    def _refresh_devices(self) -> None:
        try:
            self.auth.list_devices()
        except NotConnected as exc:
            self.show_error(str(exc))

    def _revoke_clicked(self, device: str) -> None:
        try:
            self.auth.revoke_device(device)
        except NotConnected as exc:
            self.show_error(str(exc))

    def devices_listed(self, devices: list[dict[str, Any]]) -> None:
        if self.devices_window is not None and self.devices_window.winfo_exists():
            self.devices_window.show(devices)
