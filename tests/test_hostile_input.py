"""Hostile input against a live server with every built-in plugin: random values for every
registered command, and a flood of malformed frames, after which service and data are intact."""

from __future__ import annotations

import socket
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatcore import protocol
from chatcore.registry import Command
from chatcore.testing import PASSWORD

PLUGINS = ["auth", "chat", "filexfer", "rooms"]
LOOSE_LIMITS = {"CHATCORE_RATE_LIMIT": "100000", "CHATCORE_RATE_BURST": "100000",
                "CHATCORE_AUTH_ADDRESS_FAILURES": "1000000", "CHATCORE_AUTH_USER_FAILURES": "1000000"}
STATE_CHANGING = {"close", "logout"}  # they end the login the fuzzer relies on; tested by their plugins

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=60))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
hostile_text = st.sampled_from(["", " ", "../../etc/passwd", "/abs/path", "a\x00b", "CON", "x" * 5000,
                                "é✓🎉", "\u202eevil", "alice", "bob", "ALICE", "-1", "0"])


def typed_value(expected) -> st.SearchStrategy:
    """A value of the declared type, often an edge case."""
    kinds = expected if isinstance(expected, tuple) else (expected,)
    options = []
    for kind in kinds:
        if kind is str:
            options.append(hostile_text | st.text(max_size=200))
        elif kind is int:
            options.append(st.sampled_from([0, -1, 1, 2**31, 2**63, 2**64 + 1, -2**63 - 1]) | st.integers())
        elif kind is float:
            options.append(st.floats(allow_nan=False, allow_infinity=False))
        elif kind is bool:
            options.append(st.booleans())
        else:
            options.append(json_values)
    return st.one_of(options)


@st.composite
def requests(draw, commands: list[Command]):
    """A request for a registered command with well- or ill-typed declared fields and extras."""
    command = draw(st.sampled_from(commands))
    message = {"command": command.name}
    for name, expected in {**command.fields, **command.optional}.items():
        choice = draw(st.integers(0, 9))
        if choice < 6:
            message[name] = draw(typed_value(expected))
        elif choice < 9:
            message[name] = draw(json_values)
    message.update(draw(st.dictionaries(st.sampled_from(["client_id", "offset", "limit", "before", "data",
                                                         "peer", "file_id", "upload_id", "extra"]),
                                        json_values, max_size=2)))
    return message




def test_random_values_for_every_command_never_cause_internal_errors(make_server, connect):
    server = make_server(plugins=PLUGINS, env=LOOSE_LIMITS)
    commands = [server.commands.get(name) for name in server.commands.names() if name not in STATE_CHANGING]
    anonymous, fuzzer, peer = connect(server), connect(server), connect(server)
    fuzzer.login("fuzzer", PASSWORD, register=True)
    peer.login("bob", PASSWORD, register=True)
    seen: list[dict] = []

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.data())
    def exercise(data):
        message = data.draw(requests(commands))
        for client in (fuzzer, anonymous):
            client.send(message)
            replies = client.sync()
            seen.extend(replies)
            assert not client.eof, f"connection closed by {message!r}"
            assert not [r for r in replies if r.get("code") == "internal_error"], (message, replies)

    exercise()
    assert any(r.get("type") == "error" for r in seen)
    peer.sync()
    assert connect(server).request(command="ping")["type"] == "pong"


def malformed_payloads(count: int) -> list[bytes]:
    """Well-framed requests that are wrong in every other way."""
    shapes = [b"[1,2,3]", b"\"text\"", b"42", b"{bad json", b"\xff\xfe", b"{}", b'{"command": 7}',
              b'{"command": "nope"}', b'{"command": "chat", "peer": 5, "message": []}',
              b'{"command": "get_history", "peer": "bob", "before": "x", "limit": -5}',
              b'{"command": "file_chunk", "upload_id": "zz", "offset": -1, "data": "***"}',
              b'{"command": "login", "username": null, "password": {}}']
    return [protocol.encode_payload(shapes[i % len(shapes)]) for i in range(count)]


def broken_frames(count: int) -> list[bytes]:
    """Frames the reader must refuse: impossible lengths, bad base64, EOF inside."""
    shapes = [b"\x00\x31" + b"A" * 49, b"\x00\x00", struct.pack(">H", 52) + bytes(48) + b"%%%%",
              protocol.encode({"command": "ping"})[:40], b"\x16\x03\x01\x00\x05hello", b"\xff" * 64]
    return [shapes[i % len(shapes)] for i in range(count)]


def test_a_flood_of_malformed_frames_loses_nothing_and_service_continues(make_server, connect):
    server = make_server(plugins=["auth", "chat"], env=LOOSE_LIMITS)
    alice, bob = connect(server), connect(server)
    alice.login("alice", PASSWORD, register=True)
    bob.login("bob", PASSWORD, register=True)
    for client in (alice, bob):
        client.request(command="hello", protocol=2)
    sent = [f"before the flood {n}" for n in range(20)]
    for text in sent:
        alice.send(command="chat", peer="bob", message=text)
        alice.expect("chat_ack")

    flooder = connect(server)
    flooder.send_raw(b"".join(malformed_payloads(3000)))
    replies = flooder.sync()
    assert len(replies) == 3000 and all(r["type"] == "error" for r in replies)
    assert {r["code"] for r in replies} <= {"bad_request", "unknown_command", "not_authenticated"}

    for garbage in broken_frames(300):
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass

    later = connect(server)
    later.request(command="hello", protocol=2)
    later.login("alice", PASSWORD)
    later.send(command="chat", peer="bob", message="after the flood")
    later.expect("chat_ack")
    assert bob.expect("private_message", message="after the flood")["peer"] == "alice"
    history = later.request(command="get_history", peer="bob", limit=100)
    assert [m["message"] for m in history["messages"]] == sent + ["after the flood"]
