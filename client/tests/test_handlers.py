"""Handlers with a fake view: state changes, what they send, what they ask the view to show."""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest

from chatcore_client.handlers import Context, Credentials, Dispatcher
from chatcore_client.handlers.auth import AuthHandlers
from chatcore_client.handlers.chat import ChatHandlers
from chatcore_client.handlers.core import CoreHandlers
from chatcore_client.handlers.filexfer import FileHandlers
from chatcore_client.state import ROOM, AppState
from chatcore_client.transfers import Transfers
from chatcore_client.upload import Upload

HELLO = {"type": "hello", "plugins": ["auth", "chat", "filexfer"],
         "commands": ["hello", "login", "register", "get_users", "chat", "get_history", "file_upload", "file_download",
                      "file_decline"], "tls": True}


class FakeView:
    """Records every call as (method, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for method, args in self.calls if method == name]


class Harness:
    def __init__(self) -> None:
        self.view = FakeView()
        self.sent: list[dict[str, Any]] = []
        self.state = AppState()
        self.delayed: list[tuple[float, Any]] = []  # (seconds, action) handed to Transfers' timer
        transfers = Transfers(self.sent.append, later=lambda seconds, action: self.delayed.append((seconds, action)))
        self.ctx = Context(self.state, self.view, self.sent.append, transfers, lambda fn: fn())
        self.dispatcher = Dispatcher(self.view)
        self.core, self.auth = CoreHandlers(self.ctx), AuthHandlers(self.ctx)
        self.chat, self.files = ChatHandlers(self.ctx), FileHandlers(self.ctx)
        for handlers in (self.core, self.auth, self.chat, self.files):
            handlers.register(self.dispatcher)

    def feed(self, **message: Any) -> None:
        self.dispatcher.dispatch(message)

    def login(self, user: str = "alice", also: tuple[str, ...] = ()) -> None:
        """Log in to a server that offers HELLO's commands and ``also`` these."""
        self.feed(**{**HELLO, "commands": [*HELLO["commands"], *also]})
        self.auth.login(user, "pw")
        self.feed(type="login_result", username=user, response="ok")


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_a_failing_handler_is_shown_and_the_loop_goes_on(h):
    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("boom")
    h.dispatcher.register("peer_joined", broken)
    h.login()
    h.feed(type="peer_joined", peer="bob")
    assert any("boom" in args[0] for args in h.view.named("show_error"))
    assert h.state.conversation("bob").online  # the other handler for the same event still ran
    h.feed(type="no_such_event")  # unknown events are ignored
    h.feed(type="error", command="weird", code="x", reason="Something odd")
    assert h.view.named("show_error")[-1] == ("The server said: Something odd",)


def test_login_success_asks_who_is_online_and_loads_the_room(h):
    h.login()
    assert h.state.user == "alice" and h.view.named("logged_in") == [("alice",)]
    assert {"command": "get_users"} in h.sent
    assert {"command": "get_history", "peer": ROOM, "limit": 50} in h.sent
    h.feed(type="get_users", data=["bob", "carol"])
    assert [c.key for c in h.state.ordered()] == [ROOM, "bob", "carol"]


def test_login_failure_shows_the_servers_reason(h):
    h.feed(**HELLO)
    h.auth.login("alice", "wrong")
    h.feed(type="login_result", username="alice", response="fail", reason="Incorrect username or password!")
    assert h.view.named("login_failed") == [("Incorrect username or password!",)]


def test_register_then_logs_in(h):
    h.feed(**HELLO)
    h.auth.register_account("alice", "pw")
    h.feed(type="register_result", username="alice", response="ok")
    assert h.sent[-1] == {"command": "login", "username": "alice", "password": "pw"}


def test_server_without_auth_says_so(h):
    h.auth.login("alice", "pw")
    h.feed(type="error", command="login", code="unknown_command", reason="unknown command 'login'")
    assert "auth plugin" in h.view.named("login_failed")[0][0]


