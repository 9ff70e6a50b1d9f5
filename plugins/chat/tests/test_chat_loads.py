"""The ``chat`` plugin installs under its short name and can be enabled or disabled."""

from chatcore.plugins import installed


def test_chat_is_installed_under_its_short_name():
    point = installed()["chat"]
    assert point.value == "chatcore_chat.plugin:ChatPlugin"
    assert point.dist is not None and point.dist.name == "chatcore-chat"


def test_chat_loads_into_a_server(make_server, connect):
    server = make_server(plugins=["chat"])
    assert server.plugin_names == ["chat"]
    hello = connect(server).request(command="hello", protocol=2)
    assert hello["plugins"] == ["chat"]
