"""``chatcore backup`` under chat load and ``chatcore restore``: a server started on the
restored data has every message acknowledged before the backup began, each sender's messages
as an unbroken prefix of what it sent (one consistent snapshot), and every uploaded file,
hash verified; restore refuses a data directory that holds anything or that a server uses."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chatcore.backup import MANIFEST, BackupError, backup, restore
from chatcore.testing import PASSWORD, TestClient, server_config

PLUGINS = ["auth", "chat", "filexfer"]
ENV = {"CHATCORE_RATE_LIMIT": "100000", "CHATCORE_RATE_BURST": "100000"}
SENDERS = 3
CHUNK = 32 << 10


def chatcore(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOG_LEVEL": "WARNING", "CHATCORE_PLUGINS": ",".join(PLUGINS)}
    return subprocess.run([sys.executable, "-m", "chatcore", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)


def upload(client: TestClient, peer: str, data: bytes) -> str:
    ready = client.request(command="file_upload", peer=peer, filename="data.bin", size=len(data),
                           sha256=hashlib.sha256(data).hexdigest(), reply=("file_upload_ready", "error"))
    assert ready["type"] == "file_upload_ready", ready
    for offset in range(0, len(data), CHUNK):
        client.send(command="file_chunk", upload_id=ready["upload_id"], offset=offset,
                    data=base64.b64encode(data[offset:offset + CHUNK]).decode())
    done = client.request(command="file_upload_done", upload_id=ready["upload_id"], reply=("file_uploaded", "error"))
    assert done["type"] == "file_uploaded", done
    return str(done["file_id"])


def download(client: TestClient, file_id: str) -> bytes:
    client.send(command="file_download", file_id=file_id)
    parts = []
    while True:
        message = client.expect(("file_data", "file_data_end", "error"), file_id=file_id)
        assert message["type"] != "error", message
        if message["type"] == "file_data_end":
            return b"".join(parts)
        parts.append(base64.b64decode(message["data"]))


def room_history(client: TestClient) -> list[dict]:
    """Every message of the room, oldest first (v2 history objects, paged)."""
    messages: list[dict] = []
    before = None
    while True:
        request = {"command": "get_history", "peer": ""} | ({"before": before} if before else {})
        page = client.request(request)
        messages[:0] = page["messages"]
        if not page.get("has_more"):
            return messages
        before = page["next_before"]


class Sender(threading.Thread):
    """Sends room messages one after another, each after the previous one's ack, until told to stop."""

    def __init__(self, client: TestClient, name: str, stop: threading.Event, limit: int = 5000) -> None:
        super().__init__(name=f"sender-{name}", daemon=True)
        self.client, self.name_, self.stop, self.limit = client, name, stop, limit
        self.sent: list[str] = []
        self.acked: list[int] = []
        self.progress = threading.Semaphore(0)

    def run(self) -> None:
        for number in range(self.limit):
            if self.stop.is_set():
                return
            text = f"{self.name_} #{number}"
            self.sent.append(text)
            ack = self.client.request(command="chat", peer="", message=text, client_id=number, reply="chat_ack")
            self.acked.append(ack["id"])
            self.progress.release()


