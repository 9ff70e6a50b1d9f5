"""The ``auth`` plugin installs under its short name and can be enabled or disabled."""

from chatcore.plugins import installed


def test_auth_is_installed_under_its_short_name():
    point = installed()["auth"]
    assert point.value == "chatcore_auth.plugin:AuthPlugin"
    assert point.dist is not None and point.dist.name == "chatcore-auth"


def test_auth_loads_into_a_server(make_server, connect):
    server = make_server(plugins=["auth"])
    assert server.plugin_names == ["auth"]
    hello = connect(server).request(command="hello", protocol=2)
    assert hello["plugins"] == ["auth"]
