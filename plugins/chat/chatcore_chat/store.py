"""SQLite storage of chat messages: schema, row model and the queries the plugin runs.

Data access only: no sessions, no pluggy. One connection (the writer's) changes the
database; readers borrow connections from a small pool, which WAL lets run alongside the
writer; a ``Checkpointer`` thread copies the WAL back so the writer never has to. Every
message is one row; nothing ever rewrites the whole file.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Optional, Sequence

from chatcore import protocol
from chatcore_chat import changelog, features
from chatcore_chat.faults import Throttled
from chatcore_chat.quotas import DAY_MS, SENDER_DAYS, count_sender_days  # noqa: F401  (DAY_MS re-exported)
from chatcore_chat.readers import ReaderPool  # noqa: F401  (re-exported: rooms and callers use store.ReaderPool)

log = logging.getLogger(__name__)

FILENAME = "messages.sqlite3"
GLOBAL_ROOM = ""  # conversation key and recipient of broadcast messages
SCHEMA_VERSION = 4  # 2: quotas' counters; 3: edits, redactions, reactions, search; 4: the change log
SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after retention
    conv        TEXT NOT NULL,     -- '' = global room, else both casefolded names, sorted, joined by a line feed
    sender      TEXT NOT NULL,     -- display name of the sender
    recipient   TEXT NOT NULL,     -- display name of the recipient, '' for a broadcast
    ts          INTEGER NOT NULL,  -- server time, milliseconds since the Unix epoch (UTC)
    body        TEXT NOT NULL,
    pending_for TEXT               -- casefolded recipient while not yet delivered, else NULL
);
CREATE INDEX IF NOT EXISTS messages_conv ON messages (conv, id);
CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts);
CREATE INDEX IF NOT EXISTS messages_pending ON messages (pending_for, id) WHERE pending_for IS NOT NULL;
"""
# Schema 2. What waits for each recipient, kept exact by triggers on every path that changes
# pending_for (insert, claim, restore, retention), and what each sender stored on the current
# UTC day, kept by a trigger on insert: always in the transaction that changed the messages.
COUNTERS = SENDER_DAYS + """
CREATE TABLE IF NOT EXISTS pending_totals (
    recipient TEXT PRIMARY KEY,  -- casefolded name, as in messages.pending_for
    messages  INTEGER NOT NULL,  -- undelivered messages waiting for them
    bytes     INTEGER NOT NULL   -- UTF-8 bytes of those messages' texts
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS pending_on_insert AFTER INSERT ON messages WHEN NEW.pending_for IS NOT NULL
BEGIN
    INSERT INTO pending_totals VALUES (NEW.pending_for, 1, length(CAST(NEW.body AS BLOB)))
        ON CONFLICT (recipient) DO UPDATE SET messages = messages + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS pending_on_update AFTER UPDATE OF pending_for ON messages
    WHEN OLD.pending_for IS NOT NEW.pending_for
BEGIN
    UPDATE pending_totals SET messages = messages - 1, bytes = bytes - length(CAST(OLD.body AS BLOB))
        WHERE recipient = OLD.pending_for;
    INSERT INTO pending_totals SELECT NEW.pending_for, 1, length(CAST(NEW.body AS BLOB)) WHERE NEW.pending_for IS NOT NULL
        ON CONFLICT (recipient) DO UPDATE SET messages = messages + 1, bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS pending_on_delete AFTER DELETE ON messages WHEN OLD.pending_for IS NOT NULL
BEGIN
    UPDATE pending_totals SET messages = messages - 1, bytes = bytes - length(CAST(OLD.body AS BLOB))
        WHERE recipient = OLD.pending_for;
END;
"""
CATCH_UP_ROUNDS = 8  # passive checkpoints in a row, each shorter, to catch up with writers
HOLD_FRAMES = 256  # new WAL frames few enough (~1 MiB) to copy with writes held (see Checkpointer)
WAL_SIZE_LIMIT = 64 << 20  # bytes of WAL file kept when it starts over (see Checkpointer)
# Schema 3: an edit of a message still waiting for its recipient changes what waits.
PENDING_EDIT = """
CREATE TRIGGER IF NOT EXISTS pending_on_edit AFTER UPDATE OF body ON messages
    WHEN NEW.pending_for IS NOT NULL AND OLD.pending_for IS NEW.pending_for
BEGIN
    UPDATE pending_totals SET bytes = bytes - length(CAST(OLD.body AS BLOB)) + length(CAST(NEW.body AS BLOB))
        WHERE recipient = NEW.pending_for;
END;
"""
COLUMNS = "id, conv, sender, recipient, ts, body, edited, deleted"


