"""Room windows: create a room, browse and join public rooms, the member list (roles, presence,
invite, kick, ban and unban, promote, hand over), the topic editor; and ``RoomViews``, the app's
wiring of them (a mixin of ``App``), with deleting a room and the notification of a mention.
Widgets with callbacks only: the handlers send the commands."""

from __future__ import annotations

import tkinter as tk
from functools import cached_property
from tkinter import ttk
from typing import Any, Callable, Optional

from chatcore_client.connection import NotConnected
from chatcore_client.notify import Notifier
from chatcore_client.state import Line, room_key
from chatcore_client.views.confirm import ConfirmDialog

RANK = {"owner": 3, "moderator": 2, "member": 1}


class NewRoomDialog(tk.Toplevel):
    """Name, topic, public or private; Create sends ``room_create``."""

    def __init__(self, master: tk.Misc, on_create: Callable[[str, str, bool], None]) -> None:
        super().__init__(master)
        self.title("New room")
        self.minsize(360, 200)
        self.on_create = on_create
        body = ttk.Frame(self, padding=16)
        body.pack(fill="both", expand=True)
        body.columnconfigure(1, weight=1)
        self.name, self.topic, self.private = tk.StringVar(), tk.StringVar(), tk.BooleanVar(value=False)
        ttk.Label(body, text="Name").grid(row=0, column=0, sticky="w", pady=4)
        self.name_entry = ttk.Entry(body, textvariable=self.name)
        self.name_entry.grid(row=0, column=1, sticky="ew", pady=4)
        ttk.Label(body, text="Topic").grid(row=1, column=0, sticky="w", pady=4)
        ttk.Entry(body, textvariable=self.topic).grid(row=1, column=1, sticky="ew", pady=4)
        ttk.Checkbutton(body, text="Private (members join by invitation)", variable=self.private).grid(
            row=2, column=1, sticky="w", pady=4)
        self.status = ttk.Label(body, text="Letters, digits, '_', '.' and '-', up to 32.", style="Muted.TLabel")
        self.status.grid(row=3, column=0, columnspan=2, sticky="w")
        buttons = ttk.Frame(body)
        buttons.grid(row=4, column=0, columnspan=2, sticky="e", pady=(12, 0))
        ttk.Button(buttons, text="Cancel", command=self.destroy).pack(side="right")
        self.create_button = ttk.Button(buttons, text="Create", style="Accent.TButton", command=self._create)
        self.create_button.pack(side="right", padx=(0, 8))
        self.name_entry.bind("<Return>", lambda _e: self._create())
        self.name_entry.focus_set()

    def _create(self) -> None:
        name = self.name.get().strip()
        if not name:
            self.status.configure(text="Enter a name.", style="Error.TLabel")
            return
        self.on_create(name, self.topic.get().strip(), self.private.get())
        self.destroy()


class BrowseDialog(tk.Toplevel):
    """The public rooms with topic and member count; Join for the selected one."""

    def __init__(self, master: tk.Misc, on_join: Callable[[str], None], on_refresh: Callable[[], None]) -> None:
        super().__init__(master)
        self.title("Browse rooms")
        self.minsize(520, 280)
        self.on_join = on_join
        body = ttk.Frame(self, padding=16)
        body.pack(fill="both", expand=True)
        ttk.Label(body, text="Public rooms, and those you are invited to", style="Title.TLabel").pack(anchor="w")
        self.tree = ttk.Treeview(body, columns=("members", "topic"), show="tree headings", height=10,
                                 selectmode="browse")
        for column, text, width in (("#0", "Room", 140), ("members", "Members", 80), ("topic", "Topic", 260)):
            self.tree.heading(column, text=text)
            self.tree.column(column, width=width)
        self.tree.pack(fill="both", expand=True, pady=(10, 0))
        self.tree.bind("<<TreeviewSelect>>", lambda _e: self._selection_changed())
        self.tree.bind("<Double-1>", lambda _e: self._join())
        buttons = ttk.Frame(body)
        buttons.pack(fill="x", pady=(10, 0))
        self.status = ttk.Label(buttons, text="Loading…", style="Muted.TLabel")
        self.status.pack(side="left")
        self.join_button = ttk.Button(buttons, text="Join", style="Accent.TButton", state="disabled",
                                      command=self._join)
        self.join_button.pack(side="right")
        ttk.Button(buttons, text="Refresh", command=on_refresh).pack(side="right", padx=(0, 8))
        self.joined: set[str] = set()

    def show(self, rooms: list[dict[str, Any]]) -> None:
        self.tree.delete(*self.tree.get_children())
        self.joined = {str(r.get("room")) for r in rooms if r.get("joined")}
        for room in rooms:
            name = str(room.get("room", ""))
            label = f"#{name}" + ("  (joined)" if room.get("joined") else "") + \
                (f"  (invited by {room.get('by')})" if room.get("invited") else "")
            self.tree.insert("", "end", iid=name, text=label, values=(room.get("members", 0), room.get("topic", "")))
        self.status.configure(text=f"{len(rooms)} room(s)" if rooms else "No public rooms yet: make one.")
        self._selection_changed()

    def names(self) -> list[str]:
        return list(self.tree.get_children())

    def _selection_changed(self) -> None:
        chosen = self.tree.selection()
        self.join_button.configure(state="normal" if chosen and chosen[0] not in self.joined else "disabled")

    def _join(self) -> None:
        for name in self.tree.selection():
            if name not in self.joined:
                self.on_join(name)
                self.destroy()
                return


