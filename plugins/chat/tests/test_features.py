"""Message features of private conversations and the global room over the real wire: edit,
delete (the text erased from the file), reactions, typing (throttled, on an injected clock)
and search (only what the user may read, newest first, paged, words marked), with every
refusal the issue names; and an older database upgraded with its messages searchable."""

from __future__ import annotations

import sqlite3

import pytest

from chatcore_chat import store
from chatcore_chat.plugin import ChatPlugin

pytestmark = pytest.mark.usefixtures("backend")  # runs on SQLite and on PostgreSQL


def ask(client, command, **fields):
    """A feature command and its reply (``<command>_result``, ``search`` or ``error``)."""
    client.send({"command": command, **fields})
    return client.expect((f"{command}_result", command, "error"))


def code(reply):
    assert reply["type"] == "error", reply
    return reply["code"]


@pytest.fixture
def trio(server, login_as):
    """alice and bob (v2, each with a second device for alice), carol (v2), bob's legacy session."""
    alice, bob, carol = (login_as(server, name, v2=True) for name in ("alice", "bob", "carol"))
    return alice, login_as(server, "alice", register=False, v2=True), bob, carol


def test_an_edit_reaches_the_conversation_and_history_but_only_the_sender_may_edit(server, trio, login_as, chat,
                                                                                  history, settle):
    alice, alice_phone, bob, carol = trio
    bob_legacy = login_as(server, "bob", register=False)
    sent = chat(alice, "bob", "see you at 10")
    bob.expect("private_message", id=sent["id"])
    bob_legacy.expect("private_message", id=sent["id"])
    reply = ask(alice, "message_edit", peer="bob", id=sent["id"], message="see you at 11")
    assert reply["type"] == "message_edit_result" and reply["id"] == sent["id"]
    event = {"type": "message_edited", "id": sent["id"], "sender": "alice", "to": "bob",
             "message": "see you at 11", "edited": reply["edited"], "change_id": reply["change_id"]}
    assert bob.expect("message_edited") == event
    assert alice_phone.expect("message_edited") == event  # the sender's other device too
    after = settle(server, bob_legacy)
    assert not [m for m in after if m.get("type") in ("message_edited", "private_message")]  # old clients: nothing new
    assert "message_edited" not in [m.get("type") for m in settle(server, carol)]
    item = history(bob, "alice")["messages"][-1]
    assert item["message"] == "see you at 11" and item["edited"] == reply["edited"]
    assert history(bob_legacy, "alice")["data"][-1][2] == "see you at 11"
    # who may not: the recipient, a third user naming either side, a bad id, an empty text
    assert code(ask(bob, "message_edit", peer="alice", id=sent["id"], message="at 9!")) == "forbidden"
    assert code(ask(carol, "message_edit", peer="alice", id=sent["id"], message="x")) == "unknown_message"
    assert code(ask(carol, "message_edit", peer="bob", id=sent["id"], message="x")) == "unknown_message"
    assert code(ask(alice, "message_edit", peer="bob", id=sent["id"] + 99, message="x")) == "unknown_message"
    assert code(ask(alice, "message_edit", peer="bob", id=sent["id"], message="  ")) == "empty_message"
    assert code(ask(alice, "message_edit", peer="bob", id=sent["id"], message="x" * 4001)) == "message_too_long"
    assert code(ask(alice, "message_edit", peer="nobody", id=sent["id"], message="x")) == "unknown_peer"
    assert code(ask(alice, "message_edit", peer="bob", id=0, message="x")) == "bad_request"


def test_the_edit_window_closes_on_the_injected_clock(chat_server, clock, login_as, chat):
    server = chat_server(plugins=["auth"], extra=[("chat-on-a-fake-clock", ChatPlugin(clock=clock))],
                         env={"CHATCORE_CHAT_EDIT_WINDOW": "60"})
    alice = login_as(server, "alice", v2=True)
    login_as(server, "bob", v2=True)
    sent = chat(alice, "", "typo in the room")
    clock.advance(59)
    assert ask(alice, "message_edit", peer="", id=sent["id"], message="fixed")["type"] == "message_edit_result"
    clock.advance(2)
    assert code(ask(alice, "message_edit", peer="", id=sent["id"], message="again")) == "edit_window"


