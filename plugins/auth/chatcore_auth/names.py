"""Username and password rules; each rejection says exactly what is wrong."""

from __future__ import annotations

import re
from typing import Any, Optional

from chatcore.names import NAME_MAX, name_problem

USERNAME_MAX = NAME_MAX
_ALLOWED = re.compile(r"[A-Za-z0-9_.\-]+")


def name_key(username: str) -> str:
    """The case-insensitive key under which a username is unique (``Alice`` == ``alice``)."""
    return username.casefold()


def username_problem(username: Any) -> Optional[str]:
    """Why ``username`` cannot be registered, or None when it follows the rules."""
    return name_problem(username, "username", USERNAME_MAX)


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
