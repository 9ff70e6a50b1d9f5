"""Rooms' changes replayed after a reconnect over the real wire: a device naming
``room_changes_since`` gets the edits, deletions and reaction changes made meanwhile to room
messages it may read, each once, in order, then ``room_changes_done``; never a room it is not
in, nor, in a ``joined`` room, what came before it joined; logins without it see nothing new."""

from __future__ import annotations

import pytest

from chatcore.testing import PASSWORD

CHANGES = ("message_edited", "message_deleted", "message_reactions")

pytestmark = pytest.mark.usefixtures("backend")  # each test runs on SQLite and on PostgreSQL (conftest)


def reconnect(connect, server, name: str, **login):
    client = connect(server)
    client.request(command="hello", protocol=2)
    assert client.request(command="login", username=name, password=PASSWORD, **login)["response"] == "ok"
    return client


def test_room_changes_made_while_away_are_replayed_once_only_where_the_user_may_read(server, user, kit, connect):
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(carol, "room_create", room="secret", private=True)
    kit.ask(alice, "room_create", room="club", history="joined")
    kit.ask(bob, "room_join", room="dev")
    before_bob = kit.post(alice, "club", "before bob came")["seq"]
    kit.ask(bob, "room_join", room="club")
    first, second = (kit.post(alice, "dev", text)["seq"] for text in ("one", "two"))
    after_bob = kit.post(alice, "club", "after bob came")["seq"]
    hidden = kit.post(carol, "secret", "carol only")["seq"]
    seen = kit.ask(bob, "room_react", room="dev", seq=first, emoji="👍")["change_id"]
    kit.settle(server)
    bob.close()
    edit = kit.ask(alice, "room_message_edit", room="dev", seq=first, message="one, edited")
    kit.ask(alice, "room_message_delete", room="dev", seq=second)
    kit.ask(carol, "room_message_edit", room="secret", seq=hidden, message="still carol only")
    kit.ask(alice, "room_message_edit", room="club", seq=before_bob, message="before bob, edited")
    club = kit.ask(alice, "room_react", room="club", seq=after_bob, emoji="🎉")
    again = reconnect(connect, server, "bob", room_changes_since=seen)
    done = again.expect("room_changes_done")
    replayed = [m for m in again.backlog if m.get("type") in CHANGES]
    assert [(m["type"], m["room"], m["seq"], m["change_id"]) for m in replayed] == [
        ("message_edited", "dev", first, seen + 1), ("message_deleted", "dev", second, seen + 2),
        ("message_reactions", "club", after_bob, club["change_id"])]  # not #secret's, not club's before bob
    assert replayed[0]["message"] == "one, edited" and edit["change_id"] == seen + 1  # the rooms' own sequence
    assert replayed[1]["by"] == "alice" and all(m["replayed"] for m in replayed)
    assert replayed[2]["reactions"] == [{"emoji": "🎉", "count": 1, "users": ["alice"]}]
    assert done == {"type": "room_changes_done", "complete": True, "last_change_id": club["change_id"]}
    plain = reconnect(connect, server, "bob")  # a login without room_changes_since: nothing new
    arrived = kit.settle(server, plain)
    assert "room_changes_done" not in [m.get("type") for m in arrived] and not [m for m in arrived if m.get("replayed")]
    page = kit.ask(plain, "room_history", room="dev")  # a page names the newest room change id it shows
    assert page["last_change_id"] == club["change_id"]


def test_a_pruned_room_log_makes_the_replay_incomplete(rooms_server, user, kit, connect):
    server = rooms_server(env={"CHATCORE_CHAT_CHANGES_KEEP": "2"})
    alice, bob = user(server, "alice"), user(server, "bob")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(bob, "room_join", room="dev")
    seqs = [kit.post(alice, "dev", f"m{n}")["seq"] for n in range(4)]
    kit.settle(server)
    bob.close()
    ids = [kit.ask(alice, "room_react", room="dev", seq=seq, emoji="👀")["change_id"] for seq in seqs]
    done = reconnect(connect, server, "bob", room_changes_since=ids[0]).expect("room_changes_done")
    assert done == {"type": "room_changes_done", "complete": False, "last_change_id": ids[-1]}
    again = reconnect(connect, server, "bob", room_changes_since=ids[1])
    assert again.expect("room_changes_done")["complete"] is True
    assert [m["seq"] for m in again.backlog if m.get("replayed")] == seqs[2:]


def test_a_removed_accounts_room_changes_go_and_its_reactions_leaving_is_logged(server, user, kit):
    alice, bob = user(server, "alice"), user(server, "bob")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(bob, "room_join", room="dev")
    mine, his = kit.post(alice, "dev", "alice's")["seq"], kit.post(bob, "dev", "bob's")["seq"]
    kit.ask(bob, "room_react", room="dev", seq=mine, emoji="👍")
    kit.ask(bob, "room_message_edit", room="dev", seq=his, message="bob's, edited")
    service = server.pm.get_plugin("rooms").service
    service.forget_user("bob")
    with service.readers.connection() as conn:
        rows = conn.execute("SELECT m.seq, c.kind, c.actor FROM message_changes c JOIN messages m"
                            " ON m.id = c.message_id ORDER BY c.id").fetchall()
    assert rows == [(mine, "reactions", "bob"), (mine, "reactions", "")]  # his message's edit went with it
