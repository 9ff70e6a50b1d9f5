"""``chatcore user add|list|passwd|remove`` on the same store, with and without the server."""

from __future__ import annotations

import pytest

from chatcore.testing import PASSWORD


@pytest.mark.both_backends
def test_user_commands_with_the_server_stopped_and_running(run_cli, make_server, connect, backend_env):
    added = run_cli("add", "Dave", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    listed = run_cli("list")
    assert listed.returncode == 0 and listed.stdout.split("\t")[0] == "Dave"

    server = make_server(plugins=["auth"], env=backend_env)  # same data directory (or cluster) as the CLI
    assert connect(server).request(command="login", username="dave", password=PASSWORD)["response"] == "ok"

    changed = run_cli("passwd", "dave", "--password-stdin", stdin="a new password\n")
    assert changed.returncode == 0, changed.stderr
    client = connect(server)
    assert client.request(command="login", username="dave", password=PASSWORD)["response"] == "fail"
    assert client.request(command="login", username="dave", password="a new password")["response"] == "ok"

    connect(server).request(command="register", username="erin", password=PASSWORD)
    listed = run_cli("list")
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["Dave", "erin"]

    removed = run_cli("remove", "ERIN")
    assert removed.returncode == 0, removed.stderr
    reply = connect(server).request(command="login", username="erin", password=PASSWORD)
    assert reply["reason"] == "Incorrect username or password!"
    assert server.lookup_user("erin") is None


@pytest.mark.both_backends
def test_user_command_refusals(run_cli):
    assert run_cli("add", "dave", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    duplicate = run_cli("add", "DAVE", "--password-stdin", stdin=PASSWORD + "\n")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    bad_name = run_cli("add", "../x", "--password-stdin", stdin=PASSWORD + "\n")
    assert bad_name.returncode == 1 and "may only contain" in bad_name.stderr
    short = run_cli("add", "frank", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    assert run_cli("remove", "nobody").returncode == 1
    assert run_cli("passwd", "nobody", "--password-stdin", stdin=PASSWORD + "\n").returncode == 1
    assert [line.split("\t")[0] for line in run_cli("list").stdout.splitlines()] == ["dave"]


def test_the_password_is_not_an_argument(run_cli):
    refused = run_cli("add", "dave", PASSWORD)
    assert refused.returncode != 0 and "unrecognized arguments" in refused.stderr
