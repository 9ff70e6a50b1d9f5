"""``chatcore backup DEST`` and ``chatcore restore SRC``: a consistent copy of every plugin's
storage, taken while the server runs or not, and put back into an empty data directory.

Each plugin copies its own storage through the ``chat_backup`` hook, with a ``Backup``: a
SQLite database goes through SQLite's online backup API from a read transaction held for the
whole copy, so it is one consistent snapshot however busy the server's writers are (WAL lets
them go on meanwhile); other files are copied as they are. The backup runs in the CLI's own
process, never in the server, so it works the same with no server running. Last comes
``chatcore-backup.json``, the manifest (every file with its size and SHA-256): a directory
without it is no backup. ``restore`` checks every hash while copying into the data directory,
which must be empty and not in use by a server, then lets each plugin check its part
(``chat_restore``); on any failure the data directory is left empty again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Optional

import pluggy

from chatcore import __version__
from chatcore.admin import LOCK_NAME, SOCKET_NAME, DataDirInUse, DataDirLock
from chatcore.config import Config
from chatcore.plugins import create_manager

log = logging.getLogger(__name__)

MANIFEST = "chatcore-backup.json"
FORMAT = 1  # the manifest's format
CHUNK = 1 << 20  # bytes per read when copying or hashing a file
PAGES_PER_STEP = 1024  # database pages per step of the online backup (one progress update each)
NOT_DATA = {LOCK_NAME, SOCKET_NAME}  # what a data directory holds that is no one's storage
Progress = Callable[[int], None]  # bytes just copied


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message says why, in one sentence."""


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while piece := fh.read(CHUNK):
            digest.update(piece)
    return digest.hexdigest()


def data_size(data_dir: Path) -> int:
    """Bytes of every file in the data directory: what a progress bar can expect to copy."""
    total = 0
    for root, _, files in os.walk(data_dir):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
            except OSError:
                pass
    return total


class Backup:
    """The backup being written to ``dest``, for the plugins' ``chat_backup`` hooks. Paths
    given to it must lie in ``data_dir``; each lands at the same relative place in ``dest``."""

    def __init__(self, data_dir: Path, dest: Path, progress: Progress = lambda _: None) -> None:
        self.data_dir, self.dest, self.progress = Path(data_dir), Path(dest), progress
        self.entries: dict[str, dict[str, Any]] = {}  # relative path -> manifest entry

    def _target(self, source: Path) -> tuple[str, Path]:
        try:
            relative = Path(source).resolve().relative_to(self.data_dir.resolve())
        except ValueError:
            raise BackupError(f"{source} is not in the data directory {self.data_dir}") from None
        target = self.dest / relative
        _private_dir(target.parent)
        return relative.as_posix(), target

    def database(self, source: Path) -> Optional[Path]:
        """Copy the SQLite database ``source`` as one consistent snapshot (a server may be
        writing it); returns the copy's path, which the caller may still edit, or None when
        there is no such database."""
        if not Path(source).is_file():
            return None
        relative, target = self._target(source)
        src = sqlite3.connect(str(source), timeout=30.0, isolation_level=None)
        dst = sqlite3.connect(str(target), isolation_level=None)
        try:
            page_size = int(src.execute("PRAGMA page_size").fetchone()[0])
            src.execute("BEGIN")  # a read transaction over every step: the snapshot cannot move
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            done = [0]

            def step(status: int, remaining: int, total: int) -> None:
                copied = total - remaining
                if copied > done[0]:
                    self.progress((copied - done[0]) * page_size)
                done[0] = copied

            src.backup(dst, pages=PAGES_PER_STEP, progress=step)
            src.execute("COMMIT")
        finally:
            dst.close()
            src.close()
        os.chmod(target, 0o600)
        self.entries[relative] = {"path": relative, "kind": "database"}
        return target

    def file(self, source: Path) -> Optional[Path]:
        """Copy a file as it is now (read to its end); returns the copy's path, or None when
        the file is gone (deleted meanwhile: the caller drops what named it)."""
        relative, target = self._target(source)
        digest, size = hashlib.sha256(), 0
        try:
            reader = open(source, "rb")
        except FileNotFoundError:
            return None
        with reader, open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as writer:
            while piece := reader.read(CHUNK):
                writer.write(piece)
                digest.update(piece)
                size += len(piece)
                self.progress(len(piece))
        self.entries[relative] = {"path": relative, "kind": "file", "size": size, "sha256": digest.hexdigest()}
        return target

    def finish(self) -> dict[str, Any]:
        """Hash the databases (their copies may have been edited), write the manifest; returns it."""
        for entry in self.entries.values():
            if entry["kind"] == "database":
                path = self.dest / entry["path"]
                entry.update(size=path.stat().st_size, sha256=_hash_file(path))
        manifest = {"format": FORMAT, "chatcore": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "source": str(self.data_dir), "files": sorted(self.entries.values(), key=lambda e: e["path"])}
        written = self.dest / (MANIFEST + ".part")
        written.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.replace(written, self.dest / MANIFEST)
        return manifest


def each_plugin(manager: pluggy.PluginManager, hook: str, **kwargs: Any) -> None:
    """Call every implementation of ``hook`` in pluggy's order; the first failure stops the
    job as a BackupError naming the plugin."""
    for impl in reversed(getattr(manager.hook, hook).get_hookimpls()):
        try:
            impl.function(**{name: kwargs[name] for name in impl.argnames})
        except BackupError:
            raise
        except Exception as exc:
            raise BackupError(f"plugin {impl.plugin_name} failed in {hook}: {exc}") from exc


