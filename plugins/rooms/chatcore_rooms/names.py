"""Room names, mentions and one-line texts: what a valid room name, topic or reason is, and
which ``@names`` a message holds.

Room names follow the username rules (1-32 of ``A-Z a-z 0-9 _ . -``, unique regardless of
case), so a name can be typed, shown and quoted the same everywhere. ``@room`` mentions
every member and needs moderator rights; it always means everyone, so a user named
``room`` is reached by it like everyone else, never on their own.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from chatcore import CommandError
from chatcore.names import NAME_MAX, name_problem
from chatcore_rooms.settings import RoomsSettings

ROOM_NAME_MAX = NAME_MAX
EVERYONE = "room"  # @room: every member
_MENTION = re.compile(r"(?<![A-Za-z0-9_.\-@])@([A-Za-z0-9_.\-]{1,40})")
MAX_MENTIONS = 50  # distinct @names looked at per message; more are plain text


def room_key(name: str) -> str:
    """The case-insensitive key under which a room name is unique."""
    return name.casefold()


def room_name_problem(name: Any) -> Optional[str]:
    """Why ``name`` cannot be a room's name, or None when it follows the rules."""
    return name_problem(name, "room name", ROOM_NAME_MAX)


def mentioned(text: str) -> tuple[list[str], bool]:
    """The casefolded names ``@name`` mentions in ``text`` (each once, in order of first
    appearance, at most ``MAX_MENTIONS``), and whether it mentions ``@room``. A name ending in
    dots or dashes is also tried without them (``@bob.`` at the end of a sentence is bob), so
    both forms are returned; the caller keeps those that are members."""
    names: list[str] = []
    everyone = False
    for match in _MENTION.finditer(text):
        name = match.group(1).casefold()
        if name == EVERYONE:
            everyone = True
            continue
        for candidate in (name, name.rstrip(".-")):
            if candidate and candidate != EVERYONE and candidate not in names and len(names) < MAX_MENTIONS:
                names.append(candidate)
    return names, everyone


def one_line(settings: RoomsSettings, text: Any, what: str) -> str:
    """A topic or reason (``what``): one line within its limit, stripped."""
    limit = settings.topic_max if what == "topic" else settings.reason_max
    if not isinstance(text, str):
        raise CommandError("bad_request", f"field '{what}' must be a string")
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise CommandError("bad_request", f"the {what} must be one line without control characters")
    if len(text) > limit:
        raise CommandError(f"{what}_too_long", f"the {what} has {len(text)} characters; the limit is {limit}")
    return text.strip()


def page_limit(message: dict[str, Any], default: int) -> int:
    """A page command's ``limit`` (``default`` when absent); 1 or more."""
    limit = message.get("limit", default)
    if limit < 1:
        raise CommandError("bad_request", "field 'limit' must be 1 or more")
    return int(limit)