@pytest.mark.sqlite_only  # the SQLite file and its index
def test_a_deletion_leaves_a_tombstone_and_erases_the_text_from_the_file(chat_server, login_as, chat, history,
                                                                        settle):
    server = chat_server(env={"CHATCORE_CHAT_SCRUB_INTERVAL": "0"})
    alice, bob, carol = (login_as(server, name, v2=True) for name in ("alice", "bob", "carol"))
    alice_phone = login_as(server, "alice", register=False, v2=True)
    secret = "the vault code is swordfish"
    sent = chat(alice, "bob", secret)
    kept = chat(alice, "bob", "and lunch at noon")
    assert code(ask(bob, "message_delete", peer="alice", id=sent["id"])) == "forbidden"  # not bob's message
    assert code(ask(carol, "message_delete", peer="alice", id=sent["id"])) == "unknown_message"
    assert ask(alice, "message_delete", peer="bob", id=sent["id"]) == {"type": "message_delete_result", "id": sent["id"],
                                                                   "change_id": 1}
    event = bob.expect("message_deleted")
    assert event == {"type": "message_deleted", "id": sent["id"], "sender": "alice", "to": "bob", "by": "alice",
                     "change_id": 1}
    assert alice_phone.expect("message_deleted")["id"] == sent["id"]
    items = history(bob, "alice")["messages"]
    assert items[-2] == {"id": sent["id"], "sender": "alice", "to": "bob", "ts": sent["ts"], "message": "",
                         "deleted": True}
    assert items[-1]["message"] == "and lunch at noon"
    legacy = login_as(server, "bob", register=False)
    assert [row[2] for row in history(legacy, "alice")["data"]] == ["and lunch at noon"]  # no tombstone for old clients
    assert code(ask(alice, "message_edit", peer="bob", id=sent["id"], message="x")) == "unknown_message"
    assert code(ask(alice, "message_delete", peer="bob", id=sent["id"])) == "unknown_message"
    assert ask(bob, "search", query="swordfish")["results"] == []
    assert server.pm.get_plugin("chat").service.scrubber.wait_scrubbed(1, 10)  # its words merged out of the index
    server.stop()  # every connection closed and the WAL checkpointed: only the database file is left
    raw = b"".join(path.read_bytes() for path in (server.config.data_dir / "chat").iterdir() if path.is_file())
    assert b"swordfish" not in raw and b"lunch at noon" in raw
    assert kept["id"] > sent["id"]


def test_an_administrator_deletes_in_the_global_room_and_a_user_may_not(server, trio, chat):
    alice, alice_phone, bob, carol = trio
    sent = chat(bob, "", "spam spam spam")
    assert code(ask(carol, "message_delete", peer="", id=sent["id"])) == "forbidden"
    for session in server.sessions.of_user("carol"):
        session.admin = True  # what ``chatcore user admin carol`` does to live sessions
    assert ask(carol, "message_delete", peer="", id=sent["id"])["type"] == "message_delete_result"
    for client in (alice, alice_phone, bob):
        assert client.expect("message_deleted") == {"type": "message_deleted", "id": sent["id"], "sender": "bob",
                                                    "to": "", "by": "carol", "change_id": 1}


def test_reactions_are_counted_with_names_and_history_carries_them(chat_server, login_as, chat, history):
    server = chat_server(env={"CHATCORE_CHAT_REACTIONS_PER_MESSAGE": "2", "CHATCORE_CHAT_REACTION_NAMES": "1"})
    alice, bob, carol = (login_as(server, name, v2=True) for name in ("alice", "bob", "carol"))
    sent = chat(alice, "", "ship it?")
    first = ask(bob, "message_react", peer="", id=sent["id"], emoji="👍")
    assert first["reactions"] == [{"emoji": "👍", "count": 1, "users": ["bob"]}]
    assert alice.expect("message_reactions") == {"type": "message_reactions", "id": sent["id"], "sender": "alice",
                                                 "to": "", "reactions": first["reactions"], "change_id": 1}
    both = ask(carol, "message_react", peer="", id=sent["id"], emoji="👍")["reactions"]
    assert both == [{"emoji": "👍", "count": 2, "users": ["bob"]}]  # names capped at 1, the count exact
    assert {r["emoji"] for r in ask(carol, "message_react", peer="", id=sent["id"], emoji="🎉")["reactions"]} == {"👍", "🎉"}
    assert code(ask(bob, "message_react", peer="", id=sent["id"], emoji="🚀")) == "too_many_reactions"
    assert code(ask(bob, "message_react", peer="", id=sent["id"], emoji="a b")) == "bad_emoji"
    assert code(ask(bob, "message_react", peer="", id=sent["id"], emoji="x" * 33)) == "bad_emoji"
    removed = ask(bob, "message_react", peer="", id=sent["id"], emoji="👍", remove=True)["reactions"]
    assert {"emoji": "👍", "count": 1, "users": ["carol"]} in removed
    assert history(alice, "")["messages"][-1]["reactions"] == removed
    private = chat(alice, "bob", "just us")
    assert code(ask(carol, "message_react", peer="alice", id=private["id"], emoji="👀")) == "unknown_message"


