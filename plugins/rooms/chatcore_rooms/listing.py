"""Shaping what the ``rooms`` plugin reads: the room list (at login and on request), history
pages, the directory and member pages. Every reply fits one frame (sizes measured with
``protocol.dumps``, as the frame will carry them); the room list, which has no cursor, is
split over as many ``room_list`` frames as it needs, the last marked ``final``.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Sequence

from chatcore import protocol
from chatcore_rooms.models import RoomMessage

_ID_PLACEHOLDER = 2**63 - 1  # sizes a cursor as its largest value when measuring
LIST_KEYS = ("rooms", "private", "invites")


def list_frames(rooms: Sequence[dict[str, Any]], private: Sequence[dict[str, Any]],
                invites: Sequence[dict[str, Any]], as_of: int,
                max_bytes: int = protocol.MAX_JSON) -> Iterator[dict[str, Any]]:
    """``room_list`` frames holding every entry, in order: each as full as one frame allows,
    the last one ``final: true``. ``as_of``: the newest chat message id the private counts include."""
    shell = {"type": "room_list", "rooms": [], "private": [], "invites": [], "as_of": _ID_PLACEHOLDER, "final": False}
    room = max_bytes - len(protocol.dumps(shell))
    frame: dict[str, Any] = {key: [] for key in LIST_KEYS}
    left = room
    for key, entries in zip(LIST_KEYS, (rooms, private, invites)):
        for entry in entries:
            cost = len(protocol.dumps(entry)) + 1
            if cost > left and any(frame[k] for k in LIST_KEYS):
                yield {"type": "room_list", **frame, "as_of": as_of, "final": False}
                frame, left = {k: [] for k in LIST_KEYS}, room
            frame[key].append(entry)
            left -= cost
    yield {"type": "room_list", **frame, "as_of": as_of, "final": True}


def history_reply(room: str, newest_first: Sequence[RoomMessage], more: bool,
                  max_bytes: int = protocol.MAX_JSON,
                  reactions: Optional[dict[int, list[dict[str, object]]]] = None) -> dict[str, Any]:
    """The ``room_history`` reply with the newest of ``newest_first`` that fit, newest last
    (with their ``reactions``, by message row id)."""
    worst = {"type": "room_history", "room": room, "messages": [], "has_more": False, "next_before": _ID_PLACEHOLDER,
             "last_change_id": _ID_PLACEHOLDER}  # added by the caller (reads.py)
    items = protocol.fitting((message.item(reactions) for message in newest_first), max_bytes - len(protocol.dumps(worst)))
    taken = len(items)
    has_more = more or taken < len(newest_first)
    items.reverse()
    reply: dict[str, Any] = {"type": "room_history", "room": room, "messages": items, "has_more": has_more}
    if has_more and taken:
        reply["next_before"] = newest_first[taken - 1].seq
    return reply


def page_reply(kind: str, key: str, entries: Iterable[dict[str, Any]], cursor: str, limit: int,
               extra: Optional[dict[str, Any]] = None, max_bytes: int = protocol.MAX_JSON) -> dict[str, Any]:
    """A reply of type ``kind`` listing ``entries`` (already sorted by their ``cursor`` field)
    under ``key``: at most ``limit`` and what fits one frame; ``next_after`` names the last
    one given when more follow."""
    listed = list(entries)
    fields = dict(extra or {})
    worst = {"type": kind, **fields, key: [], "has_more": False, "next_after": "x" * 64}
    items = protocol.fitting(listed[:limit], max_bytes - len(protocol.dumps(worst)))
    has_more = len(items) < len(listed)
    reply: dict[str, Any] = {"type": kind, **fields, key: items, "has_more": has_more}
    if has_more and items:
        reply["next_after"] = items[-1][cursor]
    return reply
