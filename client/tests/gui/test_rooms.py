"""Rooms in the real windows under X: create a room, join it from a second client, chat with a
mention, unread and mention badges cleared from another device, the member list with roles
(kick), the topic edited by a moderator, history paged on scroll-up."""

from __future__ import annotations

from .conftest import ALL_PLUGINS, DOCS, helper_client, log_in, pane_text, screenshot

PLUGINS = [*ALL_PLUGINS, "rooms"]


def badge(app, key: str) -> str:
    return str(app.main.tree.set(app.main.iid(key), "unread")) if app.main.tree.exists(app.main.iid(key)) else ""


def create_room(app, pump, name: str, topic: str = "", private: bool = False) -> None:
    """Through the New room dialog, as a user would."""
    app.main.new_room_button.invoke()
    dialog = app.room_dialogs["new"]
    dialog.name.set(name)
    dialog.topic.set(topic)
    dialog.private.set(private)
    dialog.create_button.invoke()
    pump.until(lambda: app.state.current == f"#{name}", what=f"#{name} opened after creating it")


def test_create_a_room_join_it_from_a_second_client_and_chat(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=PLUGINS)
    alice, bob = make_app(server), make_app(server)
    log_in(alice, pump, "alice")
    log_in(bob, pump, "bob")
    assert alice.main.new_room_button.winfo_ismapped() or alice.main.room_buttons.winfo_manager()
    create_room(alice, pump, "dev", topic="Release on Friday")
    assert alice.main.tree.exists(alice.main.iid("#dev"))
    assert alice.main.title_label.cget("text") == "#dev"
    assert "Release on Friday" in str(alice.main.presence_label.cget("text"))
    assert "Edit topic…" in alice.main.room_menu_labels()  # the owner may edit the topic

    bob.main.browse_button.invoke()
    browse = bob.room_dialogs["browse"]
    pump.until(lambda: browse.names() == ["dev"], what="the directory listing dev", state=browse.names)
    browse.tree.selection_set("dev")
    pump.once()
    browse.join_button.invoke()
    pump.until(lambda: bob.state.current == "#dev", what="bob in #dev after joining")
    pump.until(lambda: "bob joined" in pane_text(alice, "#dev"), what="the join notice at alice")
    assert bob.main.room_menu_labels() == ["Members…", "Leave"]  # a member may not

    alice.rooms.focused = lambda: False  # alice looks at another window
    bob.main.entry.insert(0, "Hi @alice, the build is green")
    bob.main.send_button.invoke()
    pump.until(lambda: "the build is green" in pane_text(alice, "#dev"), what="bob's message at alice")
    pump.until(lambda: "the build is green" in pane_text(bob, "#dev"), what="bob's own message after room_ack")
    assert alice.main.title().startswith("(@bob in #dev)")  # a mention while not focused: the title says so
    ranges = alice.main.pane("#dev").text.tag_ranges("mention")
    assert ranges and "the build is green" in alice.main.pane("#dev").text.get(ranges[0], ranges[1])
    assert badge(alice, "#dev") == "@1 · 1"  # not looked at yet
    alice.rooms.focused = lambda: True
    alice.main.event_generate("<FocusIn>")  # alice comes back to the window
    pump.until(lambda: badge(alice, "#dev") == "", what="the badge cleared once the window has the focus")
    assert alice.main.title() == alice.main.base_title
    alice.main.entry.insert(0, "Great, shipping it")
    alice.main.send_button.invoke()
    pump.until(lambda: "shipping it" in pane_text(bob, "#dev"), what="alice's reply at bob")
    carol = helper_client(server, tmp_path, "carol")
    carol.request("room_join", ["room_join_result"], room="dev")
    carol.request("room_message", ["room_ack"], room="dev", message="Morning all, I'm in too")
    pump.until(lambda: "I'm in too" in pane_text(alice, "#dev"), what="carol's message")
    alice.main.lift()
    screenshot(alice.main, "main-window-room", also=DOCS / "screenshot-rooms.png")


def test_unread_and_mention_badges_clear_on_another_device(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=PLUGINS)
    bob = helper_client(server, tmp_path, "bob")
    bob.request("room_create", ["room_create_result"], room="ops")
    alice_phone = helper_client(server, tmp_path, "alice")
    alice_phone.request("room_join", ["room_join_result"], room="ops")
    for text in ("deploy at 5", "@alice can you check the logs?", "thanks"):
        bob.request("room_message", ["room_ack"], room="ops", message=text)
    app = make_app(server)
    log_in(app, pump, "alice", register=False)
    pump.until(lambda: badge(app, "#ops") == "@1 · 3", what="unread and mention badge from the login room list",
               state=lambda: badge(app, "#ops"))
    bob.request("room_message", ["room_ack"], room="ops", message="one more")
    pump.until(lambda: badge(app, "#ops") == "@1 · 4", what="a live message adds to the badge")
    alice_phone.request("mark_read", ["mark_read_result"], room="ops", seq=4)  # read on the phone
    pump.until(lambda: badge(app, "#ops") == "", what="the badge cleared by the other device",
               state=lambda: badge(app, "#ops"))
    bob.request("room_message", ["room_ack"], room="ops", message="and now?")
    pump.until(lambda: badge(app, "#ops") == "1", what="a new message after that")
    app.main.select("#ops")  # opening it here clears it on the phone too
    marker = alice_phone.expect("read_marker", timeout=10, match=lambda m: m.get("seq") == 5)
    assert marker["unread"] == 0 and badge(app, "#ops") == ""
    pump.until(lambda: "and now?" in pane_text(app, "#ops"), what="the room's history")