@dataclass(slots=True)
class Message:
    """One stored message as the plugin hands it around; nothing changes one once made (not
    ``frozen``: a frozen dataclass's ``__init__`` costs 4.5 µs against 1.6, once per message)."""

    id: int
    conv: str
    sender: str
    to: str
    ts_ms: int
    text: str
    edited_ms: Optional[int] = None  # when last edited (schema 3)
    deleted: bool = False  # redacted: ``text`` is ""
    seq: int = 0  # its number in its conversation, gapless (the PostgreSQL store; 0 in SQLite)

    ts: str = field(init=False, repr=False, compare=False)  # ISO 8601 UTC with milliseconds, made once

    def __post_init__(self) -> None:
        self.ts = protocol.timestamp(self.ts_ms)

    @property
    def broadcast(self) -> bool:
        return self.to == GLOBAL_ROOM


def conversation_key(a: str, b: str) -> str:
    """The conversation of two users, the same whichever of them is named first."""
    first, second = sorted((a.casefold(), b.casefold()))
    return f"{first}\n{second}"


def _row(row: Sequence[object]) -> Message:
    id_, conv, sender, recipient, ts, body, edited, deleted = row
    return Message(int(id_), str(conv), str(sender), str(recipient), int(ts), str(body),  # type: ignore[call-overload]
                   None if edited is None else int(edited), bool(deleted))  # type: ignore[call-overload]


