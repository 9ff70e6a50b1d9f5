"""The client's settings: server address (or list) and TLS policy from the environment and ``.env``.

The environment wins over ``.env`` (found from the current directory upwards), as on the server.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from dotenv import dotenv_values, find_dotenv

from chatcore_client.servers import MAX_SERVERS

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888
TLS_MODES = ("auto", "require")
KEYRING_MODES = ("auto", "off")  # auto: the OS keyring when there is a real one; off: the private file only
NOTIFY_MODES = ("on", "off")  # on: a desktop notification (notify-send) for a mention; off: none, no bell
ATTEMPT_TIMEOUT = 5.0  # seconds per server for TCP connect and TLS handshake when a list names several


@dataclass(frozen=True)
class ClientSettings:
    """What the client reads at start: where to connect, how strictly, where pins live."""

    host: str = DEFAULT_HOST  # one server, or several comma-separated ("a:8888,b:8888"): servers.py
    port: int = DEFAULT_PORT  # the port of an entry that names none
    tls: str = "auto"  # auto: TLS when the server offers it, else plaintext with a warning
    known_servers: Optional[Path] = None  # None: <config dir>/chatcore/known_servers.json
    keyring: str = "auto"  # auto: remembered tokens in the OS keyring when there is a real one; off: the file
    notify: bool = True  # a mention while the window is not focused: notify-send (else the bell); False: neither
    max_servers: int = MAX_SERVERS  # the most entries a server list may have
    attempt_timeout: float = ATTEMPT_TIMEOUT  # per server of a list of several (one server: connection's 10 s)


def load_environment(env: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """``.env`` values overlaid with the process environment (or ``env`` when given, for tests)."""
    if env is not None:
        return dict(env)
    values = {k: v for k, v in dotenv_values(find_dotenv(usecwd=True)).items() if v is not None}
    values.update(os.environ)
    return values


def parse_port(text: str) -> int:
    """A TCP port number from user input; ValueError with a readable message otherwise."""
    try:
        port = int(text.strip())
    except ValueError:
        raise ValueError(f"the port must be a number, not {text.strip()!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"the port must be between 1 and 65535, not {port}")
    return port


def _positive(values: Mapping[str, str], name: str, default: float, kind: type) -> Any:
    """A positive number setting; a bad value is logged and the default kept."""
    text = values.get(name, "").strip()
    if not text:
        return default
    try:
        number = kind(text)
    except ValueError:
        number = 0
    if number <= 0:
        log.warning("%s=%r is not a positive number: using %s", name, text, default)
        return default
    return number


def load_settings(env: Optional[Mapping[str, str]] = None) -> ClientSettings:
    """Read ``SERVER_IP``, ``SERVER_PORT``, ``CHATCORE_CLIENT_TLS``, ``CHATCORE_CLIENT_KNOWN_SERVERS``,
    ``CHATCORE_CLIENT_KEYRING``, ``CHATCORE_CLIENT_NOTIFY``, ``CHATCORE_CLIENT_MAX_SERVERS``,
    ``CHATCORE_CLIENT_ATTEMPT_TIMEOUT``. ``SERVER_IP`` may be a list; it is checked when used."""
    values = load_environment(env)
    try:
        port = parse_port(values.get("SERVER_PORT", str(DEFAULT_PORT)))
    except ValueError:
        port = DEFAULT_PORT
    tls = values.get("CHATCORE_CLIENT_TLS", "auto").strip().lower()
    known = values.get("CHATCORE_CLIENT_KNOWN_SERVERS", "").strip()
    keyring = values.get("CHATCORE_CLIENT_KEYRING", "auto").strip().lower() or "auto"
    if keyring not in KEYRING_MODES:
        log.warning("CHATCORE_CLIENT_KEYRING=%r is not one of %s: keeping tokens in the private file (off)",
                    keyring, ", ".join(KEYRING_MODES))
        keyring = "off"  # what the user meant is unclear: do what the client did before it used keyrings
    notify = values.get("CHATCORE_CLIENT_NOTIFY", "on").strip().lower() or "on"
    if notify not in NOTIFY_MODES:
        log.warning("CHATCORE_CLIENT_NOTIFY=%r is not one of %s: notifications stay on", notify, ", ".join(NOTIFY_MODES))
        notify = "on"
    return ClientSettings(host=values.get("SERVER_IP", DEFAULT_HOST).strip() or DEFAULT_HOST, port=port,
                          tls=tls if tls in TLS_MODES else "auto",
                          known_servers=Path(known).expanduser() if known else None, keyring=keyring,
                          notify=notify == "on",
                          max_servers=_positive(values, "CHATCORE_CLIENT_MAX_SERVERS", MAX_SERVERS, int),
                          attempt_timeout=_positive(values, "CHATCORE_CLIENT_ATTEMPT_TIMEOUT", ATTEMPT_TIMEOUT, float))