def test_typing_is_throttled_per_conversation_and_never_reaches_old_clients(chat_server, clock, login_as, settle):
    server = chat_server(plugins=["auth"], extra=[("chat-on-a-fake-clock", ChatPlugin(clock=clock))],
                         env={"CHATCORE_CHAT_TYPING_INTERVAL": "3", "CHATCORE_CHAT_TYPING_EXPIRY": "6"})
    alice, bob = login_as(server, "alice", v2=True), login_as(server, "bob", v2=True)
    alice_phone = login_as(server, "alice", register=False, v2=True)
    bob_legacy = login_as(server, "bob", register=False)
    alice.send(command="typing", peer="bob")
    assert bob.expect("typing") == {"type": "typing", "sender": "alice", "to": "bob", "expires_in": 6.0}
    clock.advance(2.9)
    alice.send(command="typing", peer="bob")  # inside the interval: dropped
    alice.send(command="typing", peer="")  # another conversation: its own throttle
    assert bob.expect("typing")["to"] == ""
    clock.advance(0.2)
    alice.send(command="typing", peer="bob")
    assert bob.expect("typing")["to"] == "bob"
    assert [m["to"] for m in bob.sync() if m.get("type") == "typing"] == []
    for client in (alice, alice_phone, bob_legacy):  # never to oneself, never to old clients
        assert "typing" not in [m.get("type") for m in client.sync()]
    assert code(ask(alice, "typing", peer="nobody")) == "unknown_peer"
    assert not list((server.config.data_dir / "chat").glob("typing*"))


def test_search_finds_what_the_user_may_read_newest_first_paged_and_marked(server, trio, chat, settle):
    alice, alice_phone, bob, carol = trio
    first = chat(alice, "bob", "Release notes for the café")
    chat(carol, "alice", "carol's release plan")
    chat(bob, "", "release party tonight")
    chat(alice, "carol", "nothing to see")
    found = ask(bob, "search", query="RELEASE")
    assert [(r["sender"], r["peer"]) for r in found["results"]] == [("bob", ""), ("alice", "alice")]
    hit = found["results"][1]
    assert hit["id"] == first["id"] and hit["to"] == "bob" and hit["marks"] == [[0, 7]]
    assert ask(bob, "search", query="cafe")["results"][0]["marks"] == [[22, 26]]  # accents and case folded
    assert [r["sender"] for r in ask(carol, "search", query="release")["results"]] == ["bob", "carol"]  # not alice↔bob
    assert ask(carol, "search", query="notes café")["results"] == []
    page = ask(alice, "search", query="release", limit=2)
    assert [r["sender"] for r in page["results"]] == ["bob", "carol"] and page["has_more"]
    rest = ask(alice, "search", query="release", before=page["next_before"], limit=2)
    assert [r["id"] for r in rest["results"]] == [first["id"]] and not rest["has_more"]
    ask(alice, "message_edit", peer="bob", id=first["id"], message="Changelog for the bistro")
    assert [r["id"] for r in ask(bob, "search", query="bistro")["results"]] == [first["id"]]
    assert [r["sender"] for r in ask(bob, "search", query="release")["results"]] == ["bob"]
    assert ask(bob, "search", query="bistro")["results"][0]["edited"]
    for bad, expected in (("  ***  ", "bad_query"), ("x" * 201, "query_too_long"),
                          ("a b c d e f g h i", "query_too_long")):
        assert code(ask(bob, "search", query=bad)) == expected
    assert code(ask(bob, "search", query="release", before="chat:x")) == "bad_request"
    assert code(ask(bob, "search", query="release", limit=0)) == "bad_request"
    assert len(ask(bob, "search", query='"release" * party^')["results"]) == 1  # FTS5 syntax is only separators


