"""The real client windows under X: login, chat between two clients, history, offline
messages, files, missing plugins, reconnects. Screenshots of each window go to tests/artifacts/."""

from __future__ import annotations

import hashlib
import os
import socket
import tkinter as tk

from chatcore_client.backoff import Backoff
from chatcore_client.state import ROOM

from .conftest import ALL_PLUGINS, DOCS, PASSWORD, helper_client, log_in, pane_text, screenshot


def test_login_window_as_specified(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    helper_client(server, tmp_path, "alice").close()
    app = make_app(server)
    login = app.login
    pump.until(lambda: login.winfo_ismapped(), what="the login window")
    assert login.title() == "Login" and login.minsize() == (300, 180) and login.resizable() == (True, True)
    assert str(login.password_entry.cget("show")) == "*"
    assert [str(p) for p in login.winfo_children()[0].cget("padding")] == ["20"]
    assert login.host.get() == server.address[0] and login.port.get() == str(server.address[1])
    assert not app.root.winfo_ismapped()  # the root stays hidden: no stray empty window
    login.username.set("alice")
    login.password.set("wrong password")
    login.login_button.invoke()
    pump.until(lambda: app.trust_dialog is not None, what="the trust dialog")
    app.trust_dialog.trust_button.invoke()
    pump.until(lambda: "Incorrect" in str(login.status.cget("text")), what="the server's reason",
               state=lambda: login.status.cget("text"))
    assert str(login.status.cget("text")) == "Incorrect username or password!"
    screenshot(login, "login-window-error")
    login.password.set(PASSWORD)
    login.password_entry.focus_force()
    pump.once()
    login.password_entry.event_generate("<Return>")  # Return logs in (the original crashed here)
    pump.until(lambda: app.main is not None, what="login by Return")
    assert not login.winfo_ismapped()


def test_connection_refused_is_clear_and_opens_nothing(display, make_server, make_app, pump):
    server = make_server(plugins=ALL_PLUGINS)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    app = make_app(server)
    app.login.port.set(str(closed_port))
    app.login.username.set("alice")
    app.login.password.set(PASSWORD)
    pump.until(lambda: app.login.winfo_ismapped(), what="the login window")
    width = app.login.winfo_width()
    app.login.login_button.invoke()
    pump.until(lambda: "refused" in str(app.login.status.cget("text")), what="the refusal message")
    pump.until(lambda: app.login.status.winfo_height() > 1, what="the message laid out")
    assert app.login.winfo_width() == width  # a long message wraps; it does not widen the window
    assert app.main is None
    visible = [w for w in app.root.winfo_children() if isinstance(w, tk.Toplevel) and w.winfo_ismapped()]
    assert visible == [app.login]
    assert str(app.login.login_button.cget("state")) == "normal"
    screenshot(app.login, "login-window-refused")


def test_two_clients_chat_and_main_window_screenshot(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    alice, bob = make_app(server), make_app(server)
    log_in(alice, pump, "alice", shoot_trust=True)
    log_in(bob, pump, "bob")
    pump.until(lambda: "bob" in alice.state.conversations and alice.state.conversations["bob"].online,
               what="bob online in alice's list")
    assert alice.state.server.raw["presence"] == "batched"  # the app asks for presence frames
    pump.until(lambda: "bob joined" in pane_text(alice, ROOM), what="the join notice")
    alice.main.select("bob")
    alice.main.entry.insert(0, "Hi Bob! Lunch at noon?")
    alice.main.entry.focus_force()
    pump.once()
    alice.main.entry.event_generate("<Return>")  # Enter sends
    assert alice.main.entry.get() == ""
    pump.until(lambda: "Lunch at noon?" in pane_text(bob, "alice"), what="the message at bob")
    pump.until(lambda: "Lunch at noon?" in pane_text(alice, "bob"), what="alice's own message after chat_ack")
    assert bob.state.conversations["alice"].unread == 1
    assert bob.main.tree.set(bob.main.iid("alice"), "unread") == "1"
    bob.main.select("alice")
    bob.main.entry.insert(0, "Sure, see you there.")
    bob.main.send_button.invoke()
    pump.until(lambda: "see you there" in pane_text(alice, "bob"), what="bob's reply at alice")
    bob.main.select(ROOM)
    bob.main.entry.insert(0, "Hello everyone 👋")
    bob.main.send_button.invoke()
    pump.until(lambda: "Hello everyone" in pane_text(alice, ROOM), what="a room message")
    alice.main.select("bob")
    pump.until(lambda: alice.main.current == "bob")
    alice.main.lift()
    screenshot(alice.main, "main-window", also=DOCS / "screenshot-main.png")


def test_history_on_open_and_older_pages_on_scroll_up(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    carol = helper_client(server, tmp_path, "carol")
    for i in range(120):
        carol.chat(ROOM, f"history line {i:03d}")
    app = make_app(server)
    log_in(app, pump, "dave")
    pump.until(lambda: "history line 119" in pane_text(app, ROOM), what="history of the room on open")
    pane = app.main.pane(ROOM)
    assert "history line 000" not in pane.content()
    while "history line 000" not in pane.content():
        before = pane.lines
        pane.text.yview_moveto(0.0)  # the user scrolls to the top
        pump.until(lambda before=before: pane.lines > before, what="an older page after scrolling up")
    text = pane.content()
    assert text.index("history line 000") < text.index("history line 060") < text.index("history line 119")
    assert not app.state.conversations[ROOM].has_more
    screenshot(app.main, "main-window-history")


def test_offline_message_appears_after_login(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    helper_client(server, tmp_path, "erin").close()
    frank = helper_client(server, tmp_path, "frank")
    frank.chat("erin", "Left you a note while you were out")
    app = make_app(server)
    log_in(app, pump, "erin", register=False)
    pump.until(lambda: "frank" in app.state.conversations and app.state.conversations["frank"].unread,
               what="the offline message")
    line = app.state.conversations["frank"].lines[-1]
    assert line.offline and line.text == "Left you a note while you were out"
    app.main.select("frank")
    pump.until(lambda: "while you were offline" in pane_text(app, "frank"))


def test_send_a_file_and_see_it_arrive_intact(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    source = tmp_path / "holiday-photos.zip"
    source.write_bytes(os.urandom(300_000))
    target = tmp_path / "received" / "photos.zip"
    target.parent.mkdir()
    alice = make_app(server, choose_open=lambda parent: str(source))
    bob = make_app(server, choose_save=lambda parent, name: str(target))
    log_in(alice, pump, "alice")
    log_in(bob, pump, "bob")
    alice.main.select("bob")
    assert str(alice.main.file_button.cget("state")) == "normal"
    alice.main.file_button.invoke()
    pump.until(lambda: any(w.finished for w in alice.transfer_windows.values()), what="the upload to finish")
    upload = next(iter(alice.transfer_windows.values()))
    assert upload.ok, upload.detail.cget("text")
    upload.lift()
    screenshot(upload, "upload-progress")
    pump.until(lambda: bob.offer_dialogs, what="the offer at bob")
    dialog = next(iter(bob.offer_dialogs.values()))
    dialog.lift()
    screenshot(dialog, "file-offer-dialog")
    dialog.accept_button.invoke()
    pump.until(lambda: any(w.finished for w in bob.transfer_windows.values()), what="the download to finish")
    download = next(iter(bob.transfer_windows.values()))
    assert download.ok, download.detail.cget("text")
    download.lift()
    screenshot(download, "download-progress")
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()
    assert "SHA-256 verified" in pane_text(bob, "alice")
    pump.until(lambda: "bob received the file" in pane_text(alice, "bob"), what="delivery notice at alice")


def test_server_without_chat_or_files_hides_them(make_server, make_app, pump):
    server = make_server(plugins=["auth"])
    app = make_app(server)
    log_in(app, pump, "gina")
    assert str(app.main.entry.cget("state")) == "disabled"
    assert "no chat plugin" in app.main.entry.get()  # says why, instead of an empty white field
    assert app.main.entry.tk.call("ttk::style", "map", "TEntry", "-fieldbackground")  # greyed when disabled
    assert not app.main.send_button.winfo_ismapped() and not app.main.file_button.winfo_ismapped()
    assert "server without: chat, filexfer" in str(app.main.status.cget("text"))
    assert not app.state.conversations[ROOM].loaded  # no get_history sent to a server without chat
    screenshot(app.main, "main-window-auth-only")


def test_plaintext_server_shows_a_warning(make_server, make_app, pump):
    server = make_server(plugins=ALL_PLUGINS, env={"CHATCORE_TLS": "false"})
    app = make_app(server)
    log_in(app, pump, "hank")
    assert "NOT ENCRYPTED" in str(app.main.status.cget("text"))


def test_reconnects_with_backoff_and_restores_state(make_server, make_app, pump, tmp_path):
    first = make_server(plugins=ALL_PLUGINS)
    port = first.address[1]
    app = make_app(first)
    app.connector.backoff = Backoff(base=0.05, cap=0.5)
    log_in(app, pump, "ivy")
    app.main.entry.insert(0, "before the restart")
    app.main.send_button.invoke()
    pump.until(lambda: "before the restart" in pane_text(app, ROOM))
    first.stop()
    pump.until(lambda: "reconnecting" in str(app.main.status.cget("text")), what="the disconnect to show")
    second = make_server(plugins=ALL_PLUGINS, env={"SERVER_PORT": str(port)})
    pump.until(lambda: str(app.main.status.cget("text")).startswith("Connected"), timeout=30, what="reconnected")
    app.main.entry.insert(0, "after the restart")
    app.main.send_button.invoke()
    pump.until(lambda: "after the restart" in pane_text(app, ROOM), what="chat after reconnecting")
    assert pane_text(app, ROOM).count("before the restart") == 1  # history merged, not duplicated
    with helper_client(second, tmp_path, "ivy", register=False) as again:
        assert [m["message"] for m in again.history(ROOM).messages][-2:] == ["before the restart", "after the restart"]
