"""The ``chatcore`` command: ``serve``, ``plugins``, ``config``, the operator's commands
(``chatcore.cli_admin``) and plugin-added subcommands."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
from typing import Any, Optional, Sequence

from chatcore import __version__, cli_admin
from chatcore import config as settings
from chatcore.cluster import ClusterUnavailable
from chatcore.config import Config, ConfigError
from chatcore.logging import configure_logger
from chatcore.plugins import PluginError, create_manager, describe
from chatcore.registry import DuplicateCommand

log = logging.getLogger("chatcore")


def raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one: each connection is a file descriptor."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (default 8 per core): memory freed by one thread (a password
    hash's 19 MiB, a burst's send backlog) otherwise stays in many arenas at once. (Until
    session 4 the server also turned off glibc's per-thread caches, which cost ~9 KiB per
    connection thread; with no thread per connection they no longer matter: 75.9 MB off, 72.9
    MB on, 5,000 clients logged in.)"""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    M_ARENA_MAX = -8
    libc.mallopt(M_ARENA_MAX, arenas)
    log.info("malloc: at most %d arenas, GLIBC_TUNABLES=%s", arenas, os.environ.get("GLIBC_TUNABLES", ""))


def freeze_startup_objects() -> None:
    """Exempt what the start built (modules, plugins, their settings: most of the objects the
    collector tracks) from Python's garbage collector for good, so a full collection scans
    only what came later: one of 14.5 ms during a latency run stalled every thread."""
    gc.freeze()
    log.debug("gc: %d objects of the start exempted from collection", gc.get_freeze_count())


def serve(args: argparse.Namespace, config: Config) -> int:
    """Run the server until Ctrl-C or SIGTERM, then shut down in order."""
    from chatcore.server import ChatServer

    raise_open_file_limit()
    limit_malloc_arenas()
    os.umask(0o077)  # every file the server and its plugins create is private to this account
    overrides = {name: value for name, value in (("CHATCORE_HOST", args.host), ("SERVER_PORT", args.port),
                                                 ("STORAGE_DIR", args.data_dir)) if value is not None}
    server = ChatServer(config.with_overrides(**overrides) if overrides else config)
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.start()
    freeze_startup_objects()
    while not stop_requested.wait(1.0):
        pass
    server.stop()
    return 0


def list_plugins(args: argparse.Namespace, config: Config) -> int:
    """Print each installed plugin: name, distribution, version, state, commands."""
    logging.disable(logging.INFO)  # describe() configures the plugins on a scratch directory: not news
    try:
        rows = describe(config)
    finally:
        logging.disable(logging.NOTSET)
    if not rows:
        print("no plugins installed")
    for info in rows:
        state = "enabled" if info.enabled else "disabled"
        print(f"{info.name:10} {info.distribution} {info.version:8} {state:8} {' '.join(info.commands) or '-'}")
    return 0


def declared_settings(config: Config) -> list[settings.Setting]:
    """The core's settings followed by those of every enabled plugin."""
    declared = list(settings.CORE_SETTINGS)
    for group in create_manager(config).hook.chat_settings():
        declared.extend(group or ())
    return declared


def show_config(args: argparse.Namespace, config: Config) -> int:
    """Print every setting as ``.env`` lines: current values, or the defaults (``.env.example``)."""
    for setting in declared_settings(config):
        value = setting.default if args.defaults else config.get(setting)
        print(f"# {setting.help}\n{setting.name}={setting.format(value)}")
    return 0


def migrate(args: argparse.Namespace, config: Config) -> int:
    """Create or upgrade the cluster's schemas (the core's and every enabled plugin's)."""
    from chatcore.cluster import cluster_configured, open_cluster
    from chatcore.cluster.migrate import migrate_all

    if not cluster_configured(config):
        print("chatcore migrate: set CHATCORE_DATABASE_URL and CHATCORE_REDIS_URL (cluster mode);"
              " SQLite stores migrate themselves as the server starts", file=sys.stderr)
        return 2
    cluster = open_cluster(config)
    assert cluster is not None
    try:
        for schema, version in sorted(migrate_all(cluster.database, create_manager(config).hook).items()):
            print(f"{schema:12} version {version}")
    finally:
        cluster.close()
    return 0


def import_sqlite(args: argparse.Namespace, config: Config) -> int:
    """Move a single node's data directory into the cluster: schemas first, then each plugin's
    data (``chat_import_sqlite``) and the TLS certificate, so clients' pins stay valid."""
    from chatcore.cluster import cluster_configured, open_cluster
    from chatcore.cluster.migrate import import_certificate, migrate_all

    if args.data_dir:
        config = config.with_overrides(STORAGE_DIR=args.data_dir)
    if not cluster_configured(config):
        print("chatcore import-sqlite: set CHATCORE_DATABASE_URL and CHATCORE_REDIS_URL to the cluster's",
              file=sys.stderr)
        return 2
    if not config.data_dir.is_dir():
        print(f"chatcore import-sqlite: no data directory at {config.data_dir}", file=sys.stderr)
        return 2
    cluster = open_cluster(config)
    assert cluster is not None
    try:
        hook = create_manager(config).hook
        migrate_all(cluster.database, hook)
        try:
            hook.chat_import_sqlite(config=config, database=cluster.database)
        except Exception as error:  # a plugin's refusal (a schema not empty): its sentence, no traceback
            print(f"chatcore import-sqlite: {error}", file=sys.stderr)
            return 1
        if import_certificate(cluster.database, config.data_dir / "tls"):
            print("imported the TLS certificate: clients' pinned fingerprint stays valid")
    finally:
        cluster.close()
    print(f"imported {config.data_dir} into the cluster")
    return 0


def build_parser(config: Config) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatcore", description="A small chat server built from plugins.")
    parser.add_argument("--version", action="version", version=f"chatcore {__version__}")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("serve", help="run the server (the default)")
    run.add_argument("--host", help="listen address (CHATCORE_HOST)")
    run.add_argument("--port", type=int, help="listen port (SERVER_PORT)")
    run.add_argument("--data-dir", help="data directory (STORAGE_DIR)")
    run.set_defaults(run=serve)
    sub.add_parser("plugins", help="list installed plugins").set_defaults(run=list_plugins)
    show = sub.add_parser("config", help="print every setting and its value")
    show.add_argument("--defaults", action="store_true", help="print the defaults instead (.env.example)")
    show.set_defaults(run=show_config)
    sub.add_parser("migrate", help="create or upgrade the cluster's database schemas").set_defaults(run=migrate)
    importer = sub.add_parser("import-sqlite", help="move a single node's data directory into the cluster")
    importer.add_argument("--data-dir", help="the data directory to import (STORAGE_DIR)")
    importer.set_defaults(run=import_sqlite)
    cli_admin.add_commands(sub)
    try:
        create_manager(config).hook.chat_cli_commands(subparsers=sub, config=config)
    except PluginError:
        pass  # reported by the subcommand that needs the plugins
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = Config.load()
    log_format = (config.raw(settings.LOG_FORMAT.name) or "text").strip().lower()
    configure_logger(config.raw("LOG_LEVEL") or "INFO", log_format if log_format == "json" else "text")
    parser = build_parser(config)
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        args = parser.parse_args(["serve", *(argv if argv is not None else sys.argv[1:])])
    try:
        return int(args.run(args, config) or 0)
    except (ConfigError, PluginError, DuplicateCommand) as exc:
        log.error("%s", exc)
        return 2
    except (OSError, ClusterUnavailable) as exc:
        log.error("cannot start: %s", exc)
        return 1
