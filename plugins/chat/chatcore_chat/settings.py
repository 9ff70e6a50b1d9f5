"""The ``chat`` plugin's settings (``CHATCORE_CHAT_*``), declared once and read into one object."""

from __future__ import annotations

from dataclasses import dataclass

from chatcore import Setting
from chatcore.config import SEND_BUFFER, Config, parse_size


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
OFFLINE_PAGE_MESSAGES = Setting("CHATCORE_CHAT_OFFLINE_PAGE_MESSAGES", 500, "Most offline messages sent to a logging-in session per page; the next page waits until the client has read this one.", int, minimum=1)
OFFLINE_PAGE_BYTES = Setting("CHATCORE_CHAT_OFFLINE_PAGE_BYTES", 256 << 10, "Most bytes of encoded frames per offline page (accepts K/M suffixes); at most a quarter of CHATCORE_SEND_BUFFER is used; a page holds at least one message.", int, parse_size, minimum=1)
OFFLINE_PAGE_TIMEOUT = Setting("CHATCORE_CHAT_OFFLINE_PAGE_TIMEOUT", 30.0, "Seconds a client may read none of its offline backlog before the server stops sending it; the rest waits for its next login.", float, minimum=0.01)
PENDING_MAX_MESSAGES = Setting("CHATCORE_CHAT_PENDING_MAX_MESSAGES", 5000, "Most undelivered messages kept for one offline recipient; more get 'recipient_full'; 0: no limit.", int, minimum=0)
PENDING_MAX_BYTES = Setting("CHATCORE_CHAT_PENDING_MAX_BYTES", 16 << 20, "Most bytes (UTF-8 text) of undelivered messages kept for one offline recipient (accepts K/M suffixes); more get 'recipient_full'; 0: no limit.", int, parse_size, minimum=0)
SENDER_DAILY_MESSAGES = Setting("CHATCORE_CHAT_SENDER_DAILY_MESSAGES", 20_000, "Most messages one user may store per UTC day; more get 'daily_quota'; 0: no limit.", int, minimum=0)
SENDER_DAILY_BYTES = Setting("CHATCORE_CHAT_SENDER_DAILY_BYTES", 64 << 20, "Most bytes (UTF-8 text) of messages one user may store per UTC day (accepts K/M suffixes); more get 'daily_quota'; 0: no limit.", int, parse_size, minimum=0)
IN_FLIGHT = Setting("CHATCORE_CHAT_IN_FLIGHT", 256, "Chat messages one connection may have waiting for their commit; beyond it the server stops reading that connection until the writer catches up.", int, minimum=1)
CATCH_UP_MAX = Setting("CHATCORE_CHAT_CATCH_UP_MAX", 5000, "Most messages a reconnecting client that names 'since' is sent; beyond it caught_up says complete: false and the client reloads history.", int, minimum=1)
QUEUE_TIMEOUT = Setting("CHATCORE_CHAT_QUEUE_TIMEOUT", 30.0, "Seconds a chat message may wait for room in its connection's window and the store's queue before it is refused with 'unavailable'.", float, minimum=0.1)

ALL: tuple[Setting, ...] = (MAX_LENGTH, HISTORY_PAGE, RETENTION_DAYS, RETENTION_COUNT, RETENTION_INTERVAL, BATCH, SYNCHRONOUS,
                            OFFLINE_PAGE_MESSAGES, OFFLINE_PAGE_BYTES, OFFLINE_PAGE_TIMEOUT, PENDING_MAX_MESSAGES,
                            PENDING_MAX_BYTES, SENDER_DAILY_MESSAGES, SENDER_DAILY_BYTES, IN_FLIGHT, QUEUE_TIMEOUT,
                            CATCH_UP_MAX)


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
    offline_page_messages: int = 500
    offline_page_bytes: int = 256 << 10
    offline_page_timeout: float = 30.0
    pending_max_messages: int = 5000
    pending_max_bytes: int = 16 << 20
    sender_daily_messages: int = 20_000
    sender_daily_bytes: int = 64 << 20
    send_buffer: int = 1 << 20  # the core's CHATCORE_SEND_BUFFER: bounds offline pages and held messages
    in_flight: int = 256
    queue_timeout: float = 30.0
    catch_up_max: int = 5000

    @classmethod
    def from_config(cls, config: Config) -> "ChatSettings":
        """Read every setting from ``config`` (defaults where unset)."""
        send_buffer = config.get(SEND_BUFFER)
        return cls(config.get(MAX_LENGTH), config.get(HISTORY_PAGE), config.get(RETENTION_DAYS),
                   config.get(RETENTION_COUNT), config.get(RETENTION_INTERVAL), config.get(BATCH),
                   config.get(SYNCHRONOUS), config.get(OFFLINE_PAGE_MESSAGES),
                   min(config.get(OFFLINE_PAGE_BYTES), send_buffer // 4), config.get(OFFLINE_PAGE_TIMEOUT),
                   config.get(PENDING_MAX_MESSAGES), config.get(PENDING_MAX_BYTES),
                   config.get(SENDER_DAILY_MESSAGES), config.get(SENDER_DAILY_BYTES), send_buffer,
                   config.get(IN_FLIGHT), config.get(QUEUE_TIMEOUT), config.get(CATCH_UP_MAX))
