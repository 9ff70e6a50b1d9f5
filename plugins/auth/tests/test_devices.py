"""Device tokens: a password login for a named device gets a token; the token logs in without
the password; wrong, expired and revoked tokens are refused with a clear reason; revocation,
a password change and logging out everywhere end tokens and their live sessions."""

from __future__ import annotations

import pytest

from chatcore.testing import PASSWORD, FakeClock
from chatcore_auth.plugin import AuthPlugin

DAY = 86400.0


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(make_server, clock, wall, backend_env):
    """auth on fake clocks (throttling and token ages), loose enough to fail a few logins."""
    return make_server(plugins=[], entry_points=[], extra=[("auth", AuthPlugin(clock=clock, wall_clock=wall))],
                       env={"CHATCORE_AUTH_TOKEN_TTL": str(30 * DAY), **backend_env})


def device_login(client, name: str, device: str, password: str = PASSWORD) -> dict:
    reply = client.request(command="login", username=name, password=password, device=device)
    assert reply["response"] == "ok", reply
    return reply


def token_login(client, name: str, token: str) -> dict:
    return client.request(command="login", username=name, token=token)


def ended(client, code: str) -> None:
    finals = [m for m in client.expect_closed() if m.get("type") == "session_ended"]
    assert finals and finals[-1]["code"] == code, finals


@pytest.mark.both_backends
def test_a_device_gets_a_token_that_logs_in_without_the_password(server, connect):
    laptop = connect(server)
    laptop.login("alice", PASSWORD, register=True)
    laptop.request(command="logout")
    reply = device_login(laptop, "alice", "laptop")
    token = reply["token"]
    assert reply["device"] == "laptop" and len(token) >= 43  # 256 bits, URL-safe base64
    again = connect(server)
    answer = token_login(again, "ALICE", token)
    assert (answer["response"], answer["username"], answer["device"]) == ("ok", "alice", "laptop")
    assert "token" not in answer  # a token login does not mint another
    stored = server.data_dir / "auth" / "accounts.db"
    if stored.exists():
        assert token not in stored.read_bytes().decode("latin-1")  # only its hash


@pytest.mark.both_backends
def test_wrong_expired_and_revoked_tokens_are_refused_each_with_its_reason(server, connect, wall):
    client = connect(server)
    client.login("bob", PASSWORD, register=True)
    client.request(command="logout")
    old = device_login(client, "bob", "phone")["token"]
    client.request(command="logout")
    wrong = token_login(client, "bob", "x" * 43)
    assert wrong["response"] == "fail" and "not valid" in wrong["reason"]
    phone = device_login(client, "bob", "phone")["token"]  # logging in again replaces the token
    client.request(command="logout")
    assert "new token" in token_login(client, "bob", old)["reason"]
    client.login("bob", PASSWORD)
    assert client.request(command="device_revoke", device="phone")["revoked"] is True
    client.request(command="logout")
    assert "signed out" in token_login(client, "bob", phone)["reason"]
    tablet = device_login(client, "bob", "tablet")["token"]
    client.request(command="logout")
    wall.advance(31 * DAY)
    expired = token_login(client, "bob", tablet)
    assert expired["response"] == "fail" and "expired" in expired["reason"]


def test_a_bad_token_counts_as_a_failed_login(make_server, connect, clock, wall):
    server = make_server(plugins=[], entry_points=[], extra=[("auth", AuthPlugin(clock=clock, wall_clock=wall))],
                         env={"CHATCORE_AUTH_ADDRESS_FAILURES": "2"})
    client = connect(server)
    client.login("carol", PASSWORD, register=True)
    client.request(command="logout")
    for _ in range(3):
        assert token_login(client, "carol", "not-a-token")["response"] == "fail"
    throttled = client.request(command="login", username="carol", password=PASSWORD)
    assert throttled["response"] == "fail" and "retry_after" in throttled


