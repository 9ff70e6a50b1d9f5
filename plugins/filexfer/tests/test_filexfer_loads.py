"""The ``filexfer`` plugin installs under its short name and can be enabled or disabled."""

from chatcore.plugins import installed


def test_filexfer_is_installed_under_its_short_name():
    point = installed()["filexfer"]
    assert point.value == "chatcore_filexfer.plugin:FilexferPlugin"
    assert point.dist is not None and point.dist.name == "chatcore-filexfer"


def test_filexfer_loads_into_a_server(make_server, connect):
    server = make_server(plugins=["filexfer"])
    assert server.plugin_names == ["filexfer"]
    hello = connect(server).request(command="hello", protocol=2)
    assert hello["plugins"] == ["filexfer"]