def connect(path: Path, synchronous: str = "NORMAL", autocheckpoint: bool = True) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with explicit transactions; usable from any one thread at a time.

    ``autocheckpoint=False`` leaves checkpoints to a ``Checkpointer`` thread.
    """
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous.upper() == 'FULL' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA secure_delete=ON")  # an erased text (a redaction, retention) leaves no bytes behind
    if not autocheckpoint:
        conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")  # a WAL that starts over is cut to this
    return conn


class Checkpointer(threading.Thread):
    """Copies the WAL into the database every ``interval`` seconds, off the writer thread.

    With SQLite's automatic checkpoints the writer itself stops to write back and sync the
    database every 1,000 pages; the load harness saw that as a 16 ms p99 at 1,000 msg/s
    (3 ms on tmpfs). Passive checkpoints block neither the writer nor readers.

    But the WAL only starts over when a checkpoint caught up with *every* frame, which one
    passive round rarely does while messages keep coming: under sustained load the file grew
    by 15 MB/s (395 MB in 25 s of the slow-consumer benchmark). So a long WAL gets passive
    rounds in a row, each copying what came during the last; once what came is under
    ``hold_frames`` (a millisecond of copying), the last round runs with writes held, so it
    copies every frame and the next commit starts the WAL over (see ``checkpoint``). Holding
    writers for a RESTART every time instead cost ~15 ms per second at 1,000 msg/s (p99
    7 ms); TRUNCATE, which also cuts the file, cost more. ``journal_size_limit`` on the
    writer caps the file size kept after a start-over. Rounds every 0.25 s rather than every
    second copy a quarter as much each, and the commits beside one slow down less: at 1,000
    msg/s the p99 was 1.0–1.2 ms against 1.1–1.8, at 2,500 2.3–3.3 against 2.3–3.4 (median
    2.5 against 3.1), six alternating runs each.
    """

    def __init__(self, path: Path, interval: float = 0.25, restart_frames: int = 4096,
                 hold_writes: Callable[[], ContextManager[Any]] = nullcontext, hold_frames: int = HOLD_FRAMES) -> None:
        super().__init__(name="chat-checkpoint", daemon=True)
        self._path, self._interval = path, interval
        self._restart_frames, self._must_restart_frames = restart_frames, 4 * restart_frames
        self._hold_frames = hold_frames
        self._hold_writes = hold_writes
        self._stopping = threading.Event()
        self._failing = Throttled(log, "chat history checkpoints fail", "chat history checkpoints work again")
        self.restarts = 0  # RESTART checkpoints run (diagnostics, tests)

    def run(self) -> None:
        conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False, timeout=30.0)
        try:
            while not self._stopping.wait(self._interval):
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> Optional[str]:
        """One round; returns how a long WAL was dealt with (None: it was short).

        Passive first (alongside writers). Past ``restart_frames``, more passive rounds: each
        copies only what arrived during the last, so they shrink until one sees no new frame,
        and then the next commit starts the WAL over by itself ("caught up"). A round that saw
        at most ``hold_frames`` new ones leaves the last few to a round with writes held, which
        copies them all unless a reader still needs them ("held"; 1.3 ms median at 2,500 msg/s,
        the running batch's end included). Writers that keep ahead (a saturated server) get held only past
        4 × restart_frames, for a RESTART of what is left ("restarted"; 1–15 ms measured here).
        """
        try:
            frames, _ = self._passive(conn)
            if self._failing.active:
                self._failing.over()
            if frames < self._restart_frames:
                return None
            for _ in range(CATCH_UP_ROUNDS):
                before, (frames, _) = frames, self._passive(conn)
                if frames <= before:  # nothing new during that round (or it already started over)
                    return "caught up"
                if frames - before <= self._hold_frames:
                    with self._hold_writes():
                        frames, copied = self._passive(conn)
                    if copied >= frames:
                        return "held"
                    break  # a reader keeps the rest: the restart below waits for it if need be
            if frames < self._must_restart_frames:
                return "behind"
            started = time.perf_counter()
            with self._hold_writes():
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            self.restarts += 1
            log.debug("chat history WAL restarted at %d frames; writers held %.1f ms", frames,
                     1000 * (time.perf_counter() - started))
            return "restarted"
        except sqlite3.Error as exc:  # busy, I/O trouble or a full disk: the next round tries again
            self._failing.note(1, exc)  # once a minute at most: a full disk fails every round
            return None

    @staticmethod
    def _passive(conn: sqlite3.Connection) -> tuple[int, int]:
        """Copy what the WAL holds now without blocking anyone; returns its length and how much
        of it is copied now, in frames."""
        _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames), int(copied)

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join()


def create_schema(conn: sqlite3.Connection, now_ms: Optional[int] = None, fts: bool = True) -> None:
    """Create the tables if missing, bring an older schema up to date in one transaction, and
    refuse a database written by a newer schema. ``now_ms`` says which UTC day an upgraded
    database's daily counts are for (default: now). Schema 3 builds the search index from the
    messages already stored; schema 4 adds the change log (``changelog.py``); ``fts=False``
    leaves the index out (the benchmark's write path without it)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"chat database schema {version} is newer than this plugin understands ({SCHEMA_VERSION})")
    if version == SCHEMA_VERSION:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts_insert'").fetchone():
            conn.execute("BEGIN IMMEDIATE")  # an index kept by per-insert triggers: bulk from now on
            features.defer_indexing(conn)
            conn.execute("COMMIT")
        return
    try:
        conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + COUNTERS)
        if version < 2:
            _count_existing(conn, int(time.time() * 1000) if now_ms is None else now_ms)
        if version < 3:
            features.add_features(conn, fts)
            features.run_script(conn, PENDING_EDIT)
        else:  # schema 3: an index kept by per-insert triggers is indexed in bulk from now on
            features.defer_indexing(conn)
        features.run_script(conn, changelog.SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _count_existing(conn: sqlite3.Connection, now_ms: int) -> None:
    """Fill the schema-2 counters from the messages already stored (a schema-1 database)."""
    conn.execute("DELETE FROM pending_totals")
    conn.execute("INSERT INTO pending_totals SELECT pending_for, COUNT(*), SUM(length(CAST(body AS BLOB))) "
                 "FROM messages WHERE pending_for IS NOT NULL GROUP BY pending_for")
    count_sender_days(conn, now_ms)


# -- writes (the writer thread's connection, inside its transaction) -------------------------

def insert_message(conn: sqlite3.Connection, conv: str, sender: str, to: str, ts_ms: int, text: str,
                   pending_for: Optional[str]) -> Message:
    """Append one message; its id is the next in the server-wide sequence."""
    cursor = conn.execute(
        "INSERT INTO messages (conv, sender, recipient, ts, body, pending_for) VALUES (?, ?, ?, ?, ?, ?)",
        (conv, sender, to, ts_ms, text, pending_for),
    )
    return Message(int(cursor.lastrowid or 0), conv, sender, to, ts_ms, text)


def conversation_message(conn: sqlite3.Connection, conv: str, message_id: int) -> Optional[Message]:
    """Message ``message_id`` if it belongs to ``conv``, else None."""
    row = conn.execute(f"SELECT {COLUMNS} FROM messages WHERE id = ? AND conv = ?", (message_id, conv)).fetchone()
    return _row(row) if row else None


def _admitted(cursor: sqlite3.Cursor, admit: Callable[[Message], bool]) -> list[Message]:
    """The rows of ``cursor`` as messages while ``admit`` takes them (the first always)."""
    taken: list[Message] = []
    try:
        for row in cursor:
            message = _row(row)
            if not admit(message) and taken:
                break
            taken.append(message)
    finally:
        cursor.close()
    return taken


def take_pending(conn: sqlite3.Connection, user_key: str, limit: int,
                 admit: Callable[[Message], bool] = lambda message: True) -> list[Message]:
    """The oldest undelivered messages for ``user_key``, in id order: at most ``limit``, and
    only while ``admit`` takes the next one (the first is always taken); marked delivered in
    the same transaction."""
    taken = _admitted(conn.execute(f"SELECT {COLUMNS} FROM messages WHERE pending_for = ? ORDER BY id LIMIT ?",
                                   (user_key, limit)), admit)
    if taken:
        conn.execute("UPDATE messages SET pending_for = NULL WHERE pending_for = ? AND id <= ?",
                     (user_key, taken[-1].id))
    return taken


def take_since(conn: sqlite3.Connection, user_key: str, after_id: int, limit: int,
               admit: Callable[[Message], bool] = lambda message: True) -> list[Message]:
    """What ``user_key`` may see with an id above ``after_id`` (the room, and every private
    conversation they are part of), in id order: at most ``limit``, and only while ``admit``
    takes the next (the first always). Undelivered messages for the user up to the last one
    taken are marked delivered in the same transaction: the catch-up delivered them."""
    taken = _admitted(conn.execute(
        f"SELECT {COLUMNS} FROM messages WHERE id > :after AND deleted = 0 AND (conv = ''"
        " OR substr(conv, 1, length(:user) + 1) = :user || char(10)"
        " OR substr(conv, -length(:user) - 1) = char(10) || :user) ORDER BY id LIMIT :limit",
        {"after": after_id, "user": user_key, "limit": limit}), admit)
    if taken:
        conn.execute("UPDATE messages SET pending_for = NULL WHERE pending_for = ? AND id <= ?",
                     (user_key, taken[-1].id))
    return taken


def pending_totals(conn: sqlite3.Connection, user_key: str) -> tuple[int, int]:
    """How many messages, and how many bytes of text, wait for ``user_key``."""
    row = conn.execute("SELECT messages, bytes FROM pending_totals WHERE recipient = ?", (user_key,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def restore_pending(conn: sqlite3.Connection, user_key: str, ids: Sequence[int]) -> None:
    """Mark messages undelivered again (every send of them failed), for the next login."""
    conn.executemany("UPDATE messages SET pending_for = ? WHERE id = ?", [(user_key, i) for i in ids])


def delete_ids(conn: sqlite3.Connection, ids: Sequence[int]) -> int:
    """Delete the given messages; returns how many went."""
    if not ids:
        return 0
    cursor = conn.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])
    return cursor.rowcount


def delete_user(conn: sqlite3.Connection, user_key: str) -> int:
    """Delete what a removed user leaves: every private conversation they are part of (both
    sides', their pending messages included), their broadcasts, their reactions and their counters. Returns
    how many messages went. A full scan: removing an account is rare."""
    cursor = conn.execute(
        "DELETE FROM messages WHERE (conv <> '' AND (substr(conv, 1, length(?1) + 1) = ?1 || char(10)"
        " OR substr(conv, -length(?1) - 1) = char(10) || ?1)) OR (conv = '' AND lower(sender) = ?1)",
        (user_key,))
    conn.execute("DELETE FROM pending_totals WHERE recipient = ?", (user_key,))
    conn.execute("DELETE FROM sender_days WHERE sender = ?", (user_key,))
    conn.execute("DELETE FROM reactions WHERE user_key = ?", (user_key,))  # the name's next owner reacted to nothing
    return cursor.rowcount


# -- reads (any connection) ------------------------------------------------------------------

def page(conn: sqlite3.Connection, conv: str, before: Optional[int], limit: int) -> list[Message]:
    """Up to ``limit`` messages of ``conv`` older than ``before`` (all when None), newest first."""
    if before is None:
        rows = conn.execute(f"SELECT {COLUMNS} FROM messages WHERE conv = ? ORDER BY id DESC LIMIT ?",
                            (conv, limit)).fetchall()
    else:
        rows = conn.execute(f"SELECT {COLUMNS} FROM messages WHERE conv = ? AND id < ? ORDER BY id DESC LIMIT ?",
                            (conv, before, limit)).fetchall()
    return [_row(row) for row in rows]


def older_than(conn: sqlite3.Connection, cutoff_ms: int, limit: int) -> list[int]:
    """Ids of up to ``limit`` messages stamped before ``cutoff_ms`` (retention by age)."""
    rows = conn.execute("SELECT id FROM messages WHERE ts < ? ORDER BY ts LIMIT ?", (cutoff_ms, limit)).fetchall()
    return [int(row[0]) for row in rows]


def over_count(conn: sqlite3.Connection, keep: int) -> list[str]:
    """Conversations holding more than ``keep`` messages (retention by count)."""
    rows = conn.execute("SELECT conv FROM messages GROUP BY conv HAVING COUNT(*) > ?", (keep,)).fetchall()
    return [str(row[0]) for row in rows]


def beyond_newest(conn: sqlite3.Connection, conv: str, keep: int, limit: int) -> list[int]:
    """Ids of up to ``limit`` messages of ``conv`` older than its ``keep`` newest."""
    rows = conn.execute(
        "SELECT id FROM messages WHERE conv = ? ORDER BY id DESC LIMIT ? OFFSET ?", (conv, limit, keep)
    ).fetchall()
    return [int(row[0]) for row in rows]


def count(conn: sqlite3.Connection, conv: Optional[str] = None) -> int:
    """How many messages are stored (in ``conv`` when given)."""
    if conv is None:
        return int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    return int(conn.execute("SELECT COUNT(*) FROM messages WHERE conv = ?", (conv,)).fetchone()[0])
