"""Sessions and presence: several connections per user, peer_joined/peer_left, logout, close."""

from __future__ import annotations

import threading

import pytest

from chatcore import hookimpl
from chatcore.testing import PASSWORD


@pytest.mark.both_backends
def test_get_users_lists_others_online(server, connect, login_as):
    alice = login_as(server, "alice")
    bob = login_as(server, "Bob")
    carol_offline = connect(server)
    carol_offline.request(command="register", username="carol", password=PASSWORD)
    assert alice.request(command="get_users")["data"] == ["Bob"]
    assert bob.request(command="get_users")["data"] == ["alice"]


def test_get_users_needs_login(server, connect):
    reply = connect(server).request(command="get_users")
    assert reply["type"] == "error" and reply["code"] == "not_authenticated"


@pytest.mark.both_backends
def test_peer_joined_and_left_are_sent_to_others(server, connect, login_as):
    alice = login_as(server, "alice")
    bob = login_as(server, "bob")
    assert alice.expect("peer_joined") == {"type": "peer_joined", "peer": "bob"}
    assert all(m.get("type") != "peer_joined" for m in bob.sync())  # no event about oneself
    bob.close()
    assert alice.expect("peer_left") == {"type": "peer_left", "peer": "bob"}


class _HoldLogin:
    """Holds ``name``'s login after the core bound the session, before any plugin hears of it."""

    def __init__(self, name: str) -> None:
        self.name, self.holding, self.release = name, threading.Event(), threading.Event()

    @hookimpl(tryfirst=True)  # registered after the accounts plugin, so called before it
    def chat_authenticated(self, session):
        if session.user == self.name:
            self.holding.set()
            assert self.release.wait(10)


@pytest.mark.both_backends
def test_a_session_bound_but_not_yet_logged_in_is_not_told_what_its_user_list_holds(
        make_server, backend_env, connect, login_as):
    """bob is online (bound) before his login reaches the accounts plugin: changes announced
    then are older than the user list his login will give him, so he is not told of them."""
    hold = _HoldLogin("bob")
    server = make_server(plugins=["auth"], env=backend_env, extra=[("hold", hold)])
    watcher = login_as(server, "watcher")
    bob = connect(server)
    assert bob.request(command="register", username="bob", password=PASSWORD)["response"] == "ok"
    bob.send(command="login", username="bob", password=PASSWORD)
    assert hold.holding.wait(10)
    login_as(server, "alice")
    login_as(server, "carol")
    assert watcher.expect("peer_joined", peer="alice") and watcher.expect("peer_joined", peer="carol")
    hold.release.set()  # alice's announcement has gone out to every session before carol's
    assert bob.expect("login_result")["response"] == "ok"
    assert not [m for m in bob.sync() if m.get("type") == "peer_joined"]
    assert bob.request(command="get_users")["data"] == ["alice", "carol", "watcher"]


@pytest.mark.both_backends
def test_two_sessions_of_one_user(server, connect, login_as):
    watcher = login_as(server, "watcher")
    first = login_as(server, "alice")
    assert watcher.expect("peer_joined", peer="alice")
    second = login_as(server, "alice", register=False)
    assert [m for m in watcher.sync() if m.get("type") in ("peer_joined", "peer_left")] == []
    assert watcher.request(command="get_users")["data"] == ["alice"]
    assert first.request(command="get_users")["data"] == ["watcher"]  # the requester's own name is excluded
    first.request(command="logout")
    assert [m for m in watcher.sync() if m.get("type") == "peer_left"] == []  # alice still has a session
    assert watcher.request(command="get_users")["data"] == ["alice"]
    second.close()
    assert watcher.expect("peer_left", peer="alice")
    assert watcher.request(command="get_users")["data"] == []


def test_logout_then_commands_need_login_again(server, login_as):
    client = login_as(server, "alice")
    assert client.request(command="logout") == {"type": "logout_result", "response": "ok"}
    reply = client.request(command="get_users")
    assert reply["type"] == "error" and reply["code"] == "not_authenticated"
    assert client.request(command="logout")["code"] == "not_authenticated"
    assert client.request(command="login", username="alice", password=PASSWORD)["response"] == "ok"
    assert client.request(command="get_users")["type"] == "get_users"


