"""Message features in the window: a message's context menu (edit, delete, react, pin), Up to
edit one's last message, "alice is typing…" under the conversation, the search window whose
results jump to the message, and the room's pinned messages in the header. ``FeatureViews``
is a mixin of ``App`` (like ``RoomViews``); ``SearchWindow`` is a widget with callbacks."""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Any, Callable, Optional

from chatcore_client.connection import NotConnected
from chatcore_client.handlers.features import FeatureHandlers
from chatcore_client.state import ROOM, Line, is_room, room_key
from chatcore_client.typing import label

EMOJI = ("👍", "❤️", "😂", "🎉", "👀", "✅")  # the reaction picker
TYPING_TICK_MS = 500  # how often "is typing" is redrawn (entries expire by the server's expires_in)
JUMP_PAGES = 20  # history pages loaded at most to reach a search result


class SearchWindow(tk.Toplevel):
    """Results of one query, newest first; Open (or a double-click) jumps to the message."""

    def __init__(self, master: tk.Misc, query: str, on_open: Callable[[dict[str, Any]], None],
                 on_more: Callable[[str, str], None]) -> None:
        super().__init__(master)
        self.title(f"Search: {query}")
        self.geometry("560x360")
        self.query, self.on_open, self.on_more = query, on_open, on_more
        self.results: list[dict[str, Any]] = []
        self.next_before: Optional[str] = None
        body = ttk.Frame(self, padding=10)
        body.pack(fill="both", expand=True)
        self.status = ttk.Label(body, text="Searching…", style="Muted.TLabel")
        self.status.pack(anchor="w")
        self.list = tk.Listbox(body, activestyle="dotbox", font=("TkTextFont", 11))
        self.list.pack(fill="both", expand=True, pady=6)
        self.list.bind("<Double-Button-1>", lambda _e: self.open_selected())
        self.list.bind("<Return>", lambda _e: self.open_selected())
        buttons = ttk.Frame(body)
        buttons.pack(fill="x")
        self.open_button = ttk.Button(buttons, text="Open", command=self.open_selected)
        self.open_button.pack(side="right")
        self.more_button = ttk.Button(buttons, text="More", command=self._more, state="disabled")
        self.more_button.pack(side="right", padx=6)

    def show(self, reply: dict[str, Any]) -> None:
        """Add a page of results."""
        for result in reply.get("results", []):
            if not isinstance(result, dict):
                continue
            self.results.append(result)
            where = f"#{result['room']}" if result.get("room") else (result.get("peer") or "Everyone")
            self.list.insert("end", f"{result.get('sender')} in {where}: {result.get('message')}")
        self.next_before = reply.get("next_before") if reply.get("has_more") else None
        self.more_button.configure(state="normal" if self.next_before else "disabled")
        self.status.configure(text=f"{len(self.results)} result(s) for {self.query!r}")
        if self.results and not self.list.curselection():
            self.list.selection_set(0)

    def open_selected(self) -> None:
        selection = self.list.curselection()
        if selection:
            self.on_open(self.results[selection[0]])

    def _more(self) -> None:
        if self.next_before:
            self.on_more(self.query, self.next_before)


