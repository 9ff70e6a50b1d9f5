"""The desktop client on device tokens: the password is typed once; "Remember me" keeps only the
token (the keyring when there is one, else a private file), so the next start logs in by itself; a reconnect after a server restart
logs in on the token, naming the newest message seen, and what was missed shows once; a message
edited (and one deleted) while disconnected shows so after the reconnect, by the server's change
replay (the conversation was never reloaded)."""

from __future__ import annotations

import json
import stat
from typing import Any

import chatcore
from chatcore_client.backoff import Backoff
from chatcore_client.keychain import account
from chatcore_client.pinning import server_key
from chatcore_client.tokens import FILENAME as TOKENS_FILE
from chatcore_client.tokens import TokenStore

from .conftest import ALL_PLUGINS, PASSWORD, helper_client, log_in, pane_text, screenshot


class LoginRequests:
    """Records the login requests plugins see (credentials already removed by auth)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    @chatcore.hookimpl
    def chat_authenticated(self, session: Any, first: bool, request: dict[str, Any]) -> None:
        self.requests.append(dict(request))


def test_remember_me_keeps_only_the_token_and_the_next_start_logs_in_by_itself(make_server, make_app, pump,
                                                                                 tmp_path):
    probe = LoginRequests()
    server = make_server(plugins=ALL_PLUGINS, extra=[("probe", probe)])
    helper_client(server, tmp_path, "lena").close()
    first = make_app(server)
    first.login.remember.set(True)
    log_in(first, pump, "lena", register=False)
    assert first.ctx.credentials is not None and first.ctx.credentials.password is None  # the password is gone
    saved = first.tokens.path
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert PASSWORD not in saved.read_text() and json.loads(saved.read_text())
    first.quit()
    again = make_app(server, tokens=first.tokens)  # the next start, same config directory
    pump.until(lambda: again.trust_dialog is not None, what="the new pin file's trust question")
    again.trust_dialog.trust_button.invoke()  # (each test app has its own pin file)
    pump.until(lambda: again.main is not None, what="the main window without typing anything",
               state=lambda: again.login.status.cget("text"))
    assert again.login.password.get() == "" and again.state.user == "lena"
    assert probe.requests[-1].get("device") is None  # the last login was on the token, not a password


def test_a_reconnect_after_a_restart_logs_in_on_the_token_and_catches_up_once(make_server, make_app, pump,
                                                                               tmp_path):
    probe = LoginRequests()
    first = make_server(plugins=ALL_PLUGINS, extra=[("probe", probe)])
    port = first.address[1]
    helper_client(first, tmp_path, "mona").close()
    app = make_app(first)
    log_in(app, pump, "mona", register=False)
    with helper_client(first, tmp_path, "nils") as nils:
        nils.chat("mona", "seen before")
    pump.until(lambda: "seen before" in pane_text(app, "nils"), what="the first message")
    app.connector.backoff = Backoff(base=1.0, cap=1.0)  # time for the messages below to arrive first
    first.stop()
    pump.until(lambda: "reconnecting" in str(app.main.status.cget("text")), what="the disconnect to show")
    second = make_server(plugins=ALL_PLUGINS, extra=[("probe", probe)], env={"SERVER_PORT": str(port)})
    with helper_client(second, tmp_path, "nils", register=False) as nils:
        for n in range(3):
            nils.chat("mona", f"missed {n}")
    pump.until(lambda: str(app.main.status.cget("text")).startswith("Connected"), timeout=30, what="reconnected")
    pump.until(lambda: "missed 2" in pane_text(app, "nils"), what="the missed messages")
    text = pane_text(app, "nils")
    assert [text.count(f"missed {n}") for n in range(3)] == [1, 1, 1] and text.count("seen before") == 1
    assert "since" in probe.requests[-1]  # logged in on the token, naming what it had seen


def test_the_devices_window_lists_devices_and_revokes_one(make_server, make_app, pump, tmp_path, connect):
    server = make_server(plugins=ALL_PLUGINS)
    helper_client(server, tmp_path, "olga").close()
    phone = connect(server)
    assert phone.request(command="login", username="olga", password=PASSWORD, device="phone")["token"]
    app = make_app(server)
    log_in(app, pump, "olga", register=False)
    app.main.devices_button.invoke()
    window = pump.until(lambda: app.devices_window if app.devices_window and app.devices_window.names() else None,
                        what="the devices listed")
    assert sorted(window.names()) == sorted(["phone", app.ctx.device])
    screenshot(window, "devices-window")
    window.tree.selection_set("phone")
    pump.once()
    window.revoke_button.invoke()
    pump.until(lambda: window.names() == [app.ctx.device], what="the list without the phone")
    finals = [m for m in phone.expect_closed() if m.get("type") == "session_ended"]
    assert finals and finals[-1]["code"] == "device_revoked"
    assert app.main is not None  # this device goes on


def test_a_remembered_token_revoked_meanwhile_brings_back_the_login_window_with_why(make_server, make_app, pump,
                                                                                    tmp_path, connect):
    server = make_server(plugins=ALL_PLUGINS)
    helper_client(server, tmp_path, "pia").close()
    first = make_app(server)
    first.login.remember.set(True)
    log_in(first, pump, "pia", register=False)
    device = first.ctx.device
    first.quit()
    other = connect(server)
    other.login("pia", PASSWORD)
    assert other.request(command="device_revoke", device=device)["revoked"] is True
    again = make_app(server, tokens=first.tokens)
    pump.until(lambda: again.trust_dialog is not None, what="the new pin file's trust question")
    again.trust_dialog.trust_button.invoke()
    pump.until(lambda: "signed out" in str(again.login.status.cget("text")), what="the reason on the Login window",
               state=lambda: again.login.status.cget("text"))
    assert again.main is None and again.tokens.get(server_key(*server.address)) is None  # the dead token is forgotten
    assert str(again.login.login_button.cget("state")) == "normal"


def test_remember_me_with_a_keyring_keeps_the_token_there_and_the_next_start_logs_in_on_it(
        make_server, make_app, pump, tmp_path, file_keychain):
    probe = LoginRequests()
    server = make_server(plugins=ALL_PLUGINS, extra=[("probe", probe)])
    helper_client(server, tmp_path, "rita").close()
    logins = tmp_path / "config" / TOKENS_FILE
    first = make_app(server, tokens=TokenStore(logins, file_keychain()))
    first.login.remember.set(True)
    log_in(first, pump, "rita", register=False)
    token = first.ctx.credentials.token
    assert token and token not in logins.read_text() and PASSWORD not in logins.read_text()
    assert json.loads(logins.read_text()) == {server_key(*server.address): {
        "username": "rita", "device": first.ctx.device, "keyring": True}}
    assert file_keychain().get(account(server_key(*server.address), "rita")) == token
    first.quit()
    again = make_app(server, tokens=TokenStore(logins, file_keychain()))  # a restart: new objects, same files
    pump.until(lambda: again.trust_dialog is not None, what="the new pin file's trust question")
    again.trust_dialog.trust_button.invoke()
    pump.until(lambda: again.main is not None, what="the main window without typing anything",
               state=lambda: again.login.status.cget("text"))
    assert again.login.password.get() == "" and again.state.user == "rita"
    assert probe.requests[-1].get("device") is None and again.ctx.credentials.token == token  # on the keyring's token


def test_a_message_edited_while_disconnected_shows_edited_after_the_token_reconnect(make_server, make_app, pump,
                                                                                    tmp_path):
    probe = LoginRequests()
    first = make_server(plugins=ALL_PLUGINS, extra=[("probe", probe)])
    port = first.address[1]
    helper_client(first, tmp_path, "pia").close()
    app = make_app(first)
    log_in(app, pump, "pia", register=False)
    with helper_client(first, tmp_path, "quinn") as quinn:
        kept = quinn.chat("pia", "meet at the station")["id"]
        gone = quinn.chat("pia", "bring the map")["id"]
    pump.until(lambda: "bring the map" in pane_text(app, "quinn"), what="quinn's messages")
    assert app.state.newest_change_id is not None  # the room's first page gave the cursor
    app.connector.backoff = Backoff(base=1.0, cap=1.0)  # time for the changes below to be made first
    first.stop()
    pump.until(lambda: "reconnecting" in str(app.main.status.cget("text")), what="the disconnect to show")
    second = make_server(plugins=ALL_PLUGINS, extra=[("probe", probe)], env={"SERVER_PORT": str(port)})
    with helper_client(second, tmp_path, "quinn", register=False) as quinn:
        quinn.request("message_edit", ["message_edit_result"], peer="pia", id=kept, message="meet at the harbour")
        quinn.request("message_delete", ["message_delete_result"], peer="pia", id=gone)
    pump.until(lambda: "meet at the harbour" in pane_text(app, "quinn"), timeout=30,
               what="the edit made while away", state=lambda: pane_text(app, "quinn"))
    text = pane_text(app, "quinn")
    assert "(edited)" in text and "meet at the station" not in text and "bring the map" not in text
    assert app.state.conversation("quinn").find(gone).deleted
    assert "changes_since" in probe.requests[-1] and not app.state.replaying
    assert not app.state.conversation("quinn").loaded  # never opened, never reloaded: the replay repaired it