def test_close_logs_out_and_closes_the_connection(server, login_as):
    watcher = login_as(server, "watcher")
    alice = login_as(server, "alice")
    watcher.expect("peer_joined", peer="alice")
    alice.send(command="close")
    arrived = alice.expect_closed()
    assert {"type": "logout_result", "response": "ok"} in arrived
    assert watcher.expect("peer_left", peer="alice")


def test_close_before_login_just_closes(server, connect):
    client = connect(server)
    client.send(command="close")
    client.expect_closed()


@pytest.mark.both_backends
def test_presence_stays_consistent_under_concurrent_logins_and_logouts(server, connect, login_as):
    watcher = login_as(server, "watcher")
    connect(server).request(command="register", username="alice", password=PASSWORD)
    clients = [connect(server) for _ in range(8)]
    for _round in range(3):
        barrier = threading.Barrier(len(clients))
        errors: list[BaseException] = []

        def login_logout(client, barrier=barrier, errors=errors):
            try:
                barrier.wait()
                assert client.request(command="login", username="alice", password=PASSWORD)["response"] == "ok"
                assert client.request(command="logout")["response"] == "ok"
            except BaseException as exc:  # reported below, in the test thread
                errors.append(exc)

        threads = [threading.Thread(target=login_logout, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
    events = [m["type"] for m in watcher.sync() if m.get("type") in ("peer_joined", "peer_left")]
    while not events or events[-1] != "peer_left":  # alice is offline now: that last change may be on its way
        events.append(watcher.expect(("peer_joined", "peer_left"))["type"])  # (presence gathers for 50 ms)
    assert all(a != b for a, b in zip(events, events[1:])), events  # strictly alternating
    assert events[0] == "peer_joined" and events[-1] == "peer_left"
    assert watcher.request(command="get_users")["data"] == []


class _Elsewhere:
    """A logged-in user bound straight into the registry (thousands of real logins would take minutes)."""

    def __init__(self, name: str) -> None:
        self.user = name
        self.state: dict = {}

    def send_frame(self, frame: bytes) -> bool:
        return True


@pytest.mark.both_backends
def test_get_users_pages_when_the_list_would_not_fit_one_frame(server, login_as):
    client = login_as(server, "watcher")
    names = [f"user{index:04d}".ljust(32, "x") for index in range(3000)]
    for name in names:
        server.sessions.bind(_Elsewhere(name), name)
    seen, offset, pages = [], 0, 0
    while True:
        reply = client.request(command="get_users", offset=offset)
        seen.extend(reply["data"])
        pages += 1
        if not reply.get("has_more"):
            break
        offset = reply["next_offset"]
    assert pages > 1 and seen == names


def test_get_users_offset_must_not_be_negative(server, login_as):
    client = login_as(server, "alice")
    reply = client.request(command="get_users", offset=-1)
    assert reply["type"] == "error" and reply["code"] == "bad_request"
    assert client.request(command="get_users", offset="1")["code"] == "bad_request"


class _Greeter:
    """Another plugin that speaks to a session as soon as it logs in (like offline delivery)."""

    @hookimpl
    def chat_authenticated(self, session, first):
        session.send({"type": "welcome", "online": True})


def test_login_result_comes_before_what_other_plugins_send_at_login(make_server, connect):
    server = make_server(plugins=["auth"], extra=[("greeter", _Greeter())])
    client = connect(server)
    client.request(command="register", username="alice", password=PASSWORD)
    client.send(command="login", username="alice", password=PASSWORD)
    first = client.expect(("login_result", "welcome"))
    assert first["type"] == "login_result" and first["response"] == "ok"
    assert client.expect("welcome")


def test_changes_gathered_into_one_batch_skip_those_who_logged_in_after_them(make_server, login_as):
    """With a long CHATCORE_AUTH_PRESENCE_DELAY, alice's and bob's logins go out in one batch:
    the watcher hears of both, alice of bob, and bob (whose user list already had alice) of nobody."""
    server = make_server(plugins=["auth"], env={"CHATCORE_AUTH_PRESENCE_DELAY": "0.5"})
    watcher = login_as(server, "watcher")
    watcher.sync()
    alice = login_as(server, "alice")
    bob = login_as(server, "bob")
    assert watcher.expect("peer_joined", peer="alice") and watcher.expect("peer_joined", peer="bob")
    assert alice.expect("peer_joined", peer="bob")
    assert not [m for m in bob.sync() if m.get("type") == "peer_joined"]
    bob.close()
    assert alice.expect("peer_left", peer="bob")  # later changes reach everyone online
