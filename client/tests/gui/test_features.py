"""Message features in the real windows under X, against a real server: Up edits one's last
message, a reaction from the right-click menu's picker, a deletion from it (a tombstone at
the other side), and a search whose result jumps to an older message in its conversation."""

from __future__ import annotations

from chatcore_client.state import ROOM

from .conftest import ALL_PLUGINS, helper_client, log_in, pane_text


def right_click(app, pump, key: str, line_id: int) -> None:
    """Right-click a message in its pane, as a user would; the app's context menu opens."""
    text = app.main.pane(key).text
    ranges = text.tag_ranges(f"m{line_id}")
    assert ranges, f"message {line_id} is not shown in {key!r}"
    text.see(ranges[0])
    pump.once()
    x, y, _, _ = text.bbox(ranges[0])
    app.message_menu = None
    text.event_generate("<Button-3>", x=x + 2, y=y + 2, rootx=text.winfo_rootx() + x + 2,
                        rooty=text.winfo_rooty() + y + 2)
    pump.until(lambda: app.message_menu is not None, what="the message's context menu")


def choose(app, pump, *path: str) -> None:
    """Pick an entry of the open context menu (a cascade first, then its entry)."""
    menu = app.message_menu
    for label in path[:-1]:
        menu = app.root.nametowidget(menu.entrycget(menu.index(label), "menu"))
    menu.invoke(menu.index(path[-1]))
    app.message_menu.unpost()
    pump.once()


def own_id(app, key: str, text: str) -> int:
    line = next(line for line in app.state.conversation(key).lines if line.text == text)
    assert isinstance(line.id, int)
    return line.id


def test_edit_with_up_react_from_the_picker_and_delete_from_the_menu(make_server, make_app, pump):
    server = make_server(plugins=ALL_PLUGINS)
    alice, bob = make_app(server), make_app(server)
    log_in(alice, pump, "alice")
    log_in(bob, pump, "bob")
    alice.main.entry.insert(0, "lunch at noon?")
    alice.main.send_button.invoke()
    pump.until(lambda: "lunch at noon?" in pane_text(bob, ROOM), what="alice's message at bob")
    pump.until(lambda: "lunch at noon?" in pane_text(alice, ROOM), what="alice's own message after chat_ack")
    line_id = own_id(alice, ROOM, "lunch at noon?")

    alice.main.entry.focus_force()
    alice.main.entry.event_generate("<Up>")  # Up in the empty box: edit the last own message
    pump.until(lambda: alice.main.editing == (ROOM, line_id), what="editing mode after Up")
    assert alice.main.entry.get() == "lunch at noon?" and alice.main.send_button.cget("text") == "Save"
    alice.main.entry.delete(0, "end")
    alice.main.entry.insert(0, "lunch at one?")
    alice.main.send_button.invoke()
    pump.until(lambda: "lunch at one?" in pane_text(bob, ROOM), what="the edit at bob")
    assert "lunch at noon?" not in pane_text(bob, ROOM) and "(edited)" in pane_text(bob, ROOM)
    pump.until(lambda: "lunch at one?" in pane_text(alice, ROOM), what="the edit at alice")
    assert alice.main.send_button.cget("text") == "Send"

    right_click(bob, pump, ROOM, line_id)
    labels = [bob.message_menu.entrycget(i, "label") for i in range(bob.message_menu.index("end") + 1)]
    assert labels == ["React"]  # not bob's message: no Edit, no Delete
    choose(bob, pump, "React", "👍")
    pump.until(lambda: "👍 1" in pane_text(alice, ROOM), what="bob's reaction under alice's message")
    pump.until(lambda: "👍 1•" in pane_text(bob, ROOM), what="bob's own reaction marked as his")

    right_click(alice, pump, ROOM, line_id)
    choose(alice, pump, "Delete")
    pump.until(lambda: "message deleted" in pane_text(bob, ROOM), what="the tombstone at bob")
    assert "lunch at one?" not in pane_text(bob, ROOM) and "👍" not in pane_text(bob, ROOM)
    pump.until(lambda: "message deleted" in pane_text(alice, ROOM), what="the tombstone at alice")


def test_a_search_result_opens_its_conversation_at_the_message(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    alice = make_app(server)
    log_in(alice, pump, "alice")
    carol = helper_client(server, tmp_path, "carol")
    target = carol.chat("alice", "the quarterly numbers are in")["id"]
    for i in range(60):  # the target falls off the first history page: the jump pages back to it
        carol.chat("alice", f"filler {i}")
    carol.close()
    pump.until(lambda: len(alice.state.conversation("carol").lines) >= 61 or alice.main.tree.exists("peer:carol"),
               what="carol's conversation in the sidebar")
    alice.main.search_entry.insert(0, "Quarterly")
    alice.main.search_entry.focus_force()
    pump.once()
    alice.main.search_entry.event_generate("<Return>")
    window = pump.until(lambda: alice.search_window if alice.search_window and alice.search_window.results else None,
                        what="search results")
    assert window.list.get(0) == "carol in carol: the quarterly numbers are in"
    window.open_selected()
    pump.until(lambda: alice.state.current == "carol", what="carol's conversation opened")
    pane = pump.until(lambda: alice.main.panes.get("carol"), what="carol's pane")
    pump.until(lambda: pane.text.tag_ranges("found"), what="the result marked in its conversation",
               state=lambda: len(alice.state.conversation("carol").lines))
    found = pane.text.tag_ranges("found")
    assert "the quarterly numbers are in" in pane.text.get(found[0], found[-1])
    assert pane.message_at(str(found[0])) == target


def test_typing_shows_under_the_room_and_a_pin_in_its_header(make_server, make_app, pump):
    from .test_rooms import create_room

    server = make_server(plugins=[*ALL_PLUGINS, "rooms"])
    alice, bob = make_app(server), make_app(server)
    log_in(alice, pump, "alice")
    log_in(bob, pump, "bob")
    create_room(alice, pump, "dev")
    bob.rooms.join("dev")
    pump.until(lambda: bob.state.current == "#dev", what="bob in #dev")
    bob.main.entry.insert(0, "shipping")  # what typing does to the draft
    pump.until(lambda: alice.main.typing_label.cget("text") == "bob is typing…", what="bob typing at alice")
    bob.main.send_button.invoke()
    pump.until(lambda: "shipping" in pane_text(alice, "#dev"), what="bob's message at alice")
    assert alice.main.typing_label.cget("text") == ""  # his message ended it
    seq = next(line.id for line in alice.state.conversation("#dev").lines if line.text == "shipping")
    right_click(alice, pump, "#dev", seq)
    choose(alice, pump, "Pin")
    pump.until(lambda: alice.main.pins_label.cget("text") == "📌 bob: shipping", what="the pin in alice's header")
    pump.until(lambda: bob.main.pins_label.cget("text") == "📌 bob: shipping", what="the pin in bob's header")