def test_backup_under_load_then_restore_keeps_every_acked_message_and_file(tmp_path, make_server, connect):
    server = make_server(plugins=PLUGINS, env=ENV)
    reader = connect(server)
    reader.login("reader", PASSWORD, register=True)
    assert reader.request(command="hello", protocol=2)["protocol"] == 2
    uploader = connect(server)
    uploader.login("uploader", PASSWORD, register=True)
    files = {}
    for size in (1, 100_000, 300_000):
        data = os.urandom(size)
        files[upload(uploader, "reader", data)] = hashlib.sha256(data).hexdigest()
    stop = threading.Event()
    senders = []
    for index in range(SENDERS):
        client = connect(server, timeout=30)
        client.login(f"sender{index}", PASSWORD, register=True)
        senders.append(Sender(client, f"sender{index}", stop))
    for sender in senders:
        sender.start()
    for sender in senders:  # every sender under way before the backup starts
        for _ in range(50):
            assert sender.progress.acquire(timeout=30)
    acked_before = {sender.name_: len(sender.acked) for sender in senders}
    late_upload: dict[str, str] = {}

    def upload_during_backup() -> None:
        client = connect(server, timeout=30)
        client.login("late", PASSWORD, register=True)
        data = os.urandom(200_000)
        late_upload[upload(client, "reader", data)] = hashlib.sha256(data).hexdigest()

    late = threading.Thread(target=upload_during_backup)
    late.start()
    made = chatcore(tmp_path, "backup", str(tmp_path / "backup"), "--data-dir", str(server.data_dir))
    stop.set()
    late.join(30)
    for sender in senders:
        sender.join(30)
    assert made.returncode == 0, made.stderr
    assert "backed up" in made.stdout and (tmp_path / "backup" / MANIFEST).is_file()
    assert all(len(s.acked) > acked_before[s.name_] for s in senders)  # the load went on during the backup

    restored_dir = tmp_path / "restored"
    put_back = chatcore(tmp_path, "restore", str(tmp_path / "backup"), "--data-dir", str(restored_dir))
    assert put_back.returncode == 0, put_back.stderr
    again = make_server(plugins=PLUGINS, env=ENV, data_dir=restored_dir)
    assert again.tls_fingerprint == server.tls_fingerprint  # the pinned certificate came along
    client = connect(again, timeout=30)
    client.login("reader", PASSWORD)
    assert client.request(command="hello", protocol=2)["protocol"] == 2
    history = room_history(client)
    for sender in senders:
        mine = [m["message"] for m in history if m["sender"] == sender.name_]
        assert len(mine) >= acked_before[sender.name_]
        assert mine == sender.sent[:len(mine)]  # a prefix: no message lost before a later one was kept
    for file_id, digest in {**files, **late_upload}.items():
        listed = {f["file_id"] for f in client.request(command="file_list")["files"]}
        if file_id in late_upload and file_id not in listed:
            continue  # finished after the snapshot: not in the backup, which is right
        assert hashlib.sha256(download(client, file_id)).hexdigest() == digest


def test_backup_without_a_server_and_the_refusals_of_restore(tmp_path, make_server, login_as, register):
    server = make_server(plugins=PLUGINS)
    alice = login_as(server, "alice")
    register(server, "bob")
    assert alice.request(command="chat", peer="", message="kept", reply="chat_ack")["id"]
    assert alice.request(command="chat", peer="bob", message="for bob, offline", reply="chat_ack")["id"]
    partial = os.urandom(3 * CHUNK + 100)  # an upload cut off after two chunks: it resumes after the restore
    ready = alice.request(command="file_upload", peer="bob", filename="half.bin", size=len(partial),
                          sha256=hashlib.sha256(partial).hexdigest(), reply="file_upload_ready")
    for offset in (0, CHUNK):
        alice.send(command="file_chunk", upload_id=ready["upload_id"], offset=offset,
                   data=base64.b64encode(partial[offset:offset + CHUNK]).decode())
    alice.sync()
    config = server.config
    server.stop()
    copied: list[int] = []
    manifest, skipped = backup(config, tmp_path / "offline", copied.append)
    assert {e["path"] for e in manifest["files"]} >= {"auth/accounts.db", "chat/messages.sqlite3",
                                                      "filexfer/index.sqlite3", "tls/cert.pem", "tls/key.pem"}
    assert sum(copied) >= sum(e["size"] for e in manifest["files"]) > 0 and skipped == []
    assert oct((tmp_path / "offline").stat().st_mode & 0o777) == "0o700"
    with pytest.raises(BackupError, match="not an empty directory"):
        backup(config, tmp_path / "offline")

    running = make_server(plugins=PLUGINS)  # on the original data: in use, and not empty
    with pytest.raises(BackupError, match="a chatcore server is running"):
        restore(running.config, tmp_path / "offline")
    running.stop()
    with pytest.raises(BackupError, match="is not empty"):
        restore(config, tmp_path / "offline")
    with pytest.raises(BackupError, match="is not a chatcore backup"):
        restore(config, tmp_path)

    target = server_config(tmp_path / "fresh", PLUGINS)
    damaged = tmp_path / "offline" / "chat" / "messages.sqlite3"
    original = damaged.read_bytes()
    damaged.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(BackupError, match="damaged"):
        restore(target, tmp_path / "offline")
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == ["server.lock"]  # left empty again
    damaged.write_bytes(original)
    restore(target, tmp_path / "offline")
    fresh = make_server(plugins=PLUGINS, data_dir=tmp_path / "fresh")
    bob = login_as(fresh, "bob", register=False)
    assert bob.expect("private_message", offline=True)["message"] == "for bob, offline"  # still pending
    assert [m[2] for m in bob.request(command="get_history", peer="")["data"]] == ["kept"]
    alice = login_as(fresh, "alice", register=False)
    again = alice.request(command="file_upload", peer="bob", filename="half.bin", size=len(partial),
                          sha256=hashlib.sha256(partial).hexdigest(), reply="file_upload_ready")
    assert again["upload_id"] == ready["upload_id"] and again["offset"] == 2 * CHUNK
    for offset in range(2 * CHUNK, len(partial), CHUNK):
        alice.send(command="file_chunk", upload_id=again["upload_id"], offset=offset,
                   data=base64.b64encode(partial[offset:offset + CHUNK]).decode())
    file_id = alice.request(command="file_upload_done", upload_id=again["upload_id"], reply="file_uploaded")["file_id"]
    assert download(bob, file_id) == partial