def backup(config: Config, dest: Path, progress: Progress = lambda _: None) -> tuple[dict[str, Any], list[str]]:
    """Back up every enabled plugin's storage (and the core's) into ``dest``, which must not
    exist or be empty. Returns the manifest and the top-level entries of the data directory
    that no plugin copied (a disabled plugin's, or strangers')."""
    from chatcore.core_plugin import CorePlugin  # the core plugin imports the moderation module, which needs users

    data_dir, dest = config.data_dir, Path(dest).resolve()
    if not data_dir.is_dir():
        raise BackupError(f"there is no data directory {data_dir}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists and is not an empty directory")
    if dest == data_dir or data_dir in dest.parents:
        raise BackupError("the backup cannot go inside the data directory")
    manager = create_manager(config, core=CorePlugin())
    _private_dir(dest)
    job = Backup(data_dir, dest, progress)
    try:
        each_plugin(manager, "chat_backup", config=config, backup=job)
        manifest = job.finish()
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    covered = {PurePosixPath(entry["path"]).parts[0] for entry in manifest["files"]}
    skipped = sorted(entry.name for entry in data_dir.iterdir() if entry.name not in covered | NOT_DATA)
    return manifest, skipped


def refuse_newer_schema(path: Path, known: int, what: str) -> None:
    """For ``chat_restore``: BackupError when the database's ``PRAGMA user_version`` is newer
    than ``known``, the schema the plugin understands (a backup made by a newer version)."""
    db = sqlite3.connect(str(path))
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()
    if version > known:
        raise BackupError(f"{what} in the backup has schema {version}, newer than this version understands "
                          f"({known}): upgrade chatcore before restoring it")


class Restore:
    """A backup being restored into ``data_dir``, for the plugins' ``chat_restore`` hooks."""

    def __init__(self, source: Path, data_dir: Path, manifest: dict[str, Any]) -> None:
        self.source, self.data_dir, self.manifest = Path(source), Path(data_dir), manifest

    def restored(self, plugin: str) -> list[Path]:
        """The files restored under ``<data_dir>/<plugin>/``."""
        return [self.data_dir / e["path"] for e in self.manifest["files"] if e["path"].split("/")[0] == plugin]


def read_manifest(source: Path) -> dict[str, Any]:
    """The backup's manifest, each path checked to stay inside the backup; BackupError if not one."""
    try:
        manifest = json.loads((Path(source) / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{source} is not a chatcore backup (it has no {MANIFEST})") from None
    except ValueError:
        raise BackupError(f"{source}/{MANIFEST} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), list):
        raise BackupError(f"{source}/{MANIFEST} is not a backup manifest of format {FORMAT}")
    for entry in manifest["files"]:
        path = entry.get("path") if isinstance(entry, dict) else None
        pure = PurePosixPath(path) if isinstance(path, str) else PurePosixPath()
        parts = pure.parts
        if not parts or pure.is_absolute() or ".." in parts or parts[0] in NOT_DATA \
                or not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("size"), int):
            raise BackupError(f"{source}/{MANIFEST} names a file it may not: {path!r}")
    return manifest


def restore(config: Config, source: Path, progress: Progress = lambda _: None) -> dict[str, Any]:
    """Copy the backup in ``source`` into the (empty) data directory, verifying every file's
    hash, then let each plugin check its part. Refuses a data directory that holds anything
    or that a server uses; on failure leaves it empty again. Returns the manifest."""
    from chatcore.core_plugin import CorePlugin

    source, data_dir = Path(source).resolve(), config.data_dir
    manifest = read_manifest(source)
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except DataDirInUse:
        raise BackupError(f"a chatcore server is running on {data_dir}: stop it, and restore into an empty "
                          f"data directory") from None
    try:
        if any(entry.name != LOCK_NAME for entry in data_dir.iterdir()):
            raise BackupError(f"the data directory {data_dir} is not empty: restore only into an empty one")
        try:
            for entry in manifest["files"]:
                _restore_file(source / entry["path"], data_dir / entry["path"], entry, progress)
            each_plugin(create_manager(config, core=CorePlugin()), "chat_restore", config=config,
                        restore=Restore(source, data_dir, manifest))
        except BaseException:
            for entry in data_dir.iterdir():  # leave it as empty as it was
                if entry.name != LOCK_NAME:
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            raise
    finally:
        lock.release()
    return manifest


def _restore_file(source: Path, target: Path, entry: dict[str, Any], progress: Progress) -> None:
    """Copy one file of the backup, checking its size and SHA-256 as it goes."""
    _private_dir(target.parent)
    digest, size = hashlib.sha256(), 0
    try:
        reader = open(source, "rb")
    except FileNotFoundError:
        raise BackupError(f"the backup lacks {entry['path']}") from None
    with reader, open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as writer:
        while piece := reader.read(CHUNK):
            writer.write(piece)
            digest.update(piece)
            size += len(piece)
            progress(len(piece))
    if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
        raise BackupError(f"{entry['path']} in the backup is damaged (its size or SHA-256 differs from the manifest)")
