"""Cancel buttons of the transfer windows, and keep-alive pings across idle timeouts, with real
windows under X against real servers."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from chatcore_client.api import ChatClient
from chatcore_client.pinning import PinStore
from chatcore_client.upload import CHUNK_SIZE

from .conftest import ALL_PLUGINS, PASSWORD, helper_client, log_in, pane_text, screenshot


def gate_chunks(app, at: int) -> tuple[threading.Event, threading.Event]:
    """Hold the upload thread just before it sends the chunk at offset ``at`` until ``release``
    is set (the test's only seam: the bytes still go over the real connection)."""
    reached, release = threading.Event(), threading.Event()
    send = app.ctx.transfers.send

    def gated(message: dict[str, Any]) -> None:
        if message.get("command") == "file_chunk" and message.get("offset") == at:
            reached.set()
            release.wait(30)
        send(message)
    app.ctx.transfers.send = gated
    return reached, release


def test_cancel_an_upload_mid_transfer(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    helper_client(server, tmp_path, "bob").close()
    source = tmp_path / "big-video.mp4"
    source.write_bytes(os.urandom(40 * CHUNK_SIZE))
    alice = make_app(server, choose_open=lambda parent: str(source))
    log_in(alice, pump, "alice")
    reached, release = gate_chunks(alice, 10 * CHUNK_SIZE)
    alice.main.select("bob")
    alice.main.file_button.invoke()
    (tid, window), = alice.transfer_windows.items()
    pump.until(reached.is_set, what="ten chunks sent")
    pump.until(lambda: window.bar.cget("value") >= 10 * CHUNK_SIZE, what="the progress shown")
    assert str(window.button.cget("text")) == "Cancel"
    window.lift()
    screenshot(window, "upload-progress-running")
    window.button.invoke()
    assert not window.winfo_exists() and tid not in alice.transfer_windows
    release.set()
    pump.until(lambda: "The server dropped big-video.mp4" in pane_text(alice, "bob"), what="file_cancel_result",
               state=lambda: pane_text(alice, "bob"))
    assert "You cancelled sending big-video.mp4" in pane_text(alice, "bob")
    assert "is on the server" not in pane_text(alice, "bob")
    with helper_client(server, tmp_path, "alice", register=False) as again:
        ready = again.request("file_upload", ["file_upload_ready"], peer="bob", filename="again.mp4",
                              size=source.stat().st_size, sha256=_sha(source))
        assert ready["offset"] == 0  # the cancelled upload's bytes are gone from the server
    with helper_client(server, tmp_path, "bob", register=False) as bob:
        assert bob.request("file_list", ["file_list"])["files"] == []


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cancel_a_download_mid_transfer(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=ALL_PLUGINS)
    helper_client(server, tmp_path, "bob").close()
    source = tmp_path / "archive.tar"
    source.write_bytes(os.urandom(40 * CHUNK_SIZE))
    with helper_client(server, tmp_path, "alice") as alice:
        file_id = alice.upload("bob", source)
    folder = tmp_path / "downloads"
    folder.mkdir()
    target = folder / "archive.tar"
    bob = make_app(server, choose_save=lambda parent, name: str(target))
    shown: list[Any] = []
    original = bob.transfer_progress

    def progress_then_cancel(tid: str, progress: Any) -> None:
        original(tid, progress)
        if not shown:  # the user presses Cancel after the first chunk is on screen
            shown.append(progress)
            bob.transfer_windows[tid].button.invoke()
    bob.transfer_progress = progress_then_cancel
    log_in(bob, pump, "bob", register=False)
    pump.until(lambda: bob.offer_dialogs, what="the offer")
    next(iter(bob.offer_dialogs.values())).accept_button.invoke()
    pump.until(lambda: shown, what="the first chunk")
    assert not bob.transfer_windows  # the window closed
    assert not target.exists() and not list(folder.iterdir())  # no partial file left behind
    # The rest of the stream and its file_data_end may all be handled in the tick of the cancel, or
    # later: either way they are dropped until the server says the stream stopped.
    pump.until(lambda: file_id not in bob.ctx.transfers.stopped, what="file_download_cancel_result")
    pongs = bob.keepalive.pongs
    bob.client.send({"command": "ping"})  # the server has handled everything bob sent before
    pump.until(lambda: bob.keepalive.pongs > pongs, what="a pong")
    assert not target.exists() and not list(folder.iterdir())
    assert len(list((server.data_dir / "filexfer" / "spool").iterdir())) == 1  # no file_received was sent
    assert "You stopped receiving archive.tar" in pane_text(bob, "alice")
    assert "SHA-256 verified" not in pane_text(bob, "alice")
    assert str(bob.main.status.cget("text")).startswith("Connected")  # no error shown

    tid = bob.files.accept(file_id, target)  # asked for again, it arrives whole
    pump.until(lambda: bob.transfer_windows[tid].finished, what="the second download")
    assert bob.transfer_windows[tid].ok and target.read_bytes() == source.read_bytes()


def test_keepalive_pings_outlive_several_idle_timeouts(make_server, make_app, pump, tmp_path):
    server = make_server(plugins=ALL_PLUGINS, env={"CHATCORE_IDLE_TIMEOUT": "1"})
    app = make_app(server)
    log_in(app, pump, "kim")
    connection = app.client.connection
    pins = PinStore(tmp_path / "idle.json")
    for period in range(3):  # a silent control client measures idle timeouts with the server's own clock
        control = ChatClient.connect(*server.address, pins=pins, ask=lambda *_: True)
        if period == 0:
            control.register("idler", PASSWORD)
        control.login("idler", PASSWORD)
        pongs = app.keepalive.pongs
        pump.until(lambda control=control: control.connection.closed, what=f"the idle control client closed ({period + 1})")
        assert control.expect("error")["code"] == "idle_timeout"  # closed for silence, not anything else
        assert app.keepalive.pongs > pongs  # the app pinged meanwhile
        control.close()
    assert app.client is not None and app.client.connection is connection and not connection.closed
    assert not app.connector.reconnecting and str(app.main.status.cget("text")).startswith("Connected")
