"""GUI test kit: an X display (Xvfb started here when DISPLAY is unset), Tk pumping with a
deadline, app fixtures against real servers, and PNG screenshots of windows."""

from __future__ import annotations

import gc
import os
import select
import shutil
import subprocess
import time
import tkinter as tk
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from chatcore.testing import PASSWORD
from chatcore_client.api import ChatClient
from chatcore_client.app import App
from chatcore_client.config import ClientSettings
from chatcore_client.pinning import PinStore

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DOCS = Path(__file__).resolve().parents[3] / "docs"
SCREEN = "1280x800x24"  # the smallest screen the client must be readable on
XVFB_START_TIMEOUT = 30.0


def _start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """Start Xvfb on a free display it picks itself (-displayfd) and wait for its socket."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("no DISPLAY and no Xvfb installed (./dev test installs it)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(write_fd), "-screen", "0", SCREEN, "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write_fd)
    deadline = time.monotonic() + XVFB_START_TIMEOUT
    number = b""
    try:
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(read_fd, 16) if ready else b""
            if not chunk:
                proc.kill()
                raise RuntimeError(f"Xvfb did not report a display: {proc.communicate()[1].decode(errors='replace')}")
            number += chunk
    finally:
        os.close(read_fd)
    display = number.decode().strip()
    socket_path = Path(f"/tmp/.X11-unix/X{display}")
    while not socket_path.exists():  # -displayfd writes once the server listens; the socket confirms it
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"Xvfb :{display} socket {socket_path} never appeared")
        select.select([], [], [], 0.01)
    return proc, f":{display}"


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    """The X display for the GUI tests: the user's, or a private Xvfb at 1280×800."""
    existing = os.environ.get("DISPLAY")
    if existing:
        yield existing
        return
    proc, name = _start_xvfb()
    os.environ["DISPLAY"] = name
    try:
        yield name
    finally:
        del os.environ["DISPLAY"]
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Pump:
    """Runs every live Tk root's event loop until a condition holds or a deadline passes."""

    def __init__(self) -> None:
        self.roots: list[tk.Tk] = []

    def once(self) -> None:
        for root in list(self.roots):
            try:
                root.update()
            except tk.TclError:
                self.roots.remove(root)  # destroyed

    def until(self, condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition",
              state: Optional[Callable[[], Any]] = None) -> Any:
        """Pump until ``condition()`` is truthy; returns its value, fails the test after ``timeout``
        (saying ``what`` it waited for and, if given, what ``state()`` shows then)."""
        deadline = time.monotonic() + timeout
        while True:
            self.once()
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                seen = f"; state: {state()!r}" if state is not None else ""
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{seen}")
            select.select([], [], [], 0.005)  # yield the CPU to the server threads between polls


@pytest.fixture
def pump(display: str) -> Pump:
    return Pump()


@pytest.fixture
def make_app(display: str, pump: Pump, tmp_path: Path) -> Iterator[Callable[..., App]]:
    """``make_app(server)``: a client App (own Tk root) pointed at ``server`` (or at the server list
    ``servers``, as SERVER_IP would give it), trusting on first use through its real dialog; quit
    at teardown."""
    apps: list[App] = []

    def factory(server: Any, servers: Optional[str] = None, **kwargs: Any) -> App:
        host, port = server.address
        settings = ClientSettings(host=servers or host, port=port, known_servers=tmp_path / f"pins{len(apps)}.json",
                                  keyring="off")  # never the developer's own keyring (a test passes tokens=)
        app = App(settings, root=tk.Tk(), pins=PinStore(settings.known_servers), **kwargs)
        apps.append(app)
        pump.roots.append(app.root)
        return app

    yield factory
    for app in apps:
        if not app.closing:
            app.quit()
    # Tk objects live in reference cycles; collect them here, on the Tk thread: if the garbage
    # collector ran later in a server thread, Tcl would abort the process (Tcl_AsyncDelete).
    apps.clear()
    pump.roots.clear()
    gc.collect()


def screenshot(window: tk.Misc, name: str, also: Optional[Path] = None) -> Path:
    """Save a PNG of one window (its on-screen area) into tests/artifacts/ (and ``also``)."""
    from PIL import ImageGrab

    window.update()
    x, y = window.winfo_rootx(), window.winfo_rooty()
    box = (x, y, x + window.winfo_width(), y + window.winfo_height())
    image = ImageGrab.grab(bbox=box, xdisplay=os.environ["DISPLAY"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    image.save(path)
    if also is not None:
        also.parent.mkdir(parents=True, exist_ok=True)
        image.save(also)
    return path


ALL_PLUGINS = ["auth", "chat", "filexfer"]  # what the GUI tests run against


def log_in(app, pump, user: str, register: bool = True, shoot_trust: bool = False) -> None:
    """Fill in the Login window and press Register (which logs in) or Login; trust the certificate."""
    app.login.username.set(user)
    app.login.password.set(PASSWORD)
    (app.login.register_button if register else app.login.login_button).invoke()
    pump.until(lambda: app.trust_dialog is not None or app.main is not None, what="trust dialog or main window")
    if app.trust_dialog is not None:
        if shoot_trust:
            app.trust_dialog.lift()
            screenshot(app.trust_dialog, "trust-dialog")
        app.trust_dialog.trust_button.invoke()
    pump.until(lambda: app.main is not None, what=f"{user}'s main window",
               state=lambda: app.login.status.cget("text"))


def pane_text(app, key: str) -> str:
    """What the main window shows in conversation ``key`` (empty when it is not open)."""
    return app.main.pane(key).content() if app.main is not None and key in app.main.panes else ""


def helper_client(server, tmp_path: Path, user: str, register: bool = True) -> ChatClient:
    """A headless client logged in as ``user`` (registered first), trusting the server's certificate."""
    client = ChatClient.connect(*server.address, pins=PinStore(tmp_path / f"api-{user}.json"), ask=lambda *_: True)
    if register:
        client.register(user, PASSWORD)
    client.login(user, PASSWORD)
    return client
