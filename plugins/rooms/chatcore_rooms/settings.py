"""The ``rooms`` plugin's settings (``CHATCORE_ROOMS_*``), declared once and read into one object.

Room messages also follow the chat plugin's own limits and durability (its message length,
SQLite ``synchronous`` mode, batch size, in-flight window and queue timeout): a room message
is a chat message with more recipients, and the same bounds keep the same promises.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatcore import Setting
from chatcore.config import Config

MAX_ROOMS_PER_USER = Setting("CHATCORE_ROOMS_MAX_PER_USER", 100, "Most rooms one user may be a member of (created or joined); more get 'too_many_rooms'.", int, minimum=1)
MAX_MEMBERS = Setting("CHATCORE_ROOMS_MAX_MEMBERS", 2000, "Most members one room may have; more get 'room_full'.", int, minimum=1)
MAX_ROOMS = Setting("CHATCORE_ROOMS_MAX_ROOMS", 10_000, "Most rooms the server keeps in all; more get 'too_many_rooms'.", int, minimum=1)
TOPIC_MAX = Setting("CHATCORE_ROOMS_TOPIC_MAX", 300, "Longest room topic in characters; longer ones get 'topic_too_long'.", int, minimum=0)
REASON_MAX = Setting("CHATCORE_ROOMS_REASON_MAX", 300, "Longest kick or ban reason in characters; longer ones get 'reason_too_long'.", int, minimum=0)
HISTORY_PAGE = Setting("CHATCORE_ROOMS_HISTORY_PAGE", 200, "Most messages one room_history reply returns (fewer when they would not fit in one frame); caps 'limit'.", int, minimum=1)
UNREAD_CAP = Setting("CHATCORE_ROOMS_UNREAD_CAP", 1000, "Unread private messages and mentions are counted up to this many per conversation (a badge says '1000+').", int, minimum=1)
MAX_PINS = Setting("CHATCORE_ROOMS_MAX_PINS", 20, "Most pinned messages one room may have; another gets 'too_many_pins'.", int, minimum=1)

ALL: tuple[Setting, ...] = (MAX_ROOMS_PER_USER, MAX_MEMBERS, MAX_ROOMS, TOPIC_MAX, REASON_MAX, HISTORY_PAGE, UNREAD_CAP,
                            MAX_PINS)


@dataclass(frozen=True)
class RoomsSettings:
    """Typed values of every ``rooms`` setting."""

    max_per_user: int = 100
    max_members: int = 2000
    max_rooms: int = 10_000
    topic_max: int = 300
    reason_max: int = 300
    history_page: int = 200
    unread_cap: int = 1000
    max_pins: int = 20

    @classmethod
    def from_config(cls, config: Config) -> "RoomsSettings":
        """Read every setting from ``config`` (defaults where unset)."""
        return cls(config.get(MAX_ROOMS_PER_USER), config.get(MAX_MEMBERS), config.get(MAX_ROOMS),
                   config.get(TOPIC_MAX), config.get(REASON_MAX), config.get(HISTORY_PAGE), config.get(UNREAD_CAP),
                   config.get(MAX_PINS))
