"""The desktop client against a server list (a cluster's nodes), with real servers and windows:
a dead address first is skipped; when the node it is on stops, it logs in on the next live one
with its device token and catch-up cursor; a node with another certificate is refused; a bad
list is refused with the reason before anything connects.

The nodes here are single servers: the one that takes over opens the same data directory
(accounts, tokens, messages, certificate) once the first has stopped, at its own address, which
is what a cluster's shared database gives every node."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from chatcore_client.backoff import Backoff
from chatcore_client.pinning import server_key
from chatcore_client.servers import list_key

from .conftest import ALL_PLUGINS, PASSWORD, helper_client, log_in, pane_text, screenshot
from .test_tokens import LoginRequests


def dead_address() -> tuple[str, int]:
    """A loopback port nothing listens on (its socket is closed again): connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return "127.0.0.1", int(probe.getsockname()[1])


def entries(*addresses: tuple[str, int]) -> str:
    """A Server field naming ``addresses`` in this order."""
    return ",".join(server_key(*address) for address in addresses)


def status(app: Any) -> str:
    return str(app.main.status.cget("text")) if app.main is not None else str(app.login.status.cget("text"))


def test_a_dead_address_first_is_skipped_and_the_status_names_the_live_server(make_server, make_app, pump,
                                                                               tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    dead = dead_address()
    app = make_app(server, servers=entries(dead, server.address))
    assert app.servers == (dead, server.address) and app.login.host.get() == entries(dead, server.address)
    app.login.remember.set(True)
    app.login.username.set("ann")
    app.login.password.set(PASSWORD)
    app.login.register_button.invoke()
    dialog = pump.until(lambda: app.trust_dialog, what="the trust question")
    assert f"every server of the list ({entries(dead, server.address).replace(',', ', ')})" in dialog.cluster.cget("text")
    screenshot(dialog, "trust-dialog-cluster")
    dialog.trust_button.invoke()
    pump.until(lambda: app.main is not None, what="the main window", state=lambda: status(app))
    pump.until(lambda: status(app).startswith("Connected"), what="the connected status", state=lambda: status(app))
    assert status(app).startswith(f"Connected to {server_key(*server.address)} (server 2 of 2) · encrypted")
    key = list_key([dead, server.address])
    assert app.pins.get("", 0, key) is not None  # the certificate is pinned for the list, not one node
    assert app.tokens.get(key) is not None and app.tokens.get(server_key(*server.address)) is None
    screenshot(app.main, "main-window-cluster")


def test_when_its_node_stops_the_client_logs_in_on_the_next_live_one_with_its_token(make_server, make_app, pump,
                                                                                   tmp_path):
    probe = LoginRequests()
    spare = make_server(plugins=ALL_PLUGINS, extra=[("probe", probe)])
    spare_address = spare.address  # the second node's address, free again until it takes over
    spare.stop()
    first = make_server(plugins=ALL_PLUGINS, extra=[("probe", probe)])  # the same data directory
    dead = dead_address()
    helper_client(first, tmp_path, "mona").close()
    helper_client(first, tmp_path, "nils").close()
    app = make_app(first, servers=entries(first.address, dead, spare_address))
    log_in(app, pump, "mona", register=False)
    with helper_client(first, tmp_path, "nils", register=False) as nils:
        nils.chat("mona", "seen before")
    pump.until(lambda: "seen before" in pane_text(app, "nils"), what="the first message")
    app.connector.backoff = Backoff(base=1.0, cap=1.0)
    first.stop()
    pump.until(lambda: "reconnecting" in status(app), what="the disconnect to show", state=lambda: status(app))
    second = make_server(plugins=ALL_PLUGINS, extra=[("probe", probe)],
                         env={"SERVER_PORT": str(spare_address[1])})  # takes over the data directory
    with helper_client(second, tmp_path, "nils", register=False) as nils:
        for n in range(3):
            nils.chat("mona", f"missed {n}")
    pump.until(lambda: status(app).startswith("Connected"), timeout=30, what="reconnected", state=lambda: status(app))
    assert status(app).startswith(f"Connected to {server_key(*spare_address)} (server 3 of 3)")
    assert app.trust_dialog is None  # the same certificate as the first node: no question
    pump.until(lambda: "missed 2" in pane_text(app, "nils"), what="the missed messages")
    text = pane_text(app, "nils")
    assert [text.count(f"missed {n}") for n in range(3)] == [1, 1, 1] and text.count("seen before") == 1
    last = probe.requests[-1]
    assert last["username"] == "mona" and "since" in last and last.get("device") is None  # the token, cursors


def test_a_node_with_another_certificate_is_refused_and_the_warning_stays_in_the_conversation(
        make_server, make_app, pump, tmp_path: Path):
    probe = LoginRequests()
    first = make_server(plugins=ALL_PLUGINS, data_dir=tmp_path / "a")
    first_address = first.address
    impostor = make_server(plugins=ALL_PLUGINS, extra=[("probe", probe)], data_dir=tmp_path / "c")
    helper_client(first, tmp_path, "olga").close()
    helper_client(impostor, tmp_path, "olga").close()  # even the account exists there
    pump.until(lambda: len(probe.requests) == 1, what="the helper's login seen by the impostor's plugins")
    probe.requests.clear()
    app = make_app(first, servers=entries(first.address, impostor.address))
    log_in(app, pump, "olga", register=False)
    app.connector.backoff = Backoff(base=1.0, cap=1.0)
    first.stop()
    pump.until(lambda: "CERTIFICATE HAS CHANGED" in status(app), timeout=30, what="the refusal",
               state=lambda: status(app))
    key = list_key([first_address, impostor.address])
    pump.until(lambda: f"remove the entry for {key}" in pane_text(app, app.state.current),
               what="the warning in the conversation")
    assert app.client is None and app.trust_dialog is None and probe.requests == []  # never logged in there
    assert server_key(*impostor.address) in status(app)


def test_a_bad_list_is_refused_with_the_reason_before_anything_connects(make_server, make_app, pump):
    server = make_server(plugins=ALL_PLUGINS)
    app = make_app(server, servers=f"{server_key(*server.address)},,b.example")
    pump.until(lambda: app.login.winfo_ismapped(), what="the login window")
    assert status(app) == "SERVER_IP: entry 2 of the server list is empty (a stray comma?)."
    app.login.username.set("pat")
    app.login.password.set(PASSWORD)
    cases = [
        (f"{server_key(*server.address)},:8888", "':8888': the server's address (before the port) is missing."),
        ("a.example:8888,b.example:123456", "'b.example:123456': the port must be between 1 and 65535, not 123456."),
        (",".join(f"n{i}.example" for i in range(17)), "17 servers listed: at most 16 are tried "
                                                      "(CHATCORE_CLIENT_MAX_SERVERS)."),
    ]
    for text, reason in cases:
        app.login.host.set(text)
        app.login.login_button.invoke()
        pump.once()
        assert status(app) == f"Server: {reason}" and app.client is None and app.trust_dialog is None
        assert str(app.login.login_button.cget("state")) == "normal"