def test_join_and_leave_notices(h):
    h.login()
    h.feed(type="peer_joined", peer="bob")
    h.feed(type="peer_left", peer="bob")
    texts = [line.text for line in h.state.conversation(ROOM).lines]
    assert texts == ["bob joined", "bob left"] and not h.state.conversation("bob").online


def test_batched_presence_marks_online_and_notices_each_of_a_few(h):
    h.login()
    h.feed(type="presence", joined=["bob", "carol", "alice"], left=[])
    h.feed(type="presence", joined=[], left=["bob"])
    texts = [line.text for line in h.state.conversation(ROOM).lines]
    assert texts == ["bob joined", "carol joined", "bob left"]  # nothing about oneself
    assert h.state.conversation("carol").online and not h.state.conversation("bob").online
    assert "alice" not in h.state.conversations


def test_batched_presence_summarises_a_crowd(h):
    h.login()
    crowd = [f"user{i}" for i in range(40)]
    h.feed(type="presence", joined=crowd, left=["gone", 7])  # a non-string name is skipped
    assert [line.text for line in h.state.conversation(ROOM).lines] == ["40 joined, 1 left"]
    assert all(h.state.conversation(name).online for name in crowd)


def test_messages_count_unread_outside_the_current_conversation(h):
    h.login()
    h.feed(type="private_message", peer="bob", message="hi", id=5, ts="2024-01-01T10:00:00Z", to="alice")
    h.feed(type="private_message", peer="bob", message="hi", id=5, ts="2024-01-01T10:00:00Z", to="alice")  # duplicate
    bob = h.state.conversation("bob")
    assert bob.unread == 1 and [line.text for line in bob.lines] == ["hi"]
    h.chat.open("bob")
    assert bob.unread == 0 and h.sent[-1] == {"command": "get_history", "peer": "bob", "limit": 50}


def test_own_message_appears_on_ack(h):
    h.login()
    h.chat.open("bob")
    assert h.chat.send_text("hello")
    command = h.sent[-1]
    assert command["command"] == "chat" and command["peer"] == "bob"
    assert h.state.conversation("bob").lines == []
    h.feed(type="chat_ack", id=9, ts="2024-01-01T10:00:00Z", peer="bob", client_id=command["client_id"])
    line = h.state.conversation("bob").lines[-1]
    assert (line.text, line.own, line.id) == ("hello", True, 9)


def test_refused_message_is_explained(h):
    h.login()
    h.chat.open("nobody")
    h.chat.send_text("hello?")
    h.feed(type="error", command="chat", code="unknown_peer", reason="no user named 'nobody'")
    assert "Not sent" in h.state.conversation("nobody").lines[-1].text and not h.state.pending


def test_offline_messages_are_marked(h):
    h.login()
    h.feed(type="private_message", peer="bob", message="while away", id=3, ts="", to="alice", offline=True)
    assert h.state.conversation("bob").lines[-1].offline


def test_a_backlog_cut_short_says_that_more_waits(h):
    h.login()
    room = h.state.conversation(ROOM)
    h.feed(type="offline_done", delivered=500, remaining=0)
    before = len(room.lines)
    h.feed(type="offline_done", delivered=500, remaining=1200)
    assert len(room.lines) == before + 1 and "1200 more message(s)" in room.lines[-1].text


def test_history_pages_go_on_top_and_paging_stops_at_the_start(h):
    h.login()
    h.chat.open("bob")
    page = lambda ids, more: {"type": "get_history", "peer": "bob", "has_more": more,  # noqa: E731
                              "messages": [{"id": i, "sender": "bob", "to": "alice", "ts": "", "message": f"m{i}"}
                                           for i in ids]}
    h.feed(**page([8, 9, 10], True))
    assert h.chat.load_older("bob") and h.sent[-1]["before"] == 8
    assert not h.chat.load_older("bob")  # one request at a time
    h.feed(**page([6, 7], False))
    assert [line.id for line in h.state.conversation("bob").lines] == [6, 7, 8, 9, 10]
    assert h.view.named("lines_added")[-1][2] is True  # inserted at the start
    assert not h.chat.load_older("bob")


