"""Throttling of failed logins (per username and per address) and of registrations, on an
injected clock: time moves by assignment, never by sleeping."""

from __future__ import annotations

import pytest

from chatcore.testing import PASSWORD
from chatcore_auth.plugin import AuthPlugin

pytestmark = pytest.mark.both_backends  # counted in memory on one node, in Redis in a cluster

WRONG = "wrong password!"
BAD = "Incorrect username or password!"


def start(make_server, clock, backend_env, data_dir=None, **env):
    """A server whose only plugin is an auth plugin on ``clock`` (no entry points, so the name
    'auth' is not blocked as a disabled installed plugin)."""
    return make_server(plugins=[], entry_points=[], extra=[("auth", AuthPlugin(clock=clock))],
                       env={**backend_env, **env}, data_dir=data_dir)


def login(client, name, password):
    return client.request(command="login", username=name, password=password)


def test_failures_per_username_grow_a_delay_that_expires(make_server, connect, clock, backend_env):
    server = start(make_server, clock, backend_env)
    client = connect(server)
    client.request(command="register", username="alice", password=PASSWORD)
    for _ in range(5):
        assert login(client, "alice", WRONG)["reason"] == BAD
    throttled = login(client, "alice", PASSWORD)  # even the right password waits: it is not checked
    assert throttled["response"] == "fail" and throttled["retry_after"] == 1
    assert throttled["reason"] == "Too many failed login attempts; try again in 1 second."
    clock.advance(1)
    assert login(client, "alice", WRONG)["reason"] == BAD
    assert login(client, "alice", PASSWORD)["retry_after"] == 2  # growing
    clock.advance(2)
    assert login(client, "alice", WRONG)["reason"] == BAD
    reply = login(client, "alice", PASSWORD)
    assert reply["retry_after"] == 4 and "try again in 4 seconds" in reply["reason"]
    clock.advance(4)
    assert login(client, "alice", PASSWORD)["response"] == "ok"


def test_failures_are_forgotten_after_a_quiet_window(make_server, connect, clock, backend_env):
    server = start(make_server, clock, backend_env, CHATCORE_AUTH_FAILURE_WINDOW="600")
    client = connect(server)
    client.request(command="register", username="alice", password=PASSWORD)
    for _ in range(4):
        assert login(client, "alice", WRONG)["reason"] == BAD
    clock.advance(600)
    for _ in range(4):  # counting starts over: four more failures still do not throttle
        assert login(client, "alice", WRONG)["reason"] == BAD
    assert login(client, "alice", PASSWORD)["response"] == "ok"


def test_delay_is_capped_so_nobody_is_locked_out_for_good(make_server, connect, clock, backend_env):
    server = start(make_server, clock, backend_env, CHATCORE_AUTH_MAX_DELAY="8")
    client = connect(server)
    client.request(command="register", username="alice", password=PASSWORD)
    delays = []
    for _ in range(12):
        reply = login(client, "alice", WRONG)
        if "retry_after" in reply:
            delays.append(reply["retry_after"])
            clock.advance(reply["retry_after"])
    assert delays and max(delays) == 8
    clock.advance(8)
    assert login(client, "alice", PASSWORD)["response"] == "ok"


def test_unknown_users_are_throttled_like_real_ones(make_server, connect, clock, backend_env):
    server = start(make_server, clock, backend_env)
    client = connect(server)
    client.request(command="register", username="alice", password=PASSWORD)
    for name in ("alice", "nobody"):
        for _ in range(5):
            assert login(client, name, WRONG)["reason"] == BAD
        assert login(client, name, WRONG)["retry_after"] == 1


def test_username_throttle_follows_the_name_across_addresses(make_server, connect_from, clock, backend_env):
    server = start(make_server, clock, backend_env)
    connect_from(server, "127.0.0.5").request(command="register", username="alice", password=PASSWORD)
    attacker = connect_from(server, "127.0.0.2")
    for _ in range(5):
        assert login(attacker, "ALICE", WRONG)["reason"] == BAD
    assert login(connect_from(server, "127.0.0.3"), "alice", PASSWORD)["retry_after"] == 1


def test_an_address_the_user_logged_in_from_skips_the_username_throttle(make_server, connect_from, clock, backend_env):
    server = start(make_server, clock, backend_env)
    home = connect_from(server, "127.0.0.5")
    home.request(command="register", username="alice", password=PASSWORD)
    assert login(home, "alice", PASSWORD)["response"] == "ok"
    attacker = connect_from(server, "127.0.0.2")
    for _ in range(8):
        login(attacker, "alice", WRONG)
    assert "retry_after" in login(attacker, "alice", WRONG)
    assert login(connect_from(server, "127.0.0.5"), "alice", PASSWORD)["response"] == "ok"
    assert "retry_after" in login(connect_from(server, "127.0.0.3"), "alice", PASSWORD)


def test_failures_per_address_across_usernames(make_server, connect_from, clock, backend_env):
    server = start(make_server, clock, backend_env, CHATCORE_AUTH_ADDRESS_FAILURES="3")
    connect_from(server, "127.0.0.9").request(command="register", username="bob", password=PASSWORD)
    sprayer = connect_from(server, "127.0.0.2")
    for name in ("alice", "carol", "dave"):
        assert login(sprayer, name, WRONG)["reason"] == BAD
    reply = login(sprayer, "bob", PASSWORD)
    assert reply["retry_after"] == 1 and "try again" in reply["reason"]
    assert login(connect_from(server, "127.0.0.3"), "bob", PASSWORD)["response"] == "ok"
    clock.advance(1)
    assert login(sprayer, "bob", PASSWORD)["response"] == "ok"


def test_registration_is_rate_limited_per_address(make_server, connect_from, clock, backend_env):
    server = start(make_server, clock, backend_env, CHATCORE_AUTH_REGISTER_LIMIT="3", CHATCORE_AUTH_REGISTER_WINDOW="60")
    client = connect_from(server, "127.0.0.2")
    for name in ("a1", "a2", "a3"):
        assert client.request(command="register", username=name, password=PASSWORD)["response"] == "ok"
    refused = client.request(command="register", username="a4", password=PASSWORD)
    assert refused["response"] == "fail" and refused["retry_after"] == 60
    assert "Too many registrations" in refused["reason"]
    other = connect_from(server, "127.0.0.3")
    assert other.request(command="register", username="b1", password=PASSWORD)["response"] == "ok"
    clock.advance(60)
    assert client.request(command="register", username="a4", password=PASSWORD)["response"] == "ok"


def test_loopback_is_exempt_from_the_registration_limit_unless_configured(make_server, connect, clock, backend_env, tmp_path):
    server = start(make_server, clock, backend_env, CHATCORE_AUTH_REGISTER_LIMIT="2")
    client = connect(server)
    for index in range(5):
        assert client.request(command="register", username=f"u{index}", password=PASSWORD)["response"] == "ok"
    strict = start(make_server, clock, backend_env, tmp_path / "strict", CHATCORE_AUTH_REGISTER_LIMIT="2",
                   CHATCORE_AUTH_REGISTER_EXEMPT="none")
    client = connect(strict)
    for index in range(2):
        assert client.request(command="register", username=f"v{index}", password=PASSWORD)["response"] == "ok"
    assert "retry_after" in client.request(command="register", username="v2", password=PASSWORD)