@pytest.mark.both_backends
def test_revoking_a_device_ends_its_session_only(server, connect):
    laptop, phone = connect(server), connect(server)
    laptop.request(command="register", username="dave", password=PASSWORD)
    device_login(laptop, "dave", "laptop")
    device_login(phone, "dave", "phone")
    listed = laptop.request(command="devices")["devices"]
    assert [(d["device"], d["online"], d["current"]) for d in listed] in (
        [("phone", True, False), ("laptop", True, True)], [("laptop", True, True), ("phone", True, False)])
    assert laptop.request(command="device_revoke", device="phone") == \
        {"type": "device_revoke_result", "device": "phone", "revoked": True}
    ended(phone, "device_revoked")
    assert laptop.request(command="ping")["type"] == "pong"
    assert [d["device"] for d in laptop.request(command="devices")["devices"]] == ["laptop"]
    assert laptop.request(command="device_revoke", device="nothing")["code"] == "unknown_device"


@pytest.mark.both_backends
def test_a_password_change_ends_every_token_and_gives_this_device_a_new_one(server, connect):
    laptop, phone = connect(server), connect(server)
    laptop.request(command="register", username="erin", password=PASSWORD)
    old_laptop = device_login(laptop, "erin", "laptop")["token"]
    phone_token = device_login(phone, "erin", "phone")["token"]
    changed = laptop.request(command="change_password", old=PASSWORD, new="a brand new password")
    assert changed["response"] == "ok" and changed["device"] == "laptop"
    ended(phone, "password_changed")
    other = connect(server)
    assert "password was changed" in token_login(other, "erin", phone_token)["reason"]
    assert token_login(other, "erin", old_laptop)["response"] == "fail"
    assert token_login(other, "erin", changed["token"])["response"] == "ok"


@pytest.mark.both_backends
def test_logging_out_everywhere_ends_the_other_sessions_and_every_token(server, connect):
    laptop, phone = connect(server), connect(server)
    laptop.request(command="register", username="finn", password=PASSWORD)
    laptop_token = device_login(laptop, "finn", "laptop")["token"]
    device_login(phone, "finn", "phone")
    assert laptop.request(command="logout", everywhere=True)["response"] == "ok"
    ended(phone, "logged_out")
    assert "logged out everywhere" in token_login(laptop, "finn", laptop_token)["reason"]


@pytest.mark.parametrize("request_fields, problem", [
    ({"username": "gus"}, "either 'password' or 'token'"),
    ({"username": "gus", "password": PASSWORD, "token": "t"}, "either 'password' or 'token'"),
    ({"username": "gus", "password": PASSWORD, "device": ""}, "field 'device'"),
    ({"username": "gus", "password": PASSWORD, "device": "x" * 65}, "at most 64"),
    ({"username": "gus", "password": PASSWORD, "device": "tab\there"}, "printable"),
])
def test_bad_login_requests_are_refused_clearly(server, connect, request_fields, problem):
    reply = connect(server).request(command="login", **request_fields)
    assert reply["code"] == "bad_request" and problem in reply["reason"]


@pytest.mark.both_backends
def test_the_operator_lists_and_revokes_devices_on_a_running_server(make_server, connect, run_cli, backend_env):
    server = make_server(plugins=["auth"], env=backend_env)  # the real clocks: the command line reads token ages with them
    laptop, phone = connect(server), connect(server)
    laptop.request(command="register", username="hana", password=PASSWORD)
    device_login(laptop, "hana", "laptop")
    phone_token = device_login(phone, "hana", "phone")["token"]
    listed = run_cli("devices", "hana")
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split("\t")[0] for line in listed.stdout.splitlines()) == ["laptop", "phone"]
    revoked = run_cli("revoke", "hana", "phone")
    assert revoked.returncode == 0, revoked.stderr
    assert ("every node told" if backend_env else "ended 1 live session(s)") in revoked.stdout
    ended(phone, "device_revoked")
    assert laptop.request(command="ping")["type"] == "pong"
    assert token_login(connect(server), "hana", phone_token)["response"] == "fail"
    assert run_cli("revoke", "hana", "phone").returncode == 1  # nothing left to revoke
    assert run_cli("devices", "nobody").returncode == 1


def test_revoking_the_empty_device_name_is_refused_and_ends_nothing(server, connect):
    client = connect(server)
    client.login("ivan", PASSWORD, register=True)
    other = connect(server)
    other.login("ivan", PASSWORD)
    assert client.request(command="device_revoke", device="")["code"] == "bad_request"
    assert other.request(command="ping")["type"] == "pong" and client.request(command="ping")["type"] == "pong"
