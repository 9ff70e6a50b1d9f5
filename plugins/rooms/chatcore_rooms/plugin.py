"""Hook implementations of the ``rooms`` plugin; the behaviour lives in ``service.py``.

``rooms`` builds on ``chat``: it declares ``chatcore_requires = ("chat",)``, so a server with
rooms enabled and chat disabled refuses to start with a message saying so (the core checks
it while loading plugins), and it configures after chat (``trylast``) and shuts down before
it (``tryfirst``), since it uses chat's open service.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from chatcore import Setting, hookimpl
from chatcore.backup import refuse_newer_schema
from chatcore.plugins import PluginError
from chatcore_rooms import importer, pgschema, schema, settings
from chatcore_rooms.service import RoomsService
from chatcore_rooms.settings import RoomsSettings

if TYPE_CHECKING:
    from chatcore.backup import Backup, Restore
    from chatcore.cluster import Database
    from chatcore.config import Config
    from chatcore.registry import Command
    from chatcore.server import ChatServer
    from chatcore.session import Session

NAME = "rooms"
REQUIRES = "chat"


class RoomsPlugin:
    """Rooms with roles, per-room history, read markers and mentions; one instance per server."""

    chatcore_requires = (REQUIRES,)

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.service = RoomsService(clock)

    @hookimpl
    def chat_settings(self) -> Sequence[Setting]:
        """Declare every ``CHATCORE_ROOMS_*`` setting."""
        return settings.ALL

    @hookimpl(trylast=True)
    def chat_configure(self, server: "ChatServer") -> None:
        """Open ``<data>/rooms/rooms.sqlite3`` (in cluster mode the ``rooms`` schema) once chat's
        store is open (this runs after chat's)."""
        chat = server.pm.get_plugin(REQUIRES)
        service = getattr(chat, "service", None)
        if service is None or getattr(service, "readers", None) is None:
            raise PluginError(f"plugin {NAME!r} needs plugin {REQUIRES!r} enabled and configured")
        self.service.open(RoomsSettings.from_config(server.config), service, server.plugin_dir(NAME), server.sessions,
                          server.cluster)

    @hookimpl
    def chat_migrate(self, database: "Database") -> None:
        """Create or upgrade the ``rooms`` schema (``pgschema.MIGRATIONS``)."""
        pgschema.migrate(database)

    @hookimpl
    def chat_import_sqlite(self, config: "Config", database: "Database") -> None:
        """Copy ``<data>/rooms/rooms.sqlite3`` into the empty ``rooms`` schema (``importer.py``)."""
        importer.import_sqlite(config.data_dir, database)

    @hookimpl
    def chat_register_commands(self, register: Callable[..., "Command"]) -> None:
        """The ``room_*`` commands and ``mark_read`` (docs/protocol.md §7)."""
        s, c = self.service, self.service.commands
        room = {"room": str}
        register("room_create", c.create, fields=room, optional={"topic": str, "private": bool, "history": str})
        register("room_list", s.reads.room_list)
        register("room_directory", s.reads.directory_page, optional={"after": str, "limit": int})
        register("room_join", c.join, fields=room)
        register("room_leave", c.leave, fields=room)
        register("room_invite", c.invite, fields={**room, "user": str})
        register("room_kick", c.kick, fields={**room, "user": str}, optional={"reason": str})
        register("room_ban", c.ban, fields={**room, "user": str}, optional={"reason": str})
        register("room_unban", c.unban, fields={**room, "user": str})
        register("room_set_role", c.set_role, fields={**room, "user": str, "role": str})
        register("room_topic", c.topic, fields={**room, "topic": str})
        register("room_delete", c.delete, fields=room)
        register("room_members", s.reads.members_page, fields=room, optional={"after": str, "limit": int})
        register("room_message", s.post, fields={**room, "message": str}, optional={"client_id": (str, int)})
        register("room_history", s.reads.history, fields=room, optional={"before": int, "limit": int})
        register("mark_read", s.mark_read, optional={"room": str, "seq": int, "peer": str, "id": int})
        f, target = s.features, {**room, "seq": int}  # the message features (§7.1)
        register("room_message_edit", f.edit, fields={**target, "message": str})
        register("room_message_delete", f.delete, fields=target)
        register("room_react", f.react, fields={**target, "emoji": str}, optional={"remove": bool})
        register("room_pin", f.pin, fields=target)
        register("room_unpin", f.unpin, fields=target)
        register("room_pins", f.pins, fields=room)
        register("room_typing", f.typing, fields=room)

    @hookimpl
    def chatcore_chat_search(self, user: str, words: list[str], match: str, before: dict[str, int],
                             limit: int) -> list[Any]:
        """The user's rooms' part of chat's ``search``."""
        return self.service.features.search(user, words, match, before, limit)

    @hookimpl
    def chatcore_chat_message_filter(self, session: "Session", message: dict[str, Any]) -> None:
        """Observe (never change) private messages: a new pair of users starts the recipient's
        read marker for that conversation, so its unread count is known at their next login."""
        self.service.note_message(session, message)

    @hookimpl(tryfirst=True)
    def chat_authenticated(self, session: "Session", first: bool, request: dict[str, Any]) -> None:
        """Send a v2 session its room list (and the room changes it missed, when its login named
        ``room_changes_since``) before chat sends its offline backlog."""
        self.service.authenticated(session, request)

    @hookimpl
    def chat_logging_out(self, session: "Session", last: bool) -> None:
        self.service.logging_out(session)

    @hookimpl
    def chat_user_removed(self, server: "ChatServer", username: str) -> None:
        """Forget the removed user's memberships, bans, markers and messages; hand their rooms over."""
        self.service.forget_user(username)

    @hookimpl
    def chat_backup(self, config: "Config", backup: "Backup") -> None:
        """Rooms, memberships, roles, read markers and room messages: one snapshot."""
        backup.database(config.data_dir / NAME / schema.FILENAME)

    @hookimpl
    def chat_restore(self, config: "Config", restore: "Restore") -> None:
        """Refuse a rooms database whose schema is newer than this plugin's."""
        for path in restore.restored(NAME):
            if path.name == schema.FILENAME:
                refuse_newer_schema(path, schema.SCHEMA_VERSION, "the rooms database")

    @hookimpl(tryfirst=True)
    def chat_shutdown(self, server: "ChatServer") -> None:
        """Commit what is queued and close the database (before chat closes its own)."""
        self.service.close()
