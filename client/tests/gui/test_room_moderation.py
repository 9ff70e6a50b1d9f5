"""Room moderation in the real windows under X: unban from the member list (moderators), hand
the room over (the owner, after a confirmation), delete the room (the owner, after a
confirmation; Cancel keeps it), and a desktop notification for a mention while the window is
not focused (a real ``notify-send`` stand-in on PATH)."""

from __future__ import annotations

import os

from .conftest import helper_client, log_in, pane_text
from .test_rooms import PLUGINS, create_room


def test_unban_from_the_member_list_and_hand_the_room_over(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=PLUGINS)
    app = make_app(server)
    log_in(app, pump, "alice")
    create_room(app, pump, "team")
    bob = helper_client(server, tmp_path, "bob")
    bob.request("room_join", ["room_join_result"], room="team")
    app.main.room_menu.invoke("Members…")
    members = app.room_dialogs["members"]
    pump.until(lambda: members.members() == {"alice": "owner", "bob": "member"}, what="the member list",
               state=members.members)
    assert not members.banned_frame.winfo_manager()  # nobody banned: no list of bans
    members.tree.selection_set("bob")
    pump.once()
    members.reason.set("spam")
    members.ban_button.invoke()
    bob.expect("room_event", timeout=10, match=lambda m: m.get("kind") == "banned")
    pump.until(lambda: members.bans() == ["bob"], what="bob in the list of bans", state=members.bans)
    assert members.bans_tree.set("bob", "reason") == "spam" and members.banned_frame.winfo_manager()
    assert str(members.unban_button.cget("state")) == "disabled"  # nothing chosen yet
    members.bans_tree.selection_set("bob")
    pump.once()
    assert str(members.unban_button.cget("state")) == "normal"
    members.unban_button.invoke()
    unbanned = bob.expect("room_event", timeout=10, match=lambda m: m.get("kind") == "unbanned")
    assert unbanned["by"] == "alice"
    pump.until(lambda: members.bans() == [], what="the ban lifted in the list", state=members.bans)
    bob.request("room_join", ["room_join_result"], room="team")  # bob may join again
    pump.until(lambda: "bob" in members.members(), what="bob back in the list", state=members.members)

    assert app.main.room_menu_labels() == ["Members…", "Edit topic…", "Leave", "Delete room…"]  # the owner's
    members.tree.selection_set("bob")
    pump.once()
    assert str(members.hand_over_button.cget("state")) == "normal"
    members.hand_over_button.invoke()
    confirm = members.confirm
    assert confirm is not None and "Make bob the owner of #team" in str(confirm.question.cget("text"))
    confirm.yes_button.invoke()
    pump.until(lambda: members.members() == {"alice": "moderator", "bob": "owner"}, what="bob the owner",
               state=members.members)
    role = bob.expect("room_event", timeout=10, match=lambda m: m.get("kind") == "role")
    assert role["user"] == "bob" and role["role"] == "owner"
    assert app.state.conversation("#team").room["role"] == "moderator"
    pump.until(lambda: "Delete room…" not in app.main.room_menu_labels(), what="Delete room… gone for a moderator")
    members.tree.selection_set("bob")
    pump.once()
    assert str(members.hand_over_button.cget("state")) == "disabled"
    assert "Edit topic…" in app.main.room_menu_labels()  # a moderator still sets the topic


def test_delete_a_room_after_a_confirmation(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=PLUGINS)
    app = make_app(server)
    log_in(app, pump, "alice")
    create_room(app, pump, "old")
    bob = helper_client(server, tmp_path, "bob")
    bob.request("room_join", ["room_join_result"], room="old")
    pump.until(lambda: "bob joined" in pane_text(app, "#old"), what="bob's join at alice")
    app.main.room_menu.invoke("Delete room…")
    question = app.room_dialogs["delete"]
    assert "Delete #old for every member" in str(question.question.cget("text"))
    question.cancel_button.invoke()  # changed her mind: nothing is sent
    pump.once()
    assert not question.winfo_exists() and "#old" in app.state.conversations
    assert bob.request("room_history", ["room_history"], room="old")["room"] == "old"  # still there
    app.main.room_menu.invoke("Delete room…")
    app.room_dialogs["delete"].yes_button.invoke()
    deleted = bob.expect("room_event", timeout=10, match=lambda m: m.get("kind") == "deleted")
    assert deleted["by"] == "alice"
    pump.until(lambda: "#old" not in app.state.conversations, what="the room gone at alice")
    pump.until(lambda: not app.main.tree.exists(app.main.iid("#old")), what="the room gone from the sidebar")
    listed = bob.request("room_directory", ["room_directory"])
    assert listed["rooms"] == []


def test_a_mention_while_not_focused_shows_a_desktop_notification(make_server, make_app, pump, tmp_path,
                                                                   monkeypatch):
    bin_dir, out = tmp_path / "bin", tmp_path / "notified"
    bin_dir.mkdir()
    program = bin_dir / "notify-send"
    program.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {out}.tmp && mv {out}.tmp {out}\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    server = make_server(plugins=PLUGINS)
    app = make_app(server)
    log_in(app, pump, "alice")
    create_room(app, pump, "dev")
    bob = helper_client(server, tmp_path, "bob")
    bob.request("room_join", ["room_join_result"], room="dev")
    app.rooms.focused = lambda: False  # alice looks at another window
    bob.request("room_message", ["room_ack"], room="dev", message="@alice the release is out")
    pump.until(out.exists, what="notify-send run for the mention")
    assert out.read_text().splitlines() == ["--app-name=chatcore", "--", "@bob in #dev", "@alice the release is out"]
    assert app.main.title().startswith("(@bob in #dev)") and app.notifier.shown == 1
    out.unlink()
    app.rooms.focused = lambda: True
    bob.request("room_message", ["room_ack"], room="dev", message="@alice while you look")
    pump.until(lambda: "while you look" in pane_text(app, "#dev"), what="the second mention shown")
    assert not out.exists() and app.notifier.shown == 1  # focused: no notification
