"""The core server over real sockets: lifecycle, dispatch errors, hostile frames, slow consumers."""

from __future__ import annotations

import gc
import socket
import struct
import threading
import weakref

import pytest

from chatcore import protocol
from chatcore.reactor import COMPACT_AFTER
from chatcore.server import ChatServer
from chatcore.testing import TestClient, server_config


def _server_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("chatcore-"))


def test_start_three_clients_stop_and_every_thread_ends(probe_server, connect, probe):
    clients = [connect(probe_server) for _ in range(3)]
    for client in clients:
        assert client.request(command="ping")["type"] == "pong"
    assert len(probe_server.connections()) == 3
    assert _server_threads()  # reactor, workers, flusher, accept loop
    probe_server.stop()
    for client in clients:
        assert {"type": "shutdown", "reason": "The server is shutting down."} in client.expect_closed()
    assert probe_server.connections() == []
    assert _server_threads() == []
    assert probe.shutdown_calls == 1
    with pytest.raises(OSError):
        socket.create_connection(probe_server.address, timeout=1)


def test_hello_describes_the_server(probe_server, connect):
    client = connect(probe_server)
    hello = client.request(command="hello", client="tests", protocol=2)
    assert hello["server"] == "chatcore" and hello["protocol"] == 2
    assert hello["plugins"] == ["probe"]
    assert {"hello", "ping", "whoami", "boom"} <= set(hello["commands"])
    assert hello["max_frame"] == 65535 and hello["tls"] is False


def test_type_is_accepted_in_place_of_command(probe_server, connect):
    assert connect(probe_server).request({"type": "ping"}, reply="pong") == {"type": "pong"}


def test_ping_echoes_a_nonce(probe_server, connect):
    assert connect(probe_server).request(command="ping", nonce=7) == {"type": "pong", "nonce": 7}


@pytest.mark.parametrize("message, command, code, reason, extra", [
    ({"command": "nope"}, "nope", "unknown_command", "unknown command 'nope'", {}),
    ({"command": "whoami"}, "whoami", "not_authenticated", "log in before using 'whoami'", {}),
    ({"command": "boom"}, "boom", "internal_error", "the server failed to handle 'boom'", {}),
    ({"command": "refuse"}, "refuse", "refused", "no, thank you", {"retry_after": 3}),
    ({"command": "typed", "s": "x"}, "typed", "bad_request", "missing field 'n'", {}),
    ({"command": "typed", "n": "1", "s": "x"}, "typed", "bad_request", "field 'n' must be an integer", {}),
    ({"command": "typed", "n": True, "s": "x"}, "typed", "bad_request", "field 'n' must be an integer", {}),
    ({"command": "typed", "n": 1, "s": None}, "typed", "bad_request", "field 's' must be a string", {}),
    ({"command": "typed", "n": 1, "s": "x", "f": "1.5"}, "typed", "bad_request", "field 'f' must be a number", {}),
    ({"command": "typed", "n": 1, "s": "x", "flag": 1}, "typed", "bad_request", "field 'flag' must be true or false", {}),
    ({"command": "typed", "n": 2**63, "s": "x"}, "typed", "bad_request", "field 'n' is out of range", {}),
    ({"command": "typed", "n": 1, "s": "x", "f": -2**70}, "typed", "bad_request", "field 'f' is out of range", {}),
    ({"command": 5}, None, "bad_request", "missing field 'command' (a string)", {}),
    ({"no": "command"}, None, "bad_request", "missing field 'command' (a string)", {}),
    ({"command": "hello", "protocol": 0}, "hello", "bad_request", "field 'protocol' must be 1 or more", {}),
])
def test_bad_requests_get_error_replies_and_the_session_survives(probe_server, connect, message, command, code, reason,
                                                                 extra):
    client = connect(probe_server)
    client.send(message)
    assert client.expect("error") == {"type": "error", "command": command, "code": code, "reason": reason, **extra}
    assert client.request(command="ping")["type"] == "pong"


