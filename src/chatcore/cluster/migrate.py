"""Create or upgrade every schema in the cluster's database: the core's, then each plugin's
(``chat_migrate``). Run by ``chatcore migrate`` and by every node as it starts; the advisory
lock in ``Schema.migrate`` makes nodes starting together take turns."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatcore.cluster.identity import CORE_SCHEMA
from chatcore.tls import CERT_NAME, KEY_NAME

if TYPE_CHECKING:
    from chatcore.cluster.database import Database

CORE = "chatcore"


def migrate_all(database: Database, hook: Any) -> dict[str, int]:
    """Migrate the core's schema and let every plugin migrate its own; the versions reached,
    by schema, as far as the core can see them."""
    reached = {CORE: database.schema(CORE).migrate(CORE_SCHEMA)}
    hook.chat_migrate(database=database)
    with database.connection("public") as conn:
        rows = conn.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'schema_version'"
                            " AND table_schema <> %s", (CORE,)).fetchall()
    for (name,) in rows:
        reached[str(name)] = database.schema(str(name)).version()
    return reached


def import_certificate(database: Database, directory: Path) -> bool:
    """Make the single node's self-signed certificate (``directory``) the cluster's, so the
    pins its clients hold stay valid; False when there is none or the cluster has one already."""
    cert, key = directory / CERT_NAME, directory / KEY_NAME
    if not (cert.is_file() and key.is_file()):
        return False
    with database.connection(CORE) as conn:
        done = conn.execute("INSERT INTO tls_identity VALUES (1, %s, %s) ON CONFLICT (id) DO NOTHING",
                            (cert.read_bytes(), key.read_bytes()))
        return done.rowcount == 1
