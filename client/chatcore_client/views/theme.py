"""One look for every window: the ttk theme, fonts and colours."""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from tkinter import ttk

ACCENT = "#2563eb"
OWN = "#1d4ed8"
OTHER = "#047857"
MUTED = "#6b7280"
ERROR = "#b91c1c"
WARNING = "#b45309"
OK = "#15803d"
SIDEBAR = "#f3f4f6"
PANE = "#ffffff"
DISABLED = "#e5e7eb"
ANNOUNCEMENT = "#fef3c7"  # a server-wide announcement's banner
MENTION = "#fef3c7"  # a message that mentions this user


def apply(root: tk.Misc) -> None:
    """Use the ``clam`` theme with slightly larger fonts (readable on 1280×800) and named styles."""
    style = ttk.Style(root)
    if "clam" in style.theme_names():
        style.theme_use("clam")
    for name in ("TkDefaultFont", "TkTextFont", "TkMenuFont", "TkHeadingFont"):
        tkfont.nametofont(name, root=root).configure(size=11)
    style.configure("Error.TLabel", foreground=ERROR)
    style.configure("Warning.TLabel", foreground=WARNING)
    style.configure("Ok.TLabel", foreground=OK)
    style.configure("Muted.TLabel", foreground=MUTED)
    style.configure("Title.TLabel", font=("TkDefaultFont", 14, "bold"))
    style.configure("Sidebar.TFrame", background=SIDEBAR)
    style.configure("Sidebar.TLabel", background=SIDEBAR, font=("TkDefaultFont", 11, "bold"))
    style.configure("Conversations.Treeview", rowheight=28, background=SIDEBAR, fieldbackground=SIDEBAR,
                    borderwidth=0)
    style.configure("Accent.TButton", foreground="white", background=ACCENT)
    style.configure("Announcement.TFrame", background=ANNOUNCEMENT)
    style.configure("Announcement.TLabel", background=ANNOUNCEMENT, font=("TkDefaultFont", 11, "bold"))
    style.configure("Horizontal.TProgressbar", background=ACCENT, troughcolor="#e5e7eb")
    # clam draws a disabled entry white like an active one: grey it so it does not invite typing
    style.map("TEntry", fieldbackground=[("disabled", DISABLED), ("readonly", DISABLED)],
              foreground=[("disabled", MUTED)])
    style.map("Accent.TButton", background=[("active", "#1e40af"), ("disabled", "#93c5fd")])
    style.configure("Danger.TButton", foreground="white", background=ERROR)  # what cannot be undone
    style.map("Danger.TButton", background=[("active", "#991b1b"), ("disabled", "#fca5a5")])
