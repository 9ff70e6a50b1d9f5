"""Failures belong to their plugin: one plugin's failing hook neither ends a connection nor
reaches a client already told ``ok``, and a plugin that keeps failing is disabled at run time
while the server goes on serving everything else."""

from __future__ import annotations

import logging

import pytest

from chatcore import hookimpl
from chatcore.server import ChatServer
from chatcore.testing import PASSWORD, server_config


class Broken:
    """Fails on purpose in every hook it implements, and in its one command; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def chat_register_commands(self, register):
        register("explode", self.explode, auth=False)

    @hookimpl
    def chat_session_opened(self, session):
        self.calls.append("opened")
        raise RuntimeError("broken opened")

    @hookimpl
    def chat_authenticated(self, session, first):
        self.calls.append("authenticated")
        raise RuntimeError("broken authenticated")

    def explode(self, session, message):
        self.calls.append("explode")
        raise RuntimeError("broken command")


class Essential(Broken):
    chatcore_essential = True


def test_a_failing_session_hook_ends_nothing_and_the_other_plugins_still_run(make_server, connect, probe):
    broken = Broken()
    server = make_server(plugins=["auth"], extra=[("broken", broken), ("probe", probe)])
    client = connect(server)
    assert client.request(command="ping")["type"] == "pong"  # the connection survived chat_session_opened
    assert probe.opened.get(timeout=5) is not None  # and the probe's implementation still ran
    reply = client.login("alice", PASSWORD, register=True)
    assert reply["response"] == "ok"
    assert [m for m in client.sync() if m.get("type") == "error"] == []  # no error after the ok
    assert broken.calls == ["opened", "authenticated"]


def test_a_plugin_over_its_fault_budget_is_disabled_and_the_rest_goes_on(make_server, connect, probe, caplog):
    caplog.set_level(logging.ERROR)
    broken = Broken()
    server = make_server(plugins=[], extra=[("broken", broken), ("probe", probe)],
                         env={"CHATCORE_FAULT_LIMIT": "3", "CHATCORE_FAULT_WINDOW": "3600"})
    client = connect(server)  # failure 1: chat_session_opened
    codes = [client.request(command="explode")["code"] for _ in range(4)]
    assert codes == ["internal_error", "internal_error", "internal_error", "plugin_disabled"]
    assert "plugin broken disabled" in caplog.text
    hello = client.request(command="hello", protocol=2)
    assert "broken" not in hello["plugins"] and "explode" not in hello["commands"] and "probe" in hello["plugins"]
    calls = len(broken.calls)
    other = connect(server)
    assert other.request(command="typed", n=1, s="x") == {"type": "typed", "ok": True}  # the probe still serves
    assert len(broken.calls) == calls  # its hooks are no longer called for new connections


def test_an_essential_plugin_is_never_disabled(make_server, connect):
    essential = Essential()
    server = make_server(plugins=[], extra=[("essential", essential)], env={"CHATCORE_FAULT_LIMIT": "1"})
    client = connect(server)
    assert [client.request(command="explode")["code"] for _ in range(5)] == ["internal_error"] * 5
    assert "essential" in client.request(command="hello")["plugins"]


class Lifecycle:
    """Records the lifecycle hooks it sees, in order; fails to configure when told to."""

    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    @hookimpl
    def chat_configure(self, server):
        self.log.append(f"{self.name}:configure")
        if self.fail:
            raise RuntimeError("cannot configure")

    @hookimpl
    def chat_register_commands(self, register):
        self.log.append(f"{self.name}:register")

    @hookimpl
    def chat_started(self, server):
        self.log.append(f"{self.name}:started {server.address[1] != 0}")

    @hookimpl
    def chat_shutdown(self, server):
        self.log.append(f"{self.name}:shutdown")


def test_the_lifecycle_runs_in_its_documented_order(tmp_path):
    seen: list[str] = []
    config = server_config(tmp_path / "data", ["one"])
    with ChatServer(config, extra_plugins=[("one", Lifecycle(seen, "one"))]):
        assert seen == ["one:configure", "one:register", "one:started True"]
    assert seen[-1] == "one:shutdown"


def test_a_plugin_failing_to_configure_stops_the_start_and_only_the_configured_shut_down(tmp_path):
    seen: list[str] = []
    config = server_config(tmp_path / "data", ["failing", "fine"])
    # pluggy calls the plugin registered last first: "fine" is configured, then "failing" fails
    server = ChatServer(config, extra_plugins=[("failing", Lifecycle(seen, "failing", fail=True)),
                                               ("fine", Lifecycle(seen, "fine"))])
    with pytest.raises(RuntimeError, match="cannot configure"):
        server.start()
    assert seen == ["fine:configure", "failing:configure", "fine:shutdown"]  # no commands registered
    with ChatServer(config, extra_plugins=[("fine", Lifecycle([], "fine"))]):
        pass  # the data directory was unlocked
