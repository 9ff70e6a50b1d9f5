"""The main window: conversation list on the left (the global room, rooms with unread and
mention badges, private conversations), one message pane per conversation on the right, a
header with the room's topic and its actions."""

from __future__ import annotations

import tkinter as tk
from dataclasses import dataclass
from tkinter import ttk
from typing import Callable, Optional

from chatcore_client.state import ROOM, Conversation, is_room
from chatcore_client.views import theme
from chatcore_client.views.pane import MessagePane


@dataclass
class MainCallbacks:
    """What the window reports; the app wires these to handlers."""

    select: Callable[[str], None]
    send: Callable[[str], None]
    send_file: Callable[[], None]
    scrolled_to_top: Callable[[str], None]
    close: Callable[[], None]
    devices: Callable[[], None] = lambda: None
    admin: Callable[[str], None] = lambda section: None  # "announce" or "kick": open the Admin window there
    new_room: Callable[[], None] = lambda: None
    browse: Callable[[], None] = lambda: None
    members: Callable[[str], None] = lambda key: None
    topic: Callable[[str], None] = lambda key: None
    leave: Callable[[str], None] = lambda key: None
    delete_room: Callable[[str], None] = lambda key: None  # the owner's Delete room… (asks first)
    focused: Callable[[], None] = lambda: None
    edit: Callable[[str, int, str], None] = lambda key, line_id, text: None  # a message's new text
    edit_last: Callable[[str], None] = lambda key: None  # Up in an empty compose box
    context: Callable[[str, int, int, int], None] = lambda key, line_id, x, y: None  # right-click on a message
    typed: Callable[[str], None] = lambda key: None  # a key press in the compose box
    search: Callable[[str], None] = lambda query: None


