"""The rule for names people type and quote: usernames (the accounts plugin) and room names
(the rooms plugin) alike, 1-32 of ``A-Z a-z 0-9 _ . -``, not only dots; each refusal says
exactly what is wrong."""

from __future__ import annotations

import re
from typing import Any, Optional

NAME_MAX = 32
NAME_CHARS = "letters A-Z a-z, digits 0-9, '_', '.' and '-'"
_BAD_CHAR = re.compile(r"[^A-Za-z0-9_.\-]")


def name_problem(name: Any, what: str, maximum: int = NAME_MAX) -> Optional[str]:
    """Why ``name`` cannot be a ``what`` (``"username"``, ``"room name"``), or None when it
    follows the rule."""
    if not isinstance(name, str):
        return f"{what} must be a string"
    if name == "":
        return f"{what} is empty"
    if len(name) > maximum:
        return f"{what} is longer than {maximum} characters"
    bad = _BAD_CHAR.search(name)
    if bad is not None:
        char = bad.group()
        shown = "a space" if char == " " else (repr(char) if char.isprintable() else f"U+{ord(char):04X}")
        return f"{what} may only contain {NAME_CHARS} (found {shown})"
    if set(name) == {"."}:
        return f"{what} cannot consist only of dots"
    return None