def test_a_manifest_naming_paths_outside_the_backup_is_refused(tmp_path):
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / MANIFEST).write_text('{"format": 1, "files": [{"path": "../../etc/passwd", '
                                              '"kind": "file", "size": 1, "sha256": "00"}]}')
    with pytest.raises(BackupError, match="names a file it may not"):
        restore(server_config(tmp_path / "fresh", PLUGINS), tmp_path / "evil")


def test_a_database_copied_page_by_page_is_one_snapshot_while_another_connection_writes(tmp_path, monkeypatch):
    """Another connection commits a row between every two steps of the copy (from the progress
    callback, so it is certain to happen): the copy still takes one step per page, never starting
    over, and holds exactly the rows of the moment it began."""
    import sqlite3

    from chatcore import backup as backups
    from chatcore.backup import Backup

    source = tmp_path / "data" / "plugin" / "busy.sqlite3"
    source.parent.mkdir(parents=True)
    writer = sqlite3.connect(source, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA synchronous=OFF")  # a commit per step, without a sync each
    writer.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    writer.executemany("INSERT INTO rows (body) VALUES (?)", [("x" * 500,)] * 1000)  # over a hundred pages
    steps: list[int] = []

    def write_between_steps(copied: int) -> None:
        steps.append(copied)
        if len(steps) <= 500:  # bounded: an unpinned copy would start over after each of these
            writer.execute("INSERT INTO rows (body) VALUES (?)", ("y" * 500,))

    monkeypatch.setattr(backups, "PAGES_PER_STEP", 1)
    copy = Backup(tmp_path / "data", tmp_path / "copy", write_between_steps).database(source)
    writer.close()
    check = sqlite3.connect(copy)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    pages = check.execute("PRAGMA page_count").fetchone()[0]
    assert len(steps) == pages > 100  # one step per page: it never started over
    assert check.execute("SELECT count(*), min(id), max(id) FROM rows").fetchone() == (1000, 1, 1000)
    check.close()


def test_the_backup_draws_a_progress_bar_on_a_terminal(tmp_path, make_server, login_as):
    import pty
    import select

    server = make_server(plugins=PLUGINS)
    login_as(server, "alice")
    import fcntl
    import struct
    import termios

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    env = {**os.environ, "LOG_LEVEL": "WARNING", "CHATCORE_PLUGINS": ",".join(PLUGINS)}
    process = subprocess.Popen([sys.executable, "-m", "chatcore", "backup", str(tmp_path / "b"), "--data-dir",
                                str(server.data_dir)], stdout=subprocess.PIPE, stderr=terminal, env=env, cwd=tmp_path)
    os.close(terminal)
    drawn = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        assert ready, "the backup printed nothing on its terminal within 60 s"
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the other end closed: the process is done
            break
        if not chunk:
            break
        drawn += chunk
    os.close(controller)
    assert process.wait(60) == 0
    assert b"backup:" in drawn and b"%|" in drawn and b"B/s" in drawn, drawn  # a byte bar, cleared at the end
