"""The operator's commands: ``chatcore status|kick|announce|plugin`` talk to a running server
over its admin socket; ``chatcore backup|restore`` copy the data directory's storage
(``chatcore.backup``) with a progress bar (tqdm) on a terminal.

A command that needs a running server and finds none says so in one line on standard error
and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm  # type: ignore[import-untyped]  # no inline types; only its bar is used

from chatcore import backup as backups
from chatcore.admin import NoServer, admin_request
from chatcore.cluster import cluster_configured
from chatcore.config import Config
from chatcore.status_page import duration

Run = Callable[[argparse.Namespace, Config], int]


def fail(command: str, text: str) -> int:
    """Say what went wrong in one line and return the exit status 1."""
    print(f"chatcore {command}: {text}", file=sys.stderr)
    return 1


def ask(command: str, config: Config, request: dict[str, Any]) -> dict[str, Any]:
    """The running server's reply to ``request``; {"ok": False, "error"} when none answers."""
    try:
        return admin_request(config.data_dir, request)
    except NoServer as exc:  # none running, or one that refuses this user
        return {"ok": False, "error": str(exc)}
    except OSError as exc:  # a server that holds the socket but does not answer in time
        return {"ok": False, "error": f"the server on {config.data_dir} did not answer: {exc}"}


def show_status(args: argparse.Namespace, config: Config) -> int:
    """Print what the running server reports (``--json``: the reply as it came)."""
    reply = ask("status", config, {"command": "status"})
    if not reply.get("ok"):
        return fail("status", str(reply.get("error")))
    if args.json:
        print(json.dumps(reply, indent=2))
        return 0
    plain = reply["connections"] - reply["connections_tls"]
    print(f"chatcore {reply['version']} (pid {reply['pid']}) on {reply['address']}"
          f"{' with TLS' if reply['tls'] else ' without TLS'}, up {duration(reply['uptime'])} since {reply['started']}")
    print(f"data:        {reply['data_dir']}")
    print(f"connections: {reply['connections']} ({reply['connections_tls']} TLS, {plain} plaintext), "
          f"{reply['sessions_logged_in']} logged in")
    shown = reply["users"]
    more = reply["users_online"] - len(shown)
    print(f"users online: {reply['users_online']}" + (f": {', '.join(shown)}" if shown else "")
          + (f" and {more} more" if more > 0 else ""))
    cluster = reply.get("cluster")
    if cluster:
        nodes = cluster["nodes"]
        listed = ", ".join(nodes) if isinstance(nodes, list) else nodes
        print(f"cluster:     node {cluster['node']}; {len(nodes) if isinstance(nodes, list) else '?'} alive: {listed}"
              + (f" — NOT READY: {cluster['problem']}" if cluster["problem"] else ""))
    print("plugins:")
    for plugin in reply["plugins"]:
        state = plugin["state"] + (f" ({plugin['why']})" if plugin["why"] else "")
        print(f"  {plugin['name']:10} {state}{'  [essential]' if plugin['essential'] else ''}")
    return 0


def kick_user(args: argparse.Namespace, config: Config) -> int:
    """End a user's live sessions (one device's, with ``--device``); they may log in again."""
    reply = ask("kick", config, {"command": "kick", "username": args.username, "device": args.device,
                                 "reason": args.reason or ""})
    if not reply.get("ok"):
        return fail("kick", str(reply.get("error")))
    print(f"kicked {reply['username']}: ended {reply['ended']} session(s)")
    return 0


def send_announcement(args: argparse.Namespace, config: Config) -> int:
    """Send an ``announcement`` to every logged-in session."""
    reply = ask("announce", config, {"command": "announce", "text": " ".join(args.text)})
    if not reply.get("ok"):
        return fail("announce", str(reply.get("error")))
    print(f"announced to {reply['delivered']} session(s)")
    return 0


