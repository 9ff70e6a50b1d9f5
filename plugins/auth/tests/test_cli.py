"""``chatcore user add|list|passwd|remove`` on the same store, with and without the server."""

from __future__ import annotations

import os
import subprocess
import sys

PASSWORD = "correct horse battery"


def run_cli(tmp_path, *args, stdin=""):
    """Run the real ``chatcore`` command with STORAGE_DIR at the tests' data directory."""
    env = {**os.environ, "STORAGE_DIR": str(tmp_path / "data"), "CHATCORE_PLUGINS": "auth", "LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "chatcore", "user", *args], input=stdin, capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)


def test_user_commands_with_the_server_stopped_and_running(tmp_path, make_server, connect):
    added = run_cli(tmp_path, "add", "Dave", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    listed = run_cli(tmp_path, "list")
    assert listed.returncode == 0 and listed.stdout.split("\t")[0] == "Dave"

    server = make_server(plugins=["auth"])  # same data directory as the CLI
    assert connect(server).request(command="login", username="dave", password=PASSWORD)["response"] == "ok"

    changed = run_cli(tmp_path, "passwd", "dave", "--password-stdin", stdin="a new password\n")
    assert changed.returncode == 0, changed.stderr
    client = connect(server)
    assert client.request(command="login", username="dave", password=PASSWORD)["response"] == "fail"
    assert client.request(command="login", username="dave", password="a new password")["response"] == "ok"

    connect(server).request(command="register", username="erin", password=PASSWORD)
    listed = run_cli(tmp_path, "list")
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["Dave", "erin"]

    removed = run_cli(tmp_path, "remove", "ERIN")
    assert removed.returncode == 0, removed.stderr
    reply = connect(server).request(command="login", username="erin", password=PASSWORD)
    assert reply["reason"] == "Incorrect username or password!"
    assert server.lookup_user("erin") is None


def test_user_command_refusals(tmp_path):
    assert run_cli(tmp_path, "add", "dave", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    duplicate = run_cli(tmp_path, "add", "DAVE", "--password-stdin", stdin=PASSWORD + "\n")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    bad_name = run_cli(tmp_path, "add", "../x", "--password-stdin", stdin=PASSWORD + "\n")
    assert bad_name.returncode == 1 and "may only contain" in bad_name.stderr
    short = run_cli(tmp_path, "add", "frank", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    assert run_cli(tmp_path, "remove", "nobody").returncode == 1
    assert run_cli(tmp_path, "passwd", "nobody", "--password-stdin", stdin=PASSWORD + "\n").returncode == 1
    assert [line.split("\t")[0] for line in run_cli(tmp_path, "list").stdout.splitlines()] == ["dave"]


def test_the_password_is_not_an_argument(tmp_path):
    refused = run_cli(tmp_path, "add", "dave", PASSWORD)
    assert refused.returncode != 0 and "unrecognized arguments" in refused.stderr
