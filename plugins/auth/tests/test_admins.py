"""Server administrators: ``chatcore user admin NAME`` flags an account; its sessions may
announce and kick from the client, checked by the server; everyone else is refused."""

from __future__ import annotations

import sqlite3

import pytest

from chatcore.testing import PASSWORD
from chatcore_auth.store import SCHEMA_VERSION, AccountStore, NewerSchema


@pytest.fixture
def admins(run_cli, server, login_as):
    """alice (an administrator, flagged before she logged in) and bob (not one), both logged in."""
    for name in ("alice", "bob"):
        assert run_cli("add", name, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    flagged = run_cli("admin", "alice")
    assert flagged.returncode == 0 and "alice is now a server administrator" in flagged.stdout
    return login_as(server, "alice", register=False), login_as(server, "bob", register=False)


@pytest.mark.both_backends
def test_the_flag_shows_in_login_result_and_the_user_list(run_cli, server, connect, admins):
    reply = connect(server).request(command="login", username="ALICE", password=PASSWORD)
    assert reply["response"] == "ok" and reply["admin"] is True
    assert "admin" not in connect(server).request(command="login", username="bob", password=PASSWORD)
    assert run_cli("list").stdout.splitlines()[0].split("\t")[::2] == ["alice", "admin"]
    assert run_cli("admin", "nobody").returncode == 1


def test_an_administrator_announces_and_kicks_from_the_client(server, admins, login_as):
    alice, bob = admins
    reply = alice.request(command="admin_announce", text="Maintenance in ten minutes.")
    assert reply == {"type": "admin_announce_result", "delivered": 2}
    event = bob.expect("announcement")
    assert event["text"] == "Maintenance in ten minutes." and event["by"] == "alice"
    assert alice.expect("announcement")["by"] == "alice"
    kicked = alice.request(command="admin_kick", username="BOB", reason="be nice")
    assert kicked == {"type": "admin_kick_result", "username": "bob", "ended": 1}
    final = [m for m in bob.expect_closed() if m.get("type") == "session_ended"][-1]
    assert final["code"] == "kicked" and final["reason"] == "The administrator alice disconnected you: be nice"
    assert alice.request(command="admin_kick", username="nobody")["code"] == "unknown_user"
    assert alice.request(command="admin_announce", text="  ")["code"] == "bad_request"
    assert alice.request(command="admin_kick", username="alice")["ended"] == 0  # never the asking session
    assert alice.request(command="ping")["type"] == "pong"


def test_everyone_else_is_refused(server, admins, connect):
    alice, bob = admins
    for request in ({"command": "admin_announce", "text": "free pizza"}, {"command": "admin_kick", "username": "alice"}):
        refused = bob.request(request)
        assert refused["type"] == "error" and refused["code"] == "not_admin", refused
        assert refused["reason"].startswith("only server administrators may")
    assert connect(server).request(command="admin_announce", text="hi")["code"] == "not_authenticated"
    assert [m for m in alice.sync() if m.get("type") in ("announcement", "session_ended")] == []


@pytest.mark.both_backends
def test_granting_and_revoking_reach_live_sessions_at_once(run_cli, server, admins, backend_env):
    alice, bob = admins
    granted = run_cli("admin", "bob")
    assert granted.returncode == 0
    assert ("every node told" if backend_env else "1 live session(s) told") in granted.stdout
    assert bob.expect("admin_changed") == {"type": "admin_changed", "admin": True}
    assert bob.request(command="admin_announce", text="bob speaks")["type"] == "admin_announce_result"
    assert run_cli("admin", "bob", "--revoke").returncode == 0
    assert bob.expect("admin_changed") == {"type": "admin_changed", "admin": False}
    assert bob.request(command="admin_announce", text="no more")["code"] == "not_admin"


def test_the_first_schema_gains_the_flag_and_keeps_its_accounts(tmp_path):
    path = tmp_path / "accounts.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE accounts (name_key TEXT PRIMARY KEY, username TEXT NOT NULL, password_hash TEXT NOT NULL,"
                " created TEXT NOT NULL, updated TEXT NOT NULL)")
    old.execute("INSERT INTO accounts VALUES ('dave', 'Dave', 'hash', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")
    old.commit()
    old.close()
    store = AccountStore(path)
    try:
        account = store.get("dave")
        assert account is not None and account.username == "Dave" and account.admin is False
        assert store.set_admin("dave", True) and store.is_admin("DAVE")
    finally:
        store.close()
    again = sqlite3.connect(path)
    assert again.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    again.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    again.close()
    with pytest.raises(NewerSchema):
        AccountStore(path)
