"""Changes replayed after a reconnect over the real wire: a device that was away names the
newest change id it saw (``changes_since``) and gets the edits, deletions and reaction changes
made meanwhile to what it may read, each message once, in order, before ``caught_up``; a third
user never sees another pair's; a pruned log or the cap says the replay is incomplete; the log
goes with a removed account; old clients and logins without ``changes_since`` see nothing new;
a history page names the newest change id it shows (a client's first cursor)."""

from __future__ import annotations

import sqlite3

import pytest

from chatcore.testing import PASSWORD
from chatcore_chat import changelog, store
from chatcore_chat.plugin import ChatPlugin

pytestmark = pytest.mark.usefixtures("backend")  # runs on SQLite and on PostgreSQL

CHANGES = ("message_edited", "message_deleted", "message_reactions")


def ask(client, command, **fields):
    client.send({"command": command, **fields})
    return client.expect((f"{command}_result", "error"))


def reconnect(connect, server, name: str, since: int, changes_since: int | None):
    """A new v2 connection of ``name`` logging in with ``since`` (and ``changes_since``): it and
    its ``caught_up``, with what came before it in ``backlog``."""
    client = connect(server)
    client.request(command="hello", protocol=2)
    login = {"command": "login", "username": name, "password": PASSWORD, "since": since}
    if changes_since is not None:
        login["changes_since"] = changes_since
    assert client.request(login)["response"] == "ok"
    return client, client.expect("caught_up")


def changes(arrived: list) -> list[dict]:
    return [m for m in arrived if m.get("type") in CHANGES]


def test_edits_deletions_and_reactions_made_while_away_are_replayed_once_in_order(server, login_as, connect, chat):
    alice, bob = login_as(server, "alice", v2=True), login_as(server, "bob", v2=True)
    first, second, third = (chat(alice, "bob", f"note {n}")["id"] for n in range(3))
    room = chat(alice, "", "hello room")["id"]
    for id_ in (first, second, third, room):
        bob.expect(("private_message", "broadcast_message"), id=id_)
    seen = ask(bob, "message_react", peer="alice", id=first, emoji="👍")["change_id"]  # bob saw this change
    bob.close()
    edit = ask(alice, "message_edit", peer="bob", id=second, message="note two, fixed")
    assert ask(alice, "message_edit", peer="bob", id=second, message="note 2, fixed")["change_id"] == edit["change_id"] + 1
    gone = ask(alice, "message_delete", peer="bob", id=third)
    thumbs = ask(alice, "message_react", peer="", id=room, emoji="🎉")
    ask(alice, "message_react", peer="bob", id=first, emoji="👍")  # a second 👍 on the first note
    late = chat(alice, "bob", "new while away")["id"]
    again, done = reconnect(connect, server, "bob", late - 1, seen)
    replayed = changes(again.backlog)
    assert [(m["type"], m["id"]) for m in replayed] == [
        ("message_edited", second), ("message_deleted", third), ("message_reactions", room),
        ("message_reactions", first)]  # each message once (its latest state), by its newest change
    assert replayed[0]["message"] == "note 2, fixed" and replayed[0]["change_id"] == edit["change_id"] + 1
    assert replayed[1] == {"type": "message_deleted", "id": third, "sender": "alice", "to": "bob", "by": "alice",
                           "change_id": gone["change_id"], "replayed": True}
    assert replayed[2]["reactions"] == thumbs["reactions"]
    assert replayed[3]["reactions"] == [{"emoji": "👍", "count": 2, "users": ["bob", "alice"]}]
    kinds = [m.get("type") for m in again.backlog]
    assert kinds.index("private_message") < kinds.index("message_edited")  # the missed message came first
    assert done["changes_complete"] is True and done["last_change_id"] == replayed[-1]["change_id"]
    assert (done["complete"], done["delivered"], done["last_id"]) == (True, 1, late)
    _, nothing = reconnect(connect, server, "bob", late, done["last_change_id"])
    assert (nothing["changes_complete"], nothing["last_change_id"]) == (True, done["last_change_id"])
    plain, caught = reconnect(connect, server, "bob", late, None)  # a client that does not name changes_since
    assert not changes(plain.backlog) and "changes_complete" not in caught and "last_change_id" not in caught
    page = plain.request(command="get_history", peer="alice")  # a page shows every change up to its cursor
    assert page["last_change_id"] == done["last_change_id"] and page["messages"][1]["message"] == "note 2, fixed"


def test_another_pairs_changes_are_never_replayed_to_a_third_user(server, login_as, connect, chat):
    alice, bob = login_as(server, "alice", v2=True), login_as(server, "bob", v2=True)
    carol = login_as(server, "carol", v2=True)
    private = chat(alice, "bob", "just us")["id"]
    public = chat(alice, "", "everyone")["id"]
    carol.expect("broadcast_message", id=public)
    carol.close()
    ask(alice, "message_edit", peer="bob", id=private, message="just us two")
    ask(bob, "message_react", peer="alice", id=private, emoji="❤")
    ask(alice, "message_delete", peer="bob", id=private)
    shared = ask(alice, "message_edit", peer="", id=public, message="everyone!")
    again, done = reconnect(connect, server, "carol", public, 0)
    assert [(m["type"], m["id"]) for m in changes(again.backlog)] == [("message_edited", public)]
    assert done["changes_complete"] is True and done["last_change_id"] == shared["change_id"]