class FeatureViews:
    """The app's wiring of the message features (a mixin of ``App``)."""

    root: tk.Tk
    main: Any
    ctx: Any
    state: Any
    chat: Any
    rooms: Any
    dispatcher: Any
    conversations_changed: Callable[[], None]
    features: FeatureHandlers
    search_window: Optional[SearchWindow]
    message_menu: Optional[tk.Menu]
    _jump: Optional[tuple[str, int, int]]  # (key, id, pages left) of a search result being reached

    def _setup_features(self) -> None:
        self.features = FeatureHandlers(self.ctx)
        self.features.register(self.dispatcher)
        self.features.results = self._search_results
        self.features.pins_changed = self._pins_changed
        for event in ("private_message", "broadcast_message", "room_message"):  # a message ends its typing
            self.dispatcher.register(event, self._typist_done)
        self.search_window, self.message_menu, self._jump = None, None, None
        self.root.after(TYPING_TICK_MS, self._typing_tick)

    def _feature_callbacks(self) -> dict[str, Any]:
        """The main window's callbacks for the features."""
        return {"edit": self._safe(self.features.edit), "edit_last": self._edit_last, "context": self._message_context,
                "typed": self._safe(self.features.typed), "search": self._search_clicked}

    def _safe(self, action: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                action(*args)
            except NotConnected as exc:
                self.ctx.notice(self.state.current, f"Not done: {exc}")
        return run

    # -- the View protocol -----------------------------------------------------------------------

    def line_changed(self, key: str, line: Line) -> None:
        if self.main is not None and key in self.main.panes:
            self.main.pane(key).replace(line)

    def typing_changed(self, key: str) -> None:
        self._show_typing()

    def _typist_done(self, message: dict[str, Any]) -> None:
        sender = str(message.get("sender") or message.get("peer") or "")
        key = room_key(str(message["room"])) if message.get("type") == "room_message" else \
            (ROOM if message.get("type") == "broadcast_message" else sender)
        self.features.typing.stopped(key, sender)
        self._show_typing()

    def _show_typing(self) -> None:
        if self.main is not None:
            self.main.show_typing(label(self.features.typing.who(self.state.current)))

    def _typing_tick(self) -> None:
        if getattr(self, "closing", False):
            return
        self._show_typing()
        self.root.after(TYPING_TICK_MS, self._typing_tick)

    # -- the context menu ------------------------------------------------------------------------

    def _message_context(self, key: str, line_id: int, x: int, y: int) -> None:
        """Right-click on a message: what this user may do with it."""
        line = self.state.conversation(key).find(line_id)
        if line is None or line.deleted:
            return
        menu = tk.Menu(self.main, tearoff=False)
        role = str(self.state.conversation(key).room.get("role", "")) if is_room(key) else ""
        moderator = role in ("owner", "moderator")
        if line.own:
            menu.add_command(label="Edit", command=lambda: self.main.start_editing(key, line_id, line.text))
        if line.own or moderator or self.state.admin:
            menu.add_command(label="Delete", command=lambda: self._safe(self.features.delete)(key, line_id))
        picker = tk.Menu(menu, tearoff=False)
        react = self._safe(self.features.react)
        for emoji in EMOJI:
            picker.add_command(label=emoji, command=self._bound(react, key, line_id, emoji))
        menu.add_cascade(label="React", menu=picker)
        if is_room(key) and moderator:
            pinned = line_id in self.state.conversation(key).room.get("pins", [])
            menu.add_command(label="Unpin" if pinned else "Pin",
                             command=lambda: self._safe(self.features.pin)(key, line_id, not pinned))
        self.message_menu = menu
        menu.tk_popup(x, y)
        menu.grab_release()

    @staticmethod
    def _bound(action: Callable[..., None], *args: Any) -> Callable[[], None]:
        return lambda: action(*args)

    def _edit_last(self, key: str) -> None:
        line = self.features.last_own(key)
        if line is not None and isinstance(line.id, int) and self.main is not None:
            self.main.start_editing(key, line.id, line.text)

    # -- search ----------------------------------------------------------------------------------

    def _search_clicked(self, query: str) -> None:
        if self.search_window is not None and self.search_window.winfo_exists():
            self.search_window.destroy()
        self.search_window = SearchWindow(self.main, query, self._open_result, self._more_results)
        self._safe(self.features.search)(query)

    def _more_results(self, query: str, before: str) -> None:
        self._safe(self.features.search)(query, before)

    def _search_results(self, reply: dict[str, Any]) -> None:
        if self.search_window is not None and self.search_window.winfo_exists():
            self.search_window.show(reply)

    def _open_result(self, result: dict[str, Any]) -> None:
        """Open the result's conversation and scroll to it, paging older history in as needed."""
        if result.get("room"):
            key, line_id = room_key(str(result["room"])), int(result.get("seq") or 0)
        else:
            key, line_id = str(result.get("peer", "")), int(result.get("id") or 0)
        self.state.conversation(key)
        self.conversations_changed()
        self.main.select(key)
        self._jump = (key, line_id, JUMP_PAGES)
        self._continue_jump(key)

    def _continue_jump(self, key: str) -> None:
        """Lines arrived in ``key``: is the search result there yet? Else ask for older ones."""
        if self._jump is None or self._jump[0] != key or self.main is None:
            return
        _, line_id, pages = self._jump
        if self.main.pane(key).see_message(line_id):
            self._jump = None
            return
        conversation = self.state.conversation(key)
        if pages <= 0 or (conversation.loaded and not conversation.has_more and not conversation.loading):
            self._jump = None
            self.ctx.notice(key, "That message is no longer in the history.")
            return
        if conversation.loaded and not conversation.loading and self.chat.load_older(key):
            self._jump = (key, line_id, pages - 1)

    # -- pins --------------------------------------------------------------------------------------

    def _pins_changed(self, key: str) -> None:
        if key == self.state.current:
            self._show_pins()

    def _show_pins(self) -> None:
        if self.main is None:
            return
        key = self.state.current
        pins = self.features.pins.get(key, []) if is_room(key) else []
        if not pins:
            self.main.show_pins("")
            return
        newest = pins[-1]
        text = str(newest.get("message", ""))
        more = f"  (+{len(pins) - 1} more)" if len(pins) > 1 else ""
        self.main.show_pins(f"📌 {newest.get('sender')}: {text[:60]}{'…' if len(text) > 60 else ''}{more}")

    def _current_changed(self) -> None:
        """Another conversation is shown: its typists and, for a room, its pins."""
        key = self.state.current
        if is_room(key) and key not in self.features.pins and self.rooms.available and self.ctx_connected():
            self.features.pins[key] = []
            self._safe(self.features.ask_pins)(key)
        self._show_pins()
        self._show_typing()

    def ctx_connected(self) -> bool:
        return getattr(self, "client", None) is not None
