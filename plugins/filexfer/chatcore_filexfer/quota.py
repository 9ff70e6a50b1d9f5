"""The quota rules for making an upload active (a new offer, or an idle upload resumed).

An active upload reserves its declared size, so one sender's active uploads are bounded in
number and declared bytes, and everything a sender holds in bytes and files; an idle upload
counts only at what it holds (``index.Usage`` sums it that way).
"""

from __future__ import annotations

from typing import Optional

from chatcore_filexfer.index import Usage
from chatcore_filexfer.limits import Limits


def refusal(limits: Limits, usage: Usage, size: int, needed: int, new_file: bool) -> Optional[str]:
    """Why a sender with ``usage`` may not make an upload of ``size`` declared bytes active when
    that takes ``needed`` more bytes of quota (``new_file``: it is also a new file); None if it may."""
    if new_file and usage.files >= limits.max_files:
        return f"you already have {usage.files} files waiting in the spool; the limit is {limits.max_files}"
    if usage.offers >= limits.max_offers:
        return (f"you already have {usage.offers} uploads in progress; the limit is {limits.max_offers}: "
                "finish or cancel one first")
    if usage.offer_bytes + size > limits.offer_bytes:
        return (f"your uploads in progress would declare {usage.offer_bytes + size} bytes; "
                f"the limit is {limits.offer_bytes}: finish or cancel one first")
    if usage.bytes + needed > limits.user_quota:
        return f"your files in the spool would take {usage.bytes + needed} bytes; your quota is {limits.user_quota}"
    if usage.total + needed > limits.spool_limit:
        return "the server's spool is full; try again later"
    return None
