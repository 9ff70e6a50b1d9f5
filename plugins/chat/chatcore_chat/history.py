"""Shaping ``get_history`` replies: newest last, as many messages as fit in one frame.

Old clients get docs/protocol.md §5 legacy ``data`` triples ``[sender, "MM/DD HH:MM", message]``; v2
sessions get ``messages`` objects with ids. Sizes are measured with ``protocol.dumps``, the
exact bytes the frame will carry, so a reply never needs a bigger frame than exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Optional, Sequence

from chatcore import protocol
from chatcore_chat.features import stamp_fields
from chatcore_chat.store import Message

# ``next_before`` is sized as this many digits when measuring, whatever the real id
_ID_PLACEHOLDER = 2**63 - 1


def legacy_time(ts_ms: int) -> str:
    """``MM/DD HH:MM`` in the server's local time, as the original system wrote it."""
    return datetime.fromtimestamp(ts_ms / 1000).strftime("%m/%d %H:%M")


def legacy_item(message: Message) -> list[str]:
    """A legacy history triple."""
    return [message.sender, legacy_time(message.ts_ms), message.text]


def v2_item(message: Message, reactions: Mapping[int, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """A v2 history object (docs/protocol.md §5): ``edited`` or ``deleted`` and ``reactions`` when any."""
    item = {"id": message.id, "sender": message.sender, "to": message.to, "ts": message.ts, "message": message.text,
            **stamp_fields(message.edited_ms, message.deleted)}
    if reactions and message.id in reactions:
        item["reactions"] = reactions[message.id]
    return item


def fit_reply(peer: str, newest_first: Sequence[Message], more: bool, v2: bool,
              max_bytes: int = protocol.MAX_JSON,
              reactions: Mapping[int, list[dict[str, Any]]] | None = None,
              last_change_id: Optional[int] = None) -> dict[str, Any]:
    """The ``get_history`` reply with the newest of ``newest_first`` that fit in ``max_bytes``.

    :param peer: the peer as the client named it (``""`` = global room), echoed back.
    :param newest_first: candidate messages, newest first.
    :param more: whether older messages exist beyond ``newest_first``.
    :param v2: shape for a v2 session (``messages``) or an old client (``data``), which sees
        no deleted message (its tombstone is new to it).
    :param reactions: the messages' reactions by id (v2 only).
    :param last_change_id: the newest change id read before the page (v2 only): the page shows
        every change up to it, so a client without a change cursor may start from it.
    """
    if not v2:
        newest_first = [message for message in newest_first if not message.deleted]
    key = "messages" if v2 else "data"
    worst: dict[str, Any] = {"type": "get_history", "peer": peer, key: [], "has_more": False,
                             "next_before": _ID_PLACEHOLDER, "last_change_id": _ID_PLACEHOLDER}
    items = protocol.fitting((v2_item(message, reactions) if v2 else legacy_item(message) for message in newest_first),
                             max_bytes - len(protocol.dumps(worst)))
    taken = len(items)
    has_more = more or taken < len(newest_first)
    items.reverse()
    reply: dict[str, Any] = {"type": "get_history", "peer": peer, key: items, "has_more": has_more}
    if has_more and taken:
        reply["next_before"] = newest_first[taken - 1].id
    if v2 and last_change_id is not None:
        reply["last_change_id"] = last_change_id
    return reply
