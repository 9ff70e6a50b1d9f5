"""The plugin's settings (``CHATCORE_FILEXFER_*``), declared once for ``chatcore config``."""

from __future__ import annotations

from chatcore.config import Config, Setting, parse_size
from chatcore_filexfer.limits import Limits

_D = Limits()

MAX_SIZE = Setting("CHATCORE_FILEXFER_MAX_SIZE", _D.max_size,
                   "Largest file one upload may carry (bytes; K/M/G suffixes).", int, parse_size, minimum=0)
USER_QUOTA = Setting("CHATCORE_FILEXFER_USER_QUOTA", _D.user_quota,
                     "Bytes one sender may hold in the spool at once, partial uploads included (K/M/G).",
                     int, parse_size, minimum=0)
SPOOL_LIMIT = Setting("CHATCORE_FILEXFER_SPOOL_LIMIT", _D.spool_limit,
                      "Bytes the whole spool may hold, all senders together (K/M/G).", int, parse_size, minimum=0)
MAX_FILES = Setting("CHATCORE_FILEXFER_MAX_FILES", _D.max_files,
                    "Files (partial or waiting) one sender may have in the spool at once.", int, minimum=1)
EXPIRY = Setting("CHATCORE_FILEXFER_EXPIRY", _D.expiry,
                 "Seconds a complete file waits for its recipient before it is deleted.", float, minimum=1)
PARTIAL_TIMEOUT = Setting("CHATCORE_FILEXFER_PARTIAL_TIMEOUT", _D.partial_timeout,
                          "Seconds without a chunk after which a partial upload is deleted.", float, minimum=1)
DELIVERED_KEEP = Setting("CHATCORE_FILEXFER_DELIVERED_KEEP", _D.delivered_keep,
                         "Seconds a fully streamed file stays resumable when the recipient sends no "
                         "file_received.", float, minimum=0)
SWEEP_INTERVAL = Setting("CHATCORE_FILEXFER_SWEEP_INTERVAL", _D.sweep_interval,
                         "Seconds between background sweeps for expired files (0: sweep only on activity).",
                         float, minimum=0)
STREAM_WINDOW = Setting("CHATCORE_FILEXFER_STREAM_WINDOW", _D.stream_window,
                        "Bytes of a download queued for one client before the stream waits for it to read (K/M).",
                        int, parse_size, minimum=64 << 10)
REQUEST_TIMEOUT = Setting("CHATCORE_FILEXFER_REQUEST_TIMEOUT", _D.request_timeout,
                          "Seconds a legacy file_request stays answerable by file_response.", float, minimum=1)

MAX_OFFERS = Setting("CHATCORE_FILEXFER_MAX_OFFERS", _D.max_offers,
                     "Unfinished uploads one sender may have in progress at once (an upload idle for "
                     "CHATCORE_FILEXFER_OFFER_TIMEOUT no longer counts).", int, minimum=1)
OFFER_BYTES = Setting("CHATCORE_FILEXFER_OFFER_BYTES", _D.offer_bytes,
                      "Declared bytes of one sender's uploads in progress together (K/M/G); keep it at least "
                      "CHATCORE_FILEXFER_MAX_SIZE.", int, parse_size, minimum=0)
OFFER_TIMEOUT = Setting("CHATCORE_FILEXFER_OFFER_TIMEOUT", _D.offer_timeout,
                        "Seconds without a chunk after which an upload stops reserving the bytes it has not "
                        "received (and is deleted if it received none).", float, minimum=1)

MAX_DOWNLOADS = Setting("CHATCORE_FILEXFER_MAX_DOWNLOADS", _D.max_downloads,
                        "Downloads one connection may stream at once; more get 'busy'.", int, minimum=1)
REQUESTS_PER_PAIR = Setting("CHATCORE_FILEXFER_REQUESTS_PER_PAIR", _D.requests_per_pair,
                            "Legacy file_requests kept answerable from one user to another (the oldest goes first).",
                            int, minimum=1)

SETTINGS = (MAX_SIZE, USER_QUOTA, SPOOL_LIMIT, MAX_FILES, EXPIRY, PARTIAL_TIMEOUT, DELIVERED_KEEP,
            SWEEP_INTERVAL, STREAM_WINDOW, REQUEST_TIMEOUT, MAX_OFFERS, OFFER_BYTES, OFFER_TIMEOUT, MAX_DOWNLOADS,
            REQUESTS_PER_PAIR)


def limits_from_config(config: Config) -> Limits:
    """Read every setting (the core validated them at startup)."""
    return Limits(max_size=config.get(MAX_SIZE), user_quota=config.get(USER_QUOTA),
                  spool_limit=config.get(SPOOL_LIMIT), max_files=config.get(MAX_FILES), expiry=config.get(EXPIRY),
                  partial_timeout=config.get(PARTIAL_TIMEOUT), delivered_keep=config.get(DELIVERED_KEEP),
                  sweep_interval=config.get(SWEEP_INTERVAL), stream_window=config.get(STREAM_WINDOW),
                  request_timeout=config.get(REQUEST_TIMEOUT), max_offers=config.get(MAX_OFFERS),
                  offer_bytes=config.get(OFFER_BYTES), offer_timeout=config.get(OFFER_TIMEOUT),
                  max_downloads=config.get(MAX_DOWNLOADS), requests_per_pair=config.get(REQUESTS_PER_PAIR))