@pytest.mark.sqlite_only  # the SQLite file and its index
def test_a_schema_2_database_is_upgraded_and_its_messages_are_searchable(tmp_path):
    path = tmp_path / store.FILENAME
    old = sqlite3.connect(path)
    old.executescript(store.SCHEMA + store.COUNTERS + "PRAGMA user_version=2;")  # schema 2 had no edits, no index
    old.executemany("INSERT INTO messages (conv, sender, recipient, ts, body, pending_for) VALUES (?, ?, ?, ?, ?, ?)",
                    [(store.conversation_key("alice", "bob"), "alice", "bob", 1, "héllo there", "bob"),
                     ("", "bob", "", 2, "hello room", None)])
    old.commit()
    old.close()
    conn = store.connect(path)
    store.create_schema(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == 4
    assert [row[0] for row in conn.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'hello' "
                                           "ORDER BY rowid")] == [1, 2]
    assert store.pending_totals(conn, "bob") == (1, len("héllo there".encode()))
    conn.execute("UPDATE messages SET body = 'bonjour' WHERE id = 1")  # an edit of a waiting message
    assert store.pending_totals(conn, "bob") == (1, len("bonjour"))
    assert conn.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'hello'").fetchall() == [(2,)]
    store.create_schema(conn)  # opening it again changes nothing
    conn.close()


def _found(conn, word):
    return [row[0] for row in conn.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid",
                                           (word,))]


@pytest.mark.sqlite_only  # the SQLite file and its index
def test_messages_are_indexed_in_bulk_after_their_commit_and_edits_before_that_are_not_lost(tmp_path):
    from chatcore_chat import features

    conn = store.connect(tmp_path / store.FILENAME)
    store.create_schema(conn)
    conv = store.conversation_key("alice", "bob")
    for text in ("first words", "second words", "third words"):
        store.insert_message(conn, conv, "alice", "bob", 1, text, None)
    assert _found(conn, "words") == []  # not indexed on insert: no trigger on the ack's path
    conn.execute("UPDATE messages SET body = 'edited text' WHERE id = 2")  # edited before it was indexed
    conn.execute("UPDATE messages SET body = '', deleted = 1 WHERE id = 3")  # redacted before it was indexed
    assert features.index_new(conn) == 3 and features.index_new(conn) == 0
    assert _found(conn, "words") == [1] and _found(conn, "edited") == [2]
    conn.execute("UPDATE messages SET body = 'changed again' WHERE id = 1")  # indexed: the trigger follows
    conn.execute("DELETE FROM messages WHERE id = 2")  # retention or account removal
    assert _found(conn, "words") == [] and _found(conn, "changed") == [1] and _found(conn, "edited") == []
    assert _found(conn, "third") == []  # redacted before indexing: never in the index
    conn.close()


@pytest.mark.sqlite_only  # the SQLite file and its index
def test_an_index_kept_by_insert_triggers_switches_to_bulk_indexing_with_nothing_lost(tmp_path):
    from chatcore_chat import features

    conn = store.connect(tmp_path / store.FILENAME)
    store.create_schema(conn)
    conn.execute("DROP TABLE fts_state")  # as the first schema 3 was made: one trigger per insert
    features.run_script(conn, "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN NEW.deleted = 0 "
                              "BEGIN INSERT INTO messages_fts (rowid, body) VALUES (NEW.id, NEW.body); END;")
    store.insert_message(conn, "", "alice", "", 1, "indexed by the old trigger", None)
    conn.close()
    conn = store.connect(tmp_path / store.FILENAME)
    store.create_schema(conn)
    assert _found(conn, "trigger") == [1]
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'messages_fts_insert'").fetchone() is None
    store.insert_message(conn, "", "alice", "", 2, "after the switch", None)
    assert features.index_new(conn) == 1 and _found(conn, "switch") == [2]
    conn.close()
