"""What the client logs in with again after a reconnect (a leaf module: api and handlers share it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Credentials:
    """How to log in again after a reconnect: the device token once the server gave one (the
    password is then forgotten), the password until then."""

    username: str
    password: Optional[str] = None
    token: Optional[str] = None
    device: str = ""
