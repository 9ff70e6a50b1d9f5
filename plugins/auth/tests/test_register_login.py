"""Registration and login over the wire: rules, legacy reason strings, wrong types."""

from __future__ import annotations

import pytest

from chatcore.testing import PASSWORD


@pytest.mark.both_backends
def test_register_then_login(server, connect):
    client = connect(server)
    reply = client.request(command="register", username="Alice", password=PASSWORD)
    assert reply == {"type": "register_result", "username": "Alice", "response": "ok"}
    reply = client.request(command="login", username="Alice", password=PASSWORD)
    assert reply == {"type": "login_result", "username": "Alice", "response": "ok"}


@pytest.mark.both_backends
def test_login_in_another_case_shows_the_name_as_registered(server, connect):
    client = connect(server)
    client.request(command="register", username="Alice", password=PASSWORD)
    reply = client.request(command="login", username="aLICE", password=PASSWORD)
    assert reply["response"] == "ok" and reply["username"] == "Alice"


def test_type_instead_of_command_is_accepted(server, connect):
    client = connect(server)
    client.send(type="register", username="bob", password=PASSWORD)
    assert client.expect("register_result")["response"] == "ok"


@pytest.mark.both_backends
def test_duplicate_in_another_case_is_refused_with_the_legacy_reason(server, connect):
    client = connect(server)
    assert client.request(command="register", username="Alice", password=PASSWORD)["response"] == "ok"
    for name in ("Alice", "alice", "ALICE"):
        reply = client.request(command="register", username=name, password="another password")
        assert reply["response"] == "fail"
        assert reply["reason"] == "Username already exists!"
    # the original password still works: the duplicate changed nothing
    assert client.request(command="login", username="alice", password=PASSWORD)["response"] == "ok"


@pytest.mark.parametrize("name, words", [
    ("", "empty"),
    ("a" * 33, "longer than 32"),
    ("has space", "a space"),
    ("../x", "'/'"),
    ("zoë", "'ë'"),
    ("名前", "'名'"),
    ("tab\there", "U+0009"),
    ("..", "only of dots"),
])
def test_invalid_usernames_are_refused_saying_what_is_wrong(server, connect, name, words):
    client = connect(server)
    reply = client.request(command="register", username=name, password=PASSWORD)
    assert reply["response"] == "fail"
    assert words in reply["reason"], reply
    assert reply["reason"] != "Username already exists!"


def test_username_limits_are_inclusive(server, connect):
    client = connect(server)
    for name in ("x", "a" * 32, "A_b.c-9"):
        assert client.request(command="register", username=name, password=PASSWORD)["response"] == "ok", name


def test_password_bounds(make_server, connect):
    server = make_server(plugins=["auth"], env={"CHATCORE_AUTH_MIN_PASSWORD": "10",
                                               "CHATCORE_AUTH_MAX_PASSWORD": "64"})
    client = connect(server)
    short = client.request(command="register", username="bob", password="123456789")
    assert short["response"] == "fail" and "at least 10 characters" in short["reason"]
    long = client.request(command="register", username="bob", password="p" * 65)
    assert long["response"] == "fail" and "at most 64 characters" in long["reason"]
    assert client.request(command="register", username="bob", password="p" * 64)["response"] == "ok"


def test_default_minimum_password_is_8(server, connect):
    client = connect(server)
    reply = client.request(command="register", username="bob", password="1234567")
    assert reply["response"] == "fail" and "at least 8" in reply["reason"]


def test_huge_values_get_a_short_clear_reply(server, connect):
    client = connect(server)
    reply = client.request(command="register", username="u" * 40_000, password=PASSWORD)
    assert reply["response"] == "fail" and "longer than 32" in reply["reason"]
    assert len(reply["username"]) <= 64
    reply = client.request(command="login", username="bob", password="p" * 40_000)
    assert reply == {"type": "login_result", "username": "bob", "response": "fail",
                     "reason": "Incorrect username or password!"}


def test_wrong_password_and_unknown_user_look_the_same(server, connect):
    client = connect(server)
    client.request(command="register", username="alice", password=PASSWORD)
    wrong = client.request(command="login", username="alice", password="not the password")
    unknown = client.request(command="login", username="nobody", password="not the password")
    assert wrong["reason"] == unknown["reason"] == "Incorrect username or password!"
    assert {k: v for k, v in wrong.items() if k != "username"} == {k: v for k, v in unknown.items() if k != "username"}


@pytest.mark.parametrize("message", [
    {"command": "register", "username": 5, "password": PASSWORD},
    {"command": "register", "username": "bob", "password": None},
    {"command": "register", "username": "bob"},
    {"command": "login", "username": ["bob"], "password": PASSWORD},
    {"command": "login", "username": "bob", "password": 12345678},
    {"command": "login", "password": PASSWORD},
    {"command": "login", "username": "bob", "password": True},
])
def test_wrong_typed_or_missing_fields_are_bad_request(server, connect, message):
    client = connect(server)
    reply = client.request(message)
    assert reply["type"] == "error" and reply["code"] == "bad_request"
    assert client.request(command="ping")["type"] == "pong"  # the connection stays usable


def test_second_login_on_the_same_connection_is_an_error(server, connect, login_as):
    client = login_as(server, "alice")
    connect(server).request(command="register", username="bob", password=PASSWORD)
    reply = client.request(command="login", username="bob", password=PASSWORD)
    assert reply["type"] == "error" and reply["code"] == "already_authenticated"
    assert client.request(command="get_users")["data"] == []  # still alice, who sees no one else


@pytest.mark.both_backends
def test_accounts_survive_a_restart(make_server, connect, backend_env):
    first = make_server(plugins=["auth"], env=backend_env)
    connect(first).request(command="register", username="alice", password=PASSWORD)
    first.stop()
    second = make_server(plugins=["auth"], env=backend_env)
    assert connect(second).request(command="login", username="ALICE", password=PASSWORD)["response"] == "ok"


def test_plugin_disabled_means_register_is_unknown(make_server, connect):
    server = make_server(plugins=[])
    client = connect(server)
    for command in ("register", "login", "get_users", "change_password", "logout"):
        reply = client.request(command=command, username="bob", password=PASSWORD)
        assert reply["type"] == "error" and reply["code"] == "unknown_command", reply


@pytest.mark.both_backends
def test_lookup_user_is_case_insensitive(server, connect):
    connect(server).request(command="register", username="Alice", password=PASSWORD)
    assert server.lookup_user("alice") == "Alice"
    assert server.lookup_user("ALICE") == "Alice"
    assert server.lookup_user("bob") is None
    assert server.lookup_user("../etc") is None


def test_hello_tells_the_account_rules(server, connect):
    hello = connect(server).request(command="hello", protocol=2)
    assert hello["auth"] == {"username_max": 32, "password_min": 8, "password_max": 1024}
