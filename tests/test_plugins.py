"""Plugin loading: entry points, enable and disable lists, clashes, a third-party plugin over the wire."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from chatcore import CommandError, hookimpl
from chatcore.config import Config
from chatcore.plugins import PluginError, create_manager, describe, installed
from chatcore.registry import DuplicateCommand
from chatcore.server import ChatServer
from chatcore.testing import server_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "echo-plugin"
BUILTIN = {"auth", "chat", "filexfer", "rooms"}


@pytest.fixture
def echo_entry_point(monkeypatch):
    """The example third-party plugin, found the way an installed one would be."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return importlib.metadata.EntryPoint(name="echo", value="chatcore_echo:EchoPlugin", group="chatcore")


def config_for(tmp_path: Path, **values: str) -> Config:
    return Config({"STORAGE_DIR": str(tmp_path / "data"), "SERVER_PORT": "0",
                   "CHATCORE_HOST": "127.0.0.1", **values})


def test_the_builtin_plugins_are_installed_entry_points():
    assert BUILTIN <= set(installed())


def test_unset_lists_enable_every_installed_plugin(tmp_path):
    server = ChatServer(config_for(tmp_path))
    assert BUILTIN <= set(server.plugin_names)


def test_enable_list_loads_only_those(tmp_path):
    server = ChatServer(config_for(tmp_path, CHATCORE_PLUGINS="auth"))
    assert server.plugin_names == ["auth"]


def test_disable_list_wins_over_enable_list(tmp_path):
    server = ChatServer(config_for(tmp_path, CHATCORE_PLUGINS="auth,chat", CHATCORE_DISABLE_PLUGINS="chat"))
    assert server.plugin_names == ["auth"]
    assert server.pm.is_blocked("chat")


def test_an_unknown_name_is_a_startup_error_listing_what_is_installed(tmp_path):
    with pytest.raises(PluginError, match=r"unknown plugin 'chta'; installed plugins: .*auth, chat, filexfer"):
        ChatServer(config_for(tmp_path, CHATCORE_PLUGINS="auth,chta"))
    with pytest.raises(PluginError, match="unknown plugin 'nope'"):
        ChatServer(config_for(tmp_path, CHATCORE_DISABLE_PLUGINS="nope"))


def test_the_core_cannot_be_disabled(tmp_path):
    with pytest.raises(PluginError, match="essential"):
        ChatServer(config_for(tmp_path, CHATCORE_DISABLE_PLUGINS="core"))


def test_a_third_party_plugin_loads_from_its_entry_point_and_answers_over_the_wire(
        make_server, connect, echo_entry_point):
    server = make_server(plugins=["echo"], entry_points=[echo_entry_point], env={"CHATCORE_ECHO_SHOUT": "yes"})
    assert server.plugin_names == ["echo"]
    client = connect(server)
    assert "echo" in client.request(command="hello", protocol=2)["commands"]
    assert client.request(command="echo", text="hi there") == {"type": "echo", "text": "HI THERE"}
    assert client.request(command="echo", text=3)["code"] == "bad_request"
    assert client.request(command="echo", text="x" * 1001)["code"] == "too_long"


def test_a_disabled_third_party_plugin_is_never_imported(tmp_path):
    broken = importlib.metadata.EntryPoint(name="broken", value="no_such_module_anywhere:Plugin", group="chatcore")
    config = server_config(tmp_path / "data", plugins=[], entry_points=[broken])
    manager = create_manager(config, [broken])
    assert manager.is_blocked("broken")
    with pytest.raises(PluginError, match="'broken' .* failed to load"):
        create_manager(server_config(tmp_path / "data", plugins=["broken"], entry_points=[broken]), [broken])


class Squatter:
    @hookimpl
    def chat_register_commands(self, register):
        register("ping", lambda session, message: None)


def test_a_plugin_may_not_take_a_command_another_owns(tmp_path):
    config = server_config(tmp_path / "data", plugins=[])
    with pytest.raises(DuplicateCommand, match="plugin 'squatter' cannot register command 'ping': plugin 'core' owns it"):
        ChatServer(config, extra_plugins=[("squatter", Squatter())]).open()


class Needy:
    """Builds on another plugin, as rooms builds on chat."""

    chatcore_requires = ("auth",)


def test_a_plugin_needing_a_disabled_plugin_stops_the_start_naming_both(tmp_path):
    with pytest.raises(PluginError, match=r"plugin 'needy' needs plugin 'auth', which is disabled: enable 'auth', "
                                          r"or disable 'needy' as well \(CHATCORE_DISABLE_PLUGINS=auth,needy\)"):
        ChatServer(server_config(tmp_path / "data", plugins=[]), extra_plugins=[("needy", Needy())])
    needy = Needy()
    needy.chatcore_requires = ("nosuch",)
    with pytest.raises(PluginError, match="needs plugin 'nosuch', which is not installed"):
        ChatServer(server_config(tmp_path / "data", plugins=[]), extra_plugins=[("needy", needy)])
    with ChatServer(server_config(tmp_path / "data", plugins=["auth"]), extra_plugins=[("needy", Needy())]) as server:
        assert server.plugin_names == ["auth", "needy"]


class Misspelled:
    @hookimpl
    def chat_sesion_opened(self, session):  # a typo of chat_session_opened
        pass


def test_a_misspelled_hook_is_caught_at_startup(tmp_path):
    with pytest.raises(PluginError, match="chat_sesion_opened"):
        ChatServer(server_config(tmp_path / "data", plugins=[]), extra_plugins=[("typo", Misspelled())])


class Counter:
    """State kept on the instance: two servers get two counters."""

    def __init__(self):
        self.count = 0

    @hookimpl
    def chat_register_commands(self, register):
        register("count", self.bump, auth=False)

    def bump(self, session, message):
        self.count += 1
        if self.count > 2:
            raise CommandError("enough", "counted enough")
        return {"type": "count", "value": self.count}


def test_plugins_added_in_a_test_wrap_dispatch(make_server, connect):
    calls = []

    class Audit:
        @hookimpl(wrapper=True)
        def chat_handle_message(self, session, command, message):
            calls.append(command.name)
            reply = yield
            return reply

    server = make_server(plugins=[], extra=[("counter", Counter()), ("audit", Audit())])
    client = connect(server)
    assert client.request(command="count") == {"type": "count", "value": 1}
    assert client.request(command="count")["value"] == 2
    assert client.request(command="count")["code"] == "enough"
    assert calls == ["count", "count", "count"]


def test_describe_lists_distribution_version_state_and_commands(tmp_path, echo_entry_point):
    config = server_config(tmp_path / "data", plugins=[], entry_points=[echo_entry_point])
    [echo] = describe(config, [echo_entry_point])
    assert (echo.name, echo.enabled, echo.commands) == ("echo", False, ("echo",))
