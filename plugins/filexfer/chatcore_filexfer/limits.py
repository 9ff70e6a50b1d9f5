"""The limits the plugin enforces, announced to clients in ``hello``."""

from __future__ import annotations

from dataclasses import dataclass

from chatcore.protocol import CHUNK_SIZE


@dataclass(frozen=True)
class Limits:
    """Every limit the plugin enforces, read once at startup."""

    max_size: int = 100 << 20
    user_quota: int = 1 << 30
    spool_limit: int = 10 << 30
    max_files: int = 100
    expiry: float = 7 * 24 * 3600.0
    partial_timeout: float = 24 * 3600.0
    delivered_keep: float = 3600.0
    sweep_interval: float = 60.0
    stream_window: int = 256 << 10
    request_timeout: float = 600.0
    max_offers: int = 5  # unfinished uploads one sender may have active (reserving their declared size)
    offer_bytes: int = 256 << 20  # declared bytes of those active uploads together
    offer_timeout: float = 300.0  # seconds without a chunk before an upload stops reserving what it lacks
    max_downloads: int = 4  # downloads streaming at once on one connection
    requests_per_pair: int = 16  # legacy file_requests kept open from one user to another
    chunk_size: int = CHUNK_SIZE

    def announce(self) -> dict[str, int | float]:
        """The ``hello`` fields a client needs to plan an upload."""
        return {"chunk_size": self.chunk_size, "max_size": self.max_size, "user_quota": self.user_quota,
                "spool_limit": self.spool_limit, "max_files": self.max_files, "expiry": self.expiry,
                "max_offers": self.max_offers, "offer_bytes": self.offer_bytes, "offer_timeout": self.offer_timeout}