def test_a_pruned_log_or_the_cap_makes_the_replay_incomplete(chat_server, login_as, connect, chat):
    server = chat_server(env={"CHATCORE_CHAT_CHANGES_KEEP": "3", "CHATCORE_CHAT_CHANGES_MAX": "2"})
    alice, bob = login_as(server, "alice", v2=True), login_as(server, "bob", v2=True)
    sent = [chat(alice, "bob", f"m{n}")["id"] for n in range(5)]
    bob.sync()
    bob.close()
    ids = [ask(alice, "message_react", peer="bob", id=id_, emoji="👀")["change_id"] for id_ in sent]
    _, pruned = reconnect(connect, server, "bob", sent[-1], ids[0])  # ids up to ids[1] were pruned
    assert (pruned["changes_complete"], pruned["last_change_id"]) == (False, ids[-1])
    capped, done = reconnect(connect, server, "bob", sent[-1], ids[1])  # three changed messages, a cap of two
    assert [m["id"] for m in changes(capped.backlog)] == sent[2:4]
    assert (done["changes_complete"], done["last_change_id"]) == (False, ids[-1])
    _, beyond = reconnect(connect, server, "bob", sent[-1], ids[-1] + 10)  # a cursor from another server
    assert beyond["changes_complete"] is False
    _, huge = reconnect(connect, server, "bob", sent[-1], 2**62)
    _, negative = reconnect(connect, server, "bob", sent[-1], -5)  # counts as 0: pruned since
    assert (huge["changes_complete"], negative["changes_complete"]) == (False, False)
    odd = connect(server)
    odd.request(command="hello", protocol=2)
    refused = odd.request(command="login", username="bob", password=PASSWORD, since=1, changes_since="x")
    assert refused["type"] == "error" and refused["code"] == "bad_request"
    fine, complete = reconnect(connect, server, "bob", sent[-1], ids[2])
    assert [m["id"] for m in changes(fine.backlog)] == sent[3:]
    assert (complete["changes_complete"], complete["last_change_id"]) == (True, ids[-1])


def test_the_log_goes_with_a_removed_account_and_old_databases_gain_it(server, login_as, chat, tmp_path):
    alice, bob = login_as(server, "alice", v2=True), login_as(server, "bob", v2=True)
    carol = login_as(server, "carol", v2=True)
    private = chat(alice, "bob", "ours")["id"]
    public = chat(carol, "", "room")["id"]
    ask(alice, "message_edit", peer="bob", id=private, message="ours!")
    ask(bob, "message_react", peer="", id=public, emoji="👍")
    service = server.pm.get_plugin("chat").service
    service.forget_user("bob")
    with service.readers.connection() as conn:
        rows = conn.execute("SELECT message_id, kind, actor FROM message_changes ORDER BY id").fetchall()
    assert rows == [(public, "reactions", "bob"), (public, "reactions", "")]  # bob's conversation's went; his 👍 went
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(store.SCHEMA + store.COUNTERS + "PRAGMA user_version=2;")
    old.close()
    conn = store.connect(path)
    store.create_schema(conn)  # schema 2 → 4
    conn.execute("PRAGMA user_version=3")
    conn.execute("DROP TABLE message_changes")
    store.create_schema(conn)  # schema 3 → 4: the log is added
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == 4
    assert changelog.newest(conn) == 0 and changelog.pruned_up_to(conn) == 0
    conn.close()


def test_a_replay_in_pages_keeps_every_kind_of_change_of_a_message(chat_server, login_as, connect, chat):
    server = chat_server(env={"CHATCORE_CHAT_OFFLINE_PAGE_MESSAGES": "1"})  # one changed message per page
    alice, bob = login_as(server, "alice", v2=True), login_as(server, "bob", v2=True)
    first, second = (chat(alice, "bob", text)["id"] for text in ("one", "two"))
    bob.sync()
    bob.close()
    ask(alice, "message_edit", peer="bob", id=first, message="one, edited")  # change 1: first
    ask(alice, "message_react", peer="bob", id=second, emoji="🙂")  # change 2: second
    ask(alice, "message_react", peer="bob", id=first, emoji="🙂")  # change 3: first again
    again, done = reconnect(connect, server, "bob", second, 0)
    assert [(m["type"], m["id"], m["change_id"]) for m in changes(again.backlog)] == [
        ("message_reactions", second, 2), ("message_edited", first, 3), ("message_reactions", first, 3)]
    assert (done["changes_complete"], done["last_change_id"]) == (True, 3)


def test_changes_older_than_the_age_limit_are_pruned_on_the_injected_clock(chat_server, clock, login_as, connect,
                                                                           chat):
    server = chat_server(env={"CHATCORE_CHAT_CHANGES_KEEP": "0", "CHATCORE_CHAT_CHANGES_KEEP_DAYS": "1"},
                         extra=[("chat", ChatPlugin(clock=clock))])
    alice, bob = login_as(server, "alice", v2=True), login_as(server, "bob", v2=True)
    sent = chat(alice, "bob", "hello")["id"]
    bob.sync()
    bob.close()
    old = ask(alice, "message_react", peer="bob", id=sent, emoji="🙂")["change_id"]
    clock.advance(2 * 86400)  # two days on: the next change prunes the first
    new = ask(alice, "message_edit", peer="bob", id=sent, message="hello again")["change_id"]
    _, stale = reconnect(connect, server, "bob", sent, old - 1)
    assert (stale["changes_complete"], stale["last_change_id"]) == (False, new)
    again, fresh = reconnect(connect, server, "bob", sent, old)
    assert [m["type"] for m in changes(again.backlog)] == ["message_edited"] and fresh["changes_complete"] is True
