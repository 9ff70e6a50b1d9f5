"""The status page on the metrics port: the numbers an operator glances at, as JSON and as a
small self-contained HTML page (no scripts, no external assets) that reloads itself.

Users online, connections, sessions, the message rate (messages relayed per second over the
last minute, from the chat plugin's ``chatcore_chat_messages_total``, sampled server-side),
uptime, readiness, and each plugin with its state (active, or disabled by its fault budget
and why).
"""

from __future__ import annotations

import collections
import html
import threading
from typing import TYPE_CHECKING, Any, Optional

from chatcore import __version__

if TYPE_CHECKING:
    from chatcore.metrics import Metrics
    from chatcore.server import ChatServer

MESSAGES_COUNTER = "chatcore_chat_messages"  # the counter whose rate the page shows (the chat plugin's)
RATE_WINDOW = 60.0  # seconds the message rate is averaged over
REFRESH = 5  # seconds between the page's reloads
HEADERS = (("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
           ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
           ("X-Content-Type-Options", "nosniff"))


class RateMeter:
    """A counter's rate over the last ``window`` seconds, from (time, total) samples: the
    oldest sample kept is the last one at or before the window's start."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._samples: collections.deque[tuple[float, float]] = collections.deque()

    def sample(self, now: float, total: Optional[float]) -> None:
        """Add a sample; ``None`` (nobody counts) forgets them all."""
        with self._lock:
            if total is None:
                self._samples.clear()
                return
            if self._samples and now < self._samples[-1][0]:
                return  # taken by another thread before the newest one: it adds nothing
            self._samples.append((now, total))
            while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
                self._samples.popleft()

    def rate(self) -> Optional[float]:
        """Per second between the oldest and newest samples; None with fewer than two samples
        (or no counter), 0.0 if no time passed between them."""
        with self._lock:
            if len(self._samples) < 2:
                return None
            (first, first_total), (last, last_total) = self._samples[0], self._samples[-1]
        return (last_total - first_total) / (last - first) if last > first else 0.0


def snapshot(server: "ChatServer", metrics: "Metrics", rate: RateMeter, not_ready: str) -> dict[str, Any]:
    """The page's numbers (``/status.json``): read from live state now."""
    sessions = server.sessions.all()
    tls = sum(1 for s in sessions if s.tls)
    plugins = [{"name": name, "state": "disabled" if server.budget.is_disabled(name) else "active",
                "reason": server.budget.disabled.get(name, "")} for name in server.plugin_names]
    per_second = rate.rate()
    return {
        "server": "chatcore", "version": __version__,
        "uptime_seconds": round(metrics.uptime(), 1),
        "ready": not not_ready, "not_ready_reason": not_ready,
        "users_online": len(server.sessions.online_users()),
        "connections": {"total": len(sessions), "plain": len(sessions) - tls, "tls": tls},
        "sessions_logged_in": len(server.sessions.authenticated()),
        "messages_relayed": metrics.total(MESSAGES_COUNTER),
        "message_rate": None if per_second is None else round(per_second, 2),
        "plugins": plugins,
    }


def duration(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``7m 12s`` or ``42s``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:760px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h1 small{color:#667;font-weight:normal;font-size:14px}
.state{display:inline-block;padding:2px 10px;border-radius:10px;font-size:13px}
h1+.state{margin:6px 0 18px}
.ok{background:#d9f2e1;color:#14622e}.bad{background:#fbdcdc;color:#8a1c1c}
.tiles{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin-bottom:20px}
.tile{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px #0002}
.tile b{display:block;font-size:26px}.tile span{color:#667;font-size:13px}
table{width:100%;border-collapse:collapse;background:#fff;border-radius:8px;box-shadow:0 1px 2px #0002}
th,td{text-align:left;padding:8px 14px;border-bottom:1px solid #eceef2}th{font-size:13px;color:#667}
footer{margin-top:16px;color:#889;font-size:12px}a{color:#3358c4}
"""


def render(status: dict[str, Any]) -> str:
    """The HTML page for a ``snapshot``; every value is escaped."""
    def tile(ident: str, value: Any, label: str) -> str:
        return f'<div class="tile"><b id="{ident}">{html.escape(str(value))}</b><span>{html.escape(label)}</span></div>'

    rate = status["message_rate"]
    connections = status["connections"]
    rows = "".join(
        f'<tr><td>{html.escape(p["name"])}</td><td><span class="state {"ok" if p["state"] == "active" else "bad"}" '
        f'id="plugin-{html.escape(p["name"])}">{html.escape(p["state"])}</span></td><td>{html.escape(p["reason"])}</td></tr>'
        for p in status["plugins"]) or '<tr><td colspan="3">no plugins</td></tr>'
    ready = ('<span class="state ok" id="ready">ready</span>' if status["ready"] else
             f'<span class="state bad" id="ready">not ready: {html.escape(status["not_ready_reason"])}</span>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH}">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>chatcore status</title><style>{STYLE}</style></head>
<body><main>
<h1>chatcore <small>{html.escape(status["version"])}</small></h1>
{ready}
<div class="tiles">
{tile("users-online", status["users_online"], "users online")}
{tile("connections", connections["total"], f"connections ({connections['plain']} plain, {connections['tls']} TLS)")}
{tile("message-rate", "n/a" if rate is None else f"{rate:g}", "messages/s, last minute")}
{tile("uptime", duration(status["uptime_seconds"]), "uptime")}
</div>
<table><tr><th>plugin</th><th>state</th><th>why</th></tr>{rows}</table>
<footer>Refreshes every {REFRESH} s &middot; <a href="/metrics">metrics</a> &middot;
<a href="/status.json">JSON</a> &middot; <a href="/readyz">readiness</a></footer>
</main></body></html>
"""