def test_member_list_with_roles_kick_and_the_topic(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=PLUGINS)
    app = make_app(server)
    log_in(app, pump, "alice")
    create_room(app, pump, "team", topic="old topic")
    bob = helper_client(server, tmp_path, "bob")
    bob.request("room_join", ["room_join_result"], room="team")
    app.main.room_menu.invoke("Members…")
    members = app.room_dialogs["members"]
    pump.until(lambda: members.members() == {"alice": "owner", "bob": "member"}, what="the member list",
               state=members.members)
    assert members.tree.set("bob", "state") == "online"
    members.tree.selection_set("bob")
    pump.once()
    assert str(members.kick_button.cget("state")) == "normal"  # the owner over a member
    members.tree.selection_set("alice")
    pump.once()
    assert str(members.kick_button.cget("state")) == "disabled"  # not oneself
    members.tree.selection_set("bob")
    pump.once()
    members.promote_button.invoke()
    pump.until(lambda: members.members().get("bob") == "moderator", what="bob promoted")
    members.demote_button.invoke()
    pump.until(lambda: members.members().get("bob") == "member", what="bob demoted")
    members.reason.set("wrong room")
    members.kick_button.invoke()
    kicked = bob.expect("room_event", timeout=10, match=lambda m: m.get("kind") == "kicked")
    assert kicked["reason"] == "wrong room" and kicked["by"] == "alice"
    pump.until(lambda: members.members() == {"alice": "owner"}, what="bob gone from the list")
    screenshot(members, "room-members")
    app.main.room_menu.invoke("Edit topic…")
    topic = app.room_dialogs["topic"]
    topic.topic.set("new topic")
    topic.save_button.invoke()
    pump.until(lambda: "new topic" in str(app.main.presence_label.cget("text")), what="the new topic in the header")


def test_room_history_pages_in_on_scroll_up(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=PLUGINS, env={"CHATCORE_RATE_LIMIT": "1000", "CHATCORE_RATE_BURST": "1000"})
    carol = helper_client(server, tmp_path, "carol")
    carol.request("room_create", ["room_create_result"], room="logs")
    for i in range(120):
        carol.send({"command": "room_message", "room": "logs", "message": f"log line {i:03d}"})
    for _ in range(120):
        carol.expect("room_ack")
    app = make_app(server)
    log_in(app, pump, "dave")
    app.main.browse_button.invoke()
    browse = app.room_dialogs["browse"]
    pump.until(lambda: browse.names() == ["logs"], what="the directory")
    browse.tree.selection_set("logs")
    pump.once()
    browse.join_button.invoke()
    pump.until(lambda: "log line 119" in pane_text(app, "#logs"), what="the newest page on open")
    pane = app.main.pane("#logs")
    assert "log line 000" not in pane.content()
    while "log line 000" not in pane.content():
        before = pane.lines
        pane.text.yview_moveto(0.0)  # the user scrolls to the top
        pump.until(lambda before=before: pane.lines > before, what="an older page after scrolling up")
    text = pane.content()
    assert text.index("log line 000") < text.index("log line 060") < text.index("log line 119")
    assert not app.state.conversations["#logs"].has_more


def test_an_invitation_to_a_private_room_shows_in_browse_and_joins(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=PLUGINS)
    app = make_app(server)
    log_in(app, pump, "dave")
    boss = helper_client(server, tmp_path, "boss")
    boss.request("room_create", ["room_create_result"], room="board", private=True, topic="quiet please")
    boss.request("room_invite", ["room_invite_result"], room="board", user="dave")
    pump.until(lambda: "invited you to #board" in pane_text(app, ""), what="the invitation notice")
    app.main.browse_button.invoke()
    browse = app.room_dialogs["browse"]
    pump.until(lambda: browse.names() == ["board"], what="the invitation in the list", state=browse.names)
    assert "invited by boss" in browse.tree.item("board", "text")
    browse.tree.selection_set("board")
    pump.once()
    browse.join_button.invoke()
    pump.until(lambda: app.state.current == "#board", what="dave in the private room")
    assert "quiet please" in str(app.main.presence_label.cget("text"))
    assert "private" in str(app.main.presence_label.cget("text"))