def test_error_replies_echo_the_request_client_id(probe_server, connect):
    client = connect(probe_server)
    assert client.request(command="nope", client_id="c-1")["client_id"] == "c-1"
    assert client.request(command="typed", n="x", s="y", client_id="c-2")["client_id"] == "c-2"
    refused = client.request(command="refuse", client_id="c-3")
    assert (refused["code"], refused["client_id"], refused["retry_after"]) == ("refused", "c-3", 3)
    assert "client_id" not in client.request(command="boom", client_id=7)  # only strings are echoed


def test_well_typed_request_passes_field_checks(probe_server, connect):
    reply = connect(probe_server).request(command="typed", n=1, s="x", f=2, flag=False)
    assert reply == {"type": "typed", "ok": True}


@pytest.mark.parametrize("payload", [b"[1, 2, 3]", b'"text"', b"42", b"null", b"{broken", b"\xc3\x28"])
def test_payloads_that_are_not_objects_get_bad_request(probe_server, connect, payload):
    client = connect(probe_server)
    client.send_raw(protocol.encode_payload(payload))
    error = client.expect("error")
    assert error["code"] == "bad_request" and error["command"] is None
    assert client.request(command="ping")["type"] == "pong"


def test_login_state_reaches_handlers(probe_server, connect):
    client = connect(probe_server)
    assert client.request(command="pretend_login", name="ann") == {"type": "pretend_login", "first": True}
    assert client.request(command="whoami") == {"type": "whoami", "user": "ann"}
    second = connect(probe_server)
    assert second.request(command="pretend_login", name="ANN")["first"] is False
    again = client.request(command="pretend_login", name="bob")
    assert again["code"] == "already_authenticated"
    assert probe_server.sessions.online_users() == ["ann"]


def test_a_frame_written_one_byte_at_a_time_arrives(probe_server, connect):
    client = connect(probe_server)
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in protocol.encode({"command": "ping", "nonce": "slow"}):
        client.send_raw(bytes([byte]))
    assert client.expect("pong") == {"type": "pong", "nonce": "slow"}


@pytest.mark.parametrize("garbage, why", [
    (b"\x00\x31" + b"A" * 49, "invalid frame length 49"),
    (b"\x00\x00", "invalid frame length 0"),
    (struct.pack(">H", 52) + bytes(48) + b"%%%%", "invalid base64"),
])
def test_broken_frames_close_that_connection_only(probe_server, connect, probe, garbage, why):
    bystander = connect(probe_server)
    assert bystander.request(command="ping")["type"] == "pong"
    client = connect(probe_server)
    client.send_raw(garbage)
    arrived = client.expect_closed()
    assert arrived and arrived[0]["code"] == "protocol_error" and why in arrived[0]["reason"]
    assert bystander.request(command="ping")["type"] == "pong"


def test_eof_in_the_middle_of_a_frame_ends_the_session_cleanly(probe_server, connect, probe):
    client = connect(probe_server)
    client.send_raw(protocol.encode({"command": "ping"})[:20])
    opened = probe.opened.get(timeout=5)
    client.sock.shutdown(socket.SHUT_WR)
    assert probe.closed.get(timeout=5) is opened
    assert connect(probe_server).request(command="ping")["type"] == "pong"


def test_a_frame_that_stalls_past_the_limit_is_dropped(make_server, connect, probe):
    server = make_server(plugins=[], extra=[("probe", probe)], env={"CHATCORE_FRAME_TIMEOUT": "0.3"})
    client = connect(server)
    client.send_raw(protocol.encode({"command": "ping"})[:30])
    arrived = client.expect_closed()
    assert arrived[0]["code"] == "protocol_error" and "within 0.3 s" in arrived[0]["reason"]


def test_idle_time_between_frames_is_not_limited(make_server, connect, probe):
    server = make_server(plugins=[], extra=[("probe", probe)], env={"CHATCORE_FRAME_TIMEOUT": "0.1"})
    client = connect(server)
    with pytest.raises(AssertionError):
        client.expect("anything", timeout=0.5)  # half a second of silence: no frame, no close
    assert client.request(command="ping")["type"] == "pong"


def stalled_and_sender(server, connect, probe):
    """A client with a tiny receive buffer that will never read again (its server-side
    session), and a second client to send from."""
    stalled = connect(server)
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.request(command="ping")  # the server opens a session at the client's first byte
    return probe.opened.get(timeout=5), connect(server)


