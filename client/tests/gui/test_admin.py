"""Moderation in the real windows: an announcement shows as a banner for everyone; the Admin
menu appears only for a server administrator (granted live by the operator here), and its
window announces and disconnects a user through the server."""

from __future__ import annotations

import os
import subprocess
import sys

from chatcore.testing import PASSWORD

from .conftest import ALL_PLUGINS, log_in, pane_text, screenshot


def operator(server, *args: str) -> subprocess.CompletedProcess:
    """The operator's ``chatcore`` command on the server's data directory."""
    env = {**os.environ, "STORAGE_DIR": str(server.data_dir), "LOG_LEVEL": "WARNING",
           "CHATCORE_PLUGINS": ",".join(ALL_PLUGINS)}
    done = subprocess.run([sys.executable, "-m", "chatcore", *args], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def test_an_administrator_gets_the_admin_menu_and_uses_it(make_server, make_app, pump, connect):
    server = make_server(plugins=ALL_PLUGINS)
    bob = connect(server)
    bob.login("bob", PASSWORD, register=True)
    app = make_app(server)
    log_in(app, pump, "alice")
    assert not app.main.admin_button.winfo_ismapped()  # not an administrator yet

    operator(server, "user", "admin", "alice")
    pump.until(lambda: app.main.admin_button.winfo_ismapped(), what="the Admin menu")
    app.main.admin_menu.invoke(0)  # Announce to everyone…
    pump.until(lambda: app.admin_window is not None and app.admin_window.winfo_ismapped(), what="the Admin window")
    app.admin_window.announcement.set("Coffee in the kitchen.")
    app.admin_window.announce_button.invoke()
    event = bob.expect("announcement", timeout=10)
    assert event["text"] == "Coffee in the kitchen." and event["by"] == "alice"
    pump.until(lambda: app.main.banner.winfo_ismapped(), what="the announcement banner")
    assert str(app.main.banner_text.cget("text")) == "Announcement from alice: Coffee in the kitchen."
    pump.until(lambda: "reached 2 session(s)" in pane_text(app, ""), what="the server's answer")
    screenshot(app.main, "main-admin-announcement")

    app.admin_window.username.set("bob")
    app.admin_window.reason.set("testing")
    app.admin_window.kick_button.invoke()
    final = [m for m in bob.expect_closed(timeout=10) if m.get("type") == "session_ended"][-1]
    assert final["code"] == "kicked" and final["reason"] == "The administrator alice disconnected you: testing"

    operator(server, "user", "admin", "alice", "--revoke")
    pump.until(lambda: not app.main.admin_button.winfo_ismapped(), what="the Admin menu gone")
    assert app.admin_window is None or not app.admin_window.winfo_exists()


def test_everyone_sees_the_operators_announcement_and_no_admin_menu(make_server, make_app, pump):
    server = make_server(plugins=ALL_PLUGINS)
    app = make_app(server)
    log_in(app, pump, "carol")
    operator(server, "announce", "Maintenance at 18:00 UTC.")
    pump.until(lambda: app.main.banner.winfo_ismapped(), what="the announcement banner")
    assert str(app.main.banner_text.cget("text")) == "Announcement from the server: Maintenance at 18:00 UTC."
    assert "Announcement from the server: Maintenance at 18:00 UTC." in pane_text(app, "")
    assert not app.main.admin_button.winfo_ismapped()
