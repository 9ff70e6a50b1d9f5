# mypy: disable-error-code="empty-body"
"""Every hook a chatcore plugin can implement, grouped by the phase in which the server calls them.

The lifecycle, in order (``ChatServer.start`` runs the first four; ``stop`` the last):

1. **load** — ``chat_addhooks`` (historic), ``chat_settings``; the CLI also asks ``chat_cli_commands``.
2. **configure** — ``chat_configure``: read settings, open storage, build per-server objects.
3. **register** — ``chat_register_commands``: the commands, whose handlers may be those objects.
4. **bind, then started** — the port is bound; ``chat_metrics``, then ``chat_started``.
5. **serve** — per connection: ``chat_session_opened``, ``chat_hello``, requests
   (``chat_handle_message``), ``chat_authenticated``, ``chat_logging_out``,
   ``chat_session_closed``; at any time ``chat_lookup_user`` and ``chat_user_removed``.
6. **shutdown** — ``chat_shutdown``, for every plugin that was configured, also when a start
   fails after configuring (a port in use).

Outside the server's lifecycle, in the ``chatcore backup`` / ``chatcore restore`` process:
``chat_backup`` and ``chat_restore`` (``chatcore.backup``).

In cluster mode (``chatcore.cluster``) ``chat_migrate`` comes before **configure**, on every
node as it starts and in ``chatcore migrate``; ``server.cluster`` then offers the database
pool, the bus between nodes and the node registry to ``chat_configure``. ``chatcore
import-sqlite`` calls ``chat_import_sqlite`` to move a single node's data into the cluster.

Notification hooks are called one implementation at a time: an exception is logged against
its plugin and counted in its fault budget (``chatcore.hooks``), and the other plugins still
run. Plugins mark implementations with ``chatcore.hookimpl``. A plugin is usually a class
whose instance is made fresh for each server (entry point ``name = "package.module:Class"``),
so it keeps its state per server, never in module globals. Hooks a plugin offers to others
are named after its package (``chatcore_chat_message_filter``), never ``chat_*``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import pluggy

if TYPE_CHECKING:
    import argparse

    from prometheus_client.registry import Collector

    from chatcore.backup import Backup, Restore
    from chatcore.cluster import Database
    from chatcore.config import Config, Setting
    from chatcore.registry import Command
    from chatcore.server import ChatServer
    from chatcore.session import Session

hookspec = pluggy.HookspecMarker("chatcore")


# ----------------------------------------------------------------------------------------------
# 1. Load
# What a plugin declares before anything runs.
# ----------------------------------------------------------------------------------------------

@hookspec(historic=True)
def chat_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Add hook specifications a plugin offers to others (``pluginmanager.add_hookspecs``).

    Historic: a plugin registered later still gets this call.

    :param pluginmanager: the server's plugin manager.
    """


@hookspec
def chat_settings() -> Sequence["Setting"]:
    """Declare the plugin's settings so ``chatcore config`` and ``.env.example`` list them.

    :return: the plugin's ``Setting`` declarations (read them with ``server.config.get``).
    """


@hookspec
def chat_cli_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]", config: "Config") -> None:
    """Add subcommands to the ``chatcore`` command line (e.g. ``chatcore user add``).

    Each parser should ``set_defaults(run=callable)``; the callable receives
    ``(args, config)`` and returns an exit status.

    :param subparsers: the ``argparse`` subparsers of the ``chatcore`` command.
    :param config: the loaded configuration.
    """


# ----------------------------------------------------------------------------------------------
# 2-4. Configure, register, started
# Once per server, in this order, before and after the port is bound.
# ----------------------------------------------------------------------------------------------

@hookspec
def chat_configure(server: "ChatServer") -> None:
    """Prepare the plugin for this server: read settings, open storage, and build the objects
    its commands will use (``chat_register_commands`` comes next). Raising stops the start;
    the plugins configured before are shut down.

    :param server: the server; ``server.config``, ``server.plugin_dir(name)``,
        ``server.sessions`` and ``server.hook`` are the plugin's way in.
    """