class MembersWindow(tk.Toplevel):
    """Members with role and presence; invite by name; kick, ban, promote and demote by role; the
    banned users with Unban (moderators); Hand over… (the owner, after a confirmation)."""

    def __init__(self, master: tk.Misc, key: str, role: str,
                 act: Callable[[str, dict[str, Any]], None], refresh: Callable[[], None]) -> None:
        super().__init__(master)
        self.key, self.role, self.act = key, role, act
        self.title(f"Members of {key}")
        self.minsize(460, 320)
        body = ttk.Frame(self, padding=16)
        body.pack(fill="both", expand=True)
        ttk.Label(body, text=f"Members of {key}", style="Title.TLabel").pack(anchor="w")
        self.tree = ttk.Treeview(body, columns=("role", "state"), show="tree headings", height=10, selectmode="browse")
        for column, text, width in (("#0", "Member", 160), ("role", "Role", 100), ("state", "", 80)):
            self.tree.heading(column, text=text)
            self.tree.column(column, width=width)
        self.tree.tag_configure("offline", foreground="#6b7280")
        self.tree.pack(fill="both", expand=True, pady=(10, 0))
        self.tree.bind("<<TreeviewSelect>>", lambda _e: self._selection_changed())
        invite = ttk.Frame(body)
        invite.pack(fill="x", pady=(10, 0))
        self.invitee = tk.StringVar()
        ttk.Entry(invite, textvariable=self.invitee, width=18).pack(side="left")
        self.invite_button = ttk.Button(invite, text="Invite", command=self._invite)
        self.invite_button.pack(side="left", padx=(8, 0))
        self.reason = tk.StringVar()
        ttk.Label(invite, text="Reason").pack(side="left", padx=(16, 4))
        ttk.Entry(invite, textvariable=self.reason, width=16).pack(side="left")
        buttons = ttk.Frame(body)
        buttons.pack(fill="x", pady=(10, 0))
        self.kick_button = ttk.Button(buttons, text="Kick", command=lambda: self._moderate("room_kick"))
        self.ban_button = ttk.Button(buttons, text="Ban", command=lambda: self._moderate("room_ban"))
        self.promote_button = ttk.Button(buttons, text="Make moderator", command=lambda: self._role("moderator"))
        self.demote_button = ttk.Button(buttons, text="Make member", command=lambda: self._role("member"))
        self.hand_over_button = ttk.Button(buttons, text="Hand over…", command=self._hand_over)
        for button in (self.kick_button, self.ban_button, self.promote_button, self.demote_button,
                       self.hand_over_button):
            button.pack(side="left", padx=(0, 8))
        ttk.Button(buttons, text="Refresh", command=refresh).pack(side="right")
        self.status = ttk.Label(body, text="Loading…", style="Muted.TLabel")
        self.status.pack(anchor="w", pady=(8, 0))
        banned = ttk.Frame(body)  # shown when the server lists bans (it does to moderators)
        self.bans_tree = ttk.Treeview(banned, columns=("by", "reason"), show="tree headings", height=3,
                                      selectmode="browse")
        for column, text, width in (("#0", "Banned", 140), ("by", "By", 100), ("reason", "Reason", 200)):
            self.bans_tree.heading(column, text=text)
            self.bans_tree.column(column, width=width)
        self.bans_tree.pack(side="left", fill="x", expand=True)
        self.bans_tree.bind("<<TreeviewSelect>>", lambda _e: self._selection_changed())
        self.unban_button = ttk.Button(banned, text="Unban", command=self._unban)
        self.unban_button.pack(side="left", padx=(8, 0), anchor="n")
        self.banned_frame = banned
        self.roles: dict[str, str] = {}
        self.confirm: Optional[ConfirmDialog] = None  # the open "Hand over?" question
        self._selection_changed()

    def show(self, reply: dict[str, Any], role: str) -> None:
        self.role = role
        chosen = self._chosen()
        self.tree.delete(*self.tree.get_children())
        self.roles = {}
        members = sorted(reply.get("members", []), key=lambda m: (-RANK.get(str(m.get("role")), 0),
                                                                  str(m.get("user", "")).casefold()))
        for member in members:
            user = str(member.get("user", ""))
            self.roles[user] = str(member.get("role", "member"))
            self.tree.insert("", "end", iid=user, text=user, values=(self.roles[user],
                                                                     "online" if member.get("online") else "offline"),
                             tags=() if member.get("online") else ("offline",))
        bans = reply.get("bans") or []
        self.bans_tree.delete(*self.bans_tree.get_children())
        for ban in bans:
            self.bans_tree.insert("", "end", iid=str(ban.get("user")), text=str(ban.get("user")),
                                  values=(str(ban.get("by", "")), str(ban.get("reason", ""))))
        if bans:
            self.banned_frame.pack(fill="x", pady=(8, 0))
        else:
            self.banned_frame.pack_forget()
        note = f"{len(members)} member(s)" + (f"; {len(bans)} banned" if bans else "")
        self.status.configure(text=note, style="Muted.TLabel")
        if chosen is not None and self.tree.exists(chosen):  # a refresh keeps the selection
            self.tree.selection_set(chosen)
        self._selection_changed()

    def members(self) -> dict[str, str]:
        return dict(self.roles)

    def _chosen(self) -> Optional[str]:
        chosen = self.tree.selection()
        return chosen[0] if chosen else None

    def _selection_changed(self) -> None:
        mine = RANK.get(self.role, 0)
        user = self._chosen()
        theirs = RANK.get(self.roles.get(user or "", ""), 0)
        can_moderate = user is not None and mine >= 2 and theirs < mine
        for button in (self.kick_button, self.ban_button):
            button.configure(state="normal" if can_moderate else "disabled")
        for button in (self.promote_button, self.demote_button, self.hand_over_button):
            button.configure(state="normal" if user is not None and mine == 3 and theirs < 3 else "disabled")
        self.unban_button.configure(state="normal" if self.banned() and mine >= 2 else "disabled")

    def banned(self) -> Optional[str]:
        """The selected banned user."""
        chosen = self.bans_tree.selection()
        return chosen[0] if chosen else None

    def bans(self) -> list[str]:
        return list(self.bans_tree.get_children())

    def _unban(self) -> None:
        user = self.banned()
        if user is not None:
            self.act("room_unban", {"user": user})

    def _hand_over(self) -> None:
        user = self._chosen()
        if user is None:
            return
        self.confirm = ConfirmDialog(self, "Hand over the room",
                                     f"Make {user} the owner of {self.key}? You become a moderator, and only "
                                     f"{user} can give the room back.", "Hand over",
                                     lambda: self.act("room_set_role", {"user": user, "role": "owner"}))

    def _invite(self) -> None:
        name = self.invitee.get().strip()
        if name:
            self.act("room_invite", {"user": name})
            self.invitee.set("")
            self.status.configure(text=f"Invited {name}.", style="Muted.TLabel")

    def _moderate(self, command: str) -> None:
        user = self._chosen()
        if user is not None:
            self.act(command, {"user": user, "reason": self.reason.get().strip()})

    def _role(self, role: str) -> None:
        user = self._chosen()
        if user is not None:
            self.act("room_set_role", {"user": user, "role": role})


