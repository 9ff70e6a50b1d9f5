"""Retention by age and by count per conversation, on an injected clock (no sleeping)."""

from __future__ import annotations

import pytest

from chatcore_chat.plugin import ChatPlugin

pytestmark = pytest.mark.usefixtures("backend")  # runs on SQLite and on PostgreSQL

DAY = 86400.0


def server_with_clock(chat_server, clock, **env):
    """auth + a chat plugin on ``clock`` (under another name: the installed "chat" is blocked);
    the background sweep is a day away, tests sweep by hand."""
    plugin = ChatPlugin(clock=clock)
    server = chat_server(plugins=["auth"], extra=[("chat-on-a-fake-clock", plugin)],
                         env={"CHATCORE_CHAT_RETENTION_INTERVAL": "86400", **env})
    return server, plugin.service


def test_messages_older_than_the_maximum_age_are_deleted(chat_server, clock, login_as, chat, history):
    server, service = server_with_clock(chat_server, clock, CHATCORE_CHAT_RETENTION_DAYS="1.5")
    alice = login_as(server, "alice")
    login_as(server, "bob")
    old = [chat(alice, "bob", "old one"), chat(alice, "", "old room")]
    clock.advance(DAY)
    middle = chat(alice, "bob", "one day old")
    clock.advance(DAY)
    recent = chat(alice, "", "fresh")
    assert service.retention.sweep() == 2
    assert [d[2] for d in history(alice, "bob")["data"]] == ["one day old"]
    assert [d[2] for d in history(alice, "")["data"]] == ["fresh"]
    assert service.retention.sweep() == 0
    assert max(a["id"] for a in old) < middle["id"] < recent["id"]
    assert chat(alice, "", "after the sweep")["id"] > recent["id"]  # ids are never reused


def test_at_most_max_count_per_conversation(chat_server, clock, login_as, chat, history):
    server, service = server_with_clock(chat_server, clock, CHATCORE_CHAT_RETENTION_COUNT="5")
    alice = login_as(server, "alice", v2=True)
    login_as(server, "bob")
    login_as(server, "carol")
    for n in range(1205):  # more than two delete chunks
        chat(alice, "bob", f"ab {n}")
    for n in range(3):
        chat(alice, "carol", f"ac {n}")
    assert service.retention.sweep() == 1200
    kept = history(alice, "bob")["messages"]
    assert [m["message"] for m in kept] == [f"ab {n}" for n in range(1200, 1205)]
    assert len(history(alice, "carol")["messages"]) == 3


def test_default_keeps_everything_and_starts_no_sweeper(chat_server, clock, login_as, chat, history):
    server, service = server_with_clock(chat_server, clock)
    alice = login_as(server, "alice")
    chat(alice, "", "kept")
    clock.advance(3650 * DAY)
    assert not service.retention.policy.active and service.retention._thread is None
    assert service.retention.sweep() == 0
    assert [d[2] for d in history(alice, "")["data"]] == ["kept"]
