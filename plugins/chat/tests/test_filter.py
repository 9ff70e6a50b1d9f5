"""The ``chatcore_chat_message_filter`` hook: another plugin changes or refuses messages before delivery."""

from __future__ import annotations

import pytest

from chatcore import CommandError, hookimpl

pytestmark = pytest.mark.usefixtures("backend")  # runs on SQLite and on PostgreSQL


class Moderator:
    """A filter plugin as a third party would write it (registered by the test)."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    @hookimpl
    def chatcore_chat_message_filter(self, session, message):
        self.seen.append(dict(message, user=session.user))
        if "spam" in message["message"]:
            raise CommandError("rejected", "that looks like spam")
        message["message"] = message["message"].replace("darn", "d**n")
        if message["message"] == "erase me":
            message["message"] = ""


class Shouter:
    """A second filter, run after the moderator (trylast), sees its changes."""

    @hookimpl(trylast=True)
    def chatcore_chat_message_filter(self, session, message):
        message["message"] = message["message"].upper() if message["to"] == "" else message["message"]


class Broken:
    @hookimpl
    def chatcore_chat_message_filter(self, session, message):
        raise RuntimeError("filter bug")


def test_filters_transform_and_reject(chat_server, login_as, chat, history, settle):
    moderator = Moderator()
    server = chat_server(extra=[("moderator", moderator), ("shouter", Shouter())])
    alice = login_as(server, "alice")
    bob = login_as(server, "bob")

    ack = chat(alice, "Bob", "oh darn", client_id="x")
    assert bob.expect("private_message", id=ack["id"])["message"] == "oh d**n"
    assert moderator.seen[-1] == {"sender": "alice", "to": "bob", "message": "oh darn", "client_id": "x",
                                  "user": "alice"}
    room = chat(alice, "", "darn loud")
    assert bob.expect("broadcast_message", id=room["id"])["message"] == "D**N LOUD"

    refused = chat(alice, "bob", "buy spam now")
    assert refused == {"type": "error", "command": "chat", "code": "rejected", "reason": "that looks like spam"}
    emptied = chat(alice, "bob", "erase me")
    assert emptied["code"] == "empty_message"  # a filter's result is checked like the original

    assert [m for m in settle(server, bob) if m.get("type") == "private_message"] == []
    assert [d[2] for d in history(bob, "alice")["data"]] == ["oh d**n"]  # the stored text is the filtered one


def test_a_failing_filter_is_an_internal_error_not_a_crash(chat_server, login_as, chat, history):
    server = chat_server(extra=[("broken", Broken())])
    alice = login_as(server, "alice")
    login_as(server, "bob")
    reply = chat(alice, "bob", "hello")
    assert reply["type"] == "error" and reply["code"] == "internal_error"
    assert history(alice, "bob")["data"] == []
    assert alice.request(command="ping")["type"] == "pong"


def test_hook_is_offered_only_with_the_chat_plugin(chat_server):
    server = chat_server()
    assert hasattr(server.hook, "chatcore_chat_message_filter")
