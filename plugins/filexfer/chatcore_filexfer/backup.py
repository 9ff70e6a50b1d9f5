"""The filexfer plugin's part of ``chatcore backup`` and ``chatcore restore``.

The index and the spool must agree: the index is copied first (one snapshot), then exactly
the spool files its rows name. A file deleted meanwhile (delivered, declined, expired) takes
its row out of the copy; a file uploaded after the snapshot is not in the backup at all. A
complete file never changes, so its copy is exact; an unfinished upload is copied as far as
it has come, and resumes from there (the spool file's length is the truth about it).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from chatcore.backup import Backup, BackupError, Restore
from chatcore_filexfer.service import INDEX_FILE, SPOOL_DIR

NAME = "filexfer"
SPOOL_NAME = re.compile(r"[0-9a-f]{32}")  # what the plugin names spool files (spool.Spool.new_name)


def back_up(data_dir: Path, backup: Backup) -> None:
    """Copy the index, then the spool files its snapshot names; drop rows whose file went."""
    root = data_dir / NAME
    copy = backup.database(root / INDEX_FILE)
    if copy is None:
        return
    db = sqlite3.connect(str(copy), isolation_level=None)
    try:
        gone = [upload_id for upload_id, spool_name in db.execute("SELECT upload_id, spool_name FROM files").fetchall()
                if not SPOOL_NAME.fullmatch(str(spool_name)) or backup.file(root / SPOOL_DIR / spool_name) is None]
        db.executemany("DELETE FROM files WHERE upload_id = ?", [(upload_id,) for upload_id in gone])
    finally:
        db.close()


def check_restored(restore: Restore) -> None:
    """Every row of the restored index has its spool file (what the backup guaranteed)."""
    index = restore.data_dir / NAME / INDEX_FILE
    if not index.is_file():
        return
    db = sqlite3.connect(str(index))
    try:
        names = [row[0] for row in db.execute("SELECT spool_name FROM files")]
    finally:
        db.close()
    missing = [name for name in names if not (restore.data_dir / NAME / SPOOL_DIR / name).is_file()]
    if missing:
        raise BackupError(f"the file index names {len(missing)} spool file(s) the backup lacks")
