"""Offline backlogs far beyond the send buffer: paged, paced by the client, resumed after a drop."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chatcore import protocol
from chatcore.testing import PASSWORD, TestClient

pytestmark = pytest.mark.usefixtures("backend")  # runs on SQLite and on PostgreSQL

# A 10 MB backlog needs more room per recipient than the defaults (5,000 messages, 16 MiB)
BIG = {"CHATCORE_CHAT_PENDING_MAX_MESSAGES": "20000", "CHATCORE_CHAT_PENDING_MAX_BYTES": "64M",
       "CHATCORE_CHAT_SENDER_DAILY_BYTES": "256M"}
TEXT = "x" * 3991  # with its 9-digit number, 4,000 characters


def offline(messages: list) -> list:
    return [m for m in messages if m.get("type") == "private_message" and m.get("offline")]


def outcome(messages: list) -> list:
    return [m for m in messages if m.get("type") == "offline_done"]


SEND_DEADLINE = 60.0  # seconds the one write may take: the server reads it as fast as it stores


def pipeline(client: TestClient, peer: str, texts: list[str]) -> list[dict]:
    """Send every message at once (one write), then collect their replies in order. The write
    gets its own deadline: 10 MB go no faster than the store commits them (over 5 s, the
    client's usual timeout, on a slow machine with PostgreSQL), since a full request queue
    stops the server reading."""
    client.send_raw(b"".join(protocol.encode({"command": "chat", "peer": peer, "message": text, "client_id": n})
                             for n, text in enumerate(texts)), timeout=SEND_DEADLINE)
    replies = [client.expect(("chat_ack", "error")) for _ in texts]
    assert all(r["type"] == "chat_ack" for r in replies), [r for r in replies if r["type"] != "chat_ack"][:3]
    return replies


def fill(server, login_as, register, count: int, text: str = TEXT) -> list[int]:
    """``count`` messages from alice waiting for offline bob; their ids."""
    register(server, "bob")
    alice = login_as(server, "alice")
    return [ack["id"] for ack in pipeline(alice, "bob", [numbered(n, text) for n in range(count)])]


def numbered(n: int, text: str = TEXT) -> str:
    return f"{n:09d}{text}"[:4000]


def frame_bytes(text: str, id_: int) -> int:
    return len(protocol.encode({"type": "private_message", "peer": "alice", "message": text, "id": id_,
                                "ts": "2026-01-01T00:00:00.000Z", "to": "bob", "offline": True}))


def test_a_10_mb_backlog_arrives_in_full_in_order_once(chat_server, login_as, register, settle):
    server = chat_server(env=BIG)
    ids = fill(server, login_as, register, 2600)
    bob = login_as(server, "bob", register=False, v2=True)  # returns once the login (and backlog) finished
    arrived = settle(server, bob)
    got = offline(arrived)
    assert [m["id"] for m in got] == ids
    assert [m["message"][:9] for m in got] == [f"{n:09d}" for n in range(2600)]
    assert sum(frame_bytes(m["message"], m["id"]) for m in got) > 10_000_000  # ten send buffers' worth
    assert outcome(arrived) == [{"type": "offline_done", "delivered": 2600, "remaining": 0}]
    assert arrived.index(outcome(arrived)[0]) > arrived.index(got[-1])  # after the backlog
    assert offline(settle(server, login_as(server, "bob", register=False))) == []  # and never again


def test_sixty_messages_of_control_characters_arrive(chat_server, login_as, register, settle):
    server = chat_server()  # the default limits: 60 x 4,000 characters is 240 kB of text, 1.9 MB of frames
    ids = fill(server, login_as, register, 60, "\x01" * 4000)
    bob = login_as(server, "bob", register=False)
    arrived = settle(server, bob)
    got = offline(arrived)
    assert [m["id"] for m in got] == ids and all(m["message"].endswith("\x01" * 3991) for m in got)
    assert outcome(arrived) == []  # a legacy session: nothing new


class SmallWindow(TestClient):
    """A client whose socket has a small receive buffer, set before connecting, so the kernel
    holds little of what the server sends it."""

    def __init__(self, address: tuple[str, int], rcvbuf: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(5.0)
        sock.connect(address)
        self.sock, self.timeout, self.backlog, self.eof = sock, 5.0, [], False
        self.reader = protocol.FrameReader(sock.recv_into, sock.settimeout)


def kernel_send_buffer_max() -> int:
    return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])


def test_a_client_that_drops_mid_backlog_gets_the_rest_once_at_its_next_login(chat_server, login_as, register,
                                                                              settle):
    server = chat_server(env=BIG)
    ids = fill(server, login_as, register, 2600)
    first = SmallWindow(server.address, 32 << 10)
    assert first.request(command="login", username="bob", password=PASSWORD)["response"] == "ok"
    read = [first.expect("private_message")["id"] for _ in range(100)]
    read += [m["id"] for m in offline(first.backlog)]  # whatever else it had parsed
    rcvbuf = first.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # as the kernel sized it
    first.close()  # with unread data: the server's next send fails, the session closes

    second = login_as(server, "bob", register=False, v2=True)
    arrived = settle(server, second)
    rest = [m["id"] for m in offline(arrived)]
    assert read == ids[:len(read)]
    assert rest and rest == ids[len(ids) - len(rest):]  # the rest, in order, ...
    start = ids.index(rest[0])
    assert start >= len(read)  # ... and nothing the first connection had read comes again
    # What left the server's queue but was never read had been taken by TCP when the connection
    # dropped (a page counts as delivered once it left the queue): at most what the server's
    # kernel send buffer, the client's receive buffer and the client's half-read frame held.
    lost = ids[len(read):start]
    assert len(lost) * frame_bytes(numbered(0), ids[-1]) <= kernel_send_buffer_max() + rcvbuf + (64 << 10), len(lost)
    assert outcome(arrived) == [{"type": "offline_done", "delivered": len(rest), "remaining": 0}]
    assert offline(settle(server, login_as(server, "bob", register=False))) == []  # a third login: nothing
