"""change_password, rehash on login, and what is (not) written to disk."""

from __future__ import annotations

import logging
import sqlite3
import stat

from chatcore.testing import PASSWORD

NEW = "Tr0ub4dor&3 is worse"


def stored_hash(server, name):
    """The password hash row as SQLite has it (read through a second, real connection)."""
    db = sqlite3.connect(server.data_dir / "auth" / "accounts.db")
    try:
        return db.execute("SELECT password_hash FROM accounts WHERE name_key = ?", (name.casefold(),)).fetchone()[0]
    finally:
        db.close()


def test_change_password(server, connect, login_as):
    client = login_as(server, "alice")
    reply = client.request(command="change_password", old=PASSWORD, new=NEW)
    assert reply == {"type": "change_password_result", "response": "ok"}
    fresh = connect(server)
    assert fresh.request(command="login", username="alice", password=PASSWORD)["response"] == "fail"
    assert fresh.request(command="login", username="alice", password=NEW)["response"] == "ok"


def test_change_password_refusals_say_why(server, login_as):
    client = login_as(server, "alice")
    wrong = client.request(command="change_password", old="not my password", new=NEW)
    assert wrong["response"] == "fail" and wrong["reason"] == "The current password is incorrect."
    short = client.request(command="change_password", old=PASSWORD, new="short")
    assert short["response"] == "fail" and "at least 8 characters" in short["reason"]
    huge = client.request(command="change_password", old=PASSWORD, new="x" * 2000)
    assert huge["response"] == "fail" and "at most 1024 characters" in huge["reason"]
    bad = client.request(command="change_password", old=PASSWORD, new=12345678)
    assert bad["type"] == "error" and bad["code"] == "bad_request"
    missing = client.request(command="change_password", new=NEW)
    assert missing["type"] == "error" and missing["code"] == "bad_request"
    assert client.request(command="change_password", old=PASSWORD, new=NEW)["response"] == "ok"


def test_change_password_needs_login(server, connect):
    reply = connect(server).request(command="change_password", old=PASSWORD, new=NEW)
    assert reply["type"] == "error" and reply["code"] == "not_authenticated"


def test_hashes_are_argon2id_and_upgraded_at_login_when_parameters_rise(make_server, connect):
    weak = make_server(plugins=["auth"], env={"CHATCORE_AUTH_ARGON2_TIME_COST": "1",
                                             "CHATCORE_AUTH_ARGON2_MEMORY_KIB": "8192"})
    connect(weak).request(command="register", username="alice", password=PASSWORD)
    assert stored_hash(weak, "alice").startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    weak.stop()
    strong = make_server(plugins=["auth"])
    assert connect(strong).request(command="login", username="alice", password=PASSWORD)["response"] == "ok"
    upgraded = stored_hash(strong, "alice")
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert connect(strong).request(command="login", username="alice", password=PASSWORD)["response"] == "ok"
    assert stored_hash(strong, "alice") == upgraded  # no needless rehash once current


def test_the_password_never_reaches_the_data_directory_or_the_log(server, connect, caplog):
    caplog.set_level("DEBUG")
    secrets = ["Pa55word-that-must-not-leak", "Second-secret-also-hidden"]
    client = connect(server)
    client.request(command="register", username="alice", password=secrets[0])
    client.request(command="login", username="alice", password="wrong-" + secrets[0])
    client.request(command="login", username=secrets[1], password=secrets[0])  # a password typed as the name
    client.request(command="login", username="alice", password=secrets[0])
    client.request(command="change_password", old=secrets[0], new=secrets[1])
    client.request(command="logout")

    def leaks():
        files = [p for p in server.data_dir.rglob("*") if p.is_file()]
        return files, [(p.name, s) for p in files for s in secrets if s.encode() in p.read_bytes()]

    files, found = leaks()
    assert any(p.name == "accounts.db-wal" for p in files)  # the WAL is searched too
    assert found == []
    server.stop()
    assert leaks()[1] == []
    # The core's own DEBUG line shows the (unvalidated) username; everything else must be clean.
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("chatcore_auth") or r.levelno >= logging.INFO]
    assert logged and not [line for line in logged for s in secrets if s in line]


def test_storage_is_private_to_the_server_user(server, connect):
    connect(server).request(command="register", username="alice", password=PASSWORD)
    folder = server.data_dir / "auth"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
