"""Trust on first use: remember each server's certificate fingerprint, like SSH's known_hosts.

A server is ``host:port``; a cluster's nodes share one entry (``key``: the server list's
``servers.list_key``), since they all serve the same certificate. First contact asks the user;
the same fingerprint later is accepted silently; a different one is refused with a warning
until the user removes the old entry. Certificates that verify against the system CAs for the
host name never get here.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

FILENAME = "known_servers.json"

# ask(host, port, fingerprint) -> True to trust the certificate; called on first contact only
AskTrust = Callable[[str, int, str], bool]


class Verdict(enum.Enum):
    """What the store knows about a fingerprint for a server."""

    NEW = "new"
    MATCH = "match"
    CHANGED = "changed"


class PinError(Exception):
    """A certificate was not trusted; the message is meant for the user."""


class CertificateChanged(PinError):
    """The server presents a different certificate than the one pinned: possibly an attack."""


class CertificateRejected(PinError):
    """The user declined a server's certificate on first contact."""


def config_dir(env: Optional[Mapping[str, str]] = None) -> Path:
    """``$XDG_CONFIG_HOME/chatcore`` (``~/.config/chatcore`` when unset), per the XDG spec."""
    values = os.environ if env is None else env
    base = values.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "chatcore"


def default_path(env: Optional[Mapping[str, str]] = None) -> Path:
    """Where pins live unless the settings say otherwise."""
    return config_dir(env) / FILENAME


def fingerprint(der: bytes) -> str:
    """The certificate's SHA-256 as colon-separated upper-case hex pairs (what browsers show)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def write_private_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically with ``data`` as JSON, readable by this user only (directory
    0700, file 0600): the known servers, the remembered logins."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def server_key(host: str, port: int) -> str:
    """The store key of a server; IPv6 literals get brackets so the port stays unambiguous."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def changed_warning(host: str, port: int, pinned: str, presented: str, path: Path,
                    key: Optional[str] = None) -> str:
    """The SSH-style refusal shown when a pinned certificate changed (``key``: the entry to edit)."""
    entry = key or server_key(host, port)
    return (
        "WARNING: THE SERVER'S CERTIFICATE HAS CHANGED!\n"
        f"Someone could be intercepting your connection to {server_key(host, port)} "
        "(a man-in-the-middle attack), or the server's operator replaced its certificate.\n"
        f"Remembered fingerprint: SHA256 {pinned}\n"
        f"Presented fingerprint:  SHA256 {presented}\n"
        "The connection was refused. If the operator confirms the new fingerprint, remove the "
        f"entry for {entry} from {path} and connect again."
    )


class PinStore:
    """The known-servers file: ``{"host:port": {"sha256": fingerprint, "added": iso time}}``; a
    cluster's entry is keyed by its list (``"a:8888,b:8888"``). Every method takes the entry's
    ``key``, which defaults to ``host:port``."""

    def __init__(self, path: Optional[Path] = None) -> None:
        self.path = path or default_path()
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise PinError(f"cannot read the known servers file {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise PinError(f"the known servers file {self.path} is not a JSON object")
        return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)}

    def get(self, host: str, port: int, key: Optional[str] = None) -> Optional[str]:
        """The pinned fingerprint of a server (or of the cluster ``key``), or None."""
        with self._lock:
            entry = self._load().get(key or server_key(host, port))
        return None if entry is None else entry["sha256"]

    def check(self, host: str, port: int, presented: str, key: Optional[str] = None) -> Verdict:
        """Compare a presented fingerprint with the pin."""
        pinned = self.get(host, port, key)
        if pinned is None:
            return Verdict.NEW
        return Verdict.MATCH if pinned == presented else Verdict.CHANGED

    def remember(self, host: str, port: int, presented: str, key: Optional[str] = None) -> None:
        """Pin a fingerprint; the file is private to the user and replaced atomically."""
        with self._lock:
            data = self._load()
            data[key or server_key(host, port)] = {"sha256": presented,
                                            "added": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            self._save(data)

    def forget(self, host: str, port: int, key: Optional[str] = None) -> None:
        """Remove a server's pin (after the operator confirmed a new certificate)."""
        with self._lock:
            data = self._load()
            if data.pop(key or server_key(host, port), None) is not None:
                self._save(data)

    def _save(self, data: dict[str, dict[str, str]]) -> None:
        write_private_json(self.path, data)

    def trust(self, host: str, port: int, presented: str, ask: Optional[AskTrust],
              key: Optional[str] = None) -> None:
        """Accept a self-signed certificate per TOFU, or raise a PinError saying why not."""
        verdict = self.check(host, port, presented, key)
        if verdict is Verdict.MATCH:
            return
        if verdict is Verdict.CHANGED:
            pinned = self.get(host, port, key) or ""
            raise CertificateChanged(changed_warning(host, port, pinned, presented, self.path, key))
        if ask is None or not ask(host, port, presented):
            raise CertificateRejected(f"The certificate of {server_key(host, port)} was not trusted "
                                      f"(SHA256 {presented}).")
        self.remember(host, port, presented, key)
