"""``chatcore user add|remove|list|passwd|devices|revoke|admin``: manage accounts in the same
store as the server.

Works whether or not the server runs (SQLite WAL); a running server hears of removals and
password changes over its admin socket and applies them to live sessions at once. Passwords are read from a prompt, or from
standard input with ``--password-stdin``; never from the command line, where ``ps`` and shell
history would show them.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
import time
from typing import Callable, Iterator

from chatcore.admin import DataDirInUse, NoServer, admin_request
from chatcore.config import Config
from chatcore.users import DEVICE_REVOKED, PASSWORD_CHANGED
from chatcore_auth import NAME
from chatcore_auth.devices import DeviceTokens
from chatcore_auth.names import password_problem, username_problem
from chatcore_auth.settings import MAX_PASSWORD, MIN_PASSWORD, TOKEN_TTL, hasher_from
from chatcore_auth.store import FILENAME, AccountStore


def open_store(config: Config) -> AccountStore:
    """The account store under ``<data dir>/auth/``, created private if missing."""
    return AccountStore(config.data_dir / NAME / FILENAME)


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
    store = open_store(config)
    try:
        if store.exists(args.username):
            return _fail(f"user {args.username!r} already exists")
        try:
            password = _new_password(args, config)
        except ValueError as exc:
            return _fail(str(exc))
        store.add(args.username, hasher_from(config).hash(password))
    except Exception as exc:  # DuplicateUser from a concurrent registration, or SQLite errors
        return _fail(f"cannot add {args.username!r}: {exc.__class__.__name__}")
    finally:
        store.close()
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
        return server.users.remove_account(username)
    finally:
        server.close()


def list_users(args: argparse.Namespace, config: Config) -> int:
    """Print every account and when it was created."""
    store = open_store(config)
    try:
        accounts = store.accounts()
    finally:
        store.close()
    for account in accounts:
        print(f"{account.username}\t{account.created}" + ("\tadmin" if account.admin else ""))
    return 0


def set_admin(args: argparse.Namespace, config: Config) -> int:
    """Make a user a server administrator (``--revoke``: no longer one). A running server
    applies it to the user's live sessions at once (they get ``admin_changed``)."""
    admin = not args.revoke
    store = open_store(config)
    try:
        account = store.get(args.username)
        if account is None:
            return _fail(f"no user {args.username!r}")
        store.set_admin(account.username, admin)
    finally:
        store.close()
    try:
        live = admin_request(config.data_dir, {"command": "set_admin", "username": account.username,
                                               "admin": admin}).get("sessions", 0)
    except NoServer:
        live = 0
    print(f"{account.username} is {'now' if admin else 'no longer'} a server administrator"
          + (f" ({live} live session(s) told)" if live else ""))
    return 0


def set_password(args: argparse.Namespace, config: Config) -> int:
    """Set a user's password (no old password needed: this is the administrator)."""
    store = open_store(config)
    try:
        account = store.get(args.username)
        if account is None:
            return _fail(f"no user {args.username!r}")
        try:
            password = _new_password(args, config)
        except ValueError as exc:
            return _fail(str(exc))
        store.set_hash(account.username, hasher_from(config).hash(password))
    finally:
        store.close()
    with _open_tokens(config) as tokens:
        tokens.revoke(account.username, why="password_changed")
    try:  # a running server logs the user out everywhere: the old password may have leaked
        ended = admin_request(config.data_dir, {"command": "end_sessions", "username": account.username,
                                                "code": PASSWORD_CHANGED}).get("ended", 0)
    except NoServer:
        ended = 0
    print(f"changed the password of {account.username}" + (f"; ended {ended} live session(s)" if ended else ""))
    return 0


@contextlib.contextmanager
def _open_tokens(config: Config) -> Iterator[DeviceTokens]:
    """The device tokens beside the account store (SQLite WAL: fine beside a running server)."""
    tokens = DeviceTokens(config.data_dir / NAME / FILENAME, config.get(TOKEN_TTL))
    try:
        yield tokens
    finally:
        tokens.close()


def list_devices(args: argparse.Namespace, config: Config) -> int:
    """Print the user's devices with a valid token: name, last used (UTC), last address, created."""
    store = open_store(config)
    try:
        account = store.get(args.username)
    finally:
        store.close()
    if account is None:
        return _fail(f"no user {args.username!r}")
    with _open_tokens(config) as tokens:
        devices = tokens.devices(account.username)
    for device in devices:
        print("\t".join((device.device, _utc(device.last_used), device.last_address, _utc(device.created))))
    return 0


def revoke_device(args: argparse.Namespace, config: Config) -> int:
    """Sign a device out: its token stops working; on a running server its live sessions end."""
    with _open_tokens(config) as tokens:
        revoked = tokens.revoke(args.username, args.device)
    try:
        ended = admin_request(config.data_dir, {"command": "end_sessions", "username": args.username,
                                                "code": DEVICE_REVOKED, "device": args.device}).get("ended", 0)
    except NoServer:
        ended = 0
    if not revoked and not ended:
        return _fail(f"{args.username!r} has no device {args.device!r}")
    print(f"revoked {args.device} of {args.username}" + (f"; ended {ended} live session(s)" if ended else ""))
    return 0


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