def test_download_is_verified_before_it_is_shown_received(h, tmp_path):
    h.login()
    data = b"x" * 70_000
    offer = {"type": "file_offer", "file_id": "f1", "peer": "bob", "filename": "a.bin", "size": len(data),
             "sha256": hashlib.sha256(data).hexdigest(), "ts": ""}
    h.feed(**offer)
    assert h.view.named("file_offered")[0][0]["file_id"] == "f1"
    h.files.accept("f1", tmp_path / "a.bin")
    assert h.sent[-1] == {"command": "file_download", "file_id": "f1"}
    for offset in range(0, len(data), 32768):
        h.feed(type="file_data", file_id="f1", offset=offset, data=base64.b64encode(data[offset:offset + 32768]).decode())
    h.feed(type="file_data_end", file_id="f1", size=len(data), sha256=offer["sha256"])
    assert (tmp_path / "a.bin").read_bytes() == data
    assert h.view.named("transfer_finished")[-1][1] is True
    assert h.sent[-1] == {"command": "file_received", "file_id": "f1"}


def test_corrupted_download_is_deleted_and_reported(h, tmp_path):
    h.login()
    h.feed(type="file_offer", file_id="f2", peer="bob", filename="b.bin", size=3, sha256="00" * 32, ts="")
    h.files.accept("f2", tmp_path / "b.bin")
    h.feed(type="file_data", file_id="f2", offset=0, data=base64.b64encode(b"abc").decode())
    h.feed(type="file_data_end", file_id="f2", size=3, sha256="00" * 32)
    assert not any(tmp_path.iterdir())
    ok, text = h.view.named("transfer_finished")[-1][1:]
    assert not ok and "SHA-256" in text


def test_features_follow_hello(h):
    h.feed(type="hello", plugins=["auth"], commands=["hello", "login", "register", "get_users"], tls=False)
    assert not h.chat.available and not h.files.available
    h.auth.login("alice", "pw")
    h.feed(type="login_result", username="alice", response="ok")
    assert not any(c["command"] == "get_history" for c in h.sent)
    assert not h.chat.send_text("hi")


def _offer(h: Harness, path: Path, peer: str = "bob") -> Upload:
    """Start an upload and wait for its hashing thread to send the offer."""
    upload = Upload(path, peer)
    h.ctx.transfers.start_upload(upload).join(10)
    return upload


def test_upload_replies_are_matched_by_client_id(h, tmp_path):
    h.login()
    (tmp_path / "one.txt").write_text("one")
    (tmp_path / "two.txt").write_text("two")
    one, two = _offer(h, tmp_path / "one.txt"), _offer(h, tmp_path / "two.txt")
    assert one.client_id != two.client_id
    h.feed(type="file_upload_ready", upload_id="u2", offset=0, chunk_size=32768, client_id=two.client_id)
    assert (one.upload_id, two.upload_id) == (None, "u2")  # answered out of order: still the right one
    h.feed(type="error", command="file_upload", code="quota", reason="over quota", client_id=one.client_id)
    assert one.error == "over quota" and two.error is None


def test_rate_limited_offer_is_sent_again_after_retry_after(h, tmp_path):
    h.login()
    (tmp_path / "a.txt").write_text("a")
    upload = _offer(h, tmp_path / "a.txt")
    offer = h.sent[-1]
    h.feed(type="error", command="file_upload", code="rate_limited", reason="too many requests; retry in 0.4 s",
           retry_after=0.4, client_id=upload.client_id)
    (seconds, again), = h.delayed
    assert 0.4 <= seconds < 0.5 and not upload.done.is_set()
    again()
    assert h.sent[-1] == offer  # the same offer, same client_id


