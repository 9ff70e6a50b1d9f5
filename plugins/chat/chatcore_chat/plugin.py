"""Hook implementations of the ``chat`` plugin; the behaviour lives in ``service.py``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import pluggy

from chatcore import Setting, hookimpl
from chatcore.backup import refuse_newer_schema
from chatcore_chat import feature_settings, hookspecs, importer, pgstore, settings, store
from chatcore_chat.feature_settings import FeatureSettings
from chatcore_chat.metrics import ChatCollector
from chatcore_chat.service import ChatService
from chatcore_chat.settings import ChatSettings

if TYPE_CHECKING:
    from chatcore.backup import Backup, Restore
    from chatcore.cluster import Database
    from chatcore.config import Config
    from chatcore.registry import Command
    from chatcore.server import ChatServer
    from chatcore.session import Session

NAME = "chat"


class ChatPlugin:
    """Private and broadcast messages, history and offline delivery; one instance per server."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.service = ChatService(clock)

    @hookimpl
    def chat_addhooks(self, pluginmanager: pluggy.PluginManager) -> None:
        """Offer ``chatcore_chat_message_filter`` to other plugins."""
        pluginmanager.add_hookspecs(hookspecs)

    @hookimpl
    def chat_settings(self) -> Sequence[Setting]:
        """Declare every ``CHATCORE_CHAT_*`` setting."""
        return settings.ALL + feature_settings.ALL

    @hookimpl
    def chat_register_commands(self, register: Callable[..., "Command"]) -> None:
        """``chat`` and ``get_history`` (docs/protocol.md §5), and the message features (§5.1)."""
        register("chat", self.service.chat, fields={"peer": str, "message": str},
                 optional={"client_id": (str, int)})
        register("get_history", self.service.get_history, fields={"peer": str},
                 optional={"before": int, "limit": int})
        actions = self.service.actions
        message = {"peer": str, "id": int}
        register("message_edit", actions.edit, fields={**message, "message": str})
        register("message_delete", actions.delete, fields=message)
        register("message_react", actions.react, fields={**message, "emoji": str}, optional={"remove": bool})
        register("typing", actions.typing, fields={"peer": str})
        register("search", actions.search, fields={"query": str}, optional={"before": str, "limit": int})

    @hookimpl
    def chat_configure(self, server: "ChatServer") -> None:
        """Open the history database under ``<data>/chat/`` and start the writer."""
        sources = server.hook.chatcore_chat_search
        self.service.actions.configure(
            FeatureSettings.from_config(server.config),
            lambda user, words, match, before, limit: sources(user=user, words=words, match=match, before=before,
                                                              limit=limit))
        filters = server.hook.chatcore_chat_message_filter
        self.service.open(ChatSettings.from_config(server.config), server.plugin_dir(NAME), server.sessions,
                          server.lookup_user,
                          # no filter plugin (the usual case): skip the hook call on every message
                          (lambda session, message: filters(session=session, message=message))
                          if filters.get_hookimpls() else (lambda session, message: None),
                          server.users.removed_recently, server.cluster)

    @hookimpl
    def chat_migrate(self, database: "Database") -> None:
        """Create or upgrade the ``chat`` schema (``pgstore.MIGRATIONS``)."""
        pgstore.migrate(database)

    @hookimpl
    def chat_import_sqlite(self, config: "Config", database: "Database") -> None:
        """Copy ``<data>/chat/messages.sqlite3`` into the empty ``chat`` schema (``importer.py``)."""
        importer.import_sqlite(config.data_dir, database)

    @hookimpl
    def chat_metrics(self, register: Callable[[Any], None]) -> None:
        """Messages relayed and deliveries, and the history store's commits and queue."""
        register(ChatCollector(self.service))

    @hookimpl
    def chat_hello(self, session: "Session") -> dict[str, Any]:
        """Tell clients the message length limit."""
        return self.service.hello_fields()

    @hookimpl
    def chat_authenticated(self, session: "Session", first: bool, request: dict[str, Any]) -> None:
        """Deliver what the new session missed (after the login's ``since``) or its user's offline
        messages, page by page as its client reads them; returns when they went out (this is the
        session's own thread)."""
        self.service.authenticated(session, request)

    @hookimpl
    def chat_logging_out(self, session: "Session", last: bool) -> None:
        """Forget the session's delivery state."""
        self.service.logging_out(session)

    @hookimpl
    def chat_user_removed(self, server: "ChatServer", username: str) -> None:
        """Delete the removed user's conversations, broadcasts and pending messages."""
        self.service.forget_user(username)

    @hookimpl
    def chat_backup(self, config: "Config", backup: "Backup") -> None:
        """The message history (pending deliveries and quota counters with it): one snapshot."""
        backup.database(config.data_dir / NAME / store.FILENAME)

    @hookimpl
    def chat_restore(self, config: "Config", restore: "Restore") -> None:
        """Refuse a history whose schema is newer than this plugin's."""
        for path in restore.restored(NAME):
            if path.name == store.FILENAME:
                refuse_newer_schema(path, store.SCHEMA_VERSION, "the chat history")

    @hookimpl
    def chat_shutdown(self, server: "ChatServer") -> None:
        """Commit what is queued and close the database."""
        self.service.close()
