"""Account removal and password changes end live sessions at once, with or without a running
server, and the data directory belongs to one server at a time."""

from __future__ import annotations

import stat

import pytest

from chatcore.admin import SOCKET_NAME, DataDirInUse, admin_request
from chatcore.server import ChatServer
from chatcore.testing import PASSWORD

NEW_PASSWORD = "a brand new password"


def ended(client, code):
    """The ``session_ended`` event the client got before the server closed its connection."""
    arrived = client.expect_closed()
    finals = [m for m in arrived if m.get("type") == "session_ended"]
    assert finals and finals[-1]["code"] == code and finals[-1]["reason"], arrived
    return finals[-1]


@pytest.mark.both_backends
def test_removal_ends_every_session_of_the_user_at_once(run_cli, server, login_as, connect):
    laptop, phone = login_as(server, "alice"), login_as(server, "alice", register=False)
    bob = login_as(server, "bob")
    bob.sync()
    removed = run_cli("remove", "ALICE")
    assert removed.returncode == 0, removed.stderr
    ended(laptop, "account_removed")
    ended(phone, "account_removed")
    assert bob.expect("peer_left") == {"type": "peer_left", "peer": "alice"}
    assert server.sessions.of_user("alice") == []
    stranger = connect(server)
    assert stranger.request(command="login", username="alice", password=PASSWORD)["response"] == "fail"
    stranger.login("Alice", "someone else's password", register=True)  # the name is free again


@pytest.mark.both_backends
def test_removal_without_a_running_server_goes_through_the_plugins(run_cli, make_server, login_as, backend_env):
    server = make_server(plugins=["auth"], env=backend_env)
    login_as(server, "carol")
    server.stop()
    removed = run_cli("remove", "carol")
    assert removed.returncode == 0, removed.stderr
    assert "removed user carol" in removed.stdout
    again = make_server(plugins=["auth"], env=backend_env)
    assert again.lookup_user("carol") is None
    assert run_cli("remove", "carol").returncode == 1


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(server, login_as):
    laptop, phone, tablet = (login_as(server, "dave", register=(i == 0)) for i in range(3))
    reply = laptop.request(command="change_password", old=PASSWORD, new=NEW_PASSWORD)
    assert reply["response"] == "ok"
    ended(phone, "password_changed")
    ended(tablet, "password_changed")
    assert laptop.request(command="get_users")["type"] == "get_users"  # still logged in
    assert [s.user for s in server.sessions.of_user("dave")] == ["dave"]


def test_a_failed_password_change_ends_nothing(server, login_as):
    laptop, phone = login_as(server, "erin"), login_as(server, "erin", register=False)
    assert laptop.request(command="change_password", old="wrong password", new=NEW_PASSWORD)["response"] == "fail"
    assert phone.request(command="ping")["type"] == "pong"
    assert len(server.sessions.of_user("erin")) == 2


@pytest.mark.both_backends
def test_the_operator_changing_a_password_ends_every_session(run_cli, server, login_as, backend_env):
    laptop, phone = login_as(server, "frank"), login_as(server, "frank", register=False)
    changed = run_cli("passwd", "frank", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert changed.returncode == 0, changed.stderr
    assert ("every node told" if backend_env else "ended 2 live session(s)") in changed.stdout
    ended(laptop, "password_changed")
    ended(phone, "password_changed")


def test_one_server_per_data_directory(server):
    second = ChatServer(server.config)
    with pytest.raises(DataDirInUse):
        second.start()
    assert second.connections() == []


def test_the_admin_socket_is_private_and_answers_only_known_commands(server):
    sock = server.data_dir / SOCKET_NAME
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
    reply = admin_request(server.data_dir, {"command": "drop_tables"})
    assert reply["ok"] is False and "remove_user" in reply["error"]
    assert admin_request(server.data_dir, {"command": "remove_user", "username": "nobody"})["ok"] is False


def test_a_cli_removal_waits_for_no_one_when_the_server_is_gone(run_cli, server, login_as):
    login_as(server, "gina")
    server.stop()
    assert not (server.data_dir / SOCKET_NAME).exists()
    assert run_cli("remove", "gina").returncode == 0
