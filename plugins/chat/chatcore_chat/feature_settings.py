"""Settings of the message features (edit, delete, reactions, typing, search, the change log):
``CHATCORE_CHAT_*``.

They apply to private conversations and the global room, and to rooms too (the rooms plugin
reads them from chat's service, as it reads chat's message length).
"""

from __future__ import annotations

from dataclasses import dataclass

from chatcore import Setting
from chatcore.config import Config

EDIT_WINDOW = Setting("CHATCORE_CHAT_EDIT_WINDOW", 0.0, "Seconds after sending during which a message may still be edited; 0: always ('edit_window' after it).", float, minimum=0)
REACTIONS_PER_MESSAGE = Setting("CHATCORE_CHAT_REACTIONS_PER_MESSAGE", 20, "Most different reactions (emoji) one message may carry; another gets 'too_many_reactions'.", int, minimum=1)
REACTION_NAMES = Setting("CHATCORE_CHAT_REACTION_NAMES", 20, "Most names listed per reaction in events and history (the count is always exact): keeps a frame small in a big room.", int, minimum=0)
REACTION_MAX_LENGTH = Setting("CHATCORE_CHAT_REACTION_MAX_LENGTH", 32, "Longest reaction in characters (an emoji sequence with modifiers takes several); longer ones get 'bad_emoji'.", int, minimum=1)
TYPING_INTERVAL = Setting("CHATCORE_CHAT_TYPING_INTERVAL", 3.0, "Seconds between two typing events one user may cause in one conversation; the server drops those in between.", float, minimum=0)
TYPING_EXPIRY = Setting("CHATCORE_CHAT_TYPING_EXPIRY", 6.0, "Seconds a client shows 'is typing' after a typing event (sent to it as expires_in) unless another comes.", float, minimum=1)
SCRUB_INTERVAL = Setting("CHATCORE_CHAT_SCRUB_INTERVAL", 60.0, "Seconds after a deletion within which its words are merged out of the search index's pages too (one merge however many deletions came); 0: at once.", float, minimum=0)
SEARCH_PAGE = Setting("CHATCORE_CHAT_SEARCH_PAGE", 50, "Most results one search reply returns (fewer when they would not fit in one frame); caps 'limit'.", int, minimum=1)
SEARCH_MAX_QUERY = Setting("CHATCORE_CHAT_SEARCH_MAX_QUERY", 200, "Longest search query in characters ('query_too_long').", int, minimum=1)
SEARCH_MAX_WORDS = Setting("CHATCORE_CHAT_SEARCH_MAX_WORDS", 8, "Most words in one search query ('query_too_long').", int, minimum=1)
CHANGES_MAX = Setting("CHATCORE_CHAT_CHANGES_MAX", 5000, "Most changed messages (edited, deleted, reacted to) replayed to a reconnecting client that names 'changes_since'; beyond it caught_up says changes_complete: false and the client reloads.", int, minimum=1)
CHANGES_KEEP = Setting("CHATCORE_CHAT_CHANGES_KEEP", 100_000, "Change log: keep the newest this many change ids (older ones are pruned as changes are made); 0: no count limit.", int, minimum=0)
CHANGES_KEEP_DAYS = Setting("CHATCORE_CHAT_CHANGES_KEEP_DAYS", 30.0, "Change log: prune changes older than this many days (as changes are made); 0: no age limit. A client away longer reloads instead.", float, minimum=0)

ALL: tuple[Setting, ...] = (EDIT_WINDOW, REACTIONS_PER_MESSAGE, REACTION_NAMES, REACTION_MAX_LENGTH, TYPING_INTERVAL,
                            TYPING_EXPIRY, SCRUB_INTERVAL, SEARCH_PAGE, SEARCH_MAX_QUERY, SEARCH_MAX_WORDS,
                            CHANGES_MAX, CHANGES_KEEP, CHANGES_KEEP_DAYS)


@dataclass(frozen=True)
class FeatureSettings:
    """Typed values of the message-feature settings."""

    edit_window: float = 0.0
    reactions_per_message: int = 20
    reaction_names: int = 20
    reaction_max_length: int = 32
    typing_interval: float = 3.0
    typing_expiry: float = 6.0
    scrub_interval: float = 60.0
    search_page: int = 50
    search_max_query: int = 200
    search_max_words: int = 8
    changes_max: int = 5000
    changes_keep: int = 100_000
    changes_keep_days: float = 30.0

    @classmethod
    def from_config(cls, config: Config) -> "FeatureSettings":
        return cls(config.get(EDIT_WINDOW), config.get(REACTIONS_PER_MESSAGE), config.get(REACTION_NAMES),
                   config.get(REACTION_MAX_LENGTH), config.get(TYPING_INTERVAL), config.get(TYPING_EXPIRY),
                   config.get(SCRUB_INTERVAL), config.get(SEARCH_PAGE), config.get(SEARCH_MAX_QUERY), config.get(SEARCH_MAX_WORDS),
                   config.get(CHANGES_MAX), config.get(CHANGES_KEEP), config.get(CHANGES_KEEP_DAYS))

    def edit_refusal(self, sent_ms: int, now_ms: int) -> bool:
        """Whether a message sent at ``sent_ms`` is past the edit window at ``now_ms``."""
        return self.edit_window > 0 and now_ms - sent_ms > self.edit_window * 1000
