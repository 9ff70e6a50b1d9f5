"""``chatcore user add|remove|list|passwd|devices|revoke|admin``: manage accounts in the same
store as the server.

Works whether or not the server runs (SQLite WAL); a running server hears of removals and
password changes over its admin socket and applies them to live sessions at once. In cluster
mode (``CHATCORE_DATABASE_URL`` and ``CHATCORE_REDIS_URL`` set) the commands work on the
cluster's PostgreSQL from any machine, and what must reach live sessions is published on the
cluster's bus, so every node applies it. Passwords are read from a prompt, or from
standard input with ``--password-stdin``; never from the command line, where ``ps`` and shell
history would show them.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
import time
from typing import Any, Callable, Iterator, Optional

from chatcore.admin import DataDirInUse, NoServer, admin_request
from chatcore.cluster import open_cluster
from chatcore.cluster.relay import END_SESSIONS, SET_ADMIN
from chatcore.config import Config
from chatcore.users import DEVICE_REVOKED, PASSWORD_CHANGED
from chatcore_auth import NAME, backends
from chatcore_auth.devices import TokenStore
from chatcore_auth.fanout import cli_bus, end_sessions_event, publish_from_cli
from chatcore_auth.names import password_problem, username_problem
from chatcore_auth.settings import MAX_PASSWORD, MIN_PASSWORD, TOKEN_TTL, hasher_from
from chatcore_auth.store import AccountStorage


@contextlib.contextmanager
def _stores(config: Config) -> Iterator[tuple[AccountStorage, TokenStore]]:
    """The account and device-token stores the server uses: the SQLite file under
    ``<data dir>/auth/`` (created private if missing), or the cluster's ``auth`` schema."""
    cluster = open_cluster(config)
    try:
        if cluster is not None:
            backends.migrate(cluster.database)  # a cluster no node has started yet
        store, tokens = backends.open_stores(config.data_dir / NAME, cluster, config.get(TOKEN_TTL))
        try:
            yield store, tokens
        finally:
            tokens.close()
            store.close()
    finally:
        if cluster is not None:
            cluster.close()


@contextlib.contextmanager
def _open_store(config: Config) -> Iterator[AccountStorage]:
    with _stores(config) as (store, _):
        yield store


@contextlib.contextmanager
def _open_tokens(config: Config) -> Iterator[TokenStore]:
    with _stores(config) as (_, tokens):
        yield tokens


def _tell_server(config: Config, request: dict[str, Any], counted: str, topic: str,
                 event: dict[str, Any]) -> Optional[int]:
    """Have live sessions apply a change: in a cluster every node hears ``event`` on the bus
    (None: no count to show); else the server on this data directory, if one runs, does
    ``request`` and answers how many sessions it touched (``counted``)."""
    if publish_from_cli(config, topic, event):
        return None
    try:
        return int(admin_request(config.data_dir, request).get(counted, 0))
    except NoServer:
        return 0


def _fail(text: str) -> int:
    print(f"chatcore user: {text}", file=sys.stderr)
    return 1


def read_password(args: argparse.Namespace) -> str:
    """The new password: one line of stdin with ``--password-stdin``, else typed twice at a prompt."""
    if args.password_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise ValueError("the passwords do not match")
    return first


def _new_password(args: argparse.Namespace, config: Config) -> str:
    password = read_password(args)
    problem = password_problem(password, config.get(MIN_PASSWORD), config.get(MAX_PASSWORD))
    if problem is not None:
        raise ValueError(problem)
    return password


def add_user(args: argparse.Namespace, config: Config) -> int:
    """Create an account."""
    problem = username_problem(args.username)
    if problem is not None:
        return _fail(problem)
    try:
        with _open_store(config) as store:
            if store.exists(args.username):
                return _fail(f"user {args.username!r} already exists")
            try:
                password = _new_password(args, config)
            except ValueError as exc:
                return _fail(str(exc))
            store.add(args.username, hasher_from(config).hash(password))
    except Exception as exc:  # DuplicateUser from a concurrent registration, or database errors
        return _fail(f"cannot add {args.username!r}: {exc.__class__.__name__}")
    print(f"added user {args.username}")
    return 0


def remove_user(args: argparse.Namespace, config: Config) -> int:
    """Delete an account and everything every plugin keeps for it. With a server running,
    the server does it (ending the user's live sessions at once); otherwise this command opens
    the plugins' storage itself, holding the data directory so no server starts meanwhile."""
    try:
        reply = admin_request(config.data_dir, {"command": "remove_user", "username": args.username})
    except NoServer:
        reply = _remove_offline(args.username, config)
    if not reply.get("ok"):
        return _fail(str(reply.get("error", "the server refused")))
    print(f"removed user {reply['username']} and its data")
    return 0


def _remove_offline(username: str, config: Config) -> dict[str, object]:
    """``remove_user`` without a running server: the same code path, on storage opened here."""
    from chatcore.server import ChatServer  # only this command needs the whole server

    server = ChatServer(config)
    try:
        server.open()
    except DataDirInUse:
        return {"ok": False, "error": "a server holds the data directory but does not answer on its admin socket"}
    try:
        if server.cluster is None:
            return server.users.remove_account(username)
        with cli_bus(server.cluster):  # the other nodes hear of it: they end the user's sessions
            return server.users.remove_account(username)
    finally:
        server.close()


