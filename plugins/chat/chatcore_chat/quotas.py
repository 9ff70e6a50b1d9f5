"""Bounds on what the chat store keeps: per recipient (what waits for them) and per sender per UTC day.

The counters live in SQLite (``pending_totals``, ``sender_days``), kept by triggers in the
transaction that changes the messages, so they are exact, survive restarts and never drift:
a refused or rolled-back message leaves no trace. The limits are checked by a TEMP trigger
on the writer's connection, before the row is inserted: a message over a limit aborts its
own INSERT (SQLite undoes that statement alone), and the writer operation turns the abort
into ``Refused`` (``recipient_full``, ``daily_quota`` with ``retry_after``); nothing is
stored. Everything happens inside the one INSERT, so the hot path pays no extra statement.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Optional

from chatcore_chat.faults import Refused

CHECK_TRIGGER = "chat_quotas"
DAY_MS = 86_400_000  # one UTC day in milliseconds
# What each sender stored on the current UTC day. Needs only ``messages (sender, ts, body)``:
# chat's database and rooms' count with it, so both bound a sender by the same settings.
SENDER_DAYS = """
CREATE TABLE IF NOT EXISTS sender_days (
    sender   TEXT PRIMARY KEY,   -- lower-cased sender name
    day      INTEGER NOT NULL,   -- the UTC day (ts // 86,400,000) the counts below are for
    messages INTEGER NOT NULL,   -- messages stored from this sender on that day
    bytes    INTEGER NOT NULL    -- UTF-8 bytes of their texts
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS sender_on_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO sender_days VALUES (lower(NEW.sender), NEW.ts / 86400000, 1, length(CAST(NEW.body AS BLOB)))
        ON CONFLICT (sender) DO UPDATE SET  -- a later day starts from zero; a clock set back counts on
            messages = CASE WHEN day >= excluded.day THEN messages + 1 ELSE 1 END,
            bytes = CASE WHEN day >= excluded.day THEN bytes + excluded.bytes ELSE excluded.bytes END,
            day = MAX(day, excluded.day);
END;
"""


def count_sender_days(conn: sqlite3.Connection, now_ms: int) -> None:
    """Fill ``sender_days`` (SENDER_DAYS) from the messages stored on the UTC day of ``now_ms``."""
    conn.execute("DELETE FROM sender_days")
    day = now_ms // DAY_MS
    conn.execute("INSERT INTO sender_days SELECT lower(sender), ?, COUNT(*), SUM(length(CAST(body AS BLOB))) "
                 "FROM messages WHERE ts >= ? AND ts < ? GROUP BY lower(sender)", (day, day * DAY_MS, (day + 1) * DAY_MS))


@dataclass(frozen=True)
class Quotas:
    """The limits; 0 turns one off."""

    pending_messages: int = 5000  # undelivered messages kept for one recipient
    pending_bytes: int = 16 << 20  # UTF-8 bytes of their texts
    daily_messages: int = 20_000  # messages one sender may store per UTC day
    daily_bytes: int = 64 << 20  # UTF-8 bytes of their texts

    def install(self, conn: sqlite3.Connection) -> None:
        """Make ``conn`` (the writer's) refuse inserts beyond the limits; replaces an earlier check."""
        size = "length(CAST(NEW.body AS BLOB))"
        checks = []
        for kind, limit, expression in (
                ("recipient_full:messages", self.pending_messages, "messages + 1 > {}"),
                ("recipient_full:bytes", self.pending_bytes, f"bytes + {size} > {{}}")):
            if limit:
                checks.append(f"SELECT RAISE(ABORT, '{kind}') WHERE NEW.pending_for IS NOT NULL AND (SELECT "
                              f"{expression.format(int(limit))} FROM main.pending_totals "
                              "WHERE recipient = NEW.pending_for);")
        for kind, limit, expression in (
                ("daily_quota:messages", self.daily_messages, "messages + 1 > {}"),
                ("daily_quota:bytes", self.daily_bytes, f"bytes + {size} > {{}}")):
            if limit:  # a row of an earlier day counts as zero: the day's first message always fits
                checks.append(f"SELECT RAISE(ABORT, '{kind}') WHERE (SELECT day >= NEW.ts / {DAY_MS} AND "
                              f"{expression.format(int(limit))} FROM main.sender_days "
                              "WHERE sender = lower(NEW.sender));")
        conn.execute(f"DROP TRIGGER IF EXISTS temp.{CHECK_TRIGGER}")
        if checks:
            conn.execute(f"CREATE TEMP TRIGGER {CHECK_TRIGGER} BEFORE INSERT ON main.messages BEGIN "
                         + " ".join(checks) + " END")

    def refusal(self, error: sqlite3.IntegrityError, recipient: str, ts_ms: int) -> Optional[Refused]:
        """The ``Refused`` for an INSERT the check aborted (None for any other integrity error)."""
        return self.refused(str(error), recipient, ts_ms)

    def refused(self, kind: str, recipient: str, ts_ms: int) -> Optional[Refused]:
        """The ``Refused`` for a limit named ``kind`` (``recipient_full:messages`` ...), else None."""
        if kind == "recipient_full:messages":
            return Refused("recipient_full", f"{recipient} already has {self.pending_messages} undelivered "
                           "messages waiting, the most the server keeps for one recipient; nothing was stored: "
                           "try again once they have logged in")
        if kind == "recipient_full:bytes":
            return Refused("recipient_full", f"this message would take the undelivered messages waiting for "
                           f"{recipient} past {self.pending_bytes} bytes, the most the server keeps for one "
                           "recipient; nothing was stored: try again once they have logged in")
        if kind in ("daily_quota:messages", "daily_quota:bytes"):
            retry_after = round(((ts_ms // DAY_MS + 1) * DAY_MS - ts_ms) / 1000, 3)
            limit = f"{self.daily_messages} messages" if kind.endswith("messages") else f"{self.daily_bytes} bytes"
            return Refused("daily_quota", f"you may store at most {limit} a day (UTC); nothing was stored: "
                           f"try again in {retry_after:.0f} s", retry_after=retry_after)
        return None
