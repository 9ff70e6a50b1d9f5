"""The message features on PostgreSQL (cluster mode): edits, redactions, reactions, the change
log and search, with the names and results of ``features.py``, ``changelog.py`` and the SQLite
queries of ``changes.py``, ``replay.py`` and ``actions.py``.

Change ids come from ``change_state.last_id`` (every change is made under the writer's
cluster-wide lock, and a rolled-back change takes its id back), so the log stays gapless and
in commit order, whichever node made the change. Search needs no index of its own: each
message keeps its folded words (``messages.words``, ``search.fold``), and a query asks for
rows holding every word, newest first, among the conversations the user may read; it
compares whole words as the SQLite index does (case and accents dropped), and scans the
readable messages from ``before`` down (no index: fine for thousands of messages per user,
slower for millions).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from chatcore_chat.changelog import Changed
from chatcore_chat.faults import Refused
from chatcore_chat.pgstore import COLUMNS, _row, folded_words
from chatcore_chat.store import Message

READABLE = "(conv = '' OR conv IN (SELECT conv FROM conversations WHERE a = %(user)s OR b = %(user)s))"


# -- messages and their changes (the writer's connection, in its transaction) -------------------

def conversation_message(conn: Any, conv: str, message_id: int) -> Optional[Message]:
    row = conn.execute(f"SELECT {COLUMNS} FROM messages WHERE id = %s AND conv = %s", (message_id, conv)).fetchone()
    return _row(row) if row else None


def messages(conn: Any, ids: Sequence[int]) -> dict[int, Message]:
    rows = conn.execute(f"SELECT {COLUMNS} FROM messages WHERE id = ANY(%s)", (list(ids),)).fetchall()
    return {message.id: message for message in map(_row, rows)}


def edit(conn: Any, message_id: int, text: str, ts_ms: int) -> None:
    conn.execute("UPDATE messages SET body = %s, edited = %s, words = %s WHERE id = %s",
                 (text, ts_ms, folded_words(text), message_id))


def redact(conn: Any, message_id: int) -> None:
    """Erase the text (undelivered first, so the pending totals count the old text) and reactions."""
    conn.execute("UPDATE messages SET pending_for = NULL WHERE id = %s AND pending_for IS NOT NULL", (message_id,))
    conn.execute("UPDATE messages SET body = '', edited = NULL, deleted = true, words = '' WHERE id = %s",
                 (message_id,))
    conn.execute("DELETE FROM reactions WHERE message_id = %s", (message_id,))


def react(conn: Any, message_id: int, emoji: str, user: str, add: bool, ts_ms: int, most: int) -> bool:
    """``features.react``."""
    key = user.casefold()
    if not add:
        return bool(conn.execute("DELETE FROM reactions WHERE message_id = %s AND emoji = %s AND user_key = %s",
                                 (message_id, emoji, key)).rowcount)
    known = conn.execute("SELECT 1 FROM reactions WHERE message_id = %s AND emoji = %s LIMIT 1",
                         (message_id, emoji)).fetchone()
    if known is None:
        distinct = conn.execute("SELECT COUNT(DISTINCT emoji) FROM reactions WHERE message_id = %s",
                                (message_id,)).fetchone()[0]
        if distinct >= most:
            raise Refused("too_many_reactions", f"a message carries at most {most} different reactions")
    return bool(conn.execute("INSERT INTO reactions VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                             (message_id, emoji, key, user, ts_ms)).rowcount)


def reactions(conn: Any, ids: Iterable[int], names: int) -> dict[int, list[dict[str, Any]]]:
    """``features.reactions``."""
    wanted = sorted(set(ids))
    found: dict[int, dict[str, dict[str, Any]]] = {}
    if not wanted:
        return {}
    for message_id, emoji, user in conn.execute(
            'SELECT message_id, emoji, "user" FROM reactions WHERE message_id = ANY(%s) '
            "ORDER BY message_id, ts, emoji, user_key", (wanted,)):
        entry = found.setdefault(int(message_id), {}).setdefault(emoji, {"emoji": emoji, "count": 0, "users": []})
        entry["count"] += 1
        if len(entry["users"]) < names:
            entry["users"].append(user)
    return {message_id: list(entries.values()) for message_id, entries in found.items()}


# -- the change log ----------------------------------------------------------------------------

def record(conn: Any, message_id: int, conv: str, kind: str, actor: str, ts_ms: int) -> int:
    change_id = int(conn.execute("UPDATE change_state SET last_id = last_id + 1 RETURNING last_id").fetchone()[0])
    conn.execute("INSERT INTO message_changes VALUES (%s, %s, %s, %s, %s, %s)",
                 (change_id, message_id, conv, kind, actor, ts_ms))
    return change_id


def newest(conn: Any) -> int:
    return int(conn.execute("SELECT last_id FROM change_state").fetchone()[0])


def pruned_up_to(conn: Any) -> int:
    return int(conn.execute("SELECT pruned_up_to FROM change_state").fetchone()[0])


def prune(conn: Any, cutoff_ms: Optional[int], keep: int, newest_id: Optional[int] = None, chunk: int = 500) -> int:
    """``changelog.prune``."""
    row = conn.execute("SELECT id, ts FROM message_changes ORDER BY id LIMIT 1").fetchone()
    if row is None:
        return 0
    oldest, oldest_ts = int(row[0]), int(row[1])
    up_to = 0
    if keep > 0:
        up_to = min(oldest + chunk - 1, (newest(conn) if newest_id is None else newest_id) - keep)
    if cutoff_ms is not None and oldest_ts < cutoff_ms:
        found = conn.execute("SELECT MAX(id) FROM message_changes WHERE id < %s AND ts < %s",
                             (oldest + chunk, cutoff_ms)).fetchone()
        up_to = max(up_to, int(found[0] or 0))
    if up_to < oldest:
        return 0
    gone = conn.execute("DELETE FROM message_changes WHERE id <= %s", (up_to,)).rowcount
    conn.execute("UPDATE change_state SET pruned_up_to = GREATEST(pruned_up_to, %s)", (up_to,))
    return int(gone)


def since(conn: Any, user_key: str, after: int, up_to: int, limit: int, cursor: Optional[int] = None) -> list[Changed]:
    """``changelog.since``."""
    rows = conn.execute(
        "SELECT c.message_id, MAX(c.id) AS last, string_agg(DISTINCT c.kind, ','),"
        " (SELECT d.actor FROM message_changes d WHERE d.message_id = c.message_id AND d.kind = 'delete'"
        "  ORDER BY d.id DESC LIMIT 1)"
        f" FROM message_changes c WHERE c.id > %(after)s AND c.id <= %(up_to)s AND {READABLE.replace('conv', 'c.conv', 2)}"
        " GROUP BY c.message_id HAVING MAX(c.id) > %(cursor)s ORDER BY last LIMIT %(limit)s",
        {"after": after, "up_to": up_to, "user": user_key, "limit": limit,
         "cursor": after if cursor is None else cursor}).fetchall()
    return [Changed(int(message_id), int(last), frozenset(str(kinds).split(",")), by)
            for message_id, last, kinds, by in rows]


def reacted_by(conn: Any, user_key: str) -> list[tuple[int, str]]:
    return [(int(message_id), conv) for message_id, conv in conn.execute(
        "SELECT DISTINCT r.message_id, m.conv FROM reactions r JOIN messages m ON m.id = r.message_id"
        " WHERE r.user_key = %s", (user_key,))]


def record_many(conn: Any, changed: Iterable[tuple[int, str]], kind: str, actor: str, ts_ms: int) -> None:
    for message_id, conv in changed:
        if conn.execute("SELECT 1 FROM messages WHERE id = %s", (message_id,)).fetchone():
            record(conn, message_id, conv, kind, actor, ts_ms)


# -- search ------------------------------------------------------------------------------------

def search(conn: Any, user_key: str, words: Sequence[str], before: int, limit: int) -> list[Message]:
    """Messages ``user_key`` may read holding every word (folded), below id ``before``, newest first."""
    params: dict[str, Any] = {"user": user_key, "before": before, "limit": limit}
    having = []
    for index, word in enumerate(words):  # words are letters and digits only: nothing LIKE would read
        params[f"w{index}"] = f"% {word} %"
        having.append(f"words LIKE %(w{index})s")
    rows = conn.execute(f"SELECT {COLUMNS} FROM messages WHERE id < %(before)s AND NOT deleted AND {READABLE} AND "
                        + " AND ".join(having) + " ORDER BY id DESC LIMIT %(limit)s", params).fetchall()
    return [_row(row) for row in rows]

