"""One TLS certificate for every node, so a client's pinned fingerprint holds on any of them.

Unless the operator configured a certificate, the first node to start makes a self-signed one
and stores it in the core's schema; every node, that one included, then uses what is stored
(``INSERT ... ON CONFLICT DO NOTHING`` decides the race), written to its own data directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from chatcore.tls import CERT_NAME, KEY_NAME, create_self_signed, write_private

if TYPE_CHECKING:
    from chatcore.cluster.database import Schema

CORE_SCHEMA = [
    "CREATE TABLE tls_identity (id integer PRIMARY KEY CHECK (id = 1), cert bytea NOT NULL, key bytea NOT NULL)",
]


def shared_certificate(schema: Schema, directory: Path) -> tuple[Path, Path]:
    """The cluster's certificate and key, written into ``directory``; made once cluster-wide."""
    with tempfile.TemporaryDirectory() as scratch:
        cert_path, key_path = create_self_signed(Path(scratch))
        with schema.connection() as conn:
            conn.execute("INSERT INTO tls_identity VALUES (1, %s, %s) ON CONFLICT (id) DO NOTHING",
                         (cert_path.read_bytes(), key_path.read_bytes()))
            row = conn.execute("SELECT cert, key FROM tls_identity WHERE id = 1").fetchone()
    assert row is not None
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert, key = directory / CERT_NAME, directory / KEY_NAME
    write_private(key, bytes(row[1]))
    cert.write_bytes(bytes(row[0]))
    return cert, key
