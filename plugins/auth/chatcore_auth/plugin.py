"""Hook implementations of the ``auth`` plugin: accounts, login and presence.

The logic lives in sibling modules that know nothing of pluggy: ``accounts`` (rules and
throttling), ``store`` (SQLite), ``passwords`` (Argon2id), ``presence``, ``commands`` (wire
handlers) and ``cli`` (``chatcore user``).
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from chatcore import CommandError, Setting, hookimpl
from chatcore.backup import refuse_newer_schema
from chatcore.cluster import DatabaseUnavailable
from chatcore.config import Config
from chatcore_auth import NAME, backends, cli, importer
from chatcore_auth.accounts import Accounts
from chatcore_auth.commands import AuthCommands, database_errors
from chatcore_auth.devices import TokenStore
from chatcore_auth.metrics import AuthMetrics
from chatcore_auth.namecache import FORGET_NAME, NameCache
from chatcore_auth.names import USERNAME_MAX
from chatcore_auth.presence import LOGGED_IN_AT, MODES, Presence, set_mode
from chatcore_auth.settings import PLAINTEXT_LOGIN, PRESENCE_DELAY, SETTINGS, TOKEN_TTL, hasher_from, policy_from
from chatcore_auth.store import FILENAME, SCHEMA_VERSION, AccountStorage
from chatcore_auth.throttle import Clock

if TYPE_CHECKING:
    from chatcore.backup import Backup, Restore
    from chatcore.cluster import Cluster, Database
    from chatcore.server import ChatServer
    from chatcore.session import Session


log = logging.getLogger(__name__)


class AuthPlugin:
    """Accounts, login and presence; one instance per server. ``clock`` drives throttling
    (default: monotonic seconds on one node, Unix seconds in a cluster, whose nodes share the
    counts) and ``wall_clock`` (Unix seconds) the age of device tokens, so tests can move time
    instead of sleeping."""

    chatcore_essential = True  # without accounts nobody can log in: never disabled by the fault budget

    store: AccountStorage  # these from chat_configure on; the server calls no other hook before it
    tokens: TokenStore
    commands: AuthCommands
    presence: Presence
    metrics: AuthMetrics

    def __init__(self, clock: Optional[Clock] = None, wall_clock: Clock = time.time) -> None:
        self.clock = clock or time.monotonic  # throttling on one node
        self.shared_clock = clock or time.time  # throttling in a cluster: every node's clock must agree
        self.wall_clock = wall_clock  # Unix time: device tokens' ages
        self.accounts: Optional[Accounts] = None  # None again once shut down: late lookups answer None
        self.cluster: Optional["Cluster"] = None  # cluster mode: set by chat_configure

    @hookimpl
    def chat_settings(self) -> Sequence[Setting]:
        return SETTINGS

    @hookimpl
    def chat_cli_commands(self, subparsers: "argparse._SubParsersAction", config: Config) -> None:
        cli.add_commands(subparsers, config)

    @hookimpl
    def chat_migrate(self, database: "Database") -> None:
        """Cluster mode: the ``auth`` schema (accounts and device tokens)."""
        backends.migrate(database)

    @hookimpl
    def chat_import_sqlite(self, config: Config, database: "Database") -> None:
        """Copy a single node's accounts and device tokens into the (empty) ``auth`` schema."""
        accounts, devices = importer.import_sqlite(config.data_dir, database)
        if accounts or devices:
            print(f"auth: imported {accounts} account(s) and {devices} device token(s)")

    @hookimpl
    def chat_configure(self, server: "ChatServer") -> None:
        """Open the account store (SQLite, or the cluster's PostgreSQL) and build the policy
        from the settings."""
        self.store, self.tokens = backends.open_stores(server.plugin_dir(NAME), server.cluster,
                                                       server.config.get(TOKEN_TTL), self.wall_clock)
        hasher = hasher_from(server.config)
        hasher.dummy_hash()  # made now, so the first unknown-user login costs what the others do
        policy = policy_from(server.config)
        cluster = server.cluster
        limits = None
        if cluster is not None:
            from chatcore_auth.shared_limits import redis_limits  # redis: cluster mode only

            limits = redis_limits(cluster.redis, cluster.key, policy, self.shared_clock)
        self.accounts = Accounts(self.store, hasher, policy, self.clock, limits,
                                 NameCache() if cluster is not None else None)
        self.cluster = cluster
        if cluster is not None:
            cluster.bus.subscribe(FORGET_NAME, self._heard_forget_name)
        delay = server.config.get(PRESENCE_DELAY)
        if cluster is None:
            self.presence = Presence(server.sessions, delay)
        else:
            from chatcore_auth.cluster_presence import ClusterPresence

            self.presence = ClusterPresence(server.sessions, cluster, delay)
        self.metrics = AuthMetrics(hasher)
        self.commands = AuthCommands(server, self.accounts, self.tokens, server.config.get(PLAINTEXT_LOGIN),
                                     self.metrics, self.presence.online_users)

    @hookimpl
    def chat_started(self, server: "ChatServer") -> None:
        """In a cluster the bus reads from now on: presence takes the cluster's view."""
        self.presence.started()

    @hookimpl
    def chat_register_commands(self, register: Callable[..., Any]) -> None:
        register("register", database_errors(self.commands.register), auth=False, fields={"username": str, "password": str})
        register("login", database_errors(self.commands.login), auth=False, fields={"username": str}, logs_in=True,
                 optional={"password": str, "token": str, "device": str, "since": int,
                           "changes_since": int, "room_changes_since": int})
        register("logout", database_errors(self.commands.logout), auth=True, optional={"everywhere": bool})
        register("devices", database_errors(self.commands.devices), auth=True)
        register("device_revoke", database_errors(self.commands.device_revoke), auth=True, fields={"device": str})
        register("close", self.commands.close, auth=False)
        register("get_users", self.commands.get_users, auth=True, optional={"offset": int})
        register("change_password", database_errors(self.commands.change_password), auth=True, fields={"old": str, "new": str})

    @hookimpl
    def chat_metrics(self, register: Callable[[Any], None]) -> None:
        """Logins and refused logins by method and reason, and the password-hash queue."""
        for collector in self.metrics.collectors():
            register(collector)

    @hookimpl
    def chat_hello(self, session: "Session", message: dict[str, Any]) -> Optional[dict[str, Any]]:
        """Tell v2 clients the account rules so they can check input before sending it, and
        take the session's choice of ``presence`` delivery (``each`` or ``batched``)."""
        if self.accounts is None:
            return None
        mode = message.get("presence", MODES[0])
        if mode not in MODES:
            raise CommandError("bad_request", "field 'presence' must be one of: " + ", ".join(MODES))
        set_mode(session, mode)
        policy = self.accounts.policy
        return {"presence": mode,
                "auth": {"username_max": USERNAME_MAX, "password_min": policy.min_password,
                         "password_max": policy.max_password}}

    def _heard_forget_name(self, event: dict[str, Any]) -> None:
        """Another node removed an account: stop trusting its remembered name here."""
        if isinstance(event.get("username"), str) and self.accounts is not None:
            self.accounts.forget_name(event["username"])

    @hookimpl
    def chat_lookup_user(self, username: str) -> Optional[str]:
        """Case-insensitive lookup of a registered account's display name."""
        if self.accounts is None or not isinstance(username, str):
            return None
        return self.accounts.lookup(username)

    @hookimpl(tryfirst=True)
    def chat_authenticated(self, session: "Session", first: bool) -> None:
        """Mark a server administrator's session, send ``login_result`` before any other plugin
        speaks to the session, announce it. The flag is read here, after the login bound the
        session: an operator's change made meanwhile either is read now or reaches the bound
        session over the admin socket (``set_admin``)."""
        if session.user is not None:
            try:
                session.admin = self.store.is_admin(session.user)
            except DatabaseUnavailable:  # the login itself read the account a moment ago
                log.warning("auth: cannot read whether %s is an administrator: PostgreSQL unreachable", session.user)
                session.admin = False
            session.state.setdefault(NAME, {})[LOGGED_IN_AT] = time.monotonic()  # presence after this only
        self.commands.send_login_reply(session)
        if session.user is not None:
            self.presence.update(session.user)

    @hookimpl
    def chat_logging_out(self, session: "Session", last: bool) -> None:
        if session.user is not None:
            self.presence.update(session.user)

    @hookimpl(tryfirst=True)
    def chat_user_removed(self, server: "ChatServer", username: str) -> None:
        """Delete the account first, so nobody can log in as it while the others clean up (the
        core has already ended the user's sessions, on every node of a cluster)."""
        if self.accounts is not None:
            self.accounts.remove(username)
        self.tokens.forget_user(username)
        if self.cluster is not None:  # deleted: now no node may keep resolving the name
            self.cluster.bus.publish(FORGET_NAME, {"username": username})

    @hookimpl
    def chat_backup(self, config: Config, backup: "Backup") -> None:
        """Accounts and device tokens: one database, one snapshot (none in cluster mode:
        PostgreSQL's own backups hold them)."""
        backup.database(config.data_dir / NAME / FILENAME)

    @hookimpl
    def chat_restore(self, config: Config, restore: "Restore") -> None:
        """Refuse an accounts database whose schema is newer than this plugin's."""
        for path in restore.restored(NAME):
            if path.name == FILENAME:
                refuse_newer_schema(path, SCHEMA_VERSION, "the accounts database")

    @hookimpl
    def chat_shutdown(self, server: "ChatServer") -> None:
        self.presence.stop()
        if self.accounts is not None:
            self.accounts.hasher.trimmer.cancel()
        self.accounts = None  # lookups from other plugins' shutdown now answer None
        self.tokens.close()
        self.store.close()