def test_rate_limited_chat_says_when_to_retry(h):
    h.login()
    h.chat.send_text("hello")
    h.feed(type="error", command="chat", code="rate_limited", reason="too many requests: ... retry in 2.3 s",
           retry_after=2.3)
    assert "wait 3 s and send it again" in h.state.conversation(ROOM).lines[-1].text


def test_download_paused_by_a_disconnect_resumes_from_bytes_written(h, tmp_path):
    h.login()
    data = b"y" * 70_000
    h.feed(type="file_offer", file_id="f3", peer="bob", filename="c.bin", size=len(data),
           sha256=hashlib.sha256(data).hexdigest(), ts="")
    h.files.accept("f3", tmp_path / "c.bin")
    h.feed(type="file_data", file_id="f3", offset=0, data=base64.b64encode(data[:32768]).decode())
    h.files.suspend()
    assert "paused" in h.view.named("transfer_note")[-1][1]
    h.state.reset_session()
    h.auth.login("alice", "pw")
    h.feed(type="login_result", username="alice", response="ok")
    assert h.sent[-1] == {"command": "file_download", "file_id": "f3", "offset": 32768}
    h.feed(type="file_data", file_id="f3", offset=32768, data=base64.b64encode(data[32768:]).decode())
    h.feed(type="file_data_end", file_id="f3", size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert (tmp_path / "c.bin").read_bytes() == data


def _streaming(h: Harness, tmp_path: Path, data: bytes, file_id: str = "f4") -> str:
    """Offer ``data`` as ``file_id``, accept it and feed its first chunk; returns the transfer id."""
    h.feed(type="file_offer", file_id=file_id, peer="bob", filename="d.bin", size=len(data),
           sha256=hashlib.sha256(data).hexdigest(), ts="")
    tid = h.files.accept(file_id, tmp_path / "d.bin")
    h.feed(type="file_data", file_id=file_id, offset=0, data=base64.b64encode(data[:32768]).decode())
    return tid


def _rest(h: Harness, data: bytes, file_id: str = "f4", start: int = 32768) -> None:
    """Feed the stream from ``start`` to its file_data_end."""
    for offset in range(start, len(data), 32768):
        h.feed(type="file_data", file_id=file_id, offset=offset,
               data=base64.b64encode(data[offset:offset + 32768]).decode())
    h.feed(type="file_data_end", file_id=file_id, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def test_a_cancelled_download_asks_the_server_to_stop_and_drops_the_rest_until_it_says_so(h, tmp_path):
    h.login(also=("file_download_cancel",))
    data = b"z" * 100_000
    h.files.cancel(_streaming(h, tmp_path, data))
    assert h.sent[-1] == {"command": "file_download_cancel", "file_id": "f4", "client_id": "f4"}
    assert not list(tmp_path.iterdir())
    _rest(h, data)  # already on its way: dropped, and its file_data_end completes nothing
    assert not list(tmp_path.iterdir()) and "f4" in h.ctx.transfers.stopped
    assert not any(ok for _, ok, _ in h.view.named("transfer_finished"))
    assert not any(c["command"] == "file_received" for c in h.sent)
    h.feed(type="file_download_cancel_result", file_id="f4")
    assert "f4" not in h.ctx.transfers.stopped

    h.files.accept("f4", tmp_path / "d.bin")  # asked for again: this stream is taken
    _rest(h, data, start=0)
    assert (tmp_path / "d.bin").read_bytes() == data and h.sent[-1] == {"command": "file_received", "file_id": "f4"}


def test_a_download_asked_for_again_before_the_cancel_is_answered_waits_for_the_answer(h, tmp_path):
    h.login(also=("file_download_cancel",))
    data = b"q" * 100_000
    h.files.cancel(_streaming(h, tmp_path, data))
    h.files.accept("f4", tmp_path / "d.bin")
    _rest(h, data)  # the old stream's frames, before the answer: not the new download's
    h.feed(type="file_download_cancel_result", file_id="f4")
    _rest(h, data, start=0)
    assert (tmp_path / "d.bin").read_bytes() == data
    assert not h.view.named("show_error")


def test_on_a_server_without_download_cancel_the_rest_is_dropped_until_its_end(h, tmp_path):
    h.login()  # HELLO has no file_download_cancel
    data = b"w" * 100_000
    h.files.cancel(_streaming(h, tmp_path, data))
    assert not any(c["command"] == "file_download_cancel" for c in h.sent)
    _rest(h, data)
    assert "f4" not in h.ctx.transfers.stopped and not list(tmp_path.iterdir())
    assert not any(ok for _, ok, _ in h.view.named("transfer_finished"))


def test_a_refused_download_cancel_drops_the_stream_to_its_end_quietly(h, tmp_path):
    h.login(also=("file_download_cancel",))
    data = b"r" * 100_000
    h.files.cancel(_streaming(h, tmp_path, data))
    h.feed(type="error", command="file_download_cancel", code="rate_limited", reason="too many requests",
           retry_after=0.5, client_id="f4")
    assert "f4" in h.ctx.transfers.stopped and not h.view.named("show_error")
    _rest(h, data)  # the stream was not stopped: it runs to its end, all of it dropped
    assert "f4" not in h.ctx.transfers.stopped and not list(tmp_path.iterdir())


def test_an_upload_whose_done_went_out_asks_again_and_sends_what_the_server_lacks(h, tmp_path):
    h.login()
    path = tmp_path / "e.bin"
    path.write_bytes(b"e" * 70_000)
    done = threading.Event()

    def send(message: dict[str, Any]) -> None:
        h.sent.append(message)
        if message["command"] == "file_upload_done":
            done.set()

    h.ctx.transfers.send = send
    upload = _offer(h, path)
    h.feed(type="file_upload_ready", upload_id="u5", offset=0, chunk_size=32768, client_id=upload.client_id)
    assert done.wait(10)
    h.files.suspend()  # the connection broke before the answer
    h.state.reset_session()
    mark = len(h.sent)
    h.auth.login("alice", "pw")
    h.feed(type="login_result", username="alice", response="ok")
    files = [c for c in h.sent[mark:] if c["command"].startswith("file_")]
    assert files == [{"command": "file_upload_done", "upload_id": "u5"}]

    done.clear()  # the server says chunks were lost with the old connection: send from there
    mark = len(h.sent)
    h.feed(type="error", command="file_upload_done", code="incomplete", reason="the server holds 65536 of 70000 bytes",
           upload_id="u5", offset=65536)
    assert done.wait(10)
    files = [(c["command"], c.get("offset")) for c in h.sent[mark:]]
    assert files == [("file_chunk", 65536), ("file_upload_done", None)]
    h.feed(type="file_uploaded", upload_id="u5", file_id="f5")
    assert (upload.file_id, upload.error) == ("f5", None)


def test_session_ended_forgets_the_credentials_and_tells_the_view_why(h):
    h.login()
    assert h.ctx.credentials == Credentials("alice", password="pw")
    h.feed(type="session_ended", code="password_changed", reason="Your password was changed on another device.")
    assert h.ctx.credentials is None  # nothing logs in with them again
    assert h.view.named("session_ended") == [("Your password was changed on another device.",)]
    h.feed(type="session_ended", code="account_removed")  # no reason given: the client's own words
    assert "account was removed" in h.view.named("session_ended")[-1][0]
    h.feed(type="session_ended", code="some_later_code", reason="")
    assert h.view.named("session_ended")[-1] == ("The server ended your session.",)
    assert not h.view.named("show_error")


def test_a_password_login_names_the_device_and_keeps_only_the_token(h):
    kept: list = []
    h.ctx.device, h.ctx.keep_token = "desktop on test", kept.append
    h.auth.login("alice", "pw")
    assert h.sent[-1] == {"command": "login", "username": "alice", "password": "pw", "device": "desktop on test"}
    h.feed(type="login_result", username="alice", response="ok", token="t0k3n", device="desktop on test")
    assert h.ctx.credentials == Credentials("alice", token="t0k3n", device="desktop on test")  # no password left
    assert kept == [h.ctx.credentials]


def test_a_reconnect_logs_in_on_the_token_naming_the_newest_message_seen(h):
    h.login()
    h.feed(type="private_message", peer="bob", message="one", id=41, ts="", to="alice")
    h.feed(type="broadcast_message", peer="bob", message="two", id=42, ts="", to="")
    h.auth.resume(Credentials("alice", token="t0k3n"))
    assert h.sent[-1] == {"command": "login", "username": "alice", "token": "t0k3n", "since": 42}


def test_a_refused_token_is_forgotten_and_the_password_asked_for(h):
    kept: list = []
    h.ctx.keep_token = kept.append
    h.auth.resume(Credentials("alice", token="old"))
    h.feed(type="login_result", username="alice", response="fail",
           reason="This device was signed out (its token was revoked): log in with your password.")
    assert h.ctx.credentials is None and kept == [None]
    assert "signed out" in h.view.named("login_failed")[-1][0]


def test_an_incomplete_catch_up_says_so(h):
    h.login()
    h.feed(type="caught_up", complete=True, delivered=3, last_id=9)
    before = len(h.state.conversation(ROOM).lines)
    h.feed(type="caught_up", complete=False, delivered=5000, last_id=90)
    lines = h.state.conversation(ROOM).lines
    assert len(lines) == before + 1 and "scroll up" in lines[-1].text


def test_the_change_cursor_is_named_on_a_token_reconnect_and_an_incomplete_replay_reloads(h):
    from chatcore_client.handlers.features import FeatureHandlers
    FeatureHandlers(h.ctx).register(h.dispatcher)
    h.login()
    assert h.state.newest_change_id is None
    h.feed(type="get_history", peer=ROOM, has_more=False, last_change_id=5, messages=[])
    assert h.state.newest_change_id == 5  # the first page is where the cursor starts
    h.feed(type="broadcast_message", peer="bob", message="hi", id=10, ts="", to="")
    h.feed(type="message_edited", id=10, sender="bob", to="", message="hi!", edited="x", change_id=7)
    h.feed(type="get_history", peer=ROOM, has_more=False, last_change_id=6, messages=[])
    assert h.state.newest_change_id == 7  # never back
    h.auth.resume(Credentials("alice", token="t0k3n"))
    assert h.sent[-1] == {"command": "login", "username": "alice", "token": "t0k3n", "since": 10, "changes_since": 7}
    sent = len(h.sent)
    h.feed(type="login_result", username="alice", response="ok")
    assert not [m for m in h.sent[sent:] if m.get("command") == "get_history"]  # the replay repairs: no reload
    h.feed(type="message_deleted", id=10, sender="bob", to="", by="bob", change_id=9, replayed=True)
    assert h.state.conversation(ROOM).find(10).deleted and h.state.newest_change_id == 7  # moves at caught_up
    h.feed(type="caught_up", complete=True, delivered=0, last_id=10, changes_complete=True, last_change_id=12)
    assert h.state.newest_change_id == 12 and not h.state.replaying
    assert not [m for m in h.sent[sent:] if m.get("command") == "get_history"]
    h.auth.resume(Credentials("alice", token="t0k3n"))
    assert h.sent[-1]["changes_since"] == 12
    h.feed(type="login_result", username="alice", response="ok")
    sent = len(h.sent)
    h.feed(type="caught_up", complete=True, delivered=0, last_id=10, changes_complete=False, last_change_id=40)
    assert {"command": "get_history", "peer": ROOM, "limit": 50} in h.sent[sent:]  # incomplete: reload what is shown
    assert h.state.newest_change_id == 40