def test_a_client_that_never_reads_does_not_block_others(make_server, connect, probe):
    server = make_server(plugins=[], extra=[("probe", probe)],
                         env={"CHATCORE_SEND_BUFFER": "64M", "CHATCORE_SEND_TIMEOUT": "60"})
    stalled_session, sender = stalled_and_sender(server, connect, probe)
    # 16 MiB towards a client that reads nothing: far more than the kernel buffers hold
    assert sender.request(command="blast", count=400, size=40000)["sessions"] == 1
    assert sender.request(command="ping")["type"] == "pong"
    assert not stalled_session.closed and stalled_session.pending > 0


def test_a_client_whose_backlog_overflows_is_disconnected(make_server, connect, probe):
    server = make_server(plugins=[], extra=[("probe", probe)], env={"CHATCORE_SEND_BUFFER": "256K"})
    stalled_session, sender = stalled_and_sender(server, connect, probe)
    sender.request(command="blast", count=400, size=40000)
    assert probe.closed.get(timeout=5) is stalled_session
    assert "send buffer full" in stalled_session.close_reason
    assert sender.request(command="ping")["type"] == "pong"


def test_a_client_that_stops_reading_is_disconnected_after_the_send_timeout(make_server, connect, probe):
    server = make_server(plugins=[], extra=[("probe", probe)],
                         env={"CHATCORE_SEND_BUFFER": "64M", "CHATCORE_SEND_TIMEOUT": "0.5"})
    stalled_session, sender = stalled_and_sender(server, connect, probe)
    sender.request(command="blast", count=200, size=40000)
    assert probe.closed.get(timeout=10) is stalled_session
    assert "read nothing for 0.5 s" in stalled_session.close_reason


def test_many_malformed_frames_then_normal_service(probe_server, connect):
    for index in range(50):
        client = TestClient(probe_server.address)
        client.send_raw(struct.pack(">H", 48 + 4 * (index + 1)) + bytes(48) + b"*" * (4 * (index + 1)))
        client.expect_closed()
        client.close()
    assert connect(probe_server).request(command="ping")["type"] == "pong"
    assert probe_server.wait_connections(1, timeout=5)  # each refused one ends just after its client saw it close
    assert len(probe_server.sessions) == 1


def test_a_handler_knows_when_the_client_has_already_sent_more(probe_server, connect):
    client = connect(probe_server)
    frame = protocol.encode({"command": "pipelined"})
    client.send_raw(frame * 3)  # one write: the server reads all three at once
    assert [client.expect("pipelined")["more"] for _ in range(3)] == [True, True, False]
    assert client.request(command="pipelined")["more"] is False


def test_a_start_that_cannot_bind_closes_what_it_configured(make_server, probe, tmp_path):
    running = make_server(plugins=[], extra=[("probe", probe)])
    taken = type(probe)()  # a second, unconfigured probe
    config = server_config(tmp_path / "other", ["probe"]).with_overrides(SERVER_PORT=running.address[1])
    server = ChatServer(config, extra_plugins=[("probe", taken)])
    with pytest.raises(OSError):
        server.start()
    assert taken.shutdown_calls == 1  # its storage was closed
    with ChatServer(config.with_overrides(SERVER_PORT=0), extra_plugins=[("probe", taken)]) as again:
        assert again.address[1] != 0  # the data directory was unlocked for the next server
    assert taken.shutdown_calls == 2


def test_ended_connections_are_not_kept_alive_by_their_old_deadlines(make_server, connect):
    """The reactor's timer heap holds each connection until its deadline (the 60 s login
    timeout here); it drops those of ended connections once they are most of it."""
    server = make_server(plugins=[])
    ended = []
    for _ in range(3 * COMPACT_AFTER):
        client = connect(server)
        assert client.request(command="ping")["type"] == "pong"
        (conn,) = server.connections()
        ended.append(weakref.ref(conn))
        del conn
        client.close()
        assert server.wait_connections(0, 10)
    gc.collect()
    assert sum(ref() is not None for ref in ended) <= COMPACT_AFTER
    assert connect(server).request(command="ping")["type"] == "pong"
