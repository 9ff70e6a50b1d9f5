"""Rooms survive a restart with their sequence; removing an account leaves nothing of it in rooms."""

from __future__ import annotations

import pytest

from chatcore.admin import admin_request

pytestmark = pytest.mark.usefixtures("backend")  # each test runs on SQLite and on PostgreSQL (conftest)


def test_rooms_members_and_sequence_survive_a_restart(rooms_server, user, kit):
    server = rooms_server()
    alice, bob = user(server, "alice"), user(server, "bob")
    kit.ask(alice, "room_create", room="dev", topic="kept")
    kit.ask(bob, "room_join", room="dev")
    for i in range(3):
        kit.post(alice, "dev", f"m{i}")
    server.stop()
    server = rooms_server()
    alice = user(server, "alice", register=False)
    assert alice.room_list["rooms"][0]["topic"] == "kept" and alice.room_list["rooms"][0]["members"] == 2
    assert kit.post(alice, "dev", "after the restart")["seq"] == 4
    assert [m["seq"] for m in kit.ask(alice, "room_history", room="dev")["messages"]] == [1, 2, 3, 4]


def test_removing_an_account_hands_its_rooms_over_and_leaves_nothing(server, user, kit):
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(alice, "room_create", room="lonely")
    kit.ask(bob, "room_join", room="dev")
    kit.ask(carol, "room_join", room="dev")
    kit.ask(alice, "room_set_role", room="dev", user="carol", role="moderator")
    kit.post(alice, "dev", "alice was here, @bob")
    kit.post(bob, "dev", "bob too")
    alice.request({"command": "chat", "peer": "bob", "message": "psst"}, reply="chat_ack")
    assert admin_request(server.data_dir, {"command": "remove_user", "username": "alice"})["ok"]
    left = bob.expect("room_event", kind="left")
    assert left["user"] == "alice" and left["reason"] == "account removed"
    assert bob.expect("room_event", kind="role")["user"] == "carol"  # the moderator inherits the room
    assert kit.ask(carol, "room_members", room="dev")["members"] == [
        {"user": "bob", "role": "member", "online": True}, {"user": "carol", "role": "owner", "online": True}]
    assert [m["sender"] for m in kit.ask(bob, "room_history", room="dev")["messages"]] == ["bob"]
    bob.close()
    assert user(server, "bob", register=False).room_list["rooms"][0]["mentions"] == 0  # alice's mention went too
    stranger = user(server, "Alice")  # the name's next owner inherits nothing
    assert stranger.room_list == {"rooms": [], "private": [], "invites": [], "as_of": stranger.room_list["as_of"]}
    assert kit.ask(stranger, "room_join", room="lonely")["code"] == "unknown_room"  # nobody left to own it
    assert kit.ask(stranger, "room_create", room="lonely")["room"]["role"] == "owner"


@pytest.mark.sqlite_only
def test_a_backup_restores_rooms_with_their_members_and_history(rooms_server, user, kit, tmp_path):
    from chatcore.backup import backup, restore
    from chatcore.testing import server_config

    server = rooms_server()
    alice, bob = user(server, "alice"), user(server, "bob")
    kit.ask(alice, "room_create", room="dev", topic="backed up")
    kit.ask(bob, "room_join", room="dev")
    kit.post(alice, "dev", "before the backup")
    manifest, skipped = backup(server.config, tmp_path / "copy")  # while the server runs
    assert "rooms/rooms.sqlite3" in {e["path"] for e in manifest["files"]} and skipped == []
    server.stop()
    restore(server_config(tmp_path / "fresh", ["auth", "chat", "rooms"]), tmp_path / "copy")
    again = rooms_server(data_dir=tmp_path / "fresh")
    bob = user(again, "bob", register=False)
    assert bob.room_list["rooms"][0]["topic"] == "backed up" and bob.room_list["rooms"][0]["members"] == 2
    assert [m["message"] for m in kit.ask(bob, "room_history", room="dev")["messages"]] == ["before the backup"]
