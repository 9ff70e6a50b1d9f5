"""The status page on the metrics port: its JSON, its HTML in a real headless Chromium (Debian's
``chromium``; ``./dev test`` installs it), and the server-side message rate."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from chatcore import hookimpl
from chatcore.status_page import RateMeter, duration, render
from chatcore.testing import http_get

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "screenshot-status.png"
METRICS = {"CHATCORE_METRICS_ADDRESS": "127.0.0.1:0"}
ACK = ("chat_ack", "error")


class Broken:
    """A plugin whose one command always fails: the fault budget disables it."""

    @hookimpl
    def chat_register_commands(self, register):
        register("break", self.fail, auth=False)

    def fail(self, session, message):
        raise RuntimeError("on purpose")


@pytest.fixture
def busy_server(make_server, login_as, connect):
    """A server with two users online, a third connection, five messages relayed and a plugin
    disabled by its fault budget."""
    server = make_server(plugins=["auth", "chat"], extra=[("broken", Broken())],
                         env={**METRICS, "CHATCORE_FAULT_LIMIT": "1"})
    alice, bob = login_as(server, "alice"), login_as(server, "bob")
    for n in range(5):
        assert alice.request(command="chat", peer="bob" if n % 2 else "", message=f"hi {n}", reply=ACK)["type"] == "chat_ack"
    bystander = connect(server)
    for _ in range(2):
        assert bystander.request(command="break")["code"] == "internal_error"
    bob.sync()
    return server


def test_status_json_has_the_numbers(busy_server):
    status, headers, body = http_get(busy_server, "/status.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    page = json.loads(body)
    assert page["users_online"] == 2 and page["sessions_logged_in"] == 2
    assert page["connections"] == {"total": 3, "plain": 3, "tls": 0}
    assert page["messages_relayed"] == 5
    assert page["message_rate"] > 0  # five since the start, less than a minute ago
    assert page["ready"] is True and page["uptime_seconds"] >= 0
    plugins = {p["name"]: p for p in page["plugins"]}
    assert plugins["auth"]["state"] == plugins["chat"]["state"] == "active"
    assert plugins["broken"]["state"] == "disabled" and "2 failures" in plugins["broken"]["reason"]


def test_without_the_chat_plugin_the_rate_is_not_available(make_server):
    page = json.loads(http_get(make_server(plugins=["auth"], env=METRICS), "/status.json")[2])
    assert page["messages_relayed"] is None and page["message_rate"] is None
    assert 'id="message-rate">n/a<' in render(page)


def test_the_rate_is_over_the_last_minute():
    meter = RateMeter(window=60)
    assert meter.rate() is None
    meter.sample(0, 0)
    assert meter.rate() is None  # one sample: no rate yet
    meter.sample(30, 30)
    assert meter.rate() == 1.0
    meter.sample(60, 90)
    meter.sample(90, 120)  # the oldest kept is the last at or before 90 - 60
    assert meter.rate() == 1.5
    meter.sample(89, 100)  # older than the newest: ignored
    assert meter.rate() == 1.5
    meter.sample(200, 120)
    assert meter.rate() == 0.0
    meter.sample(201, None)  # nobody counts any more
    assert meter.rate() is None


def test_the_page_escapes_what_it_shows_and_loads_nothing_from_elsewhere(busy_server):
    status, headers, body = http_get(busy_server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert not re.search(rb"<script|src=|<link", body)
    hostile = json.loads(http_get(busy_server, "/status.json")[2])
    hostile["plugins"] = [{"name": "<img src=x>", "state": "disabled", "reason": "</td><script>alert(1)</script>"}]
    html = render(hostile)
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert duration(59) == "59s" and duration(61) == "1m 1s" and duration(3 * 3600 + 120) == "3h 2m"
    assert duration(2 * 86400 + 7200) == "2d 2h"


def chromium() -> str:
    """The headless browser's path; the test skips, saying why, when it is not installed."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian's chromium is not installed (./dev test installs it: apt-get install -y chromium)")
    return path


def browse(url: str, profile: Path, *args: str) -> str:
    command = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
               f"--user-data-dir={profile}", "--hide-scrollbars", *args, url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_status_page_in_headless_chromium(busy_server, tmp_path):
    host, port = busy_server.metrics.address
    url = f"http://{host}:{port}/"
    dom = browse(url, tmp_path / "profile", "--dump-dom")
    assert '<b id="users-online">2</b>' in dom
    assert '<b id="connections">3</b>' in dom and "3 plain, 0 TLS" in dom
    rate = re.search(r'<b id="message-rate">([0-9.]+)</b>', dom)
    assert rate and float(rate.group(1)) > 0, dom
    assert re.search(r'<b id="uptime">\d+s</b>', dom)
    assert 'id="plugin-chat">active<' in dom and 'id="plugin-broken">disabled<' in dom
    assert '<span class="state ok" id="ready">ready</span>' in dom
    assert '<meta http-equiv="refresh" content="5">' in dom  # it reloads itself
    shot = tmp_path / "status.png"
    browse(url, tmp_path / "profile", f"--screenshot={shot}", "--window-size=820,440")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)  # the README shows it