def list_users(args: argparse.Namespace, config: Config) -> int:
    """Print every account and when it was created."""
    with _open_store(config) as store:
        accounts = store.accounts()
    for account in accounts:
        print(f"{account.username}\t{account.created}" + ("\tadmin" if account.admin else ""))
    return 0


def set_admin(args: argparse.Namespace, config: Config) -> int:
    """Make a user a server administrator (``--revoke``: no longer one). A running server
    applies it to the user's live sessions at once (they get ``admin_changed``)."""
    admin = not args.revoke
    with _open_store(config) as store:
        account = store.get(args.username)
        if account is None:
            return _fail(f"no user {args.username!r}")
        store.set_admin(account.username, admin)
    live = _tell_server(config, {"command": "set_admin", "username": account.username, "admin": admin},
                        "sessions", SET_ADMIN, {"username": account.username, "admin": admin})
    print(f"{account.username} is {'now' if admin else 'no longer'} a server administrator"
          + (" (every node told)" if live is None else f" ({live} live session(s) told)" if live else ""))
    return 0


def set_password(args: argparse.Namespace, config: Config) -> int:
    """Set a user's password (no old password needed: this is the administrator)."""
    with _stores(config) as (store, tokens):
        account = store.get(args.username)
        if account is None:
            return _fail(f"no user {args.username!r}")
        try:
            password = _new_password(args, config)
        except ValueError as exc:
            return _fail(str(exc))
        store.set_hash(account.username, hasher_from(config).hash(password))
        tokens.revoke(account.username, why="password_changed")
    # a running server logs the user out everywhere: the old password may have leaked
    ended = _tell_server(config, {"command": "end_sessions", "username": account.username, "code": PASSWORD_CHANGED},
                         "ended", END_SESSIONS, end_sessions_event(account.username, PASSWORD_CHANGED))
    print(f"changed the password of {account.username}" + _ended_text(ended))
    return 0


def list_devices(args: argparse.Namespace, config: Config) -> int:
    """Print the user's devices with a valid token: name, last used (UTC), last address, created."""
    with _stores(config) as (store, tokens):
        account = store.get(args.username)
        if account is None:
            return _fail(f"no user {args.username!r}")
        devices = tokens.devices(account.username)
    for device in devices:
        print("\t".join((device.device, _utc(device.last_used), device.last_address, _utc(device.created))))
    return 0


def revoke_device(args: argparse.Namespace, config: Config) -> int:
    """Sign a device out: its token stops working; on a running server its live sessions end."""
    with _open_tokens(config) as tokens:
        revoked = tokens.revoke(args.username, args.device)
    ended = _tell_server(config, {"command": "end_sessions", "username": args.username, "code": DEVICE_REVOKED,
                                  "device": args.device},
                         "ended", END_SESSIONS, end_sessions_event(args.username, DEVICE_REVOKED, args.device))
    if not revoked and not ended:
        return _fail(f"{args.username!r} has no device {args.device!r}")
    print(f"revoked {args.device} of {args.username}" + _ended_text(ended))
    return 0


def _ended_text(ended: Optional[int]) -> str:
    if ended is None:
        return "; every node told to end its live sessions"
    return f"; ended {ended} live session(s)" if ended else ""


def _utc(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def add_commands(subparsers: "argparse._SubParsersAction", config: Config) -> None:
    """Add ``chatcore user ...`` to the ``chatcore`` command line."""
    user = subparsers.add_parser("user", help="manage accounts (auth plugin)")
    actions = user.add_subparsers(dest="user_command", required=True,
                                  metavar="{add,remove,list,passwd,devices,revoke,admin}")

    def action(name: str, run: Callable[[argparse.Namespace, Config], int], help_: str,
               needs_name: bool = True, asks_password: bool = False) -> None:
        parser = actions.add_parser(name, help=help_)
        if needs_name:
            parser.add_argument("username")
        if asks_password:
            parser.add_argument("--password-stdin", action="store_true",
                                help="read the password as one line from standard input instead of a prompt")
        parser.set_defaults(run=run)

    action("add", add_user, "create an account", asks_password=True)
    action("remove", remove_user, "delete an account")
    action("list", list_users, "list accounts", needs_name=False)
    action("passwd", set_password, "set an account's password", asks_password=True)
    action("devices", list_devices, "list a user's devices (their login tokens)")
    revoke = actions.add_parser("revoke", help="sign a device out (its token stops working)")
    revoke.add_argument("username")
    revoke.add_argument("device")
    revoke.set_defaults(run=revoke_device)
    admin = actions.add_parser("admin", help="make a user a server administrator (announce, kick from the client)")
    admin.add_argument("username")
    admin.add_argument("--revoke", action="store_true", help="take the administrator flag away instead")
    admin.set_defaults(run=set_admin)
