"""A session the server ends on purpose (``session_ended``, here because the password was changed
on another device): the real windows go back to Login, with the reason, and the client does not
log in again with the old credentials by itself."""

from __future__ import annotations

from typing import Any

import chatcore
from chatcore.users import PASSWORD_CHANGED, REASONS
from chatcore_client.backoff import Backoff

from .conftest import ALL_PLUGINS, PASSWORD, log_in, screenshot

NEW_PASSWORD = "the new password"


class LoginCounter:
    """Counts logins, to show that none happens behind the user's back."""

    def __init__(self) -> None:
        self.logins = 0

    @chatcore.hookimpl
    def chat_authenticated(self, session: Any, first: bool) -> None:
        self.logins += 1


def scheduled_reconnects(app) -> list[str]:
    """The Tk ``after`` jobs that would call the app's reconnect."""
    tk = app.root.tk
    scripts = [str(tk.call("after", "info", job)) for job in tk.splitlist(tk.call("after", "info"))]
    return [script for script in scripts if "_reconnect" in script]


def test_a_password_changed_on_another_device_goes_back_to_login_and_stays_there(make_server, make_app, pump,
                                                                                   connect):
    probe = LoginCounter()
    server = make_server(plugins=ALL_PLUGINS, extra=[("probe", probe)])
    app = make_app(server)
    app.connector.backoff = Backoff(base=0.01, cap=0.01)  # a reconnect, if one were scheduled, would be due at once
    log_in(app, pump, "june")
    assert probe.logins == 1
    old = app.client.connection
    other_device = connect(server)
    other_device.login("june", PASSWORD)
    assert other_device.request(command="change_password", old=PASSWORD, new=NEW_PASSWORD)["response"] == "ok"

    pump.until(lambda: app.main is None and app.login.winfo_ismapped(), what="the Login window again",
               state=lambda: app.login.status.cget("text"))
    assert str(app.login.status.cget("text")) == REASONS[PASSWORD_CHANGED]
    host, port = server.address
    assert (app.login.host.get(), app.login.port.get(), app.login.username.get(), app.login.password.get()) == \
        (host, str(port), "june", "")
    assert str(app.login.login_button.cget("state")) == "normal"
    handled: list[bool] = []
    app.post(lambda: handled.append(True))  # queued after the old connection's end: handled after it
    pump.until(lambda: handled, what="the events queued before")
    assert old.closed and app.client is None and app.ctx.credentials is None
    assert not app.connector.reconnecting and scheduled_reconnects(app) == []
    assert probe.logins == 2  # the other device's
    app.login.lift()
    screenshot(app.login, "login-window-session-ended")

    app.login.password.set(NEW_PASSWORD)  # logging in again is the user's doing, with the password typed anew
    app.login.login_button.invoke()
    pump.until(lambda: app.main is not None, what="the main window after logging in again",
               state=lambda: app.login.status.cget("text"))
    assert probe.logins == 3 and app.state.user == "june"
    assert str(app.main.status.cget("text")).startswith("Connected")