class TopicDialog(tk.Toplevel):
    """One line to edit a room's topic (moderators)."""

    def __init__(self, master: tk.Misc, key: str, topic: str, on_save: Callable[[str], None]) -> None:
        super().__init__(master)
        self.title(f"Topic of {key}")
        self.minsize(380, 110)
        body = ttk.Frame(self, padding=16)
        body.pack(fill="both", expand=True)
        self.topic = tk.StringVar(value=topic)
        entry = ttk.Entry(body, textvariable=self.topic, width=48)
        entry.pack(fill="x")
        entry.bind("<Return>", lambda _e: self._save(on_save))
        buttons = ttk.Frame(body)
        buttons.pack(anchor="e", pady=(10, 0))
        ttk.Button(buttons, text="Cancel", command=self.destroy).pack(side="right")
        self.save_button = ttk.Button(buttons, text="Save", style="Accent.TButton", command=lambda: self._save(on_save))
        self.save_button.pack(side="right", padx=(0, 8))
        entry.focus_set()

    def _save(self, on_save: Callable[[str], None]) -> None:
        on_save(self.topic.get().strip())
        self.destroy()


class RoomViews:
    """The app's part of the View protocol for rooms, and the room buttons' actions (a mixin of ``App``)."""

    root: tk.Tk
    main: Any
    login: Any
    rooms: Any
    state: Any
    settings: Any  # ClientSettings
    room_dialogs: dict[str, Any]

    def show_error(self, text: str) -> None: ...

    def _guard(self, action: Callable[[], None]) -> None:
        try:
            action()
        except NotConnected as exc:
            self.show_error(str(exc))

    def _window(self, name: str) -> Optional[Any]:
        window = self.room_dialogs.get(name)
        return window if window is not None and window.winfo_exists() else None

    def _new_room_clicked(self) -> None:
        self.room_dialogs["new"] = NewRoomDialog(self.main, lambda n, t, p: self._guard(lambda: self.rooms.create(n, t, p)))

    def _browse_clicked(self) -> None:
        dialog = BrowseDialog(self.main, lambda name: self._guard(lambda: self.rooms.join(name)),
                              lambda: self._guard(self.rooms.browse))
        self.room_dialogs["browse"] = dialog
        self._guard(self.rooms.browse)

    def _directory_listed(self, rooms: list[dict[str, Any]]) -> None:
        window = self._window("browse")
        if window is not None:
            window.show(rooms)

    def _members_clicked(self, key: str) -> None:
        role = str(self.state.conversation(key).room.get("role", "member"))
        window = MembersWindow(self.main, key, role,
                               lambda command, fields: self._guard(lambda: self.rooms.command(command, key, **fields)),
                               lambda: self._guard(lambda: self.rooms.list_members(key)))
        self.room_dialogs["members"] = window
        self._guard(lambda: self.rooms.list_members(key))

    def _members_listed(self, key: str, reply: dict[str, Any]) -> None:
        window = self._window("members")
        if window is not None and window.key == key:
            window.show(reply, str(self.state.conversation(key).room.get("role", "member")))

    def _topic_clicked(self, key: str) -> None:
        topic = str(self.state.conversation(key).room.get("topic", ""))
        self.room_dialogs["topic"] = TopicDialog(self.main, key, topic, lambda text: self._guard(
            lambda: self.rooms.command("room_topic", key, topic=text)))

    def _leave_clicked(self, key: str) -> None:
        self._guard(lambda: self.rooms.command("room_leave", key))

    def _delete_room_clicked(self, key: str) -> None:
        """The owner's Delete room…: only after a confirmation."""
        self.room_dialogs["delete"] = ConfirmDialog(
            self.main, f"Delete {key}", f"Delete {key} for every member, with all its messages? This cannot be "
                                        "undone.", "Delete room", lambda: self._guard(lambda: self.rooms.command(
                                            "room_delete", key)))

    def _room_changed(self, key: str) -> None:
        """Someone joined, left, was kicked or changed role: an open member list of that room follows."""
        window = self._window("members")
        if window is not None and window.key == key:
            self._guard(lambda: self.rooms.list_members(key))
        if self.main is not None and self.main.current == key:
            self.main.show(key)

    @cached_property
    def notifier(self) -> Notifier:
        return Notifier(bool(self.settings.notify))

    def _mentioned(self, key: str, line: Line) -> None:
        """A message naming this user while the window is not focused: the title says so, and a
        desktop notification (``notify-send``, when on PATH) or else the bell; with notifications
        off (``CHATCORE_CLIENT_NOTIFY=off``) only the title."""
        if self.main is None or self.rooms.focused():
            return
        self.main.title(f"(@{line.sender} in {key}) {self.main.base_title}")
        if self.notifier.enabled and not self.notifier.notify(f"@{line.sender} in {key}", line.text):
            self.main.bell()

    def _window_focused(self) -> None:
        """Back in the window: a room that got messages while it was away from the user is read now."""
        conversation = self.state.conversations.get(self.state.current)
        if conversation is not None and conversation.is_room and (conversation.unread or conversation.mentions):
            self._guard(lambda: self.rooms.mark_read(conversation))
            if self.main is not None:
                self.main.show_conversations(self.state.ordered(), self.state.current)

    def _focused(self) -> bool:
        return self.main is not None and self.main.focus_displayof() is not None

    def select(self, key: str) -> None:
        if self.main is not None:
            self.main.select(key)

    @staticmethod
    def room_conversation(name: str) -> str:
        return room_key(name)
