"""Every rooms command over the real wire: what it does, who hears of it, and its refusals."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("backend")  # each test runs on SQLite and on PostgreSQL (conftest)


def code(reply: dict) -> str:
    assert reply["type"] == "error", reply
    return reply["code"]


def test_create_list_and_directory(server, user, kit):
    alice = user(server, "alice")
    created = kit.ask(alice, "room_create", room="Dev", topic="the dev room")["room"]
    assert created == {"room": "Dev", "topic": "the dev room", "private": False, "history": "shared", "members": 1,
                       "last_seq": 0, "role": "owner", "read_seq": 0, "unread": 0, "mentions": 0}
    kit.ask(alice, "room_create", room="secret", private=True)
    kit.ask(alice, "room_create", room="support", history="joined")
    directory = kit.ask(alice, "room_directory")
    assert [r["room"] for r in directory["rooms"]] == ["Dev", "support"]  # private rooms are not listed
    assert directory["rooms"][0]["joined"] is True and directory["has_more"] is False
    first = kit.ask(alice, "room_directory", limit=1)
    assert [r["room"] for r in first["rooms"]] == ["Dev"] and first["has_more"]
    rest = kit.ask(alice, "room_directory", after=first["next_after"])
    assert [r["room"] for r in rest["rooms"]] == ["support"] and not rest["has_more"]
    alice.send(command="room_list")
    listed = kit.read_list(alice)
    assert [r["room"] for r in listed["rooms"]] == ["Dev", "secret", "support"]
    assert all(r["role"] == "owner" for r in listed["rooms"])


@pytest.mark.parametrize("name, wanted", [("", "bad_name"), ("has space", "bad_name"), ("x" * 33, "bad_name"),
                                          ("..", "bad_name"), ("DEV", "room_exists")])
def test_create_refuses_bad_and_taken_names(server, user, kit, name, wanted):
    alice = user(server, "alice")
    kit.ask(alice, "room_create", room="dev")
    assert code(kit.ask(alice, "room_create", room=name)) == wanted


def test_create_refuses_bad_fields(server, user, kit):
    alice = user(server, "alice")
    assert code(kit.ask(alice, "room_create", room="a", history="never")) == "bad_request"
    assert code(kit.ask(alice, "room_create", room="a", topic="x" * 301)) == "topic_too_long"
    assert code(kit.ask(alice, "room_create", room="a", topic="two\nlines")) == "bad_request"
    assert code(kit.ask(alice, "room_create", room="a", private="yes")) == "bad_request"


def test_join_and_leave_tell_the_members_and_the_users_other_devices(server, user, kit):
    alice = user(server, "alice")
    bob = user(server, "bob")
    bob_phone = user(server, "bob", register=False)
    kit.ask(alice, "room_create", room="dev")
    joined = kit.ask(bob, "room_join", room="dev")["room"]
    assert joined["role"] == "member" and joined["members"] == 2
    for client in (alice, bob_phone):
        event = client.expect("room_event", kind="joined")
        assert event["user"] == "bob" and event["room"] == "dev" and event["info"]["members"] == 2
    assert code(kit.ask(bob, "room_join", room="dev")) == "already_member"
    assert kit.ask(bob, "room_leave", room="dev")["room"] == "dev"
    assert alice.expect("room_event", kind="left")["user"] == "bob"
    assert bob_phone.expect("room_event", kind="left")["info"]["members"] == 1
    assert code(kit.ask(bob, "room_leave", room="dev")) == "not_member"
    assert code(kit.ask(bob, "room_join", room="nowhere")) == "unknown_room"


def test_the_owner_cannot_leave_but_can_hand_over_or_delete(server, user, kit):
    alice = user(server, "alice")
    bob = user(server, "bob")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(bob, "room_join", room="dev")
    assert code(kit.ask(alice, "room_leave", room="dev")) == "owner_must_transfer"
    assert code(kit.ask(bob, "room_delete", room="dev")) == "forbidden"
    assert kit.ask(alice, "room_set_role", room="dev", user="BOB", role="owner")["role"] == "owner"
    roles = [(e["user"], e["role"]) for e in (bob.expect("room_event", kind="role"), bob.expect("room_event", kind="role"))]
    assert roles == [("bob", "owner"), ("alice", "moderator")]
    assert kit.ask(alice, "room_leave", room="dev")["room"] == "dev"
    assert kit.ask(bob, "room_delete", room="dev")["room"] == "dev"
    assert code(kit.ask(bob, "room_join", room="dev")) == "unknown_room"


def test_private_room_needs_an_invitation(server, user, kit):
    alice = user(server, "alice")
    bob = user(server, "bob")
    carol = user(server, "carol")
    kit.ask(alice, "room_create", room="secret", private=True, topic="hush")
    assert code(kit.ask(bob, "room_join", room="secret")) == "not_invited"
    assert code(kit.ask(carol, "room_invite", room="secret", user="bob")) == "not_member"
    assert code(kit.ask(alice, "room_invite", room="secret", user="nobody")) == "unknown_user"
    assert kit.ask(alice, "room_invite", room="secret", user="bob")["user"] == "bob"
    invited = bob.expect("room_event", kind="invited")
    assert invited["user"] == "bob" and invited["by"] == "alice" and invited["info"]["topic"] == "hush"
    bob_laptop = user(server, "bob", register=False)
    assert [i["room"] for i in bob_laptop.room_list["invites"]] == ["secret"]
    assert kit.ask(bob, "room_join", room="secret")["room"]["room"] == "secret"
    assert code(kit.ask(alice, "room_invite", room="secret", user="bob")) == "already_member"
    # a plain member may not invite to a private room
    assert code(kit.ask(bob, "room_invite", room="secret", user="carol")) == "forbidden"


def test_moderators_kick_and_ban_members_but_not_each_other(server, user, kit):
    alice = user(server, "alice")  # owner
    mod = user(server, "mod")
    bob = user(server, "bob")
    kit.ask(alice, "room_create", room="dev")
    for client in (mod, bob):
        kit.ask(client, "room_join", room="dev")
    assert code(kit.ask(bob, "room_kick", room="dev", user="mod")) == "forbidden"  # a member kicks: refused
    kit.ask(alice, "room_set_role", room="dev", user="mod", role="moderator")
    assert code(kit.ask(mod, "room_set_role", room="dev", user="bob", role="moderator")) == "forbidden"
    assert code(kit.ask(mod, "room_kick", room="dev", user="alice")) == "forbidden"
    assert code(kit.ask(mod, "room_kick", room="dev", user="mod")) == "forbidden"
    assert kit.ask(mod, "room_kick", room="dev", user="bob", reason="cool off")["user"] == "bob"
    kicked = bob.expect("room_event", kind="kicked")
    assert kicked["by"] == "mod" and kicked["reason"] == "cool off"
    assert alice.expect("room_event", kind="kicked")["user"] == "bob"
    assert kit.post(bob, "dev", "still here?")["code"] == "not_member"
    kit.ask(bob, "room_join", room="dev")  # a kick is not a ban: a public room takes them back
    assert kit.ask(mod, "room_ban", room="dev", user="bob", reason="spam")["user"] == "bob"
    assert bob.expect("room_event", kind="banned")["reason"] == "spam"
    rejoin = kit.ask(bob, "room_join", room="dev")
    assert code(rejoin) == "banned" and "spam" in rejoin["reason"]
    assert code(kit.ask(alice, "room_invite", room="dev", user="bob")) == "banned"
    members = kit.ask(mod, "room_members", room="dev")
    assert [(m["user"], m["role"]) for m in members["members"]] == [("alice", "owner"), ("mod", "moderator")]
    assert [(b["user"], b["by"], b["reason"]) for b in members["bans"]] == [("bob", "mod", "spam")]
    assert code(kit.ask(bob, "room_unban", room="dev", user="bob")) == "not_member"
    assert kit.ask(mod, "room_unban", room="dev", user="bob")["user"] == "bob"
    assert bob.expect("room_event", kind="unbanned")["by"] == "mod"
    assert kit.ask(bob, "room_join", room="dev")["room"]["role"] == "member"
    assert code(kit.ask(mod, "room_unban", room="dev", user="bob")) == "not_banned"


def test_a_ban_reaches_someone_who_is_not_a_member_yet_and_lasts_until_lifted(rooms_server, user, kit):
    server = rooms_server()
    alice = user(server, "alice")
    user(server, "troll").close()
    kit.ask(alice, "room_create", room="dev")
    kit.ask(alice, "room_ban", room="dev", user="troll")
    server.stop()
    server = rooms_server()  # a restart keeps the ban
    troll = user(server, "troll", register=False)
    assert code(kit.ask(troll, "room_join", room="dev")) == "banned"


def test_topic_is_for_moderators(server, user, kit):
    alice = user(server, "alice")
    bob = user(server, "bob")
    kit.ask(alice, "room_create", room="dev")
    kit.ask(bob, "room_join", room="dev")
    assert code(kit.ask(bob, "room_topic", room="dev", topic="mine now")) == "forbidden"
    assert kit.ask(alice, "room_topic", room="dev", topic="release on friday")["topic"] == "release on friday"
    event = bob.expect("room_event", kind="topic")
    assert event["topic"] == "release on friday" and event["info"]["topic"] == "release on friday"
    assert code(kit.ask(alice, "room_topic", room="dev", topic="x" * 301)) == "topic_too_long"


def test_roles_are_validated(server, user, kit):
    alice = user(server, "alice")
    user(server, "bob")
    kit.ask(alice, "room_create", room="dev")
    assert code(kit.ask(alice, "room_set_role", room="dev", user="bob", role="member")) == "not_member"
    assert code(kit.ask(alice, "room_set_role", room="dev", user="alice", role="king")) == "bad_request"
    assert code(kit.ask(alice, "room_set_role", room="dev", user="alice", role="member")) == "forbidden"


def test_members_only_see_the_member_list_with_presence(server, user, kit):
    alice = user(server, "alice")
    bob = user(server, "bob")
    kit.ask(alice, "room_create", room="dev")
    assert code(kit.ask(bob, "room_members", room="dev")) == "not_member"
    kit.ask(bob, "room_join", room="dev")
    sessions = server.sessions.of_user("bob")
    bob.close()
    assert server.sessions.wait_unbound(sessions, 5)
    listed = kit.ask(alice, "room_members", room="dev")
    assert {m["user"]: m["online"] for m in listed["members"]} == {"alice": True, "bob": False}
    assert "bans" in listed  # the owner sees the bans (none)


def test_limits_rooms_per_user_and_members_per_room(rooms_server, user, kit):
    server = rooms_server(env={"CHATCORE_ROOMS_MAX_PER_USER": "2", "CHATCORE_ROOMS_MAX_MEMBERS": "2"})
    alice, bob, carol = user(server, "alice"), user(server, "bob"), user(server, "carol")
    kit.ask(alice, "room_create", room="one")
    kit.ask(alice, "room_create", room="two")
    assert code(kit.ask(alice, "room_create", room="three")) == "too_many_rooms"
    kit.ask(bob, "room_join", room="one")
    assert code(kit.ask(carol, "room_join", room="one")) == "room_full"


def test_not_logged_in_and_bad_types(server, connect, user, kit):
    stranger = connect(server)
    assert code(stranger.request(command="room_create", room="x")) == "not_authenticated"
    alice = user(server, "alice")
    assert code(kit.ask(alice, "room_join", room=5)) == "bad_request"
    assert code(kit.ask(alice, "mark_read", room="dev", peer="bob")) == "bad_request"
    assert code(kit.ask(alice, "mark_read", seq=1)) == "bad_request"
