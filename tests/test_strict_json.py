"""Only standard JSON and valid Unicode cross the wire, in either direction: a lone surrogate
or a NaN is refused where the frame is decoded, so it can never reach storage, fail another
user's message, or be relayed to clients whose parsers would reject it."""

from __future__ import annotations

import logging

from chatcore import protocol
from chatcore.testing import PASSWORD

PLUGINS = ["auth", "chat", "filexfer"]
LOOSE = {"CHATCORE_RATE_LIMIT": "1000", "CHATCORE_RATE_BURST": "1000"}


def raw_request(client, json_text: bytes) -> None:
    """Send JSON text as written (a test client's encoder would refuse it)."""
    client.send_raw(protocol.encode_payload(json_text))


def test_a_lone_surrogate_is_refused_naming_the_field_and_fails_nobody_else(make_server, connect):
    server = make_server(plugins=PLUGINS, env=LOOSE)
    alice, bob, mallory = connect(server), connect(server), connect(server)
    for client, name in ((alice, "alice"), (bob, "bob"), (mallory, "mallory")):
        client.login(name, PASSWORD, register=True)
    alice.send_raw(b"".join(protocol.encode({"command": "chat", "peer": "bob", "message": f"m{i}",
                                             "client_id": f"a{i}"}) for i in range(95)))
    for i in range(20):
        raw_request(mallory, b'{"command": "chat", "peer": "bob", "message": "x\\ud800", "client_id": "m%d"}' % i)
    for i in range(20):
        error = mallory.expect("error", client_id=f"m{i}")
        assert (error["command"], error["code"]) == ("chat", "bad_request")
        assert "field 'message'" in error["reason"]
    acks = [alice.expect("chat_ack", client_id=f"a{i}") for i in range(95)]
    assert [ack["id"] for ack in acks] == sorted(ack["id"] for ack in acks)
    assert [bob.expect("private_message", message=f"m{i}")["peer"] for i in range(95)] == ["alice"] * 95
    assert not [m for m in bob.sync() if m.get("type") == "private_message"]


def test_a_surrogate_in_client_id_is_refused_before_anything_is_stored(make_server, connect):
    server = make_server(plugins=PLUGINS)
    alice, bob = connect(server), connect(server)
    alice.login("alice", PASSWORD, register=True)
    bob.login("bob", PASSWORD, register=True)
    raw_request(alice, b'{"command": "chat", "peer": "bob", "message": "hi", "client_id": "\\udc00"}')
    error = alice.expect("error")
    assert (error["code"], "client_id" in error) == ("bad_request", False)
    assert "field 'client_id'" in error["reason"]
    history = bob.request(command="get_history", peer="alice")
    assert history["data"] == []


def test_nan_and_infinity_are_refused_and_never_relayed(make_server, connect):
    server = make_server(plugins=PLUGINS)
    alice, bob = connect(server), connect(server)
    alice.login("alice", PASSWORD, register=True)
    bob.login("bob", PASSWORD, register=True)
    for number in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        raw_request(alice, b'{"command": "ping", "nonce": ' + number + b"}")
        assert alice.expect("error")["code"] == "bad_request"
        raw_request(alice, b'{"command": "file_request", "peer": "bob", "filename": "a.txt", "size": '
                    + number + b', "md5": "AB"}')
        assert alice.expect("error")["code"] == "bad_request"
    assert bob.sync() == []  # nothing was forwarded to bob
    assert alice.request(command="ping", nonce=1.5) == {"type": "pong", "nonce": 1.5}


def test_debug_logs_redact_by_field_name_whatever_names_the_command(make_server, connect, caplog):
    caplog.set_level(logging.DEBUG)
    server = make_server(plugins=["auth"])
    client = connect(server)
    client.login("alice", PASSWORD, register=True)
    typed_as_name = "MyS3cretPassw0rd"
    client.send({"type": "logout"})
    client.expect("logout_result")
    client.send({"type": "login", "username": typed_as_name, "password": PASSWORD, "passwd": "hunter22"})
    client.expect("login_result")
    client.send({"command": "ping", "api_token": "tok-123456", "nested": {"Password": "deep-secret"}})
    client.expect("pong")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (typed_as_name, PASSWORD, "hunter22", "tok-123456", "deep-secret"):
        assert secret not in logged
    assert "api_token" in logged and "passwd" in logged  # the requests themselves were logged


def test_register_after_login_is_refused(make_server, connect):
    server = make_server(plugins=["auth"])
    client = connect(server)
    client.login("alice", PASSWORD, register=True)
    reply = client.request(command="register", username="alice2", password=PASSWORD)
    assert (reply["type"], reply["code"]) == ("error", "already_authenticated")
    assert server.lookup_user("alice2") is None