@hookspec
def chat_register_commands(register: Callable[..., "Command"]) -> None:
    """Register the commands this plugin handles (after ``chat_configure``: handlers may be
    methods of objects built there).

    Call ``register(name, handler, auth=True, fields={...}, optional={...}, limited=True,
    logs_in=False)``; the handler is ``handler(session, message) -> dict | None`` and a
    returned dict is sent as the reply. ``auth``: the command needs a logged-in session;
    ``limited``: it counts against the request rate; ``logs_in``: it is a way to log in, so
    while any command declares it, connections must log in within ``CHATCORE_LOGIN_TIMEOUT``.
    Raise ``chatcore.CommandError(code, reason)`` for an ``error`` reply. A name another
    plugin already registered is a startup error naming both plugins.

    :param register: the registration callback, bound to this plugin.
    """


@hookspec
def chat_metrics(register: Callable[["Collector"], None]) -> None:
    """Add the plugin's Prometheus metrics to the server's own registry (``prometheus_client``;
    served at ``/metrics`` when ``CHATCORE_METRICS_ADDRESS`` is set). Called once per server as
    it starts, after ``chat_configure``, whether or not the port is on.

    Call ``register(collector)`` for each: preferably an object whose ``collect()`` yields metric
    families read from the plugin's live state when scraped (nothing on the hot path), or a
    ``Counter``/``Gauge``/``Histogram`` made with ``registry=None`` and kept on the plugin's
    per-server objects. Name them ``chatcore_<plugin>_*``. A name already registered raises
    ``ValueError``; a collector that raises while scraped is counted against the plugin's fault
    budget and only its metrics are left out of that scrape.

    :param register: adds one collector to this server's registry.
    """


@hookspec
def chat_started(server: "ChatServer") -> None:
    """The server listens and accepts connections (``server.address`` is bound): start work
    that needs a running server, such as announcing it elsewhere.

    :param server: the server.
    """


# ----------------------------------------------------------------------------------------------
# 5. Serve: connections and requests
# Per connection, in its own thread.
# ----------------------------------------------------------------------------------------------

@hookspec
def chat_session_opened(session: "Session") -> None:
    """A connection was accepted and its session registered.

    :param session: the new session (not authenticated).
    """


@hookspec
def chat_hello(session: "Session", message: dict[str, Any]) -> Optional[dict[str, Any]]:
    """Extra fields for the ``hello`` reply, such as limits a client must know.

    :param session: the session that said ``hello``.
    :param message: the ``hello`` request, for options a plugin defines (``auth`` reads
        ``presence``); raise ``CommandError`` to refuse a bad one.
    :return: fields to add; the core's own fields cannot be replaced.
    """


@hookspec(firstresult=True)
def chat_handle_message(session: "Session", command: "Command", message: dict[str, Any]) -> Optional[dict[str, Any]]:
    """Handle one valid request. The core's own implementation (trylast) calls the command's
    handler; wrap this hook (``hookimpl(wrapper=True)``) for logging, rate limits or
    moderation. firstresult: the first non-None result is the reply.

    :param session: the requesting session.
    :param command: the registered command the message names.
    :param message: the decoded JSON object, fields already type-checked.
    :return: the reply to send, or None.
    """


# ----------------------------------------------------------------------------------------------
# 5. Serve: accounts
# Logging in and out, looking users up, removing them.
# ----------------------------------------------------------------------------------------------

@hookspec(firstresult=True)
def chat_lookup_user(username: str) -> Optional[str]:
    """Resolve a username to the registered account's display name (case-insensitive).

    firstresult: the accounts plugin answers; None means no such user.

    :return: the display name, or None.

    :param username: the name as a client wrote it.
    """


@hookspec
def chat_authenticated(session: "Session", first: bool, request: dict[str, Any]) -> None:
    """A session has logged in (``session.user`` is set).

    :param session: the session.
    :param first: True when this is the user's only session online (the user came online).
    :param request: the ``login`` request without its credentials, for options other plugins
        define (chat reads ``since``); empty for a login made without one.
    """


@hookspec
def chat_logging_out(session: "Session", last: bool) -> None:
    """A session is logging out or disconnecting while logged in; ``session.user`` is still set.

    :param session: the session.
    :param last: True when no other session of the user remains online.
    """


@hookspec
def chat_user_removed(server: "ChatServer", username: str) -> None:
    """An account is being removed: forget everything the plugin keeps for the user.

    Delete the user's stored data (history, pending deliveries, files and offers to or from
    them, per-user state), so a stranger who registers the same name later inherits nothing.
    Called after the user's live sessions were ended, by every plugin; the accounts plugin
    (``tryfirst``) deletes the account itself. It may run in a server that is not listening
    (``chatcore user remove`` while no server runs opens the plugins' storage only), and
    it must be idempotent: an interrupted removal is simply run again (``chatcore user remove``
    of a name whose account is already gone runs it too). A failure is logged against the
    plugin and reported to the operator; the other plugins still run.

    :param server: the server; ``server.users.removed_recently(name)`` tells a plugin to
        refuse storing anything new for the name for a few seconds after this call.
    :param username: the account's registered display name.
    """


