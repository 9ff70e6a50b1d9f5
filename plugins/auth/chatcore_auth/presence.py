"""Presence: ``peer_joined`` / ``peer_left`` that always match who is online.

Sessions of one user may log in and out concurrently (and the core unbinds a disconnecting
session before telling plugins), so instead of trusting each call's first/last flag, every
change reconciles under a per-user lock: it compares what was last announced with who is
online now and sends an event only when they differ. Events for a user therefore alternate
strictly, and the last one sent matches the final state.

Every login tells everyone else online, so N logins cost N² frames. Events are therefore
queued (in order, under the user's lock) and one announcer thread writes each batch as one
concatenated send per online session: 10,000 clients logging in at once cost the server
a few writes per client instead of one per event.

A session whose ``hello`` asked for ``"presence": "batched"`` gets one ``presence``
{``joined``, ``left``} frame per batch instead, carrying each user's net change, so a
login storm costs it a few frames rather than one per user.

Changes gather for ``delay`` seconds, or longer while writing a batch takes long: the next
batch waits nine times the CPU the last one took (at most ``MAX_GATHER``), so announcing
takes at most a tenth of a core however many sessions are online. A storm of logins is then
told in a few large batches; at ordinary rates a batch takes far less than ``delay``.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional

from chatcore import protocol
from chatcore_auth import NAME
from chatcore_auth.names import name_key

if TYPE_CHECKING:
    from chatcore.session import Session, SessionRegistry

log = logging.getLogger(__name__)

_STRIPES = 64
PRESENCE_KEY = "presence"  # in session.state["auth"]: the mode the session asked for in hello
EACH, BATCHED = "each", "batched"
MODES = (EACH, BATCHED)
# Names per ``presence`` frame: 500 × (32 characters + quotes and comma) ≈ 17.5 KB of JSON,
# well under the 49 KB a frame can carry.
NAMES_PER_FRAME = 500
SHARE = 10  # announcing may take one part in SHARE of the announcer's time
MAX_GATHER = 1.0  # seconds a batch gathers at most, however long the last one took to write


@dataclass(frozen=True)
class Change:
    """One queued announcement: ``user`` (display name) came online or went offline."""

    key: str
    user: str
    online: bool
    frame: bytes  # the legacy event, encoded once
    at: float = 0.0  # monotonic time it was queued: a session logged in after it is not told


def set_mode(session: "Session", mode: str) -> None:
    """Remember how ``session`` wants presence delivered (from its ``hello``)."""
    session.state.setdefault(NAME, {})[PRESENCE_KEY] = mode


LOGGED_IN_AT = "logged_in_at"  # session.state[NAME] key: monotonic time of its login


def logged_in_at(session: "Session") -> float:
    """When ``session`` logged in (monotonic), as the accounts plugin noted it. A session bound
    whose login has not reached the plugin yet counts as logging in now, after every queued
    change: the user list it will be sent already holds them."""
    return float(session.state.get(NAME, {}).get(LOGGED_IN_AT, math.inf))


def is_batched(session: "Session") -> bool:
    return session.state.get(NAME, {}).get(PRESENCE_KEY) == BATCHED


def batched_frames(joined: list[str], left: list[str]) -> Iterator[bytes]:
    """``presence`` frames carrying ``joined`` and ``left``, at most NAMES_PER_FRAME names each."""
    while joined or left:
        take_joined = joined[:NAMES_PER_FRAME]
        take_left = left[:NAMES_PER_FRAME - len(take_joined)]
        joined, left = joined[len(take_joined):], left[len(take_left):]
        yield protocol.encode({"type": "presence", "joined": take_joined, "left": take_left})


def gather_seconds(delay: float, last_cost: float) -> float:
    """How long the next batch gathers: ``delay``, or (SHARE - 1) times the CPU seconds the
    last batch cost to write if that is longer, up to MAX_GATHER (never less than ``delay``)."""
    return max(delay, min(MAX_GATHER, last_cost * (SHARE - 1)))


class Presence:
    """Announces users coming online and going offline to everyone else online."""

    def __init__(self, sessions: "SessionRegistry", delay: float = 0.0) -> None:
        self._sessions = sessions
        self._delay = delay  # seconds changes gather before a batch goes out
        self._last_cost = 0.0  # CPU seconds the last batch took to write
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        self._announced: set[str] = set()
        self._announced_lock = threading.Lock()
        self._pending: list[Change] = []  # in order
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._announce_loop, name="auth-presence", daemon=True)
        self._thread.start()

    def lock_for(self, key: str) -> threading.Lock:
        """The lock serialising changes of the user whose name key is ``key``."""
        return self._locks[zlib.crc32(key.encode()) % _STRIPES]

    def update(self, username: str) -> None:
        """Announce ``username``'s current state if it differs from the last announcement."""
        key = name_key(username)
        with self.lock_for(key):
            online = self._sessions.is_online(username)
            with self._announced_lock:
                if online == (key in self._announced):
                    return
                if online:
                    self._announced.add(key)
                else:
                    self._announced.discard(key)
            self.queue(key, username, online)

    def queue(self, key: str, username: str, online: bool, at: Optional[float] = None) -> None:
        """Queue the announcement that ``username`` came online or went offline, for every
        local session (their own user's excepted). ``at``: when the change was seen, if earlier
        than now (sessions that logged in after it are not told: their user list has it)."""
        frame = protocol.encode({"type": "peer_joined" if online else "peer_left", "peer": username})
        with self._wake:  # times taken under the lock: the queue stays in time order
            now = time.monotonic()
            when = now if at is None else min(at, now)
            if self._pending and when < self._pending[-1].at:
                when = self._pending[-1].at
            self._pending.append(Change(key, username, online, frame, when))
            if len(self._pending) == 1:  # the announcer waits for a first change only; later
                self._wake.notify()  # ones would wake it while it gathers, once per login

    def online_users(self) -> list[str]:
        """Display names of the users online, sorted case-insensitively (on one node: its sessions')."""
        return self._sessions.online_users()

    def started(self) -> None:
        """The server accepts connections (and in a cluster, hears the other nodes)."""

    def _announce_loop(self) -> None:
        """Send queued events until ``stop``; what is queued when it is called still goes out."""
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending or self._stopping)
                if self._delay and not self._stopping:  # let a burst of logins gather into one batch
                    self._wake.wait_for(lambda: self._stopping, gather_seconds(self._delay, self._last_cost))
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            started = time.thread_time()
            try:
                self._announce(batch)
            except Exception:  # one bad batch must not end presence for the server's lifetime
                log.exception("presence: announcing %d changes failed", len(batch))
            self._last_cost = time.thread_time() - started

    def _announce(self, batch: list[Change]) -> None:
        """One write per online session: every event in the batch except those about its own
        user and those queued before it logged in (its login's user list already holds them;
        with changes gathered for ``delay``, a storm of logins would otherwise tell each client
        of the logins just before its own)."""
        times = [change.at for change in batch]
        tails: dict[int, tuple[list[Change], dict[str, Change], set[str]]] = {}  # start -> its part
        batched_for: dict[tuple[int, str], bytes] = {}  # (start, own user key or "") -> frames
        for session in self._sessions.authenticated():
            user = session.user
            if not user:
                continue
            start = bisect.bisect_left(times, logged_in_at(session))
            if start not in tails:
                tail = batch[start:]
                tails[start] = (tail, _net_changes(tail), {change.key for change in tail})
            tail, net, about = tails[start]
            if not tail:
                continue
            own = name_key(user)
            if is_batched(session):
                mine = own if own in net else ""
                if (start, mine) not in batched_for:
                    changes = [change for key, change in net.items() if key != mine]
                    batched_for[(start, mine)] = b"".join(batched_frames(
                        [c.user for c in changes if c.online], [c.user for c in changes if not c.online]))
                frames = batched_for[(start, mine)]
            else:
                frames = b"".join(c.frame for c in tail if c.key != own) if own in about else \
                    b"".join(c.frame for c in tail)
            if frames:
                session.send_frame(frames)

    def stop(self) -> None:
        """Send what is queued, then end the announcer thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()


def _net_changes(batch: list[Change]) -> dict[str, Change]:
    """Each user's last change, for users whose state differs at the end of the batch from
    before it (a user's events alternate, so an even count is no change)."""
    count: dict[str, int] = {}
    last: dict[str, Change] = {}
    for change in batch:
        count[change.key] = count.get(change.key, 0) + 1
        last[change.key] = change
    return {key: change for key, change in last.items() if count[key] % 2}
