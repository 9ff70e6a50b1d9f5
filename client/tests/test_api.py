"""The headless client library against a real server with the real plugins, over real sockets."""

from __future__ import annotations

import hashlib
import os

import pytest

from chatcore.testing import PASSWORD
from chatcore_client.api import ChatClient, Closed, ServerError
from chatcore_client.connection import ConnectError
from chatcore_client.progress import Progress

ALL_PLUGINS = ["auth", "chat", "filexfer"]


def test_hello_reports_plugins_over_tls(make_server, pins):
    server = make_server(plugins=ALL_PLUGINS)
    with ChatClient.connect(*server.address, pins=pins, ask=lambda *_: True) as client:
        assert set(ALL_PLUGINS) <= set(client.server.plugins)
        assert client.server.offers("login", "chat", "file_upload")
        assert client.tls and client.server.raw["tls"] is True and client.connection.warning is None


def test_plaintext_server_works_with_a_visible_warning(make_server, pins):
    server = make_server(plugins=ALL_PLUGINS, env={"CHATCORE_TLS": "false"})
    with ChatClient.connect(*server.address, pins=pins) as client:
        assert not client.tls and client.server.raw["tls"] is False
        assert "Unencrypted" in (client.connection.warning or "")


def test_register_login_and_reasons(make_server, api_client):
    server = make_server(plugins=ALL_PLUGINS)
    client = api_client(server)
    assert client.register("alice", PASSWORD)["response"] == "ok"
    with pytest.raises(ServerError) as taken:
        client.register("ALICE", PASSWORD)
    assert taken.value.reason == "Username already exists!"
    with pytest.raises(ServerError) as wrong:
        client.login("alice", "not the password")
    assert wrong.value.reason == "Incorrect username or password!"
    client.login("alice", PASSWORD)
    assert client.user == "alice"


def test_a_device_login_gets_a_token_that_reconnects_and_catches_up_without_the_password(make_server, api_client):
    server = make_server(plugins=ALL_PLUGINS)
    bob = api_client(server, "bob")
    alice = api_client(server)
    alice.register("alice", PASSWORD)
    token = alice.login("alice", PASSWORD, device="script")["token"]
    seen = bob.chat("alice", "hello")["id"]
    assert alice.expect(("private_message",), 5)["id"] == seen  # she has it (the ack can come before it)
    alice.close()
    missed = bob.chat("alice", "while you were away")["id"]
    again = api_client(server)
    reply = again.login_token("alice", token, since=seen)
    assert (reply["response"], reply["device"]) == ("ok", "script")
    assert again.expect(("private_message",), 5)["id"] == missed
    assert again.expect(("caught_up",), 5)["complete"] is True
    with pytest.raises(ServerError) as refused:
        api_client(server).login_token("alice", "not-the-token")
    assert "not valid" in refused.value.reason


def test_a_session_ended_on_purpose_is_not_reconnected_with_the_old_credentials(make_server, api_client):
    server = make_server(plugins=ALL_PLUGINS)
    laptop = api_client(server, "quinn")
    phone = api_client(server, "quinn")
    assert laptop.request("change_password", ["change_password_result"], old=PASSWORD,
                          new="another good password")["response"] == "ok"
    with pytest.raises(Closed):
        phone.expect(("never",), 5)  # reads the session_ended, then the close
    assert phone.ended and "password" in phone.ended
    with pytest.raises(Closed, match="log in again"):
        phone.reconnect()


def test_chat_between_two_clients_with_ack(make_server, api_client):
    server = make_server(plugins=ALL_PLUGINS)
    alice, bob = api_client(server, "alice"), api_client(server, "bob")
    ack = alice.chat("bob", "hello bob")
    assert isinstance(ack["id"], int) and ack["peer"] == "bob"
    got = bob.messages()
    assert (got["type"], got["peer"], got["message"], got["id"]) == ("private_message", "alice", "hello bob", ack["id"])
    alice.chat("", "hello room")
    room = bob.messages()
    assert (room["type"], room["message"]) == ("broadcast_message", "hello room")


def test_unknown_peer_is_a_server_error(make_server, api_client):
    server = make_server(plugins=ALL_PLUGINS)
    alice = api_client(server, "alice")
    with pytest.raises(ServerError) as error:
        alice.chat("nobody", "hi")
    assert error.value.code == "unknown_peer"


def test_history_pages_back_to_the_first_message(make_server, api_client):
    server = make_server(plugins=ALL_PLUGINS)
    alice = api_client(server, "alice")
    api_client(server, "bob")
    sent = [alice.chat("bob", f"message {i}")["id"] for i in range(25)]
    page = alice.history("bob", limit=10)
    assert [m["id"] for m in page.messages] == sent[-10:] and page.has_more
    seen = [m["id"] for m in page.messages]
    while page.has_more:
        page = alice.history("bob", before=page.messages[0]["id"], limit=10)
        seen = [m["id"] for m in page.messages] + seen
    assert seen == sent


def test_offline_message_arrives_after_login(make_server, api_client):
    server = make_server(plugins=ALL_PLUGINS)
    bob = api_client(server, "bob")
    bob.close()
    alice = api_client(server, "alice")
    alice.chat("bob", "while you were away")
    bob = api_client(server, "bob")
    got = bob.messages()
    assert got["message"] == "while you were away" and got.get("offline") is True


def test_upload_and_download_verified(make_server, api_client, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    alice, bob = api_client(server, "alice"), api_client(server, "bob")
    source = tmp_path / "photo.bin"
    source.write_bytes(os.urandom(100_000))
    seen: list[Progress] = []
    file_id = alice.upload("bob", source, progress=seen.append)
    assert seen[-1].done == 100_000 and seen[-1].fraction == 1.0
    offer = bob.offers()
    assert offer["file_id"] == file_id and offer["filename"] == "photo.bin"
    target = tmp_path / "saved.bin"
    path = bob.download(offer, target)
    assert path == target and hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    delivered = alice.expect("file_delivered")
    assert delivered["file_id"] == file_id


def test_decline_tells_the_sender(make_server, api_client, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    alice, bob = api_client(server, "alice"), api_client(server, "bob")
    source = tmp_path / "a.txt"
    source.write_text("no thanks")
    file_id = alice.upload("bob", source)
    bob.decline(bob.offers()["file_id"])
    assert alice.expect("file_declined")["file_id"] == file_id


def test_connection_refused_is_a_clear_error(pins):
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectError, match="refused"):
        ChatClient.connect("127.0.0.1", port, pins=pins, ask=lambda *_: True)


def test_server_shutdown_ends_waits_with_closed(make_server, api_client):
    server = make_server(plugins=ALL_PLUGINS)
    alice = api_client(server, "alice")
    server.stop()
    with pytest.raises(Closed):
        alice.expect("never")


def test_rate_limited_chat_waits_the_servers_retry_after(make_server, api_client):
    server = make_server(plugins=ALL_PLUGINS, env={"CHATCORE_RATE_LIMIT": "5", "CHATCORE_RATE_BURST": "3"})
    alice = api_client(server, "alice")  # hello, register, login took the burst; one token per 0.2 s
    acks = [alice.chat("", f"quick {i}")["id"] for i in range(4)]
    assert acks == sorted(acks) and len(set(acks)) == 4
    assert 1 <= alice.rate_limited <= 4  # refused, then retried once after retry_after: never refused twice