def switch_plugin(args: argparse.Namespace, config: Config) -> int:
    """Disable or re-enable a plugin on the running server (the fault budget's switch)."""
    enable = args.plugin_command == "enable"
    reply = ask("plugin", config, {"command": "plugin", "name": args.name, "enable": enable})
    if not reply.get("ok"):
        return fail(f"plugin {args.plugin_command}", str(reply.get("error")))
    done = "enabled" if enable else "disabled"
    print(f"plugin {reply['name']} {done}" if reply["changed"] else f"plugin {reply['name']} was already {done}")
    return 0


def _bar(what: str, total: int) -> Any:
    """A byte progress bar on standard error (drawn only on a terminal)."""
    return tqdm(total=total, desc=what, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                disable=None, leave=False)


def _with_data_dir(args: argparse.Namespace, config: Config) -> Config:
    return config.with_overrides(STORAGE_DIR=args.data_dir) if args.data_dir else config


def make_backup(args: argparse.Namespace, config: Config) -> int:
    """Copy every plugin's storage into DEST, consistent while a server runs (or none does)."""
    config = _with_data_dir(args, config)
    os.umask(0o077)
    if cluster_configured(config):
        print("chatcore backup: cluster mode keeps the shared data in PostgreSQL, which this does not copy: "
              "back it up with pg_dump (this copies only this node's data directory)", file=sys.stderr)
    with _bar("backup", backups.data_size(config.data_dir)) as bar:
        try:
            manifest, skipped = backups.backup(config, Path(args.dest), bar.update)
        except backups.BackupError as exc:
            return fail("backup", str(exc))
    size = sum(entry["size"] for entry in manifest["files"])
    print(f"backed up {len(manifest['files'])} file(s), {size / (1 << 20):.1f} MiB, to {Path(args.dest).resolve()}")
    if skipped:
        print(f"chatcore backup: not in the backup (no enabled plugin copies them): {', '.join(skipped)}",
              file=sys.stderr)
    return 0


def restore_backup(args: argparse.Namespace, config: Config) -> int:
    """Put a backup back into an empty data directory that no server uses."""
    config = _with_data_dir(args, config)
    os.umask(0o077)
    try:
        total = sum(entry["size"] for entry in backups.read_manifest(Path(args.source))["files"])
        with _bar("restore", total) as bar:
            manifest = backups.restore(config, Path(args.source), bar.update)
    except backups.BackupError as exc:
        return fail("restore", str(exc))
    print(f"restored {len(manifest['files'])} file(s) from the backup of {manifest['created']} into {config.data_dir}")
    return 0


def add_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the operator's subcommands to the ``chatcore`` command line."""
    status = sub.add_parser("status", help="show a running server's uptime, connections, users and plugins")
    status.add_argument("--json", action="store_true", help="print the server's reply as JSON")
    status.set_defaults(run=show_status)
    kick = sub.add_parser("kick", help="disconnect a user's live sessions on a running server")
    kick.add_argument("username")
    kick.add_argument("--device", help="only the sessions logged in as this device")
    kick.add_argument("--reason", help="shown to the user")
    kick.set_defaults(run=kick_user)
    announce = sub.add_parser("announce", help="send an announcement to every logged-in user of a running server")
    announce.add_argument("text", nargs="+")
    announce.set_defaults(run=send_announcement)
    plugin = sub.add_parser("plugin", help="disable or re-enable a plugin on a running server")
    actions = plugin.add_subparsers(dest="plugin_command", required=True, metavar="{disable,enable}")
    for name, help_ in (("disable", "stop calling the plugin's hooks and commands"),
                        ("enable", "call them again, with a fresh fault budget")):
        action = actions.add_parser(name, help=help_)
        action.add_argument("name")
        action.set_defaults(run=switch_plugin)
    backup = sub.add_parser("backup", help="copy every plugin's storage into DEST (while the server runs, or not)")
    backup.add_argument("dest", help="a directory that does not exist yet, or an empty one")
    restore = sub.add_parser("restore", help="put a backup back into an empty data directory")
    restore.add_argument("source", help="a directory made by chatcore backup")
    for parser, run in ((backup, make_backup), (restore, restore_backup)):
        parser.add_argument("--data-dir", help="the data directory (STORAGE_DIR)")
        parser.set_defaults(run=run)
