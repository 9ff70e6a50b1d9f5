"""The client survives its own failures and its user's impatience: a failing widget callback is
shown rather than lost, and quitting while the certificate question is pending leaves no thread
waiting for an answer that will never come."""

from __future__ import annotations

import threading
import time
from tkinter import ttk

from .conftest import ALL_PLUGINS, PASSWORD

CONNECT_THREAD = "chatcore-client-connect"


def connect_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == CONNECT_THREAD]


def test_quitting_while_the_trust_question_waits_to_be_shown_ends_the_connect_thread(make_server, make_app):
    server = make_server(plugins=ALL_PLUGINS)
    app = make_app(server)
    app.login.username.set("kim")
    app.login.password.set(PASSWORD)
    app.login.login_button.invoke()  # the connect thread starts; nothing pumps the window now
    deadline = time.monotonic() + 10
    while app.events.empty():  # the question was posted to the Tk thread, which is not running it
        assert time.monotonic() < deadline, "the connect thread never asked about the certificate"
        threading.Event().wait(0.01)
    [thread] = connect_threads()
    app.quit()
    thread.join(5)
    assert not thread.is_alive(), "the connect thread is still waiting for the trust dialog"


def test_a_failing_widget_callback_is_shown_and_the_window_goes_on(make_server, make_app, pump):
    server = make_server(plugins=ALL_PLUGINS)
    app = make_app(server)
    pump.until(lambda: app.login.winfo_ismapped(), what="the login window")

    def broken() -> None:
        raise RuntimeError("a widget bug")

    button = ttk.Button(app.login, text="broken", command=broken)
    button.invoke()  # Tk runs the command and hands its exception to report_callback_exception
    assert "Internal error: a widget bug" in str(app.login.status.cget("text"))
    app.login.username.set("kim")
    assert app.login.username.get() == "kim"  # the window still works
