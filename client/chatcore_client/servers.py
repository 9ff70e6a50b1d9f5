"""Server lists: several ``host:port`` entries (the nodes of one cluster) tried in turn.

One text field (``SERVER_IP``, the Login window's Server field, ``--server``) names one server or
several, comma-separated; an entry without a port takes the port field's. Every node of a
cluster serves the same certificate and accepts the same device tokens, so pins and remembered
logins are kept per list (``list_key``), and a list of one is keyed exactly as a single server.
"""

from __future__ import annotations

from typing import Optional, Sequence

from chatcore_client.pinning import server_key

Address = tuple[str, int]
MAX_SERVERS = 16  # default cap on a list's entries (CHATCORE_CLIENT_MAX_SERVERS)


class ServerListError(ValueError):
    """A server list that cannot be used; the message is a sentence for the user."""


def _port(text: str, entry: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ServerListError(f"{entry!r}: the port must be a number, not {text!r}") from None
    if not 0 < port < 65536:
        raise ServerListError(f"{entry!r}: the port must be between 1 and 65535, not {port}")
    return port


def parse_entry(entry: str, default_port: Optional[int]) -> Address:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 literal (default port)."""
    text = entry.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ServerListError(f"{entry!r}: an IPv6 address in brackets is written [address]:port")
        port_text: Optional[str] = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:  # no colon, or a bare IPv6 literal (several colons): the whole entry is the host
        host, port_text = text, None
    if not host:
        raise ServerListError(f"{entry!r}: the server's address (before the port) is missing")
    if any(c.isspace() or c in "[]/,@" for c in host):
        raise ServerListError(f"{entry!r}: {host!r} is not a host name or an IP address")
    if port_text is None:
        if default_port is None:
            raise ServerListError(f"{entry!r}: give its port ({server_key(host, 8888)}) or fill in the port field")
        return host, default_port
    return host, _port(port_text.strip(), entry)


def parse_servers(text: str, default_port: Optional[int], limit: int = MAX_SERVERS) -> tuple[Address, ...]:
    """The servers named in ``text`` (comma-separated), in order; ServerListError when an entry is
    empty or malformed, a server is listed twice, or there are more than ``limit``."""
    entries = text.split(",")
    if not text.strip():
        raise ServerListError("no server is given")
    if len(entries) > limit:
        raise ServerListError(f"{len(entries)} servers listed: at most {limit} are tried "
                              "(CHATCORE_CLIENT_MAX_SERVERS)")
    servers: list[Address] = []
    for number, entry in enumerate(entries, 1):
        if not entry.strip():
            raise ServerListError(f"entry {number} of the server list is empty (a stray comma?)")
        server = parse_entry(entry, default_port)
        if server in servers:
            raise ServerListError(f"{server_key(*server)} is listed twice")
        servers.append(server)
    return tuple(servers)


def list_key(servers: Sequence[Address]) -> str:
    """The key of a list in the pin and login stores: ``host:port`` for one server (as before
    lists existed), else the entries sorted and comma-joined, so the order typed does not matter."""
    return ",".join(sorted(server_key(host, port) for host, port in servers))


def describe(servers: Sequence[Address]) -> str:
    """The list for people, in the order tried: ``a:8888, b:8888``."""
    return ", ".join(server_key(host, port) for host, port in servers)


def rotation(count: int, start: int) -> list[int]:
    """Indexes of a walk through ``count`` servers from ``start`` (wrapping), each once."""
    return [(start + step) % count for step in range(count)] if count else []