class MainWindow(tk.Toplevel):
    """Conversations with online state and unread counts; the open one's pane; the compose row."""

    def __init__(self, master: tk.Misc, user: str, callbacks: MainCallbacks) -> None:
        super().__init__(master)
        self.callbacks = callbacks
        self.base_title = f"chatcore — {user}"
        self.title(self.base_title)
        self.bind("<FocusIn>", lambda _e: self._focused())  # a mention's title lasts until looked at
        self.geometry("1040x660")
        self.minsize(640, 400)
        self.protocol("WM_DELETE_WINDOW", callbacks.close)
        self.panes: dict[str, MessagePane] = {}
        self.current = ROOM
        self.chat_enabled = True
        self.files_enabled = True
        self.conversations: dict[str, Conversation] = {}

        self.status = ttk.Label(self, text="Connected", style="Muted.TLabel", padding=(10, 3), anchor="w",
                                relief="sunken")
        self.status.pack(fill="x", side="bottom")  # packed first so it keeps its row when space is short
        split = ttk.PanedWindow(self, orient="horizontal")
        split.pack(fill="both", expand=True)
        side = ttk.Frame(split, style="Sidebar.TFrame", padding=(10, 12, 6, 10))
        main = ttk.Frame(split, padding=(0, 0, 0, 0))
        split.add(side, weight=0)
        split.add(main, weight=1)

        ttk.Label(side, text=f"Signed in as {user}", style="Sidebar.TLabel").pack(anchor="w", pady=(0, 8))
        self.tree = ttk.Treeview(side, style="Conversations.Treeview", show="tree", columns=("unread",),
                                 selectmode="browse", height=16)
        self.tree.column("#0", width=190, stretch=True)
        self.tree.column("unread", width=64, anchor="e", stretch=False)
        self.tree.tag_configure("online", foreground="#111827")
        self.tree.tag_configure("offline", foreground=theme.MUTED)
        self.tree.tag_configure("unread", font=("TkDefaultFont", 11, "bold"))
        self.tree.tag_configure("mention", foreground=theme.ERROR)
        self.tree.pack(fill="both", expand=True)
        self.tree.bind("<<TreeviewSelect>>", self._selected)
        self.room_buttons = ttk.Frame(side, style="Sidebar.TFrame")
        self.new_room_button = ttk.Button(self.room_buttons, text="New room…", command=callbacks.new_room)
        self.new_room_button.pack(side="left")
        self.browse_button = ttk.Button(self.room_buttons, text="Browse rooms…", command=callbacks.browse)
        self.browse_button.pack(side="left", padx=(6, 0))
        self.devices_button = ttk.Button(side, text="Devices…", command=callbacks.devices)
        self.devices_button.pack(anchor="w", pady=(8, 0))
        # Shown only to a server administrator (set_admin); the server checks every request anyway.
        self.admin_button = ttk.Menubutton(side, text="Admin ▾")
        self.admin_menu = tk.Menu(self.admin_button, tearoff=False)
        self.admin_menu.add_command(label="Announce to everyone…", command=lambda: callbacks.admin("announce"))
        self.admin_menu.add_command(label="Disconnect a user…", command=lambda: callbacks.admin("kick"))
        self.admin_button.configure(menu=self.admin_menu)

        header = ttk.Frame(main, padding=(14, 10))
        header.grid(row=0, column=0, sticky="ew")
        self.title_label = ttk.Label(header, text="Everyone", style="Title.TLabel")
        self.title_label.pack(side="left")
        self.presence_label = ttk.Label(header, text="", style="Muted.TLabel")
        # A room's actions are one menu, so the header fits 1280x800 with a search box and a topic.
        self.room_actions = ttk.Menubutton(header, text="Room", width=6)  # the theme draws the arrow
        self.room_menu = tk.Menu(self.room_actions, tearoff=False)
        self.room_actions.configure(menu=self.room_menu)
        self.search_entry = ttk.Entry(header, width=22)
        self.search_entry.pack(side="right", padx=(6, 0))
        self.search_entry.bind("<Return>", lambda _e: self._search())
        ttk.Label(header, text="Search", style="Muted.TLabel").pack(side="right")
        self.presence_label.pack(side="left", padx=(10, 0))  # packed last: a long topic is cut, not the buttons
        self.pins_label = ttk.Label(header, text="", style="Muted.TLabel")
        self.banner = ttk.Frame(main, style="Announcement.TFrame", padding=(14, 6))
        self.banner_text = ttk.Label(self.banner, text="", style="Announcement.TLabel", wraplength=640, justify="left")
        self.banner_text.pack(side="left", fill="x", expand=True)
        ttk.Button(self.banner, text="Dismiss", command=self.banner.grid_remove).pack(side="right")
        ttk.Separator(main).grid(row=2, column=0, sticky="ew")

        self.stack = ttk.Frame(main)
        self.stack.grid(row=3, column=0, sticky="nsew")
        self.stack.rowconfigure(0, weight=1)
        self.stack.columnconfigure(0, weight=1)

        self.typing_label = ttk.Label(main, text="", style="Muted.TLabel", padding=(14, 0))
        self.typing_label.grid(row=4, column=0, sticky="ew")
        compose = ttk.Frame(main, padding=(10, 8))
        compose.grid(row=5, column=0, sticky="ew")
        compose.columnconfigure(0, weight=1)
        self.draft = tk.StringVar(self)
        self.draft.trace_add("write", lambda *_: self._draft_changed())  # typing: any change of the draft
        self.entry = ttk.Entry(compose, font=("TkTextFont", 11), textvariable=self.draft)
        self.entry.grid(row=0, column=0, sticky="ew", ipady=4)
        self.entry.bind("<Return>", lambda _e: self._send())
        self.entry.bind("<KP_Enter>", lambda _e: self._send())
        self.entry.bind("<Up>", lambda _e: self._up())
        self.entry.bind("<Escape>", lambda _e: self.stop_editing())
        self.editing: Optional[tuple[str, int]] = None  # (key, id) of the message being edited
        self.send_button = ttk.Button(compose, text="Send", style="Accent.TButton", command=self._send)
        self.send_button.grid(row=0, column=1, padx=(8, 0))
        self.file_button = ttk.Button(compose, text="Send file…", command=callbacks.send_file)
        self.file_button.grid(row=0, column=2, padx=(8, 0))
        main.rowconfigure(3, weight=1)
        main.columnconfigure(0, weight=1)

        self.bind("<Control-Prior>", lambda _e: self._step(-1))
        self.bind("<Control-Next>", lambda _e: self._step(1))
        self.entry.focus_set()

    def _focused(self) -> None:
        """The window got the focus back: plain title again, and the open conversation is read."""
        self.title(self.base_title)
        self.callbacks.focused()

    # -- conversations -------------------------------------------------------------------------

    def pane(self, key: str) -> MessagePane:
        """The message pane of a conversation, made on first use."""
        if key not in self.panes:
            pane = MessagePane(self.stack, key, self.callbacks.scrolled_to_top, self.callbacks.context)
            pane.grid(row=0, column=0, sticky="nsew")
            self.panes[key] = pane
        return self.panes[key]

    @staticmethod
    def iid(key: str) -> str:
        """The tree item of a conversation ("" is the tree's own root, so the room gets a name)."""
        return "room" if key == ROOM else f"peer:{key}"

    @staticmethod
    def key_of(iid: str) -> str:
        return ROOM if iid == "room" else iid.removeprefix("peer:")

    def show_conversations(self, conversations: list[Conversation], current: str) -> None:
        """Redraw the list: ● online, ○ offline, # the global room and rooms; unread counts on the
        right, mentions of this user first (``@2 · 5``)."""
        self.conversations = {c.key: c for c in conversations}
        wanted = [self.iid(c.key) for c in conversations]
        for item in self.tree.get_children():
            if item not in wanted:
                self.tree.delete(item)
        for index, conversation in enumerate(conversations):
            key = self.iid(conversation.key)
            room = conversation.key == ROOM or conversation.is_room
            mark = "#" if conversation.key == ROOM else ("" if room else ("●" if conversation.online else "○"))
            tags = ["online" if conversation.online else "offline"] + (["unread"] if conversation.unread else []) \
                + (["mention"] if conversation.mentions else [])
            values = (badge(conversation),)
            if self.tree.exists(key):
                self.tree.item(key, text=f"{mark}  {conversation.title}", values=values, tags=tags)
                self.tree.move(key, "", index)
            else:
                self.tree.insert("", index, iid=key, text=f"{mark}  {conversation.title}", values=values, tags=tags)
            if conversation.key == current:
                self.presence_label.configure(text="" if room else ("online" if conversation.online else "offline"))
        if self.tree.exists(self.iid(current)) and self.tree.selection() != (self.iid(current),):
            self.tree.selection_set(self.iid(current))
        self.show(current, conversations)

    def show(self, key: str, conversations: Optional[list[Conversation]] = None) -> None:
        """Raise a conversation's pane and set the header."""
        self.current = key
        self.pane(key).tkraise()
        self.title_label.configure(text="Everyone" if key == ROOM else key)
        conversation = self.conversations.get(key)
        if conversation is not None and conversation.is_room:
            info = conversation.room
            self.presence_label.configure(text=str(info.get("topic") or "no topic") +
                                          f"  ·  {info.get('members', '?')} members" +
                                          ("  ·  private" if info.get("private") else ""))
            self._room_menu(str(info.get("role")))
            self.room_actions.pack(side="right", padx=(0, 10), before=self.presence_label)
        else:
            self.room_actions.pack_forget()
        self._update_compose()

    def _room_menu(self, role: str) -> None:
        """The Room menu by role: Members…, Edit topic… (moderators), Leave, Delete room… (the owner; it asks first)."""
        menu, callbacks = self.room_menu, self.callbacks
        menu.delete(0, "end")
        menu.add_command(label="Members…", command=lambda: callbacks.members(self.current))
        if role in ("owner", "moderator"):
            menu.add_command(label="Edit topic…", command=lambda: callbacks.topic(self.current))
        menu.add_separator()
        menu.add_command(label="Leave", command=lambda: callbacks.leave(self.current))
        if role == "owner":
            menu.add_command(label="Delete room…", command=lambda: callbacks.delete_room(self.current))

    def room_menu_labels(self) -> list[str]:
        """The Room menu's commands, in order (for tests)."""
        end = self.room_menu.index("end")
        return [] if end is None else [str(self.room_menu.entrycget(i, "label")) for i in range(end + 1)
                                       if self.room_menu.type(i) == "command"]

    def _selected(self, _event: object) -> None:
        selection = self.tree.selection()
        if selection and self.key_of(selection[0]) != self.current:
            self.callbacks.select(self.key_of(selection[0]))

    def select(self, key: str) -> None:
        """Open a conversation as if the user clicked it."""
        if self.tree.exists(self.iid(key)):
            self.tree.selection_set(self.iid(key))
        self.callbacks.select(key)

    def _step(self, delta: int) -> None:
        items = [self.key_of(item) for item in self.tree.get_children()]
        if self.current in items:
            self.select(items[(items.index(self.current) + delta) % len(items)])

    # -- compose -------------------------------------------------------------------------------

    def _send(self) -> None:
        text = self.entry.get()
        if text.strip() and self.chat_enabled:
            if self.editing is not None:
                key, line_id = self.editing
                self.callbacks.edit(key, line_id, text.strip())
                self.stop_editing()
                return
            self.callbacks.send(text)
            self.entry.delete(0, "end")

    def start_editing(self, key: str, line_id: int, text: str) -> None:
        """Put a message's text in the compose box; Enter saves it, Escape gives up."""
        self.editing = (key, line_id)
        self.entry.delete(0, "end")
        self.entry.insert(0, text)
        self.send_button.configure(text="Save")
        self.entry.focus_set()

    def stop_editing(self) -> None:
        if self.editing is not None:
            self.editing = None
            self.entry.delete(0, "end")
            self.send_button.configure(text="Send")

    def _up(self) -> None:
        if not self.entry.get() and self.editing is None:
            self.callbacks.edit_last(self.current)

    def _draft_changed(self) -> None:
        if self.editing is None and self.chat_enabled and self.draft.get().strip():
            self.callbacks.typed(self.current)

    def _search(self) -> None:
        query = self.search_entry.get().strip()
        if query:
            self.callbacks.search(query)

    def show_typing(self, text: str) -> None:
        self.typing_label.configure(text=text)

    def show_pins(self, text: str) -> None:
        """The room's pinned messages under the header ("" hides the line)."""
        self.pins_label.configure(text=text)
        if text:
            self.pins_label.pack(side="left", padx=(14, 0), after=self.presence_label)
        else:
            self.pins_label.pack_forget()

    def set_features(self, chat: bool, files: bool, rooms: bool = False) -> None:
        """Hide what the server does not offer."""
        self.chat_enabled, self.files_enabled = chat, files
        if rooms:
            self.room_buttons.pack(anchor="w", pady=(8, 0), before=self.devices_button)
        else:
            self.room_buttons.pack_forget()
        if not chat:
            self.entry.delete(0, "end")
            self.entry.insert(0, "This server has no chat plugin: messages cannot be sent.")
            self.entry.configure(state="disabled")
            self.send_button.grid_remove()
        if not files:
            self.file_button.grid_remove()
        self._update_compose()

    def _update_compose(self) -> None:
        if self.files_enabled:
            self.file_button.configure(state="disabled" if self.current == ROOM or is_room(self.current) else "normal")

    def set_admin(self, admin: bool) -> None:
        """Offer the Admin menu, or take it away."""
        if admin:
            self.admin_button.pack(anchor="w", pady=(8, 0))
        else:
            self.admin_button.pack_forget()

    def show_announcement(self, text: str, by: str) -> None:
        """Show a server-wide announcement above the conversation until dismissed."""
        self.banner_text.configure(text=f"Announcement from {by or 'the server'}: {text}")
        self.banner.grid(row=1, column=0, sticky="ew")

    def set_status(self, text: str, level: str = "info") -> None:
        style = {"info": "Muted.TLabel", "ok": "Ok.TLabel", "warning": "Warning.TLabel", "error": "Error.TLabel"}
        self.status.configure(text=text, style=style.get(level, "Muted.TLabel"))


def badge(conversation: Conversation) -> str:
    """The sidebar's count: unread messages, with this user's mentions first (``@2 · 5``)."""
    if conversation.mentions:
        return f"@{conversation.mentions} · {conversation.unread}"
    return str(conversation.unread) if conversation.unread else ""
