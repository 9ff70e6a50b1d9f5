"""Username and password rules; each rejection says exactly what is wrong."""

from __future__ import annotations

import re
from typing import Any, Optional

USERNAME_MAX = 32
USERNAME_CHARS = "letters A-Z a-z, digits 0-9, '_', '.' and '-'"
_ALLOWED = re.compile(r"[A-Za-z0-9_.\-]+")
_BAD_CHAR = re.compile(r"[^A-Za-z0-9_.\-]")


def name_key(username: str) -> str:
    """The case-insensitive key under which a username is unique (``Alice`` == ``alice``)."""
    return username.casefold()


def username_problem(username: Any) -> Optional[str]:
    """Why ``username`` cannot be registered, or None when it follows the rules."""
    if not isinstance(username, str):
        return "username must be a string"
    if username == "":
        return "username is empty"
    if len(username) > USERNAME_MAX:
        return f"username is longer than {USERNAME_MAX} characters"
    bad = _BAD_CHAR.search(username)
    if bad is not None:
        char = bad.group()
        shown = "a space" if char == " " else (repr(char) if char.isprintable() else f"U+{ord(char):04X}")
        return f"username may only contain {USERNAME_CHARS} (found {shown})"
    if set(username) == {"."}:
        return "username cannot consist only of dots"
    return None


def is_valid_username(username: Any) -> bool:
    """True when ``username`` could be a registered account's name."""
    return isinstance(username, str) and 0 < len(username) <= USERNAME_MAX \
        and _ALLOWED.fullmatch(username) is not None and set(username) != {"."}


def password_problem(password: Any, minimum: int, maximum: int) -> Optional[str]:
    """Why ``password`` is not acceptable as a new password, or None."""
    if not isinstance(password, str):
        return "password must be a string"
    if len(password) < minimum:
        return f"password must be at least {minimum} characters"
    if len(password) > maximum:
        return f"password must be at most {maximum} characters"
    return None
