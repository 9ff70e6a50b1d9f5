"""The ``chat`` plugin's settings (``CHATCORE_CHAT_*``), declared once and read into one object."""

from __future__ import annotations

from dataclasses import dataclass

from chatcore import Setting
from chatcore.config import Config



def _sync_mode(text: str) -> str:
    """NORMAL or FULL, any case; anything else is a ValueError (a startup ConfigError)."""
    mode = text.strip().upper()
    if mode not in ("NORMAL", "FULL"):
        raise ValueError(mode)
    return mode


MAX_LENGTH = Setting("CHATCORE_CHAT_MAX_LENGTH", 4000, "Longest chat message in characters; longer ones are refused with 'message_too_long'.", int, minimum=1)
HISTORY_PAGE = Setting("CHATCORE_CHAT_HISTORY_PAGE", 500, "Most messages one get_history reply returns (fewer when they would not fit in one frame).", int, minimum=1)
RETENTION_DAYS = Setting("CHATCORE_CHAT_RETENTION_DAYS", 0.0, "Delete chat messages older than this many days; 0 keeps them forever.", float, minimum=0)
RETENTION_COUNT = Setting("CHATCORE_CHAT_RETENTION_COUNT", 0, "Keep at most this many messages per conversation (each pair of users, and the global room); 0 keeps all.", int, minimum=0)
RETENTION_INTERVAL = Setting("CHATCORE_CHAT_RETENTION_INTERVAL", 600.0, "Seconds between retention sweeps (only when a retention limit is set).", float, minimum=1)
BATCH = Setting("CHATCORE_CHAT_BATCH", 100, "Most messages written per SQLite commit; the writer batches what is queued, so a lone message commits at once.", int, minimum=1)
SYNCHRONOUS = Setting("CHATCORE_CHAT_SYNCHRONOUS", "NORMAL", "SQLite synchronous mode for chat history: NORMAL survives a crash of the server process, FULL also a power loss (slower).", str, parse=lambda text: _sync_mode(text))

ALL: tuple[Setting, ...] = (MAX_LENGTH, HISTORY_PAGE, RETENTION_DAYS, RETENTION_COUNT, RETENTION_INTERVAL, BATCH, SYNCHRONOUS)


@dataclass(frozen=True)
class ChatSettings:
    """Typed values of every ``chat`` setting."""

    max_length: int = 4000
    history_page: int = 500
    retention_days: float = 0.0
    retention_count: int = 0
    retention_interval: float = 600.0
    batch: int = 100
    synchronous: str = "NORMAL"

    @classmethod
    def from_config(cls, config: Config) -> "ChatSettings":
        """Read every setting from ``config`` (defaults where unset)."""
        return cls(config.get(MAX_LENGTH), config.get(HISTORY_PAGE), config.get(RETENTION_DAYS),
                   config.get(RETENTION_COUNT), config.get(RETENTION_INTERVAL), config.get(BATCH),
                   config.get(SYNCHRONOUS))
