"""A full disk: ``storage_full`` answers, one warning rather than a traceback per message, and
every acknowledged message kept. On a real full filesystem (a small tmpfs mounted for the test)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import pytest

from chatcore.testing import remount

TEXT = "x" * 3990


@pytest.fixture
def small_disk(tmpfs: Callable[..., Path]) -> Path:
    """A 6 MiB tmpfs as the server's data directory; ``remount(small_disk, "64m")`` frees space.
    Request it before the server fixtures, so the server stops before it is unmounted."""
    return tmpfs("6m", name="data")


def room_history(client, history) -> list[int]:
    """Every id in the room's history, oldest first, page by page."""
    ids: list[int] = []
    before = None
    while True:
        reply = history(client, "", **({"before": before} if before else {}))
        ids[:0] = [m["id"] for m in reply["messages"]]
        if not reply["has_more"]:
            return ids
        before = reply["next_before"]


def test_a_full_disk_answers_storage_full_and_keeps_what_was_acknowledged(small_disk, chat_server, login_as, chat,
                                                                           history, register, caplog):
    caplog.set_level(logging.INFO)
    server = chat_server(data_dir=small_disk)
    alice = login_as(server, "alice", v2=True)
    login_as(server, "bob")
    register(server, "carol")
    waiting = [chat(alice, "carol", f"for carol {n}")["id"] for n in range(5)]
    acked, refused = [], []
    for n in range(5000):  # 6 MiB hold well under a thousand of these
        reply = chat(alice, "", f"{n} {TEXT}", client_id=n)
        if reply["type"] == "chat_ack":
            acked.append(reply["id"])
        else:
            assert (reply["code"], reply["client_id"]) == ("storage_full", n), reply
            assert "not stored" in reply["reason"]
            refused.append(n)
            if len(refused) == 50:
                break
    assert len(refused) == 50 and len(acked) >= 20, (len(acked), len(refused))
    assert alice.request(command="ping")["type"] == "pong"  # the connection goes on

    chat_logs = [r for r in caplog.records if r.name.startswith("chatcore_chat")]
    assert [r for r in caplog.records if r.exc_info] == []  # no traceback, for any message
    full = [r for r in chat_logs if r.levelno == logging.WARNING and "storage is full" in r.getMessage()]
    assert len(full) == 1, [r.getMessage() for r in full]  # one warning a minute, not one per message

    # carol's backlog: delivered if marking it delivered still fits, else kept for later; never lost
    carol = login_as(server, "carol", register=False, v2=True)
    arrived = carol.sync()
    first = [m["id"] for m in arrived if m.get("type") == "private_message"]
    done = [m for m in arrived if m.get("type") == "offline_done"]
    assert (first, done) in ((waiting, [{"type": "offline_done", "delivered": 5, "remaining": 0}]),
                             ([], [{"type": "offline_done", "delivered": 0, "remaining": 5}])), arrived
    assert [r for r in caplog.records if r.exc_info] == []

    remount(small_disk, "64m")
    assert chat(alice, "", "room again", client_id="after")["type"] == "chat_ack"
    server.stop()
    server = chat_server(data_dir=small_disk)  # restarted on the same files
    alice = login_as(server, "alice", register=False, v2=True)
    kept = room_history(alice, history)
    assert kept[:len(acked)] == acked and len(kept) == len(acked) + 1  # every acknowledged message, nothing else
    carol = login_as(server, "carol", register=False)
    assert first + [m["id"] for m in carol.sync() if m.get("type") == "private_message"] == waiting
