"""Hook implementations of the ``filexfer`` plugin; the logic lives in the sibling modules."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from chatcore import Setting, hookimpl
from chatcore.cluster import cluster_configured
from chatcore_filexfer import backup as backup_module
from chatcore_filexfer.commands import COMMANDS, FileCommands, Sweeper
from chatcore_filexfer.importer import import_sqlite
from chatcore_filexfer.legacy import LegacyRelay
from chatcore_filexfer.limits import Limits
from chatcore_filexfer.service import INDEX_FILE, Clock, FileService
from chatcore_filexfer.settings import SETTINGS, limits_from_config

if TYPE_CHECKING:
    from chatcore.backup import Backup, Restore
    from chatcore.cluster import Database
    from chatcore.config import Config
    from chatcore.server import ChatServer
    from chatcore.session import Session

NAME = "filexfer"
log = logging.getLogger(__name__)


class FilexferPlugin:
    """Store-and-forward file transfer plus legacy file signalling; one instance per server.

    ``clock`` (seconds since the epoch) is injectable so tests can expire files without waiting.
    ``commands`` exists from ``chat_configure`` on; the server calls no other hook before it.
    """

    commands: FileCommands

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self.limits = Limits()
        self.sweeper: Optional[Sweeper] = None

    @hookimpl
    def chat_settings(self) -> Sequence[Setting]:
        """Declare the CHATCORE_FILEXFER_* settings."""
        return SETTINGS

    @hookimpl
    def chat_configure(self, server: "ChatServer") -> None:
        """Open the spool and index (in cluster mode: the ``filexfer`` schema and its large
        objects), clean up after a crash, start the expiry sweeper."""
        self.limits = limits_from_config(server.config)
        store = None
        if server.cluster is not None:
            from chatcore_filexfer.largeobjects import LargeObjectSpool  # psycopg: cluster mode only
            from chatcore_filexfer.pgindex import PgIndex

            schema = server.cluster.database.schema(NAME)
            store = (PgIndex(schema), LargeObjectSpool(schema))
            if (server.plugin_dir(NAME) / INDEX_FILE).exists():
                log.warning("filexfer: %s holds a single node's files, which cluster mode does not serve; "
                            "move them with chatcore import-sqlite", server.plugin_dir(NAME))
        service = FileService(server.plugin_dir(NAME), self.limits, self.clock, store)
        service.reconcile()
        relay = LegacyRelay(self.clock, self.limits.request_timeout, self.limits.requests_per_pair)
        self.commands = FileCommands(server, service, relay)
        self.commands.sweep()
        if self.limits.sweep_interval > 0:
            self.sweeper = Sweeper(self.limits.sweep_interval, self.commands.sweep)
            self.sweeper.start()

    @hookimpl
    def chat_migrate(self, database: "Database") -> None:
        """Create or upgrade the ``filexfer`` schema: the index and the blobs' table."""
        from chatcore_filexfer.pgindex import MIGRATIONS

        database.schema(NAME).migrate(MIGRATIONS)

    @hookimpl
    def chat_import_sqlite(self, config: "Config", database: "Database") -> None:
        """Copy ``<data>/filexfer/`` (index and spool) into the schema and large objects."""
        import_sqlite(config.data_dir, database)

    @hookimpl
    def chat_register_commands(self, register: Callable[..., Any]) -> None:
        """Register the file commands, handled by the FileCommands built in chat_configure."""
        for name, fields in COMMANDS.items():
            register(name, getattr(self.commands, name), auth=True, **fields)

    @hookimpl
    def chat_hello(self, session: "Session") -> dict[str, Any]:
        """Announce the upload limits and chunk size."""
        return {NAME: self.limits.announce()}

    @hookimpl
    def chat_authenticated(self, session: "Session", first: bool) -> None:
        """Offer the new session every file waiting for its user."""
        self.commands.offer_waiting(session)

    @hookimpl
    def chat_logging_out(self, session: "Session", last: bool) -> None:
        """A user who went offline can no longer answer or receive legacy file requests."""
        if last and session.user is not None:
            self.commands.relay.forget(session.user)

    @hookimpl
    def chat_user_removed(self, server: "ChatServer", username: str) -> None:
        """Delete the removed user's uploads and files, both ways, with their spool files."""
        self.commands.forget_user(username)

    @hookimpl
    def chat_session_closed(self, session: "Session") -> None:
        """Stop the closed connection's downloads."""
        self.commands.streams.cancel_session(session.id)

    @hookimpl
    def chat_backup(self, config: "Config", backup: "Backup") -> None:
        """The index, then the spool files its snapshot names (``chatcore_filexfer.backup``). In
        cluster mode the files are in PostgreSQL, backed up with the database: nothing here."""
        if not cluster_configured(config):
            backup_module.back_up(config.data_dir, backup)

    @hookimpl
    def chat_restore(self, config: "Config", restore: "Restore") -> None:
        """Check that every restored index row has its spool file."""
        backup_module.check_restored(restore)

    @hookimpl
    def chat_shutdown(self, server: "ChatServer") -> None:
        """Stop the sweeper and downloads, then close the index."""
        if self.sweeper is not None:
            self.sweeper.stop()
        self.commands.streams.stop()
        self.commands.service.close()