@hookspec
def chat_session_closed(session: "Session") -> None:
    """A connection ended (after any logout); the session is about to be unregistered.

    :param session: the closed session.
    """


# ----------------------------------------------------------------------------------------------
# 6. Shutdown
# Once, after every session has ended.
# ----------------------------------------------------------------------------------------------

@hookspec
def chat_shutdown(server: "ChatServer") -> None:
    """The server stopped accepting and every session has ended: close storage.

    :param server: the server.
    """


# ----------------------------------------------------------------------------------------------
# Backup and restore
# In the ``chatcore backup`` / ``chatcore restore`` process, not in the server: plugins are
# loaded but not configured. A failure stops the job and names the plugin.
# ----------------------------------------------------------------------------------------------

@hookspec
def chat_backup(config: "Config", backup: "Backup") -> None:
    """Copy the plugin's storage into a backup (``chatcore backup DEST``).

    A server may be running on the data directory and writing meanwhile, or none may be:
    call ``backup.database(path)`` for each SQLite database (SQLite's online backup API from
    one read transaction: a consistent snapshot, the server's writers go on) and
    ``backup.file(path)`` for other files; paths lie under ``backup.data_dir`` (usually
    ``<data>/<plugin>/``) and land at the same place in the backup. Both return the copy's path
    (None when the source is gone), so a plugin can make its copies agree: copy an index first,
    then the files its snapshot names, and drop from the copy what could not be copied. Files
    of the plugin not copied here are not in the backup.

    :param config: the configuration (``config.data_dir`` is the data directory).
    :param backup: the backup being written; ``backup.data_dir`` and ``backup.dest``.
    """


@hookspec
def chat_restore(config: "Config", restore: "Restore") -> None:
    """Check the plugin's part of a backup just restored (``chatcore restore SRC``).

    Called after every file of the backup was copied into the empty data directory and its
    SHA-256 checked, before any server runs on it: raise (with a sentence saying why) to
    refuse data this version cannot use, such as a database schema newer than the plugin's;
    the data directory is then emptied again. ``restore.restored(name)`` lists the files
    restored under ``<data>/<name>/``.

    :param config: the configuration (``config.data_dir`` is the data directory restored into).
    :param restore: the restore; ``restore.source``, ``restore.data_dir``, ``restore.manifest``.
    """


# ----------------------------------------------------------------------------------------------
# Cluster mode
# Before configure on every node, and in the ``chatcore migrate`` process (plugins loaded, not
# configured). Only when CHATCORE_DATABASE_URL and CHATCORE_REDIS_URL are set.
# ----------------------------------------------------------------------------------------------

@hookspec
def chat_migrate(database: "Database") -> None:
    """Create or upgrade the plugin's own schema in the cluster's PostgreSQL.

    Call ``database.schema("<plugin>").migrate(STEPS)``: the numbered SQL steps after the
    stored version run once, in one transaction, under a lock every node takes in turn, and a
    schema newer than the plugin knows is refused. Then, in ``chat_configure``,
    ``server.cluster.database.schema("<plugin>").connection()`` lends a pooled connection on
    that schema. Raising stops the start (or ``chatcore migrate``), naming the plugin.

    :param database: the cluster's database (``chatcore.cluster.Database``).
    """


@hookspec
def chat_import_sqlite(config: "Config", database: "Database") -> None:
    """Copy the plugin's SQLite data (under ``config.data_dir``, usually ``<data>/<plugin>/``)
    into its schema in the cluster's database (``chatcore import-sqlite``; no server runs).

    Called after ``chat_migrate``, in one process, with no node of the cluster running. Keep
    ids, sequence numbers and timestamps as they were, so clients' cursors and device tokens
    stay valid; raise (with a sentence saying why) rather than merge into a schema that
    already holds data. A plugin with nothing stored there does nothing.

    :param config: the configuration (``config.data_dir`` is the single node's data directory).
    :param database: the cluster's database (``chatcore.cluster.Database``).
    """
